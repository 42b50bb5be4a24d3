//! The `local` driver: each replica is a `starfire worker` process on this host, on a free port
//! of `worker_host`, with its own KV cache and queue, its output appended to
//! `<home>/deployments/<id>/replica-<port>.log`.
//!
//! A replica that exits on its own is started again after a backoff (1 s, doubling, at most a
//! minute); one that has exited three times or more is reported as a problem (with the end of
//! its log), which fails a deployment still provisioning. Scaling down and stopping send SIGTERM,
//! so the worker finishes what it runs (its own drain), and SIGKILL after the drain timeout.
//! Every child is killed when the driver is dropped (`serve` ending).

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
            deployments: Mutex::new(HashMap::new()),
        }
    }

    fn url(&self, port: u16) -> String {
        if self.host.contains(':') {
            format!("http://[{}]:{port}", self.host)
        } else {
            format!("http://{}:{port}", self.host)
        }
    }

    fn spawn(&self, spec: &ReplicaSpec) -> Result<Process, String> {
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
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", self.command.display()))?;
        tracing::info!(deployment = %p.spec.deployment_id, port = p.port, pid = child.id(),
            "deployment replica started");
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
            while set.serving.len() < replicas {
                set.serving.push(self.spawn(spec)?);
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
