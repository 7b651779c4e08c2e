//! Driver probing: is there a CUDA driver, how many devices, what are they called. cudarc loads
//! the driver dynamically, so these answer with an error (never a panic or a failed start) on
//! machines without CUDA.

use cudarc::driver::result;

use crate::EngineError;

/// The CUDA backend is part of every build (cudarc with dynamic loading).
pub(crate) const COMPILED: bool = true;

/// Loads the driver library and initialises it, with clear errors instead of cudarc's panic
/// when `libcuda` is missing.
pub(crate) fn init_driver() -> Result<(), EngineError> {
    // SAFETY: only tries to open the driver library by its usual names; no symbol is called.
    let present = unsafe { cudarc::driver::sys::is_culib_present() };
    if !present {
        return Err(EngineError::Device("the CUDA driver library (libcuda) was not found".to_string()));
    }
    result::init().map_err(|e| EngineError::Device(format!("CUDA driver initialisation failed: {e:?}")))
}

/// Number of CUDA devices.
pub(crate) fn device_count() -> Result<usize, EngineError> {
    init_driver()?;
    let count = result::device::get_count()
        .map_err(|e| EngineError::Device(format!("cannot count CUDA devices: {e:?}")))?;
    Ok(count.max(0) as usize)
}

/// The name the driver reports for device `ordinal`.
pub(crate) fn device_name(ordinal: usize) -> Result<String, EngineError> {
    init_driver()?;
    let device = result::device::get(ordinal as i32)
        .map_err(|e| EngineError::Device(format!("no CUDA device {ordinal}: {e:?}")))?;
    result::device::get_name(device)
        .map_err(|e| EngineError::Device(format!("cannot read the name of CUDA device {ordinal}: {e:?}")))
}
