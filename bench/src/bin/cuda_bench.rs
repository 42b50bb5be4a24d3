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
use cudarc::driver::CudaStream;
use engine::cuda::device::{bytes_of, CudaDevice, Device, KArg, Launch};
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
    let dev = CudaDevice::open(0)?;
    let stream = dev.stream.clone();
    let (major, minor) = dev.ctx.compute_capability()?;

    // The baseline: copies of a buffer large enough to leave the caches behind.
    let copy_bytes = (a.rows * a.cols / 2).max(64 << 20);
    let src = dev.alloc(copy_bytes)?;
    let mut dst = dev.alloc(copy_bytes)?;
    let copy_ms = time_ms(&stream, a.rounds, a.iters, || {
        stream.memcpy_dtod(&src, &mut dst)?;
        Ok(())
    })?;
    let copy_gbs = 2.0 * copy_bytes as f64 / (copy_ms * 1e6);
    drop((src, dst));

    let (rows, cols) = (a.rows, a.cols);
    let nb = rows * cols / 32;
    // Q4_1: 16 bytes of quants and a packed (d, m) f16 pair per block; Q8_0: 32 bytes and an
    // f16 d. Scales kept small.
    let q4_scales: Vec<u32> = bytes(nb, 2)
        .iter()
        .map(|&b| {
            let d = half::f16::from_f32(0.001 + b as f32 * 1e-5).to_bits() as u32;
            d | (half::f16::from_f32(-0.01).to_bits() as u32) << 16
        })
        .collect();
    let q8_scales: Vec<u16> = (0..nb)
        .map(|i| half::f16::from_f32(0.001 + (i % 7) as f32 * 1e-4).to_bits())
        .collect();
    // (kernel, quants, scales, bytes read per block)
    let weights = [
        (
            "matvec_q4_1",
            dev.upload(&bytes(nb * 16, 1))?,
            dev.upload(bytes_of(&q4_scales))?,
            20,
        ),
        (
            "matvec_q8_0",
            dev.upload(&bytes(nb * 32, 3))?,
            dev.upload(bytes_of(&q8_scales))?,
            34,
        ),
    ];

    let mut results = Vec::new();
    for ntok in [1usize, 8] {
        let x_host: Vec<f32> = bytes(ntok * cols, 4)
            .iter()
            .map(|&b| b as f32 / 128.0 - 1.0)
            .collect();
        let x = dev.upload(bytes_of(&x_host))?;
        let xq = dev.alloc(ntok * cols)?;
        let xds = dev.alloc(4 * 2 * ntok * cols / 32)?;
        let nblocks = ntok * cols / 32;
        dev.launch(
            "quantize_q8_1",
            Launch::new(((nblocks as u32).div_ceil(8), 1, 1), 256),
            &[
                KArg::Buf(&x),
                KArg::Buf(&xq),
                KArg::Buf(&xds),
                KArg::I32(nblocks as i32),
            ],
        )?;
        let y = dev.alloc(4 * ntok * rows)?;
        let mv = Launch::new((rows.div_ceil(4) as u32, 1, 1), 128);
        let mut run = json!({ "tokens": ntok });
        for (kernel, qs, scales, block_bytes) in &weights {
            let ms = time_ms(&stream, a.rounds, a.iters, || {
                dev.launch(
                    kernel,
                    mv,
                    &[
                        KArg::Buf(qs),
                        KArg::Buf(scales),
                        KArg::Buf(&xq),
                        KArg::Buf(&xds),
                        KArg::Buf(&y),
                        KArg::I32(rows as i32),
                        KArg::I32(cols as i32),
                        KArg::I32(ntok as i32),
                    ],
                )?;
                Ok(())
            })?;
            let gbs = (nb * block_bytes) as f64 / (ms * 1e6);
            run[kernel.trim_start_matches("matvec_")] =
                json!({"ms": ms, "weight_gb_per_s": gbs, "fraction_of_copy": gbs / copy_gbs});
        }
        results.push(run);
    }
    let q4_one = results[0]["q4_1"]["fraction_of_copy"]
        .as_f64()
        .unwrap_or(0.0);
    Ok(json!({
        "device": dev.ctx.name()?,
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
