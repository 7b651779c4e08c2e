//! P1: the L-only cost and gradient against the dense M x M formulas on small random like
//! matrices, finite differences, the references (dense eigh vs subspace iteration), and Adam
//! reaching the reference.

#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use reelvec_models::cooc::{
    dense_costs, dense_grad, dense_reference, fit, subspace_reference, CoocConfig, CoocProblem, CoocScratch,
    LikeMatrix,
};

fn random_likes(users: usize, movies: usize, density: f64, seed: u64) -> LikeMatrix {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut pairs = Vec::new();
    for u in 0..users {
        for m in 0..movies {
            // Popular low-index movies, like real data.
            let p = density * (1.5 - m as f64 / movies as f64);
            if rng.random::<f64>() < p {
                pairs.push((u as u32, m as u32));
            }
        }
    }
    LikeMatrix::from_pairs(users, movies, &pairs).unwrap()
}

fn random_factors(m: usize, k: usize, seed: u64) -> Vec<f32> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    (0..m * k).map(|_| rng.random_range(-1.5f32..1.5)).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]
    #[test]
    fn sparse_cost_and_gradient_match_dense(
        users in 1usize..25, movies in 1usize..20, k in 1usize..5, density in 0.05f64..0.6, seed in any::<u64>(),
        mask in any::<bool>(),
    ) {
        let likes = random_likes(users, movies, density, seed);
        let x0 = likes.dense_x0();
        let problem = CoocProblem::new(likes);
        let v = random_factors(movies, k, seed ^ 1);
        let mut scratch = CoocScratch::default();
        let mut grad = vec![0.0f32; movies * k];
        let parts = problem.cost_and_grad(&v, k, mask, &mut scratch, Some(&mut grad));
        let dense = dense_costs(&x0, &v, movies, k);
        // X0 V is accumulated in f32, so the error scales with the unmasked cost (which bounds
        // every term of both costs here), not with the possibly tiny masked cost.
        let tol = |_: f64| 1e-5 * (1.0 + dense.unmasked.abs()) + 1e-9 * problem.x0_frobenius_sq();
        prop_assert!((parts.masked - dense.masked).abs() <= tol(dense.masked), "{parts:?} vs {dense:?}");
        prop_assert!((parts.unmasked - dense.unmasked).abs() <= tol(dense.unmasked), "{parts:?} vs {dense:?}");
        let mut residual = vec![0.0f32; movies * movies];
        let mut want = vec![0.0f32; movies * k];
        dense_grad(&x0, &v, movies, k, mask, &mut residual, &mut want);
        for (a, b) in grad.iter().zip(&want) {
            prop_assert!((a - b).abs() <= 1e-4 * (1.0 + b.abs()), "{a} vs {b}");
        }
    }
}

#[test]
fn gradient_matches_finite_differences() {
    let likes = random_likes(12, 9, 0.4, 3);
    let problem = CoocProblem::new(likes);
    let k = 3;
    let v = random_factors(9, k, 4);
    let mut scratch = CoocScratch::default();
    for mask in [true, false] {
        let mut grad = vec![0.0f32; v.len()];
        problem.cost_and_grad(&v, k, mask, &mut scratch, Some(&mut grad));
        for idx in 0..v.len() {
            let h = 1e-2f32;
            let mut vp = v.clone();
            vp[idx] += h;
            let up = problem.cost_and_grad(&vp, k, mask, &mut scratch, None).objective(mask);
            vp[idx] -= 2.0 * h;
            let down = problem.cost_and_grad(&vp, k, mask, &mut scratch, None).objective(mask);
            let fd = (up - down) / (2.0 * h as f64);
            let an = grad[idx] as f64;
            assert!((fd - an).abs() <= 1e-2 * (1.0 + an.abs()), "mask {mask} idx {idx}: {fd} vs {an}");
        }
    }
}

#[test]
fn reference_cost_is_the_eigen_tail_and_subspace_agrees() {
    let likes = random_likes(60, 40, 0.3, 11);
    let x0 = likes.dense_x0();
    let problem = CoocProblem::new(likes);
    let k = 4;
    let dense = dense_reference(&problem, k).unwrap();
    assert_eq!(dense.eigenvalues.len(), k);
    assert!(dense.eigenvalues.windows(2).all(|w| w[0] >= w[1]));
    // The formula ||X0||^2 - sum lambda^2 equals the unmasked cost of V_ref by the dense definition.
    let direct = dense_costs(&x0, &dense.factors, 40, k);
    assert!(
        (direct.unmasked - dense.unmasked_cost).abs() < 1e-3 * dense.unmasked_cost,
        "{direct:?} vs {}",
        dense.unmasked_cost
    );
    let sub = subspace_reference(&problem, k, 500, 1e-10, 7).unwrap();
    for (a, b) in dense.eigenvalues.iter().zip(&sub.eigenvalues) {
        assert!((a - b).abs() < 1e-6 * a.abs(), "{a} vs {b}");
    }
    assert!((dense.unmasked_cost - sub.unmasked_cost).abs() < 1e-6 * dense.unmasked_cost);
}

#[test]
fn adam_reaches_the_reference() {
    let likes = random_likes(80, 50, 0.3, 21);
    let problem = CoocProblem::new(likes);
    let k = 5;
    let reference = dense_reference(&problem, k).unwrap();
    // Unmasked: the reference is the exact optimum.
    let config = CoocConfig { dim: k, steps: 1500, mask_diagonal: false, ..CoocConfig::default() };
    let unmasked = fit(&problem, &config, 1, |_, _| {}).unwrap();
    let ratio = unmasked.final_cost().unmasked / reference.unmasked_cost;
    assert!((0.999..1.01).contains(&ratio), "unmasked ratio {ratio}");
    // Masked: at or below the reference.
    let masked = fit(&problem, &CoocConfig { mask_diagonal: true, ..config }, 1, |_, _| {}).unwrap();
    let ratio = masked.final_cost().masked / reference.unmasked_cost;
    assert!(ratio < 1.0, "masked ratio {ratio}");
    assert!(masked.costs[0].masked > masked.final_cost().masked);
}
