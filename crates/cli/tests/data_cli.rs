//! `reelvec data ...` and `reelvec pipeline` end to end: the binary on committed fixtures, on a
//! synthetic tiny data set, and on bad input.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn reelvec(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_reelvec")).args(args).output().unwrap()
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/tests/fixtures").join(name)
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn stats_json_on_fixtures() {
    let o = reelvec(&[
        "data",
        "stats",
        "--no-cache",
        "--json",
        "--data",
        fixture("ml-latest-small").to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["users"], 3);
    assert_eq!(v["movies_rated"], 6);
    assert_eq!(v["movies_catalogue"], 8);
    assert_eq!(v["ratings"], 7);
    assert_eq!(v["rating_min"], 0.5);
    assert_eq!(v["rating_max"], 5.0);
    assert_eq!(v["duplicates_dropped"], 1);
    let mean = v["rating_mean"].as_f64().unwrap();
    assert!((mean - (4.0 + 4.0 + 5.0 + 2.5 + 4.5 + 0.5 + 3.0) / 7.0).abs() < 1e-9);
    assert!((v["density"].as_f64().unwrap() - 7.0 / 18.0).abs() < 1e-9);

    let o = reelvec(&["data", "stats", "--no-cache", "--data", fixture("ml-1m").to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("layout                ml-1m"));
    assert!(stdout(&o).contains("ratings               7"));
}

#[test]
fn synth_then_stats_for_every_layout() {
    let tmp = tempfile::tempdir().unwrap();
    for layout in ["ml-100k", "ml-1m", "ml-10m", "ml-latest", "generic"] {
        let out = tmp.path().join(layout);
        let o = reelvec(&[
            "data",
            "synth",
            "--preset",
            "tiny",
            "--layout",
            layout,
            "--out",
            out.to_str().unwrap(),
            "--seed",
            "3",
        ]);
        assert!(o.status.success(), "{layout}: {}", stderr(&o));
        assert!(out.join("truth.json").is_file());
        let data = if layout == "generic" { out.join("ratings.txt") } else { out.clone() };
        let o = reelvec(&["data", "stats", "--json", "--data", data.to_str().unwrap()]);
        assert!(o.status.success(), "{layout}: {}", stderr(&o));
        let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
        assert_eq!(v["users"], 60, "{layout}");
        let expected = if layout == "generic" { 0 } else { 120 };
        assert_eq!(v["movies_catalogue"], expected, "{layout}");
        assert!(v["ratings"].as_u64().unwrap() > 1000, "{layout}");
    }
    let truth: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(tmp.path().join("ml-latest/truth.json")).unwrap())
            .unwrap();
    assert_eq!(truth["sigma"], 0.5);
    assert_eq!(truth["franchises"][0].as_array().unwrap().len(), 3);
}

#[test]
fn bad_input_names_file_and_line_and_exits_nonzero() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("ratings.csv"), "userId,movieId,rating,timestamp\n1,2,4.0,5\n1,2,x,5\n")
        .unwrap();
    let o = reelvec(&["data", "stats", "--data", tmp.path().to_str().unwrap()]);
    assert!(!o.status.success());
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(err.starts_with("error: cannot load data set"), "{err}");
    assert!(err.contains("ratings.csv:3: column rating: cannot parse \"x\""), "{err}");

    let o = reelvec(&["data", "stats", "--data", "/nonexistent/dir"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("/nonexistent/dir"), "{}", stderr(&o));

    let o = reelvec(&["data", "stats", "--layout", "ml-7m", "--data", tmp.path().to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("unknown layout"), "{}", stderr(&o));

    let o = reelvec(&["data", "synth", "--preset", "huge", "--out", tmp.path().join("x").to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("unknown preset"), "{}", stderr(&o));
}

#[test]
fn help_everywhere() {
    for args in [
        vec!["--help"],
        vec!["data", "--help"],
        vec!["data", "stats", "--help"],
        vec!["data", "synth", "--help"],
        vec!["pipeline", "--help"],
    ] {
        let o = reelvec(&args);
        assert!(o.status.success(), "{args:?}");
        assert!(stdout(&o).contains("Usage"), "{args:?}");
    }
}

#[test]
fn synth_checks_its_output_folder_before_generating() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("a-file");
    std::fs::write(&file, b"keep").unwrap();
    let o = reelvec(&[
        "data",
        "synth",
        "--preset",
        "tiny",
        "--layout",
        "ml-latest",
        "--out",
        file.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    let err = stderr(&o);
    // The output check speaks (not the writer after generation: no "synthetic ... generated" line).
    assert!(err.contains("exists and is not a directory"), "{err}");
    assert!(!err.contains("generated in"), "{err}");
    assert_eq!(std::fs::read(&file).unwrap(), b"keep");
}
