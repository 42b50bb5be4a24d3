//! The worker protocol: how a gateway hands a Starfire worker a request it has already
//! tokenized, over plain HTTP and JSON.
//!
//! - `POST /v1/worker/generate` with a [`GenerateBody`] answers `200` with
//!   `application/x-ndjson`: one [`Delta`](crate::Delta) per line, the last one carrying
//!   `usage`; or, when the request is refused before it starts, a status and an [`ErrorAnswer`]
//!   (the [`BackendError`] as data, so the gateway answers exactly as it would in process).
//!   Closing the connection aborts the request.
//! - `POST /v1/worker/embed` with an [`EmbedBody`] answers an [`EmbedAnswer`].
//! - `GET /v1/worker/models` answers the served models as [`WorkerModel`]s.
//!
//! The tenant, its fairness weight, the priority and the request id travel in headers
//! (`TENANT_HEADER`, ...), which a worker reads only from a caller holding its token.

use serde::{Deserialize, Serialize};

use crate::error::BackendError;
use crate::sampling::SamplingParams;

pub const GENERATE_PATH: &str = "/v1/worker/generate";
pub const EMBED_PATH: &str = "/v1/worker/embed";
pub const MODELS_PATH: &str = "/v1/worker/models";

/// Who pays (fairness and prefix-cache isolation are per tenant).
pub const TENANT_HEADER: &str = "x-starfire-tenant";
/// The tenant's fairness weight, a positive number.
pub const WEIGHT_HEADER: &str = "x-starfire-tenant-weight";
/// Lower runs earlier inside the tenant (vLLM's convention).
pub const PRIORITY_HEADER: &str = "x-starfire-priority";
/// The gateway's request id, also the worker's.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// The media type of a generation's stream of deltas.
pub const NDJSON: &str = "application/x-ndjson";

/// A tokenized request for one model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenerateBody {
    pub model: String,
    pub prompt_token_ids: Vec<u32>,
    pub params: SamplingParams,
    #[serde(default)]
    pub cache_salt: Option<String>,
}

/// Token ids to embed with one model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmbedBody {
    pub model: String,
    pub tokens: Vec<u32>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EmbedAnswer {
    pub embedding: Vec<f32>,
}

/// A model a worker serves, with what a gateway needs to know of it before sending requests.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WorkerModel {
    pub id: String,
    pub created: u64,
    pub max_model_len: usize,
    pub vocab_size: usize,
    pub embedding_size: usize,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WorkerModels {
    pub data: Vec<WorkerModel>,
}

/// A refusal, as the worker's backend gave it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ErrorAnswer {
    pub error: BackendError,
}

impl BackendError {
    /// The HTTP status a worker answers this refusal with (a gateway reads the body, not the
    /// status; the status is for everything else on the path: proxies, logs, retries).
    pub fn http_status(&self) -> u16 {
        match self {
            BackendError::NotLoaded(_) | BackendError::ShuttingDown => 503,
            BackendError::ModelNotFound(_) => 404,
            BackendError::InvalidParam(_)
            | BackendError::InvalidRequest(_)
            | BackendError::Unsupported { .. }
            | BackendError::ContextLengthExceeded(_) => 400,
            BackendError::QueueFull { .. } => 429,
            BackendError::Internal(_) => 500,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Delta, FinishReason, InvalidParam, QueueScope, StopReason, TokenLogprob, Usage};

    #[test]
    fn errors_and_deltas_survive_the_wire() {
        for error in [
            BackendError::InvalidParam(InvalidParam::new("top_p", "must be in (0, 1]")),
            BackendError::QueueFull {
                scope: QueueScope::Tenant,
                what: "8 requests".into(),
            },
            BackendError::Unsupported {
                message: "no template".into(),
                field: "model".into(),
            },
            BackendError::ShuttingDown,
        ] {
            let answer = ErrorAnswer { error };
            let text = serde_json::to_string(&answer).unwrap();
            assert_eq!(serde_json::from_str::<ErrorAnswer>(&text).unwrap(), answer);
        }
        let delta = Delta {
            token_ids: vec![1, 2],
            text: "hi".into(),
            logprobs: vec![TokenLogprob {
                token_id: 1,
                logprob: -0.5,
                top: vec![(1, -0.5), (7, -1.25)],
            }],
            finish_reason: Some(FinishReason::Error("step failed".into())),
            stop_reason: Some(StopReason::Text("\n".into())),
            usage: Some(Usage {
                prompt_tokens: 3,
                completion_tokens: 2,
                cached_tokens: 1,
                num_preemptions: 0,
            }),
            ..Delta::empty("r", 1)
        };
        let text = serde_json::to_string(&delta).unwrap();
        assert!(!text.contains('\n'), "one line of NDJSON");
        assert_eq!(serde_json::from_str::<Delta>(&text).unwrap(), delta);
    }
}
