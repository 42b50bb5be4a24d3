//! `/v1/organization/projects/{project_id}/api_keys`: a project's API keys.

use crate::store::{KeyId, ProjectId};
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::body::{JsonBody, QueryArgs};
use super::idempotency;
use super::list::{list_of, HasId, ListQuery};
use super::{audit, validate, DeletedObject};
use crate::auth::api_key::{self, KeyKind};
use crate::auth::{Permission, Principal};
use crate::error::{ApiError, ErrorBody};
use crate::server::AppState;
use crate::store::api_keys::{ApiKeyRecord, KeyLimits, KeyOwner, NewApiKey, Owner, Scope};
use crate::store::ms_to_secs;

/// Who created a key.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyOwnerObject {
    /// `user` or `api_key`.
    #[serde(rename = "type")]
    pub kind: String,
    pub id: String,
}

/// A project API key as listed: the secret itself is never shown again after creation.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyObject {
    pub id: String,
    /// Always `organization.project.api_key`.
    #[schema(example = "organization.project.api_key")]
    pub object: &'static str,
    pub name: String,
    /// The visible start of the key, e.g. `sf-AbC123...`.
    pub redacted_value: String,
    pub project_id: String,
    pub scopes: Vec<Scope>,
    pub limits: KeyLimits,
    pub owner: KeyOwnerObject,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub last_used_at: Option<i64>,
}

impl From<ApiKeyRecord> for ApiKeyObject {
    fn from(k: ApiKeyRecord) -> Self {
        ApiKeyObject {
            id: k.id.into_string(),
            object: "organization.project.api_key",
            name: k.name,
            redacted_value: api_key::redacted(&k.prefix),
            project_id: k.project_id.map(ProjectId::into_string).unwrap_or_default(),
            scopes: k.scopes,
            limits: k.limits,
            owner: KeyOwnerObject {
                kind: k.owner.kind,
                id: k.owner.id,
            },
            created_at: ms_to_secs(k.created_ms),
            expires_at: k.expires_ms.map(ms_to_secs),
            last_used_at: k.last_used_ms.map(ms_to_secs),
        }
    }
}

impl HasId for ApiKeyObject {
    fn id(&self) -> &str {
        &self.id
    }
}

list_of!(ApiKeyList, ApiKeyObject);

/// The response to creating a key: the only time `value` is shown.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedApiKey {
    #[serde(flatten)]
    pub key: ApiKeyObject,
    /// The key itself (`sf-...`). Store it now: it cannot be retrieved later.
    pub value: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyCreate {
    /// 1 to 128 characters (trimmed), not blank, no control characters.
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*[^\\s\\x00-\\x1f\\x7f-\\x9f][^\\x00-\\x1f\\x7f-\\x9f]*$"
    )]
    pub name: String,
    /// Default `["inference"]`; not empty.
    #[schema(min_items = 1)]
    pub scopes: Option<Vec<Scope>>,
    /// Unix seconds; the key is refused from then on. Must be in the future.
    pub expires_at: Option<i64>,
    /// Per-key rate limits (positive integers); unset ones fall back to the project's, then
    /// the plan's.
    pub limits: Option<KeyLimits>,
}

/// Changes to a key: a new name, new rate limits, or both.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyUpdate {
    /// 1 to 128 characters (trimmed), not blank, no control characters.
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*[^\\s\\x00-\\x1f\\x7f-\\x9f][^\\x00-\\x1f\\x7f-\\x9f]*$"
    )]
    pub name: Option<String>,
    /// Replaces all of the key's limits: a field left out or `null` falls back to the
    /// project's limit, then the plan's.
    pub limits: Option<KeyLimits>,
}

/// List a project's live API keys.
#[utoipa::path(get, path = "/v1/organization/projects/{project_id}/api_keys", tag = "API keys",
    params(("project_id" = String, Path, description = "The project's id"), ListQuery),
    responses((status = 200, body = ApiKeyList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_project_keys(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<String>,
    QueryArgs(query): QueryArgs<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(list(&state, &principal, &path, &query).await?))
}

/// A project's live keys (shared by the JSON API and the console).
pub async fn list(
    state: &AppState,
    principal: &Principal,
    project_id: &str,
    query: &ListQuery,
) -> Result<ApiKeyList, ApiError> {
    principal.require_project(Permission::ReadOrganization, project_id)?;
    let page = query.page()?;
    let project = state
        .store
        .project(&principal.tenant_id, &ProjectId::from(project_id))
        .await?;
    let keys = state
        .store
        .list_api_keys(&principal.tenant_id, KeyOwner::Project(&project.id), &page)
        .await?;
    Ok(ApiKeyList::from(keys.map(ApiKeyObject::from)))
}

/// Create a project API key. It works the moment this returns.
#[utoipa::path(post, path = "/v1/organization/projects/{project_id}/api_keys", tag = "API keys",
    params(("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255, pattern = "^[!-~]+$", description = "Makes a retry safe: a repeated request with the same key returns the first response (24 hours, per credential)"), ("project_id" = String, Path, description = "The project's id")),
    request_body = ApiKeyCreate,
    responses((status = 201, body = CreatedApiKey), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create_project_key(
    state: web::Data<AppState>,
    principal: Principal,
    req: HttpRequest,
    path: web::Path<String>,
    body: JsonBody<ApiKeyCreate>,
) -> Result<HttpResponse, ApiError> {
    let digest = body.digest().to_vec();
    idempotency::once(&state, &principal, &req, &digest, async {
        principal.require_project(Permission::ManageApiKeys, &path)?;
        let body = body.parse()?;
        Ok::<HttpResponse, ApiError>(
            HttpResponse::Created().json(create(&state, &principal, &path, body).await?),
        )
    })
    .await
}

/// Creates a project key and returns its secret, the only time it is shown (shared by the JSON
/// API and the console).
pub async fn create(
    state: &AppState,
    principal: &Principal,
    project_id: &str,
    body: ApiKeyCreate,
) -> Result<CreatedApiKey, ApiError> {
    principal.require_project(Permission::ManageApiKeys, project_id)?;
    let name = validate::name("name", &body.name)?;
    let mut scopes: Vec<Scope> = Vec::new();
    for scope in body.scopes.unwrap_or_else(|| vec![Scope::Inference]) {
        if !scopes.contains(&scope) {
            scopes.push(scope);
        }
    }
    if scopes.is_empty() {
        return Err(ApiError::invalid("scopes", "'scopes' must not be empty."));
    }
    let expires_ms = body
        .expires_at
        .map(|t| validate::future_time("expires_at", t))
        .transpose()?;
    let limits = validate::limits("limits", body.limits.unwrap_or_default())?;
    let project = state
        .store
        .project(&principal.tenant_id, &ProjectId::from(project_id))
        .await?;
    if project.archived_ms.is_some() {
        return Err(ApiError::Conflict(format!(
            "Project '{}' is archived; its keys cannot be created.",
            project.id
        )));
    }
    let (owner_type, owner_id) = principal.actor();
    let owner = Owner {
        kind: owner_type.to_owned(),
        id: owner_id.to_owned(),
    };
    let secret = api_key::generate(KeyKind::Project);
    let record = state
        .store
        .create_api_key(NewApiKey {
            tenant_id: &principal.tenant_id,
            project_id: Some(&project.id),
            kind: KeyKind::Project,
            name: &name,
            hash: &secret.hash,
            prefix: &secret.prefix,
            scopes: &scopes,
            owner: &owner,
            limits,
            expires_ms,
        })
        .await?;
    audit(state, principal, "api_key.created", "api_key", &record.id).await?;
    Ok(CreatedApiKey {
        key: record.into(),
        value: secret.value,
    })
}

/// Retrieve a project API key (never its secret).
#[utoipa::path(get, path = "/v1/organization/projects/{project_id}/api_keys/{key_id}", tag = "API keys",
    params(("project_id" = String, Path, description = "The project's id"),
        ("key_id" = String, Path, description = "The key's id")),
    responses((status = 200, body = ApiKeyObject), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_project_key(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (project_id, key_id) = path.into_inner();
    principal.require_project(Permission::ReadOrganization, &project_id)?;
    let key = state
        .store
        .api_key(
            &principal.tenant_id,
            KeyOwner::Project(&project_id),
            &KeyId::from(key_id.as_str()),
        )
        .await?;
    Ok(HttpResponse::Ok().json(ApiKeyObject::from(key)))
}

/// Rename a project API key or set its rate limits. They apply from the next request on.
#[utoipa::path(post, path = "/v1/organization/projects/{project_id}/api_keys/{key_id}", tag = "API keys",
    params(("project_id" = String, Path, description = "The project's id"),
        ("key_id" = String, Path, description = "The key's id")),
    request_body = ApiKeyUpdate,
    responses((status = 200, body = ApiKeyObject), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn modify_project_key(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<(String, String)>,
    body: JsonBody<ApiKeyUpdate>,
) -> Result<HttpResponse, ApiError> {
    let (project_id, key_id) = path.into_inner();
    principal.require_project(Permission::ManageApiKeys, &project_id)?;
    let body = body.parse()?;
    Ok(HttpResponse::Ok().json(update(&state, &principal, &project_id, &key_id, body).await?))
}

/// Renames a key and/or replaces its limits (the API's and the console's action).
pub async fn update(
    state: &AppState,
    principal: &Principal,
    project_id: &str,
    key_id: &str,
    body: ApiKeyUpdate,
) -> Result<ApiKeyObject, ApiError> {
    principal.require_project(Permission::ManageApiKeys, project_id)?;
    let name = body
        .name
        .as_deref()
        .map(|n| validate::name("name", n))
        .transpose()?;
    let limits = body
        .limits
        .map(|l| validate::limits("limits", l))
        .transpose()?;
    if name.is_none() && limits.is_none() {
        // Nothing to change: the key as it is (like any update that changes nothing).
        let key = state
            .store
            .api_key(
                &principal.tenant_id,
                KeyOwner::Project(project_id),
                &KeyId::from(key_id),
            )
            .await?;
        return Ok(ApiKeyObject::from(key));
    }
    let key = state
        .store
        .update_api_key(
            &principal.tenant_id,
            KeyOwner::Project(project_id),
            &KeyId::from(key_id),
            name.as_deref(),
            limits,
        )
        .await?;
    audit(state, principal, "api_key.updated", "api_key", &key.id).await?;
    Ok(ApiKeyObject::from(key))
}

/// Revoke a project API key: refused from this moment on.
#[utoipa::path(delete, path = "/v1/organization/projects/{project_id}/api_keys/{key_id}", tag = "API keys",
    params(("project_id" = String, Path, description = "The project's id"),
        ("key_id" = String, Path, description = "The key's id")),
    responses((status = 200, body = DeletedObject), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn delete_project_key(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (project_id, key_id) = path.into_inner();
    Ok(HttpResponse::Ok().json(revoke(&state, &principal, &project_id, &key_id).await?))
}

/// Revokes a project key (shared by the JSON API and the console).
pub async fn revoke(
    state: &AppState,
    principal: &Principal,
    project_id: &str,
    key_id: &str,
) -> Result<DeletedObject, ApiError> {
    principal.require_project(Permission::ManageApiKeys, project_id)?;
    let key = state
        .store
        .revoke_api_key(
            &principal.tenant_id,
            KeyOwner::Project(project_id),
            &KeyId::from(key_id),
        )
        .await?;
    audit(state, principal, "api_key.deleted", "api_key", &key.id).await?;
    Ok(DeletedObject::new(
        "organization.project.api_key.deleted",
        key.id.into_string(),
    ))
}
