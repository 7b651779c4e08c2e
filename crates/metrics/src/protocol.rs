//! The ranking protocol (issue 10): [`ItemScorer`], what any model offers to top-N and to the
//! ranking evaluation (every movie scored for a block of users, higher is better), and
//! [`evaluate`], the one implementation of the protocol's figures for any scorer.
//!
//! Factor models ([`FactorScores`]) score through one GEMM per block; models that are not factor
//! models (item-item neighbours, EASE, popularity) implement the trait themselves in
//! reelvec-models; [`SubsetScorer`] lifts a model trained on part of the catalogue to all of it.
//! The split is reelvec-data's `ranking_split`; this module owns none of the models.
//!
//! # The figures
//! For each evaluated user, the candidates are every movie except the user's `exclude` row (the
//! training items, and for test also the validation items): the full catalogue, never sampled
//! negatives. The user's list is the best [`MAX_K`] candidates through the crate's one top-N
//! selector ([`TopKSelector`], the order of [`crate::ranking`]: higher score first, ties by lower
//! index, NaN and minus infinity never listed), so the top-10 is the top-20's first ten. With
//! `R` the relevant (held-out) movies and `hits@k` those in the first k slots (the definitions are
//! [`crate::ranking::cutoff_figures`], which leave-last-out's `RankSummary` uses too):
//! - `Recall@k = hits@k / min(k, |R|)`;
//! - `NDCG@k = DCG@k / IDCG@k`, binary gains, `DCG@k = sum over relevant slots p < k of
//!   1 / log2(p + 2)` (p 0-based), the ideal DCG over `min(k, |R|)` slots;
//! - `HR@k = [hits@k > 0]`;
//! - `MRR = 1 / (r + 1)`, r the 0-based rank in the full candidate ranking of the first relevant
//!   movie (no cut-off).
//!
//! Means are over the users with at least one relevant movie (relevant movies that are also
//! excluded are dropped first; a user left with none counts in no mean), summed in f64 in user
//! order. A list may be shorter than k when there are fewer candidates; the denominators stay as
//! above. Beyond accuracy is computed on the top-10 lists of every evaluated user through
//! [`crate::beyond`]: catalogue coverage over all movies, the Gini index of list occurrences,
//! the one self-information novelty (bits; a movie unseen in training counts once) and the
//! intra-list genre distance.
//!
//! Users are scored in blocks of [`BLOCK_USERS`] (a fixed constant, so results never depend on
//! the thread count) against the whole catalogue: `BLOCK_USERS x n_items` f32 per thread, never
//! the users x movies matrix; rayon runs the blocks in parallel.

use ndarray::linalg::general_mat_mul;
use ndarray::{s, Array2, ArrayViewMut2, Axis};
use rayon::prelude::*;

use crate::beyond::{
    catalogue_coverage, gini_index, intra_list_genre_distance, recommendation_counts,
    self_information_novelty,
};
use crate::error::{check_index, check_len, MetricsError, Result};
use crate::ranking::{cutoff_figures, ranks_before, target_rank};
use crate::topn::{FactorScores, RatedItems, TopKSelector, NO_ITEM};

/// The list lengths the protocol reports.
pub const KS: [usize; 2] = [10, 20];

/// The longest list ([`KS`]'s largest).
pub const MAX_K: usize = 20;

/// The list length of the beyond-accuracy figures.
pub const BEYOND_K: usize = 10;

/// Users scored at once by [`evaluate`] (each block is `BLOCK_USERS x n_items` f32).
pub const BLOCK_USERS: usize = 64;

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

/// A scorer over a subset of the catalogue seen as a scorer over all of it: `items[j']` is the
/// full-catalogue index of the inner model's movie `j'` (strictly increasing); movies the inner
/// model does not know score NaN, so they never rank. For models trained on the training rows
/// of a split, which re-index the movies they saw.
pub struct SubsetScorer<'a> {
    inner: &'a dyn ItemScorer,
    items: &'a [u32],
    n_items: usize,
}

impl std::fmt::Debug for SubsetScorer<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SubsetScorer")
            .field("items", &self.items.len())
            .field("n_items", &self.n_items)
            .finish()
    }
}

impl<'a> SubsetScorer<'a> {
    /// Checks that `items` has one strictly increasing entry per inner movie, all below `n_items`.
    pub fn new(inner: &'a dyn ItemScorer, items: &'a [u32], n_items: usize) -> Result<Self> {
        check_len("SubsetScorer: item map vs the model's movies", inner.n_items(), items.len())?;
        if items.windows(2).any(|w| w[0] >= w[1]) {
            return Err(MetricsError::InvalidParameter {
                name: "items",
                value: format!("{} movie indices", items.len()),
                reason: "must be strictly increasing",
            });
        }
        if let Some(&last) = items.last() {
            check_index("SubsetScorer movie", last as usize, n_items)?;
        }
        Ok(SubsetScorer { inner, items, n_items })
    }
}

impl ItemScorer for SubsetScorer<'_> {
    fn n_users(&self) -> usize {
        self.inner.n_users()
    }

    fn n_items(&self) -> usize {
        self.n_items
    }

    fn score_block(&self, users: &[u32], mut out: ArrayViewMut2<'_, f32>) -> Result<()> {
        check_len("SubsetScorer::score_block rows", out.nrows(), users.len())?;
        check_len("SubsetScorer::score_block columns", out.ncols(), self.n_items)?;
        let mut inner = Array2::<f32>::zeros((users.len(), self.items.len()));
        self.inner.score_block(users, inner.view_mut())?;
        out.fill(f32::NAN);
        for (mut row, inner_row) in out.rows_mut().into_iter().zip(inner.rows()) {
            for (&j, &x) in self.items.iter().zip(inner_row) {
                row[j as usize] = x;
            }
        }
        Ok(())
    }
}

/// Item-embedding models (item2vec) as a scorer: a user's profile is the mean of the vectors of
/// the movies in their `watched` row ([`crate::similarity::mean_of_rows`], as
/// [`crate::foldin::fold_in_watched`]) and a movie's score its cosine to the profile (ranked
/// through the dot product with the unit movie vectors, the profile's norm being constant per
/// user). Movies without a vector ([`crate::similarity::has_vector`]) score NaN and never rank; a
/// user without a watched movie has a zero profile (every movie scores 0, ties by index).
#[derive(Debug, Clone)]
pub struct ProfileScores {
    profiles: Array2<f32>,
    unit_items: Array2<f32>,
    has_vector: Vec<bool>,
}

impl ProfileScores {
    /// Profiles of every user of `watched` over `embeddings` (one row per movie).
    pub fn new(embeddings: ndarray::ArrayView2<'_, f32>, watched: &RatedItems) -> Result<Self> {
        let mut profiles = Array2::<f32>::zeros((watched.n_users(), embeddings.ncols()));
        for (u, mut row) in profiles.axis_iter_mut(Axis(0)).enumerate() {
            let mine = watched.row(u as u32);
            if !mine.is_empty() {
                row.assign(&crate::similarity::mean_of_rows(embeddings, mine)?);
            }
        }
        Ok(ProfileScores {
            profiles,
            unit_items: crate::similarity::unit_rows(embeddings),
            has_vector: crate::similarity::has_vector(embeddings),
        })
    }
}

impl ItemScorer for ProfileScores {
    fn n_users(&self) -> usize {
        self.profiles.nrows()
    }

    fn n_items(&self) -> usize {
        self.unit_items.nrows()
    }

    fn score_block(&self, users: &[u32], mut out: ArrayViewMut2<'_, f32>) -> Result<()> {
        FactorScores::new(self.profiles.view(), self.unit_items.view())?
            .score_block(users, out.view_mut())?;
        for mut row in out.rows_mut() {
            for (x, &keep) in row.iter_mut().zip(&self.has_vector) {
                if !keep {
                    *x = f32::NAN;
                }
            }
        }
        Ok(())
    }
}

/// What the protocol evaluates for one part of a split (validation or test).
#[derive(Debug, Clone, Copy)]
pub struct EvalInput<'a> {
    /// The evaluated users (ascending in practice; results follow this order).
    pub users: &'a [u32],
    /// Per user (row = user index), the movies that are never candidates: training items, and
    /// for test also the validation items.
    pub exclude: &'a RatedItems,
    /// Per user, the held-out (relevant) movies.
    pub relevant: &'a RatedItems,
    /// Training interactions per movie (self-information novelty), one per movie.
    pub train_counts: &'a [u64],
    /// Per movie its sorted genre ids (genre distance); empty when the catalogue has none, and
    /// the genre figure is then NaN.
    pub genres: &'a [Vec<u32>],
}

/// The protocol's figures for one scorer on one part of a split (see the module docs). Figures
/// that cannot be computed (no user with a relevant movie, no genres) are NaN.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ProtocolMetrics {
    /// Users with at least one relevant movie (the accuracy means' count).
    pub users: usize,
    /// Recall@10 and Recall@20.
    pub recall: [f64; 2],
    /// NDCG@10 and NDCG@20.
    pub ndcg: [f64; 2],
    /// HR@10 and HR@20.
    pub hit_rate: [f64; 2],
    /// Mean reciprocal rank of the first relevant movie.
    pub mrr: f64,
    /// Distinct movies of the top-10 lists / catalogue size.
    pub coverage_10: f64,
    /// Gini index of top-10 list occurrences over every movie.
    pub gini_10: f64,
    /// Mean self-information of the top-10 slots, in bits.
    pub novelty_bits_10: f64,
    /// Intra-list genre distance of the top-10 lists.
    pub genre_diversity_10: f64,
}

impl ProtocolMetrics {
    /// The figures under the names of `reelvec compare --json` (`recall@10`, .., `mrr`,
    /// `coverage@10`, `gini@10`, `novelty_bits@10`, `genre_diversity@10`), in that order.
    pub fn named(&self) -> Vec<(&'static str, f64)> {
        vec![
            ("recall@10", self.recall[0]),
            ("recall@20", self.recall[1]),
            ("ndcg@10", self.ndcg[0]),
            ("ndcg@20", self.ndcg[1]),
            ("hr@10", self.hit_rate[0]),
            ("hr@20", self.hit_rate[1]),
            ("mrr", self.mrr),
            ("coverage@10", self.coverage_10),
            ("gini@10", self.gini_10),
            ("novelty_bits@10", self.novelty_bits_10),
            ("genre_diversity@10", self.genre_diversity_10),
        ]
    }
}

/// The protocol's figures and the lists they were computed from.
#[derive(Debug, Clone, PartialEq)]
pub struct ProtocolOutcome {
    /// The figures.
    pub metrics: ProtocolMetrics,
    /// The top-[`MAX_K`] list of each of `EvalInput::users` (padded with [`NO_ITEM`]).
    pub lists: Array2<u32>,
}

/// One user's accuracy figures; `None` without a relevant movie.
#[derive(Debug, Clone, Copy)]
struct UserFigures {
    recall: [f64; 2],
    ndcg: [f64; 2],
    hit: [f64; 2],
    reciprocal_rank: f64,
}

/// Accuracy figures of one user from the full score row (excluded movies already NaN), the
/// list, the relevant movies (sorted, none excluded) and the excluded movies.
fn user_figures(
    row: &[f32],
    list: &[u32],
    relevant: &[u32],
    excluded: &[u32],
) -> Result<Option<UserFigures>> {
    if relevant.is_empty() {
        return Ok(None);
    }
    let positions: Vec<usize> =
        list.iter().enumerate().filter(|(_, j)| relevant.binary_search(j).is_ok()).map(|(p, _)| p).collect();
    let mut out = UserFigures { recall: [0.0; 2], ndcg: [0.0; 2], hit: [0.0; 2], reciprocal_rank: 0.0 };
    for (x, &k) in KS.iter().enumerate() {
        let at_k = cutoff_figures(positions.iter().copied(), relevant.len(), k);
        out.recall[x] = at_k.recall;
        out.ndcg[x] = at_k.ndcg;
        out.hit[x] = at_k.hit;
    }
    // The first relevant movie in the full order, then its rank among the candidates.
    let mut first = relevant[0];
    for &j in &relevant[1..] {
        if ranks_before(row[j as usize], j, row[first as usize], first) {
            first = j;
        }
    }
    // Excluded scores are NaN (minus infinity), so passing them to `target_rank` removes only
    // those that would rank before the target: a NaN target among NaN exclusions by index.
    let rank = target_rank(row, first, excluded)?;
    out.reciprocal_rank = 1.0 / (rank + 1) as f64;
    Ok(Some(out))
}

/// The protocol's one list builder for one block of users: scores `users` against the whole
/// catalogue, sets each user's `exclude` movies to NaN (never listed) and hands `each` the user,
/// its masked score row, its best `k` candidates (through [`TopKSelector`]: higher score first,
/// ties by lower index; shorter when fewer candidates) and its excluded movies.
fn block_lists(
    scorer: &dyn ItemScorer,
    users: &[u32],
    exclude: Option<&RatedItems>,
    k: usize,
    mut each: impl FnMut(u32, &[f32], &[u32], &[u32]) -> Result<()>,
) -> Result<()> {
    let mut scores = Array2::<f32>::zeros((users.len(), scorer.n_items()));
    scorer.score_block(users, scores.view_mut())?;
    let mut selector = TopKSelector::new(k)?;
    for (mut row, &u) in scores.axis_iter_mut(Axis(0)).zip(users) {
        let excluded = exclude.map_or(&[][..], |e| e.row(u));
        for &j in excluded {
            row[j as usize] = f32::NAN;
        }
        let row = row.as_slice().ok_or(MetricsError::Empty { what: "contiguous score row" })?;
        selector.reset();
        selector.push_slice(row, 0);
        let list: Vec<u32> = selector.finish().iter().map(|&(_, j)| j).collect();
        each(u, row, &list, excluded)?;
    }
    Ok(())
}

/// Every listed user's top-`k` list (row r for `users[r]`, padded with [`NO_ITEM`]) by the
/// protocol's list builder, the one [`evaluate`] ranks with: candidates are every movie but the
/// user's `exclude` row (`None`: every movie, as P3's notebook lists), users in blocks of
/// [`BLOCK_USERS`] in parallel (lists independent of the thread count). For lists outside an
/// evaluation (P3's figures, `reelvec evaluate`'s top-N of rating runs), so that every list a
/// figure is computed from is built one way.
pub fn top_lists(
    scorer: &dyn ItemScorer,
    users: &[u32],
    exclude: Option<&RatedItems>,
    k: usize,
) -> Result<Array2<u32>> {
    TopKSelector::new(k)?;
    for &u in users {
        check_index("top_lists user", u as usize, scorer.n_users())?;
    }
    if let Some(e) = exclude {
        for &j in e.indices() {
            check_index("top_lists movie", j as usize, scorer.n_items())?;
        }
    }
    let blocks: Vec<Vec<u32>> = users
        .par_chunks(BLOCK_USERS)
        .map(|block| {
            let mut lists = Vec::with_capacity(block.len() * k);
            block_lists(scorer, block, exclude, k, |_, _, list, _| {
                lists.extend(list.iter().copied().chain(std::iter::repeat(NO_ITEM)).take(k));
                Ok(())
            })?;
            Ok(lists)
        })
        .collect::<Result<_>>()?;
    Array2::from_shape_vec((users.len(), k), blocks.concat())
        .map_err(|_| MetricsError::Empty { what: "list rows" })
}

/// Evaluates `scorer` under the protocol (see the module docs): lists of [`MAX_K`] for every
/// user of `input.users`, accuracy against `input.relevant`, beyond accuracy on the top-10.
/// Errors: a user or movie out of range, a scorer error, no user to evaluate.
pub fn evaluate(scorer: &dyn ItemScorer, input: &EvalInput<'_>) -> Result<ProtocolOutcome> {
    let n_items = scorer.n_items();
    if input.users.is_empty() {
        return Err(MetricsError::Empty { what: "evaluated users" });
    }
    check_len("protocol: training counts vs movies", n_items, input.train_counts.len())?;
    if !input.genres.is_empty() {
        check_len("protocol: genre sets vs movies", n_items, input.genres.len())?;
    }
    for &u in input.users {
        check_index("protocol user", u as usize, scorer.n_users())?;
    }
    for &j in input.exclude.indices().iter().chain(input.relevant.indices()) {
        check_index("protocol movie", j as usize, n_items)?;
    }
    let blocks: Vec<(Vec<u32>, Vec<Option<UserFigures>>)> = input
        .users
        .par_chunks(BLOCK_USERS)
        .map(|users| {
            let mut lists = Vec::with_capacity(users.len() * MAX_K);
            let mut figures = Vec::with_capacity(users.len());
            block_lists(scorer, users, Some(input.exclude), MAX_K, |u, row, list, excluded| {
                let relevant: Vec<u32> = input
                    .relevant
                    .row(u)
                    .iter()
                    .copied()
                    .filter(|j| excluded.binary_search(j).is_err())
                    .collect();
                figures.push(user_figures(row, list, &relevant, excluded)?);
                lists.extend(list.iter().copied().chain(std::iter::repeat(NO_ITEM)).take(MAX_K));
                Ok(())
            })?;
            Ok((lists, figures))
        })
        .collect::<Result<_>>()?;
    let mut lists = Vec::with_capacity(input.users.len() * MAX_K);
    let mut sums = UserFigures { recall: [0.0; 2], ndcg: [0.0; 2], hit: [0.0; 2], reciprocal_rank: 0.0 };
    let mut counted = 0usize;
    for (block_lists, figures) in blocks {
        lists.extend(block_lists);
        for f in figures.into_iter().flatten() {
            counted += 1;
            for x in 0..KS.len() {
                sums.recall[x] += f.recall[x];
                sums.ndcg[x] += f.ndcg[x];
                sums.hit[x] += f.hit[x];
            }
            sums.reciprocal_rank += f.reciprocal_rank;
        }
    }
    let lists = Array2::from_shape_vec((input.users.len(), MAX_K), lists)
        .map_err(|_| MetricsError::Empty { what: "list rows" })?;
    let mean = |x: f64| if counted == 0 { f64::NAN } else { x / counted as f64 };
    let top = lists.slice(s![.., ..BEYOND_K]);
    let has_slot = top.iter().any(|&j| j != NO_ITEM);
    let or_nan = |r: Result<f64>| if has_slot { r } else { Ok(f64::NAN) };
    let metrics = ProtocolMetrics {
        users: counted,
        recall: sums.recall.map(mean),
        ndcg: sums.ndcg.map(mean),
        hit_rate: sums.hit.map(mean),
        mrr: mean(sums.reciprocal_rank),
        coverage_10: or_nan(catalogue_coverage(top, n_items, n_items))?,
        gini_10: or_nan(recommendation_counts(top, n_items).and_then(|c| gini_index(&c)))?,
        novelty_bits_10: or_nan(self_information_novelty(top, input.train_counts))?,
        genre_diversity_10: if input.genres.is_empty() {
            f64::NAN
        } else {
            intra_list_genre_distance(top, input.genres).unwrap_or(f64::NAN)
        },
    };
    Ok(ProtocolOutcome { metrics, lists })
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_abs_diff_eq;
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

    /// A model given as its full score matrix.
    struct Fixed(Array2<f32>);

    impl ItemScorer for Fixed {
        fn n_users(&self) -> usize {
            self.0.nrows()
        }
        fn n_items(&self) -> usize {
            self.0.ncols()
        }
        fn score_block(&self, users: &[u32], mut out: ArrayViewMut2<'_, f32>) -> Result<()> {
            for (mut row, &u) in out.rows_mut().into_iter().zip(users) {
                row.assign(&self.0.row(u as usize));
            }
            Ok(())
        }
    }

    #[test]
    fn protocol_figures_by_hand() {
        // 25 movies. Users 0, 2, 3 score movie j as -j; user 1 scores every movie 0 (all ties).
        let mut scores = Array2::from_shape_fn((4, 25), |(_, j)| -(j as f32));
        scores.row_mut(1).fill(0.0);
        let model = Fixed(scores);
        // User 0: train {0, 1}, relevant {2, 13, 24}: list 2..21, hits at slots 0 and 11.
        // User 1: nothing excluded, relevant {5}: ties by index, list 0..19, movie 5 at slot 5.
        // User 2: no held-out movie: in no accuracy mean, its list 0..9 still in the top-10s.
        // User 3: train 0..=22, so only {23, 24} are candidates (k larger than the candidates):
        // list [23, 24], relevant 24 at slot 1.
        let exclude = RatedItems::from_rows(&[vec![0, 1], vec![], vec![], (0..23).collect()]);
        let relevant = RatedItems::from_rows(&[vec![2, 13, 24], vec![5], vec![], vec![24]]);
        let train_counts = vec![1u64; 25];
        let input = EvalInput {
            users: &[0, 1, 2, 3],
            exclude: &exclude,
            relevant: &relevant,
            train_counts: &train_counts,
            genres: &[],
        };
        let out = evaluate(&model, &input).unwrap();
        let m = out.metrics;
        let g = |p: f64| 1.0 / (p + 2.0).log2();
        let idcg3 = g(0.0) + g(1.0) + g(2.0);
        assert_eq!(m.users, 3);
        assert_abs_diff_eq!(m.recall[0], (1.0 / 3.0 + 1.0 + 1.0) / 3.0, epsilon = 1e-12);
        assert_abs_diff_eq!(m.recall[1], (2.0 / 3.0 + 1.0 + 1.0) / 3.0, epsilon = 1e-12);
        assert_abs_diff_eq!(m.ndcg[0], (g(0.0) / idcg3 + g(5.0) + g(1.0)) / 3.0, epsilon = 1e-12);
        assert_abs_diff_eq!(m.ndcg[1], ((g(0.0) + g(11.0)) / idcg3 + g(5.0) + g(1.0)) / 3.0, epsilon = 1e-12);
        assert_eq!(m.hit_rate, [1.0, 1.0]);
        assert_abs_diff_eq!(m.mrr, (1.0 + 1.0 / 6.0 + 0.5) / 3.0, epsilon = 1e-12);
        assert_eq!(out.lists.row(0).to_vec(), (2..22).collect::<Vec<u32>>());
        assert_eq!(out.lists.row(1).to_vec(), (0..20).collect::<Vec<u32>>());
        let mut short = vec![23, 24];
        short.resize(MAX_K, NO_ITEM);
        assert_eq!(out.lists.row(3).to_vec(), short);
        // Top-10s: user 0 2..=11, users 1 and 2 0..=9, user 3 {23, 24}: 14 distinct of 25.
        assert_abs_diff_eq!(m.coverage_10, 14.0 / 25.0, epsilon = 1e-12);
        let mut counts = vec![0u64; 25];
        for j in (2..12).chain(0..10).chain(0..10).chain(23..25) {
            counts[j] += 1;
        }
        assert_abs_diff_eq!(m.gini_10, crate::beyond::gini_index(&counts).unwrap(), epsilon = 1e-12);
        // Every movie has one training interaction of 25: log2(25) bits each.
        assert_abs_diff_eq!(m.novelty_bits_10, 25f64.log2(), epsilon = 1e-12);
        assert!(m.genre_diversity_10.is_nan());
        assert_eq!(m.named()[6], ("mrr", m.mrr));
    }

    #[test]
    fn top_lists_are_the_lists_evaluate_ranks() {
        // 70 users (two blocks), 9 movies, scores with ties: one builder for both.
        let model = Fixed(Array2::from_shape_fn((70, 9), |(u, j)| ((u * 7 + j * 3) % 5) as f32));
        let exclude = RatedItems::from_rows(&(0..70).map(|u| vec![(u % 9) as u32]).collect::<Vec<_>>());
        let relevant =
            RatedItems::from_rows(&(0..70).map(|u| vec![((u + 1) % 9) as u32]).collect::<Vec<_>>());
        let users: Vec<u32> = (0..70).collect();
        let counts = vec![1u64; 9];
        let input = EvalInput {
            users: &users,
            exclude: &exclude,
            relevant: &relevant,
            train_counts: &counts,
            genres: &[],
        };
        let out = evaluate(&model, &input).unwrap();
        let lists = top_lists(&model, &users, Some(&exclude), 5).unwrap();
        assert_eq!(lists, out.lists.slice(s![.., ..5]));
        // Without exclusion every movie is a candidate; by hand for user 1: scores
        // (2, 0, 3, 1, 4, 2, 0, 3, 1) -> 4, 2, 7, 0, 5 (ties by lower index).
        let all = top_lists(&model, &[1, 0], None, 5).unwrap();
        assert_eq!(all.row(0).to_vec(), vec![4, 2, 7, 0, 5]);
        // k larger than the candidates pads; a user or movie out of range is an error.
        let long = top_lists(&model, &[3], Some(&exclude), 12).unwrap();
        assert_eq!(long.row(0).iter().filter(|&&j| j == NO_ITEM).count(), 4);
        assert!(top_lists(&model, &[70], None, 5).is_err());
        assert!(top_lists(&model, &[0], Some(&RatedItems::from_rows(&[vec![9]])), 5).is_err());
        assert!(top_lists(&model, &[0], None, 0).is_err());
    }

    #[test]
    fn first_relevant_rank_ignores_excluded_and_nan_relevant() {
        // Scores (0.9, NaN, 0.5, 0.7); exclude movie 0; relevant {1, 2}. Candidates ranked:
        // 3 (0.7), 2 (0.5), 1 (NaN): first relevant is movie 2 at rank 1 -> MRR 1/2; the NaN
        // movie is never listed.
        let model = Fixed(array![[0.9f32, f32::NAN, 0.5, 0.7]]);
        let exclude = RatedItems::from_rows(&[vec![0]]);
        let relevant = RatedItems::from_rows(&[vec![1, 2]]);
        let counts = vec![3u64, 1, 0, 0];
        let genres = vec![vec![0], vec![0, 1], vec![1], vec![0]];
        let input = EvalInput {
            users: &[0],
            exclude: &exclude,
            relevant: &relevant,
            train_counts: &counts,
            genres: &genres,
        };
        let out = evaluate(&model, &input).unwrap();
        assert_abs_diff_eq!(out.metrics.mrr, 0.5, epsilon = 1e-12);
        assert_eq!(
            out.lists.row(0).iter().filter(|&&j| j != NO_ITEM).copied().collect::<Vec<_>>(),
            vec![3, 2]
        );
        // Recall@10 = 1 / min(10, 2); the top-10 {3, 2}: genres {0} vs {1}, distance 1.
        assert_abs_diff_eq!(out.metrics.recall[0], 0.5, epsilon = 1e-12);
        assert_abs_diff_eq!(out.metrics.genre_diversity_10, 1.0, epsilon = 1e-12);
        // Novelty: movies 3 and 2 unseen in training count once of 4 interactions: 2 bits each.
        assert_abs_diff_eq!(out.metrics.novelty_bits_10, 2.0, epsilon = 1e-12);
        let none = EvalInput { users: &[], ..input };
        assert!(evaluate(&model, &none).is_err());
        let bad = RatedItems::from_rows(&[vec![9]]);
        assert!(evaluate(&model, &EvalInput { exclude: &bad, ..input }).is_err());
    }

    #[test]
    fn subset_scorer_spreads_columns_and_leaves_nan() {
        let inner = Fixed(array![[1.0f32, 2.0], [3.0, 4.0]]);
        let map = [1u32, 3];
        let wide = SubsetScorer::new(&inner, &map, 4).unwrap();
        let mut out = Array2::zeros((1, 4));
        wide.score_block(&[1], out.view_mut()).unwrap();
        assert!(out[[0, 0]].is_nan() && out[[0, 2]].is_nan());
        assert_eq!((out[[0, 1]], out[[0, 3]]), (3.0, 4.0));
        assert!(SubsetScorer::new(&inner, &[3, 1], 4).is_err());
        assert!(SubsetScorer::new(&inner, &[1, 4], 4).is_err());
        assert!(SubsetScorer::new(&inner, &[1], 4).is_err());
    }

    #[test]
    fn profile_scores_rank_by_cosine_to_the_mean_watched_vector() {
        // e0 = (1, 0), e1 = (0, 1), e2 = (2, 1), e3 = (0, 0) (no vector).
        let e = array![[1.0f32, 0.0], [0.0, 1.0], [2.0, 1.0], [0.0, 0.0]];
        let watched = RatedItems::from_rows(&[vec![0], vec![0, 1], vec![]]);
        let model = ProfileScores::new(e.view(), &watched).unwrap();
        let mut out = Array2::zeros((3, 4));
        model.score_block(&[0, 1, 2], out.view_mut()).unwrap();
        // User 0: profile (1, 0): cosines 1, 0, 2/sqrt5. User 1: profile (0.5, 0.5), scores are
        // the dot with unit vectors: 0.5, 0.5, 1.5/sqrt5. User 2: zero profile.
        let r5 = 5f32.sqrt();
        assert_abs_diff_eq!(out[[0, 2]], 2.0 / r5, epsilon = 1e-6);
        assert_abs_diff_eq!(out[[1, 0]], 0.5, epsilon = 1e-6);
        assert_abs_diff_eq!(out[[1, 2]], 1.5 / r5, epsilon = 1e-6);
        assert_eq!(out[[2, 1]], 0.0);
        assert!(out.column(3).iter().all(|x| x.is_nan()));
    }
}
