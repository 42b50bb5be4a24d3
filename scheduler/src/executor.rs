//! The seam between the scheduler and the model: a step plan goes in, sampled tokens come out.
//!
//! The plan is plain data. For every sequence whose last new token is sampled it carries what
//! a stateless sampler needs: the sampling parameters (with the sequence's own seed), the
//! prompt and output token ids (for penalties) and the output index. A sampler that is
//! deterministic in (seed, output index, logits) makes a preempted sequence, recomputed from
//! scratch, sample exactly the tokens it would have sampled without preemption.
//!
//! Wiring a real model (what an implementation of [`ModelExecutor`] does per step):
//! 1. Drop any per-sequence state for `plan.released_seq_ids`.
//! 2. Run the forward pass over `plan.batch` (an `engine::StepBatch`): the new tokens of all
//!    sequences flattened, K/V written through each `slot_mapping`, attention through each
//!    `block_table`, logits only for sequences with `want_logits`. Block ids index a cache of
//!    `SchedulerConfig::num_gpu_blocks` blocks of `block_size` tokens, which the executor
//!    allocates once (see `config::num_kv_blocks`).
//! 3. For each `plan.sampling` entry, in order, sample from the logits of
//!    `plan.batch.seqs[batch_index]` with its `params`, `prompt_token_ids`,
//!    `output_token_ids` and `output_index`, and return one [`SampledToken`] with that
//!    `seq_id` (logprobs only when `params.logprobs` is set). The sampler applies the
//!    token-level parameters (temperature, top-k/p, min-p, penalties, logit bias, and no EOS
//!    or stop token before `min_tokens`); the scheduler applies the sequence-level ones
//!    (stop strings, stop token ids, EOS, max tokens, n).
//! 4. Return `Err` for a failure of the whole step; the scheduler then ends that step's
//!    requests with an error delta and frees their blocks. Nothing is cached from a failed
//!    step: blocks enter the prefix cache only after a step succeeded.

use std::sync::Arc;

use engine::{SamplingParams, StepBatch};

use crate::request::SeqId;

/// What one sampled sequence needs from the sampler.
#[derive(Clone, Debug, PartialEq)]
pub struct SamplingInput {
    pub seq_id: SeqId,
    /// Index into `StepPlan::batch.seqs` (whose `want_logits` is set).
    pub batch_index: usize,
    /// The request's parameters; `seed` is always set (per sequence: request seed + choice).
    pub params: Arc<SamplingParams>,
    pub prompt_token_ids: Arc<[u32]>,
    pub output_token_ids: Vec<u32>,
    /// Index of the token about to be sampled among the outputs (= `output_token_ids.len()`).
    pub output_index: usize,
}

/// One engine step.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StepPlan {
    /// Monotonic step number.
    pub step_id: u64,
    /// New tokens, positions, block tables and slot mappings of every scheduled sequence.
    pub batch: StepBatch,
    /// The sequence of each `batch.seqs` entry.
    pub seq_ids: Vec<SeqId>,
    /// One per sequence that samples this step, in batch order.
    pub sampling: Vec<SamplingInput>,
    /// Sequences whose blocks were released since the last plan (finished, aborted,
    /// preempted): an executor drops any per-sequence state it keeps for them.
    pub released_seq_ids: Vec<SeqId>,
}

impl StepPlan {
    pub fn is_empty(&self) -> bool {
        self.batch.seqs.is_empty()
    }

    pub fn num_tokens(&self) -> usize {
        self.batch.num_tokens()
    }
}

/// The sampler's answer for one sequence.
#[derive(Clone, Debug, PartialEq)]
pub struct SampledToken {
    pub seq_id: SeqId,
    pub token_id: u32,
    /// Present when the request asked for logprobs.
    pub logprob: Option<f32>,
    /// The `params.logprobs` most likely tokens, when asked.
    pub top_logprobs: Vec<(u32, f32)>,
    /// Set when this sequence alone could not be sampled (its structured output's grammar
    /// failed): its request ends with this error and the step's others carry on.
    pub error: Option<String>,
}

impl SampledToken {
    /// A sampled token without logprobs.
    pub fn new(seq_id: SeqId, token_id: u32) -> Self {
        Self {
            seq_id,
            token_id,
            logprob: None,
            top_logprobs: Vec::new(),
            error: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ExecutorError {
    #[error("engine: {0}")]
    Engine(#[from] engine::EngineError),
    #[error("executor: {0}")]
    Other(String),
    #[error("executor panicked: {0}")]
    Panicked(String),
}

impl ExecutorError {
    /// Whether the device can run nothing more ([`engine::EngineError::DeviceLost`]): the
    /// engine loop then ends every request and refuses new ones.
    pub fn device_lost(&self) -> bool {
        matches!(
            self,
            ExecutorError::Engine(engine::EngineError::DeviceLost(_))
        )
    }
}

/// Runs steps on a model. The real implementation runs `Model::step` over the KV cache and
/// samples one token per `plan.sampling` entry; `testing::FakeExecutor` stands in for tests.
pub trait ModelExecutor: Send {
    /// Computes the step and returns one sampled token per `plan.sampling` entry. On error
    /// the scheduler fails this step's requests and keeps serving the others.
    fn execute(&mut self, plan: &StepPlan) -> Result<Vec<SampledToken>, ExecutorError>;
}

impl<T: ModelExecutor + ?Sized> ModelExecutor for Box<T> {
    fn execute(&mut self, plan: &StepPlan) -> Result<Vec<SampledToken>, ExecutorError> {
        (**self).execute(plan)
    }
}
