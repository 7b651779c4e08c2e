//! The Python package (`crates/python`): its virtual environment, its build and its tests.
//!
//! - `target/py-venv`: created with `python3 -m venv` and filled from
//!   `crates/python/requirements-test.txt` (maturin, pytest, NumPy, pandas, pyarrow); skipped
//!   when the requirements have not changed since the last install (a stamp holds them).
//! - `test()` (a step of `cargo xtask test`): `maturin develop` into that venv, a debug build in
//!   the workspace target directory, the `reelvec` binary for the CLI round trips through the
//!   Rust tests' own build command ([`CLI_BUILD`], nothing to do after them), then pytest over
//!   `crates/python/tests` and `examples/python` with `REELVEC_REQUIRE_CLI=1` (a test that cannot
//!   find the CLI fails rather than skips); each step's time is printed.
//! - `wheel()` (`cargo xtask wheel`): a release abi3 wheel in `target/wheels`, installed with
//!   pip into a fresh venv (`target/wheel-check`) and imported from outside the source tree.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::util::{cargo, project_root, run_checked};

/// `target/py-venv` (or under `$CARGO_TARGET_DIR`).
fn venv_dir() -> PathBuf {
    target_dir().join("py-venv")
}

/// The cargo target directory the workspace builds into.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| project_root().join("target"))
}

fn crate_dir() -> PathBuf {
    project_root().join("crates").join("python")
}

/// Creates `target/py-venv` and installs the test requirements when they changed; returns the
/// venv's python.
pub fn ensure_venv() -> Result<PathBuf> {
    let venv = venv_dir();
    let python = venv.join("bin").join("python");
    let requirements = crate_dir().join("requirements-test.txt");
    let wanted = std::fs::read_to_string(&requirements)
        .with_context(|| format!("reading {}", requirements.display()))?;
    let stamp = venv.join(".reelvec-requirements");
    if python.is_file() && std::fs::read_to_string(&stamp).is_ok_and(|s| s == wanted) {
        eprintln!("python: {} up to date", venv.display());
        return Ok(python);
    }
    if !python.is_file() {
        run_checked(Command::new("python3").args(["-m", "venv"]).arg(&venv))
            .context("python: creating the venv needs python3 with the venv module (Debian: python3-venv)")?;
    }
    run_checked(
        Command::new(&python)
            .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r"])
            .arg(&requirements),
    )?;
    std::fs::write(&stamp, wanted).with_context(|| format!("writing {}", stamp.display()))?;
    Ok(python)
}

fn maturin(python: &Path) -> Command {
    let mut cmd = Command::new(python);
    cmd.args(["-m", "maturin"])
        .current_dir(crate_dir())
        .env("VIRTUAL_ENV", venv_dir())
        .env("CARGO_TARGET_DIR", target_dir());
    cmd
}

/// The cargo command that builds the `reelvec` binary for the CLI round trips: the Rust tests'
/// own build (`cargo test --workspace --all-targets`, which leaves the binary of the CLI's
/// integration tests at `target/debug/reelvec`), without running them. After the Rust tests of
/// `cargo xtask test` it has nothing to do; a plain `cargo build -p reelvec-cli` would resolve
/// other features (no dev-dependencies, one package) in the dev profile and rebuild every
/// dependency (3 min on the CI machine).
pub const CLI_BUILD: &[&str] = &["test", "--workspace", "--all-targets", "--no-run"];

/// Runs `cmd` and says how long it took.
fn timed(label: &str, cmd: &mut Command) -> Result<()> {
    let started = std::time::Instant::now();
    run_checked(cmd)?;
    eprintln!("python: {label} took {:.1}s", started.elapsed().as_secs_f64());
    Ok(())
}

/// Builds the extension into the venv and runs the pytest suite and the example scripts.
pub fn test(extra_env: &[(&str, &std::ffi::OsStr)]) -> Result<()> {
    let python = ensure_venv()?;
    timed("maturin develop", maturin(&python).args(["develop", "--quiet"]))?;
    timed("the reelvec binary", cargo().args(CLI_BUILD))?;
    let bin = target_dir().join("debug").join("reelvec");
    if !bin.is_file() {
        bail!("python: the reelvec binary is not at {}", bin.display());
    }
    let mut cmd = Command::new(&python);
    cmd.args(["-m", "pytest", "-q", "-rs"]).arg(crate_dir().join("tests"));
    let examples = project_root().join("examples").join("python");
    if examples.is_dir() {
        cmd.arg(examples);
    }
    cmd.current_dir(project_root()).env("REELVEC_BIN", &bin).env("REELVEC_REQUIRE_CLI", "1");
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    timed("pytest", &mut cmd)
}

/// `cargo xtask wheel`: builds the release wheel and checks it installs and imports in a fresh
/// venv, away from the source tree.
pub fn wheel(args: &[String]) -> Result<()> {
    if let Some(a) = args.first() {
        bail!("wheel: unknown argument `{a}` (it takes none)");
    }
    let python = ensure_venv()?;
    let out = target_dir().join("wheels");
    run_checked(maturin(&python).args(["build", "--release", "--out"]).arg(&out))?;
    let mut wheels: Vec<PathBuf> = std::fs::read_dir(&out)
        .with_context(|| format!("reading {}", out.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "whl"))
        .collect();
    wheels.sort_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok());
    let wheel = wheels.pop().with_context(|| format!("no wheel in {}", out.display()))?;
    let check = target_dir().join("wheel-check");
    if check.exists() {
        std::fs::remove_dir_all(&check).with_context(|| format!("removing {}", check.display()))?;
    }
    run_checked(Command::new("python3").args(["-m", "venv"]).arg(&check))?;
    let fresh = check.join("bin").join("python");
    run_checked(
        Command::new(&fresh)
            .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check"])
            .arg(&wheel),
    )?;
    run_checked(
        Command::new(&fresh)
            .args([
                "-c",
                "import reelvec; d = reelvec.synth('tiny'); r = reelvec.train('mf', d, config={'train.epochs': 1}); \
                 print('wheel ok:', reelvec.__version__, r.item_vectors.shape)",
            ])
            .current_dir(std::env::temp_dir()),
    )?;
    eprintln!("wheel: {}", wheel.display());
    eprintln!("install it with: pip install {}", wheel.display());
    Ok(())
}
