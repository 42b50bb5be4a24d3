// Quantized matrix-vector products for steps of few tokens: `y[t * rows + r] = W[r] · x[t]`
// with 8-bit activations (`quantize_q8_1`) and integer dot products (`__dp4a`), as the CPU
// engine computes them block by block.
//
// One warp per output row, its lanes over the row's blocks (consecutive lanes, consecutive
// blocks: each load instruction of a warp reads one contiguous stretch of the matrix), each
// weight block loaded once and used for every token of its chunk: `blockIdx.y` picks tokens
// `8 * y .. 8 * y + 8` of the step (grid.y = ceil(ntok / 8)).

#define SF_MV_MAX_TOKENS 8

// Moves the activation and output pointers to this block's chunk of tokens; `ntok` becomes the
// chunk's size.
#define SF_MV_CHUNK()                                                       \
    do {                                                                    \
        const int t0 = blockIdx.y * SF_MV_MAX_TOKENS;                       \
        xq += (i64)t0 * cols;                                               \
        xds += 2 * (i64)t0 * nb;                                            \
        y += (i64)t0 * rows;                                                \
        ntok = ntok - t0 < SF_MV_MAX_TOKENS ? ntok - t0 : SF_MV_MAX_TOKENS; \
    } while (0)

SF_DEVICE int sf_dot_q4_block(const int4 w, const int* __restrict__ x) {
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

SF_DEVICE int sf_dot_q8_block(const int4 a, const int4 b, const int* __restrict__ x) {
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

// Sums each token's partial over the warp; lane 0 writes the row's outputs.
SF_DEVICE void sf_mv_store(float* acc, float* __restrict__ y, int row, int rows, int ntok) {
#pragma unroll
    for (int t = 0; t < SF_MV_MAX_TOKENS; t++) {
        if (t < ntok) {
            const float v = sf_warp_sum(acc[t]);
            if (threadIdx.x % SF_WARP == 0) y[(i64)t * rows + row] = v;
        }
    }
}

// Grid: ceil(rows / warps per block) blocks; `x` is `ntok × cols` quantized activations with
// their `ds` pairs (`ntok × cols/32`).
SF_KERNEL void matvec_q4_1(const u8* __restrict__ qs, const u32* __restrict__ dm,
                           const i8* __restrict__ xq, const float* __restrict__ xds,
                           float* __restrict__ y, int rows, int cols, int ntok) {
    const int row = blockIdx.x * (blockDim.x / SF_WARP) + threadIdx.x / SF_WARP;
    if (row >= rows) return;  // whole warps only
    const int nb = cols / 32;
    SF_MV_CHUNK();
    float acc[SF_MV_MAX_TOKENS];
#pragma unroll
    for (int t = 0; t < SF_MV_MAX_TOKENS; t++) acc[t] = 0.0f;
    const i64 base = (i64)row * nb;
#pragma unroll 4
    for (int b = threadIdx.x % SF_WARP; b < nb; b += SF_WARP) {
        const int4 w = *(const int4*)(qs + (base + b) * 16);
        const u32 v = dm[base + b];
        const float d = sf_h2f((u16)(v & 0xffff)), m = sf_h2f((u16)(v >> 16));
#pragma unroll
        for (int t = 0; t < SF_MV_MAX_TOKENS; t++) {
            if (t < ntok) {
                const int* x = (const int*)(xq + (i64)t * cols + b * 32);
                const float2 s = *(const float2*)(xds + 2 * ((i64)t * nb + b));
                acc[t] += d * s.x * (float)sf_dot_q4_block(w, x) + m * s.y;
            }
        }
    }
    sf_mv_store(acc, y, row, rows, ntok);
}

SF_KERNEL void matvec_q8_0(const i8* __restrict__ qs, const u16* __restrict__ d,
                           const i8* __restrict__ xq, const float* __restrict__ xds,
                           float* __restrict__ y, int rows, int cols, int ntok) {
    const int row = blockIdx.x * (blockDim.x / SF_WARP) + threadIdx.x / SF_WARP;
    if (row >= rows) return;
    const int nb = cols / 32;
    SF_MV_CHUNK();
    float acc[SF_MV_MAX_TOKENS];
#pragma unroll
    for (int t = 0; t < SF_MV_MAX_TOKENS; t++) acc[t] = 0.0f;
    const i64 base = (i64)row * nb;
#pragma unroll 4
    for (int b = threadIdx.x % SF_WARP; b < nb; b += SF_WARP) {
        const int4* p = (const int4*)(qs + (base + b) * 32);
        const int4 w0 = p[0], w1 = p[1];
        const float dw = sf_h2f(d[base + b]);
#pragma unroll
        for (int t = 0; t < SF_MV_MAX_TOKENS; t++) {
            if (t < ntok) {
                const int* x = (const int*)(xq + (i64)t * cols + b * 32);
                acc[t] += dw * xds[2 * ((i64)t * nb + b)] * (float)sf_dot_q8_block(w0, w1, x);
            }
        }
    }
    sf_mv_store(acc, y, row, rows, ntok);
}

// f32 weights (from f16/f32 files) for few tokens: plain dot products, one warp a row.
SF_KERNEL void matvec_f32(const float* __restrict__ w, const float* __restrict__ x,
                          float* __restrict__ y, int rows, int cols, int ntok) {
    const int row = blockIdx.x * (blockDim.x / SF_WARP) + threadIdx.x / SF_WARP;
    if (row >= rows) return;
    {
        const int t0 = blockIdx.y * SF_MV_MAX_TOKENS;
        x += (i64)t0 * cols;
        y += (i64)t0 * rows;
        ntok = ntok - t0 < SF_MV_MAX_TOKENS ? ntok - t0 : SF_MV_MAX_TOKENS;
    }
    float acc[SF_MV_MAX_TOKENS];
#pragma unroll
    for (int t = 0; t < SF_MV_MAX_TOKENS; t++) acc[t] = 0.0f;
    for (int c = threadIdx.x % SF_WARP; c < cols; c += SF_WARP) {
        const float wv = w[(i64)row * cols + c];
#pragma unroll
        for (int t = 0; t < SF_MV_MAX_TOKENS; t++)
            if (t < ntok) acc[t] += wv * x[(i64)t * cols + c];
    }
    sf_mv_store(acc, y, row, rows, ntok);
}
