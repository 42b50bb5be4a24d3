//! Starfire's scheduler: requests, continuous batching over a paged KV cache with prefix
//! caching, preemption, and tenant fairness; and the loop that drives an engine with it.
//!
//! Modules in the order a request flows through them:
//! - `request`: what comes in (`NewRequest`) and what goes out (`Delta`, `Usage`).
//! - `request_queue`: waiting requests per tenant, and the admission caps.
//! - `fairness`: virtual token counters that pick the next tenant to admit.
//! - `kv`: block pool (ref counts, LRU free queue, prefix-cache hash map) and block tables.
//! - `scheduler`: `schedule() -> StepPlan`, `update(tokens) -> Vec<Delta>`; preemption, `n`.
//! - `sequence`: a request's sequences; a sampled token's text and stop checks.
//! - `executor`: the seam to the model (`ModelExecutor`, `StepPlan`, `SampledToken`).
//! - `model_executor`: that seam implemented by the engine's `Model` and sampler.
//! - `detokenizer`: incremental token-to-text and stop strings.
//! - `engine_loop`: the thread that owns scheduler and executor; async delta streams.
//! - `metrics`: vLLM-named values and their Prometheus text.
//! - `load`: closed-loop load through an `EngineLoop` (benchmarks).
//! - `config`: vLLM-named engine arguments and KV cache sizing.
//! - `testing`: a fake model and detokenizer for deterministic tests.

pub mod config;
pub mod detokenizer;
pub mod engine_loop;
pub mod error;
pub mod executor;
pub mod fairness;
pub mod kv;
pub mod load;
pub mod metrics;
pub mod model_executor;
pub mod request;
pub mod request_queue;
pub mod scheduler;
mod sequence;
pub mod testing;

pub use config::{KvCacheShape, SchedulerConfig};
pub use detokenizer::{DecodeStream, Detokenizer, NoText, OffsetDetokenizer, TokenDecoder};
pub use engine_loop::{DeltaObserver, DeltaStream, EngineLoop};
pub use error::{QueueScope, SchedulerError};
pub use executor::{ExecutorError, ModelExecutor, SampledToken, SamplingInput, StepPlan};
pub use metrics::{render_prometheus, MetricsSnapshot, SchedulerStats};
pub use request::{Delta, FinishReason, NewRequest, SeqId, StopReason, TokenLogprob, Usage};
pub use request_queue::AdmissionLimits;
pub use scheduler::Scheduler;
