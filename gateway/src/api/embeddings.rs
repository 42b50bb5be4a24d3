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
use crate::generation::{self, Admitted, PromptBudget, Work};
use crate::inference::ServedModel;
use crate::server::AppState;
use crate::store::usage::Endpoint;

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
    #[schema(value_type = Object)]
    pub embedding: Value,
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
    let base64 = match req.encoding_format.as_deref() {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => {
            return Err(ApiError::field(
                "encoding_format",
                format_args!("'{other}' is not one of float, base64"),
            ))
        }
    };
    let model = state.inference.model(&req.model)?;
    if let Some(d) = req.dimensions.filter(|&d| d != model.embedding_size()) {
        return Err(ApiError::field(
            "dimensions",
            format_args!("{d} differs from the model's {}", model.embedding_size()),
        ));
    }
    let inputs = req.input.token_lists(&*model)?;
    if inputs.is_empty() || inputs.len() > MAX_INPUTS {
        return Err(ApiError::field(
            "input",
            format_args!("give between 1 and {MAX_INPUTS} inputs"),
        ));
    }
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
    let request_id = format!("embd-{}", random_base62(29));
    let budgets: Vec<PromptBudget> = inputs
        .iter()
        .map(|ids| PromptBudget {
            prompt_tokens: ids.len(),
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
    let data = match embed_all(model.as_ref(), inputs, base64).await {
        Ok(data) => data,
        Err(e) => {
            meter.fail();
            return Err(e);
        }
    };
    meter.complete(total as u64, 0).await;
    Ok(admission.respond(HttpResponse::Ok().json(EmbeddingList {
        object: "list",
        data,
        model: model.name().to_owned(),
        usage: EmbeddingUsage {
            prompt_tokens: total,
            total_tokens: total,
        },
    })))
}

/// The embedding of every input, in order.
async fn embed_all(
    model: &dyn ServedModel,
    inputs: Vec<Vec<u32>>,
    base64: bool,
) -> Result<Vec<EmbeddingObject>, ApiError> {
    let mut data = Vec::with_capacity(inputs.len());
    for (index, ids) in inputs.into_iter().enumerate() {
        let vector = model.embed(ids).await?;
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
    Ok(data)
}
