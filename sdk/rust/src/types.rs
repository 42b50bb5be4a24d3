//! The request and response types of the API, as in `openapi/openapi.json` (checked by
//! `tests/spec.rs`). Unknown response fields are ignored, so a newer server stays readable.

use serde::{Deserialize, Serialize};

/// One message of a chat.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ChatMessage {
    /// `system`, `user`, `assistant` or `tool`.
    pub role: String,
    /// Null only on an assistant message that made tool calls.
    pub content: Option<String>,
    /// The calls an assistant message made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCall>>,
    /// A `tool` message: the call it answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
}

impl ChatMessage {
    fn text(role: &str, content: impl Into<String>) -> Self {
        ChatMessage {
            role: role.into(),
            content: Some(content.into()),
            tool_calls: None,
            tool_call_id: None,
        }
    }

    pub fn user(content: impl Into<String>) -> Self {
        Self::text("user", content)
    }

    pub fn system(content: impl Into<String>) -> Self {
        Self::text("system", content)
    }

    pub fn assistant(content: impl Into<String>) -> Self {
        Self::text("assistant", content)
    }

    /// The result of the call `tool_call_id`.
    pub fn tool(tool_call_id: impl Into<String>, content: impl Into<String>) -> Self {
        ChatMessage {
            tool_call_id: Some(tool_call_id.into()),
            ..Self::text("tool", content)
        }
    }
}

impl From<AssistantMessage> for ChatMessage {
    /// An answer, to continue the conversation with (its calls included).
    fn from(m: AssistantMessage) -> Self {
        ChatMessage {
            role: m.role,
            content: m.content,
            tool_calls: m.tool_calls,
            tool_call_id: None,
        }
    }
}

/// A function the model may call (`tools[]`).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Tool {
    /// Always `function`.
    #[serde(rename = "type")]
    pub kind: String,
    pub function: FunctionDefinition,
}

impl Tool {
    /// A function `name` whose arguments follow the JSON Schema `parameters`.
    pub fn function(
        name: impl Into<String>,
        description: impl Into<String>,
        parameters: serde_json::Value,
    ) -> Self {
        Tool {
            kind: "function".into(),
            function: FunctionDefinition {
                name: name.into(),
                description: Some(description.into()),
                parameters: Some(parameters),
                strict: None,
            },
        }
    }
}

/// `tools[].function`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct FunctionDefinition {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parameters: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub strict: Option<bool>,
}

/// `tool_choice`.
#[derive(Debug, Clone, PartialEq)]
pub enum ToolChoice {
    /// Answer in text.
    None,
    /// Text or calls (the default with tools).
    Auto,
    /// One or more calls.
    Required,
    /// One call of this function.
    Function(String),
}

impl Serialize for ToolChoice {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            ToolChoice::None => s.serialize_str("none"),
            ToolChoice::Auto => s.serialize_str("auto"),
            ToolChoice::Required => s.serialize_str("required"),
            ToolChoice::Function(name) => serde_json::json!({
                "type": "function", "function": {"name": name}
            })
            .serialize(s),
        }
    }
}

/// A call the model made.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ToolCall {
    pub id: String,
    /// Always `function`.
    #[serde(rename = "type")]
    pub kind: String,
    pub function: FunctionCall,
}

/// The function a call calls and its arguments (JSON text).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FunctionCall {
    pub name: String,
    pub arguments: String,
}

impl FunctionCall {
    /// The arguments read into `T`.
    pub fn parse_arguments<T: serde::de::DeserializeOwned>(&self) -> serde_json::Result<T> {
        serde_json::from_str(&self.arguments)
    }
}

/// A piece of a streamed call (`delta.tool_calls[]`): the first of a call has its id, type and
/// name; the next ones more of its arguments. [`ToolCallAccumulator`] puts them together.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct ToolCallDelta {
    pub index: usize,
    pub id: Option<String>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub function: FunctionCallDelta,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct FunctionCallDelta {
    pub name: Option<String>,
    pub arguments: Option<String>,
}

/// Assembles the calls of one streamed choice from its `delta.tool_calls` pieces.
#[derive(Debug, Clone, Default)]
pub struct ToolCallAccumulator {
    calls: Vec<ToolCall>,
}

impl ToolCallAccumulator {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the pieces of one chunk's delta.
    pub fn push(&mut self, delta: &ChunkDelta) {
        for piece in delta.tool_calls.iter().flatten() {
            if piece.index >= self.calls.len() {
                self.calls.resize(
                    piece.index + 1,
                    ToolCall {
                        id: String::new(),
                        kind: "function".into(),
                        function: FunctionCall {
                            name: String::new(),
                            arguments: String::new(),
                        },
                    },
                );
            }
            let call = &mut self.calls[piece.index];
            if let Some(id) = &piece.id {
                call.id.clone_from(id);
            }
            if let Some(kind) = &piece.kind {
                call.kind.clone_from(kind);
            }
            if let Some(name) = &piece.function.name {
                call.function.name.push_str(name);
            }
            if let Some(arguments) = &piece.function.arguments {
                call.function.arguments.push_str(arguments);
            }
        }
    }

    /// The calls so far (whole once the choice finished).
    pub fn calls(&self) -> &[ToolCall] {
        &self.calls
    }

    pub fn into_calls(self) -> Vec<ToolCall> {
        self.calls
    }
}

/// `POST /v1/chat/completions` (the common fields; `stream` is set by the client).
#[derive(Debug, Clone, Serialize, Default)]
pub struct ChatCompletionRequest {
    pub model: String,
    pub messages: Vec<ChatMessage>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    /// JSON mode or a JSON schema the answer must follow (enforced while generating).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_format: Option<ResponseFormat>,
    /// Functions the model may call.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<Tool>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<ToolChoice>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parallel_tool_calls: Option<bool>,
}

/// `response_format` of a chat completion.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ResponseFormat {
    /// Free text (the default).
    Text,
    /// The answer is one JSON object.
    JsonObject,
    /// The answer is JSON valid against the schema.
    JsonSchema { json_schema: JsonSchemaFormat },
}

impl ResponseFormat {
    /// A JSON schema called `name` (1 to 64 letters, digits, `_` or `-`).
    pub fn json_schema(name: impl Into<String>, schema: serde_json::Value) -> Self {
        ResponseFormat::JsonSchema {
            json_schema: JsonSchemaFormat {
                name: name.into(),
                description: None,
                schema: Some(schema),
                strict: Some(true),
            },
        }
    }
}

/// `response_format.json_schema`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct JsonSchemaFormat {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schema: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub strict: Option<bool>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct AssistantMessage {
    pub role: String,
    /// Null when the answer is only tool calls.
    pub content: Option<String>,
    #[serde(default)]
    pub tool_calls: Option<Vec<ToolCall>>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ChatChoice {
    pub index: u32,
    pub message: AssistantMessage,
    pub finish_reason: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Usage {
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
    pub total_tokens: u32,
}

/// A chat completion (`object: chat.completion`).
#[derive(Debug, Clone, Deserialize)]
pub struct ChatCompletion {
    pub id: String,
    pub object: String,
    pub created: i64,
    pub model: String,
    pub system_fingerprint: String,
    pub choices: Vec<ChatChoice>,
    pub usage: Usage,
}

#[derive(Debug, Clone, Deserialize, Default)]
pub struct ChunkDelta {
    pub role: Option<String>,
    pub content: Option<String>,
    /// A piece of a tool call.
    #[serde(default)]
    pub tool_calls: Option<Vec<ToolCallDelta>>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ChunkChoice {
    pub index: u32,
    #[serde(default)]
    pub delta: ChunkDelta,
    pub finish_reason: Option<String>,
}

/// One streamed `chat.completion.chunk`.
#[derive(Debug, Clone, Deserialize)]
pub struct ChatCompletionChunk {
    pub id: String,
    pub object: String,
    pub created: i64,
    pub model: String,
    #[serde(default)]
    pub choices: Vec<ChunkChoice>,
    pub usage: Option<Usage>,
}

/// `POST /v1/organization/projects/{project_id}/api_keys`.
#[derive(Debug, Clone, Serialize, Default)]
pub struct ApiKeyCreate {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limits: Option<KeyLimits>,
}

/// A project API key as listed (the secret is never shown again).
#[derive(Debug, Clone, Deserialize)]
pub struct ApiKey {
    pub id: String,
    pub object: String,
    pub name: String,
    pub project_id: String,
    pub redacted_value: String,
    pub scopes: Vec<String>,
    pub limits: KeyLimits,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub last_used_at: Option<i64>,
}

/// The answer to creating a key: `value` is the secret, shown this once.
#[derive(Debug, Clone, Deserialize)]
pub struct CreatedApiKey {
    pub id: String,
    pub object: String,
    pub name: String,
    pub project_id: String,
    pub redacted_value: String,
    pub scopes: Vec<String>,
    pub created_at: i64,
    pub value: String,
}

/// `POST /v1/organization/projects`.
#[derive(Debug, Clone, Serialize)]
pub struct ProjectCreate {
    pub name: String,
}

/// `POST /v1/organization/projects/{project_id}`: a new name, new limits, new allowed
/// origins, or several.
#[derive(Debug, Clone, Serialize, Default)]
pub struct ProjectUpdate {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Replaces all of the project's limits (a field left out falls back to the plan's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limits: Option<KeyLimits>,
    /// Replaces the browser origins (`https://app.example.com`) whose pages may call the API
    /// with the project's keys (CORS); `Some(vec![])` turns it off.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allowed_origins: Option<Vec<String>>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Project {
    pub id: String,
    pub object: String,
    pub name: String,
    /// `active` or `archived`.
    pub status: String,
    /// Rate limits shared by the project's keys (unset ones are the plan's; a key's own
    /// limits take precedence).
    pub limits: KeyLimits,
    /// Browser origins allowed to call the API with the project's keys (CORS); empty: none.
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    pub created_at: i64,
    pub archived_at: Option<i64>,
}

/// OpenAI's list envelope.
#[derive(Debug, Clone, Deserialize)]
pub struct List<T> {
    pub object: String,
    pub data: Vec<T>,
    pub first_id: Option<String>,
    pub last_id: Option<String>,
    pub has_more: bool,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Deleted {
    pub object: String,
    pub id: String,
    pub deleted: bool,
}

/// OpenAI's error body, `{"error": {...}}`.
#[derive(Debug, Clone, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorObject,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ErrorObject {
    pub message: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub param: Option<String>,
    pub code: Option<String>,
}

/// Rate-limit overrides of a key (`null` falls back to the project's, then the plan's).
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq, Eq)]
pub struct KeyLimits {
    /// Requests per minute.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rpm: Option<i64>,
    /// Tokens per minute.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tpm: Option<i64>,
    /// Requests in flight at once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<i64>,
}

/// `POST /v1/organization/projects/{project_id}/api_keys/{key_id}`: a new name, new limits, or both.
#[derive(Debug, Clone, Serialize, Default)]
pub struct ApiKeyUpdate {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limits: Option<KeyLimits>,
}

/// The query of the usage and costs routes; `None` fields are left out.
#[derive(Debug, Clone, Default)]
pub struct UsageQuery {
    /// Start (inclusive), Unix seconds.
    pub start_time: i64,
    /// End (exclusive), Unix seconds; default now.
    pub end_time: Option<i64>,
    /// `1m`, `1h` or `1d` (costs: only `1d`).
    pub bucket_width: Option<String>,
    pub project_ids: Vec<String>,
    /// Usage only.
    pub api_key_ids: Vec<String>,
    /// Usage only.
    pub models: Vec<String>,
    /// Usage: `project_id`, `api_key_id`, `model`; costs: `project_id`, `line_item`.
    pub group_by: Vec<String>,
    /// Buckets per page (the client follows `next_page` to the end).
    pub limit: Option<i64>,
}

impl UsageQuery {
    /// From `start_time` to now, in the route's default buckets.
    pub fn since(start_time: i64) -> UsageQuery {
        UsageQuery {
            start_time,
            ..Default::default()
        }
    }

    pub(crate) fn pairs(&self, page: Option<&str>) -> Vec<(&'static str, String)> {
        let mut pairs = vec![("start_time", self.start_time.to_string())];
        let mut one = |name, value: Option<String>| {
            if let Some(value) = value {
                pairs.push((name, value));
            }
        };
        one("end_time", self.end_time.map(|t| t.to_string()));
        one("bucket_width", self.bucket_width.clone());
        one("limit", self.limit.map(|l| l.to_string()));
        one("page", page.map(str::to_owned));
        for (name, values) in [
            ("project_ids", &self.project_ids),
            ("api_key_ids", &self.api_key_ids),
            ("models", &self.models),
            ("group_by", &self.group_by),
        ] {
            pairs.extend(values.iter().map(|v| (name, v.clone())));
        }
        pairs
    }
}

/// A page of time buckets (`object: page`).
#[derive(Debug, Clone, Deserialize)]
pub struct UsagePage<T> {
    pub data: Vec<UsageBucket<T>>,
    pub has_more: bool,
    pub next_page: Option<String>,
}

/// A time bucket and its results.
#[derive(Debug, Clone, Deserialize)]
pub struct UsageBucket<T> {
    /// Unix seconds (inclusive).
    pub start_time: i64,
    /// Unix seconds (exclusive).
    pub end_time: i64,
    pub results: Vec<T>,
}

/// One result of a completions usage bucket.
#[derive(Debug, Clone, Deserialize)]
pub struct CompletionsUsage {
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub input_cached_tokens: i64,
    pub num_model_requests: i64,
    pub project_id: Option<String>,
    pub api_key_id: Option<String>,
    pub model: Option<String>,
}

/// One result of a costs bucket.
#[derive(Debug, Clone, Deserialize)]
pub struct CostResult {
    pub amount: CostAmount,
    pub project_id: Option<String>,
    /// The model, when grouped by `line_item`.
    pub line_item: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct CostAmount {
    /// In `currency` units (display only; the ledger counts integer micro-units).
    pub value: f64,
    pub currency: String,
}

/// The organization's prepaid credits (`GET /v1/organization/credits`).
#[derive(Debug, Clone, Deserialize)]
pub struct Credits {
    pub object: String,
    /// `prepaid` or `postpaid`.
    pub mode: String,
    pub balance_micros: i64,
    pub reserved_micros: i64,
    pub available_micros: i64,
    pub ledger: Vec<CreditEntry>,
}

/// One ledger entry.
#[derive(Debug, Clone, Deserialize)]
pub struct CreditEntry {
    pub id: String,
    /// `grant`, `top_up`, `usage` (negative) or `adjustment`.
    pub kind: String,
    pub amount_micros: i64,
    pub created_at: i64,
    pub request_id: Option<String>,
}

/// A single-use ticket for `GET /v1/chat/ws?ticket=`.
#[derive(Debug, Clone, Deserialize)]
pub struct WsTicket {
    pub ticket: String,
    pub expires_at: i64,
}

/// The organization's prepaid balance (`GET /v1/billing/balance`). Amounts are micro-USD
/// (1 USD = 1,000,000).
#[derive(Debug, Clone, Deserialize)]
pub struct Balance {
    /// Always `billing.balance`.
    pub object: String,
    /// `free`, `pay_as_you_go` or `enterprise`.
    pub plan: String,
    /// `prepaid` (requests are paid from the balance) or `postpaid` (usage is invoiced; the
    /// amounts are 0).
    pub mode: String,
    pub currency: String,
    /// The ledger's sum.
    pub balance_micros: i64,
    /// Held by requests in flight.
    pub reserved_micros: i64,
    /// What new requests can still reserve.
    pub available_micros: i64,
    /// `ok`, or `past_due` after a failed invoice payment.
    pub billing_status: String,
    /// Whether credits can be bought here (Stripe is configured, the organization prepaid).
    pub top_ups_available: bool,
}

/// `POST /v1/billing/top_ups`: buy credits through Stripe Checkout.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TopUpCreate {
    /// Micro-USD, whole cents, within the server's bounds.
    pub amount_micros: i64,
    /// Where Stripe sends the payer after paying (default the console's billing page).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub success_url: Option<String>,
    /// Where Stripe sends a payer who cancels.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cancel_url: Option<String>,
}

/// A top-up (`object: billing.top_up`).
#[derive(Debug, Clone, Deserialize)]
pub struct TopUp {
    pub id: String,
    pub object: String,
    pub amount_micros: i64,
    pub currency: String,
    /// `creating`, `open`, `completed`, `expired` or `failed`.
    pub status: String,
    /// Where to pay, while `open`.
    pub checkout_url: Option<String>,
    pub checkout_session_id: Option<String>,
    /// The ledger entry that credited it, once completed.
    pub ledger_entry_id: Option<String>,
    /// Unix seconds.
    pub created_at: i64,
    pub completed_at: Option<i64>,
}

/// One ledger entry and its cause (`object: billing.ledger_entry`).
#[derive(Debug, Clone, Deserialize)]
pub struct LedgerEntry {
    pub id: String,
    pub object: String,
    /// `grant`, `top_up`, `usage` (negative), `adjustment` or `refund`.
    pub kind: String,
    /// Micro-USD; negative for debits.
    pub amount_micros: i64,
    pub currency: String,
    /// Unix seconds.
    pub created_at: i64,
    /// The request a usage debit is for.
    pub request_id: Option<String>,
    /// The payment a top-up came from.
    pub payment_id: Option<String>,
    /// Who posted it: `system`, `stripe`, `operator:<name>`.
    pub actor: Option<String>,
    /// The reason of an adjustment or refund; a description otherwise.
    pub reason: Option<String>,
    /// The entry a refund reverses.
    pub refund_of: Option<String>,
}

/// The statement of one calendar month, UTC (`object: billing.invoice`).
#[derive(Debug, Clone, Deserialize)]
pub struct Invoice {
    /// `None` for a draft (the running statement of a month not finalized yet).
    pub id: Option<String>,
    pub object: String,
    /// `draft` or `finalized` (never changes again).
    pub status: String,
    /// The month, `YYYY-MM`.
    pub period: String,
    /// Unix seconds, inclusive.
    pub period_start: i64,
    /// Unix seconds, exclusive.
    pub period_end: i64,
    pub plan: String,
    pub currency: String,
    pub lines: Vec<InvoiceLine>,
    /// The sum of the lines, micro-USD.
    pub subtotal_micros: i64,
    /// What prepaid credits paid of it, micro-USD.
    pub credits_applied_micros: i64,
    /// What is owed (postpaid usage), micro-USD.
    pub amount_due_micros: i64,
    /// Finalization time (drafts: now), Unix seconds.
    pub created_at: i64,
}

/// One invoice line: a model's billed requests at one catalog price.
#[derive(Debug, Clone, Deserialize)]
pub struct InvoiceLine {
    pub model: String,
    /// The catalog price (`None` for usage older than the catalog).
    pub price_id: Option<String>,
    pub requests: i64,
    /// Prompt tokens billed at the input price.
    pub input_tokens: i64,
    /// Prompt tokens served from the prefix cache, billed at the cached-input price.
    pub cached_input_tokens: i64,
    pub output_tokens: i64,
    /// Micro-USD per 1M tokens.
    pub input_micros_per_million: Option<i64>,
    pub cached_input_micros_per_million: Option<i64>,
    pub output_micros_per_million: Option<i64>,
    /// The sum of the requests' costs, micro-USD.
    pub amount_micros: i64,
}

/// A catalog price (`object: billing.price`), micro-USD per 1M tokens.
#[derive(Debug, Clone, Deserialize)]
pub struct Price {
    pub id: String,
    pub object: String,
    pub model: String,
    pub currency: String,
    /// Uncached prompt tokens.
    pub input_micros_per_million: i64,
    /// Prompt tokens served from the prefix cache.
    pub cached_input_micros_per_million: i64,
    /// Generated tokens.
    pub output_micros_per_million: i64,
    /// From when (Unix seconds) until the model's next price; 0 for the configured price.
    pub effective_at: i64,
    pub created_at: i64,
    /// `config`, or `operator:<name>`.
    pub created_by: String,
}

/// A spend cap and what it counts (`object: organization.budget`), micro-USD.
#[derive(Debug, Clone, Deserialize)]
pub struct Budget {
    pub object: String,
    /// `organization`, `project` or `api_key`.
    pub scope: String,
    /// The organization's, project's or key's id.
    pub scope_id: String,
    /// `monthly` (organization and project: starts again on the 1st of each month, UTC) or
    /// `lifetime` (API key).
    pub period: String,
    /// The cap; `None` when none is set.
    pub limit_micros: Option<i64>,
    /// Spent in the current period.
    pub spent_micros: i64,
    /// Held by requests in flight (their maximum cost).
    pub reserved_micros: i64,
    /// What new requests can still reserve; `None` without a cap.
    pub available_micros: Option<i64>,
    /// Unix seconds: the start of the current period (`None` for lifetime budgets).
    pub period_start: Option<i64>,
    /// Unix seconds: when a monthly budget starts again (`None` for lifetime budgets).
    pub resets_at: Option<i64>,
}

/// `POST .../budget`: a new cap.
#[derive(Debug, Clone, Serialize)]
pub struct BudgetUpdate {
    /// Micro-USD, 1 to 10^15. Requests whose maximum cost does not fit in what is left are
    /// refused with 429 `insufficient_quota`.
    pub limit_micros: i64,
}

/// How many replicas a deployment runs: `min` always; above it, the autoscaler adds replicas up
/// to `max` under load and removes them when load falls.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct ReplicaRange {
    /// Replicas that always run (at least 1).
    pub min: i64,
    /// The most replicas (at least `min`, at most the installation's `max_replicas`).
    pub max: i64,
}

impl ReplicaRange {
    /// Exactly `n` replicas (`min` and `max` both `n`).
    pub fn exactly(n: i64) -> ReplicaRange {
        ReplicaRange { min: n, max: n }
    }
}

/// `POST /v1/organization/deployments`: a private deployment of a served model. A field left
/// `None` takes the server's default.
#[derive(Debug, Clone, Serialize, Default)]
pub struct DeploymentCreate {
    /// What requests put in `model` to reach it: 1 to 64 letters, digits, `-`, `_` or `.`,
    /// unique among the organization's deployments and different from every shared model's.
    pub name: String,
    /// A served model (see `GET /v1/models`).
    pub model: String,
    /// Default one replica (`{"min": 1, "max": 1}`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replicas: Option<ReplicaRange>,
    /// `cpu` (default).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hardware: Option<String>,
    /// Bytes of KV cache per replica (at least 4 MiB; default the installation's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kv_cache_memory: Option<i64>,
    /// Cap on prompt plus completion tokens (at least 16; default the model's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_model_len: Option<i64>,
    /// `none` (default: only its own replicas serve it) or `shared` (the shared pool serves it
    /// while it has no ready replica).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub overflow: Option<String>,
}

/// `POST /v1/organization/deployments/{deployment_id}`: new replicas.
#[derive(Debug, Clone, Serialize)]
pub struct DeploymentUpdate {
    pub replicas: ReplicaRange,
}

/// A private deployment (`object: deployment`): replicas of a model that only this
/// organization's requests reach.
#[derive(Debug, Clone, Deserialize)]
pub struct Deployment {
    pub id: String,
    pub object: String,
    /// What requests put in `model` to reach it.
    pub name: String,
    /// The served model it runs.
    pub model: String,
    pub replicas: ReplicaRange,
    /// Replicas it runs now: `replicas.min` at first, moved within the range by the
    /// autoscaler as load comes and goes (and charged for).
    pub target_replicas: i64,
    /// Replicas that answer now.
    pub ready_replicas: i64,
    /// `cpu` (or `cuda` once that engine exists).
    pub hardware: String,
    /// Bytes of KV cache per replica.
    pub kv_cache_memory: i64,
    /// Cap on prompt plus completion tokens; `None`: the model's own.
    pub max_model_len: Option<i64>,
    /// `none` or `shared`.
    pub overflow: String,
    /// `requested`, `rejected`, `provisioning`, `ready`, `scaling`, `stopping`, `stopped`,
    /// `deleting`, `deleted` or `failed`.
    pub state: String,
    /// Why it is in its state (a failure's or rejection's reason).
    pub status_message: Option<String>,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds of the last change of state or replicas.
    pub updated_at: i64,
}

/// The spec's name for [`Deployment`].
pub type DeploymentObject = Deployment;

/// One transition of a deployment (`object: deployment.event`).
#[derive(Debug, Clone, Deserialize)]
pub struct DeploymentEvent {
    pub id: String,
    pub object: String,
    /// `None` for the first.
    pub from_state: Option<String>,
    pub to_state: String,
    /// `user:<id>`, `api_key:<id>`, `operator:<name>` or `system`.
    pub actor: String,
    pub message: Option<String>,
    /// Unix seconds.
    pub created_at: i64,
}

/// A deployment's history, oldest first (`GET .../events`; not paged).
#[derive(Debug, Clone, Deserialize)]
pub struct DeploymentEventList {
    pub object: String,
    pub data: Vec<DeploymentEvent>,
}
