//! The CUDA backend's runtime: one [`Gpu`] per device (context, stream, cuBLAS handle, kernel
//! cache), device buffers with errors that say what was being allocated, NVRTC compilation of
//! the `.cu` files that sit beside their CPU twins ([`KernelSource`], cached in memory and on
//! disk by [`compile`]), device copies of a [`ParamStore`](crate::ParamStore)
//! ([`GpuParams`], [`GpuGrads`]), the optimizers as single-pass kernels ([`GpuOptimizer`]) and
//! the device training loop ([`GpuObjective`], [`Trainer::fit_gpu`](crate::Trainer::fit_gpu)).
//!
//! cudarc loads the driver, NVRTC and cuBLAS dynamically, so this module is compiled into every
//! build and a machine without CUDA only sees an error when it asks for a CUDA device.
//!
//! **Streams and synchronisation.** Each [`Gpu`] owns one stream; every launch, copy and cuBLAS
//! call of reelvec goes on it, in order, so kernels never race one another. The host waits only
//! where it reads results ([`Gpu::download`], [`Gpu::sync`]); a kernel fault surfaces there as
//! [`EngineError::Gpu`], never as a hang.

mod compile;
mod optim;
mod params;
pub(crate) mod probe;
mod trainer;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

/// cudarc itself, for the few driver/cuBLAS types not re-exported above (e.g. cuBLAS enums).
pub use cudarc;
pub use cudarc::cublas::{CudaBlas, Gemm, GemmConfig};
use cudarc::driver::{CudaContext, DriverError};
pub use cudarc::driver::{
    CudaFunction, CudaSlice, CudaStream, CudaView, CudaViewMut, DevicePtr, DevicePtrMut, DeviceRepr,
    LaunchConfig, PushKernelArg, ValidAsZeroBits,
};

pub use compile::{compile_check, kernel_cache_dir, nvrtc_available, KernelSource, CHECKED_ARCHITECTURES};

/// The engine's kernel files (optimizers, divergence scan): its part of the registry CI compiles
/// (see [`compile_check`]).
pub const KERNELS: &[KernelSource] = &[optim::ADAM_CU, optim::SGD_CU, trainer::PARAMS_CU];
pub use optim::GpuOptimizer;
pub use params::{GpuGradTable, GpuGrads, GpuParams, GpuTable};
pub use trainer::{non_finite_table, GpuBatch, GpuObjective};

use crate::EngineError;

/// Threads per block of the element-wise kernels.
pub const BLOCK: u32 = 256;

/// A launch configuration covering `n` elements with [`BLOCK`] threads per block (at least one
/// block, so a launch over zero elements is still valid).
pub fn grid_for(n: usize) -> LaunchConfig {
    let blocks = n.div_ceil(BLOCK as usize).clamp(1, u32::MAX as usize) as u32;
    LaunchConfig { grid_dim: (blocks, 1, 1), block_dim: (BLOCK, 1, 1), shared_mem_bytes: 0 }
}

/// Turns a driver error into an [`EngineError::Gpu`] naming what was being done.
pub fn driver_error(what: impl Into<String>, error: DriverError) -> EngineError {
    EngineError::Gpu { what: what.into(), message: format!("{error:?}") }
}

/// One CUDA device ready for work.
#[derive(Debug)]
pub struct Gpu {
    ordinal: usize,
    name: String,
    compute_capability: (i32, i32),
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    blas: CudaBlas,
    /// Compiled functions by (kernel file, function name).
    functions: Mutex<HashMap<(&'static str, &'static str), CudaFunction>>,
}

impl Gpu {
    /// The process-wide handle of device `ordinal`, created on first use (every pipeline of a
    /// process shares its context, stream and kernel cache).
    pub fn shared(ordinal: usize) -> Result<Arc<Gpu>, EngineError> {
        static OPEN: OnceLock<Mutex<HashMap<usize, Arc<Gpu>>>> = OnceLock::new();
        let open = OPEN.get_or_init(|| Mutex::new(HashMap::new()));
        let mut open = open.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(gpu) = open.get(&ordinal) {
            return Ok(Arc::clone(gpu));
        }
        let gpu = Arc::new(Gpu::open(ordinal)?);
        open.insert(ordinal, Arc::clone(&gpu));
        Ok(gpu)
    }

    /// The handle of [`Device::Cuda`](crate::Device::Cuda) `ordinal`, or an error for the CPU.
    pub fn for_device(device: crate::Device) -> Result<Arc<Gpu>, EngineError> {
        match device {
            crate::Device::Cuda(ordinal) => Gpu::shared(ordinal),
            crate::Device::Cpu => Err(EngineError::Device("a CUDA device was expected, got cpu".to_string())),
        }
    }

    /// Opens device `ordinal`: driver, context, stream, cuBLAS.
    fn open(ordinal: usize) -> Result<Gpu, EngineError> {
        let count = probe::device_count()?;
        if ordinal >= count {
            return Err(EngineError::Device(format!(
                "CUDA device {ordinal} requested but {count} device(s) found"
            )));
        }
        let ctx = CudaContext::new(ordinal)
            .map_err(|e| driver_error(format!("opening CUDA device {ordinal}"), e))?;
        // SAFETY: reelvec uses one stream per device for everything, so the per-buffer events
        // cudarc records for cross-stream safety are pure overhead (two driver calls per launch).
        unsafe { ctx.disable_event_tracking() };
        let name = ctx.name().map_err(|e| driver_error("reading the device name", e))?;
        let compute_capability =
            ctx.compute_capability().map_err(|e| driver_error("reading the compute capability", e))?;
        let stream = ctx.default_stream();
        let blas = CudaBlas::new(Arc::clone(&stream))
            .map_err(|e| EngineError::Gpu { what: "starting cuBLAS".into(), message: format!("{e:?}") })?;
        tracing::info!(ordinal, %name, ?compute_capability, "CUDA device opened");
        Ok(Gpu {
            ordinal,
            name,
            compute_capability,
            ctx,
            stream,
            blas,
            functions: Mutex::new(HashMap::new()),
        })
    }

    /// The device ordinal.
    pub fn ordinal(&self) -> usize {
        self.ordinal
    }

    /// The device name, e.g. `NVIDIA H100 80GB HBM3`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `(major, minor)` compute capability.
    pub fn compute_capability(&self) -> (i32, i32) {
        self.compute_capability
    }

    /// Number of streaming multiprocessors (to size persistent grids).
    pub fn multiprocessors(&self) -> usize {
        use cudarc::driver::sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT;
        self.ctx.attribute(CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT).map(|n| n.max(1) as usize).unwrap_or(1)
    }

    /// `(free, total)` device memory in bytes.
    pub fn memory_info(&self) -> Result<(usize, usize), EngineError> {
        self.ctx.mem_get_info().map_err(|e| driver_error("reading free device memory", e))
    }

    /// The stream every reelvec launch goes on.
    pub fn stream(&self) -> &Arc<CudaStream> {
        &self.stream
    }

    /// The cuBLAS handle (bound to [`stream`](Self::stream)).
    pub fn blas(&self) -> &CudaBlas {
        &self.blas
    }

    /// Function `function` of kernel file `source`, compiled by NVRTC on first use (then cached
    /// in memory here and on disk by [`compile`]).
    pub fn function(
        &self,
        source: &KernelSource,
        function: &'static str,
    ) -> Result<CudaFunction, EngineError> {
        let key = (source.name, function);
        let mut functions = self.functions.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(f) = functions.get(&key) {
            return Ok(f.clone());
        }
        let ptx = compile::ptx_for(source, self.compute_capability)?;
        let module = self
            .ctx
            .load_module(ptx)
            .map_err(|e| driver_error(format!("loading the compiled kernel file {}", source.name), e))?;
        // Load every function of the file at once so the module is loaded once.
        for &name in source.functions {
            let f = module
                .load_function(name)
                .map_err(|e| driver_error(format!("finding kernel {name} in {}", source.name), e))?;
            functions.insert((source.name, name), f);
        }
        functions.get(&key).cloned().ok_or_else(|| EngineError::Gpu {
            what: format!("finding kernel {function} in {}", source.name),
            message: "not listed in the KernelSource's functions".to_string(),
        })
    }

    /// A zeroed device buffer of `len` elements; out of memory names `what` and the size.
    pub fn zeros<T: DeviceRepr + ValidAsZeroBits>(
        &self,
        len: usize,
        what: &str,
    ) -> Result<CudaSlice<T>, EngineError> {
        self.stream.alloc_zeros::<T>(len.max(1)).map_err(|e| self.alloc_error(what, len * size_of::<T>(), e))
    }

    /// A device copy of `data`; out of memory names `what` and the size.
    pub fn upload<T: DeviceRepr>(&self, data: &[T], what: &str) -> Result<CudaSlice<T>, EngineError> {
        if data.is_empty() {
            // cudarc refuses zero-length copies; an empty buffer still needs a valid pointer.
            // SAFETY: a one-element allocation that is never read as initialised data.
            return unsafe { self.stream.alloc::<T>(1) }.map_err(|e| self.alloc_error(what, 0, e));
        }
        self.stream.clone_htod(data).map_err(|e| self.alloc_error(what, std::mem::size_of_val(data), e))
    }

    /// Overwrites `dst[..data.len()]` with `data`.
    pub fn write<T: DeviceRepr>(
        &self,
        data: &[T],
        dst: &mut CudaSlice<T>,
        what: &str,
    ) -> Result<(), EngineError> {
        if data.is_empty() {
            return Ok(());
        }
        if data.len() > dst.len() {
            return Err(EngineError::ShapeMismatch {
                what: what.to_string(),
                expected: dst.len(),
                actual: data.len(),
            });
        }
        let mut view = dst.slice_mut(..data.len());
        self.stream
            .memcpy_htod(data, &mut view)
            .map_err(|e| driver_error(format!("copying {what} to the GPU"), e))
    }

    /// Copies `src` back to the host (waits for the stream: kernel faults surface here).
    pub fn download<T: DeviceRepr + Default + Clone>(
        &self,
        src: &CudaSlice<T>,
        len: usize,
        what: &str,
    ) -> Result<Vec<T>, EngineError> {
        let mut out = vec![T::default(); len];
        if len == 0 {
            return Ok(out);
        }
        let view = src.slice(..len);
        self.stream
            .memcpy_dtoh(&view, &mut out)
            .map_err(|e| driver_error(format!("copying {what} back from the GPU"), e))?;
        self.sync(what)?;
        Ok(out)
    }

    /// Waits for all queued work; a kernel fault is an error naming `what` was being waited on.
    pub fn sync(&self, what: &str) -> Result<(), EngineError> {
        self.stream.synchronize().map_err(|e| driver_error(format!("running {what} on the GPU"), e))
    }

    /// Records a launch error with context.
    pub fn launch_error(&self, kernel: &str, error: DriverError) -> EngineError {
        driver_error(format!("launching kernel {kernel}"), error)
    }

    fn alloc_error(&self, what: &str, bytes: usize, error: DriverError) -> EngineError {
        use cudarc::driver::sys::cudaError_enum::CUDA_ERROR_OUT_OF_MEMORY;
        if error.0 == CUDA_ERROR_OUT_OF_MEMORY {
            let free = self.memory_info().map(|(free, _)| free).unwrap_or(0);
            EngineError::GpuOutOfMemory { what: what.to_string(), bytes, free }
        } else {
            driver_error(format!("allocating {what} ({bytes} bytes)"), error)
        }
    }
}

/// True when a CUDA device answers (the GPU test suite skips otherwise).
pub fn available() -> bool {
    matches!(probe::device_count(), Ok(n) if n > 0)
}

/// The devices a device-generic test runs on: always the CPU, plus `cuda:0` when one answers.
/// Used by [`test_device!`](crate::test_device).
pub fn test_devices() -> Vec<crate::Device> {
    let mut devices = vec![crate::Device::Cpu];
    if available() {
        devices.push(crate::Device::Cuda(0));
    }
    devices
}

/// Defines one test per device for a body `fn(Device) -> R` (candle's `test_device!`): `NAME_cpu`
/// always runs; `NAME_cuda` runs on `cuda:0`, or, when no CUDA device answers, is a counted skip
/// through `reelvec_testkit::skip` (a failure under `REELVEC_REQUIRE_GPU=1`), so CPU-only CI
/// stays green while the GPU machine runs the same bodies. The calling crate needs
/// `reelvec-testkit` as a dev-dependency.
///
/// ```ignore
/// fn adam_matches(device: Device) { /* ... */ }
/// reelvec_engine::test_device!(adam_matches, adam_matches_cpu, adam_matches_cuda);
/// ```
#[macro_export]
macro_rules! test_device {
    ($body:ident, $cpu:ident, $cuda:ident) => {
        #[test]
        fn $cpu() {
            $body($crate::Device::Cpu);
        }

        #[test]
        fn $cuda() {
            if !$crate::gpu::available() {
                ::reelvec_testkit::skip(::reelvec_testkit::Need::Gpu, "no CUDA device");
                return;
            }
            $body($crate::Device::Cuda(0));
        }
    };
}
