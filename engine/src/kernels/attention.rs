//! Attention of each new token over its sequence's cached keys and values, read through the
//! sequence's block table (paged attention), plus a plain contiguous reference for tests.
//!
//! The arithmetic is llama.cpp's CPU flash attention over an f16 KV cache (its defaults), one
//! query row at a time (`ggml_compute_forward_flash_attn_ext_f16_one_chunk`): keys and values
//! are stored as f16, the query is rounded to f16, each score is an f16·f16 dot product summed
//! in ggml's lane order, the softmax runs online over positions in order, and the weighted
//! values are accumulated in f16. Matching it operation for operation is what keeps greedy
//! decoding token-identical to llama.cpp on a 4-bit model, where a rounding flip early in the
//! network changes logits by tenths.
//!
//! What llama.cpp does differently and Starfire does not copy: a ubatch of 64 or more query
//! rows goes through its tiled kernel (f32 accumulation), and a single query row over 512 or
//! more cached positions is split across threads. Both make a token's numbers depend on what
//! else is in the batch or on the thread count; here every token is computed the same way
//! whatever shares its step.

use half::f16;

use super::quant::round_f16;

/// Shapes shared by every attention call of a model.
#[derive(Clone, Copy, Debug)]
pub struct AttentionShape {
    pub num_heads: usize,
    pub num_kv_heads: usize,
    pub head_dim: usize,
    pub block_size: usize,
}

impl AttentionShape {
    pub fn q_dim(&self) -> usize {
        self.num_heads * self.head_dim
    }

    pub fn kv_dim(&self) -> usize {
        self.num_kv_heads * self.head_dim
    }
}

/// Buffers one thread reuses from call to call.
#[derive(Debug, Default)]
pub struct AttentionScratch {
    /// Where each position's keys and values start in the cache.
    bases: Vec<usize>,
    floats: Vec<f32>,
}

/// Attention output (`q_dim` floats) of one query token at position `ctx_len - 1`, attending
/// to positions `0..ctx_len` found through `block_table`.
#[allow(clippy::too_many_arguments)]
pub fn paged_attention(
    shape: &AttentionShape,
    q: &[f32],
    k_cache: &[f16],
    v_cache: &[f16],
    block_table: &[u32],
    ctx_len: usize,
    out: &mut [f32],
    scratch: &mut AttentionScratch,
) {
    let bs = shape.block_size;
    let slots = (0..ctx_len).map(|p| block_table[p / bs] as usize * bs + p % bs);
    attend(shape, q, slots, k_cache, v_cache, out, scratch)
}

/// The same computation over contiguous `[ctx_len, kv_dim]` keys and values.
pub fn contiguous_attention(
    shape: &AttentionShape,
    q: &[f32],
    k: &[f16],
    v: &[f16],
    ctx_len: usize,
    out: &mut [f32],
) {
    attend(
        shape,
        q,
        0..ctx_len,
        k,
        v,
        out,
        &mut AttentionScratch::default(),
    )
}

/// Resolves every position's slot once, then runs the kernel for the head size.
fn attend(
    shape: &AttentionShape,
    q: &[f32],
    slots: impl Iterator<Item = usize>,
    k: &[f16],
    v: &[f16],
    out: &mut [f32],
    scratch: &mut AttentionScratch,
) {
    let kv_dim = shape.kv_dim();
    scratch.bases.clear();
    scratch.bases.extend(slots.map(|s| s * kv_dim));
    let (bases, floats) = (&scratch.bases[..], &mut scratch.floats);
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2")
        && std::is_x86_feature_detected!("fma")
        && std::is_x86_feature_detected!("f16c")
    {
        // SAFETY: the features the kernel is compiled for are present, and it is called with
        // the head size it is instantiated for.
        unsafe {
            let kernel = match shape.head_dim {
                32 => attend_avx2::<4>,
                64 => attend_avx2::<8>,
                96 => attend_avx2::<12>,
                128 => attend_avx2::<16>,
                256 => attend_avx2::<32>,
                _ => attend_generic,
            };
            return kernel(shape, q, bases, k, v, out, floats);
        }
    }
    attend_generic(shape, q, bases, k, v, out, floats)
}

/// The kernel written plainly, element by element: the reference the SIMD kernel must equal
/// bit for bit, and the path for head sizes that are not a multiple of 32.
#[allow(clippy::too_many_arguments)]
fn attend_generic(
    shape: &AttentionShape,
    q: &[f32],
    bases: &[usize],
    k: &[f16],
    v: &[f16],
    out: &mut [f32],
    scratch: &mut Vec<f32>,
) {
    let hd = shape.head_dim;
    let group = shape.num_heads / shape.num_kv_heads;
    let scale = 1.0 / (hd as f32).sqrt();
    scratch.clear();
    scratch.resize(2 * hd, 0.0);
    let (q16, acc) = scratch.split_at_mut(hd);
    for h in 0..shape.num_heads {
        for (d, &x) in q16.iter_mut().zip(&q[h * hd..(h + 1) * hd]) {
            *d = round_f16(x);
        }
        acc.fill(0.0);
        let mut max = f32::NEG_INFINITY;
        let mut sum = 0.0f32;
        let off = (h / group) * hd;
        for &base in bases {
            let base = base + off;
            let s = dot_f16(q16, &k[base..base + hd]) * scale;
            let (ms, vs) = if s > max {
                // A new maximum: rescale what was accumulated; this position weighs e^0.
                let ms = (max - s).exp();
                max = s;
                for a in acc.iter_mut() {
                    *a = round_f16(*a * ms);
                }
                (ms, 1.0)
            } else {
                (1.0, (s - max).exp())
            };
            for (a, &x) in acc.iter_mut().zip(&v[base..base + hd]) {
                *a = round_f16(x.to_f32().mul_add(vs, *a));
            }
            // ggml is compiled with FMA contraction, which fuses this one.
            sum = sum.mul_add(ms, vs);
        }
        let inv = if sum == 0.0 { 0.0 } else { 1.0 / sum };
        for (o, &a) in out[h * hd..(h + 1) * hd].iter_mut().zip(acc.iter()) {
            *o = a * inv;
        }
    }
}

/// `ggml_vec_dot_f16` as built for AVX2: four 8-lane f32 accumulators over steps of 32
/// elements, reduced pairwise; the elements past the last full step are added in f64.
fn dot_f16(x: &[f32], y: &[f16]) -> f32 {
    let n = x.len();
    let np = n & !31;
    let mut acc = [[0f32; 8]; 4];
    for i in (0..np).step_by(32) {
        for (j, a) in acc.iter_mut().enumerate() {
            for (l, al) in a.iter_mut().enumerate() {
                let e = i + j * 8 + l;
                *al = x[e].mul_add(y[e].to_f32(), *al);
            }
        }
    }
    let mut r = [0f32; 8];
    for (l, rl) in r.iter_mut().enumerate() {
        *rl = (acc[0][l] + acc[2][l]) + (acc[1][l] + acc[3][l]);
    }
    let t = [r[0] + r[4], r[1] + r[5], r[2] + r[6], r[3] + r[7]];
    let mut sum = ((t[0] + t[1]) + (t[2] + t[3])) as f64;
    for e in np..n {
        sum += (x[e] * y[e].to_f32()) as f64;
    }
    sum as f32
}

/// The same arithmetic in AVX2 + F16C registers for a head size known at compile time, in
/// three passes per head: every score (independent dot products), then the online-softmax
/// recurrence (scalar: where the maximum rises, each position's weight), then the f16
/// accumulation with the accumulator held in `V` registers of 8 lanes (`V * 8` = head size).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
#[allow(clippy::too_many_arguments)]
unsafe fn attend_avx2<const V: usize>(
    shape: &AttentionShape,
    q: &[f32],
    bases: &[usize],
    k: &[f16],
    v: &[f16],
    out: &mut [f32],
    scratch: &mut Vec<f32>,
) {
    use std::arch::x86_64::*;
    const NEAREST: i32 = _MM_FROUND_TO_NEAREST_INT;
    let hd = V * 8;
    debug_assert_eq!(shape.head_dim, hd);
    let group = shape.num_heads / shape.num_kv_heads;
    let scale = 1.0 / (hd as f32).sqrt();
    let ctx_len = bases.len();
    // Macros rather than closures, so the intrinsics inline under this function's features.
    macro_rules! load16 {
        ($p:expr) => {
            _mm256_cvtph_ps(_mm_loadu_si128($p as *const __m128i))
        };
    }
    macro_rules! round {
        ($x:expr) => {
            _mm256_cvtph_ps(_mm256_cvtps_ph::<NEAREST>($x))
        };
    }
    // Per position: its score, then its weight; and, where it raised the maximum, the factor
    // that rescales what was accumulated before it (NaN elsewhere).
    scratch.clear();
    scratch.resize(2 * ctx_len, 0.0);
    let (weights, rescale) = scratch.split_at_mut(ctx_len);
    for h in 0..shape.num_heads {
        let off = (h / group) * hd;
        let qh = q[h * hd..(h + 1) * hd].as_ptr();
        let mut q16 = [_mm256_setzero_ps(); V];
        for (i, r) in q16.iter_mut().enumerate() {
            *r = round!(_mm256_loadu_ps(qh.add(8 * i)));
        }
        for (p, w) in weights.iter_mut().enumerate() {
            let kp = k[bases[p] + off..bases[p] + off + hd].as_ptr();
            let mut lanes = [_mm256_setzero_ps(); 4];
            for i in 0..V {
                lanes[i % 4] = _mm256_fmadd_ps(q16[i], load16!(kp.add(8 * i)), lanes[i % 4]);
            }
            let r = _mm256_add_ps(
                _mm256_add_ps(lanes[0], lanes[2]),
                _mm256_add_ps(lanes[1], lanes[3]),
            );
            let t0 = _mm_add_ps(_mm256_castps256_ps128(r), _mm256_extractf128_ps::<1>(r));
            let t1 = _mm_hadd_ps(t0, t0);
            *w = _mm_cvtss_f32(_mm_hadd_ps(t1, t1)) * scale;
        }
        let mut max = f32::NEG_INFINITY;
        let mut sum = 0.0f32;
        for (w, r) in weights.iter_mut().zip(rescale.iter_mut()) {
            let s = *w;
            let (ms, vs) = if s > max {
                let ms = (max - s).exp();
                max = s;
                *r = ms;
                (ms, 1.0)
            } else {
                *r = f32::NAN;
                (1.0, (s - max).exp())
            };
            *w = vs;
            sum = sum.mul_add(ms, vs);
        }
        let mut acc = [_mm256_setzero_ps(); V];
        for p in 0..ctx_len {
            let r = rescale[p];
            if !r.is_nan() {
                let m = _mm256_set1_ps(r);
                for a in acc.iter_mut() {
                    *a = round!(_mm256_mul_ps(*a, m));
                }
            }
            let w = _mm256_set1_ps(weights[p]);
            let vp = v[bases[p] + off..bases[p] + off + hd].as_ptr();
            for (i, a) in acc.iter_mut().enumerate() {
                *a = round!(_mm256_fmadd_ps(load16!(vp.add(8 * i)), w, *a));
            }
        }
        let inv = _mm256_set1_ps(if sum == 0.0 { 0.0 } else { 1.0 / sum });
        let op = out[h * hd..(h + 1) * hd].as_mut_ptr();
        for (i, a) in acc.iter().enumerate() {
            _mm256_storeu_ps(op.add(8 * i), _mm256_mul_ps(*a, inv));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn random(n: usize, seed: &mut u64) -> Vec<f32> {
        (0..n)
            .map(|_| {
                *seed ^= *seed << 13;
                *seed ^= *seed >> 7;
                *seed ^= *seed << 17;
                (*seed % 10_000) as f32 / 5_000.0 - 1.0
            })
            .collect()
    }

    fn halves(x: &[f32]) -> Vec<f16> {
        x.iter().map(|&v| f16::from_f32(v)).collect()
    }

    /// Several sequences of lengths crossing block boundaries, their blocks scattered over the
    /// pool in shuffled order: paged attention equals contiguous attention within 1e-4 (in
    /// fact bit for bit), the kernel in use equals the plain element-by-element reference bit
    /// for bit, and both are attention: within f16 accumulation error of textbook attention
    /// computed in f64 on the same (f16) keys and values.
    #[test]
    fn paged_equals_contiguous() {
        for head_dim in [64, 16] {
            let shape = AttentionShape {
                num_heads: 6,
                num_kv_heads: 2,
                head_dim,
                block_size: 16,
            };
            let kv_dim = shape.kv_dim();
            let num_blocks = 40;
            let mut seed = 0x9E3779B97F4A7C15;
            let mut k_cache = vec![f16::ZERO; num_blocks * 16 * kv_dim];
            let mut v_cache = vec![f16::ZERO; num_blocks * 16 * kv_dim];
            // A shuffled list of free blocks handed out to the sequences.
            let mut free: Vec<u32> = (0..num_blocks as u32).collect();
            for i in (1..free.len()).rev() {
                let j = (random(1, &mut seed)[0].abs() * i as f32) as usize % (i + 1);
                free.swap(i, j);
            }
            for &len in &[1usize, 15, 16, 17, 33, 100, 160] {
                let blocks: Vec<u32> = (0..len.div_ceil(16)).map(|_| free.pop().unwrap()).collect();
                let k = halves(&random(len * kv_dim, &mut seed));
                let v = halves(&random(len * kv_dim, &mut seed));
                for p in 0..len {
                    let slot = blocks[p / 16] as usize * 16 + p % 16;
                    k_cache[slot * kv_dim..][..kv_dim].copy_from_slice(&k[p * kv_dim..][..kv_dim]);
                    v_cache[slot * kv_dim..][..kv_dim].copy_from_slice(&v[p * kv_dim..][..kv_dim]);
                }
                // Query every position of the sequence (causal prefill) against its prefix.
                for ctx in 1..=len {
                    let q = random(shape.q_dim(), &mut seed);
                    let mut paged = vec![0.0; shape.q_dim()];
                    let mut contiguous = vec![0.0; shape.q_dim()];
                    let mut plain = vec![0.0; shape.q_dim()];
                    let mut reference = vec![0.0; shape.q_dim()];
                    paged_attention(
                        &shape,
                        &q,
                        &k_cache,
                        &v_cache,
                        &blocks,
                        ctx,
                        &mut paged,
                        &mut AttentionScratch::default(),
                    );
                    contiguous_attention(&shape, &q, &k, &v, ctx, &mut contiguous);
                    let bases: Vec<usize> = (0..ctx).map(|p| p * kv_dim).collect();
                    attend_generic(&shape, &q, &bases, &k, &v, &mut plain, &mut Vec::new());
                    naive_reference(&shape, &q, &k, &v, ctx, &mut reference);
                    for (((a, c), p), b) in
                        paged.iter().zip(&contiguous).zip(&plain).zip(&reference)
                    {
                        assert!(
                            (a - c).abs() <= 1e-4 * c.abs().max(1e-2),
                            "hd {head_dim} len {len} ctx {ctx}: paged {a} vs contiguous {c}"
                        );
                        assert_eq!(
                            a.to_bits(),
                            p.to_bits(),
                            "hd {head_dim} len {len} ctx {ctx}: kernel {a} vs plain {p}"
                        );
                        assert!(
                            (a - b).abs() <= 4e-3 * b.abs().max(0.25),
                            "hd {head_dim} len {len} ctx {ctx}: paged {a} vs f64 {b}"
                        );
                    }
                }
            }
        }
    }

    /// Textbook attention in f64, independent of the code under test (the query unrounded).
    fn naive_reference(
        shape: &AttentionShape,
        q: &[f32],
        k: &[f16],
        v: &[f16],
        ctx: usize,
        out: &mut [f32],
    ) {
        let hd = shape.head_dim;
        let group = shape.num_heads / shape.num_kv_heads;
        let at = |x: &[f16], p: usize, kvh: usize, i: usize| {
            x[p * shape.kv_dim() + kvh * hd + i].to_f64()
        };
        for h in 0..shape.num_heads {
            let kvh = h / group;
            let s: Vec<f64> = (0..ctx)
                .map(|p| {
                    (0..hd)
                        .map(|i| q[h * hd + i] as f64 * at(k, p, kvh, i))
                        .sum::<f64>()
                        / (hd as f64).sqrt()
                })
                .collect();
            let m = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let e: Vec<f64> = s.iter().map(|x| (x - m).exp()).collect();
            let z: f64 = e.iter().sum();
            for i in 0..hd {
                out[h * hd + i] = (0..ctx).map(|p| e[p] / z * at(v, p, kvh, i)).sum::<f64>() as f32;
            }
        }
    }
}
