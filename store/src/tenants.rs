//! Tenants (organizations) and their plan.

use crate::ids::TenantId;
use serde::{Deserialize, Serialize};
use sqlx::Row as _;
use utoipa::ToSchema;

use super::{created_ms, Row, Store, StoreError, StoreResult};
use crate::secret::new_id;

/// What a tenant pays for; the scheduler weighs tenants by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Plan {
    Free,
    PayAsYouGo,
    Enterprise,
}

impl Plan {
    pub fn as_str(self) -> &'static str {
        match self {
            Plan::Free => "free",
            Plan::PayAsYouGo => "pay_as_you_go",
            Plan::Enterprise => "enterprise",
        }
    }

    /// The tenant's weight in the scheduler's fair share: a paying tenant gets twice a free
    /// one's share of a busy engine, an enterprise tenant four times.
    pub fn scheduler_weight(self) -> f64 {
        match self {
            Plan::Free => 1.0,
            Plan::PayAsYouGo => 2.0,
            Plan::Enterprise => 4.0,
        }
    }

    pub fn parse(s: &str) -> Option<Plan> {
        [Plan::Free, Plan::PayAsYouGo, Plan::Enterprise]
            .into_iter()
            .find(|p| p.as_str() == s)
    }
}

#[derive(Debug, Clone)]
pub struct Tenant {
    pub id: TenantId,
    pub name: String,
    pub plan: Plan,
    pub created_ms: i64,
}

pub(crate) fn tenant_from_row(row: &Row) -> StoreResult<Tenant> {
    let plan: String = row.try_get("plan")?;
    Ok(Tenant {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        plan: Plan::parse(&plan).unwrap_or(Plan::Free),
        created_ms: row.try_get("created_ms")?,
    })
}

impl Store {
    pub async fn create_tenant(&self, name: &str, plan: Plan) -> StoreResult<Tenant> {
        let tenant = Tenant {
            id: TenantId::new(new_id("org")),
            name: name.to_owned(),
            plan,
            created_ms: created_ms(),
        };
        sqlx::query("INSERT INTO tenants (id, name, plan, created_ms) VALUES ($1, $2, $3, $4)")
            .bind(&tenant.id)
            .bind(&tenant.name)
            .bind(tenant.plan.as_str())
            .bind(tenant.created_ms)
            .execute(self.pool())
            .await?;
        Ok(tenant)
    }

    pub async fn tenant(&self, tenant_id: &TenantId) -> StoreResult<Tenant> {
        let row = sqlx::query("SELECT id, name, plan, created_ms FROM tenants WHERE id = $1")
            .bind(tenant_id)
            .fetch_optional(self.pool())
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("No organization '{tenant_id}'.")))?;
        tenant_from_row(&row)
    }
}
