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
    assert!(err.to_string().contains("no u.data, ratings.dat or ratings.csv"));
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
