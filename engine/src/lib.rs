//! Starfire's model engine. It knows nothing of tenants, HTTP or money.
//!
//! Data flows through the modules in this order:
//! - `model_cache`: fetches the default GGUF into `$STARFIRE_HOME/models` and finds it again.
//! - `sampling`: vLLM's `SamplingParams` and the sampler that turns logits into a token.
//! - `batch`: what one step computes: new tokens, positions, block tables, slot mappings.

pub mod batch;
pub mod error;
pub mod sampling;

pub use batch::{SequenceStep, StepBatch};
pub use error::{EngineError, Result};
pub use sampling::SamplingParams;
