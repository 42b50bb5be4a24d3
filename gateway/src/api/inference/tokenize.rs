//! vLLM's `/v1/tokenize` and `/v1/detokenize`: a served model's tokenizer and chat template,
//! counted against the requests-per-minute limit only.

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::request::{chat_messages, ChatMessageIn};
use super::tools::{tool_definitions, ChatTool};
use crate::api::body::JsonBody;
use crate::auth::{Permission, Principal};
use crate::error::{ApiError, ErrorBody};
use crate::limits::Cost;
use crate::server::AppState;

/// Text to tokenize (`prompt`), or chat messages rendered through the chat template first.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenizeRequest {
    #[schema(example = "smollm2-135m-instruct")]
    pub model: String,
    /// Plain text; give this or `messages`.
    pub prompt: Option<String>,
    /// Chat messages (at least one); give this or `prompt`.
    #[schema(min_items = 1)]
    pub messages: Option<Vec<ChatMessageIn>>,
    /// With `messages`: functions the template offers the model, rendered as a chat
    /// completion with these `tools` renders them.
    pub tools: Option<Vec<ChatTool>>,
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
    let model = state.model_for(&principal, &req.model)?;
    let admission = state
        .limits
        .admit(&state.store, &principal, Cost::requests_only())
        .await?;
    let tokens = match (&req.prompt, &req.messages) {
        (Some(_), None) if req.tools.is_some() => {
            return Err(ApiError::field("tools", "is only allowed with `messages`"))
        }
        (Some(text), None) => model.encode(text, req.add_special_tokens.unwrap_or(true))?,
        (None, Some(messages)) => {
            let chat = chat_messages(messages)?;
            let tools = match &req.tools {
                Some(tools) => tool_definitions(tools)?,
                None => Vec::new(),
            };
            model.chat_prompt(&chat, &tools, req.add_generation_prompt.unwrap_or(true))?
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
    let model = state.model_for(&principal, &req.model)?;
    let admission = state
        .limits
        .admit(&state.store, &principal, Cost::requests_only())
        .await?;
    let vocab = model.vocab_size();
    if let Some(bad) = req.tokens.iter().find(|&&id| id as usize >= vocab) {
        return Err(ApiError::field(
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
