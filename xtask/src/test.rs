//! `cargo xtask test`: the CI run. Setup (build packages and Debian's Chromium), the tool venv
//! (NVRTC from PyPI), formatting, clippy with warnings denied, then every test with:
//! - `REELVEC_SKIP_LOG` set to a fresh file, summarised at the end (`skipped: N tests`, grouped
//!   by reason) whether the tests passed or not;
//! - NVRTC on `LD_LIBRARY_PATH` and `REELVEC_REQUIRE_NVRTC=1`: every kernel must compile
//!   (crates/cli/tests/kernels_nvrtc.rs), a missing NVRTC fails;
//! - `REELVEC_REQUIRE_BROWSER=1`: the Chromium rendering tests must run.
//!
//! - then the Python package (`crate::python`): `maturin develop` into `target/py-venv`, pytest
//!   over `crates/python/tests` and `examples/python` (the CLI round trips required).
//!
//! `--only kernels,browser,python` runs just those checks (same setup and environment).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::util::{cargo, project_root, run_checked};

/// The tests one `--only` step runs: (package, test target).
const STEPS: &[(&str, &[(&str, &str)])] = &[
    ("kernels", &[("reelvec-cli", "kernels_nvrtc")]),
    ("browser", &[("reelvec-report", "render_chromium"), ("reelvec-cli", "pipeline_chromium")]),
    // Not a cargo test: the pytest suite of crates/python (see `crate::python`).
    ("python", &[]),
];

pub fn run(args: &[String]) -> Result<()> {
    let only = parse(args)?;
    crate::setup::run(&["--browser".to_string()])?;
    let nvrtc_dir = crate::tools::ensure_nvrtc()?;
    let log = fresh_skip_log()?;
    let env = TestEnv { nvrtc_dir, log: log.clone() };
    let outcome = match &only {
        None => full(&env),
        Some(steps) => steps.iter().try_for_each(|step| {
            if step == "python" {
                return crate::python::test(&env.vars());
            }
            let tests = STEPS.iter().find(|(name, _)| name == step).map(|(_, t)| *t).unwrap_or(&[]);
            tests.iter().try_for_each(|(package, target)| {
                run_checked(env.apply(cargo().args(["test", "-p", package, "--test", target])))
            })
        }),
    };
    let text =
        std::fs::read_to_string(&log).with_context(|| format!("reading the skip log {}", log.display()))?;
    eprint!("test: {}", reelvec_testkit::summarise(&text).render());
    outcome
}

/// `None` for the full run, else the `--only` steps.
fn parse(args: &[String]) -> Result<Option<Vec<String>>> {
    match args {
        [] => Ok(None),
        [flag, list] if flag == "--only" => {
            let steps: Vec<String> = list.split(',').map(str::to_string).collect();
            for step in &steps {
                if !STEPS.iter().any(|(name, _)| name == step) {
                    let known: Vec<&str> = STEPS.iter().map(|(n, _)| *n).collect();
                    bail!("test: unknown step `{step}` (expected {})", known.join(", "));
                }
            }
            Ok(Some(steps))
        }
        [other, ..] => bail!("test: unknown argument `{other}` (expected --only kernels,browser,python)"),
    }
}

fn full(env: &TestEnv) -> Result<()> {
    run_checked(cargo().args(["fmt", "--all", "--", "--check"]))?;
    run_checked(cargo().args(["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"]))?;
    // The Python step's `reelvec` binary comes from this same build (`python::CLI_BUILD`).
    run_checked(env.apply(cargo().args(rust_tests())))?;
    run_checked(env.apply(cargo().args(["test", "--workspace", "--doc"])))?;
    crate::python::test(&env.vars())
}

/// The Rust tests' cargo arguments: the Python step's binary build ([`crate::python::CLI_BUILD`])
/// without `--no-run`, so that build has nothing left to do after them.
fn rust_tests() -> Vec<&'static str> {
    crate::python::CLI_BUILD.iter().copied().filter(|a| *a != "--no-run").collect()
}

/// What every test command of the run gets in its environment.
struct TestEnv {
    nvrtc_dir: PathBuf,
    log: PathBuf,
}

impl TestEnv {
    /// The skip log, for the Python step (it needs no NVRTC or browser).
    fn vars(&self) -> Vec<(&'static str, &std::ffi::OsStr)> {
        vec![(reelvec_testkit::SKIP_LOG_VAR, self.log.as_os_str())]
    }

    fn apply<'a>(&self, cmd: &'a mut Command) -> &'a mut Command {
        cmd.env(reelvec_testkit::SKIP_LOG_VAR, &self.log)
            .env("LD_LIBRARY_PATH", prepend_path(&self.nvrtc_dir, std::env::var_os("LD_LIBRARY_PATH")))
            .env(reelvec_testkit::Need::Nvrtc.require_var(), "1")
            .env(reelvec_testkit::Need::Browser.require_var(), "1")
    }
}

/// `dir` first, then the existing search path.
fn prepend_path(dir: &Path, existing: Option<std::ffi::OsString>) -> std::ffi::OsString {
    let mut paths = vec![dir.to_path_buf()];
    if let Some(existing) = existing {
        paths.extend(std::env::split_paths(&existing));
    }
    std::env::join_paths(paths).unwrap_or_else(|_| dir.as_os_str().to_owned())
}

/// `target/xtask/skips-PID.log`, created empty.
fn fresh_skip_log() -> Result<PathBuf> {
    let dir = project_root().join("target").join("xtask");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let log = dir.join(format!("skips-{}.log", std::process::id()));
    std::fs::write(&log, "").with_context(|| format!("creating the skip log {}", log.display()))?;
    Ok(log)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap
mod tests {
    use super::*;

    #[test]
    fn the_python_step_builds_the_cli_as_the_rust_tests_do() {
        // A `cargo build -p reelvec-cli` here resolved other features in another profile and
        // rebuilt every dependency after the Rust tests (3 min in CI).
        assert_eq!(rust_tests(), ["test", "--workspace", "--all-targets"]);
        let mut build = crate::python::CLI_BUILD.to_vec();
        assert_eq!(build.pop(), Some("--no-run"));
        assert_eq!(build, rust_tests());
    }

    #[test]
    fn only_accepts_the_known_steps() {
        assert_eq!(parse(&[]).unwrap(), None);
        let steps = parse(&["--only".into(), "kernels,browser".into()]).unwrap();
        assert_eq!(steps, Some(vec!["kernels".to_string(), "browser".to_string()]));
        assert!(parse(&["--only".into(), "kernels,gpu".into()]).is_err());
        assert!(parse(&["--fast".into()]).is_err());
    }

    #[test]
    fn the_nvrtc_directory_comes_first_on_the_loader_path() {
        let joined = prepend_path(Path::new("/v/lib"), Some("/a:/b".into()));
        assert_eq!(joined, std::ffi::OsString::from("/v/lib:/a:/b"));
        assert_eq!(prepend_path(Path::new("/v/lib"), None), std::ffi::OsString::from("/v/lib"));
    }
}
