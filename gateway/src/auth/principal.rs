//! The `Principal` extractor: every authenticated route takes one. It reads the credential from
//! `Authorization: Bearer`, `api-key` or `x-api-key`, resolves it to a tenant (and for API keys
//! a project, key id, scopes and limits; for console sessions a user and role), and offers the
//! permission checks the routes use.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::{web, FromRequest, HttpMessage, HttpRequest};

use super::api_key::{self, KeyKind};
use super::secret::sha256_hex;
use crate::error::ApiError;
use crate::server::AppState;
use crate::store::api_keys::{ApiKeyRecord, KeyLimits, Scope};
use crate::store::rate_limits::RateLimitContext;
use crate::store::users::Role;
use crate::store::ws_tickets::TicketHolder;
use crate::store::{KeyId, ProjectId, TenantId, UserId};

/// How the caller authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential {
    /// A project API key (`sf-...`).
    ApiKey,
    /// An organization admin key (`sf-admin-...`).
    AdminKey,
    /// A console session (access JWT).
    Session,
}

/// What a route needs the caller to be allowed to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    /// See projects, keys, members and invites.
    ReadOrganization,
    /// Create, rename and archive projects.
    ManageProjects,
    /// Create and revoke project API keys.
    ManageApiKeys,
    /// Create and revoke organization admin keys.
    ManageAdminKeys,
    /// Invite, re-role and remove members.
    ManageMembers,
    /// Read the audit log.
    ReadAuditLog,
    /// Read usage.
    ReadUsage,
    /// Pay: buy credits (top-ups).
    ManageBilling,
    /// Call the inference endpoints.
    Inference,
    /// Request, scale, stop, start and delete private deployments.
    ManageDeployments,
}

/// The request's id and the peer address, for audit entries and usage events.
#[derive(Debug, Clone, Default)]
pub struct RequestContext {
    pub request_id: String,
    pub ip: Option<String>,
    /// The browser origin of an API request from another origin (see `api::cors`).
    pub origin: Option<String>,
}

/// The id the request-id middleware put in the request's extensions.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

impl RequestContext {
    pub fn of(req: &HttpRequest) -> Self {
        RequestContext {
            request_id: req
                .extensions()
                .get::<RequestId>()
                .map(|r| r.0.clone())
                .unwrap_or_default(),
            ip: req.peer_addr().map(|a| a.ip().to_string()),
            origin: if req.path().starts_with("/v1/") {
                crate::api::cors::cross_origin(req.headers())
            } else {
                None
            },
        }
    }
}

/// The authenticated caller.
#[derive(Debug, Clone)]
pub struct Principal {
    pub credential: Credential,
    pub tenant_id: TenantId,
    /// Set for project API keys: the only project the caller can see.
    pub project_id: Option<ProjectId>,
    /// Set for API keys (project and admin).
    pub key_id: Option<KeyId>,
    /// Set for console sessions.
    pub user_id: Option<UserId>,
    /// Set for console sessions: the session family.
    pub session_id: Option<String>,
    /// The member's role for sessions; admin keys act as `admin`; project keys have none.
    pub role: Option<Role>,
    /// The key's scopes; empty for sessions (their role decides).
    pub scopes: Vec<Scope>,
    /// The key's own limits (rate limiting reads them).
    pub limits: KeyLimits,
    /// The organization's plan and the project's limit overrides, when authentication read
    /// them with the key (else the rate limiter reads them).
    pub limit_context: Option<RateLimitContext>,
    pub request: RequestContext,
}

impl Principal {
    /// Whether the caller may do `permission` somewhere in its tenant.
    pub fn allows(&self, permission: Permission) -> bool {
        use Permission::*;
        match self.credential {
            Credential::Session => match self.role {
                Some(Role::Owner) | Some(Role::Admin) => true,
                Some(Role::Developer) => matches!(
                    permission,
                    ReadOrganization | ManageApiKeys | ReadUsage | Inference
                ),
                Some(Role::Billing) => {
                    matches!(permission, ReadOrganization | ReadUsage | ManageBilling)
                }
                Some(Role::Viewer) => matches!(permission, ReadOrganization | ReadUsage),
                None => false,
            },
            Credential::AdminKey => permission != Inference,
            Credential::ApiKey => {
                let has = |s: Scope| self.scopes.contains(&s);
                match permission {
                    Inference => has(Scope::Inference),
                    ReadUsage => has(Scope::UsageRead) || has(Scope::Admin),
                    ReadOrganization | ManageApiKeys => has(Scope::Admin),
                    _ => false,
                }
            }
        }
    }

    /// 403 unless `permission` is allowed.
    pub fn require(&self, permission: Permission) -> Result<(), ApiError> {
        if self.allows(permission) {
            Ok(())
        } else {
            Err(ApiError::Forbidden(format!(
                "This {} does not have permission to {}.",
                self.credential_name(),
                describe(permission)
            )))
        }
    }

    /// For organization-wide routes: 403 for callers bound to one project.
    pub fn require_organization(&self, permission: Permission) -> Result<(), ApiError> {
        self.require(permission)?;
        if self.project_id.is_some() {
            return Err(ApiError::Forbidden(format!(
                "A project API key cannot {}; use an admin key or a console session.",
                describe(permission)
            )));
        }
        Ok(())
    }

    /// For routes on one project: 403 without the permission, 404 when the caller is bound to
    /// a different project (it must not learn that the project exists).
    pub fn require_project(
        &self,
        permission: Permission,
        project_id: &str,
    ) -> Result<(), ApiError> {
        self.require(permission)?;
        match &self.project_id {
            Some(own) if own != project_id => Err(ApiError::not_found("project", project_id)),
            _ => Ok(()),
        }
    }

    /// Audit actor: `("user", user_id)` for sessions, `("api_key", key_id)` for keys.
    pub fn actor(&self) -> (&'static str, &str) {
        match (&self.user_id, &self.key_id) {
            (Some(user), _) if self.credential == Credential::Session => ("user", user),
            (_, Some(key)) => ("api_key", key),
            _ => ("unknown", ""),
        }
    }

    fn credential_name(&self) -> &'static str {
        match self.credential {
            Credential::ApiKey => "API key",
            Credential::AdminKey => "admin key",
            Credential::Session => "user",
        }
    }

    fn of_key(
        record: ApiKeyRecord,
        limit_context: Option<RateLimitContext>,
        request: RequestContext,
    ) -> Principal {
        let kind = record.kind;
        Principal {
            credential: match kind {
                KeyKind::Admin => Credential::AdminKey,
                KeyKind::Project => Credential::ApiKey,
            },
            tenant_id: record.tenant_id,
            project_id: record.project_id,
            key_id: Some(record.id),
            user_id: None,
            session_id: None,
            role: (kind == KeyKind::Admin).then_some(Role::Admin),
            scopes: record.scopes,
            limits: record.limits,
            limit_context,
            request,
        }
    }

    /// What a WebSocket ticket created by this caller stands for: its API key or its console
    /// session.
    pub fn ticket_holder(&self) -> Option<TicketHolder> {
        match (
            self.credential,
            &self.key_id,
            &self.user_id,
            &self.session_id,
        ) {
            (Credential::ApiKey, Some(key_id), _, _) => Some(TicketHolder::ApiKey {
                key_id: key_id.clone(),
            }),
            (Credential::Session, _, Some(user_id), Some(session_id)) => {
                Some(TicketHolder::Session {
                    user_id: user_id.clone(),
                    session_id: session_id.clone(),
                })
            }
            _ => None,
        }
    }

    /// Redeems a WebSocket ticket (`ticket` is the secret as the client sent it) and resolves
    /// the credential it stands for, checked again now: a key revoked or a session ended since
    /// the ticket was issued authenticates nothing.
    pub async fn from_ticket(
        state: &AppState,
        ticket: &str,
        request: RequestContext,
    ) -> Result<Principal, ApiError> {
        let invalid = || {
            ApiError::Unauthenticated(
                "Invalid WebSocket ticket: it is unknown, was used already, or has expired. \
                 Get a new one from POST /v1/ws/tickets."
                    .to_owned(),
            )
        };
        let redeemed = state
            .store
            .redeem_ws_ticket(&sha256_hex(ticket))
            .await?
            .ok_or_else(invalid)?;
        let principal = match redeemed.holder {
            TicketHolder::ApiKey { key_id } => {
                let record = state
                    .store
                    .live_api_key(&redeemed.tenant_id, &key_id)
                    .await?
                    .ok_or_else(invalid)?;
                Principal::of_key(record, None, request)
            }
            TicketHolder::Session {
                user_id,
                session_id,
            } => {
                let role = state
                    .store
                    .session_role(&session_id, &user_id, &redeemed.tenant_id)
                    .await?
                    .ok_or_else(invalid)?;
                Principal {
                    credential: Credential::Session,
                    tenant_id: redeemed.tenant_id,
                    project_id: None,
                    key_id: None,
                    user_id: Some(user_id),
                    session_id: Some(session_id),
                    role: Some(role),
                    scopes: Vec::new(),
                    limits: KeyLimits::default(),
                    limit_context: None,
                    request,
                }
            }
        };
        // A browser's WebSocket handshake carries its page's origin: a ticket is no way
        // around the origin rules (cross-site WebSocket hijacking).
        principal.check_origin(state).await
    }

    /// Resolves the credential of `req`'s headers (what the extractor does).
    pub async fn authenticate(state: &AppState, req: &HttpRequest) -> Result<Principal, ApiError> {
        let token = credential_of(req)?;
        let request = RequestContext::of(req);
        if let Some(kind) = api_key::parse(&token) {
            let (record, context) = state
                .store
                .authenticate_api_key_with_limits(&sha256_hex(&token))
                .await?
                .filter(|(record, _)| record.kind == kind)
                .ok_or_else(|| {
                    ApiError::Unauthenticated(
                        "Incorrect API key provided, or the key was revoked or has expired."
                            .to_owned(),
                    )
                })?;
            return Principal::of_key(record, Some(context), request)
                .check_origin(state)
                .await;
        }
        Principal::from_access_token(state, &token, request)
            .await?
            .check_origin(state)
            .await
    }

    /// Refuses a browser request from an origin this credential does not allow: a project
    /// key's requests only from its project's `allowed_origins`, admin keys' and sessions'
    /// never from another origin (see `api::cors`).
    async fn check_origin(self, state: &AppState) -> Result<Principal, ApiError> {
        let Some(origin) = &self.request.origin else {
            return Ok(self);
        };
        let allowed = match (self.credential, &self.project_id) {
            (Credential::ApiKey, Some(project)) => state
                .cors
                .table(&state.store)
                .await?
                .allows(project.as_str(), origin),
            _ => false,
        };
        if allowed {
            Ok(self)
        } else {
            Err(crate::api::cors::not_allowed(origin))
        }
    }

    /// The caller of a console access token (from `Authorization: Bearer` or the console's
    /// session cookie): the signature and expiry are checked, and the role is read from the
    /// database, so a revoked session or a removed member is refused at once.
    pub async fn from_access_token(
        state: &AppState,
        token: &str,
        request: RequestContext,
    ) -> Result<Principal, ApiError> {
        let claims = state.tokens.verify_access(token).ok_or_else(|| {
            ApiError::Unauthenticated(
                "Incorrect API key or access token provided, or it has expired.".to_owned(),
            )
        })?;
        let role = state
            .store
            .session_role(
                &claims.sid,
                &UserId::from(claims.sub.as_str()),
                &TenantId::from(claims.tid.as_str()),
            )
            .await?
            .ok_or_else(|| {
                ApiError::Unauthenticated("The session was ended; log in again.".to_owned())
            })?;
        Ok(Principal {
            credential: Credential::Session,
            tenant_id: claims.tid.into(),
            project_id: None,
            key_id: None,
            user_id: Some(UserId::from(claims.sub)),
            session_id: Some(claims.sid),
            role: Some(role),
            scopes: Vec::new(),
            limits: KeyLimits::default(),
            limit_context: None,
            request,
        })
    }
}

fn describe(permission: Permission) -> &'static str {
    match permission {
        Permission::ReadOrganization => "read this organization",
        Permission::ManageProjects => "manage projects",
        Permission::ManageApiKeys => "manage API keys",
        Permission::ManageAdminKeys => "manage admin keys",
        Permission::ManageMembers => "manage members and invites",
        Permission::ReadAuditLog => "read the audit log",
        Permission::ReadUsage => "read usage",
        Permission::ManageBilling => "buy credits",
        Permission::Inference => "call inference endpoints",
        Permission::ManageDeployments => "manage deployments",
    }
}

/// The credential from `Authorization: Bearer`, `api-key` or `x-api-key`, in that order.
fn credential_of(req: &HttpRequest) -> Result<String, ApiError> {
    let headers = req.headers();
    if let Some(value) = headers.get("authorization") {
        let value = value.to_str().unwrap_or_default().trim();
        let token = value
            .split_once(' ')
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
            .filter(|t| !t.is_empty());
        return token.map(str::to_owned).ok_or_else(|| {
            ApiError::Unauthenticated(
                "The Authorization header must be 'Bearer <API key or access token>'.".to_owned(),
            )
        });
    }
    for name in ["api-key", "x-api-key"] {
        if let Some(value) = headers.get(name) {
            let value = value.to_str().unwrap_or_default().trim();
            if !value.is_empty() {
                return Ok(value.to_owned());
            }
        }
    }
    Err(ApiError::Unauthenticated(
        "You didn't provide an API key. Send it as 'Authorization: Bearer <key>', or in the \
         'api-key' or 'x-api-key' header."
            .to_owned(),
    ))
}

impl FromRequest for Principal {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Principal, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let state = req
                .app_data::<web::Data<AppState>>()
                .ok_or_else(|| ApiError::Internal("application state missing".into()))?
                .clone();
            Principal::authenticate(&state, &req).await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal(credential: Credential, role: Option<Role>, scopes: &[Scope]) -> Principal {
        Principal {
            credential,
            tenant_id: "org_1".into(),
            project_id: (credential == Credential::ApiKey).then(|| "proj_1".into()),
            key_id: None,
            user_id: None,
            session_id: None,
            role,
            scopes: scopes.to_vec(),
            limits: KeyLimits::default(),
            limit_context: None,
            request: RequestContext::default(),
        }
    }

    #[test]
    fn roles_grant_what_the_table_says() {
        let viewer = principal(Credential::Session, Some(Role::Viewer), &[]);
        assert!(viewer.allows(Permission::ReadOrganization));
        assert!(!viewer.allows(Permission::ManageApiKeys));
        let dev = principal(Credential::Session, Some(Role::Developer), &[]);
        assert!(dev.allows(Permission::ManageApiKeys));
        assert!(!dev.allows(Permission::ManageProjects));
        let owner = principal(Credential::Session, Some(Role::Owner), &[]);
        assert!(owner.allows(Permission::ManageMembers));
    }

    #[test]
    fn project_keys_are_bound_to_their_scopes_and_project() {
        let inference = principal(Credential::ApiKey, None, &[Scope::Inference]);
        assert!(inference.allows(Permission::Inference));
        assert!(inference.require(Permission::ReadOrganization).is_err());
        let admin = principal(Credential::ApiKey, None, &[Scope::Admin]);
        assert!(admin
            .require_project(Permission::ManageApiKeys, "proj_1")
            .is_ok());
        assert!(matches!(
            admin.require_project(Permission::ManageApiKeys, "proj_2"),
            Err(ApiError::NotFound(_))
        ));
        assert!(matches!(
            admin.require_organization(Permission::ReadOrganization),
            Err(ApiError::Forbidden(_))
        ));
        let admin_key = principal(Credential::AdminKey, Some(Role::Admin), &[Scope::Admin]);
        assert!(admin_key
            .require_organization(Permission::ManageProjects)
            .is_ok());
        assert!(!admin_key.allows(Permission::Inference));
    }
}
