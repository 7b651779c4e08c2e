//! The ranking protocol's splits against a hand-made ratings file
//! (`fixtures/ranking-split/u.data`), whose splits are worked out by hand below.
//!
//! The file (user movie rating time, rows interleaved):
//! - user 10: movies 101..112 at times 1010..1120 (written out of order); 12 ratings, so the
//!   temporal holdout tests round(2.4) = 2 (111, 112) and validates round(1.2) = 1 (110).
//! - user 20: 2 ratings: train only, not evaluated.
//! - user 30: 201@100, 202@600, 203@200, 204@600, 205@300; by (time, file order) 201, 203, 205,
//!   202, 204: 5 ratings test round(1.0) = 1 (204, the later of the tie in the file) and validate
//!   round(0.5) = 1 (202).
//! - user 40: 301, 302, 303 all at time 5: file order; test 303, validation 302, train 301.

#![allow(clippy::unwrap_used)]

use std::path::Path;

use reelvec_data::ranking_split::{ranking_split, RankingSplit, RankingSplitRows};
use reelvec_data::{load, Dataset, LoadOptions};

fn fixture() -> Dataset {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ranking-split");
    load(&dir, &LoadOptions { use_cache: false, ..LoadOptions::default() }).unwrap()
}

/// (raw user, raw movie) of each row, sorted.
fn pairs(ds: &Dataset, rows: &[u32]) -> Vec<(u64, u64)> {
    let mut out: Vec<(u64, u64)> = rows
        .iter()
        .map(|&r| {
            let r = r as usize;
            (ds.users.raw(ds.ratings.user[r]).unwrap(), ds.movies.raw(ds.ratings.movie[r]).unwrap())
        })
        .collect();
    out.sort_unstable();
    out
}

fn raw_users(ds: &Dataset, users: &[u32]) -> Vec<u64> {
    users.iter().map(|&u| ds.users.raw(u).unwrap()).collect()
}

fn split(ds: &Dataset, how: RankingSplit, seed: u64) -> RankingSplitRows {
    ranking_split(&ds.ratings, ds.users.len(), how, seed).unwrap()
}

#[test]
fn temporal_holdout_by_hand() {
    let ds = fixture();
    let s = split(&ds, RankingSplit::TemporalHoldout, 0);
    assert_eq!(pairs(&ds, &s.test), vec![(10, 111), (10, 112), (30, 204), (40, 303)]);
    assert_eq!(pairs(&ds, &s.val), vec![(10, 110), (30, 202), (40, 302)]);
    let mut train = vec![(20, 101), (20, 102), (30, 201), (30, 203), (30, 205), (40, 301)];
    train.extend((101..=109).map(|m| (10, m)));
    train.sort_unstable();
    assert_eq!(pairs(&ds, &s.train), train);
    assert_eq!(raw_users(&ds, &s.evaluated), vec![10, 30, 40]);
    for rows in [&s.train, &s.val, &s.test] {
        assert!(rows.windows(2).all(|w| w[0] < w[1]), "ascending rows");
    }
    assert_eq!(s.train.len() + s.val.len() + s.test.len(), ds.ratings.len());
}

#[test]
fn leave_last_out_by_hand() {
    let ds = fixture();
    let s = split(&ds, RankingSplit::LeaveLastOut, 0);
    assert_eq!(pairs(&ds, &s.test), vec![(10, 112), (30, 204), (40, 303)]);
    assert_eq!(pairs(&ds, &s.val), vec![(10, 111), (30, 202), (40, 302)]);
    assert_eq!(s.train.len(), 22 - 6);
    assert_eq!(raw_users(&ds, &s.evaluated), vec![10, 30, 40]);
}

#[test]
fn random_holdout_counts_seeds_and_threads() {
    let ds = fixture();
    let s = split(&ds, RankingSplit::RandomHoldout(0.5), 7);
    // User 10 (12): test 6, validation 3. User 30 (5): test round(2.5) = 3, validation
    // round(1.25) = 1, one left to train. User 40 (3): test and validation lowered to 1 each.
    let per_user = |rows: &[u32], raw: u64| pairs(&ds, rows).iter().filter(|p| p.0 == raw).count();
    for (raw, test, val, train) in [(10, 6, 3, 3), (30, 3, 1, 1), (40, 1, 1, 1), (20, 0, 0, 2)] {
        assert_eq!(
            (per_user(&s.test, raw), per_user(&s.val, raw), per_user(&s.train, raw)),
            (test, val, train),
            "user {raw}"
        );
    }
    // The same seed gives the same rows on any thread count; another seed another split.
    for threads in [1, 3] {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        assert_eq!(pool.install(|| split(&ds, RankingSplit::RandomHoldout(0.5), 7)), s);
    }
    assert_ne!(split(&ds, RankingSplit::RandomHoldout(0.5), 8).test, s.test);
}

#[test]
fn bad_share_is_an_error() {
    let ds = fixture();
    assert!(ranking_split(&ds.ratings, ds.users.len(), RankingSplit::RandomHoldout(1.5), 0).is_err());
    assert!(ranking_split(&ds.ratings, 2, RankingSplit::TemporalHoldout, 0).is_err());
}
