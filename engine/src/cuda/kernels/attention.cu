// Paged attention of every new token of a step over its sequence's cached keys and values,
// for decode and prefill alike (a prefill token attends to the positions up to its own).
//
// One block per (token, KV head, partition of `part_len` positions), one warp per query head
// of the KV head's group (GQA): each tile of 32 positions' keys and values is loaded from the
// cache once, into shared memory as f32, and read by every query head of the group. Within a
// warp, lane j scores position j of the tile; the softmax runs online over the tiles; each lane
// accumulates hd/32 of the output dimensions. A partition writes its unnormalised output with
// its running maximum and sum; `attention_reduce` merges a token's partitions, so long contexts
// are spread over many blocks instead of one.

#define SF_ATT_MAX_DIMS_PER_LANE 8  // head_dim up to 256

// Pieces of a tile's keys (and as many of its values) one thread loads: a tile is 32
// positions of `hd / 8` 16-byte pieces each, and a block has at least `hd` threads
// (`engine::cuda::attention_threads`).
#define SF_ATT_PIECES 4
// The most threads of a block (`engine::cuda::ATTENTION_MAX_THREADS`): 16 query heads per KV
// head. Its registers (the pieces loaded ahead among them) leave no room for 32 warps.
#define SF_ATT_MAX_THREADS 512

// Loads this thread's pieces of the tile of 32 positions from `tile` (those at or past `end`
// as zeros) into `kr`, `vr`: piece i = threadIdx.x + r * blockDim.x is position i / pieces,
// halves 8 * (i % pieces) .. + 8 of the KV head at `head_at`. With `only` >= 0, only the
// pieces of position `only` are loaded again; the others keep what they hold.
SF_DEVICE void sf_att_load(const u16* k_cache, const u16* v_cache, const int* __restrict__ table,
                           int block_size, int kvd, int head_at, int pieces, int tile, int end,
                           int only, int4* kr, int4* vr) {
#pragma unroll
    for (int r = 0; r < SF_ATT_PIECES; r++) {
        const int i = threadIdx.x + r * blockDim.x;
        const int at = tile + i / pieces;
        if (only >= 0 && at != only) continue;
        const int4 zero = {0, 0, 0, 0};
        kr[r] = zero;
        vr[r] = zero;
        if (i < 32 * pieces && at < end) {
            const i64 slot = (i64)table[at / block_size] * block_size + at % block_size;
            const i64 o = slot * kvd + head_at + 8 * (i % pieces);
            kr[r] = *(const int4*)(k_cache + o);
            vr[r] = *(const int4*)(v_cache + o);
        }
    }
}

// Shared memory (dynamic): q of the group [group * hd], k and v tiles [32 * (hd + 1)] each.
// `hd` is a multiple of 32.
// Grid: (tokens, nkv, max partitions); block: `engine::cuda::attention_threads` (group * 32,
// or `hd` where that is more: warps past the group's only load).
// `part_ml`: [tokens, nh, parts, 2] (max, sum); `part_acc`: [tokens, nh, parts, hd]. With one
// partition (`parts == 1`) the output is final: it goes normalised into `out` [tokens, nh * hd]
// (and left for the next product as `sf_emit` says) and `attention_reduce` is not needed.
//
// `rope` 0: q and k are rotated and the new keys and values are in the cache already
// (`rope_write_kv` ran). `rope` 1 (interleaved pairs) or 2 (NeoX halves), decode steps only
// (each token the one new token of its sequence, at position `pos[t]` = its context length
// - 1): this kernel does `rope_write_kv`'s work itself, with the same arithmetic, so one
// launch a layer less: each block adds `bias` (where given) to its group's queries and rotates
// them as it loads them, and the block whose partition holds the new position rotates that
// token's key of its KV head and writes it and the value into the cache at `slot[t]` before it
// reads the cache (no other block reads that slot's head: other partitions end before it, and
// other tokens belong to other sequences). The cache is therefore not `__restrict__`: it is
// read after this block's writes.
//
// What no kernel of the step writes is read before the wait for the kernel before
// (`SF_WAIT_PRIOR`), so that launched overlapped those loads are in flight while it finishes:
// the step's inputs (lengths, block tables) and, in a decode step, the first tile's keys and
// values (every position but the new one was written by an earlier step; the new one's pieces
// are loaded again after this block has written it).
SF_KERNEL void SF_BOUNDS(SF_ATT_MAX_THREADS) attention_partial(
    const float* __restrict__ qkv, u16* k_cache, u16* v_cache, const int* __restrict__ block_tables,
    int max_blocks, const int* __restrict__ token_seq, const int* __restrict__ ctx_len,
    float* __restrict__ part_ml, float* __restrict__ part_acc, float* __restrict__ out,
    i8* __restrict__ q, float* __restrict__ ds, int nh, int nkv, int hd, int block_size, int parts,
    int part_len, float scale, const float* __restrict__ bias, const int* __restrict__ pos,
    const i64* __restrict__ slot, const float* __restrict__ cos_t, const float* __restrict__ sin_t,
    int rope) {
    const int t = blockIdx.x, g = blockIdx.y, p = blockIdx.z;
    const int group = nh / nkv;
    const int warp = threadIdx.x / SF_WARP, lane = threadIdx.x % SF_WARP;
    const bool computes = warp < group;
    const int head = g * group + (computes ? warp : 0);
    const int len = ctx_len[t];
    const int start = p * part_len;
    const i64 out_ml = (((i64)t * nh + head) * parts + p) * 2;
    const i64 out_acc = (((i64)t * nh + head) * parts + p) * hd;
    if (start >= len) {  // the whole block: this token's context is shorter
        SF_WAIT_PRIOR();
        if (lane == 0 && computes) {
            part_ml[out_ml] = SF_NEG_INF;
            part_ml[out_ml + 1] = 0.0f;
        }
        return;
    }
    const int end = len < start + part_len ? len : start + part_len;
    const int width = (nh + 2 * nkv) * hd, kvd = nkv * hd, stride = hd + 1;
    float* qs = SF_DYN_SMEM(float);
    float* ks = qs + group * hd;
    float* vs = ks + 32 * stride;
    const int pieces = hd / 8;  // 16-byte pieces (8 halves) of one position's head
    const float* row = qkv + (i64)t * width;
    const int* table = block_tables + (i64)token_seq[t] * max_blocks;
    // This thread's pieces of each tile's keys and values, loaded one tile ahead: the loads of
    // the next tile (its block-table lookups, then 16-byte loads that do not wait on one
    // another) are in flight while the warps score this one.
    int4 kn[SF_ATT_PIECES], vn[SF_ATT_PIECES];
    const int fresh = len - 1;  // a decode step's new position
    if (rope)
        sf_att_load(k_cache, v_cache, table, block_size, kvd, g * hd, pieces, start, end, -1, kn, vn);
    SF_WAIT_PRIOR();
    if (!rope) {
        for (int i = threadIdx.x; i < group * hd; i += blockDim.x)
            qs[i] = row[(i64)g * group * hd + i] * scale;
    } else {
        // rope_write_kv's steps for this block's heads: the bias, then each pair rotated with
        // the host's cos / sin at the token's position, then (queries) the scale.
        const int half = hd / 2, neox = rope == 2;
        const float* c = cos_t + (i64)pos[t] * half;
        const float* sn = sin_t + (i64)pos[t] * half;
        const int q0 = g * group * hd;
        for (int i = threadIdx.x; i < group * hd; i += blockDim.x)
            qs[i] = bias ? row[q0 + i] + bias[q0 + i] : row[q0 + i];
        __syncthreads();
        for (int i = threadIdx.x; i < group * half; i += blockDim.x) {
            const int h = i / half, j = i % half;
            const int a = h * hd + (neox ? j : 2 * j), b = h * hd + (neox ? j + half : 2 * j + 1);
            const float x0 = qs[a], x1 = qs[b];
            qs[a] = fmaf(x0, c[j], -(x1 * sn[j])) * scale;
            qs[b] = fmaf(x0, sn[j], x1 * c[j]) * scale;
        }
        if (p == (len - 1) / part_len) {
            const int k0 = nh * hd + g * hd, v0 = nh * hd + kvd + g * hd;
            const i64 at = slot[t] * kvd + (i64)g * hd;
            for (int j = threadIdx.x; j < half; j += blockDim.x) {
                const int a = neox ? j : 2 * j, b = neox ? j + half : 2 * j + 1;
                const float x0 = bias ? row[k0 + a] + bias[k0 + a] : row[k0 + a];
                const float x1 = bias ? row[k0 + b] + bias[k0 + b] : row[k0 + b];
                k_cache[at + a] = sf_f2h(fmaf(x0, c[j], -(x1 * sn[j])));
                k_cache[at + b] = sf_f2h(fmaf(x0, sn[j], x1 * c[j]));
            }
            for (int d = threadIdx.x; d < hd; d += blockDim.x)
                v_cache[at + d] = sf_f2h(bias ? row[v0 + d] + bias[v0 + d] : row[v0 + d]);
        }
    }
    const int dpl = hd / SF_WARP;
    float acc[SF_ATT_MAX_DIMS_PER_LANE];
#pragma unroll
    for (int k = 0; k < SF_ATT_MAX_DIMS_PER_LANE; k++) acc[k] = 0.0f;
    float m = SF_NEG_INF, l = 0.0f;
    __syncthreads();  // the new token's key and value are in the cache (rope) before it is read
    if (!rope)
        sf_att_load(k_cache, v_cache, table, block_size, kvd, g * hd, pieces, start, end, -1, kn, vn);
    else if (fresh < start + 32)  // the new position is in the first tile
        sf_att_load(k_cache, v_cache, table, block_size, kvd, g * hd, pieces, start, end, fresh, kn,
                    vn);
    for (int tile = start; tile < end; tile += 32) {
        __syncthreads();  // the previous tile is read by every warp
#pragma unroll
        for (int r = 0; r < SF_ATT_PIECES; r++) {
            const int i = threadIdx.x + r * blockDim.x;
            if (i < 32 * pieces) {
                const int j = i / pieces, d = 8 * (i % pieces);
                const int kw[4] = {kn[r].x, kn[r].y, kn[r].z, kn[r].w};
                const int vw[4] = {vn[r].x, vn[r].y, vn[r].z, vn[r].w};
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    ks[j * stride + d + 2 * e] = sf_h2f((u16)(kw[e] & 0xffff));
                    ks[j * stride + d + 2 * e + 1] = sf_h2f((u16)((u32)kw[e] >> 16));
                    vs[j * stride + d + 2 * e] = sf_h2f((u16)(vw[e] & 0xffff));
                    vs[j * stride + d + 2 * e + 1] = sf_h2f((u16)((u32)vw[e] >> 16));
                }
            }
        }
        __syncthreads();
        if (tile + 32 < end)
            sf_att_load(k_cache, v_cache, table, block_size, kvd, g * hd, pieces, tile + 32, end,
                        -1, kn, vn);
        if (!computes) continue;  // a warp that only loads
        const bool valid = tile + lane < end;
        float score = SF_NEG_INF;
        if (valid) {
            score = 0.0f;
            for (int d = 0; d < hd; d++) score += qs[warp * hd + d] * ks[lane * stride + d];
        }
        const float m_new = fmaxf(m, sf_warp_max(score));
        const float corr = expf(m - m_new);
        const float pr = valid ? expf(score - m_new) : 0.0f;
        l = l * corr + sf_warp_sum(pr);
        m = m_new;
#pragma unroll
        for (int k = 0; k < SF_ATT_MAX_DIMS_PER_LANE; k++) acc[k] *= corr;
        for (int j = 0; j < 32; j++) {
            const float pj = __shfl_sync(SF_FULL_MASK, pr, j);
#pragma unroll
            for (int k = 0; k < SF_ATT_MAX_DIMS_PER_LANE; k++)
                if (k < dpl) acc[k] += pj * vs[j * stride + k * SF_WARP + lane];
        }
    }
    if (!computes) return;
    if (parts == 1) {  // the only partition: the output itself (as attention_reduce gives it)
        const i64 o = ((i64)t * nh + head) * hd;
#pragma unroll
        for (int k = 0; k < SF_ATT_MAX_DIMS_PER_LANE; k++)
            if (k < dpl) {
                const float v = acc[k] / l;
                out[o + k * SF_WARP + lane] = v;
                sf_emit(v, q, ds, o + k * SF_WARP + lane);
            }
        return;
    }
    if (lane == 0) {
        part_ml[out_ml] = m;
        part_ml[out_ml + 1] = l;
    }
#pragma unroll
    for (int k = 0; k < SF_ATT_MAX_DIMS_PER_LANE; k++)
        if (k < dpl) part_acc[out_acc + k * SF_WARP + lane] = acc[k];
}

// Merges a token's partitions: grid (tokens, nh), block of hd threads (at most 1024).
// `out`: [tokens, nh * hd], left for the next product as `sf_emit` says.
SF_KERNEL void attention_reduce(const float* __restrict__ part_ml, const float* __restrict__ part_acc,
                                const int* __restrict__ ctx_len, float* __restrict__ out,
                                i8* __restrict__ q, float* __restrict__ ds, int nh, int hd, int parts,
                                int part_len) {
    SF_WAIT_PRIOR();
    const int t = blockIdx.x, h = blockIdx.y, d = threadIdx.x;
    const int used = (ctx_len[t] + part_len - 1) / part_len;
    const i64 base = ((i64)t * nh + h) * parts;
    float mx = SF_NEG_INF;
    for (int p = 0; p < used; p++) mx = fmaxf(mx, part_ml[(base + p) * 2]);
    float sum = 0.0f, v = 0.0f;
    for (int p = 0; p < used; p++) {
        const float w = expf(part_ml[(base + p) * 2] - mx);
        sum += w * part_ml[(base + p) * 2 + 1];
        v += w * part_acc[(base + p) * hd + d];
    }
    const i64 o = ((i64)t * nh + h) * hd + d;
    out[o] = v / sum;
    sf_emit(v / sum, q, ds, o);
}
