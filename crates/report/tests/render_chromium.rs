//! Opens the demo report in headless Chromium and checks that it renders: the DOM holds every
//! plot (as many `<svg>` elements as `<body data-plots="N">` announces), every section and
//! caption, and the browser logged no console message at all (the page has no scripts, so any
//! message is an error or a blocked fetch). Skips, saying so, when `chromium` is not on PATH
//! (`cargo xtask setup --browser` installs it).

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use reelvec_report::demo::sample_report;

const SKIP: &str = "skipped: chromium not installed (cargo xtask setup --browser)";

/// `chromium` from PATH, if there.
fn chromium() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join("chromium")).find(|candidate| candidate.is_file())
}

/// Runs headless Chromium on `url` with `extra` arguments; returns (stdout, stderr).
fn run_chromium(chromium: &Path, profile: &Path, extra: &[&str], url: &str) -> (String, String) {
    let mut child = Command::new(chromium)
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
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Read both pipes on threads so a chatty browser cannot block on a full pipe.
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut s).unwrap();
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut stderr, &mut s).unwrap();
        s
    });
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let (out, err) = (out.join().unwrap(), err.join().unwrap());
            assert!(status.success(), "chromium exited with {status}\n{err}");
            return (out, err);
        }
        if started.elapsed() > Duration::from_secs(120) {
            child.kill().unwrap();
            panic!("chromium did not finish within 120 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The log lines that report console messages or blocked loads.
fn console_problems(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|line| {
            line.contains(":CONSOLE")
                || line.contains("Uncaught")
                || line.contains("Content Security Policy")
                || line.contains("Failed to load resource")
        })
        .collect()
}

/// Text as Chromium serialises it inside an element.
fn dom_text(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('\u{a0}', "&nbsp;")
}

fn file_url(path: &Path) -> String {
    format!("file://{}", path.canonicalize().unwrap().display())
}

#[test]
fn report_renders_in_chromium_with_every_plot_and_no_console_errors() {
    let Some(chromium) = chromium() else {
        println!("{SKIP}");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let report = sample_report().unwrap();
    let written = report.write_to_dir(&dir.path().join("out")).unwrap();
    let (dom, log) =
        run_chromium(&chromium, &dir.path().join("profile"), &["--dump-dom"], &file_url(&written.html));

    let problems = console_problems(&log);
    assert!(problems.is_empty(), "console messages:\n{}", problems.join("\n"));

    let plots = report.plot_count();
    assert_eq!(plots, 4);
    assert!(dom.contains(&format!("data-plots=\"{plots}\"")), "no data-plots=\"{plots}\" in the DOM");
    assert_eq!(dom.matches("<svg").count(), plots, "svg elements in the DOM");
    assert_eq!(dom.matches("<figure class=\"plot\">").count(), plots);
    assert!(!dom.contains("class=\"bad-plot\""));
    for section in &report.sections {
        assert!(dom.contains(&dom_text(&section.title)), "section {:?} missing", section.title);
        for (caption, _) in &section.plots {
            assert!(dom.contains(&format!("<figcaption>{}</figcaption>", dom_text(caption))), "{caption:?}");
        }
    }
    for plot_title in [
        "P0 — cross-entropy per epoch",
        "P0 — cosine similarity of the 30 most watched",
        "P2 — PCA of movie factors",
        "P2 — best and worst by bias",
    ] {
        assert!(dom.contains(plot_title), "plot titled {plot_title:?} missing");
    }
    // A title full of markup arrives as text, not as elements.
    assert!(dom.contains("&lt;Untitled&gt; \"Quoted\" &amp; Co"));
    assert!(!dom.contains("<Untitled>"));
}

/// The console check above must be able to fail: a page with a script error trips it.
#[test]
fn console_check_catches_a_script_error() {
    let Some(chromium) = chromium() else {
        println!("{SKIP}");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("broken.html");
    std::fs::write(&page, "<!DOCTYPE html><html><body><p>x</p><script>notDefined();</script></body></html>")
        .unwrap();
    let (_, log) = run_chromium(&chromium, &dir.path().join("profile"), &["--dump-dom"], &file_url(&page));
    let problems = console_problems(&log);
    assert!(problems.iter().any(|l| l.contains("Uncaught ReferenceError")), "not caught:\n{log}");
}
