//! Every kind of bad input gives a typed error naming the file, the line and the problem.

#![allow(clippy::unwrap_used)]

use std::path::Path;

use reelvec_data::{load, transforms, DataError, Layout, LoadOptions, ParseProblem};

fn no_cache() -> LoadOptions {
    LoadOptions { use_cache: false, ..LoadOptions::default() }
}

/// Writes `files` into a fresh directory and loads it.
fn load_files(files: &[(&str, &[u8])]) -> (tempfile::TempDir, Result<reelvec_data::Dataset, DataError>) {
    let dir = tempfile::tempdir().unwrap();
    for (name, bytes) in files {
        std::fs::write(dir.path().join(name), bytes).unwrap();
    }
    let res = load(dir.path(), &no_cache());
    (dir, res)
}

/// Asserts a parse error at `file:line` with the given problem.
fn assert_parse_error(
    res: Result<reelvec_data::Dataset, DataError>,
    file: &str,
    line: u64,
    check: fn(&ParseProblem) -> bool,
) {
    let err = res.unwrap_err();
    let msg = err.to_string();
    match &err {
        DataError::Parse { path, line: l, problem } => {
            assert_eq!(path.file_name().unwrap(), file, "{msg}");
            assert_eq!(*l, line, "{msg}");
            assert!(check(problem), "{msg}");
            assert!(msg.contains(&format!("{file}:{line}: ")), "{msg}");
        }
        other => panic!("expected a parse error, got {other:?}"),
    }
}

const HEADER: &str = "userId,movieId,rating,timestamp\n";

#[test]
fn missing_path_and_unknown_layout() {
    let err = load(Path::new("/nonexistent/reelvec/data"), &no_cache()).unwrap_err();
    assert!(matches!(err, DataError::Io { .. }));
    assert!(err.to_string().starts_with("/nonexistent/reelvec/data: "), "{err}");
    let (_d, res) = load_files(&[("readme.txt", b"hello")]);
    let err = res.unwrap_err();
    assert!(matches!(err, DataError::UnknownLayout { .. }), "{err}");
    assert!(err.to_string().contains("no u.data, ratings.dat, ratings.csv or ratings.parquet"), "{err}");
    assert!(matches!("ml-3m".parse::<Layout>(), Err(DataError::UnknownLayout { .. })));
    // A forced layout whose files are missing names the missing file.
    let dir = tempfile::tempdir().unwrap();
    let err = load(dir.path(), &LoadOptions { layout: Some(Layout::Ml1m), ..no_cache() }).unwrap_err();
    assert!(matches!(&err, DataError::Io { path, .. } if path.ends_with("ratings.dat")), "{err}");
}

#[test]
fn wrong_column_count() {
    let (_d, res) = load_files(&[("ratings.csv", format!("{HEADER}1,2,4.0,5\n1,3,4.0\n").as_bytes())]);
    assert_parse_error(res, "ratings.csv", 3, |p| {
        matches!(p, ParseProblem::ColumnCount { expected: 4, found: 3 })
    });
    let (_d, res) = load_files(&[("u.data", b"1\t2\t3\t4\t5\n")]);
    assert_parse_error(res, "u.data", 1, |p| {
        matches!(p, ParseProblem::ColumnCount { expected: 4, found: 5 })
    });
    let (_d, res) =
        load_files(&[("u.data", b"1\t2\t3\t4\n"), ("u.item", b"1|Toy Story (1995)|01-Jan-1995||url|0|1\n")]);
    assert_parse_error(res, "u.item", 1, |p| {
        matches!(p, ParseProblem::ColumnCount { expected: 24, found: 7 })
    });
    let (_d, res) = load_files(&[("ratings.dat", b"1::2::3::4\n\n1::2\n"), ("users.dat", b"")]);
    assert_parse_error(res, "ratings.dat", 3, |p| {
        matches!(p, ParseProblem::ColumnCount { expected: 4, found: 2 })
    });
}

#[test]
fn unparsable_numbers() {
    let (_d, res) =
        load_files(&[("ratings.csv", format!("{HEADER}1,2,4.0,5\r\n1,abc,4.0,5\r\n").as_bytes())]);
    assert_parse_error(res, "ratings.csv", 3, |p| {
        matches!(p, ParseProblem::BadNumber { column: "movie", .. })
    });
    let (_d, res) = load_files(&[("ratings.csv", format!("{HEADER}1,2,four,5\n").as_bytes())]);
    assert_parse_error(res, "ratings.csv", 2, |p| {
        matches!(p, ParseProblem::BadNumber { column: "rating", .. })
    });
    let (_d, res) = load_files(&[("ratings.csv", format!("{HEADER}1,2,4.0,12:30\n").as_bytes())]);
    assert_parse_error(res, "ratings.csv", 2, |p| {
        matches!(p, ParseProblem::BadNumber { column: "timestamp", .. })
    });
    let (_d, res) = load_files(&[("ratings.csv", format!("{HEADER}-1,2,4.0,5\n").as_bytes())]);
    assert_parse_error(res, "ratings.csv", 2, |p| {
        matches!(p, ParseProblem::BadNumber { column: "user", .. })
    });
}

#[test]
fn ratings_out_of_range_and_nan() {
    let (_d, res) = load_files(&[("ratings.csv", format!("{HEADER}1,2,5.5,5\n").as_bytes())]);
    assert_parse_error(res, "ratings.csv", 2, |p| matches!(p, ParseProblem::RatingOutOfRange { .. }));
    let (_d, res) = load_files(&[("ratings.csv", format!("{HEADER}1,2,0,5\n").as_bytes())]);
    assert_parse_error(res, "ratings.csv", 2, |p| matches!(p, ParseProblem::RatingOutOfRange { .. }));
    let (_d, res) = load_files(&[("u.data", b"1\t2\t3\t4\n1\t3\t0.5\t4\n")]);
    assert_parse_error(
        res,
        "u.data",
        2,
        |p| matches!(p, ParseProblem::RatingOutOfRange { min, .. } if *min == 1.0),
    );
    let (_d, res) = load_files(&[("ratings.csv", format!("{HEADER}1,2,NaN,5\n").as_bytes())]);
    assert_parse_error(res, "ratings.csv", 2, |p| matches!(p, ParseProblem::NotFinite { .. }));
    // The generic layout accepts any finite rating but not NaN.
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("r.txt");
    std::fs::write(&f, "1,2,-7.5,0\n1,3,nan,0\n").unwrap();
    assert_parse_error(load(&f, &no_cache()), "r.txt", 2, |p| matches!(p, ParseProblem::NotFinite { .. }));
}

#[test]
fn invalid_utf8_where_required() {
    let movies = b"movieId,title,genres\n1,Toy Story (1995),Comedy\n2,Bad \xff Title (1999),Drama\n";
    let (_d, res) =
        load_files(&[("ratings.csv", format!("{HEADER}1,1,4.0,5\n").as_bytes()), ("movies.csv", movies)]);
    assert_parse_error(res, "movies.csv", 3, |p| matches!(p, ParseProblem::InvalidUtf8));
    // ml-10m's movies.dat is UTF-8; ml-1m's (with users.dat beside it) is Latin-1.
    let (_d, res) =
        load_files(&[("ratings.dat", b"1::1::4::5\n"), ("movies.dat", b"1::Mis\xe9rables (1995)::Drama\n")]);
    assert_parse_error(res, "movies.dat", 1, |p| matches!(p, ParseProblem::InvalidUtf8));
    let (_d, res) = load_files(&[
        ("ratings.dat", b"1::1::4::5\n"),
        ("movies.dat", b"1::Mis\xe9rables (1995)::Drama\n"),
        ("users.dat", b"1::F::1::10::48067\n"),
    ]);
    assert_eq!(res.unwrap().catalogue.get(1).unwrap().title, "Misérables");
    let (_d, res) = load_files(&[("ratings.csv", format!("{HEADER}1,\u{0}\u{1}\u{2}\n").as_bytes())]);
    assert_parse_error(res, "ratings.csv", 2, |p| matches!(p, ParseProblem::ColumnCount { .. }));
    let mut bytes = HEADER.as_bytes().to_vec();
    bytes.extend_from_slice(b"1,\xfe,4.0,5\n");
    let (_d, res) = load_files(&[("ratings.csv", &bytes)]);
    assert_parse_error(res, "ratings.csv", 2, |p| matches!(p, ParseProblem::InvalidUtf8));
}

#[test]
fn bad_header_and_csv_syntax() {
    let (_d, res) = load_files(&[("ratings.csv", b"user,item,rating\n1,2,3\n")]);
    assert_parse_error(res, "ratings.csv", 1, |p| matches!(p, ParseProblem::BadHeader { .. }));
    let movies = b"movieId,title,genres\n1,\"Unterminated (1995),Comedy\n";
    let (_d, res) =
        load_files(&[("ratings.csv", format!("{HEADER}1,1,4.0,5\n").as_bytes()), ("movies.csv", movies)]);
    let err = res.unwrap_err();
    assert!(err.to_string().contains("movies.csv:"), "{err}");
}

#[test]
fn empty_inputs() {
    let (_d, res) = load_files(&[("ratings.csv", HEADER.as_bytes())]);
    let err = res.unwrap_err();
    assert!(matches!(err, DataError::Empty { .. }));
    assert!(err.to_string().ends_with("ratings.csv: no ratings in the file"), "{err}");
    let (_d, res) = load_files(&[("u.data", b"\n\n")]);
    assert!(matches!(res, Err(DataError::Empty { .. })));
    let (_d, res) = load_files(&[("ratings.csv", format!("{HEADER}1,1,4.0,5\n").as_bytes())]);
    let ds = res.unwrap();
    let filtered = transforms::filter_min_ratings(&ds, 20, 1);
    let err = transforms::require_nonempty(&filtered, "keeping users with >= 20 ratings").unwrap_err();
    assert_eq!(err.to_string(), "dataset: no ratings after keeping users with >= 20 ratings");
}

#[test]
fn an_open_quote_in_the_last_field_is_an_error_not_a_swallowed_file() {
    // The quote opened in line 3's genres is never closed: the csv crate would hand back the
    // rest of the file as that one field.
    let movies =
        b"movieId,title,genres\n1,Toy Story (1995),Comedy\n2,Heat (1995),\"Action\n3,Up (2009),Drama\n";
    let ratings = format!("{HEADER}1,1,4.0,5\n");
    let (_d, res) = load_files(&[("ratings.csv", ratings.as_bytes()), ("movies.csv", movies)]);
    assert_parse_error(
        res,
        "movies.csv",
        3,
        |p| matches!(p, ParseProblem::Csv(m) if m.contains("unterminated")),
    );
    // Without a final newline, and in tags.csv too.
    let tags = b"userId,movieId,tag,timestamp\n1,1,funny,\"5";
    let (_d, res) = load_files(&[("ratings.csv", ratings.as_bytes()), ("tags.csv", tags)]);
    assert_parse_error(res, "tags.csv", 2, |p| matches!(p, ParseProblem::Csv(_)));
    // Closed quotes, escaped quotes and a quoted newline-free comma still load.
    let movies = b"movieId,title,genres\n1,\"Amelie, \"\"Le\"\" (2001)\",Comedy|Romance\n";
    let (_d, res) = load_files(&[("ratings.csv", ratings.as_bytes()), ("movies.csv", movies)]);
    let ds = res.unwrap();
    assert_eq!(ds.catalogue.get(1).unwrap().title, "Amelie, \"Le\"");
}

#[test]
fn out_of_range_generic_columns_are_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("r.csv");
    std::fs::write(&f, b"1,2,3,4\n").unwrap();
    for (rating, timestamp) in [(usize::MAX, Some(3)), (2, Some(usize::MAX)), (32, None), (2, Some(1 << 40))]
    {
        let generic = reelvec_data::GenericColumns { rating, timestamp, ..Default::default() };
        for use_cache in [false, true] {
            let opts = LoadOptions { layout: Some(Layout::Generic), use_cache, generic: Some(generic) };
            let err = load(&f, &opts).unwrap_err();
            assert!(matches!(err, DataError::Invalid(_)), "{err}");
            assert!(err.to_string().contains("out of range"), "{err}");
        }
    }
}

/// `u.genre` with `n` genres and a `u.item` line flagging every third one.
fn many_genres(n: usize) -> (Vec<u8>, Vec<u8>) {
    let genre: String = (0..n).map(|i| format!("G{i}|{i}\n")).collect();
    let flags: String = (0..n).map(|i| if i % 3 == 0 { "|1" } else { "|0" }).collect();
    let item = format!("1|Toy Story (1995)|01-Jan-1995||url{flags}\n");
    (genre.into_bytes(), item.into_bytes())
}

#[test]
fn any_number_of_ml100k_genres_loads_or_fails_cleanly() {
    for n in [1, 19, 27, 28, 40, 200] {
        let (genre, item) = many_genres(n);
        let (_d, res) = load_files(&[("u.data", b"1\t1\t3\t4\n"), ("u.genre", &genre), ("u.item", &item)]);
        let ds = res.unwrap();
        let want: Vec<String> = (0..n).step_by(3).map(|i| format!("G{i}")).collect();
        assert_eq!(ds.catalogue.get(1).unwrap().genres, want, "{n} genres");
    }
    // A u.item line with more fields than u.genre has genres (33 or more) is a column error.
    let (genre, _) = many_genres(19);
    let (_, item) = many_genres(40);
    let (_d, res) = load_files(&[("u.data", b"1\t1\t3\t4\n"), ("u.genre", &genre), ("u.item", &item)]);
    assert_parse_error(res, "u.item", 1, |p| {
        matches!(p, ParseProblem::ColumnCount { expected: 24, found: 45 })
    });
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 32, ..Default::default() })]

    /// Any genre count and any field count on a u.item line: a catalogue or a column-count
    /// error, never a panic.
    #[test]
    fn ml100k_genre_and_field_counts_never_panic(n in 1usize..90, fields in 0usize..120) {
        let (genre, _) = many_genres(n);
        let (_, item) = many_genres(fields);
        let (_d, res) = load_files(&[("u.data", b"1\t1\t3\t4\n"), ("u.genre", &genre), ("u.item", &item)]);
        match res {
            Ok(_) => proptest::prop_assert_eq!(n, fields),
            Err(DataError::Parse { problem: ParseProblem::ColumnCount { expected, found }, .. }) => {
                proptest::prop_assert_eq!((expected, found), (n + 5, fields + 5));
            }
            Err(e) => proptest::prop_assert!(false, "{}", e),
        }
    }
}
