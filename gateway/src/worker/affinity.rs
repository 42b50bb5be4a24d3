//! Prefix affinity: which worker last got each prompt prefix, so that a tenant's repeated
//! prefix (a system prompt, a conversation so far, a few-shot preamble) goes where its KV blocks
//! are cached.
//!
//! A prompt is cut into blocks of the workers' KV block size; block `i`'s key hashes block
//! `i - 1`'s key with block `i`'s token ids, starting from the tenant and the cache salt. So a
//! key names a whole prefix, the same prefix of two tenants never shares a key (as the workers'
//! own prefix cache never shares blocks across tenants), and the longest prefix a worker has
//! seen is the last of the request's keys found in the table.

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::sync::Mutex;

/// Tokens per block: the scheduler's KV block size.
pub const BLOCK_TOKENS: usize = 16;

/// Prefix keys remembered per pool (oldest forgotten first): a few million cached tokens.
const CAPACITY: usize = 1 << 18;

/// The keys of a prompt's full blocks, each naming the prefix up to its block's end.
pub fn prefix_keys(tenant: &str, salt: Option<&str>, tokens: &[u32]) -> Vec<u64> {
    let mut seed = DefaultHasher::new();
    tenant.hash(&mut seed);
    salt.hash(&mut seed);
    let mut key = seed.finish();
    tokens
        .chunks_exact(BLOCK_TOKENS)
        .map(|block| {
            let mut h = DefaultHasher::new();
            key.hash(&mut h);
            block.hash(&mut h);
            key = h.finish();
            key
        })
        .collect()
}

/// The prefixes a pool's workers were last sent.
#[derive(Default)]
pub struct Affinity {
    table: Mutex<Table>,
}

#[derive(Default)]
struct Table {
    owner: HashMap<u64, usize>,
    order: VecDeque<u64>,
}

impl Affinity {
    /// The worker that was last sent the longest of these prefixes, and how many blocks long
    /// that prefix is.
    pub fn lookup(&self, keys: &[u64]) -> Option<(usize, usize)> {
        let table = self.table.lock().unwrap();
        keys.iter()
            .enumerate()
            .rev()
            .find_map(|(i, key)| table.owner.get(key).map(|&w| (w, i + 1)))
    }

    /// `worker` now holds these prefixes.
    pub fn record(&self, keys: &[u64], worker: usize) {
        let mut table = self.table.lock().unwrap();
        for &key in keys {
            if table.owner.insert(key, worker).is_none() {
                table.order.push_back(key);
            }
        }
        while table.order.len() > CAPACITY {
            if let Some(old) = table.order.pop_front() {
                table.owner.remove(&old);
            }
        }
    }

    /// `worker` failed: whatever it had cached may be gone.
    pub fn forget(&self, worker: usize) {
        let mut table = self.table.lock().unwrap();
        table.owner.retain(|_, w| *w != worker);
        let Table { owner, order } = &mut *table;
        order.retain(|key| owner.contains_key(key));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_name_whole_prefixes_per_tenant() {
        let tokens: Vec<u32> = (0..40).collect();
        let a = prefix_keys("org_a", None, &tokens);
        assert_eq!(a.len(), 2, "two full blocks; the rest is not a block");
        let longer: Vec<u32> = (0..50).collect();
        assert_eq!(prefix_keys("org_a", None, &longer)[..2], a[..]);
        let mut changed = tokens.clone();
        changed[3] = 999;
        let c = prefix_keys("org_a", None, &changed);
        assert!(
            c[0] != a[0] && c[1] != a[1],
            "a change early changes every later key"
        );
        assert_ne!(prefix_keys("org_b", None, &tokens)[0], a[0]);
        assert_ne!(prefix_keys("org_a", Some("s"), &tokens)[0], a[0]);
    }

    #[test]
    fn the_longest_known_prefix_wins_and_failures_forget() {
        let affinity = Affinity::default();
        let short: Vec<u32> = (0..16).collect();
        let long: Vec<u32> = (0..48).collect();
        affinity.record(&prefix_keys("t", None, &short), 0);
        affinity.record(&prefix_keys("t", None, &long[..32]), 1);
        assert_eq!(
            affinity.lookup(&prefix_keys("t", None, &long)),
            Some((1, 2))
        );
        assert_eq!(affinity.lookup(&prefix_keys("u", None, &long)), None);
        affinity.forget(1);
        assert_eq!(affinity.lookup(&prefix_keys("t", None, &long)), None);
        affinity.record(&prefix_keys("t", None, &short), 0);
        assert_eq!(
            affinity.lookup(&prefix_keys("t", None, &long)),
            Some((0, 1))
        );
    }
}
