//! `reelvec train --model cbow|skipgram --sequences FILE`: any sequence corpus trains item2vec and
//! the run's titles are the tokens (queries by token work); a corpus with invalid UTF-8 is an
//! error naming file and line and writes no run; `--sequences` with another model is refused.

#![allow(clippy::unwrap_used)]

use std::process::{Command, Output};

fn reelvec(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_reelvec")).args(args).output().unwrap()
}

fn text(o: &Output) -> String {
    format!("{}\n{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

#[test]
fn a_text_corpus_trains_and_bad_bytes_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let corpus = dir.path().join("text.txt");
    let mut lines = String::new();
    for i in 0..200 {
        let words = if i % 2 == 0 { ["sun", "moon", "star", "sky"] } else { ["cat", "dog", "cow", "pig"] };
        let line: Vec<&str> = (0..6).map(|j| words[(i * 7 + j * 3) % 4]).collect();
        lines.push_str(&line.join(" "));
        lines.push('\n');
    }
    lines.push_str("rare\n");
    std::fs::write(&corpus, lines).unwrap();
    let run = dir.path().join("run");
    for model in ["cbow", "skipgram"] {
        let t = reelvec(&[
            "train",
            "--model",
            model,
            "--sequences",
            corpus.to_str().unwrap(),
            "--min-count",
            "2",
            "--out",
            run.to_str().unwrap(),
            "--device",
            "cpu",
            "--quiet",
            "--set",
            "train.epochs=2",
        ]);
        assert!(t.status.success(), "{}", text(&t));
        let info = std::fs::read_to_string(run.join("run.json")).unwrap();
        assert!(info.contains("\"moon\"") && !info.contains("\"rare\""), "{info}");
        let s = reelvec(&["similar", "--run", run.to_str().unwrap(), "moon", "-k", "3"]);
        assert!(s.status.success(), "{}", text(&s));
    }

    let bad = dir.path().join("bad.txt");
    std::fs::write(&bad, b"fine words\nbroken \xff byte\n").unwrap();
    let bad_run = dir.path().join("bad_run");
    let b = reelvec(&[
        "train",
        "--model",
        "cbow",
        "--sequences",
        bad.to_str().unwrap(),
        "--out",
        bad_run.to_str().unwrap(),
        "--device",
        "cpu",
    ]);
    assert!(!b.status.success());
    assert!(text(&b).contains("bad.txt:2: invalid UTF-8"), "{}", text(&b));
    assert!(!bad_run.exists(), "a failed corpus read left a run directory");

    let mf = reelvec(&[
        "train",
        "--model",
        "mf",
        "--sequences",
        corpus.to_str().unwrap(),
        "--out",
        bad_run.to_str().unwrap(),
    ]);
    assert!(!mf.status.success() && text(&mf).contains("cbow or skipgram"), "{}", text(&mf));
}

#[test]
fn a_sequences_run_is_keyed_by_token_in_queries_and_exports() {
    let dir = tempfile::tempdir().unwrap();
    let corpus = dir.path().join("digits.txt");
    // "sun" is the most frequent token (row 0, whose raw id is 1); the token "1" is another row,
    // so `similar 1` must mean the token, never raw id 1.
    let mut lines = String::new();
    for i in 0..120 {
        let line = if i % 2 == 0 { "sun 1 2 sun 3 sun" } else { "sun cat dog 1 cow sun" };
        lines.push_str(line);
        lines.push('\n');
    }
    std::fs::write(&corpus, lines).unwrap();
    let run = dir.path().join("run");
    let t = reelvec(&[
        "train",
        "--model",
        "skipgram",
        "--sequences",
        corpus.to_str().unwrap(),
        "--out",
        run.to_str().unwrap(),
        "--device",
        "cpu",
        "--quiet",
        "--set",
        "train.epochs=2",
        "--set",
        "model.dim=4",
    ]);
    assert!(t.status.success(), "{}", text(&t));
    let run_s = run.to_str().unwrap();

    let w2v = dir.path().join("vectors.txt");
    let e = reelvec(&["export", "--run", run_s, "--format", "word2vec", "--out", w2v.to_str().unwrap()]);
    assert!(e.status.success(), "{}", text(&e));
    let body = std::fs::read_to_string(&w2v).unwrap();
    let lines: Vec<&str> = body.lines().collect();
    // gensim's text format: "count dim", then "token v1 .. vk" in vocabulary order.
    assert_eq!(lines[0], "7 4");
    let keys: Vec<&str> = lines[1..].iter().map(|l| l.split(' ').next().unwrap()).collect();
    assert_eq!(keys, ["sun", "1", "2", "3", "cat", "dog", "cow"]);
    assert!(lines[1..].iter().all(|l| l.split(' ').skip(1).all(|x| x.parse::<f32>().is_ok())));
    assert!(lines[1..].iter().all(|l| l.split(' ').count() == 5));
    assert!(!dir.path().join("vectors.txt.titles.tsv").exists());

    let s = reelvec(&["similar", "--run", run_s, "1", "-k", "6"]);
    assert!(s.status.success(), "{}", text(&s));
    let out = String::from_utf8_lossy(&s.stdout).to_string();
    // The neighbours of the token "1" list "sun" (row 0) and never "1" itself.
    assert!(out.contains("sun"), "{out}");
    assert!(!out.lines().skip(1).any(|l| l.split_whitespace().last() == Some("1")), "{out}");
    let miss = reelvec(&["similar", "--run", run_s, "su"]);
    assert!(!miss.status.success() && text(&miss).contains("no token `su`"), "{}", text(&miss));

    let m = reelvec(&["middle", "--run", run_s, "sun", "2"]);
    assert!(m.status.success(), "{}", text(&m));
    let n = reelvec(&["next", "--run", run_s, "--watched", "sun", "1", "-k", "3"]);
    assert!(n.status.success(), "{}", text(&n));
}

#[test]
fn pipeline_p0_trains_on_a_sequence_corpus() {
    let dir = tempfile::tempdir().unwrap();
    let corpus = dir.path().join("walks.txt");
    let mut lines = String::new();
    for i in 0..150 {
        let words: Vec<String> = (0..8).map(|j| format!("w{}", (i + j * 3) % 12)).collect();
        lines.push_str(&words.join(" "));
        lines.push('\n');
    }
    std::fs::write(&corpus, lines).unwrap();
    let out = dir.path().join("out");
    let (c, o) = (corpus.to_str().unwrap(), out.to_str().unwrap());
    let refused = reelvec(&["pipeline", "--sequences", c, "--out", o, "--device", "cpu", "--quiet"]);
    assert!(!refused.status.success() && text(&refused).contains("--only p0"), "{}", text(&refused));
    assert!(!out.exists(), "a refused pipeline wrote its output folder");
    let p = reelvec(&[
        "pipeline",
        "--only",
        "p0",
        "--sequences",
        c,
        "--out",
        o,
        "--device",
        "cpu",
        "--quiet",
        "--epochs-scale",
        "0.1",
    ]);
    assert!(p.status.success(), "{}", text(&p));
    assert!(text(&p).contains("150 sequences, 12 tokens"), "{}", text(&p));
    let info: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("runs/p0/run.json")).unwrap()).unwrap();
    assert_eq!(info["tokens"], true);
    assert!(info["movie_titles"].as_array().unwrap().iter().any(|t| t == "w7"));
    assert!(out.join("report.html").is_file());
    let s = reelvec(&["similar", "--run", out.join("runs/p0").to_str().unwrap(), "w7", "-k", "2"]);
    assert!(s.status.success(), "{}", text(&s));

    // The pipeline takes train's corpus flags: --max-vocab keeps the 5 most frequent tokens.
    let capped = dir.path().join("capped");
    let cap = capped.to_str().unwrap();
    let args = ["pipeline", "--only", "p0", "--sequences", c, "--max-vocab", "5", "--out", cap];
    let p = reelvec(&[&args[..], &["--device", "cpu", "--quiet", "--epochs-scale", "0.1"]].concat());
    assert!(p.status.success(), "{}", text(&p));
    assert!(text(&p).contains("150 sequences, 5 tokens"), "{}", text(&p));
}
