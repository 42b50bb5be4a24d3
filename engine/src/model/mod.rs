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
