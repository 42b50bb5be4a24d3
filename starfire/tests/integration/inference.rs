//! The OpenAI-compatible inference routes with the real default model, in process.

use engine::generate::{generate, GenerateOptions};
use engine::{ChatMessage, SamplingParams};
use gateway::registry::DEFAULT_MODEL_ID;
use serde_json::{json, Value};

use crate::support::{served_model, sse_events, Backend, TestApp};

const PROMPT: &str = "What is the capital of France?";

pub(crate) async fn app() -> (TestApp, String) {
    let app = TestApp::new(Backend::Sqlite).await.with_model();
    let key = app.inference_key().await;
    (app, key)
}

fn chat(extra: Value) -> Value {
    let mut body = json!({
        "model": DEFAULT_MODEL_ID,
        "messages": [{"role": "user", "content": PROMPT}],
        "max_tokens": 12,
        "temperature": 0,
    });
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    body
}

/// The prompt ids and greedy output of `engine::generate` for PROMPT as one user message.
fn engine_reference(max_tokens: usize) -> (Vec<u32>, Vec<u32>, String) {
    let backend = served_model();
    let model = backend.engine_model();
    let text = model
        .chat_template
        .as_ref()
        .unwrap()
        .render(&[ChatMessage::new("user", PROMPT)], true)
        .unwrap();
    let prompt = model.tokenizer.encode(&text, true).unwrap();
    let tokens: Vec<u32> = generate(
        model,
        &prompt,
        &SamplingParams::greedy(max_tokens),
        0,
        &GenerateOptions::default(),
    )
    .unwrap()
    .into_iter()
    .map(|s| s.token)
    .collect();
    let text = model.tokenizer.decode(&tokens, true).unwrap();
    (prompt, tokens, text)
}

#[actix_web::test]
async fn models_lists_the_served_model() {
    let (app, key) = app().await;
    let body = app.get("/v1/models", Some(&key)).await.expect(200);
    assert_eq!(body["object"], "list");
    assert_eq!(body["data"].as_array().unwrap().len(), 1);
    let model = &body["data"][0];
    assert_eq!(model["id"], DEFAULT_MODEL_ID);
    assert_eq!(model["object"], "model");
    assert_eq!(model["owned_by"], "starfire");
    assert!(model["created"].as_u64().unwrap() > 0);
    let one = app
        .get("/v1/models/smollm2-135m-instruct", Some(&key))
        .await
        .expect(200);
    assert_eq!(one["id"], DEFAULT_MODEL_ID);
    let err = app
        .get("/v1/models/gpt-4o", Some(&key))
        .await
        .expect_error(404, Some("model"));
    assert_eq!(err["code"], "model_not_found");
}

#[actix_web::test]
async fn chat_completion_has_openai_shape_and_greedy_output_equals_the_engine() {
    let (app, key) = app().await;
    let body = app
        .post("/v1/chat/completions", Some(&key), chat(json!({})))
        .await
        .expect(200);
    assert!(
        body["id"].as_str().unwrap().starts_with("chatcmpl-"),
        "{body}"
    );
    assert_eq!(body["object"], "chat.completion");
    assert!(body["created"].as_u64().unwrap() > 0);
    assert_eq!(body["model"], DEFAULT_MODEL_ID);
    assert!(body["system_fingerprint"]
        .as_str()
        .unwrap()
        .starts_with("fp_"));
    let choices = body["choices"].as_array().unwrap();
    assert_eq!(choices.len(), 1);
    let choice = &choices[0];
    assert_eq!(choice["index"], 0);
    assert_eq!(choice["message"]["role"], "assistant");
    assert!(choice["logprobs"].is_null());
    let content = choice["message"]["content"].as_str().unwrap();

    let (prompt, tokens, text) = engine_reference(12);
    assert_eq!(
        content, text,
        "greedy output through the API equals engine::generate"
    );
    let finish = if tokens.len() < 12 { "stop" } else { "length" };
    assert_eq!(choice["finish_reason"], finish, "{body}");

    let usage = &body["usage"];
    assert_eq!(usage["prompt_tokens"], prompt.len(), "{body}");
    assert_eq!(usage["completion_tokens"], tokens.len(), "{body}");
    assert_eq!(usage["total_tokens"], prompt.len() + tokens.len());
    assert!(usage["prompt_tokens_details"]["cached_tokens"].is_u64());
}

#[actix_web::test]
async fn streaming_deltas_add_up_to_the_non_streaming_answer() {
    let (app, key) = app().await;
    let plain = app
        .post("/v1/chat/completions", Some(&key), chat(json!({})))
        .await
        .expect(200);
    let resp = app
        .post(
            "/v1/chat/completions",
            Some(&key),
            chat(json!({"stream": true, "stream_options": {"include_usage": true}})),
        )
        .await;
    assert_eq!(resp.status.as_u16(), 200, "{}", resp.body);
    assert!(resp.header("content-type").starts_with("text/event-stream"));
    let events = sse_events(&resp.body);
    assert_eq!(events.last().unwrap(), "[DONE]");
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    let id = chunks[0]["id"].as_str().unwrap();
    assert!(id.starts_with("chatcmpl-"));
    for c in &chunks {
        assert_eq!(c["id"], id);
        assert_eq!(c["object"], "chat.completion.chunk");
        assert_eq!(c["model"], DEFAULT_MODEL_ID);
        assert!(c["system_fingerprint"].is_string());
        assert!(c.as_object().unwrap().contains_key("usage"), "{c}");
    }
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let (last, content_chunks) = chunks.split_last().unwrap();
    assert_eq!(last["choices"], json!([]));
    for field in ["prompt_tokens", "completion_tokens", "total_tokens"] {
        assert_eq!(last["usage"][field], plain["usage"][field], "{last}");
    }
    assert!(
        last["usage"]["prompt_tokens_details"]["cached_tokens"]
            .as_u64()
            .unwrap()
            > 0,
        "the same prompt again hits this organization's prefix cache: {last}"
    );
    let mut text = String::new();
    let mut finish = Vec::new();
    for c in content_chunks {
        assert!(c["usage"].is_null());
        let choice = &c["choices"][0];
        text.push_str(choice["delta"]["content"].as_str().unwrap_or_default());
        if !choice["finish_reason"].is_null() {
            finish.push(choice["finish_reason"].clone());
        }
    }
    assert_eq!(
        text,
        plain["choices"][0]["message"]["content"].as_str().unwrap()
    );
    assert_eq!(finish, vec![plain["choices"][0]["finish_reason"].clone()]);

    // Without include_usage: no usage field at all, and still [DONE] at the end.
    let resp = app
        .post(
            "/v1/chat/completions",
            Some(&key),
            chat(json!({"stream": true})),
        )
        .await;
    let events = sse_events(&resp.body);
    assert_eq!(events.last().unwrap(), "[DONE]");
    for e in &events[..events.len() - 1] {
        let c: Value = serde_json::from_str(e).unwrap();
        assert!(!c.as_object().unwrap().contains_key("usage"), "{c}");
        assert_eq!(c["choices"].as_array().unwrap().len(), 1);
    }
}

#[actix_web::test]
async fn options_n_logprobs_stop_and_parts() {
    let (app, key) = app().await;
    let body = app
        .post(
            "/v1/chat/completions",
            Some(&key),
            chat(json!({"n": 2, "logprobs": true, "top_logprobs": 2, "max_completion_tokens": 6,
                        "max_tokens": null,
                        "messages": [{"role": "system", "content": "Be brief."},
                                     {"role": "user", "content": [{"type": "text", "text": PROMPT}]}]})),
        )
        .await
        .expect(200);
    let choices = body["choices"].as_array().unwrap();
    assert_eq!(choices.len(), 2);
    assert_eq!(
        choices[0]["message"]["content"], choices[1]["message"]["content"],
        "greedy choices agree"
    );
    let mut tokens = 0;
    for (i, c) in choices.iter().enumerate() {
        assert_eq!(c["index"], i);
        let lp = c["logprobs"]["content"].as_array().unwrap();
        assert!(!lp.is_empty() && lp.len() <= 6, "{body}");
        for t in lp {
            assert!(t["token"].is_string());
            assert!(t["logprob"].as_f64().unwrap() <= 0.0);
            assert!(t["bytes"].is_array());
            assert_eq!(t["top_logprobs"].as_array().unwrap().len(), 2, "{t}");
        }
        tokens += lp.len();
    }
    assert_eq!(body["usage"]["completion_tokens"], tokens);

    // A stop string cuts the text before it.
    let first = choices[0]["message"]["content"]
        .as_str()
        .unwrap()
        .to_owned();
    if let Some(word) = first.split_whitespace().nth(1) {
        let body = app
            .post(
                "/v1/chat/completions",
                Some(&key),
                chat(json!({"stop": [word], "max_tokens": 6,
                            "messages": [{"role": "system", "content": "Be brief."},
                                         {"role": "user", "content": PROMPT}]})),
            )
            .await
            .expect(200);
        let text = body["choices"][0]["message"]["content"].as_str().unwrap();
        assert!(!text.contains(word), "{text:?} still contains {word:?}");
        assert_eq!(body["choices"][0]["finish_reason"], "stop");
    }
}

#[actix_web::test]
async fn credentials_and_scopes_are_checked_first() {
    let app = TestApp::new(Backend::Sqlite).await.with_model();
    let owner = app.signup("ada@example.com").await;
    let (_, admin_key) = app.create_admin_key(&owner.access).await;
    let project = app.default_project(&owner.access).await;
    let (_, read_key) = app
        .create_key(&owner.access, &project, &["usage:read"])
        .await;
    for path in [
        "/v1/models",
        "/v1/chat/completions",
        "/v1/completions",
        "/v1/tokenize",
        "/v1/embeddings",
    ] {
        let post = path != "/v1/models";
        let send = |token: Option<String>| {
            let app = &app;
            async move {
                if post {
                    app.post(path, token.as_deref(), chat(json!({}))).await
                } else {
                    app.get(path, token.as_deref()).await
                }
            }
        };
        send(None).await.expect_error(401, None);
        send(Some(admin_key.clone())).await.expect_error(403, None);
        send(Some(read_key.clone())).await.expect_error(403, None);
    }
}

#[actix_web::test]
async fn invalid_requests_name_the_field() {
    let (app, key) = app().await;
    let post = |body: Value| app.post("/v1/chat/completions", Some(&key), body);
    post(chat(json!({"functions": [{"name": "f"}]})))
        .await
        .expect_error(400, Some("functions"));
    post(chat(
        json!({"response_format": {"type": "json_schema", "json_schema": {}}}),
    ))
    .await
    .expect_error(400, Some("response_format.json_schema.name"));
    post(chat(json!({"response_format": {"type": "text"}})))
        .await
        .expect(200);
    post(chat(json!({"no_such_field": 1})))
        .await
        .expect_error(400, Some("no_such_field"));
    let err = post(chat(json!({"model": "gpt-4o"})))
        .await
        .expect_error(404, Some("model"));
    assert_eq!(err["code"], "model_not_found");
    post(chat(json!({"temperature": 3})))
        .await
        .expect_error(400, Some("temperature"));
    post(chat(json!({"top_p": 0})))
        .await
        .expect_error(400, Some("top_p"));
    post(chat(json!({"n": 0})))
        .await
        .expect_error(400, Some("n"));
    post(chat(json!({"top_logprobs": 3})))
        .await
        .expect_error(400, Some("top_logprobs"));
    post(chat(json!({"logit_bias": {"abc": 1}})))
        .await
        .expect_error(400, Some("logit_bias"));
    // A token id in plain decimal only: "1" and "01" (or "+1") would name one token twice.
    for key in ["01", "+1"] {
        let err = post(chat(json!({"logit_bias": {"1": 1, key: 2}})))
            .await
            .expect_error(400, Some("logit_bias"));
        assert!(err["message"].as_str().unwrap().contains(key), "{err}");
    }
    // At most 300 biased tokens (OpenAI's limit) and 1024 stop token ids: 300 and 1024 are
    // served, one more is refused, saying how many.
    let bias = |n: u32| -> serde_json::Map<String, Value> {
        (0..n).map(|id| (id.to_string(), json!(-1))).collect()
    };
    post(chat(json!({"logit_bias": bias(300), "max_tokens": 1})))
        .await
        .expect(200);
    let err = post(chat(json!({"logit_bias": bias(301)})))
        .await
        .expect_error(400, Some("logit_bias"));
    assert!(
        err["message"].as_str().unwrap().contains("at most 300"),
        "{err}"
    );
    let ids: Vec<u32> = (0..1025).collect();
    post(chat(
        json!({"stop_token_ids": &ids[..1024], "max_tokens": 1}),
    ))
    .await
    .expect(200);
    let err = post(chat(json!({"stop_token_ids": ids})))
        .await
        .expect_error(400, Some("stop_token_ids"));
    assert!(
        err["message"].as_str().unwrap().contains("at most 1024"),
        "{err}"
    );
    post(chat(json!({"max_tokens": "many"})))
        .await
        .expect_error(400, Some("max_tokens"));
    post(chat(json!({"messages": []})))
        .await
        .expect_error(400, Some("messages"));
    post(chat(
        json!({"messages": [{"role": "function", "content": "x"}]}),
    ))
    .await
    .expect_error(400, Some("messages[0].role"));
    post(chat(
        json!({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]}),
    ))
    .await
    .expect_error(400, Some("messages[0].content[0].type"));
    let err = post(chat(json!({"max_tokens": 1_000_000})))
        .await
        .expect_error(400, Some("messages"));
    assert_eq!(err["code"], "context_length_exceeded");
    let long = "7 ".repeat(9000);
    let err = post(chat(json!({"max_tokens": null,
                               "messages": [{"role": "user", "content": long}]})))
    .await
    .expect_error(400, Some("messages"));
    assert_eq!(err["code"], "context_length_exceeded");

    // A body over the limit is 413; one that is not JSON is 400.
    let huge = "x".repeat(70_000);
    post(chat(
        json!({"messages": [{"role": "user", "content": huge}]}),
    ))
    .await
    .expect_error(413, None);
    let resp = app
        .call(
            actix_web::test::TestRequest::post()
                .uri("/v1/chat/completions")
                .insert_header(("authorization", format!("Bearer {key}")))
                .insert_header(("content-type", "application/json"))
                .set_payload("{not json"),
        )
        .await;
    resp.expect_error(400, None);
}

#[actix_web::test]
async fn without_a_model_inference_answers_503_saying_how_to_fetch_one() {
    let app = TestApp::new(Backend::Sqlite).await;
    let key = app.inference_key().await;
    for resp in [
        app.get("/v1/models", Some(&key)).await,
        app.post("/v1/chat/completions", Some(&key), chat(json!({})))
            .await,
    ] {
        let err = resp.expect_error(503, None);
        assert_eq!(err["code"], "model_not_loaded");
        assert!(
            err["message"]
                .as_str()
                .unwrap()
                .contains("starfire model fetch"),
            "{err}"
        );
    }
}

fn completion(extra: Value) -> Value {
    let mut body = json!({
        "model": DEFAULT_MODEL_ID,
        "prompt": "The capital of France is",
        "max_tokens": 8,
        "temperature": 0,
    });
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    body
}

#[actix_web::test]
async fn completions_take_strings_lists_and_token_ids() {
    let (app, key) = app().await;
    let backend = served_model();
    let model = backend.engine_model();
    let prompt = model
        .tokenizer
        .encode("The capital of France is", true)
        .unwrap();
    let tokens: Vec<u32> = generate(
        model,
        &prompt,
        &SamplingParams::greedy(8),
        0,
        &GenerateOptions::default(),
    )
    .unwrap()
    .into_iter()
    .map(|s| s.token)
    .collect();
    let expected = model.tokenizer.decode(&tokens, true).unwrap();

    let body = app
        .post("/v1/completions", Some(&key), completion(json!({})))
        .await
        .expect(200);
    assert!(body["id"].as_str().unwrap().starts_with("cmpl-"), "{body}");
    assert_eq!(body["object"], "text_completion");
    assert_eq!(body["model"], DEFAULT_MODEL_ID);
    assert!(body["system_fingerprint"].is_string());
    assert_eq!(body["choices"][0]["index"], 0);
    assert_eq!(body["choices"][0]["text"], expected.as_str());
    assert!(body["choices"][0]["logprobs"].is_null());
    assert_eq!(body["usage"]["prompt_tokens"], prompt.len());
    assert_eq!(body["usage"]["completion_tokens"], tokens.len());

    // The same prompt as token ids gives the same text.
    let ids = app
        .post(
            "/v1/completions",
            Some(&key),
            completion(json!({"prompt": prompt})),
        )
        .await
        .expect(200);
    assert_eq!(ids["choices"][0]["text"], expected.as_str());

    // Two prompts, n = 2: index = prompt * n + choice; usage adds up.
    let two = app
        .post(
            "/v1/completions",
            Some(&key),
            completion(json!({"prompt": ["The capital of France is", "Once upon a time"], "n": 2})),
        )
        .await
        .expect(200);
    let choices = two["choices"].as_array().unwrap();
    let indexes: Vec<u64> = choices
        .iter()
        .map(|c| c["index"].as_u64().unwrap())
        .collect();
    assert_eq!(indexes, vec![0, 1, 2, 3]);
    assert_eq!(choices[0]["text"], expected.as_str());
    assert_eq!(choices[1]["text"], expected.as_str());
    let other = model.tokenizer.encode("Once upon a time", true).unwrap();
    assert_eq!(two["usage"]["prompt_tokens"], prompt.len() + other.len());

    // Logprobs in the legacy shape.
    let lp = app
        .post(
            "/v1/completions",
            Some(&key),
            completion(json!({"logprobs": 2})),
        )
        .await
        .expect(200);
    let l = &lp["choices"][0]["logprobs"];
    let n = l["tokens"].as_array().unwrap().len();
    assert_eq!(lp["usage"]["completion_tokens"], n);
    assert_eq!(l["token_logprobs"].as_array().unwrap().len(), n);
    assert_eq!(l["text_offset"].as_array().unwrap().len(), n);
    assert_eq!(l["text_offset"][0], 0);
    for top in l["top_logprobs"].as_array().unwrap() {
        let k = top.as_object().unwrap().len();
        assert!((1..=2).contains(&k), "{top}");
    }
}

#[actix_web::test]
async fn completions_stream_and_refuse_what_they_do_not_support() {
    let (app, key) = app().await;
    let plain = app
        .post(
            "/v1/completions",
            Some(&key),
            completion(json!({"prompt": ["The capital of France is", "Once upon a time"]})),
        )
        .await
        .expect(200);
    let resp = app
        .post(
            "/v1/completions",
            Some(&key),
            completion(
                json!({"prompt": ["The capital of France is", "Once upon a time"],
                              "stream": true, "stream_options": {"include_usage": true}}),
            ),
        )
        .await;
    assert_eq!(resp.status.as_u16(), 200, "{}", resp.body);
    let events = sse_events(&resp.body);
    assert_eq!(events.last().unwrap(), "[DONE]");
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    let (last, rest) = chunks.split_last().unwrap();
    assert_eq!(last["choices"], json!([]));
    assert_eq!(
        last["usage"]["prompt_tokens"],
        plain["usage"]["prompt_tokens"]
    );
    assert_eq!(
        last["usage"]["completion_tokens"],
        plain["usage"]["completion_tokens"]
    );
    let mut texts = [String::new(), String::new()];
    let mut finished = [0, 0];
    for c in rest {
        assert_eq!(c["object"], "text_completion");
        let choice = &c["choices"][0];
        let i = choice["index"].as_u64().unwrap() as usize;
        texts[i].push_str(choice["text"].as_str().unwrap());
        if !choice["finish_reason"].is_null() {
            finished[i] += 1;
        }
    }
    assert_eq!(finished, [1, 1]);
    for i in 0..2 {
        assert_eq!(texts[i], plain["choices"][i]["text"].as_str().unwrap());
    }

    let post = |body: Value| app.post("/v1/completions", Some(&key), body);
    post(completion(json!({"echo": true})))
        .await
        .expect_error(400, Some("echo"));
    post(completion(json!({"suffix": "x"})))
        .await
        .expect_error(400, Some("suffix"));
    post(completion(json!({"best_of": 3})))
        .await
        .expect_error(400, Some("best_of"));
    post(completion(json!({"prompt": [1, 10_000_000]})))
        .await
        .expect_error(400, Some("prompt"));
    post(completion(json!({"prompt": []})))
        .await
        .expect_error(400, Some("prompt"));
    post(completion(json!({"logprobs": 21})))
        .await
        .expect_error(400, Some("logprobs"));
    let err = post(completion(json!({"max_tokens": 1_000_000})))
        .await
        .expect_error(400, Some("prompt"));
    assert_eq!(err["code"], "context_length_exceeded");
    let err = post(completion(json!({"model": "davinci"})))
        .await
        .expect_error(404, Some("model"));
    assert_eq!(err["code"], "model_not_found");
}

/// A client that goes away mid-stream aborts its generation: the scheduler has nothing left
/// running within a second, long before `max_tokens`.
#[actix_web::test]
async fn closing_an_sse_stream_aborts_the_generation() {
    use actix_web::body::MessageBody;
    use std::sync::Arc;

    // A backend of its own, so that no other test's requests show in its metrics.
    let backend = Arc::new(
        gateway::inference::InProcessBackend::start(
            DEFAULT_MODEL_ID,
            served_model().engine_model().clone(),
            64 << 20,
        )
        .unwrap(),
    );
    let mut app = TestApp::new(Backend::Sqlite).await;
    app.state = app.state.with_inference(backend.clone());
    let key = app.inference_key().await;
    let service =
        actix_web::test::init_service(gateway::app_with(app.state.clone(), ::console::configure))
            .await;
    let req = actix_web::test::TestRequest::post()
        .uri("/v1/chat/completions")
        .insert_header(("authorization", format!("Bearer {key}")))
        .set_json(chat(
            json!({"stream": true, "max_tokens": 1000, "ignore_eos": true}),
        ))
        .to_request();
    let resp = actix_web::test::call_service(&service, req).await;
    assert_eq!(resp.status().as_u16(), 200);
    let mut body = Box::pin(resp.into_body());
    let mut events = 0;
    while events < 6 {
        let chunk = std::future::poll_fn(|cx| body.as_mut().poll_next(cx))
            .await
            .expect("the stream goes on")
            .unwrap_or_else(|_| panic!("body error"));
        events += String::from_utf8_lossy(&chunk).matches("data: ").count();
    }
    assert_eq!(backend.metrics().scheduler.num_requests_running, 1);
    drop(body);
    let started = std::time::Instant::now();
    loop {
        let s = backend.metrics().scheduler;
        if s.num_requests_running == 0 && s.num_requests_waiting == 0 {
            assert!(
                s.generation_tokens_total < 1000,
                "{}",
                s.generation_tokens_total
            );
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(1),
            "still running a second after the client left: {s:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

#[actix_web::test]
async fn tokenize_and_detokenize_round_trip() {
    let (app, key) = app().await;
    let backend = served_model();
    let model = backend.engine_model();
    let expected = model.tokenizer.encode("Hello world", true).unwrap();
    let body = app
        .post(
            "/v1/tokenize",
            Some(&key),
            json!({"model": DEFAULT_MODEL_ID, "prompt": "Hello world"}),
        )
        .await
        .expect(200);
    assert_eq!(body["tokens"], json!(expected));
    assert_eq!(body["count"], expected.len());
    assert!(body["max_model_len"].as_u64().unwrap() > 0);

    // Messages are rendered through the chat template: the same ids chat completions use.
    let (prompt, _, _) = engine_reference(1);
    let chat = app
        .post(
            "/v1/tokenize",
            Some(&key),
            json!({"model": DEFAULT_MODEL_ID, "messages": [{"role": "user", "content": PROMPT}]}),
        )
        .await
        .expect(200);
    assert_eq!(chat["tokens"], json!(prompt));

    let text = app
        .post(
            "/v1/detokenize",
            Some(&key),
            json!({"model": DEFAULT_MODEL_ID, "tokens": expected}),
        )
        .await
        .expect(200);
    let expected_text = model.tokenizer.decode(&expected, false).unwrap();
    assert_eq!(text["prompt"], expected_text.as_str());
    assert!(text["prompt"].as_str().unwrap().ends_with("Hello world"));

    app.post(
        "/v1/detokenize",
        Some(&key),
        json!({"model": DEFAULT_MODEL_ID, "tokens": [10_000_000]}),
    )
    .await
    .expect_error(400, Some("tokens"));
    app.post(
        "/v1/tokenize",
        Some(&key),
        json!({"model": DEFAULT_MODEL_ID}),
    )
    .await
    .expect_error(400, Some("prompt"));
}

/// Requests run in the scheduler as the key's organization.
#[actix_web::test]
async fn requests_run_as_the_keys_organization() {
    let app = TestApp::new(Backend::Sqlite).await.with_model();
    let owner = app.signup("tenant@example.com").await;
    let project = app.default_project(&owner.access).await;
    let (_, key) = app
        .create_key(&owner.access, &project, &["inference"])
        .await;
    app.post(
        "/v1/chat/completions",
        Some(&key),
        chat(json!({"max_tokens": 4})),
    )
    .await
    .expect(200);
    let stats = served_model().metrics().scheduler;
    let tenant = stats
        .tenants
        .get(owner.tenant_id.as_str())
        .unwrap_or_else(|| panic!("no stats for {}: {stats:?}", owner.tenant_id));
    assert!(tenant.generation_tokens_total >= 1, "{tenant:?}");
}

/// A full queue: 429 when this organization is over its share, 503 when the whole server is,
/// both with `Retry-After`.
#[actix_web::test]
async fn full_queues_answer_429_or_503_with_retry_after() {
    use scheduler::{AdmissionLimits, SchedulerConfig};
    use std::sync::Arc;

    let cases = [
        (
            AdmissionLimits {
                max_waiting_tokens_per_tenant: 5,
                ..AdmissionLimits::default()
            },
            429,
            "rate_limit_exceeded",
        ),
        (
            AdmissionLimits {
                max_waiting_tokens: 5,
                ..AdmissionLimits::default()
            },
            503,
            "server_overloaded",
        ),
    ];
    for (admission, status, code) in cases {
        let backend = gateway::inference::InProcessBackend::start_with(
            DEFAULT_MODEL_ID,
            served_model().engine_model().clone(),
            SchedulerConfig {
                admission,
                ..SchedulerConfig::default()
            },
            16 << 20,
        )
        .unwrap();
        let mut app = TestApp::new(Backend::Sqlite).await;
        app.state = app.state.with_inference(Arc::new(backend));
        let key = app.inference_key().await;
        let resp = app
            .post("/v1/chat/completions", Some(&key), chat(json!({})))
            .await;
        assert_eq!(resp.header("retry-after"), "1", "{}", resp.body);
        let err = resp.expect_error(status, None);
        assert_eq!(err["code"], code);
    }
}
