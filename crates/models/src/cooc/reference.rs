//! The P1 reference: the rank-k truncation of `X0`'s eigendecomposition keeping positive
//! eigenvalues, `V_ref = Q_k Lambda_k^{1/2}`. It minimises the unmasked cost
//! `||V V^T - X0||_F^2` over rank-k PSD `V V^T` (Eckart-Young for the PSD cone), with optimum
//! `||X0||_F^2 - sum_{kept} lambda^2`. The masked cost of any `V` is at most its unmasked cost,
//! so the masked optimum is at most the reference: a trained masked cost should come out at or
//! below it.
//!
//! Two ways to the eigenpairs:
//! - [`dense_reference`]: LAPACK `syevd` on the dense `X0` (ndarray-linalg); `O(M^2)` memory,
//!   for M up to a few thousand.
//! - [`subspace_reference`]: block subspace iteration with Rayleigh-Ritz on the operator
//!   `X0 Q = L^T (L Q) - D Q`, never forming `X0`; a block of `2k + 10` vectors captures every
//!   eigenvalue of magnitude at least the k-th positive one as long as fewer than `k + 10`
//!   negative eigenvalues exceed it in magnitude.

use ndarray::{Array2, Axis};
use ndarray_linalg::{Eigh, UPLO};
use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};
use rayon::prelude::*;

use super::{CoocProblem, LikeMatrix};
use crate::ModelError;

/// How the reference eigenpairs were obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReferenceMethod {
    /// Dense symmetric eigendecomposition.
    Dense,
    /// Block subspace iteration on the sparse operator.
    Subspace,
}

/// The reference solution.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Reference {
    /// Kept (positive) eigenvalues, largest first (at most k).
    pub eigenvalues: Vec<f64>,
    /// `V_ref` (M x k, row-major); columns past the kept eigenvalues are zero.
    #[serde(skip)]
    pub factors: Vec<f32>,
    /// `||X0||_F^2 - sum_kept lambda^2`: the exact unmasked optimum.
    pub unmasked_cost: f64,
    /// How it was computed.
    pub method: ReferenceMethod,
    /// Subspace iterations used (0 for dense).
    pub iterations: usize,
}

fn assemble(
    problem: &CoocProblem,
    k: usize,
    values: &[f64],
    vectors: &Array2<f64>,
    method: ReferenceMethod,
    iterations: usize,
) -> Reference {
    // `values` / columns of `vectors` in any order: keep the k largest positive.
    let mut order: Vec<usize> = (0..values.len()).filter(|&i| values[i] > 0.0).collect();
    order.sort_by(|&a, &b| values[b].total_cmp(&values[a]));
    order.truncate(k);
    let m = vectors.nrows();
    let mut factors = vec![0.0f32; m * k];
    let mut eigenvalues = Vec::with_capacity(order.len());
    for (c, &i) in order.iter().enumerate() {
        let s = values[i].sqrt();
        eigenvalues.push(values[i]);
        for r in 0..m {
            factors[r * k + c] = (vectors[[r, i]] * s) as f32;
        }
    }
    let unmasked_cost = problem.x0_frobenius_sq() - eigenvalues.iter().map(|l| l * l).sum::<f64>();
    Reference { eigenvalues, factors, unmasked_cost, method, iterations }
}

/// The reference by a dense eigendecomposition of `X0`.
pub fn dense_reference(problem: &CoocProblem, k: usize) -> Result<Reference, ModelError> {
    let m = problem.n_movies();
    let x0 = problem.likes().dense_x0();
    let a = Array2::from_shape_vec((m, m), x0.into_iter().map(f64::from).collect())
        .map_err(|e| ModelError::InvalidData(format!("dense X0: {e}")))?;
    let (values, vectors) =
        a.eigh(UPLO::Upper).map_err(|e| ModelError::InvalidData(format!("eigendecomposition of X0: {e}")))?;
    Ok(assemble(
        problem,
        k,
        values.as_slice().unwrap_or(&values.to_vec()),
        &vectors,
        ReferenceMethod::Dense,
        0,
    ))
}

/// `out = X0 q` for a block `q` (M x b, f64, row-major) through `L`.
fn x0_times_block(likes: &LikeMatrix, q: &Array2<f64>, lq: &mut Array2<f64>, out: &mut Array2<f64>) {
    let b = q.ncols();
    lq.axis_iter_mut(Axis(0)).into_par_iter().enumerate().for_each(|(u, mut row)| {
        row.fill(0.0);
        for &i in likes.user_likes(u) {
            row += &q.row(i as usize);
        }
    });
    out.axis_iter_mut(Axis(0)).into_par_iter().enumerate().for_each(|(i, mut row)| {
        let likers = likes.movie_likers(i);
        row.assign(&q.row(i));
        row *= -(likers.len() as f64);
        for &u in likers {
            row += &lq.row(u as usize);
        }
    });
    debug_assert_eq!(out.ncols(), b);
}

/// Orthonormalises the columns of `q` in place (modified Gram-Schmidt, twice).
fn orthonormalise(q: &mut Array2<f64>) {
    let b = q.ncols();
    for _ in 0..2 {
        for j in 0..b {
            for p in 0..j {
                let d = q.column(p).dot(&q.column(j));
                let col_p = q.column(p).to_owned();
                q.column_mut(j).scaled_add(-d, &col_p);
            }
            let n = q.column(j).dot(&q.column(j)).sqrt();
            if n > 1e-300 {
                q.column_mut(j).mapv_inplace(|x| x / n);
            }
        }
    }
}

/// The reference by block subspace iteration on `X0` (never formed), stopping when the top-k
/// positive Ritz values change by less than `tol` (relative) between Rayleigh-Ritz steps or
/// after `max_iter` iterations.
pub fn subspace_reference(
    problem: &CoocProblem,
    k: usize,
    max_iter: usize,
    tol: f64,
    seed: u64,
) -> Result<Reference, ModelError> {
    let likes = problem.likes();
    let (u, m) = (likes.n_users(), likes.n_movies());
    let b = (2 * k + 10).min(m);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut q = Array2::from_shape_fn((m, b), |_| StandardNormal.sample(&mut rng));
    orthonormalise(&mut q);
    let mut lq = Array2::<f64>::zeros((u, b));
    let mut z = Array2::<f64>::zeros((m, b));
    let mut previous: Vec<f64> = Vec::new();
    let mut iterations = 0;
    loop {
        iterations += 1;
        x0_times_block(likes, &q, &mut lq, &mut z);
        // Rayleigh-Ritz: T = Q^T X0 Q, rotate Q to the Ritz vectors of X0 Q's span.
        let t = q.t().dot(&z);
        let t = (&t + &t.t()) * 0.5;
        let (theta, s) =
            t.eigh(UPLO::Upper).map_err(|e| ModelError::InvalidData(format!("Rayleigh-Ritz eigh: {e}")))?;
        let mut top: Vec<f64> = theta.iter().copied().filter(|&x| x > 0.0).collect();
        top.sort_by(|a, c| c.total_cmp(a));
        top.truncate(k);
        let converged = previous.len() == top.len()
            && top.iter().zip(&previous).all(|(a, p)| (a - p).abs() <= tol * a.abs().max(1e-300));
        if converged || iterations >= max_iter {
            let ritz = q.dot(&s);
            let values: Vec<f64> = theta.to_vec();
            return Ok(assemble(problem, k, &values, &ritz, ReferenceMethod::Subspace, iterations));
        }
        previous = top;
        // Power step on the rotated basis: Q <- orth(X0 Q S).
        q = z.dot(&s);
        orthonormalise(&mut q);
    }
}
