//! The transforms the five pipelines apply, as pure functions over a [`Dataset`] or its columns.
//!
//! Filters return a new dataset whose users and movies are re-indexed densely, keeping the
//! relative order of the old dense indices (so "order of first appearance" survives), keeping the
//! rows' relative order and the whole catalogue. Splits return row (or user) indices.

use std::collections::HashMap;
use std::path::Path;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::assemble::{rows_by_user, select_rows};
use crate::catalogue::read_file;
use crate::error::DataError;
use crate::parse::{parse_ratings, Delim, RowSpec};
use crate::types::{Dataset, IdMap, Ratings};

/// Keeps the rows in `rows` (ascending) and re-indexes users and movies densely.
pub fn subset(ds: &Dataset, rows: &[u32]) -> Dataset {
    let r = select_rows(&ds.ratings, rows);
    let (users, user) = reindex(&r.user, &ds.users);
    let (movies, movie) = reindex(&r.movie, &ds.movies);
    Dataset {
        ratings: Ratings { user, movie, rating: r.rating, timestamp: r.timestamp },
        users,
        movies,
        catalogue: ds.catalogue.clone(),
        report: ds.report.clone(),
    }
}

/// Re-indexes the dense ids that occur in `ids`, keeping their relative order.
fn reindex(ids: &[u32], old: &IdMap) -> (IdMap, Vec<u32>) {
    let mut present = vec![false; old.len()];
    for &i in ids {
        present[i as usize] = true;
    }
    let mut new_index = vec![u32::MAX; old.len()];
    let mut raws = Vec::new();
    for (i, p) in present.iter().enumerate() {
        if *p {
            new_index[i] = raws.len() as u32;
            raws.push(old.raws()[i]);
        }
    }
    (IdMap::from_dense_order(raws), ids.iter().map(|&i| new_index[i as usize]).collect())
}

/// Number of ratings of each dense index in `ids`.
pub fn counts(ids: &[u32], n: usize) -> Vec<u32> {
    let mut c = vec![0u32; n];
    for &i in ids {
        c[i as usize] += 1;
    }
    c
}

/// The `n` most-rated movies, most-rated first; ties go to the smaller raw id.
pub fn top_movies(ds: &Dataset, n: usize) -> Vec<u32> {
    let c = counts(&ds.ratings.movie, ds.movies.len());
    let mut order: Vec<u32> = (0..ds.movies.len() as u32).collect();
    order.sort_by_key(|&m| (std::cmp::Reverse(c[m as usize]), ds.movies.raws()[m as usize]));
    order.truncate(n);
    order
}

/// Keeps the ratings of the `n` most-rated movies (P0's first step; ties go to the smaller raw id).
pub fn keep_top_movies(ds: &Dataset, n: usize) -> Dataset {
    let mut keep = vec![false; ds.movies.len()];
    for m in top_movies(ds, n) {
        keep[m as usize] = true;
    }
    let rows: Vec<u32> =
        (0..ds.ratings.len() as u32).filter(|&r| keep[ds.ratings.movie[r as usize] as usize]).collect();
    subset(ds, &rows)
}

/// Keeps users with at least `min_user` ratings, then (counting again) movies with at least
/// `min_movie` ratings: one pass each, users first, as P0 does after [`keep_top_movies`]. The
/// result can hold users that fell below `min_user` through the movie filter.
pub fn filter_min_ratings(ds: &Dataset, min_user: usize, min_movie: usize) -> Dataset {
    let r = &ds.ratings;
    let uc = counts(&r.user, ds.users.len());
    let rows: Vec<u32> =
        (0..r.len() as u32).filter(|&i| uc[r.user[i as usize] as usize] as usize >= min_user).collect();
    let mut mc = vec![0u32; ds.movies.len()];
    for &i in &rows {
        mc[r.movie[i as usize] as usize] += 1;
    }
    let rows: Vec<u32> =
        rows.into_iter().filter(|&i| mc[r.movie[i as usize] as usize] as usize >= min_movie).collect();
    subset(ds, &rows)
}

/// An error when a filtered dataset has no ratings left; `what` says which filter.
pub fn require_nonempty(ds: &Dataset, what: &str) -> Result<(), DataError> {
    if ds.ratings.is_empty() {
        Err(DataError::Empty { path: "dataset".into(), context: format!("after {what}") })
    } else {
        Ok(())
    }
}

/// `rating >= threshold` per row.
pub fn liked(ratings: &Ratings, threshold: f32) -> Vec<bool> {
    ratings.rating.iter().map(|&r| r >= threshold).collect()
}

/// The range used by min-max scaling.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MinMax {
    /// Smallest value (maps to 0).
    pub min: f32,
    /// Largest value (maps to 1).
    pub max: f32,
}

impl MinMax {
    /// `(x - min) / (max - min)`; 0 when `max == min`.
    pub fn scale(&self, x: f32) -> f32 {
        let span = self.max - self.min;
        if span > 0.0 {
            (x - self.min) / span
        } else {
            0.0
        }
    }

    /// `y * (max - min) + min`, the inverse of [`MinMax::scale`].
    pub fn unscale(&self, y: f32) -> f32 {
        y * (self.max - self.min) + self.min
    }
}

/// Scales values to [0, 1] by their min and max (P3). Empty input gives `MinMax { 0, 0 }`.
pub fn min_max_scale(values: &[f32]) -> (Vec<f32>, MinMax) {
    let mut mm = MinMax { min: f32::INFINITY, max: f32::NEG_INFINITY };
    for &v in values {
        mm.min = mm.min.min(v);
        mm.max = mm.max.max(v);
    }
    if values.is_empty() {
        mm = MinMax { min: 0.0, max: 0.0 };
    }
    (values.iter().map(|&v| mm.scale(v)).collect(), mm)
}

/// Each user's rows ordered by timestamp, ties in file order.
pub fn user_rows_by_time(ratings: &Ratings, n_users: usize) -> Vec<Vec<u32>> {
    let (offsets, rows) = rows_by_user(&ratings.user, n_users);
    (0..n_users)
        .into_par_iter()
        .map(|u| {
            let mut mine = rows[offsets[u]..offsets[u + 1]].to_vec();
            mine.sort_by_key(|&r| ratings.timestamp[r as usize]); // stable
            mine
        })
        .collect()
}

/// Each user's movies ordered by timestamp, ties in file order (P0's sequences).
pub fn user_sequences(ratings: &Ratings, n_users: usize) -> Vec<Vec<u32>> {
    user_rows_by_time(ratings, n_users)
        .into_iter()
        .map(|rows| rows.into_iter().map(|r| ratings.movie[r as usize]).collect())
        .collect()
}

/// Shuffles `0..n` with `ChaCha8Rng::seed_from_u64(seed)` and cuts it: the first
/// `floor(n * train_fraction)` indices train, the rest test (both in shuffled order).
pub fn random_split(n_rows: usize, train_fraction: f64, seed: u64) -> (Vec<u32>, Vec<u32>) {
    let mut idx: Vec<u32> = (0..n_rows as u32).collect();
    idx.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    let n_train = ((n_rows as f64) * train_fraction.clamp(0.0, 1.0)).floor() as usize;
    let test = idx.split_off(n_train.min(n_rows));
    (idx, test)
}

/// Movies held out entirely, for cold-start evaluation: every rating of a held-out movie is a
/// test row, every other rating a training row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MovieHoldout {
    /// Whether each dense movie is held out.
    pub held_out: Vec<bool>,
    /// Rows of the movies kept (ascending).
    pub train: Vec<u32>,
    /// Rows of the held-out movies (ascending).
    pub test: Vec<u32>,
}

/// Holds out a `fraction` of the `n_movies` movies: the test part of
/// [`random_split`]`(n_movies, 1 - fraction, seed)` (so `n - floor(n (1 - fraction))` movies,
/// seeded), with all their ratings.
pub fn hold_out_movies(ratings: &Ratings, n_movies: usize, fraction: f64, seed: u64) -> MovieHoldout {
    let (_, out) = random_split(n_movies, 1.0 - fraction, seed);
    let mut held_out = vec![false; n_movies];
    for m in out {
        held_out[m as usize] = true;
    }
    let (mut train, mut test) = (Vec::new(), Vec::new());
    for (r, &m) in ratings.movie.iter().enumerate() {
        if held_out[m as usize] { &mut test } else { &mut train }.push(r as u32);
    }
    MovieHoldout { held_out, train, test }
}

/// Keeps the rows in `rows` (ascending) with the users and movies unchanged (unlike [`subset`]):
/// a movie without a kept row stays in the id map, unrated.
pub fn keep_rows(ds: &Dataset, rows: &[u32]) -> Dataset {
    Dataset {
        ratings: select_rows(&ds.ratings, rows),
        users: ds.users.clone(),
        movies: ds.movies.clone(),
        catalogue: ds.catalogue.clone(),
        report: ds.report.clone(),
    }
}

/// Splits users (whole sequences) like [`random_split`] splits rows.
pub fn split_users(n_users: usize, train_fraction: f64, seed: u64) -> (Vec<u32>, Vec<u32>) {
    random_split(n_users, train_fraction, seed)
}

/// The leave-last-out rule, once for rows and for sequences: a time-ordered list of at least two
/// entries gives up its last one (the held-out target) and keeps the rest (the history); a
/// shorter list keeps everything and is not evaluated.
pub fn hold_out_last<T: Copy>(list: &[T]) -> (&[T], Option<T>) {
    match list.split_last() {
        Some((&last, rest)) if !rest.is_empty() => (rest, Some(last)),
        _ => (list, None),
    }
}

/// Holds out each user's last rating by time (ties: the last in file order). Users with a single
/// rating keep it in training. Both lists are ascending row indices.
pub fn leave_last_out(ratings: &Ratings, n_users: usize) -> (Vec<u32>, Vec<u32>) {
    let mut test: Vec<u32> =
        user_rows_by_time(ratings, n_users).iter().filter_map(|rows| hold_out_last(rows).1).collect();
    test.sort_unstable();
    let mut is_test = vec![false; ratings.len()];
    for &r in &test {
        is_test[r as usize] = true;
    }
    let train = (0..ratings.len() as u32).filter(|&r| !is_test[r as usize]).collect();
    (train, test)
}

/// Leave-last-out over time-ordered sequences ([`user_sequences`]): every user's history (all
/// of a sequence but a held-out last title, [`hold_out_last`]) and, for each evaluated user
/// (a sequence of at least two), the user index and the target. The same rule as
/// [`leave_last_out`] over the same order, so the targets are the movies of its test rows.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SequenceHoldout {
    /// Every user's training sequence (a sequence shorter than two is kept whole).
    pub histories: Vec<Vec<u32>>,
    /// Evaluated users, ascending.
    pub users: Vec<u32>,
    /// The held-out last title of each evaluated user.
    pub targets: Vec<u32>,
}

impl SequenceHoldout {
    /// Splits `sequences` (one per user, time-ordered).
    pub fn split(sequences: &[Vec<u32>]) -> Self {
        let mut out = Self { histories: Vec::with_capacity(sequences.len()), ..Self::default() };
        for (u, seq) in sequences.iter().enumerate() {
            let (history, target) = hold_out_last(seq);
            out.histories.push(history.to_vec());
            if let Some(t) = target {
                out.users.push(u as u32);
                out.targets.push(t);
            }
        }
        out
    }
}

/// Means for residual targets (P4): `global` = mean rating over the rows; with `r' = r - global`,
/// `user[u]` and `movie[i]` are the means of `r'` over the user's and the movie's rows (0 when
/// none). The residual target is `r' - user[u] - movie[i]`; a prediction adds them back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Means {
    /// Mean rating over the rows.
    pub global: f32,
    /// Mean of `r - global` per user.
    pub user: Vec<f32>,
    /// Mean of `r - global` per movie.
    pub movie: Vec<f32>,
}

impl Means {
    /// Computes the means over `rows` of `ratings` (accumulated in f64).
    pub fn compute(ratings: &Ratings, rows: &[u32], n_users: usize, n_movies: usize) -> Self {
        let n = rows.len().max(1) as f64;
        let global = rows.iter().map(|&r| f64::from(ratings.rating[r as usize])).sum::<f64>() / n;
        let mut us = vec![(0.0f64, 0u32); n_users];
        let mut ms = vec![(0.0f64, 0u32); n_movies];
        for &r in rows {
            let d = f64::from(ratings.rating[r as usize]) - global;
            let u = &mut us[ratings.user[r as usize] as usize];
            u.0 += d;
            u.1 += 1;
            let m = &mut ms[ratings.movie[r as usize] as usize];
            m.0 += d;
            m.1 += 1;
        }
        let mean = |(s, c): (f64, u32)| if c == 0 { 0.0 } else { (s / f64::from(c)) as f32 };
        Self {
            global: global as f32,
            user: us.into_iter().map(mean).collect(),
            movie: ms.into_iter().map(mean).collect(),
        }
    }

    /// `global + user[u] + movie[i]`.
    pub fn baseline(&self, user: u32, movie: u32) -> f32 {
        self.global + self.user[user as usize] + self.movie[movie as usize]
    }

    /// The residual target `rating - baseline(user, movie)`.
    pub fn target(&self, user: u32, movie: u32, rating: f32) -> f32 {
        rating - self.baseline(user, movie)
    }
}

/// Per-movie rating count and mean rating in stars over some rows: the one owner of "a movie's
/// mean rating" (the notebook's novelty, best-rated lists, plot rankings, the few-ratings
/// warning). A movie with no rating among the rows has count 0 and mean **NaN** (never 0, which
/// would read as a very bad film); users of `mean` skip NaN. ([`Means`] holds deviations from
/// the global mean for P4's residual target, 0 for an unrated movie: a baseline, not a mean.)
#[derive(Debug, Clone, PartialEq)]
pub struct MovieStats {
    /// Ratings of each movie.
    pub count: Vec<u32>,
    /// Mean stars of each movie (accumulated in f64); NaN when `count` is 0.
    pub mean: Vec<f32>,
}

impl MovieStats {
    /// Counts and means over `rows` of `ratings` (every row when `None`) for `n_movies` movies.
    pub fn compute(ratings: &Ratings, rows: Option<&[u32]>, n_movies: usize) -> Self {
        let mut sum = vec![0.0f64; n_movies];
        let mut count = vec![0u32; n_movies];
        let mut add = |r: usize| {
            let m = ratings.movie[r] as usize;
            sum[m] += f64::from(ratings.rating[r]);
            count[m] += 1;
        };
        match rows {
            Some(rows) => rows.iter().for_each(|&r| add(r as usize)),
            None => (0..ratings.len()).for_each(add),
        }
        let mean = sum
            .iter()
            .zip(&count)
            .map(|(&s, &c)| if c > 0 { (s / f64::from(c)) as f32 } else { f32::NAN })
            .collect();
        Self { count, mean }
    }

    /// The counts as `u64` (interaction counts for self-information novelty).
    pub fn counts_u64(&self) -> Vec<u64> {
        self.count.iter().map(|&c| u64::from(c)).collect()
    }
}

/// The liked matrix L (users x movies, `L[u][i] = 1` when u rated i at least the threshold) in
/// CSR form; column indices in each row ascending and unique.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LikeMatrix {
    /// Rows (users).
    pub n_users: usize,
    /// Columns (movies).
    pub n_movies: usize,
    /// Row `u` is `indices[indptr[u]..indptr[u + 1]]`.
    pub indptr: Vec<usize>,
    /// Liked movie indices.
    pub indices: Vec<u32>,
}

impl LikeMatrix {
    /// Movies liked by `user`, ascending.
    pub fn row(&self, user: usize) -> &[u32] {
        &self.indices[self.indptr[user]..self.indptr[user + 1]]
    }

    /// Number of ones.
    pub fn nnz(&self) -> usize {
        self.indices.len()
    }

    /// `X = L^T L` with the diagonal set to 0, dense row-major `n_movies x n_movies`:
    /// `X[i * M + j]` is the number of users who liked both i and j (P1).
    pub fn cooccurrence_dense(&self) -> Vec<f32> {
        let m = self.n_movies;
        let mut x = vec![0f32; m * m];
        if m == 0 {
            return x;
        }
        let rows_per_block = (m / (rayon::current_num_threads() * 4)).max(1);
        x.par_chunks_mut(rows_per_block * m).enumerate().for_each(|(b, block)| {
            let lo = (b * rows_per_block) as u32;
            let hi = lo + (block.len() / m) as u32;
            for u in 0..self.n_users {
                let liked = self.row(u);
                let start = liked.partition_point(|&i| i < lo);
                let end = liked.partition_point(|&i| i < hi);
                for &i in &liked[start..end] {
                    let out = &mut block[(i - lo) as usize * m..][..m];
                    for &j in liked {
                        out[j as usize] += 1.0;
                    }
                    out[i as usize] = 0.0;
                }
            }
        });
        x
    }
}

/// Builds the liked matrix from ratings `>= threshold`.
pub fn cooccurrence_csr(ratings: &Ratings, n_users: usize, n_movies: usize, threshold: f32) -> LikeMatrix {
    let mut rows: Vec<Vec<u32>> = vec![Vec::new(); n_users];
    for r in 0..ratings.len() {
        if ratings.rating[r] >= threshold {
            rows[ratings.user[r] as usize].push(ratings.movie[r]);
        }
    }
    let mut indptr = Vec::with_capacity(n_users + 1);
    let mut indices = Vec::new();
    indptr.push(0);
    for mut row in rows {
        row.sort_unstable();
        row.dedup();
        indices.extend_from_slice(&row);
        indptr.push(indices.len());
    }
    LikeMatrix { n_users, n_movies, indptr, indices }
}

/// Reads an ml-100k fold (`name` = "u1".."u5", "ua", "ub": `<name>.base` and `<name>.test` in
/// `dir`) and returns the rows of `ds` (loaded from the same directory's `u.data`) that each file
/// holds: `(train_rows, test_rows)` in the fold files' order. A fold row absent from `ds` is an
/// error naming the file and line.
pub fn load_fold(ds: &Dataset, dir: &Path, name: &str) -> Result<(Vec<u32>, Vec<u32>), DataError> {
    let mut row_of: HashMap<(u32, u32), u32> = HashMap::with_capacity(ds.ratings.len());
    for r in 0..ds.ratings.len() {
        row_of.insert((ds.ratings.user[r], ds.ratings.movie[r]), r as u32);
    }
    let spec = RowSpec {
        delim: Delim::Byte(b'\t'),
        n_fields: Some(4),
        user: 0,
        movie: 1,
        rating: 2,
        timestamp: Some(3),
        rating_range: Some((1.0, 5.0)),
    };
    let read = |ext: &str| -> Result<Vec<u32>, DataError> {
        let path = dir.join(format!("{name}.{ext}"));
        let bytes = read_file(&path)?;
        let mut out = Vec::new();
        let mut line = 0u64;
        for raw in parse_ratings(&path, &bytes, 0, 1, &spec)? {
            for i in 0..raw.len() {
                line += 1;
                let found = ds
                    .users
                    .dense(raw.user[i])
                    .zip(ds.movies.dense(raw.movie[i]))
                    .and_then(|key| row_of.get(&key).copied());
                match found {
                    Some(r) => out.push(r),
                    None => {
                        return Err(DataError::parse(
                            &path,
                            line,
                            crate::error::ParseProblem::Other(format!(
                                "user {} movie {} is not in the loaded data set",
                                raw.user[i], raw.movie[i]
                            )),
                        ))
                    }
                }
            }
        }
        Ok(out)
    };
    Ok((read("base")?, read("test")?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{Catalogue, LoadReport};

    fn ds(rows: &[(u64, u64, f32, i64)]) -> Dataset {
        let mut users = IdMap::default();
        let mut movies = IdMap::default();
        let mut r = Ratings::default();
        for &(u, m, x, t) in rows {
            r.user.push(users.intern(u));
            r.movie.push(movies.intern(m));
            r.rating.push(x);
            r.timestamp.push(t);
        }
        Dataset { ratings: r, users, movies, catalogue: Catalogue::default(), report: LoadReport::default() }
    }

    #[test]
    fn movie_holdout_removes_every_rating_of_the_held_out_movies() {
        let d = ds(&[(1, 10, 4.0, 0), (1, 20, 3.0, 0), (2, 10, 5.0, 0), (2, 30, 2.0, 0), (3, 40, 1.0, 0)]);
        let h = hold_out_movies(&d.ratings, d.movies.len(), 0.5, 7);
        assert_eq!(h.held_out.iter().filter(|&&x| x).count(), 2, "4 - floor(4 x 0.5)");
        assert_eq!(h, hold_out_movies(&d.ratings, d.movies.len(), 0.5, 7), "seeded");
        let mut all: Vec<u32> = h.train.iter().chain(&h.test).copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..5).collect::<Vec<u32>>());
        for &r in &h.test {
            assert!(h.held_out[d.ratings.movie[r as usize] as usize]);
        }
        for &r in &h.train {
            assert!(!h.held_out[d.ratings.movie[r as usize] as usize]);
        }
        let kept = keep_rows(&d, &h.train);
        assert_eq!((kept.users.len(), kept.movies.len()), (3, 4), "id maps unchanged");
        assert_eq!(kept.ratings.len(), h.train.len());
    }

    #[test]
    fn sequence_holdout_follows_the_rows_rule() {
        // User 0: movies 5 (t=3), 6 (t=1), 7 (t=3): time order 6, 5, 7 (tie kept in file
        // order) -> history [6, 5], target 7. User 1: one rating, kept, not evaluated.
        let ratings = Ratings {
            user: vec![0, 0, 1, 0],
            movie: vec![5, 6, 8, 7],
            rating: vec![1.0; 4],
            timestamp: vec![3, 1, 9, 3],
        };
        let split = SequenceHoldout::split(&user_sequences(&ratings, 2));
        assert_eq!(split.histories, vec![vec![6, 5], vec![8]]);
        assert_eq!((split.users.as_slice(), split.targets.as_slice()), (&[0u32][..], &[7u32][..]));
        let (_, test) = leave_last_out(&ratings, 2);
        assert_eq!(test.iter().map(|&r| ratings.movie[r as usize]).collect::<Vec<_>>(), split.targets);
        assert_eq!(hold_out_last::<u32>(&[]), (&[][..], None));
    }

    #[test]
    fn top_movies_then_min_user() {
        // movie 1: 3 ratings, movie 2: 2, movie 3: 2 (raw 3 > raw 2 loses the tie), movie 4: 1.
        let d = ds(&[
            (1, 4, 3.0, 0),
            (1, 1, 4.0, 0),
            (2, 1, 5.0, 0),
            (3, 1, 2.0, 0),
            (2, 3, 1.0, 0),
            (3, 3, 1.0, 0),
            (2, 2, 2.0, 0),
            (1, 2, 2.0, 0),
        ]);
        let top = keep_top_movies(&d, 2);
        assert_eq!(top.movies.raws(), &[1, 2]);
        assert_eq!(top.ratings.len(), 5);
        assert_eq!(top.users.raws(), &[1, 2, 3]);
        let f = filter_min_ratings(&top, 2, 1);
        assert_eq!(f.users.raws(), &[1, 2]);
        assert_eq!(f.ratings.len(), 4);
        assert_eq!(f.ratings.user, vec![0, 1, 1, 0]);
        assert_eq!(f.ratings.movie, vec![0, 0, 1, 1]);
        let empty = filter_min_ratings(&top, 10, 1);
        assert!(require_nonempty(&empty, "min ratings").is_err());
        assert!(require_nonempty(&f, "min ratings").is_ok());
    }

    #[test]
    fn scaling_round_trips() {
        let (s, mm) = min_max_scale(&[0.5, 5.0, 2.75]);
        assert_eq!(s, vec![0.0, 1.0, 0.5]);
        assert_eq!(mm.unscale(0.5), 2.75);
        let (s, _) = min_max_scale(&[3.0, 3.0]);
        assert_eq!(s, vec![0.0, 0.0]);
        assert_eq!(liked(&ds(&[(1, 1, 4.0, 0), (1, 2, 3.5, 0)]).ratings, 4.0), vec![true, false]);
    }

    #[test]
    fn sequences_sort_by_time_stably() {
        let d = ds(&[(1, 10, 1.0, 5), (1, 11, 1.0, 3), (2, 10, 1.0, 1), (1, 12, 1.0, 3), (1, 13, 1.0, 1)]);
        let seq = user_sequences(&d.ratings, 2);
        // movie dense: 10->0, 11->1, 12->2, 13->3
        assert_eq!(seq, vec![vec![3, 1, 2, 0], vec![0]]);
        let (train, test) = leave_last_out(&d.ratings, 2);
        assert_eq!(test, vec![0]); // user 1's latest (t=5); user 2 has one rating
        assert_eq!(train, vec![1, 2, 3, 4]);
        let d2 = ds(&[(1, 10, 1.0, 5), (1, 11, 1.0, 5)]);
        assert_eq!(leave_last_out(&d2.ratings, 1).1, vec![1]); // tie: last in file order
    }

    #[test]
    fn splits_partition_and_are_seeded() {
        let (a, b) = random_split(10, 0.8, 42);
        assert_eq!((a.len(), b.len()), (8, 2));
        let mut all: Vec<u32> = a.iter().chain(&b).copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..10).collect::<Vec<_>>());
        assert_eq!(random_split(10, 0.8, 42), (a.clone(), b));
        assert_ne!(random_split(10, 0.8, 43).0, a);
        assert_eq!(split_users(5, 0.8, 1).0.len(), 4);
    }

    #[test]
    fn means_match_hand_computation() {
        // ratings: u0: 4 (m0), 2 (m1); u1: 3 (m0). global = 3.
        let d = ds(&[(1, 1, 4.0, 0), (1, 2, 2.0, 0), (2, 1, 3.0, 0)]);
        let m = Means::compute(&d.ratings, &[0, 1, 2], 2, 2);
        assert_eq!(m.global, 3.0);
        assert_eq!(m.user, vec![0.0, 0.0]); // (1 + -1)/2, 0/1
        assert_eq!(m.movie, vec![0.5, -1.0]); // (1 + 0)/2, -1
        assert_eq!(m.target(0, 0, 4.0), 0.5);
        let part = Means::compute(&d.ratings, &[0], 2, 3);
        assert_eq!((part.global, part.user[1], part.movie[2]), (4.0, 0.0, 0.0));
    }

    #[test]
    fn movie_stats_give_unrated_movies_nan_not_zero() {
        let d = ds(&[(1, 1, 4.0, 0), (2, 1, 3.0, 0), (2, 2, 5.0, 0)]);
        let all = MovieStats::compute(&d.ratings, None, 3);
        assert_eq!(all.count, vec![2, 1, 0]);
        assert_eq!(all.mean[..2], [3.5, 5.0]);
        assert!(all.mean[2].is_nan());
        let part = MovieStats::compute(&d.ratings, Some(&[0]), 2);
        assert_eq!(part.count, vec![1, 0]);
        assert!(part.mean[1].is_nan());
        assert_eq!(part.counts_u64(), vec![1, 0]);
    }

    #[test]
    fn cooccurrence_counts_pairs_with_zero_diagonal() {
        // u0 likes m0, m1, m2; u1 likes m0, m2; u2 likes m1 (3.0 < 4 not liked m0).
        let d = ds(&[
            (1, 1, 4.0, 0),
            (1, 2, 5.0, 0),
            (1, 3, 4.5, 0),
            (2, 1, 4.0, 0),
            (2, 3, 4.0, 0),
            (3, 2, 4.0, 0),
            (3, 1, 3.0, 0),
        ]);
        let l = cooccurrence_csr(&d.ratings, 3, 3, 4.0);
        assert_eq!(l.row(0), &[0, 1, 2]);
        assert_eq!(l.row(2), &[1]);
        assert_eq!(l.nnz(), 6);
        let x = l.cooccurrence_dense();
        #[rustfmt::skip]
        assert_eq!(x, vec![
            0.0, 1.0, 2.0,
            1.0, 0.0, 1.0,
            2.0, 1.0, 0.0,
        ]);
    }
}
