//! The one error table of the gateway. Every failure a client can see leaves the server as
//! OpenAI's body, `{"error":{"message","type","param","code"}}`, with the status from this table.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use utoipa::ToSchema;

use protocol::{BackendError, QueueScope};

use crate::store::StoreError;

/// Declares [`Code`] from its table: variant, code string, HTTP status, OpenAI `type`.
macro_rules! codes {
    ($($(#[doc = $doc:literal])* $variant:ident = ($code:literal, $status:ident, $kind:literal),)*) => {
        /// Every error code a client can see: one row each, with its HTTP status and its
        /// OpenAI `type`. A code means one thing; a new kind of failure gets a new row.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Code {
            $($(#[doc = $doc])* $variant,)*
        }

        impl Code {
            /// Every row, in the table's order.
            pub const ALL: &'static [Code] = &[$(Code::$variant,)*];

            /// The `code` of the error body.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Code::$variant => $code,)*
                }
            }

            pub fn status(self) -> StatusCode {
                match self {
                    $(Code::$variant => StatusCode::$status,)*
                }
            }

            /// The `type` of the error body.
            pub fn kind(self) -> &'static str {
                match self {
                    $(Code::$variant => $kind,)*
                }
            }
        }
    };
}

codes! {
    /// The body or query could not be read as the expected shape, or a field's value is refused.
    InvalidRequest = ("invalid_request", BAD_REQUEST, "invalid_request_error"),
    /// A well-formed value that is not acceptable (an email without '@', a past expiry).
    InvalidValue = ("invalid_value", UNPROCESSABLE_ENTITY, "invalid_request_error"),
    /// No credential, or one that is unknown, revoked or expired.
    InvalidApiKey = ("invalid_api_key", UNAUTHORIZED, "authentication_error"),
    /// A valid credential whose role or scope does not allow the action.
    InsufficientPermissions = ("insufficient_permissions", FORBIDDEN, "permission_error"),
    /// A browser request from an origin its credential does not allow (see a project's
    /// `allowed_origins`).
    OriginNotAllowed = ("origin_not_allowed", FORBIDDEN, "permission_error"),
    /// The resource does not exist for this organization.
    NotFound = ("not_found", NOT_FOUND, "not_found_error"),
    /// The requested model is not served (for this organization).
    ModelNotFound = ("model_not_found", NOT_FOUND, "invalid_request_error"),
    /// The request conflicts with the current state.
    Conflict = ("conflict", CONFLICT, "conflict_error"),
    /// The body is larger than the configured limit.
    PayloadTooLarge = ("payload_too_large", PAYLOAD_TOO_LARGE, "invalid_request_error"),
    /// The request body did not arrive in time (a client sending it too slowly).
    RequestTimeout = ("request_timeout", REQUEST_TIMEOUT, "invalid_request_error"),
    /// The path exists but not with this method; `Allow` lists the methods it has.
    MethodNotAllowed = ("method_not_allowed", METHOD_NOT_ALLOWED, "invalid_request_error"),
    /// The prompt plus the completion does not fit the model's context.
    ContextLengthExceeded = ("context_length_exceeded", BAD_REQUEST, "invalid_request_error"),
    /// The caller reached a limit on how much it may ask for at once or per minute (rate
    /// limits, its share of the queue, a socket's concurrent requests, login attempts): slow
    /// down and retry, after `Retry-After` when given.
    RateLimitExceeded = ("rate_limit_exceeded", TOO_MANY_REQUESTS, "rate_limit_error"),
    /// Credits or a spend cap do not cover the request; retrying does not help.
    InsufficientQuota = ("insufficient_quota", TOO_MANY_REQUESTS, "insufficient_quota"),
    /// No model is loaded.
    ModelNotLoaded = ("model_not_loaded", SERVICE_UNAVAILABLE, "server_error"),
    /// The server as a whole is over capacity.
    ServerOverloaded = ("server_overloaded", SERVICE_UNAVAILABLE, "server_error"),
    /// A private deployment exists but does not serve now (requested, provisioning, stopped,
    /// failed...); the message names its state.
    DeploymentNotReady = ("deployment_not_ready", SERVICE_UNAVAILABLE, "server_error"),
    /// The server (or its backend) is stopping.
    ShuttingDown = ("shutting_down", SERVICE_UNAVAILABLE, "server_error"),
    /// The shared rate limiter (Redis) cannot be reached and limits fail closed.
    RateLimiterUnavailable = ("rate_limiter_unavailable", SERVICE_UNAVAILABLE, "server_error"),
    /// The database cannot be reached (restarting, down, or every connection busy).
    DatabaseUnavailable = ("database_unavailable", SERVICE_UNAVAILABLE, "server_error"),
    /// The payment provider cannot be reached or is not configured.
    PaymentProviderUnavailable = ("payment_provider_unavailable", SERVICE_UNAVAILABLE, "server_error"),
    /// Stripe webhooks arrive but no signing secret is configured.
    WebhooksNotConfigured = ("webhooks_not_configured", SERVICE_UNAVAILABLE, "server_error"),
    /// Anything else; the cause is logged, never sent.
    InternalError = ("internal_error", INTERNAL_SERVER_ERROR, "server_error"),
}

/// Everything a request can fail with. `param` names the offending field where there is one.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The body or query could not be read as the expected shape (bad JSON, wrong type).
    #[error("{message}")]
    BadRequest {
        message: String,
        param: Option<String>,
    },
    /// Well-formed input whose value is not acceptable (an email without '@', a past expiry).
    #[error("{message}")]
    InvalidValue { message: String, param: String },
    /// No credential, or one that is unknown, revoked or expired.
    #[error("{0}")]
    Unauthenticated(String),
    /// A credential that is valid but whose role or scope does not allow the action.
    #[error("{0}")]
    Forbidden(String),
    /// A browser request from an origin the credential does not allow (CORS).
    #[error("{0}")]
    OriginNotAllowed(String),
    /// The resource does not exist for this tenant (another tenant's resource looks the same).
    #[error("{0}")]
    NotFound(String),
    /// The request conflicts with the current state (taken email, last owner, archived project).
    #[error("{0}")]
    Conflict(String),
    /// The body is larger than the configured limit.
    #[error("request body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    /// The body did not arrive within the server's body timeout.
    #[error("{0}")]
    RequestTimeout(String),
    /// The path exists, but not with this method; answered with `Allow`.
    #[error("{method} is not allowed on {path}; it takes {}.", .allowed.join(", "))]
    MethodNotAllowed {
        method: String,
        path: String,
        /// The path's methods, in the `Allow` header's order.
        allowed: Vec<String>,
    },
    /// A limit was reached; `retry_after` in seconds when known.
    #[error("{message}")]
    RateLimited {
        message: String,
        retry_after: Option<u64>,
    },
    /// The organization's credits (or a spend cap) do not cover the request (OpenAI's
    /// `insufficient_quota`: 429, but retrying does not help until credits are added).
    #[error("{0}")]
    InsufficientQuota(String),
    /// An inference rate limit (requests, tokens or concurrent requests per minute) was
    /// reached: OpenAI's 429 `rate_limit_exceeded`, `type` saying which, with `Retry-After` and
    /// the `x-ratelimit-*` headers.
    #[error("{}", .0.message)]
    RateLimitExceeded(Box<crate::limits::Refusal>),
    /// The requested model is not served (OpenAI's `model_not_found`).
    #[error("{0}")]
    ModelNotFound(String),
    /// The prompt (plus `max_tokens`) does not fit the model's context.
    #[error("{message}")]
    ContextLengthExceeded {
        message: String,
        /// `messages` or `prompt`.
        param: &'static str,
    },
    /// The server cannot take the request now (no model loaded, overloaded, shutting down);
    /// `code` says which (a 503 row of [`Code`]), `retry_after` in seconds when waiting helps.
    #[error("{message}")]
    Unavailable {
        message: String,
        code: Code,
        retry_after: Option<u64>,
    },
    /// Anything else. The message sent to the client never includes the cause.
    #[error("internal error: {0}")]
    Internal(String),
}

/// A backend's refusals as HTTP answers: a tenant over its queue share gets 429, a saturated
/// or stopping server 503 (both with `Retry-After`), a bad field 400 naming it.
impl From<BackendError> for ApiError {
    fn from(err: BackendError) -> Self {
        match err {
            BackendError::NotLoaded(message) => ApiError::Unavailable {
                message,
                code: Code::ModelNotLoaded,
                retry_after: None,
            },
            BackendError::ModelNotFound(_) => ApiError::ModelNotFound(err.to_string()),
            BackendError::InvalidParam(p) => ApiError::field(&p.field, p.message),
            BackendError::InvalidRequest(message) => ApiError::bad_request(message, None),
            BackendError::Unsupported { message, field } => {
                ApiError::bad_request(message, Some(&field))
            }
            BackendError::ContextLengthExceeded(message) => ApiError::ContextLengthExceeded {
                message,
                param: "messages",
            },
            BackendError::QueueFull {
                scope: QueueScope::Tenant,
                what,
            } => ApiError::RateLimited {
                message: format!(
                    "Too many queued requests for this organization ({what}); retry shortly."
                ),
                retry_after: Some(1),
            },
            BackendError::QueueFull {
                scope: QueueScope::Global,
                what,
            } => ApiError::Unavailable {
                message: format!("The server is overloaded ({what}); retry shortly."),
                code: Code::ServerOverloaded,
                retry_after: Some(1),
            },
            BackendError::ShuttingDown => ApiError::Unavailable {
                message: "The server is shutting down.".to_owned(),
                code: Code::ShuttingDown,
                retry_after: Some(1),
            },
            BackendError::Internal(message) => ApiError::Internal(message),
        }
    }
}

/// The JSON body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorObject,
}

/// OpenAI's error object.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorObject {
    /// Human-readable explanation; names the field when one is at fault.
    pub message: String,
    /// One of `invalid_request_error`, `authentication_error`, `permission_error`,
    /// `not_found_error`, `conflict_error`, `rate_limit_error`, `insufficient_quota`,
    /// `server_error`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The request field at fault, when there is one.
    pub param: Option<String>,
    /// A stable machine-readable code.
    pub code: &'static str,
}

impl ApiError {
    pub fn bad_request(message: impl Into<String>, param: Option<&str>) -> Self {
        ApiError::BadRequest {
            message: message.into(),
            param: param.map(str::to_owned),
        }
    }

    pub fn invalid(param: &str, message: impl Into<String>) -> Self {
        ApiError::InvalidValue {
            message: message.into(),
            param: param.to_owned(),
        }
    }

    /// A request field whose value is refused: "Invalid 'field': why." (400, `param` = field).
    pub fn field(field: &str, why: impl std::fmt::Display) -> Self {
        ApiError::bad_request(format!("Invalid '{field}': {why}."), Some(field))
    }

    pub fn not_found(what: &str, id: &str) -> Self {
        ApiError::NotFound(format!("No {what} found with id '{id}'."))
    }

    /// The code of the table this error answers with.
    pub fn code(&self) -> Code {
        match self {
            ApiError::BadRequest { .. } => Code::InvalidRequest,
            ApiError::InvalidValue { .. } => Code::InvalidValue,
            ApiError::Unauthenticated(_) => Code::InvalidApiKey,
            ApiError::Forbidden(_) => Code::InsufficientPermissions,
            ApiError::OriginNotAllowed(_) => Code::OriginNotAllowed,
            ApiError::NotFound(_) => Code::NotFound,
            ApiError::Conflict(_) => Code::Conflict,
            ApiError::PayloadTooLarge { .. } => Code::PayloadTooLarge,
            ApiError::RequestTimeout(_) => Code::RequestTimeout,
            ApiError::MethodNotAllowed { .. } => Code::MethodNotAllowed,
            ApiError::RateLimited { .. } | ApiError::RateLimitExceeded(_) => {
                Code::RateLimitExceeded
            }
            ApiError::InsufficientQuota(_) => Code::InsufficientQuota,
            ApiError::ModelNotFound(_) => Code::ModelNotFound,
            ApiError::ContextLengthExceeded { .. } => Code::ContextLengthExceeded,
            ApiError::Unavailable { code, .. } => *code,
            ApiError::Internal(_) => Code::InternalError,
        }
    }

    /// The row of the table: status, OpenAI type and code. A rate limiter's refusal names the
    /// limit it hit as its type (`requests`, `tokens`), as OpenAI does.
    fn row(&self) -> (StatusCode, &'static str, &'static str) {
        let code = self.code();
        let kind = match self {
            ApiError::RateLimitExceeded(refusal) => refusal.kind(),
            _ => code.kind(),
        };
        (code.status(), kind, code.as_str())
    }

    pub fn body(&self) -> ErrorBody {
        let (_, kind, code) = self.row();
        let (message, param) = match self {
            ApiError::BadRequest { message, param } => (message.clone(), param.clone()),
            ApiError::InvalidValue { message, param } => (message.clone(), Some(param.clone())),
            ApiError::Internal(_) => ("The server had an internal error.".to_owned(), None),
            ApiError::ModelNotFound(message) => (message.clone(), Some("model".to_owned())),
            ApiError::ContextLengthExceeded { message, param } => {
                (message.clone(), Some((*param).to_owned()))
            }
            other => (other.to_string(), None),
        };
        ErrorBody {
            error: ErrorObject {
                message,
                kind,
                param,
                code,
            },
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.row().0
    }

    fn error_response(&self) -> HttpResponse {
        if let ApiError::Internal(cause) = self {
            tracing::error!(%cause, "internal error");
        }
        let mut response = HttpResponse::build(self.status_code());
        if let ApiError::RateLimited {
            retry_after: Some(secs),
            ..
        }
        | ApiError::Unavailable {
            retry_after: Some(secs),
            ..
        } = self
        {
            response.insert_header(("retry-after", secs.to_string()));
        }
        if let ApiError::MethodNotAllowed { allowed, .. } = self {
            response.insert_header(("allow", allowed.join(", ")));
        }
        if let ApiError::RateLimitExceeded(refusal) = self {
            if let Some(secs) = refusal.retry_after_secs {
                response.insert_header(("retry-after", secs.to_string()));
            }
            let mut res = response.json(self.body());
            refusal.headers.apply(res.headers_mut());
            return res;
        }
        response.json(self.body())
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::NotFound(what) => ApiError::NotFound(what),
            StoreError::Conflict(what) => ApiError::Conflict(what),
            StoreError::InvalidUrl(e) => ApiError::Internal(e),
            StoreError::Database(e) if database_unreachable(&e) => {
                tracing::warn!(error = %e, "the database cannot be reached");
                ApiError::Unavailable {
                    message: "The database cannot be reached at the moment; retry shortly."
                        .to_owned(),
                    code: Code::DatabaseUnavailable,
                    retry_after: Some(1),
                }
            }
            StoreError::Database(e) => ApiError::Internal(e.to_string()),
            StoreError::Migrate(e) => ApiError::Internal(e.to_string()),
        }
    }
}

/// Whether a database error means the database is out of reach (a connection refused or
/// dropped, no free connection in time, the server shutting down or starting), not that the
/// request was wrong: those are 503s a retry can cure, not internal errors.
fn database_unreachable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        // SQLSTATE class 08 (connection exception), 57P01-57P03 (admin or crash shutdown,
        // cannot connect now).
        sqlx::Error::Database(db) => db
            .code()
            .is_some_and(|c| c.starts_with("08") || matches!(&*c, "57P01" | "57P02" | "57P03")),
        _ => false,
    }
}

/// Errors that actix produces before a handler runs (unknown route, oversized or malformed body,
/// bad query string) are turned into the same table.
pub fn from_payload_error(err: &actix_web::error::PayloadError, limit: usize) -> ApiError {
    match err {
        actix_web::error::PayloadError::Overflow => ApiError::PayloadTooLarge { limit },
        actix_web::error::PayloadError::Io(e) if e.kind() == std::io::ErrorKind::TimedOut => {
            ApiError::RequestTimeout(
                "The request body did not arrive in time; send it at once, not byte by byte."
                    .to_owned(),
            )
        }
        other => ApiError::bad_request(format!("could not read the request body: {other}"), None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_row_has_the_openai_shape() {
        let cases = [
            (ApiError::bad_request("bad", Some("name")), 400, "name"),
            (ApiError::invalid("email", "no @"), 422, "email"),
            (ApiError::Unauthenticated("no".into()), 401, ""),
            (ApiError::Forbidden("no".into()), 403, ""),
            (ApiError::OriginNotAllowed("no".into()), 403, ""),
            (ApiError::NotFound("no".into()), 404, ""),
            (ApiError::Conflict("no".into()), 409, ""),
            (ApiError::PayloadTooLarge { limit: 1 }, 413, ""),
            (ApiError::RequestTimeout("slow".into()), 408, ""),
            (
                ApiError::from(StoreError::Database(sqlx::Error::PoolTimedOut)),
                503,
                "",
            ),
            (
                ApiError::MethodNotAllowed {
                    method: "TRACE".into(),
                    path: "/v1/models".into(),
                    allowed: vec!["GET".into()],
                },
                405,
                "",
            ),
            (
                ApiError::RateLimited {
                    message: "slow".into(),
                    retry_after: Some(3),
                },
                429,
                "",
            ),
            (ApiError::InsufficientQuota("no credit".into()), 429, ""),
            (ApiError::Internal("secret cause".into()), 500, ""),
            (ApiError::ModelNotFound("no".into()), 404, "model"),
            (
                ApiError::ContextLengthExceeded {
                    message: "long".into(),
                    param: "messages",
                },
                400,
                "messages",
            ),
            (
                ApiError::Unavailable {
                    message: "later".into(),
                    code: Code::ModelNotLoaded,
                    retry_after: None,
                },
                503,
                "",
            ),
        ];
        for (err, status, param) in cases {
            assert_eq!(err.status_code().as_u16(), status);
            let body = serde_json::to_value(err.body()).unwrap();
            let object = body["error"].as_object().unwrap();
            assert_eq!(object.len(), 4, "{body}");
            assert!(object["message"].is_string());
            assert!(object["type"].is_string());
            assert!(object["code"].is_string());
            if param.is_empty() {
                assert!(object["param"].is_null());
            } else {
                assert_eq!(object["param"], param);
            }
        }
    }

    #[test]
    fn every_code_is_listed_once_and_means_one_thing() {
        let mut seen = std::collections::HashSet::new();
        for code in Code::ALL {
            assert!(seen.insert(code.as_str()), "{} twice", code.as_str());
            assert!(code.status().is_client_error() || code.status().is_server_error());
            assert_eq!(
                code.kind() == "server_error",
                code.status().is_server_error(),
                "{code:?}"
            );
        }
    }

    #[test]
    fn internal_errors_do_not_leak_their_cause() {
        let body =
            serde_json::to_string(&ApiError::Internal("password=hunter2".into()).body()).unwrap();
        assert!(!body.contains("hunter2"));
    }
}
