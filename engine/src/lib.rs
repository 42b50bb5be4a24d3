//! Starfire's model engine. It knows nothing of tenants, HTTP or money.
//!
//! Data flows through the modules in this order:
//! - `model_cache`: fetches the default GGUF into `$STARFIRE_HOME/models` and finds it again.
//! - `gguf`: typed GGUF metadata and tensors (through candle).
//! - `tokenizer`: text ⇄ token ids from GGUF metadata or `tokenizer.json`, incremental decoding.
//! - `chat_template`: renders chat messages with the model's Jinja template (minijinja).
//! - `model`: configuration, weight loading (GGUF or Hugging Face directory), forward pass.
//! - `batch`: what one step computes: new tokens, positions, block tables, slot mappings.
//! - `kv_cache`: the paged KV cache the forward pass writes and attends over.
//! - `kernels`: quantized dot products, linear layers, paged attention.
//! - `generate`: a plain one-sequence generation loop (CLI, tests, benchmarks).
//! - `sampling`: vLLM's `SamplingParams` and the sampler that turns logits into a token.
//! - `cuda`: the CUDA backend's kernels (CUDA C compiled by NVRTC) and its driver probe.
//! - `structured`: structured outputs (JSON Schema, regex, choice, Lark) as token masks.

pub mod batch;
pub mod chat_template;
pub mod cuda;
pub mod error;
pub mod generate;
pub mod gguf;
pub mod kernels;
pub mod kv_cache;
pub mod model;
pub mod model_cache;
pub mod sampling;
pub mod structured;
pub mod tokenizer;

pub use batch::{SequenceStep, StepBatch};
pub use chat_template::{ChatMessage, ChatTemplate, ToolCall, ToolDefinition};
pub use error::{EngineError, Result};
pub use kv_cache::KvCache;
pub use model::{CpuForward, Model, ModelConfig, StepForward, StepMasks, StepOutput, TextModel};
pub use sampling::SamplingParams;
pub use tokenizer::{IncrementalDecoder, Tokenizer};
