//! Scheduler configuration, with vLLM's engine-argument names so operators can carry their
//! knowledge (and their flags) over.

use serde::{Deserialize, Serialize};

use crate::request_queue::AdmissionLimits;

/// How the scheduler batches and where the KV cache ends. Deserialises from a config file
/// section with vLLM's field names; missing fields take the defaults below.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SchedulerConfig {
    /// Tokens per KV cache block. 16 as in vLLM: small enough that a partial last block wastes
    /// little, large enough that block tables stay short.
    pub block_size: usize,
    /// Number of KV cache blocks; see [`num_kv_blocks`] to derive it from a byte budget.
    pub num_gpu_blocks: usize,
    /// Most sequences in one step (each `n` choice is a sequence).
    pub max_num_seqs: usize,
    /// Most new tokens in one step (decode tokens plus prefill chunks). Bounds step latency.
    pub max_num_batched_tokens: usize,
    /// Reuse the KV blocks of identical prompt prefixes (within a tenant).
    pub enable_prefix_caching: bool,
    /// Longest sequence (prompt plus output) the model accepts.
    pub max_model_len: usize,
    /// Largest prefill chunk of one sequence per step; 0 means no cap beyond the token budget.
    /// A cap lets several long prompts progress together instead of one after another.
    pub long_prefill_token_threshold: usize,
    /// Token ids that end a sequence unless `ignore_eos` (filled from the model).
    pub eos_token_ids: Vec<u32>,
    /// Caps on queued work; beyond them `add_request` refuses with `QueueFull`.
    pub admission: AdmissionLimits,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        Self {
            block_size: 16,
            num_gpu_blocks: 4096,
            max_num_seqs: 256,
            max_num_batched_tokens: 2048,
            enable_prefix_caching: true,
            max_model_len: 8192,
            long_prefill_token_threshold: 0,
            eos_token_ids: Vec::new(),
            admission: AdmissionLimits::default(),
        }
    }
}

impl SchedulerConfig {
    /// Sizes the cache from a byte budget (vLLM's `kv_cache_memory`) for a model's KV shape.
    pub fn with_kv_cache_memory(mut self, shape: KvCacheShape, kv_cache_memory: u64) -> Self {
        self.num_gpu_blocks = num_kv_blocks(shape, self.block_size, kv_cache_memory);
        self
    }

    /// Checks the relations between fields that the scheduler relies on.
    pub fn validate(&self) -> Result<(), crate::SchedulerError> {
        let bad = |why: &str| Err(crate::SchedulerError::InvalidConfig(why.to_string()));
        if self.block_size == 0 {
            return bad("block_size must be at least 1");
        }
        if self.num_gpu_blocks == 0 {
            return bad("num_gpu_blocks must be at least 1");
        }
        if self.max_num_seqs == 0 {
            return bad("max_num_seqs must be at least 1");
        }
        // Every running sequence must be able to get its decode token into every step,
        // otherwise decodes would stall behind prefills.
        if self.max_num_batched_tokens < self.max_num_seqs {
            return bad("max_num_batched_tokens must be at least max_num_seqs");
        }
        if self.max_model_len < 2 {
            return bad("max_model_len must be at least 2");
        }
        Ok(())
    }
}

/// Shape of one layer's K/V for one token, to size the cache in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KvCacheShape {
    pub num_layers: usize,
    pub num_kv_heads: usize,
    pub head_dim: usize,
    /// Bytes per element (2 for f16/bf16, 4 for f32).
    pub dtype_bytes: usize,
}

impl KvCacheShape {
    /// Bytes one block takes across all layers, keys and values.
    pub fn bytes_per_block(&self, block_size: usize) -> usize {
        2 * self.num_layers * self.num_kv_heads * self.head_dim * self.dtype_bytes * block_size
    }
}

/// Number of blocks that fit in `kv_cache_memory` bytes (vLLM's `kv_cache_memory`).
pub fn num_kv_blocks(shape: KvCacheShape, block_size: usize, kv_cache_memory: u64) -> usize {
    let per_block = shape.bytes_per_block(block_size).max(1) as u64;
    (kv_cache_memory / per_block) as usize
}

/// A sane default KV budget when none is configured: `gpu_memory_utilization` of the free
/// memory after the weights, minus an activation reserve for one full step.
pub fn default_kv_cache_memory(
    free_memory: u64,
    gpu_memory_utilization: f64,
    activation_reserve: u64,
) -> u64 {
    let usable = (free_memory as f64 * gpu_memory_utilization.clamp(0.0, 1.0)) as u64;
    usable.saturating_sub(activation_reserve)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smollm2_sized_cache() {
        // SmolLM2-135M: 30 layers, 3 KV heads of 64, an f16 cache (the engine's, on CPU and
        // GPU alike).
        let shape = KvCacheShape {
            num_layers: 30,
            num_kv_heads: 3,
            head_dim: 64,
            dtype_bytes: engine::KvCache::BYTES_PER_VALUE,
        };
        assert_eq!(shape.bytes_per_block(16), 2 * 30 * 3 * 64 * 2 * 16);
        assert_eq!(
            shape.bytes_per_block(16),
            engine::KvCache::bytes_per_block(30, 3 * 64, 16)
        );
        assert_eq!(num_kv_blocks(shape, 16, 1 << 30), (1usize << 30) / 368_640);
        assert_eq!(default_kv_cache_memory(1000, 0.9, 100), 800);
        assert_eq!(default_kv_cache_memory(1000, 0.9, 5000), 0);
    }

    #[test]
    fn sized_from_bytes_and_read_with_defaults() {
        let shape = KvCacheShape {
            num_layers: 2,
            num_kv_heads: 1,
            head_dim: 4,
            dtype_bytes: 2,
        };
        let c = SchedulerConfig::default().with_kv_cache_memory(shape, 10 * 512 + 7);
        assert_eq!(c.num_gpu_blocks, 10);
        let json = r#"{"max_num_seqs": 8, "admission": {"max_waiting_requests": 5}}"#;
        let c: SchedulerConfig = serde_json::from_str(json).unwrap();
        assert_eq!(
            (
                c.max_num_seqs,
                c.block_size,
                c.admission.max_waiting_requests
            ),
            (8, 16, 5)
        );
        assert_eq!(c.admission.max_waiting_requests_per_tenant, 2_000);
    }

    #[test]
    fn rejects_budget_smaller_than_seqs() {
        let c = SchedulerConfig {
            max_num_seqs: 64,
            max_num_batched_tokens: 32,
            ..Default::default()
        };
        assert!(c.validate().is_err());
        assert!(SchedulerConfig::default().validate().is_ok());
    }
}
