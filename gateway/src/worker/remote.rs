//! A model served by a pool of Starfire workers, behind the same seam as the in-process engine.
//!
//! The gateway keeps the model's text side (tokenizer, chat template) and tokenizes here, so
//! the prompt it meters is the prompt the worker runs; the worker gets token ids and streams
//! deltas back (`protocol::wire`). Dropping the delta stream before its end ends the task that
//! reads the worker's answer, which closes the connection, which aborts the request on the
//! worker. A worker that breaks off mid-stream ends the stream with an `error` finish and the
//! usage of what was received: the client is billed exactly the tokens it got.

use std::sync::Arc;

use engine::TextModel;
use hyper::body::{Body, Bytes, Incoming};
use protocol::wire::{EmbedAnswer, EmbedBody, GenerateBody, EMBED_PATH, GENERATE_PATH};
use protocol::wire::{PRIORITY_HEADER, REQUEST_ID_HEADER, TENANT_HEADER, WEIGHT_HEADER};
use protocol::{
    BackendError, BoxFuture, ChatMessage, Delta, DeltaStream, FinishReason, NewRequest,
    SamplingDefaults, ServedModel, StructuredOutput, ToolDefinition, Usage,
};
use tokio::sync::mpsc::{unbounded_channel, UnboundedSender};

use super::affinity::prefix_keys;
use super::pool::{read_all, InFlight, WorkerPool};
use crate::inference::text;

/// Largest embedding answer read from a worker.
const MAX_EMBEDDING_BODY: usize = 16 << 20;

pub struct RemoteModel {
    name: String,
    /// The model's name on the workers (a deployment's replicas serve it under their own).
    worker_model: String,
    price_key: Option<String>,
    created: u64,
    text: TextModel,
    max_model_len: usize,
    defaults: SamplingDefaults,
    pool: Arc<WorkerPool>,
}

impl RemoteModel {
    pub fn new(
        name: String,
        text: TextModel,
        max_model_len: Option<usize>,
        defaults: SamplingDefaults,
        pool: WorkerPool,
    ) -> Self {
        let created = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let trained = text.config.max_position_embeddings;
        RemoteModel {
            worker_model: name.clone(),
            price_key: None,
            name,
            created,
            max_model_len: max_model_len.map_or(trained, |m| m.min(trained)),
            text,
            defaults,
            pool: Arc::new(pool),
        }
    }

    pub fn created(&self) -> u64 {
        self.created
    }

    /// Sends requests for the model under `name` (the name the workers serve it under).
    pub fn with_worker_model(mut self, name: String) -> Self {
        self.worker_model = name;
        self
    }

    /// Prices its tokens as the catalog's `key` instead of its name.
    pub fn with_price_key(mut self, key: String) -> Self {
        self.price_key = Some(key);
        self
    }

    /// The workers it runs on.
    pub fn pool(&self) -> &Arc<WorkerPool> {
        &self.pool
    }

    /// This gateway's requests in flight on each worker, as Prometheus samples.
    pub fn prometheus(&self) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        for (url, n) in self.pool.in_flight() {
            let _ = writeln!(
                out,
                "starfire_worker_requests_in_flight{{model=\"{}\",worker=\"{}\"}} {n}",
                self.name.replace('"', ""),
                url.replace('"', "")
            );
        }
        out
    }
}

impl ServedModel for RemoteModel {
    fn name(&self) -> &str {
        &self.name
    }

    fn price_key(&self) -> Option<&str> {
        self.price_key.as_deref()
    }

    fn max_model_len(&self) -> usize {
        self.max_model_len
    }

    fn vocab_size(&self) -> usize {
        self.text.config.vocab_size
    }

    fn defaults(&self) -> &SamplingDefaults {
        &self.defaults
    }

    fn chat_prompt(
        &self,
        messages: &[ChatMessage],
        tools: &[ToolDefinition],
        add_generation_prompt: bool,
    ) -> Result<Vec<u32>, BackendError> {
        text::chat_prompt(
            &self.name,
            &self.text.tokenizer,
            self.text.chat_template.as_ref(),
            messages,
            tools,
            add_generation_prompt,
        )
    }

    fn encode(&self, text: &str, add_special: bool) -> Result<Vec<u32>, BackendError> {
        text::encode(&self.text.tokenizer, text, add_special)
    }

    fn decode(&self, ids: &[u32]) -> Result<String, BackendError> {
        text::decode(&self.text.tokenizer, ids)
    }

    fn token_text(&self, id: u32) -> String {
        text::decode(&self.text.tokenizer, &[id]).unwrap_or_default()
    }

    fn check_structured(&self, spec: &StructuredOutput, field: &str) -> Result<(), BackendError> {
        text::check_structured(&self.text.tokenizer, spec, field)
    }

    fn submit(&self, req: NewRequest) -> BoxFuture<'_, Result<DeltaStream, BackendError>> {
        Box::pin(async move {
            let prompt_tokens = req.prompt_token_ids.len();
            let prefix = prefix_keys(
                &req.tenant,
                req.cache_salt.as_deref(),
                &req.prompt_token_ids,
            );
            let headers = [
                (TENANT_HEADER, req.tenant),
                (WEIGHT_HEADER, req.tenant_weight.to_string()),
                (PRIORITY_HEADER, req.priority.to_string()),
                (REQUEST_ID_HEADER, req.request_id.clone()),
            ];
            let body = GenerateBody {
                model: self.worker_model.clone(),
                prompt_token_ids: req.prompt_token_ids,
                params: req.params,
                cache_salt: req.cache_salt,
            };
            let body =
                serde_json::to_vec(&body).map_err(|e| BackendError::Internal(e.to_string()))?;
            let (claim, resp) = self
                .pool
                .call(
                    &self.name,
                    GENERATE_PATH,
                    &headers,
                    Bytes::from(body),
                    &prefix,
                )
                .await?;
            let (tx, rx) = unbounded_channel();
            let reader = Reader {
                request_id: req.request_id.clone(),
                prompt_tokens,
                chunk_timeout: self.pool.timeouts.chunk,
                tx,
            };
            let task = tokio::spawn(reader.run(resp.into_body(), claim));
            let abort = task.abort_handle();
            Ok(DeltaStream::new(
                req.request_id,
                rx,
                Box::new(move || abort.abort()),
            ))
        })
    }

    fn embed(&self, tokens: Vec<u32>) -> BoxFuture<'_, Result<Vec<f32>, BackendError>> {
        Box::pin(async move {
            let body = EmbedBody {
                model: self.worker_model.clone(),
                tokens,
            };
            let body =
                serde_json::to_vec(&body).map_err(|e| BackendError::Internal(e.to_string()))?;
            let (claim, resp) = self
                .pool
                .call(&self.worker_model, EMBED_PATH, &[], Bytes::from(body), &[])
                .await?;
            let bytes = read_all(
                resp.into_body(),
                MAX_EMBEDDING_BODY,
                self.pool.timeouts.chunk,
            )
            .await
            .map_err(|e| {
                claim.failed();
                BackendError::Internal(format!("worker {}: {e}", claim.url()))
            })?;
            serde_json::from_slice::<EmbedAnswer>(&bytes)
                .map(|a| a.embedding)
                .map_err(|e| BackendError::Internal(format!("worker {}: {e}", claim.url())))
        })
    }

    fn embedding_size(&self) -> usize {
        self.text.config.hidden_size
    }
}

/// Reads one generation's NDJSON from a worker into the delta stream.
struct Reader {
    request_id: String,
    prompt_tokens: usize,
    chunk_timeout: std::time::Duration,
    tx: UnboundedSender<Delta>,
}

impl Reader {
    async fn run(self, mut body: Incoming, claim: InFlight) {
        let mut pending: Vec<u8> = Vec::new();
        let mut received = 0usize;
        let failure = loop {
            let frame = match tokio::time::timeout(self.chunk_timeout, next_frame(&mut body)).await
            {
                Err(_) => break format!("no output for {} s", self.chunk_timeout.as_secs()),
                Ok(None) => break "the stream ended before the request finished".to_owned(),
                Ok(Some(Err(e))) => break e,
                Ok(Some(Ok(bytes))) => bytes,
            };
            pending.extend_from_slice(&frame);
            while let Some(end) = pending.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = pending.drain(..=end).collect();
                let delta: Delta = match serde_json::from_slice(&line[..line.len() - 1]) {
                    Ok(delta) => delta,
                    Err(e) => {
                        claim.failed();
                        self.end_early(received, &format!("unreadable output: {e}"), &claim);
                        return;
                    }
                };
                received += delta.tokens();
                let last = delta.usage.is_some();
                if self.tx.send(delta).is_err() || last {
                    return;
                }
            }
        };
        claim.failed();
        self.end_early(received, &failure, &claim);
    }

    /// The worker broke off: the stream ends with an error and the usage of what arrived.
    fn end_early(&self, received: usize, why: &str, claim: &InFlight) {
        tracing::warn!(request_id = %self.request_id, worker = %claim.url(), why, received,
            "worker stream broke off");
        let mut delta = Delta::empty(&self.request_id, 0);
        delta.finish_reason = Some(FinishReason::Error(format!(
            "the worker serving this request failed: {why}"
        )));
        delta.usage = Some(Usage {
            prompt_tokens: self.prompt_tokens,
            completion_tokens: received,
            cached_tokens: 0,
            num_preemptions: 0,
        });
        let _ = self.tx.send(delta);
    }
}

/// The next data chunk of a body (trailers skipped), `None` at its end.
pub(crate) async fn next_frame(body: &mut Incoming) -> Option<Result<Bytes, String>> {
    use http_body_util::BodyExt;
    loop {
        match body.frame().await? {
            Ok(frame) => match frame.into_data() {
                Ok(data) => return Some(Ok(data)),
                Err(_) if body.is_end_stream() => return None,
                Err(_) => continue,
            },
            Err(e) => return Some(Err(e.to_string())),
        }
    }
}
