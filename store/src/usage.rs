//! Usage events, exactly once per request, and the per-minute rollup they feed.
//!
//! A request's row is inserted `in_progress` at admission, in the same transaction as the
//! reservation on the tenant's prepaid account, and finalized by one conditional UPDATE
//! (`WHERE status = 'in_progress'`), so that however many paths try to finalize a request (the
//! normal end, a dropped stream, the orphan sweep of another replica), exactly one succeeds.
//! The finalizing transaction also settles the reservation, appends the ledger debit and adds
//! the event to `usage_minutes`. The same two transactions reserve and settle the request's
//! maximum cost on the spend caps that apply to it (`store::budgets`).

use crate::ids::{KeyId, ProjectId, TenantId};
use sqlx::Row as _;

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
#[derive(Debug, Clone, Copy)]
enum Postpaid {
    Always,
    Never,
    /// On the enterprise plan, with no invoice past due.
    EnterpriseInGoodStanding,
}

impl Postpaid {
    async fn allows(
        self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        tenant_id: &TenantId,
    ) -> StoreResult<bool> {
        Ok(match self {
            Postpaid::Always => true,
            Postpaid::Never => false,
            Postpaid::EnterpriseInGoodStanding => sqlx::query(
                "SELECT 1 FROM tenants WHERE id = $1 AND plan = 'enterprise' \
                 AND billing_status <> 'past_due'",
            )
            .bind(tenant_id)
            .fetch_optional(&mut **tx)
            .await?
            .is_some(),
        })
    }
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
        self.admit_usage_with(u, postpaid).await
    }

    /// [`Store::admit_usage`] for a tenant billed as its plan says: postpaid (nothing
    /// reserved) when it has no prepaid account, is on the enterprise plan and its last
    /// invoice is not past due, decided in the same transaction. `NoAccount` otherwise.
    pub async fn admit_usage_as_billed(&self, u: &NewUsage) -> StoreResult<Admission> {
        self.admit_usage_with(u, Postpaid::EnterpriseInGoodStanding)
            .await
    }

    async fn admit_usage_with(&self, u: &NewUsage, postpaid: Postpaid) -> StoreResult<Admission> {
        let mut tx = self.begin_write().await?;
        // A write first, so that SQLite takes the write lock at once (no read-then-upgrade).
        // It also counts the spend caps that apply, so a request without any skips their read.
        let reserved = sqlx::query(&format!(
            "UPDATE credit_accounts SET reserved_micros = reserved_micros + $1, updated_ms = $2 \
             WHERE tenant_id = $3 AND balance_micros - reserved_micros >= $1 \
             RETURNING {} AS caps",
            budgets::caps_count("$3", "$4", "$5")
        ))
        .bind(u.max_cost.micros())
        .bind(u.started_ms)
        .bind(&u.tenant_id)
        .bind(u.project_id.as_ref().map_or("", ProjectId::as_str))
        .bind(u.api_key_id.as_ref().map_or("", KeyId::as_str))
        .fetch_optional(&mut **tx)
        .await?;
        // `None`: not counted (no prepaid reservation), so the caps are read.
        let mut caps: Option<i64> = None;
        let held = if let Some(row) = reserved {
            caps = Some(row.try_get("caps")?);
            u.max_cost
        } else {
            let account = sqlx::query(
                "SELECT balance_micros, reserved_micros FROM credit_accounts WHERE tenant_id = $1",
            )
            .bind(&u.tenant_id)
            .fetch_optional(&mut **tx)
            .await?;
            match account {
                Some(row) => {
                    let balance: i64 = row.try_get("balance_micros")?;
                    let held: i64 = row.try_get("reserved_micros")?;
                    tx.rollback().await?;
                    return Ok(Admission::Insufficient {
                        available: Money::from_micros((balance - held).max(0)),
                    });
                }
                None => {
                    if !postpaid.allows(&mut tx, &u.tenant_id).await? {
                        tx.rollback().await?;
                        return Ok(Admission::NoAccount);
                    }
                    Money::ZERO
                }
            }
        };
        let capped = if caps == Some(0) {
            Ok(Vec::new())
        } else {
            budgets::reserve(&mut tx, &charged(u), u.max_cost, u.started_ms).await?
        };
        let scopes = match capped {
            Ok(scopes) => scopes,
            Err(over) => {
                tx.rollback().await?;
                return Ok(Admission::OverBudget(over));
            }
        };
        let budget_held = if scopes.is_empty() {
            Money::ZERO
        } else {
            u.max_cost
        };
        let on_caps = (budget_held, budgets::scopes_text(&scopes));
        insert_row(&mut tx, u, UsageStatus::InProgress, held, on_caps).await?;
        tx.commit().await?;
        Ok(Admission::Admitted { reserved: held })
    }

    /// Records a request refused at admission (nothing reserved, nothing billed).
    pub async fn record_rejected_usage(&self, u: &NewUsage) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        insert_row(
            &mut tx,
            u,
            UsageStatus::Rejected,
            Money::ZERO,
            (Money::ZERO, String::new()),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Finalizes an in-flight row, settles its reservation (debit the cost, release the
    /// rest), appends the ledger's usage entry and adds it to the rollup, in one transaction.
    /// `Ok(false)` when the row was finalized already (or never admitted): nothing changes.
    pub async fn finalize_usage(&self, request_id: &str, f: &FinalUsage) -> StoreResult<bool> {
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(&format!(
            "UPDATE usage_events SET status = $1, prompt_tokens = $2, cached_tokens = $3, \
             completion_tokens = $4, ttft_ms = $5, latency_ms = $6, \
             cost_micros = CASE WHEN reserved_micros > 0 AND $7 > reserved_micros \
                 THEN reserved_micros ELSE $7 END, \
             finished_ms = $8, heartbeat_ms = $8 \
             WHERE request_id = $9 AND status = 'in_progress' \
             RETURNING tenant_id, project_id, api_key_id, endpoint, model, reserved_micros, \
                 cost_micros, started_ms, budget_reserved_micros, budget_scopes, {} AS caps",
            budgets::caps_count(
                "usage_events.tenant_id",
                "COALESCE(usage_events.project_id, '')",
                "COALESCE(usage_events.api_key_id, '')"
            )
        ))
        .bind(f.status.as_str())
        .bind(f.prompt_tokens as i64)
        .bind(f.cached_tokens.min(f.prompt_tokens) as i64)
        .bind(f.completion_tokens as i64)
        .bind(f.ttft_ms)
        .bind(f.latency_ms)
        .bind(f.cost.micros())
        .bind(f.finished_ms)
        .bind(request_id)
        .fetch_optional(&mut **tx)
        .await?;
        let Some(row) = row else {
            tx.rollback().await?;
            return Ok(false);
        };
        let tenant_id: TenantId = row.try_get("tenant_id")?;
        let project_id: Option<ProjectId> = row.try_get("project_id")?;
        let api_key_id: Option<KeyId> = row.try_get("api_key_id")?;
        let endpoint: String = row.try_get("endpoint")?;
        let model: String = row.try_get("model")?;
        let reserved: i64 = row.try_get("reserved_micros")?;
        let cost: i64 = row.try_get("cost_micros")?;
        let started_ms: i64 = row.try_get("started_ms")?;
        let budget_held: i64 = row.try_get("budget_reserved_micros")?;
        let budget_scopes: String = row.try_get("budget_scopes")?;
        let caps: i64 = row.try_get("caps")?;
        if caps > 0 {
            budgets::settle(
                &mut tx,
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
        settle_credits(
            &mut tx,
            request_id,
            &tenant_id,
            reserved,
            cost,
            f.finished_ms,
        )
        .await?;
        if f.status == UsageStatus::Rejected {
            // Nothing ran: the reservation is released, nothing is counted.
            tx.commit().await?;
            return Ok(true);
        }
        let row = Rollup {
            tenant_id: &tenant_id,
            endpoint: &endpoint,
            project_id: project_id.unwrap_or_default(),
            api_key_id: api_key_id.unwrap_or_default(),
            model: &model,
            started_ms,
            cost,
        };
        add_to_rollup(&mut tx, &row, f).await?;
        tx.commit().await?;
        Ok(true)
    }

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

/// Settles a finished request's credits: a prepaid reservation becomes a debit of `cost` (and
/// a ledger entry), the rest is released; a postpaid request of an organization billed through
/// Stripe owes a meter event instead.
async fn settle_credits(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    request_id: &str,
    tenant_id: &TenantId,
    reserved: i64,
    cost: i64,
    finished_ms: i64,
) -> StoreResult<()> {
    // Only a prepaid reservation is settled against the account; a postpaid request
    // (nothing reserved) is billed from the events by invoices.
    let settled = reserved > 0
        && sqlx::query(
            "UPDATE credit_accounts SET balance_micros = balance_micros - $1, \
             reserved_micros = reserved_micros - $2, updated_ms = $3 WHERE tenant_id = $4",
        )
        .bind(cost)
        .bind(reserved)
        .bind(finished_ms)
        .bind(tenant_id)
        .execute(&mut **tx)
        .await?
        .rows_affected()
            == 1;
    if settled && cost > 0 {
        sqlx::query(
            "INSERT INTO credit_ledger (id, tenant_id, kind, amount_micros, request_id, note, \
             created_ms) VALUES ($1, $2, 'usage', $3, $4, NULL, $5)",
        )
        .bind(new_id("cred"))
        .bind(tenant_id)
        .bind(-cost)
        .bind(request_id)
        .bind(finished_ms)
        .execute(&mut **tx)
        .await?;
    }
    if reserved == 0 && cost > 0 {
        // A postpaid request of an organization billed through Stripe owes one meter event
        // (the outbox `billing::stripe`'s reporter sends), written with the usage itself.
        sqlx::query(
            "INSERT INTO stripe_meter_outbox (request_id, tenant_id, customer_id, value, \
             event_ms) SELECT $1, id, stripe_customer_id, $2, $3 FROM tenants \
             WHERE id = $4 AND plan = 'enterprise' AND stripe_customer_id IS NOT NULL \
             ON CONFLICT (request_id) DO NOTHING",
        )
        .bind(request_id)
        .bind(cost)
        .bind(finished_ms)
        .bind(tenant_id)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// What a finished request adds to its minute of the usage rollup.
struct Rollup<'a> {
    tenant_id: &'a TenantId,
    endpoint: &'a str,
    project_id: ProjectId,
    api_key_id: KeyId,
    model: &'a str,
    started_ms: i64,
    cost: i64,
}

/// Adds a finished request to the per-minute rollup the usage API reads.
async fn add_to_rollup(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    r: &Rollup<'_>,
    f: &FinalUsage,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO usage_minutes (tenant_id, endpoint, minute_ms, project_id, api_key_id, \
         model, requests, input_tokens, cached_tokens, output_tokens, cost_micros) \
         VALUES ($1, $2, $3, $4, $5, $6, 1, $7, $8, $9, $10) \
         ON CONFLICT (tenant_id, endpoint, minute_ms, project_id, api_key_id, model) \
         DO UPDATE SET requests = usage_minutes.requests + 1, \
             input_tokens = usage_minutes.input_tokens + excluded.input_tokens, \
             cached_tokens = usage_minutes.cached_tokens + excluded.cached_tokens, \
             output_tokens = usage_minutes.output_tokens + excluded.output_tokens, \
             cost_micros = usage_minutes.cost_micros + excluded.cost_micros",
    )
    .bind(r.tenant_id)
    .bind(r.endpoint)
    .bind(minute_of(r.started_ms))
    .bind(&r.project_id)
    .bind(&r.api_key_id)
    .bind(r.model)
    .bind(f.prompt_tokens as i64)
    .bind(f.cached_tokens.min(f.prompt_tokens) as i64)
    .bind(f.completion_tokens as i64)
    .bind(r.cost)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

fn charged(u: &NewUsage) -> Charged<'_> {
    Charged {
        tenant_id: &u.tenant_id,
        project_id: u.project_id.as_ref(),
        api_key_id: u.api_key_id.as_ref(),
    }
}

async fn insert_row(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    u: &NewUsage,
    status: UsageStatus,
    reserved: Money,
    (budget_held, budget_scopes): (Money, String),
) -> StoreResult<()> {
    let finished = (status != UsageStatus::InProgress).then_some(u.started_ms);
    sqlx::query(
        "INSERT INTO usage_events (request_id, http_request_id, tenant_id, project_id, \
         api_key_id, endpoint, model, status, prompt_tokens, cached_tokens, completion_tokens, \
         ttft_ms, latency_ms, reserved_micros, cost_micros, instance_id, started_ms, \
         heartbeat_ms, finished_ms, budget_reserved_micros, budget_scopes, price_id) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 0, 0, NULL, NULL, $10, 0, $11, $12, $12, $13, \
         $14, $15, $16)",
    )
    .bind(&u.request_id)
    .bind(u.http_request_id.as_deref())
    .bind(&u.tenant_id)
    .bind(u.project_id.as_deref())
    .bind(u.api_key_id.as_deref())
    .bind(u.endpoint.as_str())
    .bind(&u.model)
    .bind(status.as_str())
    .bind(u.prompt_tokens as i64)
    .bind(reserved.micros())
    .bind(&u.instance_id)
    .bind(u.started_ms)
    .bind(finished)
    .bind(budget_held.micros())
    .bind(budget_scopes)
    .bind(u.price_id.as_deref())
    .execute(&mut **tx)
    .await
    .map_err(|e| {
        if is_unique_violation(&e) {
            StoreError::Conflict(format!(
                "A request with id '{}' exists already.",
                u.request_id
            ))
        } else {
            StoreError::Database(e)
        }
    })?;
    Ok(())
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
