//! The forward pass on a [`Device`]: the CPU engine's [`Model`] weights uploaded (Q4_1 and Q8_0
//! kept quantized, norms as f32), the paged KV cache in device memory, and one step computed
//! by the kernels of `kernels/` in the CPU engine's order. The scheduler's block tables and
//! slot mappings drive the cache exactly as on the CPU. Only the logits of the sequences that
//! want them come back to the host.

use super::device::{bytes_of, bytes_of_mut, Device, Gemm, KArg, Launch};
use super::{Matvec, MatvecInput, ATTENTION_PARTITION, MATVEC_F32, TOP_LOGPROBS};
use crate::batch::StepBatch;
use crate::error::{EngineError, Result};
use crate::kernels::Linear;
use crate::model::{Model, RopeStyle, StepMasks, StepOutput};
use crate::sampling::{DeviceSample, RowPick};
use crate::structured::Mask;

/// A Q4_1 matrix's scales as the kernels read them: one u32 a block, f16 d in the low half and
/// f16 m in the high half (its quants are used as they are).
pub fn q4_1_scales(m: &crate::kernels::quant::Q4_1Matrix) -> Vec<u32> {
    use half::f16;
    m.d.iter()
        .zip(&m.m)
        .map(|(&d, &mm)| {
            f16::from_f32(d).to_bits() as u32 | (f16::from_f32(mm).to_bits() as u32) << 16
        })
        .collect()
}

/// A weight matrix's values in device memory.
enum DevWeights<B> {
    /// Quants (16 bytes a block) and `scales`: packed (d, m) f16 pairs.
    Q4_1 {
        qs: B,
        scales: B,
    },
    /// Quants (32 bytes a block) and `scales`: f16 d.
    Q8_0 {
        qs: B,
        scales: B,
    },
    F32 {
        w: B,
    },
}

/// A weight matrix in device memory, `rows × cols`.
struct DevLinear<B> {
    w: DevWeights<B>,
    rows: usize,
    cols: usize,
    /// The matrix as f16, row-major, for the GEMM path ([`GemmWeights::Resident`]).
    half: Option<B>,
    /// The matrix-vector kernel shapes launched for one token and for more (quantized weights;
    /// [`DeviceModel::matvec_choices`]).
    mv: [Matvec; 2],
    /// What its product reads on the matrix-vector path with fused inputs (the default): a
    /// norm's or SwiGLU's output it makes itself, or activations quantized already.
    input: MatvecInput,
}

impl<B> DevLinear<B> {
    fn upload<D: Device<Buf = B>>(
        dev: &D,
        name: &str,
        l: &Linear,
        input: MatvecInput,
    ) -> Result<Self> {
        use half::f16;
        let (w, rows, cols) = match l {
            Linear::Q4_1(m) => (
                DevWeights::Q4_1 {
                    qs: dev.upload(&m.qs)?,
                    scales: dev.upload(bytes_of(&q4_1_scales(m)))?,
                },
                m.rows,
                m.cols,
            ),
            Linear::Q8_0(m) => {
                let d: Vec<u16> = m.d.iter().map(|&d| f16::from_f32(d).to_bits()).collect();
                let qs: Vec<u8> = m.qs.iter().map(|&q| q as u8).collect();
                (
                    DevWeights::Q8_0 {
                        qs: dev.upload(&qs)?,
                        scales: dev.upload(bytes_of(&d))?,
                    },
                    m.rows,
                    m.cols,
                )
            }
            Linear::Dense { rows, cols, weight } => {
                let w: Vec<f32> = weight.flatten_all()?.to_vec1()?;
                (
                    DevWeights::F32 {
                        w: dev.upload(bytes_of(&w))?,
                    },
                    *rows,
                    *cols,
                )
            }
            other => {
                return Err(EngineError::Cuda(format!(
                    "{name}: weights stored as {other:?} are not supported by the CUDA backend (Q4_1, Q8_0, f16/f32 are)"
                )))
            }
        };
        Ok(Self {
            w,
            rows,
            cols,
            half: None,
            mv: [super::matvec_default(1), super::matvec_default(2)],
            input,
        })
    }

    fn quantized(&self) -> bool {
        matches!(self.w, DevWeights::Q4_1 { .. } | DevWeights::Q8_0 { .. })
    }

    /// `Some(true)` for Q4_1 weights, `Some(false)` for Q8_0, `None` for f32.
    fn q4_1(&self) -> Option<bool> {
        match self.w {
            DevWeights::Q4_1 { .. } => Some(true),
            DevWeights::Q8_0 { .. } => Some(false),
            DevWeights::F32 { .. } => None,
        }
    }

    /// Writes the matrix as f16 (row-major) into `out`.
    fn to_f16<D: Device<Buf = B>>(&self, dev: &D, out: &B) -> Result<()> {
        let n = self.rows * self.cols;
        let at = Launch::new(grid1(n, 256), 256);
        match &self.w {
            DevWeights::Q4_1 { qs, scales } | DevWeights::Q8_0 { qs, scales } => dev.launch(
                if matches!(self.w, DevWeights::Q4_1 { .. }) {
                    "dequantize_q4_1_f16"
                } else {
                    "dequantize_q8_0_f16"
                },
                at,
                &[
                    KArg::Buf(qs),
                    KArg::Buf(scales),
                    KArg::Buf(out),
                    KArg::I64((n / 32) as i64),
                ],
            ),
            DevWeights::F32 { w } => dev.launch(
                "f32_to_f16",
                at,
                &[KArg::Buf(w), KArg::Buf(out), KArg::I64(n as i64)],
            ),
        }
    }
}

/// Where the GEMM path's f16 weights come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GemmWeights {
    /// Dequantized into one scratch buffer before each product: device memory for the largest
    /// matrix's f16 copy only (llama.cpp's way).
    Dequantize,
    /// Dequantized once, when the GEMM path is set, and kept: 2 bytes of device memory a
    /// weight more, one launch and one pass over the weights less a product.
    Resident,
}

/// Steps of at least this many tokens (rows of logits, for the output product) take the
/// GEMM path by default, where the device has one; smaller ones the matrix-vector kernels.
/// Decode batch sizes timed at start take the path timing chose instead
/// ([`DeviceModel::time_decode_paths`]).
pub const GEMM_MIN_TOKENS: usize = 16;

/// By default the GEMM path keeps its f16 weights ([`GemmWeights::Resident`]) when they take at
/// most this fraction of the device's memory, and dequantizes before each product otherwise.
pub const GEMM_RESIDENT_MAX_FRACTION: f64 = 0.25;

struct DevLayer<B> {
    attn_norm: B,
    qkv: DevLinear<B>,
    qkv_bias: Option<B>,
    o: DevLinear<B>,
    ffn_norm: B,
    gate_up: DevLinear<B>,
    down: DevLinear<B>,
}

/// A norm's input: rows of `h` floats, `x` plus `delta` where given, scaled by `w`; the sum
/// written to `sum` where given (never `x` itself).
struct NormIn<'a, B> {
    x: &'a B,
    delta: Option<&'a B>,
    sum: Option<&'a B>,
    w: &'a B,
    h: usize,
    eps: f32,
}

impl<B> Clone for NormIn<'_, B> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<B> Copy for NormIn<'_, B> {}

/// What a product ([`DeviceModel::linear`]) reads.
enum Input<'a, B> {
    /// Floats in `x`; `quantized`: the kernel that wrote them also left them as the product
    /// reads them ([`DeviceModel::quantize_into`]).
    Ready { x: &'a B, quantized: bool },
    /// A norm's output.
    Norm(NormIn<'a, B>),
    /// SwiGLU's output of rows `[gate | up]` in this buffer (each as wide as the product).
    SiluMul(&'a B),
}

/// Buffers a step reuses, grown to the largest step seen. Captured graphs hold their
/// addresses, so growing them drops the graphs (they are captured again on next use).
struct Scratch<B> {
    /// Token rows of the activations.
    tokens: usize,
    /// Tokens times attention partitions (the partial results' rows).
    token_parts: usize,
    /// Rows of logits.
    rows: usize,
    /// The residual stream, in two buffers (`launch_step`).
    x: B,
    x2: B,
    normed: B,
    qkv: B,
    attn: B,
    /// What a sublayer adds to the residual: the output and down projections' outputs.
    delta: B,
    mlp: B,
    act: B,
    xq: B,
    xds: B,
    part_ml: B,
    part_acc: B,
    /// `[rows, hidden]`: the final hidden state of each token whose logits are wanted.
    last: B,
    /// `[rows, vocab]`.
    logits: B,
    /// `[rows]` greedy token ids (i32), then `[rows]` their log-probabilities (f32), for the
    /// rows of one launch (the second array starts at `4 * rows of the launch`).
    picked: B,
    /// The GEMM path's activations as f16 (`[tokens, widest]`), and its weights dequantized
    /// for one product (the largest matrix; [`GemmWeights::Dequantize`] only). One byte where
    /// the path is off.
    xh: B,
    wh: B,
}

/// Where each input of a step lies in one packed buffer, so a step costs one copy to the
/// device: token ids, positions, sequence of each token and its context length (i32 each),
/// cache slots (i64), the token of each logits row (i32), block tables (`seqs * width` i32).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Layout {
    tokens: usize,
    seqs: usize,
    width: usize,
}

impl Layout {
    const IDS: usize = 0;
    fn pos(&self) -> usize {
        4 * self.tokens
    }
    fn seq(&self) -> usize {
        8 * self.tokens
    }
    fn ctx(&self) -> usize {
        12 * self.tokens
    }
    fn slot(&self) -> usize {
        16 * self.tokens
    }
    fn rows(&self) -> usize {
        24 * self.tokens
    }
    fn tables(&self) -> usize {
        self.rows() + 4 * self.seqs
    }
    fn bytes(&self) -> usize {
        self.tables() + 4 * self.seqs * self.width
    }
}

/// A step flattened as the CPU forward pass does, with what the kernels trust checked.
#[derive(Default)]
struct StepInputs {
    ids: Vec<i32>,
    pos: Vec<i32>,
    slot: Vec<i64>,
    seq: Vec<i32>,
    ctx: Vec<i32>,
    /// The token of each logits row (the last new token of each sequence that wants them).
    rows: Vec<i32>,
    /// Block tables, `width` entries a sequence.
    tables: Vec<i32>,
    width: usize,
    seqs: usize,
    /// Attention partitions the longest context needs.
    parts: usize,
    /// One new token for every sequence, each wanting logits: a decode step.
    decode: bool,
}

impl StepInputs {
    /// Packs the inputs into `l`, which may be larger: extra tokens are token 0 at position 0
    /// of a sequence of their own, whose table points at the padding block (its K/V go there,
    /// nothing reads them), and extra logits rows are theirs. Tables wider than `l.width` are
    /// cut (positions past it are never read).
    fn pack(&self, l: Layout, pad_block: i32, block_size: usize) -> Vec<u8> {
        let mut out = vec![0u8; l.bytes()];
        let mut put = |at: usize, b: &[u8]| out[at..at + b.len()].copy_from_slice(b);
        let pad = |real: &[i32], fill: &dyn Fn(usize) -> i32, n: usize| -> Vec<i32> {
            (0..n)
                .map(|i| real.get(i).copied().unwrap_or_else(|| fill(i)))
                .collect()
        };
        put(Layout::IDS, bytes_of(&pad(&self.ids, &|_| 0, l.tokens)));
        put(l.pos(), bytes_of(&pad(&self.pos, &|_| 0, l.tokens)));
        put(l.seq(), bytes_of(&pad(&self.seq, &|i| i as i32, l.tokens)));
        put(l.ctx(), bytes_of(&pad(&self.ctx, &|_| 1, l.tokens)));
        let slots: Vec<i64> = (0..l.tokens)
            .map(|i| {
                self.slot
                    .get(i)
                    .copied()
                    .unwrap_or(pad_block as i64 * block_size as i64)
            })
            .collect();
        put(l.slot(), bytes_of(&slots));
        put(l.rows(), bytes_of(&pad(&self.rows, &|i| i as i32, l.seqs)));
        let mut tables = vec![pad_block; l.seqs * l.width];
        let w = self.width.min(l.width);
        for s in 0..self.seqs {
            tables[s * l.width..s * l.width + w]
                .copy_from_slice(&self.tables[s * self.width..s * self.width + w]);
        }
        put(l.tables(), bytes_of(&tables));
        out
    }
}

/// The largest steps a [`DeviceModel`] will be asked to run ([`DeviceModel::reserve`]): the
/// scheduler's `max_num_batched_tokens`, `max_num_seqs` and `max_model_len`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StepLimits {
    /// Most tokens in one step.
    pub max_tokens: usize,
    /// Most sequences in one step.
    pub max_seqs: usize,
    /// Most positions of one sequence (prompt and output).
    pub max_context: usize,
}

/// How large a [`DeviceModel`]'s KV cache is ([`DeviceModel::start`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum KvCacheSize {
    /// This many blocks.
    Blocks(usize),
    /// As many blocks as these bytes of device memory hold (`kv_cache_memory`; f16 keys and
    /// values, as on the CPU: `KvCache::bytes_per_block`).
    Bytes(u64),
    /// What is left of this fraction of the device's memory after the model's weights and
    /// step buffers (vLLM's `gpu_memory_utilization`): above 0, at most 1.
    Utilization(f64),
}

/// `bytes` in MiB, for messages.
fn mib(bytes: usize) -> String {
    format!("{:.1} MiB", bytes as f64 / (1 << 20) as f64)
}

/// Decode batches up to this many sequences run as CUDA graphs, padded to the next of
/// [`GRAPH_BATCH_SIZES`]; larger ones, and prefill steps, launch kernel by kernel.
pub const GRAPH_BATCH_SIZES: &[usize] = &[1, 2, 4, 8, 16, 24, 32, 48, 64, 96, 128, 192, 256];

/// `sample_rows`' parameters for rows `(logits row, sample, mask)` over `vocab` logits: `meta`
/// [n, 7] (logits row, first edit, end of edits, top_k, top_logprobs, first word of the mask
/// or -1, the mask's first allowed token or -1), `fparams` [n, 4] (temperature, top_p, min_p,
/// u), the edits' tokens [e] and values [e, 3] (add, rp, sub), and the masks' bits
/// ([`Mask::write_words`], `vocab.div_ceil(32)` words a masked row). A row whose sample is
/// [`DeviceSample::masked`] but has no mask is sampled unmasked.
pub struct SampleArrays {
    pub meta: Vec<i32>,
    pub fparams: Vec<f32>,
    pub tok: Vec<i32>,
    pub val: Vec<f32>,
    pub words: Vec<u32>,
}

impl SampleArrays {
    pub fn new(picks: &[(usize, &DeviceSample, Option<&Mask>)], vocab: usize) -> Self {
        let edits: usize = picks.iter().map(|(_, p, _)| p.edits.len()).sum();
        let row_words = vocab.div_ceil(32);
        let masked = picks.iter().filter(|(_, p, m)| p.masked && m.is_some());
        let mut a = Self {
            meta: Vec::with_capacity(SAMPLE_META_INTS * picks.len()),
            fparams: Vec::with_capacity(4 * picks.len()),
            tok: Vec::with_capacity(edits),
            val: Vec::with_capacity(3 * edits),
            words: vec![0; row_words * masked.count()],
        };
        let mut words = 0;
        for (row, p, mask) in picks {
            let (first_word, fallback) = match mask.filter(|_| p.masked) {
                Some(m) => {
                    let at = words;
                    words += row_words;
                    m.write_words(&mut a.words[at..words]);
                    (at as i32, m.first_allowed().map_or(-1, |t| t as i32))
                }
                None => (-1, -1),
            };
            a.meta.extend([
                *row as i32,
                a.tok.len() as i32,
                (a.tok.len() + p.edits.len()) as i32,
                p.top_k,
                p.top_logprobs.min(TOP_LOGPROBS) as i32,
                first_word,
                fallback,
            ]);
            a.fparams.extend([p.temperature, p.top_p, p.min_p, p.u]);
            for (t, v) in &p.edits {
                a.tok.push(*t as i32);
                a.val.extend(v);
            }
        }
        a
    }
}

/// `sample_rows`' ints a row (`meta`; the kernels' `SF_SAMPLE_META`).
pub(crate) const SAMPLE_META_INTS: usize = 7;
/// Bytes of `sample_rows`' packed parameters a row: its `meta` ints, then (all rows') `fparams`.
const SAMPLE_META_BYTES: usize = 4 * SAMPLE_META_INTS;
const SAMPLE_ROW_BYTES: usize = SAMPLE_META_BYTES + 4 * 4;
/// Bytes of `sample_rows`' output a row: token, log-probability, and the top list's tokens and
/// log-probabilities.
const SAMPLE_OUT_BYTES: usize = 8 + 8 * TOP_LOGPROBS;

/// The device sampler's buffers: its packed parameters, and scratch rows with its output at
/// the end.
struct SamplingBufs<B> {
    io: B,
    io_cap: usize,
    work: B,
    work_cap: usize,
}

/// The step size the several-token matrix-vector shapes are timed at (a block row's worth).
pub const MATVEC_TIMED_TOKENS: usize = 8;

/// What timing chose for the products of one matrix shape in steps of one size
/// ([`DeviceModel::matvec_choices`]).
#[derive(Clone, Debug, PartialEq)]
pub struct MatvecChoice {
    /// `"q4_1"` or `"q8_0"`.
    pub weights: &'static str,
    pub rows: usize,
    pub cols: usize,
    /// The step size timed: 1, or [`MATVEC_TIMED_TOKENS`] for the shapes of several tokens.
    pub tokens: usize,
    /// What the products read, as they were timed: a norm's or SwiGLU's output each block
    /// makes itself, or activations quantized already.
    pub input: MatvecInput,
    /// Each candidate with its device milliseconds a launch.
    pub timed: Vec<(Matvec, f64)>,
    /// The fastest (the first of equals).
    pub chosen: Matvec,
}

/// Decode batches of at least this many sequences (run as graphs) take whichever of the
/// matrix-vector kernels and the GEMM path timing at start found faster
/// ([`DeviceModel::time_decode_paths`]); smaller ones take the matrix-vector kernels.
pub const DECODE_PATHS_TIMED_FROM: usize = MATVEC_TIMED_TOKENS;

/// A timed decode batch size takes the GEMM path only where its step takes less than this
/// fraction of the matrix-vector kernels' time: within timing noise the matrix-vector kernels
/// are kept, whose 8-bit activations are the CPU engine's (the GEMM path's are f16).
pub const DECODE_GEMM_MAX_FRACTION: f64 = 0.95;

/// Replays in a round of timing a decode graph ([`DeviceModel::time_decode_paths`] keeps the
/// median of three rounds).
const DECODE_PATH_REPLAYS: usize = 5;

/// What timing chose for decode steps of one batch size ([`DeviceModel::decode_paths`]): the
/// device milliseconds of a step, as a graph, with every product on the matrix-vector kernels
/// and on the GEMM path, and whether the GEMM path is taken (it was faster by more than
/// [`DECODE_GEMM_MAX_FRACTION`] allows).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DecodePath {
    pub batch: usize,
    pub matvec_ms: f64,
    pub gemm_ms: f64,
    pub gemm: bool,
}

/// A quantized matrix and the buffers a product with it reads and writes, for timing the
/// matrix-vector kernels ([`time_matvecs`]).
pub struct MatvecOperands<'a, B> {
    pub q4_1: bool,
    pub qs: &'a B,
    pub scales: &'a B,
    /// Activations of at least the tokens timed, quantized: `tokens × cols` bytes and
    /// `tokens × cols / 32` (d, s) pairs of f32.
    pub xq: &'a B,
    pub xds: &'a B,
    /// `tokens × rows` f32.
    pub y: &'a B,
    pub rows: usize,
    pub cols: usize,
    /// Where the products make their input themselves; `None`: they read `xq`, `xds`. A shape
    /// whose input does not fit its shared memory ([`Matvec::input_smem`]) reads `xq`, `xds`
    /// too, as it does in a step.
    pub made_from: Option<MatvecMadeFrom<'a, B>>,
}

/// What the blocks of a matrix-vector kernel make their input from (`linear.cu`'s `in`,
/// `src`, `delta`, `nw`, `resid`, `eps`): [`MatvecInput::Norm`] of `src` (plus `delta`) scaled
/// by `nw`, the sum written to `resid`; or [`MatvecInput::SiluMul`] of `src`'s rows.
pub struct MatvecMadeFrom<'a, B> {
    pub how: MatvecInput,
    pub src: &'a B,
    pub delta: Option<&'a B>,
    pub nw: Option<&'a B>,
    pub resid: Option<&'a B>,
    pub eps: f32,
}

impl<B> Clone for MatvecMadeFrom<'_, B> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<B> Copy for MatvecMadeFrom<'_, B> {}

/// Launches `shape`'s kernel for `op` over `ntok` tokens, its input made by its blocks where
/// `op.made_from` says and its shared memory allows, else read from `op.xq`, `op.xds`.
pub fn launch_matvec<'a, D: Device>(
    dev: &D,
    op: &MatvecOperands<'a, D::Buf>,
    shape: &Matvec,
    ntok: usize,
) -> Result<()> {
    let made = op
        .made_from
        .and_then(|m| Some((m, shape.input_smem(op.cols)?)));
    let opt = |b: Option<&'a D::Buf>| b.map_or(KArg::Null, KArg::Buf);
    let mut args = vec![
        KArg::Buf(op.qs),
        KArg::Buf(op.scales),
        KArg::Buf(op.xq),
        KArg::Buf(op.xds),
        KArg::Buf(op.y),
        KArg::I32(op.rows as i32),
        KArg::I32(op.cols as i32),
        KArg::I32(ntok as i32),
    ];
    let smem = match made {
        Some((m, smem)) => {
            args.extend([
                KArg::I32(m.how as i32),
                KArg::Buf(m.src),
                opt(m.delta),
                opt(m.nw),
                opt(m.resid),
                KArg::F32(m.eps),
            ]);
            smem
        }
        None => {
            args.extend([KArg::I32(MatvecInput::Quantized as i32)]);
            args.extend([KArg::Null; 4]);
            args.push(KArg::F32(0.0));
            0
        }
    };
    let at = Launch {
        smem,
        ..shape.launch(op.rows, ntok)
    };
    dev.launch(shape.kernel(op.q4_1), at, &args)
}

/// Device milliseconds a launch of each shape [`super::matvec_candidates`] offers for `ntok`
/// tokens: the median of `rounds` rounds of `launches` launches, after one launch of each to
/// warm up. `None` where the device does not time launches.
pub fn time_matvecs<D: Device>(
    dev: &D,
    op: &MatvecOperands<'_, D::Buf>,
    ntok: usize,
    rounds: usize,
    launches: usize,
) -> Result<Option<Vec<(Matvec, f64)>>> {
    let launch = |m: &Matvec| launch_matvec(dev, op, m, ntok);
    if dev.time_launches(&mut || Ok(()))?.is_none() {
        return Ok(None);
    }
    let (rounds, launches) = (rounds.max(1), launches.max(1));
    let mut out = Vec::new();
    for m in super::matvec_candidates(ntok) {
        launch(m)?;
        let mut per = Vec::with_capacity(rounds);
        for _ in 0..rounds {
            let timed = dev.time_launches(&mut || (0..launches).try_for_each(|_| launch(m)))?;
            let Some(ms) = timed else {
                return Ok(None);
            };
            per.push(ms / launches as f64);
        }
        per.sort_by(f64::total_cmp);
        out.push((*m, per[per.len() / 2]));
    }
    Ok(Some(out))
}

/// The fastest of `timed` with its time (the first of equals).
pub fn fastest(timed: &[(Matvec, f64)]) -> Option<(Matvec, f64)> {
    timed
        .iter()
        .copied()
        .reduce(|b, t| if t.1 < b.1 { t } else { b })
}

/// What [`DeviceModel::capture_graphs`] captured.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct GraphsCaptured {
    /// Graphs captured and kept (those captured before are not counted again, nor the
    /// slower path's of each batch size timed: [`DeviceModel::time_decode_paths`]).
    pub graphs: usize,
    /// The largest batch size captured (a [`GRAPH_BATCH_SIZES`] bucket).
    pub largest_batch: usize,
    /// The most attention partitions captured, a power of two.
    pub most_parts: usize,
    /// The device memory they took, where the device says how much it has free.
    pub bytes: Option<usize>,
    /// How long capturing them took.
    pub seconds: f64,
}

/// Captured decode steps: one packed input buffer per batch size, one graph per batch size
/// and attention partition count (a power of two).
struct Graphs<D: Device> {
    io: Vec<(usize, D::Buf)>,
    graphs: Vec<((usize, usize), D::Graph)>,
}

/// A model's weights and KV cache on a device.
pub struct DeviceModel<D: Device> {
    dev: D,
    cfg: crate::model::ModelConfig,
    /// How many end-of-sequence ids the model has (the sampler masks them under min_tokens).
    eos_ids: usize,
    embed: DevLinear<D::Buf>,
    layers: Vec<DevLayer<D::Buf>>,
    norm: D::Buf,
    output: DevLinear<D::Buf>,
    cos: D::Buf,
    sin: D::Buf,
    /// Per layer: keys and values, `[(num_blocks + 1) * block_size, kv_dim]` f16 each (the
    /// last block takes the padding tokens of graph steps).
    kv: Vec<(D::Buf, D::Buf)>,
    block_size: usize,
    num_blocks: usize,
    scratch: Option<Scratch<D::Buf>>,
    /// Packed inputs of steps launched kernel by kernel, grown as needed.
    io: Option<(usize, D::Buf)>,
    sampling: Option<SamplingBufs<D::Buf>>,
    graphs: Graphs<D>,
    use_graphs: bool,
    /// Whether products make their norm's or SwiGLU's input themselves
    /// ([`DeviceModel::set_fused_inputs`]).
    fuse_inputs: bool,
    /// Positions per attention partition.
    partition: usize,
    /// The largest decode batch run as a graph.
    graph_limit: usize,
    /// The longest context of a step within the reserved limits ([`DeviceModel::reserve`];
    /// 0 before it).
    reserved_context: usize,
    /// Steps of at least this many tokens take the GEMM path (`None`: never).
    gemm_min_tokens: Option<usize>,
    gemm_weights: GemmWeights,
    /// How many decode steps ran as graphs (replays), and how many graphs were captured.
    pub graph_replays: u64,
    pub graph_captures: u64,
    /// What the last [`DeviceModel::capture_graphs`] captured ([`DeviceModel::start`]'s,
    /// unless it was called again).
    pub last_capture: GraphsCaptured,
    /// What timing the matrix-vector shapes chose at load ([`DeviceModel::matvec_choices`]).
    matvec_choices: Vec<MatvecChoice>,
    /// Per decode batch size timed, the faster path ([`DeviceModel::time_decode_paths`]);
    /// cleared by [`DeviceModel::set_gemm`].
    decode_paths: Vec<DecodePath>,
}

/// The weight matrices of `layers` and `output`, for changing them.
fn linears_mut<'a, B>(
    layers: &'a mut [DevLayer<B>],
    output: &'a mut DevLinear<B>,
) -> impl Iterator<Item = &'a mut DevLinear<B>> {
    layers
        .iter_mut()
        .flat_map(|l| [&mut l.qkv, &mut l.o, &mut l.gate_up, &mut l.down])
        .chain(std::iter::once(output))
}

fn grid1(n: usize, per_block: usize) -> (u32, u32, u32) {
    (n.div_ceil(per_block) as u32, 1, 1)
}

impl<D: Device> DeviceModel<D> {
    /// Uploads `model`'s weights and allocates a KV cache of `num_blocks` blocks of
    /// `block_size` tokens (and one more for padding). Decode steps run as graphs.
    pub fn new(dev: D, model: &Model, block_size: usize, num_blocks: usize) -> Result<Self> {
        let mut m = Self::upload(dev, model, block_size)?;
        m.alloc_cache(num_blocks)?;
        // The f16 copies kept where they are a small part of the memory left after the
        // weights and the cache.
        let room = m.dev.memory().map(|mem| mem.free);
        m.default_gemm(room)?;
        Ok(m)
    }

    /// The model on `dev`, with its KV cache sized by `cache` and its memory for steps within
    /// `limits` reserved ([`DeviceModel::reserve`]): what serving starts.
    ///
    /// With [`KvCacheSize::Utilization`], the weights and the step buffers are allocated
    /// first and the cache takes what is left of that fraction of the device's memory
    /// (vLLM's `gpu_memory_utilization`); [`DeviceModel::num_blocks`] says how many blocks
    /// that made.
    ///
    /// It then captures the decode graphs steps within `limits` take
    /// ([`DeviceModel::capture_graphs`]), so that no request waits on a capture.
    pub fn start(
        dev: D,
        model: &Model,
        block_size: usize,
        cache: KvCacheSize,
        limits: StepLimits,
    ) -> Result<Self> {
        let mut m = Self::start_sized(dev, model, block_size, cache, limits)?;
        m.capture_graphs()?;
        Ok(m)
    }

    /// [`DeviceModel::start`] without the graphs.
    fn start_sized(
        dev: D,
        model: &Model,
        block_size: usize,
        cache: KvCacheSize,
        limits: StepLimits,
    ) -> Result<Self> {
        let per_block = crate::KvCache::bytes_per_block(
            model.config.num_layers,
            model.config.kv_dim(),
            block_size,
        );
        let fraction = match cache {
            KvCacheSize::Blocks(n) => {
                let mut m = Self::new(dev, model, block_size, n)?;
                m.reserve(limits)?;
                return Ok(m);
            }
            KvCacheSize::Bytes(bytes) => {
                let n = usize::try_from(bytes / per_block as u64).unwrap_or(usize::MAX);
                if n == 0 {
                    return Err(EngineError::Cuda(format!(
                        "a kv_cache_memory of {bytes} bytes holds no block of the KV cache \
                         (one block of {block_size} tokens takes {per_block} bytes on the device)"
                    )));
                }
                let m = Self::start_sized(dev, model, block_size, KvCacheSize::Blocks(n), limits)?;
                tracing::info!(
                    "KV cache: {n} blocks of {block_size} tokens ({}) in kv_cache_memory",
                    mib(n * per_block)
                );
                return Ok(m);
            }
            KvCacheSize::Utilization(u) => u,
        };
        if !(fraction > 0.0 && fraction <= 1.0) {
            return Err(EngineError::Cuda(format!(
                "gpu_memory_utilization must be above 0 and at most 1, not {fraction}"
            )));
        }
        let Some(at_start) = dev.memory() else {
            return Err(EngineError::Cuda(
                "the device does not say how much memory it has; set kv_cache_memory".into(),
            ));
        };
        let budget = (fraction * at_start.total as f64) as usize;
        if at_start.free < budget {
            return Err(EngineError::Cuda(format!(
                "the device has {} free of {}, less than the {} that gpu_memory_utilization {fraction} \
                 asks for; lower gpu_memory_utilization or set kv_cache_memory (other processes or \
                 models use the rest)",
                mib(at_start.free),
                mib(at_start.total),
                mib(budget)
            )));
        }
        let mut m = Self::upload(dev, model, block_size)?;
        // What this model has taken of the device so far.
        let taken =
            |m: &Self| at_start.free - m.dev.memory().map_or(0, |now| now.free).min(at_start.free);
        m.default_gemm(Some(budget.saturating_sub(taken(&m))))?;
        m.reserve(limits)?;
        let mut blocks = (budget.saturating_sub(taken(&m)) / per_block).saturating_sub(1);
        if blocks == 0 && m.gemm_min_tokens.is_some() && m.gemm_weights == GemmWeights::Resident {
            // Give the kept f16 weights up for a cache.
            m.set_gemm(m.gemm_min_tokens, GemmWeights::Dequantize)?;
            m.reserve(limits)?;
            blocks = (budget.saturating_sub(taken(&m)) / per_block).saturating_sub(1);
        }
        if blocks == 0 {
            return Err(EngineError::Cuda(format!(
                "gpu_memory_utilization {fraction} ({} of the device) leaves no room for a KV cache \
                 after the weights and the buffers of steps of up to {} tokens and {} sequences \
                 ({}); raise gpu_memory_utilization, or lower max_num_batched_tokens or \
                 max_num_seqs",
                mib(budget),
                limits.max_tokens,
                limits.max_seqs,
                mib(taken(&m))
            )));
        }
        let before_cache = taken(&m);
        m.alloc_cache(blocks)?;
        tracing::info!(
            "KV cache: {blocks} blocks of {block_size} tokens ({}) in gpu_memory_utilization \
             {fraction} of {} ({} for the weights and step buffers)",
            mib((blocks + 1) * per_block),
            mib(at_start.total),
            mib(before_cache)
        );
        Ok(m)
    }

    /// `model`'s weights on `dev`, with no KV cache yet.
    fn upload(dev: D, model: &Model, block_size: usize) -> Result<Self> {
        let cfg = model.config.clone();
        if !cfg.head_dim.is_multiple_of(32) || cfg.head_dim > 256 {
            return Err(EngineError::Cuda(format!(
                "head size {} is not supported by the CUDA attention kernel (a multiple of 32, at most 256)",
                cfg.head_dim
            )));
        }
        let group = cfg.num_heads / cfg.num_kv_heads.max(1);
        if group * 32 > super::ATTENTION_MAX_THREADS {
            return Err(EngineError::Cuda(format!(
                "{group} query heads per KV head is more than the CUDA attention kernel's {}",
                super::ATTENTION_MAX_THREADS / 32
            )));
        }
        // Large heads take more than the 48 KiB of shared memory a launch has by default.
        let att_smem = super::attention_smem(group, cfg.head_dim);
        dev.allow_shared_memory("attention_partial", att_smem)
            .map_err(|e| {
                EngineError::Cuda(format!(
                    "heads of {} with {group} query heads per KV head do not fit the CUDA \
                     attention kernel: {e}",
                    cfg.head_dim
                ))
            })?;
        let mut layers = Vec::with_capacity(model.layers.len());
        for (i, l) in model.layers.iter().enumerate() {
            let name = |n: &str| format!("blk.{i}.{n}");
            layers.push(DevLayer {
                attn_norm: dev.upload(bytes_of(&l.attn_norm))?,
                qkv: DevLinear::upload(&dev, &name("qkv"), &l.qkv, MatvecInput::Norm)?,
                qkv_bias: match &l.qkv_bias {
                    Some(b) => Some(dev.upload(bytes_of(b))?),
                    None => None,
                },
                o: DevLinear::upload(&dev, &name("attn_output"), &l.o, MatvecInput::Quantized)?,
                ffn_norm: dev.upload(bytes_of(&l.ffn_norm))?,
                gate_up: DevLinear::upload(
                    &dev,
                    &name("ffn_gate_up"),
                    &l.gate_up,
                    MatvecInput::Norm,
                )?,
                down: DevLinear::upload(&dev, &name("ffn_down"), &l.down, MatvecInput::SiluMul)?,
            });
        }
        let embed = DevLinear::upload(&dev, "token_embd", &model.embed, MatvecInput::Quantized)?;
        let output = DevLinear::upload(&dev, "output", &model.output, MatvecInput::Quantized)?;
        let norm = dev.upload(bytes_of(&model.norm))?;
        let cos = dev.upload(bytes_of(model.rope.cos_table()))?;
        let sin = dev.upload(bytes_of(model.rope.sin_table()))?;
        Self {
            eos_ids: model.tokenizer.eos_token_ids().len(),
            embed,
            output,
            norm,
            cos,
            sin,
            layers,
            kv: Vec::new(),
            block_size,
            num_blocks: 0,
            scratch: None,
            io: None,
            sampling: None,
            graphs: Graphs {
                io: Vec::new(),
                graphs: Vec::new(),
            },
            use_graphs: true,
            fuse_inputs: true,
            partition: ATTENTION_PARTITION,
            graph_limit: *GRAPH_BATCH_SIZES.last().expect("not empty"),
            reserved_context: 0,
            gemm_min_tokens: None,
            gemm_weights: GemmWeights::Dequantize,
            graph_replays: 0,
            graph_captures: 0,
            last_capture: GraphsCaptured::default(),
            matvec_choices: Vec::new(),
            decode_paths: Vec::new(),
            cfg,
            dev,
        }
        .with_timed_matvecs()
    }

    /// The model, launching for each of its quantized matrices the matrix-vector shape that
    /// timing found fastest on this device, for one token and for more
    /// ([`MATVEC_TIMED_TOKENS`] timed), each reading its input as it does with fused inputs
    /// (a norm or SwiGLU each block makes itself costs more in shapes of fewer rows a block).
    /// Every shape gives the same bits, so only the speed depends on it. A device that does
    /// not time launches keeps the defaults ([`super::matvec_default`]).
    fn with_timed_matvecs(mut self) -> Result<Self> {
        type Key = (bool, usize, usize, MatvecInput);
        let mut shapes: Vec<Key> = Vec::new();
        for w in self.linears() {
            if let Some(q4_1) = w.q4_1() {
                if !shapes.contains(&(q4_1, w.rows, w.cols, w.input)) {
                    shapes.push((q4_1, w.rows, w.cols, w.input));
                }
            }
        }
        let Some(rows) = shapes.iter().map(|s| s.1).max() else {
            return Ok(self);
        };
        let cols = shapes.iter().map(|s| s.2).max().unwrap_or(0);
        let n = MATVEC_TIMED_TOKENS;
        let started = std::time::Instant::now();
        let (dev, xq) = (&self.dev, self.dev.alloc(n * cols)?);
        let (xds, y) = (dev.alloc(n * cols / 32 * 8)?, dev.alloc(n * rows * 4)?);
        // What the products that make their input themselves make it from (zeros: the time
        // does not depend on the values), and where a norm writes the residual's sum.
        let (floats, sum) = (dev.alloc(4 * n * 2 * cols)?, dev.alloc(4 * n * cols)?);
        let mut choices = Vec::new();
        // Per shape: the kernel shapes for one token and for more.
        let mut picks: Vec<(Key, [Matvec; 2])> = Vec::new();
        for &(q4_1, rows, cols, input) in &shapes {
            let w = self
                .linears()
                .find(|w| (w.q4_1(), w.rows, w.cols, w.input) == (Some(q4_1), rows, cols, input))
                .expect("listed above");
            let (DevWeights::Q4_1 { qs, scales } | DevWeights::Q8_0 { qs, scales }) = &w.w else {
                unreachable!("quantized");
            };
            let op = MatvecOperands {
                q4_1,
                qs,
                scales,
                xq: &xq,
                xds: &xds,
                y: &y,
                rows,
                cols,
                // SwiGLU reads only `src`.
                made_from: (input != MatvecInput::Quantized).then_some(MatvecMadeFrom {
                    how: input,
                    src: &floats,
                    delta: Some(&floats),
                    nw: Some(&floats),
                    resid: Some(&sum),
                    eps: 1e-5,
                }),
            };
            let mut pick = [super::matvec_default(1), super::matvec_default(n)];
            for (slot, tokens) in [1, n].into_iter().enumerate() {
                let Some(timed) = time_matvecs(dev, &op, tokens, 3, 10)? else {
                    return Ok(self);
                };
                let (chosen, _) = fastest(&timed).expect("a candidate for every step size");
                pick[slot] = chosen;
                choices.push(MatvecChoice {
                    weights: if q4_1 { "q4_1" } else { "q8_0" },
                    rows,
                    cols,
                    tokens,
                    input,
                    timed,
                    chosen,
                });
            }
            picks.push(((q4_1, rows, cols, input), pick));
        }
        drop((xq, xds, y, floats, sum));
        tracing::info!(
            "matrix-vector kernels timed at load in {:.0} ms; launching {}",
            started.elapsed().as_secs_f64() * 1e3,
            picks
                .iter()
                .map(|&((q4_1, rows, cols, input), [one, more])| format!(
                    "{rows}x{cols} ({input:?} input): {} (1 token), {} (more)",
                    one.kernel(q4_1),
                    more.kernel(q4_1)
                ))
                .collect::<Vec<_>>()
                .join("; ")
        );
        let Self { layers, output, .. } = &mut self;
        for w in linears_mut(layers, output) {
            let key = w.q4_1().map(|q4_1| (q4_1, w.rows, w.cols, w.input));
            if let Some((_, pick)) = picks.iter().find(|p| Some(p.0) == key) {
                w.mv = *pick;
            }
        }
        self.matvec_choices = choices;
        Ok(self)
    }

    /// What timing chose for each quantized matrix shape at load, for one token and for
    /// [`MATVEC_TIMED_TOKENS`] (empty where the device does not time launches).
    pub fn matvec_choices(&self) -> &[MatvecChoice] {
        &self.matvec_choices
    }

    /// Launches `one` for products of one token and `several` for products of more, on every
    /// quantized matrix, instead of what timing chose. Graphs captured before are dropped.
    pub fn set_matvec(&mut self, one: Matvec, several: Matvec) -> Result<()> {
        if one.tokens != 1 || several.tokens == 1 {
            return Err(EngineError::Cuda(format!(
                "{one:?} is not a one-token shape or {several:?} not a several-token one"
            )));
        }
        self.graphs.graphs.clear();
        let Self { layers, output, .. } = self;
        for w in linears_mut(layers, output) {
            w.mv = [one, several];
        }
        Ok(())
    }

    /// Allocates a KV cache of `num_blocks` blocks (and one more for padding).
    fn alloc_cache(&mut self, num_blocks: usize) -> Result<()> {
        let (cfg, block_size, dev) = (&self.cfg, self.block_size, &self.dev);
        let kv_bytes = (num_blocks + 1) * block_size * cfg.kv_dim() * 2;
        if let Some(mem) = dev.memory() {
            let need = (num_blocks + 1)
                * crate::KvCache::bytes_per_block(cfg.num_layers, cfg.kv_dim(), block_size);
            if need > mem.free {
                return Err(EngineError::Cuda(format!(
                    "a KV cache of {num_blocks} blocks of {block_size} tokens ({}) does not fit \
                     in the {} of device memory left after the weights ({} in all); lower \
                     kv_cache_memory",
                    mib(need),
                    mib(mem.free),
                    mib(mem.total)
                )));
            }
        }
        self.kv = (0..cfg.num_layers)
            .map(|_| Ok((dev.alloc(kv_bytes)?, dev.alloc(kv_bytes)?)))
            .collect::<Result<Vec<_>>>()?;
        self.num_blocks = num_blocks;
        Ok(())
    }

    /// Turns the GEMM path on where the device has cuBLAS, keeping its f16 weights where they
    /// take at most [`GEMM_RESIDENT_MAX_FRACTION`] of `room` bytes (a device that does not say
    /// how much memory it has dequantizes before each product).
    fn default_gemm(&mut self, room: Option<usize>) -> Result<()> {
        if !self.dev.has_gemm() {
            return Ok(());
        }
        let weights = match room {
            Some(room)
                if self.resident_bytes() as f64 <= GEMM_RESIDENT_MAX_FRACTION * room as f64 =>
            {
                GemmWeights::Resident
            }
            _ => GemmWeights::Dequantize,
        };
        self.set_gemm(Some(GEMM_MIN_TOKENS), weights)
    }

    /// Blocks in the KV cache (not counting the padding block).
    pub fn num_blocks(&self) -> usize {
        self.num_blocks
    }

    /// Device memory the GEMM path's kept f16 weights take ([`GemmWeights::Resident`]).
    fn resident_bytes(&self) -> usize {
        2 * self.linears().map(|w| w.rows * w.cols).sum::<usize>()
    }

    /// Allocates, now, every buffer a step within `limits` needs (activations, attention
    /// partials, logits, the sampler's rows, packed inputs, and the decode graphs' inputs for
    /// batches up to `limits.max_seqs`), so that serving never allocates device memory after
    /// start and a device too small for the configuration says so at start. Where the GEMM
    /// path keeps its f16 weights and the rest does not fit beside them, it gives them up
    /// (dequantizing before each product) before it gives up.
    pub fn reserve(&mut self, limits: StepLimits) -> Result<()> {
        if limits.max_tokens == 0 || limits.max_seqs == 0 || limits.max_context == 0 {
            return Err(EngineError::Cuda(format!(
                "step limits must be positive: {limits:?}"
            )));
        }
        let free = self.dev.memory().map(|m| m.free);
        match self.try_reserve(limits) {
            Err(_)
                if self.gemm_min_tokens.is_some() && self.gemm_weights == GemmWeights::Resident =>
            {
                tracing::warn!(
                    "the GEMM path's f16 weights ({}) leave too little device memory for steps of \
                     {} tokens; they are dequantized before each product instead",
                    mib(self.resident_bytes()),
                    limits.max_tokens
                );
                self.set_gemm(self.gemm_min_tokens, GemmWeights::Dequantize)?;
                self.try_reserve(limits)
            }
            r => r,
        }
        .map_err(|e| {
            let left = free.map_or_else(String::new, |f| format!(" ({} were free)", mib(f)));
            let taken = if self.kv.is_empty() {
                "the weights"
            } else {
                "the weights and the KV cache"
            };
            EngineError::Cuda(format!(
                "the device has too little memory left after {taken}{left} for steps of up to {} tokens and {} sequences of up to {} positions ({e}); lower \
                 kv_cache_memory, max_num_batched_tokens or max_num_seqs",
                limits.max_tokens, limits.max_seqs, limits.max_context
            ))
        })
    }

    fn try_reserve(&mut self, limits: StepLimits) -> Result<()> {
        let StepLimits {
            max_tokens,
            max_seqs,
            max_context,
        } = limits;
        let max_context = max_context.min(self.cfg.max_position_embeddings);
        // Decode batches run as graphs up to the bucket that holds `max_seqs`.
        let bucket = GRAPH_BATCH_SIZES
            .iter()
            .copied()
            .find(|&b| b >= max_seqs)
            .unwrap_or(*GRAPH_BATCH_SIZES.last().expect("not empty"));
        self.set_graph_batch_limit(bucket.min(self.graph_limit));
        let most = GRAPH_BATCH_SIZES
            .iter()
            .copied()
            .filter(|&b| b <= self.graph_limit)
            .max()
            .unwrap_or(1);
        let parts = max_context.div_ceil(self.partition);
        self.reserved_context = max_context;
        self.scratch(
            max_tokens.max(most),
            (max_tokens * parts).max(most * parts.next_power_of_two()),
            max_seqs.max(most),
        )?;
        let width = max_context.div_ceil(self.block_size);
        let eager = Layout {
            tokens: max_tokens,
            seqs: max_seqs.min(max_tokens),
            width,
        };
        self.io_capacity(eager.bytes())?;
        let graph_width = self.cfg.max_position_embeddings.div_ceil(self.block_size);
        let limit = self.graph_limit;
        for &b in GRAPH_BATCH_SIZES.iter().filter(|&&b| b <= limit) {
            self.graph_io(b, graph_width)?;
        }
        // The sampler's packed parameters: 44 bytes a row, a grammar's mask (a bit a token),
        // and 16 bytes an edit (the token and its three values) for as many edits as a valid
        // request's row can have (grown past that only for rows the scheduler's validation
        // would refuse).
        let edits =
            crate::sampling::max_device_edits(self.cfg.vocab_size, self.eos_ids, max_context);
        self.sampling_capacity(
            max_seqs * (SAMPLE_ROW_BYTES + 4 * self.cfg.vocab_size.div_ceil(32) + edits * 16),
            max_seqs * (4 * self.cfg.vocab_size + SAMPLE_OUT_BYTES),
        )
    }

    /// Every matrix a product multiplies by (not the embeddings, which are looked up).
    fn linears(&self) -> impl Iterator<Item = &DevLinear<D::Buf>> {
        self.layers
            .iter()
            .flat_map(|l| [&l.qkv, &l.o, &l.gate_up, &l.down])
            .chain(std::iter::once(&self.output))
    }

    /// Whether decode steps run as graphs (on by default); off, every step launches kernel by
    /// kernel.
    pub fn set_graphs(&mut self, on: bool) {
        self.use_graphs = on;
        if !on {
            self.graphs.graphs.clear();
        }
    }

    /// Whether the matrix-vector products that read a norm's or SwiGLU's output make it
    /// themselves, each block from the floats it comes from (on by default): three launches a
    /// layer fewer (both norms and SwiGLU), the same bits. Off, a norm or SwiGLU kernel makes
    /// it first (the GEMM path and inputs too wide for a block's shared memory always do).
    pub fn set_fused_inputs(&mut self, on: bool) {
        self.fuse_inputs = on;
        self.graphs.graphs.clear();
    }

    /// Decode batches of at most `limit` sequences run as graphs (default: all of
    /// [`GRAPH_BATCH_SIZES`]); the graphs' buffers are sized for the largest such batch.
    pub fn set_graph_batch_limit(&mut self, limit: usize) {
        self.graph_limit = limit;
        self.graphs.graphs.clear();
    }

    /// Positions one attention block covers (default [`ATTENTION_PARTITION`]): shorter spreads
    /// a long context over more blocks. A multiple of 32.
    pub fn set_attention_partition(&mut self, positions: usize) -> Result<()> {
        if positions == 0 || !positions.is_multiple_of(32) {
            return Err(EngineError::Cuda(format!(
                "an attention partition of {positions} positions is not a positive multiple of 32"
            )));
        }
        self.partition = positions;
        self.graphs.graphs.clear();
        Ok(())
    }

    /// The GEMM path (f16 weights and activations, f32 sums, through [`Device::gemm`]) for
    /// steps of at least `min_tokens` tokens, or never (`None`); its weights as `weights` says.
    /// On by default from [`GEMM_MIN_TOKENS`] where the device has a GEMM, its weights kept
    /// as f16 where they fit [`GEMM_RESIDENT_MAX_FRACTION`] of its memory. Its sums differ
    /// from the matrix-vector kernels' (f16 activations instead of 8-bit ones), so a token's
    /// numbers then depend on how many tokens share its step.
    pub fn set_gemm(&mut self, min_tokens: Option<usize>, weights: GemmWeights) -> Result<()> {
        if min_tokens.is_some() && !self.dev.has_gemm() {
            return Err(EngineError::Cuda(
                "the GEMM path needs cuBLAS (libcublas), which this device does not have".into(),
            ));
        }
        if min_tokens == Some(0) {
            return Err(EngineError::Cuda(
                "the GEMM path's smallest step is at least one token".into(),
            ));
        }
        self.graphs.graphs.clear();
        // What the paths were timed against has changed.
        self.decode_paths.clear();
        // The scratch buffers are sized for the path: made again on the next step.
        self.scratch = None;
        self.gemm_min_tokens = min_tokens;
        self.gemm_weights = weights;
        let resident = min_tokens.is_some() && weights == GemmWeights::Resident;
        let Self {
            dev,
            layers,
            output,
            ..
        } = self;
        for w in linears_mut(layers, output) {
            if !resident {
                w.half = None;
            } else if w.half.is_none() {
                let half = dev.alloc(2 * w.rows * w.cols)?;
                w.to_f16(dev, &half)?;
                w.half = Some(half);
            }
        }
        Ok(())
    }

    /// The GEMM path's setting ([`Self::set_gemm`]).
    pub fn gemm(&self) -> (Option<usize>, GemmWeights) {
        (self.gemm_min_tokens, self.gemm_weights)
    }

    /// Whether a product over `t` tokens takes the GEMM path.
    fn gemm_for(&self, t: usize) -> bool {
        self.gemm_min_tokens.is_some_and(|m| t >= m)
    }

    /// Whether a decode step of `t` sequences takes the GEMM path: as timing chose for the
    /// batch size it pads to as a graph ([`Self::time_decode_paths`]; as a graph or not), else
    /// as for any product of `t` tokens.
    fn decode_gemm(&self, t: usize) -> bool {
        let bucket = GRAPH_BATCH_SIZES.iter().find(|&&b| b >= t);
        match self.decode_paths.iter().find(|p| Some(&p.batch) == bucket) {
            Some(p) => p.gemm && self.gemm_min_tokens.is_some(),
            None => self.gemm_for(t),
        }
    }

    /// What timing chose for decode steps of each batch size timed
    /// ([`Self::time_decode_paths`]; empty before it, where the device does not time
    /// launches, where graphs or the GEMM path were off then, and after [`Self::set_gemm`]).
    /// Other settings keep it: both paths give correct steps whatever they are, and
    /// [`Self::time_decode_paths`] times again.
    pub fn decode_paths(&self) -> &[DecodePath] {
        &self.decode_paths
    }

    /// Overlapped launches on or off ([`Device::set_overlap`]); the graphs are captured again.
    pub fn set_overlap(&mut self, on: bool) {
        self.dev.set_overlap(on);
        self.graphs.graphs.clear();
    }

    pub fn device(&self) -> &D {
        &self.dev
    }

    /// Grows the scratch buffers to hold `tokens` tokens, `token_parts` partial attention
    /// rows and `rows` rows of logits; growing drops the captured graphs.
    fn scratch(&mut self, tokens: usize, token_parts: usize, rows: usize) -> Result<()> {
        if self
            .scratch
            .as_ref()
            .is_some_and(|s| s.tokens >= tokens && s.token_parts >= token_parts && s.rows >= rows)
        {
            return Ok(());
        }
        self.graphs.graphs.clear();
        let c = &self.cfg;
        let old = self.scratch.take();
        let (t, tp, r) = (
            tokens.max(old.as_ref().map_or(0, |s| s.tokens)),
            token_parts.max(old.as_ref().map_or(0, |s| s.token_parts)),
            rows.max(old.as_ref().map_or(0, |s| s.rows)),
        );
        drop(old);
        let widest = [
            c.hidden_size,
            c.q_dim() + 2 * c.kv_dim(),
            2 * c.intermediate_size,
        ]
        .into_iter()
        .max()
        .unwrap_or(0);
        let f4 = |n: usize| self.dev.alloc(4 * n);
        let gemm = self.gemm_min_tokens.is_some();
        let largest = self.linears().map(|w| w.rows * w.cols).max().unwrap_or(0);
        let wh = if gemm && self.gemm_weights == GemmWeights::Dequantize {
            2 * largest
        } else {
            1
        };
        self.scratch = Some(Scratch {
            xh: self
                .dev
                .alloc(if gemm { 2 * t.max(r) * widest } else { 1 })?,
            wh: self.dev.alloc(wh)?,
            tokens: t,
            token_parts: tp,
            rows: r,
            x: f4(t * c.hidden_size)?,
            x2: f4(t * c.hidden_size)?,
            delta: f4(t * c.hidden_size)?,
            normed: f4(t * c.hidden_size)?,
            qkv: f4(t * (c.q_dim() + 2 * c.kv_dim()))?,
            attn: f4(t * c.q_dim())?,
            mlp: f4(t * 2 * c.intermediate_size)?,
            act: f4(t * c.intermediate_size)?,
            xq: self.dev.alloc(t * widest)?,
            xds: f4(t * widest / 16)?,
            part_ml: f4(tp * c.num_heads * 2)?,
            part_acc: f4(tp * c.num_heads * c.head_dim)?,
            last: f4(r * c.hidden_size)?,
            logits: f4(r * c.vocab_size)?,
            picked: f4(2 * r)?,
        });
        Ok(())
    }

    /// `y = x · Wᵀ` for `t` tokens, `x` as `input` says: 8-bit activations and integer dot
    /// products for quantized weights, plain floats for f32 ones; or, where `gemm`, f16
    /// weights and activations through [`Device::gemm`]. A norm's or SwiGLU's output is made
    /// by the matrix-vector kernel's blocks themselves where `fuse` and its shared memory
    /// allows ([`super::Matvec::input_smem`]), else by its own launch first.
    #[allow(clippy::too_many_arguments)]
    fn linear(
        dev: &D,
        s: &Scratch<D::Buf>,
        w: &DevLinear<D::Buf>,
        input: Input<'_, D::Buf>,
        y: &D::Buf,
        t: usize,
        gemm: bool,
        fuse: bool,
    ) -> Result<()> {
        let (rows, cols) = (w.rows, w.cols);
        let shape = w.mv[(t > 1) as usize];
        // What its blocks make their input from, where they make it.
        let fused = match input {
            _ if gemm || !w.quantized() || !fuse || shape.input_smem(cols).is_none() => None,
            Input::Ready { .. } => None,
            Input::Norm(n) => Some(MatvecMadeFrom {
                how: MatvecInput::Norm,
                src: n.x,
                delta: n.delta,
                nw: Some(n.w),
                resid: n.sum,
                eps: n.eps,
            }),
            Input::SiluMul(gu) => Some(MatvecMadeFrom {
                how: MatvecInput::SiluMul,
                src: gu,
                delta: None,
                nw: None,
                resid: None,
                eps: 0.0,
            }),
        };
        // Where the product's floats are, and whether they are quantized (or f16) already.
        let (x, quantized) = match (input, fused.is_some()) {
            (Input::Ready { x, quantized }, _) => (x, quantized),
            // Made by the product's own blocks: nothing to launch first, `x` is not read.
            (_, true) => (&s.normed, true),
            (Input::Norm(n), false) => {
                let [q, ds] = Self::quantize_into(s, Some(w), gemm);
                Self::norm(dev, n, &s.normed, [q, ds], t)?;
                (&s.normed, Self::prepared_by_producer(Some(w), gemm))
            }
            (Input::SiluMul(gu), false) => {
                let n_act = t * cols;
                let [q, ds] = Self::quantize_into(s, Some(w), gemm);
                dev.launch(
                    "silu_mul",
                    Launch::new(grid1(n_act, 256), 256),
                    &[
                        KArg::Buf(gu),
                        KArg::Buf(&s.act),
                        q,
                        ds,
                        KArg::I32(cols as i32),
                        KArg::I64(n_act as i64),
                    ],
                )?;
                (&s.act, Self::prepared_by_producer(Some(w), gemm))
            }
        };
        if gemm {
            if !quantized {
                let n = t * cols;
                dev.launch(
                    "f32_to_f16",
                    Launch::new(grid1(n, 256), 256),
                    &[KArg::Buf(x), KArg::Buf(&s.xh), KArg::I64(n as i64)],
                )?;
            }
            let half = match &w.half {
                Some(h) => h,
                None => {
                    w.to_f16(dev, &s.wh)?;
                    &s.wh
                }
            };
            return dev.gemm(
                Gemm::rows_by_tokens(rows, cols, t),
                KArg::Buf(half),
                KArg::Buf(&s.xh),
                KArg::Buf(y),
            );
        }
        let (q4_1, qs, scales) = match &w.w {
            DevWeights::Q4_1 { qs, scales } => (true, qs, scales),
            DevWeights::Q8_0 { qs, scales } => (false, qs, scales),
            DevWeights::F32 { w } => {
                return dev.launch(
                    "matvec_f32",
                    MATVEC_F32.launch(rows, t),
                    &[
                        KArg::Buf(w),
                        KArg::Buf(x),
                        KArg::Buf(y),
                        KArg::I32(rows as i32),
                        KArg::I32(cols as i32),
                        KArg::I32(t as i32),
                    ],
                )
            }
        };
        if !quantized {
            let nblocks = t * cols / 32;
            dev.launch(
                "quantize_q8_1",
                Launch::new(grid1(nblocks, 8), 256),
                &[
                    KArg::Buf(x),
                    KArg::Buf(&s.xq),
                    KArg::Buf(&s.xds),
                    KArg::I32(nblocks as i32),
                ],
            )?;
        }
        let op = MatvecOperands {
            q4_1,
            qs,
            scales,
            xq: &s.xq,
            xds: &s.xds,
            y,
            rows,
            cols,
            made_from: fused,
        };
        launch_matvec(dev, &op, &shape, t)
    }

    /// `out = rms_norm(x + delta) * w` over `t` rows (`rms_norm` or `add_rms_norm`), the sum
    /// written where `n.sum` says, `emit` what the kernel leaves for the next product
    /// ([`Self::quantize_into`]).
    fn norm(
        dev: &D,
        n: NormIn<'_, D::Buf>,
        out: &D::Buf,
        emit: [KArg<'_, D::Buf>; 2],
        t: usize,
    ) -> Result<()> {
        let [q, ds] = emit;
        let threads = super::NORM_THREADS as u32;
        let h = KArg::I32(n.h as i32);
        match n.delta {
            None => dev.launch(
                "rms_norm",
                Launch::new((t as u32, 1, 1), threads),
                &[
                    KArg::Buf(n.x),
                    KArg::Buf(n.w),
                    KArg::Buf(out),
                    q,
                    ds,
                    h,
                    KArg::F32(n.eps),
                ],
            ),
            Some(delta) => dev.launch(
                "add_rms_norm",
                Launch::new((t as u32, 1, 1), threads),
                &[
                    KArg::Buf(n.x),
                    KArg::Buf(delta),
                    n.sum.map_or(KArg::Null, KArg::Buf),
                    KArg::Buf(n.w),
                    KArg::Buf(out),
                    q,
                    ds,
                    h,
                    KArg::F32(n.eps),
                ],
            ),
        }
    }

    /// The arguments that make a kernel leave what it writes in the form a product with `w`
    /// reads (`sf_emit`): quantized into the scratch buffers `linear` reads for a quantized
    /// matrix-vector product, as f16 into `xh` on the GEMM path (`gemm`), nothing (two nulls)
    /// for f32 weights or no product.
    fn quantize_into<'a>(
        s: &'a Scratch<D::Buf>,
        w: Option<&DevLinear<D::Buf>>,
        gemm: bool,
    ) -> [KArg<'a, D::Buf>; 2] {
        match w {
            Some(_) if gemm => [KArg::Buf(&s.xh), KArg::Null],
            Some(w) if w.quantized() => [KArg::Buf(&s.xq), KArg::Buf(&s.xds)],
            _ => [KArg::Null, KArg::Null],
        }
    }

    /// Whether the kernel that writes `w`'s input leaves it as `w`'s product reads it
    /// ([`Self::quantize_into`] gives it somewhere to).
    fn prepared_by_producer(w: Option<&DevLinear<D::Buf>>, gemm: bool) -> bool {
        w.is_some_and(|w| gemm || w.quantized())
    }

    /// Flattens `batch`, checking token ids, positions, slots and blocks against the model and
    /// the cache.
    fn inputs(&self, batch: &StepBatch) -> Result<StepInputs> {
        let c = &self.cfg;
        let t = batch.num_tokens();
        let slots = self.num_blocks * self.block_size;
        let width = batch
            .seqs
            .iter()
            .map(|s| s.block_table.len())
            .max()
            .unwrap_or(0)
            .max(1);
        let mut x = StepInputs {
            ids: Vec::with_capacity(t),
            pos: Vec::with_capacity(t),
            slot: Vec::with_capacity(t),
            seq: Vec::with_capacity(t),
            ctx: Vec::with_capacity(t),
            rows: Vec::new(),
            tables: vec![0i32; batch.seqs.len() * width],
            width,
            seqs: batch.seqs.len(),
            parts: 1,
            decode: true,
        };
        for (si, s) in batch.seqs.iter().enumerate() {
            if s.tokens.is_empty()
                || s.tokens.len() != s.positions.len()
                || s.tokens.len() != s.slot_mapping.len()
            {
                return Err(EngineError::InvalidBatch(format!("sequence {si}: tokens, positions and slot_mapping must be non-empty and equally long")));
            }
            x.decode &= s.tokens.len() == 1 && s.want_logits;
            for (j, &b) in s.block_table.iter().enumerate() {
                if b as usize >= self.num_blocks {
                    return Err(EngineError::InvalidBatch(format!(
                        "sequence {si}: block {b} outside the cache"
                    )));
                }
                x.tables[si * width + j] = b as i32;
            }
            for j in 0..s.tokens.len() {
                let (tok, p, sl) = (s.tokens[j], s.positions[j], s.slot_mapping[j]);
                if tok as usize >= c.vocab_size {
                    return Err(EngineError::InvalidBatch(format!(
                        "sequence {si}: token id {tok} is outside the vocabulary"
                    )));
                }
                if p >= c.max_position_embeddings
                    || s.block_table.len() * self.block_size <= p
                    || sl >= slots
                {
                    return Err(EngineError::InvalidBatch(format!(
                        "sequence {si}: position {p} or slot {sl} outside the cache or context"
                    )));
                }
                x.ids.push(tok as i32);
                x.pos.push(p as i32);
                x.slot.push(sl as i64);
                x.seq.push(si as i32);
                x.ctx.push(p as i32 + 1);
                x.parts = x.parts.max((p + 1).div_ceil(self.partition));
            }
            if s.want_logits {
                x.rows.push(x.ids.len() as i32 - 1);
            }
        }
        Ok(x)
    }

    /// Launches one whole step over the inputs packed in `io` (laid out as `l`): `t` tokens,
    /// attention over `parts` partitions, `n` rows of logits and each row's greedy token and
    /// its log-probability into the scratch buffers. `decode`: every token is the one new
    /// token of its sequence, so the attention kernel rotates it and writes its keys and
    /// values itself (no `rope_write_kv` launch). Only launches: it can be captured.
    #[allow(clippy::too_many_arguments)]
    fn launch_step(
        &self,
        io: &D::Buf,
        l: Layout,
        t: usize,
        n: usize,
        parts: usize,
        decode: bool,
    ) -> Result<()> {
        let c = &self.cfg;
        let h = c.hidden_size;
        let dev = &self.dev;
        let s = self.scratch.as_ref().expect("sized before the launch");
        let eps = c.rms_norm_eps;
        let rows = |n: usize| Launch::new((n as u32, 1, 1), 256);

        // The embeddings of every new token.
        let tail = [
            KArg::At(io, Layout::IDS),
            KArg::Buf(&s.x),
            KArg::I32(h as i32),
        ];
        let (kernel, mut args) = match &self.embed.w {
            DevWeights::Q4_1 { qs, scales } => {
                ("embed_q4_1", vec![KArg::Buf(qs), KArg::Buf(scales)])
            }
            DevWeights::Q8_0 { qs, scales } => {
                ("embed_q8_0", vec![KArg::Buf(qs), KArg::Buf(scales)])
            }
            DevWeights::F32 { w } => ("embed_f32", vec![KArg::Buf(w)]),
        };
        args.extend(tail);
        dev.launch(kernel, rows(t), &args)?;
        let group = c.num_heads / c.num_kv_heads;
        let att_smem = super::attention_smem(group, c.head_dim);
        let gemm = if decode {
            self.decode_gemm(t)
        } else {
            self.gemm_for(t)
        };
        // `attention_partial`'s `rope` in decode steps: interleaved pairs 1, NeoX halves 2.
        let rope_style = if c.rope_style == RopeStyle::Neox {
            2
        } else {
            1
        };
        // Each norm, SiLU-multiply and attention output is quantized (or, on the GEMM path,
        // converted to f16) for the product that reads it: by that product's own blocks where
        // they can ([`Self::linear`]), else by the kernel that writes it. The residual lives
        // in two buffers: each add reads one and writes the other (`cur` is the current one),
        // since a product whose blocks add it cannot write where its other blocks read.
        let fuse = self.fuse_inputs;
        let (mut cur, mut other) = (&s.x, &s.x2);
        // What the last sublayer added that is not in `cur` yet (`s.delta`; none before the
        // first layer).
        let mut pending = false;
        let norm_in = |x, pending: bool, sum, w| NormIn {
            x,
            delta: pending.then_some(&s.delta),
            sum: pending.then_some(sum),
            w,
            h,
            eps,
        };
        for (li, layer) in self.layers.iter().enumerate() {
            let input = Input::Norm(norm_in(cur, pending, other, &layer.attn_norm));
            Self::linear(dev, s, &layer.qkv, input, &s.qkv, t, gemm, fuse)?;
            if pending {
                std::mem::swap(&mut cur, &mut other);
            }
            let (kc, vc) = &self.kv[li];
            // Decode steps leave the bias, rotation and cache write to the attention kernel.
            let rope = if decode {
                [
                    layer.qkv_bias.as_ref().map_or(KArg::Null, KArg::Buf),
                    KArg::At(io, l.pos()),
                    KArg::At(io, l.slot()),
                    KArg::Buf(&self.cos),
                    KArg::Buf(&self.sin),
                    KArg::I32(rope_style),
                ]
            } else {
                [
                    KArg::Null,
                    KArg::Null,
                    KArg::Null,
                    KArg::Null,
                    KArg::Null,
                    KArg::I32(0),
                ]
            };
            if !decode {
                dev.launch(
                    "rope_write_kv",
                    Launch::new((t as u32, 1, 1), 128),
                    &[
                        KArg::Buf(&s.qkv),
                        layer.qkv_bias.as_ref().map_or(KArg::Null, KArg::Buf),
                        KArg::Buf(kc),
                        KArg::Buf(vc),
                        KArg::At(io, l.pos()),
                        KArg::At(io, l.slot()),
                        KArg::Buf(&self.cos),
                        KArg::Buf(&self.sin),
                        KArg::I32(c.num_heads as i32),
                        KArg::I32(c.num_kv_heads as i32),
                        KArg::I32(c.head_dim as i32),
                        KArg::I32((c.rope_style == RopeStyle::Neox) as i32),
                    ],
                )?;
            }
            let [q, ds] = Self::quantize_into(s, Some(&layer.o), gemm);
            let mut args = vec![
                KArg::Buf(&s.qkv),
                KArg::Buf(kc),
                KArg::Buf(vc),
                KArg::At(io, l.tables()),
                KArg::I32(l.width as i32),
                KArg::At(io, l.seq()),
                KArg::At(io, l.ctx()),
                KArg::Buf(&s.part_ml),
                KArg::Buf(&s.part_acc),
                KArg::Buf(&s.attn),
                q,
                ds,
                KArg::I32(c.num_heads as i32),
                KArg::I32(c.num_kv_heads as i32),
                KArg::I32(c.head_dim as i32),
                KArg::I32(self.block_size as i32),
                KArg::I32(parts as i32),
                KArg::I32(self.partition as i32),
                KArg::F32(1.0 / (c.head_dim as f32).sqrt()),
            ];
            args.extend(rope);
            dev.launch(
                "attention_partial",
                Launch {
                    grid: (t as u32, c.num_kv_heads as u32, parts as u32),
                    block: super::attention_threads(group, c.head_dim),
                    smem: att_smem,
                },
                &args,
            )?;
            if parts > 1 {
                dev.launch(
                    "attention_reduce",
                    Launch::new((t as u32, c.num_heads as u32, 1), c.head_dim as u32),
                    &[
                        KArg::Buf(&s.part_ml),
                        KArg::Buf(&s.part_acc),
                        KArg::At(io, l.ctx()),
                        KArg::Buf(&s.attn),
                        q,
                        ds,
                        KArg::I32(c.num_heads as i32),
                        KArg::I32(c.head_dim as i32),
                        KArg::I32(parts as i32),
                        KArg::I32(self.partition as i32),
                    ],
                )?;
            }
            let quantized = Self::prepared_by_producer(Some(&layer.o), gemm);
            let input = Input::Ready {
                x: &s.attn,
                quantized,
            };
            Self::linear(dev, s, &layer.o, input, &s.delta, t, gemm, fuse)?;
            let input = Input::Norm(norm_in(cur, true, other, &layer.ffn_norm));
            Self::linear(dev, s, &layer.gate_up, input, &s.mlp, t, gemm, fuse)?;
            std::mem::swap(&mut cur, &mut other);
            let input = Input::SiluMul(&s.mlp);
            Self::linear(dev, s, &layer.down, input, &s.delta, t, gemm, fuse)?;
            pending = true;
        }
        // The last residual add (its sum is not kept), with the output norm. In a decode step
        // every token's row is wanted, in order: the norm leaves it as the output product reads
        // it. Otherwise the rows wanted are gathered first.
        let last = NormIn {
            sum: None,
            ..norm_in(cur, pending, other, &self.norm)
        };
        let gemm = if decode { gemm } else { self.gemm_for(n) };
        let input = if decode {
            debug_assert_eq!(n, t, "a decode step wants every token's logits");
            let emit = Self::quantize_into(s, Some(&self.output), gemm);
            Self::norm(dev, last, &s.normed, emit, t)?;
            Input::Ready {
                x: &s.normed,
                quantized: Self::prepared_by_producer(Some(&self.output), gemm),
            }
        } else {
            Self::norm(dev, last, &s.normed, [KArg::Null, KArg::Null], t)?;
            if n == 0 {
                return Ok(());
            }
            dev.launch(
                "gather_rows",
                rows(n),
                &[
                    KArg::Buf(&s.normed),
                    KArg::At(io, l.rows()),
                    KArg::Buf(&s.last),
                    KArg::I32(h as i32),
                ],
            )?;
            Input::Ready {
                x: &s.last,
                quantized: false,
            }
        };
        Self::linear(dev, s, &self.output, input, &s.logits, n, gemm, fuse)?;
        dev.launch(
            "argmax_logprob",
            Launch::new((n as u32, 1, 1), 1024),
            &[
                KArg::Buf(&s.logits),
                KArg::I32(c.vocab_size as i32),
                KArg::Buf(&s.picked),
                KArg::At(&s.picked, 4 * n),
            ],
        )
    }

    /// The packed input buffer of graphs of `bucket` sequences (block tables `width` wide),
    /// allocated the first time.
    fn graph_io(&mut self, bucket: usize, width: usize) -> Result<()> {
        if !self.graphs.io.iter().any(|(b, _)| *b == bucket) {
            let l = Layout {
                tokens: bucket,
                seqs: bucket,
                width,
            };
            let buf = self.dev.alloc(l.bytes())?;
            self.graphs.io.push((bucket, buf));
        }
        Ok(())
    }

    /// Grows the packed input buffer of steps launched kernel by kernel to `bytes`.
    fn io_capacity(&mut self, bytes: usize) -> Result<()> {
        if self.io.as_ref().is_none_or(|(cap, _)| *cap < bytes) {
            let cap = bytes.max(2 * self.io.as_ref().map_or(0, |(c, _)| *c));
            // The old buffer goes first, so growing needs no room for both.
            self.io = None;
            self.io = Some((cap, self.dev.alloc(cap)?));
        }
        Ok(())
    }

    /// Grows the sampler's buffers to `io` bytes of packed parameters and `work` bytes of rows
    /// and output.
    fn sampling_capacity(&mut self, io: usize, work: usize) -> Result<()> {
        if self
            .sampling
            .as_ref()
            .is_none_or(|s| s.io_cap < io || s.work_cap < work)
        {
            let old = self.sampling.take();
            let io_cap = io.max(old.as_ref().map_or(0, |s| 2 * s.io_cap));
            let work_cap = work.max(old.as_ref().map_or(0, |s| s.work_cap));
            drop(old);
            self.sampling = Some(SamplingBufs {
                io: self.dev.alloc(io_cap)?,
                io_cap,
                work: self.dev.alloc(work_cap)?,
                work_cap,
            });
        }
        Ok(())
    }

    /// A decode step of `bucket` sequences and `parts` attention partitions, captured as one
    /// graph over the inputs in `io`.
    fn capture_step(
        &self,
        io: &D::Buf,
        l: Layout,
        bucket: usize,
        parts: usize,
    ) -> Result<D::Graph> {
        self.dev.begin_capture()?;
        let launched = self.launch_step(io, l, bucket, bucket, parts, true);
        let graph = self.dev.end_capture();
        launched?;
        graph
    }

    /// Runs a decode step of `x.seqs` sequences as the graph of the next batch size up
    /// (capturing it the first time). Returns the rows computed (the batch size).
    fn run_graph(&mut self, x: &StepInputs, bucket: usize) -> Result<usize> {
        let width = self.cfg.max_position_embeddings.div_ceil(self.block_size);
        let parts = x.parts.next_power_of_two();
        // Graphs are captured against buffers large enough for every batch size, so that a
        // larger batch does not grow (and drop) them.
        let most = GRAPH_BATCH_SIZES
            .iter()
            .copied()
            .filter(|&b| b <= self.graph_limit)
            .max()
            .unwrap_or(bucket);
        let tp_have = self.scratch.as_ref().map_or(0, |s| s.token_parts);
        let tp = if tp_have >= bucket * parts {
            0
        } else {
            (bucket * parts).max(2 * tp_have)
        };
        self.scratch(most, tp, most)?;
        let l = Layout {
            tokens: bucket,
            seqs: bucket,
            width,
        };
        self.graph_io(bucket, width)?;
        let packed = x.pack(l, self.num_blocks as i32, self.block_size);
        let Self { dev, graphs, .. } = self;
        let io = &mut graphs
            .io
            .iter_mut()
            .find(|(b, _)| *b == bucket)
            .expect("allocated above")
            .1;
        dev.write(io, &packed)?;
        if !self
            .graphs
            .graphs
            .iter()
            .any(|(k, _)| *k == (bucket, parts))
        {
            let io = &self
                .graphs
                .io
                .iter()
                .find(|(b, _)| *b == bucket)
                .expect("allocated")
                .1;
            // The step once as plain launches first: whatever its first run sets up (modules
            // loaded lazily, cuBLAS's choice of kernels) happens outside the capture, and a
            // launch that fails says so here rather than as an invalidated capture. It writes
            // the same keys and values the replay writes.
            self.launch_step(io, l, bucket, bucket, parts, true)?;
            let graph = match self.capture_step(io, l, bucket, parts) {
                // A driver may take overlapped launches one by one and still refuse them in a
                // capture (or after a cuBLAS kernel in one): capture without them, as every
                // launch from now on will be.
                Err(e) if self.dev.overlap() => {
                    tracing::warn!(
                        error = %e,
                        "capturing a decode step with overlapped launches failed; launching one \
                         after another from now on"
                    );
                    self.dev.set_overlap(false);
                    self.capture_step(io, l, bucket, parts)?
                }
                r => r?,
            };
            self.graphs.graphs.push(((bucket, parts), graph));
            self.graph_captures += 1;
        }
        let graph = &self
            .graphs
            .graphs
            .iter()
            .find(|(k, _)| *k == (bucket, parts))
            .expect("captured above")
            .1;
        self.dev.replay(graph)?;
        self.graph_replays += 1;
        Ok(bucket)
    }

    /// Times, for each decode batch size from [`DECODE_PATHS_TIMED_FROM`] up that runs as a
    /// graph, a step with every product on the matrix-vector kernels and one on the GEMM
    /// path, each captured as a graph and replayed over padding rows (the median of three
    /// rounds), and keeps the faster for decode steps of that size, with its graph (the
    /// matrix-vector kernels unless the GEMM path takes less than
    /// [`DECODE_GEMM_MAX_FRACTION`] of their time). Which is faster depends on the GPU, the
    /// model's shapes and the batch, so no one token count suits every device and model; the
    /// matrix-vector shapes are chosen by timing at load the same way. Nothing to do where
    /// the device does not time launches, or graphs or the GEMM path are off: decode steps
    /// then take the GEMM path from [`Self::set_gemm`]'s token count, as other steps always
    /// do. [`Self::capture_graphs`] (and so serving's start) times the sizes not timed yet.
    pub fn time_decode_paths(&mut self) -> Result<&[DecodePath]> {
        self.decode_paths.clear();
        self.timed_decode_paths()?;
        Ok(&self.decode_paths)
    }

    /// [`Self::time_decode_paths`] of the batch sizes not timed yet; returns how many graphs
    /// it captured and dropped (the slower path's).
    fn timed_decode_paths(&mut self) -> Result<usize> {
        if !self.use_graphs
            || self.gemm_min_tokens.is_none()
            || self.dev.time_launches(&mut || Ok(()))?.is_none()
        {
            return Ok(0);
        }
        let buckets: Vec<usize> = GRAPH_BATCH_SIZES
            .iter()
            .copied()
            .filter(|&b| b >= DECODE_PATHS_TIMED_FROM && b <= self.graph_limit)
            .filter(|&b| !self.decode_paths.iter().any(|p| p.batch == b))
            .collect();
        let replays = self.graph_replays;
        let mut dropped = 0;
        for &bucket in &buckets {
            // Graphs of this size captured before took the path its token count chose.
            self.graphs.graphs.retain(|((b, _), _)| *b != bucket);
            let mut timed: Vec<(f64, D::Graph)> = Vec::with_capacity(2);
            for gemm in [false, true] {
                // The path this capture takes (`decode_gemm`).
                self.decode_paths.push(DecodePath {
                    batch: bucket,
                    matvec_ms: 0.0,
                    gemm_ms: 0.0,
                    gemm,
                });
                let padding = StepInputs {
                    parts: 1,
                    decode: true,
                    ..StepInputs::default()
                };
                let ran = self.run_graph(&padding, bucket);
                self.decode_paths.pop();
                ran?;
                let at = self
                    .graphs
                    .graphs
                    .iter()
                    .position(|(k, _)| *k == (bucket, 1))
                    .expect("captured by run_graph");
                let (_, graph) = self.graphs.graphs.swap_remove(at);
                let dev = &self.dev;
                let mut rounds = Vec::with_capacity(3);
                for _ in 0..3 {
                    let ms = dev
                        .time_launches(&mut || {
                            (0..DECODE_PATH_REPLAYS).try_for_each(|_| dev.replay(&graph))
                        })?
                        .ok_or_else(|| {
                            EngineError::Cuda("the device stopped timing launches".into())
                        })?;
                    rounds.push(ms / DECODE_PATH_REPLAYS as f64);
                }
                rounds.sort_by(f64::total_cmp);
                timed.push((rounds[1], graph));
            }
            let (gemm_ms, gemm_graph) = timed.pop().expect("timed both");
            let (matvec_ms, matvec_graph) = timed.pop().expect("timed both");
            let gemm = gemm_ms < DECODE_GEMM_MAX_FRACTION * matvec_ms;
            let kept = if gemm { gemm_graph } else { matvec_graph };
            self.graphs.graphs.push(((bucket, 1), kept));
            dropped += 1;
            self.decode_paths.push(DecodePath {
                batch: bucket,
                matvec_ms,
                gemm_ms,
                gemm,
            });
        }
        // Timing runs are not serving's replays.
        self.graph_replays = replays;
        if !buckets.is_empty() {
            tracing::info!(
                "decode paths timed (device ms a step, matrix-vector kernels / GEMM path): {}",
                self.decode_paths
                    .iter()
                    .map(|p| format!(
                        "batch {}: {:.3} / {:.3}, {}",
                        p.batch,
                        p.matvec_ms,
                        p.gemm_ms,
                        if p.gemm { "GEMM" } else { "matrix-vector" }
                    ))
                    .collect::<Vec<_>>()
                    .join("; ")
            );
        }
        Ok(dropped)
    }

    /// Captures, now, the decode graph of every batch size and attention partition count
    /// that a step within the reserved limits can take ([`DeviceModel::reserve`] first), as
    /// vLLM does at start: no request then waits on a capture, and the device memory the
    /// graphs take is taken at start and logged. Each graph runs once over padding rows, which
    /// write only the padding block of the cache. Nothing to do where graphs are off.
    pub fn capture_graphs(&mut self) -> Result<GraphsCaptured> {
        let started = std::time::Instant::now();
        if !self.use_graphs || self.reserved_context == 0 {
            return Ok(GraphsCaptured::default());
        }
        let free_before = self.dev.memory().map(|m| m.free);
        let (replays, captures) = (self.graph_replays, self.graph_captures);
        let most_parts = self
            .reserved_context
            .div_ceil(self.partition)
            .next_power_of_two();
        let buckets: Vec<usize> = GRAPH_BATCH_SIZES
            .iter()
            .copied()
            .filter(|&b| b <= self.graph_limit)
            .collect();
        // Room for the widest first (`reserve` made it, unless the partition shrank since):
        // growing the buffers midway would drop the graphs captured before.
        let most = buckets.last().copied().unwrap_or(1);
        self.scratch(most, most * most_parts, most)?;
        let dropped = self.timed_decode_paths()?;
        for &bucket in &buckets {
            let mut parts = 1;
            while parts <= most_parts {
                // No sequences: every row is padding.
                let padding = StepInputs {
                    parts,
                    decode: true,
                    ..StepInputs::default()
                };
                self.run_graph(&padding, bucket)?;
                parts *= 2;
            }
        }
        // Warm-up runs are not serving's replays.
        self.graph_replays = replays;
        let captured = GraphsCaptured {
            graphs: (self.graph_captures - captures) as usize - dropped,
            largest_batch: buckets.last().copied().unwrap_or(0),
            most_parts,
            bytes: free_before
                .zip(self.dev.memory())
                .map(|(before, now)| before.saturating_sub(now.free)),
            seconds: started.elapsed().as_secs_f64(),
        };
        self.last_capture = captured;
        tracing::info!(
            "captured {} decode graphs (batches of up to {} sequences, up to {} attention partitions) in {:.2} s{}",
            captured.graphs,
            captured.largest_batch,
            captured.most_parts,
            captured.seconds,
            captured
                .bytes
                .map_or_else(String::new, |b| format!(", taking {} of device memory", mib(b)))
        );
        Ok(captured)
    }

    /// Runs a step kernel by kernel. Returns the rows of logits computed.
    fn run_eager(&mut self, x: &StepInputs) -> Result<usize> {
        let (t, n) = (x.ids.len(), x.rows.len());
        self.scratch(t, t * x.parts, n)?;
        let l = Layout {
            tokens: t,
            seqs: x.seqs,
            width: x.width,
        };
        let packed = x.pack(l, self.num_blocks as i32, self.block_size);
        self.io_capacity(packed.len())?;
        let io = &mut self.io.as_mut().expect("allocated above").1;
        self.dev.write(io, &packed)?;
        let io = &self.io.as_ref().expect("allocated above").1;
        self.launch_step(io, l, t, n, x.parts, x.decode)?;
        Ok(n)
    }

    /// Samples the rows of `picks` on the device (`sample_rows`), each under its mask where its
    /// sample is masked: for each, in that order, its token, log-probability and top
    /// log-probabilities ([`StepOutput::Token`]).
    fn sample_on_device(
        &mut self,
        picks: &[(usize, &DeviceSample, Option<&Mask>)],
    ) -> Result<Vec<StepOutput>> {
        let n = picks.len();
        let vocab = self.cfg.vocab_size;
        let SampleArrays {
            meta,
            fparams,
            tok,
            val,
            words,
        } = SampleArrays::new(picks, vocab);
        let edits = tok.len();
        // One packed upload: meta [n, 7] i32, fparams [n, 4] f32, edit tokens [e] i32, edit
        // values [e, 3] f32, mask words.
        let (f_at, t_at) = (SAMPLE_META_BYTES * n, SAMPLE_ROW_BYTES * n);
        let v_at = t_at + 4 * edits;
        let m_at = v_at + 12 * edits;
        let bytes = m_at + 4 * words.len();
        let mut packed = vec![0u8; bytes];
        packed[..f_at].copy_from_slice(bytes_of(&meta));
        packed[f_at..t_at].copy_from_slice(bytes_of(&fparams));
        packed[t_at..v_at].copy_from_slice(bytes_of(&tok));
        packed[v_at..m_at].copy_from_slice(bytes_of(&val));
        packed[m_at..].copy_from_slice(bytes_of(&words));
        self.sampling_capacity(bytes, n * (4 * vocab + SAMPLE_OUT_BYTES))?;
        let sb = self.sampling.as_mut().expect("allocated above");
        self.dev.write(&mut sb.io, &packed)?;
        let s = self.scratch.as_ref().expect("sized by the step");
        // Out, after the rows: token [n], logprob [n], top tokens [n, TOP_LOGPROBS], their
        // logprobs [n, TOP_LOGPROBS].
        let out_at = n * vocab * 4;
        let top_at = out_at + 8 * n;
        let top_lp_at = top_at + 4 * n * TOP_LOGPROBS;
        self.dev.launch(
            "sample_rows",
            Launch::new((n as u32, 1, 1), 1024),
            &[
                KArg::Buf(&s.logits),
                KArg::I32(vocab as i32),
                KArg::At(&sb.io, 0),
                KArg::At(&sb.io, f_at),
                KArg::At(&sb.io, t_at),
                KArg::At(&sb.io, v_at),
                KArg::At(&sb.io, m_at),
                KArg::Buf(&sb.work),
                KArg::At(&sb.work, out_at),
                KArg::At(&sb.work, out_at + 4 * n),
                KArg::At(&sb.work, top_at),
                KArg::At(&sb.work, top_lp_at),
            ],
        )?;
        // The top lists only where a row asked for one.
        let listed = picks.iter().any(|(_, p, _)| p.top_logprobs > 0);
        let mut out = vec![
            0u32;
            if listed {
                n * SAMPLE_OUT_BYTES / 4
            } else {
                2 * n
            }
        ];
        self.dev.read_at(&sb.work, out_at, bytes_of_mut(&mut out))?;
        let (top_tok, top_lp) = (2 * n, 2 * n + n * TOP_LOGPROBS);
        Ok(picks
            .iter()
            .enumerate()
            .map(|(i, (_, p, _))| StepOutput::Token {
                token: out[i],
                logprob: f32::from_bits(out[n + i]),
                top_logprobs: (0..p.top_logprobs.min(TOP_LOGPROBS))
                    .map(|r| i * TOP_LOGPROBS + r)
                    // -1: the row had fewer values to list (only NaNs were left).
                    .take_while(|&at| out[top_tok + at] != u32::MAX)
                    .map(|at| (out[top_tok + at], f32::from_bits(out[top_lp + at])))
                    .collect(),
            })
            .collect())
    }

    /// Runs one step. For every sequence with `want_logits`, in batch order, what `picks` asks
    /// of its row (one entry per such sequence; missing entries: logits): the token picked on
    /// the device, greedy or sampled as `engine::sampling::sample` would, with its raw
    /// log-probability (only those numbers come back), or the logits of its last new token
    /// (what `Model::step` returns on the CPU). `masks` is called once the step's kernels are
    /// launched, where a pick is [`DeviceSample::masked`] (see `StepForward::step_outputs`).
    pub fn step_outputs(
        &mut self,
        batch: &StepBatch,
        picks: &[RowPick],
        masks: &mut StepMasks<'_>,
    ) -> Result<Vec<StepOutput>> {
        if batch.num_tokens() == 0 {
            return Ok(Vec::new());
        }
        let x = self.inputs(batch)?;
        let n = x.rows.len();
        let bucket = GRAPH_BATCH_SIZES
            .iter()
            .copied()
            .find(|&b| b >= x.seqs)
            .filter(|&b| b <= self.graph_limit);
        let computed = match bucket {
            Some(b) if self.use_graphs && x.decode => self.run_graph(&x, b)?,
            _ => self.run_eager(&x)?,
        };
        if n == 0 {
            return Ok(Vec::new());
        }
        let pick = |i: usize| picks.get(i).unwrap_or(&RowPick::Logits);
        // The grammars' masks are computed on the host while the launched kernels run.
        let masks = if (0..n).any(|i| matches!(pick(i), RowPick::Sample(p) if p.masked)) {
            masks()
        } else {
            Vec::new()
        };
        let mut out: Vec<Option<StepOutput>> = vec![None; n];
        if (0..n).any(|i| *pick(i) == RowPick::Greedy) {
            let s = self.scratch.as_ref().expect("sized by the step");
            let mut picked = vec![0u32; 2 * computed];
            self.dev.read(&s.picked, bytes_of_mut(&mut picked))?;
            for i in (0..n).filter(|&i| *pick(i) == RowPick::Greedy) {
                out[i] = Some(StepOutput::Token {
                    token: picked[i],
                    logprob: f32::from_bits(picked[computed + i]),
                    top_logprobs: Vec::new(),
                });
            }
        }
        let sampled: Vec<(usize, &DeviceSample, Option<&Mask>)> = (0..n)
            .filter_map(|i| match pick(i) {
                RowPick::Sample(p) => Some((i, p, masks.get(i).and_then(Option::as_ref))),
                _ => None,
            })
            .collect();
        if !sampled.is_empty() {
            for ((i, _, _), o) in sampled.iter().zip(self.sample_on_device(&sampled)?) {
                out[*i] = Some(o);
            }
        }
        let s = self.scratch.as_ref().expect("sized by the step");
        let vocab = self.cfg.vocab_size;
        // Full rows: in one read when they are most of the step, else row by row.
        let full: Vec<usize> = (0..n).filter(|&i| *pick(i) == RowPick::Logits).collect();
        if full.len() * 2 > n {
            let mut all = vec![0f32; n * vocab];
            self.dev.read(&s.logits, bytes_of_mut(&mut all))?;
            for &i in &full {
                out[i] = Some(StepOutput::Logits(all[i * vocab..(i + 1) * vocab].to_vec()));
            }
        } else {
            for &i in &full {
                let mut row = vec![0f32; vocab];
                self.dev
                    .read_at(&s.logits, 4 * i * vocab, bytes_of_mut(&mut row))?;
                out[i] = Some(StepOutput::Logits(row));
            }
        }
        Ok(out
            .into_iter()
            .map(|o| o.expect("every row answered"))
            .collect())
    }

    /// Runs one step and returns, for every sequence with `want_logits`, in batch order, the
    /// logits of its last new token (what `Model::step` returns on the CPU).
    pub fn step(&mut self, batch: &StepBatch) -> Result<Vec<Vec<f32>>> {
        Ok(self
            .step_outputs(batch, &[], &mut Vec::new)?
            .into_iter()
            .map(|o| match o {
                StepOutput::Logits(l) => l,
                StepOutput::Token { .. } => unreachable!("every row asked for logits"),
            })
            .collect())
    }
}

impl<D> crate::model::StepForward for DeviceModel<D>
where
    D: Device + Send,
    D::Buf: Send,
    D::Graph: Send,
{
    fn step(&mut self, batch: &StepBatch) -> Result<Vec<Vec<f32>>> {
        DeviceModel::step(self, batch)
    }

    fn picks_tokens(&self) -> bool {
        true
    }

    fn step_outputs(
        &mut self,
        batch: &StepBatch,
        picks: &[RowPick],
        masks: &mut StepMasks<'_>,
    ) -> Result<Vec<StepOutput>> {
        DeviceModel::step_outputs(self, batch, picks, masks)
    }
}
