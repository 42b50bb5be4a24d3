//! CORS for the API (`/v1/...`): off until a project lists the browser origins whose pages may
//! call the API with its keys (a hackathon demo, OpenAI's JS SDK with `dangerouslyAllowBrowser`).
//!
//! - A preflight (`OPTIONS` with `Access-Control-Request-Method`) carries no credential, so it
//!   is answered by origin alone: 204 with the CORS headers when some active project allows the
//!   origin, else 403 `origin_not_allowed` without them (the browser then sends nothing).
//! - Every `/v1` answer to an allowed origin carries `Access-Control-Allow-Origin` (that origin,
//!   never `*`, never with credentials), so a browser can read errors too.
//! - The request itself is checked against its credential: a project key works from its own
//!   project's origins only; admin keys and console sessions never work from another origin
//!   (403 `origin_not_allowed`). Same-origin requests (the console's own pages) and requests
//!   without `Origin` (servers, SDKs, curl) are not affected.
//!
//! Which origins are allowed is read from the database into a table kept for
//! [`TABLE_TTL`]: a change made through this process applies at once, through another replica
//! within that time.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::http::header::{self, HeaderMap, HeaderValue};
use actix_web::HttpResponse;

use crate::error::ApiError;
use crate::store::{Store, StoreError};

/// At most this many origins per project.
pub const MAX_ORIGINS: usize = 20;
/// How long a replica keeps the table of allowed origins before reading it again.
pub const TABLE_TTL: Duration = Duration::from_secs(5);
/// How long a browser may cache a preflight's answer.
const PREFLIGHT_MAX_AGE: &str = "600";
/// Response headers a browser page may read besides the CORS-safelisted ones.
const EXPOSED: &str = "x-request-id, retry-after, x-ratelimit-limit-requests, \
                       x-ratelimit-remaining-requests, x-ratelimit-reset-requests, \
                       x-ratelimit-limit-tokens, x-ratelimit-remaining-tokens, \
                       x-ratelimit-reset-tokens";

/// The shape of an origin that projects may list, as the OpenAPI document states it: http or
/// https, a host name (letters, digits, single hyphens inside labels, the last label starting
/// with a letter) or an IPv4 address, an optional port (0-65535), an optional `/`. Case does not
/// matter. [`origin`] refuses anything else before parsing what matches as a URL.
pub const ORIGIN_PATTERN: &str = concat!(
    "^[Hh][Tt][Tt][Pp][Ss]?://",
    "(([A-Za-z0-9]+(-[A-Za-z0-9]+)*\\.)*[A-Za-z][A-Za-z0-9]*(-[A-Za-z0-9]+)*",
    "|((25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])\\.){3}(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9]))",
    "(:(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|0[0-9]{4}|[0-9]{1,4}))?",
    "/?$"
);
/// The longest origin accepted.
pub const ORIGIN_MAX_LENGTH: usize = 200;

/// `raw` as an origin (`https://app.example.com`, `http://localhost:5173`): http or https, a
/// host, an optional port, nothing else ([`ORIGIN_PATTERN`]). Returned in the form browsers send (lower case, the
/// scheme's default port left out, international names in punycode).
pub fn origin(field: &str, raw: &str) -> Result<String, ApiError> {
    let refuse = |why: &str| {
        ApiError::invalid(
            field,
            format!(
                "'{field}' must hold origins like 'https://app.example.com' or \
                 'http://localhost:5173' (scheme, host and port only): '{}' {why}.",
                raw.chars().take(80).collect::<String>()
            ),
        )
    };
    static SHAPE: std::sync::LazyLock<regex::Regex> =
        std::sync::LazyLock::new(|| regex::Regex::new(ORIGIN_PATTERN).expect("a valid pattern"));
    if raw.len() > ORIGIN_MAX_LENGTH || !SHAPE.is_match(raw) {
        return Err(refuse("is not of that shape"));
    }
    let url = url::Url::parse(raw).map_err(|_| refuse("is not a URL"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(refuse("is not http or https"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(refuse("has no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(refuse("has user information"));
    }
    // `Url` adds a `/` path to a bare origin; anything more is a path, query or fragment.
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
        return Err(refuse("has a path, query or fragment"));
    }
    Ok(url.origin().ascii_serialization())
}

/// A project's whole list of origins, validated, normalized and without duplicates.
pub fn origins(field: &str, raw: &[String]) -> Result<Vec<String>, ApiError> {
    if raw.len() > MAX_ORIGINS {
        return Err(ApiError::invalid(
            field,
            format!("'{field}' may hold at most {MAX_ORIGINS} origins."),
        ));
    }
    let mut out: Vec<String> = Vec::with_capacity(raw.len());
    for item in raw {
        let origin = origin(field, item)?;
        if !out.contains(&origin) {
            out.push(origin);
        }
    }
    Ok(out)
}

/// The request's `Origin` when it names another origin than this server's (compared with
/// `Host`, or `X-Forwarded-Host` behind a proxy); `None` for same-origin requests and for
/// requests without one. Lower-cased as browsers send it; `null` (sandboxed frames, files) is
/// kept and matches no allowed origin.
pub fn cross_origin(headers: &HeaderMap) -> Option<String> {
    let origin = headers.get(header::ORIGIN)?.to_str().ok()?.trim();
    let origin = origin.to_ascii_lowercase();
    let authority = origin
        .split_once("://")
        .map(|(_, rest)| rest)
        .unwrap_or_default();
    let own = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(|host| host.split(',').next().unwrap_or_default().trim())
            .is_some_and(|host| !host.is_empty() && host.eq_ignore_ascii_case(authority))
    };
    if own("host") || own("x-forwarded-host") {
        return None;
    }
    Some(origin)
}

/// Which origins each active project allows, and all of them together (for preflights).
#[derive(Debug, Default)]
pub struct Table {
    by_project: HashMap<String, HashSet<String>>,
    any: HashSet<String>,
}

impl Table {
    /// Whether some active project allows `origin` (a preflight's question).
    pub fn allows_any(&self, origin: &str) -> bool {
        self.any.contains(origin)
    }

    /// Whether `project_id` allows `origin`.
    pub fn allows(&self, project_id: &str, origin: &str) -> bool {
        self.by_project
            .get(project_id)
            .is_some_and(|origins| origins.contains(origin))
    }
}

/// The table of allowed origins, read again after [`TABLE_TTL`] or when this process changed it.
#[derive(Default)]
pub struct Cors {
    cached: std::sync::Mutex<Option<(Instant, Arc<Table>)>>,
    load: tokio::sync::Mutex<()>,
}

impl Cors {
    pub async fn table(&self, store: &Store) -> Result<Arc<Table>, StoreError> {
        if let Some(table) = self.fresh() {
            return Ok(table);
        }
        // One reader at a time; the others take what it read.
        let _loading = self.load.lock().await;
        if let Some(table) = self.fresh() {
            return Ok(table);
        }
        let mut table = Table::default();
        for (project, origins) in store.project_origins().await? {
            table.any.extend(origins.iter().cloned());
            table
                .by_project
                .insert(project.into_string(), origins.into_iter().collect());
        }
        let table = Arc::new(table);
        *self.cached.lock().unwrap_or_else(|e| e.into_inner()) =
            Some((Instant::now(), table.clone()));
        Ok(table)
    }

    fn fresh(&self) -> Option<Arc<Table>> {
        let cached = self.cached.lock().unwrap_or_else(|e| e.into_inner());
        cached
            .as_ref()
            .filter(|(at, _)| at.elapsed() < TABLE_TTL)
            .map(|(_, table)| table.clone())
    }

    /// Forgets the table (a project's origins changed, or it was archived).
    pub fn invalidate(&self) {
        *self.cached.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}

/// Whether `headers` are a CORS preflight (`OPTIONS` is checked by the caller).
pub fn is_preflight(headers: &HeaderMap) -> bool {
    headers.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
}

/// The answer to a preflight from `origin`: 204 with what the browser asked for when `allowed`,
/// else 403 without CORS headers.
pub fn preflight(headers: &HeaderMap, origin: &str, allowed: bool) -> HttpResponse {
    if !allowed {
        return actix_web::ResponseError::error_response(&not_allowed(origin));
    }
    let mut res = HttpResponse::NoContent().finish();
    let out = res.headers_mut();
    allow_origin(out, origin);
    out.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, POST, DELETE"),
    );
    // The headers the page wants to send (Authorization, Content-Type, Idempotency-Key, the
    // OpenAI SDK's own): echoed when they are plain header names, as the credential is checked
    // on the request itself.
    if let Some(asked) = headers
        .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
        .filter(|v| {
            v.as_bytes()
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || b"-_, ".contains(b))
        })
    {
        out.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, asked.clone());
    }
    out.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static(PREFLIGHT_MAX_AGE),
    );
    out.insert(
        header::VARY,
        HeaderValue::from_static(
            "Origin, Access-Control-Request-Method, Access-Control-Request-Headers",
        ),
    );
    res
}

/// Lets a page of `origin` read this response.
pub fn allow_origin(out: &mut HeaderMap, origin: &str) {
    if let Ok(value) = HeaderValue::from_str(origin) {
        out.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
        out.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static(EXPOSED),
        );
    }
}

/// The refusal of a request from an origin its credential does not allow.
pub fn not_allowed(origin: &str) -> ApiError {
    ApiError::OriginNotAllowed(format!(
        "Requests from the origin '{}' are not allowed with this credential. A project's API \
         keys work from the origins listed in the project's 'allowed_origins'; admin keys and \
         console sessions only from this server's own pages.",
        origin.chars().take(200).collect::<String>()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_normalized_as_browsers_send_them() {
        let ok = |raw: &str| origin("o", raw).unwrap();
        assert_eq!(ok("https://App.Example.com"), "https://app.example.com");
        assert_eq!(ok("https://app.example.com/"), "https://app.example.com");
        assert_eq!(ok("https://app.example.com:443"), "https://app.example.com");
        assert_eq!(ok("http://localhost:5173"), "http://localhost:5173");
        assert_eq!(ok("http://127.0.0.1:80"), "http://127.0.0.1");
        assert_eq!(
            ok("HTTP://my-app.dev.example:65535"),
            "http://my-app.dev.example:65535"
        );
        for bad in [
            " https://app.example.com",
            "https://app.example.com:65536",
            "https://1.2.3.256",
            "https://1.2.3",
            "https://app.example.com.",
            "https://-app.example.com",
            "https://xn--bcher-kva.example",
            "https://bücher.example",
            "app.example.com",
            "ftp://example.com",
            "https://example.com/app",
            "https://example.com/?q=1",
            "https://example.com#x",
            "https://user:pw@example.com",
            "https://example.com//",
            "*",
            "null",
            "",
        ] {
            assert!(origin("o", bad).is_err(), "{bad}");
        }
        let list = origins(
            "o",
            &["https://a.example".into(), "https://A.example/".into()],
        )
        .unwrap();
        assert_eq!(list, ["https://a.example"]);
        assert!(origins("o", &vec!["https://a.example".to_owned(); MAX_ORIGINS + 1]).is_err());
    }

    /// Whatever the documented pattern admits, the URL parser takes too (so the document never
    /// calls a value valid that the server refuses).
    #[test]
    fn what_the_pattern_admits_is_an_origin() {
        for raw in [
            "http://a",
            "https://A-1.b2-c.Example:0",
            "http://0.0.0.0:00080/",
            "https://255.255.255.255:09999",
            "http://a1.2b.c",
            "https://x.y.z.localhost:8080/",
        ] {
            origin("o", raw).unwrap_or_else(|e| panic!("{raw}: {e:?}"));
        }
    }

    #[test]
    fn same_origin_requests_are_not_cross_origin() {
        let headers = |pairs: &[(&'static str, &'static str)]| {
            let mut h = HeaderMap::new();
            for (k, v) in pairs {
                h.insert(
                    header::HeaderName::from_static(k),
                    HeaderValue::from_static(v),
                );
            }
            h
        };
        assert_eq!(cross_origin(&headers(&[("host", "api.example")])), None);
        assert_eq!(
            cross_origin(&headers(&[
                ("host", "api.example"),
                ("origin", "https://API.example")
            ])),
            None
        );
        assert_eq!(
            cross_origin(&headers(&[
                ("host", "127.0.0.1:8080"),
                ("x-forwarded-host", "api.example"),
                ("origin", "https://api.example")
            ])),
            None
        );
        assert_eq!(
            cross_origin(&headers(&[
                ("host", "api.example"),
                ("origin", "https://demo.example")
            ]))
            .as_deref(),
            Some("https://demo.example")
        );
        assert_eq!(
            cross_origin(&headers(&[("host", "api.example"), ("origin", "null")])).as_deref(),
            Some("null")
        );
    }
}
