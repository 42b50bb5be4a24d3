//! Engine throughput on the default model, printed as one JSON object:
//! prefill tokens/s of a 512-token prompt, single-stream decode tokens/s, and aggregate decode
//! tokens/s with 4, 16 and 32 sequences per step. The baseline in the same run is candle's own
//! quantized matmul on the same weights (`STARFIRE_KERNELS=candle`, run as a child process);
//! llama.cpp's figures on this machine class (tests/golden/README.md) are printed for reference.
//!
//! Usage: engine_bench [--quick] [--no-baseline]

use std::time::Instant;

use engine::{Model, SequenceStep, StepBatch};
use serde_json::json;

const LLAMA_CPP_PP512: f64 = 180.0;
const LLAMA_CPP_TG128: f64 = 68.0;
const LLAMA_SERVER_16_CONCURRENT: f64 = 102.0;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let path = engine::model_cache::find_default_model()?;
    let model = Model::load(&path)?;
    let decode_tokens = if quick { 16 } else { 128 };
    let ours = measure(&model, decode_tokens, quick)?;

    let baseline = if args.iter().any(|a| a == "--no-baseline")
        || std::env::var_os("STARFIRE_KERNELS").is_some()
    {
        serde_json::Value::Null
    } else {
        let out = std::process::Command::new(&args[0])
            .args(args[1..].iter().filter(|a| *a != "--no-baseline"))
            .arg("--no-baseline")
            .env("STARFIRE_KERNELS", "candle")
            .output()?;
        serde_json::from_slice::<serde_json::Value>(&out.stdout)
            .map(|v| v["starfire"].clone())
            .unwrap_or(serde_json::Value::Null)
    };
    let ratio = |key: &str, reference: f64| ours[key].as_f64().map(|v| v / reference);
    let report = json!({
        "model": model.name,
        "threads": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "starfire": ours,
        "baseline_candle_qmatmul": baseline,
        "llama_cpp_reference": {
            "prefill_512_tok_s": LLAMA_CPP_PP512,
            "decode_1_tok_s": LLAMA_CPP_TG128,
            "server_16_concurrent_tok_s": LLAMA_SERVER_16_CONCURRENT,
        },
        "ratio_vs_llama_cpp": {
            "prefill_512": ratio("prefill_512_tok_s", LLAMA_CPP_PP512),
            "decode_1": ratio("decode_1_tok_s", LLAMA_CPP_TG128),
            "decode_16_vs_server_16": ratio("decode_16_tok_s", LLAMA_SERVER_16_CONCURRENT),
        },
    });
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
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
