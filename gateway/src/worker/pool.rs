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
//! worker that refuses because it is draining or full is skipped without cooling down. When
//! every worker is cooling down, the one whose cool-down ends first is tried anyway: a pool
//! never refuses outright because of old failures.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
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
    /// `http://host:port`, without a trailing slash.
    url: String,
    in_flight: AtomicUsize,
    /// The pool's pick count when this worker was last picked.
    last_pick: AtomicU64,
    health: Mutex<Health>,
}

#[derive(Default)]
struct Health {
    failures: u32,
    cool_until: Option<Instant>,
}

/// The workers of one model.
pub struct WorkerPool {
    workers: Vec<Worker>,
    client: Client<HttpConnector, Full<Bytes>>,
    token: Option<String>,
    next: AtomicUsize,
    picks: AtomicU64,
    routing: Routing,
    affinity: Affinity,
    pub timeouts: Timeouts,
}

/// One request's claim on a worker: counted in its in-flight number until dropped.
pub struct InFlight {
    pool: Arc<WorkerPool>,
    index: usize,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.pool.workers[self.index]
            .in_flight
            .fetch_sub(1, Ordering::SeqCst);
    }
}

impl InFlight {
    /// The worker failed this request after answering (its stream broke off).
    pub fn failed(&self) {
        self.pool.failed(self.index);
    }

    pub fn url(&self) -> &str {
        &self.pool.workers[self.index].url
    }
}

impl WorkerPool {
    /// A pool over `urls` (`http://host:port`), sending `token` to each.
    pub fn new(
        urls: &[String],
        token: Option<String>,
        timeouts: Timeouts,
        routing: Routing,
    ) -> Result<Self, String> {
        if urls.is_empty() {
            return Err("a pool needs at least one worker".to_owned());
        }
        let mut workers = Vec::with_capacity(urls.len());
        for url in urls {
            let base = url.trim_end_matches('/');
            let uri: hyper::Uri = base
                .parse()
                .map_err(|e| format!("worker '{url}' is not a URL: {e}"))?;
            if uri.scheme_str() != Some("http") || uri.authority().is_none() || uri.path() != "/" {
                return Err(format!(
                    "worker '{url}' must be http://host:port (TLS between gateway and workers \
                     belongs to the network: a service mesh or a private network)"
                ));
            }
            workers.push(Worker {
                url: base.to_owned(),
                in_flight: AtomicUsize::new(0),
                last_pick: AtomicU64::new(0),
                health: Mutex::new(Health::default()),
            });
        }
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(timeouts.connect));
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        Ok(WorkerPool {
            workers,
            client,
            token: token.filter(|t| !t.is_empty()),
            next: AtomicUsize::new(0),
            picks: AtomicU64::new(0),
            routing,
            affinity: Affinity::default(),
            timeouts,
        })
    }

    /// The workers' URLs and this gateway's requests in flight on each.
    pub fn in_flight(&self) -> Vec<(String, usize)> {
        self.workers
            .iter()
            .map(|w| (w.url.clone(), w.in_flight.load(Ordering::SeqCst)))
            .collect()
    }

    /// The worker for the next attempt at a prompt with these prefix keys, among those not
    /// in `tried` (see the module's score).
    fn pick(&self, tried: &[usize], prefix: &[u64]) -> Option<usize> {
        let now = Instant::now();
        let n = self.workers.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n;
        // (index, in flight) of the workers ready for this attempt, in turn from `start`.
        let mut ready: Vec<(usize, usize)> = Vec::with_capacity(n);
        let mut soonest: Option<(usize, Instant)> = None;
        for k in 0..n {
            let i = (start + k) % n;
            if tried.contains(&i) {
                continue;
            }
            let w = &self.workers[i];
            match w.health.lock().unwrap().cool_until {
                Some(until) if until > now => {
                    if soonest.is_none_or(|(_, s)| until < s) {
                        soonest = Some((i, until));
                    }
                }
                _ => ready.push((i, w.in_flight.load(Ordering::SeqCst))),
            }
        }
        let chosen = self.choose(&ready, prefix).or(soonest.map(|(i, _)| i))?;
        let pick = self.picks.fetch_add(1, Ordering::Relaxed) + 1;
        self.workers[chosen]
            .last_pick
            .store(pick, Ordering::Relaxed);
        Some(chosen)
    }

    /// The routing policy over the ready workers (index, in flight), in turn order.
    fn choose(&self, ready: &[(usize, usize)], prefix: &[u64]) -> Option<usize> {
        match self.routing {
            Routing::RoundRobin => return ready.first().map(|&(i, _)| i),
            Routing::LeastLoaded => {}
            Routing::PrefixAffinity => {
                let total: usize = ready.iter().map(|(_, load)| load).sum();
                let cap =
                    (1.25 * (total + 1) as f64 / ready.len().max(1) as f64).ceil() as usize + 1;
                if let Some((w, blocks)) = self.affinity.lookup(prefix) {
                    let long_enough = blocks * 2 >= prefix.len();
                    if long_enough && ready.iter().any(|&(i, load)| i == w && load < cap) {
                        return Some(w);
                    }
                }
            }
        }
        ready
            .iter()
            .min_by_key(|&&(i, load)| (load, self.workers[i].last_pick.load(Ordering::Relaxed)))
            .map(|&(i, _)| i)
    }

    fn failed(&self, i: usize) {
        self.affinity.forget(i);
        let mut h = self.workers[i].health.lock().unwrap();
        h.failures = h.failures.saturating_add(1);
        let backoff = Duration::from_millis(250) * 2u32.saturating_pow(h.failures.min(8) - 1);
        h.cool_until = Some(Instant::now() + backoff.min(Duration::from_secs(30)));
        tracing::warn!(worker = %self.workers[i].url, failures = h.failures,
            cool_down_ms = backoff.min(Duration::from_secs(30)).as_millis() as u64, "worker failed");
    }

    fn succeeded(&self, i: usize) {
        let mut h = self.workers[i].health.lock().unwrap();
        if h.failures > 0 {
            tracing::info!(worker = %self.workers[i].url, "worker answers again");
        }
        *h = Health::default();
    }

    async fn send(
        &self,
        i: usize,
        path: &str,
        headers: &[(&str, String)],
        body: Bytes,
    ) -> Result<Response<Incoming>, String> {
        let mut req = Request::post(format!("{}{path}", self.workers[i].url))
            .header("content-type", "application/json");
        if let Some(token) = &self.token {
            req = req.header("authorization", format!("Bearer {token}"));
        }
        for (name, value) in headers {
            req = req.header(*name, value.as_str());
        }
        let req = req.body(Full::new(body)).map_err(|e| e.to_string())?;
        match tokio::time::timeout(self.timeouts.response, self.client.request(req)).await {
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!(
                "no answer within {} ms",
                self.timeouts.response.as_millis()
            )),
        }
    }

    /// Sends a request to the best worker for a prompt with these prefix keys, and on a
    /// failure before the answer to the next (up to three). Returns the successful answer with its worker's claim, or the refusal
    /// the request itself earned (a bad parameter, a tenant's full queue).
    pub async fn call(
        self: &Arc<Self>,
        model: &str,
        path: &str,
        headers: &[(&str, String)],
        body: Bytes,
        prefix: &[u64],
    ) -> Result<(InFlight, Response<Incoming>), BackendError> {
        let mut tried = Vec::with_capacity(MAX_ATTEMPTS);
        let mut last = String::new();
        while tried.len() < MAX_ATTEMPTS.min(self.workers.len()) {
            let Some(i) = self.pick(&tried, prefix) else {
                break;
            };
            tried.push(i);
            // Recorded before the answer: the next request with this prefix follows at once.
            self.affinity.record(prefix, i);
            self.workers[i].in_flight.fetch_add(1, Ordering::SeqCst);
            let claim = InFlight {
                pool: self.clone(),
                index: i,
            };
            let resp = match self.send(i, path, headers, body.clone()).await {
                Ok(resp) => resp,
                Err(e) => {
                    last = format!("{}: {e}", self.workers[i].url);
                    self.failed(i);
                    continue;
                }
            };
            if resp.status() == StatusCode::OK {
                self.succeeded(i);
                return Ok((claim, resp));
            }
            let status = resp.status();
            match self.refusal(resp).await {
                Some(error) if !retry_elsewhere(&error) => {
                    self.succeeded(i);
                    return Err(error);
                }
                Some(error @ (BackendError::ShuttingDown | BackendError::QueueFull { .. })) => {
                    last = format!("{}: {error}", self.workers[i].url);
                }
                other => {
                    last = format!("{}: {status} {other:?}", self.workers[i].url);
                    self.failed(i);
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
