//! The ranking protocol's scoring interface: [`ItemScorer`], what any model offers to top-N and
//! to the ranking evaluation (every movie scored for a block of users, higher is better).
//!
//! Factor models ([`FactorScores`]) score through one GEMM per block; models that are not factor
//! models (item-item neighbours, EASE, popularity) implement the trait themselves in
//! reelvec-models. The protocol (splits applied, metrics per list, beyond-accuracy figures)
//! builds on this trait; this module owns none of the models.

use ndarray::linalg::general_mat_mul;
use ndarray::{s, ArrayViewMut2};

use crate::error::{check_index, check_len, Result};
use crate::topn::FactorScores;

/// A model that scores every movie for any user: `out[[r, j]]` is the score of movie `j` for
/// `users[r]`. Higher is better; NaN and minus infinity never rank. Scores need not be in stars,
/// only in the model's ranking order. Implementations must be deterministic and may run from
/// several threads at once (blocks of users in parallel).
pub trait ItemScorer: Sync {
    /// Number of users the model knows (`0..n_users` are valid in `users`).
    fn n_users(&self) -> usize;

    /// Number of movies (`out` has this many columns).
    fn n_items(&self) -> usize;

    /// Writes the score rows of `users` into `out` (`users.len() x n_items`).
    fn score_block(&self, users: &[u32], out: ArrayViewMut2<'_, f32>) -> Result<()>;
}

impl ItemScorer for FactorScores<'_> {
    fn n_users(&self) -> usize {
        FactorScores::n_users(self)
    }

    fn n_items(&self) -> usize {
        FactorScores::n_items(self)
    }

    /// `c_j + p_u . q_j` through one GEMM: the user constant (`offset + b_u`) and the monotone
    /// link do not change a user's order and are left out (ranking order only).
    fn score_block(&self, users: &[u32], mut out: ArrayViewMut2<'_, f32>) -> Result<()> {
        check_len("FactorScores::score_block rows", out.nrows(), users.len())?;
        check_len("FactorScores::score_block columns", out.ncols(), self.n_items())?;
        for &u in users {
            check_index("FactorScores::score_block user", u as usize, FactorScores::n_users(self))?;
        }
        let k = self.user_factors.ncols();
        let mut a = ndarray::Array2::<f32>::zeros((users.len(), k));
        for (row, &u) in users.iter().enumerate() {
            a.slice_mut(s![row, ..]).assign(&self.user_factors.row(u as usize));
        }
        general_mat_mul(1.0, &a, &self.item_factors.t(), 0.0, &mut out);
        if let Some(c) = self.item_bias {
            for mut row in out.rows_mut() {
                row += &c;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{array, Array2};

    #[test]
    fn factor_scores_block_matches_pairwise_scores() {
        let p = array![[1.0f32, 0.0], [0.5, 2.0]];
        let q = array![[1.0f32, 1.0], [0.0, 3.0], [-1.0, 0.5]];
        let c = array![0.1f32, 0.2, 0.3];
        let model = FactorScores::new(p.view(), q.view()).unwrap().with_item_bias(c.view()).unwrap();
        let mut out = Array2::zeros((2, 3));
        model.score_block(&[1, 0], out.view_mut()).unwrap();
        for (r, u) in [1u32, 0].into_iter().enumerate() {
            for j in 0..3u32 {
                let want = model.score(u, j).unwrap();
                assert!((out[[r, j as usize]] - want).abs() < 1e-6, "user {u} movie {j}");
            }
        }
    }

    #[test]
    fn score_block_rejects_wrong_shapes_and_users() {
        let p = array![[1.0f32]];
        let q = array![[1.0f32], [2.0]];
        let model = FactorScores::new(p.view(), q.view()).unwrap();
        assert!(model.score_block(&[0], Array2::zeros((1, 3)).view_mut()).is_err());
        assert!(model.score_block(&[1], Array2::zeros((1, 2)).view_mut()).is_err());
    }
}
