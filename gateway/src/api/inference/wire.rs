//! What the data plane answers, as typed structs with their OpenAPI schemas: the JSON
//! responses (`ChatCompletion`, `Completion`), the server-sent chunks of a streamed answer
//! (`ChatCompletionChunk`, `CompletionChunk`) and the pieces they share (usage, logprobs).
//! Nothing the data plane answers is built with `json!`: the SDKs' types come from these.

use std::collections::HashMap;

use serde::Serialize;
use utoipa::ToSchema;

use crate::inference::ServedModel;
use scheduler::{TokenLogprob, Usage};

/// Identifies the serving stack in responses (OpenAI's `system_fingerprint`).
pub const SYSTEM_FINGERPRINT: &str = concat!("fp_starfire_", env!("CARGO_PKG_VERSION"));

/// Token counts of a request.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UsageObject {
    pub prompt_tokens: usize,
    /// Over all choices.
    pub completion_tokens: usize,
    pub total_tokens: usize,
    pub prompt_tokens_details: PromptTokensDetails,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PromptTokensDetails {
    /// Prompt tokens served from the prefix cache.
    pub cached_tokens: usize,
}

impl From<Usage> for UsageObject {
    fn from(u: Usage) -> Self {
        UsageObject {
            prompt_tokens: u.prompt_tokens,
            completion_tokens: u.completion_tokens,
            total_tokens: u.prompt_tokens + u.completion_tokens,
            prompt_tokens_details: PromptTokensDetails {
                cached_tokens: u.cached_tokens,
            },
        }
    }
}

/// One alternative token and its log-probability.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TopLogprob {
    pub token: String,
    pub logprob: f32,
    /// The token's UTF-8 bytes.
    pub bytes: Vec<u8>,
}

/// An output token, its log-probability and the most likely alternatives.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TokenLogprobObject {
    pub token: String,
    pub logprob: f32,
    pub bytes: Vec<u8>,
    pub top_logprobs: Vec<TopLogprob>,
}

/// `logprobs` of a choice.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ChoiceLogprobs {
    pub content: Vec<TokenLogprobObject>,
}

/// The assistant's answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct AssistantMessage {
    /// Always `assistant`.
    pub role: &'static str,
    /// The answer's text; null when the answer is only tool calls.
    pub content: Option<String>,
    /// Always null.
    pub refusal: Option<String>,
    /// The calls the model made, when `tools` were given and it called some.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCallObject>>,
}

/// A call the model made.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ToolCallObject {
    /// `call_...`: what the `tool` message with the result names in `tool_call_id`.
    pub id: String,
    /// Always `function`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub function: FunctionCallObject,
}

/// The function a call calls.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FunctionCallObject {
    pub name: String,
    /// The arguments as JSON text, valid against the function's `parameters`.
    pub arguments: String,
}

impl From<protocol::ToolCall> for ToolCallObject {
    fn from(call: protocol::ToolCall) -> Self {
        ToolCallObject {
            id: call.id,
            kind: "function",
            function: FunctionCallObject {
                name: call.function.name,
                arguments: call.function.arguments,
            },
        }
    }
}

/// A piece of a streamed call: the first of each call has its `id`, `type` and
/// `function.name` (and empty `arguments`); the next ones more of `function.arguments`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ToolCallDelta {
    /// The call's position among the choice's calls.
    pub index: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// `function`, on the call's first piece.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<&'static str>,
    pub function: FunctionCallDelta,
}

/// What a piece adds to a call's function.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FunctionCallDelta {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arguments: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ChatChoice {
    pub index: usize,
    pub message: AssistantMessage,
    /// Null unless `logprobs` was requested.
    pub logprobs: Option<ChoiceLogprobs>,
    /// `stop` (EOS, a stop string or stop token), `length`, or `tool_calls` (the model called
    /// tools; `stop` when `tool_choice` named the function).
    pub finish_reason: String,
}

/// A chat completion (`stream: false`).
#[derive(Debug, Serialize, ToSchema)]
pub struct ChatCompletion {
    /// `chatcmpl-...`
    pub id: String,
    /// Always `chat.completion`.
    pub object: &'static str,
    /// Unix seconds.
    pub created: u64,
    pub model: String,
    pub system_fingerprint: &'static str,
    pub choices: Vec<ChatChoice>,
    pub usage: UsageObject,
}

/// What a chunk adds to a choice's message.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct ChatDelta {
    /// `assistant`, on the first chunk of each choice only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<&'static str>,
    /// New text of the answer (empty on the first chunk); absent on the chunk that finishes
    /// the choice and on tool-call chunks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// A piece of a tool call (one per chunk).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCallDelta>>,
}

impl ChatDelta {
    /// New answer text.
    pub fn content(text: String) -> Self {
        ChatDelta {
            content: Some(text),
            ..ChatDelta::default()
        }
    }

    /// A piece of a tool call.
    pub fn tool_call(call: ToolCallDelta) -> Self {
        ChatDelta {
            tool_calls: Some(vec![call]),
            ..ChatDelta::default()
        }
    }
}

/// One choice's piece of a chunk.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChatChunkChoice {
    pub index: usize,
    pub delta: ChatDelta,
    /// The new tokens' log-probabilities, when `logprobs` was requested.
    pub logprobs: Option<ChoiceLogprobs>,
    /// `stop`, `length` or `tool_calls` on the choice's last chunk, else null.
    pub finish_reason: Option<&'static str>,
}

/// One server-sent event of a streamed chat completion (`data: {chunk}`).
#[derive(Debug, Serialize, ToSchema)]
pub struct ChatCompletionChunk<'a> {
    /// `chatcmpl-...`, the same in every chunk of one answer.
    pub id: &'a str,
    /// Always `chat.completion.chunk`.
    pub object: &'static str,
    /// Unix seconds.
    pub created: u64,
    pub model: &'a str,
    pub system_fingerprint: &'static str,
    /// One choice's piece; empty in the last chunk with `usage`.
    pub choices: Vec<ChatChunkChoice>,
    /// Only with `stream_options.include_usage`: null on every chunk but the last one, which
    /// has `choices: []` and the request's usage.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<UsageObject>)]
    pub usage: Option<Option<UsageObject>>,
}

/// `logprobs` of a text completion choice (the legacy shape).
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct CompletionLogprobs {
    pub tokens: Vec<String>,
    pub token_logprobs: Vec<f32>,
    pub top_logprobs: Vec<HashMap<String, f32>>,
    /// Byte offset of each token in the choice's text.
    pub text_offset: Vec<usize>,
}

impl CompletionLogprobs {
    /// Appends `logprobs`, whose first token starts at byte `offset` of the choice's text
    /// (advanced past them).
    pub fn extend(
        &mut self,
        model: &dyn ServedModel,
        logprobs: &[TokenLogprob],
        offset: &mut usize,
    ) {
        for l in logprobs {
            let token = model.token_text(l.token_id);
            self.text_offset.push(*offset);
            *offset += token.len();
            self.tokens.push(token);
            self.token_logprobs.push(finite(l.logprob));
            self.top_logprobs.push(
                l.top
                    .iter()
                    .map(|&(id, lp)| (model.token_text(id), finite(lp)))
                    .collect(),
            );
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CompletionChoice {
    /// `prompt_index * n + i`.
    pub index: usize,
    pub text: String,
    pub logprobs: Option<CompletionLogprobs>,
    /// `stop` or `length`.
    pub finish_reason: String,
}

/// A text completion (`stream: false`).
#[derive(Debug, Serialize, ToSchema)]
pub struct Completion {
    /// `cmpl-...`
    pub id: String,
    /// Always `text_completion`.
    pub object: &'static str,
    pub created: u64,
    pub model: String,
    pub system_fingerprint: &'static str,
    pub choices: Vec<CompletionChoice>,
    pub usage: UsageObject,
}

/// One choice's piece of a streamed text completion.
#[derive(Debug, Serialize, ToSchema)]
pub struct CompletionChunkChoice {
    /// `prompt_index * n + i`.
    pub index: usize,
    /// New text (empty on a chunk that only finishes the choice).
    pub text: String,
    pub logprobs: Option<CompletionLogprobs>,
    /// `stop` or `length` on the choice's last chunk, else null.
    pub finish_reason: Option<&'static str>,
}

/// One server-sent event of a streamed text completion (`data: {chunk}`).
#[derive(Debug, Serialize, ToSchema)]
pub struct CompletionChunk<'a> {
    /// `cmpl-...`, the same in every chunk of one answer.
    pub id: &'a str,
    /// Always `text_completion`.
    pub object: &'static str,
    /// Unix seconds.
    pub created: u64,
    pub model: &'a str,
    pub system_fingerprint: &'static str,
    /// One choice's piece; empty in the last chunk with `usage`.
    pub choices: Vec<CompletionChunkChoice>,
    /// Only with `stream_options.include_usage`: null on every chunk but the last one, which
    /// has `choices: []` and the request's usage.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<UsageObject>)]
    pub usage: Option<Option<UsageObject>>,
}

/// JSON has no -inf; vLLM reports such tokens as -9999.
fn finite(logprob: f32) -> f32 {
    if logprob.is_finite() {
        logprob
    } else {
        -9999.0
    }
}

/// The chat shape of `logprobs`: each token's text, bytes and alternatives.
pub(crate) fn logprob_objects(
    model: &dyn ServedModel,
    logprobs: &[TokenLogprob],
) -> Vec<TokenLogprobObject> {
    logprobs
        .iter()
        .map(|l| {
            let token = model.token_text(l.token_id);
            TokenLogprobObject {
                bytes: token.clone().into_bytes(),
                token,
                logprob: finite(l.logprob),
                top_logprobs: l
                    .top
                    .iter()
                    .map(|&(id, lp)| {
                        let token = model.token_text(id);
                        TopLogprob {
                            bytes: token.clone().into_bytes(),
                            token,
                            logprob: finite(lp),
                        }
                    })
                    .collect(),
            }
        })
        .collect()
}
