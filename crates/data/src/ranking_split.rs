//! The ranking protocol's splits (issue 10): per user, every rating is an interaction, held out
//! into validation and test rows. The one owner of these splits; `reelvec compare`, the
//! `--write-split` file and the ranking benches all take their rows from here.
//!
//! Each user's rows are ordered by (timestamp, file order). A user with `n` ratings:
//! - [`RankingSplit::TemporalHoldout`] (the default): test = the last `max(1, round(0.2 n))`
//!   rows, validation = the `max(1, round(0.1 n))` rows before them, train = the rest (round half
//!   up, computed in integers: `round(0.2 n) = floor((2 n + 5) / 10)`).
//! - [`RankingSplit::LeaveLastOut`]: test = the last row, validation = the one before.
//! - [`RankingSplit::RandomHoldout`]`(f)`: the user's rows in an order shuffled by
//!   `ChaCha8Rng::seed_from_u64(seed)` on stream `user` (so it depends on the seed and the user
//!   only, never on the thread count); test = the first `max(1, round(f n))` of them, validation =
//!   the next `max(1, round(f n / 2))` (the temporal split's 2 : 1 shape), train = the rest.
//!
//! Users with fewer than [`MIN_EVALUATED_RATINGS`] (3) ratings are train only and not evaluated.
//! Every evaluated user keeps at least one training row (the held-out counts are lowered when a
//! random holdout would take everything). Row lists are ascending row indices.

use std::fmt;
use std::str::FromStr;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::DataError;
use crate::transforms::user_rows_by_time;
use crate::types::Ratings;

/// Users with fewer ratings than this are train only and not evaluated.
pub const MIN_EVALUATED_RATINGS: usize = 3;

/// How each user's ratings are held out.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RankingSplit {
    #[default]
    /// The last 20% by time test, the 10% before validate (see the module docs).
    TemporalHoldout,
    /// The last rating tests, the one before validates.
    LeaveLastOut,
    /// A seeded per-user share `f` of the rows tests and `f / 2` validates, in (0, 1).
    RandomHoldout(f64),
}

impl fmt::Display for RankingSplit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RankingSplit::TemporalHoldout => f.write_str("temporal-holdout"),
            RankingSplit::LeaveLastOut => f.write_str("leave-last-out"),
            RankingSplit::RandomHoldout(x) => write!(f, "random-holdout:{x}"),
        }
    }
}

impl FromStr for RankingSplit {
    type Err = DataError;

    /// `temporal-holdout`, `leave-last-out`, `random-holdout:F` (or `random-holdout F`), F in
    /// (0, 1).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        match s {
            "temporal-holdout" => return Ok(RankingSplit::TemporalHoldout),
            "leave-last-out" => return Ok(RankingSplit::LeaveLastOut),
            _ => {}
        }
        let bad = || {
            DataError::Invalid(format!(
                "unknown split {s:?}: expected temporal-holdout, leave-last-out or random-holdout:F \
                 with F in (0, 1)"
            ))
        };
        let rest = s.strip_prefix("random-holdout").ok_or_else(bad)?;
        let rest = rest.strip_prefix([':', ' ', '=']).ok_or_else(bad)?;
        let f: f64 = rest.trim().parse().map_err(|_| bad())?;
        if !(f > 0.0 && f < 1.0) {
            return Err(bad());
        }
        Ok(RankingSplit::RandomHoldout(f))
    }
}

/// The rows of a ranking split and the users it evaluates.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RankingSplitRows {
    /// Training rows (every row of a user that is not evaluated), ascending.
    pub train: Vec<u32>,
    /// Validation rows, ascending.
    pub val: Vec<u32>,
    /// Test rows, ascending.
    pub test: Vec<u32>,
    /// Users with held-out rows (at least [`MIN_EVALUATED_RATINGS`] ratings), ascending.
    pub evaluated: Vec<u32>,
}

/// `floor(num / den + 1/2)` for non-negative integers: round half up without floating point.
fn round_half_up(num: usize, den: usize) -> usize {
    (2 * num + den) / (2 * den)
}

/// `(validation, test)` counts for a user with `n >= 3` ratings; train keeps at least one.
fn held_out_counts(split: RankingSplit, n: usize) -> (usize, usize) {
    let (val, test) = match split {
        RankingSplit::TemporalHoldout => (round_half_up(n, 10).max(1), round_half_up(2 * n, 10).max(1)),
        RankingSplit::LeaveLastOut => (1, 1),
        RankingSplit::RandomHoldout(f) => {
            let round = |x: f64| (x + 0.5).floor() as usize;
            (round(f * n as f64 / 2.0).max(1), round(f * n as f64).max(1))
        }
    };
    let test = test.min(n - 2);
    let val = val.min(n - 1 - test);
    (val, test)
}

/// Splits `ratings` (users `0..n_users`) for the ranking protocol (see the module docs). `seed`
/// is used by [`RankingSplit::RandomHoldout`] only. A user index at or above `n_users`, or a
/// random-holdout share outside (0, 1), is [`DataError::Invalid`].
pub fn ranking_split(
    ratings: &Ratings,
    n_users: usize,
    split: RankingSplit,
    seed: u64,
) -> Result<RankingSplitRows, DataError> {
    if let RankingSplit::RandomHoldout(f) = split {
        if !(f > 0.0 && f < 1.0) {
            return Err(DataError::Invalid(format!("random-holdout share {f} is not in (0, 1)")));
        }
    }
    if let Some(&u) = ratings.user.iter().find(|&&u| u as usize >= n_users) {
        return Err(DataError::Invalid(format!("user index {u} in the ratings, but only {n_users} users")));
    }
    let by_user = user_rows_by_time(ratings, n_users);
    // Per user: (validation rows, test rows); empty for users not evaluated.
    let held: Vec<(Vec<u32>, Vec<u32>)> = by_user
        .into_par_iter()
        .enumerate()
        .map(|(u, mut rows)| {
            let n = rows.len();
            if n < MIN_EVALUATED_RATINGS {
                return (Vec::new(), Vec::new());
            }
            let (n_val, n_test) = held_out_counts(split, n);
            match split {
                RankingSplit::RandomHoldout(_) => {
                    let mut rng = ChaCha8Rng::seed_from_u64(seed);
                    rng.set_stream(u as u64);
                    rows.shuffle(&mut rng);
                    let test = rows[..n_test].to_vec();
                    let val = rows[n_test..n_test + n_val].to_vec();
                    (val, test)
                }
                _ => {
                    let test = rows[n - n_test..].to_vec();
                    let val = rows[n - n_test - n_val..n - n_test].to_vec();
                    (val, test)
                }
            }
        })
        .collect();
    // 0 train, 1 validation, 2 test.
    let mut role = vec![0u8; ratings.len()];
    let mut evaluated = Vec::new();
    for (u, (val, test)) in held.iter().enumerate() {
        if !test.is_empty() {
            evaluated.push(u as u32);
        }
        for &r in val {
            role[r as usize] = 1;
        }
        for &r in test {
            role[r as usize] = 2;
        }
    }
    let pick = |want: u8| (0..ratings.len() as u32).filter(|&r| role[r as usize] == want).collect::<Vec<_>>();
    Ok(RankingSplitRows { train: pick(0), val: pick(1), test: pick(2), evaluated })
}

/// The header line of a split file ([`write_split_file`]).
pub const SPLIT_FILE_HEADER: &str = "user\tmovie\trating\ttimestamp\tpart";

/// Writes `split` of `ds` as a split file: [`SPLIT_FILE_HEADER`], then one line per rating in
/// the data set's row order, `user<TAB>movie<TAB>rating<TAB>timestamp<TAB>part`, with raw ids and
/// part `train`, `val` or `test` (what `reelvec compare --write-split` writes and
/// `benches/peers/ranking.py` reads). Written through reelvec-outfile (a temporary renamed into
/// place).
pub fn write_split_file(
    path: &std::path::Path,
    ds: &crate::Dataset,
    split: &RankingSplitRows,
) -> Result<(), DataError> {
    use std::io::Write;
    let r = &ds.ratings;
    let mut part = vec!["train"; r.len()];
    for (rows, name) in [(&split.val, "val"), (&split.test, "test")] {
        for &row in rows.iter() {
            let slot = part.get_mut(row as usize).ok_or_else(|| {
                DataError::Invalid(format!("split row {row} beyond the {} ratings", r.len()))
            })?;
            *slot = name;
        }
    }
    crate::write::write_file(path, |w| {
        let io = |e| DataError::io(path, e);
        writeln!(w, "{SPLIT_FILE_HEADER}").map_err(io)?;
        for (row, part) in part.iter().enumerate() {
            let raw = |map: &crate::IdMap, dense: u32| map.raw(dense).unwrap_or(u64::MAX);
            writeln!(
                w,
                "{}\t{}\t{}\t{}\t{part}",
                raw(&ds.users, r.user[row]),
                raw(&ds.movies, r.movie[row]),
                r.rating[row],
                r.timestamp[row]
            )
            .map_err(io)?;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn held_out_counts_round_half_up() {
        // n = 5: 0.2 n = 1 test, 0.1 n = 0.5 -> 1 validation. n = 25: 5 test, 2.5 -> 3.
        assert_eq!(held_out_counts(RankingSplit::TemporalHoldout, 5), (1, 1));
        assert_eq!(held_out_counts(RankingSplit::TemporalHoldout, 25), (3, 5));
        // n = 13: 2.6 -> 3 test, 1.3 -> 1 validation. n = 3: one each, one train.
        assert_eq!(held_out_counts(RankingSplit::TemporalHoldout, 13), (1, 3));
        assert_eq!(held_out_counts(RankingSplit::TemporalHoldout, 3), (1, 1));
        // A large random share still leaves one training row.
        assert_eq!(held_out_counts(RankingSplit::RandomHoldout(0.9), 4), (1, 2));
        assert_eq!(held_out_counts(RankingSplit::RandomHoldout(0.5), 10), (3, 5));
    }

    #[test]
    fn parse_and_display() {
        assert_eq!("temporal-holdout".parse::<RankingSplit>().unwrap(), RankingSplit::TemporalHoldout);
        assert_eq!("leave-last-out".parse::<RankingSplit>().unwrap(), RankingSplit::LeaveLastOut);
        assert_eq!("random-holdout:0.25".parse::<RankingSplit>().unwrap(), RankingSplit::RandomHoldout(0.25));
        assert_eq!("random-holdout 0.5".parse::<RankingSplit>().unwrap(), RankingSplit::RandomHoldout(0.5));
        for bad in ["random-holdout:1", "random-holdout:0", "random-holdout", "random-holdoutx", "temporal"] {
            assert!(bad.parse::<RankingSplit>().is_err(), "{bad}");
        }
        assert_eq!(RankingSplit::RandomHoldout(0.2).to_string(), "random-holdout:0.2");
    }
}
