//! Loading the committed fixtures, which follow the published MovieLens formats byte for byte.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use reelvec_data::{load, transforms, Layout, LoadOptions};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

fn no_cache() -> LoadOptions {
    LoadOptions { use_cache: false, ..LoadOptions::default() }
}

#[test]
fn ml100k_fixture() {
    let ds = load(&fixture("ml-100k"), &no_cache()).unwrap();
    assert_eq!(ds.report.layout, "ml-100k");
    assert_eq!((ds.users.len(), ds.movies.len(), ds.ratings.len()), (10, 10, 14));
    // First appearance order: u.data starts with 196 242, 186 302, 22 377.
    assert_eq!(&ds.users.raws()[..3], &[196, 186, 22]);
    assert_eq!(&ds.movies.raws()[..3], &[242, 302, 377]);
    assert_eq!(ds.ratings.rating[0], 3.0);
    assert_eq!(ds.ratings.timestamp[0], 881_250_949);
    let les_mis = ds.catalogue.get(543).unwrap();
    assert_eq!(les_mis.full_title, "Misérables, Les (1995)");
    assert_eq!(les_mis.title, "Misérables, Les");
    assert_eq!(les_mis.year, Some(1995));
    assert_eq!(les_mis.genres, vec!["Drama", "Musical"]);
    let unknown = ds.catalogue.get(267).unwrap();
    assert_eq!((unknown.title.as_str(), unknown.year), ("unknown", None));
    assert_eq!(unknown.genres, vec!["unknown"]);
    // Kolya's year comes from the title (1996), not the release date (1997).
    assert_eq!(ds.catalogue.get(242).unwrap().year, Some(1996));
    assert_eq!(ds.catalogue.len(), 12);
    assert_eq!(ds.report.catalogue_never_rated, 2); // 267, 543
    assert_eq!(ds.report.rated_not_in_catalogue, 0);
    assert!(ds.title(ds.movies.dense(474).unwrap()).starts_with("Dr. Strangelove or: How I Learned"));

    let (train, test) = transforms::load_fold(&ds, &fixture("ml-100k"), "u1").unwrap();
    assert_eq!((train.len(), test.len()), (10, 4));
    let mut all: Vec<u32> = train.iter().chain(&test).copied().collect();
    all.sort_unstable();
    assert_eq!(all, (0..14).collect::<Vec<u32>>());
    // u1.test holds (6, 242), (22, 242), (186, 474), (196, 51), sorted.
    let r = test[0] as usize;
    assert_eq!((ds.users.raw(ds.ratings.user[r]), ds.movies.raw(ds.ratings.movie[r])), (Some(6), Some(242)));
    assert!(transforms::load_fold(&ds, &fixture("ml-100k"), "u9").is_err());
}

#[test]
fn ml1m_fixture() {
    let ds = load(&fixture("ml-1m"), &no_cache()).unwrap();
    assert_eq!(ds.report.layout, "ml-1m");
    assert_eq!((ds.users.len(), ds.movies.len(), ds.ratings.len()), (3, 5, 7));
    assert_eq!(ds.catalogue.get(73).unwrap().full_title, "Misérables, Les (1995)");
    assert_eq!(ds.catalogue.get(661).unwrap().genres, vec!["Animation", "Children's", "Musical"]);
    assert_eq!(ds.catalogue.get(3952).unwrap().title, "Contender, The");
    assert_eq!(ds.report.catalogue_never_rated, 1);
    assert_eq!(ds.ratings.rating, vec![5.0, 3.0, 3.0, 4.0, 4.0, 2.0, 5.0]);
}

#[test]
fn ml10m_fixture() {
    let ds = load(&fixture("ml-10m"), &no_cache()).unwrap();
    assert_eq!(ds.report.layout, "ml-10m");
    assert_eq!(ds.ratings.rating, vec![5.0, 4.5, 0.5, 3.0, 3.5]);
    assert_eq!(ds.catalogue.get(8606).unwrap().genres, Vec::<String>::new());
    assert_eq!(ds.catalogue.get(185).unwrap().title, "Net, The");
    assert_eq!(ds.catalogue.tags().len(), 2);
    assert_eq!(ds.catalogue.tags()[0].tag, "excellent!");
    assert_eq!(ds.report.catalogue_never_rated, 1);
}

#[test]
fn ml_latest_fixture() {
    let ds = load(&fixture("ml-latest-small"), &no_cache()).unwrap();
    assert_eq!(ds.report.layout, "ml-latest");
    assert_eq!(ds.report.rows_read, 8);
    assert_eq!(ds.report.duplicates_dropped, 1);
    assert_eq!(ds.ratings.len(), 7);
    // (2, 11) appears twice: the last (4.5) is kept.
    let r = (0..ds.ratings.len())
        .find(|&r| {
            ds.users.raw(ds.ratings.user[r]) == Some(2) && ds.movies.raw(ds.ratings.movie[r]) == Some(11)
        })
        .unwrap();
    assert_eq!(ds.ratings.rating[r], 4.5);
    assert_eq!(ds.report.rated_not_in_catalogue, 1); // 99999
    assert_eq!(ds.report.catalogue_never_rated, 3); // 140956, 149334, 182727
    let cat = &ds.catalogue;
    assert_eq!(cat.get(11).unwrap().full_title, "American President, The (1995)");
    assert_eq!(cat.get(47).unwrap().title, "Seven (a.k.a. Se7en)");
    assert_eq!(cat.get(47).unwrap().year, Some(1995));
    assert_eq!((cat.get(40697).unwrap().title.as_str(), cat.get(40697).unwrap().year), ("Babylon 5", None));
    assert_eq!(cat.get(140956).unwrap().year, Some(2018)); // trailing space
    assert_eq!(cat.get(149334).unwrap().full_title, "Nocturnal Animals, \"The\" Cut (2016)");
    assert!(cat.get(182727).unwrap().genres.is_empty());
    assert_eq!(cat.get(1).unwrap().genres.len(), 5);
    assert_eq!(cat.tags()[1].tag, "Highly quotable, \"really\"");
    assert_eq!(cat.links().len(), 3);
    assert_eq!(cat.links()[0].imdb_id, "0114709");
    assert_eq!(cat.links()[2].tmdb_id, None);
    assert_eq!(ds.title(ds.movies.dense(99999).unwrap()), "movie 99999");
}

#[test]
fn detection_from_files_and_forced_layouts() {
    let ds = load(&fixture("ml-latest-small/ratings.csv"), &no_cache()).unwrap();
    assert_eq!(ds.report.layout, "ml-latest");
    let ds = load(&fixture("ml-100k/u.data"), &no_cache()).unwrap();
    assert_eq!(ds.catalogue.len(), 12);
    // u1.base read as a generic tab-separated file.
    let opts = LoadOptions {
        layout: Some(Layout::Generic),
        use_cache: false,
        generic: Some(reelvec_data::GenericColumns { delimiter: b'\t', ..Default::default() }),
    };
    let ds = load(&fixture("ml-100k/u1.base"), &opts).unwrap();
    assert_eq!((ds.ratings.len(), ds.catalogue.len()), (10, 0));
    // Generic columns in another order, with a header.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.psv");
    std::fs::write(&path, "ts|rating|item|user\n5|4.25|10|1\n6|2|11|1\n").unwrap();
    let opts = LoadOptions {
        layout: None,
        use_cache: false,
        generic: Some(reelvec_data::GenericColumns {
            user: 3,
            movie: 2,
            rating: 1,
            timestamp: Some(0),
            delimiter: b'|',
            has_header: true,
        }),
    };
    let ds = load(&path, &opts).unwrap();
    assert_eq!(ds.ratings.rating, vec![4.25, 2.0]);
    assert_eq!(ds.ratings.timestamp, vec![5, 6]);
    assert_eq!(ds.movies.raws(), &[10, 11]);
    assert_eq!("ml-25m".parse::<Layout>().unwrap(), Layout::MlLatest);
    assert!("ml-7k".parse::<Layout>().is_err());
}

/// The real ml-100k, when `REELVEC_ML100K` points at it (skipped otherwise).
#[test]
fn real_ml100k_when_available() {
    let Some(dir) = std::env::var_os("REELVEC_ML100K") else {
        return reelvec_testkit::skip(
            reelvec_testkit::Need::Data,
            "set REELVEC_ML100K to an ml-100k directory",
        );
    };
    let ds = load(Path::new(&dir), &no_cache()).unwrap();
    assert_eq!((ds.users.len(), ds.movies.len(), ds.ratings.len()), (943, 1682, 100_000));
    let (train, test) = transforms::load_fold(&ds, Path::new(&dir), "u1").unwrap();
    assert_eq!((train.len(), test.len()), (80_000, 20_000));
    let (train, test) = transforms::load_fold(&ds, Path::new(&dir), "ua").unwrap();
    assert_eq!((train.len(), test.len()), (90_570, 9_430));
}
