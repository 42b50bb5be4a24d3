//! `/v1/organization/users`: the organization's members and their roles.

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::body::{JsonBody, QueryArgs};
use super::list::{list_of, HasId, ListQuery};
use super::{audit, DeletedObject};
use crate::auth::{Permission, Principal};
use crate::error::{ApiError, ErrorBody};
use crate::server::AppState;
use crate::store::users::{Member, Role};
use crate::store::{ms_to_secs, UserId};

/// A member of the organization.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserObject {
    pub id: String,
    /// Always `organization.user`.
    #[schema(example = "organization.user")]
    pub object: &'static str,
    pub name: String,
    pub email: String,
    pub role: Role,
    /// Unix seconds when the user joined the organization.
    pub added_at: i64,
}

impl From<Member> for UserObject {
    fn from(m: Member) -> Self {
        UserObject {
            id: m.user_id.into_string(),
            object: "organization.user",
            name: m.name,
            email: m.email,
            role: m.role,
            added_at: ms_to_secs(m.added_ms),
        }
    }
}

impl HasId for UserObject {
    fn id(&self) -> &str {
        &self.id
    }
}

list_of!(UserList, UserObject);

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserRoleUpdate {
    pub role: Role,
}

/// Only owners may make owners or change an owner.
fn guard_owner_change(
    principal: &Principal,
    current: Role,
    new: Option<Role>,
) -> Result<(), ApiError> {
    let touches_owner = current == Role::Owner || new == Some(Role::Owner);
    if touches_owner && principal.role != Some(Role::Owner) {
        return Err(ApiError::Forbidden(
            "Only an owner can grant, change or remove the owner role.".to_owned(),
        ));
    }
    Ok(())
}

/// List the organization's members.
#[utoipa::path(get, path = "/v1/organization/users", tag = "Users",
    params(ListQuery),
    responses((status = 200, body = UserList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_users(
    state: web::Data<AppState>,
    principal: Principal,
    QueryArgs(query): QueryArgs<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(list(&state, &principal, &query).await?))
}

/// The organization's members (shared by the JSON API and the console).
pub async fn list(
    state: &AppState,
    principal: &Principal,
    query: &ListQuery,
) -> Result<UserList, ApiError> {
    principal.require_organization(Permission::ReadOrganization)?;
    let page = query.page()?;
    let members = state
        .store
        .list_members(&principal.tenant_id, &page)
        .await?;
    Ok(UserList::from(members.map(UserObject::from)))
}

/// Retrieve a member.
#[utoipa::path(get, path = "/v1/organization/users/{user_id}", tag = "Users",
    params(("user_id" = String, Path, description = "The user's id")),
    responses((status = 200, body = UserObject), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_user(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<UserId>,
) -> Result<HttpResponse, ApiError> {
    principal.require_organization(Permission::ReadOrganization)?;
    let member = state.store.member(&principal.tenant_id, &path).await?;
    Ok(HttpResponse::Ok().json(UserObject::from(member)))
}

/// Change a member's role. The last owner cannot be demoted (409).
#[utoipa::path(post, path = "/v1/organization/users/{user_id}", tag = "Users",
    params(("user_id" = String, Path, description = "The user's id")),
    request_body = UserRoleUpdate,
    responses((status = 200, body = UserObject), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn modify_user(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<UserId>,
    body: JsonBody<UserRoleUpdate>,
) -> Result<HttpResponse, ApiError> {
    principal.require_organization(Permission::ManageMembers)?;
    let body = body.parse()?;
    Ok(HttpResponse::Ok().json(set_role(&state, &principal, &path, body.role).await?))
}

/// Changes a member's role (shared by the JSON API and the console).
pub async fn set_role(
    state: &AppState,
    principal: &Principal,
    user_id: &UserId,
    role: Role,
) -> Result<UserObject, ApiError> {
    principal.require_organization(Permission::ManageMembers)?;
    let current = state.store.member(&principal.tenant_id, user_id).await?;
    guard_owner_change(principal, current.role, Some(role))?;
    let member = state
        .store
        .set_role(&principal.tenant_id, user_id, role)
        .await?;
    audit(state, principal, "user.updated", "user", &member.user_id).await?;
    Ok(UserObject::from(member))
}

/// Remove a member from the organization (their sessions in it end). The last owner cannot be
/// removed (409).
#[utoipa::path(delete, path = "/v1/organization/users/{user_id}", tag = "Users",
    params(("user_id" = String, Path, description = "The user's id")),
    responses((status = 200, body = DeletedObject), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn delete_user(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<UserId>,
) -> Result<HttpResponse, ApiError> {
    let removed = remove(&state, &principal, &path).await?;
    Ok(HttpResponse::Ok().json(DeletedObject::new(
        "organization.user.deleted",
        removed.user_id.into_string(),
    )))
}

/// Removes a member (shared by the JSON API and the console): only owners remove owners, and
/// the store refuses to remove the last owner (409), in one transaction with the owner count.
/// Returns the member as they were.
pub async fn remove(
    state: &AppState,
    principal: &Principal,
    user_id: &UserId,
) -> Result<Member, ApiError> {
    principal.require_organization(Permission::ManageMembers)?;
    let current = state.store.member(&principal.tenant_id, user_id).await?;
    guard_owner_change(principal, current.role, None)?;
    state
        .store
        .remove_member(&principal.tenant_id, user_id)
        .await?;
    audit(state, principal, "user.deleted", "user", &current.user_id).await?;
    Ok(current)
}
