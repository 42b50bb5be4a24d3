//! The arena of KV blocks: ref counts, the free queue, and the prefix cache's hash map.
//!
//! A block is in exactly one of three states: in use (ref count > 0, not in the free queue),
//! free and cached (ref count 0, in the queue, its hash in the map: a later prompt with the same
//! prefix can take it back), or free and empty (ref count 0, in the queue, no hash). Allocation
//! pops the queue's front and evicts whatever hash that block still carried.

use std::collections::HashMap;

use super::block_hash::BlockHash;
use super::free_block_queue::FreeBlockQueue;

/// Index of a block in the engine's KV cache.
pub type BlockId = u32;

#[derive(Clone, Debug)]
pub struct BlockPool {
    ref_cnt: Vec<u32>,
    hash: Vec<Option<BlockHash>>,
    free: FreeBlockQueue,
    cached: HashMap<BlockHash, BlockId>,
    enable_caching: bool,
    num_evictions: u64,
}

impl BlockPool {
    pub fn new(num_blocks: usize, enable_caching: bool) -> Self {
        Self {
            ref_cnt: vec![0; num_blocks],
            hash: vec![None; num_blocks],
            free: FreeBlockQueue::new(num_blocks),
            cached: HashMap::new(),
            enable_caching,
            num_evictions: 0,
        }
    }

    pub fn num_blocks(&self) -> usize {
        self.ref_cnt.len()
    }

    /// Blocks that an allocation can take (empty ones and evictable cached ones).
    pub fn num_free_blocks(&self) -> usize {
        self.free.len()
    }

    /// Fraction of blocks in use, as vLLM's `kv_cache_usage_perc` (0.0..=1.0).
    pub fn usage(&self) -> f64 {
        let n = self.num_blocks();
        if n == 0 {
            return 0.0;
        }
        1.0 - self.free.len() as f64 / n as f64
    }

    pub fn ref_count(&self, block: BlockId) -> u32 {
        self.ref_cnt[block as usize]
    }

    pub fn block_hash(&self, block: BlockId) -> Option<BlockHash> {
        self.hash[block as usize]
    }

    pub fn num_cached_blocks(&self) -> usize {
        self.cached.len()
    }

    pub fn num_evictions(&self) -> u64 {
        self.num_evictions
    }

    /// The block holding this prefix, if it is still cached.
    pub fn get_cached_block(&self, hash: &BlockHash) -> Option<BlockId> {
        if !self.enable_caching {
            return None;
        }
        self.cached.get(hash).copied()
    }

    /// Takes `n` blocks for exclusive use, evicting cached prefixes from the queue's front.
    /// `None` (and nothing taken) when fewer than `n` are free.
    pub fn allocate(&mut self, n: usize) -> Option<Vec<BlockId>> {
        if n > self.free.len() {
            return None;
        }
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            let b = self.free.pop_front()?;
            self.evict(b);
            self.ref_cnt[b as usize] = 1;
            out.push(b);
        }
        Some(out)
    }

    /// Takes one more reference on each block (a prefix-cache hit or a forked sequence).
    /// A block that was free leaves the queue, so it can no longer be evicted.
    pub fn touch(&mut self, blocks: &[BlockId]) {
        for &b in blocks {
            let i = b as usize;
            if self.ref_cnt[i] == 0 {
                self.free.remove(b);
            }
            self.ref_cnt[i] += 1;
        }
    }

    /// Drops one reference on each block, in eviction order: the first block to reach zero is
    /// the first to be reused. Callers pass a sequence's blocks last-first, so a prefix's tail
    /// is evicted before its head (the head is the part other prompts share).
    pub fn free(&mut self, blocks: &[BlockId]) {
        for &b in blocks {
            let i = b as usize;
            assert!(self.ref_cnt[i] > 0, "block {b} freed more often than taken");
            self.ref_cnt[i] -= 1;
            if self.ref_cnt[i] == 0 {
                if self.hash[i].is_some() {
                    self.free.push_back(b);
                } else {
                    // Nothing to keep: reuse it before any cached block.
                    self.free.push_front(b);
                }
            }
        }
    }

    /// Registers a full, computed block under its prefix hash. A block already cached, or a
    /// hash already held by another block (the same prefix computed twice at once), is left
    /// as is: the duplicate simply is not shared.
    pub fn cache_block(&mut self, block: BlockId, hash: BlockHash) {
        if !self.enable_caching {
            return;
        }
        let i = block as usize;
        if self.hash[i].is_some() || self.cached.contains_key(&hash) {
            return;
        }
        self.hash[i] = Some(hash);
        self.cached.insert(hash, block);
    }

    /// Drops every cached prefix that is not in use (vLLM's `reset_prefix_cache`).
    pub fn reset_prefix_cache(&mut self) {
        let free: Vec<BlockId> = self.free.iter().collect();
        for b in free {
            self.evict(b);
        }
    }

    fn evict(&mut self, block: BlockId) {
        if let Some(h) = self.hash[block as usize].take() {
            if self.cached.get(&h) == Some(&block) {
                self.cached.remove(&h);
            }
            self.num_evictions += 1;
        }
    }

    /// Checks every invariant that ties ref counts, the free queue and the hash map together.
    pub fn check_invariants(&self) -> Result<(), String> {
        let mut seen = vec![false; self.num_blocks()];
        let mut count = 0;
        for b in self.free.iter() {
            let i = b as usize;
            if seen[i] {
                return Err(format!("block {b} twice in the free queue"));
            }
            seen[i] = true;
            count += 1;
            if self.ref_cnt[i] != 0 {
                return Err(format!(
                    "block {b} is free with ref count {}",
                    self.ref_cnt[i]
                ));
            }
        }
        if count != self.free.len() {
            return Err("free queue length is off".into());
        }
        for (i, &r) in self.ref_cnt.iter().enumerate() {
            if r == 0 && !seen[i] {
                return Err(format!("block {i} has no reference but is not free"));
            }
            if self.free.contains(i as u32) != seen[i] {
                return Err(format!(
                    "block {i}: membership flag disagrees with the list"
                ));
            }
        }
        for (h, &b) in &self.cached {
            if self.hash[b as usize] != Some(*h) {
                return Err(format!("map names block {b} for a hash it does not carry"));
            }
        }
        let hashed = self.hash.iter().filter(|h| h.is_some()).count();
        if hashed != self.cached.len() {
            return Err(format!(
                "{hashed} blocks carry a hash but the map has {}",
                self.cached.len()
            ));
        }
        Ok(())
    }

    /// Free blocks from first to last to be reused (for tests of the eviction order).
    pub fn free_queue_order(&self) -> Vec<BlockId> {
        self.free.iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv::block_hash::hash_block;
    use proptest::prelude::*;

    fn h(i: u32) -> BlockHash {
        hash_block(None, &[i], &[])
    }

    #[test]
    fn cached_blocks_are_evicted_lru_after_empty_ones() {
        let mut p = BlockPool::new(4, true);
        let a = p.allocate(3).unwrap();
        p.cache_block(a[0], h(0));
        p.cache_block(a[1], h(1));
        // Freed last-first: a[2] (no hash) goes to the front, then a[1], a[0] to the back.
        p.free(&[a[2], a[1], a[0]]);
        assert_eq!(p.free_queue_order(), vec![a[2], 3, a[1], a[0]]);
        assert_eq!(p.get_cached_block(&h(0)), Some(a[0]));
        // A hit takes a[0] out of the queue; it survives the next allocations.
        p.touch(&[a[0]]);
        let b = p.allocate(3).unwrap();
        assert_eq!(b, vec![a[2], 3, a[1]]);
        assert_eq!(p.get_cached_block(&h(1)), None, "a[1] was evicted");
        assert_eq!(p.num_evictions(), 1);
        assert!(p.allocate(1).is_none());
        p.check_invariants().unwrap();
    }

    #[test]
    fn caching_off_never_hits() {
        let mut p = BlockPool::new(2, false);
        let a = p.allocate(1).unwrap();
        p.cache_block(a[0], h(0));
        assert_eq!(p.get_cached_block(&h(0)), None);
        p.free(&a);
        p.check_invariants().unwrap();
    }

    #[derive(Clone, Debug)]
    enum Op {
        Allocate(usize),
        Share(usize),
        Free(usize),
        Cache(usize, u32),
        Hit(u32),
        Reset,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (1usize..6).prop_map(Op::Allocate),
            any::<usize>().prop_map(Op::Share),
            any::<usize>().prop_map(Op::Free),
            (any::<usize>(), 0u32..12).prop_map(|(i, k)| Op::Cache(i, k)),
            (0u32..12).prop_map(Op::Hit),
            Just(Op::Reset),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        /// Random allocate/share/free/cache/hit/evict sequences against a model of who holds
        /// which block: ref counts, the free queue and the hash map stay consistent, and the
        /// pool is whole again once every holder lets go.
        #[test]
        fn pool_stays_consistent(ops in prop::collection::vec(op(), 1..200)) {
            let n = 16;
            let mut p = BlockPool::new(n, true);
            // Each holder owns one reference to each of its blocks.
            let mut holders: Vec<Vec<BlockId>> = Vec::new();
            for op in ops {
                match op {
                    Op::Allocate(k) => {
                        let before = p.num_free_blocks();
                        match p.allocate(k) {
                            Some(bs) => {
                                prop_assert_eq!(bs.len(), k);
                                for &b in &bs {
                                    prop_assert_eq!(p.ref_count(b), 1);
                                    prop_assert!(p.block_hash(b).is_none(), "allocated block kept a hash");
                                }
                                holders.push(bs);
                            }
                            None => prop_assert!(before < k),
                        }
                    }
                    Op::Share(i) if !holders.is_empty() => {
                        let bs = holders[i % holders.len()].clone();
                        p.touch(&bs);
                        holders.push(bs);
                    }
                    Op::Free(i) if !holders.is_empty() => {
                        let mut bs = holders.swap_remove(i % holders.len());
                        bs.reverse();
                        p.free(&bs);
                    }
                    Op::Cache(i, k) if !holders.is_empty() => {
                        let bs = &holders[i % holders.len()];
                        let b = bs[k as usize % bs.len()];
                        let had = p.block_hash(b);
                        p.cache_block(b, h(k));
                        match had {
                            // A block keeps the hash it was first cached under.
                            Some(old) => prop_assert_eq!(p.block_hash(b), Some(old)),
                            // Either it now carries the hash, or another block already did.
                            None => prop_assert!(p.get_cached_block(&h(k)).is_some()),
                        }
                    }
                    Op::Hit(k) => {
                        if let Some(b) = p.get_cached_block(&h(k)) {
                            prop_assert_eq!(p.block_hash(b), Some(h(k)));
                            p.touch(&[b]);
                            holders.push(vec![b]);
                        }
                    }
                    Op::Reset => {
                        p.reset_prefix_cache();
                        for b in p.free_queue_order() {
                            prop_assert!(p.block_hash(b).is_none());
                        }
                    }
                    _ => {}
                }
                p.check_invariants().map_err(TestCaseError::fail)?;
                let mut expect = vec![0u32; n];
                for bs in &holders {
                    for &b in bs {
                        expect[b as usize] += 1;
                    }
                }
                for b in 0..n as u32 {
                    prop_assert_eq!(p.ref_count(b), expect[b as usize]);
                }
            }
            for mut bs in holders.drain(..) {
                bs.reverse();
                p.free(&bs);
            }
            p.check_invariants().map_err(TestCaseError::fail)?;
            prop_assert_eq!(p.num_free_blocks(), n);
        }
    }
}
