//! A pool of Starfire workers serving one model, and the router that picks one per request.
//!
//! The score (`Routing::PrefixAffinity`, the default), among the workers that are not cooling
//! down and not yet tried for this request:
//! 1. the worker that was last sent the longest prefix of this prompt (`affinity`: chained
//!    hashes of the prompt's KV blocks, salted per tenant), when that prefix is at least half
//!    the prompt's blocks and the worker's requests in flight stay under the bounded-load cap,
//!    `ceil(1.25 × (in flight in the pool + 1) / workers) + 1`: affinity pulls a tenant's
//!    repeats to where its cache is, but never piles them onto one worker, and a short shared
//!    header (a default system prompt) does not decide on its own;
//! 2. otherwise the worker with the fewest requests this gateway has in flight on it, ties
//!    going to the one picked least recently. Counting our own in-flight requests (not a
//!    scraped gauge) is what keeps two requests that arrive together from both landing on the
//!    same "emptiest" worker.
//!
//! `LeastLoaded` skips step 1; `RoundRobin` takes the workers in turn, whatever their load.
//!
//! Failures: a connect error, a timeout or a 5xx before the first byte marks the worker failed
//! (it cools down for 250 ms, doubling per consecutive failure up to 30 s; the first success
//! clears it) and the request is retried on another worker, up to three workers in all. A
//! worker that refuses because it is full is skipped without cooling down; one that refuses
//! because it is shutting down (draining, or its model out of service after its GPU failed)
//! is set aside until its `/ready` answers again (probed every other second), 30 s at most;
//! one that answers that it does not serve the model (`model_not_found`: it serves others) is
//! set aside until its `/v1/models` lists the model, and the request moves on.
//! When every worker is cooling down, the one whose cool-down ends first is tried anyway: a
//! pool never refuses outright because of old failures.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use protocol::wire::ErrorAnswer;
use protocol::{BackendError, QueueScope};
use serde::Deserialize;

use super::affinity::Affinity;

/// How many workers one request may try before it is refused.
const MAX_ATTEMPTS: usize = 3;
/// The longest a worker cools down (after failures, or set aside while shutting down).
const MAX_COOL_DOWN: Duration = Duration::from_secs(30);
/// Largest refusal body read from a worker.
const MAX_ERROR_BODY: usize = 64 << 10;

/// Limits on how long a worker may keep the gateway waiting.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// To open a connection.
    pub connect: Duration,
    /// From sending a request to the response's head.
    pub response: Duration,
    /// Between two chunks of a response's body (a queued request's first token included).
    pub chunk: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(2),
            response: Duration::from_secs(30),
            chunk: Duration::from_secs(60),
        }
    }
}

/// How a pool picks a worker (`[[models]]` `routing`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Routing {
    /// The worker that holds the prompt's longest prefix, within a load cap; else the least
    /// loaded.
    #[default]
    PrefixAffinity,
    /// The worker with the fewest requests in flight.
    LeastLoaded,
    /// Each worker in turn.
    RoundRobin,
}

struct Worker {
    /// Unique in its pool for the pool's life (affinity and retries name workers by it).
    id: usize,
    /// `http://host:port`, without a trailing slash.
    url: String,
    in_flight: AtomicUsize,
    /// The pool's pick count when this worker was last picked.
    last_pick: AtomicU64,
    /// Requests waiting in the worker's scheduler, every gateway's (scraped from `/metrics`).
    waiting: AtomicUsize,
    /// The worker's KV cache use in thousandths (scraped).
    kv_milli: AtomicUsize,
    health: Mutex<Health>,
}

#[derive(Default)]
struct Health {
    failures: u32,
    cool_until: Option<Instant>,
    /// Set aside because it answered that it does not serve this model (named as the request
    /// named it): its `/v1/models` must list it to readmit it, not just its `/ready`.
    lacks_model: Option<String>,
}

impl Worker {
    /// What the router compares: this gateway's requests on it and everyone's queued there.
    fn load(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst) + self.waiting.load(Ordering::Relaxed)
    }

    fn cooling(&self, now: Instant) -> Option<Instant> {
        self.health
            .lock()
            .unwrap()
            .cool_until
            .filter(|&until| until > now)
    }
}

/// Where a pool's workers come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Members {
    /// A fixed list of `http://host:port` URLs.
    Listed(Vec<String>),
    /// The addresses a DNS name resolves to (a Kubernetes headless Service's pods), on `port`,
    /// resolved again every few seconds.
    Dns { host: String, port: u16 },
    /// Set by whoever runs the workers ([`WorkerPool::set_members`]); empty at first (a
    /// private deployment's replicas, as its driver reports them).
    Managed,
}

/// The workers of one model.
pub struct WorkerPool {
    members: Members,
    workers: RwLock<Vec<Arc<Worker>>>,
    next_id: AtomicUsize,
    client: WorkerClient,
    token: Option<String>,
    next: AtomicUsize,
    picks: AtomicU64,
    routing: Routing,
    affinity: Affinity,
    watching: AtomicBool,
    pub timeouts: Timeouts,
}

/// One request's claim on a worker: counted in its in-flight number until dropped.
pub struct InFlight {
    pool: Arc<WorkerPool>,
    worker: Arc<Worker>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.worker.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

impl InFlight {
    /// The worker failed this request after answering (its stream broke off).
    pub fn failed(&self) {
        self.pool.failed(&self.worker);
    }

    pub fn url(&self) -> &str {
        &self.worker.url
    }
}

/// A worker's base URL, checked: `http://host:port` and nothing more.
fn worker_url(url: &str) -> Result<String, String> {
    let base = url.trim_end_matches('/');
    let uri: hyper::Uri = base
        .parse()
        .map_err(|e| format!("worker '{url}' is not a URL: {e}"))?;
    if uri.scheme_str() != Some("http") || uri.authority().is_none() || uri.path() != "/" {
        return Err(format!(
            "worker '{url}' must be http://host:port (TLS between gateway and workers belongs \
             to the network: a service mesh or a private network)"
        ));
    }
    Ok(base.to_owned())
}

impl WorkerPool {
    /// A pool over `members`, sending `token` to each worker.
    pub fn new(
        members: Members,
        token: Option<String>,
        timeouts: Timeouts,
        routing: Routing,
    ) -> Result<Self, String> {
        let urls = match &members {
            Members::Listed(urls) if urls.is_empty() => {
                return Err("a pool needs at least one worker".to_owned())
            }
            Members::Listed(urls) => urls
                .iter()
                .map(|u| worker_url(u))
                .collect::<Result<Vec<_>, _>>()?,
            Members::Dns { host, port } => {
                if host.is_empty() || *port == 0 {
                    return Err("workers_dns must be host:port".to_owned());
                }
                Vec::new()
            }
            Members::Managed => Vec::new(),
        };
        let client = http_client(timeouts.connect);
        let pool = WorkerPool {
            members,
            workers: RwLock::new(Vec::new()),
            next_id: AtomicUsize::new(0),
            client,
            token: token.filter(|t| !t.is_empty()),
            next: AtomicUsize::new(0),
            picks: AtomicU64::new(0),
            routing,
            affinity: Affinity::default(),
            watching: AtomicBool::new(false),
            timeouts,
        };
        pool.set_members(urls);
        Ok(pool)
    }

    fn snapshot(&self) -> Vec<Arc<Worker>> {
        self.workers.read().unwrap().clone()
    }

    /// Makes the pool's workers exactly `urls`: new ones join, missing ones leave (requests
    /// running on them finish).
    pub fn set_members(&self, urls: Vec<String>) {
        let mut workers = self.workers.write().unwrap();
        let before = workers.len();
        workers.retain(|w| {
            let stays = urls.contains(&w.url);
            if !stays {
                tracing::info!(worker = %w.url, "worker left the pool");
                self.affinity.forget(w.id);
            }
            stays
        });
        for url in urls {
            if workers.iter().all(|w| w.url != url) {
                if before > 0 {
                    tracing::info!(worker = %url, "worker joined the pool");
                }
                workers.push(Arc::new(Worker {
                    id: self.next_id.fetch_add(1, Ordering::Relaxed),
                    url,
                    in_flight: AtomicUsize::new(0),
                    last_pick: AtomicU64::new(0),
                    waiting: AtomicUsize::new(0),
                    kv_milli: AtomicUsize::new(0),
                    health: Mutex::new(Health::default()),
                }));
            }
        }
    }

    /// The workers' URLs and this gateway's requests in flight on each.
    pub fn in_flight(&self) -> Vec<(String, usize)> {
        self.snapshot()
            .iter()
            .map(|w| (w.url.clone(), w.in_flight.load(Ordering::SeqCst)))
            .collect()
    }

    /// The worker for the next attempt at a prompt with these prefix keys, among those not
    /// in `tried` (see the module's score).
    fn pick(&self, tried: &[usize], prefix: &[u64]) -> Option<Arc<Worker>> {
        let now = Instant::now();
        let workers = self.snapshot();
        let n = workers.len();
        if n == 0 {
            return None;
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n;
        // The workers ready for this attempt, in turn from `start`.
        let mut ready: Vec<&Arc<Worker>> = Vec::with_capacity(n);
        let mut soonest: Option<(&Arc<Worker>, Instant)> = None;
        for k in 0..n {
            let w = &workers[(start + k) % n];
            if tried.contains(&w.id) {
                continue;
            }
            match w.cooling(now) {
                Some(until) => {
                    if soonest.is_none_or(|(_, s)| until < s) {
                        soonest = Some((w, until));
                    }
                }
                None => ready.push(w),
            }
        }
        let chosen = self
            .choose(&ready, prefix)
            .or(soonest.map(|(w, _)| w))?
            .clone();
        let pick = self.picks.fetch_add(1, Ordering::Relaxed) + 1;
        chosen.last_pick.store(pick, Ordering::Relaxed);
        Some(chosen)
    }

    /// The routing policy over the ready workers, in turn order.
    fn choose<'a>(&self, ready: &[&'a Arc<Worker>], prefix: &[u64]) -> Option<&'a Arc<Worker>> {
        match self.routing {
            Routing::RoundRobin => return ready.first().copied(),
            Routing::LeastLoaded => {}
            Routing::PrefixAffinity => {
                let total: usize = ready.iter().map(|w| w.load()).sum();
                let cap =
                    (1.25 * (total + 1) as f64 / ready.len().max(1) as f64).ceil() as usize + 1;
                if let Some((id, blocks)) = self.affinity.lookup(prefix) {
                    let long_enough = blocks * 2 >= prefix.len();
                    let holder = ready.iter().find(|w| w.id == id && w.load() < cap);
                    if let (true, Some(w)) = (long_enough, holder) {
                        return Some(*w);
                    }
                }
            }
        }
        ready.iter().copied().min_by_key(|w| {
            (
                w.load(),
                w.kv_milli.load(Ordering::Relaxed),
                w.last_pick.load(Ordering::Relaxed),
            )
        })
    }

    fn failed(&self, w: &Worker) {
        self.affinity.forget(w.id);
        let mut h = w.health.lock().unwrap();
        h.failures = h.failures.saturating_add(1);
        let backoff = (Duration::from_millis(250) * 2u32.saturating_pow(h.failures.min(8) - 1))
            .min(MAX_COOL_DOWN);
        h.cool_until = Some(Instant::now() + backoff);
        tracing::warn!(worker = %w.url, failures = h.failures,
            cool_down_ms = backoff.as_millis() as u64, "worker failed");
    }

    /// A worker shutting down takes nothing new until it is ready again (a restart, or the end
    /// of a drain that was cancelled): its `/ready` readmits it, or the longest cool-down ends.
    fn set_aside(&self, w: &Worker) {
        self.affinity.forget(w.id);
        w.health.lock().unwrap().cool_until = Some(Instant::now() + MAX_COOL_DOWN);
        tracing::info!(worker = %w.url, "worker is shutting down; set aside until it is ready");
    }

    /// A worker that answers that it does not serve the pool's model (`model_not_found`) is
    /// misconfigured, or serving other models: it takes nothing new until its `/v1/models`
    /// lists the model, or the longest cool-down ends. Its `/ready` says nothing about that
    /// model.
    fn set_aside_lacking(&self, w: &Worker, model: String) {
        self.affinity.forget(w.id);
        tracing::warn!(worker = %w.url, model = %model,
            "worker does not serve the model; set aside until its /v1/models lists it");
        let mut h = w.health.lock().unwrap();
        h.cool_until = Some(Instant::now() + MAX_COOL_DOWN);
        h.lacks_model = Some(model);
    }

    fn succeeded(&self, w: &Worker) {
        let mut h = w.health.lock().unwrap();
        if h.failures > 0 {
            tracing::info!(worker = %w.url, "worker answers again");
        }
        *h = Health::default();
    }

    fn request(
        &self,
        method: hyper::Method,
        url: String,
        headers: &[(&str, String)],
        body: Bytes,
    ) -> Result<Request<Full<Bytes>>, String> {
        let mut req = Request::builder()
            .method(method)
            .uri(url)
            .header("content-type", "application/json");
        if let Some(token) = &self.token {
            req = req.header("authorization", format!("Bearer {token}"));
        }
        for (name, value) in headers {
            req = req.header(*name, value.as_str());
        }
        req.body(Full::new(body)).map_err(|e| e.to_string())
    }

    async fn send(
        &self,
        req: Request<Full<Bytes>>,
        timeout: Duration,
    ) -> Result<Response<Incoming>, String> {
        match tokio::time::timeout(timeout, self.client.request(req)).await {
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("no answer within {} ms", timeout.as_millis())),
        }
    }

    /// Sends a request to the best worker for a prompt with these prefix keys, and on a
    /// failure before the answer to the next (up to three). Returns the successful answer
    /// with its worker's claim, or the refusal the request itself earned (a bad parameter, a
    /// tenant's full queue).
    pub async fn call(
        self: &Arc<Self>,
        model: &str,
        path: &str,
        headers: &[(&str, String)],
        body: Bytes,
        prefix: &[u64],
    ) -> Result<(InFlight, Response<Incoming>), BackendError> {
        self.watch();
        if self.workers.read().unwrap().is_empty() {
            self.resolve().await;
        }
        let mut tried = Vec::with_capacity(MAX_ATTEMPTS);
        let mut last = String::from("no worker is known");
        while tried.len() < MAX_ATTEMPTS.min(self.workers.read().unwrap().len()) {
            let Some(worker) = self.pick(&tried, prefix) else {
                break;
            };
            tried.push(worker.id);
            // Recorded before the answer: the next request with this prefix follows at once.
            self.affinity.record(prefix, worker.id);
            worker.in_flight.fetch_add(1, Ordering::SeqCst);
            let claim = InFlight {
                pool: self.clone(),
                worker: worker.clone(),
            };
            let url = format!("{}{path}", worker.url);
            let sent = match self.request(hyper::Method::POST, url, headers, body.clone()) {
                Ok(req) => self.send(req, self.timeouts.response).await,
                Err(e) => Err(e),
            };
            let resp = match sent {
                Ok(resp) => resp,
                Err(e) => {
                    last = format!("{}: {e}", worker.url);
                    self.failed(&worker);
                    continue;
                }
            };
            if resp.status() == StatusCode::OK {
                self.succeeded(&worker);
                return Ok((claim, resp));
            }
            let status = resp.status();
            match self.refusal(resp).await {
                Some(BackendError::ModelNotFound(missing)) => {
                    last = format!("{}: does not serve '{missing}'", worker.url);
                    self.set_aside_lacking(&worker, missing);
                }
                Some(error) if !retry_elsewhere(&error) => {
                    self.succeeded(&worker);
                    return Err(error);
                }
                Some(error @ BackendError::ShuttingDown) => {
                    last = format!("{}: {error}", worker.url);
                    self.set_aside(&worker);
                }
                Some(error @ BackendError::QueueFull { .. }) => {
                    last = format!("{}: {error}", worker.url);
                }
                other => {
                    last = format!("{}: {status} {other:?}", worker.url);
                    self.failed(&worker);
                }
            }
        }
        tracing::warn!(model, last = %last, "no worker took the request");
        Err(BackendError::QueueFull {
            scope: QueueScope::Global,
            what: format!("no worker of '{model}' could take the request"),
        })
    }

    /// A worker's refusal, when its body is one.
    async fn refusal(&self, resp: Response<Incoming>) -> Option<BackendError> {
        let body = read_all(resp.into_body(), MAX_ERROR_BODY, self.timeouts.chunk)
            .await
            .ok()?;
        serde_json::from_slice::<ErrorAnswer>(&body)
            .ok()
            .map(|a| a.error)
    }

    /// Starts the pool's watcher once (from the first request, so it runs on a runtime that
    /// serves requests): every second it scrapes each worker's queue and KV use every other
    /// second, probes cooling workers' `/ready`, and re-resolves a DNS pool every fifth.
    fn watch(self: &Arc<Self>) {
        if self.watching.swap(true, Ordering::SeqCst) {
            return;
        }
        let pool = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = 0u64;
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                tick += 1;
                let Some(pool) = pool.upgrade() else { return };
                if tick.is_multiple_of(5) {
                    pool.resolve().await;
                }
                if tick.is_multiple_of(2) {
                    pool.refresh_load().await;
                }
            }
        });
    }

    /// A DNS pool's members, looked up again (a failed lookup keeps the members it had).
    async fn resolve(&self) {
        let Members::Dns { host, port } = &self.members else {
            return;
        };
        let lookup = tokio::net::lookup_host((host.as_str(), *port));
        match tokio::time::timeout(Duration::from_secs(2), lookup).await {
            Ok(Ok(addrs)) => {
                let mut urls: Vec<String> = addrs.map(|a| format!("http://{a}")).collect();
                urls.sort();
                urls.dedup();
                self.set_members(urls);
            }
            Ok(Err(e)) => tracing::warn!(%host, error = %e, "worker lookup failed"),
            Err(_) => tracing::warn!(%host, "worker lookup timed out"),
        }
    }

    /// Each worker's queue and KV use from its `/metrics`; a cooling worker whose `/ready`
    /// answers (or, set aside for lacking the model, whose `/v1/models` lists it) is back in
    /// the pool.
    async fn refresh_load(&self) {
        let now = Instant::now();
        for w in self.snapshot() {
            let timeout = self.timeouts.connect;
            if w.cooling(now).is_some() {
                let lacks = w.health.lock().unwrap().lacks_model.clone();
                let path = if lacks.is_some() {
                    "/v1/models"
                } else {
                    "/ready"
                };
                let Ok(req) = self.request(
                    hyper::Method::GET,
                    format!("{}{path}", w.url),
                    &[],
                    Bytes::new(),
                ) else {
                    continue;
                };
                let Ok(resp) = self.send(req, timeout).await else {
                    continue;
                };
                if resp.status() != StatusCode::OK {
                    continue;
                }
                let back = match lacks {
                    None => true,
                    Some(model) => {
                        let body = read_all(resp.into_body(), MAX_ERROR_BODY, timeout).await;
                        body.is_ok_and(|b| lists_model(&b, &model))
                    }
                };
                if back {
                    self.succeeded(&w);
                }
                continue;
            }
            let Some(load) = scrape(&self.client, &w.url, self.token.as_deref(), timeout).await
            else {
                continue;
            };
            w.waiting.store(load.waiting as usize, Ordering::Relaxed);
            w.kv_milli
                .store((load.kv_usage * 1000.0) as usize, Ordering::Relaxed);
        }
    }
}

/// The HTTP client the gateway talks to workers with.
pub type WorkerClient = Client<HttpConnector, Full<Bytes>>;

/// A [`WorkerClient`] whose connections give up after `connect`.
pub fn http_client(connect: Duration) -> WorkerClient {
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(connect));
    connector.set_nodelay(true);
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(30))
        .build(connector)
}

/// What a worker's `/metrics` says of its load.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct WorkerLoad {
    /// Requests its scheduler runs now.
    pub running: f64,
    /// Requests waiting in its scheduler.
    pub waiting: f64,
    /// Its KV cache's use, 0 to 1.
    pub kv_usage: f64,
}

/// Reads the load of the worker at `url` (`http://host:port`) from its `/metrics` (vLLM's
/// names); `None` when it does not answer in time.
pub async fn scrape(
    client: &WorkerClient,
    url: &str,
    token: Option<&str>,
    timeout: Duration,
) -> Option<WorkerLoad> {
    let mut req = Request::builder()
        .method(hyper::Method::GET)
        .uri(format!("{url}/metrics"));
    if let Some(token) = token {
        req = req.header("authorization", format!("Bearer {token}"));
    }
    let req = req.body(Full::new(Bytes::new())).ok()?;
    let resp = tokio::time::timeout(timeout, client.request(req))
        .await
        .ok()?
        .ok()?;
    if resp.status() != StatusCode::OK {
        return None;
    }
    let body = read_all(resp.into_body(), 1 << 20, timeout).await.ok()?;
    let text = String::from_utf8_lossy(&body);
    Some(WorkerLoad {
        running: series_sum(&text, "vllm:num_requests_running"),
        waiting: series_sum(&text, "vllm:num_requests_waiting"),
        kv_usage: series_sum(&text, "vllm:kv_cache_usage_perc"),
    })
}

/// The sum of a series' samples (over all its labels) in a Prometheus text.
pub fn series_sum(text: &str, series: &str) -> f64 {
    text.lines()
        .filter(|l| {
            l.strip_prefix(series)
                .is_some_and(|rest| rest.starts_with(['{', ' ']))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .filter(|v| v.is_finite() && *v >= 0.0)
        .sum()
}

/// Whether an OpenAI model list (`{"data": [{"id": ...}]}`) names `model`.
fn lists_model(body: &[u8], model: &str) -> bool {
    #[derive(Deserialize)]
    struct Card {
        id: String,
    }
    #[derive(Deserialize)]
    struct List {
        data: Vec<Card>,
    }
    serde_json::from_slice::<List>(body).is_ok_and(|l| l.data.iter().any(|c| c.id == model))
}

/// Whether a refusal is the worker's state rather than the request's: another worker may take
/// the request.
fn retry_elsewhere(error: &BackendError) -> bool {
    matches!(
        error,
        BackendError::NotLoaded(_)
            | BackendError::ShuttingDown
            | BackendError::Internal(_)
            | BackendError::QueueFull {
                scope: QueueScope::Global,
                ..
            }
    )
}

/// A whole body, at most `limit` bytes, each chunk within `chunk_timeout`.
pub async fn read_all(
    body: Incoming,
    limit: usize,
    chunk_timeout: Duration,
) -> Result<Bytes, String> {
    let limited = Limited::new(body, limit);
    // One deadline for the whole (small) body: the sum of chunk timeouts would be unbounded.
    match tokio::time::timeout(chunk_timeout, limited.collect()).await {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("the body did not arrive in time".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(urls: &[&str], routing: Routing) -> WorkerPool {
        let urls = urls.iter().map(|u| u.to_string()).collect();
        WorkerPool::new(Members::Listed(urls), None, Timeouts::default(), routing).unwrap()
    }

    #[test]
    fn members_join_and_leave_and_urls_are_checked() {
        let p = pool(
            &["http://10.0.0.1:8090/", "http://10.0.0.2:8090"],
            Routing::LeastLoaded,
        );
        assert_eq!(p.in_flight().len(), 2);
        assert_eq!(p.in_flight()[0].0, "http://10.0.0.1:8090");
        let kept = p.snapshot()[1].id;
        p.set_members(vec![
            "http://10.0.0.2:8090".into(),
            "http://10.0.0.3:8090".into(),
        ]);
        let ids: Vec<usize> = p.snapshot().iter().map(|w| w.id).collect();
        assert_eq!(
            ids,
            [kept, 2],
            "the staying worker keeps its id, a new one gets a new id"
        );
        for bad in ["https://x:1", "http://x:1/path", "x:1"] {
            let urls = vec![bad.to_owned()];
            assert!(
                WorkerPool::new(
                    Members::Listed(urls),
                    None,
                    Timeouts::default(),
                    Routing::LeastLoaded
                )
                .is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn the_least_loaded_wins_and_scraped_queues_count() {
        let p = pool(&["http://a:1", "http://b:1"], Routing::LeastLoaded);
        let [a, b] = [p.snapshot()[0].clone(), p.snapshot()[1].clone()];
        a.in_flight.store(2, Ordering::SeqCst);
        assert_eq!(p.pick(&[], &[]).unwrap().id, b.id);
        b.waiting.store(5, Ordering::SeqCst);
        assert_eq!(
            p.pick(&[], &[]).unwrap().id,
            a.id,
            "b's queue holds other gateways' work"
        );
        assert_eq!(p.pick(&[a.id], &[]).unwrap().id, b.id, "a was tried");
        p.failed(&a);
        assert_eq!(p.pick(&[], &[]).unwrap().id, b.id, "a cools down");
        assert_eq!(
            p.pick(&[b.id], &[]).unwrap().id,
            a.id,
            "a cooling worker before none"
        );
    }

    #[test]
    fn affinity_holds_within_the_load_cap() {
        let p = pool(&["http://a:1", "http://b:1"], Routing::PrefixAffinity);
        let [a, b] = [p.snapshot()[0].clone(), p.snapshot()[1].clone()];
        let keys: Vec<u64> = (0..8).collect();
        p.affinity.record(&keys, a.id);
        a.in_flight.store(1, Ordering::SeqCst);
        assert_eq!(
            p.pick(&[], &keys).unwrap().id,
            a.id,
            "busier, but holds the prefix"
        );
        // 4 in flight on a: the cap is ceil(1.25 × 5 / 2) + 1 = 5; with 5, it is 5 again.
        a.in_flight.store(4, Ordering::SeqCst);
        assert_eq!(p.pick(&[], &keys).unwrap().id, a.id, "under the cap");
        a.in_flight.store(5, Ordering::SeqCst);
        assert_eq!(p.pick(&[], &keys).unwrap().id, b.id, "at the cap");
        a.in_flight.store(0, Ordering::SeqCst);
        p.affinity.record(&keys[..3], a.id);
        let other: Vec<u64> = (0..3).chain(100..110).collect();
        b.in_flight.store(0, Ordering::SeqCst);
        a.last_pick.store(u64::MAX, Ordering::SeqCst);
        assert_eq!(
            p.pick(&[], &other).unwrap().id,
            b.id,
            "3 of 13 blocks is too short a match"
        );
    }

    /// How a fake worker refuses while its flag is set.
    #[derive(Clone, Copy, PartialEq)]
    enum Refusal {
        /// `shutting_down` (503), with `/ready` answering 503 too.
        ShuttingDown,
        /// `model_not_found` for "m" (404): it serves model "other" (its `/v1/models` says so)
        /// and its `/ready` answers 200.
        ServesAnother,
    }

    /// A worker on a local port answering completions, counting them: 200 (and serving "m"),
    /// or while `refusing` as `how` says.
    async fn fake_worker(
        how: Refusal,
        refusing: Arc<AtomicBool>,
        hits: Arc<AtomicUsize>,
    ) -> String {
        use actix_web::{web, App, HttpResponse, HttpServer};
        let server = HttpServer::new(move || {
            let (ready, listed, answer) = (refusing.clone(), refusing.clone(), refusing.clone());
            let hits = hits.clone();
            App::new()
                .route(
                    "/ready",
                    web::get().to(move || {
                        let draining = how == Refusal::ShuttingDown && ready.load(Ordering::SeqCst);
                        async move {
                            if draining {
                                HttpResponse::ServiceUnavailable().body("draining")
                            } else {
                                HttpResponse::Ok().body("ready")
                            }
                        }
                    }),
                )
                .route(
                    "/v1/models",
                    web::get().to(move || {
                        let other = how == Refusal::ServesAnother && listed.load(Ordering::SeqCst);
                        let id = if other { "other" } else { "m" };
                        async move {
                            HttpResponse::Ok().json(serde_json::json!({
                                "object": "list",
                                "data": [{"id": id, "object": "model"}],
                            }))
                        }
                    }),
                )
                .route(
                    "/v1/completions",
                    web::post().to(move || {
                        hits.fetch_add(1, Ordering::SeqCst);
                        let refusing = answer.load(Ordering::SeqCst);
                        async move {
                            match (refusing, how) {
                                (false, _) => HttpResponse::Ok().body("{}"),
                                (true, Refusal::ShuttingDown) => HttpResponse::ServiceUnavailable()
                                    .json(ErrorAnswer {
                                        error: BackendError::ShuttingDown,
                                    }),
                                (true, Refusal::ServesAnother) => {
                                    HttpResponse::NotFound().json(ErrorAnswer {
                                        error: BackendError::ModelNotFound("m".into()),
                                    })
                                }
                            }
                        }
                    }),
                )
        })
        .workers(1)
        .bind(("127.0.0.1", 0))
        .unwrap();
        let addr = server.addrs()[0];
        actix_web::rt::spawn(server.run());
        format!("http://{addr}")
    }

    /// A round-robin pool over `urls`.
    fn round_robin(urls: Vec<String>) -> Arc<WorkerPool> {
        let members = Members::Listed(urls);
        let p = WorkerPool::new(members, None, Timeouts::default(), Routing::RoundRobin);
        Arc::new(p.unwrap())
    }

    /// `n` completions, each answered by the pool's second worker.
    async fn answered_by_the_second(p: &Arc<WorkerPool>, n: usize) {
        for _ in 0..n {
            let (claim, resp) = p
                .call("m", "/v1/completions", &[], Bytes::from("{}"), &[])
                .await
                .expect("the other worker answers");
            assert_eq!(resp.status(), StatusCode::OK);
            assert_eq!(claim.url(), p.snapshot()[1].url);
        }
    }

    /// A pool of `first` and a ready fake worker (its hits counted in `hits[1]`): of `n`
    /// completions, `first` (its hits counted in `hits[0]`) refuses one and is set aside, and
    /// the other answers every one.
    async fn set_aside_beside_a_ready_worker(
        first: String,
        hits: &[Arc<AtomicUsize>; 2],
        n: usize,
    ) -> Arc<WorkerPool> {
        let p = round_robin(vec![
            first,
            fake_worker(
                Refusal::ShuttingDown,
                Arc::new(AtomicBool::new(false)),
                hits[1].clone(),
            )
            .await,
        ]);
        answered_by_the_second(&p, n).await;
        assert_eq!(
            hits[0].load(Ordering::SeqCst),
            1,
            "refused once, then set aside"
        );
        p
    }

    /// Waits (10 s at most) until the watcher readmits the pool's first worker, then sends
    /// four completions (two go to it).
    async fn readmitted(p: &Arc<WorkerPool>, by: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while p.snapshot()[0].cooling(Instant::now()).is_some() {
            assert!(Instant::now() < deadline, "its {by} did not readmit it");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        for _ in 0..4 {
            let body = Bytes::from("{}");
            p.call("m", "/v1/completions", &[], body, &[])
                .await
                .expect("both answer");
        }
    }

    /// A worker that refuses because it is shutting down is offered no more requests (each
    /// goes to the other at once) until its `/ready` answers again.
    #[actix_web::test]
    async fn a_worker_shutting_down_is_set_aside_until_it_is_ready() {
        let refusing = Arc::new(AtomicBool::new(true));
        let hits = [Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0))];
        let first = fake_worker(Refusal::ShuttingDown, refusing.clone(), hits[0].clone()).await;
        let p = set_aside_beside_a_ready_worker(first, &hits, 6).await;
        assert_eq!(hits[1].load(Ordering::SeqCst), 6);
        // Ready again (restarted): the watcher's probe readmits it.
        refusing.store(false, Ordering::SeqCst);
        readmitted(&p, "/ready").await;
        assert_eq!(hits[0].load(Ordering::SeqCst), 3, "back in turn");
    }

    /// A worker that answers that it does not serve the model is set aside and the request
    /// goes to the other worker (not back to the client as "no such model"); its `/ready`
    /// (200) does not readmit it, its `/v1/models` listing the model does.
    #[actix_web::test]
    async fn a_worker_without_the_model_is_set_aside_until_it_lists_it() {
        let serves_other = Arc::new(AtomicBool::new(true));
        let hits = [Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0))];
        let first = fake_worker(
            Refusal::ServesAnother,
            serves_other.clone(),
            hits[0].clone(),
        )
        .await;
        let p = set_aside_beside_a_ready_worker(first, &hits, 4).await;
        // Three of the watcher's probes later, its /ready (200) has not readmitted it.
        tokio::time::sleep(Duration::from_millis(3500)).await;
        assert!(
            p.snapshot()[0].cooling(Instant::now()).is_some(),
            "readmitted by /ready"
        );
        answered_by_the_second(&p, 2).await;
        assert_eq!(hits[0].load(Ordering::SeqCst), 1);
        // Serving the model now: its /v1/models readmits it.
        serves_other.store(false, Ordering::SeqCst);
        readmitted(&p, "/v1/models").await;
        assert_eq!(hits[0].load(Ordering::SeqCst), 3, "back in turn");
    }

    #[test]
    fn series_add_up_over_labels() {
        let text = "# TYPE vllm:num_requests_waiting gauge\n\
                    vllm:num_requests_waiting{model_name=\"a\"} 2\n\
                    vllm:num_requests_waiting{model_name=\"b\"} 3\n\
                    vllm:num_requests_waiting_other 9\n";
        assert_eq!(series_sum(text, "vllm:num_requests_waiting"), 5.0);
    }
}
