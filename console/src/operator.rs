//! The platform operator's pages: sign in with an operator token (`[billing.operator_tokens]`),
//! then approve or reject the deployments organizations request, and see every organization's
//! deployments by state.
//!
//! An operator is not a member of any organization, so this is its own sign-in. The cookie
//! (`sf_operator`, HttpOnly, SameSite=Strict) never holds the token: it holds the operator's
//! name, an expiry and an HMAC under the server's session secret over both and a digest of the
//! operator's current token, so a changed token or a removed operator ends the sign-in at once.
//! Forms carry an HMAC of the cookie as their CSRF token.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use hmac::{Hmac, Mac};
use maud::{html, Markup};
use sha2::Sha256;

use super::layout::{bare, csrf_field, query_param, time, Form, PageResult};
use super::session::{self, check_csrf, check_origin, cookie, read_cookie, set_cookie};
use super::signin::with_pre_csrf;
use super::{html as page, see_other, PageError};
use gateway::api::deployments::{self as api, OperatorDeploymentList};
use gateway::auth::secret::{constant_time_eq, hex, unhex};
use gateway::billing::operator::Operator;
use gateway::deployments::State;
use gateway::error::ApiError;
use gateway::server::AppState;
use store::now_ms;

pub const OPERATOR_COOKIE: &str = "sf_operator";
/// How long an operator's console sign-in lasts.
pub const OPERATOR_SESSION_SECS: u64 = 3600;

fn mac(state: &AppState, parts: &[&[u8]]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(state.config.session_secret.as_bytes())
        .expect("HMAC takes keys of any length");
    for part in parts {
        mac.update(&(part.len() as u64).to_be_bytes());
        mac.update(part);
    }
    hex(&mac.finalize().into_bytes())
}

/// The cookie value for `operator` until `expires` (Unix seconds): hex(name).expires.mac.
fn signed(state: &AppState, operator: &Operator, expires: i64) -> Option<String> {
    let digest = Operator::token_digest(state, &operator.name)?;
    let name = hex(operator.name.as_bytes());
    let expires = expires.to_string();
    let mac = mac(
        state,
        &[
            b"console-operator",
            name.as_bytes(),
            expires.as_bytes(),
            digest.as_bytes(),
        ],
    );
    Some(format!("{name}.{expires}.{mac}"))
}

/// The operator a cookie value signs in, when it is genuine, unexpired and its operator's token
/// has not changed.
fn verify(state: &AppState, value: &str) -> Option<Operator> {
    let mut parts = value.split('.');
    let (name_hex, expires, _) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || name_hex.len() > 512 {
        return None;
    }
    let expires_at: i64 = expires.parse().ok()?;
    if expires_at * 1000 <= now_ms() {
        return None;
    }
    let name = String::from_utf8(unhex(name_hex)?).ok()?;
    let operator = Operator { name };
    let expected = signed(state, &operator, expires_at)?;
    constant_time_eq(&expected, value).then_some(operator)
}

/// The signed-in operator and the CSRF token of their forms.
struct OperatorCtx {
    operator: Operator,
    csrf: String,
}

impl OperatorCtx {
    fn load(state: &AppState, req: &HttpRequest) -> Option<OperatorCtx> {
        let value = read_cookie(req, OPERATOR_COOKIE)?;
        let operator = verify(state, &value)?;
        Some(OperatorCtx {
            csrf: mac(state, &[b"operator-csrf", value.as_bytes()]),
            operator,
        })
    }

    /// For form posts: a live operator sign-in (401 without) whose form token matches (403).
    fn for_post(state: &AppState, req: &HttpRequest, form: &Form) -> Result<OperatorCtx, ApiError> {
        check_origin(req)?;
        let ctx = OperatorCtx::load(state, req).ok_or_else(|| {
            ApiError::Unauthenticated(
                "Your operator sign-in has ended; sign in again at /operator/signin.".to_owned(),
            )
        })?;
        check_csrf(req, &ctx.csrf, form.get("csrf"))?;
        Ok(ctx)
    }
}

fn signin_markup(csrf: &str, error: Option<&str>) -> Markup {
    bare(
        "Operator sign-in",
        html! {
            @if let Some(error) = error { p.error role="alert" { (error) } }
            p.muted { "For the platform's operators: sign in with an operator token to approve deployment requests. Organization members sign in " a href="/signin" { "here" } "." }
            form.stack #operator-signin method="post" action="/operator/signin" {
                (csrf_field(csrf))
                div { label for="token" { "Operator token" } input #token type="password" name="token" required autocomplete="off" maxlength="512"; }
                div { button type="submit" { "Sign in" } }
            }
        },
    )
}

pub async fn signin_form(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    if OperatorCtx::load(&state, &req).is_some() {
        return see_other("/operator/deployments");
    }
    with_pre_csrf(&req, StatusCode::OK, |csrf| signin_markup(csrf, None))
}

pub async fn signin(state: web::Data<AppState>, req: HttpRequest, body: web::Bytes) -> PageResult {
    let form = Form::parse(&body)?;
    session::check_pre_csrf(&req, form.get("csrf"))?;
    let token = form.text("token");
    let Some(operator) = Operator::by_token(&state, token.trim()) else {
        tracing::warn!(peer = ?req.peer_addr(), "operator console sign-in refused");
        let message = if state.config.billing.operator_tokens.is_empty() {
            "No operator is configured on this server ([billing.operator_tokens])."
        } else {
            "That is not an operator token."
        };
        return Ok(with_pre_csrf(&req, StatusCode::UNAUTHORIZED, |csrf| {
            signin_markup(csrf, Some(message))
        }));
    };
    let expires = now_ms() / 1000 + OPERATOR_SESSION_SECS as i64;
    let value = signed(&state, &operator, expires)
        .ok_or_else(|| ApiError::Internal("operator vanished while signing in".into()))?;
    tracing::info!(operator = %operator.name, "operator signed in to the console");
    let mut res = see_other("/operator/deployments");
    set_cookie(
        &mut res,
        &cookie(&req, OPERATOR_COOKIE, &value, OPERATOR_SESSION_SECS),
    );
    Ok(res)
}

pub async fn signout(state: web::Data<AppState>, req: HttpRequest, body: web::Bytes) -> PageResult {
    let form = Form::parse(&body)?;
    OperatorCtx::for_post(&state, &req, &form)?;
    let mut res = see_other("/operator/signin");
    set_cookie(&mut res, &cookie(&req, OPERATOR_COOKIE, "", 0));
    Ok(res)
}

fn deployments_markup(ctx: &OperatorCtx, wanted: State, listed: &OperatorDeploymentList) -> Markup {
    let decide = wanted == State::Requested;
    bare(
        "Deployments",
        html! {
            div.who {
                span { "Operator " strong #operator { (ctx.operator.name) } }
                form #signout.inline method="post" action="/operator/signout" {
                    (csrf_field(&ctx.csrf))
                    button.secondary type="submit" { "Sign out" }
                }
            }
            nav aria-label="States" {
                ul {
                    @for s in State::ALL.iter().filter(|s| **s != State::Deleted) {
                        li { a href=(format!("/operator/deployments?state={}", s.as_str())) aria-current=[(*s == wanted).then_some("page")] { (s.as_str()) } }
                    }
                }
            }
            @if listed.data.is_empty() {
                p.muted #no-deployments { "No deployment is " (wanted.as_str()) "." }
            } @else {
                table #deployments {
                    thead { tr {
                        th { "Organization" } th { "Name" } th { "Model" } th { "Replicas" }
                        th { "KV cache (MiB)" } th { "Requested" } th { "State" }
                        @if decide { th { "Decision" } }
                    } }
                    tbody {
                        @for row in &listed.data {
                            @let d = &row.deployment;
                            tr data-deployment=(d.id) {
                                td { code { (row.organization_id) } }
                                td { code { (d.name) } }
                                td { (d.model) }
                                td.n { (d.replicas.min) "–" (d.replicas.max) }
                                td.n { (d.kv_cache_memory / (1 << 20)) }
                                td { (time(d.created_at)) }
                                td.state {
                                    (d.state)
                                    @if let Some(message) = &d.status_message { br; small.muted { (message) } }
                                }
                                @if decide {
                                    td {
                                        form.inline method="post" action=(format!("/operator/deployments/{}/approve", d.id)) {
                                            (csrf_field(&ctx.csrf))
                                            button type="submit" { "Approve" }
                                        }
                                        form.inline method="post" action=(format!("/operator/deployments/{}/reject", d.id)) {
                                            (csrf_field(&ctx.csrf))
                                            label { "Reason " input name="reason" required maxlength="500"; }
                                            button.secondary type="submit" { "Reject" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        },
    )
}

pub async fn deployments(state: web::Data<AppState>, req: HttpRequest) -> PageResult {
    let Some(ctx) = OperatorCtx::load(&state, &req) else {
        return Ok(see_other("/operator/signin"));
    };
    let wanted = query_param(&req, "state");
    let listed = api::operator_list(&state, wanted.as_deref()).await?;
    let wanted = wanted
        .as_deref()
        .and_then(State::parse)
        .unwrap_or(State::Requested);
    Ok(page(
        StatusCode::OK,
        deployments_markup(&ctx, wanted, &listed),
    ))
}

pub async fn decide(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> PageResult {
    let form = Form::parse(&body)?;
    let ctx = OperatorCtx::for_post(&state, &req, &form)?;
    let (id, decision) = path.into_inner();
    match decision.as_str() {
        "approve" => api::approve(&state, &ctx.operator, &req, &id).await?,
        "reject" => api::reject(&state, &ctx.operator, &req, &id, &form.text("reason")).await?,
        _ => {
            return Err(PageError(ApiError::NotFound(format!(
                "No decision '{decision}'."
            ))))
        }
    };
    Ok(see_other("/operator/deployments"))
}
