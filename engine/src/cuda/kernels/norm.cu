// Normalisation and element-wise kernels of a decoder layer.

// `out = x / rms(x) * w`, one block per row of `h` floats.
SF_KERNEL void rms_norm(const float* __restrict__ x, const float* __restrict__ w,
                        float* __restrict__ out, int h, float eps) {
    __shared__ float scratch[32];
    const i64 row = blockIdx.x;
    const float* xr = x + row * h;
    float ss = 0.0f;
    for (int i = threadIdx.x; i < h; i += blockDim.x) ss += xr[i] * xr[i];
    ss = sf_block_sum(ss, scratch);
    const float scale = rsqrtf(ss / (float)h + eps);
    for (int i = threadIdx.x; i < h; i += blockDim.x) out[row * h + i] = xr[i] * scale * w[i];
}

// The residual add fused with the next norm: `x += delta`, then `out = rms_norm(x) * w`.
SF_KERNEL void add_rms_norm(float* __restrict__ x, const float* __restrict__ delta,
                            const float* __restrict__ w, float* __restrict__ out, int h, float eps) {
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
    for (int i = threadIdx.x; i < h; i += blockDim.x) out[row * h + i] = xr[i] * scale * w[i];
}

// `x += delta` over `n` floats.
SF_KERNEL void add_inplace(float* __restrict__ x, const float* __restrict__ delta, i64 n) {
    const i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) x[i] += delta[i];
}

// SwiGLU over rows of `[gate (f) | up (f)]`: `out[r * f + c] = silu(gate) * up`, `rows * f`
// outputs.
SF_KERNEL void silu_mul(const float* __restrict__ gu, float* __restrict__ out, int f, i64 n) {
    const i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    const i64 r = i / f, c = i % f;
    const float g = gu[r * 2 * f + c], u = gu[r * 2 * f + f + c];
    out[i] = g / (1.0f + expf(-g)) * u;
}
