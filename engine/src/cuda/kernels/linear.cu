// Quantized matrix-vector products for steps of few tokens: `y[t * rows + r] = W[r] · x[t]`
// with 8-bit activations (`quantize_q8_1`) and integer dot products (`__dp4a`), as the CPU
// engine computes them block by block.
//
// One warp per `R` output rows, its lanes over the rows' blocks (consecutive lanes, consecutive
// blocks: each load instruction of a warp reads one contiguous stretch of the matrix), each
// weight block loaded once and used for every token of its chunk, each activation block loaded
// once (two 16-byte loads) and used for every row of the warp: `blockIdx.y` picks tokens
// `T * y .. T * y + T` of the step (grid.y = ceil(ntok / T)).
//
// Each (R, T) is its own kernel (`matvec_q4_1_r{R}t{T}`, for those `cuda::MATVEC_SHAPES`
// lists), and the engine times them on its own matrices at load: more rows a warp load each
// activation block for more rows (at one token the activations are as many bytes as the
// weights, read again by every warp), fewer spread a small matrix over more multiprocessors,
// and a one-token kernel needs fewer registers than an eight-token one. Every shape gives the
// same bits: a row's sum is its lanes' partials over its blocks in block order, then the warp
// sum, and each block's term is written with explicit `fmaf`s, so no shape's code contracts
// its multiplies and adds differently; what shares the warp changes none of it.

// Two blocks a lane in flight, unless the warp's rows and tokens already keep a lane's
// registers full (8 rows and 8 tokens: two blocks would spill).
#define SF_MV_UNROLL(R, T) ((R) * (T) >= 64 ? 1 : 2)

SF_DEVICE int sf_dot_q4_block(const int4 w, const int* x) {
    int s = 0;
    s = __dp4a(w.x & 0x0F0F0F0F, x[0], s);
    s = __dp4a(w.y & 0x0F0F0F0F, x[1], s);
    s = __dp4a(w.z & 0x0F0F0F0F, x[2], s);
    s = __dp4a(w.w & 0x0F0F0F0F, x[3], s);
    s = __dp4a((w.x >> 4) & 0x0F0F0F0F, x[4], s);
    s = __dp4a((w.y >> 4) & 0x0F0F0F0F, x[5], s);
    s = __dp4a((w.z >> 4) & 0x0F0F0F0F, x[6], s);
    s = __dp4a((w.w >> 4) & 0x0F0F0F0F, x[7], s);
    return s;
}

SF_DEVICE int sf_dot_q8_block(const int4 a, const int4 b, const int* x) {
    int s = 0;
    s = __dp4a(a.x, x[0], s);
    s = __dp4a(a.y, x[1], s);
    s = __dp4a(a.z, x[2], s);
    s = __dp4a(a.w, x[3], s);
    s = __dp4a(b.x, x[4], s);
    s = __dp4a(b.y, x[5], s);
    s = __dp4a(b.z, x[6], s);
    s = __dp4a(b.w, x[7], s);
    return s;
}

// One 32-byte activation block, as 8 ints (two 16-byte loads).
SF_DEVICE void sf_load_x_block(const i8* __restrict__ p, int* x) {
    const int4 a = ((const int4*)p)[0], b = ((const int4*)p)[1];
    x[0] = a.x; x[1] = a.y; x[2] = a.z; x[3] = a.w;
    x[4] = b.x; x[5] = b.y; x[6] = b.z; x[7] = b.w;
}

// Sums each token's partial over the warp; lane 0 writes the row's outputs.
template <int T>
SF_DEVICE void sf_mv_store(const float* acc, float* __restrict__ y, int row, int rows, int ntok) {
#pragma unroll
    for (int t = 0; t < T; t++) {
        if (t < ntok) {
            const float v = sf_warp_sum(acc[t]);
            if (threadIdx.x % SF_WARP == 0) y[(i64)t * rows + row] = v;
        }
    }
}

// What `sf_matvec` needs of each kind of weights, overloaded by the types of its arrays: a
// block's weights (`sf_mv_load`), and a row's sum with the block's term added for one token's
// activation block `x` and its (d, s) (`sf_mv_add`).

// Q4_1: per block, 16 bytes of quants (`qs`) and a packed f16 (d, m) pair (`sc`).
struct SfQ4_1Block {
    int4 w;
    float d, m;
};
SF_DEVICE SfQ4_1Block sf_mv_load(const u8* __restrict__ qs, const u32* __restrict__ sc, i64 at) {
    const u32 v = sc[at];
    return {*(const int4*)(qs + at * 16), sf_h2f((u16)(v & 0xffff)), sf_h2f((u16)(v >> 16))};
}
SF_DEVICE float sf_mv_add(float acc, const SfQ4_1Block& w, const int* x, float2 s) {
    return acc + fmaf(w.d * s.x, (float)sf_dot_q4_block(w.w, x), w.m * s.y);
}

// Q8_0: per block, 32 signed bytes (`qs`) and an f16 d (`sc`).
struct SfQ8_0Block {
    int4 lo, hi;
    float d;
};
SF_DEVICE SfQ8_0Block sf_mv_load(const i8* __restrict__ qs, const u16* __restrict__ sc, i64 at) {
    const int4* p = (const int4*)(qs + at * 32);
    return {p[0], p[1], sf_h2f(sc[at])};
}
SF_DEVICE float sf_mv_add(float acc, const SfQ8_0Block& w, const int* x, float2 s) {
    return fmaf(w.d * s.x, (float)sf_dot_q8_block(w.lo, w.hi, x), acc);
}

// The warp's `R` rows' weight block `b` (a missing row reads the warp's first row again, and
// is not stored).
template <int R, class Q, class S, class W>
SF_DEVICE void sf_mv_weights(W (&w)[R], const Q* __restrict__ qs, const S* __restrict__ sc,
                             int row0, int nr, int nb, int b) {
#pragma unroll
    for (int r = 0; r < R; r++) w[r] = sf_mv_load(qs, sc, (i64)(row0 + (r < nr ? r : 0)) * nb + b);
}

// Adds weight block `b`'s terms to the warp's rows' sums, for every token of the chunk.
template <int R, int T, class W>
SF_DEVICE void sf_mv_block(float (&acc)[R][T], const W (&w)[R], int b, const i8* xq,
                           const float* xds, int cols, int nb, int ntok) {
#pragma unroll
    for (int t = 0; t < T; t++) {
        if (t < ntok) {
            int x[8];
            sf_load_x_block(xq + (i64)t * cols + b * 32, x);
            const float2 s = *(const float2*)(xds + 2 * ((i64)t * nb + b));
#pragma unroll
            for (int r = 0; r < R; r++) acc[r][t] = sf_mv_add(acc[r][t], w[r], x, s);
        }
    }
}

// Where a matrix-vector kernel's activations come from (its `in`):
// - `SF_MV_QUANTIZED`: `xq`, `xds`, quantized by the kernel that wrote them;
// - `SF_MV_NORM`: each block makes them itself from floats, `rms_norm(src + delta) * nw` as
//   `add_rms_norm` does (`delta` may be null: `rms_norm`), block 0 of each token chunk also
//   writing the sum `src + delta` to `resid` (where given);
// - `SF_MV_SILU`: each block makes them itself from rows `[gate (cols) | up (cols)]` of
//   `src`, `silu(gate) * up` as `silu_mul` does.
// The last two spare the launch of the kernel that would make them, and its round trip through
// memory: every block quantizes the chunk's whole input into its dynamic shared memory
// (`cuda::Matvec::input_smem`: 32 floats of scratch, then the (d, s) pairs, then the quantized
// values at a 16-byte boundary), the same bits that kernel would have written.
#define SF_MV_QUANTIZED 0
#define SF_MV_NORM 1
#define SF_MV_SILU 2

// The activations of `ntok` tokens from row `t0` on, made as `in` says into shared memory
// (`xq`, `xds` then point there, the chunk's first token first), by the whole block.
template <int T>
SF_DEVICE void sf_mv_input(int in, const float* __restrict__ src, const float* __restrict__ delta,
                           const float* __restrict__ nw, float* __restrict__ resid, float eps,
                           int cols, int t0, int ntok, const i8*& xq, const float*& xds) {
    const int nb = cols / 32;
    float* smem = SF_DYN_SMEM(float);
    float* ds = smem + 32;
    i8* q = (i8*)(ds + ((2 * T * nb + 3) & ~3));
    for (int t = 0; t < ntok; t++) {
        const i64 row = (i64)(t0 + t) * cols;
        if (in == SF_MV_NORM) {
            float* sum = resid && blockIdx.x == 0 ? resid + row : nullptr;
            sf_norm_row(src + row, delta ? delta + row : nullptr, sum, nw, cols, eps, smem, nullptr,
                        q, ds, (i64)t * cols);
        } else {
            const float* gu = src + 2 * row;
            for (int c = threadIdx.x; c < cols; c += blockDim.x)
                sf_emit(sf_silu_mul(gu[c], gu[cols + c]), q, ds, (i64)t * cols + c);
        }
    }
    __syncthreads();
    xq = q;
    xds = ds;
}

// Grid: `cuda::Matvec::launch` (ceil(rows / (R * warps a block)) by ceil(ntok / T) blocks);
// `x` is `ntok × cols` quantized activations with their `ds` pairs (`ntok × cols/32`), or
// what they are made from (`sf_mv_input`); `qs` and `sc` the weights' quants and scales, of
// either kind.
//
// No kernel writes the weights, so each lane loads its first block of the warp's rows before
// it waits for the kernel before (`SF_WAIT_PRIOR`): launched overlapped, those loads are in
// flight while that kernel finishes, and only the activations it wrote are read after. A row
// of up to 32 blocks (1024 columns) is then loaded whole before the wait.
template <int R, int T, class Q, class S>
SF_DEVICE void sf_matvec(const Q* __restrict__ qs, const S* __restrict__ sc, const i8* xq,
                         const float* xds, float* __restrict__ y, int rows, int cols, int ntok,
                         int in, const float* __restrict__ src, const float* __restrict__ delta,
                         const float* __restrict__ nw, float* __restrict__ resid, float eps) {
    typedef decltype(sf_mv_load(qs, sc, 0)) W;
    const int lane = threadIdx.x % SF_WARP;
    // The warp's first row and how many of its `R` rows exist; the block's chunk of tokens.
    const int row0 = (blockIdx.x * (blockDim.x / SF_WARP) + threadIdx.x / SF_WARP) * (R);
    const int nr = rows - row0 < (R) ? rows - row0 : (R);
    const int nb = cols / 32;
    const int t0 = blockIdx.y * (T);
    ntok = ntok - t0 < (T) ? ntok - t0 : (T);
    y += (i64)t0 * rows;
    W first[R] = {};
    if (row0 < rows && lane < nb) sf_mv_weights(first, qs, sc, row0, nr, nb, lane);
    SF_WAIT_PRIOR();
    if (in == SF_MV_QUANTIZED) {
        xq += (i64)t0 * cols;
        xds += 2 * (i64)t0 * nb;
    } else {
        // Every warp helps, then those past the last row leave.
        sf_mv_input<T>(in, src, delta, nw, resid, eps, cols, t0, ntok, xq, xds);
    }
    if (row0 >= rows) return;  // whole warps only
    float acc[R][T];
#pragma unroll
    for (int r = 0; r < R; r++)
#pragma unroll
        for (int t = 0; t < T; t++) acc[r][t] = 0.0f;
    if (lane < nb) sf_mv_block(acc, first, lane, xq, xds, cols, nb, ntok);
#pragma unroll SF_MV_UNROLL(R, T)
    for (int b = lane + SF_WARP; b < nb; b += SF_WARP) {
        W w[R];
        sf_mv_weights(w, qs, sc, row0, nr, nb, b);
        sf_mv_block(acc, w, b, xq, xds, cols, nb, ntok);
    }
#pragma unroll
    for (int r = 0; r < R; r++)
        if (r < nr) sf_mv_store<T>(acc[r], y, row0 + r, rows, ntok);
}

// The kernels, `matvec_q4_1_r{R}t{T}` and `matvec_q8_0_r{R}t{T}`, call `sf_matvec` for every
// (R, T) of `cuda::MATVEC_SHAPES`; `cuda::source` writes them after this file.

// f32 weights (from f16/f32 files) for few tokens: plain dot products, 2 rows a warp and 8
// tokens a block row (`cuda::MATVEC_F32`).
SF_KERNEL void matvec_f32(const float* __restrict__ w, const float* __restrict__ x,
                          float* __restrict__ y, int rows, int cols, int ntok) {
    SF_WAIT_PRIOR();
    const int row0 = (blockIdx.x * (blockDim.x / SF_WARP) + threadIdx.x / SF_WARP) * 2;
    if (row0 >= rows) return;
    const int nr = rows - row0 < 2 ? rows - row0 : 2;
    {
        const int t0 = blockIdx.y * 8;
        x += (i64)t0 * cols;
        y += (i64)t0 * rows;
        ntok = ntok - t0 < 8 ? ntok - t0 : 8;
    }
    float acc[2][8];
#pragma unroll
    for (int r = 0; r < 2; r++)
#pragma unroll
        for (int t = 0; t < 8; t++) acc[r][t] = 0.0f;
    for (int c = threadIdx.x % SF_WARP; c < cols; c += SF_WARP) {
        float wv[2];
#pragma unroll
        for (int r = 0; r < 2; r++) wv[r] = w[(i64)(row0 + (r < nr ? r : 0)) * cols + c];
#pragma unroll
        for (int t = 0; t < 8; t++)
            if (t < ntok) {
                const float xv = x[(i64)t * cols + c];
#pragma unroll
                for (int r = 0; r < 2; r++) acc[r][t] += wv[r] * xv;
            }
    }
#pragma unroll
    for (int r = 0; r < 2; r++)
        if (r < nr) sf_mv_store<8>(acc[r], y, row0 + r, rows, ntok);
}
