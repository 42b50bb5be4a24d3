//! `/v1/completions`: text completions of one or several prompts (token ids or text), each
//! prompt its own backend request, their choices numbered `prompt_index * n + i`.

use std::collections::HashMap;
use std::sync::Arc;

use actix_web::{web, HttpResponse};
use engine::SamplingParams;
use scheduler::{Delta, DeltaStream, FinishReason, Usage};

use super::request::CompletionRequest;
use super::sampling::{fit_context, sampling_params};
use super::sse::{self, ChunkEncoder, Events};
use super::wire::{
    Completion, CompletionChoice, CompletionChunk, CompletionChunkChoice, CompletionLogprobs,
    UsageObject, SYSTEM_FINGERPRINT,
};
use super::{collect, generation_error, stopped_early, unix_now};
use crate::api::body::JsonBody;
use crate::auth::secret::random_base62;
use crate::auth::{Permission, Principal};
use crate::error::{ApiError, ErrorBody};
use crate::generation::{self, Admitted, Prompt, PromptBudget, Work};
use crate::inference::ServedModel;
use crate::limits::Admission;
use crate::metering::Meter;
use crate::server::AppState;
use crate::store::usage::Endpoint;

/// Create a text completion for one or several prompts. With `stream: true` the answer is
/// `text/event-stream`: `data: {text_completion chunk}` events (the last of each choice with its
/// `finish_reason`), with `stream_options.include_usage` a last chunk with `choices: []` and
/// `usage`, then `data: [DONE]`. Closing the connection aborts the generation.
#[utoipa::path(post, path = "/v1/completions", tag = "Inference",
    request_body = CompletionRequest,
    responses(
        (status = 200, description = "A text completion, or (`stream: true`) server-sent `text_completion` chunks, each `data: {CompletionChunk}`, then `data: [DONE]`",
            content((Completion = "application/json"), (CompletionChunk = "text/event-stream"))),
        (status = 400, description = "Bad JSON, an unsupported field (named in `param`), a bad value, or `context_length_exceeded`", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "`model_not_found`", body = ErrorBody),
        (status = 413, body = ErrorBody),
        (status = 429, description = "A rate limit was reached (`rate_limit_exceeded`, `type` `requests` or `tokens`, with `Retry-After` and the `x-ratelimit-*` headers), this organization has too many queued requests (`Retry-After`), or its credits do not cover the request (`insufficient_quota`)", body = ErrorBody),
        (status = 503, description = "No model loaded (`model_not_loaded`), or the server is overloaded (`Retry-After`)", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create_completion(
    state: web::Data<AppState>,
    principal: Principal,
    body: JsonBody<CompletionRequest>,
) -> Result<HttpResponse, ApiError> {
    principal.require(Permission::Inference)?;
    let req = body.parse()?;
    let model = state.model_for(&principal, &req.model)?;
    let plan = CompletionPlan::new(model, &req)?;
    let id = format!("cmpl-{}", random_base62(29));
    let work = Work {
        model: plan.model.clone(),
        endpoint: Endpoint::Completions,
        request_id: &id,
        prompts: &plan.budgets,
        n: plan.params.n,
        priority: req.priority.unwrap_or(0),
    };
    let admitted = generation::admit(&state, &principal, work).await?;
    let mut streams = Vec::with_capacity(plan.prompts.len());
    let mut params = plan.params.clone();
    for (i, (prompt, budget)) in plan.prompts.iter().zip(&plan.budgets).enumerate() {
        params.max_tokens = Some(budget.max_tokens);
        // An error here drops the streams already submitted, which aborts them.
        streams.push(
            admitted
                .submit(
                    format!("{id}-{i}"),
                    prompt.clone(),
                    params.clone(),
                    plan.stream,
                )
                .await?,
        );
    }
    let Admitted {
        admission, meter, ..
    } = admitted;
    plan.answer(id, streams, Some(admission), Some(meter)).await
}

/// A text completion request checked against its model, ready to submit: one prompt each.
/// Public for the fuzz targets (`fuzz/`).
#[doc(hidden)]
pub struct CompletionPlan {
    model: Arc<dyn ServedModel>,
    prompts: Vec<Prompt>,
    /// Each prompt's length and its `max_tokens` fitted into the context.
    budgets: Vec<PromptBudget>,
    params: SamplingParams,
    stream: bool,
    include_usage: bool,
}

impl CompletionPlan {
    pub fn new(
        model: Arc<dyn ServedModel>,
        req: &CompletionRequest,
    ) -> Result<CompletionPlan, ApiError> {
        req.reject_unsupported()?;
        let stream = req.stream.unwrap_or(false);
        let include_usage = req.include_usage(stream)?;
        let params = sampling_params(req.text_sampling_fields()?, model.as_ref())?;
        if req.max_tokens == Some(0) {
            return Err(ApiError::field("max_tokens", "must be at least 1"));
        }
        // OpenAI's default for completions is 16; a model's configured default replaces it.
        let default_max = model.defaults().max_tokens.unwrap_or(16);
        let max_tokens = req.max_tokens.map_or(default_max, |m| m as usize);
        if let Some(min) = req.min_tokens.filter(|&m| m as usize > max_tokens) {
            return Err(ApiError::field(
                "min_tokens",
                format_args!("{min} is more than max_tokens ({max_tokens})"),
            ));
        }
        let prompts = req.prompts(model.as_ref())?;
        let budgets = prompts
            .iter()
            .map(|p| {
                Ok(PromptBudget {
                    prompt_tokens: p.tokens(),
                    max_tokens: fit_context(
                        p.tokens(),
                        req.max_tokens.map(|m| m as usize),
                        Some(default_max),
                        model.max_model_len(),
                        "prompt",
                    )?,
                })
            })
            .collect::<Result<Vec<_>, ApiError>>()?;
        Ok(CompletionPlan {
            model,
            prompts,
            budgets,
            params,
            stream,
            include_usage,
        })
    }

    /// The completion started without accounts (a worker's OpenAI routes): each prompt
    /// submitted straight to the model for `who`, neither rate limited nor metered here.
    pub(crate) async fn run_unmetered(
        self,
        who: generation::Submitter,
    ) -> Result<HttpResponse, ApiError> {
        let id = format!("cmpl-{}", random_base62(29));
        let mut streams = Vec::with_capacity(self.prompts.len());
        let mut params = self.params.clone();
        for (i, (prompt, budget)) in self.prompts.iter().zip(&self.budgets).enumerate() {
            params.max_tokens = Some(budget.max_tokens);
            let request_id = format!("{id}-{i}");
            let model = self.model.as_ref();
            let (who, prompt) = (who.clone(), prompt.clone());
            streams.push(
                generation::submit(model, request_id, who, prompt, params.clone(), self.stream)
                    .await?,
            );
        }
        self.answer(id, streams, None, None).await
    }

    /// The answer over the prompts' `streams`: SSE chunks when streamed, else the whole
    /// completion once every prompt is done (and, when metered, its usage row written).
    async fn answer(
        self,
        id: String,
        streams: Vec<DeltaStream>,
        admission: Option<Admission>,
        meter: Option<Meter>,
    ) -> Result<HttpResponse, ApiError> {
        let created = unix_now();
        let (model, n) = (self.model, self.params.n);
        if self.stream {
            let encoder = TextChunks {
                id,
                created,
                prompts: streams.len(),
                model,
                n,
                include_usage: self.include_usage,
                usage: Usage::default(),
                finished_prompts: 0,
                offsets: HashMap::new(),
            };
            return Ok(sse::response(streams, encoder, admission));
        }
        let mut choices = Vec::new();
        let mut total = Usage::default();
        for (p, stream) in streams.into_iter().enumerate() {
            let one = collect(stream, n, admission.as_ref()).await?;
            add_usage(&mut total, one.usage);
            for (i, c) in one.choices.into_iter().enumerate() {
                let logprobs = c.logprobs.map(|l| {
                    let mut out = CompletionLogprobs::default();
                    out.extend(model.as_ref(), &l, &mut 0);
                    out
                });
                choices.push(CompletionChoice {
                    index: p * n + i,
                    text: c.text,
                    logprobs,
                    finish_reason: c.finish_reason.as_str().to_owned(),
                });
            }
        }
        if let Some(meter) = &meter {
            meter.settled().await;
        }
        let completion = Completion {
            id,
            object: "text_completion",
            created,
            model: model.name().to_owned(),
            system_fingerprint: SYSTEM_FINGERPRINT,
            choices,
            usage: total.into(),
        };
        let res = HttpResponse::Ok().json(completion);
        Ok(match &admission {
            Some(admission) => admission.respond(res),
            None => res,
        })
    }
}

fn add_usage(total: &mut Usage, one: Usage) {
    total.prompt_tokens += one.prompt_tokens;
    total.completion_tokens += one.completion_tokens;
    total.cached_tokens += one.cached_tokens;
}

/// A streamed text completion's chunks, over one request per prompt.
struct TextChunks {
    id: String,
    created: u64,
    model: Arc<dyn ServedModel>,
    n: usize,
    prompts: usize,
    include_usage: bool,
    usage: Usage,
    finished_prompts: usize,
    /// Byte offset reached in each choice's text, for `text_offset`.
    offsets: HashMap<usize, usize>,
}

impl TextChunks {
    fn chunk(
        &self,
        choices: Vec<CompletionChunkChoice>,
        usage: Option<UsageObject>,
    ) -> CompletionChunk<'_> {
        CompletionChunk {
            id: &self.id,
            object: "text_completion",
            created: self.created,
            model: self.model.name(),
            system_fingerprint: SYSTEM_FINGERPRINT,
            choices,
            usage: self.include_usage.then_some(usage),
        }
    }
}

impl ChunkEncoder for TextChunks {
    fn delta(&mut self, prompt: usize, d: Delta, out: &mut Events) {
        let index = prompt * self.n + d.index;
        if let Some(u) = d.usage {
            add_usage(&mut self.usage, u);
            self.finished_prompts += 1;
        }
        let finish_reason = match &d.finish_reason {
            None => None,
            Some(reason @ (FinishReason::Stop | FinishReason::Length)) => Some(reason.as_str()),
            Some(other) => return out.error(generation_error(other)),
        };
        if d.text.is_empty() && d.logprobs.is_empty() && finish_reason.is_none() {
            return;
        }
        let logprobs = (!d.logprobs.is_empty()).then(|| {
            let offset = self.offsets.entry(index).or_insert(0);
            let mut l = CompletionLogprobs::default();
            l.extend(self.model.as_ref(), &d.logprobs, offset);
            l
        });
        let choice = CompletionChunkChoice {
            index,
            text: d.text,
            logprobs,
            finish_reason,
        };
        out.data(&self.chunk(vec![choice], None));
    }

    fn end(&mut self, out: &mut Events) {
        if self.finished_prompts < self.prompts {
            return out.error(stopped_early());
        }
        if self.include_usage {
            out.data(&self.chunk(Vec::new(), Some(self.usage.into())));
        }
        out.done();
    }
}
