//! Chat over a WebSocket (`GET /v1/chat/ws`, tokio-tungstenite): one socket carries many
//! requests, each streamed as `chat.delta` frames and ended by `chat.done` or `error`.

use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::error::{Error, ErrorKind};
use crate::types::{ChatCompletionRequest, ChunkDelta, ErrorBody, ErrorObject, Usage};

/// A frame the server sends on a chat socket.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type")]
pub enum ServerFrame {
    /// The next piece of choice `index` of request `id`.
    #[serde(rename = "chat.delta")]
    Delta {
        id: String,
        index: u32,
        delta: ChunkDelta,
    },
    /// Request `id`'s last frame.
    #[serde(rename = "chat.done")]
    Done(ChatDone),
    /// Request `id` failed (`id` is None for a frame-level error).
    #[serde(rename = "error")]
    Error {
        id: Option<String>,
        error: ErrorObject,
    },
}

/// The last frame of a request on a chat socket.
#[derive(Debug, Clone, Deserialize)]
pub struct ChatDone {
    pub id: String,
    pub completion_id: String,
    pub model: String,
    /// `stop`, `length` or `cancelled`; an array by choice index when `n` > 1.
    pub finish_reason: serde_json::Value,
    /// None when cancelled.
    pub usage: Option<Usage>,
}

/// An open chat socket; `Client::chat_socket` opens one.
pub struct ChatSocket {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    next_id: u64,
}

fn stream_error(error: ErrorObject) -> Error {
    Error::Stream {
        message: error.message,
        code: error.code,
        request_id: None,
    }
}

/// The typed error of an upgrade the server refused (401, 403, ...).
fn refused(err: tungstenite::Error) -> Error {
    match err {
        tungstenite::Error::Http(response) => {
            let status = response.status().as_u16();
            let request_id = response
                .headers()
                .get("x-request-id")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let body = response.body().as_deref().unwrap_or_default();
            let (message, code, param) = match serde_json::from_slice::<ErrorBody>(body) {
                Ok(b) => (b.error.message, b.error.code, b.error.param),
                Err(_) => (format!("HTTP {status}"), None, None),
            };
            Error::Api {
                kind: ErrorKind::of(status, code.as_deref()),
                status,
                message,
                code,
                param,
                request_id,
            }
        }
        other => Error::Connection(other.to_string()),
    }
}

impl ChatSocket {
    pub(crate) async fn connect(url: &str, api_key: Option<&str>) -> Result<ChatSocket, Error> {
        let mut request = url
            .into_client_request()
            .map_err(|e| Error::Config(format!("bad WebSocket URL {url}: {e}")))?;
        if let Some(key) = api_key {
            let value = HeaderValue::from_str(&format!("Bearer {key}"))
                .map_err(|_| Error::Config("the API key is not a valid header value".into()))?;
            request.headers_mut().insert("authorization", value);
        }
        let (ws, _) = tokio_tungstenite::connect_async(request)
            .await
            .map_err(refused)?;
        Ok(ChatSocket { ws, next_id: 1 })
    }

    /// Starts a chat request (always streamed); returns its id. Several may run at once.
    pub async fn send_chat(&mut self, request: &ChatCompletionRequest) -> Result<String, Error> {
        let id = format!("r{}", self.next_id);
        self.next_id += 1;
        let mut frame = serde_json::to_value(request).map_err(|e| Error::Decode(e.to_string()))?;
        let object = frame
            .as_object_mut()
            .ok_or_else(|| Error::Decode("a chat request is an object".into()))?;
        object.remove("stream");
        object.insert("type".into(), "chat.request".into());
        object.insert("id".into(), id.clone().into());
        self.send(frame).await?;
        Ok(id)
    }

    /// Stops request `id`; it ends with a `chat.done` whose `finish_reason` is `cancelled`.
    pub async fn cancel(&mut self, id: &str) -> Result<(), Error> {
        self.send(serde_json::json!({"type": "cancel", "id": id}))
            .await
    }

    async fn send(&mut self, frame: serde_json::Value) -> Result<(), Error> {
        self.ws
            .send(Message::text(frame.to_string()))
            .await
            .map_err(|e| Error::Connection(e.to_string()))
    }

    /// The next frame of any request; None once the socket has closed.
    pub async fn next_frame(&mut self) -> Option<Result<ServerFrame, Error>> {
        loop {
            let message = match self.ws.next().await? {
                Ok(message) => message,
                Err(e) => return Some(Err(Error::Connection(e.to_string()))),
            };
            if let Message::Text(text) = message {
                return Some(
                    serde_json::from_str(text.as_str()).map_err(|e| Error::Decode(e.to_string())),
                );
            }
        }
    }

    /// Sends one request and reads it to its end: the text of choice 0 and the `chat.done`
    /// frame. Frames of other requests on the socket are skipped.
    pub async fn chat(
        &mut self,
        request: &ChatCompletionRequest,
    ) -> Result<(String, ChatDone), Error> {
        let id = self.send_chat(request).await?;
        let mut text = String::new();
        while let Some(frame) = self.next_frame().await {
            match frame? {
                ServerFrame::Delta {
                    id: of,
                    index: 0,
                    delta,
                } if of == id => text.push_str(delta.content.as_deref().unwrap_or_default()),
                ServerFrame::Done(done) if done.id == id => return Ok((text, done)),
                ServerFrame::Error { id: of, error }
                    if of.is_none() || of.as_deref() == Some(&id) =>
                {
                    return Err(stream_error(error))
                }
                _ => {}
            }
        }
        Err(Error::Connection(
            "the WebSocket closed before the request ended".into(),
        ))
    }

    /// Closes the socket; running requests are aborted on the server.
    pub async fn close(mut self) -> Result<(), Error> {
        self.ws
            .close(None)
            .await
            .map_err(|e| Error::Connection(e.to_string()))
    }
}
