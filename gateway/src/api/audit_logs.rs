//! `/v1/organization/audit_logs`: newest first.

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::body::QueryArgs;
use super::list::{list_of, HasId, ListQuery};
use crate::auth::{Permission, Principal};
use crate::error::{ApiError, ErrorBody};
use crate::server::AppState;
use crate::store::audit::AuditEntry;
use crate::store::ms_to_secs;

/// Who acted, or what was acted on.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditRef {
    /// `user` or `api_key` for actors; `project`, `api_key`, `user`, `invite`, `session` for
    /// targets.
    #[serde(rename = "type")]
    pub kind: String,
    pub id: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditLogObject {
    pub id: String,
    /// Always `organization.audit_log`.
    #[schema(example = "organization.audit_log")]
    pub object: &'static str,
    /// The action, e.g. `project.created`, `api_key.deleted`, `login.succeeded`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Unix seconds.
    pub effective_at: i64,
    pub actor: AuditRef,
    pub target: AuditRef,
    pub ip: Option<String>,
    pub request_id: Option<String>,
}

impl From<AuditEntry> for AuditLogObject {
    fn from(e: AuditEntry) -> Self {
        AuditLogObject {
            id: e.id,
            object: "organization.audit_log",
            kind: e.action,
            effective_at: ms_to_secs(e.created_ms),
            actor: AuditRef {
                kind: e.actor_type,
                id: e.actor_id,
            },
            target: AuditRef {
                kind: e.target_type,
                id: e.target_id,
            },
            ip: e.ip,
            request_id: e.request_id,
        }
    }
}

impl HasId for AuditLogObject {
    fn id(&self) -> &str {
        &self.id
    }
}

list_of!(AuditLogList, AuditLogObject);

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditLogQuery {
    /// How many entries to return, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
    /// The id of the last entry of the previous page.
    pub after: Option<String>,
    /// Only entries of this type, e.g. `project.created`.
    #[serde(rename = "type")]
    pub kind: Option<String>,
}

/// List the organization's audit log, newest first.
#[utoipa::path(get, path = "/v1/organization/audit_logs", tag = "Audit logs",
    params(AuditLogQuery),
    responses((status = 200, body = AuditLogList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_audit_logs(
    state: web::Data<AppState>,
    principal: Principal,
    QueryArgs(query): QueryArgs<AuditLogQuery>,
) -> Result<HttpResponse, ApiError> {
    principal.require_organization(Permission::ReadAuditLog)?;
    let page = ListQuery {
        limit: query.limit,
        after: query.after,
    }
    .page()?;
    let entries = state
        .store
        .list_audit_logs(&principal.tenant_id, query.kind.as_deref(), &page)
        .await?;
    Ok(HttpResponse::Ok().json(AuditLogList::from(entries.map(AuditLogObject::from))))
}
