//! The seam between the HTTP routes and whatever runs the model.
//!
//! Routes see an [`InferenceBackend`] (which models are served, and each one as a
//! [`ServedModel`]: its tokenizer, chat template, context length, and `submit`). The one
//! implementation today is [`InProcessBackend`]: the engine's `Model` and the scheduler's
//! `EngineLoop` in this process, one loop per served model (see `registry`). [`Unloaded`] stands in when no model could be found, so that
//! `starfire serve` still starts (control plane) and inference routes answer 503
//! `model_not_loaded`.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;

use engine::{ChatMessage, Model};
use scheduler::model_executor::{config_for_model, detokenizer_for, EngineExecutor};
use scheduler::{DeltaStream, EngineLoop, NewRequest, QueueScope, SchedulerConfig, SchedulerError};

use crate::error::ApiError;
use crate::registry::SamplingDefaults;

/// A boxed future, for the object-safe traits below.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One entry of `/v1/models`.
#[derive(Debug, Clone)]
pub struct ModelCard {
    pub id: String,
    /// Unix seconds when the model was loaded.
    pub created: u64,
}

/// Why a backend could not serve a request before generation started.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// No model is loaded at all; the message says how to get one.
    #[error("{0}")]
    NotLoaded(String),
    /// The requested model is not among the served ones.
    #[error("The model '{0}' does not exist or you do not have access to it.")]
    ModelNotFound(String),
    /// The scheduler refused the request.
    #[error(transparent)]
    Scheduler(#[from] SchedulerError),
}

impl From<BackendError> for ApiError {
    fn from(err: BackendError) -> Self {
        match err {
            BackendError::NotLoaded(message) => ApiError::Unavailable {
                message,
                code: "model_not_loaded",
                retry_after: None,
            },
            BackendError::ModelNotFound(_) => ApiError::ModelNotFound(err.to_string()),
            BackendError::Scheduler(e) => scheduler_error(e),
        }
    }
}

/// The scheduler's admission errors as HTTP answers: a tenant over its share gets 429, a
/// saturated server 503, both with `Retry-After`.
pub fn scheduler_error(err: SchedulerError) -> ApiError {
    match err {
        SchedulerError::QueueFull {
            scope: QueueScope::Tenant,
            what,
        } => ApiError::RateLimited {
            message: format!(
                "Too many queued requests for this organization ({what}); retry shortly."
            ),
            retry_after: Some(1),
        },
        SchedulerError::QueueFull {
            scope: QueueScope::Global,
            what,
        } => ApiError::Unavailable {
            message: format!("The server is overloaded ({what}); retry shortly."),
            code: "server_overloaded",
            retry_after: Some(1),
        },
        SchedulerError::ShuttingDown => ApiError::Unavailable {
            message: "The server is shutting down.".to_owned(),
            code: "shutting_down",
            retry_after: Some(1),
        },
        SchedulerError::PromptTooLong { .. } | SchedulerError::TooLargeForCache { .. } => {
            ApiError::ContextLengthExceeded {
                message: format!("{err}."),
                param: "messages",
            }
        }
        SchedulerError::TooManyChoices { .. } => ApiError::invalid("n", format!("{err}.")),
        SchedulerError::InvalidRequest(message) => ApiError::bad_request(message, None),
        other => ApiError::Internal(other.to_string()),
    }
}

/// What serves the inference routes.
pub trait InferenceBackend: Send + Sync {
    /// The served models, for `/v1/models`; `Err(NotLoaded)` when there is none.
    fn models(&self) -> Result<Vec<ModelCard>, BackendError>;
    /// The model called `name` (matched without regard to case).
    fn model(&self, name: &str) -> Result<Arc<dyn ServedModel>, BackendError>;
}

/// One served model: what the routes need to turn a request into prompt tokens and run it.
pub trait ServedModel: Send + Sync {
    /// The name clients use and responses carry.
    fn name(&self) -> &str;
    /// Longest prompt plus output.
    fn max_model_len(&self) -> usize;
    fn vocab_size(&self) -> usize;
    /// Sampling values for fields a request leaves out (from the model's configuration).
    fn defaults(&self) -> &SamplingDefaults;
    /// Renders chat messages through the model's chat template (with the assistant's turn
    /// opener when `add_generation_prompt`) and tokenizes the result.
    fn chat_prompt(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
    ) -> Result<Vec<u32>, ApiError>;
    /// Tokenizes plain text (with BOS when the model wants one and `add_special`).
    fn encode(&self, text: &str, add_special: bool) -> Result<Vec<u32>, ApiError>;
    /// The text of token ids (special tokens included).
    fn decode(&self, ids: &[u32]) -> Result<String, ApiError>;
    /// The text of one token, for logprob listings.
    fn token_text(&self, id: u32) -> String;
    /// Queues a request; its deltas arrive on the stream, which aborts the request when dropped.
    fn submit(&self, req: NewRequest) -> BoxFuture<'_, Result<DeltaStream, SchedulerError>>;
    /// The embedding of `tokens`: mean-pooled, L2-normalized final hidden states (after the
    /// output norm), computed off the async runtime and outside the serving KV cache.
    fn embed(&self, tokens: Vec<u32>) -> BoxFuture<'_, Result<Vec<f32>, ApiError>>;
    /// Length of one embedding vector.
    fn embedding_size(&self) -> usize;
}

/// The backend when no model is loaded: every inference route answers 503.
pub struct Unloaded {
    pub message: String,
}

impl Unloaded {
    /// The answer for a model file that is not there.
    pub fn missing(path: &Path) -> Self {
        Unloaded {
            message: format!(
                "No model is loaded: {} does not exist. Run `starfire model fetch` to download \
                 the default model (or set `model_path`), then restart `starfire serve`.",
                path.display()
            ),
        }
    }
}

impl InferenceBackend for Unloaded {
    fn models(&self) -> Result<Vec<ModelCard>, BackendError> {
        Err(BackendError::NotLoaded(self.message.clone()))
    }

    fn model(&self, _name: &str) -> Result<Arc<dyn ServedModel>, BackendError> {
        Err(BackendError::NotLoaded(self.message.clone()))
    }
}

/// How one model is served in process.
#[derive(Debug, Clone)]
pub struct ModelOptions {
    /// The name clients use.
    pub name: String,
    /// Batching and admission settings; `max_model_len` caps the model's own context length.
    pub scheduler: SchedulerConfig,
    /// Bytes of KV cache.
    pub kv_cache_memory: u64,
    /// Sampling values for fields a request leaves out.
    pub defaults: SamplingDefaults,
}

impl ModelOptions {
    /// Default scheduler settings and sampling defaults.
    pub fn new(name: impl Into<String>, kv_cache_memory: u64) -> Self {
        ModelOptions {
            name: name.into(),
            scheduler: SchedulerConfig::default(),
            kv_cache_memory,
            defaults: SamplingDefaults::default(),
        }
    }
}

/// The engine and scheduler in this process: one engine loop per served model.
pub struct InProcessBackend {
    served: Vec<Arc<InProcessModel>>,
}

struct InProcessModel {
    name: String,
    created: u64,
    model: Arc<Model>,
    max_model_len: usize,
    defaults: SamplingDefaults,
    engine: EngineLoop,
}

impl InProcessBackend {
    /// Starts the engine loop for `model`, served as `name`, with a KV cache of
    /// `kv_cache_memory` bytes.
    pub fn start(
        name: impl Into<String>,
        model: Arc<Model>,
        kv_cache_memory: u64,
    ) -> Result<Self, SchedulerError> {
        Self::start_with(name, model, SchedulerConfig::default(), kv_cache_memory)
    }

    /// `start` with scheduler settings (batching, admission limits) other than the defaults.
    pub fn start_with(
        name: impl Into<String>,
        model: Arc<Model>,
        base: SchedulerConfig,
        kv_cache_memory: u64,
    ) -> Result<Self, SchedulerError> {
        let mut options = ModelOptions::new(name, kv_cache_memory);
        options.scheduler = base;
        Self::serve(vec![(options, model)]).map_err(|(_, e)| e)
    }

    /// Starts one engine loop per model. On failure, says which model failed (the loops
    /// already started stop when dropped).
    pub fn serve(
        models: Vec<(ModelOptions, Arc<Model>)>,
    ) -> Result<Self, (String, SchedulerError)> {
        let created = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut served = Vec::with_capacity(models.len());
        for (options, model) in models {
            let config = config_for_model(&model, options.scheduler, options.kv_cache_memory);
            let max_model_len = config.max_model_len;
            let m = model.clone();
            let c = config.clone();
            let engine = EngineLoop::spawn_with(config, detokenizer_for(&model), move || {
                EngineExecutor::new(m, &c)
            })
            .map_err(|e| (options.name.clone(), e))?;
            served.push(Arc::new(InProcessModel {
                name: options.name,
                created,
                model,
                max_model_len,
                defaults: options.defaults,
                engine,
            }));
        }
        Ok(InProcessBackend { served })
    }

    /// The first model's engine loop's latest metrics (scheduler gauges and counters).
    pub fn metrics(&self) -> scheduler::MetricsSnapshot {
        self.served[0].engine.metrics()
    }

    /// The metrics of the model served as `name`.
    pub fn metrics_of(&self, name: &str) -> Option<scheduler::MetricsSnapshot> {
        self.find(name).map(|m| m.engine.metrics())
    }

    /// The first loaded model (for tests that compare against the engine directly).
    pub fn engine_model(&self) -> &Arc<Model> {
        &self.served[0].model
    }

    fn find(&self, name: &str) -> Option<&Arc<InProcessModel>> {
        self.served
            .iter()
            .find(|m| name.eq_ignore_ascii_case(&m.name))
    }
}

impl InferenceBackend for InProcessBackend {
    fn models(&self) -> Result<Vec<ModelCard>, BackendError> {
        Ok(self
            .served
            .iter()
            .map(|m| ModelCard {
                id: m.name.clone(),
                created: m.created,
            })
            .collect())
    }

    fn model(&self, name: &str) -> Result<Arc<dyn ServedModel>, BackendError> {
        match self.find(name) {
            Some(m) => Ok(m.clone()),
            None => Err(BackendError::ModelNotFound(name.to_owned())),
        }
    }
}

impl ServedModel for InProcessModel {
    fn name(&self) -> &str {
        &self.name
    }

    fn max_model_len(&self) -> usize {
        self.max_model_len
    }

    fn vocab_size(&self) -> usize {
        self.model.config.vocab_size
    }

    fn defaults(&self) -> &SamplingDefaults {
        &self.defaults
    }

    fn chat_prompt(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
    ) -> Result<Vec<u32>, ApiError> {
        let template = self.model.chat_template.as_ref().ok_or_else(|| {
            ApiError::bad_request(
                format!(
                    "The model '{}' has no chat template; use /v1/completions.",
                    self.name
                ),
                Some("model"),
            )
        })?;
        let text = template
            .render(messages, add_generation_prompt)
            .map_err(|e| {
                ApiError::bad_request(format!("Invalid 'messages': {e}"), Some("messages"))
            })?;
        self.encode(&text, true)
    }

    fn encode(&self, text: &str, add_special: bool) -> Result<Vec<u32>, ApiError> {
        self.model
            .tokenizer
            .encode(text, add_special)
            .map_err(|e| ApiError::Internal(e.to_string()))
    }

    fn decode(&self, ids: &[u32]) -> Result<String, ApiError> {
        self.model
            .tokenizer
            .decode(ids, false)
            .map_err(|e| ApiError::Internal(e.to_string()))
    }

    fn token_text(&self, id: u32) -> String {
        self.model
            .tokenizer
            .decode(&[id], false)
            .unwrap_or_default()
    }

    fn submit(&self, req: NewRequest) -> BoxFuture<'_, Result<DeltaStream, SchedulerError>> {
        Box::pin(self.engine.submit(req))
    }

    fn embed(&self, tokens: Vec<u32>) -> BoxFuture<'_, Result<Vec<f32>, ApiError>> {
        let model = self.model.clone();
        Box::pin(async move {
            actix_web::web::block(move || model.embed(&tokens))
                .await
                .map_err(|e| ApiError::Internal(format!("embedding task: {e}")))?
                .map_err(|e| ApiError::Internal(format!("embedding: {e}")))
        })
    }

    fn embedding_size(&self) -> usize {
        self.model.config.hidden_size
    }
}
