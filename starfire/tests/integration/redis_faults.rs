//! Redis stopped and restarted under load. `starfire serve` (its own Redis on a free port, so
//! the machine's is untouched) takes a steady stream of limited requests while Redis is killed
//! and, two seconds later, started again. With `rate_limit_redis_failure = "closed"` the
//! requests of the outage are refused fast with 503 `rate_limiter_unavailable`; with `local`
//! they are counted in process and served. Either way the limiter works again once Redis is
//! back, nothing else fails, and the usage table has exactly one completed row per request
//! answered 200 (nothing billed twice, nothing lost).

use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gateway::store::usage::UsageStatus;
use gateway::Store;
use serde_json::json;

use crate::e2e::{bootstrap_with, free_port, starfire, Server};
use crate::rate_limits_e2e::{http, wait_until_up};

const CLIENTS: usize = 4;

fn redis_server(port: u16) -> Server {
    let server = Server(
        Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server (the test machine runs Redis, so it has the binary)"),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "redis-server did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    server
}

/// One request as a client saw it.
struct Outcome {
    /// 0 before the outage, 1 during, 2 after Redis came back (when it was sent).
    phase: usize,
    status: u16,
    code: String,
    took: Duration,
}

#[test]
fn redis_stopped_and_restarted_under_load_closed() {
    redis_outage("closed");
}

#[test]
fn redis_stopped_and_restarted_under_load_local() {
    redis_outage("local");
}

fn redis_outage(mode: &str) {
    let model = engine::model_cache::find_default_model()
        .expect("the default model is cached (`starfire model fetch`)");
    let redis_port = free_port();
    let redis = redis_server(redis_port);
    let home = tempfile::tempdir().unwrap();
    let port = free_port();
    let with_env = |mut cmd: Command| {
        cmd.env("STARFIRE_MODEL_PATH", &model)
            .env("STARFIRE_KV_CACHE_MEMORY", (64u64 << 20).to_string())
            .env(
                "STARFIRE_REDIS_URL",
                format!("redis://127.0.0.1:{redis_port}"),
            )
            .env("STARFIRE_RATE_LIMIT_REDIS_FAILURE", mode)
            .env("STARFIRE_REDIS_TIMEOUT_MS", "200");
        cmd
    };
    let mut server = Server(
        with_env(starfire(home.path()))
            .env("STARFIRE_LISTEN", format!("127.0.0.1:{port}"))
            .arg("serve")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_until_up(&mut server, "127.0.0.1", port, "/healthz", "starfire serve");
    let boot = bootstrap_with(with_env(starfire(home.path())));
    let created = http(
        port,
        "POST",
        &format!(
            "/v1/organization/projects/{}/api_keys",
            boot["project_id"].as_str().unwrap()
        ),
        boot["admin_key"].as_str(),
        &json!({"name": "load", "scopes": ["inference"],
                "limits": {"rpm": 100000, "tpm": 10000000, "concurrency": 1000}}),
    );
    assert_eq!(created.status, 201, "{}", created.text);
    let key: Arc<str> = created.body["value"].as_str().unwrap().into();

    let phase = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let outcomes = Arc::new(Mutex::new(Vec::<Outcome>::new()));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (key, phase, stop, outcomes) =
                (key.clone(), phase.clone(), stop.clone(), outcomes.clone());
            std::thread::spawn(move || {
                let request = json!({"model": "smollm2-135m-instruct",
                    "prompt": [1, 2, 3, 4, 5, 6, 7, 8, 9], "max_tokens": 1,
                    "ignore_eos": true, "temperature": 0});
                while !stop.load(Ordering::SeqCst) {
                    let at = phase.load(Ordering::SeqCst);
                    let started = Instant::now();
                    let reply = http(port, "POST", "/v1/completions", Some(&key), &request);
                    outcomes.lock().unwrap().push(Outcome {
                        phase: at,
                        status: reply.status,
                        code: reply.body["error"]["code"]
                            .as_str()
                            .unwrap_or_default()
                            .to_owned(),
                        took: started.elapsed(),
                    });
                }
            })
        })
        .collect();
    let served_in = |p: usize| {
        outcomes
            .lock()
            .unwrap()
            .iter()
            .filter(|o| o.phase == p && o.status == 200)
            .count()
    };
    let wait_for = |what: &str, done: &dyn Fn() -> bool| {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !done() {
            assert!(Instant::now() < deadline, "{what}");
            std::thread::sleep(Duration::from_millis(50));
        }
    };

    wait_for("requests served before the outage", &|| served_in(0) >= 10);
    drop(redis);
    phase.store(1, Ordering::SeqCst);
    std::thread::sleep(Duration::from_secs(2));
    let _redis = redis_server(redis_port);
    phase.store(2, Ordering::SeqCst);
    wait_for("requests served after Redis came back", &|| {
        served_in(2) >= 20
    });
    stop.store(true, Ordering::SeqCst);
    for c in clients {
        c.join().unwrap();
    }

    let outcomes = outcomes.lock().unwrap();
    let unexpected: Vec<String> = outcomes
        .iter()
        .filter(|o| {
            o.status != 200
                && !(mode == "closed" && o.phase >= 1 && o.code == "rate_limiter_unavailable")
        })
        .map(|o| format!("phase {}: {} {}", o.phase, o.status, o.code))
        .collect();
    assert!(unexpected.is_empty(), "{mode}: {unexpected:?}");
    let refused: Vec<&Outcome> = outcomes.iter().filter(|o| o.status == 503).collect();
    if mode == "closed" {
        assert!(!refused.is_empty(), "the outage was not noticed");
        assert!(
            refused.iter().all(|o| o.took < Duration::from_secs(2)),
            "refusals are fast"
        );
        // Once Redis is back, the limiter works again: the last requests all succeed.
        let last: Vec<u16> = outcomes
            .iter()
            .rev()
            .take(CLIENTS * 2)
            .map(|o| o.status)
            .collect();
        assert!(last.iter().all(|s| *s == 200), "{last:?}");
    } else {
        let served_during = outcomes
            .iter()
            .filter(|o| o.phase == 1 && o.status == 200)
            .count();
        assert!(served_during > 0, "local: the outage's requests are served");
    }
    let answered = outcomes.iter().filter(|o| o.status == 200).count();
    eprintln!(
        "{mode}: {} requests, {answered} served, {} refused; {} during the outage",
        outcomes.len(),
        refused.len(),
        outcomes.iter().filter(|o| o.phase == 1).count()
    );

    // Exactly one completed usage row per request answered 200, and none left open.
    let _ = Command::new("kill")
        .args(["-TERM", &server.0.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(40);
    while server.0.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "serve did not exit");
        std::thread::sleep(Duration::from_millis(50));
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let url = format!("sqlite://{}", home.path().join("starfire.db").display());
    let store = rt.block_on(Store::connect(&url)).unwrap();
    let tenant = boot["tenant_id"].as_str().unwrap().into();
    let rows = rt
        .block_on(store.usage_events(&tenant, 0, i64::MAX))
        .unwrap();
    let completed = rows
        .iter()
        .filter(|r| r.status == UsageStatus::Completed)
        .count();
    assert_eq!(completed, answered, "{mode}: usage rows against 200s");
    assert!(
        rows.iter().all(|r| r.status != UsageStatus::InProgress),
        "{mode}: a row left open"
    );
}
