//! Request extractors whose errors name the field at fault: a JSON body (size-limited through
//! actix's `PayloadConfig`) and a query string, both deserialized through `serde_path_to_error`.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::error::PayloadError;
use actix_web::{web, FromRequest, HttpRequest};
use serde::de::DeserializeOwned;
use sha2::Digest as _;

use crate::error::{from_payload_error, ApiError};

/// A JSON request body of type `T`. Reading it (size limit, content type) happens before the
/// handler runs; deserializing is deferred to [`JsonBody::parse`], so handlers check the
/// caller's permission first and an unauthorized caller learns nothing from validation errors.
pub struct JsonBody<T> {
    parsed: Result<T, ApiError>,
    digest: [u8; 32],
}

impl<T> JsonBody<T> {
    pub fn parse(self) -> Result<T, ApiError> {
        self.parsed
    }

    /// The SHA-256 of the raw body (what an idempotency key is bound to).
    pub fn digest(&self) -> &[u8] {
        &self.digest
    }
}

/// A query string of type `T`.
pub struct QueryArgs<T>(pub T);

/// Turns a serde error at `path` into a 400 that names the field.
fn shape_error(path: String, inner: String) -> ApiError {
    // A missing field is reported at its parent; take its name from the message.
    let quoted = inner
        .split('`')
        .nth(1)
        .filter(|_| inner.starts_with("missing field"));
    // serde_path_to_error says "." for the root and "?" where it lost track (syntax errors).
    let path = if path == "?" { String::new() } else { path };
    let param = match (path.as_str(), quoted) {
        (".", Some(field)) | ("", Some(field)) => field.to_owned(),
        (parent, Some(field)) => format!("{parent}.{field}"),
        (".", None) | ("", None) => String::new(),
        (at, None) => at.to_owned(),
    };
    let inner = inner.split(" at line ").next().unwrap_or(&inner).to_owned();
    if param.is_empty() {
        ApiError::bad_request(format!("Invalid request: {inner}."), None)
    } else {
        ApiError::field(&param, inner)
    }
}

pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(
            "The request body is empty; a JSON object is required.",
            None,
        ));
    }
    // A body is an object: serde would also read a struct positionally from an array.
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(ApiError::bad_request(
            "The request body must be a JSON object.",
            None,
        ));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    match serde_path_to_error::deserialize(&mut de) {
        Ok(value) => {
            de.end()
                .map_err(|e| shape_error(String::new(), e.to_string()))?;
            Ok(value)
        }
        // JSON (and the OpenAPI document's JSON Schema) has numbers, not integers and floats:
        // `5.0` is an integer there, but serde refuses it for an integer field. Only when the
        // body does not fit is it read again as a tree with its integral floats made
        // integers, so the common case stays one pass; if that changes nothing, the first
        // error stands.
        Err(first) => {
            let retry = serde_json::from_slice::<serde_json::Value>(bytes)
                .ok()
                .and_then(|mut tree| integral_floats_to_integers(&mut tree).then_some(tree));
            match retry {
                Some(tree) => serde_path_to_error::deserialize(tree)
                    .map_err(|e| shape_error(e.path().to_string(), e.inner().to_string())),
                None => Err(shape_error(
                    first.path().to_string(),
                    first.inner().to_string(),
                )),
            }
        }
    }
}

/// Rewrites every float with no fractional part that fits an `i64` or `u64` as that integer;
/// whether it changed any.
fn integral_floats_to_integers(value: &mut serde_json::Value) -> bool {
    use serde_json::Value;
    // Depth is bounded by serde_json's recursion limit on the parse that built the tree.
    match value {
        Value::Number(n) if n.is_f64() => {
            let f = n.as_f64().unwrap_or(f64::NAN);
            if f.fract() != 0.0 {
                return false;
            }
            if (-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&f) {
                *value = Value::from(f as i64);
            } else if (0.0..1.844_674_407_370_955_2e19).contains(&f) {
                *value = Value::from(f as u64);
            } else {
                return false;
            }
            true
        }
        Value::Array(items) => items
            .iter_mut()
            .fold(false, |changed, v| integral_floats_to_integers(v) | changed),
        Value::Object(fields) => fields
            .values_mut()
            .fold(false, |changed, v| integral_floats_to_integers(v) | changed),
        _ => false,
    }
}

pub fn parse_query<T: DeserializeOwned>(query: &str) -> Result<T, ApiError> {
    let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
    serde_path_to_error::deserialize(de)
        .map_err(|e| shape_error(e.path().to_string(), e.inner().to_string()))
}

impl<T: DeserializeOwned + 'static> FromRequest for JsonBody<T> {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let content_type = req
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("application/json")
            .to_ascii_lowercase();
        let BodyLimit { bytes: limit, .. } =
            req.app_data::<BodyLimit>().copied().unwrap_or_default();
        let bytes = web::Bytes::from_request(req, payload);
        Box::pin(async move {
            if !content_type.starts_with("application/json") {
                return Err(ApiError::bad_request(
                    "Content-Type must be application/json.",
                    None,
                ));
            }
            let bytes = bytes
                .await
                .map_err(|e| match e.as_error::<PayloadError>() {
                    Some(p) => from_payload_error(p, limit),
                    None => {
                        ApiError::bad_request(format!("could not read the request body: {e}"), None)
                    }
                })?;
            Ok(JsonBody {
                parsed: parse_json(&bytes),
                digest: sha2::Sha256::digest(&bytes).into(),
            })
        })
    }
}

impl<T: DeserializeOwned + 'static> FromRequest for QueryArgs<T> {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(parse_query(req.query_string()).map(QueryArgs))
    }
}

/// The configured body limit, kept beside actix's `PayloadConfig` so 413 can state it, and how
/// long a body may take to arrive ([`limit_body_time`]).
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit {
    pub bytes: usize,
    pub timeout: std::time::Duration,
}

impl Default for BodyLimit {
    fn default() -> Self {
        BodyLimit {
            bytes: 262_144,
            timeout: std::time::Duration::from_secs(30),
        }
    }
}

/// Gives the request's body `timeout` to arrive in full: after it, reading the body fails with
/// a timed-out I/O error, which the body extractors answer 408 (`request_timeout`) and after
/// which the connection closes, so a client sending one byte a second holds nothing for long.
/// Requests without a body (and WebSocket upgrades, whose "body" is the socket) are untouched.
pub fn limit_body_time(req: &mut actix_web::dev::ServiceRequest, timeout: std::time::Duration) {
    let headers = req.headers();
    let has_body = headers.contains_key(actix_web::http::header::TRANSFER_ENCODING)
        || headers
            .get(actix_web::http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim() != "0");
    if !has_body || headers.contains_key(actix_web::http::header::UPGRADE) {
        return;
    }
    let payload = actix_web::HttpMessage::take_payload(req);
    let timed = TimedPayload {
        inner: payload,
        deadline: Box::pin(tokio::time::sleep(timeout)),
        expired: false,
    };
    req.set_payload(Payload::Stream {
        payload: Box::pin(timed),
    });
}

/// A body stream that fails once its deadline passes.
struct TimedPayload {
    inner: Payload,
    deadline: Pin<Box<tokio::time::Sleep>>,
    expired: bool,
}

impl futures_util::Stream for TimedPayload {
    type Item = Result<web::Bytes, PayloadError>;

    fn poll_next(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        use std::task::Poll;
        if self.expired {
            return Poll::Ready(None);
        }
        if let Poll::Ready(item) = Pin::new(&mut self.inner).poll_next(cx) {
            return Poll::Ready(item);
        }
        if self.deadline.as_mut().poll(cx).is_ready() {
            self.expired = true;
            return Poll::Ready(Some(Err(PayloadError::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the request body did not arrive in time",
            )))));
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Req {
        name: String,
        limits: Option<Limits>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Limits {
        rpm: Option<i64>,
    }

    fn param_of(err: ApiError) -> Option<String> {
        match err {
            ApiError::BadRequest { param, .. } => param,
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn json_errors_name_the_field() {
        assert_eq!(
            param_of(parse_json::<Req>(b"{}").unwrap_err()).as_deref(),
            Some("name")
        );
        assert_eq!(
            param_of(parse_json::<Req>(br#"{"name": 5}"#).unwrap_err()).as_deref(),
            Some("name")
        );
        assert_eq!(
            param_of(parse_json::<Req>(br#"{"name": "a", "limits": {"rpm": "x"}}"#).unwrap_err())
                .as_deref(),
            Some("limits.rpm")
        );
        assert_eq!(
            param_of(parse_json::<Req>(br#"{"name": "a", "nme": 1}"#).unwrap_err()).as_deref(),
            Some("nme")
        );
        assert_eq!(param_of(parse_json::<Req>(b"{not json").unwrap_err()), None);
        assert!(parse_json::<Req>(br#"{"name": "a"}"#).is_ok());
    }

    #[test]
    fn integral_floats_are_integers() {
        let req = parse_json::<Req>(br#"{"name": "a", "limits": {"rpm": 224718478.0}}"#).unwrap();
        assert_eq!(req.limits.unwrap().rpm, Some(224_718_478));
        assert_eq!(
            param_of(parse_json::<Req>(br#"{"name": "a", "limits": {"rpm": 1.5}}"#).unwrap_err())
                .as_deref(),
            Some("limits.rpm")
        );
        assert_eq!(
            param_of(parse_json::<Req>(br#"{"name": "a", "limits": {"rpm": 1e300}}"#).unwrap_err())
                .as_deref(),
            Some("limits.rpm")
        );
        // Still one object: trailing data after a float is refused on the second reading too.
        assert!(parse_json::<Req>(br#"{"name": "a", "limits": {"rpm": 2.0}} x"#).is_err());
        // Untagged enums too (a prompt of token ids).
        #[derive(Debug, Deserialize)]
        #[serde(untagged)]
        #[allow(dead_code)]
        enum Prompt {
            Tokens(Vec<u32>),
            Text(String),
        }
        #[derive(Debug, Deserialize)]
        struct P {
            prompt: Prompt,
        }
        let p = parse_json::<P>(br#"{"prompt": [1, 2.0, 3]}"#).unwrap();
        assert!(matches!(p.prompt, Prompt::Tokens(ids) if ids == [1, 2, 3]));
    }

    #[test]
    fn query_errors_name_the_field() {
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct Q {
            limit: Option<u32>,
        }
        assert_eq!(
            param_of(parse_query::<Q>("limit=abc").unwrap_err()).as_deref(),
            Some("limit")
        );
        assert_eq!(parse_query::<Q>("limit=5").unwrap().limit, Some(5));
    }
}
