//! `cargo xtask gpu-bundle [--out DIR]`: builds everything the GPU machine needs into one folder
//! (default `.gpu/bundle`, git-ignored), since that machine has no Rust toolchain:
//!
//! - `reelvec` (release CLI: pipelines, `evaluate`, `bench --device cuda`),
//! - every GPU test binary of the workspace (test targets named `gpu_*`: the parity suite),
//! - `peers/` (the PyTorch reference scripts for `reelvec bench --peers`),
//! - `lib/`, the shared libraries the binaries link beyond glibc (OpenBLAS and its Fortran
//!   runtime: a CUDA image rarely has them), put first on `LD_LIBRARY_PATH` by `run.sh`,
//! - `run.sh`, which runs the suite (`./run.sh tests`), the benchmarks (`./run.sh bench`) or both
//!   (`./run.sh`), writing logs and result JSON under `$OUT` when set.
//!
//! Binaries are stripped so the folder stays well under the device tool's 64 MiB.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

use crate::util::{cargo, project_root, run_checked};

const RUN_SH: &str = r#"#!/usr/bin/env bash
# Runs reelvec's GPU suite, a pipeline report and the benchmarks on a CUDA machine.
# Usage: ./run.sh [tests|pipeline|bench|all|ranking]   (results under $OUT, default /tmp/reelvec-gpu-out)
# `ranking` is the short check of the ranking models' CUDA twins: gpu_ranking (ials, ease, bpr
# parity) and the scale suite's iALS and BPR rows only.
set -u
here="$(cd "$(dirname "$0")" && pwd)"
out="${OUT:-/tmp/reelvec-gpu-out}"
work="$(mktemp -d)"
mkdir -p "$out"
export REELVEC_KERNEL_CACHE="${REELVEC_KERNEL_CACHE:-/tmp/reelvec-kernels}"
export LD_LIBRARY_PATH="$here/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
# On the GPU machine a test that skips for want of a device is a failure (reelvec-testkit);
# the opt-in and data skips are logged and summarised below.
export REELVEC_REQUIRE_GPU=1
export REELVEC_SKIP_LOG="$out/skips.log"
: >"$REELVEC_SKIP_LOG"
what="${1:-all}"
failed=0
tests="gpu_*"
[ "$what" = ranking ] && tests="gpu_ranking"
if [ "$what" = tests ] || [ "$what" = all ] || [ "$what" = ranking ]; then
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
  for t in "$here"/tests/$tests; do
    name="$(basename "$t")"
    log="$work/$name.log"
    if "$t" --test-threads=1 >"$log" 2>&1; then
      echo "PASS $name: $(grep -E '^test result' "$log" | tail -1)"
    else
      echo "FAIL $name"; grep -E "panicked|FAILED|error" "$log" | head -20; failed=1
    fi
    { echo "===== $name"; cat "$log"; } >>"$out/tests.log"
  done
  echo "skipped: $(wc -l <"$REELVEC_SKIP_LOG") tests"
  cut -f1,3 "$REELVEC_SKIP_LOG" | sort | uniq -c
fi
if [ "$what" = pipeline ] || [ "$what" = all ]; then
  if "$here/reelvec" pipeline --device cuda --quiet --out "$work/pipeline" >"$work/pipeline.log" 2>&1 \
     && "$here/reelvec" evaluate --run "$work/pipeline/runs/p2" --device cuda >>"$work/pipeline.log" 2>&1; then
    echo "PASS pipeline --device cuda + evaluate --device cuda"; tail -12 "$work/pipeline.log"
    cp "$work/pipeline/report.html" "$out/report-cuda.html"
  else
    echo "FAIL pipeline"; tail -20 "$work/pipeline.log"; failed=1
  fi
  cp "$work/pipeline.log" "$out/pipeline.log"
fi
if [ "$what" = bench ] || [ "$what" = all ]; then
  data="$work/synth-ml100k"
  "$here/reelvec" data synth --preset ml100k --layout ml-100k --out "$data" >/dev/null
  "$here/reelvec" bench --suite notebook --device cuda --data "$data" --peers "$here/peers" \
      --json "$out/notebook-cuda.json" || failed=1
  "$here/reelvec" bench --suite scale --device cuda --json "$out/scale-cuda.json" || failed=1
fi
if [ "$what" = ranking ]; then
  "$here/reelvec" bench --suite scale --device cuda --scale-cases ials,bpr --json "$out/scale-ials-cuda.json" \
      || failed=1
fi
rm -rf "$work"
exit $failed
"#;

pub fn run(args: &[String]) -> Result<()> {
    let mut out = project_root().join(".gpu").join("bundle");
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--out" => out = PathBuf::from(it.next().context("--out needs a directory")?),
            "-h" | "--help" => {
                println!("cargo xtask gpu-bundle [--out DIR]   (default .gpu/bundle)");
                return Ok(());
            }
            other => bail!("gpu-bundle: unknown argument `{other}`"),
        }
    }
    if out.exists() {
        std::fs::remove_dir_all(&out).with_context(|| format!("clearing {}", out.display()))?;
    }
    std::fs::create_dir_all(out.join("tests"))?;
    std::fs::create_dir_all(out.join("peers"))?;
    std::fs::create_dir_all(out.join("lib"))?;

    run_checked(cargo().args(["build", "--release", "-p", "reelvec-cli"]))?;
    copy_stripped(&project_root().join("target/release/reelvec"), &out.join("reelvec"))?;

    for exe in gpu_test_executables()? {
        let name = exe.file_name().and_then(|n| n.to_str()).unwrap_or("test").to_string();
        // cargo names test executables NAME-HASH; keep NAME.
        let name = name.rsplit_once('-').map(|(n, _)| n.to_string()).unwrap_or(name);
        copy_stripped(&exe, &out.join("tests").join(name))?;
    }
    for lib in linked_libraries(&out.join("reelvec"))? {
        let name = lib.file_name().unwrap_or_default().to_owned();
        // fs::copy follows symlinks (Debian's libopenblas.so.0 is an alternatives link).
        std::fs::copy(&lib, out.join("lib").join(name))
            .with_context(|| format!("copying {}", lib.display()))?;
    }
    let peers = project_root().join("benches/peers");
    for entry in std::fs::read_dir(&peers).with_context(|| format!("reading {}", peers.display()))? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "py" || e == "txt") {
            std::fs::copy(&path, out.join("peers").join(path.file_name().unwrap_or_default()))?;
        }
    }
    let script = out.join("run.sh");
    std::fs::write(&script, RUN_SH)?;
    make_executable(&script)?;
    eprintln!("gpu-bundle: wrote {} (run it there with `bash {}/run.sh`)", out.display(), rel(&out));
    Ok(())
}

/// Builds the workspace's test targets and returns the executables of those named `gpu_*`.
fn gpu_test_executables() -> Result<Vec<PathBuf>> {
    let output = cargo()
        .args(["test", "--workspace", "--tests", "--no-run", "--message-format=json"])
        .stderr(Stdio::inherit())
        .output()
        .context("running cargo test --no-run")?;
    if !output.status.success() {
        bail!("building the test binaries failed");
    }
    let mut found = Vec::new();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(line) else { continue };
        if msg["reason"] != "compiler-artifact" || msg["profile"]["test"] != true {
            continue;
        }
        let name = msg["target"]["name"].as_str().unwrap_or("");
        if let (true, Some(exe)) = (name.starts_with("gpu_"), msg["executable"].as_str()) {
            found.push(PathBuf::from(exe));
        }
    }
    if found.is_empty() {
        bail!("no test target named gpu_* was built");
    }
    Ok(found)
}

/// The shared libraries `binary` links that a bare CUDA machine may lack: everything `ldd`
/// resolves except glibc's own libraries and the GCC runtime.
fn linked_libraries(binary: &Path) -> Result<Vec<PathBuf>> {
    const BASE: [&str; 8] =
        ["linux-vdso", "ld-linux", "libc.so", "libm.so", "libgcc_s", "libpthread", "libdl", "librt"];
    let output = Command::new("ldd").arg(binary).output().context("running ldd")?;
    let mut libs = Vec::new();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let Some((name, rest)) = line.trim().split_once(" => ") else { continue };
        if BASE.iter().any(|b| name.starts_with(b)) {
            continue;
        }
        if let Some(path) = rest.split_whitespace().next().filter(|p| p.starts_with('/')) {
            libs.push(PathBuf::from(path));
        }
    }
    Ok(libs)
}

fn copy_stripped(from: &Path, to: &Path) -> Result<()> {
    std::fs::copy(from, to).with_context(|| format!("copying {}", from.display()))?;
    let stripped = Command::new("strip").arg(to).status().map(|s| s.success()).unwrap_or(false);
    if !stripped {
        eprintln!("gpu-bundle: could not strip {} (kept with symbols)", to.display());
    }
    Ok(())
}

#[cfg(unix)]
fn make_executable(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))?;
    Ok(())
}

#[cfg(not(unix))]
fn make_executable(_path: &Path) -> Result<()> {
    Ok(())
}

fn rel(path: &Path) -> String {
    path.strip_prefix(project_root())
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| path.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::RUN_SH;

    #[test]
    fn run_sh_turns_gpu_skips_into_failures_and_logs_the_rest() {
        let exports: Vec<&str> = RUN_SH.lines().filter(|l| l.starts_with("export ")).collect();
        assert!(exports.contains(&"export REELVEC_REQUIRE_GPU=1"), "{exports:?}");
        assert!(exports.iter().any(|l| l.starts_with("export REELVEC_SKIP_LOG=")), "{exports:?}");
        // Set before the first test binary runs.
        let first_test = RUN_SH.find("for t in").unwrap_or(0);
        assert!(RUN_SH.find("export REELVEC_REQUIRE_GPU=1").is_some_and(|at| at < first_test));
    }

    #[test]
    fn run_sh_ranking_runs_the_ranking_twins_and_the_ials_and_bpr_scale_rows() {
        assert!(RUN_SH.contains(r#"[ "$what" = ranking ] && tests="gpu_ranking""#));
        assert!(RUN_SH.contains(r#"[ "$what" = tests ] || [ "$what" = all ] || [ "$what" = ranking ]"#));
        assert!(RUN_SH.contains("--suite scale --device cuda --scale-cases ials,bpr "));
        // The full bench keeps the whole scale suite (its default cases include iALS).
        assert!(RUN_SH.contains(r#"bench --suite scale --device cuda --json "$out/scale-cuda.json""#));
    }
}
