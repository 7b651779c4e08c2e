//! Item side features through the `reelvec` binary: `train --set model.item_features=[..]`
//! (and its errors), `similar` / `recommend` marking movies whose vector comes from features
//! alone, and `reelvec coldstart` (table and JSON).

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Output};

fn reelvec(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_reelvec")).args(args).output().unwrap()
}

fn ok(args: &[&str]) -> String {
    let o = reelvec(args);
    assert!(o.status.success(), "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn fails(args: &[&str]) -> String {
    let o = reelvec(args);
    assert!(!o.status.success(), "{args:?} should fail");
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn synth(dir: &Path) -> String {
    let data = dir.join("data");
    ok(&["data", "synth", "--preset", "tiny", "--out", data.to_str().unwrap()]);
    data.to_str().unwrap().to_string()
}

#[test]
fn train_with_features_marks_cold_movies_in_similar_and_recommend() {
    let dir = tempfile::tempdir().unwrap();
    let data = synth(dir.path());
    let run = dir.path().join("run");
    let r = run.to_str().unwrap();
    let features = r#"model.item_features=["genres", "decade"]"#;
    let base =
        ["train", "--model", "mf", "--data", &data, "--quiet", "--no-cache", "--set", "train.epochs=2"];
    let mut args = base.to_vec();
    args.extend(["--out", r, "--set", features, "--set", "train_fraction=0.6", "--seed", "4"]);
    ok(&args);
    let info: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("run.json")).unwrap()).unwrap();
    let names: Vec<&str> =
        info["item_features"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert!(names.iter().any(|n| n.starts_with("genre:")), "{names:?}");

    // A movie without training ratings: its `similar` says its vector is from features alone.
    let rated = reelvec_models::checkpoint::load_rated(&run).unwrap().unwrap();
    let counts = rated.movie_counts(info["movie_raw_ids"].as_array().unwrap().len()).unwrap();
    let cold = counts.iter().position(|&c| c == 0).expect("a movie without training ratings");
    let raw = info["movie_raw_ids"][cold].as_u64().unwrap().to_string();
    let out = ok(&["similar", "--run", r, &raw, "-k", "5"]);
    assert!(out.contains("its vector comes from its item features alone"), "{out}");
    let n = counts.len().to_string();
    let user = info["user_raw_ids"][0].as_u64().unwrap().to_string();
    let out = ok(&["recommend", "--run", r, "--user", &user, "-k", &n]);
    assert!(out.contains("[vector from features alone: no training ratings]"), "{out}");

    // Without features nothing is marked.
    let plain = dir.path().join("plain");
    let mut args = base.to_vec();
    args.extend(["--out", plain.to_str().unwrap(), "--set", "train_fraction=0.6", "--seed", "4"]);
    ok(&args);
    let out = ok(&["recommend", "--run", plain.to_str().unwrap(), "--user", &user, "-k", &n]);
    assert!(!out.contains("from features"), "{out}");

    // Unknown names and tags on data without tags are refused, nothing written.
    for (set, want) in [
        (r#"model.item_features=["genre"]"#, "model.item_features"),
        (r#"model.item_features=["tags"]"#, "tags"),
    ] {
        let bad = dir.path().join("bad");
        let mut args = base.to_vec();
        args.extend(["--out", bad.to_str().unwrap(), "--set", set]);
        let err = fails(&args);
        assert!(err.contains(want), "{err}");
        assert!(!bad.join("run.json").exists());
    }
}

#[test]
fn coldstart_prints_the_table_and_writes_json() {
    let dir = tempfile::tempdir().unwrap();
    let data = synth(dir.path());
    let json = dir.path().join("cold.json");
    let out = ok(&[
        "coldstart",
        "--data",
        &data,
        "--fraction",
        "0.2",
        "--seed",
        "3",
        "--set",
        "train.epochs=2",
        "--set",
        "k=4",
        "--json",
        json.to_str().unwrap(),
        "--no-cache",
    ]);
    for row in ["global mean", "genre mean", "model without features", "model with features"] {
        assert!(out.contains(row), "{out}");
    }
    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(report["rows"].as_array().unwrap().len(), 4);
    assert_eq!(report["item_features"], serde_json::json!(["genres", "decade"]));
    let err = fails(&["coldstart", "--data", &data, "--fraction", "1.5", "--no-cache"]);
    assert!(err.contains("--fraction"), "{err}");
}

#[test]
fn item2vec_with_features_marks_cold_movies_and_coldstart_reports_genre_shares() {
    let dir = tempfile::tempdir().unwrap();
    let data = synth(dir.path());
    let run = dir.path().join("cbow");
    let r = run.to_str().unwrap();
    ok(&[
        "train",
        "--model",
        "cbow",
        "--data",
        &data,
        "--quiet",
        "--no-cache",
        "--out",
        r,
        "--seed",
        "4",
        "--set",
        r#"model.item_features=["genres", "decade"]"#,
        "--set",
        "train.epochs=2",
        "--set",
        "top_movies=0",
        "--set",
        "min_user_ratings=1",
        "--set",
        "train_fraction=0.3",
    ]);
    let info: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("run.json")).unwrap()).unwrap();
    let names = info["item_features"].as_array().unwrap();
    assert!(names.iter().any(|n| n.as_str().unwrap().starts_with("genre:")), "{names:?}");
    // A movie of no training sequence: `similar` says its vector comes from features alone.
    let rated = reelvec_models::checkpoint::load_rated(&run).unwrap().unwrap();
    let counts = rated.movie_counts(info["movie_raw_ids"].as_array().unwrap().len()).unwrap();
    let cold = counts.iter().position(|&c| c == 0).expect("a movie of no training sequence");
    let raw = info["movie_raw_ids"][cold].as_u64().unwrap().to_string();
    let out = ok(&["similar", "--run", r, &raw, "-k", "5"]);
    assert!(out.contains("its vector comes from its item features alone"), "{out}");
    // pair_sgd with features is refused, naming the key.
    let err = fails(&[
        "train",
        "--model",
        "skipgram",
        "--data",
        &data,
        "--no-cache",
        "--out",
        dir.path().join("bad").to_str().unwrap(),
        "--set",
        r#"model.item_features=["genres"]"#,
        "--set",
        "model.loss=\"negative_sampling\"",
        "--set",
        "model.trainer=\"pair_sgd\"",
    ]);
    assert!(err.contains("model.item_features"), "{err}");

    let json = dir.path().join("cold.json");
    let out = ok(&[
        "coldstart",
        "--data",
        &data,
        "--model",
        "cbow",
        "--fraction",
        "0.2",
        "--seed",
        "3",
        "--set",
        "train.epochs=2",
        "--json",
        json.to_str().unwrap(),
        "--no-cache",
    ]);
    for row in
        ["held-out movies, features alone", "random trained movies (baseline)", "trained movies, own vectors"]
    {
        assert!(out.contains(row), "{out}");
    }
    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let rows = report["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 3);
    assert!(rows[0]["queries"].as_u64().unwrap() > 0, "{report}");
    assert!((0.0..=1.0).contains(&rows[0]["share_same_genre"].as_f64().unwrap()), "{report}");
}
