//! End-to-end tests of `reelvec train --model popularity|itemknn|ease|ials|bpr` and of
//! `recommend`, `similar` and `export` on their run directories, on a tiny synthetic data set
//! written to a temporary directory.

// Tests unwrap freely: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// 30 users in two taste groups: even users watch movies 1..=6, odd users 7..=12 (5 of the 6).
fn write_data(dir: &Path) {
    let mut ratings = String::from("userId,movieId,rating,timestamp\n");
    for u in 1..=30u64 {
        let base = if u % 2 == 0 { 1 } else { 7 };
        for j in 0..5 {
            let m = base + (u + j) % 6;
            ratings.push_str(&format!("{u},{m},4.0,{}\n", 1_000_000 + u * 100 + j));
        }
    }
    let mut movies = String::from("movieId,title,genres\n");
    for m in 1..=12u64 {
        movies.push_str(&format!("{m},Picture {m} (19{}),Drama\n", 60 + m));
    }
    std::fs::write(dir.join("ratings.csv"), ratings).unwrap();
    std::fs::write(dir.join("movies.csv"), movies).unwrap();
}

/// A temporary directory holding the data set of [`write_data`] in `data/`.
fn temp_data() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir(&data).unwrap();
    write_data(&data);
    (tmp, data)
}

fn reelvec(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_reelvec")).args(args).output().unwrap()
}

fn ok(args: &[&str]) -> String {
    let out = reelvec(args);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "reelvec {args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn fails(args: &[&str]) -> String {
    let out = reelvec(args);
    assert!(!out.status.success(), "reelvec {args:?} should fail");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn train(data: &Path, out: &Path, model: &str, sets: &[&str]) -> String {
    let mut args =
        vec!["train", "--model", model, "--data", data.to_str().unwrap(), "--out", out.to_str().unwrap()];
    args.extend(["--quiet", "--no-cache", "--seed", "3"]);
    for s in sets {
        args.extend(["--set", s]);
    }
    ok(&args)
}

/// Movie ids listed by `recommend` / `similar` (third column).
fn listed(stdout: &str) -> Vec<u64> {
    stdout.lines().skip(1).filter_map(|l| l.split_whitespace().nth(2)?.parse().ok()).collect()
}

fn sets(model: &str) -> &'static [&'static str] {
    match model {
        "ials" => &["factors=4", "iterations=4"],
        "bpr" | "warp" => &["factors=4", "epochs=3"],
        "itemknn" => &["neighbours=5"],
        "ease" => &["lambda=10"],
        _ => &[],
    }
}

#[test]
fn every_ranker_trains_saves_and_recommends() {
    let (tmp, data) = temp_data();
    for model in ["popularity", "itemknn", "ease", "ials", "bpr", "warp"] {
        let run: PathBuf = tmp.path().join(model);
        let out = train(&data, &run, model, sets(model));
        assert!(out.contains(&format!("{model}: 150 interactions, 30 users, 12 movies")), "{out}");
        assert!(out.contains("params: {") && out.contains("fit "), "{out}");
        for file in ["model.safetensors", "run.json", "rated.safetensors", "manifest.json"] {
            assert!(run.join(file).is_file(), "{model}: {file} missing");
        }
        let info: serde_json::Value =
            serde_json::from_slice(&std::fs::read(run.join("run.json")).unwrap()).unwrap();
        assert_eq!(info["model_kind"], model);
        let r = run.to_str().unwrap();
        // User 2 (even) watched 5 of movies 1..=6: excluded, the sixth comes first for the
        // neighbour models; nothing they watched is listed.
        let top = ok(&["recommend", "--run", r, "--user", "2", "-k", "3", "--exclude-rated"]);
        let got = listed(&top);
        assert_eq!(got.len(), 3, "{model}: {top}");
        assert!(top.contains("excluding 5 rated"), "{model}: {top}");
        let watched: Vec<u64> = (0..5).map(|j| 1 + (2 + j) % 6).collect();
        assert!(got.iter().all(|m| !watched.contains(m)), "{model}: {top}");
        if matches!(model, "itemknn" | "ease") {
            assert_eq!(got[0], 2, "{model}: {top}");
        }
        // Without --exclude-rated, the same user's list may hold watched movies.
        assert_eq!(listed(&ok(&["recommend", "--run", r, "--user", "2", "-k", "12"])).len(), 12);
        // A new user from watched movies: bpr and warp refuse (no fold-in), the others answer.
        let new = reelvec(&["recommend", "--run", r, "--watched", "7", "--watched", "8", "-k", "2"]);
        if matches!(model, "bpr" | "warp") {
            let err = String::from_utf8_lossy(&new.stderr);
            assert!(!new.status.success() && err.contains(model), "{err}");
        } else {
            let out = String::from_utf8_lossy(&new.stdout);
            assert!(new.status.success(), "{model}: {}", String::from_utf8_lossy(&new.stderr));
            let got = listed(&out);
            assert!(got.len() == 2 && got.iter().all(|m| *m != 7 && *m != 8), "{model}: {out}");
        }
        // similar: ials/bpr/warp by their embeddings, itemknn by its lists, the others refuse.
        let sim = reelvec(&["similar", "--run", r, "1", "-k", "2"]);
        let sim_out = String::from_utf8_lossy(&sim.stdout);
        match model {
            "ials" | "bpr" | "warp" | "itemknn" => {
                assert!(sim.status.success(), "{model}: {}", String::from_utf8_lossy(&sim.stderr));
                assert_eq!(listed(&sim_out).len(), 2, "{model}: {sim_out}");
            }
            _ => {
                let err = String::from_utf8_lossy(&sim.stderr);
                assert!(!sim.status.success() && err.contains(model), "{model}: {err}");
            }
        }
        let csv = tmp.path().join(format!("{model}.csv"));
        let export = reelvec(&["export", "--run", r, "--format", "csv", "--out", csv.to_str().unwrap()]);
        assert_eq!(export.status.success(), matches!(model, "ials" | "bpr" | "warp"), "{model}");
        assert_eq!(csv.exists(), matches!(model, "ials" | "bpr" | "warp"), "{model}");
        // User vectors (ials, bpr, warp) as Parquet; the others refuse and write nothing.
        let users = tmp.path().join(format!("{model}-users.parquet"));
        let u = users.to_str().unwrap();
        let export =
            reelvec(&["export", "--run", r, "--vectors", "users", "--format", "parquet", "--out", u]);
        let has_users = matches!(model, "ials" | "bpr" | "warp");
        assert_eq!(
            export.status.success(),
            has_users,
            "{model}: {}",
            String::from_utf8_lossy(&export.stderr)
        );
        if has_users {
            assert!(String::from_utf8_lossy(&export.stdout).contains("30 users"), "{model}");
            assert!(std::fs::read(&users).unwrap().starts_with(b"PAR1"), "{model}");
        } else {
            assert!(String::from_utf8_lossy(&export.stderr).contains("exporting user vectors"), "{model}");
            assert!(!users.exists(), "{model}");
        }
    }
    let err = fails(&[
        "export",
        "--run",
        tmp.path().join("ials").to_str().unwrap(),
        "--vectors",
        "users",
        "--format",
        "csv",
        "--out",
        tmp.path().join("users.csv").to_str().unwrap(),
    ]);
    assert!(err.contains("Parquet only"), "{err}");
    // Commands for other kinds refuse clearly, before reading the data.
    let ials = tmp.path().join("ials");
    let i = ials.to_str().unwrap();
    // evaluate covers ranking runs now: a missing data set is named.
    let err = fails(&["evaluate", "--run", i, "--data", "/nonexistent/reelvec"]);
    assert!(err.contains("/nonexistent/reelvec"), "{err}");
    let err = fails(&["predict", "--run", i, "--user", "2", "--movie", "1"]);
    assert!(err.contains("does not predict ratings"), "{err}");
    // The same seed gives the same model and interactions on 1 and 2 threads.
    for model in ["ials", "bpr", "warp", "itemknn"] {
        let mut files = Vec::new();
        for threads in ["1", "2"] {
            let run = tmp.path().join(format!("{model}-t{threads}"));
            let mut args = vec!["train", "--model", model, "--data", data.to_str().unwrap()];
            args.extend([
                "--out",
                run.to_str().unwrap(),
                "--quiet",
                "--no-cache",
                "--seed",
                "3",
                "--threads",
                threads,
            ]);
            for x in sets(model) {
                args.extend(["--set", x]);
            }
            ok(&args);
            files.push(
                ["model.safetensors", "rated.safetensors"].map(|f| std::fs::read(run.join(f)).unwrap()),
            );
        }
        assert!(files[0] == files[1], "{model}: files differ between 1 and 2 threads");
    }
    // itemknn's neighbours of movie 1 are movies of its group.
    let knn = tmp.path().join("itemknn");
    let sim = ok(&["similar", "--run", knn.to_str().unwrap(), "1", "-k", "3"]);
    assert!(listed(&sim).iter().all(|m| (2..=6).contains(m)), "{sim}");
}

#[test]
fn bad_parameters_fail_before_work_and_a_damaged_run_is_named() {
    let (tmp, data) = temp_data();
    let d = data.to_str().unwrap();
    let run = tmp.path().join("run");
    let r = run.to_str().unwrap();
    for (model, set, needle) in [
        ("ease", "lambda=-1", "ease.lambda"),
        ("ials", "rank=4", "rank"),
        ("popularity", "factors=2", "factors"),
    ] {
        let err = fails(&["train", "--model", model, "--data", d, "--out", r, "--set", set, "--quiet"]);
        assert!(err.contains(needle), "{err}");
        assert!(!run.exists(), "a failed {model} train wrote {r}");
    }
    // --print-config: the full parameters, defaults filled in, and nothing written.
    let printed =
        ok(&["train", "--model", "ials", "--data", d, "--out", r, "--set", "factors=8", "--print-config"]);
    let printed: serde_json::Value = serde_json::from_str(&printed).unwrap();
    assert_eq!(printed["factors"], 8);
    assert!(printed["iterations"].is_u64() && printed["alpha"].is_number(), "{printed}");
    assert!(!run.exists());
    // A data error is reported too, and nothing is written.
    let err = fails(&["train", "--model", "ease", "--data", "/nonexistent/reelvec", "--out", r, "--quiet"]);
    assert!(!err.is_empty() && !run.exists(), "{err}");

    train(&data, &run, "ials", sets("ials"));
    let model = run.join("model.safetensors");
    let mut bytes = std::fs::read(&model).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x55;
    std::fs::write(&model, bytes).unwrap();
    let err = fails(&["recommend", "--run", r, "--user", "2"]);
    assert!(err.contains("model.safetensors"), "{err}");
}

/// `--device cuda` fits ease and ials on the device where one answers (the run then serves
/// `recommend` like a CPU run); without one it is a clear error naming CUDA and writes nothing.
/// `--device auto` trains either way.
#[test]
fn ease_and_ials_train_on_cuda_or_fail_clearly_and_auto_always_trains() {
    let (tmp, data) = temp_data();
    let d = data.to_str().unwrap();
    let gpu = reelvec_engine::gpu::available();
    for model in ["ease", "ials"] {
        for device in ["cuda", "auto"] {
            let run = tmp.path().join(format!("{model}-{device}"));
            let r = run.to_str().unwrap();
            let mut args = vec!["train", "--model", model, "--data", d, "--out", r, "--device", device];
            args.extend(["--quiet", "--no-cache"]);
            for s in sets(model) {
                args.extend(["--set", s]);
            }
            if gpu || device == "auto" {
                ok(&args);
                let listed = listed(&ok(&["recommend", "--run", r, "--user", "2", "-k", "3"]));
                assert_eq!(listed.len(), 3, "{model} on {device}");
            } else {
                let err = fails(&args);
                assert!(err.contains("CUDA") || err.contains("cuda"), "{model}: {err}");
                assert!(!run.exists(), "a failed {model} train on cuda wrote {r}");
            }
        }
    }
}

/// `train --holdout` holds the split's test rows out and `evaluate` ranks them with the ranking
/// protocol; a run trained on every rating has nothing to rank and says how to train one.
#[test]
fn evaluate_ranks_a_ranker_run_on_its_held_out_rows() {
    let tmp = tempfile::tempdir().unwrap();
    write_data(tmp.path());
    let run = tmp.path().join("held");
    let (data, dir) = (tmp.path().to_str().unwrap(), run.to_str().unwrap());
    let args = ["train", "--model", "itemknn", "--data", data, "--out", dir, "--quiet", "--no-cache"];
    let stdout = ok(&[&args[..], &["--seed", "3", "--holdout", "leave-last-out"]].concat());
    assert!(stdout.contains("30 test rows of leave-last-out held out"), "{stdout}");
    let out: serde_json::Value = serde_json::from_str(&ok(&["evaluate", "--run", dir, "--json"])).unwrap();
    let f = &out["figures"];
    // Each user's held-out movie is the one unseen movie of its group: item-kNN ranks it first.
    for name in ["recall@10", "ndcg@10", "hr@10", "mrr", "coverage@10"] {
        assert_eq!(f[name], 1.0, "{name}: {out}");
    }
    assert_eq!(f["gini@10"], 0.0, "{out}");
    assert_eq!(f["genre_diversity@10"], 0.0, "{out}");
    assert!(f["novelty_bits@10"].as_f64().unwrap() > 0.0, "{out}");

    let all = tmp.path().join("all");
    train(tmp.path(), &all, "popularity", &[]);
    let err = fails(&["evaluate", "--run", all.to_str().unwrap()]);
    assert!(err.contains("nothing is held out") && err.contains("--holdout"), "{err}");
    let err = fails(&["train", "--model", "mf", "--data", data, "--out", dir, "--holdout", "leave-last-out"]);
    assert!(err.contains("--holdout is for the ranking models"), "{err}");
}
