//! The OpenBLAS that ndarray-linalg's LAPACK calls (fold-in, PCA, EASE) run on: its thread count
//! ([`set_threads`]) and its single-precision matrix product ([`gemm`], for the full-softmax
//! kernel's products).
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

use ndarray::linalg::general_mat_mul;
use ndarray::{s, ArrayView2, ArrayViewMut2};

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

/// How OpenBLAS reads a row-major view: as stored (`N`) or transposed (`T`), with its leading
/// dimension; `None` when neither layout describes it (other strides, or a size past `c_int`).
fn layout(a: &ArrayView2<'_, f32>) -> Option<(c_int, c_int)> {
    let (rows, cols) = a.dim();
    let (rs, cs) = (a.strides()[0], a.strides()[1]);
    let ld = |s: isize, min: usize| c_int::try_from(s).ok().filter(|&l| l > 0 && l as usize >= min.max(1));
    if cs == 1 || cols <= 1 {
        let rs = if rows <= 1 { cols.max(1) as isize } else { rs };
        return ld(rs, cols).map(|l| (CBLAS_NO_TRANS, l));
    }
    if rs == 1 || rows <= 1 {
        let cs = if cols <= 1 { rows.max(1) as isize } else { cs };
        return ld(cs, rows).map(|l| (CBLAS_TRANS, l));
    }
    None
}

const CBLAS_ROW_MAJOR: c_int = 101;
const CBLAS_NO_TRANS: c_int = 111;
const CBLAS_TRANS: c_int = 112;

extern "C" {
    #[allow(clippy::too_many_arguments)] // the C signature
    fn cblas_sgemm(
        order: c_int,
        trans_a: c_int,
        trans_b: c_int,
        m: c_int,
        n: c_int,
        k: c_int,
        alpha: f32,
        a: *const f32,
        lda: c_int,
        b: *const f32,
        ldb: c_int,
        beta: f32,
        c: *mut f32,
        ldc: c_int,
    );
}

/// The inner dimension of one OpenBLAS call in [`gemm`]: no x86 OpenBLAS kernel blocks the inner
/// dimension of `sgemm` finer than this (their `GEMM_Q` is 256 or more), so a call never splits it.
pub const GEMM_INNER_CHUNK: usize = 128;

/// `c = alpha a b + beta c`, as ndarray's `general_mat_mul` (same shapes, same panic on a shape
/// mismatch, which is a caller's bug), through OpenBLAS's `sgemm` when every view is contiguous
/// along one axis (a row-major matrix or its transpose, positive strides) and `c` row-major;
/// otherwise through `general_mat_mul`. OpenBLAS's AVX-512 kernels run the small-inner-dimension
/// products of the full-softmax kernel (`V x V x k`) about twice as fast as matrixmultiply's AVX2
/// kernel.
///
/// **Determinism:** the inner dimension goes to OpenBLAS in fixed chunks of [`GEMM_INNER_CHUNK`]
/// (each chunk's product added to `c` in order). OpenBLAS threads a product by splitting the rows
/// and columns of `c`, and where it also blocks the inner dimension the blocks depend on its
/// thread count (measured on OpenBLAS 0.3.21: `S^T E` at V = 1,000, k = 20 changed 15,251 of
/// 20,000 elements between 1 and 2 threads); in chunks it never blocks, so every element is the
/// same sum in the same order for any OpenBLAS thread count (`tests/blas_gemm.rs`). The bits may
/// differ from `general_mat_mul`'s and between CPUs with different kernels.
pub fn gemm(
    alpha: f32,
    a: &ArrayView2<'_, f32>,
    b: &ArrayView2<'_, f32>,
    beta: f32,
    c: &mut ArrayViewMut2<'_, f32>,
) {
    let ((m, k), (k2, n)) = (a.dim(), b.dim());
    assert!(k == k2 && c.dim() == (m, n), "gemm: shapes {:?} x {:?} -> {:?}", a.dim(), b.dim(), c.dim());
    let dims = (c_int::try_from(m), c_int::try_from(n), c_int::try_from(k));
    let c_rows = c.strides()[0];
    let c_ok = (c.strides()[1] == 1 || n <= 1) && (m <= 1 || c_rows >= n.max(1) as isize);
    let ldc = c_int::try_from(if m <= 1 { n.max(1) as isize } else { c_rows });
    match (layout(a), layout(b), dims, ldc) {
        (Some(_), Some(_), (Ok(_), Ok(_), Ok(_)), Ok(ldc)) if c_ok && m > 0 && n > 0 => {
            if k == 0 {
                // No product: `c = beta c` (a zero `beta` clears `c`, NaNs included).
                c.mapv_inplace(|x| if beta == 0.0 { 0.0 } else { beta * x });
                return;
            }
            for (i, lo) in (0..k).step_by(GEMM_INNER_CHUNK).enumerate() {
                let hi = (lo + GEMM_INNER_CHUNK).min(k);
                let (a, b) = (a.slice(s![.., lo..hi]), b.slice(s![lo..hi, ..]));
                let (Some((ta, lda)), Some((tb, ldb))) = (layout(&a), layout(&b)) else {
                    unreachable!("a slice of a contiguous layout keeps it")
                };
                let beta = if i == 0 { beta } else { 1.0 };
                // SAFETY: the three views are valid for the reads and writes `cblas_sgemm` does
                // with these dimensions and leading dimensions (`layout` and `c_ok` checked that
                // every addressed element `row * ld + col` lies inside its view, strides
                // positive); `c` is borrowed mutably, so it overlaps neither `a` nor `b`. The
                // chunk's sizes fit `c_int` since the whole matrix's do.
                unsafe {
                    cblas_sgemm(
                        CBLAS_ROW_MAJOR,
                        ta,
                        tb,
                        m as c_int,
                        n as c_int,
                        (hi - lo) as c_int,
                        alpha,
                        a.as_ptr(),
                        lda,
                        b.as_ptr(),
                        ldb,
                        beta,
                        c.as_mut_ptr(),
                        ldc,
                    )
                }
            }
        }
        _ => general_mat_mul(alpha, a, b, beta, c),
    }
}
