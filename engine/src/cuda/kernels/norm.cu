// Normalisation and element-wise kernels of a decoder layer.

// A norm's sum of squares is added in one order whatever the width of the block that computes
// it: that of `SF_NORM_THREADS` threads, thread j summing elements j, j + 256, ... in turn,
// then each warp of 32 such threads (`sf_warp_sum`), then the 8 warps' sums. The norm kernels
// run 256 threads a block; a matrix-vector kernel that normalises its own input (128 threads,
// `sf_matvec`) runs two such threads in each of its own, so both give the same bits.
#define SF_NORM_THREADS 256

// Element `i` of a norm's input: `xr[i]`, plus `dr[i]` where `dr` is given.
SF_DEVICE float sf_norm_in(const float* xr, const float* dr, int i) {
    return dr ? xr[i] + dr[i] : xr[i];
}

// 1 / rms of a row of `h` floats (`xr` + `dr`), for every thread of the block (its width must
// divide `SF_NORM_THREADS`); `scratch`: 8 floats of shared memory, free again on return.
SF_DEVICE float sf_rms_scale(const float* xr, const float* dr, int h, float eps, float* scratch) {
    const int lane = threadIdx.x % SF_WARP;
    __syncthreads();  // a previous row's readers of `scratch` are done
    for (int j = threadIdx.x; j < SF_NORM_THREADS; j += blockDim.x) {
        float ss = 0.0f;
        for (int i = j; i < h; i += SF_NORM_THREADS) {
            const float v = sf_norm_in(xr, dr, i);
            ss += v * v;
        }
        ss = sf_warp_sum(ss);
        if (lane == 0) scratch[j / SF_WARP] = ss;
    }
    __syncthreads();
    const float ss = sf_warp_sum(lane < SF_NORM_THREADS / SF_WARP ? scratch[lane] : 0.0f);
    return rsqrtf(ss / (float)h + eps);
}

// One row of `h` floats (a multiple of 32) normalised: `n = (x + delta) / rms * w`, by the
// whole block. `xr`, `dr` (or null) the row's input; `xo` (or null) where the sum x + delta
// goes (it may be `xr` itself); `out` (or null) where `n` goes; `q`, `ds` what `sf_emit`
// makes of `n` for the next product, element i of the row at `at + i` of them (each warp holds
// 32 consecutive elements, the block of one quantized value).
SF_DEVICE void sf_norm_row(const float* xr, const float* dr, float* xo, const float* __restrict__ w,
                           int h, float eps, float* scratch, float* out, i8* q, float* ds, i64 at) {
    const float scale = sf_rms_scale(xr, dr, h, eps, scratch);
    for (int i = threadIdx.x; i < h; i += blockDim.x) {
        const float v = sf_norm_in(xr, dr, i);
        if (xo) xo[i] = v;
        const float n = v * scale * w[i];
        if (out) out[i] = n;
        sf_emit(n, q, ds, at + i);
    }
}

// `out = x / rms(x) * w`, one block of 256 threads per row of `h` floats; also quantized into
// `q`, `ds` (or as f16 into `q`) for the next matrix product where they are given (`sf_emit`).
SF_KERNEL void rms_norm(const float* __restrict__ x, const float* __restrict__ w,
                        float* __restrict__ out, i8* __restrict__ q, float* __restrict__ ds, int h,
                        float eps) {
    SF_WAIT_PRIOR();
    __shared__ float scratch[SF_NORM_THREADS / SF_WARP];
    const i64 at = (i64)blockIdx.x * h;
    sf_norm_row(x + at, nullptr, nullptr, w, h, eps, scratch, out + at, q, ds, at);
}

// The residual add fused with the next norm: `sum = x + delta` (into `sum` where given: the
// engine keeps the residual in two buffers, read from one and written to the other, since a
// matrix-vector kernel that does this itself cannot write where its other blocks read), then
// `out = rms_norm(sum) * w` (quantized as `rms_norm`'s).
SF_KERNEL void add_rms_norm(const float* __restrict__ x, const float* __restrict__ delta,
                            float* __restrict__ sum, const float* __restrict__ w,
                            float* __restrict__ out, i8* __restrict__ q, float* __restrict__ ds,
                            int h, float eps) {
    SF_WAIT_PRIOR();
    __shared__ float scratch[SF_NORM_THREADS / SF_WARP];
    const i64 at = (i64)blockIdx.x * h;
    sf_norm_row(x + at, delta + at, sum ? sum + at : nullptr, w, h, eps, scratch, out + at, q, ds,
                at);
}

// `x += delta` over `n` floats.
SF_KERNEL void add_inplace(float* __restrict__ x, const float* __restrict__ delta, i64 n) {
    SF_WAIT_PRIOR();
    const i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) x[i] += delta[i];
}

// SwiGLU of one element: silu(g) * u.
SF_DEVICE float sf_silu_mul(float g, float u) { return g / (1.0f + expf(-g)) * u; }

// SwiGLU over rows of `[gate (f) | up (f)]`: `out[r * f + c] = silu(gate) * up`, `rows * f`
// outputs (`f` a multiple of 32, blocks of whole warps), left for the next product as
// `sf_emit` says.
SF_KERNEL void silu_mul(const float* __restrict__ gu, float* __restrict__ out, i8* __restrict__ q,
                        float* __restrict__ ds, int f, i64 n) {
    SF_WAIT_PRIOR();
    const i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;  // whole warps: n is a multiple of 32
    const i64 r = i / f, c = i % f;
    const float v = sf_silu_mul(gu[r * 2 * f + c], gu[r * 2 * f + f + c]);
    out[i] = v;
    sf_emit(v, q, ds, i);
}
