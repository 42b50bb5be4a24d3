//! The CUDA kernels against the CPU engine's functions, run two ways: their own source compiled
//! as C++ for the CPU (`kernels/cpu_shim.h`: CUDA threads as fibers, warps exchanging through
//! memory; `cpu::` tests: no GPU or CUDA installation involved; `g++` builds the library once
//! per source version), and compiled by NVRTC on the GPU (`gpu::` tests, skipped with one line
//! where there is no driver; `scripts/gpu-check` runs them on a GPU machine).
//!
//! What this checks: indexing, warp and block reductions, barriers (a kernel whose threads meet
//! different barriers aborts the shim), partial tiles and partitions, and the arithmetic. What
//! the CPU build cannot check is what only hardware shows (races between blocks, the memory
//! model, speed): the `gpu::` tests do.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use cudarc::driver::{CudaContext, CudaModule, CudaSlice, CudaStream, LaunchConfig, PushKernelArg};

use engine::cuda;
use engine::cuda::device::{Device, HostBuf, HostDevice, KArg, Launch, Schedule};
use engine::cuda::model::{q4_1_scales, SampleArrays};
use engine::kernels::attention::{paged_attention, AttentionScratch, AttentionShape};
use engine::kernels::dot;
use engine::kernels::elementwise::{rotate_pairs, swiglu};
use engine::kernels::quant::{Q4_1Matrix, Q8_0Matrix, QuantizedRows};
use half::f16;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// One kernel argument, as `cuLaunchKernel` takes them: a pointer to each value.
#[derive(Clone, Copy)]
enum Arg {
    /// A host buffer: its start and length in bytes.
    Ptr(*mut u8, usize),
    /// A null pointer (an optional input or output left out).
    Null,
    I32(i32),
    I64(i64),
    F32(f32),
}

fn p<T>(v: &mut [T]) -> Arg {
    Arg::Ptr(v.as_mut_ptr().cast(), std::mem::size_of_val(v))
}

/// The kernels compiled as C++ for this CPU (once per source version, under target/), run as
/// `schedule` says (and, last first, with buffers that start where an inaccessible page ends).
fn host(schedule: Schedule) -> &'static HostDevice {
    static H: [OnceLock<HostDevice>; 3] = [OnceLock::new(), OnceLock::new(), OnceLock::new()];
    H[schedule as usize].get_or_init(|| {
        let dev = HostDevice::build(&PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("cuda-cpu"))
            .unwrap_or_else(|e| panic!("{e}"))
            .with_schedule(schedule);
        // Where everything runs last first, buffers sit right after their inaccessible page
        // too: a kernel reaching before a buffer's start faults.
        if schedule == Schedule::InTurnLastFirst {
            dev.with_guard_before()
        } else {
            dev
        }
    })
}

/// Where this thread's test launches its kernels: on the CPU, run as each of the schedules
/// says (a read that no barrier orders where it needs reads the wrong value under one of
/// them), or on the GPU.
#[derive(Clone, Copy, PartialEq)]
enum Target {
    Cpu(Schedule),
    Gpu,
}

thread_local! {
    static TARGET: std::cell::Cell<Target> =
        const { std::cell::Cell::new(Target::Cpu(Schedule::InStep)) };
}

struct Gpu {
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    module: Arc<CudaModule>,
}

/// The GPU, when this machine has a driver (and then NVRTC must work: a GPU machine that
/// cannot compile the kernels is a failure, not a skip).
fn gpu() -> Option<&'static Gpu> {
    static G: OnceLock<Option<Gpu>> = OnceLock::new();
    G.get_or_init(|| {
        if !cuda::driver_present() {
            return None;
        }
        let ctx = cuda::open_device(0).unwrap_or_else(|e| panic!("{e}"));
        let module = cuda::load_kernels(&ctx).unwrap_or_else(|e| panic!("{e}"));
        Some(Gpu {
            stream: ctx.default_stream(),
            ctx,
            module,
        })
    })
    .as_ref()
}

/// Runs `check` with its kernels on the CPU (always) or on the GPU (when there is one).
fn run_on(target: Target, check: fn()) {
    if target == Target::Gpu && gpu().is_none() {
        // `scripts/gpu-check` sets it on the GPU machine: there a missing driver is a failure.
        assert!(
            std::env::var_os("STARFIRE_REQUIRE_GPU").is_none(),
            "STARFIRE_REQUIRE_GPU is set but no CUDA driver was found"
        );
        eprintln!("skipped: no CUDA driver found (this runs on a GPU machine)");
        return;
    }
    TARGET.with(|t| t.set(target));
    check();
}

/// A test for each check in `cpu` (warps in step), `cpu_in_turn`, `cpu_in_turn_last_first`
/// (the other [`Schedule`]s) and `gpu`.
macro_rules! on_both {
    ($($check:ident),* $(,)?) => {
        mod cpu {
            use engine::cuda::device::Schedule;
            $(#[test] fn $check() { super::run_on(super::Target::Cpu(Schedule::InStep), super::$check) })*
        }
        mod cpu_in_turn {
            use engine::cuda::device::Schedule;
            $(#[test] fn $check() { super::run_on(super::Target::Cpu(Schedule::InTurn), super::$check) })*
        }
        mod cpu_in_turn_last_first {
            use engine::cuda::device::Schedule;
            $(#[test] fn $check() {
                super::run_on(super::Target::Cpu(Schedule::InTurnLastFirst), super::$check)
            })*
        }
        mod gpu {
            $(#[test] fn $check() { super::run_on(super::Target::Gpu, super::$check) })*
        }
    };
}

on_both!(
    quantize_q8_1_matches_the_cpu_engine_bit_for_bit,
    matvec_kernels_match_the_cpu_dot_products,
    matvec_kernels_that_make_their_input_match_the_kernels_they_spare,
    embedding_and_dequantize_kernels_match_the_cpu_rows,
    norm_and_elementwise_kernels_match_the_cpu_engine,
    rope_write_kv_matches_the_cpu_engine_bit_for_bit,
    paged_attention_matches_exact_attention_and_the_cpu_kernel,
    attention_that_rotates_and_writes_the_new_token_matches_rope_write_kv_then_attention,
    argmax_logprob_picks_the_first_maximum_and_its_log_probability,
    sample_rows_picks_the_cpu_samplers_tokens,
    every_thread_of_every_block_runs_once,
);

fn launch(name: &'static str, grid: (u32, u32, u32), block: u32, smem: u32, args: Vec<Arg>) {
    match TARGET.with(|t| t.get()) {
        Target::Cpu(schedule) => launch_cpu(host(schedule), name, grid, block, smem, args),
        Target::Gpu => launch_gpu(
            gpu().expect("checked by run_on"),
            name,
            grid,
            block,
            smem,
            args,
        ),
    }
}

/// Lets kernel `name` be launched with `bytes` of dynamic shared memory (more than 48 KiB needs
/// it), as the engine does at load.
fn allow_shared_memory(name: &'static str, bytes: u32) {
    match TARGET.with(|t| t.get()) {
        Target::Cpu(schedule) => host(schedule).allow_shared_memory(name, bytes),
        Target::Gpu => {
            let g = gpu().expect("checked by run_on");
            let f = g.module.load_function(name).unwrap();
            engine::cuda::device::allow_shared_memory(&g.ctx, &f, name, bytes)
        }
    }
    .unwrap_or_else(|e| panic!("{e}"));
}

/// The device address a null pointer argument passes.
static NULL_ADDRESS: u64 = 0;

/// Copies every buffer to the device, launches, and copies every buffer back.
fn launch_gpu(g: &Gpu, name: &str, grid: (u32, u32, u32), block: u32, smem: u32, args: Vec<Arg>) {
    let s = &g.stream;
    let bufs: Vec<Option<CudaSlice<u8>>> = args
        .iter()
        .map(|a| match a {
            // SAFETY: the caller's buffer, alive for the call.
            Arg::Ptr(p, n) => Some(
                s.clone_htod(unsafe { std::slice::from_raw_parts(*p, *n) })
                    .unwrap(),
            ),
            _ => None,
        })
        .collect();
    let f = g.module.load_function(name).unwrap();
    let mut b = s.launch_builder(&f);
    for (a, buf) in args.iter().zip(&bufs) {
        match a {
            Arg::Ptr(..) => b.arg(buf.as_ref().unwrap()),
            Arg::Null => b.arg(&NULL_ADDRESS),
            Arg::I32(v) => b.arg(v),
            Arg::I64(v) => b.arg(v),
            Arg::F32(v) => b.arg(v),
        };
    }
    let cfg = LaunchConfig {
        grid_dim: grid,
        block_dim: (block, 1, 1),
        shared_mem_bytes: smem,
    };
    // SAFETY: the arguments match the kernel's parameters (the same lists the CPU build
    // checks), and the buffers are sized for the launch.
    unsafe { b.launch(cfg) }.unwrap_or_else(|e| panic!("{name}: {e:?}"));
    for (a, buf) in args.iter().zip(&bufs) {
        if let (Arg::Ptr(p, n), Some(buf)) = (a, buf) {
            // SAFETY: as above.
            s.memcpy_dtoh(buf, unsafe { std::slice::from_raw_parts_mut(*p, *n) })
                .unwrap();
        }
    }
    s.synchronize().unwrap();
}

/// Copies every buffer into one of the device's (each with an inaccessible page after its end:
/// a kernel that reaches past a buffer faults), launches, and copies every buffer back.
fn launch_cpu(
    host: &HostDevice,
    name: &'static str,
    grid: (u32, u32, u32),
    block: u32,
    smem: u32,
    args: Vec<Arg>,
) {
    let bufs: Vec<Option<HostBuf>> = args
        .iter()
        .map(|a| match a {
            Arg::Ptr(p, n) => {
                let mut b = host.alloc(*n).unwrap();
                // SAFETY: the caller's buffer, alive for the call.
                host.write(&mut b, unsafe { std::slice::from_raw_parts(*p, *n) })
                    .unwrap();
                Some(b)
            }
            _ => None,
        })
        .collect();
    let kargs: Vec<KArg<'_, HostBuf>> = args
        .iter()
        .zip(&bufs)
        .map(|(a, b)| match (a, b) {
            (_, Some(b)) => KArg::Buf(b),
            (Arg::Null, _) => KArg::Null,
            (Arg::I32(v), _) => KArg::I32(*v),
            (Arg::I64(v), _) => KArg::I64(*v),
            (Arg::F32(v), _) => KArg::F32(*v),
            (Arg::Ptr(..), None) => unreachable!("every pointer has its buffer"),
        })
        .collect();
    host.launch(name, Launch { grid, block, smem }, &kargs)
        .unwrap_or_else(|e| panic!("{e}"));
    for (a, b) in args.iter().zip(&bufs) {
        if let (Arg::Ptr(p, n), Some(b)) = (a, b) {
            // SAFETY: as above.
            host.read(b, unsafe { std::slice::from_raw_parts_mut(*p, *n) })
                .unwrap();
        }
    }
}

fn randn(rng: &mut SmallRng, n: usize, scale: f32) -> Vec<f32> {
    (0..n)
        .map(|_| (rng.random::<f32>() * 2.0 - 1.0) * scale)
        .collect()
}

fn close(a: f32, b: f32, tol: f32) -> bool {
    (a - b).abs() <= tol * (1.0 + b.abs())
}

fn assert_close(what: &str, got: &[f32], want: &[f32], tol: f32) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!(close(g, w, tol), "{what}[{i}]: got {g}, want {w}");
    }
}

/// Random ggml blocks: f16 scales of a realistic size, random quants.
fn q4_1_matrix(rng: &mut SmallRng, rows: usize, cols: usize) -> Q4_1Matrix {
    let mut raw = Vec::new();
    for _ in 0..rows * cols / 32 {
        raw.extend(f16::from_f32(rng.random::<f32>() * 0.02 + 0.001).to_le_bytes());
        raw.extend(f16::from_f32(-rng.random::<f32>() * 0.1).to_le_bytes());
        raw.extend((0..16).map(|_| rng.random::<u8>()));
    }
    Q4_1Matrix::from_ggml(&raw, rows, cols).unwrap()
}

fn q8_0_matrix(rng: &mut SmallRng, rows: usize, cols: usize) -> Q8_0Matrix {
    let mut raw = Vec::new();
    for _ in 0..rows * cols / 32 {
        raw.extend(f16::from_f32(rng.random::<f32>() * 0.01 + 0.0005).to_le_bytes());
        raw.extend((0..32).map(|_| rng.random::<u8>()));
    }
    Q8_0Matrix::from_ggml(&raw, rows, cols).unwrap()
}

fn f16_bits(v: &[f32]) -> Vec<u16> {
    v.iter().map(|&x| f16::from_f32(x).to_bits()).collect()
}

/// Runs `quantize_q8_1` over `rows × cols` floats: (quants, interleaved d/s pairs).
fn quantize_on_kernels(x: &[f32]) -> (Vec<i8>, Vec<f32>) {
    let nblocks = x.len() / 32;
    let mut x = x.to_vec();
    let mut q = vec![0i8; x.len()];
    let mut ds = vec![0f32; 2 * nblocks];
    launch(
        "quantize_q8_1",
        (nblocks.div_ceil(8) as u32, 1, 1),
        256,
        0,
        vec![p(&mut x), p(&mut q), p(&mut ds), Arg::I32(nblocks as i32)],
    );
    (q, ds)
}

fn quantize_q8_1_matches_the_cpu_engine_bit_for_bit() {
    let mut rng = SmallRng::seed_from_u64(1);
    let (rows, cols) = (3, 96 * 3);
    let mut x = randn(&mut rng, rows * cols, 3.0);
    x[0..32].fill(0.0); // a zero block
    x[40] = 1.5; // ties at .5 after scaling are likely with exact values
    x[41] = -127.0 / 254.0;
    let (q, ds) = quantize_on_kernels(&x);
    let want = QuantizedRows::quantize(&x, rows, cols);
    assert_eq!(q, want.qs);
    for b in 0..want.d.len() {
        assert_eq!(ds[2 * b].to_bits(), want.d[b].to_bits(), "d of block {b}");
        assert_eq!(
            ds[2 * b + 1].to_bits(),
            want.s[b].to_bits(),
            "s of block {b}"
        );
    }
}

/// Q4_1 and Q8_0 products for 1, 3, 8 and 19 tokens (chunks of up to 8, the last partial),
/// rows that do not fill the last block of warps, and rows shorter and longer than a warp's 32
/// blocks, through every kernel shape (`cuda::MATVEC_SHAPES`): each matches the CPU engine's
/// dot products, and all give the same bits (what lets the engine launch whichever is fastest).
fn matvec_kernels_match_the_cpu_dot_products() {
    let mut rng = SmallRng::seed_from_u64(2);
    for (rows, cols) in [(37, 576), (10, 2048 + 96)] {
        let w4 = q4_1_matrix(&mut rng, rows, cols);
        let w8 = q8_0_matrix(&mut rng, rows, cols);
        let mut qs4 = w4.qs.clone();
        let mut dm = q4_1_scales(&w4);
        let mut qs8 = w8.qs.clone();
        let mut d8 = f16_bits(&w8.d);
        for ntok in [1usize, 3, 8, 19] {
            let x = randn(&mut rng, ntok * cols, 1.0);
            let (mut xq, mut xds) = quantize_on_kernels(&x);
            let xr = QuantizedRows::quantize(&x, ntok, cols);
            let tokens: Vec<usize> = (0..ntok).collect();
            let mut want4 = vec![0f32; ntok * rows];
            let mut want8 = vec![0f32; ntok * rows];
            let mut out = vec![0f32; ntok];
            for r in 0..rows {
                dot::q4_1_row(&w4, r, &xr, &tokens, &mut out);
                for t in 0..ntok {
                    want4[t * rows + r] = out[t];
                }
                dot::q8_0_row(&w8, r, &xr, &tokens, &mut out);
                for t in 0..ntok {
                    want8[t * rows + r] = out[t];
                }
            }
            let mut first: Option<(Vec<f32>, Vec<f32>)> = None;
            for shape in cuda::MATVEC_SHAPES {
                let at = shape.launch(rows, ntok);
                let mut y4 = vec![0f32; ntok * rows];
                let mut y8 = vec![0f32; ntok * rows];
                for (kernel, qs, scales, y) in [
                    (shape.q4_1, p(&mut qs4), p(&mut dm), &mut y4),
                    (shape.q8_0, p(&mut qs8), p(&mut d8), &mut y8),
                ] {
                    launch(
                        kernel,
                        at.grid,
                        at.block,
                        0,
                        vec![
                            qs,
                            scales,
                            p(&mut xq),
                            p(&mut xds),
                            p(y.as_mut_slice()),
                            Arg::I32(rows as i32),
                            Arg::I32(cols as i32),
                            Arg::I32(ntok as i32),
                            Arg::I32(cuda::MatvecInput::Quantized as i32),
                            NULL,
                            NULL,
                            NULL,
                            NULL,
                            Arg::F32(0.0),
                        ],
                    );
                }
                let name = format!("{rows}x{cols} ntok {ntok} {shape:?}");
                assert_close(&format!("q4_1 {name}"), &y4, &want4, 1e-4);
                assert_close(&format!("q8_0 {name}"), &y8, &want8, 1e-4);
                match &first {
                    None => first = Some((y4, y8)),
                    Some((f4, f8)) => {
                        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                        assert_eq!(bits(&y4), bits(f4), "q4_1 {name} against the first shape");
                        assert_eq!(bits(&y8), bits(f8), "q8_0 {name} against the first shape");
                    }
                }
            }

            let mut wf = randn(&mut rng, rows * cols, 0.1);
            let mut xf = x.clone();
            let mut y = vec![0f32; ntok * rows];
            let at = cuda::MATVEC_F32.launch(rows, ntok);
            launch(
                "matvec_f32",
                at.grid,
                at.block,
                0,
                vec![
                    p(&mut wf),
                    p(&mut xf),
                    p(&mut y),
                    Arg::I32(rows as i32),
                    Arg::I32(cols as i32),
                    Arg::I32(ntok as i32),
                ],
            );
            let mut want = vec![0f32; ntok * rows];
            for t in 0..ntok {
                for r in 0..rows {
                    want[t * rows + r] = (0..cols)
                        .map(|c| wf[r * cols + c] as f64 * x[t * cols + c] as f64)
                        .sum::<f64>() as f32;
                }
            }
            assert_close("f32", &y, &want, 1e-4);
        }
    }
}

/// The matrix-vector kernels that make their own input (`cuda::MatvecInput::Norm`, with and
/// without the residual's delta, and `SiluMul`) give the bits of the kernel they spare (its
/// quantized output read by the same shape), in every shape and chunk of tokens, rows short
/// and longer than a warp's 32 blocks; the one that adds the residual writes the sum.
fn matvec_kernels_that_make_their_input_match_the_kernels_they_spare() {
    let mut rng = SmallRng::seed_from_u64(12);
    let eps = 1e-5f32;
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    for (rows, cols) in [(37, 576), (10, 2048 + 96)] {
        let w4 = q4_1_matrix(&mut rng, rows, cols);
        let mut qs = w4.qs.clone();
        let mut dm = q4_1_scales(&w4);
        let mut nw = randn(&mut rng, cols, 1.0);
        for ntok in [1usize, 3, 8, 19] {
            let n = ntok * cols;
            let mut x = randn(&mut rng, n, 2.0);
            let mut delta = randn(&mut rng, n, 1.0);
            let mut gu = randn(&mut rng, 2 * n, 4.0);
            let summed: Vec<f32> = x.iter().zip(&delta).map(|(a, b)| a + b).collect();
            // A norm alone, a norm of the residual plus a delta, SwiGLU.
            for (how, add) in [
                (cuda::MatvecInput::Norm, false),
                (cuda::MatvecInput::Norm, true),
                (cuda::MatvecInput::SiluMul, false),
            ] {
                let (mut q, mut ds) = (vec![0i8; n], vec![0f32; n / 16]);
                let mut out = vec![0f32; n];
                match (how, add) {
                    (cuda::MatvecInput::SiluMul, _) => launch(
                        "silu_mul",
                        (n.div_ceil(256) as u32, 1, 1),
                        256,
                        0,
                        vec![
                            p(&mut gu),
                            p(&mut out),
                            p(&mut q),
                            p(&mut ds),
                            Arg::I32(cols as i32),
                            Arg::I64(n as i64),
                        ],
                    ),
                    (_, add) => {
                        let mut args = vec![p(&mut x)];
                        if add {
                            args.extend([p(&mut delta), NULL]);
                        }
                        args.extend([
                            p(&mut nw),
                            p(&mut out),
                            p(&mut q),
                            p(&mut ds),
                            Arg::I32(cols as i32),
                            Arg::F32(eps),
                        ]);
                        let kernel = if add { "add_rms_norm" } else { "rms_norm" };
                        launch(kernel, (ntok as u32, 1, 1), 256, 0, args)
                    }
                }
                for shape in cuda::MATVEC_SHAPES {
                    let at = shape.launch(rows, ntok);
                    let smem = shape.input_smem(cols).expect("fits");
                    let mut want = vec![0f32; ntok * rows];
                    let mut got = vec![0f32; ntok * rows];
                    let mut resid = vec![0f32; n];
                    for (y, fused) in [(&mut want, false), (&mut got, true)] {
                        let (mode, src, dl, w, sum) = match (fused, how, add) {
                            (false, _, _) => (cuda::MatvecInput::Quantized, NULL, NULL, NULL, NULL),
                            (true, cuda::MatvecInput::SiluMul, _) => {
                                (how, p(&mut gu), NULL, NULL, NULL)
                            }
                            (true, _, false) => (how, p(&mut x), NULL, p(&mut nw), NULL),
                            (true, _, true) => {
                                (how, p(&mut x), p(&mut delta), p(&mut nw), p(&mut resid))
                            }
                        };
                        launch(
                            shape.q4_1,
                            at.grid,
                            at.block,
                            if fused { smem } else { 0 },
                            vec![
                                p(&mut qs),
                                p(&mut dm),
                                p(&mut q),
                                p(&mut ds),
                                p(y.as_mut_slice()),
                                Arg::I32(rows as i32),
                                Arg::I32(cols as i32),
                                Arg::I32(ntok as i32),
                                Arg::I32(mode as i32),
                                src,
                                dl,
                                w,
                                sum,
                                Arg::F32(eps),
                            ],
                        );
                    }
                    let name = format!("{rows}x{cols} ntok {ntok} {shape:?} {how:?} add {add}");
                    assert_eq!(bits(&got), bits(&want), "{name}: the product");
                    if add {
                        assert_eq!(bits(&resid), bits(&summed), "{name}: the residual's sum");
                    }
                }
            }
        }
    }
}

fn embedding_and_dequantize_kernels_match_the_cpu_rows() {
    let mut rng = SmallRng::seed_from_u64(3);
    let (rows, cols) = (20, 160);
    let w4 = q4_1_matrix(&mut rng, rows, cols);
    let w8 = q8_0_matrix(&mut rng, rows, cols);
    let id_list = [3i32, 0, 19, 3];
    let mut ids = id_list.to_vec();
    let want_rows = |deq: &dyn Fn(usize, &mut [f32])| {
        let mut want = vec![0f32; id_list.len() * cols];
        for (t, &id) in id_list.iter().enumerate() {
            deq(id as usize, &mut want[t * cols..(t + 1) * cols]);
        }
        want
    };
    let mut out = vec![0f32; ids.len() * cols];
    let (mut qs4, mut dm) = (w4.qs.clone(), q4_1_scales(&w4));
    launch(
        "embed_q4_1",
        (4, 1, 1),
        64,
        0,
        vec![
            p(&mut qs4),
            p(&mut dm),
            p(&mut ids),
            p(&mut out),
            Arg::I32(cols as i32),
        ],
    );
    assert_close(
        "embed_q4_1",
        &out,
        &want_rows(&|r, o| w4.dequantize_row(r, o)),
        1e-6,
    );
    let (mut qs8, mut d8) = (w8.qs.clone(), f16_bits(&w8.d));
    launch(
        "embed_q8_0",
        (4, 1, 1),
        64,
        0,
        vec![
            p(&mut qs8),
            p(&mut d8),
            p(&mut ids),
            p(&mut out),
            Arg::I32(cols as i32),
        ],
    );
    assert_close(
        "embed_q8_0",
        &out,
        &want_rows(&|r, o| w8.dequantize_row(r, o)),
        1e-6,
    );
    let mut wf = randn(&mut rng, rows * cols, 1.0);
    launch(
        "embed_f32",
        (4, 1, 1),
        64,
        0,
        vec![p(&mut wf), p(&mut ids), p(&mut out), Arg::I32(cols as i32)],
    );
    assert_close(
        "embed_f32",
        &out,
        &want_rows(&|r, o| o.copy_from_slice(&wf[r * cols..(r + 1) * cols])),
        0.0,
    );

    // Whole matrices to f16 for the GEMM path.
    let nblocks = (rows * cols / 32) as i64;
    let mut h = vec![0u16; rows * cols];
    let grid = ((rows * cols).div_ceil(256) as u32, 1, 1);
    launch(
        "dequantize_q4_1_f16",
        grid,
        256,
        0,
        vec![p(&mut qs4), p(&mut dm), p(&mut h), Arg::I64(nblocks)],
    );
    let mut row = vec![0f32; cols];
    for r in 0..rows {
        w4.dequantize_row(r, &mut row);
        for c in 0..cols {
            let got = f16::from_bits(h[r * cols + c]).to_f32();
            assert!(
                close(got, row[c], 1e-3),
                "q4_1 f16 [{r},{c}]: {got} vs {}",
                row[c]
            );
        }
    }
    launch(
        "dequantize_q8_0_f16",
        grid,
        256,
        0,
        vec![p(&mut qs8), p(&mut d8), p(&mut h), Arg::I64(nblocks)],
    );
    for r in 0..rows {
        w8.dequantize_row(r, &mut row);
        for c in 0..cols {
            assert_eq!(
                h[r * cols + c],
                f16::from_f32(row[c]).to_bits(),
                "q8_0 f16 [{r},{c}]"
            );
        }
    }
    // Rows picked out of a matrix (the last token of each sequence, before the output layer).
    let mut picks = vec![2i32, 0, 2];
    let mut gathered = vec![0f32; 3 * cols];
    launch(
        "gather_rows",
        (3, 1, 1),
        64,
        0,
        vec![
            p(&mut wf),
            p(&mut picks),
            p(&mut gathered),
            Arg::I32(cols as i32),
        ],
    );
    for (i, &r) in picks.iter().enumerate() {
        assert_eq!(
            &gathered[i * cols..(i + 1) * cols],
            &wf[r as usize * cols..(r as usize + 1) * cols]
        );
    }
    let mut x = randn(&mut rng, 1000, 100.0);
    launch(
        "f32_to_f16",
        (4, 1, 1),
        256,
        0,
        vec![p(&mut x), p(&mut h), Arg::I64(1000)],
    );
    assert_eq!(&h[..1000], &f16_bits(&x)[..]);
}

fn rms_norm_ref(x: &[f32], w: &[f32], eps: f32) -> Vec<f32> {
    let sum: f64 = x.iter().map(|&v| (v * v) as f64).sum();
    let scale = 1.0 / ((sum / x.len() as f64) as f32 + eps).sqrt();
    x.iter().zip(w).map(|(&v, &w)| v * scale * w).collect()
}

fn norm_and_elementwise_kernels_match_the_cpu_engine() {
    let mut rng = SmallRng::seed_from_u64(4);
    let (rows, h, eps) = (3, 576, 1e-5f32);
    let mut x = randn(&mut rng, rows * h, 2.0);
    let mut w = randn(&mut rng, h, 1.0);
    let mut delta = randn(&mut rng, rows * h, 1.0);
    let mut out = vec![0f32; rows * h];
    // With `q` alone: the output as f16 beside it (the GEMM path's input).
    let mut h16 = vec![0u16; rows * h];
    launch(
        "rms_norm",
        (rows as u32, 1, 1),
        256,
        0,
        vec![
            p(&mut x),
            p(&mut w),
            p(&mut out),
            p(&mut h16),
            NULL,
            Arg::I32(h as i32),
            Arg::F32(eps),
        ],
    );
    let want: Vec<f32> = x.chunks(h).flat_map(|r| rms_norm_ref(r, &w, eps)).collect();
    assert_close("rms_norm", &out, &want, 1e-5);
    assert_f16_as_written("rms_norm", &out, &h16);
    // Quantized as it is written: what quantize_q8_1 makes of the output, byte for byte.
    let (mut q, mut ds) = (vec![0i8; rows * h], vec![0f32; rows * h / 16]);
    launch(
        "rms_norm",
        (rows as u32, 1, 1),
        256,
        0,
        vec![
            p(&mut x),
            p(&mut w),
            p(&mut out),
            p(&mut q),
            p(&mut ds),
            Arg::I32(h as i32),
            Arg::F32(eps),
        ],
    );
    assert_quantized_as_written("rms_norm", &mut out, &q, &ds);

    let summed: Vec<f32> = x.iter().zip(&delta).map(|(a, b)| a + b).collect();
    let x_before = x.clone();
    let mut sum = vec![0f32; rows * h];
    let want: Vec<f32> = summed
        .chunks(h)
        .flat_map(|r| rms_norm_ref(r, &w, eps))
        .collect();
    // In 128 threads writing the sum, and in 256 without a place for it (the last layer's).
    let mut outs = Vec::new();
    for (threads, keep_sum) in [(128u32, true), (256, false)] {
        launch(
            "add_rms_norm",
            (rows as u32, 1, 1),
            threads,
            0,
            vec![
                p(&mut x),
                p(&mut delta),
                if keep_sum { p(&mut sum) } else { NULL },
                p(&mut w),
                p(&mut out),
                p(&mut q),
                p(&mut ds),
                Arg::I32(h as i32),
                Arg::F32(eps),
            ],
        );
        assert_eq!(x, x_before, "the residual read is left as it was");
        assert_quantized_as_written("add_rms_norm", &mut out, &q, &ds);
        assert_close("add_rms_norm", &out, &want, 1e-5);
        outs.push(out.clone());
    }
    assert_eq!(sum, summed, "the residual's sum");
    assert_eq!(
        outs[0], outs[1],
        "128 and 256 threads, with and without the sum"
    );
    x = summed.clone();
    // A norm's sum follows one order whatever the block's width (what lets a matrix-vector
    // block of 128 threads normalise its own input with `rms_norm`'s bits): over many rows,
    // where another order would change some of them.
    let many = 64;
    let mut xs = randn(&mut rng, many * h, 3.0);
    let widths: Vec<Vec<u32>> = [128u32, 256]
        .iter()
        .map(|&threads| {
            let mut o = vec![0f32; many * h];
            launch(
                "rms_norm",
                (many as u32, 1, 1),
                threads,
                0,
                vec![
                    p(&mut xs),
                    p(&mut w),
                    p(&mut o),
                    NULL,
                    NULL,
                    Arg::I32(h as i32),
                    Arg::F32(eps),
                ],
            );
            o.iter().map(|v| v.to_bits()).collect()
        })
        .collect();
    assert!(widths[0] == widths[1], "rms_norm in 128 and 256 threads");

    let n = (rows * h) as i64;
    launch(
        "add_inplace",
        ((n as usize).div_ceil(256) as u32, 1, 1),
        256,
        0,
        vec![p(&mut x), p(&mut delta), Arg::I64(n)],
    );
    let want: Vec<f32> = summed.iter().zip(&delta).map(|(a, b)| a + b).collect();
    assert_eq!(x, want);

    let f = 1536;
    let mut gu = randn(&mut rng, rows * 2 * f, 6.0);
    let mut act = vec![0f32; rows * f];
    let mut h16 = vec![0u16; rows * f];
    let n = (rows * f) as i64;
    launch(
        "silu_mul",
        ((n as usize).div_ceil(256) as u32, 1, 1),
        256,
        0,
        vec![
            p(&mut gu),
            p(&mut act),
            p(&mut h16),
            NULL,
            Arg::I32(f as i32),
            Arg::I64(n),
        ],
    );
    let mut want = vec![0f32; rows * f];
    for (o, g) in want.chunks_mut(f).zip(gu.chunks(2 * f)) {
        swiglu(&g[..f], &g[f..], o);
    }
    assert_close("silu_mul", &act, &want, 1e-5);
    assert_f16_as_written("silu_mul", &act, &h16);
    let (mut q, mut ds) = (vec![0i8; rows * f], vec![0f32; rows * f / 16]);
    launch(
        "silu_mul",
        ((n as usize).div_ceil(256) as u32, 1, 1),
        256,
        0,
        vec![
            p(&mut gu),
            p(&mut act),
            p(&mut q),
            p(&mut ds),
            Arg::I32(f as i32),
            Arg::I64(n),
        ],
    );
    assert_close("silu_mul, quantizing", &act, &want, 1e-5);
    assert_quantized_as_written("silu_mul", &mut act, &q, &ds);
}

/// A null pointer argument (an optional output left out).
const NULL: Arg = Arg::Null;

/// The shape of an attention launch: `t` tokens, `nh` query and `nkv` KV heads of `hd`, cache
/// blocks of `bs` positions, block tables `max_blocks` wide, `parts` partitions of `part_len`
/// positions.
#[derive(Clone, Copy)]
struct AttnShape {
    t: usize,
    nh: usize,
    nkv: usize,
    hd: usize,
    bs: usize,
    max_blocks: usize,
    parts: usize,
    part_len: usize,
}

/// `attention_partial`'s six trailing arguments where it neither adds a bias nor rotates.
const NO_ROPE: [Arg; 6] = [NULL, NULL, NULL, NULL, NULL, Arg::I32(0)];

/// `attention_partial` over `a`, scores scaled by 1/sqrt(hd). `io`: qkv, key cache, value
/// cache, block tables, each token's sequence and context length, partial maxima and sums,
/// partial outputs, the output and its `sf_emit` pair; `rope`: the trailing bias, positions,
/// slots, cos, sin and rope style.
fn attention_partial(a: AttnShape, io: [Arg; 11], rope: [Arg; 6]) {
    let [qkv, kc, vc, tables, seq, ctx, ml, acc, out, q, ds] = io;
    let group = a.nh / a.nkv;
    let mut args = vec![
        qkv,
        kc,
        vc,
        tables,
        Arg::I32(a.max_blocks as i32),
        seq,
        ctx,
        ml,
        acc,
        out,
        q,
        ds,
        Arg::I32(a.nh as i32),
        Arg::I32(a.nkv as i32),
        Arg::I32(a.hd as i32),
        Arg::I32(a.bs as i32),
        Arg::I32(a.parts as i32),
        Arg::I32(a.part_len as i32),
        Arg::F32(1.0 / (a.hd as f32).sqrt()),
    ];
    args.extend(rope);
    let smem = cuda::attention_smem(group, a.hd);
    allow_shared_memory("attention_partial", smem);
    launch(
        "attention_partial",
        (a.t as u32, a.nkv as u32, a.parts as u32),
        cuda::attention_threads(group, a.hd),
        smem,
        args,
    );
}

/// `attention_reduce` over `a`. `io`: partial maxima and sums, partial outputs, each token's
/// context length, the output and its `sf_emit` pair.
fn attention_reduce(a: AttnShape, io: [Arg; 6]) {
    let [ml, acc, ctx, out, q, ds] = io;
    launch(
        "attention_reduce",
        (a.t as u32, a.nh as u32, 1),
        a.hd as u32,
        0,
        vec![
            ml,
            acc,
            ctx,
            out,
            q,
            ds,
            Arg::I32(a.nh as i32),
            Arg::I32(a.hd as i32),
            Arg::I32(a.parts as i32),
            Arg::I32(a.part_len as i32),
        ],
    );
}

/// `h` holds `x` as f16 bits, rounded to nearest even (`sf_emit` with `q` alone).
fn assert_f16_as_written(what: &str, x: &[f32], h: &[u16]) {
    let want: Vec<u16> = x.iter().map(|&v| f16::from_f32(v).to_bits()).collect();
    assert_eq!(h, &want[..], "{what}: the f16 copy");
}

/// `q`, `ds` are what `quantize_q8_1` makes of `x`, byte for byte.
fn assert_quantized_as_written(what: &str, x: &mut [f32], q: &[i8], ds: &[f32]) {
    let nblocks = x.len() / 32;
    let (mut wq, mut wds) = (vec![0i8; x.len()], vec![0f32; 2 * nblocks]);
    launch(
        "quantize_q8_1",
        (nblocks.div_ceil(8) as u32, 1, 1),
        256,
        0,
        vec![p(x), p(&mut wq), p(&mut wds), Arg::I32(nblocks as i32)],
    );
    assert_eq!(q, &wq[..], "{what}: quantized values");
    assert_eq!(ds, &wds[..], "{what}: block scales and sums");
}

/// cos and sin tables (`max_pos × hd/2`) as the CPU engine builds them, for base 10000.
fn rope_tables(hd: usize, max_pos: usize) -> (Vec<f32>, Vec<f32>) {
    let theta_scale = 10000f32.powf(-2.0 / hd as f32);
    let (mut cos, mut sin) = (Vec::new(), Vec::new());
    for pos in 0..max_pos {
        let mut theta = pos as f32;
        for _ in 0..hd / 2 {
            cos.push(theta.cos());
            sin.push(theta.sin());
            theta *= theta_scale;
        }
    }
    (cos, sin)
}

/// q and k rotated with the CPU engine's arithmetic (the same bits), bias added first, and k,
/// v written as f16 at each token's slot; other slots untouched.
fn rope_write_kv_matches_the_cpu_engine_bit_for_bit() {
    let mut rng = SmallRng::seed_from_u64(5);
    let (nh, nkv, hd) = (9usize, 3usize, 64usize);
    let half = hd / 2;
    let width = (nh + 2 * nkv) * hd;
    let kvd = nkv * hd;
    let max_pos = 64;
    let (mut cos, mut sin) = rope_tables(hd, max_pos);
    for neox in [false, true] {
        let t = 4;
        let mut qkv = randn(&mut rng, t * width, 1.0);
        let mut bias = randn(&mut rng, width, 0.1);
        let mut pos = vec![0i32, 5, 17, 63];
        let mut slot = vec![7i64, 0, 3, 12];
        let slots = 16;
        let mut kc = vec![0xffffu16; slots * kvd];
        let mut vc = vec![0xffffu16; slots * kvd];
        let mut want = qkv.clone();
        launch(
            "rope_write_kv",
            (t as u32, 1, 1),
            128,
            0,
            vec![
                p(&mut qkv),
                p(&mut bias),
                p(&mut kc),
                p(&mut vc),
                p(&mut pos),
                p(&mut slot),
                p(&mut cos),
                p(&mut sin),
                Arg::I32(nh as i32),
                Arg::I32(nkv as i32),
                Arg::I32(hd as i32),
                Arg::I32(neox as i32),
            ],
        );
        for i in 0..t {
            let row = &mut want[i * width..(i + 1) * width];
            row.iter_mut().zip(&bias).for_each(|(v, b)| *v += b);
            let (c, s) = (
                &cos[pos[i] as usize * half..][..half],
                &sin[pos[i] as usize * half..][..half],
            );
            for head in row[..(nh + nkv) * hd].chunks_exact_mut(hd) {
                if neox {
                    rotate_pairs(head, (0..half).map(|j| (j, j + half)), c, s);
                } else {
                    rotate_pairs(head, (0..half).map(|j| (2 * j, 2 * j + 1)), c, s);
                }
            }
        }
        assert_eq!(qkv, want, "q and k rotated (neox {neox})");
        for s in 0..slots {
            let token = slot.iter().position(|&x| x == s as i64);
            for d in 0..kvd {
                let (k, v) = (kc[s * kvd + d], vc[s * kvd + d]);
                match token {
                    Some(i) => {
                        assert_eq!(k, f16::from_f32(want[i * width + nh * hd + d]).to_bits());
                        assert_eq!(
                            v,
                            f16::from_f32(want[i * width + nh * hd + kvd + d]).to_bits()
                        );
                    }
                    None => assert_eq!((k, v), (0xffff, 0xffff), "slot {s} untouched"),
                }
            }
        }
    }
}

/// Decode and prefill tokens of two sequences over a shuffled block table, contexts shorter
/// than a tile, across a tile boundary and across a partition boundary (several partitions
/// merged by `attention_reduce`), against exact attention in f64 and the CPU engine's kernel:
/// the default model's heads (3 query heads per KV head of 64), and blocks with warps that
/// only load (one query head of 128; two of 256).
fn paged_attention_matches_exact_attention_and_the_cpu_kernel() {
    for (nh, nkv, hd) in [(9, 3, 64), (4, 4, 128), (2, 1, 256)] {
        paged_attention_case(nh, nkv, hd);
    }
}

fn paged_attention_case(nh: usize, nkv: usize, hd: usize) {
    let mut rng = SmallRng::seed_from_u64(6);
    let bs = 16usize;
    let (qd, kvd, width) = (nh * hd, nkv * hd, (nh + 2 * nkv) * hd);
    let num_blocks = 80;
    let mut kc = f16_bits(&randn(&mut rng, num_blocks * bs * kvd, 1.0));
    let mut vc = f16_bits(&randn(&mut rng, num_blocks * bs * kvd, 1.0));
    // Sequence 0: blocks 0..50 shuffled; sequence 1: the rest.
    let mut blocks: Vec<i32> = (0..num_blocks as i32).collect();
    for i in (1..blocks.len()).rev() {
        blocks.swap(i, rng.random_range(0..=i));
    }
    let max_blocks = 50;
    let mut tables = vec![0i32; 2 * max_blocks];
    tables[..50].copy_from_slice(&blocks[..50]);
    tables[max_blocks..max_blocks + 30].copy_from_slice(&blocks[50..80]);
    // (sequence, context length) per token: decode, across a tile, past a partition, prefill rows.
    let tokens = [
        (0usize, 700usize),
        (1, 5),
        (1, 33),
        (0, 1),
        (0, 513),
        (1, 480),
    ];
    let t = tokens.len();
    let mut token_seq: Vec<i32> = tokens.iter().map(|x| x.0 as i32).collect();
    let mut ctx: Vec<i32> = tokens.iter().map(|x| x.1 as i32).collect();
    let mut qkv = randn(&mut rng, t * width, 1.0);
    let parts = tokens
        .iter()
        .map(|x| x.1)
        .max()
        .unwrap()
        .div_ceil(cuda::ATTENTION_PARTITION);
    let mut part_ml = vec![0f32; t * nh * parts * 2];
    let mut part_acc = vec![0f32; t * nh * parts * hd];
    let scale = 1.0 / (hd as f32).sqrt();
    let group = nh / nkv;
    let shape = AttnShape {
        t,
        nh,
        nkv,
        hd,
        bs,
        max_blocks,
        parts,
        part_len: cuda::ATTENTION_PARTITION,
    };
    attention_partial(
        shape,
        [
            p(&mut qkv),
            p(&mut kc),
            p(&mut vc),
            p(&mut tables),
            p(&mut token_seq),
            p(&mut ctx),
            p(&mut part_ml),
            p(&mut part_acc),
            NULL,
            NULL,
            NULL,
        ],
        NO_ROPE,
    );
    let mut out = vec![0f32; t * qd];
    let mut h16 = vec![0u16; t * qd];
    attention_reduce(
        shape,
        [
            p(&mut part_ml),
            p(&mut part_acc),
            p(&mut ctx),
            p(&mut out),
            p(&mut h16),
            NULL,
        ],
    );
    assert_f16_as_written("attention_reduce", &out, &h16);
    // One partition as long as the longest context: attention_partial writes the output
    // itself (no reduce), the same to rounding, and quantized as written.
    let mut one = vec![0f32; t * qd];
    let (mut q, mut ds) = (vec![0i8; t * qd], vec![0f32; t * qd / 16]);
    attention_partial(
        AttnShape {
            parts: 1,
            part_len: 704,
            ..shape
        },
        [
            p(&mut qkv),
            p(&mut kc),
            p(&mut vc),
            p(&mut tables),
            p(&mut token_seq),
            p(&mut ctx),
            p(&mut part_ml),
            p(&mut part_acc),
            p(&mut one),
            p(&mut q),
            p(&mut ds),
        ],
        NO_ROPE,
    );
    assert_close("one partition against several", &one, &out, 1e-5);
    assert_quantized_as_written("attention_partial", &mut one, &q, &ds);
    let kf: Vec<f32> = kc.iter().map(|&b| f16::from_bits(b).to_f32()).collect();
    let vf: Vec<f32> = vc.iter().map(|&b| f16::from_bits(b).to_f32()).collect();
    let shape = AttentionShape {
        num_heads: nh,
        num_kv_heads: nkv,
        head_dim: hd,
        block_size: bs,
    };
    let kh: Vec<f16> = kc.iter().map(|&b| f16::from_bits(b)).collect();
    let vh: Vec<f16> = vc.iter().map(|&b| f16::from_bits(b)).collect();
    for (i, &(seq, len)) in tokens.iter().enumerate() {
        let table: Vec<u32> = tables[seq * max_blocks..][..max_blocks]
            .iter()
            .map(|&b| b as u32)
            .collect();
        let q = &qkv[i * width..i * width + qd];
        for h in 0..nh {
            let g = h / group;
            let qh = &q[h * hd..(h + 1) * hd];
            let slot = |pos: usize| table[pos / bs] as usize * bs + pos % bs;
            let scores: Vec<f64> = (0..len)
                .map(|pos| {
                    let k = &kf[slot(pos) * kvd + g * hd..][..hd];
                    qh.iter()
                        .zip(k)
                        .map(|(&a, &b)| a as f64 * b as f64)
                        .sum::<f64>()
                        * scale as f64
                })
                .collect();
            let mx = scores.iter().cloned().fold(f64::MIN, f64::max);
            let ws: Vec<f64> = scores.iter().map(|s| (s - mx).exp()).collect();
            let total: f64 = ws.iter().sum();
            for d in 0..hd {
                let v: f64 = (0..len)
                    .map(|pos| ws[pos] * vf[slot(pos) * kvd + g * hd + d] as f64)
                    .sum::<f64>()
                    / total;
                let got = out[i * qd + h * hd + d];
                assert!(
                    (got as f64 - v).abs() < 1e-4,
                    "heads {nh}/{nkv} of {hd}, token {i} head {h} dim {d}: {got} vs exact {v}"
                );
            }
        }
        let mut cpu = vec![0f32; qd];
        paged_attention(
            &shape,
            q,
            0..nh,
            &kh,
            &vh,
            &table,
            len,
            &mut cpu,
            &mut AttentionScratch::default(),
        );
        assert_close(
            &format!("heads {nh}/{nkv} of {hd}, token {i} against the CPU kernel"),
            &out[i * qd..(i + 1) * qd],
            &cpu,
            2e-2,
        );
    }
}

/// Decode tokens of three sequences (contexts inside the first partition, across a tile, and
/// over four partitions of 32 positions), with a bias and without, interleaved and NeoX pairs:
/// `attention_partial` doing the rotation and the cache write itself (`rope` 1 or 2) gives the
/// bits that `rope_write_kv` followed by `attention_partial` (`rope` 0) gives: the same partial
/// results, the same merged output, the same keys and values in the cache, nothing else
/// written.
fn attention_that_rotates_and_writes_the_new_token_matches_rope_write_kv_then_attention() {
    let mut rng = SmallRng::seed_from_u64(11);
    let (nh, nkv, hd, bs) = (6usize, 2usize, 64usize, 16usize);
    let (kvd, width) = (nkv * hd, (nh + 2 * nkv) * hd);
    let max_pos = 128;
    let (mut cos, mut sin) = rope_tables(hd, max_pos);
    let num_blocks = 24;
    let max_blocks = 8;
    // Sequence i owns blocks 8i..8i+8, in reverse order.
    let mut tables: Vec<i32> = (0..3)
        .flat_map(|s| (0..max_blocks as i32).rev().map(move |b| 8 * s + b))
        .collect();
    let lens = [9usize, 40, 100];
    let t = lens.len();
    let mut token_seq: Vec<i32> = (0..t as i32).collect();
    let mut ctx: Vec<i32> = lens.iter().map(|&l| l as i32).collect();
    let mut pos: Vec<i32> = lens.iter().map(|&l| l as i32 - 1).collect();
    let mut slot: Vec<i64> = (0..t)
        .map(|i| {
            let p = lens[i] - 1;
            (tables[i * max_blocks + p / bs] as usize * bs + p % bs) as i64
        })
        .collect();
    // 32 positions a partition: the new position is in the first tile of its partition; 64:
    // in the second one for two of the three lengths (the kernel loads the first tile before
    // it writes the new position, and that position apart after).
    for part_len in [32usize, 64] {
        let parts = lens.iter().max().unwrap().div_ceil(part_len);
        let shape = AttnShape {
            t,
            nh,
            nkv,
            hd,
            bs,
            max_blocks,
            parts,
            part_len,
        };
        for (neox, with_bias) in [(false, true), (true, false), (false, false)] {
            let qkv = randn(&mut rng, t * width, 1.0);
            let mut bias = randn(&mut rng, width, 0.2);
            let kc0 = f16_bits(&randn(&mut rng, num_blocks * bs * kvd, 1.0));
            let vc0 = f16_bits(&randn(&mut rng, num_blocks * bs * kvd, 1.0));
            // Both ways: (output, partial results, caches).
            let mut results = Vec::new();
            for fused in [false, true] {
                let (mut qkv, mut kc, mut vc) = (qkv.clone(), kc0.clone(), vc0.clone());
                let bias_arg = |b: &mut Vec<f32>| if with_bias { p(b) } else { NULL };
                if !fused {
                    launch(
                        "rope_write_kv",
                        (t as u32, 1, 1),
                        128,
                        0,
                        vec![
                            p(&mut qkv),
                            bias_arg(&mut bias),
                            p(&mut kc),
                            p(&mut vc),
                            p(&mut pos),
                            p(&mut slot),
                            p(&mut cos),
                            p(&mut sin),
                            Arg::I32(nh as i32),
                            Arg::I32(nkv as i32),
                            Arg::I32(hd as i32),
                            Arg::I32(neox as i32),
                        ],
                    );
                }
                let mut part_ml = vec![0f32; t * nh * parts * 2];
                let mut part_acc = vec![0f32; t * nh * parts * hd];
                let mut out = vec![0f32; t * nh * hd];
                let rope = if fused {
                    [
                        bias_arg(&mut bias),
                        p(&mut pos),
                        p(&mut slot),
                        p(&mut cos),
                        p(&mut sin),
                        Arg::I32(1 + neox as i32),
                    ]
                } else {
                    NO_ROPE
                };
                attention_partial(
                    shape,
                    [
                        p(&mut qkv),
                        p(&mut kc),
                        p(&mut vc),
                        p(&mut tables),
                        p(&mut token_seq),
                        p(&mut ctx),
                        p(&mut part_ml),
                        p(&mut part_acc),
                        p(&mut out),
                        NULL,
                        NULL,
                    ],
                    rope,
                );
                attention_reduce(
                    shape,
                    [
                        p(&mut part_ml),
                        p(&mut part_acc),
                        p(&mut ctx),
                        p(&mut out),
                        NULL,
                        NULL,
                    ],
                );
                results.push((out, part_ml, part_acc, kc, vc));
            }
            let what = format!("partition {part_len}, neox {neox}, bias {with_bias}");
            let (a, b) = (&results[0], &results[1]);
            assert!(a.0.iter().all(|v| v.is_finite()), "{what}");
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&a.0), bits(&b.0), "{what}: the output");
            assert_eq!(bits(&a.1), bits(&b.1), "{what}: partial maxima and sums");
            assert_eq!(bits(&a.2), bits(&b.2), "{what}: partial outputs");
            assert_eq!(a.3, b.3, "{what}: the key cache");
            assert_eq!(a.4, b.4, "{what}: the value cache");
            // The new tokens' keys were written (and nothing else changed).
            let changed = (0..kc0.len()).filter(|&i| a.3[i] != kc0[i]).count();
            assert!(
                changed > 0 && changed <= t * kvd,
                "{what}: {changed} key halves changed"
            );
        }
    }
}

fn argmax_logprob_picks_the_first_maximum_and_its_log_probability() {
    let mut rng = SmallRng::seed_from_u64(7);
    let vocab = 49152 + 17;
    let rows = 3;
    let mut logits = randn(&mut rng, rows * vocab, 10.0);
    logits[vocab + 100] = 50.0; // row 1: a tie, the lower id wins
    logits[vocab + 40000] = 50.0;
    logits[2 * vocab + vocab - 1] = 60.0; // row 2: the last id
    let mut best = vec![0i32; rows];
    let mut logprob = vec![0f32; rows];
    launch(
        "argmax_logprob",
        (rows as u32, 1, 1),
        1024,
        0,
        vec![
            p(&mut logits),
            Arg::I32(vocab as i32),
            p(&mut best),
            p(&mut logprob),
        ],
    );
    for r in 0..rows {
        let row = &logits[r * vocab..(r + 1) * vocab];
        let mut want = 0;
        for (i, &v) in row.iter().enumerate() {
            if v > row[want] {
                want = i;
            }
        }
        assert_eq!(best[r] as usize, want, "row {r}");
        let mx = row[want] as f64;
        let lse = mx + row.iter().map(|&v| (v as f64 - mx).exp()).sum::<f64>().ln();
        let want_lp = mx - lse;
        assert!(
            (logprob[r] as f64 - want_lp).abs() < 1e-4 * lse.abs().max(1.0),
            "row {r}: {} vs {want_lp}",
            logprob[r]
        );
    }
    assert_eq!(best[1], 100);
    assert_eq!(best[2] as usize, vocab - 1);
}

/// `sample_rows` against the CPU sampler (`engine::sampling::sample`) on the same rows and
/// parameters (`device_pick` turns them into the kernel's numbers): temperature alone (a draw
/// in id order), top_k, top_p, min_p and all three (draws in probability order), greedy with a
/// repetition penalty, frequency and presence penalties, logit bias with min_tokens holding
/// back EOS; each also under grammar masks (a third of the vocabulary, the end-of-sequence
/// ids only, nothing). Logits are rounded to quarters so that many tie, and some rows are
/// wider than the block. The same token, and the raw log-probability within 1e-4.
fn sample_rows_picks_the_cpu_samplers_tokens() {
    use engine::sampling::{device_pick, sample, RowPick, SampleContext, SamplingParams};
    use engine::structured::Mask;
    let mut rng = SmallRng::seed_from_u64(9);
    let base = SamplingParams {
        logprobs: Some(0),
        ..SamplingParams::default()
    };
    let with = |f: &dyn Fn(&mut SamplingParams)| {
        let mut p = base.clone();
        f(&mut p);
        p
    };
    let params = [
        with(&|p| p.temperature = 0.7),
        with(&|p| (p.top_k, p.logprobs) = (5, Some(5))),
        with(&|p| p.top_p = 0.9),
        with(&|p| p.min_p = 0.1),
        with(&|p| {
            (p.temperature, p.top_k, p.top_p, p.min_p) = (1.3, 40, 0.83, 0.02);
            p.logprobs = Some(engine::sampling::MAX_LOGPROBS);
        }),
        with(&|p| (p.temperature, p.repetition_penalty, p.logprobs) = (0.0, 1.3, Some(3))),
        with(&|p| (p.frequency_penalty, p.presence_penalty) = (0.5, 0.25)),
        with(&|p| {
            p.logit_bias = vec![(3, 5.0), (7, -100.0), (1, 2.5)];
            p.min_tokens = 9;
            p.stop_token_ids = vec![4];
        }),
    ];
    let prompt: Vec<u32> = (0..40).map(|i| (i * 7) % 300).collect();
    let output: Vec<u32> = vec![3, 3, 5, 11, 3, 250, 5];
    let eos = [2u32, 7];
    let mut rows = Vec::new(); // (logits, params, seed, mask)
    for (pi, prm) in params.iter().enumerate() {
        for seed in 0..9u64 {
            let vocab = if seed == 5 || seed == 8 { 3000 } else { 300 };
            let logits: Vec<f32> = randn(&mut rng, vocab, 4.0)
                .into_iter()
                .map(|v| (v * 4.0).round() / 4.0)
                .collect();
            let mask = match seed {
                6 | 8 => {
                    let some: Vec<u32> = (0..vocab as u32)
                        .filter(|_| rng.random::<f32>() < 0.3)
                        .collect();
                    Some(Mask::from_tokens(vocab, &some, &eos))
                }
                // Only end-of-sequence ids: under min_tokens every allowed logit is -inf and
                // the grammar's first allowed token is taken.
                7 if pi % 2 == 1 => Some(Mask::from_tokens(vocab, &eos[..1], &eos)),
                7 => Some(Mask::from_tokens(vocab, &[], &eos)),
                _ => None,
            };
            rows.push((logits, prm.clone(), seed * 31 + pi as u64, mask));
        }
    }
    // Each vocabulary size in one launch.
    for vocab in [300usize, 3000] {
        let batch: Vec<_> = rows.iter().filter(|r| r.0.len() == vocab).collect();
        let n = batch.len();
        let mut plans = Vec::new();
        let mut logits = Vec::new();
        let mut want = Vec::new();
        for (j, (l, prm, seed, mask)) in batch.iter().enumerate() {
            let ctx = SampleContext {
                prompt_tokens: &prompt,
                output_tokens: &output,
                eos_token_ids: &eos,
                seed: *seed,
                mask: mask.as_ref(),
            };
            match device_pick(prm, &ctx, vocab, false) {
                RowPick::Sample(s) => {
                    assert_eq!(s.masked, mask.is_some());
                    plans.push(s)
                }
                other => panic!("row {j}: {other:?}"),
            };
            logits.extend_from_slice(l);
            want.push(sample(&mut l.clone(), prm, &ctx));
        }
        let rows: Vec<_> = plans
            .iter()
            .zip(&batch)
            .enumerate()
            .map(|(j, (plan, row))| (j, plan, row.3.as_ref()))
            .collect();
        let SampleArrays {
            mut meta,
            mut fparams,
            mut tok,
            mut val,
            mut words,
        } = SampleArrays::new(&rows, vocab);
        tok.push(0); // never empty
        val.extend([0.0; 3]);
        let mut work = vec![0f32; n * vocab];
        let mut token = vec![0i32; n];
        let mut logprob = vec![0f32; n];
        let mut top_tok = vec![-2i32; n * cuda::TOP_LOGPROBS];
        let mut top_lp = vec![0f32; n * cuda::TOP_LOGPROBS];
        launch(
            "sample_rows",
            (n as u32, 1, 1),
            1024,
            0,
            vec![
                p(&mut logits),
                Arg::I32(vocab as i32),
                p(&mut meta),
                p(&mut fparams),
                p(&mut tok),
                p(&mut val),
                p(&mut words),
                p(&mut work),
                p(&mut token),
                p(&mut logprob),
                p(&mut top_tok),
                p(&mut top_lp),
            ],
        );
        for (j, w) in want.iter().enumerate() {
            let (_, prm, seed, mask) = batch[j];
            assert_eq!(
                token[j] as u32,
                w.token,
                "vocab {vocab}, row {j} (seed {seed}, masked: {}, {prm:?})",
                mask.is_some()
            );
            assert!(
                (logprob[j] - w.logprob).abs() <= 1e-4,
                "vocab {vocab}, row {j}: logprob {} against {}",
                logprob[j],
                w.logprob
            );
            // The raw distribution's most likely tokens, ties in id order; nothing written
            // past the row's list.
            let k = prm.logprobs.unwrap_or(0);
            let row = j * cuda::TOP_LOGPROBS..(j + 1) * cuda::TOP_LOGPROBS;
            let (ids, lps) = (&top_tok[row.clone()], &top_lp[row]);
            let want_ids: Vec<i32> = w.top_logprobs.iter().map(|t| t.0 as i32).collect();
            assert_eq!(&ids[..k], want_ids, "vocab {vocab}, row {j}: top {k}");
            assert!(ids[k..].iter().all(|&t| t == -2), "vocab {vocab}, row {j}");
            for (got, (_, want)) in lps.iter().zip(&w.top_logprobs) {
                assert!(
                    (got - want).abs() <= 1e-4,
                    "vocab {vocab}, row {j}: {got} vs {want}"
                );
            }
        }
    }
}

/// Every thread of every block runs exactly once: nothing skipped, nothing repeated.
fn every_thread_of_every_block_runs_once() {
    let n = 3 * 256 + 100;
    let mut x = vec![0f32; n];
    let mut y = vec![1f32; n];
    launch(
        "add_inplace",
        (n.div_ceil(256) as u32, 1, 1),
        256,
        0,
        vec![p(&mut x), p(&mut y), Arg::I64(n as i64)],
    );
    assert!(x.iter().all(|&v| v == 1.0));
}
