//! The traits the gateway serves models through. The in-process engine implements them in the
//! gateway; a backend out of process (a pool of workers, an OpenAI-compatible upstream)
//! implements them from this crate alone.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use serde::Deserialize;

use crate::chat::{ChatMessage, ToolDefinition};
use crate::error::BackendError;
use crate::request::{ForwardedPrompt, ForwardedRequest, NewRequest};
use crate::sampling::StructuredOutput;
use crate::stream::DeltaStream;

/// A boxed future, for the object-safe traits below.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One entry of `/v1/models`.
#[derive(Debug, Clone)]
pub struct ModelCard {
    pub id: String,
    /// Unix seconds when the model was loaded.
    pub created: u64,
}

/// Sampling values a model uses where a request leaves the field out (a request's own value
/// always wins; whatever is unset here falls back to vLLM's defaults).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SamplingDefaults {
    pub temperature: Option<f32>,
    pub top_p: Option<f32>,
    pub top_k: Option<i32>,
    pub min_p: Option<f32>,
    pub presence_penalty: Option<f32>,
    pub frequency_penalty: Option<f32>,
    pub repetition_penalty: Option<f32>,
    /// The completion length when a request gives none (still capped by what the context
    /// leaves beside the prompt).
    pub max_tokens: Option<usize>,
}

/// Embeddings of several inputs, in input order, and the prompt tokens they took.
#[derive(Debug, Clone, PartialEq)]
pub struct Embeddings {
    pub vectors: Vec<Vec<f32>>,
    pub prompt_tokens: usize,
}

/// What serves the inference routes.
pub trait InferenceBackend: Send + Sync {
    /// The served models, for `/v1/models`; `Err(NotLoaded)` when there is none.
    fn models(&self) -> Result<Vec<ModelCard>, BackendError>;
    /// The model called `name` (matched without regard to case).
    fn model(&self, name: &str) -> Result<Arc<dyn ServedModel>, BackendError>;
    /// The backend's own metrics (the scheduler's `starfire:` series) in Prometheus text.
    fn prometheus(&self) -> String {
        String::new()
    }
    /// Why a model this backend runs can serve nothing more (its device failed), naming it;
    /// `None` while every one serves. A worker is then not ready.
    fn out_of_service(&self) -> Option<String> {
        None
    }
}

/// One served model: what the routes need to turn a request into prompt tokens and run it.
pub trait ServedModel: Send + Sync {
    /// The name clients use and responses carry.
    fn name(&self) -> &str;
    /// The price catalog's name for this model's tokens when it is not `name` (a private
    /// deployment is priced as `deployment:<id>`, whatever the organization calls it).
    fn price_key(&self) -> Option<&str> {
        None
    }
    /// Longest prompt plus output.
    fn max_model_len(&self) -> usize;
    fn vocab_size(&self) -> usize;
    /// Sampling values for fields a request leaves out (from the model's configuration).
    fn defaults(&self) -> &SamplingDefaults;
    /// Renders chat messages, and the functions the model may call, through the model's chat
    /// template (with the assistant's turn opener when `add_generation_prompt`) and tokenizes
    /// the result.
    fn chat_prompt(
        &self,
        messages: &[ChatMessage],
        tools: &[ToolDefinition],
        add_generation_prompt: bool,
    ) -> Result<Vec<u32>, BackendError>;
    /// Tokenizes plain text (with BOS when the model wants one and `add_special`).
    fn encode(&self, text: &str, add_special: bool) -> Result<Vec<u32>, BackendError>;
    /// The text of token ids (special tokens included).
    fn decode(&self, ids: &[u32]) -> Result<String, BackendError>;
    /// The text of one token, for logprob listings.
    fn token_text(&self, id: u32) -> String;
    /// Queues a request; its deltas arrive on the stream, which aborts the request when dropped.
    fn submit(&self, req: NewRequest) -> BoxFuture<'_, Result<DeltaStream, BackendError>>;
    /// The embedding of `tokens`: mean-pooled, L2-normalized final hidden states (after the
    /// output norm), computed off the async runtime and outside the serving KV cache.
    fn embed(&self, tokens: Vec<u32>) -> BoxFuture<'_, Result<Vec<f32>, BackendError>>;
    /// Length of one embedding vector.
    fn embedding_size(&self) -> usize;
    /// Checks that the model can enforce `spec` (a structured output; `field` is the request
    /// field that asked for it): `InvalidParam` names what it cannot enforce.
    fn check_structured(&self, spec: &StructuredOutput, field: &str) -> Result<(), BackendError> {
        let _ = spec;
        Err(BackendError::Unsupported {
            message: format!(
                "The model '{}' does not support structured outputs.",
                self.name()
            ),
            field: field.to_owned(),
        })
    }
    /// Whether the model tokenizes prompts itself (an OpenAI-compatible upstream). Routes then
    /// hand it the request's messages or text through [`ServedModel::submit_forwarded`] instead
    /// of token ids, count the prompt by an estimate until the model's usage gives the real
    /// count, and refuse what needs its vocabulary here (logprobs); `chat_prompt`, `encode`
    /// and `decode` are not available.
    fn owns_tokenizer(&self) -> bool {
        false
    }
    /// Queues a request whose prompt the model tokenizes itself (see `owns_tokenizer`).
    fn submit_forwarded(
        &self,
        req: ForwardedRequest,
    ) -> BoxFuture<'_, Result<DeltaStream, BackendError>> {
        let _ = req;
        Box::pin(async move {
            Err(BackendError::Internal(format!(
                "the model '{}' takes token ids, not forwarded prompts",
                self.name()
            )))
        })
    }
    /// Embeddings of texts the model tokenizes itself, with the prompt tokens it counted.
    fn embed_forwarded(
        &self,
        input: Vec<ForwardedPrompt>,
    ) -> BoxFuture<'_, Result<Embeddings, BackendError>> {
        let _ = input;
        Box::pin(async move {
            Err(BackendError::Internal(format!(
                "the model '{}' takes token ids, not forwarded prompts",
                self.name()
            )))
        })
    }
}
