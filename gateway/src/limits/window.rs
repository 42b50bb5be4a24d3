//! The in-process limiter: the same sliding-window log and lease set as the Redis scripts, kept
//! in one mutex-guarded map. Used when no `redis_url` is configured, and per replica when Redis
//! is down and `rate_limit_redis_failure = "local"`.
//!
//! Every function takes the time (`now_ms`) as an argument, so tests drive the clock.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use super::{Ask, Decision, Refused, WindowState, LEASE_MS, WINDOW_MS};

/// The requests (or tokens) counted in the last minute on one counter: entries oldest first,
/// each with its reservation id and cost, and their sum.
#[derive(Debug, Default)]
struct Log {
    entries: VecDeque<Entry>,
    total: u64,
}

#[derive(Debug)]
struct Entry {
    at_ms: i64,
    id: String,
    cost: u64,
}

impl Log {
    /// Drops the entries that left the window.
    fn trim(&mut self, now_ms: i64) {
        let cutoff = now_ms - WINDOW_MS;
        while self.entries.front().is_some_and(|e| e.at_ms <= cutoff) {
            if let Some(e) = self.entries.pop_front() {
                self.total -= e.cost;
            }
        }
    }

    /// Milliseconds until every counted entry has left the window (the window is back to its
    /// initial state), 0 when empty.
    fn reset_ms(&self, now_ms: i64) -> u64 {
        self.entries
            .back()
            .map_or(0, |e| (e.at_ms + WINDOW_MS - now_ms).max(0) as u64)
    }

    /// Milliseconds until `cost` more fits under `limit`: until the oldest entries whose costs
    /// add up to the excess have left the window. `None` when it never fits.
    fn wait_ms(&self, now_ms: i64, limit: u64, cost: u64) -> Option<u64> {
        if cost > limit {
            return None;
        }
        let excess = (self.total + cost).saturating_sub(limit);
        if excess == 0 {
            return Some(0);
        }
        let mut freed = 0;
        for e in &self.entries {
            freed += e.cost;
            if freed >= excess {
                return Some((e.at_ms + WINDOW_MS - now_ms).max(1) as u64);
            }
        }
        None
    }

    fn push(&mut self, now_ms: i64, id: &str, cost: u64) {
        self.entries.push_back(Entry {
            at_ms: now_ms,
            id: id.to_owned(),
            cost,
        });
        self.total += cost;
    }

    /// Sets the cost of reservation `id` (when it is still in the window). Searched newest
    /// first: a request settles soon after it was admitted, so its entry is near the end of a
    /// log that holds a minute of traffic.
    fn correct(&mut self, id: &str, cost: u64) {
        if let Some(e) = self.entries.iter_mut().rev().find(|e| e.id == id) {
            self.total = self.total - e.cost + cost;
            e.cost = cost;
        }
    }

    fn state(&self, now_ms: i64, limit: u64) -> WindowState {
        WindowState {
            limit,
            remaining: limit.saturating_sub(self.total),
            reset_ms: self.reset_ms(now_ms),
        }
    }
}

#[derive(Default)]
struct State {
    logs: HashMap<String, Log>,
    /// Concurrency counter → reservation id → lease expiry.
    leases: HashMap<String, HashMap<String, i64>>,
    admissions: u64,
}

/// Sweep idle counters out of the map every this many admissions.
const SWEEP_EVERY: u64 = 1024;

/// The in-process limiter.
#[derive(Default)]
pub struct LocalLimiter {
    state: Mutex<State>,
}

impl LocalLimiter {
    /// Counts the request on every counter it touches, or on none when one refuses.
    pub fn admit(&self, now_ms: i64, ask: &Ask) -> Decision {
        let mut guard = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let state = &mut *guard;
        state.admissions += 1;
        if state.admissions.is_multiple_of(SWEEP_EVERY) {
            sweep(state, now_ms);
        }
        let requests = state.logs.entry(ask.requests_key.clone()).or_default();
        requests.trim(now_ms);
        let requests_wait = requests.wait_ms(now_ms, ask.requests_limit, 1);
        let tokens = state.logs.entry(ask.tokens_key.clone()).or_default();
        tokens.trim(now_ms);
        let tokens_wait = tokens.wait_ms(now_ms, ask.tokens_limit, ask.tokens);
        let leases = state.leases.entry(ask.concurrency_key.clone()).or_default();
        leases.retain(|_, expiry| *expiry > now_ms);
        let in_flight = leases.len() as u64;

        let refused = if requests_wait != Some(0) {
            Some((Refused::Requests, requests_wait))
        } else if ask.tokens > ask.tokens_limit {
            Some((Refused::TokensTooLarge, None))
        } else if tokens_wait != Some(0) {
            Some((Refused::Tokens, tokens_wait))
        } else if in_flight >= ask.concurrency_limit {
            Some((Refused::Concurrency, Some(1000)))
        } else {
            None
        };
        if refused.is_none() {
            leases.insert(ask.id.clone(), now_ms + LEASE_MS);
            if let Some(log) = state.logs.get_mut(&ask.requests_key) {
                log.push(now_ms, &ask.id, 1);
            }
            if ask.tokens > 0 {
                if let Some(log) = state.logs.get_mut(&ask.tokens_key) {
                    log.push(now_ms, &ask.id, ask.tokens);
                }
            }
        }
        let window = |key: &str, limit: u64| {
            state
                .logs
                .get(key)
                .map(|l| l.state(now_ms, limit))
                .unwrap_or(WindowState {
                    limit,
                    remaining: limit,
                    reset_ms: 0,
                })
        };
        Decision {
            refused: refused.map(|(why, _)| why),
            retry_after_ms: refused.and_then(|(_, wait)| wait),
            requests: window(&ask.requests_key, ask.requests_limit),
            tokens: window(&ask.tokens_key, ask.tokens_limit),
        }
    }

    /// Corrects reservation `id` on `tokens_key` to `tokens` (when given) and ends its lease.
    pub fn settle(&self, tokens_key: &str, concurrency_key: &str, id: &str, tokens: Option<u64>) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(tokens) = tokens {
            if let Some(log) = state.logs.get_mut(tokens_key) {
                log.correct(id, tokens);
            }
        }
        if let Some(leases) = state.leases.get_mut(concurrency_key) {
            leases.remove(id);
        }
    }

    /// Tokens counted now on `tokens_key` (for tests and diagnostics).
    pub fn tokens_counted(&self, now_ms: i64, key: &str) -> u64 {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.logs.get_mut(key).map_or(0, |l| {
            l.trim(now_ms);
            l.total
        })
    }

    /// Requests holding a lease on `key` now.
    pub fn in_flight(&self, now_ms: i64, key: &str) -> usize {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state
            .leases
            .get(key)
            .map_or(0, |l| l.values().filter(|&&e| e > now_ms).count())
    }
}

/// Forgets counters with nothing left in their window, so idle keys cost no memory.
fn sweep(state: &mut State, now_ms: i64) {
    state.logs.retain(|_, log| {
        log.trim(now_ms);
        !log.entries.is_empty()
    });
    state.leases.retain(|_, leases| {
        leases.retain(|_, expiry| *expiry > now_ms);
        !leases.is_empty()
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ask(id: &str, tokens: u64) -> Ask {
        Ask {
            id: id.to_owned(),
            requests_key: "k:1:rpm".into(),
            requests_limit: 3,
            tokens_key: "k:1:tpm".into(),
            tokens_limit: 100,
            tokens,
            concurrency_key: "k:1:con".into(),
            concurrency_limit: 10,
        }
    }

    #[test]
    fn a_full_window_refuses_until_its_oldest_request_leaves() {
        let l = LocalLimiter::default();
        for (i, t) in [0, 10_000, 20_000].into_iter().enumerate() {
            let d = l.admit(t, &ask(&format!("r{i}"), 0));
            assert_eq!(d.refused, None);
            assert_eq!(d.requests.remaining, 2 - i as u64);
        }
        let d = l.admit(30_000, &ask("r3", 0));
        assert_eq!(d.refused, Some(Refused::Requests));
        assert_eq!(d.retry_after_ms, Some(30_000), "the first leaves at 60 s");
        assert_eq!(d.requests.remaining, 0);
        assert_eq!(d.requests.reset_ms, 50_000, "the last leaves at 80 s");
        // Refusals are not counted: one slot frees exactly when the first request leaves.
        assert_eq!(
            l.admit(59_999, &ask("r4", 0)).refused,
            Some(Refused::Requests)
        );
        assert_eq!(l.admit(60_000, &ask("r5", 0)).refused, None);
        assert_eq!(
            l.admit(60_001, &ask("r6", 0)).refused,
            Some(Refused::Requests)
        );
    }

    #[test]
    fn tokens_are_reserved_and_corrected_to_the_real_count() {
        let l = LocalLimiter::default();
        assert_eq!(l.admit(0, &ask("a", 60)).refused, None);
        let d = l.admit(1, &ask("b", 60));
        assert_eq!(d.refused, Some(Refused::Tokens));
        assert_eq!(d.retry_after_ms, Some(59_999));
        assert_eq!(d.tokens.remaining, 40);
        // The request used 15 tokens in the end: the other 45 come back at once.
        l.settle("k:1:tpm", "k:1:con", "a", Some(15));
        assert_eq!(l.tokens_counted(2, "k:1:tpm"), 15);
        let d = l.admit(2, &ask("b", 60));
        assert_eq!(d.refused, None);
        assert_eq!(d.tokens.remaining, 25);
        let d = l.admit(3, &ask("c", 101));
        assert_eq!(d.refused, Some(Refused::TokensTooLarge));
        assert_eq!(d.retry_after_ms, None, "waiting never helps");
    }

    #[test]
    fn a_refused_dimension_counts_nothing_on_the_others() {
        let l = LocalLimiter::default();
        assert_eq!(l.admit(0, &ask("a", 90)).refused, None);
        assert_eq!(l.admit(1, &ask("b", 20)).refused, Some(Refused::Tokens));
        let d = l.admit(2, &ask("c", 10));
        assert_eq!(d.refused, None);
        assert_eq!(
            d.requests.remaining, 1,
            "the refused request took no request slot"
        );
    }

    #[test]
    fn concurrency_is_a_lease_released_at_the_end() {
        let l = LocalLimiter::default();
        let mut a = ask("a", 0);
        a.concurrency_limit = 1;
        a.requests_limit = 100;
        assert_eq!(l.admit(0, &a).refused, None);
        a.id = "b".into();
        assert_eq!(l.admit(1, &a).refused, Some(Refused::Concurrency));
        assert_eq!(l.in_flight(1, "k:1:con"), 1);
        l.settle("k:1:tpm", "k:1:con", "a", None);
        assert_eq!(l.in_flight(2, "k:1:con"), 0);
        assert_eq!(l.admit(2, &a).refused, None);
        // A lease that is never released (a crashed request) expires.
        a.id = "c".into();
        assert_eq!(l.admit(3, &a).refused, Some(Refused::Concurrency));
        assert_eq!(l.admit(2 + LEASE_MS, &a).refused, None);
    }

    #[test]
    fn idle_counters_are_swept() {
        let l = LocalLimiter::default();
        for i in 0..SWEEP_EVERY - 1 {
            let mut a = ask(&format!("r{i}"), 1);
            a.requests_key = format!("k:{i}:rpm");
            l.admit(0, &a);
        }
        l.settle("k:1:tpm", "k:1:con", "r0", None);
        assert!(l.state.lock().unwrap().logs.len() > 1000);
        l.admit(WINDOW_MS + LEASE_MS, &ask("late", 1));
        let state = l.state.lock().unwrap();
        assert!(state.logs.len() <= 2, "{}", state.logs.len());
    }
}
