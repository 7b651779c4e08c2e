//! The engine's error type.

/// Everything that can go wrong in the engine.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// A configuration value is out of range or inconsistent.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    /// A configuration key has a value outside its allowed range.
    #[error("invalid configuration: `{key}` = {value} (allowed: {allowed})")]
    ConfigValue {
        /// The key, as the config spells it (`lr`, `batch_size`, `optimizer.beta1`).
        key: String,
        /// The value given.
        value: String,
        /// The allowed range, in words.
        allowed: String,
    },
    /// Tables (or a dense matrix) would need more memory than the machine has: refused before
    /// anything is allocated.
    #[error("{what} would need {bytes} bytes but only {available} bytes of memory are available")]
    TooLarge {
        /// What would be allocated (with its shape).
        what: String,
        /// Bytes it would need.
        bytes: u128,
        /// Bytes available (`MemAvailable`).
        available: u64,
    },
    /// Buffers of the wrong length.
    #[error("shape mismatch for {what}: expected {expected} values, got {actual}")]
    ShapeMismatch {
        /// What was being checked.
        what: String,
        /// Expected element count.
        expected: usize,
        /// Actual element count.
        actual: usize,
    },
    /// Training produced NaN or infinity, or a loss far above its start (see
    /// [`DIVERGENCE_FACTOR`](crate::trainer::DIVERGENCE_FACTOR)).
    #[error("training diverged at epoch {epoch}, step {step}: {what} (try a lower learning rate)")]
    Diverged {
        /// 0-based epoch.
        epoch: usize,
        /// 0-based step within the epoch.
        step: usize,
        /// What went wrong (a non-finite loss, gradient or table; a loss over the limit).
        what: String,
    },
    /// The host's step hook (see [`crate::step_hook`]) asked the fit to stop, e.g. on Ctrl-C.
    #[error("training interrupted after {done} steps")]
    Interrupted {
        /// Steps finished before the stop.
        done: u64,
    },
    /// The requested device cannot be used.
    #[error("device error: {0}")]
    Device(String),
    /// A CUDA driver, cuBLAS or kernel failure (a faulting kernel surfaces here at the next
    /// synchronisation, never as a hang).
    #[error("GPU error while {what}: {message}")]
    Gpu {
        /// What was being done (e.g. `launching kernel adam_dense`).
        what: String,
        /// The driver's error.
        message: String,
    },
    /// A device allocation failed for lack of memory.
    #[error("GPU out of memory allocating {what}: {bytes} bytes requested, {free} bytes free")]
    GpuOutOfMemory {
        /// What was being allocated.
        what: String,
        /// Size of the request.
        bytes: usize,
        /// Free device memory when it failed.
        free: usize,
    },
    /// NVRTC rejected a kernel file.
    #[error("compiling CUDA kernel file {kernel} failed:\n{log}")]
    KernelCompile {
        /// The `.cu` file.
        kernel: String,
        /// NVRTC's log.
        log: String,
    },
}
