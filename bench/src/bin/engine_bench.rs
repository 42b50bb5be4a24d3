//! Engine throughput on the default model, printed as one JSON object: prefill tokens/s of a
//! 512-token prompt, single-stream decode tokens/s, and aggregate decode tokens/s with 4, 16 and
//! 32 sequences per step.
//!
//! Side by side in the same run, alternating rounds (at least 3): llama.cpp's `llama-bench`
//! (pp512 and tg128) on the same GGUF with the same thread count, found as
//! `starfire_bench::llama_cpp` describes; the medians of both sides and their ratios are
//! printed with the CPU's model and flags. Without a llama.cpp build it says so and prints no
//! ratio. A second baseline, candle's own quantized matmul on the same weights
//! (`STARFIRE_KERNELS=candle`, a child process), runs once unless `--no-baseline`.
//!
//! Usage: engine_bench [--quick] [--rounds N] [--no-baseline] [--llama-cpp DIR]

use std::time::Instant;

use engine::{Model, SequenceStep, StepBatch};
use serde_json::json;
use starfire_bench::llama_cpp::{self, median, LlamaCpp};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let rounds: usize = match flag("--rounds") {
        Some(r) => r.parse()?,
        None if quick => 1,
        None => 3,
    };
    let child = std::env::var_os("STARFIRE_KERNELS").is_some();
    let path = engine::model_cache::find_default_model()?;
    let model = Model::load(&path)?;
    let decode_tokens = if quick { 16 } else { 128 };
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let llama = if child {
        Err("not run in the baseline's child process".to_owned())
    } else {
        LlamaCpp::find(flag("--llama-cpp").as_deref())
    };

    let mut ours = Vec::new();
    let mut theirs: Vec<(f64, f64)> = Vec::new();
    let mut llama_error = llama.as_ref().err().cloned();
    for round in 0..rounds {
        // Alternate which side goes first, so slow drift on a shared machine hits both.
        for llama_turn in [round % 2 == 1, round % 2 == 0] {
            if llama_turn {
                run_llama(
                    &llama,
                    &path,
                    threads,
                    decode_tokens,
                    &mut theirs,
                    &mut llama_error,
                );
            } else {
                ours.push(measure(&model, decode_tokens, quick)?);
            }
        }
    }
    let ours_median = |key: &str| {
        median(
            &ours
                .iter()
                .filter_map(|r| r[key].as_f64())
                .collect::<Vec<_>>(),
        )
        .map(round)
    };
    let keys = [
        "prefill_512_tok_s",
        "decode_1_tok_s",
        "decode_4_tok_s",
        "decode_16_tok_s",
        "decode_32_tok_s",
    ];
    let starfire_medians: serde_json::Map<String, serde_json::Value> = keys
        .iter()
        .map(|k| (k.to_string(), json!(ours_median(k))))
        .collect();
    if child {
        println!("{}", json!({ "starfire": starfire_medians }));
        return Ok(());
    }

    let baseline = if args.iter().any(|a| a == "--no-baseline") {
        serde_json::Value::Null
    } else {
        let out = std::process::Command::new(&args[0])
            .args(["--rounds", "1"])
            .args(args[1..].iter().filter(|a| *a == "--quick"))
            .env("STARFIRE_KERNELS", "candle")
            .output()?;
        serde_json::from_slice::<serde_json::Value>(&out.stdout)
            .map(|v| v["starfire"].clone())
            .unwrap_or(serde_json::Value::Null)
    };
    let pp = median(&theirs.iter().map(|r| r.0).collect::<Vec<_>>());
    let tg = median(&theirs.iter().map(|r| r.1).collect::<Vec<_>>());
    let ratio = |ours: Option<f64>, theirs: Option<f64>| {
        ours.zip(theirs)
            .map(|(a, b)| (a / b * 1000.0).round() / 1000.0)
    };
    let report = json!({
        "model": model.name,
        "machine": llama_cpp::machine(),
        "rounds": rounds,
        "starfire": starfire_medians,
        "starfire_rounds": ours,
        "llama_cpp": match &llama {
            Ok(l) if llama_error.is_none() => json!({
                "bin": l.bin,
                "command": format!("llama-bench -m MODEL -t {threads} -p 512 -n {decode_tokens} -r 1 -o json"),
                "pp512_tok_s": pp.map(round),
                "tg_tok_s": tg.map(round),
                "rounds": theirs.iter().map(|r| json!({"pp512_tok_s": round(r.0), "tg_tok_s": round(r.1)})).collect::<Vec<_>>(),
            }),
            _ => json!({ "unavailable": llama_error }),
        },
        "ratio_vs_llama_cpp": if llama_error.is_none() {
            json!({
                "prefill_512": ratio(ours_median("prefill_512_tok_s"), pp),
                "decode_1": ratio(ours_median("decode_1_tok_s"), tg),
            })
        } else {
            serde_json::Value::Null
        },
        "baseline_candle_qmatmul": baseline,
    });
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}

/// One llama-bench round (pp512, and tg over `gen` tokens as ours), recorded or its error kept.
fn run_llama(
    llama: &Result<LlamaCpp, String>,
    model: &std::path::Path,
    threads: usize,
    gen: usize,
    out: &mut Vec<(f64, f64)>,
    error: &mut Option<String>,
) {
    let Ok(l) = llama else { return };
    if error.is_some() {
        return;
    }
    match l.bench(model, threads, 512, gen) {
        Ok(r) => out.push(r),
        Err(e) => *error = Some(e.to_string()),
    }
}

fn measure(model: &Model, decode_tokens: usize, quick: bool) -> anyhow::Result<serde_json::Value> {
    let bs = 16;
    let prompts = starfire_bench::distinct_prompts(&model.tokenizer, 32, 512);

    // Prefill: one 512-token prompt in one step (best of a few runs).
    let mut best = f64::MAX;
    for _ in 0..if quick { 1 } else { 3 } {
        let mut cache = model.new_kv_cache(bs, 512 / bs)?;
        let table: Vec<u32> = (0..(512 / bs) as u32).collect();
        let t0 = Instant::now();
        model.step(
            &mut cache,
            &StepBatch {
                seqs: vec![SequenceStep::contiguous(
                    prompts[0].clone(),
                    0,
                    table,
                    bs,
                    true,
                )],
            },
        )?;
        best = best.min(t0.elapsed().as_secs_f64());
    }
    let prefill = 512.0 / best;

    let mut result = serde_json::Map::new();
    result.insert("prefill_512_tok_s".into(), json!(round(prefill)));
    for &n in &[1usize, 4, 16, 32] {
        let tps = decode_throughput(model, &prompts[..n], 32, decode_tokens)?;
        result.insert(format!("decode_{n}_tok_s"), json!(round(tps)));
    }
    Ok(serde_json::Value::Object(result))
}

/// `n` sequences, each prefilled with a `prompt_len`-token prompt, then decoded together for
/// `steps` steps; returns generated tokens per second over the decode steps.
fn decode_throughput(
    model: &Model,
    prompts: &[Vec<u32>],
    prompt_len: usize,
    steps: usize,
) -> anyhow::Result<f64> {
    let bs = 16;
    let per_seq = (prompt_len + steps + 1).div_ceil(bs);
    let mut cache = model.new_kv_cache(bs, per_seq * prompts.len())?;
    let tables: Vec<Vec<u32>> = (0..prompts.len())
        .map(|i| ((i * per_seq) as u32..((i + 1) * per_seq) as u32).collect())
        .collect();
    let prefill = StepBatch {
        seqs: prompts
            .iter()
            .zip(&tables)
            .map(|(p, t)| {
                SequenceStep::contiguous(p[..prompt_len].to_vec(), 0, t.clone(), bs, true)
            })
            .collect(),
    };
    let mut logits = model.step(&mut cache, &prefill)?;
    let t0 = Instant::now();
    for s in 0..steps {
        let seqs = logits
            .iter()
            .zip(&tables)
            .map(|(l, t)| {
                SequenceStep::contiguous(
                    vec![engine::sampling::argmax(l)],
                    prompt_len + s,
                    t.clone(),
                    bs,
                    true,
                )
            })
            .collect();
        logits = model.step(&mut cache, &StepBatch { seqs })?;
    }
    Ok((steps * prompts.len()) as f64 / t0.elapsed().as_secs_f64())
}

fn round(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}
