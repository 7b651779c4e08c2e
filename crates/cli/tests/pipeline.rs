//! `reelvec pipeline` end to end on the `tiny` synthetic preset with a small epochs scale: every
//! pipeline's run directory, `report.html` with every section and its inline SVG plots, and
//! `report.md` with the ours-vs-notebook tables.

#![allow(clippy::unwrap_used)]

use std::process::Command;

#[test]
fn pipeline_writes_runs_and_report() {
    let out = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_reelvec");
    let output = Command::new(bin)
        .args(["pipeline", "--synth", "tiny", "--epochs-scale", "0.1", "--quiet", "--out"])
        .arg(out.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stderr.contains("no --data given: using the embedded synthetic data set (preset tiny"));
    for p in ["p0", "p1", "p2", "p3", "p4"] {
        let dir = out.path().join("runs").join(p);
        assert!(dir.join("model.safetensors").is_file(), "{p}: no model");
        assert!(dir.join("run.json").is_file(), "{p}: no run.json");
    }
    let html = std::fs::read_to_string(out.path().join("report.html")).unwrap();
    let md = std::fs::read_to_string(out.path().join("report.md")).unwrap();
    let titles = [
        "P0 — item2vec CBOW over viewing sequences",
        "P1 — co-occurrence factorisation",
        "P2 — biased matrix factorisation",
        "P3 — dot-product recommender, diversity and novelty",
        "P4 — residual factorisation",
    ];
    for t in titles {
        assert!(html.contains(t), "html lacks section {t}");
        assert!(md.contains(&format!("## {t}")), "markdown lacks section {t}");
    }
    // Loss curves for all five, P0's heatmap, P2's and P3's PCA and t-SNE maps: 10 inline plots.
    assert_eq!(html.matches("<svg").count(), 10, "inline SVG plots");
    for map in ["P2 — PCA of", "P2 — t-SNE of", "P3 — PCA of", "P3 — t-SNE of"] {
        assert!(html.contains(map), "html lacks the map {map}");
    }
    // Self-contained: nothing loaded from elsewhere.
    assert!(!html.contains("<script src") && !html.contains("<link") && !html.contains("<img"));
    // The notebook column of the comparison tables.
    // Each notebook figure names its data set; synthetic data is never like for like.
    assert!(md.contains("| best validation MSE |") && md.contains("| 0.846 (on ml-100k; other data) |"));
    assert!(
        md.contains("| epoch-0 last-batch loss |")
            && md.contains("| 4.24 (on ml-latest-small; other data) |")
    );
    assert!(md.contains("not a like-for-like comparison"));
    // The default query is missing from synthetic data: the report says what it shows instead.
    assert!(md.contains("Star Wars (1977) is not in this data set; showing"), "no fallback note");
    // New users against the saved runs: fold-in from ratings, mean of watched vectors.
    let run_json = |p: &str| -> serde_json::Value {
        serde_json::from_str(
            &std::fs::read_to_string(out.path().join("runs").join(p).join("run.json")).unwrap(),
        )
        .unwrap()
    };
    let titles = |p: &str| -> Vec<String> {
        run_json(p)["movie_titles"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap().to_owned())
            .collect()
    };
    for p in ["p2", "p3", "p4"] {
        let t = titles(p);
        let rec = Command::new(bin)
            .args(["recommend", "-k", "5", "--run"])
            .arg(out.path().join("runs").join(p))
            .args(["--rated", &format!("{}=5", t[0]), "--rated", &format!("{}=1", t[1])])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&rec.stdout);
        assert!(rec.status.success(), "{p}: {}", String::from_utf8_lossy(&rec.stderr));
        assert!(text.contains("folded in a new user from 2 ratings"), "{p}: {text}");
        let listed: Vec<&str> = text.lines().skip_while(|l| !l.starts_with("top 5")).skip(1).collect();
        assert_eq!(listed.len(), 5, "{p}: {text}");
        assert!(listed.iter().all(|l| !l.ends_with(&t[0]) && !l.ends_with(&t[1])), "rated movies excluded");
    }
    let t = titles("p0");
    let rec = Command::new(bin)
        .args(["recommend", "-k", "3", "--run"])
        .arg(out.path().join("runs/p0"))
        .args(["--watched", &t[0], "--watched", &t[1]])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&rec.stdout);
    assert!(rec.status.success(), "{}", String::from_utf8_lossy(&rec.stderr));
    assert!(text.contains("by cosine to the mean of"), "{text}");
    assert_eq!(text.lines().filter(|l| l.trim_start().starts_with(['1', '2', '3'])).count(), 3, "{text}");

    // `evaluate` rebuilds each run's split from run.json and reproduces the recorded figures.
    let evaluate = |p: &str| -> serde_json::Value {
        let ev = Command::new(bin)
            .args(["evaluate", "--json", "--run"])
            .arg(out.path().join("runs").join(p))
            .output()
            .unwrap();
        assert!(ev.status.success(), "{p}: {}", String::from_utf8_lossy(&ev.stderr));
        serde_json::from_slice(&ev.stdout).unwrap()
    };
    let close = |a: &serde_json::Value, b: &serde_json::Value, what: &str| {
        let (a, b) = (a.as_f64().unwrap(), b.as_f64().unwrap());
        assert!((a - b).abs() <= 1e-4 * b.abs().max(1.0), "{what}: evaluate {a} vs recorded {b}");
    };
    for p in ["p2", "p3"] {
        let ev = evaluate(p);
        close(&ev["figures"]["RMSE (stars)"], &run_json(p)["metrics"]["val_rmse"], p);
        let f = &ev["figures"];
        for key in ["top-10 diversity", "catalogue coverage", "Gini of recommendation counts"] {
            let x = f[key].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&x), "{p} {key} = {x}");
        }
        assert!(ev["seconds"]["top-10 for 60 users"].is_number());
        // The ranking protocol on the run's split (validation rows relevant), as for rankers.
        assert!(f["protocol users"].as_u64().unwrap() > 0, "{p}: {ev}");
        for key in ["recall@10", "ndcg@10", "hr@20", "mrr", "coverage@10", "gini@10"] {
            let x = f[key].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&x), "{p} {key} = {x}");
        }
        assert!(f["novelty_bits@10"].as_f64().unwrap() > 0.0, "{p}: {ev}");
    }
    // One self-information novelty: evaluate reproduces what the pipeline recorded for P3.
    let ev = evaluate("p3");
    let recorded = &run_json("p3")["metrics"]["top_n"];
    close(&ev["figures"]["novelty (self-information, bits)"], &recorded["self_information_novelty"], "p3");
    close(&ev["figures"]["novelty (mean rating, notebook)"], &recorded["mean_rating_novelty"], "p3");
    let ev = evaluate("p4");
    assert_eq!(ev["figures"]["evaluated on"], "training");
    assert!(ev["figures"].get("ndcg@10").is_none(), "no validation rows, no protocol figures: {ev}");
    close(&ev["figures"]["RMSE (stars)"], &run_json("p4")["metrics"]["train_rmse"], "p4");
    let ev = evaluate("p0");
    close(
        &ev["figures"]["validation cross-entropy"],
        &run_json("p0")["metrics"]["val_rank"]["cross_entropy"],
        "p0",
    );
    close(&ev["figures"]["uniform baseline ln V"], &serde_json::json!(50f64.ln()), "ln V");
    assert!(
        ev["figures"]["leave-last-out NDCG@10"].as_f64().unwrap()
            <= ev["figures"]["leave-last-out HR@10"].as_f64().unwrap()
    );
    let ev = evaluate("p1");
    // Like for like: masked over masked, unmasked over unmasked.
    let p1 = &run_json("p1")["metrics"];
    close(&ev["figures"]["masked cost / reference masked cost"], &p1["ratio_to_reference_masked"], "p1");
    close(&ev["figures"]["unmasked cost / reference unmasked cost"], &p1["ratio_unmasked"], "p1");
    assert_eq!(p1["ratio"], p1["ratio_to_reference_masked"]);

    // The printed summary table names every pipeline.
    for name in
        ["P0 item2vec CBOW", "P1 co-occurrence", "P2 biased MF", "P3 sigmoid recommender", "P4 residual MF"]
    {
        assert!(stdout.contains(name), "summary lacks {name}");
    }
}

#[test]
fn pipeline_only_runs_the_selected_ones() {
    let out = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_reelvec"))
        .args(["pipeline", "--synth", "tiny", "--epochs-scale", "0.1", "--quiet", "--only", "p4", "--out"])
        .arg(out.path())
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(out.path().join("runs/p4/run.json").is_file());
    assert!(!out.path().join("runs/p0").exists());
    let html = std::fs::read_to_string(out.path().join("report.html")).unwrap();
    assert!(html.contains("P4 — residual factorisation") && !html.contains("P2 — biased"));
}

#[test]
fn pipeline_rankers_add_the_ranking_section() {
    // `--rankers` with one pipeline: the report gains the ranking leaderboard (the protocol's
    // figures per ranker) and a sample user's top-10 with titles, as `compare --out`.
    let out = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_reelvec"))
        .args(["pipeline", "--synth", "tiny", "--epochs-scale", "0.1", "--quiet", "--only", "p4"])
        .args(["--rankers", "popularity,ials", "--out"])
        .arg(out.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("ranking models") && stdout.contains("ndcg@10"), "{stdout}");
    let md = std::fs::read_to_string(out.path().join("report.md")).unwrap();
    assert!(md.contains("## P4 — residual factorisation"), "{md}");
    assert!(md.contains("## Ranking models — leaderboard (test)"), "{md}");
    assert!(md.contains("| popularity |") && md.contains("| ials |"), "{md}");
    let examples = md.split("## Top-10 of user").nth(1).expect("the sample user's section");
    assert!(examples.contains("popularity:") && examples.contains(" 1. "), "{examples}");
    // `--only rank`: the ranking section alone; a rating model is refused before any work.
    let only = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_reelvec"))
        .args([
            "pipeline",
            "--synth",
            "tiny",
            "--quiet",
            "--only",
            "rank",
            "--rankers",
            "popularity",
            "--out",
        ])
        .arg(only.path())
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let md = std::fs::read_to_string(only.path().join("report.md")).unwrap();
    assert!(md.contains("## Ranking models") && !md.contains("P4 — residual"), "{md}");
    let bad = Command::new(env!("CARGO_BIN_EXE_reelvec"))
        .args(["pipeline", "--synth", "tiny", "--rankers", "mf", "--out"])
        .arg(only.path().join("bad"))
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("not a ranking model"));
    assert!(!only.path().join("bad").exists());
}
