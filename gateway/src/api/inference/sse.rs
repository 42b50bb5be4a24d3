//! The one server-sent-events encoder of the data plane. A streamed answer is the deltas of one
//! or several requests (a text completion has one per prompt), turned into typed chunks by a
//! [`ChunkEncoder`] (chat or text) and written here as `data: {json}` events, ending with
//! `data: [DONE]`, or with `data: {"error": {...}}` when the generation failed after the stream
//! began. Every delta passes the rate-limit admission (tokens counted as they come); the
//! admission and the streams are held until the stream ends or the client goes away, and
//! dropping the streams aborts their requests.

use std::collections::VecDeque;
use std::pin::Pin;

use actix_web::web::Bytes;
use actix_web::HttpResponse;
use futures_util::stream::{select_all, unfold, SelectAll};
use futures_util::{Stream, StreamExt};
use scheduler::{Delta, DeltaStream};
use serde::Serialize;

use crate::error::ApiError;
use crate::limits::Admission;

/// The events a stream still has to send, and whether it ends after them.
#[derive(Default)]
pub(crate) struct Events {
    queue: VecDeque<Bytes>,
    done: bool,
}

impl Events {
    /// `data: {value}`.
    pub fn data<T: Serialize>(&mut self, value: &T) {
        match serde_json::to_string(value) {
            Ok(json) => self
                .queue
                .push_back(Bytes::from(format!("data: {json}\n\n"))),
            Err(e) => self.error(ApiError::Internal(format!("encoding a chunk: {e}"))),
        }
    }

    /// The error event (OpenAI's error body); nothing follows it.
    pub fn error(&mut self, err: ApiError) {
        if let ApiError::Internal(cause) = &err {
            tracing::error!(%cause, "generation failed mid-stream");
        }
        let json = serde_json::to_string(&err.body()).unwrap_or_else(|_| "{}".to_owned());
        self.queue
            .push_back(Bytes::from(format!("data: {json}\n\n")));
        self.done = true;
    }

    /// `data: [DONE]`; nothing follows it.
    pub fn done(&mut self) {
        self.queue
            .push_back(Bytes::from_static(b"data: [DONE]\n\n"));
        self.done = true;
    }
}

/// Turns the deltas of a streamed answer into its chunks.
pub(crate) trait ChunkEncoder: 'static {
    /// The events sent before any delta (the chat's role chunks).
    fn start(&mut self, _out: &mut Events) {}
    /// One delta of the request for prompt `prompt` (0 unless the answer has several).
    fn delta(&mut self, prompt: usize, delta: Delta, out: &mut Events);
    /// Every request's deltas ended: the usage chunk and `[DONE]`, or an error when a
    /// request stopped before its last delta.
    fn end(&mut self, out: &mut Events);
}

type IndexedDeltas = SelectAll<Pin<Box<dyn Stream<Item = (usize, Delta)>>>>;

/// The deltas of several requests as one stream, each tagged with its request's position.
fn indexed(streams: Vec<DeltaStream>) -> IndexedDeltas {
    select_all(streams.into_iter().enumerate().map(|(p, s)| {
        let stream = unfold(s, move |mut s| async move {
            s.recv().await.map(|d| ((p, d), s))
        });
        Box::pin(stream) as Pin<Box<dyn Stream<Item = (usize, Delta)>>>
    }))
}

/// A `text/event-stream` response with the rate-limit headers, encoding `streams` with
/// `encoder`. `admission` is `None` where nothing is rate limited (a worker's OpenAI routes).
pub(crate) fn response<E: ChunkEncoder>(
    streams: Vec<DeltaStream>,
    mut encoder: E,
    admission: Option<Admission>,
) -> HttpResponse {
    let headers = admission.as_ref().map(|a| *a.headers());
    let mut events = Events::default();
    encoder.start(&mut events);
    let state = (indexed(streams), encoder, events, admission);
    let body = unfold(
        state,
        |(mut deltas, mut encoder, mut events, admission)| async move {
            loop {
                if let Some(bytes) = events.queue.pop_front() {
                    return Some((
                        Ok::<_, actix_web::Error>(bytes),
                        (deltas, encoder, events, admission),
                    ));
                }
                if events.done {
                    return None;
                }
                match deltas.next().await {
                    Some((prompt, d)) => {
                        if let Some(admission) = &admission {
                            admission.note(&d);
                        }
                        encoder.delta(prompt, d, &mut events);
                    }
                    None => {
                        encoder.end(&mut events);
                        events.done = true;
                    }
                }
            }
        },
    );
    let mut res = HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("cache-control", "no-cache"))
        .streaming(body);
    if let Some(headers) = headers {
        headers.apply(res.headers_mut());
    }
    res
}
