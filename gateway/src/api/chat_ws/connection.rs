//! One chat WebSocket after the upgrade: a loop that reads client frames, pings, and watches
//! for idleness, and one task per running request that streams its frames.
//!
//! Everything of a socket runs on the worker thread that accepted it (`spawn_local`), so a
//! request's task never runs while the loop looks at it. Cancelling a request, or the socket
//! ending, drops the request's `DeltaStream`, which aborts the generation in the scheduler.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use actix_web::web;
use actix_ws::{AggregatedMessage, AggregatedMessageStream, CloseCode, CloseReason, Session};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::frames::{error_frame, parse_client_frame, ChatFrames, ClientFrame};
use crate::api::body::parse_json;
use crate::api::inference::{start_chat, ChatCompletionRequest, ChatTransport};
use crate::auth::Principal;
use crate::error::ApiError;
use crate::server::AppState;

/// The limits of one socket, from the configuration.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub idle_timeout: Duration,
    pub ping_interval: Duration,
    pub max_concurrent_requests: usize,
}

/// A request running on the socket.
struct Running {
    /// Taken by the first `cancel`.
    cancel: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

/// The socket's running requests by client id. Dropping it aborts them all.
#[derive(Default)]
struct Requests(HashMap<String, Running>);

impl Requests {
    fn forget_finished(&mut self) {
        self.0.retain(|_, r| !r.task.is_finished());
    }

    fn running(&mut self) -> usize {
        self.forget_finished();
        self.0.len()
    }
}

impl Drop for Requests {
    fn drop(&mut self) {
        for r in self.0.values() {
            r.task.abort();
        }
    }
}

/// Serves the socket until the client closes it, it stays idle too long, or a protocol error.
pub async fn run(
    state: web::Data<AppState>,
    principal: Principal,
    mut session: Session,
    mut stream: AggregatedMessageStream,
    limits: Limits,
) {
    let mut requests = Requests::default();
    // Frames that show the client is using the socket (not pongs, which browsers send alone).
    let mut last_used = Instant::now();
    // Anything at all, pongs included: silence this long means the peer is gone.
    let mut last_heard = Instant::now();
    let mut ping = tokio::time::interval_at(
        tokio::time::Instant::now() + limits.ping_interval,
        limits.ping_interval,
    );
    let idle_close = || CloseReason {
        code: CloseCode::Normal,
        description: Some("idle timeout".to_owned()),
    };
    let close = loop {
        let idle_at = tokio::time::Instant::from_std(last_used + limits.idle_timeout);
        tokio::select! {
            message = stream.recv() => {
                last_heard = Instant::now();
                let message = match message {
                    None => break None,
                    Some(Ok(m)) => m,
                    Some(Err(e)) => break Some(protocol_close(&e)),
                };
                match message {
                    AggregatedMessage::Text(text) => {
                        last_used = Instant::now();
                        let reply = on_text(&state, &principal, &session, &mut requests, &limits, &text);
                        if let Some(frame) = reply {
                            if session.text(frame).await.is_err() {
                                break None;
                            }
                        }
                    }
                    AggregatedMessage::Binary(_) => {
                        last_used = Instant::now();
                        let err = ApiError::bad_request(
                            "Binary frames are not supported; send JSON text frames.",
                            None,
                        );
                        if session.text(error_frame(None, &err)).await.is_err() {
                            break None;
                        }
                    }
                    AggregatedMessage::Ping(bytes) => {
                        last_used = Instant::now();
                        if session.pong(&bytes).await.is_err() {
                            break None;
                        }
                    }
                    AggregatedMessage::Pong(_) => {}
                    AggregatedMessage::Close(reason) => break reason.or(Some(CloseCode::Normal.into())),
                }
            }
            _ = ping.tick() => {
                if last_heard.elapsed() >= limits.idle_timeout {
                    break Some(idle_close());
                }
                if session.ping(b"").await.is_err() {
                    break None;
                }
            }
            _ = tokio::time::sleep_until(idle_at) => {
                if requests.running() > 0 {
                    // Not idle while something runs; look again a full timeout later.
                    last_used = Instant::now();
                } else {
                    break Some(idle_close());
                }
            }
        }
    };
    drop(requests);
    let _ = session.close(close).await;
}

/// The close frame for a frame the server could not take.
fn protocol_close(err: &actix_ws::ProtocolError) -> CloseReason {
    use actix_ws::ProtocolError;
    let too_big = match err {
        ProtocolError::Overflow => true,
        // What the continuation aggregator reports past its size limit.
        ProtocolError::Io(e) => e.to_string().contains("maximum continuation size"),
        _ => false,
    };
    if too_big {
        CloseReason {
            code: CloseCode::Size,
            description: Some("frame larger than the limit".to_owned()),
        }
    } else {
        CloseReason {
            code: CloseCode::Protocol,
            description: Some(format!("protocol error: {err}")),
        }
    }
}

/// Acts on a text frame; returns the frame to answer right away, if any.
fn on_text(
    state: &web::Data<AppState>,
    principal: &Principal,
    session: &Session,
    requests: &mut Requests,
    limits: &Limits,
    text: &str,
) -> Option<String> {
    let frame = match parse_client_frame(text) {
        Ok(frame) => frame,
        Err(err) => return Some(error_frame(None, &err)),
    };
    match frame {
        ClientFrame::Request { id, body } => {
            requests.forget_finished();
            if requests.0.contains_key(&id) {
                let err = ApiError::bad_request(
                    format!(
                        "Invalid 'id': a request with id '{id}' is still running on this socket."
                    ),
                    Some("id"),
                );
                return Some(error_frame(None, &err));
            }
            if requests.running() >= limits.max_concurrent_requests {
                let err = ApiError::RateLimited {
                    message: format!(
                        "This socket already runs {} requests, the most allowed at once; wait \
                         for one to finish or open another socket.",
                        limits.max_concurrent_requests
                    ),
                    retry_after: None,
                };
                return Some(error_frame(Some(&id), &err));
            }
            let (cancel, cancelled) = oneshot::channel();
            let task = actix_web::rt::spawn(run_request(
                state.clone(),
                principal.clone(),
                session.clone(),
                id.clone(),
                body,
                cancelled,
            ));
            requests.0.insert(
                id,
                Running {
                    cancel: Some(cancel),
                    task,
                },
            );
            None
        }
        ClientFrame::Cancel { id } => {
            requests.forget_finished();
            match requests.0.get_mut(&id) {
                // A second cancel of a request that is winding down changes nothing.
                Some(running) => {
                    if let Some(cancel) = running.cancel.take() {
                        let _ = cancel.send(());
                    }
                    None
                }
                None => {
                    let err = ApiError::bad_request(
                        format!(
                            "Invalid 'id': no request with id '{id}' is running on this socket \
                             (it may have finished already)."
                        ),
                        Some("id"),
                    );
                    Some(error_frame(None, &err))
                }
            }
        }
    }
}

/// One request: parsed and started exactly as `POST /v1/chat/completions` does, then its
/// deltas as frames until `chat.done`, an error frame, or a cancel.
async fn run_request(
    state: web::Data<AppState>,
    principal: Principal,
    mut session: Session,
    id: String,
    body: Vec<u8>,
    mut cancelled: oneshot::Receiver<()>,
) {
    let started = match parse_json::<ChatCompletionRequest>(&body) {
        Ok(req) => start_chat(&state, &principal, req, ChatTransport::WebSocket).await,
        Err(err) => Err(err),
    };
    let mut chat = match started {
        Ok(chat) => chat,
        Err(err) => {
            let _ = session.text(error_frame(Some(&id), &err)).await;
            return;
        }
    };
    let mut frames = ChatFrames::new(id.clone(), &chat);
    let last = loop {
        let delta = tokio::select! {
            biased;
            // A cancel, or the socket's loop gone (the sender dropped).
            signal = &mut cancelled => {
                // Dropping the deltas aborts the generation before anything else is sent.
                drop(chat);
                if signal.is_ok() {
                    let _ = session.text(frames.cancelled()).await;
                }
                return;
            }
            delta = chat.deltas.recv() => delta,
        };
        let Some(delta) = delta else {
            break frames.done();
        };
        if let Some(admission) = &chat.admission {
            admission.note(&delta);
        }
        match frames.delta(delta) {
            Ok(out) => {
                for frame in out {
                    if session.text(frame).await.is_err() {
                        return;
                    }
                }
            }
            Err(err) => break Err(err),
        }
    };
    let frame = match last {
        Ok(done) => done,
        Err(err) => error_frame(Some(&id), &err),
    };
    let _ = session.text(frame).await;
}
