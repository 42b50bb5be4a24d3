//! Redis stopped and restarted under load. `starfire serve` (its own Redis on a free port, so
//! the machine's is untouched) takes a steady stream of limited requests while Redis is killed
//! and, two seconds later, started again. With `rate_limit_redis_failure = "closed"` the
//! requests of the outage are refused fast with 503 `rate_limiter_unavailable`; with `local`
//! they are counted in process and served. Either way the limiter works again once Redis is
//! back, nothing else fails, and the usage table has exactly one completed row per request
//! answered 200 (nothing billed twice, nothing lost).

use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use gateway::store::usage::UsageStatus;
use serde_json::json;

use crate::e2e::{
    bootstrap_with, free_port, serve_on, starfire, terminate, usage_rows, with_default_model, Load,
    Outcome, Server,
};
use crate::rate_limits_e2e::http;

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

#[test]
fn redis_stopped_and_restarted_under_load_closed() {
    redis_outage("closed");
}

#[test]
fn redis_stopped_and_restarted_under_load_local() {
    redis_outage("local");
}

fn redis_outage(mode: &str) {
    let redis_port = free_port();
    let redis = redis_server(redis_port);
    let home = tempfile::tempdir().unwrap();
    let port = free_port();
    let with_env = |cmd: Command| {
        let mut cmd = with_default_model(cmd);
        cmd.env(
            "STARFIRE_REDIS_URL",
            format!("redis://127.0.0.1:{redis_port}"),
        )
        .env("STARFIRE_RATE_LIMIT_REDIS_FAILURE", mode)
        .env("STARFIRE_REDIS_TIMEOUT_MS", "200");
        cmd
    };
    let mut server = serve_on(with_env(starfire(home.path())), port);
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
    let load = Load::start(port, created.body["value"].as_str().unwrap(), CLIENTS);

    load.wait_for(0, 200, 10);
    // Phase 0's requests all ran with Redis up; phase 1's may meet it going down; phase 2's
    // are sent while it is down, phase 3's once it is back.
    load.enter_phase(1);
    drop(redis);
    load.set_phase(2);
    std::thread::sleep(Duration::from_secs(2));
    let _redis = redis_server(redis_port);
    load.set_phase(3);
    load.wait_for(3, 200, 20);
    let outcomes = load.finish();

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
            refused.iter().all(|o| o.took < Duration::from_secs(5)),
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
            .filter(|o| o.phase == 2 && o.status == 200)
            .count();
        assert!(served_during > 0, "local: the outage's requests are served");
    }
    let answered = outcomes.iter().filter(|o| o.status == 200).count();
    eprintln!(
        "{mode}: {} requests, {answered} served, {} refused; {} during the outage",
        outcomes.len(),
        refused.len(),
        outcomes.iter().filter(|o| o.phase == 2).count()
    );

    // Exactly one completed usage row per request answered 200, and none left open.
    terminate(&mut server);
    let url = format!("sqlite://{}", home.path().join("starfire.db").display());
    let rows = usage_rows(&url, boot["tenant_id"].as_str().unwrap());
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
