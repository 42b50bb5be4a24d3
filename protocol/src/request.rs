//! What comes in (`NewRequest`) and what goes out (`Delta`), as plain data.

use serde::{Deserialize, Serialize};

use crate::chat::ChatMessage;
use crate::sampling::SamplingParams;

/// A request as the gateway hands it over.
#[derive(Clone, Debug)]
pub struct NewRequest {
    /// Unique among live requests (the gateway's request id).
    pub request_id: String,
    /// Who pays; fairness and prefix-cache isolation are per tenant.
    pub tenant: String,
    /// The tenant's plan weight for fairness (dedicated > paid > free); must be positive.
    pub tenant_weight: f64,
    /// Lower runs earlier inside the tenant, and is preempted later (vLLM's convention).
    pub priority: i32,
    pub prompt_token_ids: Vec<u32>,
    pub params: SamplingParams,
    /// Server-set salt mixed into the prefix-cache keys, on top of the tenant.
    pub cache_salt: Option<String>,
}

impl NewRequest {
    /// A request with weight 1, priority 0 and no salt.
    pub fn new(
        request_id: impl Into<String>,
        tenant: impl Into<String>,
        prompt_token_ids: Vec<u32>,
        params: SamplingParams,
    ) -> Self {
        Self {
            request_id: request_id.into(),
            tenant: tenant.into(),
            tenant_weight: 1.0,
            priority: 0,
            prompt_token_ids,
            params,
            cache_salt: None,
        }
    }
}

/// A prompt for a backend that owns its tokenizer (an OpenAI-compatible upstream): the
/// request's own messages or text, which the backend templates and tokenizes itself.
#[derive(Clone, Debug, PartialEq)]
pub enum ForwardedPrompt {
    /// Chat messages (`/v1/chat/completions`).
    Chat(Vec<ChatMessage>),
    /// Plain text (`/v1/completions`).
    Text(String),
    /// Token ids in the backend's own vocabulary (`/v1/completions` with token prompts).
    Tokens(Vec<u32>),
}

impl ForwardedPrompt {
    /// The prompt's tokens for a tokenizer this side does not have, erring high (see
    /// [`estimate_tokens`]); what admission holds until the backend's usage gives the count.
    pub fn estimated_tokens(&self) -> usize {
        match self {
            ForwardedPrompt::Tokens(ids) => ids.len(),
            ForwardedPrompt::Text(text) => estimate_tokens(text),
            // Each message adds a few tokens of template around its role and content.
            ForwardedPrompt::Chat(messages) => messages
                .iter()
                .map(|m| estimate_tokens(&m.content) + estimate_tokens(&m.role) + 3)
                .sum::<usize>()
                .saturating_add(3),
        }
    }
}

/// Tokens of `text` for a tokenizer this side does not have, erring high: one per three bytes
/// of UTF-8 (English averages about four characters a token; CJK about one character, three
/// bytes, a token), at least one.
pub fn estimate_tokens(text: &str) -> usize {
    text.len().div_ceil(3).max(1)
}

/// A request for a backend that owns its tokenizer: [`NewRequest`] with the prompt as given.
#[derive(Clone, Debug)]
pub struct ForwardedRequest {
    pub request_id: String,
    pub tenant: String,
    /// The tenant's plan weight for fairness (an upstream that is a Starfire worker uses it).
    pub tenant_weight: f64,
    pub priority: i32,
    pub prompt: ForwardedPrompt,
    pub params: SamplingParams,
    /// The client reads the answer as it comes (else it waits for the whole answer).
    pub stream: bool,
}

/// Why a choice ended. Serialises to OpenAI's `finish_reason` through `as_str`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// EOS, a stop token id or a stop string.
    Stop,
    /// `max_tokens` or `max_model_len` reached.
    Length,
    /// The client went away or the request was cancelled.
    Abort,
    /// The engine failed the step this request was in.
    Error(String),
}

impl FinishReason {
    pub fn as_str(&self) -> &'static str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
            FinishReason::Abort => "abort",
            FinishReason::Error(_) => "error",
        }
    }
}

/// Which stop condition fired (vLLM's `stop_reason`); `None` with `Stop` means EOS.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    TokenId(u32),
    Text(String),
}

/// Log-probability of a sampled token and of the most likely alternatives.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TokenLogprob {
    pub token_id: u32,
    pub logprob: f32,
    pub top: Vec<(u32, f32)>,
}

/// Token counts of a finished request (they become the usage event).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub prompt_tokens: usize,
    /// Over all `n` choices.
    pub completion_tokens: usize,
    /// Prompt tokens served from the prefix cache at first admission.
    pub cached_tokens: usize,
    /// Times one of its sequences was preempted and recomputed.
    pub num_preemptions: usize,
}

/// New output of one choice of one request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Delta {
    pub request_id: String,
    /// Which of the `n` choices.
    pub index: usize,
    /// Tokens sampled since the last delta (also stop tokens, as vLLM reports them).
    pub token_ids: Vec<u32>,
    /// Tokens generated since the last delta whose ids the backend does not know: an upstream
    /// that owns its tokenizer streams text only, and each streamed piece counts as one token
    /// until the upstream's usage gives the real count.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub opaque_tokens: usize,
    /// Text that became final since the last delta. Text that could still turn into a stop
    /// string is held back until it cannot.
    pub text: String,
    /// One per token in `token_ids` when logprobs were requested.
    pub logprobs: Vec<TokenLogprob>,
    /// Set on the choice's last delta.
    pub finish_reason: Option<FinishReason>,
    pub stop_reason: Option<StopReason>,
    /// Set on the request's last delta (every choice finished); exactly once per request.
    pub usage: Option<Usage>,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl Delta {
    /// Tokens generated since the last delta, with or without their ids.
    pub fn tokens(&self) -> usize {
        self.token_ids.len() + self.opaque_tokens
    }

    /// A delta of choice `index` with nothing in it yet.
    pub fn empty(request_id: &str, index: usize) -> Self {
        Self {
            request_id: request_id.to_string(),
            index,
            token_ids: Vec::new(),
            opaque_tokens: 0,
            text: String::new(),
            logprobs: Vec::new(),
            finish_reason: None,
            stop_reason: None,
            usage: None,
        }
    }
}
