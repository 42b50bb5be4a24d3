//! `/v1/organization/admin_api_keys`: organization admin keys (`sf-admin-...`).

use crate::store::{KeyId, TenantId};
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::api_keys::KeyOwnerObject;
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

/// An organization admin key as listed.
#[derive(Debug, Serialize, ToSchema)]
pub struct AdminKeyObject {
    pub id: String,
    /// Always `organization.admin_api_key`.
    #[schema(example = "organization.admin_api_key")]
    pub object: &'static str,
    pub name: String,
    /// The visible start of the key, e.g. `sf-admin-AbC123...`.
    pub redacted_value: String,
    pub owner: KeyOwnerObject,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
}

impl From<ApiKeyRecord> for AdminKeyObject {
    fn from(k: ApiKeyRecord) -> Self {
        AdminKeyObject {
            id: k.id.into_string(),
            object: "organization.admin_api_key",
            name: k.name,
            redacted_value: api_key::redacted(&k.prefix),
            owner: KeyOwnerObject {
                kind: k.owner.kind,
                id: k.owner.id,
            },
            created_at: ms_to_secs(k.created_ms),
            last_used_at: k.last_used_ms.map(ms_to_secs),
        }
    }
}

impl HasId for AdminKeyObject {
    fn id(&self) -> &str {
        &self.id
    }
}

list_of!(AdminKeyList, AdminKeyObject);

/// The response to creating an admin key: the only time `value` is shown.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedAdminKey {
    #[serde(flatten)]
    pub key: AdminKeyObject,
    /// The key itself (`sf-admin-...`). Store it now: it cannot be retrieved later.
    pub value: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdminKeyCreate {
    /// 1 to 128 characters (trimmed), not blank, no control characters.
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*[^\\s\\x00-\\x1f\\x7f-\\x9f][^\\x00-\\x1f\\x7f-\\x9f]*$"
    )]
    pub name: String,
}

/// List the organization's admin keys.
#[utoipa::path(get, path = "/v1/organization/admin_api_keys", tag = "Admin API keys",
    params(ListQuery),
    responses((status = 200, body = AdminKeyList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_admin_keys(
    state: web::Data<AppState>,
    principal: Principal,
    QueryArgs(query): QueryArgs<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    principal.require_organization(Permission::ManageAdminKeys)?;
    let page = query.page()?;
    let keys = state
        .store
        .list_api_keys(&principal.tenant_id, KeyOwner::Admin, &page)
        .await?;
    Ok(HttpResponse::Ok().json(AdminKeyList::from(keys.map(AdminKeyObject::from))))
}

/// Create an organization admin key.
#[utoipa::path(post, path = "/v1/organization/admin_api_keys", tag = "Admin API keys",
    params(("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255, pattern = "^[!-~]+$", description = "Makes a retry safe: a repeated request with the same key returns the first response (24 hours, per credential)")),
    request_body = AdminKeyCreate,
    responses((status = 201, body = CreatedAdminKey), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create_admin_key(
    state: web::Data<AppState>,
    principal: Principal,
    req: HttpRequest,
    body: JsonBody<AdminKeyCreate>,
) -> Result<HttpResponse, ApiError> {
    let digest = body.digest().to_vec();
    idempotency::once(&state, &principal, &req, &digest, async {
        principal.require_organization(Permission::ManageAdminKeys)?;
        let body = body.parse()?;
        let name = validate::name("name", &body.name)?;
        let (owner_type, owner_id) = principal.actor();
        let (key, value) = mint_admin_key(
            &state,
            &principal.tenant_id,
            &name,
            &Owner {
                kind: owner_type.to_owned(),
                id: owner_id.to_owned(),
            },
        )
        .await?;
        audit(
            &state,
            &principal,
            "admin_api_key.created",
            "api_key",
            &key.id,
        )
        .await?;
        Ok::<HttpResponse, ApiError>(HttpResponse::Created().json(CreatedAdminKey {
            key: key.into(),
            value,
        }))
    })
    .await
}

/// Stores a new admin key and returns it with its one-time value.
pub async fn mint_admin_key(
    state: &AppState,
    tenant_id: &TenantId,
    name: &str,
    owner: &Owner,
) -> Result<(ApiKeyRecord, String), ApiError> {
    let secret = api_key::generate(KeyKind::Admin);
    let record = state
        .store
        .create_api_key(NewApiKey {
            tenant_id,
            project_id: None,
            kind: KeyKind::Admin,
            name,
            hash: &secret.hash,
            prefix: &secret.prefix,
            scopes: &[Scope::Admin],
            owner,
            limits: KeyLimits::default(),
            expires_ms: None,
        })
        .await?;
    Ok((record, secret.value))
}

/// Retrieve an admin key (never its secret).
#[utoipa::path(get, path = "/v1/organization/admin_api_keys/{key_id}", tag = "Admin API keys",
    params(("key_id" = String, Path, description = "The key's id")),
    responses((status = 200, body = AdminKeyObject), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_admin_key(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    principal.require_organization(Permission::ManageAdminKeys)?;
    let key = state
        .store
        .api_key(
            &principal.tenant_id,
            KeyOwner::Admin,
            &KeyId::from(path.as_str()),
        )
        .await?;
    Ok(HttpResponse::Ok().json(AdminKeyObject::from(key)))
}

/// Revoke an admin key.
#[utoipa::path(delete, path = "/v1/organization/admin_api_keys/{key_id}", tag = "Admin API keys",
    params(("key_id" = String, Path, description = "The key's id")),
    responses((status = 200, body = DeletedObject), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn delete_admin_key(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    principal.require_organization(Permission::ManageAdminKeys)?;
    let key = state
        .store
        .revoke_api_key(
            &principal.tenant_id,
            KeyOwner::Admin,
            &KeyId::from(path.as_str()),
        )
        .await?;
    audit(
        &state,
        &principal,
        "admin_api_key.deleted",
        "api_key",
        &key.id,
    )
    .await?;
    Ok(HttpResponse::Ok().json(DeletedObject::new(
        "organization.admin_api_key.deleted",
        key.id.into_string(),
    )))
}
