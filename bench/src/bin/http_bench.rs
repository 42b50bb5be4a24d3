//! The gateway under HTTP load, against the scheduler it fronts. Starts the gateway's HTTP
//! server in this process on a loopback port (the same app, SQLite store and in-process
//! backend as `starfire serve`), bootstraps an organization for its key, and drives
//! `POST /v1/chat/completions` with `stream: true` from closed-loop clients (one blocking HTTP
//! client per thread: send, read the SSE stream to `[DONE]`, send the next) at 1, 4, 16 and 64
//! concurrent requests of 128 output tokens with distinct prompts of 48 tokens, as
//! `serving_bench`. Then, as the in-run baseline, it runs the same requests (the same chat
//! prompts rendered to the same token ids, the same scheduler settings) straight into the
//! scheduler's `EngineLoop` at 16 (before and after the HTTP runs, so slow drift on a shared
//! machine shows) and prints the gateway's throughput ratio against it.
//!
//! With `--through-worker`, the model runs behind a worker's HTTP server (`starfire worker`'s
//! routes, in this process on another loopback port) and the gateway reaches it as a pool of
//! one: the same requests pay the extra hop (token ids out, NDJSON deltas back). With
//! `--worker-process`, the worker is a `starfire worker` process of its own (the binary next to
//! this one) with the same scheduler settings and KV cache, as a deployment would run it.
//!
//! Prints one JSON object: per concurrency output tokens/s, requests/s, TTFT and inter-token
//! latency p50/p99 (from the client's side of the stream), errors.
//!
//! With `--llama-server`, llama.cpp's `llama-server` (found as `starfire_bench::llama_cpp`
//! describes; `-np` = the concurrency, the same thread count, prompt cache off) gets the same
//! requests side by side: `--rounds N` (default 3) alternating rounds, each level on both
//! (which goes first alternates), every request of the run with a prompt of its own; the medians
//! per level and Starfire's ratios (throughput, TTFT p50) are printed. Without a llama.cpp
//! build it says so and prints no ratio.
//!
//! Usage: http_bench [--quick] [--through-worker | --worker-process] [--levels 1,4,16,64]
//!        [--requests-per-client N] [--llama-server [--llama-cpp DIR] [--rounds N]]

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use engine::model_cache::DefaultModel;
use engine::{ChatMessage, Model, SamplingParams};
use gateway::inference::InProcessBackend;
use gateway::worker::WorkerState;
use scheduler::load::{run_closed_loop, LoadReport};
use scheduler::model_executor::{config_for_model, spawn_engine};
use scheduler::{NewRequest, SchedulerConfig};
use serde_json::{json, Value};
use starfire_bench::http_load::{http_closed_loop, HttpReport, Load, Target};
use starfire_bench::llama_cpp::LlamaCpp;

/// The gateway may cost at most this share of the scheduler's throughput.
const TARGET_MAX_OVERHEAD: f64 = 0.05;
/// KV cache for the served model, as `serving_bench`.
const KV_CACHE_MEMORY: u64 = 512 << 20;
const PROMPT_TOKENS: usize = 48;

struct Options {
    levels: Vec<usize>,
    requests_per_client: usize,
    output_tokens: usize,
    /// The concurrency at which the gateway is compared with the scheduler alone.
    compare_at: usize,
    /// Where the model runs.
    placement: Placement,
    /// llama-server side by side, when asked for: the build, or why there is none.
    llama: Option<Result<LlamaCpp, String>>,
    /// Rounds of every level (on both sides when llama-server runs).
    rounds: usize,
}

/// Where the model runs, relative to the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Placement {
    /// In the gateway's process.
    InProcess,
    /// Behind a worker's HTTP server in this process.
    WorkerRoutes,
    /// In a `starfire worker` process.
    WorkerProcess,
}

impl Placement {
    fn describe(self) -> &'static str {
        match self {
            Placement::InProcess => "in process",
            Placement::WorkerRoutes => "one worker over loopback HTTP, in this process",
            Placement::WorkerProcess => "one starfire worker process over loopback HTTP",
        }
    }
}

fn options() -> anyhow::Result<Options> {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let levels: Vec<usize> = match flag("--levels") {
        Some(l) => l
            .split(',')
            .map(str::parse)
            .collect::<Result<_, _>>()
            .context("--levels takes numbers such as 1,4,16")?,
        None if quick => vec![1, 4],
        None => vec![1, 4, 16, 64],
    };
    anyhow::ensure!(
        !levels.is_empty() && levels.iter().all(|&c| c > 0),
        "--levels needs at least one concurrency above 0"
    );
    let requests_per_client = match flag("--requests-per-client") {
        Some(n) => n.parse().context("--requests-per-client takes a number")?,
        None if quick => 1,
        None => 2,
    };
    anyhow::ensure!(
        requests_per_client > 0,
        "--requests-per-client must be at least 1"
    );
    let compare_at = if levels.contains(&16) {
        16
    } else {
        *levels.iter().max().unwrap_or(&1)
    };
    let llama = args
        .iter()
        .any(|a| a == "--llama-server" || a == "--llama-cpp")
        .then(|| LlamaCpp::find(flag("--llama-cpp").as_deref()));
    let rounds = match flag("--rounds") {
        Some(n) => n.parse().context("--rounds takes a number")?,
        None if llama.is_some() && !quick => 3,
        None => 1,
    };
    anyhow::ensure!(rounds > 0, "--rounds must be at least 1");
    Ok(Options {
        llama,
        rounds,
        levels,
        requests_per_client,
        output_tokens: if quick { 16 } else { 128 },
        compare_at,
        placement: if args.iter().any(|a| a == "--worker-process") {
            Placement::WorkerProcess
        } else if args.iter().any(|a| a == "--through-worker") {
            Placement::WorkerRoutes
        } else {
            Placement::InProcess
        },
    })
}

/// The scheduler settings of both the gateway's backend and the baseline (`serving_bench`'s).
fn scheduler_config() -> SchedulerConfig {
    SchedulerConfig {
        max_num_seqs: 64,
        max_num_batched_tokens: 512,
        ..SchedulerConfig::default()
    }
}

fn main() -> anyhow::Result<()> {
    let opts = options()?;
    let model = Arc::new(Model::load(&engine::model_cache::find_default_model()?)?);
    let template = model
        .chat_template
        .as_ref()
        .context("the default model has a chat template")?;
    let per_round: usize = opts.levels.iter().sum::<usize>() * opts.requests_per_client;
    let sides = if opts.llama.is_some() { 2 } else { 1 };
    let total = per_round * opts.rounds * sides;
    // Every request of the run gets its own prompt, so no level profits from an earlier one's
    // prefix cache; the baseline reuses the compared level's prompts on a fresh engine.
    let texts: Vec<String> =
        starfire_bench::distinct_prompts(&model.tokenizer, total, PROMPT_TOKENS)
            .iter()
            .map(|ids| model.tokenizer.decode(ids, false))
            .collect::<Result<_, _>>()?;
    // What the gateway feeds the scheduler for such a chat (`ServedModel::chat_prompt`).
    let chat_ids: Vec<Vec<u32>> = texts
        .iter()
        .map(|t| {
            let text = template.render(&[ChatMessage::new("user", t.as_str())], true)?;
            model.tokenizer.encode(&text, true)
        })
        .collect::<Result<_, _>>()?;

    // Level k's clients use the prompts after those of the levels before it; each round and
    // side has its own block of `per_round` prompts.
    let offsets: Vec<usize> = opts
        .levels
        .iter()
        .scan(0, |next, &c| {
            let at = *next;
            *next += c * opts.requests_per_client;
            Some(at)
        })
        .collect();
    let compared_run = opts
        .levels
        .iter()
        .position(|&c| c == opts.compare_at)
        .context("the compared level is run")?;
    let compared_prompts = &chat_ids[offsets[compared_run]..];

    let baseline_before = in_process(&model, compared_prompts, &opts)?;
    let server = GatewayServer::start(model.clone(), opts.placement)?;
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let gguf = engine::model_cache::find_default_model()?;
    let load = Load {
        model: DefaultModel::NAME.to_owned(),
        requests_per_client: opts.requests_per_client,
        output_tokens: opts.output_tokens,
        stop: None,
    };
    let mut rounds: Vec<Vec<HttpReport>> = Vec::new();
    let mut llama_rounds: Vec<Vec<HttpReport>> = Vec::new();
    let mut llama_error = opts.llama.as_ref().and_then(|l| l.as_ref().err().cloned());
    for round in 0..opts.rounds {
        let block = |side: usize| (round * sides + side) * per_round;
        let ours = |texts: &[String]| -> Vec<HttpReport> {
            let target = Target {
                base_url: server.base_url.clone(),
                auth: Some(format!("Bearer {}", server.api_key)),
                llama_server: false,
            };
            opts.levels
                .iter()
                .zip(&offsets)
                .map(|(&c, &at)| http_closed_loop(&target, c, &texts[at..], &load))
                .collect()
        };
        let llama_first = round % 2 == 1;
        let mut run_llama = |rounds_out: &mut Vec<Vec<HttpReport>>| {
            let (Some(Ok(llama)), None) = (&opts.llama, &llama_error) else {
                return;
            };
            let mut level_reports = Vec::new();
            for (&c, &at) in opts.levels.iter().zip(&offsets) {
                let ctx = PROMPT_TOKENS + opts.output_tokens + 64;
                let started = starfire_bench::free_port()
                    .and_then(|port| llama.server(&gguf, threads, c, ctx, port));
                let srv = match started {
                    Ok(s) => s,
                    Err(e) => {
                        llama_error = Some(e.to_string());
                        return;
                    }
                };
                let target = Target {
                    base_url: srv.base_url(),
                    auth: None,
                    llama_server: true,
                };
                level_reports.push(http_closed_loop(&target, c, &texts[block(1) + at..], &load));
            }
            rounds_out.push(level_reports);
        };
        if llama_first {
            run_llama(&mut llama_rounds);
        }
        rounds.push(ours(&texts[block(0)..]));
        if !llama_first {
            run_llama(&mut llama_rounds);
        }
    }
    server.stop();
    let baseline_after = in_process(&model, compared_prompts, &opts)?;
    let runs: Vec<HttpReport> = rounds.remove(0);
    let side_by_side = side_by_side(&opts, &runs, &rounds, &llama_rounds, &llama_error);

    let gateway_run = &runs[compared_run];
    let baseline_tok_s =
        (baseline_before.output_tokens_per_second + baseline_after.output_tokens_per_second) / 2.0;
    let ratio = gateway_run.output_tokens_per_second / baseline_tok_s.max(1e-9);
    let baseline_prompt_tokens: usize = compared_prompts
        .iter()
        .take(opts.compare_at * opts.requests_per_client)
        .map(Vec::len)
        .sum();
    let report = json!({
        "model": model.name,
        "served_as": DefaultModel::NAME,
        "endpoint": "POST /v1/chat/completions, stream: true, stream_options.include_usage",
        "backend": opts.placement.describe(),
        "user_message_tokens": PROMPT_TOKENS,
        "prompt_tokens_mean": chat_ids.iter().map(Vec::len).sum::<usize>() as f64
            / chat_ids.len().max(1) as f64,
        "output_tokens_per_request": opts.output_tokens,
        "requests_per_client": opts.requests_per_client,
        "max_num_seqs": scheduler_config().max_num_seqs,
        "max_num_batched_tokens": scheduler_config().max_num_batched_tokens,
        "machine": starfire_bench::llama_cpp::machine(),
        "runs": runs.iter().map(HttpReport::to_json).collect::<Vec<_>>(),
        "llama_server_side_by_side": side_by_side,
        "in_process_scheduler": {
            "concurrency": opts.compare_at,
            "before_http": scheduler_json(&baseline_before),
            "after_http": scheduler_json(&baseline_after),
        },
        "gateway_vs_in_process": {
            "concurrency": opts.compare_at,
            "throughput_ratio": ratio,
            "overhead_percent": (1.0 - ratio) * 100.0,
            "target_max_overhead_percent": TARGET_MAX_OVERHEAD * 100.0,
            "within_target": ratio >= 1.0 - TARGET_MAX_OVERHEAD,
            "same_prompt_tokens": gateway_run.prompt_tokens == baseline_prompt_tokens,
        },
    });
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}

/// The requests of one level straight into a fresh `EngineLoop` with the gateway's settings.
fn in_process(
    model: &Arc<Model>,
    chat_ids: &[Vec<u32>],
    opts: &Options,
) -> anyhow::Result<LoadReport> {
    let config = config_for_model(model, scheduler_config(), KV_CACHE_MEMORY);
    let engine = spawn_engine(model, config)?;
    let per_client = opts.requests_per_client;
    let report = run_closed_loop(&engine, opts.compare_at, per_client, |client, i| {
        let params = SamplingParams {
            ignore_eos: true,
            ..SamplingParams::greedy(opts.output_tokens)
        };
        NewRequest::new(
            format!("base-{client}-{i}"),
            "bench",
            chat_ids[client * per_client + i].clone(),
            params,
        )
    });
    engine.shutdown();
    Ok(report)
}

fn scheduler_json(r: &LoadReport) -> Value {
    json!({
        "requests": r.requests,
        "errors": r.failed_requests,
        "output_tokens": r.output_tokens,
        "wall_seconds": r.wall_seconds,
        "output_tokens_per_second": r.output_tokens_per_second,
        "requests_per_second": r.requests as f64 / r.wall_seconds.max(1e-9),
        "ttft_p50_ms": r.ttft_p50 * 1e3,
        "ttft_p99_ms": r.ttft_p99 * 1e3,
        "itl_p50_ms": r.itl_p50 * 1e3,
        "itl_p99_ms": r.itl_p99 * 1e3,
    })
}

/// The gateway's HTTP server on a loopback port, in this process, on a fresh SQLite home.
struct GatewayServer {
    base_url: String,
    api_key: String,
    handle: actix_web::dev::ServerHandle,
    thread: std::thread::JoinHandle<anyhow::Result<()>>,
    /// The `starfire worker` process, with `--worker-process`.
    _worker: Option<WorkerProcess>,
    _home: tempfile::TempDir,
}

impl GatewayServer {
    fn start(model: Arc<Model>, placement: Placement) -> anyhow::Result<Self> {
        let home = tempfile::tempdir()?;
        let home_path = home.path().display().to_string();
        let mut config = gateway::Config::resolve(None, |name| {
            (name == "STARFIRE_HOME").then(|| home_path.clone())
        })?;
        config.ensure_secret()?;
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let base_url = format!("http://{}/v1", listener.local_addr()?);
        // The worker's port: a listener here for the in-process routes, a process of its own
        // on a free port.
        let worker_listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let worker_url = format!("http://{}", worker_listener.local_addr()?);
        let (backend, worker_listener, worker) = match placement {
            Placement::WorkerProcess => {
                let port = worker_listener.local_addr()?.port();
                drop(worker_listener);
                (None, None, Some(WorkerProcess::start(home.path(), port)?))
            }
            _ => {
                let backend = InProcessBackend::start_with(
                    DefaultModel::NAME,
                    model,
                    scheduler_config(),
                    KV_CACHE_MEMORY,
                )?;
                let backend: Arc<dyn gateway::inference::InferenceBackend> = Arc::new(backend);
                (Some(backend), Some(worker_listener), None)
            }
        };
        let (ready, started) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                let setup = async {
                    let store = gateway::server::open_store(&config).await?;
                    let keys = gateway::bootstrap::bootstrap(
                        &store,
                        "bench@example.com",
                        "bench password 0123",
                        None,
                    )
                    .await?;
                    let pool_over_worker = || {
                        let entry = gateway::registry::ModelEntry {
                            workers: vec![worker_url.clone()],
                            ..gateway::registry::ModelEntry::from_model_path(None)
                        };
                        gateway::registry::load(
                            &[entry],
                            gateway::registry::KvCacheMemory::set(KV_CACHE_MEMORY),
                            &config.admission,
                            &Default::default(),
                        )
                    };
                    let inference = match (placement, backend, worker_listener) {
                        (Placement::WorkerRoutes, Some(backend), Some(worker_listener)) => {
                            let worker = WorkerState::new(backend, None);
                            let server = actix_web::HttpServer::new(move || {
                                actix_web::App::new()
                                    .app_data(actix_web::web::Data::new(worker.clone()))
                                    .configure(gateway::worker::server::configure)
                            })
                            .listen(worker_listener)?
                            .run();
                            actix_web::rt::spawn(server);
                            pool_over_worker()?
                        }
                        (Placement::WorkerProcess, _, _) => pool_over_worker()?,
                        (_, Some(backend), _) => backend,
                        _ => anyhow::bail!("no backend for {placement:?}"),
                    };
                    let state = gateway::AppState::new(store, config).with_inference(inference);
                    let server = actix_web::HttpServer::new(move || gateway::app(state.clone()))
                        .listen(listener)?
                        .run();
                    anyhow::Ok((keys.api_key, server))
                };
                match setup.await {
                    Ok((key, server)) => {
                        let _ = ready.send(Ok((key, server.handle())));
                        server.await?;
                        Ok(())
                    }
                    Err(e) => {
                        let message = format!("{e:#}");
                        let _ = ready.send(Err(e));
                        anyhow::bail!("gateway did not start: {message}")
                    }
                }
            })
        });
        let (api_key, handle) = started
            .recv_timeout(Duration::from_secs(120))
            .context("gateway start")??;
        Ok(GatewayServer {
            base_url,
            api_key,
            handle,
            thread,
            _worker: worker,
            _home: home,
        })
    }

    fn stop(self) {
        actix_web::rt::System::new().block_on(self.handle.stop(true));
        let _ = self.thread.join();
    }
}

/// `starfire worker` with the default model and the benchmark's scheduler settings and KV
/// cache, stopped when dropped.
struct WorkerProcess(std::process::Child);

impl WorkerProcess {
    fn start(home: &std::path::Path, port: u16) -> anyhow::Result<WorkerProcess> {
        let bin = starfire_bench::starfire_binary()?;
        let config = home.join("worker.toml");
        let scheduler = scheduler_config();
        std::fs::write(
            &config,
            format!(
                "[[models]]\nname = \"{}\"\npath = \"{}\"\nkv_cache_memory = {KV_CACHE_MEMORY}\n\
                 max_num_seqs = {}\nmax_num_batched_tokens = {}\n",
                DefaultModel::NAME,
                engine::model_cache::find_default_model()?.display(),
                scheduler.max_num_seqs,
                scheduler.max_num_batched_tokens,
            ),
        )?;
        let mut cmd = std::process::Command::new(bin);
        for (key, _) in std::env::vars() {
            if key.starts_with("STARFIRE_") {
                cmd.env_remove(key);
            }
        }
        let child = cmd
            .env("STARFIRE_HOME", home)
            .env("STARFIRE_LOG", "warn")
            .arg("--config")
            .arg(&config)
            .args(["worker", "--listen", &format!("127.0.0.1:{port}")])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()?;
        let worker = WorkerProcess(child);
        starfire_bench::wait_for_ok(port, "/ready", Duration::from_secs(120))
            .context("starfire worker")?;
        Ok(worker)
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One level's results, measured from the clients' side of the streams.
/// Medians per level over the rounds of both sides, and Starfire's ratios.
fn side_by_side(
    opts: &Options,
    first: &[HttpReport],
    later: &[Vec<HttpReport>],
    llama: &[Vec<HttpReport>],
    llama_error: &Option<String>,
) -> Value {
    if opts.llama.is_none() {
        return Value::Null;
    }
    if llama.is_empty() || llama_error.is_some() {
        return json!({ "unavailable": llama_error });
    }
    let ours: Vec<&[HttpReport]> = std::iter::once(first)
        .chain(later.iter().map(Vec::as_slice))
        .collect();
    let stat = |r: &HttpReport, key: &str| r.to_json()[key].as_f64().unwrap_or(f64::NAN);
    let levels: Vec<Value> = opts
        .levels
        .iter()
        .enumerate()
        .map(|(i, &c)| {
            let med = |side: &[&[HttpReport]], key: &str| {
                starfire_bench::llama_cpp::median(
                    &side.iter().map(|r| stat(&r[i], key)).collect::<Vec<_>>(),
                )
            };
            let theirs: Vec<&[HttpReport]> = llama.iter().map(Vec::as_slice).collect();
            let (tput, ttft) = ("output_tokens_per_second", "ttft_p50_ms");
            let ratio = |a: Option<f64>, b: Option<f64>| {
                a.zip(b).map(|(a, b)| (a / b * 1000.0).round() / 1000.0)
            };
            json!({
                "concurrency": c,
                "starfire": { tput: med(&ours, tput), ttft: med(&ours, ttft),
                              "errors": ours.iter().map(|r| r[i].errors).sum::<usize>() },
                "llama_server": { tput: med(&theirs, tput), ttft: med(&theirs, ttft),
                                  "errors": theirs.iter().map(|r| r[i].errors).sum::<usize>(),
                                  "first_error": theirs.iter().find_map(|r| r[i].first_error.clone()) },
                "throughput_ratio": ratio(med(&ours, tput), med(&theirs, tput)),
                "ttft_p50_ratio": ratio(med(&ours, ttft), med(&theirs, ttft)),
            })
        })
        .collect();
    json!({
        "rounds": llama.len(),
        "llama_server": "llama-server -np <concurrency> -t <threads> --no-cache-prompt, cache_prompt: false",
        "levels": levels,
        "starfire_rounds": ours.iter().map(|r| r.iter().map(HttpReport::to_json).collect::<Vec<_>>()).collect::<Vec<_>>(),
        "llama_server_rounds": llama.iter().map(|r| r.iter().map(HttpReport::to_json).collect::<Vec<_>>()).collect::<Vec<_>>(),
    })
}
