//! The scheduler's errors. `QueueFull` is its own variant so the gateway can answer 429 (one
//! tenant over its share) or 503 (the whole server over capacity) instead of 400.

pub use protocol::QueueScope;
use protocol::{BackendError, InvalidParam};

#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum SchedulerError {
    #[error("queue full ({scope:?}): {what}")]
    QueueFull { scope: QueueScope, what: String },
    #[error(
        "prompt of {prompt_len} tokens leaves no room to generate (max_model_len {max_model_len})"
    )]
    PromptTooLong {
        prompt_len: usize,
        max_model_len: usize,
    },
    #[error("request needs {needed} KV blocks but the cache has {available}")]
    TooLargeForCache { needed: usize, available: usize },
    #[error("n = {n} exceeds max_num_seqs = {max_num_seqs}")]
    TooManyChoices { n: usize, max_num_seqs: usize },
    #[error("request id `{0}` is already in use")]
    DuplicateRequestId(String),
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    #[error("invalid sampling parameter {0}")]
    InvalidParam(#[from] InvalidParam),
    #[error("invalid scheduler config: {0}")]
    InvalidConfig(String),
    /// The engine could not start (its backend's device, weights or kernels).
    #[error("{0}")]
    EngineStart(String),
    #[error("the engine loop is shutting down")]
    ShuttingDown,
    /// The engine stopped for good (its device failed, or it never started): nothing more
    /// runs in this process; another replica may serve the request.
    #[error("the model's engine is out of service: {0}")]
    EngineFailed(String),
}

impl From<SchedulerError> for BackendError {
    fn from(err: SchedulerError) -> Self {
        match err {
            SchedulerError::QueueFull { scope, what } => BackendError::QueueFull { scope, what },
            SchedulerError::PromptTooLong { .. } | SchedulerError::TooLargeForCache { .. } => {
                BackendError::ContextLengthExceeded(format!("{err}."))
            }
            SchedulerError::TooManyChoices { n, max_num_seqs } => {
                BackendError::InvalidParam(InvalidParam::new(
                    "n",
                    format!("{n} choices exceed this server's max_num_seqs ({max_num_seqs})"),
                ))
            }
            SchedulerError::InvalidParam(p) => BackendError::InvalidParam(p),
            SchedulerError::InvalidRequest(message) => BackendError::InvalidRequest(message),
            // A gateway retries both on another worker.
            SchedulerError::ShuttingDown | SchedulerError::EngineFailed(_) => {
                BackendError::ShuttingDown
            }
            other => BackendError::Internal(other.to_string()),
        }
    }
}
