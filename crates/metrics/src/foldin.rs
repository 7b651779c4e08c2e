//! Serving a user who is not in the training data, without retraining: fold-in.
//!
//! # Rating models (ridge regression with the movie side fixed)
//! Given the rated movies' factors `q_i`, biases `c_i` and a constant `offset`, the new user's
//! vector `p` and bias `b` minimise
//! `sum_i (t_i - offset - c_i - b - p . q_i)^2 + lambda |p|^2 + bias_lambda b^2`.
//! With `X = [Q_rated | 1]` and `y_i = t_i - offset - c_i` the normal equations are
//! `(X^T X + diag(lambda, .., lambda, bias_lambda)) [p; b] = X^T y`, solved in f64 by LU
//! (ndarray-linalg `solve`). The bias is regularised only lightly (default `bias_lambda` 1e-3,
//! enough to keep the system solvable when every rating is the same movie) because it is the one
//! quantity a handful of ratings pins down well: how generous this user is. Without
//! `with_user_bias` the last column is dropped (for models with no user bias, P4).
//!
//! # Nonlinear links
//! P2 predicts `sigmoid_range(z, 0, 5.5)` and P3 `σ(z)`. [`fold_in_user_with_link`] takes ratings
//! in the link's output space, starts from the ridge solution on the linearised targets
//! `g^-1(r)` (clamped inside the range) and then takes Gauss-Newton steps on
//! `sum_i (r_i - g(z_i))^2 + penalties`: with `J_i = g'(z_i) x_i` and `e_i = r_i - g(z_i)`,
//! `(J^T J + D) delta = J^T e - D theta`.
//!
//! # Item2vec
//! [`fold_in_watched`] averages the watched movies' vectors and ranks every other movie by cosine
//! similarity to that mean.

use ndarray::{Array1, Array2, ArrayView1, ArrayView2};
use ndarray_linalg::Solve;

use crate::error::{check_index, check_len, MetricsError, Result};
use crate::similarity::{mean_of_rows, nearest_to_vector};
use crate::topn::ScoreLink;

/// Fold-in settings.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FoldInConfig {
    /// Ridge penalty on the user vector.
    pub lambda: f32,
    /// Solve for a user bias too.
    pub with_user_bias: bool,
    /// Penalty on the user bias (light).
    pub bias_lambda: f32,
    /// Gauss-Newton steps after the linearised start ([`fold_in_user_with_link`] only).
    pub gauss_newton_steps: usize,
}

impl Default for FoldInConfig {
    fn default() -> Self {
        FoldInConfig { lambda: 0.1, with_user_bias: true, bias_lambda: 1e-3, gauss_newton_steps: 10 }
    }
}

/// A folded-in user.
#[derive(Debug, Clone, PartialEq)]
pub struct FoldIn {
    /// The user's factor vector (length k).
    pub vector: Array1<f32>,
    /// The user's bias (0 without `with_user_bias`).
    pub bias: f32,
}

impl FoldIn {
    /// The raw score `offset + b + c_j + p . q_j` of movie j (before any link).
    pub fn raw_score(
        &self,
        item_factors: ArrayView2<'_, f32>,
        item_bias: Option<ArrayView1<'_, f32>>,
        offset: f32,
        item: u32,
    ) -> f32 {
        let j = item as usize;
        offset + self.bias + item_bias.map_or(0.0, |c| c[j]) + self.vector.dot(&item_factors.row(j))
    }
}

/// Checks the inputs and builds the design matrix `X` (n x (k [+ 1])) and `base_i = offset + c_i`.
fn design(
    item_factors: ArrayView2<'_, f32>,
    item_bias: Option<ArrayView1<'_, f32>>,
    offset: f32,
    rated: &[(u32, f32)],
    config: &FoldInConfig,
) -> Result<(Array2<f64>, Array1<f64>)> {
    if rated.is_empty() {
        return Err(MetricsError::Empty { what: "fold-in ratings" });
    }
    if let Some(c) = item_bias {
        check_len("fold_in: item bias length", item_factors.nrows(), c.len())?;
    }
    if !(config.lambda >= 0.0 && config.bias_lambda >= 0.0) {
        return Err(MetricsError::InvalidParameter {
            name: "lambda",
            value: format!("{} / {}", config.lambda, config.bias_lambda),
            reason: "penalties must be non-negative",
        });
    }
    let k = item_factors.ncols();
    let width = if config.with_user_bias { k + 1 } else { k };
    let mut x = Array2::<f64>::zeros((rated.len(), width));
    let mut base = Array1::<f64>::zeros(rated.len());
    for (row, &(movie, _)) in rated.iter().enumerate() {
        check_index("fold_in movie", movie as usize, item_factors.nrows())?;
        for (c, &v) in item_factors.row(movie as usize).iter().enumerate() {
            x[[row, c]] = v as f64;
        }
        if config.with_user_bias {
            x[[row, k]] = 1.0;
        }
        base[row] = offset as f64 + item_bias.map_or(0.0, |c| c[movie as usize] as f64);
    }
    Ok((x, base))
}

/// The penalty diagonal `D`.
fn penalties(width: usize, config: &FoldInConfig) -> Array1<f64> {
    let k = if config.with_user_bias { width - 1 } else { width };
    Array1::from_shape_fn(width, |c| if c < k { config.lambda as f64 } else { config.bias_lambda as f64 })
}

/// Solves `(A^T A + diag(d)) theta = rhs`.
fn solve_normal(a: &Array2<f64>, d: &Array1<f64>, rhs: &Array1<f64>) -> Result<Array1<f64>> {
    let mut gram = a.t().dot(a);
    for (c, &v) in d.iter().enumerate() {
        gram[[c, c]] += v;
    }
    gram.solve(rhs).map_err(|source| MetricsError::Linalg { context: "fold-in normal equations", source })
}

fn to_fold_in(theta: &Array1<f64>, k: usize, with_bias: bool) -> FoldIn {
    FoldIn {
        vector: theta.slice(ndarray::s![..k]).mapv(|v| v as f32),
        bias: if with_bias { theta[k] as f32 } else { 0.0 },
    }
}

/// Ridge fold-in with targets in the model's linear score space (see the module docs).
pub fn fold_in_user(
    item_factors: ArrayView2<'_, f32>,
    item_bias: Option<ArrayView1<'_, f32>>,
    offset: f32,
    rated: &[(u32, f32)],
    config: &FoldInConfig,
) -> Result<FoldIn> {
    let (x, base) = design(item_factors, item_bias, offset, rated, config)?;
    let y: Array1<f64> = rated.iter().zip(base.iter()).map(|(&(_, t), &b)| t as f64 - b).collect();
    let theta = solve_normal(&x, &penalties(x.ncols(), config), &x.t().dot(&y))?;
    Ok(to_fold_in(&theta, item_factors.ncols(), config.with_user_bias))
}

impl ScoreLink {
    /// `g^-1(r)`, clamped so that `g^-1` stays finite: the sigmoid's argument is taken at most
    /// 1e-3 of the range away from either end.
    pub fn inverse(self, r: f32) -> f32 {
        let logit = |u: f32| {
            let u = u.clamp(1e-3, 1.0 - 1e-3);
            (u / (1.0 - u)).ln()
        };
        match self {
            ScoreLink::Identity => r,
            ScoreLink::Sigmoid => logit(r),
            ScoreLink::SigmoidRange { lo, hi } => logit((r - lo) / (hi - lo)),
        }
    }

    /// `g'(x)`.
    pub fn derivative(self, x: f32) -> f32 {
        let s = 1.0 / (1.0 + (-x).exp());
        match self {
            ScoreLink::Identity => 1.0,
            ScoreLink::Sigmoid => s * (1.0 - s),
            ScoreLink::SigmoidRange { lo, hi } => s * (1.0 - s) * (hi - lo),
        }
    }
}

/// Fold-in for a model whose prediction is `link(offset + b + c_i + p . q_i)`, with ratings given
/// in the link's output space (stars for P2, scaled ratings for P3). See the module docs.
pub fn fold_in_user_with_link(
    item_factors: ArrayView2<'_, f32>,
    item_bias: Option<ArrayView1<'_, f32>>,
    offset: f32,
    rated: &[(u32, f32)],
    link: ScoreLink,
    config: &FoldInConfig,
) -> Result<FoldIn> {
    let linearised: Vec<(u32, f32)> = rated.iter().map(|&(j, r)| (j, link.inverse(r))).collect();
    let start = fold_in_user(item_factors, item_bias, offset, &linearised, config)?;
    if link == ScoreLink::Identity {
        return Ok(start);
    }
    let (x, base) = design(item_factors, item_bias, offset, rated, config)?;
    let k = item_factors.ncols();
    let d = penalties(x.ncols(), config);
    let mut theta: Array1<f64> = start.vector.iter().map(|&v| v as f64).collect();
    if config.with_user_bias {
        theta = ndarray::concatenate![ndarray::Axis(0), theta, Array1::from_elem(1, start.bias as f64)];
    }
    for _ in 0..config.gauss_newton_steps {
        let z = x.dot(&theta) + &base;
        let mut jacobian = x.clone();
        let mut residual = Array1::<f64>::zeros(rated.len());
        for (row, &(_, r)) in rated.iter().enumerate() {
            let zi = z[row] as f32;
            let slope = link.derivative(zi) as f64;
            jacobian.row_mut(row).mapv_inplace(|v| v * slope);
            residual[row] = r as f64 - link.apply(zi) as f64;
        }
        let rhs = jacobian.t().dot(&residual) - &d * &theta;
        let step = solve_normal(&jacobian, &d, &rhs)?;
        theta += &step;
        if step.iter().all(|s| s.abs() < 1e-7) {
            break;
        }
    }
    Ok(to_fold_in(&theta, k, config.with_user_bias))
}

/// An item2vec fold-in: the profile vector and the movies ranked by cosine to it.
#[derive(Debug, Clone, PartialEq)]
pub struct WatchedProfile {
    /// Mean of the watched movies' vectors.
    pub profile: Array1<f32>,
    /// `(movie, cosine)`, best first, watched movies excluded.
    pub ranked: Vec<(u32, f32)>,
}

/// Item2vec fold-in: the mean of the watched movies' vectors, and the `k` other movies most
/// cosine-similar to it (watched movies excluded), best first.
pub fn fold_in_watched(embeddings: ArrayView2<'_, f32>, watched: &[u32], k: usize) -> Result<WatchedProfile> {
    let profile = mean_of_rows(embeddings, watched)?;
    let mut excluded = watched.to_vec();
    excluded.sort_unstable();
    excluded.dedup();
    let ranked = nearest_to_vector(embeddings, profile.view(), k, &excluded)?;
    Ok(WatchedProfile { profile, ranked })
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_abs_diff_eq;
    use ndarray::array;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;
    use rand_distr::{Distribution, Normal};

    #[test]
    fn ridge_by_hand() {
        // k = 1, q = (1, 2), targets (2, 4), no bias: p = sum q t / (sum q^2 + lambda).
        let q = array![[1.0f32], [2.0]];
        let rated = [(0, 2.0), (1, 4.0)];
        let exact = FoldInConfig { lambda: 0.0, with_user_bias: false, ..FoldInConfig::default() };
        assert_abs_diff_eq!(
            fold_in_user(q.view(), None, 0.0, &rated, &exact).unwrap().vector[0],
            2.0,
            epsilon = 1e-6
        );
        let ridge = FoldInConfig { lambda: 1.0, ..exact };
        let fit = fold_in_user(q.view(), None, 0.0, &rated, &ridge).unwrap();
        assert_abs_diff_eq!(fit.vector[0], 10.0 / 6.0, epsilon = 1e-6);
        assert_eq!(fit.bias, 0.0);
    }

    #[test]
    fn bias_offset_and_movie_bias_are_recovered_exactly() {
        // t = offset + c_i + b + p q_i with offset 3, c = (0.5, -0.5, 0), b = -1, p = 2.
        let q = array![[1.0f32], [2.0], [3.0]];
        let c = array![0.5f32, -0.5, 0.0];
        let rated: Vec<(u32, f32)> = (0..3).map(|i| (i as u32, 3.0 + c[i] - 1.0 + 2.0 * q[[i, 0]])).collect();
        let config = FoldInConfig { lambda: 0.0, bias_lambda: 0.0, ..FoldInConfig::default() };
        let fit = fold_in_user(q.view(), Some(c.view()), 3.0, &rated, &config).unwrap();
        assert_abs_diff_eq!(fit.vector[0], 2.0, epsilon = 1e-5);
        assert_abs_diff_eq!(fit.bias, -1.0, epsilon = 1e-5);
        assert_abs_diff_eq!(fit.raw_score(q.view(), Some(c.view()), 3.0, 1), rated[1].1, epsilon = 1e-5);
        assert!(fold_in_user(q.view(), None, 0.0, &[], &config).is_err());
        assert!(fold_in_user(q.view(), None, 0.0, &[(3, 1.0)], &config).is_err());
    }

    #[test]
    fn link_inverse_and_derivative_by_hand() {
        let link = ScoreLink::SigmoidRange { lo: 0.0, hi: 5.5 };
        assert_abs_diff_eq!(link.inverse(2.75), 0.0, epsilon = 1e-6);
        assert_abs_diff_eq!(link.apply(link.inverse(4.0)), 4.0, epsilon = 1e-5);
        assert!(link.inverse(5.5).is_finite() && link.inverse(0.0).is_finite());
        assert_abs_diff_eq!(link.derivative(0.0), 0.25 * 5.5, epsilon = 1e-6);
        // Finite difference of the sigmoid link.
        let h = 1e-3f32;
        let fd = (ScoreLink::Sigmoid.apply(0.7 + h) - ScoreLink::Sigmoid.apply(0.7 - h)) / (2.0 * h);
        assert_abs_diff_eq!(ScoreLink::Sigmoid.derivative(0.7), fd, epsilon = 1e-4);
    }

    #[test]
    fn gauss_newton_recovers_a_user_through_the_sigmoid_range_link() {
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let normal = Normal::new(0.0f32, 1.0).unwrap();
        let q = Array2::from_shape_fn((30, 3), |_| normal.sample(&mut rng));
        let c = Array1::from_shape_fn(30, |_| 0.3 * normal.sample(&mut rng));
        let (p, b) = (array![0.4f32, -0.3, 0.2], 0.25f32);
        let link = ScoreLink::SigmoidRange { lo: 0.0, hi: 5.5 };
        let rated: Vec<(u32, f32)> =
            (0..12u32).map(|j| (j, link.apply(b + c[j as usize] + p.dot(&q.row(j as usize))))).collect();
        let config = FoldInConfig { lambda: 1e-6, bias_lambda: 1e-6, ..FoldInConfig::default() };
        let fit = fold_in_user_with_link(q.view(), Some(c.view()), 0.0, &rated, link, &config).unwrap();
        for (a, e) in fit.vector.iter().zip(p.iter()) {
            assert_abs_diff_eq!(*a, *e, epsilon = 1e-3);
        }
        assert_abs_diff_eq!(fit.bias, b, epsilon = 1e-3);
    }

    /// On a synthetic low-rank rating matrix, folding a user in from 10 ratings predicts the user's
    /// other ratings better than the movie-mean baseline.
    #[test]
    fn fold_in_beats_the_movie_mean_baseline_on_low_rank_data() {
        let mut rng = ChaCha8Rng::seed_from_u64(21);
        let normal = Normal::new(0.0f32, 1.0).unwrap();
        let (n_users, n_items, k, global) = (40usize, 200usize, 3usize, 3.5f32);
        let q = Array2::from_shape_fn((n_items, k), |_| normal.sample(&mut rng));
        let c = Array1::from_shape_fn(n_items, |_| 0.5 * normal.sample(&mut rng));
        let config = FoldInConfig { lambda: 1.0, ..FoldInConfig::default() };
        let (mut fold_sq, mut base_sq, mut count) = (0f64, 0f64, 0usize);
        for _ in 0..n_users {
            let p = Array1::from_shape_fn(k, |_| 0.6 * normal.sample(&mut rng));
            let b = 0.4 * normal.sample(&mut rng);
            let ratings: Vec<f32> = (0..n_items)
                .map(|j| global + b + c[j] + p.dot(&q.row(j)) + 0.2 * normal.sample(&mut rng))
                .collect();
            let rated: Vec<(u32, f32)> = (0..10u32).map(|j| (j * 7, ratings[j as usize * 7])).collect();
            let fit = fold_in_user(q.view(), Some(c.view()), global, &rated, &config).unwrap();
            for j in (0..n_items as u32).filter(|j| j % 7 != 0 || *j >= 70) {
                let truth = ratings[j as usize];
                fold_sq += (fit.raw_score(q.view(), Some(c.view()), global, j) - truth).powi(2) as f64;
                base_sq += (global + c[j as usize] - truth).powi(2) as f64;
                count += 1;
            }
        }
        let (fold_rmse, base_rmse) = ((fold_sq / count as f64).sqrt(), (base_sq / count as f64).sqrt());
        eprintln!("fold-in RMSE {fold_rmse:.4}, movie-mean RMSE {base_rmse:.4}");
        assert!(fold_rmse < 0.75 * base_rmse, "fold-in RMSE {fold_rmse:.3} vs movie-mean {base_rmse:.3}");
    }

    #[test]
    fn item2vec_fold_in_by_hand() {
        // Watched 0 = (1, 0) and 1 = (0, 1), with 1 listed twice: mean (1/3, 2/3). The others
        // rank by cosine with it: 2 = (1, 1), then 4 = (2, 0.5), then 3 = (1, -1).
        let e = array![[1.0f32, 0.0], [0.0, 1.0], [1.0, 1.0], [1.0, -1.0], [2.0, 0.5]];
        let WatchedProfile { profile, ranked } = fold_in_watched(e.view(), &[1, 0, 1], 3).unwrap();
        assert_eq!(profile, array![1.0f32 / 3.0, 2.0 / 3.0]);
        let norm_p = (5.0f32 / 9.0).sqrt();
        let cos =
            |v: [f32; 2]| (v[0] / 3.0 + 2.0 * v[1] / 3.0) / (norm_p * (v[0] * v[0] + v[1] * v[1]).sqrt());
        let expected = [(2u32, cos([1.0, 1.0])), (4, cos([2.0, 0.5])), (3, cos([1.0, -1.0]))];
        assert_eq!(ranked.len(), 3);
        for ((j, s), (ej, es)) in ranked.iter().zip(expected.iter()) {
            assert_eq!(j, ej);
            assert_abs_diff_eq!(*s, *es, epsilon = 1e-6);
        }
    }
}
