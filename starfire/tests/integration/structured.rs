//! Structured outputs through the API with the real default model: every answer under a JSON
//! schema, JSON mode, a regex, a choice or a Lark grammar is checked here independently of the
//! engine (serde with `deny_unknown_fields`, the `regex` crate), at temperature 0 and 1.

use std::sync::Arc;

use gateway::inference::InProcessBackend;
use gateway::registry::DEFAULT_MODEL_ID;
use regex::Regex;
use serde::Deserialize;
use serde_json::{json, Value};

use futures_util::SinkExt;

use crate::chat_ws::{answers as ws_answers, connect, request_frame};
use crate::inference::app;
use crate::support::{merged, sse_events, temperatures, Backend, TestApp};

fn person_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "name": {"type": "string", "minLength": 2, "maxLength": 12, "pattern": "^[A-Z][a-z]+$"},
            "age": {"type": "integer", "minimum": 18, "maximum": 99},
            "score": {"type": "number", "minimum": 0, "maximum": 1},
            "color": {"enum": ["red", "green", "blue"]},
            "tags": {"type": "array", "items": {"type": "string", "maxLength": 8},
                     "minItems": 1, "maxItems": 3},
            "address": {
                "type": "object",
                "properties": {
                    "city": {"type": "string", "minLength": 1, "maxLength": 16},
                    "zip": {"type": "string", "pattern": "^[0-9]{5}$"}
                },
                "required": ["city", "zip"],
                "additionalProperties": false
            },
            "active": {"type": "boolean"},
            "nickname": {"type": "string", "maxLength": 10}
        },
        "required": ["name", "age", "score", "color", "tags", "address", "active"],
        "additionalProperties": false
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Person {
    name: String,
    age: i64,
    score: f64,
    color: String,
    tags: Vec<String>,
    address: Address,
    #[allow(dead_code)]
    active: bool,
    nickname: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Address {
    city: String,
    zip: String,
}

/// Checks `text` against `person_schema()` keyword by keyword.
#[track_caller]
fn assert_person(text: &str) {
    let p: Person = serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"));
    let chars = |s: &str| s.chars().count();
    assert!(
        (2..=12).contains(&chars(&p.name))
            && Regex::new("^[A-Z][a-z]+$").unwrap().is_match(&p.name),
        "name: {text}"
    );
    assert!((18..=99).contains(&p.age), "age: {text}");
    assert!((0.0..=1.0).contains(&p.score), "score: {text}");
    assert!(
        ["red", "green", "blue"].contains(&p.color.as_str()),
        "color: {text}"
    );
    assert!((1..=3).contains(&p.tags.len()), "tags: {text}");
    assert!(p.tags.iter().all(|t| chars(t) <= 8), "tags: {text}");
    assert!((1..=16).contains(&chars(&p.address.city)), "city: {text}");
    assert!(
        Regex::new("^[0-9]{5}$").unwrap().is_match(&p.address.zip),
        "zip: {text}"
    );
    assert!(
        p.nickname.is_none_or(|n| chars(&n) <= 10),
        "nickname: {text}"
    );
}

fn chat(content: &str, extra: Value) -> Value {
    let mut body = json!({
        "model": DEFAULT_MODEL_ID,
        "messages": [{"role": "user", "content": content}],
        "max_tokens": 300,
    });
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    body
}

/// The contents and finish reasons of a chat completion.
async fn answers(app: &TestApp, key: &str, body: Value) -> Vec<(String, String)> {
    let body = app
        .post("/v1/chat/completions", Some(key), body)
        .await
        .expect(200);
    body["choices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["message"]["content"].as_str().unwrap().to_owned(),
                c["finish_reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[actix_web::test]
async fn json_schema_answers_validate_against_the_schema() {
    let (app, key) = app().await;
    let format = json!({"response_format": {"type": "json_schema", "json_schema":
        {"name": "person", "schema": person_schema(), "strict": true}}});
    for t in temperatures() {
        let body = chat("Describe a person as JSON.", merged(format.clone(), &t));
        for (text, finish) in answers(&app, &key, body).await {
            assert_eq!(finish, "stop", "{t}: {text}");
            assert_person(&text);
        }
    }
}

/// JSON mode bounds nothing but the syntax: at temperature 1 a model this small may write an
/// object until `max_tokens` cuts it (`finish_reason: "length"`, as OpenAI's JSON mode warns).
/// Every answer that ends by itself is one object, and the greedy one ends.
#[actix_web::test]
async fn json_mode_gives_an_object() {
    let (app, key) = app().await;
    let mut ended = 0;
    for (i, t) in temperatures().into_iter().enumerate() {
        let body = chat(
            "Give the name and age of a cat as JSON.",
            merged(json!({"response_format": {"type": "json_object"}}), &t),
        );
        for (text, finish) in answers(&app, &key, body).await {
            assert!(text.starts_with('{'), "{t}: {text}");
            if i == 0 {
                assert_eq!(finish, "stop", "greedy: {text}");
            }
            if finish == "stop" {
                ended += 1;
                let v: Value =
                    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
                assert!(v.is_object(), "{text}");
            } else {
                assert_eq!(finish, "length", "{t}: {text}");
            }
        }
    }
    assert!(ended > 1, "some sampled answers end by themselves too");
}

#[actix_web::test]
async fn regex_choice_and_grammar_are_obeyed() {
    let (app, key) = app().await;
    let phone = Regex::new(r"^\(\d{3}\) \d{3}-\d{4}$").unwrap();
    let sum = Regex::new(r"^[0-9]{1,3} \+ [0-9]{1,3} = [0-9]{1,4}$").unwrap();
    let grammar =
        "start: NUM \" + \" NUM \" = \" RESULT\nNUM: /[0-9]{1,3}/\nRESULT: /[0-9]{1,4}/\n";
    for t in temperatures() {
        let body = chat(
            "Write a phone number.",
            merged(
                json!({"structured_outputs": {"regex": r"\(\d{3}\) \d{3}-\d{4}"}}),
                &t,
            ),
        );
        for (text, finish) in answers(&app, &key, body).await {
            assert!(phone.is_match(&text), "{t}: {text:?}");
            assert_eq!(finish, "stop");
        }
        let body = chat(
            "Is the sky blue?",
            merged(json!({"guided_choice": ["yes", "no", "it depends"]}), &t),
        );
        for (text, _) in answers(&app, &key, body).await {
            assert!(
                ["yes", "no", "it depends"].contains(&text.as_str()),
                "{t}: {text:?}"
            );
        }
        let body = chat(
            "Add two numbers.",
            merged(json!({"guided_grammar": grammar}), &t),
        );
        for (text, finish) in answers(&app, &key, body).await {
            assert!(sum.is_match(&text), "{t}: {text:?}");
            assert_eq!(finish, "stop");
        }
    }
    // The text completions route takes the same fields.
    let body = app
        .post(
            "/v1/completions",
            Some(&key),
            json!({"model": DEFAULT_MODEL_ID, "prompt": "The answer is", "max_tokens": 20,
                   "temperature": 0, "structured_outputs": {"choice": ["A", "B", "C"]}}),
        )
        .await
        .expect(200);
    let text = body["choices"][0]["text"].as_str().unwrap();
    assert!(["A", "B", "C"].contains(&text), "{body}");
    // vLLM's guided_json, as the schema's text.
    let body = chat(
        "Describe a person as JSON.",
        json!({"temperature": 0, "guided_json": person_schema().to_string()}),
    );
    for (text, _) in answers(&app, &key, body).await {
        assert_person(&text);
    }
}

#[actix_web::test]
async fn a_streamed_constrained_answer_equals_the_plain_one() {
    let (app, key) = app().await;
    let body = chat(
        "Describe a person as JSON.",
        json!({"temperature": 0, "response_format": {"type": "json_schema",
               "json_schema": {"name": "person", "schema": person_schema()}}}),
    );
    let plain = answers(&app, &key, body.clone()).await;
    let resp = app
        .post(
            "/v1/chat/completions",
            Some(&key),
            merged(body.clone(), &json!({"stream": true})),
        )
        .await;
    assert_eq!(resp.status.as_u16(), 200, "{}", resp.body);
    let mut text = String::new();
    for event in sse_events(&resp.body) {
        if event == "[DONE]" {
            continue;
        }
        let chunk: Value = serde_json::from_str(&event).unwrap();
        text.push_str(
            chunk["choices"][0]["delta"]["content"]
                .as_str()
                .unwrap_or_default(),
        );
    }
    assert_eq!(text, plain[0].0);
    assert_person(&text);

    // The chat WebSocket takes the same request and streams the same answer.
    let server = app.serve();
    let mut ws = connect(&server, Some(&key), "").await.expect("upgrade");
    ws.send(request_frame("j", &body)).await.unwrap();
    let got = ws_answers(&mut ws, &["j"]).await;
    assert_eq!(got["j"].last["type"], "chat.done", "{:?}", got["j"].last);
    assert_eq!(got["j"].texts, vec![plain[0].0.clone()]);
}

#[actix_web::test]
async fn what_cannot_be_enforced_is_a_400_naming_it() {
    let (app, key) = app().await;
    let refused = |extra: Value| chat("Hi", extra);
    let cases: Vec<(Value, &str, &str)> = vec![
        (
            json!({"response_format": {"type": "json_schema", "json_schema": {"name": "x",
                   "schema": {"type": "array", "uniqueItems": true}}}}),
            "response_format",
            "uniqueItems",
        ),
        (
            json!({"response_format": {"type": "json_schema", "json_schema": {"name": "no spaces",
                   "schema": {"type": "object"}}}}),
            "response_format.json_schema.name",
            "letters",
        ),
        (
            json!({"structured_outputs": {"regex": "(unclosed"}}),
            "structured_outputs.regex",
            "cannot be enforced",
        ),
        (
            json!({"guided_grammar": "start: undefined_rule"}),
            "guided_grammar",
            "cannot be enforced",
        ),
        (json!({"guided_choice": []}), "guided_choice", "choices"),
        (
            json!({"guided_regex": "a+", "response_format": {"type": "json_object"}}),
            "guided_regex",
            "response_format",
        ),
        (
            json!({"response_format": {"type": "json_object"}, "ignore_eos": true}),
            "ignore_eos",
            "response_format",
        ),
        (
            json!({"structured_outputs": {}}),
            "structured_outputs",
            "json",
        ),
        (json!({"guided_json": "{not json"}), "guided_json", "JSON"),
    ];
    for (extra, param, says) in cases {
        let error = app
            .post("/v1/chat/completions", Some(&key), refused(extra.clone()))
            .await
            .expect_error(400, Some(param));
        let message = error["message"].as_str().unwrap();
        assert!(message.contains(says), "{extra}: {message}");
    }
    // An unknown response_format type is refused by the request's own schema.
    app.post(
        "/v1/chat/completions",
        Some(&key),
        refused(json!({"response_format": {"type": "xml"}})),
    )
    .await
    .expect_error(400, None);
}

/// A KV cache far too small for the load: sequences are preempted and recomputed, and every
/// constrained choice (two per request) still follows its schema.
#[actix_web::test]
async fn constraints_survive_preemption_and_several_choices() {
    let path = engine::model_cache::find_default_model().expect("the default model");
    let model = Arc::new(engine::Model::load(&path).expect("load the default model"));
    let backend = Arc::new(
        InProcessBackend::start(DEFAULT_MODEL_ID, model, 12 << 20).expect("start the engine"),
    );
    let app = TestApp::new(Backend::Sqlite).await;
    let app = app.sharing(app.state.clone().with_inference(backend.clone()));
    let key = app.inference_key().await;
    let format = json!({"response_format": {"type": "json_schema", "json_schema":
        {"name": "person", "schema": person_schema()}}, "temperature": 1, "n": 2});
    let requests = (0..6).map(|seed| {
        let body = chat(
            "Describe a person as JSON.",
            merged(format.clone(), &json!({"seed": seed})),
        );
        let (app, key) = (&app, &key);
        async move { answers(app, key, body).await }
    });
    for choices in futures_util::future::join_all(requests).await {
        assert_eq!(choices.len(), 2);
        for (text, finish) in choices {
            assert_eq!(finish, "stop", "{text}");
            assert_person(&text);
        }
    }
    let metrics = backend.metrics();
    assert!(
        metrics.scheduler.num_preemptions_total > 0,
        "the cache was meant to be too small: {:?}",
        metrics.scheduler
    );
}
