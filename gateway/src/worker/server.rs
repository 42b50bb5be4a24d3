//! `starfire worker`: the served models (engine and scheduler) behind HTTP, with no accounts and
//! no database. A gateway sends it requests it has tokenized and metered (`protocol::wire`);
//! the worker runs them and streams the deltas back.
//!
//! - `/health`: the process answers. `/ready`: a model is loaded, none is out of service (its
//!   GPU failed) and the worker is not draining (a load balancer's readiness probe).
//!   `/metrics`: the scheduler's series under `starfire:` and, for tools built around vLLM
//!   (Kubernetes' Gateway API Inference Extension, llm-d), the same gauges under vLLM's names.
//! - The worker routes need `Authorization: Bearer <worker token>` when the worker has one (it
//!   must, unless it listens on loopback only): the token is what lets a caller name the tenant,
//!   its weight and the priority.
//! - SIGTERM (or Ctrl-C) drains: `/ready` turns 503 and new requests are refused with
//!   `shutting_down` (a gateway retries them on another worker) while the running ones finish;
//!   then the listener closes and the process exits.

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::web::{self, Bytes};
use actix_web::{App, HttpRequest, HttpResponse, HttpServer};
use protocol::wire::{
    EmbedAnswer, EmbedBody, ErrorAnswer, GenerateBody, WorkerModel, WorkerModels, EMBED_PATH,
    GENERATE_PATH, MODELS_PATH, NDJSON, PRIORITY_HEADER, REQUEST_ID_HEADER, TENANT_HEADER,
    WEIGHT_HEADER,
};
use protocol::{BackendError, InferenceBackend, InvalidParam, NewRequest};

use crate::server::ServeError;
use crate::store::secret::{constant_time_eq, random_base62};

/// Largest request body a worker reads: a prompt of a few hundred thousand token ids.
const MAX_BODY_BYTES: usize = 8 << 20;

/// What every handler of one worker shares.
#[derive(Clone)]
pub struct WorkerState {
    backend: Arc<dyn InferenceBackend>,
    token: Option<Arc<str>>,
    draining: Arc<AtomicBool>,
    /// Generations whose answer is still being streamed.
    running: Arc<AtomicUsize>,
}

/// One generation being streamed: counted in `running` until its body is dropped.
pub(crate) struct Running(Arc<AtomicUsize>);

impl Running {
    pub(crate) fn start(count: &Arc<AtomicUsize>) -> Self {
        count.fetch_add(1, Ordering::SeqCst);
        Running(count.clone())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl WorkerState {
    /// A worker over `backend`; `token`, when given, is required on the worker routes.
    pub fn new(backend: Arc<dyn InferenceBackend>, token: Option<String>) -> Self {
        WorkerState {
            backend,
            token: token.filter(|t| !t.is_empty()).map(Arc::from),
            draining: Arc::new(AtomicBool::new(false)),
            running: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Refuses new requests from now on; running ones go on.
    pub fn drain(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    pub(crate) fn draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    pub(crate) fn backend(&self) -> &Arc<dyn InferenceBackend> {
        &self.backend
    }

    pub(crate) fn running(&self) -> &Arc<AtomicUsize> {
        &self.running
    }

    pub(crate) fn authorized(&self, req: &HttpRequest) -> bool {
        let Some(token) = &self.token else {
            return true;
        };
        let given = req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default();
        constant_time_eq(given, token)
    }
}

/// The worker's routes, for `HttpServer` and for in-process tests: its own, and OpenAI's
/// (`openai_routes`).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.app_data(web::PayloadConfig::new(MAX_BODY_BYTES))
        .app_data(crate::api::body::BodyLimit {
            bytes: MAX_BODY_BYTES,
            ..Default::default()
        })
        .configure(super::openai_routes::configure)
        .route("/health", web::get().to(health))
        .route("/ready", web::get().to(ready))
        .route("/metrics", web::get().to(metrics))
        .route(MODELS_PATH, web::get().to(models))
        .route(GENERATE_PATH, web::post().to(generate))
        .route(EMBED_PATH, web::post().to(embed));
}

async fn health() -> HttpResponse {
    HttpResponse::Ok().body("ok")
}

async fn ready(state: web::Data<WorkerState>) -> HttpResponse {
    if state.draining.load(Ordering::SeqCst) {
        return HttpResponse::ServiceUnavailable().body("draining");
    }
    if let Some(why) = state.backend.out_of_service() {
        return HttpResponse::ServiceUnavailable().body(format!("out of service: {why}"));
    }
    match state.backend.models() {
        Ok(models) if !models.is_empty() => HttpResponse::Ok().body("ready"),
        _ => HttpResponse::ServiceUnavailable().body("no model loaded"),
    }
}

async fn metrics(state: web::Data<WorkerState>) -> HttpResponse {
    let text = state.backend.prometheus();
    let mut out = with_vllm_names(&text);
    out.push_str(&text);
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(out)
}

/// The scheduler series that tools written for vLLM read, under vLLM's names and with the
/// same labels: `starfire:num_requests_running` is also `vllm:num_requests_running`, ...
fn with_vllm_names(text: &str) -> String {
    const SHARED: [&str; 5] = [
        "num_requests_running",
        "num_requests_waiting",
        "kv_cache_usage_perc",
        "prefix_cache_queries_total",
        "prefix_cache_hits_total",
    ];
    let mut out = String::new();
    for line in text.lines() {
        let renamed = SHARED.iter().find_map(|name| {
            let ours = format!("starfire:{name}");
            let rest = line
                .strip_prefix("# HELP ")
                .or_else(|| line.strip_prefix("# TYPE "))
                .unwrap_or(line);
            let tail = rest.strip_prefix(&ours)?;
            (tail.starts_with([' ', '{'])).then(|| line.replacen(&ours, &format!("vllm:{name}"), 1))
        });
        if let Some(line) = renamed {
            out.push_str(&line);
            out.push('\n');
        }
    }
    out
}

fn refused(error: BackendError) -> HttpResponse {
    let status =
        StatusCode::from_u16(error.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    HttpResponse::build(status).json(ErrorAnswer { error })
}

fn unauthorized() -> HttpResponse {
    HttpResponse::Unauthorized().json(ErrorAnswer {
        error: BackendError::InvalidRequest("This worker needs its token.".to_owned()),
    })
}

/// The body as `T`, or the refusal that says what is wrong with it.
fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, BackendError> {
    serde_json::from_slice(body)
        .map_err(|e| BackendError::InvalidRequest(format!("The request body is not valid: {e}")))
}

async fn models(state: web::Data<WorkerState>, req: HttpRequest) -> HttpResponse {
    if !state.authorized(&req) {
        return unauthorized();
    }
    let cards = match state.backend.models() {
        Ok(cards) => cards,
        Err(e) => return refused(e),
    };
    let mut data = Vec::with_capacity(cards.len());
    for card in cards {
        match state.backend.model(&card.id) {
            Ok(m) => data.push(WorkerModel {
                id: card.id,
                created: card.created,
                max_model_len: m.max_model_len(),
                vocab_size: m.vocab_size(),
                embedding_size: m.embedding_size(),
            }),
            Err(e) => return refused(e),
        }
    }
    HttpResponse::Ok().json(WorkerModels { data })
}

/// Who a request runs for, as its caller (a gateway) said in the worker headers.
pub(crate) struct Caller {
    pub tenant: String,
    pub weight: f64,
    pub priority: i32,
    pub request_id: String,
}

/// The tenant, weight, priority and request id a gateway sent in headers.
pub(crate) fn caller_of(req: &HttpRequest) -> Result<Caller, BackendError> {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    let tenant = header(TENANT_HEADER).unwrap_or("anonymous");
    if tenant.len() > 128 {
        return Err(InvalidParam::new(TENANT_HEADER, "must be at most 128 bytes").into());
    }
    let weight = match header(WEIGHT_HEADER) {
        None => 1.0,
        Some(v) => v
            .parse::<f64>()
            .ok()
            .filter(|w| w.is_finite() && *w > 0.0 && *w <= 1e6)
            .ok_or_else(|| InvalidParam::new(WEIGHT_HEADER, "must be a number in (0, 1e6]"))?,
    };
    let priority = match header(PRIORITY_HEADER) {
        None => 0,
        Some(v) => v
            .parse::<i32>()
            .map_err(|_| InvalidParam::new(PRIORITY_HEADER, "must be an integer"))?,
    };
    let request_id = match header(REQUEST_ID_HEADER) {
        Some(id) if id.len() <= 128 => id.to_owned(),
        Some(_) => {
            return Err(InvalidParam::new(REQUEST_ID_HEADER, "must be at most 128 bytes").into())
        }
        None => format!("wrk_{}", random_base62(24)),
    };
    Ok(Caller {
        tenant: tenant.to_owned(),
        weight,
        priority,
        request_id,
    })
}

/// A generation request as the scheduler takes it, for the caller in the headers.
fn request_of(req: &HttpRequest, body: GenerateBody) -> Result<NewRequest, BackendError> {
    let caller = caller_of(req)?;
    Ok(NewRequest {
        request_id: caller.request_id,
        tenant: caller.tenant,
        tenant_weight: caller.weight,
        priority: caller.priority,
        prompt_token_ids: body.prompt_token_ids,
        params: body.params,
        cache_salt: body.cache_salt,
    })
}

async fn generate(state: web::Data<WorkerState>, req: HttpRequest, body: Bytes) -> HttpResponse {
    if !state.authorized(&req) {
        return unauthorized();
    }
    if state.draining.load(Ordering::SeqCst) {
        return refused(BackendError::ShuttingDown);
    }
    let body: GenerateBody = match parse(&body) {
        Ok(body) => body,
        Err(e) => return refused(e),
    };
    let model = match state.backend.model(&body.model) {
        Ok(model) => model,
        Err(e) => return refused(e),
    };
    let vocab = model.vocab_size();
    if let Some(bad) = body.prompt_token_ids.iter().find(|&&t| t as usize >= vocab) {
        return refused(out_of_vocabulary("prompt_token_ids", *bad, vocab));
    }
    let request = match request_of(&req, body) {
        Ok(request) => request,
        Err(e) => return refused(e),
    };
    let stream = match model.submit(request).await {
        Ok(stream) => stream,
        Err(e) => return refused(e),
    };
    // One delta per line. The client closing the connection drops this body, and with it the
    // delta stream, which aborts the request in the scheduler.
    let running = Running::start(&state.running);
    let lines = futures_util::stream::unfold((stream, running), |(mut stream, running)| async {
        let delta = stream.recv().await?;
        let mut line = serde_json::to_vec(&delta).unwrap_or_default();
        line.push(b'\n');
        Some((Ok::<_, Infallible>(Bytes::from(line)), (stream, running)))
    });
    HttpResponse::Ok()
        .content_type(NDJSON)
        .insert_header(("cache-control", "no-cache"))
        .streaming(lines)
}

fn out_of_vocabulary(field: &str, token: u32, vocab: usize) -> BackendError {
    InvalidParam::new(
        field,
        format!("token id {token} is outside the model's vocabulary of {vocab}"),
    )
    .into()
}

async fn embed(state: web::Data<WorkerState>, req: HttpRequest, body: Bytes) -> HttpResponse {
    if !state.authorized(&req) {
        return unauthorized();
    }
    if state.draining.load(Ordering::SeqCst) {
        return refused(BackendError::ShuttingDown);
    }
    let body: EmbedBody = match parse(&body) {
        Ok(body) => body,
        Err(e) => return refused(e),
    };
    let model = match state.backend.model(&body.model) {
        Ok(model) => model,
        Err(e) => return refused(e),
    };
    let vocab = model.vocab_size();
    if let Some(bad) = body.tokens.iter().find(|&&t| t as usize >= vocab) {
        return refused(out_of_vocabulary("tokens", *bad, vocab));
    }
    if body.tokens.is_empty() || body.tokens.len() > model.max_model_len() {
        return refused(BackendError::ContextLengthExceeded(format!(
            "An input must have 1 to {} tokens.",
            model.max_model_len()
        )));
    }
    match model.embed(body.tokens).await {
        Ok(embedding) => HttpResponse::Ok().json(EmbedAnswer { embedding }),
        Err(e) => refused(e),
    }
}

/// What `starfire worker`'s flags change in every model it runs, whatever its `[[models]]`
/// entry says.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WorkerOverrides {
    /// The engine (`--backend`).
    pub backend: Option<crate::registry::ModelBackend>,
    /// The share of the GPU each model takes instead of its `kv_cache_memory`
    /// (`--gpu-memory-utilization`).
    pub gpu_memory_utilization: Option<f64>,
    /// The GPU (`--cuda-device`).
    pub cuda_device: Option<usize>,
}

/// The worker's state for `config`: the models of `[[models]]` (or `model`, a file or
/// directory, instead), each loaded into this process whatever its `workers` says, with
/// `overrides` applied, and the worker token. Without a token the worker may only listen on
/// loopback.
pub fn load(
    config: &crate::config::Config,
    listen: &str,
    model: Option<&std::path::Path>,
    overrides: &WorkerOverrides,
) -> Result<WorkerState, ServeError> {
    if config.worker_token.is_none() && !is_loopback(listen) {
        return Err(ServeError::Model(format!(
            "a worker listening on {listen} needs a token: set STARFIRE_WORKER_TOKEN (or \
             worker_token), the same on the gateways"
        )));
    }
    let mut entries: Vec<crate::registry::ModelEntry> = match model {
        Some(path) => vec![crate::registry::ModelEntry::from_model_path(Some(path))],
        None => config
            .models
            .iter()
            // A model an upstream serves is not this worker's to run.
            .filter(|e| e.openai.is_none())
            .map(|e| crate::registry::ModelEntry {
                workers: Vec::new(),
                workers_dns: None,
                ..e.clone()
            })
            .collect(),
    };
    for e in &mut entries {
        if let Some(b) = overrides.backend {
            e.backend = b;
        }
        if let Some(share) = overrides.gpu_memory_utilization {
            e.gpu_memory_utilization = Some(share);
            e.kv_cache_memory = None;
        }
        if let Some(device) = overrides.cuda_device {
            e.cuda_device = Some(device);
        }
    }
    // The entries as this worker runs them (a share needs the CUDA backend).
    crate::registry::validate(&entries).map_err(|e| ServeError::Model(e.to_string()))?;
    let backend =
        crate::registry::load_local(&entries, config.kv_cache_budget(), &config.admission)
            .map_err(|e| ServeError::Model(e.to_string()))?;
    Ok(WorkerState::new(backend, config.worker_token.clone()))
}

fn is_loopback(listen: &str) -> bool {
    match listen.parse::<std::net::SocketAddr>() {
        Ok(addr) => addr.ip().is_loopback(),
        Err(_) => listen.starts_with("localhost:"),
    }
}

/// Runs a worker on `listen` until SIGTERM or Ctrl-C, then drains: refuses new requests and
/// answers `/ready` with 503 while the running ones finish (at most `drain_timeout`), then
/// closes the listener and returns.
///
/// With `tls` (the configuration's `tls_cert` and `tls_key`), it speaks only HTTPS and re-reads
/// the pair on SIGHUP.
pub async fn serve(
    state: WorkerState,
    listen: &str,
    tls: Option<&crate::config::TlsFiles>,
    drain_timeout: Duration,
) -> Result<(), ServeError> {
    let tls = tls.map(|files| files.load()).transpose()?;
    let app_state = state.clone();
    let server = HttpServer::new(move || {
        App::new()
            .app_data(web::Data::new(app_state.clone()))
            .configure(configure)
    })
    .disable_signals()
    // Each token is written as it is generated (see `server::serve`).
    .tcp_nodelay(true)
    .shutdown_timeout(drain_timeout.as_secs().max(1));
    let server = match &tls {
        Some(tls) => server.bind_rustls_0_23(listen, tls.server_config()?),
        None => server.bind(listen),
    }
    .map_err(|source| ServeError::Bind {
        listen: listen.to_owned(),
        source,
    })?;
    for addr in server.addrs() {
        tracing::info!(%addr, tls = tls.is_some(), "worker listening");
    }
    if let Some(tls) = &tls {
        tls.reload_on_sighup();
    }
    let server = server.run();
    let handle = server.handle();
    tokio::spawn(async move {
        wait_for_stop_signal().await;
        tracing::info!("draining: refusing new requests, finishing running ones");
        state.drain();
        let deadline = tokio::time::Instant::now() + drain_timeout;
        while state.running.load(Ordering::SeqCst) > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tracing::info!(
            unfinished = state.running.load(Ordering::SeqCst),
            "drained; stopping"
        );
        handle.stop(true).await;
    });
    server.await?;
    Ok(())
}

async fn wait_for_stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A model whose engine stopped for good (here its device was lost as the executor was
    /// made) is out of service: the backend names it and why, and the worker is not ready,
    /// so a load balancer or a gateway's pool stops sending it requests.
    #[actix_web::test]
    async fn a_model_whose_engine_failed_makes_the_worker_not_ready() {
        use scheduler::model_executor::{config_for_model, detokenizer_for};
        let path =
            engine::model_cache::find_default_model().expect("run `starfire model fetch` first");
        let model = Arc::new(engine::Model::load(&path).unwrap());
        let config = config_for_model(&model, scheduler::SchedulerConfig::default(), 4 << 20);
        let engine = scheduler::EngineLoop::spawn_with(config, detokenizer_for(&model), || {
            Err::<scheduler::testing::FakeExecutor, _>(scheduler::ExecutorError::Engine(
                engine::EngineError::DeviceLost("CUDA driver: CUDA_ERROR_ILLEGAL_ADDRESS".into()),
            ))
        })
        .unwrap();
        let backend = crate::inference::InProcessBackend::with_engine("m", model, engine);
        // The loop thread makes the executor: wait for it to say it failed.
        let start = std::time::Instant::now();
        let why = loop {
            if let Some(why) = backend.out_of_service() {
                break why;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "never out of service"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        assert!(
            why.starts_with("model 'm': ") && why.contains("ILLEGAL_ADDRESS"),
            "{why}"
        );
        let resp = ready(web::Data::new(WorkerState::new(Arc::new(backend), None))).await;
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
        let body = actix_web::body::to_bytes(resp.into_body()).await.unwrap();
        assert!(
            String::from_utf8_lossy(&body).starts_with("out of service: model 'm'"),
            "{body:?}"
        );
    }

    #[test]
    fn the_shared_gauges_also_carry_vllm_names() {
        let text = "# HELP starfire:num_requests_running Running.\n\
                    # TYPE starfire:num_requests_running gauge\n\
                    starfire:num_requests_running{model_name=\"m\"} 2\n\
                    starfire:num_requests_running_other{model_name=\"m\"} 9\n\
                    starfire:prefix_cache_hits_total{model_name=\"m\"} 5\n";
        assert_eq!(
            with_vllm_names(text),
            "# HELP vllm:num_requests_running Running.\n\
             # TYPE vllm:num_requests_running gauge\n\
             vllm:num_requests_running{model_name=\"m\"} 2\n\
             vllm:prefix_cache_hits_total{model_name=\"m\"} 5\n"
        );
    }
}
