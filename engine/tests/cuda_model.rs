//! The CUDA forward pass (`engine::cuda::model::DeviceModel`) against the CPU engine on the
//! same weights: a small model of seeded random weights with the default model's layer types
//! (Q4_1 layers, Q8_0 embeddings and output; no model file needed, so it runs on the GPU
//! machine), two sequences prefilled together in one step across several KV blocks, then
//! decoded together. Runs on the CPU through
//! `HostDevice` (the kernels compiled as C++), and on a GPU through `CudaDevice` where a driver
//! is present (skipped with one line elsewhere).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};

use engine::cuda;
use engine::cuda::device::{
    bytes_of, bytes_of_mut, CudaDevice, Device, Gemm, HostBuf, HostDevice, HostGraph, KArg, Launch,
    Schedule, SMEM_OPT_IN_SM_90, SMEM_WITHOUT_OPT_IN,
};
use engine::cuda::model::{DeviceModel, GemmWeights, KvCacheSize, StepLimits};
use engine::model::{Architecture, ModelConfig, RopeStyle};
use engine::sampling::{DeviceSample, RowPick};
use engine::{Model, SequenceStep, StepBatch, StepOutput, Tokenizer};

/// A small model of seeded random weights with the default model's layer types (Q4_1 layers,
/// Q8_0 embeddings and output) and family settings, made without its file (the GPU machine
/// that runs these tests has none) and a numbered tokenizer (only ids matter here).
fn small_model() -> Model {
    let cfg = ModelConfig {
        architecture: Architecture::Llama,
        hidden_size: 128,
        num_layers: 2,
        num_heads: 4,
        num_kv_heads: 2,
        head_dim: 32,
        intermediate_size: 256,
        vocab_size: 320,
        rms_norm_eps: 1e-5,
        rope_theta: 100_000.0,
        rope_style: RopeStyle::Interleaved,
        max_position_embeddings: 8192,
    };
    Model::synthetic(cfg, Tokenizer::numbered(320).unwrap(), 7).expect("a synthetic model")
}

/// `small_model` with heads of 256 (the largest the attention kernel takes), two query heads
/// per KV head: its attention blocks need more than the 48 KiB of shared memory a launch has
/// without opting in.
fn large_heads_model() -> Model {
    let base = small_model();
    let cfg = ModelConfig {
        num_heads: 2,
        num_kv_heads: 1,
        head_dim: 256,
        hidden_size: 512,
        ..base.config.clone()
    };
    Model::synthetic(cfg, Tokenizer::numbered(320).unwrap(), 11).expect("a synthetic model")
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

/// Which products a test runs through the GEMM path: none (the matrix-vector kernels only),
/// every one, or those of steps of at least `n` tokens (here: the prefills).
#[derive(Clone, Copy, Debug)]
enum Products {
    MatVec,
    Gemm(GemmWeights),
    GemmFrom(usize),
}

impl Products {
    fn set<D: Device>(self, m: &mut DeviceModel<D>) {
        match self {
            Self::MatVec => m.set_gemm(None, GemmWeights::Dequantize),
            Self::Gemm(w) => m.set_gemm(Some(1), w),
            Self::GemmFrom(n) => m.set_gemm(Some(n), GemmWeights::Dequantize),
        }
        .unwrap()
    }
}

fn forward_matches_the_cpu_engine<D: Device>(dev: D, model: Model, products: Products) {
    let bs = 16;
    let num_blocks = 12;
    let mut cpu_cache = model.new_kv_cache(bs, num_blocks).unwrap();
    let mut gpu = DeviceModel::new(dev, &model, bs, num_blocks).unwrap();
    products.set(&mut gpu);
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
    // way whatever else is in the step, so they are equal (up to the order of the warp sums,
    // or of cuBLAS's sums, whose kernels depend on the shapes) where prefill and decode take
    // the same path; where the prefill takes the GEMM path and decode the matrix-vector
    // kernels, they differ as either does from the CPU engine.
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
    let scale = last_a.iter().fold(0f32, |m, v| m.max(v.abs()));
    let tolerance = match products {
        Products::MatVec => 1e-4,
        Products::Gemm(_) => 1e-4 * scale.max(1.0),
        Products::GemmFrom(_) => 0.05 * scale,
    };
    assert!(
        diff <= tolerance,
        "prefilled at once, the logits differ from the decode steps' by {diff} ({products:?})"
    );
}

/// Decode steps run as graphs (three sequences padded to a batch of four, one of them past
/// the first attention partition, here of 64 positions) give the logits that the same steps
/// launched kernel by kernel give, across a prefill that grows the buffers the graphs were
/// captured against; and the greedy rows are those logits' argmax and log-softmax.
fn graphs_match_launches_kernel_by_kernel<D: Device>(
    make: impl Fn() -> D,
    exact: bool,
    products: Products,
) {
    let model = small_model();
    let bs = 16;
    let num_blocks = 80;
    let mut graphed = DeviceModel::new(make(), &model, bs, num_blocks).unwrap();
    let mut eager = DeviceModel::new(make(), &model, bs, num_blocks).unwrap();
    eager.set_graphs(false);
    for m in [&mut graphed, &mut eager] {
        m.set_attention_partition(64).unwrap();
        m.set_graph_batch_limit(8);
        products.set(m);
    }
    let vocab = model.config.vocab_size as u32;
    let prompt =
        |len: usize, k: u32| -> Vec<u32> { (0..len as u32).map(|i| (i * k + 1) % vocab).collect() };
    // Sequence 0 reaches past the first 64 positions: two attention partitions.
    let mut seqs: Vec<(Vec<u32>, Vec<u32>)> = vec![
        (prompt(70, 3), (0..5).collect()),
        (prompt(7, 5), vec![40, 41]),
        (prompt(20, 7), vec![42, 43]),
    ];
    let prefill = StepBatch {
        seqs: seqs
            .iter()
            .map(|(p, t)| SequenceStep::contiguous(p.clone(), 0, t.clone(), bs, true))
            .collect(),
    };
    let a = graphed.step(&prefill).unwrap();
    let b = eager.step(&prefill).unwrap();
    assert_eq!(a, b, "the prefill launched the same way on both");
    let close = |x: &[f32], y: &[f32], what: &str| {
        let d = x
            .iter()
            .zip(y)
            .map(|(p, q)| (p - q).abs())
            .fold(0.0, f32::max);
        assert!(
            if exact { d == 0.0 } else { d <= 1e-4 },
            "{what}: graph and kernel-by-kernel logits differ by {d}"
        );
    };
    let argmax = |v: &[f32]| (0..v.len()).fold(0, |b, i| if v[i] > v[b] { i } else { b }) as u32;
    let mut next: Vec<u32> = b.iter().map(|l| argmax(l)).collect();
    for step in 0..5 {
        if step == 3 {
            // A prefill of more sequences than the graphs' buffers hold logits for (sized for
            // batches of 8) grows them: the graphs captured against the old ones are dropped
            // and captured again.
            let wide = StepBatch {
                seqs: (0..10u32)
                    .map(|i| SequenceStep::contiguous(prompt(3, i + 2), 0, vec![60 + i], bs, true))
                    .collect(),
            };
            let (x, y) = (graphed.step(&wide).unwrap(), eager.step(&wide).unwrap());
            for (i, (x, y)) in x.iter().zip(&y).enumerate() {
                close(x, y, &format!("the wide prefill, sequence {i}"));
            }
        }
        let batch = StepBatch {
            seqs: seqs
                .iter()
                .zip(&next)
                .map(|((p, t), &tok)| {
                    SequenceStep::contiguous(vec![tok], p.len(), t.clone(), bs, true)
                })
                .collect(),
        };
        let greedy: Vec<bool> = (0..seqs.len()).map(|i| i != 1).collect();
        let picks: Vec<RowPick> = greedy
            .iter()
            .map(|&g| if g { RowPick::Greedy } else { RowPick::Logits })
            .collect();
        let got = graphed.step_outputs(&batch, &picks, &mut Vec::new).unwrap();
        let want = eager.step(&batch).unwrap();
        assert_eq!(got.len(), want.len());
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            match g {
                StepOutput::Logits(l) => {
                    assert!(!greedy[i]);
                    close(l, w, &format!("step {step}, sequence {i}"));
                }
                StepOutput::Token {
                    token,
                    logprob,
                    top_logprobs,
                } => {
                    assert!(greedy[i]);
                    assert!(top_logprobs.is_empty());
                    assert_eq!(*token, argmax(w), "step {step}, sequence {i}: greedy token");
                    let lp = engine::sampling::log_softmax(w)[*token as usize];
                    assert!(
                        (lp - logprob).abs() <= 1e-4,
                        "step {step}, sequence {i}: logprob {logprob} against {lp}"
                    );
                }
            }
        }
        for (s, &tok) in seqs.iter_mut().zip(&next) {
            s.0.push(tok);
        }
        next = want.iter().map(|w| argmax(w)).collect();
    }
    // Five decode steps as graphs of four sequences and two partitions: captured once, and
    // once more after the long prefill grew the buffers.
    assert_eq!(graphed.graph_replays, 5);
    assert_eq!(graphed.graph_captures, 2);
    assert_eq!(eager.graph_replays, 0);
}

/// The kernels compiled for this CPU, with the GEMM emulated (off unless the test turns the
/// path on).
fn host() -> HostDevice {
    HostDevice::build(&std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("cuda-cpu"))
        .unwrap()
        .with_gemm()
}

/// The memory methods of a test device wrapping a `HostDevice` in `inner`: the host's.
macro_rules! host_memory {
    () => {
        fn alloc(&self, bytes: usize) -> engine::Result<HostBuf> {
            self.inner.alloc(bytes)
        }
        fn write(&self, dst: &mut HostBuf, src: &[u8]) -> engine::Result<()> {
            self.inner.write(dst, src)
        }
        fn read_at(&self, src: &HostBuf, offset: usize, dst: &mut [u8]) -> engine::Result<()> {
            self.inner.read_at(src, offset, dst)
        }
    };
}

/// The launches of a test device wrapping a `HostDevice` in `inner`: `before` (the device as
/// `this`, the kernel's name as `name`), then the host's; and the host's shared-memory opt-ins.
macro_rules! host_launch {
    (($this:ident, $name:ident) => $before:expr) => {
        fn launch(
            &self,
            name: &'static str,
            at: Launch,
            args: &[KArg<'_, HostBuf>],
        ) -> engine::Result<()> {
            let ($this, $name) = (self, name);
            $before;
            self.inner.launch(name, at, args)
        }
        fn allow_shared_memory(&self, name: &'static str, bytes: u32) -> engine::Result<()> {
            self.inner.allow_shared_memory(name, bytes)
        }
    };
}

/// The GEMM of a test device wrapping a `HostDevice` in `inner`: `before` (the device as
/// `this`), then the host's.
macro_rules! host_gemm {
    ($this:ident => $before:expr) => {
        fn gemm(
            &self,
            g: Gemm,
            a: KArg<'_, HostBuf>,
            b: KArg<'_, HostBuf>,
            c: KArg<'_, HostBuf>,
        ) -> engine::Result<()> {
            let $this = self;
            $before;
            self.inner.gemm(g, a, b, c)
        }
    };
}

/// The kernels compiled for this CPU behind what a driver does that takes overlapped launches
/// one by one but refuses them inside a capture: the launch (or GEMM) fails and the capture is
/// invalidated, so ending it fails too.
struct RefusesOverlapInCapture {
    inner: HostDevice,
    overlap: AtomicBool,
    capturing: AtomicBool,
    invalidated: AtomicBool,
}

impl RefusesOverlapInCapture {
    fn new() -> Self {
        Self {
            inner: host(),
            overlap: AtomicBool::new(true),
            capturing: AtomicBool::new(false),
            invalidated: AtomicBool::new(false),
        }
    }

    fn refuse(&self, what: &str) -> engine::Result<()> {
        if self.capturing.load(Relaxed) && self.overlap.load(Relaxed) {
            self.invalidated.store(true, Relaxed);
            return Err(engine::EngineError::Cuda(format!(
                "{what}: operation not permitted when stream is capturing"
            )));
        }
        Ok(())
    }
}

impl Device for RefusesOverlapInCapture {
    type Buf = HostBuf;
    type Graph = HostGraph;

    host_memory!();
    fn begin_capture(&self) -> engine::Result<()> {
        self.capturing.store(true, Relaxed);
        self.inner.begin_capture()
    }
    fn end_capture(&self) -> engine::Result<HostGraph> {
        self.capturing.store(false, Relaxed);
        let graph = self.inner.end_capture();
        if self.invalidated.swap(false, Relaxed) {
            return Err(engine::EngineError::Cuda(
                "the capture was invalidated by a refused launch".into(),
            ));
        }
        graph
    }
    fn replay(&self, graph: &HostGraph) -> engine::Result<()> {
        self.inner.replay(graph)
    }
    host_launch!((this, name) => this.refuse(name)?);
    fn set_overlap(&self, on: bool) {
        self.overlap.store(on, Relaxed);
    }
    fn overlap(&self) -> bool {
        self.overlap.load(Relaxed)
    }
    fn has_gemm(&self) -> bool {
        self.inner.has_gemm()
    }
    host_gemm!(this => this.refuse("gemm")?);
}

/// Where overlapped launches are refused inside captures, decode steps are captured again
/// without them, and the graphs still equal launches kernel by kernel (the shared test fails
/// on the first refused capture otherwise).
#[test]
fn on_the_cpu_a_capture_refused_with_overlapped_launches_is_taken_again_without_them() {
    graphs_match_launches_kernel_by_kernel(RefusesOverlapInCapture::new, true, Products::MatVec);
    let mut m = DeviceModel::new(RefusesOverlapInCapture::new(), &small_model(), 16, 4).unwrap();
    m.set_gemm(None, GemmWeights::Dequantize).unwrap();
    let prompt = StepBatch {
        seqs: vec![SequenceStep::contiguous(
            vec![1, 2, 3],
            0,
            vec![0],
            16,
            true,
        )],
    };
    m.step(&prompt).unwrap();
    assert!(m.device().overlap());
    m.step(&StepBatch {
        seqs: vec![SequenceStep::contiguous(vec![4], 3, vec![0], 16, true)],
    })
    .unwrap();
    assert_eq!(m.graph_captures, 1);
    assert!(!m.device().overlap(), "launches are no longer overlapped");
}

#[test]
fn on_the_cpu_decode_graphs_match_launches_kernel_by_kernel() {
    graphs_match_launches_kernel_by_kernel(host, true, Products::MatVec);
}

#[test]
fn on_the_cpu_decode_graphs_through_the_gemm_path_match_launches_kernel_by_kernel() {
    graphs_match_launches_kernel_by_kernel(host, true, Products::Gemm(GemmWeights::Dequantize));
}

#[test]
fn on_a_gpu_decode_graphs_match_launches_kernel_by_kernel() {
    if !gpu_or_skip() {
        return;
    }
    graphs_match_launches_kernel_by_kernel(
        || CudaDevice::open(0).unwrap(),
        false,
        Products::MatVec,
    );
}

#[test]
fn on_a_gpu_decode_graphs_through_the_gemm_path_match_launches_kernel_by_kernel() {
    if !gpu_or_skip() {
        return;
    }
    graphs_match_launches_kernel_by_kernel(
        || CudaDevice::open(0).unwrap(),
        false,
        Products::Gemm(GemmWeights::Dequantize),
    );
}

/// Timing at load picks, for each distinct quantized matrix and for one token and for more,
/// the fastest of the candidate shapes; and whatever shapes a model launches, its logits are
/// the same bits (prefill, one-token decode as a graph, and a mixed step), which is what makes
/// choosing by speed safe. (`cuda_kernels` checks each product's bits; here a difference of an
/// ulp in one product would mostly vanish when the next kernel quantizes its output to 8 bits,
/// so this checks that every shape is launched where it should be and computes the same.)
/// `timed`: the device of the model timed at load; `make`: those of the models launching each
/// shape.
fn every_matvec_shape_gives_the_same_logits<D: Device>(timed: D, make: impl Fn() -> D) {
    let model = small_model();
    let bs = 16;
    let timed = DeviceModel::new(timed, &model, bs, 8).unwrap();
    let choices = timed.matvec_choices();
    // q/k/v, attention output, gate/up and down (Q4_1), and the output (Q8_0); 1 and 8 tokens.
    assert_eq!(choices.len(), 2 * 5, "{choices:?}");
    for c in choices {
        let candidates: Vec<_> = cuda::matvec_candidates(c.tokens).copied().collect();
        assert_eq!(
            c.timed.iter().map(|t| t.0).collect::<Vec<_>>(),
            candidates,
            "{c:?}"
        );
        let least = c.timed.iter().map(|t| t.1).fold(f64::INFINITY, f64::min);
        assert!(
            c.timed.iter().any(|t| t.0 == c.chosen && t.1 == least),
            "{c:?}"
        );
    }
    assert!(choices.iter().any(|c| c.weights == "q8_0" && c.rows == 320));
    // Each timed reading its input as it does in a step: q/k/v and gate/up making their norm,
    // down its SwiGLU, the attention output and the output product reading it quantized.
    let input = |rows: usize, cols: usize| {
        let c = choices.iter().find(|c| (c.rows, c.cols) == (rows, cols));
        c.map(|c| c.input)
    };
    assert_eq!(input(128 + 2 * 64, 128), Some(cuda::MatvecInput::Norm));
    assert_eq!(input(2 * 256, 128), Some(cuda::MatvecInput::Norm));
    assert_eq!(input(128, 256), Some(cuda::MatvecInput::SiluMul));
    assert_eq!(input(128, 128), Some(cuda::MatvecInput::Quantized));
    assert_eq!(input(320, 128), Some(cuda::MatvecInput::Quantized));
    drop(timed);

    let vocab = model.config.vocab_size as u32;
    let a: Vec<u32> = (0..7).map(|i| (i * 5 + 2) % vocab).collect();
    let b: Vec<u32> = (0..4).map(|i| (i * 13 + 9) % vocab).collect();
    let steps = [
        vec![SequenceStep::contiguous(a.clone(), 0, vec![0], bs, true)],
        vec![SequenceStep::contiguous(vec![11], 7, vec![0], bs, true)],
        vec![
            SequenceStep::contiguous(vec![12], 8, vec![0], bs, true),
            SequenceStep::contiguous(b, 0, vec![1], bs, true),
        ],
    ];
    let ones: Vec<_> = cuda::matvec_candidates(1).copied().collect();
    let several: Vec<_> = cuda::matvec_candidates(2).copied().collect();
    let mut first: Option<Vec<Vec<u32>>> = None;
    for (i, &one) in ones.iter().enumerate() {
        let many = several[i % several.len()];
        let mut m = DeviceModel::new(make(), &model, bs, 8).unwrap();
        m.set_gemm(None, GemmWeights::Dequantize).unwrap();
        m.set_matvec(one, many).unwrap();
        let mut bits = Vec::new();
        for seqs in &steps {
            for row in m.step(&StepBatch { seqs: seqs.clone() }).unwrap() {
                bits.push(row.iter().map(|v| v.to_bits()).collect::<Vec<u32>>());
            }
        }
        match &first {
            None => first = Some(bits),
            Some(f) => assert!(*f == bits, "{one:?} and {many:?} change the logits"),
        }
    }
    // A one-token shape for several tokens (or the reverse) is refused.
    let mut m = DeviceModel::new(make(), &model, bs, 8).unwrap();
    assert!(m.set_matvec(several[0], several[0]).is_err());
    assert!(m.set_matvec(ones[0], ones[0]).is_err());
}

#[test]
fn on_the_cpu_every_matvec_shape_gives_the_same_logits() {
    // The models that compare shapes are not timed (on the CPU build that takes a while).
    every_matvec_shape_gives_the_same_logits(host().with_timing(), host);
}

#[test]
fn on_a_gpu_every_matvec_shape_gives_the_same_logits() {
    if !gpu_or_skip() {
        return;
    }
    every_matvec_shape_gives_the_same_logits(CudaDevice::open(0).unwrap(), || {
        CudaDevice::open(0).unwrap()
    });
}

/// A prefill of two sequences (37 and 5 tokens: chunks of eight tokens, the last partial) and
/// three decode steps after it, on `dev` as `setup` sets the model: every row's logits as
/// bits, and what the last step launched where `launches` counts the device's launches.
fn prefill_then_decode_bits<D: Device>(
    dev: D,
    setup: impl FnOnce(&mut DeviceModel<D>),
    launches: impl Fn(&D) -> Option<usize>,
) -> (Vec<Vec<u32>>, Option<usize>) {
    let model = small_model();
    let bs = 16;
    let mut m = DeviceModel::new(dev, &model, bs, 8).unwrap();
    setup(&mut m);
    let vocab = model.config.vocab_size as u32;
    let a: Vec<u32> = (0..37).map(|i| (i * 7 + 3) % vocab).collect();
    let b: Vec<u32> = (0..5).map(|i| (i * 11 + 1) % vocab).collect();
    let mut steps = vec![StepBatch {
        seqs: vec![
            SequenceStep::contiguous(a.clone(), 0, vec![0, 1, 2], bs, true),
            SequenceStep::contiguous(b.clone(), 0, vec![3], bs, true),
        ],
    }];
    for i in 0..3u32 {
        let (pa, pb) = (a.len() + i as usize, b.len() + i as usize);
        steps.push(StepBatch {
            seqs: vec![
                SequenceStep::contiguous(vec![11 + i], pa, vec![0, 1, 2], bs, true),
                SequenceStep::contiguous(vec![40 + i], pb, vec![3], bs, true),
            ],
        });
    }
    let mut bits = Vec::new();
    let mut last_step = None;
    for batch in &steps {
        let before = launches(m.device());
        for row in m.step(batch).unwrap() {
            bits.push(row.iter().map(|v| v.to_bits()).collect());
        }
        last_step = launches(m.device()).zip(before).map(|(n, b)| n - b);
    }
    (bits, last_step)
}

/// The products that make their norm's or SwiGLU's input themselves (the default) give the
/// bits of a norm or SwiGLU kernel launched before each (`set_fused_inputs(false)`): in a
/// prefill and in decode steps (`prefill_then_decode_bits`) as graphs and kernel by kernel.
/// `launches`: the launches a device has run, where it counts them; then a decode step
/// launches three kernels a layer fewer (the two norms and SwiGLU).
fn fused_inputs_give_the_same_logits<D: Device>(
    make: impl Fn() -> D,
    launches: impl Fn(&D) -> Option<usize>,
) {
    let run = |fused: bool, graphs: bool| {
        let setup = |m: &mut DeviceModel<D>| {
            m.set_gemm(None, GemmWeights::Dequantize).unwrap();
            m.set_fused_inputs(fused);
            m.set_graphs(graphs);
        };
        prefill_then_decode_bits(make(), setup, &launches)
    };
    let (want, separate) = run(false, false);
    let layers = small_model().config.num_layers;
    for graphs in [false, true] {
        let (got, fused) = run(true, graphs);
        assert!(
            got == want,
            "fused inputs (graphs {graphs}) change the logits"
        );
        if let (Some(fused), Some(separate)) = (fused, separate) {
            assert_eq!(
                fused + 3 * layers,
                separate,
                "a decode step's launches (graphs {graphs})"
            );
        }
    }
}

#[test]
fn on_the_cpu_products_that_make_their_own_input_give_the_same_logits_in_fewer_launches() {
    fused_inputs_give_the_same_logits(host, |d| Some(d.launches_run()));
    // Started as early as a GPU may start them.
    fused_inputs_give_the_same_logits(|| host().with_early_starts(), |_| None);
}

#[test]
fn on_a_gpu_products_that_make_their_own_input_give_the_same_logits() {
    if !gpu_or_skip() {
        return;
    }
    fused_inputs_give_the_same_logits(|| CudaDevice::open(0).unwrap(), |_| None);
}

#[test]
fn on_the_cpu_the_cuda_forward_pass_matches_the_cpu_engine() {
    forward_matches_the_cpu_engine(host(), small_model(), Products::MatVec);
}

/// Heads of 256 take more dynamic shared memory than a launch may have without opting in
/// (a GPU, and `HostDevice` as it, refuse such a launch): the model opts in at load, and the
/// forward pass matches the CPU engine.
#[test]
fn on_the_cpu_heads_of_256_opt_in_for_their_shared_memory_and_match_the_cpu_engine() {
    assert!(cuda::attention_smem(2, 256) > SMEM_WITHOUT_OPT_IN);
    forward_matches_the_cpu_engine(host(), large_heads_model(), Products::MatVec);
}

#[test]
fn on_a_gpu_heads_of_256_opt_in_for_their_shared_memory_and_match_the_cpu_engine() {
    if !gpu_or_skip() {
        return;
    }
    forward_matches_the_cpu_engine(
        CudaDevice::open(0).unwrap(),
        large_heads_model(),
        Products::MatVec,
    );
}

/// A launch with more dynamic shared memory than its kernel opted in for is refused, as a GPU
/// refuses it (with an error that says nothing of why); no kernel opts in for more than a GPU
/// of compute capability 9.0 gives a block.
#[test]
fn a_launch_with_more_shared_memory_than_its_kernel_opted_in_for_is_refused() {
    let dev = host();
    let at = |smem| Launch {
        grid: (1, 1, 1),
        block: 32,
        smem,
    };
    let err = dev
        .launch("attention_partial", at(SMEM_WITHOUT_OPT_IN + 16), &[])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("launching attention_partial: 49168 bytes of dynamic shared memory")
            && err.contains("48 KiB unless it opts in"),
        "{err}"
    );
    dev.allow_shared_memory("attention_partial", SMEM_WITHOUT_OPT_IN + 8)
        .unwrap();
    let err = dev
        .launch("attention_partial", at(SMEM_WITHOUT_OPT_IN + 16), &[])
        .unwrap_err()
        .to_string();
    assert!(err.contains("more than the 49160 it may have"), "{err}");
    let err = dev
        .allow_shared_memory("attention_partial", SMEM_OPT_IN_SM_90 + 1)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("more than the 232448 a block may have on this GPU"),
        "{err}"
    );
    assert!(dev.allow_shared_memory("no_such_kernel", 1024).is_err());
}

/// A launch whose arguments do not fit its kernel's parameters (as the source declares them) is
/// refused: one missing, one of another width (a GPU would read 8 bytes of a 4-byte value), one
/// buffer for two parameters that `__restrict__` says never share memory.
#[test]
fn a_launch_whose_arguments_do_not_fit_its_parameters_is_refused() {
    let dev = host();
    let x = dev.upload(bytes_of(&[1f32, 2.0, 3.0, 4.0])).unwrap();
    let y = dev.upload(bytes_of(&[10f32, 20.0, 30.0, 40.0])).unwrap();
    let at = Launch::new((1, 1, 1), 32);
    let refused =
        |args: &[KArg<'_, HostBuf>]| dev.launch("add_inplace", at, args).unwrap_err().to_string();
    let err = refused(&[KArg::Buf(&x), KArg::Buf(&y)]);
    assert!(
        err.contains("add_inplace: 2 arguments for its 3 parameters"),
        "{err}"
    );
    let err = refused(&[KArg::Buf(&x), KArg::Buf(&y), KArg::I32(4)]);
    assert!(
        err.contains("parameter n is I64, given another kind"),
        "{err}"
    );
    let err = refused(&[KArg::Buf(&x), KArg::I64(0), KArg::I64(4)]);
    assert!(err.contains("parameter delta is Pointer"), "{err}");
    let err = refused(&[KArg::Buf(&x), KArg::Buf(&x), KArg::I64(4)]);
    assert!(err.contains("x and delta are the same memory"), "{err}");
    // Fitting arguments run.
    dev.launch(
        "add_inplace",
        at,
        &[KArg::Buf(&x), KArg::Buf(&y), KArg::I64(4)],
    )
    .unwrap();
    let mut out = [0f32; 4];
    dev.read(&x, bytes_of_mut(&mut out)).unwrap();
    assert_eq!(out, [11.0, 22.0, 33.0, 44.0]);
}

/// A launch of more threads than its kernel's launch bounds is refused, as a GPU refuses it.
#[test]
fn a_launch_past_its_kernels_launch_bounds_is_refused() {
    let at = Launch::new((1, 1, 1), cuda::ATTENTION_MAX_THREADS as u32 + 32);
    let err = host()
        .launch("attention_partial", at, &[])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(
            "launching attention_partial: blocks of 544 threads, more than its launch bounds' 512"
        ),
        "{err}"
    );
}

/// Every launch started as early as programmatic dependent launch lets a GPU start it (its
/// first block runs up to its `SF_WAIT_PRIOR` before the launch before it runs): no kernel reads
/// what the launch before it writes before it waits, so the forward pass (matrix-vector
/// kernels and GEMM path) and decode graphs still match.
#[test]
fn on_the_cpu_launches_started_early_still_match_the_cpu_engine() {
    let early = || host().with_early_starts();
    forward_matches_the_cpu_engine(early(), small_model(), Products::MatVec);
    forward_matches_the_cpu_engine(
        early(),
        small_model(),
        Products::Gemm(GemmWeights::Dequantize),
    );
    graphs_match_launches_kernel_by_kernel(early, true, Products::MatVec);
}

/// Every schedule of a launch's blocks and threads on the CPU ([`Schedule`]: warps in step or in
/// turn, first to last or last to first; every block's shared memory starts as 0xff bytes), the
/// last one with launches started early and buffers that start where an inaccessible page ends,
/// gives the logits' every bit, in a prefill and decode steps (`prefill_then_decode_bits`;
/// attention split into partitions of 32 positions, so the longer sequence takes two and their
/// reduce): a read that no barrier orders where it needs would read the wrong value under one of
/// them, as it may on a GPU.
#[test]
fn on_the_cpu_every_schedule_of_blocks_and_threads_gives_the_same_logits() {
    for (products, graphs) in [
        (Products::MatVec, false),
        (Products::MatVec, true),
        (Products::Gemm(GemmWeights::Dequantize), false),
    ] {
        let logit_bits = |dev| {
            let setup = |m: &mut DeviceModel<HostDevice>| {
                products.set(m);
                m.set_graphs(graphs);
                m.set_attention_partition(32).unwrap();
            };
            prefill_then_decode_bits(dev, setup, |_| None).0
        };
        let want = logit_bits(host());
        assert!(
            want.iter()
                .flatten()
                .all(|&v| f32::from_bits(v).is_finite()),
            "{products:?}, graphs {graphs}: a logit that is not a number"
        );
        for (schedule, early) in [(Schedule::InTurn, false), (Schedule::InTurnLastFirst, true)] {
            let dev = host().with_schedule(schedule);
            // Started early, its buffers also sit right after an inaccessible page: a kernel
            // reaching before a buffer's start faults.
            let dev = if early {
                dev.with_early_starts().with_guard_before()
            } else {
                dev
            };
            assert!(
                logit_bits(dev) == want,
                "{products:?}, graphs {graphs}, {schedule:?}, started early {early}: \
                 the logits depend on the order blocks and threads run in"
            );
        }
    }
}

#[test]
fn on_the_cpu_the_gemm_path_matches_the_cpu_engine() {
    for products in [
        Products::Gemm(GemmWeights::Dequantize),
        Products::Gemm(GemmWeights::Resident),
        Products::GemmFrom(8),
    ] {
        forward_matches_the_cpu_engine(host(), small_model(), products);
    }
}

#[test]
fn on_a_gpu_the_gemm_path_matches_the_cpu_engine() {
    if !gpu_or_skip() {
        return;
    }
    for products in [
        Products::Gemm(GemmWeights::Dequantize),
        Products::Gemm(GemmWeights::Resident),
        Products::GemmFrom(8),
    ] {
        forward_matches_the_cpu_engine(CudaDevice::open(0).unwrap(), small_model(), products);
    }
}

/// `Device::gemm` against a column-major product computed here, for each pair of transposes,
/// with leading dimensions longer than the matrices' rows and operands at offsets into their
/// buffers; and a leading dimension too short is refused.
fn gemm_matches_a_column_major_reference<D: Device>(dev: D) {
    use half::f16;
    assert!(dev.has_gemm());
    let (m, n, k) = (37usize, 5usize, 70usize);
    let value = |i: usize, salt: usize| (((i * 7919 + salt * 104_729) % 1000) as f32 / 500.0) - 1.0;
    for (trans_a, trans_b) in [(false, false), (true, false), (false, true), (true, true)] {
        let (a_rows, a_cols) = if trans_a { (k, m) } else { (m, k) };
        let (b_rows, b_cols) = if trans_b { (n, k) } else { (k, n) };
        let g = Gemm {
            trans_a,
            trans_b,
            m,
            n,
            k,
            lda: a_rows + 3,
            ldb: b_rows + 1,
            ldc: m + 2,
        };
        let a: Vec<f16> = (0..g.lda * a_cols)
            .map(|i| f16::from_f32(value(i, 1)))
            .collect();
        let b: Vec<f16> = (0..g.ldb * b_cols)
            .map(|i| f16::from_f32(value(i, 2)))
            .collect();
        let at = |i: usize, l: usize| {
            if trans_a {
                a[l + i * g.lda]
            } else {
                a[i + l * g.lda]
            }
            .to_f32() as f64
        };
        let bt = |l: usize, j: usize| {
            if trans_b {
                b[j + l * g.ldb]
            } else {
                b[l + j * g.ldb]
            }
            .to_f32() as f64
        };
        // Each operand 16 bytes into a buffer of its own.
        let put = |bytes: &[u8]| {
            let mut buf = dev.alloc(16 + bytes.len()).unwrap();
            let mut v = vec![0u8; 16];
            v.extend_from_slice(bytes);
            dev.write(&mut buf, &v).unwrap();
            buf
        };
        let bits = |v: &[f16]| {
            v.iter()
                .flat_map(|x| x.to_bits().to_le_bytes())
                .collect::<Vec<u8>>()
        };
        let (da, db) = (put(&bits(&a)), put(&bits(&b)));
        let dc = put(&vec![0u8; 4 * g.ldc * n]);
        dev.gemm(g, KArg::At(&da, 16), KArg::At(&db, 16), KArg::At(&dc, 16))
            .unwrap();
        let mut c = vec![0f32; g.ldc * n];
        dev.read_at(&dc, 16, engine::cuda::device::bytes_of_mut(&mut c))
            .unwrap();
        for j in 0..n {
            for i in 0..m {
                let want: f64 = (0..k).map(|l| at(i, l) * bt(l, j)).sum();
                let got = c[i + j * g.ldc] as f64;
                assert!(
                    (got - want).abs() <= 1e-3 * (1.0 + want.abs()),
                    "{g:?}: c[{i}, {j}] = {got}, want {want}"
                );
            }
            // The rows past m in each column of c are left alone.
            assert!(c[j * g.ldc + m..(j + 1) * g.ldc].iter().all(|&v| v == 0.0));
        }
        let short = Gemm {
            lda: a_rows - 1,
            ..g
        };
        let err = dev
            .gemm(
                short,
                KArg::At(&da, 16),
                KArg::At(&db, 16),
                KArg::At(&dc, 16),
            )
            .unwrap_err()
            .to_string();
        assert!(err.contains("leading dimension"), "{err}");
    }
}

#[test]
fn on_the_cpu_the_gemm_matches_a_column_major_reference() {
    gemm_matches_a_column_major_reference(host());
}

#[test]
fn on_a_gpu_the_gemm_matches_a_column_major_reference() {
    if !gpu_or_skip() {
        return;
    }
    let dev = CudaDevice::open(0).unwrap();
    assert!(
        dev.has_gemm(),
        "cuBLAS (libcublas.so.13) was not found on the GPU machine's library path"
    );
    gemm_matches_a_column_major_reference(dev);
}

/// The device memory of `model`'s weights and a KV cache of `num_blocks` blocks of 16 tokens
/// (what `DeviceModel::new` allocates with the GEMM path off).
fn base_bytes(model: &Model, num_blocks: usize) -> usize {
    let mut m = DeviceModel::new(host(), model, 16, num_blocks).unwrap();
    m.set_gemm(None, GemmWeights::Dequantize).unwrap();
    m.device().used_bytes()
}

/// The f16 copies of `model`'s matrices, in bytes (what the GEMM path keeps).
fn resident_bytes(model: &Model) -> usize {
    let c = &model.config;
    2 * (c.num_layers
        * c.hidden_size
        * (c.q_dim() + 2 * c.kv_dim() + c.q_dim() + 3 * c.intermediate_size)
        + c.vocab_size * c.hidden_size)
}

/// Where the device has a GEMM, steps from 16 tokens take it by default, with f16 copies of
/// the matrices kept where they take at most a quarter of the memory left after the weights
/// and the KV cache.
#[test]
fn the_gemm_path_is_on_by_default_where_the_device_has_one() {
    use engine::cuda::model::GEMM_MIN_TOKENS;
    let model = small_model();
    let (base, half) = (base_bytes(&model, 4), resident_bytes(&model));
    let default = |dev: HostDevice| DeviceModel::new(dev, &model, 16, 4).unwrap().gemm();
    assert_eq!(
        default(host().with_memory(base + 4 * half)),
        (Some(GEMM_MIN_TOKENS), GemmWeights::Resident)
    );
    assert_eq!(
        default(host().with_memory(base + 4 * half - 1)),
        (Some(GEMM_MIN_TOKENS), GemmWeights::Dequantize)
    );
    assert_eq!(
        default(host()),
        (Some(GEMM_MIN_TOKENS), GemmWeights::Dequantize)
    );
    let plain =
        HostDevice::build(&std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("cuda-cpu"))
            .unwrap();
    assert_eq!(default(plain).0, None);
}

/// A KV cache that does not fit beside the weights is refused before anything is allocated
/// for it, saying what to lower.
#[test]
fn a_kv_cache_too_large_for_the_device_is_refused_at_start() {
    let model = small_model();
    let base = base_bytes(&model, 40);
    DeviceModel::new(host().with_memory(base), &model, 16, 40).unwrap();
    let err = DeviceModel::new(host().with_memory(base - 1), &model, 16, 40)
        .err()
        .expect("refused")
        .to_string();
    assert!(
        err.contains("KV cache of 40 blocks") && err.contains("lower kv_cache_memory"),
        "{err}"
    );
}

/// Heads the attention kernel cannot run are refused when the weights would be uploaded,
/// naming the limit: more than 16 query heads per KV head (a block has at most 512 threads),
/// a head size that is not a multiple of 32.
#[test]
fn heads_the_attention_kernel_cannot_run_are_refused_at_load() {
    let with = |num_heads: usize, num_kv_heads: usize, head_dim: usize| {
        let base = small_model();
        let cfg = ModelConfig {
            num_heads,
            num_kv_heads,
            head_dim,
            hidden_size: num_heads * head_dim,
            ..base.config.clone()
        };
        let model = Model::synthetic(cfg, Tokenizer::numbered(320).unwrap(), 7).unwrap();
        DeviceModel::new(host(), &model, 16, 8)
            .err()
            .map(|e| e.to_string())
    };
    assert_eq!(with(16, 1, 32), None, "16 query heads per KV head run");
    let err = with(17, 1, 32).expect("refused");
    assert!(
        err.contains("17 query heads per KV head is more than the CUDA attention kernel's 16"),
        "{err}"
    );
    let err = with(4, 2, 48).expect("refused");
    assert!(err.contains("head size 48 is not supported"), "{err}");
}

/// The serving limits the reserve test uses: steps of up to 96 tokens and 4 sequences, each of
/// up to 300 positions.
const LIMITS: StepLimits = StepLimits {
    max_tokens: 96,
    max_seqs: 4,
    max_context: 300,
};

/// Steps within `reserve`'s limits after it: a prefill of the most tokens, decode steps of the
/// most sequences (as graphs, greedy and sampled on the device with every token penalized and a
/// grammar's mask, and with full logits) past the first attention partition (of 32
/// positions), on the matrix-vector kernels and on the GEMM path. Where `used` can tell (the
/// CPU build of the kernels counts its buffers), they allocate nothing.
fn steps_after_reserve<D: Device>(make: impl Fn() -> D, used: impl Fn(&D) -> Option<usize>) {
    let model = small_model();
    let vocab = model.config.vocab_size as u32;
    for products in [
        Products::MatVec,
        Products::GemmFrom(16),
        Products::Gemm(GemmWeights::Resident),
    ] {
        let mut m = DeviceModel::new(make(), &model, 16, 100).unwrap();
        m.set_attention_partition(32).unwrap();
        products.set(&mut m);
        m.reserve(LIMITS).unwrap();
        let reserved = used(m.device());
        // Four prompts of 24 tokens: 96 tokens in one step.
        let tables: Vec<Vec<u32>> = (0..4).map(|i| (i * 20..i * 20 + 19).collect()).collect();
        let mut lens = [24usize; 4];
        let prefill = StepBatch {
            seqs: (0..4)
                .map(|i| {
                    let p = (0..24).map(|j| (j * (i + 3) + 1) % vocab).collect();
                    SequenceStep::contiguous(p, 0, tables[i as usize].clone(), 16, true)
                })
                .collect(),
        };
        let mut next: Vec<u32> = m
            .step(&prefill)
            .unwrap()
            .iter()
            .map(|l| (0..l.len()).fold(0, |b, j| if l[j] > l[b] { j } else { b }) as u32)
            .collect();
        let sample = DeviceSample {
            temperature: 0.8,
            top_k: 20,
            top_p: 0.9,
            min_p: 0.0,
            u: 0.5,
            // Every token of the vocabulary: the most edits a row can have
            // (`engine::sampling::max_device_edits`).
            edits: (0..vocab).map(|t| (t, [0.5, 1.1, 0.2])).collect(),
            // And the longest list of alternatives.
            top_logprobs: engine::cuda::TOP_LOGPROBS,
            // And a grammar's mask, given with each step.
            masked: true,
        };
        let picks = [
            RowPick::Greedy,
            RowPick::Sample(sample.clone()),
            RowPick::Logits,
            RowPick::Sample(sample),
        ];
        let every_other: Vec<u32> = (0..vocab).step_by(2).collect();
        let mask = engine::structured::Mask::from_tokens(vocab as usize, &every_other, &[]);
        let mut masks = || vec![None, Some(mask.clone()), None, Some(mask.clone())];
        // Decode past position 32: two attention partitions.
        for _ in 0..12 {
            let batch = StepBatch {
                seqs: (0..4)
                    .map(|i| {
                        SequenceStep::contiguous(
                            vec![next[i]],
                            lens[i],
                            tables[i].clone(),
                            16,
                            true,
                        )
                    })
                    .collect(),
            };
            let out = m.step_outputs(&batch, &picks, &mut masks).unwrap();
            for (i, o) in out.iter().enumerate() {
                next[i] = match o {
                    StepOutput::Token { token, .. } => {
                        assert!(i % 2 == 0 || token % 2 == 0, "row {i}: masked: {token}");
                        *token
                    }
                    StepOutput::Logits(l) => {
                        (0..l.len()).fold(0, |b, j| if l[j] > l[b] { j } else { b }) as u32
                    }
                };
                lens[i] += 1;
            }
        }
        assert_eq!(
            used(m.device()),
            reserved,
            "{products:?}: the steps allocated device memory after reserve"
        );
        assert_eq!(m.graph_replays, 12, "{products:?}: decode ran as graphs");
    }
}

#[test]
fn on_the_cpu_steps_within_the_limits_allocate_nothing_after_reserve() {
    steps_after_reserve(host, |d| Some(d.used_bytes()));
}

/// On a GPU the driver's own allocations (the graphs it instantiates) move its free memory,
/// so this checks that the reserved steps run, not what they allocate.
#[test]
fn on_a_gpu_steps_run_within_the_limits_after_reserve() {
    if !gpu_or_skip() {
        return;
    }
    steps_after_reserve(|| CudaDevice::open(0).unwrap(), |_| None);
}

/// A GPU past those the driver sees is refused saying which ones it sees (a wrong
/// `cuda_device`), not with the driver's bare code.
#[test]
fn on_a_gpu_a_device_that_is_not_there_is_refused_by_name() {
    if !gpu_or_skip() {
        return;
    }
    let err = CudaDevice::open(4096).err().expect("refused").to_string();
    assert!(
        err.contains("there is no CUDA device 4096") && err.contains("visible"),
        "{err}"
    );
}

/// The device's own free memory decides: a cache a little larger than it is refused.
#[test]
fn on_a_gpu_a_kv_cache_too_large_for_the_device_is_refused_at_start() {
    if !gpu_or_skip() {
        return;
    }
    let model = small_model();
    let dev = CudaDevice::open(0).unwrap();
    let free = dev
        .memory()
        .expect("a GPU says how much memory it has")
        .free;
    let c = &model.config;
    let per_block = 2 * c.num_layers * 16 * c.kv_dim() * 2;
    let blocks = free / per_block + 16;
    let err = DeviceModel::new(dev, &model, 16, blocks)
        .err()
        .expect("refused")
        .to_string();
    assert!(
        err.contains(&format!("KV cache of {blocks} blocks"))
            && err.contains("lower kv_cache_memory"),
        "{err}"
    );
}

/// On a GPU, the model sized by a share of the device's memory takes about that share of
/// what the driver reports free (its allocations are rounded to pages, and the decode graphs
/// captured at start take a little beyond it, so within 64 MiB), and runs.
#[test]
fn on_a_gpu_a_cache_sized_by_utilization_takes_its_share() {
    if !gpu_or_skip() {
        return;
    }
    let model = small_model();
    let dev = CudaDevice::open(0).unwrap();
    let at_start = dev.memory().expect("a GPU says how much memory it has");
    let budget = (0.05 * at_start.total as f64) as usize;
    let mut m =
        DeviceModel::start(dev, &model, 16, KvCacheSize::Utilization(0.05), LIMITS).unwrap();
    let taken = at_start.free - m.device().memory().unwrap().free;
    let slack = 64 << 20;
    assert!(
        taken <= budget + slack && taken + slack >= budget,
        "took {taken} of a {budget}-byte share"
    );
    // The decode graphs, captured at start: batches of 1, 2 and 4, one partition.
    assert_eq!(m.graph_captures, 3);
    assert_eq!(m.step(&prompt_of_40()).unwrap().len(), 1);
    eprintln!(
        "a 0.05 share of {} MiB: {} blocks, {} MiB taken (with 3 decode graphs)",
        at_start.total >> 20,
        m.num_blocks(),
        taken >> 20
    );
}

/// Where the steps' memory does not fit beside the GEMM path's kept f16 weights, `reserve`
/// gives those up (dequantizing before each product) rather than fail; where it does not fit
/// even then, it fails at once and says what to lower.
#[test]
fn reserve_gives_up_kept_f16_weights_before_it_fails() {
    let model = small_model();
    // Long prefills: the steps' buffers are larger than the kept copies.
    let limits = StepLimits {
        max_tokens: 1024,
        max_seqs: 16,
        max_context: 2048,
    };
    let (base, half) = (base_bytes(&model, 100), resident_bytes(&model));
    let need = |weights: GemmWeights| {
        let mut m = DeviceModel::new(host(), &model, 16, 100).unwrap();
        m.set_gemm(Some(16), weights).unwrap();
        let before = m.device().used_bytes();
        m.reserve(limits).unwrap();
        m.device().used_bytes() - before
    };
    let (kept, dequantized) = (need(GemmWeights::Resident), need(GemmWeights::Dequantize));
    // Memory that keeps the copies at start (a quarter of what is left after the cache) and
    // holds the dequantizing path's buffers, but not the kept copies and their buffers.
    let memory = (base + 4 * half).max(base + dequantized);
    assert!(
        base + half + kept > memory,
        "the limits are meant to fit only without the kept copies: {base} {half} {kept} {dequantized}"
    );
    let mut m = DeviceModel::new(host().with_memory(memory), &model, 16, 100).unwrap();
    assert_eq!(m.gemm().1, GemmWeights::Resident);
    m.reserve(limits).unwrap();
    assert_eq!(m.gemm(), (Some(16), GemmWeights::Dequantize));

    let mut m =
        DeviceModel::new(host().with_memory(base + dequantized - 1), &model, 16, 100).unwrap();
    let err = m.reserve(limits).unwrap_err().to_string();
    assert!(
        err.contains("steps of up to 1024 tokens and 16 sequences")
            && err.contains("max_num_batched_tokens"),
        "{err}"
    );
}

/// One prompt of 40 tokens in blocks 0 to 2, for a step after start.
fn prompt_of_40() -> StepBatch {
    StepBatch {
        seqs: vec![SequenceStep::contiguous(
            (0..40).collect(),
            0,
            vec![0, 1, 2],
            16,
            true,
        )],
    }
}

/// With a share of the device's memory (vLLM's `gpu_memory_utilization`), the KV cache takes
/// what the weights and the step buffers leave of it: the model's memory stays within the
/// share, one block more would not, and steps then allocate nothing. Memory other processes
/// took counts against the device, not against the share; a share larger than what is free is
/// refused, as is one too small for a single block.
#[test]
fn a_cache_sized_by_utilization_takes_what_the_weights_and_steps_leave() {
    let model = small_model();
    let per_block =
        engine::KvCache::bytes_per_block(model.config.num_layers, model.config.kv_dim(), 16);
    let total = 64 << 20;
    let dev = host().with_memory(total);
    // Another process's memory: a quarter of the device.
    let other = dev.alloc(total / 4).unwrap();
    let budget = (0.5 * total as f64) as usize;
    let mut m = DeviceModel::start(dev, &model, 16, KvCacheSize::Utilization(0.5), LIMITS).unwrap();
    let taken = m.device().used_bytes() - total / 4;
    assert!(taken <= budget, "{taken} > {budget}");
    assert!(
        taken + per_block > budget,
        "a block more would fit: {taken} + {per_block} <= {budget}"
    );
    // The blocks, and the padding block, are what the cache took.
    assert!(m.num_blocks() > 100, "{}", m.num_blocks());
    let before = m.device().used_bytes();
    assert_eq!(m.step(&prompt_of_40()).unwrap().len(), 1);
    assert_eq!(
        m.device().used_bytes(),
        before,
        "the step allocated after start"
    );

    let refused = |dev: HostDevice, cache: KvCacheSize| {
        DeviceModel::start(dev, &model, 16, cache, LIMITS)
            .err()
            .expect("refused")
            .to_string()
    };
    // 0.8 of the device asked for, with a quarter of it taken by another process.
    let dev = host().with_memory(total);
    let _other = dev.alloc(total / 4).unwrap();
    let err = refused(dev, KvCacheSize::Utilization(0.8));
    assert!(
        err.contains("less than the 51.2 MiB that gpu_memory_utilization 0.8 asks for"),
        "{err}"
    );
    // A share that the weights and step buffers fill.
    // (`base_bytes` of no blocks: the weights and the padding block.)
    let fraction = base_bytes(&model, 0) as f64 / total as f64;
    let err = refused(
        host().with_memory(total),
        KvCacheSize::Utilization(fraction),
    );
    assert!(
        err.contains("leaves no room for a KV cache")
            && err.contains("raise gpu_memory_utilization"),
        "{err}"
    );
    for bad in [0.0, -0.5, 1.5, f64::NAN] {
        let err = refused(host().with_memory(total), KvCacheSize::Utilization(bad));
        assert!(err.contains("above 0 and at most 1"), "{bad}: {err}");
    }
    let err = refused(host(), KvCacheSize::Utilization(0.9));
    assert!(err.contains("set kv_cache_memory"), "{err}");
    drop(other);
}

/// `kv_cache_memory` counts the device's f16 bytes: as many blocks as it holds, and a budget
/// smaller than one block is refused.
#[test]
fn a_cache_sized_in_bytes_holds_as_many_blocks_as_fit() {
    let model = small_model();
    let per_block =
        engine::KvCache::bytes_per_block(model.config.num_layers, model.config.kv_dim(), 16);
    assert_eq!(per_block, 2 * 2 * 16 * 64 * 2);
    let m = DeviceModel::start(
        host(),
        &model,
        16,
        KvCacheSize::Bytes(10 * per_block as u64 + 1),
        LIMITS,
    )
    .unwrap();
    assert_eq!(m.num_blocks(), 10);
    let err = DeviceModel::start(
        host(),
        &model,
        16,
        KvCacheSize::Bytes(per_block as u64 - 1),
        LIMITS,
    )
    .err()
    .expect("refused")
    .to_string();
    assert!(err.contains("holds no block"), "{err}");
}

/// `start` captures every decode graph a step within the limits can take (each batch size
/// bucket up to `max_seqs`, each power-of-two count of attention partitions up to
/// `max_context`), so serving captures none: decode steps of 1, 2 and 3 sequences at
/// positions that need 1, 2 and 3 partitions replay them, and give exactly the outputs of the
/// same steps launched kernel by kernel by a model that had no warm-up. (The positions before
/// each step's token hold what the device's zeroed memory holds, in both models, unless the
/// warm-up wrote outside the padding block. A prefill of 1,000 tokens through the kernels
/// compiled for the CPU would take a minute.)
#[test]
fn start_captures_every_decode_graph_so_serving_captures_none() {
    let model = small_model();
    let bs = 16;
    let limits = StepLimits {
        max_tokens: 16,
        max_seqs: 4,
        max_context: 1100,
    };
    let start = || DeviceModel::start(host(), &model, bs, KvCacheSize::Blocks(120), limits);
    let mut graphed = start().unwrap();
    // Buckets 1, 2 and 4; 1, 2 and 4 partitions of 512 positions (1100 needs 3).
    assert_eq!(graphed.graph_captures, 9);
    assert_eq!(graphed.graph_replays, 0);
    let at_start = graphed.last_capture;
    assert_eq!(
        (at_start.graphs, at_start.largest_batch, at_start.most_parts),
        (9, 4, 4)
    );
    // The same model without the warm-up (`start` with a block count is `new` and
    // `reserve`), launching kernel by kernel.
    let mut eager = DeviceModel::new(host(), &model, bs, 120).unwrap();
    eager.reserve(limits).unwrap();
    eager.set_graphs(false);
    let again = graphed.capture_graphs().unwrap();
    assert_eq!(again.graphs, 0, "nothing left to capture: {again:?}");

    // Positions 20, 530 and 1030: one, two and three partitions of context.
    let positions = [20usize, 530, 1030];
    let mut first = 0u32;
    let tables: Vec<Vec<u32>> = positions
        .iter()
        .map(|&p| {
            let blocks = (p + 1).div_ceil(bs) as u32;
            first += blocks;
            (first - blocks..first).collect()
        })
        .collect();
    for seqs in 1..=3 {
        let batch = StepBatch {
            seqs: (0..seqs)
                .map(|i| {
                    let token = (7 * i + seqs) as u32;
                    SequenceStep::contiguous(vec![token], positions[i], tables[i].clone(), bs, true)
                })
                .collect(),
        };
        assert_eq!(
            graphed.step(&batch).unwrap(),
            eager.step(&batch).unwrap(),
            "a decode step of {seqs} sequences"
        );
    }
    assert_eq!(graphed.graph_replays, 3);
    assert_eq!(graphed.graph_captures, 9, "serving captured a graph");
    assert_eq!((eager.graph_replays, eager.graph_captures), (0, 0));

    // Partitions of 32 positions drop the graphs; capturing them again takes 64 partitions
    // (1100 positions need 35), more than the buffers were reserved for: they grow before the
    // first capture, not midway (which would drop the graphs captured before).
    graphed.set_attention_partition(32).unwrap();
    let again = graphed.capture_graphs().unwrap();
    assert_eq!((again.graphs, again.most_parts), (3 * 7, 64));
    for seqs in 1..=3 {
        let batch = StepBatch {
            seqs: (0..seqs)
                .map(|i| {
                    SequenceStep::contiguous(vec![1], positions[i], tables[i].clone(), bs, true)
                })
                .collect(),
        };
        graphed.step(&batch).unwrap();
    }
    assert_eq!(graphed.graph_captures, 9 + 21, "serving captured a graph");
}

/// The kernels compiled for this CPU behind a device whose timing gives every replay of a graph
/// with a GEMM in it `gemm_ms`, and of one without `matvec_ms`; plain launches take no time. Launches, GEMMs and graphs
/// are the host's, except that what is timed is only counted, not run (its results are not
/// read, and on the CPU it would take minutes); a graph remembers whether a GEMM was captured
/// in it.
struct TimesPaths {
    inner: HostDevice,
    matvec_ms: f64,
    gemm_ms: f64,
    timing: AtomicBool,
    /// GEMMs since the capture began.
    gemms: AtomicUsize,
    /// Replays of graphs with a GEMM in them, and without, since the timing began.
    with_gemm: AtomicUsize,
    without: AtomicUsize,
}

impl TimesPaths {
    fn new(matvec_ms: f64, gemm_ms: f64) -> Self {
        Self {
            inner: host(),
            matvec_ms,
            gemm_ms,
            timing: AtomicBool::new(false),
            gemms: AtomicUsize::new(0),
            with_gemm: AtomicUsize::new(0),
            without: AtomicUsize::new(0),
        }
    }
}

impl Device for TimesPaths {
    type Buf = HostBuf;
    type Graph = (HostGraph, bool);

    host_memory!();
    fn begin_capture(&self) -> engine::Result<()> {
        self.gemms.store(0, Relaxed);
        self.inner.begin_capture()
    }
    fn end_capture(&self) -> engine::Result<(HostGraph, bool)> {
        Ok((self.inner.end_capture()?, self.gemms.load(Relaxed) > 0))
    }
    fn replay(&self, graph: &(HostGraph, bool)) -> engine::Result<()> {
        let count = if graph.1 {
            &self.with_gemm
        } else {
            &self.without
        };
        count.fetch_add(1, Relaxed);
        if self.timing.load(Relaxed) {
            return Ok(());
        }
        self.inner.replay(&graph.0)
    }
    host_launch!((this, _name) => if this.timing.load(Relaxed) {
        return Ok(());
    });
    fn time_launches(
        &self,
        f: &mut dyn FnMut() -> engine::Result<()>,
    ) -> engine::Result<Option<f64>> {
        self.with_gemm.store(0, Relaxed);
        self.without.store(0, Relaxed);
        self.timing.store(true, Relaxed);
        let timed = f();
        self.timing.store(false, Relaxed);
        timed?;
        let with = self.with_gemm.load(Relaxed) as f64;
        let without = self.without.load(Relaxed) as f64;
        Ok(Some(with * self.gemm_ms + without * self.matvec_ms))
    }
    fn has_gemm(&self) -> bool {
        true
    }
    host_gemm!(this => this.gemms.fetch_add(1, Relaxed));
}

/// Serving's start times each decode batch size from 8 sequences up both ways and keeps the
/// faster: decode steps of that size then compute exactly what a model taking that path for
/// every product computes kernel by kernel (and not what the other path computes), as graphs
/// captured at start; smaller batches keep the matrix-vector kernels, and turning the GEMM
/// path off forgets the choice. `dev`: the device serving starts on; `reference`: those of the
/// models taking one path; `known`: the times a step `dev`'s timing gives (matrix-vector, GEMM)
/// and the path it must then take (GEMM or not), where they are known.
fn decode_steps_take_the_timed_path<D: Device, R: Device>(
    dev: D,
    reference: impl Fn() -> R,
    known: Option<(f64, f64, bool)>,
) {
    use engine::cuda::model::{DecodePath, DECODE_GEMM_MAX_FRACTION, DECODE_PATHS_TIMED_FROM};
    let model = small_model();
    let bs = 16;
    let limits = StepLimits {
        max_tokens: 16,
        max_seqs: 16,
        max_context: 64,
    };
    let decode = |seqs: usize| StepBatch {
        seqs: (0..seqs)
            .map(|i| {
                let token = (7 * i + seqs) as u32 % 320;
                SequenceStep::contiguous(vec![token], 0, vec![i as u32], bs, true)
            })
            .collect(),
    };
    let taking = |gemm: bool| {
        let mut m = DeviceModel::new(reference(), &model, bs, 40).unwrap();
        m.set_graphs(false);
        m.set_gemm(gemm.then_some(1), GemmWeights::Dequantize)
            .unwrap();
        m
    };
    let (mut by_gemm, mut by_matvec) = (taking(true), taking(false));
    assert_eq!(DECODE_PATHS_TIMED_FROM, 8);
    let start = DeviceModel::start(dev, &model, bs, KvCacheSize::Blocks(40), limits);
    let mut m = start.unwrap();
    // The GEMM path from 16 tokens for other steps (its f16 weights, kept or not, are the
    // references' bits).
    assert_eq!(m.gemm().0, Some(16));
    let paths = m.decode_paths().to_vec();
    assert_eq!(paths.iter().map(|p| p.batch).collect::<Vec<_>>(), [8, 16]);
    for p in &paths {
        assert!(p.matvec_ms > 0.0 && p.gemm_ms > 0.0, "{p:?}");
        let faster = p.gemm_ms < DECODE_GEMM_MAX_FRACTION * p.matvec_ms;
        assert_eq!(p.gemm, faster, "{p:?}");
        if let Some((matvec_ms, gemm_ms, gemm)) = known {
            let want = DecodePath {
                batch: p.batch,
                matvec_ms,
                gemm_ms,
                gemm,
            };
            assert_eq!(*p, want);
        }
    }
    // Batches 1, 2, 4, 8 and 16, one partition each; the slower path's graphs of 8 and 16
    // are not kept.
    assert_eq!(m.last_capture.graphs, 5, "{:?}", m.last_capture);
    assert_eq!(m.graph_captures, 7);
    // As graphs, then kernel by kernel (12 sequences: as the graph of 16 would).
    for (seqs, graphs) in [
        (4usize, true),
        (8, true),
        (16, true),
        (12, false),
        (4, false),
    ] {
        m.set_graphs(graphs);
        let bucket = seqs.next_power_of_two();
        let gemm = paths.iter().any(|p| p.batch == bucket && p.gemm);
        let got = m.step(&decode(seqs)).unwrap();
        let (same, other) = if gemm {
            (&mut by_gemm, &mut by_matvec)
        } else {
            (&mut by_matvec, &mut by_gemm)
        };
        assert_eq!(got, same.step(&decode(seqs)).unwrap(), "{seqs} sequences");
        assert_ne!(got, other.step(&decode(seqs)).unwrap(), "{seqs} sequences");
    }
    assert_eq!(m.decode_paths(), paths, "graphs off keep the choice");
    m.set_graphs(true);
    assert_eq!(
        (m.graph_replays, m.graph_captures),
        (3, 7),
        "serving captured"
    );
    // Without the GEMM path there is nothing to choose between.
    m.set_gemm(None, GemmWeights::Dequantize).unwrap();
    assert!(m.decode_paths().is_empty());
    m.capture_graphs().unwrap();
    assert!(m.decode_paths().is_empty());
    assert_eq!(
        m.step(&decode(16)).unwrap(),
        by_matvec.step(&decode(16)).unwrap()
    );
}

#[test]
fn on_the_cpu_decode_steps_take_the_path_timing_found_faster() {
    // GEMM twice as fast, and half as fast.
    for (matvec_ms, gemm_ms, gemm) in [(2.0, 1.0, true), (1.0, 2.0, false)] {
        let dev = TimesPaths::new(matvec_ms, gemm_ms);
        decode_steps_take_the_timed_path(dev, host, Some((matvec_ms, gemm_ms, gemm)));
    }
    // 3 % faster is within noise: the matrix-vector kernels are kept (what steps then compute
    // is the half-as-fast case's).
    let dev = TimesPaths::new(1.0, 0.96875);
    let limits = StepLimits {
        max_tokens: 8,
        max_seqs: 8,
        max_context: 64,
    };
    let m = DeviceModel::start(dev, &small_model(), 16, KvCacheSize::Blocks(8), limits).unwrap();
    let kept = engine::cuda::model::DecodePath {
        batch: 8,
        matvec_ms: 1.0,
        gemm_ms: 0.96875,
        gemm: false,
    };
    assert_eq!(m.decode_paths(), [kept]);
}

#[test]
fn on_a_gpu_decode_steps_take_the_path_timing_found_faster() {
    if !gpu_or_skip() {
        return;
    }
    let open = || CudaDevice::open(0).unwrap();
    decode_steps_take_the_timed_path(open(), open, None);
}

#[test]
fn the_gemm_path_is_refused_where_the_device_has_no_gemm() {
    let dev =
        HostDevice::build(&std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("cuda-cpu"))
            .unwrap();
    let mut m = DeviceModel::new(dev, &small_model(), 16, 4).unwrap();
    let err = m
        .set_gemm(Some(16), GemmWeights::Dequantize)
        .unwrap_err()
        .to_string();
    assert!(err.contains("needs cuBLAS"), "{err}");
    m.set_gemm(None, GemmWeights::Dequantize).unwrap();
}

/// Whether a GPU test can run here; without a driver it says so in one line (and fails where
/// `scripts/gpu-check` set `STARFIRE_REQUIRE_GPU`: there a missing driver is a failure).
fn gpu_or_skip() -> bool {
    if engine::cuda::driver_present() {
        return true;
    }
    assert!(
        std::env::var_os("STARFIRE_REQUIRE_GPU").is_none(),
        "STARFIRE_REQUIRE_GPU is set but no CUDA driver was found"
    );
    eprintln!("skipped: no CUDA driver found (this runs on a GPU machine)");
    false
}

#[test]
fn on_a_gpu_the_cuda_forward_pass_matches_the_cpu_engine() {
    if !gpu_or_skip() {
        return;
    }
    forward_matches_the_cpu_engine(
        CudaDevice::open(0).unwrap(),
        small_model(),
        Products::MatVec,
    );
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
