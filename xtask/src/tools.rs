//! The project's tool environment: a Python venv at `target/tools-venv` holding what CI needs
//! from PyPI, today NVIDIA's NVRTC (`nvidia-cuda-nvrtc`, `libnvrtc.so.13`) so every kernel is
//! compiled on machines without a GPU or a CUDA toolkit. Idempotent: nothing is downloaded when
//! the pinned library is already there.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::util::{project_root, run_checked};

/// The pinned NVRTC wheel (CUDA 13, what cudarc's `cuda-13000` feature loads).
pub const NVRTC_REQUIREMENT: &str = "nvidia-cuda-nvrtc==13.5.37";

/// The library file cudarc finds by name (`libnvrtc.so.13`).
const NVRTC_LIB: &str = "libnvrtc.so.13";

/// `target/tools-venv` of the workspace.
pub fn venv_dir() -> PathBuf {
    project_root().join("target").join("tools-venv")
}

/// Creates the venv and installs NVRTC when missing; returns the directory holding
/// `libnvrtc.so.13` (for `LD_LIBRARY_PATH`).
pub fn ensure_nvrtc() -> Result<PathBuf> {
    let venv = venv_dir();
    if let Some(dir) = find_lib_dir(&venv) {
        eprintln!("tools: NVRTC present ({})", dir.join(NVRTC_LIB).display());
        return Ok(dir);
    }
    let python = venv.join("bin").join("python");
    if !python.is_file() {
        run_checked(Command::new("python3").args(["-m", "venv"]).arg(&venv)).context(
            "tools: creating the tool venv needs python3 with the venv module (Debian: python3-venv)",
        )?;
    }
    run_checked(Command::new(&python).args([
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        NVRTC_REQUIREMENT,
    ]))?;
    match find_lib_dir(&venv) {
        Some(dir) => {
            eprintln!("tools: installed NVRTC ({})", dir.join(NVRTC_LIB).display());
            Ok(dir)
        }
        None => bail!("tools: {NVRTC_REQUIREMENT} installed but no {NVRTC_LIB} under {}", venv.display()),
    }
}

/// The directory under `venv` holding `libnvrtc.so.13`
/// (`lib/pythonX.Y/site-packages/nvidia/cu13/lib`).
fn find_lib_dir(venv: &Path) -> Option<PathBuf> {
    let lib = std::fs::read_dir(venv.join("lib")).ok()?;
    let mut pythons: Vec<PathBuf> = lib.filter_map(|e| e.ok()).map(|e| e.path()).collect();
    pythons.sort();
    pythons
        .into_iter()
        .map(|p| p.join("site-packages").join("nvidia").join("cu13").join("lib"))
        .find(|dir| dir.join(NVRTC_LIB).is_file())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap
mod tests {
    use super::*;

    #[test]
    fn the_library_is_found_in_any_python_version_of_the_venv() {
        let venv = tempfile::tempdir().unwrap();
        assert_eq!(find_lib_dir(venv.path()), None);
        let dir = venv.path().join("lib/python3.13/site-packages/nvidia/cu13/lib");
        std::fs::create_dir_all(&dir).unwrap();
        assert_eq!(find_lib_dir(venv.path()), None, "a directory without the library is not it");
        std::fs::write(dir.join(NVRTC_LIB), b"").unwrap();
        assert_eq!(find_lib_dir(venv.path()), Some(dir));
    }
}
