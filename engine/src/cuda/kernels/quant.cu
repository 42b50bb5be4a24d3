// Activations to 8 bits and weights back to floats.
//
// Weights live on the device repacked from ggml's blocks into separate arrays, so every load is
// aligned: Q4_1 as `qs` (16 bytes a block: element j in the low nibble of byte j, j + 16 in the
// high one) and `dm` (one u32 a block: f16 d in the low half, f16 m in the high half); Q8_0 as
// `qs` (32 signed bytes a block) and `d` (one f16 a block).
//
// Activations are quantized as the CPU engine does (ggml's Q8_1, `sf_quantize_block`), by this
// kernel or by the kernel that writes them.

// One warp per block of 32 values; `x` holds `nblocks * 32` floats.
SF_KERNEL void quantize_q8_1(const float* __restrict__ x, i8* __restrict__ q,
                             float* __restrict__ ds, int nblocks) {
    SF_WAIT_PRIOR();
    const int lane = threadIdx.x % SF_WARP;
    const int b = blockIdx.x * (blockDim.x / SF_WARP) + threadIdx.x / SF_WARP;
    if (b >= nblocks) return;  // whole warps only
    sf_quantize_block(x[b * 32 + lane], q, ds, b);
}

// Rows `ids[t]` of a Q4_1 matrix with `cols` columns, as floats: `out[t * cols + c]`.
// Grid: one block per id.
SF_KERNEL void embed_q4_1(const u8* __restrict__ qs, const u32* __restrict__ dm,
                          const int* __restrict__ ids, float* __restrict__ out, int cols) {
    SF_WAIT_PRIOR();
    const int t = blockIdx.x;
    const i64 nb = cols / 32;
    const i64 row = ids[t];
    for (int c = threadIdx.x; c < cols; c += blockDim.x) {
        const i64 b = row * nb + c / 32;
        const int j = c % 32;
        const u32 v = dm[b];
        const u8 byte = qs[b * 16 + (j % 16)];
        const int nib = j < 16 ? (byte & 0x0F) : (byte >> 4);
        out[(i64)t * cols + c] = sf_h2f((u16)(v & 0xffff)) * (float)nib + sf_h2f((u16)(v >> 16));
    }
}

SF_KERNEL void embed_q8_0(const i8* __restrict__ qs, const u16* __restrict__ d,
                          const int* __restrict__ ids, float* __restrict__ out, int cols) {
    SF_WAIT_PRIOR();
    const int t = blockIdx.x;
    const i64 row = ids[t];
    for (int c = threadIdx.x; c < cols; c += blockDim.x) {
        const i64 i = row * cols + c;
        out[(i64)t * cols + c] = sf_h2f(d[i / 32]) * (float)qs[i];
    }
}

SF_KERNEL void embed_f32(const float* __restrict__ w, const int* __restrict__ ids,
                         float* __restrict__ out, int cols) {
    SF_WAIT_PRIOR();
    const int t = blockIdx.x;
    const i64 row = ids[t];
    for (int c = threadIdx.x; c < cols; c += blockDim.x) out[(i64)t * cols + c] = w[row * cols + c];
}

// A whole Q4_1 / Q8_0 matrix (`nblocks` blocks) to f16, for the GEMM path: one thread a value.
SF_KERNEL void dequantize_q4_1_f16(const u8* __restrict__ qs, const u32* __restrict__ dm,
                                   u16* __restrict__ out, i64 nblocks) {
    SF_WAIT_PRIOR();
    const i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= nblocks * 32) return;
    const i64 b = i / 32;
    const int j = (int)(i % 32);
    const u8 byte = qs[b * 16 + (j % 16)];
    const int nib = j < 16 ? (byte & 0x0F) : (byte >> 4);
    const u32 v = dm[b];
    out[i] = sf_f2h(sf_h2f((u16)(v & 0xffff)) * (float)nib + sf_h2f((u16)(v >> 16)));
}

SF_KERNEL void dequantize_q8_0_f16(const i8* __restrict__ qs, const u16* __restrict__ d,
                                   u16* __restrict__ out, i64 nblocks) {
    SF_WAIT_PRIOR();
    const i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= nblocks * 32) return;
    out[i] = sf_f2h(sf_h2f(d[i / 32]) * (float)qs[i]);
}

// f32 activations to f16 for the GEMM path.
SF_KERNEL void f32_to_f16(const float* __restrict__ x, u16* __restrict__ out, i64 n) {
    SF_WAIT_PRIOR();
    const i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i] = sf_f2h(x[i]);
}

// Rows `idx[i]` of `src` (`cols` floats each) into row i of `dst`; one block per row.
SF_KERNEL void gather_rows(const float* __restrict__ src, const int* __restrict__ idx,
                           float* __restrict__ dst, int cols) {
    SF_WAIT_PRIOR();
    const i64 from = idx[blockIdx.x], to = blockIdx.x;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) dst[to * cols + c] = src[from * cols + c];
}
