//! The Python copy of the ranking protocol (`benches/peers/ranking.py`) against reelvec's
//! (`reelvec compare`) on the same split file: popularity's lists are fixed by the training
//! counts and the tie order, so every figure must agree to rounding. Runs where a Python with
//! numpy and scipy is found (`$REELVEC_PYTHON`, else the workspace's `target/peers-venv`, else
//! `python3`); otherwise a counted skip.

// Tests unwrap freely: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use reelvec_testkit::{skip, Need};
use serde_json::Value;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A Python that imports numpy and scipy.
fn python() -> Option<String> {
    let venv = workspace().join("target/peers-venv/bin/python");
    let candidates = std::env::var("REELVEC_PYTHON")
        .ok()
        .into_iter()
        .chain([venv.to_string_lossy().into_owned(), "python3".to_string()]);
    for py in candidates {
        let ok =
            Command::new(&py).args(["-c", "import numpy, scipy"]).output().is_ok_and(|o| o.status.success());
        if ok {
            return Some(py);
        }
    }
    None
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn python_protocol_matches_rust_on_popularity_lists() {
    let Some(py) = python() else {
        skip(Need::OptIn, "no Python with numpy and scipy (set REELVEC_PYTHON to the peers venv)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let exe = env!("CARGO_BIN_EXE_reelvec");
    run(Command::new(exe).args(["data", "synth", "--preset", "tiny", "--out"]).arg(&data));
    let split = dir.path().join("split.tsv");
    let rust_json = dir.path().join("rust.json");
    for how in ["temporal-holdout", "leave-last-out"] {
        run(Command::new(exe)
            .args(["compare", "--models", "popularity", "--split", how, "--data"])
            .arg(&data)
            .arg("--write-split")
            .arg(&split)
            .arg("--json")
            .arg(&rust_json));
        let py_json = dir.path().join("py.json");
        run(Command::new(&py)
            .arg(workspace().join("benches/peers/ranking.py"))
            .args(["--models", "popularity", "--split"])
            .arg(&split)
            .arg("--json")
            .arg(&py_json));
        let rust: Value = serde_json::from_slice(&std::fs::read(&rust_json).unwrap()).unwrap();
        let python: Value = serde_json::from_slice(&std::fs::read(&py_json).unwrap()).unwrap();
        let (r, p) = (&rust["models"]["popularity"]["test"], &python["models"]["popularity"]["test"]);
        for key in [
            "recall@10",
            "recall@20",
            "ndcg@10",
            "ndcg@20",
            "hr@10",
            "hr@20",
            "mrr",
            "coverage@10",
            "gini@10",
            "novelty_bits@10",
        ] {
            let (a, b) = (r[key].as_f64().unwrap(), p[key].as_f64().unwrap());
            assert!((a - b).abs() < 1e-9, "{how} {key}: reelvec {a}, python {b}");
        }
    }
}
