//! 2-D (or n-D) maps of embeddings: PCA through ndarray-linalg's SVD, and exact t-SNE.
//!
//! # PCA
//! Columns are centred; the thin SVD `X_c = U S V^T` (LAPACK, in f64) gives the components
//! (rows of `V^T`), the explained variance `s_i^2 / (n - 1)`, its ratio `s_i^2 / sum_j s_j^2`, and
//! the coordinates `X_c V`. **Sign convention:** each component is flipped so that its entry of
//! largest absolute value is positive (the first such entry on exact ties), so results do not
//! depend on the LAPACK build. (sklearn's `svd_flip` with `u_based_decision=False` does the same.)
//!
//! # t-SNE
//! Exact O(n^2) t-SNE (van der Maaten and Hinton, 2008) for up to a few thousand points:
//! - affinities: for each point a Gaussian precision `beta_i` found by bisection so that the
//!   entropy of `p_{j|i} ∝ exp(-beta_i d_ij^2)` equals `ln(perplexity)`; then
//!   `P = (P_cond + P_cond^T) / (2n)`;
//! - low-dimensional similarities `q_ij = (1 + |y_i - y_j|^2)^-1 / Z`, `Z = sum_{k != l} (1 + |y_k - y_l|^2)^-1`;
//! - cost `KL(P || Q)`, gradient `dC/dy_i = 4 sum_j (p_ij - q_ij) (1 + |y_i - y_j|^2)^-1 (y_i - y_j)`;
//! - early exaggeration (P multiplied by 12 for the first 250 iterations), momentum 0.5 then 0.8,
//!   per-coordinate gains (+0.2 when the gradient changes sign against the update, x0.8 otherwise,
//!   floor 0.01), the learning rate `max(n / exaggeration / 4, 1)` unless given. This is
//!   sklearn's "auto" rate without its floor of 50: during exaggeration a point is pulled toward
//!   its neighbours with a step of about `lr x 4 x exaggeration / n` times its offset, which
//!   the floor pushes far above 2 for small n (40 for n = 60): the map explodes and points end up
//!   trapped in other clusters;
//! - the initial map is PCA scaled to 1e-4 ([`TsneInit::Pca`], sklearn's default) or
//!   N(0, 1e-4^2) from a seeded ChaCha8 generator; the map is re-centred every iteration.
//!
//! Rows run in parallel; the result is deterministic for a seed (every reduction is per row,
//! then in row order).

use ndarray::{s, Array1, Array2, ArrayView2, Axis};
use ndarray_linalg::SVD;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use rayon::prelude::*;

use crate::error::{MetricsError, Result};

/// A fitted PCA.
#[derive(Debug, Clone, PartialEq)]
pub struct Pca {
    /// Column means subtracted before projecting (length d).
    pub mean: Array1<f64>,
    /// Principal axes, one per row (c x d), unit length, sign as in the module docs.
    pub components: Array2<f64>,
    /// Variance along each axis, `s_i^2 / (n - 1)`.
    pub explained_variance: Array1<f64>,
    /// Share of the total variance along each axis.
    pub explained_variance_ratio: Array1<f64>,
    /// The input rows in the new axes (n x c).
    pub coordinates: Array2<f64>,
}

/// PCA of the rows of `data` (n x d) keeping `n_components` axes.
pub fn pca(data: ArrayView2<'_, f32>, n_components: usize) -> Result<Pca> {
    let (n, d) = data.dim();
    if n < 2 || d == 0 {
        return Err(MetricsError::Empty { what: "PCA input (needs at least two rows and one column)" });
    }
    if n_components == 0 || n_components > n.min(d) {
        return Err(MetricsError::InvalidParameter {
            name: "n_components",
            value: n_components.to_string(),
            reason: "must be between 1 and min(rows, columns)",
        });
    }
    let x = data.mapv(f64::from);
    let mean = x.mean_axis(Axis(0)).ok_or(MetricsError::Empty { what: "PCA input" })?;
    let centred = &x - &mean;
    let (_, singular, vt) =
        centred.svd(false, true).map_err(|source| MetricsError::Linalg { context: "PCA SVD", source })?;
    let vt = vt.ok_or(MetricsError::Empty { what: "PCA right singular vectors" })?;
    let mut components = vt.slice(s![..n_components, ..]).to_owned();
    for mut axis in components.axis_iter_mut(Axis(0)) {
        let mut best = 0usize;
        for (j, &v) in axis.iter().enumerate() {
            if v.abs() > axis[best].abs() {
                best = j;
            }
        }
        if axis[best] < 0.0 {
            axis.mapv_inplace(|v| -v);
        }
    }
    let squares = singular.mapv(|s| s * s);
    let total: f64 = squares.sum();
    let kept = squares.slice(s![..n_components]).to_owned();
    let explained_variance = kept.mapv(|v| v / (n - 1) as f64);
    let explained_variance_ratio = if total > 0.0 { kept.mapv(|v| v / total) } else { kept.mapv(|_| 0.0) };
    let coordinates = centred.dot(&components.t());
    Ok(Pca { mean, components, explained_variance, explained_variance_ratio, coordinates })
}

/// t-SNE settings (defaults as in the original paper and sklearn).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TsneConfig {
    /// Output dimensions.
    pub dims: usize,
    /// Effective number of neighbours; must be below n - 1.
    pub perplexity: f64,
    /// Gradient steps.
    pub iterations: usize,
    /// Step size; `None` = `max(n / early_exaggeration / 4, 1)` (see the module docs).
    pub learning_rate: Option<f64>,
    /// Factor on P during the first `exaggeration_iterations` steps.
    pub early_exaggeration: f64,
    /// Steps with exaggerated P (momentum switches at the same step).
    pub exaggeration_iterations: usize,
    /// Momentum during the exaggeration phase.
    pub initial_momentum: f64,
    /// Momentum afterwards.
    pub final_momentum: f64,
    /// How the map starts.
    pub init: TsneInit,
    /// Seed of the random initial map.
    pub seed: u64,
}

/// The starting map of t-SNE.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum TsneInit {
    /// The first PCA coordinates scaled to standard deviation 1e-4 along the first axis
    /// (sklearn's default since 1.2): keeps the global layout and avoids points trapped on the
    /// wrong side of another cluster. Falls back to `Random` when the data has fewer columns
    /// than the map.
    #[default]
    Pca,
    /// N(0, 1e-4^2) from the seeded ChaCha8 generator.
    Random,
}

impl Default for TsneConfig {
    fn default() -> Self {
        TsneConfig {
            dims: 2,
            perplexity: 30.0,
            iterations: 1000,
            learning_rate: None,
            early_exaggeration: 12.0,
            exaggeration_iterations: 250,
            initial_momentum: 0.5,
            final_momentum: 0.8,
            init: TsneInit::Pca,
            seed: 42,
        }
    }
}

/// A t-SNE map and its final cost.
#[derive(Debug, Clone, PartialEq)]
pub struct Tsne {
    /// The map (n x dims).
    pub embedding: Array2<f32>,
    /// `KL(P || Q)` at the end (without exaggeration).
    pub kl_divergence: f64,
}

/// Pairwise squared Euclidean distances in f64.
fn squared_distances(x: &Array2<f64>) -> Array2<f64> {
    let norms: Array1<f64> = x.axis_iter(Axis(0)).map(|r| r.dot(&r)).collect();
    let gram = x.dot(&x.t());
    let n = x.nrows();
    Array2::from_shape_fn((n, n), |(i, j)| {
        if i == j {
            0.0
        } else {
            (norms[i] + norms[j] - 2.0 * gram[[i, j]]).max(0.0)
        }
    })
}

/// Conditional affinities of one row for precision `beta`; returns the entropy (nats).
fn row_affinities(distances: ndarray::ArrayView1<'_, f64>, own: usize, beta: f64, out: &mut [f64]) -> f64 {
    // Shift by the smallest distance so at least one exponent is exp(0).
    let min = distances
        .iter()
        .enumerate()
        .filter(|&(j, _)| j != own)
        .map(|(_, &d)| d)
        .fold(f64::INFINITY, f64::min);
    let mut sum = 0.0;
    for (j, (&d, p)) in distances.iter().zip(out.iter_mut()).enumerate() {
        *p = if j == own { 0.0 } else { (-(d - min) * beta).exp() };
        sum += *p;
    }
    let mut weighted = 0.0;
    for (&d, p) in distances.iter().zip(out.iter_mut()) {
        *p /= sum;
        weighted += (d - min) * *p;
    }
    // H = ln(sum) + beta * E[d - min].
    sum.ln() + beta * weighted
}

/// Conditional affinities `p_{j|i}` (rows sum to 1), each row's precision found by bisection
/// so that its entropy is `ln(perplexity)`.
fn conditional_affinities(x: &Array2<f64>, perplexity: f64) -> Array2<f64> {
    let n = x.nrows();
    let distances = squared_distances(x);
    let target = perplexity.ln();
    let mut conditional = Array2::<f64>::zeros((n, n));
    conditional.axis_iter_mut(Axis(0)).into_par_iter().enumerate().for_each(|(i, mut row)| {
        let out = row.as_slice_mut().unwrap_or_else(|| unreachable!("rows of a fresh array are contiguous"));
        let (mut lo, mut hi, mut beta) = (0.0f64, f64::INFINITY, 1.0f64);
        for _ in 0..200 {
            let entropy = row_affinities(distances.row(i), i, beta, out);
            let gap = entropy - target;
            if gap.abs() < 1e-7 {
                break;
            }
            if gap > 0.0 {
                // Too flat: sharpen.
                lo = beta;
                beta = if hi.is_finite() { (beta + hi) / 2.0 } else { beta * 2.0 };
            } else {
                hi = beta;
                beta = (beta + lo) / 2.0;
            }
        }
        row_affinities(distances.row(i), i, beta, out);
    });
    conditional
}

/// Joint affinities `P = (P_cond + P_cond^T) / (2n)` (symmetric, sums to 1, floored at 1e-12
/// off the diagonal).
fn joint_affinities(x: &Array2<f64>, perplexity: f64) -> Array2<f64> {
    let n = x.nrows();
    let conditional = conditional_affinities(x, perplexity);
    let mut joint = &conditional + &conditional.t();
    joint /= 2.0 * n as f64;
    joint.mapv_inplace(|p| p.max(1e-12));
    for i in 0..n {
        joint[[i, i]] = 0.0;
    }
    joint
}

/// Exact t-SNE of the rows of `data` (see the module docs).
pub fn tsne(data: ArrayView2<'_, f32>, config: &TsneConfig) -> Result<Tsne> {
    let n = data.nrows();
    if n < 3 {
        return Err(MetricsError::Empty { what: "t-SNE input (needs at least three rows)" });
    }
    if !(config.perplexity > 0.0 && config.perplexity < (n - 1) as f64) {
        return Err(MetricsError::InvalidParameter {
            name: "perplexity",
            value: config.perplexity.to_string(),
            reason: "must be positive and below the number of points minus one",
        });
    }
    if config.dims == 0 {
        return Err(MetricsError::InvalidParameter {
            name: "dims",
            value: "0".into(),
            reason: "must be positive",
        });
    }
    let dims = config.dims;
    let p = joint_affinities(&data.mapv(f64::from), config.perplexity);
    let learning_rate = config.learning_rate.unwrap_or((n as f64 / config.early_exaggeration / 4.0).max(1.0));

    let mut y = initial_map(data, config)?;
    let mut update = Array2::<f64>::zeros((n, dims));
    let mut gains = Array2::<f64>::ones((n, dims));
    let mut grad = Array2::<f64>::zeros((n, dims));

    for iteration in 0..config.iterations {
        let exaggerating = iteration < config.exaggeration_iterations;
        let exaggeration = if exaggerating { config.early_exaggeration } else { 1.0 };
        let momentum = if exaggerating { config.initial_momentum } else { config.final_momentum };
        // One pass over all pairs gives, per row, Z_i = sum_j k_ij, the attraction
        // sum_j p_ij k_ij (y_i - y_j) and the unnormalised repulsion sum_j k_ij^2 (y_i - y_j),
        // with k_ij = (1 + |y_i - y_j|^2)^-1; then
        // grad_i = 4 (exaggeration * attraction_i - repulsion_i / Z), Z = sum_i Z_i.
        let partials = pair_terms(&p, &y);
        let z: f64 = partials.iter().map(|t| t.0).sum();
        for (i, (_, attraction, repulsion)) in partials.iter().enumerate() {
            for c in 0..dims {
                grad[[i, c]] = 4.0 * (exaggeration * attraction[c] - repulsion[c] / z);
            }
        }
        ndarray::Zip::from(&mut gains).and(&grad).and(&update).for_each(|gain, &g, &u| {
            *gain = if (g > 0.0) != (u > 0.0) { *gain + 0.2 } else { *gain * 0.8 }.max(0.01);
        });
        ndarray::Zip::from(&mut update).and(&gains).and(&grad).for_each(|u, &gain, &g| {
            *u = momentum * *u - learning_rate * gain * g;
        });
        y += &update;
        if let Some(mean) = y.mean_axis(Axis(0)) {
            y -= &mean;
        }
    }
    let kl_divergence = kl_divergence(&p, &y);
    Ok(Tsne { embedding: y.mapv(|v| v as f32), kl_divergence })
}

/// The starting map (see [`TsneInit`]).
fn initial_map(data: ArrayView2<'_, f32>, config: &TsneConfig) -> Result<Array2<f64>> {
    let (n, d) = data.dim();
    if config.init == TsneInit::Pca && config.dims <= d.min(n) {
        let coordinates = pca(data, config.dims)?.coordinates;
        let first = coordinates.column(0);
        let std = first.std(0.0);
        if std > 0.0 {
            return Ok(coordinates * (1e-4 / std));
        }
    }
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let normal = Normal::new(0.0, 1e-4).map_err(|_| MetricsError::InvalidParameter {
        name: "initial scale",
        value: "1e-4".into(),
        reason: "invalid normal distribution",
    })?;
    Ok(Array2::from_shape_fn((n, config.dims), |_| normal.sample(&mut rng)))
}

/// Per row i: `(sum_j k_ij, sum_j p_ij k_ij (y_i - y_j), sum_j k_ij^2 (y_i - y_j))` over j != i,
/// with `k_ij = (1 + |y_i - y_j|^2)^-1`. Rows run in parallel, each summing j in order.
fn pair_terms(p: &Array2<f64>, y: &Array2<f64>) -> Vec<(f64, Vec<f64>, Vec<f64>)> {
    let (n, dims) = y.dim();
    let flat: Vec<f64> = y.iter().copied().collect();
    (0..n)
        .into_par_iter()
        .map(|i| {
            let yi = &flat[i * dims..(i + 1) * dims];
            let p_row = p.row(i);
            let mut z = 0.0;
            let mut attraction = vec![0.0; dims];
            let mut repulsion = vec![0.0; dims];
            let mut diff = vec![0.0; dims];
            for (j, yj) in flat.chunks_exact(dims).enumerate() {
                if j == i {
                    continue;
                }
                let mut dist = 0.0;
                for c in 0..dims {
                    diff[c] = yi[c] - yj[c];
                    dist += diff[c] * diff[c];
                }
                let kernel = 1.0 / (1.0 + dist);
                z += kernel;
                let pull = p_row[j] * kernel;
                let push = kernel * kernel;
                for c in 0..dims {
                    attraction[c] += pull * diff[c];
                    repulsion[c] += push * diff[c];
                }
            }
            (z, attraction, repulsion)
        })
        .collect()
}

/// `Z = sum_{i != j} (1 + |y_i - y_j|^2)^-1`, summed per row then in row order.
fn kernel_sum(y: &Array2<f64>) -> f64 {
    let n = y.nrows();
    let rows: Vec<f64> = (0..n)
        .into_par_iter()
        .map(|i| {
            let yi = y.row(i);
            (0..n)
                .filter(|&j| j != i)
                .map(|j| {
                    let dist: f64 = yi.iter().zip(y.row(j).iter()).map(|(a, b)| (a - b) * (a - b)).sum();
                    1.0 / (1.0 + dist)
                })
                .sum()
        })
        .collect();
    rows.iter().sum()
}

/// `KL(P || Q) = sum_{i != j} p_ij ln(p_ij / q_ij)`.
fn kl_divergence(p: &Array2<f64>, y: &Array2<f64>) -> f64 {
    let z = kernel_sum(y);
    let n = y.nrows();
    let mut kl = 0.0;
    for i in 0..n {
        for j in 0..n {
            if i == j {
                continue;
            }
            let dist: f64 = y.row(i).iter().zip(y.row(j).iter()).map(|(a, b)| (a - b) * (a - b)).sum();
            let q = (1.0 / (1.0 + dist) / z).max(1e-12);
            kl += p[[i, j]] * (p[[i, j]] / q).ln();
        }
    }
    kl
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_abs_diff_eq;
    use ndarray::array;
    use rand::Rng;

    #[test]
    fn pca_of_a_line_by_hand() {
        let x = array![[1.0f32, 2.0], [2.0, 4.0], [3.0, 6.0], [4.0, 8.0]];
        let fit = pca(x.view(), 1).unwrap();
        let r5 = 5f64.sqrt();
        assert_abs_diff_eq!(fit.components[[0, 0]], 1.0 / r5, epsilon = 1e-9);
        assert_abs_diff_eq!(fit.components[[0, 1]], 2.0 / r5, epsilon = 1e-9);
        assert_abs_diff_eq!(fit.explained_variance_ratio[0], 1.0, epsilon = 1e-9);
        // Centred first point (-1.5, -3) -> -7.5 / sqrt 5; variance sum(x_c . v)^2 / 3 = 25/3.
        assert_abs_diff_eq!(fit.coordinates[[0, 0]], -7.5 / r5, epsilon = 1e-9);
        assert_abs_diff_eq!(fit.explained_variance[0], 25.0 / 3.0, epsilon = 1e-9);
        assert_eq!(fit.mean, array![2.5, 5.0]);
    }

    #[test]
    fn pca_of_a_cross_by_hand_with_sign_convention() {
        // (+-3, 0), (0, +-1): variances 6 and 2/3 -> ratio 0.9 and 0.1.
        let x = array![[3.0f32, 0.0], [-3.0, 0.0], [0.0, 1.0], [0.0, -1.0]];
        let fit = pca(x.view(), 2).unwrap();
        assert_abs_diff_eq!(fit.explained_variance[0], 6.0, epsilon = 1e-9);
        assert_abs_diff_eq!(fit.explained_variance[1], 2.0 / 3.0, epsilon = 1e-9);
        assert_abs_diff_eq!(fit.explained_variance_ratio[0], 0.9, epsilon = 1e-9);
        // Largest entry of each axis positive: (1, 0) and (0, 1), never (-1, 0).
        assert_abs_diff_eq!(fit.components[[0, 0]], 1.0, epsilon = 1e-9);
        assert_abs_diff_eq!(fit.components[[1, 1]], 1.0, epsilon = 1e-9);
        assert_abs_diff_eq!(fit.coordinates[[1, 0]], -3.0, epsilon = 1e-9);
        assert!(pca(x.view(), 3).is_err());
    }

    #[test]
    fn pca_with_all_axes_reconstructs_the_data() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let x = Array2::from_shape_fn((20, 4), |_| rng.random_range(-1.0f32..1.0));
        let fit = pca(x.view(), 4).unwrap();
        let back = fit.coordinates.dot(&fit.components) + &fit.mean;
        for (a, b) in back.iter().zip(x.iter()) {
            assert_abs_diff_eq!(*a, *b as f64, epsilon = 1e-5);
        }
        assert_abs_diff_eq!(fit.explained_variance_ratio.sum(), 1.0, epsilon = 1e-9);
        // Axes are orthonormal.
        let gram = fit.components.dot(&fit.components.t());
        for ((i, j), v) in gram.indexed_iter() {
            assert_abs_diff_eq!(*v, if i == j { 1.0 } else { 0.0 }, epsilon = 1e-9);
        }
    }

    #[test]
    fn perplexity_search_hits_its_target() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let x = Array2::from_shape_fn((40, 3), |_| rng.random_range(-1.0f64..1.0));
        let p = joint_affinities(&x, 8.0);
        assert_abs_diff_eq!(p.sum(), 1.0, epsilon = 1e-6);
        for i in 0..40 {
            for j in 0..40 {
                assert_abs_diff_eq!(p[[i, j]], p[[j, i]], epsilon = 1e-15);
            }
        }
        // Each conditional row sums to 1 and has entropy -sum p ln p = ln 8.
        let conditional = conditional_affinities(&x, 8.0);
        for row in conditional.axis_iter(Axis(0)) {
            assert_abs_diff_eq!(row.sum(), 1.0, epsilon = 1e-9);
            let entropy: f64 = row.iter().filter(|&&p| p > 0.0).map(|&p| -p * p.ln()).sum();
            assert_abs_diff_eq!(entropy, 8f64.ln(), epsilon = 1e-5);
        }
    }

    #[test]
    fn tsne_separates_well_separated_clusters() {
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let (clusters, per, dims) = (3usize, 20usize, 10usize);
        let mut x = Array2::<f32>::zeros((clusters * per, dims));
        for c in 0..clusters {
            for r in 0..per {
                for d in 0..dims {
                    let centre = if d == c { 10.0 } else { 0.0 };
                    x[[c * per + r, d]] = centre + rng.random_range(-0.5f32..0.5);
                }
            }
        }
        let config = TsneConfig { perplexity: 10.0, iterations: 400, seed: 1, ..TsneConfig::default() };
        let map = tsne(x.view(), &config).unwrap();
        assert_eq!(map.embedding.dim(), (60, 2));
        assert!(map.kl_divergence.is_finite() && map.kl_divergence < 1.0, "KL {}", map.kl_divergence);
        // Every point's 5 nearest map neighbours come from its own cluster.
        let y = map.embedding.mapv(f64::from);
        let d = squared_distances(&y);
        for i in 0..60 {
            let mut order: Vec<usize> = (0..60).filter(|&j| j != i).collect();
            order.sort_by(|&a, &b| d[[i, a]].total_cmp(&d[[i, b]]));
            for &j in &order[..5] {
                assert_eq!(j / per, i / per, "point {i} has neighbour {j} from another cluster");
            }
        }
        // Seeded: the same config gives the same map.
        let again = tsne(x.view(), &config).unwrap();
        assert_eq!(again.embedding, map.embedding);
        assert!(tsne(x.view(), &TsneConfig { perplexity: 60.0, ..config }).is_err());

        // From a random start the clusters still form: at least 90% of points have a nearest
        // map neighbour from their own cluster (a point can stay trapped: why PCA is the default).
        let random = tsne(x.view(), &TsneConfig { init: TsneInit::Random, ..config }).unwrap();
        let d = squared_distances(&random.embedding.mapv(f64::from));
        let same = (0..60)
            .filter(|&i| {
                let nearest = (0..60).filter(|&j| j != i).min_by(|&a, &b| d[[i, a]].total_cmp(&d[[i, b]]));
                nearest.is_some_and(|j| j / per == i / per)
            })
            .count();
        assert!(same >= 54, "only {same} of 60 points have a same-cluster nearest neighbour");
    }
}
