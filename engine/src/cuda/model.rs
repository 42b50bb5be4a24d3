//! The forward pass on a [`Device`]: the CPU engine's [`Model`] weights uploaded (Q4_1 and Q8_0
//! kept quantized, norms as f32), the paged KV cache in device memory, and one step computed
//! by the kernels of `kernels/` in the CPU engine's order. The scheduler's block tables and
//! slot mappings drive the cache exactly as on the CPU. Only the logits of the sequences that
//! want them come back to the host.

use super::device::{bytes_of, bytes_of_mut, Device, KArg, Launch};
use super::ATTENTION_PARTITION;
use crate::batch::StepBatch;
use crate::error::{EngineError, Result};
use crate::kernels::Linear;
use crate::model::{Model, RopeStyle};

/// A Q4_1 matrix's scales as the kernels read them: one u32 a block, f16 d in the low half and
/// f16 m in the high half (its quants are used as they are).
pub fn q4_1_scales(m: &crate::kernels::quant::Q4_1Matrix) -> Vec<u32> {
    use half::f16;
    m.d.iter()
        .zip(&m.m)
        .map(|(&d, &mm)| {
            f16::from_f32(d).to_bits() as u32 | (f16::from_f32(mm).to_bits() as u32) << 16
        })
        .collect()
}

/// A weight matrix in device memory.
enum DevLinear<B> {
    /// Quants (16 bytes a block) and `scales`: packed (d, m) f16 pairs.
    Q4_1 {
        qs: B,
        scales: B,
        rows: usize,
        cols: usize,
    },
    /// Quants (32 bytes a block) and `scales`: f16 d.
    Q8_0 {
        qs: B,
        scales: B,
        rows: usize,
        cols: usize,
    },
    F32 {
        w: B,
        rows: usize,
        cols: usize,
    },
}

impl<B> DevLinear<B> {
    fn upload<D: Device<Buf = B>>(dev: &D, name: &str, l: &Linear) -> Result<Self> {
        use half::f16;
        Ok(match l {
            Linear::Q4_1(m) => {
                Self::Q4_1 {
                    qs: dev.upload(&m.qs)?,
                    scales: dev.upload(bytes_of(&q4_1_scales(m)))?,
                    rows: m.rows,
                    cols: m.cols,
                }
            }
            Linear::Q8_0(m) => {
                let d: Vec<u16> = m.d.iter().map(|&d| f16::from_f32(d).to_bits()).collect();
                let qs: Vec<u8> = m.qs.iter().map(|&q| q as u8).collect();
                Self::Q8_0 {
                    qs: dev.upload(&qs)?,
                    scales: dev.upload(bytes_of(&d))?,
                    rows: m.rows,
                    cols: m.cols,
                }
            }
            Linear::Dense { rows, cols, weight } => {
                let w: Vec<f32> = weight.flatten_all()?.to_vec1()?;
                Self::F32 {
                    w: dev.upload(bytes_of(&w))?,
                    rows: *rows,
                    cols: *cols,
                }
            }
            other => {
                return Err(EngineError::Cuda(format!(
                    "{name}: weights stored as {other:?} are not supported by the CUDA backend (Q4_1, Q8_0, f16/f32 are)"
                )))
            }
        })
    }

    fn rows(&self) -> usize {
        match self {
            Self::Q4_1 { rows, .. } | Self::Q8_0 { rows, .. } | Self::F32 { rows, .. } => *rows,
        }
    }
}

struct DevLayer<B> {
    attn_norm: B,
    qkv: DevLinear<B>,
    qkv_bias: Option<B>,
    o: DevLinear<B>,
    ffn_norm: B,
    gate_up: DevLinear<B>,
    down: DevLinear<B>,
}

/// Buffers a step reuses, grown to the largest step seen.
struct Scratch<B> {
    tokens: usize,
    x: B,
    normed: B,
    qkv: B,
    attn: B,
    mlp: B,
    act: B,
    xq: B,
    xds: B,
    part_ml: B,
    part_acc: B,
    parts: usize,
}

/// A model's weights and KV cache on a device.
pub struct DeviceModel<D: Device> {
    dev: D,
    cfg: crate::model::ModelConfig,
    embed: DevLinear<D::Buf>,
    layers: Vec<DevLayer<D::Buf>>,
    norm: D::Buf,
    output: DevLinear<D::Buf>,
    cos: D::Buf,
    sin: D::Buf,
    /// Per layer: keys and values, `[num_blocks * block_size, kv_dim]` f16 each.
    kv: Vec<(D::Buf, D::Buf)>,
    block_size: usize,
    num_blocks: usize,
    scratch: Option<Scratch<D::Buf>>,
}

fn grid1(n: usize, per_block: usize) -> (u32, u32, u32) {
    (n.div_ceil(per_block) as u32, 1, 1)
}

impl<D: Device> DeviceModel<D> {
    /// Uploads `model`'s weights and allocates a KV cache of `num_blocks` blocks of
    /// `block_size` tokens.
    pub fn new(dev: D, model: &Model, block_size: usize, num_blocks: usize) -> Result<Self> {
        let cfg = model.config.clone();
        if !cfg.head_dim.is_multiple_of(32) || cfg.head_dim > 256 {
            return Err(EngineError::Cuda(format!(
                "head size {} is not supported by the CUDA attention kernel (a multiple of 32, at most 256)",
                cfg.head_dim
            )));
        }
        let group = cfg.num_heads / cfg.num_kv_heads.max(1);
        if group * 32 > 1024 {
            return Err(EngineError::Cuda(format!(
                "{group} query heads per KV head is more than the CUDA attention kernel's 32"
            )));
        }
        let mut layers = Vec::with_capacity(model.layers.len());
        for (i, l) in model.layers.iter().enumerate() {
            let name = |n: &str| format!("blk.{i}.{n}");
            layers.push(DevLayer {
                attn_norm: dev.upload(bytes_of(&l.attn_norm))?,
                qkv: DevLinear::upload(&dev, &name("qkv"), &l.qkv)?,
                qkv_bias: match &l.qkv_bias {
                    Some(b) => Some(dev.upload(bytes_of(b))?),
                    None => None,
                },
                o: DevLinear::upload(&dev, &name("attn_output"), &l.o)?,
                ffn_norm: dev.upload(bytes_of(&l.ffn_norm))?,
                gate_up: DevLinear::upload(&dev, &name("ffn_gate_up"), &l.gate_up)?,
                down: DevLinear::upload(&dev, &name("ffn_down"), &l.down)?,
            });
        }
        let kv_bytes = num_blocks * block_size * cfg.kv_dim() * 2;
        let kv = (0..cfg.num_layers)
            .map(|_| Ok((dev.alloc(kv_bytes)?, dev.alloc(kv_bytes)?)))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            embed: DevLinear::upload(&dev, "token_embd", &model.embed)?,
            output: DevLinear::upload(&dev, "output", &model.output)?,
            norm: dev.upload(bytes_of(&model.norm))?,
            cos: dev.upload(bytes_of(model.rope.cos_table()))?,
            sin: dev.upload(bytes_of(model.rope.sin_table()))?,
            layers,
            kv,
            block_size,
            num_blocks,
            scratch: None,
            cfg,
            dev,
        })
    }

    pub fn device(&self) -> &D {
        &self.dev
    }

    fn scratch(&mut self, t: usize, parts: usize) -> Result<()> {
        if self
            .scratch
            .as_ref()
            .is_some_and(|s| s.tokens >= t && s.parts >= parts)
        {
            return Ok(());
        }
        let c = &self.cfg;
        let (t, parts) = (
            t.max(self.scratch.as_ref().map_or(0, |s| s.tokens)),
            parts.max(self.scratch.as_ref().map_or(1, |s| s.parts)),
        );
        let widest = [
            c.hidden_size,
            c.q_dim() + 2 * c.kv_dim(),
            2 * c.intermediate_size,
        ]
        .into_iter()
        .max()
        .unwrap_or(0);
        let f4 = |n: usize| self.dev.alloc(4 * n);
        self.scratch = Some(Scratch {
            tokens: t,
            x: f4(t * c.hidden_size)?,
            normed: f4(t * c.hidden_size)?,
            qkv: f4(t * (c.q_dim() + 2 * c.kv_dim()))?,
            attn: f4(t * c.q_dim())?,
            mlp: f4(t * 2 * c.intermediate_size.max(c.hidden_size))?,
            act: f4(t * c.intermediate_size)?,
            xq: self.dev.alloc(t * widest)?,
            xds: f4(t * widest / 16)?,
            part_ml: f4(t * c.num_heads * parts * 2)?,
            part_acc: f4(t * c.num_heads * parts * c.head_dim)?,
            parts,
        });
        Ok(())
    }

    /// `y = x · Wᵀ` for `t` tokens: 8-bit activations and integer dot products for quantized
    /// weights, plain floats for f32 ones.
    fn linear(
        dev: &D,
        s: &Scratch<D::Buf>,
        w: &DevLinear<D::Buf>,
        x: &D::Buf,
        y: &D::Buf,
        t: usize,
    ) -> Result<()> {
        let mv = Launch::new((w.rows().div_ceil(4) as u32, t.div_ceil(8) as u32, 1), 128);
        let quantize = |cols: usize| {
            let nblocks = t * cols / 32;
            dev.launch(
                "quantize_q8_1",
                Launch::new(grid1(nblocks, 8), 256),
                &[
                    KArg::Buf(x),
                    KArg::Buf(&s.xq),
                    KArg::Buf(&s.xds),
                    KArg::I32(nblocks as i32),
                ],
            )
        };
        match w {
            DevLinear::Q4_1 {
                qs,
                scales,
                rows,
                cols,
            }
            | DevLinear::Q8_0 {
                qs,
                scales,
                rows,
                cols,
            } => {
                quantize(*cols)?;
                let kernel = match w {
                    DevLinear::Q4_1 { .. } => "matvec_q4_1",
                    _ => "matvec_q8_0",
                };
                dev.launch(
                    kernel,
                    mv,
                    &[
                        KArg::Buf(qs),
                        KArg::Buf(scales),
                        KArg::Buf(&s.xq),
                        KArg::Buf(&s.xds),
                        KArg::Buf(y),
                        KArg::I32(*rows as i32),
                        KArg::I32(*cols as i32),
                        KArg::I32(t as i32),
                    ],
                )
            }
            DevLinear::F32 { w, rows, cols } => dev.launch(
                "matvec_f32",
                mv,
                &[
                    KArg::Buf(w),
                    KArg::Buf(x),
                    KArg::Buf(y),
                    KArg::I32(*rows as i32),
                    KArg::I32(*cols as i32),
                    KArg::I32(t as i32),
                ],
            ),
        }
    }

    /// Runs one step and returns, for every sequence with `want_logits`, in batch order, the
    /// logits of its last new token (what `Model::step` returns on the CPU).
    pub fn step(&mut self, batch: &StepBatch) -> Result<Vec<Vec<f32>>> {
        let c = self.cfg.clone();
        let h = c.hidden_size;
        let t = batch.num_tokens();
        if t == 0 {
            return Ok(Vec::new());
        }
        // Flatten the step as the CPU forward pass does, checking what the kernels trust.
        let slots = self.num_blocks * self.block_size;
        let max_blocks = batch
            .seqs
            .iter()
            .map(|s| s.block_table.len())
            .max()
            .unwrap_or(0)
            .max(1);
        let (mut ids, mut pos, mut slot, mut seq_of, mut ctx) = (
            Vec::with_capacity(t),
            Vec::with_capacity(t),
            Vec::with_capacity(t),
            Vec::with_capacity(t),
            Vec::with_capacity(t),
        );
        let mut tables = vec![0i32; batch.seqs.len() * max_blocks];
        let mut last_rows = Vec::new();
        for (si, s) in batch.seqs.iter().enumerate() {
            if s.tokens.is_empty()
                || s.tokens.len() != s.positions.len()
                || s.tokens.len() != s.slot_mapping.len()
            {
                return Err(EngineError::InvalidBatch(format!("sequence {si}: tokens, positions and slot_mapping must be non-empty and equally long")));
            }
            for (j, &b) in s.block_table.iter().enumerate() {
                if b as usize >= self.num_blocks {
                    return Err(EngineError::InvalidBatch(format!(
                        "sequence {si}: block {b} outside the cache"
                    )));
                }
                tables[si * max_blocks + j] = b as i32;
            }
            for j in 0..s.tokens.len() {
                let (tok, p, sl) = (s.tokens[j], s.positions[j], s.slot_mapping[j]);
                if tok as usize >= c.vocab_size {
                    return Err(EngineError::InvalidBatch(format!(
                        "sequence {si}: token id {tok} is outside the vocabulary"
                    )));
                }
                if p >= c.max_position_embeddings
                    || s.block_table.len() * self.block_size <= p
                    || sl >= slots
                {
                    return Err(EngineError::InvalidBatch(format!(
                        "sequence {si}: position {p} or slot {sl} outside the cache or context"
                    )));
                }
                ids.push(tok as i32);
                pos.push(p as i32);
                slot.push(sl as i64);
                seq_of.push(si as i32);
                ctx.push(p as i32 + 1);
            }
            if s.want_logits {
                last_rows.push(ids.len() as i32 - 1);
            }
        }
        let parts = ctx
            .iter()
            .map(|&n| n as usize)
            .max()
            .unwrap_or(1)
            .div_ceil(ATTENTION_PARTITION);
        self.scratch(t, parts)?;
        let dev = &self.dev;
        let s = self.scratch.as_ref().expect("allocated above");
        let up = |v: &[u8]| dev.upload(v);
        let (ids_b, pos_b, slot_b, seq_b, ctx_b, tables_b) = (
            up(bytes_of(&ids))?,
            up(bytes_of(&pos))?,
            up(bytes_of(&slot))?,
            up(bytes_of(&seq_of))?,
            up(bytes_of(&ctx))?,
            up(bytes_of(&tables))?,
        );
        let eps = c.rms_norm_eps;
        let rows = |n: usize| Launch::new((n as u32, 1, 1), 256);

        // The embeddings of every new token.
        let tail = [KArg::Buf(&ids_b), KArg::Buf(&s.x), KArg::I32(h as i32)];
        let (kernel, mut args) = match &self.embed {
            DevLinear::Q4_1 { qs, scales, .. } => {
                ("embed_q4_1", vec![KArg::Buf(qs), KArg::Buf(scales)])
            }
            DevLinear::Q8_0 { qs, scales, .. } => {
                ("embed_q8_0", vec![KArg::Buf(qs), KArg::Buf(scales)])
            }
            DevLinear::F32 { w, .. } => ("embed_f32", vec![KArg::Buf(w)]),
        };
        args.extend(tail);
        dev.launch(kernel, rows(t), &args)?;
        let group = c.num_heads / c.num_kv_heads;
        let att_smem = ((group * c.head_dim + 2 * 32 * (c.head_dim + 1)) * 4) as u32;
        for (li, l) in self.layers.iter().enumerate() {
            if li == 0 {
                dev.launch(
                    "rms_norm",
                    rows(t),
                    &[
                        KArg::Buf(&s.x),
                        KArg::Buf(&l.attn_norm),
                        KArg::Buf(&s.normed),
                        KArg::I32(h as i32),
                        KArg::F32(eps),
                    ],
                )?;
            }
            Self::linear(dev, s, &l.qkv, &s.normed, &s.qkv, t)?;
            let (kc, vc) = &self.kv[li];
            dev.launch(
                "rope_write_kv",
                Launch::new((t as u32, 1, 1), 128),
                &[
                    KArg::Buf(&s.qkv),
                    l.qkv_bias.as_ref().map_or(KArg::Null, KArg::Buf),
                    KArg::Buf(kc),
                    KArg::Buf(vc),
                    KArg::Buf(&pos_b),
                    KArg::Buf(&slot_b),
                    KArg::Buf(&self.cos),
                    KArg::Buf(&self.sin),
                    KArg::I32(c.num_heads as i32),
                    KArg::I32(c.num_kv_heads as i32),
                    KArg::I32(c.head_dim as i32),
                    KArg::I32((c.rope_style == RopeStyle::Neox) as i32),
                ],
            )?;
            dev.launch(
                "attention_partial",
                Launch {
                    grid: (t as u32, c.num_kv_heads as u32, parts as u32),
                    block: (group * 32) as u32,
                    smem: att_smem,
                },
                &[
                    KArg::Buf(&s.qkv),
                    KArg::Buf(kc),
                    KArg::Buf(vc),
                    KArg::Buf(&tables_b),
                    KArg::I32(max_blocks as i32),
                    KArg::Buf(&seq_b),
                    KArg::Buf(&ctx_b),
                    KArg::Buf(&s.part_ml),
                    KArg::Buf(&s.part_acc),
                    KArg::I32(c.num_heads as i32),
                    KArg::I32(c.num_kv_heads as i32),
                    KArg::I32(c.head_dim as i32),
                    KArg::I32(self.block_size as i32),
                    KArg::I32(parts as i32),
                    KArg::F32(1.0 / (c.head_dim as f32).sqrt()),
                ],
            )?;
            dev.launch(
                "attention_reduce",
                Launch::new((t as u32, c.num_heads as u32, 1), c.head_dim as u32),
                &[
                    KArg::Buf(&s.part_ml),
                    KArg::Buf(&s.part_acc),
                    KArg::Buf(&ctx_b),
                    KArg::Buf(&s.attn),
                    KArg::I32(c.num_heads as i32),
                    KArg::I32(c.head_dim as i32),
                    KArg::I32(parts as i32),
                ],
            )?;
            Self::linear(dev, s, &l.o, &s.attn, &s.mlp, t)?;
            dev.launch(
                "add_rms_norm",
                rows(t),
                &[
                    KArg::Buf(&s.x),
                    KArg::Buf(&s.mlp),
                    KArg::Buf(&l.ffn_norm),
                    KArg::Buf(&s.normed),
                    KArg::I32(h as i32),
                    KArg::F32(eps),
                ],
            )?;
            Self::linear(dev, s, &l.gate_up, &s.normed, &s.mlp, t)?;
            let n = t * c.intermediate_size;
            dev.launch(
                "silu_mul",
                Launch::new(grid1(n, 256), 256),
                &[
                    KArg::Buf(&s.mlp),
                    KArg::Buf(&s.act),
                    KArg::I32(c.intermediate_size as i32),
                    KArg::I64(n as i64),
                ],
            )?;
            Self::linear(dev, s, &l.down, &s.act, &s.mlp, t)?;
            // The residual, fused with the next layer's attention norm (or the output norm).
            let next_norm = self.layers.get(li + 1).map_or(&self.norm, |n| &n.attn_norm);
            dev.launch(
                "add_rms_norm",
                rows(t),
                &[
                    KArg::Buf(&s.x),
                    KArg::Buf(&s.mlp),
                    KArg::Buf(next_norm),
                    KArg::Buf(&s.normed),
                    KArg::I32(h as i32),
                    KArg::F32(eps),
                ],
            )?;
        }
        let n = last_rows.len();
        if n == 0 {
            return Ok(Vec::new());
        }
        let picks = up(bytes_of(&last_rows))?;
        let last = dev.alloc(4 * n * h)?;
        dev.launch(
            "gather_rows",
            rows(n),
            &[
                KArg::Buf(&s.normed),
                KArg::Buf(&picks),
                KArg::Buf(&last),
                KArg::I32(h as i32),
            ],
        )?;
        let logits = dev.alloc(4 * n * c.vocab_size)?;
        Self::linear(dev, s, &self.output, &last, &logits, n)?;
        let mut host = vec![0f32; n * c.vocab_size];
        dev.read(&logits, bytes_of_mut(&mut host))?;
        Ok(host
            .chunks_exact(c.vocab_size)
            .map(<[f32]>::to_vec)
            .collect())
    }
}

impl<D> crate::model::StepForward for DeviceModel<D>
where
    D: Device + Send,
    D::Buf: Send,
{
    fn step(&mut self, batch: &StepBatch) -> Result<Vec<Vec<f32>>> {
        DeviceModel::step(self, batch)
    }
}

/// The CUDA forward pass of `model` on GPU 0 with a KV cache of `num_blocks` blocks of
/// `block_size` tokens in device memory. Without a driver: the clear error of
/// [`super::probe_driver`].
pub fn cuda_forward(
    model: &Model,
    block_size: usize,
    num_blocks: usize,
) -> Result<Box<dyn crate::model::StepForward>> {
    let dev = super::device::CudaDevice::open(0)?;
    Ok(Box::new(DeviceModel::new(
        dev, model, block_size, num_blocks,
    )?))
}
