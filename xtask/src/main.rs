//! `cargo xtask`: the project's own automation, in plain Rust.
//!
//! One module per subcommand: `setup` (system packages), `test` (fmt, clippy, tests, the skip
//! summary; `tools` keeps its NVRTC venv),
//! `pipeline` (the main job, through the release `reelvec` binary), `fetch` (GroupLens data sets),
//! `synth` (synthetic data sets), `bench` (benchmarks), `peers` (the peers' Python venv),
//! `gpu-bundle` (the CLI and the GPU test suite, packed for a CUDA machine) and `wheel` (the
//! Python package; `python` also holds its test step).

mod bench;
mod fetch;
mod gpu_bundle;
mod peers;
mod pipeline;
mod python;
mod setup;
mod synth;
mod test;
#[cfg(test)]
mod tidy;
mod tools;
mod util;

use anyhow::{bail, Result};

const HELP: &str = "\
cargo xtask <command> [args]

commands:
  setup [--browser]              install the system packages the build needs (idempotent)
  test [--only kernels,browser,python]
                                 setup (with Chromium), NVRTC in target/tools-venv, cargo fmt --check,
                                 clippy -D warnings, all tests (NVRTC kernel compilation and the
                                 Chromium tests required), the Python package's pytest suite and
                                 examples (target/py-venv), then the skipped tests by reason
  wheel                          build the release abi3 wheel of the Python package into
                                 target/wheels and check it installs and imports in a fresh venv
  pipeline [--data PATH] [--out DIR] [--device cpu|cuda|auto] [ARGS...]
                                 run the main job (embedded synthetic data when no --data)
  fetch NAME [--dest DIR] [--url URL] [--force] [--insecure-skip-verify]
                                 download, verify and unpack a GroupLens data set
  fetch --list                   the data sets of datasets/manifest.toml
  synth --preset NAME --layout LAYOUT --out DIR [--seed N]
                                 write a synthetic MovieLens-shaped data set
  bench [ARGS...]                run the benchmark suite (see `cargo xtask bench --help`)
  peers [--force]                the peers' Python venv (target/peers-venv) from
                                 benches/peers/requirements.txt: PyTorch, implicit, gensim, Surprise
  gpu-bundle [--out DIR]         build the CLI, the GPU test suite and a run.sh into .gpu/bundle
                                 for a CUDA machine without a Rust toolchain
";

fn main() {
    if let Err(err) = run() {
        eprintln!("xtask: error: {err:#}");
        std::process::exit(1);
    }
}

fn run() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let Some(command) = args.next() else {
        print!("{HELP}");
        return Ok(());
    };
    let rest: Vec<String> = args.collect();
    match command.as_str() {
        "setup" => setup::run(&rest),
        "test" => test::run(&rest),
        "pipeline" => pipeline::run(&rest),
        "fetch" => fetch::run(&rest),
        "synth" => synth::run(&rest),
        "bench" => bench::run(&rest),
        "peers" => peers::run(&rest),
        "gpu-bundle" => gpu_bundle::run(&rest),
        "wheel" => python::wheel(&rest),
        "-h" | "--help" | "help" => {
            print!("{HELP}");
            Ok(())
        }
        other => bail!("unknown command `{other}`\n\n{HELP}"),
    }
}
