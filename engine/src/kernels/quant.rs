//! 8-bit activation blocks and the quantized weight formats we have fast kernels for.
//!
//! Like llama.cpp, a linear layer over Q4_1 or Q8_0 weights first quantizes its input rows to
//! 8-bit blocks of 32 (Q8_1 / Q8_0: one scale per block, plus the scaled sum for Q8_1), then
//! takes integer dot products block by block. The roundings (ties to even, scales stored as f16)
//! follow ggml so our numbers stay within a hair of llama.cpp's.

use half::f16;

use crate::error::{EngineError, Result};

/// Elements per quantization block (ggml's QK4_1 = QK8_0 = QK8_1 = 32).
pub const QK: usize = 32;

/// `x` rounded to the nearest f16 (ties to even), as f32.
pub(crate) fn round_f16(x: f32) -> f32 {
    f16::from_f32(x).to_f32()
}

/// Rows of activations quantized to 8 bits in blocks of [`QK`].
#[derive(Clone, Debug, Default)]
pub struct QuantizedRows {
    pub rows: usize,
    pub cols: usize,
    /// `rows * cols` quantized values.
    pub qs: Vec<i8>,
    /// One scale per block (f16-rounded).
    pub d: Vec<f32>,
    /// One `d * Σ qs` per block (f16-rounded), used against weights with a minimum (Q4_1).
    pub s: Vec<f32>,
    /// `s` regrouped for the kernels: for each group of four rows (`4g..4g + 4`, full groups
    /// only) and block `b`, the four rows' values side by side at `(g * blocks + b) * 4`.
    pub s4: Vec<f32>,
}

impl QuantizedRows {
    /// Quantizes `x` (`rows × cols`, row-major); `cols` must be a multiple of [`QK`].
    pub fn quantize(x: &[f32], rows: usize, cols: usize) -> Self {
        debug_assert_eq!(x.len(), rows * cols);
        debug_assert_eq!(cols % QK, 0);
        let nb = rows * cols / QK;
        let mut out = Self {
            rows,
            cols,
            qs: vec![0; rows * cols],
            d: vec![0.0; nb],
            s: vec![0.0; nb],
            s4: Vec::new(),
        };
        #[cfg(target_arch = "x86_64")]
        if super::cpu::isa() >= super::cpu::Isa::Avx2 {
            // SAFETY: the feature the function is compiled for is present.
            unsafe { quantize_blocks_avx2(x, &mut out) };
        } else {
            quantize_blocks(x, &mut out);
        }
        out.regroup_sums();
        out
    }

    fn regroup_sums(&mut self) {
        let nb = self.blocks_per_row();
        let groups = self.rows / 4;
        self.s4 = vec![0.0; groups * nb * 4];
        for g in 0..groups {
            for b in 0..nb {
                for i in 0..4 {
                    self.s4[(g * nb + b) * 4 + i] = self.s[(4 * g + i) * nb + b];
                }
            }
        }
    }

    pub fn blocks_per_row(&self) -> usize {
        self.cols / QK
    }
}

/// [`quantize_blocks`] a block of 32 at a time in four 8-lane registers, as ggml's AVX2
/// `quantize_row_q8_1` does: the same maximum, the same `v * (127 / amax)` products rounded to
/// the nearest even, the same integer sums, so the same bytes and scales.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn quantize_blocks_avx2(x: &[f32], out: &mut QuantizedRows) {
    use std::arch::x86_64::*;
    assert!(x.len() == out.qs.len() && out.d.len() * QK == x.len() && out.s.len() == out.d.len());
    let sign = _mm256_set1_ps(-0.0);
    let (lo, hi) = (_mm256_set1_epi32(-127), _mm256_set1_epi32(127));
    // `packs` interleaves the 128-bit lanes; this puts the 32 bytes back in order.
    let order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    for b in 0..out.d.len() {
        let p = x.as_ptr().add(b * QK);
        let v = [
            _mm256_loadu_ps(p),
            _mm256_loadu_ps(p.add(8)),
            _mm256_loadu_ps(p.add(16)),
            _mm256_loadu_ps(p.add(24)),
        ];
        let m = _mm256_max_ps(
            _mm256_max_ps(_mm256_andnot_ps(sign, v[0]), _mm256_andnot_ps(sign, v[1])),
            _mm256_max_ps(_mm256_andnot_ps(sign, v[2]), _mm256_andnot_ps(sign, v[3])),
        );
        let m4 = _mm_max_ps(_mm256_extractf128_ps(m, 1), _mm256_castps256_ps128(m));
        let m2 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
        let amax = _mm_cvtss_f32(_mm_max_ss(m2, _mm_movehdup_ps(m2)));
        let d = amax / 127.0;
        let id = _mm256_set1_ps(if amax != 0.0 { 127.0 / amax } else { 0.0 });
        // A loop, not a closure: the intrinsics stay inline under this function's features.
        let mut q = [_mm256_setzero_si256(); 4];
        for (q, v) in q.iter_mut().zip(v) {
            let r = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
                _mm256_mul_ps(v, id),
            );
            *q = _mm256_min_epi32(_mm256_max_epi32(_mm256_cvtps_epi32(r), lo), hi);
        }
        let total = _mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3]));
        let t4 = _mm_add_epi32(
            _mm256_extracti128_si256(total, 1),
            _mm256_castsi256_si128(total),
        );
        let t2 = _mm_add_epi32(t4, _mm_shuffle_epi32(t4, 0b01_00_11_10));
        let sum = _mm_cvtsi128_si32(_mm_add_epi32(t2, _mm_shuffle_epi32(t2, 0b10_11_00_01)));
        let bytes = _mm256_permutevar8x32_epi32(
            _mm256_packs_epi16(
                _mm256_packs_epi32(q[0], q[1]),
                _mm256_packs_epi32(q[2], q[3]),
            ),
            order,
        );
        _mm256_storeu_si256(out.qs.as_mut_ptr().add(b * QK) as *mut __m256i, bytes);
        out.d[b] = round_f16(d);
        out.s[b] = round_f16(d * sum as f32);
    }
}

#[inline(always)]
fn quantize_blocks(x: &[f32], out: &mut QuantizedRows) {
    for (b, (block, qs)) in x
        .chunks_exact(QK)
        .zip(out.qs.chunks_exact_mut(QK))
        .enumerate()
    {
        let amax = block.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let d = amax / 127.0;
        let id = if amax != 0.0 { 127.0 / amax } else { 0.0 };
        let mut sum = 0i32;
        for (q, &v) in qs.iter_mut().zip(block) {
            let r = (v * id).round_ties_even() as i32;
            *q = r.clamp(-127, 127) as i8;
            sum += r;
        }
        out.d[b] = round_f16(d);
        out.s[b] = round_f16(d * sum as f32);
    }
}

/// A Q4_1 weight matrix (`rows × cols`): value = d * q + m with q in 0..16, per block of 32.
/// Stored as separate arrays (scales as f32) so the kernels read them without conversion.
#[derive(Clone, Debug)]
pub struct Q4_1Matrix {
    pub rows: usize,
    pub cols: usize,
    pub d: Vec<f32>,
    pub m: Vec<f32>,
    /// 16 bytes per block: element j in the low nibble of byte j, element j+16 in the high one.
    pub qs: Vec<u8>,
}

/// A Q8_0 weight matrix (`rows × cols`): value = d * q, per block of 32.
#[derive(Clone, Debug)]
pub struct Q8_0Matrix {
    pub rows: usize,
    pub cols: usize,
    pub d: Vec<f32>,
    pub qs: Vec<i8>,
}

fn check_shape(
    name: &str,
    raw: &[u8],
    rows: usize,
    cols: usize,
    block_bytes: usize,
) -> Result<usize> {
    if !cols.is_multiple_of(QK) {
        return Err(EngineError::Model(format!(
            "{name}: row length {cols} is not a multiple of {QK}"
        )));
    }
    let nb = rows * cols / QK;
    if raw.len() != nb * block_bytes {
        return Err(EngineError::Model(format!(
            "{name}: {} bytes for {rows}x{cols}, expected {}",
            raw.len(),
            nb * block_bytes
        )));
    }
    Ok(nb)
}

impl Q4_1Matrix {
    const BLOCK_BYTES: usize = 20;

    /// From ggml's `block_q4_1` layout: `{ f16 d; f16 m; u8 qs[16]; }`.
    pub fn from_ggml(raw: &[u8], rows: usize, cols: usize) -> Result<Self> {
        let nb = check_shape("Q4_1", raw, rows, cols, Self::BLOCK_BYTES)?;
        let mut me = Self {
            rows,
            cols,
            d: Vec::with_capacity(nb),
            m: Vec::with_capacity(nb),
            qs: Vec::with_capacity(nb * 16),
        };
        for block in raw.chunks_exact(Self::BLOCK_BYTES) {
            me.d.push(f16::from_le_bytes([block[0], block[1]]).to_f32());
            me.m.push(f16::from_le_bytes([block[2], block[3]]).to_f32());
            me.qs.extend_from_slice(&block[4..20]);
        }
        Ok(me)
    }

    /// Row `r` as f32 (for tests and embedding lookups).
    pub fn dequantize_row(&self, r: usize, out: &mut [f32]) {
        let nb = self.cols / QK;
        for b in 0..nb {
            let (d, m) = (self.d[r * nb + b], self.m[r * nb + b]);
            let qs = &self.qs[(r * nb + b) * 16..][..16];
            for j in 0..16 {
                out[b * QK + j] = d * (qs[j] & 0x0F) as f32 + m;
                out[b * QK + j + 16] = d * (qs[j] >> 4) as f32 + m;
            }
        }
    }

    /// Stacks matrices with the same row length on top of each other.
    pub fn concat_rows(parts: &[&Self]) -> Self {
        let cols = parts[0].cols;
        let mut me = Self {
            rows: 0,
            cols,
            d: Vec::new(),
            m: Vec::new(),
            qs: Vec::new(),
        };
        for p in parts {
            debug_assert_eq!(p.cols, cols);
            me.rows += p.rows;
            me.d.extend_from_slice(&p.d);
            me.m.extend_from_slice(&p.m);
            me.qs.extend_from_slice(&p.qs);
        }
        me
    }
}

impl Q8_0Matrix {
    const BLOCK_BYTES: usize = 34;

    /// From ggml's `block_q8_0` layout: `{ f16 d; i8 qs[32]; }`.
    pub fn from_ggml(raw: &[u8], rows: usize, cols: usize) -> Result<Self> {
        let nb = check_shape("Q8_0", raw, rows, cols, Self::BLOCK_BYTES)?;
        let mut me = Self {
            rows,
            cols,
            d: Vec::with_capacity(nb),
            qs: Vec::with_capacity(nb * QK),
        };
        for block in raw.chunks_exact(Self::BLOCK_BYTES) {
            me.d.push(f16::from_le_bytes([block[0], block[1]]).to_f32());
            me.qs.extend(block[2..34].iter().map(|&b| b as i8));
        }
        Ok(me)
    }

    pub fn dequantize_row(&self, r: usize, out: &mut [f32]) {
        let nb = self.cols / QK;
        for b in 0..nb {
            let d = self.d[r * nb + b];
            for j in 0..QK {
                out[b * QK + j] = d * self.qs[(r * nb + b) * QK + j] as f32;
            }
        }
    }

    pub fn concat_rows(parts: &[&Self]) -> Self {
        let cols = parts[0].cols;
        let mut me = Self {
            rows: 0,
            cols,
            d: Vec::new(),
            qs: Vec::new(),
        };
        for p in parts {
            me.rows += p.rows;
            me.d.extend_from_slice(&p.d);
            me.qs.extend_from_slice(&p.qs);
        }
        me
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantize_roundtrips_within_half_a_step() {
        let x: Vec<f32> = (0..64)
            .map(|i| ((i * 37 % 23) as f32 - 11.0) * 0.173)
            .collect();
        let q = QuantizedRows::quantize(&x, 2, 32);
        for (i, &v) in x.iter().enumerate() {
            let back = q.d[i / QK] * q.qs[i] as f32;
            assert!(
                (back - v).abs() <= q.d[i / QK] * 0.51 + 1e-3,
                "{i}: {v} vs {back}"
            );
        }
        let sum: i32 = q.qs[..32].iter().map(|&v| v as i32).sum();
        assert!((q.s[0] - q.d[0] * sum as f32).abs() < 1e-2 * q.s[0].abs().max(1.0));
    }

    /// The AVX2 quantizer gives the plain one's bytes and scales, ties and zero blocks included.
    #[test]
    #[cfg(target_arch = "x86_64")]
    fn simd_quantize_equals_plain() {
        if !std::arch::is_x86_feature_detected!("avx2") {
            eprintln!("skipped: no AVX2");
            return;
        }
        let (rows, cols) = (5, 128);
        let mut s = 12345u32;
        let mut x: Vec<f32> = (0..rows * cols)
            .map(|_| {
                s = s.wrapping_mul(1664525).wrapping_add(1013904223);
                ((s >> 8) as f32 / (1 << 24) as f32 * 2.0 - 1.0) * 3.0
            })
            .collect();
        // A zero block, and a block of exact halves (127 / amax = 1: ties at .5).
        x[32..64].fill(0.0);
        for (i, v) in x[64..96].iter_mut().enumerate() {
            *v = if i == 0 {
                127.0
            } else {
                (i as f32 - 16.0) + 0.5
            };
        }
        let mut plain = QuantizedRows {
            rows,
            cols,
            qs: vec![0; rows * cols],
            d: vec![0.0; rows * cols / QK],
            s: vec![0.0; rows * cols / QK],
            s4: Vec::new(),
        };
        let mut simd = plain.clone();
        quantize_blocks(&x, &mut plain);
        // SAFETY: AVX2 was detected above.
        unsafe { quantize_blocks_avx2(&x, &mut simd) };
        assert_eq!(simd.qs, plain.qs);
        assert_eq!(simd.d, plain.d);
        assert_eq!(simd.s, plain.s);
    }

    #[test]
    fn zero_block_quantizes_to_zero() {
        let q = QuantizedRows::quantize(&[0.0; 32], 1, 32);
        assert!(q.qs.iter().all(|&v| v == 0));
        assert_eq!(q.d[0], 0.0);
    }

    #[test]
    fn q4_1_layout_matches_ggml() {
        // d = 0.5, m = -1.0, nibbles: byte j = (j) | (15 - j) << 4
        let mut raw = Vec::new();
        raw.extend_from_slice(&f16::from_f32(0.5).to_le_bytes());
        raw.extend_from_slice(&f16::from_f32(-1.0).to_le_bytes());
        raw.extend((0..16u8).map(|j| j | ((15 - j) << 4)));
        let m = Q4_1Matrix::from_ggml(&raw, 1, 32).unwrap();
        let mut row = vec![0.0; 32];
        m.dequantize_row(0, &mut row);
        assert_eq!(row[3], 0.5 * 3.0 - 1.0);
        assert_eq!(row[16 + 3], 0.5 * 12.0 - 1.0);
        assert!(Q4_1Matrix::from_ggml(&raw[..19], 1, 32).is_err());
    }
}
