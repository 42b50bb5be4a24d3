//! The chat WebSocket's frames: what a client sends, parsed once here, and what the server
//! sends, built here from the scheduler's deltas.

use std::sync::Arc;

use scheduler::{Delta, FinishReason, Usage};
use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::api::inference::tools::DeltaReader;
use crate::api::inference::{
    generation_error, logprob_objects, stopped_early, ChatDelta, ChoiceLogprobs, StartedChat,
    UsageObject,
};
use crate::error::{ApiError, ErrorObject};
use crate::inference::ServedModel;

/// Longest request id a client may choose.
pub const MAX_ID_LEN: usize = 128;

/// A client frame.
#[derive(Debug, PartialEq)]
pub enum ClientFrame {
    /// `chat.request`: the request's id and its body (the frame without `type` and `id`), as
    /// JSON for the same parser `POST /v1/chat/completions` uses.
    Request { id: String, body: Vec<u8> },
    /// `cancel`: stop the request with this id.
    Cancel { id: String },
}

fn frame_error(param: Option<&str>, message: impl Into<String>) -> ApiError {
    ApiError::bad_request(message, param)
}

/// Parses a text frame. Errors concern the frame itself and are answered with `id: null`.
pub fn parse_client_frame(text: &str) -> Result<ClientFrame, ApiError> {
    let value: Value = serde_json::from_str(text).map_err(|e| {
        let e = e.to_string();
        let e = e.split(" at line ").next().unwrap_or(&e).to_owned();
        frame_error(
            None,
            format!("Invalid frame: {e}; a frame is a JSON object."),
        )
    })?;
    let Value::Object(mut map) = value else {
        return Err(frame_error(
            None,
            "Invalid frame: a frame is a JSON object with a `type`.",
        ));
    };
    let kind = match map.remove("type") {
        Some(Value::String(kind)) => kind,
        Some(_) => {
            return Err(frame_error(
                Some("type"),
                "Invalid 'type': must be a string.",
            ))
        }
        None => {
            return Err(frame_error(
                Some("type"),
                "Invalid 'type': missing (`chat.request` or `cancel`).",
            ))
        }
    };
    if kind != "chat.request" && kind != "cancel" {
        return Err(frame_error(
            Some("type"),
            format!("Invalid 'type': unknown frame type '{kind}' (`chat.request` or `cancel`)."),
        ));
    }
    let id = request_id(&mut map)?;
    if kind == "cancel" {
        if let Some(extra) = map.keys().next() {
            return Err(frame_error(
                Some(extra),
                format!("Invalid '{extra}': a cancel frame has only `type` and `id`."),
            ));
        }
        return Ok(ClientFrame::Cancel { id });
    }
    let body = serde_json::to_vec(&Value::Object(map))
        .map_err(|e| ApiError::Internal(format!("re-encoding a frame: {e}")))?;
    Ok(ClientFrame::Request { id, body })
}

fn request_id(map: &mut Map<String, Value>) -> Result<String, ApiError> {
    match map.remove("id") {
        Some(Value::String(id))
            if !id.is_empty() && id.len() <= MAX_ID_LEN && !id.chars().any(char::is_control) =>
        {
            Ok(id)
        }
        Some(_) => Err(frame_error(
            Some("id"),
            format!(
                "Invalid 'id': a string of 1 to {MAX_ID_LEN} bytes without control characters."
            ),
        )),
        None => Err(frame_error(
            Some("id"),
            "Invalid 'id': missing; every request needs an id, unique among those running on \
             this socket.",
        )),
    }
}

/// Server frame `chat.delta`: new output of one choice of the request `id`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChatDeltaFrame {
    /// Always `chat.delta`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The client's id of the request.
    pub id: String,
    /// Which of the `n` choices.
    pub index: usize,
    /// `role` on the choice's first delta; `content` the new text, or `tool_calls` a piece of
    /// a call (as in a streamed chat completion's chunks).
    pub delta: ChatDelta,
    /// The new tokens' log-probabilities, when `logprobs` was requested.
    pub logprobs: Option<ChoiceLogprobs>,
}

/// Server frame `chat.done`: the request `id` ended (or was cancelled).
#[derive(Debug, Serialize, ToSchema)]
pub struct ChatDoneFrame {
    /// Always `chat.done`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The client's id of the request.
    pub id: String,
    /// The `chatcmpl-...` id its usage is recorded under.
    pub completion_id: String,
    pub model: String,
    /// `stop`, `length`, `tool_calls` or `cancelled`: one string with one choice, else one per
    /// choice.
    pub finish_reason: FinishReasons,
    /// Null for a cancelled request.
    pub usage: Option<UsageObject>,
}

/// One finish reason per choice: a plain string when there is one choice, else an array.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum FinishReasons {
    One(String),
    Many(Vec<String>),
}

impl FinishReasons {
    fn of(mut reasons: Vec<String>) -> Self {
        if reasons.len() == 1 {
            FinishReasons::One(reasons.pop().unwrap_or_default())
        } else {
            FinishReasons::Many(reasons)
        }
    }
}

/// Server frame `error`: `error` is what a REST answer's body holds; `id` is null when the
/// fault is the frame itself.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChatErrorFrame {
    /// Always `error`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub id: Option<String>,
    pub error: ErrorObject,
}

fn frame_text<T: Serialize>(frame: &T) -> String {
    serde_json::to_string(frame).unwrap_or_else(|e| {
        tracing::error!(error = %e, "encoding a WebSocket frame");
        String::from(r#"{"type":"error","id":null,"error":{"message":"The server had an internal error.","type":"server_error","param":null,"code":"internal_error"}}"#)
    })
}

/// `{"type": "error", "id": ..., "error": {...}}`.
pub fn error_frame(id: Option<&str>, err: &ApiError) -> String {
    if let ApiError::Internal(cause) = err {
        tracing::error!(%cause, "internal error on a chat WebSocket");
    }
    frame_text(&ChatErrorFrame {
        kind: "error",
        id: id.map(str::to_owned),
        error: err.body().error,
    })
}

/// Turns one request's deltas into its `chat.delta` frames and, at the end, its `chat.done`.
pub struct ChatFrames {
    id: String,
    completion_id: String,
    model: Arc<dyn ServedModel>,
    /// Whether a choice has had a delta yet (its first carries `role`).
    started: Vec<bool>,
    finish: Vec<Option<&'static str>>,
    usage: Option<Usage>,
    reader: DeltaReader,
}

impl ChatFrames {
    pub fn new(id: String, chat: &StartedChat) -> Self {
        ChatFrames {
            id,
            completion_id: chat.id.clone(),
            model: chat.model.clone(),
            started: vec![false; chat.n],
            finish: vec![None; chat.n],
            usage: None,
            reader: DeltaReader::new(chat.format, chat.n),
        }
    }

    /// The frames of one delta; an error when the generation failed.
    pub fn delta(&mut self, d: Delta) -> Result<Vec<String>, ApiError> {
        let index = d.index.min(self.started.len().saturating_sub(1));
        if d.usage.is_some() {
            self.usage = d.usage;
        }
        let finished = match &d.finish_reason {
            Some(FinishReason::Stop | FinishReason::Length) => true,
            Some(other) => return Err(generation_error(other)),
            None => false,
        };
        let mut logprobs = (!d.logprobs.is_empty()).then(|| ChoiceLogprobs {
            content: logprob_objects(self.model.as_ref(), &d.logprobs),
        });
        let deltas = self
            .reader
            .deltas(index, d.text, finished, logprobs.is_some());
        if let Some(reason) = d.finish_reason.as_ref().filter(|_| finished) {
            self.finish[index] = Some(self.reader.finish_reason(index, reason));
        }
        Ok(deltas
            .into_iter()
            .map(|mut delta| {
                let first = !std::mem::replace(&mut self.started[index], true);
                delta.role = first.then_some("assistant");
                frame_text(&ChatDeltaFrame {
                    kind: "chat.delta",
                    id: self.id.clone(),
                    index,
                    delta,
                    logprobs: logprobs.take(),
                })
            })
            .collect())
    }

    /// `chat.done` after the last delta; an error when the engine stopped before finishing.
    pub fn done(&self) -> Result<String, ApiError> {
        let usage = self.usage.ok_or_else(stopped_early)?;
        let reasons = self
            .finish
            .iter()
            .map(|r| r.unwrap_or("stop").to_owned())
            .collect();
        Ok(self.done_frame(reasons, Some(usage.into())))
    }

    /// `chat.done` of a cancelled request: every choice `cancelled`, no usage.
    pub fn cancelled(&self) -> String {
        let reasons = vec!["cancelled".to_owned(); self.finish.len()];
        self.done_frame(reasons, None)
    }

    fn done_frame(&self, reasons: Vec<String>, usage: Option<UsageObject>) -> String {
        frame_text(&ChatDoneFrame {
            kind: "chat.done",
            id: self.id.clone(),
            completion_id: self.completion_id.clone(),
            model: self.model.name().to_owned(),
            finish_reason: FinishReasons::of(reasons),
            usage,
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn param(err: ApiError) -> Option<String> {
        err.body().error.param
    }

    #[test]
    fn requests_keep_their_body_without_type_and_id() {
        let frame = parse_client_frame(
            r#"{"type": "chat.request", "id": "a1", "model": "m", "messages": []}"#,
        )
        .unwrap();
        let ClientFrame::Request { id, body } = frame else {
            panic!("not a request")
        };
        assert_eq!(id, "a1");
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body, json!({"model": "m", "messages": []}));
        assert_eq!(
            parse_client_frame(r#"{"type": "cancel", "id": "a1"}"#).unwrap(),
            ClientFrame::Cancel { id: "a1".into() }
        );
    }

    #[test]
    fn bad_frames_name_what_is_wrong() {
        assert_eq!(param(parse_client_frame("{nope").unwrap_err()), None);
        assert_eq!(param(parse_client_frame("[1]").unwrap_err()), None);
        assert_eq!(
            param(parse_client_frame(r#"{"id": "x"}"#).unwrap_err()).as_deref(),
            Some("type")
        );
        assert_eq!(
            param(parse_client_frame(r#"{"type": "chat.go", "id": "x"}"#).unwrap_err()).as_deref(),
            Some("type")
        );
        assert_eq!(
            param(parse_client_frame(r#"{"type": "chat.request"}"#).unwrap_err()).as_deref(),
            Some("id")
        );
        assert_eq!(
            param(parse_client_frame(r#"{"type": "cancel", "id": 7}"#).unwrap_err()).as_deref(),
            Some("id")
        );
        let long = "x".repeat(MAX_ID_LEN + 1);
        let frame = format!(r#"{{"type": "cancel", "id": "{long}"}}"#);
        assert_eq!(
            param(parse_client_frame(&frame).unwrap_err()).as_deref(),
            Some("id")
        );
        assert_eq!(
            param(parse_client_frame(r#"{"type": "cancel", "id": "a", "x": 1}"#).unwrap_err())
                .as_deref(),
            Some("x")
        );
    }

    #[test]
    fn error_frames_carry_the_rest_error_object() {
        let err = ApiError::bad_request("Invalid 'n': no.", Some("n"));
        let frame: Value = serde_json::from_str(&error_frame(Some("r"), &err)).unwrap();
        assert_eq!(frame["type"], "error");
        assert_eq!(frame["id"], "r");
        assert_eq!(
            frame["error"],
            serde_json::to_value(err.body()).unwrap()["error"]
        );
        let frame: Value = serde_json::from_str(&error_frame(None, &err)).unwrap();
        assert!(frame["id"].is_null());
    }
}
