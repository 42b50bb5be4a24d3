//! Why a backend could not serve a request, as data: the gateway turns each variant into its
//! HTTP answer in one table, and no caller parses an error's text. They serialise as they are,
//! so a remote worker's refusal reaches the gateway as the same variant.

use serde::{Deserialize, Serialize};

/// A request field whose value a backend refuses, and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[error("{field}: {message}")]
pub struct InvalidParam {
    /// The request field, in the OpenAI/vLLM request's own naming (`top_p`, `logprobs`, `n`).
    pub field: String,
    /// What is wrong with it, without the field's name ("must be in (0, 1]").
    pub message: String,
}

impl InvalidParam {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Which admission cap refused a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QueueScope {
    /// The tenant's own cap: the tenant should slow down (HTTP 429).
    Tenant,
    /// The server-wide cap: the server is saturated (HTTP 503).
    Global,
}

/// Why a backend could not serve a request before its generation started.
#[derive(Clone, Debug, PartialEq, thiserror::Error, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackendError {
    /// No model is loaded at all; the message says how to get one.
    #[error("{0}")]
    NotLoaded(String),
    /// The requested model is not among the served ones (the name as asked for).
    #[error("The model '{0}' does not exist or you do not have access to it.")]
    ModelNotFound(String),
    /// A field's value is out of range or does not fit the model.
    #[error(transparent)]
    InvalidParam(#[from] InvalidParam),
    /// The request is malformed in a way no single field explains (an empty prompt).
    #[error("{0}")]
    InvalidRequest(String),
    /// The model cannot serve what the request asks for (no chat template for a chat).
    #[error("{message}")]
    Unsupported {
        message: String,
        /// The request field that asked for it.
        field: String,
    },
    /// The prompt plus the completion does not fit the model's context or KV cache.
    #[error("{0}")]
    ContextLengthExceeded(String),
    /// An admission cap is full; retrying shortly may succeed.
    #[error("queue full ({scope:?}): {what}")]
    QueueFull { scope: QueueScope, what: String },
    /// The backend is stopping and takes no new requests.
    #[error("the backend is shutting down")]
    ShuttingDown,
    /// Anything else; the text is for logs, never for the client.
    #[error("{0}")]
    Internal(String),
}
