//! The model out of the gateway's process: two real `starfire worker` processes, a gateway
//! whose model lists them under `workers`, and what must hold across the seam: the worker's
//! own routes refuse callers without its token and tokens outside the vocabulary; answers
//! (over REST and the WebSocket) and embeddings equal the in-process engine's; one tenant's
//! repeated prompt stays on one worker while new tenants spread; streamed usage is metered
//! exactly; a tenant's repeated prefix finds its cache through prefix affinity where
//! round-robin misses it; a client that leaves aborts the request on its worker; a worker
//! killed with `kill -9` mid-stream ends that stream with an error billed as received, costs
//! no later request, and rejoins the pool once restarted; a pool can come from DNS; a worker
//! sent SIGTERM finishes what it runs, then exits.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::SinkExt;
use gateway::registry::{ModelEntry, WorkerSettings, DEFAULT_MODEL_ID};
use gateway::store::usage::UsageStatus;
use gateway::worker::pool::series_sum as sum;
use gateway::worker::Routing;
use serde_json::{json, Value};

use crate::chat_ws::{answers, chat_body, connect, request_frame};
use crate::metering::{events, final_event};
use crate::rate_limits_e2e::{free_port, http, http_to, wait_until_up, Server};
use crate::support::{called_functions, Backend, TestApp};

const BIN: &str = env!("CARGO_BIN_EXE_starfire");
pub(crate) const TOKEN: &str = "worker-token-0123456789abcdefghij";

/// `starfire worker` on a free loopback port, once it is ready.
fn start_worker(home: &Path) -> (Server, u16) {
    start_worker_on(home, free_port())
}

/// `starfire worker` on `port`, once it is ready.
fn start_worker_on(home: &Path, port: u16) -> (Server, u16) {
    start_worker_at(home, "127.0.0.1", port)
}

/// `starfire worker` on `host:port` (any 127.x address is loopback), once it is ready.
pub(crate) fn start_worker_at(home: &Path, host: &str, port: u16) -> (Server, u16) {
    let mut cmd = Command::new(BIN);
    for (key, _) in std::env::vars() {
        if key.starts_with("STARFIRE_") {
            cmd.env_remove(key);
        }
    }
    let model = engine::model_cache::find_default_model()
        .expect("the default model is in the cache (`starfire model fetch`)");
    let child = cmd
        .env("STARFIRE_HOME", home)
        .env("STARFIRE_WORKER_TOKEN", TOKEN)
        .env("STARFIRE_KV_CACHE_MEMORY", (64u64 << 20).to_string())
        .args([
            "worker",
            "--listen",
            &format!("{host}:{port}"),
            "--drain-timeout",
            "60",
        ])
        .arg("--model")
        .arg(model)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut worker = Server(child);
    wait_until_up(&mut worker, host, port, "/ready", "starfire worker");
    (worker, port)
}

/// A worker's Prometheus text.
fn metrics(port: u16) -> String {
    http(port, "GET", "/metrics", None, &Value::Null).text
}

fn finished(port: u16) -> f64 {
    finished_at("127.0.0.1", port)
}

/// Requests the worker on `host:port` has finished.
pub(crate) fn finished_at(host: &str, port: u16) -> f64 {
    let text = http_to(host, port, "GET", "/metrics", None, &Value::Null).text;
    sum(&text, "starfire:request_success_total")
}

fn chat(max_tokens: u32, stream: bool) -> Value {
    json!({
        "model": DEFAULT_MODEL_ID,
        "messages": [{"role": "user", "content": "Name three colours."}],
        "max_tokens": max_tokens,
        "temperature": 0,
        "stream": stream,
        "stream_options": if stream { json!({"include_usage": true}) } else { Value::Null },
    })
}

/// Waits until `check` holds, for at most `secs` seconds.
fn eventually(secs: u64, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A gateway whose default model is served by the workers on `ports`.
async fn gateway_over(ports: &[u16], routing: Routing) -> TestApp {
    let app = TestApp::new(Backend::Sqlite).await;
    let entry = ModelEntry {
        workers: ports
            .iter()
            .map(|p| format!("http://127.0.0.1:{p}"))
            .collect(),
        routing,
        ..ModelEntry::from_model_path(None)
    };
    let settings = WorkerSettings {
        token: Some(TOKEN.to_owned()),
        ..Default::default()
    };
    let backend = gateway::registry::load(
        &[entry],
        gateway::registry::KvCacheMemory::set(64 << 20),
        &Default::default(),
        &settings,
    )
    .expect("a pool over the workers");
    let state = app.state.clone().with_inference(backend);
    app.sharing(state)
}

/// Six organizations each send a chat with a long system prompt of their own twice in a row
/// through `app`; returns the prompt tokens the repeats found cached.
async fn cached_on_repeats(app: &TestApp, label: &str) -> u64 {
    let passage =
        "The quick brown fox jumps over the lazy dog while the river runs on. ".repeat(24);
    let mut cached = 0;
    for org in 0..6 {
        let owner = app.signup(&format!("{label}-{org}@example.com")).await;
        let project = app.default_project(&owner.access).await;
        let (_, key) = app
            .create_key(&owner.access, &project, &["inference"])
            .await;
        for turn in 0..2 {
            let body = json!({
                "model": DEFAULT_MODEL_ID,
                "messages": [{"role": "system", "content": passage},
                             {"role": "user", "content": format!("Question {turn}?")}],
                "max_tokens": 2,
                "temperature": 0,
            });
            let got = app
                .post("/v1/chat/completions", Some(&key), body)
                .await
                .expect(200);
            assert!(
                got["usage"]["prompt_tokens"].as_u64().unwrap() > 300,
                "{got}"
            );
            if turn == 1 {
                cached += got["usage"]["prompt_tokens_details"]["cached_tokens"]
                    .as_u64()
                    .unwrap();
            }
        }
    }
    cached
}

/// A worker's own routes: its token, and token ids inside the vocabulary.
fn worker_routes_are_guarded(port: u16) {
    let body = json!({"model": DEFAULT_MODEL_ID, "prompt_token_ids": [1, 2, 3],
                      "params": {"max_tokens": 2}});
    let anonymous = http(port, "POST", "/v1/worker/generate", None, &body);
    assert_eq!(anonymous.status, 401, "{}", anonymous.text);
    let wrong = http(
        port,
        "POST",
        "/v1/worker/generate",
        Some("not-the-token"),
        &body,
    );
    assert_eq!(wrong.status, 401);
    let outside = json!({"model": DEFAULT_MODEL_ID, "prompt_token_ids": [1, 4_000_000_000u32],
                         "params": {"max_tokens": 2}});
    let refused = http(port, "POST", "/v1/worker/generate", Some(TOKEN), &outside);
    assert_eq!(refused.status, 400, "{}", refused.text);
    assert_eq!(
        refused.body["error"]["invalid_param"]["field"], "prompt_token_ids",
        "{}",
        refused.text
    );
    let ran = http(port, "POST", "/v1/worker/generate", Some(TOKEN), &body);
    assert_eq!(ran.status, 200, "{}", ran.text);
    let last: Value = serde_json::from_str(ran.text.lines().last().unwrap()).unwrap();
    assert_eq!(last["usage"]["prompt_tokens"], 3, "{}", ran.text);
    let models = http(port, "GET", "/v1/worker/models", Some(TOKEN), &Value::Null);
    assert_eq!(models.body["data"][0]["id"], DEFAULT_MODEL_ID);
    assert!(models.body["data"][0]["max_model_len"].as_u64().unwrap() > 0);
    let text = metrics(port);
    assert!(text.contains("vllm:num_requests_running{"), "{text}");
    assert!(text.contains("vllm:kv_cache_usage_perc{"), "{text}");
}

/// Opens a streamed chat on the live gateway, reads its first token chunk and leaves.
pub(crate) fn leave_after_first_chunk(port: u16, key: &str) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let body = chat(200, true).to_string();
    write!(
        stream,
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut reader = BufReader::new(stream);
    let mut chunks = 0;
    let mut line = String::new();
    while chunks < 2 {
        line.clear();
        assert!(reader.read_line(&mut line).unwrap() > 0, "the stream ended");
        if line.starts_with("data: {") {
            chunks += 1;
        }
    }
}

/// Streams a long chat from the live gateway on `port`, counting the tokens received (one
/// logprob each); once five have arrived, runs `kill`. Returns the completion's id, the tokens
/// received and whether the stream ended with an error event.
fn stream_while_killing(port: u16, key: &str, kill: impl FnOnce()) -> (String, usize, bool) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut body = chat(200, true);
    body["logprobs"] = json!(true);
    body["ignore_eos"] = json!(true);
    let body = body.to_string();
    write!(
        stream,
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let (mut id, mut tokens, mut errored) = (String::new(), 0, false);
    let mut kill = Some(kill);
    for line in BufReader::new(stream).lines() {
        let Ok(line) = line else { break };
        let Some(data) = line.strip_prefix("data: ") else {
            continue;
        };
        if data == "[DONE]" {
            break;
        }
        let event: Value = serde_json::from_str(data).unwrap();
        if event.get("error").is_some() {
            errored = true;
            continue;
        }
        if let Some(i) = event["id"].as_str() {
            id = i.to_owned();
        }
        for choice in event["choices"].as_array().into_iter().flatten() {
            tokens += choice["logprobs"]["content"].as_array().map_or(0, Vec::len);
        }
        if tokens >= 5 {
            if let Some(kill) = kill.take() {
                kill();
            }
        }
    }
    (id, tokens, errored)
}

#[actix_web::test]
async fn a_model_served_by_workers() {
    let homes = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let (mut first, port_a) = start_worker(homes[0].path());
    let (mut second, port_b) = start_worker(homes[1].path());
    worker_routes_are_guarded(port_a);

    let app = gateway_over(&[port_a, port_b], Routing::PrefixAffinity).await;
    let owner = app.signup("workers@example.com").await;
    let project = app.default_project(&owner.access).await;
    let (_, key) = app
        .create_key(&owner.access, &project, &["inference"])
        .await;
    let tenant = owner.tenant_id.clone();
    let reference = TestApp::new(Backend::Sqlite).await.with_model();
    let reference_key = reference.inference_key().await;
    let expected = reference
        .post(
            "/v1/chat/completions",
            Some(&reference_key),
            chat(12, false),
        )
        .await
        .expect(200);

    // The same greedy answer as in process; the same prompt of the same tenant stays on one
    // worker (where its prefix is cached).
    let before = (finished(port_a), finished(port_b));
    for _ in 0..6 {
        let got = app
            .post("/v1/chat/completions", Some(&key), chat(12, false))
            .await
            .expect(200);
        assert_eq!(
            got["choices"][0]["message"], expected["choices"][0]["message"],
            "{got}"
        );
        for count in ["prompt_tokens", "completion_tokens"] {
            assert_eq!(got["usage"][count], expected["usage"][count], "{got}");
        }
    }
    // A worker's success counter can lag the client's read of the answer (seen once in six
    // under load): wait briefly until all six are counted before judging where they ran.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let served = loop {
        let after = (finished(port_a), finished(port_b));
        let served = (after.0 - before.0, after.1 - before.1);
        if served.0 + served.1 >= 6.0 || std::time::Instant::now() > deadline {
            break served;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert!(
        served == (6.0, 0.0) || served == (0.0, 6.0),
        "one worker served the repeats: {served:?}"
    );

    // A streamed chat is metered as the client was told.
    let streamed = app
        .post("/v1/chat/completions", Some(&key), chat(9, true))
        .await
        .expect(200);
    let text = streamed.as_str().unwrap().to_owned();
    let last: Value = text
        .split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .filter(|d| d.starts_with('{'))
        .last()
        .map(|d| serde_json::from_str(d).unwrap())
        .unwrap();
    assert_eq!(last["usage"]["completion_tokens"], 9, "{text}");
    let row = final_event(&app, &tenant, last["id"].as_str().unwrap()).await;
    assert_eq!(row.completion_tokens, 9);
    assert_eq!(row.status, UsageStatus::Completed);

    // A structured output travels in the sampling parameters and the worker enforces it: the
    // same answer as in process.
    let mut body = chat(40, false);
    body["response_format"] = json!({"type": "json_schema", "json_schema": {"name": "c",
        "schema": {"type": "object", "properties": {"colour": {"enum": ["red", "green"]}},
                   "required": ["colour"], "additionalProperties": false}}});
    let want = reference
        .post("/v1/chat/completions", Some(&reference_key), body.clone())
        .await
        .expect(200);
    let got = app
        .post("/v1/chat/completions", Some(&key), body)
        .await
        .expect(200);
    assert_eq!(got["choices"][0]["message"], want["choices"][0]["message"]);
    let colour: Value =
        serde_json::from_str(got["choices"][0]["message"]["content"].as_str().unwrap()).unwrap();
    assert!(
        colour["colour"] == "red" || colour["colour"] == "green",
        "{got}"
    );

    // Tools: the gateway renders them into the prompt and the worker enforces the call grammar
    // that travels in the sampling parameters: the same calls as in process.
    let mut body = chat(60, false);
    body["messages"] = json!([{"role": "user", "content": "What is the weather in Paris?"}]);
    body["tools"] = json!([{"type": "function", "function": {"name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string", "maxLength": 20}},
                       "required": ["city"], "additionalProperties": false}}}]);
    body["tool_choice"] = json!("required");
    body["parallel_tool_calls"] = json!(false);
    let want = reference
        .post("/v1/chat/completions", Some(&reference_key), body.clone())
        .await
        .expect(200);
    let got = app
        .post("/v1/chat/completions", Some(&key), body)
        .await
        .expect(200);
    assert_eq!(called_functions(&got), called_functions(&want));
    assert_eq!(got["choices"][0]["finish_reason"], "tool_calls", "{got}");

    // Embeddings through a worker equal the in-process ones.
    let input = json!({"model": DEFAULT_MODEL_ID, "input": ["a red fox", "blue"]});
    let here = reference
        .post("/v1/embeddings", Some(&reference_key), input.clone())
        .await
        .expect(200);
    let there = app
        .post("/v1/embeddings", Some(&key), input)
        .await
        .expect(200);
    assert_eq!(there["data"], here["data"]);
    assert_eq!(there["usage"], here["usage"]);

    // A tenant's repeated prefix: prefix affinity sends the repeat where the prefix is cached;
    // round-robin sends it to the other worker, which has not seen it.
    let before = (finished(port_a), finished(port_b));
    let affine = cached_on_repeats(&app, "affine").await;
    let after = (finished(port_a), finished(port_b));
    let served = (after.0 - before.0, after.1 - before.1);
    assert!(
        served.0 >= 4.0 && served.1 >= 4.0,
        "new tenants spread over both workers: {served:?}"
    );
    let rotating = gateway_over(&[port_a, port_b], Routing::RoundRobin).await;
    let round_robin = cached_on_repeats(&rotating, "rotating").await;
    eprintln!(
        "cached prompt tokens on 6 repeats: prefix affinity {affine}, round-robin {round_robin}"
    );
    assert!(affine >= 6 * 256, "prefix affinity: {affine} cached tokens");
    assert!(
        round_robin * 4 < affine,
        "round-robin: {round_robin}, prefix affinity: {affine} cached tokens"
    );

    // A client that leaves mid-stream aborts its request on the worker.
    let server = app.serve();
    let port = server.port;

    // The chat WebSocket through the pool: the same greedy text as REST.
    let mut ws = connect(&server, Some(&key), "").await.expect("upgrade");
    ws.send(request_frame("w", &chat_body("Name three colours.", 12)))
        .await
        .unwrap();
    let got = answers(&mut ws, &["w"]).await;
    assert_eq!(got["w"].last["type"], "chat.done", "{:?}", got["w"].last);
    assert_eq!(
        got["w"].texts[0],
        expected["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
    );
    drop(ws);
    let leaving_key = key.clone();
    actix_web::rt::task::spawn_blocking(move || leave_after_first_chunk(port, &leaving_key))
        .await
        .unwrap();
    actix_web::rt::task::spawn_blocking(move || {
        eventually(20, "the abandoned request to end on its worker", || {
            sum(&metrics(port_a), "starfire:num_requests_running")
                + sum(&metrics(port_b), "starfire:num_requests_running")
                == 0.0
        })
    })
    .await
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let cancelled = loop {
        let rows = events(&app, &tenant).await;
        if let Some(row) = rows.iter().find(|r| r.status == UsageStatus::Cancelled) {
            break row.clone();
        }
        assert!(Instant::now() < deadline, "no cancelled row: {rows:?}");
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        cancelled.completion_tokens >= 1 && cancelled.completion_tokens < 200,
        "{cancelled:?}"
    );

    // kill -9 a worker mid-stream: the stream ends with an error event and is billed exactly
    // the tokens its client received.
    let solo = gateway_over(&[port_a], Routing::LeastLoaded).await;
    let solo_owner = solo.signup("solo@example.com").await;
    let solo_project = solo.default_project(&solo_owner.access).await;
    let (_, solo_key) = solo
        .create_key(&solo_owner.access, &solo_project, &["inference"])
        .await;
    let solo_server = solo.serve();
    let solo_port = solo_server.port;
    let (id, received, errored) = actix_web::rt::task::spawn_blocking(move || {
        stream_while_killing(solo_port, &solo_key, move || {
            first.0.kill().unwrap();
            let _ = first.0.wait();
        })
    })
    .await
    .unwrap();
    eprintln!("a worker killed mid-stream after {received} tokens reached the client");
    assert!(errored, "the broken stream ends with an error event");
    assert!((5..200).contains(&received), "{received} tokens received");
    let row = final_event(&solo, &solo_owner.tenant_id, &id).await;
    assert_eq!(row.completion_tokens, received as u64, "{row:?}");
    assert_ne!(row.status, UsageStatus::Completed, "{row:?}");
    drop(solo_server);

    // Every later request is served by the other worker.
    let before_b = finished(port_b);
    for _ in 0..4 {
        app.post("/v1/chat/completions", Some(&key), chat(4, false))
            .await
            .expect(200);
    }
    // The worker counts a request as finished just after its last byte: wait for the count.
    eventually(
        10,
        "4 more requests finished on the surviving worker",
        || finished(port_b) - before_b == 4.0,
    );

    // A pool found through DNS: `localhost` resolves to the surviving worker's address.
    let discovered = TestApp::new(Backend::Sqlite).await;
    let entry = ModelEntry {
        workers_dns: Some(format!("localhost:{port_b}")),
        ..ModelEntry::from_model_path(None)
    };
    let settings = WorkerSettings {
        token: Some(TOKEN.to_owned()),
        ..Default::default()
    };
    let backend = gateway::registry::load(
        &[entry],
        gateway::registry::KvCacheMemory::set(64 << 20),
        &Default::default(),
        &settings,
    )
    .expect("a pool from DNS");
    let discovered = discovered.sharing(discovered.state.clone().with_inference(backend));
    let dns_key = discovered.inference_key().await;
    let before_b = finished(port_b);
    discovered
        .post("/v1/chat/completions", Some(&dns_key), chat(4, false))
        .await
        .expect(200);
    // The worker counts a request once its stream has ended, which can be just after the
    // gateway has the answer.
    let deadline = Instant::now() + Duration::from_secs(5);
    while finished(port_b) - before_b < 1.0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(finished(port_b) - before_b, 1.0);

    // SIGTERM drains the other: the request it runs finishes, then it exits.
    let draining_key = key.clone();
    let long = json!({"model": DEFAULT_MODEL_ID, "prompt": "Once upon a time",
                      "max_tokens": 200, "ignore_eos": true, "temperature": 0});
    let running = std::thread::spawn(move || {
        http(port, "POST", "/v1/completions", Some(&draining_key), &long)
    });
    actix_web::rt::task::spawn_blocking(move || {
        eventually(20, "the request to run on the worker", || {
            sum(&metrics(port_b), "starfire:num_requests_running") >= 1.0
        })
    })
    .await
    .unwrap();
    let status = Command::new("kill")
        .args(["-TERM", &second.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    actix_web::rt::task::spawn_blocking(move || {
        eventually(10, "the draining worker to say it is not ready", || {
            http(port_b, "GET", "/ready", None, &Value::Null).status == 503
        })
    })
    .await
    .unwrap();
    let done = actix_web::rt::task::spawn_blocking(move || running.join().unwrap())
        .await
        .unwrap();
    assert_eq!(done.status, 200, "{}", done.text);
    assert_eq!(
        done.body["choices"][0]["finish_reason"], "length",
        "{}",
        done.text
    );
    assert_eq!(done.body["usage"]["completion_tokens"], 200);
    let exited = actix_web::rt::task::spawn_blocking(move || {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = second.0.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "the drained worker did not exit");
            std::thread::sleep(Duration::from_millis(50));
        }
    })
    .await
    .unwrap();
    assert!(exited.success(), "{exited}");

    // No worker left: a clear 503, not a hang.
    let refused = app
        .post("/v1/chat/completions", Some(&key), chat(4, false))
        .await
        .expect_error(503, None);
    assert_eq!(refused["code"], "server_overloaded", "{refused}");

    // The killed worker, restarted on its address, rejoins the pool once its cool-down ends.
    let (_restarted, _) = start_worker_on(homes[0].path(), port_a);
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let resp = app
            .post("/v1/chat/completions", Some(&key), chat(4, false))
            .await;
        if resp.status.as_u16() == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the restarted worker never rejoined"
        );
        actix_web::rt::time::sleep(Duration::from_millis(200)).await;
    }
    drop(server);
}
