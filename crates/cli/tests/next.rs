//! `reelvec next` end to end on a synthetic data set: `--evaluate` prints the leave-last-out table
//! (the baselines and the causal CBOW) and saves the CBOW; `--run --watched` ranks unwatched next
//! titles with probabilities; `--continue N --beam B` predicts N distinct unwatched titles; a
//! title given twice and `--beam` without `--continue` are errors.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Output};

fn reelvec(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_reelvec")).args(args).output().unwrap()
}

fn text(o: &Output) -> String {
    format!("{}\n{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// The movie titles of the lines after the header: `rank  prob  id  title`.
fn listed(stdout: &str) -> Vec<(f64, String)> {
    stdout
        .lines()
        .skip(1)
        .filter_map(|l| {
            let mut parts = l.split_whitespace();
            let rank = parts.next()?;
            rank.parse::<usize>().ok()?;
            let p: f64 = parts.next()?.parse().ok()?;
            parts.next()?;
            Some((p, parts.collect::<Vec<_>>().join(" ")))
        })
        .collect()
}

#[test]
fn evaluate_rank_and_continue() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let s = reelvec(&[
        "data",
        "synth",
        "--preset",
        "tiny",
        "--layout",
        "ml-100k",
        "--out",
        data.to_str().unwrap(),
    ]);
    assert!(s.status.success(), "{}", text(&s));
    let run = dir.path().join("run");
    let json = dir.path().join("next.json");
    let (data, run) = (data.to_str().unwrap(), run.to_str().unwrap());
    let e = reelvec(&[
        "next",
        "--evaluate",
        "--data",
        data,
        "--no-cache",
        "--device",
        "cpu",
        "--quiet",
        "--set",
        "train.epochs=2",
        "--out",
        run,
        "-k",
        "5",
        "--json",
        json.to_str().unwrap(),
    ]);
    let out = text(&e);
    assert!(e.status.success(), "{out}");
    // The table as JSON: one row per model with HR@k, NDCG@k, MRR at k = 5.
    let table: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(table["k"], 5);
    let rows = table["models"].as_array().unwrap();
    assert_eq!(rows.len(), 4);
    assert!(rows.iter().any(|r| r["name"].as_str().unwrap().starts_with("Markov chain")));
    for r in rows {
        for key in ["hr", "ndcg", "mrr", "accuracy_at_1"] {
            let x = r[key].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&x), "{key} {x}");
        }
        // Each JSON row is the printed row.
        let name = r["name"].as_str().unwrap();
        let printed = out.lines().rfind(|l| l.starts_with(name)).unwrap();
        assert!(printed.contains(&format!("{:.4}", r["hr"].as_f64().unwrap())), "{printed}");
    }
    assert!(table["users"].as_u64().unwrap() > 0);
    for row in ["popularity", "Markov chain", "co-occurrence", "causal CBOW"] {
        assert!(out.lines().any(|l| l.starts_with(row)), "no {row} row:\n{out}");
    }
    assert!(out.contains("HR@5") && out.contains("NDCG@5"), "{out}");
    assert!(Path::new(run).join("run.json").is_file());

    // Two watched titles, taken from the run's own ranking of popularity: rank the next ones.
    let info: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(Path::new(run).join("run.json")).unwrap()).unwrap();
    let titles: Vec<String> =
        info["movie_titles"].as_array().unwrap().iter().map(|t| t.as_str().unwrap().to_string()).collect();
    let (a, b) = (titles[0].clone(), titles[1].clone());
    let r = reelvec(&["next", "--run", run, "--watched", &a, &b, "-k", "3"]);
    let stdout = String::from_utf8_lossy(&r.stdout).to_string();
    assert!(r.status.success(), "{}", text(&r));
    assert!(stdout.lines().next().unwrap().contains("causal CBOW"), "{stdout}");
    let ranked = listed(&stdout);
    assert_eq!(ranked.len(), 3, "{stdout}");
    assert!(ranked.iter().all(|(p, t)| *p > 0.0 && *p <= 1.0 && *t != a && *t != b), "{stdout}");
    assert!(ranked.windows(2).all(|w| w[0].0 >= w[1].0), "{stdout}");

    let c = reelvec(&["next", "--run", run, "--watched", &a, "--continue", "4", "--beam", "3"]);
    let stdout = String::from_utf8_lossy(&c.stdout).to_string();
    assert!(c.status.success(), "{}", text(&c));
    assert!(stdout.contains("beam search, width 3"), "{stdout}");
    let mut predicted: Vec<String> = listed(&stdout).into_iter().map(|x| x.1).collect();
    assert_eq!(predicted.len(), 4, "{stdout}");
    predicted.push(a.clone());
    predicted.sort();
    predicted.dedup();
    assert_eq!(predicted.len(), 5, "a title repeats:\n{stdout}");

    let twice = reelvec(&["next", "--run", run, "--watched", &a, &a]);
    assert!(!twice.status.success());
    assert!(text(&twice).contains("given twice"), "{}", text(&twice));
    let beam_alone = reelvec(&["next", "--run", run, "--watched", &a, "--beam", "2"]);
    assert!(!beam_alone.status.success());
}
