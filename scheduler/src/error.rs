//! The scheduler's errors. `QueueFull` is its own variant so the gateway can answer 429 (one
//! tenant over its share) or 503 (the whole server over capacity) instead of 400.

/// Which admission cap refused a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueueScope {
    /// The tenant's own cap: answer 429, the tenant should slow down.
    Tenant,
    /// The server-wide cap: answer 503, the server is saturated.
    Global,
}

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
    #[error("invalid scheduler config: {0}")]
    InvalidConfig(String),
    #[error("the engine loop is shutting down")]
    ShuttingDown,
}
