//! Configuration: an optional TOML file (`--config`) overlaid with `STARFIRE_*` environment
//! variables. Every field has a default, so `starfire serve` runs on a fresh machine with none.
//!
//! | field | env | default |
//! |---|---|---|
//! | `home` | `STARFIRE_HOME` | `~/.cache/starfire` |
//! | `listen` | `STARFIRE_LISTEN` | `127.0.0.1:8080` |
//! | `tls_cert`, `tls_key` | `STARFIRE_TLS_CERT`, `STARFIRE_TLS_KEY` | none (plain HTTP): PEM certificate chain and private key; both set, `serve` and `worker` speak HTTPS (HTTP/1.1 and HTTP/2) and re-read the files on SIGHUP |
//! | `database_url` | `STARFIRE_DATABASE_URL` | `sqlite://{home}/starfire.db` |
//! | `redis_url` | `STARFIRE_REDIS_URL` | none (limits kept in process) |
//! | `rate_limit_redis_failure` | `STARFIRE_RATE_LIMIT_REDIS_FAILURE` | `local`: when Redis fails or times out, count in this replica's process (`closed`: refuse with 503 `rate_limiter_unavailable`) |
//! | `redis_timeout_ms` | `STARFIRE_REDIS_TIMEOUT_MS` | `250` (connect and command timeout of every rate-limit call) |
//! | `rate_limit_key_prefix` | `STARFIRE_RATE_LIMIT_KEY_PREFIX` | `starfire:rl:` (prefix of every Redis key the limiter writes) |
//! | `session_secret` | `STARFIRE_SESSION_SECRET` | generated once, kept in `{home}/session_secret` |
//! | `access_token_ttl_secs` | `STARFIRE_ACCESS_TOKEN_TTL_SECS` | `900` |
//! | `refresh_token_ttl_secs` | `STARFIRE_REFRESH_TOKEN_TTL_SECS` | `2592000` (30 days) |
//! | `max_body_bytes` | `STARFIRE_MAX_BODY_BYTES` | `1048576` |
//! | `body_timeout_secs` | `STARFIRE_BODY_TIMEOUT_SECS` | `30`: a request body not fully arrived this long after its headers gets 408 and the connection closes (headers themselves must arrive within 5 s) |
//! | `invite_ttl_secs` | `STARFIRE_INVITE_TTL_SECS` | `604800` (7 days) |
//! | `model_path` | `STARFIRE_MODEL_PATH` | the default model in the model cache, served as `smollm2-135m-instruct` |
//! | `[[models]]` | none | one entry from `model_path`; several models with names, paths, `max_model_len`, `kv_cache_memory` and `default_sampling` (see `registry`) |
//! | `kv_cache_memory` | `STARFIRE_KV_CACHE_MEMORY` | a quarter of the memory available at start (`MemAvailable`), between 256 MiB and 8 GiB; 1 GiB where the system does not say. Shared by the models that set none of their own; CUDA models share it only where it is set here, and otherwise take `gpu_memory_utilization` of the GPU |
//! | `ws_ticket_ttl_secs` | `STARFIRE_WS_TICKET_TTL_SECS` | `60` |
//! | `ws_idle_timeout_secs` | `STARFIRE_WS_IDLE_TIMEOUT_SECS` | `300` |
//! | `ws_ping_interval_secs` | `STARFIRE_WS_PING_INTERVAL_SECS` | `30` |
//! | `ws_max_concurrent_requests` | `STARFIRE_WS_MAX_CONCURRENT_REQUESTS` | `16` |
//! | `metrics_token` | `STARFIRE_METRICS_TOKEN` | none (`/metrics` open) |
//! | `[metering]` | see `metering::config` | prices, free-plan grant, usage heartbeat |
//! | `[billing]` | see `billing::config` | operator tokens, invoice finalization |
//! | `max_waiting_requests` | `STARFIRE_MAX_WAITING_REQUESTS` | `10000`: requests queued in the scheduler beyond this get 503 |
//! | `max_waiting_tokens` | `STARFIRE_MAX_WAITING_TOKENS` | `20000000`: queued prompt tokens beyond this get 503 |
//! | `max_waiting_requests_per_tenant` | `STARFIRE_MAX_WAITING_REQUESTS_PER_TENANT` | `2000`: one organization's queued requests beyond this get 429 |
//! | `max_waiting_tokens_per_tenant` | `STARFIRE_MAX_WAITING_TOKENS_PER_TENANT` | `4000000`: one organization's queued prompt tokens beyond this get 429 |

use std::path::{Path, PathBuf};

use serde::Deserialize;

use scheduler::AdmissionLimits;

use crate::auth::secret::random_base62;
use crate::billing::config::{BillingConfig, BillingFile};
use crate::metering::config::{MeteringConfig, MeteringFile};
use crate::registry::ModelEntry;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid value for {name}: {message}")]
    Invalid { name: String, message: String },
    #[error("cannot keep the session secret in {path}: {source}")]
    Secret {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The whole configuration, after defaults, file and environment.
#[derive(Clone)]
pub struct Config {
    /// Directory for Starfire's own files (SQLite database, generated session secret).
    pub home: PathBuf,
    /// Address the HTTP server binds.
    pub listen: String,
    /// PEM certificate chain and private key: set, the server speaks only HTTPS (see `tls`).
    pub tls: Option<TlsFiles>,
    /// `sqlite://...` (embedded, single node) or `postgres://...` (shared by replicas).
    pub database_url: String,
    /// Redis for shared rate limits; `None` keeps limits in process.
    pub redis_url: Option<String>,
    /// What the rate limiter does when Redis fails or does not answer in time.
    pub rate_limit_redis_failure: RedisFailure,
    /// Connect and command timeout of every Redis call of the rate limiter.
    pub redis_timeout_ms: u64,
    /// Prefix of the rate limiter's Redis keys (lets several deployments share one Redis).
    pub rate_limit_key_prefix: String,
    /// HMAC secret that signs console access tokens. Replicas must share it.
    pub session_secret: String,
    /// Lifetime of a console access token (JWT).
    pub access_token_ttl_secs: u64,
    /// Lifetime of a refresh token.
    pub refresh_token_ttl_secs: u64,
    /// Largest accepted request body; larger ones get 413.
    pub max_body_bytes: usize,
    /// Seconds a request body may take to arrive after its headers; slower gets 408.
    pub body_timeout_secs: u64,
    /// Lifetime of an organization invite.
    pub invite_ttl_secs: u64,
    /// The served models: `[[models]]` from the file, or else one entry for `model_path` (a
    /// GGUF file or a Hugging Face model directory; unset: the default model from the model
    /// cache, served as `smollm2-135m-instruct`, also when a path names that file elsewhere;
    /// another path is served under its file stem). When that one file is missing, `serve`
    /// still starts and inference routes answer 503 `model_not_loaded`.
    pub models: Vec<ModelEntry>,
    /// Bytes of KV cache, shared evenly by the models that do not set their own
    /// (vLLM's `kv_cache_memory`).
    pub kv_cache_memory: u64,
    /// Whether `kv_cache_memory` was set (environment or file) rather than taken from the
    /// host's memory: only a set one sizes CUDA models' caches.
    pub kv_cache_memory_set: bool,
    /// Lifetime of a WebSocket ticket (`POST /v1/ws/tickets`); it is also single-use.
    pub ws_ticket_ttl_secs: u64,
    /// A chat WebSocket with no request running and no frame from the client (pongs aside) for
    /// this long is closed (close code 1000); so is one from which nothing at all, pongs
    /// included, arrived for this long.
    pub ws_idle_timeout_secs: u64,
    /// How often the server pings a chat WebSocket.
    pub ws_ping_interval_secs: u64,
    /// Requests one chat WebSocket may run at the same time; more get an error frame. Its
    /// largest accepted frame is `max_body_bytes`, as for a REST body.
    pub ws_max_concurrent_requests: usize,
    /// When set, `/metrics` wants `Authorization: Bearer <metrics_token>`; unset, it is open
    /// (bind the gateway where only the scraper reaches it, or set this).
    pub metrics_token: Option<String>,
    /// The token between gateways and `starfire worker`s (STARFIRE_WORKER_TOKEN): a worker
    /// wants it from callers, a gateway sends it to the workers of `[[models]]` entries with
    /// `workers`. A worker without one listens on loopback only.
    pub worker_token: Option<String>,
    /// Prices, free credits and usage-row liveness (the `[metering]` table; see
    /// `metering::config`).
    pub metering: MeteringConfig,
    /// Billing operators and invoice finalization (the `[billing]` table; see
    /// `billing::config`).
    pub billing: BillingConfig,
    /// Caps on requests queued in the scheduler (not yet running): over an organization's caps
    /// a request gets 429, over the server's 503, both with `Retry-After`.
    pub admission: AdmissionLimits,
    /// Private deployments: who approves, what runs replicas, what capacity costs (the
    /// `[deployments]` table; see `deployments`).
    pub deployments: crate::deployments::DeploymentsConfig,
}

/// What the rate limiter does when Redis is configured but fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedisFailure {
    /// Refuse inference requests with 503 `rate_limiter_unavailable` until Redis is back.
    Closed,
    /// Count in this replica's process: each replica then enforces the limits on its own.
    Local,
}

impl RedisFailure {
    fn parse(name: &str, value: &str) -> Result<RedisFailure, ConfigError> {
        match value.trim() {
            "closed" => Ok(RedisFailure::Closed),
            "local" => Ok(RedisFailure::Local),
            other => Err(ConfigError::Invalid {
                name: name.to_owned(),
                message: format!("'{other}' is not one of closed, local"),
            }),
        }
    }
}

/// The KV cache budget when none is configured: a quarter of the memory available now (the
/// weights, activations and other processes keep the rest), clamped to 256 MiB..8 GiB.
fn default_kv_cache_memory() -> u64 {
    kv_cache_memory_for(
        std::fs::read_to_string("/proc/meminfo")
            .ok()
            .as_deref()
            .and_then(mem_available),
    )
}

fn kv_cache_memory_for(available: Option<u64>) -> u64 {
    match available {
        Some(bytes) => {
            scheduler::config::default_kv_cache_memory(bytes, 0.25, 0).clamp(256 << 20, 8 << 30)
        }
        None => 1 << 30,
    }
}

/// `MemAvailable` of a `/proc/meminfo` text, in bytes.
fn mem_available(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

impl std::fmt::Debug for Config {
    // Hand-written so that the secret never reaches a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("home", &self.home)
            .field("listen", &self.listen)
            .field("tls", &self.tls)
            .field("database_url", &redact_url(&self.database_url))
            .field("redis_url", &self.redis_url.as_deref().map(redact_url))
            .field("rate_limit_redis_failure", &self.rate_limit_redis_failure)
            .field("redis_timeout_ms", &self.redis_timeout_ms)
            .field("rate_limit_key_prefix", &self.rate_limit_key_prefix)
            .field("session_secret", &"<redacted>")
            .field("access_token_ttl_secs", &self.access_token_ttl_secs)
            .field("refresh_token_ttl_secs", &self.refresh_token_ttl_secs)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("body_timeout_secs", &self.body_timeout_secs)
            .field("invite_ttl_secs", &self.invite_ttl_secs)
            .field("models", &self.models)
            .field("kv_cache_memory", &self.kv_cache_memory)
            .field("kv_cache_memory_set", &self.kv_cache_memory_set)
            .field("ws_ticket_ttl_secs", &self.ws_ticket_ttl_secs)
            .field("ws_idle_timeout_secs", &self.ws_idle_timeout_secs)
            .field("ws_ping_interval_secs", &self.ws_ping_interval_secs)
            .field(
                "ws_max_concurrent_requests",
                &self.ws_max_concurrent_requests,
            )
            .field(
                "metrics_token",
                &self.metrics_token.as_ref().map(|_| "<redacted>"),
            )
            .field(
                "worker_token",
                &self.worker_token.as_ref().map(|_| "<redacted>"),
            )
            .field("metering", &self.metering)
            .field("billing", &self.billing)
            .field("deployments", &self.deployments)
            .field("admission", &self.admission)
            .finish()
    }
}

/// The TOML file: every field optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    home: Option<PathBuf>,
    listen: Option<String>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    database_url: Option<String>,
    redis_url: Option<String>,
    rate_limit_redis_failure: Option<String>,
    redis_timeout_ms: Option<u64>,
    rate_limit_key_prefix: Option<String>,
    session_secret: Option<String>,
    access_token_ttl_secs: Option<u64>,
    refresh_token_ttl_secs: Option<u64>,
    max_body_bytes: Option<usize>,
    body_timeout_secs: Option<u64>,
    invite_ttl_secs: Option<u64>,
    worker_token: Option<String>,
    model_path: Option<PathBuf>,
    kv_cache_memory: Option<u64>,
    metrics_token: Option<String>,
    metering: Option<MeteringFile>,
    billing: Option<BillingFile>,
    deployments: Option<crate::deployments::DeploymentsConfig>,
    #[serde(default)]
    models: Vec<ModelEntry>,
    ws_ticket_ttl_secs: Option<u64>,
    ws_idle_timeout_secs: Option<u64>,
    ws_ping_interval_secs: Option<u64>,
    ws_max_concurrent_requests: Option<usize>,
    max_waiting_requests: Option<usize>,
    max_waiting_tokens: Option<usize>,
    max_waiting_requests_per_tenant: Option<usize>,
    max_waiting_tokens_per_tenant: Option<usize>,
}

impl FileConfig {
    fn read(path: &Path) -> Result<FileConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.message().to_owned(),
        })
    }
}

/// Where the TLS certificate chain and its private key are (PEM files).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TlsFiles {
    /// Both or neither: a certificate without its key (or the reverse) is an error.
    fn resolve(
        cert: Option<PathBuf>,
        key: Option<PathBuf>,
    ) -> Result<Option<TlsFiles>, ConfigError> {
        match (cert, key) {
            (Some(cert), Some(key)) => Ok(Some(TlsFiles { cert, key })),
            (None, None) => Ok(None),
            (cert, _) => Err(ConfigError::Invalid {
                name: if cert.is_some() {
                    "tls_key"
                } else {
                    "tls_cert"
                }
                .into(),
                message: "TLS needs both tls_cert (STARFIRE_TLS_CERT) and tls_key \
                          (STARFIRE_TLS_KEY)"
                    .into(),
            }),
        }
    }

    /// Reads and checks the pair (at start: a bad file stops the server with the reason).
    pub fn load(&self) -> Result<std::sync::Arc<crate::tls::Reloading>, crate::tls::TlsError> {
        crate::tls::Reloading::load(&self.cert, &self.key)
    }
}

/// The served models: `[[models]]`, or the one model of `model_path` (STARFIRE_MODEL_PATH, or
/// the default model when neither is given); both at once is an error.
fn models_of(
    env: &impl Fn(&str) -> Option<String>,
    file_model_path: Option<PathBuf>,
    file_models: Vec<ModelEntry>,
) -> Result<Vec<ModelEntry>, ConfigError> {
    let model_path = env("STARFIRE_MODEL_PATH")
        .filter(|s| !s.is_empty())
        .map(PathBuf::from)
        .or(file_model_path);
    match (file_models.is_empty(), model_path) {
        (true, path) => Ok(vec![ModelEntry::from_model_path(path.as_deref())]),
        (false, None) => Ok(file_models),
        (false, Some(_)) => Err(ConfigError::Invalid {
            name: "model_path".into(),
            message: "give either model_path (STARFIRE_MODEL_PATH) or [[models]], not both".into(),
        }),
    }
}

impl Config {
    /// `kv_cache_memory`, and whether it was set, for the registry.
    pub fn kv_cache_budget(&self) -> crate::registry::KvCacheMemory {
        crate::registry::KvCacheMemory {
            bytes: self.kv_cache_memory,
            set: self.kv_cache_memory_set,
        }
    }

    /// Loads from the process environment and the optional file, then makes sure a session
    /// secret exists (generating and persisting one under `home` on first start).
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let mut config = Config::resolve(path, |name| std::env::var(name).ok())?;
        config.ensure_secret()?;
        Ok(config)
    }

    /// Defaults, then file, then `env` (a lookup so tests need not touch the real environment).
    /// Does not touch the disk except to read the file.
    pub fn resolve(
        path: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let file = match path {
            Some(path) => FileConfig::read(path)?,
            None => FileConfig::default(),
        };
        let admission = admission_limits(&env, &file)?;
        let home = env("STARFIRE_HOME")
            .map(PathBuf::from)
            .or(file.home)
            .unwrap_or_else(|| default_home(&env));
        let database_url = env("STARFIRE_DATABASE_URL")
            .or(file.database_url)
            .unwrap_or_else(|| format!("sqlite://{}", home.join("starfire.db").display()));
        if !(database_url.starts_with("sqlite:") || database_url.starts_with("postgres")) {
            return Err(ConfigError::Invalid {
                name: "database_url".into(),
                message: "must start with sqlite: or postgres:".into(),
            });
        }
        let metering = MeteringConfig::resolve(file.metering, &env)
            .map_err(|(name, message)| ConfigError::Invalid { name, message })?;
        let billing = BillingConfig::resolve(file.billing, metering.orphan_after_secs, &env)
            .map_err(|(name, message)| ConfigError::Invalid { name, message })?;
        let rate_limit_redis_failure = match env("STARFIRE_RATE_LIMIT_REDIS_FAILURE") {
            Some(v) => RedisFailure::parse("STARFIRE_RATE_LIMIT_REDIS_FAILURE", &v)?,
            None => match &file.rate_limit_redis_failure {
                Some(v) => RedisFailure::parse("rate_limit_redis_failure", v)?,
                None => RedisFailure::Local,
            },
        };
        let tls = TlsFiles::resolve(
            env("STARFIRE_TLS_CERT")
                .filter(|s| !s.is_empty())
                .map(PathBuf::from)
                .or(file.tls_cert),
            env("STARFIRE_TLS_KEY")
                .filter(|s| !s.is_empty())
                .map(PathBuf::from)
                .or(file.tls_key),
        )?;
        let models = models_of(&env, file.model_path, file.models)?;
        let kv_cache_memory =
            number::<u64>(&env, "STARFIRE_KV_CACHE_MEMORY")?.or(file.kv_cache_memory);
        crate::registry::validate(&models)?;
        let deployments = file.deployments.unwrap_or_default();
        deployments
            .validate()
            .map_err(|message| ConfigError::Invalid {
                name: "deployments".into(),
                message,
            })?;
        Ok(Config {
            metering,
            billing,
            deployments,
            metrics_token: env("STARFIRE_METRICS_TOKEN")
                .or(file.metrics_token)
                .filter(|s| !s.is_empty()),
            worker_token: env("STARFIRE_WORKER_TOKEN")
                .or(file.worker_token)
                .filter(|s| !s.is_empty()),
            listen: env("STARFIRE_LISTEN")
                .or(file.listen)
                .unwrap_or_else(|| "127.0.0.1:8080".to_owned()),
            tls,
            database_url,
            redis_url: env("STARFIRE_REDIS_URL")
                .or(file.redis_url)
                .filter(|s| !s.is_empty()),
            rate_limit_redis_failure,
            redis_timeout_ms: number(&env, "STARFIRE_REDIS_TIMEOUT_MS")?
                .or(file.redis_timeout_ms)
                .unwrap_or(250),
            rate_limit_key_prefix: env("STARFIRE_RATE_LIMIT_KEY_PREFIX")
                .or(file.rate_limit_key_prefix)
                .unwrap_or_else(|| "starfire:rl:".to_owned()),
            session_secret: env("STARFIRE_SESSION_SECRET")
                .or(file.session_secret)
                .unwrap_or_default(),
            access_token_ttl_secs: number(&env, "STARFIRE_ACCESS_TOKEN_TTL_SECS")?
                .or(file.access_token_ttl_secs)
                .unwrap_or(900),
            refresh_token_ttl_secs: number(&env, "STARFIRE_REFRESH_TOKEN_TTL_SECS")?
                .or(file.refresh_token_ttl_secs)
                .unwrap_or(30 * 24 * 3600),
            max_body_bytes: number(&env, "STARFIRE_MAX_BODY_BYTES")?
                .or(file.max_body_bytes)
                .unwrap_or(1 << 20),
            body_timeout_secs: match number(&env, "STARFIRE_BODY_TIMEOUT_SECS")?
                .or(file.body_timeout_secs)
                .unwrap_or(30)
            {
                0 => {
                    return Err(ConfigError::Invalid {
                        name: "body_timeout_secs".into(),
                        message: "must be at least 1".into(),
                    })
                }
                secs => secs,
            },
            invite_ttl_secs: number(&env, "STARFIRE_INVITE_TTL_SECS")?
                .or(file.invite_ttl_secs)
                .unwrap_or(7 * 24 * 3600),
            models,
            kv_cache_memory: kv_cache_memory.unwrap_or_else(default_kv_cache_memory),
            kv_cache_memory_set: kv_cache_memory.is_some(),
            ws_ticket_ttl_secs: positive(
                number(&env, "STARFIRE_WS_TICKET_TTL_SECS")?.or(file.ws_ticket_ttl_secs),
                "ws_ticket_ttl_secs",
            )?
            .unwrap_or(60),
            ws_idle_timeout_secs: positive(
                number(&env, "STARFIRE_WS_IDLE_TIMEOUT_SECS")?.or(file.ws_idle_timeout_secs),
                "ws_idle_timeout_secs",
            )?
            .unwrap_or(300),
            ws_ping_interval_secs: positive(
                number(&env, "STARFIRE_WS_PING_INTERVAL_SECS")?.or(file.ws_ping_interval_secs),
                "ws_ping_interval_secs",
            )?
            .unwrap_or(30),
            ws_max_concurrent_requests: positive(
                number(&env, "STARFIRE_WS_MAX_CONCURRENT_REQUESTS")?
                    .or(file.ws_max_concurrent_requests),
                "ws_max_concurrent_requests",
            )?
            .unwrap_or(16),
            admission,
            home,
        })
    }

    /// When no secret was configured: read `{home}/session_secret`, or create it (mode 0600).
    pub fn ensure_secret(&mut self) -> Result<(), ConfigError> {
        if !self.session_secret.is_empty() {
            if self.session_secret.len() < 32 {
                return Err(ConfigError::Invalid {
                    name: "session_secret".into(),
                    message: "must be at least 32 characters".into(),
                });
            }
            return Ok(());
        }
        let path = self.home.join("session_secret");
        let err = |source| ConfigError::Secret {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(&self.home).map_err(err)?;
        match std::fs::read_to_string(&path) {
            Ok(existing) if existing.trim().len() >= 32 => {
                self.session_secret = existing.trim().to_owned();
                return Ok(());
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(err(e)),
        }
        let secret = random_base62(64);
        write_private(&path, &secret).map_err(err)?;
        self.session_secret = secret;
        Ok(())
    }
}

/// The scheduler's queue caps: each from the environment, else the file, else the scheduler's
/// default. Zero would refuse every request, so it is an error.
fn admission_limits(
    env: &impl Fn(&str) -> Option<String>,
    file: &FileConfig,
) -> Result<AdmissionLimits, ConfigError> {
    let d = AdmissionLimits::default();
    let cap = |name: &str, field: &str, from_file: Option<usize>, default: usize| {
        let value = number(env, name)?.or(from_file).unwrap_or(default);
        if value == 0 {
            return Err(ConfigError::Invalid {
                name: field.to_owned(),
                message: "must be at least 1".to_owned(),
            });
        }
        Ok(value)
    };
    Ok(AdmissionLimits {
        max_waiting_requests: cap(
            "STARFIRE_MAX_WAITING_REQUESTS",
            "max_waiting_requests",
            file.max_waiting_requests,
            d.max_waiting_requests,
        )?,
        max_waiting_tokens: cap(
            "STARFIRE_MAX_WAITING_TOKENS",
            "max_waiting_tokens",
            file.max_waiting_tokens,
            d.max_waiting_tokens,
        )?,
        max_waiting_requests_per_tenant: cap(
            "STARFIRE_MAX_WAITING_REQUESTS_PER_TENANT",
            "max_waiting_requests_per_tenant",
            file.max_waiting_requests_per_tenant,
            d.max_waiting_requests_per_tenant,
        )?,
        max_waiting_tokens_per_tenant: cap(
            "STARFIRE_MAX_WAITING_TOKENS_PER_TENANT",
            "max_waiting_tokens_per_tenant",
            file.max_waiting_tokens_per_tenant,
            d.max_waiting_tokens_per_tenant,
        )?,
    })
}

fn default_home(env: &impl Fn(&str) -> Option<String>) -> PathBuf {
    env("HOME")
        .map(|h| PathBuf::from(h).join(".cache").join("starfire"))
        .unwrap_or_else(|| PathBuf::from(".starfire"))
}

fn number<T: std::str::FromStr>(
    env: &impl Fn(&str) -> Option<String>,
    name: &str,
) -> Result<Option<T>, ConfigError> {
    env(name)
        .map(|v| {
            v.trim().parse::<T>().map_err(|_| ConfigError::Invalid {
                name: name.to_owned(),
                message: format!("'{v}' is not a non-negative integer"),
            })
        })
        .transpose()
}

/// Refuses 0 for settings where it would make no sense (a ticket dead on arrival).
fn positive<T: PartialEq + Default>(
    value: Option<T>,
    name: &str,
) -> Result<Option<T>, ConfigError> {
    match value {
        Some(v) if v == T::default() => Err(ConfigError::Invalid {
            name: name.to_owned(),
            message: "must be at least 1".to_owned(),
        }),
        other => Ok(other),
    }
}

fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()
}

/// `postgres://user:password@host/db` → `postgres://user:***@host/db`.
fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let creds = &url[scheme + 3..at];
            match creds.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme + 3],
                    &creds[..colon],
                    &url[at..]
                ),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn defaults_need_nothing_but_home() {
        let c = Config::resolve(None, env_of(&[("HOME", "/h")])).unwrap();
        assert_eq!(c.listen, "127.0.0.1:8080");
        assert_eq!(c.home, PathBuf::from("/h/.cache/starfire"));
        assert_eq!(c.database_url, "sqlite:///h/.cache/starfire/starfire.db");
        assert_eq!(c.redis_url, None);
        assert_eq!(c.access_token_ttl_secs, 900);
        assert_eq!(c.max_body_bytes, 1 << 20);
        assert_eq!(c.rate_limit_redis_failure, RedisFailure::Local);
        assert_eq!(c.redis_timeout_ms, 250);
        assert_eq!(c.rate_limit_key_prefix, "starfire:rl:");
        assert_eq!(c.models, vec![ModelEntry::from_model_path(None)]);
        assert_eq!(c.models[0].name, "smollm2-135m-instruct");
        assert!((256 << 20..=8 << 30).contains(&c.kv_cache_memory));
        assert!(!c.kv_cache_memory_set);
        assert_eq!(c.ws_ticket_ttl_secs, 60);
        assert_eq!(c.ws_idle_timeout_secs, 300);
        assert_eq!(c.ws_ping_interval_secs, 30);
        assert_eq!(c.ws_max_concurrent_requests, 16);
    }

    #[test]
    fn kv_cache_memory_says_whether_it_was_set() {
        let c =
            Config::resolve(None, env_of(&[("STARFIRE_KV_CACHE_MEMORY", "123456789")])).unwrap();
        assert_eq!(
            c.kv_cache_budget(),
            crate::registry::KvCacheMemory::set(123_456_789)
        );
    }

    #[test]
    fn websocket_settings_come_from_the_environment_and_refuse_zero() {
        let c = Config::resolve(
            None,
            env_of(&[
                ("STARFIRE_WS_TICKET_TTL_SECS", "5"),
                ("STARFIRE_WS_MAX_CONCURRENT_REQUESTS", "2"),
            ]),
        )
        .unwrap();
        assert_eq!(c.ws_ticket_ttl_secs, 5);
        assert_eq!(c.ws_max_concurrent_requests, 2);
        let err =
            Config::resolve(None, env_of(&[("STARFIRE_WS_IDLE_TIMEOUT_SECS", "0")])).unwrap_err();
        assert!(err.to_string().contains("ws_idle_timeout_secs"), "{err}");
    }

    #[test]
    fn models_come_from_the_file_or_model_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "[[models]]\nname = \"a\"\n[[models]]\nname = \"b\"\nmax_model_len = 64\n",
        )
        .unwrap();
        let c = Config::resolve(Some(&path), env_of(&[])).unwrap();
        let names: Vec<_> = c.models.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(c.models[1].max_model_len, Some(64));

        let both = Config::resolve(Some(&path), env_of(&[("STARFIRE_MODEL_PATH", "/m/x.gguf")]))
            .unwrap_err();
        assert!(both.to_string().contains("not both"), "{both}");

        let c = Config::resolve(None, env_of(&[("STARFIRE_MODEL_PATH", "/m/x.gguf")])).unwrap();
        assert_eq!(c.models[0].name, "x");
        assert_eq!(c.models[0].path.as_deref(), Some(Path::new("/m/x.gguf")));

        std::fs::write(
            &path,
            "[[models]]\nname = \"a\"\n[[models]]\nname = \"A\"\n",
        )
        .unwrap();
        assert!(Config::resolve(Some(&path), env_of(&[])).is_err());
    }

    #[test]
    fn kv_cache_default_follows_available_memory() {
        let meminfo =
            "MemTotal:       24000000 kB\nMemFree:         1000 kB\nMemAvailable:   16777216 kB\n";
        assert_eq!(mem_available(meminfo), Some(16 << 30));
        assert_eq!(mem_available("MemTotal: 5 kB\n"), None);
        assert_eq!(kv_cache_memory_for(Some(16 << 30)), 4 << 30);
        assert_eq!(kv_cache_memory_for(Some(64 << 30)), 8 << 30);
        assert_eq!(kv_cache_memory_for(Some(512 << 20)), 256 << 20);
        assert_eq!(kv_cache_memory_for(None), 1 << 30);
    }

    #[test]
    fn environment_overrides_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("starfire.toml");
        std::fs::write(
            &path,
            "listen = \"0.0.0.0:9000\"\nmax_body_bytes = 10\nredis_url = \"redis://127.0.0.1:6379\"\n",
        )
        .unwrap();
        let c = Config::resolve(
            Some(&path),
            env_of(&[("STARFIRE_LISTEN", "127.0.0.1:1"), ("STARFIRE_HOME", "/x")]),
        )
        .unwrap();
        assert_eq!(c.listen, "127.0.0.1:1");
        assert_eq!(c.max_body_bytes, 10);
        assert_eq!(c.redis_url.as_deref(), Some("redis://127.0.0.1:6379"));
        assert_eq!(c.database_url, "sqlite:///x/starfire.db");
    }

    #[test]
    fn unknown_fields_and_bad_numbers_are_errors_that_name_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("starfire.toml");
        std::fs::write(&path, "lisen = \"x\"\n").unwrap();
        let err = Config::resolve(Some(&path), env_of(&[])).unwrap_err();
        assert!(err.to_string().contains("lisen"), "{err}");
        let err =
            Config::resolve(None, env_of(&[("STARFIRE_MAX_BODY_BYTES", "lots")])).unwrap_err();
        assert!(err.to_string().contains("STARFIRE_MAX_BODY_BYTES"), "{err}");
        let err = Config::resolve(
            None,
            env_of(&[("STARFIRE_RATE_LIMIT_REDIS_FAILURE", "open")]),
        )
        .unwrap_err();
        assert!(err.to_string().contains("closed, local"), "{err}");
    }

    #[test]
    fn the_redis_failure_mode_comes_from_the_file_or_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("starfire.toml");
        std::fs::write(
            &path,
            "rate_limit_redis_failure = \"closed\"\nredis_timeout_ms = 50\n",
        )
        .unwrap();
        let c = Config::resolve(Some(&path), env_of(&[])).unwrap();
        assert_eq!(c.rate_limit_redis_failure, RedisFailure::Closed);
        assert_eq!(c.redis_timeout_ms, 50);
        let c = Config::resolve(
            Some(&path),
            env_of(&[("STARFIRE_RATE_LIMIT_REDIS_FAILURE", "local")]),
        )
        .unwrap();
        assert_eq!(c.rate_limit_redis_failure, RedisFailure::Local);
    }

    #[test]
    fn the_session_secret_is_generated_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().to_str().unwrap().to_owned();
        let mut first = Config::resolve(None, env_of(&[("STARFIRE_HOME", &home)])).unwrap();
        first.ensure_secret().unwrap();
        assert!(first.session_secret.len() >= 32);
        let mut second = Config::resolve(None, env_of(&[("STARFIRE_HOME", &home)])).unwrap();
        second.ensure_secret().unwrap();
        assert_eq!(first.session_secret, second.session_secret);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("session_secret"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(!format!("{first:?}").contains(&first.session_secret));
    }

    #[test]
    fn queue_caps_come_from_the_file_and_the_environment() {
        let c = Config::resolve(None, env_of(&[])).unwrap();
        assert_eq!(c.admission, AdmissionLimits::default());

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("starfire.toml");
        std::fs::write(
            &path,
            "max_waiting_requests = 50\nmax_waiting_tokens_per_tenant = 300\n",
        )
        .unwrap();
        let c = Config::resolve(
            Some(&path),
            env_of(&[
                ("STARFIRE_MAX_WAITING_TOKENS_PER_TENANT", "200"),
                ("STARFIRE_MAX_WAITING_REQUESTS_PER_TENANT", "3"),
            ]),
        )
        .unwrap();
        assert_eq!(
            c.admission,
            AdmissionLimits {
                max_waiting_requests: 50,
                max_waiting_requests_per_tenant: 3,
                max_waiting_tokens_per_tenant: 200,
                ..AdmissionLimits::default()
            }
        );

        let err =
            Config::resolve(None, env_of(&[("STARFIRE_MAX_WAITING_TOKENS", "0")])).unwrap_err();
        assert!(err.to_string().contains("max_waiting_tokens"), "{err}");
    }

    #[test]
    fn database_passwords_are_redacted_in_debug_output() {
        assert_eq!(redact_url("postgres://u:pw@h/db"), "postgres://u:***@h/db");
    }
}
