//! `/v1/organization/invites`: invitations to join the organization. The invite token is
//! returned once; the invitee passes it as `invite_token` to `/v1/auth/signup` or `/v1/auth/login`.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::body::{JsonBody, QueryArgs};
use super::idempotency;
use super::list::{list_of, HasId, ListQuery};
use super::{audit, validate, DeletedObject};
use crate::auth::secret::{random_base62, sha256_hex};
use crate::auth::{Permission, Principal};
use crate::error::{ApiError, ErrorBody};
use crate::server::AppState;
use crate::store::invites::Invite;
use crate::store::users::Role;
use crate::store::{ms_to_secs, now_ms};

pub const INVITE_TOKEN_PREFIX: &str = "sfi-";

#[derive(Debug, Serialize, ToSchema)]
pub struct InviteObject {
    pub id: String,
    /// Always `organization.invite`.
    #[schema(example = "organization.invite")]
    pub object: &'static str,
    pub email: String,
    pub role: Role,
    /// `pending`, `accepted` or `expired`.
    #[schema(example = "pending")]
    pub status: &'static str,
    pub invited_at: i64,
    pub expires_at: i64,
    pub accepted_at: Option<i64>,
}

impl From<Invite> for InviteObject {
    fn from(i: Invite) -> Self {
        InviteObject {
            status: i.status(now_ms()),
            id: i.id,
            object: "organization.invite",
            email: i.email,
            role: i.role,
            invited_at: ms_to_secs(i.created_ms),
            expires_at: ms_to_secs(i.expires_ms),
            accepted_at: i.accepted_ms.map(ms_to_secs),
        }
    }
}

impl HasId for InviteObject {
    fn id(&self) -> &str {
        &self.id
    }
}

list_of!(InviteList, InviteObject);

/// The response to creating an invite: the only time `token` is shown.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedInvite {
    #[serde(flatten)]
    pub invite: InviteObject,
    /// Give this to the invitee; it is accepted by signup or login as `invite_token`.
    pub token: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InviteCreate {
    /// An address like name@example.com.
    #[schema(
        min_length = 5,
        max_length = 254,
        pattern = "^[^@\\s\\x00-\\x1f\\x7f-\\x9f]+@[^@.\\s\\x00-\\x1f\\x7f-\\x9f][^@\\s\\x00-\\x1f\\x7f-\\x9f]*\\.[^@\\s\\x00-\\x1f\\x7f-\\x9f]*[^@.\\s\\x00-\\x1f\\x7f-\\x9f]$"
    )]
    pub email: String,
    pub role: Role,
}

/// List the organization's invites.
#[utoipa::path(get, path = "/v1/organization/invites", tag = "Invites",
    params(ListQuery),
    responses((status = 200, body = InviteList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_invites(
    state: web::Data<AppState>,
    principal: Principal,
    QueryArgs(query): QueryArgs<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(list(&state, &principal, &query).await?))
}

/// The organization's invites (shared by the JSON API and the console).
pub async fn list(
    state: &AppState,
    principal: &Principal,
    query: &ListQuery,
) -> Result<InviteList, ApiError> {
    principal.require_organization(Permission::ManageMembers)?;
    let page = query.page()?;
    let invites = state
        .store
        .list_invites(&principal.tenant_id, &page)
        .await?;
    Ok(InviteList::from(invites.map(InviteObject::from)))
}

/// Invite someone by email, with a role. 409 when already a member or already invited.
#[utoipa::path(post, path = "/v1/organization/invites", tag = "Invites",
    params(("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255, pattern = "^[!-~]+$", description = "Makes a retry safe: a repeated request with the same key returns the first response (24 hours, per credential)")),
    request_body = InviteCreate,
    responses((status = 201, body = CreatedInvite), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create_invite(
    state: web::Data<AppState>,
    principal: Principal,
    req: HttpRequest,
    body: JsonBody<InviteCreate>,
) -> Result<HttpResponse, ApiError> {
    let digest = body.digest().to_vec();
    idempotency::once(&state, &principal, &req, &digest, async {
        principal.require_organization(Permission::ManageMembers)?;
        let body = body.parse()?;
        Ok::<HttpResponse, ApiError>(
            HttpResponse::Created().json(create(&state, &principal, body).await?),
        )
    })
    .await
}

/// Creates an invite and returns its token, the only time it is shown (shared by the JSON API
/// and the console).
pub async fn create(
    state: &AppState,
    principal: &Principal,
    body: InviteCreate,
) -> Result<CreatedInvite, ApiError> {
    principal.require_organization(Permission::ManageMembers)?;
    let email = validate::email("email", &body.email)?;
    if body.role == Role::Owner && principal.role != Some(Role::Owner) {
        return Err(ApiError::Forbidden(
            "Only an owner can invite another owner.".to_owned(),
        ));
    }
    let token = format!("{INVITE_TOKEN_PREFIX}{}", random_base62(40));
    let expires_ms = now_ms() + (state.config.invite_ttl_secs as i64) * 1000;
    let (_, actor_id) = principal.actor();
    let invite = state
        .store
        .create_invite(
            &principal.tenant_id,
            &email,
            body.role,
            actor_id,
            &sha256_hex(&token),
            expires_ms,
        )
        .await?;
    audit(state, principal, "invite.sent", "invite", &invite.id).await?;
    Ok(CreatedInvite {
        invite: invite.into(),
        token,
    })
}

/// Retrieve an invite.
#[utoipa::path(get, path = "/v1/organization/invites/{invite_id}", tag = "Invites",
    params(("invite_id" = String, Path, description = "The invite's id")),
    responses((status = 200, body = InviteObject), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_invite(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    principal.require_organization(Permission::ManageMembers)?;
    let invite = state.store.invite(&principal.tenant_id, &path).await?;
    Ok(HttpResponse::Ok().json(InviteObject::from(invite)))
}

/// Delete a pending invite (409 once accepted).
#[utoipa::path(delete, path = "/v1/organization/invites/{invite_id}", tag = "Invites",
    params(("invite_id" = String, Path, description = "The invite's id")),
    responses((status = 200, body = DeletedObject), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn delete_invite(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    withdraw(&state, &principal, &path).await?;
    Ok(HttpResponse::Ok().json(DeletedObject::new(
        "organization.invite.deleted",
        path.into_inner(),
    )))
}

/// Withdraws an invite that was not accepted (shared by the JSON API and the console): its
/// link stops working at once. 409 once accepted.
pub async fn withdraw(
    state: &AppState,
    principal: &Principal,
    invite_id: &str,
) -> Result<(), ApiError> {
    principal.require_organization(Permission::ManageMembers)?;
    state
        .store
        .delete_invite(&principal.tenant_id, invite_id)
        .await?;
    audit(state, principal, "invite.deleted", "invite", invite_id).await?;
    Ok(())
}
