//! The model registry: which models `starfire serve` serves, from configuration.
//!
//! ```toml
//! [[models]]
//! name = "smollm2-135m-instruct"   # what clients put in "model"
//! # path = "/srv/models/x.gguf"    # a GGUF file or a Hugging Face directory; default: the default model
//! backend = "cpu"                  # the engine that runs it: "cpu", or "cuda"
//! max_model_len = 2048             # caps the model's own context length
//! kv_cache_memory = 268435456      # bytes of KV cache; default: `kv_cache_memory` split evenly
//! # cuda_device = 0                # backend "cuda": the GPU it runs on (its CUDA ordinal)
//! # gpu_memory_utilization = 0.9   # backend "cuda" without kv_cache_memory: the share of its GPU
//!                                  # this model takes (weights, step buffers, KV cache); default:
//!                                  # 0.9 split evenly between such models on that GPU
//! # max_num_seqs = 256             # most sequences per engine step
//! # max_num_batched_tokens = 2048  # most tokens per engine step (prefill chunks included)
//! # workers = ["http://10.0.0.2:8090", "http://10.0.0.3:8090"]   # run by `starfire worker`s
//! # workers_dns = "workers.starfire.svc:8090"   # or: the addresses a DNS name resolves to
//! # routing = "prefix_affinity"    # or least_loaded, round_robin (see `worker::pool`)
//! # [models.openai]                # or: an OpenAI-compatible server runs it
//! # base_url = "http://10.0.0.5:8000/v1"
//! # api_key_env = "UPSTREAM_API_KEY"   # the variable holding its key
//! # model = "upstream-name"        # its name there (default: `name`)
//! # timeout_secs = 60
//! # forward_tenant = true         # a Starfire worker upstream: keep organizations apart
//! [models.default_sampling]        # used where a request leaves a field out
//! temperature = 0.7
//! max_tokens = 256
//! ```
//!
//! With `workers`, this process loads only the model's text side (tokenizer and chat
//! template, from `path`) and sends token ids to the workers (`worker::pool` routes them;
//! `worker_token` authenticates the gateway to them). `starfire worker` itself loads every entry
//! into its own engine, whatever `workers` says.
//!
//! Without `[[models]]`, the registry is one entry: `model_path` (or the default model from the
//! model cache) served as `smollm2-135m-instruct`, or under its file stem for another file.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;

use crate::config::ConfigError;
use crate::inference::{InProcessBackend, InferenceBackend, ModelOptions, Routed, Unloaded};
use crate::worker::{
    Members, RemoteModel, Routing, Timeouts, UpstreamModel, UpstreamSettings, WorkerPool,
};

/// The name the default model is served under.
pub const DEFAULT_MODEL_ID: &str = "smollm2-135m-instruct";

/// The share of a GPU's memory that the CUDA models on it without `kv_cache_memory` or
/// `gpu_memory_utilization` take in all (vLLM's default), split evenly between them; the rest
/// is left to the driver (graphs, cuBLAS) and other processes.
pub const GPU_MEMORY_UTILIZATION: f64 = 0.9;

/// Longest accepted model name.
const MAX_NAME_LEN: usize = 128;

/// The engine that runs a model.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelBackend {
    /// The engine on the CPU (our AVX2 kernels, candle for the rest).
    #[default]
    Cpu,
    /// The CUDA kernels on the entry's GPU (`cuda_device`, default 0; Q4_1, Q8_0 and f16/f32
    /// weights); the KV cache in device memory (`kv_cache_memory` bytes of f16, or what
    /// `gpu_memory_utilization` of the device leaves after the weights). Without an NVIDIA
    /// driver, starting fails.
    Cuda,
}

pub use protocol::SamplingDefaults;

/// One `[[models]]` entry.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelEntry {
    pub name: String,
    /// A GGUF file or a Hugging Face model directory; `None` is the default model in the cache.
    pub path: Option<PathBuf>,
    #[serde(default)]
    pub backend: ModelBackend,
    /// Caps the model's own context length (prompt plus completion).
    pub max_model_len: Option<usize>,
    /// Bytes of KV cache for this model.
    pub kv_cache_memory: Option<u64>,
    /// For `backend = "cuda"`: the GPU it runs on, by its CUDA ordinal (as the driver numbers
    /// the GPUs `CUDA_VISIBLE_DEVICES` leaves visible); default 0.
    pub cuda_device: Option<usize>,
    /// For `backend = "cuda"` without `kv_cache_memory`: the fraction of its GPU's memory this
    /// model takes, weights and step buffers included; the KV cache gets the rest of it (vLLM's
    /// `--gpu-memory-utilization`). Default: 0.9, split evenly between such models on that GPU.
    pub gpu_memory_utilization: Option<f64>,
    /// Most sequences in one engine step (vLLM's `--max-num-seqs`; default 256).
    pub max_num_seqs: Option<usize>,
    /// Most tokens in one engine step, prefill chunks included (vLLM's
    /// `--max-num-batched-tokens`; default 2048).
    pub max_num_batched_tokens: Option<usize>,
    #[serde(default)]
    pub default_sampling: SamplingDefaults,
    /// Starfire workers that run this model (`http://host:port`); empty: this process runs it.
    #[serde(default)]
    pub workers: Vec<String>,
    /// Instead of `workers`: a DNS name and port (`workers.starfire.svc:8090`) whose addresses
    /// are the workers (a Kubernetes headless Service), looked up again every five seconds.
    pub workers_dns: Option<String>,
    /// How a request picks one of `workers` (`prefix_affinity`, `least_loaded`, `round_robin`).
    #[serde(default)]
    pub routing: Routing,
    /// Instead of running it: an OpenAI-compatible upstream that serves this model.
    pub openai: Option<OpenAiEntry>,
}

/// `[models.openai]`: the model is served by an OpenAI-compatible server (vLLM, llama.cpp's
/// server, a Starfire worker's OpenAI routes, a hosted provider), which tokenizes for itself.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenAiEntry {
    /// Up to and including `/v1`: `https://api.example.com/v1`.
    pub base_url: String,
    /// The environment variable holding the upstream's API key (the key itself never goes in
    /// the file).
    pub api_key_env: Option<String>,
    /// The upstream's name for the model; default: this entry's `name`.
    pub model: Option<String>,
    /// Seconds to wait for an answer's head (default 30) and between two chunks of a streamed
    /// answer (default 60).
    pub timeout_secs: Option<u64>,
    /// Send the organization id, its weight and the priority in the worker headers (for a
    /// Starfire worker upstream: fairness and prefix-cache isolation per organization). Off by
    /// default: other upstreams have no use for them and should not see organization ids.
    #[serde(default)]
    pub forward_tenant: bool,
}

impl ModelEntry {
    /// The single entry for `model_path` (or the default model) when no `[[models]]` is given.
    pub fn from_model_path(path: Option<&Path>) -> ModelEntry {
        let name = match path {
            None => DEFAULT_MODEL_ID.to_owned(),
            Some(p) if is_default_file(p) => DEFAULT_MODEL_ID.to_owned(),
            Some(p) => {
                let stem = if p.is_dir() {
                    p.file_name()
                } else {
                    p.file_stem()
                };
                stem.map_or_else(|| "model".to_owned(), |s| s.to_string_lossy().into_owned())
            }
        };
        ModelEntry {
            name,
            path: path.map(Path::to_owned),
            backend: ModelBackend::Cpu,
            max_model_len: None,
            kv_cache_memory: None,
            cuda_device: None,
            gpu_memory_utilization: None,
            max_num_seqs: None,
            max_num_batched_tokens: None,
            default_sampling: SamplingDefaults::default(),
            workers: Vec::new(),
            workers_dns: None,
            routing: Routing::default(),
            openai: None,
        }
    }

    /// The GPU a CUDA entry runs on (`cuda_device`, default 0).
    pub fn device(&self) -> usize {
        self.cuda_device.unwrap_or(0)
    }

    /// Whether `starfire worker`s run this model (`workers` or `workers_dns`).
    pub fn served_by_workers(&self) -> bool {
        !self.workers.is_empty() || self.workers_dns.is_some()
    }

    /// The weights this entry serves.
    pub fn weights(&self) -> PathBuf {
        self.path
            .clone()
            .unwrap_or_else(engine::model_cache::default_model_path)
    }
}

fn is_default_file(path: &Path) -> bool {
    path.file_name().and_then(|n| n.to_str()) == Some(engine::model_cache::DefaultModel::FILE_NAME)
}

/// Checks the entries: names present, short, printable, unique without regard to case;
/// lengths and budgets above zero.
pub fn validate(entries: &[ModelEntry]) -> Result<(), ConfigError> {
    let invalid = |message: String| ConfigError::Invalid {
        name: "models".into(),
        message,
    };
    let mut seen = HashSet::new();
    for e in entries {
        let name = e.name.trim();
        if name.is_empty() || name.len() > MAX_NAME_LEN || name != e.name {
            return Err(invalid(format!(
                "model name '{}' must be 1 to {MAX_NAME_LEN} characters without surrounding spaces",
                e.name
            )));
        }
        if !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:/".contains(&b))
        {
            return Err(invalid(format!(
                "model name '{name}' may only use letters, digits and - _ . : /"
            )));
        }
        if !seen.insert(name.to_ascii_lowercase()) {
            return Err(invalid(format!("model name '{name}' is used twice")));
        }
        if let Some(up) = &e.openai {
            if e.served_by_workers() {
                return Err(invalid(format!(
                    "model '{name}': give workers or openai, not both"
                )));
            }
            if !(up.base_url.starts_with("http://") || up.base_url.starts_with("https://")) {
                return Err(invalid(format!(
                    "model '{name}': openai.base_url must be an http:// or https:// URL"
                )));
            }
            if up.timeout_secs == Some(0) {
                return Err(invalid(format!(
                    "model '{name}': openai.timeout_secs must be above zero"
                )));
            }
        }
        if !e.workers.is_empty() && e.workers_dns.is_some() {
            return Err(invalid(format!(
                "model '{name}': give workers or workers_dns, not both"
            )));
        }
        if let Some(dns) = &e.workers_dns {
            if members_of_dns(dns).is_none() {
                return Err(invalid(format!(
                    "model '{name}': workers_dns '{dns}' must be host:port"
                )));
            }
        }
        if let Some(url) = e.workers.iter().find(|u| !u.starts_with("http://")) {
            return Err(invalid(format!(
                "model '{name}': worker '{url}' must be an http:// URL"
            )));
        }
        let runs_here = !e.served_by_workers() && e.openai.is_none();
        let on_cpu_here = runs_here && e.backend == ModelBackend::Cpu;
        if e.cuda_device.is_some() && on_cpu_here {
            return Err(invalid(format!(
                "model '{name}': cuda_device is for backend = \"cuda\""
            )));
        }
        if let Some(u) = e.gpu_memory_utilization {
            if !(u > 0.0 && u <= 1.0) {
                return Err(invalid(format!(
                    "model '{name}': gpu_memory_utilization must be above 0 and at most 1, not {u}"
                )));
            }
            if e.kv_cache_memory.is_some() {
                return Err(invalid(format!(
                    "model '{name}': give kv_cache_memory or gpu_memory_utilization, not both"
                )));
            }
            if on_cpu_here {
                return Err(invalid(format!(
                    "model '{name}': gpu_memory_utilization is for backend = \"cuda\""
                )));
            }
        }
        if e.max_model_len == Some(0)
            || e.kv_cache_memory == Some(0)
            || e.max_num_seqs == Some(0)
            || e.max_num_batched_tokens == Some(0)
        {
            return Err(invalid(format!(
                "model '{name}': max_model_len, kv_cache_memory, max_num_seqs and \
                 max_num_batched_tokens must be above zero"
            )));
        }
    }
    Ok(())
}

/// `host:port` as a DNS pool's members.
fn members_of_dns(dns: &str) -> Option<Members> {
    let (host, port) = dns.rsplit_once(':')?;
    let port: u16 = port.parse().ok().filter(|&p| p > 0)?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    (!host.is_empty()).then(|| Members::Dns {
        host: host.to_owned(),
        port,
    })
}

/// Why the registry could not start.
#[derive(Debug, thiserror::Error)]
#[error("model '{name}': {message}")]
pub struct RegistryError {
    pub name: String,
    pub message: String,
}

/// Loads every entry: those with `workers` as pools of workers (the text side here, the
/// weights there), the others in this process (`load_local`).
pub fn load(
    entries: &[ModelEntry],
    kv_cache_memory: KvCacheMemory,
    admission: &scheduler::AdmissionLimits,
    workers: &WorkerSettings,
) -> Result<Arc<dyn InferenceBackend>, RegistryError> {
    let (upstream, rest): (Vec<&ModelEntry>, Vec<&ModelEntry>) =
        entries.iter().partition(|e| e.openai.is_some());
    let (remote, local): (Vec<&ModelEntry>, Vec<&ModelEntry>) =
        rest.into_iter().partition(|e| e.served_by_workers());
    if remote.is_empty() && upstream.is_empty() {
        let local: Vec<ModelEntry> = local.into_iter().cloned().collect();
        return load_local(&local, kv_cache_memory, admission);
    }
    let remote = remote
        .into_iter()
        .map(|e| load_remote(e, workers))
        .collect::<Result<Vec<_>, _>>()?;
    let upstream = upstream
        .into_iter()
        .map(load_upstream)
        .collect::<Result<Vec<_>, _>>()?;
    let local = if local.is_empty() {
        None
    } else {
        let local: Vec<ModelEntry> = local.into_iter().cloned().collect();
        Some(load_local(&local, kv_cache_memory, admission)?)
    };
    Ok(Arc::new(Routed::new(local, remote, upstream)))
}

/// A model an OpenAI-compatible upstream serves; its API key is read from the environment now.
fn load_upstream(entry: &ModelEntry) -> Result<Arc<UpstreamModel>, RegistryError> {
    let err = |message: String| RegistryError {
        name: entry.name.clone(),
        message,
    };
    let up = entry
        .openai
        .as_ref()
        .ok_or_else(|| err("no [models.openai] table".to_owned()))?;
    let api_key = match &up.api_key_env {
        None => None,
        Some(var) => Some(std::env::var(var).map_err(|_| {
            err(format!(
                "openai.api_key_env names {var}, which is not set in the environment"
            ))
        })?),
    };
    let mut timeouts = Timeouts::default();
    if let Some(secs) = up.timeout_secs {
        timeouts.response = std::time::Duration::from_secs(secs);
        timeouts.chunk = std::time::Duration::from_secs(secs);
    }
    let settings = UpstreamSettings {
        base_url: up.base_url.clone(),
        api_key,
        model: up.model.clone().unwrap_or_else(|| entry.name.clone()),
        timeouts,
        forward_tenant: up.forward_tenant,
    };
    tracing::info!(model = %entry.name, upstream = %up.base_url, "model served by an upstream");
    let model = UpstreamModel::new(
        entry.name.clone(),
        entry.max_model_len,
        entry.default_sampling.clone(),
        settings,
    )
    .map_err(err)?;
    Ok(Arc::new(model))
}

/// How the gateway talks to its workers.
#[derive(Debug, Clone, Default)]
pub struct WorkerSettings {
    /// Sent as `Authorization: Bearer` to every worker.
    pub token: Option<String>,
    pub timeouts: Timeouts,
}

/// A model served by workers: its text side from `path`, its pool from `workers`.
fn load_remote(
    entry: &ModelEntry,
    settings: &WorkerSettings,
) -> Result<Arc<RemoteModel>, RegistryError> {
    let err = |message: String| RegistryError {
        name: entry.name.clone(),
        message,
    };
    let path = entry.weights();
    let text = engine::TextModel::load(&path).map_err(|e| {
        err(format!(
            "cannot read the tokenizer of {} (the gateway tokenizes for its workers): {e}",
            path.display()
        ))
    })?;
    let members = match &entry.workers_dns {
        Some(dns) => members_of_dns(dns)
            .ok_or_else(|| err(format!("workers_dns '{dns}' must be host:port")))?,
        None => Members::Listed(entry.workers.clone()),
    };
    let pool = WorkerPool::new(
        members,
        settings.token.clone(),
        settings.timeouts,
        entry.routing,
    )
    .map_err(err)?;
    tracing::info!(model = %entry.name, workers = ?entry.workers, workers_dns = ?entry.workers_dns,
        "model served by workers");
    Ok(Arc::new(RemoteModel::new(
        entry.name.clone(),
        text,
        entry.max_model_len,
        entry.default_sampling.clone(),
        pool,
    )))
}

/// Loads the entries this process runs and starts one engine loop per model, each with the KV
/// cache `cache_budgets` gives it. Each model's scheduler queues up to `admission`. When the only
/// entry's file is missing, serving goes on without a model (inference routes answer 503
/// `model_not_loaded`); with several entries a missing file is an error, since the operator
/// asked for it by name.
pub fn load_local(
    entries: &[ModelEntry],
    kv_cache_memory: KvCacheMemory,
    admission: &scheduler::AdmissionLimits,
) -> Result<Arc<dyn InferenceBackend>, RegistryError> {
    if let [only] = entries {
        let path = only.weights();
        if !path.exists() {
            let unloaded = Unloaded::missing(&path);
            tracing::warn!(message = %unloaded.message, "serving without a model");
            return Ok(Arc::new(unloaded));
        }
    }
    let mut loaded = Vec::with_capacity(entries.len());
    for (entry, (bytes, share)) in entries.iter().zip(cache_budgets(entries, kv_cache_memory)) {
        let err = |message: String| RegistryError {
            name: entry.name.clone(),
            message,
        };
        let path = entry.weights();
        if !path.exists() {
            return Err(err(format!(
                "{} does not exist (run `starfire model fetch` for the default model)",
                path.display()
            )));
        }
        let started = std::time::Instant::now();
        let model = engine::Model::load(&path)
            .map_err(|e| err(format!("cannot load {}: {e}", path.display())))?;
        let mut options = ModelOptions::new(entry.name.clone(), bytes);
        options.gpu_memory_utilization = share;
        options.scheduler.admission = admission.clone();
        if let Some(len) = entry.max_model_len {
            options.scheduler.max_model_len = len;
        }
        if let Some(seqs) = entry.max_num_seqs {
            options.scheduler.max_num_seqs = seqs;
        }
        if let Some(tokens) = entry.max_num_batched_tokens {
            options.scheduler.max_num_batched_tokens = tokens;
        }
        options.defaults = entry.default_sampling.clone();
        options.backend = entry.backend;
        options.cuda_device = entry.device();

        loaded.push((options, Arc::new(model)));
        tracing::info!(model = %entry.name, path = %path.display(),
            elapsed_ms = started.elapsed().as_millis() as u64, "model loaded");
    }
    let backend = InProcessBackend::serve(loaded).map_err(|e| RegistryError {
        name: e.0,
        message: format!("cannot start the engine: {}", e.1),
    })?;
    Ok(Arc::new(backend))
}

/// The process's `kv_cache_memory`: its bytes, and whether the operator set them. An unset
/// one is a default from the host's memory, which has nothing to do with a GPU's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KvCacheMemory {
    pub bytes: u64,
    pub set: bool,
}

impl KvCacheMemory {
    /// `bytes`, set by the operator.
    pub fn set(bytes: u64) -> Self {
        KvCacheMemory { bytes, set: true }
    }
}

/// Each entry's KV cache, in order: its bytes, or for a CUDA entry that sets no
/// `kv_cache_memory` its share of its GPU's memory (`gpu_memory_utilization`, or
/// [`GPU_MEMORY_UTILIZATION`] split evenly between such entries on that GPU; where the operator
/// set the process's `kv_cache_memory` and the entry no share, it takes part of those bytes
/// instead).
/// Entries without either split `kv_cache_memory` evenly.
fn cache_budgets(
    entries: &[ModelEntry],
    kv_cache_memory: KvCacheMemory,
) -> Vec<(u64, Option<f64>)> {
    let by_share = |e: &ModelEntry| {
        e.backend == ModelBackend::Cuda
            && e.kv_cache_memory.is_none()
            && (e.gpu_memory_utilization.is_some() || !kv_cache_memory.set)
    };
    let count = |f: &dyn Fn(&ModelEntry) -> bool| entries.iter().filter(|e| f(e)).count().max(1);
    let shared = count(&|e| e.kv_cache_memory.is_none() && !by_share(e)) as u64;
    let on_device = |device| count(&|e| by_share(e) && e.device() == device) as f64;
    entries
        .iter()
        .map(|e| match e.kv_cache_memory {
            Some(bytes) => (bytes, None),
            None if by_share(e) => (
                0,
                Some(
                    e.gpu_memory_utilization
                        .unwrap_or(GPU_MEMORY_UTILIZATION / on_device(e.device())),
                ),
            ),
            None => (kv_cache_memory.bytes / shared, None),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str) -> ModelEntry {
        ModelEntry {
            name: name.to_owned(),
            ..ModelEntry::from_model_path(None)
        }
    }

    #[test]
    fn names_come_from_the_path() {
        assert_eq!(ModelEntry::from_model_path(None).name, DEFAULT_MODEL_ID);
        let default_elsewhere =
            PathBuf::from("/x").join(engine::model_cache::DefaultModel::FILE_NAME);
        assert_eq!(
            ModelEntry::from_model_path(Some(&default_elsewhere)).name,
            DEFAULT_MODEL_ID
        );
        assert_eq!(
            ModelEntry::from_model_path(Some(Path::new("/m/tiny-llama.Q8_0.gguf"))).name,
            "tiny-llama.Q8_0"
        );
    }

    #[test]
    fn validation_refuses_bad_entries() {
        assert!(validate(&[entry("a"), entry("b")]).is_ok());
        let dup = validate(&[entry("Same"), entry("same")]).unwrap_err();
        assert!(dup.to_string().contains("used twice"), "{dup}");
        assert!(validate(&[entry("")]).is_err());
        assert!(validate(&[entry(" padded")]).is_err());
        assert!(validate(&[entry("semi;colon")]).is_err());
        let zero = ModelEntry {
            max_model_len: Some(0),
            ..entry("z")
        };
        assert!(validate(&[zero]).is_err());
        let no_seqs = ModelEntry {
            max_num_seqs: Some(0),
            ..entry("s")
        };
        assert!(validate(&[no_seqs]).is_err());
        let both = ModelEntry {
            workers: vec!["http://127.0.0.1:1".into()],
            openai: Some(OpenAiEntry {
                base_url: "http://127.0.0.1:2/v1".into(),
                api_key_env: None,
                model: None,
                timeout_secs: None,
                forward_tenant: false,
            }),
            ..entry("w")
        };
        let err = validate(&[both]).unwrap_err();
        assert!(err.to_string().contains("not both"), "{err}");
        let ftp = ModelEntry {
            openai: Some(OpenAiEntry {
                base_url: "ftp://x/v1".into(),
                api_key_env: None,
                model: None,
                timeout_secs: None,
                forward_tenant: false,
            }),
            ..entry("f")
        };
        assert!(validate(&[ftp]).is_err());
    }

    #[test]
    fn gpu_memory_utilization_is_checked() {
        let cuda = |u: f64| ModelEntry {
            backend: ModelBackend::Cuda,
            gpu_memory_utilization: Some(u),
            ..entry("g")
        };
        assert!(validate(&[cuda(0.5)]).is_ok());
        assert!(validate(&[cuda(1.0)]).is_ok());
        for bad in [0.0, -0.1, 1.01, f64::NAN] {
            let err = validate(&[cuda(bad)]).unwrap_err().to_string();
            assert!(err.contains("above 0 and at most 1"), "{bad}: {err}");
        }
        let both = ModelEntry {
            kv_cache_memory: Some(1 << 30),
            ..cuda(0.5)
        };
        let err = validate(&[both]).unwrap_err().to_string();
        assert!(
            err.contains("kv_cache_memory or gpu_memory_utilization"),
            "{err}"
        );
        let cpu = ModelEntry {
            backend: ModelBackend::Cpu,
            ..cuda(0.5)
        };
        let err = validate(std::slice::from_ref(&cpu))
            .unwrap_err()
            .to_string();
        assert!(err.contains("is for backend = \"cuda\""), "{err}");
        let cpu_on_a_gpu = ModelEntry {
            backend: ModelBackend::Cpu,
            cuda_device: Some(1),
            ..entry("d")
        };
        let err = validate(std::slice::from_ref(&cpu_on_a_gpu))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("cuda_device is for backend = \"cuda\""),
            "{err}"
        );
        assert!(validate(&[ModelEntry {
            backend: ModelBackend::Cuda,
            ..cpu_on_a_gpu.clone()
        }])
        .is_ok());
        // Workers run it: their `--backend` decides.
        let remote = ModelEntry {
            workers: vec!["http://127.0.0.1:1".into()],
            ..cpu
        };
        assert!(validate(&[remote]).is_ok());
        let remote = ModelEntry {
            workers: vec!["http://127.0.0.1:1".into()],
            ..cpu_on_a_gpu
        };
        assert!(validate(&[remote]).is_ok());
    }

    #[test]
    fn cuda_models_without_a_cache_size_share_the_gpu() {
        let with = |name: &str, backend, bytes: Option<u64>, share: Option<f64>| ModelEntry {
            backend,
            kv_cache_memory: bytes,
            gpu_memory_utilization: share,
            ..entry(name)
        };
        use ModelBackend::{Cpu, Cuda};
        let entries = [
            with("a", Cpu, None, None),
            with("b", Cpu, None, None),
            with("c", Cpu, Some(7), None),
            with("d", Cuda, None, None),
            with("e", Cuda, None, None),
            with("f", Cuda, Some(5), None),
            with("g", Cuda, None, Some(0.3)),
        ];
        let from_host = KvCacheMemory {
            bytes: 900,
            set: false,
        };
        let third = GPU_MEMORY_UTILIZATION / 3.0;
        assert_eq!(
            cache_budgets(&entries, from_host),
            [
                (450, None),
                (450, None),
                (7, None),
                (0, Some(third)),
                (0, Some(third)),
                (5, None),
                (0, Some(0.3)),
            ]
        );
        // Bytes the operator set are shared by the CUDA entries that set nothing too.
        assert_eq!(
            cache_budgets(&entries, KvCacheMemory::set(900)),
            [
                (225, None),
                (225, None),
                (7, None),
                (225, None),
                (225, None),
                (5, None),
                (0, Some(0.3)),
            ]
        );
        // One CUDA model alone takes vLLM's default share; a CPU model alone the whole budget.
        assert_eq!(
            cache_budgets(&[with("d", Cuda, None, None)], from_host),
            [(0, Some(GPU_MEMORY_UTILIZATION))]
        );
        assert_eq!(cache_budgets(&[entry("a")], from_host), [(900, None)]);
        // Each GPU's default share is split between the models on that GPU.
        let on = |name: &str, device: Option<usize>| ModelEntry {
            cuda_device: device,
            ..with(name, Cuda, None, None)
        };
        let half = GPU_MEMORY_UTILIZATION / 2.0;
        assert_eq!(
            cache_budgets(
                &[
                    on("a", None),
                    on("b", Some(1)),
                    on("c", Some(0)),
                    on("d", Some(2))
                ],
                from_host
            ),
            [
                (0, Some(half)),
                (0, Some(GPU_MEMORY_UTILIZATION)),
                (0, Some(half)),
                (0, Some(GPU_MEMORY_UTILIZATION)),
            ]
        );
    }

    #[test]
    fn entries_parse_from_toml() {
        #[derive(Deserialize)]
        struct File {
            models: Vec<ModelEntry>,
        }
        let f: File = toml::from_str(
            "[[models]]\nname = \"a\"\nmax_model_len = 512\n[models.default_sampling]\n\
             temperature = 0.5\nmax_tokens = 7\n[[models]]\nname = \"b\"\npath = \"/m/b.gguf\"\n\
             backend = \"cpu\"\nmax_num_seqs = 8\nmax_num_batched_tokens = 64\n\
             [[models]]\nname = \"g\"\nbackend = \"cuda\"\ncuda_device = 3\n\
             [[models]]\nname = \"c\"\n[models.openai]\nbase_url = \"https://x/v1\"\n\
             api_key_env = \"X_KEY\"\n",
        )
        .unwrap();
        assert_eq!(f.models[1].max_num_seqs, Some(8));
        assert_eq!(f.models[1].max_num_batched_tokens, Some(64));
        assert_eq!(
            (f.models[2].cuda_device, f.models[2].device()),
            (Some(3), 3)
        );
        assert_eq!(f.models[1].device(), 0);
        let up = f.models[3].openai.as_ref().unwrap();
        assert_eq!(
            (up.base_url.as_str(), up.api_key_env.as_deref()),
            ("https://x/v1", Some("X_KEY"))
        );
        assert_eq!(f.models[0].max_model_len, Some(512));
        assert_eq!(f.models[0].default_sampling.max_tokens, Some(7));
        assert_eq!(f.models[1].path.as_deref(), Some(Path::new("/m/b.gguf")));
        let bad = toml::from_str::<File>("[[models]]\nname = \"a\"\nbackend = \"tpu\"\n");
        assert!(bad.is_err());
        let unknown = toml::from_str::<File>("[[models]]\nname = \"a\"\ncolour = 1\n");
        assert!(unknown.is_err());
    }
}
