//! Several models served at once, each with its own context length and sampling defaults; and
//! an engine that fails mid-stream.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use engine::ChatMessage;
use gateway::inference::{
    BackendError, BoxFuture, InProcessBackend, InferenceBackend, ModelCard, ModelOptions,
    ServedModel,
};
use gateway::registry::{SamplingDefaults, DEFAULT_MODEL_ID};
use protocol::{DeltaStream, NewRequest, ToolDefinition};
use scheduler::executor::{ExecutorError, ModelExecutor, SampledToken, StepPlan};
use scheduler::model_executor::{config_for_model, detokenizer_for, EngineExecutor};
use scheduler::{EngineLoop, SchedulerConfig};
use serde_json::{json, Value};

use crate::support::{served_model, Backend, TestApp};

/// Two names over the default model's weights: `small` with a 64-token context and a
/// configured `max_tokens` of 3, `big` with the model's own context and no defaults.
fn two_models() -> Arc<InProcessBackend> {
    let weights = served_model().engine_model().clone();
    let mut small = ModelOptions::new("small", 16 << 20);
    small.scheduler.max_model_len = 64;
    small.defaults = SamplingDefaults {
        temperature: Some(0.0),
        max_tokens: Some(3),
        ..SamplingDefaults::default()
    };
    let big = ModelOptions::new("big", 32 << 20);
    Arc::new(InProcessBackend::serve(vec![(small, weights.clone()), (big, weights)]).unwrap())
}

fn chat_to(model: &str, content: &str, extra: Value) -> Value {
    let mut body = json!({
        "model": model,
        "messages": [{"role": "user", "content": content}],
    });
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    body
}

async fn serve_models(backend: Arc<dyn InferenceBackend>) -> (TestApp, String) {
    let mut app = TestApp::new(Backend::Sqlite).await;
    app.state = app.state.with_inference(backend);
    let key = app.inference_key().await;
    (app, key)
}

#[actix_web::test]
async fn several_models_are_served_with_their_own_limits_and_defaults() {
    let backend = two_models();
    let (app, key) = serve_models(backend.clone()).await;

    let list = app.get("/v1/models", Some(&key)).await.expect(200);
    let ids: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["small", "big"]);
    app.get("/v1/models/BIG", Some(&key)).await.expect(200);
    let error = app
        .get("/v1/models/other", Some(&key))
        .await
        .expect_error(404, None);
    assert_eq!(error["code"], "model_not_found");

    // `small`'s configured max_tokens applies when the request gives none ...
    let body = app
        .post(
            "/v1/chat/completions",
            Some(&key),
            chat_to(
                "small",
                "Tell me a long story.",
                json!({"ignore_eos": true}),
            ),
        )
        .await
        .expect(200);
    assert_eq!(body["model"], "small");
    assert_eq!(body["usage"]["completion_tokens"], 3);
    assert_eq!(body["choices"][0]["finish_reason"], "length");
    // ... and a request's own value wins.
    let body = app
        .post(
            "/v1/chat/completions",
            Some(&key),
            chat_to(
                "small",
                "Tell me a long story.",
                json!({"ignore_eos": true, "max_tokens": 5}),
            ),
        )
        .await
        .expect(200);
    assert_eq!(body["usage"]["completion_tokens"], 5);

    // Its greedy default equals an explicit temperature 0 on the other model.
    let explicit = json!({"max_tokens": 3, "temperature": 0});
    let on_big = app
        .post(
            "/v1/chat/completions",
            Some(&key),
            chat_to("big", "Name a colour.", explicit),
        )
        .await
        .expect(200);
    let on_small = app
        .post(
            "/v1/chat/completions",
            Some(&key),
            chat_to("small", "Name a colour.", json!({})),
        )
        .await
        .expect(200);
    assert_eq!(
        on_big["choices"][0]["message"]["content"],
        on_small["choices"][0]["message"]["content"]
    );

    // `small`'s 64-token context refuses what `big` accepts.
    let long = "word ".repeat(80);
    let body = app
        .post(
            "/v1/chat/completions",
            Some(&key),
            chat_to("small", &long, json!({"max_tokens": 1})),
        )
        .await
        .expect(400);
    assert_eq!(body["error"]["code"], "context_length_exceeded");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("64 tokens"),
        "{body}"
    );
    app.post(
        "/v1/chat/completions",
        Some(&key),
        chat_to("big", &long, json!({"max_tokens": 1})),
    )
    .await
    .expect(200);

    // Each model has its own engine loop: `big`'s requests never ran on `small`'s.
    let small = backend.metrics_of("small").unwrap().scheduler;
    let big = backend.metrics_of("big").unwrap().scheduler;
    assert_eq!(small.generation_tokens_total, 3 + 5 + 3);
    assert_eq!(big.generation_tokens_total, 3 + 1);
}

/// The real executor, failing every step from the `fail_from`-th on.
struct FailingExecutor {
    inner: EngineExecutor,
    steps: Arc<AtomicU64>,
    fail_from: u64,
}

impl ModelExecutor for FailingExecutor {
    fn execute(&mut self, plan: &StepPlan) -> Result<Vec<SampledToken>, ExecutorError> {
        let step = self.steps.fetch_add(1, Ordering::SeqCst);
        if step >= self.fail_from {
            return Err(ExecutorError::Other("the device fell over".into()));
        }
        self.inner.execute(plan)
    }
}

/// The default model's tokenizer and template, generating on an engine that breaks.
struct BreakingModel {
    tokens: Arc<dyn ServedModel>,
    engine: EngineLoop,
}

impl ServedModel for BreakingModel {
    fn name(&self) -> &str {
        self.tokens.name()
    }
    fn max_model_len(&self) -> usize {
        self.tokens.max_model_len()
    }
    fn vocab_size(&self) -> usize {
        self.tokens.vocab_size()
    }
    fn defaults(&self) -> &SamplingDefaults {
        self.tokens.defaults()
    }
    fn chat_prompt(
        &self,
        m: &[ChatMessage],
        tools: &[ToolDefinition],
        add: bool,
    ) -> Result<Vec<u32>, BackendError> {
        self.tokens.chat_prompt(m, tools, add)
    }
    fn encode(&self, text: &str, add_special: bool) -> Result<Vec<u32>, BackendError> {
        self.tokens.encode(text, add_special)
    }
    fn decode(&self, ids: &[u32]) -> Result<String, BackendError> {
        self.tokens.decode(ids)
    }
    fn token_text(&self, id: u32) -> String {
        self.tokens.token_text(id)
    }
    fn submit(&self, req: NewRequest) -> BoxFuture<'_, Result<DeltaStream, BackendError>> {
        Box::pin(async move { Ok(self.engine.submit(req).await?) })
    }
    fn embed(&self, tokens: Vec<u32>) -> BoxFuture<'_, Result<Vec<f32>, BackendError>> {
        self.tokens.embed(tokens)
    }
    fn embedding_size(&self) -> usize {
        self.tokens.embedding_size()
    }
}

struct BreakingBackend(Arc<BreakingModel>);

impl InferenceBackend for BreakingBackend {
    fn models(&self) -> Result<Vec<ModelCard>, BackendError> {
        Ok(vec![ModelCard {
            id: DEFAULT_MODEL_ID.to_owned(),
            created: 0,
        }])
    }
    fn model(&self, name: &str) -> Result<Arc<dyn ServedModel>, BackendError> {
        if name == DEFAULT_MODEL_ID {
            Ok(self.0.clone())
        } else {
            Err(BackendError::ModelNotFound(name.to_owned()))
        }
    }
}

/// An engine that breaks after the prefill and a few decode steps: the streamed answer has the
/// tokens made so far, then an SSE error event (OpenAI's error body), and no `[DONE]`; the
/// non-streamed answer is a 500 with the same body shape.
#[actix_web::test]
async fn an_engine_failure_mid_stream_arrives_as_an_sse_error_event() {
    let weights = served_model().engine_model().clone();
    let config = config_for_model(&weights, SchedulerConfig::default(), 16 << 20);
    let steps = Arc::new(AtomicU64::new(0));
    let (m, c, s) = (weights.clone(), config.clone(), steps.clone());
    let engine = EngineLoop::spawn_with(config, detokenizer_for(&weights), move || {
        Ok(FailingExecutor {
            inner: EngineExecutor::new(m, &c)?,
            steps: s,
            fail_from: 5,
        })
    })
    .unwrap();
    let tokens = served_model().model(DEFAULT_MODEL_ID).unwrap();
    let backend = Arc::new(BreakingBackend(Arc::new(BreakingModel { tokens, engine })));
    let (app, key) = serve_models(backend).await;

    let body = chat_to(
        DEFAULT_MODEL_ID,
        "Count to one hundred.",
        json!({"stream": true, "max_tokens": 50, "ignore_eos": true, "temperature": 0}),
    );
    let resp = app.post("/v1/chat/completions", Some(&key), body).await;
    assert_eq!(resp.status.as_u16(), 200, "{}", resp.body);
    let text = resp.body.as_str().expect("an event stream").to_owned();
    let events: Vec<&str> = text
        .split("\n\n")
        .filter(|e| !e.is_empty())
        .map(|e| e.strip_prefix("data: ").expect("data events only"))
        .collect();
    assert!(!events.contains(&"[DONE]"), "{text}");
    let last: Value = serde_json::from_str(events.last().unwrap()).unwrap();
    assert_eq!(last["error"]["type"], "server_error", "{last}");
    assert!(last["choices"].is_null(), "{last}");
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    let content_chunks = chunks
        .iter()
        .filter(|c| {
            c["choices"][0]["delta"]["content"]
                .as_str()
                .is_some_and(|t| !t.is_empty())
        })
        .count();
    // The prefill step and four decode steps made five tokens before the failure.
    assert_eq!(content_chunks, 5, "{text}");
    assert!(chunks
        .iter()
        .all(|c| c["object"] == "chat.completion.chunk"));

    let body = app
        .post(
            "/v1/chat/completions",
            Some(&key),
            chat_to(DEFAULT_MODEL_ID, "Hi", json!({"max_tokens": 5})),
        )
        .await
        .expect(500);
    assert_eq!(body["error"]["type"], "server_error");
}
