//! A Llama-family decoder: weights, loading, and the forward pass over the paged KV cache.

mod config;
mod forward;
mod load;

pub use config::{Architecture, ModelConfig, RopeStyle};

use crate::chat_template::ChatTemplate;
use crate::kernels::Linear;
use crate::tokenizer::Tokenizer;

/// One decoder layer's weights. q, k and v are one matrix (one call computes all three),
/// and so are gate and up.
#[derive(Debug)]
pub(crate) struct Layer {
    pub attn_norm: Vec<f32>,
    pub qkv: Linear,
    pub qkv_bias: Option<Vec<f32>>,
    pub o: Linear,
    pub ffn_norm: Vec<f32>,
    pub gate_up: Linear,
    pub down: Linear,
}

/// A model's text side without its weights: enough to tokenize and template prompts for
/// workers that hold the weights (a gateway in front of them).
#[derive(Debug)]
pub struct TextModel {
    pub config: ModelConfig,
    pub tokenizer: Tokenizer,
    pub chat_template: Option<ChatTemplate>,
    /// GGUF `general.name` or the file's or directory's name.
    pub name: String,
}

/// A loaded model: weights, tokenizer and chat template.
pub struct Model {
    pub config: ModelConfig,
    pub tokenizer: Tokenizer,
    pub chat_template: Option<ChatTemplate>,
    /// A name for `/v1/models` and logs (GGUF `general.name` or the directory name).
    pub name: String,
    pub(crate) embed: Linear,
    pub(crate) layers: Vec<Layer>,
    pub(crate) norm: Vec<f32>,
    pub(crate) output: Linear,
    pub(crate) rope: forward::RopeTable,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("name", &self.name)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// One step of a model over its KV cache, wherever it runs: the CPU engine ([`CpuForward`]) or
/// the CUDA kernels (`cuda::model::DeviceModel`). Returns, for every sequence with
/// `want_logits`, in batch order, the logits of its last new token.
pub trait StepForward: Send {
    fn step(&mut self, batch: &crate::batch::StepBatch) -> crate::error::Result<Vec<Vec<f32>>>;

    /// Whether [`StepForward::step_outputs`] picks tokens itself (else the `picks` are not
    /// worth computing: every row's logits come back).
    fn picks_tokens(&self) -> bool {
        false
    }

    /// [`StepForward::step`], where `picks` (one entry per sequence with `want_logits`, in
    /// batch order) says which rows' tokens the forward pass may pick itself, greedy or
    /// sampled, so that only the token and its log-probability come back. The CPU engine
    /// returns every row's logits (the caller's sampler is as cheap there).
    ///
    /// `masks` gives the grammar masks of the rows whose pick is
    /// [`crate::sampling::DeviceSample::masked`], one entry per row as `picks`; a forward
    /// pass calls it once, after it has started the step's work, so that the masks are
    /// computed while that work runs (and not at all where no pick is masked).
    fn step_outputs(
        &mut self,
        batch: &crate::batch::StepBatch,
        picks: &[crate::sampling::RowPick],
        masks: &mut StepMasks<'_>,
    ) -> crate::error::Result<Vec<StepOutput>> {
        let _ = (picks, masks);
        Ok(self
            .step(batch)?
            .into_iter()
            .map(StepOutput::Logits)
            .collect())
    }
}

/// The grammar masks of a step's rows (see [`StepForward::step_outputs`]): one entry per
/// sequence with `want_logits`, in batch order, `None` where it has no grammar.
pub type StepMasks<'a> = dyn FnMut() -> Vec<Option<crate::structured::Mask>> + 'a;

/// What a step returns for one sequence that wants logits.
#[derive(Clone, Debug, PartialEq)]
pub enum StepOutput {
    /// The logits of its last new token.
    Logits(Vec<f32>),
    /// The token picked by the forward pass ([`crate::sampling::RowPick`]), its raw
    /// log-probability, and the raw distribution's most likely tokens with theirs, as many as
    /// the pick asked for, most likely first.
    Token {
        token: u32,
        logprob: f32,
        top_logprobs: Vec<(u32, f32)>,
    },
}

/// The CPU engine's forward pass with its KV cache.
pub struct CpuForward {
    model: std::sync::Arc<Model>,
    cache: crate::kv_cache::KvCache,
}

impl CpuForward {
    /// A KV cache of `num_blocks` blocks of `block_size` tokens for `model`.
    pub fn new(
        model: std::sync::Arc<Model>,
        block_size: usize,
        num_blocks: usize,
    ) -> crate::error::Result<Self> {
        let cache = model.new_kv_cache(block_size, num_blocks)?;
        Ok(Self { model, cache })
    }
}

impl StepForward for CpuForward {
    fn step(&mut self, batch: &crate::batch::StepBatch) -> crate::error::Result<Vec<Vec<f32>>> {
        self.model.step(&mut self.cache, batch)
    }
}
