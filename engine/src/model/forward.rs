//! The forward pass of one step: every new token of every sequence goes through each linear
//! layer as one `[T, hidden]` matrix; attention runs per token over its sequence's blocks.

use half::slice::HalfFloatSliceExt;
use rayon::prelude::*;

use super::{Model, ModelConfig, RopeStyle};
use crate::batch::StepBatch;
use crate::error::{EngineError, Result};
use crate::kernels::attention::{paged_attention, AttentionScratch, AttentionShape};
use crate::kernels::elementwise::{rotate_pairs, swiglu};
use crate::kv_cache::KvCache;

/// cos/sin of every (position, frequency) pair, computed once at load.
#[derive(Debug)]
pub(crate) struct RopeTable {
    half: usize,
    style: RopeStyle,
    /// `max_positions × half` each.
    cos: Vec<f32>,
    sin: Vec<f32>,
}

impl RopeTable {
    pub fn new(cfg: &ModelConfig) -> Self {
        let half = cfg.head_dim / 2;
        let max = cfg.max_position_embeddings.max(1);
        // As ggml computes it: theta_i = pos * base^(-2i/d), the power taken step by step in f32.
        let theta_scale = cfg.rope_theta.powf(-2.0 / cfg.head_dim as f32);
        let mut cos = Vec::with_capacity(max * half);
        let mut sin = Vec::with_capacity(max * half);
        for pos in 0..max {
            let mut theta = pos as f32;
            for _ in 0..half {
                cos.push(theta.cos());
                sin.push(theta.sin());
                theta *= theta_scale;
            }
        }
        Self {
            half,
            style: cfg.rope_style,
            cos,
            sin,
        }
    }

    /// cos of every (position, frequency) pair, `max_positions × head_dim/2`.
    pub(crate) fn cos_table(&self) -> &[f32] {
        &self.cos
    }

    pub(crate) fn sin_table(&self) -> &[f32] {
        &self.sin
    }

    /// Rotates every head of `x` (heads of `2 * half` floats) for position `pos`.
    fn apply(&self, x: &mut [f32], pos: usize) {
        let (cos, sin) = (
            &self.cos[pos * self.half..][..self.half],
            &self.sin[pos * self.half..][..self.half],
        );
        let half = self.half;
        for head in x.chunks_exact_mut(2 * half) {
            match self.style {
                RopeStyle::Interleaved => {
                    rotate_pairs(head, (0..half).map(|i| (2 * i, 2 * i + 1)), cos, sin)
                }
                RopeStyle::Neox => rotate_pairs(head, (0..half).map(|i| (i, i + half)), cos, sin),
            }
        }
    }
}

/// Runs `f` on one of rayon's worker threads (at once when already on one). A step makes a
/// few hundred parallel regions; started from a worker, each region's first half runs on that
/// thread while the others steal the rest, instead of the caller sleeping and being woken for
/// every one of them (two context switches per region, a third of a decode step on two cores).
fn on_pool<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    if rayon::current_thread_index().is_some() {
        f()
    } else {
        rayon::scope(|_| f())
    }
}

/// `x / rms(x) * weight`, the squares (in f32) summed in f64 as ggml does.
fn rms_norm(x: &[f32], weight: &[f32], eps: f32, out: &mut [f32]) {
    let sum: f64 = x.iter().map(|&v| (v * v) as f64).sum();
    let mean = (sum / x.len() as f64) as f32;
    let scale = 1.0 / (mean + eps).sqrt();
    for ((o, &v), &w) in out.iter_mut().zip(x).zip(weight) {
        *o = v * scale * w;
    }
}

fn rms_norm_rows(x: &[f32], weight: &[f32], eps: f32) -> Vec<f32> {
    let h = weight.len();
    let mut out = vec![0.0; x.len()];
    for (row, o) in x.chunks_exact(h).zip(out.chunks_exact_mut(h)) {
        rms_norm(row, weight, eps, o);
    }
    out
}

impl Model {
    fn attention_shape(&self, block_size: usize) -> AttentionShape {
        AttentionShape {
            num_heads: self.config.num_heads,
            num_kv_heads: self.config.num_kv_heads,
            head_dim: self.config.head_dim,
            block_size,
        }
    }

    /// Creates a KV cache sized for this model.
    pub fn new_kv_cache(&self, block_size: usize, num_blocks: usize) -> Result<KvCache> {
        KvCache::new(
            self.config.num_layers,
            self.config.kv_dim(),
            block_size,
            num_blocks,
        )
    }

    /// Bytes one KV block of `block_size` tokens takes for this model.
    pub fn kv_bytes_per_block(&self, block_size: usize) -> usize {
        KvCache::bytes_per_block(self.config.num_layers, self.config.kv_dim(), block_size)
    }

    /// Runs one step and returns, for every sequence with `want_logits`, in batch order, the
    /// logits of its last new token.
    pub fn step(&self, cache: &mut KvCache, batch: &StepBatch) -> Result<Vec<Vec<f32>>> {
        on_pool(|| self.step_on_pool(cache, batch))
    }

    fn step_on_pool(&self, cache: &mut KvCache, batch: &StepBatch) -> Result<Vec<Vec<f32>>> {
        let hidden = self.run_layers(cache, batch)?;
        let h = self.config.hidden_size;
        let mut last_rows = Vec::new();
        let mut offset = 0;
        for seq in &batch.seqs {
            offset += seq.tokens.len();
            if seq.want_logits {
                last_rows.extend_from_slice(&hidden[(offset - 1) * h..offset * h]);
            }
        }
        let n = last_rows.len() / h;
        if n == 0 {
            return Ok(Vec::new());
        }
        let normed = rms_norm_rows(&last_rows, &self.norm, self.config.rms_norm_eps);
        let logits = self.output.forward(&normed, n)?;
        Ok(logits
            .chunks_exact(self.config.vocab_size)
            .map(<[f32]>::to_vec)
            .collect())
    }

    /// Final hidden states (after the output norm) of every new token, `[T, hidden]`.
    pub fn hidden_states(&self, cache: &mut KvCache, batch: &StepBatch) -> Result<Vec<f32>> {
        let hidden = on_pool(|| self.run_layers(cache, batch))?;
        Ok(rms_norm_rows(&hidden, &self.norm, self.config.rms_norm_eps))
    }

    /// Mean-pooled, L2-normalized final hidden states of `tokens` (an embedding), computed in
    /// a private cache so it never touches the serving cache.
    pub fn embed(&self, tokens: &[u32]) -> Result<Vec<f32>> {
        if tokens.is_empty() {
            return Err(EngineError::InvalidBatch(
                "cannot embed an empty input".into(),
            ));
        }
        let block_size = 16;
        let blocks = tokens.len().div_ceil(block_size);
        let mut cache = self.new_kv_cache(block_size, blocks)?;
        let table: Vec<u32> = (0..blocks as u32).collect();
        let batch = StepBatch {
            seqs: vec![crate::batch::SequenceStep::contiguous(
                tokens.to_vec(),
                0,
                table,
                block_size,
                false,
            )],
        };
        let states = self.hidden_states(&mut cache, &batch)?;
        let h = self.config.hidden_size;
        let mut pooled = vec![0f64; h];
        for row in states.chunks_exact(h) {
            for (p, &v) in pooled.iter_mut().zip(row) {
                *p += v as f64;
            }
        }
        let n = tokens.len() as f64;
        let norm = pooled
            .iter()
            .map(|v| (v / n) * (v / n))
            .sum::<f64>()
            .sqrt()
            .max(1e-12);
        Ok(pooled.iter().map(|v| (v / n / norm) as f32).collect())
    }

    fn validate(&self, cache: &KvCache, batch: &StepBatch) -> Result<()> {
        let bad = |msg: String| Err(EngineError::InvalidBatch(msg));
        if cache.kv_dim() != self.config.kv_dim() || cache.layers.len() != self.config.num_layers {
            return bad("KV cache was made for another model".into());
        }
        for (i, s) in batch.seqs.iter().enumerate() {
            if s.tokens.is_empty()
                || s.tokens.len() != s.positions.len()
                || s.tokens.len() != s.slot_mapping.len()
            {
                return bad(format!("sequence {i}: tokens, positions and slot_mapping must be non-empty and equally long"));
            }
            if let Some(&t) = s
                .tokens
                .iter()
                .find(|&&t| t as usize >= self.config.vocab_size)
            {
                return bad(format!(
                    "sequence {i}: token id {t} is outside the vocabulary"
                ));
            }
            let last = *s.positions.iter().max().unwrap_or(&0);
            if last >= self.config.max_position_embeddings {
                return bad(format!(
                    "sequence {i}: position {last} exceeds the model's context length"
                ));
            }
            if s.block_table.len() * cache.block_size() <= last {
                return bad(format!(
                    "sequence {i}: block table does not cover position {last}"
                ));
            }
            if s.block_table
                .iter()
                .any(|&b| b as usize >= cache.num_blocks())
                || s.slot_mapping.iter().any(|&x| x >= cache.num_slots())
            {
                return bad(format!("sequence {i}: block or slot outside the cache"));
            }
        }
        Ok(())
    }

    /// The decoder layers over all new tokens; returns the residual stream `[T, hidden]`.
    fn run_layers(&self, cache: &mut KvCache, batch: &StepBatch) -> Result<Vec<f32>> {
        self.validate(cache, batch)?;
        let cfg = &self.config;
        let (h, qd, kvd) = (cfg.hidden_size, cfg.q_dim(), cfg.kv_dim());
        let t = batch.num_tokens();
        // Which sequence and position each flattened token belongs to.
        let mut token_seq = Vec::with_capacity(t);
        let mut token_pos = Vec::with_capacity(t);
        let mut token_slot = Vec::with_capacity(t);
        let mut x = vec![0f32; t * h];
        let mut row = 0;
        for (si, s) in batch.seqs.iter().enumerate() {
            for (j, &tok) in s.tokens.iter().enumerate() {
                self.embed
                    .row(tok as usize, &mut x[row * h..(row + 1) * h])?;
                token_seq.push(si);
                token_pos.push(s.positions[j]);
                token_slot.push(s.slot_mapping[j]);
                row += 1;
            }
        }
        let shape = self.attention_shape(cache.block_size());
        let threads = rayon::current_num_threads().max(1);
        for (li, layer) in self.layers.iter().enumerate() {
            let normed = rms_norm_rows(&x, &layer.attn_norm, cfg.rms_norm_eps);
            let mut qkv = layer.qkv.forward(&normed, t)?;
            let width = qd + 2 * kvd;
            let (kc, vc) = cache.layers[li].kv_mut();
            for (i, r) in qkv.chunks_exact_mut(width).enumerate() {
                if let Some(b) = &layer.qkv_bias {
                    r.iter_mut().zip(b).for_each(|(v, b)| *v += b);
                }
                let (q, kv) = r.split_at_mut(qd);
                self.rope.apply(q, token_pos[i]);
                self.rope.apply(&mut kv[..kvd], token_pos[i]);
                let slot = token_slot[i];
                kc[slot * kvd..(slot + 1) * kvd].convert_from_f32_slice(&kv[..kvd]);
                vc[slot * kvd..(slot + 1) * kvd].convert_from_f32_slice(&kv[kvd..]);
            }
            let (kc, vc) = cache.layers[li].kv();
            let mut attn = vec![0f32; t * qd];
            // Tokens in parallel; a step of few tokens also splits each token's heads, so that
            // a lone decode does not leave the other threads idle (and asleep) through it.
            let hd = cfg.head_dim;
            let heads_per_task = cfg.num_heads.div_ceil((2 * threads).div_ceil(t));
            attn.par_chunks_mut(qd)
                .enumerate()
                .flat_map(|(i, row)| {
                    row.par_chunks_mut(heads_per_task * hd)
                        .enumerate()
                        .map(move |(c, out)| (i, c * heads_per_task, out))
                })
                .for_each_init(AttentionScratch::default, |scratch, (i, h0, out)| {
                    let seq = &batch.seqs[token_seq[i]];
                    let q = &qkv[i * width..i * width + qd];
                    paged_attention(
                        &shape,
                        q,
                        h0..h0 + out.len() / hd,
                        kc,
                        vc,
                        &seq.block_table,
                        token_pos[i] + 1,
                        out,
                        scratch,
                    );
                });
            let o = layer.o.forward(&attn, t)?;
            x.iter_mut().zip(&o).for_each(|(a, b)| *a += b);

            let normed = rms_norm_rows(&x, &layer.ffn_norm, cfg.rms_norm_eps);
            let gu = layer.gate_up.forward(&normed, t)?;
            let f = cfg.intermediate_size;
            let mut act = vec![0f32; t * f];
            for (a, g) in act.chunks_exact_mut(f).zip(gu.chunks_exact(2 * f)) {
                let (gate, up) = g.split_at(f);
                swiglu(gate, up, a);
            }
            let d = layer.down.forward(&act, t)?;
            x.iter_mut().zip(&d).for_each(|(a, b)| *a += b);
        }
        Ok(x)
    }
}
