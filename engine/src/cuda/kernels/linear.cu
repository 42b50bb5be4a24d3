// Quantized matrix-vector products for steps of few tokens: `y[t * rows + r] = W[r] · x[t]`
// with 8-bit activations (`quantize_q8_1`) and integer dot products (`__dp4a`), as the CPU
// engine computes them block by block.
//
// One warp per `SF_MV_ROWS` output rows, its lanes over the rows' blocks (consecutive lanes,
// consecutive blocks: each load instruction of a warp reads one contiguous stretch of the
// matrix), each weight block loaded once and used for every token of its chunk, each
// activation block loaded once (two 16-byte loads) and used for every row of the warp:
// `blockIdx.y` picks tokens `8 * y .. 8 * y + 8` of the step (grid.y = ceil(ntok / 8)). A row's
// sum is the same whatever shares its warp: lane partials over its blocks, then the warp sum.

#define SF_MV_MAX_TOKENS 8
#define SF_MV_ROWS 2

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

// The warp's first row and how many of its `SF_MV_ROWS` rows exist; returns from the kernel
// when none does (whole warps only).
#define SF_MV_ROWS_OF_WARP()                                                                 \
    const int row0 = (blockIdx.x * (blockDim.x / SF_WARP) + threadIdx.x / SF_WARP) * SF_MV_ROWS; \
    if (row0 >= rows) return;                                                                \
    const int nr = rows - row0 < SF_MV_ROWS ? rows - row0 : SF_MV_ROWS

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
SF_DEVICE void sf_mv_store(float* acc, float* __restrict__ y, int row, int rows, int ntok) {
#pragma unroll
    for (int t = 0; t < SF_MV_MAX_TOKENS; t++) {
        if (t < ntok) {
            const float v = sf_warp_sum(acc[t]);
            if (threadIdx.x % SF_WARP == 0) y[(i64)t * rows + row] = v;
        }
    }
}

// Grid: ceil(rows / (SF_MV_ROWS * warps per block)) blocks; `x` is `ntok × cols` quantized
// activations with their `ds` pairs (`ntok × cols/32`).
SF_KERNEL void matvec_q4_1(const u8* __restrict__ qs, const u32* __restrict__ dm,
                           const i8* __restrict__ xq, const float* __restrict__ xds,
                           float* __restrict__ y, int rows, int cols, int ntok) {
    SF_WAIT_PRIOR();
    SF_MV_ROWS_OF_WARP();
    const int nb = cols / 32;
    SF_MV_CHUNK();
    float acc[SF_MV_ROWS][SF_MV_MAX_TOKENS];
#pragma unroll
    for (int r = 0; r < SF_MV_ROWS; r++)
#pragma unroll
        for (int t = 0; t < SF_MV_MAX_TOKENS; t++) acc[r][t] = 0.0f;
#pragma unroll 2
    for (int b = threadIdx.x % SF_WARP; b < nb; b += SF_WARP) {
        int4 w[SF_MV_ROWS];
        float d[SF_MV_ROWS], m[SF_MV_ROWS];
#pragma unroll
        for (int r = 0; r < SF_MV_ROWS; r++) {
            const i64 at = (i64)(row0 + (r < nr ? r : 0)) * nb + b;
            w[r] = *(const int4*)(qs + at * 16);
            const u32 v = dm[at];
            d[r] = sf_h2f((u16)(v & 0xffff));
            m[r] = sf_h2f((u16)(v >> 16));
        }
#pragma unroll
        for (int t = 0; t < SF_MV_MAX_TOKENS; t++) {
            if (t < ntok) {
                int x[8];
                sf_load_x_block(xq + (i64)t * cols + b * 32, x);
                const float2 s = *(const float2*)(xds + 2 * ((i64)t * nb + b));
#pragma unroll
                for (int r = 0; r < SF_MV_ROWS; r++)
                    acc[r][t] += d[r] * s.x * (float)sf_dot_q4_block(w[r], x) + m[r] * s.y;
            }
        }
    }
#pragma unroll
    for (int r = 0; r < SF_MV_ROWS; r++)
        if (r < nr) sf_mv_store(acc[r], y, row0 + r, rows, ntok);
}

SF_KERNEL void matvec_q8_0(const i8* __restrict__ qs, const u16* __restrict__ d,
                           const i8* __restrict__ xq, const float* __restrict__ xds,
                           float* __restrict__ y, int rows, int cols, int ntok) {
    SF_WAIT_PRIOR();
    SF_MV_ROWS_OF_WARP();
    const int nb = cols / 32;
    SF_MV_CHUNK();
    float acc[SF_MV_ROWS][SF_MV_MAX_TOKENS];
#pragma unroll
    for (int r = 0; r < SF_MV_ROWS; r++)
#pragma unroll
        for (int t = 0; t < SF_MV_MAX_TOKENS; t++) acc[r][t] = 0.0f;
#pragma unroll 2
    for (int b = threadIdx.x % SF_WARP; b < nb; b += SF_WARP) {
        int4 w0[SF_MV_ROWS], w1[SF_MV_ROWS];
        float dw[SF_MV_ROWS];
#pragma unroll
        for (int r = 0; r < SF_MV_ROWS; r++) {
            const i64 at = (i64)(row0 + (r < nr ? r : 0)) * nb + b;
            const int4* p = (const int4*)(qs + at * 32);
            w0[r] = p[0];
            w1[r] = p[1];
            dw[r] = sf_h2f(d[at]);
        }
#pragma unroll
        for (int t = 0; t < SF_MV_MAX_TOKENS; t++) {
            if (t < ntok) {
                int x[8];
                sf_load_x_block(xq + (i64)t * cols + b * 32, x);
                const float s = xds[2 * ((i64)t * nb + b)];
#pragma unroll
                for (int r = 0; r < SF_MV_ROWS; r++)
                    acc[r][t] += dw[r] * s * (float)sf_dot_q8_block(w0[r], w1[r], x);
            }
        }
    }
#pragma unroll
    for (int r = 0; r < SF_MV_ROWS; r++)
        if (r < nr) sf_mv_store(acc[r], y, row0 + r, rows, ntok);
}

// f32 weights (from f16/f32 files) for few tokens: plain dot products, `SF_MV_ROWS` rows a warp.
SF_KERNEL void matvec_f32(const float* __restrict__ w, const float* __restrict__ x,
                          float* __restrict__ y, int rows, int cols, int ntok) {
    SF_WAIT_PRIOR();
    SF_MV_ROWS_OF_WARP();
    {
        const int t0 = blockIdx.y * SF_MV_MAX_TOKENS;
        x += (i64)t0 * cols;
        y += (i64)t0 * rows;
        ntok = ntok - t0 < SF_MV_MAX_TOKENS ? ntok - t0 : SF_MV_MAX_TOKENS;
    }
    float acc[SF_MV_ROWS][SF_MV_MAX_TOKENS];
#pragma unroll
    for (int r = 0; r < SF_MV_ROWS; r++)
#pragma unroll
        for (int t = 0; t < SF_MV_MAX_TOKENS; t++) acc[r][t] = 0.0f;
    for (int c = threadIdx.x % SF_WARP; c < cols; c += SF_WARP) {
        float wv[SF_MV_ROWS];
#pragma unroll
        for (int r = 0; r < SF_MV_ROWS; r++) wv[r] = w[(i64)(row0 + (r < nr ? r : 0)) * cols + c];
#pragma unroll
        for (int t = 0; t < SF_MV_MAX_TOKENS; t++)
            if (t < ntok) {
                const float xv = x[(i64)t * cols + c];
#pragma unroll
                for (int r = 0; r < SF_MV_ROWS; r++) acc[r][t] += wv[r] * xv;
            }
    }
#pragma unroll
    for (int r = 0; r < SF_MV_ROWS; r++)
        if (r < nr) sf_mv_store(acc[r], y, row0 + r, rows, ntok);
}
