//! Chat over a WebSocket (`GET /v1/chat/ws`) and the tickets that let browsers open one
//! (`POST /v1/ws/tickets`).
//!
//! `frames` parses client frames and builds server frames; `connection` runs a socket after the
//! upgrade. A request on the socket goes through the same [`start_chat`] as
//! `POST /v1/chat/completions`, so validation, errors and scheduling are those of REST.
//!
//! [`start_chat`]: crate::api::inference::start_chat

pub mod connection;
pub mod frames;

use std::time::Duration;

use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::body::QueryArgs;
use crate::auth::secret::{random_base62, sha256_hex};
use crate::auth::{Permission, Principal, RequestContext};
use crate::error::{ApiError, ErrorBody};
use crate::server::AppState;
use crate::store::{ms_to_secs, now_ms};

/// A WebSocket ticket.
#[derive(Debug, Serialize, ToSchema)]
pub struct WsTicket {
    /// Pass as `GET /v1/chat/ws?ticket=...`; works once.
    #[schema(example = "wst_4fTq...")]
    pub ticket: String,
    /// Unix seconds after which the ticket no longer works.
    pub expires_at: i64,
}

/// Create a WebSocket ticket.
///
/// A ticket is a short-lived (`ws_ticket_ttl_secs`, default 60 s), single-use credential for `GET /v1/chat/ws?ticket=...`, for clients such as browsers that cannot set
/// headers on a WebSocket. The ticket acts as the credential that created it (an API key with
/// the `inference` scope, or a console session), which is checked again when the ticket is
/// used. Only a hash of the ticket is stored.
#[utoipa::path(post, path = "/v1/ws/tickets", tag = "Inference",
    responses((status = 200, description = "A ticket for one upgrade of `GET /v1/chat/ws`", body = WsTicket), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create_ws_ticket(
    state: web::Data<AppState>,
    principal: Principal,
) -> Result<HttpResponse, ApiError> {
    principal.require(Permission::Inference)?;
    let holder = principal.ticket_holder().ok_or_else(|| {
        ApiError::Forbidden("This credential cannot create WebSocket tickets.".to_owned())
    })?;
    let ticket = format!("wst_{}", random_base62(43));
    let ttl_ms = i64::try_from(state.config.ws_ticket_ttl_secs)
        .unwrap_or(i64::MAX / 1000)
        .saturating_mul(1000);
    let expires_ms = now_ms().saturating_add(ttl_ms);
    state
        .store
        .create_ws_ticket(
            &sha256_hex(&ticket),
            &principal.tenant_id,
            &holder,
            expires_ms,
        )
        .await?;
    Ok(HttpResponse::Ok().json(WsTicket {
        ticket,
        expires_at: ms_to_secs(expires_ms),
    }))
}

#[derive(Debug, Deserialize)]
pub struct WsQuery {
    /// A ticket from `POST /v1/ws/tickets`.
    pub ticket: Option<String>,
}

/// Chat completions over a WebSocket.
///
/// Authenticate the upgrade with the API key header (`Authorization: Bearer`, `api-key` or
/// `x-api-key`), or, where headers cannot be set (browsers), with `?ticket=` from
/// `POST /v1/ws/tickets` (single use, short-lived). A missing or bad credential gets a plain
/// HTTP 401 (a credential without the `inference` scope 403) before the upgrade.
///
/// Frames are JSON text frames. One socket carries many requests, one after another or several
/// at once with distinct ids (at most `ws_max_concurrent_requests`, default 16, at a time).
///
/// Client frames:
/// - `{"type": "chat.request", "id": "r1", ...}`: a chat completion; besides `type` and `id`
///   (a string of 1 to 128 bytes, unique among the requests running on the socket) the frame
///   holds exactly the body of `POST /v1/chat/completions`. The answer is always streamed:
///   `stream` may be left out or `true`; `stream_options` is accepted, and `chat.done` always
///   carries `usage`.
/// - `{"type": "cancel", "id": "r1"}`: stops that request; its generation is aborted within one
///   engine step and it ends with a `chat.done` whose `finish_reason` is `cancelled`.
///
/// Server frames:
/// - `{"type": "chat.delta", "id": "r1", "index": 0, "delta": {"role": "assistant",
///   "content": "Hel"}, "logprobs": null}`: the next piece of choice `index` (`role` only on a
///   choice's first delta; `logprobs` as in a `chat.completion.chunk` when requested).
/// - `{"type": "chat.done", "id": "r1", "completion_id": "chatcmpl-...", "model": "...",
///   "finish_reason": "stop", "usage": {...}}`: the request's last frame. `finish_reason` is
///   `stop`, `length` or `cancelled`, one string with one choice and an array by choice index
///   when `n` > 1; `usage` as in a chat completion (null when cancelled).
/// - `{"type": "error", "id": "r1", "error": {"message", "type", "param", "code"}}`: the request
///   failed; `error` is exactly what the REST route answers (`invalid_request_error`,
///   `model_not_found`, `context_length_exceeded`, ...), and it is the request's last frame. A
///   frame-level error (not JSON, unknown `type`, missing or duplicate `id`, cancel of an id that
///   is not running, binary frame) has `"id": null`. No error closes the socket.
///
/// The server pings every `ws_ping_interval_secs` (default 30) and answers pings. A socket with
/// no request running and no frame from the client (pongs aside) for `ws_idle_timeout_secs`
/// (default 300) is closed with close code 1000 (`idle timeout`); a frame larger than
/// `max_body_bytes` closes it with 1009. Closing the socket aborts its running generations.
#[utoipa::path(get, path = "/v1/chat/ws", tag = "Inference",
    params(("ticket" = Option<String>, Query, description = "A ticket from `POST /v1/ws/tickets`, instead of the key header")),
    responses(
        (status = 101, description = "Switching Protocols: the socket speaks the frames described above"),
        (status = 400, description = "Not a WebSocket upgrade request", body = ErrorBody),
        (status = 401, description = "No key and no ticket, or a bad key, or a ticket that is unknown, used or expired", body = ErrorBody),
        (status = 403, description = "The credential lacks the `inference` scope", body = ErrorBody)),
    security(("bearer" = []), ()))]
pub async fn chat_websocket(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
    query: QueryArgs<WsQuery>,
) -> Result<HttpResponse, ApiError> {
    let principal = match &query.0.ticket {
        Some(ticket) => Principal::from_ticket(&state, ticket, RequestContext::of(&req)).await?,
        None => Principal::authenticate(&state, &req).await?,
    };
    principal.require(Permission::Inference)?;
    let (response, session, stream) = actix_ws::handle(&req, body).map_err(|e| {
        ApiError::bad_request(
            format!("This route takes WebSocket upgrade requests only: {e}"),
            None,
        )
    })?;
    let config = &state.config;
    let max_frame = config.max_body_bytes;
    let stream = stream
        .max_frame_size(max_frame)
        .aggregate_continuations()
        .max_continuation_size(max_frame);
    let limits = connection::Limits {
        idle_timeout: Duration::from_secs(config.ws_idle_timeout_secs),
        ping_interval: Duration::from_secs(config.ws_ping_interval_secs),
        max_concurrent_requests: config.ws_max_concurrent_requests,
    };
    actix_web::rt::spawn(connection::run(
        state.clone(),
        principal,
        session,
        stream,
        limits,
    ));
    Ok(response)
}
