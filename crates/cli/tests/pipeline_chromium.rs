//! Opens the report that `reelvec pipeline` writes (tiny synthetic preset) in headless Chromium:
//! the DOM must hold every plot the page announces (`<body data-plots="N">`, 8 for the five
//! pipelines) and the browser must log no console message. Skips, saying so, when `chromium` is
//! not on PATH (`cargo xtask setup --browser` installs it).

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::{Command, Stdio};

fn chromium() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join("chromium")).find(|candidate| candidate.is_file())
}

#[test]
fn pipeline_report_renders_in_chromium_with_every_plot() {
    let Some(chromium) = chromium() else {
        println!("skipped: chromium not installed (cargo xtask setup --browser)");
        return;
    };
    let out = tempfile::tempdir().unwrap();
    let status = Command::new(env!("CARGO_BIN_EXE_reelvec"))
        .args(["pipeline", "--synth", "tiny", "--epochs-scale", "0.1", "--quiet", "--out"])
        .arg(out.path().join("run"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let page = out.path().join("run").join("report.html").canonicalize().unwrap();
    let output = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            "--v=0",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", out.path().join("profile").display()))
        .arg(format!("file://{}", page.display()))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let dom = String::from_utf8_lossy(&output.stdout);
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "chromium failed:\n{log}");
    let problems: Vec<&str> = log
        .lines()
        .filter(|l| {
            l.contains(":CONSOLE")
                || l.contains("Uncaught")
                || l.contains("Content Security Policy")
                || l.contains("Failed to load resource")
        })
        .collect();
    assert!(problems.is_empty(), "console messages:\n{}", problems.join("\n"));
    assert!(dom.contains("data-plots=\"8\""), "the page does not announce 8 plots");
    assert_eq!(dom.matches("<svg").count(), 8, "svg elements in the rendered DOM");
    for section in ["P0 —", "P1 —", "P2 —", "P3 —", "P4 —"] {
        assert!(dom.contains(section), "section {section} missing from the rendered page");
    }
}
