//! The engine's one error type.

/// Everything that can go wrong inside the engine.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("unsupported model architecture `{0}` (supported: llama, qwen2, mistral)")]
    UnsupportedArchitecture(String),
    #[error("model file: {0}")]
    Model(String),
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    #[error("chat template: {0}")]
    ChatTemplate(String),
    #[error("invalid sampling parameter {0}")]
    InvalidParam(#[from] protocol::InvalidParam),
    #[error("invalid step batch: {0}")]
    InvalidBatch(String),
    #[error("model cache: {0}")]
    ModelCache(String),
    #[error("tensor backend: {0}")]
    Backend(#[from] candle_core::Error),
    #[error("{0}")]
    Cuda(String),
    /// The GPU hit an error that leaves its context unusable (an illegal address, a kernel
    /// that failed, an uncorrectable ECC error): nothing more runs on it in this process.
    #[error("the GPU failed and runs nothing more until the process restarts: {0}")]
    DeviceLost(String),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

pub type Result<T, E = EngineError> = std::result::Result<T, E>;
