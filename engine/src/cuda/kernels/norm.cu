// Normalisation and element-wise kernels of a decoder layer.

// Writes `v` at element `i` of `out`'s row `row`, and beside it what `sf_emit` makes of it for
// the next product (the loops below hand each warp 32 consecutive elements of a row; `h` is a
// multiple of 32).
SF_DEVICE void sf_put_row(float v, float* __restrict__ out, i8* __restrict__ q,
                          float* __restrict__ ds, i64 row, int h, int i) {
    out[row * h + i] = v;
    sf_emit(v, q, ds, row * h + i);
}

// `out = x / rms(x) * w`, one block per row of `h` floats; also quantized into `q`, `ds` (or
// as f16 into `q`) for the next matrix product where they are given (`sf_emit`).
SF_KERNEL void rms_norm(const float* __restrict__ x, const float* __restrict__ w,
                        float* __restrict__ out, i8* __restrict__ q, float* __restrict__ ds, int h,
                        float eps) {
    SF_WAIT_PRIOR();
    __shared__ float scratch[32];
    const i64 row = blockIdx.x;
    const float* xr = x + row * h;
    float ss = 0.0f;
    for (int i = threadIdx.x; i < h; i += blockDim.x) ss += xr[i] * xr[i];
    ss = sf_block_sum(ss, scratch);
    const float scale = rsqrtf(ss / (float)h + eps);
    for (int i = threadIdx.x; i < h; i += blockDim.x) sf_put_row(xr[i] * scale * w[i], out, q, ds, row, h, i);
}

// The residual add fused with the next norm: `x += delta`, then `out = rms_norm(x) * w`
// (quantized as `rms_norm`'s).
SF_KERNEL void add_rms_norm(float* __restrict__ x, const float* __restrict__ delta,
                            const float* __restrict__ w, float* __restrict__ out, i8* __restrict__ q,
                            float* __restrict__ ds, int h, float eps) {
    SF_WAIT_PRIOR();
    __shared__ float scratch[32];
    const i64 row = blockIdx.x;
    float* xr = x + row * h;
    float ss = 0.0f;
    for (int i = threadIdx.x; i < h; i += blockDim.x) {
        const float v = xr[i] + delta[row * h + i];
        xr[i] = v;
        ss += v * v;
    }
    ss = sf_block_sum(ss, scratch);
    const float scale = rsqrtf(ss / (float)h + eps);
    for (int i = threadIdx.x; i < h; i += blockDim.x) sf_put_row(xr[i] * scale * w[i], out, q, ds, row, h, i);
}

// `x += delta` over `n` floats.
SF_KERNEL void add_inplace(float* __restrict__ x, const float* __restrict__ delta, i64 n) {
    SF_WAIT_PRIOR();
    const i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) x[i] += delta[i];
}

// SwiGLU over rows of `[gate (f) | up (f)]`: `out[r * f + c] = silu(gate) * up`, `rows * f`
// outputs (`f` a multiple of 32, blocks of whole warps), left for the next product as
// `sf_emit` says.
SF_KERNEL void silu_mul(const float* __restrict__ gu, float* __restrict__ out, i8* __restrict__ q,
                        float* __restrict__ ds, int f, i64 n) {
    SF_WAIT_PRIOR();
    const i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;  // whole warps: n is a multiple of 32
    const i64 r = i / f, c = i % f;
    const float g = gu[r * 2 * f + c], u = gu[r * 2 * f + f + c];
    const float v = g / (1.0f + expf(-g)) * u;
    out[i] = v;
    sf_emit(v, q, ds, i);
}
