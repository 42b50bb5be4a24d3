//! What the data plane accepts: the chat and text completion requests, whose shared sampling
//! fields are declared once (`generation_request!`; serde's `flatten` would lose
//! `deny_unknown_fields`), and the prompt and message shapes. Fields Starfire does not support
//! yet are refused with a 400 that names them; nothing is silently ignored.

use std::collections::HashMap;

use engine::ChatMessage;
use serde::Deserialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::sampling::SamplingFields;
use super::tools::{ChatTool, ToolCallIn, ToolChoice};
use crate::error::ApiError;
use crate::generation::Prompt;
use crate::inference::ServedModel;
use protocol::{ForwardedPrompt, StructuredOutput};

/// Largest `n`, and most prompts in one text completion.
pub const MAX_N: usize = 16;

/// `content` of a message: a string, or an array of text parts.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum MessageContent {
    Text(String),
    Parts(Vec<ContentPart>),
}

/// One part of a message's content. Only `{"type": "text", "text": ...}` is supported.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ContentPart {
    /// `text`.
    #[serde(rename = "type")]
    #[schema(pattern = "^text$")]
    pub kind: String,
    #[schema(value_type = String, required = true)]
    pub text: Option<String>,
}

/// A chat message.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChatMessageIn {
    /// `system`, `developer` (treated as `system`), `user`, `assistant` or `tool` (a tool's
    /// result).
    #[schema(pattern = "^(system|developer|user|assistant|tool)$")]
    pub role: String,
    /// Required, except on an assistant message that has `tool_calls`.
    pub content: Option<MessageContent>,
    /// An assistant message's calls (as a response gave them).
    pub tool_calls: Option<Vec<ToolCallIn>>,
    /// A `tool` message (and only one): the id of the call it answers, 1 to 256 characters.
    #[schema(min_length = 1, max_length = 256)]
    pub tool_call_id: Option<String>,
    /// A participant's name: accepted for compatibility; templates do not see it.
    pub name: Option<String>,
    /// An assistant message's refusal, as responses carry it: only null is accepted.
    pub refusal: Option<String>,
}

/// `stop`: one string or up to 16, each 1 to 256 characters.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum StopSpec {
    One(String),
    Many(Vec<String>),
}

/// Options of a streamed response.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StreamOptions {
    /// Send a last chunk with `usage` (and `choices: []`) before `data: [DONE]`.
    pub include_usage: Option<bool>,
}

/// `prompt`: a string, several strings, token ids, or several lists of token ids.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum PromptInput {
    Text(String),
    Texts(Vec<String>),
    Tokens(Vec<u32>),
    TokenLists(Vec<Vec<u32>>),
}

impl PromptInput {
    /// One token list per input, text tokenized with the model (BOS where it wants one).
    pub fn token_lists(&self, model: &dyn ServedModel) -> Result<Vec<Vec<u32>>, ApiError> {
        Ok(match self {
            PromptInput::Text(t) => vec![model.encode(t, true)?],
            PromptInput::Texts(ts) => ts
                .iter()
                .map(|t| model.encode(t, true))
                .collect::<Result<_, _>>()?,
            PromptInput::Tokens(ids) => vec![ids.clone()],
            PromptInput::TokenLists(lists) => lists.clone(),
        })
    }
}

/// Declares a generation request: its own fields, then the sampling and streaming fields every
/// generation request shares, and `sampling_fields` to read the latter.
macro_rules! generation_request {
    ($(#[$meta:meta])* pub struct $name:ident { $($body:tt)* }) => {
        $(#[$meta])*
        pub struct $name {
            $($body)*
            /// 0 to 2; 0 is greedy. Default 1.
            #[schema(minimum = 0, maximum = 2)]
            pub temperature: Option<f64>,
            /// In (0, 1]. Default 1.
            #[schema(exclusive_minimum = 0, maximum = 1)]
            pub top_p: Option<f64>,
            /// Choices per prompt, 1 to 16. Default 1.
            #[schema(minimum = 1, maximum = 16)]
            pub n: Option<u32>,
            pub stop: Option<StopSpec>,
            /// Makes sampling reproducible.
            pub seed: Option<i64>,
            /// -2 to 2.
            #[schema(minimum = -2, maximum = 2)]
            pub presence_penalty: Option<f64>,
            /// -2 to 2.
            #[schema(minimum = -2, maximum = 2)]
            pub frequency_penalty: Option<f64>,
            /// Token id (as a string) to a bias from -100 to 100; at most 300 tokens.
            pub logit_bias: Option<HashMap<String, f64>>,
            /// An end-user id (accepted for compatibility; not used for anything yet).
            pub user: Option<String>,
            /// Stream the answer as server-sent events (`data: {chunk}`, then `data: [DONE]`).
            pub stream: Option<bool>,
            pub stream_options: Option<StreamOptions>,
            /// vLLM: keep the `top_k` most likely tokens (0 or -1: all).
            pub top_k: Option<i32>,
            /// vLLM: drop tokens below `min_p` times the top token's probability; 0 to 1.
            #[schema(minimum = 0, maximum = 1)]
            pub min_p: Option<f64>,
            /// vLLM: > 1 discourages repeating prompt or output tokens; in (0, 10].
            #[schema(exclusive_minimum = 0, maximum = 10)]
            pub repetition_penalty: Option<f64>,
            /// vLLM: EOS and stop tokens cannot end a choice before this many tokens.
            pub min_tokens: Option<u32>,
            /// vLLM: keep generating after EOS.
            pub ignore_eos: Option<bool>,
            /// vLLM: token ids that end a choice; at most 1024.
            #[schema(max_items = 1024)]
            pub stop_token_ids: Option<Vec<u32>>,
            /// vLLM: lower runs earlier among this organization's requests (default 0).
            pub priority: Option<i32>,
            /// What the answer must be: text (the default), any JSON object (JSON mode), or
            /// JSON valid against a schema. Enforced while generating (constrained decoding).
            pub response_format: Option<ResponseFormat>,
            /// vLLM: a constraint on the output; give exactly one of its fields.
            pub structured_outputs: Option<StructuredOutputs>,
            /// vLLM's older name for `structured_outputs.json`: a JSON schema (an object, or
            /// its text).
            #[schema(value_type = Option<Object>)]
            pub guided_json: Option<Value>,
            /// vLLM's older name for `structured_outputs.regex`.
            pub guided_regex: Option<String>,
            /// vLLM's older name for `structured_outputs.choice`.
            #[schema(min_items = 1, max_items = 1024)]
            pub guided_choice: Option<Vec<String>>,
            /// vLLM's older name for `structured_outputs.grammar` (llguidance's Lark syntax).
            pub guided_grammar: Option<String>,
        }

        impl $name {
            /// The shared sampling fields, with the logprobs count the request asked for and
            /// the name of the field that asked.
            fn sampling_fields(
                &self,
                logprobs: Option<usize>,
                logprobs_field: &'static str,
            ) -> Result<SamplingFields<'_>, ApiError> {
                Ok(SamplingFields {
                    n: self.n,
                    temperature: self.temperature,
                    top_p: self.top_p,
                    top_k: self.top_k,
                    min_p: self.min_p,
                    seed: self.seed,
                    presence_penalty: self.presence_penalty,
                    frequency_penalty: self.frequency_penalty,
                    repetition_penalty: self.repetition_penalty,
                    logit_bias: self.logit_bias.as_ref(),
                    logprobs,
                    logprobs_field,
                    stop: self.stop.as_ref(),
                    stop_token_ids: self.stop_token_ids.as_ref(),
                    min_tokens: self.min_tokens,
                    ignore_eos: self.ignore_eos,
                    structured: self.structured_output()?,
                })
            }

            /// The constraint the request puts on its output, if any, with the request field
            /// that gave it. Two ways of asking at once are refused.
            pub(crate) fn structured_output(
                &self,
            ) -> Result<Option<(StructuredOutput, &'static str)>, ApiError> {
                let mut given: Vec<(StructuredOutput, &'static str)> = Vec::new();
                match &self.response_format {
                    None | Some(ResponseFormat::Text) => {}
                    Some(ResponseFormat::JsonObject) => {
                        given.push((StructuredOutput::JsonObject, "response_format"))
                    }
                    Some(ResponseFormat::JsonSchema { json_schema }) => {
                        given.push((json_schema.to_structured()?, "response_format"))
                    }
                }
                if let Some(so) = &self.structured_outputs {
                    given.extend(so.to_structured()?);
                }
                given.extend(vllm_constraints(
                    VllmFields {
                        json: self.guided_json.as_ref(),
                        regex: self.guided_regex.as_ref(),
                        choice: self.guided_choice.as_ref(),
                        grammar: self.guided_grammar.as_ref(),
                    },
                    ["guided_json", "guided_regex", "guided_choice", "guided_grammar"],
                )?);
                if given.len() > 1 {
                    return Err(ApiError::field(
                        given[1].1,
                        format_args!(
                            "give one structured output; `{}` already asks for one",
                            given[0].1
                        ),
                    ));
                }
                let given = given.pop();
                if let Some((spec, field)) = &given {
                    spec.validate(field)
                        .map_err(|e| ApiError::field(field, &e.message))?;
                }
                Ok(given)
            }

            /// `stream_options.include_usage`, refused without `stream: true`.
            pub fn include_usage(&self, stream: bool) -> Result<bool, ApiError> {
                if !stream && self.stream_options.is_some() {
                    return Err(ApiError::field(
                        "stream_options",
                        "only allowed with `stream: true`",
                    ));
                }
                Ok(self
                    .stream_options
                    .as_ref()
                    .and_then(|o| o.include_usage)
                    .unwrap_or(false))
            }
        }
    };
}

generation_request! {
    /// A chat completion request, with OpenAI's fields and vLLM's sampling extras.
    #[derive(Debug, Deserialize, ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct ChatCompletionRequest {
        /// A served model (`GET /v1/models`).
        #[schema(example = "smollm2-135m-instruct")]
        pub model: String,
        #[schema(min_items = 1)]
        pub messages: Vec<ChatMessageIn>,
        /// Most tokens to generate per choice (default: what the context leaves).
        #[schema(minimum = 1)]
        pub max_tokens: Option<u32>,
        /// Same as `max_tokens` (OpenAI's newer name); give one of them.
        #[schema(minimum = 1)]
        pub max_completion_tokens: Option<u32>,
        /// Return the log-probability of each output token.
        pub logprobs: Option<bool>,
        /// 0 to 20 most likely alternatives per token; needs `logprobs: true`.
        #[schema(maximum = 20)]
        pub top_logprobs: Option<u32>,
        /// Functions the model may call (at most 128). Calls come back in
        /// `message.tool_calls`; their arguments are valid against each function's
        /// `parameters` (enforced while generating).
        #[schema(max_items = 128)]
        pub tools: Option<Vec<ChatTool>>,
        /// `auto` (the default with tools): text or calls; `none`: text; `required`: one or
        /// more calls; `{"type": "function", "function": {"name": ...}}`: one call of it.
        pub tool_choice: Option<ToolChoice>,
        /// Whether one answer may make several calls (default true).
        pub parallel_tool_calls: Option<bool>,
        /// Not supported yet: refused with 400.
        #[schema(value_type = Option<Object>)]
        pub functions: Option<Value>,
        /// Not supported yet: refused with 400.
        #[schema(value_type = Option<Object>)]
        pub function_call: Option<Value>,
        /// Not supported yet: refused with 400.
        #[schema(value_type = Option<Object>)]
        pub audio: Option<Value>,
        /// Not supported yet: refused with 400.
        #[schema(value_type = Option<Object>)]
        pub modalities: Option<Value>,
        /// Not supported yet: refused with 400.
        #[schema(value_type = Option<Object>)]
        pub prediction: Option<Value>,
        /// Not supported yet: refused with 400.
        #[schema(value_type = Option<Object>)]
        pub reasoning_effort: Option<Value>,
        /// Not supported yet: refused with 400.
        #[schema(value_type = Option<Object>)]
        pub web_search_options: Option<Value>,
    }
}

generation_request! {
    /// A text completion request, with OpenAI's fields and vLLM's sampling extras.
    #[derive(Debug, Deserialize, ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct CompletionRequest {
        /// A served model (`GET /v1/models`).
        #[schema(example = "smollm2-135m-instruct")]
        pub model: String,
        pub prompt: PromptInput,
        /// Most tokens to generate per choice (default 16, as OpenAI).
        #[schema(minimum = 1)]
        pub max_tokens: Option<u32>,
        /// Return log-probabilities of each token and of this many alternatives (0 to 20).
        #[schema(maximum = 20)]
        pub logprobs: Option<u32>,
        /// Only `false` is supported.
        pub echo: Option<bool>,
        /// Only equal to `n` (or unset) is supported.
        pub best_of: Option<u32>,
        /// Not supported yet: refused with 400.
        pub suffix: Option<String>,
    }
}

/// `response_format`: OpenAI's shapes.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ResponseFormat {
    /// Free text (the default).
    Text,
    /// JSON mode: the answer is one JSON object.
    JsonObject,
    /// The answer is JSON valid against `json_schema.schema`.
    JsonSchema { json_schema: JsonSchemaFormat },
}

/// `response_format.json_schema`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JsonSchemaFormat {
    /// 1 to 64 letters, digits, underscores and dashes.
    // Read as empty when missing, so that the error names `response_format.json_schema.name`.
    #[serde(default)]
    #[schema(required = true, pattern = "^[A-Za-z0-9_-]{1,64}$")]
    pub name: String,
    pub description: Option<String>,
    /// The JSON Schema (draft 2020-12 keywords; a keyword Starfire cannot enforce is a 400
    /// that names it). Absent: any JSON value.
    #[schema(value_type = Option<Object>)]
    pub schema: Option<Value>,
    /// Accepted for compatibility: Starfire always enforces the schema.
    pub strict: Option<bool>,
}

impl JsonSchemaFormat {
    fn to_structured(&self) -> Result<StructuredOutput, ApiError> {
        if !protocol::valid_function_name(&self.name) {
            return Err(ApiError::field(
                "response_format.json_schema.name",
                "must be 1 to 64 letters, digits, underscores or dashes",
            ));
        }
        Ok(StructuredOutput::JsonSchema {
            schema: self
                .schema
                .clone()
                .unwrap_or_else(|| Value::Object(Default::default())),
        })
    }
}

/// vLLM's `structured_outputs`: exactly one field.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StructuredOutputs {
    /// A JSON schema (an object, or its text).
    #[schema(value_type = Option<Object>)]
    pub json: Option<Value>,
    /// A regular expression (Rust `regex` syntax) the whole output matches.
    pub regex: Option<String>,
    /// The output is exactly one of these strings (1 to 1024 of them).
    #[schema(min_items = 1, max_items = 1024)]
    pub choice: Option<Vec<String>>,
    /// A context-free grammar in llguidance's Lark syntax.
    pub grammar: Option<String>,
    /// `true`: any JSON object.
    pub json_object: Option<bool>,
}

impl StructuredOutputs {
    fn to_structured(&self) -> Result<Vec<(StructuredOutput, &'static str)>, ApiError> {
        let mut given = vllm_constraints(
            VllmFields {
                json: self.json.as_ref(),
                regex: self.regex.as_ref(),
                choice: self.choice.as_ref(),
                grammar: self.grammar.as_ref(),
            },
            [
                "structured_outputs.json",
                "structured_outputs.regex",
                "structured_outputs.choice",
                "structured_outputs.grammar",
            ],
        )?;
        if self.json_object == Some(true) {
            given.push((
                StructuredOutput::JsonObject,
                "structured_outputs.json_object",
            ));
        }
        if given.is_empty() {
            return Err(ApiError::field(
                "structured_outputs",
                "give one of json, regex, choice, grammar or json_object",
            ));
        }
        Ok(given)
    }
}

/// vLLM's four constraint fields, as `structured_outputs.*` or as the older `guided_*`.
struct VllmFields<'a> {
    json: Option<&'a Value>,
    regex: Option<&'a String>,
    choice: Option<&'a Vec<String>>,
    grammar: Option<&'a String>,
}

/// The constraints among `f`, each with its field's name (`names`: json, regex, choice,
/// grammar, in that order).
fn vllm_constraints(
    f: VllmFields<'_>,
    names: [&'static str; 4],
) -> Result<Vec<(StructuredOutput, &'static str)>, ApiError> {
    let [json, regex, choice, grammar] = names;
    let mut given = Vec::new();
    if let Some(schema) = f.json {
        given.push((schema_value(schema, json)?, json));
    }
    if let Some(pattern) = f.regex {
        let pattern = pattern.clone();
        given.push((StructuredOutput::Regex { pattern }, regex));
    }
    if let Some(options) = f.choice {
        let options = options.clone();
        given.push((StructuredOutput::Choice { options }, choice));
    }
    if let Some(lark) = f.grammar {
        let lark = lark.clone();
        given.push((StructuredOutput::Grammar { lark }, grammar));
    }
    Ok(given)
}

/// A JSON schema given as an object or as its text.
fn schema_value(value: &Value, field: &'static str) -> Result<StructuredOutput, ApiError> {
    let schema = match value {
        Value::String(text) => serde_json::from_str(text)
            .map_err(|e| ApiError::field(field, format_args!("is not JSON: {e}")))?,
        other => other.clone(),
    };
    Ok(StructuredOutput::JsonSchema { schema })
}

fn unsupported(field: &str) -> ApiError {
    ApiError::bad_request(
        format!("'{field}' is not supported by Starfire yet."),
        Some(field),
    )
}

impl ChatCompletionRequest {
    pub(crate) fn reject_unsupported(&self) -> Result<(), ApiError> {
        let fields: [(&str, &Option<Value>); 7] = [
            ("functions", &self.functions),
            ("function_call", &self.function_call),
            ("audio", &self.audio),
            ("modalities", &self.modalities),
            ("prediction", &self.prediction),
            ("reasoning_effort", &self.reasoning_effort),
            ("web_search_options", &self.web_search_options),
        ];
        for (name, value) in fields {
            if value.as_ref().is_some_and(|v| !v.is_null()) {
                return Err(unsupported(name));
            }
        }
        Ok(())
    }

    /// The sampling fields; `top_logprobs` without `logprobs: true` is refused.
    pub(crate) fn chat_sampling_fields(&self) -> Result<SamplingFields<'_>, ApiError> {
        if self.max_tokens.is_some() && self.max_completion_tokens.is_some() {
            return Err(ApiError::field(
                "max_completion_tokens",
                "give `max_tokens` or `max_completion_tokens`, not both",
            ));
        }
        let logprobs = match (self.logprobs.unwrap_or(false), self.top_logprobs) {
            (true, top) => Some(top.unwrap_or(0) as usize),
            (false, Some(t)) if t > 0 => {
                return Err(ApiError::field("top_logprobs", "needs `logprobs: true`"))
            }
            (false, _) => None,
        };
        self.sampling_fields(logprobs, "top_logprobs")
    }

    pub(crate) fn requested_max_tokens(&self) -> Result<Option<usize>, ApiError> {
        let (field, value) = match (self.max_tokens, self.max_completion_tokens) {
            (Some(v), _) => ("max_tokens", v),
            (None, Some(v)) => ("max_completion_tokens", v),
            (None, None) => return Ok(None),
        };
        if value == 0 {
            return Err(ApiError::field(field, "must be at least 1"));
        }
        if let Some(min) = self.min_tokens.filter(|&m| m > value) {
            return Err(ApiError::field(
                "min_tokens",
                format_args!("{min} is more than {field} ({value})"),
            ));
        }
        Ok(Some(value as usize))
    }
}

impl CompletionRequest {
    pub(crate) fn reject_unsupported(&self) -> Result<(), ApiError> {
        if self.echo == Some(true) {
            return Err(unsupported("echo"));
        }
        if self.suffix.is_some() {
            return Err(unsupported("suffix"));
        }
        if let Some(best_of) = self.best_of {
            if best_of != self.n.unwrap_or(1) {
                return Err(ApiError::bad_request(
                    "'best_of' other than `n` is not supported by Starfire yet.",
                    Some("best_of"),
                ));
            }
        }
        Ok(())
    }

    pub(crate) fn text_sampling_fields(&self) -> Result<SamplingFields<'_>, ApiError> {
        self.sampling_fields(self.logprobs.map(|k| k as usize), "logprobs")
    }

    /// The prompts as `model` takes them: token lists, each non-empty and within the
    /// vocabulary; for a model that owns its tokenizer, the texts and token lists as given.
    pub(crate) fn prompts(&self, model: &dyn ServedModel) -> Result<Vec<Prompt>, ApiError> {
        if model.owns_tokenizer() {
            let prompts: Vec<ForwardedPrompt> = match &self.prompt {
                PromptInput::Text(t) => vec![ForwardedPrompt::Text(t.clone())],
                PromptInput::Texts(ts) => ts.iter().cloned().map(ForwardedPrompt::Text).collect(),
                PromptInput::Tokens(ids) => vec![ForwardedPrompt::Tokens(ids.clone())],
                PromptInput::TokenLists(lists) => {
                    lists.iter().cloned().map(ForwardedPrompt::Tokens).collect()
                }
            };
            check_prompt_count(prompts.len())?;
            if prompts
                .iter()
                .any(|p| matches!(p, ForwardedPrompt::Tokens(ids) if ids.is_empty()))
            {
                return Err(ApiError::field(
                    "prompt",
                    "a prompt must have at least one token",
                ));
            }
            return Ok(prompts.into_iter().map(Prompt::Forwarded).collect());
        }
        let vocab = model.vocab_size();
        let prompts = self.prompt.token_lists(model)?;
        check_prompt_count(prompts.len())?;
        for p in &prompts {
            if p.is_empty() {
                return Err(ApiError::field(
                    "prompt",
                    "a prompt must have at least one token",
                ));
            }
            if let Some(bad) = p.iter().find(|&&id| id as usize >= vocab) {
                return Err(ApiError::field(
                    "prompt",
                    format_args!("{bad} is not a token id below {vocab}"),
                ));
            }
        }
        Ok(prompts.into_iter().map(Prompt::Tokens).collect())
    }
}

fn check_prompt_count(count: usize) -> Result<(), ApiError> {
    if count == 0 || count > MAX_N {
        return Err(ApiError::field(
            "prompt",
            format_args!("give 1 to {MAX_N} prompts"),
        ));
    }
    Ok(())
}

/// Chat messages as the template takes them; errors name `messages[i]...`.
pub(crate) fn chat_messages(messages: &[ChatMessageIn]) -> Result<Vec<ChatMessage>, ApiError> {
    if messages.is_empty() {
        return Err(ApiError::field(
            "messages",
            "at least one message is required",
        ));
    }
    messages
        .iter()
        .enumerate()
        .map(|(i, m)| chat_message(i, m))
        .collect()
}

fn chat_message(i: usize, m: &ChatMessageIn) -> Result<ChatMessage, ApiError> {
    let role = match m.role.as_str() {
        "system" | "developer" => "system",
        "user" => "user",
        "assistant" => "assistant",
        "tool" => "tool",
        other => {
            return Err(ApiError::field(
                &format!("messages[{i}].role"),
                format_args!(
                    "'{other}' is not supported (system, developer, user, assistant, tool)"
                ),
            ))
        }
    };
    let tool_calls = match &m.tool_calls {
        Some(_) if role != "assistant" => {
            return Err(ApiError::field(
                &format!("messages[{i}].tool_calls"),
                "only assistant messages have tool calls",
            ));
        }
        Some(calls) => calls
            .iter()
            .enumerate()
            .map(|(j, c)| c.to_call(&format!("messages[{i}].tool_calls[{j}]")))
            .collect::<Result<Vec<_>, _>>()?,
        None => Vec::new(),
    };
    let tool_call_id = match (&m.tool_call_id, role) {
        (Some(id), "tool") if !id.is_empty() && id.chars().count() <= 256 => Some(id.clone()),
        (None, "tool") | (Some(_), "tool") => {
            return Err(ApiError::field(
                &format!("messages[{i}].tool_call_id"),
                "a tool message needs the id (1 to 256 characters) of the call it answers",
            ))
        }
        (Some(_), _) => {
            return Err(ApiError::field(
                &format!("messages[{i}].tool_call_id"),
                "only tool messages answer a call",
            ))
        }
        (None, _) => None,
    };
    if m.refusal.is_some() {
        return Err(ApiError::field(
            &format!("messages[{i}].refusal"),
            "only null is accepted",
        ));
    }
    let content = match &m.content {
        Some(content) => message_text(i, content)?,
        None if !tool_calls.is_empty() => String::new(),
        None => {
            return Err(ApiError::field(
                &format!("messages[{i}].content"),
                "is required (except on an assistant message with tool_calls)",
            ))
        }
    };
    Ok(ChatMessage {
        role: role.to_owned(),
        content,
        tool_calls,
        tool_call_id,
    })
}

/// The text of message `i`'s content (text parts joined).
fn message_text(i: usize, content: &MessageContent) -> Result<String, ApiError> {
    let parts = match content {
        MessageContent::Text(t) => return Ok(t.clone()),
        MessageContent::Parts(parts) => parts,
    };
    let mut text = String::new();
    for (j, part) in parts.iter().enumerate() {
        match (part.kind.as_str(), &part.text) {
            ("text", Some(t)) => text.push_str(t),
            ("text", None) => {
                return Err(ApiError::field(
                    &format!("messages[{i}].content[{j}].text"),
                    "a text part needs `text`",
                ))
            }
            (other, _) => {
                return Err(ApiError::field(
                    &format!("messages[{i}].content[{j}].type"),
                    format_args!("'{other}' parts are not supported (text only)"),
                ))
            }
        }
    }
    Ok(text)
}
