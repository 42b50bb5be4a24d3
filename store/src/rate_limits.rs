//! What the rate limiter reads on every inference request: the organization's plan and the
//! caller's project overrides, in one primary-key lookup.

use crate::ids::{ProjectId, TenantId};
use sqlx::Row as _;

use super::api_keys::KeyLimits;
use super::tenants::Plan;
use super::{Store, StoreError, StoreResult};

/// The organization's plan and, for a project's caller, that project's limit overrides.
pub type RateLimitContext = (Plan, Option<KeyLimits>);

/// The columns [`context_from_row`] reads, from `tenants rl_t` and `projects rl_p` (the joins
/// [`CONTEXT_JOINS`] adds to a query over `api_keys k`).
pub(crate) const CONTEXT_COLUMNS: &str = "rl_t.plan AS rl_plan, rl_p.id AS rl_project_id, \
     rl_p.limit_rpm AS rl_limit_rpm, rl_p.limit_tpm AS rl_limit_tpm, \
     rl_p.limit_concurrency AS rl_limit_concurrency";

pub(crate) const CONTEXT_JOINS: &str = "JOIN tenants rl_t ON rl_t.id = k.tenant_id \
     LEFT JOIN projects rl_p ON rl_p.tenant_id = k.tenant_id AND rl_p.id = k.project_id";

pub(crate) fn context_from_row(row: &super::Row) -> StoreResult<RateLimitContext> {
    let plan: String = row.try_get("rl_plan")?;
    let found: Option<String> = row.try_get("rl_project_id")?;
    let limits = match found {
        Some(_) => Some(KeyLimits {
            rpm: row.try_get("rl_limit_rpm")?,
            tpm: row.try_get("rl_limit_tpm")?,
            concurrency: row.try_get("rl_limit_concurrency")?,
        }),
        None => None,
    };
    Ok((Plan::parse(&plan).unwrap_or(Plan::Free), limits))
}

impl Store {
    /// The tenant's plan and, when `project_id` is given, that project's limit overrides (the
    /// project must belong to the tenant). An API key's caller has it from authentication
    /// ([`Store::authenticate_api_key_with_limits`]).
    pub async fn rate_limit_context(
        &self,
        tenant_id: &TenantId,
        project_id: Option<&ProjectId>,
    ) -> StoreResult<RateLimitContext> {
        let row = sqlx::query(&format!(
            "SELECT {CONTEXT_COLUMNS} FROM tenants rl_t LEFT JOIN projects rl_p \
             ON rl_p.tenant_id = rl_t.id AND rl_p.id = $2 WHERE rl_t.id = $1"
        ))
        .bind(tenant_id)
        .bind(project_id.map_or("", ProjectId::as_str))
        .fetch_optional(self.pool())
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("No organization '{tenant_id}'.")))?;
        context_from_row(&row)
    }
}
