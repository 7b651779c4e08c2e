//! `--device cpu|cuda|cuda:N|auto`, resolved once per command and said out loud: `auto` picks
//! CUDA when a device answers and otherwise falls back to the CPU, printing which and why on
//! stderr; an explicit `cuda` without a usable device is an error (never a silent fallback).

use anyhow::{Context, Result};
use reelvec_engine::Device;

/// Resolves a `--device` value, printing the choice (`device: cuda:0 (NVIDIA H100 ...)` or
/// `device: cpu (CUDA not used: ...)`) unless `quiet`.
pub fn resolve_device(text: &str, quiet: bool) -> Result<Device> {
    if text.trim().eq_ignore_ascii_case("auto") {
        let (device, why) = Device::auto_explained();
        if !quiet {
            eprintln!("device: {why} (chosen by --device auto)");
        }
        return Ok(device);
    }
    let device = Device::parse(text).with_context(|| format!("--device {text}"))?;
    if !quiet && device.is_cuda() {
        eprintln!("device: {}", device.describe());
    }
    Ok(device)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_and_auto_always_resolve_and_bad_names_are_errors() {
        assert_eq!(resolve_device("cpu", true).unwrap(), Device::Cpu);
        let auto = resolve_device("auto", true).unwrap();
        assert_eq!(auto.is_cuda(), reelvec_engine::gpu::available());
        let err = format!("{:#}", resolve_device("tpu", true).unwrap_err());
        assert!(err.contains("--device tpu") && err.contains("unknown device"), "{err}");
    }

    #[test]
    fn explicit_cuda_without_a_device_is_an_error_not_a_fallback() {
        if reelvec_engine::gpu::available() {
            assert_eq!(resolve_device("cuda", true).unwrap(), Device::Cuda(0));
        } else {
            assert!(resolve_device("cuda", true).is_err());
        }
    }
}
