//! Opens the demo report in headless Chromium and checks that it renders: the DOM holds every
//! plot (as many `<svg>` elements as `<body data-plots="N">` announces), every section and
//! caption, and the browser logged no console message at all (the page has no scripts, so any
//! message is an error or a blocked fetch). Skips, saying so, when `chromium` is not on PATH
//! (`cargo xtask setup --browser` installs it).

#![allow(clippy::unwrap_used)]

use reelvec_report::browser::{dump_dom, file_url, find_chromium, DEFAULT_TIMEOUT, SKIP_MESSAGE};
use reelvec_report::demo::sample_report;

/// Text as Chromium serialises it inside an element.
fn dom_text(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('\u{a0}', "&nbsp;")
}

#[test]
fn report_renders_in_chromium_with_every_plot_and_no_console_errors() {
    let Some(chromium) = find_chromium() else {
        return reelvec_testkit::skip(reelvec_testkit::Need::Browser, SKIP_MESSAGE);
    };
    let dir = tempfile::tempdir().unwrap();
    let report = sample_report().unwrap();
    let written = report.write_to_dir(&dir.path().join("out")).unwrap();
    let page =
        dump_dom(&chromium, &dir.path().join("profile"), &file_url(&written.html).unwrap(), DEFAULT_TIMEOUT)
            .unwrap();
    let dom = &page.dom;

    let problems = page.console_problems();
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
    let Some(chromium) = find_chromium() else {
        return reelvec_testkit::skip(reelvec_testkit::Need::Browser, SKIP_MESSAGE);
    };
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("broken.html");
    std::fs::write(&page, "<!DOCTYPE html><html><body><p>x</p><script>notDefined();</script></body></html>")
        .unwrap();
    let dumped =
        dump_dom(&chromium, &dir.path().join("profile"), &file_url(&page).unwrap(), DEFAULT_TIMEOUT).unwrap();
    let problems = dumped.console_problems();
    assert!(problems.iter().any(|l| l.contains("Uncaught ReferenceError")), "not caught:\n{}", dumped.log);
}
