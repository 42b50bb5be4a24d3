//! What the rate limiter reads on every inference request: the organization's plan and the
//! caller's project overrides, in one primary-key lookup.

use crate::ids::{ProjectId, TenantId};
use sqlx::Row as _;

use super::api_keys::KeyLimits;
use super::tenants::Plan;
use super::{Store, StoreError, StoreResult};

impl Store {
    /// The tenant's plan and, when `project_id` is given, that project's limit overrides (the
    /// project must belong to the tenant).
    pub async fn rate_limit_context(
        &self,
        tenant_id: &TenantId,
        project_id: Option<&ProjectId>,
    ) -> StoreResult<(Plan, Option<KeyLimits>)> {
        let row = sqlx::query(
            "SELECT t.plan, p.id AS project_id, p.limit_rpm, p.limit_tpm, p.limit_concurrency \
             FROM tenants t LEFT JOIN projects p ON p.tenant_id = t.id AND p.id = $2 \
             WHERE t.id = $1",
        )
        .bind(tenant_id)
        .bind(project_id.map_or("", ProjectId::as_str))
        .fetch_optional(self.pool())
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("No organization '{tenant_id}'.")))?;
        let plan: String = row.try_get("plan")?;
        let found: Option<String> = row.try_get("project_id")?;
        let limits = match found {
            Some(_) => Some(KeyLimits {
                rpm: row.try_get("limit_rpm")?,
                tpm: row.try_get("limit_tpm")?,
                concurrency: row.try_get("limit_concurrency")?,
            }),
            None => None,
        };
        Ok((Plan::parse(&plan).unwrap_or(Plan::Free), limits))
    }
}
