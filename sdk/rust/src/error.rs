//! Typed errors, each API error carrying the server's request id.

/// What kind of failure an API error is (by status, and `insufficient_quota` for 429).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    BadRequest,
    Authentication,
    PermissionDenied,
    NotFound,
    Conflict,
    UnprocessableEntity,
    RateLimit,
    InsufficientQuota,
    InternalServer,
    Other,
}

impl ErrorKind {
    pub fn of(status: u16, code: Option<&str>) -> ErrorKind {
        match status {
            400 => ErrorKind::BadRequest,
            401 => ErrorKind::Authentication,
            403 => ErrorKind::PermissionDenied,
            404 => ErrorKind::NotFound,
            409 => ErrorKind::Conflict,
            422 => ErrorKind::UnprocessableEntity,
            429 if code == Some("insufficient_quota") => ErrorKind::InsufficientQuota,
            429 => ErrorKind::RateLimit,
            500.. => ErrorKind::InternalServer,
            _ => ErrorKind::Other,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server answered with an error status.
    #[error("{message} (HTTP {status}, request id {})", request_id.as_deref().unwrap_or("none"))]
    Api {
        kind: ErrorKind,
        status: u16,
        message: String,
        code: Option<String>,
        param: Option<String>,
        request_id: Option<String>,
    },
    /// The server could not be reached, or the connection broke.
    #[error("connection error: {0}")]
    Connection(String),
    /// The request took longer than the client's timeout.
    #[error("request timed out")]
    Timeout,
    /// The server reported an error inside a stream that had started.
    #[error("stream error: {message} (request id {})", request_id.as_deref().unwrap_or("none"))]
    Stream {
        message: String,
        code: Option<String>,
        request_id: Option<String>,
    },
    /// A response that is not what the API documents.
    #[error("unexpected response: {0}")]
    Decode(String),
    /// Missing configuration (no API key).
    #[error("{0}")]
    Config(String),
}

impl Error {
    /// The kind of an API error; None for connection, timeout and other errors.
    pub fn kind(&self) -> Option<ErrorKind> {
        match self {
            Error::Api { kind, .. } => Some(*kind),
            _ => None,
        }
    }

    pub fn request_id(&self) -> Option<&str> {
        match self {
            Error::Api { request_id, .. } | Error::Stream { request_id, .. } => {
                request_id.as_deref()
            }
            _ => None,
        }
    }
}
