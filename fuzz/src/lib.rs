//! Fuzz targets for Starfire's parsers, one `pub fn TARGET(data: &[u8])` each. Each drives the
//! project's own code (no copies of it) and panics only on a real bug: a panic inside the code
//! under test, or a broken invariant checked here where it is cheap and true.
//!
//! The same functions run under libFuzzer (`fuzz_targets/`, `scripts/fuzz`) and in the stable
//! smoke test (`tests/smoke.rs`) that CI runs with the rest of the workspace.

use std::io::Cursor;
use std::sync::{Arc, OnceLock};

use actix_web::ResponseError;
use engine::gguf::GgufFile;
use engine::{ChatMessage, ModelConfig, TextModel, Tokenizer, ToolCall, ToolDefinition};
use gateway::api::body::parse_json;
use gateway::api::chat_ws::frames::{parse_client_frame, ClientFrame, MAX_ID_LEN};
use gateway::api::inference::{
    ChatCompletionRequest, ChatPlan, ChatTransport, CompletionPlan, CompletionRequest,
};
use gateway::billing::webhook::{self, SignatureError};
use gateway::error::ApiError;
use protocol::{
    BackendError, BoxFuture, DeltaStream, NewRequest, SamplingDefaults, ServedModel,
    StructuredOutput,
};
use serde_json::Value;

mod input;

pub use input::Input;

/// The names of the targets, as `scripts/fuzz` and the smoke test know them.
pub const TARGETS: &[&str] = &[
    "gguf",
    "chat_template",
    "chat_request",
    "ws_frame",
    "stripe_webhook",
    "sse",
];

/// Runs the target called `name` on `data`.
pub fn run(name: &str, data: &[u8]) {
    match name {
        "gguf" => gguf(data),
        "chat_template" => chat_template(data),
        "chat_request" => chat_request(data),
        "ws_frame" => ws_frame(data),
        "stripe_webhook" => stripe_webhook(data),
        "sse" => sse(data),
        other => panic!("no fuzz target called `{other}`"),
    }
}

// ---------------------------------------------------------------------------------------------
// gguf

/// The engine's GGUF reader over arbitrary bytes: the header, every metadata getter the model
/// loader uses (configuration, tokenizer), and the first tensors read and dequantized.
pub fn gguf(data: &[u8]) {
    let Ok(mut file) = GgufFile::from_reader(Cursor::new(data), "fuzz.gguf") else {
        return;
    };
    let metadata = file.metadata.clone();
    let _ = ModelConfig::from_gguf(&metadata);
    for key in metadata.0.keys().take(16) {
        let _ = metadata.string(key);
        let _ = metadata.u32(key);
        let _ = metadata.f32(key);
        let _ = metadata.bool(key);
        let _ = metadata.string_array(key);
        let _ = metadata.i32_array(key);
    }
    // Hostile vocabularies are small here (the input is), so building one is quick.
    if let Ok(tokenizer) = Tokenizer::from_gguf(&metadata) {
        if let Ok(ids) = tokenizer.encode("Hello, <|im_start|>world 123", true) {
            let _ = tokenizer.decode(&ids, false);
        }
    }
    let names: Vec<String> = file.tensor_names().take(8).map(str::to_owned).collect();
    for name in names {
        if let Ok(tensor) = file.tensor(&name) {
            let _ = tensor.dequantize(&candle_core::Device::Cpu);
            let _ = engine::kernels::Linear::from_qtensor(&name, tensor);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The default model's text side (tokenizer and chat template), loaded once.

/// The default model's tokenizer, chat template and configuration (never its weights).
pub fn default_text_model() -> &'static TextModel {
    static MODEL: OnceLock<TextModel> = OnceLock::new();
    MODEL.get_or_init(|| {
        let path = engine::model_cache::find_default_model().unwrap_or_else(|e| {
            panic!(
                "{e}\nThe chat_template and chat_request fuzz targets need the default model: \
                 run `target/release/starfire model fetch` first."
            )
        });
        TextModel::load(&path).expect("load the default model's tokenizer and template")
    })
}

/// Arbitrary messages (and tools) from the bytes: roles, contents, tool calls and results.
fn messages_and_tools(input: &mut Input) -> (Vec<ChatMessage>, Vec<ToolDefinition>) {
    let mut tools = Vec::new();
    for _ in 0..input.byte() % 3 {
        let name = input.text();
        let description = input.flag().then(|| input.text());
        let parameters = serde_json::from_str(&input.text())
            .unwrap_or_else(|_| serde_json::json!({"type": "object"}));
        tools.push(ToolDefinition {
            name,
            description,
            parameters,
        });
    }
    let mut messages = Vec::new();
    while !input.is_empty() && messages.len() < 32 {
        let selector = input.byte();
        let role = match selector % 6 {
            0 => "system".to_owned(),
            1 | 5 => "user".to_owned(),
            2 => "assistant".to_owned(),
            3 => "tool".to_owned(),
            _ => input.text(),
        };
        let mut message = ChatMessage::new(role, input.text());
        if selector & 0x10 != 0 {
            for i in 0..=(selector >> 6) {
                let name = input.text();
                message
                    .tool_calls
                    .push(ToolCall::new(format!("call_{i}"), name, input.text()));
            }
        }
        if selector & 0x20 != 0 {
            message.tool_call_id = Some(input.text());
        }
        messages.push(message);
    }
    (messages, tools)
}

/// The default model's chat template over arbitrary messages and tools, then its tokenizer:
/// the rendered prompt must tokenize, decode back to itself, and decode the same through the
/// incremental (streaming) decoder.
pub fn chat_template(data: &[u8]) {
    let model = default_text_model();
    let template = model
        .chat_template
        .as_ref()
        .expect("the default model has a chat template");
    let tokenizer = &model.tokenizer;
    let mut input = Input::new(data);
    let add_generation_prompt = input.flag();
    let (messages, tools) = messages_and_tools(&mut input);
    let Ok(text) = template.render_with_tools(&messages, &tools, add_generation_prompt) else {
        return;
    };
    let ids = tokenizer
        .encode(&text, true)
        .unwrap_or_else(|e| panic!("a rendered prompt does not tokenize: {e}"));
    let decoded = tokenizer.decode(&ids, false).expect("decode");
    // Byte-level BPE gives the text back, less the bytes the vocabulary has no token for
    // (as llama.cpp, the tokenizer skips them): some control characters, and lead bytes of
    // rare 4-byte characters. Where one of the latter is in the text, what remains is not
    // UTF-8 and decodes lossily; there is nothing to compare.
    let missing = missing_bytes(tokenizer);
    if text.bytes().any(|b| b >= 0x80 && missing[usize::from(b)]) {
        return;
    }
    let expected: String = text
        .chars()
        .filter(|&c| !(c.is_ascii() && missing[c as usize]))
        .collect();
    assert_eq!(decoded, expected, "decode(encode(prompt)) differs");
    let mut streaming = engine::IncrementalDecoder::new(false);
    let mut pieces = String::new();
    for &id in &ids {
        pieces.push_str(&streaming.push(tokenizer, id).expect("push"));
    }
    pieces.push_str(&streaming.flush(tokenizer).expect("flush"));
    assert_eq!(
        pieces, expected,
        "the incremental decoder's pieces differ from the prompt"
    );
}

/// The bytes without a token of their own in a byte-level BPE vocabulary (GPT-2's mapping of
/// bytes to characters), found once. The default model's lacks 21 of them.
fn missing_bytes(tokenizer: &Tokenizer) -> &'static [bool; 256] {
    static MISSING: OnceLock<[bool; 256]> = OnceLock::new();
    MISSING.get_or_init(|| {
        let mut missing = [false; 256];
        let mut next = 256u32;
        for b in 0..=255u8 {
            let printable = matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
            let c = if printable {
                char::from(b)
            } else {
                next += 1;
                char::from_u32(next - 1).expect("a char")
            };
            missing[usize::from(b)] = tokenizer.token_to_id(&c.to_string()).is_none();
        }
        missing
    })
}

// ---------------------------------------------------------------------------------------------
// chat_request

/// The default model's text side as the gateway serves it, without weights: templating,
/// tokenizing and structured-output checks go through the gateway's own code
/// (`gateway::inference::text`, what the in-process model uses); submitting is refused.
pub struct TextOnlyModel {
    model: &'static TextModel,
    defaults: SamplingDefaults,
}

impl TextOnlyModel {
    pub fn default_model() -> Arc<dyn ServedModel> {
        static MODEL: OnceLock<Arc<TextOnlyModel>> = OnceLock::new();
        MODEL
            .get_or_init(|| {
                Arc::new(TextOnlyModel {
                    model: default_text_model(),
                    defaults: SamplingDefaults::default(),
                })
            })
            .clone()
    }
}

impl ServedModel for TextOnlyModel {
    fn name(&self) -> &str {
        &self.model.name
    }

    fn max_model_len(&self) -> usize {
        self.model.config.max_position_embeddings
    }

    fn vocab_size(&self) -> usize {
        self.model.config.vocab_size
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
        gateway::inference::text::chat_prompt(
            &self.model.name,
            &self.model.tokenizer,
            self.model.chat_template.as_ref(),
            messages,
            tools,
            add_generation_prompt,
        )
    }

    fn encode(&self, text: &str, add_special: bool) -> Result<Vec<u32>, BackendError> {
        gateway::inference::text::encode(&self.model.tokenizer, text, add_special)
    }

    fn decode(&self, ids: &[u32]) -> Result<String, BackendError> {
        gateway::inference::text::decode(&self.model.tokenizer, ids)
    }

    fn token_text(&self, id: u32) -> String {
        gateway::inference::text::decode(&self.model.tokenizer, &[id]).unwrap_or_default()
    }

    fn submit(&self, _req: NewRequest) -> BoxFuture<'_, Result<DeltaStream, BackendError>> {
        Box::pin(async { Err(BackendError::Internal("fuzzing: no weights".into())) })
    }

    fn embed(&self, _tokens: Vec<u32>) -> BoxFuture<'_, Result<Vec<f32>, BackendError>> {
        Box::pin(async { Err(BackendError::Internal("fuzzing: no weights".into())) })
    }

    fn embedding_size(&self) -> usize {
        self.model.config.hidden_size
    }

    fn check_structured(&self, spec: &StructuredOutput, field: &str) -> Result<(), BackendError> {
        gateway::inference::text::check_structured(&self.model.tokenizer, spec, field)
    }
}

/// A refusal of a client's request must be the client's error (4xx), never a 500.
fn client_error(err: &ApiError, what: &str, body: &[u8]) {
    let status = err.status_code();
    assert!(
        status.is_client_error(),
        "{what}: {status} for a client's body: {err:?}\nbody: {}",
        String::from_utf8_lossy(body)
    );
}

/// A body of `POST /v1/chat/completions` (over HTTP and as a WebSocket `chat.request`) and of
/// `POST /v1/completions`, decoded and checked as the handlers do, up to submitting to the
/// model: the JSON shape, the unsupported fields, sampling, tools, response formats, the
/// prompt rendered and tokenized, and `max_tokens` fitted into the context.
pub fn chat_request(data: &[u8]) {
    let model = TextOnlyModel::default_model();
    let max_model_len = model.max_model_len();
    for transport in [ChatTransport::Http, ChatTransport::WebSocket] {
        let req = match parse_json::<ChatCompletionRequest>(data) {
            Ok(req) => req,
            Err(e) => {
                client_error(&e, "chat body", data);
                break;
            }
        };
        match ChatPlan::new(model.clone(), req, transport) {
            Ok(plan) => {
                let max_tokens = plan.params.max_tokens.expect("a plan fits max_tokens");
                assert!(
                    plan.prompt.tokens() + max_tokens <= max_model_len,
                    "prompt {} + max_tokens {max_tokens} exceed the context {max_model_len}",
                    plan.prompt.tokens()
                );
                if matches!(transport, ChatTransport::WebSocket) {
                    assert!(plan.stream, "a WebSocket chat is always streamed");
                }
            }
            Err(e) => client_error(&e, "chat plan", data),
        }
    }
    match parse_json::<CompletionRequest>(data) {
        Ok(req) => {
            if let Err(e) = CompletionPlan::new(model, &req) {
                client_error(&e, "completion plan", data);
            }
        }
        Err(e) => client_error(&e, "completion body", data),
    }
}

// ---------------------------------------------------------------------------------------------
// ws_frame

/// The chat WebSocket's client frames: valid UTF-8 as is, other bytes lossily (what a text
/// frame can carry). A parsed frame's id is the one sent; a `chat.request` body is the frame
/// less `type` and `id`, goes through the chat body parser, and rebuilds the same frame.
pub fn ws_frame(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let frame = match parse_client_frame(&text) {
        Ok(frame) => frame,
        Err(e) => return client_error(&e, "frame", data),
    };
    let sent: Value = serde_json::from_str(&text).expect("a parsed frame is JSON");
    let (id, kind) = match &frame {
        ClientFrame::Request { id, .. } => (id, "chat.request"),
        ClientFrame::Cancel { id } => (id, "cancel"),
    };
    assert_eq!(sent["id"].as_str(), Some(id.as_str()), "the frame's id");
    assert_eq!(sent["type"].as_str(), Some(kind), "the frame's type");
    assert!(!id.is_empty() && id.len() <= MAX_ID_LEN && !id.chars().any(char::is_control));
    if let ClientFrame::Request { id, body } = &frame {
        let Ok(Value::Object(mut fields)) = serde_json::from_slice::<Value>(body) else {
            panic!("a request's body is not a JSON object");
        };
        assert!(!fields.contains_key("type") && !fields.contains_key("id"));
        let mut expected = sent.as_object().expect("an object").clone();
        expected.remove("type");
        expected.remove("id");
        assert!(
            same_json(
                &Value::Object(fields.clone()),
                &Value::Object(expected.clone())
            ),
            "the body is the frame less `type` and `id`:\n{fields:?}\n{expected:?}"
        );
        if let Err(e) = parse_json::<ChatCompletionRequest>(body) {
            client_error(&e, "chat.request body", body);
        }
        fields.insert("id".into(), Value::String(id.clone()));
        fields.insert("type".into(), Value::String("chat.request".into()));
        let rebuilt = serde_json::to_string(&fields).expect("JSON");
        let ClientFrame::Request {
            id: id2,
            body: body2,
        } = parse_client_frame(&rebuilt).expect("a rebuilt frame parses")
        else {
            panic!("a rebuilt chat.request parses as another frame");
        };
        let json = |b: &[u8]| serde_json::from_slice::<Value>(b).expect("JSON");
        assert!(
            id2 == *id && same_json(&json(&body2), &json(body)),
            "a frame rebuilt from its parts parses the same"
        );
    }
}

/// JSON equality, but numbers that are floats equal within a few ULPs: serde_json's default
/// float parsing is not exact (it may be off by one ULP), so re-encoding a frame and parsing
/// it again can move a float with 16+ significant digits by that much.
fn same_json(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) if x.is_f64() || y.is_f64() => {
            let (x, y) = (
                x.as_f64().unwrap_or(f64::NAN),
                y.as_f64().unwrap_or(f64::NAN),
            );
            x == y || (x - y).abs() <= 4.0 * f64::EPSILON * x.abs().max(y.abs())
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same_json(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| same_json(v, w)))
        }
        _ => a == b,
    }
}

// ---------------------------------------------------------------------------------------------
// stripe_webhook

/// The secret the fuzzed deliveries are signed with, and the clock they are checked against.
pub const WEBHOOK_SECRET: &str = "whsec_fuzz_0123456789abcdef";
pub const WEBHOOK_NOW: i64 = 1_800_000_000;

/// The Stripe webhook: `Stripe-Signature` (the bytes' first line) verified over the body (the
/// rest) as the handler does, the body read as an event; then the body signed with the
/// project's own signing helper at a timestamp from the bytes: it verifies exactly when the
/// timestamp is within the tolerance, and a flipped body byte or signature digit never does.
pub fn stripe_webhook(data: &[u8]) {
    let split = data.iter().position(|&b| b == b'\n').unwrap_or(data.len());
    let header = String::from_utf8_lossy(&data[..split]);
    let body = data.get(split + 1..).unwrap_or_default();
    let secrets = vec![WEBHOOK_SECRET.to_owned()];
    let _ = webhook::verify(Some(&*header), body, &secrets, WEBHOOK_NOW);
    let _ = webhook::verify(None, body, &secrets, WEBHOOK_NOW);
    let _ = webhook::verify(Some(&*header), body, &[], WEBHOOK_NOW);
    // The handler reads the body once verified; any body here (an error is its 400).
    if let Ok(event) = webhook::parse(body) {
        assert!(!event.id.is_empty() && event.id.len() <= 255);
        let _ = event.record();
    }

    // Sign it ourselves at an offset from the clock taken from the bytes (mostly near it).
    let offset = match data.first().copied().unwrap_or(0) {
        b if b < 200 => i64::from(b) * 4 - 400,
        b => i64::from(b) << 56,
    };
    let t = WEBHOOK_NOW.wrapping_add(offset);
    let signature = webhook::sign(WEBHOOK_SECRET, t, body);
    let signed = format!("t={t},v1={signature}");
    let result = webhook::verify(Some(signed.as_str()), body, &secrets, WEBHOOK_NOW);
    let fresh = WEBHOOK_NOW.abs_diff(t) <= webhook::TOLERANCE_SECS as u64;
    if fresh {
        assert_eq!(result, Ok(()), "a fresh delivery signed with the secret");
        // Rotation: another secret's signature beside it changes nothing.
        let other = webhook::sign("whsec_other", t, body);
        let both = format!("t={t},v1={other},v1={signature}");
        assert_eq!(
            webhook::verify(Some(both.as_str()), body, &secrets, WEBHOOK_NOW),
            Ok(())
        );
    } else {
        assert_eq!(result, Err(SignatureError::Stale), "t={t}");
        return;
    }
    if !body.is_empty() {
        let mut tampered = body.to_vec();
        let at = usize::from(data[data.len() / 2]) % tampered.len();
        tampered[at] ^= 1 << (data.len() % 8);
        assert_eq!(
            webhook::verify(Some(signed.as_str()), &tampered, &secrets, WEBHOOK_NOW),
            Err(SignatureError::Mismatch),
            "a flipped body byte at {at}"
        );
    }
    let mut digits = signature.into_bytes();
    let at = data.len() % digits.len();
    digits[at] = if digits[at] == b'0' { b'1' } else { b'0' };
    let forged = format!("t={t},v1={}", String::from_utf8(digits).expect("hex"));
    assert_eq!(
        webhook::verify(Some(forged.as_str()), body, &secrets, WEBHOOK_NOW),
        Err(SignatureError::Mismatch),
        "a changed signature digit"
    );
}

// ---------------------------------------------------------------------------------------------
// sse

/// The events of `stream` fed to the Rust SDK's SSE parser in chunks of the given sizes
/// (cycled), each event's data run through the SDK's chunk decoder.
pub fn sse_events(stream: &[u8], chunk_sizes: &[usize]) -> Vec<Option<String>> {
    let mut buffer = Vec::new();
    let mut events = Vec::new();
    let mut rest = stream;
    let mut sizes = chunk_sizes.iter().cycle();
    while !rest.is_empty() {
        let size = (*sizes.next().unwrap_or(&usize::MAX)).clamp(1, rest.len());
        buffer.extend_from_slice(&rest[..size]);
        rest = &rest[size..];
        while let Some(event) = starfire_sdk::next_event_data(&mut buffer) {
            if let Some(data) = &event {
                if data != "[DONE]" {
                    let _ = starfire_sdk::parse_chunk(data, &Some("req_fuzz".to_owned()));
                }
            }
            events.push(event);
        }
    }
    events
}

/// The Rust SDK's SSE parser over an arbitrary byte stream: whole, and split at arbitrary
/// points (sizes taken from the bytes), the events are the same.
pub fn sse(data: &[u8]) {
    let whole = sse_events(data, &[usize::MAX]);
    let sizes: Vec<usize> = data
        .iter()
        .take(16)
        .map(|&b| usize::from(b % 17) + 1)
        .collect();
    let split = sse_events(
        data,
        if sizes.is_empty() {
            &[1][..]
        } else {
            &sizes[..]
        },
    );
    assert_eq!(
        whole, split,
        "the events depend on where the stream was split"
    );
    let small = sse_events(data, &[1, 2, 3]);
    assert_eq!(
        whole, small,
        "the events depend on where the stream was split"
    );
}
