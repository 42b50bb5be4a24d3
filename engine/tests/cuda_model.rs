//! The CUDA forward pass (`engine::cuda::model::DeviceModel`) against the CPU engine on the
//! same weights: a small model of seeded random weights with the default model's tokenizer and
//! layer types (Q4_1 layers, Q8_0 embeddings and output), two sequences prefilled together in
//! one step across several KV blocks, then decoded together. Runs on the CPU through
//! `HostDevice` (the kernels compiled as C++), and on a GPU through `CudaDevice` where a driver
//! is present (skipped with one line elsewhere).

use engine::cuda::device::{CudaDevice, Device, HostDevice};
use engine::cuda::model::DeviceModel;
use engine::{Model, SequenceStep, StepBatch, TextModel};

fn small_model() -> Model {
    let path = engine::model_cache::find_default_model().expect("run `starfire model fetch` first");
    let text = TextModel::load(&path).expect("the default model's text side");
    let mut cfg = text.config.clone();
    cfg.hidden_size = 128;
    cfg.num_layers = 2;
    cfg.num_heads = 4;
    cfg.num_kv_heads = 2;
    cfg.head_dim = 32;
    cfg.intermediate_size = 256;
    cfg.vocab_size = 320;
    Model::synthetic(cfg, text.tokenizer, 7).expect("a synthetic model")
}

/// Largest |a - b| over the row, and whether the greedy tokens agree (or the CPU's top two are
/// within 0.1 of each other, where either answer is right). The two paths differ where the CPU
/// engine follows llama.cpp (f16 attention accumulators, f64 norm sums) and the kernels keep
/// f32; on random weights that moves logits by a few percent of their range, which the
/// comparison allows (5 %).
fn compare(gpu: &[f32], cpu: &[f32]) -> (f32, bool) {
    let diff = gpu
        .iter()
        .zip(cpu)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    let argmax = |v: &[f32]| (0..v.len()).fold(0, |b, i| if v[i] > v[b] { i } else { b });
    let (g, c) = (argmax(gpu), argmax(cpu));
    let mut sorted = cpu.to_vec();
    sorted.sort_by(|a, b| b.total_cmp(a));
    (diff, g == c || sorted[0] - sorted[1] < 0.1)
}

fn forward_matches_the_cpu_engine<D: Device>(dev: D) {
    let model = small_model();
    let bs = 16;
    let num_blocks = 12;
    let mut cpu_cache = model.new_kv_cache(bs, num_blocks).unwrap();
    let mut gpu = DeviceModel::new(dev, &model, bs, num_blocks).unwrap();
    let vocab = model.config.vocab_size as u32;
    let prompt_a: Vec<u32> = (0..37).map(|i| (i * 7 + 3) % vocab).collect();
    let prompt_b: Vec<u32> = (0..5).map(|i| (i * 11 + 1) % vocab).collect();
    let table_a = vec![3u32, 0, 5, 9];
    let table_b = vec![1u32, 7];
    let mut steps = vec![StepBatch {
        seqs: vec![
            SequenceStep::contiguous(prompt_a.clone(), 0, table_a.clone(), bs, true),
            SequenceStep::contiguous(prompt_b.clone(), 0, table_b.clone(), bs, true),
        ],
    }];
    let (mut len_a, mut len_b) = (prompt_a.len(), prompt_b.len());
    let mut history_a = prompt_a.clone();
    let mut last_a = Vec::new();
    let mut worst = 0f32;
    for step in 0..4 {
        let batch = steps.pop().unwrap();
        let want = model.step(&mut cpu_cache, &batch).unwrap();
        let got = gpu.step(&batch).unwrap();
        assert_eq!(got.len(), want.len());
        let mut next = Vec::new();
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            let scale = w.iter().fold(0f32, |m, v| m.max(v.abs()));
            let (diff, same) = compare(g, w);
            worst = worst.max(diff / scale);
            assert!(
                diff <= 0.05 * scale,
                "step {step}, sequence {i}: logits differ by {diff} (scale {scale})"
            );
            assert!(same, "step {step}, sequence {i}: the greedy tokens differ");
            next.push((0..w.len()).fold(0, |b, j| if w[j] > w[b] { j } else { b }) as u32);
        }
        last_a = got[0].clone();
        if step < 3 {
            history_a.push(next[0]);
        }
        steps.push(StepBatch {
            seqs: vec![
                SequenceStep::contiguous(vec![next[0]], len_a, table_a.clone(), bs, true),
                SequenceStep::contiguous(vec![next[1]], len_b, table_b.clone(), bs, true),
            ],
        });
        len_a += 1;
        len_b += 1;
    }
    eprintln!("largest logit difference relative to the row's largest logit: {worst:.2e}");

    // The device path against itself: sequence A's whole history prefilled at once into other
    // blocks gives its last decode step's logits. Every token's numbers are computed the same
    // way whatever else is in the step, so they are equal (up to the order of the warp sums).
    let again = gpu
        .step(&StepBatch {
            seqs: vec![SequenceStep::contiguous(
                history_a.clone(),
                0,
                vec![2, 4, 6, 8],
                bs,
                true,
            )],
        })
        .unwrap();
    let diff = again[0]
        .iter()
        .zip(&last_a)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    assert!(
        diff <= 1e-4,
        "prefilled at once, the logits differ from the decode steps' by {diff}"
    );
}

#[test]
fn on_the_cpu_the_cuda_forward_pass_matches_the_cpu_engine() {
    let dev =
        HostDevice::build(&std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("cuda-cpu"))
            .unwrap();
    forward_matches_the_cpu_engine(dev);
}

#[test]
fn on_a_gpu_the_cuda_forward_pass_matches_the_cpu_engine() {
    if !engine::cuda::driver_present() {
        // `scripts/gpu-check` sets it on the GPU machine: there a missing driver is a failure.
        assert!(
            std::env::var_os("STARFIRE_REQUIRE_GPU").is_none(),
            "STARFIRE_REQUIRE_GPU is set but no CUDA driver was found"
        );
        eprintln!("skipped: no CUDA driver found (this runs on a GPU machine)");
        return;
    }
    forward_matches_the_cpu_engine(CudaDevice::open(0).unwrap());
}

#[test]
fn without_a_driver_opening_the_device_is_a_clear_error() {
    if engine::cuda::driver_present() {
        eprintln!("skipped: a CUDA driver is present");
        return;
    }
    let err = CudaDevice::open(0)
        .err()
        .expect("no device without a driver")
        .to_string();
    assert_eq!(
        err,
        "no CUDA driver found; backend = \"cuda\" needs an NVIDIA GPU"
    );
}
