//! End to end: the real `starfire` binary on a free loopback port, on a fresh home directory
//! with no configuration at all.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_starfire");

/// A `starfire` command with only this test's environment (no STARFIRE_* from outside).
pub(crate) fn starfire(home: &Path) -> Command {
    let mut cmd = Command::new(BIN);
    for (key, _) in std::env::vars() {
        if key.starts_with("STARFIRE_") {
            cmd.env_remove(key);
        }
    }
    cmd.env("STARFIRE_HOME", home);
    cmd
}

pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A minimal HTTP/1.1 GET, so the test depends on no HTTP client crate.
fn get(port: u16, path: &str, token: Option<&str>) -> std::io::Result<(u16, Value)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}Connection: close\r\n\r\n"
    )?;
    let mut raw = String::new();
    stream.read_to_string(&mut raw)?;
    let status = raw
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = raw.split("\r\n\r\n").nth(1).unwrap_or_default();
    Ok((status, serde_json::from_str(body).unwrap_or(Value::Null)))
}

pub(crate) struct Server(pub(crate) Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub(crate) fn wait_healthy(port: u16, server: &mut Server) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok((200, _)) = get(port, "/healthz", None) {
            return;
        }
        if let Ok(Some(status)) = server.0.try_wait() {
            panic!("starfire serve exited early: {status}");
        }
        assert!(
            Instant::now() < deadline,
            "starfire serve did not become healthy"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn bootstrap(home: &Path) -> Value {
    bootstrap_with(starfire(home))
}

pub(crate) fn bootstrap_with(mut cmd: Command) -> Value {
    let out = cmd
        .args([
            "admin",
            "bootstrap",
            "--email",
            "root@example.com",
            "--password",
            "correct horse battery",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("bootstrap prints one JSON object")
}

#[test]
fn serve_on_a_fresh_machine_and_bootstrap() {
    let home = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut server = Server(
        starfire(home.path())
            .env("STARFIRE_LISTEN", format!("127.0.0.1:{port}"))
            .arg("serve")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_healthy(port, &mut server);
    assert!(
        home.path().join("starfire.db").exists(),
        "SQLite is the default"
    );
    assert!(
        home.path().join("session_secret").exists(),
        "secret generated on first start"
    );

    let first = bootstrap(home.path());
    let admin_key = first["admin_key"].as_str().unwrap();
    let api_key = first["api_key"].as_str().unwrap();
    assert!(admin_key.starts_with("sf-admin-"));
    assert!(api_key.starts_with("sf-") && !api_key.starts_with("sf-admin-"));
    assert!(first["tenant_id"].as_str().unwrap().starts_with("org_"));

    let (status, projects) = get(port, "/v1/organization/projects", Some(admin_key)).unwrap();
    assert_eq!(status, 200, "{projects}");
    assert_eq!(projects["data"][0]["id"], first["project_id"]);
    let (status, err) = get(port, "/v1/organization/projects", Some(api_key)).unwrap();
    assert_eq!(status, 403, "{err}");
    assert_eq!(err["error"]["type"], "permission_error");
    let (status, _) = get(port, "/v1/organization/projects", None).unwrap();
    assert_eq!(status, 401);

    // No model in this fresh home: the server runs, inference says how to get one.
    let (status, err) = get(port, "/v1/models", Some(api_key)).unwrap();
    assert_eq!(status, 503, "{err}");
    assert_eq!(err["error"]["code"], "model_not_loaded");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("starfire model fetch"),
        "{err}"
    );

    // Idempotent: same tenant and project, fresh keys that work too.
    let second = bootstrap(home.path());
    assert_eq!(second["tenant_id"], first["tenant_id"]);
    assert_eq!(second["project_id"], first["project_id"]);
    let (status, projects) = get(
        port,
        "/v1/organization/projects",
        second["admin_key"].as_str(),
    )
    .unwrap();
    assert_eq!(status, 200);
    assert_eq!(projects["data"].as_array().unwrap().len(), 1);
    let (status, _) = get(port, "/v1/organization/projects", Some(admin_key)).unwrap();
    assert_eq!(status, 200, "earlier keys keep working");

    // The wrong password for an existing owner is refused.
    let out = starfire(home.path())
        .args([
            "admin",
            "bootstrap",
            "--email",
            "root@example.com",
            "--password",
            "not the password",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
}

#[test]
fn openapi_and_help() {
    let home = tempfile::tempdir().unwrap();
    let out = starfire(home.path()).arg("openapi").output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        gateway::openapi_json()
    );
    let help = starfire(home.path()).arg("--help").output().unwrap();
    let help = String::from_utf8(help.stdout).unwrap();
    for command in ["serve", "openapi", "admin"] {
        assert!(help.contains(command), "{help}");
    }
}

#[test]
fn a_config_file_is_read_and_bad_ones_are_refused() {
    let home = tempfile::tempdir().unwrap();
    let config = home.path().join("starfire.toml");
    std::fs::write(&config, "listen = \"127.0.0.1:1\"\nbogus = 1\n").unwrap();
    let out = starfire(home.path())
        .args(["--config", config.to_str().unwrap(), "serve"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("bogus"));
}

/// The same binary on PostgreSQL (a fresh schema) and serving the cached default model,
/// configured through the environment only.
#[actix_web::test]
async fn serve_and_bootstrap_on_postgres() {
    let (url, _guard) = crate::support::fresh_database(crate::support::Backend::Postgres).await;
    let home = tempfile::tempdir().unwrap();
    let port = free_port();
    let model = engine::model_cache::find_default_model().expect("the default model is cached");
    let with_db = |mut cmd: Command| {
        cmd.env("STARFIRE_DATABASE_URL", &url);
        cmd.env("STARFIRE_MODEL_PATH", &model);
        cmd
    };
    let out = bootstrap_with(with_db(starfire(home.path())));
    let mut server = Server(
        with_db(starfire(home.path()))
            .env("STARFIRE_LISTEN", format!("127.0.0.1:{port}"))
            .arg("serve")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_healthy(port, &mut server);
    assert!(
        !home.path().join("starfire.db").exists(),
        "no SQLite file when on PostgreSQL"
    );
    let (status, projects) =
        get(port, "/v1/organization/projects", out["admin_key"].as_str()).unwrap();
    assert_eq!(status, 200, "{projects}");
    assert_eq!(projects["data"][0]["id"], out["project_id"]);
    let (status, _) = get(port, "/v1/organization/projects", out["api_key"].as_str()).unwrap();
    assert_eq!(status, 403);
    // STARFIRE_MODEL_PATH names the default model's file: served under its name.
    let (status, models) = get(port, "/v1/models", out["api_key"].as_str()).unwrap();
    assert_eq!(status, 200, "{models}");
    assert_eq!(models["data"][0]["id"], gateway::registry::DEFAULT_MODEL_ID);
    drop(server);
}

/// `cmd` set to serve the default model from the cache with a small KV cache.
pub(crate) fn with_default_model(mut cmd: Command) -> Command {
    let model = engine::model_cache::find_default_model()
        .expect("the default model is cached (`starfire model fetch`)");
    cmd.env("STARFIRE_MODEL_PATH", model)
        .env("STARFIRE_KV_CACHE_MEMORY", (64u64 << 20).to_string());
    cmd
}

/// `cmd` running `serve` on `port`, its output discarded; returns once `/healthz` answers.
pub(crate) fn serve_on(mut cmd: Command, port: u16) -> Server {
    let mut server = Server(
        cmd.env("STARFIRE_LISTEN", format!("127.0.0.1:{port}"))
            .arg("serve")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_healthy(port, &mut server);
    server
}

/// Sends SIGTERM and waits (40 s at most) for the process to exit; its exit status.
pub(crate) fn terminate(server: &mut Server) -> std::process::ExitStatus {
    let _ = Command::new("kill")
        .args(["-TERM", &server.0.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        if let Some(status) = server.0.try_wait().unwrap() {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "still running 40 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Every usage row of `tenant` in the database at `url`.
pub(crate) fn usage_rows(url: &str, tenant: &str) -> Vec<gateway::store::usage::UsageEvent> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = gateway::Store::connect(url).await.unwrap();
        store
            .usage_events(&tenant.into(), 0, i64::MAX)
            .await
            .unwrap()
    })
}

/// One request of a [`Load`] as its client saw it.
pub(crate) struct Outcome {
    /// The load's phase when it was sent.
    pub phase: usize,
    pub status: u16,
    pub code: String,
    pub took: Duration,
}

/// `clients` threads sending small completions to `port` with `key` until stopped, each
/// outcome tagged with the phase the test was in when it was sent (for fault tests).
pub(crate) struct Load {
    phase: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    /// Requests sent and not yet answered, by the phase they were sent in.
    in_flight: std::sync::Arc<std::sync::Mutex<Vec<usize>>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    outcomes: std::sync::Arc<std::sync::Mutex<Vec<Outcome>>>,
    clients: Vec<std::thread::JoinHandle<()>>,
}

impl Load {
    pub(crate) fn start(port: u16, key: &str, clients: usize) -> Load {
        use std::sync::atomic::Ordering;
        let load = Load {
            phase: Default::default(),
            in_flight: Default::default(),
            stop: Default::default(),
            outcomes: Default::default(),
            clients: Vec::new(),
        };
        let clients = (0..clients)
            .map(|_| {
                let (key, phase, in_flight, stop, outcomes) = (
                    key.to_owned(),
                    load.phase.clone(),
                    load.in_flight.clone(),
                    load.stop.clone(),
                    load.outcomes.clone(),
                );
                std::thread::spawn(move || {
                    let request = serde_json::json!({"model": "smollm2-135m-instruct",
                        "prompt": [1, 2, 3, 4, 5, 6, 7, 8, 9], "max_tokens": 1,
                        "ignore_eos": true, "temperature": 0});
                    while !stop.load(Ordering::SeqCst) {
                        let at = {
                            // Read under the lock `enter_phase` takes: a request is counted
                            // in flight in the phase it is tagged with.
                            let mut in_flight = in_flight.lock().unwrap();
                            let at = phase.load(Ordering::SeqCst);
                            if in_flight.len() <= at {
                                in_flight.resize(at + 1, 0);
                            }
                            in_flight[at] += 1;
                            at
                        };
                        let started = Instant::now();
                        let reply = crate::rate_limits_e2e::http(
                            port,
                            "POST",
                            "/v1/completions",
                            Some(&key),
                            &request,
                        );
                        outcomes.lock().unwrap().push(Outcome {
                            phase: at,
                            status: reply.status,
                            code: reply.body["error"]["code"]
                                .as_str()
                                .unwrap_or_default()
                                .to_owned(),
                            took: started.elapsed(),
                        });
                        in_flight.lock().unwrap()[at] -= 1;
                    }
                })
            })
            .collect();
        Load { clients, ..load }
    }

    pub(crate) fn set_phase(&self, phase: usize) {
        self.phase.store(phase, std::sync::atomic::Ordering::SeqCst);
    }

    /// Enters `phase` and waits (60 s at most) until every request sent in an earlier phase
    /// has its answer: a fault injected after this cannot reach a request tagged before it.
    pub(crate) fn enter_phase(&self, phase: usize) {
        {
            let _counting = self.in_flight.lock().unwrap();
            self.set_phase(phase);
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        while self
            .in_flight
            .lock()
            .unwrap()
            .iter()
            .take(phase)
            .any(|&n| n > 0)
        {
            assert!(
                Instant::now() < deadline,
                "requests of the phases before {phase} never finished"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// The requests sent in `phase` that got `status`.
    pub(crate) fn count(&self, phase: usize, status: u16) -> usize {
        self.outcomes
            .lock()
            .unwrap()
            .iter()
            .filter(|o| o.phase == phase && o.status == status)
            .count()
    }

    /// Waits (60 s at most) until `count(phase, status)` reaches `n`.
    pub(crate) fn wait_for(&self, phase: usize, status: u16, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.count(phase, status) < n {
            assert!(
                Instant::now() < deadline,
                "waited for {n} answers {status} in phase {phase}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the clients; every outcome, in the order they came.
    pub(crate) fn finish(self) -> Vec<Outcome> {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        for c in self.clients {
            c.join().unwrap();
        }
        std::mem::take(&mut *self.outcomes.lock().unwrap())
    }
}
