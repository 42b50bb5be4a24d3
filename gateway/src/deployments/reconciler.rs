//! Moves each deployment toward what its state asks for and reads back what runs:
//!
//! - `provisioning`, `ready`, `scaling`: the driver runs `replicas.min` replicas; the ready ones
//!   become the deployment's endpoints. Provisioning becomes `ready` when all are ready, or
//!   `failed` (with the reason) when the driver reports a crash loop or `ready_timeout_secs`
//!   pass; scaling becomes `ready` when the new count is ready and the removed ones drained.
//! - `stopping` and `deleting`: the driver drains and removes every replica; then `stopped` or
//!   `deleted`. `failed`: nothing runs.
//! - Reserved capacity: while a deployment serves (`ready`, `scaling`), each billing period ends
//!   with a charge of replicas × length × price; leaving those states (or changing the
//!   replicas) closes the running period early. A prepaid organization whose credits run out
//!   has its deployment stopped.
//!
//! One process runs it (the one with the driver); charges are unique per deployment and period
//! in the database, so a second one could not charge twice.

use std::sync::Arc;
use std::time::Duration;

use super::driver::{Driver, ReplicaSpec};
use super::{names, DeploymentRouter, DeploymentsConfig, State};
use crate::store::deployments::{CapacityPrice, Charged, Deployment, Moved, NewCharge, Transition};
use crate::store::{now_ms, Store, StoreError, StoreResult};

pub struct Reconciler {
    store: Store,
    driver: Arc<dyn Driver>,
    router: Arc<DeploymentRouter>,
    config: DeploymentsConfig,
}

/// The states the reconciler acts on.
const ACTIVE: [State; 6] = [
    State::Provisioning,
    State::Ready,
    State::Scaling,
    State::Stopping,
    State::Deleting,
    State::Failed,
];

impl Reconciler {
    pub fn new(
        store: Store,
        driver: Arc<dyn Driver>,
        router: Arc<DeploymentRouter>,
        config: DeploymentsConfig,
    ) -> Self {
        Reconciler {
            store,
            driver,
            router,
            config,
        }
    }

    /// Reconciles, bills and refreshes the routing table every interval, for ever.
    pub async fn run(self: Arc<Self>) {
        let interval = Duration::from_millis(self.config.reconcile_interval_ms);
        loop {
            if let Err(e) = self.tick().await {
                tracing::error!(error = %e, "reconciling deployments failed");
            }
            tokio::time::sleep(interval).await;
        }
    }

    /// One pass over every deployment that needs attention.
    pub async fn tick(&self) -> StoreResult<()> {
        let deployments = self.store.deployments_in(&names(&ACTIVE)).await?;
        for d in &deployments {
            if let Err(e) = self.reconcile(d).await {
                tracing::error!(deployment = %d.id, error = %e, "reconciling a deployment failed");
            }
        }
        // Charges read the deployments again: a transition above may have closed a period.
        for d in self.store.deployments_in(&names(&ACTIVE)).await? {
            if let Err(e) = self.bill(&d, now_ms()).await {
                tracing::error!(deployment = %d.id, error = %e, "charging a deployment failed");
            }
        }
        self.router.refresh().await
    }

    async fn reconcile(&self, d: &Deployment) -> StoreResult<()> {
        let Some(state) = State::parse(&d.state) else {
            return Ok(());
        };
        match state {
            State::Provisioning | State::Ready | State::Scaling => {
                self.run_replicas(d, state).await
            }
            State::Stopping | State::Deleting | State::Failed => {
                if let Err(e) = self.driver.remove(&d.id).await {
                    tracing::warn!(deployment = %d.id, error = %e, "removing replicas failed");
                }
                let seen = match self.driver.observe(&d.id).await {
                    Ok(seen) => seen,
                    Err(e) => {
                        tracing::warn!(deployment = %d.id, error = %e, "cannot see its replicas");
                        return Ok(());
                    }
                };
                self.store.set_deployment_replicas(&d.id, 0, &[]).await?;
                let next = match state {
                    State::Stopping => State::Stopped,
                    State::Deleting => State::Deleted,
                    _ => return Ok(()),
                };
                if seen.gone() {
                    self.system_move(d, &[state], next, None).await?;
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    async fn run_replicas(&self, d: &Deployment, state: State) -> StoreResult<()> {
        let Some(base) = self.router.base(&d.model) else {
            let why = format!("the model '{}' is no longer served here", d.model);
            return self.fail(d, state, &why).await;
        };
        let spec = ReplicaSpec {
            deployment_id: d.id.clone(),
            name: d.name.clone(),
            model_path: base.path.clone(),
            kv_cache_memory: d.kv_cache_memory as u64,
        };
        let want = d.replicas_min.max(0) as usize;
        if let Err(e) = self.driver.apply(&spec, want).await {
            return self.fail(d, state, &e).await;
        }
        let seen = match self.driver.observe(&d.id).await {
            Ok(seen) => seen,
            Err(e) => {
                tracing::warn!(deployment = %d.id, error = %e, "cannot see its replicas");
                return Ok(());
            }
        };
        let ready = seen.ready();
        self.store
            .set_deployment_replicas(&d.id, ready.len() as i64, &ready)
            .await?;
        let all_ready = ready.len() >= want && seen.draining == 0;
        let late = now_ms() - d.updated_ms > (self.config.ready_timeout_secs * 1000) as i64;
        match state {
            State::Provisioning | State::Scaling if all_ready => {
                self.system_move(d, &[state], State::Ready, None).await
            }
            State::Provisioning if seen.problem.is_some() || late => {
                let why = seen.problem.unwrap_or_else(|| {
                    let mut why = format!(
                        "{} of {want} replicas ready after {} s",
                        ready.len(),
                        self.config.ready_timeout_secs
                    );
                    if let Some(detail) = &seen.detail {
                        why.push_str(&format!(" ({detail})"));
                    }
                    why
                });
                self.fail(d, state, &why).await
            }
            State::Scaling if late && seen.problem.is_some() => {
                let why = seen.problem.unwrap_or_default();
                self.fail(d, state, &why).await
            }
            _ => Ok(()),
        }
    }

    async fn fail(&self, d: &Deployment, state: State, why: &str) -> StoreResult<()> {
        tracing::warn!(deployment = %d.id, reason = %why, "deployment failed");
        self.system_move(d, &[state], State::Failed, Some(why))
            .await?;
        if let Err(e) = self.driver.remove(&d.id).await {
            tracing::warn!(deployment = %d.id, error = %e, "removing replicas failed");
        }
        Ok(())
    }

    async fn system_move(
        &self,
        d: &Deployment,
        from: &[State],
        to: State,
        message: Option<&str>,
    ) -> StoreResult<()> {
        let from = names(from);
        let moved = self
            .store
            .transition_deployment(
                &d.tenant_id,
                &d.id,
                &Transition {
                    from: &from,
                    to: to.as_str(),
                    actor: "system",
                    message,
                    replicas: None,
                },
            )
            .await?;
        if let Moved::Moved(_) = moved {
            tracing::info!(deployment = %d.id, from = %d.state, to = to.as_str(), "deployment moved");
            // Route by the new state at once (requests to a stopped deployment are refused).
            self.router.refresh().await?;
        }
        Ok(())
    }

    /// Charges the periods of reserved capacity that have ended; closes the running one when
    /// the deployment no longer serves.
    async fn bill(&self, d: &Deployment, now: i64) -> StoreResult<()> {
        let serves = State::parse(&d.state).is_some_and(State::serves);
        let period = (self.config.billing_period_secs * 1000) as i64;
        match (serves, d.billed_until_ms) {
            (true, None) => {
                self.store
                    .set_deployment_billed_until(&d.id, Some(now))
                    .await
            }
            (true, Some(mut start)) => {
                while start + period <= now {
                    if self.charge(d, start, start + period).await? {
                        break;
                    }
                    start += period;
                }
                Ok(())
            }
            (false, Some(_)) => {
                close_period(&self.store, &self.config, d, now).await?;
                self.store.set_deployment_billed_until(&d.id, None).await
            }
            (false, None) => Ok(()),
        }
    }

    /// Charges `[start, end)`; returns whether the credits ran out (the deployment stops).
    async fn charge(&self, d: &Deployment, start: i64, end: i64) -> StoreResult<bool> {
        let charged = charge(&self.store, &self.config, d, start, end).await?;
        if charged {
            let from = names(&[State::Ready, State::Scaling]);
            self.store
                .transition_deployment(
                    &d.tenant_id,
                    &d.id,
                    &Transition {
                        from: &from,
                        to: State::Stopping.as_str(),
                        actor: "system",
                        message: Some("the organization's credits ran out"),
                        replicas: None,
                    },
                )
                .await?;
        }
        Ok(charged)
    }
}

/// Charges one period; returns whether it went unpaid (credits exhausted).
async fn charge(
    store: &Store,
    config: &DeploymentsConfig,
    d: &Deployment,
    start: i64,
    end: i64,
) -> StoreResult<bool> {
    if end <= start {
        return Ok(false);
    }
    let price = capacity_price(store, config, &d.hardware, start).await?;
    let charged = store
        .charge_deployment(&NewCharge {
            deployment: d,
            period_start_ms: start,
            period_end_ms: end,
            replicas: d.replicas_min,
            micros_per_replica_hour: price.micros_per_replica_hour,
            price_id: Some(&price.id),
        })
        .await?;
    Ok(match charged {
        Charged::Charged(c) => {
            tracing::info!(deployment = %d.id, amount_micros = c.amount.micros(),
                replicas = c.replicas, "reserved capacity charged");
            c.unpaid()
        }
        Charged::Duplicate => false,
    })
}

/// The capacity price of `hardware` in force at `at_ms`, seeding the catalog from the
/// configuration when it has none.
pub async fn capacity_price(
    store: &Store,
    config: &DeploymentsConfig,
    hardware: &str,
    at_ms: i64,
) -> StoreResult<CapacityPrice> {
    if let Some(price) = store.capacity_price_at(hardware, at_ms).await? {
        return Ok(price);
    }
    store
        .seed_capacity_price(hardware, config.replica_hour_micros)
        .await?;
    store
        .capacity_price_at(hardware, at_ms)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("No capacity price for '{hardware}'.")))
}

/// Charges the running period of a deployment up to `now` (before its replicas change or it
/// stops serving); the next period starts at `now`.
pub async fn close_period(
    store: &Store,
    config: &DeploymentsConfig,
    d: &Deployment,
    now: i64,
) -> StoreResult<()> {
    if let Some(start) = d.billed_until_ms {
        charge(store, config, d, start, now).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Mutex;

    use protocol::BoxFuture;

    use super::*;
    use crate::deployments::driver::{Observed, Replica};

    /// A driver whose replicas are as the test says.
    #[derive(Default)]
    struct Fake {
        ready: AtomicUsize,
        problem: Mutex<Option<String>>,
        wanted: AtomicUsize,
        removed: AtomicBool,
    }

    impl Driver for Fake {
        fn apply(&self, _: &ReplicaSpec, replicas: usize) -> BoxFuture<'_, Result<(), String>> {
            self.wanted.store(replicas, Ordering::SeqCst);
            Box::pin(async { Ok(()) })
        }
        fn remove(&self, _: &str) -> BoxFuture<'_, Result<(), String>> {
            self.removed.store(true, Ordering::SeqCst);
            self.wanted.store(0, Ordering::SeqCst);
            Box::pin(async { Ok(()) })
        }
        fn observe(&self, _: &str) -> BoxFuture<'_, Result<Observed, String>> {
            let wanted = self.wanted.load(Ordering::SeqCst);
            let ready = self.ready.load(Ordering::SeqCst);
            let replicas = (0..wanted)
                .map(|i| Replica {
                    url: format!("http://127.0.0.1:{}", 9000 + i),
                    ready: i < ready,
                })
                .collect();
            let problem = self.problem.lock().unwrap().clone();
            Box::pin(async move {
                Ok(Observed {
                    replicas,
                    draining: 0,
                    problem,
                    detail: None,
                })
            })
        }
    }

    async fn setup(
        config: DeploymentsConfig,
    ) -> (tempfile::TempDir, Store, Arc<Fake>, Reconciler, Deployment) {
        let setup = crate::deployments::testing::provisioning(2).await;
        let fake = Arc::new(Fake::default());
        let reconciler = Reconciler::new(setup.store.clone(), fake.clone(), setup.router, config);
        (setup._dir, setup.store, fake, reconciler, setup.deployment)
    }

    #[tokio::test]
    async fn provisioning_becomes_ready_when_every_replica_is() {
        let (_dir, store, fake, reconciler, d) = setup(DeploymentsConfig::default()).await;
        fake.ready.store(1, Ordering::SeqCst);
        reconciler.tick().await.unwrap();
        let now = store.deployment(&d.tenant_id, &d.id).await.unwrap();
        assert_eq!(now.state, "provisioning");
        assert_eq!(fake.wanted.load(Ordering::SeqCst), 2);
        assert_eq!(now.endpoints, ["http://127.0.0.1:9000"]);
        fake.ready.store(2, Ordering::SeqCst);
        reconciler.tick().await.unwrap();
        let now = store.deployment(&d.tenant_id, &d.id).await.unwrap();
        assert_eq!(now.state, "ready");
        assert_eq!(now.ready_replicas, 2);
        let events = store.deployment_events(&d.tenant_id, &d.id).await.unwrap();
        assert_eq!(events.last().unwrap().actor, "system");
    }

    #[tokio::test]
    async fn a_crash_loop_or_the_timeout_fails_provisioning_with_the_reason() {
        let (_dir, store, fake, reconciler, d) = setup(DeploymentsConfig::default()).await;
        *fake.problem.lock().unwrap() = Some("replica exited 3 times: out of memory".into());
        reconciler.tick().await.unwrap();
        let now = store.deployment(&d.tenant_id, &d.id).await.unwrap();
        assert_eq!(now.state, "failed");
        assert!(now.status_message.unwrap().contains("out of memory"));
        assert!(fake.removed.load(Ordering::SeqCst));

        let config = DeploymentsConfig {
            ready_timeout_secs: 1,
            ..Default::default()
        };
        let (_dir, store, _fake, reconciler, d) = setup(config).await;
        reconciler.tick().await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        reconciler.tick().await.unwrap();
        let now = store.deployment(&d.tenant_id, &d.id).await.unwrap();
        assert_eq!(now.state, "failed");
        assert!(
            now.status_message
                .as_deref()
                .unwrap()
                .contains("0 of 2 replicas ready"),
            "{:?}",
            now.status_message
        );
    }

    #[tokio::test]
    async fn each_ended_period_is_charged_once_and_credits_running_out_stop_it() {
        let config = DeploymentsConfig {
            billing_period_secs: 10,
            replica_hour_micros: 3_600_000,
            ..Default::default()
        };
        let (_dir, store, fake, reconciler, d) = setup(config.clone()).await;
        fake.ready.store(2, Ordering::SeqCst);
        reconciler.tick().await.unwrap();
        let ready = store.deployment(&d.tenant_id, &d.id).await.unwrap();
        assert_eq!(ready.state, "ready");
        // Billing started 25 s ago: two whole periods are due, charged once however often
        // the reconciler looks.
        let start = now_ms() - 25_000;
        store
            .set_deployment_billed_until(&d.id, Some(start))
            .await
            .unwrap();
        // An operator doubled the price from the second period on.
        store
            .add_capacity_price("cpu", 7_200_000, start + 10_000, "operator:test")
            .await
            .unwrap();
        reconciler.tick().await.unwrap();
        reconciler.tick().await.unwrap();
        let charges = store.deployment_charges(&d.tenant_id, &d.id).await.unwrap();
        assert_eq!(charges.len(), 2, "{charges:?}");
        assert_eq!(charges[0].period_start_ms, start);
        // 2 replicas × 10 s × $3.60/h (seeded from the configuration) = 20,000 micro-USD;
        // then at $7.20/h, 40,000.
        assert_eq!(charges[0].amount.micros(), 20_000);
        assert_eq!(charges[0].micros_per_replica_hour, 3_600_000);
        assert_eq!(charges[1].amount.micros(), 40_000);
        assert_eq!(charges[1].micros_per_replica_hour, 7_200_000);
        let after = store.deployment(&d.tenant_id, &d.id).await.unwrap();
        assert_eq!(after.billed_until_ms, Some(start + 20_000));

        // A free organization without credits left: the next charge goes unpaid and stops it.
        store
            .set_deployment_billed_until(&d.id, Some(now_ms() - 10_000_000))
            .await
            .unwrap();
        store
            .add_capacity_price("cpu", 1_000_000_000, now_ms() - 20_000_000, "operator:test")
            .await
            .unwrap();
        let big = config;
        let greedy = Reconciler::new(store.clone(), fake.clone(), reconciler.router.clone(), big);
        store
            .open_credit_account(&d.tenant_id, crate::store::money::Money::from_micros(1_000))
            .await
            .unwrap();
        greedy.tick().await.unwrap();
        let stopped = store.deployment(&d.tenant_id, &d.id).await.unwrap();
        assert_eq!(stopped.state, "stopping");
        assert!(stopped.status_message.unwrap().contains("credits ran out"));
        let balance = store.credit_balance(&d.tenant_id).await.unwrap().unwrap();
        assert_eq!(balance.balance.micros(), 0, "it paid what it had");
    }
}
