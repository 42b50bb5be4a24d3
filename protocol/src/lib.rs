//! What the gateway and whatever runs a model say to each other, with no engine, scheduler or
//! HTTP in it.
//!
//! Read in the order a request flows:
//! - `chat`: a chat message as templates take it (with tool calls and tool results), and the
//!   definition of a function a model may call.
//! - `sampling`: vLLM's `SamplingParams`, checked field by field (`InvalidParam` names the field).
//! - `request`: what goes in (`NewRequest`: prompt token ids, sampling, tenant, weight,
//!   priority) and what comes out (`Delta`: new token ids and text of one choice, logprobs,
//!   the finish reason, and on the last one `Usage`).
//! - `stream`: `DeltaStream`, the deltas of one request as any backend delivers them: a channel
//!   it fills and an abort it provides, run when the consumer drops the stream unfinished.
//! - `error`: `BackendError`, why a request was refused before it started, as data.
//! - `backend`: the `InferenceBackend` / `ServedModel` traits the gateway routes through.
//! - `wire`: the same, over HTTP between a gateway and a Starfire worker (JSON bodies, a
//!   generation's deltas as NDJSON, refusals as `BackendError`s).
//!
//! The engine re-exports `SamplingParams` and `ChatMessage`, the scheduler the request types
//! and `DeltaStream`, so code on either side of the seam names one type.

pub mod backend;
pub mod chat;
pub mod error;
pub mod request;
pub mod sampling;
pub mod stream;
pub mod wire;

pub use backend::{
    BoxFuture, Embeddings, InferenceBackend, ModelCard, SamplingDefaults, ServedModel,
};
pub use chat::{ChatMessage, FunctionCall, ToolCall, ToolDefinition};
pub use error::{BackendError, InvalidParam, QueueScope};
pub use request::{
    estimate_tokens, Delta, FinishReason, ForwardedPrompt, ForwardedRequest, NewRequest,
    StopReason, TokenLogprob, Usage,
};
pub use sampling::{
    valid_function_name, SamplingParams, StructuredOutput, ToolAnswer, MAX_LOGIT_BIAS,
    MAX_LOGPROBS, MAX_STOP_TOKEN_IDS, MAX_TOOLS,
};
pub use stream::{AbortFn, DeltaObserver, DeltaStream};
