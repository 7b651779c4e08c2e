//! `cargo xtask peers`: the peers' Python environment, `target/peers-venv`, with exactly the
//! versions of `benches/peers/requirements.txt` (PyTorch, NumPy, implicit, gensim, Surprise)
//! installed from PyPI. `cargo xtask bench` runs the peers with this venv's Python when it exists
//! (`$REELVEC_PYTHON` overrides it), so no benchmark relies on a hand-installed package.
//! Idempotent: a stamp file holds the hash of the requirements the venv was built from; nothing is
//! downloaded while it matches.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result};

use crate::util::{project_root, run_checked};

const HELP: &str = "\
cargo xtask peers [--force]

  Creates target/peers-venv and installs benches/peers/requirements.txt into it (several GB:
  PyPI's torch wheel brings NVIDIA's CUDA libraries; it runs on the CPU too). Rerun after the
  requirements change; --force reinstalls.
";

/// `target/peers-venv` of the workspace.
pub fn venv_dir() -> PathBuf {
    project_root().join("target").join("peers-venv")
}

/// The venv's Python when the venv was built from the current requirements.
pub fn python() -> Option<PathBuf> {
    let python = venv_dir().join("bin").join("python");
    (python.is_file() && stamp_matches().unwrap_or(false)).then_some(python)
}

fn requirements() -> PathBuf {
    project_root().join("benches").join("peers").join("requirements.txt")
}

fn stamp_path() -> PathBuf {
    venv_dir().join(".requirements-stamp")
}

/// A stamp of the requirements file: its length and a 64-bit FNV-1a of its bytes.
fn stamp_of(bytes: &[u8]) -> String {
    let hash =
        bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
    format!("{} {hash:016x}", bytes.len())
}

fn stamp_matches() -> Result<bool> {
    let wanted = stamp_of(&std::fs::read(requirements())?);
    Ok(std::fs::read_to_string(stamp_path()).is_ok_and(|s| s.trim() == wanted))
}

pub fn run(args: &[String]) -> Result<()> {
    let mut force = false;
    for a in args {
        match a.as_str() {
            "--force" => force = true,
            "-h" | "--help" => {
                print!("{HELP}");
                return Ok(());
            }
            other => anyhow::bail!("unknown option `{other}`\n\n{HELP}"),
        }
    }
    ensure(force).map(drop)
}

/// Builds the venv when missing or stale; returns its Python.
pub fn ensure(force: bool) -> Result<PathBuf> {
    if !force {
        if let Some(p) = python() {
            eprintln!("peers: {} is up to date", venv_dir().display());
            return Ok(p);
        }
    }
    let venv = venv_dir();
    let python = venv.join("bin").join("python");
    if !python.is_file() {
        run_checked(Command::new("python3").args(["-m", "venv"]).arg(&venv))
            .context("peers: creating the venv needs python3 with the venv module (Debian: python3-venv)")?;
    }
    let reqs = requirements();
    let bytes = std::fs::read(&reqs).with_context(|| format!("cannot read {}", reqs.display()))?;
    run_checked(
        Command::new(&python)
            .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r"])
            .arg(&reqs),
    )?;
    std::fs::write(stamp_path(), stamp_of(&bytes))?;
    eprintln!("peers: installed {} into {}", reqs.display(), venv.display());
    Ok(python)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap
mod tests {
    use super::*;

    #[test]
    fn the_stamp_changes_with_the_requirements() {
        let a = stamp_of(b"torch==2.15.0\n");
        assert_eq!(a, stamp_of(b"torch==2.15.0\n"));
        assert_ne!(a, stamp_of(b"torch==2.15.1\n"));
        assert_ne!(stamp_of(b""), stamp_of(b"\n"));
    }
}
