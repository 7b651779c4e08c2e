//! `popularity`: every user gets the same scores, the movies' training interaction counts. The
//! floor every ranking model must clear.

use ndarray::ArrayViewMut2;
use reelvec_metrics::error::{check_index, check_len};
use reelvec_metrics::{ItemScorer, MetricsError};

use super::{check_param_keys, Interactions, Ranker, RankerKind};
use crate::ModelError;

/// Training interaction counts as scores.
#[derive(Debug, Clone, PartialEq)]
pub struct Popularity {
    pub(super) counts: Vec<f32>,
    pub(super) n_users: usize,
}

impl Popularity {
    /// Counts the interactions of each movie in `train` (no parameters).
    pub fn fit(train: Interactions<'_>, params: &serde_json::Value) -> Result<Self, ModelError> {
        check_param_keys(RankerKind::Popularity, params, &[])?;
        let counts =
            train.by_user.movie_counts(train.n_items).map_err(|e| ModelError::InvalidData(e.to_string()))?;
        Ok(Popularity { counts: counts.into_iter().map(|c| c as f32).collect(), n_users: train.n_users() })
    }

    /// The training count of every movie.
    pub fn counts(&self) -> &[f32] {
        &self.counts
    }
}

impl ItemScorer for Popularity {
    fn n_users(&self) -> usize {
        self.n_users
    }

    fn n_items(&self) -> usize {
        self.counts.len()
    }

    fn score_block(&self, users: &[u32], mut out: ArrayViewMut2<'_, f32>) -> Result<(), MetricsError> {
        check_len("Popularity::score_block rows", out.nrows(), users.len())?;
        check_len("Popularity::score_block columns", out.ncols(), self.counts.len())?;
        for &u in users {
            check_index("Popularity::score_block user", u as usize, self.n_users)?;
        }
        for mut row in out.rows_mut() {
            row.assign(&ndarray::ArrayView1::from(&self.counts[..]));
        }
        Ok(())
    }
}

impl Ranker for Popularity {
    fn kind(&self) -> RankerKind {
        RankerKind::Popularity
    }

    fn params(&self) -> serde_json::Value {
        serde_json::json!({})
    }

    /// Everyone gets the training counts.
    fn score_new_user(&self, items: &[u32], out: &mut [f32]) -> Result<(), ModelError> {
        super::check_new_user(items, out, self.counts.len())?;
        out.copy_from_slice(&self.counts);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;
    use reelvec_metrics::RatedItems;

    #[test]
    fn scores_are_training_counts_for_every_user() {
        let rows = RatedItems::from_rows(&[vec![0, 2], vec![2], vec![1, 2]]);
        let model = Popularity::fit(Interactions::new(&rows, 4).unwrap(), &serde_json::Value::Null).unwrap();
        let mut out = Array2::zeros((2, 4));
        model.score_block(&[2, 0], out.view_mut()).unwrap();
        for r in 0..2 {
            assert_eq!(out.row(r).to_vec(), vec![1.0, 1.0, 3.0, 0.0]);
        }
    }

    #[test]
    fn unknown_parameter_and_bad_movie_index_are_errors() {
        let rows = RatedItems::from_rows(&[vec![0, 5]]);
        assert!(Interactions::new(&rows, 4).is_err());
        let rows = RatedItems::from_rows(&[vec![0]]);
        let train = Interactions::new(&rows, 4).unwrap();
        let err = Popularity::fit(train, &serde_json::json!({"factors": 3})).unwrap_err();
        assert!(err.to_string().contains("factors"), "{err}");
    }
}
