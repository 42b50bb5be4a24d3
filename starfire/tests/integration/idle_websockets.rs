//! 1,000 idle chat WebSockets on the real `starfire serve`: its resident memory grows by a
//! bounded amount per socket, and it goes on answering HTTP requests and a chat over one of the
//! sockets while they are open.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use crate::e2e::{bootstrap_with, free_port, serve_on, starfire, with_default_model};
use crate::rate_limits_e2e::http;

const SOCKETS: usize = 1000;
/// What 1,000 idle sockets may add to the server's resident memory.
const MAX_GROWTH_BYTES: u64 = 64 << 20;

fn resident_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS");
    kib * 1024
}

#[test]
fn a_thousand_idle_websockets_stay_cheap_and_the_server_answers() {
    let home = tempfile::tempdir().unwrap();
    let port = free_port();
    let server = serve_on(with_default_model(starfire(home.path())), port);
    let keys = bootstrap_with(with_default_model(starfire(home.path())));
    let key = keys["api_key"].as_str().unwrap().to_owned();
    let chat = json!({"model": "smollm2-135m-instruct", "max_tokens": 4, "temperature": 0,
                      "messages": [{"role": "user", "content": "Hi"}]});
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let open = |n: usize| {
        let key = key.clone();
        rt.block_on(async move {
            let mut sockets = Vec::with_capacity(n);
            for _ in 0..n {
                let mut request = format!("ws://127.0.0.1:{port}/v1/chat/ws")
                    .into_client_request()
                    .unwrap();
                request
                    .headers_mut()
                    .insert("authorization", format!("Bearer {key}").parse().unwrap());
                let (ws, _) = tokio_tungstenite::connect_async(request)
                    .await
                    .expect("upgrade");
                sockets.push(ws);
            }
            sockets
        })
    };
    // Warm up (first socket, first chat), then measure from there.
    let warm = open(1);
    assert_eq!(
        http(port, "POST", "/v1/chat/completions", Some(&key), &chat).status,
        200
    );
    let pid = server.0.id();
    let before = resident_bytes(pid);

    let started = Instant::now();
    let mut sockets = open(SOCKETS);
    let opened_in = started.elapsed();
    std::thread::sleep(Duration::from_millis(500));
    let after = resident_bytes(pid);
    let growth = after.saturating_sub(before);
    eprintln!(
        "{SOCKETS} idle sockets opened in {opened_in:?}: resident {} MiB -> {} MiB \
         ({} KiB per socket)",
        before >> 20,
        after >> 20,
        growth / 1024 / SOCKETS as u64
    );
    assert!(
        growth < MAX_GROWTH_BYTES,
        "{SOCKETS} idle sockets took {} MiB",
        growth >> 20
    );

    // The server answers HTTP, and a chat over the last socket, while they are open.
    let answered = Instant::now();
    assert_eq!(
        http(port, "GET", "/healthz", None, &Value::Null).status,
        200
    );
    let reply = http(port, "POST", "/v1/chat/completions", Some(&key), &chat);
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert!(answered.elapsed() < Duration::from_secs(20));
    let last = sockets.last_mut().unwrap();
    rt.block_on(async {
        let mut frame = chat.clone();
        frame["type"] = json!("chat.request");
        frame["id"] = json!("r1");
        last.send(Message::text(frame.to_string())).await.unwrap();
        loop {
            let Some(Ok(message)) = tokio::time::timeout(Duration::from_secs(30), last.next())
                .await
                .expect("an answer over the socket within 30 s")
            else {
                panic!("the socket closed");
            };
            let Message::Text(text) = message else {
                continue;
            };
            let event: Value = serde_json::from_str(&text).unwrap();
            match event["type"].as_str() {
                Some("chat.done") => break,
                Some("chat.delta") => {}
                _ => panic!("{event}"),
            }
        }
    });
    drop(sockets);
    drop(warm);
    assert_eq!(
        http(port, "GET", "/healthz", None, &Value::Null).status,
        200
    );
}
