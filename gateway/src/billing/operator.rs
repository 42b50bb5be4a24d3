//! The `Operator` extractor: the platform operator's credential for the `/v1/billing/admin/*`
//! routes (prices, adjustments, refunds), configured as `[billing.operator_tokens]`.
//!
//! It is not an organization credential: no API key, admin key or console session of any
//! organization passes it, so no organization can credit itself or change prices.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::{web, FromRequest, HttpRequest};

use crate::auth::secret::{constant_time_eq, sha256_hex};
use crate::auth::Principal;
use crate::error::ApiError;
use crate::server::AppState;

/// An authenticated billing operator.
#[derive(Debug, Clone)]
pub struct Operator {
    /// The operator's configured name.
    pub name: String,
}

impl Operator {
    /// What the ledger and the catalog record as the actor: `operator:<name>`.
    pub fn actor(&self) -> String {
        format!("operator:{}", self.name)
    }

    /// The configured operator whose token `given` is. Hashes have one length, so the
    /// comparison's time says nothing about the token; every configured token is compared (no
    /// early exit).
    pub fn by_token(state: &AppState, given: &str) -> Option<Operator> {
        let hashed = sha256_hex(given);
        let mut found = None;
        for (name, token) in &state.config.billing.operator_tokens {
            if constant_time_eq(&hashed, &sha256_hex(token)) {
                found = Some(name.clone());
            }
        }
        found.map(|name| Operator { name })
    }

    /// A digest of the operator's current token, for binding a console sign-in to it (a new
    /// token, or the operator's removal, ends the sign-in); `None` for an unknown name.
    pub fn token_digest(state: &AppState, name: &str) -> Option<String> {
        state
            .config
            .billing
            .operator_tokens
            .get(name)
            .map(|token| sha256_hex(token))
    }

    /// The operator whose token the request bears. Anything else is refused: no credential or
    /// an unknown one with 401, an organization's own credential with 403 (it is valid, but
    /// not for these routes).
    async fn authenticate(state: &AppState, req: &HttpRequest) -> Result<Operator, ApiError> {
        let given = req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| {
                ApiError::Unauthenticated(
                    "This route wants 'Authorization: Bearer <operator token>'.".to_owned(),
                )
            })?;
        if let Some(operator) = Operator::by_token(state, given) {
            return Ok(operator);
        }
        // Not an operator: an organization's credential (403) or nothing known (401).
        Principal::authenticate(state, req).await?;
        Err(ApiError::Forbidden(
            if state.config.billing.operator_tokens.is_empty() {
                "Billing administration is not enabled on this server: configure \
                 [billing.operator_tokens] (or STARFIRE_BILLING_OPERATOR_TOKEN)."
            } else {
                "Only a billing operator of the platform can do this; organization credentials \
                 cannot."
            }
            .to_owned(),
        ))
    }
}

impl FromRequest for Operator {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Operator, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let state = req
                .app_data::<web::Data<AppState>>()
                .ok_or_else(|| ApiError::Internal("application state missing".into()))?
                .clone();
            Operator::authenticate(&state, &req).await
        })
    }
}
