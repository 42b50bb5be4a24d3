//! The audit log: who did what to which resource, from where, in which request.

use crate::ids::TenantId;
use sqlx::Row as _;

use super::page::{Listing, Page, PageRequest};
use super::{created_ms, Row, Store, StoreResult};
use crate::secret::new_id;

/// One entry to record; `action` reads like OpenAI's audit event types (`project.created`).
#[derive(Debug, Clone)]
pub struct AuditEvent<'a> {
    pub tenant_id: &'a TenantId,
    pub action: &'a str,
    pub actor_type: &'a str,
    pub actor_id: &'a str,
    pub target_type: &'a str,
    pub target_id: &'a str,
    pub ip: Option<&'a str>,
    pub request_id: Option<&'a str>,
}

#[derive(Debug, Clone)]
pub struct AuditEntry {
    pub id: String,
    pub action: String,
    pub actor_type: String,
    pub actor_id: String,
    pub target_type: String,
    pub target_id: String,
    pub ip: Option<String>,
    pub request_id: Option<String>,
    pub created_ms: i64,
}

const COLUMNS: &str =
    "id, action, actor_type, actor_id, target_type, target_id, ip, request_id, created_ms";

fn from_row(row: &Row) -> StoreResult<AuditEntry> {
    Ok(AuditEntry {
        id: row.try_get("id")?,
        action: row.try_get("action")?,
        actor_type: row.try_get("actor_type")?,
        actor_id: row.try_get("actor_id")?,
        target_type: row.try_get("target_type")?,
        target_id: row.try_get("target_id")?,
        ip: row.try_get("ip")?,
        request_id: row.try_get("request_id")?,
        created_ms: row.try_get("created_ms")?,
    })
}

impl Store {
    pub async fn record_audit(&self, event: AuditEvent<'_>) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO audit_logs (id, tenant_id, action, actor_type, actor_id, target_type, target_id, \
             ip, request_id, created_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(new_id("audit"))
        .bind(event.tenant_id)
        .bind(event.action)
        .bind(event.actor_type)
        .bind(event.actor_id)
        .bind(event.target_type)
        .bind(event.target_id)
        .bind(event.ip)
        .bind(event.request_id)
        .bind(created_ms())
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Newest first, optionally only one action.
    pub async fn list_audit_logs(
        &self,
        tenant_id: &TenantId,
        action: Option<&str>,
        page: &PageRequest,
    ) -> StoreResult<Page<AuditEntry>> {
        let filter = if action.is_some() {
            "AND action = $2"
        } else {
            ""
        };
        let binds: Vec<&str> = action.into_iter().collect();
        let listing = Listing {
            columns: COLUMNS,
            table: "audit_logs",
            filter,
            binds: &binds,
            newest_first: true,
            from_row,
        };
        self.fetch_page(tenant_id, listing, page).await
    }
}
