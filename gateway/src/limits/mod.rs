//! Rate limits: requests per minute, tokens per minute and concurrent requests, per API key,
//! project or organization, shared by every gateway replica through Redis.
//!
//! Read in the order a request meets them:
//! - [`resolve`]: which limit applies. Each dimension takes the key's own override, else its
//!   project's, else the organization's plan default ([`PlanLimits::of`]), and is counted on the
//!   counter of the level it came from: a key override on that key alone, a project override on
//!   all the project's keys together, a plan default on the whole organization.
//! - [`RateLimiter::admit`]: one atomic check-and-count over the three counters (in Redis with a
//!   Lua script when `redis_url` is set, else [`window::LocalLimiter`]). A request that one
//!   dimension refuses is counted on none. Admission reserves the prompt plus `max_tokens` (times
//!   `n`) on the tokens counter and takes a concurrency lease.
//! - [`Admission`]: what a route holds while the request runs. It sees the engine's deltas
//!   ([`Admission::note`]); when it is dropped (the response ended, the client went away, the
//!   engine failed) it corrects the reservation to the tokens really used and ends the lease.
//! - [`headers`]: OpenAI's `x-ratelimit-*` headers, on successes and refusals alike.
//!
//! ## The window
//! A sliding-window log: every admitted request is an entry `(time, id, cost)` on each counter,
//! and a counter's usage is the sum of its entries of the last 60 s. It is exact (never more
//! than the limit in any 60 s interval, no burst at window edges, unlike fixed windows or
//! a token bucket, which admits a full burst and then refills), at the cost of one entry per
//! admitted request per counter, trimmed as they age out. `x-ratelimit-reset-*` is the time
//! until the window is back to its initial state (its newest entry leaves); `Retry-After` is
//! the time until the refused request would fit (enough of the oldest entries leave).
//!
//! ## When Redis fails
//! Every Redis call has a short timeout (`redis_timeout_ms`). On an error or timeout the
//! request is either refused with 503 `rate_limiter_unavailable` (`rate_limit_redis_failure =
//! "closed"`) or counted by this replica's in-process limiter (`"local"`, the default: N
//! replicas then admit up to N times the limit). Either way it is logged and counted in
//! [`LimiterCounters`] (exported at `/metrics` as `starfire_rate_limit_*`). Leases taken in Redis by a replica that died expire after
//! [`LEASE_MS`].

pub mod headers;
mod redis_store;
pub mod window;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use scheduler::Delta;
use serde::Serialize;

use crate::auth::secret::random_base62;
use crate::auth::Principal;
use crate::config::{Config, RedisFailure};
use crate::error::ApiError;
use crate::store::api_keys::KeyLimits;
use crate::store::tenants::Plan;
use crate::store::Store;

pub use headers::RateLimitHeaders;
use redis_store::RedisLimiter;
use window::LocalLimiter;

/// The window of the requests and tokens counters.
pub const WINDOW_MS: i64 = 60_000;
/// How long a concurrency lease lasts when its request never ends it (its replica died).
pub const LEASE_MS: i64 = 15 * 60_000;

/// A plan's default limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PlanLimits {
    pub rpm: u64,
    pub tpm: u64,
    pub concurrency: u64,
}

impl PlanLimits {
    /// Free organizations get a tenth of a paying one's limits, enterprise ten times.
    pub fn of(plan: Plan) -> PlanLimits {
        match plan {
            Plan::Free => PlanLimits {
                rpm: 60,
                tpm: 200_000,
                concurrency: 8,
            },
            Plan::PayAsYouGo => PlanLimits {
                rpm: 600,
                tpm: 2_000_000,
                concurrency: 64,
            },
            Plan::Enterprise => PlanLimits {
                rpm: 6_000,
                tpm: 20_000_000,
                concurrency: 512,
            },
        }
    }
}

/// One dimension's limit and the counter it is kept on (`k:{key}`, `p:{project}`, `t:{org}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limit {
    pub value: u64,
    pub counter: String,
}

/// The limits that apply to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Effective {
    pub requests: Limit,
    pub tokens: Limit,
    pub concurrency: Limit,
}

/// Who is asking: the organization and its plan, and the project and key with their overrides.
pub struct Caller<'a> {
    pub tenant_id: &'a str,
    pub plan: Plan,
    pub project: Option<(&'a str, KeyLimits)>,
    pub key: Option<(&'a str, KeyLimits)>,
}

/// Key override > project override > plan default, per dimension.
pub fn resolve(caller: &Caller) -> Effective {
    let plan = PlanLimits::of(caller.plan);
    let pick = |get: fn(&KeyLimits) -> Option<i64>, default: u64| -> Limit {
        let level = |scope: char, level: Option<(&str, KeyLimits)>| {
            level.and_then(|(id, limits)| {
                get(&limits).map(|v| Limit {
                    value: v.max(0) as u64,
                    counter: format!("{scope}:{id}"),
                })
            })
        };
        level('k', caller.key)
            .or_else(|| level('p', caller.project))
            .unwrap_or_else(|| Limit {
                value: default,
                counter: format!("t:{}", caller.tenant_id),
            })
    };
    Effective {
        requests: pick(|l| l.rpm, plan.rpm),
        tokens: pick(|l| l.tpm, plan.tpm),
        concurrency: pick(|l| l.concurrency, plan.concurrency),
    }
}

/// One admission as the limiter backends see it.
#[derive(Debug, Clone)]
pub struct Ask {
    /// Unique per admission: the member of every counter it is counted on.
    pub id: String,
    pub requests_key: String,
    pub requests_limit: u64,
    pub tokens_key: String,
    pub tokens_limit: u64,
    /// Tokens to reserve.
    pub tokens: u64,
    pub concurrency_key: String,
    pub concurrency_limit: u64,
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    Requests,
    Tokens,
    /// The request alone needs more tokens than the limit: waiting never helps.
    TokensTooLarge,
    Concurrency,
}

/// A counter after an admission (or a refusal).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowState {
    pub limit: u64,
    pub remaining: u64,
    pub reset_ms: u64,
}

/// A backend's answer.
#[derive(Debug, Clone)]
pub struct Decision {
    pub refused: Option<Refused>,
    pub retry_after_ms: Option<u64>,
    pub requests: WindowState,
    pub tokens: WindowState,
}

/// What a request will cost at most: its prompt tokens and the completion tokens it may
/// generate (`max_tokens` times `n`), and how many engine requests report usage at the end.
#[derive(Debug, Clone, Copy, Default)]
pub struct Cost {
    pub prompt_tokens: u64,
    pub max_completion_tokens: u64,
    pub streams: usize,
}

impl Cost {
    /// A request that only counts against requests per minute (`/v1/tokenize`).
    pub fn requests_only() -> Cost {
        Cost::default()
    }

    /// A request whose tokens are all known up front (embeddings).
    pub fn prompt_only(tokens: usize) -> Cost {
        Cost {
            prompt_tokens: tokens as u64,
            ..Cost::default()
        }
    }

    /// An engine request: `prompt` tokens and up to `max_tokens` for each of `n` choices.
    pub fn generation(prompt: usize, max_tokens: usize, n: usize) -> Cost {
        Cost {
            prompt_tokens: prompt as u64,
            max_completion_tokens: (max_tokens * n) as u64,
            streams: 1,
        }
    }

    fn reserved(&self) -> u64 {
        self.prompt_tokens + self.max_completion_tokens
    }
}

/// Several engine requests in one (text completions with several prompts).
impl std::ops::Add for Cost {
    type Output = Cost;

    fn add(self, other: Cost) -> Cost {
        Cost {
            prompt_tokens: self.prompt_tokens + other.prompt_tokens,
            max_completion_tokens: self.max_completion_tokens + other.max_completion_tokens,
            streams: self.streams + other.streams,
        }
    }
}

/// A refused request: 429 `rate_limit_exceeded` with `Retry-After` and the headers.
#[derive(Debug, Clone)]
pub struct Refusal {
    pub why: Refused,
    pub message: String,
    pub retry_after_secs: Option<u64>,
    pub headers: RateLimitHeaders,
}

impl Refusal {
    /// OpenAI's error `type` for a rate-limit refusal: which limit was reached.
    pub fn kind(&self) -> &'static str {
        match self.why {
            Refused::Requests | Refused::Concurrency => "requests",
            Refused::Tokens | Refused::TokensTooLarge => "tokens",
        }
    }

    fn new(decision: &Decision, cost: &Cost, effective: &Effective) -> Refusal {
        let headers = RateLimitHeaders::from(decision);
        let retry_after_secs = decision.retry_after_ms.map(|ms| ms.div_ceil(1000).max(1));
        let wait = decision
            .retry_after_ms
            .map(headers::duration)
            .unwrap_or_default();
        let message = match decision.refused {
            Some(Refused::Requests) => format!(
                "Rate limit reached for requests per min (RPM): Limit {}, Used {}, Requested 1. \
                 Please try again in {wait}.",
                decision.requests.limit,
                decision.requests.limit - decision.requests.remaining,
            ),
            Some(Refused::Tokens) => format!(
                "Rate limit reached for tokens per min (TPM): Limit {}, Used {}, Requested {}. \
                 Please try again in {wait}.",
                decision.tokens.limit,
                decision.tokens.limit - decision.tokens.remaining,
                cost.reserved(),
            ),
            Some(Refused::TokensTooLarge) => format!(
                "Request too large for tokens per min (TPM): Limit {}, Requested {} (the prompt \
                 plus max_tokens for every choice). Lower max_tokens or shorten the prompt.",
                decision.tokens.limit,
                cost.reserved(),
            ),
            Some(Refused::Concurrency) | None => format!(
                "Too many concurrent requests: Limit {}. Please try again when one of them \
                 has finished.",
                effective.concurrency.value
            ),
        };
        Refusal {
            why: decision.refused.unwrap_or(Refused::Concurrency),
            message,
            retry_after_secs,
            headers,
        }
    }
}

/// How many requests the limiter refused and how Redis behaved, for `/metrics`.
#[derive(Debug, Default)]
pub struct LimiterCounters {
    pub refused_requests: AtomicU64,
    pub refused_tokens: AtomicU64,
    pub refused_concurrency: AtomicU64,
    /// Redis calls that failed or timed out.
    pub redis_errors: AtomicU64,
    /// Admissions counted in process because Redis failed (`"local"`).
    pub local_fallbacks: AtomicU64,
    /// Requests refused with 503 because Redis failed (`"closed"`).
    pub unavailable: AtomicU64,
}

/// A copy of [`LimiterCounters`] at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CountersSnapshot {
    pub refused_requests: u64,
    pub refused_tokens: u64,
    pub refused_concurrency: u64,
    pub redis_errors: u64,
    pub local_fallbacks: u64,
    pub unavailable: u64,
}

impl CountersSnapshot {
    /// The counters in Prometheus' text format (always present, zero included, so that a
    /// dashboard can rate them from the first scrape).
    pub fn prometheus(&self) -> String {
        let mut out = String::new();
        let mut family = |name: &str, help: &str, series: &[(&str, u64)]| {
            out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} counter\n"));
            for (labels, value) in series {
                out.push_str(&format!("{name}{labels} {value}\n"));
            }
        };
        family(
            "starfire_rate_limit_refusals_total",
            "Inference requests refused with 429 rate_limit_exceeded, by the limit reached.",
            &[
                ("{kind=\"requests\"}", self.refused_requests),
                ("{kind=\"tokens\"}", self.refused_tokens),
                ("{kind=\"concurrency\"}", self.refused_concurrency),
            ],
        );
        family(
            "starfire_rate_limit_redis_errors_total",
            "Rate-limiter calls to Redis that failed or timed out.",
            &[("", self.redis_errors)],
        );
        family(
            "starfire_rate_limit_local_fallbacks_total",
            "Admissions counted in process because Redis failed (rate_limit_redis_failure = local).",
            &[("", self.local_fallbacks)],
        );
        family(
            "starfire_rate_limit_unavailable_total",
            "Requests refused with 503 because Redis failed (rate_limit_redis_failure = closed).",
            &[("", self.unavailable)],
        );
        out
    }
}

impl LimiterCounters {
    pub fn snapshot(&self) -> CountersSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        CountersSnapshot {
            refused_requests: get(&self.refused_requests),
            refused_tokens: get(&self.refused_tokens),
            refused_concurrency: get(&self.refused_concurrency),
            redis_errors: get(&self.redis_errors),
            local_fallbacks: get(&self.local_fallbacks),
            unavailable: get(&self.unavailable),
        }
    }

    fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

fn now_ms() -> i64 {
    crate::store::now_ms()
}

/// The rate limiter of a gateway: Redis when configured, in process otherwise.
pub struct RateLimiter {
    local: LocalLimiter,
    redis: Option<RedisLimiter>,
    on_redis_failure: RedisFailure,
    prefix: String,
    counters: LimiterCounters,
}

impl RateLimiter {
    pub fn new(config: &Config) -> RateLimiter {
        let timeout = Duration::from_millis(config.redis_timeout_ms.max(1));
        let redis = config.redis_url.as_deref().and_then(|url| {
            RedisLimiter::new(url, timeout)
                .map_err(|e| {
                    // The URL may hold a password: log only why it was refused.
                    tracing::error!(kind = ?e.kind(), "redis_url is invalid; limits are kept in process")
                })
                .ok()
        });
        RateLimiter {
            local: LocalLimiter::default(),
            redis,
            on_redis_failure: config.rate_limit_redis_failure,
            prefix: config.rate_limit_key_prefix.clone(),
            counters: LimiterCounters::default(),
        }
    }

    pub fn counters(&self) -> &LimiterCounters {
        &self.counters
    }

    /// The in-process limiter (what counts when there is no Redis, or Redis is down).
    pub fn local(&self) -> &LocalLimiter {
        &self.local
    }

    /// Resolves the caller's limits and counts the request, or refuses it (429, or 503 when
    /// Redis is down and the limiter fails closed).
    pub async fn admit(
        self: &Arc<Self>,
        store: &Store,
        principal: &Principal,
        cost: Cost,
    ) -> Result<Admission, ApiError> {
        let (plan, project_limits) = match principal.limit_context {
            Some(context) => context,
            None => {
                store
                    .rate_limit_context(&principal.tenant_id, principal.project_id.as_ref())
                    .await?
            }
        };
        let effective = resolve(&Caller {
            tenant_id: &principal.tenant_id,
            plan,
            project: principal
                .project_id
                .as_deref()
                .map(|p| (p, project_limits.unwrap_or_default())),
            key: principal.key_id.as_deref().map(|k| (k, principal.limits)),
        });
        let mut admission = self.admit_effective(&effective, cost).await?;
        admission.plan = Some(plan);
        Ok(admission)
    }

    /// [`RateLimiter::admit`] with the limits already resolved.
    pub async fn admit_effective(
        self: &Arc<Self>,
        effective: &Effective,
        cost: Cost,
    ) -> Result<Admission, ApiError> {
        let ask = Ask {
            id: format!("rl_{}", random_base62(20)),
            requests_key: format!("{}{}:rpm", self.prefix, effective.requests.counter),
            requests_limit: effective.requests.value,
            tokens_key: format!("{}{}:tpm", self.prefix, effective.tokens.counter),
            tokens_limit: effective.tokens.value,
            tokens: cost.reserved(),
            concurrency_key: format!("{}{}:con", self.prefix, effective.concurrency.counter),
            concurrency_limit: effective.concurrency.value,
        };
        let (decision, in_redis) = match &self.redis {
            None => (self.local.admit(now_ms(), &ask), false),
            Some(redis) => match redis.admit(&ask).await {
                Ok(decision) => (decision, true),
                Err(e) => {
                    LimiterCounters::bump(&self.counters.redis_errors);
                    match self.on_redis_failure {
                        RedisFailure::Closed => {
                            tracing::warn!(error = %e, "Redis is unavailable; refusing (rate_limit_redis_failure = closed)");
                            LimiterCounters::bump(&self.counters.unavailable);
                            return Err(ApiError::Unavailable {
                                message: "The rate limiter is unavailable. Please try again \
                                          shortly."
                                    .to_owned(),
                                code: crate::error::Code::RateLimiterUnavailable,
                                retry_after: Some(1),
                            });
                        }
                        RedisFailure::Local => {
                            tracing::warn!(error = %e, "Redis is unavailable; counting in process (rate_limit_redis_failure = local)");
                            LimiterCounters::bump(&self.counters.local_fallbacks);
                            (self.local.admit(now_ms(), &ask), false)
                        }
                    }
                }
            },
        };
        if decision.refused.is_some() {
            let refusal = Refusal::new(&decision, &cost, effective);
            LimiterCounters::bump(match refusal.why {
                Refused::Requests => &self.counters.refused_requests,
                Refused::Tokens | Refused::TokensTooLarge => &self.counters.refused_tokens,
                Refused::Concurrency => &self.counters.refused_concurrency,
            });
            return Err(ApiError::RateLimitExceeded(Box::new(refusal)));
        }
        Ok(Admission {
            limiter: Arc::clone(self),
            in_redis,
            headers: RateLimitHeaders::from(&decision),
            ask,
            cost,
            generated: AtomicU64::new(0),
            reported_tokens: AtomicU64::new(0),
            reported_streams: AtomicU64::new(0),
            settled: AtomicBool::new(false),
            plan: None,
        })
    }

    fn settle(&self, ask: &Ask, in_redis: bool, tokens: Option<u64>) {
        if !in_redis {
            self.local
                .settle(&ask.tokens_key, &ask.concurrency_key, &ask.id, tokens);
            return;
        }
        let Some(redis) = self.redis.clone() else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let ask = ask.clone();
        runtime.spawn(async move {
            if let Err(e) = redis.settle(&ask, tokens).await {
                // The reservation then stays as reserved and the lease expires on its own.
                tracing::warn!(error = %e, "could not settle a rate-limit reservation in Redis");
            }
        });
    }
}

/// An admitted request's reservation. Dropping it settles: the tokens counter is corrected to
/// the tokens used (the engine's usage when every engine request reported it; else the prompt
/// plus the tokens seen so far) and the concurrency lease ends.
pub struct Admission {
    limiter: Arc<RateLimiter>,
    in_redis: bool,
    headers: RateLimitHeaders,
    ask: Ask,
    cost: Cost,
    generated: AtomicU64,
    reported_tokens: AtomicU64,
    reported_streams: AtomicU64,
    settled: AtomicBool,
    /// The organization's plan as read for this admission (so that callers need not read it
    /// again).
    plan: Option<Plan>,
}

impl Admission {
    /// `res` with this admission's `x-ratelimit-*` headers.
    pub fn respond(&self, mut res: actix_web::HttpResponse) -> actix_web::HttpResponse {
        self.headers.apply(res.headers_mut());
        res
    }

    /// The caller's plan, when the admission read it.
    pub fn plan(&self) -> Option<Plan> {
        self.plan
    }

    /// The `x-ratelimit-*` headers as of this admission.
    pub fn headers(&self) -> &RateLimitHeaders {
        &self.headers
    }

    /// Sees one engine delta: its tokens, and its usage when it is the last.
    pub fn note(&self, delta: &Delta) {
        self.generated
            .fetch_add(delta.tokens() as u64, Ordering::Relaxed);
        if let Some(usage) = &delta.usage {
            self.reported_tokens.fetch_add(
                (usage.prompt_tokens + usage.completion_tokens) as u64,
                Ordering::Relaxed,
            );
            self.reported_streams.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The tokens this request is charged now.
    pub fn used_tokens(&self) -> u64 {
        let streams = self.reported_streams.load(Ordering::Relaxed) as usize;
        if streams >= self.cost.streams {
            if self.cost.streams == 0 {
                self.cost.prompt_tokens
            } else {
                self.reported_tokens.load(Ordering::Relaxed)
            }
        } else {
            (self.cost.prompt_tokens + self.generated.load(Ordering::Relaxed))
                .min(self.cost.reserved())
        }
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        if self.settled.swap(true, Ordering::Relaxed) {
            return;
        }
        let used = self.used_tokens();
        let tokens = (used != self.ask.tokens && self.ask.tokens > 0).then_some(used);
        self.limiter.settle(&self.ask, self.in_redis, tokens);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(rpm: Option<i64>, tpm: Option<i64>, concurrency: Option<i64>) -> KeyLimits {
        KeyLimits {
            rpm,
            tpm,
            concurrency,
        }
    }

    #[test]
    fn each_dimension_takes_the_key_then_the_project_then_the_plan() {
        let caller = Caller {
            tenant_id: "org_1",
            plan: Plan::Free,
            project: Some(("proj_1", limits(Some(50), Some(5000), None))),
            key: Some(("key_1", limits(Some(10), None, None))),
        };
        let e = resolve(&caller);
        assert_eq!(
            e.requests,
            Limit {
                value: 10,
                counter: "k:key_1".into()
            }
        );
        assert_eq!(
            e.tokens,
            Limit {
                value: 5000,
                counter: "p:proj_1".into()
            }
        );
        let free = PlanLimits::of(Plan::Free);
        assert_eq!(
            e.concurrency,
            Limit {
                value: free.concurrency,
                counter: "t:org_1".into()
            }
        );
        // Console sessions have neither key nor project.
        let e = resolve(&Caller {
            tenant_id: "org_1",
            plan: Plan::Enterprise,
            project: None,
            key: None,
        });
        assert_eq!(e.requests.value, PlanLimits::of(Plan::Enterprise).rpm);
        assert!(PlanLimits::of(Plan::Free).rpm < PlanLimits::of(Plan::PayAsYouGo).rpm);
    }

    fn limiter() -> Arc<RateLimiter> {
        let config =
            Config::resolve(None, |k| (k == "HOME").then(|| "/nonexistent".into())).unwrap();
        Arc::new(RateLimiter::new(&config))
    }

    fn effective(tpm: u64) -> Effective {
        let limit = |value| Limit {
            value,
            counter: "k:key_t".into(),
        };
        Effective {
            requests: limit(100),
            tokens: limit(tpm),
            concurrency: limit(2),
        }
    }

    fn delta(tokens: usize, usage: Option<(usize, usize)>) -> Delta {
        Delta {
            token_ids: vec![1; tokens],
            usage: usage.map(|(p, c)| scheduler::Usage {
                prompt_tokens: p,
                completion_tokens: c,
                ..Default::default()
            }),
            ..Delta::empty("r", 0)
        }
    }

    #[tokio::test]
    async fn the_reservation_is_corrected_to_the_usage_at_the_end() {
        let l = limiter();
        let key = "starfire:rl:k:key_t:tpm";
        let a = l
            .admit_effective(&effective(1000), Cost::generation(10, 90, 1))
            .await
            .unwrap();
        assert_eq!(a.headers().remaining_tokens, 900);
        assert_eq!(l.local().tokens_counted(now_ms(), key), 100);
        a.note(&delta(3, None));
        a.note(&delta(2, Some((10, 5))));
        drop(a);
        assert_eq!(l.local().tokens_counted(now_ms(), key), 15);
        // A client that goes away mid-stream is charged the prompt and what was generated.
        let b = l
            .admit_effective(&effective(1000), Cost::generation(10, 90, 1))
            .await
            .unwrap();
        b.note(&delta(4, None));
        drop(b);
        assert_eq!(l.local().tokens_counted(now_ms(), key), 15 + 14);
        assert_eq!(l.local().in_flight(now_ms(), "starfire:rl:k:key_t:con"), 0);
    }

    #[tokio::test]
    async fn refusals_are_429_with_the_limit_that_was_reached_and_counted() {
        let l = limiter();
        let err = l
            .admit_effective(&effective(50), Cost::generation(10, 90, 1))
            .await
            .err()
            .unwrap();
        let ApiError::RateLimitExceeded(refusal) = &err else {
            panic!("{err:?}")
        };
        assert_eq!(refusal.why, Refused::TokensTooLarge);
        assert_eq!(refusal.kind(), "tokens");
        assert_eq!(err.body().error.code, "rate_limit_exceeded");
        let _a = l
            .admit_effective(&effective(1000), Cost::default())
            .await
            .unwrap();
        let _b = l
            .admit_effective(&effective(1000), Cost::default())
            .await
            .unwrap();
        let err = l
            .admit_effective(&effective(1000), Cost::default())
            .await
            .err()
            .unwrap();
        let ApiError::RateLimitExceeded(refusal) = &err else {
            panic!("{err:?}")
        };
        assert_eq!(refusal.why, Refused::Concurrency);
        assert_eq!(refusal.retry_after_secs, Some(1));
        let counters = l.counters().snapshot();
        assert_eq!(
            (counters.refused_tokens, counters.refused_concurrency),
            (1, 1)
        );
    }
}
