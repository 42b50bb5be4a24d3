//! A model served by an OpenAI-compatible upstream: a real `starfire worker` answering OpenAI's
//! routes (as vLLM or llama.cpp's server would), and a gateway whose `[models.openai]` entry
//! points at it. The worker's OpenAI routes take its token as the API key and answer as the
//! gateway does; through the gateway, chats and text completions (streamed and not) and
//! embeddings equal the in-process engine's, and each usage row holds exactly the usage the
//! upstream reported (the gateway only estimated the prompt at admission); the organization
//! travels to the worker, so one organization's prompt is not another's cache; what needs the
//! upstream's vocabulary (logprobs) is refused by name; a client that leaves aborts the
//! request upstream and is billed what it received; an upstream that cannot be reached is a
//! 503, not a hang.

use std::time::{Duration, Instant};

use futures_util::SinkExt;
use gateway::registry::{ModelEntry, OpenAiEntry, DEFAULT_MODEL_ID};
use gateway::store::usage::UsageStatus;
use gateway::worker::pool::series_sum as sum;
use serde_json::{json, Value};

use crate::chat_ws::{answers, chat_body, connect, request_frame};
use crate::metering::{events, final_event};
use crate::rate_limits_e2e::{free_port, http};
use crate::support::{called_functions, Backend, TestApp};
use crate::workers::{leave_after_first_chunk, start_worker_at, TOKEN};

/// Where the gateway finds the upstream's key (set by this test, read when the model loads).
const KEY_VAR: &str = "STARFIRE_TEST_UPSTREAM_KEY";

/// A gateway whose default model is served by the OpenAI-compatible server at `base_url`,
/// which is sent the organization of each request.
async fn gateway_over_upstream(base_url: String) -> TestApp {
    let app = TestApp::new(Backend::Sqlite).await;
    let entry = ModelEntry {
        openai: Some(OpenAiEntry {
            base_url,
            api_key_env: Some(KEY_VAR.to_owned()),
            model: Some(DEFAULT_MODEL_ID.to_owned()),
            timeout_secs: Some(20),
            forward_tenant: true,
        }),
        ..ModelEntry::from_model_path(None)
    };
    let backend = gateway::registry::load(
        &[entry],
        gateway::registry::KvCacheMemory::set(64 << 20),
        &Default::default(),
        &Default::default(),
    )
    .expect("an upstream model");
    let state = app.state.clone().with_inference(backend);
    app.sharing(state)
}

fn chat(max_tokens: u32, stream: bool) -> Value {
    json!({
        "model": DEFAULT_MODEL_ID,
        "messages": [{"role": "system", "content": "You are brief."},
                     {"role": "user", "content": "Name three colours."}],
        "max_tokens": max_tokens,
        "temperature": 0,
        "stream": stream,
        "stream_options": if stream { json!({"include_usage": true}) } else { Value::Null },
    })
}

/// The same prompt, completion and total tokens (cached ones depend on what ran before).
#[track_caller]
fn same_counts(got: &Value, want: &Value) {
    for count in ["prompt_tokens", "completion_tokens", "total_tokens"] {
        assert_eq!(got[count], want[count], "{count}: {got} vs {want}");
    }
}

/// The `data:` events of an SSE body, parsed (without `[DONE]`).
fn sse_events(text: &str) -> Vec<Value> {
    assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
    text.split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .filter(|d| d.starts_with('{'))
        .map(|d| serde_json::from_str(d).unwrap())
        .collect()
}

/// The worker's own OpenAI routes: the token is the API key, the answers are OpenAI's shapes.
fn worker_speaks_openai(port: u16, expected: &Value) {
    let anonymous = http(port, "GET", "/v1/models", None, &Value::Null);
    assert_eq!(anonymous.status, 401, "{}", anonymous.text);
    assert_eq!(anonymous.body["error"]["code"], "invalid_api_key");
    let models = http(port, "GET", "/v1/models", Some(TOKEN), &Value::Null);
    assert_eq!(models.body["object"], "list");
    assert_eq!(models.body["data"][0]["id"], DEFAULT_MODEL_ID);
    let got = http(
        port,
        "POST",
        "/v1/chat/completions",
        Some(TOKEN),
        &chat(12, false),
    );
    assert_eq!(got.status, 200, "{}", got.text);
    assert_eq!(got.body["object"], "chat.completion");
    assert_eq!(
        got.body["choices"][0]["message"],
        expected["choices"][0]["message"]
    );
    same_counts(&got.body["usage"], &expected["usage"]);
    let bad = json!({"model": DEFAULT_MODEL_ID, "messages": []});
    let refused = http(port, "POST", "/v1/chat/completions", Some(TOKEN), &bad);
    assert_eq!(refused.status, 400, "{}", refused.text);
    assert_eq!(refused.body["error"]["param"], "messages");
    let streamed = http(
        port,
        "POST",
        "/v1/completions",
        Some(TOKEN),
        &json!({"model": DEFAULT_MODEL_ID, "prompt": "Once upon a time", "max_tokens": 5,
                "temperature": 0, "stream": true}),
    );
    assert_eq!(streamed.status, 200, "{}", streamed.text);
    let text: String = sse_events(&streamed.text)
        .iter()
        .filter_map(|e| e["choices"][0]["text"].as_str().map(str::to_owned))
        .collect();
    assert!(!text.is_empty(), "{}", streamed.text);
}

#[actix_web::test]
async fn a_model_served_by_an_openai_compatible_upstream() {
    // SAFETY: set before any thread of this test reads the environment; nextest runs each test
    // in its own process.
    unsafe { std::env::set_var(KEY_VAR, TOKEN) };
    let home = tempfile::tempdir().unwrap();
    let (worker, port) = start_worker_at(home.path(), "127.0.0.1", free_port());
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
    let worker_check = expected.clone();
    actix_web::rt::task::spawn_blocking(move || worker_speaks_openai(port, &worker_check))
        .await
        .unwrap();

    let app = gateway_over_upstream(format!("http://127.0.0.1:{port}/v1")).await;
    let owner = app.signup("upstream@example.com").await;
    let project = app.default_project(&owner.access).await;
    let (_, key) = app
        .create_key(&owner.access, &project, &["inference"])
        .await;
    let tenant = owner.tenant_id.clone();

    // A chat: the in-process text, the upstream's usage, and a usage row that holds it.
    let models = app.get("/v1/models", Some(&key)).await.expect(200);
    assert_eq!(models["data"][0]["id"], DEFAULT_MODEL_ID);
    let got = app
        .post("/v1/chat/completions", Some(&key), chat(12, false))
        .await
        .expect(200);
    assert_eq!(
        got["choices"][0]["message"], expected["choices"][0]["message"],
        "{got}"
    );
    assert_eq!(
        got["choices"][0]["finish_reason"],
        expected["choices"][0]["finish_reason"]
    );
    same_counts(&got["usage"], &expected["usage"]);
    let row = final_event(&app, &tenant, got["id"].as_str().unwrap()).await;
    assert_eq!(row.status, UsageStatus::Completed);
    // Structured outputs travel upstream (JSON schemas in OpenAI's `response_format`, the
    // rest in vLLM's `structured_outputs`) and the upstream enforces them: the same answers as
    // the in-process engine's.
    for constraint in [
        json!({"response_format": {"type": "json_schema", "json_schema": {"name": "colours",
               "schema": {"type": "object", "properties": {"colours": {"type": "array",
               "items": {"enum": ["red", "green", "blue", "yellow"]}, "minItems": 3,
               "maxItems": 3}}, "required": ["colours"], "additionalProperties": false}}}}),
        json!({"guided_choice": ["red", "green", "blue"]}),
    ] {
        let mut body = chat(40, false);
        for (k, v) in constraint.as_object().unwrap() {
            body[k] = v.clone();
        }
        let want = reference
            .post("/v1/chat/completions", Some(&reference_key), body.clone())
            .await
            .expect(200);
        let got = app
            .post("/v1/chat/completions", Some(&key), body)
            .await
            .expect(200);
        assert_eq!(
            got["choices"][0]["message"], want["choices"][0]["message"],
            "{constraint}"
        );
        assert_eq!(got["choices"][0]["finish_reason"], "stop", "{got}");
    }
    // Tools travel upstream in OpenAI's fields and its calls come back as calls: the same
    // functions and arguments as in process, whole and streamed (a call without arguments too).
    let tools = json!([
        {"type": "function", "function": {"name": "get_weather", "description": "Weather of a city.",
         "parameters": {"type": "object", "properties": {"city": {"type": "string", "maxLength": 20}},
                        "required": ["city"], "additionalProperties": false}}},
        {"type": "function", "function": {"name": "get_time"}}
    ]);
    for choice in [
        json!("required"),
        json!({"type": "function", "function": {"name": "get_time"}}),
    ] {
        let mut body = chat(60, false);
        body["messages"] = json!([{"role": "user", "content": "What is the weather in Paris?"}]);
        body["tools"] = tools.clone();
        body["tool_choice"] = choice.clone();
        body["parallel_tool_calls"] = json!(false);
        let want = reference
            .post("/v1/chat/completions", Some(&reference_key), body.clone())
            .await
            .expect(200);
        let got = app
            .post("/v1/chat/completions", Some(&key), body.clone())
            .await
            .expect(200);
        assert_eq!(called_functions(&got), called_functions(&want), "{choice}");
        assert!(got["choices"][0]["message"]["content"].is_null(), "{got}");
        assert_eq!(
            got["choices"][0]["finish_reason"],
            want["choices"][0]["finish_reason"]
        );
        body["stream"] = json!(true);
        let streamed = app
            .post("/v1/chat/completions", Some(&key), body)
            .await
            .expect(200);
        let mut calls: Vec<Value> = Vec::new();
        for chunk in sse_events(streamed.as_str().unwrap()) {
            for piece in chunk["choices"][0]["delta"]["tool_calls"]
                .as_array()
                .into_iter()
                .flatten()
            {
                let index = piece["index"].as_u64().unwrap() as usize;
                if index == calls.len() {
                    calls.push(json!({"name": piece["function"]["name"], "arguments": ""}));
                }
                let all = format!(
                    "{}{}",
                    calls[index]["arguments"].as_str().unwrap(),
                    piece["function"]["arguments"].as_str().unwrap_or_default()
                );
                calls[index]["arguments"] = json!(all);
            }
        }
        assert_eq!(calls, called_functions(&want), "{choice}");
    }
    // The organization travels to the worker (`forward_tenant`): the prompt the worker ran for
    // its own caller above is not in this organization's prefix cache...
    let cached = |answer: &Value| {
        answer["usage"]["prompt_tokens_details"]["cached_tokens"]
            .as_u64()
            .unwrap()
    };
    assert_eq!(cached(&got), 0, "{got}");
    assert_eq!(row.cached_tokens, 0);
    // ...its own repeat is, and the row holds what the upstream said...
    let again = app
        .post("/v1/chat/completions", Some(&key), chat(12, false))
        .await
        .expect(200);
    assert!(cached(&again) > 0, "{again}");
    let row = final_event(&app, &tenant, again["id"].as_str().unwrap()).await;
    assert_eq!(row.cached_tokens, cached(&again));
    // ...and another organization's same prompt finds nothing of it.
    let stranger = app.inference_key().await;
    let theirs = app
        .post("/v1/chat/completions", Some(&stranger), chat(12, false))
        .await
        .expect(200);
    assert_eq!(cached(&theirs), 0, "{theirs}");
    assert_eq!(
        row.prompt_tokens,
        got["usage"]["prompt_tokens"].as_u64().unwrap()
    );
    assert_eq!(
        row.completion_tokens,
        got["usage"]["completion_tokens"].as_u64().unwrap()
    );

    // Streamed: the same text in chunks, the usage chunk, and the row equal to it.
    let streamed = app
        .post("/v1/chat/completions", Some(&key), chat(12, true))
        .await
        .expect(200);
    let events_seen = sse_events(streamed.as_str().unwrap());
    let text: String = events_seen
        .iter()
        .filter_map(|e| {
            e["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    assert_eq!(
        text,
        expected["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
    );
    let last = events_seen.last().unwrap();
    same_counts(&last["usage"], &expected["usage"]);
    let row = final_event(&app, &tenant, last["id"].as_str().unwrap()).await;
    assert_eq!(
        row.prompt_tokens,
        last["usage"]["prompt_tokens"].as_u64().unwrap()
    );
    assert_eq!(
        row.completion_tokens,
        last["usage"]["completion_tokens"].as_u64().unwrap()
    );

    // Text completions of two prompts, streamed and not, and token-id prompts as they are.
    let completion = json!({"model": DEFAULT_MODEL_ID, "prompt": ["Once upon a time", "The sky is"],
                            "max_tokens": 6, "temperature": 0});
    let here = reference
        .post("/v1/completions", Some(&reference_key), completion.clone())
        .await
        .expect(200);
    let there = app
        .post("/v1/completions", Some(&key), completion.clone())
        .await
        .expect(200);
    for i in 0..2 {
        assert_eq!(
            there["choices"][i]["text"], here["choices"][i]["text"],
            "{there}"
        );
    }
    same_counts(&there["usage"], &here["usage"]);
    let row = final_event(&app, &tenant, there["id"].as_str().unwrap()).await;
    assert_eq!(
        row.prompt_tokens,
        here["usage"]["prompt_tokens"].as_u64().unwrap()
    );
    assert_eq!(
        row.completion_tokens,
        here["usage"]["completion_tokens"].as_u64().unwrap()
    );
    let mut streamed = completion.clone();
    streamed["stream"] = json!(true);
    streamed["stream_options"] = json!({"include_usage": true});
    let got = app
        .post("/v1/completions", Some(&key), streamed)
        .await
        .expect(200);
    let chunks = sse_events(got.as_str().unwrap());
    same_counts(&chunks.last().unwrap()["usage"], &here["usage"]);
    let ids = json!({"model": DEFAULT_MODEL_ID, "prompt": [1, 2, 3, 4], "max_tokens": 3});
    let by_ids = app
        .post("/v1/completions", Some(&key), ids)
        .await
        .expect(200);
    assert_eq!(by_ids["usage"]["prompt_tokens"], 4, "{by_ids}");

    // Embeddings where the upstream has them: the same vectors and counts.
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

    // What needs the upstream's vocabulary is refused by name, not silently dropped.
    let mut with_logprobs = chat(4, false);
    with_logprobs["logprobs"] = json!(true);
    app.post("/v1/chat/completions", Some(&key), with_logprobs)
        .await
        .expect_error(400, Some("logprobs"));
    let tokenize = json!({"model": DEFAULT_MODEL_ID, "prompt": "hello"});
    app.post("/v1/tokenize", Some(&key), tokenize)
        .await
        .expect_error(400, Some("model"));

    // A client that leaves mid-stream: the upstream request ends, and the row is `cancelled`
    // with what was received.
    let server = app.serve();
    let live = server.port;

    // The chat WebSocket over the upstream: the same greedy text as REST.
    let mut ws = connect(&server, Some(&key), "").await.expect("upgrade");
    ws.send(request_frame("u", &chat_body("Name three colours.", 12)))
        .await
        .unwrap();
    let reference_ws = reference.serve();
    let mut here = connect(&reference_ws, Some(&reference_key), "")
        .await
        .expect("upgrade");
    here.send(request_frame("u", &chat_body("Name three colours.", 12)))
        .await
        .unwrap();
    let (got, want) = (
        answers(&mut ws, &["u"]).await,
        answers(&mut here, &["u"]).await,
    );
    assert_eq!(got["u"].last["type"], "chat.done", "{:?}", got["u"].last);
    assert_eq!(got["u"].texts, want["u"].texts);
    same_counts(&got["u"].last["usage"], &want["u"].last["usage"]);
    drop((ws, here, reference_ws));
    let leaving = key.clone();
    actix_web::rt::task::spawn_blocking(move || leave_after_first_chunk(live, &leaving))
        .await
        .unwrap();
    actix_web::rt::task::spawn_blocking(move || {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let text = http(port, "GET", "/metrics", None, &Value::Null).text;
            if sum(&text, "starfire:num_requests_running") == 0.0 {
                break;
            }
            assert!(Instant::now() < deadline, "the upstream request still runs");
            std::thread::sleep(Duration::from_millis(50));
        }
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
    drop(server);
    drop(worker);

    // An upstream nobody answers: 503 at once, no usage billed.
    let gone = gateway_over_upstream(format!("http://127.0.0.1:{}/v1", free_port())).await;
    let gone_key = gone.inference_key().await;
    gone.post("/v1/chat/completions", Some(&gone_key), chat(4, false))
        .await
        .expect_error(503, None);
}
