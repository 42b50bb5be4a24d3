//! The CUDA backend's kernels and the pieces that need no GPU: their source, the driver probe,
//! and compilation with NVRTC.
//!
//! The kernels are CUDA C under `kernels/`, compiled at run time by NVRTC (cudarc loads the
//! driver and NVRTC dynamically, so the engine builds and its tests run where neither exists).
//! The same source also compiles as C++ for the CPU through `kernels/cpu_shim.h` (CUDA threads
//! as fibers), which is how the tests check every kernel against the CPU engine's functions on
//! machines without a GPU.

use std::collections::HashMap;
use std::ffi::{CStr, CString};
use std::sync::{Arc, Mutex};

use cudarc::driver::{CudaContext, CudaModule};
use cudarc::nvrtc::sys as nvrtc_sys;

use crate::error::{EngineError, Result};

pub mod device;
pub mod model;

/// Every kernel file, in the order they are concatenated after the prelude.
pub const KERNEL_FILES: [(&str, &str); 6] = [
    ("quant.cu", include_str!("kernels/quant.cu")),
    ("norm.cu", include_str!("kernels/norm.cu")),
    ("linear.cu", include_str!("kernels/linear.cu")),
    ("rope.cu", include_str!("kernels/rope.cu")),
    ("attention.cu", include_str!("kernels/attention.cu")),
    ("sample.cu", include_str!("kernels/sample.cu")),
];

/// The definitions every kernel file relies on.
pub const PRELUDE: &str = include_str!("kernels/prelude.cuh");

/// The header that turns the kernels into C++ for the CPU (tests only).
pub const CPU_SHIM: &str = include_str!("kernels/cpu_shim.h");

/// Every kernel's name (`extern "C"`, so the names in the compiled module are these).
pub const KERNELS: &[&str] = &[
    "quantize_q8_1",
    "embed_q4_1",
    "embed_q8_0",
    "embed_f32",
    "dequantize_q4_1_f16",
    "dequantize_q8_0_f16",
    "f32_to_f16",
    "gather_rows",
    "matvec_q4_1_r1t1",
    "matvec_q4_1_r2t1",
    "matvec_q4_1_r4t1",
    "matvec_q4_1_r8t1",
    "matvec_q4_1_r2t8",
    "matvec_q4_1_r4t8",
    "matvec_q4_1_r8t8",
    "matvec_q8_0_r1t1",
    "matvec_q8_0_r2t1",
    "matvec_q8_0_r4t1",
    "matvec_q8_0_r8t1",
    "matvec_q8_0_r2t8",
    "matvec_q8_0_r4t8",
    "matvec_q8_0_r8t8",
    "matvec_f32",
    "rms_norm",
    "add_rms_norm",
    "add_inplace",
    "silu_mul",
    "rope_write_kv",
    "attention_partial",
    "attention_reduce",
    "argmax_logprob",
    "sample_rows",
];

/// The most raw top log-probabilities `sample_rows` lists for a row (its `SF_TOP_LOGPROBS`):
/// as many as a valid request asks for.
pub const TOP_LOGPROBS: usize = crate::sampling::MAX_LOGPROBS;

/// Positions one `attention_partial` block covers by default (its `part_len`; a multiple of
/// the 32-position tile).
pub const ATTENTION_PARTITION: usize = 512;

/// A shape of the quantized matrix-vector kernels (`kernels/linear.cu`): how many rows a warp
/// computes and how many tokens a block row of the grid covers (each weight block is loaded
/// once for that many tokens). Every shape gives the same bits, so the engine times them on its
/// own matrices at start and launches the fastest ([`model::DeviceModel::matvec_choices`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Matvec {
    pub rows_per_warp: usize,
    pub tokens: usize,
    /// Its kernel for Q4_1 weights.
    pub q4_1: &'static str,
    /// Its kernel for Q8_0 weights.
    pub q8_0: &'static str,
}

/// Warps in a block of a matrix-vector kernel (128 threads).
const MATVEC_WARPS: usize = 4;

/// The threads whose order a norm's sum follows (`norm.cu`'s `SF_NORM_THREADS`): a
/// matrix-vector block that normalises its own input must divide it.
pub(crate) const NORM_THREADS: usize = 256;
const _: () = assert!(NORM_THREADS.is_multiple_of(32 * MATVEC_WARPS));

/// The most dynamic shared memory a block may have without opting in (48 KiB): a product
/// whose input needs more has it made by its own launch first.
pub const MATVEC_INPUT_SMEM_MAX: usize = device::SMEM_WITHOUT_OPT_IN as usize;

/// Where a matrix-vector kernel's activations come from (`linear.cu`'s `in`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i32)]
pub enum MatvecInput {
    /// Quantized already (`xq`, `xds`) by the kernel that wrote them.
    Quantized = 0,
    /// `rms_norm(src + delta) * w`, made by each block.
    Norm = 1,
    /// `silu(gate) * up` of rows `[gate | up]`, made by each block.
    SiluMul = 2,
}

impl Matvec {
    /// The launch over `rows` rows and `ntok` tokens.
    pub fn launch(&self, rows: usize, ntok: usize) -> device::Launch {
        device::Launch::new(
            (
                rows.div_ceil(self.rows_per_warp * MATVEC_WARPS) as u32,
                ntok.div_ceil(self.tokens) as u32,
                1,
            ),
            (32 * MATVEC_WARPS) as u32,
        )
    }

    /// The dynamic shared memory a block needs to make its own input of `cols` columns
    /// ([`MatvecInput::Norm`], [`MatvecInput::SiluMul`]): 32 floats of scratch, the
    /// chunk's (d, s) pairs, padded to 16 bytes, then its quantized values. `None` past
    /// [`MATVEC_INPUT_SMEM_MAX`].
    pub fn input_smem(&self, cols: usize) -> Option<u32> {
        let pairs = (2 * self.tokens * (cols / 32)).next_multiple_of(4);
        let bytes = 4 * (32 + pairs) + self.tokens * cols;
        (bytes <= MATVEC_INPUT_SMEM_MAX).then_some(bytes as u32)
    }

    /// Its kernel for Q4_1 weights where `q4_1`, else for Q8_0 weights.
    pub fn kernel(&self, q4_1: bool) -> &'static str {
        if q4_1 {
            self.q4_1
        } else {
            self.q8_0
        }
    }
}

macro_rules! matvec_shapes {
    ($(($r:literal, $t:literal)),* $(,)?) => {
        [$(Matvec {
            rows_per_warp: $r,
            tokens: $t,
            q4_1: concat!("matvec_q4_1_r", $r, "t", $t),
            q8_0: concat!("matvec_q8_0_r", $r, "t", $t),
        }),*]
    };
}

/// Every shape the kernels are compiled in: for one token, 1 to 8 rows a warp; for more,
/// 8 tokens a block row and 2 to 8 rows a warp.
pub const MATVEC_SHAPES: [Matvec; 7] =
    matvec_shapes!((1, 1), (2, 1), (4, 1), (8, 1), (2, 8), (4, 8), (8, 8));

/// The shapes a product of `ntok` tokens chooses from: the one-token kernels for one token,
/// the eight-token ones for more.
pub fn matvec_candidates(ntok: usize) -> impl Iterator<Item = &'static Matvec> {
    let one = ntok == 1;
    MATVEC_SHAPES.iter().filter(move |m| (m.tokens == 1) == one)
}

/// The shape launched for `ntok` tokens before (or without) timing: two rows a warp.
pub fn matvec_default(ntok: usize) -> Matvec {
    *matvec_candidates(ntok)
        .find(|m| m.rows_per_warp == 2)
        .expect("a two-row shape of each kind")
}

/// The shape of `matvec_f32` (f32 weights): 2 rows a warp, 8 tokens a block row.
pub const MATVEC_F32: Matvec = Matvec {
    rows_per_warp: 2,
    tokens: 8,
    q4_1: "matvec_f32",
    q8_0: "matvec_f32",
};

/// The `extern "C"` kernels of every [`MATVEC_SHAPES`] entry, calling `linear.cu`'s template.
fn matvec_kernels() -> String {
    let mut s = String::from("\n// ---- the matrix-vector kernels of cuda::MATVEC_SHAPES\n");
    for m in MATVEC_SHAPES {
        let (r, t) = (m.rows_per_warp, m.tokens);
        for (name, w, scales) in [(m.q4_1, "u8", "u32"), (m.q8_0, "i8", "u16")] {
            let params = format!(
                "const {w}* __restrict__ qs, const {scales}* __restrict__ sc, \
                 const i8* __restrict__ xq, const float* __restrict__ xds, \
                 float* __restrict__ y, int rows, int cols, int ntok, int in, \
                 const float* __restrict__ src, const float* __restrict__ delta, \
                 const float* __restrict__ nw, float* __restrict__ resid, float eps"
            );
            s.push_str(&format!(
                "SF_KERNEL void {name}({params}) {{\n    \
                 sf_matvec<{r}, {t}>(qs, sc, xq, xds, y, rows, cols, ntok, in, src, delta, nw, \
                 resid, eps);\n}}\n"
            ));
        }
    }
    s
}

/// The dynamic shared memory of an `attention_partial` block (its layout is in the kernel):
/// the group's queries, a tile of keys and of values as f32.
pub fn attention_smem(group: usize, head_dim: usize) -> u32 {
    ((group * head_dim + 2 * 32 * (head_dim + 1)) * 4) as u32
}

/// The most threads of an `attention_partial` block (its `SF_ATT_MAX_THREADS`): models with
/// more than 16 query heads per KV head are refused.
pub const ATTENTION_MAX_THREADS: usize = 512;

/// The threads of an `attention_partial` block: a warp per query head of the group, and at
/// least `head_dim` in all, so that each thread loads at most `SF_ATT_PIECES` (4) 16-byte
/// pieces of a tile's keys and as many of its values (a tile: 32 positions of `head_dim / 8`
/// pieces).
pub fn attention_threads(group: usize, head_dim: usize) -> u32 {
    (group * 32).max(head_dim.next_multiple_of(32)) as u32
}

/// The source NVRTC compiles: the prelude, every kernel file, then the matrix-vector kernels
/// of each [`MATVEC_SHAPES`] entry.
pub fn source() -> String {
    let mut s = String::from(PRELUDE);
    for (name, text) in KERNEL_FILES {
        s.push_str(&format!("\n// ---- {name}\n"));
        s.push_str(text);
    }
    s.push_str(&matvec_kernels());
    s
}

/// The source as C++ for the CPU: the shim first, then [`source`].
pub fn cpu_source() -> String {
    format!("{CPU_SHIM}\n{}", source())
}

const NO_DRIVER: &str = "no CUDA driver found; backend = \"cuda\" needs an NVIDIA GPU";

/// Whether the CUDA driver library can be loaded. Nothing calls into the driver before this
/// says yes (cudarc panics on a missing library; this never does).
pub fn driver_present() -> bool {
    // SAFETY: only tries to open the library; calls nothing in it.
    unsafe { cudarc::driver::sys::is_culib_present() }
}

/// Fails with a clear error where the CUDA backend cannot run.
pub fn probe_driver() -> Result<()> {
    if driver_present() {
        Ok(())
    } else {
        Err(EngineError::Cuda(NO_DRIVER.into()))
    }
}

/// Whether NVRTC can be loaded (`libnvrtc.so.13` on the library path).
pub fn nvrtc_present() -> bool {
    // SAFETY: only tries to open the library.
    unsafe { nvrtc_sys::is_culib_present() }
}

/// One NVRTC compilation's output.
#[derive(Debug)]
pub struct Compiled {
    /// A cubin for a real architecture (`sm_90`), or PTX text for a virtual one (`compute_90`).
    pub image: Vec<u8>,
    /// NVRTC's log, with ptxas's per-kernel report (registers, spills) for a real architecture.
    pub log: String,
}

impl Compiled {
    /// The lines of ptxas's report that show a kernel spilling registers to local memory.
    pub fn spills(&self) -> Vec<&str> {
        self.log
            .lines()
            .filter(|l| {
                l.contains("spill stores")
                    && !(l.contains(" 0 bytes spill stores") && l.contains(" 0 bytes spill loads"))
            })
            .collect()
    }
}

/// Compiles `src` with NVRTC for `arch` (`sm_90` gives a cubin, `compute_90` PTX), with the
/// CUDA headers in `include_dirs` visible. The ptxas report goes into the log.
pub fn compile(src: &str, arch: &str, include_dirs: &[String]) -> Result<Compiled> {
    if !nvrtc_present() {
        return Err(EngineError::Cuda(
            "NVRTC not found (libnvrtc.so.13 on the library path)".into(),
        ));
    }
    let real = arch.starts_with("sm_");
    let mut options = vec![
        format!("--gpu-architecture={arch}"),
        "--std=c++17".to_string(),
    ];
    if real {
        options.push("--ptxas-options=-v".into());
    }
    options.extend(include_dirs.iter().map(|d| format!("--include-path={d}")));
    let src = CString::new(src)
        .map_err(|_| EngineError::Cuda("kernel source holds a NUL byte".into()))?;
    let name = CString::new("starfire.cu").expect("no NUL");
    let nvrtc_err = |what: &str, e: cudarc::nvrtc::result::NvrtcError| {
        EngineError::Cuda(format!("NVRTC {what}: {e:?}"))
    };
    let prog = cudarc::nvrtc::result::create_program(&src, Some(&name))
        .map_err(|e| nvrtc_err("create", e))?;
    // SAFETY: `prog` is live until the destroy below; the buffers are sized by NVRTC's own
    // size calls.
    let out = unsafe {
        let compiled = cudarc::nvrtc::result::compile_program(prog, &options);
        let log = cudarc::nvrtc::result::get_program_log(prog)
            .map(|l| CStr::from_ptr(l.as_ptr()).to_string_lossy().into_owned())
            .unwrap_or_default();
        let image = match compiled {
            Err(_) => Err(EngineError::Cuda(format!(
                "NVRTC could not compile the kernels for {arch}:\n{log}"
            ))),
            Ok(()) if real => {
                let mut size = 0usize;
                nvrtc_sys::nvrtcGetCUBINSize(prog, &mut size)
                    .result()
                    .map_err(|e| nvrtc_err("cubin size", e))?;
                let mut buf = vec![0u8; size];
                nvrtc_sys::nvrtcGetCUBIN(prog, buf.as_mut_ptr().cast())
                    .result()
                    .map_err(|e| nvrtc_err("cubin", e))?;
                Ok(buf)
            }
            Ok(()) => cudarc::nvrtc::result::get_ptx(prog)
                .map(|p| CStr::from_ptr(p.as_ptr()).to_bytes().to_vec())
                .map_err(|e| nvrtc_err("ptx", e)),
        };
        let _ = cudarc::nvrtc::result::destroy_program(prog);
        image.map(|image| Compiled { image, log })
    };
    out
}

/// Extra include directories for NVRTC (`STARFIRE_CUDA_INCLUDE`); the kernels need none.
pub fn include_dirs_from_env() -> Vec<String> {
    std::env::var("STARFIRE_CUDA_INCLUDE")
        .map(|d| vec![d])
        .unwrap_or_default()
}

/// Opens device `ordinal` after probing for the driver, so a machine without one gets
/// [`probe_driver`]'s error instead of a panic, and an ordinal past the GPUs there says how
/// many there are.
pub fn open_device(ordinal: usize) -> Result<Arc<CudaContext>> {
    probe_driver()?;
    let count = CudaContext::device_count()
        .map_err(|e| EngineError::Cuda(format!("counting the CUDA devices: {e:?}")))?
        .max(0) as usize;
    if ordinal >= count {
        return Err(EngineError::Cuda(no_such_device(ordinal, count)));
    }
    CudaContext::new(ordinal)
        .map_err(|e| EngineError::Cuda(format!("CUDA device {ordinal}: {e:?}")))
}

/// What opening GPU `ordinal` says where the driver sees `count`.
fn no_such_device(ordinal: usize, count: usize) -> String {
    let visible = match count {
        0 => "no CUDA device is visible".to_string(),
        1 => "only CUDA device 0 is visible".to_string(),
        n => format!("CUDA devices 0 to {} are visible", n - 1),
    };
    format!(
        "there is no CUDA device {ordinal}: {visible} (CUDA_VISIBLE_DEVICES may hide others; \
         check cuda_device)"
    )
}

/// NVRTC's version (`major.minor`), after [`nvrtc_present`] said yes.
fn nvrtc_version() -> Result<String> {
    let (mut major, mut minor) = (0, 0);
    // SAFETY: two out-parameters; the library is loaded (checked by the caller).
    unsafe { nvrtc_sys::nvrtcVersion(&mut major, &mut minor) }
        .result()
        .map_err(|e| EngineError::Cuda(format!("NVRTC version: {e:?}")))?;
    Ok(format!("{major}.{minor}"))
}

/// The kernels as a cubin for `arch` (`sm_90`), from `dir` when an earlier run compiled the
/// same source with the same NVRTC for it, else compiled now and stored there (written
/// whole, then renamed into place, so that a reader never sees part of one; a cache that
/// cannot be written only costs the next start a compile).
pub fn cached_cubin(arch: &str, dir: &std::path::Path) -> Result<Vec<u8>> {
    use sha2::{Digest, Sha256};
    if !nvrtc_present() {
        return Err(EngineError::Cuda(
            "NVRTC not found (libnvrtc.so.13 on the library path)".into(),
        ));
    }
    let src = source();
    let includes = include_dirs_from_env();
    let mut h = Sha256::new();
    for part in [src.as_str(), arch, &nvrtc_version()?, &includes.join("\n")] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    let key: String = h.finalize()[..12]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let path = dir.join(format!("kernels-{arch}-{key}.cubin"));
    if let Ok(bytes) = std::fs::read(&path) {
        if bytes.starts_with(b"\x7fELF") {
            return Ok(bytes);
        }
    }
    let image = compile(&src, arch, &includes)?.image;
    let tmp = dir.join(format!(".kernels-{arch}-{key}.{}.tmp", std::process::id()));
    let stored = std::fs::create_dir_all(dir)
        .and_then(|_| std::fs::write(&tmp, &image))
        .and_then(|_| std::fs::rename(&tmp, &path));
    if let Err(e) = stored {
        let _ = std::fs::remove_file(&tmp);
        tracing::warn!(path = %path.display(), error = %e, "could not store the compiled CUDA kernels");
    }
    Ok(image)
}

/// The kernels compiled for `ctx`'s device (a cubin for its exact architecture, from the
/// on-disk cache under the Starfire home when present, once per architecture per process) and
/// loaded into it.
pub fn load_kernels(ctx: &Arc<CudaContext>) -> Result<Arc<CudaModule>> {
    static CUBINS: Mutex<Option<HashMap<String, Arc<Vec<u8>>>>> = Mutex::new(None);
    let drv = |e: cudarc::driver::DriverError| EngineError::Cuda(format!("CUDA driver: {e:?}"));
    let (major, minor) = ctx.compute_capability().map_err(drv)?;
    let arch = format!("sm_{major}{minor}");
    let cubin = {
        let mut cache = CUBINS.lock().unwrap_or_else(|e| e.into_inner());
        let cache = cache.get_or_insert_with(HashMap::new);
        match cache.get(&arch) {
            Some(c) => c.clone(),
            None => {
                let dir = crate::model_cache::starfire_home().join("cuda");
                let c = Arc::new(cached_cubin(&arch, &dir)?);
                cache.insert(arch.clone(), c.clone());
                c
            }
        }
    };
    ctx.load_module(cudarc::nvrtc::Ptx::from_binary(cubin.to_vec()))
        .map_err(drv)
}

/// One kernel definition in the source: its name, where its text starts (`SF_KERNEL void`), its
/// launch bounds (`SF_BOUNDS(n)`: the most threads a block may have, a number or a name
/// `#define`d as one) where given (a GPU refuses a launch of more threads), and its parameters.
pub(crate) struct Definition<'a> {
    pub name: &'a str,
    // Read by the tests, which look into the kernels' bodies.
    #[cfg_attr(not(test), allow(dead_code))]
    pub at: usize,
    pub bounds: Option<u32>,
    pub params: Vec<Param>,
}

/// A kernel parameter as its declaration says: what a launch must pass for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Param {
    pub name: String,
    pub kind: ParamKind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ParamKind {
    I32,
    I64,
    F32,
    /// A pointer: `__restrict__` (no other parameter reaches its memory), and not `const`.
    Pointer {
        restrict: bool,
        written: bool,
    },
}

impl Param {
    /// `decl`: one parameter's declaration, as `const float* __restrict__ x` or `int n`.
    fn parse(decl: &str) -> Self {
        let words: Vec<&str> = decl.split_whitespace().collect();
        let (name, ty) = words.split_last().expect("a parameter");
        let ty = ty.join(" ");
        let kind = if ty.contains('*') {
            ParamKind::Pointer {
                restrict: ty.contains("__restrict__"),
                written: !ty.starts_with("const "),
            }
        } else {
            match ty.trim_start_matches("const ") {
                "int" => ParamKind::I32,
                "i64" | "long long" => ParamKind::I64,
                "float" => ParamKind::F32,
                other => panic!("a kernel parameter of type {other:?} ({decl:?})"),
            }
        };
        Self {
            name: name.trim_start_matches('*').to_string(),
            kind,
        }
    }
}

/// Every kernel definition in `src`, in order.
pub(crate) fn definitions(src: &str) -> Vec<Definition<'_>> {
    let defined = |name: &str| -> Option<u32> {
        let line = format!("#define {name} ");
        let at = src.find(&line)? + line.len();
        src[at..].split_whitespace().next()?.parse().ok()
    };
    src.match_indices("SF_KERNEL void ")
        .map(|(at, m)| {
            let mut rest = &src[at + m.len()..];
            let mut bounds = None;
            if let Some(r) = rest.strip_prefix("SF_BOUNDS(") {
                let close = r.find(") ").expect("SF_BOUNDS(n) name");
                let n = r[..close].trim();
                bounds = Some(n.parse().ok().or_else(|| defined(n)).unwrap_or_else(|| {
                    panic!("SF_BOUNDS({n}): neither a number nor a #define of one")
                }));
                rest = &r[close + 2..];
            }
            let open = rest.find('(').expect("a kernel's parameters");
            let close = open + rest[open..].find(')').expect("a kernel's parameters' end");
            Definition {
                name: &rest[..open],
                at,
                bounds,
                params: rest[open + 1..close]
                    .split(',')
                    .filter(|p| !p.trim().is_empty())
                    .map(Param::parse)
                    .collect(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kernel_is_defined_once_and_listed() {
        let src = source();
        let defined: Vec<&str> = definitions(&src).into_iter().map(|d| d.name).collect();
        let mut sorted = defined.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), defined.len(), "a kernel is defined twice");
        let mut listed: Vec<&str> = KERNELS.to_vec();
        listed.sort_unstable();
        assert_eq!(sorted, listed);
    }

    #[test]
    fn kernel_limits_match_the_hosts() {
        let src = source();
        for define in [
            format!("#define SF_TOP_LOGPROBS {TOP_LOGPROBS}\n"),
            format!("#define SF_ATT_MAX_THREADS {ATTENTION_MAX_THREADS}\n"),
            format!("#define SF_SAMPLE_META {}\n", model::SAMPLE_META_INTS),
            format!("#define SF_NORM_THREADS {NORM_THREADS}\n"),
            format!(
                "#define SF_MV_QUANTIZED {}\n",
                MatvecInput::Quantized as i32
            ),
            format!("#define SF_MV_NORM {}\n", MatvecInput::Norm as i32),
            format!("#define SF_MV_SILU {}\n", MatvecInput::SiluMul as i32),
        ] {
            assert!(src.contains(&define), "the kernels lack {define:?}");
        }
    }

    /// The text of the function body that starts after `at` (its braces excluded).
    fn body_after(src: &str, at: usize) -> &str {
        let body = &src[at..];
        let open = body.find(") {").expect("a body") + 3;
        let close = body[open..].find("\n}\n").expect("a body's end");
        &body[open..open + close]
    }

    /// Kernels are launched with programmatic dependent launch: one that touched memory the
    /// kernel before it may write, before waiting for it, would race with it. Every kernel
    /// waits first, but for those that load what no kernel writes before they wait (the
    /// matrix-vector kernels their weights, in `sf_matvec`; `attention_partial` the step's
    /// inputs and earlier steps' keys and values), which wait in the body they run.
    #[test]
    fn every_kernel_waits_for_the_one_before_it_first() {
        let src = source();
        let defs = definitions(&src);
        let matvec = src.find("SF_DEVICE void sf_matvec(").expect("sf_matvec");
        for k in KERNELS {
            let at = defs
                .iter()
                .find(|d| d.name == *k)
                .unwrap_or_else(|| panic!("{k} is not defined"))
                .at;
            let body = body_after(&src, at).trim_start();
            if body.starts_with("SF_WAIT_PRIOR();") {
                continue;
            }
            let waits_in = if k.starts_with("matvec_q") {
                assert!(
                    body.starts_with("sf_matvec<"),
                    "{k} does not call sf_matvec"
                );
                body_after(&src, matvec)
            } else {
                assert_eq!(
                    *k, "attention_partial",
                    "{k} does not start with SF_WAIT_PRIOR()"
                );
                body
            };
            assert!(waits_in.contains("SF_WAIT_PRIOR();"), "{k} never waits");
        }
    }

    #[test]
    fn launch_bounds_are_read_through_their_defines() {
        let src = source();
        let bounds: Vec<(&str, u32)> = definitions(&src)
            .into_iter()
            .filter_map(|d| Some((d.name, d.bounds?)))
            .collect();
        assert!(
            bounds.contains(&("attention_partial", ATTENTION_MAX_THREADS as u32)),
            "{bounds:?}"
        );
        let d = definitions("#define B 64\nSF_KERNEL void SF_BOUNDS(B) k(int x) {}\n");
        assert_eq!((d[0].name, d[0].bounds), ("k", Some(64)));
    }

    #[test]
    fn kernel_parameters_are_read_with_their_kinds() {
        let d = definitions(
            "SF_KERNEL void k(const float* __restrict__ x, float* y, i64 n, int m, float s) {}\n",
        );
        let kinds: Vec<(&str, ParamKind)> = d[0]
            .params
            .iter()
            .map(|p| (p.name.as_str(), p.kind))
            .collect();
        assert_eq!(
            kinds,
            [
                (
                    "x",
                    ParamKind::Pointer {
                        restrict: true,
                        written: false
                    }
                ),
                (
                    "y",
                    ParamKind::Pointer {
                        restrict: false,
                        written: true
                    }
                ),
                ("n", ParamKind::I64),
                ("m", ParamKind::I32),
                ("s", ParamKind::F32),
            ]
        );
        // Every kernel of the source parses.
        let src = source();
        for d in definitions(&src) {
            assert!(!d.params.is_empty(), "{} takes no parameters", d.name);
        }
    }

    #[test]
    fn a_gpu_that_is_not_there_is_named_with_those_that_are() {
        assert_eq!(
            no_such_device(1, 1),
            "there is no CUDA device 1: only CUDA device 0 is visible (CUDA_VISIBLE_DEVICES may \
             hide others; check cuda_device)"
        );
        assert!(no_such_device(4, 4).contains("CUDA devices 0 to 3 are visible"));
        assert!(no_such_device(0, 0).contains("no CUDA device is visible"));
    }

    #[test]
    fn spills_are_found_in_the_ptxas_report() {
        let c = Compiled {
            image: vec![],
            log: "ptxas info    : Function properties for a\n    0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads\nptxas info    : Function properties for b\n    8 bytes stack frame, 8 bytes spill stores, 8 bytes spill loads\n".into(),
        };
        assert_eq!(c.spills().len(), 1);
        assert!(c.spills()[0].contains("8 bytes spill stores"));
    }

    #[test]
    fn a_missing_driver_is_an_error_not_a_panic() {
        if driver_present() {
            eprintln!("a CUDA driver is present here; the no-driver error is not reachable");
            return;
        }
        let e = probe_driver().unwrap_err().to_string();
        assert!(
            e.contains("no CUDA driver found; backend = \"cuda\" needs an NVIDIA GPU"),
            "{e}"
        );
    }
}
