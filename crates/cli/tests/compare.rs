//! End-to-end tests of `reelvec compare` on the synthetic generator's tiny data set: the JSON
//! schema, the split file against the split rule recomputed here, popularity's figures recomputed
//! here from the split file, determinism across thread counts, and outputs checked before work.

// Tests unwrap freely: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

fn reelvec(args: &[&str], threads: Option<usize>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_reelvec"));
    cmd.args(args);
    if let Some(n) = threads {
        cmd.env("RAYON_NUM_THREADS", n.to_string());
    }
    cmd.output().unwrap()
}

fn ok(args: &[&str], threads: Option<usize>) -> String {
    let out = reelvec(args, threads);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "reelvec {args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn fails(args: &[&str]) -> String {
    let out = reelvec(args, None);
    assert!(!out.status.success(), "reelvec {args:?} succeeded");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn synth(dir: &Path) -> String {
    let data = dir.join("data");
    ok(&["data", "synth", "--preset", "tiny", "--out", data.to_str().unwrap()], None);
    data.to_str().unwrap().to_string()
}

/// (user, movie, timestamp) of every rating, in file order.
fn ratings(data: &str) -> Vec<(u64, u64, i64)> {
    let text = std::fs::read_to_string(Path::new(data).join("ratings.csv")).unwrap();
    text.lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f[0].parse().unwrap(), f[1].parse().unwrap(), f[3].parse().unwrap())
        })
        .collect()
}

const METRICS: [&str; 11] = [
    "coverage@10",
    "genre_diversity@10",
    "gini@10",
    "hr@10",
    "hr@20",
    "mrr",
    "ndcg@10",
    "ndcg@20",
    "novelty_bits@10",
    "recall@10",
    "recall@20",
];

#[test]
fn compare_writes_the_issue_schema_a_split_file_and_popularity_figures_recomputed_by_hand() {
    let dir = tempfile::tempdir().unwrap();
    let data = synth(dir.path());
    let json = dir.path().join("out.json");
    let split = dir.path().join("split.tsv");
    let report = dir.path().join("report");
    let stdout = ok(
        &[
            "compare",
            "--data",
            &data,
            "--models",
            "popularity,mf,cbow",
            "--tune",
            "--epochs-scale",
            "0.1",
            "--json",
            json.to_str().unwrap(),
            "--write-split",
            split.to_str().unwrap(),
            "--out",
            report.to_str().unwrap(),
        ],
        None,
    );
    assert!(stdout.contains("ndcg@10") && stdout.contains("popularity"), "{stdout}");
    let v: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(v["split"], "temporal-holdout");
    let models = v["models"].as_object().unwrap();
    assert_eq!(models.keys().cloned().collect::<Vec<_>>(), vec!["cbow", "mf", "popularity"]);
    for (name, m) in models {
        for part in ["val", "test"] {
            let keys: Vec<&str> = m[part].as_object().unwrap().keys().map(String::as_str).collect();
            assert_eq!(keys, METRICS, "{name} {part}");
        }
        assert!(m["fit_seconds"].as_f64().unwrap() >= 0.0 && m["score_seconds"].as_f64().unwrap() >= 0.0);
        assert!(m["params"].is_object());
        assert!(m["test"]["ndcg@10"].as_f64().unwrap() > 0.0, "{name}");
    }
    // --tune picked one of mf's grid points.
    let k = models["mf"]["params"]["k"].as_u64().unwrap();
    assert!(k == 16 || k == 50, "{k}");

    // The split file: one line per rating in file order; the test and validation rows follow
    // the rule (per user by (time, file order): test the last max(1, round(0.2 n)), validation
    // the max(1, round(0.1 n)) before; fewer than 3 ratings train only).
    let rows = ratings(&data);
    let text = std::fs::read_to_string(&split).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("user\tmovie\trating\ttimestamp\tpart"));
    let parts: Vec<String> = lines
        .zip(&rows)
        .map(|(l, &(u, m, t))| {
            let f: Vec<&str> = l.split('\t').collect();
            assert_eq!((f[0].parse::<u64>().unwrap(), f[1].parse::<u64>().unwrap()), (u, m));
            assert_eq!(f[3].parse::<i64>().unwrap(), t);
            f[4].to_string()
        })
        .collect();
    assert_eq!(parts.len(), rows.len());
    let mut by_user: HashMap<u64, Vec<usize>> = HashMap::new();
    for (i, r) in rows.iter().enumerate() {
        by_user.entry(r.0).or_default().push(i);
    }
    let mut expected = vec!["train"; rows.len()];
    for idx in by_user.values_mut() {
        idx.sort_by_key(|&i| (rows[i].2, i));
        let n = idx.len();
        if n < 3 {
            continue;
        }
        let test = ((2 * n + 5) / 10).max(1);
        let val = ((n + 5) / 10).max(1);
        for &i in &idx[n - test..] {
            expected[i] = "test";
        }
        for &i in &idx[n - test - val..n - test] {
            expected[i] = "val";
        }
    }
    assert_eq!(parts, expected);

    // Popularity recomputed here: every user ranks movies by training count, ties by order of
    // first appearance in the ratings file; candidates exclude train and validation movies.
    let mut dense: HashMap<u64, usize> = HashMap::new();
    for r in &rows {
        let next = dense.len();
        dense.entry(r.1).or_insert(next);
    }
    let mut counts = vec![0usize; dense.len()];
    for (r, p) in rows.iter().zip(&parts) {
        if p == "train" {
            counts[dense[&r.1]] += 1;
        }
    }
    let mut order: Vec<usize> = (0..dense.len()).collect();
    order.sort_by_key(|&j| (std::cmp::Reverse(counts[j]), j));
    let (mut recall, mut hr, mut users) = (0f64, 0f64, 0usize);
    for idx in by_user.values() {
        let seen: HashSet<usize> =
            idx.iter().filter(|&&i| parts[i] != "test").map(|&i| dense[&rows[i].1]).collect();
        let relevant: HashSet<usize> =
            idx.iter().filter(|&&i| parts[i] == "test").map(|&i| dense[&rows[i].1]).collect();
        if relevant.is_empty() {
            continue;
        }
        let top: Vec<usize> = order.iter().copied().filter(|j| !seen.contains(j)).take(10).collect();
        let hits = top.iter().filter(|j| relevant.contains(j)).count();
        recall += hits as f64 / relevant.len().min(10) as f64;
        hr += f64::from(u8::from(hits > 0));
        users += 1;
    }
    let pop = &models["popularity"]["test"];
    assert!((pop["recall@10"].as_f64().unwrap() - recall / users as f64).abs() < 1e-12);
    assert!((pop["hr@10"].as_f64().unwrap() - hr / users as f64).abs() < 1e-12);

    let html = std::fs::read_to_string(report.join("report.html")).unwrap();
    assert!(html.contains("data-plots=\"2\""), "two scatters");
    assert!(html.contains("Top-10 of user"));
    assert!(report.join("report.md").is_file());
}

#[test]
fn figures_are_identical_for_any_thread_count_and_split() {
    let dir = tempfile::tempdir().unwrap();
    let data = synth(dir.path());
    let run = |threads: usize, split: &str| {
        let json = dir.path().join(format!("r{threads}{}.json", split.len()));
        ok(
            &[
                "compare",
                "--data",
                &data,
                "--models",
                "popularity,sigmoid-mf",
                "--epochs-scale",
                "0.2",
                "--split",
                split,
                "--json",
                json.to_str().unwrap(),
            ],
            Some(threads),
        );
        let v: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
        (
            v["split"].clone(),
            v["models"]["popularity"]["test"].clone(),
            v["models"]["sigmoid-mf"]["test"].clone(),
        )
    };
    for split in ["leave-last-out", "random-holdout:0.3"] {
        let one = run(1, split);
        assert_eq!(one.0, split);
        assert_eq!(one, run(3, split), "{split}");
    }
}

#[test]
fn bad_arguments_and_outputs_are_refused_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-data");
    let missing = missing.to_str().unwrap();
    // An output that is a directory is refused before the (missing) data set is read.
    let err = fails(&["compare", "--data", missing, "--json", dir.path().to_str().unwrap()]);
    assert!(err.contains("output") && !err.contains("cannot load"), "{err}");
    let err = fails(&["compare", "--data", missing, "--models", "popularity,nope"]);
    assert!(err.contains("unknown model \"nope\""), "{err}");
    let err = fails(&["compare", "--data", missing, "--models", "ease,ease"]);
    assert!(err.contains("twice"), "{err}");
    let err = fails(&["compare", "--data", missing, "--split", "random-holdout:2"]);
    assert!(err.contains("random-holdout"), "{err}");
    let err = fails(&["compare", "--data", missing, "--models", "cooc"]);
    assert!(err.contains("cooc"), "{err}");
    // Valid arguments then reach the data, whose absence is the error.
    let err = fails(&["compare", "--data", missing, "--models", "popularity"]);
    assert!(err.contains("cannot load"), "{err}");
}

/// `--device auto` trains every model where it can and says where in each row: models without a
/// CUDA path (popularity, itemknn) train on the CPU and their row says `cpu`; without a GPU every
/// row says `cpu`. An explicit `--device cuda` without a GPU fails the whole command before the
/// data is read; with one it gets past the device to the (missing) data.
#[test]
fn models_without_a_cuda_twin_train_on_the_cpu_and_each_row_says_where() {
    let dir = tempfile::tempdir().unwrap();
    let data = synth(dir.path());
    let json = dir.path().join("out.json");
    let out = reelvec(
        &["compare", "--data", &data, "--models", "popularity,itemknn,ials", "--device", "auto", "--json"]
            .into_iter()
            .chain([json.to_str().unwrap()])
            .collect::<Vec<_>>(),
        None,
    );
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let gpu = !stderr.contains("device: cpu");
    let v: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let device = |m: &str| v["models"][m]["device"].as_str().unwrap().to_string();
    assert_eq!((device("popularity"), device("itemknn")), ("cpu".into(), "cpu".into()), "{stderr}");
    assert_eq!(device("ials"), if gpu { "cuda:0" } else { "cpu" }, "{stderr}");
    // The table has the device column, one value per row.
    let header = stdout.lines().find(|l| l.starts_with("model")).unwrap();
    assert!(header.split_whitespace().nth(1) == Some("device"), "{stdout}");
    let popularity = stdout.lines().find(|l| l.starts_with("popularity")).unwrap();
    assert_eq!(popularity.split_whitespace().nth(1), Some("cpu"), "{stdout}");

    let missing = dir.path().join("no-such-data");
    let err = fails(&[
        "compare",
        "--data",
        missing.to_str().unwrap(),
        "--models",
        "popularity",
        "--device",
        "cuda",
    ]);
    if gpu {
        assert!(err.contains("cannot load"), "{err}");
    } else {
        assert!(err.contains("--device cuda") && !err.contains("cannot load"), "{err}");
    }
}
