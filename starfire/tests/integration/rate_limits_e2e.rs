//! The proof: two real `starfire serve` processes sharing PostgreSQL and Redis, driven
//! together by 500 requests from one key. Across both replicas, the accepted requests in the
//! window equal the key's limit (within ±2); every other request gets 429 with the headers.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::rate_limits::{redis_url, RedisPrefix};
use crate::support::{fresh_database, Backend};

const BIN: &str = env!("CARGO_BIN_EXE_starfire");
const REQUESTS: usize = 500;
const CLIENTS: usize = 25;

pub(crate) use crate::e2e::{free_port, Server};

pub struct Reply {
    pub status: u16,
    pub headers: HashMap<String, String>,
    pub body: Value,
    /// The body as text (de-chunked).
    pub text: String,
}

/// A body sent with `Transfer-Encoding: chunked`, joined.
fn dechunk(mut raw: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = raw.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        raw = rest[n..].strip_prefix("\r\n").unwrap_or(&rest[n..]);
    }
    out
}

/// A minimal HTTP/1.1 exchange, so the test depends on no HTTP client crate.
pub fn http(port: u16, method: &str, path: &str, token: Option<&str>, body: &Value) -> Reply {
    http_to("127.0.0.1", port, method, path, token, body)
}

/// `http` to `host:port`.
pub fn http_to(
    host: &str,
    port: u16,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &Value,
) -> Reply {
    let mut stream = TcpStream::connect((host, port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let payload = if body.is_null() {
        String::new()
    } else {
        body.to_string()
    };
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}Content-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{payload}",
        payload.len()
    )
    .unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).expect("read the reply");
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers: HashMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let text = if headers.get("transfer-encoding").map(String::as_str) == Some("chunked") {
        dechunk(body)
    } else {
        body.to_owned()
    };
    Reply {
        status,
        headers,
        body: serde_json::from_str(&text).unwrap_or(Value::Null),
        text,
    }
}

pub fn starfire(home: &Path, database_url: &str, prefix: &str) -> Command {
    let mut cmd = Command::new(BIN);
    for (key, _) in std::env::vars() {
        if key.starts_with("STARFIRE_") {
            cmd.env_remove(key);
        }
    }
    let model = engine::model_cache::find_default_model()
        .expect("the default model is in the cache (`starfire model fetch`)");
    cmd.env("STARFIRE_HOME", home)
        .env("STARFIRE_DATABASE_URL", database_url)
        .env("STARFIRE_REDIS_URL", redis_url())
        .env("STARFIRE_RATE_LIMIT_KEY_PREFIX", prefix)
        .env("STARFIRE_RATE_LIMIT_REDIS_FAILURE", "closed")
        .env("STARFIRE_MODEL_PATH", model)
        .env("STARFIRE_KV_CACHE_MEMORY", (64u64 << 20).to_string());
    cmd
}

fn serve(home: &Path, database_url: &str, prefix: &str) -> (Server, u16) {
    serve_with(home, database_url, prefix, free_port(), &[])
}

/// `starfire serve` on `port` with more `STARFIRE_*` settings; returns once it answers.
pub fn serve_with(
    home: &Path,
    database_url: &str,
    prefix: &str,
    port: u16,
    env: &[(&str, &str)],
) -> (Server, u16) {
    let mut cmd = starfire(home, database_url, prefix);
    cmd.envs(env.iter().copied());
    let mut server = Server(
        cmd.env("STARFIRE_LISTEN", format!("127.0.0.1:{port}"))
            .arg("serve")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_until_up(&mut server, "127.0.0.1", port, "/healthz", "starfire serve");
    (server, port)
}

/// Waits (two minutes at most) until the process `server` answers 200 on `host:port` `path`;
/// panics if it exits first.
pub fn wait_until_up(server: &mut Server, host: &str, port: u16, path: &str, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if TcpStream::connect((host, port)).is_ok()
            && http_to(host, port, "GET", path, None, &Value::Null).status == 200
        {
            return;
        }
        if let Ok(Some(status)) = server.0.try_wait() {
            panic!("{what} exited early: {status}");
        }
        assert!(Instant::now() < deadline, "{what} did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Starts two replicas on one fresh PostgreSQL schema and one Redis prefix, creates a key with
/// `limits`, sends REQUESTS cheap completions alternating between the replicas from CLIENTS
/// threads at once, and returns the replies.
fn drive_two_replicas(limits: Value) -> Vec<Reply> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (database_url, _db) = rt.block_on(fresh_database(Backend::Postgres));
    let prefix = RedisPrefix::new();
    let homes = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let (_a, port_a) = serve(homes[0].path(), &database_url, &prefix.0);
    let (_b, port_b) = serve(homes[1].path(), &database_url, &prefix.0);

    let out = starfire(homes[0].path(), &database_url, &prefix.0)
        .args(["admin", "bootstrap", "--email", "load@example.com"])
        .args(["--password", "correct horse battery"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let boot: Value = serde_json::from_slice(&out.stdout).unwrap();
    let created = http(
        port_b,
        "POST",
        &format!(
            "/v1/organization/projects/{}/api_keys",
            boot["project_id"].as_str().unwrap()
        ),
        boot["admin_key"].as_str(),
        &json!({"name": "load", "limits": limits}),
    );
    assert_eq!(created.status, 201, "{}", created.body);
    let key: Arc<str> = created.body["value"].as_str().unwrap().into();

    let request = json!({
        "model": engine::model_cache::DefaultModel::NAME,
        "prompt": [1, 2, 3, 4, 5, 6, 7, 8, 9],
        "max_tokens": 1, "ignore_eos": true, "temperature": 0,
    });
    let started = Instant::now();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let key = key.clone();
            let request = request.clone();
            std::thread::spawn(move || {
                (c..REQUESTS)
                    .step_by(CLIENTS)
                    .map(|i| {
                        let port = if i % 2 == 0 { port_a } else { port_b };
                        http(port, "POST", "/v1/completions", Some(&key), &request)
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let replies: Vec<Reply> = clients
        .into_iter()
        .flat_map(|c| c.join().unwrap())
        .collect();
    assert!(
        started.elapsed() < Duration::from_secs(50),
        "the load must fit in one window to say anything: {:?}",
        started.elapsed()
    );
    assert_eq!(replies.len(), REQUESTS);
    replies
}

fn duration_format(value: &str) -> bool {
    // OpenAI's: `20ms`, `1s`, `1.5s`, `6m0s`, `1h2m3s`.
    let rest = value
        .strip_suffix("ms")
        .filter(|v| v.bytes().all(|b| b.is_ascii_digit()));
    if rest.is_some_and(|v| !v.is_empty()) {
        return true;
    }
    let Some(body) = value.strip_suffix('s') else {
        return false;
    };
    let body = body.split_once('h').map_or(body, |(h, r)| {
        if h.bytes().all(|b| b.is_ascii_digit()) {
            r
        } else {
            "x"
        }
    });
    let body = body.split_once('m').map_or(body, |(m, r)| {
        if m.bytes().all(|b| b.is_ascii_digit()) {
            r
        } else {
            "x"
        }
    });
    !body.is_empty() && body.parse::<f64>().is_ok()
}

/// Checks the replies: `limit` accepted (±2), the rest refused on `kind` with the headers.
fn check(replies: &[Reply], kind: &str, limit_header: &str, limit: u64) {
    let accepted = replies.iter().filter(|r| r.status == 200).count();
    let refused = replies.iter().filter(|r| r.status == 429).count();
    let others: Vec<_> = replies
        .iter()
        .filter(|r| r.status != 200 && r.status != 429)
        .map(|r| (r.status, r.body.to_string()))
        .take(3)
        .collect();
    assert!(others.is_empty(), "{others:?}");
    eprintln!(
        "{kind}: {accepted} accepted, {refused} refused of {}",
        replies.len()
    );
    assert!((98..=102).contains(&accepted), "accepted {accepted}");
    for r in replies {
        assert_eq!(
            r.headers.get(limit_header).map(String::as_str),
            Some(limit.to_string().as_str())
        );
        for dim in ["requests", "tokens"] {
            let reset = &r.headers[&format!("x-ratelimit-reset-{dim}")];
            assert!(duration_format(reset), "{reset}");
            let remaining: u64 = r.headers[&format!("x-ratelimit-remaining-{dim}")]
                .parse()
                .unwrap();
            let limit: u64 = r.headers[&format!("x-ratelimit-limit-{dim}")]
                .parse()
                .unwrap();
            assert!(remaining <= limit);
        }
        if r.status == 429 {
            let retry: u64 = r.headers["retry-after"].parse().unwrap();
            assert!((1..=60).contains(&retry), "{retry}");
            assert_eq!(r.body["error"]["code"], "rate_limit_exceeded", "{}", r.body);
            assert_eq!(r.body["error"]["type"], kind, "{}", r.body);
        } else {
            assert_eq!(r.body["usage"]["total_tokens"], 10, "{}", r.body);
        }
    }
}

#[test]
fn two_replicas_share_one_requests_per_minute_limit() {
    let replies = drive_two_replicas(json!({"rpm": 100, "concurrency": 1000}));
    check(&replies, "requests", "x-ratelimit-limit-requests", 100);
    assert!(replies
        .iter()
        .filter(|r| r.status == 429)
        .all(|r| r.headers["x-ratelimit-remaining-requests"] == "0"));
}

#[test]
fn two_replicas_share_one_tokens_per_minute_limit() {
    // Each request reserves and uses 10 tokens (9 prompt ids, 1 generated): 1000 TPM is 100.
    let replies = drive_two_replicas(json!({"rpm": 100000, "tpm": 1000, "concurrency": 1000}));
    check(&replies, "tokens", "x-ratelimit-limit-tokens", 1000);
}
