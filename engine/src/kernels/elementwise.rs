//! Element-wise kernels that follow ggml's CPU arithmetic exactly: the SwiGLU gate with ggml's
//! vectorised `expf`, and the RoPE rotation with ggml's fused multiply-adds. Both run on AVX2 +
//! FMA where the CPU has them (as ggml built for the machine does) and fall back to the same
//! formulas in scalar code elsewhere. SwiGLU follows ggml's AVX-512 build on the AVX-512 path.

use super::cpu::{self, Isa};

/// `out[i] = silu(gate[i]) * up[i]`, where `silu(x) = x / (1 + e^-x)`.
///
/// As `ggml_vec_swiglu_f32` splits the work for the path in use ([`cpu::isa`]): blocks of 16
/// with AVX-512's vectorised `expf`, or blocks of 8 with AVX2's (the scalar path computes
/// AVX2's numbers lane by lane); the remainder uses the C library's `expf`.
pub fn swiglu(gate: &[f32], up: &[f32], out: &mut [f32]) {
    swiglu_with(cpu::isa(), gate, up, out)
}

fn swiglu_with(isa: Isa, gate: &[f32], up: &[f32], out: &mut [f32]) {
    debug_assert!(gate.len() == out.len() && up.len() == out.len());
    debug_assert!(isa <= cpu::best_supported());
    let width = if isa == Isa::Avx512 { 16 } else { 8 };
    let blocks = out.len() - out.len() % width;
    match isa {
        // SAFETY: `isa` only names a path whose features the CPU has.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => unsafe { swiglu_avx512(gate, up, out) },
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => unsafe { swiglu_avx2(gate, up, out) },
        _ => {
            for i in 0..blocks {
                out[i] = gate[i] / (1.0 + ggml_expf(-gate[i])) * up[i];
            }
        }
    }
    for i in blocks..out.len() {
        out[i] = gate[i] / (1.0 + (-gate[i]).exp()) * up[i];
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512dq")]
unsafe fn swiglu_avx512(gate: &[f32], up: &[f32], out: &mut [f32]) {
    use std::arch::x86_64::*;
    for ((g, u), o) in gate
        .chunks_exact(16)
        .zip(up.chunks_exact(16))
        .zip(out.chunks_exact_mut(16))
    {
        let x = _mm512_loadu_ps(g.as_ptr());
        let e = v_expf_avx512(_mm512_sub_ps(_mm512_setzero_ps(), x));
        let silu = _mm512_div_ps(x, _mm512_add_ps(_mm512_set1_ps(1.0), e));
        _mm512_storeu_ps(
            o.as_mut_ptr(),
            _mm512_mul_ps(silu, _mm512_loadu_ps(u.as_ptr())),
        );
    }
}

/// `ggml_v_expf` for AVX-512, lane for lane: the same reduction as AVX2's, a polynomial that
/// ends in `c4·b + 1`, and the power of two applied with `vscalefps`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512dq")]
unsafe fn v_expf_avx512(x: std::arch::x86_64::__m512) -> std::arch::x86_64::__m512 {
    use std::arch::x86_64::*;
    let c = |b: u32| _mm512_set1_ps(f32::from_bits(b));
    let r = c(EXP_SHIFT);
    let z = _mm512_fmadd_ps(x, c(EXP_LOG2E), r);
    let n = _mm512_sub_ps(z, r);
    let b = _mm512_fnmadd_ps(n, c(EXP_LN2_LO), _mm512_fnmadd_ps(n, c(EXP_LN2_HI), x));
    let d = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(_mm512_abs_ps(n), _mm512_set1_ps(192.0));
    let u = _mm512_mul_ps(b, b);
    let j = _mm512_fmadd_ps(
        _mm512_fmadd_ps(
            _mm512_fmadd_ps(c(EXP_C[0]), b, c(EXP_C[1])),
            u,
            _mm512_fmadd_ps(c(EXP_C[2]), b, c(EXP_C[3])),
        ),
        u,
        _mm512_fmadd_ps(c(EXP_C[4]), b, _mm512_set1_ps(1.0)),
    );
    let res = _mm512_scalef_ps(j, n);
    if d == 0 {
        return res;
    }
    let alt = _mm512_mask_blend_ps(
        _mm512_cmp_ps_mask::<_CMP_LE_OQ>(n, _mm512_setzero_ps()),
        _mm512_set1_ps(f32::INFINITY),
        _mm512_setzero_ps(),
    );
    _mm512_mask_blend_ps(d, res, alt)
}

/// [`v_expf_avx512`] one lane at a time (the test's reference).
pub fn ggml_expf_avx512(x: f32) -> f32 {
    let c = f32::from_bits;
    let r = c(EXP_SHIFT);
    let z = x.mul_add(c(EXP_LOG2E), r);
    let n = z - r;
    let b = (-n).mul_add(c(EXP_LN2_LO), (-n).mul_add(c(EXP_LN2_HI), x));
    let u = b * b;
    let j = c(EXP_C[0])
        .mul_add(b, c(EXP_C[1]))
        .mul_add(u, c(EXP_C[2]).mul_add(b, c(EXP_C[3])))
        .mul_add(u, c(EXP_C[4]).mul_add(b, 1.0));
    if n.abs() > 192.0 {
        return if n <= 0.0 { 0.0 } else { f32::INFINITY };
    }
    // vscalefps: j · 2^n rounded once (exact in f64, n is an integer within ±192).
    (j as f64 * (n as f64).exp2()) as f32
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn swiglu_avx2(gate: &[f32], up: &[f32], out: &mut [f32]) {
    use std::arch::x86_64::*;
    for ((g, u), o) in gate
        .chunks_exact(8)
        .zip(up.chunks_exact(8))
        .zip(out.chunks_exact_mut(8))
    {
        let x = _mm256_loadu_ps(g.as_ptr());
        let e = v_expf(_mm256_sub_ps(_mm256_setzero_ps(), x));
        let silu = _mm256_div_ps(x, _mm256_add_ps(_mm256_set1_ps(1.0), e));
        _mm256_storeu_ps(
            o.as_mut_ptr(),
            _mm256_mul_ps(silu, _mm256_loadu_ps(u.as_ptr())),
        );
    }
}

/// The constants of ggml's `expf` (ARM's optimized-routines algorithm), as f32 bit patterns.
const EXP_SHIFT: u32 = 0x4b40_0000; // 0x1.8p23: adding it rounds to an integer
const EXP_LOG2E: u32 = 0x3fb8_aa3b; // 1 / ln 2
const EXP_LN2_HI: u32 = 0x3f31_7200;
const EXP_LN2_LO: u32 = 0x35bf_be8e;
const EXP_C: [u32; 5] = [
    0x3c07_2010,
    0x3d2b_9f17,
    0x3e2a_af33,
    0x3eff_fedb,
    0x3f7f_fff6,
];

/// `ggml_v_expf` for AVX2, lane for lane.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn v_expf(x: std::arch::x86_64::__m256) -> std::arch::x86_64::__m256 {
    use std::arch::x86_64::*;
    let c = |b: u32| _mm256_set1_ps(f32::from_bits(b));
    let r = c(EXP_SHIFT);
    let z = _mm256_fmadd_ps(x, c(EXP_LOG2E), r);
    let n = _mm256_sub_ps(z, r);
    let b = _mm256_fnmadd_ps(n, c(EXP_LN2_LO), _mm256_fnmadd_ps(n, c(EXP_LN2_HI), x));
    let e = _mm256_slli_epi32::<23>(_mm256_castps_si256(z));
    let k = _mm256_castsi256_ps(_mm256_add_epi32(
        e,
        _mm256_castps_si256(_mm256_set1_ps(1.0)),
    ));
    let abs_n = _mm256_andnot_ps(_mm256_set1_ps(-0.0), n);
    let big = _mm256_castps_si256(_mm256_cmp_ps::<_CMP_GT_OQ>(abs_n, _mm256_set1_ps(126.0)));
    let u = _mm256_mul_ps(b, b);
    let j = _mm256_fmadd_ps(
        _mm256_fmadd_ps(
            _mm256_fmadd_ps(c(EXP_C[0]), b, c(EXP_C[1])),
            u,
            _mm256_fmadd_ps(c(EXP_C[2]), b, c(EXP_C[3])),
        ),
        u,
        _mm256_mul_ps(c(EXP_C[4]), b),
    );
    if _mm256_movemask_ps(_mm256_castsi256_ps(big)) == 0 {
        return _mm256_fmadd_ps(j, k, k);
    }
    let g = _mm256_and_si256(
        _mm256_castps_si256(_mm256_cmp_ps::<_CMP_LE_OQ>(n, _mm256_setzero_ps())),
        _mm256_set1_epi32(0x8200_0000u32 as i32),
    );
    let s1 = _mm256_castsi256_ps(_mm256_add_epi32(g, _mm256_set1_epi32(0x7f00_0000)));
    let s2 = _mm256_castsi256_ps(_mm256_sub_epi32(e, g));
    let huge = _mm256_cmp_ps::<_CMP_GT_OQ>(abs_n, _mm256_set1_ps(192.0));
    _mm256_or_ps(
        _mm256_and_ps(huge, _mm256_mul_ps(s1, s1)),
        _mm256_andnot_ps(
            huge,
            _mm256_or_ps(
                _mm256_and_ps(
                    _mm256_castsi256_ps(big),
                    _mm256_mul_ps(_mm256_fmadd_ps(s2, j, s2), s1),
                ),
                _mm256_andnot_ps(_mm256_castsi256_ps(big), _mm256_fmadd_ps(k, j, k)),
            ),
        ),
    )
}

/// `ggml_v_expf` one lane at a time (the fallback without AVX2, and the test's reference).
pub fn ggml_expf(x: f32) -> f32 {
    let c = f32::from_bits;
    let r = c(EXP_SHIFT);
    let z = x.mul_add(c(EXP_LOG2E), r);
    let n = z - r;
    let b = (-n).mul_add(c(EXP_LN2_LO), (-n).mul_add(c(EXP_LN2_HI), x));
    let e = z.to_bits().wrapping_shl(23);
    let k = c(e.wrapping_add(1f32.to_bits()));
    let u = b * b;
    let j = c(EXP_C[0])
        .mul_add(b, c(EXP_C[1]))
        .mul_add(u, c(EXP_C[2]).mul_add(b, c(EXP_C[3])))
        .mul_add(u, c(EXP_C[4]) * b);
    // As the vector code's `|n| > 126` test: false for NaN too, which takes the fast path.
    if n.abs() <= 126.0 || n.is_nan() {
        return k.mul_add(j, k);
    }
    let g: u32 = if n <= 0.0 { 0x8200_0000 } else { 0 };
    let s1 = c(g.wrapping_add(0x7f00_0000));
    let s2 = c(e.wrapping_sub(g));
    if n.abs() > 192.0 {
        s1 * s1
    } else {
        s2.mul_add(j, s2) * s1
    }
}

/// Rotates the pairs `(x[a], x[b])` of one head by `(cos, sin)` as ggml's `rotate_pairs`
/// compiles with FMA contraction: `x0·cos − x1·sin` and `x0·sin + x1·cos`, each with its first
/// product fused.
pub fn rotate_pairs(
    head: &mut [f32],
    pairs: impl Iterator<Item = (usize, usize)>,
    cos: &[f32],
    sin: &[f32],
) {
    #[cfg(target_arch = "x86_64")]
    if cpu::isa() >= Isa::Avx2 {
        // SAFETY: the feature the function is compiled for is present.
        unsafe { return rotate_pairs_fma(head, pairs, cos, sin) };
    }
    rotate_pairs_generic(head, pairs, cos, sin)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "fma")]
unsafe fn rotate_pairs_fma(
    head: &mut [f32],
    pairs: impl Iterator<Item = (usize, usize)>,
    cos: &[f32],
    sin: &[f32],
) {
    rotate_pairs_generic(head, pairs, cos, sin)
}

#[inline(always)]
fn rotate_pairs_generic(
    head: &mut [f32],
    pairs: impl Iterator<Item = (usize, usize)>,
    cos: &[f32],
    sin: &[f32],
) {
    for (i, (a, b)) in pairs.enumerate() {
        let (x0, x1) = (head[a], head[b]);
        head[a] = x0.mul_add(cos[i], -(x1 * sin[i]));
        head[b] = x0.mul_add(sin[i], x1 * cos[i]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// ggml's expf stays within 2 ulp of the correctly rounded one over SiLU's range, and its
    /// scaled paths (|n| > 126) still give tiny values, zero and infinity where they should.
    #[test]
    fn ggml_expf_is_exp() {
        let ulp = |a: f32, b: f32| (a.to_bits() as i64 - b.to_bits() as i64).unsigned_abs();
        let mut x = -87.0f32;
        while x < 88.0 {
            let (got, want) = (ggml_expf(x), ((x as f64).exp()) as f32);
            assert!(ulp(got, want) <= 2, "exp({x}) = {got}, want {want}");
            x += 0.0137;
        }
        assert!(ggml_expf(-90.0) > 0.0 && ggml_expf(-90.0) < 1e-38);
        assert_eq!(ggml_expf(-200.0), 0.0);
        assert_eq!(ggml_expf(100.0), f32::INFINITY);
    }

    /// Both expf variants stay within 2 ulp of the correctly rounded one over SiLU's range and
    /// agree with each other within 2 ulp; AVX-512's flushes past |n| > 192 as ggml's does.
    #[test]
    fn avx512_expf_is_exp() {
        let ulp = |a: f32, b: f32| (a.to_bits() as i64 - b.to_bits() as i64).unsigned_abs();
        let mut x = -87.0f32;
        while x < 88.0 {
            let (got, want) = (ggml_expf_avx512(x), ((x as f64).exp()) as f32);
            assert!(ulp(got, want) <= 2, "exp({x}) = {got}, want {want}");
            assert!(
                ulp(got, ggml_expf(x)) <= 2,
                "exp({x}): {got} vs {}",
                ggml_expf(x)
            );
            x += 0.0137;
        }
        assert!(ggml_expf_avx512(-100.0) > 0.0 && ggml_expf_avx512(-100.0) < 1e-38);
        assert_eq!(ggml_expf_avx512(-200.0), 0.0);
        assert_eq!(ggml_expf_avx512(100.0), f32::INFINITY);
        assert_eq!(ggml_expf_avx512(200.0), f32::INFINITY);
    }

    /// Every SwiGLU path this CPU has equals its lane-by-lane formula bit for bit, including
    /// lanes on the scaled paths of expf and a remainder that is not a whole block.
    #[test]
    fn swiglu_simd_equals_scalar() {
        let gate: Vec<f32> = (0..203)
            .map(|i| (i as f32 - 101.0) * if i % 17 == 0 { 1.9 } else { 0.173 })
            .map(|x| if x.abs() > 150.0 { x * 1.5 } else { x })
            .collect();
        let up: Vec<f32> = (0..203)
            .map(|i| ((i * 37) % 23) as f32 / 7.0 - 1.5)
            .collect();
        for isa in [Isa::Scalar, Isa::Avx2, Isa::Avx512] {
            if isa > cpu::best_supported() {
                continue;
            }
            let (width, expf): (usize, fn(f32) -> f32) = match isa {
                Isa::Avx512 => (16, ggml_expf_avx512),
                _ => (8, ggml_expf),
            };
            let mut out = vec![0.0; gate.len()];
            swiglu_with(isa, &gate, &up, &mut out);
            for i in 0..gate.len() {
                let x = gate[i];
                let want = if i < gate.len() / width * width {
                    x / (1.0 + expf(-x)) * up[i]
                } else {
                    x / (1.0 + (-x).exp()) * up[i]
                };
                assert_eq!(
                    out[i].to_bits(),
                    want.to_bits(),
                    "{isa:?} lane {i}: silu({x})"
                );
            }
            assert_eq!(out[101], 0.0);
        }
    }
}
