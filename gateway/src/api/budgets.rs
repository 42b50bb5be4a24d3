//! Spend caps: the organization's and a project's monthly budget, an API key's lifetime budget.
//! `GET` shows the cap and the spend it counts, `POST` sets it, `DELETE` clears it. Owners and
//! admins (sessions or admin keys) set and clear them; whoever may read usage reads them.
//!
//! `/v1/organization/budget`, `/v1/organization/projects/{project_id}/budget`,
//! `/v1/organization/projects/{project_id}/api_keys/{key_id}/budget`.

use crate::store::{KeyId, ProjectId};
use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::audit;
use super::body::JsonBody;
use crate::auth::{Permission, Principal};
use crate::error::{ApiError, ErrorBody};
use crate::metering::Money;
use crate::server::AppState;
use crate::store::api_keys::KeyOwner;
use crate::store::budgets::{Budget, BudgetScope};
use crate::store::ms_to_secs;

/// The largest cap accepted: $1,000,000,000 in micro-USD.
const MAX_LIMIT_MICROS: i64 = 1_000_000_000 * 1_000_000;

/// A spend cap and what it counts.
#[derive(Debug, Serialize, ToSchema)]
pub struct BudgetObject {
    /// Always `organization.budget`.
    #[schema(example = "organization.budget")]
    pub object: &'static str,
    /// `organization`, `project` or `api_key`.
    #[schema(example = "project")]
    pub scope: &'static str,
    /// The organization's, project's or key's id.
    pub scope_id: String,
    /// `monthly` (organization and project: spend starts again on the 1st of each month, UTC)
    /// or `lifetime` (API key: everything the key ever spent).
    #[schema(example = "monthly")]
    pub period: &'static str,
    /// The cap in micro-USD (1 USD = 1,000,000); null when none is set.
    pub limit_micros: Option<i64>,
    /// Spent in the current period, micro-USD.
    pub spent_micros: i64,
    /// Held by requests in flight (their maximum cost), micro-USD.
    pub reserved_micros: i64,
    /// What new requests can still reserve, micro-USD; null without a cap.
    pub available_micros: Option<i64>,
    /// Unix seconds: the start of the current period (null for lifetime budgets).
    pub period_start: Option<i64>,
    /// Unix seconds: when a monthly budget starts again (null for lifetime budgets).
    pub resets_at: Option<i64>,
}

impl From<Budget> for BudgetObject {
    fn from(b: Budget) -> Self {
        let monthly = b.resets_ms();
        BudgetObject {
            object: "organization.budget",
            scope: b.scope.as_str(),
            period: b.period.as_str(),
            limit_micros: b.limit.map(Money::micros),
            spent_micros: b.spent.micros(),
            reserved_micros: b.reserved.micros(),
            available_micros: b.available().map(Money::micros),
            period_start: monthly.map(|_| ms_to_secs(b.period_start_ms)),
            resets_at: monthly.map(ms_to_secs),
            scope_id: b.scope_id,
        }
    }
}

/// A new cap.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BudgetUpdate {
    /// The cap in micro-USD (1 USD = 1,000,000): a positive integer up to 10^15. Requests whose
    /// maximum cost (prompt plus `max_tokens` at the model's prices) does not fit in what is
    /// left are refused with 429 `insufficient_quota`.
    #[schema(minimum = 1, maximum = 1_000_000_000_000_000_i64)]
    pub limit_micros: i64,
}

/// Which cap a route is about, checked to belong to the caller's organization.
async fn target(
    state: &AppState,
    principal: &Principal,
    scope: BudgetScope,
    project_id: Option<&str>,
    key_id: Option<&str>,
) -> Result<String, ApiError> {
    match (scope, project_id, key_id) {
        (BudgetScope::Organization, _, _) => Ok(principal.tenant_id.to_string()),
        (BudgetScope::Project, Some(project), _) => Ok(state
            .store
            .project(&principal.tenant_id, &ProjectId::from(project))
            .await?
            .id
            .into_string()),
        (BudgetScope::ApiKey, Some(project), Some(key)) => Ok(state
            .store
            .api_key(
                &principal.tenant_id,
                KeyOwner::Project(project),
                &KeyId::from(key),
            )
            .await?
            .id
            .into_string()),
        _ => Err(ApiError::Internal("a budget route without its ids".into())),
    }
}

async fn show(
    state: &AppState,
    principal: &Principal,
    scope: BudgetScope,
    project_id: Option<&str>,
    key_id: Option<&str>,
) -> Result<HttpResponse, ApiError> {
    match project_id {
        Some(project) => principal.require_project(Permission::ReadUsage, project)?,
        None => principal.require_organization(Permission::ReadUsage)?,
    }
    let id = target(state, principal, scope, project_id, key_id).await?;
    let budget = state.store.budget(&principal.tenant_id, scope, &id).await?;
    Ok(HttpResponse::Ok().json(BudgetObject::from(budget)))
}

async fn set(
    state: &AppState,
    principal: &Principal,
    scope: BudgetScope,
    project_id: Option<&str>,
    key_id: Option<&str>,
    body: JsonBody<BudgetUpdate>,
) -> Result<HttpResponse, ApiError> {
    principal.require_organization(Permission::ManageProjects)?;
    let body = body.parse()?;
    if body.limit_micros <= 0 || body.limit_micros > MAX_LIMIT_MICROS {
        return Err(ApiError::invalid(
            "limit_micros",
            format!(
                "'limit_micros' must be a positive integer of micro-USD, at most {MAX_LIMIT_MICROS}."
            ),
        ));
    }
    let id = target(state, principal, scope, project_id, key_id).await?;
    let budget = state
        .store
        .set_budget(
            &principal.tenant_id,
            scope,
            &id,
            Money::from_micros(body.limit_micros),
        )
        .await?;
    audit(state, principal, "budget.updated", scope.as_str(), &id).await?;
    Ok(HttpResponse::Ok().json(BudgetObject::from(budget)))
}

async fn clear(
    state: &AppState,
    principal: &Principal,
    scope: BudgetScope,
    project_id: Option<&str>,
    key_id: Option<&str>,
) -> Result<HttpResponse, ApiError> {
    principal.require_organization(Permission::ManageProjects)?;
    let id = target(state, principal, scope, project_id, key_id).await?;
    if state
        .store
        .clear_budget(&principal.tenant_id, scope, &id)
        .await?
    {
        audit(state, principal, "budget.deleted", scope.as_str(), &id).await?;
    }
    let budget = state.store.budget(&principal.tenant_id, scope, &id).await?;
    Ok(HttpResponse::Ok().json(BudgetObject::from(budget)))
}

/// The organization's monthly spend cap and this month's spend.
#[utoipa::path(get, path = "/v1/organization/budget", tag = "Usage",
    responses((status = 200, body = BudgetObject), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_organization_budget(
    state: web::Data<AppState>,
    principal: Principal,
) -> Result<HttpResponse, ApiError> {
    show(&state, &principal, BudgetScope::Organization, None, None).await
}

/// Set the organization's monthly spend cap (owners and admins).
#[utoipa::path(post, path = "/v1/organization/budget", tag = "Usage",
    request_body = BudgetUpdate,
    responses((status = 200, body = BudgetObject), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn set_organization_budget(
    state: web::Data<AppState>,
    principal: Principal,
    body: JsonBody<BudgetUpdate>,
) -> Result<HttpResponse, ApiError> {
    set(
        &state,
        &principal,
        BudgetScope::Organization,
        None,
        None,
        body,
    )
    .await
}

/// Clear the organization's monthly spend cap (owners and admins).
#[utoipa::path(delete, path = "/v1/organization/budget", tag = "Usage",
    responses((status = 200, body = BudgetObject), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn delete_organization_budget(
    state: web::Data<AppState>,
    principal: Principal,
) -> Result<HttpResponse, ApiError> {
    clear(&state, &principal, BudgetScope::Organization, None, None).await
}

/// A project's monthly spend cap (all its keys together) and this month's spend.
#[utoipa::path(get, path = "/v1/organization/projects/{project_id}/budget", tag = "Projects",
    params(("project_id" = String, Path, description = "The project's id")),
    responses((status = 200, body = BudgetObject), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_project_budget(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    show(
        &state,
        &principal,
        BudgetScope::Project,
        Some(path.as_str()),
        None,
    )
    .await
}

/// Set a project's monthly spend cap (owners and admins).
#[utoipa::path(post, path = "/v1/organization/projects/{project_id}/budget", tag = "Projects",
    params(("project_id" = String, Path, description = "The project's id")),
    request_body = BudgetUpdate,
    responses((status = 200, body = BudgetObject), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn set_project_budget(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<String>,
    body: JsonBody<BudgetUpdate>,
) -> Result<HttpResponse, ApiError> {
    set(
        &state,
        &principal,
        BudgetScope::Project,
        Some(path.as_str()),
        None,
        body,
    )
    .await
}

/// Clear a project's monthly spend cap (owners and admins).
#[utoipa::path(delete, path = "/v1/organization/projects/{project_id}/budget", tag = "Projects",
    params(("project_id" = String, Path, description = "The project's id")),
    responses((status = 200, body = BudgetObject), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn delete_project_budget(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    clear(
        &state,
        &principal,
        BudgetScope::Project,
        Some(path.as_str()),
        None,
    )
    .await
}

/// A project API key's lifetime budget and what the key has spent.
#[utoipa::path(get, path = "/v1/organization/projects/{project_id}/api_keys/{key_id}/budget", tag = "API keys",
    params(("project_id" = String, Path, description = "The project's id"),
        ("key_id" = String, Path, description = "The key's id")),
    responses((status = 200, body = BudgetObject), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_key_budget(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (project, key) = path.into_inner();
    show(
        &state,
        &principal,
        BudgetScope::ApiKey,
        Some(project.as_str()),
        Some(key.as_str()),
    )
    .await
}

/// Set a project API key's lifetime budget (owners and admins). The key's spend so far counts.
#[utoipa::path(post, path = "/v1/organization/projects/{project_id}/api_keys/{key_id}/budget", tag = "API keys",
    params(("project_id" = String, Path, description = "The project's id"),
        ("key_id" = String, Path, description = "The key's id")),
    request_body = BudgetUpdate,
    responses((status = 200, body = BudgetObject), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn set_key_budget(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<(String, String)>,
    body: JsonBody<BudgetUpdate>,
) -> Result<HttpResponse, ApiError> {
    let (project, key) = path.into_inner();
    set(
        &state,
        &principal,
        BudgetScope::ApiKey,
        Some(project.as_str()),
        Some(key.as_str()),
        body,
    )
    .await
}

/// Clear a project API key's budget (owners and admins).
#[utoipa::path(delete, path = "/v1/organization/projects/{project_id}/api_keys/{key_id}/budget", tag = "API keys",
    params(("project_id" = String, Path, description = "The project's id"),
        ("key_id" = String, Path, description = "The key's id")),
    responses((status = 200, body = BudgetObject), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn delete_key_budget(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (project, key) = path.into_inner();
    clear(
        &state,
        &principal,
        BudgetScope::ApiKey,
        Some(project.as_str()),
        Some(key.as_str()),
    )
    .await
}
