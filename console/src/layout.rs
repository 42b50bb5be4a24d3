//! The console's shared page parts: the layout with its navigation, the signed-in context
//! (principal, CSRF token), form parsing, error pages and date formatting.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse};
use maud::{html, Markup, DOCTYPE};

use super::session::{self};
use super::PageError;
use gateway::auth::{Permission, Principal};
use gateway::error::ApiError;
use gateway::server::AppState;
use store::tenants::Tenant;
use store::users::Role;

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
    Deployments,
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
                            (entry(Section::Deployments, "/deployments", "Deployments"))
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
pub(super) fn bare(title: &str, body: Markup) -> Markup {
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
