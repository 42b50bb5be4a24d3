//! Model hyper-parameters, from GGUF metadata or a Hugging Face `config.json`.

use serde::Deserialize;

use crate::error::{EngineError, Result};
use crate::gguf::Metadata;

/// Supported decoder families (all Llama-shaped; Qwen2 adds biases to q, k and v).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Architecture {
    Llama,
    Qwen2,
    Mistral,
}

impl Architecture {
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "llama" => Ok(Self::Llama),
            "qwen2" => Ok(Self::Qwen2),
            "mistral" => Ok(Self::Mistral),
            other => Err(EngineError::UnsupportedArchitecture(other.to_string())),
        }
    }
}

/// How rotary embeddings pair up the dimensions of a head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RopeStyle {
    /// Adjacent pairs `(x[2i], x[2i+1])`: GGUF Llama (its converter permutes q/k for this).
    Interleaved,
    /// Halves `(x[i], x[i + d/2])`: Hugging Face checkpoints, GGUF Qwen2.
    Neox,
}

#[derive(Clone, Debug)]
pub struct ModelConfig {
    pub architecture: Architecture,
    pub hidden_size: usize,
    pub num_layers: usize,
    pub num_heads: usize,
    pub num_kv_heads: usize,
    pub head_dim: usize,
    pub intermediate_size: usize,
    pub vocab_size: usize,
    pub rms_norm_eps: f32,
    pub rope_theta: f32,
    pub rope_style: RopeStyle,
    /// The context length the model was trained for.
    pub max_position_embeddings: usize,
}

impl ModelConfig {
    pub fn from_gguf(md: &Metadata) -> Result<Self> {
        let arch_name = md.string("general.architecture")?;
        let architecture = Architecture::parse(&arch_name)?;
        let key = |k: &str| format!("{arch_name}.{k}");
        let hidden_size = md.u32(&key("embedding_length"))? as usize;
        let num_heads = md.u32(&key("attention.head_count"))? as usize;
        let num_kv_heads = md
            .u32(&key("attention.head_count_kv"))
            .map(|v| v as usize)
            .unwrap_or(num_heads);
        let head_dim = md
            .u32(&key("attention.key_length"))
            .map(|v| v as usize)
            .unwrap_or(hidden_size / num_heads.max(1));
        let vocab_size = match md.u32(&key("vocab_size")) {
            Ok(v) => v as usize,
            Err(_) => md.string_array("tokenizer.ggml.tokens")?.len(),
        };
        let cfg = Self {
            architecture,
            hidden_size,
            num_layers: md.u32(&key("block_count"))? as usize,
            num_heads,
            num_kv_heads,
            head_dim,
            intermediate_size: md.u32(&key("feed_forward_length"))? as usize,
            vocab_size,
            rms_norm_eps: md
                .f32(&key("attention.layer_norm_rms_epsilon"))
                .unwrap_or(1e-5),
            rope_theta: md.f32(&key("rope.freq_base")).unwrap_or(10_000.0),
            rope_style: if architecture == Architecture::Qwen2 {
                RopeStyle::Neox
            } else {
                RopeStyle::Interleaved
            },
            max_position_embeddings: md
                .u32(&key("context_length"))
                .map(|v| v as usize)
                .unwrap_or(4096),
        };
        cfg.validate()?;
        Ok(cfg)
    }

    pub fn from_hf_json(json: &str) -> Result<Self> {
        #[derive(Deserialize)]
        struct Hf {
            model_type: String,
            hidden_size: usize,
            num_hidden_layers: usize,
            num_attention_heads: usize,
            num_key_value_heads: Option<usize>,
            head_dim: Option<usize>,
            intermediate_size: usize,
            vocab_size: usize,
            rms_norm_eps: Option<f32>,
            rope_theta: Option<f32>,
            max_position_embeddings: Option<usize>,
        }
        let hf: Hf = serde_json::from_str(json)
            .map_err(|e| EngineError::Model(format!("config.json: {e}")))?;
        let cfg = Self {
            architecture: Architecture::parse(&hf.model_type)?,
            hidden_size: hf.hidden_size,
            num_layers: hf.num_hidden_layers,
            num_heads: hf.num_attention_heads,
            num_kv_heads: hf.num_key_value_heads.unwrap_or(hf.num_attention_heads),
            head_dim: hf
                .head_dim
                .unwrap_or(hf.hidden_size / hf.num_attention_heads.max(1)),
            intermediate_size: hf.intermediate_size,
            vocab_size: hf.vocab_size,
            rms_norm_eps: hf.rms_norm_eps.unwrap_or(1e-6),
            rope_theta: hf.rope_theta.unwrap_or(10_000.0),
            rope_style: RopeStyle::Neox,
            max_position_embeddings: hf.max_position_embeddings.unwrap_or(4096),
        };
        cfg.validate()?;
        Ok(cfg)
    }

    fn validate(&self) -> Result<()> {
        let ok = self.num_heads > 0
            && self.num_kv_heads > 0
            && self.num_heads.is_multiple_of(self.num_kv_heads)
            && self.head_dim.is_multiple_of(2)
            && self.num_layers > 0
            && self.vocab_size > 0;
        if ok {
            Ok(())
        } else {
            Err(EngineError::Model(format!(
                "inconsistent model dimensions: {self:?}"
            )))
        }
    }

    pub fn q_dim(&self) -> usize {
        self.num_heads * self.head_dim
    }

    pub fn kv_dim(&self) -> usize {
        self.num_kv_heads * self.head_dim
    }
}
