//! The console's pages and form actions.

use actix_web::http::header;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use maud::{html, Markup, DOCTYPE};

use super::session::{self, CONSOLE_SESSION_SECS, PRE_CSRF_COOKIE, SESSION_COOKIE};
use super::{html as page, see_other, PageError};
use crate::api::api_keys::{ApiKeyCreate, CreatedApiKey};
use crate::api::auth::{LoginRequest, SignupRequest};
use crate::api::invites::INVITE_TOKEN_PREFIX;
use crate::api::list::ListQuery;
use crate::api::projects::{ProjectCreate, ProjectListQuery};
use crate::api::{api_keys, audit, auth, projects};
use crate::auth::secret::sha256_hex;
use crate::auth::{Permission, Principal, RequestContext};
use crate::error::ApiError;
use crate::server::AppState;
use crate::store::api_keys::{KeyLimits, KeyOwner, Scope};
use crate::store::tenants::Tenant;
use crate::store::users::Role;

pub(super) type PageResult = Result<HttpResponse, PageError>;

/// Largest form body the console accepts.
const MAX_FORM_BYTES: usize = 16 * 1024;

/// A urlencoded form body (fields may repeat, e.g. checkboxes).
pub(super) struct Form(Vec<(String, String)>);

impl Form {
    pub(super) fn parse(body: &[u8]) -> Result<Form, ApiError> {
        if body.len() > MAX_FORM_BYTES {
            return Err(ApiError::bad_request("The form is too large.", None));
        }
        Ok(Form(
            form_urlencoded::parse(body)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        ))
    }

    pub(super) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The field, or "" when absent.
    pub(super) fn text(&self, name: &str) -> String {
        self.get(name).unwrap_or_default().to_owned()
    }

    /// The field when present and not blank.
    pub(super) fn optional(&self, name: &str) -> Option<String> {
        self.get(name)
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    }

    pub(super) fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

pub(super) fn query_param(req: &HttpRequest, name: &str) -> Option<String> {
    form_urlencoded::parse(req.query_string().as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
        .filter(|v| !v.is_empty())
}

/// Which navigation entry is current.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Section {
    Projects,
    Usage,
    Playground,
    Billing,
    Members,
    Audit,
}

/// A signed-in request: who, where, and the CSRF token for its forms.
pub(super) struct Ctx {
    pub(super) principal: Principal,
    pub(super) email: String,
    pub(super) organization: String,
    /// Every organization the user belongs to, for the switcher.
    pub(super) organizations: Vec<(Tenant, Role)>,
    pub(super) csrf: String,
}

impl Ctx {
    pub(super) async fn load(
        state: &AppState,
        req: &HttpRequest,
    ) -> Result<Option<Ctx>, PageError> {
        let Some(principal) = session::principal(state, req).await else {
            return Ok(None);
        };
        let user_id = principal.user_id.clone().unwrap_or_default();
        let user = state.store.user(&user_id).await?;
        let tenant = state.store.tenant(&principal.tenant_id).await?;
        let organizations = state.store.tenants_of_user(&user_id).await?;
        Ok(Some(Ctx {
            csrf: session::session_csrf(state, &principal),
            principal,
            email: user.email,
            organization: tenant.name,
            organizations,
        }))
    }

    /// For form posts: the session (401 without one) with its CSRF token checked (403).
    pub(super) async fn for_post(
        state: &AppState,
        req: &HttpRequest,
        form: &Form,
    ) -> Result<Ctx, PageError> {
        let ctx = Ctx::load(state, req).await?.ok_or_else(|| {
            PageError(ApiError::Unauthenticated(
                "Your console session has ended; sign in again.".to_owned(),
            ))
        })?;
        session::check_session_csrf(state, req, &ctx.principal, form.get("csrf"))?;
        Ok(ctx)
    }

    pub(super) fn role(&self) -> &'static str {
        self.principal.role.map(Role::as_str).unwrap_or("none")
    }

    pub(super) fn can(&self, permission: Permission) -> bool {
        self.principal.allows(permission)
    }
}

pub(super) fn csrf_field(token: &str) -> Markup {
    html! { input type="hidden" name="csrf" value=(token); }
}

fn head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) " · Starfire" }
            link rel="stylesheet" href="/assets/console.css";
            script src="/assets/console.js" defer {}
        }
    }
}

/// A page for a signed-in user: skip link, navigation, who and sign-out, then `body`.
pub(super) fn layout(ctx: &Ctx, section: Section, title: &str, body: Markup) -> Markup {
    let entry = |s: Section, href: &str, label: &str| {
        html! {
            li { a href=(href) aria-current=[(s == section).then_some("page")] { (label) } }
        }
    };
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    a.brand href="/projects" { "Starfire" }
                    nav aria-label="Main" {
                        ul {
                            (entry(Section::Projects, "/projects", "Projects"))
                            (entry(Section::Usage, "/usage", "Usage"))
                            @if ctx.can(Permission::Inference) {
                                (entry(Section::Playground, "/playground", "Playground"))
                            }
                            (entry(Section::Billing, "/billing", "Billing"))
                            (entry(Section::Members, "/members", "Members"))
                            @if ctx.can(Permission::ReadAuditLog) {
                                (entry(Section::Audit, "/audit", "Audit log"))
                            }
                        }
                    }
                    div.who {
                        span { (ctx.email) " · " span #organization { (ctx.organization) } " · " span #role { (ctx.role()) } }
                        @if ctx.organizations.len() > 1 {
                            form #switch-org.inline method="post" action="/organizations/switch" {
                                (csrf_field(&ctx.csrf))
                                label for="organization" { "Organization" }
                                select #organization name="organization" {
                                    @for (tenant, role) in &ctx.organizations {
                                        option value=(tenant.id) selected[tenant.id == ctx.principal.tenant_id] {
                                            (tenant.name) " (" (role.as_str()) ")"
                                        }
                                    }
                                }
                                button.secondary type="submit" { "Switch" }
                            }
                        }
                        form #signout method="post" action="/signout" {
                            (csrf_field(&ctx.csrf))
                            button.secondary type="submit" { "Sign out" }
                        }
                    }
                }
                main #main tabindex="-1" {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

/// A page without navigation (sign-in, sign-up, errors).
fn bare(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body {
                header.top { a.brand href="/" { "Starfire" } }
                main #main {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

pub(super) fn error_page(status: StatusCode, message: &str) -> Markup {
    let title = status.canonical_reason().unwrap_or("Error");
    bare(
        title,
        html! {
            p.error role="alert" { (message) }
            p { a href="/projects" { "Back to the console" } " · " a href="/signin" { "Sign in" } }
        },
    )
}

pub(super) fn not_allowed(ctx: &Ctx, what: Permission) -> Option<Markup> {
    (!ctx.can(what)).then(|| {
        html! {
            p.muted { "Your role (" (ctx.role()) ") can see this page but not change it." }
        }
    })
}

/// `YYYY-MM-DD HH:MM UTC` from Unix seconds.
pub(super) fn time(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rest = secs.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        rest / 3600,
        rest % 3600 / 60
    )
}

// ---- signed out -----------------------------------------------------------------------------

pub async fn home(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    if session::principal(&state, &req).await.is_some() {
        see_other("/projects")
    } else {
        see_other("/signin")
    }
}

/// A pre-sign-in form page, setting its CSRF cookie when new.
fn with_pre_csrf(
    req: &HttpRequest,
    status: StatusCode,
    render: impl FnOnce(&str) -> Markup,
) -> HttpResponse {
    let (token, fresh) = session::pre_csrf(req);
    let mut res = page(status, render(&token));
    if fresh {
        let value = session::cookie(req, PRE_CSRF_COOKIE, &token, 3600);
        if let Ok(value) = header::HeaderValue::from_str(&value) {
            res.headers_mut().append(header::SET_COOKIE, value);
        }
    }
    res
}

pub(super) fn signed_in_response(req: &HttpRequest, token: &str) -> HttpResponse {
    let mut res = see_other("/projects");
    let value = session::cookie(req, SESSION_COOKIE, token, CONSOLE_SESSION_SECS);
    if let Ok(value) = header::HeaderValue::from_str(&value) {
        res.headers_mut().append(header::SET_COOKIE, value);
    }
    res
}

struct AuthForm<'a> {
    email: &'a str,
    invite: Option<&'a str>,
    error: Option<&'a str>,
}

fn signin_markup(csrf: &str, form: &AuthForm) -> Markup {
    bare(
        "Sign in",
        html! {
            @if let Some(error) = form.error { p.error role="alert" { (error) } }
            @if form.invite.is_some() { p.notice { "Sign in to accept the invitation." } }
            form.stack method="post" action="/signin" {
                (csrf_field(csrf))
                @if let Some(invite) = form.invite { input type="hidden" name="invite_token" value=(invite); }
                div { label for="email" { "Email" } input #email type="email" name="email" value=(form.email) required autocomplete="username" maxlength="254"; }
                div { label for="password" { "Password" } input #password type="password" name="password" required autocomplete="current-password" maxlength="256"; }
                div { button type="submit" { "Sign in" } }
            }
            p { "No account? " a href=(match form.invite { Some(t) => format!("/signup?invite={t}"), None => "/signup".to_owned() }) { "Create one" } }
        },
    )
}

fn signup_markup(csrf: &str, form: &AuthForm) -> Markup {
    bare(
        "Create your account",
        html! {
            @if let Some(error) = form.error { p.error role="alert" { (error) } }
            @if form.invite.is_some() { p.notice { "You will join the organization that invited you." } }
            form.stack method="post" action="/signup" {
                (csrf_field(csrf))
                @if let Some(invite) = form.invite { input type="hidden" name="invite_token" value=(invite); }
                div { label for="email" { "Email" } input #email type="email" name="email" value=(form.email) required autocomplete="username" maxlength="254"; }
                div { label for="password" { "Password (at least 8 characters)" } input #password type="password" name="password" required minlength="8" maxlength="256" autocomplete="new-password"; }
                div { label for="name" { "Your name (optional)" } input #name type="text" name="name" maxlength="128" autocomplete="name"; }
                @if form.invite.is_none() {
                    div { label for="organization_name" { "Organization name (optional)" } input #organization_name type="text" name="organization_name" maxlength="128" autocomplete="organization"; }
                }
                div { button type="submit" { "Create account" } }
            }
            p { "Already have an account? " a href=(match form.invite { Some(t) => format!("/signin?invite={t}"), None => "/signin".to_owned() }) { "Sign in" } }
        },
    )
}

/// An invite token as it may appear in a URL or form: our prefix and base62, bounded.
fn invite_param(value: Option<String>) -> Option<String> {
    value.filter(|t| {
        t.len() <= 64
            && t.starts_with(INVITE_TOKEN_PREFIX)
            && t[INVITE_TOKEN_PREFIX.len()..]
                .bytes()
                .all(|b| b.is_ascii_alphanumeric())
    })
}

pub async fn signin_form(req: HttpRequest) -> HttpResponse {
    let invite = invite_param(query_param(&req, "invite"));
    with_pre_csrf(&req, StatusCode::OK, |csrf| {
        signin_markup(
            csrf,
            &AuthForm {
                email: "",
                invite: invite.as_deref(),
                error: None,
            },
        )
    })
}

pub async fn signin(state: web::Data<AppState>, req: HttpRequest, body: web::Bytes) -> PageResult {
    let form = Form::parse(&body)?;
    session::check_pre_csrf(&req, form.get("csrf"))?;
    let email = form.text("email");
    let invite = invite_param(form.optional("invite_token"));
    let login = LoginRequest {
        email: email.clone(),
        password: form.text("password"),
        organization_id: None,
        invite_token: invite.clone(),
    };
    match auth::authenticate_login(&state, &RequestContext::of(&req), login).await {
        Ok((user, tenant, _)) => {
            let token = session::start(&state, &user, &tenant).await?;
            Ok(signed_in_response(&req, &token))
        }
        Err(ApiError::Internal(cause)) => Err(ApiError::Internal(cause).into()),
        Err(err) => {
            let message = err.body().error.message;
            Ok(with_pre_csrf(&req, err.status_code(), |csrf| {
                signin_markup(
                    csrf,
                    &AuthForm {
                        email: &email,
                        invite: invite.as_deref(),
                        error: Some(&message),
                    },
                )
            }))
        }
    }
}

pub async fn signup_form(state: web::Data<AppState>, req: HttpRequest) -> PageResult {
    let invite = invite_param(query_param(&req, "invite"));
    // Prefill the invited email when the link is a live invite.
    let email = match &invite {
        Some(token) => state
            .store
            .pending_invite(&sha256_hex(token))
            .await?
            .map(|i| i.email)
            .unwrap_or_default(),
        None => String::new(),
    };
    Ok(with_pre_csrf(&req, StatusCode::OK, |csrf| {
        signup_markup(
            csrf,
            &AuthForm {
                email: &email,
                invite: invite.as_deref(),
                error: None,
            },
        )
    }))
}

pub async fn signup(state: web::Data<AppState>, req: HttpRequest, body: web::Bytes) -> PageResult {
    let form = Form::parse(&body)?;
    session::check_pre_csrf(&req, form.get("csrf"))?;
    let email = form.text("email");
    let invite = invite_param(form.optional("invite_token"));
    let request = SignupRequest {
        email: email.clone(),
        password: form.text("password"),
        name: form.optional("name"),
        organization_name: form.optional("organization_name"),
        invite_token: invite.clone(),
    };
    match auth::create_account(&state, &RequestContext::of(&req), request).await {
        Ok((user, tenant, _)) => {
            let token = session::start(&state, &user, &tenant).await?;
            Ok(signed_in_response(&req, &token))
        }
        Err(ApiError::Internal(cause)) => Err(ApiError::Internal(cause).into()),
        Err(err) => {
            let message = err.body().error.message;
            Ok(with_pre_csrf(&req, err.status_code(), |csrf| {
                signup_markup(
                    csrf,
                    &AuthForm {
                        email: &email,
                        invite: invite.as_deref(),
                        error: Some(&message),
                    },
                )
            }))
        }
    }
}

pub async fn signout(state: web::Data<AppState>, req: HttpRequest, body: web::Bytes) -> PageResult {
    let form = Form::parse(&body)?;
    let ctx = Ctx::for_post(&state, &req, &form).await?;
    let session_id = ctx.principal.session_id.clone().unwrap_or_default();
    state.store.revoke_session(&session_id).await?;
    audit(
        &state,
        &ctx.principal,
        "logout.succeeded",
        "session",
        &session_id,
    )
    .await?;
    let mut res = see_other("/signin");
    let value = session::cookie(&req, SESSION_COOKIE, "", 0);
    if let Ok(value) = header::HeaderValue::from_str(&value) {
        res.headers_mut().append(header::SET_COOKIE, value);
    }
    Ok(res)
}

/// Where an invite link lands: says who is invited and offers sign-up or sign-in with it.
pub async fn invite_landing(state: web::Data<AppState>, req: HttpRequest) -> PageResult {
    let token = invite_param(query_param(&req, "token")).ok_or_else(|| {
        ApiError::invalid("token", "This invite link is malformed; ask for a new one.")
    })?;
    let invite = state
        .store
        .pending_invite(&sha256_hex(&token))
        .await?
        .ok_or_else(|| {
            ApiError::NotFound(
                "This invite is not pending: it was used, withdrawn or has expired.".to_owned(),
            )
        })?;
    let tenant = state.store.tenant(&invite.tenant_id).await?;
    Ok(page(
        StatusCode::OK,
        bare(
            "You are invited",
            html! {
                p { (invite.email) " is invited to join " strong { (tenant.name) } " as " (invite.role.as_str()) "." }
                p {
                    a.button href=(format!("/signup?invite={token}")) { "Create an account" }
                    " "
                    a.button.secondary href=(format!("/signin?invite={token}")) { "Sign in to accept" }
                }
            },
        ),
    ))
}

// ---- projects ------------------------------------------------------------------------------

async fn projects_page(state: &AppState, ctx: &Ctx) -> Result<Markup, PageError> {
    let list = projects::list(
        state,
        &ctx.principal,
        ProjectListQuery {
            limit: Some(100),
            after: None,
            include_archived: false,
        },
    )
    .await?;
    let count = list.data.len();
    Ok(layout(
        ctx,
        Section::Projects,
        "Projects",
        html! {
            p #project-count { (count) @if count == 1 { " project" } @else { " projects" } }
            div.table-wrap {
                table {
                    caption.muted { "Active projects of " (ctx.organization) }
                    thead { tr { th scope="col" { "Name" } th scope="col" { "ID" } th scope="col" { "Created" } th scope="col" { "Keys" } } }
                    tbody {
                        @for p in &list.data {
                            tr {
                                td { (p.name) }
                                td { code { (p.id) } }
                                td { (time(p.created_at)) }
                                td { a href=(format!("/projects/{}/keys", p.id)) { "API keys" span.skip { " of " (p.name) } } }
                            }
                        }
                    }
                }
            }
            @if let Some(note) = not_allowed(ctx, Permission::ManageProjects) {
                (note)
            } @else {
                h2 { "New project" }
                form.stack method="post" action="/projects" {
                    (csrf_field(&ctx.csrf))
                    div { label for="project-name" { "Project name" } input #project-name type="text" name="name" required maxlength="128"; }
                    div { button type="submit" { "Create project" } }
                }
            }
        },
    ))
}

pub async fn projects(state: web::Data<AppState>, req: HttpRequest) -> PageResult {
    let Some(ctx) = Ctx::load(&state, &req).await? else {
        return Ok(see_other("/signin"));
    };
    Ok(page(StatusCode::OK, projects_page(&state, &ctx).await?))
}

pub async fn create_project(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> PageResult {
    let form = Form::parse(&body)?;
    let ctx = Ctx::for_post(&state, &req, &form).await?;
    let project = projects::create(
        &state,
        &ctx.principal,
        ProjectCreate {
            name: form.text("name"),
            limits: None,
        },
    )
    .await?;
    Ok(see_other(&format!("/projects/{}/keys", project.id)))
}

// ---- API keys ------------------------------------------------------------------------------

async fn keys_page(
    state: &AppState,
    ctx: &Ctx,
    project_id: &str,
    created: Option<CreatedApiKey>,
) -> Result<Markup, PageError> {
    ctx.principal
        .require_project(Permission::ReadOrganization, project_id)?;
    let project = state
        .store
        .project(&ctx.principal.tenant_id, project_id)
        .await?;
    let keys = api_keys::list(
        state,
        &ctx.principal,
        project_id,
        &ListQuery {
            limit: Some(100),
            after: None,
        },
    )
    .await?;
    let count = keys.data.len();
    let manage = ctx.can(Permission::ManageApiKeys);
    Ok(layout(
        ctx,
        Section::Projects,
        &format!("API keys · {}", project.name),
        html! {
            p { a href="/projects" { "← All projects" } " · " a href=(format!("/projects/{}/limits", project.id)) { "Rate limits" } " · " a href=(format!("/usage?project={}&group=key", project.id)) { "Usage" } }
            @if let Some(created) = &created {
                div.notice role="status" {
                    p { "Key " strong { (created.key.name) } " created. Copy it now: it will not be shown again." }
                    div.secret {
                        code #new-key { (created.value) }
                        button.secondary type="button" data-copy="new-key" hidden { "Copy" }
                    }
                }
            }
            p #key-count { (count) @if count == 1 { " live key" } @else { " live keys" } }
            div.table-wrap {
                table {
                    thead { tr { th scope="col" { "Name" } th scope="col" { "Key" } th scope="col" { "Scopes" } th scope="col" { "Limits" } th scope="col" { "Created" } th scope="col" { "Expires" } th scope="col" { "Last used" } @if manage { th scope="col" { "Action" } } } }
                    tbody {
                        @for k in &keys.data {
                            tr {
                                td { (k.name) }
                                td { code { (k.redacted_value) } }
                                td { (k.scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")) }
                                td { (describe_limits(&k.limits)) }
                                td { (time(k.created_at)) }
                                td { @match k.expires_at { Some(t) => { (time(t)) } None => { "never" } } }
                                td { @match k.last_used_at { Some(t) => { (time(t)) } None => { "never" } } }
                                @if manage {
                                    td { a href=(format!("/projects/{}/keys/{}/revoke", project.id, k.id)) { "Revoke" span.skip { " " (k.name) } } }
                                }
                            }
                        }
                    }
                }
            }
            @if let Some(note) = not_allowed(ctx, Permission::ManageApiKeys) {
                (note)
            } @else {
                h2 { "New key" }
                form.stack method="post" action=(format!("/projects/{}/keys", project.id)) {
                    (csrf_field(&ctx.csrf))
                    div { label for="key-name" { "Key name" } input #key-name type="text" name="name" required maxlength="128"; }
                    fieldset {
                        legend { "Scopes" }
                        label { input type="checkbox" name="scopes" value="inference" checked; "inference" }
                        label { input type="checkbox" name="scopes" value="usage:read"; "usage:read" }
                        label { input type="checkbox" name="scopes" value="admin"; "admin" }
                    }
                    div {
                        label for="key-expires" { "Expires (optional, end of that day UTC)" }
                        input #key-expires type="date" name="expires" aria-describedby="key-expires-hint";
                        small #key-expires-hint.muted { "Leave empty for a key that does not expire." }
                    }
                    fieldset {
                        legend { "Limits (optional; empty means the project's and plan's limits apply)" }
                        (limit_inputs("key", &KeyLimits::default()))
                    }
                    div { button type="submit" { "Create key" } }
                }
            }
        },
    ))
}

pub async fn keys(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> PageResult {
    let Some(ctx) = Ctx::load(&state, &req).await? else {
        return Ok(see_other("/signin"));
    };
    Ok(page(
        StatusCode::OK,
        keys_page(&state, &ctx, &path, None).await?,
    ))
}

/// Number inputs for rate limits, ids prefixed with `prefix`.
pub(super) fn limit_inputs(prefix: &str, limits: &KeyLimits) -> Markup {
    let field = |name: &str, label: &str, value: Option<i64>| {
        let id = format!("{prefix}-{name}");
        html! {
            div {
                label for=(id) { (label) }
                input id=(id) type="number" name=(name) min="1" step="1" value=[value];
            }
        }
    };
    html! {
        div.grid3 {
            (field("rpm", "Requests per minute", limits.rpm))
            (field("tpm", "Tokens per minute", limits.tpm))
            (field("concurrency", "Requests at once", limits.concurrency))
        }
    }
}

/// `rpm 60 · tpm 10000`, or "default".
pub(super) fn describe_limits(limits: &KeyLimits) -> String {
    let parts: Vec<String> = [
        ("rpm", limits.rpm),
        ("tpm", limits.tpm),
        ("concurrent", limits.concurrency),
    ]
    .iter()
    .filter_map(|(name, v)| v.map(|v| format!("{name} {v}")))
    .collect();
    if parts.is_empty() {
        "default".to_owned()
    } else {
        parts.join(" · ")
    }
}

/// The `rpm`, `tpm` and `concurrency` fields; blank ones are unset (checked by the API).
pub(super) fn limits_of(form: &Form) -> Result<KeyLimits, ApiError> {
    let number = |name: &str| {
        form.optional(name)
            .map(|v| {
                v.parse::<i64>().map_err(|_| {
                    ApiError::invalid(name, format!("'{name}' must be a positive integer."))
                })
            })
            .transpose()
    };
    Ok(KeyLimits {
        rpm: number("rpm")?,
        tpm: number("tpm")?,
        concurrency: number("concurrency")?,
    })
}

/// Unix seconds of the last second of `YYYY-MM-DD` (UTC).
fn end_of_day(field: &str, date: &str) -> Result<i64, ApiError> {
    parse_date(date)
        .map(|day| day * 86_400 + 86_399)
        .ok_or_else(|| ApiError::invalid(field, format!("'{field}' must be a date (YYYY-MM-DD).")))
}

/// Days since 1970-01-01 of a `YYYY-MM-DD` date.
pub(super) fn parse_date(date: &str) -> Option<i64> {
    let mut parts = date.trim().splitn(3, '-');
    let year: i64 = parts.next()?.parse().ok()?;
    let month: i64 = parts.next()?.parse().ok()?;
    let day: i64 = parts.next()?.parse().ok()?;
    if !(1970..=9999).contains(&year) || !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    // Howard Hinnant's days_from_civil.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    // Refuse dates that do not exist (31 February): they would not round-trip.
    (date_of(days * 86_400) == date.trim()).then_some(days)
}

/// `YYYY-MM-DD` from Unix seconds.
pub(super) fn date_of(secs: i64) -> String {
    time(secs)[..10].to_owned()
}

fn parse_scopes(values: &[&str]) -> Result<Vec<Scope>, ApiError> {
    values
        .iter()
        .map(|v| {
            serde_json::from_value(serde_json::Value::String((*v).to_owned())).map_err(|_| {
                ApiError::invalid(
                    "scopes",
                    "'scopes' must be 'inference', 'usage:read' or 'admin'.",
                )
            })
        })
        .collect()
}

pub async fn create_key(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
) -> PageResult {
    let form = Form::parse(&body)?;
    let ctx = Ctx::for_post(&state, &req, &form).await?;
    // The role before the fields: a viewer learns nothing from a malformed form.
    ctx.principal
        .require_project(Permission::ManageApiKeys, &path)?;
    let created = api_keys::create(
        &state,
        &ctx.principal,
        &path,
        ApiKeyCreate {
            name: form.text("name"),
            scopes: Some(parse_scopes(&form.all("scopes"))?),
            expires_at: form
                .optional("expires")
                .map(|d| end_of_day("expires", &d))
                .transpose()?,
            limits: Some(limits_of(&form)?),
        },
    )
    .await?;
    Ok(page(
        StatusCode::OK,
        keys_page(&state, &ctx, &path, Some(created)).await?,
    ))
}

pub async fn confirm_revoke(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
) -> PageResult {
    let Some(ctx) = Ctx::load(&state, &req).await? else {
        return Ok(see_other("/signin"));
    };
    let (project_id, key_id) = path.into_inner();
    ctx.principal
        .require_project(Permission::ManageApiKeys, &project_id)?;
    let key = state
        .store
        .api_key(
            &ctx.principal.tenant_id,
            KeyOwner::Project(&project_id),
            &key_id,
        )
        .await?;
    let back = format!("/projects/{project_id}/keys");
    Ok(page(
        StatusCode::OK,
        layout(
            &ctx,
            Section::Projects,
            "Revoke key",
            html! {
                p { "Revoke " strong { (key.name) } " (" code { (crate::auth::api_key::redacted(&key.prefix)) } ")? Requests with it are refused from that moment; this cannot be undone." }
                form method="post" action=(format!("{back}/{key_id}/revoke")) {
                    (csrf_field(&ctx.csrf))
                    button.danger type="submit" { "Revoke key" }
                    " "
                    a.button.secondary href=(back) { "Cancel" }
                }
            },
        ),
    ))
}

pub async fn revoke_key(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> PageResult {
    let form = Form::parse(&body)?;
    let ctx = Ctx::for_post(&state, &req, &form).await?;
    let (project_id, key_id) = path.into_inner();
    api_keys::revoke(&state, &ctx.principal, &project_id, &key_id).await?;
    Ok(see_other(&format!("/projects/{project_id}/keys")))
}

// ---- playground ----------------------------------------------------------------------------

pub async fn playground(state: web::Data<AppState>, req: HttpRequest) -> PageResult {
    let Some(ctx) = Ctx::load(&state, &req).await? else {
        return Ok(see_other("/signin"));
    };
    ctx.principal.require(Permission::Inference)?;
    let token = session::playground_token(&state, &ctx.principal)?;
    let models = state.inference.models().unwrap_or_default();
    Ok(page(
        StatusCode::OK,
        layout(
            &ctx,
            Section::Playground,
            "Playground",
            html! {
                @if models.is_empty() {
                    p.error role="alert" { "No model is loaded. Run `starfire model fetch`, then restart `starfire serve`." }
                }
                p.muted { "Requests here run as you (this console session), not as an API key." }
                form #playground.stack data-token=(token) {
                    div {
                        label for="model" { "Model" }
                        select #model name="model" {
                            @for m in &models { option value=(m.id) { (m.id) } }
                        }
                    }
                    div.grid2 {
                        div { label for="temperature" { "Temperature" } input #temperature type="number" name="temperature" min="0" max="2" step="0.1" value="0.7"; }
                        div { label for="max_tokens" { "Max tokens" } input #max_tokens type="number" name="max_tokens" min="1" max="4096" step="1" value="64"; }
                        div { label for="top_p" { "Top p" } input #top_p type="number" name="top_p" min="0" max="1" step="0.05" value="1"; }
                    }
                    div { label for="system" { "System message (optional)" } textarea #system name="system" rows="2" {} }
                    div { label for="prompt" { "Message" } textarea #prompt name="prompt" required { "Write one sentence about the sea." } }
                    div { button type="submit" { "Send" } }
                }
                h2 { "Answer" }
                p #status role="status" aria-live="polite" { "Ready." }
                div #answer aria-live="polite" {}
                dl.stats {
                    dt { "Tokens/s" } dd #stat-rate { "–" }
                    dt { "Prompt tokens" } dd #stat-prompt { "–" }
                    dt { "Completion tokens" } dd #stat-completion { "–" }
                    dt { "Total tokens" } dd #stat-total { "–" }
                }
                h2 { "The same request in code" }
                p.muted { "Each snippet sends exactly the request above; replace the session with an API key of yours in STARFIRE_API_KEY." }
                @for (id, label) in [("curl", "curl"), ("python", "Python (openai package)"), ("typescript", "TypeScript (openai package)")] {
                    section.snippet aria-labelledby=(format!("{id}-title")) {
                        h3 id=(format!("{id}-title")) { (label) }
                        pre id=(id) tabindex="0" { "Enable JavaScript to see the " (label) " snippet." }
                        button.secondary type="button" data-copy=(id) hidden { "Copy " (label) " snippet" }
                    }
                }
            },
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_render_as_utc_dates() {
        assert_eq!(time(0), "1970-01-01 00:00 UTC");
        assert_eq!(time(1_709_210_096), "2024-02-29 12:34 UTC");
    }

    #[test]
    fn dates_parse_to_days_and_back() {
        assert_eq!(parse_date("1970-01-01"), Some(0));
        assert_eq!(parse_date("2024-02-29"), Some(19_782));
        assert_eq!(date_of(19_782 * 86_400), "2024-02-29");
        assert_eq!(parse_date("2023-02-29"), None);
        assert_eq!(parse_date("2024-13-01"), None);
        assert_eq!(parse_date("nope"), None);
        assert_eq!(end_of_day("e", "1970-01-02").unwrap(), 2 * 86_400 - 1);
    }

    #[test]
    fn invite_params_must_look_like_tokens() {
        assert!(invite_param(Some("sfi-abc123".into())).is_some());
        assert!(invite_param(Some("sfi-abc\"><script>".into())).is_none());
        assert!(invite_param(Some("nope".into())).is_none());
    }
}
