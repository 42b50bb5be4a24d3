//! SIGTERM during streams: `starfire serve` stops taking connections, lets the streams it runs
//! finish (every client gets all its tokens and `[DONE]`), exits within the deadline, and every
//! request's usage row is final with the tokens the client received.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use gateway::registry::DEFAULT_MODEL_ID;
use gateway::store::usage::UsageStatus;
use gateway::worker::pool::series_sum;
use gateway::Store;
use serde_json::{json, Value};

use crate::e2e::{bootstrap_with, free_port, starfire, Server};
use crate::rate_limits_e2e::{http, wait_until_up};

const STREAMS: usize = 3;
const MAX_TOKENS: u64 = 48;

#[test]
fn sigterm_lets_running_streams_finish_with_final_usage() {
    let model = engine::model_cache::find_default_model()
        .expect("the default model is cached (`starfire model fetch`)");
    let home = tempfile::tempdir().unwrap();
    let port = free_port();
    let with_env = |mut cmd: Command| {
        cmd.env("STARFIRE_MODEL_PATH", &model)
            .env("STARFIRE_KV_CACHE_MEMORY", (64u64 << 20).to_string());
        cmd
    };
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
    let keys = bootstrap_with(with_env(starfire(home.path())));
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
    let status = Command::new("kill")
        .args(["-TERM", &server.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());

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
    let exited = loop {
        if let Some(status) = server.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            stopping.elapsed() < Duration::from_secs(40),
            "still running 40 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(exited.success(), "{exited}");

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let url = format!("sqlite://{}", home.path().join("starfire.db").display());
    let store = rt.block_on(Store::connect(&url)).unwrap();
    let tenant = keys["tenant_id"].as_str().unwrap().into();
    let rows = rt
        .block_on(store.usage_events(&tenant, 0, i64::MAX))
        .unwrap();
    let chats: Vec<_> = rows
        .iter()
        .filter(|r| r.completion_tokens == MAX_TOKENS)
        .collect();
    assert_eq!(chats.len(), STREAMS, "{rows:?}");
    for row in chats {
        assert_eq!(row.status, UsageStatus::Completed, "{row:?}");
    }
}
