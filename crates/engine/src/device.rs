//! Where computation runs: [`Device::Cpu`] or [`Device::Cuda`], chosen from a string
//! (`--device cpu|cuda|cuda:N|auto`) or automatically.
//!
//! Both backends are always compiled: the CUDA one ([`crate::gpu`]) loads the driver
//! dynamically through cudarc, so a CPU-only machine never fails because of the GPU code, a
//! `--device cuda` request there is a clear [`EngineError::Device`], and [`Device::auto`] falls
//! back to the CPU and says why.

use std::fmt;
use std::str::FromStr;

use crate::gpu::probe as cuda;
use crate::EngineError;

/// A compute device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Device {
    /// The CPU backend (rayon).
    #[default]
    Cpu,
    /// The CUDA device with this ordinal.
    Cuda(usize),
}

impl Device {
    /// True when the `cuda` backend was compiled into this build.
    pub fn cuda_compiled() -> bool {
        cuda::COMPILED
    }

    /// Number of CUDA devices that answer (an error when the backend is not compiled in or the
    /// driver cannot be loaded).
    pub fn cuda_device_count() -> Result<usize, EngineError> {
        cuda::device_count()
    }

    /// CUDA device `ordinal`, checked: the backend is compiled in, the driver loads and the
    /// device exists.
    pub fn cuda(ordinal: usize) -> Result<Device, EngineError> {
        let count = cuda::device_count()?;
        if ordinal >= count {
            return Err(EngineError::Device(format!(
                "CUDA device {ordinal} requested but {count} device(s) found"
            )));
        }
        Ok(Device::Cuda(ordinal))
    }

    /// CUDA device 0 when the backend is compiled in and a device answers, else the CPU.
    /// Logs the choice (tracing, info level); [`auto_explained`](Self::auto_explained) also
    /// returns it as text for the CLI to print.
    pub fn auto() -> Device {
        Self::auto_explained().0
    }

    /// [`auto`](Self::auto) with a one-line description of the choice, e.g.
    /// `"cuda:0 (NVIDIA H100 80GB HBM3)"` or
    /// `"cpu (CUDA not used: reelvec was built without CUDA support ...)"`.
    pub fn auto_explained() -> (Device, String) {
        let choice = match Device::cuda(0) {
            Ok(device) => (device, device.describe()),
            Err(e) => (Device::Cpu, format!("{} (CUDA not used: {e})", Device::Cpu.describe())),
        };
        tracing::info!(device = %choice.0, "device chosen automatically: {}", choice.1);
        choice
    }

    /// Parses and resolves `cpu`, `cuda` (= `cuda:0`), `cuda:N`, `gpu` (= `cuda:0`) or `auto`
    /// (case-insensitive). A CUDA request is checked ([`Device::cuda`]); `auto` never fails.
    pub fn parse(text: &str) -> Result<Device, EngineError> {
        let lower = text.trim().to_ascii_lowercase();
        match lower.as_str() {
            "cpu" => Ok(Device::Cpu),
            "auto" => Ok(Device::auto()),
            "cuda" | "gpu" => Device::cuda(0),
            other => match other.strip_prefix("cuda:") {
                Some(ordinal) => {
                    let ordinal = ordinal.parse::<usize>().map_err(|_| {
                        EngineError::Device(format!("bad CUDA ordinal in device `{text}` (expected cuda:N)"))
                    })?;
                    Device::cuda(ordinal)
                }
                None => Err(EngineError::Device(format!(
                    "unknown device `{text}` (expected cpu, cuda, cuda:N or auto)"
                ))),
            },
        }
    }

    /// True for a CUDA device.
    pub fn is_cuda(&self) -> bool {
        matches!(self, Device::Cuda(_))
    }

    /// A human-readable description: `cpu (N threads)` or `cuda:N (device name)`.
    pub fn describe(&self) -> String {
        match *self {
            Device::Cpu => format!("cpu ({} rayon threads)", rayon::current_num_threads()),
            Device::Cuda(ordinal) => match cuda::device_name(ordinal) {
                Ok(name) => format!("cuda:{ordinal} ({name})"),
                Err(e) => format!("cuda:{ordinal} (name unavailable: {e})"),
            },
        }
    }
}

impl fmt::Display for Device {
    /// `cpu` or `cuda:N`, the form [`Device::parse`] reads.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Device::Cpu => f.write_str("cpu"),
            Device::Cuda(ordinal) => write!(f, "cuda:{ordinal}"),
        }
    }
}

impl FromStr for Device {
    type Err = EngineError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Device::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_parses_in_any_case_and_round_trips_through_display() {
        for text in ["cpu", "CPU", " Cpu "] {
            assert_eq!(Device::parse(text).unwrap(), Device::Cpu);
        }
        assert_eq!(Device::Cpu.to_string(), "cpu");
        assert_eq!(Device::Cuda(3).to_string(), "cuda:3");
        assert_eq!("cpu".parse::<Device>().unwrap(), Device::Cpu);
    }

    #[test]
    fn unknown_devices_and_bad_ordinals_are_errors() {
        assert!(matches!(Device::parse("tpu"), Err(EngineError::Device(m)) if m.contains("unknown device")));
        assert!(matches!(Device::parse("cuda:x"), Err(EngineError::Device(m)) if m.contains("ordinal")));
    }

    #[test]
    fn auto_never_fails_and_agrees_with_the_cuda_probe() {
        let (device, why) = Device::auto_explained();
        assert_eq!(Device::parse("auto").unwrap(), device);
        match Device::cuda_device_count() {
            Ok(n) if n > 0 => assert_eq!(device, Device::Cuda(0)),
            _ => {
                assert_eq!(device, Device::Cpu);
                assert!(why.starts_with("cpu") && why.contains("CUDA not used"), "{why}");
            }
        }
    }

    #[test]
    fn cuda_requests_fail_clearly_without_a_usable_gpu() {
        match Device::cuda_device_count() {
            Ok(n) => {
                // A GPU machine: an ordinal past the last device is an error naming the count.
                let err = Device::cuda(n).unwrap_err().to_string();
                assert!(err.contains(&format!("{n} device(s) found")), "{err}");
            }
            Err(e) => {
                let msg = e.to_string();
                if !Device::cuda_compiled() {
                    assert!(msg.contains("built without CUDA support"), "{msg}");
                }
                assert!(matches!(Device::parse("cuda"), Err(EngineError::Device(_))));
                assert!(matches!(Device::parse("cuda:1"), Err(EngineError::Device(_))));
            }
        }
    }
}
