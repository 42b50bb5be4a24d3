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

use std::ops::Range;

use half::f16;

use super::cpu::{self, Isa};
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

/// Attention output of the query heads `heads` (`heads.len() * head_dim` floats in `out`) of
/// one query token (`q`: all its heads) at position `ctx_len - 1`, attending to positions
/// `0..ctx_len` found through `block_table`. Heads are independent: any split of them gives the
/// same numbers as one call for all, so a lone token's heads can go to different threads.
#[allow(clippy::too_many_arguments)]
pub fn paged_attention(
    shape: &AttentionShape,
    q: &[f32],
    heads: Range<usize>,
    k_cache: &[f16],
    v_cache: &[f16],
    block_table: &[u32],
    ctx_len: usize,
    out: &mut [f32],
    scratch: &mut AttentionScratch,
) {
    let bs = shape.block_size;
    let slots = (0..ctx_len).map(|p| block_table[p / bs] as usize * bs + p % bs);
    attend(shape, q, heads, slots, k_cache, v_cache, out, scratch)
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
        0..shape.num_heads,
        0..ctx_len,
        k,
        v,
        out,
        &mut AttentionScratch::default(),
    )
}

/// Resolves every position's slot once, then runs the kernel for the head size.
#[allow(clippy::too_many_arguments)]
fn attend(
    shape: &AttentionShape,
    q: &[f32],
    heads: Range<usize>,
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
    debug_assert!(heads.end <= shape.num_heads && out.len() == heads.len() * shape.head_dim);
    run_kernel(cpu::isa(), shape, q, heads, bases, k, v, out, floats)
}

/// The kernel of `isa` for the head size, or the plain one with `isa`'s numbers.
#[allow(clippy::too_many_arguments)]
fn run_kernel(
    isa: Isa,
    shape: &AttentionShape,
    q: &[f32],
    heads: Range<usize>,
    bases: &[usize],
    k: &[f16],
    v: &[f16],
    out: &mut [f32],
    floats: &mut Vec<f32>,
) {
    debug_assert!(isa <= cpu::best_supported());
    #[cfg(target_arch = "x86_64")]
    {
        let kernel: Option<Kernel> = match (isa, shape.head_dim) {
            (Isa::Avx512, 32) => Some(attend_avx512::<2>),
            (Isa::Avx512, 64) => Some(attend_avx512::<4>),
            (Isa::Avx512, 96) => Some(attend_avx512::<6>),
            (Isa::Avx512, 128) => Some(attend_avx512::<8>),
            (Isa::Avx512, 256) => Some(attend_avx512::<16>),
            (Isa::Avx2, 32) => Some(attend_avx2::<4>),
            (Isa::Avx2, 64) => Some(attend_avx2::<8>),
            (Isa::Avx2, 96) => Some(attend_avx2::<12>),
            (Isa::Avx2, 128) => Some(attend_avx2::<16>),
            (Isa::Avx2, 256) => Some(attend_avx2::<32>),
            _ => None,
        };
        if let Some(kernel) = kernel {
            // SAFETY: `isa` only names a path whose features the CPU has (callers pass
            // `cpu::isa()` or a path checked against `best_supported`), and each kernel is
            // called with the head size it is instantiated for.
            return unsafe { kernel(shape, q, heads, bases, k, v, out, floats) };
        }
    }
    attend_generic(shape, q, heads, bases, k, v, out, floats, isa)
}

#[cfg(target_arch = "x86_64")]
type Kernel = unsafe fn(
    &AttentionShape,
    &[f32],
    Range<usize>,
    &[usize],
    &[f16],
    &[f16],
    &mut [f32],
    &mut Vec<f32>,
) -> ();

/// The kernel written plainly, element by element: the reference the SIMD kernels must equal
/// bit for bit (scores summed in `isa`'s lane order), and the path for other head sizes.
#[allow(clippy::too_many_arguments)]
fn attend_generic(
    shape: &AttentionShape,
    q: &[f32],
    heads: Range<usize>,
    bases: &[usize],
    k: &[f16],
    v: &[f16],
    out: &mut [f32],
    scratch: &mut Vec<f32>,
    isa: Isa,
) {
    let hd = shape.head_dim;
    let group = shape.num_heads / shape.num_kv_heads;
    let scale = 1.0 / (hd as f32).sqrt();
    scratch.clear();
    scratch.resize(2 * hd, 0.0);
    let (q16, acc) = scratch.split_at_mut(hd);
    for h in heads.clone() {
        for (d, &x) in q16.iter_mut().zip(&q[h * hd..(h + 1) * hd]) {
            *d = round_f16(x);
        }
        acc.fill(0.0);
        let mut max = f32::NEG_INFINITY;
        let mut sum = 0.0f32;
        let off = (h / group) * hd;
        for &base in bases {
            let base = base + off;
            let s = dot_f16(q16, &k[base..base + hd], isa) * scale;
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
        for (o, &a) in out[(h - heads.start) * hd..(h - heads.start + 1) * hd]
            .iter_mut()
            .zip(acc.iter())
        {
            *o = a * inv;
        }
    }
}

/// `ggml_vec_dot_f16` as ggml builds it for `isa`: four f32 accumulators of `W` lanes (8 for
/// AVX2, 16 for AVX-512) over steps of `4 * W` elements, reduced as that build reduces them;
/// the elements past the last full step are added in f64.
fn dot_f16(x: &[f32], y: &[f16], isa: Isa) -> f32 {
    let w = if isa == Isa::Avx512 { 16 } else { 8 };
    let n = x.len();
    let np = n - n % (4 * w);
    let mut acc = [[0f32; 16]; 4];
    for i in (0..np).step_by(4 * w) {
        for (j, a) in acc.iter_mut().enumerate() {
            for (l, al) in a[..w].iter_mut().enumerate() {
                let e = i + j * w + l;
                *al = x[e].mul_add(y[e].to_f32(), *al);
            }
        }
    }
    let mut r = [0f32; 16];
    for (l, rl) in r[..w].iter_mut().enumerate() {
        *rl = (acc[0][l] + acc[2][l]) + (acc[1][l] + acc[3][l]);
    }
    let total = if w == 8 {
        // GGML_F32x8_REDUCE: the 128-bit halves added, then two horizontal adds.
        let t = [r[0] + r[4], r[1] + r[5], r[2] + r[6], r[3] + r[7]];
        (t[0] + t[1]) + (t[2] + t[3])
    } else {
        // GCC's `_mm512_reduce_add_ps`: 256-bit halves, 128-bit halves, then {0+2, 1+3}.
        let mut t = [0f32; 8];
        for (l, tl) in t.iter_mut().enumerate() {
            *tl = r[l + 8] + r[l];
        }
        let u = [t[4] + t[0], t[5] + t[1], t[6] + t[2], t[7] + t[3]];
        (u[0] + u[2]) + (u[1] + u[3])
    };
    let mut sum = total as f64;
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
    heads: Range<usize>,
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
    for h in heads.clone() {
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
        let sum = online_softmax(weights, rescale);
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
        let op = out[(h - heads.start) * hd..(h - heads.start + 1) * hd].as_mut_ptr();
        for (i, a) in acc.iter().enumerate() {
            _mm256_storeu_ps(op.add(8 * i), _mm256_mul_ps(*a, inv));
        }
    }
}

/// The online-softmax recurrence over one head's scores, in position order: each score in
/// `weights` becomes its weight; where the maximum rose, `rescale` gets the factor for what was
/// accumulated before (NaN elsewhere). Returns the sum of weights. Inlined into each kernel.
#[inline(always)]
fn online_softmax(weights: &mut [f32], rescale: &mut [f32]) -> f32 {
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
        // ggml is compiled with FMA contraction, which fuses this one.
        sum = sum.mul_add(ms, vs);
    }
    sum
}

/// The AVX-512 build's arithmetic: scores from four 16-lane accumulators reduced as GCC's
/// `_mm512_reduce_add_ps` does, the softmax recurrence and the f16 accumulation as in
/// [`attend_avx2`], with the accumulator in `V` registers of 16 lanes (`V * 16` = head size).
/// Where the head size is not a multiple of 64, the score elements past the last full step of
/// 64 are added one by one in f64, as `ggml_vec_dot_f16` adds its leftovers.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vl,avx512dq,fma,f16c")]
#[allow(clippy::too_many_arguments)]
unsafe fn attend_avx512<const V: usize>(
    shape: &AttentionShape,
    q: &[f32],
    heads: Range<usize>,
    bases: &[usize],
    k: &[f16],
    v: &[f16],
    out: &mut [f32],
    scratch: &mut Vec<f32>,
) {
    use std::arch::x86_64::*;
    const NEAREST: i32 = _MM_FROUND_TO_NEAREST_INT;
    let hd = V * 16;
    debug_assert_eq!(shape.head_dim, hd);
    // Registers covered by whole steps of four; the rest are the dot product's leftovers.
    let full = V / 4 * 4;
    let group = shape.num_heads / shape.num_kv_heads;
    let scale = 1.0 / (hd as f32).sqrt();
    let ctx_len = bases.len();
    macro_rules! load16 {
        ($p:expr) => {
            _mm512_cvtph_ps(_mm256_loadu_si256($p as *const __m256i))
        };
    }
    macro_rules! round {
        ($x:expr) => {
            _mm512_cvtph_ps(_mm512_cvtps_ph::<NEAREST>($x))
        };
    }
    scratch.clear();
    scratch.resize(2 * ctx_len, 0.0);
    let (weights, rescale) = scratch.split_at_mut(ctx_len);
    for h in heads.clone() {
        let off = (h / group) * hd;
        let qh = q[h * hd..(h + 1) * hd].as_ptr();
        let mut q16 = [_mm512_setzero_ps(); V];
        for (i, r) in q16.iter_mut().enumerate() {
            *r = round!(_mm512_loadu_ps(qh.add(16 * i)));
        }
        for (p, w) in weights.iter_mut().enumerate() {
            let kp = k[bases[p] + off..bases[p] + off + hd].as_ptr();
            let mut lanes = [_mm512_setzero_ps(); 4];
            for i in 0..full {
                lanes[i % 4] = _mm512_fmadd_ps(q16[i], load16!(kp.add(16 * i)), lanes[i % 4]);
            }
            let r = _mm512_add_ps(
                _mm512_add_ps(lanes[0], lanes[2]),
                _mm512_add_ps(lanes[1], lanes[3]),
            );
            let t = _mm256_add_ps(_mm512_extractf32x8_ps::<1>(r), _mm512_castps512_ps256(r));
            let u = _mm_add_ps(_mm256_extractf128_ps::<1>(t), _mm256_castps256_ps128(t));
            let x = _mm_add_ps(u, _mm_shuffle_ps::<0b01_00_11_10>(u, u));
            let mut score = (_mm_cvtss_f32(x) + _mm_cvtss_f32(_mm_movehdup_ps(x))) as f64;
            for (i, qi) in q16.iter().enumerate().skip(full) {
                let mut qs = [0f32; 16];
                _mm512_storeu_ps(qs.as_mut_ptr(), *qi);
                for (l, q) in qs.iter().enumerate() {
                    score += (q * (*kp.add(16 * i + l)).to_f32()) as f64;
                }
            }
            *w = score as f32 * scale;
        }
        let sum = online_softmax(weights, rescale);
        let mut acc = [_mm512_setzero_ps(); V];
        for p in 0..ctx_len {
            let r = rescale[p];
            if !r.is_nan() {
                let m = _mm512_set1_ps(r);
                for a in acc.iter_mut() {
                    *a = round!(_mm512_mul_ps(*a, m));
                }
            }
            let w = _mm512_set1_ps(weights[p]);
            let vp = v[bases[p] + off..bases[p] + off + hd].as_ptr();
            for (i, a) in acc.iter_mut().enumerate() {
                *a = round!(_mm512_fmadd_ps(load16!(vp.add(16 * i)), w, *a));
            }
        }
        let inv = _mm512_set1_ps(if sum == 0.0 { 0.0 } else { 1.0 / sum });
        let op = out[(h - heads.start) * hd..(h - heads.start + 1) * hd].as_mut_ptr();
        for (i, a) in acc.iter().enumerate() {
            _mm512_storeu_ps(op.add(16 * i), _mm512_mul_ps(*a, inv));
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
    /// fact bit for bit), every kernel path this CPU has equals the plain element-by-element
    /// reference with that path's lane order bit for bit, and all are attention: within f16
    /// accumulation error of textbook attention computed in f64 on the same (f16) keys and
    /// values.
    #[test]
    fn paged_equals_contiguous() {
        let isas: Vec<Isa> = [Isa::Scalar, Isa::Avx2, Isa::Avx512]
            .into_iter()
            .filter(|&i| i <= cpu::best_supported())
            .collect();
        for head_dim in [64, 128, 96, 32, 16] {
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
                        0..shape.num_heads,
                        &k_cache,
                        &v_cache,
                        &blocks,
                        ctx,
                        &mut paged,
                        &mut AttentionScratch::default(),
                    );
                    // Heads split into ranges (as a lone token's are across threads): the
                    // same bits.
                    let hd = shape.head_dim;
                    for split in [1, 2, 4] {
                        let mut parts = vec![0.0; shape.q_dim()];
                        for (c, o) in parts.chunks_mut(split * hd).enumerate() {
                            let h0 = c * split;
                            paged_attention(
                                &shape,
                                &q,
                                h0..(h0 + split).min(shape.num_heads),
                                &k_cache,
                                &v_cache,
                                &blocks,
                                ctx,
                                o,
                                &mut AttentionScratch::default(),
                            );
                        }
                        assert_eq!(parts, paged, "heads in ranges of {split}");
                    }
                    contiguous_attention(&shape, &q, &k, &v, ctx, &mut contiguous);
                    let bases: Vec<usize> = (0..ctx).map(|p| p * kv_dim).collect();
                    let isa = cpu::isa();
                    let all = 0..shape.num_heads;
                    attend_generic(
                        &shape,
                        &q,
                        all.clone(),
                        &bases,
                        &k,
                        &v,
                        &mut plain,
                        &mut Vec::new(),
                        isa,
                    );
                    for &other in &isas {
                        let mut fast = vec![0.0; shape.q_dim()];
                        let mut slow = vec![0.0; shape.q_dim()];
                        let mut scratch = Vec::new();
                        run_kernel(
                            other,
                            &shape,
                            &q,
                            all.clone(),
                            &bases,
                            &k,
                            &v,
                            &mut fast,
                            &mut scratch,
                        );
                        attend_generic(
                            &shape,
                            &q,
                            all.clone(),
                            &bases,
                            &k,
                            &v,
                            &mut slow,
                            &mut scratch,
                            other,
                        );
                        let bits = |x: &[f32]| x.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
                        assert_eq!(
                            bits(&fast),
                            bits(&slow),
                            "{other:?} hd {head_dim} ctx {ctx}"
                        );
                    }
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
