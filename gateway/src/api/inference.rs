//! The OpenAI-compatible data plane: `/v1/models`, `/v1/chat/completions` and `/v1/completions`
//! (JSON or SSE), and vLLM's `/v1/tokenize` and `/v1/detokenize`.
//!
//! A request becomes the engine's `SamplingParams` (vLLM's names) and the scheduler's
//! `NewRequest` for the caller's tenant (fairness and prefix-cache isolation); the scheduler's
//! deltas become OpenAI's response or stream chunks. Fields Starfire does not support yet are
//! refused with a 400 that names them; nothing is silently ignored.
//!
//! Every route here passes the rate limiter (`limits`) once the request is parsed and its
//! token cost known, and answers with the `x-ratelimit-*` headers; the admission rides along
//! with the engine's deltas and settles when the response ends or the client goes away.

use std::collections::{HashMap, VecDeque};
use std::pin::Pin;
use std::sync::Arc;

use actix_web::web::{self, Bytes};
use actix_web::HttpResponse;
use engine::{ChatMessage, SamplingParams};
use scheduler::{Delta, DeltaStream, FinishReason, NewRequest, TokenLogprob, Usage};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::ToSchema;

use super::body::JsonBody;
use crate::auth::secret::random_base62;
use crate::auth::{Permission, Principal};
use crate::error::{ApiError, ErrorBody};
use crate::inference::{scheduler_error, ServedModel};
use crate::limits::{Admission, Cost};
use crate::metering::{Charge, Meter};
use crate::server::AppState;
use crate::store::usage::Endpoint;

/// Identifies the serving stack in responses (OpenAI's `system_fingerprint`).
pub const SYSTEM_FINGERPRINT: &str = concat!("fp_starfire_", env!("CARGO_PKG_VERSION"));

/// Largest `n` accepted.
const MAX_N: usize = 16;

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

// ---------------------------------------------------------------------------------------------
// /v1/models

/// A served model.
#[derive(Debug, Serialize, ToSchema)]
pub struct ModelObject {
    /// The name to pass as `model`.
    #[schema(example = "smollm2-135m-instruct")]
    pub id: String,
    /// Always `model`.
    pub object: &'static str,
    /// Unix seconds when the model was loaded.
    pub created: u64,
    /// Always `starfire`.
    pub owned_by: &'static str,
}

/// The served models.
#[derive(Debug, Serialize, ToSchema)]
pub struct ModelList {
    /// Always `list`.
    pub object: &'static str,
    pub data: Vec<ModelObject>,
}

/// List the served models.
#[utoipa::path(get, path = "/v1/models", tag = "Inference",
    responses((status = 200, body = ModelList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 503, description = "No model is loaded (`model_not_loaded`): run `starfire model fetch`", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_models(
    state: web::Data<AppState>,
    principal: Principal,
) -> Result<HttpResponse, ApiError> {
    principal.require(Permission::Inference)?;
    let data = state
        .inference
        .models()?
        .into_iter()
        .map(|m| ModelObject {
            id: m.id,
            object: "model",
            created: m.created,
            owned_by: "starfire",
        })
        .collect();
    Ok(HttpResponse::Ok().json(ModelList {
        object: "list",
        data,
    }))
}

/// Retrieve a served model.
#[utoipa::path(get, path = "/v1/models/{model}", tag = "Inference",
    params(("model" = String, Path, description = "The model's name")),
    responses((status = 200, body = ModelObject), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "`model_not_found`", body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn retrieve_model(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    principal.require(Permission::Inference)?;
    let name = path.into_inner();
    let served = state.inference.model(&name)?;
    let card = state
        .inference
        .models()?
        .into_iter()
        .find(|m| m.id == served.name())
        .ok_or_else(|| ApiError::ModelNotFound(format!("The model '{name}' does not exist.")))?;
    Ok(HttpResponse::Ok().json(ModelObject {
        id: card.id,
        object: "model",
        created: card.created,
        owned_by: "starfire",
    }))
}

// ---------------------------------------------------------------------------------------------
// /v1/chat/completions: the request

/// `content` of a message: a string, or an array of text parts.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum MessageContent {
    Text(String),
    Parts(Vec<ContentPart>),
}

/// One part of a message's content. Only `{"type": "text", "text": ...}` is supported.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ContentPart {
    #[serde(rename = "type")]
    pub kind: String,
    pub text: Option<String>,
}

/// A chat message.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChatMessageIn {
    /// `system`, `developer` (treated as `system`), `user` or `assistant`.
    pub role: String,
    pub content: MessageContent,
}

/// `stop`: one string or up to 16.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum StopSpec {
    One(String),
    Many(Vec<String>),
}

/// Options of a streamed response.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StreamOptions {
    /// Send a last chunk with `usage` (and `choices: []`) before `data: [DONE]`.
    pub include_usage: Option<bool>,
}

/// A chat completion request, with OpenAI's fields and vLLM's sampling extras.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChatCompletionRequest {
    /// A served model (`GET /v1/models`).
    #[schema(example = "smollm2-135m-instruct")]
    pub model: String,
    pub messages: Vec<ChatMessageIn>,
    /// Most tokens to generate per choice (default: what the context leaves).
    pub max_tokens: Option<u32>,
    /// Same as `max_tokens` (OpenAI's newer name); give one of them.
    pub max_completion_tokens: Option<u32>,
    /// 0 to 2; 0 is greedy. Default 1.
    pub temperature: Option<f32>,
    /// In (0, 1]. Default 1.
    pub top_p: Option<f32>,
    /// Number of choices, 1 to 16. Default 1.
    pub n: Option<u32>,
    pub stop: Option<StopSpec>,
    /// Makes sampling reproducible.
    pub seed: Option<i64>,
    /// -2 to 2.
    pub presence_penalty: Option<f32>,
    /// -2 to 2.
    pub frequency_penalty: Option<f32>,
    /// Token id (as a string) to a bias from -100 to 100.
    pub logit_bias: Option<HashMap<String, f32>>,
    /// Return the log-probability of each output token.
    pub logprobs: Option<bool>,
    /// 0 to 20 most likely alternatives per token; needs `logprobs: true`.
    pub top_logprobs: Option<u32>,
    /// An end-user id (accepted for compatibility; not used for anything yet).
    pub user: Option<String>,
    /// Stream the answer as server-sent events (`data: {chunk}`, then `data: [DONE]`).
    pub stream: Option<bool>,
    pub stream_options: Option<StreamOptions>,
    /// vLLM: keep the `top_k` most likely tokens (0 or -1: all).
    pub top_k: Option<i32>,
    /// vLLM: drop tokens below `min_p` times the top token's probability.
    pub min_p: Option<f32>,
    /// vLLM: > 1 discourages repeating prompt or output tokens; in (0, 10].
    pub repetition_penalty: Option<f32>,
    /// vLLM: EOS and stop tokens cannot end a choice before this many tokens.
    pub min_tokens: Option<u32>,
    /// vLLM: keep generating after EOS.
    pub ignore_eos: Option<bool>,
    /// vLLM: token ids that end a choice.
    pub stop_token_ids: Option<Vec<u32>>,
    /// vLLM: lower runs earlier among this organization's requests (default 0).
    pub priority: Option<i32>,
    /// Not supported yet: refused with 400.
    #[schema(value_type = Option<Object>)]
    pub tools: Option<Value>,
    /// Not supported yet: refused with 400.
    #[schema(value_type = Option<Object>)]
    pub tool_choice: Option<Value>,
    /// Not supported yet: refused with 400.
    #[schema(value_type = Option<Object>)]
    pub parallel_tool_calls: Option<Value>,
    /// Not supported yet: refused with 400.
    #[schema(value_type = Option<Object>)]
    pub functions: Option<Value>,
    /// Not supported yet: refused with 400.
    #[schema(value_type = Option<Object>)]
    pub function_call: Option<Value>,
    /// Only `{"type": "text"}` is supported; a JSON schema or JSON mode is refused with 400.
    #[schema(value_type = Option<Object>)]
    pub response_format: Option<Value>,
    /// Not supported yet: refused with 400.
    #[schema(value_type = Option<Object>)]
    pub audio: Option<Value>,
    /// Not supported yet: refused with 400.
    #[schema(value_type = Option<Object>)]
    pub modalities: Option<Value>,
    /// Not supported yet: refused with 400.
    #[schema(value_type = Option<Object>)]
    pub prediction: Option<Value>,
    /// Not supported yet: refused with 400.
    #[schema(value_type = Option<Object>)]
    pub reasoning_effort: Option<Value>,
    /// Not supported yet: refused with 400.
    #[schema(value_type = Option<Object>)]
    pub web_search_options: Option<Value>,
}

fn unsupported(field: &str) -> ApiError {
    ApiError::bad_request(
        format!("'{field}' is not supported by Starfire yet."),
        Some(field),
    )
}

fn field_error(field: &str, why: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request(format!("Invalid '{field}': {why}."), Some(field))
}

impl ChatCompletionRequest {
    fn reject_unsupported(&self) -> Result<(), ApiError> {
        let fields: [(&str, &Option<Value>); 10] = [
            ("tools", &self.tools),
            ("tool_choice", &self.tool_choice),
            ("parallel_tool_calls", &self.parallel_tool_calls),
            ("functions", &self.functions),
            ("function_call", &self.function_call),
            ("audio", &self.audio),
            ("modalities", &self.modalities),
            ("prediction", &self.prediction),
            ("reasoning_effort", &self.reasoning_effort),
            ("web_search_options", &self.web_search_options),
        ];
        for (name, value) in fields {
            if value.as_ref().is_some_and(|v| !v.is_null()) {
                return Err(unsupported(name));
            }
        }
        if let Some(format) = self.response_format.as_ref().filter(|v| !v.is_null()) {
            if format.get("type").and_then(Value::as_str) != Some("text") {
                return Err(ApiError::bad_request(
                    "'response_format' other than {\"type\": \"text\"} (JSON mode, JSON schema) \
                     is not supported by Starfire yet.",
                    Some("response_format"),
                ));
            }
        }
        Ok(())
    }

    fn chat_messages(&self) -> Result<Vec<ChatMessage>, ApiError> {
        Self::messages_only(&self.messages)
    }

    /// Chat messages as the template takes them; errors name `messages[i]...`.
    fn messages_only(messages: &[ChatMessageIn]) -> Result<Vec<ChatMessage>, ApiError> {
        if messages.is_empty() {
            return Err(field_error("messages", "at least one message is required"));
        }
        messages
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let role = match m.role.as_str() {
                    "system" | "developer" => "system",
                    "user" => "user",
                    "assistant" => "assistant",
                    other => {
                        return Err(field_error(
                            &format!("messages[{i}].role"),
                            format_args!(
                                "'{other}' is not supported (system, developer, user, assistant)"
                            ),
                        ))
                    }
                };
                let content = match &m.content {
                    MessageContent::Text(t) => t.clone(),
                    MessageContent::Parts(parts) => {
                        let mut text = String::new();
                        for (j, part) in parts.iter().enumerate() {
                            match (part.kind.as_str(), &part.text) {
                                ("text", Some(t)) => text.push_str(t),
                                ("text", None) => {
                                    return Err(field_error(
                                        &format!("messages[{i}].content[{j}].text"),
                                        "a text part needs `text`",
                                    ))
                                }
                                (other, _) => {
                                    return Err(field_error(
                                        &format!("messages[{i}].content[{j}].type"),
                                        format_args!(
                                            "'{other}' parts are not supported (text only)"
                                        ),
                                    ))
                                }
                            }
                        }
                        text
                    }
                };
                Ok(ChatMessage::new(role, content))
            })
            .collect()
    }

    /// The sampling parameters, checked against the model; `max_tokens` is left unset here.
    fn sampling_params(&self, model: &dyn ServedModel) -> Result<SamplingParams, ApiError> {
        if self.max_tokens.is_some() && self.max_completion_tokens.is_some() {
            return Err(field_error(
                "max_completion_tokens",
                "give `max_tokens` or `max_completion_tokens`, not both",
            ));
        }
        let logprobs = match (self.logprobs.unwrap_or(false), self.top_logprobs) {
            (true, top) => Some(top.unwrap_or(0) as usize),
            (false, Some(t)) if t > 0 => {
                return Err(field_error("top_logprobs", "needs `logprobs: true`"))
            }
            (false, _) => None,
        };
        sampling_params(
            SamplingFields {
                n: self.n,
                temperature: self.temperature,
                top_p: self.top_p,
                top_k: self.top_k,
                min_p: self.min_p,
                seed: self.seed,
                presence_penalty: self.presence_penalty,
                frequency_penalty: self.frequency_penalty,
                repetition_penalty: self.repetition_penalty,
                logit_bias: self.logit_bias.as_ref(),
                logprobs,
                logprobs_field: "top_logprobs",
                stop: self.stop.as_ref(),
                stop_token_ids: self.stop_token_ids.as_ref(),
                min_tokens: self.min_tokens,
                ignore_eos: self.ignore_eos,
            },
            model,
        )
    }

    fn requested_max_tokens(&self) -> Result<Option<usize>, ApiError> {
        let (field, value) = match (self.max_tokens, self.max_completion_tokens) {
            (Some(v), _) => ("max_tokens", v),
            (None, Some(v)) => ("max_completion_tokens", v),
            (None, None) => return Ok(None),
        };
        if value == 0 {
            return Err(field_error(field, "must be at least 1"));
        }
        if let Some(min) = self.min_tokens.filter(|&m| m > value) {
            return Err(field_error(
                "min_tokens",
                format_args!("{min} is more than {field} ({value})"),
            ));
        }
        Ok(Some(value as usize))
    }
}

/// The sampling fields chat and text completions share.
struct SamplingFields<'a> {
    n: Option<u32>,
    temperature: Option<f32>,
    top_p: Option<f32>,
    top_k: Option<i32>,
    min_p: Option<f32>,
    seed: Option<i64>,
    presence_penalty: Option<f32>,
    frequency_penalty: Option<f32>,
    repetition_penalty: Option<f32>,
    logit_bias: Option<&'a HashMap<String, f32>>,
    /// How many top alternatives, when logprobs were asked for.
    logprobs: Option<usize>,
    /// The request field that asked for them (`top_logprobs` or `logprobs`).
    logprobs_field: &'static str,
    stop: Option<&'a StopSpec>,
    stop_token_ids: Option<&'a Vec<u32>>,
    min_tokens: Option<u32>,
    ignore_eos: Option<bool>,
}

/// The engine's sampling parameters, checked against the model; `max_tokens` is left unset.
fn sampling_params(f: SamplingFields, model: &dyn ServedModel) -> Result<SamplingParams, ApiError> {
    let d = SamplingParams::default();
    let m = model.defaults();
    let vocab = model.vocab_size();
    let n = f.n.unwrap_or(1) as usize;
    if n == 0 || n > MAX_N {
        return Err(field_error(
            "n",
            format_args!("must be between 1 and {MAX_N}"),
        ));
    }
    let logprobs = f.logprobs;
    if logprobs.is_some_and(|k| k > engine::sampling::MAX_LOGPROBS) {
        return Err(field_error(f.logprobs_field, "must be between 0 and 20"));
    }
    let logit_bias = f
        .logit_bias
        .into_iter()
        .flatten()
        .map(|(k, v)| match k.parse::<u32>() {
            Ok(id) if (id as usize) < vocab => Ok((id, *v)),
            _ => Err(field_error(
                "logit_bias",
                format_args!("'{k}' is not a token id below {vocab}"),
            )),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let stop_token_ids = f.stop_token_ids.cloned().unwrap_or_default();
    if let Some(bad) = stop_token_ids.iter().find(|&&id| id as usize >= vocab) {
        return Err(field_error(
            "stop_token_ids",
            format_args!("{bad} is not a token id below {vocab}"),
        ));
    }
    let stop = match f.stop {
        None => Vec::new(),
        Some(StopSpec::One(s)) => vec![s.clone()],
        Some(StopSpec::Many(v)) => v.clone(),
    };
    let params = SamplingParams {
        n,
        temperature: f.temperature.or(m.temperature).unwrap_or(d.temperature),
        top_p: f.top_p.or(m.top_p).unwrap_or(d.top_p),
        top_k: f.top_k.or(m.top_k).unwrap_or(d.top_k),
        min_p: f.min_p.or(m.min_p).unwrap_or(d.min_p),
        seed: f.seed.map(|s| s as u64),
        presence_penalty: f
            .presence_penalty
            .or(m.presence_penalty)
            .unwrap_or(d.presence_penalty),
        frequency_penalty: f
            .frequency_penalty
            .or(m.frequency_penalty)
            .unwrap_or(d.frequency_penalty),
        repetition_penalty: f
            .repetition_penalty
            .or(m.repetition_penalty)
            .unwrap_or(d.repetition_penalty),
        logit_bias,
        logprobs,
        stop_token_ids,
        stop,
        max_tokens: None,
        min_tokens: f.min_tokens.unwrap_or(0) as usize,
        ignore_eos: f.ignore_eos.unwrap_or(false),
        ..d
    };
    params.validate().map_err(|e| {
        let text = match &e {
            engine::EngineError::InvalidParam(t) => t.clone(),
            other => other.to_string(),
        };
        let (field, why) = text.split_once(": ").unwrap_or(("", &text));
        let field = match field {
            "logprobs" => f.logprobs_field,
            f => f,
        };
        if field.is_empty() {
            ApiError::bad_request(text.clone(), None)
        } else {
            field_error(field, why)
        }
    })?;
    Ok(params)
}

/// Fits `max_tokens` into the context: an explicit value must fit beside the prompt, a missing
/// one becomes the default (the model's configured one, if any), cut to what the context leaves.
fn fit_context(
    prompt_len: usize,
    max_tokens: Option<usize>,
    default: Option<usize>,
    max_model_len: usize,
    what: &'static str,
) -> Result<usize, ApiError> {
    let exceeded = |requested: usize| ApiError::ContextLengthExceeded {
        message: format!(
            "This model's maximum context length is {max_model_len} tokens. However, you \
             requested {requested} tokens ({prompt_len} in the {what}, {} in the completion). \
             Please reduce the length of the {what} or completion.",
            requested - prompt_len
        ),
        param: what,
    };
    match max_tokens {
        Some(m) if prompt_len + m > max_model_len => Err(exceeded(prompt_len + m)),
        Some(m) => Ok(m),
        None if prompt_len >= max_model_len => Err(exceeded(prompt_len + 1)),
        None => Ok(default.map_or(max_model_len - prompt_len, |d| {
            d.min(max_model_len - prompt_len)
        })),
    }
}

// ---------------------------------------------------------------------------------------------
// /v1/chat/completions: the response

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
    pub content: String,
    /// Always null.
    pub refusal: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ChatChoice {
    pub index: usize,
    pub message: AssistantMessage,
    /// Null unless `logprobs` was requested.
    pub logprobs: Option<ChoiceLogprobs>,
    /// `stop` (EOS, a stop string or stop token) or `length`.
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

fn finite(logprob: f32) -> f32 {
    // JSON has no -inf; vLLM reports such tokens as -9999.
    if logprob.is_finite() {
        logprob
    } else {
        -9999.0
    }
}

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

/// The error a failed generation reports.
pub(crate) fn generation_error(reason: &FinishReason) -> ApiError {
    match reason {
        FinishReason::Error(cause) => ApiError::Internal(format!("generation failed: {cause}")),
        _ => ApiError::Internal("generation was aborted".to_owned()),
    }
}

/// Create a chat completion. With `stream: true` the answer is `text/event-stream`: one
/// `data: {chat.completion.chunk}` event per piece (the first of each choice carries
/// `delta.role`, the last its `finish_reason`); with `stream_options.include_usage` a last chunk
/// with `choices: []` and `usage`; then `data: [DONE]`. An error after the stream started
/// arrives as `data: {"error": {...}}`. Closing the connection aborts the generation.
#[utoipa::path(post, path = "/v1/chat/completions", tag = "Inference",
    request_body = ChatCompletionRequest,
    responses(
        (status = 200, description = "A chat completion, or (`stream: true`) server-sent `chat.completion.chunk` events", body = ChatCompletion),
        (status = 400, description = "Bad JSON, an unsupported field (named in `param`), a bad value, or `context_length_exceeded`", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "`model_not_found`", body = ErrorBody),
        (status = 413, body = ErrorBody),
        (status = 429, description = "A rate limit was reached (`rate_limit_exceeded`, `type` `requests` or `tokens`, with `Retry-After` and the `x-ratelimit-*` headers), this organization has too many queued requests (`Retry-After`), or its credits do not cover the request (`insufficient_quota`)", body = ErrorBody),
        (status = 503, description = "No model loaded (`model_not_loaded`), or the server is overloaded (`Retry-After`)", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create_chat_completion(
    state: web::Data<AppState>,
    principal: Principal,
    body: JsonBody<ChatCompletionRequest>,
) -> Result<HttpResponse, ApiError> {
    principal.require(Permission::Inference)?;
    let req = body.parse()?;
    let chat = start_chat(&state, &principal, req, ChatTransport::Http).await?;
    let meta = ChunkMeta {
        id: chat.id,
        created: chat.created,
        model: chat.model.name().to_owned(),
    };
    let admission = chat.admission;
    if chat.stream {
        let headers = *admission.headers();
        let sse = SseChat::new(
            chat.deltas,
            meta,
            chat.model,
            chat.n,
            chat.include_usage,
            admission,
        );
        let mut res = HttpResponse::Ok()
            .content_type("text/event-stream")
            .insert_header(("cache-control", "no-cache"))
            .streaming(sse.into_stream());
        headers.apply(res.headers_mut());
        Ok(res)
    } else {
        let completion =
            collect(chat.deltas, meta, chat.model.as_ref(), chat.n, &admission).await?;
        chat.meter.settled().await;
        Ok(admission.respond(HttpResponse::Ok().json(completion)))
    }
}

/// Which transport carries a chat answer: the only thing [`start_chat`] treats differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChatTransport {
    /// `POST /v1/chat/completions`: JSON, or SSE with `stream: true`.
    Http,
    /// `GET /v1/chat/ws`: always streamed, as `chat.delta` frames.
    WebSocket,
}

/// A chat request the scheduler accepted: what a transport needs to deliver the answer.
pub struct StartedChat {
    /// `chatcmpl-...`: the response's `id` and the scheduler's request id.
    pub id: String,
    /// Unix seconds.
    pub created: u64,
    pub model: Arc<dyn ServedModel>,
    /// Choices per request.
    pub n: usize,
    /// Whether the answer is streamed (always over WebSocket).
    pub stream: bool,
    /// `stream_options.include_usage`.
    pub include_usage: bool,
    /// The generation's deltas, metered; dropping them aborts it in the scheduler (and
    /// records the usage so far as cancelled).
    pub deltas: DeltaStream,
    /// The request's usage meter: non-streamed answers await `settled()` before answering, so
    /// that a client holding its response finds its usage recorded.
    pub meter: Meter,
    /// The request's rate-limit admission: every delta goes through `note`, and dropping it
    /// settles the tokens counter and ends the concurrency lease.
    pub admission: Admission,
}

/// The one way a chat completion starts, for REST and WebSocket alike: checks the caller's
/// permission and the request against the served model, renders the prompt through the chat
/// template, builds the sampling parameters, and submits to the scheduler as the caller's
/// organization. Whatever must hold for every chat request, whichever the transport
/// (admission, budget reservation, usage settlement of the returned deltas), belongs here.
pub async fn start_chat(
    state: &AppState,
    principal: &Principal,
    req: ChatCompletionRequest,
    transport: ChatTransport,
) -> Result<StartedChat, ApiError> {
    principal.require(Permission::Inference)?;
    req.reject_unsupported()?;
    let stream = match (transport, req.stream) {
        (ChatTransport::Http, stream) => stream.unwrap_or(false),
        (ChatTransport::WebSocket, Some(false)) => {
            return Err(field_error(
                "stream",
                "a WebSocket request is always streamed; leave `stream` out or set it to true",
            ))
        }
        (ChatTransport::WebSocket, _) => true,
    };
    if !stream && req.stream_options.is_some() {
        return Err(field_error(
            "stream_options",
            "only allowed with `stream: true`",
        ));
    }
    let include_usage = req
        .stream_options
        .as_ref()
        .and_then(|o| o.include_usage)
        .unwrap_or(false);
    let model = state.inference.model(&req.model)?;
    let messages = req.chat_messages()?;
    let mut params = req.sampling_params(model.as_ref())?;
    let requested = req.requested_max_tokens()?;
    let prompt = model.chat_prompt(&messages, true)?;
    params.max_tokens = Some(fit_context(
        prompt.len(),
        requested,
        model.defaults().max_tokens,
        model.max_model_len(),
        "messages",
    )?);
    let n = params.n;
    let cost = Cost::generation(prompt.len(), params.max_tokens.unwrap_or(0), n);
    let admission = state.limits.admit(&state.store, principal, cost).await?;

    let id = format!("chatcmpl-{}", random_base62(29));
    let charge = Charge {
        request_id: id.clone(),
        endpoint: Endpoint::Completions,
        model: model.name().to_owned(),
        prompt_tokens: prompt.len() as u64,
        max_completion_tokens: params.max_tokens.unwrap_or(0) as u64 * n as u64,
    };
    let meter = state.metering.admit(principal, charge).await?;
    let mut new_request = NewRequest::new(id.clone(), principal.tenant_id.clone(), prompt, params);
    new_request.priority = req.priority.unwrap_or(0);
    new_request.tenant_weight = tenant_weight(state, principal).await?;
    let deltas = meter.attach(model.submit(new_request).await.map_err(scheduler_error)?);
    Ok(StartedChat {
        id,
        created: unix_now(),
        model,
        n,
        stream,
        include_usage,
        deltas,
        meter,
        admission,
    })
}

/// The caller's organization's weight in the scheduler's fair share, from its plan.
async fn tenant_weight(state: &AppState, principal: &Principal) -> Result<f64, ApiError> {
    let tenant = state.store.tenant(&principal.tenant_id).await?;
    Ok(tenant.plan.scheduler_weight())
}

struct ChunkMeta {
    id: String,
    created: u64,
    model: String,
}

/// Runs a request to the end and assembles its choices.
async fn collect(
    mut stream: DeltaStream,
    meta: ChunkMeta,
    model: &dyn ServedModel,
    n: usize,
    admission: &Admission,
) -> Result<ChatCompletion, ApiError> {
    let mut texts = vec![String::new(); n];
    let mut logprobs: Vec<Option<Vec<TokenLogprobObject>>> = vec![None; n];
    let mut finish = vec![None; n];
    let mut usage = None;
    while let Some(d) = stream.recv().await {
        admission.note(&d);
        let i = d.index.min(n - 1);
        texts[i].push_str(&d.text);
        if !d.logprobs.is_empty() {
            logprobs[i]
                .get_or_insert_with(Vec::new)
                .extend(logprob_objects(model, &d.logprobs));
        }
        if let Some(reason) = d.finish_reason {
            if !matches!(reason, FinishReason::Stop | FinishReason::Length) {
                return Err(generation_error(&reason));
            }
            finish[i] = Some(reason.as_str().to_owned());
        }
        if d.usage.is_some() {
            usage = d.usage;
        }
    }
    let usage = usage.ok_or_else(|| ApiError::Internal("the engine stopped early".into()))?;
    let choices = texts
        .into_iter()
        .zip(logprobs)
        .zip(finish)
        .enumerate()
        .map(|(index, ((content, logprobs), finish))| ChatChoice {
            index,
            message: AssistantMessage {
                role: "assistant",
                content,
                refusal: None,
            },
            logprobs: logprobs.map(|content| ChoiceLogprobs { content }),
            finish_reason: finish.unwrap_or_else(|| "stop".to_owned()),
        })
        .collect();
    Ok(ChatCompletion {
        id: meta.id,
        object: "chat.completion",
        created: meta.created,
        model: meta.model,
        system_fingerprint: SYSTEM_FINGERPRINT,
        choices,
        usage: usage.into(),
    })
}

/// The SSE side of a streamed chat completion: deltas in, `data:` events out.
struct SseChat {
    stream: DeltaStream,
    meta: ChunkMeta,
    model: Arc<dyn ServedModel>,
    include_usage: bool,
    usage: Option<Usage>,
    queue: VecDeque<Bytes>,
    done: bool,
    /// Held until the stream ends or the client goes away.
    admission: Admission,
}

fn event(value: &Value) -> Bytes {
    Bytes::from(format!("data: {value}\n\n"))
}

impl SseChat {
    fn new(
        stream: DeltaStream,
        meta: ChunkMeta,
        model: Arc<dyn ServedModel>,
        n: usize,
        include_usage: bool,
        admission: Admission,
    ) -> Self {
        let mut sse = SseChat {
            stream,
            meta,
            model,
            include_usage,
            usage: None,
            queue: VecDeque::new(),
            done: false,
            admission,
        };
        for index in 0..n {
            sse.push_choice(
                index,
                json!({"role": "assistant", "content": ""}),
                None,
                None,
            );
        }
        sse
    }

    fn chunk(&self, choices: Value, usage: Option<Value>) -> Value {
        let mut chunk = json!({
            "id": self.meta.id,
            "object": "chat.completion.chunk",
            "created": self.meta.created,
            "model": self.meta.model,
            "system_fingerprint": SYSTEM_FINGERPRINT,
            "choices": choices,
        });
        if self.include_usage {
            chunk["usage"] = usage.unwrap_or(Value::Null);
        }
        chunk
    }

    fn push_choice(
        &mut self,
        index: usize,
        delta: Value,
        logprobs: Option<Value>,
        finish_reason: Option<&str>,
    ) {
        let choice = json!({
            "index": index,
            "delta": delta,
            "logprobs": logprobs.unwrap_or(Value::Null),
            "finish_reason": finish_reason,
        });
        let chunk = self.chunk(json!([choice]), None);
        self.queue.push_back(event(&chunk));
    }

    fn push_delta(&mut self, d: Delta) {
        self.admission.note(&d);
        if !d.text.is_empty() || !d.logprobs.is_empty() {
            let logprobs = (!d.logprobs.is_empty())
                .then(|| json!({"content": logprob_objects(self.model.as_ref(), &d.logprobs)}));
            self.push_choice(d.index, json!({"content": d.text}), logprobs, None);
        }
        if d.usage.is_some() {
            self.usage = d.usage;
        }
        match d.finish_reason {
            Some(FinishReason::Stop) | Some(FinishReason::Length) => {
                let reason = d.finish_reason.as_ref().map(FinishReason::as_str);
                self.push_choice(d.index, json!({}), None, reason);
            }
            Some(other) => self.fail(generation_error(&other)),
            None => {}
        }
    }

    fn fail(&mut self, err: ApiError) {
        if let ApiError::Internal(cause) = &err {
            tracing::error!(%cause, "generation failed mid-stream");
        }
        let body = serde_json::to_value(err.body()).unwrap_or(Value::Null);
        self.queue.push_back(event(&body));
        self.done = true;
    }

    fn finish(&mut self) {
        match self.usage {
            Some(usage) => {
                if self.include_usage {
                    let usage = serde_json::to_value(UsageObject::from(usage)).ok();
                    let chunk = self.chunk(json!([]), usage);
                    self.queue.push_back(event(&chunk));
                }
                self.queue
                    .push_back(Bytes::from_static(b"data: [DONE]\n\n"));
                self.done = true;
            }
            None => self.fail(ApiError::Internal("the engine stopped early".into())),
        }
    }

    fn into_stream(
        self,
    ) -> impl futures_util::Stream<Item = Result<Bytes, actix_web::Error>> + 'static {
        futures_util::stream::unfold(self, |mut sse| async move {
            loop {
                if let Some(bytes) = sse.queue.pop_front() {
                    return Some((Ok(bytes), sse));
                }
                if sse.done {
                    return None;
                }
                match sse.stream.recv().await {
                    Some(d) => sse.push_delta(d),
                    None => sse.finish(),
                }
            }
        })
    }
}

// ---------------------------------------------------------------------------------------------
// /v1/completions

/// `prompt`: a string, several strings, token ids, or several lists of token ids.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum PromptInput {
    Text(String),
    Texts(Vec<String>),
    Tokens(Vec<u32>),
    TokenLists(Vec<Vec<u32>>),
}

impl PromptInput {
    /// One token list per input, text tokenized with the model (BOS where it wants one).
    pub fn token_lists(&self, model: &dyn ServedModel) -> Result<Vec<Vec<u32>>, ApiError> {
        Ok(match self {
            PromptInput::Text(t) => vec![model.encode(t, true)?],
            PromptInput::Texts(ts) => ts
                .iter()
                .map(|t| model.encode(t, true))
                .collect::<Result<_, _>>()?,
            PromptInput::Tokens(ids) => vec![ids.clone()],
            PromptInput::TokenLists(lists) => lists.clone(),
        })
    }
}

/// A text completion request, with OpenAI's fields and vLLM's sampling extras.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompletionRequest {
    /// A served model (`GET /v1/models`).
    #[schema(example = "smollm2-135m-instruct")]
    pub model: String,
    pub prompt: PromptInput,
    /// Most tokens to generate per choice (default 16, as OpenAI).
    pub max_tokens: Option<u32>,
    pub temperature: Option<f32>,
    pub top_p: Option<f32>,
    /// Choices per prompt, 1 to 16; choice `index` is `prompt_index * n + i`.
    pub n: Option<u32>,
    pub stop: Option<StopSpec>,
    pub seed: Option<i64>,
    pub presence_penalty: Option<f32>,
    pub frequency_penalty: Option<f32>,
    pub logit_bias: Option<HashMap<String, f32>>,
    /// Return log-probabilities of each token and of this many alternatives (0 to 20).
    pub logprobs: Option<u32>,
    /// Accepted for compatibility; not used for anything yet.
    pub user: Option<String>,
    pub stream: Option<bool>,
    pub stream_options: Option<StreamOptions>,
    pub top_k: Option<i32>,
    pub min_p: Option<f32>,
    pub repetition_penalty: Option<f32>,
    pub min_tokens: Option<u32>,
    pub ignore_eos: Option<bool>,
    pub stop_token_ids: Option<Vec<u32>>,
    pub priority: Option<i32>,
    /// Only `false` is supported.
    pub echo: Option<bool>,
    /// Only equal to `n` (or unset) is supported.
    pub best_of: Option<u32>,
    /// Not supported yet: refused with 400.
    pub suffix: Option<String>,
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
    fn extend(&mut self, model: &dyn ServedModel, logprobs: &[TokenLogprob], offset: &mut usize) {
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

impl CompletionRequest {
    fn reject_unsupported(&self) -> Result<(), ApiError> {
        if self.echo == Some(true) {
            return Err(unsupported("echo"));
        }
        if self.suffix.is_some() {
            return Err(unsupported("suffix"));
        }
        if let Some(best_of) = self.best_of {
            if best_of != self.n.unwrap_or(1) {
                return Err(ApiError::bad_request(
                    "'best_of' other than `n` is not supported by Starfire yet.",
                    Some("best_of"),
                ));
            }
        }
        Ok(())
    }

    fn prompts(&self, model: &dyn ServedModel) -> Result<Vec<Vec<u32>>, ApiError> {
        let vocab = model.vocab_size();
        let prompts = self.prompt.token_lists(model)?;
        if prompts.is_empty() || prompts.len() > MAX_N {
            return Err(field_error(
                "prompt",
                format_args!("give 1 to {MAX_N} prompts"),
            ));
        }
        for p in &prompts {
            if p.is_empty() {
                return Err(field_error(
                    "prompt",
                    "a prompt must have at least one token",
                ));
            }
            if let Some(bad) = p.iter().find(|&&id| id as usize >= vocab) {
                return Err(field_error(
                    "prompt",
                    format_args!("{bad} is not a token id below {vocab}"),
                ));
            }
        }
        Ok(prompts)
    }
}

/// Create a text completion for one or several prompts. With `stream: true` the answer is
/// `text/event-stream`: `data: {text_completion chunk}` events (the last of each choice with its
/// `finish_reason`), with `stream_options.include_usage` a last chunk with `choices: []` and
/// `usage`, then `data: [DONE]`. Closing the connection aborts the generation.
#[utoipa::path(post, path = "/v1/completions", tag = "Inference",
    request_body = CompletionRequest,
    responses(
        (status = 200, description = "A text completion, or (`stream: true`) server-sent `text_completion` chunks", body = Completion),
        (status = 400, description = "Bad JSON, an unsupported field (named in `param`), a bad value, or `context_length_exceeded`", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "`model_not_found`", body = ErrorBody),
        (status = 413, body = ErrorBody),
        (status = 429, description = "A rate limit was reached (`rate_limit_exceeded`, `type` `requests` or `tokens`, with `Retry-After` and the `x-ratelimit-*` headers), this organization has too many queued requests (`Retry-After`), or its credits do not cover the request (`insufficient_quota`)", body = ErrorBody),
        (status = 503, description = "No model loaded (`model_not_loaded`), or the server is overloaded (`Retry-After`)", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create_completion(
    state: web::Data<AppState>,
    principal: Principal,
    body: JsonBody<CompletionRequest>,
) -> Result<HttpResponse, ApiError> {
    principal.require(Permission::Inference)?;
    let req = body.parse()?;
    req.reject_unsupported()?;
    let model = state.inference.model(&req.model)?;
    let mut params = sampling_params(
        SamplingFields {
            n: req.n,
            temperature: req.temperature,
            top_p: req.top_p,
            top_k: req.top_k,
            min_p: req.min_p,
            seed: req.seed,
            presence_penalty: req.presence_penalty,
            frequency_penalty: req.frequency_penalty,
            repetition_penalty: req.repetition_penalty,
            logit_bias: req.logit_bias.as_ref(),
            logprobs: req.logprobs.map(|k| k as usize),
            logprobs_field: "logprobs",
            stop: req.stop.as_ref(),
            stop_token_ids: req.stop_token_ids.as_ref(),
            min_tokens: req.min_tokens,
            ignore_eos: req.ignore_eos,
        },
        model.as_ref(),
    )?;
    if req.max_tokens == Some(0) {
        return Err(field_error("max_tokens", "must be at least 1"));
    }
    // OpenAI's default for completions is 16; a model's configured default replaces it.
    let default_max = model.defaults().max_tokens.unwrap_or(16);
    let max_tokens = req.max_tokens.map_or(default_max, |m| m as usize);
    if let Some(min) = req.min_tokens.filter(|&m| m as usize > max_tokens) {
        return Err(field_error(
            "min_tokens",
            format_args!("{min} is more than max_tokens ({max_tokens})"),
        ));
    }
    let prompts = req.prompts(model.as_ref())?;
    let n = params.n;
    let mut fitted = Vec::with_capacity(prompts.len());
    for p in &prompts {
        fitted.push(fit_context(
            p.len(),
            req.max_tokens.map(|m| m as usize),
            Some(default_max),
            model.max_model_len(),
            "prompt",
        )?);
    }
    let cost = prompts
        .iter()
        .zip(&fitted)
        .map(|(p, &max)| Cost::generation(p.len(), max, n))
        .fold(Cost::default(), |all, one| all + one);
    let admission = state.limits.admit(&state.store, &principal, cost).await?;
    let weight = tenant_weight(&state, &principal).await?;
    let id = format!("cmpl-{}", random_base62(29));
    let charge = Charge {
        request_id: id.clone(),
        endpoint: Endpoint::Completions,
        model: model.name().to_owned(),
        prompt_tokens: prompts.iter().map(|p| p.len() as u64).sum(),
        max_completion_tokens: fitted.iter().map(|&m| (m * n) as u64).sum(),
    };
    let meter = state.metering.admit(&principal, charge).await?;
    let mut streams = Vec::with_capacity(prompts.len());
    for (i, (prompt, max)) in prompts.into_iter().zip(fitted).enumerate() {
        params.max_tokens = Some(max);
        let mut r = NewRequest::new(
            format!("{id}-{i}"),
            principal.tenant_id.clone(),
            prompt,
            params.clone(),
        );
        r.priority = req.priority.unwrap_or(0);
        r.tenant_weight = weight;
        // An error here drops the streams already submitted, which aborts them.
        streams.push(meter.attach(model.submit(r).await.map_err(scheduler_error)?));
    }
    let meta = ChunkMeta {
        id,
        created: unix_now(),
        model: model.name().to_owned(),
    };
    if req.stream.unwrap_or(false) {
        let include_usage = req
            .stream_options
            .as_ref()
            .and_then(|o| o.include_usage)
            .unwrap_or(false);
        let headers = *admission.headers();
        let sse = SseText::new(streams, meta, model, n, include_usage, admission);
        let mut res = HttpResponse::Ok()
            .content_type("text/event-stream")
            .insert_header(("cache-control", "no-cache"))
            .streaming(sse.into_stream());
        headers.apply(res.headers_mut());
        Ok(res)
    } else {
        if req.stream_options.is_some() {
            return Err(field_error(
                "stream_options",
                "only allowed with `stream: true`",
            ));
        }
        let mut choices = Vec::new();
        let mut total = Usage::default();
        for (p, stream) in streams.into_iter().enumerate() {
            let one = collect(
                stream,
                ChunkMeta {
                    id: String::new(),
                    created: 0,
                    model: String::new(),
                },
                model.as_ref(),
                n,
                &admission,
            )
            .await?;
            total.prompt_tokens += one.usage.prompt_tokens;
            total.completion_tokens += one.usage.completion_tokens;
            total.cached_tokens += one.usage.prompt_tokens_details.cached_tokens;
            for c in one.choices {
                let logprobs = c.logprobs.map(|l| {
                    let mut out = CompletionLogprobs::default();
                    let mut offset = 0;
                    for t in l.content {
                        out.text_offset.push(offset);
                        offset += t.token.len();
                        out.token_logprobs.push(t.logprob);
                        out.top_logprobs.push(
                            t.top_logprobs
                                .into_iter()
                                .map(|a| (a.token, a.logprob))
                                .collect(),
                        );
                        out.tokens.push(t.token);
                    }
                    out
                });
                choices.push(CompletionChoice {
                    index: p * n + c.index,
                    text: c.message.content,
                    logprobs,
                    finish_reason: c.finish_reason,
                });
            }
        }
        meter.settled().await;
        Ok(admission.respond(HttpResponse::Ok().json(Completion {
            id: meta.id,
            object: "text_completion",
            created: meta.created,
            model: meta.model,
            system_fingerprint: SYSTEM_FINGERPRINT,
            choices,
            usage: total.into(),
        })))
    }
}

type IndexedDeltas =
    futures_util::stream::SelectAll<Pin<Box<dyn futures_util::Stream<Item = (usize, Delta)>>>>;

/// The SSE side of a streamed text completion over one or several prompts.
struct SseText {
    deltas: IndexedDeltas,
    meta: ChunkMeta,
    model: Arc<dyn ServedModel>,
    n: usize,
    prompts: usize,
    include_usage: bool,
    usage: Usage,
    finished_prompts: usize,
    offsets: HashMap<usize, usize>,
    queue: VecDeque<Bytes>,
    done: bool,
    /// Held until the stream ends or the client goes away.
    admission: Admission,
}

impl SseText {
    fn new(
        streams: Vec<DeltaStream>,
        meta: ChunkMeta,
        model: Arc<dyn ServedModel>,
        n: usize,
        include_usage: bool,
        admission: Admission,
    ) -> Self {
        let prompts = streams.len();
        let deltas =
            futures_util::stream::select_all(streams.into_iter().enumerate().map(|(p, s)| {
                let stream = futures_util::stream::unfold(s, move |mut s| async move {
                    s.recv().await.map(|d| ((p, d), s))
                });
                Box::pin(stream) as Pin<Box<dyn futures_util::Stream<Item = (usize, Delta)>>>
            }));
        SseText {
            deltas,
            meta,
            model,
            n,
            prompts,
            include_usage,
            usage: Usage::default(),
            finished_prompts: 0,
            offsets: HashMap::new(),
            queue: VecDeque::new(),
            done: false,
            admission,
        }
    }

    fn chunk(&self, choices: Value, usage: Option<Value>) -> Value {
        let mut chunk = json!({
            "id": self.meta.id,
            "object": "text_completion",
            "created": self.meta.created,
            "model": self.meta.model,
            "system_fingerprint": SYSTEM_FINGERPRINT,
            "choices": choices,
        });
        if self.include_usage {
            chunk["usage"] = usage.unwrap_or(Value::Null);
        }
        chunk
    }

    fn push_delta(&mut self, prompt: usize, d: Delta) {
        self.admission.note(&d);
        let index = prompt * self.n + d.index;
        if let Some(u) = d.usage {
            self.usage.prompt_tokens += u.prompt_tokens;
            self.usage.completion_tokens += u.completion_tokens;
            self.usage.cached_tokens += u.cached_tokens;
            self.finished_prompts += 1;
        }
        let finish = match &d.finish_reason {
            None => None,
            Some(FinishReason::Stop) | Some(FinishReason::Length) => {
                d.finish_reason.as_ref().map(FinishReason::as_str)
            }
            Some(other) => {
                let err = generation_error(other);
                if let ApiError::Internal(cause) = &err {
                    tracing::error!(%cause, "generation failed mid-stream");
                }
                let body = serde_json::to_value(err.body()).unwrap_or(Value::Null);
                self.queue.push_back(event(&body));
                self.done = true;
                return;
            }
        };
        if d.text.is_empty() && d.logprobs.is_empty() && finish.is_none() {
            return;
        }
        let logprobs = (!d.logprobs.is_empty()).then(|| {
            let offset = self.offsets.entry(index).or_insert(0);
            let mut l = CompletionLogprobs::default();
            l.extend(self.model.as_ref(), &d.logprobs, offset);
            serde_json::to_value(l).unwrap_or(Value::Null)
        });
        let choice = json!({
            "index": index,
            "text": d.text,
            "logprobs": logprobs.unwrap_or(Value::Null),
            "finish_reason": finish,
        });
        let chunk = self.chunk(json!([choice]), None);
        self.queue.push_back(event(&chunk));
    }

    fn finish(&mut self) {
        if self.finished_prompts < self.prompts {
            let body =
                serde_json::to_value(ApiError::Internal("the engine stopped early".into()).body())
                    .unwrap_or(Value::Null);
            self.queue.push_back(event(&body));
        } else {
            if self.include_usage {
                let usage = serde_json::to_value(UsageObject::from(self.usage)).ok();
                let chunk = self.chunk(json!([]), usage);
                self.queue.push_back(event(&chunk));
            }
            self.queue
                .push_back(Bytes::from_static(b"data: [DONE]\n\n"));
        }
        self.done = true;
    }

    fn into_stream(
        self,
    ) -> impl futures_util::Stream<Item = Result<Bytes, actix_web::Error>> + 'static {
        use futures_util::StreamExt;
        futures_util::stream::unfold(self, |mut sse| async move {
            loop {
                if let Some(bytes) = sse.queue.pop_front() {
                    return Some((Ok(bytes), sse));
                }
                if sse.done {
                    return None;
                }
                match sse.deltas.next().await {
                    Some((p, d)) => sse.push_delta(p, d),
                    None => sse.finish(),
                }
            }
        })
    }
}

// ---------------------------------------------------------------------------------------------
// /v1/tokenize and /v1/detokenize (vLLM's shapes)

/// Text to tokenize (`prompt`), or chat messages rendered through the chat template first.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenizeRequest {
    #[schema(example = "smollm2-135m-instruct")]
    pub model: String,
    /// Plain text; give this or `messages`.
    pub prompt: Option<String>,
    pub messages: Option<Vec<ChatMessageIn>>,
    /// With `messages`: end with the assistant's turn opener (default true).
    pub add_generation_prompt: Option<bool>,
    /// With `prompt`: add BOS when the model uses one (default true).
    pub add_special_tokens: Option<bool>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenizeResponse {
    pub count: usize,
    pub max_model_len: usize,
    pub tokens: Vec<u32>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DetokenizeRequest {
    #[schema(example = "smollm2-135m-instruct")]
    pub model: String,
    pub tokens: Vec<u32>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DetokenizeResponse {
    /// The text of the tokens, special tokens included.
    pub prompt: String,
}

/// Tokenize text or chat messages with a served model's tokenizer (vLLM's `/tokenize`).
#[utoipa::path(post, path = "/v1/tokenize", tag = "Inference",
    request_body = TokenizeRequest,
    responses((status = 200, body = TokenizeResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 429, description = "The requests-per-minute limit was reached (`rate_limit_exceeded`)", body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn tokenize(
    state: web::Data<AppState>,
    principal: Principal,
    body: JsonBody<TokenizeRequest>,
) -> Result<HttpResponse, ApiError> {
    principal.require(Permission::Inference)?;
    let req = body.parse()?;
    let model = state.inference.model(&req.model)?;
    let admission = state
        .limits
        .admit(&state.store, &principal, Cost::requests_only())
        .await?;
    let tokens = match (&req.prompt, &req.messages) {
        (Some(text), None) => model.encode(text, req.add_special_tokens.unwrap_or(true))?,
        (None, Some(messages)) => {
            let chat = ChatCompletionRequest::messages_only(messages)?;
            model.chat_prompt(&chat, req.add_generation_prompt.unwrap_or(true))?
        }
        _ => {
            return Err(ApiError::bad_request(
                "Give exactly one of 'prompt' and 'messages'.",
                Some("prompt"),
            ))
        }
    };
    Ok(admission.respond(HttpResponse::Ok().json(TokenizeResponse {
        count: tokens.len(),
        max_model_len: model.max_model_len(),
        tokens,
    })))
}

/// Turn token ids back into text (vLLM's `/detokenize`).
#[utoipa::path(post, path = "/v1/detokenize", tag = "Inference",
    request_body = DetokenizeRequest,
    responses((status = 200, body = DetokenizeResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 429, description = "The requests-per-minute limit was reached (`rate_limit_exceeded`)", body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn detokenize(
    state: web::Data<AppState>,
    principal: Principal,
    body: JsonBody<DetokenizeRequest>,
) -> Result<HttpResponse, ApiError> {
    principal.require(Permission::Inference)?;
    let req = body.parse()?;
    let model = state.inference.model(&req.model)?;
    let admission = state
        .limits
        .admit(&state.store, &principal, Cost::requests_only())
        .await?;
    let vocab = model.vocab_size();
    if let Some(bad) = req.tokens.iter().find(|&&id| id as usize >= vocab) {
        return Err(field_error(
            "tokens",
            format_args!("{bad} is not a token id below {vocab}"),
        ));
    }
    Ok(
        admission.respond(HttpResponse::Ok().json(DetokenizeResponse {
            prompt: model.decode(&req.tokens)?,
        })),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_tokens_must_fit_beside_the_prompt() {
        assert_eq!(fit_context(10, Some(5), None, 100, "prompt").unwrap(), 5);
        assert_eq!(fit_context(10, None, None, 100, "prompt").unwrap(), 90);
        assert_eq!(fit_context(10, None, Some(16), 100, "prompt").unwrap(), 16);
        assert_eq!(fit_context(95, None, Some(16), 100, "prompt").unwrap(), 5);
        assert_eq!(
            fit_context(10, Some(50), Some(16), 100, "prompt").unwrap(),
            50
        );
        let err = fit_context(96, Some(5), None, 100, "prompt").unwrap_err();
        assert_eq!(err.body().error.code, "context_length_exceeded");
        assert_eq!(err.body().error.param.as_deref(), Some("prompt"));
        assert!(fit_context(100, None, None, 100, "messages").is_err());
        assert!(fit_context(100, None, Some(4), 100, "messages").is_err());
    }
}
