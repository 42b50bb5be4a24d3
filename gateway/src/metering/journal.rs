//! Per-step progress of in-flight requests, journaled in Redis when `redis_url` is set, so that
//! a replica killed mid-stream is billed the tokens it generated up to its last engine step,
//! not only those of its last heartbeat (`heartbeat_secs`, seconds apart).
//!
//! Every delta a meter counts queues `(request id, tokens so far)`. One writer task per process
//! coalesces what is queued (the newest count of each request) into one pipeline of
//! `SET <prefix><request id> <tokens> EX <ttl>`, and a request's key is deleted when its usage
//! is finalized. Nothing on the request path waits for Redis: the journal trails the stream by
//! the writer's round trip, far less than one engine step on a nearby Redis. The orphan sweep
//! bills the larger of the heartbeat's count and the journal's (`Metering::sweep_orphans`).
//! Without Redis (one replica) the heartbeat alone serves; when Redis fails the journal is
//! skipped (logged) and the heartbeat still bounds what is lost.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tokio::sync::mpsc;

use crate::redis_conn::LazyRedis;

/// Where the counts live: `<prefix><request id>`.
pub const KEY_PREFIX: &str = "starfire:usage:progress:";

enum Entry {
    Progress(String, u64),
    Forget(String),
}

/// The journal of one process. Cheap to call from any thread.
pub struct ProgressJournal {
    redis: LazyRedis,
    /// Seconds a count outlives its request's last step (well past the orphan sweep).
    ttl_secs: u64,
    /// The writer's queue, started on first use on the runtime of that call.
    queue: OnceLock<mpsc::UnboundedSender<Entry>>,
    /// Failures already logged (one line per burst, not per step).
    failing: Arc<Mutex<bool>>,
}

impl std::fmt::Debug for ProgressJournal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProgressJournal").finish_non_exhaustive()
    }
}

impl ProgressJournal {
    pub fn new(url: &str, timeout: Duration, orphan_after_secs: u64) -> redis::RedisResult<Self> {
        Ok(ProgressJournal {
            redis: LazyRedis::open(url, timeout)?,
            ttl_secs: (orphan_after_secs * 10).max(3600),
            queue: OnceLock::new(),
            failing: Arc::new(Mutex::new(false)),
        })
    }

    fn send(&self, entry: Entry) {
        let queue = self.queue.get_or_init(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            match tokio::runtime::Handle::try_current() {
                Ok(runtime) => {
                    runtime.spawn(write_loop(
                        rx,
                        self.redis.clone(),
                        self.ttl_secs,
                        self.failing.clone(),
                    ));
                }
                // No runtime (a drop on a plain thread): nothing is journaled.
                Err(_) => drop(rx),
            }
            tx
        });
        let _ = queue.send(entry);
    }

    /// Records that `request_id` has generated `tokens` so far.
    pub fn progress(&self, request_id: &str, tokens: u64) {
        self.send(Entry::Progress(request_id.to_owned(), tokens));
    }

    /// Drops a finalized request's count.
    pub fn forget(&self, request_id: &str) {
        self.send(Entry::Forget(request_id.to_owned()));
    }

    /// The journaled counts of `request_ids` (those it has); empty when Redis fails.
    pub async fn read(&self, request_ids: &[String]) -> HashMap<String, u64> {
        if request_ids.is_empty() {
            return HashMap::new();
        }
        let keys: Vec<String> = request_ids
            .iter()
            .map(|id| format!("{KEY_PREFIX}{id}"))
            .collect();
        let read = async {
            let mut conn = self.redis.connection().await?;
            let values: Vec<Option<u64>> =
                redis::cmd("MGET").arg(&keys).query_async(&mut conn).await?;
            Ok::<_, redis::RedisError>(values)
        };
        match tokio::time::timeout(self.redis.timeout() * 4, read).await {
            Ok(Ok(values)) => request_ids
                .iter()
                .zip(values)
                .filter_map(|(id, v)| v.map(|v| (id.clone(), v)))
                .collect(),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "cannot read the usage progress journal; billing orphans as of their heartbeat");
                HashMap::new()
            }
            Err(_) => {
                tracing::warn!(
                    "the usage progress journal timed out; billing orphans as of their heartbeat"
                );
                HashMap::new()
            }
        }
    }
}

async fn write_loop(
    mut rx: mpsc::UnboundedReceiver<Entry>,
    redis: LazyRedis,
    ttl_secs: u64,
    failing: Arc<Mutex<bool>>,
) {
    while let Some(first) = rx.recv().await {
        // Everything queued meanwhile goes in the same pipeline; a request's newest count wins.
        let mut latest: HashMap<String, Option<u64>> = HashMap::new();
        let mut take = |entry: Entry| match entry {
            Entry::Progress(id, n) => {
                let slot = latest.entry(id).or_insert(Some(0));
                if let Some(old) = slot {
                    *old = (*old).max(n);
                }
            }
            Entry::Forget(id) => {
                latest.insert(id, None);
            }
        };
        take(first);
        while let Ok(entry) = rx.try_recv() {
            take(entry);
        }
        let mut pipe = redis::pipe();
        for (id, tokens) in &latest {
            let key = format!("{KEY_PREFIX}{id}");
            match tokens {
                Some(n) => pipe
                    .cmd("SET")
                    .arg(key)
                    .arg(n)
                    .arg("EX")
                    .arg(ttl_secs)
                    .ignore(),
                None => pipe.cmd("DEL").arg(key).ignore(),
            };
        }
        let sent = tokio::time::timeout(redis.timeout(), async {
            let mut conn = redis.connection().await?;
            pipe.query_async::<()>(&mut conn).await
        })
        .await;
        let ok = matches!(sent, Ok(Ok(())));
        let mut was_failing = failing.lock().unwrap_or_else(|e| e.into_inner());
        if !ok && !*was_failing {
            match sent {
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "cannot journal usage progress in Redis; the heartbeat still records it")
                }
                _ => tracing::warn!(
                    "journaling usage progress in Redis timed out; the heartbeat still records it"
                ),
            }
        } else if ok && *was_failing {
            tracing::info!("journaling usage progress in Redis again");
        }
        *was_failing = !ok;
    }
}
