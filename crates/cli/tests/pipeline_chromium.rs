//! Opens the report that `reelvec pipeline` writes (tiny synthetic preset) in headless Chromium
//! (through `reelvec_report::browser`): the DOM must hold every plot the page announces
//! (`<body data-plots="N">`, 10 for the five pipelines) and the browser must log no console
//! message. Skips, saying so, when `chromium` is not on PATH (`cargo xtask setup --browser`
//! installs it).

#![allow(clippy::unwrap_used)]

use std::process::{Command, Stdio};

use reelvec_report::browser::{dump_dom, file_url, find_chromium, DEFAULT_TIMEOUT, SKIP_MESSAGE};

/// Loss curves for all five pipelines, P0's heatmap, P2's and P3's PCA and t-SNE maps.
const PLOTS: usize = 10;

#[test]
fn pipeline_report_renders_in_chromium_with_every_plot() {
    let Some(chromium) = find_chromium() else {
        return reelvec_testkit::skip(reelvec_testkit::Need::Browser, SKIP_MESSAGE);
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
    let url = file_url(&out.path().join("run").join("report.html")).unwrap();
    let page = dump_dom(&chromium, &out.path().join("profile"), &url, DEFAULT_TIMEOUT).unwrap();
    let problems = page.console_problems();
    assert!(problems.is_empty(), "console messages:\n{}", problems.join("\n"));
    assert!(
        page.dom.contains(&format!("data-plots=\"{PLOTS}\"")),
        "the page does not announce {PLOTS} plots"
    );
    assert_eq!(page.dom.matches("<svg").count(), PLOTS, "svg elements in the rendered DOM");
    for section in ["P0 —", "P1 —", "P2 —", "P3 —", "P4 —"] {
        assert!(page.dom.contains(section), "section {section} missing from the rendered page");
    }
    for map in ["P2 — t-SNE of", "P3 — t-SNE of"] {
        assert!(page.dom.contains(map), "map {map} missing from the rendered page");
    }
}
