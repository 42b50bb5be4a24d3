//! The paged KV cache: per layer, `num_blocks` blocks of `block_size` token slots, each slot
//! holding one token's keys and values for all KV heads. Which blocks belong to which sequence
//! is the scheduler's business; the engine only follows block tables and slot mappings.

use half::f16;

use crate::error::{EngineError, Result};

#[derive(Debug)]
pub struct KvCache {
    block_size: usize,
    num_blocks: usize,
    /// Values per slot: `num_kv_heads * head_dim`.
    kv_dim: usize,
    /// Per layer: keys and values, `num_blocks * block_size * kv_dim` f16 values each (f16 as
    /// in llama.cpp's default cache; see `kernels::attention`).
    pub(crate) layers: Vec<LayerCache>,
}

#[derive(Debug)]
pub(crate) struct LayerCache {
    pub k: Vec<f16>,
    pub v: Vec<f16>,
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
                k: vec![f16::ZERO; slots],
                v: vec![f16::ZERO; slots],
            })
            .collect();
        Ok(Self {
            block_size,
            num_blocks,
            kv_dim,
            layers,
        })
    }

    /// Bytes of one cached key or value element.
    pub const BYTES_PER_VALUE: usize = std::mem::size_of::<f16>();

    /// Bytes one block takes across all layers (keys and values), for sizing the cache.
    pub fn bytes_per_block(num_layers: usize, kv_dim: usize, block_size: usize) -> usize {
        2 * num_layers * kv_dim * block_size * Self::BYTES_PER_VALUE
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
