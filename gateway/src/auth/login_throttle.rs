//! Slows password guessing without handing attackers a way to lock users out.
//!
//! Failures are counted per account *and client address*: after `MAX_FAILURES` wrong passwords
//! for one email from one address within `WINDOW`, that address gets 429 for that email until
//! the window has passed, while the owner, signing in from anywhere else, is not affected. An
//! address that fails `MAX_ADDRESS_FAILURES` times over any accounts within the window (one
//! guess against many accounts: credential stuffing) is refused for every account. A
//! successful login clears its account-and-address count, not the address's total (so logging
//! in to one's own account does not buy more guesses at others).
//!
//! Kept in process; with several replicas each keeps its own counts.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Wrong passwords for one account from one address before that address waits.
pub const MAX_FAILURES: u32 = 10;
/// Wrong passwords from one address, over every account, before it waits.
pub const MAX_ADDRESS_FAILURES: u32 = 100;
pub const WINDOW: Duration = Duration::from_secs(15 * 60);
/// Above this many tracked keys, expired entries are dropped on the next failure.
const PRUNE_ABOVE: usize = 10_000;

/// Failures within a window that started at the instant.
type Count = (u32, Instant);

#[derive(Default)]
pub struct LoginThrottle {
    state: Mutex<Counts>,
}

#[derive(Default)]
struct Counts {
    /// `(email, address)` → failures.
    pairs: HashMap<(String, String), Count>,
    /// Address → failures over every account.
    addresses: HashMap<String, Count>,
}

fn locked(count: Option<&Count>, max: u32) -> Option<u64> {
    match count {
        Some((n, since)) if *n >= max && since.elapsed() < WINDOW => {
            Some((WINDOW - since.elapsed()).as_secs().max(1))
        }
        _ => None,
    }
}

fn bump<K: std::hash::Hash + Eq>(map: &mut HashMap<K, Count>, key: K) {
    if map.len() > PRUNE_ABOVE {
        map.retain(|_, (_, since)| since.elapsed() < WINDOW);
    }
    let entry = map.entry(key).or_insert((0, Instant::now()));
    if entry.1.elapsed() >= WINDOW {
        *entry = (0, Instant::now());
    }
    entry.0 += 1;
}

impl LoginThrottle {
    fn counts(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `Err(seconds to wait)` while `address` may not try `email`. `address` is the client's
    /// (an empty one counts as one address).
    pub fn check(&self, email: &str, address: &str) -> Result<(), u64> {
        let counts = self.counts();
        let pair = counts.pairs.get(&(email.to_owned(), address.to_owned()));
        match locked(pair, MAX_FAILURES)
            .or_else(|| locked(counts.addresses.get(address), MAX_ADDRESS_FAILURES))
        {
            Some(wait) => Err(wait),
            None => Ok(()),
        }
    }

    pub fn record_failure(&self, email: &str, address: &str) {
        let mut counts = self.counts();
        bump(&mut counts.pairs, (email.to_owned(), address.to_owned()));
        bump(&mut counts.addresses, address.to_owned());
    }

    pub fn clear(&self, email: &str, address: &str) {
        self.counts()
            .pairs
            .remove(&(email.to_owned(), address.to_owned()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_is_locked_out_of_one_account_and_the_owner_elsewhere_is_not() {
        let t = LoginThrottle::default();
        for _ in 0..MAX_FAILURES - 1 {
            t.record_failure("a@x.io", "203.0.113.9");
        }
        assert!(t.check("a@x.io", "203.0.113.9").is_ok());
        t.record_failure("a@x.io", "203.0.113.9");
        let wait = t.check("a@x.io", "203.0.113.9").unwrap_err();
        assert!(wait > 0 && wait <= WINDOW.as_secs());
        assert!(
            t.check("a@x.io", "198.51.100.1").is_ok(),
            "the owner elsewhere"
        );
        assert!(t.check("b@x.io", "203.0.113.9").is_ok(), "other accounts");
        t.clear("a@x.io", "203.0.113.9");
        assert!(t.check("a@x.io", "203.0.113.9").is_ok());
    }

    #[test]
    fn one_address_guessing_across_many_accounts_is_stopped() {
        let t = LoginThrottle::default();
        for i in 0..MAX_ADDRESS_FAILURES {
            let email = format!("user{i}@x.io");
            assert!(t.check(&email, "203.0.113.9").is_ok());
            t.record_failure(&email, "203.0.113.9");
            // Logging in to an account of its own does not reset the address's total.
            t.clear(&email, "203.0.113.9");
        }
        assert!(t.check("fresh@x.io", "203.0.113.9").is_err());
        assert!(t.check("fresh@x.io", "198.51.100.1").is_ok());
    }
}
