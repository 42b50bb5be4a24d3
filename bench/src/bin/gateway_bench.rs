//! The gateway's own cost, side by side with LiteLLM's proxy, in one run. A fake OpenAI
//! upstream in this process answers at once (a fixed chat completion with usage, or with
//! `stream: true` one SSE chunk per requested token, a usage chunk and `[DONE]`), so whatever
//! a request costs beyond talking to it directly is the gateway's.
//!
//! In front of it, each on its own loopback port and as its own process:
//! - `starfire serve` (the binary next to this one; build it with `cargo build --release
//!   --bin starfire`), on SQLite, with a `[[models]]` entry served by the fake upstream through
//!   the `openai` backend and the key `starfire admin bootstrap` mints: authentication, rate
//!   limits, budget reservation and metering all on, as in production;
//! - LiteLLM's proxy (2 workers, no database), when `--litellm PATH` names its `litellm`
//!   executable (or `LITELLM_BIN` does); `--install-litellm` installs it with pip into
//!   `target/bench-venv` first. Without it the run says so and prints no ratio.
//!
//! Closed-loop clients (one keep-alive connection each) send `POST /v1/chat/completions` for
//! `--seconds` after a warm-up, to the upstream directly (the baseline), then to each gateway:
//! at concurrency 1 (added latency p50/p99 against the baseline) and 64 (requests/s), plus a
//! streamed run at 16 (time to first byte). Prints one JSON object; the targets are an added
//! p50 of at most 1 ms at concurrency 1 and at least 20 times LiteLLM's requests/s at 64.
//!
//! Usage: gateway_bench [--seconds 10] [--litellm PATH | --install-litellm] [--quick]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpResponse, HttpServer};
use anyhow::{bail, Context};
use serde_json::{json, Value};
use starfire_bench::percentile;

const MODEL: &str = "fake-model";
/// Tokens each request asks for (the fake upstream's streamed chunks).
const MAX_TOKENS: u64 = 16;
const LITELLM_KEY: &str = "sk-bench-master-1234";
const TARGET_ADDED_P50_MS: f64 = 1.0;
const TARGET_RPS_RATIO: f64 = 20.0;

struct Options {
    seconds: f64,
    warmup: f64,
    litellm: Option<PathBuf>,
}

fn options() -> anyhow::Result<Options> {
    let args: Vec<String> = std::env::args().collect();
    let value = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let quick = args.iter().any(|a| a == "--quick");
    let seconds = match value("--seconds") {
        Some(s) => s.parse().context("--seconds")?,
        None if quick => 3.0,
        None => 10.0,
    };
    let mut litellm = value("--litellm")
        .or_else(|| std::env::var("LITELLM_BIN").ok())
        .map(PathBuf::from);
    if litellm.is_none() && args.iter().any(|a| a == "--install-litellm") {
        litellm = Some(install_litellm()?);
    }
    Ok(Options {
        seconds,
        warmup: if quick { 1.0 } else { 2.0 },
        litellm,
    })
}

fn main() -> anyhow::Result<()> {
    let opts = options()?;
    let upstream = starfire_bench::free_port()?;
    std::thread::spawn(move || fake_upstream(upstream));
    wait_for(upstream, "/health", Duration::from_secs(10)).context("the fake upstream")?;
    let base = format!("http://127.0.0.1:{upstream}");

    let home = tempfile::tempdir()?;
    let starfire = Starfire::start(home.path(), &base)?;
    let litellm = match &opts.litellm {
        Some(bin) => Some(LiteLlm::start(bin, home.path(), &base)?),
        None => None,
    };

    let mut targets = vec![Target {
        name: "direct",
        url: base.clone(),
        key: None,
        pid: None,
    }];
    targets.push(Target {
        name: "starfire",
        url: format!("http://127.0.0.1:{}", starfire.port),
        key: Some(starfire.key.clone()),
        pid: Some(starfire.child.id()),
    });
    if let Some(l) = &litellm {
        targets.push(Target {
            name: "litellm",
            url: format!("http://127.0.0.1:{}", l.port),
            key: Some(LITELLM_KEY.to_owned()),
            pid: Some(l.child.id()),
        });
    }

    let mut results = serde_json::Map::new();
    for t in &targets {
        // A discarded pass first: connection pools, lazy initialization, caches.
        run(t, 4, false, opts.warmup, 0.0);
        let c1 = run(t, 1, false, opts.seconds, opts.warmup);
        let c64 = run(t, 64, false, opts.seconds, opts.warmup);
        let s16 = run(t, 16, true, opts.seconds, opts.warmup);
        eprintln!(
            "{}: c=1 p50 {:.3} ms, c=64 {:.0} req/s, stream c=16 ttfb p50 {:.3} ms",
            t.name, c1.p50, c64.rps, s16.ttfb_p50
        );
        results.insert(
            t.name.to_owned(),
            json!({"c1": c1.json(), "c64": c64.json(), "stream_c16": s16.json()}),
        );
    }
    let get = |name: &str, run: &str, field: &str| {
        results
            .get(name)
            .and_then(|r| r[run][field].as_f64())
            .unwrap_or(f64::NAN)
    };
    let added = |name: &str, field: &str| get(name, "c1", field) - get("direct", "c1", field);
    let mut summary = json!({
        "starfire_added_p50_ms_c1": round3(added("starfire", "p50_ms")),
        "starfire_added_p99_ms_c1": round3(added("starfire", "p99_ms")),
        "starfire_rps_c64": round3(get("starfire", "c64", "requests_per_second")),
        "target_added_p50_ms_c1": TARGET_ADDED_P50_MS,
        "added_p50_target_met": added("starfire", "p50_ms") <= TARGET_ADDED_P50_MS,
    });
    if litellm.is_some() {
        let ratio = get("starfire", "c64", "requests_per_second")
            / get("litellm", "c64", "requests_per_second");
        summary["litellm_added_p50_ms_c1"] = json!(round3(added("litellm", "p50_ms")));
        summary["litellm_added_p99_ms_c1"] = json!(round3(added("litellm", "p99_ms")));
        summary["litellm_rps_c64"] = json!(round3(get("litellm", "c64", "requests_per_second")));
        summary["rps_ratio_c64"] = json!(round3(ratio));
        summary["target_rps_ratio_c64"] = json!(TARGET_RPS_RATIO);
        summary["rps_ratio_target_met"] = json!(ratio >= TARGET_RPS_RATIO);
    } else {
        summary["litellm"] =
            json!("not run: give --litellm PATH (or LITELLM_BIN), or --install-litellm; no ratio");
    }
    let out = json!({
        "benchmark": "gateway_bench",
        "cpu": starfire_bench::cpu_name(),
        "cores": std::thread::available_parallelism().map_or(0, |n| n.get()),
        "seconds_per_run": opts.seconds,
        "max_tokens": MAX_TOKENS,
        "litellm_version": litellm.as_ref().map(|l| l.version.clone()),
        "targets": results,
        "summary": summary,
    });
    println!("{}", serde_json::to_string_pretty(&out)?);
    drop(litellm);
    drop(starfire);
    Ok(())
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn wait_for(port: u16, path: &str, limit: Duration) -> anyhow::Result<()> {
    starfire_bench::wait_for_ok(port, path, limit)
}

// --- the fake upstream ------------------------------------------------------------------------

/// Runs the fake upstream on `port` (one worker thread) until the process ends.
fn fake_upstream(port: u16) {
    let served = actix_web::rt::System::new().block_on(async move {
        HttpServer::new(|| {
            App::new()
                .route(
                    "/health",
                    web::get().to(|| async { HttpResponse::Ok().body("ok") }),
                )
                .route("/v1/chat/completions", web::post().to(fake_chat))
        })
        .workers(1)
        .bind(("127.0.0.1", port))?
        .run()
        .await
    });
    if let Err(e) = served {
        eprintln!("fake upstream: {e}");
    }
}

async fn fake_chat(body: web::Json<Value>) -> HttpResponse {
    let usage = |completion: u64| {
        json!({"prompt_tokens": 10, "completion_tokens": completion,
               "total_tokens": 10 + completion})
    };
    if body["stream"].as_bool() != Some(true) {
        return HttpResponse::Ok().json(json!({
            "id": "chatcmpl-fake", "object": "chat.completion", "created": 1_700_000_000,
            "model": MODEL,
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": "Hello from the fake upstream."}}],
            "usage": usage(7),
        }));
    }
    let tokens = body["max_tokens"].as_u64().unwrap_or(16).min(4096);
    let chunk = |delta: Value, finish: Value| {
        json!({"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1_700_000_000,
               "model": MODEL, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    };
    let mut sse = String::new();
    for i in 0..tokens {
        let delta = if i == 0 {
            json!({"role": "assistant", "content": "tok"})
        } else {
            json!({"content": " tok"})
        };
        let finish = if i + 1 == tokens {
            json!("length")
        } else {
            Value::Null
        };
        sse.push_str(&format!("data: {}\n\n", chunk(delta, finish)));
    }
    let last = json!({"id": "chatcmpl-fake", "object": "chat.completion.chunk",
                      "created": 1_700_000_000, "model": MODEL, "choices": [],
                      "usage": usage(tokens)});
    sse.push_str(&format!("data: {last}\n\ndata: [DONE]\n\n"));
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .body(sse)
}

// --- the gateways -----------------------------------------------------------------------------

/// `starfire serve` in front of the fake upstream.
struct Starfire {
    child: Child,
    port: u16,
    key: String,
}

impl Starfire {
    fn start(home: &Path, upstream: &str) -> anyhow::Result<Starfire> {
        let bin = starfire_bench::starfire_binary()?;
        let config = home.join("starfire.toml");
        std::fs::write(
            &config,
            format!(
                "[[models]]\nname = \"{MODEL}\"\nmax_model_len = 4096\n\
                 [models.openai]\nbase_url = \"{upstream}/v1\"\n"
            ),
        )?;
        let command = |args: &[&str]| {
            let mut cmd = Command::new(&bin);
            for (key, _) in std::env::vars() {
                if key.starts_with("STARFIRE_") {
                    cmd.env_remove(key);
                }
            }
            cmd.env("STARFIRE_HOME", home)
                .arg("--config")
                .arg(&config)
                .args(args);
            cmd
        };
        let out = command(&[
            "admin",
            "bootstrap",
            "--email",
            "bench@example.com",
            "--password",
            "correct horse battery",
        ])
        .output()?;
        if !out.status.success() {
            bail!("bootstrap: {}", String::from_utf8_lossy(&out.stderr));
        }
        let minted: Value = serde_json::from_slice(&out.stdout)?;
        let key = minted["api_key"].as_str().context("an api_key")?.to_owned();
        let port = starfire_bench::free_port()?;
        let child = command(&["serve"])
            .env("STARFIRE_LISTEN", format!("127.0.0.1:{port}"))
            .env("STARFIRE_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let mut started = Starfire { child, port, key };
        if let Err(e) = wait_for(port, "/healthz", Duration::from_secs(60)) {
            let _ = started.child.kill();
            return Err(e.context("starfire serve"));
        }
        // Limits stay on (every request is counted against them) but above what the load
        // reaches: the project's, which replace the plan's for its keys.
        let project = minted["project_id"].as_str().context("a project_id")?;
        let admin = minted["admin_key"].as_str().context("an admin_key")?;
        let limits = json!({"limits": {"rpm": 100_000_000, "tpm": 1_000_000_000_000u64,
                                       "concurrency": 100_000}})
        .to_string();
        let mut client = Client::default();
        let answer = client.send(
            &format!("127.0.0.1:{port}"),
            &format!("/v1/organization/projects/{project}"),
            Some(admin),
            &limits,
        )?;
        if !answer.0.starts_with('2') {
            bail!(
                "raising the project's limits: HTTP {}: {}",
                answer.0,
                answer.1
            );
        }
        Ok(started)
    }
}

impl Drop for Starfire {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// LiteLLM's proxy (2 workers, no database) in front of the fake upstream.
struct LiteLlm {
    child: Child,
    port: u16,
    version: String,
}

impl LiteLlm {
    fn start(bin: &Path, home: &Path, upstream: &str) -> anyhow::Result<LiteLlm> {
        // It runs in `home`: a relative path would no longer name it.
        let bin = &std::fs::canonicalize(bin).with_context(|| bin.display().to_string())?;
        let config = home.join("litellm.yaml");
        std::fs::write(
            &config,
            format!(
                "model_list:\n  - model_name: {MODEL}\n    litellm_params:\n      \
                 model: openai/{MODEL}\n      api_base: {upstream}/v1\n      \
                 api_key: sk-fake-upstream\nlitellm_settings:\n  drop_params: true\n  \
                 set_verbose: false\ngeneral_settings:\n  master_key: {LITELLM_KEY}\n"
            ),
        )?;
        let version = Command::new(bin.with_file_name("python"))
            .args([
                "-c",
                "import importlib.metadata as m; print(m.version('litellm'))",
            ])
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default();
        let port = starfire_bench::free_port()?;
        let child = Command::new(bin)
            .arg("--config")
            .arg(&config)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--num_workers", "2"])
            .env_remove("DATABASE_URL")
            .env("LITELLM_LOCAL_MODEL_COST_MAP", "True")
            .env("LITELLM_LOG", "ERROR")
            .current_dir(home)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let mut started = LiteLlm {
            child,
            port,
            version,
        };
        if let Err(e) = wait_for(port, "/health/liveliness", Duration::from_secs(180)) {
            started.stop();
            return Err(e.context("litellm"));
        }
        Ok(started)
    }

    /// Stops the proxy and its worker processes (its children).
    fn stop(&mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("pkill").args(["-TERM", "-P", &pid]).status();
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = Command::new("pkill").args(["-KILL", "-P", &pid]).status();
    }
}

impl Drop for LiteLlm {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `pip install 'litellm[proxy]'` into `target/bench-venv`; returns its `litellm`.
fn install_litellm() -> anyhow::Result<PathBuf> {
    let venv = std::env::current_exe()?
        .ancestors()
        .nth(2)
        .context("target directory")?
        .join("bench-venv");
    let bin = venv.join("bin");
    if !bin.join("litellm").exists() {
        let status = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()?;
        if !status.success() {
            bail!("python3 -m venv failed");
        }
        let status = Command::new(bin.join("pip"))
            .args(["install", "-q", "litellm[proxy]"])
            .status()?;
        if !status.success() {
            bail!("pip install litellm[proxy] failed");
        }
    }
    Ok(bin.join("litellm"))
}

// --- the load ---------------------------------------------------------------------------------

struct Target {
    name: &'static str,
    url: String,
    key: Option<String>,
    /// The server's process, whose CPU time per request is reported.
    pid: Option<u32>,
}

#[derive(Default)]
struct RunReport {
    concurrency: usize,
    stream: bool,
    ok: usize,
    errors: usize,
    first_error: Option<String>,
    rps: f64,
    p50: f64,
    p99: f64,
    ttfb_p50: f64,
    ttfb_p99: f64,
    cpu_ms_per_request: Option<f64>,
    switches_per_request: Option<f64>,
}

impl RunReport {
    fn json(&self) -> Value {
        json!({
            "concurrency": self.concurrency,
            "stream": self.stream,
            "requests": self.ok,
            "errors": self.errors,
            "first_error": self.first_error,
            "requests_per_second": round3(self.rps),
            "p50_ms": round3(self.p50),
            "p99_ms": round3(self.p99),
            "ttfb_p50_ms": self.stream.then(|| round3(self.ttfb_p50)),
            "ttfb_p99_ms": self.stream.then(|| round3(self.ttfb_p99)),
            "server_cpu_ms_per_request": self.cpu_ms_per_request.map(round3),
            "server_context_switches_per_request": self.switches_per_request.map(round3),
        })
    }
}

/// One closed-loop run: `concurrency` connections for `warmup + seconds`; requests that end
/// inside the measured window count.
fn run(t: &Target, concurrency: usize, stream: bool, seconds: f64, warmup: f64) -> RunReport {
    let stop = AtomicBool::new(false);
    let start = Instant::now();
    let window = (
        Duration::from_secs_f64(warmup),
        Duration::from_secs_f64(warmup + seconds),
    );
    let cpu_before = t.pid.map(process_cpu_seconds);
    let switches_before = t.pid.map(process_context_switches);
    let mut body = json!({"model": MODEL, "messages": [{"role": "user", "content": "Say hello."}],
                          "max_tokens": MAX_TOKENS});
    if stream {
        body["stream"] = json!(true);
        body["stream_options"] = json!({"include_usage": true});
    }
    let body = body.to_string();
    let host = t.url.trim_start_matches("http://").to_owned();
    let per_client: Vec<Client> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..concurrency)
            .map(|_| {
                let (host, body, stop) = (&host, &body, &stop);
                s.spawn(move || {
                    let mut client = Client::default();
                    while !stop.load(Ordering::Relaxed) {
                        if start.elapsed() >= window.1 {
                            stop.store(true, Ordering::Relaxed);
                            break;
                        }
                        let sent = Instant::now();
                        let result = client.post(host, t.key.as_deref(), body, stream);
                        let done = start.elapsed();
                        if done < window.0 || done > window.1 {
                            continue;
                        }
                        match result {
                            Ok(ttfb) => {
                                client.latencies.push(sent.elapsed().as_secs_f64() * 1e3);
                                client.ttfbs.push(ttfb.as_secs_f64() * 1e3);
                            }
                            Err(e) => {
                                client.errors += 1;
                                client.first_error.get_or_insert(e);
                            }
                        }
                    }
                    client
                })
            })
            .collect();
        handles.into_iter().filter_map(|h| h.join().ok()).collect()
    });
    let cpu = match (t.pid, cpu_before) {
        (Some(pid), Some(before)) => Some(process_cpu_seconds(pid) - before),
        _ => None,
    };
    let switches = match (t.pid, switches_before) {
        (Some(pid), Some(before)) => Some(process_context_switches(pid) - before),
        _ => None,
    };
    let mut latencies: Vec<f64> = Vec::new();
    let mut ttfbs: Vec<f64> = Vec::new();
    let mut report = RunReport {
        concurrency,
        stream,
        ..RunReport::default()
    };
    for c in per_client {
        latencies.extend(c.latencies);
        ttfbs.extend(c.ttfbs);
        report.errors += c.errors;
        report.first_error = report.first_error.or(c.first_error);
    }
    report.ok = latencies.len();
    report.rps = report.ok as f64 / seconds;
    report.p50 = percentile(&mut latencies, 50.0);
    report.p99 = percentile(&mut latencies, 99.0);
    report.ttfb_p50 = percentile(&mut ttfbs, 50.0);
    report.ttfb_p99 = percentile(&mut ttfbs, 99.0);
    // CPU over the whole run (warm-up included) per request at the measured rate.
    report.cpu_ms_per_request = cpu
        .filter(|_| report.rps > 0.0)
        .map(|s| s * 1e3 / (report.rps * (seconds + warmup)));
    // Each one a thread put to sleep and woken again: what the shared machines' noise moves
    // least, and what a request's hops between threads (and their cost) come down to.
    report.switches_per_request = switches
        .filter(|_| report.rps > 0.0)
        .map(|n| n / (report.rps * (seconds + warmup)));
    report
}

/// User plus system CPU seconds of `pid` and its descendants.
fn process_cpu_seconds(pid: u32) -> f64 {
    let ticks = 100.0; // USER_HZ on Linux
    process_tree(pid)
        .into_iter()
        .filter_map(|p| {
            let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).ok()?;
            let rest = &stat[stat.rfind(')')? + 2..];
            let f: Vec<&str> = rest.split_whitespace().collect();
            let utime: f64 = f.get(11)?.parse().ok()?;
            let stime: f64 = f.get(12)?.parse().ok()?;
            Some((utime + stime) / ticks)
        })
        .sum()
}

/// Context switches (voluntary and not) of every thread of `pid`'s process tree so far.
fn process_context_switches(pid: u32) -> f64 {
    let mut total = 0.0;
    for p in process_tree(pid) {
        let tasks = std::fs::read_dir(format!("/proc/{p}/task"))
            .into_iter()
            .flatten();
        for task in tasks.flatten() {
            let Ok(status) = std::fs::read_to_string(task.path().join("status")) else {
                continue;
            };
            total += status
                .lines()
                .filter(|l| l.contains("ctxt_switches:"))
                .filter_map(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
                .sum::<f64>();
        }
    }
    total
}

/// The processes of the tree rooted at `pid`: it and its descendants.
fn process_tree(pid: u32) -> Vec<u32> {
    let mut children: std::collections::HashMap<u32, Vec<u32>> = Default::default();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(p) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else {
            continue;
        };
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 2..]) else {
            continue;
        };
        let parent: u32 = rest
            .split_whitespace()
            .nth(1)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        children.entry(parent).or_default().push(p);
    }
    let (mut tree, mut todo) = (Vec::new(), vec![pid]);
    while let Some(p) = todo.pop() {
        tree.push(p);
        todo.extend(children.get(&p).into_iter().flatten());
    }
    tree
}

/// A keep-alive HTTP/1.1 connection and what it measured.
#[derive(Default)]
struct Client {
    conn: Option<BufReader<TcpStream>>,
    latencies: Vec<f64>,
    ttfbs: Vec<f64>,
    errors: usize,
    first_error: Option<String>,
}

impl Client {
    /// Sends one chat and reads the whole answer; the time to the first body byte.
    fn post(
        &mut self,
        host: &str,
        key: Option<&str>,
        body: &str,
        stream: bool,
    ) -> Result<Duration, String> {
        let result = self.exchange(host, key, body, stream);
        if result.is_err() {
            self.conn = None;
        }
        result
    }

    fn exchange(
        &mut self,
        host: &str,
        key: Option<&str>,
        body: &str,
        stream: bool,
    ) -> Result<Duration, String> {
        let sent = Instant::now();
        let (status, text, first_byte) =
            self.send_timed(host, "/v1/chat/completions", key, body)?;
        if status != "200" {
            return Err(format!(
                "HTTP {status}: {}",
                text.chars().take(200).collect::<String>()
            ));
        }
        let complete = if stream {
            text.trim_end().ends_with("data: [DONE]") && text.contains("\"usage\"")
        } else {
            text.contains("\"usage\"")
        };
        if !complete {
            return Err(format!(
                "incomplete answer: {}",
                text.chars().take(200).collect::<String>()
            ));
        }
        Ok(first_byte.unwrap_or_else(|| sent.elapsed()))
    }

    /// POSTs `body` to `path`: the status and the body.
    fn send(
        &mut self,
        host: &str,
        path: &str,
        key: Option<&str>,
        body: &str,
    ) -> anyhow::Result<(String, String)> {
        let (status, text, _) = self
            .send_timed(host, path, key, body)
            .map_err(anyhow::Error::msg)?;
        Ok((status, text))
    }

    /// POSTs `body` to `path`: the status, the body and the time to its first byte.
    fn send_timed(
        &mut self,
        host: &str,
        path: &str,
        key: Option<&str>,
        body: &str,
    ) -> Result<(String, String, Option<Duration>), String> {
        if self.conn.is_none() {
            let s = TcpStream::connect(host).map_err(|e| e.to_string())?;
            s.set_nodelay(true).map_err(|e| e.to_string())?;
            s.set_read_timeout(Some(Duration::from_secs(30)))
                .map_err(|e| e.to_string())?;
            self.conn = Some(BufReader::new(s));
        }
        let conn = self.conn.as_mut().expect("connected");
        let auth = key.map_or(String::new(), |k| format!("Authorization: Bearer {k}\r\n"));
        let sent = Instant::now();
        write!(
            conn.get_mut(),
            "POST {path} HTTP/1.1\r\nHost: {host}\r\n{auth}\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .map_err(|e| e.to_string())?;
        let mut line = String::new();
        conn.read_line(&mut line).map_err(|e| e.to_string())?;
        let status = line.split(' ').nth(1).unwrap_or("").to_owned();
        let (mut length, mut chunked, mut close) = (None, false, false);
        loop {
            line.clear();
            conn.read_line(&mut line).map_err(|e| e.to_string())?;
            let l = line.trim_end().to_ascii_lowercase();
            if l.is_empty() {
                break;
            }
            if let Some(v) = l.strip_prefix("content-length:") {
                length = v.trim().parse::<usize>().ok();
            } else if l.starts_with("transfer-encoding:") && l.contains("chunked") {
                chunked = true;
            } else if l.starts_with("connection:") && l.contains("close") {
                close = true;
            }
        }
        let mut first_byte = None;
        let mut text = Vec::new();
        if chunked {
            loop {
                line.clear();
                conn.read_line(&mut line).map_err(|e| e.to_string())?;
                let size = usize::from_str_radix(line.trim(), 16)
                    .map_err(|_| format!("bad chunk size {line:?}"))?;
                let mut chunk = vec![0; size + 2];
                conn.read_exact(&mut chunk).map_err(|e| e.to_string())?;
                if size == 0 {
                    break;
                }
                first_byte.get_or_insert_with(|| sent.elapsed());
                text.extend_from_slice(&chunk[..size]);
            }
        } else if let Some(n) = length {
            let mut all = vec![0; n];
            conn.read_exact(&mut all).map_err(|e| e.to_string())?;
            first_byte = Some(sent.elapsed());
            text = all;
        } else {
            conn.read_to_end(&mut text).map_err(|e| e.to_string())?;
            first_byte = Some(sent.elapsed());
            close = true;
        }
        if close {
            self.conn = None;
        }
        Ok((
            status,
            String::from_utf8_lossy(&text).into_owned(),
            first_byte,
        ))
    }
}
