//! The `local` driver: each replica is a `starfire worker` process on this host, on a free port
//! of `worker_host`, with its own KV cache and queue, its output appended to
//! `<home>/deployments/<id>/replica-<port>.log`.
//!
//! A replica that exits on its own is started again after a backoff (1 s, doubling, at most a
//! minute); one that has exited three times or more is reported as a problem (with the end of
//! its log), which fails a deployment still provisioning. Scaling down and stopping send SIGTERM,
//! so the worker finishes what it runs (its own drain), and SIGKILL after the drain timeout.
//! Every child is killed when the driver is dropped (`serve` ending).
//!
//! With a CPU pool, each replica is pinned (its affinity set before it runs) to CPUs of the pool
//! that no other replica holds, and runs as many engine threads as it has CPUs: a deployment's
//! compute is its own, whatever the shared pool or another deployment does. A replica that
//! finds no free CPUs is not started (the deployment fails with the reason).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use protocol::BoxFuture;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};

use super::driver::{Driver, Observed, Replica, ReplicaSpec};

/// Exits after which a replica counts as crash-looping.
const CRASH_LOOP: u32 = 3;

pub struct LocalDriver {
    command: PathBuf,
    host: String,
    home: PathBuf,
    token: String,
    drain_timeout: Duration,
    /// The CPUs replicas may be pinned to, and how many each holds.
    cpus: Option<(Vec<usize>, usize)>,
    deployments: Mutex<HashMap<String, Replicas>>,
}

#[derive(Default)]
struct Replicas {
    serving: Vec<Process>,
    draining: Vec<Process>,
}

struct Process {
    port: u16,
    child: Option<Child>,
    exits: u32,
    restart_at: Option<Instant>,
    drain_deadline: Option<Instant>,
    log: PathBuf,
    spec: ReplicaSpec,
    /// The CPUs it is pinned to (none: not pinned).
    cpus: Vec<usize>,
}

impl LocalDriver {
    /// Replicas run `command worker ...` on `host`, authenticated with `token`; their files go
    /// under `home/deployments`.
    pub fn new(
        command: PathBuf,
        host: String,
        home: &Path,
        token: String,
        drain_timeout: Duration,
    ) -> Self {
        LocalDriver {
            command,
            host,
            home: home.join("deployments"),
            token,
            drain_timeout,
            cpus: None,
            deployments: Mutex::new(HashMap::new()),
        }
    }

    /// Pins every replica to `per_replica` CPUs of `pool` that no other replica holds.
    pub fn pinned(mut self, pool: Vec<usize>, per_replica: usize) -> Self {
        self.cpus = Some((pool, per_replica.max(1)));
        self
    }

    /// CPUs for a new replica, given every replica's of every deployment.
    fn free_cpus(&self, all: &HashMap<String, Replicas>) -> Result<Vec<usize>, String> {
        let Some((pool, per)) = &self.cpus else {
            return Ok(Vec::new());
        };
        let held: Vec<usize> = all
            .values()
            .flat_map(|r| r.serving.iter().chain(&r.draining))
            .flat_map(|p| p.cpus.iter().copied())
            .collect();
        let free: Vec<usize> = pool.iter().copied().filter(|c| !held.contains(c)).collect();
        if free.len() < *per {
            return Err(format!(
                "no free CPUs for another replica: the pool has {}, {} held by running \
                 replicas, each needs {per}",
                pool.len(),
                held.len()
            ));
        }
        Ok(free[..*per].to_vec())
    }

    fn url(&self, port: u16) -> String {
        if self.host.contains(':') {
            format!("http://[{}]:{port}", self.host)
        } else {
            format!("http://{}:{port}", self.host)
        }
    }

    fn spawn(&self, spec: &ReplicaSpec, cpus: Vec<usize>) -> Result<Process, String> {
        let port = free_port(&self.host)?;
        let dir = self.home.join(&spec.deployment_id);
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let log = dir.join(format!("replica-{port}.log"));
        let mut process = Process {
            port,
            child: None,
            exits: 0,
            restart_at: None,
            drain_deadline: None,
            log,
            spec: spec.clone(),
            cpus,
        };
        self.start(&mut process)?;
        Ok(process)
    }

    fn start(&self, p: &mut Process) -> Result<(), String> {
        let open = || {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&p.log)
                .map_err(|e| format!("cannot open {}: {e}", p.log.display()))
        };
        let (out, err) = (open()?, open()?);
        let mut cmd = Command::new(&self.command);
        // The replica's settings are the ones given here, not whatever this process was
        // started with (its database, its listen address, its models).
        for (key, _) in std::env::vars_os() {
            if let Some(key) = key.to_str() {
                if key.starts_with("STARFIRE_") && key != "STARFIRE_CPU" {
                    cmd.env_remove(key);
                }
            }
        }
        cmd.env("STARFIRE_HOME", self.home.join(&p.spec.deployment_id))
            .env("STARFIRE_WORKER_TOKEN", &self.token)
            .env(
                "STARFIRE_KV_CACHE_MEMORY",
                p.spec.kv_cache_memory.to_string(),
            )
            .arg("worker")
            .arg("--listen")
            .arg(format!("{}:{}", self.host, p.port))
            .arg("--drain-timeout")
            .arg(self.drain_timeout.as_secs().to_string())
            .arg("--model")
            .arg(&p.spec.model_path)
            .stdin(std::process::Stdio::null())
            .stdout(out)
            .stderr(err)
            .kill_on_drop(true);
        if !p.cpus.is_empty() {
            cmd.env("RAYON_NUM_THREADS", p.cpus.len().to_string());
            let cpus = p.cpus.clone();
            // SAFETY: between fork and exec the closure only calls async-signal-safe libc
            // functions on a stack value (no allocation, no locks).
            unsafe {
                cmd.pre_exec(move || {
                    let mut set: libc::cpu_set_t = std::mem::zeroed();
                    for &cpu in &cpus {
                        libc::CPU_SET(cpu, &mut set);
                    }
                    if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0
                    {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", self.command.display()))?;
        tracing::info!(deployment = %p.spec.deployment_id, port = p.port, pid = child.id(),
            cpus = ?p.cpus, "deployment replica started");
        p.child = Some(child);
        p.restart_at = None;
        Ok(())
    }

    /// Reaps exited children; schedules or performs restarts of serving replicas.
    fn supervise(&self, replicas: &mut Replicas) {
        let now = Instant::now();
        for p in &mut replicas.serving {
            if let Some(child) = &mut p.child {
                if let Ok(Some(status)) = child.try_wait() {
                    p.exits += 1;
                    let backoff = Duration::from_secs(1 << (p.exits - 1).min(6)).min(MAX_BACKOFF);
                    tracing::warn!(deployment = %p.spec.deployment_id, port = p.port, %status,
                        exits = p.exits, restart_in_ms = backoff.as_millis() as u64,
                        "deployment replica exited");
                    p.child = None;
                    p.restart_at = Some(now + backoff);
                }
            }
            if p.child.is_none() && p.restart_at.is_some_and(|t| t <= now) {
                if let Err(e) = self.start(p) {
                    tracing::error!(deployment = %p.spec.deployment_id, error = %e,
                        "cannot restart a deployment replica");
                    p.restart_at = Some(now + MAX_BACKOFF);
                }
            }
        }
        replicas.draining.retain_mut(|p| {
            let Some(child) = &mut p.child else {
                return false;
            };
            if let Ok(Some(_)) = child.try_wait() {
                tracing::info!(deployment = %p.spec.deployment_id, port = p.port,
                    "deployment replica drained");
                return false;
            }
            if p.drain_deadline.is_some_and(|t| t <= now) {
                tracing::warn!(deployment = %p.spec.deployment_id, port = p.port,
                    "deployment replica did not drain in time; killed");
                let _ = child.start_kill();
            }
            true
        });
    }

    fn drain(&self, mut p: Process) -> Option<Process> {
        let child = p.child.as_ref()?;
        if let Some(pid) = child.id() {
            // SAFETY: `kill` has no memory effects; the pid is our own live child's.
            unsafe {
                libc::kill(pid as libc::pid_t, libc::SIGTERM);
            }
        }
        p.drain_deadline = Some(Instant::now() + self.drain_timeout + Duration::from_secs(5));
        Some(p)
    }
}

const MAX_BACKOFF: Duration = Duration::from_secs(60);

impl Driver for LocalDriver {
    fn apply(&self, spec: &ReplicaSpec, replicas: usize) -> BoxFuture<'_, Result<(), String>> {
        let result = (|| {
            let mut all = self.deployments.lock().unwrap();
            let set = all.entry(spec.deployment_id.clone()).or_default();
            self.supervise(set);
            while set.serving.len() > replicas {
                let p = set.serving.pop().expect("more than wanted");
                if let Some(p) = self.drain(p) {
                    set.draining.push(p);
                }
            }
            while all[&spec.deployment_id].serving.len() < replicas {
                let cpus = self.free_cpus(&all)?;
                let process = self.spawn(spec, cpus)?;
                all.get_mut(&spec.deployment_id)
                    .expect("entered above")
                    .serving
                    .push(process);
            }
            Ok(())
        })();
        Box::pin(async move { result })
    }

    fn remove(&self, deployment_id: &str) -> BoxFuture<'_, Result<(), String>> {
        let mut all = self.deployments.lock().unwrap();
        if let Some(set) = all.get_mut(deployment_id) {
            let serving = std::mem::take(&mut set.serving);
            for p in serving {
                if let Some(p) = self.drain(p) {
                    set.draining.push(p);
                }
            }
            self.supervise(set);
            if set.draining.is_empty() {
                all.remove(deployment_id);
            }
        }
        Box::pin(async { Ok(()) })
    }

    fn observe(&self, deployment_id: &str) -> BoxFuture<'_, Result<Observed, String>> {
        let (ports, draining, problem) = {
            let mut all = self.deployments.lock().unwrap();
            match all.get_mut(deployment_id) {
                None => (Vec::new(), 0, None),
                Some(set) => {
                    self.supervise(set);
                    let problem = set.serving.iter().find(|p| p.exits >= CRASH_LOOP).map(|p| {
                        format!(
                            "replica on port {} exited {} times; the end of its log: {}",
                            p.port,
                            p.exits,
                            log_tail(&p.log)
                        )
                    });
                    let ports: Vec<(u16, bool)> = set
                        .serving
                        .iter()
                        .map(|p| (p.port, p.child.is_some()))
                        .collect();
                    (ports, set.draining.len(), problem)
                }
            }
        };
        Box::pin(async move {
            let mut replicas = Vec::with_capacity(ports.len());
            for (port, alive) in ports {
                let ready = alive && probe_ready(&self.host, port).await;
                replicas.push(Replica {
                    url: self.url(port),
                    ready,
                });
            }
            Ok(Observed {
                replicas,
                draining,
                problem,
                detail: None,
            })
        })
    }
}

/// A port nothing listens on now.
fn free_port(host: &str) -> Result<u16, String> {
    let listener = std::net::TcpListener::bind((host, 0))
        .map_err(|e| format!("no free port on {host}: {e}"))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| e.to_string())
}

/// Whether `GET /ready` on `host:port` answers 200 within half a second.
pub async fn probe_ready(host: &str, port: u16) -> bool {
    let attempt = async {
        let mut stream = tokio::net::TcpStream::connect((host, port)).await.ok()?;
        stream
            .write_all(b"GET /ready HTTP/1.0\r\nHost: replica\r\n\r\n")
            .await
            .ok()?;
        let mut head = [0u8; 12];
        stream.read_exact(&mut head).await.ok()?;
        Some(head.starts_with(b"HTTP/1.") && &head[9..12] == b"200")
    };
    matches!(
        tokio::time::timeout(Duration::from_millis(500), attempt).await,
        Ok(Some(true))
    )
}

/// The last lines of a replica's log (at most 400 bytes), for a failure's reason.
fn log_tail(path: &Path) -> String {
    let text = std::fs::read(path).unwrap_or_default();
    let start = text.len().saturating_sub(400);
    let tail = String::from_utf8_lossy(&text[start..]);
    let tail = tail.trim();
    if tail.is_empty() {
        "(empty)".to_owned()
    } else {
        tail.replace('\n', " | ")
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn spec(id: &str) -> ReplicaSpec {
        ReplicaSpec {
            deployment_id: id.into(),
            name: id.into(),
            model_path: "/nonexistent.gguf".into(),
            kv_cache_memory: 1 << 20,
        }
    }

    /// A "worker" that only waits, whatever its arguments.
    fn sleeper(dir: &Path) -> PathBuf {
        let path = dir.join("fake-starfire");
        std::fs::write(&path, "#!/bin/sh\nexec sleep 30\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    fn pids(driver: &LocalDriver, id: &str) -> Vec<u32> {
        driver.deployments.lock().unwrap()[id]
            .serving
            .iter()
            .filter_map(|p| p.child.as_ref()?.id())
            .collect()
    }

    #[tokio::test]
    async fn pinned_replicas_hold_their_own_cpus_and_the_pool_runs_out() {
        let dir = tempfile::tempdir().unwrap();
        let driver = LocalDriver::new(
            sleeper(dir.path()),
            "127.0.0.1".into(),
            dir.path(),
            "token".into(),
            Duration::from_secs(1),
        )
        .pinned(vec![0], 1);
        driver.apply(&spec("dep_a"), 1).await.unwrap();
        let pid = pids(&driver, "dep_a")[0];
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let allowed = status
            .lines()
            .find(|l| l.starts_with("Cpus_allowed_list:"))
            .unwrap();
        assert_eq!(allowed.split_whitespace().last(), Some("0"), "{allowed}");
        // Read until it shows: the fake replica is a shell script that execs `sleep`, and
        // during that exec the process's environment reads as empty for a moment.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
            if environ
                .split(|&b| b == 0)
                .any(|v| v == b"RAYON_NUM_THREADS=1")
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "RAYON_NUM_THREADS=1 not in the environment"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // The only CPU is held: another deployment's replica cannot start.
        let refused = driver.apply(&spec("dep_b"), 1).await.unwrap_err();
        assert!(refused.contains("no free CPUs"), "{refused}");
        // Once the first is gone, its CPU is free again.
        driver.remove("dep_a").await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while driver.deployments.lock().unwrap().contains_key("dep_a") {
            assert!(Instant::now() < deadline, "the replica did not go");
            tokio::time::sleep(Duration::from_millis(50)).await;
            driver.remove("dep_a").await.unwrap();
        }
        driver.apply(&spec("dep_b"), 1).await.unwrap();
        assert_eq!(pids(&driver, "dep_b").len(), 1);
    }
}
