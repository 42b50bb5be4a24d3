//! What structured outputs cost: 16 concurrent streams through the scheduler and the real
//! engine, half of them under a JSON schema, against all 16 without one, in alternating rounds
//! of the same run. Every stream decodes the same number of tokens (the unconstrained ones
//! with `ignore_eos`, the constrained ones under a schema longer than `max_tokens`), so each
//! stream's decode rate (tokens after the first over the time since the first) is comparable.
//! Also replays the constrained outputs through a fresh grammar to time the mask work per
//! token (what the engine runs beside each forward pass).
//!
//! Prints one JSON object: per round and as medians over the rounds, the mean per-stream
//! decode rate of the baseline's streams and of the mixed run's unconstrained and constrained
//! halves, their ratios to the baseline (targets: at least 0.95 and 0.85), and the mask time
//! per token (p50, p99).
//!
//! Usage: structured_bench [--quick] [--rounds N] [--streams N] [--tokens N]

use std::sync::Arc;
use std::time::Instant;

use engine::structured::{Constraint, StructuredOutput};
use engine::{Model, SamplingParams};
use scheduler::model_executor::{config_for_model, spawn_engine};
use scheduler::{EngineLoop, FinishReason, NewRequest, SchedulerConfig};
use serde_json::json;
use starfire_bench::percentile;

/// A JSON array of more short strings than any run's `max_tokens` can finish.
fn schema() -> StructuredOutput {
    StructuredOutput::JsonSchema {
        schema: json!({
            "type": "object",
            "properties": {
                "words": {"type": "array", "items": {"type": "string", "maxLength": 12},
                          "minItems": 64, "maxItems": 64}
            },
            "required": ["words"],
            "additionalProperties": false
        }),
    }
}

/// One stream's outcome.
struct Stream {
    constrained: bool,
    tokens: Vec<u32>,
    /// Tokens after the first, per second since the first.
    decode_rate: f64,
    failed: bool,
}

/// Runs `streams` requests at once; the first `constrained` of them under the schema.
fn run(
    engine: &EngineLoop,
    prompts: &[Vec<u32>],
    streams: usize,
    constrained: usize,
    tokens: usize,
    tag: &str,
) -> Vec<Stream> {
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..streams)
            .map(|i| {
                let prompt = prompts[i % prompts.len()].clone();
                let structured = i < constrained;
                s.spawn(move || {
                    let params = SamplingParams {
                        ignore_eos: !structured,
                        structured: structured.then(schema),
                        ..SamplingParams::greedy(tokens)
                    };
                    let req =
                        NewRequest::new(format!("{tag}-{i}"), format!("t{i}"), prompt, params);
                    let mut out = Stream {
                        constrained: structured,
                        tokens: Vec::new(),
                        decode_rate: 0.0,
                        failed: false,
                    };
                    let Ok(mut stream) = engine.submit_blocking(req) else {
                        out.failed = true;
                        return out;
                    };
                    let mut first: Option<(Instant, usize)> = None;
                    let mut last = Instant::now();
                    while let Some(d) = stream.blocking_recv() {
                        if !d.token_ids.is_empty() {
                            last = Instant::now();
                            first.get_or_insert((last, d.token_ids.len()));
                            out.tokens.extend(&d.token_ids);
                        }
                        if matches!(d.finish_reason, Some(FinishReason::Error(_))) {
                            out.failed = true;
                        }
                    }
                    if let Some((at, n)) = first {
                        let secs = (last - at).as_secs_f64();
                        if secs > 0.0 {
                            out.decode_rate = (out.tokens.len() - n) as f64 / secs;
                        }
                    }
                    out
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("client"))
            .collect()
    })
}

fn mean(v: impl Iterator<Item = f64>) -> f64 {
    let v: Vec<f64> = v.collect();
    if v.is_empty() {
        0.0
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    percentile(&mut v, 50.0)
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let flag = |name: &str, default: usize| -> anyhow::Result<usize> {
        Ok(match args.iter().position(|a| a == name) {
            Some(i) => args
                .get(i + 1)
                .ok_or_else(|| anyhow::anyhow!("{name} N"))?
                .parse()?,
            None => default,
        })
    };
    let rounds = flag("--rounds", if quick { 1 } else { 3 })?;
    let streams = flag("--streams", if quick { 4 } else { 16 })?;
    let tokens = flag("--tokens", if quick { 12 } else { 96 })?;
    let constrained = streams / 2;

    let model = Arc::new(Model::load(&engine::model_cache::find_default_model()?)?);
    let prompts = starfire_bench::distinct_prompts(&model.tokenizer, streams, 48);
    let base = SchedulerConfig {
        max_num_seqs: 64,
        max_num_batched_tokens: 256,
        ..SchedulerConfig::default()
    };
    let config = config_for_model(&model, base, 512 << 20);
    let engine = spawn_engine(&model, config)?;
    let grammars = model.tokenizer.grammars()?;
    // The first compile of the schema happens here, not inside the first timed round.
    grammars
        .check(&schema(), "schema")
        .map_err(|e| anyhow::anyhow!("{e}"))?;

    let mut per_round = Vec::new();
    let mut constrained_outputs: Vec<Vec<u32>> = Vec::new();
    let mut failed = 0;
    for round in 0..rounds {
        let baseline = run(&engine, &prompts, streams, 0, tokens, &format!("b{round}"));
        let mixed = run(
            &engine,
            &prompts,
            streams,
            constrained,
            tokens,
            &format!("m{round}"),
        );
        failed += baseline.iter().chain(&mixed).filter(|s| s.failed).count();
        let all = mean(baseline.iter().map(|s| s.decode_rate));
        let free = mean(
            mixed
                .iter()
                .filter(|s| !s.constrained)
                .map(|s| s.decode_rate),
        );
        let held = mean(
            mixed
                .iter()
                .filter(|s| s.constrained)
                .map(|s| s.decode_rate),
        );
        constrained_outputs.extend(
            mixed
                .into_iter()
                .filter(|s| s.constrained)
                .map(|s| s.tokens),
        );
        per_round.push(json!({
            "baseline_tokens_per_second_per_stream": all,
            "mixed_unconstrained_tokens_per_second_per_stream": free,
            "mixed_constrained_tokens_per_second_per_stream": held,
            "unconstrained_ratio": free / all,
            "constrained_ratio": held / all,
        }));
    }
    engine.shutdown();

    // The mask work of each constrained output, token by token, on a fresh grammar.
    let mut mask_us = Vec::new();
    let mut outputs_valid = true;
    for output in &constrained_outputs {
        let mut c: Constraint = grammars.constraint(&schema()).map_err(anyhow::Error::msg)?;
        for n in 0..=output.len() {
            let t = Instant::now();
            let ok = c.advance(&output[..n]).is_ok() && c.mask().is_ok();
            mask_us.push(t.elapsed().as_secs_f64() * 1e6);
            outputs_valid &= ok;
        }
    }
    let ratio = |key: &str| median(per_round.iter().map(|r| r[key].as_f64().unwrap()).collect());
    let report = json!({
        "model": model.name,
        "streams": streams,
        "constrained_streams": constrained,
        "tokens_per_stream": tokens,
        "rounds": per_round,
        "failed_requests": failed,
        "constrained_outputs_follow_the_grammar": outputs_valid,
        "median": {
            "unconstrained_ratio": ratio("unconstrained_ratio"),
            "constrained_ratio": ratio("constrained_ratio"),
        },
        "targets": {"unconstrained_ratio_at_least": 0.95, "constrained_ratio_at_least": 0.85},
        "mask_us_per_token": {
            "samples": mask_us.len(),
            "p50": percentile(&mut mask_us.clone(), 50.0),
            "p99": percentile(&mut mask_us, 99.0),
        },
    });
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}
