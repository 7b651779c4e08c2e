//! Property tests: every layout's writer and reader round-trip arbitrary data (titles with
//! commas, quotes, unicode, Latin-1 characters), and arbitrary bytes never panic the parsers.

#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use reelvec_data::catalogue::split_title_year;
use reelvec_data::{
    load, write, Catalogue, Dataset, IdMap, Layout, Link, LoadOptions, LoadReport, Movie, Ratings, Tag,
};

const GENRES: [&str; 6] = ["Action", "Children's", "Comedy", "Drama", "Film-Noir", "Sci-Fi"];

/// A title strategy for a layout: any characters the layout can hold, plus the tricky ones.
fn title(layout: Layout) -> BoxedStrategy<String> {
    let pieces = prop_oneof![
        Just(",".to_string()),
        Just("\"".to_string()),
        Just("::".to_string()),
        Just(" (a.k.a. X)".to_string()),
        Just("é".to_string()),
        Just("ÿ".to_string()),
        Just("ß".to_string()),
        "[a-zA-Z0-9 .'&!?-]{1,8}",
        any::<char>().prop_map(|c| c.to_string()),
    ];
    let year = prop::option::of(1900u16..2030);
    (prop::collection::vec(pieces, 1..5), year)
        .prop_map(move |(parts, year)| {
            let mut t: String = parts.concat();
            t.retain(|c| match layout {
                Layout::Ml100k => u32::from(c) <= 0xFF && !matches!(c, '|' | '\n' | '\r'),
                Layout::Ml1m => u32::from(c) <= 0xFF && !matches!(c, '\n' | '\r'),
                Layout::Ml10m => !matches!(c, '\n' | '\r'),
                _ => true,
            });
            match year {
                Some(y) => format!("{t} ({y})"),
                None => t,
            }
        })
        .boxed()
}

fn movie(raw_id: u64, full_title: String, genres: Vec<String>) -> Movie {
    let (title, year) = split_title_year(&full_title);
    Movie { raw_id, title, full_title, year, genres }
}

/// A dataset for `layout`: distinct (user, movie) pairs, ratings the layout can hold.
fn dataset(layout: Layout) -> impl Strategy<Value = Dataset> {
    let n_movies = 1usize..8;
    n_movies
        .prop_flat_map(move |m| {
            (
                prop::collection::vec(title(layout), m),
                prop::collection::vec(prop::collection::btree_set(0usize..GENRES.len(), 0..3), m),
                prop::collection::btree_set((1u64..2000, 0usize..m), 1..40),
                prop::collection::vec((0u8..10, -5_000_000_000i64..5_000_000_000, any::<f32>()), 40),
                prop::collection::vec("[^\n\r:]{0,12}", 0..3),
            )
        })
        .prop_map(move |(titles, genre_sets, pairs, values, tag_texts)| {
            let movie_ids: Vec<u64> = (0..titles.len() as u64).map(|i| i * 7 + 1).collect();
            let movies: Vec<Movie> = titles
                .into_iter()
                .zip(genre_sets)
                .enumerate()
                .map(|(i, (t, gs))| {
                    movie(movie_ids[i], t, gs.into_iter().map(|g| GENRES[g].to_string()).collect())
                })
                .collect();
            let mut users = IdMap::default();
            let mut mids = IdMap::default();
            let mut r = Ratings::default();
            for (k, &(u, m)) in pairs.iter().enumerate() {
                let (stars, ts, free) = values[k % values.len()];
                let rating = match layout {
                    Layout::Ml100k | Layout::Ml1m => f32::from(stars % 5 + 1),
                    Layout::Ml10m | Layout::MlLatest => f32::from(stars + 1) / 2.0,
                    Layout::Generic => {
                        if free.is_finite() {
                            free
                        } else {
                            1.5
                        }
                    }
                };
                r.user.push(users.intern(u));
                r.movie.push(mids.intern(movie_ids[m]));
                r.rating.push(rating);
                r.timestamp.push(ts);
            }
            let tags: Vec<Tag> = tag_texts
                .into_iter()
                .enumerate()
                .map(|(i, tag)| Tag {
                    user_raw: i as u64 + 1,
                    movie_raw: 1,
                    tag,
                    timestamp: 1_000 + i as i64,
                })
                .collect();
            let links = vec![Link { movie_raw: 1, imdb_id: "0114709".into(), tmdb_id: Some(862) }];
            let catalogue = match layout {
                Layout::MlLatest => Catalogue::with_extras(movies, tags, links),
                Layout::Ml10m => Catalogue::with_extras(movies, tags, Vec::new()),
                Layout::Generic => Catalogue::default(),
                _ => Catalogue::new(movies),
            };
            Dataset { ratings: r, users, movies: mids, catalogue, report: LoadReport::default() }
        })
}

fn round_trip(ds: &Dataset, layout: Layout) -> Dataset {
    let dir = tempfile::tempdir().unwrap();
    let files = write(ds, layout, dir.path()).unwrap();
    let opts = LoadOptions { layout: Some(layout), use_cache: false, generic: None };
    load(&files[0], &opts).unwrap()
}

fn check(ds: &Dataset, layout: Layout) {
    let back = round_trip(ds, layout);
    assert_eq!(back.ratings, ds.ratings);
    assert_eq!(back.users.raws(), ds.users.raws());
    assert_eq!(back.movies.raws(), ds.movies.raws());
    assert_eq!(back.catalogue, ds.catalogue);
    assert_eq!(back.report.rows_read, ds.ratings.len() as u64);
    assert_eq!(back.report.duplicates_dropped, 0);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn ml100k_round_trips(ds in dataset(Layout::Ml100k)) { check(&ds, Layout::Ml100k); }

    #[test]
    fn ml1m_round_trips(ds in dataset(Layout::Ml1m)) { check(&ds, Layout::Ml1m); }

    #[test]
    fn ml10m_round_trips(ds in dataset(Layout::Ml10m)) { check(&ds, Layout::Ml10m); }

    #[test]
    fn ml_latest_round_trips(ds in dataset(Layout::MlLatest)) { check(&ds, Layout::MlLatest); }

    #[test]
    fn generic_round_trips(ds in dataset(Layout::Generic)) { check(&ds, Layout::Generic); }
}

const FILES: [(Layout, &[&str]); 4] = [
    (Layout::Ml100k, &["u.data", "u.item", "u.genre"]),
    (Layout::Ml1m, &["ratings.dat", "movies.dat", "users.dat"]),
    (Layout::Ml10m, &["ratings.dat", "movies.dat", "tags.dat"]),
    (Layout::MlLatest, &["ratings.csv", "movies.csv", "tags.csv", "links.csv"]),
];

/// Bytes that look a little like MovieLens lines, so parsers get past the first field.
fn noisy_bytes() -> impl Strategy<Value = Vec<u8>> {
    let token = prop_oneof![
        Just(b"1".to_vec()),
        Just(b"::".to_vec()),
        Just(b",".to_vec()),
        Just(b"|".to_vec()),
        Just(b"\t".to_vec()),
        Just(b"\n".to_vec()),
        Just(b"\"".to_vec()),
        Just(b"4.5".to_vec()),
        Just(b"userId,movieId,rating,timestamp\n".to_vec()),
        Just(b"movieId,title,genres\n".to_vec()),
        prop::collection::vec(any::<u8>(), 0..6),
    ];
    prop::collection::vec(token, 0..40).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(which in 0usize..4, file in 0usize..4, bytes in noisy_bytes(), valid in any::<bool>()) {
        let (layout, names) = FILES[which];
        let dir = tempfile::tempdir().unwrap();
        let valid_rows: &[u8] = match layout {
            Layout::Ml100k => b"1\t1\t3\t5\n",
            Layout::Ml1m | Layout::Ml10m => b"1::1::3::5\n",
            _ => b"userId,movieId,rating,timestamp\n1,1,3.0,5\n",
        };
        let target = file % names.len();
        for (i, name) in names.iter().enumerate() {
            if i == target {
                std::fs::write(dir.path().join(name), &bytes).unwrap();
            } else if i == 0 && valid {
                std::fs::write(dir.path().join(name), valid_rows).unwrap();
            }
        }
        let opts = LoadOptions { layout: Some(layout), use_cache: false, generic: None };
        let _ = load(dir.path(), &opts);
        let _ = load(dir.path(), &LoadOptions { use_cache: false, ..LoadOptions::default() });
        let generic = dir.path().join(names[target]);
        let _ = load(&generic, &LoadOptions { layout: Some(Layout::Generic), use_cache: false, generic: None });
    }
}
