//! Moves each deployment toward what its state asks for and reads back what runs:
//!
//! - `provisioning`, `ready`, `scaling`: the driver runs the deployment's target count of
//!   replicas (`replicas.min` at first); the ready ones become the deployment's endpoints. Provisioning becomes `ready` when all are ready, or
//!   `failed` (with the reason) when the driver reports a crash loop or `ready_timeout_secs`
//!   pass; scaling becomes `ready` when the new count is ready and the removed ones drained.
//! - `stopping` and `deleting`: the driver drains and removes every replica; then `stopped` or
//!   `deleted`. `failed`: nothing runs.
//! - Reserved capacity: while a deployment serves (`ready`, `scaling`), each billing period ends
//!   with a charge of replicas × length × price; leaving those states (or changing the
//!   replicas) closes the running period early. A prepaid organization whose credits run out
//!   has its deployment stopped.
//!
//! - Autoscaling, for a `ready` deployment whose `replicas.max` is above `replicas.min`: every
//!   pass reads the requests running and waiting on each ready replica (its `/metrics`, so every
//!   gateway's requests count) and recommends `ceil(load / autoscale_target_load)` replicas,
//!   within `[min, max]`. A recommendation above the target applies at once (`scaling`, actor
//!   `autoscaler`, the load in its message); the target comes down only to the highest
//!   recommendation of the last `scale_down_delay_secs`, and only once that long has passed
//!   since its last change, so a lull between bursts does not drop replicas that the next
//!   burst needs. No answer from any replica: no change.
//!
//! One process runs it (the one with the driver); charges are unique per deployment and period
//! in the database, so a second one could not charge twice.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::driver::{Driver, ReplicaSpec};
use super::{names, DeploymentRouter, DeploymentsConfig, State};
use crate::store::deployments::{CapacityPrice, Charged, Deployment, Moved, NewCharge, Transition};
use crate::store::{now_ms, Store, StoreError, StoreResult};
use crate::worker::pool::{http_client, scrape, WorkerClient};

pub struct Reconciler {
    store: Store,
    driver: Arc<dyn Driver>,
    router: Arc<DeploymentRouter>,
    config: DeploymentsConfig,
    /// Reads the replicas' `/metrics` for autoscaling.
    client: WorkerClient,
    /// Per deployment, the autoscaler's recent recommendations.
    autoscaling: Mutex<HashMap<String, Recommendations>>,
}

/// What the autoscaler recommended for one deployment lately.
struct Recommendations {
    /// When its target last changed (or the autoscaler first saw it).
    since: Instant,
    /// The target it was recommended for.
    target: i64,
    /// `(when, replicas)`, oldest first, within the scale-down delay.
    recent: VecDeque<(Instant, i64)>,
}

/// The replicas a load wants: `ceil(load / per_replica)`, within `[min, max]`.
pub fn recommend(load: f64, per_replica: f64, min: i64, max: i64) -> i64 {
    let wanted = (load / per_replica).ceil();
    let wanted = if wanted.is_finite() {
        wanted as i64
    } else {
        max
    };
    wanted.clamp(min, max.max(min))
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
            client: http_client(Duration::from_secs(1)),
            config,
            autoscaling: Mutex::new(HashMap::new()),
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
        self.autoscaling
            .lock()
            .unwrap()
            .retain(|id, _| deployments.iter().any(|d| &d.id == id));
        for d in &deployments {
            if d.state == State::Ready.as_str() && d.replicas_max > d.replicas_min {
                // Read again: reconciling may have moved it.
                let now = self.store.deployment(&d.tenant_id, &d.id).await?;
                if let Err(e) = self.autoscale(&now).await {
                    tracing::error!(deployment = %d.id, error = %e, "autoscaling a deployment failed");
                }
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
        let want = d.replicas_target.max(0) as usize;
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

    /// The requests running and waiting on the deployment's ready replicas, or `None` when no
    /// replica answers.
    async fn load(&self, d: &Deployment) -> Option<f64> {
        let token = self.router.token();
        let mut answered = false;
        let mut load = 0.0;
        for url in &d.endpoints {
            if let Some(l) = scrape(&self.client, url, token, Duration::from_secs(1)).await {
                answered = true;
                load += l.running + l.waiting;
            }
        }
        answered.then_some(load)
    }

    /// Moves a ready deployment's target toward what its load wants (see the module's notes).
    async fn autoscale(&self, d: &Deployment) -> StoreResult<()> {
        if d.state != State::Ready.as_str() {
            return Ok(());
        }
        let Some(load) = self.load(d).await else {
            return Ok(());
        };
        let wanted = recommend(
            load,
            self.config.autoscale_target_load,
            d.replicas_min,
            d.replicas_max,
        );
        let delay = Duration::from_secs(self.config.scale_down_delay_secs);
        let now = Instant::now();
        let target = {
            let mut all = self.autoscaling.lock().unwrap();
            let r = all.entry(d.id.clone()).or_insert_with(|| Recommendations {
                since: now,
                target: d.replicas_target,
                recent: VecDeque::new(),
            });
            if r.target != d.replicas_target {
                // Someone else changed it (a user's new range): the delay starts again.
                r.since = now;
                r.target = d.replicas_target;
            }
            r.recent.push_back((now, wanted));
            while r
                .recent
                .front()
                .is_some_and(|(at, _)| now.duration_since(*at) > delay)
            {
                r.recent.pop_front();
            }
            let highest = r.recent.iter().map(|(_, n)| *n).max().unwrap_or(wanted);
            if wanted > d.replicas_target {
                wanted
            } else if highest < d.replicas_target && now.duration_since(r.since) >= delay {
                highest
            } else {
                d.replicas_target
            }
        };
        if target == d.replicas_target {
            return Ok(());
        }
        let message = format!(
            "autoscaler: {load} requests running or waiting on {} replicas (target {} per \
             replica); {} to {target} replicas",
            d.ready_replicas, self.config.autoscale_target_load, d.replicas_target
        );
        let from = names(&[State::Ready]);
        let moved = transition_billed(
            &self.store,
            &self.config,
            d,
            &Transition {
                from: &from,
                to: State::Scaling.as_str(),
                actor: "autoscaler",
                message: Some(&message),
                replicas: None,
                target: Some(target),
            },
        )
        .await?;
        if let Moved::Moved(now_d) = moved {
            tracing::info!(deployment = %d.id, from = d.replicas_target, to = now_d.replicas_target,
                load, "deployment autoscaled");
            if let Some(r) = self.autoscaling.lock().unwrap().get_mut(&d.id) {
                r.since = now;
                r.target = now_d.replicas_target;
            }
            self.router.refresh().await?;
        }
        Ok(())
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
                    target: None,
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
                        target: None,
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
            replicas: d.replicas_target,
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

/// Makes transition `t` of deployment `before`; when it served, charges its running period up to
/// now at the replicas it ran (before the change) and starts the next one (if it still serves).
/// Every mover of a serving deployment goes through here: members, operators, the autoscaler.
pub async fn transition_billed(
    store: &Store,
    config: &DeploymentsConfig,
    before: &Deployment,
    t: &Transition<'_>,
) -> StoreResult<Moved> {
    let moved = store
        .transition_deployment(&before.tenant_id, &before.id, t)
        .await?;
    let was_serving = State::parse(&before.state).is_some_and(State::serves);
    if let (true, Moved::Moved(d)) = (was_serving, &moved) {
        let now = now_ms();
        close_period(store, config, before, now).await?;
        let next = State::parse(&d.state)
            .is_some_and(State::serves)
            .then_some(now);
        store.set_deployment_billed_until(&d.id, next).await?;
    }
    Ok(moved)
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
        /// Replica `i`'s URL, when the test serves it (else a closed port).
        urls: Mutex<Vec<String>>,
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
            let urls = self.urls.lock().unwrap().clone();
            let replicas = (0..wanted)
                .map(|i| Replica {
                    url: urls
                        .get(i)
                        .cloned()
                        .unwrap_or_else(|| format!("http://127.0.0.1:{}", 9000 + i)),
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
        setup_range(config, 2, 2).await
    }

    async fn setup_range(
        config: DeploymentsConfig,
        min: i64,
        max: i64,
    ) -> (tempfile::TempDir, Store, Arc<Fake>, Reconciler, Deployment) {
        let setup = crate::deployments::testing::provisioning_range(min, max).await;
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

    /// A replica's `/metrics` reporting `(running, waiting)` as the test sets it.
    async fn metrics_server(load: Arc<Mutex<(u32, u32)>>) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let load = load.clone();
                tokio::spawn(async move {
                    let mut request = [0u8; 4096];
                    let _ = socket.read(&mut request).await;
                    let (running, waiting) = *load.lock().unwrap();
                    let body = format!(
                        "# TYPE vllm:num_requests_running gauge\n\
                         vllm:num_requests_running{{model_name=\"m\"}} {running}\n\
                         vllm:num_requests_waiting{{model_name=\"m\"}} {waiting}\n"
                    );
                    let answer = format!(
                        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = socket.write_all(answer.as_bytes()).await;
                });
            }
        });
        url
    }

    #[test]
    fn the_recommendation_is_the_load_over_the_target_within_the_range() {
        assert_eq!(recommend(0.0, 8.0, 1, 4), 1);
        assert_eq!(recommend(8.0, 8.0, 1, 4), 1);
        assert_eq!(recommend(8.5, 8.0, 1, 4), 2);
        assert_eq!(recommend(31.0, 8.0, 1, 4), 4);
        assert_eq!(recommend(1000.0, 8.0, 1, 4), 4);
        assert_eq!(recommend(3.0, 8.0, 2, 4), 2);
        assert_eq!(recommend(f64::INFINITY, 8.0, 2, 4), 4);
    }

    /// Load on the replicas (their `/metrics`, as a worker reports it) scales a 1–3 deployment
    /// up at once and back down only after the delay; each change closes a billing period at
    /// the replicas that ran, and is in the history with the load that caused it.
    #[tokio::test]
    async fn load_scales_up_at_once_and_down_after_the_delay() {
        let config = DeploymentsConfig {
            autoscale_target_load: 4.0,
            scale_down_delay_secs: 1,
            ..Default::default()
        };
        let (_dir, store, fake, reconciler, d) = setup_range(config, 1, 3).await;
        let loads: Vec<Arc<Mutex<(u32, u32)>>> =
            (0..3).map(|_| Arc::new(Mutex::new((0, 0)))).collect();
        let mut urls = Vec::new();
        for load in &loads {
            urls.push(metrics_server(load.clone()).await);
        }
        *fake.urls.lock().unwrap() = urls.clone();
        fake.ready.store(3, Ordering::SeqCst);
        let get = || store.deployment(&d.tenant_id, &d.id);

        reconciler.tick().await.unwrap();
        let ready = get().await.unwrap();
        assert_eq!(ready.state, "ready");
        assert_eq!(ready.replicas_target, 1);
        assert_eq!(fake.wanted.load(Ordering::SeqCst), 1);
        // Idle: nothing changes.
        reconciler.tick().await.unwrap();
        assert_eq!(get().await.unwrap().replicas_target, 1);

        // 6 running and 3 waiting on one replica want ceil(9 / 4) = 3. (The pause gives the
        // billing period that closes a length.)
        tokio::time::sleep(Duration::from_millis(20)).await;
        *loads[0].lock().unwrap() = (6, 3);
        reconciler.tick().await.unwrap();
        let scaled = get().await.unwrap();
        assert_eq!(scaled.state, "scaling");
        assert_eq!(scaled.replicas_target, 3);
        let events = store.deployment_events(&d.tenant_id, &d.id).await.unwrap();
        let up = events.last().unwrap();
        assert_eq!(up.actor, "autoscaler");
        assert!(
            up.message
                .as_deref()
                .unwrap()
                .contains("9 requests running or waiting"),
            "{up:?}"
        );
        reconciler.tick().await.unwrap();
        assert_eq!(fake.wanted.load(Ordering::SeqCst), 3);
        let ready = get().await.unwrap();
        assert_eq!(ready.state, "ready");
        assert_eq!(ready.endpoints, urls);

        // The load falls to 1: nothing for the delay, then back to 1 replica.
        *loads[0].lock().unwrap() = (1, 0);
        reconciler.tick().await.unwrap();
        assert_eq!(get().await.unwrap().replicas_target, 3);
        tokio::time::sleep(Duration::from_millis(1100)).await;
        reconciler.tick().await.unwrap();
        let down = get().await.unwrap();
        assert_eq!((down.state.as_str(), down.replicas_target), ("scaling", 1));
        reconciler.tick().await.unwrap();
        assert_eq!(fake.wanted.load(Ordering::SeqCst), 1);
        assert_eq!(get().await.unwrap().state, "ready");

        // Each change charged the period before it at the replicas that ran then.
        let charges = store.deployment_charges(&d.tenant_id, &d.id).await.unwrap();
        let replicas: Vec<i64> = charges.iter().map(|c| c.replicas).collect();
        assert_eq!(replicas, [1, 3], "{charges:?}");
        assert_eq!(charges[0].period_end_ms, charges[1].period_start_ms);

        // With no replica answering, nothing moves.
        *fake.urls.lock().unwrap() = vec!["http://127.0.0.1:9".to_owned()];
        reconciler.tick().await.unwrap();
        reconciler.tick().await.unwrap();
        assert_eq!(get().await.unwrap().replicas_target, 1);
    }
}
