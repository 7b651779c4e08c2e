//! `ease`: EASE^R (Steck 2019, "Embarrassingly Shallow Autoencoders for Sparse Data"), the
//! closed-form item-item model `B = argmin ||X - X B||^2 + lambda ||B||^2` subject to
//! `diag(B) = 0`:
//!
//! `P = (X^T X + lambda I)^-1`, `B = I - P diag(1 / diag P)`, i.e. `B[i, j] = -P[i, j] / P[j, j]`
//! off the diagonal and 0 on it. Scores are `x_u B` with `x_u` the user's binary row: the sum of
//! the rows of `B` of the user's movies (the sparse form of the product; no zero is multiplied).
//!
//! The Gram `X^T X` is built exactly (integer counts, one movie's row per task from its users'
//! rows) in f64, factorised and inverted in place by LAPACK (`potrf` + `potri`, Cholesky, through
//! ndarray-linalg and the system OpenBLAS), and `B` is kept in f32.
//!
//! **Memory limit:** fitting holds the f64 Gram/inverse and the f32 `B` at once, `12 M^2` bytes
//! for `M` movies (`4 M^2` kept after the fit): 9,700 movies (ml-latest-small) need 1.1 GB,
//! 59,000 (ml-25m) 42 GB. A catalogue whose `12 M^2` bytes exceed the available memory is refused
//! with `EngineError::TooLarge` before anything is allocated (reelvec-engine's `ensure_fits`).
//!
//! `lambda` defaults to 500, Steck's value for ML-20M (the paper reports a flat optimum from 100
//! to 1000 on the MovieLens/Netflix/MSD data); smaller catalogues usually prefer smaller values,
//! which `compare --tune` searches on validation.

use ndarray::{Array2, ArrayViewMut2, Axis};
use ndarray_linalg::InverseCInto;
use rayon::prelude::*;
use reelvec_engine::memory::ensure_fits;
use reelvec_metrics::error::{check_index, check_len};
use reelvec_metrics::{ItemScorer, MetricsError, RatedItems};

use super::{Interactions, ParamReader, Ranker, RankerKind};
use crate::ModelError;

/// The parameters of [`Ease`].
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct EaseParams {
    /// L2 regularisation `lambda` added to the Gram's diagonal (default 500, > 0).
    pub lambda: f64,
}

impl Default for EaseParams {
    fn default() -> Self {
        EaseParams { lambda: 500.0 }
    }
}

impl EaseParams {
    /// The defaults overridden by a JSON object (`lambda`).
    pub fn from_json(params: &serde_json::Value) -> Result<Self, ModelError> {
        let r = ParamReader::new(RankerKind::Ease, params, &["lambda"])?;
        Ok(EaseParams { lambda: r.num("lambda", Self::default().lambda, |x| x > 0.0, "a number > 0")? })
    }
}

/// Bytes an EASE fit over `n_items` movies holds at its peak (f64 Gram + f32 `B`).
pub fn ease_fit_bytes(n_items: usize) -> u128 {
    (n_items as u128).pow(2) * 12
}

/// A fitted EASE^R model: the dense `M x M` weights `B`.
#[derive(Debug, Clone, PartialEq)]
pub struct Ease {
    pub(super) params: EaseParams,
    pub(super) by_user: RatedItems,
    pub(super) weights: Array2<f32>,
}

impl Ease {
    /// Fits `B` on `train` (see the module doc); a catalogue too large for memory is refused
    /// before anything is allocated.
    pub fn fit(train: Interactions<'_>, params: &serde_json::Value) -> Result<Self, ModelError> {
        let params = EaseParams::from_json(params)?;
        let m = train.n_items;
        ensure_fits(
            &format!("EASE Gram and weights for {m} movies ({m} x {m}, f64 + f32)"),
            ease_fit_bytes(m),
        )?;
        let by_user = train.by_user;
        if m == 0 {
            // LAPACK refuses (and prints about) a 0 x 0 matrix: nothing to solve.
            return Ok(Ease { params, by_user: by_user.clone(), weights: Array2::zeros((0, 0)) });
        }
        let by_item = train.by_item()?;
        let mut gram = Array2::<f64>::zeros((m, m));
        gram.axis_iter_mut(Axis(0)).into_par_iter().enumerate().for_each(|(i, mut row)| {
            for &u in by_item.row(i as u32) {
                for &j in by_user.row(u) {
                    row[j as usize] += 1.0;
                }
            }
            row[i] += params.lambda;
        });
        let p = gram.invc_into().map_err(|e| {
            ModelError::InvalidData(format!("EASE: Cholesky inverse of X^T X + lambda I failed: {e}"))
        })?;
        let diag: Vec<f64> = p.diag().to_vec();
        let mut weights = Array2::<f32>::zeros((m, m));
        weights.axis_iter_mut(Axis(0)).into_par_iter().enumerate().for_each(|(i, mut row)| {
            for (j, w) in row.iter_mut().enumerate() {
                *w = if i == j { 0.0 } else { (-p[[i, j]] / diag[j]) as f32 };
            }
        });
        Ok(Ease { params, by_user: by_user.clone(), weights })
    }

    /// The weights `B` (`M x M`, zero diagonal).
    pub fn weights(&self) -> &Array2<f32> {
        &self.weights
    }

    /// Adds `x B` for a user who has `items` to `out`: their rows of `B` summed in order.
    pub fn score_items(&self, items: &[u32], out: &mut [f32]) -> Result<(), MetricsError> {
        check_len("Ease::score_items output", self.weights.ncols(), out.len())?;
        for &i in items {
            check_index("Ease::score_items movie", i as usize, self.weights.nrows())?;
            let row = self.weights.row(i as usize);
            for (o, &w) in out.iter_mut().zip(row.iter()) {
                *o += w;
            }
        }
        Ok(())
    }
}

impl ItemScorer for Ease {
    fn n_users(&self) -> usize {
        self.by_user.n_users()
    }

    fn n_items(&self) -> usize {
        self.weights.ncols()
    }

    fn score_block(&self, users: &[u32], mut out: ArrayViewMut2<'_, f32>) -> Result<(), MetricsError> {
        check_len("Ease::score_block rows", out.nrows(), users.len())?;
        check_len("Ease::score_block columns", out.ncols(), self.n_items())?;
        let mut dense = vec![0.0f32; self.n_items()];
        for (mut row, &u) in out.rows_mut().into_iter().zip(users) {
            check_index("Ease::score_block user", u as usize, self.n_users())?;
            dense.fill(0.0);
            self.score_items(self.by_user.row(u), &mut dense)?;
            row.assign(&ndarray::ArrayView1::from(&dense[..]));
        }
        Ok(())
    }
}

impl Ranker for Ease {
    fn kind(&self) -> RankerKind {
        RankerKind::Ease
    }

    fn params(&self) -> serde_json::Value {
        serde_json::to_value(self.params).unwrap_or_default()
    }

    /// The same sum over the new user's movies as for a training user (duplicates count once).
    fn score_new_user(&self, items: &[u32], out: &mut [f32]) -> Result<(), ModelError> {
        let items = super::new_user_item_set(items, out, self.n_items())?;
        Ok(self.score_items(&items, out)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reelvec_engine::EngineError;

    /// The inverse of a small dense matrix by Gauss-Jordan elimination with partial pivoting
    /// (no LAPACK), the independent reference.
    fn gauss_jordan_inverse(a: &[Vec<f64>]) -> Vec<Vec<f64>> {
        let n = a.len();
        let mut m: Vec<Vec<f64>> = a
            .iter()
            .enumerate()
            .map(|(i, row)| {
                let mut r = row.clone();
                r.extend((0..n).map(|j| f64::from(u8::from(i == j))));
                r
            })
            .collect();
        for c in 0..n {
            let piv = (c..n).max_by(|&x, &y| m[x][c].abs().total_cmp(&m[y][c].abs())).unwrap();
            m.swap(c, piv);
            let d = m[c][c];
            for v in m[c].iter_mut() {
                *v /= d;
            }
            for r in 0..n {
                if r != c {
                    let f = m[r][c];
                    let pivot_row = m[c].clone();
                    for (v, p) in m[r].iter_mut().zip(pivot_row) {
                        *v -= f * p;
                    }
                }
            }
        }
        m.into_iter().map(|r| r[n..].to_vec()).collect()
    }

    #[test]
    fn weights_and_scores_match_a_dense_gauss_jordan_solve() {
        let user_rows = vec![vec![0, 1], vec![0, 1, 2], vec![1, 2, 3], vec![3], vec![0, 3]];
        let rows = RatedItems::from_rows(&user_rows);
        let lambda = 0.7;
        let model =
            Ease::fit(Interactions::new(&rows, 4).unwrap(), &serde_json::json!({"lambda": lambda})).unwrap();
        // X^T X + lambda I by hand from the rows.
        let mut g = vec![vec![0.0f64; 4]; 4];
        for r in &user_rows {
            for &i in r {
                for &j in r {
                    g[i as usize][j as usize] += 1.0;
                }
            }
        }
        for (i, row) in g.iter_mut().enumerate() {
            row[i] += lambda;
        }
        let p = gauss_jordan_inverse(&g);
        for (i, p_row) in p.iter().enumerate() {
            for (j, &p_ij) in p_row.iter().enumerate() {
                let want = if i == j { 0.0 } else { -p_ij / p[j][j] };
                let got = f64::from(model.weights()[[i, j]]);
                assert!((got - want).abs() < 1e-6, "B[{i}, {j}] = {got}, want {want}");
            }
        }
        // Scores are x_u B.
        let mut out = Array2::zeros((2, 4));
        model.score_block(&[2, 4], out.view_mut()).unwrap();
        for (r, u) in [2usize, 4].into_iter().enumerate() {
            for j in 0..4 {
                let want: f64 =
                    user_rows[u].iter().map(|&i| f64::from(model.weights()[[i as usize, j]])).sum();
                assert!((f64::from(out[[r, j]]) - want).abs() < 1e-6);
            }
        }
    }

    #[test]
    fn lambda_must_be_positive_and_a_huge_catalogue_is_refused_before_allocating() {
        let rows = RatedItems::from_rows(&[vec![0]]);
        let err =
            Ease::fit(Interactions::new(&rows, 2).unwrap(), &serde_json::json!({"lambda": 0})).unwrap_err();
        assert!(err.to_string().contains("ease.lambda"), "{err}");
        // No movies: an empty model, without calling LAPACK (which refuses, and prints about, a
        // 0 x 0 matrix).
        let none = RatedItems::from_rows(&[vec![]]);
        let empty = Ease::fit(Interactions::new(&none, 0).unwrap(), &serde_json::Value::Null).unwrap();
        assert_eq!(empty.weights().dim(), (0, 0));
        // 2^31 movies: 12 * 2^62 bytes, more than any address space.
        let err =
            Ease::fit(Interactions::new(&rows, 1 << 31).unwrap(), &serde_json::Value::Null).unwrap_err();
        assert!(matches!(err, ModelError::Engine(EngineError::TooLarge { .. })), "{err}");
        assert!(err.to_string().contains("EASE Gram"), "{err}");
    }
}
