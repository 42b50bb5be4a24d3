//! The HTTP API: one file per resource, each handler documented with `#[utoipa::path]`.
//!
//! Routes are registered from their OpenAPI description (the `routes!` list below), so a route
//! cannot exist without being in `/openapi.json`. To add a route: write the handler with
//! `#[utoipa::path(method, path = "...")]`, add `module::handler` to the list, put new schemas
//! in `components(schemas(...))` only if utoipa does not find them through the handler, then
//! run `starfire openapi > openapi/openapi.json`.

pub mod admin_keys;
pub mod api_keys;
pub mod audit_logs;
pub mod auth;
pub mod billing;
pub mod body;
pub mod budgets;
pub mod chat_ws;
mod constraints;
pub mod cors;
pub mod credits;
pub mod deployments;
pub mod embeddings;
pub mod idempotency;
pub mod inference;
pub mod invites;
pub mod list;
pub mod meta;
pub mod payments;
pub mod projects;
pub mod usage;
pub mod users;
pub mod validate;

use actix_web::web;
use constraints::Constraints;
use serde::Serialize;
use utoipa::openapi::path::HttpMethod;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

use crate::auth::Principal;
use crate::error::ApiError;
use crate::server::AppState;
use crate::store::audit::AuditEvent;

/// The answer to a DELETE, as OpenAI shapes it.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeletedObject {
    /// e.g. `organization.project.api_key.deleted`.
    pub object: &'static str,
    pub id: String,
    pub deleted: bool,
}

impl DeletedObject {
    pub fn new(object: &'static str, id: String) -> Self {
        DeletedObject {
            object,
            id,
            deleted: true,
        }
    }
}

/// Records an audit entry for an action by `principal`.
pub async fn audit(
    state: &AppState,
    principal: &Principal,
    action: &str,
    target_type: &str,
    target_id: &str,
) -> Result<(), ApiError> {
    let (actor_type, actor_id) = principal.actor();
    state
        .store
        .record_audit(AuditEvent {
            tenant_id: &principal.tenant_id,
            action,
            actor_type,
            actor_id,
            target_type,
            target_id,
            ip: principal.request.ip.as_deref(),
            request_id: Some(&principal.request.request_id),
        })
        .await?;
    Ok(())
}

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An API key (`sf-...`), an admin key (`sf-admin-...`) or a console access \
                         token. Keys are also accepted in the `api-key` or `x-api-key` header.",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "operator",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A billing operator token of the platform (`[billing.operator_tokens]`), \
                         for `/v1/billing/admin/*`; no organization credential is accepted there.",
                    ))
                    .build(),
            ),
        );
    }
}

/// Documents the errors a query string can earn on every route that reads one: 400 when it
/// cannot be read as the route's parameters (a wrong type, an unknown parameter), and, on the
/// paged lists (`limit`, `after`), 422 for a value out of range or a cursor that is not one of
/// the list's ids.
struct QueryErrors;

impl Modify for QueryErrors {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::path::ParameterIn;
        use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
        let error = |description: &str| {
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("ErrorBody")))
                        .build(),
                )
                .build()
        };
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.delete,
                &mut item.patch,
            ];
            for operation in operations.into_iter().flatten() {
                let query: Vec<String> = operation
                    .parameters
                    .iter()
                    .flatten()
                    .filter(|p| p.parameter_in == ParameterIn::Query)
                    .map(|p| p.name.clone())
                    .collect();
                if query.is_empty() {
                    continue;
                }
                let responses = &mut operation.responses.responses;
                responses.entry("400".to_owned()).or_insert_with(|| {
                    error("The query string cannot be read as this route's parameters.").into()
                });
                if query.iter().any(|name| name == "limit" || name == "after") {
                    responses.entry("422".to_owned()).or_insert_with(|| {
                        error("A parameter's value is refused (out of range, or not an id of this list).")
                            .into()
                    });
                }
            }
        }
    }
}

fn actix_method(method: &HttpMethod) -> actix_web::http::Method {
    use actix_web::http::Method;
    match method {
        HttpMethod::Get => Method::GET,
        HttpMethod::Post => Method::POST,
        HttpMethod::Put => Method::PUT,
        HttpMethod::Delete => Method::DELETE,
        HttpMethod::Patch => Method::PATCH,
        HttpMethod::Head => Method::HEAD,
        HttpMethod::Options => Method::OPTIONS,
        HttpMethod::Trace => Method::TRACE,
    }
}

/// One list of handlers feeds both the OpenAPI document and the router.
macro_rules! routes {
    ($($module:ident :: $handler:ident),* $(,)?) => {
        /// The OpenAPI 3.1 document of the gateway.
        #[derive(OpenApi)]
        #[openapi(
            info(title = "Starfire", description = "Starfire's OpenAI-compatible API: inference (models, chat and text completions with server-sent-event streaming, chat over a WebSocket, embeddings), control plane (organization, projects, keys, members, audit log), usage and billing (balance, ledger, invoices, prices, Stripe top-ups and webhooks), and console sessions."),
            paths($($module::$handler),*),
            components(schemas(crate::error::ErrorBody, crate::error::ErrorObject,
                crate::deployments::State,
                chat_ws::frames::ChatDeltaFrame, chat_ws::frames::ChatDoneFrame,
                chat_ws::frames::ChatErrorFrame)),
            modifiers(&BearerAuth, &QueryErrors, &Constraints),
        )]
        pub struct ApiDoc;

        /// Registers every documented route (see [`resources`]).
        pub fn configure(cfg: &mut web::ServiceConfig) {
            let mut routes: Vec<(String, actix_web::http::Method, actix_web::Route)> = Vec::new();
            $(
                paste::paste! {{
                    use utoipa::Path as _;
                    let path = $module::[<__path_ $handler>]::path();
                    for method in $module::[<__path_ $handler>]::methods() {
                        let method = actix_method(&method);
                        let route = web::method(method.clone()).to($module::$handler);
                        routes.push((path.clone(), method, route));
                    }
                }}
            )*
            resources(cfg, routes);
        }
    };
}

/// Registers `routes` (path, method, route) as one resource per path with a route per method,
/// so that a method the path does not declare is answered 405 with `Allow` (not 404). Paths
/// keep the order of their first route (actix matches resources in registration order).
pub fn resources(
    cfg: &mut web::ServiceConfig,
    routes: Vec<(String, actix_web::http::Method, actix_web::Route)>,
) {
    let mut paths: Vec<(String, Vec<(actix_web::http::Method, actix_web::Route)>)> = Vec::new();
    for (path, method, route) in routes {
        match paths.iter_mut().find(|(p, _)| *p == path) {
            Some((_, routes)) => routes.push((method, route)),
            None => paths.push((path, vec![(method, route)])),
        }
    }
    for (path, routes) in paths {
        let allowed: Vec<String> = routes.iter().map(|(m, _)| m.to_string()).collect();
        let mut resource = web::resource(path.as_str());
        for (_, route) in routes {
            resource = resource.route(route);
        }
        cfg.service(
            resource.default_service(web::to(move |req: actix_web::HttpRequest| {
                let allowed = allowed.clone();
                async move {
                    Err::<actix_web::HttpResponse, _>(ApiError::MethodNotAllowed {
                        method: req.method().to_string(),
                        path: req.path().to_owned(),
                        allowed,
                    })
                }
            })),
        );
    }
}

routes!(
    meta::health,
    meta::metrics,
    inference::list_models,
    inference::retrieve_model,
    inference::create_chat_completion,
    chat_ws::chat_websocket,
    chat_ws::create_ws_ticket,
    inference::create_completion,
    inference::tokenize,
    inference::detokenize,
    embeddings::create_embeddings,
    auth::signup,
    auth::login,
    auth::refresh,
    auth::logout,
    auth::me,
    projects::list_projects,
    projects::create_project,
    projects::get_project,
    projects::modify_project,
    projects::archive_project,
    api_keys::list_project_keys,
    api_keys::create_project_key,
    api_keys::get_project_key,
    api_keys::modify_project_key,
    api_keys::delete_project_key,
    admin_keys::list_admin_keys,
    admin_keys::create_admin_key,
    admin_keys::get_admin_key,
    admin_keys::delete_admin_key,
    users::list_users,
    users::get_user,
    users::modify_user,
    users::delete_user,
    invites::list_invites,
    invites::create_invite,
    invites::get_invite,
    invites::delete_invite,
    audit_logs::list_audit_logs,
    usage::usage_completions,
    usage::usage_embeddings,
    usage::costs,
    credits::get_credits,
    budgets::get_organization_budget,
    budgets::set_organization_budget,
    budgets::delete_organization_budget,
    deployments::list_deployments,
    deployments::create_deployment,
    deployments::get_deployment,
    deployments::update_deployment,
    deployments::delete_deployment,
    deployments::stop_deployment,
    deployments::start_deployment,
    deployments::list_deployment_events,
    deployments::operator_list_deployments,
    deployments::approve_deployment,
    deployments::reject_deployment,
    deployments::list_capacity_prices,
    deployments::create_capacity_price,
    budgets::get_project_budget,
    budgets::set_project_budget,
    budgets::delete_project_budget,
    budgets::get_key_budget,
    budgets::set_key_budget,
    budgets::delete_key_budget,
    billing::get_balance,
    billing::list_ledger,
    billing::list_invoices,
    billing::upcoming_invoice,
    billing::get_invoice,
    billing::get_invoice_html,
    billing::list_prices,
    billing::create_price,
    billing::create_adjustment,
    billing::create_refund,
    payments::create_top_up,
    payments::list_top_ups,
    payments::get_top_up,
    payments::stripe_webhook,
    payments::change_plan,
);

/// The document as pretty JSON with a trailing newline (the form committed in
/// `openapi/openapi.json`).
pub fn openapi_json() -> String {
    let mut json = ApiDoc::openapi()
        .to_pretty_json()
        .unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
    json.push('\n');
    json
}
