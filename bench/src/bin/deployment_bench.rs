//! Isolation of a private deployment from the shared pool: does a noisy tenant flooding the
//! shared model slow down an organization's dedicated deployment?
//!
//! Runs the gateway in this process (SQLite store), the shared model in a `starfire worker`
//! process pinned to the first half of the CPUs, and one deployment through the `local` driver
//! with `cpu_pool` = the other half (its replica pinned there, as the driver does). Then, with
//! 4 closed-loop clients on the deployment (streamed chats, distinct prompts), it measures the
//! deployment's time to first token twice: with the shared pool idle, and while another
//! organization streams 64 concurrent chats to the shared model. Prints one JSON object with
//! both, and the ratio of the p99s against the target (at most 1.5).
//!
//! Usage: deployment_bench [--quick] [--requests-per-client N] [--noisy N]

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use engine::model_cache::DefaultModel;
use serde_json::{json, Value};
use starfire_bench::http_load::{http_closed_loop, HttpReport, Load, Target};
use starfire_bench::{free_port, starfire_binary, wait_for_ok};

const TOKEN: &str = "deployment-bench-worker-token-0123456789";
const TARGET_P99_RATIO: f64 = 1.5;
const DEPLOYMENT: &str = "dedicated";

/// A child process killed when dropped.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn cpu_list(cpus: &[usize]) -> String {
    cpus.iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// The shared model: `starfire worker` pinned to `cpus` with as many engine threads.
fn shared_worker(home: &std::path::Path, port: u16, cpus: &[usize]) -> anyhow::Result<Process> {
    let model = engine::model_cache::find_default_model()
        .context("the default model is not in the cache: run `starfire model fetch`")?;
    let child = Command::new("taskset")
        .arg("-c")
        .arg(cpu_list(cpus))
        .arg(starfire_binary()?)
        .args([
            "worker",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--model",
        ])
        .arg(model)
        .env("STARFIRE_HOME", home)
        .env("STARFIRE_WORKER_TOKEN", TOKEN)
        .env("STARFIRE_KV_CACHE_MEMORY", (256u64 << 20).to_string())
        .env("RAYON_NUM_THREADS", cpus.len().to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting the shared worker (taskset from util-linux)")?;
    let process = Process(child);
    wait_for_ok(port, "/ready", Duration::from_secs(120))?;
    Ok(process)
}

struct Gateway {
    base_url: String,
    /// The organization with the deployment, and the noisy one.
    owner_admin_key: String,
    owner_key: String,
    noisy_key: String,
    handle: actix_web::dev::ServerHandle,
    thread: std::thread::JoinHandle<anyhow::Result<()>>,
}

impl Gateway {
    fn start(
        home: &std::path::Path,
        shared_port: u16,
        dedicated: &[usize],
    ) -> anyhow::Result<Self> {
        let home_path = home.display().to_string();
        let mut config = gateway::Config::resolve(None, |name| {
            (name == "STARFIRE_HOME").then(|| home_path.clone())
        })?;
        config.ensure_secret()?;
        config.worker_token = Some(TOKEN.to_owned());
        config.models = vec![gateway::registry::ModelEntry {
            workers: vec![format!("http://127.0.0.1:{shared_port}")],
            ..gateway::registry::ModelEntry::from_model_path(None)
        }];
        let d = &mut config.deployments;
        d.approval = gateway::deployments::Approval::Auto;
        d.worker_command = Some(starfire_binary()?);
        d.cpu_pool = Some(cpu_list(dedicated));
        d.cpus_per_replica = dedicated.len();
        d.reconcile_interval_ms = 200;
        d.kv_cache_memory = 256 << 20;
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let base_url = format!("http://{}/v1", listener.local_addr()?);
        let (ready, started) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                let setup = async {
                    let store = gateway::server::open_store(&config).await?;
                    let owner = gateway::bootstrap::bootstrap(
                        &store,
                        "owner@example.com",
                        "bench password 0123",
                        Some("Dedicated"),
                    )
                    .await?;
                    let noisy = gateway::bootstrap::bootstrap(
                        &store,
                        "noisy@example.com",
                        "bench password 0123",
                        Some("Noisy"),
                    )
                    .await?;
                    // Limits that let 64 requests run at once (postpaid: no credits to run out).
                    for tenant in [&owner.tenant_id, &noisy.tenant_id] {
                        store
                            .change_plan(
                                &gateway::store::TenantId::from(tenant.as_str()),
                                gateway::store::tenants::Plan::Enterprise,
                            )
                            .await?;
                    }
                    let inference = gateway::server::load_inference(&config)?;
                    let state = gateway::AppState::new(store, config).with_inference(inference);
                    state.deployments.refresh().await?;
                    let driver = gateway::server::start_deployments(&state).await;
                    let server = actix_web::HttpServer::new(move || gateway::app(state.clone()))
                        .listen(listener)?
                        .run();
                    anyhow::Ok((owner, noisy, server, driver))
                };
                match setup.await {
                    Ok((owner, noisy, server, driver)) => {
                        let keys = (owner.admin_key, owner.api_key, noisy.api_key);
                        let _ = ready.send(Ok((keys, server.handle())));
                        server.await?;
                        drop(driver);
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
        let ((owner_admin_key, owner_key, noisy_key), handle) = started
            .recv_timeout(Duration::from_secs(120))
            .context("gateway start")??;
        Ok(Gateway {
            base_url,
            owner_admin_key,
            owner_key,
            noisy_key,
            handle,
            thread,
        })
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let url = format!("{}{path}", self.base_url);
        let auth = format!("Bearer {}", self.owner_admin_key);
        let resp = match (method, body) {
            ("POST", Some(body)) => agent
                .post(&url)
                .header("authorization", &auth)
                .content_type("application/json")
                .send(body.to_string().as_bytes()),
            _ => agent.get(&url).header("authorization", &auth).call(),
        }?;
        let status = resp.status().as_u16();
        let text = resp.into_body().read_to_string()?;
        anyhow::ensure!(status < 300, "{method} {path}: HTTP {status}: {text}");
        Ok(serde_json::from_str(&text)?)
    }

    fn stop(self) {
        actix_web::rt::System::new().block_on(self.handle.stop(true));
        let _ = self.thread.join();
    }
}

fn texts(label: &str, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("{label} question {i}: describe the colour of the sea at hour {i}."))
        .collect()
}

fn summary(r: &HttpReport) -> Value {
    r.to_json()
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "--quick");
    let value_of = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .map(|v| v.parse::<usize>())
            .transpose()
    };
    let requests_per_client =
        value_of("--requests-per-client")?.unwrap_or(if quick { 3 } else { 10 });
    let noisy = value_of("--noisy")?.unwrap_or(64);
    let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
    anyhow::ensure!(
        cpus >= 2,
        "the benchmark needs at least 2 CPUs (one per side)"
    );
    let shared: Vec<usize> = (0..cpus / 2).collect();
    let dedicated: Vec<usize> = (cpus / 2..cpus).collect();

    let home = tempfile::tempdir()?;
    let shared_port = free_port()?;
    let _worker = shared_worker(home.path(), shared_port, &shared)?;
    let gateway = Gateway::start(home.path(), shared_port, &dedicated)?;
    gateway.call(
        "POST",
        "/organization/deployments",
        Some(json!({"name": DEPLOYMENT, "model": DefaultModel::NAME})),
    )?;
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let list = gateway.call("GET", "/organization/deployments", None)?;
        if list["data"][0]["state"] == "ready" {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline && list["data"][0]["state"] != "failed",
            "the deployment did not become ready: {list}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    let deployment_target = Target {
        base_url: gateway.base_url.clone(),
        auth: Some(format!("Bearer {}", gateway.owner_key)),
        llama_server: false,
    };
    let deployment_load = Load {
        model: DEPLOYMENT.to_owned(),
        requests_per_client,
        output_tokens: 32,
        stop: None,
    };
    // Warm up (first requests page the weights in), then measure with the shared pool idle.
    http_closed_loop(
        &deployment_target,
        4,
        &texts("warm", 4),
        &Load {
            requests_per_client: 1,
            ..deployment_load.clone()
        },
    );
    let idle = http_closed_loop(
        &deployment_target,
        4,
        &texts("idle", 4 * requests_per_client),
        &deployment_load,
    );

    // The same load while another organization floods the shared model.
    let stop = Arc::new(AtomicBool::new(false));
    let noisy_target = Target {
        base_url: gateway.base_url.clone(),
        auth: Some(format!("Bearer {}", gateway.noisy_key)),
        llama_server: false,
    };
    let noisy_load = Load {
        model: DefaultModel::NAME.to_owned(),
        requests_per_client: 1000,
        output_tokens: 32,
        stop: Some(stop.clone()),
    };
    let noisy_texts = texts("noise", noisy * 1000);
    let (loaded, noise) = std::thread::scope(|s| {
        let noise = s.spawn(|| http_closed_loop(&noisy_target, noisy, &noisy_texts, &noisy_load));
        // Until the shared worker is saturated.
        std::thread::sleep(Duration::from_secs(if quick { 2 } else { 5 }));
        let loaded = http_closed_loop(
            &deployment_target,
            4,
            &texts("loaded", 4 * requests_per_client),
            &deployment_load,
        );
        stop.store(true, Ordering::Relaxed);
        (loaded, noise.join().expect("the noisy clients"))
    });
    gateway.stop();

    let p99 = |r: &HttpReport| summary(r)["ttft_p99_ms"].as_f64().unwrap_or(f64::NAN);
    let ratio = p99(&loaded) / p99(&idle);
    let out = json!({
        "benchmark": "deployment_isolation",
        "machine": {"cpu": starfire_bench::cpu_name(), "cpus": cpus},
        "shared_pool_cpus": cpu_list(&shared),
        "deployment_cpus": cpu_list(&dedicated),
        "deployment_clients": 4,
        "noisy_clients": noisy,
        "deployment_idle_shared_pool": summary(&idle),
        "deployment_under_noise": summary(&loaded),
        "noise": summary(&noise),
        "ttft_p99_ratio": (ratio * 1000.0).round() / 1000.0,
        "target_ttft_p99_ratio": TARGET_P99_RATIO,
        "within_target": ratio <= TARGET_P99_RATIO,
        "errors": idle.errors + loaded.errors,
    });
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}
