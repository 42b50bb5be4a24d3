//! Console sessions under `/v1/auth/` (signup, login, refresh, logout) and `/v1/me`.

use crate::store::{TenantId, UserId};
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::body::JsonBody;
use super::validate;
use crate::auth::password;
use crate::auth::secret::sha256_hex;
use crate::auth::session::{SessionTokens, REFRESH_PREFIX};
use crate::auth::{Credential, Principal, RequestContext};
use crate::error::{ApiError, ErrorBody};
use crate::server::AppState;
use crate::store::audit::AuditEvent;
use crate::store::invites::Invite;
use crate::store::sessions::Rotation;
use crate::store::tenants::{Plan, Tenant};
use crate::store::users::{Role, User};
use crate::store::{ms_to_secs, now_ms};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignupRequest {
    /// An address like name@example.com (stored trimmed and lower-cased).
    #[schema(
        min_length = 5,
        max_length = 254,
        pattern = "^[^@\\s\\x00-\\x1f\\x7f-\\x9f]+@[^@.\\s\\x00-\\x1f\\x7f-\\x9f][^@\\s\\x00-\\x1f\\x7f-\\x9f]*\\.[^@\\s\\x00-\\x1f\\x7f-\\x9f]*[^@.\\s\\x00-\\x1f\\x7f-\\x9f]$"
    )]
    pub email: String,
    /// 8 to 256 characters.
    #[schema(min_length = 8, max_length = 256)]
    pub password: String,
    /// Display name; defaults to the part of the email before '@'. 1 to 128 characters
    /// (trimmed), not blank, no control characters.
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*[^\\s\\x00-\\x1f\\x7f-\\x9f][^\\x00-\\x1f\\x7f-\\x9f]*$"
    )]
    pub name: Option<String>,
    /// Name of the organization created for the new user (ignored with `invite_token`); same
    /// rules as `name`.
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*[^\\s\\x00-\\x1f\\x7f-\\x9f][^\\x00-\\x1f\\x7f-\\x9f]*$"
    )]
    pub organization_name: Option<String>,
    /// Join the inviting organization instead of creating one.
    pub invite_token: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// The address signed up with.
    #[schema(
        min_length = 5,
        max_length = 254,
        pattern = "^[^@\\s\\x00-\\x1f\\x7f-\\x9f]+@[^@.\\s\\x00-\\x1f\\x7f-\\x9f][^@\\s\\x00-\\x1f\\x7f-\\x9f]*\\.[^@\\s\\x00-\\x1f\\x7f-\\x9f]*[^@.\\s\\x00-\\x1f\\x7f-\\x9f]$"
    )]
    pub email: String,
    pub password: String,
    /// The organization to act in; defaults to the user's first.
    pub organization_id: Option<String>,
    /// Accept an invite while logging in; the session acts in the inviting organization.
    pub invite_token: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    pub refresh_token: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserSummary {
    pub id: String,
    pub email: String,
    pub name: String,
    pub created_at: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OrganizationSummary {
    pub id: String,
    pub name: String,
    pub plan: Plan,
    /// The user's role in it.
    pub role: Role,
}

impl OrganizationSummary {
    fn new(tenant: Tenant, role: Role) -> Self {
        OrganizationSummary {
            id: tenant.id.into_string(),
            name: tenant.name,
            plan: tenant.plan,
            role,
        }
    }
}

/// Tokens of a console session.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionObject {
    /// Always `auth.session`.
    #[schema(example = "auth.session")]
    pub object: &'static str,
    /// Short-lived JWT for `Authorization: Bearer`.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// Exchange at `/v1/auth/refresh` for a new pair; valid once.
    pub refresh_token: String,
    pub user: UserSummary,
    pub organization: OrganizationSummary,
}

/// The signed-in user.
#[derive(Debug, Serialize, ToSchema)]
pub struct MeObject {
    /// Always `user`.
    #[schema(example = "user")]
    pub object: &'static str,
    pub user: UserSummary,
    /// The organization this session acts in.
    pub organization: OrganizationSummary,
    /// Every organization the user belongs to.
    pub organizations: Vec<OrganizationSummary>,
}

fn summary(user: &User) -> UserSummary {
    UserSummary {
        id: user.id.to_string(),
        email: user.email.clone(),
        name: user.name.clone(),
        created_at: ms_to_secs(user.created_ms),
    }
}

fn now_secs() -> u64 {
    ms_to_secs(now_ms()).max(0) as u64
}

async fn record(
    state: &AppState,
    ctx: &RequestContext,
    tenant_id: &TenantId,
    user_id: &str,
    action: &str,
    target: (&str, &str),
) -> Result<(), ApiError> {
    state
        .store
        .record_audit(AuditEvent {
            tenant_id,
            action,
            actor_type: "user",
            actor_id: user_id,
            target_type: target.0,
            target_id: target.1,
            ip: ctx.ip.as_deref(),
            request_id: Some(&ctx.request_id),
        })
        .await?;
    Ok(())
}

/// Starts a session family for `user` in `tenant` and returns its first tokens.
async fn start_session(
    state: &AppState,
    user: &User,
    tenant: Tenant,
    role: Role,
) -> Result<SessionObject, ApiError> {
    let refresh = SessionTokens::new_refresh();
    let refresh_expires = now_ms() + state.tokens.refresh_ttl_secs as i64 * 1000;
    let family = state
        .store
        .create_session(&user.id, &tenant.id, &refresh.hash, refresh_expires)
        .await?;
    let access = state
        .tokens
        .issue_access(&user.id, &tenant.id, &family, now_secs())
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(SessionObject {
        object: "auth.session",
        access_token: access,
        token_type: "Bearer",
        expires_in: state.tokens.access_ttl_secs,
        refresh_token: refresh.value,
        user: summary(user),
        organization: OrganizationSummary::new(tenant, role),
    })
}

async fn hash_password(password: String) -> Result<String, ApiError> {
    web::block(move || password::hash(&password))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .map_err(|e| ApiError::Internal(e.to_string()))
}

async fn verify_password(password: String, phc: Option<String>) -> Result<bool, ApiError> {
    web::block(move || match phc {
        Some(phc) => password::verify(&password, &phc),
        None => {
            password::verify_dummy(&password);
            false
        }
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))
}

fn bad_invite() -> ApiError {
    ApiError::invalid(
        "invite_token",
        "'invite_token' is not a pending invite for this email (it may have expired).",
    )
}

/// A pending invite for `email`, when a token was given.
async fn check_invite(
    state: &AppState,
    token: Option<&str>,
    email: &str,
) -> Result<Option<(Invite, String)>, ApiError> {
    let Some(token) = token else { return Ok(None) };
    let hash = sha256_hex(token);
    match state.store.pending_invite(&hash).await? {
        Some(invite) if invite.email == email => Ok(Some((invite, hash))),
        _ => Err(bad_invite()),
    }
}

/// Create an account. Without an invite the user gets a new organization (plan `free`) that
/// they own, with a default project.
#[utoipa::path(post, path = "/v1/auth/signup", tag = "Auth",
    request_body = SignupRequest,
    responses((status = 201, body = SessionObject), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub async fn signup(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: JsonBody<SignupRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.parse()?;
    let (user, tenant, role) = create_account(&state, &RequestContext::of(&req), body).await?;
    let session = start_session(&state, &user, tenant, role).await?;
    Ok(HttpResponse::Created().json(session))
}

/// Creates the user (and their organization, or joins the inviting one): what signup does
/// before it starts a session. Shared by the JSON API and the console.
pub async fn create_account(
    state: &AppState,
    ctx: &RequestContext,
    body: SignupRequest,
) -> Result<(User, Tenant, Role), ApiError> {
    let email = validate::email("email", &body.email)?;
    validate::password("password", &body.password)?;
    let default_name = email.split('@').next().unwrap_or("user").to_owned();
    let name = validate::name("name", body.name.as_deref().unwrap_or(&default_name))?;
    let org_name = body
        .organization_name
        .as_deref()
        .map(|n| validate::name("organization_name", n))
        .transpose()?
        .unwrap_or_else(|| "Personal".to_owned());
    let invite = check_invite(state, body.invite_token.as_deref(), &email).await?;
    let phc = hash_password(body.password).await?;
    let user = state.store.create_user(&email, &name, &phc).await?;
    let (tenant, role) = match invite {
        Some((_, hash)) => {
            let invite = state
                .store
                .accept_invite(&hash, &user.id, &email)
                .await?
                .ok_or_else(bad_invite)?;
            record(
                state,
                ctx,
                &invite.tenant_id,
                &user.id,
                "invite.accepted",
                ("invite", &invite.id),
            )
            .await?;
            (state.store.tenant(&invite.tenant_id).await?, invite.role)
        }
        None => {
            let tenant = state.store.create_tenant(&org_name, Plan::Free).await?;
            state.metering.open_free_account(&tenant.id).await?;
            state
                .store
                .add_member(&tenant.id, &user.id, Role::Owner)
                .await?;
            state
                .store
                .create_project(&tenant.id, "Default project")
                .await?;
            record(
                state,
                ctx,
                &tenant.id,
                &user.id,
                "organization.created",
                ("organization", &tenant.id),
            )
            .await?;
            (tenant, Role::Owner)
        }
    };
    Ok((user, tenant, role))
}

/// Log in with email and password. After 10 wrong passwords for an email from one client
/// address within 15 minutes, that address gets 429 for that email until the window has
/// passed (the owner signing in from elsewhere is not locked out); after 100 from one address
/// over any accounts, that address gets 429 for every account.
#[utoipa::path(post, path = "/v1/auth/login", tag = "Auth",
    request_body = LoginRequest,
    responses((status = 200, body = SessionObject), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody),
        (status = 429, body = ErrorBody)))]
pub async fn login(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: JsonBody<LoginRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.parse()?;
    let (user, tenant, role) = authenticate_login(&state, &RequestContext::of(&req), body).await?;
    let session = start_session(&state, &user, tenant, role).await?;
    Ok(HttpResponse::Ok().json(session))
}

/// Checks the password (with the throttle), accepts an invite when given, and picks the
/// organization: what login does before it starts a session. Records `login.succeeded`.
/// Shared by the JSON API and the console.
pub async fn authenticate_login(
    state: &AppState,
    ctx: &RequestContext,
    body: LoginRequest,
) -> Result<(User, Tenant, Role), ApiError> {
    let email = validate::email("email", &body.email)?;
    let address = ctx.ip.as_deref().unwrap_or_default();
    if let Err(retry_after) = state.login_throttle.check(&email, address) {
        return Err(ApiError::RateLimited {
            message: "Too many failed logins from this address; try again later.".to_owned(),
            retry_after: Some(retry_after),
        });
    }
    let user = state.store.user_by_email(&email).await?;
    let ok = verify_password(
        body.password,
        user.as_ref().map(|u| u.password_hash.clone()),
    )
    .await?;
    let user = match user {
        Some(user) if ok => user,
        _ => {
            state.login_throttle.record_failure(&email, address);
            return Err(ApiError::Unauthenticated(
                "Incorrect email or password.".to_owned(),
            ));
        }
    };
    state.login_throttle.clear(&email, address);
    let mut wanted = body.organization_id.clone();
    if let Some((_, hash)) = check_invite(state, body.invite_token.as_deref(), &email).await? {
        let invite = state
            .store
            .accept_invite(&hash, &user.id, &email)
            .await?
            .ok_or_else(bad_invite)?;
        record(
            state,
            ctx,
            &invite.tenant_id,
            &user.id,
            "invite.accepted",
            ("invite", &invite.id),
        )
        .await?;
        wanted.get_or_insert(invite.tenant_id.into_string());
    }
    let memberships = state.store.tenants_of_user(&user.id).await?;
    let chosen = match &wanted {
        Some(id) => memberships
            .into_iter()
            .find(|(t, _)| &t.id == id)
            .ok_or_else(|| ApiError::not_found("organization", id))?,
        None => memberships.into_iter().next().ok_or_else(|| {
            ApiError::Forbidden("This user is not a member of any organization.".to_owned())
        })?,
    };
    let (tenant, role) = chosen;
    record(
        state,
        ctx,
        &tenant.id,
        &user.id,
        "login.succeeded",
        ("user", &user.id),
    )
    .await?;
    Ok((user, tenant, role))
}

/// Exchange a refresh token for a new access and refresh token. Each refresh token works once;
/// presenting one a second time revokes the whole session (401).
#[utoipa::path(post, path = "/v1/auth/refresh", tag = "Auth",
    request_body = RefreshRequest,
    responses((status = 200, body = SessionObject), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn refresh(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: JsonBody<RefreshRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.parse()?;
    let invalid = || ApiError::Unauthenticated("Invalid or expired refresh token.".to_owned());
    if !body.refresh_token.starts_with(REFRESH_PREFIX) {
        return Err(invalid());
    }
    let next = SessionTokens::new_refresh();
    let expires = now_ms() + state.tokens.refresh_ttl_secs as i64 * 1000;
    let rotation = state
        .store
        .rotate_refresh_token(&sha256_hex(&body.refresh_token), &next.hash, expires)
        .await?;
    let (family_id, user_id, tenant_id) = match rotation {
        Rotation::Rotated {
            family_id,
            user_id,
            tenant_id,
        } => (family_id, user_id, tenant_id),
        Rotation::Reused {
            family_id,
            user_id,
            tenant_id,
        } => {
            let ctx = RequestContext::of(&req);
            record(
                &state,
                &ctx,
                &tenant_id,
                &user_id,
                "session.reuse_detected",
                ("session", &family_id),
            )
            .await?;
            return Err(ApiError::Unauthenticated(
                "This refresh token was already used; the session has been revoked. Log in again."
                    .to_owned(),
            ));
        }
        Rotation::Invalid => return Err(invalid()),
    };
    let role = state
        .store
        .session_role(&family_id, &user_id, &tenant_id)
        .await?
        .ok_or_else(invalid)?;
    let user = state.store.user(&user_id).await?;
    let tenant = state.store.tenant(&tenant_id).await?;
    let access = state
        .tokens
        .issue_access(&user_id, &tenant_id, &family_id, now_secs())
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(HttpResponse::Ok().json(SessionObject {
        object: "auth.session",
        access_token: access,
        token_type: "Bearer",
        expires_in: state.tokens.access_ttl_secs,
        refresh_token: next.value,
        user: summary(&user),
        organization: OrganizationSummary::new(tenant, role),
    }))
}

fn require_session(principal: &Principal) -> Result<(&UserId, &str), ApiError> {
    match (
        &principal.credential,
        &principal.user_id,
        &principal.session_id,
    ) {
        (Credential::Session, Some(user), Some(session)) => Ok((user, session)),
        _ => Err(ApiError::Forbidden(
            "This route needs a console session, not an API key.".to_owned(),
        )),
    }
}

/// End the current session: its access and refresh tokens stop working.
#[utoipa::path(post, path = "/v1/auth/logout", tag = "Auth",
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn logout(
    state: web::Data<AppState>,
    principal: Principal,
) -> Result<HttpResponse, ApiError> {
    let (user_id, session_id) = require_session(&principal)?;
    state.store.revoke_session(session_id).await?;
    record(
        &state,
        &principal.request,
        &principal.tenant_id,
        user_id,
        "logout.succeeded",
        ("session", session_id),
    )
    .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// The signed-in user, the organization the session acts in, and all their organizations.
#[utoipa::path(get, path = "/v1/me", tag = "Auth",
    responses((status = 200, body = MeObject), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn me(
    state: web::Data<AppState>,
    principal: Principal,
) -> Result<HttpResponse, ApiError> {
    let (user_id, _) = require_session(&principal)?;
    let user = state.store.user(user_id).await?;
    let organizations: Vec<OrganizationSummary> = state
        .store
        .tenants_of_user(user_id)
        .await?
        .into_iter()
        .map(|(t, r)| OrganizationSummary::new(t, r))
        .collect();
    let tenant = state.store.tenant(&principal.tenant_id).await?;
    let role = principal.role.unwrap_or(Role::Viewer);
    Ok(HttpResponse::Ok().json(MeObject {
        object: "user",
        user: summary(&user),
        organization: OrganizationSummary::new(tenant, role),
        organizations,
    }))
}
