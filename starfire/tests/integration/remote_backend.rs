//! The backend seam implemented outside the engine: a fake "remote" backend built from the
//! `protocol` crate alone (its own byte-level tokenizer, its deltas produced by a task, as a
//! client of a worker would), served through the real routes with keys, metering and aborts.

use gateway::store::TenantId;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gateway::store::usage::UsageStatus;
use protocol::{
    BackendError, BoxFuture, ChatMessage, Delta, DeltaStream, FinishReason, InferenceBackend,
    ModelCard, NewRequest, QueueScope, SamplingDefaults, ServedModel, ToolDefinition, Usage,
};
use serde_json::{json, Value};

use crate::support::{Backend, TestApp};

const NAME: &str = "remote-echo";
/// Token ids 0..3 are special; byte `b` is token `b + 3`.
const OFFSET: u32 = 3;
const EOS: u32 = 2;

/// A model behind a (pretend) network: it answers a prompt with the prompt's last line,
/// reversed, one byte per delta.
#[derive(Default)]
struct EchoWorker {
    defaults: SamplingDefaults,
    /// Request ids the worker was asked to abort.
    aborted: Arc<Mutex<Vec<String>>>,
    submitted: AtomicUsize,
}

impl EchoWorker {
    fn text_of(ids: &[u32]) -> String {
        let bytes: Vec<u8> = ids
            .iter()
            .filter(|&&id| id >= OFFSET)
            .map(|&id| (id - OFFSET) as u8)
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

/// The pool in front of the one worker.
struct EchoBackend(Arc<EchoWorker>);

impl InferenceBackend for EchoBackend {
    fn models(&self) -> Result<Vec<ModelCard>, BackendError> {
        Ok(vec![ModelCard {
            id: NAME.to_owned(),
            created: 1_700_000_000,
        }])
    }

    fn model(&self, name: &str) -> Result<Arc<dyn ServedModel>, BackendError> {
        if name.eq_ignore_ascii_case(NAME) {
            Ok(self.0.clone())
        } else {
            Err(BackendError::ModelNotFound(name.to_owned()))
        }
    }
}

impl ServedModel for EchoWorker {
    fn name(&self) -> &str {
        NAME
    }
    fn max_model_len(&self) -> usize {
        256
    }
    fn vocab_size(&self) -> usize {
        256 + OFFSET as usize
    }
    fn defaults(&self) -> &SamplingDefaults {
        &self.defaults
    }
    fn chat_prompt(
        &self,
        messages: &[ChatMessage],
        _: &[ToolDefinition],
        _: bool,
    ) -> Result<Vec<u32>, BackendError> {
        let text: String = messages
            .iter()
            .map(|m| format!("{}: {}\n", m.role, m.content))
            .collect();
        self.encode(text.trim_end(), true)
    }
    fn encode(&self, text: &str, _: bool) -> Result<Vec<u32>, BackendError> {
        Ok(text.bytes().map(|b| b as u32 + OFFSET).collect())
    }
    fn decode(&self, ids: &[u32]) -> Result<String, BackendError> {
        Ok(Self::text_of(ids))
    }
    fn token_text(&self, id: u32) -> String {
        Self::text_of(&[id])
    }
    fn submit(&self, req: NewRequest) -> BoxFuture<'_, Result<DeltaStream, BackendError>> {
        Box::pin(async move {
            self.submitted.fetch_add(1, Ordering::SeqCst);
            let prompt = Self::text_of(&req.prompt_token_ids);
            if prompt.contains("overload") {
                return Err(BackendError::QueueFull {
                    scope: QueueScope::Global,
                    what: "the worker's queue is full".into(),
                });
            }
            let line = prompt.lines().last().unwrap_or_default();
            let line = line.split_once(": ").map_or(line, |(_, content)| content);
            let answer: Vec<u32> = line.bytes().rev().map(|b| b as u32 + OFFSET).collect();
            let max = req.params.max_tokens.unwrap_or(usize::MAX);
            let (id, aborted) = (req.request_id.clone(), self.aborted.clone());
            let slow = prompt.contains("slowly");
            let (tx, stream) = DeltaStream::channel(
                req.request_id.clone(),
                Box::new(move || aborted.lock().unwrap().push(id)),
            );
            let prompt_tokens = req.prompt_token_ids.len();
            let request_id = req.request_id;
            tokio::spawn(async move {
                let mut sent = 0;
                for &token in answer.iter().chain([EOS].iter()) {
                    if slow {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    sent += 1;
                    let finish = if token == EOS {
                        Some(FinishReason::Stop)
                    } else if sent == max {
                        Some(FinishReason::Length)
                    } else {
                        None
                    };
                    let delta = Delta {
                        token_ids: vec![token],
                        text: EchoWorker::text_of(&[token]),
                        usage: finish.as_ref().map(|_| Usage {
                            prompt_tokens,
                            completion_tokens: sent,
                            ..Usage::default()
                        }),
                        finish_reason: finish.clone(),
                        ..Delta::empty(&request_id, 0)
                    };
                    if tx.send(delta).is_err() || finish.is_some() {
                        return;
                    }
                }
            });
            Ok(stream)
        })
    }
    fn embed(&self, _: Vec<u32>) -> BoxFuture<'_, Result<Vec<f32>, BackendError>> {
        Box::pin(async { Err(BackendError::Internal("no embeddings here".into())) })
    }
    fn embedding_size(&self) -> usize {
        0
    }
}

async fn remote_app() -> (TestApp, Arc<EchoWorker>, String, TenantId) {
    let mut app = TestApp::new(Backend::Sqlite).await;
    let worker = Arc::new(EchoWorker::default());
    app.state = app
        .state
        .with_inference(Arc::new(EchoBackend(worker.clone())));
    let owner = app.signup("remote@example.com").await;
    let project = app.default_project(&owner.access).await;
    let key = app
        .create_key(&owner.access, &project, &["inference"])
        .await
        .1;
    (app, worker, key, owner.tenant_id)
}

fn chat(content: &str, extra: Value) -> Value {
    let mut body = json!({"model": NAME, "messages": [{"role": "user", "content": content}]});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    body
}

#[actix_web::test]
async fn a_backend_outside_the_engine_serves_chat_through_the_real_routes() {
    let (app, _worker, key, tenant) = remote_app().await;

    let models = app.get("/v1/models", Some(&key)).await.expect(200);
    assert_eq!(models["data"][0]["id"], NAME);

    let body = app
        .post(
            "/v1/chat/completions",
            Some(&key),
            chat("stressed", json!({})),
        )
        .await
        .expect(200);
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["model"], NAME);
    assert_eq!(body["choices"][0]["message"]["content"], "desserts");
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    let prompt_tokens = "user: stressed".len() as u64;
    assert_eq!(body["usage"]["prompt_tokens"], prompt_tokens);
    assert_eq!(body["usage"]["completion_tokens"], 9);

    // The same answer streamed, cut by max_tokens, with usage at the end.
    let resp = app
        .post(
            "/v1/chat/completions",
            Some(&key),
            chat(
                "stressed",
                json!({"stream": true, "max_tokens": 4, "stream_options": {"include_usage": true}}),
            ),
        )
        .await;
    assert_eq!(resp.status.as_u16(), 200, "{}", resp.body);
    let text = resp.body.as_str().unwrap().to_owned();
    let events: Vec<&str> = text
        .split("\n\n")
        .filter(|e| !e.is_empty())
        .map(|e| e.strip_prefix("data: ").unwrap())
        .collect();
    assert_eq!(events.last(), Some(&"[DONE]"));
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    let content: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(content, "dess");
    let finish: Vec<&Value> = chunks
        .iter()
        .map(|c| &c["choices"][0]["finish_reason"])
        .filter(|f| !f.is_null())
        .collect();
    assert_eq!(finish, [&json!("length")]);
    assert_eq!(chunks.last().unwrap()["usage"]["completion_tokens"], 4);

    // Both requests were metered from the backend's usage.
    let mut completed: Vec<(u64, u64)> = Vec::new();
    for _ in 0..100 {
        completed = events_of(&app, &tenant).await;
        if completed.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    completed.sort();
    assert_eq!(completed, [(prompt_tokens, 4), (prompt_tokens, 9)]);
    let events = app
        .state
        .store
        .usage_events(&tenant, 0, i64::MAX)
        .await
        .unwrap();
    assert!(events.iter().all(|e| e.model == NAME), "{events:?}");
}

async fn events_of(app: &TestApp, tenant: &TenantId) -> Vec<(u64, u64)> {
    app.state
        .store
        .usage_events(tenant, 0, i64::MAX)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.status == UsageStatus::Completed)
        .map(|e| (e.prompt_tokens, e.completion_tokens))
        .collect()
}

/// A backend's typed refusal becomes the HTTP answer of the error table (503 with
/// `Retry-After` for a saturated server), and the prompts it had already accepted are aborted
/// through the stream's own abort.
#[actix_web::test]
async fn a_refusal_maps_to_its_status_and_aborts_what_was_already_submitted() {
    let (app, worker, key, _tenant) = remote_app().await;
    let resp = app
        .post(
            "/v1/completions",
            Some(&key),
            json!({"model": NAME, "prompt": ["take it slowly", "overload"], "max_tokens": 5}),
        )
        .await;
    assert_eq!(resp.status.as_u16(), 503, "{}", resp.body);
    assert_eq!(resp.body["error"]["code"], "server_overloaded");
    assert_eq!(resp.header("retry-after"), "1");
    assert_eq!(worker.submitted.load(Ordering::SeqCst), 2);
    let aborted = worker.aborted.lock().unwrap().clone();
    assert_eq!(aborted.len(), 1, "{aborted:?}");
    assert!(aborted[0].starts_with("cmpl-") && aborted[0].ends_with("-0"));

    // An unknown model is the table's 404, naming `model`.
    let error = app
        .post(
            "/v1/chat/completions",
            Some(&key),
            json!({"model": "other", "messages": [{"role": "user", "content": "x"}]}),
        )
        .await
        .expect_error(404, Some("model"));
    assert_eq!(error["code"], "model_not_found");
}
