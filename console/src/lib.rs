//! The web console, served at `/` by `starfire serve`: server-rendered HTML (maud) with a small
//! hand-written script (`console/static/console.js`) for copy buttons and the playground's
//! streamed answer. Everything is embedded in the binary.
//!
//! `pages` (sign-in, projects, keys, playground, and the shared layout and form helpers) ▸
//! `members` (roles, invites, removal) ▸ `usage` (SVG charts, CSV) ▸ `billing` (balance,
//! invoices, ledger) ▸ `audit_log` ▸ `limits` (per project and key) ▸ `organizations` (the
//! switcher) ▸ `deployments` ▸ `operator` (the platform operator's own sign-in and deployment
//! approvals) ▸ `session` (cookie and CSRF).
//!
//! Every action calls the same functions as the JSON API (`api::projects::create`,
//! `api::api_keys::{create, revoke}`, ...), which do the permission checks, validation and audit
//! entries; the console only adds its cookie session, CSRF checks and HTML.

mod audit_log;
mod billing;
mod deployments;
mod layout;
mod limits;
mod members;
mod operator;
mod organizations;
mod pages;
mod payments;
pub mod session;
mod signin;
mod usage;

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::{web, FromRequest, Handler, HttpResponse, Responder, ResponseError};
use maud::Markup;

use gateway::error::ApiError;

const CSS: &str = include_str!("../static/console.css");
const JS: &str = include_str!("../static/console.js");

/// No inline script or style, nothing from other origins, no framing.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; \
     frame-ancestors 'none'; base-uri 'none'";

/// Registers the console's routes (before the API's catch-all), grouped by path so that a
/// method a page does not take is answered 405 with `Allow`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    let routes = vec![
        get("/", signin::home),
        get("/assets/console.css", css),
        get("/assets/console.js", js),
        get("/signin", signin::signin_form),
        post("/signin", signin::signin),
        get("/signup", signin::signup_form),
        post("/signup", signin::signup),
        post("/signout", signin::signout),
        get("/invite", signin::invite_landing),
        get("/projects", pages::projects),
        post("/projects", pages::create_project),
        get("/projects/{project}/keys", pages::keys),
        post("/projects/{project}/keys", pages::create_key),
        get(
            "/projects/{project}/keys/{key}/revoke",
            pages::confirm_revoke,
        ),
        post("/projects/{project}/keys/{key}/revoke", pages::revoke_key),
        get("/members", members::members),
        post("/members/invites", members::invite),
        post(
            "/members/invites/{invite}/withdraw",
            members::withdraw_invite,
        ),
        post("/members/{user}/role", members::change_role),
        get("/members/{user}/remove", members::confirm_remove),
        post("/members/{user}/remove", members::remove_member),
        get("/playground", pages::playground),
        get("/deployments", deployments::deployments),
        post("/deployments", deployments::create),
        post("/deployments/{id}/replicas", deployments::scale),
        post("/deployments/{id}/{action}", deployments::act),
        get("/operator/signin", operator::signin_form),
        post("/operator/signin", operator::signin),
        post("/operator/signout", operator::signout),
        get("/operator/deployments", operator::deployments),
        post("/operator/deployments/{id}/{decision}", operator::decide),
        get("/projects/{project}/limits", limits::limits),
        post("/projects/{project}/limits", limits::set_project_limits),
        post("/projects/{project}/origins", limits::set_project_origins),
        post(
            "/projects/{project}/keys/{key}/limits",
            limits::set_key_limits,
        ),
        get("/usage", usage::usage),
        get("/usage.csv", usage::usage_csv),
        get("/billing", billing::billing),
        post("/billing/top_ups", payments::top_up),
        get("/billing/invoices/upcoming", billing::upcoming_invoice),
        get("/billing/invoices/{invoice}", billing::invoice),
        get("/audit", audit_log::audit_log),
        post("/organizations/switch", organizations::switch),
    ];
    gateway::api::resources(cfg, routes);
}

type Registered = (String, Method, actix_web::Route);

fn get<F, Args>(path: &str, handler: F) -> Registered
where
    F: Handler<Args>,
    Args: FromRequest + 'static,
    F::Output: Responder + 'static,
{
    (path.to_owned(), Method::GET, web::get().to(handler))
}

fn post<F, Args>(path: &str, handler: F) -> Registered
where
    F: Handler<Args>,
    Args: FromRequest + 'static,
    F::Output: Responder + 'static,
{
    (path.to_owned(), Method::POST, web::post().to(handler))
}

/// Headers every console answer carries.
fn secure_headers(res: &mut HttpResponse) {
    let headers = res.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    // Invite links carry their token in the URL: never send it to another site. (Not
    // `no-referrer`: with it, browsers send `Origin: null` on form posts.)
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
}

/// An HTML page.
pub(crate) fn html(status: StatusCode, markup: Markup) -> HttpResponse {
    let mut res = HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(markup.into_string());
    secure_headers(&mut res);
    res
}

/// A 303 to `location`.
pub(crate) fn see_other(location: &str) -> HttpResponse {
    let mut res = HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish();
    secure_headers(&mut res);
    res
}

async fn css() -> HttpResponse {
    let mut res = HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "public, max-age=300"))
        .body(CSS);
    secure_headers(&mut res);
    res
}

async fn js() -> HttpResponse {
    let mut res = HttpResponse::Ok()
        .content_type("text/javascript; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "public, max-age=300"))
        .body(JS);
    secure_headers(&mut res);
    res
}

/// An error shown as an HTML page with the API's status and message.
#[derive(Debug)]
pub struct PageError(pub ApiError);

impl From<ApiError> for PageError {
    fn from(err: ApiError) -> Self {
        PageError(err)
    }
}

impl From<store::StoreError> for PageError {
    fn from(err: store::StoreError) -> Self {
        PageError(err.into())
    }
}

impl std::fmt::Display for PageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0.body().error.message)
    }
}

impl ResponseError for PageError {
    fn status_code(&self) -> StatusCode {
        self.0.status_code()
    }

    fn error_response(&self) -> HttpResponse {
        if let ApiError::Internal(cause) = &self.0 {
            tracing::error!(%cause, "internal error");
        }
        let message = self.0.body().error.message;
        html(
            self.status_code(),
            layout::error_page(self.status_code(), &message),
        )
    }
}
