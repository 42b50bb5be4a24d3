// Bias, rotary embedding and the write of keys and values into the paged cache, for every new
// token of a step. `qkv` rows are `[q (nh * hd) | k (nkv * hd) | v (nkv * hd)]`; q and k are
// rotated in place, k and v stored as f16 at the token's slot (`slot * nkv * hd` in each
// cache). `cos` / `sin` are the host's tables (`positions × hd/2`), so the angles are the CPU
// engine's; the rotation uses its fused multiply-adds (`x0·cos − x1·sin` and `x0·sin + x1·cos`,
// each first product fused), so the numbers are too.
SF_KERNEL void rope_write_kv(float* __restrict__ qkv, const float* __restrict__ bias,
                             u16* __restrict__ k_cache, u16* __restrict__ v_cache,
                             const int* __restrict__ pos, const i64* __restrict__ slot,
                             const float* __restrict__ cos_t, const float* __restrict__ sin_t,
                             int nh, int nkv, int hd, int neox) {
    SF_WAIT_PRIOR();
    const int t = blockIdx.x;
    const int width = (nh + 2 * nkv) * hd;
    float* row = qkv + (i64)t * width;
    if (bias) {
        for (int i = threadIdx.x; i < width; i += blockDim.x) row[i] += bias[i];
        __syncthreads();
    }
    const int half = hd / 2;
    const float* c = cos_t + (i64)pos[t] * half;
    const float* s = sin_t + (i64)pos[t] * half;
    for (int i = threadIdx.x; i < (nh + nkv) * half; i += blockDim.x) {
        const int head = i / half, j = i % half;
        const int a = head * hd + (neox ? j : 2 * j);
        const int b = head * hd + (neox ? j + half : 2 * j + 1);
        const float x0 = row[a], x1 = row[b];
        row[a] = fmaf(x0, c[j], -(x1 * s[j]));
        row[b] = fmaf(x0, s[j], x1 * c[j]);
    }
    __syncthreads();
    const int kvd = nkv * hd;
    const i64 at = slot[t] * kvd;
    for (int i = threadIdx.x; i < kvd; i += blockDim.x) {
        k_cache[at + i] = sf_f2h(row[nh * hd + i]);
        v_cache[at + i] = sf_f2h(row[nh * hd + kvd + i]);
    }
}
