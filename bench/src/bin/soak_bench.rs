//! Soak: the platform as a multi-node installation runs it, under mixed traffic for a long
//! time, and what it leaves behind.
//!
//! One `starfire worker` serves the default model; two `starfire serve` replicas (the binary
//! next to this one) share a PostgreSQL database of this run's own (`CREATE DATABASE` on the
//! server of `STARFIRE_TEST_DATABASE_URL`, dropped at the end) and Redis (`STARFIRE_TEST_REDIS_URL`,
//! keys under a prefix of this run's own) and send the model's requests to the worker. Set up
//! through the real API: `starfire admin bootstrap`, an operator switching that organization to
//! pay-as-you-go and crediting it, a second organization signed up on the free plan (its grant),
//! project keys with high limits, and one key limited to 3 requests a minute.
//!
//! Then `--clients` threads, spread over both replicas and both organizations, each pick
//! operations from a weighted mix until the time is up: chats plain and streamed (SSE read to
//! `[DONE]`), text completions plain and streamed, embeddings, chats over the WebSocket (key
//! header or a ticket minted on the other replica), WebSocket cancels, clients that drop a
//! stream (SSE or WebSocket) after a few chunks, admin reads (usage, costs, keys, balance,
//! ledger), key creation, use on the other replica, revocation and the 401 after it, the
//! rate-limited key (200 or 429), and bad requests (400 / 404). Every operation ends as `ok`,
//! `expected_error` (a refusal the soak provoked) or `unexpected` (any other status, a 5xx, an
//! error event mid-stream, a transport error).
//!
//! At the end, once idle: the worker's KV cache must be back to zero blocks in use (and no
//! request running, waiting or in flight from either gateway); every accepted inference request
//! must have left exactly one usage row (one that was cut short too, refused ones none) and none
//! may still be open; per prepaid organization the ledger must sum to the balance, nothing may
//! stay reserved, the usage debits must equal the billed cost of its usage rows, and the usage
//! rollup the API reads must equal the rows; no rate-limit concurrency lease or usage-progress
//! journal key may be left in Redis; each process's resident memory (sampled every
//! `--sample-s`) must end within 1.5 times its size after the warm-up (a sixth of the run, 10 s
//! to 5 min) plus 32 MiB (plus, for the worker, its KV cache, whose pages become resident as
//! blocks are first used); and every process must exit 0 on SIGTERM.
//!
//! Prints one JSON object; exits 1 when `pass` is false (the reasons are in `failures`), 2 when
//! the soak could not run.
//!
//! Usage: soak_bench [--quick] [--duration-s N] [--clients N] [--sample-s N]
//!   (`--quick`: 60 seconds; default 1800)

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use serde_json::{json, Value};
use starfire_bench::{cpu_name, free_port, percentile, starfire_binary, wait_for_ok};
use tungstenite::client::IntoClientRequest;
use tungstenite::{Message, WebSocket};

const MODEL: &str = gateway::registry::DEFAULT_MODEL_ID;
const WORKER_TOKEN: &str = "soak-bench-worker-token-0123456789abcdef";
const OPERATOR_TOKEN: &str = "soak-bench-operator-token-0123456789abcdef";
const SESSION_SECRET: &str = "soak-bench-session-secret-0123456789abcdefghijklmnopqrstuvwxyz";
const PASSWORD: &str = "soak bench password 0123";
/// The worker's KV cache.
const KV_CACHE_BYTES: u64 = 128 << 20;
/// The prepaid organization's credit from the operator.
const CREDIT_MICROS: i64 = 20_000_000;
/// Resident memory may end at most this factor of its size after the warm-up, plus
/// `RSS_SLACK_KIB`.
const RSS_FACTOR: f64 = 1.5;
const RSS_SLACK_KIB: u64 = 32 * 1024;
/// How long the end state may take to settle (KV freed, rows finalized, leases released).
const SETTLE: Duration = Duration::from_secs(30);
/// Details of this many unexpected outcomes are kept for the report.
const UNEXPECTED_KEPT: usize = 40;

// ---------------------------------------------------------------------------------------------
// Options

struct Options {
    duration: Duration,
    clients: usize,
    sample: Duration,
}

fn options() -> anyhow::Result<Options> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "--quick");
    let value = |name: &str| -> anyhow::Result<Option<u64>> {
        args.iter()
            .position(|a| a == name)
            .map(|i| {
                args.get(i + 1)
                    .with_context(|| format!("{name} wants a value"))?
                    .parse::<u64>()
                    .with_context(|| format!("{name} wants a whole number"))
            })
            .transpose()
    };
    for (i, a) in args.iter().enumerate() {
        let takes_value = ["--duration-s", "--clients", "--sample-s"];
        let is_value = i > 0 && takes_value.contains(&args[i - 1].as_str());
        if !is_value && a != "--quick" && !takes_value.contains(&a.as_str()) {
            bail!("unknown argument {a}; usage: soak_bench [--quick] [--duration-s N] [--clients N] [--sample-s N]");
        }
    }
    let duration = value("--duration-s")?.unwrap_or(if quick { 60 } else { 1800 });
    let sample = value("--sample-s")?.unwrap_or(if quick { 3 } else { 15 });
    let clients = value("--clients")?.unwrap_or(6) as usize;
    anyhow::ensure!(
        duration > 0 && clients > 0 && sample > 0,
        "values must be positive"
    );
    Ok(Options {
        duration: Duration::from_secs(duration),
        clients,
        sample: Duration::from_secs(sample),
    })
}

// ---------------------------------------------------------------------------------------------
// Processes

/// A `starfire` child process with its output in a log file; killed when dropped.
struct Process {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

impl Process {
    fn spawn(name: &'static str, mut cmd: Command, logs: &Path) -> anyhow::Result<Process> {
        let log = logs.join(format!("{name}.log"));
        let out = std::fs::File::create(&log)?;
        let child = cmd
            .stdout(Stdio::from(out.try_clone()?))
            .stderr(Stdio::from(out))
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        Ok(Process { name, child, log })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits until `GET path` answers 200, failing early when the process exits.
    fn wait_ready(&mut self, port: u16, path: &str, limit: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + limit;
        loop {
            if wait_for_ok(port, path, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "{} exited ({status}) before answering {path}:\n{}",
                    self.name,
                    self.log_tail(30)
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "{} did not answer 200 on {path} within {limit:?}:\n{}",
                    self.name,
                    self.log_tail(30)
                );
            }
        }
    }

    /// SIGTERM, then up to `within` for the process to exit (killed after that); how it ended.
    fn terminate(&mut self, within: Duration) -> String {
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status();
        let deadline = Instant::now() + within;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return status.to_string(),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                _ => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    return format!("still running {within:?} after SIGTERM: killed");
                }
            }
        }
    }

    fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The process's resident set (`VmRSS`), KiB.
fn rss_kib(pid: u32) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// A `starfire` command with only this run's environment (no STARFIRE_* from outside).
fn starfire(binary: &Path, home: &Path) -> anyhow::Result<Command> {
    std::fs::create_dir_all(home)?;
    let mut cmd = Command::new(binary);
    for (key, _) in std::env::vars() {
        if key.starts_with("STARFIRE_") {
            cmd.env_remove(key);
        }
    }
    cmd.env("STARFIRE_HOME", home);
    Ok(cmd)
}

/// What the gateways and `admin bootstrap` share: the database, Redis, secrets, the models file.
struct GatewayEnv {
    binary: PathBuf,
    config: PathBuf,
    database_url: String,
    redis_url: String,
    redis_prefix: String,
}

impl GatewayEnv {
    fn command(&self, home: &Path) -> anyhow::Result<Command> {
        let mut cmd = starfire(&self.binary, home)?;
        cmd.arg("--config")
            .arg(&self.config)
            .env("STARFIRE_DATABASE_URL", &self.database_url)
            .env("STARFIRE_REDIS_URL", &self.redis_url)
            .env("STARFIRE_RATE_LIMIT_KEY_PREFIX", &self.redis_prefix)
            .env("STARFIRE_SESSION_SECRET", SESSION_SECRET)
            .env("STARFIRE_WORKER_TOKEN", WORKER_TOKEN)
            .env("STARFIRE_BILLING_OPERATOR_TOKEN", OPERATOR_TOKEN);
        Ok(cmd)
    }
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL and Redis of this run

/// A database of this run's own on the test server; dropped (with its connections) on drop.
struct Database {
    server_url: String,
    name: String,
    url: String,
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

async fn pg(url: &str) -> anyhow::Result<sqlx::PgConnection> {
    use sqlx::Connection;
    sqlx::PgConnection::connect(url).await.with_context(|| {
        format!("PostgreSQL must be reachable at {url} (STARFIRE_TEST_DATABASE_URL)")
    })
}

impl Database {
    fn create(rt: &tokio::runtime::Runtime, server_url: &str, name: &str) -> anyhow::Result<Self> {
        rt.block_on(async {
            let mut conn = pg(server_url).await?;
            sqlx::query(&format!("CREATE DATABASE {name}"))
                .execute(&mut conn)
                .await
                .context("CREATE DATABASE")?;
            anyhow::Ok(())
        })?;
        let (base, query) = match server_url.split_once('?') {
            Some((b, q)) => (b, format!("?{q}")),
            None => (server_url, String::new()),
        };
        let (server, _) = base
            .rsplit_once('/')
            .context("the database URL names a database")?;
        Ok(Database {
            server_url: server_url.to_owned(),
            name: name.to_owned(),
            url: format!("{server}/{name}{query}"),
        })
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        let Ok(rt) = runtime() else { return };
        rt.block_on(async {
            if let Ok(mut conn) = pg(&self.server_url).await {
                let _ = sqlx::query(&format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    self.name
                ))
                .execute(&mut conn)
                .await;
            }
        });
    }
}

fn redis_connection(url: &str) -> anyhow::Result<redis::Connection> {
    redis::Client::open(url)?
        .get_connection_with_timeout(Duration::from_secs(5))
        .with_context(|| format!("Redis must be reachable at {url} (STARFIRE_TEST_REDIS_URL)"))
}

/// Deletes this run's keys: the limiter's under its prefix, the usage journal's of its requests.
struct RedisCleanup {
    url: String,
    prefix: String,
    journal_keys: Mutex<Vec<String>>,
}

impl Drop for RedisCleanup {
    fn drop(&mut self) {
        let Ok(mut conn) = redis_connection(&self.url) else {
            return;
        };
        let mut keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{}*", self.prefix))
            .query(&mut conn)
            .unwrap_or_default();
        keys.extend(std::mem::take(
            &mut *self.journal_keys.lock().unwrap_or_else(|e| e.into_inner()),
        ));
        for chunk in keys.chunks(500) {
            let _: Result<i64, _> = redis::cmd("DEL").arg(chunk).query(&mut conn);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// HTTP

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(120)))
        .build()
        .into()
}

struct Reply {
    status: u16,
    text: String,
    json: Value,
}

fn excerpt(text: &str) -> String {
    let mut s: String = text.chars().take(300).collect();
    if s.len() < text.len() {
        s.push('…');
    }
    s
}

impl Reply {
    fn describe(&self) -> String {
        format!("HTTP {}: {}", self.status, excerpt(&self.text))
    }

    fn error_code(&self) -> &str {
        self.json["error"]["code"].as_str().unwrap_or_default()
    }
}

fn call(
    agent: &ureq::Agent,
    method: &str,
    url: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> Result<Reply, String> {
    let auth = token.map(|t| format!("Bearer {t}"));
    let sent = match method {
        "GET" | "DELETE" => {
            let mut req = if method == "GET" {
                agent.get(url)
            } else {
                agent.delete(url)
            };
            if let Some(a) = &auth {
                req = req.header("authorization", a);
            }
            req.call()
        }
        _ => {
            let mut req = agent.post(url);
            if let Some(a) = &auth {
                req = req.header("authorization", a);
            }
            let body = body.map(Value::to_string).unwrap_or_default();
            req.content_type("application/json").send(body.as_bytes())
        }
    };
    let resp = sent.map_err(|e| format!("{method} {url}: {e}"))?;
    let status = resp.status().as_u16();
    let text = resp
        .into_body()
        .read_to_string()
        .map_err(|e| format!("{method} {url}: reading the body: {e}"))?;
    let json = serde_json::from_str(&text).unwrap_or(Value::Null);
    Ok(Reply { status, text, json })
}

/// `call` for the setup: anything but a 2xx is an error.
fn setup_call(
    agent: &ureq::Agent,
    method: &str,
    url: &str,
    token: &str,
    body: Option<Value>,
) -> anyhow::Result<Value> {
    let reply = call(agent, method, url, Some(token), body.as_ref()).map_err(anyhow::Error::msg)?;
    anyhow::ensure!(
        (200..300).contains(&reply.status),
        "{method} {url}: {}",
        reply.describe()
    );
    Ok(reply.json)
}

fn get_text(port: u16, path: &str) -> anyhow::Result<String> {
    let reply = call(
        &agent(),
        "GET",
        &format!("http://127.0.0.1:{port}{path}"),
        None,
        None,
    )
    .map_err(anyhow::Error::msg)?;
    anyhow::ensure!(reply.status == 200, "GET {path}: {}", reply.describe());
    Ok(reply.text)
}

/// The sum of a Prometheus family's samples (every label set), or 0 when it has none.
fn metric(text: &str, family: &str) -> f64 {
    text.lines()
        .filter(|l| {
            l.strip_prefix(family)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .fold(0.0, |sum, v| sum + v)
}

// ---------------------------------------------------------------------------------------------
// Outcomes

#[derive(Default)]
struct KindStats {
    ok: u64,
    expected_error: u64,
    unexpected: u64,
    /// Expected refusals by status and code.
    refusals: BTreeMap<String, u64>,
    latency_ms: Vec<f64>,
}

#[derive(Default)]
struct Tally {
    kinds: BTreeMap<&'static str, KindStats>,
    unexpected: Vec<Value>,
    /// Inference requests accepted (each must leave one usage row), by organization and the
    /// usage row's endpoint.
    accepted: BTreeMap<(usize, &'static str), u64>,
    /// Accepted requests the client cut short (cancel or disconnect).
    cut_short: u64,
}

/// An organization the traffic runs as.
struct Org {
    label: &'static str,
    tenant_id: String,
    project_id: String,
    admin_key: String,
    key: String,
    prepaid: bool,
}

/// What every client shares.
struct Ctx {
    ports: [u16; 2],
    orgs: Vec<Org>,
    /// A key of `orgs[0]` limited to 3 requests a minute.
    throttled_key: String,
    started: Instant,
    started_unix: i64,
    deadline: Instant,
    tally: Mutex<Tally>,
}

const REPLICAS: [&str; 2] = ["gateway-a", "gateway-b"];

impl Ctx {
    fn url(&self, replica: usize, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.ports[replica])
    }

    fn tally(&self) -> std::sync::MutexGuard<'_, Tally> {
        self.tally.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn ok(&self, kind: &'static str, since: Instant) {
        let ms = since.elapsed().as_secs_f64() * 1e3;
        let mut t = self.tally();
        let k = t.kinds.entry(kind).or_default();
        k.ok += 1;
        k.latency_ms.push(ms);
    }

    fn refused(&self, kind: &'static str, reply: &Reply) {
        let mut t = self.tally();
        let k = t.kinds.entry(kind).or_default();
        k.expected_error += 1;
        let what = format!("{} {}", reply.status, reply.error_code());
        *k.refusals.entry(what.trim().to_owned()).or_default() += 1;
    }

    fn unexpected(&self, kind: &'static str, replica: usize, detail: String) {
        let at = (self.started.elapsed().as_secs_f64() * 10.0).round() / 10.0;
        let mut t = self.tally();
        t.kinds.entry(kind).or_default().unexpected += 1;
        if t.unexpected.len() < UNEXPECTED_KEPT {
            t.unexpected.push(json!({
                "kind": kind, "replica": REPLICAS[replica], "at_s": at, "detail": detail,
            }));
        }
    }

    fn accepted(&self, org: usize, endpoint: &'static str) {
        *self.tally().accepted.entry((org, endpoint)).or_default() += 1;
    }

    fn cut_short(&self) {
        self.tally().cut_short += 1;
    }
}

// ---------------------------------------------------------------------------------------------
// The traffic

#[derive(Clone, Copy, Debug)]
enum Op {
    Chat,
    ChatStream,
    Completion,
    CompletionStream,
    Embeddings,
    StreamDisconnect,
    WsChat,
    WsCancel,
    WsDisconnect,
    Admin,
    KeyLifecycle,
    Throttled,
    BadRequest,
}

/// The mix: each operation with its weight.
const MIX: [(Op, u32); 13] = [
    (Op::Chat, 16),
    (Op::ChatStream, 16),
    (Op::Completion, 8),
    (Op::CompletionStream, 8),
    (Op::Embeddings, 10),
    (Op::StreamDisconnect, 5),
    (Op::WsChat, 8),
    (Op::WsCancel, 4),
    (Op::WsDisconnect, 3),
    (Op::Admin, 10),
    (Op::KeyLifecycle, 3),
    (Op::Throttled, 4),
    (Op::BadRequest, 3),
];

/// xorshift64*: a small deterministic generator per client.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const QUESTIONS: [&str; 8] = [
    "What is the capital of France?",
    "Write a haiku about the sea.",
    "Name three colours of autumn leaves.",
    "Explain in one sentence what a compiler does.",
    "Give me a short tip for a rainy day.",
    "What do bees make?",
    "Describe a lighthouse at night.",
    "Count from one to five in words.",
];

fn prompt(rng: &mut Rng, client: usize, n: u64) -> String {
    let q = QUESTIONS[rng.below(QUESTIONS.len() as u64) as usize];
    format!("{q} (client {client}, request {n})")
}

fn chat_body(text: &str, max_tokens: u64, stream: bool) -> Value {
    let mut body = json!({
        "model": MODEL,
        "messages": [{"role": "user", "content": text}],
        "max_tokens": max_tokens,
        "temperature": 0.7,
    });
    if stream {
        body["stream"] = json!(true);
        body["stream_options"] = json!({"include_usage": true});
    }
    body
}

/// A chat that runs for a while (so that a cancel or a disconnect lands mid-generation).
fn long_chat_body(text: &str) -> Value {
    let mut body = chat_body(text, 64, false);
    body["ignore_eos"] = json!(true);
    body
}

fn client_loop(ctx: &Ctx, client: usize, clients: usize) {
    let agent = agent();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ ((client as u64 + 1) << 20));
    let total: u32 = MIX.iter().map(|(_, w)| w).sum();
    let mut n: u64 = 0;
    while Instant::now() < ctx.deadline {
        // The first rounds go through the whole mix once (spread over the clients), so that a
        // short run sees every operation; then weighted picks.
        let first = n as usize * clients + client;
        let op = if first < MIX.len() {
            MIX[first].0
        } else {
            let mut pick = rng.below(total as u64) as u32;
            let mut chosen = MIX[0].0;
            for (op, w) in MIX {
                if pick < w {
                    chosen = op;
                    break;
                }
                pick -= w;
            }
            chosen
        };
        let replica = (client + n as usize) % 2;
        let org = rng.below(ctx.orgs.len() as u64) as usize;
        let text = prompt(&mut rng, client, n);
        run_op(ctx, &agent, op, replica, org, &text, n);
        n += 1;
    }
}

fn run_op(ctx: &Ctx, agent: &ureq::Agent, op: Op, r: usize, o: usize, text: &str, n: u64) {
    let key = ctx.orgs[o].key.as_str();
    match op {
        Op::Chat => {
            let body = chat_body(text, 16, false);
            plain(
                ctx,
                agent,
                "chat",
                r,
                o,
                key,
                "/v1/chat/completions",
                &body,
                |j| j["choices"][0]["message"]["content"].is_string(),
            );
        }
        Op::ChatStream => {
            let body = chat_body(text, 24, true);
            streamed(
                ctx,
                agent,
                "chat_stream",
                r,
                o,
                "/v1/chat/completions",
                &body,
            );
        }
        Op::Completion => {
            let body = json!({"model": MODEL, "prompt": text, "max_tokens": 16});
            plain(
                ctx,
                agent,
                "completion",
                r,
                o,
                key,
                "/v1/completions",
                &body,
                |j| j["choices"][0]["text"].is_string(),
            );
        }
        Op::CompletionStream => {
            let body = json!({"model": MODEL, "prompt": text, "max_tokens": 24, "stream": true,
                              "stream_options": {"include_usage": true}});
            streamed(
                ctx,
                agent,
                "completion_stream",
                r,
                o,
                "/v1/completions",
                &body,
            );
        }
        Op::Embeddings => embeddings(ctx, agent, r, o, text, n),
        Op::StreamDisconnect => stream_disconnect(ctx, r, o, text),
        Op::WsChat => ws_chat(ctx, agent, r, o, text, n),
        Op::WsCancel => ws_cut_short(ctx, r, o, text, true),
        Op::WsDisconnect => ws_cut_short(ctx, r, o, text, false),
        Op::Admin => admin(ctx, agent, r, o, n),
        Op::KeyLifecycle => key_lifecycle(ctx, agent, r, o, text),
        Op::Throttled => throttled(ctx, agent, r, text),
        Op::BadRequest => bad_request(ctx, agent, r, o, text, n),
    }
}

/// A non-streamed inference request that must answer 200 with `check` true of its body.
#[allow(clippy::too_many_arguments)]
fn plain(
    ctx: &Ctx,
    agent: &ureq::Agent,
    kind: &'static str,
    r: usize,
    o: usize,
    key: &str,
    path: &str,
    body: &Value,
    check: fn(&Value) -> bool,
) {
    let started = Instant::now();
    match call(agent, "POST", &ctx.url(r, path), Some(key), Some(body)) {
        Ok(reply) if reply.status == 200 => {
            ctx.accepted(o, "completions");
            if check(&reply.json) && reply.json["usage"]["total_tokens"].as_u64().is_some() {
                ctx.ok(kind, started);
            } else {
                ctx.unexpected(
                    kind,
                    r,
                    format!("200 of an unexpected shape: {}", excerpt(&reply.text)),
                );
            }
        }
        Ok(reply) => ctx.unexpected(kind, r, reply.describe()),
        Err(e) => ctx.unexpected(kind, r, e),
    }
}

/// A streamed request read to `[DONE]`: 200, chunks without error events, a usage chunk.
fn streamed(
    ctx: &Ctx,
    agent: &ureq::Agent,
    kind: &'static str,
    r: usize,
    o: usize,
    path: &str,
    body: &Value,
) {
    let started = Instant::now();
    let url = ctx.url(r, path);
    let sent = agent
        .post(&url)
        .header("authorization", &format!("Bearer {}", ctx.orgs[o].key))
        .content_type("application/json")
        .send(body.to_string().as_bytes());
    let resp = match sent {
        Ok(resp) => resp,
        Err(e) => return ctx.unexpected(kind, r, format!("POST {path}: {e}")),
    };
    let status = resp.status().as_u16();
    let mut reader = BufReader::new(resp.into_body().into_reader());
    if status != 200 {
        let mut text = String::new();
        let _ = reader.read_to_string(&mut text);
        return ctx.unexpected(kind, r, format!("HTTP {status}: {}", excerpt(&text)));
    }
    ctx.accepted(o, "completions");
    let mut usage = false;
    let mut line = String::new();
    loop {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) => return ctx.unexpected(kind, r, "the stream ended without [DONE]".into()),
            Ok(_) => {}
            Err(e) => return ctx.unexpected(kind, r, format!("reading the stream: {e}")),
        }
        let Some(data) = line.trim_end().strip_prefix("data: ") else {
            continue;
        };
        if data == "[DONE]" {
            break;
        }
        let chunk: Value = match serde_json::from_str(data) {
            Ok(c) => c,
            Err(e) => {
                return ctx.unexpected(
                    kind,
                    r,
                    format!("a chunk that is not JSON ({e}): {}", excerpt(data)),
                )
            }
        };
        if chunk.get("error").is_some() {
            return ctx.unexpected(kind, r, format!("error event: {}", excerpt(data)));
        }
        usage |= chunk["usage"].is_object();
    }
    if usage {
        ctx.ok(kind, started);
    } else {
        ctx.unexpected(kind, r, "no usage chunk before [DONE]".into());
    }
}

fn embeddings(ctx: &Ctx, agent: &ureq::Agent, r: usize, o: usize, text: &str, n: u64) {
    const KIND: &str = "embeddings";
    let input = if n.is_multiple_of(2) {
        json!(text)
    } else {
        json!([text, "a second input of the same request"])
    };
    let body = json!({"model": MODEL, "input": input});
    let started = Instant::now();
    let key = ctx.orgs[o].key.as_str();
    match call(
        agent,
        "POST",
        &ctx.url(r, "/v1/embeddings"),
        Some(key),
        Some(&body),
    ) {
        Ok(reply) if reply.status == 200 => {
            ctx.accepted(o, "embeddings");
            let vectors = reply.json["data"].as_array().map_or(0, |d| {
                d.iter()
                    .filter(|e| e["embedding"].as_array().is_some_and(|v| !v.is_empty()))
                    .count()
            });
            let wanted = if n.is_multiple_of(2) { 1 } else { 2 };
            if vectors == wanted {
                ctx.ok(KIND, started);
            } else {
                ctx.unexpected(KIND, r, format!("{vectors} vectors for {wanted} inputs"));
            }
        }
        Ok(reply) => ctx.unexpected(KIND, r, reply.describe()),
        Err(e) => ctx.unexpected(KIND, r, e),
    }
}

/// A streamed chat whose client reads three events and then drops the connection (raw HTTP
/// over a socket of its own, so that nothing drains or keeps it).
fn stream_disconnect(ctx: &Ctx, r: usize, o: usize, text: &str) {
    const KIND: &str = "chat_stream_disconnect";
    let started = Instant::now();
    match read_three_events_and_leave(ctx, r, o, text) {
        Ok(()) => {
            ctx.cut_short();
            ctx.ok(KIND, started);
        }
        Err(e) => ctx.unexpected(KIND, r, e),
    }
}

fn read_three_events_and_leave(ctx: &Ctx, r: usize, o: usize, text: &str) -> Result<(), String> {
    let mut body = long_chat_body(text);
    body["stream"] = json!(true);
    let body = body.to_string();
    let mut s = TcpStream::connect(("127.0.0.1", ctx.ports[r])).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(60)))
        .map_err(|e| e.to_string())?;
    write!(
        s,
        "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        ctx.orgs[o].key,
        body.len()
    )
    .map_err(|e| e.to_string())?;
    let mut reader = BufReader::new(s.try_clone().map_err(|e| e.to_string())?);
    let mut head = String::new();
    reader.read_line(&mut head).map_err(|e| e.to_string())?;
    let status: u16 = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    if status != 200 {
        let mut rest = String::new();
        let _ = reader.read_to_string(&mut rest);
        return Err(format!("HTTP {status}: {}", excerpt(&rest)));
    }
    ctx.accepted(o, "completions");
    let mut events = 0;
    let mut line = String::new();
    while events < 3 {
        line.clear();
        if reader.read_line(&mut line).map_err(|e| e.to_string())? == 0 {
            return Err("the stream ended before three events".into());
        }
        if let Some(data) = line.trim_end().strip_prefix("data: ") {
            if data.contains("\"error\"") {
                return Err(format!("error event: {}", excerpt(data)));
            }
            events += 1;
        }
    }
    let _ = s.shutdown(Shutdown::Both);
    Ok(())
}

type Ws = WebSocket<TcpStream>;

/// Opens a chat WebSocket on replica `r`, authenticated by the key header or by `ticket`.
fn ws_connect(ctx: &Ctx, r: usize, key: &str, ticket: Option<&str>) -> Result<Ws, String> {
    let query = ticket.map(|t| format!("?ticket={t}")).unwrap_or_default();
    let url = format!("ws://127.0.0.1:{}/v1/chat/ws{query}", ctx.ports[r]);
    let mut request = url.into_client_request().map_err(|e| e.to_string())?;
    if ticket.is_none() {
        let value = format!("Bearer {key}")
            .parse()
            .map_err(|e| format!("{e}"))?;
        request.headers_mut().insert("authorization", value);
    }
    let stream = TcpStream::connect(("127.0.0.1", ctx.ports[r])).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .map_err(|e| e.to_string())?;
    match tungstenite::client(request, stream) {
        Ok((ws, _)) => Ok(ws),
        Err(tungstenite::HandshakeError::Failure(tungstenite::Error::Http(resp))) => {
            let body = resp
                .body()
                .as_deref()
                .map(String::from_utf8_lossy)
                .unwrap_or_default();
            Err(format!(
                "upgrade refused: HTTP {}: {}",
                resp.status(),
                excerpt(&body)
            ))
        }
        Err(e) => Err(format!("upgrade: {e}")),
    }
}

fn ws_send(ws: &mut Ws, id: &str, body: &Value) -> Result<(), String> {
    let mut frame = body.clone();
    frame["type"] = json!("chat.request");
    frame["id"] = json!(id);
    ws.send(Message::text(frame.to_string()))
        .map_err(|e| format!("sending {id}: {e}"))
}

fn ws_frame(ws: &mut Ws) -> Result<Value, String> {
    loop {
        match ws.read() {
            Ok(Message::Text(text)) => {
                return serde_json::from_str(text.as_str()).map_err(|e| {
                    format!("a frame that is not JSON ({e}): {}", excerpt(text.as_str()))
                })
            }
            Ok(Message::Ping(_)) | Ok(Message::Pong(_)) => continue,
            Ok(Message::Close(close)) => {
                return Err(format!("the server closed the socket: {close:?}"))
            }
            Ok(other) => return Err(format!("an unexpected frame: {other:?}")),
            Err(e) => return Err(format!("reading a frame: {e}")),
        }
    }
}

/// Closes the socket as a well-behaved client does.
fn ws_close(mut ws: Ws) {
    let _ = ws.get_mut().set_read_timeout(Some(Duration::from_secs(5)));
    let _ = ws.close(None);
    for _ in 0..100 {
        if ws.read().is_err() {
            break;
        }
    }
}

/// Two chats at once on one socket, each read to `chat.done` (with usage).
fn ws_chat(ctx: &Ctx, agent: &ureq::Agent, r: usize, o: usize, text: &str, n: u64) {
    const KIND: &str = "ws_chat";
    let key = ctx.orgs[o].key.as_str();
    let started = Instant::now();
    // Every other socket with a ticket minted on the other replica.
    let ticket = if n % 2 == 1 {
        match call(
            agent,
            "POST",
            &ctx.url(1 - r, "/v1/ws/tickets"),
            Some(key),
            None,
        ) {
            Ok(reply) if reply.status == 200 => match reply.json["ticket"].as_str() {
                Some(t) => {
                    ctx.ok("ws_ticket", started);
                    Some(t.to_owned())
                }
                None => return ctx.unexpected("ws_ticket", 1 - r, reply.describe()),
            },
            Ok(reply) => return ctx.unexpected("ws_ticket", 1 - r, reply.describe()),
            Err(e) => return ctx.unexpected("ws_ticket", 1 - r, e),
        }
    } else {
        None
    };
    let mut ws = match ws_connect(ctx, r, key, ticket.as_deref()) {
        Ok(ws) => ws,
        Err(e) => return ctx.unexpected(KIND, r, e),
    };
    let ids = ["a", "b"];
    for (i, id) in ids.iter().enumerate() {
        let body = chat_body(text, 12 + 4 * i as u64, false);
        if let Err(e) = ws_send(&mut ws, id, &body) {
            return ctx.unexpected(KIND, r, e);
        }
    }
    let mut open: Vec<&str> = ids.to_vec();
    while !open.is_empty() {
        let frame = match ws_frame(&mut ws) {
            Ok(f) => f,
            Err(e) => {
                for _ in &open {
                    ctx.unexpected(KIND, r, e.clone());
                }
                return;
            }
        };
        let id = frame["id"].as_str().unwrap_or_default().to_owned();
        match frame["type"].as_str() {
            Some("chat.delta") => {}
            Some("chat.done") if open.contains(&id.as_str()) => {
                open.retain(|x| *x != id);
                ctx.accepted(o, "completions");
                if frame["usage"]["completion_tokens"].as_u64().is_some() {
                    ctx.ok(KIND, started);
                } else {
                    ctx.unexpected(KIND, r, format!("chat.done without usage: {frame}"));
                }
            }
            _ => {
                open.retain(|x| *x != id);
                ctx.unexpected(KIND, r, excerpt(&frame.to_string()));
                if id.is_empty() {
                    return;
                }
            }
        }
    }
    ws_close(ws);
}

/// A long chat on a socket, cut short after two deltas: by a `cancel` frame (then the socket
/// must carry another chat), or by dropping the connection.
fn ws_cut_short(ctx: &Ctx, r: usize, o: usize, text: &str, cancel: bool) {
    let kind = if cancel { "ws_cancel" } else { "ws_disconnect" };
    let started = Instant::now();
    match long_chat_cut_short(ctx, r, o, text, cancel) {
        Ok(None) => ctx.ok(kind, started),
        Ok(Some(mut ws)) => {
            ctx.ok(kind, started);
            // The socket goes on after a cancel.
            let again = Instant::now();
            match short_chat_on(&mut ws, text) {
                Ok(()) => {
                    ctx.accepted(o, "completions");
                    ctx.ok("ws_chat_after_cancel", again);
                }
                Err(e) => ctx.unexpected("ws_chat_after_cancel", r, e),
            }
            ws_close(ws);
        }
        Err(e) => ctx.unexpected(kind, r, e),
    }
}

/// Sends the long chat, reads two deltas, then cancels it (and reads to its `chat.done`,
/// `cancelled`) or drops the connection; the socket when it is still open.
fn long_chat_cut_short(
    ctx: &Ctx,
    r: usize,
    o: usize,
    text: &str,
    cancel: bool,
) -> Result<Option<Ws>, String> {
    let mut ws = ws_connect(ctx, r, &ctx.orgs[o].key, None)?;
    ws_send(&mut ws, "long", &long_chat_body(text))?;
    let mut deltas = 0;
    while deltas < 2 {
        let frame = ws_frame(&mut ws)?;
        match frame["type"].as_str() {
            Some("chat.delta") => deltas += 1,
            _ => {
                return Err(format!(
                    "before two deltas: {}",
                    excerpt(&frame.to_string())
                ))
            }
        }
    }
    ctx.accepted(o, "completions");
    ctx.cut_short();
    if !cancel {
        let _ = ws.get_mut().shutdown(Shutdown::Both);
        return Ok(None);
    }
    ws.send(Message::text(
        json!({"type": "cancel", "id": "long"}).to_string(),
    ))
    .map_err(|e| format!("sending the cancel: {e}"))?;
    loop {
        let frame = ws_frame(&mut ws)?;
        match frame["type"].as_str() {
            Some("chat.delta") => continue,
            Some("chat.done") if frame["finish_reason"] == "cancelled" => return Ok(Some(ws)),
            _ => return Err(format!("after the cancel: {}", excerpt(&frame.to_string()))),
        }
    }
}

/// A short chat on an open socket, read to its `chat.done`.
fn short_chat_on(ws: &mut Ws, text: &str) -> Result<(), String> {
    ws_send(ws, "after", &chat_body(text, 8, false))?;
    loop {
        let frame = ws_frame(ws)?;
        match frame["type"].as_str() {
            Some("chat.delta") => continue,
            Some("chat.done") => return Ok(()),
            _ => return Err(excerpt(&frame.to_string())),
        }
    }
}

fn admin(ctx: &Ctx, agent: &ureq::Agent, r: usize, o: usize, n: u64) {
    const KIND: &str = "admin";
    let org = &ctx.orgs[o];
    let since = ctx.started_unix - 3600;
    let path = match n % 6 {
        0 => format!("/v1/organization/usage/completions?start_time={since}&bucket_width=1m"),
        1 => format!("/v1/organization/usage/embeddings?start_time={since}&bucket_width=1h"),
        2 => format!("/v1/organization/costs?start_time={since}"),
        3 => format!("/v1/organization/projects/{}/api_keys", org.project_id),
        4 => "/v1/billing/balance".to_owned(),
        _ => "/v1/billing/ledger?limit=10".to_owned(),
    };
    let started = Instant::now();
    match call(agent, "GET", &ctx.url(r, &path), Some(&org.admin_key), None) {
        Ok(reply) if reply.status == 200 && reply.json.is_object() => ctx.ok(KIND, started),
        Ok(reply) => ctx.unexpected(KIND, r, format!("GET {path}: {}", reply.describe())),
        Err(e) => ctx.unexpected(KIND, r, e),
    }
}

/// A key created on one replica, used on the other, revoked, then refused (401) on the other.
fn key_lifecycle(ctx: &Ctx, agent: &ureq::Agent, r: usize, o: usize, text: &str) {
    let org = &ctx.orgs[o];
    let other = 1 - r;
    let keys = format!("/v1/organization/projects/{}/api_keys", org.project_id);
    let started = Instant::now();
    let body = json!({"name": "soak short-lived", "scopes": ["inference"]});
    let created = match call(
        agent,
        "POST",
        &ctx.url(r, &keys),
        Some(&org.admin_key),
        Some(&body),
    ) {
        Ok(reply) if reply.status == 201 => reply.json,
        Ok(reply) => return ctx.unexpected("key_create", r, reply.describe()),
        Err(e) => return ctx.unexpected("key_create", r, e),
    };
    let (Some(id), Some(value)) = (created["id"].as_str(), created["value"].as_str()) else {
        return ctx.unexpected("key_create", r, format!("no id and value: {created}"));
    };
    ctx.ok("key_create", started);

    let chat = chat_body(text, 4, false);
    let url = ctx.url(other, "/v1/chat/completions");
    let started = Instant::now();
    match call(agent, "POST", &url, Some(value), Some(&chat)) {
        Ok(reply) if reply.status == 200 => {
            ctx.accepted(o, "completions");
            ctx.ok("key_use", started);
        }
        Ok(reply) => ctx.unexpected("key_use", other, reply.describe()),
        Err(e) => ctx.unexpected("key_use", other, e),
    }

    let started = Instant::now();
    match call(
        agent,
        "DELETE",
        &ctx.url(r, &format!("{keys}/{id}")),
        Some(&org.admin_key),
        None,
    ) {
        Ok(reply) if reply.status == 200 => ctx.ok("key_revoke", started),
        Ok(reply) => return ctx.unexpected("key_revoke", r, reply.describe()),
        Err(e) => return ctx.unexpected("key_revoke", r, e),
    }

    match call(agent, "POST", &url, Some(value), Some(&chat)) {
        Ok(reply) if reply.status == 401 => ctx.refused("key_use_after_revoke", &reply),
        Ok(reply) => {
            if reply.status == 200 {
                ctx.accepted(o, "completions");
            }
            ctx.unexpected(
                "key_use_after_revoke",
                other,
                format!("a revoked key: {}", reply.describe()),
            )
        }
        Err(e) => ctx.unexpected("key_use_after_revoke", other, e),
    }
}

/// The key limited to 3 requests a minute: 200 or 429 `rate_limit_exceeded`, shared by both
/// replicas through Redis.
fn throttled(ctx: &Ctx, agent: &ureq::Agent, r: usize, text: &str) {
    const KIND: &str = "throttled_chat";
    let body = chat_body(text, 4, false);
    let started = Instant::now();
    let url = ctx.url(r, "/v1/chat/completions");
    match call(agent, "POST", &url, Some(&ctx.throttled_key), Some(&body)) {
        Ok(reply) if reply.status == 200 => {
            ctx.accepted(0, "completions");
            ctx.ok(KIND, started);
        }
        Ok(reply) if reply.status == 429 && reply.error_code() == "rate_limit_exceeded" => {
            ctx.refused(KIND, &reply)
        }
        Ok(reply) => ctx.unexpected(KIND, r, reply.describe()),
        Err(e) => ctx.unexpected(KIND, r, e),
    }
}

/// Requests the gateway must refuse before admission (no usage row): an unknown model (404),
/// a negative `max_tokens` (400).
fn bad_request(ctx: &Ctx, agent: &ureq::Agent, r: usize, o: usize, text: &str, n: u64) {
    const KIND: &str = "bad_request";
    let mut body = chat_body(text, 8, false);
    let wanted = if n.is_multiple_of(2) {
        body["model"] = json!("no-such-model");
        404
    } else {
        body["max_tokens"] = json!(-1);
        400
    };
    let url = ctx.url(r, "/v1/chat/completions");
    match call(agent, "POST", &url, Some(&ctx.orgs[o].key), Some(&body)) {
        Ok(reply) if reply.status == wanted && reply.json["error"]["message"].is_string() => {
            ctx.refused(KIND, &reply)
        }
        Ok(reply) => {
            if reply.status == 200 {
                ctx.accepted(o, "completions");
            }
            ctx.unexpected(KIND, r, format!("wanted {wanted}: {}", reply.describe()))
        }
        Err(e) => ctx.unexpected(KIND, r, e),
    }
}

// ---------------------------------------------------------------------------------------------
// Setup

struct Bootstrapped {
    tenant_id: String,
    project_id: String,
    admin_key: String,
}

fn bootstrap(env: &GatewayEnv, home: &Path) -> anyhow::Result<Bootstrapped> {
    let out = env
        .command(home)?
        .args([
            "admin",
            "bootstrap",
            "--email",
            "soak@example.com",
            "--password",
            PASSWORD,
        ])
        .args(["--tenant", "Soak prepaid"])
        .output()
        .context("starfire admin bootstrap")?;
    anyhow::ensure!(
        out.status.success(),
        "starfire admin bootstrap: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).context("bootstrap prints JSON")?;
    let field = |k: &str| {
        v[k].as_str()
            .map(str::to_owned)
            .with_context(|| format!("bootstrap printed no {k}: {v}"))
    };
    Ok(Bootstrapped {
        tenant_id: field("tenant_id")?,
        project_id: field("project_id")?,
        admin_key: field("admin_key")?,
    })
}

/// Limits no soak client reaches.
fn high_limits() -> Value {
    json!({"rpm": 100_000, "tpm": 10_000_000, "concurrency": 1000})
}

fn create_key(
    agent: &ureq::Agent,
    base: &str,
    admin_key: &str,
    project: &str,
    name: &str,
    limits: Value,
) -> anyhow::Result<String> {
    let key = setup_call(
        agent,
        "POST",
        &format!("{base}/v1/organization/projects/{project}/api_keys"),
        admin_key,
        Some(json!({"name": name, "scopes": ["inference"], "limits": limits})),
    )?;
    key["value"]
        .as_str()
        .map(str::to_owned)
        .context("a created key has a value")
}

/// The two organizations (and the throttled key) through the API of gateway-a.
fn set_up_organizations(base: &str, boot: Bootstrapped) -> anyhow::Result<(Vec<Org>, String)> {
    let agent = agent();
    // The bootstrapped organization is enterprise (postpaid); the operator makes it prepaid
    // and credits it, so that its requests are debited from a balance.
    let org_path = format!("{base}/v1/billing/admin/organizations/{}", boot.tenant_id);
    setup_call(
        &agent,
        "POST",
        &format!("{org_path}/plan"),
        OPERATOR_TOKEN,
        Some(json!({"plan": "pay_as_you_go"})),
    )?;
    setup_call(
        &agent,
        "POST",
        &format!("{org_path}/adjustments"),
        OPERATOR_TOKEN,
        Some(json!({"amount_micros": CREDIT_MICROS, "reason": "soak credit"})),
    )?;
    let key = create_key(
        &agent,
        base,
        &boot.admin_key,
        &boot.project_id,
        "soak",
        high_limits(),
    )?;
    let throttled = create_key(
        &agent,
        base,
        &boot.admin_key,
        &boot.project_id,
        "soak throttled",
        json!({"rpm": 3}),
    )?;
    let prepaid = Org {
        label: "prepaid",
        tenant_id: boot.tenant_id,
        project_id: boot.project_id,
        admin_key: boot.admin_key,
        key,
        prepaid: true,
    };

    // A second organization signed up on the free plan: its grant is its balance.
    let signup = call(
        &agent,
        "POST",
        &format!("{base}/v1/auth/signup"),
        None,
        Some(&json!({"email": "soak-free@example.com", "password": PASSWORD})),
    )
    .map_err(anyhow::Error::msg)?;
    anyhow::ensure!(signup.status == 201, "signup: {}", signup.describe());
    let access = signup.json["access_token"]
        .as_str()
        .context("signup gives an access token")?;
    let tenant_id = signup.json["organization"]["id"]
        .as_str()
        .context("signup names the organization")?
        .to_owned();
    let admin = setup_call(
        &agent,
        "POST",
        &format!("{base}/v1/organization/admin_api_keys"),
        access,
        Some(json!({"name": "soak admin"})),
    )?;
    let admin_key = admin["value"]
        .as_str()
        .context("an admin key has a value")?
        .to_owned();
    let projects = setup_call(
        &agent,
        "GET",
        &format!("{base}/v1/organization/projects"),
        &admin_key,
        None,
    )?;
    let project_id = projects["data"][0]["id"]
        .as_str()
        .context("the free organization has a default project")?
        .to_owned();
    let key = create_key(&agent, base, &admin_key, &project_id, "soak", high_limits())?;
    let free = Org {
        label: "free",
        tenant_id,
        project_id,
        admin_key,
        key,
        prepaid: true,
    };
    Ok((vec![prepaid, free], throttled))
}

/// The worker's KV blocks: its cache over the bytes one block of the model takes.
fn kv_blocks_total(model: &Path) -> anyhow::Result<usize> {
    let gguf = engine::gguf::GgufFile::open(model)?;
    let config = engine::ModelConfig::from_gguf(&gguf.metadata)?;
    let shape = scheduler::KvCacheShape {
        num_layers: config.num_layers,
        num_kv_heads: config.num_kv_heads,
        head_dim: config.head_dim,
        dtype_bytes: engine::KvCache::BYTES_PER_VALUE,
    };
    let block_size = scheduler::SchedulerConfig::default().block_size;
    Ok(scheduler::config::num_kv_blocks(
        shape,
        block_size,
        KV_CACHE_BYTES,
    ))
}

// ---------------------------------------------------------------------------------------------
// Resident memory over time

struct RssSeries {
    name: &'static str,
    pid: u32,
    samples: Vec<(f64, u64)>,
}

fn sample_rss(series: &Mutex<Vec<RssSeries>>, t0: Instant) {
    let t = (t0.elapsed().as_secs_f64() * 10.0).round() / 10.0;
    for s in series.lock().unwrap_or_else(|e| e.into_inner()).iter_mut() {
        if let Some(kib) = rss_kib(s.pid) {
            s.samples.push((t, kib));
        }
    }
}

fn rss_report(s: &RssSeries, warm_up_s: f64, failures: &mut Vec<String>) -> Value {
    let first = s.samples.first().map_or(0, |x| x.1);
    let end = s.samples.last().map_or(0, |x| x.1);
    let max = s.samples.iter().map(|x| x.1).max().unwrap_or(0);
    let warm = s
        .samples
        .iter()
        .find(|(t, _)| *t >= warm_up_s)
        .or(s.samples.last())
        .map_or(0, |x| x.1);
    // The worker's KV cache is allocated at start but its pages become resident as the block
    // pool first hands each block out, which a short run may not finish by the warm-up: it may
    // grow by that much without leaking.
    let lazily_resident = if s.name == "worker" {
        KV_CACHE_BYTES / 1024
    } else {
        0
    };
    let bound = (warm as f64 * RSS_FACTOR) as u64 + RSS_SLACK_KIB + lazily_resident;
    if end > bound {
        failures.push(format!(
            "{}: resident memory ended at {end} KiB, over the bound {bound} KiB ({RSS_FACTOR} x \
             {warm} KiB after the warm-up + {RSS_SLACK_KIB} KiB + {lazily_resident} KiB of KV \
             cache)",
            s.name
        ));
    }
    json!({
        "pid": s.pid,
        "start_kib": first,
        "after_warm_up_kib": warm,
        "end_kib": end,
        "max_kib": max,
        "growth_after_warm_up_kib": end as i64 - warm as i64,
        "bound_kib": bound,
        "within_bound": end <= bound,
        "samples": s.samples.iter().map(|(t, k)| json!([t, k])).collect::<Vec<_>>(),
    })
}

// ---------------------------------------------------------------------------------------------
// The end state

/// Waits (at most `SETTLE`) until the worker runs and holds nothing and neither gateway has a
/// request in flight to it.
fn settle_engine(worker: u16, gateways: [u16; 2], blocks_total: usize) -> (Value, bool) {
    let started = Instant::now();
    loop {
        let worker_metrics = get_text(worker, "/metrics").unwrap_or_default();
        let running = metric(&worker_metrics, "starfire:num_requests_running");
        let waiting = metric(&worker_metrics, "starfire:num_requests_waiting");
        let usage = metric(&worker_metrics, "starfire:kv_cache_usage_perc");
        let in_flight: Vec<f64> = gateways
            .iter()
            .map(|p| {
                let text = get_text(*p, "/metrics").unwrap_or_default();
                metric(&text, "starfire_worker_requests_in_flight")
            })
            .collect();
        let idle = !worker_metrics.is_empty()
            && running == 0.0
            && waiting == 0.0
            && usage == 0.0
            && in_flight.iter().all(|n| *n == 0.0);
        if idle || started.elapsed() > SETTLE {
            let blocks = (usage * blocks_total as f64).round() as u64;
            return (
                json!({
                    "idle": idle,
                    "seconds_to_idle": (started.elapsed().as_secs_f64() * 10.0).round() / 10.0,
                    "worker_requests_running": running,
                    "worker_requests_waiting": waiting,
                    "kv_cache_usage_perc": usage,
                    "kv_blocks_in_use": blocks,
                    "kv_blocks_total": blocks_total,
                    "gateway_requests_in_flight": {"gateway-a": in_flight[0], "gateway-b": in_flight[1]},
                }),
                idle,
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Counters of each gateway that say something went wrong inside it.
fn gateway_counters(ports: [u16; 2]) -> Value {
    let families = [
        "starfire_usage_write_failures_total",
        "starfire_rate_limit_redis_errors_total",
        "starfire_rate_limit_local_fallbacks_total",
        "starfire_rate_limit_unavailable_total",
        "starfire_rate_limit_refusals_total",
        "starfire_usage_events_total",
    ];
    let mut out = serde_json::Map::new();
    for (name, port) in REPLICAS.iter().zip(ports) {
        let text = get_text(port, "/metrics").unwrap_or_default();
        let values: serde_json::Map<String, Value> = families
            .iter()
            .map(|f| (f.to_string(), json!(metric(&text, f))))
            .collect();
        out.insert(name.to_string(), Value::Object(values));
    }
    Value::Object(out)
}

async fn count(conn: &mut sqlx::PgConnection, sql: &str) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar::<_, i64>(sql).fetch_one(conn).await?)
}

/// Usage rows against the requests accepted, and the ledger against the balances.
async fn database_checks(
    db_url: &str,
    orgs: &[Org],
    accepted: &BTreeMap<(usize, &'static str), u64>,
    cut_short: u64,
    failures: &mut Vec<String>,
) -> anyhow::Result<(Value, Value, Vec<String>)> {
    use sqlx::Row;
    let mut conn = pg(db_url).await?;
    // Finalizing a request that was cut short is asynchronous: let the rows close.
    let started = Instant::now();
    let mut open = count(
        &mut conn,
        "SELECT COUNT(*) FROM usage_events WHERE status = 'in_progress'",
    )
    .await?;
    while open > 0 && started.elapsed() < SETTLE {
        tokio::time::sleep(Duration::from_millis(200)).await;
        open = count(
            &mut conn,
            "SELECT COUNT(*) FROM usage_events WHERE status = 'in_progress'",
        )
        .await?;
    }
    if open > 0 {
        failures.push(format!(
            "{open} usage rows still in_progress {SETTLE:?} after the traffic"
        ));
    }

    let rows = sqlx::query(
        "SELECT tenant_id, endpoint, status, COUNT(*) AS n FROM usage_events \
         GROUP BY tenant_id, endpoint, status",
    )
    .fetch_all(&mut conn)
    .await?;
    let mut usage = serde_json::Map::new();
    let (mut accepted_total, mut rows_total) = (0u64, 0u64);
    for (i, org) in orgs.iter().enumerate() {
        let mut by_status: BTreeMap<String, i64> = BTreeMap::new();
        let mut by_endpoint: BTreeMap<String, i64> = BTreeMap::new();
        for row in &rows {
            let tenant: String = row.try_get("tenant_id")?;
            if tenant != org.tenant_id {
                continue;
            }
            let endpoint: String = row.try_get("endpoint")?;
            let status: String = row.try_get("status")?;
            let n: i64 = row.try_get("n")?;
            *by_status.entry(status.clone()).or_default() += n;
            if status != "rejected" {
                *by_endpoint.entry(endpoint).or_default() += n;
            }
        }
        let rows_not_rejected: i64 = by_endpoint.values().sum();
        let mut accepted_by_endpoint = serde_json::Map::new();
        let mut org_accepted = 0;
        for endpoint in ["completions", "embeddings"] {
            let a = accepted.get(&(i, endpoint)).copied().unwrap_or(0);
            org_accepted += a;
            let r = by_endpoint.get(endpoint).copied().unwrap_or(0);
            accepted_by_endpoint.insert(endpoint.into(), json!({"accepted": a, "rows": r}));
            if r != a as i64 {
                failures.push(format!(
                    "{}: {r} usage rows ({endpoint}, not rejected) for {a} requests accepted",
                    org.label
                ));
            }
        }
        accepted_total += org_accepted;
        rows_total += rows_not_rejected as u64;
        usage.insert(
            org.label.into(),
            json!({
                "accepted": org_accepted,
                "rows_not_rejected": rows_not_rejected,
                "difference": rows_not_rejected - org_accepted as i64,
                "by_endpoint": accepted_by_endpoint,
                "rows_by_status": by_status,
            }),
        );
    }
    let strays = count(
        &mut conn,
        "SELECT COUNT(*) FROM usage_events WHERE status IN ('failed', 'interrupted')",
    )
    .await?;
    usage.insert("accepted_total".into(), json!(accepted_total));
    usage.insert("rows_not_rejected_total".into(), json!(rows_total));
    usage.insert(
        "difference".into(),
        json!(rows_total as i64 - accepted_total as i64),
    );
    usage.insert("in_progress_at_end".into(), json!(open));
    usage.insert("failed_or_interrupted_rows".into(), json!(strays));
    usage.insert("cut_short_by_clients".into(), json!(cut_short));

    let mut ledger = serde_json::Map::new();
    for org in orgs.iter().filter(|o| o.prepaid) {
        let t = org.tenant_id.as_str();
        let sum_ledger: i64 = sqlx::query_scalar(
            "SELECT COALESCE(SUM(amount_micros), 0)::BIGINT FROM credit_ledger WHERE tenant_id = $1",
        )
        .bind(t)
        .fetch_one(&mut conn)
        .await?;
        let account = sqlx::query(
            "SELECT balance_micros, reserved_micros FROM credit_accounts WHERE tenant_id = $1",
        )
        .bind(t)
        .fetch_optional(&mut conn)
        .await?;
        let (balance, reserved) = match &account {
            Some(row) => (
                Some(row.try_get::<i64, _>("balance_micros")?),
                Some(row.try_get::<i64, _>("reserved_micros")?),
            ),
            None => (None, None),
        };
        let debits = sqlx::query(
            "SELECT COUNT(*) AS n, COALESCE(SUM(amount_micros), 0)::BIGINT AS s FROM credit_ledger \
             WHERE tenant_id = $1 AND kind = 'usage'",
        )
        .bind(t)
        .fetch_one(&mut conn)
        .await?;
        let (debit_entries, debit_sum): (i64, i64) = (debits.try_get("n")?, debits.try_get("s")?);
        let billed = sqlx::query(
            "SELECT COUNT(*) FILTER (WHERE cost_micros > 0) AS n, \
             COALESCE(SUM(cost_micros), 0)::BIGINT AS s FROM usage_events \
             WHERE tenant_id = $1 AND status NOT IN ('in_progress', 'rejected')",
        )
        .bind(t)
        .fetch_one(&mut conn)
        .await?;
        let (billed_rows, billed_cost): (i64, i64) = (billed.try_get("n")?, billed.try_get("s")?);
        let finalized: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM usage_events WHERE tenant_id = $1 \
             AND status NOT IN ('in_progress', 'rejected')",
        )
        .bind(t)
        .fetch_one(&mut conn)
        .await?;
        let rollup = sqlx::query(
            "SELECT COALESCE(SUM(requests), 0)::BIGINT AS n, COALESCE(SUM(cost_micros), 0)::BIGINT AS s \
             FROM usage_minutes WHERE tenant_id = $1",
        )
        .bind(t)
        .fetch_one(&mut conn)
        .await?;
        let (rollup_requests, rollup_cost): (i64, i64) =
            (rollup.try_get("n")?, rollup.try_get("s")?);
        let mut problems = Vec::new();
        if balance != Some(sum_ledger) {
            problems.push(format!(
                "the ledger sums to {sum_ledger}, the balance is {balance:?}"
            ));
        }
        if reserved != Some(0) {
            problems.push(format!("{reserved:?} micro-USD still reserved when idle"));
        }
        if -debit_sum != billed_cost || debit_entries != billed_rows {
            problems.push(format!(
                "{debit_entries} usage debits of {} for {billed_rows} billed rows costing {billed_cost}",
                -debit_sum
            ));
        }
        if rollup_requests != finalized || rollup_cost != billed_cost {
            problems.push(format!(
                "the usage rollup says {rollup_requests} requests costing {rollup_cost}, the rows {finalized} costing {billed_cost}"
            ));
        }
        for p in &problems {
            failures.push(format!("{}: {p}", org.label));
        }
        ledger.insert(
            org.label.into(),
            json!({
                "ledger_sum_micros": sum_ledger,
                "balance_micros": balance,
                "reserved_micros": reserved,
                "usage_debits": debit_entries,
                "usage_debits_micros": -debit_sum,
                "billed_rows": billed_rows,
                "billed_cost_micros": billed_cost,
                "rollup_requests": rollup_requests,
                "finalized_rows": finalized,
                "rollup_cost_micros": rollup_cost,
                "ok": problems.is_empty(),
            }),
        );
    }
    let ids: Vec<String> = sqlx::query_scalar("SELECT request_id FROM usage_events")
        .fetch_all(&mut conn)
        .await?;
    Ok((Value::Object(usage), Value::Object(ledger), ids))
}

/// What the run left in Redis: concurrency leases under its prefix, usage journal keys.
fn redis_checks(
    url: &str,
    prefix: &str,
    request_ids: &[String],
    failures: &mut Vec<String>,
) -> anyhow::Result<(Value, Vec<String>)> {
    let mut conn = redis_connection(url)?;
    let journal: Vec<String> = request_ids
        .iter()
        .map(|id| format!("{}{id}", gateway::metering::journal::KEY_PREFIX))
        .collect();
    let started = Instant::now();
    loop {
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{prefix}*"))
            .query(&mut conn)?;
        let mut leases = 0i64;
        for key in keys.iter().filter(|k| k.ends_with(":con")) {
            leases += redis::cmd("ZCARD").arg(key).query::<i64>(&mut conn)?;
        }
        let mut journal_left = 0i64;
        for chunk in journal.chunks(500) {
            journal_left += redis::cmd("EXISTS").arg(chunk).query::<i64>(&mut conn)?;
        }
        if (leases == 0 && journal_left == 0) || started.elapsed() > SETTLE {
            if leases > 0 {
                failures.push(format!(
                    "{leases} rate-limit concurrency leases left in Redis when idle"
                ));
            }
            if journal_left > 0 {
                failures.push(format!(
                    "{journal_left} usage-progress journal keys left in Redis for finalized requests"
                ));
            }
            let report = json!({
                "prefix": prefix,
                "limiter_keys": keys.len(),
                "concurrency_leases_left": leases,
                "journal_keys_left": journal_left,
            });
            return Ok((report, journal));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

// ---------------------------------------------------------------------------------------------

fn main() -> ExitCode {
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("soak_bench: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run() -> anyhow::Result<bool> {
    let opts = options()?;
    let model = engine::model_cache::find_default_model()
        .context("the default model is not in the cache: run `starfire model fetch`")?;
    let binary = starfire_binary()?;
    let blocks_total = kv_blocks_total(&model)?;
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH)?.as_nanos();
    let run_id = format!("soak_{}_{nanos}", std::process::id());
    let server_url = std::env::var("STARFIRE_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let redis_url = std::env::var("STARFIRE_TEST_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());

    let rt = runtime()?;
    let _: String = redis::cmd("PING").query(&mut redis_connection(&redis_url)?)?;
    let db = Database::create(&rt, &server_url, &run_id)?;
    let redis_prefix = format!("{run_id}:rl:");
    let cleanup = RedisCleanup {
        url: redis_url.clone(),
        prefix: redis_prefix.clone(),
        journal_keys: Mutex::new(Vec::new()),
    };
    let dir = tempfile::Builder::new().prefix("soak-bench-").tempdir()?;
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs)?;

    // One worker with the model; both gateways route to it.
    let worker_port = free_port()?;
    let mut cmd = starfire(&binary, &dir.path().join("worker"))?;
    cmd.args([
        "worker",
        "--listen",
        &format!("127.0.0.1:{worker_port}"),
        "--model",
    ])
    .arg(&model)
    .env("STARFIRE_WORKER_TOKEN", WORKER_TOKEN)
    .env("STARFIRE_KV_CACHE_MEMORY", KV_CACHE_BYTES.to_string());
    let mut worker = Process::spawn("worker", cmd, &logs)?;
    worker.wait_ready(worker_port, "/ready", Duration::from_secs(180))?;

    let config = dir.path().join("starfire.toml");
    std::fs::write(
        &config,
        format!(
            "[[models]]\nname = \"{MODEL}\"\npath = \"{}\"\nworkers = [\"http://127.0.0.1:{worker_port}\"]\n",
            model.display().to_string().replace('\\', "\\\\").replace('"', "\\\"")
        ),
    )?;
    let env = GatewayEnv {
        binary: binary.clone(),
        config,
        database_url: db.url.clone(),
        redis_url: redis_url.clone(),
        redis_prefix: redis_prefix.clone(),
    };
    // Bootstrapping first also runs the migrations, before two replicas start at once.
    let boot = bootstrap(&env, &dir.path().join("gateway-a"))?;
    let ports = [free_port()?, free_port()?];
    let mut gateways = Vec::new();
    for (i, name) in REPLICAS.iter().enumerate() {
        let mut cmd = env.command(&dir.path().join(name))?;
        cmd.args(["serve", "--listen", &format!("127.0.0.1:{}", ports[i])]);
        gateways.push(Process::spawn(name, cmd, &logs)?);
    }
    for (g, port) in gateways.iter_mut().zip(ports) {
        g.wait_ready(port, "/healthz", Duration::from_secs(60))?;
    }
    let base = format!("http://127.0.0.1:{}", ports[0]);
    let (orgs, throttled_key) = set_up_organizations(&base, boot)?;

    // Traffic, with resident memory sampled throughout.
    let series = Mutex::new(
        [
            (REPLICAS[0], gateways[0].pid()),
            (REPLICAS[1], gateways[1].pid()),
            ("worker", worker.pid()),
        ]
        .into_iter()
        .map(|(name, pid)| RssSeries {
            name,
            pid,
            samples: Vec::new(),
        })
        .collect::<Vec<_>>(),
    );
    let started = Instant::now();
    let ctx = Ctx {
        ports,
        orgs,
        throttled_key,
        started,
        started_unix: SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs() as i64,
        deadline: started + opts.duration,
        tally: Mutex::new(Tally::default()),
    };
    let sampling = AtomicBool::new(true);
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut next = Instant::now();
            while sampling.load(Ordering::Relaxed) {
                if Instant::now() >= next {
                    sample_rss(&series, started);
                    next += opts.sample;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        let clients: Vec<_> = (0..opts.clients)
            .map(|c| {
                let ctx = &ctx;
                s.spawn(move || client_loop(ctx, c, opts.clients))
            })
            .collect();
        for c in clients {
            if c.join().is_err() {
                ctx.unexpected("client", 0, "a client thread panicked".into());
            }
        }
        sampling.store(false, Ordering::Relaxed);
    });
    let traffic_s = started.elapsed().as_secs_f64();

    // The end state, once idle.
    let mut failures: Vec<String> = Vec::new();
    let (idle, is_idle) = settle_engine(worker_port, ports, blocks_total);
    if !is_idle {
        failures.push(format!("not idle {SETTLE:?} after the traffic: {idle}"));
    }
    let tally = std::mem::take(&mut *ctx.tally());
    let (usage, ledger, request_ids) = rt.block_on(database_checks(
        &db.url,
        &ctx.orgs,
        &tally.accepted,
        tally.cut_short,
        &mut failures,
    ))?;
    let (redis_report, journal) =
        redis_checks(&redis_url, &redis_prefix, &request_ids, &mut failures)?;
    *cleanup
        .journal_keys
        .lock()
        .unwrap_or_else(|e| e.into_inner()) = journal;
    let agent = agent();
    let mut api_balances = serde_json::Map::new();
    for org in &ctx.orgs {
        let b = setup_call(
            &agent,
            "GET",
            &format!("{base}/v1/billing/balance"),
            &org.admin_key,
            None,
        )?;
        let db_balance = &ledger[org.label]["balance_micros"];
        if &b["balance_micros"] != db_balance {
            failures.push(format!(
                "{}: GET /v1/billing/balance says {}, the database {db_balance}",
                org.label, b["balance_micros"]
            ));
        }
        api_balances.insert(org.label.into(), b);
    }
    let counters = gateway_counters(ports);
    sample_rss(&series, started);

    // Outcomes.
    let (mut ok, mut expected, mut unexpected) = (0u64, 0u64, 0u64);
    let mut outcomes = serde_json::Map::new();
    for (kind, k) in tally.kinds {
        ok += k.ok;
        expected += k.expected_error;
        unexpected += k.unexpected;
        let mut lat = k.latency_ms;
        let ms = |lat: &mut Vec<f64>, q: f64| {
            (!lat.is_empty()).then(|| (percentile(lat, q) * 10.0).round() / 10.0)
        };
        outcomes.insert(
            kind.into(),
            json!({
                "ok": k.ok,
                "expected_error": k.expected_error,
                "unexpected": k.unexpected,
                "refusals": k.refusals,
                "latency_p50_ms": ms(&mut lat, 50.0),
                "latency_p99_ms": ms(&mut lat, 99.0),
            }),
        );
    }
    if unexpected > 0 {
        failures.push(format!(
            "{unexpected} unexpected outcomes (see unexpected_samples)"
        ));
    }
    let warm_up_s = (opts.duration.as_secs_f64() / 6.0).clamp(10.0, 300.0);
    let rss: serde_json::Map<String, Value> = series
        .into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .map(|s| (s.name.to_owned(), rss_report(s, warm_up_s, &mut failures)))
        .collect();

    // Shut down as an operator would, and say how each process ended.
    let mut shutdown = serde_json::Map::new();
    for g in gateways.iter_mut().chain(std::iter::once(&mut worker)) {
        let how = g.terminate(Duration::from_secs(30));
        if how != "exit status: 0" {
            failures.push(format!("{} after SIGTERM: {how}", g.name));
        }
        shutdown.insert(g.name.into(), json!(how));
    }
    let pass = failures.is_empty();
    if !pass {
        for p in gateways.iter().chain(std::iter::once(&worker)) {
            eprintln!(
                "--- last lines of {} ({}):\n{}",
                p.name,
                p.log.display(),
                p.log_tail(20)
            );
        }
    }
    let logs_kept = if pass {
        Value::Null
    } else {
        json!(dir.keep().join("logs"))
    };

    let total = ok + expected + unexpected;
    let report = json!({
        "benchmark": "soak",
        "config": {
            "duration_s": opts.duration.as_secs(),
            "clients": opts.clients,
            "sample_s": opts.sample.as_secs(),
            "warm_up_s": warm_up_s,
            "cpu": cpu_name(),
            "cpus": std::thread::available_parallelism().map_or(0, |n| n.get()),
            "topology": "one starfire worker, two starfire serve replicas on PostgreSQL and Redis",
            "database": db.name,
            "kv_cache_bytes": KV_CACHE_BYTES,
            "kv_blocks_total": blocks_total,
        },
        "requests": {
            "total": total,
            "ok": ok,
            "expected_error": expected,
            "unexpected": unexpected,
            "per_second": (total as f64 / traffic_s * 100.0).round() / 100.0,
            "traffic_s": (traffic_s * 10.0).round() / 10.0,
        },
        "outcomes": outcomes,
        "unexpected_samples": tally.unexpected,
        "rss": rss,
        "idle": idle,
        "kv_blocks_in_use_at_end": idle["kv_blocks_in_use"],
        "usage": usage,
        "ledger": ledger,
        "api_balances": api_balances,
        "redis": redis_report,
        "gateway_counters": counters,
        "shutdown": shutdown,
        "logs": logs_kept,
        "pass": pass,
        "failures": failures,
    });
    println!("{}", serde_json::to_string_pretty(&report)?);
    drop(cleanup);
    drop(db);
    Ok(pass)
}
