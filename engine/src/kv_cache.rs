//! The paged KV cache: per layer, `num_blocks` blocks of `block_size` token slots, each slot
//! holding one token's keys and values for all KV heads. Which blocks belong to which sequence
//! is the scheduler's business; the engine only follows block tables and slot mappings.

use crate::error::{EngineError, Result};

#[derive(Debug)]
pub struct KvCache {
    block_size: usize,
    num_blocks: usize,
    /// Floats per slot: `num_kv_heads * head_dim`.
    kv_dim: usize,
    /// Per layer: keys and values, `num_blocks * block_size * kv_dim` floats each.
    pub(crate) layers: Vec<LayerCache>,
}

#[derive(Debug)]
pub(crate) struct LayerCache {
    pub k: Vec<f32>,
    pub v: Vec<f32>,
}

impl KvCache {
    pub fn new(
        num_layers: usize,
        kv_dim: usize,
        block_size: usize,
        num_blocks: usize,
    ) -> Result<Self> {
        if block_size == 0 || num_blocks == 0 {
            return Err(EngineError::InvalidBatch(
                "block_size and num_blocks must be positive".into(),
            ));
        }
        let slots = block_size
            .checked_mul(num_blocks)
            .and_then(|s| s.checked_mul(kv_dim))
            .ok_or_else(|| EngineError::InvalidBatch("KV cache size overflows".into()))?;
        let layers = (0..num_layers)
            .map(|_| LayerCache {
                k: vec![0.0; slots],
                v: vec![0.0; slots],
            })
            .collect();
        Ok(Self {
            block_size,
            num_blocks,
            kv_dim,
            layers,
        })
    }

    /// Bytes one block takes across all layers (keys and values), for sizing the cache.
    pub fn bytes_per_block(num_layers: usize, kv_dim: usize, block_size: usize) -> usize {
        2 * num_layers * kv_dim * block_size * std::mem::size_of::<f32>()
    }

    pub fn block_size(&self) -> usize {
        self.block_size
    }

    pub fn num_blocks(&self) -> usize {
        self.num_blocks
    }

    pub fn num_slots(&self) -> usize {
        self.block_size * self.num_blocks
    }

    pub fn kv_dim(&self) -> usize {
        self.kv_dim
    }
}
