//! Metering and budgets: every accepted request leaves exactly one usage event, priced, and
//! debited from the tenant's prepaid credits; no concurrency can spend past the balance.
//!
//! The request path (the seam the routes call):
//! 1. [`Metering::admit`] after validation, with the prompt's token count and the most tokens
//!    the request may generate: reserves the request's maximum cost on the tenant's prepaid
//!    account (one atomic conditional UPDATE) and writes the `in_progress` usage row, in one
//!    transaction, and the same maximum on every spend cap that applies (the organization's and
//!    the project's monthly caps, the key's budget: `store::budgets`); refuses with 429
//!    `insufficient_quota`, naming the balance or the cap, when one does not cover it.
//! 2. [`Meter::attach`] puts an observer on each of the scheduler's `DeltaStream`s, counting
//!    tokens as the route receives them (time to first token, tokens so far).
//! 3. The end finalizes the row once: the last usage delta (`completed`), a failed generation
//!    (`failed`), or the meter being dropped before the end (the client went away:
//!    `cancelled`, billed for the tokens it received). Finalizing settles the real cost,
//!    releases the rest of the reservation, appends the ledger debit and updates the
//!    per-minute rollup in one transaction.
//!
//! A process that dies leaves `in_progress` rows; [`Metering::sweep_orphans`] (at start, then
//! periodically) closes rows whose heartbeat stopped as `interrupted` with the tokens last
//! reported by [`Metering::run_background`]'s progress updates, or, with Redis, the tokens
//! journaled at every step (`journal`), whichever is further.
//!
//! Files: `money` (the `Money` type and per-model `Prices`), `config` (the `[metering]` table
//! with the configured prices that seed the catalog), `meter` (the per-request guard). Prices
//! come from the dated catalog (`billing::catalog`). Storage is in
//! `store::usage` and `store::credits`.

pub mod config;
pub mod journal;
pub mod meter;
pub mod money;

use crate::store::TenantId;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

pub use meter::Meter;
pub use money::{Money, Prices};

use crate::auth::secret::random_base62;
use crate::auth::Principal;
use crate::error::ApiError;
use crate::metrics::{Metrics, WRITE_BUCKETS};
use crate::store::budgets::BudgetPeriod;
use crate::store::stripe::BillingStatus;
use crate::store::tenants::Plan;
use crate::store::usage::{Admission, Endpoint, FinalUsage, NewUsage, UsageStatus};
use crate::store::{now_ms, Backend, Store};
use config::MeteringConfig;

/// What a request asks to be admitted for.
#[derive(Debug, Clone)]
pub struct Charge {
    /// The id the response carries (`chatcmpl-...`); the usage event's key.
    pub request_id: String,
    pub endpoint: Endpoint,
    pub model: String,
    /// The catalog entry that prices it when that is not `model` (a private deployment's
    /// `deployment:<id>`).
    pub price_model: Option<String>,
    /// Prompt tokens over all prompts.
    pub prompt_tokens: u64,
    /// The most tokens the request may generate over all prompts and choices.
    pub max_completion_tokens: u64,
}

/// The metering service of one gateway process. Shared by every request through an `Arc`.
pub struct Metering {
    store: Store,
    config: MeteringConfig,
    metrics: Arc<Metrics>,
    /// This process; written on its in-flight rows.
    instance_id: String,
    /// In-flight meters, for the periodic progress updates.
    live: Mutex<HashMap<String, Weak<meter::Shared>>>,
    /// Per-step progress in Redis, when configured (`journal`).
    journal: Option<journal::ProgressJournal>,
    /// The catalog's current prices, read at most every half second per model.
    prices: crate::billing::catalog::PriceCache,
}

impl std::fmt::Debug for Metering {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metering")
            .field("instance_id", &self.instance_id)
            .finish()
    }
}

impl Metering {
    pub fn new(store: Store, config: MeteringConfig, metrics: Arc<Metrics>) -> Arc<Metering> {
        Self::with_journal(store, config, metrics, None)
    }

    /// With a progress journal in Redis (`journal`) when `redis` (its URL and command
    /// timeout) is given.
    pub fn with_journal(
        store: Store,
        config: MeteringConfig,
        metrics: Arc<Metrics>,
        redis: Option<(&str, Duration)>,
    ) -> Arc<Metering> {
        let journal = redis.and_then(|(url, timeout)| {
            journal::ProgressJournal::new(url, timeout, config.orphan_after_secs)
                .map_err(|e| tracing::warn!(error = %e, "no usage progress journal: bad Redis URL"))
                .ok()
        });
        Arc::new(Metering {
            store,
            config,
            metrics,
            instance_id: format!("gw_{}", random_base62(16)),
            live: Mutex::new(HashMap::new()),
            journal,
            prices: Default::default(),
        })
    }

    pub(crate) fn journal(&self) -> Option<&journal::ProgressJournal> {
        self.journal.as_ref()
    }

    pub fn config(&self) -> &MeteringConfig {
        &self.config
    }

    pub fn instance_id(&self) -> &str {
        &self.instance_id
    }

    /// Opens a new organization's prepaid account with the free plan's grant (called when a
    /// free-plan organization is created).
    pub async fn open_free_account(&self, tenant_id: &TenantId) -> Result<(), ApiError> {
        self.store
            .open_credit_account(tenant_id, self.config.free_grant)
            .await?;
        Ok(())
    }

    /// Admits a request: reserves its maximum cost and writes its in-flight usage row. A
    /// refusal (429 `insufficient_quota`) is recorded as a `rejected` event.
    pub async fn admit(
        self: &Arc<Self>,
        principal: &Principal,
        charge: Charge,
    ) -> Result<Meter, ApiError> {
        let started_ms = now_ms();
        // Priced at the catalog price effective at the request's start.
        let price = self
            .prices
            .price_at(
                &self.store,
                &self.config,
                charge.price_model.as_deref().unwrap_or(&charge.model),
                started_ms,
            )
            .await?;
        let prices = price.prices;
        let max_cost = prices.max_cost(charge.prompt_tokens, charge.max_completion_tokens);
        let row = NewUsage {
            request_id: charge.request_id.clone(),
            http_request_id: Some(principal.request.request_id.clone()).filter(|id| !id.is_empty()),
            tenant_id: principal.tenant_id.clone(),
            project_id: principal.project_id.clone(),
            api_key_id: principal.key_id.clone(),
            endpoint: charge.endpoint,
            model: charge.model.clone(),
            prompt_tokens: charge.prompt_tokens,
            max_cost,
            instance_id: self.instance_id.clone(),
            started_ms,
            price_id: Some(price.id),
        };
        let timer = std::time::Instant::now();
        // One transaction for a prepaid account or an enterprise organization in good
        // standing; the rest (a first use, a payment past due) look at the organization.
        let mut admission = self.store.admit_usage_as_billed(&row).await?;
        if admission == Admission::NoAccount {
            // Free organizations from before metering get their grant on first use;
            // enterprise organizations without a prepaid account are postpaid (invoiced, no
            // prepaid limit); pay-as-you-go ones pay from credits they bought, so without an
            // account they have none.
            let tenant = self.store.tenant_billing(&principal.tenant_id).await?;
            if tenant.plan == Plan::Free {
                self.open_free_account(&tenant.tenant_id).await?;
            }
            if tenant.plan == Plan::Enterprise && tenant.status == BillingStatus::PastDue {
                self.refuse(&row, "past_due").await;
                return Err(ApiError::InsufficientQuota(
                    "Your organization's last invoice payment failed; new requests resume once \
                     it is paid."
                        .to_owned(),
                ));
            }
            admission = self
                .store
                .admit_usage(&row, tenant.plan == Plan::Enterprise)
                .await?;
        }
        self.observe_write("admit", timer);
        match admission {
            Admission::Admitted { reserved } => Ok(Meter::start(
                self.clone(),
                charge,
                prices,
                reserved,
                started_ms,
            )),
            Admission::Insufficient { available } => {
                self.refuse(&row, "balance").await;
                Err(ApiError::InsufficientQuota(format!(
                    "You exceeded your current quota: this request may cost up to {max_cost} \
                     and your organization's available credit is {available}. Add credits or \
                     lower max_tokens."
                )))
            }
            Admission::OverBudget(over) => {
                self.refuse(&row, over.scope.budget_reason()).await;
                Err(ApiError::InsufficientQuota(format!(
                    "You exceeded your current quota: this request may cost up to {max_cost} and \
                     {} of {} has {} left{}. Raise or clear the budget, or lower max_tokens.",
                    over.scope.describe(),
                    over.limit,
                    over.available,
                    if over.scope.period() == BudgetPeriod::Monthly {
                        " this month (it resets on the 1st, UTC)"
                    } else {
                        ""
                    },
                )))
            }
            Admission::NoAccount => {
                self.refuse(&row, "no_account").await;
                Err(ApiError::InsufficientQuota(
                    "Your organization has no credit; add credits to continue.".to_owned(),
                ))
            }
        }
    }

    async fn refuse(&self, row: &NewUsage, reason: &str) {
        self.metrics.inc(
            "starfire_budget_refusals_total",
            "Requests refused with insufficient_quota, by reason.",
            &[("reason", reason)],
            1,
        );
        if let Err(e) = self.store.record_rejected_usage(row).await {
            tracing::warn!(error = %e, request_id = %row.request_id, "cannot record a rejected request");
        }
    }

    fn observe_write(&self, op: &str, started: std::time::Instant) {
        self.metrics.observe(
            "starfire_usage_write_seconds",
            "Latency of usage and ledger writes, by operation.",
            WRITE_BUCKETS,
            &[("op", op)],
            started.elapsed().as_secs_f64(),
        );
    }

    /// Writes a request's end; retried a few times, then left to the orphan sweep.
    async fn write_final(&self, request_id: &str, f: FinalUsage) {
        let timer = std::time::Instant::now();
        for attempt in 0..4u32 {
            match self.store.finalize_usage(request_id, &f).await {
                Ok(_) => {
                    if let Some(journal) = &self.journal {
                        journal.forget(request_id);
                    }
                    self.observe_write("finalize", timer);
                    self.metrics.inc(
                        "starfire_usage_events_total",
                        "Usage events finalized, by status.",
                        &[("status", f.status.as_str())],
                        1,
                    );
                    return;
                }
                Err(e) if attempt < 3 => {
                    tracing::warn!(error = %e, %request_id, attempt, "usage write failed; retrying");
                    tokio::time::sleep(Duration::from_millis(50 << attempt)).await;
                }
                Err(e) => {
                    self.metrics.inc(
                        "starfire_usage_write_failures_total",
                        "Usage finalizations given up on (the orphan sweep closes them).",
                        &[],
                        1,
                    );
                    tracing::error!(error = %e, %request_id, "usage write failed; the orphan sweep will close it");
                }
            }
        }
    }

    fn register(&self, request_id: &str, shared: &Arc<meter::Shared>) {
        let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        live.insert(request_id.to_owned(), Arc::downgrade(shared));
    }

    fn unregister(&self, request_id: &str) {
        let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        live.remove(request_id);
    }

    /// Writes the progress (tokens so far, heartbeat) of every in-flight request of this
    /// process.
    pub async fn write_progress(&self) {
        let meters: Vec<Arc<meter::Shared>> = {
            let live = self.live.lock().unwrap_or_else(|e| e.into_inner());
            live.values().filter_map(Weak::upgrade).collect()
        };
        let now = now_ms();
        for m in meters {
            let (completion, ttft) = m.progress();
            if let Err(e) = self
                .store
                .usage_progress(m.request_id(), completion, ttft, now)
                .await
            {
                tracing::warn!(error = %e, "cannot write usage progress");
            }
        }
    }

    /// Closes the in-flight rows of dead processes as `interrupted`, billing the tokens last
    /// reported. At start on SQLite (one process by design) every other instance's row is
    /// an orphan; otherwise a row is one when its heartbeat is older than
    /// `orphan_after_secs`. Returns how many rows it closed.
    pub async fn sweep_orphans(&self, at_start: bool) -> Result<usize, ApiError> {
        let now = now_ms();
        let stale_before = now - (self.config.orphan_after_secs as i64) * 1000;
        let all_but = (at_start && self.store.backend() == Backend::Sqlite)
            .then_some(self.instance_id.as_str());
        let mut closed = 0;
        loop {
            let orphans = self
                .store
                .orphaned_usage(stale_before, all_but, 500)
                .await?;
            if orphans.is_empty() {
                break;
            }
            // What the dead process journaled step by step, when it is further than its last
            // heartbeat.
            let journaled = match &self.journal {
                Some(j) => {
                    let ids: Vec<String> = orphans.iter().map(|o| o.request_id.clone()).collect();
                    j.read(&ids).await
                }
                None => HashMap::new(),
            };
            for o in &orphans {
                let completion_tokens = journaled
                    .get(&o.request_id)
                    .map_or(o.completion_tokens, |&n| n.max(o.completion_tokens));
                // The price it was admitted at; rows from before the catalog by their model.
                let admitted = match &o.price_id {
                    Some(id) => self.store.price_by_id(id).await?,
                    None => None,
                };
                let prices = match admitted {
                    Some(price) => price.prices,
                    None => {
                        crate::billing::catalog::price_at(
                            &self.store,
                            &self.config,
                            &o.model,
                            o.started_ms,
                        )
                        .await?
                        .prices
                    }
                };
                let final_usage = FinalUsage {
                    status: UsageStatus::Interrupted,
                    prompt_tokens: o.prompt_tokens,
                    cached_tokens: o.cached_tokens,
                    completion_tokens,
                    ttft_ms: o.ttft_ms,
                    latency_ms: Some((o.heartbeat_ms - o.started_ms).max(0)),
                    cost: prices.cost(o.prompt_tokens, o.cached_tokens, completion_tokens),
                    finished_ms: now,
                };
                if self
                    .store
                    .finalize_usage(&o.request_id, &final_usage)
                    .await?
                {
                    closed += 1;
                }
            }
            if orphans.len() < 500 {
                break;
            }
        }
        if closed > 0 {
            tracing::warn!(closed, "closed usage rows of a gateway process that died");
            self.metrics.inc(
                "starfire_usage_events_total",
                "Usage events finalized, by status.",
                &[("status", UsageStatus::Interrupted.as_str())],
                closed as u64,
            );
        }
        Ok(closed)
    }

    /// Runs forever: progress updates every `heartbeat_secs`, an orphan sweep every
    /// `orphan_after_secs / 2`. `serve` spawns it after the start-up sweep.
    pub async fn run_background(self: Arc<Self>) {
        let heartbeat = Duration::from_secs(self.config.heartbeat_secs.max(1));
        let sweep_every = Duration::from_secs((self.config.orphan_after_secs / 2).max(1));
        let mut last_sweep = std::time::Instant::now();
        loop {
            tokio::time::sleep(heartbeat).await;
            self.write_progress().await;
            if last_sweep.elapsed() >= sweep_every {
                last_sweep = std::time::Instant::now();
                if let Err(e) = self.sweep_orphans(false).await {
                    tracing::warn!(error = %e, "orphan sweep failed");
                }
            }
        }
    }
}
