//! `/v1/chat/completions`, and [`start_chat`]: the one way a chat starts, over REST or the
//! WebSocket (`api::chat_ws`).

use std::sync::Arc;

use actix_web::{web, HttpResponse};
use engine::SamplingParams;
use scheduler::{Delta, DeltaStream, FinishReason, Usage};

use super::request::{chat_messages, ChatCompletionRequest};
use super::sampling::{fit_context, sampling_params};
use super::sse::{self, ChunkEncoder, Events};
use super::tools::{read_answer, tool_plan, AnswerFormat, DeltaReader};
use super::wire::{
    logprob_objects, AssistantMessage, ChatChoice, ChatChunkChoice, ChatCompletion,
    ChatCompletionChunk, ChatDelta, ChoiceLogprobs, UsageObject, SYSTEM_FINGERPRINT,
};
use super::{collect, generation_error, stopped_early, unix_now};
use crate::api::body::JsonBody;
use crate::auth::secret::random_base62;
use crate::auth::{Permission, Principal};
use crate::error::{ApiError, ErrorBody};
use crate::generation::{self, Prompt, PromptBudget, Work};
use crate::inference::ServedModel;
use crate::limits::Admission;
use crate::metering::Meter;
use crate::server::AppState;
use crate::store::usage::Endpoint;

/// Create a chat completion. With `stream: true` the answer is `text/event-stream`: one
/// `data: {chat.completion.chunk}` event per piece (the first of each choice carries
/// `delta.role`, the last its `finish_reason`); with `stream_options.include_usage` a last chunk
/// with `choices: []` and `usage`; then `data: [DONE]`. An error after the stream started
/// arrives as `data: {"error": {...}}`. Closing the connection aborts the generation.
#[utoipa::path(post, path = "/v1/chat/completions", tag = "Inference",
    request_body = ChatCompletionRequest,
    responses(
        (status = 200, description = "A chat completion, or (`stream: true`) server-sent `chat.completion.chunk` events, each `data: {ChatCompletionChunk}`, then `data: [DONE]`",
            content((ChatCompletion = "application/json"), (ChatCompletionChunk = "text/event-stream"))),
        (status = 400, description = "Bad JSON, an unsupported field (named in `param`), a bad value, or `context_length_exceeded`", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "`model_not_found`", body = ErrorBody),
        (status = 413, body = ErrorBody),
        (status = 429, description = "A rate limit was reached (`rate_limit_exceeded`, `type` `requests` or `tokens`, with `Retry-After` and the `x-ratelimit-*` headers), this organization has too many queued requests (`Retry-After`), or its credits do not cover the request (`insufficient_quota`)", body = ErrorBody),
        (status = 503, description = "No model loaded (`model_not_loaded`), or the server is overloaded (`Retry-After`)", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create_chat_completion(
    state: web::Data<AppState>,
    principal: Principal,
    body: JsonBody<ChatCompletionRequest>,
) -> Result<HttpResponse, ApiError> {
    principal.require(Permission::Inference)?;
    let req = body.parse()?;
    let chat = start_chat(&state, &principal, req, ChatTransport::Http).await?;
    answer_chat(chat).await
}

/// The HTTP answer of a started chat: SSE chunks when streamed, else the whole completion
/// once it is done (and, when metered, once its usage row is written).
pub(crate) async fn answer_chat(chat: StartedChat) -> Result<HttpResponse, ApiError> {
    if chat.stream {
        let encoder = ChatChunks {
            id: chat.id,
            created: chat.created,
            model: chat.model,
            n: chat.n,
            include_usage: chat.include_usage,
            usage: None,
            reader: DeltaReader::new(chat.format, chat.n),
        };
        return Ok(sse::response(vec![chat.deltas], encoder, chat.admission));
    }
    let collected = collect(chat.deltas, chat.n, chat.admission.as_ref()).await?;
    let model = chat.model.as_ref();
    let choices = collected
        .choices
        .into_iter()
        .enumerate()
        .map(|(index, c)| {
            let (content, calls) = match chat.format {
                AnswerFormat::Text => (Some(c.text), Vec::new()),
                AnswerFormat::ToolCalls { .. } => read_answer(&c.text),
            };
            ChatChoice {
                index,
                finish_reason: chat
                    .format
                    .finish_reason(&c.finish_reason, calls.len())
                    .to_owned(),
                message: AssistantMessage {
                    role: "assistant",
                    content,
                    refusal: None,
                    tool_calls: (!calls.is_empty())
                        .then(|| calls.into_iter().map(Into::into).collect()),
                },
                logprobs: c.logprobs.map(|l| ChoiceLogprobs {
                    content: logprob_objects(model, &l),
                }),
            }
        })
        .collect();
    if let Some(meter) = &chat.meter {
        meter.settled().await;
    }
    let completion = ChatCompletion {
        id: chat.id,
        object: "chat.completion",
        created: chat.created,
        model: model.name().to_owned(),
        system_fingerprint: SYSTEM_FINGERPRINT,
        choices,
        usage: collected.usage.into(),
    };
    let res = HttpResponse::Ok().json(completion);
    Ok(match &chat.admission {
        Some(admission) => admission.respond(res),
        None => res,
    })
}

/// Which transport carries a chat answer: the only thing [`start_chat`] treats differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChatTransport {
    /// `POST /v1/chat/completions`: JSON, or SSE with `stream: true`.
    Http,
    /// `GET /v1/chat/ws`: always streamed, as `chat.delta` frames.
    WebSocket,
}

/// A chat request the backend accepted: what a transport needs to deliver the answer.
pub struct StartedChat {
    /// `chatcmpl-...`: the response's `id` and the backend's request id.
    pub id: String,
    /// Unix seconds.
    pub created: u64,
    pub model: Arc<dyn ServedModel>,
    /// Choices per request.
    pub n: usize,
    /// Whether the answer is streamed (always over WebSocket).
    pub stream: bool,
    /// `stream_options.include_usage`.
    pub include_usage: bool,
    /// Whether the output is read for tool calls.
    pub format: AnswerFormat,
    /// The generation's deltas, metered; dropping them aborts it in the backend (and
    /// records the usage so far as cancelled).
    pub deltas: DeltaStream,
    /// The request's usage meter: non-streamed answers await `settled()` before answering, so
    /// that a client holding its response finds its usage recorded. `None` where nothing is
    /// metered (a worker's OpenAI routes: its gateway meters).
    pub meter: Option<Meter>,
    /// The request's rate-limit admission: every delta goes through `note`, and dropping it
    /// settles the tokens counter and ends the concurrency lease. `None` where nothing is
    /// rate limited.
    pub admission: Option<Admission>,
}

/// A chat request checked against its model, ready to submit. Public for the fuzz targets
/// (`fuzz/`), which decode and check requests as the handlers do, up to the model.
#[doc(hidden)]
pub struct ChatPlan {
    pub model: Arc<dyn ServedModel>,
    pub prompt: Prompt,
    /// With `max_tokens` fitted into the context.
    pub params: SamplingParams,
    pub stream: bool,
    pub include_usage: bool,
    /// The request's own `priority`.
    pub priority: Option<i32>,
    pub format: AnswerFormat,
}

impl ChatPlan {
    /// Checks `req` against `model`, renders the prompt through the chat template (unless the
    /// model owns its tokenizer) and builds the sampling parameters.
    pub fn new(
        model: Arc<dyn ServedModel>,
        req: ChatCompletionRequest,
        transport: ChatTransport,
    ) -> Result<ChatPlan, ApiError> {
        req.reject_unsupported()?;
        let stream =
            match (transport, req.stream) {
                (ChatTransport::Http, stream) => stream.unwrap_or(false),
                (ChatTransport::WebSocket, Some(false)) => return Err(ApiError::field(
                    "stream",
                    "a WebSocket request is always streamed; leave `stream` out or set it to true",
                )),
                (ChatTransport::WebSocket, _) => true,
            };
        let include_usage = req.include_usage(stream)?;
        let messages = chat_messages(&req.messages)?;
        let mut fields = req.chat_sampling_fields()?;
        let tools = tool_plan(
            req.tools.as_deref(),
            req.tool_choice.as_ref(),
            req.parallel_tool_calls,
            fields.structured.as_ref(),
            model.as_ref(),
        )?;
        if let Some(grammar) = tools.grammar {
            fields.structured = Some((grammar, "tools"));
        }
        let mut params = sampling_params(fields, model.as_ref())?;
        let requested = req.requested_max_tokens()?;
        let prompt = Prompt::chat(model.as_ref(), messages, &tools.definitions)?;
        params.max_tokens = Some(fit_context(
            prompt.tokens(),
            requested,
            model.defaults().max_tokens,
            model.max_model_len(),
            "messages",
        )?);
        Ok(ChatPlan {
            model,
            prompt,
            params,
            stream,
            include_usage,
            priority: req.priority,
            format: tools.format,
        })
    }

    /// The chat started without accounts (a worker's OpenAI routes): submitted straight to the
    /// model for `who` (whose priority the request's own replaces when it has one), neither
    /// rate limited nor metered here.
    pub(crate) async fn start_unmetered(
        self,
        mut who: generation::Submitter,
    ) -> Result<StartedChat, ApiError> {
        let id = format!("chatcmpl-{}", random_base62(29));
        let n = self.params.n;
        if let Some(priority) = self.priority {
            who.priority = priority;
        }
        let model = self.model.as_ref();
        let deltas = generation::submit(
            model,
            id.clone(),
            who,
            self.prompt,
            self.params,
            self.stream,
        )
        .await?;
        Ok(StartedChat {
            id,
            created: unix_now(),
            model: self.model,
            n,
            stream: self.stream,
            include_usage: self.include_usage,
            format: self.format,
            deltas,
            meter: None,
            admission: None,
        })
    }
}

/// The one way a chat completion starts, for REST and WebSocket alike: checks the caller's
/// permission and the request against the served model, renders the prompt through the chat
/// template, builds the sampling parameters, and starts it through `generation` (admission,
/// budget reservation, usage row, submission as the caller's organization).
pub async fn start_chat(
    state: &AppState,
    principal: &Principal,
    req: ChatCompletionRequest,
    transport: ChatTransport,
) -> Result<StartedChat, ApiError> {
    principal.require(Permission::Inference)?;
    let model = state.model_for(principal, &req.model)?;
    let plan = ChatPlan::new(model, req, transport)?;
    let n = plan.params.n;
    let id = format!("chatcmpl-{}", random_base62(29));
    let budget = PromptBudget {
        prompt_tokens: plan.prompt.tokens(),
        max_tokens: plan.params.max_tokens.unwrap_or(0),
    };
    let work = Work {
        model: plan.model.clone(),
        endpoint: Endpoint::Completions,
        request_id: &id,
        prompts: &[budget],
        n,
        priority: plan.priority.unwrap_or(0),
    };
    let admitted = generation::admit(state, principal, work).await?;
    let deltas = admitted
        .submit(id.clone(), plan.prompt, plan.params, plan.stream)
        .await?;
    Ok(StartedChat {
        id,
        created: unix_now(),
        model: plan.model,
        n,
        stream: plan.stream,
        include_usage: plan.include_usage,
        format: plan.format,
        deltas,
        meter: Some(admitted.meter),
        admission: Some(admitted.admission),
    })
}

/// A streamed chat completion's chunks.
struct ChatChunks {
    id: String,
    created: u64,
    model: Arc<dyn ServedModel>,
    n: usize,
    include_usage: bool,
    usage: Option<Usage>,
    reader: DeltaReader,
}

impl ChatChunks {
    fn chunk(
        &self,
        choices: Vec<ChatChunkChoice>,
        usage: Option<UsageObject>,
    ) -> ChatCompletionChunk<'_> {
        ChatCompletionChunk {
            id: &self.id,
            object: "chat.completion.chunk",
            created: self.created,
            model: self.model.name(),
            system_fingerprint: SYSTEM_FINGERPRINT,
            choices,
            usage: self.include_usage.then_some(usage),
        }
    }

    fn choice(
        &self,
        out: &mut Events,
        index: usize,
        delta: ChatDelta,
        logprobs: Option<ChoiceLogprobs>,
        finish_reason: Option<&'static str>,
    ) {
        let choice = ChatChunkChoice {
            index,
            delta,
            logprobs,
            finish_reason,
        };
        out.data(&self.chunk(vec![choice], None));
    }
}

impl ChunkEncoder for ChatChunks {
    fn start(&mut self, out: &mut Events) {
        for index in 0..self.n {
            let delta = ChatDelta {
                role: Some("assistant"),
                ..ChatDelta::content(String::new())
            };
            self.choice(out, index, delta, None, None);
        }
    }

    fn delta(&mut self, _prompt: usize, d: Delta, out: &mut Events) {
        let finished = matches!(
            d.finish_reason,
            Some(FinishReason::Stop | FinishReason::Length)
        );
        let mut logprobs = (!d.logprobs.is_empty()).then(|| ChoiceLogprobs {
            content: logprob_objects(self.model.as_ref(), &d.logprobs),
        });
        let deltas = self
            .reader
            .deltas(d.index, d.text, finished, logprobs.is_some());
        for delta in deltas {
            self.choice(out, d.index, delta, logprobs.take(), None);
        }
        if d.usage.is_some() {
            self.usage = d.usage;
        }
        match d.finish_reason {
            Some(reason @ (FinishReason::Stop | FinishReason::Length)) => {
                let reason = self.reader.finish_reason(d.index, &reason);
                self.choice(out, d.index, ChatDelta::default(), None, Some(reason));
            }
            Some(other) => out.error(generation_error(&other)),
            None => {}
        }
    }

    fn end(&mut self, out: &mut Events) {
        match self.usage {
            Some(usage) => {
                if self.include_usage {
                    out.data(&self.chunk(Vec::new(), Some(usage.into())));
                }
                out.done();
            }
            None => out.error(stopped_early()),
        }
    }
}
