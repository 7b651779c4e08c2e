//! Top-N lists for many users in bounded memory, and leave-last-out ranks over the full
//! catalogue, for factor models `score(u, j) = offset + b_u + c_j + p_u . q_j`.
//!
//! # How the scores are computed
//! Users are cut into blocks of `block_users` rows and movies into tiles of `item_tile` columns.
//! For each (block, tile) one GEMM through ndarray (`general_mat_mul`, the `matrixmultiply`
//! kernels: on this CPU as fast as single-threaded OpenBLAS for k = 64, see ARCHITECTURE.md)
//! computes `[P_block | 1] . [Q_tile | c_tile]^T`, so the movie bias rides along as an extra
//! column. The tile is scanned at once while it is still in cache, so the memory in flight is
//! `O(block_users x item_tile)` per thread: the U x M score matrix never exists. Rayon runs the
//! user blocks in parallel; each block writes its own rows of the output.
//!
//! # Selection
//! Per user a [`TopKSelector`] keeps a candidate buffer and a threshold. Chunks of 16 scores
//! whose maximum does not beat the threshold are skipped with one comparison; when the buffer
//! fills, `select_nth_unstable` keeps the k best and raises the threshold; at the end the k
//! survivors are sorted. Order and ties follow [`crate::ranking`] (higher score first, equal
//! scores by lower movie index). Scores that are NaN or minus infinity are never listed; rated
//! movies are excluded by turning their scores into NaN. A user with fewer than k candidates gets
//! rows padded with [`NO_ITEM`] and minus infinity.
//!
//! `b_u` and `offset` do not change a user's ranking, so they are added to the k reported scores
//! only; the optional [`ScoreLink`] (a sigmoid) is monotone, so it too changes the reported scores,
//! never the order.

use ndarray::linalg::general_mat_mul;
use ndarray::{s, Array2, ArrayView1, ArrayView2, ArrayViewMut2, Axis};
use rayon::prelude::*;

use crate::error::{check_index, check_len, MetricsError, Result};
use crate::ranking::target_rank;

/// Index used to pad top-N rows of users with fewer than k candidates.
pub const NO_ITEM: u32 = u32::MAX;

/// Monotone map from a raw factor score to the reported score.
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub enum ScoreLink {
    /// Report the raw score.
    #[default]
    Identity,
    /// `σ(x)` (P3's model).
    Sigmoid,
    /// `σ(x) (hi - lo) + lo` (P2's `sigmoid_range`).
    SigmoidRange {
        /// Lower end.
        lo: f32,
        /// Upper end.
        hi: f32,
    },
}

impl ScoreLink {
    /// Applies the link.
    pub fn apply(self, x: f32) -> f32 {
        let sigmoid = |x: f32| 1.0 / (1.0 + (-x).exp());
        match self {
            ScoreLink::Identity => x,
            ScoreLink::Sigmoid => sigmoid(x),
            ScoreLink::SigmoidRange { lo, hi } => sigmoid(x) * (hi - lo) + lo,
        }
    }
}

/// A factor model seen as plain arrays: `score(u, j) = link(offset + b_u + c_j + p_u . q_j)`.
#[derive(Debug, Clone, Copy)]
pub struct FactorScores<'a> {
    /// `P`, users x k.
    pub user_factors: ArrayView2<'a, f32>,
    /// `Q`, movies x k.
    pub item_factors: ArrayView2<'a, f32>,
    /// `b`, one per user.
    pub user_bias: Option<ArrayView1<'a, f32>>,
    /// `c`, one per movie.
    pub item_bias: Option<ArrayView1<'a, f32>>,
    /// A constant added to every score (a global mean, for instance).
    pub offset: f32,
    /// Applied to reported scores (monotone, so rankings ignore it).
    pub link: ScoreLink,
}

impl<'a> FactorScores<'a> {
    /// A model without biases, offset or link; fails when the factor widths differ.
    pub fn new(user_factors: ArrayView2<'a, f32>, item_factors: ArrayView2<'a, f32>) -> Result<Self> {
        check_len(
            "FactorScores: item factor width vs user factor width",
            user_factors.ncols(),
            item_factors.ncols(),
        )?;
        Ok(FactorScores {
            user_factors,
            item_factors,
            user_bias: None,
            item_bias: None,
            offset: 0.0,
            link: ScoreLink::Identity,
        })
    }

    /// Adds per-user biases (one per user row).
    pub fn with_user_bias(mut self, bias: ArrayView1<'a, f32>) -> Result<Self> {
        check_len("FactorScores: user bias length", self.n_users(), bias.len())?;
        self.user_bias = Some(bias);
        Ok(self)
    }

    /// Adds per-movie biases (one per movie row).
    pub fn with_item_bias(mut self, bias: ArrayView1<'a, f32>) -> Result<Self> {
        check_len("FactorScores: item bias length", self.n_items(), bias.len())?;
        self.item_bias = Some(bias);
        Ok(self)
    }

    /// Sets the constant offset.
    pub fn with_offset(mut self, offset: f32) -> Self {
        self.offset = offset;
        self
    }

    /// Sets the reported-score link.
    pub fn with_link(mut self, link: ScoreLink) -> Self {
        self.link = link;
        self
    }

    /// Number of users.
    pub fn n_users(&self) -> usize {
        self.user_factors.nrows()
    }

    /// Number of movies.
    pub fn n_items(&self) -> usize {
        self.item_factors.nrows()
    }

    /// The part of a score that does not depend on the movie: `offset + b_u`.
    fn user_constant(&self, user: usize) -> f32 {
        self.offset + self.user_bias.map_or(0.0, |b| b[user])
    }

    /// The full reported score of one pair, `link(offset + b_u + c_j + p_u . q_j)`.
    pub fn score(&self, user: u32, item: u32) -> Result<f32> {
        check_index("FactorScores::score user", user as usize, self.n_users())?;
        check_index("FactorScores::score item", item as usize, self.n_items())?;
        let (u, j) = (user as usize, item as usize);
        let dot = self.user_factors.row(u).dot(&self.item_factors.row(j));
        let raw = dot + self.item_bias.map_or(0.0, |c| c[j]) + self.user_constant(u);
        Ok(self.link.apply(raw))
    }

    /// `[Q | c]` (movies x (k + 1)) when there is a movie bias, else `Q` itself (copied into
    /// standard layout).
    fn augmented_items(&self) -> Array2<f32> {
        let (m, k) = self.item_factors.dim();
        match self.item_bias {
            Some(c) => {
                let mut q = Array2::zeros((m, k + 1));
                q.slice_mut(s![.., ..k]).assign(&self.item_factors);
                q.column_mut(k).assign(&c);
                q
            }
            None => self.item_factors.as_standard_layout().into_owned(),
        }
    }

    /// `[P_users | 1]` for a block of users, matching [`Self::augmented_items`].
    fn augmented_users(&self, users: &[u32]) -> Array2<f32> {
        let k = self.user_factors.ncols();
        let width = if self.item_bias.is_some() { k + 1 } else { k };
        let mut a = Array2::ones((users.len(), width));
        for (row, &u) in users.iter().enumerate() {
            a.slice_mut(s![row, ..k]).assign(&self.user_factors.row(u as usize));
        }
        a
    }
}

/// Movies each user rated (or otherwise must not be recommended), as CSR rows sorted ascending
/// without duplicates. The workspace's one owner of this table: top-N exclusions here and on the
/// GPU, `rated.safetensors` in run directories, `recommend --exclude-rated`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RatedItems {
    indptr: Vec<usize>,
    indices: Vec<u32>,
}

impl RatedItems {
    /// Builds the rows from (user, movie) pairs; duplicates are dropped.
    pub fn from_pairs(n_users: usize, users: &[u32], items: &[u32]) -> Result<Self> {
        check_len("RatedItems::from_pairs: movies vs users", users.len(), items.len())?;
        let mut counts = vec![0usize; n_users + 1];
        for &u in users {
            check_index("RatedItems user", u as usize, n_users)?;
            counts[u as usize + 1] += 1;
        }
        for u in 0..n_users {
            counts[u + 1] += counts[u];
        }
        let mut fill = counts.clone();
        let mut indices = vec![0u32; users.len()];
        for (&u, &j) in users.iter().zip(items) {
            indices[fill[u as usize]] = j;
            fill[u as usize] += 1;
        }
        Self::from_unsorted_csr(counts, indices)
    }

    /// Builds the rows from the (user, movie) pairs of the given `rows` of two columns.
    pub fn from_rows_of(n_users: usize, users: &[u32], items: &[u32], rows: &[u32]) -> Result<Self> {
        check_len("RatedItems::from_rows_of: movies vs users", users.len(), items.len())?;
        let mut u = Vec::with_capacity(rows.len());
        let mut m = Vec::with_capacity(rows.len());
        for &r in rows {
            check_index("RatedItems row", r as usize, users.len())?;
            u.push(users[r as usize]);
            m.push(items[r as usize]);
        }
        Self::from_pairs(n_users, &u, &m)
    }

    /// Rebuilds the table from stored CSR arrays (`indptr` of `n_users + 1` offsets starting at 0,
    /// non-decreasing, ending at `indices.len()`); rows are sorted and de-duplicated.
    pub fn from_csr(indptr: Vec<usize>, indices: Vec<u32>) -> Result<Self> {
        let consistent = indptr.first() == Some(&0)
            && indptr.windows(2).all(|w| w[0] <= w[1])
            && indptr.last() == Some(&indices.len());
        if !consistent {
            return Err(MetricsError::InvalidParameter {
                name: "indptr",
                value: format!("{} offsets for {} movies", indptr.len(), indices.len()),
                reason: "offsets must start at 0, never decrease and end at the number of movies",
            });
        }
        Self::from_unsorted_csr(indptr, indices)
    }

    /// How many rows hold each movie (`n_movies` counts; a movie index at or above `n_movies`
    /// is an error): the training counts of a run's rated table.
    pub fn movie_counts(&self, n_movies: usize) -> Result<Vec<u32>> {
        let mut counts = vec![0u32; n_movies];
        for &j in &self.indices {
            check_index("RatedItems movie", j as usize, n_movies)?;
            counts[j as usize] += 1;
        }
        Ok(counts)
    }

    /// The CSR offsets (`n_users + 1`).
    pub fn indptr(&self) -> &[usize] {
        &self.indptr
    }

    /// The concatenated rows.
    pub fn indices(&self) -> &[u32] {
        &self.indices
    }

    /// Builds the rows from one list per user.
    pub fn from_rows(rows: &[Vec<u32>]) -> Self {
        let mut indptr = Vec::with_capacity(rows.len() + 1);
        indptr.push(0);
        let mut indices = Vec::new();
        for row in rows {
            indices.extend_from_slice(row);
            indptr.push(indices.len());
        }
        // Lengths are consistent by construction.
        Self::from_unsorted_csr(indptr, indices).unwrap_or_else(|_| unreachable!())
    }

    fn from_unsorted_csr(indptr: Vec<usize>, mut indices: Vec<u32>) -> Result<Self> {
        let mut out_ptr = Vec::with_capacity(indptr.len());
        out_ptr.push(0);
        let mut write = 0usize;
        for w in indptr.windows(2) {
            let row = &mut indices[w[0]..w[1]];
            row.sort_unstable();
            let mut last = None;
            for i in w[0]..w[1] {
                let j = indices[i];
                if last != Some(j) {
                    indices[write] = j;
                    write += 1;
                    last = Some(j);
                }
            }
            out_ptr.push(write);
        }
        indices.truncate(write);
        Ok(RatedItems { indptr: out_ptr, indices })
    }

    /// Number of user rows.
    pub fn n_users(&self) -> usize {
        self.indptr.len() - 1
    }

    /// The sorted, de-duplicated movies of `user` (empty past the last row).
    pub fn row(&self, user: u32) -> &[u32] {
        let u = user as usize;
        if u + 1 >= self.indptr.len() {
            return &[];
        }
        &self.indices[self.indptr[u]..self.indptr[u + 1]]
    }
}

impl Default for RatedItems {
    /// No users.
    fn default() -> Self {
        RatedItems { indptr: vec![0], indices: Vec::new() }
    }
}

/// Orders candidates: higher score first, equal scores by lower index (see [`crate::ranking`]).
#[inline]
fn candidate_order(a: &(f32, u32), b: &(f32, u32)) -> std::cmp::Ordering {
    b.0.total_cmp(&a.0).then(a.1.cmp(&b.1))
}

/// Streaming top-k of one score row, fed in increasing index order.
#[derive(Debug, Clone)]
pub struct TopKSelector {
    k: usize,
    capacity: usize,
    buffer: Vec<(f32, u32)>,
    threshold: f32,
}

impl TopKSelector {
    /// A selector for the `k` best candidates; `k` must be positive.
    pub fn new(k: usize) -> Result<Self> {
        if k == 0 {
            return Err(MetricsError::InvalidParameter {
                name: "k",
                value: "0".into(),
                reason: "must be positive",
            });
        }
        let capacity = (4 * k).max(k + 64);
        Ok(TopKSelector { k, capacity, buffer: Vec::with_capacity(capacity), threshold: f32::NEG_INFINITY })
    }

    /// Forgets every candidate.
    pub fn reset(&mut self) {
        self.buffer.clear();
        self.threshold = f32::NEG_INFINITY;
    }

    fn prune(&mut self) {
        if self.buffer.len() > self.k {
            self.buffer.select_nth_unstable_by(self.k - 1, candidate_order);
            self.buffer.truncate(self.k);
        }
        if self.buffer.len() == self.k {
            // The worst survivor: later candidates (higher indices) must beat it strictly.
            self.threshold = self.buffer.iter().map(|c| c.0).fold(f32::INFINITY, f32::min);
        }
    }

    /// Offers `scores[i]` as candidate `first_index + i`. Indices must exceed every index offered
    /// before (tiles arrive in order), which is what lets ties at the threshold be rejected.
    pub fn push_slice(&mut self, scores: &[f32], first_index: u32) {
        const CHUNK: usize = 16;
        let mut chunks = scores.chunks_exact(CHUNK);
        for (c, chunk) in chunks.by_ref().enumerate() {
            // An OR of comparisons over a fixed-size chunk vectorises (a max-fold does not, because
            // of `f32::max`'s NaN rule); NaN compares false, so NaN scores never pass.
            let threshold = self.threshold;
            let any_above = chunk.iter().fold(false, |acc, &x| acc | (x > threshold));
            if any_above {
                self.push_scalar(chunk, first_index + (c * CHUNK) as u32);
            }
        }
        let tail = chunks.remainder();
        self.push_scalar(tail, first_index + (scores.len() - tail.len()) as u32);
    }

    fn push_scalar(&mut self, scores: &[f32], first_index: u32) {
        for (i, &x) in scores.iter().enumerate() {
            if x > self.threshold {
                self.buffer.push((x, first_index + i as u32));
                if self.buffer.len() == self.capacity {
                    self.prune();
                }
            }
        }
    }

    /// The best candidates, best first (at most k).
    pub fn finish(&mut self) -> &[(f32, u32)] {
        self.prune();
        self.buffer.sort_unstable_by(candidate_order);
        &self.buffer
    }
}

/// The `k` best candidates of one score row, best first, skipping `excluded_sorted`, NaN and minus
/// infinity. For models that are not factor models (score rows from `score_all`).
pub fn top_k_of_row(scores: &[f32], k: usize, excluded_sorted: &[u32]) -> Result<Vec<(u32, f32)>> {
    let mut selector = TopKSelector::new(k)?;
    if excluded_sorted.is_empty() {
        selector.push_slice(scores, 0);
    } else {
        let mut masked = scores.to_vec();
        for &j in excluded_sorted {
            if let Some(s) = masked.get_mut(j as usize) {
                *s = f32::NAN;
            }
        }
        selector.push_slice(&masked, 0);
    }
    Ok(selector.finish().iter().map(|&(s, j)| (j, s)).collect())
}

/// Block and tile sizes of the blocked top-N.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TopNConfig {
    /// List length.
    pub k: usize,
    /// Users per block; 0 picks `clamp(users / (4 x threads), 8, 256)`.
    pub block_users: usize,
    /// Movies per GEMM tile (a tile is `block_users x item_tile` f32).
    pub item_tile: usize,
}

impl Default for TopNConfig {
    fn default() -> Self {
        TopNConfig { k: 10, block_users: 0, item_tile: 2048 }
    }
}

impl TopNConfig {
    /// The default sizes with list length `k`.
    pub fn with_k(k: usize) -> Self {
        TopNConfig { k, ..Self::default() }
    }

    fn block_for(&self, n_users: usize) -> usize {
        if self.block_users > 0 {
            return self.block_users;
        }
        (n_users / (4 * rayon::current_num_threads())).clamp(8, 256)
    }
}

/// Top-N lists: row r holds the list of the r-th requested user, best first.
#[derive(Debug, Clone, PartialEq)]
pub struct TopN {
    /// Movie indices (users x k), padded with [`NO_ITEM`].
    pub indices: Array2<u32>,
    /// Reported scores (users x k), padded with minus infinity.
    pub scores: Array2<f32>,
}

impl TopN {
    /// The valid movies of row `r` (padding dropped).
    pub fn list(&self, r: usize) -> impl Iterator<Item = u32> + '_ {
        self.indices.row(r).into_iter().copied().filter(|&j| j != NO_ITEM)
    }
}

/// Top-N for every user of the model. See [`top_n_for_users`].
pub fn top_n(model: &FactorScores<'_>, config: &TopNConfig, exclude: Option<&RatedItems>) -> Result<TopN> {
    let users: Vec<u32> = (0..model.n_users() as u32).collect();
    top_n_for_users(model, &users, config, exclude)
}

/// Top-N for the listed users, in bounded memory (see the module docs). Rows of the result follow
/// `users`. With `exclude`, each user's rated movies are never listed.
pub fn top_n_for_users(
    model: &FactorScores<'_>,
    users: &[u32],
    config: &TopNConfig,
    exclude: Option<&RatedItems>,
) -> Result<TopN> {
    let k = config.k;
    TopKSelector::new(k)?;
    if config.item_tile == 0 {
        return Err(MetricsError::InvalidParameter {
            name: "item_tile",
            value: "0".into(),
            reason: "must be positive",
        });
    }
    for &u in users {
        check_index("top_n user", u as usize, model.n_users())?;
    }
    let block = config.block_for(users.len());
    let items = model.augmented_items();
    let mut indices = Array2::from_elem((users.len(), k), NO_ITEM);
    let mut scores = Array2::from_elem((users.len(), k), f32::NEG_INFINITY);
    indices
        .axis_chunks_iter_mut(Axis(0), block)
        .into_par_iter()
        .zip(scores.axis_chunks_iter_mut(Axis(0), block))
        .zip(users.par_chunks(block))
        .try_for_each(|((mut idx_rows, mut score_rows), block_users)| {
            let mut selectors = vec![TopKSelector::new(k)?; block_users.len()];
            let a = model.augmented_users(block_users);
            let tile_width = config.item_tile.min(items.nrows().max(1));
            let mut tile = Array2::<f32>::zeros((block_users.len(), tile_width));
            for m0 in (0..items.nrows()).step_by(tile_width) {
                let m1 = (m0 + tile_width).min(items.nrows());
                let mut view = tile.slice_mut(s![.., ..m1 - m0]);
                general_mat_mul(1.0, &a, &items.slice(s![m0..m1, ..]).t(), 0.0, &mut view);
                scan_tile(&mut view, block_users, m0, exclude, &mut selectors);
            }
            for (r, selector) in selectors.iter_mut().enumerate() {
                let constant = model.user_constant(block_users[r] as usize);
                for (slot, &(s, j)) in selector.finish().iter().enumerate() {
                    idx_rows[[r, slot]] = j;
                    score_rows[[r, slot]] = model.link.apply(s + constant);
                }
            }
            Ok::<(), MetricsError>(())
        })?;
    Ok(TopN { indices, scores })
}

/// Masks excluded movies of the tile `[m0, m0 + width)` and feeds each row to its selector.
fn scan_tile(
    tile: &mut ArrayViewMut2<'_, f32>,
    block_users: &[u32],
    m0: usize,
    exclude: Option<&RatedItems>,
    selectors: &mut [TopKSelector],
) {
    let width = tile.ncols();
    for (r, mut row) in tile.axis_iter_mut(Axis(0)).enumerate() {
        if let Some(rated) = exclude {
            let excluded = rated.row(block_users[r]);
            let start = excluded.partition_point(|&j| (j as usize) < m0);
            for &j in excluded[start..].iter().take_while(|&&j| (j as usize) < m0 + width) {
                row[j as usize - m0] = f32::NAN;
            }
        }
        match row.as_slice() {
            Some(slice) => selectors[r].push_slice(slice, m0 as u32),
            None => selectors[r].push_slice(&row.to_vec(), m0 as u32),
        }
    }
}

/// Leave-last-out ranks: for each `(users[i], targets[i])`, the 0-based rank of the target among
/// all movies not in the user's `exclude` row (the target itself is never excluded), by the order
/// of [`crate::ranking`]. Summarise with [`crate::ranking::RankSummary::from_ranks`] (hit-rate@10,
/// NDCG@10). Full score rows are computed for blocks of 64 users (`64 x M` f32 per thread).
pub fn next_item_ranks(
    model: &FactorScores<'_>,
    users: &[u32],
    targets: &[u32],
    exclude: Option<&RatedItems>,
) -> Result<Vec<usize>> {
    check_len("next_item_ranks: targets vs users", users.len(), targets.len())?;
    for (&u, &t) in users.iter().zip(targets) {
        check_index("next_item_ranks user", u as usize, model.n_users())?;
        check_index("next_item_ranks target", t as usize, model.n_items())?;
    }
    const BLOCK: usize = 64;
    let items = model.augmented_items();
    let chunks: Vec<Vec<usize>> = users
        .par_chunks(BLOCK)
        .zip(targets.par_chunks(BLOCK))
        .map(|(block_users, block_targets)| {
            let a = model.augmented_users(block_users);
            // Row-major output, so every user's row is one contiguous slice.
            let mut block_scores = Array2::<f32>::zeros((block_users.len(), items.nrows()));
            general_mat_mul(1.0, &a, &items.t(), 0.0, &mut block_scores);
            block_users
                .iter()
                .zip(block_targets)
                .enumerate()
                .map(|(r, (&u, &t))| {
                    let row = block_scores.row(r);
                    let excluded = exclude.map_or(&[][..], |rated| rated.row(u));
                    let slice = row
                        .as_slice()
                        .unwrap_or_else(|| unreachable!("rows of a fresh array are contiguous"));
                    target_rank(slice, t, excluded)
                })
                .collect::<Result<Vec<usize>>>()
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(chunks.into_iter().flatten().collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_abs_diff_eq;
    use ndarray::array;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// Brute force: full scores, sort by the crate order, drop excluded and non-finite.
    fn brute_force(model: &FactorScores<'_>, user: u32, k: usize, excluded: &[u32]) -> Vec<(u32, f32)> {
        let mut all: Vec<(f32, u32)> = (0..model.n_items() as u32)
            .filter(|j| !excluded.contains(j))
            .map(|j| {
                let u = user as usize;
                let raw = model.user_factors.row(u).dot(&model.item_factors.row(j as usize))
                    + model.item_bias.map_or(0.0, |c| c[j as usize]);
                (raw, j)
            })
            .collect();
        all.sort_by(candidate_order);
        all.truncate(k);
        all.into_iter().map(|(s, j)| (j, model.link.apply(s + model.user_constant(user as usize)))).collect()
    }

    #[test]
    fn top_n_by_hand_with_biases_and_exclusion() {
        // k = 1 factors. User 0: p = 1; user 1: p = -1. Movies q = (3, 1, 2, 0), c = (0, 1, 0, 2.5).
        // Raw scores user 0: 3, 2, 2, 2.5; user 1: -3, 0, -2, 2.5.
        let p = array![[1.0f32], [-1.0]];
        let q = array![[3.0f32], [1.0], [2.0], [0.0]];
        let c = array![0.0f32, 1.0, 0.0, 2.5];
        let b = array![0.5f32, -0.5];
        let model = FactorScores::new(p.view(), q.view())
            .unwrap()
            .with_item_bias(c.view())
            .unwrap()
            .with_user_bias(b.view())
            .unwrap()
            .with_offset(1.0);
        let config = TopNConfig { k: 3, block_users: 1, item_tile: 3 };
        let top = top_n(&model, &config, None).unwrap();
        // User 0: 3 (movie 0), 2.5 (movie 3), then the tie at 2 between movies 1 and 2 -> movie 1.
        assert_eq!(top.indices.row(0).to_vec(), vec![0, 3, 1]);
        assert_eq!(top.scores.row(0).to_vec(), vec![4.5, 4.0, 3.5]);
        // User 1: 2.5 (movie 3), 0 (movie 1), -2 (movie 2); reported + 1 - 0.5.
        assert_eq!(top.indices.row(1).to_vec(), vec![3, 1, 2]);
        assert_eq!(top.scores.row(1).to_vec(), vec![3.0, 0.5, -1.5]);
        // Excluding movies 0 and 3 for user 0 and movie 3 for user 1: user 0 has two candidates
        // left for k = 3, so the row is padded.
        let rated = RatedItems::from_pairs(2, &[0, 0, 1], &[3, 0, 3]).unwrap();
        let top = top_n(&model, &config, Some(&rated)).unwrap();
        assert_eq!(top.indices.row(0).to_vec(), vec![1, 2, NO_ITEM]);
        assert_eq!(top.scores[[0, 2]], f32::NEG_INFINITY);
        assert_eq!(top.list(0).collect::<Vec<_>>(), vec![1, 2]);
        assert_eq!(top.indices.row(1).to_vec(), vec![1, 2, 0]);
    }

    #[test]
    fn sigmoid_link_changes_scores_not_order() {
        let p = array![[1.0f32, 0.0]];
        let q = array![[0.0f32, 1.0], [2.0, 0.0], [1.0, 0.0]];
        let model = FactorScores::new(p.view(), q.view()).unwrap().with_link(ScoreLink::Sigmoid);
        let top = top_n(&model, &TopNConfig::with_k(3), None).unwrap();
        assert_eq!(top.indices.row(0).to_vec(), vec![1, 2, 0]);
        assert_abs_diff_eq!(top.scores[[0, 0]], 1.0 / (1.0 + (-2.0f32).exp()), epsilon = 1e-6);
        assert_abs_diff_eq!(model.score(0, 2).unwrap(), 1.0 / (1.0 + (-1.0f32).exp()), epsilon = 1e-6);
        let range = ScoreLink::SigmoidRange { lo: 0.0, hi: 5.5 };
        assert_abs_diff_eq!(range.apply(0.0), 2.75, epsilon = 1e-6);
    }

    #[test]
    fn blocked_top_n_matches_brute_force_on_random_models() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let (n_users, n_items, k) = (37, 301, 5);
        let p = Array2::from_shape_fn((n_users, k), |_| rng.random_range(-1.0f32..1.0));
        // Quantised movie factors create many exact ties.
        let q = Array2::from_shape_fn((n_items, k), |_| rng.random_range(-2i32..=2) as f32 * 0.5);
        let c = ndarray::Array1::from_shape_fn(n_items, |_| rng.random_range(-1i32..=1) as f32 * 0.25);
        let rows: Vec<Vec<u32>> =
            (0..n_users).map(|_| (0..20).map(|_| rng.random_range(0..n_items as u32)).collect()).collect();
        let rated = RatedItems::from_rows(&rows);
        let model = FactorScores::new(p.view(), q.view()).unwrap().with_item_bias(c.view()).unwrap();
        for &(block_users, item_tile, list_len) in
            &[(1usize, 7usize, 10usize), (8, 64, 1), (0, 2048, 50), (5, 300, 301)]
        {
            let config = TopNConfig { k: list_len, block_users, item_tile };
            for exclude in [None, Some(&rated)] {
                let top = top_n(&model, &config, exclude).unwrap();
                for u in 0..n_users as u32 {
                    let excluded = exclude.map_or(&[][..], |r| r.row(u));
                    let expected = brute_force(&model, u, list_len, excluded);
                    let got: Vec<(u32, f32)> =
                        top.list(u as usize).zip(top.scores.row(u as usize).iter().copied()).collect();
                    assert_eq!(got.len(), expected.len());
                    for (g, e) in got.iter().zip(&expected) {
                        assert_eq!(g.0, e.0, "user {u}, config {config:?}");
                        assert_abs_diff_eq!(g.1, e.1, epsilon = 1e-5);
                    }
                }
            }
        }
    }

    #[test]
    fn top_n_for_a_subset_of_users_and_rows_of_scores() {
        let p = array![[1.0f32], [2.0], [-1.0]];
        let q = array![[1.0f32], [-1.0], [0.5]];
        let model = FactorScores::new(p.view(), q.view()).unwrap();
        let top = top_n_for_users(&model, &[2, 0], &TopNConfig::with_k(2), None).unwrap();
        assert_eq!(top.indices.row(0).to_vec(), vec![1, 2]);
        assert_eq!(top.indices.row(1).to_vec(), vec![0, 2]);
        assert!(top_n_for_users(&model, &[3], &TopNConfig::with_k(2), None).is_err());
        let row = [0.1f32, f32::NAN, 0.7, f32::NEG_INFINITY, 0.7];
        assert_eq!(top_k_of_row(&row, 10, &[]).unwrap(), vec![(2, 0.7), (4, 0.7), (0, 0.1)]);
        assert_eq!(top_k_of_row(&row, 2, &[2]).unwrap(), vec![(4, 0.7), (0, 0.1)]);
    }

    #[test]
    fn next_item_ranks_by_hand() {
        // Scores user 0: (3, 1, 2, 2); user 1: (-3, -1, -2, -2).
        let p = array![[1.0f32], [-1.0]];
        let q = array![[3.0f32], [1.0], [2.0], [2.0]];
        let model = FactorScores::new(p.view(), q.view()).unwrap();
        let ranks = next_item_ranks(&model, &[0, 0, 1, 1], &[3, 2, 1, 0], None).unwrap();
        assert_eq!(ranks, vec![2, 1, 0, 3]);
        // Excluding movie 0 for user 0 lifts both of user 0's targets.
        let rated = RatedItems::from_rows(&[vec![0], vec![]]);
        let ranks = next_item_ranks(&model, &[0, 0], &[3, 2], Some(&rated)).unwrap();
        assert_eq!(ranks, vec![1, 0]);
    }

    #[test]
    fn rated_items_sort_and_dedup() {
        let rated = RatedItems::from_pairs(3, &[2, 0, 2, 2, 0], &[5, 1, 3, 5, 0]).unwrap();
        assert_eq!(rated.row(0), &[0, 1]);
        assert_eq!(rated.row(1), &[] as &[u32]);
        assert_eq!(rated.row(2), &[3, 5]);
        assert_eq!(rated.n_users(), 3);
        assert!(RatedItems::from_pairs(2, &[2], &[0]).is_err());
        // Movie 5 is rated by user 2 once after de-duplication; movie 6 is out of range.
        assert_eq!(rated.movie_counts(6).unwrap(), vec![1, 1, 0, 1, 0, 1]);
        assert!(rated.movie_counts(5).is_err());
    }
}
