// What the host needs of each row of logits for a greedy pick, so only two numbers per
// sequence come back: the greedy token and its log-probability (its log-softmax).

// The block's best of each thread's candidate `(bv, bi)` in (value descending, id ascending)
// order, `bi == 0x7fffffff` meaning none: its id (`0x7fffffff` where no thread has one), and
// its value in `*best`. `sv`, `si`: 32 floats and 32 ints of shared memory. Every thread of the
// block gets the answer.
SF_DEVICE bool sf_better(float v, int i, float bv, int bi) {
    return i != 0x7fffffff && (bi == 0x7fffffff || v > bv || (v == bv && i < bi));
}

SF_DEVICE int sf_block_first(float bv, int bi, float* best, float* sv, int* si) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        const float ov = __shfl_xor_sync(SF_FULL_MASK, bv, o);
        const int oi = __shfl_xor_sync(SF_FULL_MASK, bi, o);
        if (sf_better(ov, oi, bv, bi)) { bv = ov; bi = oi; }
    }
    const int lane = threadIdx.x % SF_WARP, warp = threadIdx.x / SF_WARP;
    __syncthreads();  // an earlier call's answer has been read
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
            if (sf_better(ov, oi, bv, bi)) { bv = ov; bi = oi; }
        }
        if (lane == 0) { sv[0] = bv; si[0] = bi; }
    }
    __syncthreads();
    *best = sv[0];
    return si[0];
}

// The block's first maximum of `x[0..n)` (ties to the lowest index; 0 where every value is -inf
// or NaN, as the CPU's argmax): its index, and its value in `*best`.
SF_DEVICE int sf_block_argmax(const float* __restrict__ x, int n, float* best, float* sv, int* si) {
    float bv = SF_NEG_INF;
    int bi = 0x7fffffff;
#pragma unroll 4
    for (int i = threadIdx.x; i < n; i += blockDim.x)
        if (x[i] > bv) { bv = x[i]; bi = i; }  // i grows: the first of equal values stays
    const int i = sf_block_first(bv, bi, best, sv, si);
    return i == 0x7fffffff ? 0 : i;
}

// The `k` largest of `x[0..n)` in (value descending, id ascending) order, as the CPU's
// `top_k_of` orders them: round r takes the first maximum among the values after round
// r - 1's in that order (no marks, nothing sorted). Thread 0 writes their ids into `tok` and
// their values less `lse` (log-probabilities) into `lp`; past the last value, -1 ids.
SF_DEVICE void sf_block_top(const float* __restrict__ x, int n, int k, float lse,
                            int* __restrict__ tok, float* __restrict__ lp, float* sv, int* si) {
    float pv = 0.0f;
    int pi = -1;
    for (int r = 0; r < k; r++) {
        float bv = SF_NEG_INF;
        int bi = 0x7fffffff;
        for (int i = threadIdx.x; i < n; i += blockDim.x) {
            const float v = x[i];
            const bool after = pi < 0 || v < pv || (v == pv && i > pi);
            if (after && (bi == 0x7fffffff || v > bv)) { bv = v; bi = i; }
        }
        pi = sf_block_first(bv, bi, &pv, sv, si);
        if (pi == 0x7fffffff) {  // every value is listed (or only NaNs are left): -1 past the end
            if (threadIdx.x == 0)
                for (; r < k; r++) tok[r] = -1;
            return;
        }
        if (threadIdx.x == 0) {
            tok[r] = pi;
            lp[r] = pv - lse;
        }
    }
}

// One block per row of `vocab` logits. Ties go to the lowest token id, as the CPU sampler's.
SF_KERNEL void argmax_logprob(const float* __restrict__ logits, int vocab, int* __restrict__ best,
                              float* __restrict__ logprob) {
    SF_WAIT_PRIOR();
    __shared__ float sv[32];
    __shared__ int si[32];
    __shared__ float scratch[32];
    const i64 row = blockIdx.x;
    const float* x = logits + row * vocab;
    float mx;
    const int pick = sf_block_argmax(x, vocab, &mx, sv, si);
    float s = 0.0f;
#pragma unroll 4
    for (int i = threadIdx.x; i < vocab; i += blockDim.x) s += expf(x[i] - mx);
    s = sf_block_sum(s, scratch);
    if (threadIdx.x == 0) {
        best[row] = pick;
        logprob[row] = -logf(s);  // logit(best) - (mx + log s), with logit(best) = mx
    }
}

// Sampling on the device, the CPU sampler's (`engine::sampling::sample`) steps in its order,
// so only the token, its log-probability and the requested top log-probabilities come back: edits (min_tokens' -inf for EOS and
// stop ids, logit_bias, repetition / frequency / presence penalties, folded per token by the
// host into `l' = pen(l + add) - sub`, pen dividing positive logits by `rp` and multiplying
// the others), then greedy argmax, or temperature, min_p, top_k, top_p and the draw of `u`
// (the CPU's seeded uniform, drawn by the host) through the kept tokens: in (probability
// descending, id ascending) order when top_k or top_p cut, else in id order. The log-prob is
// that of the raw logits, as the CPU reports it.
//
// The kept set is never sorted: each cut is a threshold on the probabilities' bits (a
// positive float's bits order as the float does) plus, among ties, a cut on the id, each
// found by binary search with one block-wide sum per probe.
//
// A grammar's mask, where a row has one, comes first: the tokens it refuses are -inf before
// the edits, and a pick it refuses becomes its first allowed token (the CPU's fallback where
// every allowed token was pushed to -inf).
//
// One block (1024 threads) per sampled row. `meta`: [n, 7] ints (logits row, first edit,
// end of edits, top_k, top_logprobs, first word of the row's mask in `mask_words` or -1, the
// mask's first allowed token or -1); `fparams`: [n, 4] floats (temperature, top_p, min_p, u);
// edits: `edit_tok` [e] and `edit_val` [e, 3] (add, rp, sub); a mask: ceil(vocab / 32) words,
// token t allowed where bit t % 32 of word t / 32 is set. `work`: [n, vocab] scratch.
// Out: `token` [n], `logprob` [n], and the row's `top_logprobs` most likely tokens of the raw
// distribution (at most SF_TOP_LOGPROBS) with their log-probabilities, most likely first:
// `top_tok` [n, SF_TOP_LOGPROBS] (-1 past the list) and `top_lp` [n, SF_TOP_LOGPROBS].

#define SF_TOP_LOGPROBS 20
#define SF_SAMPLE_META 7

SF_DEVICE bool sf_allowed(const u32* __restrict__ mask, int t) {
    return mask == nullptr || ((mask[t >> 5] >> (t & 31)) & 1u) != 0u;
}

SF_DEVICE bool sf_finite(float x) { return (__float_as_uint(x) & 0x7f800000u) != 0x7f800000u; }

// Whether token i (probability bits b) is kept by a cut at bits v, ties up to id c.
SF_DEVICE bool sf_above(u32 b, int i, u32 v, int c) { return b > v || (b == v && i <= c); }

struct SfCuts {
    float min_p;
    u32 kv;  // top_k: bits threshold (0: no cut), ties up to id kc
    int kc;
    u32 pv;  // top_p: likewise
    int pc;
};

SF_DEVICE bool sf_kept(float p, int i, const SfCuts& k) {
    const u32 b = __float_as_uint(p);
    return p > 0.0f && (k.min_p <= 0.0f || p >= k.min_p) && sf_above(b, i, k.kv, k.kc) &&
           sf_above(b, i, k.pv, k.pc);
}

// Sum over the kept tokens with bits >= v (ge) or > v, of p (mass) or 1 (count).
SF_DEVICE float sf_sum_from(const float* w, int vocab, const SfCuts& k, u32 v, bool ge, bool mass,
                            float* scratch) {
    float s = 0.0f;
    for (int i = threadIdx.x; i < vocab; i += blockDim.x) {
        const float p = w[i];
        const u32 b = __float_as_uint(p);
        if (sf_kept(p, i, k) && (ge ? b >= v : b > v)) s += mass ? p : 1.0f;
    }
    return sf_block_sum(s, scratch);
}

// Sum over the kept tokens with bits == v and id <= c.
SF_DEVICE float sf_sum_ties(const float* w, int vocab, const SfCuts& k, u32 v, int c, bool mass,
                            float* scratch) {
    float s = 0.0f;
    for (int i = threadIdx.x; i <= c && i < vocab; i += blockDim.x) {
        const float p = w[i];
        if (sf_kept(p, i, k) && __float_as_uint(p) == v) s += mass ? p : 1.0f;
    }
    return sf_block_sum(s, scratch);
}

// The first kept token, in (p descending, id ascending) order, at which the running sum (of
// p, or of 1) exceeds `goal` (`strict`) or reaches it: its bits in *v, its id in *c. False
// when the whole sum stays short.
SF_DEVICE bool sf_cut(const float* w, int vocab, const SfCuts& k, float goal, bool strict, bool mass,
                      u32* v, int* c, float* scratch) {
    // The largest bits value whose kept-from mass passes the goal.
    const float all = sf_sum_from(w, vocab, k, 0u, true, mass, scratch);
    if (strict ? !(all > goal) : !(all >= goal)) return false;
    u32 lo = 0u, hi = 0x7f800000u;
    while (lo < hi) {
        const u32 mid = lo + (hi - lo + 1u) / 2u;
        const float s = sf_sum_from(w, vocab, k, mid, true, mass, scratch);
        if (strict ? s > goal : s >= goal) lo = mid; else hi = mid - 1u;
    }
    const float before = sf_sum_from(w, vocab, k, lo, false, mass, scratch);
    int clo = 0, chi = vocab - 1;
    while (clo < chi) {
        const int mid = clo + (chi - clo) / 2;
        const float s = before + sf_sum_ties(w, vocab, k, lo, mid, mass, scratch);
        if (strict ? s > goal : s >= goal) chi = mid; else clo = mid + 1;
    }
    *v = lo;
    *c = clo;
    return true;
}

SF_KERNEL void sample_rows(const float* __restrict__ logits, int vocab, const int* __restrict__ meta,
                           const float* __restrict__ fparams, const int* __restrict__ edit_tok,
                           const float* __restrict__ edit_val, const u32* __restrict__ mask_words,
                           float* __restrict__ work,
                           int* __restrict__ token, float* __restrict__ logprob,
                           int* __restrict__ top_tok, float* __restrict__ top_lp) {
    SF_WAIT_PRIOR();
    __shared__ float scratch[32];
    __shared__ float si_v[32];
    __shared__ int si_i[32];
    const int j = blockIdx.x;
    const int* mj = meta + j * SF_SAMPLE_META;
    const int row = mj[0], e0 = mj[1], e1 = mj[2], top_k = mj[3];
    const int top_n = mj[4] < SF_TOP_LOGPROBS ? mj[4] : SF_TOP_LOGPROBS;
    const u32* mask = mj[5] >= 0 ? mask_words + mj[5] : nullptr;
    const int fallback = mj[6];
    const float temp = fparams[j * 4], top_p = fparams[j * 4 + 1], min_p = fparams[j * 4 + 2],
                u = fparams[j * 4 + 3];
    const float* x = logits + (i64)row * vocab;
    float* w = work + (i64)j * vocab;

    // The raw distribution's log-sum-exp, for the log-prob.
    float m = SF_NEG_INF;
    for (int i = threadIdx.x; i < vocab; i += blockDim.x) m = fmaxf(m, x[i]);
    m = sf_block_max(m, scratch);
    float s = 0.0f;
    for (int i = threadIdx.x; i < vocab; i += blockDim.x) s += expf(x[i] - m);
    const float lse = m + logf(sf_block_sum(s, scratch));
    sf_block_top(x, vocab, top_n, lse, top_tok + (i64)j * SF_TOP_LOGPROBS,
                 top_lp + (i64)j * SF_TOP_LOGPROBS, si_v, si_i);

    // The masked, edited logits.
    for (int i = threadIdx.x; i < vocab; i += blockDim.x) w[i] = sf_allowed(mask, i) ? x[i] : SF_NEG_INF;
    __syncthreads();
    for (int e = e0 + threadIdx.x; e < e1; e += blockDim.x) {
        const int t = edit_tok[e];
        float l = w[t] + edit_val[e * 3];
        const float rp = edit_val[e * 3 + 1];
        if (rp != 1.0f) l = l > 0.0f ? l / rp : l * rp;
        w[t] = l - edit_val[e * 3 + 2];
    }
    __syncthreads();

    int pick;
    // Greedy (as the CPU: temperature below 1e-5), or no finite logit: the first maximum.
    float wm = SF_NEG_INF;
    for (int i = threadIdx.x; i < vocab; i += blockDim.x)
        if (sf_finite(w[i])) wm = fmaxf(wm, w[i]);
    wm = sf_block_max(wm, scratch);
    if (temp < 1e-5f || wm == SF_NEG_INF) {
        float top;
        pick = sf_block_argmax(w, vocab, &top, si_v, si_i);
    } else {
        // Unnormalised probabilities, the top one exactly 1 (as the CPU's).
        __syncthreads();
        for (int i = threadIdx.x; i < vocab; i += blockDim.x)
            w[i] = sf_finite(w[i]) ? expf((w[i] - wm) / temp) : 0.0f;
        __syncthreads();
        SfCuts k = {min_p, 0u, vocab, 0u, vocab};
        bool sorted = false;
        const float count = sf_sum_from(w, vocab, k, 0u, true, false, scratch);
        if (top_k > 0 && (float)top_k < count) {
            u32 v;
            int c;
            sf_cut(w, vocab, k, (float)top_k, false, false, &v, &c, scratch);
            k.kv = v;
            k.kc = c;
            sorted = true;
        }
        if (top_p < 1.0f) {
            const float total = sf_sum_from(w, vocab, k, 0u, true, true, scratch);
            u32 v;
            int c;
            if (sf_cut(w, vocab, k, top_p * total, false, true, &v, &c, scratch)) {
                k.pv = v;
                k.pc = c;
            }
            sorted = true;
        }
        const float total = sf_sum_from(w, vocab, k, 0u, true, true, scratch);
        const float goal = u * total;
        if (sorted) {
            u32 v;
            int c;
            if (sf_cut(w, vocab, k, goal, true, true, &v, &c, scratch)) {
                pick = c;
            } else {
                // Rounding left the goal past the sum: the last kept token in that order.
                float lv = 2.0f;
                for (int i = threadIdx.x; i < vocab; i += blockDim.x)
                    if (sf_kept(w[i], i, k)) lv = fminf(lv, w[i]);
                lv = -sf_block_max(-lv, scratch);
                float li = -1.0f;
                for (int i = threadIdx.x; i < vocab; i += blockDim.x)
                    if (sf_kept(w[i], i, k) && w[i] == lv) li = fmaxf(li, (float)i);
                pick = (int)sf_block_max(li, scratch);
            }
        } else {
            // Id order: the first id whose running mass passes the goal.
            int lo = 0, hi = vocab - 1;
            const float all = sf_sum_from(w, vocab, k, 0u, true, true, scratch);
            if (all > goal) {
                while (lo < hi) {
                    const int mid = lo + (hi - lo) / 2;
                    float part = 0.0f;
                    for (int i = threadIdx.x; i <= mid; i += blockDim.x)
                        if (sf_kept(w[i], i, k)) part += w[i];
                    if (sf_block_sum(part, scratch) > goal) hi = mid; else lo = mid + 1;
                }
                pick = lo;
            } else {
                float li = -1.0f;
                for (int i = threadIdx.x; i < vocab; i += blockDim.x)
                    if (sf_kept(w[i], i, k)) li = fmaxf(li, (float)i);
                pick = (int)sf_block_max(li, scratch);
            }
        }
    }
    if (threadIdx.x == 0) {
        if (!sf_allowed(mask, pick) && fallback >= 0) pick = fallback;
        token[j] = pick;
        logprob[j] = pick < vocab ? x[pick] - lse : SF_NEG_INF;
    }
}
