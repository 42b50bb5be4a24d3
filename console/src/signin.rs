//! The signed-out pages: home, sign-in, sign-up, sign-out and the invite landing page.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use maud::{html, Markup};

use super::session::{self, CONSOLE_SESSION_SECS, PRE_CSRF_COOKIE, SESSION_COOKIE};
use super::{html as page, see_other};
use gateway::api::auth::{LoginRequest, SignupRequest};
use gateway::api::invites::INVITE_TOKEN_PREFIX;
use gateway::api::{audit, auth};
use gateway::auth::secret::sha256_hex;
use gateway::auth::RequestContext;
use gateway::error::ApiError;
use gateway::server::AppState;

use super::layout::*;

pub async fn home(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    if session::principal(&state, &req).await.is_some() {
        see_other("/projects")
    } else {
        see_other("/signin")
    }
}

/// A pre-sign-in form page, setting its CSRF cookie when new.
pub(super) fn with_pre_csrf(
    req: &HttpRequest,
    status: StatusCode,
    render: impl FnOnce(&str) -> Markup,
) -> HttpResponse {
    let (token, fresh) = session::pre_csrf(req);
    let mut res = page(status, render(&token));
    if fresh {
        session::set_cookie(
            &mut res,
            &session::cookie(req, PRE_CSRF_COOKIE, &token, 3600),
        );
    }
    res
}

pub(super) fn signed_in_response(req: &HttpRequest, token: &str) -> HttpResponse {
    let mut res = see_other("/projects");
    session::set_cookie(
        &mut res,
        &session::cookie(req, SESSION_COOKIE, token, CONSOLE_SESSION_SECS),
    );
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
    session::set_cookie(&mut res, &session::cookie(&req, SESSION_COOKIE, "", 0));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invite_params_must_look_like_tokens() {
        assert!(invite_param(Some("sfi-abc123".into())).is_some());
        assert!(invite_param(Some("sfi-abc\"><script>".into())).is_none());
        assert!(invite_param(Some("nope".into())).is_none());
    }
}
