//! The console's cookie session and CSRF protection.
//!
//! Signing in starts an ordinary session family (the same table the JSON API's sessions use) and
//! puts an access token for it in an HttpOnly, SameSite=Strict cookie (`Secure` when the request
//! came over TLS). Every page resolves the cookie with [`Principal::from_access_token`], so a
//! signed-out session or a removed member is refused at once, exactly as for the API.
//!
//! CSRF: every form carries a token. Signed in, it is an HMAC of the session id under the server's
//! session secret (a synchronizer token bound to the session, nothing to store); before sign-in
//! (sign-in and sign-up forms) it is a random value also set in an HttpOnly cookie
//! (double submit). POSTs whose `Origin` names another site are refused too.

use actix_web::HttpRequest;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use gateway::auth::secret::{constant_time_eq, random_base62};
use gateway::auth::session::SessionTokens;
use gateway::auth::{Credential, Principal, RequestContext};
use gateway::error::ApiError;
use gateway::server::AppState;
use store::now_ms;
use store::tenants::Tenant;
use store::users::User;

pub const SESSION_COOKIE: &str = "sf_console";
pub const PRE_CSRF_COOKIE: &str = "sf_csrf";
/// How long a console sign-in lasts (the cookie's Max-Age and the token's expiry).
pub const CONSOLE_SESSION_SECS: u64 = 12 * 3600;

/// Whether the request reached us over TLS (directly or per `X-Forwarded-Proto`/`Forwarded`).
pub fn is_https(req: &HttpRequest) -> bool {
    req.connection_info().scheme() == "https"
}

/// A `Set-Cookie` value with the console's attributes.
pub fn cookie(req: &HttpRequest, name: &str, value: &str, max_age: u64) -> String {
    let secure = if is_https(req) { "; Secure" } else { "" };
    format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}")
}

/// The value of cookie `name`, if sent.
pub fn read_cookie(req: &HttpRequest, name: &str) -> Option<String> {
    for header in req.headers().get_all("cookie") {
        let Ok(header) = header.to_str() else {
            continue;
        };
        for pair in header.split(';') {
            if let Some((key, value)) = pair.trim().split_once('=') {
                if key == name {
                    return Some(value.to_owned());
                }
            }
        }
    }
    None
}

/// The signed-in caller, when the cookie holds a live console session.
pub async fn principal(state: &AppState, req: &HttpRequest) -> Option<Principal> {
    let token = read_cookie(req, SESSION_COOKIE)?;
    let principal = Principal::from_access_token(state, &token, RequestContext::of(req))
        .await
        .ok()?;
    (principal.credential == Credential::Session).then_some(principal)
}

/// Starts a session family for `user` in `tenant`; returns the cookie's token.
pub async fn start(state: &AppState, user: &User, tenant: &Tenant) -> Result<String, ApiError> {
    // The family needs a refresh token; the console never hands it out (its cookie is
    // re-issued by signing in again), so only the hash is kept.
    let refresh = SessionTokens::new_refresh();
    let expires = now_ms() + CONSOLE_SESSION_SECS as i64 * 1000;
    let family = state
        .store
        .create_session(&user.id, &tenant.id, &refresh.hash, expires)
        .await?;
    state
        .tokens
        .issue_access_for(
            &user.id,
            &tenant.id,
            &family,
            now_secs(),
            CONSOLE_SESSION_SECS,
        )
        .map_err(|e| ApiError::Internal(e.to_string()))
}

/// A short-lived (the API's access-token lifetime) bearer token for the same session, handed to
/// the playground's script so it can call `/v1/chat/completions`. Signing out revokes it too.
pub fn playground_token(state: &AppState, principal: &Principal) -> Result<String, ApiError> {
    let (Some(user), Some(session)) = (&principal.user_id, &principal.session_id) else {
        return Err(ApiError::Forbidden(
            "The playground needs a console session.".to_owned(),
        ));
    };
    state
        .tokens
        .issue_access(user, &principal.tenant_id, session, now_secs())
        .map_err(|e| ApiError::Internal(e.to_string()))
}

fn now_secs() -> u64 {
    (now_ms() / 1000).max(0) as u64
}

/// The CSRF token of a signed-in session: HMAC-SHA256(session secret, session id), hex.
pub fn session_csrf(state: &AppState, principal: &Principal) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(state.config.session_secret.as_bytes())
        .expect("HMAC takes keys of any length");
    mac.update(b"console-csrf:");
    mac.update(
        principal
            .session_id
            .as_deref()
            .unwrap_or_default()
            .as_bytes(),
    );
    gateway::auth::secret::hex(&mac.finalize().into_bytes())
}

/// The pre-sign-in CSRF value: the one already in the cookie, or a new one (which the caller
/// must set with [`cookie`]).
pub fn pre_csrf(req: &HttpRequest) -> (String, bool) {
    match read_cookie(req, PRE_CSRF_COOKIE) {
        Some(v) if v.len() == 32 && v.bytes().all(|b| b.is_ascii_alphanumeric()) => (v, false),
        _ => (random_base62(32), true),
    }
}

fn forbidden_csrf() -> ApiError {
    ApiError::Forbidden(
        "The form's security token is missing or stale; reload the page and try again.".to_owned(),
    )
}

/// Refuses a POST whose `Origin` is another site.
pub fn check_origin(req: &HttpRequest) -> Result<(), ApiError> {
    let Some(origin) = req.headers().get("origin") else {
        return Ok(());
    };
    let origin = origin.to_str().unwrap_or_default();
    let info = req.connection_info();
    let expected = format!("{}://{}", info.scheme(), info.host());
    if origin == expected {
        Ok(())
    } else {
        Err(ApiError::Forbidden(
            "Cross-site form submissions are refused.".to_owned(),
        ))
    }
}

/// Checks a signed-in form's token.
pub fn check_session_csrf(
    state: &AppState,
    req: &HttpRequest,
    principal: &Principal,
    sent: Option<&str>,
) -> Result<(), ApiError> {
    check_csrf(req, &session_csrf(state, principal), sent)
}

/// Checks a form's origin and that its token is `expected` (in constant time).
pub fn check_csrf(req: &HttpRequest, expected: &str, sent: Option<&str>) -> Result<(), ApiError> {
    check_origin(req)?;
    match sent {
        Some(sent) if constant_time_eq(sent, expected) => Ok(()),
        _ => Err(forbidden_csrf()),
    }
}

/// Adds a `Set-Cookie` made by [`cookie`] to `res`.
pub fn set_cookie(res: &mut actix_web::HttpResponse, value: &str) {
    if let Ok(value) = actix_web::http::header::HeaderValue::from_str(value) {
        res.headers_mut()
            .append(actix_web::http::header::SET_COOKIE, value);
    }
}

/// Checks a pre-sign-in form's token against its cookie.
pub fn check_pre_csrf(req: &HttpRequest, sent: Option<&str>) -> Result<(), ApiError> {
    check_origin(req)?;
    match (read_cookie(req, PRE_CSRF_COOKIE), sent) {
        (Some(cookie), Some(sent)) if !cookie.is_empty() && constant_time_eq(&cookie, sent) => {
            Ok(())
        }
        _ => Err(forbidden_csrf()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    #[test]
    fn cookies_are_read_by_exact_name_and_secure_only_over_tls() {
        let req = TestRequest::default()
            .insert_header(("cookie", "a=1; sf_console=tok; sf_console_x=2"))
            .to_http_request();
        assert_eq!(read_cookie(&req, SESSION_COOKIE).as_deref(), Some("tok"));
        assert_eq!(read_cookie(&req, "missing"), None);
        assert!(!cookie(&req, "n", "v", 1).contains("Secure"));
        let tls = TestRequest::default()
            .insert_header(("x-forwarded-proto", "https"))
            .to_http_request();
        let set = cookie(&tls, "n", "v", 1);
        assert!(
            set.contains("; Secure") && set.contains("HttpOnly") && set.contains("SameSite=Strict")
        );
    }

    #[test]
    fn foreign_origins_are_refused() {
        let req = TestRequest::default()
            .insert_header(("host", "console.test"))
            .insert_header(("origin", "https://evil.test"))
            .to_http_request();
        assert!(check_origin(&req).is_err());
        let same = TestRequest::default()
            .insert_header(("host", "console.test"))
            .insert_header(("origin", "http://console.test"))
            .to_http_request();
        assert!(check_origin(&same).is_ok());
    }
}
