//! Usage events, exactly once per request, and the per-minute rollup they feed.
//!
//! A request's row is inserted `in_progress` at admission, in the same transaction as the
//! reservation on the tenant's prepaid account, and finalized by one conditional UPDATE
//! (`WHERE status = 'in_progress'`), so that however many paths try to finalize a request (the
//! normal end, a dropped stream, the orphan sweep of another replica), exactly one succeeds.
//! The finalizing transaction also settles the reservation, appends the ledger debit and adds
//! the event to `usage_minutes`. The same two transactions reserve and settle the request's
//! maximum cost on the spend caps that apply to it (`store::budgets`).
//!
//! These writes (`UsageWrite`) run through `apply_usage_writes`, alone in a transaction
//! (PostgreSQL) or with every other write waiting for SQLite's writer (`group_commit`); the
//! statements are the same, summed over the transaction's writes where they touch the same
//! rows.

use std::collections::BTreeMap;

use crate::ids::{KeyId, ProjectId, TenantId};
use sqlx::{Acquire as _, Row as _};

use super::budgets::{self, Charged, OverBudget};
use super::{is_unique_violation, Row, Store, StoreError, StoreResult};
use crate::money::Money;
use crate::secret::new_id;

/// Which family of endpoints a request belongs to (the usage API's `completions` and
/// `embeddings`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Completions,
    Embeddings,
}

impl Endpoint {
    pub fn as_str(self) -> &'static str {
        match self {
            Endpoint::Completions => "completions",
            Endpoint::Embeddings => "embeddings",
        }
    }
}

/// How a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsageStatus {
    InProgress,
    Completed,
    /// The client went away before the end; tokens generated until then are billed.
    Cancelled,
    /// The engine (or the gateway) failed the request.
    Failed,
    /// The gateway process died while the request ran; closed by the orphan sweep with the
    /// tokens last reported.
    Interrupted,
    /// Refused at admission (budget); nothing ran.
    Rejected,
}

impl UsageStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            UsageStatus::InProgress => "in_progress",
            UsageStatus::Completed => "completed",
            UsageStatus::Cancelled => "cancelled",
            UsageStatus::Failed => "failed",
            UsageStatus::Interrupted => "interrupted",
            UsageStatus::Rejected => "rejected",
        }
    }

    pub fn parse(s: &str) -> Option<UsageStatus> {
        use UsageStatus::*;
        [
            InProgress,
            Completed,
            Cancelled,
            Failed,
            Interrupted,
            Rejected,
        ]
        .into_iter()
        .find(|v| v.as_str() == s)
    }
}

/// The row written at admission.
#[derive(Debug, Clone)]
pub struct NewUsage {
    pub request_id: String,
    pub http_request_id: Option<String>,
    pub tenant_id: TenantId,
    pub project_id: Option<ProjectId>,
    pub api_key_id: Option<KeyId>,
    pub endpoint: Endpoint,
    pub model: String,
    pub prompt_tokens: u64,
    /// The most the request can cost; held on a prepaid account until the end.
    pub max_cost: Money,
    pub instance_id: String,
    pub started_ms: i64,
    /// The catalog price the request is billed at (`store::prices`).
    pub price_id: Option<String>,
}

/// What admission decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// Row written; `reserved` is held on the prepaid account (zero for postpaid tenants).
    Admitted { reserved: Money },
    /// The prepaid balance minus what in-flight requests hold is less than the request's
    /// maximum cost. Nothing was written.
    Insufficient { available: Money },
    /// The tenant has no prepaid account and postpaid use was not allowed. Nothing written.
    NoAccount,
    /// A spend cap (organization, project or key) cannot hold the request's maximum cost.
    /// Nothing was written.
    OverBudget(OverBudget),
}

/// When a tenant without a prepaid account is admitted postpaid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Postpaid {
    Always,
    Never,
    /// On the enterprise plan, with no invoice past due.
    EnterpriseInGoodStanding,
}

/// The end of a request.
#[derive(Debug, Clone)]
pub struct FinalUsage {
    pub status: UsageStatus,
    pub prompt_tokens: u64,
    pub cached_tokens: u64,
    pub completion_tokens: u64,
    pub ttft_ms: Option<i64>,
    pub latency_ms: Option<i64>,
    /// Clamped to the reservation on prepaid accounts.
    pub cost: Money,
    pub finished_ms: i64,
}

/// A stored usage event.
#[derive(Debug, Clone)]
pub struct UsageEvent {
    pub request_id: String,
    pub http_request_id: Option<String>,
    pub tenant_id: TenantId,
    pub project_id: Option<ProjectId>,
    pub api_key_id: Option<KeyId>,
    pub endpoint: String,
    pub model: String,
    pub status: UsageStatus,
    pub prompt_tokens: u64,
    pub cached_tokens: u64,
    pub completion_tokens: u64,
    pub ttft_ms: Option<i64>,
    pub latency_ms: Option<i64>,
    pub reserved: Money,
    pub cost: Money,
    pub instance_id: String,
    pub started_ms: i64,
    pub heartbeat_ms: i64,
    pub finished_ms: Option<i64>,
    /// The catalog price the request was admitted at.
    pub price_id: Option<String>,
}

const COLUMNS: &str = "request_id, http_request_id, tenant_id, project_id, api_key_id, endpoint, \
     model, status, prompt_tokens, cached_tokens, completion_tokens, ttft_ms, latency_ms, \
     reserved_micros, cost_micros, instance_id, started_ms, heartbeat_ms, finished_ms, price_id";

fn count(row: &Row, column: &str) -> StoreResult<u64> {
    let v: i64 = row.try_get(column)?;
    Ok(v.max(0) as u64)
}

fn from_row(row: &Row) -> StoreResult<UsageEvent> {
    let status: String = row.try_get("status")?;
    Ok(UsageEvent {
        request_id: row.try_get("request_id")?,
        http_request_id: row.try_get("http_request_id")?,
        tenant_id: row.try_get("tenant_id")?,
        project_id: row.try_get("project_id")?,
        api_key_id: row.try_get("api_key_id")?,
        endpoint: row.try_get("endpoint")?,
        model: row.try_get("model")?,
        status: UsageStatus::parse(&status).unwrap_or(UsageStatus::Failed),
        prompt_tokens: count(row, "prompt_tokens")?,
        cached_tokens: count(row, "cached_tokens")?,
        completion_tokens: count(row, "completion_tokens")?,
        ttft_ms: row.try_get("ttft_ms")?,
        latency_ms: row.try_get("latency_ms")?,
        reserved: Money::from_micros(row.try_get("reserved_micros")?),
        cost: Money::from_micros(row.try_get("cost_micros")?),
        instance_id: row.try_get("instance_id")?,
        started_ms: row.try_get("started_ms")?,
        heartbeat_ms: row.try_get("heartbeat_ms")?,
        finished_ms: row.try_get("finished_ms")?,
        price_id: row.try_get("price_id")?,
    })
}

/// The minute a time falls in, as the rollup keys it.
pub fn minute_of(ms: i64) -> i64 {
    ms.div_euclid(60_000) * 60_000
}

impl Store {
    /// Reserves `u.max_cost` on the tenant's prepaid account (one atomic conditional UPDATE:
    /// concurrent admissions cannot hold more than the balance) and on every spend cap that
    /// applies (the same, one UPDATE per cap), and writes the in-flight row, in one
    /// transaction. Without a prepaid account the row is written with nothing reserved
    /// when `postpaid_ok`, else nothing is written.
    pub async fn admit_usage(&self, u: &NewUsage, postpaid_ok: bool) -> StoreResult<Admission> {
        let postpaid = if postpaid_ok {
            Postpaid::Always
        } else {
            Postpaid::Never
        };
        self.write_usage(UsageWrite::Admit(u.clone(), postpaid))
            .await
            .map(UsageWritten::admission)
    }

    /// [`Store::admit_usage`] for a tenant billed as its plan says: postpaid (nothing
    /// reserved) when it has no prepaid account, is on the enterprise plan and its last
    /// invoice is not past due, decided in the same transaction. `NoAccount` otherwise.
    pub async fn admit_usage_as_billed(&self, u: &NewUsage) -> StoreResult<Admission> {
        self.write_usage(UsageWrite::Admit(
            u.clone(),
            Postpaid::EnterpriseInGoodStanding,
        ))
        .await
        .map(UsageWritten::admission)
    }

    /// Records a request refused at admission (nothing reserved, nothing billed).
    pub async fn record_rejected_usage(&self, u: &NewUsage) -> StoreResult<()> {
        self.write_usage(UsageWrite::Rejected(u.clone())).await?;
        Ok(())
    }

    /// Finalizes an in-flight row, settles its reservation (debit the cost, release the
    /// rest), appends the ledger's usage entry and adds it to the rollup, in one transaction.
    /// `Ok(false)` when the row was finalized already (or never admitted): nothing changes.
    pub async fn finalize_usage(&self, request_id: &str, f: &FinalUsage) -> StoreResult<bool> {
        self.write_usage(UsageWrite::Finalize(request_id.to_owned(), f.clone()))
            .await
            .map(UsageWritten::finalized)
    }

    /// Runs one metering write: on SQLite with the others waiting at the same time, in one
    /// transaction (`group_commit`); on PostgreSQL, whose row locks let writers run side by
    /// side, in a transaction of its own.
    async fn write_usage(&self, op: UsageWrite) -> StoreResult<UsageWritten> {
        match self.backend() {
            super::Backend::Sqlite => self.group_write(op).await,
            super::Backend::Postgres => self
                .apply_usage_tx(std::slice::from_ref(&op))
                .await
                .map(one),
        }
    }

    /// One transaction of `ops` (on SQLite the caller holds the writer's turn).
    pub(crate) async fn apply_usage_tx(
        &self,
        ops: &[UsageWrite],
    ) -> StoreResult<Vec<UsageWritten>> {
        let mut tx = self.begin_in_turn().await?;
        let written = apply_usage_writes(&mut tx, ops).await?;
        tx.commit().await?;
        Ok(written)
    }
}

/// The only result of a one-write batch.
pub(crate) fn one(mut written: Vec<UsageWritten>) -> UsageWritten {
    written
        .pop()
        .expect("apply_usage_writes answers every write")
}

/// One metering write: a request's admission, its refusal or its end.
#[derive(Debug, Clone)]
pub(crate) enum UsageWrite {
    Admit(NewUsage, Postpaid),
    Rejected(NewUsage),
    Finalize(String, FinalUsage),
}

impl UsageWrite {
    /// An admission's result that nobody received: the row it wrote, to be closed.
    pub(crate) fn unclaimed(&self, written: &UsageWritten) -> Option<UsageWrite> {
        match (self, written) {
            (UsageWrite::Admit(u, _), UsageWritten::Admission(Admission::Admitted { .. })) => {
                Some(UsageWrite::Finalize(
                    u.request_id.clone(),
                    FinalUsage {
                        status: UsageStatus::Rejected,
                        prompt_tokens: u.prompt_tokens,
                        cached_tokens: 0,
                        completion_tokens: 0,
                        ttft_ms: None,
                        latency_ms: None,
                        cost: Money::ZERO,
                        finished_ms: super::now_ms(),
                    },
                ))
            }
            _ => None,
        }
    }

    /// An admission: worth running only while its caller waits.
    pub(crate) fn is_admission(&self) -> bool {
        matches!(self, UsageWrite::Admit(..))
    }
}

/// What a [`UsageWrite`] did.
#[derive(Debug)]
pub(crate) enum UsageWritten {
    Admission(Admission),
    Recorded,
    Finalized(bool),
}

impl UsageWritten {
    fn admission(self) -> Admission {
        match self {
            UsageWritten::Admission(a) => a,
            other => unreachable!("an admission answered {other:?}"),
        }
    }

    fn finalized(self) -> bool {
        match self {
            UsageWritten::Finalized(done) => done,
            other => unreachable!("a finalization answered {other:?}"),
        }
    }
}

/// Runs `ops` in the transaction `tx` and answers each, in order. Finalizations run first:
/// their credit settlements (one UPDATE per tenant), ledger entries (one INSERT) and rollup
/// additions (one upsert per minute and key) are summed and written together, before the
/// admissions see the accounts; the admissions' rows are then inserted together. Concurrent
/// requests have no order among themselves, so none is lost by this one.
///
/// An error leaves the transaction to be rolled back; a refused admission writes nothing
/// (what it reserved before a spend cap refused it is released in the transaction).
async fn apply_usage_writes(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    ops: &[UsageWrite],
) -> StoreResult<Vec<UsageWritten>> {
    let mut written: Vec<Option<UsageWritten>> = ops.iter().map(|_| None).collect();
    let mut ends = Ends::default();
    let (indices, finals): (Vec<usize>, Vec<(&str, &FinalUsage)>) = ops
        .iter()
        .enumerate()
        .filter_map(|(i, op)| match op {
            UsageWrite::Finalize(request_id, f) => Some((i, (request_id.as_str(), f))),
            _ => None,
        })
        .unzip();
    let done = finalize_together(tx, &finals, &mut ends).await?;
    for (i, done) in indices.into_iter().zip(done) {
        written[i] = Some(UsageWritten::Finalized(done));
    }
    ends.write(tx).await?;
    // Admissions by tenant, project, key and billing rule, in their order within each.
    type Group<'o> = (
        &'o TenantId,
        Option<&'o ProjectId>,
        Option<&'o KeyId>,
        Postpaid,
    );
    let mut groups: BTreeMap<Group<'_>, Vec<(usize, &NewUsage)>> = BTreeMap::new();
    for (i, op) in ops.iter().enumerate() {
        if let UsageWrite::Admit(u, postpaid) = op {
            let key = (
                &u.tenant_id,
                u.project_id.as_ref(),
                u.api_key_id.as_ref(),
                *postpaid,
            );
            groups.entry(key).or_default().push((i, u));
        }
    }
    let mut rows = Vec::new();
    for ((.., postpaid), members) in groups {
        let (indices, group): (Vec<usize>, Vec<&NewUsage>) = members.into_iter().unzip();
        let admitted = admit_together(tx, &group, postpaid).await?;
        for (i, (admission, row)) in indices.into_iter().zip(admitted) {
            rows.extend(row);
            written[i] = Some(UsageWritten::Admission(admission));
        }
    }
    for (i, op) in ops.iter().enumerate() {
        if let UsageWrite::Rejected(u) = op {
            rows.push(NewRow {
                u,
                status: UsageStatus::Rejected,
                reserved: Money::ZERO,
                budget_held: Money::ZERO,
                budget_scopes: String::new(),
            });
            written[i] = Some(UsageWritten::Recorded);
        }
    }
    insert_rows(tx, &rows).await?;
    Ok(written.into_iter().flatten().collect())
}

/// Reserves an admission's maximum cost in `tx`; the row to insert when admitted.
async fn admit_in<'a>(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    u: &'a NewUsage,
    postpaid: Postpaid,
) -> StoreResult<(Admission, Option<NewRow<'a>>)> {
    let (held, caps) = match reserve_credit(tx, u, u.max_cost, u.started_ms).await? {
        Some(caps) => (u.max_cost, caps),
        None => match unreserved(tx, u, postpaid).await? {
            Unreserved::Short(available) => {
                return Ok((Admission::Insufficient { available }, None))
            }
            Unreserved::NoAccount => return Ok((Admission::NoAccount, None)),
            Unreserved::Postpaid { caps } => (Money::ZERO, caps),
        },
    };
    let scopes = if caps == 0 {
        Vec::new()
    } else {
        // In a savepoint: a cap that refuses undoes what the caps before it reserved.
        let mut on_caps = tx.begin().await?;
        match budgets::reserve(&mut on_caps, &charged(u), u.max_cost, u.started_ms).await? {
            Ok(scopes) => {
                on_caps.commit().await?;
                scopes
            }
            Err(over) => {
                on_caps.rollback().await?;
                release_credit(tx, &u.tenant_id, held).await?;
                return Ok((Admission::OverBudget(over), None));
            }
        }
    };
    let mut row = NewRow::admitted(u, held);
    if !scopes.is_empty() {
        row.budget_held = u.max_cost;
        row.budget_scopes = budgets::scopes_text(&scopes);
    }
    Ok((Admission::Admitted { reserved: held }, Some(row)))
}

/// Admissions of one tenant, project, key and billing rule, reserved together: one UPDATE
/// for all when the balance holds them all and no spend cap applies (or, without an
/// account, one read), else each alone ([`admit_in`]).
async fn admit_together<'a>(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    group: &[&'a NewUsage],
    postpaid: Postpaid,
) -> StoreResult<Vec<(Admission, Option<NewRow<'a>>)>> {
    let [first, _, ..] = group else {
        return admit_each(tx, group, postpaid).await;
    };
    let total = group
        .iter()
        .fold(Money::ZERO, |sum, u| sum.saturating_add(u.max_cost));
    let at_ms = group.iter().map(|u| u.started_ms).max().unwrap_or(0);
    // When one answer serves them all: whether each holds its maximum (prepaid) or nothing
    // (postpaid). `None`: each in turn.
    let prepaid = match reserve_credit(tx, first, total, at_ms).await? {
        Some(0) => Some(true),
        Some(_) => {
            // Spend caps apply: each admission reserves on them in turn.
            release_credit(tx, &first.tenant_id, total).await?;
            None
        }
        None => match unreserved(tx, first, postpaid).await? {
            // Some may fit.
            Unreserved::Short(_) => None,
            Unreserved::NoAccount => {
                return Ok(group.iter().map(|_| (Admission::NoAccount, None)).collect())
            }
            Unreserved::Postpaid { caps: 0 } => Some(false),
            Unreserved::Postpaid { .. } => None,
        },
    };
    let Some(prepaid) = prepaid else {
        return admit_each(tx, group, postpaid).await;
    };
    Ok(group
        .iter()
        .map(|u| {
            let reserved = if prepaid { u.max_cost } else { Money::ZERO };
            let row = NewRow::admitted(u, reserved);
            (Admission::Admitted { reserved }, Some(row))
        })
        .collect())
}

/// [`admit_in`] for each of `group`, in order.
async fn admit_each<'a>(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    group: &[&'a NewUsage],
    postpaid: Postpaid,
) -> StoreResult<Vec<(Admission, Option<NewRow<'a>>)>> {
    let mut each = Vec::with_capacity(group.len());
    for u in group {
        each.push(admit_in(tx, u, postpaid).await?);
    }
    Ok(each)
}

/// Reserves `amount` on `u`'s tenant's prepaid account when its available balance covers it;
/// then the number of spend caps on `u`'s organization, project and key. `None`: nothing
/// reserved. A write first, so that SQLite takes the write lock at once (no
/// read-then-upgrade); it counts the caps so that a request without any skips their read.
async fn reserve_credit(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    u: &NewUsage,
    amount: Money,
    at_ms: i64,
) -> StoreResult<Option<i64>> {
    let row = sqlx::query(&format!(
        "UPDATE credit_accounts SET reserved_micros = reserved_micros + $1, updated_ms = $2 \
         WHERE tenant_id = $3 AND balance_micros - reserved_micros >= $1 \
         RETURNING {} AS caps",
        budgets::caps_count("$3", "$4", "$5")
    ))
    .bind(amount.micros())
    .bind(at_ms)
    .bind(&u.tenant_id)
    .bind(u.project_id.as_ref().map_or("", ProjectId::as_str))
    .bind(u.api_key_id.as_ref().map_or("", KeyId::as_str))
    .fetch_optional(&mut **tx)
    .await?;
    row.map(|row| row.try_get("caps"))
        .transpose()
        .map_err(Into::into)
}

/// Gives back `amount` reserved by [`reserve_credit`] in the same transaction.
async fn release_credit(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    tenant_id: &TenantId,
    amount: Money,
) -> StoreResult<()> {
    if amount > Money::ZERO {
        sqlx::query(
            "UPDATE credit_accounts SET reserved_micros = reserved_micros - $1 \
             WHERE tenant_id = $2",
        )
        .bind(amount.micros())
        .bind(tenant_id)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// Why nothing was reserved for `u`.
enum Unreserved {
    /// The available balance is short of the amount.
    Short(Money),
    /// No prepaid account, and not billed postpaid.
    NoAccount,
    /// No prepaid account, billed postpaid; `caps` spend caps apply.
    Postpaid { caps: i64 },
}

/// One read says why nothing was reserved (the balance is short, or there is no account)
/// and, without an account, whether the tenant is billed postpaid and which caps apply.
async fn unreserved(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    u: &NewUsage,
    postpaid: Postpaid,
) -> StoreResult<Unreserved> {
    let row = sqlx::query(&format!(
        "SELECT (SELECT balance_micros - reserved_micros FROM credit_accounts \
             WHERE tenant_id = $1) AS available, \
         (SELECT COUNT(*) FROM tenants WHERE id = $1 AND plan = 'enterprise' \
             AND billing_status <> 'past_due') AS enterprise, \
         {} AS caps",
        budgets::caps_count("$1", "$2", "$3")
    ))
    .bind(&u.tenant_id)
    .bind(u.project_id.as_ref().map_or("", ProjectId::as_str))
    .bind(u.api_key_id.as_ref().map_or("", KeyId::as_str))
    .fetch_one(&mut **tx)
    .await?;
    if let Some(available) = row.try_get::<Option<i64>, _>("available")? {
        return Ok(Unreserved::Short(Money::from_micros(available.max(0))));
    }
    let postpaid_ok = match postpaid {
        Postpaid::Always => true,
        Postpaid::Never => false,
        Postpaid::EnterpriseInGoodStanding => row.try_get::<i64, _>("enterprise")? > 0,
    };
    Ok(if postpaid_ok {
        Unreserved::Postpaid {
            caps: row.try_get("caps")?,
        }
    } else {
        Unreserved::NoAccount
    })
}

/// Closes in-flight rows in `tx`, [`ROWS_PER_INSERT`] per UPDATE, and settles their spend
/// caps; what they owe the prepaid accounts, the ledger and the rollup goes to `ends`. Each
/// answer is `false` when the row was finalized already (or never admitted, or finalized by
/// an earlier write of the same transaction): nothing changes for it.
async fn finalize_together<'a>(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    finals: &[(&'a str, &FinalUsage)],
    ends: &mut Ends<'a>,
) -> StoreResult<Vec<bool>> {
    let mut done = vec![false; finals.len()];
    // The first write for a request is the one that may count.
    let mut firsts: Vec<usize> = Vec::with_capacity(finals.len());
    let mut seen = std::collections::HashSet::new();
    for (i, (request_id, _)) in finals.iter().enumerate() {
        if seen.insert(*request_id) {
            firsts.push(i);
        }
    }
    for chunk in firsts.chunks(ROWS_PER_INSERT) {
        let sql = format!(
            "UPDATE usage_events SET status = v.column2, prompt_tokens = v.column3, \
             cached_tokens = v.column4, completion_tokens = v.column5, ttft_ms = v.column6, \
             latency_ms = v.column7, \
             cost_micros = CASE WHEN reserved_micros > 0 AND v.column8 > reserved_micros \
                 THEN reserved_micros ELSE v.column8 END, \
             finished_ms = v.column9, heartbeat_ms = v.column9 \
             FROM (VALUES {}) AS v \
             WHERE usage_events.request_id = v.column1 AND usage_events.status = 'in_progress' \
             RETURNING usage_events.request_id AS request_id, tenant_id, project_id, \
                 api_key_id, endpoint, model, reserved_micros, cost_micros, started_ms, \
                 budget_reserved_micros, budget_scopes, {} AS caps, \
                 (SELECT stripe_customer_id FROM tenants WHERE id = usage_events.tenant_id \
                     AND plan = 'enterprise') AS stripe_customer_id",
            values(chunk.len(), 9, |p| format!("({})", p.join(", "))),
            budgets::caps_count(
                "usage_events.tenant_id",
                "COALESCE(usage_events.project_id, '')",
                "COALESCE(usage_events.api_key_id, '')"
            )
        );
        let mut update = sqlx::query(&sql);
        for &i in chunk {
            let (request_id, f) = finals[i];
            update = update
                .bind(request_id)
                .bind(f.status.as_str())
                .bind(f.prompt_tokens as i64)
                .bind(f.cached_tokens.min(f.prompt_tokens) as i64)
                .bind(f.completion_tokens as i64)
                .bind(f.ttft_ms)
                .bind(f.latency_ms)
                .bind(f.cost.micros())
                .bind(f.finished_ms);
        }
        for row in update.fetch_all(&mut **tx).await? {
            let request_id: String = row.try_get("request_id")?;
            let Some(&i) = chunk.iter().find(|&&i| finals[i].0 == request_id) else {
                continue;
            };
            done[i] = true;
            let (request_id, f) = finals[i];
            settle_end(tx, &row, request_id, f, ends).await?;
        }
    }
    Ok(done)
}

/// What one closed row (`row`, as the finalizing UPDATE returned it) owes: its spend caps are
/// settled in `tx`, the rest goes to `ends`.
async fn settle_end<'a>(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    row: &Row,
    request_id: &'a str,
    f: &FinalUsage,
    ends: &mut Ends<'a>,
) -> StoreResult<()> {
    let tenant_id: TenantId = row.try_get("tenant_id")?;
    let project_id: Option<ProjectId> = row.try_get("project_id")?;
    let api_key_id: Option<KeyId> = row.try_get("api_key_id")?;
    let reserved: i64 = row.try_get("reserved_micros")?;
    let cost: i64 = row.try_get("cost_micros")?;
    let caps: i64 = row.try_get("caps")?;
    if caps > 0 {
        let budget_held: i64 = row.try_get("budget_reserved_micros")?;
        let budget_scopes: String = row.try_get("budget_scopes")?;
        budgets::settle(
            tx,
            &Charged {
                tenant_id: &tenant_id,
                project_id: project_id.as_ref(),
                api_key_id: api_key_id.as_ref(),
            },
            &budget_scopes,
            Money::from_micros(budget_held),
            Money::from_micros(cost),
            f.finished_ms,
        )
        .await?;
    }
    if reserved > 0 {
        // A prepaid reservation becomes a debit of the cost (and a ledger entry), the rest is
        // released.
        let s = ends.credits.entry(tenant_id.clone()).or_default();
        s.cost += cost;
        s.reserved += reserved;
        s.updated_ms = s.updated_ms.max(f.finished_ms);
        if cost > 0 {
            s.ledger.push((request_id, cost, f.finished_ms));
        }
    } else if cost > 0 {
        // A postpaid request of an organization billed through Stripe owes one meter event
        // (the outbox `billing::stripe`'s reporter sends), written with the usage itself; a
        // postpaid request is otherwise billed from the events by invoices.
        let customer: Option<String> = row.try_get("stripe_customer_id")?;
        if let Some(customer) = customer {
            ends.postpaid
                .entry((tenant_id.clone(), customer))
                .or_default()
                .push((request_id, cost, f.finished_ms));
        }
    }
    if f.status != UsageStatus::Rejected {
        // Nothing ran for a rejected request: nothing is counted.
        let started_ms: i64 = row.try_get("started_ms")?;
        let key = RollupKey {
            tenant_id,
            endpoint: row.try_get("endpoint")?,
            minute_ms: minute_of(started_ms),
            project_id: project_id.unwrap_or_default(),
            api_key_id: api_key_id.unwrap_or_default(),
            model: row.try_get("model")?,
        };
        let sums = ends.rollup.entry(key).or_default();
        sums.requests += 1;
        sums.input_tokens += f.prompt_tokens as i64;
        sums.cached_tokens += f.cached_tokens.min(f.prompt_tokens) as i64;
        sums.output_tokens += f.completion_tokens as i64;
        sums.cost += cost;
    }
    Ok(())
}

/// What finalized requests owe, summed: per tenant, the prepaid settlement and its ledger
/// entries; per minute and key, the rollup's additions. Ordered maps: every transaction
/// takes the rows' locks in one order.
#[derive(Default)]
struct Ends<'a> {
    credits: BTreeMap<TenantId, Settlement<'a>>,
    /// `(request_id, cost, at_ms)` of postpaid requests that cost something, per tenant
    /// billed through Stripe (an enterprise organization with a Stripe customer).
    postpaid: BTreeMap<(TenantId, String), Debits<'a>>,
    rollup: BTreeMap<RollupKey, RollupSums>,
}

/// `(request_id, cost, at_ms)` of requests that cost something.
type Debits<'a> = Vec<(&'a str, i64, i64)>;

#[derive(Default)]
struct Settlement<'a> {
    cost: i64,
    reserved: i64,
    updated_ms: i64,
    /// Each request that cost something.
    ledger: Debits<'a>,
}

#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct RollupKey {
    tenant_id: TenantId,
    endpoint: String,
    minute_ms: i64,
    project_id: ProjectId,
    api_key_id: KeyId,
    model: String,
}

#[derive(Default)]
struct RollupSums {
    requests: i64,
    input_tokens: i64,
    cached_tokens: i64,
    output_tokens: i64,
    cost: i64,
}

/// Rows per multi-row INSERT.
const ROWS_PER_INSERT: usize = 32;

impl Ends<'_> {
    async fn write(self, tx: &mut sqlx::Transaction<'_, sqlx::Any>) -> StoreResult<()> {
        for (tenant_id, s) in &self.credits {
            let settled = sqlx::query(
                "UPDATE credit_accounts SET balance_micros = balance_micros - $1, \
                 reserved_micros = reserved_micros - $2, updated_ms = $3 WHERE tenant_id = $4",
            )
            .bind(s.cost)
            .bind(s.reserved)
            .bind(s.updated_ms)
            .bind(tenant_id)
            .execute(&mut **tx)
            .await?
            .rows_affected()
                == 1;
            if !settled {
                continue;
            }
            for entries in s.ledger.chunks(ROWS_PER_INSERT) {
                let sql = format!(
                    "INSERT INTO credit_ledger (id, tenant_id, kind, amount_micros, request_id, \
                     note, created_ms) VALUES {}",
                    values(entries.len(), 5, |p| format!(
                        "({}, {}, 'usage', {}, {}, NULL, {})",
                        p[0], p[1], p[2], p[3], p[4]
                    ))
                );
                let mut insert = sqlx::query(&sql);
                for (request_id, cost, at_ms) in entries {
                    insert = insert
                        .bind(new_id("cred"))
                        .bind(tenant_id)
                        .bind(-cost)
                        .bind(*request_id)
                        .bind(*at_ms);
                }
                insert.execute(&mut **tx).await?;
            }
        }
        for ((tenant_id, customer), events) in &self.postpaid {
            for events in events.chunks(ROWS_PER_INSERT) {
                let sql = format!(
                    "INSERT INTO stripe_meter_outbox (request_id, tenant_id, customer_id, value, \
                     event_ms) VALUES {} ON CONFLICT (request_id) DO NOTHING",
                    values(events.len(), 5, |p| format!(
                        "({}, {}, {}, {}, {})",
                        p[0], p[1], p[2], p[3], p[4]
                    ))
                );
                let mut insert = sqlx::query(&sql);
                for (request_id, cost, at_ms) in events {
                    insert = insert
                        .bind(*request_id)
                        .bind(tenant_id)
                        .bind(customer.as_str())
                        .bind(*cost)
                        .bind(*at_ms);
                }
                insert.execute(&mut **tx).await?;
            }
        }
        for (key, sums) in &self.rollup {
            sqlx::query(
                "INSERT INTO usage_minutes (tenant_id, endpoint, minute_ms, project_id, \
                 api_key_id, model, requests, input_tokens, cached_tokens, output_tokens, \
                 cost_micros) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
                 ON CONFLICT (tenant_id, endpoint, minute_ms, project_id, api_key_id, model) \
                 DO UPDATE SET requests = usage_minutes.requests + excluded.requests, \
                     input_tokens = usage_minutes.input_tokens + excluded.input_tokens, \
                     cached_tokens = usage_minutes.cached_tokens + excluded.cached_tokens, \
                     output_tokens = usage_minutes.output_tokens + excluded.output_tokens, \
                     cost_micros = usage_minutes.cost_micros + excluded.cost_micros",
            )
            .bind(&key.tenant_id)
            .bind(&key.endpoint)
            .bind(key.minute_ms)
            .bind(&key.project_id)
            .bind(&key.api_key_id)
            .bind(&key.model)
            .bind(sums.requests)
            .bind(sums.input_tokens)
            .bind(sums.cached_tokens)
            .bind(sums.output_tokens)
            .bind(sums.cost)
            .execute(&mut **tx)
            .await?;
        }
        Ok(())
    }
}

/// `rows` groups of `per_row` numbered placeholders (`$1`, `$2`, ...), each formatted by
/// `row`, joined by commas.
fn values(rows: usize, per_row: usize, row: impl Fn(&[String]) -> String) -> String {
    (0..rows)
        .map(|r| {
            let p: Vec<String> = (1..=per_row)
                .map(|c| format!("${}", r * per_row + c))
                .collect();
            row(&p)
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// A usage row to insert: an admitted request's (`in_progress`) or a refused one's.
struct NewRow<'a> {
    u: &'a NewUsage,
    status: UsageStatus,
    reserved: Money,
    budget_held: Money,
    budget_scopes: String,
}

impl<'a> NewRow<'a> {
    /// An admitted request's row, `reserved` held on its account, nothing on spend caps.
    fn admitted(u: &'a NewUsage, reserved: Money) -> NewRow<'a> {
        NewRow {
            u,
            status: UsageStatus::InProgress,
            reserved,
            budget_held: Money::ZERO,
            budget_scopes: String::new(),
        }
    }
}

fn charged(u: &NewUsage) -> Charged<'_> {
    Charged {
        tenant_id: &u.tenant_id,
        project_id: u.project_id.as_ref(),
        api_key_id: u.api_key_id.as_ref(),
    }
}

/// Inserts usage rows, [`ROWS_PER_INSERT`] per statement.
async fn insert_rows(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    rows: &[NewRow<'_>],
) -> StoreResult<()> {
    for chunk in rows.chunks(ROWS_PER_INSERT) {
        let sql =
            format!(
                "INSERT INTO usage_events (request_id, http_request_id, tenant_id, project_id, \
             api_key_id, endpoint, model, status, prompt_tokens, cached_tokens, \
             completion_tokens, ttft_ms, latency_ms, reserved_micros, cost_micros, instance_id, \
             started_ms, heartbeat_ms, finished_ms, budget_reserved_micros, budget_scopes, \
             price_id) VALUES {}",
                values(chunk.len(), 16, |p| format!(
                "({}, {}, {}, {}, {}, {}, {}, {}, {}, 0, 0, NULL, NULL, {}, 0, {}, {}, {}, {}, \
                 {}, {}, {})",
                p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8], p[9], p[10], p[11], p[11],
                p[12], p[13], p[14], p[15]
            ))
            );
        let mut insert = sqlx::query(&sql);
        for r in chunk {
            let u = r.u;
            let finished = (r.status != UsageStatus::InProgress).then_some(u.started_ms);
            insert = insert
                .bind(&u.request_id)
                .bind(u.http_request_id.as_deref())
                .bind(&u.tenant_id)
                .bind(u.project_id.as_deref())
                .bind(u.api_key_id.as_deref())
                .bind(u.endpoint.as_str())
                .bind(&u.model)
                .bind(r.status.as_str())
                .bind(u.prompt_tokens as i64)
                .bind(r.reserved.micros())
                .bind(&u.instance_id)
                .bind(u.started_ms)
                .bind(finished)
                .bind(r.budget_held.micros())
                .bind(r.budget_scopes.as_str())
                .bind(u.price_id.as_deref());
        }
        insert.execute(&mut **tx).await.map_err(|e| {
            if is_unique_violation(&e) {
                let ids: Vec<&str> = chunk.iter().map(|r| r.u.request_id.as_str()).collect();
                StoreError::Conflict(format!(
                    "A request with id '{}' exists already.",
                    ids.join("' or '")
                ))
            } else {
                StoreError::Database(e)
            }
        })?;
    }
    Ok(())
}

impl Store {
    /// Writes the tokens an in-flight request has generated so far (what the orphan sweep
    /// bills if the process dies).
    pub async fn usage_progress(
        &self,
        request_id: &str,
        completion_tokens: u64,
        ttft_ms: Option<i64>,
        now_ms: i64,
    ) -> StoreResult<()> {
        sqlx::query(
            "UPDATE usage_events SET completion_tokens = $1, ttft_ms = $2, heartbeat_ms = $3 \
             WHERE request_id = $4 AND status = 'in_progress'",
        )
        .bind(completion_tokens as i64)
        .bind(ttft_ms)
        .bind(now_ms)
        .bind(request_id)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// In-flight rows whose heartbeat is older than `stale_before_ms`, or (when given) that
    /// belong to another instance than `live_instance` whatever their heartbeat (an embedded
    /// SQLite database has one process: at start every other instance's row is an orphan).
    pub async fn orphaned_usage(
        &self,
        stale_before_ms: i64,
        all_but_instance: Option<&str>,
        limit: i64,
    ) -> StoreResult<Vec<UsageEvent>> {
        let rows = match all_but_instance {
            Some(me) => {
                sqlx::query(&format!(
                    "SELECT {COLUMNS} FROM usage_events WHERE status = 'in_progress' \
                     AND (heartbeat_ms < $1 OR instance_id <> $2) ORDER BY heartbeat_ms LIMIT $3"
                ))
                .bind(stale_before_ms)
                .bind(me)
                .bind(limit)
                .fetch_all(self.pool())
                .await?
            }
            None => {
                sqlx::query(&format!(
                    "SELECT {COLUMNS} FROM usage_events WHERE status = 'in_progress' \
                     AND heartbeat_ms < $1 ORDER BY heartbeat_ms LIMIT $2"
                ))
                .bind(stale_before_ms)
                .bind(limit)
                .fetch_all(self.pool())
                .await?
            }
        };
        rows.iter().map(from_row).collect()
    }

    /// One usage event of a tenant.
    pub async fn usage_event(
        &self,
        tenant_id: &TenantId,
        request_id: &str,
    ) -> StoreResult<Option<UsageEvent>> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM usage_events WHERE request_id = $1 AND tenant_id = $2"
        ))
        .bind(request_id)
        .bind(tenant_id)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// A tenant's usage events started in `[start_ms, end_ms)`, oldest first.
    pub async fn usage_events(
        &self,
        tenant_id: &TenantId,
        start_ms: i64,
        end_ms: i64,
    ) -> StoreResult<Vec<UsageEvent>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM usage_events WHERE tenant_id = $1 AND started_ms >= $2 \
             AND started_ms < $3 ORDER BY started_ms, request_id"
        ))
        .bind(tenant_id)
        .bind(start_ms)
        .bind(end_ms)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(from_row).collect()
    }
}

/// A usage query over the rollup: one endpoint of one tenant, buckets of `width_ms` counted
/// from `start_ms` (minute-aligned), minutes in `[from_ms, end_ms)`, optional filters and
/// grouping.
#[derive(Debug, Clone, Default)]
pub struct UsageQuery {
    pub tenant_id: TenantId,
    /// `None`: every endpoint (costs).
    pub endpoint: Option<Endpoint>,
    pub start_ms: i64,
    pub from_ms: i64,
    pub end_ms: i64,
    pub width_ms: i64,
    pub project_ids: Vec<String>,
    pub api_key_ids: Vec<String>,
    pub models: Vec<String>,
    pub group_by_project: bool,
    pub group_by_key: bool,
    pub group_by_model: bool,
}

/// The sums of one bucket and group.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UsageTotals {
    /// Index of the bucket from the query's start.
    pub bucket: i64,
    pub project_id: Option<String>,
    pub api_key_id: Option<String>,
    pub model: Option<String>,
    pub requests: i64,
    pub input_tokens: i64,
    pub cached_tokens: i64,
    pub output_tokens: i64,
    pub cost: Money,
}

impl Store {
    /// Sums the per-minute rollup into buckets (never the raw events). The rollup's primary
    /// key `(tenant_id, endpoint, minute_ms, ...)` serves the range.
    pub async fn usage_totals(&self, q: &UsageQuery) -> StoreResult<Vec<UsageTotals>> {
        let mut sql = String::from("SELECT (minute_ms - $1) / $2 AS bucket");
        let mut group = String::from("bucket");
        for (on, column) in [
            (q.group_by_project, "project_id"),
            (q.group_by_key, "api_key_id"),
            (q.group_by_model, "model"),
        ] {
            if on {
                sql.push_str(&format!(", {column}"));
                group.push_str(&format!(", {column}"));
            }
        }
        sql.push_str(
            ", CAST(SUM(requests) AS BIGINT) AS requests, \
             CAST(SUM(input_tokens) AS BIGINT) AS input_tokens, \
             CAST(SUM(cached_tokens) AS BIGINT) AS cached_tokens, \
             CAST(SUM(output_tokens) AS BIGINT) AS output_tokens, \
             CAST(SUM(cost_micros) AS BIGINT) AS cost_micros \
             FROM usage_minutes WHERE tenant_id = $3 AND minute_ms >= $4 AND minute_ms < $5",
        );
        let mut binds: Vec<String> = Vec::new();
        if let Some(endpoint) = q.endpoint {
            binds.push(endpoint.as_str().to_owned());
            sql.push_str(&format!(" AND endpoint = ${}", 5 + binds.len()));
        }
        for (values, column) in [
            (&q.project_ids, "project_id"),
            (&q.api_key_ids, "api_key_id"),
            (&q.models, "model"),
        ] {
            if values.is_empty() {
                continue;
            }
            let mut marks = Vec::with_capacity(values.len());
            for v in values {
                binds.push(v.clone());
                marks.push(format!("${}", 5 + binds.len()));
            }
            sql.push_str(&format!(" AND {column} IN ({})", marks.join(", ")));
        }
        sql.push_str(&format!(" GROUP BY {group} ORDER BY {group}"));
        let mut query = sqlx::query(&sql)
            .bind(q.start_ms)
            .bind(q.width_ms)
            .bind(&q.tenant_id)
            .bind(q.from_ms)
            .bind(q.end_ms);
        for b in &binds {
            query = query.bind(b);
        }
        let rows = query.fetch_all(self.pool()).await?;
        let text = |row: &Row, on: bool, column: &str| -> StoreResult<Option<String>> {
            if !on {
                return Ok(None);
            }
            let v: String = row.try_get(column)?;
            Ok(Some(v).filter(|v| !v.is_empty()))
        };
        rows.iter()
            .map(|row| {
                Ok(UsageTotals {
                    bucket: row.try_get("bucket")?,
                    project_id: text(row, q.group_by_project, "project_id")?,
                    api_key_id: text(row, q.group_by_key, "api_key_id")?,
                    model: text(row, q.group_by_model, "model")?,
                    requests: row.try_get("requests")?,
                    input_tokens: row.try_get("input_tokens")?,
                    cached_tokens: row.try_get("cached_tokens")?,
                    output_tokens: row.try_get("output_tokens")?,
                    cost: Money::from_micros(row.try_get("cost_micros")?),
                })
            })
            .collect()
    }
}
