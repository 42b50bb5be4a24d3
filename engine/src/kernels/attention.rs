//! Attention of each new token over its sequence's cached keys and values, read through the
//! sequence's block table (paged attention), plus a plain contiguous reference for tests.

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

/// Attention output (`q_dim` floats) of one query token at position `ctx_len - 1`, attending
/// to positions `0..ctx_len` found through `block_table`. `scores` is scratch space.
#[allow(clippy::too_many_arguments)]
pub fn paged_attention(
    shape: &AttentionShape,
    q: &[f32],
    k_cache: &[f32],
    v_cache: &[f32],
    block_table: &[u32],
    ctx_len: usize,
    out: &mut [f32],
    scores: &mut Vec<f32>,
) {
    let bs = shape.block_size;
    let slot = |p: usize| block_table[p / bs] as usize * bs + p % bs;
    attend(shape, q, ctx_len, slot, k_cache, v_cache, out, scores)
}

/// The same computation over contiguous `[ctx_len, kv_dim]` keys and values.
pub fn contiguous_attention(
    shape: &AttentionShape,
    q: &[f32],
    k: &[f32],
    v: &[f32],
    ctx_len: usize,
    out: &mut [f32],
) {
    let mut scores = Vec::new();
    attend(shape, q, ctx_len, |p| p, k, v, out, &mut scores)
}

#[allow(clippy::too_many_arguments)]
fn attend(
    shape: &AttentionShape,
    q: &[f32],
    ctx_len: usize,
    slot: impl Fn(usize) -> usize,
    k: &[f32],
    v: &[f32],
    out: &mut [f32],
    scores: &mut Vec<f32>,
) {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
        // SAFETY: the features the function is compiled for are present.
        unsafe { return attend_avx2(shape, q, ctx_len, &slot, k, v, out, scores) };
    }
    attend_generic(shape, q, ctx_len, &slot, k, v, out, scores)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn attend_avx2(
    shape: &AttentionShape,
    q: &[f32],
    ctx_len: usize,
    slot: &dyn Fn(usize) -> usize,
    k: &[f32],
    v: &[f32],
    out: &mut [f32],
    scores: &mut Vec<f32>,
) {
    attend_generic(shape, q, ctx_len, slot, k, v, out, scores)
}

/// Scores for all heads position by position (a slot holds every KV head contiguously), a
/// max-subtracted softmax per head, then the weighted sum of values.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn attend_generic(
    shape: &AttentionShape,
    q: &[f32],
    ctx_len: usize,
    slot: &dyn Fn(usize) -> usize,
    k: &[f32],
    v: &[f32],
    out: &mut [f32],
    scores: &mut Vec<f32>,
) {
    let hd = shape.head_dim;
    let kv_dim = shape.kv_dim();
    let group = shape.num_heads / shape.num_kv_heads;
    let scale = 1.0 / (hd as f32).sqrt();
    scores.clear();
    scores.resize(shape.num_heads * ctx_len, 0.0);
    for p in 0..ctx_len {
        let base = slot(p) * kv_dim;
        for h in 0..shape.num_heads {
            let kh = &k[base + (h / group) * hd..][..hd];
            scores[h * ctx_len + p] = dot(&q[h * hd..][..hd], kh) * scale;
        }
    }
    for h in 0..shape.num_heads {
        let s = &mut scores[h * ctx_len..(h + 1) * ctx_len];
        let max = s.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut sum = 0.0f32;
        for x in s.iter_mut() {
            *x = (*x - max).exp();
            sum += *x;
        }
        let inv = 1.0 / sum;
        for x in s.iter_mut() {
            *x *= inv;
        }
    }
    out[..shape.q_dim()].fill(0.0);
    for p in 0..ctx_len {
        let base = slot(p) * kv_dim;
        for h in 0..shape.num_heads {
            let w = scores[h * ctx_len + p];
            let vh = &v[base + (h / group) * hd..][..hd];
            for (o, &x) in out[h * hd..(h + 1) * hd].iter_mut().zip(vh) {
                *o += w * x;
            }
        }
    }
}

/// A dot product written so the compiler keeps eight independent sums (vectorizable).
#[inline(always)]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let chunks = a.len() / 8;
    for c in 0..chunks {
        let (x, y) = (&a[c * 8..c * 8 + 8], &b[c * 8..c * 8 + 8]);
        for j in 0..8 {
            acc[j] += x[j] * y[j];
        }
    }
    let mut sum = 0.0;
    for j in chunks * 8..a.len() {
        sum += a[j] * b[j];
    }
    sum + acc.iter().sum::<f32>()
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

    /// Several sequences of lengths crossing block boundaries, their blocks scattered over the
    /// pool in shuffled order: paged attention equals contiguous attention within 1e-4.
    #[test]
    fn paged_equals_contiguous() {
        let shape = AttentionShape {
            num_heads: 6,
            num_kv_heads: 2,
            head_dim: 16,
            block_size: 16,
        };
        let kv_dim = shape.kv_dim();
        let num_blocks = 40;
        let mut seed = 0x9E3779B97F4A7C15;
        let mut k_cache = vec![0.0; num_blocks * 16 * kv_dim];
        let mut v_cache = vec![0.0; num_blocks * 16 * kv_dim];
        // A shuffled list of free blocks handed out to the sequences.
        let mut free: Vec<u32> = (0..num_blocks as u32).collect();
        for i in (1..free.len()).rev() {
            let j = (random(1, &mut seed)[0].abs() * i as f32) as usize % (i + 1);
            free.swap(i, j);
        }
        for &len in &[1usize, 15, 16, 17, 33, 100, 160] {
            let blocks: Vec<u32> = (0..len.div_ceil(16)).map(|_| free.pop().unwrap()).collect();
            let k = random(len * kv_dim, &mut seed);
            let v = random(len * kv_dim, &mut seed);
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
                let mut reference = vec![0.0; shape.q_dim()];
                paged_attention(
                    &shape,
                    &q,
                    &k_cache,
                    &v_cache,
                    &blocks,
                    ctx,
                    &mut paged,
                    &mut Vec::new(),
                );
                contiguous_attention(&shape, &q, &k, &v, ctx, &mut contiguous);
                naive_reference(&shape, &q, &k, &v, ctx, &mut reference);
                for ((a, c), b) in paged.iter().zip(&contiguous).zip(&reference) {
                    assert!(
                        (a - c).abs() <= 1e-4 * c.abs().max(1e-2),
                        "len {len} ctx {ctx}: paged {a} vs contiguous {c}"
                    );
                    assert!(
                        (a - b).abs() <= 1e-4 * b.abs().max(1e-2),
                        "len {len} ctx {ctx}: paged {a} vs f64 {b}"
                    );
                }
            }
        }
    }

    /// Textbook attention in f64, independent of the code under test.
    fn naive_reference(
        shape: &AttentionShape,
        q: &[f32],
        k: &[f32],
        v: &[f32],
        ctx: usize,
        out: &mut [f32],
    ) {
        let hd = shape.head_dim;
        let group = shape.num_heads / shape.num_kv_heads;
        for h in 0..shape.num_heads {
            let kvh = h / group;
            let s: Vec<f64> = (0..ctx)
                .map(|p| {
                    (0..hd)
                        .map(|i| q[h * hd + i] as f64 * k[p * shape.kv_dim() + kvh * hd + i] as f64)
                        .sum::<f64>()
                        / (hd as f64).sqrt()
                })
                .collect();
            let m = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let e: Vec<f64> = s.iter().map(|x| (x - m).exp()).collect();
            let z: f64 = e.iter().sum();
            for i in 0..hd {
                out[h * hd + i] = (0..ctx)
                    .map(|p| e[p] / z * v[p * shape.kv_dim() + kvh * hd + i] as f64)
                    .sum::<f64>() as f32;
            }
        }
    }
}
