//! Group commit of the metering writes on SQLite.
//!
//! SQLite has one writer at a time, so every metered request (an admission, then its end)
//! waited for the writes of all the requests before it, each a transaction of several
//! statements, every statement a round trip to the connection's thread. Under load the
//! writer's turn, not the processor, set the pace: half the processor idled while requests
//! queued for it.
//!
//! Here a write joins a queue. Whoever holds the writer's turn next takes everything queued
//! (up to [`MAX_BATCH`] writes) and runs it in one transaction
//! (`usage::apply_usage_writes`, which also sums what the finalizations owe into one update
//! per account and one per rollup minute); each caller gets its own answer once the
//! transaction has committed, so a request that has its answer has its write, as before. A
//! lone write is a batch of one: no timer, no added wait.
//!
//! The batch runs on a task of its own: a caller that goes away (its client disconnected)
//! does not cut the others' writes short. An admission whose caller is gone before its batch
//! starts is not run; one admitted after its caller left is closed at once as `rejected`, so
//! nothing stays held for nobody. When a batch fails, each of its writes runs again alone, so
//! one bad write (a duplicate request id) fails only its own caller.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use tokio::sync::{oneshot, OwnedMutexGuard};

use crate::usage::{one, UsageWrite, UsageWritten};
use crate::{Store, StoreError, StoreResult};

/// The most writes one transaction takes.
pub(crate) const MAX_BATCH: usize = 64;

/// Writes waiting for the writer's turn.
#[derive(Default)]
pub(crate) struct GroupCommit {
    queue: Mutex<VecDeque<Job>>,
    /// Transactions committed, for tests.
    batches: AtomicU64,
}

impl std::fmt::Debug for GroupCommit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCommit")
            .field("queued", &self.lock().len())
            .finish()
    }
}

struct Job {
    op: UsageWrite,
    reply: oneshot::Sender<StoreResult<UsageWritten>>,
}

impl GroupCommit {
    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Job>> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn take(&self) -> Vec<Job> {
        let mut queue = self.lock();
        let n = queue.len().min(MAX_BATCH);
        queue.drain(..n).collect()
    }
}

impl Store {
    /// Runs `op` in the next transaction of the writer's turn, with whatever else is waiting.
    pub(crate) async fn group_write(&self, op: UsageWrite) -> StoreResult<UsageWritten> {
        let (reply, mut answer) = oneshot::channel();
        self.group.lock().push_back(Job { op, reply });
        loop {
            tokio::select! {
                biased;
                answered = &mut answer => {
                    // Dropped unanswered: its batch's task ended unfinished (its runtime shut
                    // down), and the transaction with it.
                    return answered.unwrap_or(Err(StoreError::Database(sqlx::Error::WorkerCrashed)));
                }
                turn = self.write_turn.clone().lock_owned() => {
                    let jobs = self.group.take();
                    if jobs.is_empty() {
                        // A batch before this turn took it: the answer is there.
                        continue;
                    }
                    let batch = self.clone().run_batch(jobs, turn);
                    match tokio::runtime::Handle::try_current() {
                        Ok(runtime) => {
                            let _ = runtime.spawn(batch).await;
                        }
                        Err(_) => batch.await,
                    }
                    // This caller's write may have been beyond the batch's: it waits on.
                }
            }
        }
    }

    /// Runs `jobs` in one transaction (each alone when that fails) and answers them; holds
    /// the writer's `turn` until done.
    async fn run_batch(self, jobs: Vec<Job>, turn: OwnedMutexGuard<()>) {
        let (ops, replies): (Vec<UsageWrite>, Vec<_>) = jobs
            .into_iter()
            .filter(|j| !(j.op.is_admission() && j.reply.is_closed()))
            .map(|j| (j.op, j.reply))
            .unzip();
        if ops.is_empty() {
            return;
        }
        let written: Vec<StoreResult<UsageWritten>> = match self.apply_usage_tx(&ops).await {
            Ok(written) => {
                self.group.batches.fetch_add(1, Ordering::Relaxed);
                written.into_iter().map(Ok).collect()
            }
            Err(e) if ops.len() == 1 => vec![Err(e)],
            Err(e) => {
                tracing::warn!(error = %e, writes = ops.len(), "a grouped usage write failed; each runs alone");
                let mut alone = Vec::with_capacity(ops.len());
                for op in &ops {
                    alone.push(self.apply_usage_tx(std::slice::from_ref(op)).await.map(one));
                }
                alone
            }
        };
        let unclaimed = answer(&ops, replies, written);
        if !unclaimed.is_empty() {
            if let Err(e) = self.apply_usage_tx(&unclaimed).await {
                tracing::warn!(error = %e, "cannot close admissions nobody waited for; the orphan sweep will");
            }
        }
        drop(turn);
    }
}

/// Sends each caller its answer; returns the writes that close admissions nobody received.
fn answer(
    ops: &[UsageWrite],
    replies: Vec<oneshot::Sender<StoreResult<UsageWritten>>>,
    written: Vec<StoreResult<UsageWritten>>,
) -> Vec<UsageWrite> {
    let mut unclaimed = Vec::new();
    for ((op, reply), written) in ops.iter().zip(replies).zip(written) {
        if let Err(Ok(written)) = reply.send(written) {
            unclaimed.extend(op.unclaimed(&written));
        }
    }
    unclaimed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::budgets::BudgetScope;
    use crate::money::Money;
    use crate::tenants::Plan;
    use crate::usage::{Admission, Endpoint, FinalUsage, NewUsage, UsageQuery, UsageStatus};
    use crate::{now_ms, TenantId};

    async fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("group.db").display());
        (dir, Store::connect(&url).await.unwrap())
    }

    fn usage(tenant: &TenantId, id: &str, key: &str, max_cost: i64) -> NewUsage {
        NewUsage {
            request_id: id.to_owned(),
            http_request_id: None,
            tenant_id: tenant.clone(),
            project_id: Some("proj_g".into()),
            api_key_id: Some(key.into()),
            endpoint: Endpoint::Completions,
            model: "m".to_owned(),
            prompt_tokens: 10,
            max_cost: Money::from_micros(max_cost),
            instance_id: "gw_test".to_owned(),
            started_ms: now_ms(),
            price_id: None,
        }
    }

    fn end(cost: i64) -> FinalUsage {
        FinalUsage {
            status: UsageStatus::Completed,
            prompt_tokens: 10,
            cached_tokens: 0,
            completion_tokens: 5,
            ttft_ms: Some(3),
            latency_ms: Some(9),
            cost: Money::from_micros(cost),
            finished_ms: now_ms(),
        }
    }

    /// A new pay-as-you-go tenant whose prepaid account holds `micros`.
    async fn funded(store: &Store, micros: i64) -> TenantId {
        let tenant = store.create_tenant("g", Plan::PayAsYouGo).await.unwrap().id;
        store
            .open_credit_account(&tenant, Money::from_micros(micros))
            .await
            .unwrap();
        tenant
    }

    /// Waits until `n` writes wait for the writer's turn.
    async fn queued(store: &Store, n: usize) {
        let started = std::time::Instant::now();
        while store.group.lock().len() < n {
            assert!(started.elapsed().as_secs() < 10, "the writes never queued");
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
    }

    /// Holds the writer's turn until `n` writes wait for it, then lets them run.
    async fn release_when_queued(store: &Store, turn: OwnedMutexGuard<()>, n: usize) {
        queued(store, n).await;
        drop(turn);
    }

    async fn reserved(store: &Store, tenant: &TenantId) -> (i64, i64) {
        let b = store.credit_balance(tenant).await.unwrap().unwrap();
        (b.balance.micros(), b.reserved.micros())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn waiting_writes_share_a_transaction_and_each_gets_its_own_answer() {
        let (_dir, store) = store().await;
        let tenant = funded(&store, 1_000_000).await;
        // The key `key_capped` may hold 100_000: two of its admissions fit, a third does not.
        store
            .set_budget(
                &tenant,
                BudgetScope::ApiKey,
                "key_capped",
                Money::from_micros(100_000),
            )
            .await
            .unwrap();

        // 18 admissions of 50_000 on a plain key and 3 on the capped one: the account holds
        // 1_000_000, so of the 21 one is refused for the balance or the cap refuses one.
        let batches = store.group.batches.load(Ordering::Relaxed);
        let turn = store.write_turn.clone().lock_owned().await;
        let mut admissions = Vec::new();
        for i in 0..21 {
            let key = if i < 3 { "key_capped" } else { "key_plain" };
            let u = usage(&tenant, &format!("req-{i}"), key, 50_000);
            let s = store.clone();
            admissions.push(tokio::spawn(async move {
                (u.request_id.clone(), s.admit_usage(&u, false).await)
            }));
        }
        release_when_queued(&store, turn, 21).await;
        let mut admitted = Vec::new();
        let (mut insufficient, mut over_budget) = (0, 0);
        for a in admissions {
            let (id, admission) = a.await.unwrap();
            match admission.unwrap() {
                Admission::Admitted { reserved } => {
                    assert_eq!(reserved.micros(), 50_000);
                    admitted.push(id);
                }
                Admission::Insufficient { .. } => insufficient += 1,
                Admission::OverBudget(over) => {
                    assert_eq!(over.scope, BudgetScope::ApiKey);
                    over_budget += 1;
                }
                Admission::NoAccount => panic!("the tenant has an account"),
            }
        }
        assert_eq!(store.group.batches.load(Ordering::Relaxed), batches + 1);
        // The cap refused its third admission and released what it held on the account, so
        // the balance covered all the others.
        assert_eq!((over_budget, insufficient, admitted.len()), (1, 0, 20));
        assert_eq!(reserved(&store, &tenant).await, (1_000_000, 20 * 50_000));

        // Their ends, one of them twice, in one transaction: exactly one of the two counts.
        let turn = store.write_turn.clone().lock_owned().await;
        let mut ends = Vec::new();
        for id in admitted.iter().chain(admitted.first()) {
            let s = store.clone();
            let id = id.clone();
            ends.push(tokio::spawn(async move {
                s.finalize_usage(&id, &end(10_000)).await
            }));
        }
        release_when_queued(&store, turn, 21).await;
        let mut finalized = 0;
        for e in ends {
            finalized += usize::from(e.await.unwrap().unwrap());
        }
        assert_eq!(finalized, 20);
        assert_eq!(store.group.batches.load(Ordering::Relaxed), batches + 2);
        assert_eq!(
            reserved(&store, &tenant).await,
            (1_000_000 - 20 * 10_000, 0)
        );
        let debits = store.credit_ledger(&tenant).await.unwrap();
        let debits: Vec<_> = debits.iter().filter(|e| e.kind == "usage").collect();
        assert_eq!(debits.len(), 20);
        assert!(debits.iter().all(|e| e.amount.micros() == -10_000));
        let now = now_ms();
        let totals = store
            .usage_totals(&UsageQuery {
                tenant_id: tenant.clone(),
                endpoint: Some(Endpoint::Completions),
                start_ms: 0,
                from_ms: 0,
                end_ms: now + 60_000,
                width_ms: now + 60_000,
                ..UsageQuery::default()
            })
            .await
            .unwrap();
        let requests: i64 = totals.iter().map(|t| t.requests).sum();
        let output: i64 = totals.iter().map(|t| t.output_tokens).sum();
        assert_eq!((requests, output), (20, 100));
        // The capped key spent what its two requests cost; nothing is held on it any more.
        let cap = store
            .budget(&tenant, BudgetScope::ApiKey, "key_capped")
            .await
            .unwrap();
        assert_eq!(cap.available().unwrap().micros(), 100_000 - 2 * 10_000);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn admissions_of_one_key_that_do_not_all_fit_are_admitted_in_turn() {
        let (_dir, store) = store().await;
        let tenant = funded(&store, 100_000).await;
        // Postpaid, without an account: admitted together, nothing held.
        let postpaid = store.create_tenant("p", Plan::Enterprise).await.unwrap().id;
        let batches = store.group.batches.load(Ordering::Relaxed);
        let turn = store.write_turn.clone().lock_owned().await;
        let mut admissions = Vec::new();
        for i in 0..3 {
            for (t, postpaid_ok) in [(&tenant, false), (&postpaid, true)] {
                let u = usage(t, &format!("req-{t}-{i}"), "key_a", 40_000);
                let s = store.clone();
                admissions.push(tokio::spawn(async move {
                    (postpaid_ok, s.admit_usage(&u, postpaid_ok).await.unwrap())
                }));
            }
        }
        release_when_queued(&store, turn, 6).await;
        let (mut prepaid, mut short, mut on_invoice) = (0, 0, 0);
        for a in admissions {
            match a.await.unwrap() {
                (false, Admission::Admitted { reserved }) if reserved.micros() == 40_000 => {
                    prepaid += 1
                }
                (false, Admission::Insufficient { available }) => {
                    assert_eq!(available.micros(), 100_000 - 2 * 40_000);
                    short += 1
                }
                (true, Admission::Admitted { reserved }) if reserved == Money::ZERO => {
                    on_invoice += 1
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!((prepaid, short, on_invoice), (2, 1, 3));
        assert_eq!(store.group.batches.load(Ordering::Relaxed), batches + 1);
        assert_eq!(reserved(&store, &tenant).await, (100_000, 2 * 40_000));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failing_write_fails_alone() {
        let (_dir, store) = store().await;
        let tenant = funded(&store, 1_000_000).await;
        let first = usage(&tenant, "req-dup", "key_a", 10_000);
        assert!(matches!(
            store.admit_usage(&first, false).await.unwrap(),
            Admission::Admitted { .. }
        ));
        // Three admissions in one transaction, one reusing the id above: its INSERT fails
        // the transaction, so each runs again alone.
        let turn = store.write_turn.clone().lock_owned().await;
        let mut admissions = Vec::new();
        for id in ["req-a", "req-dup", "req-b"] {
            let u = usage(&tenant, id, "key_a", 10_000);
            let s = store.clone();
            admissions.push(tokio::spawn(async move { s.admit_usage(&u, false).await }));
        }
        release_when_queued(&store, turn, 3).await;
        let mut answers = Vec::new();
        for a in admissions {
            answers.push(a.await.unwrap());
        }
        assert!(matches!(answers[0], Ok(Admission::Admitted { .. })));
        assert!(
            matches!(answers[1], Err(StoreError::Conflict(_))),
            "{:?}",
            answers[1]
        );
        assert!(matches!(answers[2], Ok(Admission::Admitted { .. })));
        // The failed one holds nothing.
        assert_eq!(reserved(&store, &tenant).await, (1_000_000, 3 * 10_000));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_admission_whose_caller_left_holds_nothing() {
        let (_dir, store) = store().await;
        let tenant = funded(&store, 1_000_000).await;
        let turn = store.write_turn.clone().lock_owned().await;
        let u = usage(&tenant, "req-gone", "key_a", 10_000);
        let s = store.clone();
        let gone = tokio::spawn(async move { s.admit_usage(&u, false).await });
        let kept = usage(&tenant, "req-kept", "key_a", 10_000);
        let s = store.clone();
        let waiting = tokio::spawn(async move { s.admit_usage(&kept, false).await });
        queued(&store, 2).await;
        gone.abort();
        let _ = gone.await;
        drop(turn);
        assert!(matches!(
            waiting.await.unwrap().unwrap(),
            Admission::Admitted { .. }
        ));
        assert!(store
            .usage_event(&tenant, "req-gone")
            .await
            .unwrap()
            .is_none());
        assert_eq!(reserved(&store, &tenant).await, (1_000_000, 10_000));

        // Admitted, but nobody took the answer: the row is closed at once as rejected.
        let op = UsageWrite::Admit(
            usage(&tenant, "req-late", "key_a", 10_000),
            crate::usage::Postpaid::Never,
        );
        let turn = store.write_turn.clone().lock_owned().await;
        let committed = store
            .apply_usage_tx(std::slice::from_ref(&op))
            .await
            .unwrap();
        let (reply, gone) = oneshot::channel();
        drop(gone);
        let close = answer(
            std::slice::from_ref(&op),
            vec![reply],
            committed.into_iter().map(Ok).collect(),
        );
        assert_eq!(close.len(), 1);
        store.apply_usage_tx(&close).await.unwrap();
        drop(turn);
        let e = store
            .usage_event(&tenant, "req-late")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(e.status, UsageStatus::Rejected);
        assert_eq!(e.cost.micros(), 0);
        assert_eq!(reserved(&store, &tenant).await, (1_000_000, 10_000));
    }
}
