//! The real engine behind the scheduler's `EngineLoop` (no HTTP): closed-loop clients at 1, 4,
//! 16 and 64 concurrent requests of 128 output tokens with distinct prompts. Prints one JSON
//! object: aggregate output tokens/s, TTFT and inter-token latency p50/p99 per concurrency;
//! the 1-client run is the in-run baseline. The side-by-side with llama.cpp's server over
//! HTTP is `http_bench --llama-server`.
//!
//! Usage: serving_bench [--quick] [--levels 1,4,16,64] [--max-num-batched-tokens N]

use std::sync::Arc;

use engine::{Model, SamplingParams};
use scheduler::load::run_closed_loop;
use scheduler::model_executor::{config_for_model, spawn_engine};
use scheduler::{NewRequest, SchedulerConfig};
use serde_json::json;

/// Tokens per step, as `http_bench` runs the scheduler (so the two benchmarks' figures compare):
/// small enough that new requests get their first token soon, large enough to keep the
/// matrix products efficient.
const DEFAULT_BATCHED_TOKENS: usize = 512;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let budget: usize = flag("--max-num-batched-tokens")
        .map(|v| v.parse())
        .transpose()?
        .unwrap_or(DEFAULT_BATCHED_TOKENS);
    let model = Arc::new(Model::load(&engine::model_cache::find_default_model()?)?);
    let output_tokens = if quick { 16 } else { 128 };
    let levels: Vec<usize> = match flag("--levels") {
        Some(l) => l.split(',').map(str::parse).collect::<Result<_, _>>()?,
        None if quick => vec![1, 4],
        None => vec![1, 4, 16, 64],
    };
    let prompts = starfire_bench::distinct_prompts(&model.tokenizer, 64 * 2, 48);

    let base = SchedulerConfig {
        max_num_seqs: 64,
        max_num_batched_tokens: budget,
        ..SchedulerConfig::default()
    };
    let config = config_for_model(&model, base, 512 << 20);
    let engine = spawn_engine(&model, config)?;

    let mut runs = Vec::new();
    for &concurrency in &levels {
        let report = run_closed_loop(&engine, concurrency, 1, |client, i| {
            let params = SamplingParams {
                ignore_eos: true,
                ..SamplingParams::greedy(output_tokens)
            };
            let prompt = prompts[(client * 2 + i) % prompts.len()].clone();
            NewRequest::new(
                format!("c{concurrency}-{client}-{i}"),
                "bench",
                prompt,
                params,
            )
        });
        runs.push(serde_json::from_str::<serde_json::Value>(
            &report.to_json(),
        )?);
    }
    engine.shutdown();

    let at = |c: u64, key: &str| {
        runs.iter()
            .find(|r| r["concurrency"] == c)
            .and_then(|r| r[key].as_f64())
    };
    let report = json!({
        "model": model.name,
        "output_tokens_per_request": output_tokens,
        "max_num_batched_tokens": budget,
        "runs": runs,
        "machine": starfire_bench::llama_cpp::machine(),
        "speedup_vs_1_client": {
            "4": at(4, "output_tokens_per_second").zip(at(1, "output_tokens_per_second")).map(|(a, b)| a / b),
            "16": at(16, "output_tokens_per_second").zip(at(1, "output_tokens_per_second")).map(|(a, b)| a / b),
        },
    });
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}
