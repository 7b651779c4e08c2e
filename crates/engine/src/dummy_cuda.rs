//! Stand-in for the CUDA backend in builds without the `cuda` feature: the same functions as
//! `cuda/mod.rs`, each answering that CUDA support is not compiled in.

use crate::EngineError;

/// The CUDA backend is not part of this build.
pub(crate) const COMPILED: bool = false;

fn not_compiled() -> EngineError {
    EngineError::Device(
        "reelvec was built without CUDA support (rebuild with `--features cuda`, or use --device cpu)"
            .to_string(),
    )
}

/// Always an error: no CUDA backend.
pub(crate) fn device_count() -> Result<usize, EngineError> {
    Err(not_compiled())
}

/// Always an error: no CUDA backend.
pub(crate) fn device_name(_ordinal: usize) -> Result<String, EngineError> {
    Err(not_compiled())
}
