//! Block dot products: one weight row, or a pair, against up to `MAX_TOKENS_PER_CALL` quantized
//! activation rows at once.
//!
//! Each result is computed exactly as ggml's AVX2 `vec_dot` computes it (eight f32 lanes of
//! per-block partial sums, fused multiply-adds, then ggml's horizontal sum), so a token's output
//! does not depend on how many other tokens share the call: batching never changes the numbers.
//! The scalar fallback emulates the same lanes, so it agrees bit for bit; the 512-bit row-pair
//! kernels hold each row's eight lanes in one half of a register, so they do too.

use super::quant::{Q4_1Matrix, Q8_0Matrix, QuantizedRows, QK};

/// The most activation rows one kernel call handles (the weight block is unpacked once for
/// all of them); see [`tokens_per_call`].
pub const MAX_TOKENS_PER_CALL: usize = 8;

/// How many activation rows one kernel call takes on the path in use: 8 with AVX-512 VNNI
/// (a row pair's two 8-lane accumulators share one 512-bit register; 16 tokens would fit in
/// the 32 registers but spill with the other operands, and measured slower), 4 otherwise.
pub fn tokens_per_call() -> usize {
    if simd() == Simd::Vnni {
        8
    } else {
        4
    }
}

/// `out[i] = dot(w.row(row), x.row(tokens[i]))` for a Q4_1 weight row.
pub fn q4_1_row(w: &Q4_1Matrix, row: usize, x: &QuantizedRows, tokens: &[usize], out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    match simd() {
        // SAFETY: `simd()` names only paths whose features the CPU has; the kernels check
        // their slices' bounds before reading.
        Simd::Vnni => unsafe { return avx2::q4_1_row_vnni(w, row, x, tokens, out) },
        Simd::AvxVnni => unsafe { return avx2::q4_1_row_avx_vnni(w, row, x, tokens, out) },
        Simd::Avx2 => unsafe { return avx2::q4_1_row(w, row, x, tokens, out) },
        Simd::None => {}
    }
    scalar::q4_1_row(w, row, x, tokens, out)
}

/// Two adjacent Q4_1 rows at once (`out[0..n]` for `row`, `out[n..2n]` for `row + 1`):
/// each activation block is loaded once for both rows (with AVX-512 VNNI, both rows' blocks
/// are multiplied in one 512-bit register). Same numbers as [`q4_1_row`].
pub fn q4_1_row_pair(
    w: &Q4_1Matrix,
    row: usize,
    x: &QuantizedRows,
    tokens: &[usize],
    out: &mut [f32],
) {
    let n = tokens.len();
    #[cfg(target_arch = "x86_64")]
    if n <= tokens_per_call() {
        match simd() {
            // SAFETY: as above.
            Simd::Vnni => unsafe { return avx512::q4_1_row_pair(w, row, x, tokens, out) },
            Simd::AvxVnni => unsafe {
                return avx2::q4_1_row_pair_avx_vnni(w, row, x, tokens, out);
            },
            Simd::Avx2 => unsafe { return avx2::q4_1_row_pair(w, row, x, tokens, out) },
            Simd::None => {}
        }
    }
    let (a, b) = out.split_at_mut(n);
    q4_1_row(w, row, x, tokens, a);
    q4_1_row(w, row + 1, x, tokens, &mut b[..n]);
}

/// `out[i] = dot(w.row(row), x.row(tokens[i]))` for a Q8_0 weight row.
pub fn q8_0_row(w: &Q8_0Matrix, row: usize, x: &QuantizedRows, tokens: &[usize], out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    match simd() {
        // SAFETY: as above.
        Simd::Vnni => unsafe { return avx2::q8_0_row_vnni(w, row, x, tokens, out) },
        Simd::AvxVnni => unsafe { return avx2::q8_0_row_avx_vnni(w, row, x, tokens, out) },
        Simd::Avx2 => unsafe { return avx2::q8_0_row(w, row, x, tokens, out) },
        Simd::None => {}
    }
    scalar::q8_0_row(w, row, x, tokens, out)
}

/// Two adjacent Q8_0 rows at once (`out[0..n]` for `row`, `out[n..2n]` for `row + 1`).
/// Same numbers as [`q8_0_row`]. A lone token takes the rows one after the other: with its
/// weights streamed from memory (the output matrix at decode), the 512-bit pair measured
/// about 10 % slower for it, where it is about twice as fast for 2 to 8 tokens.
pub fn q8_0_row_pair(
    w: &Q8_0Matrix,
    row: usize,
    x: &QuantizedRows,
    tokens: &[usize],
    out: &mut [f32],
) {
    let n = tokens.len();
    #[cfg(target_arch = "x86_64")]
    if simd() == Simd::Vnni && (2..=tokens_per_call()).contains(&n) {
        // SAFETY: as above.
        unsafe { return avx512::q8_0_row_pair(w, row, x, tokens, out) }
    }
    let (a, b) = out.split_at_mut(n);
    q8_0_row(w, row, x, tokens, a);
    q8_0_row(w, row + 1, x, tokens, &mut b[..n]);
}

/// How the integer part of a block product is computed. All give the same integers (no
/// product pair saturates 16 bits: 4-bit × 8-bit, or |8-bit| × 8-bit with the values ±127),
/// so every path gives the same floats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Simd {
    /// Plain Rust.
    None,
    /// `vpmaddubsw` + `vpmaddwd`: AVX2.
    Avx2,
    /// `vpdpbusd` on 256-bit registers: AVX-VNNI (the AVX2 path on CPUs that have it).
    AvxVnni,
    /// `vpdpbusd`: AVX-512 VNNI (the AVX-512 path on CPUs that have it).
    Vnni,
}

fn simd() -> Simd {
    use super::cpu::{self, Isa};
    match cpu::isa() {
        Isa::Avx512 if cpu::has_avx512_vnni() => Simd::Vnni,
        Isa::Avx512 | Isa::Avx2 if cpu::has_avx_vnni() => Simd::AvxVnni,
        Isa::Avx512 | Isa::Avx2 => Simd::Avx2,
        Isa::Scalar => Simd::None,
    }
}

/// ggml's `hsum_float_8` order: (hi + lo) halves, then pairs, then the last two.
fn hsum_lanes(l: [f32; 8]) -> f32 {
    let a = [l[4] + l[0], l[5] + l[1], l[6] + l[2], l[7] + l[3]];
    let b0 = a[0] + a[2];
    let b1 = a[1] + a[3];
    b0 + b1
}

/// Where each of `N` tokens' activation blocks start (bounds checked), for the SIMD kernels.
struct Activations<const N: usize> {
    qs: [*const i8; N],
    d: [*const f32; N],
    s: [*const f32; N],
    /// Full, aligned groups of four tokens (as `quantized_matmul` hands out) take the four
    /// `m * s` products of a block in one vector from `x.s4`: the same products added in the
    /// same order as the scalar sums, a quarter of the instructions. Null when not grouped.
    s4: *const f32,
}

impl<const N: usize> Activations<N> {
    #[inline(always)]
    fn new(x: &QuantizedRows, tokens: &[usize], nb: usize) -> Self {
        assert_eq!(tokens.len(), N);
        let first_group = tokens[0] / 4;
        let grouped = N.is_multiple_of(4)
            && tokens[0].is_multiple_of(4)
            && (0..N).all(|i| tokens[i] == tokens[0] + i)
            && x.s4.len() >= (first_group + N / 4) * nb * 4;
        Self {
            qs: std::array::from_fn(|i| x.qs[tokens[i] * nb * QK..].as_ptr()),
            d: std::array::from_fn(|i| x.d[tokens[i] * nb..].as_ptr()),
            s: std::array::from_fn(|i| x.s[tokens[i] * nb..].as_ptr()),
            s4: if grouped {
                x.s4[first_group * nb * 4..].as_ptr()
            } else {
                std::ptr::null()
            },
        }
    }

    fn grouped(&self) -> bool {
        !self.s4.is_null()
    }
}

mod scalar {
    use super::*;

    pub fn q4_1_row(
        w: &Q4_1Matrix,
        row: usize,
        x: &QuantizedRows,
        tokens: &[usize],
        out: &mut [f32],
    ) {
        let nb = w.cols / QK;
        for (o, &t) in out.iter_mut().zip(tokens) {
            let mut lanes = [0f32; 8];
            let mut summs = 0f32;
            for b in 0..nb {
                let wb = row * nb + b;
                let xb = t * nb + b;
                let qs = &w.qs[wb * 16..][..16];
                let xq = &x.qs[xb * QK..][..QK];
                let d = w.d[wb] * x.d[xb];
                for (lane, acc) in lanes.iter_mut().enumerate() {
                    let mut sum = 0i32;
                    for e in lane * 4..lane * 4 + 4 {
                        let q = if e < 16 {
                            qs[e] & 0x0F
                        } else {
                            qs[e - 16] >> 4
                        };
                        sum += q as i32 * xq[e] as i32;
                    }
                    *acc = d.mul_add(sum as f32, *acc);
                }
                summs += w.m[wb] * x.s[xb];
            }
            *o = hsum_lanes(lanes) + summs;
        }
    }

    pub fn q8_0_row(
        w: &Q8_0Matrix,
        row: usize,
        x: &QuantizedRows,
        tokens: &[usize],
        out: &mut [f32],
    ) {
        let nb = w.cols / QK;
        for (o, &t) in out.iter_mut().zip(tokens) {
            let mut lanes = [0f32; 8];
            for b in 0..nb {
                let wb = row * nb + b;
                let xb = t * nb + b;
                let wq = &w.qs[wb * QK..][..QK];
                let xq = &x.qs[xb * QK..][..QK];
                let d = w.d[wb] * x.d[xb];
                for (lane, acc) in lanes.iter_mut().enumerate() {
                    let sum: i32 = (lane * 4..lane * 4 + 4)
                        .map(|e| wq[e] as i32 * xq[e] as i32)
                        .sum();
                    *acc = d.mul_add(sum as f32, *acc);
                }
            }
            *o = hsum_lanes(lanes);
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::*;

    #[inline(always)]
    unsafe fn hsum(x: __m256) -> f32 {
        let mut res = _mm256_extractf128_ps(x, 1);
        res = _mm_add_ps(res, _mm256_castps256_ps128(x));
        res = _mm_add_ps(res, _mm_movehl_ps(res, res));
        res = _mm_add_ss(res, _mm_movehdup_ps(res));
        _mm_cvtss_f32(res)
    }

    /// Eight i32 lanes, each the sum of four products of unsigned bytes of `a` by signed
    /// bytes of `b`. Inlined into each entry point, so it compiles for that one's features.
    trait ByteDot {
        unsafe fn dot(a: __m256i, b: __m256i) -> __m256i;
    }

    struct Maddubs;
    impl ByteDot for Maddubs {
        #[inline(always)]
        unsafe fn dot(a: __m256i, b: __m256i) -> __m256i {
            _mm256_madd_epi16(_mm256_maddubs_epi16(a, b), _mm256_set1_epi16(1))
        }
    }

    struct Vnni;
    impl ByteDot for Vnni {
        #[inline(always)]
        unsafe fn dot(a: __m256i, b: __m256i) -> __m256i {
            _mm256_dpbusd_epi32(_mm256_setzero_si256(), a, b)
        }
    }

    struct AvxVnni;
    impl ByteDot for AvxVnni {
        #[inline(always)]
        unsafe fn dot(a: __m256i, b: __m256i) -> __m256i {
            _mm256_dpbusd_avx_epi32(_mm256_setzero_si256(), a, b)
        }
    }

    /// An entry point compiled for `$features`: a kernel body with its integer dot product and
    /// token group size.
    macro_rules! entry_point {
        ($name:ident, $features:literal, $dot:ty, $g:literal, $weights:ty, $body:ident [$($p:tt)*]) => {
            #[target_feature(enable = $features)]
            pub unsafe fn $name(
                w: &$weights,
                row: usize,
                x: &QuantizedRows,
                tokens: &[usize],
                out: &mut [f32],
            ) {
                $body::<$dot, $g, $($p)*>(w, row, x, tokens, out)
            }
        };
    }

    /// Any number of tokens for one row (`R` = 1), or up to `G` for a row pair (`R` = 2), in
    /// groups of `G` (4 or 8). No recursion: an `inline(always)` body that called itself would
    /// be compiled on its own, without its entry point's features (intrinsics as calls).
    #[inline(always)]
    unsafe fn q4_1_rows<D: ByteDot, const G: usize, const R: usize>(
        w: &Q4_1Matrix,
        row: usize,
        x: &QuantizedRows,
        tokens: &[usize],
        out: &mut [f32],
    ) {
        assert!(
            R == 1 || tokens.len() <= G,
            "a row pair takes at most {G} tokens"
        );
        let group = if R == 1 { G } else { tokens.len().max(1) };
        for (chunk, o) in tokens.chunks(group).zip(out.chunks_mut(group * R)) {
            match chunk.len() {
                8 if G == 8 => q4_1_rows_n::<D, R, 8>(w, row, x, chunk, o),
                7 if G == 8 => q4_1_rows_n::<D, R, 7>(w, row, x, chunk, o),
                6 if G == 8 => q4_1_rows_n::<D, R, 6>(w, row, x, chunk, o),
                5 if G == 8 => q4_1_rows_n::<D, R, 5>(w, row, x, chunk, o),
                4 => q4_1_rows_n::<D, R, 4>(w, row, x, chunk, o),
                3 => q4_1_rows_n::<D, R, 3>(w, row, x, chunk, o),
                2 => q4_1_rows_n::<D, R, 2>(w, row, x, chunk, o),
                _ => q4_1_rows_n::<D, R, 1>(w, row, x, chunk, o),
            }
        }
    }

    /// Any number of tokens against one Q8_0 row, in groups of four (no recursion, as above).
    #[inline(always)]
    unsafe fn q8_0_rows<D: ByteDot, const G: usize>(
        w: &Q8_0Matrix,
        row: usize,
        x: &QuantizedRows,
        tokens: &[usize],
        out: &mut [f32],
    ) {
        for (chunk, o) in tokens.chunks(4).zip(out.chunks_mut(4)) {
            match chunk.len() {
                4 => q8_0_n::<D, 4>(w, row, x, chunk, o),
                3 => q8_0_n::<D, 3>(w, row, x, chunk, o),
                2 => q8_0_n::<D, 2>(w, row, x, chunk, o),
                _ => q8_0_n::<D, 1>(w, row, x, chunk, o),
            }
        }
    }

    entry_point!(q4_1_row, "avx2,fma", Maddubs, 4, Q4_1Matrix, q4_1_rows[1]);
    entry_point!(
        q4_1_row_avx_vnni,
        "avx2,fma,avxvnni",
        AvxVnni,
        4,
        Q4_1Matrix,
        q4_1_rows[1]
    );
    #[rustfmt::skip]
    entry_point!(q4_1_row_vnni, "avx2,fma,avx512f,avx512bw,avx512vl,avx512vnni", Vnni, 8, Q4_1Matrix, q4_1_rows[1]);
    // Row pairs take at most four tokens here; AVX-512 VNNI has its own, [`super::avx512`].
    entry_point!(
        q4_1_row_pair,
        "avx2,fma",
        Maddubs,
        4,
        Q4_1Matrix,
        q4_1_rows[2]
    );
    #[rustfmt::skip]
    entry_point!(q4_1_row_pair_avx_vnni, "avx2,fma,avxvnni", AvxVnni, 4, Q4_1Matrix, q4_1_rows[2]);
    entry_point!(q8_0_row, "avx2,fma", Maddubs, 4, Q8_0Matrix, q8_0_rows[]);
    entry_point!(q8_0_row_avx_vnni, "avx2,fma,avxvnni", AvxVnni, 4, Q8_0Matrix, q8_0_rows[]);
    #[rustfmt::skip]
    entry_point!(q8_0_row_vnni, "avx2,fma,avx512f,avx512bw,avx512vl,avx512vnni", Vnni, 8, Q8_0Matrix, q8_0_rows[]);

    /// `R` adjacent weight rows (1 or 2) against `N` activation rows: each weight block is
    /// unpacked once for all tokens, each activation block loaded once for all rows.
    /// `out[r * N + i]` is row `row + r` against token `tokens[i]`.
    #[inline(always)]
    #[allow(clippy::needless_range_loop)]
    unsafe fn q4_1_rows_n<D: ByteDot, const R: usize, const N: usize>(
        w: &Q4_1Matrix,
        row: usize,
        x: &QuantizedRows,
        tokens: &[usize],
        out: &mut [f32],
    ) {
        let nb = w.cols / QK;
        assert!(w.d.len() >= (row + R) * nb && w.qs.len() >= (row + R) * nb * 16);
        assert!(tokens.len() == N && out.len() >= R * N);
        let low = _mm256_set1_epi8(0x0F);
        let mut acc = [[_mm256_setzero_ps(); N]; R];
        let mut summs = [[0f32; N]; R];
        let wqs = w.qs.as_ptr().add(row * nb * 16);
        let wd = w.d.as_ptr().add(row * nb);
        let wm = w.m.as_ptr().add(row * nb);
        let a = Activations::<N>::new(x, tokens, nb);
        let (xq, xd, xs, s4, grouped) = (a.qs, a.d, a.s, a.s4, a.grouped());
        let mut summs4 = [[_mm_setzero_ps(); 2]; R];
        for b in 0..nb {
            let mut bx = [_mm256_setzero_si256(); R];
            let mut dw = [_mm256_setzero_ps(); R];
            let mut m = [0f32; R];
            for r in 0..R {
                let packed = _mm_loadu_si128(wqs.add((r * nb + b) * 16) as *const __m128i);
                bx[r] = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(packed, 4), packed), low);
                dw[r] = _mm256_broadcast_ss(&*wd.add(r * nb + b));
                m[r] = *wm.add(r * nb + b);
            }
            if grouped {
                for k in 0..N / 4 {
                    let sv = _mm_loadu_ps(s4.add((k * nb + b) * 4));
                    for r in 0..R {
                        summs4[r][k] = _mm_add_ps(summs4[r][k], _mm_mul_ps(_mm_set1_ps(m[r]), sv));
                    }
                }
            }
            for i in 0..N {
                let by = _mm256_loadu_si256(xq[i].add(b * QK) as *const __m256i);
                // Broadcast loads, then one multiply per row: the same product as the scalar
                // `d * dy` in every lane, without a scalar multiply and a shuffle per pair.
                let dy = _mm256_broadcast_ss(&*xd[i].add(b));
                for r in 0..R {
                    let xy = _mm256_cvtepi32_ps(D::dot(bx[r], by));
                    acc[r][i] = _mm256_fmadd_ps(_mm256_mul_ps(dw[r], dy), xy, acc[r][i]);
                }
                if !grouped {
                    let sy = *xs[i].add(b);
                    for r in 0..R {
                        summs[r][i] += m[r] * sy;
                    }
                }
            }
        }
        if grouped {
            for r in 0..R {
                for k in 0..N / 4 {
                    let mut lanes = [0f32; 4];
                    _mm_storeu_ps(lanes.as_mut_ptr(), summs4[r][k]);
                    summs[r][4 * k..4 * k + 4].copy_from_slice(&lanes);
                }
            }
        }
        for r in 0..R {
            for i in 0..N {
                out[r * N + i] = hsum(acc[r][i]) + summs[r][i];
            }
        }
    }

    #[inline(always)]
    unsafe fn q8_0_n<D: ByteDot, const N: usize>(
        w: &Q8_0Matrix,
        row: usize,
        x: &QuantizedRows,
        tokens: &[usize],
        out: &mut [f32],
    ) {
        let nb = w.cols / QK;
        assert!(w.d.len() >= (row + 1) * nb && w.qs.len() >= (row + 1) * nb * QK);
        assert!(tokens.len() == N && out.len() >= N);
        let mut acc = [_mm256_setzero_ps(); N];
        let wqs = w.qs.as_ptr().add(row * nb * QK);
        let wd = w.d.as_ptr().add(row * nb);
        let a = Activations::<N>::new(x, tokens, nb);
        let (xq, xd) = (a.qs, a.d);
        for b in 0..nb {
            let qx = _mm256_loadu_si256(wqs.add(b * QK) as *const __m256i);
            let ax = _mm256_sign_epi8(qx, qx);
            let d0 = _mm256_broadcast_ss(&*wd.add(b));
            for i in 0..N {
                let qy = _mm256_loadu_si256(xq[i].add(b * QK) as *const __m256i);
                let sy = _mm256_sign_epi8(qy, qx);
                let xy = _mm256_cvtepi32_ps(D::dot(ax, sy));
                let d = _mm256_mul_ps(d0, _mm256_broadcast_ss(&*xd[i].add(b)));
                acc[i] = _mm256_fmadd_ps(d, xy, acc[i]);
            }
        }
        for i in 0..N {
            out[i] = hsum(acc[i]);
        }
    }
}

/// AVX-512 VNNI kernels for a row pair: row `r`'s block in the low 256 bits of a register and
/// row `r + 1`'s in the high 256, each token's activation block broadcast to both halves, so one
/// `vpdpbusd`, one conversion and one fused multiply-add serve both rows. Each half holds the
/// eight lanes the 256-bit kernel would hold for its row, updated by the same operations in the
/// same order, so the numbers are the same bits.
#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    use super::*;

    /// The low and high 8-lane halves of `x`, each summed as [`super::avx2`] sums a row.
    #[inline(always)]
    unsafe fn hsum_halves(x: __m512) -> (f32, f32) {
        let lo = _mm512_castps512_ps256(x);
        let hi = _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(x)));
        (hsum8(lo), hsum8(hi))
    }

    #[inline(always)]
    unsafe fn hsum8(x: __m256) -> f32 {
        let mut res = _mm256_extractf128_ps(x, 1);
        res = _mm_add_ps(res, _mm256_castps256_ps128(x));
        res = _mm_add_ps(res, _mm_movehl_ps(res, res));
        res = _mm_add_ss(res, _mm_movehdup_ps(res));
        _mm_cvtss_f32(res)
    }

    /// `[a ×8, b ×8]`: a scale per half.
    #[inline(always)]
    unsafe fn halves(a: f32, b: f32) -> __m512 {
        _mm512_mask_mov_ps(_mm512_set1_ps(a), 0xFF00, _mm512_set1_ps(b))
    }

    /// Up to [`MAX_TOKENS_PER_CALL`] tokens against Q4_1 rows `row` and `row + 1`.
    #[target_feature(enable = "avx2,fma,avx512f,avx512bw,avx512vl,avx512vnni")]
    pub unsafe fn q4_1_row_pair(
        w: &Q4_1Matrix,
        row: usize,
        x: &QuantizedRows,
        tokens: &[usize],
        out: &mut [f32],
    ) {
        macro_rules! by_count {
            ($($n:literal)*) => {
                match tokens.len() {
                    $($n => q4_1_pair_n::<$n>(w, row, x, tokens, out),)*
                    n => panic!("a row pair takes 1 to {MAX_TOKENS_PER_CALL} tokens, not {n}"),
                }
            };
        }
        by_count!(1 2 3 4 5 6 7 8)
    }

    /// Up to [`MAX_TOKENS_PER_CALL`] tokens against Q8_0 rows `row` and `row + 1`.
    #[target_feature(enable = "avx2,fma,avx512f,avx512bw,avx512vl,avx512vnni")]
    pub unsafe fn q8_0_row_pair(
        w: &Q8_0Matrix,
        row: usize,
        x: &QuantizedRows,
        tokens: &[usize],
        out: &mut [f32],
    ) {
        macro_rules! by_count {
            ($($n:literal)*) => {
                match tokens.len() {
                    $($n => q8_0_pair_n::<$n>(w, row, x, tokens, out),)*
                    n => panic!("a row pair takes 1 to {MAX_TOKENS_PER_CALL} tokens, not {n}"),
                }
            };
        }
        by_count!(1 2 3 4 5 6 7 8)
    }

    /// `out[r * N + i]` is row `row + r` (r = 0, 1) against token `tokens[i]`.
    #[inline(always)]
    #[allow(clippy::needless_range_loop)]
    unsafe fn q4_1_pair_n<const N: usize>(
        w: &Q4_1Matrix,
        row: usize,
        x: &QuantizedRows,
        tokens: &[usize],
        out: &mut [f32],
    ) {
        let nb = w.cols / QK;
        assert!(w.d.len() >= (row + 2) * nb && w.qs.len() >= (row + 2) * nb * 16);
        assert!(tokens.len() == N && out.len() >= 2 * N);
        let low = _mm512_set1_epi8(0x0F);
        // Quadwords [v0, v1, s0, s1, v2, v3, s2, s3] of the packed pair `v` and its nibbles
        // shifted down `s`: each row's low nibbles, then its high nibbles.
        let order = _mm512_set_epi64(11, 10, 3, 2, 9, 8, 1, 0);
        let mut acc = [_mm512_setzero_ps(); N];
        let mut summs = [[0f32; N]; 2];
        let wqs = w.qs.as_ptr().add(row * nb * 16);
        let wd = w.d.as_ptr().add(row * nb);
        let wm = w.m.as_ptr().add(row * nb);
        let a = Activations::<N>::new(x, tokens, nb);
        let (xq, xd, xs, s4, grouped) = (a.qs, a.d, a.s, a.s4, a.grouped());
        let mut summs4 = [[_mm_setzero_ps(); MAX_TOKENS_PER_CALL / 4]; 2];
        for b in 0..nb {
            let v = _mm256_set_m128i(
                _mm_loadu_si128(wqs.add((nb + b) * 16) as *const __m128i),
                _mm_loadu_si128(wqs.add(b * 16) as *const __m128i),
            );
            let s = _mm256_srli_epi16(v, 4);
            let bx = _mm512_and_si512(
                _mm512_permutex2var_epi64(
                    _mm512_castsi256_si512(v),
                    order,
                    _mm512_castsi256_si512(s),
                ),
                low,
            );
            let dw = halves(*wd.add(b), *wd.add(nb + b));
            let m = [*wm.add(b), *wm.add(nb + b)];
            if grouped {
                for k in 0..N / 4 {
                    let sv = _mm_loadu_ps(s4.add((k * nb + b) * 4));
                    for r in 0..2 {
                        summs4[r][k] = _mm_add_ps(summs4[r][k], _mm_mul_ps(_mm_set1_ps(m[r]), sv));
                    }
                }
            }
            for i in 0..N {
                let by =
                    _mm512_broadcast_i64x4(_mm256_loadu_si256(xq[i].add(b * QK) as *const __m256i));
                let dy = _mm512_set1_ps(*xd[i].add(b));
                let xy = _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(_mm512_setzero_si512(), bx, by));
                acc[i] = _mm512_fmadd_ps(_mm512_mul_ps(dw, dy), xy, acc[i]);
                if !grouped {
                    let sy = *xs[i].add(b);
                    for r in 0..2 {
                        summs[r][i] += m[r] * sy;
                    }
                }
            }
        }
        if grouped {
            for r in 0..2 {
                for k in 0..N / 4 {
                    let mut lanes = [0f32; 4];
                    _mm_storeu_ps(lanes.as_mut_ptr(), summs4[r][k]);
                    summs[r][4 * k..4 * k + 4].copy_from_slice(&lanes);
                }
            }
        }
        for i in 0..N {
            let (a, b) = hsum_halves(acc[i]);
            out[i] = a + summs[0][i];
            out[N + i] = b + summs[1][i];
        }
    }

    /// `out[r * N + i]` is row `row + r` (r = 0, 1) against token `tokens[i]`.
    #[inline(always)]
    unsafe fn q8_0_pair_n<const N: usize>(
        w: &Q8_0Matrix,
        row: usize,
        x: &QuantizedRows,
        tokens: &[usize],
        out: &mut [f32],
    ) {
        let nb = w.cols / QK;
        assert!(w.d.len() >= (row + 2) * nb && w.qs.len() >= (row + 2) * nb * QK);
        assert!(tokens.len() == N && out.len() >= 2 * N);
        for &t in tokens {
            assert!(x.d.len() >= (t + 1) * nb && x.qs.len() >= (t + 1) * nb * QK);
        }
        let mut acc = [_mm512_setzero_ps(); N];
        let wqs = w.qs.as_ptr().add(row * nb * QK);
        let wd = w.d.as_ptr().add(row * nb);
        let a = Activations::<N>::new(x, tokens, nb);
        let (xq, xd) = (a.qs, a.d);
        let zero = _mm512_setzero_si512();
        for b in 0..nb {
            let qx = _mm512_inserti64x4::<1>(
                _mm512_castsi256_si512(_mm256_loadu_si256(wqs.add(b * QK) as *const __m256i)),
                _mm256_loadu_si256(wqs.add((nb + b) * QK) as *const __m256i),
            );
            // |w| times y with w's sign: `vpsignb`'s products, which AVX-512 lacks.
            let ax = _mm512_abs_epi8(qx);
            let negative = _mm512_movepi8_mask(qx);
            let d0 = halves(*wd.add(b), *wd.add(nb + b));
            for i in 0..N {
                let qy =
                    _mm512_broadcast_i64x4(_mm256_loadu_si256(xq[i].add(b * QK) as *const __m256i));
                let sy = _mm512_mask_sub_epi8(qy, negative, zero, qy);
                let xy = _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(zero, ax, sy));
                let d = _mm512_mul_ps(d0, _mm512_set1_ps(*xd[i].add(b)));
                acc[i] = _mm512_fmadd_ps(d, xy, acc[i]);
            }
        }
        for i in 0..N {
            let (a, b) = hsum_halves(acc[i]);
            out[i] = a;
            out[N + i] = b;
        }
    }
}

#[cfg(test)]
#[allow(clippy::needless_range_loop)]
mod tests {
    use super::*;
    use half::f16;

    fn random(n: usize, seed: u32) -> Vec<f32> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(1664525).wrapping_add(1013904223);
                (s >> 8) as f32 / (1 << 24) as f32 * 2.0 - 1.0
            })
            .collect()
    }

    fn q4_1_random(rows: usize, cols: usize) -> Q4_1Matrix {
        let mut raw = Vec::new();
        let vals = random(rows * cols / QK * 18, 7);
        for b in 0..rows * cols / QK {
            raw.extend_from_slice(&f16::from_f32(vals[b * 18] * 0.1).to_le_bytes());
            raw.extend_from_slice(&f16::from_f32(vals[b * 18 + 1] * 0.5).to_le_bytes());
            raw.extend((0..16).map(|j| ((vals[b * 18 + 2 + j] + 1.0) * 127.9) as u8));
        }
        Q4_1Matrix::from_ggml(&raw, rows, cols).unwrap()
    }

    /// Every integer-dot path this CPU has.
    fn paths() -> Vec<Simd> {
        use crate::kernels::cpu::{best_supported, has_avx512_vnni, has_avx_vnni, Isa};
        let mut p = vec![Simd::None];
        if best_supported() >= Isa::Avx2 {
            p.push(Simd::Avx2);
            if has_avx_vnni() {
                p.push(Simd::AvxVnni);
            }
        }
        if best_supported() >= Isa::Avx512 && has_avx512_vnni() {
            p.push(Simd::Vnni);
        }
        p
    }

    /// Rows `row..row + R` against `tokens` on one path (`R` = 2 when `pair`).
    fn on_path(
        simd: Simd,
        w: &Q4_1Matrix,
        row: usize,
        pair: bool,
        x: &QuantizedRows,
        tokens: &[usize],
        out: &mut [f32],
    ) {
        // SAFETY: `paths()` lists only what the CPU has.
        unsafe {
            match (simd, pair) {
                (Simd::None, false) => scalar::q4_1_row(w, row, x, tokens, out),
                (Simd::None, true) => {
                    let n = tokens.len();
                    scalar::q4_1_row(w, row, x, tokens, &mut out[..n]);
                    scalar::q4_1_row(w, row + 1, x, tokens, &mut out[n..2 * n]);
                }
                (Simd::Avx2, false) => avx2::q4_1_row(w, row, x, tokens, out),
                (Simd::Avx2, true) => avx2::q4_1_row_pair(w, row, x, tokens, out),
                (Simd::AvxVnni, false) => avx2::q4_1_row_avx_vnni(w, row, x, tokens, out),
                (Simd::AvxVnni, true) => avx2::q4_1_row_pair_avx_vnni(w, row, x, tokens, out),
                (Simd::Vnni, false) => avx2::q4_1_row_vnni(w, row, x, tokens, out),
                (Simd::Vnni, true) => avx512::q4_1_row_pair(w, row, x, tokens, out),
            }
        }
    }

    /// Every path gives the scalar kernel's bits, one row or a pair, any token count.
    #[test]
    fn q4_1_every_path_equals_scalar() {
        let (rows, cols, ntok) = (4, 256, 20);
        let w = q4_1_random(rows, cols);
        let x = QuantizedRows::quantize(&random(ntok * cols, 9), ntok, cols);
        for simd in paths() {
            // Unaligned groups (scalar sums) and the aligned group 4..8 (regrouped sums).
            for (n, first) in
                (1..=ntok)
                    .map(|n| (n, ntok - n))
                    .chain([(4, 4), (4, 0), (8, 0), (8, 4), (8, 12)])
            {
                let tokens: Vec<usize> = (first..first + n).collect();
                let mut want = vec![0.0; 2 * n];
                on_path(Simd::None, &w, 1, true, &x, &tokens, &mut want);
                let mut got = vec![0.0; 2 * n];
                on_path(simd, &w, 1, false, &x, &tokens, &mut got[..n]);
                assert_eq!(got[..n], want[..n], "{simd:?} one row, {n} tokens");
                let most = if simd == Simd::Vnni { 8 } else { 4 };
                if n <= most {
                    on_path(simd, &w, 1, true, &x, &tokens, &mut got);
                    assert_eq!(got, want, "{simd:?} row pair, {n} tokens");
                }
            }
        }
    }

    #[test]
    fn q4_1_simd_equals_scalar_and_reference() {
        let (rows, cols, ntok) = (5, 128, 7);
        let w = q4_1_random(rows, cols);
        let xf = random(ntok * cols, 3);
        let x = QuantizedRows::quantize(&xf, ntok, cols);
        let tokens: Vec<usize> = (0..ntok).collect();
        let mut wrow = vec![0.0; cols];
        for r in 0..rows {
            let mut fast = vec![0.0; ntok];
            let mut slow = vec![0.0; ntok];
            q4_1_row(&w, r, &x, &tokens, &mut fast);
            scalar::q4_1_row(&w, r, &x, &tokens, &mut slow);
            assert_eq!(fast, slow, "row {r}");
            // Batch invariance: one token at a time gives the same bits.
            for t in 0..ntok {
                let mut one = [0.0];
                q4_1_row(&w, r, &x, &[t], &mut one);
                assert_eq!(one[0], fast[t]);
            }
            w.dequantize_row(r, &mut wrow);
            // Only the activations are rounded (to 8 bits: at most half a step of amax / 127,
            // amax <= 1, plus the f16 scale's 2^-11), so each product is off by at most
            // |w| / 200.
            let bound = wrow.iter().map(|v| v.abs()).sum::<f32>() / 200.0 + 1e-4;
            for t in 0..ntok {
                let exact: f32 = wrow
                    .iter()
                    .zip(&xf[t * cols..][..cols])
                    .map(|(a, b)| a * b)
                    .sum();
                assert!(
                    (exact - fast[t]).abs() < bound,
                    "{exact} vs {} (bound {bound})",
                    fast[t]
                );
            }
        }
    }

    #[test]
    fn q8_0_simd_equals_scalar_and_reference() {
        let (rows, cols, ntok) = (3, 96, 18);
        let vals = random(rows * cols + rows * cols / QK, 11);
        let mut raw = Vec::new();
        for b in 0..rows * cols / QK {
            raw.extend_from_slice(&f16::from_f32(0.01 + vals[b].abs() * 0.05).to_le_bytes());
            raw.extend(
                (0..QK).map(|j| ((vals[rows * cols / QK + b * QK + j]) * 127.0) as i8 as u8),
            );
        }
        let w = Q8_0Matrix::from_ggml(&raw, rows, cols).unwrap();
        let xf = random(ntok * cols, 5);
        let x = QuantizedRows::quantize(&xf, ntok, cols);
        let tokens: Vec<usize> = (0..ntok).collect();
        let mut wrow = vec![0.0; cols];
        for r in 0..rows {
            let mut fast = vec![0.0; ntok];
            let mut slow = vec![0.0; ntok];
            q8_0_row(&w, r, &x, &tokens, &mut fast);
            scalar::q8_0_row(&w, r, &x, &tokens, &mut slow);
            assert_eq!(fast, slow);
            for simd in paths() {
                let mut other = vec![0.0; ntok];
                // SAFETY: `paths()` lists only what the CPU has.
                unsafe {
                    match simd {
                        Simd::None => scalar::q8_0_row(&w, r, &x, &tokens, &mut other),
                        Simd::Avx2 => avx2::q8_0_row(&w, r, &x, &tokens, &mut other),
                        Simd::AvxVnni => avx2::q8_0_row_avx_vnni(&w, r, &x, &tokens, &mut other),
                        Simd::Vnni => avx2::q8_0_row_vnni(&w, r, &x, &tokens, &mut other),
                    }
                }
                assert_eq!(other, slow, "{simd:?}");
            }
            if r + 1 < rows {
                let mut next = vec![0.0; ntok];
                scalar::q8_0_row(&w, r + 1, &x, &tokens, &mut next);
                // Every token count a pair call takes, from the first token and from an offset.
                for n in 1..=ntok {
                    for first in [0, ntok - n] {
                        let toks: Vec<usize> = (first..first + n).collect();
                        let mut pair = vec![0.0; 2 * n];
                        q8_0_row_pair(&w, r, &x, &toks, &mut pair);
                        assert_eq!(pair[..n], slow[first..first + n], "pair, {n} tokens");
                        assert_eq!(pair[n..], next[first..first + n], "pair, {n} tokens");
                    }
                }
            }
            w.dequantize_row(r, &mut wrow);
            // Only the activations are rounded (to 8 bits: at most half a step of amax / 127,
            // amax <= 1, plus the f16 scale's 2^-11), so each product is off by at most
            // |w| / 200.
            let bound = wrow.iter().map(|v| v.abs()).sum::<f32>() / 200.0 + 1e-4;
            for t in 0..ntok {
                let exact: f32 = wrow
                    .iter()
                    .zip(&xf[t * cols..][..cols])
                    .map(|(a, b)| a * b)
                    .sum();
                assert!(
                    (exact - fast[t]).abs() < bound,
                    "{exact} vs {} (bound {bound})",
                    fast[t]
                );
            }
        }
    }
}
