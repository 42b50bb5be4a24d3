//! Block tables of sequences on top of the block pool: prefix-cache lookups, slot allocation
//! for the tokens of a step, forking for `n > 1`, and freeing.
//!
//! Blocks enter the prefix cache only once their K/V has been computed (`commit_full_blocks`
//! after a successful step). A step that fails therefore never leaves a cached block with
//! garbage in it.

use std::collections::HashMap;

use super::block_hash::BlockHash;
use super::block_pool::{BlockId, BlockPool};
use crate::request::SeqId;

#[derive(Clone, Debug, Default)]
struct SeqBlocks {
    blocks: Vec<BlockId>,
    /// Leading blocks already registered in the prefix cache.
    num_committed: usize,
}

/// A prefix-cache hit: blocks to share and the number of tokens they hold.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CachedPrefix {
    pub blocks: Vec<BlockId>,
    pub num_tokens: usize,
}

#[derive(Clone, Debug)]
pub struct KvCacheManager {
    pool: BlockPool,
    block_size: usize,
    tables: HashMap<SeqId, SeqBlocks>,
    prefix_cache_queries: u64,
    prefix_cache_hits: u64,
}

impl KvCacheManager {
    pub fn new(num_blocks: usize, block_size: usize, enable_caching: bool) -> Self {
        Self {
            pool: BlockPool::new(num_blocks, enable_caching),
            block_size,
            tables: HashMap::new(),
            prefix_cache_queries: 0,
            prefix_cache_hits: 0,
        }
    }

    pub fn pool(&self) -> &BlockPool {
        &self.pool
    }

    pub fn block_size(&self) -> usize {
        self.block_size
    }

    pub fn usage(&self) -> f64 {
        self.pool.usage()
    }

    /// Tokens looked up in the prefix cache, and tokens found (vLLM's
    /// `prefix_cache_queries` / `prefix_cache_hits`).
    pub fn prefix_cache_stats(&self) -> (u64, u64) {
        (self.prefix_cache_queries, self.prefix_cache_hits)
    }

    pub fn block_table(&self, seq: SeqId) -> &[BlockId] {
        self.tables.get(&seq).map_or(&[], |t| &t.blocks)
    }

    pub fn num_sequences(&self) -> usize {
        self.tables.len()
    }

    /// Blocks needed to hold `num_tokens` tokens.
    pub fn blocks_for(&self, num_tokens: usize) -> usize {
        num_tokens.div_ceil(self.block_size)
    }

    /// The longest cached prefix of a sequence of `num_tokens` tokens whose full blocks hash
    /// to `hashes`. At least the last token is left to compute: its logits are needed.
    /// Pure lookup; `record_prefix_lookup` counts it once the sequence is really admitted.
    pub fn find_cached_prefix(&self, hashes: &[BlockHash], num_tokens: usize) -> CachedPrefix {
        let max_blocks = num_tokens.saturating_sub(1) / self.block_size;
        let mut blocks = Vec::new();
        for h in hashes.iter().take(max_blocks) {
            match self.pool.get_cached_block(h) {
                Some(b) => blocks.push(b),
                None => break,
            }
        }
        let hit = blocks.len() * self.block_size;
        CachedPrefix {
            blocks,
            num_tokens: hit,
        }
    }

    /// Counts a lookup of `queried` tokens of which `hit` were found.
    pub fn record_prefix_lookup(&mut self, queried: usize, hit: usize) {
        self.prefix_cache_queries += queried as u64;
        self.prefix_cache_hits += hit as u64;
    }

    /// Makes room for `num_new` more tokens after `num_computed` (which includes `cached`
    /// when the sequence starts). Takes the cached blocks' references. Returns false, having
    /// taken nothing, when the pool cannot cover it.
    pub fn allocate_slots(
        &mut self,
        seq: SeqId,
        cached: &CachedPrefix,
        num_computed: usize,
        num_new: usize,
    ) -> bool {
        let have = self.tables.get(&seq).map_or(0, |t| t.blocks.len()) + cached.blocks.len();
        let need = self.blocks_for(num_computed + num_new).saturating_sub(have);
        // A free cached block leaves the free queue when we take it, so it costs a free slot.
        let reclaimed = cached
            .blocks
            .iter()
            .filter(|&&b| self.pool.ref_count(b) == 0)
            .count();
        if need + reclaimed > self.pool.num_free_blocks() {
            return false;
        }
        self.pool.touch(&cached.blocks);
        let Some(new_blocks) = self.pool.allocate(need) else {
            // Unreachable after the check above; undo the touch to stay consistent anyway.
            let mut rev = cached.blocks.clone();
            rev.reverse();
            self.pool.free(&rev);
            return false;
        };
        let table = self.tables.entry(seq).or_default();
        if table.blocks.is_empty() {
            table.num_committed = cached.blocks.len();
        }
        table.blocks.extend_from_slice(&cached.blocks);
        table.blocks.extend(new_blocks);
        true
    }

    /// Registers the sequence's full, computed blocks in the prefix cache.
    pub fn commit_full_blocks(&mut self, seq: SeqId, hashes: &[BlockHash], num_computed: usize) {
        let Some(table) = self.tables.get_mut(&seq) else {
            return;
        };
        let full = (num_computed / self.block_size)
            .min(hashes.len())
            .min(table.blocks.len());
        let start = table.num_committed.min(full);
        for (&block, &hash) in table.blocks[start..full].iter().zip(&hashes[start..full]) {
            self.pool.cache_block(block, hash);
        }
        table.num_committed = table.num_committed.max(full);
    }

    /// Gives `child` the first `num_blocks` blocks of `parent` (shared, one more reference).
    /// Only full blocks may be shared: a partial block would be written by both.
    pub fn fork(&mut self, parent: SeqId, child: SeqId, num_blocks: usize) {
        let (blocks, committed) = match self.tables.get(&parent) {
            Some(t) => {
                let k = num_blocks.min(t.blocks.len());
                (t.blocks[..k].to_vec(), t.num_committed.min(k))
            }
            None => (Vec::new(), 0),
        };
        self.pool.touch(&blocks);
        let t = self.tables.entry(child).or_default();
        debug_assert!(
            t.blocks.is_empty(),
            "fork into a sequence that holds blocks"
        );
        t.blocks = blocks;
        t.num_committed = committed;
    }

    /// Releases every block of the sequence, tail first (see `BlockPool::free`).
    pub fn free(&mut self, seq: SeqId) {
        if let Some(mut t) = self.tables.remove(&seq) {
            t.blocks.reverse();
            self.pool.free(&t.blocks);
        }
    }

    pub fn reset_prefix_cache(&mut self) {
        self.pool.reset_prefix_cache();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv::block_hash::hash_prompt_blocks;

    #[test]
    fn second_prompt_hits_computed_prefix_only() {
        let mut m = KvCacheManager::new(8, 4, true);
        let prompt: Vec<u32> = (0..10).collect();
        let hashes = hash_prompt_blocks(&prompt, 4, b"t");
        let miss = m.find_cached_prefix(&hashes, 10);
        assert_eq!(miss.num_tokens, 0);
        assert!(m.allocate_slots(1, &miss, 0, 10));
        assert_eq!(m.block_table(1).len(), 3);
        // Not committed yet: nothing to hit.
        assert_eq!(m.find_cached_prefix(&hashes, 10).num_tokens, 0);
        m.commit_full_blocks(1, &hashes, 10);
        let hit = m.find_cached_prefix(&hashes, 10);
        assert_eq!(hit.num_tokens, 8);
        assert!(m.allocate_slots(2, &hit, 8, 2));
        m.record_prefix_lookup(10, hit.num_tokens);
        assert_eq!(m.block_table(2)[..2], m.block_table(1)[..2]);
        assert_ne!(m.block_table(2)[2], m.block_table(1)[2]);
        assert_eq!(m.prefix_cache_stats(), (10, 8));
        m.free(1);
        m.free(2);
        assert_eq!(m.pool().num_free_blocks(), 8);
        // Still cached after both finished; a full-length prompt keeps its last token to compute.
        assert_eq!(m.find_cached_prefix(&hashes[..2], 8).num_tokens, 4);
        m.pool().check_invariants().unwrap();
    }

    #[test]
    fn allocation_that_does_not_fit_takes_nothing() {
        let mut m = KvCacheManager::new(3, 4, true);
        assert!(m.allocate_slots(1, &CachedPrefix::default(), 0, 8));
        assert!(!m.allocate_slots(2, &CachedPrefix::default(), 0, 8));
        assert_eq!(m.pool().num_free_blocks(), 1);
        assert!(m.allocate_slots(1, &CachedPrefix::default(), 8, 1));
        assert_eq!(m.pool().num_free_blocks(), 0);
        m.fork(1, 3, 2);
        assert_eq!(m.pool().ref_count(m.block_table(1)[0]), 2);
        m.free(1);
        assert_eq!(m.pool().num_free_blocks(), 1);
        m.free(3);
        assert_eq!(m.pool().num_free_blocks(), 3);
        m.pool().check_invariants().unwrap();
    }
}
