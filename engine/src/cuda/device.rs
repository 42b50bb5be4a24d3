//! Where kernels run: a [`Device`] allocates buffers, copies to and from them and launches the
//! kernels by name with `cuLaunchKernel`'s argument convention. [`CudaDevice`] is a GPU through
//! cudarc; [`HostDevice`] runs the same kernel source compiled as C++ for the CPU (`g++` at run
//! time, `cpu_shim.h`), so the whole CUDA forward pass is tested on machines without a GPU.

use std::collections::HashMap;
use std::ffi::{c_char, c_void, CString};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use cudarc::driver::sys::CUevent_flags;
use cudarc::driver::sys::{CUgraphInstantiate_flags, CUstreamCaptureMode};
use cudarc::driver::{
    CudaContext, CudaEvent, CudaFunction, CudaGraph, CudaModule, CudaSlice, CudaStream, DevicePtr,
};

use super::{load_kernels, open_device, KERNELS};
use crate::error::{EngineError, Result};

/// One kernel argument: a buffer (its start), or a scalar.
pub enum KArg<'a, B> {
    Buf(&'a B),
    /// A buffer from a byte offset (one array of a packed buffer).
    At(&'a B, usize),
    /// A null pointer (an optional input that is absent).
    Null,
    I32(i32),
    I64(i64),
    F32(f32),
}

impl<B> Clone for KArg<'_, B> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<B> Copy for KArg<'_, B> {}

/// Launch geometry: blocks in x/y/z, threads per block (x only), dynamic shared memory bytes.
#[derive(Clone, Copy, Debug)]
pub struct Launch {
    pub grid: (u32, u32, u32),
    pub block: u32,
    pub smem: u32,
}

impl Launch {
    pub fn new(grid: (u32, u32, u32), block: u32) -> Self {
        Self {
            grid,
            block,
            smem: 0,
        }
    }
}

/// A matrix product `C = op(A) · op(B)` in `cublasGemmEx`'s terms: column-major matrices, `op`
/// transposing where `trans_*` is set, `op(A)` `m × k`, `op(B)` `k × n`, `C` `m × n`; A and B
/// f16, C f32, accumulated in f32 (alpha 1, beta 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Gemm {
    pub trans_a: bool,
    pub trans_b: bool,
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub lda: usize,
    pub ldb: usize,
    pub ldc: usize,
}

impl Gemm {
    /// `y[t] = W · x[t]` for `t` tokens: `W` row-major `rows × cols`, `x` row-major
    /// `t × cols`, `y` row-major `t × rows` (column-major, `W` is `Aᵀ` and `y` is `C`).
    pub fn rows_by_tokens(rows: usize, cols: usize, t: usize) -> Self {
        Self {
            trans_a: true,
            trans_b: false,
            m: rows,
            n: t,
            k: cols,
            lda: cols,
            ldb: cols,
            ldc: rows,
        }
    }

    /// Whether every matrix's leading dimension holds its rows (column-major).
    fn check(&self) -> Result<()> {
        let (a_rows, b_rows) = (
            if self.trans_a { self.k } else { self.m },
            if self.trans_b { self.n } else { self.k },
        );
        if self.lda < a_rows.max(1) || self.ldb < b_rows.max(1) || self.ldc < self.m.max(1) {
            return Err(EngineError::Cuda(format!(
                "GEMM {self:?}: a leading dimension is shorter than its matrix's rows"
            )));
        }
        Ok(())
    }
}

/// The dynamic shared memory a launch may have before its kernel opts in for more
/// ([`Device::allow_shared_memory`]): 48 KiB on every NVIDIA GPU since compute capability 3.0.
pub const SMEM_WITHOUT_OPT_IN: u32 = 48 << 10;

/// The most dynamic shared memory a kernel may opt in for on a GPU of compute capability 9.0
/// (`CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN`: 227 KiB), which [`HostDevice`]
/// holds its launches to.
pub const SMEM_OPT_IN_SM_90: u32 = 227 << 10;

/// Memory and kernel launches of one device, in one stream (launches run in order).
pub trait Device {
    type Buf;
    /// Launches recorded once and replayed as one (a CUDA graph).
    type Graph;
    /// A zeroed buffer of `bytes` bytes (at least one).
    fn alloc(&self, bytes: usize) -> Result<Self::Buf>;
    /// Copies `src` into the start of `dst`.
    fn write(&self, dst: &mut Self::Buf, src: &[u8]) -> Result<()>;
    /// Copies `dst.len()` bytes of `src` from byte `offset` into `dst` (waiting for the
    /// launches before it).
    fn read_at(&self, src: &Self::Buf, offset: usize, dst: &mut [u8]) -> Result<()>;
    /// Starts recording launches instead of running them; nothing else may touch the device
    /// until [`Device::end_capture`].
    fn begin_capture(&self) -> Result<()>;
    /// The launches since [`Device::begin_capture`], as one graph. Its buffers and scalars are
    /// fixed: a replay reads whatever the buffers hold then.
    fn end_capture(&self) -> Result<Self::Graph>;
    /// Runs a captured graph's launches, in order, after the work before it.
    fn replay(&self, graph: &Self::Graph) -> Result<()>;

    /// Copies the start of `src` into `dst` (waiting for the launches before it).
    fn read(&self, src: &Self::Buf, dst: &mut [u8]) -> Result<()> {
        self.read_at(src, 0, dst)
    }
    /// Launches kernel `name` (one of [`KERNELS`]) with `args` in its parameters' order.
    fn launch(&self, name: &'static str, at: Launch, args: &[KArg<'_, Self::Buf>]) -> Result<()>;
    /// Lets kernel `name` be launched with up to `bytes` of dynamic shared memory. Without it a
    /// launch may have [`SMEM_WITHOUT_OPT_IN`] (48 KiB); past that a GPU refuses the launch
    /// unless the kernel opted in, up to the device's own limit (227 KiB on compute capability
    /// 9.0), past which this fails, naming both.
    fn allow_shared_memory(&self, name: &'static str, bytes: u32) -> Result<()>;

    fn upload(&self, src: &[u8]) -> Result<Self::Buf> {
        let mut b = self.alloc(src.len())?;
        self.write(&mut b, src)?;
        Ok(b)
    }

    /// Whether a kernel may start while the one before it finishes (programmatic dependent
    /// launch: every kernel waits in `SF_WAIT_PRIOR` before it touches memory the kernel before
    /// may write, so only the launch latency, and loads of what no kernel writes, overlap). On
    /// by default on a GPU of compute capability 9.0 or later; graphs captured before a change
    /// keep what they were captured with. A device that runs launches one after another anyway
    /// ignores it.
    fn set_overlap(&self, _on: bool) {}

    /// Whether launches overlap now ([`Device::set_overlap`]).
    fn overlap(&self) -> bool {
        false
    }

    /// Starts (or stops) timing each launch on the device, for [`Device::take_profile`], and
    /// each graph replay as a whole ([`GRAPH_REPLAY`]). A graph is not captured while it is
    /// on. A device that cannot time its launches ignores it.
    fn set_profiling(&self, _on: bool) {}

    /// The device time of the launches since profiling started, per kernel, longest first
    /// (waits for them); empty where launches are not timed.
    fn take_profile(&self) -> Result<Vec<KernelTime>> {
        Ok(Vec::new())
    }

    /// The device time of `f`'s launches in milliseconds, from before the first to after the
    /// last (it waits for them); `None`, without calling `f`, where the device does not time
    /// launches. Not while capturing.
    fn time_launches(&self, _f: &mut dyn FnMut() -> Result<()>) -> Result<Option<f64>> {
        Ok(None)
    }

    /// Whether [`Device::gemm`] runs here (cuBLAS was found).
    fn has_gemm(&self) -> bool {
        false
    }

    /// The device's memory, free now and in all, where it is known.
    fn memory(&self) -> Option<Memory> {
        None
    }

    /// `c = op(a) · op(b)` as `g` says (f16 `a` and `b`, f32 `c`), in launch order with the
    /// kernels (and captured with them).
    fn gemm(
        &self,
        g: Gemm,
        _a: KArg<'_, Self::Buf>,
        _b: KArg<'_, Self::Buf>,
        _c: KArg<'_, Self::Buf>,
    ) -> Result<()> {
        Err(EngineError::Cuda(format!(
            "GEMM {g:?}: this device has no matrix-product library"
        )))
    }
}

/// A device's memory in bytes: free now (what allocations may still take), and in all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Memory {
    pub free: usize,
    pub total: usize,
}

/// The name a GEMM goes by in profiles.
pub const GEMM: &str = "cublas_gemm_f16";

/// The name a graph's replay goes by in profiles (the device time of the whole graph).
pub const GRAPH_REPLAY: &str = "cuda_graph_replay";

/// One kernel's share of a profile: its launches and their device time.
#[derive(Clone, Debug, PartialEq)]
pub struct KernelTime {
    pub kernel: &'static str,
    pub launches: usize,
    pub ms: f64,
}

/// The bytes of a slice of plain numbers.
pub fn bytes_of<T: Copy>(v: &[T]) -> &[u8] {
    // SAFETY: any initialised memory may be viewed as bytes; the types used are plain numbers.
    unsafe { std::slice::from_raw_parts(v.as_ptr().cast(), std::mem::size_of_val(v)) }
}

/// A slice of plain numbers as mutable bytes.
pub fn bytes_of_mut<T: Copy>(v: &mut [T]) -> &mut [u8] {
    // SAFETY: as above; every byte pattern is a valid f32 / i32 / u16.
    unsafe { std::slice::from_raw_parts_mut(v.as_mut_ptr().cast(), std::mem::size_of_val(v)) }
}

/// A driver error as the engine's: [`EngineError::DeviceLost`] for those after which the
/// driver refuses everything in the context ([`leaves_context_unusable`]), so that serving
/// stops sending work to this device.
fn drv(e: cudarc::driver::DriverError) -> EngineError {
    driver_error("CUDA driver", e)
}

/// [`drv`] with what failed in front (`launching rms_norm`).
fn driver_error(what: &str, e: cudarc::driver::DriverError) -> EngineError {
    // Its Debug asks the driver for the code's text: only reached after a driver call.
    let msg = format!("{what}: {e:?}");
    if leaves_context_unusable(e.0) {
        EngineError::DeviceLost(msg)
    } else {
        EngineError::Cuda(msg)
    }
}

/// The driver's errors after which its documentation says the context "cannot be used
/// anymore" (an illegal address, a kernel that failed or trapped, an uncorrectable ECC error).
pub fn leaves_context_unusable(code: cudarc::driver::sys::CUresult) -> bool {
    use cudarc::driver::sys::CUresult as R;
    matches!(
        code,
        R::CUDA_ERROR_ILLEGAL_ADDRESS
            | R::CUDA_ERROR_LAUNCH_FAILED
            | R::CUDA_ERROR_LAUNCH_TIMEOUT
            | R::CUDA_ERROR_ASSERT
            | R::CUDA_ERROR_HARDWARE_STACK_ERROR
            | R::CUDA_ERROR_ILLEGAL_INSTRUCTION
            | R::CUDA_ERROR_MISALIGNED_ADDRESS
            | R::CUDA_ERROR_INVALID_ADDRESS_SPACE
            | R::CUDA_ERROR_INVALID_PC
            | R::CUDA_ERROR_ECC_UNCORRECTABLE
            | R::CUDA_ERROR_CONTEXT_IS_DESTROYED
    )
}

/// Whether kernel `name`, with `fixed` bytes of `__shared__` variables, may opt in for `bytes`
/// of dynamic shared memory on a device that gives a block at most `limit` in all.
fn check_opt_in(name: &str, bytes: u32, fixed: u32, limit: u32) -> Result<()> {
    if u64::from(bytes) + u64::from(fixed) > u64::from(limit) {
        let own = if fixed > 0 {
            format!(" (and {fixed} of its own)")
        } else {
            String::new()
        };
        return Err(EngineError::Cuda(format!(
            "{name} needs {bytes} bytes of dynamic shared memory{own}, more than the {limit} a \
             block may have on this GPU"
        )));
    }
    Ok(())
}

/// Lets kernel `name` (`f`, of a module loaded in `ctx`) be launched with up to `bytes` of
/// dynamic shared memory ([`Device::allow_shared_memory`]; for launches that do not go through
/// a [`CudaDevice`], as the kernel tests' own).
pub fn allow_shared_memory(
    ctx: &CudaContext,
    f: &CudaFunction,
    name: &str,
    bytes: u32,
) -> Result<()> {
    use cudarc::driver::sys::{CUdevice_attribute, CUfunction_attribute};
    ctx.bind_to_thread().map_err(drv)?;
    let limit = ctx
        .attribute(CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN)
        .map_err(drv)?;
    let fixed = f.shared_size_bytes().map_err(drv)?;
    check_opt_in(name, bytes, fixed.max(0) as u32, limit.max(0) as u32)?;
    let max = CUfunction_attribute::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES;
    // Only ever raised: another caller may have allowed more.
    if f.get_attribute(max).map_err(drv)? < bytes as i32 {
        f.set_attribute(max, bytes as i32).map_err(drv)?;
    }
    Ok(())
}

/// A GPU through cudarc: its context, one stream of its own (graphs cannot be captured on the
/// legacy default stream), the kernels compiled for it. Every launch and copy goes to that
/// stream, so cudarc's cross-stream event tracking is turned off: it would record events into
/// captured graphs.
pub struct CudaDevice {
    pub ctx: Arc<CudaContext>,
    pub stream: Arc<CudaStream>,
    module: Arc<CudaModule>,
    functions: Mutex<HashMap<&'static str, CudaFunction>>,
    /// While profiling: each launch's kernel between its start and end events.
    profile: Mutex<Option<Vec<TimedLaunch>>>,
    /// See [`Device::set_overlap`].
    overlap: AtomicBool,
    /// cuBLAS on the device's stream, where it was found.
    blas: Option<Blas>,
}

/// A cuBLAS handle bound to the device's stream, with a workspace of its own: cuBLAS then
/// allocates nothing while a graph is captured.
struct Blas {
    handle: cudarc::cublas::CudaBlas,
    _workspace: CudaSlice<u8>,
}

/// cuBLAS's workspace (its documentation recommends 32 MiB on Hopper).
const BLAS_WORKSPACE: usize = 32 << 20;

impl Blas {
    /// cuBLAS, when the library can be loaded (never a panic where it is missing).
    fn open(stream: &Arc<CudaStream>) -> Result<Option<Self>> {
        // SAFETY: only tries to open the library.
        if !unsafe { cudarc::cublas::sys::is_culib_present() } {
            return Ok(None);
        }
        let blas_err = |what: &str, e: cudarc::cublas::result::CublasError| {
            EngineError::Cuda(format!("cuBLAS {what}: {e:?}"))
        };
        let handle =
            cudarc::cublas::CudaBlas::new(stream.clone()).map_err(|e| blas_err("handle", e))?;
        let workspace = stream.alloc_zeros::<u8>(BLAS_WORKSPACE).map_err(drv)?;
        let ptr = workspace.device_ptr(stream).0;
        // SAFETY: the workspace is device memory of that size, kept alive with the handle.
        unsafe {
            cudarc::cublas::sys::cublasSetWorkspace_v2(
                *handle.handle(),
                ptr as *mut c_void,
                BLAS_WORKSPACE,
            )
        }
        .result()
        .map_err(|e| blas_err("workspace", e))?;
        Ok(Some(Self {
            handle,
            _workspace: workspace,
        }))
    }
}

impl CudaDevice {
    /// Device `ordinal`, after the driver probe (no driver: the clear error, never a panic).
    pub fn open(ordinal: usize) -> Result<Self> {
        let ctx = open_device(ordinal)?;
        // SAFETY: before any buffer exists; this device orders all its work on one stream.
        unsafe { ctx.disable_event_tracking() };
        let module = load_kernels(&ctx)?;
        let (major, _) = ctx.compute_capability().map_err(drv)?;
        let stream = ctx.new_stream().map_err(drv)?;
        // Every function looked up now: nothing but launches happens while a graph is captured.
        let functions = KERNELS
            .iter()
            .map(|&k| Ok((k, module.load_function(k).map_err(drv)?)))
            .collect::<Result<HashMap<_, _>>>()?;
        // Without cuBLAS every step takes the matrix-vector kernels: slower, still correct.
        let blas = match Blas::open(&stream) {
            Ok(Some(b)) => Some(b),
            Ok(None) => {
                tracing::warn!("cuBLAS (libcublas.so.13) not found: prefill and large batches use the matrix-vector kernels");
                None
            }
            Err(e) => {
                tracing::warn!(error = %e, "cuBLAS did not start: prefill and large batches use the matrix-vector kernels");
                None
            }
        };
        Ok(Self {
            ctx,
            stream,
            module,
            functions: Mutex::new(functions),
            profile: Mutex::new(None),
            overlap: AtomicBool::new(major >= 9),
            blas,
        })
    }

    /// A buffer argument's device address.
    fn address(&self, arg: &KArg<'_, CudaSlice<u8>>) -> Option<u64> {
        let ptr = |buf: &CudaSlice<u8>, offset: usize| -> u64 {
            let (p, _record) = buf.device_ptr(&self.stream);
            p + offset as u64
        };
        match arg {
            KArg::Buf(buf) => Some(ptr(buf, 0)),
            KArg::At(buf, offset) => Some(ptr(buf, *offset)),
            KArg::Null => Some(0),
            _ => None,
        }
    }

    /// Runs `f` between two events when launches are profiled, recording its time as `name`'s.
    fn timed(&self, name: &'static str, f: impl FnOnce() -> Result<()>) -> Result<()> {
        let mut profile = self.lock_profile();
        let start = profile.as_ref().map(|_| self.event()).transpose()?;
        f()?;
        if let (Some(list), Some(start)) = (profile.as_mut(), start) {
            list.push((name, start, self.event()?));
        }
        Ok(())
    }

    /// A timing event recorded on the stream now.
    fn event(&self) -> Result<CudaEvent> {
        self.stream
            .record_event(Some(CUevent_flags::CU_EVENT_DEFAULT))
            .map_err(drv)
    }

    fn function(&self, name: &'static str) -> Result<CudaFunction> {
        let mut f = self.functions.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(k) = f.get(name) {
            return Ok(k.clone());
        }
        let k = self.module.load_function(name).map_err(drv)?;
        f.insert(name, k.clone());
        Ok(k)
    }
}

/// A profiled launch: its kernel, between its start and end events.
type TimedLaunch = (&'static str, CudaEvent, CudaEvent);

/// A captured CUDA graph. cudarc's graph is not `Send` (graph objects must not be used from
/// two threads at once); the model that owns it uses it only through `&mut self`.
pub struct CudaGraphBox(CudaGraph);

// SAFETY: see above: one owner, used by one thread at a time, never shared.
unsafe impl Send for CudaGraphBox {}

impl Device for CudaDevice {
    type Buf = CudaSlice<u8>;
    type Graph = CudaGraphBox;

    fn alloc(&self, bytes: usize) -> Result<Self::Buf> {
        self.stream.alloc_zeros(bytes.max(1)).map_err(drv)
    }

    fn write(&self, dst: &mut Self::Buf, src: &[u8]) -> Result<()> {
        if src.is_empty() {
            return Ok(());
        }
        let mut view = dst.slice_mut(..src.len());
        self.stream.memcpy_htod(src, &mut view).map_err(drv)
    }

    fn read_at(&self, src: &Self::Buf, offset: usize, dst: &mut [u8]) -> Result<()> {
        if dst.is_empty() {
            return Ok(());
        }
        let view = src.slice(offset..offset + dst.len());
        self.stream.memcpy_dtoh(&view, dst).map_err(drv)?;
        self.stream.synchronize().map_err(drv)
    }

    fn begin_capture(&self) -> Result<()> {
        if self.lock_profile().is_some() {
            return Err(EngineError::Cuda(
                "a graph cannot be captured while launches are profiled".into(),
            ));
        }
        self.stream
            .begin_capture(CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_THREAD_LOCAL)
            .map_err(drv)
    }

    fn end_capture(&self) -> Result<Self::Graph> {
        let graph = self
            .stream
            .end_capture(CUgraphInstantiate_flags(0))
            .map_err(drv)?
            .ok_or_else(|| EngineError::Cuda("the captured graph is empty".into()))?;
        graph.upload().map_err(drv)?;
        Ok(CudaGraphBox(graph))
    }

    fn replay(&self, graph: &Self::Graph) -> Result<()> {
        self.timed(GRAPH_REPLAY, || graph.0.launch().map_err(drv))
    }

    fn launch(&self, name: &'static str, at: Launch, args: &[KArg<'_, Self::Buf>]) -> Result<()> {
        let f = self.function(name)?;
        // Each parameter's value in an 8-byte slot (a 4-byte one in its low bytes: the
        // driver reads the parameter's size from the slot's start); buffers as raw device
        // addresses (event tracking is off: nothing to record).
        let mut values: Vec<u64> = args
            .iter()
            .map(|a| match a {
                KArg::I32(v) => *v as u32 as u64,
                KArg::I64(v) => *v as u64,
                KArg::F32(v) => v.to_bits() as u64,
                buf => self.address(buf).expect("a buffer argument"),
            })
            .collect();
        let mut params: Vec<*mut c_void> =
            values.iter_mut().map(|v| (v as *mut u64).cast()).collect();
        self.timed(name, || {
            let overlap = self.overlap.load(Ordering::Relaxed);
            // SAFETY: callers pass the kernel's parameters in order with buffers sized for the
            // launch (the host forward pass, checked against the CPU engine through
            // HostDevice); `params` points into `values`, alive for the call.
            let mut r = unsafe { self.launch_ex(&f, at, &mut params, overlap) };
            if r.is_err() && overlap {
                // SAFETY: as above.
                let plain = unsafe { self.launch_ex(&f, at, &mut params, false) };
                if plain.is_ok() {
                    // A driver that refuses programmatic dependent launch: plain launches from
                    // now on.
                    tracing::warn!(kernel = name, error = ?r, "overlapped launches refused; launching one after another");
                    self.overlap.store(false, Ordering::Relaxed);
                }
                r = plain;
            }
            r.map_err(|e| driver_error(&format!("launching {name}"), e))
        })
    }

    fn allow_shared_memory(&self, name: &'static str, bytes: u32) -> Result<()> {
        allow_shared_memory(&self.ctx, &self.function(name)?, name, bytes)
    }

    fn has_gemm(&self) -> bool {
        self.blas.is_some()
    }

    fn memory(&self) -> Option<Memory> {
        let (free, total) = self.ctx.mem_get_info().ok()?;
        Some(Memory { free, total })
    }

    fn gemm(
        &self,
        g: Gemm,
        a: KArg<'_, Self::Buf>,
        b: KArg<'_, Self::Buf>,
        c: KArg<'_, Self::Buf>,
    ) -> Result<()> {
        use cudarc::cublas::sys;
        let blas = self.blas.as_ref().ok_or_else(|| {
            EngineError::Cuda("cuBLAS (libcublas) was not found on this machine".into())
        })?;
        g.check()?;
        let int = |v: usize| {
            i32::try_from(v)
                .map_err(|_| EngineError::Cuda(format!("GEMM {g:?}: a dimension past i32")))
        };
        let (m, n, k) = (int(g.m)?, int(g.n)?, int(g.k)?);
        let (lda, ldb, ldc) = (int(g.lda)?, int(g.ldb)?, int(g.ldc)?);
        let addr = |x: &KArg<'_, Self::Buf>| {
            self.address(x)
                .filter(|&p| p != 0)
                .map(|p| p as *mut c_void)
                .ok_or_else(|| EngineError::Cuda("GEMM: an operand is not a buffer".into()))
        };
        let (a, b, c) = (addr(&a)?, addr(&b)?, addr(&c)?);
        let op = |t: bool| {
            if t {
                sys::cublasOperation_t::CUBLAS_OP_T
            } else {
                sys::cublasOperation_t::CUBLAS_OP_N
            }
        };
        let (alpha, beta) = (1f32, 0f32);
        self.timed(GEMM, || {
            self.ctx.bind_to_thread().map_err(drv)?;
            // SAFETY: the operands are device buffers of the device's context that the caller
            // sized for `g` (checked on the CPU through HostDevice's emulation of this call);
            // alpha and beta are host scalars read during the call (cuBLAS's default pointer
            // mode); the handle's stream is the device's.
            unsafe {
                sys::cublasGemmEx(
                    *blas.handle.handle(),
                    op(g.trans_a),
                    op(g.trans_b),
                    m,
                    n,
                    k,
                    (&alpha as *const f32).cast(),
                    a,
                    sys::cudaDataType::CUDA_R_16F,
                    lda,
                    b,
                    sys::cudaDataType::CUDA_R_16F,
                    ldb,
                    (&beta as *const f32).cast(),
                    c,
                    sys::cudaDataType::CUDA_R_32F,
                    ldc,
                    sys::cublasComputeType_t::CUBLAS_COMPUTE_32F,
                    sys::cublasGemmAlgo_t::CUBLAS_GEMM_DEFAULT,
                )
            }
            .result()
            .map_err(|e| EngineError::Cuda(format!("cuBLAS GEMM {g:?}: {e:?}")))
        })
    }

    fn set_overlap(&self, on: bool) {
        self.overlap.store(on, Ordering::Relaxed);
    }

    fn overlap(&self) -> bool {
        self.overlap.load(Ordering::Relaxed)
    }

    fn set_profiling(&self, on: bool) {
        let mut p = self.lock_profile();
        if on != p.is_some() {
            *p = on.then(Vec::new);
        }
    }

    fn take_profile(&self) -> Result<Vec<KernelTime>> {
        let list = match self.lock_profile().as_mut() {
            Some(list) => std::mem::take(list),
            None => return Ok(Vec::new()),
        };
        self.stream.synchronize().map_err(drv)?;
        let mut per: Vec<KernelTime> = Vec::new();
        for (kernel, start, end) in list {
            let ms = start.elapsed_ms(&end).map_err(drv)? as f64;
            match per.iter_mut().find(|k| k.kernel == kernel) {
                Some(k) => {
                    k.launches += 1;
                    k.ms += ms;
                }
                None => per.push(KernelTime {
                    kernel,
                    launches: 1,
                    ms,
                }),
            }
        }
        per.sort_by(|a, b| b.ms.total_cmp(&a.ms));
        Ok(per)
    }

    fn time_launches(&self, f: &mut dyn FnMut() -> Result<()>) -> Result<Option<f64>> {
        let start = self.event()?;
        f()?;
        let end = self.event()?;
        end.synchronize().map_err(drv)?;
        Ok(Some(start.elapsed_ms(&end).map_err(drv)? as f64))
    }
}

impl CudaDevice {
    /// `cuLaunchKernelEx` on the device's stream, with programmatic stream serialization when
    /// `overlap`.
    ///
    /// # Safety
    /// `params` holds a pointer to each of the kernel's parameters, in order.
    unsafe fn launch_ex(
        &self,
        f: &CudaFunction,
        at: Launch,
        params: &mut [*mut c_void],
        overlap: bool,
    ) -> std::result::Result<(), cudarc::driver::DriverError> {
        use cudarc::driver::sys;
        self.ctx.bind_to_thread()?;
        // SAFETY: a plain C struct; zero is a valid pattern for it.
        let mut attr: sys::CUlaunchAttribute = unsafe { std::mem::zeroed() };
        attr.id = sys::CUlaunchAttributeID::CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION;
        attr.value.programmaticStreamSerializationAllowed = 1;
        let config = sys::CUlaunchConfig {
            gridDimX: at.grid.0,
            gridDimY: at.grid.1,
            gridDimZ: at.grid.2,
            blockDimX: at.block,
            blockDimY: 1,
            blockDimZ: 1,
            sharedMemBytes: at.smem,
            hStream: self.stream.cu_stream(),
            attrs: &mut attr,
            numAttrs: overlap as u32,
        };
        // SAFETY: the config and attribute outlive the call; the caller vouches for `params`.
        unsafe {
            sys::cuLaunchKernelEx(
                &config,
                f.cu_function(),
                params.as_mut_ptr(),
                std::ptr::null_mut(),
            )
        }
        .result()
    }

    fn lock_profile(&self) -> std::sync::MutexGuard<'_, Option<Vec<TimedLaunch>>> {
        self.profile.lock().unwrap_or_else(|e| e.into_inner())
    }
}

type LaunchFn =
    unsafe extern "C" fn(*const c_char, u32, u32, u32, u32, u32, u32, u32, *mut *mut c_void) -> i32;
/// `sf_cpu_begin`: a launch started early (null for an unknown kernel).
type BeginFn = unsafe extern "C" fn(
    *const c_char,
    u32,
    u32,
    u32,
    u32,
    u32,
    u32,
    u32,
    *mut *mut c_void,
) -> *mut c_void;
/// `sf_cpu_finish`: the rest of a launch started early.
type FinishFn = unsafe extern "C" fn(*mut c_void);
type OrderFn = unsafe extern "C" fn(i32, i32);

/// How [`HostDevice`] runs a launch's blocks and threads ([`HostDevice::with_schedule`]).
/// Every block starts with its shared memory filled with 0xff bytes (a GPU leaves it
/// undefined). A read that no barrier orders after the write it needs, or before the write that
/// replaces what it needs (another warp's, another block's), reads the wrong value under one
/// of the schedules, as it may on a GPU (where it depends on timing): tests that run each fail.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Schedule {
    /// Blocks first to last; in each, every thread runs to its next barrier (a shuffle or
    /// `__syncthreads`), first to last, before any goes past one: the warps stay in step, as
    /// they mostly do on a GPU.
    #[default]
    InStep,
    /// Blocks, and the warps of each, first to last; one warp at a time runs as far as it can
    /// before the block's next `__syncthreads`, as far ahead of the others as a GPU may let it.
    InTurn,
    /// As `InTurn`, with blocks, warps and each warp's threads last to first.
    InTurnLastFirst,
}

/// A launch started early ([`HostDevice::with_early_starts`]) and not finished yet: the shim's
/// handle, and the argument values its `void**` points into (boxed: they do not move).
struct Started {
    handle: *mut c_void,
    _values: Box<[HostArg]>,
    _pointers: Box<[*mut c_void]>,
}

// SAFETY: the handle and the pointers are used only under `HOST_LOCK`, by one thread at a
// time; the buffers they point to outlive the launch (see `HostDevice::settle`).
unsafe impl Send for Started {}

/// The kernels compiled as C++ and run on this CPU, one launch at a time (the shim's fibers
/// live in globals), or two at once where launches start early
/// ([`HostDevice::with_early_starts`]). For tests: it needs `g++` and is slow (every CUDA
/// thread is a fiber).
pub struct HostDevice {
    _lib: libloading::Library,
    launch: LaunchFn,
    /// While capturing: the launches recorded so far.
    capture: Mutex<Option<Vec<HostLaunch>>>,
    /// Whether [`Device::gemm`] runs (an emulation of `cublasGemmEx`); off unless asked for.
    gemm: bool,
    /// The memory it says it has, and refuses to allocate past (unlimited and unknown unless
    /// set, for tests).
    memory: Option<usize>,
    /// Bytes of the buffers alive now.
    used: Arc<AtomicUsize>,
    /// Whether [`Device::time_launches`] times launches (by the clock: they run on this
    /// thread); off unless asked for.
    timing: bool,
    begin: BeginFn,
    finish: FinishFn,
    /// Whether launches start early ([`HostDevice::with_early_starts`]).
    early: bool,
    /// The launch started early and not finished yet.
    started: Mutex<Option<Started>>,
    /// Sets how the shim runs blocks and threads (`sf_cpu_order`).
    order: OrderFn,
    /// How this device's launches run ([`HostDevice::with_schedule`]).
    schedule: Schedule,
    /// Launches run, replayed ones included ([`HostDevice::launches_run`]).
    runs: AtomicUsize,
    /// The dynamic shared memory each kernel opted in for ([`Device::allow_shared_memory`]).
    smem_allowed: Mutex<HashMap<&'static str, u32>>,
    /// Each kernel's launch bounds (`SF_BOUNDS`) and parameters, from the source.
    decls: HashMap<&'static str, KernelDecl>,
    /// Whether buffers start right after their inaccessible page rather than end right before
    /// theirs ([`HostDevice::with_guard_before`]).
    guard_before: bool,
}

/// What the source declares of a kernel: its launch bounds, where given, and its parameters.
struct KernelDecl {
    bounds: Option<u32>,
    params: Vec<super::Param>,
}

impl KernelDecl {
    /// Refuses a launch that a GPU would refuse, or that would read its arguments wrong, or
    /// break the promise of a `__restrict__` parameter: more threads than the launch bounds;
    /// more dynamic shared memory than the kernel may have (`smem_allowed`: 48 KiB unless it
    /// opted in, [`Device::allow_shared_memory`]); an argument missing, extra, or of another
    /// kind or width than its parameter; one address for two pointer parameters, one of them
    /// `__restrict__` and one written (a GPU may read one through its read-only cache and miss
    /// what the other writes).
    fn check(
        &self,
        name: &str,
        at: Launch,
        smem_allowed: u32,
        args: &[KArg<'_, HostBuf>],
    ) -> Result<()> {
        use super::ParamKind as P;
        let refuse = |why: String| Err(EngineError::Cuda(format!("launching {name}: {why}")));
        if let Some(max) = self.bounds.filter(|&max| at.block > max) {
            return refuse(format!(
                "blocks of {} threads, more than its launch bounds' {max}: a GPU refuses it",
                at.block
            ));
        }
        if at.smem > smem_allowed {
            return refuse(format!(
                "{} bytes of dynamic shared memory, more than the {smem_allowed} it may have \
                 (48 KiB unless it opts in through Device::allow_shared_memory): a GPU refuses it",
                at.smem
            ));
        }
        if args.len() != self.params.len() {
            return refuse(format!(
                "{} arguments for its {} parameters",
                args.len(),
                self.params.len()
            ));
        }
        for (p, a) in self.params.iter().zip(args) {
            let fits = matches!(
                (p.kind, a),
                (P::Pointer { .. }, KArg::Buf(_) | KArg::At(..) | KArg::Null)
                    | (P::I32, KArg::I32(_))
                    | (P::I64, KArg::I64(_))
                    | (P::F32, KArg::F32(_))
            );
            if !fits {
                return refuse(format!(
                    "parameter {} is {:?}, given another kind",
                    p.name, p.kind
                ));
            }
        }
        let address = |a: &KArg<'_, HostBuf>| match a {
            KArg::Buf(b) => Some(b.data as usize),
            KArg::At(b, offset) => Some(b.data as usize + offset),
            _ => None,
        };
        for (i, (p, a)) in self.params.iter().zip(args).enumerate() {
            for (q, b) in self.params.iter().zip(args).skip(i + 1) {
                let (
                    P::Pointer {
                        restrict: rp,
                        written: wp,
                    },
                    P::Pointer {
                        restrict: rq,
                        written: wq,
                    },
                ) = (p.kind, q.kind)
                else {
                    continue;
                };
                if (rp || rq) && (wp || wq) && address(a).is_some() && address(a) == address(b) {
                    return refuse(format!(
                        "{} and {} are the same memory, which __restrict__ says they never \
                         are: a GPU may read one through its read-only cache and miss what \
                         the other writes",
                        p.name, q.name
                    ));
                }
            }
        }
        Ok(())
    }
}

/// One launch's argument, as its value.
#[derive(Clone, Copy)]
enum HostArg {
    P(*mut u8),
    I(i32),
    L(i64),
    F(f32),
}

/// A recorded launch: kernel, geometry and argument values (buffers as their addresses, as a
/// CUDA graph holds them).
pub struct HostLaunch {
    name: &'static str,
    at: Launch,
    args: Vec<HostArg>,
}

// SAFETY: the addresses are of `HostBuf`s, which the graph's owner keeps alive and touches only
// through the device's launches, one at a time (`HOST_LOCK`).
unsafe impl Send for HostLaunch {}

/// The launches of a capture, replayed in order.
pub struct HostGraph(Vec<HostLaunch>);

/// A host buffer the kernels may write through: zeroed, 16-byte aligned (as device memory is),
/// counted against its device's memory while it lives. Its pages are mapped for it alone,
/// between two pages with no access, and its end (its size rounded up to 16 bytes) is where the
/// page after starts: a kernel that reads or writes past a buffer's end faults here (the shim
/// names the kernel), where on a GPU it would stop the context with an illegal address or read
/// another buffer. On a device made [`HostDevice::with_guard_before`], its start is where the
/// page before ends instead: then a kernel reaching before the start faults.
pub struct HostBuf {
    map: *mut c_void,
    map_len: usize,
    data: *mut u8,
    len: usize,
    used: Arc<AtomicUsize>,
}

// SAFETY: the mapping belongs to the buffer alone; kernels touch it only through its device,
// one launch at a time (`HOST_LOCK`).
unsafe impl Send for HostBuf {}

impl HostBuf {
    fn new(bytes: usize, used: Arc<AtomicUsize>, guard_before: bool) -> Result<Self> {
        let body = bytes.div_ceil(16).max(1) * 16;
        let (map, map_len, data) = guarded_pages(body, guard_before)?;
        Ok(Self {
            map,
            map_len,
            data,
            len: bytes,
            used,
        })
    }

    /// Where the buffer starts: what a kernel's pointer argument to it holds.
    fn as_mut_ptr(&self) -> *mut u8 {
        self.data
    }
}

impl Drop for HostBuf {
    fn drop(&mut self) {
        // SAFETY: the pages `guarded_pages` gave, freed once; no launch uses them any more (the
        // device finishes launches before it frees).
        unsafe { free_guarded_pages(self.map, self.map_len) };
        self.used.fetch_sub(self.len.max(1), Ordering::Relaxed);
    }
}

/// Zeroed memory for `body` bytes (a multiple of 16) between two pages without access, ending
/// where the page after starts or (`before`) starting where the page before ends: the mapping,
/// its length, and where the bytes start.
#[cfg(unix)]
fn guarded_pages(body: usize, before: bool) -> Result<(*mut c_void, usize, *mut u8)> {
    // SAFETY: sysconf reads a constant of the system.
    let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096);
    let pages = body.div_ceil(page) * page;
    let map_len = page + pages + page;
    // SAFETY: a new private anonymous mapping (zeroed), touching no memory of ours.
    let map = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            map_len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if map == libc::MAP_FAILED {
        return Err(std::io::Error::last_os_error().into());
    }
    // SAFETY: `map` holds `map_len` bytes; its first and last pages are made inaccessible.
    unsafe {
        let start = map.cast::<u8>();
        if libc::mprotect(map, page, libc::PROT_NONE) != 0
            || libc::mprotect(start.add(page + pages).cast(), page, libc::PROT_NONE) != 0
        {
            let e = std::io::Error::last_os_error();
            libc::munmap(map, map_len);
            return Err(e.into());
        }
        let at = if before { page } else { page + pages - body };
        Ok((map, map_len, start.add(at)))
    }
}

/// # Safety
/// `map` and `map_len` must be what [`guarded_pages`] gave, not freed before.
#[cfg(unix)]
unsafe fn free_guarded_pages(map: *mut c_void, map_len: usize) {
    // SAFETY: as the caller promises.
    unsafe { libc::munmap(map, map_len) };
}

/// Where pages cannot be mapped this way: zeroed memory, with no page before or after it.
#[cfg(not(unix))]
fn guarded_pages(body: usize, _before: bool) -> Result<(*mut c_void, usize, *mut u8)> {
    let layout = std::alloc::Layout::from_size_align(body, 16)
        .map_err(|e| EngineError::Cuda(e.to_string()))?;
    // SAFETY: the layout has a non-zero size.
    let p = unsafe { std::alloc::alloc_zeroed(layout) };
    if p.is_null() {
        return Err(EngineError::Cuda(format!(
            "out of host memory for {body} bytes"
        )));
    }
    Ok((p.cast(), body, p))
}

/// # Safety
/// As the Unix version's.
#[cfg(not(unix))]
unsafe fn free_guarded_pages(map: *mut c_void, map_len: usize) {
    // SAFETY: allocated in `guarded_pages` with this layout.
    unsafe {
        std::alloc::dealloc(
            map.cast(),
            std::alloc::Layout::from_size_align_unchecked(map_len, 16),
        )
    };
}

/// The C++ that `HostDevice` compiles: the shim, the kernels, and `sf_cpu_launch`, which finds
/// a kernel by name and calls it with `cuLaunchKernel`-style `void**` arguments.
pub fn host_source() -> String {
    let mut s = super::cpu_source();
    s.push_str(
        r#"
#include <cstring>
#include <type_traits>
#include <utility>
template <class... A, std::size_t... I>
static void sf_call(void (*f)(A...), void** args, std::index_sequence<I...>) {
    f(*static_cast<std::remove_cv_t<std::remove_reference_t<A>>*>(args[I])...);
}
template <class... A>
static std::function<void()> sf_bind(void (*f)(A...), void** args) {
    return [f, args] { sf_call(f, args, std::index_sequence_for<A...>{}); };
}
"#,
    );
    s.push_str(HOST_GEMM_SOURCE);
    s.push_str(
        r#"
extern "C" int sf_cpu_launch(const char* name, unsigned gx, unsigned gy, unsigned gz, unsigned bx,
                             unsigned by, unsigned bz, unsigned smem, void** args) {
"#,
    );
    let grid = "dim3(gx, gy, gz), dim3(bx, by, bz), smem";
    s.push_str(&dispatch(
        &format!("{{ sfcpu::launch(sf_bind(&KERNEL, args), \"KERNEL\", {grid}); return 0; }}"),
        "{ sf_bind(&sf_gemm_f16, args)(); return 0; }",
    ));
    s.push_str("    return -1;\n}\n");
    // Launches started early (`HostDevice::with_early_starts`): `sf_cpu_begin` runs the first
    // block up to its wait and returns a handle `sf_cpu_finish` runs the rest with (the GEMM,
    // which does not wait, runs whole then).
    s.push_str(
        r#"
struct SfStarted {
    sfcpu::Grid* grid;
    std::function<void()> call;
};
extern "C" void* sf_cpu_begin(const char* name, unsigned gx, unsigned gy, unsigned gz, unsigned bx,
                              unsigned by, unsigned bz, unsigned smem, void** args) {
"#,
    );
    s.push_str(&dispatch(
        &format!(
            "return new SfStarted{{sfcpu::begin(sf_bind(&KERNEL, args), \"KERNEL\", {grid}), {{}}}};"
        ),
        "return new SfStarted{nullptr, sf_bind(&sf_gemm_f16, args)};",
    ));
    s.push_str(
        r#"    return nullptr;
}
extern "C" void sf_cpu_order(int in_turn, int reversed) {
    sfcpu::in_turn = in_turn != 0;
    sfcpu::reversed = reversed != 0;
}
extern "C" void sf_cpu_finish(void* handle) {
    SfStarted* s = static_cast<SfStarted*>(handle);
    if (s->grid) sfcpu::finish(s->grid); else s->call();
    delete s;
}
"#,
    );
    s
}

/// C++ lines that run `kernel` (a statement, `KERNEL` standing for the kernel) for the kernel
/// that `name` names, and `gemm` for the GEMM.
fn dispatch(kernel: &str, gemm: &str) -> String {
    let mut s: String = KERNELS
        .iter()
        .map(|k| {
            format!(
                "    if (!std::strcmp(name, \"{k}\")) {}\n",
                kernel.replace("KERNEL", k)
            )
        })
        .collect();
    s.push_str(&format!(
        "    if (!std::strcmp(name, \"{HOST_GEMM}\")) {gemm}\n"
    ));
    s
}

/// The launch name of `HostDevice`'s GEMM (a plain C++ function, captured and replayed as the
/// kernels are).
const HOST_GEMM: &str = "sf_gemm_f16";

/// `cublasGemmEx` as [`Gemm`] describes it, on the CPU: column-major, f16 operands, f32 sums
/// in order of `k`.
const HOST_GEMM_SOURCE: &str = r#"
static void sf_gemm_f16(const uint16_t* a, const uint16_t* b, float* c, int ta, int tb, int m,
                        int n, int k, int lda, int ldb, int ldc) {
    for (long long j = 0; j < n; j++)
        for (long long i = 0; i < m; i++) {
            float s = 0.0f;
            for (long long l = 0; l < k; l++) {
                const float av = sf_h2f(ta ? a[l + i * lda] : a[i + l * lda]);
                const float bv = sf_h2f(tb ? b[j + l * ldb] : b[l + j * ldb]);
                s += av * bv;
            }
            c[i + j * ldc] = s;
        }
}
"#;

static HOST_LOCK: Mutex<()> = Mutex::new(());

impl HostDevice {
    /// Compiles the kernels with `g++` into `dir` (once per source version) and loads them.
    pub fn build(dir: &Path) -> Result<Self> {
        use std::hash::{Hash, Hasher};
        let src = host_source();
        let mut h = std::collections::hash_map::DefaultHasher::new();
        src.hash(&mut h);
        let stem = format!("kernels-{:016x}", h.finish());
        let so = dir.join(format!("{stem}.so"));
        let _g = HOST_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        if !so.exists() {
            std::fs::create_dir_all(dir)?;
            let cpp = dir.join(format!("{stem}.cpp"));
            std::fs::write(&cpp, &src)?;
            let tmp = dir.join(format!("{stem}.{}.tmp", std::process::id()));
            let out = std::process::Command::new("g++")
                .args([
                    "-std=c++20",
                    "-O2",
                    // The shim's fibers switch stacks with longjmp, which the fortified
                    // variant refuses.
                    "-U_FORTIFY_SOURCE",
                    // A vector loaded or stored at an address its alignment does not divide
                    // traps (the shim names the kernel), as a GPU faults on it.
                    "-fsanitize=alignment",
                    "-fsanitize-undefined-trap-on-error",
                    "-fPIC",
                    "-shared",
                    "-Wall",
                    "-Wno-pragma-once-outside-header",
                    "-Wno-unused-function",
                    "-o",
                ])
                .arg(&tmp)
                .arg(&cpp)
                .output()
                .map_err(|e| EngineError::Cuda(format!("running g++: {e}")))?;
            if !out.status.success() {
                return Err(EngineError::Cuda(format!(
                    "the kernels do not compile as C++:\n{}",
                    String::from_utf8_lossy(&out.stderr)
                )));
            }
            std::fs::rename(&tmp, &so)?;
        }
        // SAFETY: the library was built above from our source; the symbol has this type.
        unsafe {
            let lib = libloading::Library::new(&so)
                .map_err(|e| EngineError::Cuda(format!("loading {}: {e}", so.display())))?;
            let launch = *lib
                .get::<LaunchFn>(b"sf_cpu_launch\0")
                .map_err(|e| EngineError::Cuda(e.to_string()))?;
            let begin = *lib
                .get::<BeginFn>(b"sf_cpu_begin\0")
                .map_err(|e| EngineError::Cuda(e.to_string()))?;
            let finish = *lib
                .get::<FinishFn>(b"sf_cpu_finish\0")
                .map_err(|e| EngineError::Cuda(e.to_string()))?;
            let order = *lib
                .get::<OrderFn>(b"sf_cpu_order\0")
                .map_err(|e| EngineError::Cuda(e.to_string()))?;
            Ok(Self {
                _lib: lib,
                launch,
                capture: Mutex::new(None),
                gemm: false,
                memory: None,
                used: Arc::new(AtomicUsize::new(0)),
                timing: false,
                begin,
                finish,
                early: false,
                started: Mutex::new(None),
                runs: AtomicUsize::new(0),
                order,
                schedule: Schedule::InStep,
                smem_allowed: Mutex::new(HashMap::new()),
                decls: super::definitions(&super::source())
                    .into_iter()
                    .filter_map(|d| {
                        let name = KERNELS.iter().find(|k| **k == d.name)?;
                        Some((
                            *name,
                            KernelDecl {
                                bounds: d.bounds,
                                params: d.params,
                            },
                        ))
                    })
                    .collect(),
                guard_before: false,
            })
        }
    }

    /// The same device with [`Device::gemm`] emulated (what a GPU with cuBLAS does, for tests
    /// of the GEMM path on machines without one).
    pub fn with_gemm(mut self) -> Self {
        self.gemm = true;
        self
    }

    /// The same device with `bytes` of memory: it says so (what decides defaults on a GPU),
    /// and an allocation past it fails as a GPU's would.
    pub fn with_memory(mut self, bytes: usize) -> Self {
        self.memory = Some(bytes);
        self
    }

    /// The same device timing its launches by the clock ([`Device::time_launches`]), so that
    /// what a GPU times at start runs here too.
    pub fn with_timing(mut self) -> Self {
        self.timing = true;
        self
    }

    /// The same device starting each launch as early as programmatic dependent launch lets a
    /// GPU start it: the kernel's first block runs up to its `SF_WAIT_PRIOR` before the launch
    /// before it runs, the rest after. A kernel that reads what the launch before it writes
    /// before it waits then computes on what was there before, as it may on a GPU (where it
    /// would depend on timing): tests on this device fail instead. Launches still run on the
    /// calling thread; each is finished when the next one starts or the host touches memory.
    pub fn with_early_starts(mut self) -> Self {
        self.early = true;
        self
    }

    /// The same device with each buffer starting where an inaccessible page ends, so that a
    /// kernel reading or writing before a buffer's start faults (by default a buffer ends where
    /// one starts, and an access past its end faults).
    pub fn with_guard_before(mut self) -> Self {
        self.guard_before = true;
        self
    }

    /// The same device running its launches as `schedule` says (default [`Schedule::InStep`]).
    pub fn with_schedule(mut self, schedule: Schedule) -> Self {
        self.schedule = schedule;
        self
    }

    /// Sets the shim's schedule to this device's; under `HOST_LOCK`, before each call that runs
    /// blocks.
    fn apply_schedule(&self) {
        let (in_turn, reversed) = match self.schedule {
            Schedule::InStep => (0, 0),
            Schedule::InTurn => (1, 0),
            Schedule::InTurnLastFirst => (1, 1),
        };
        // SAFETY: plain stores into the library's globals, under the lock.
        unsafe { (self.order)(in_turn, reversed) }
    }

    /// How many launches (kernels and GEMMs) have run, those of replayed graphs included.
    pub fn launches_run(&self) -> usize {
        self.runs.load(Ordering::Relaxed)
    }

    /// Finishes the launch started early, if any: before the host reads or writes memory,
    /// allocates, or stops timing, and when the device is dropped (a buffer a launch uses is
    /// never freed before one of those).
    fn settle(&self) {
        let started = self
            .started
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(s) = started {
            let _g = HOST_LOCK.lock().unwrap_or_else(|e| e.into_inner());
            self.apply_schedule();
            // SAFETY: the handle came from `sf_cpu_begin` and is finished once; its arguments
            // are alive in `s`.
            unsafe { (self.finish)(s.handle) };
        }
    }

    /// Bytes of this device's buffers alive now.
    pub fn used_bytes(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// Launches with raw host pointers.
    ///
    /// # Safety
    /// Every pointer in `args` must point to a live value of the kernel parameter's type, and
    /// pointer parameters to buffers sized for the launch.
    unsafe fn launch_raw(&self, name: &str, at: Launch, args: &mut [*mut c_void]) -> Result<()> {
        let _g = HOST_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        self.apply_schedule();
        let c = CString::new(name).map_err(|_| EngineError::Cuda("kernel name".into()))?;
        let (g, b) = (at.grid, at.block);
        let rc = (self.launch)(
            c.as_ptr(),
            g.0,
            g.1,
            g.2,
            b,
            1,
            1,
            at.smem,
            args.as_mut_ptr(),
        );
        if rc != 0 {
            return Err(EngineError::Cuda(format!("unknown kernel {name}")));
        }
        Ok(())
    }
}

/// A `cuLaunchKernel`-style `void**` over argument values: a pointer to each.
fn arg_pointers(values: &mut [HostArg]) -> Vec<*mut c_void> {
    values
        .iter_mut()
        .map(|v| match v {
            HostArg::P(p) => (p as *mut *mut u8).cast(),
            HostArg::I(x) => (x as *mut i32).cast(),
            HostArg::L(x) => (x as *mut i64).cast(),
            HostArg::F(x) => (x as *mut f32).cast(),
        })
        .collect()
}

impl Drop for HostDevice {
    fn drop(&mut self) {
        self.settle();
    }
}

impl HostDevice {
    fn run(&self, l: &HostLaunch) -> Result<()> {
        self.runs.fetch_add(1, Ordering::Relaxed);
        if self.early {
            return self.run_early(l);
        }
        let mut vals = l.args.clone();
        let mut ptrs = arg_pointers(&mut vals);
        // SAFETY: each pointer points into `vals`, alive for the call; buffers are HostBufs
        // sized by the caller for the launch.
        unsafe { self.launch_raw(l.name, l.at, &mut ptrs) }
    }

    /// `l` started early: its first block up to its wait, then the launch before it finished.
    fn run_early(&self, l: &HostLaunch) -> Result<()> {
        let mut values: Box<[HostArg]> = l.args.clone().into_boxed_slice();
        let mut pointers = arg_pointers(&mut values).into_boxed_slice();
        let c = CString::new(l.name).map_err(|_| EngineError::Cuda("kernel name".into()))?;
        let mut started = self.started.lock().unwrap_or_else(|e| e.into_inner());
        let _g = HOST_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        self.apply_schedule();
        let (g, b) = (l.at.grid, l.at.block);
        // SAFETY: as `run`: the pointers point into `values`, kept alive in `Started` until
        // the launch is finished; buffers are HostBufs sized for the launch.
        let handle = unsafe {
            (self.begin)(
                c.as_ptr(),
                g.0,
                g.1,
                g.2,
                b,
                1,
                1,
                l.at.smem,
                pointers.as_mut_ptr(),
            )
        };
        if handle.is_null() {
            return Err(EngineError::Cuda(format!("unknown kernel {}", l.name)));
        }
        if let Some(before) = started.take() {
            // SAFETY: as in `settle`.
            unsafe { (self.finish)(before.handle) };
        }
        *started = Some(Started {
            handle,
            _values: values,
            _pointers: pointers,
        });
        Ok(())
    }
}

impl Device for HostDevice {
    type Buf = HostBuf;
    type Graph = HostGraph;

    fn alloc(&self, bytes: usize) -> Result<Self::Buf> {
        self.settle();
        let size = bytes.max(1);
        let before = self.used.fetch_add(size, Ordering::Relaxed);
        if self.memory.is_some_and(|m| before + size > m) {
            self.used.fetch_sub(size, Ordering::Relaxed);
            return Err(EngineError::Cuda(format!(
                "out of device memory: {size} bytes asked for, {} free",
                self.memory.unwrap_or(0).saturating_sub(before)
            )));
        }
        HostBuf::new(bytes, self.used.clone(), self.guard_before).inspect_err(|_| {
            self.used.fetch_sub(size, Ordering::Relaxed);
        })
    }

    fn write(&self, dst: &mut Self::Buf, src: &[u8]) -> Result<()> {
        self.settle();
        assert!(src.len() <= dst.len, "write past the buffer");
        // SAFETY: `dst` holds at least `src.len()` bytes.
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), dst.as_mut_ptr(), src.len()) };
        Ok(())
    }

    fn read_at(&self, src: &Self::Buf, offset: usize, dst: &mut [u8]) -> Result<()> {
        self.settle();
        assert!(offset + dst.len() <= src.len, "read past the buffer");
        // SAFETY: as above.
        unsafe {
            std::ptr::copy_nonoverlapping(src.as_mut_ptr().add(offset), dst.as_mut_ptr(), dst.len())
        };
        Ok(())
    }

    fn begin_capture(&self) -> Result<()> {
        let mut c = self.capture.lock().unwrap_or_else(|e| e.into_inner());
        if c.is_some() {
            return Err(EngineError::Cuda("already capturing".into()));
        }
        *c = Some(Vec::new());
        Ok(())
    }

    fn end_capture(&self) -> Result<Self::Graph> {
        let mut c = self.capture.lock().unwrap_or_else(|e| e.into_inner());
        c.take()
            .map(HostGraph)
            .ok_or_else(|| EngineError::Cuda("not capturing".into()))
    }

    fn replay(&self, graph: &Self::Graph) -> Result<()> {
        graph.0.iter().try_for_each(|l| self.run(l))
    }

    fn time_launches(&self, f: &mut dyn FnMut() -> Result<()>) -> Result<Option<f64>> {
        if !self.timing {
            return Ok(None);
        }
        let start = std::time::Instant::now();
        let r = f();
        self.settle();
        r?;
        Ok(Some(start.elapsed().as_secs_f64() * 1e3))
    }

    fn has_gemm(&self) -> bool {
        self.gemm
    }

    fn memory(&self) -> Option<Memory> {
        let total = self.memory?;
        Some(Memory {
            free: total.saturating_sub(self.used_bytes()),
            total,
        })
    }

    fn gemm(
        &self,
        g: Gemm,
        a: KArg<'_, Self::Buf>,
        b: KArg<'_, Self::Buf>,
        c: KArg<'_, Self::Buf>,
    ) -> Result<()> {
        if !self.gemm {
            return Err(EngineError::Cuda(
                "this HostDevice was built without its GEMM (HostDevice::with_gemm)".into(),
            ));
        }
        g.check()?;
        let int = |v: usize| {
            i32::try_from(v)
                .map(KArg::I32)
                .map_err(|_| EngineError::Cuda(format!("GEMM {g:?}: a dimension past i32")))
        };
        // Each operand as stored (rows, columns), its end checked against its buffer (which
        // cuBLAS cannot do).
        let ((a_rows, a_cols), (b_rows, b_cols)) = (
            if g.trans_a { (g.k, g.m) } else { (g.m, g.k) },
            if g.trans_b { (g.n, g.k) } else { (g.k, g.n) },
        );
        for (x, ld, rows, cols, size) in [
            (&a, g.lda, a_rows, a_cols, 2),
            (&b, g.ldb, b_rows, b_cols, 2),
            (&c, g.ldc, g.m, g.n, 4),
        ] {
            let (buf, offset) = match x {
                KArg::Buf(buf) => (*buf, 0),
                KArg::At(buf, offset) => (*buf, *offset),
                _ => return Err(EngineError::Cuda("GEMM: an operand is not a buffer".into())),
            };
            if rows > 0 && cols > 0 && offset + size * (ld * (cols - 1) + rows) > buf.len {
                return Err(EngineError::Cuda(format!(
                    "GEMM {g:?}: an operand reaches past its buffer"
                )));
            }
        }
        self.launch(
            HOST_GEMM,
            Launch::new((1, 1, 1), 1),
            &[
                a,
                b,
                c,
                KArg::I32(g.trans_a as i32),
                KArg::I32(g.trans_b as i32),
                int(g.m)?,
                int(g.n)?,
                int(g.k)?,
                int(g.lda)?,
                int(g.ldb)?,
                int(g.ldc)?,
            ],
        )
    }

    /// Holds the kernels to what a GPU of compute capability 9.0 allows
    /// ([`SMEM_OPT_IN_SM_90`]), counting dynamic shared memory only: the kernels that take
    /// any declare no `__shared__` variables (the NVRTC test checks ptxas's report).
    fn allow_shared_memory(&self, name: &'static str, bytes: u32) -> Result<()> {
        if !KERNELS.contains(&name) {
            return Err(EngineError::Cuda(format!("no kernel named {name}")));
        }
        check_opt_in(name, bytes, 0, SMEM_OPT_IN_SM_90)?;
        let mut allowed = self.smem_allowed.lock().unwrap_or_else(|e| e.into_inner());
        let a = allowed.entry(name).or_insert(SMEM_WITHOUT_OPT_IN);
        *a = (*a).max(bytes);
        Ok(())
    }

    fn launch(&self, name: &'static str, at: Launch, args: &[KArg<'_, Self::Buf>]) -> Result<()> {
        if let Some(decl) = self.decls.get(name) {
            let smem_allowed = self
                .smem_allowed
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(name)
                .copied()
                .unwrap_or(SMEM_WITHOUT_OPT_IN);
            decl.check(name, at, smem_allowed, args)?;
        }
        let l = HostLaunch {
            name,
            at,
            args: args
                .iter()
                .map(|a| match a {
                    KArg::Buf(b) => HostArg::P(b.as_mut_ptr()),
                    KArg::At(b, offset) => {
                        assert!(*offset <= b.len, "offset past the buffer");
                        // SAFETY: inside the buffer, checked above.
                        HostArg::P(unsafe { b.as_mut_ptr().add(*offset) })
                    }
                    KArg::Null => HostArg::P(std::ptr::null_mut()),
                    KArg::I32(v) => HostArg::I(*v),
                    KArg::I64(v) => HostArg::L(*v),
                    KArg::F32(v) => HostArg::F(*v),
                })
                .collect(),
        };
        let mut c = self.capture.lock().unwrap_or_else(|e| e.into_inner());
        match c.as_mut() {
            Some(recorded) => {
                recorded.push(l);
                Ok(())
            }
            None => {
                drop(c);
                self.run(&l)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cudarc::driver::sys::CUresult as R;

    /// Errors that leave the context unusable are told apart from those a caller may recover
    /// from (a full device, a bad argument).
    #[test]
    fn driver_errors_that_leave_the_context_unusable_are_told_apart() {
        for code in [
            R::CUDA_ERROR_ILLEGAL_ADDRESS,
            R::CUDA_ERROR_LAUNCH_FAILED,
            R::CUDA_ERROR_ECC_UNCORRECTABLE,
        ] {
            assert!(leaves_context_unusable(code), "{code:?}");
        }
        for code in [R::CUDA_ERROR_OUT_OF_MEMORY, R::CUDA_ERROR_INVALID_VALUE] {
            assert!(!leaves_context_unusable(code), "{code:?}");
        }
        let lost = EngineError::DeviceLost("CUDA driver: ...".into()).to_string();
        assert!(lost.contains("until the process restarts"), "{lost}");
    }
}
