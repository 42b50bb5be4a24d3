// What the host needs of each row of logits, so only a few numbers per sequence come back:
// the greedy token and the row's log-sum-exp (for logprobs: logprob(i) = logit(i) - lse).

// One block per row of `vocab` logits. Ties go to the lowest token id, as the CPU sampler's.
SF_KERNEL void argmax_lse(const float* __restrict__ logits, int vocab, int* __restrict__ best,
                          float* __restrict__ lse) {
    __shared__ float sv[32];
    __shared__ int si[32];
    __shared__ float scratch[32];
    const i64 row = blockIdx.x;
    const float* x = logits + row * vocab;
    float bv = SF_NEG_INF;
    int bi = 0x7fffffff;
    for (int i = threadIdx.x; i < vocab; i += blockDim.x) {
        const float v = x[i];
        if (v > bv) { bv = v; bi = i; }  // i grows: the first of equal values stays
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        const float ov = __shfl_xor_sync(SF_FULL_MASK, bv, o);
        const int oi = __shfl_xor_sync(SF_FULL_MASK, bi, o);
        if (ov > bv || (ov == bv && oi < bi)) { bv = ov; bi = oi; }
    }
    const int lane = threadIdx.x % SF_WARP, warp = threadIdx.x / SF_WARP;
    if (lane == 0) { sv[warp] = bv; si[warp] = bi; }
    __syncthreads();
    if (warp == 0) {
        const int warps = blockDim.x / SF_WARP;
        bv = lane < warps ? sv[lane] : SF_NEG_INF;
        bi = lane < warps ? si[lane] : 0x7fffffff;
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) {
            const float ov = __shfl_xor_sync(SF_FULL_MASK, bv, o);
            const int oi = __shfl_xor_sync(SF_FULL_MASK, bi, o);
            if (ov > bv || (ov == bv && oi < bi)) { bv = ov; bi = oi; }
        }
        if (lane == 0) { sv[0] = bv; si[0] = bi; }
    }
    __syncthreads();
    const float mx = sv[0];
    float s = 0.0f;
    for (int i = threadIdx.x; i < vocab; i += blockDim.x) s += expf(x[i] - mx);
    s = sf_block_sum(s, scratch);
    if (threadIdx.x == 0) {
        best[row] = si[0];
        lse[row] = mx + logf(s);
    }
}
