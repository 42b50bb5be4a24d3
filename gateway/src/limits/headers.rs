//! OpenAI's rate-limit headers and its duration format (`6m0s`, `1s`, `20ms`).

use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};

use super::Decision;

/// The six `x-ratelimit-*` values of one response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitHeaders {
    pub limit_requests: u64,
    pub remaining_requests: u64,
    pub reset_requests_ms: u64,
    pub limit_tokens: u64,
    pub remaining_tokens: u64,
    pub reset_tokens_ms: u64,
}

impl From<&Decision> for RateLimitHeaders {
    fn from(d: &Decision) -> Self {
        RateLimitHeaders {
            limit_requests: d.requests.limit,
            remaining_requests: d.requests.remaining,
            reset_requests_ms: d.requests.reset_ms,
            limit_tokens: d.tokens.limit,
            remaining_tokens: d.tokens.remaining,
            reset_tokens_ms: d.tokens.reset_ms,
        }
    }
}

impl RateLimitHeaders {
    /// Sets the six headers on `headers`.
    pub fn apply(&self, headers: &mut HeaderMap) {
        let pairs = [
            (
                "x-ratelimit-limit-requests",
                self.limit_requests.to_string(),
            ),
            ("x-ratelimit-limit-tokens", self.limit_tokens.to_string()),
            (
                "x-ratelimit-remaining-requests",
                self.remaining_requests.to_string(),
            ),
            (
                "x-ratelimit-remaining-tokens",
                self.remaining_tokens.to_string(),
            ),
            (
                "x-ratelimit-reset-requests",
                duration(self.reset_requests_ms),
            ),
            ("x-ratelimit-reset-tokens", duration(self.reset_tokens_ms)),
        ];
        for (name, value) in pairs {
            if let Ok(value) = HeaderValue::from_str(&value) {
                headers.insert(HeaderName::from_static(name), value);
            }
        }
    }
}

/// A duration as OpenAI writes it: `20ms` under a second, else hours, minutes and seconds
/// (`1s`, `1.5s`, `6m0s`, `1h2m3s`).
pub fn duration(ms: u64) -> String {
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let hours = ms / 3_600_000;
    let minutes = ms / 60_000 % 60;
    let millis = ms % 60_000;
    let seconds = if millis.is_multiple_of(1000) {
        format!("{}s", millis / 1000)
    } else {
        let text = format!("{}.{:03}", millis / 1000, millis % 1000);
        format!("{}s", text.trim_end_matches('0'))
    };
    match (hours, minutes) {
        (0, 0) => seconds,
        (0, m) => format!("{m}m{seconds}"),
        (h, m) => format!("{h}h{m}m{seconds}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_openais() {
        assert_eq!(duration(0), "0ms");
        assert_eq!(duration(20), "20ms");
        assert_eq!(duration(1000), "1s");
        assert_eq!(duration(1500), "1.5s");
        assert_eq!(duration(8_640), "8.64s");
        assert_eq!(duration(360_000), "6m0s");
        assert_eq!(duration(59_999), "59.999s");
        assert_eq!(duration(3_723_000), "1h2m3s");
    }

    #[test]
    fn all_six_headers_are_set() {
        let mut map = HeaderMap::new();
        RateLimitHeaders {
            limit_requests: 100,
            remaining_requests: 99,
            reset_requests_ms: 60_000,
            limit_tokens: 1000,
            remaining_tokens: 990,
            reset_tokens_ms: 20,
        }
        .apply(&mut map);
        assert_eq!(map.len(), 6);
        assert_eq!(map.get("x-ratelimit-reset-requests").unwrap(), "1m0s");
        assert_eq!(map.get("x-ratelimit-reset-tokens").unwrap(), "20ms");
        assert_eq!(map.get("x-ratelimit-remaining-tokens").unwrap(), "990");
    }
}
