//! The OpenAI-compatible data plane: `/v1/models`, `/v1/chat/completions` and `/v1/completions`
//! (JSON or SSE), and vLLM's `/v1/tokenize` and `/v1/detokenize`.
//!
//! A request (`request`: the shapes accepted, the sampling fields declared once) becomes the
//! engine's `SamplingParams` (`sampling`, vLLM's names, checked against the model) and starts
//! through `crate::generation` (rate limits, fair-share weight, budget, usage row, submission
//! for the caller's tenant). The backend's typed deltas become OpenAI's response or stream
//! chunks (`wire`, every shape a typed struct in the OpenAPI document), streamed by the one SSE
//! encoder (`sse`). `chat` also serves the WebSocket (`start_chat`); `completions` runs one
//! backend request per prompt.

mod chat;
mod completions;
mod models;
pub mod request;
mod sampling;
mod sse;
mod tokenize;
pub mod tools;
pub mod wire;

pub use chat::*;
pub use completions::*;
pub use models::*;
pub use request::{ChatCompletionRequest, CompletionRequest, PromptInput};
pub use tokenize::*;
pub use tools::AnswerFormat;
pub use wire::*;

use scheduler::{DeltaStream, FinishReason, TokenLogprob, Usage};

use crate::error::ApiError;
use crate::limits::Admission;

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The error a failed generation reports.
pub(crate) fn generation_error(reason: &FinishReason) -> ApiError {
    match reason {
        FinishReason::Error(cause) => ApiError::Internal(format!("generation failed: {cause}")),
        _ => ApiError::Internal("generation was aborted".to_owned()),
    }
}

/// The error of a request whose deltas ended before its usage delta.
pub(crate) fn stopped_early() -> ApiError {
    ApiError::Internal("the engine stopped early".into())
}

/// One choice of a request run to its end.
pub(crate) struct CollectedChoice {
    pub text: String,
    /// Each output token's, when logprobs were requested.
    pub logprobs: Option<Vec<TokenLogprob>>,
    /// `Stop` or `Length`.
    pub finish_reason: FinishReason,
}

/// A request run to its end (a non-streamed answer).
pub(crate) struct Collected {
    pub choices: Vec<CollectedChoice>,
    pub usage: Usage,
}

/// Runs a request with `n` choices to its end, every delta passing `admission` (if any).
pub(crate) async fn collect(
    mut stream: DeltaStream,
    n: usize,
    admission: Option<&Admission>,
) -> Result<Collected, ApiError> {
    let mut choices: Vec<CollectedChoice> = (0..n)
        .map(|_| CollectedChoice {
            text: String::new(),
            logprobs: None,
            finish_reason: FinishReason::Stop,
        })
        .collect();
    let mut usage = None;
    while let Some(d) = stream.recv().await {
        if let Some(admission) = admission {
            admission.note(&d);
        }
        let choice = &mut choices[d.index.min(n - 1)];
        choice.text.push_str(&d.text);
        if !d.logprobs.is_empty() {
            choice
                .logprobs
                .get_or_insert_with(Vec::new)
                .extend(d.logprobs);
        }
        match d.finish_reason {
            Some(reason @ (FinishReason::Stop | FinishReason::Length)) => {
                choice.finish_reason = reason;
            }
            Some(other) => return Err(generation_error(&other)),
            None => {}
        }
        if d.usage.is_some() {
            usage = d.usage;
        }
    }
    let usage = usage.ok_or_else(stopped_early)?;
    Ok(Collected { choices, usage })
}
