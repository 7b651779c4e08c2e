//! `blas::gemm`: the product of every layout OpenBLAS takes (and of the ones it falls back on)
//! against an f64 reference, and the same bits for 1, 2 and 4 OpenBLAS threads at the
//! full-softmax kernel's shapes (its own test binary: the thread count is process-wide).

#![allow(clippy::unwrap_used)]

use ndarray::{s, Array2, ArrayView2, ArrayViewMut2};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use reelvec_metrics::blas;

fn random(rows: usize, cols: usize, rng: &mut ChaCha8Rng) -> Array2<f32> {
    Array2::from_shape_fn((rows, cols), |_| rng.random_range(-1.0f32..1.0))
}

/// `alpha a b + beta c` in f64, element by element.
fn reference(
    alpha: f32,
    a: &ArrayView2<'_, f32>,
    b: &ArrayView2<'_, f32>,
    beta: f32,
    c: &Array2<f32>,
) -> Array2<f64> {
    Array2::from_shape_fn(c.dim(), |(i, j)| {
        let dot: f64 = (0..a.ncols()).map(|l| a[[i, l]] as f64 * b[[l, j]] as f64).sum();
        alpha as f64 * dot + if beta == 0.0 { 0.0 } else { beta as f64 * c[[i, j]] as f64 }
    })
}

fn check(
    alpha: f32,
    a: ArrayView2<'_, f32>,
    b: ArrayView2<'_, f32>,
    beta: f32,
    c0: &Array2<f32>,
    what: &str,
) {
    let want = reference(alpha, &a, &b, beta, c0);
    let mut c = c0.clone();
    blas::gemm(alpha, &a, &b, beta, &mut c.view_mut());
    let tol = 1e-5 * (a.ncols() as f64 + 1.0);
    for ((i, j), &w) in want.indexed_iter() {
        assert!((c[[i, j]] as f64 - w).abs() <= tol, "{what}: c[{i},{j}] = {} against {w}", c[[i, j]]);
    }
}

fn product_bits(a: &ArrayView2<'_, f32>, b: &ArrayView2<'_, f32>, c0: &Array2<f32>) -> Vec<u32> {
    let mut c = c0.clone();
    blas::gemm(1.0, a, b, 1.0, &mut c.view_mut());
    c.iter().map(|x| x.to_bits()).collect()
}

#[test]
fn gemm_matches_the_reference_in_every_layout_and_any_thread_count() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    for round in 0..24 {
        let (m, n, k) = (rng.random_range(1..40), rng.random_range(1..40), rng.random_range(0..40));
        let (alpha, beta) = ([1.0, 0.5, -2.0][round % 3], [0.0, 1.0, 0.25][round % 3]);
        let c0 = random(m, n, &mut rng);
        let (a, at) = (random(m, k, &mut rng), random(k, m, &mut rng));
        let (b, bt) = (random(k, n, &mut rng), random(n, k, &mut rng));
        check(alpha, a.view(), b.view(), beta, &c0, "N N");
        check(alpha, at.t(), b.view(), beta, &c0, "T N");
        check(alpha, a.view(), bt.t(), beta, &c0, "N T");
        check(alpha, at.t(), bt.t(), beta, &c0, "T T");
        // A leading dimension larger than the row: a column slice of a wider matrix.
        let wide = random(m, k + 5, &mut rng);
        check(alpha, wide.slice(s![.., 2..2 + k]), b.view(), beta, &c0, "N N, lda > k");
        // Every other column: no layout OpenBLAS takes, so general_mat_mul.
        let strided = random(m, 2 * k, &mut rng);
        check(alpha, strided.slice(s![.., ..;2]), b.view(), beta, &c0, "strided fallback");
        // Reversed rows (a negative stride): also the fallback.
        check(alpha, a.slice(s![..;-1, ..]), b.view(), beta, &c0.slice(s![..;-1, ..]).to_owned(), "reversed");
    }
    // `c` with a leading dimension larger than its row.
    let (a, b) = (random(7, 5, &mut rng), random(5, 3, &mut rng));
    let mut big = random(7, 6, &mut rng);
    let before = big.clone();
    let want = reference(1.0, &a.view(), &b.view(), 0.0, &before.slice(s![.., ..3]).to_owned());
    let mut cv: ArrayViewMut2<'_, f32> = big.slice_mut(s![.., ..3]);
    blas::gemm(1.0, &a.view(), &b.view(), 0.0, &mut cv);
    for ((i, j), &w) in want.indexed_iter() {
        assert!((big[[i, j]] as f64 - w).abs() <= 1e-5, "ldc > n: c[{i},{j}]");
    }
    assert_eq!(big.slice(s![.., 3..]), before.slice(s![.., 3..]), "columns past the view untouched");

    // The full-softmax kernel's products (P = E W^T, dW += S^T E, dE += S W at V = 1,000 and
    // 700, k = 20 and 8): the same bits for 1, 2 and 4 OpenBLAS threads.
    for (v, k) in [(1000, 20), (700, 8)] {
        let (e, w, sm) = (random(v, k, &mut rng), random(v, k, &mut rng), random(v, v, &mut rng));
        let (pv, gk) = (Array2::zeros((v, v)), random(v, k, &mut rng));
        let products = || {
            [
                product_bits(&e.view(), &w.t(), &pv),
                product_bits(&sm.t(), &e.view(), &gk),
                product_bits(&sm.view(), &w.view(), &gk),
            ]
        };
        blas::set_threads(1);
        let one = products();
        for threads in [2, 4] {
            blas::set_threads(threads);
            let other = products();
            for (i, (x, y)) in one.iter().zip(&other).enumerate() {
                let diff = x.iter().zip(y).filter(|(a, b)| a != b).count();
                assert!(
                    diff == 0,
                    "V = {v}: {threads} OpenBLAS threads changed the bits of product {i} ({diff} elements)"
                );
            }
        }
    }
    blas::set_threads(1);
}
