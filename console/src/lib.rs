//! The web console, served at `/` by `starfire serve`: server-rendered HTML (maud) with a small
//! hand-written script (`console/static/console.js`) for copy buttons and the playground's
//! streamed answer. Everything is embedded in the binary.
//!
//! `pages` (sign-in, projects, keys, playground, and the shared layout and form helpers) ▸
//! `members` (roles, invites, removal) ▸ `usage` (SVG charts, CSV) ▸ `billing` (balance,
//! invoices, ledger) ▸ `audit_log` ▸ `limits` (per project and key) ▸ `organizations` (the
//! switcher) ▸ `session` (cookie and CSRF).
//!
//! Every action calls the same functions as the JSON API (`api::projects::create`,
//! `api::api_keys::{create, revoke}`, ...), which do the permission checks, validation and audit
//! entries; the console only adds its cookie session, CSRF checks and HTML.

mod audit_log;
mod billing;
mod layout;
mod limits;
mod members;
mod organizations;
mod pages;
mod payments;
pub mod session;
mod signin;
mod usage;

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse, ResponseError};
use maud::Markup;

use gateway::error::ApiError;

const CSS: &str = include_str!("../static/console.css");
const JS: &str = include_str!("../static/console.js");

/// No inline script or style, nothing from other origins, no framing.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; \
     frame-ancestors 'none'; base-uri 'none'";

/// Registers the console's routes (before the API's catch-all).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(signin::home))
        .route("/assets/console.css", web::get().to(css))
        .route("/assets/console.js", web::get().to(js))
        .route("/signin", web::get().to(signin::signin_form))
        .route("/signin", web::post().to(signin::signin))
        .route("/signup", web::get().to(signin::signup_form))
        .route("/signup", web::post().to(signin::signup))
        .route("/signout", web::post().to(signin::signout))
        .route("/invite", web::get().to(signin::invite_landing))
        .route("/projects", web::get().to(pages::projects))
        .route("/projects", web::post().to(pages::create_project))
        .route("/projects/{project}/keys", web::get().to(pages::keys))
        .route(
            "/projects/{project}/keys",
            web::post().to(pages::create_key),
        )
        .route(
            "/projects/{project}/keys/{key}/revoke",
            web::get().to(pages::confirm_revoke),
        )
        .route(
            "/projects/{project}/keys/{key}/revoke",
            web::post().to(pages::revoke_key),
        )
        .route("/members", web::get().to(members::members))
        .route("/members/invites", web::post().to(members::invite))
        .route(
            "/members/invites/{invite}/withdraw",
            web::post().to(members::withdraw_invite),
        )
        .route("/members/{user}/role", web::post().to(members::change_role))
        .route(
            "/members/{user}/remove",
            web::get().to(members::confirm_remove),
        )
        .route(
            "/members/{user}/remove",
            web::post().to(members::remove_member),
        )
        .route("/playground", web::get().to(pages::playground))
        .route("/projects/{project}/limits", web::get().to(limits::limits))
        .route(
            "/projects/{project}/limits",
            web::post().to(limits::set_project_limits),
        )
        .route(
            "/projects/{project}/keys/{key}/limits",
            web::post().to(limits::set_key_limits),
        )
        .route("/usage", web::get().to(usage::usage))
        .route("/usage.csv", web::get().to(usage::usage_csv))
        .route("/billing", web::get().to(billing::billing))
        .route("/billing/top_ups", web::post().to(payments::top_up))
        .route(
            "/billing/invoices/upcoming",
            web::get().to(billing::upcoming_invoice),
        )
        .route(
            "/billing/invoices/{invoice}",
            web::get().to(billing::invoice),
        )
        .route("/audit", web::get().to(audit_log::audit_log))
        .route(
            "/organizations/switch",
            web::post().to(organizations::switch),
        );
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
