//! The shared limiter: the sliding-window log of `window.rs` as Redis sorted sets, checked and
//! counted by one Lua script so that every replica sees one limit.
//!
//! Per counter: `{key}:rpm` (a sorted set of admission ids scored by time), `{key}:tpm` (the
//! same) with `{key}:tpm:c` (a hash: id → tokens, and `#total`), and `{key}:con` (leases,
//! scored by expiry). Time is Redis's own (`TIME`), so replicas' clocks do not matter. Every
//! key expires shortly after its window, so idle counters cost nothing.

use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::Script;

use super::{Ask, Decision, Refused, WindowState, LEASE_MS, WINDOW_MS};
use crate::redis_conn::LazyRedis;

/// Admission: trim, check the three counters, count on all of them or on none.
const ADMIT: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local id, window = ARGV[1], tonumber(ARGV[2])
local rlim, tlim, cost = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local clim, lease = tonumber(ARGV[6]), tonumber(ARGV[7])
local cutoff = now - window

redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', cutoff)
local rused = redis.call('ZCARD', KEYS[1])

local total = tonumber(redis.call('HGET', KEYS[3], '#total') or '0')
while true do
  local old = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', cutoff, 'LIMIT', 0, 256)
  if #old == 0 then break end
  local costs = redis.call('HMGET', KEYS[3], unpack(old))
  for i = 1, #old do total = total - tonumber(costs[i] or '0') end
  redis.call('HDEL', KEYS[3], unpack(old))
  redis.call('ZREM', KEYS[2], unpack(old))
end
if total < 0 then total = 0 end
if redis.call('ZCARD', KEYS[2]) == 0 then total = 0 end

redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now)
local cused = redis.call('ZCARD', KEYS[4])

local refused, retry = '', -1
if rused + 1 > rlim then
  refused = 'requests'
  local k = rused + 1 - rlim
  local e = redis.call('ZRANGE', KEYS[1], k - 1, k - 1, 'WITHSCORES')
  if #e == 2 then retry = tonumber(e[2]) + window - now end
elseif cost > tlim then
  refused = 'too_large'
elseif total + cost > tlim then
  refused = 'tokens'
  local need, freed, start = total + cost - tlim, 0, 0
  while retry < 0 do
    local e = redis.call('ZRANGE', KEYS[2], start, start + 255, 'WITHSCORES')
    if #e == 0 then break end
    local ids = {}
    for i = 1, #e, 2 do ids[#ids + 1] = e[i] end
    local costs = redis.call('HMGET', KEYS[3], unpack(ids))
    for i = 1, #ids do
      freed = freed + tonumber(costs[i] or '0')
      if freed >= need then
        retry = math.max(1, tonumber(e[2 * i]) + window - now)
        break
      end
    end
    start = start + 256
  end
elseif cused + 1 > clim then
  refused = 'concurrency'
  retry = 1000
end

if refused == '' then
  redis.call('ZADD', KEYS[1], now, id)
  rused = rused + 1
  if cost > 0 then
    total = total + cost
    redis.call('ZADD', KEYS[2], now, id)
    redis.call('HSET', KEYS[3], id, string.format('%d', cost))
  end
  redis.call('ZADD', KEYS[4], now + lease, id)
end
redis.call('HSET', KEYS[3], '#total', string.format('%d', total))
for i = 1, 3 do redis.call('PEXPIRE', KEYS[i], window + 1000) end
redis.call('PEXPIRE', KEYS[4], lease + 1000)

local function reset(key)
  local e = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
  if #e == 2 then return math.max(0, tonumber(e[2]) + window - now) end
  return 0
end
return {refused, retry, rused, reset(KEYS[1]), total, reset(KEYS[2])}
"#;

/// Settlement: correct the reservation's tokens (when `ARGV[2]` is not negative) and end the
/// lease.
const SETTLE: &str = r#"
local tokens = tonumber(ARGV[2])
if tokens >= 0 then
  local old = redis.call('HGET', KEYS[2], ARGV[1])
  if old then
    redis.call('HSET', KEYS[2], ARGV[1], string.format('%d', tokens))
    redis.call('HINCRBY', KEYS[2], '#total', tokens - tonumber(old))
  end
end
redis.call('ZREM', KEYS[3], ARGV[1])
return 1
"#;

#[derive(Debug, thiserror::Error)]
pub enum RedisLimitError {
    #[error("{0}")]
    Redis(#[from] redis::RedisError),
    #[error("Redis did not answer within {0:?}")]
    Timeout(Duration),
    #[error("unexpected answer from the rate-limit script")]
    Answer,
}

/// A lazily connected handle, shared by all workers; reconnects on its own.
#[derive(Clone)]
pub struct RedisLimiter {
    redis: LazyRedis,
    timeout: Duration,
    admit: std::sync::Arc<Script>,
    settle: std::sync::Arc<Script>,
}

type Answer = (String, i64, i64, i64, i64, i64);

impl RedisLimiter {
    pub fn new(url: &str, timeout: Duration) -> redis::RedisResult<RedisLimiter> {
        Ok(RedisLimiter {
            redis: LazyRedis::open(url, timeout)?,
            timeout,
            admit: std::sync::Arc::new(Script::new(ADMIT)),
            settle: std::sync::Arc::new(Script::new(SETTLE)),
        })
    }

    async fn connection(&self) -> Result<ConnectionManager, RedisLimitError> {
        Ok(self.redis.connection().await?)
    }

    /// Runs `f` under the timeout, whatever the connection manager does meanwhile.
    async fn bounded<T>(
        &self,
        f: impl std::future::Future<Output = Result<T, RedisLimitError>>,
    ) -> Result<T, RedisLimitError> {
        tokio::time::timeout(self.timeout, f)
            .await
            .map_err(|_| RedisLimitError::Timeout(self.timeout))?
    }

    pub async fn admit(&self, ask: &Ask) -> Result<Decision, RedisLimitError> {
        let tokens_costs = format!("{}:c", ask.tokens_key);
        let answer: Answer = self
            .bounded(async {
                let mut conn = self.connection().await?;
                Ok(self
                    .admit
                    .key(&ask.requests_key)
                    .key(&ask.tokens_key)
                    .key(&tokens_costs)
                    .key(&ask.concurrency_key)
                    .arg(&ask.id)
                    .arg(WINDOW_MS)
                    .arg(ask.requests_limit)
                    .arg(ask.tokens_limit)
                    .arg(ask.tokens)
                    .arg(ask.concurrency_limit)
                    .arg(LEASE_MS)
                    .invoke_async(&mut conn)
                    .await?)
            })
            .await?;
        let (refused, retry, requests_used, requests_reset, tokens_used, tokens_reset) = answer;
        let refused = match refused.as_str() {
            "" => None,
            "requests" => Some(Refused::Requests),
            "tokens" => Some(Refused::Tokens),
            "too_large" => Some(Refused::TokensTooLarge),
            "concurrency" => Some(Refused::Concurrency),
            _ => return Err(RedisLimitError::Answer),
        };
        let state = |limit: u64, used: i64, reset: i64| WindowState {
            limit,
            remaining: limit.saturating_sub(used.max(0) as u64),
            reset_ms: reset.max(0) as u64,
        };
        Ok(Decision {
            refused,
            retry_after_ms: (retry >= 0).then_some(retry as u64),
            requests: state(ask.requests_limit, requests_used, requests_reset),
            tokens: state(ask.tokens_limit, tokens_used, tokens_reset),
        })
    }

    pub async fn settle(&self, ask: &Ask, tokens: Option<u64>) -> Result<(), RedisLimitError> {
        let tokens_costs = format!("{}:c", ask.tokens_key);
        self.bounded(async {
            let mut conn = self.connection().await?;
            let _: i64 = self
                .settle
                .key(&ask.tokens_key)
                .key(&tokens_costs)
                .key(&ask.concurrency_key)
                .arg(&ask.id)
                .arg(tokens.map_or(-1, |t| t as i64))
                .invoke_async(&mut conn)
                .await?;
            Ok(())
        })
        .await
    }
}
