//! The CUDA kernels' speed against the GPU's own memory bandwidth, in one run: a
//! device-to-device copy (bytes read plus bytes written per second, the baseline), then the
//! quantized matrix-vector kernels over a `rows × cols` matrix (default 16384 × 16384) for 1
//! and 8 tokens, each as bytes of weights read per second and as a fraction of the copy's rate
//! (target for Q4_1 at one token: at least 0.70). Times are CUDA events around `--iters`
//! launches after warm-up launches; the median of `--rounds` rounds is reported.
//!
//! Prints one JSON object. On a machine without a GPU it prints the engine's error
//! ("no CUDA driver found; ...") and exits with status 2.
//!
//! Usage: cuda_bench [--quick] [--rows N] [--cols N] [--iters N] [--rounds N]

use std::sync::Arc;

use cudarc::driver::sys::CUevent_flags;
use cudarc::driver::{CudaSlice, CudaStream, LaunchConfig, PushKernelArg};
use engine::cuda;
use serde_json::json;

struct Args {
    rows: usize,
    cols: usize,
    iters: usize,
    rounds: usize,
}

fn parse() -> anyhow::Result<Args> {
    let mut a = Args {
        rows: 16384,
        cols: 16384,
        iters: 50,
        rounds: 5,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut num = |name: &str| -> anyhow::Result<usize> {
            it.next()
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| anyhow::anyhow!("{name} needs a number"))
        };
        match arg.as_str() {
            "--quick" => {
                a.rows = 1024;
                a.cols = 1024;
                a.iters = 5;
                a.rounds = 2;
            }
            "--rows" => a.rows = num("--rows")?,
            "--cols" => a.cols = num("--cols")?,
            "--iters" => a.iters = num("--iters")?,
            "--rounds" => a.rounds = num("--rounds")?,
            other => anyhow::bail!("unknown argument {other}"),
        }
    }
    anyhow::ensure!(
        a.cols.is_multiple_of(32) && a.rows > 0,
        "--cols must be a multiple of 32"
    );
    Ok(a)
}

/// Median milliseconds per launch of `f` over `rounds` rounds of `iters` launches.
fn time_ms(
    stream: &Arc<CudaStream>,
    rounds: usize,
    iters: usize,
    mut f: impl FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<f64> {
    for _ in 0..3 {
        f()?;
    }
    let mut per = Vec::new();
    for _ in 0..rounds {
        let start = stream.record_event(Some(CUevent_flags::CU_EVENT_DEFAULT))?;
        for _ in 0..iters {
            f()?;
        }
        let end = stream.record_event(Some(CUevent_flags::CU_EVENT_DEFAULT))?;
        end.synchronize()?;
        per.push(start.elapsed_ms(&end)? as f64 / iters as f64);
    }
    per.sort_by(|a, b| a.total_cmp(b));
    Ok(per[per.len() / 2])
}

/// Deterministic bytes (xorshift), so no two runs differ in what they read.
fn bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut s = seed | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 24) as u8
        })
        .collect()
}

fn run(a: &Args) -> anyhow::Result<serde_json::Value> {
    let ctx = cuda::open_device(0)?;
    let stream = ctx.default_stream();
    let (major, minor) = ctx.compute_capability()?;
    let module = cuda::load_kernels(&ctx)?;

    // The baseline: copies of a buffer large enough to leave the caches behind.
    let copy_bytes = (a.rows * a.cols / 2).max(64 << 20);
    let src: CudaSlice<u8> = stream.alloc_zeros(copy_bytes)?;
    let mut dst: CudaSlice<u8> = stream.alloc_zeros(copy_bytes)?;
    let copy_ms = time_ms(&stream, a.rounds, a.iters, || {
        stream.memcpy_dtod(&src, &mut dst)?;
        Ok(())
    })?;
    let copy_gbs = 2.0 * copy_bytes as f64 / (copy_ms * 1e6);
    drop((src, dst));

    let (rows, cols) = (a.rows, a.cols);
    let nb = rows * cols / 32;
    // Q4_1: 16 bytes of quants and a packed (d, m) f16 pair per block; scales kept small.
    let q4 = stream.clone_htod(&bytes(nb * 16, 1))?;
    let dm_host: Vec<u32> = bytes(nb, 2)
        .iter()
        .map(|&b| {
            let d = half::f16::from_f32(0.001 + b as f32 * 1e-5).to_bits() as u32;
            let m = half::f16::from_f32(-0.01).to_bits() as u32;
            d | m << 16
        })
        .collect();
    let dm = stream.clone_htod(&dm_host)?;
    let q8 = stream.clone_htod(&bytes(nb * 32, 3))?;
    let d8_host: Vec<u16> = (0..nb)
        .map(|i| half::f16::from_f32(0.001 + (i % 7) as f32 * 1e-4).to_bits())
        .collect();
    let d8 = stream.clone_htod(&d8_host)?;

    let quantize = module.load_function("quantize_q8_1")?;
    let mv_q4 = module.load_function("matvec_q4_1")?;
    let mv_q8 = module.load_function("matvec_q8_0")?;
    let mut results = Vec::new();
    for ntok in [1usize, 8] {
        let x_host: Vec<f32> = bytes(ntok * cols, 4)
            .iter()
            .map(|&b| b as f32 / 128.0 - 1.0)
            .collect();
        let x = stream.clone_htod(&x_host)?;
        let mut xq: CudaSlice<i8> = stream.alloc_zeros(ntok * cols)?;
        let mut xds: CudaSlice<f32> = stream.alloc_zeros(2 * ntok * cols / 32)?;
        let nblocks = (ntok * cols / 32) as i32;
        let mut b = stream.launch_builder(&quantize);
        b.arg(&x).arg(&mut xq).arg(&mut xds).arg(&nblocks);
        // SAFETY: the buffers are sized for `nblocks` blocks, as the kernel reads them.
        unsafe {
            b.launch(LaunchConfig {
                grid_dim: ((nblocks as u32).div_ceil(8), 1, 1),
                block_dim: (256, 1, 1),
                shared_mem_bytes: 0,
            })
        }?;
        let mut y: CudaSlice<f32> = stream.alloc_zeros(ntok * rows)?;
        let (r, c, t) = (rows as i32, cols as i32, ntok as i32);
        let cfg = LaunchConfig {
            grid_dim: (rows.div_ceil(4) as u32, 1, 1),
            block_dim: (128, 1, 1),
            shared_mem_bytes: 0,
        };
        let q4_ms = time_ms(&stream, a.rounds, a.iters, || {
            let mut b = stream.launch_builder(&mv_q4);
            b.arg(&q4)
                .arg(&dm)
                .arg(&xq)
                .arg(&xds)
                .arg(&mut y)
                .arg(&r)
                .arg(&c)
                .arg(&t);
            // SAFETY: weights `rows × cols`, activations `ntok × cols`, output `ntok × rows`.
            unsafe { b.launch(cfg) }?;
            Ok(())
        })?;
        let q8_ms = time_ms(&stream, a.rounds, a.iters, || {
            let mut b = stream.launch_builder(&mv_q8);
            b.arg(&q8)
                .arg(&d8)
                .arg(&xq)
                .arg(&xds)
                .arg(&mut y)
                .arg(&r)
                .arg(&c)
                .arg(&t);
            // SAFETY: as above.
            unsafe { b.launch(cfg) }?;
            Ok(())
        })?;
        let q4_bytes = (nb * 20) as f64;
        let q8_bytes = (nb * 34) as f64;
        let q4_gbs = q4_bytes / (q4_ms * 1e6);
        let q8_gbs = q8_bytes / (q8_ms * 1e6);
        results.push(json!({
            "tokens": ntok,
            "q4_1": {"ms": q4_ms, "weight_gb_per_s": q4_gbs, "fraction_of_copy": q4_gbs / copy_gbs},
            "q8_0": {"ms": q8_ms, "weight_gb_per_s": q8_gbs, "fraction_of_copy": q8_gbs / copy_gbs},
        }));
    }
    let q4_one = results[0]["q4_1"]["fraction_of_copy"]
        .as_f64()
        .unwrap_or(0.0);
    Ok(json!({
        "device": ctx.name()?,
        "compute_capability": format!("{major}.{minor}"),
        "matrix": {"rows": rows, "cols": cols},
        "iters": a.iters,
        "rounds": a.rounds,
        "copy": {"bytes": copy_bytes, "ms": copy_ms, "gb_per_s_read_plus_written": copy_gbs},
        "matvec": results,
        "target": {"q4_1_one_token_fraction_of_copy": 0.70, "met": q4_one >= 0.70},
    }))
}

fn main() {
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("cuda_bench: {e}");
            std::process::exit(64);
        }
    };
    match run(&args) {
        Ok(v) => println!("{}", serde_json::to_string_pretty(&v).expect("JSON")),
        Err(e) => {
            eprintln!("cuda_bench: {e}");
            std::process::exit(2);
        }
    }
}
