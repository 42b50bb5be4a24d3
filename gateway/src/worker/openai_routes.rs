//! A worker's OpenAI-compatible routes: `/v1/models`, `/v1/chat/completions`,
//! `/v1/completions` and `/v1/embeddings`, so that any OpenAI client, a gateway's `openai`
//! backend, Kubernetes' Gateway API Inference Extension or llm-d can use a worker as a model
//! server. They are the gateway's own routes (the same request checks, chat template, sampling
//! parameters and response shapes, in JSON or SSE) without accounts: the worker token is the
//! API key, nothing is rate limited or metered here (whoever calls the worker meters), and the
//! caller may name the tenant, weight and priority in the worker headers.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::web::{self, Bytes};
use actix_web::{HttpRequest, HttpResponse};

use super::server::{Running, WorkerState};
use crate::api::body::JsonBody;
use crate::api::embeddings::{embed_all, forwarded_inputs, token_inputs, EmbeddingRequest};
use crate::api::embeddings::{embedding_list, encoding_is_base64};
use crate::api::inference::{
    answer_chat, ChatCompletionRequest, ChatPlan, ChatTransport, CompletionPlan, CompletionRequest,
    ModelList, ModelObject,
};
use crate::error::ApiError;
use crate::generation::Submitter;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/models", web::get().to(models))
        .route("/v1/chat/completions", web::post().to(chat))
        .route("/v1/completions", web::post().to(completions))
        .route("/v1/embeddings", web::post().to(embeddings));
}

/// The caller holds the worker token and the worker takes new requests.
fn admit(state: &WorkerState, req: &HttpRequest) -> Result<Submitter, ApiError> {
    if !state.authorized(req) {
        return Err(ApiError::Unauthenticated(
            "This worker needs its token as the API key (Authorization: Bearer ...).".to_owned(),
        ));
    }
    if state.draining() {
        return Err(protocol::BackendError::ShuttingDown.into());
    }
    let caller = super::server::caller_of(req)?;
    Ok(Submitter {
        tenant: caller.tenant,
        weight: caller.weight,
        priority: caller.priority,
    })
}

async fn models(state: web::Data<WorkerState>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    if !state.authorized(&req) {
        return Err(ApiError::Unauthenticated(
            "This worker needs its token as the API key (Authorization: Bearer ...).".to_owned(),
        ));
    }
    let data = state
        .backend()
        .models()?
        .into_iter()
        .map(|m| ModelObject {
            id: m.id,
            object: "model",
            created: m.created,
            owned_by: "starfire".to_owned(),
        })
        .collect();
    Ok(HttpResponse::Ok().json(ModelList {
        object: "list",
        data,
    }))
}

async fn chat(
    state: web::Data<WorkerState>,
    req: HttpRequest,
    body: JsonBody<ChatCompletionRequest>,
) -> Result<HttpResponse, ApiError> {
    let who = admit(&state, &req)?;
    let body = body.parse()?;
    let model = state.backend().model(&body.model)?;
    let running = Running::start(state.running());
    let chat = ChatPlan::new(model, body, ChatTransport::Http)?
        .start_unmetered(who)
        .await?;
    Ok(held(answer_chat(chat).await?, running))
}

async fn completions(
    state: web::Data<WorkerState>,
    req: HttpRequest,
    body: JsonBody<CompletionRequest>,
) -> Result<HttpResponse, ApiError> {
    let who = admit(&state, &req)?;
    let body = body.parse()?;
    let model = state.backend().model(&body.model)?;
    let running = Running::start(state.running());
    let answer = CompletionPlan::new(model, &body)?
        .run_unmetered(who)
        .await?;
    Ok(held(answer, running))
}

async fn embeddings(
    state: web::Data<WorkerState>,
    req: HttpRequest,
    body: JsonBody<EmbeddingRequest>,
) -> Result<HttpResponse, ApiError> {
    admit(&state, &req)?;
    let body = body.parse()?;
    let base64 = encoding_is_base64(&body)?;
    let model = state.backend().model(&body.model)?;
    let inputs = if model.owns_tokenizer() {
        forwarded_inputs(&body)?
    } else {
        token_inputs(&body, model.as_ref())?
    };
    let _running = Running::start(state.running());
    let (data, total) = embed_all(model.as_ref(), inputs, base64).await?;
    Ok(HttpResponse::Ok().json(embedding_list(model.name(), data, total)))
}

/// `res` with `running` held until its body is sent (or dropped): a draining worker waits for
/// streamed answers too.
fn held(res: HttpResponse, running: Running) -> HttpResponse {
    res.map_body(|_, body| {
        BoxBody::new(Held {
            body,
            _running: running,
        })
    })
}

struct Held {
    body: BoxBody,
    _running: Running,
}

impl MessageBody for Held {
    type Error = Box<dyn std::error::Error>;

    fn size(&self) -> actix_web::body::BodySize {
        self.body.size()
    }

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Bytes, Self::Error>>> {
        std::pin::Pin::new(&mut self.body).poll_next(cx)
    }
}
