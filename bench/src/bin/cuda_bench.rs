//! The CUDA engine on a GPU, in one run:
//!
//! - `matvec`: the quantized matrix-vector kernels against the GPU's own memory bandwidth: a
//!   device-to-device copy (bytes read plus bytes written per second, the baseline), then the
//!   kernels over a `rows × cols` matrix (default 16384 × 16384) for 1, 8 and 64 tokens, in
//!   every shape the engine chooses from for that many tokens (`shapes`; the fastest, which
//!   the engine's timing at load would choose, heads each kind), each as bytes of weights read
//!   per second and as a fraction of the copy's rate (target for Q4_1 at one token: at least
//!   0.70). Times are CUDA events around `--iters` launches after a warm-up launch; the median
//!   of `--rounds` rounds is reported.
//! - `launch_floor`: the device's own cost of a launch, from 250 launches (a decode step's
//!   count) of a kernel that does nothing, in 1 block and in 144, kernel by kernel and as one
//!   graph, with and without overlapped launches: microseconds a launch, the floor under a
//!   decode step's time.
//! - `model`: a model of the default model's exact shapes (SmolLM2-135M: 30 layers, Q4_1
//!   layers, Q8_0 embeddings and output) with seeded random weights, made here (the real file
//!   is not needed): greedy tokens of the CPU engine and the CUDA engine on 20 prompts (each
//!   decode step fed the CPU's token, so one near-tie does not change what follows; a token
//!   may differ only where the CPU's top two logits are within 0.1), then decode throughput
//!   at batch 1, 16 and 64 (tokens per second of wall time, greedy tokens picked on the GPU
//!   and read back each step, decode steps as CUDA graphs; batch 1 also without graphs, batch
//!   64 also sampled on the GPU with temperature 1 and top_p 0.95), and a prefill of 512
//!   tokens. Targets: 1,000 tokens/s at batch 1, 30,000 at batch 64. Decode batches from 8
//!   up take the path (matrix-vector kernels or GEMM) that timing chose, as at serving's
//!   start (`decode_paths`: each batch size's device ms a step both ways). The same at batch 16
//!   and 64 and the prefill again with every product on the matrix-vector kernels and on the
//!   cuBLAS GEMM path (weights dequantized before each product, or kept as f16), and the
//!   agreement again on the matrix-vector kernels only. `matvec_choices`: the shape timing
//!   chose for each matrix at load; decode at batch 1 and 8 with those shapes and with two
//!   rows a warp everywhere.
//! - `gemm_q4_1`: the GEMM path over the same Q4_1 matrix for 8, 64 and 512 tokens, the
//!   product alone and with its dequantize and convert launches, beside the matrix-vector
//!   kernel's time.
//!
//! Prints one JSON object. On a machine without a GPU it prints the engine's error
//! ("no CUDA driver found; ...") and exits with status 2.
//!
//! Usage: cuda_bench [--quick] [--rows N] [--cols N] [--iters N] [--rounds N] [--no-model]

use std::sync::Arc;

use cudarc::driver::sys::CUevent_flags;
use cudarc::driver::CudaStream;
use engine::cuda::device::{bytes_of, CudaDevice, Device, Gemm, KArg, KernelTime, Launch};
use engine::cuda::model::{
    fastest, time_matvecs, DecodePath, DeviceModel, GemmWeights, KvCacheSize, MatvecChoice,
    MatvecOperands, StepLimits,
};
use engine::kernels::cpu::{self, Isa};
use engine::model::{Architecture, ModelConfig, RopeStyle};
use engine::sampling::{DeviceSample, RowPick};
use engine::{CpuForward, Model, SequenceStep, StepBatch, StepForward, StepOutput, Tokenizer};
use serde_json::json;

struct Args {
    rows: usize,
    cols: usize,
    iters: usize,
    rounds: usize,
    model: bool,
    quick: bool,
}

fn parse() -> anyhow::Result<Args> {
    let mut a = Args {
        rows: 16384,
        cols: 16384,
        iters: 50,
        rounds: 5,
        model: true,
        quick: false,
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
                a.quick = true;
            }
            "--no-model" => a.model = false,
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

/// The default model's shapes (SmolLM2-135M-Instruct; a test checks them against the file).
fn default_model_shapes() -> ModelConfig {
    ModelConfig {
        architecture: Architecture::Llama,
        hidden_size: 576,
        num_layers: 30,
        num_heads: 9,
        num_kv_heads: 3,
        head_dim: 64,
        intermediate_size: 1536,
        vocab_size: 49152,
        rms_norm_eps: 1e-5,
        rope_theta: 100_000.0,
        rope_style: RopeStyle::Interleaved,
        max_position_embeddings: 8192,
    }
}

const BLOCK: usize = 16;

/// Sequences in fixed block ranges of a cache (`per_seq` blocks each).
struct Seqs {
    tokens: Vec<Vec<u32>>,
    per_seq: usize,
}

impl Seqs {
    fn table(&self, i: usize) -> Vec<u32> {
        ((i * self.per_seq) as u32..((i + 1) * self.per_seq) as u32).collect()
    }

    /// All sequences' whole token lists, prefilled in one step.
    fn prefill(&self) -> StepBatch {
        StepBatch {
            seqs: (0..self.tokens.len())
                .map(|i| {
                    SequenceStep::contiguous(self.tokens[i].clone(), 0, self.table(i), BLOCK, true)
                })
                .collect(),
        }
    }

    /// One new token per sequence (appended).
    fn decode(&mut self, next: &[u32]) -> StepBatch {
        StepBatch {
            seqs: (0..self.tokens.len())
                .map(|i| {
                    let at = self.tokens[i].len();
                    self.tokens[i].push(next[i]);
                    SequenceStep::contiguous(vec![next[i]], at, self.table(i), BLOCK, true)
                })
                .collect(),
        }
    }
}

fn argmax(v: &[f32]) -> u32 {
    (0..v.len()).fold(0, |b, i| if v[i] > v[b] { i } else { b }) as u32
}

/// Deterministic prompt token ids.
fn prompt(len: usize, seed: u64, vocab: usize) -> Vec<u32> {
    bytes(4 * len, seed)
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]) % vocab as u32)
        .collect()
}

/// One step's logits of an engine under comparison.
type Stepper<'a> = Box<dyn FnMut(&StepBatch) -> anyhow::Result<Vec<Vec<f32>>> + 'a>;

/// Greedy tokens of two engines (`reference`: the CPU engine) on 20 prompts, decode steps fed
/// the reference's token, so one near-tie does not change what follows.
fn greedy_agreement(
    vocab: usize,
    steps: usize,
    mut reference: impl FnMut(usize) -> anyhow::Result<Stepper<'static>>,
    mut candidate: Stepper<'_>,
) -> anyhow::Result<serde_json::Value> {
    let n = 20;
    let mut seqs = Seqs {
        tokens: (0..n)
            .map(|i| prompt(8 + 5 * i, 100 + i as u64, vocab))
            .collect(),
        per_seq: agreement_blocks_per_seq(steps),
    };
    let mut cpu = reference(n * seqs.per_seq)?;
    let mut batch = seqs.prefill();
    let (mut equal, mut near_ties, mut differ) = (0, 0, 0);
    let (mut worst_gap, mut worst_rel) = (0f32, 0f32);
    let mut gaps = Vec::new();
    for _ in 0..=steps {
        let want = cpu(&batch)?;
        let got = candidate(&batch)?;
        let mut next = Vec::with_capacity(n);
        for (w, g) in want.iter().zip(&got) {
            let scale = w.iter().fold(0f32, |m, v| m.max(v.abs()));
            let diff = w
                .iter()
                .zip(g)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            worst_rel = worst_rel.max(diff / scale);
            let (c, d) = (argmax(w), argmax(g));
            if c == d {
                equal += 1;
            } else {
                let mut top: Vec<f32> = w.clone();
                top.sort_by(|a, b| b.total_cmp(a));
                let gap = top[0] - top[1];
                if gap < 0.1 {
                    near_ties += 1;
                } else {
                    differ += 1;
                    worst_gap = worst_gap.max(gap);
                    gaps.push(gap);
                }
            }
            next.push(c);
        }
        batch = seqs.decode(&next);
    }
    Ok(json!({
        "prompts": n,
        "tokens_compared": n * (steps + 1),
        "equal": equal,
        "differ_where_cpu_top2_within_0.1": near_ties,
        "differ": differ,
        "cpu_top2_gaps_where_differ": gaps,
        "largest_cpu_top2_gap_where_differ": worst_gap,
        "largest_logit_difference_relative_to_row_max": worst_rel,
        "ok": differ == 0,
    }))
}

/// Cache blocks each of the agreement check's sequences takes.
fn agreement_blocks_per_seq(steps: usize) -> usize {
    (8 + 5 * 20 + steps).div_ceil(BLOCK) + 1
}

/// The CPU engine on `model`, each step run on the kernel path `isa` (the engine's own choice
/// where `None`), restoring the path it found.
fn cpu_stepper(
    model: &Arc<Model>,
    isa: Option<Isa>,
) -> impl FnMut(usize) -> anyhow::Result<Stepper<'static>> {
    let model = model.clone();
    move |blocks| {
        let mut cpu = CpuForward::new(model.clone(), BLOCK, blocks)?;
        Ok(Box::new(move |b: &StepBatch| {
            let was = cpu::isa();
            if let Some(isa) = isa {
                cpu::force(isa);
            }
            let out = cpu.step(b);
            cpu::force(was);
            Ok(out?)
        }) as Stepper<'static>)
    }
}

/// How a timed run launches its steps.
#[derive(Clone, Copy, PartialEq)]
enum Launches {
    /// Kernel by kernel.
    Eager,
    /// Decode steps replayed as CUDA graphs.
    Graphs,
    /// The same with each kernel waiting for the one before it to finish before it is
    /// started (no programmatic dependent launch).
    GraphsSerial,
    /// Kernel by kernel, each launch timed on the device (the profile's events slow the
    /// wall-clock rate a little).
    Profiled,
    /// Replayed as graphs, each replay timed on the device as a whole: the graph's device
    /// time a step beside the step's wall time (the rest is the host's, and the launches
    /// outside the graph).
    GraphsProfiled,
}

/// The device time of a profile, per step: in all, and the kernels that took most.
fn profile_json(profile: &[KernelTime], steps: usize) -> serde_json::Value {
    let per_step = |ms: f64| ms / steps as f64;
    json!({
        "device_ms_per_step": per_step(profile.iter().map(|k| k.ms).sum()),
        "launches_per_step": profile.iter().map(|k| k.launches).sum::<usize>() as f64 / steps as f64,
        "kernels": profile.iter().take(10).map(|k| json!({
            "kernel": k.kernel,
            "launches_per_step": k.launches as f64 / steps as f64,
            "ms_per_step": per_step(k.ms),
        })).collect::<Vec<_>>(),
    })
}

/// Decode throughput at `batch` sequences of `context` prompt tokens: `steps` timed steps
/// after warm-up ones, each step's tokens picked on the GPU as `pick` says (greedy, or
/// sampled) and read back. The model's launch settings are restored whether or not it
/// succeeds.
fn decode_rate<D: Device>(
    gpu: &mut DeviceModel<D>,
    vocab: usize,
    batch: usize,
    context: usize,
    steps: usize,
    launches: Launches,
    pick: &RowPick,
) -> anyhow::Result<serde_json::Value> {
    let graphs = matches!(
        launches,
        Launches::Graphs | Launches::GraphsSerial | Launches::GraphsProfiled
    );
    gpu.set_graphs(graphs);
    let overlap = gpu.device().overlap();
    if launches == Launches::GraphsSerial {
        gpu.set_overlap(false);
    }
    let profiled = matches!(launches, Launches::Profiled | Launches::GraphsProfiled);
    let timed = decode_timed(gpu, vocab, batch, context, steps, profiled, pick);
    gpu.device().set_profiling(false);
    gpu.set_graphs(true);
    if launches == Launches::GraphsSerial {
        gpu.set_overlap(overlap);
    }
    let (s, profile) = timed?;
    let mut v = json!({
        "batch": batch,
        "context": context,
        "steps": steps,
        "graphs": graphs,
        "overlapped_launches": overlap && launches != Launches::GraphsSerial,
        "sampling": match pick {
            RowPick::Sample(s) if s.masked => {
                format!("temperature {}, grammar mask", s.temperature)
            }
            RowPick::Sample(s) if s.top_logprobs > 0 => format!(
                "temperature {}, top_p {}, top_logprobs {}",
                s.temperature, s.top_p, s.top_logprobs
            ),
            RowPick::Sample(s) => format!("temperature {}, top_p {}", s.temperature, s.top_p),
            _ => "greedy".to_string(),
        },
        "ms_per_step": 1e3 * s / steps as f64,
        "tokens_per_s": (batch * steps) as f64 / s,
    });
    if profiled {
        v["profile"] = profile_json(&profile, steps);
    }
    Ok(v)
}

/// Greedy decode at `batch` launched as `launches` ([`decode_rate`]), tagged with what the
/// run varies (`tag`: a key and its value, added to the result), or its error in its place.
fn greedy_decode<D: Device>(
    gpu: &mut DeviceModel<D>,
    vocab: usize,
    runs: &ModelRuns,
    (batch, launches): (usize, Launches),
    (key, value): (&str, serde_json::Value),
    errors: &mut Vec<String>,
) -> serde_json::Value {
    let mut d = kept(
        decode_rate(
            gpu,
            vocab,
            batch,
            runs.context,
            runs.decode_steps,
            launches,
            &RowPick::Greedy,
        ),
        &format!("decode at batch {batch}, {key} {value}"),
        errors,
    );
    d[key] = value;
    eprintln!("cuda_bench: decode {d}");
    d
}

/// [`decode_rate`]'s steps: the seconds the timed ones took, and their profile (`profiled`).
fn decode_timed<D: Device>(
    gpu: &mut DeviceModel<D>,
    vocab: usize,
    batch: usize,
    context: usize,
    steps: usize,
    profiled: bool,
    pick: &RowPick,
) -> anyhow::Result<(f64, Vec<KernelTime>)> {
    let warm = 5;
    let mut seqs = Seqs {
        tokens: (0..batch)
            .map(|i| prompt(context, 1000 + i as u64, vocab))
            .collect(),
        per_seq: (context + warm + steps).div_ceil(BLOCK) + 1,
    };
    gpu.step(&seqs.prefill())?;
    let picks = vec![pick.clone(); batch];
    // A masked pick samples under a grammar's mask allowing every other token, given with
    // each step as the executor gives it.
    let every_other: Vec<u32> = (0..vocab as u32).step_by(2).collect();
    let mask = engine::structured::Mask::from_tokens(vocab, &every_other, &[]);
    let mut next = vec![1u32; batch];
    let run =
        |gpu: &mut DeviceModel<D>, seqs: &mut Seqs, next: &mut Vec<u32>| -> anyhow::Result<()> {
            let b = seqs.decode(next);
            let out = gpu.step_outputs(&b, &picks, &mut || vec![Some(mask.clone()); batch])?;
            for (n, o) in next.iter_mut().zip(out) {
                match o {
                    StepOutput::Token { token, .. } => *n = token,
                    StepOutput::Logits(_) => anyhow::bail!("logits came back for a picked row"),
                }
            }
            Ok(())
        };
    for _ in 0..warm {
        run(gpu, &mut seqs, &mut next)?;
    }
    gpu.device().set_profiling(profiled);
    let start = std::time::Instant::now();
    for _ in 0..steps {
        run(gpu, &mut seqs, &mut next)?;
    }
    let s = start.elapsed().as_secs_f64();
    Ok((s, gpu.device().take_profile()?))
}

/// A run's result, or its error in its place (and in `errors`), so that one failing run
/// leaves the others' numbers standing.
fn kept(
    r: anyhow::Result<serde_json::Value>,
    what: &str,
    errors: &mut Vec<String>,
) -> serde_json::Value {
    r.unwrap_or_else(|e| {
        let msg = format!("{what}: {e:#}");
        eprintln!("cuda_bench: {msg}");
        errors.push(msg.clone());
        json!({ "error": msg })
    })
}

/// One sequence of `len` tokens prefilled in one step (median of `rounds`).
fn prefill_rate<D: Device>(
    gpu: &mut DeviceModel<D>,
    vocab: usize,
    len: usize,
    rounds: usize,
) -> anyhow::Result<serde_json::Value> {
    let seqs = Seqs {
        tokens: vec![prompt(len, 7, vocab)],
        per_seq: len.div_ceil(BLOCK),
    };
    let b = seqs.prefill();
    gpu.step(&b)?;
    let mut ms = Vec::new();
    for _ in 0..rounds.max(1) {
        let start = std::time::Instant::now();
        gpu.step(&b)?;
        ms.push(start.elapsed().as_secs_f64() * 1e3);
    }
    ms.sort_by(|a, b| a.total_cmp(b));
    let med = ms[ms.len() / 2];
    gpu.device().set_profiling(true);
    let profiled = gpu.step(&b);
    let profile = gpu.device().take_profile();
    gpu.device().set_profiling(false);
    profiled?;
    Ok(json!({
        "tokens": len,
        "ms": med,
        "tokens_per_s": len as f64 / (med / 1e3),
        "profile": profile_json(&profile?, 1),
    }))
}

/// What the model section runs: decode batches of `context`-token prompts, a prefill.
struct ModelRuns {
    agreement_steps: usize,
    decode_steps: usize,
    context: usize,
    batches: [usize; 3],
    prefill: usize,
    prefill_rounds: usize,
    /// Attention partition lengths to time decode with, beside the default.
    partitions: &'static [usize],
    /// The scheduler's step limits for serving's start.
    serving: StepLimits,
}

fn run_model(a: &Args) -> anyhow::Result<serde_json::Value> {
    let runs = if a.quick {
        ModelRuns {
            agreement_steps: 3,
            decode_steps: 10,
            context: 128,
            batches: [1, 16, 64],
            prefill: 512,
            prefill_rounds: 1,
            partitions: &[128],
            serving: serving_limits(),
        }
    } else {
        ModelRuns {
            agreement_steps: 16,
            decode_steps: 100,
            context: 128,
            batches: [1, 16, 64],
            prefill: 512,
            prefill_rounds: 5,
            partitions: &[64, 128, 256],
            serving: serving_limits(),
        }
    };
    run_model_on(|| Ok(CudaDevice::open(0)?), default_model_shapes(), &runs)
}

/// The step limits the scheduler's defaults give the default model.
fn serving_limits() -> StepLimits {
    let cfg = default_model_shapes();
    scheduler::model_executor::step_limits(&scheduler::SchedulerConfig {
        max_model_len: cfg.max_position_embeddings,
        ..scheduler::SchedulerConfig::default()
    })
}

/// Serving's start (`DeviceModel::start`) of `model` under `limits`, the KV cache sized by
/// serving's default `gpu_memory_utilization` (or by 0.5 where the device has too little free
/// for that; each refusal is kept): how long it took, the blocks it made, the device memory it
/// took, and the decode graphs it captured (how many, how long, their memory); then decode
/// steps of 1 and of `limits.max_seqs` sequences, which must capture nothing.
fn serving_start<D: Device>(
    open: impl Fn() -> anyhow::Result<D>,
    model: &Model,
    limits: StepLimits,
) -> anyhow::Result<serde_json::Value> {
    let mut refused = Vec::new();
    for share in [gateway::registry::GPU_MEMORY_UTILIZATION, 0.5] {
        let dev = open()?;
        let free = dev.memory().map(|m| m.free);
        let began = std::time::Instant::now();
        let mut m =
            match DeviceModel::start(dev, model, BLOCK, KvCacheSize::Utilization(share), limits) {
                Ok(m) => m,
                Err(e) => {
                    refused.push(json!({"gpu_memory_utilization": share, "error": e.to_string()}));
                    continue;
                }
            };
        let start_s = began.elapsed().as_secs_f64();
        let taken = free
            .zip(m.device().memory())
            .map(|(before, now)| before.saturating_sub(now.free));
        let g = m.last_capture;
        let captures = m.graph_captures;
        let vocab = model.config.vocab_size as u32;
        for seqs in [1, limits.max_seqs] {
            let batch = StepBatch {
                seqs: (0..seqs)
                    .map(|i| {
                        let table = vec![i as u32];
                        SequenceStep::contiguous(vec![i as u32 % vocab], 0, table, BLOCK, true)
                    })
                    .collect(),
            };
            m.step_outputs(&batch, &vec![RowPick::Greedy; seqs], &mut Vec::new)?;
        }
        let mib = |b: usize| b as f64 / (1 << 20) as f64;
        return Ok(json!({
            "gpu_memory_utilization": share,
            "refused": refused,
            "limits": format!("{limits:?}"),
            "start_s": start_s,
            "kv_blocks": m.num_blocks(),
            "kv_tokens": m.num_blocks() * BLOCK,
            "taken_mib": taken.map(mib),
            "graphs": g.graphs,
            "graphs_largest_batch": g.largest_batch,
            "graphs_most_attention_partitions": g.most_parts,
            "graphs_capture_s": g.seconds,
            "graphs_mib": g.bytes.map(mib),
            "decode_paths": decode_paths_json(m.decode_paths()),
            "captures_while_serving": m.graph_captures - captures,
        }));
    }
    anyhow::bail!("every share was refused: {refused:?}")
}

/// The model section on the device `open` gives (the GPU; the CPU build of the kernels in
/// this file's test).
fn run_model_on<D: Device>(
    open: impl Fn() -> anyhow::Result<D>,
    cfg: ModelConfig,
    runs: &ModelRuns,
) -> anyhow::Result<serde_json::Value> {
    let made = std::time::Instant::now();
    let vocab = cfg.vocab_size;
    let model = std::sync::Arc::new(Model::synthetic(
        cfg.clone(),
        Tokenizer::numbered(vocab)?,
        1,
    )?);
    let most = runs.batches.iter().copied().max().unwrap_or(1);
    // Room for the largest run: its sequences' prompts, warm-up and timed steps, and the
    // agreement check's 20 prompts.
    let per_seq = (runs.context + 5 + runs.decode_steps).div_ceil(BLOCK) + 1;
    let num_blocks = (most * per_seq)
        .max(20 * agreement_blocks_per_seq(runs.agreement_steps))
        .max(runs.prefill.div_ceil(BLOCK));
    let mut gpu = DeviceModel::new(open()?, &model, BLOCK, num_blocks)?;
    let made_s = made.elapsed().as_secs_f64();
    eprintln!("cuda_bench: model made in {made_s:.1} s");
    // Decode batches from 8 up take the path timing finds faster, as from serving's start;
    // timed again after each change of the GEMM path below. Graphs up to the largest batch
    // run, so that only those sizes are timed.
    let buckets = engine::cuda::model::GRAPH_BATCH_SIZES;
    gpu.set_graph_batch_limit(buckets.iter().copied().find(|&b| b >= most).unwrap_or(most));
    let decode_paths = decode_paths_json(gpu.time_decode_paths()?);
    eprintln!("cuda_bench: decode paths {decode_paths}");
    // Each run's error takes its place in the JSON; the section fails at the end.
    let mut errors = Vec::new();
    // Greedy tokens of the CUDA engine, as set now, against the CPU engine's.
    let against_cpu = |gpu: &mut DeviceModel<D>, what: &str, errors: &mut Vec<String>| {
        let v = kept(
            greedy_agreement(
                vocab,
                runs.agreement_steps,
                cpu_stepper(&model, None),
                Box::new(|b: &StepBatch| Ok(gpu.step(b)?)),
            ),
            what,
            errors,
        );
        eprintln!("cuda_bench: {what} {v}");
        v
    };
    let agreement = against_cpu(&mut gpu, "greedy agreement", &mut errors);
    // The same with every product on the matrix-vector kernels (the agreement's prefill and
    // its decode steps of 20 sequences take the GEMM path by default).
    let (gemm_from, gemm_weights) = gpu.gemm();
    let agreement_matvec = if gemm_from.is_some() {
        gpu.set_gemm(None, gemm_weights)?;
        let v = against_cpu(
            &mut gpu,
            "greedy agreement, matrix-vector kernels only",
            &mut errors,
        );
        gpu.set_gemm(gemm_from, gemm_weights)?;
        gpu.time_decode_paths()?;
        v
    } else {
        json!("the GEMM path is off on this device")
    };
    // The baseline: the CPU engine against itself on its other SIMD path (AVX-512 and AVX2
    // sum in different lane orders), where this CPU has both; how far rounding alone moves
    // this model's tokens.
    let baseline = match cpu::best_supported() {
        Isa::Avx512 => {
            let v = greedy_agreement(
                vocab,
                runs.agreement_steps,
                cpu_stepper(&model, Some(Isa::Avx512)),
                cpu_stepper(&model, Some(Isa::Avx2))(
                    20 * agreement_blocks_per_seq(runs.agreement_steps),
                )?,
            )?;
            eprintln!("cuda_bench: avx512 against avx2 {v}");
            v
        }
        _ => json!("this CPU has one lane order only (no AVX-512)"),
    };
    let plain = DeviceSample {
        temperature: 1.0,
        top_k: 0,
        top_p: 0.95,
        min_p: 0.0,
        u: 0.5,
        edits: Vec::new(),
        top_logprobs: 0,
        masked: false,
    };
    // The same with the 5 most likely tokens listed on the device (`logprobs: 5`).
    let listed = RowPick::Sample(DeviceSample {
        top_logprobs: 5,
        ..plain.clone()
    });
    // Greedy under a grammar's mask (structured outputs, tools): the mask's bits go up with
    // each step.
    let masked = RowPick::Sample(DeviceSample {
        temperature: 0.0,
        top_p: 1.0,
        u: 0.0,
        masked: true,
        ..plain.clone()
    });
    let sampled = RowPick::Sample(plain);
    let [b1, b2, b3] = runs.batches;
    let mut decode = Vec::new();
    for (batch, launches, pick) in [
        (b1, Launches::Eager, &RowPick::Greedy),
        (b1, Launches::Graphs, &RowPick::Greedy),
        (b1, Launches::GraphsSerial, &RowPick::Greedy),
        (b2, Launches::Graphs, &RowPick::Greedy),
        (b3, Launches::Graphs, &RowPick::Greedy),
        (b3, Launches::Graphs, &sampled),
        (b3, Launches::Graphs, &listed),
        (b3, Launches::Graphs, &masked),
        (b1, Launches::Profiled, &RowPick::Greedy),
        (b3, Launches::Profiled, &RowPick::Greedy),
        (b1, Launches::GraphsProfiled, &RowPick::Greedy),
        (b3, Launches::GraphsProfiled, &RowPick::Greedy),
    ] {
        let d = kept(
            decode_rate(
                &mut gpu,
                vocab,
                batch,
                runs.context,
                runs.decode_steps,
                launches,
                pick,
            ),
            &format!("decode at batch {batch}"),
            &mut errors,
        );
        eprintln!("cuda_bench: decode {d}");
        decode.push(d);
    }
    let prefill = kept(
        prefill_rate(&mut gpu, vocab, runs.prefill, runs.prefill_rounds),
        "prefill",
        &mut errors,
    );
    eprintln!("cuda_bench: prefill {prefill}");
    // Shorter attention partitions spread a short context over more blocks (a few per KV head
    // instead of one), at the cost of a merge launch per layer.
    let mut partitions = Vec::new();
    for &part in runs.partitions {
        gpu.set_attention_partition(part)?;
        for batch in [b1, b3] {
            let tag = ("attention_partition", json!(part));
            partitions.push(greedy_decode(
                &mut gpu,
                vocab,
                runs,
                (batch, Launches::Graphs),
                tag,
                &mut errors,
            ));
        }
    }
    gpu.set_attention_partition(engine::cuda::ATTENTION_PARTITION)?;
    // Batches 16 and 64 and the prefill with every product on the matrix-vector kernels, and
    // on the GEMM path from the middle batch (16) with its weights dequantized before each
    // product or kept as f16.
    let mut by_products = Vec::new();
    if gpu.device().has_gemm() {
        let settings = [
            ("matvec", None, GemmWeights::Dequantize),
            ("gemm_dequantize", Some(b2), GemmWeights::Dequantize),
            ("gemm_resident", Some(b2), GemmWeights::Resident),
        ];
        for (name, from, weights) in settings {
            gpu.set_gemm(from, weights)?;
            for (batch, launches) in [
                (b2, Launches::Graphs),
                (b3, Launches::Graphs),
                (b3, Launches::Profiled),
            ] {
                let tag = ("products", json!(name));
                by_products.push(greedy_decode(
                    &mut gpu,
                    vocab,
                    runs,
                    (batch, launches),
                    tag,
                    &mut errors,
                ));
            }
            let mut p = kept(
                prefill_rate(&mut gpu, vocab, runs.prefill, runs.prefill_rounds),
                &format!("prefill, products {name}"),
                &mut errors,
            );
            p["products"] = json!(name);
            eprintln!("cuda_bench: prefill {p}");
            by_products.push(p);
        }
        gpu.set_gemm(gemm_from, gemm_weights)?;
        gpu.time_decode_paths()?;
    }
    // The targets are read off the default launches (overlapped where the GPU allows).
    let gpu_overlaps = gpu.device().overlap();
    let rate = |b: usize| {
        decode
            .iter()
            .find(|d| {
                d["batch"] == b
                    && d["graphs"] == true
                    && d["overlapped_launches"] == gpu_overlaps
                    && d["sampling"] == "greedy"
            })
            .and_then(|d| d["tokens_per_s"].as_f64())
            .unwrap_or(0.0)
    };
    let (r1, r64) = (rate(1), rate(64));
    // What timing chose for each matrix at load, and decode at batch 1 and 8 (the sizes
    // the matrix-vector shapes are timed at) with those shapes and with the defaults (two rows a
    // warp) everywhere. Last: the defaults stay set.
    let choices = matvec_choices_json(gpu.matvec_choices());
    let mut by_matvec_shapes = Vec::new();
    for (name, defaults) in [("timed at load", false), ("two rows a warp", true)] {
        if defaults {
            gpu.set_matvec(
                engine::cuda::matvec_default(1),
                engine::cuda::matvec_default(2),
            )?;
        }
        for batch in [b1, b2.min(engine::cuda::model::MATVEC_TIMED_TOKENS)] {
            let tag = ("matvec_shapes", json!(name));
            by_matvec_shapes.push(greedy_decode(
                &mut gpu,
                vocab,
                runs,
                (batch, Launches::Graphs),
                tag,
                &mut errors,
            ));
        }
    }
    // Decode with the products making their norm's and SwiGLU's input themselves (the default:
    // three launches a layer fewer) and with those made by their own kernels first, at batch 1
    // (as graphs, and kernel by kernel with each launch timed: the launches a step) and at 8.
    let mut by_fused_inputs = Vec::new();
    for fused in [true, false] {
        gpu.set_fused_inputs(fused);
        let eight = b2.min(engine::cuda::model::MATVEC_TIMED_TOKENS);
        for at in [
            (b1, Launches::Graphs),
            (b1, Launches::Profiled),
            (eight, Launches::Graphs),
        ] {
            let tag = ("fused_inputs", json!(fused));
            by_fused_inputs.push(greedy_decode(&mut gpu, vocab, runs, at, tag, &mut errors));
        }
    }
    gpu.set_fused_inputs(true);
    let (graph_captures, graph_replays) = (gpu.graph_captures, gpu.graph_replays);
    // The device memory back, for serving's start.
    drop(gpu);
    let serving = kept(
        serving_start(&open, &model, runs.serving),
        "serving's start",
        &mut errors,
    );
    eprintln!("cuda_bench: serving's start {serving}");
    Ok(json!({
        "shapes": format!("{cfg:?}"),
        "setup_s": made_s,
        "gemm_from_tokens": gemm_from,
        "gemm_weights": format!("{gemm_weights:?}"),
        "greedy_agreement": agreement,
        "greedy_agreement_matvec_only": agreement_matvec,
        "greedy_agreement_cpu_avx512_against_avx2": baseline,
        "decode": decode,
        "prefill": prefill,
        "attention_partition_default": engine::cuda::ATTENTION_PARTITION,
        "decode_by_attention_partition": partitions,
        "decode_paths": decode_paths,
        "decode_and_prefill_by_products": by_products,
        "matvec_choices": choices,
        "decode_by_matvec_shapes": by_matvec_shapes,
        "decode_by_fused_inputs": by_fused_inputs,
        "serving_start": serving,
        "errors": errors,
        "graph_captures": graph_captures,
        "graph_replays": graph_replays,
        "targets": {
            "decode_batch1_tokens_per_s": {"target": 1000, "measured": r1, "met": r1 >= 1000.0},
            "decode_batch64_tokens_per_s": {"target": 30000, "measured": r64, "met": r64 >= 30000.0},
        },
    }))
}

/// Each decode batch size timed: device milliseconds a step each way and the path taken.
fn decode_paths_json(paths: &[DecodePath]) -> serde_json::Value {
    paths
        .iter()
        .map(|p| {
            json!({
                "batch": p.batch,
                "matvec_ms": p.matvec_ms,
                "gemm_ms": p.gemm_ms,
                "taken": if p.gemm { "gemm" } else { "matvec" },
            })
        })
        .collect()
}

/// Each matrix shape and step size the model timed at load: the kernel chosen and every
/// candidate's milliseconds a launch.
fn matvec_choices_json(choices: &[MatvecChoice]) -> serde_json::Value {
    choices
        .iter()
        .map(|c| {
            let q4_1 = c.weights == "q4_1";
            json!({
                "weights": c.weights,
                "rows": c.rows,
                "cols": c.cols,
                "tokens": c.tokens,
                "input": format!("{:?}", c.input),
                "chosen": c.chosen.kernel(q4_1),
                "ms": c.timed.iter().map(|(m, ms)| (m.kernel(q4_1).to_string(), json!(ms))).collect::<serde_json::Map<_, _>>(),
            })
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
    // As many launches as a decode step of the default model makes.
    let floor =
        launch_floor(&dev, 250, a.rounds).unwrap_or_else(|e| json!({ "error": format!("{e:#}") }));
    eprintln!("cuda_bench: launch floor {floor}");

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
    // (Q4_1?, quants, scales, bytes read per block)
    let weights = [
        (
            true,
            dev.upload(&bytes(nb * 16, 1))?,
            dev.upload(bytes_of(&q4_scales))?,
            20,
        ),
        (
            false,
            dev.upload(&bytes(nb * 32, 3))?,
            dev.upload(bytes_of(&q8_scales))?,
            34,
        ),
    ];

    let mut results = Vec::new();
    for ntok in [1usize, 8, 64] {
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
        let mut run = json!({ "tokens": ntok });
        for (q4_1, qs, scales, block_bytes) in &weights {
            let op = MatvecOperands {
                q4_1: *q4_1,
                qs,
                scales,
                xq: &xq,
                xds: &xds,
                y: &y,
                rows,
                cols,
                made_from: None,
            };
            // Every shape the engine chooses from, as it times them at load (more launches).
            let timed = time_matvecs(&dev, &op, ntok, a.rounds, a.iters)?
                .ok_or_else(|| anyhow::anyhow!("the device did not time the launches"))?;
            let rate = |ms: f64| {
                let gbs = (nb * block_bytes) as f64 / (ms * 1e6);
                json!({"ms": ms, "weight_gb_per_s": gbs, "fraction_of_copy": gbs / copy_gbs})
            };
            let (best, best_ms) = fastest(&timed).expect("candidates");
            let mut entry = rate(best_ms);
            entry["kernel"] = json!(best.kernel(*q4_1));
            entry["shapes"] = timed
                .iter()
                .map(|(m, ms)| {
                    let mut r = rate(*ms);
                    r["kernel"] = json!(m.kernel(*q4_1));
                    r
                })
                .collect();
            run[if *q4_1 { "q4_1" } else { "q8_0" }] = entry;
        }
        results.push(run);
    }
    let q4_one = results[0]["q4_1"]["fraction_of_copy"]
        .as_f64()
        .unwrap_or(0.0);
    let gemm = if dev.has_gemm() {
        gemm_rates(&dev, a, &weights[0].1, &weights[0].2, &results)?
    } else {
        json!("cuBLAS (libcublas) not found")
    };
    drop(weights);
    eprintln!(
        "cuda_bench: copy {copy_gbs:.0} GB/s, matvec {}",
        json!(results)
    );
    // A model section that fails leaves the kernel numbers standing; the run still fails.
    let model = if a.model {
        run_model(a).unwrap_or_else(|e| json!({ "error": format!("{e:#}") }))
    } else {
        serde_json::Value::Null
    };
    Ok(json!({
        "device": dev.ctx.name()?,
        "compute_capability": format!("{major}.{minor}"),
        "matrix": {"rows": rows, "cols": cols},
        "iters": a.iters,
        "rounds": a.rounds,
        "copy": {"bytes": copy_bytes, "ms": copy_ms, "gb_per_s_read_plus_written": copy_gbs},
        "launch_floor": floor,
        "matvec": results,
        "gemm_q4_1": gemm,
        "target": {"q4_1_one_token_fraction_of_copy": 0.70, "met": q4_one >= 0.70},
        "model": model,
    }))
}

/// The device's own cost of a kernel launch: `n` launches of a kernel that does nothing
/// (`add_inplace` over no elements) in one block of 32 threads and in 144 blocks of 128 (a
/// decode step's products have about that many), launched kernel by kernel and replayed as
/// one graph, each with and without overlapped launches: device microseconds a launch (the
/// median of `rounds`). However fast the kernels, a decode step of `launches_per_step` kernels
/// takes at least that many times this floor.
fn launch_floor<D: Device>(dev: &D, n: usize, rounds: usize) -> anyhow::Result<serde_json::Value> {
    let n = n.max(1);
    let per_launch_us = |f: &mut dyn FnMut() -> engine::Result<()>| -> anyhow::Result<f64> {
        f()?;
        let mut per = Vec::with_capacity(rounds.max(1));
        for _ in 0..rounds.max(1) {
            let ms = dev
                .time_launches(f)?
                .ok_or_else(|| anyhow::anyhow!("the device did not time the launches"))?;
            per.push(1e3 * ms / n as f64);
        }
        per.sort_by(f64::total_cmp);
        Ok(per[per.len() / 2])
    };
    let measure = |blocks: u32, threads: u32, overlap: bool| -> anyhow::Result<serde_json::Value> {
        let empty = || {
            dev.launch(
                "add_inplace",
                Launch::new((blocks, 1, 1), threads),
                &[KArg::Null, KArg::Null, KArg::I64(0)],
            )
        };
        dev.set_overlap(overlap);
        let eager = per_launch_us(&mut || (0..n).try_for_each(|_| empty()))?;
        dev.begin_capture()?;
        let captured = (0..n).try_for_each(|_| empty());
        let graph = dev.end_capture();
        captured?;
        let graph = graph?;
        let replayed = per_launch_us(&mut || dev.replay(&graph))?;
        Ok(json!({
            "blocks": blocks,
            "threads": threads,
            "overlapped": overlap,
            "eager_us": eager,
            "graph_us": replayed,
        }))
    };
    let was = dev.overlap();
    let runs: anyhow::Result<Vec<_>> = [(1, 32), (144, 128)]
        .into_iter()
        .flat_map(|(b, t)| [true, false].map(|o| measure(b, t, o)))
        .collect();
    dev.set_overlap(was);
    Ok(json!({ "launches": n, "runs": runs? }))
}

/// The GEMM path over the same Q4_1 matrix for 8, 64 and 512 tokens: the product alone (f16
/// weights kept), and with the weights dequantized and the activations converted first (what
/// each product of `GemmWeights::Dequantize` costs), against the matrix-vector kernel's time
/// for the same tokens where `matvec` has it.
fn gemm_rates(
    dev: &CudaDevice,
    a: &Args,
    qs: &cudarc::driver::CudaSlice<u8>,
    scales: &cudarc::driver::CudaSlice<u8>,
    matvec: &[serde_json::Value],
) -> anyhow::Result<serde_json::Value> {
    let (rows, cols) = (a.rows, a.cols);
    let n = rows * cols;
    let wh = dev.alloc(2 * n)?;
    let dequantize = || {
        dev.launch(
            "dequantize_q4_1_f16",
            Launch::new((n.div_ceil(256) as u32, 1, 1), 256),
            &[
                KArg::Buf(qs),
                KArg::Buf(scales),
                KArg::Buf(&wh),
                KArg::I64((n / 32) as i64),
            ],
        )
    };
    dequantize()?;
    let mut out = Vec::new();
    for ntok in [8usize, 64, 512] {
        let x_host: Vec<f32> = bytes(ntok * cols, 4)
            .iter()
            .map(|&b| b as f32 / 128.0 - 1.0)
            .collect();
        let x = dev.upload(bytes_of(&x_host))?;
        let xh = dev.alloc(2 * ntok * cols)?;
        let y = dev.alloc(4 * ntok * rows)?;
        let convert = || {
            dev.launch(
                "f32_to_f16",
                Launch::new(((ntok * cols).div_ceil(256) as u32, 1, 1), 256),
                &[
                    KArg::Buf(&x),
                    KArg::Buf(&xh),
                    KArg::I64((ntok * cols) as i64),
                ],
            )
        };
        convert()?;
        let g = Gemm::rows_by_tokens(rows, cols, ntok);
        let product = || dev.gemm(g, KArg::Buf(&wh), KArg::Buf(&xh), KArg::Buf(&y));
        let resident = time_ms(&dev.stream, a.rounds, a.iters, || Ok(product()?))?;
        let whole = time_ms(&dev.stream, a.rounds, a.iters, || {
            dequantize()?;
            convert()?;
            Ok(product()?)
        })?;
        let matvec_ms = matvec
            .iter()
            .find(|r| r["tokens"] == ntok)
            .and_then(|r| r["q4_1"]["ms"].as_f64());
        out.push(json!({
            "tokens": ntok,
            "gemm_ms": resident,
            "tflop_per_s": 2.0 * (n * ntok) as f64 / (resident * 1e9),
            "dequantize_convert_gemm_ms": whole,
            "matvec_ms": matvec_ms,
        }));
    }
    eprintln!("cuda_bench: gemm {}", json!(out));
    Ok(json!(out))
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
        Ok(v) => {
            println!("{}", serde_json::to_string_pretty(&v).expect("JSON"));
            if v["model"].get("error").is_some() {
                eprintln!(
                    "cuda_bench: the model section failed: {}",
                    v["model"]["error"]
                );
                std::process::exit(3);
            }
            if v["model"]["errors"]
                .as_array()
                .is_some_and(|e| !e.is_empty())
            {
                eprintln!(
                    "cuda_bench: runs of the model section failed: {}",
                    v["model"]["errors"]
                );
                std::process::exit(3);
            }
        }
        Err(e) => {
            eprintln!("cuda_bench: {e}");
            std::process::exit(2);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_model_shapes_are_those_of_the_default_model() {
        let path =
            engine::model_cache::find_default_model().expect("run `starfire model fetch` first");
        let text = engine::TextModel::load(&path).expect("the default model");
        assert_eq!(
            format!("{:?}", default_model_shapes()),
            format!("{:?}", text.config)
        );
    }

    /// The whole model section, on the CPU build of the kernels with a small model: every
    /// run completes, the agreement check counts every token (on this tiny random model a
    /// rare token may differ by more than the 0.1 the default shapes are held to), graphs are
    /// captured and replayed.
    #[test]
    fn the_model_section_runs_on_the_cpu_build_of_the_kernels() {
        let mut cfg = default_model_shapes();
        (cfg.hidden_size, cfg.num_layers, cfg.intermediate_size) = (64, 2, 128);
        (cfg.num_heads, cfg.num_kv_heads, cfg.head_dim) = (2, 1, 32);
        cfg.vocab_size = 384;
        let runs = ModelRuns {
            agreement_steps: 2,
            decode_steps: 2,
            context: 20,
            batches: [1, 3, 5],
            prefill: 40,
            prefill_rounds: 1,
            partitions: &[32],
            serving: StepLimits {
                max_tokens: 40,
                max_seqs: 4,
                max_context: 64,
            },
        };
        // Built once per kernel source version (the file name holds its hash); a device of
        // 256 MiB, so that serving's start can take a share of it.
        let dir = std::env::temp_dir().join("starfire-cuda-cpu");
        let v = run_model_on(
            || {
                Ok(engine::cuda::device::HostDevice::build(&dir)?
                    .with_gemm()
                    .with_memory(256 << 20))
            },
            cfg,
            &runs,
        )
        .unwrap();
        let a = &v["greedy_agreement"];
        assert_eq!(a["tokens_compared"], 60);
        let count = |k: &str| a[k].as_u64().unwrap();
        assert_eq!(
            count("equal") + count("differ_where_cpu_top2_within_0.1") + count("differ"),
            60
        );
        assert!(count("equal") >= 55, "{v:#}");
        assert_eq!(v["decode"].as_array().unwrap().len(), 12);
        // Graph replays timed: the CPU build times nothing, but they run as graphs.
        assert_eq!(v["decode"][11]["graphs"], true, "{v:#}");
        assert!(v["decode"][11]["profile"].is_object(), "{v:#}");
        assert_eq!(
            v["decode"][6]["sampling"],
            "temperature 1, top_p 0.95, top_logprobs 5"
        );
        assert!(v["decode"][6]["tokens_per_s"].as_f64().unwrap() > 0.0);
        assert_eq!(v["decode"][7]["sampling"], "temperature 0, grammar mask");
        assert!(v["decode"][7]["tokens_per_s"].as_f64().unwrap() > 0.0);
        assert_eq!(
            v["decode_by_attention_partition"][1]["attention_partition"],
            32
        );
        assert!(v["decode"][4]["tokens_per_s"].as_f64().unwrap() > 0.0);
        assert_eq!(v["prefill"]["tokens"], 40);
        // The same runs with every product on the matrix-vector kernels, and on the GEMM
        // path both ways: batches 3 and 5 (graphs, profiled) and the prefill each.
        let by = v["decode_and_prefill_by_products"].as_array().unwrap();
        assert_eq!(by.len(), 12, "{v:#}");
        assert_eq!(by[11]["products"], "gemm_resident");
        assert!(by[11]["tokens_per_s"].as_f64().unwrap() > 0.0);
        assert_eq!(v["greedy_agreement_matvec_only"]["tokens_compared"], 60);
        // The CPU build times nothing (a GPU times each matrix's shapes at load: see
        // `matvec_choices_list_each_shape_timed`); decode with the shapes chosen and with the
        // defaults.
        assert_eq!(v["matvec_choices"], json!([]), "{v:#}");
        // Nor the decode paths (`on_the_cpu_decode_steps_take_the_path_timing_found_faster`
        // checks the choice with a device that does).
        assert_eq!(v["decode_paths"], json!([]), "{v:#}");
        assert_eq!(v["serving_start"]["decode_paths"], json!([]), "{v:#}");
        let by_shapes = v["decode_by_matvec_shapes"].as_array().unwrap();
        assert_eq!(by_shapes.len(), 4, "{v:#}");
        assert_eq!(by_shapes[3]["matvec_shapes"], "two rows a warp");
        assert_eq!(by_shapes[3]["batch"], 3);
        // Fused inputs on and off: batch 1 as graphs and profiled, batch 3 as graphs.
        let by_fused = v["decode_by_fused_inputs"].as_array().unwrap();
        assert_eq!(by_fused.len(), 6, "{v:#}");
        assert_eq!(by_fused[5]["fused_inputs"], false);
        assert_eq!(by_fused[5]["batch"], 3);
        assert!(by_fused[5]["tokens_per_s"].as_f64().unwrap() > 0.0);
        assert_eq!(v["errors"], json!([]), "{v:#}");
        // Batches 3 and 5 run as graphs of 4 and 8; 1 with graphs, and the warm-up steps.
        assert!(v["graph_captures"].as_u64().unwrap() >= 3, "{v:#}");
        assert!(v["graph_replays"].as_u64().unwrap() >= 4 * 7, "{v:#}");
        // Serving's start at the default share: the graphs of batches 1, 2 and 4 (one
        // attention partition of 64 positions), and none captured by the steps after it.
        let s = &v["serving_start"];
        assert_eq!(s["gpu_memory_utilization"], 0.9, "{s:#}");
        assert_eq!(s["graphs"], 3, "{s:#}");
        assert_eq!(s["graphs_largest_batch"], 4, "{s:#}");
        assert_eq!(s["captures_while_serving"], 0, "{s:#}");
        assert!(s["kv_blocks"].as_u64().unwrap() > 1000, "{s:#}");
    }

    /// The launch floor on the CPU build of the kernels (timed by the clock there): every way
    /// measured, each a positive time a launch.
    #[test]
    fn the_launch_floor_is_measured_each_way() {
        let dir = std::env::temp_dir().join("starfire-cuda-cpu");
        let dev = engine::cuda::device::HostDevice::build(&dir)
            .unwrap()
            .with_timing();
        let v = launch_floor(&dev, 20, 3).unwrap();
        assert_eq!(v["launches"], 20);
        let runs = v["runs"].as_array().unwrap();
        let ways: Vec<_> = runs
            .iter()
            .map(|r| {
                (
                    r["blocks"].as_u64().unwrap(),
                    r["overlapped"].as_bool().unwrap(),
                )
            })
            .collect();
        assert_eq!(ways, [(1, true), (1, false), (144, true), (144, false)]);
        for r in runs {
            for k in ["eager_us", "graph_us"] {
                let us = r[k].as_f64().unwrap_or(0.0);
                assert!(us > 0.0 && us.is_finite(), "{k}: {v:#}");
            }
        }
        // A device that does not time launches says so.
        let untimed = engine::cuda::device::HostDevice::build(&dir).unwrap();
        let e = launch_floor(&untimed, 5, 1).unwrap_err();
        assert!(e.to_string().contains("did not time"), "{e}");
    }

    #[test]
    fn matvec_choices_list_each_shape_timed() {
        let [a, b, ..] = engine::cuda::MATVEC_SHAPES;
        let c = MatvecChoice {
            weights: "q8_0",
            rows: 49152,
            cols: 576,
            tokens: 1,
            input: engine::cuda::MatvecInput::Quantized,
            timed: vec![(a, 0.02), (b, 0.01)],
            chosen: b,
        };
        assert_eq!(
            matvec_choices_json(&[c]),
            json!([{
                "weights": "q8_0",
                "rows": 49152,
                "cols": 576,
                "tokens": 1,
                "input": "Quantized",
                "chosen": "matvec_q8_0_r2t1",
                "ms": {"matvec_q8_0_r1t1": 0.02, "matvec_q8_0_r2t1": 0.01},
            }])
        );
    }

    #[test]
    fn a_failing_run_leaves_its_error_in_its_place() {
        let mut errors = Vec::new();
        assert_eq!(
            kept(Ok(json!({"x": 1})), "fine", &mut errors),
            json!({"x": 1})
        );
        let v = kept(
            Err(anyhow::anyhow!("capture invalidated")),
            "decode at batch 64",
            &mut errors,
        );
        assert_eq!(v["error"], "decode at batch 64: capture invalidated");
        assert_eq!(errors, vec!["decode at batch 64: capture invalidated"]);
    }

    #[test]
    fn the_seeded_model_runs_on_the_cpu_with_a_numbered_tokenizer() {
        let mut cfg = default_model_shapes();
        (cfg.num_layers, cfg.vocab_size) = (2, 512);
        let t = Tokenizer::numbered(cfg.vocab_size).unwrap();
        assert_eq!(t.encode("<3> <7>  <511>", false).unwrap(), vec![3, 7, 511]);
        let model = std::sync::Arc::new(Model::synthetic(cfg, t, 1).unwrap());
        let mut seqs = Seqs {
            tokens: vec![prompt(20, 1, 512), prompt(9, 2, 512)],
            per_seq: 3,
        };
        let mut cpu = CpuForward::new(model, BLOCK, 6).unwrap();
        let first = cpu.step(&seqs.prefill()).unwrap();
        let next: Vec<u32> = first.iter().map(|l| argmax(l)).collect();
        let b = seqs.decode(&next);
        assert_eq!(b.seqs[0].positions, vec![20]);
        assert_eq!(b.seqs[1].block_table, vec![3, 4, 5]);
        assert_eq!(cpu.step(&b).unwrap().len(), 2);
    }
}
