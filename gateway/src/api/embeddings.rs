//! `/v1/embeddings`: the served model's mean-pooled, L2-normalized final hidden states (after
//! the output norm), as float arrays or base64 little-endian f32, in OpenAI's shapes.
//!
//! These are the decoder's own hidden states, not a model trained for retrieval: useful for
//! similarity within what the chat model knows, documented as such.

use actix_web::{web, HttpResponse};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::body::JsonBody;
use super::inference::PromptInput;
use crate::auth::secret::random_base62;
use crate::auth::{Permission, Principal};
use crate::error::{ApiError, ErrorBody};
use crate::generation::{self, Admitted, Prompt, PromptBudget, Work};
use crate::inference::ServedModel;
use crate::server::AppState;
use crate::store::usage::Endpoint;
use protocol::ForwardedPrompt;

/// Most inputs in one request (OpenAI allows 2048; a CPU model is slower).
const MAX_INPUTS: usize = 256;
/// Most tokens over all inputs of one request.
const MAX_TOTAL_TOKENS: usize = 65_536;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmbeddingRequest {
    #[schema(example = "smollm2-135m-instruct")]
    pub model: String,
    /// One string, several strings, one token-id list or several.
    pub input: PromptInput,
    /// `float` (default) or `base64` (little-endian f32 bytes).
    #[schema(pattern = "^(float|base64)$")]
    pub encoding_format: Option<String>,
    /// Only the model's own size is accepted (no truncation is performed).
    pub dimensions: Option<usize>,
    /// An end-user id for abuse monitoring; recorded nowhere yet.
    pub user: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EmbeddingObject {
    /// Always `embedding`.
    pub object: &'static str,
    pub index: usize,
    /// Floats, or a base64 string with `encoding_format: base64`.
    #[schema(value_type = EmbeddingValue)]
    pub embedding: Value,
}

/// An embedding in the encoding the request asked for (the OpenAPI document's shape of
/// `EmbeddingObject.embedding`, which is built as JSON).
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
#[allow(dead_code)]
pub enum EmbeddingValue {
    /// `encoding_format: float` (the default).
    Floats(Vec<f32>),
    /// `encoding_format: base64`: the little-endian f32 bytes.
    Base64(String),
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EmbeddingUsage {
    pub prompt_tokens: usize,
    pub total_tokens: usize,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EmbeddingList {
    /// Always `list`.
    pub object: &'static str,
    pub data: Vec<EmbeddingObject>,
    pub model: String,
    pub usage: EmbeddingUsage,
}

/// Create embeddings of strings or token ids with a served model.
#[utoipa::path(post, path = "/v1/embeddings", tag = "Inference",
    request_body = EmbeddingRequest,
    responses((status = 200, body = EmbeddingList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 429, description = "A rate limit was reached (`rate_limit_exceeded`, with `Retry-After`), or the organization's credits do not cover the request (`insufficient_quota`)", body = ErrorBody),
        (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create_embeddings(
    state: web::Data<AppState>,
    principal: Principal,
    body: JsonBody<EmbeddingRequest>,
) -> Result<HttpResponse, ApiError> {
    principal.require(Permission::Inference)?;
    let req = body.parse()?;
    let base64 = encoding_is_base64(&req)?;
    let model = state.model_for(&principal, &req.model)?;
    let inputs = if model.owns_tokenizer() {
        forwarded_inputs(&req)?
    } else {
        token_inputs(&req, model.as_ref())?
    };
    let request_id = format!("embd-{}", random_base62(29));
    let budgets: Vec<PromptBudget> = inputs
        .iter()
        .map(|p| PromptBudget {
            prompt_tokens: p.tokens(),
            max_tokens: 0,
        })
        .collect();
    let work = Work {
        model: model.clone(),
        endpoint: Endpoint::Embeddings,
        request_id: &request_id,
        prompts: &budgets,
        n: 1,
        priority: 0,
    };
    let Admitted {
        admission, meter, ..
    } = generation::admit(&state, &principal, work).await?;
    meter.running();
    let (data, total) = match embed_all(model.as_ref(), inputs, base64).await {
        Ok(done) => done,
        Err(e) => {
            meter.fail();
            return Err(e);
        }
    };
    meter.complete(total as u64, 0).await;
    Ok(admission.respond(HttpResponse::Ok().json(embedding_list(model.name(), data, total))))
}

/// Whether `encoding_format` asks for base64 (else floats).
pub(crate) fn encoding_is_base64(req: &EmbeddingRequest) -> Result<bool, ApiError> {
    match req.encoding_format.as_deref() {
        None | Some("float") => Ok(false),
        Some("base64") => Ok(true),
        Some(other) => Err(ApiError::field(
            "encoding_format",
            format_args!("'{other}' is not one of float, base64"),
        )),
    }
}

/// The answer: `data` from `model`, which took `total` prompt tokens.
pub(crate) fn embedding_list(
    model: &str,
    data: Vec<EmbeddingObject>,
    total: usize,
) -> EmbeddingList {
    EmbeddingList {
        object: "list",
        data,
        model: model.to_owned(),
        usage: EmbeddingUsage {
            prompt_tokens: total,
            total_tokens: total,
        },
    }
}

/// The inputs as token lists, each non-empty, within the context and the vocabulary.
pub(crate) fn token_inputs(
    req: &EmbeddingRequest,
    model: &dyn ServedModel,
) -> Result<Vec<Prompt>, ApiError> {
    if let Some(d) = req.dimensions.filter(|&d| d != model.embedding_size()) {
        return Err(ApiError::field(
            "dimensions",
            format_args!("{d} differs from the model's {}", model.embedding_size()),
        ));
    }
    let inputs = req.input.token_lists(model)?;
    check_input_count(inputs.len())?;
    let vocab = model.vocab_size();
    let mut total = 0;
    for (i, ids) in inputs.iter().enumerate() {
        if ids.is_empty() {
            return Err(ApiError::field("input", format_args!("input {i} is empty")));
        }
        if ids.len() > model.max_model_len() {
            return Err(ApiError::bad_request(
                format!(
                    "Input {i} has {} tokens; this model's maximum context length is {}.",
                    ids.len(),
                    model.max_model_len()
                ),
                Some("input"),
            ));
        }
        if let Some(bad) = ids.iter().find(|&&id| id as usize >= vocab) {
            return Err(ApiError::field(
                "input",
                format_args!("{bad} is not a token id below {vocab}"),
            ));
        }
        total += ids.len();
    }
    if total > MAX_TOTAL_TOKENS {
        return Err(ApiError::field(
            "input",
            format_args!("{total} tokens in all; at most {MAX_TOTAL_TOKENS} per request"),
        ));
    }
    Ok(inputs.into_iter().map(Prompt::Tokens).collect())
}

/// The inputs as given, for a model that tokenizes them itself.
pub(crate) fn forwarded_inputs(req: &EmbeddingRequest) -> Result<Vec<Prompt>, ApiError> {
    if req.dimensions.is_some() {
        return Err(ApiError::bad_request(
            format!(
                "'dimensions' is not supported for the model '{}', which an upstream server \
                 serves.",
                req.model
            ),
            Some("dimensions"),
        ));
    }
    let inputs: Vec<ForwardedPrompt> = match &req.input {
        PromptInput::Text(t) => vec![ForwardedPrompt::Text(t.clone())],
        PromptInput::Texts(ts) => ts.iter().cloned().map(ForwardedPrompt::Text).collect(),
        PromptInput::Tokens(ids) => vec![ForwardedPrompt::Tokens(ids.clone())],
        PromptInput::TokenLists(l) => l.iter().cloned().map(ForwardedPrompt::Tokens).collect(),
    };
    check_input_count(inputs.len())?;
    for (i, input) in inputs.iter().enumerate() {
        let empty = match input {
            ForwardedPrompt::Text(t) => t.is_empty(),
            ForwardedPrompt::Tokens(ids) => ids.is_empty(),
            ForwardedPrompt::Chat(m) => m.is_empty(),
        };
        if empty {
            return Err(ApiError::field("input", format_args!("input {i} is empty")));
        }
    }
    Ok(inputs.into_iter().map(Prompt::Forwarded).collect())
}

fn check_input_count(count: usize) -> Result<(), ApiError> {
    if count == 0 || count > MAX_INPUTS {
        return Err(ApiError::field(
            "input",
            format_args!("give between 1 and {MAX_INPUTS} inputs"),
        ));
    }
    Ok(())
}

/// The embedding of every input, in order, and the prompt tokens they took.
pub(crate) async fn embed_all(
    model: &dyn ServedModel,
    inputs: Vec<Prompt>,
    base64: bool,
) -> Result<(Vec<EmbeddingObject>, usize), ApiError> {
    let mut vectors = Vec::with_capacity(inputs.len());
    let mut forwarded = Vec::new();
    let mut total = 0;
    for input in inputs {
        match input {
            Prompt::Tokens(ids) => {
                total += ids.len();
                vectors.push(model.embed(ids).await?);
            }
            Prompt::Forwarded(p) => forwarded.push(p),
        }
    }
    if !forwarded.is_empty() {
        let upstream = model.embed_forwarded(forwarded).await?;
        vectors.extend(upstream.vectors);
        total += upstream.prompt_tokens;
    }
    let mut data = Vec::with_capacity(vectors.len());
    for (index, vector) in vectors.into_iter().enumerate() {
        let embedding = if base64 {
            let bytes: Vec<u8> = vector.iter().flat_map(|v| v.to_le_bytes()).collect();
            Value::String(base64::engine::general_purpose::STANDARD.encode(bytes))
        } else {
            serde_json::to_value(&vector).map_err(|e| ApiError::Internal(e.to_string()))?
        };
        data.push(EmbeddingObject {
            object: "embedding",
            index,
            embedding,
        });
    }
    Ok((data, total))
}
