//! Spend caps: a monthly cap per organization and per project, a lifetime budget per API key.
//!
//! A cap's row holds what its period spent and what in-flight requests reserve. Admission
//! ([`reserve`], called by `Store::admit_usage` in its transaction, after the prepaid
//! reservation) takes the request's maximum cost on every cap that applies with one
//! conditional UPDATE each (`WHERE limit - reserved - spent >= cost`), so that concurrent
//! requests, on any number of gateway replicas, can never hold more than a cap; the end of the
//! request ([`settle`], in `Store::finalize_usage`'s transaction) adds the real cost and
//! releases the reservation. A monthly cap starts a new period when the first admission or
//! settlement of a new UTC month touches it: a request's cost counts in the month it ends.
//!
//! A cap set for the first time starts from the scope's spend so far in the period, read from
//! the usage rollup, so that setting a cap mid-month counts what the month already spent.

use crate::ids::{KeyId, ProjectId, TenantId};
use sqlx::Row as _;

use super::{now_ms, Row, Store, StoreError, StoreResult};
use crate::money::Money;
use crate::period::Period;

/// What a cap applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum BudgetScope {
    /// The whole organization (monthly).
    Organization,
    /// All of a project's keys together (monthly).
    Project,
    /// One API key (lifetime: the key's spend since it was created).
    ApiKey,
}

impl BudgetScope {
    pub const ALL: [BudgetScope; 3] = [
        BudgetScope::Organization,
        BudgetScope::Project,
        BudgetScope::ApiKey,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            BudgetScope::Organization => "organization",
            BudgetScope::Project => "project",
            BudgetScope::ApiKey => "api_key",
        }
    }

    pub fn parse(s: &str) -> Option<BudgetScope> {
        BudgetScope::ALL.into_iter().find(|v| v.as_str() == s)
    }

    /// Organization and project caps are monthly (like OpenAI's project budgets); a key's
    /// budget is for its lifetime (like a prepaid allowance handed to one integration).
    pub fn period(self) -> BudgetPeriod {
        match self {
            BudgetScope::Organization | BudgetScope::Project => BudgetPeriod::Monthly,
            BudgetScope::ApiKey => BudgetPeriod::Lifetime,
        }
    }

    /// The `reason` label of `starfire_budget_refusals_total` for this cap.
    pub fn budget_reason(self) -> &'static str {
        match self {
            BudgetScope::Organization => "organization_budget",
            BudgetScope::Project => "project_budget",
            BudgetScope::ApiKey => "api_key_budget",
        }
    }

    /// How a refusal names the cap.
    pub fn describe(self) -> &'static str {
        match self {
            BudgetScope::Organization => "your organization's monthly budget",
            BudgetScope::Project => "this project's monthly budget",
            BudgetScope::ApiKey => "this API key's budget",
        }
    }
}

/// When a cap's spend starts again from zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BudgetPeriod {
    /// Every calendar month (UTC).
    Monthly,
    /// Never.
    Lifetime,
}

impl BudgetPeriod {
    pub fn as_str(self) -> &'static str {
        match self {
            BudgetPeriod::Monthly => "monthly",
            BudgetPeriod::Lifetime => "lifetime",
        }
    }

    /// The start of the period `ms` falls in (0 for a lifetime budget).
    pub fn start_of(self, ms: i64) -> i64 {
        match self {
            BudgetPeriod::Monthly => month_start_ms(ms),
            BudgetPeriod::Lifetime => 0,
        }
    }
}

/// A cap's state, as of a moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Budget {
    pub tenant_id: TenantId,
    pub scope: BudgetScope,
    pub scope_id: String,
    pub period: BudgetPeriod,
    /// `None`: no cap is set (spend is still reported).
    pub limit: Option<Money>,
    /// Start of the current period (0 for lifetime).
    pub period_start_ms: i64,
    /// Spent in the current period.
    pub spent: Money,
    /// Held by requests in flight.
    pub reserved: Money,
}

impl Budget {
    /// What new requests can still reserve; `None` without a cap.
    pub fn available(&self) -> Option<Money> {
        self.limit.map(|l| {
            Money::from_micros((l.micros() - self.spent.micros() - self.reserved.micros()).max(0))
        })
    }

    /// When a monthly budget's next period starts.
    pub fn resets_ms(&self) -> Option<i64> {
        (self.period == BudgetPeriod::Monthly).then(|| next_month_start_ms(self.period_start_ms))
    }
}

/// The scopes a request is charged to: its organization, and its project and key if any.
#[derive(Debug, Clone, Copy)]
pub struct Charged<'a> {
    pub tenant_id: &'a TenantId,
    pub project_id: Option<&'a ProjectId>,
    pub api_key_id: Option<&'a KeyId>,
}

/// A cap that refused a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverBudget {
    pub scope: BudgetScope,
    pub limit: Money,
    pub available: Money,
}

/// Midnight UTC of the first day of the month `ms` falls in (the billing period's start).
pub fn month_start_ms(ms: i64) -> i64 {
    Period::containing(ms).start_ms()
}

/// Midnight UTC of the first day of the month after the one `ms` falls in.
pub fn next_month_start_ms(ms: i64) -> i64 {
    Period::containing(ms).end_ms()
}

const COLUMNS: &str = "tenant_id, scope, scope_id, period, limit_micros, period_start_ms, \
     spent_micros, reserved_micros";

fn from_row(row: &Row, now: i64) -> StoreResult<Budget> {
    let scope: String = row.try_get("scope")?;
    let scope = BudgetScope::parse(&scope)
        .ok_or_else(|| StoreError::Conflict(format!("Unknown budget scope '{scope}'.")))?;
    let period = scope.period();
    let mut budget = Budget {
        tenant_id: row.try_get("tenant_id")?,
        scope,
        scope_id: row.try_get("scope_id")?,
        period,
        limit: Some(Money::from_micros(row.try_get("limit_micros")?)),
        period_start_ms: row.try_get("period_start_ms")?,
        spent: Money::from_micros(row.try_get("spent_micros")?),
        reserved: Money::from_micros(row.try_get("reserved_micros")?),
    };
    // A monthly row nobody touched since the month turned reads as the new month.
    let current = period.start_of(now);
    if budget.period_start_ms < current {
        budget.period_start_ms = current;
        budget.spent = Money::ZERO;
    }
    Ok(budget)
}

/// `spent` of a monthly row as of the period starting at `$1`.
const SPENT_NOW: &str = "CASE WHEN period = 'monthly' AND period_start_ms < $1 THEN 0 \
     ELSE spent_micros END";
const PERIOD_NOW: &str = "CASE WHEN period = 'monthly' AND period_start_ms < $1 THEN $1 \
     ELSE period_start_ms END";

/// The condition on `budgets` rows that selects the caps of an organization, project and key
/// (SQL expressions: placeholders or columns; a request without a project or key has '').
fn caps_where(tenant: &str, project: &str, key: &str) -> String {
    format!(
        "tenant_id = {tenant} AND ((scope = 'organization' AND scope_id = {tenant}) \
         OR (scope = 'project' AND scope_id = {project}) OR (scope = 'api_key' AND scope_id = {key}))"
    )
}

/// A scalar subquery counting those caps, for a statement the transaction runs anyway to carry
/// (`RETURNING ..., {caps_count} AS caps`): with none, the per-cap work and its own read of the
/// caps are skipped, one round trip fewer per admission and per settlement.
pub(crate) fn caps_count(tenant: &str, project: &str, key: &str) -> String {
    format!(
        "(SELECT COUNT(*) FROM budgets WHERE {})",
        caps_where(tenant, project, key)
    )
}

/// The caps set on `charged`'s scopes, in scope order.
async fn caps_of(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    charged: &Charged<'_>,
) -> StoreResult<Vec<(BudgetScope, String)>> {
    let rows = sqlx::query(&format!(
        "SELECT scope, scope_id FROM budgets WHERE {}",
        caps_where("$1", "$2", "$3")
    ))
    .bind(charged.tenant_id)
    .bind(charged.project_id.map_or("", ProjectId::as_str))
    .bind(charged.api_key_id.map_or("", KeyId::as_str))
    .fetch_all(&mut **tx)
    .await?;
    let mut caps = Vec::with_capacity(rows.len());
    for row in rows {
        let scope: String = row.try_get("scope")?;
        if let Some(scope) = BudgetScope::parse(&scope) {
            caps.push((scope, row.try_get("scope_id")?));
        }
    }
    // One lock order for every transaction (organization, project, key): no deadlocks.
    caps.sort();
    Ok(caps)
}

/// Reserves `cost` on every cap of `charged` at `now_ms`, or reports the first that cannot
/// hold it (the caller then rolls the transaction back). Returns the scopes reserved on.
pub(crate) async fn reserve(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    charged: &Charged<'_>,
    cost: Money,
    now: i64,
) -> StoreResult<Result<Vec<BudgetScope>, OverBudget>> {
    let mut reserved = Vec::new();
    for (scope, scope_id) in caps_of(tx, charged).await? {
        let done = sqlx::query(&format!(
            "UPDATE budgets SET spent_micros = {SPENT_NOW}, period_start_ms = {PERIOD_NOW}, \
             reserved_micros = reserved_micros + $2, updated_ms = $3 \
             WHERE tenant_id = $4 AND scope = $5 AND scope_id = $6 \
             AND limit_micros - reserved_micros - {SPENT_NOW} >= $2"
        ))
        .bind(month_start_ms(now))
        .bind(cost.micros())
        .bind(now)
        .bind(charged.tenant_id)
        .bind(scope.as_str())
        .bind(&scope_id)
        .execute(&mut **tx)
        .await?
        .rows_affected()
            == 1;
        if done {
            reserved.push(scope);
            continue;
        }
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM budgets WHERE tenant_id = $1 AND scope = $2 AND scope_id = $3"
        ))
        .bind(charged.tenant_id)
        .bind(scope.as_str())
        .bind(&scope_id)
        .fetch_optional(&mut **tx)
        .await?;
        // Cleared since it was read: no cap any more.
        let Some(row) = row else { continue };
        let budget = from_row(&row, now)?;
        return Ok(Err(OverBudget {
            scope,
            limit: budget.limit.unwrap_or(Money::ZERO),
            available: budget.available().unwrap_or(Money::ZERO),
        }));
    }
    Ok(Ok(reserved))
}

/// Adds a finished request's `cost` to every cap of `charged` (the period of `now`), and
/// releases `held` on the scopes it was reserved on.
pub(crate) async fn settle(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    charged: &Charged<'_>,
    reserved_on: &str,
    held: Money,
    cost: Money,
    now: i64,
) -> StoreResult<()> {
    for (scope, scope_id) in caps_of(tx, charged).await? {
        let release = if reserved_on.split(',').any(|s| s == scope.as_str()) {
            held.micros()
        } else {
            0
        };
        sqlx::query(&format!(
            "UPDATE budgets SET spent_micros = {SPENT_NOW} + $2, period_start_ms = {PERIOD_NOW}, \
             reserved_micros = CASE WHEN reserved_micros > $3 THEN reserved_micros - $3 ELSE 0 END, \
             updated_ms = $4 WHERE tenant_id = $5 AND scope = $6 AND scope_id = $7"
        ))
        .bind(month_start_ms(now))
        .bind(cost.micros())
        .bind(release)
        .bind(now)
        .bind(charged.tenant_id)
        .bind(scope.as_str())
        .bind(&scope_id)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// `scopes` as stored on the usage row.
pub(crate) fn scopes_text(scopes: &[BudgetScope]) -> String {
    scopes
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

impl Store {
    /// The cap of one scope, or what the scope spent in its period when none is set. The
    /// caller has checked that the scope (project, key) belongs to the tenant.
    pub async fn budget(
        &self,
        tenant_id: &TenantId,
        scope: BudgetScope,
        scope_id: &str,
    ) -> StoreResult<Budget> {
        let now = now_ms();
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM budgets WHERE tenant_id = $1 AND scope = $2 AND scope_id = $3"
        ))
        .bind(tenant_id)
        .bind(scope.as_str())
        .bind(scope_id)
        .fetch_optional(self.pool())
        .await?;
        if let Some(row) = row {
            return from_row(&row, now);
        }
        let period_start_ms = scope.period().start_of(now);
        let spent = self
            .spent_since(tenant_id, scope, scope_id, period_start_ms)
            .await?;
        Ok(Budget {
            tenant_id: tenant_id.to_owned(),
            scope,
            scope_id: scope_id.to_owned(),
            period: scope.period(),
            limit: None,
            period_start_ms,
            spent,
            reserved: Money::ZERO,
        })
    }

    /// Sets (or changes) a cap. A new cap starts from the scope's spend in the current
    /// period; a changed one keeps its spend and reservations.
    pub async fn set_budget(
        &self,
        tenant_id: &TenantId,
        scope: BudgetScope,
        scope_id: &str,
        limit: Money,
    ) -> StoreResult<Budget> {
        let now = now_ms();
        let period_start_ms = scope.period().start_of(now);
        let spent = self
            .spent_since(tenant_id, scope, scope_id, period_start_ms)
            .await?;
        sqlx::query(
            "INSERT INTO budgets (tenant_id, scope, scope_id, period, limit_micros, \
             period_start_ms, spent_micros, reserved_micros, updated_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, 0, $8) \
             ON CONFLICT (tenant_id, scope, scope_id) DO UPDATE SET \
                 limit_micros = excluded.limit_micros, updated_ms = excluded.updated_ms",
        )
        .bind(tenant_id)
        .bind(scope.as_str())
        .bind(scope_id)
        .bind(scope.period().as_str())
        .bind(limit.micros())
        .bind(period_start_ms)
        .bind(spent.micros())
        .bind(now)
        .execute(self.pool())
        .await?;
        self.budget(tenant_id, scope, scope_id).await
    }

    /// Removes a cap. Returns whether there was one.
    pub async fn clear_budget(
        &self,
        tenant_id: &TenantId,
        scope: BudgetScope,
        scope_id: &str,
    ) -> StoreResult<bool> {
        let done = sqlx::query(
            "DELETE FROM budgets WHERE tenant_id = $1 AND scope = $2 AND scope_id = $3",
        )
        .bind(tenant_id)
        .bind(scope.as_str())
        .bind(scope_id)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// What a scope's finished requests that started at or after `since_ms` cost, from the
    /// per-minute rollup.
    async fn spent_since(
        &self,
        tenant_id: &TenantId,
        scope: BudgetScope,
        scope_id: &str,
        since_ms: i64,
    ) -> StoreResult<Money> {
        let filter = match scope {
            BudgetScope::Organization => "$3 = $1",
            BudgetScope::Project => "project_id = $3",
            BudgetScope::ApiKey => "api_key_id = $3",
        };
        let row = sqlx::query(&format!(
            "SELECT CAST(COALESCE(SUM(cost_micros), 0) AS BIGINT) AS spent FROM usage_minutes \
             WHERE tenant_id = $1 AND minute_ms >= $2 AND {filter}"
        ))
        .bind(tenant_id)
        .bind(since_ms)
        .bind(scope_id)
        .fetch_one(self.pool())
        .await?;
        Ok(Money::from_micros(row.try_get("spent")?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_start_at_midnight_utc_on_the_first() {
        // 2026-11-28T21:00:00Z.
        let t = 1_795_899_600_000;
        assert_eq!(month_start_ms(t), 1_793_491_200_000); // 2026-11-01
        assert_eq!(next_month_start_ms(t), 1_796_083_200_000); // 2026-12-01
                                                               // December rolls into the next year; a month start is its own start.
        let dec = next_month_start_ms(t);
        assert_eq!(month_start_ms(dec), dec);
        assert_eq!(next_month_start_ms(dec), 1_798_761_600_000); // 2027-01-01
        assert_eq!(month_start_ms(dec - 1), month_start_ms(t));
        // Leap February: 2028-02-29 is in February.
        let feb29 = 1_835_395_200_000; // 2028-02-29
        assert_eq!(month_start_ms(feb29), 1_832_976_000_000); // 2028-02-01
        assert_eq!(next_month_start_ms(feb29), 1_835_481_600_000); // 2028-03-01
        assert_eq!(month_start_ms(0), 0);
        assert_eq!(BudgetPeriod::Lifetime.start_of(t), 0);
    }
}
