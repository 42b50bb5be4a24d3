//! A model served by an OpenAI-compatible upstream (vLLM, llama.cpp's server, a Starfire
//! worker's OpenAI routes, a hosted provider), behind the same seam as the in-process engine.
//!
//! The upstream owns its tokenizer and chat template, so this model `owns_tokenizer`: routes
//! forward the request's messages or text, and admission counts the prompt by an estimate
//! until the upstream's usage gives the real count. A streamed request goes upstream with
//! `stream_options.include_usage` forced on, so that its last chunk carries the upstream's
//! usage and metering stays exact; each streamed piece of text counts as one token until then
//! (what a client that disconnects is billed). A request the client does not stream goes
//! upstream whole, and its answer carries the usage. Dropping the delta
//! stream ends the task reading the answer, which closes the connection, which aborts the
//! request upstream (vLLM and llama.cpp's server both do).

use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use protocol::{
    BackendError, BoxFuture, ChatMessage, Delta, DeltaStream, Embeddings, FinishReason,
    ForwardedPrompt, ForwardedRequest, InvalidParam, NewRequest, QueueScope, SamplingDefaults,
    SamplingParams, ServedModel, StructuredOutput, ToolAnswer, ToolDefinition, Usage,
};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use tokio::sync::mpsc::{unbounded_channel, UnboundedSender};

use protocol::wire::{PRIORITY_HEADER, TENANT_HEADER, WEIGHT_HEADER};

use super::pool::{read_all, Timeouts};
use super::remote::next_frame;

/// Largest error or embeddings answer read from an upstream.
const MAX_BODY: usize = 32 << 20;
/// Longest line of a streamed answer.
const MAX_LINE: usize = 4 << 20;
/// The context length assumed when the configuration gives none.
pub const DEFAULT_MAX_MODEL_LEN: usize = 8192;

/// Where an upstream is and how to reach it (`[models.openai]`).
#[derive(Clone)]
pub struct UpstreamSettings {
    /// Up to and including `/v1`: `https://api.example.com/v1`, `http://10.0.0.5:8000/v1`.
    pub base_url: String,
    /// Sent as `Authorization: Bearer`; never logged.
    pub api_key: Option<String>,
    /// The upstream's name for the model.
    pub model: String,
    pub timeouts: Timeouts,
    /// Send the organization, its weight and the priority in the worker headers, so that a
    /// Starfire worker upstream keeps tenants apart (fairness, prefix-cache isolation). Only
    /// for an upstream trusted with organization ids.
    pub forward_tenant: bool,
}

impl std::fmt::Debug for UpstreamSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamSettings")
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("model", &self.model)
            .field("timeouts", &self.timeouts)
            .field("forward_tenant", &self.forward_tenant)
            .finish()
    }
}

pub struct UpstreamModel {
    name: String,
    created: u64,
    max_model_len: usize,
    defaults: SamplingDefaults,
    settings: UpstreamSettings,
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

/// Which upstream route a request goes to, and how its chunks carry text.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Route {
    Chat,
    Completions,
}

impl UpstreamModel {
    /// The model `name` served by the upstream in `settings`; `base_url` must be an http:// or
    /// https:// URL.
    pub fn new(
        name: String,
        max_model_len: Option<usize>,
        defaults: SamplingDefaults,
        settings: UpstreamSettings,
    ) -> Result<Self, String> {
        let base = settings.base_url.trim_end_matches('/').to_owned();
        let uri: hyper::Uri = base
            .parse()
            .map_err(|e| format!("base_url '{base}' is not a URL: {e}"))?;
        if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.authority().is_none() {
            return Err(format!(
                "base_url '{base}' must be an http:// or https:// URL"
            ));
        }
        let mut http = HttpConnector::new();
        http.set_connect_timeout(Some(settings.timeouts.connect));
        http.set_nodelay(true);
        http.enforce_http(false);
        let connector = HttpsConnectorBuilder::new()
            .with_webpki_roots()
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        let created = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Ok(UpstreamModel {
            name,
            created,
            max_model_len: max_model_len.unwrap_or(DEFAULT_MAX_MODEL_LEN),
            defaults,
            settings: UpstreamSettings {
                base_url: base,
                ..settings
            },
            client,
        })
    }

    pub fn created(&self) -> u64 {
        self.created
    }

    /// What a route asking this gateway to `verb` for the model gets: a 400 naming `model`.
    fn not_here(&self, verb: &str) -> BackendError {
        BackendError::Unsupported {
            message: format!(
                "The model '{}' is served by an upstream with its own tokenizer; Starfire cannot \
                 {verb} for it.",
                self.name
            ),
            field: "model".to_owned(),
        }
    }

    /// POSTs `body` to `path` under the base URL; the answer's head, or why there is none.
    async fn post(
        &self,
        path: &str,
        body: &Value,
        caller: Option<&ForwardedRequest>,
    ) -> Result<Response<Incoming>, BackendError> {
        let body = serde_json::to_vec(body).map_err(|e| BackendError::Internal(e.to_string()))?;
        let mut req = Request::post(format!("{}{path}", self.settings.base_url))
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream");
        if let Some(key) = &self.settings.api_key {
            req = req.header("authorization", format!("Bearer {key}"));
        }
        if let Some(caller) = caller.filter(|_| self.settings.forward_tenant) {
            req = req
                .header(TENANT_HEADER, caller.tenant.as_str())
                .header(WEIGHT_HEADER, caller.tenant_weight.to_string())
                .header(PRIORITY_HEADER, caller.priority.to_string());
        }
        let req = req
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| BackendError::Internal(e.to_string()))?;
        let timeout = self.settings.timeouts.response;
        let resp = match tokio::time::timeout(timeout, self.client.request(req)).await {
            Ok(Ok(resp)) => resp,
            Ok(Err(e)) => return Err(self.unreachable(&e.to_string())),
            Err(_) => {
                return Err(self.unreachable(&format!("no answer within {} s", timeout.as_secs())))
            }
        };
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status();
        let text = read_all(resp.into_body(), MAX_BODY, self.settings.timeouts.chunk)
            .await
            .unwrap_or_default();
        Err(self.refusal(status, &text))
    }

    fn unreachable(&self, why: &str) -> BackendError {
        tracing::warn!(model = %self.name, upstream = %self.settings.base_url, why,
            "upstream unreachable");
        BackendError::QueueFull {
            scope: QueueScope::Global,
            what: format!("the upstream of '{}' is unreachable", self.name),
        }
    }

    /// The refusal an upstream's error answer means for the client: its complaints about the
    /// request pass on (400s with their message and `param`); everything else is the upstream's
    /// trouble, logged here and not shown (its key, its quota, its failures).
    fn refusal(&self, status: StatusCode, body: &[u8]) -> BackendError {
        #[derive(Deserialize, Default)]
        struct Body {
            #[serde(default)]
            error: ErrorFields,
        }
        #[derive(Deserialize, Default)]
        struct ErrorFields {
            #[serde(default)]
            message: Option<String>,
            #[serde(default)]
            param: Option<String>,
            #[serde(default)]
            code: Option<Value>,
        }
        let parsed: Body = serde_json::from_slice(body).unwrap_or_default();
        let message = parsed
            .error
            .message
            .unwrap_or_else(|| String::from_utf8_lossy(body).chars().take(500).collect());
        let code = parsed
            .error
            .code
            .as_ref()
            .and_then(Value::as_str)
            .unwrap_or("");
        match status.as_u16() {
            400 | 422
                if code == "context_length_exceeded" || message.contains("context length") =>
            {
                BackendError::ContextLengthExceeded(message)
            }
            400 | 422 => match parsed.error.param {
                Some(field) if !field.is_empty() => InvalidParam::new(field, message).into(),
                _ => BackendError::InvalidRequest(message),
            },
            429 | 503 => {
                tracing::warn!(model = %self.name, %status, %message, "upstream is saturated");
                BackendError::QueueFull {
                    scope: QueueScope::Global,
                    what: format!("the upstream of '{}' is saturated", self.name),
                }
            }
            _ => {
                tracing::error!(model = %self.name, %status, %message, "upstream refused a request");
                BackendError::Internal(format!("upstream answered {status}: {message}"))
            }
        }
    }

    /// The upstream request body for `req`: a stream with usage when the client streams, else
    /// a whole answer (which always carries usage).
    fn body(&self, route: Route, req: &ForwardedRequest) -> Value {
        let mut body = Map::new();
        body.insert("model".into(), json!(self.settings.model));
        match (&req.prompt, route) {
            (ForwardedPrompt::Chat(messages), _) => {
                body.insert("messages".into(), json!(messages));
            }
            (ForwardedPrompt::Text(text), _) => {
                body.insert("prompt".into(), json!(text));
            }
            (ForwardedPrompt::Tokens(ids), _) => {
                body.insert("prompt".into(), json!(ids));
            }
        }
        if req.stream {
            body.insert("stream".into(), json!(true));
            body.insert("stream_options".into(), json!({"include_usage": true}));
        }
        sampling_fields(&req.params, &mut body);
        Value::Object(body)
    }
}

/// `params` as OpenAI's request fields, with vLLM's extras only where they differ from the
/// defaults (so that an upstream without them, such as a hosted provider, accepts the request).
fn sampling_fields(p: &SamplingParams, body: &mut Map<String, Value>) {
    let d = SamplingParams::default();
    body.insert("n".into(), json!(p.n));
    body.insert("temperature".into(), json!(p.temperature));
    body.insert("top_p".into(), json!(p.top_p));
    if let Some(max) = p.max_tokens {
        body.insert("max_tokens".into(), json!(max));
    }
    if let Some(seed) = p.seed {
        body.insert("seed".into(), json!(seed));
    }
    if !p.stop.is_empty() {
        body.insert("stop".into(), json!(p.stop));
    }
    if p.presence_penalty != d.presence_penalty {
        body.insert("presence_penalty".into(), json!(p.presence_penalty));
    }
    if p.frequency_penalty != d.frequency_penalty {
        body.insert("frequency_penalty".into(), json!(p.frequency_penalty));
    }
    if !p.logit_bias.is_empty() {
        let bias: Map<String, Value> = p
            .logit_bias
            .iter()
            .map(|(id, b)| (id.to_string(), json!(b)))
            .collect();
        body.insert("logit_bias".into(), Value::Object(bias));
    }
    if p.top_k > 0 {
        body.insert("top_k".into(), json!(p.top_k));
    }
    if p.min_p != d.min_p {
        body.insert("min_p".into(), json!(p.min_p));
    }
    if p.repetition_penalty != d.repetition_penalty {
        body.insert("repetition_penalty".into(), json!(p.repetition_penalty));
    }
    if p.min_tokens != d.min_tokens {
        body.insert("min_tokens".into(), json!(p.min_tokens));
    }
    if p.ignore_eos {
        body.insert("ignore_eos".into(), json!(true));
    }
    if !p.stop_token_ids.is_empty() {
        body.insert("stop_token_ids".into(), json!(p.stop_token_ids));
    }
    // JSON in OpenAI's own fields (every OpenAI-compatible server has them); the other
    // constraints in vLLM's `structured_outputs`.
    match &p.structured {
        None => {}
        Some(StructuredOutput::JsonObject) => {
            body.insert("response_format".into(), json!({"type": "json_object"}));
        }
        Some(StructuredOutput::JsonSchema { schema }) => {
            body.insert(
                "response_format".into(),
                json!({"type": "json_schema",
                       "json_schema": {"name": "output", "schema": schema, "strict": true}}),
            );
        }
        Some(StructuredOutput::Regex { pattern }) => {
            body.insert("structured_outputs".into(), json!({"regex": pattern}));
        }
        Some(StructuredOutput::Choice { options }) => {
            body.insert("structured_outputs".into(), json!({"choice": options}));
        }
        Some(StructuredOutput::Grammar { lark }) => {
            body.insert("structured_outputs".into(), json!({"grammar": lark}));
        }
        // Tools in OpenAI's fields: the upstream renders and enforces them itself, and its
        // calls come back written in the hermes format (`HermesWriter`) for the gateway's
        // one parser of tool calls.
        Some(StructuredOutput::ToolCalls {
            functions,
            answer,
            parallel,
        }) => {
            let tools: Vec<Value> = functions
                .iter()
                .map(|f| {
                    let mut function = json!({"name": f.name, "parameters": f.parameters});
                    if let Some(description) = &f.description {
                        function["description"] = json!(description);
                    }
                    json!({"type": "function", "function": function})
                })
                .collect();
            body.insert("tools".into(), Value::Array(tools));
            let choice = match answer {
                ToolAnswer::Named { name } => {
                    json!({"type": "function", "function": {"name": name}})
                }
                ToolAnswer::Required => json!("required"),
                ToolAnswer::Auto => json!("auto"),
                ToolAnswer::AutoJson { schema } => {
                    body.insert(
                        "response_format".into(),
                        json!({"type": "json_schema",
                               "json_schema": {"name": "output", "schema": schema, "strict": true}}),
                    );
                    json!("auto")
                }
            };
            body.insert("tool_choice".into(), choice);
            body.insert("parallel_tool_calls".into(), json!(parallel));
        }
    }
}

fn no_tokenizer(name: &str) -> BackendError {
    BackendError::Internal(format!(
        "the model '{name}' is served by an upstream that tokenizes itself"
    ))
}

impl ServedModel for UpstreamModel {
    fn name(&self) -> &str {
        &self.name
    }

    /// The upstream enforces the constraint (and tools) itself, and refuses what it cannot.
    fn check_structured(&self, _spec: &StructuredOutput, _field: &str) -> Result<(), BackendError> {
        Ok(())
    }

    fn max_model_len(&self) -> usize {
        self.max_model_len
    }

    /// Unknown here: token ids in requests (`logit_bias`, token prompts) go upstream, which
    /// checks them.
    fn vocab_size(&self) -> usize {
        u32::MAX as usize
    }

    fn defaults(&self) -> &SamplingDefaults {
        &self.defaults
    }

    fn chat_prompt(
        &self,
        _: &[ChatMessage],
        _: &[ToolDefinition],
        _: bool,
    ) -> Result<Vec<u32>, BackendError> {
        Err(self.not_here("tokenize"))
    }

    fn encode(&self, _: &str, _: bool) -> Result<Vec<u32>, BackendError> {
        Err(self.not_here("tokenize"))
    }

    fn decode(&self, _: &[u32]) -> Result<String, BackendError> {
        Err(self.not_here("detokenize"))
    }

    fn token_text(&self, _: u32) -> String {
        String::new()
    }

    fn submit(&self, _: NewRequest) -> BoxFuture<'_, Result<DeltaStream, BackendError>> {
        Box::pin(async move { Err(no_tokenizer(&self.name)) })
    }

    fn embed(&self, _: Vec<u32>) -> BoxFuture<'_, Result<Vec<f32>, BackendError>> {
        Box::pin(async move { Err(no_tokenizer(&self.name)) })
    }

    /// Unknown until the upstream answers.
    fn embedding_size(&self) -> usize {
        0
    }

    fn owns_tokenizer(&self) -> bool {
        true
    }

    fn submit_forwarded(
        &self,
        req: ForwardedRequest,
    ) -> BoxFuture<'_, Result<DeltaStream, BackendError>> {
        Box::pin(async move {
            let route = match req.prompt {
                ForwardedPrompt::Chat(_) => Route::Chat,
                _ => Route::Completions,
            };
            let path = match route {
                Route::Chat => "/chat/completions",
                Route::Completions => "/completions",
            };
            let resp = self.post(path, &self.body(route, &req), Some(&req)).await?;
            let (tx, rx) = unbounded_channel();
            let reader = Reader {
                request_id: req.request_id.clone(),
                model: self.name.clone(),
                prompt_estimate: req.prompt.estimated_tokens(),
                route,
                n: req.params.n,
                chunk_timeout: self.settings.timeouts.chunk,
                tx,
                received: 0,
                finished: vec![false; req.params.n],
                calls: vec![HermesWriter::default(); req.params.n],
            };
            let task = if req.stream {
                tokio::spawn(reader.run(resp.into_body()))
            } else {
                tokio::spawn(reader.run_whole(resp.into_body()))
            };
            let abort = task.abort_handle();
            Ok(DeltaStream::new(
                req.request_id,
                rx,
                Box::new(move || abort.abort()),
            ))
        })
    }

    fn embed_forwarded(
        &self,
        input: Vec<ForwardedPrompt>,
    ) -> BoxFuture<'_, Result<Embeddings, BackendError>> {
        Box::pin(async move {
            let inputs: Vec<Value> = input
                .iter()
                .map(|p| match p {
                    ForwardedPrompt::Text(t) => json!(t),
                    ForwardedPrompt::Tokens(ids) => json!(ids),
                    ForwardedPrompt::Chat(m) => json!(m
                        .iter()
                        .map(|m| m.content.as_str())
                        .collect::<Vec<_>>()
                        .join("\n")),
                })
                .collect();
            let body = json!({"model": self.settings.model, "input": inputs,
                "encoding_format": "float"});
            let resp = self.post("/embeddings", &body, None).await?;
            let bytes = read_all(resp.into_body(), MAX_BODY, self.settings.timeouts.chunk)
                .await
                .map_err(|e| BackendError::Internal(format!("upstream embeddings: {e}")))?;
            parse_embeddings(&bytes, input.len())
                .map_err(|e| BackendError::Internal(format!("upstream embeddings: {e}")))
        })
    }
}

/// An upstream's `/embeddings` answer: the vectors in input order and the prompt tokens.
fn parse_embeddings(bytes: &[u8], inputs: usize) -> Result<Embeddings, String> {
    #[derive(Deserialize)]
    struct Answer {
        data: Vec<Item>,
        #[serde(default)]
        usage: Option<UsageFields>,
    }
    #[derive(Deserialize)]
    struct Item {
        index: usize,
        embedding: Vec<f32>,
    }
    let mut answer: Answer = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    if answer.data.len() != inputs {
        return Err(format!(
            "{} embeddings for {inputs} inputs",
            answer.data.len()
        ));
    }
    answer.data.sort_by_key(|i| i.index);
    Ok(Embeddings {
        prompt_tokens: answer.usage.map_or(0, |u| u.prompt_tokens),
        vectors: answer.data.into_iter().map(|i| i.embedding).collect(),
    })
}

#[derive(Deserialize, Default)]
struct UsageFields {
    #[serde(default)]
    prompt_tokens: usize,
    #[serde(default)]
    completion_tokens: usize,
    #[serde(default)]
    prompt_tokens_details: Option<PromptDetails>,
}

#[derive(Deserialize, Default)]
struct PromptDetails {
    #[serde(default)]
    cached_tokens: Option<usize>,
}

/// One chunk of an upstream's stream (chat or text completion).
#[derive(Deserialize)]
struct Chunk {
    #[serde(default)]
    choices: Vec<ChunkChoice>,
    #[serde(default)]
    usage: Option<UsageFields>,
    #[serde(default)]
    error: Option<Value>,
}

#[derive(Deserialize)]
struct ChunkChoice {
    #[serde(default)]
    index: usize,
    /// Chat: `delta.content`.
    #[serde(default)]
    delta: Option<ChunkDelta>,
    /// A whole chat answer: `message.content`.
    #[serde(default)]
    message: Option<ChunkDelta>,
    /// Text completions.
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct ChunkDelta {
    #[serde(default)]
    content: Option<String>,
    /// Pieces of calls (streamed), or whole calls (a whole answer).
    #[serde(default)]
    tool_calls: Option<Vec<ToolCallPiece>>,
}

#[derive(Deserialize)]
struct ToolCallPiece {
    /// Absent in a whole answer's list: the position then.
    #[serde(default)]
    index: Option<usize>,
    #[serde(default)]
    function: Option<FunctionPiece>,
}

#[derive(Deserialize)]
struct FunctionPiece {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    arguments: Option<String>,
}

/// Writes an upstream's tool calls of one choice as the hermes-format text the gateway parses
/// (`<tool_call>\n{"name": ..., "arguments": ...}\n</tool_call>`, calls separated by a newline).
#[derive(Debug, Default, Clone)]
struct HermesWriter {
    /// The upstream's index of the call being written, and whether it had arguments yet.
    open: Option<(usize, bool)>,
    calls: usize,
}

impl HermesWriter {
    /// The text of the pieces (in order; `position` numbers a whole answer's calls).
    fn pieces(&mut self, pieces: Vec<ToolCallPiece>, out: &mut String) {
        for (position, piece) in pieces.into_iter().enumerate() {
            let index = piece.index.unwrap_or(position);
            let function = piece.function.unwrap_or(FunctionPiece {
                name: None,
                arguments: None,
            });
            if self.open.map(|(i, _)| i) != Some(index) {
                self.close(out);
                if self.calls > 0 {
                    out.push('\n');
                }
                self.calls += 1;
                let name = serde_json::to_string(function.name.as_deref().unwrap_or_default())
                    .unwrap_or_default();
                out.push_str(&format!("<tool_call>\n{{\"name\": {name}, \"arguments\": "));
                self.open = Some((index, false));
            }
            if let Some(arguments) = function.arguments.filter(|a| !a.is_empty()) {
                out.push_str(&arguments);
                self.open = Some((index, true));
            }
        }
    }

    /// Ends the call being written (`{}` when it had no arguments).
    fn close(&mut self, out: &mut String) {
        if let Some((_, had_arguments)) = self.open.take() {
            if !had_arguments {
                out.push_str("{}");
            }
            out.push_str("}\n</tool_call>");
        }
    }
}

/// Reads one upstream stream into the delta stream.
struct Reader {
    request_id: String,
    model: String,
    /// The prompt's tokens as admission estimated them (stands if no usage arrives).
    prompt_estimate: usize,
    route: Route,
    n: usize,
    chunk_timeout: Duration,
    tx: UnboundedSender<Delta>,
    /// Pieces of text received (the token count until the usage arrives).
    received: usize,
    finished: Vec<bool>,
    /// Each choice's tool calls so far, as text.
    calls: Vec<HermesWriter>,
}

/// What one line of the stream says.
enum Line {
    Deltas(Vec<Delta>),
    Done,
    Failed(String),
    Nothing,
}

impl Reader {
    async fn run(mut self, mut body: Incoming) {
        let mut pending: Vec<u8> = Vec::new();
        let failure = 'read: loop {
            let frame = match tokio::time::timeout(self.chunk_timeout, next_frame(&mut body)).await
            {
                Err(_) => break format!("no output for {} s", self.chunk_timeout.as_secs()),
                Ok(None) => break "the stream ended before its usage".to_owned(),
                Ok(Some(Err(e))) => break e,
                Ok(Some(Ok(bytes))) => bytes,
            };
            pending.extend_from_slice(&frame);
            while let Some(end) = pending.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = pending.drain(..=end).collect();
                match self.line(&line) {
                    Line::Nothing => {}
                    Line::Failed(why) => break 'read why,
                    Line::Done => {
                        // `[DONE]` without a usage chunk: the counts made here stand.
                        tracing::warn!(model = %self.model, request_id = %self.request_id,
                            "upstream stream ended without usage; billing the pieces received");
                        let mut last = Delta::empty(&self.request_id, 0);
                        last.usage = Some(self.usage_received());
                        let _ = self.tx.send(last);
                        return;
                    }
                    Line::Deltas(deltas) => {
                        for delta in deltas {
                            let last = delta.usage.is_some();
                            if self.tx.send(delta).is_err() || last {
                                return;
                            }
                        }
                    }
                }
            }
            if pending.len() > MAX_LINE {
                break "a line of the stream is too long".to_owned();
            }
        };
        self.fail(&failure);
    }

    fn line(&mut self, raw: &[u8]) -> Line {
        let text = String::from_utf8_lossy(raw);
        let Some(data) = text.trim_end_matches(['\r', '\n']).strip_prefix("data:") else {
            return Line::Nothing;
        };
        let data = data.trim();
        if data == "[DONE]" {
            return Line::Done;
        }
        match serde_json::from_str(data) {
            Ok(chunk) => self.chunk(chunk),
            Err(e) => Line::Failed(format!("unreadable chunk: {e}")),
        }
    }

    /// Reads a whole (not streamed) answer into the delta stream.
    async fn run_whole(mut self, body: Incoming) {
        let failure = match read_all(body, MAX_BODY, self.chunk_timeout).await {
            Err(e) => e,
            Ok(bytes) => match serde_json::from_slice::<Chunk>(&bytes) {
                Err(e) => format!("unreadable answer: {e}"),
                Ok(answer) => {
                    let with_usage = answer.usage.is_some();
                    match self.chunk(answer) {
                        Line::Deltas(deltas) => {
                            for delta in deltas {
                                let _ = self.tx.send(delta);
                            }
                            if !with_usage {
                                let mut last = Delta::empty(&self.request_id, 0);
                                last.usage = Some(self.usage_received());
                                let _ = self.tx.send(last);
                            }
                            return;
                        }
                        Line::Failed(why) => why,
                        Line::Done | Line::Nothing => "an empty answer".to_owned(),
                    }
                }
            },
        };
        self.fail(&failure);
    }

    /// Ends the stream with an error and the usage of what arrived.
    fn fail(&self, why: &str) {
        tracing::warn!(model = %self.model, request_id = %self.request_id, why,
            received = self.received, "upstream answer broke off");
        let mut delta = Delta::empty(&self.request_id, 0);
        delta.finish_reason = Some(FinishReason::Error(format!(
            "the upstream serving this request failed: {why}"
        )));
        delta.usage = Some(self.usage_received());
        let _ = self.tx.send(delta);
    }

    /// The deltas of one chunk (or of a whole answer, whose choices carry `message`).
    fn chunk(&mut self, chunk: Chunk) -> Line {
        if let Some(error) = chunk.error {
            let message = error
                .get("message")
                .and_then(Value::as_str)
                .map_or_else(|| error.to_string(), str::to_owned);
            return Line::Failed(message);
        }
        let mut out = Vec::new();
        for c in chunk.choices {
            if c.index >= self.n {
                return Line::Failed(format!("choice {} of {}", c.index, self.n));
            }
            let piece = match self.route {
                Route::Chat => {
                    let writer = &mut self.calls[c.index];
                    let mut text = String::new();
                    if let Some(d) = c.delta.or(c.message) {
                        text = d.content.unwrap_or_default();
                        if let Some(pieces) = d.tool_calls {
                            writer.pieces(pieces, &mut text);
                        }
                    }
                    if c.finish_reason.as_deref().is_some_and(|r| !r.is_empty()) {
                        writer.close(&mut text);
                    }
                    Some(text)
                }
                Route::Completions => c.text,
            }
            .unwrap_or_default();
            let mut delta = Delta::empty(&self.request_id, c.index);
            if !piece.is_empty() {
                delta.opaque_tokens = 1;
                self.received += 1;
            }
            delta.text = piece;
            if let Some(reason) = c.finish_reason.filter(|r| !r.is_empty()) {
                delta.finish_reason = Some(match reason.as_str() {
                    "length" => FinishReason::Length,
                    _ => FinishReason::Stop,
                });
                self.finished[c.index] = true;
            }
            if delta.tokens() > 0 || delta.finish_reason.is_some() {
                out.push(delta);
            }
        }
        if let Some(usage) = chunk.usage {
            let mut last = Delta::empty(&self.request_id, 0);
            last.usage = Some(Usage {
                prompt_tokens: usage.prompt_tokens,
                completion_tokens: usage.completion_tokens,
                cached_tokens: usage
                    .prompt_tokens_details
                    .and_then(|d| d.cached_tokens)
                    .unwrap_or(0),
                num_preemptions: 0,
            });
            // Choices the upstream did not finish (it should have) end with `stop`.
            for (index, done) in self.finished.iter().enumerate() {
                if !done {
                    let mut d = Delta::empty(&self.request_id, index);
                    d.finish_reason = Some(FinishReason::Stop);
                    out.push(d);
                }
            }
            out.push(last);
        }
        Line::Deltas(out)
    }

    /// The usage when the upstream gives none: the prompt as admission estimated it and one
    /// token per piece of text received.
    fn usage_received(&self) -> Usage {
        Usage {
            prompt_tokens: self.prompt_estimate,
            completion_tokens: self.received,
            cached_tokens: 0,
            num_preemptions: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model() -> UpstreamModel {
        let settings = UpstreamSettings {
            base_url: "https://api.example.com/v1/".to_owned(),
            api_key: Some("sk-secret".to_owned()),
            model: "up".to_owned(),
            timeouts: Timeouts::default(),
            forward_tenant: false,
        };
        UpstreamModel::new("ours".into(), None, SamplingDefaults::default(), settings).unwrap()
    }

    fn reader(route: Route, n: usize) -> (Reader, tokio::sync::mpsc::UnboundedReceiver<Delta>) {
        let (tx, rx) = unbounded_channel();
        let reader = Reader {
            request_id: "r".into(),
            model: "ours".into(),
            prompt_estimate: 9,
            route,
            n,
            chunk_timeout: Duration::from_secs(1),
            tx,
            received: 0,
            finished: vec![false; n],
            calls: vec![HermesWriter::default(); n],
        };
        (reader, rx)
    }

    #[test]
    fn a_plain_request_sends_only_openai_fields_and_streams_with_usage_when_the_client_does() {
        let m = model();
        assert_eq!(m.settings.base_url, "https://api.example.com/v1");
        assert!(!format!("{:?}", m.settings).contains("sk-secret"));
        let mut params = SamplingParams {
            max_tokens: Some(5),
            ..SamplingParams::default()
        };
        let req = ForwardedRequest {
            request_id: "r".into(),
            tenant: "t".into(),
            tenant_weight: 1.0,
            priority: 0,
            prompt: ForwardedPrompt::Chat(vec![ChatMessage::new("user", "hi")]),
            params: params.clone(),
            stream: true,
        };
        let body = m.body(Route::Chat, &req);
        let mut keys: Vec<&str> = body
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "max_tokens",
                "messages",
                "model",
                "n",
                "stream",
                "stream_options",
                "temperature",
                "top_p"
            ]
        );
        assert_eq!(body["model"], "up");
        assert_eq!(body["stream_options"]["include_usage"], true);
        let whole = ForwardedRequest {
            stream: false,
            ..req.clone()
        };
        let body = m.body(Route::Chat, &whole);
        assert!(body.get("stream").is_none() && body.get("stream_options").is_none());
        params.top_k = 40;
        params.stop_token_ids = vec![7];
        let mut extras = Map::new();
        sampling_fields(&params, &mut extras);
        assert_eq!(extras["top_k"], 40);
        assert_eq!(extras["stop_token_ids"], json!([7]));
    }

    #[test]
    fn upstream_tool_calls_become_hermes_text() {
        let piece =
            |index: Option<usize>, name: Option<&str>, arguments: Option<&str>| ToolCallPiece {
                index,
                function: Some(FunctionPiece {
                    name: name.map(str::to_owned),
                    arguments: arguments.map(str::to_owned),
                }),
            };
        // Streamed: a call's name, then its arguments in pieces; a second call without any.
        let mut w = HermesWriter::default();
        let mut text = String::new();
        w.pieces(vec![piece(Some(0), Some("f"), Some(""))], &mut text);
        w.pieces(vec![piece(Some(0), None, Some("{\"a\": "))], &mut text);
        w.pieces(vec![piece(Some(0), None, Some("1}"))], &mut text);
        w.pieces(vec![piece(Some(1), Some("g"), None)], &mut text);
        w.close(&mut text);
        assert_eq!(
            text,
            "<tool_call>\n{\"name\": \"f\", \"arguments\": {\"a\": 1}}\n</tool_call>\n\
             <tool_call>\n{\"name\": \"g\", \"arguments\": {}}\n</tool_call>"
        );
        // A whole answer's list (no indexes) reads the same.
        let mut w = HermesWriter::default();
        let mut whole = String::new();
        w.pieces(
            vec![
                piece(None, Some("f"), Some("{\"a\": 1}")),
                piece(None, Some("g"), Some("")),
            ],
            &mut whole,
        );
        w.close(&mut whole);
        assert_eq!(whole, text);
    }

    #[test]
    fn chunks_become_deltas_and_the_usage_ends_the_request() {
        let (mut r, _rx) = reader(Route::Chat, 1);
        let Line::Deltas(d) = r.line(b"data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n")
        else {
            panic!("deltas")
        };
        assert!(d.is_empty(), "the role chunk carries no token");
        let Line::Deltas(d) = r.line(b"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"},\"finish_reason\":\"length\"}]}\r\n")
        else {
            panic!("deltas")
        };
        assert_eq!((d[0].text.as_str(), d[0].tokens()), ("Hi", 1));
        assert_eq!(d[0].finish_reason, Some(FinishReason::Length));
        let usage = b"data: {\"choices\":[],\"usage\":{\"prompt_tokens\":4,\"completion_tokens\":2,\"prompt_tokens_details\":{\"cached_tokens\":3}}}\n";
        let Line::Deltas(d) = r.line(usage) else {
            panic!("deltas")
        };
        let u = d.last().unwrap().usage.unwrap();
        assert_eq!(
            (u.prompt_tokens, u.completion_tokens, u.cached_tokens),
            (4, 2, 3)
        );
        assert!(matches!(r.line(b": keep-alive\n"), Line::Nothing));
        assert!(matches!(r.line(b"data: [DONE]\n"), Line::Done));
        let (mut text, _rx) = reader(Route::Completions, 2);
        let Line::Deltas(d) = text.line(b"data: {\"choices\":[{\"index\":1,\"text\":\" sky\"}]}\n")
        else {
            panic!("deltas")
        };
        assert_eq!((d[0].index, d[0].text.as_str()), (1, " sky"));
        assert!(matches!(
            text.line(b"data: {\"choices\":[{\"index\":2,\"text\":\"x\"}]}\n"),
            Line::Failed(_)
        ));
        assert!(matches!(
            text.line(b"data: {\"error\":{\"message\":\"boom\"}}\n"),
            Line::Failed(m) if m == "boom"
        ));
        assert_eq!(text.usage_received().prompt_tokens, 9);

        // A whole answer: its message, its finish and its usage.
        let (mut whole, _rx) = reader(Route::Chat, 1);
        let answer: Chunk = serde_json::from_str(
            r#"{"choices":[{"index":0,"message":{"role":"assistant","content":"Hello"},
                "finish_reason":"stop"}],"usage":{"prompt_tokens":10,"completion_tokens":7}}"#,
        )
        .unwrap();
        let Line::Deltas(d) = whole.chunk(answer) else {
            panic!("deltas")
        };
        assert_eq!(d[0].text, "Hello");
        assert_eq!(d[0].finish_reason, Some(FinishReason::Stop));
        assert_eq!(d.last().unwrap().usage.unwrap().completion_tokens, 7);
    }

    #[test]
    fn upstream_refusals_keep_the_clients_part_and_hide_the_rest() {
        let m = model();
        let param = m.refusal(
            StatusCode::BAD_REQUEST,
            br#"{"error":{"message":"bad top_p","param":"top_p"}}"#,
        );
        assert_eq!(param, InvalidParam::new("top_p", "bad top_p").into());
        let long = m.refusal(
            StatusCode::BAD_REQUEST,
            br#"{"error":{"message":"too long","code":"context_length_exceeded"}}"#,
        );
        assert!(matches!(long, BackendError::ContextLengthExceeded(_)));
        let busy = m.refusal(StatusCode::TOO_MANY_REQUESTS, b"slow down");
        assert!(matches!(
            busy,
            BackendError::QueueFull {
                scope: QueueScope::Global,
                ..
            }
        ));
        let key = m.refusal(
            StatusCode::UNAUTHORIZED,
            b"{\"error\":{\"message\":\"bad key\"}}",
        );
        assert!(
            matches!(key, BackendError::Internal(_)),
            "not shown to the client"
        );
    }
}
