//! Linear layers: `y = x · Wᵀ` for all the step's tokens at once, split across cores by rows.

use candle_core::quantized::{QMatMul, QTensor};
use candle_core::{Device, Module, Tensor};
use rayon::prelude::*;

use super::dot::{self, MAX_TOKENS_PER_CALL};
use super::quant::{Q4_1Matrix, Q8_0Matrix, QuantizedRows};
use crate::error::{EngineError, Result};

/// A weight matrix of `rows` outputs by `cols` inputs, in whichever form computes fastest.
pub enum Linear {
    /// Q4_1 weights with our SIMD kernels.
    Q4_1(Q4_1Matrix),
    /// Q8_0 weights with our SIMD kernels.
    Q8_0(Q8_0Matrix),
    /// f32 weights (from f32/f16/bf16 files), multiplied by candle's GEMM.
    Dense {
        rows: usize,
        cols: usize,
        weight: Tensor,
    },
    /// Any other quantized type candle supports, through `QMatMul`.
    Candle {
        rows: usize,
        cols: usize,
        inner: QMatMul,
    },
    /// Several matrices side by side that could not be merged (different types).
    Stacked(Vec<Linear>),
}

impl std::fmt::Debug for Linear {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Linear::{}({}x{})",
            self.kind(),
            self.rows(),
            self.cols()
        )
    }
}

/// A raw pointer that rayon tasks may share because each writes disjoint elements.
#[derive(Clone, Copy)]
struct OutPtr(*mut f32);
unsafe impl Send for OutPtr {}
unsafe impl Sync for OutPtr {}

impl OutPtr {
    /// A method (not a field access) so closures capture the whole `Send` wrapper.
    fn at(self, i: usize) -> *mut f32 {
        self.0.wrapping_add(i)
    }
}

impl Linear {
    /// From a GGUF tensor of shape `[rows, cols]` (candle's order: outputs first).
    pub fn from_qtensor(name: &str, q: QTensor) -> Result<Self> {
        let dims = q.shape().dims().to_vec();
        let (rows, cols) = match dims.as_slice() {
            [r, c] => (*r, *c),
            other => {
                return Err(EngineError::Model(format!(
                    "{name}: expected a matrix, got shape {other:?}"
                )))
            }
        };
        use candle_core::quantized::GgmlDType as T;
        if std::env::var("STARFIRE_KERNELS").is_ok_and(|k| k == "candle")
            && !matches!(q.dtype(), T::F32 | T::F16 | T::BF16)
        {
            // Benchmark baseline: candle's own quantized matmul for every quantized type.
            return Ok(Self::Candle {
                rows,
                cols,
                inner: QMatMul::from_qtensor(q)?,
            });
        }
        Ok(match q.dtype() {
            T::Q4_1 => Self::Q4_1(Q4_1Matrix::from_ggml(&q.data()?, rows, cols)?),
            T::Q8_0 => Self::Q8_0(Q8_0Matrix::from_ggml(&q.data()?, rows, cols)?),
            T::F32 | T::F16 | T::BF16 => Self::dense(q.dequantize(&Device::Cpu)?)?,
            _ => Self::Candle {
                rows,
                cols,
                inner: QMatMul::from_qtensor(q)?,
            },
        })
    }

    /// From an f32 tensor `[rows, cols]`.
    pub fn dense(weight: Tensor) -> Result<Self> {
        let weight = weight.to_dtype(candle_core::DType::F32)?;
        let (rows, cols) = weight.dims2()?;
        Ok(Self::Dense { rows, cols, weight })
    }

    pub fn rows(&self) -> usize {
        match self {
            Self::Q4_1(m) => m.rows,
            Self::Q8_0(m) => m.rows,
            Self::Dense { rows, .. } | Self::Candle { rows, .. } => *rows,
            Self::Stacked(parts) => parts.iter().map(Linear::rows).sum(),
        }
    }

    pub fn cols(&self) -> usize {
        match self {
            Self::Q4_1(m) => m.cols,
            Self::Q8_0(m) => m.cols,
            Self::Dense { cols, .. } | Self::Candle { cols, .. } => *cols,
            Self::Stacked(parts) => parts[0].cols(),
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Self::Q4_1(_) => "Q4_1",
            Self::Q8_0(_) => "Q8_0",
            Self::Dense { .. } => "Dense",
            Self::Candle { .. } => "Candle",
            Self::Stacked(_) => "Stacked",
        }
    }

    /// Stacks matrices with the same input size, so one call computes all their outputs
    /// (q, k and v; gate and up). Same-format parts merge into one matrix.
    pub fn concat_rows(parts: Vec<Linear>) -> Result<Self> {
        if parts.iter().all(|p| matches!(p, Self::Q4_1(_))) {
            let ms: Vec<&Q4_1Matrix> = parts
                .iter()
                .filter_map(|p| if let Self::Q4_1(m) = p { Some(m) } else { None })
                .collect();
            return Ok(Self::Q4_1(Q4_1Matrix::concat_rows(&ms)));
        }
        if parts.iter().all(|p| matches!(p, Self::Q8_0(_))) {
            let ms: Vec<&Q8_0Matrix> = parts
                .iter()
                .filter_map(|p| if let Self::Q8_0(m) = p { Some(m) } else { None })
                .collect();
            return Ok(Self::Q8_0(Q8_0Matrix::concat_rows(&ms)));
        }
        if parts.iter().all(|p| matches!(p, Self::Dense { .. })) {
            let ts: Vec<&Tensor> = parts
                .iter()
                .filter_map(|p| {
                    if let Self::Dense { weight, .. } = p {
                        Some(weight)
                    } else {
                        None
                    }
                })
                .collect();
            return Self::dense(Tensor::cat(&ts, 0)?);
        }
        Ok(Self::Stacked(parts))
    }

    /// `x` is `[t, cols]` row-major; returns `[t, rows]`.
    pub fn forward(&self, x: &[f32], t: usize) -> Result<Vec<f32>> {
        debug_assert_eq!(x.len(), t * self.cols());
        match self {
            Self::Q4_1(m) => Ok(quantized_matmul(
                m.rows,
                &QuantizedRows::quantize(x, t, m.cols),
                |r, pair, xq, toks, out| {
                    if pair {
                        dot::q4_1_row_pair(m, r, xq, toks, out)
                    } else {
                        dot::q4_1_row(m, r, xq, toks, out)
                    }
                },
            )),
            Self::Q8_0(m) => Ok(quantized_matmul(
                m.rows,
                &QuantizedRows::quantize(x, t, m.cols),
                |r, pair, xq, toks, out| {
                    if pair {
                        dot::q8_0_row_pair(m, r, xq, toks, out)
                    } else {
                        dot::q8_0_row(m, r, xq, toks, out)
                    }
                },
            )),
            Self::Dense { cols, weight, .. } => {
                let xt = Tensor::from_slice(x, (t, *cols), &Device::Cpu)?;
                Ok(xt.matmul(&weight.t()?)?.flatten_all()?.to_vec1()?)
            }
            Self::Candle { cols, inner, .. } => {
                let xt = Tensor::from_slice(x, (t, *cols), &Device::Cpu)?;
                Ok(inner.forward(&xt)?.flatten_all()?.to_vec1()?)
            }
            Self::Stacked(parts) => {
                let n = self.rows();
                let mut out = vec![0.0; t * n];
                let mut offset = 0;
                for p in parts {
                    let y = p.forward(x, t)?;
                    let pn = p.rows();
                    for i in 0..t {
                        out[i * n + offset..i * n + offset + pn]
                            .copy_from_slice(&y[i * pn..(i + 1) * pn]);
                    }
                    offset += pn;
                }
                Ok(out)
            }
        }
    }

    /// Row `r` as f32: the embedding of token `r` when this is a token embedding table.
    pub fn row(&self, r: usize, out: &mut [f32]) -> Result<()> {
        match self {
            Self::Q4_1(m) => m.dequantize_row(r, out),
            Self::Q8_0(m) => m.dequantize_row(r, out),
            Self::Dense { weight, .. } => out.copy_from_slice(&weight.get(r)?.to_vec1::<f32>()?),
            Self::Candle { .. } | Self::Stacked(_) => {
                return Err(EngineError::Model(format!(
                    "row lookup is not supported on {}",
                    self.kind()
                )))
            }
        }
        Ok(())
    }
}

/// Runs `kernel` over every (row pair, token group), rows split across rayon's threads.
/// `kernel(r, pair, x, tokens, out)` fills `out[..n]` for row `r` and, when `pair`, also
/// `out[n..2n]` for row `r + 1` (n = tokens.len()).
fn quantized_matmul<K>(rows: usize, x: &QuantizedRows, kernel: K) -> Vec<f32>
where
    K: Fn(usize, bool, &QuantizedRows, &[usize], &mut [f32]) + Sync,
{
    let t = x.rows;
    let mut out = vec![0.0f32; t * rows];
    let threads = rayon::current_num_threads().max(1);
    // Enough chunks to balance, each big enough to amortize scheduling.
    let chunk = (rows / (threads * 4)).clamp(16, 256);
    let ptr = OutPtr(out.as_mut_ptr());
    let token_ids: Vec<usize> = (0..t).collect();
    let per_call = dot::tokens_per_call();
    (0..rows.div_ceil(chunk)).into_par_iter().for_each(|c| {
        let r0 = c * chunk;
        let r1 = (r0 + chunk).min(rows);
        let mut buf = [0f32; 2 * MAX_TOKENS_PER_CALL];
        for toks in token_ids.chunks(per_call) {
            let n = toks.len();
            let mut r = r0;
            while r < r1 {
                let pair = r + 1 < r1;
                kernel(r, pair, x, toks, &mut buf[..if pair { 2 * n } else { n }]);
                for (j, row) in (r..r + 1 + pair as usize).enumerate() {
                    for (i, &tok) in toks.iter().enumerate() {
                        // SAFETY: (tok, row) is inside the t × rows output, and no other task
                        // writes this row (rows are partitioned by chunk).
                        unsafe { *ptr.at(tok * rows + row) = buf[j * n + i] };
                    }
                }
                r += 1 + pair as usize;
            }
        }
    });
    out
}
