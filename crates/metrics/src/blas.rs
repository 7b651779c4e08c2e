//! The thread count of the OpenBLAS that ndarray-linalg's LAPACK calls (fold-in, PCA, EASE) run
//! on.
//!
//! OpenBLAS starts its own worker threads when the library loads (one per core), and after
//! start-up and after every threaded call they spin (`sched_yield`) for about 2^28 cycles
//! before they sleep. In a process the user limited to `n` threads (`reelvec train --threads 1`,
//! `reelvec bench --threads 1`) that spinning is CPU time beside the fit: measured on a
//! 10-epoch `reelvec train --model sigmoid-mf --preset notebook --threads 1` (synthetic
//! ml-latest-small), the process's system time went from 0.09-0.11 s to 0.01-0.02 s once the
//! workers were stopped, and `perf` no longer finds `sched_yield`. [`set_threads`] limits
//! OpenBLAS to `n` threads and, at 1, stops its workers (every call then runs on the calling
//! thread).

use std::os::raw::c_int;

extern "C" {
    fn openblas_set_num_threads(n: c_int);
    fn openblas_get_num_threads() -> c_int;
    fn blas_thread_shutdown_() -> c_int;
}

/// Limits OpenBLAS to `n` threads (at least 1); at 1 its worker threads are stopped. Call it
/// before any LAPACK work starts (the CLI does, where it sizes rayon's pool): stopping the
/// workers while another thread runs a threaded BLAS call is not allowed.
pub fn set_threads(n: usize) {
    let n = c_int::try_from(n.max(1)).unwrap_or(c_int::MAX);
    // SAFETY: OpenBLAS's public C API, linked through `openblas_src` (lib.rs); setting the
    // count takes a plain int, and the shutdown only joins OpenBLAS's own idle workers (the
    // caller guarantees no BLAS call is in flight); later calls run single-threaded.
    unsafe {
        openblas_set_num_threads(n);
        if n == 1 {
            blas_thread_shutdown_();
        }
    }
}

/// The number of threads OpenBLAS uses for a call.
pub fn threads() -> usize {
    // SAFETY: OpenBLAS's public C API; reads an int.
    let n = unsafe { openblas_get_num_threads() };
    usize::try_from(n).unwrap_or(1)
}
