//! Sampling parameters with vLLM's `SamplingParams` names and semantics.

use serde::{Deserialize, Serialize};

use crate::chat::ToolDefinition;
use crate::error::InvalidParam;

/// How to pick each next token, and when a sequence ends.
///
/// The sampler (`Sampler`) applies the token-level fields; the scheduler applies the
/// sequence-level ones (`n`, `max_tokens`, `stop`, `include_stop_str_in_output`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SamplingParams {
    /// Number of sequences to return for one prompt (they share the prompt's KV blocks).
    pub n: usize,
    /// 0 means greedy (argmax); larger values flatten the distribution.
    pub temperature: f32,
    /// Keep the smallest set of tokens whose probabilities add up to at least `top_p`.
    pub top_p: f32,
    /// Keep the `top_k` most likely tokens; 0 or a negative value keeps all.
    pub top_k: i32,
    /// Drop tokens whose probability is below `min_p` times the top token's.
    pub min_p: f32,
    /// Seed for this request's random choices; sampling is then reproducible. `None` draws one.
    pub seed: Option<u64>,
    /// Subtracted once from the logit of every token already generated (OpenAI semantics).
    pub presence_penalty: f32,
    /// Subtracted from a token's logit once per time it was already generated.
    pub frequency_penalty: f32,
    /// > 1 discourages tokens seen in the prompt or the output (CTRL-style, as vLLM).
    pub repetition_penalty: f32,
    /// Added to the logits of the named token ids before sampling (OpenAI `logit_bias`).
    pub logit_bias: Vec<(u32, f32)>,
    /// Return the log-probability of the chosen token and of this many most likely ones.
    pub logprobs: Option<usize>,
    /// Token ids that end the sequence (in addition to EOS unless `ignore_eos`).
    pub stop_token_ids: Vec<u32>,
    /// Strings that end the sequence; the text is cut before them.
    pub stop: Vec<String>,
    /// Keep the stop string in the returned text.
    pub include_stop_str_in_output: bool,
    /// Maximum number of tokens to generate; `None` means up to the model's context length.
    pub max_tokens: Option<usize>,
    /// EOS and stop token ids cannot end the sequence before this many tokens.
    pub min_tokens: usize,
    /// Keep generating after EOS.
    pub ignore_eos: bool,
    /// Do not return the text of special tokens.
    pub skip_special_tokens: bool,
    /// A grammar the output must follow, enforced token by token (constrained decoding).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub structured: Option<StructuredOutput>,
}

/// What a constrained output must be (OpenAI's `response_format`, vLLM's
/// `structured_outputs` and `guided_*`). The engine compiles it into a token mask per step.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StructuredOutput {
    /// Any JSON object.
    JsonObject,
    /// A JSON value valid against the JSON Schema.
    JsonSchema { schema: serde_json::Value },
    /// Text the regular expression (Rust `regex` syntax) matches as a whole.
    Regex { pattern: String },
    /// Exactly one of the strings.
    Choice { options: Vec<String> },
    /// Text of a context-free grammar in llguidance's Lark syntax.
    Grammar { lark: String },
    /// Calls of `functions` in the hermes format, one per `<tool_call>` block:
    /// `<tool_call>\n{"name": "f", "arguments": {...}}\n</tool_call>`, the arguments valid
    /// against the function's parameter schema; several blocks (separated by a newline) when
    /// `parallel`. `answer` says whether text may come instead.
    ToolCalls {
        functions: Vec<ToolDefinition>,
        answer: ToolAnswer,
        parallel: bool,
    },
}

/// What a [`StructuredOutput::ToolCalls`] output may be besides calls.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ToolAnswer {
    /// Only calls (`tool_choice: required`).
    Required,
    /// One call of the function `name` (a named `tool_choice`).
    Named { name: String },
    /// Free text, or text that ends in calls (`tool_choice: auto`).
    Auto,
    /// JSON valid against `schema` (the request's `response_format`), or calls.
    AutoJson { schema: serde_json::Value },
}

/// Most functions one request may offer (OpenAI's limit).
pub const MAX_TOOLS: usize = 128;

/// Largest structured-output specification accepted, as JSON text.
pub const MAX_STRUCTURED_BYTES: usize = 256 * 1024;
/// Most options of a `choice`.
pub const MAX_CHOICES: usize = 1024;

impl StructuredOutput {
    /// Checks sizes and shapes the grammar compiler would not name well; `field` is the
    /// request field it came from.
    pub fn validate(&self, field: &str) -> Result<(), InvalidParam> {
        let size = serde_json::to_string(self).map_or(usize::MAX, |s| s.len());
        if size > MAX_STRUCTURED_BYTES {
            return Err(InvalidParam::new(
                field,
                format!("is {size} bytes as JSON; at most {MAX_STRUCTURED_BYTES} are accepted"),
            ));
        }
        match self {
            StructuredOutput::JsonSchema { schema }
                if !schema.is_object() && !schema.is_boolean() =>
            {
                Err(InvalidParam::new(field, "the schema must be a JSON object"))
            }
            StructuredOutput::Regex { pattern } if pattern.is_empty() => {
                Err(InvalidParam::new(field, "the regular expression is empty"))
            }
            StructuredOutput::Choice { options }
                if options.is_empty() || options.len() > MAX_CHOICES =>
            {
                Err(InvalidParam::new(
                    field,
                    format!("give 1 to {MAX_CHOICES} choices"),
                ))
            }
            StructuredOutput::Choice { options } if options.iter().any(String::is_empty) => {
                Err(InvalidParam::new(field, "a choice must not be empty"))
            }
            StructuredOutput::Grammar { lark } if lark.trim().is_empty() => {
                Err(InvalidParam::new(field, "the grammar is empty"))
            }
            StructuredOutput::ToolCalls { functions, .. }
                if functions.is_empty() || functions.len() > MAX_TOOLS =>
            {
                Err(InvalidParam::new(
                    field,
                    format!("give 1 to {MAX_TOOLS} functions"),
                ))
            }
            StructuredOutput::ToolCalls {
                functions,
                answer: ToolAnswer::Named { name },
                ..
            } if !functions.iter().any(|f| f.name == *name) => Err(InvalidParam::new(
                field,
                format!("'{name}' is not one of the functions"),
            )),
            StructuredOutput::ToolCalls { functions, .. } => {
                match functions.iter().find(|f| !valid_function_name(&f.name)) {
                    Some(f) => Err(InvalidParam::new(
                        field,
                        format!(
                            "'{}' is not a function name (1 to 64 letters, digits, underscores or dashes)",
                            f.name
                        ),
                    )),
                    None => Ok(()),
                }
            }
            _ => Ok(()),
        }
    }
}

/// OpenAI's rule for function and schema names: 1 to 64 ASCII letters, digits, underscores
/// and dashes.
pub fn valid_function_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl Default for SamplingParams {
    fn default() -> Self {
        Self {
            n: 1,
            temperature: 1.0,
            top_p: 1.0,
            top_k: 0,
            min_p: 0.0,
            seed: None,
            presence_penalty: 0.0,
            frequency_penalty: 0.0,
            repetition_penalty: 1.0,
            logit_bias: Vec::new(),
            logprobs: None,
            stop_token_ids: Vec::new(),
            stop: Vec::new(),
            include_stop_str_in_output: false,
            max_tokens: Some(16),
            min_tokens: 0,
            ignore_eos: false,
            skip_special_tokens: true,
            structured: None,
        }
    }
}

/// Largest `logprobs` value accepted (vLLM's default `max_logprobs`).
pub const MAX_LOGPROBS: usize = 20;

/// Most tokens one request may bias (`logit_bias`): OpenAI's limit.
pub const MAX_LOGIT_BIAS: usize = 300;

/// Most `stop_token_ids` of one request.
pub const MAX_STOP_TOKEN_IDS: usize = 1024;

impl SamplingParams {
    /// Greedy decoding of at most `max_tokens` tokens.
    pub fn greedy(max_tokens: usize) -> Self {
        Self {
            temperature: 0.0,
            max_tokens: Some(max_tokens),
            ..Self::default()
        }
    }

    /// True when the choice is the argmax (no randomness involved).
    pub fn is_greedy(&self) -> bool {
        self.temperature < 1e-5
    }

    /// Checks every field's range; the error names the field.
    pub fn validate(&self) -> Result<(), InvalidParam> {
        let bad = |field: &'static str, why: &str| Err(InvalidParam::new(field, why));
        if self.n == 0 || self.n > 128 {
            return bad("n", "must be between 1 and 128");
        }
        if !(0.0..=2.0).contains(&self.temperature) || self.temperature.is_nan() {
            return bad("temperature", "must be between 0 and 2");
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return bad("top_p", "must be in (0, 1]");
        }
        if !(0.0..=1.0).contains(&self.min_p) {
            return bad("min_p", "must be in [0, 1]");
        }
        if !(-2.0..=2.0).contains(&self.presence_penalty) {
            return bad("presence_penalty", "must be between -2 and 2");
        }
        if !(-2.0..=2.0).contains(&self.frequency_penalty) {
            return bad("frequency_penalty", "must be between -2 and 2");
        }
        if !(self.repetition_penalty > 0.0 && self.repetition_penalty <= 10.0) {
            return bad("repetition_penalty", "must be in (0, 10]");
        }
        if self
            .logit_bias
            .iter()
            .any(|(_, b)| !(-100.0..=100.0).contains(b))
        {
            return bad("logit_bias", "each bias must be between -100 and 100");
        }
        // Bounded: a device sampler takes every bias and penalty of a row each step.
        if self.logit_bias.len() > MAX_LOGIT_BIAS {
            return bad(
                "logit_bias",
                &format!(
                    "at most {MAX_LOGIT_BIAS} tokens may be biased; got {}",
                    self.logit_bias.len()
                ),
            );
        }
        if self.stop_token_ids.len() > MAX_STOP_TOKEN_IDS {
            return bad(
                "stop_token_ids",
                &format!(
                    "at most {MAX_STOP_TOKEN_IDS} token ids; got {}",
                    self.stop_token_ids.len()
                ),
            );
        }
        if self.logprobs.is_some_and(|k| k > MAX_LOGPROBS) {
            return bad("logprobs", "must be at most 20");
        }
        if self.max_tokens == Some(0) {
            return bad("max_tokens", "must be at least 1");
        }
        if self.structured.is_some() && self.ignore_eos {
            return bad(
                "ignore_eos",
                "cannot be combined with a structured output (the grammar decides where it ends)",
            );
        }
        if self.stop.len() > 16
            || self
                .stop
                .iter()
                .any(|s| s.is_empty() || s.chars().count() > 256)
        {
            return bad("stop", "at most 16 strings of 1 to 256 characters");
        }
        Ok(())
    }
}
