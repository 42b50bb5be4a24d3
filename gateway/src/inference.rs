//! The seam between the HTTP routes and whatever runs the model.
//!
//! Routes see an [`InferenceBackend`] (which models are served, and each one as a
//! [`ServedModel`]: its tokenizer, chat template, context length, and `submit`), defined with
//! their request, delta-stream and error types in the `protocol` crate, which has no engine in
//! it: anything that can fill a `DeltaStream` can serve the routes. The implementation here is
//! [`InProcessBackend`]: the engine's `Model` and the scheduler's `EngineLoop` in this process,
//! one loop per served model (see `registry`). [`Unloaded`] stands in when no model could be
//! found, so that `starfire serve` still starts (control plane) and inference routes answer
//! 503 `model_not_loaded`.

use std::path::Path;
use std::sync::Arc;

use engine::cuda::model::KvCacheSize;
use engine::Model;
use scheduler::model_executor::{config_for_model, spawn_device_engine, spawn_engine};
use scheduler::{EngineLoop, SchedulerConfig, SchedulerError};

pub use protocol::{
    BackendError, BoxFuture, ChatMessage, DeltaStream, InferenceBackend, ModelCard, NewRequest,
    SamplingDefaults, ServedModel, StructuredOutput, ToolDefinition,
};

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
    /// Bytes of KV cache (f16 keys and values, on the CPU as on a GPU).
    pub kv_cache_memory: u64,
    /// For the CUDA engine: instead of `kv_cache_memory`, the fraction of the GPU's memory the
    /// model takes, its KV cache sized from what the weights and step buffers leave of it.
    pub gpu_memory_utilization: Option<f64>,
    /// Sampling values for fields a request leaves out.
    pub defaults: SamplingDefaults,
    /// The engine that runs the model.
    pub backend: crate::registry::ModelBackend,
    /// For the CUDA engine: the GPU, by its CUDA ordinal.
    pub cuda_device: usize,
}

impl ModelOptions {
    /// Default scheduler settings and sampling defaults.
    pub fn new(name: impl Into<String>, kv_cache_memory: u64) -> Self {
        ModelOptions {
            name: name.into(),
            scheduler: SchedulerConfig::default(),
            kv_cache_memory,
            gpu_memory_utilization: None,
            defaults: SamplingDefaults::default(),
            backend: crate::registry::ModelBackend::Cpu,
            cuda_device: 0,
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
            let config =
                config_for_model(&model, options.scheduler.clone(), options.kv_cache_memory);
            let max_model_len = config.max_model_len;
            let engine = match options.backend {
                crate::registry::ModelBackend::Cpu => spawn_engine(&model, config),
                crate::registry::ModelBackend::Cuda => {
                    let cache = match options.gpu_memory_utilization {
                        Some(fraction) => KvCacheSize::Utilization(fraction),
                        None => KvCacheSize::Bytes(options.kv_cache_memory),
                    };
                    engine::cuda::device::CudaDevice::open(options.cuda_device)
                        .map_err(|e| SchedulerError::EngineStart(e.to_string()))
                        .and_then(|dev| {
                            spawn_device_engine(&model, options.scheduler.clone(), dev, cache)
                        })
                }
            }
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

    /// A backend serving `engine` (already started) for `model` as `name`.
    #[cfg(test)]
    pub(crate) fn with_engine(name: &str, model: Arc<Model>, engine: EngineLoop) -> Self {
        InProcessBackend {
            served: vec![Arc::new(InProcessModel {
                name: name.to_owned(),
                created: 0,
                max_model_len: model.config.max_position_embeddings,
                model,
                defaults: SamplingDefaults::default(),
                engine,
            })],
        }
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

    fn out_of_service(&self) -> Option<String> {
        self.served.iter().find_map(|m| {
            let failed = m.engine.metrics().engine_loop.failed?;
            Some(format!("model '{}': {failed}", m.name))
        })
    }

    fn prometheus(&self) -> String {
        let texts: Vec<String> = self
            .served
            .iter()
            .map(|m| scheduler::render_prometheus(&m.engine.metrics(), &m.name))
            .collect();
        merge_families(&texts)
    }

    fn model(&self, name: &str) -> Result<Arc<dyn ServedModel>, BackendError> {
        match self.find(name) {
            Some(m) => Ok(m.clone()),
            None => Err(BackendError::ModelNotFound(name.to_owned())),
        }
    }
}

/// Models from more than one place behind one backend: those this process runs (`local`),
/// those served by pools of workers, and those served by OpenAI-compatible upstreams.
pub struct Routed {
    local: Option<Arc<dyn InferenceBackend>>,
    remote: Vec<Arc<crate::worker::RemoteModel>>,
    upstream: Vec<Arc<crate::worker::UpstreamModel>>,
}

impl Routed {
    pub fn new(
        local: Option<Arc<dyn InferenceBackend>>,
        remote: Vec<Arc<crate::worker::RemoteModel>>,
        upstream: Vec<Arc<crate::worker::UpstreamModel>>,
    ) -> Self {
        Routed {
            local,
            remote,
            upstream,
        }
    }
}

impl InferenceBackend for Routed {
    fn models(&self) -> Result<Vec<ModelCard>, BackendError> {
        let mut cards = match &self.local {
            Some(local) => local.models()?,
            None => Vec::new(),
        };
        cards.extend(self.remote.iter().map(|m| ModelCard {
            id: m.name().to_owned(),
            created: m.created(),
        }));
        cards.extend(self.upstream.iter().map(|m| ModelCard {
            id: m.name().to_owned(),
            created: m.created(),
        }));
        Ok(cards)
    }

    fn model(&self, name: &str) -> Result<Arc<dyn ServedModel>, BackendError> {
        if let Some(m) = self
            .remote
            .iter()
            .find(|m| name.eq_ignore_ascii_case(m.name()))
        {
            return Ok(m.clone());
        }
        if let Some(m) = self
            .upstream
            .iter()
            .find(|m| name.eq_ignore_ascii_case(m.name()))
        {
            return Ok(m.clone());
        }
        match &self.local {
            Some(local) => local.model(name),
            None => Err(BackendError::ModelNotFound(name.to_owned())),
        }
    }

    fn out_of_service(&self) -> Option<String> {
        self.local.as_ref()?.out_of_service()
    }

    fn prometheus(&self) -> String {
        let mut out = self
            .local
            .as_ref()
            .map(|l| l.prometheus())
            .unwrap_or_default();
        if !self.remote.is_empty() {
            out.push_str(
                "# HELP starfire_worker_requests_in_flight This gateway's requests in flight, \
                 by model and worker.\n# TYPE starfire_worker_requests_in_flight gauge\n",
            );
            for m in &self.remote {
                out.push_str(&m.prometheus());
            }
        }
        out
    }
}

/// Joins several Prometheus texts (one per model, same families) so that each family has one
/// `# HELP`/`# TYPE` header and all its samples together, as the format wants.
fn merge_families(texts: &[String]) -> String {
    let mut order: Vec<String> = Vec::new();
    let mut families: std::collections::HashMap<String, (Vec<String>, Vec<String>)> =
        std::collections::HashMap::new();
    for text in texts {
        let mut current = String::new();
        for line in text.lines() {
            if let Some(rest) = line
                .strip_prefix("# HELP ")
                .or_else(|| line.strip_prefix("# TYPE "))
            {
                current = rest.split(' ').next().unwrap_or_default().to_owned();
                let family = families.entry(current.clone()).or_insert_with(|| {
                    order.push(current.clone());
                    Default::default()
                });
                if !family.0.iter().any(|h| h == line) {
                    family.0.push(line.to_owned());
                }
            } else if !line.is_empty() {
                families
                    .entry(current.clone())
                    .or_insert_with(|| {
                        order.push(current.clone());
                        Default::default()
                    })
                    .1
                    .push(line.to_owned());
            }
        }
    }
    let mut out = String::new();
    for name in order {
        if let Some((headers, samples)) = families.get(&name) {
            for line in headers.iter().chain(samples) {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out
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
        tools: &[ToolDefinition],
        add_generation_prompt: bool,
    ) -> Result<Vec<u32>, BackendError> {
        text::chat_prompt(
            &self.name,
            &self.model.tokenizer,
            self.model.chat_template.as_ref(),
            messages,
            tools,
            add_generation_prompt,
        )
    }

    fn encode(&self, text: &str, add_special: bool) -> Result<Vec<u32>, BackendError> {
        text::encode(&self.model.tokenizer, text, add_special)
    }

    fn decode(&self, ids: &[u32]) -> Result<String, BackendError> {
        text::decode(&self.model.tokenizer, ids)
    }

    fn token_text(&self, id: u32) -> String {
        text::decode(&self.model.tokenizer, &[id]).unwrap_or_default()
    }

    fn submit(&self, req: NewRequest) -> BoxFuture<'_, Result<DeltaStream, BackendError>> {
        Box::pin(async move { Ok(self.engine.submit(req).await?) })
    }

    fn embed(&self, tokens: Vec<u32>) -> BoxFuture<'_, Result<Vec<f32>, BackendError>> {
        let model = self.model.clone();
        Box::pin(async move {
            actix_web::web::block(move || model.embed(&tokens))
                .await
                .map_err(|e| BackendError::Internal(format!("embedding task: {e}")))?
                .map_err(|e| BackendError::Internal(format!("embedding: {e}")))
        })
    }

    fn embedding_size(&self) -> usize {
        self.model.config.hidden_size
    }

    fn check_structured(&self, spec: &StructuredOutput, field: &str) -> Result<(), BackendError> {
        text::check_structured(&self.model.tokenizer, spec, field)
    }
}

/// A model's text side, whoever runs its weights: the in-process engine and a worker pool's
/// model tokenize and template the same way.
#[doc(hidden)]
pub mod text {
    use engine::{ChatTemplate, Tokenizer};
    use protocol::{BackendError, ChatMessage, InvalidParam, StructuredOutput, ToolDefinition};

    /// The chat rendered through the model's template and tokenized.
    pub fn chat_prompt(
        name: &str,
        tokenizer: &Tokenizer,
        template: Option<&ChatTemplate>,
        messages: &[ChatMessage],
        tools: &[ToolDefinition],
        add_generation_prompt: bool,
    ) -> Result<Vec<u32>, BackendError> {
        let template = template.ok_or_else(|| BackendError::Unsupported {
            message: format!("The model '{name}' has no chat template; use /v1/completions."),
            field: "model".to_owned(),
        })?;
        let text = template
            .render_with_tools(messages, tools, add_generation_prompt)
            .map_err(|e| InvalidParam::new("messages", e.to_string()))?;
        encode(tokenizer, &text, true)
    }

    pub fn encode(
        tokenizer: &Tokenizer,
        text: &str,
        add_special: bool,
    ) -> Result<Vec<u32>, BackendError> {
        tokenizer
            .encode(text, add_special)
            .map_err(|e| BackendError::Internal(e.to_string()))
    }

    pub fn decode(tokenizer: &Tokenizer, ids: &[u32]) -> Result<String, BackendError> {
        tokenizer
            .decode(ids, false)
            .map_err(|e| BackendError::Internal(e.to_string()))
    }

    /// Compiles a structured output over the model's vocabulary (the compiled grammar is
    /// kept, so the engine's own compile of the same specification is a lookup).
    pub fn check_structured(
        tokenizer: &Tokenizer,
        spec: &StructuredOutput,
        field: &str,
    ) -> Result<(), BackendError> {
        let grammars = tokenizer
            .grammars()
            .map_err(|e| BackendError::Internal(e.to_string()))?;
        Ok(grammars.check(spec, field)?)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn several_models_share_one_header_per_family() {
        let a = "# HELP x X.\n# TYPE x gauge\nx{model_name=\"a\"} 1\n".to_owned();
        let b = a.replace("\"a\"", "\"b\"").replace("} 1", "} 2");
        assert_eq!(
            super::merge_families(&[a, b]),
            "# HELP x X.\n# TYPE x gauge\nx{model_name=\"a\"} 1\nx{model_name=\"b\"} 2\n"
        );
    }
}
