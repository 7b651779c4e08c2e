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
