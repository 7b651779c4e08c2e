//! Beyond-accuracy figures of top-N lists: intra-list diversity (embedding cosine, and the
//! ranking protocol's genre distance), the notebook's rating
//! "novelty", self-information novelty, catalogue and distributional coverage, and the Gini
//! index of recommendation counts.
//!
//! Lists arrive as a users x n array of movie indices ([`crate::topn::TopN::indices`]); entries
//! equal to [`NO_ITEM`] are padding and ignored everywhere.
//!
//! # Self-information novelty: the one definition (issue-10 protocol)
//! A movie's self-information is `-log2(count_i / n_records)`, where `count_i` is the number of
//! training *interactions* (rows) with movie i and `n_records` the total number of training rows
//! (Castells, Vargas and Wang, ECIR 2011; Microsoft recommenders' `historical_item_novelty`):
//! the denominator is the number of interactions, not the number of users. A movie unseen in
//! training counts as one interaction (`-log2(1 / n_records)`, the most novel a movie can be;
//! Microsoft recommenders would drop it to 0, which rewards nothing and hides it). The reported
//! novelty is the sum over every recommended slot of its movie's self-information divided by the
//! number of slots. train, pipeline and evaluate all report this one figure.
//!
//! # Mean-rating "novelty" (the notebook's)
//! Per-movie mean ratings come from `reelvec_data::transforms::MovieStats`, where a movie nobody
//! rated has mean NaN; such movies are left out of their list's mean.
//!
//! Catalogue coverage follows the same library: distinct recommended movies / catalogue size
//! (the library uses the number of distinct training movies; the caller passes which count).
//!
//! # Lists dominated by rarely rated movies
//! [`rarely_rated`] counts the movies of a list with fewer than [`FEW_RATINGS`] training
//! ratings; a list where they are more than half is flagged wherever a list is shown (the
//! pipeline report, `recommend`), since rating models put movies with one or two high ratings
//! on top.

use ndarray::{ArrayView2, Axis};
use rayon::prelude::*;

use crate::error::{check_index, check_len, MetricsError, Result};
use crate::similarity::unit_rows_f64;
use crate::topn::NO_ITEM;

/// Valid movies of one list row.
fn valid(row: ndarray::ArrayView1<'_, u32>) -> impl Iterator<Item = u32> + '_ {
    row.into_iter().copied().filter(|&j| j != NO_ITEM)
}

fn check_lists(lists: &ArrayView2<'_, u32>, n_items: usize) -> Result<()> {
    if lists.nrows() == 0 {
        return Err(MetricsError::Empty { what: "recommendation lists" });
    }
    for &j in lists.iter().filter(|&&j| j != NO_ITEM) {
        check_index("recommended movie", j as usize, n_items)?;
    }
    Ok(())
}

/// Intra-list diversity: for each list with at least two movies, the mean over its unordered
/// pairs of `1 - cos(e_i, e_j)` (45 pairs for a top-10); then the mean over those lists. A movie
/// without a vector ([`crate::similarity::has_vector`]) has cosine 0 with everything. Lists with fewer than two movies are skipped.
pub fn intra_list_diversity(lists: ArrayView2<'_, u32>, embeddings: ArrayView2<'_, f32>) -> Result<f64> {
    check_lists(&lists, embeddings.nrows())?;
    let unit = unit_rows_f64(embeddings);
    // Per list in parallel, then summed in list order: the same bits for any thread count (a
    // parallel fold sums in the order work stealing gives).
    let per_list: Vec<Option<f64>> = lists
        .axis_iter(Axis(0))
        .into_par_iter()
        .map(|row| {
            let items: Vec<usize> = valid(row).map(|j| j as usize).collect();
            if items.len() < 2 {
                return None;
            }
            let mut total = 0f64;
            for (a, &i) in items.iter().enumerate() {
                for &j in &items[a + 1..] {
                    total += 1.0 - unit.row(i).dot(&unit.row(j));
                }
            }
            let pairs = items.len() * (items.len() - 1) / 2;
            Some(total / pairs as f64)
        })
        .collect();
    let (sum, count) = per_list.iter().flatten().fold((0f64, 0usize), |(s, c), &d| (s + d, c + 1));
    if count == 0 {
        return Err(MetricsError::Empty { what: "lists with at least two movies" });
    }
    Ok(sum / count as f64)
}

/// Jaccard distance `1 - |A ∩ B| / |A ∪ B|` of two sorted, de-duplicated genre sets; `None`
/// when both are empty (no genre to compare).
fn genre_distance(a: &[u32], b: &[u32]) -> Option<f64> {
    let (mut i, mut j, mut inter) = (0, 0, 0usize);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                inter += 1;
                i += 1;
                j += 1;
            }
        }
    }
    let union = a.len() + b.len() - inter;
    (union > 0).then(|| 1.0 - inter as f64 / union as f64)
}

/// Intra-list genre distance, the ranking protocol's diversity (comparable across models, since
/// it needs no embedding): for each list, the mean over its unordered pairs of movies of
/// `1 - Jaccard(genres_i, genres_j)`; then the mean over lists. `genres[j]` is movie j's sorted,
/// de-duplicated set of genre ids (from the catalogue). Pairs of two movies without any genre
/// are left out; lists without a counted pair are skipped; none left is [`MetricsError::Empty`].
pub fn intra_list_genre_distance(lists: ArrayView2<'_, u32>, genres: &[Vec<u32>]) -> Result<f64> {
    check_lists(&lists, genres.len())?;
    let (sum, count) = lists
        .axis_iter(Axis(0))
        .map(|row| {
            let movies: Vec<u32> = valid(row).collect();
            let (mut pair_sum, mut pairs) = (0f64, 0usize);
            for (x, &a) in movies.iter().enumerate() {
                for &b in &movies[x + 1..] {
                    if let Some(d) = genre_distance(&genres[a as usize], &genres[b as usize]) {
                        pair_sum += d;
                        pairs += 1;
                    }
                }
            }
            (pairs > 0).then(|| pair_sum / pairs as f64)
        })
        .fold((0f64, 0usize), |(s, n), list| match list {
            Some(d) => (s + d, n + 1),
            None => (s, n),
        });
    if count == 0 {
        return Err(MetricsError::Empty { what: "lists with a pair of movies with genres" });
    }
    Ok(sum / count as f64)
}

/// The notebook's "novelty" (really popularity): for each list the mean of its movies' mean
/// ratings (in stars), then the mean over lists. Movies whose mean is NaN (nobody rated them) are
/// left out; a list without a rated movie is skipped.
pub fn mean_rating_novelty(lists: ArrayView2<'_, u32>, movie_mean_rating: &[f32]) -> Result<f64> {
    check_lists(&lists, movie_mean_rating.len())?;
    let (sum, count) = lists
        .axis_iter(Axis(0))
        .map(|row| {
            let (s, n) = valid(row)
                .map(|j| movie_mean_rating[j as usize])
                .filter(|m| !m.is_nan())
                .fold((0f64, 0usize), |(s, n), m| (s + f64::from(m), n + 1));
            (s, n)
        })
        .filter(|&(_, n)| n > 0)
        .fold((0f64, 0usize), |(total, lists), (s, n)| (total + s / n as f64, lists + 1));
    if count == 0 {
        return Err(MetricsError::Empty { what: "non-empty recommendation lists" });
    }
    Ok(sum / count as f64)
}

/// Number of training interactions per movie (`counts[j]` = rows with movie j).
pub fn interaction_counts(training_movies: &[u32], n_items: usize) -> Result<Vec<u64>> {
    let mut counts = vec![0u64; n_items];
    for &j in training_movies {
        check_index("training movie", j as usize, n_items)?;
        counts[j as usize] += 1;
    }
    Ok(counts)
}

/// Each movie's self-information `-log2(max(count_j, 1) / n_records)` with
/// `n_records = sum(counts)` (a movie unseen in training counts once; module docs).
pub fn item_self_information(counts: &[u64]) -> Vec<f64> {
    let n_records = counts.iter().sum::<u64>().max(1) as f64;
    counts.iter().map(|&c| -((c.max(1) as f64) / n_records).log2()).collect()
}

/// Mean self-information over every recommended slot (see the module docs).
pub fn self_information_novelty(lists: ArrayView2<'_, u32>, counts: &[u64]) -> Result<f64> {
    check_lists(&lists, counts.len())?;
    let info = item_self_information(counts);
    let (sum, slots) = lists
        .iter()
        .filter(|&&j| j != NO_ITEM)
        .fold((0f64, 0usize), |(s, n), &j| (s + info[j as usize], n + 1));
    if slots == 0 {
        return Err(MetricsError::Empty { what: "recommended slots" });
    }
    Ok(sum / slots as f64)
}

/// How many times each movie was recommended.
pub fn recommendation_counts(lists: ArrayView2<'_, u32>, n_items: usize) -> Result<Vec<u64>> {
    check_lists(&lists, n_items)?;
    let mut counts = vec![0u64; n_items];
    for &j in lists.iter().filter(|&&j| j != NO_ITEM) {
        counts[j as usize] += 1;
    }
    Ok(counts)
}

/// Catalogue coverage: distinct recommended movies / `catalogue_size`.
pub fn catalogue_coverage(lists: ArrayView2<'_, u32>, n_items: usize, catalogue_size: usize) -> Result<f64> {
    if catalogue_size == 0 {
        return Err(MetricsError::Empty { what: "catalogue" });
    }
    let counts = recommendation_counts(lists, n_items)?;
    Ok(counts.iter().filter(|&&c| c > 0).count() as f64 / catalogue_size as f64)
}

/// Distributional coverage (Shani and Gunawardana, eq. 21; as Microsoft recommenders): the
/// entropy in bits `-sum_j p_j log2 p_j` of the share `p_j` of recommended slots going to movie j.
pub fn distributional_coverage(lists: ArrayView2<'_, u32>, n_items: usize) -> Result<f64> {
    let counts = recommendation_counts(lists, n_items)?;
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return Err(MetricsError::Empty { what: "recommended slots" });
    }
    Ok(-counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = c as f64 / total as f64;
            p * p.log2()
        })
        .sum::<f64>())
}

/// Gini index of counts over all movies (zeros included): with the counts sorted ascending
/// `x_1 <= .. <= x_n`, `G = sum_i (2i - n - 1) x_i / (n sum_i x_i)`. 0 when every movie is
/// recommended equally often, `(n - 1) / n` when one movie takes every slot.
pub fn gini_index(counts: &[u64]) -> Result<f64> {
    let total: u64 = counts.iter().sum();
    if counts.is_empty() || total == 0 {
        return Err(MetricsError::Empty { what: "counts for the Gini index" });
    }
    let mut sorted = counts.to_vec();
    sorted.sort_unstable();
    let n = sorted.len() as f64;
    let weighted: f64 =
        sorted.iter().enumerate().map(|(i, &x)| (2.0 * (i + 1) as f64 - n - 1.0) * x as f64).sum();
    Ok(weighted / (n * total as f64))
}

/// Every beyond-accuracy figure of one set of lists.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BeyondAccuracy {
    /// [`intra_list_diversity`].
    pub diversity: f64,
    /// [`mean_rating_novelty`] (the notebook's novelty).
    pub mean_rating_novelty: f64,
    /// [`self_information_novelty`].
    pub self_information_novelty: f64,
    /// [`catalogue_coverage`] over all movies.
    pub catalogue_coverage: f64,
    /// [`distributional_coverage`].
    pub distributional_coverage: f64,
    /// [`gini_index`] of the recommendation counts.
    pub gini: f64,
}

impl BeyondAccuracy {
    /// Computes every figure. `movie_mean_rating` and `training_counts` have one entry per movie
    /// (rows of `embeddings`); coverage is over all those movies.
    pub fn compute(
        lists: ArrayView2<'_, u32>,
        embeddings: ArrayView2<'_, f32>,
        movie_mean_rating: &[f32],
        training_counts: &[u64],
    ) -> Result<Self> {
        let n_items = embeddings.nrows();
        check_len("BeyondAccuracy: movie mean ratings", n_items, movie_mean_rating.len())?;
        check_len("BeyondAccuracy: training counts", n_items, training_counts.len())?;
        Ok(BeyondAccuracy {
            diversity: intra_list_diversity(lists, embeddings)?,
            mean_rating_novelty: mean_rating_novelty(lists, movie_mean_rating)?,
            self_information_novelty: self_information_novelty(lists, training_counts)?,
            catalogue_coverage: catalogue_coverage(lists, n_items, n_items)?,
            distributional_coverage: distributional_coverage(lists, n_items)?,
            gini: gini_index(&recommendation_counts(lists, n_items)?)?,
        })
    }
}

/// A list is dominated by rarely rated movies when more than half of its movies have fewer than
/// this many training ratings.
pub const FEW_RATINGS: u32 = 5;

/// `Some(n)` when `n`, the number of movies of `list` with fewer than [`FEW_RATINGS`] training
/// ratings (`train_counts[movie]`; a movie beyond the counts has none), is more than half the
/// list; `None` otherwise (and for an empty list). Padding ([`NO_ITEM`]) is skipped.
pub fn rarely_rated(list: impl IntoIterator<Item = u32>, train_counts: &[u32]) -> Option<usize> {
    let (mut few, mut len) = (0usize, 0usize);
    for movie in list.into_iter().filter(|&m| m != NO_ITEM) {
        len += 1;
        if train_counts.get(movie as usize).is_none_or(|&c| c < FEW_RATINGS) {
            few += 1;
        }
    }
    (2 * few > len).then_some(few)
}

/// The warning line shown under a list that [`rarely_rated`] flags.
pub fn rarely_rated_warning(few: usize, len: usize) -> String {
    format!(
        "warning: {few} of these {len} movies have fewer than {FEW_RATINGS} training ratings: the list is dominated by rarely rated movies whose scores rest on little data"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_abs_diff_eq;
    use ndarray::array;

    /// Thousands of lists under pools of 1 and 4 threads give the same bits as the per-list
    /// diversities summed in list order by hand (a parallel fold once summed them in whatever
    /// order work stealing gave, and a pipeline test saw the last bit move).
    #[test]
    fn diversity_is_the_list_order_sum_for_any_thread_count() {
        let (movies, k, n_lists) = (50usize, 6usize, 4000usize);
        let e = ndarray::Array2::from_shape_fn((movies, k), |(i, c)| ((i * 7 + c * 13) % 17) as f32 - 8.0);
        let lists = ndarray::Array2::from_shape_fn((n_lists, 10), |(u, s)| {
            ((u * 31 + s * 11 + u / 7) % movies) as u32
        });
        let unit = unit_rows_f64(e.view());
        let mut by_hand = 0f64;
        for row in lists.axis_iter(Axis(0)) {
            let items: Vec<usize> = valid(row).map(|j| j as usize).collect();
            let mut total = 0f64;
            for (a, &i) in items.iter().enumerate() {
                for &j in &items[a + 1..] {
                    total += 1.0 - unit.row(i).dot(&unit.row(j));
                }
            }
            by_hand += total / (items.len() * (items.len() - 1) / 2) as f64;
        }
        let by_hand = by_hand / n_lists as f64;
        for threads in [1, 4] {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            let got = pool.install(|| intra_list_diversity(lists.view(), e.view()).unwrap());
            assert_eq!(got.to_bits(), by_hand.to_bits(), "{threads} threads: {got} vs {by_hand}");
        }
    }

    #[test]
    fn diversity_by_hand() {
        // Embeddings: e0 = (1, 0), e1 = (0, 2), e2 = (1, 1), e3 = (-3, 0).
        let e = array![[1.0f32, 0.0], [0.0, 2.0], [1.0, 1.0], [-3.0, 0.0]];
        // List A = {0, 1, 2}: cos01 = 0, cos02 = cos12 = 1/sqrt2 -> mean(1, 1 - s, 1 - s).
        // List B = {0, 3} (padded): cos = -1 -> distance 2. List C = {2}: skipped.
        let lists = array![[0u32, 1, 2], [0, 3, NO_ITEM], [2, NO_ITEM, NO_ITEM]];
        let s = 0.5f64.sqrt();
        let a = (1.0 + 2.0 * (1.0 - s)) / 3.0;
        assert_abs_diff_eq!(
            intra_list_diversity(lists.view(), e.view()).unwrap(),
            (a + 2.0) / 2.0,
            epsilon = 1e-6
        );
    }

    #[test]
    fn mean_rating_novelty_by_hand() {
        let means = [4.0f32, 3.0, 5.0, 1.0];
        let lists = array![[0u32, 1], [2, NO_ITEM], [NO_ITEM, NO_ITEM]];
        // (3.5 + 5) / 2; the empty list is skipped.
        assert_abs_diff_eq!(mean_rating_novelty(lists.view(), &means).unwrap(), 4.25, epsilon = 1e-9);
    }

    #[test]
    fn self_information_is_the_protocol_definition() {
        // 8 training rows: movie 0 four times, movie 1 twice, movies 2 and 3 once, movie 4 never.
        let counts = interaction_counts(&[0, 0, 1, 0, 2, 1, 0, 3], 5).unwrap();
        assert_eq!(counts, vec![4, 2, 1, 1, 0]);
        // -log2(count / 8); the unseen movie counts once: -log2(1/8) = 3.
        let info = item_self_information(&counts);
        assert_eq!(info, vec![1.0, 2.0, 3.0, 3.0, 3.0]);
        // Slots: 0, 2, 1, 4 -> (1 + 3 + 2 + 3) / 4.
        let lists = array![[0u32, 2], [1, 4]];
        assert_abs_diff_eq!(self_information_novelty(lists.view(), &counts).unwrap(), 2.25, epsilon = 1e-12);
    }

    #[test]
    fn mean_rating_novelty_leaves_unrated_movies_out() {
        let means = [4.0f32, f32::NAN, 2.0];
        let lists = array![[0u32, 1], [1, 2], [1, NO_ITEM]];
        // List 1: 4 (the unrated movie left out); list 2: 2; list 3: nothing rated, skipped.
        assert_abs_diff_eq!(mean_rating_novelty(lists.view(), &means).unwrap(), 3.0, epsilon = 1e-12);
    }

    #[test]
    fn coverage_and_gini_by_hand() {
        let lists = array![[0u32, 1], [0, 1], [0, 2]];
        // Distinct 3 of 5 movies.
        assert_abs_diff_eq!(catalogue_coverage(lists.view(), 5, 5).unwrap(), 0.6, epsilon = 1e-12);
        // Counts (3, 2, 1, 0, 0) of 6 slots.
        let counts = recommendation_counts(lists.view(), 5).unwrap();
        assert_eq!(counts, vec![3, 2, 1, 0, 0]);
        let h = -(0.5f64 * 0.5f64.log2()
            + (1.0 / 3.0) * (1.0f64 / 3.0).log2()
            + (1.0 / 6.0) * (1.0f64 / 6.0).log2());
        assert_abs_diff_eq!(distributional_coverage(lists.view(), 5).unwrap(), h, epsilon = 1e-12);
        // Sorted (0, 0, 1, 2, 3), n = 5: weights -4, -2, 0, 2, 4 -> (0 + 4 + 12) / (5 * 6).
        assert_abs_diff_eq!(gini_index(&counts).unwrap(), 16.0 / 30.0, epsilon = 1e-12);
        assert_abs_diff_eq!(gini_index(&[2, 2, 2]).unwrap(), 0.0, epsilon = 1e-12);
        assert_abs_diff_eq!(gini_index(&[0, 0, 0, 7]).unwrap(), 0.75, epsilon = 1e-12);
        assert!(gini_index(&[0, 0]).is_err());
    }

    #[test]
    fn beyond_accuracy_bundles_every_figure() {
        let e = array![[1.0f32, 0.0], [0.0, 1.0], [1.0, 1.0]];
        let lists = array![[0u32, 1], [0, 2]];
        let b = BeyondAccuracy::compute(lists.view(), e.view(), &[4.0, 2.0, 3.0], &[2, 1, 1]).unwrap();
        assert_abs_diff_eq!(b.diversity, (1.0 + (1.0 - 0.5f64.sqrt())) / 2.0, epsilon = 1e-6);
        assert_abs_diff_eq!(b.mean_rating_novelty, (3.0 + 3.5) / 2.0, epsilon = 1e-9);
        assert_abs_diff_eq!(b.self_information_novelty, (1.0 + 2.0 + 1.0 + 2.0) / 4.0, epsilon = 1e-12);
        assert_abs_diff_eq!(b.catalogue_coverage, 1.0, epsilon = 1e-12);
        assert!(BeyondAccuracy::compute(lists.view(), e.view(), &[4.0], &[2, 1, 1]).is_err());
        assert!(intra_list_diversity(array![[5u32, 0]].view(), e.view()).is_err());
    }

    #[test]
    fn rarely_rated_flags_lists_where_more_than_half_have_few_ratings() {
        // Movies 0, 1, 2 have fewer than 5 training ratings, 3 and 4 do not; 9 is beyond the
        // counts (never rated in training).
        let counts = [0, 1, 4, 5, 100];
        assert_eq!(rarely_rated([0, 1, 2, 3], &counts), Some(3));
        assert_eq!(rarely_rated([0, 1, 3, 4], &counts), None); // exactly half is not "more than half"
        assert_eq!(rarely_rated([9, 3], &counts), None);
        assert_eq!(rarely_rated([9, 0, 3], &counts), Some(2));
        assert_eq!(rarely_rated([NO_ITEM, NO_ITEM, 4, 2], &counts), None); // padding skipped
        assert_eq!(rarely_rated(std::iter::empty(), &counts), None);
        assert!(rarely_rated_warning(3, 4).contains("3 of these 4 movies have fewer than 5"));
    }

    #[test]
    fn genre_distance_by_hand() {
        // Genres: m0 {0, 1}, m1 {1, 2}, m2 {0, 1}, m3 {}, m4 {}.
        let genres = vec![vec![0, 1], vec![1, 2], vec![0, 1], vec![], vec![]];
        // List A = {0, 1, 2}: d01 = 1 - 1/3, d02 = 0, d12 = 2/3 -> mean 4/9.
        // List B = {0, 3}: {0,1} vs {} -> 1. List C = {3, 4}: no genres at all, skipped.
        // List D = {1} (padded): no pair, skipped.
        let lists = array![[0u32, 1, 2], [0, 3, NO_ITEM], [3, 4, NO_ITEM], [1, NO_ITEM, NO_ITEM]];
        let d = intra_list_genre_distance(lists.view(), &genres).unwrap();
        assert_abs_diff_eq!(d, (4.0 / 9.0 + 1.0) / 2.0, epsilon = 1e-12);
        let only_empty = array![[3u32, 4]];
        assert!(intra_list_genre_distance(only_empty.view(), &genres).is_err());
        assert!(intra_list_genre_distance(array![[7u32, 0]].view(), &genres).is_err());
    }
}
