//! `blas::set_threads`: OpenBLAS follows the count, and LAPACK keeps working after its workers
//! were stopped at 1 thread and after they come back at 2 (its own test binary: stopping the
//! workers must not race another test's LAPACK call).

#![allow(clippy::unwrap_used)]

use ndarray::array;
use ndarray_linalg::Cholesky;
use ndarray_linalg::UPLO;
use reelvec_metrics::blas;

fn cholesky_works() {
    let a = array![[4.0f64, 2.0], [2.0, 3.0]];
    let l = a.cholesky(UPLO::Lower).unwrap();
    let back = l.dot(&l.t());
    assert!((&back - &a).iter().all(|x| x.abs() < 1e-12), "{back}");
}

#[test]
fn openblas_follows_the_thread_count_and_lapack_keeps_working() {
    cholesky_works();
    blas::set_threads(1);
    assert_eq!(blas::threads(), 1);
    cholesky_works();
    blas::set_threads(2);
    assert_eq!(blas::threads(), 2);
    cholesky_works();
    blas::set_threads(0);
    assert_eq!(blas::threads(), 1, "0 threads means 1");
}
