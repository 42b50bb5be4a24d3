//! Tool calling through the API with the real default model: `required`, a named function,
//! `none`, `auto` and parallel calls, each call's arguments checked against its schema here
//! (serde with `deny_unknown_fields`), streamed calls over SSE and the WebSocket equal to the
//! non-streamed ones, and a conversation with tool results rendered through the template.

use std::collections::HashSet;

use engine::{ChatMessage, ToolCall, ToolDefinition};
use futures_util::SinkExt;
use gateway::registry::DEFAULT_MODEL_ID;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::chat_ws::{answers as ws_answers, connect, request_frame};
use crate::inference::app;
use crate::support::{merged, served_model, sse_events, temperatures, TestApp};

fn weather_parameters() -> Value {
    json!({
        "type": "object",
        "properties": {
            "city": {"type": "string", "minLength": 1, "maxLength": 24},
            "unit": {"enum": ["celsius", "fahrenheit"]},
            "days": {"type": "integer", "minimum": 1, "maximum": 7}
        },
        "required": ["city", "unit"],
        "additionalProperties": false
    })
}

fn tools() -> Value {
    json!([
        {"type": "function", "function": {
            "name": "get_weather",
            "description": "Get the weather forecast of a city.",
            "parameters": weather_parameters()}},
        {"type": "function", "function": {
            "name": "get_time",
            "description": "Get the current time."}}
    ])
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WeatherArgs {
    city: String,
    unit: String,
    days: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NoArgs {}

/// Checks a call's arguments against its function's schema, keyword by keyword.
#[track_caller]
fn assert_valid_call(call: &Value) {
    assert_eq!(call["type"], "function", "{call}");
    assert!(call["id"].as_str().unwrap().starts_with("call_"), "{call}");
    let arguments = call["function"]["arguments"].as_str().unwrap();
    match call["function"]["name"].as_str().unwrap() {
        "get_weather" => {
            let a: WeatherArgs =
                serde_json::from_str(arguments).unwrap_or_else(|e| panic!("{e}: {call}"));
            assert!((1..=24).contains(&a.city.chars().count()), "{call}");
            assert!(
                ["celsius", "fahrenheit"].contains(&a.unit.as_str()),
                "{call}"
            );
            assert!(a.days.is_none_or(|d| (1..=7).contains(&d)), "{call}");
        }
        "get_time" => {
            let _: NoArgs =
                serde_json::from_str(arguments).unwrap_or_else(|e| panic!("{e}: {call}"));
            assert_eq!(arguments, "{}", "{call}");
        }
        other => panic!("called '{other}', not one of the tools: {call}"),
    }
}

fn chat(content: &str, extra: Value) -> Value {
    let mut body = json!({
        "model": DEFAULT_MODEL_ID,
        "messages": [{"role": "user", "content": content}],
        "tools": tools(),
        "max_tokens": 120,
    });
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    body
}

async fn choices(app: &TestApp, key: &str, body: Value) -> Vec<Value> {
    let body = app
        .post("/v1/chat/completions", Some(key), body)
        .await
        .expect(200);
    body["choices"].as_array().unwrap().clone()
}

#[actix_web::test]
async fn required_gives_calls_whose_arguments_validate() {
    let (app, key) = app().await;
    for t in temperatures() {
        let body = chat(
            "What is the weather in Paris?",
            merged(json!({"tool_choice": "required"}), &t),
        );
        for choice in choices(&app, &key, body).await {
            let message = &choice["message"];
            assert!(message["content"].is_null(), "{choice}");
            let calls = message["tool_calls"].as_array().unwrap();
            let ids: HashSet<&str> = calls.iter().map(|c| c["id"].as_str().unwrap()).collect();
            assert_eq!(ids.len(), calls.len(), "ids are distinct: {choice}");
            // A sampled answer may go on calling until max_tokens cuts its last call short;
            // every call before that one is whole and valid.
            let whole = match choice["finish_reason"].as_str().unwrap() {
                "tool_calls" => calls.len(),
                "length" => calls.len() - 1,
                other => panic!("finish_reason {other}: {choice}"),
            };
            assert!(whole >= 1, "at least one whole call: {choice}");
            calls[..whole].iter().for_each(assert_valid_call);
        }
    }
}

#[actix_web::test]
async fn a_named_choice_calls_that_function_and_none_gives_text() {
    let (app, key) = app().await;
    for t in temperatures() {
        let named = json!({"tool_choice": {"type": "function", "function": {"name": "get_time"}}});
        let body = chat("What is the weather in Paris?", merged(named, &t));
        let whole = choices(&app, &key, body.clone()).await;
        for choice in &whole {
            // OpenAI finishes a forced function call with `stop`.
            assert_eq!(choice["finish_reason"], "stop", "{choice}");
            let calls = choice["message"]["tool_calls"].as_array().unwrap();
            assert_eq!(calls.len(), 1, "{choice}");
            assert_eq!(calls[0]["function"]["name"], "get_time", "{choice}");
            assert_valid_call(&calls[0]);
        }
        if t["temperature"] == 0 {
            // Streamed, the call without arguments is `{}` too, and finishes with `stop`.
            let (streamed, finish, content) = stream(&app, &key, &body).await;
            let calls = whole[0]["message"]["tool_calls"].as_array().unwrap();
            assert_eq!(without_ids(&streamed), without_ids(calls));
            assert_eq!(streamed[0]["function"]["arguments"], "{}");
            assert_eq!((finish, content), (vec!["stop".to_owned()], String::new()));
        }
        let body = chat(
            "What is the weather in Paris?",
            merged(json!({"tool_choice": "none", "max_tokens": 24}), &t),
        );
        for choice in choices(&app, &key, body).await {
            assert!(choice["message"]["content"].is_string(), "{choice}");
            assert!(choice["message"].get("tool_calls").is_none(), "{choice}");
            assert!(
                ["stop", "length"].contains(&choice["finish_reason"].as_str().unwrap()),
                "{choice}"
            );
        }
    }
}

#[actix_web::test]
async fn auto_answers_in_text_or_in_valid_calls() {
    let (app, key) = app().await;
    let mut kinds = HashSet::new();
    for (content, t) in [
        ("What is the weather in Paris?", json!({"temperature": 0})),
        (
            "Write one short sentence about cats.",
            json!({"temperature": 0}),
        ),
        (
            "What time is it?",
            json!({"temperature": 1, "seed": 5, "n": 4}),
        ),
    ] {
        for choice in choices(&app, &key, chat(content, t)).await {
            let message = &choice["message"];
            match message.get("tool_calls") {
                Some(calls) => {
                    kinds.insert("calls");
                    assert_eq!(choice["finish_reason"], "tool_calls", "{choice}");
                    calls.as_array().unwrap().iter().for_each(assert_valid_call);
                }
                None => {
                    kinds.insert("text");
                    let text = message["content"].as_str().unwrap();
                    assert!(!text.contains("<tool_call>"), "{choice}");
                }
            }
        }
    }
    assert!(!kinds.is_empty());

    // With a JSON response_format, the text branch is that JSON.
    let schema = json!({"type": "object", "properties": {"answer": {"type": "string", "maxLength": 40}},
                        "required": ["answer"], "additionalProperties": false});
    let body = chat(
        "Write one short sentence about cats.",
        json!({"temperature": 1, "seed": 3, "n": 4, "response_format": {"type": "json_schema",
               "json_schema": {"name": "answer", "schema": schema}}}),
    );
    for choice in choices(&app, &key, body).await {
        match choice["message"].get("tool_calls") {
            Some(calls) => calls.as_array().unwrap().iter().for_each(assert_valid_call),
            None => {
                let text = choice["message"]["content"].as_str().unwrap();
                let v: Value = serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"));
                assert!(
                    v["answer"].is_string() && v.as_object().unwrap().len() == 1,
                    "{text}"
                );
            }
        }
    }
}

/// The calls of a streamed answer, assembled from its `delta.tool_calls` pieces; checks that
/// each call's first piece has its id, type and name and the others only arguments.
#[track_caller]
fn assemble(pieces: &[Value]) -> Vec<Value> {
    let mut calls: Vec<Value> = Vec::new();
    for piece in pieces {
        let index = piece["index"].as_u64().unwrap() as usize;
        if index == calls.len() {
            assert!(piece["id"].is_string(), "{piece}");
            assert_eq!(piece["type"], "function", "{piece}");
            assert!(piece["function"]["name"].is_string(), "{piece}");
            assert_eq!(piece["function"]["arguments"], "", "{piece}");
            calls.push(json!({"id": piece["id"], "type": "function",
                "function": {"name": piece["function"]["name"], "arguments": ""}}));
        } else {
            assert_eq!(index + 1, calls.len(), "pieces come call by call: {piece}");
            assert!(piece.get("id").is_none() && piece["function"].get("name").is_none());
            let args = piece["function"]["arguments"].as_str().unwrap();
            let mut all = calls[index]["function"]["arguments"]
                .as_str()
                .unwrap()
                .to_owned();
            all.push_str(args);
            calls[index]["function"]["arguments"] = json!(all);
        }
    }
    calls
}

/// Calls without their ids (fresh per answer).
fn without_ids(calls: &[Value]) -> Vec<Value> {
    calls
        .iter()
        .map(|c| json!({"name": c["function"]["name"], "arguments": c["function"]["arguments"]}))
        .collect()
}

/// A streamed answer of one choice over SSE: its calls (assembled), finish reasons and text.
async fn stream(app: &TestApp, key: &str, body: &Value) -> (Vec<Value>, Vec<String>, String) {
    let resp = app
        .post(
            "/v1/chat/completions",
            Some(key),
            merged(body.clone(), &json!({"stream": true})),
        )
        .await;
    assert_eq!(resp.status.as_u16(), 200, "{}", resp.body);
    let mut pieces = Vec::new();
    let mut finish = Vec::new();
    let mut content = String::new();
    for event in sse_events(&resp.body) {
        if event == "[DONE]" {
            continue;
        }
        let chunk: Value = serde_json::from_str(&event).unwrap();
        let choice = &chunk["choices"][0];
        if let Some(calls) = choice["delta"].get("tool_calls") {
            assert_eq!(calls.as_array().unwrap().len(), 1, "{chunk}");
            assert!(choice["delta"].get("content").is_none(), "{chunk}");
            pieces.push(calls[0].clone());
        }
        content.push_str(choice["delta"]["content"].as_str().unwrap_or_default());
        if let Some(reason) = choice["finish_reason"].as_str() {
            finish.push(reason.to_owned());
        }
    }
    (assemble(&pieces), finish, content)
}

#[actix_web::test]
async fn parallel_calls_stream_as_they_answer_whole() {
    let (app, key) = app().await;
    // min_tokens holds EOS back after the first call, so the grammar's only way on is a
    // second call: parallel calls, deterministically.
    let body = chat(
        "What is the weather in Paris and in Rome?",
        json!({"tool_choice": "required", "temperature": 0, "min_tokens": 40, "max_tokens": 200}),
    );
    let whole = choices(&app, &key, body.clone()).await;
    assert_eq!(whole[0]["finish_reason"], "tool_calls", "{}", whole[0]);
    let calls = whole[0]["message"]["tool_calls"]
        .as_array()
        .unwrap()
        .clone();
    assert!(calls.len() >= 2, "{}", whole[0]);
    let ids: HashSet<&str> = calls.iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), calls.len());
    calls.iter().for_each(assert_valid_call);

    // Without parallel calls, one call ends the answer whatever min_tokens says.
    let single = merged(body.clone(), &json!({"parallel_tool_calls": false}));
    let one = choices(&app, &key, single).await;
    assert_eq!(
        one[0]["message"]["tool_calls"].as_array().unwrap().len(),
        1,
        "{}",
        one[0]
    );

    // SSE: the same calls, piece by piece.
    let (streamed, finish, content) = stream(&app, &key, &body).await;
    assert_eq!(content, "");
    assert_eq!(finish, vec!["tool_calls"]);
    assert_eq!(without_ids(&streamed), without_ids(&calls));

    // The WebSocket: the same pieces in `chat.delta` frames.
    let server = app.serve();
    let mut ws = connect(&server, Some(&key), "").await.expect("upgrade");
    ws.send(request_frame("t", &body)).await.unwrap();
    let got = ws_answers(&mut ws, &["t"]).await;
    assert_eq!(got["t"].last["type"], "chat.done", "{:?}", got["t"].last);
    assert_eq!(got["t"].last["finish_reason"], "tool_calls");
    let pieces: Vec<Value> = got["t"]
        .frames
        .iter()
        .filter_map(|f| f["delta"].get("tool_calls").map(|c| c[0].clone()))
        .collect();
    assert_eq!(without_ids(&assemble(&pieces)), without_ids(&calls));
}

#[actix_web::test]
async fn a_conversation_with_tool_results_round_trips_through_the_template() {
    let (app, key) = app().await;
    let first = chat(
        "What is the weather in Paris?",
        json!({"tool_choice": {"type": "function", "function": {"name": "get_weather"}},
               "temperature": 0}),
    );
    let answer = choices(&app, &key, first.clone()).await;
    let message = answer[0]["message"].clone();
    let call = message["tool_calls"][0].clone();
    // The assistant message goes back as the response gave it (content null, refusal null),
    // followed by the tool's result.
    let mut messages = first["messages"].as_array().unwrap().clone();
    messages.push(message.clone());
    messages
        .push(json!({"role": "tool", "tool_call_id": call["id"], "content": "18 degrees, sunny"}));
    let body = json!({"model": DEFAULT_MODEL_ID, "messages": messages, "tools": tools(),
                      "tool_choice": "none", "max_tokens": 30, "temperature": 0});
    let resp = app
        .post("/v1/chat/completions", Some(&key), body)
        .await
        .expect(200);
    assert!(
        resp["choices"][0]["message"]["content"].is_string(),
        "{resp}"
    );

    // The prompt is exactly the template's rendering of the conversation.
    let model = served_model();
    let engine = model.engine_model();
    let expected = engine
        .chat_template
        .as_ref()
        .unwrap()
        .render_with_tools(
            &[
                ChatMessage::new("user", "What is the weather in Paris?"),
                ChatMessage {
                    role: "assistant".into(),
                    tool_calls: vec![ToolCall::new(
                        call["id"].as_str().unwrap(),
                        call["function"]["name"].as_str().unwrap(),
                        call["function"]["arguments"].as_str().unwrap(),
                    )],
                    ..ChatMessage::default()
                },
                ChatMessage {
                    role: "tool".into(),
                    content: "18 degrees, sunny".into(),
                    tool_call_id: call["id"].as_str().map(str::to_owned),
                    ..ChatMessage::default()
                },
            ],
            &[] as &[ToolDefinition],
            true,
        )
        .unwrap();
    assert!(
        expected.contains("<tool_response>\n18 degrees, sunny\n</tool_response>"),
        "{expected}"
    );
    let tokens = engine.tokenizer.encode(&expected, true).unwrap();
    assert_eq!(resp["usage"]["prompt_tokens"], tokens.len(), "{resp}");
}

#[actix_web::test]
async fn tokenize_counts_the_prompt_a_chat_with_tools_gets() {
    let (app, key) = app().await;
    let body = chat(
        "What is the weather in Paris?",
        json!({"tool_choice": "required", "temperature": 0, "parallel_tool_calls": false}),
    );
    let answer = app
        .post("/v1/chat/completions", Some(&key), body.clone())
        .await
        .expect(200);
    let tokenize =
        json!({"model": DEFAULT_MODEL_ID, "messages": body["messages"], "tools": tools()});
    let counted = app
        .post("/v1/tokenize", Some(&key), tokenize.clone())
        .await
        .expect(200);
    assert_eq!(
        counted["count"], answer["usage"]["prompt_tokens"],
        "{counted}"
    );
    let without = app
        .post(
            "/v1/tokenize",
            Some(&key),
            json!({"model": DEFAULT_MODEL_ID, "messages": body["messages"]}),
        )
        .await
        .expect(200);
    assert!(
        without["count"].as_u64() < counted["count"].as_u64(),
        "the tools are in the prompt"
    );
    app.post(
        "/v1/tokenize",
        Some(&key),
        json!({"model": DEFAULT_MODEL_ID, "prompt": "hi", "tools": tools()}),
    )
    .await
    .expect_error(400, Some("tools"));
}

#[actix_web::test]
async fn bad_tool_requests_are_400s_naming_the_field() {
    let (app, key) = app().await;
    let cases: Vec<(Value, &str)> = vec![
        (json!({"tools": null, "tool_choice": "auto"}), "tool_choice"),
        (
            json!({"tools": null, "parallel_tool_calls": true}),
            "parallel_tool_calls",
        ),
        (
            json!({"tool_choice": {"type": "function", "function": {"name": "nope"}}}),
            "tool_choice.function.name",
        ),
        (
            json!({"tools": [{"type": "retrieval", "function": {"name": "f"}}]}),
            "tools[0].type",
        ),
        (
            json!({"tools": [{"type": "function", "function": {"name": "bad name"}}]}),
            "tools[0].function.name",
        ),
        (
            json!({"tools": [{"type": "function", "function": {"name": "f"}},
                             {"type": "function", "function": {"name": "f"}}]}),
            "tools[1].function.name",
        ),
        (
            json!({"tools": [{"type": "function", "function": {"name": "f",
                   "parameters": {"type": "object", "properties": {"a": {"type": "array", "uniqueItems": true}}}}}]}),
            "tools[0].function.parameters",
        ),
        (json!({"guided_regex": "[a-z]+"}), "guided_regex"),
        (
            json!({"messages": [{"role": "tool", "content": "18C"}]}),
            "messages[0].tool_call_id",
        ),
        (
            json!({"messages": [{"role": "user", "content": "hi", "tool_calls": []}]}),
            "messages[0].tool_calls",
        ),
        (
            json!({"messages": [{"role": "user"}]}),
            "messages[0].content",
        ),
        (
            json!({"messages": [{"role": "assistant", "content": null, "tool_calls": [
                {"id": "c1", "type": "code", "function": {"name": "f", "arguments": "{}"}}]}]}),
            "messages[0].tool_calls[0].type",
        ),
    ];
    for (extra, param) in cases {
        let mut body = chat("hi", extra.clone());
        if body["tools"].is_null() {
            body.as_object_mut().unwrap().remove("tools");
        }
        let err = app
            .post("/v1/chat/completions", Some(&key), body)
            .await
            .expect_error(400, Some(param));
        if param == "tools[0].function.parameters" {
            assert!(
                err["message"].as_str().unwrap().contains("uniqueItems"),
                "{err}"
            );
        }
    }
}
