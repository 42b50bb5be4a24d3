//! The one way an inference request starts, whatever the route or transport (in the spirit of
//! text-generation-inference's `Infer`): chat over REST or the WebSocket, text completions and
//! embeddings all pass [`admit`], in this order:
//!
//! 1. the rate limiter (requests, tokens and concurrency per minute, for the key, the project
//!    and the plan), which answers 429 with the `x-ratelimit-*` headers;
//! 2. the organization's weight in the scheduler's fair share, from its plan (generations);
//! 3. metering: the budget reservation of the request's maximum cost and its in-flight usage
//!    row (429 `insufficient_quota` when credits or a spend cap do not cover it).
//!
//! Then [`Admitted::submit`] hands each prompt to the backend as the caller's organization and
//! returns its typed deltas, metered: every delta counts toward the usage row, and dropping the
//! stream aborts the generation and bills what was generated before it (disconnect billing).
//! The [`Admission`] rides along with the deltas and settles the tokens counter and the
//! concurrency lease when the response ends or the client goes away.

use std::sync::Arc;

use engine::{ChatMessage, SamplingParams, ToolDefinition};
use protocol::{ForwardedPrompt, ForwardedRequest};
use scheduler::{DeltaStream, NewRequest};

use crate::auth::Principal;
use crate::error::ApiError;
use crate::inference::ServedModel;
use crate::limits::{Admission, Cost};
use crate::metering::{Charge, Meter};
use crate::server::AppState;
use crate::store::usage::Endpoint;

/// A request past admission: its rate-limit admission and its usage meter.
pub struct Admitted {
    pub admission: Admission,
    pub meter: Meter,
    model: Arc<dyn ServedModel>,
    tenant: String,
    weight: f64,
    priority: i32,
}

/// What one prompt of a generation may cost: its length and the most tokens per choice.
#[derive(Debug, Clone, Copy)]
pub struct PromptBudget {
    pub prompt_tokens: usize,
    pub max_tokens: usize,
}

/// What a request asks to be admitted for.
pub struct Work<'a> {
    pub model: Arc<dyn ServedModel>,
    pub endpoint: Endpoint,
    /// The id the response carries (`chatcmpl-...`, `cmpl-...`, `embd-...`).
    pub request_id: &'a str,
    /// Each prompt's length and most tokens per choice (embeddings: `max_tokens` 0).
    pub prompts: &'a [PromptBudget],
    /// Choices per prompt.
    pub n: usize,
    /// Lower runs earlier among the organization's requests.
    pub priority: i32,
}

/// Admits `work` for the caller: rate limits, fair-share weight, budget and usage row.
pub async fn admit(
    state: &AppState,
    principal: &Principal,
    work: Work<'_>,
) -> Result<Admitted, ApiError> {
    let Work {
        model,
        endpoint,
        request_id,
        prompts,
        n,
        priority,
    } = work;
    let cost = prompts
        .iter()
        .map(|p| match endpoint {
            Endpoint::Embeddings => Cost::prompt_only(p.prompt_tokens),
            Endpoint::Completions => Cost::generation(p.prompt_tokens, p.max_tokens, n),
        })
        .fold(Cost::default(), |all, one| all + one);
    let admission = state.limits.admit(&state.store, principal, cost).await?;
    let weight = match (endpoint, admission.plan()) {
        (Endpoint::Completions, Some(plan)) => plan.scheduler_weight(),
        (Endpoint::Completions, None) => {
            let tenant = state.store.tenant(&principal.tenant_id).await?;
            tenant.plan.scheduler_weight()
        }
        (Endpoint::Embeddings, _) => 1.0,
    };
    let charge = Charge {
        request_id: request_id.to_owned(),
        endpoint,
        model: model.name().to_owned(),
        price_model: model.price_key().map(str::to_owned),
        prompt_tokens: prompts.iter().map(|p| p.prompt_tokens as u64).sum(),
        max_completion_tokens: prompts.iter().map(|p| (p.max_tokens * n) as u64).sum(),
    };
    let meter = state.metering.admit(principal, charge).await?;
    Ok(Admitted {
        admission,
        meter,
        model,
        tenant: principal.tenant_id.to_string(),
        weight,
        priority,
    })
}

/// One prompt as a route hands it to the backend: token ids the gateway rendered and
/// tokenized, or (for a model that owns its tokenizer) the request's own messages or text.
#[derive(Debug, Clone)]
pub enum Prompt {
    Tokens(Vec<u32>),
    Forwarded(ForwardedPrompt),
}

impl Prompt {
    /// The prompt as `model` takes it: chat messages rendered and tokenized here, unless the
    /// model owns its tokenizer.
    /// `tools`: the functions the template offers the model (a model that owns its tokenizer
    /// refuses them before this, through `check_structured`).
    pub fn chat(
        model: &dyn ServedModel,
        messages: Vec<ChatMessage>,
        tools: &[ToolDefinition],
    ) -> Result<Self, ApiError> {
        if model.owns_tokenizer() {
            return Ok(Prompt::Forwarded(ForwardedPrompt::Chat(messages)));
        }
        Ok(Prompt::Tokens(model.chat_prompt(&messages, tools, true)?))
    }

    /// The prompt's length in tokens: exact for token ids, else an estimate that the backend's
    /// usage replaces at the end (admission and the budget hold the estimate until then).
    pub fn tokens(&self) -> usize {
        match self {
            Prompt::Tokens(ids) => ids.len(),
            Prompt::Forwarded(p) => p.estimated_tokens(),
        }
    }
}

/// Who a submission runs for: the organization (fairness and prefix-cache isolation), its
/// plan's weight, and the priority among its requests.
#[derive(Debug, Clone)]
pub struct Submitter {
    pub tenant: String,
    pub weight: f64,
    pub priority: i32,
}

/// Queues one prompt on `model` as `request_id` for `who`: token ids as the scheduler's
/// request, a forwarded prompt through `submit_forwarded` (`stream`: whether the client reads
/// the answer as it comes). Dropping the stream aborts it.
pub async fn submit(
    model: &dyn ServedModel,
    request_id: String,
    who: Submitter,
    prompt: Prompt,
    params: SamplingParams,
    stream: bool,
) -> Result<DeltaStream, ApiError> {
    Ok(match prompt {
        Prompt::Tokens(ids) => {
            let mut request = NewRequest::new(request_id, who.tenant, ids, params);
            request.priority = who.priority;
            request.tenant_weight = who.weight;
            model.submit(request).await?
        }
        Prompt::Forwarded(prompt) => {
            let request = ForwardedRequest {
                request_id,
                tenant: who.tenant,
                tenant_weight: who.weight,
                priority: who.priority,
                prompt,
                params,
                stream,
            };
            model.submit_forwarded(request).await?
        }
    })
}

impl Admitted {
    /// Queues one prompt as `request_id` for the caller's organization; its deltas are
    /// metered, and dropping them aborts it.
    pub async fn submit(
        &self,
        request_id: String,
        prompt: Prompt,
        params: SamplingParams,
        stream: bool,
    ) -> Result<DeltaStream, ApiError> {
        let counted = prompt.tokens();
        let who = Submitter {
            tenant: self.tenant.clone(),
            weight: self.weight,
            priority: self.priority,
        };
        if matches!(prompt, Prompt::Forwarded(_)) {
            // An upstream answering a whole request only answers at its end: a client that
            // leaves before then is billed the prompt (`cancelled`), not nothing.
            self.meter.running();
        }
        let model = self.model.as_ref();
        let stream = submit(model, request_id, who, prompt, params, stream).await?;
        Ok(self.meter.attach(stream, counted))
    }
}
