//! The one skip mechanism of reelvec's tests: a test that cannot run calls [`skip`] and returns.
//!
//! A skip is never silent:
//! - it prints `SKIPPED <test>: <reason>` to stderr;
//! - when `$REELVEC_SKIP_LOG` names a file, it appends one line `<kind>\t<test>\t<reason>` to it
//!   (`cargo xtask test` sets it to a fresh file and prints the skips grouped by reason at the
//!   end, see [`summarise`]);
//! - when `$REELVEC_REQUIRE_<KIND>` is `1` (e.g. `REELVEC_REQUIRE_GPU=1`, set by the GPU bundle's
//!   `run.sh`; `cargo xtask test` sets it for NVRTC and the browser), it panics instead: a test
//!   that must run on this machine fails rather than skips.
//!
//! ```
//! use reelvec_testkit::{skip, Need};
//! fn gpu_matches_cpu() {
//!     let device_answers = false; // e.g. reelvec_engine::gpu::available()
//!     if !device_answers {
//!         return skip(Need::Gpu, "no CUDA device");
//!     }
//!     // ... the test proper
//! }
//! # std::env::remove_var("REELVEC_REQUIRE_GPU");
//! # gpu_matches_cpu();
//! ```

use std::collections::BTreeMap;
use std::io::Write;

/// What a skipped test needed and did not find. Each kind has its own
/// `REELVEC_REQUIRE_<KIND>=1` switch that turns its skips into failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Need {
    /// A CUDA device (`REELVEC_REQUIRE_GPU`).
    Gpu,
    /// The NVRTC library, to compile the kernels without a device (`REELVEC_REQUIRE_NVRTC`).
    Nvrtc,
    /// Headless Chromium on PATH (`REELVEC_REQUIRE_BROWSER`).
    Browser,
    /// A real MovieLens data set named by an environment variable (`REELVEC_REQUIRE_DATA`).
    Data,
    /// An opt-in long run or measurement at scale, not asked for (`REELVEC_REQUIRE_OPTIN`).
    OptIn,
    /// A CPU instruction set the test compares against the baseline build (AVX2 on x86-64).
    CpuFeature,
}

impl Need {
    /// The name used in the log and in the `REELVEC_REQUIRE_<KIND>` variable.
    pub fn name(self) -> &'static str {
        match self {
            Need::Gpu => "GPU",
            Need::Nvrtc => "NVRTC",
            Need::Browser => "BROWSER",
            Need::Data => "DATA",
            Need::OptIn => "OPTIN",
            Need::CpuFeature => "CPU_FEATURE",
        }
    }

    /// The variable that turns this kind's skips into failures.
    pub fn require_var(self) -> String {
        format!("REELVEC_REQUIRE_{}", self.name())
    }

    /// True when `REELVEC_REQUIRE_<KIND>=1`.
    pub fn required(self) -> bool {
        std::env::var(self.require_var()).is_ok_and(|v| v == "1")
    }
}

/// The variable naming the file every skip is appended to.
pub const SKIP_LOG_VAR: &str = "REELVEC_SKIP_LOG";

/// Records that the calling test did not run because `need` is missing (`reason` says what and
/// how to get it); the caller returns right after. Panics instead when `need` is required.
#[track_caller]
pub fn skip(need: Need, reason: &str) {
    let test = current_test();
    if need.required() {
        panic!("{test} cannot run: {reason} ({}=1 makes this a failure, not a skip)", need.require_var());
    }
    let mut err = std::io::stderr().lock();
    // A failed write to stderr must not turn a skip into a failure.
    let _ = writeln!(err, "SKIPPED {test}: {reason}");
    if let Some(path) = std::env::var_os(SKIP_LOG_VAR) {
        let line = log_line(need, &test, reason);
        let appended = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            // One write per line: concurrent test threads and binaries append whole lines.
            .and_then(|mut f| f.write_all(line.as_bytes()));
        if let Err(e) = appended {
            panic!("{test}: cannot append the skip to {}: {e}", std::path::Path::new(&path).display());
        }
    }
}

/// `binary::test` for the running test: the test binary's name without cargo's hash, then the
/// name libtest gives the test's thread.
pub fn current_test() -> String {
    let binary = std::env::current_exe()
        .ok()
        .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .map(|stem| match stem.rsplit_once('-') {
            Some((name, hash)) if hash.chars().all(|c| c.is_ascii_hexdigit()) => name.to_string(),
            _ => stem,
        })
        .unwrap_or_else(|| "?".to_string());
    let thread = std::thread::current().name().unwrap_or("?").to_string();
    format!("{binary}::{thread}")
}

/// One log line: tab-separated kind, test and reason (tabs and newlines in them become spaces).
pub fn log_line(need: Need, test: &str, reason: &str) -> String {
    let clean = |s: &str| s.replace(['\t', '\n', '\r'], " ");
    format!("{}\t{}\t{}\n", need.name(), clean(test), clean(reason))
}

/// The skip log's lines grouped: `(kind, reason) -> tests`, plus the lines that did not parse.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct SkipSummary {
    /// Tests by (kind, reason), tests in log order.
    pub groups: BTreeMap<(String, String), Vec<String>>,
    /// Lines that are not `kind\ttest\treason`.
    pub malformed: Vec<String>,
}

impl SkipSummary {
    /// Number of skipped tests.
    pub fn total(&self) -> usize {
        self.groups.values().map(Vec::len).sum()
    }

    /// `skipped: N tests`, then one line per reason with its count and tests.
    pub fn render(&self) -> String {
        let total = self.total();
        let mut out = format!("skipped: {total} test{}\n", if total == 1 { "" } else { "s" });
        for ((kind, reason), tests) in &self.groups {
            out.push_str(&format!("  {:>4} x [{kind}] {reason}: {}\n", tests.len(), tests.join(", ")));
        }
        for line in &self.malformed {
            out.push_str(&format!("  malformed skip-log line: {line}\n"));
        }
        out
    }
}

/// Groups the text of a skip log (see [`log_line`]).
pub fn summarise(log: &str) -> SkipSummary {
    let mut summary = SkipSummary::default();
    for line in log.lines().filter(|l| !l.trim().is_empty()) {
        let mut parts = line.splitn(3, '\t');
        match (parts.next(), parts.next(), parts.next()) {
            (Some(kind), Some(test), Some(reason)) => summary
                .groups
                .entry((kind.to_string(), reason.to_string()))
                .or_default()
                .push(test.to_string()),
            _ => summary.malformed.push(line.to_string()),
        }
    }
    summary
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_groups_by_kind_and_reason_and_counts_every_test() {
        let log = [
            log_line(Need::Gpu, "gpu_mf::a", "no CUDA device"),
            log_line(Need::Browser, "render_chromium::b", "chromium not installed"),
            log_line(Need::Gpu, "gpu_mf::c", "no CUDA device"),
            "garbage\n".to_string(),
        ]
        .concat();
        let s = summarise(&log);
        assert_eq!(s.total(), 3);
        assert_eq!(s.groups[&("GPU".to_string(), "no CUDA device".to_string())], ["gpu_mf::a", "gpu_mf::c"]);
        assert_eq!(s.malformed, ["garbage"]);
        let text = s.render();
        assert!(text.starts_with("skipped: 3 tests\n"), "{text}");
        assert!(text.contains("2 x [GPU] no CUDA device: gpu_mf::a, gpu_mf::c"), "{text}");
        assert!(text.contains("1 x [BROWSER] chromium not installed"), "{text}");
        assert_eq!(summarise("").render(), "skipped: 0 tests\n");
    }

    #[test]
    fn a_required_kind_fails_instead_of_skipping() {
        // OptIn is used by no other test of this binary, so setting its switch races nothing.
        std::env::set_var(Need::OptIn.require_var(), "1");
        let outcome = std::panic::catch_unwind(|| skip(Need::OptIn, "timing not asked for"));
        std::env::remove_var(Need::OptIn.require_var());
        let message = outcome.expect_err("a required skip must panic");
        let text = message.downcast_ref::<String>().cloned().unwrap_or_default();
        assert!(text.contains("REELVEC_REQUIRE_OPTIN=1") && text.contains("timing not asked for"), "{text}");
    }

    #[test]
    fn log_lines_keep_one_line_per_skip() {
        assert_eq!(log_line(Need::Data, "a\tb", "x\ny"), "DATA\ta b\tx y\n");
    }

    #[test]
    fn test_names_come_from_the_binary_and_the_test_thread() {
        let name = current_test();
        assert!(name.ends_with("::tests::test_names_come_from_the_binary_and_the_test_thread"), "{name}");
        assert!(name.starts_with("reelvec_testkit::"), "{name}");
    }
}
