//! PostgreSQL restarted under load. `starfire serve` runs on a PostgreSQL of its own (initdb in
//! a temporary directory, on a free port, so the machine's is untouched) while four clients send
//! requests; the database is shut down at once (immediate mode: every connection dropped) and
//! started again two seconds later. During the outage requests fail fast with 503
//! `database_unavailable`, never 500; afterwards they succeed again on new connections; and the
//! usage table holds no more rows than requests were sent, none doubled, none left open once a
//! restarted `serve` has swept what the outage left in flight.

use std::net::TcpStream;
use std::path::Path;
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

fn pg_bin(name: &str) -> String {
    let mut versions: Vec<_> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL's binaries (the test machine runs PostgreSQL)")
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .collect();
    versions.sort();
    versions
        .last()
        .unwrap()
        .join("bin")
        .join(name)
        .display()
        .to_string()
}

/// A PostgreSQL program, as the `postgres` user when this test runs as root (PostgreSQL refuses
/// to run as root).
fn as_postgres(bin: &str) -> Command {
    let uid = Command::new("id").arg("-u").output().unwrap().stdout;
    if String::from_utf8_lossy(&uid).trim() == "0" {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "postgres", "--", &pg_bin(bin)]);
        cmd
    } else {
        Command::new(pg_bin(bin))
    }
}

/// A PostgreSQL server of the test's own; dropping it shuts it down in immediate mode (every
/// connection dropped, no checkpoint: what a crash or a hard restart looks like to clients).
struct Postgres(Server);

impl Drop for Postgres {
    fn drop(&mut self) {
        // The child is the postmaster, or runuser with the postmaster as its child.
        let pid = self.0 .0.id().to_string();
        let _ = Command::new("pkill").args(["-QUIT", "-P", &pid]).status();
        let _ = Command::new("kill").args(["-QUIT", &pid]).status();
        let _ = self.0 .0.wait();
    }
}

fn postgres(dir: &Path, port: u16) -> Postgres {
    let server = Server(
        as_postgres("postgres")
            .args(["-D", &dir.join("db").display().to_string()])
            .args(["-p", &port.to_string(), "-k", &dir.display().to_string()])
            .args(["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "postgres did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    Postgres(server)
}

struct Outcome {
    phase: usize,
    status: u16,
    code: String,
    took: Duration,
}

#[test]
fn postgres_restarted_under_load() {
    let model = engine::model_cache::find_default_model()
        .expect("the default model is cached (`starfire model fetch`)");
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    let status = as_postgres("initdb")
        .args(["-D", &dir.path().join("db").display().to_string()])
        .args(["-A", "trust", "-U", "postgres"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "initdb");
    let pg_port = free_port();
    let pg = postgres(dir.path(), pg_port);

    let home = tempfile::tempdir().unwrap();
    let port = free_port();
    let database_url = format!("postgres://postgres@127.0.0.1:{pg_port}/postgres");
    let with_env = |mut cmd: Command| {
        cmd.env("STARFIRE_MODEL_PATH", &model)
            .env("STARFIRE_KV_CACHE_MEMORY", (64u64 << 20).to_string())
            .env("STARFIRE_DATABASE_URL", &database_url)
            .env("STARFIRE_USAGE_HEARTBEAT_SECS", "1")
            .env("STARFIRE_USAGE_ORPHAN_AFTER_SECS", "3");
        cmd
    };
    let serve = |port: u16| {
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
        server
    };
    let server = serve(port);
    let boot = bootstrap_with(with_env(starfire(home.path())));
    let key: Arc<str> = boot["api_key"].as_str().unwrap().into();

    let phase = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let outcomes = Arc::new(Mutex::new(Vec::<Outcome>::new()));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (key, phase, stop, outcomes) =
                (key.clone(), phase.clone(), stop.clone(), outcomes.clone());
            std::thread::spawn(move || {
                let request = json!({"model": "smollm2-135m-instruct",
                    "prompt": [1, 2, 3, 4, 5, 6, 7, 8, 9], "max_tokens": 2,
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
    let count = |p: usize, status: u16| {
        outcomes
            .lock()
            .unwrap()
            .iter()
            .filter(|o| o.phase == p && o.status == status)
            .count()
    };
    let wait_for = |what: &str, done: &dyn Fn() -> bool| {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !done() {
            assert!(Instant::now() < deadline, "{what}");
            std::thread::sleep(Duration::from_millis(50));
        }
    };

    wait_for("requests served before the outage", &|| count(0, 200) >= 10);
    drop(pg);
    phase.store(1, Ordering::SeqCst);
    wait_for("refusals during the outage", &|| count(1, 503) >= 4);
    std::thread::sleep(Duration::from_secs(2));
    let _pg = postgres(dir.path(), pg_port);
    phase.store(2, Ordering::SeqCst);
    wait_for("requests served after the restart", &|| count(2, 200) >= 20);
    stop.store(true, Ordering::SeqCst);
    for c in clients {
        c.join().unwrap();
    }

    let outcomes = std::mem::take(&mut *outcomes.lock().unwrap());
    let unexpected: Vec<String> = outcomes
        .iter()
        .filter(|o| o.status != 200 && !(o.status == 503 && o.code == "database_unavailable"))
        .map(|o| format!("phase {}: {} {}", o.phase, o.status, o.code))
        .collect();
    assert!(unexpected.is_empty(), "{unexpected:?}");
    let refused: Vec<&Outcome> = outcomes.iter().filter(|o| o.status == 503).collect();
    assert!(
        refused.iter().all(|o| o.took < Duration::from_secs(7)),
        "refusals are fast: {:?}",
        refused.iter().map(|o| o.took).max()
    );
    let last: Vec<u16> = outcomes
        .iter()
        .rev()
        .take(CLIENTS * 2)
        .map(|o| o.status)
        .collect();
    assert!(last.iter().all(|s| *s == 200), "{last:?}");
    let served = outcomes.iter().filter(|o| o.status == 200).count();
    eprintln!(
        "{} requests: {served} served, {} refused 503 (slowest {:?})",
        outcomes.len(),
        refused.len(),
        refused.iter().map(|o| o.took).max()
    );

    // A new serve sweeps what the outage left in flight; then nothing is open, nothing doubled.
    drop(server);
    std::thread::sleep(Duration::from_secs(4));
    let again = serve(free_port());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let store = rt.block_on(Store::connect(&database_url)).unwrap();
    let tenant = boot["tenant_id"].as_str().unwrap().into();
    let rows = rt
        .block_on(store.usage_events(&tenant, 0, i64::MAX))
        .unwrap();
    drop(again);
    assert!(
        rows.iter().all(|r| r.status != UsageStatus::InProgress),
        "a row left open"
    );
    let billed = rows
        .iter()
        .filter(|r| r.status != UsageStatus::Rejected)
        .count();
    let completed = rows
        .iter()
        .filter(|r| r.status == UsageStatus::Completed)
        .count();
    assert!(
        completed <= served && billed <= outcomes.len(),
        "{completed} completed rows, {billed} billed rows for {served} served of {} requests",
        outcomes.len()
    );
    let mut ids: Vec<&str> = rows.iter().map(|r| r.request_id.as_str()).collect();
    ids.sort();
    let before = ids.len();
    ids.dedup();
    assert_eq!(ids.len(), before, "a request billed twice");
}
