//! What a trained model offers to the rest of reelvec: item embeddings (for similar-movie
//! queries, exports and projections), rating prediction and scoring every movie for a user (for
//! top-N recommendation). Indices are dense (`0..n_users`, `0..n_movies`).

use ndarray::ArrayView2;

/// A model with one embedding row per movie.
pub trait ItemEmbeddings {
    /// The `n_movies x k` embedding matrix; row `i` is dense movie `i`.
    fn item_embeddings(&self) -> ArrayView2<'_, f32>;

    /// The `k` movies nearest to `movie` by cosine similarity, best first, excluding `movie`
    /// itself. Rows with zero norm have similarity 0. Ties keep the lower index first.
    fn nearest_by_cosine(&self, movie: u32, k: usize) -> Vec<(u32, f32)> {
        nearest_by_cosine(self.item_embeddings(), movie, k)
    }
}

/// A model that predicts ratings.
pub trait RatingModel {
    /// Predicted rating of dense `user` for dense `movie`, in stars (any scaling undone).
    fn predict(&self, user: u32, movie: u32) -> f32;

    /// Writes one score per movie into `out` (`out.len() == n_movies`); higher is better. The
    /// scores rank like the predictions but need not be in stars.
    fn score_all(&self, user: u32, out: &mut [f32]);

    /// The `k` best-scored movies for `user`, best first, skipping those for which `skip`
    /// returns true (e.g. movies the user already rated). Ties keep the lower index first.
    fn top_n(&self, user: u32, n_movies: usize, k: usize, skip: &dyn Fn(u32) -> bool) -> Vec<(u32, f32)> {
        let mut scores = vec![0.0; n_movies];
        self.score_all(user, &mut scores);
        top_k_indices(&scores, k, skip)
    }
}

/// The `k` largest entries of `scores` as `(index, score)`, best first, skipping indices for
/// which `skip` returns true; NaN scores are skipped. Ties keep the lower index first.
pub fn top_k_indices(scores: &[f32], k: usize, skip: &dyn Fn(u32) -> bool) -> Vec<(u32, f32)> {
    let mut idx: Vec<u32> =
        (0..scores.len() as u32).filter(|&i| !skip(i) && !scores[i as usize].is_nan()).collect();
    let by_score_desc =
        |a: &u32, b: &u32| scores[*b as usize].total_cmp(&scores[*a as usize]).then_with(|| a.cmp(b));
    if k < idx.len() {
        idx.select_nth_unstable_by(k, by_score_desc);
        idx.truncate(k);
    }
    idx.sort_by(by_score_desc);
    idx.into_iter().map(|i| (i, scores[i as usize])).collect()
}

/// Cosine similarity of row `movie` of `emb` with every row (0 where either norm is 0).
pub fn cosine_to_all(emb: ArrayView2<'_, f32>, movie: u32, out: &mut [f32]) {
    let q = emb.row(movie as usize);
    let qn = q.dot(&q).sqrt();
    for (o, row) in out.iter_mut().zip(emb.rows()) {
        let rn = row.dot(&row).sqrt();
        *o = if qn > 0.0 && rn > 0.0 { row.dot(&q) / (qn * rn) } else { 0.0 };
    }
}

/// The `k` rows of `emb` nearest to row `movie` by cosine similarity, excluding `movie`.
pub fn nearest_by_cosine(emb: ArrayView2<'_, f32>, movie: u32, k: usize) -> Vec<(u32, f32)> {
    let mut sims = vec![0.0; emb.nrows()];
    cosine_to_all(emb, movie, &mut sims);
    top_k_indices(&sims, k, &|i| i == movie)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn top_k_orders_and_skips() {
        let s = [0.1, 0.9, 0.5, 0.9, f32::NAN, -1.0];
        assert_eq!(top_k_indices(&s, 3, &|_| false), vec![(1, 0.9), (3, 0.9), (2, 0.5)]);
        assert_eq!(top_k_indices(&s, 2, &|i| i == 1), vec![(3, 0.9), (2, 0.5)]);
        assert_eq!(top_k_indices(&s, 10, &|_| false).len(), 5);
    }

    #[test]
    fn cosine_neighbours_by_hand() {
        // Row 0 = (1,0); row 1 = (1,1) cos = 1/sqrt2; row 2 = (0,1) cos 0; row 3 = (-1,0) cos -1;
        // row 4 = (2,0) cos 1; row 5 = 0 vector -> 0.
        let e = array![[1.0f32, 0.0], [1.0, 1.0], [0.0, 1.0], [-1.0, 0.0], [2.0, 0.0], [0.0, 0.0]];
        let nn = nearest_by_cosine(e.view(), 0, 3);
        assert_eq!(nn[0].0, 4);
        assert!((nn[0].1 - 1.0).abs() < 1e-6);
        assert_eq!(nn[1].0, 1);
        assert!((nn[1].1 - std::f32::consts::FRAC_1_SQRT_2).abs() < 1e-6);
        assert_eq!(nn[2].0, 2); // ties 0.0 with row 5: lower index first
    }
}
