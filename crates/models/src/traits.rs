//! What a trained model offers to the rest of reelvec: item embeddings (for similar-movie
//! queries, exports and projections), rating prediction and scoring every movie for a user (for
//! top-N recommendation). Indices are dense (`0..n_users`, `0..n_movies`).
//!
//! Ranking and cosine neighbours are reelvec-metrics' (`topn::top_k_of_row`,
//! `similarity::nearest_neighbours`): these traits only hand them a model's numbers.

use ndarray::ArrayView2;
use reelvec_metrics::similarity::nearest_neighbours;
use reelvec_metrics::topn::top_k_of_row;
use reelvec_metrics::MetricsError;

/// A model with one embedding row per movie.
pub trait ItemEmbeddings {
    /// The `n_movies x k` embedding matrix; row `i` is dense movie `i`.
    fn item_embeddings(&self) -> ArrayView2<'_, f32>;

    /// The `k` movies nearest to `movie` by cosine similarity, best first, excluding `movie`
    /// itself (reelvec-metrics' `nearest_neighbours`: movies without a vector never rank, a query
    /// without one is `MetricsError::NoVector`, cosines within [-1, 1]).
    fn nearest_by_cosine(&self, movie: u32, k: usize) -> Result<Vec<(u32, f32)>, MetricsError> {
        nearest_neighbours(self.item_embeddings(), movie, k)
    }
}

/// `Ok(None)` for [`MetricsError::NoVector`] (a movie without a vector has no neighbours), other
/// errors as they are.
pub fn no_vector_as_none<T>(result: Result<T, MetricsError>) -> Result<Option<T>, MetricsError> {
    match result {
        Ok(v) => Ok(Some(v)),
        Err(MetricsError::NoVector { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// A model that predicts ratings.
pub trait RatingModel {
    /// Predicted rating of dense `user` for dense `movie`, in stars (any scaling undone).
    fn predict(&self, user: u32, movie: u32) -> f32;

    /// Writes one score per movie into `out` (`out.len() == n_movies`); higher is better. The
    /// scores rank like the predictions but need not be in stars.
    fn score_all(&self, user: u32, out: &mut [f32]);

    /// The `k` best-scored movies for `user`, best first, skipping `excluded_sorted` (e.g. the
    /// movies the user already rated), through reelvec-metrics' `top_k_of_row`.
    fn top_n(
        &self,
        user: u32,
        n_movies: usize,
        k: usize,
        excluded_sorted: &[u32],
    ) -> Result<Vec<(u32, f32)>, MetricsError> {
        let mut scores = vec![0.0; n_movies];
        self.score_all(user, &mut scores);
        top_k_of_row(&scores, k, excluded_sorted)
    }
}
