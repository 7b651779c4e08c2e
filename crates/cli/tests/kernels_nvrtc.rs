//! Every CUDA kernel of the workspace compiles, without a GPU: the kernel registries of the
//! engine, the metrics and the models (one list per crate, the lists the runtime compiles from)
//! cover every `.cu` file under `crates/`, and NVRTC compiles each registered source with the
//! runtime's options for sm_80 and sm_90 (`reelvec_engine::gpu::compile_check`).
//!
//! NVRTC comes from PyPI (`nvidia-cuda-nvrtc`, `libnvrtc.so.13`); `cargo xtask test` installs it
//! into `target/tools-venv`, puts it on `LD_LIBRARY_PATH` and sets `REELVEC_REQUIRE_NVRTC=1`, so
//! there a missing NVRTC fails; a plain `cargo test` without it is a counted skip.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use reelvec_engine::gpu::{self, KernelSource};
use reelvec_testkit::{skip, Need};

/// The whole registry: each crate's list.
fn registry() -> Vec<KernelSource> {
    [gpu::KERNELS, reelvec_metrics::topn_gpu::KERNELS, reelvec_models::kernels::KERNELS].concat()
}

/// Every `.cu` file under `dir`, sorted.
fn cuda_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            cuda_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "cu") {
            out.push(path);
        }
    }
}

#[test]
fn the_registries_cover_every_cuda_file_in_the_workspace() {
    let crates = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf();
    let mut files = Vec::new();
    cuda_files(&crates, &mut files);
    assert!(files.len() >= 8, "only {} .cu files under {}", files.len(), crates.display());
    let registry = registry();
    let unregistered: Vec<String> = files
        .iter()
        .filter(|path| {
            let text = std::fs::read_to_string(path).unwrap();
            !registry.iter().any(|k| k.source.contains(text.as_str()))
        })
        .map(|p| p.display().to_string())
        .collect();
    assert!(
        unregistered.is_empty(),
        "kernel files no registry lists (so CI never compiles them): {unregistered:?}"
    );
    let mut names: Vec<&str> = registry.iter().map(|k| k.name).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), registry.len(), "two registered kernels share a name (and a cache file)");
}

#[test]
fn every_registered_kernel_compiles_for_sm80_and_sm90() {
    if !gpu::nvrtc_available() {
        return skip(
            Need::Nvrtc,
            "NVRTC (libnvrtc.so.13) not on the loader's path; `cargo xtask test` installs it",
        );
    }
    let registry = registry();
    let jobs: Vec<(KernelSource, (i32, i32))> =
        registry.iter().flat_map(|k| gpu::CHECKED_ARCHITECTURES.iter().map(move |&cc| (*k, cc))).collect();
    let results: Vec<(String, Result<usize, String>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = jobs
            .iter()
            .map(|(kernel, cc)| {
                scope.spawn(move || {
                    let started = std::time::Instant::now();
                    let outcome =
                        gpu::compile_check(kernel, *cc).map(|ptx| ptx.len()).map_err(|e| e.to_string());
                    let label = format!(
                        "{} sm_{}{} ({:.1}s)",
                        kernel.name,
                        cc.0,
                        cc.1,
                        started.elapsed().as_secs_f64()
                    );
                    (label, outcome)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut failures = Vec::new();
    for (label, outcome) in &results {
        match outcome {
            Ok(bytes) => eprintln!("compiled {label}: {bytes} bytes of PTX"),
            Err(e) => failures.push(format!("{label}: {e}")),
        }
    }
    assert_eq!(results.len(), registry.len() * 2);
    assert!(failures.is_empty(), "NVRTC failed:\n{}", failures.join("\n\n"));
}
