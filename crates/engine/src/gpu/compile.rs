//! NVRTC compilation of reelvec's `.cu` files, cached on disk.
//!
//! Each kernel file is embedded in the binary (`include_str!`) as a [`KernelSource`]. On first
//! use in a process it is compiled to PTX for the device's architecture; the PTX is written to
//! `kernel_cache_dir()/NAME-HASH-smXY.ptx`, where HASH is the xxh3 of the source text, the NVRTC
//! options and the cache format version, so a second run loads the PTX instead of recompiling
//! and an edited kernel never meets a stale entry. Writes are atomic (temp file + rename); an
//! unreadable or unwritable cache only costs a recompile, never a failure.
//!
//! The options come from one place ([`options`]) for the runtime and for [`compile_check`], which
//! CI runs over every crate's kernel registry (`reelvec_engine::gpu::KERNELS`,
//! `reelvec_metrics::topn_gpu::KERNELS`, `reelvec_models::kernels::KERNELS`) for
//! [`CHECKED_ARCHITECTURES`] with NVRTC alone (no device needed).

use std::path::PathBuf;

use cudarc::nvrtc::{compile_ptx_with_opts, CompileError, CompileOptions, Ptx};

use crate::EngineError;

/// A `.cu` file embedded in the binary, with the names of its `extern "C"` kernels.
#[derive(Debug, Clone, Copy)]
pub struct KernelSource {
    /// File name, used in error messages and cache file names (e.g. `adam.cu`).
    pub name: &'static str,
    /// The CUDA C++ source.
    pub source: &'static str,
    /// The `extern "C" __global__` functions to load from it.
    pub functions: &'static [&'static str],
}

/// The compute capabilities CI compiles every kernel for (sm_80 and sm_90).
pub const CHECKED_ARCHITECTURES: &[(i32, i32)] = &[(8, 0), (9, 0)];

/// True when the NVRTC library loads (cudarc looks for `libnvrtc.so.13` and its other names on
/// the dynamic loader's path, e.g. `LD_LIBRARY_PATH`).
pub fn nvrtc_available() -> bool {
    // SAFETY: only tries to open the library by its usual names; no symbol is called.
    unsafe { cudarc::nvrtc::sys::is_culib_present() }
}

/// Compiles `source` for compute capability `cc` with exactly the options the runtime uses,
/// without the disk cache, and checks that the PTX defines every function the source lists.
/// Returns the PTX text.
pub fn compile_check(source: &KernelSource, cc: (i32, i32)) -> Result<String, EngineError> {
    let ptx = compile_fresh(source, cc)?.to_src();
    let missing: Vec<&str> =
        source.functions.iter().copied().filter(|f| !ptx.contains(&format!(".entry {f}("))).collect();
    if !missing.is_empty() {
        return Err(EngineError::KernelCompile {
            kernel: source.name.to_string(),
            log: format!("compiled, but the PTX lacks the listed functions {missing:?}"),
        });
    }
    Ok(ptx)
}

/// NVRTC on `source` with the runtime's options; a missing NVRTC library is an error, not
/// cudarc's panic.
fn compile_fresh(source: &KernelSource, cc: (i32, i32)) -> Result<Ptx, EngineError> {
    if !nvrtc_available() {
        return Err(EngineError::KernelCompile {
            kernel: source.name.to_string(),
            log: "the NVRTC library (libnvrtc.so.13) was not found on the loader's path".to_string(),
        });
    }
    compile_ptx_with_opts(source.source, options(cc)).map_err(|e| compile_error(source.name, e))
}

/// Bumped when the cache layout or the compile options change.
const CACHE_VERSION: u32 = 2;

/// Where compiled kernels are cached: `$REELVEC_KERNEL_CACHE`, else
/// `$XDG_CACHE_HOME/reelvec/kernels`, else `$HOME/.cache/reelvec/kernels`, else the temp dir.
pub fn kernel_cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("REELVEC_KERNEL_CACHE") {
        return PathBuf::from(dir);
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("reelvec").join("kernels")
}

/// The NVRTC `--gpu-architecture` value for a compute capability (PTX for that virtual
/// architecture; the driver finishes it to machine code and keeps its own cache).
fn arch_option(cc: (i32, i32)) -> Option<&'static str> {
    Some(match cc {
        (7, 0) => "compute_70",
        (7, 5) => "compute_75",
        (8, 0) => "compute_80",
        (8, 6) => "compute_86",
        (8, 9) => "compute_89",
        (9, 0) => "compute_90",
        (10, 0) => "compute_100",
        (12, 0) => "compute_120",
        _ => return None,
    })
}

/// The NVRTC options of every reelvec kernel for compute capability `cc`.
fn options(cc: (i32, i32)) -> CompileOptions {
    CompileOptions {
        arch: arch_option(cc),
        // Full-precision division and sqrt, no flush-to-zero and no contraction of a * b + c
        // into FMAs: the CPU twins round every operation, and the parity tests compare with
        // them (the kernels are memory-bound, so FMAs would buy no speed).
        fmad: Some(false),
        prec_div: Some(true),
        prec_sqrt: Some(true),
        ftz: Some(false),
        options: vec!["--std=c++17".to_string()],
        ..CompileOptions::default()
    }
}

/// PTX of `source` for compute capability `cc`: from the disk cache, or compiled and cached.
pub(crate) fn ptx_for(source: &KernelSource, cc: (i32, i32)) -> Result<Ptx, EngineError> {
    let opts = options(cc);
    let key = format!("{CACHE_VERSION}|{:?}|{:?}|{:?}|{}", opts.arch, opts.fmad, opts.options, source.source);
    let hash = xxhash_rust::xxh3::xxh3_64(key.as_bytes());
    let stem = source.name.trim_end_matches(".cu");
    let path = kernel_cache_dir().join(format!("{stem}-{hash:016x}-sm{}{}.ptx", cc.0, cc.1));
    if let Ok(text) = std::fs::read_to_string(&path) {
        if text.contains(".entry") {
            tracing::debug!(kernel = source.name, path = %path.display(), "kernel loaded from the disk cache");
            return Ok(Ptx::from_src(text));
        }
    }
    let started = std::time::Instant::now();
    let ptx = compile_fresh(source, cc)?;
    tracing::info!(
        kernel = source.name,
        seconds = started.elapsed().as_secs_f64(),
        "kernel compiled by NVRTC"
    );
    store(&path, &ptx.to_src());
    Ok(ptx)
}

/// Writes the cache entry atomically; failures are logged and otherwise ignored.
fn store(path: &std::path::Path, text: &str) {
    let result = (|| -> std::io::Result<()> {
        let dir = path.parent().ok_or_else(|| std::io::Error::other("cache path has no parent"))?;
        std::fs::create_dir_all(dir)?;
        let tmp = dir.join(format!(
            ".{}.{}.tmp",
            path.file_name().and_then(|n| n.to_str()).unwrap_or("k"),
            std::process::id()
        ));
        std::fs::write(&tmp, text)?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        tracing::warn!(path = %path.display(), "could not cache a compiled kernel: {e}");
    }
}

fn compile_error(name: &str, error: CompileError) -> EngineError {
    let log = match &error {
        CompileError::CompileError { log, .. } => log.to_string_lossy().into_owned(),
        other => format!("{other:?}"),
    };
    EngineError::KernelCompile { kernel: name.to_string(), log }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_dir_honours_the_override() {
        // Only reads the variable; the other tests do not depend on it.
        let dir = kernel_cache_dir();
        assert!(dir.ends_with("kernels") || std::env::var_os("REELVEC_KERNEL_CACHE").is_some());
    }

    const TINY: KernelSource = KernelSource {
        name: "tiny_test.cu",
        source: "extern \"C\" __global__ void tiny() {}",
        functions: &["tiny"],
    };

    #[test]
    fn a_missing_nvrtc_is_an_error_not_a_panic() {
        match compile_check(&TINY, (8, 0)) {
            Ok(ptx) => assert!(nvrtc_available() && ptx.contains(".entry tiny("), "{ptx}"),
            Err(e) => {
                assert!(!nvrtc_available(), "NVRTC loads but compiling failed: {e}");
                assert!(e.to_string().contains("libnvrtc.so.13"), "{e}");
            }
        }
    }

    #[test]
    fn a_listed_function_missing_from_the_ptx_is_refused() {
        if !nvrtc_available() {
            return reelvec_testkit::skip(reelvec_testkit::Need::Nvrtc, "NVRTC (libnvrtc.so.13) not found");
        }
        let wrong = KernelSource { functions: &["tiny", "absent"], ..TINY };
        let err = compile_check(&wrong, (9, 0)).unwrap_err().to_string();
        assert!(err.contains("absent"), "{err}");
    }

    #[test]
    fn known_architectures_map_to_virtual_targets() {
        assert_eq!(arch_option((9, 0)), Some("compute_90"));
        assert_eq!(arch_option((8, 0)), Some("compute_80"));
        assert_eq!(arch_option((1, 0)), None);
    }
}
