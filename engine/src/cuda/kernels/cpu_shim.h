// Runs the CUDA kernels' own source on the CPU, for tests on machines without a GPU.
//
// Each CUDA thread of a block is a fiber (ucontext) on one OS thread; blocks run one after
// another. A fiber runs until it reaches a barrier: `__syncthreads` waits for every thread of
// the block, a warp shuffle for every thread of its warp (two barriers around an exchange
// through memory). A barrier that can never be released (threads of one warp at different
// barriers, or some threads at `__syncthreads` while others of the block wait elsewhere) is a
// bug in the kernel; the launcher reports it and aborts rather than guess, as it does for a
// shuffle that lanes which have returned can never reach (undefined on a GPU). At
// `__syncthreads`, threads that have returned count as arrived, as on the GPU.
//
// `__shared__` variables become static storage: blocks never overlap, so one copy serves them
// all. Dynamic shared memory is a buffer sized by the launch.
//
// What a GPU leaves undefined is made to show here: every block starts with its shared memory
// (dynamic, and the `__shared__` variables, kept in their own section for this) filled with
// 0xff bytes (NaN as floats, -1 as integers), not what the block before left; and a launch may
// run its warps in turn rather than in step, and its blocks, warps and threads last first
// (`sf_cpu_order`, `run_threads`). A read that no barrier orders after the write it needs, or
// before the write that replaces what it needs (another warp's, another block's), then reads
// the wrong value under one of the orders, as it may on a GPU, where it depends on timing.
//
// What a GPU refuses is refused here too: a launch shape past CUDA's limits aborts, and a read
// or write past a buffer's end or the launch's dynamic shared memory, or a vector at a misaligned
// address, faults, naming the kernel (`on_fault`).
//
// A launch may also be started early (`sfcpu::begin`): its first block to run goes up to
// `SF_WAIT_PRIOR` before the launch before it runs, the earliest a GPU's programmatic
// dependent launch may run it, so that a kernel reading that launch's output before waiting
// for it fails its tests here too.
#pragma once

#include <setjmp.h>
#include <signal.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <vector>

struct dim3 {
    unsigned x, y, z;
    constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};

inline dim3 threadIdx, blockIdx, blockDim, gridDim;

// CUDA's built-in vector types that the kernels use.
struct alignas(16) int4 {
    int x, y, z, w;
};
struct alignas(8) float2 {
    float x, y;
};
struct alignas(16) float4 {
    float x, y, z, w;
};

#define SF_DEVICE static inline
#define SF_KERNEL extern "C"
#define SF_BOUNDS(threads)
// Static storage in a section of its own, which each block's start fills (`start_block`).
// (g++ leaves a static of a template function out of the section: kernels declare their
// `__shared__` variables in the kernel itself.)
#define __shared__ static __attribute__((section("sf_shared"), used))
#define __restrict__ __restrict
#define __align__(n) alignas(n)
#define SF_DYN_SMEM(type) (reinterpret_cast<type*>(sfcpu::dyn_smem))

namespace sfcpu {

enum class State { Run, BlockBarrier, WarpBarrier, GridWait, Done };

// A fiber starts on its own stack through `setcontext` and from then on switches with
// `_setjmp`/`_longjmp`, which (unlike `swapcontext`) save no signal mask: no system call per
// switch, which is what a kernel's thousands of barriers would otherwise cost.
struct Fiber {
    ucontext_t ctx;
    jmp_buf jb;
    bool started;
    State state;
    dim3 idx;
};

// Bytes mapped for one use alone, the page after their end (their size rounded up to 16 bytes)
// with no access: a read or write past the end faults (`on_fault` names the kernel).
struct Guarded {
    unsigned char* data = nullptr;
    size_t len = 0;
    void* map = nullptr;
    size_t map_len = 0;

    explicit Guarded(size_t n) : len(n) {
        const size_t page = size_t(sysconf(_SC_PAGESIZE));
        const size_t body = std::max<size_t>((n + 15) / 16 * 16, 16);
        const size_t pages = (body + page - 1) / page;
        map_len = (pages + 1) * page;
        map = mmap(nullptr, map_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (map == MAP_FAILED || mprotect(static_cast<unsigned char*>(map) + pages * page, page, PROT_NONE)) {
            std::fprintf(stderr, "cpu_shim: cannot map %zu bytes\n", n);
            std::abort();
        }
        data = static_cast<unsigned char*>(map) + pages * page - body;
    }
    Guarded(const Guarded&) = delete;
    Guarded& operator=(const Guarded&) = delete;
    ~Guarded() { munmap(map, map_len); }
};

// One launch: its threads' fibers, their stacks (a set reused from launch to launch), the
// warp exchange slots and the dynamic shared memory (guarded: a kernel reaching past the
// shared memory its launch asked for faults, where on a GPU it reads another block's or faults).
struct Grid {
    std::function<void()> body;
    const char* name;
    dim3 grid, block;
    unsigned n = 0;
    std::vector<Fiber> fibers;
    std::vector<std::vector<unsigned char>>* stacks = nullptr;
    std::vector<uint64_t> exchange;
    Guarded* dyn = nullptr;
    // The first block to run stops at `SF_WAIT_PRIOR` (started early: see `begin`).
    bool early = false;
    // That block ran to its end while started early (it never waited).
    bool first_done = false;
};

// Stack sets: a launch takes a free one (two launches are alive at once while one is started
// early).
inline std::vector<std::vector<std::vector<unsigned char>>*> stack_sets;
inline std::vector<bool> stack_set_used;

// How launches run (`sf_cpu_order`): each block's warps in step or in turn (`run_threads`),
// and the blocks, the warps and each warp's threads first to last or last to first.
inline bool in_turn = false;
inline bool reversed = false;

inline Grid* active = nullptr;  // the launch whose fibers run now
inline bool in_kernel = false;  // a fiber runs now (not the scheduler)
inline jmp_buf scheduler;
inline unsigned current;
inline unsigned char* dyn_smem;

inline void wait(State s) {
    active->fibers[current].state = s;
    if (!_setjmp(active->fibers[current].jb)) _longjmp(scheduler, 1);
}

inline void entry() {
    active->body();
    active->fibers[current].state = State::Done;
    _longjmp(scheduler, 1);  // never returns into makecontext's trampoline
}

// `SF_WAIT_PRIOR` on the CPU: launches run one after another, so there is nothing to wait for,
// but a block started early stops here until the launch before it has run.
inline void grid_wait() {
    if (active->early) wait(State::GridWait);
}

inline unsigned linear_tid() {
    return threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
}

// Makes `gr` the running launch, at block `b`.
inline void enter(Grid& gr, dim3 b) {
    active = &gr;
    blockDim = gr.block;
    gridDim = gr.grid;
    blockIdx = b;
    dyn_smem = gr.dyn->data;
}

}  // namespace sfcpu

// The `__shared__` variables' section, bounded by the linker (weak: a source without any).
extern "C" unsigned char __start_sf_shared[] __attribute__((weak, visibility("hidden")));
extern "C" unsigned char __stop_sf_shared[] __attribute__((weak, visibility("hidden")));

namespace sfcpu {

// Sets the current block's threads to start from the kernel's beginning, its shared memory
// unwritten (a GPU block's starts undefined).
inline void start_block() {
    std::memset(active->dyn->data, 0xff, active->dyn->len);
    if (__start_sf_shared && __stop_sf_shared > __start_sf_shared)
        std::memset(__start_sf_shared, 0xff, size_t(__stop_sf_shared - __start_sf_shared));
    for (unsigned i = 0; i < active->n; i++) {
        Fiber& f = active->fibers[i];
        getcontext(&f.ctx);
        f.ctx.uc_stack.ss_sp = (*active->stacks)[i].data();
        f.ctx.uc_stack.ss_size = (*active->stacks)[i].size();
        f.ctx.uc_link = nullptr;
        f.started = false;
        f.state = State::Run;
        f.idx = dim3(i % blockDim.x, (i / blockDim.x) % blockDim.y, i / (blockDim.x * blockDim.y));
        makecontext(&f.ctx, entry, 0);
    }
}

// Runs fiber `i` of the current block until it reaches a barrier or returns.
inline void run_fiber(unsigned i) {
    Fiber& f = active->fibers[i];
    current = i;
    threadIdx = f.idx;
    in_kernel = true;
    if (!_setjmp(scheduler)) {
        if (!f.started) {
            f.started = true;
            setcontext(&f.ctx);
        }
        _longjmp(f.jb, 1);
    }
    in_kernel = false;
}

// Lets warp `w` on past its shuffle if every one of its threads has reached it. A shuffle
// (every one here names the whole warp) that lanes which have returned can never reach is
// undefined on a GPU: a bug in the kernel, reported.
inline bool release_warp(unsigned w) {
    std::vector<Fiber>& fibers = active->fibers;
    const unsigned end = std::min(active->n, w * 32 + 32);
    bool any = false, all = true, gone = false;
    for (unsigned i = w * 32; i < end; i++) {
        any |= fibers[i].state == State::WarpBarrier;
        all &= fibers[i].state == State::WarpBarrier || fibers[i].state == State::Done;
        gone |= fibers[i].state == State::Done;
    }
    if (!(any && all)) return false;
    if (gone) {
        std::fprintf(stderr, "cpu_shim: a warp shuffle in block (%u,%u,%u) waits for lanes that returned\n",
                     blockIdx.x, blockIdx.y, blockIdx.z);
        std::abort();
    }
    for (unsigned i = w * 32; i < end; i++)
        if (fibers[i].state == State::WarpBarrier) fibers[i].state = State::Run;
    return true;
}

// Runs the current block's threads until every one is done (true), or, in a block started
// early, until none can go on and some wait at `SF_WAIT_PRIOR` (false).
//
// In step (`in_turn` off), every thread runs to its next barrier, first to last, before any
// goes past one: the block's warps stay together, as they mostly do on a GPU. In turn, one warp
// at a time runs as far as it can before the block's next `__syncthreads` (its shuffles let
// through within it), then the next: as far apart as a GPU may let warps drift.
inline bool run_threads() {
    const unsigned n = active->n;
    std::vector<Fiber>& fibers = active->fibers;
    const unsigned warps = (n + 31) / 32;
    auto nth = [](unsigned k, unsigned count) { return reversed ? count - 1 - k : k; };
    for (;;) {
        if (in_turn) {
            for (unsigned wk = 0; wk < warps; wk++) {
                const unsigned w = nth(wk, warps), first = w * 32;
                const unsigned lanes = std::min(n, first + 32) - first;
                do {
                    for (unsigned k = 0; k < lanes; k++)
                        if (fibers[first + nth(k, lanes)].state == State::Run)
                            run_fiber(first + nth(k, lanes));
                } while (release_warp(w));
            }
        } else {
            for (unsigned k = 0; k < n; k++)
                if (fibers[nth(k, n)].state == State::Run) run_fiber(nth(k, n));
            // Everyone is at a barrier or done. Release whole warps waiting at a shuffle first.
            bool released = false;
            for (unsigned w = 0; w < warps; w++) released |= release_warp(w);
            if (released) continue;
        }
        bool all_done = true, any_block = false, all_block = true, any_grid = false;
        for (unsigned i = 0; i < n; i++) {
            all_done &= fibers[i].state == State::Done;
            any_block |= fibers[i].state == State::BlockBarrier;
            all_block &= fibers[i].state == State::BlockBarrier || fibers[i].state == State::Done;
            any_grid |= fibers[i].state == State::GridWait;
        }
        if (all_done) return true;
        if (any_block && all_block) {
            for (unsigned i = 0; i < n; i++)
                if (fibers[i].state == State::BlockBarrier) fibers[i].state = State::Run;
            continue;
        }
        if (any_grid) return false;
        std::fprintf(stderr, "cpu_shim: barrier deadlock in block (%u,%u,%u)\n", blockIdx.x, blockIdx.y,
                     blockIdx.z);
        std::abort();
    }
}

// A fault while a kernel's thread runs (memory past a buffer's end reaches the guard page after
// each of `HostDevice`'s buffers and after the launch's dynamic shared memory; a misaligned
// vector traps) names the kernel and its block and thread, then is handled as it was before: the
// handler puts the earlier one back and returns, and the access faults again.
inline struct sigaction earlier_segv;

inline void say(const char* s) {
    if (write(2, s, std::strlen(s)) < 0) return;
}

inline void say(unsigned v) {
    char buf[16];
    int i = sizeof buf;
    do buf[--i] = char('0' + v % 10); while ((v /= 10) && i > 0);
    if (write(2, buf + i, sizeof buf - i) < 0) return;
}

inline struct sigaction earlier_ill;

inline void on_fault(int sig, siginfo_t*, void*) {
    if (in_kernel && active) {
        say("cpu_shim: kernel ");
        say(active->name);
        say(sig == SIGILL ? " loaded or stored a vector at an address not aligned to its size (a GPU faults: misaligned address), in block ("
                          : " touched memory outside its buffers and its shared memory, in block (");
        say(blockIdx.x), say(","), say(blockIdx.y), say(","), say(blockIdx.z), say("), thread ");
        say(threadIdx.x);
        say("\n");
    }
    sigaction(sig, sig == SIGILL ? &earlier_ill : &earlier_segv, nullptr);
}

// A fault in a kernel names it. The kernels are compiled with g++'s alignment check trapping
// (`HostDevice::build`): an `int4` or `float2` loaded from an address that is not a multiple of
// its size, which a GPU refuses, stops here with SIGILL, where x86 would load it.
inline void watch_faults() {
    static bool watching = false;
    if (watching) return;
    watching = true;
    struct sigaction sa = {};
    sa.sa_sigaction = on_fault;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, &earlier_segv);
    sigaction(SIGILL, &sa, &earlier_ill);
}

// A launch's state, its stacks taken from a free set.
inline Grid* make_grid(std::function<void()> kernel, const char* name, dim3 grid, dim3 block,
                       unsigned smem) {
    const unsigned n = block.x * block.y * block.z;
    // CUDA's limits: 1024 threads a block (at most 64 in z), 2^31 - 1 blocks in x and 65535 in
    // y and z. A GPU refuses any other launch.
    if (n == 0 || n > 1024 || block.z > 64 || grid.x == 0 || grid.x > 0x7fffffffu || grid.y == 0 ||
        grid.y > 65535 || grid.z == 0 || grid.z > 65535) {
        std::fprintf(stderr, "cpu_shim: %s launched as (%u,%u,%u) blocks of (%u,%u,%u) threads, which a GPU refuses\n",
                     name, grid.x, grid.y, grid.z, block.x, block.y, block.z);
        std::abort();
    }
    Grid* gr = new Grid;
    gr->body = std::move(kernel);
    gr->name = name;
    gr->grid = grid;
    gr->block = block;
    gr->n = n;
    gr->fibers.assign(n, Fiber{});
    gr->exchange.assign(n, 0);
    gr->dyn = new Guarded(smem);
    unsigned set = 0;
    while (set < stack_sets.size() && stack_set_used[set]) set++;
    if (set == stack_sets.size()) {
        stack_sets.push_back(new std::vector<std::vector<unsigned char>>());
        stack_set_used.push_back(false);
    }
    stack_set_used[set] = true;
    gr->stacks = stack_sets[set];
    if (gr->stacks->size() < n) gr->stacks->resize(n);
    for (unsigned i = 0; i < n; i++) (*gr->stacks)[i].resize(256 * 1024);
    return gr;
}

inline void free_grid(Grid* gr) {
    for (size_t i = 0; i < stack_sets.size(); i++)
        if (stack_sets[i] == gr->stacks) stack_set_used[i] = false;
    if (active == gr) active = nullptr;
    delete gr->dyn;
    delete gr;
}

// The block that runs `k`-th: in launch order (x fastest), or (`reversed`) the last first.
inline dim3 block_at(const Grid& gr, unsigned k) {
    const unsigned total = gr.grid.x * gr.grid.y * gr.grid.z;
    const unsigned at = reversed ? total - 1 - k : k;
    return dim3(at % gr.grid.x, (at / gr.grid.x) % gr.grid.y, at / (gr.grid.x * gr.grid.y));
}

// Runs the blocks from the `first`-th to run onwards to completion.
inline void run_blocks(Grid& gr, unsigned first) {
    const unsigned total = gr.grid.x * gr.grid.y * gr.grid.z;
    for (unsigned k = first; k < total; k++) {
        enter(gr, block_at(gr, k));
        start_block();
        run_threads();
    }
}

inline void launch(std::function<void()> kernel, const char* name, dim3 grid, dim3 block,
                   unsigned smem) {
    watch_faults();
    Grid* gr = make_grid(std::move(kernel), name, grid, block, smem);
    run_blocks(*gr, 0);
    free_grid(gr);
}

// A launch started as early as programmatic dependent launch allows: its first block to run
// (`block_at(0)`: the last one where `reversed`) runs up to `SF_WAIT_PRIOR` now, before the
// launch before it has run; `finish` runs the rest. A kernel that read what the launch before
// it writes before waiting then computes on what was there before. (What the first block does
// before it waits must not use `__shared__` variables: they are static storage, which another
// launch of the same kernel may be using.)
inline Grid* begin(std::function<void()> kernel, const char* name, dim3 grid, dim3 block,
                   unsigned smem) {
    watch_faults();
    Grid* gr = make_grid(std::move(kernel), name, grid, block, smem);
    gr->early = true;
    enter(*gr, block_at(*gr, 0));
    start_block();
    gr->first_done = run_threads();
    gr->early = false;
    return gr;
}

inline void finish(Grid* gr) {
    if (!gr->first_done) {
        enter(*gr, block_at(*gr, 0));
        for (auto& f : gr->fibers)
            if (f.state == State::GridWait) f.state = State::Run;
        if (!run_threads()) {
            std::fprintf(stderr, "cpu_shim: a block started early waits again\n");
            std::abort();
        }
    }
    run_blocks(*gr, 1);
    free_grid(gr);
}

}  // namespace sfcpu

inline void __syncthreads() { sfcpu::wait(sfcpu::State::BlockBarrier); }
#define SF_WAIT_PRIOR() sfcpu::grid_wait()
inline void __syncwarp(unsigned = 0xffffffffu) { sfcpu::wait(sfcpu::State::WarpBarrier); }

template <class T>
inline T sf_exchange(T v, unsigned from_lane) {
    static_assert(sizeof(T) <= 8, "shuffles move at most 8 bytes");
    const unsigned tid = sfcpu::linear_tid();
    std::vector<uint64_t>& exchange = sfcpu::active->exchange;
    std::memcpy(&exchange[tid], &v, sizeof(T));
    sfcpu::wait(sfcpu::State::WarpBarrier);
    T out;
    std::memcpy(&out, &exchange[(tid / 32) * 32 + from_lane % 32], sizeof(T));
    sfcpu::wait(sfcpu::State::WarpBarrier);
    return out;
}

template <class T>
inline T __shfl_xor_sync(unsigned, T v, int lane_mask, int = 32) {
    return sf_exchange(v, (sfcpu::linear_tid() % 32) ^ unsigned(lane_mask));
}
template <class T>
inline T __shfl_sync(unsigned, T v, int src_lane, int = 32) {
    return sf_exchange(v, unsigned(src_lane));
}

inline int __dp4a(int a, int b, int c) {
    for (int i = 0; i < 4; i++) c += int(int8_t(a >> (8 * i))) * int(int8_t(b >> (8 * i)));
    return c;
}
inline int __dp4a(unsigned a, int b, int c) { return __dp4a(int(a), b, c); }

inline float __int_as_float(unsigned v) {
    float f;
    std::memcpy(&f, &v, 4);
    return f;
}
inline unsigned __float_as_uint(float f) {
    unsigned v;
    std::memcpy(&v, &f, 4);
    return v;
}
inline int __float2int_rn(float f) { return int(std::nearbyint(f)); }
inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
inline float __expf(float x) { return std::exp(x); }
inline float __fdividef(float a, float b) { return a / b; }
inline float __saturatef(float x) { return std::min(1.0f, std::max(0.0f, x)); }
template <class T>
inline T __ldg(const T* p) {
    return *p;
}
inline int atomicAdd(int* p, int v) {
    int old = *p;
    *p += v;
    return old;
}
inline float atomicAdd(float* p, float v) {
    float old = *p;
    *p += v;
    return old;
}

// f16 <-> f32 with round-to-nearest-even, subnormals and infinities as IEEE says.
inline float sf_h2f(uint16_t h) { return float(reinterpret_cast<const _Float16&>(h)); }
inline uint16_t sf_f2h(float f) {
    _Float16 h = _Float16(f);
    return reinterpret_cast<const uint16_t&>(h);
}

using std::exp;
using std::fabs;
using std::sqrt;
