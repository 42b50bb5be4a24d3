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
use std::time::{Duration, Instant};

use gateway::store::usage::UsageStatus;

use crate::e2e::{
    bootstrap_with, free_port, serve_on, starfire, usage_rows, with_default_model, Load, Outcome,
    Server,
};

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

#[test]
fn postgres_restarted_under_load() {
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
    let database_url = format!("postgres://postgres@127.0.0.1:{pg_port}/postgres");
    let with_env = |cmd: Command| {
        let mut cmd = with_default_model(cmd);
        cmd.env("STARFIRE_DATABASE_URL", &database_url)
            .env("STARFIRE_USAGE_HEARTBEAT_SECS", "1")
            .env("STARFIRE_USAGE_ORPHAN_AFTER_SECS", "3");
        cmd
    };
    let port = free_port();
    let server = serve_on(with_env(starfire(home.path())), port);
    let boot = bootstrap_with(with_env(starfire(home.path())));
    let load = Load::start(port, boot["api_key"].as_str().unwrap(), CLIENTS);

    load.wait_for(0, 200, 10);
    // Phase 0's requests all ran with the database up; phase 1's may meet it going down;
    // phase 2's are sent while it is down, phase 3's once it is back.
    load.enter_phase(1);
    drop(pg);
    load.set_phase(2);
    load.wait_for(2, 503, 4);
    std::thread::sleep(Duration::from_secs(2));
    let _pg = postgres(dir.path(), pg_port);
    load.set_phase(3);
    load.wait_for(3, 200, 20);
    let outcomes = load.finish();

    let unexpected: Vec<String> = outcomes
        .iter()
        .filter(|o| o.status != 200 && !(o.status == 503 && o.code == "database_unavailable"))
        .map(|o| format!("phase {}: {} {}", o.phase, o.status, o.code))
        .collect();
    assert!(unexpected.is_empty(), "{unexpected:?}");
    let refused: Vec<&Outcome> = outcomes.iter().filter(|o| o.status == 503).collect();
    assert!(
        refused.iter().all(|o| o.took < Duration::from_secs(15)),
        "refusals are fast (the pool gives up after 5 s; sqlx's default was 30): {:?}",
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
    let again = serve_on(with_env(starfire(home.path())), free_port());
    let rows = usage_rows(&database_url, boot["tenant_id"].as_str().unwrap());
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
