//! Turns raw rating rows into a [`Dataset`]: interns raw ids densely (order of first appearance),
//! drops duplicate (user, movie) rows keeping the last, and counts catalogue mismatches.

use rayon::prelude::*;

use crate::parse::RawRatings;
use crate::types::{Catalogue, Dataset, IdMap, LoadReport, Ratings};

/// Largest raw id for which interning uses a direct lookup table instead of a hash map.
const DIRECT_TABLE_LIMIT: u64 = 1 << 26;

/// Maps raw ids (given in parts, in order) to dense indices in order of first appearance.
fn intern_all<'a>(parts: impl Iterator<Item = &'a [u64]> + Clone) -> (IdMap, Vec<u32>) {
    let max = parts.clone().flat_map(|p| p.iter().copied()).max().unwrap_or(0);
    let total: usize = parts.clone().map(<[u64]>::len).sum();
    let raws = parts.flat_map(|p| p.iter());
    let mut order: Vec<u64> = Vec::new();
    let mut dense: Vec<u32> = Vec::with_capacity(total);
    if max < DIRECT_TABLE_LIMIT {
        let mut table = vec![u32::MAX; max as usize + 1];
        dense.extend(raws.map(|&raw| {
            let slot = &mut table[raw as usize];
            if *slot == u32::MAX {
                *slot = order.len() as u32;
                order.push(raw);
            }
            *slot
        }));
    } else {
        let mut map = IdMap::default();
        dense.extend(raws.map(|&raw| map.intern(raw)));
        return (map, dense);
    }
    (IdMap::from_dense_order(order), dense)
}

/// Row indices grouped by user (each group in file order): `(offsets, rows)` with user `u`'s
/// rows at `rows[offsets[u]..offsets[u + 1]]`.
pub(crate) fn rows_by_user(user: &[u32], n_users: usize) -> (Vec<usize>, Vec<u32>) {
    let mut offsets = vec![0usize; n_users + 1];
    for &u in user {
        offsets[u as usize + 1] += 1;
    }
    for i in 0..n_users {
        offsets[i + 1] += offsets[i];
    }
    let mut fill = offsets.clone();
    let mut rows = vec![0u32; user.len()];
    for (r, &u) in user.iter().enumerate() {
        rows[fill[u as usize]] = r as u32;
        fill[u as usize] += 1;
    }
    (offsets, rows)
}

/// Rows that repeat a (user, movie) pair seen later in the file: every occurrence but the last.
///
/// When the rows are already grouped by user (as in every MovieLens ratings file except
/// ml-100k's u.data: the dense user index then never decreases), the grouping is the identity
/// and no permutation is built.
fn duplicate_rows(user: &[u32], movie: &[u32], n_users: usize, n_movies: usize) -> Vec<u32> {
    let grouped = user.windows(2).all(|w| w[0] <= w[1]);
    let (offsets, rows) = if grouped {
        let mut offsets = vec![0usize; n_users + 1];
        for &u in user {
            offsets[u as usize + 1] += 1;
        }
        for i in 0..n_users {
            offsets[i + 1] += offsets[i];
        }
        (offsets, None)
    } else {
        let (offsets, rows) = rows_by_user(user, n_users);
        (offsets, Some(rows))
    };
    let block = (n_users / (rayon::current_num_threads() * 8)).max(256);
    let user_blocks: Vec<(usize, usize)> =
        (0..n_users).step_by(block).map(|s| (s, (s + block).min(n_users))).collect();
    user_blocks
        .par_iter()
        .map_init(
            || (vec![u32::MAX; n_movies], vec![0u32; n_movies]),
            |(seen_by, last_row), &(from, to)| {
                let mut dropped = Vec::new();
                for u in from..to {
                    for i in offsets[u]..offsets[u + 1] {
                        let r = rows.as_ref().map_or(i as u32, |rows| rows[i]);
                        let m = movie[r as usize] as usize;
                        if seen_by[m] == u as u32 {
                            dropped.push(last_row[m]);
                        }
                        seen_by[m] = u as u32;
                        last_row[m] = r;
                    }
                }
                dropped
            },
        )
        .flatten()
        .collect()
}

/// Keeps rows where `keep[r]` holds.
pub(crate) fn select_rows(ratings: &Ratings, rows: &[u32]) -> Ratings {
    Ratings {
        user: rows.iter().map(|&r| ratings.user[r as usize]).collect(),
        movie: rows.iter().map(|&r| ratings.movie[r as usize]).collect(),
        rating: rows.iter().map(|&r| ratings.rating[r as usize]).collect(),
        timestamp: rows.iter().map(|&r| ratings.timestamp[r as usize]).collect(),
    }
}

/// Builds the dataset. `has_catalogue` says whether a catalogue file was read (when not, the
/// catalogue counts in the report stay 0).
pub(crate) fn assemble(
    parts: Vec<RawRatings>,
    catalogue: Catalogue,
    has_catalogue: bool,
    layout: &str,
) -> Dataset {
    let rows_read: usize = parts.iter().map(RawRatings::len).sum();
    let rows_read = rows_read as u64;
    let (((users, user), (movies, movie)), (rating, timestamp)) = rayon::join(
        || {
            rayon::join(
                || intern_all(parts.iter().map(|p| &p.user[..])),
                || intern_all(parts.iter().map(|p| &p.movie[..])),
            )
        },
        || {
            let mut rating = Vec::with_capacity(rows_read as usize);
            let mut timestamp = Vec::with_capacity(rows_read as usize);
            for p in &parts {
                rating.extend_from_slice(&p.rating);
                timestamp.extend_from_slice(&p.timestamp);
            }
            (rating, timestamp)
        },
    );
    drop(parts);
    let mut ratings = Ratings { user, movie, rating, timestamp };
    let mut dropped = duplicate_rows(&ratings.user, &ratings.movie, users.len(), movies.len());
    let duplicates_dropped = dropped.len() as u64;
    if !dropped.is_empty() {
        dropped.par_sort_unstable();
        let mut keep = Vec::with_capacity(ratings.len() - dropped.len());
        let mut d = dropped.iter().peekable();
        for r in 0..ratings.len() as u32 {
            if d.peek() == Some(&&r) {
                d.next();
            } else {
                keep.push(r);
            }
        }
        ratings = select_rows(&ratings, &keep);
    }
    let (rated_not_in_catalogue, catalogue_never_rated) = if has_catalogue {
        let missing = movies.raws().iter().filter(|&&raw| catalogue.get(raw).is_none()).count();
        let never = catalogue.movies().iter().filter(|m| movies.dense(m.raw_id).is_none()).count();
        (missing as u64, never as u64)
    } else {
        (0, 0)
    };
    Dataset {
        ratings,
        users,
        movies,
        catalogue,
        report: LoadReport {
            layout: layout.to_string(),
            from_cache: false,
            rows_read,
            duplicates_dropped,
            rated_not_in_catalogue,
            catalogue_never_rated,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interning_is_first_appearance_and_duplicates_keep_the_last() {
        let raw = RawRatings {
            user: vec![10, 20, 10, 10, 30, 20],
            movie: vec![5, 5, 7, 5, 1 << 40, 5],
            rating: vec![1.0, 2.0, 3.0, 4.0, 5.0, 2.5],
            timestamp: vec![1, 2, 3, 4, 5, 6],
        };
        let ds = assemble(vec![raw], Catalogue::default(), false, "test");
        assert_eq!(ds.users.raws(), &[10, 20, 30]);
        assert_eq!(ds.movies.raws(), &[5, 7, 1 << 40]);
        assert_eq!(ds.report.duplicates_dropped, 2);
        assert_eq!(ds.report.rows_read, 6);
        // Rows 0 (10,5) and 1 (20,5) are superseded by rows 3 and 5.
        assert_eq!(ds.ratings.rating, vec![3.0, 4.0, 5.0, 2.5]);
        assert_eq!(ds.ratings.timestamp, vec![3, 4, 5, 6]);
        assert_eq!(ds.ratings.user, vec![0, 0, 2, 1]);
    }
}
