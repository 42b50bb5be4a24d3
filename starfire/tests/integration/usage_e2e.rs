//! The exactly-once proof: two real `starfire serve` processes sharing PostgreSQL and
//! Redis, concurrent streamed requests of which some clients leave mid-stream, and a `kill -9`
//! of one replica mid-load. After it restarts (the orphan sweep closes the dead replica's
//! rows), the usage table has exactly one final row per accepted request; the surviving
//! replica billed exactly what its engine generated, less at most one step per aborted
//! request; completed requests are billed what their clients were told; and the killed
//! replica's requests are billed what their clients received, less at most one step (the
//! progress it journaled in Redis at every step).

use gateway::store::TenantId;
use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gateway::store::usage::{UsageEvent, UsageStatus};
use gateway::Store;
use serde_json::{json, Value};

use crate::rate_limits::RedisPrefix;
use crate::rate_limits_e2e::{free_port, http, serve_with, starfire};
use crate::support::{fresh_database, Backend};

const REQUESTS: usize = 40;
const MAX_TOKENS: u64 = 24;
/// A's streams are this many chunks in when it is killed (so that the killed replica's
/// requests have tokens to account for).
const TOKENS_BEFORE_KILL: u64 = 4;
/// Small heartbeat and orphan settings, so that the dead replica's rows close in seconds.
const FAST_SWEEP: [(&str, &str); 2] = [
    ("STARFIRE_USAGE_HEARTBEAT_SECS", "1"),
    ("STARFIRE_USAGE_ORPHAN_AFTER_SECS", "4"),
];

/// What one client saw of its streamed request.
#[derive(Debug, Default, Clone)]
struct Seen {
    port: u16,
    id: Option<String>,
    /// Chunks with a choice (each carries at least one generated token).
    token_chunks: u64,
    /// The `usage` chunk's completion tokens, when the stream reached its end.
    usage: Option<u64>,
    /// The client closed the connection on purpose.
    left: bool,
}

/// Reads one chunk of a `Transfer-Encoding: chunked` body; `None` at its end or on an error.
fn read_chunk(reader: &mut impl BufRead) -> Option<Vec<u8>> {
    let mut size = String::new();
    reader.read_line(&mut size).ok()?;
    let size = usize::from_str_radix(size.trim(), 16).ok()?;
    if size == 0 {
        return None;
    }
    let mut data = vec![0; size + 2];
    reader.read_exact(&mut data).ok()?;
    data.truncate(size);
    Some(data)
}

/// Streams one completion; the client leaves after `leave_after` token chunks when given.
/// `first` counts the clients that got their first token.
fn stream(port: u16, key: &str, leave_after: Option<u64>, first: &AtomicUsize) -> Seen {
    let mut seen = Seen {
        port,
        ..Seen::default()
    };
    let Ok(mut conn) = TcpStream::connect(("127.0.0.1", port)) else {
        return seen;
    };
    conn.set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let body = json!({
        "model": engine::model_cache::DefaultModel::NAME,
        "prompt": "Once upon a time",
        "max_tokens": MAX_TOKENS, "ignore_eos": true, "temperature": 0,
        "stream": true, "stream_options": {"include_usage": true},
    })
    .to_string();
    let sent = write!(
        conn,
        "POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {key}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    if sent.is_err() {
        return seen;
    }
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut status = String::new();
    if reader.read_line(&mut status).is_err() || !status.contains(" 200 ") {
        return seen;
    }
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(n) if n > 0 && line != "\r\n" => continue,
            _ => break,
        }
    }
    let mut pending = String::new();
    while let Some(chunk) = read_chunk(&mut reader) {
        pending.push_str(&String::from_utf8_lossy(&chunk));
        while let Some((event, rest)) = pending.split_once("\n\n") {
            let data = event.trim().strip_prefix("data: ").unwrap_or("").to_owned();
            pending = rest.to_owned();
            let Ok(v) = serde_json::from_str::<Value>(&data) else {
                continue;
            };
            seen.id = v["id"].as_str().map(str::to_owned).or(seen.id.take());
            if v["choices"].as_array().is_some_and(|c| !c.is_empty()) {
                seen.token_chunks += 1;
                if seen.token_chunks == TOKENS_BEFORE_KILL {
                    first.fetch_add(1, Ordering::SeqCst);
                }
            }
            if let Some(n) = v["usage"]["completion_tokens"].as_u64() {
                seen.usage = Some(n);
            }
        }
        if leave_after.is_some_and(|n| seen.token_chunks >= n) {
            seen.left = true;
            let _ = conn.shutdown(std::net::Shutdown::Both);
            return seen;
        }
    }
    seen
}

/// The sum of `starfire:generation_tokens_total` on a replica.
fn generated(port: u16) -> u64 {
    let metrics = {
        let mut conn = TcpStream::connect(("127.0.0.1", port)).unwrap();
        write!(
            conn,
            "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut raw = Vec::new();
        conn.read_to_end(&mut raw).unwrap();
        String::from_utf8_lossy(&raw).into_owned()
    };
    metrics
        .lines()
        .filter(|l| l.starts_with("starfire:generation_tokens_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// Every usage row of `tenant`, once none is in progress (the sweep closes the dead replica's).
async fn final_rows(store: &Store, tenant: &TenantId) -> Vec<UsageEvent> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let rows = store.usage_events(tenant, 0, i64::MAX).await.unwrap();
        if rows.iter().all(|r| r.status != UsageStatus::InProgress) {
            return rows;
        }
        assert!(
            Instant::now() < deadline,
            "rows still in progress: {:?}",
            rows.iter()
                .filter(|r| r.status == UsageStatus::InProgress)
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[test]
fn usage_is_exactly_once_through_disconnects_and_a_killed_replica() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (database_url, _db) = rt.block_on(fresh_database(Backend::Postgres));
    let prefix = RedisPrefix::new();
    let homes = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let port_a = free_port();
    let (mut a, _) = serve_with(
        homes[0].path(),
        &database_url,
        &prefix.0,
        port_a,
        &FAST_SWEEP,
    );
    let (_b, port_b) = serve_with(
        homes[1].path(),
        &database_url,
        &prefix.0,
        free_port(),
        &FAST_SWEEP,
    );
    let (tenant, key) = bootstrap_load_key(homes[0].path(), &database_url, &prefix.0, port_b);

    // Every third client leaves after 1 to 8 chunks; even requests go to A, odd ones to B.
    let streaming_on_a = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..REQUESTS)
        .map(|i| {
            let key = key.clone();
            let streaming_on_a = streaming_on_a.clone();
            std::thread::spawn(move || {
                let port = if i % 2 == 0 { port_a } else { port_b };
                let leave = (i % 3 == 0).then_some(1 + (i as u64 * 7) % 8);
                let unseen = AtomicUsize::new(0);
                let first = if port == port_a {
                    &*streaming_on_a
                } else {
                    &unseen
                };
                stream(port, &key, leave, first)
            })
        })
        .collect();
    // kill -9 A once half of its clients are streaming, a few tokens in.
    let deadline = Instant::now() + Duration::from_secs(60);
    while streaming_on_a.load(Ordering::SeqCst) < REQUESTS / 4 {
        assert!(Instant::now() < deadline, "A's streams did not start");
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(300));
    a.0.kill().expect("kill -9 replica A");
    let _ = a.0.wait();
    let seen: Vec<Seen> = clients.into_iter().map(|c| c.join().unwrap()).collect();
    // A comes back on the same database; the sweep closes what the dead process left.
    let (_a2, _) = serve_with(
        homes[0].path(),
        &database_url,
        &prefix.0,
        free_port(),
        &FAST_SWEEP,
    );

    let store = rt.block_on(Store::connect(&database_url)).unwrap();
    let rows = rt.block_on(final_rows(&store, &tenant));
    // Every request of B has ended (its rows are final) and its aborts reached its engine.
    std::thread::sleep(Duration::from_millis(500));
    let generated_b = generated(port_b);
    let by_id: HashMap<&str, &UsageEvent> =
        rows.iter().map(|r| (r.request_id.as_str(), r)).collect();
    assert_eq!(by_id.len(), rows.len(), "one row per request id");
    let seen_ids: HashSet<&str> = seen.iter().filter_map(|s| s.id.as_deref()).collect();
    assert_eq!(
        seen_ids.len(),
        seen.iter().filter(|s| s.id.is_some()).count()
    );
    // Every request a client saw accepted has its row; a row no client saw is one that A
    // admitted and died before answering.
    for s in seen.iter().filter(|s| s.id.is_some()) {
        assert!(by_id.contains_key(s.id.as_deref().unwrap()), "{s:?}");
    }
    for r in rows
        .iter()
        .filter(|r| !seen_ids.contains(r.request_id.as_str()))
    {
        assert_eq!(r.status, UsageStatus::Interrupted, "{r:?}");
    }
    assert!(rows.len() <= REQUESTS);
    let interrupted = rows
        .iter()
        .filter(|r| r.status == UsageStatus::Interrupted)
        .count();
    assert!(interrupted > 0, "A died with requests in flight: {rows:?}");

    billed_as_told(&seen, &by_id, (port_a, port_b), generated_b, interrupted);
}

/// Bootstraps an organization through the binary and creates a key with limits far above the
/// load (through the replica on `port`); returns the tenant and the key.
fn bootstrap_load_key(
    home: &Path,
    database_url: &str,
    prefix: &str,
    port: u16,
) -> (TenantId, Arc<str>) {
    let out = starfire(home, database_url, prefix)
        .args(["admin", "bootstrap", "--email", "once@example.com"])
        .args(["--password", "correct horse battery"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let boot: Value = serde_json::from_slice(&out.stdout).unwrap();
    let tenant = TenantId::from(boot["tenant_id"].as_str().unwrap());
    let created = http(
        port,
        "POST",
        &format!(
            "/v1/organization/projects/{}/api_keys",
            boot["project_id"].as_str().unwrap()
        ),
        boot["admin_key"].as_str(),
        &json!({"name": "load", "limits": {"rpm": 100000, "tpm": 10000000, "concurrency": 1000}}),
    );
    assert_eq!(created.status, 201, "{}", created.body);
    let key: Arc<str> = created.body["value"].as_str().unwrap().into();
    (tenant, key)
}

/// Each request's row against what its client saw: completed ones billed what the client was
/// told, swept ones to the last journaled step, abandoned ones every token received and what
/// was generated after; B billed what its engine generated, but for one step per abort.
fn billed_as_told(
    seen: &[Seen],
    by_id: &HashMap<&str, &UsageEvent>,
    ports: (u16, u16),
    generated_b: u64,
    interrupted: usize,
) {
    let (port_a, port_b) = ports;
    let mut billed_b = 0;
    let mut aborted_b = 0;
    let mut swept_checked = 0;
    let (mut swept_received, mut swept_billed) = (0, 0);
    for s in seen.iter().filter(|s| s.id.is_some()) {
        let row = by_id[s.id.as_deref().unwrap()];
        assert!(row.completion_tokens <= MAX_TOKENS, "{row:?}");
        // A request on A may have been closed by the sweep instead, when A died before its
        // final write committed: billed as of the step A last journaled.
        let swept = s.port == port_a && row.status == UsageStatus::Interrupted;
        // A completed request is billed what its client was told.
        if let Some(usage) = s.usage.filter(|_| !swept) {
            assert_eq!(row.status, UsageStatus::Completed, "{s:?} {row:?}");
            assert_eq!(row.completion_tokens, usage, "{s:?}");
            assert_eq!(usage, MAX_TOKENS);
        }
        // A request the sweep closed is billed to the step its replica journaled in Redis
        // before it died: what its client received, but for at most one step.
        if swept {
            assert!(row.completion_tokens + 1 >= s.token_chunks, "{s:?} {row:?}");
            swept_checked += 1;
            swept_received += s.token_chunks;
            swept_billed += row.completion_tokens;
        }
        // A client that left is billed every token it got, and what was generated after.
        if s.left && !swept {
            assert_eq!(row.status, UsageStatus::Cancelled, "{s:?} {row:?}");
            assert!(row.completion_tokens >= s.token_chunks, "{s:?} {row:?}");
        }
        if s.port == port_b {
            assert!(
                s.usage.is_some() || s.left,
                "B never failed a request: {s:?}"
            );
            billed_b += row.completion_tokens;
            aborted_b += u64::from(s.left);
        }
    }
    eprintln!(
        "rows {}, interrupted {interrupted} ({swept_checked} seen by their clients: \
         {swept_received} chunks received, {swept_billed} tokens billed), B billed {billed_b} of \
         {generated_b} generated, {aborted_b} aborted",
        by_id.len()
    );
    // What B's engine generated is what B billed, but for at most one step per abort.
    assert!(
        billed_b <= generated_b && generated_b <= billed_b + aborted_b,
        "B billed {billed_b}, generated {generated_b}, {aborted_b} aborted"
    );
}
