//! The real executor: an engine `Model` stepping over its paged KV cache, sampling with the
//! engine's sampler, and the engine's tokenizer as the scheduler's detokenizer.

use std::sync::Arc;

use engine::sampling::{sample, SampleContext};
use engine::{KvCache, Model, Tokenizer};

use crate::config::{KvCacheShape, SchedulerConfig};
use crate::detokenizer::{Detokenizer, OffsetDetokenizer, TokenDecoder};
use crate::executor::{ExecutorError, ModelExecutor, SampledToken, StepPlan};

/// Runs each step's batch through the model and samples one token per sampled sequence.
pub struct EngineExecutor {
    model: Arc<Model>,
    cache: KvCache,
}

impl EngineExecutor {
    /// Allocates the KV cache the scheduler's block ids index: `num_gpu_blocks` blocks of
    /// `block_size` tokens.
    pub fn new(model: Arc<Model>, config: &SchedulerConfig) -> Result<Self, ExecutorError> {
        let cache = model.new_kv_cache(config.block_size, config.num_gpu_blocks)?;
        Ok(Self { model, cache })
    }
}

impl ModelExecutor for EngineExecutor {
    fn execute(&mut self, plan: &StepPlan) -> Result<Vec<SampledToken>, ExecutorError> {
        let logits = self.model.step(&mut self.cache, &plan.batch)?;
        // Logits come back for `want_logits` sequences only, in batch order.
        let mut row_of = vec![usize::MAX; plan.batch.seqs.len()];
        let mut next = 0;
        for (i, s) in plan.batch.seqs.iter().enumerate() {
            if s.want_logits {
                row_of[i] = next;
                next += 1;
            }
        }
        let eos = self.model.tokenizer.eos_token_ids();
        plan.sampling
            .iter()
            .map(|s| {
                let row = logits
                    .get(row_of.get(s.batch_index).copied().unwrap_or(usize::MAX))
                    .ok_or_else(|| {
                        ExecutorError::Other(format!("no logits for batch entry {}", s.batch_index))
                    })?;
                let mut row = row.clone();
                let ctx = SampleContext {
                    prompt_tokens: &s.prompt_token_ids,
                    output_tokens: &s.output_token_ids,
                    eos_token_ids: eos,
                    seed: s.params.seed.unwrap_or(0),
                };
                let t = sample(&mut row, &s.params, &ctx);
                Ok(SampledToken {
                    seq_id: s.seq_id,
                    token_id: t.token,
                    logprob: s.params.logprobs.map(|_| t.logprob),
                    top_logprobs: t.top_logprobs,
                })
            })
            .collect()
    }
}

impl TokenDecoder for Tokenizer {
    fn decode(&self, token_ids: &[u32], skip_special_tokens: bool) -> String {
        Tokenizer::decode(self, token_ids, skip_special_tokens).unwrap_or_default()
    }
}

/// The scheduler's incremental detokenizer over the model's tokenizer.
pub fn detokenizer_for(model: &Model) -> Arc<dyn Detokenizer> {
    Arc::new(OffsetDetokenizer::new(Arc::new(model.tokenizer.clone())))
}

/// The shape of the model's KV cache, for sizing it in bytes.
pub fn kv_cache_shape(model: &Model) -> KvCacheShape {
    KvCacheShape {
        num_layers: model.config.num_layers,
        num_kv_heads: model.config.num_kv_heads,
        head_dim: model.config.head_dim,
        dtype_bytes: engine::KvCache::BYTES_PER_VALUE,
    }
}

/// A scheduler configuration for `model`: its EOS ids and context length, and a KV cache of
/// `kv_cache_memory` bytes (vLLM's `kv_cache_memory`), on top of `base`.
pub fn config_for_model(
    model: &Model,
    base: SchedulerConfig,
    kv_cache_memory: u64,
) -> SchedulerConfig {
    let mut config = base.with_kv_cache_memory(kv_cache_shape(model), kv_cache_memory);
    config.eos_token_ids = model.tokenizer.eos_token_ids().to_vec();
    config.max_model_len = config
        .max_model_len
        .min(model.config.max_position_embeddings);
    config
}
