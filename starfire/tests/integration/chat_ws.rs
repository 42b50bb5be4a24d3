//! Chat over a WebSocket, against a real server on a loopback port with the real model, on
//! SQLite and PostgreSQL: many requests per socket, cancel, concurrency, bad frames, tickets,
//! keepalive and idle timeout, and output equal to the REST route's.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use gateway::registry::DEFAULT_MODEL_ID;
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use gateway::inference::InProcessBackend;

use crate::support::{served_model, LiveServer, TestApp};

pub(crate) type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

on_both_backends!(
    three_requests_on_one_socket_with_one_cancelled_leave_the_kv_pool_free,
    concurrent_requests_stream_the_same_text_as_rest,
    bad_frames_get_error_frames_and_the_socket_lives_on,
    tickets_work_once_and_not_after_they_expire,
    closing_the_socket_aborts_its_generations,
    idle_sockets_are_pinged_then_closed,
    a_socket_runs_at_most_its_cap_of_requests_at_once,
);

/// A chat body as REST takes it: greedy, so transports can be compared.
pub(crate) fn chat_body(prompt: &str, max_tokens: u32) -> Value {
    json!({
        "model": DEFAULT_MODEL_ID,
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": max_tokens,
        "temperature": 0,
    })
}

/// `body` as a `chat.request` frame with `id`.
pub(crate) fn request_frame(id: &str, body: &Value) -> Message {
    let mut frame = body.clone();
    frame["type"] = json!("chat.request");
    frame["id"] = json!(id);
    Message::text(frame.to_string())
}

fn url(server: &LiveServer, query: &str) -> String {
    format!("ws://127.0.0.1:{}/v1/chat/ws{query}", server.port)
}

pub(crate) async fn connect(
    server: &LiveServer,
    key: Option<&str>,
    query: &str,
) -> Result<Ws, WsError> {
    let mut request = url(server, query).into_client_request()?;
    if let Some(key) = key {
        request.headers_mut().insert(
            "authorization",
            format!("Bearer {key}").parse().expect("header value"),
        );
    }
    tokio_tungstenite::connect_async(request)
        .await
        .map(|(ws, _)| ws)
}

/// The HTTP status and OpenAI error body of a refused upgrade.
async fn refused(server: &LiveServer, key: Option<&str>, query: &str) -> (u16, Value) {
    match connect(server, key, query).await {
        Err(WsError::Http(response)) => {
            let body = response.body().clone().unwrap_or_default();
            (
                response.status().as_u16(),
                serde_json::from_slice(&body).unwrap_or(Value::Null),
            )
        }
        Err(other) => panic!("expected an HTTP refusal, got {other}"),
        Ok(_) => panic!("the upgrade was accepted"),
    }
}

/// A backend of the test's own (sharing the loaded weights), so its metrics show only this
/// test's requests.
fn own_backend() -> Arc<InProcessBackend> {
    Arc::new(
        InProcessBackend::start(
            DEFAULT_MODEL_ID,
            served_model().engine_model().clone(),
            64 << 20,
        )
        .expect("start an engine loop"),
    )
}

/// The next text frame as JSON (answering nothing: tungstenite answers pings itself).
async fn next_frame(ws: &mut Ws) -> Value {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(60), ws.next())
            .await
            .expect("a frame within a minute")
            .expect("the socket is open")
            .expect("a valid frame");
        match message {
            Message::Text(text) => return serde_json::from_str(&text).expect("a JSON frame"),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("unexpected frame {other:?}"),
        }
    }
}

/// What a request streamed: its text per choice, its last frame, and how many deltas.
#[derive(Debug, Default, Clone)]
pub(crate) struct Answer {
    pub texts: Vec<String>,
    pub deltas: usize,
    /// Every `chat.delta` frame, in order.
    pub frames: Vec<Value>,
    pub last: Value,
}

/// Reads frames until every id in `ids` has its last frame (`chat.done` or `error`).
pub(crate) async fn answers(ws: &mut Ws, ids: &[&str]) -> HashMap<String, Answer> {
    let mut out: HashMap<String, Answer> = HashMap::new();
    let mut open: Vec<&str> = ids.to_vec();
    while !open.is_empty() {
        let frame = next_frame(ws).await;
        let id = frame["id"].as_str().unwrap_or_else(|| panic!("{frame}"));
        assert!(
            open.contains(&id),
            "a frame for {id} after its end: {frame}"
        );
        let answer = out.entry(id.to_owned()).or_default();
        match frame["type"].as_str() {
            Some("chat.delta") => {
                let index = frame["index"].as_u64().unwrap() as usize;
                if answer.texts.len() <= index {
                    answer.texts.resize(index + 1, String::new());
                }
                let content = frame["delta"]["content"].as_str();
                assert!(
                    content.is_some() || frame["delta"]["tool_calls"].is_array(),
                    "{frame}"
                );
                answer.texts[index].push_str(content.unwrap_or_default());
                answer.deltas += 1;
                answer.frames.push(frame.clone());
            }
            Some("chat.done") | Some("error") => {
                answer.last = frame.clone();
                open.retain(|o| *o != id);
            }
            _ => panic!("unexpected frame {frame}"),
        }
    }
    out
}

async fn rest_answer(app: &TestApp, key: &str, body: &Value) -> Value {
    app.post("/v1/chat/completions", Some(key), body.clone())
        .await
        .expect(200)
}

/// Waits (at most `within`) until the scheduler runs nothing and its KV pool is empty.
async fn until_idle_and_free(backend: &InProcessBackend, within: Duration) {
    let started = Instant::now();
    loop {
        let s = backend.metrics().scheduler;
        if s.num_requests_running == 0
            && s.num_requests_waiting == 0
            && s.kv_cache_usage_perc == 0.0
        {
            return;
        }
        assert!(
            started.elapsed() < within,
            "still busy after {within:?}: {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn three_requests_on_one_socket_with_one_cancelled_leave_the_kv_pool_free(app: TestApp) {
    let backend = own_backend();
    let mut app = app;
    app.state = app.state.with_inference(backend.clone());
    let key = app.inference_key().await;
    let server = app.serve();
    let mut ws = connect(&server, Some(&key), "").await.expect("upgrade");

    let first = chat_body("What is the capital of France?", 8);
    ws.send(request_frame("one", &first)).await.unwrap();
    let one = answers(&mut ws, &["one"]).await.remove("one").unwrap();
    assert_eq!(one.last["type"], "chat.done", "{:?}", one.last);
    assert_eq!(one.last["usage"]["completion_tokens"], 8, "{:?}", one.last);
    assert!(one.last["completion_id"]
        .as_str()
        .unwrap()
        .starts_with("chatcmpl-"));
    assert_eq!(one.last["model"], DEFAULT_MODEL_ID);

    // A long one, cancelled after a few deltas.
    let mut long = chat_body("Tell me a long story.", 1000);
    long["ignore_eos"] = json!(true);
    ws.send(request_frame("two", &long)).await.unwrap();
    let mut seen = 0;
    while seen < 3 {
        let frame = next_frame(&mut ws).await;
        assert_eq!(frame["id"], "two", "{frame}");
        assert_eq!(frame["type"], "chat.delta", "{frame}");
        if seen == 0 {
            assert_eq!(frame["delta"]["role"], "assistant", "{frame}");
        }
        seen += 1;
    }
    assert_eq!(backend.metrics().scheduler.num_requests_running, 1);
    ws.send(Message::text(
        json!({"type": "cancel", "id": "two"}).to_string(),
    ))
    .await
    .unwrap();
    let two = answers(&mut ws, &["two"]).await.remove("two").unwrap();
    assert_eq!(two.last["type"], "chat.done", "{:?}", two.last);
    assert_eq!(two.last["finish_reason"], "cancelled");
    assert!(two.last["usage"].is_null());
    // The generation stopped right away, long before its 1000 tokens.
    until_idle_and_free(&backend, Duration::from_secs(1)).await;
    let generated = backend.metrics().scheduler.generation_tokens_total;
    assert!(generated < 200, "{generated}");

    // The socket goes on: the same id can be used again once its request ended.
    ws.send(request_frame("two", &first)).await.unwrap();
    let again = answers(&mut ws, &["two"]).await.remove("two").unwrap();
    assert_eq!(again.last["type"], "chat.done", "{:?}", again.last);
    assert_eq!(again.texts, one.texts);

    until_idle_and_free(&backend, Duration::from_secs(1)).await;
    ws.close(None).await.unwrap();
}

async fn concurrent_requests_stream_the_same_text_as_rest(app: TestApp) {
    let app = app.with_model();
    let key = app.inference_key().await;
    let server = app.serve();
    let mut ws = connect(&server, Some(&key), "").await.expect("upgrade");
    let mut two_choices = chat_body("Name a colour.", 6);
    two_choices["n"] = json!(2);
    let mut logprobs = chat_body("Say hello.", 5);
    logprobs["logprobs"] = json!(true);
    logprobs["top_logprobs"] = json!(2);
    let bodies = [
        ("a", chat_body("What is the capital of France?", 12)),
        ("b", chat_body("Write a haiku about the sea.", 20)),
        ("c", two_choices),
        ("d", logprobs),
    ];
    for (id, body) in &bodies {
        ws.send(request_frame(id, body)).await.unwrap();
    }
    let got = answers(&mut ws, &["a", "b", "c", "d"]).await;
    for (id, body) in &bodies {
        let ws_answer = &got[*id];
        assert_eq!(
            ws_answer.last["type"], "chat.done",
            "{id}: {:?}",
            ws_answer.last
        );
        let rest = rest_answer(&app, &key, body).await;
        let rest_texts: Vec<&str> = rest["choices"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["message"]["content"].as_str().unwrap())
            .collect();
        assert_eq!(ws_answer.texts, rest_texts, "{id}");
        assert_eq!(
            ws_answer.last["usage"]["completion_tokens"], rest["usage"]["completion_tokens"],
            "{id}"
        );
        assert_eq!(
            ws_answer.last["usage"]["prompt_tokens"],
            rest["usage"]["prompt_tokens"]
        );
        let reasons: Vec<Value> = rest["choices"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["finish_reason"].clone())
            .collect();
        if reasons.len() == 1 {
            assert_eq!(ws_answer.last["finish_reason"], reasons[0], "{id}");
        } else {
            assert_eq!(ws_answer.last["finish_reason"], json!(reasons), "{id}");
        }
    }
    // Several deltas each: the answers were streamed, not sent whole.
    assert!(got["b"].deltas > 1, "{:?}", got["b"]);

    // Logprobs arrive on the deltas in the chunk shape.
    ws.send(request_frame("e", &bodies[3].1)).await.unwrap();
    let frame = next_frame(&mut ws).await;
    assert_eq!(frame["type"], "chat.delta", "{frame}");
    let content = frame["logprobs"]["content"].as_array().expect("logprobs");
    assert_eq!(content[0]["top_logprobs"].as_array().unwrap().len(), 2);
    answers(&mut ws, &["e"]).await;
}

async fn bad_frames_get_error_frames_and_the_socket_lives_on(app: TestApp) {
    let app = app.with_model();
    let key = app.inference_key().await;
    let server = app.serve();
    let mut ws = connect(&server, Some(&key), "").await.expect("upgrade");

    let frame_error = |frame: &Value, param: Option<&str>| {
        assert_eq!(frame["type"], "error", "{frame}");
        assert!(frame["id"].is_null(), "{frame}");
        assert_eq!(frame["error"]["type"], "invalid_request_error", "{frame}");
        assert!(frame["error"]["message"].is_string(), "{frame}");
        match param {
            Some(p) => assert_eq!(frame["error"]["param"], p, "{frame}"),
            None => assert!(frame["error"]["param"].is_null(), "{frame}"),
        }
    };
    ws.send(Message::text("{not json")).await.unwrap();
    frame_error(&next_frame(&mut ws).await, None);
    ws.send(Message::text("[1, 2]")).await.unwrap();
    frame_error(&next_frame(&mut ws).await, None);
    ws.send(Message::text(r#"{"type": "chat.go", "id": "x"}"#))
        .await
        .unwrap();
    frame_error(&next_frame(&mut ws).await, Some("type"));
    ws.send(Message::binary(vec![1u8, 2, 3])).await.unwrap();
    frame_error(&next_frame(&mut ws).await, None);
    let mut no_id = chat_body("Hi", 2);
    no_id["type"] = json!("chat.request");
    ws.send(Message::text(no_id.to_string())).await.unwrap();
    frame_error(&next_frame(&mut ws).await, Some("id"));
    ws.send(Message::text(r#"{"type": "cancel", "id": "nobody"}"#))
        .await
        .unwrap();
    frame_error(&next_frame(&mut ws).await, Some("id"));

    // A duplicate id while the first request runs: a frame error, the first goes on.
    let mut long = chat_body("Count to one hundred.", 1000);
    long["ignore_eos"] = json!(true);
    ws.send(request_frame("dup", &long)).await.unwrap();
    ws.send(request_frame("dup", &chat_body("Hi", 2)))
        .await
        .unwrap();
    loop {
        let frame = next_frame(&mut ws).await;
        if frame["type"] == "error" {
            frame_error(&frame, Some("id"));
            assert!(frame["error"]["message"].as_str().unwrap().contains("dup"));
            break;
        }
        assert_eq!(frame["id"], "dup", "{frame}");
    }

    // Validation errors carry the request's id and are exactly REST's error objects.
    let cases = [
        (json!({"temperature": 9}), 400),
        (json!({"model": "gpt-4o"}), 404),
        (json!({"tools": [{"type": "function"}]}), 400),
        (json!({"max_tokens": 100000}), 400),
        (json!({"messages": "hi"}), 400),
        (json!({"surprise": 1}), 400),
    ];
    for (i, (change, status)) in cases.iter().enumerate() {
        let mut body = chat_body("Hi", 2);
        for (k, v) in change.as_object().unwrap() {
            body[k] = v.clone();
        }
        let id = format!("bad-{i}");
        ws.send(request_frame(&id, &body)).await.unwrap();
        let frame = loop {
            let frame = next_frame(&mut ws).await;
            if frame["id"] == id.as_str() {
                break frame;
            }
        };
        assert_eq!(frame["type"], "error", "{frame}");
        let rest = app
            .post("/v1/chat/completions", Some(&key), body.clone())
            .await;
        assert_eq!(rest.status.as_u16(), *status, "{}", rest.body);
        assert_eq!(frame["error"], rest.body["error"], "{body}");
    }
    // `stream: false` has no meaning on a socket.
    let mut not_streamed = chat_body("Hi", 2);
    not_streamed["stream"] = json!(false);
    ws.send(request_frame("flat", &not_streamed)).await.unwrap();
    let frame = loop {
        let frame = next_frame(&mut ws).await;
        if frame["id"] == "flat" {
            break frame;
        }
    };
    assert_eq!(frame["error"]["param"], "stream", "{frame}");

    // After all that the socket still serves requests.
    ws.send(Message::text(
        json!({"type": "cancel", "id": "dup"}).to_string(),
    ))
    .await
    .unwrap();
    ws.send(request_frame("ok", &chat_body("Hi", 3)))
        .await
        .unwrap();
    let got = answers(&mut ws, &["dup", "ok"]).await;
    assert_eq!(got["dup"].last["finish_reason"], "cancelled");
    assert_eq!(got["ok"].last["type"], "chat.done", "{:?}", got["ok"].last);

    // A frame over the size limit is the one thing that closes the socket (1009).
    let huge = "x".repeat(app.state.config.max_body_bytes + 1);
    ws.send(request_frame("huge", &chat_body(&huge, 2)))
        .await
        .unwrap();
    let closed = loop {
        match tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
            Ok(Some(Ok(Message::Close(frame)))) => break frame,
            Ok(Some(Ok(_))) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    };
    assert_eq!(closed.expect("a close reason").code, CloseCode::Size);
}

async fn tickets_work_once_and_not_after_they_expire(app: TestApp) {
    let app = app.with_model().configure(|c| c.ws_ticket_ttl_secs = 1);
    let owner = app.signup("tickets@example.com").await;
    let project = app.default_project(&owner.access).await;
    let (key_id, key) = app
        .create_key(&owner.access, &project, &["inference"])
        .await;
    let server = app.serve();

    // No key, no ticket: 401 before any upgrade.
    let (status, body) = refused(&server, None, "").await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"]["type"], "authentication_error", "{body}");
    let (status, _) = refused(&server, Some("sf-not-a-real-key"), "").await;
    assert_eq!(status, 401);

    // A ticket from the key opens one socket, once.
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let made = app
        .post("/v1/ws/tickets", Some(&key), json!({}))
        .await
        .expect(200);
    let ticket = made["ticket"].as_str().unwrap().to_owned();
    assert!(ticket.starts_with("wst_") && ticket.len() > 40, "{made}");
    let expires_at = made["expires_at"].as_i64().unwrap();
    assert!((before..=before + 2).contains(&expires_at), "{made}");
    let query = format!("?ticket={ticket}");
    let mut ws = connect(&server, None, &query).await.expect("upgrade");
    ws.send(request_frame("t", &chat_body("Hi", 3)))
        .await
        .unwrap();
    let got = answers(&mut ws, &["t"]).await;
    assert_eq!(got["t"].last["type"], "chat.done", "{:?}", got["t"].last);
    // The request ran as the key's organization.
    let tenant = served_model()
        .metrics()
        .scheduler
        .tenants
        .get(owner.tenant_id.as_str())
        .cloned();
    assert!(tenant.is_some_and(|t| t.generation_tokens_total >= 3));
    let (status, body) = refused(&server, None, &query).await;
    assert_eq!(status, 401, "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("ticket"));

    unused_tickets_expire(&app, &server, &key).await;

    one_ticket_one_socket(&app, &server, &key).await;

    // A ticket stands for its key: revoking the key voids the tickets it made.
    let pending = app
        .post("/v1/ws/tickets", Some(&key), json!({}))
        .await
        .expect(200);
    app.delete(
        &format!("/v1/organization/projects/{project}/api_keys/{key_id}"),
        Some(&owner.access),
    )
    .await
    .expect(200);
    let (status, _) = refused(
        &server,
        None,
        &format!("?ticket={}", pending["ticket"].as_str().unwrap()),
    )
    .await;
    assert_eq!(status, 401);

    // Keys without the inference scope get neither tickets nor sockets.
    let (_, reader) = app
        .create_key(&owner.access, &project, &["usage:read"])
        .await;
    app.post("/v1/ws/tickets", Some(&reader), json!({}))
        .await
        .expect_error(403, None);
    let (status, _) = refused(&server, Some(&reader), "").await;
    assert_eq!(status, 403);
    app.post("/v1/ws/tickets", None, json!({}))
        .await
        .expect_error(401, None);

    // A console session (the playground) can make tickets too.
    let from_session = app
        .post("/v1/ws/tickets", Some(&owner.access), json!({}))
        .await
        .expect(200);
    let mut ws = connect(
        &server,
        None,
        &format!("?ticket={}", from_session["ticket"].as_str().unwrap()),
    )
    .await
    .expect("upgrade with a session's ticket");
    ws.send(request_frame("s", &chat_body("Hi", 2)))
        .await
        .unwrap();
    assert_eq!(
        answers(&mut ws, &["s"]).await["s"].last["type"],
        "chat.done"
    );
}

/// An unused ticket stops working when it expires. Only its hash is stored.
async fn unused_tickets_expire(app: &TestApp, server: &LiveServer, key: &str) {
    let late = app
        .post("/v1/ws/tickets", Some(key), json!({}))
        .await
        .expect(200);
    let late_ticket = late["ticket"].as_str().unwrap();
    let rows = |value: String| {
        let pool = app.state.store.pool().clone();
        async move {
            sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM ws_tickets WHERE ticket_hash = $1")
                .bind(value)
                .fetch_one(&pool)
                .await
                .unwrap()
        }
    };
    assert_eq!(rows(late_ticket.to_owned()).await, 0);
    assert_eq!(
        rows(gateway::auth::secret::sha256_hex(late_ticket)).await,
        1
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, _) = refused(
        server,
        None,
        &format!("?ticket={}", late["ticket"].as_str().unwrap()),
    )
    .await;
    assert_eq!(status, 401);
}

/// Two sockets racing for one ticket: exactly one gets in.
async fn one_ticket_one_socket(app: &TestApp, server: &LiveServer, key: &str) {
    let raced = app
        .post("/v1/ws/tickets", Some(key), json!({}))
        .await
        .expect(200);
    let query = format!("?ticket={}", raced["ticket"].as_str().unwrap());
    let (a, b) = tokio::join!(connect(server, None, &query), connect(server, None, &query));
    let outcomes = [a.map(|_| ()), b.map(|_| ())].map(|r| r.map_err(|e| e.to_string()));
    assert_eq!(
        outcomes.iter().filter(|r| r.is_ok()).count(),
        1,
        "{outcomes:?}"
    );
}

async fn closing_the_socket_aborts_its_generations(app: TestApp) {
    let backend = own_backend();
    let mut app = app;
    app.state = app.state.with_inference(backend.clone());
    let key = app.inference_key().await;
    let server = app.serve();
    let mut ws = connect(&server, Some(&key), "").await.expect("upgrade");
    let mut long = chat_body("Tell me a long story.", 1000);
    long["ignore_eos"] = json!(true);
    ws.send(request_frame("x", &long)).await.unwrap();
    ws.send(request_frame("y", &long)).await.unwrap();
    let mut deltas = 0;
    while deltas < 6 {
        assert_eq!(next_frame(&mut ws).await["type"], "chat.delta");
        deltas += 1;
    }
    assert_eq!(backend.metrics().scheduler.num_requests_running, 2);
    drop(ws);
    until_idle_and_free(&backend, Duration::from_secs(1)).await;
    let generated = backend.metrics().scheduler.generation_tokens_total;
    assert!(generated < 400, "{generated}");
}

async fn idle_sockets_are_pinged_then_closed(app: TestApp) {
    let app = app.with_model().configure(|c| {
        c.ws_idle_timeout_secs = 2;
        c.ws_ping_interval_secs = 1;
    });
    let key = app.inference_key().await;
    let server = app.serve();
    let mut ws = connect(&server, Some(&key), "").await.expect("upgrade");
    ws.send(Message::Ping(b"are you there".to_vec().into()))
        .await
        .unwrap();
    let opened = Instant::now();
    let mut pong = false;
    let mut pings = 0;
    let close = loop {
        match tokio::time::timeout(Duration::from_secs(5), ws.next()).await {
            Ok(Some(Ok(Message::Pong(bytes)))) => {
                assert_eq!(&bytes[..], b"are you there");
                pong = true;
            }
            Ok(Some(Ok(Message::Ping(_)))) => pings += 1,
            Ok(Some(Ok(Message::Close(frame)))) => break frame.expect("a close reason"),
            other => panic!("unexpected {other:?}"),
        }
    };
    assert!(pong, "the server answers pings");
    assert!(pings >= 1, "the server pings");
    assert_eq!(close.code, CloseCode::Normal);
    assert_eq!(close.reason.as_str(), "idle timeout");
    let waited = opened.elapsed();
    assert!(
        waited >= Duration::from_millis(1900) && waited < Duration::from_secs(4),
        "{waited:?}"
    );
}

async fn a_socket_runs_at_most_its_cap_of_requests_at_once(app: TestApp) {
    let app = app
        .with_model()
        .configure(|c| c.ws_max_concurrent_requests = 2);
    let key = app.inference_key().await;
    let server = app.serve();
    let mut ws = connect(&server, Some(&key), "").await.expect("upgrade");
    let mut long = chat_body("Tell me a long story.", 1000);
    long["ignore_eos"] = json!(true);
    for id in ["a", "b", "c"] {
        ws.send(request_frame(id, &long)).await.unwrap();
    }
    let refused = loop {
        let frame = next_frame(&mut ws).await;
        if frame["type"] == "error" {
            break frame;
        }
        assert_ne!(frame["id"], "c", "{frame}");
    };
    assert_eq!(refused["id"], "c", "{refused}");
    assert_eq!(refused["error"]["type"], "rate_limit_error", "{refused}");
    assert_eq!(refused["error"]["code"], "rate_limit_exceeded", "{refused}");
    for id in ["a", "b"] {
        ws.send(Message::text(
            json!({"type": "cancel", "id": id}).to_string(),
        ))
        .await
        .unwrap();
    }
    let got = answers(&mut ws, &["a", "b"]).await;
    assert_eq!(got["a"].last["finish_reason"], "cancelled");
    assert_eq!(got["b"].last["finish_reason"], "cancelled");
    // With room again, the same request is taken.
    ws.send(request_frame("c", &chat_body("Hi", 3)))
        .await
        .unwrap();
    let got = answers(&mut ws, &["c"]).await;
    assert_eq!(got["c"].last["type"], "chat.done", "{:?}", got["c"].last);
}
