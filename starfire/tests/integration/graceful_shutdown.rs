//! SIGTERM during streams: `starfire serve` stops taking connections, lets the streams it runs
//! finish (every client gets all its tokens and `[DONE]`), exits within the deadline, and every
//! request's usage row is final with the tokens the client received.

use std::process::Command;
use std::time::{Duration, Instant};

use gateway::registry::DEFAULT_MODEL_ID;
use gateway::store::usage::UsageStatus;
use gateway::worker::pool::series_sum;
use serde_json::{json, Value};

use crate::e2e::{
    bootstrap_with, free_port, serve_on, starfire, terminate, usage_rows, with_default_model,
};
use crate::rate_limits_e2e::http;

const STREAMS: usize = 3;
const MAX_TOKENS: u64 = 48;

#[test]
fn sigterm_lets_running_streams_finish_with_final_usage() {
    let home = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut server = serve_on(with_default_model(starfire(home.path())), port);
    let keys = bootstrap_with(with_default_model(starfire(home.path())));
    let key = keys["api_key"].as_str().unwrap().to_owned();

    let streams: Vec<_> = (0..STREAMS)
        .map(|i| {
            let key = key.clone();
            std::thread::spawn(move || {
                let body = json!({"model": DEFAULT_MODEL_ID, "stream": true,
                    "stream_options": {"include_usage": true}, "max_tokens": MAX_TOKENS,
                    "ignore_eos": true, "temperature": 0,
                    "messages": [{"role": "user", "content": format!("Story number {i}.")}]});
                http(port, "POST", "/v1/chat/completions", Some(&key), &body)
            })
        })
        .collect();
    // Once every stream runs, the server is told to stop.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let text = http(port, "GET", "/metrics", None, &Value::Null).text;
        if series_sum(&text, "starfire:num_requests_running") >= STREAMS as f64 {
            break;
        }
        assert!(Instant::now() < deadline, "the streams never ran: {text}");
        std::thread::sleep(Duration::from_millis(20));
    }
    let stopping = Instant::now();
    let _ = Command::new("kill")
        .args(["-TERM", &server.0.id().to_string()])
        .status();

    for stream in streams {
        let reply = stream.join().unwrap();
        assert_eq!(reply.status, 200, "{}", reply.text);
        assert!(reply.text.contains("data: [DONE]"), "{}", reply.text);
        let usage = reply
            .text
            .lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .filter_map(|d| serde_json::from_str::<Value>(d).ok())
            .find(|e| e["usage"].is_object())
            .expect("a usage chunk");
        assert_eq!(usage["usage"]["completion_tokens"], MAX_TOKENS, "{usage}");
    }
    // It exits by itself, well within its 30 s of grace.
    let exited = terminate(&mut server);
    assert!(exited.success(), "{exited}");
    assert!(stopping.elapsed() < Duration::from_secs(30));

    let url = format!("sqlite://{}", home.path().join("starfire.db").display());
    let rows = usage_rows(&url, keys["tenant_id"].as_str().unwrap());
    let chats: Vec<_> = rows
        .iter()
        .filter(|r| r.completion_tokens == MAX_TOKENS)
        .collect();
    assert_eq!(chats.len(), STREAMS, "{rows:?}");
    for row in chats {
        assert_eq!(row.status, UsageStatus::Completed, "{row:?}");
    }
}
