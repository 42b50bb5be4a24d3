//! Loading weights from a GGUF file or a Hugging Face directory (config.json + safetensors).

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};

use super::forward::RopeTable;
use super::{Layer, Model, ModelConfig, TextModel};
use crate::chat_template::ChatTemplate;
use crate::error::{EngineError, Result};
use crate::gguf::{GgufFile, Metadata};
use crate::kernels::quant::{Q4_1Matrix, Q8_0Matrix};
use crate::kernels::Linear;
use crate::tokenizer::Tokenizer;

impl Model {
    /// Loads a GGUF file or a Hugging Face model directory, whichever `path` is.
    pub fn load(path: &Path) -> Result<Self> {
        if path.is_dir() {
            Self::from_hf_dir(path)
        } else {
            Self::from_gguf(path)
        }
    }

    pub fn from_gguf(path: &Path) -> Result<Self> {
        let mut file = GgufFile::open(path)?;
        let TextModel {
            config,
            tokenizer,
            chat_template,
            name,
        } = TextModel::from_gguf_metadata(&file.metadata, path)?;

        let vector = |file: &mut GgufFile, name: &str| -> Result<Vec<f32>> {
            Ok(file
                .tensor(name)?
                .dequantize(&Device::Cpu)?
                .flatten_all()?
                .to_vec1::<f32>()?)
        };
        let mut layers = Vec::with_capacity(config.num_layers);
        for i in 0..config.num_layers {
            let p = |n: &str| format!("blk.{i}.{n}");
            let lin = |file: &mut GgufFile, n: &str| -> Result<Linear> {
                Linear::from_qtensor(&p(n), file.tensor(&p(n))?)
            };
            let qkv = Linear::concat_rows(vec![
                lin(&mut file, "attn_q.weight")?,
                lin(&mut file, "attn_k.weight")?,
                lin(&mut file, "attn_v.weight")?,
            ])?;
            let qkv_bias = if file.has_tensor(&p("attn_q.bias")) {
                let mut b = vector(&mut file, &p("attn_q.bias"))?;
                b.extend(vector(&mut file, &p("attn_k.bias"))?);
                b.extend(vector(&mut file, &p("attn_v.bias"))?);
                Some(b)
            } else {
                None
            };
            layers.push(Layer {
                attn_norm: vector(&mut file, &p("attn_norm.weight"))?,
                qkv,
                qkv_bias,
                o: lin(&mut file, "attn_output.weight")?,
                ffn_norm: vector(&mut file, &p("ffn_norm.weight"))?,
                gate_up: Linear::concat_rows(vec![
                    lin(&mut file, "ffn_gate.weight")?,
                    lin(&mut file, "ffn_up.weight")?,
                ])?,
                down: lin(&mut file, "ffn_down.weight")?,
            });
        }
        let embed = embedding_from_qtensor(file.tensor("token_embd.weight")?)?;
        let output = if file.has_tensor("output.weight") {
            Linear::from_qtensor("output.weight", file.tensor("output.weight")?)?
        } else {
            // Tied embeddings: the output projection is the embedding table.
            Linear::from_qtensor("token_embd.weight", file.tensor("token_embd.weight")?)?
        };
        let norm = vector(&mut file, "output_norm.weight")?;
        Self::assemble(
            config,
            tokenizer,
            chat_template,
            name,
            embed,
            layers,
            norm,
            output,
        )
    }

    /// A model of `config`'s shapes with seeded random weights (Q4_1 layers, Q8_0 embeddings
    /// and output, norms near 1), for checking one backend against another where the real file
    /// is not at hand. The tokenizer is only carried along; `config.vocab_size` may be smaller
    /// than its vocabulary (token ids are then limited to the config's).
    pub fn synthetic(config: ModelConfig, tokenizer: Tokenizer, seed: u64) -> Result<Self> {
        use half::f16;
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
        // Each weight is `d * (q - 7.5)` for a uniform 4-bit `q`, whose spread about 7.5 is
        // sqrt((16² - 1) / 12) ≈ 4.61 steps: `d` is the wanted standard deviation over that,
        // so that a layer keeps its input's scale (about 1 / sqrt(fan-in), as a trained
        // network's weights are). Larger weights make every layer amplify and every softmax
        // near one-hot, and such a network turns a rounding difference into a different token
        // (the CPU engine's own AVX2 and AVX-512 paths, which sum in different lane orders,
        // then disagree on a third of greedy tokens).
        let mut q4_1 = |rows: usize, cols: usize, scale: f32| -> Result<Linear> {
            let mut raw = Vec::with_capacity(rows * cols / 32 * 20);
            for _ in 0..rows * cols / 32 {
                let d = scale / 4.61 * (0.5 + rng.random::<f32>());
                raw.extend(f16::from_f32(d).to_le_bytes());
                raw.extend(f16::from_f32(-7.5 * d).to_le_bytes());
                raw.extend((0..16).map(|_| rng.random::<u8>()));
            }
            Ok(Linear::Q4_1(Q4_1Matrix::from_ggml(&raw, rows, cols)?))
        };
        let (h, q, kv, f) = (
            config.hidden_size,
            config.q_dim(),
            config.kv_dim(),
            config.intermediate_size,
        );
        let s_in = 1.0 / (h as f32).sqrt();
        let mut layers = Vec::with_capacity(config.num_layers);
        for _ in 0..config.num_layers {
            layers.push(Layer {
                attn_norm: vec![1.0; h],
                qkv: q4_1(q + 2 * kv, h, s_in)?,
                qkv_bias: None,
                o: q4_1(h, q, 1.0 / (q as f32).sqrt())?,
                ffn_norm: vec![1.0; h],
                gate_up: q4_1(2 * f, h, s_in)?,
                down: q4_1(h, f, 1.0 / (f as f32).sqrt())?,
            });
        }
        let mut q8_0 = |rows: usize, cols: usize, scale: f32| -> Result<Linear> {
            let mut raw = Vec::with_capacity(rows * cols / 32 * 34);
            for _ in 0..rows * cols / 32 {
                raw.extend(
                    f16::from_f32(scale * (0.5 + rng.random::<f32>()) / 127.0).to_le_bytes(),
                );
                raw.extend((0..32).map(|_| rng.random::<u8>()));
            }
            Ok(Linear::Q8_0(Q8_0Matrix::from_ggml(&raw, rows, cols)?))
        };
        let embed = q8_0(config.vocab_size, h, 1.0)?;
        let output = q8_0(config.vocab_size, h, 4.0 * s_in)?;
        let norm = vec![1.0; h];
        Self::assemble(
            config,
            tokenizer,
            None,
            "synthetic".into(),
            embed,
            layers,
            norm,
            output,
        )
    }

    /// Loads `config.json`, `*.safetensors`, `tokenizer.json` and `tokenizer_config.json`.
    pub fn from_hf_dir(dir: &Path) -> Result<Self> {
        let (
            TextModel {
                config,
                tokenizer,
                chat_template,
                ..
            },
            raw,
        ) = TextModel::from_hf_dir(dir)?;
        let tie = raw
            .get("tie_word_embeddings")
            .and_then(|v| v.as_bool())
            .unwrap_or(false);

        let mut tensors = read_safetensors(dir)?;
        let mut take = |name: &str| -> Result<Tensor> {
            tensors.remove(name).ok_or_else(|| {
                EngineError::Model(format!("safetensors: tensor `{name}` is missing"))
            })
        };
        let mut layers = Vec::with_capacity(config.num_layers);
        for i in 0..config.num_layers {
            let p = |n: &str| format!("model.layers.{i}.{n}");
            let qkv = Linear::concat_rows(vec![
                Linear::dense(take(&p("self_attn.q_proj.weight"))?)?,
                Linear::dense(take(&p("self_attn.k_proj.weight"))?)?,
                Linear::dense(take(&p("self_attn.v_proj.weight"))?)?,
            ])?;
            let qkv_bias = match take(&p("self_attn.q_proj.bias")) {
                Ok(qb) => {
                    let mut b = to_vec(&qb)?;
                    b.extend(to_vec(&take(&p("self_attn.k_proj.bias"))?)?);
                    b.extend(to_vec(&take(&p("self_attn.v_proj.bias"))?)?);
                    Some(b)
                }
                Err(_) => None,
            };
            layers.push(Layer {
                attn_norm: to_vec(&take(&p("input_layernorm.weight"))?)?,
                qkv,
                qkv_bias,
                o: Linear::dense(take(&p("self_attn.o_proj.weight"))?)?,
                ffn_norm: to_vec(&take(&p("post_attention_layernorm.weight"))?)?,
                gate_up: Linear::concat_rows(vec![
                    Linear::dense(take(&p("mlp.gate_proj.weight"))?)?,
                    Linear::dense(take(&p("mlp.up_proj.weight"))?)?,
                ])?,
                down: Linear::dense(take(&p("mlp.down_proj.weight"))?)?,
            });
        }
        let embed_t = take("model.embed_tokens.weight")?;
        let output = match take("lm_head.weight") {
            Ok(w) if !tie => Linear::dense(w)?,
            _ => Linear::dense(embed_t.clone())?,
        };
        let embed = Linear::dense(embed_t)?;
        let norm = to_vec(&take("model.norm.weight")?)?;
        let name = file_stem(dir);
        Self::assemble(
            config,
            tokenizer,
            chat_template,
            name,
            embed,
            layers,
            norm,
            output,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn assemble(
        config: ModelConfig,
        tokenizer: Tokenizer,
        chat_template: Option<ChatTemplate>,
        name: String,
        embed: Linear,
        layers: Vec<Layer>,
        norm: Vec<f32>,
        output: Linear,
    ) -> Result<Self> {
        let (q, kv, h, f) = (
            config.q_dim(),
            config.kv_dim(),
            config.hidden_size,
            config.intermediate_size,
        );
        for (i, l) in layers.iter().enumerate() {
            let shapes_ok = l.qkv.rows() == q + 2 * kv
                && l.qkv.cols() == h
                && l.o.rows() == h
                && l.o.cols() == q
                && l.gate_up.rows() == 2 * f
                && l.gate_up.cols() == h
                && l.down.rows() == h
                && l.down.cols() == f
                && l.attn_norm.len() == h
                && l.ffn_norm.len() == h
                && l.qkv_bias.as_ref().is_none_or(|b| b.len() == q + 2 * kv);
            if !shapes_ok {
                return Err(EngineError::Model(format!(
                    "layer {i}: weight shapes do not match the configuration"
                )));
            }
        }
        if embed.cols() != h
            || output.cols() != h
            || output.rows() != config.vocab_size
            || norm.len() != h
        {
            return Err(EngineError::Model(
                "embedding/output shapes do not match the configuration".into(),
            ));
        }
        let rope = RopeTable::new(&config);
        Ok(Self {
            config,
            tokenizer,
            chat_template,
            name,
            embed,
            layers,
            norm,
            output,
            rope,
        })
    }
}
impl TextModel {
    /// The text side of a GGUF file or a Hugging Face model directory, whichever `path` is:
    /// its metadata, tokenizer and template, never its weights.
    pub fn load(path: &Path) -> Result<Self> {
        if path.is_dir() {
            Ok(Self::from_hf_dir(path)?.0)
        } else {
            Self::from_gguf_metadata(&GgufFile::open(path)?.metadata, path)
        }
    }

    fn from_gguf_metadata(metadata: &Metadata, path: &Path) -> Result<Self> {
        let config = ModelConfig::from_gguf(metadata)?;
        let tokenizer = Tokenizer::from_gguf(metadata)?;
        let chat_template = match metadata.string("tokenizer.chat_template") {
            Ok(src) => Some(template_for(&src, &tokenizer)?),
            Err(_) => None,
        };
        let name = metadata
            .string("general.name")
            .unwrap_or_else(|_| file_stem(path));
        Ok(TextModel {
            config,
            tokenizer,
            chat_template,
            name,
        })
    }

    /// The text side of a directory, with its `config.json` as read (the weights' loader
    /// needs more of it).
    fn from_hf_dir(dir: &Path) -> Result<(Self, serde_json::Value)> {
        let config_json = std::fs::read_to_string(dir.join("config.json")).map_err(|e| {
            EngineError::Model(format!("{}: {e}", dir.join("config.json").display()))
        })?;
        let config = ModelConfig::from_hf_json(&config_json)?;
        let raw: serde_json::Value =
            serde_json::from_str(&config_json).map_err(|e| EngineError::Model(e.to_string()))?;
        let eos_ids: Vec<u32> = match raw.get("eos_token_id") {
            Some(serde_json::Value::Number(n)) => {
                n.as_u64().map(|v| v as u32).into_iter().collect()
            }
            Some(serde_json::Value::Array(a)) => a
                .iter()
                .filter_map(|v| v.as_u64().map(|v| v as u32))
                .collect(),
            _ => Vec::new(),
        };
        let tokenizer = Tokenizer::from_hf_dir(dir, &eos_ids)?;
        let chat_template = hf_chat_template(dir)?
            .map(|src| template_for(&src, &tokenizer))
            .transpose()?;

        let name = file_stem(dir);
        Ok((
            TextModel {
                config,
                tokenizer,
                chat_template,
                name,
            },
            raw,
        ))
    }
}

fn template_for(src: &str, tokenizer: &Tokenizer) -> Result<ChatTemplate> {
    let text = |id: Option<u32>| {
        id.and_then(|i| tokenizer.id_to_token(i))
            .unwrap_or_default()
    };
    ChatTemplate::new(
        src,
        &text(tokenizer.bos_token_id()),
        &text(tokenizer.eos_token_ids().first().copied()),
    )
}

fn hf_chat_template(dir: &Path) -> Result<Option<String>> {
    if let Ok(src) = std::fs::read_to_string(dir.join("chat_template.jinja")) {
        return Ok(Some(src));
    }
    let Ok(text) = std::fs::read_to_string(dir.join("tokenizer_config.json")) else {
        return Ok(None);
    };
    let cfg: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| EngineError::Model(format!("tokenizer_config.json: {e}")))?;
    Ok(cfg
        .get("chat_template")
        .and_then(|t| t.as_str())
        .map(str::to_string))
}

fn read_safetensors(dir: &Path) -> Result<HashMap<String, Tensor>> {
    let mut files: Vec<_> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "safetensors"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(EngineError::Model(format!(
            "{}: no .safetensors files",
            dir.display()
        )));
    }
    let mut all = HashMap::new();
    for f in files {
        let loaded = candle_core::safetensors::load(&f, &Device::Cpu)
            .map_err(|e| EngineError::Model(format!("{}: {e}", f.display())))?;
        for (name, t) in loaded {
            let t = match t.dtype() {
                DType::F32 | DType::F16 | DType::BF16 => t.to_dtype(DType::F32)?,
                other => {
                    return Err(EngineError::Model(format!(
                        "tensor `{name}`: dtype {other:?} not supported (f32, f16, bf16)"
                    )))
                }
            };
            all.insert(name, t);
        }
    }
    Ok(all)
}

fn to_vec(t: &Tensor) -> Result<Vec<f32>> {
    Ok(t.flatten_all()?.to_dtype(DType::F32)?.to_vec1()?)
}

/// Embedding lookups read single rows; types without a fast row reader are dequantized once.
fn embedding_from_qtensor(q: candle_core::quantized::QTensor) -> Result<Linear> {
    use candle_core::quantized::GgmlDType as T;
    let (rows, cols) = q.shape().dims2()?;
    match q.dtype() {
        T::Q4_1 => Ok(Linear::Q4_1(Q4_1Matrix::from_ggml(&q.data()?, rows, cols)?)),
        T::Q8_0 => Ok(Linear::Q8_0(Q8_0Matrix::from_ggml(&q.data()?, rows, cols)?)),
        _ => Linear::dense(q.dequantize(&Device::Cpu)?),
    }
}

fn file_stem(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "model".into())
}
