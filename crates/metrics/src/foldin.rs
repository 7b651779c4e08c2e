//! Serving a user who is not in the training data, without retraining: fold-in.
//!
//! # Rating models (ridge regression with the movie side fixed)
//! Given the rated movies' factors `q_i`, biases `c_i`, a constant `offset` and a prior user
//! `(p0, b0)` (the mean training user, [`FoldIn::mean_user`]; zero without one), the new user's
//! vector `p` and bias `b` minimise
//! `sum_i (t_i - offset - c_i - b - p . q_i)^2 + lambda |p - p0|^2 + bias_lambda (b - b0)^2`.
//! Writing `p = p0 + d`, `b = b0 + e` this is a plain ridge in `(d, e)`: with `X = [Q_rated | 1]`
//! and `y_i = t_i - offset - c_i - b0 - p0 . q_i` the normal equations are
//! `(X^T X + diag(lambda, .., lambda, bias_lambda)) [d; e] = X^T y`, solved in f64 by LU
//! (ndarray-linalg `solve`). Without `with_user_bias` the last column is dropped (for models with
//! no user bias, P4).
//!
//! Both penalties shrink toward the prior, and both need to be real: a handful of ratings pins
//! down neither k free factors nor the user's generosity (on ml-100k, a user's first ten
//! ratings are systematically kinder or harsher than their later ones, so even the movie means
//! plus the user's mean offset over those ten predict the rest worse than the movie means
//! alone). See [`DEFAULT_LAMBDA`] and [`DEFAULT_BIAS_LAMBDA`] for the measurements.
//!
//! # Nonlinear links
//! P2 predicts `sigmoid_range(z, 0, 5.5)` and P3 `σ(z)`. [`fold_in_user_with_link`] takes ratings
//! in the link's output space, starts from the ridge solution on the linearised targets
//! `g^-1(r)` (clamped inside the range) and then takes Gauss-Newton steps on
//! `sum_i (r_i - g(z_i))^2 + penalties`: with `J_i = g'(z_i) x_i` and `e_i = r_i - g(z_i)`,
//! `(J^T J + D) delta = J^T e - D theta` (`theta = (d, e)`, the offsets from the prior). The
//! penalties are in the link's output units (stars² for P2, scaled ratings² for P3).
//!
//! # Item2vec
//! [`fold_in_watched`] averages the watched movies' vectors and ranks every other movie by cosine
//! similarity to that mean.

use ndarray::{Array1, Array2, ArrayView1, ArrayView2};
use ndarray_linalg::Solve;

use crate::error::{check_index, check_len, MetricsError, Result};
use crate::similarity::{mean_of_rows, nearest_to_vector};
use crate::topn::ScoreLink;

/// The default ridge penalty on a folded-in user's vector (toward the prior), shared by every
/// caller (the CLI's `reelvec recommend --rated` uses [`FoldInConfig::default`]).
///
/// A handful of ratings cannot pin down k free factors: a small penalty (0.1, the old default)
/// overfits them. On held-out synthetic users folded into P2 from 10 ratings, the RMSE on their
/// other ratings is 1.08 at 0.1, 0.79 at 1, 0.755 at 3, 0.76 at 10 and 0.78 at 30 (training
/// movie means: 0.90). On 100 held-out real ml-100k users folded in from their first 10 ratings
/// (`crates/cli/tests/foldin_ml100k.rs`, prior = mean user, `bias_lambda` 10): 1.13 at 0.1, 0.979
/// at 3, 0.981 at 10 (movie means: 1.004).
pub const DEFAULT_LAMBDA: f32 = 3.0;

/// The default penalty on a folded-in user's bias (toward the prior's bias).
///
/// On the 100 held-out ml-100k users above (lambda 3, prior = mean user) the RMSE is 1.032 at
/// 1e-3 (the old default, nearly unregularised), 0.997 at 3, 0.979 at 10, 0.978 at 30 and 0.984
/// at 100 (movie means: 1.004); shrinking toward zero instead of the mean user's bias gives 0.988
/// at 10.
pub const DEFAULT_BIAS_LAMBDA: f32 = 10.0;

/// Fold-in settings.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FoldInConfig {
    /// Ridge penalty on the user vector (default [`DEFAULT_LAMBDA`]).
    pub lambda: f32,
    /// Solve for a user bias too.
    pub with_user_bias: bool,
    /// Penalty on the user bias (default [`DEFAULT_BIAS_LAMBDA`]).
    pub bias_lambda: f32,
    /// Gauss-Newton steps after the linearised start ([`fold_in_user_with_link`] only).
    pub gauss_newton_steps: usize,
}

impl Default for FoldInConfig {
    fn default() -> Self {
        FoldInConfig {
            lambda: DEFAULT_LAMBDA,
            with_user_bias: true,
            bias_lambda: DEFAULT_BIAS_LAMBDA,
            gauss_newton_steps: 10,
        }
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
    /// The mean training user: the mean row of `user_factors` and the mean of `user_bias` (0
    /// without one), the prior a new user is shrunk toward.
    pub fn mean_user(
        user_factors: ArrayView2<'_, f32>,
        user_bias: Option<ArrayView1<'_, f32>>,
    ) -> Result<Self> {
        let vector =
            user_factors.mean_axis(ndarray::Axis(0)).ok_or(MetricsError::Empty { what: "user factors" })?;
        let bias = user_bias.and_then(|b| b.mean()).unwrap_or(0.0);
        Ok(FoldIn { vector, bias })
    }

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

/// Checks the inputs and builds the design matrix `X` (n x (k [+ 1])) and the prior user's raw
/// scores `base_i = offset + c_i + b0 + p0 . q_i`.
fn design(
    item_factors: ArrayView2<'_, f32>,
    item_bias: Option<ArrayView1<'_, f32>>,
    offset: f32,
    rated: &[(u32, f32)],
    prior: Option<&FoldIn>,
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
    if let Some(p) = prior {
        check_len("fold_in: prior vector length", k, p.vector.len())?;
    }
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
        let prior_score = prior.map_or(0.0, |p| {
            let bias = if config.with_user_bias { p.bias } else { 0.0 };
            f64::from(bias + p.vector.dot(&item_factors.row(movie as usize)))
        });
        base[row] = offset as f64 + item_bias.map_or(0.0, |c| c[movie as usize] as f64) + prior_score;
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

/// The user `prior + theta` (theta = the offsets `(d, e)` from the prior).
fn to_fold_in(theta: &Array1<f64>, k: usize, prior: Option<&FoldIn>, with_bias: bool) -> FoldIn {
    let mut vector = theta.slice(ndarray::s![..k]).mapv(|v| v as f32);
    let mut bias = if with_bias { theta[k] as f32 } else { 0.0 };
    if let Some(p) = prior {
        vector += &p.vector;
        bias += if with_bias { p.bias } else { 0.0 };
    }
    FoldIn { vector, bias }
}

/// The ridge offsets from the prior for targets `t` in the linear score space.
fn ridge_offsets(
    x: &Array2<f64>,
    base: &Array1<f64>,
    targets: &[f64],
    config: &FoldInConfig,
) -> Result<Array1<f64>> {
    let y: Array1<f64> = targets.iter().zip(base.iter()).map(|(&t, &b)| t - b).collect();
    solve_normal(x, &penalties(x.ncols(), config), &x.t().dot(&y))
}

/// Ridge fold-in with targets in the model's linear score space, shrunk toward `prior` (zero
/// without one; see the module docs).
pub fn fold_in_user(
    item_factors: ArrayView2<'_, f32>,
    item_bias: Option<ArrayView1<'_, f32>>,
    offset: f32,
    rated: &[(u32, f32)],
    prior: Option<&FoldIn>,
    config: &FoldInConfig,
) -> Result<FoldIn> {
    let (x, base) = design(item_factors, item_bias, offset, rated, prior, config)?;
    let targets: Vec<f64> = rated.iter().map(|&(_, t)| f64::from(t)).collect();
    let theta = ridge_offsets(&x, &base, &targets, config)?;
    Ok(to_fold_in(&theta, item_factors.ncols(), prior, config.with_user_bias))
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
/// in the link's output space (stars for P2, scaled ratings for P3), shrunk toward `prior` (zero
/// without one). See the module docs.
pub fn fold_in_user_with_link(
    item_factors: ArrayView2<'_, f32>,
    item_bias: Option<ArrayView1<'_, f32>>,
    offset: f32,
    rated: &[(u32, f32)],
    prior: Option<&FoldIn>,
    link: ScoreLink,
    config: &FoldInConfig,
) -> Result<FoldIn> {
    let (x, base) = design(item_factors, item_bias, offset, rated, prior, config)?;
    let k = item_factors.ncols();
    // Start: the ridge on the linearised targets g^-1(r).
    let linearised: Vec<f64> = rated.iter().map(|&(_, r)| f64::from(link.inverse(r))).collect();
    let mut theta = ridge_offsets(&x, &base, &linearised, config)?;
    if link == ScoreLink::Identity {
        return Ok(to_fold_in(&theta, k, prior, config.with_user_bias));
    }
    let d = penalties(x.ncols(), config);
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
    Ok(to_fold_in(&theta, k, prior, config.with_user_bias))
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
            fold_in_user(q.view(), None, 0.0, &rated, None, &exact).unwrap().vector[0],
            2.0,
            epsilon = 1e-6
        );
        let ridge = FoldInConfig { lambda: 1.0, ..exact };
        let fit = fold_in_user(q.view(), None, 0.0, &rated, None, &ridge).unwrap();
        assert_abs_diff_eq!(fit.vector[0], 10.0 / 6.0, epsilon = 1e-6);
        assert_eq!(fit.bias, 0.0);
    }

    #[test]
    fn ridge_shrinks_toward_the_prior_by_hand() {
        // k = 1, q = (1, 2), targets (2, 4), no bias, lambda 1, prior p0 = 1:
        // (sum q^2 + 1) p = sum q t + 1 -> p = 11 / 6.
        let q = array![[1.0f32], [2.0]];
        let rated = [(0, 2.0), (1, 4.0)];
        let config = FoldInConfig { lambda: 1.0, with_user_bias: false, ..FoldInConfig::default() };
        let prior = FoldIn { vector: array![1.0f32], bias: 7.0 };
        let fit = fold_in_user(q.view(), None, 0.0, &rated, Some(&prior), &config).unwrap();
        assert_abs_diff_eq!(fit.vector[0], 11.0 / 6.0, epsilon = 1e-6);
        // No bias column: the prior's bias is not used either.
        assert_eq!(fit.bias, 0.0);
        // Huge penalties return the prior, through the link too.
        let stiff = FoldInConfig { lambda: 1e9, bias_lambda: 1e9, ..FoldInConfig::default() };
        let link = ScoreLink::SigmoidRange { lo: 0.0, hi: 5.5 };
        let fit = fold_in_user_with_link(q.view(), None, 0.0, &rated, Some(&prior), link, &stiff).unwrap();
        assert_abs_diff_eq!(fit.vector[0], 1.0, epsilon = 1e-5);
        assert_abs_diff_eq!(fit.bias, 7.0, epsilon = 1e-5);
        let wrong = FoldIn { vector: array![1.0f32, 2.0], bias: 0.0 };
        assert!(fold_in_user(q.view(), None, 0.0, &rated, Some(&wrong), &config).is_err());
    }

    #[test]
    fn mean_user_by_hand() {
        let factors = array![[1.0f32, 2.0], [3.0, 4.0]];
        let bias = array![1.0f32, 3.0];
        let mean = FoldIn::mean_user(factors.view(), Some(bias.view())).unwrap();
        assert_eq!(mean, FoldIn { vector: array![2.0f32, 3.0], bias: 2.0 });
        assert_eq!(FoldIn::mean_user(factors.view(), None).unwrap().bias, 0.0);
        assert!(FoldIn::mean_user(Array2::<f32>::zeros((0, 2)).view(), None).is_err());
    }

    #[test]
    fn bias_offset_and_movie_bias_are_recovered_exactly() {
        // t = offset + c_i + b + p q_i with offset 3, c = (0.5, -0.5, 0), b = -1, p = 2.
        let q = array![[1.0f32], [2.0], [3.0]];
        let c = array![0.5f32, -0.5, 0.0];
        let rated: Vec<(u32, f32)> = (0..3).map(|i| (i as u32, 3.0 + c[i] - 1.0 + 2.0 * q[[i, 0]])).collect();
        let config = FoldInConfig { lambda: 0.0, bias_lambda: 0.0, ..FoldInConfig::default() };
        let fit = fold_in_user(q.view(), Some(c.view()), 3.0, &rated, None, &config).unwrap();
        assert_abs_diff_eq!(fit.vector[0], 2.0, epsilon = 1e-5);
        assert_abs_diff_eq!(fit.bias, -1.0, epsilon = 1e-5);
        assert_abs_diff_eq!(fit.raw_score(q.view(), Some(c.view()), 3.0, 1), rated[1].1, epsilon = 1e-5);
        assert!(fold_in_user(q.view(), None, 0.0, &[], None, &config).is_err());
        assert!(fold_in_user(q.view(), None, 0.0, &[(3, 1.0)], None, &config).is_err());
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
        let fit = fold_in_user_with_link(q.view(), Some(c.view()), 0.0, &rated, None, link, &config).unwrap();
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
            let fit = fold_in_user(q.view(), Some(c.view()), global, &rated, None, &config).unwrap();
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
