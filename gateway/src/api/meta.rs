//! Routes about the server itself.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;
use subtle::ConstantTimeEq;
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::server::AppState;

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok` when the database answers.
    #[schema(example = "ok")]
    pub status: &'static str,
}

/// Liveness and database reachability (no credential needed).
#[utoipa::path(get, path = "/healthz", tag = "Meta",
    responses((status = 200, body = Health), (status = 500, body = crate::error::ErrorBody)))]
pub async fn health(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    sqlx::query("SELECT 1")
        .execute(state.store.pool())
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(HttpResponse::Ok().json(Health { status: "ok" }))
}

/// Prometheus metrics in the text exposition format: the gateway's (`starfire_http_*`,
/// `starfire_usage_*`, `starfire_budget_refusals_total`, `starfire_rate_limit_*`, ...) and the scheduler's
/// (`starfire:*`, vLLM's names). Open unless `metrics_token` is configured; then it wants
/// `Authorization: Bearer <metrics_token>`.
#[utoipa::path(get, path = "/metrics", tag = "Meta",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain", body = String),
        (status = 401, body = crate::error::ErrorBody)))]
pub async fn metrics(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    if let Some(token) = &state.config.metrics_token {
        let given = req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default();
        if !bool::from(given.as_bytes().ct_eq(token.as_bytes())) {
            return Err(ApiError::Unauthenticated(
                "/metrics wants 'Authorization: Bearer <metrics_token>'.".to_owned(),
            ));
        }
    }
    let mut body = state.metrics.render();
    body.push_str(&state.limits.counters().snapshot().prometheus());
    body.push_str(&state.inference.prometheus());
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(body))
}
