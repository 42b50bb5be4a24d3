// What every kernel file sees first. The same kernel source compiles two ways:
// - by NVRTC for the GPU (`__CUDACC_RTC__` defined): no headers are needed, half-precision
//   conversions are single PTX instructions;
// - as C++ on the CPU for tests (`cpu_shim.h` included before this file): CUDA threads become
//   fibers, shared memory static storage, warp shuffles an exchange through memory.
// Kernels use only what both provide: the names defined here, `threadIdx` and friends,
// `__syncthreads`, `__shfl_xor_sync`, `__dp4a` and the usual float functions.

typedef signed char i8;
typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef long long i64;

#define SF_FULL_MASK 0xffffffffu
#define SF_WARP 32

#if defined(__CUDACC_RTC__) || defined(__CUDACC__)
#define SF_DEVICE __device__ __forceinline__
#define SF_KERNEL extern "C" __global__
// The most threads a kernel's blocks have: ptxas keeps its registers within what that many
// threads may hold.
#define SF_BOUNDS(threads) __launch_bounds__(threads)
#define SF_DYN_SMEM(type) \
    ([]() -> type* { extern __shared__ __align__(16) unsigned char sf_dyn_smem_[]; return (type*)sf_dyn_smem_; }())

// f16 bits <-> f32; the narrowing rounds to nearest even, as `half::f16::from_f32` does.
SF_DEVICE float sf_h2f(u16 h) {
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
    return f;
}
SF_DEVICE u16 sf_f2h(float f) {
    u16 h;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f));
    return h;
}

// Programmatic dependent launch (Hopper on): a kernel may be started while the one before it
// in the stream is still running, so every kernel waits here, before it touches memory that
// kernel may write, until it has finished and its writes are visible. (A few kernels load
// what no kernel writes, weights and earlier steps' keys and values, before they wait: those
// loads overlap the kernel before.) Then it lets the kernel after it be scheduled at once
// (`launch_dependents`): once every block of this one has got here, the next one's blocks
// take free room on the SMs and wait at their own `wait` while this one works, instead of
// being launched only when it ends. That changes when the next kernel starts, never what it
// sees: its `wait` still waits for this whole grid. Launched without the attribute both
// return at once.
#if __CUDA_ARCH__ >= 900
#define SF_WAIT_PRIOR() \
    asm volatile("griddepcontrol.wait;\n\tgriddepcontrol.launch_dependents;" ::: "memory")
#endif
#endif

// Before sm_90: nothing to wait for. (The CPU shim defines its own.)
#ifndef SF_WAIT_PRIOR
#define SF_WAIT_PRIOR() \
    do {                \
    } while (0)
#endif

#define SF_NEG_INF __int_as_float(0xff800000u)

// `x` rounded to the nearest f16, as f32 (the CPU engine stores activation scales this way).
SF_DEVICE float sf_round_f16(float x) { return sf_h2f(sf_f2h(x)); }

SF_DEVICE float sf_warp_sum(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(SF_FULL_MASK, v, o);
    return v;
}

SF_DEVICE int sf_warp_sum_int(int v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(SF_FULL_MASK, v, o);
    return v;
}

SF_DEVICE float sf_warp_max(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(SF_FULL_MASK, v, o));
    return v;
}

// Sum over the whole block (blockDim.x a multiple of 32, at most 1024); every thread gets it.
// `scratch` holds 32 floats of shared memory; the function may be called again at once.
SF_DEVICE float sf_block_sum(float v, float* scratch) {
    const int lane = threadIdx.x % SF_WARP, warp = threadIdx.x / SF_WARP;
    const int warps = blockDim.x / SF_WARP;
    v = sf_warp_sum(v);
    __syncthreads();
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    v = lane < warps ? scratch[lane] : 0.0f;
    return sf_warp_sum(v);
}

SF_DEVICE float sf_block_max(float v, float* scratch) {
    const int lane = threadIdx.x % SF_WARP, warp = threadIdx.x / SF_WARP;
    const int warps = blockDim.x / SF_WARP;
    v = sf_warp_max(v);
    __syncthreads();
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    v = lane < warps ? scratch[lane] : SF_NEG_INF;
    return sf_warp_max(v);
}

// Quantizes one block of 32 values, held one per lane of a whole warp, as the CPU engine does
// (ggml's Q8_1): d = amax/127, q = round_to_even(v * 127/amax), s = d * sum(q), d and s
// rounded to f16 and kept as f32 pairs. Writes block `b` of `q` and `ds`. Every kernel that
// leaves activations for a quantized matrix product quantizes them this way as it writes them.
SF_DEVICE void sf_quantize_block(float v, i8* __restrict__ q, float* __restrict__ ds, i64 b) {
    const int lane = threadIdx.x % SF_WARP;
    const float amax = sf_warp_max(fabsf(v));
    const float d = amax / 127.0f;
    const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
    int r = __float2int_rn(v * id);
    r = r < -127 ? -127 : (r > 127 ? 127 : r);
    const int sum = sf_warp_sum_int(r);
    q[b * 32 + lane] = (i8)r;
    if (lane == 0) {
        ds[2 * b] = sf_round_f16(d);
        ds[2 * b + 1] = sf_round_f16(d * (float)sum);
    }
}

// What a kernel leaves beside a float activation `v` (element `i` of its output) for the
// matrix product that reads it: with `q` and `ds`, the value quantized (`sf_quantize_block`:
// the whole warp holds 32 consecutive elements, the block of `i`); with `q` alone, the value
// as f16 (the GEMM path's input: `q` is then an array of f16 bits); with neither, nothing.
SF_DEVICE void sf_emit(float v, i8* __restrict__ q, float* __restrict__ ds, i64 i) {
    if (!q) return;
    if (ds) {
        sf_quantize_block(v, q, ds, i / 32);
    } else {
        ((u16*)q)[i] = sf_f2h(v);
    }
}
