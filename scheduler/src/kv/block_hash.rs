//! Names a full block by its tokens and everything before it, for automatic prefix caching.
//!
//! A block's hash covers (parent block's hash, its token ids, extra keys). Chaining makes a
//! hit on block `i` imply a hit on the whole prefix `0..=i`. The first block's extra keys hold
//! the tenant and its cache salt, and the chain carries them to every later block, so two
//! tenants never share (or can time) each other's cached blocks.
//!
//! SHA-256 rather than a fast 64-bit hash: a tenant controls its prompt bytes, and a birthday
//! collision on 64 bits is within an attacker's reach offline; a collision would hand one
//! prompt another prompt's KV.

use sha2::{Digest, Sha256};

/// The hash of one full block and its whole prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlockHash(pub [u8; 32]);

/// Hashes one full block given its parent's hash (`None` for the first block).
pub fn hash_block(parent: Option<&BlockHash>, tokens: &[u32], extra_keys: &[u8]) -> BlockHash {
    let mut h = Sha256::new();
    match parent {
        Some(p) => {
            h.update([1u8]);
            h.update(p.0);
        }
        None => h.update([0u8]),
    }
    h.update((tokens.len() as u32).to_le_bytes());
    for t in tokens {
        h.update(t.to_le_bytes());
    }
    // Length-prefixed so that extra keys can never be confused with token bytes.
    h.update((extra_keys.len() as u32).to_le_bytes());
    h.update(extra_keys);
    BlockHash(h.finalize().into())
}

/// Extends `hashes` with the hashes of every full block of `tokens` not yet hashed.
/// `first_block_keys` go into the first block only (the chain carries them on).
pub fn extend_block_hashes(
    hashes: &mut Vec<BlockHash>,
    tokens: &[u32],
    block_size: usize,
    first_block_keys: &[u8],
) {
    while (hashes.len() + 1) * block_size <= tokens.len() {
        let i = hashes.len();
        let chunk = &tokens[i * block_size..(i + 1) * block_size];
        let keys: &[u8] = if i == 0 { first_block_keys } else { &[] };
        let h = hash_block(hashes.last(), chunk, keys);
        hashes.push(h);
    }
}

/// Hashes of every full block of a prompt.
pub fn hash_prompt_blocks(
    tokens: &[u32],
    block_size: usize,
    first_block_keys: &[u8],
) -> Vec<BlockHash> {
    let mut v = Vec::with_capacity(tokens.len() / block_size.max(1));
    extend_block_hashes(&mut v, tokens, block_size, first_block_keys);
    v
}

/// The first block's extra keys: the tenant always (isolation holds even when the caller
/// forgets a salt), plus an optional server-set salt (e.g. rotated to drop a tenant's cache).
pub fn tenant_cache_keys(tenant: &str, cache_salt: Option<&str>) -> Vec<u8> {
    let mut k = Vec::with_capacity(tenant.len() + 16);
    k.extend_from_slice(&(tenant.len() as u32).to_le_bytes());
    k.extend_from_slice(tenant.as_bytes());
    if let Some(s) = cache_salt {
        k.extend_from_slice(&(s.len() as u32).to_le_bytes());
        k.extend_from_slice(s.as_bytes());
    }
    k
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_depends_on_prefix_and_keys() {
        let a = hash_prompt_blocks(&[1, 2, 3, 4, 5, 6, 7, 8, 9], 4, b"t");
        assert_eq!(a.len(), 2);
        let b = hash_prompt_blocks(&[9, 2, 3, 4, 5, 6, 7, 8], 4, b"t");
        assert_ne!(
            a[1], b[1],
            "a different first block changes every later hash"
        );
        let c = hash_prompt_blocks(&[1, 2, 3, 4, 5, 6, 7, 8], 4, b"u");
        assert_ne!(a[0], c[0]);
        assert_ne!(
            a[1], c[1],
            "the tenant key reaches later blocks through the chain"
        );
        let d = hash_prompt_blocks(&[1, 2, 3, 4, 5, 6, 7, 8], 4, b"t");
        assert_eq!(a, d);
    }

    #[test]
    fn tenant_keys_are_unambiguous() {
        assert_ne!(
            tenant_cache_keys("ab", Some("c")),
            tenant_cache_keys("a", Some("bc"))
        );
        assert_ne!(
            tenant_cache_keys("a", None),
            tenant_cache_keys("a", Some(""))
        );
    }
}
