//! The paged KV cache: per layer, `num_blocks` blocks of `block_size` token slots, each slot
//! holding one token's keys and values for all KV heads. Which blocks belong to which sequence
//! is the scheduler's business; the engine only follows block tables and slot mappings.

use half::f16;
use half::slice::HalfBitsSliceExt;

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

/// One layer's keys and values, held as f16 bit patterns: a `Vec<u16>` of zeros is allocated
/// zeroed (pages the OS maps lazily), where a `Vec<f16>` would be written element by element,
/// touching all of a cache that may be gigabytes at start-up.
#[derive(Debug)]
pub(crate) struct LayerCache {
    k: Vec<u16>,
    v: Vec<u16>,
}

impl LayerCache {
    /// Keys and values, read-only.
    pub fn kv(&self) -> (&[f16], &[f16]) {
        (self.k.reinterpret_cast(), self.v.reinterpret_cast())
    }

    /// Keys and values, writable.
    pub fn kv_mut(&mut self) -> (&mut [f16], &mut [f16]) {
        (self.k.reinterpret_cast_mut(), self.v.reinterpret_cast_mut())
    }
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
                k: vec![0u16; slots],
                v: vec![0u16; slots],
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Resident memory of this process, from /proc (Linux).
    #[cfg(target_os = "linux")]
    fn resident_bytes() -> usize {
        let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
        let pages: usize = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
        pages * 4096
    }

    /// A new cache is zeroed memory the OS hands out lazily: creating 1 GiB of it does not make
    /// it resident, and what a step writes reads back as written.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_new_cache_is_not_resident_until_written() {
        let before = resident_bytes();
        let (layers, kv_dim, block_size) = (32, 512, 16);
        let per_block = KvCache::bytes_per_block(layers, kv_dim, block_size);
        let blocks = (1usize << 30) / per_block;
        let mut cache = KvCache::new(layers, kv_dim, block_size, blocks).unwrap();
        let grown = resident_bytes().saturating_sub(before);
        assert!(
            grown < 64 << 20,
            "a 1 GiB cache made {grown} bytes resident"
        );
        let (k, v) = cache.layers[3].kv_mut();
        k[12345] = f16::from_f32(1.5);
        v[54321] = f16::from_f32(-2.0);
        let (k, v) = cache.layers[3].kv();
        assert_eq!(
            (k[12345].to_f32(), v[54321].to_f32(), k[0].to_f32()),
            (1.5, -2.0, 0.0)
        );
    }
}
