//! The real executor: an engine `Model` stepping over its paged KV cache, sampling with the
//! engine's sampler, and the engine's tokenizer as the scheduler's detokenizer.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::sync::Arc;

use engine::cuda::device::Device;
use engine::cuda::model::{DeviceModel, KvCacheSize};
use engine::sampling::{device_pick, sample, RowPick, SampleContext};
use engine::structured::{Constraint, Mask};
use engine::{CpuForward, Model, StepForward, StepOutput, Tokenizer};

use crate::config::{KvCacheShape, SchedulerConfig};
use crate::detokenizer::{Detokenizer, OffsetDetokenizer, TokenDecoder};
use crate::executor::{ExecutorError, ModelExecutor, SampledToken, SamplingInput, StepPlan};
use crate::request::SeqId;
use crate::{EngineLoop, SchedulerError};

/// Runs each step's batch through the model and samples one token per sampled sequence.
///
/// A sequence with a structured output keeps a grammar [`Constraint`] here, keyed by its id
/// and dropped when the scheduler releases the sequence (a preempted one rebuilds it from its
/// output). Its mask for the step is computed while the forward pass runs: on a thread of its
/// own beside the CPU engine, which applies it to the logits here before sampling; on the
/// host while a device's kernels run, which the device's sampler then applies (no logits come
/// back). Sequences without one pay nothing.
pub struct EngineExecutor {
    model: Arc<Model>,
    forward: Box<dyn StepForward>,
    constraints: HashMap<SeqId, Constraint>,
}

impl EngineExecutor {
    /// The CPU engine, with the KV cache the scheduler's block ids index: `num_gpu_blocks`
    /// blocks of `block_size` tokens.
    pub fn new(model: Arc<Model>, config: &SchedulerConfig) -> Result<Self, ExecutorError> {
        let forward = CpuForward::new(model.clone(), config.block_size, config.num_gpu_blocks)?;
        Ok(Self::with_forward(model, Box::new(forward)))
    }

    /// Another forward pass for `model` (the CUDA engine), whose KV cache holds the
    /// scheduler's `num_gpu_blocks` blocks of `block_size` tokens. Rows whose logits it
    /// returns are sampled here; one that picks tokens itself (`StepForward::picks_tokens`) is
    /// told how for each row, and given the rows' grammar masks.
    pub fn with_forward(model: Arc<Model>, forward: Box<dyn StepForward>) -> Self {
        Self {
            model,
            forward,
            constraints: HashMap::new(),
        }
    }

    /// Brings the constraint of every constrained sequence of the step up to its output;
    /// returns the sequences whose grammar could not be built or refused a token.
    fn advance_constraints(&mut self, plan: &StepPlan) -> HashMap<SeqId, String> {
        let mut failed = HashMap::new();
        for s in &plan.sampling {
            let Some(spec) = &s.params.structured else {
                continue;
            };
            let constraint = match self.constraints.entry(s.seq_id) {
                Entry::Occupied(e) => e.into_mut(),
                Entry::Vacant(e) => {
                    let built = self
                        .model
                        .tokenizer
                        .grammars()
                        .map_err(|e| e.to_string())
                        .and_then(|g| g.constraint(spec));
                    match built {
                        Ok(c) => e.insert(c),
                        Err(msg) => {
                            failed.insert(s.seq_id, msg);
                            continue;
                        }
                    }
                }
            };
            if let Err(msg) = constraint.advance(&s.output_token_ids) {
                self.constraints.remove(&s.seq_id);
                failed.insert(s.seq_id, msg);
            }
        }
        failed
    }
}

/// The masks of the step's constrained sequences.
fn compute_masks(
    constraints: &mut HashMap<SeqId, Constraint>,
    plan: &StepPlan,
    failed: &HashMap<SeqId, String>,
) -> HashMap<SeqId, Result<Mask, String>> {
    plan.sampling
        .iter()
        .filter(|s| !failed.contains_key(&s.seq_id))
        .filter_map(|s| {
            let c = constraints.get_mut(&s.seq_id)?;
            Some((s.seq_id, c.mask()))
        })
        .collect()
}

impl ModelExecutor for EngineExecutor {
    fn execute(&mut self, plan: &StepPlan) -> Result<Vec<SampledToken>, ExecutorError> {
        for id in &plan.released_seq_ids {
            self.constraints.remove(id);
        }
        let failed = self.advance_constraints(plan);
        let constrained = plan
            .sampling
            .iter()
            .any(|s| self.constraints.contains_key(&s.seq_id));
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
        fn context<'a>(s: &'a SamplingInput, eos: &'a [u32]) -> SampleContext<'a> {
            SampleContext {
                prompt_tokens: &s.prompt_token_ids,
                output_tokens: &s.output_token_ids,
                eos_token_ids: eos,
                seed: s.params.seed.unwrap_or(0),
                mask: None,
            }
        }
        // What a device may pick itself (every row but those asking for more alternatives than
        // it lists). Not computed for the CPU engine, which returns logits whatever this says.
        let vocab = self.model.config.vocab_size;
        let mut picks: Vec<Option<RowPick>> = vec![None; next];
        let device_picks = self.forward.picks_tokens();
        for s in plan.sampling.iter().filter(|_| device_picks) {
            let row = row_of.get(s.batch_index).copied().unwrap_or(usize::MAX);
            if let Some(p) = picks.get_mut(row) {
                let constrained = self.constraints.contains_key(&s.seq_id);
                let pick = device_pick(&s.params, &context(s, eos), vocab, constrained);
                // Two samplers of one row (not made by the scheduler): the logits serve both.
                *p = Some(if p.is_some() { RowPick::Logits } else { pick });
            }
        }
        let picks: Vec<RowPick> = picks
            .into_iter()
            .map(|p| p.unwrap_or(RowPick::Greedy))
            .collect();
        let Self {
            forward,
            constraints,
            ..
        } = self;
        // The masks depend only on the tokens already sampled: they are computed while the
        // forward pass runs.
        let (outputs, mut masks) = if !constrained {
            (
                forward.step_outputs(&plan.batch, &picks, &mut Vec::new),
                HashMap::new(),
            )
        } else if device_picks {
            // The device asks for them once it has launched the step's kernels, and applies
            // them itself; rows whose logits come back are masked here.
            let mut computed = None;
            let outputs = forward.step_outputs(&plan.batch, &picks, &mut || {
                let masks = compute_masks(constraints, plan, &failed);
                let mut rows = vec![None; next];
                for s in &plan.sampling {
                    let row = row_of.get(s.batch_index).and_then(|&r| rows.get_mut(r));
                    if let (Some(row), Some(Ok(mask))) = (row, masks.get(&s.seq_id)) {
                        *row = Some(mask.clone());
                    }
                }
                computed = Some(masks);
                rows
            });
            // Not asked for (no row was masked on the device): the rows that came back need them.
            let masks = match (computed, &outputs) {
                (Some(masks), _) => masks,
                (None, Ok(_)) => compute_masks(constraints, plan, &failed),
                (None, Err(_)) => HashMap::new(),
            };
            (outputs, masks)
        } else {
            let (outputs, masks) = std::thread::scope(|scope| {
                let masks = scope.spawn(|| compute_masks(constraints, plan, &failed));
                let outputs = forward.step_outputs(&plan.batch, &picks, &mut Vec::new);
                (outputs, masks.join())
            });
            let masks =
                masks.map_err(|_| ExecutorError::Panicked("computing token masks".to_string()))?;
            (outputs, masks)
        };
        let outputs = outputs?;
        let mut out = Vec::with_capacity(plan.sampling.len());
        for s in &plan.sampling {
            let mask = match (masks.remove(&s.seq_id), failed.get(&s.seq_id).cloned()) {
                (Some(Ok(mask)), _) => Some(mask),
                (Some(Err(msg)), _) | (None, Some(msg)) => {
                    out.push(SampledToken {
                        error: Some(msg),
                        ..SampledToken::new(s.seq_id, 0)
                    });
                    continue;
                }
                (None, None) => None,
            };
            let output = outputs
                .get(row_of.get(s.batch_index).copied().unwrap_or(usize::MAX))
                .ok_or_else(|| {
                    ExecutorError::Other(format!("no logits for batch entry {}", s.batch_index))
                })?;
            let t = match output {
                StepOutput::Token {
                    token,
                    logprob,
                    top_logprobs,
                } => engine::sampling::SampledToken {
                    token: *token,
                    logprob: *logprob,
                    top_logprobs: top_logprobs.clone(),
                },
                StepOutput::Logits(row) => {
                    let mut row = row.clone();
                    let ctx = SampleContext {
                        mask: mask.as_ref(),
                        ..context(s, eos)
                    };
                    sample(&mut row, &s.params, &ctx)
                }
            };
            out.push(SampledToken {
                seq_id: s.seq_id,
                token_id: t.token,
                logprob: s.params.logprobs.map(|_| t.logprob),
                top_logprobs: t.top_logprobs,
                error: None,
            });
        }
        Ok(out)
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

/// The largest steps the scheduler plans under `config`, for a forward pass that reserves its
/// memory at start (the CUDA engine's `DeviceModel::reserve`).
pub fn step_limits(config: &SchedulerConfig) -> engine::cuda::model::StepLimits {
    engine::cuda::model::StepLimits {
        max_tokens: config.max_num_batched_tokens,
        max_seqs: config.max_num_seqs,
        max_context: config.max_model_len,
    }
}

/// An engine loop running `model` with `config` (from [`config_for_model`]): the scheduler in
/// front of an [`EngineExecutor`] and the model's tokenizer as the detokenizer.
pub fn spawn_engine(
    model: &Arc<Model>,
    config: SchedulerConfig,
) -> Result<EngineLoop, SchedulerError> {
    let (m, c) = (model.clone(), config.clone());
    EngineLoop::spawn_with(config, detokenizer_for(model), move || {
        EngineExecutor::new(m, &c)
    })
}

/// An engine loop over the CUDA engine's forward pass on `dev` (`DeviceModel::start`, with
/// memory reserved for the largest steps `config_for_model`'s settings plan): its KV cache
/// sized by `cache` in device memory, and the scheduler's `num_gpu_blocks` what that made.
pub fn spawn_device_engine<D>(
    model: &Arc<Model>,
    base: SchedulerConfig,
    dev: D,
    cache: KvCacheSize,
) -> Result<EngineLoop, SchedulerError>
where
    D: Device + Send + 'static,
    D::Buf: Send,
    D::Graph: Send,
{
    let mut config = config_for_model(model, base, 0);
    let forward = DeviceModel::start(dev, model, config.block_size, cache, step_limits(&config))
        .map_err(|e| SchedulerError::EngineStart(e.to_string()))?;
    config.num_gpu_blocks = forward.num_blocks();
    spawn_engine_with(model, config, Box::new(forward))
}

/// [`spawn_engine`] with another forward pass (built for `config`'s KV cache: `num_gpu_blocks`
/// blocks of `block_size` tokens), such as the CUDA engine's.
pub fn spawn_engine_with(
    model: &Arc<Model>,
    config: SchedulerConfig,
    forward: Box<dyn StepForward>,
) -> Result<EngineLoop, SchedulerError> {
    let m = model.clone();
    EngineLoop::spawn_with(config, detokenizer_for(model), move || {
        Ok(EngineExecutor::with_forward(m, forward))
    })
}
