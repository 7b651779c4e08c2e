//! Headless Chromium for the render tests of the reports: find `chromium` on PATH, load a page
//! with `--headless --dump-dom` under a time limit, and pick the console messages out of its log.
//!
//! The pages reelvec writes have no scripts, so any console line is an error or a blocked load;
//! [`console_problems`] keeps the lines that report one. Debian's `chromium` package (installed
//! by `cargo xtask setup --browser`) is what the tests expect; they skip when [`find_chromium`]
//! finds none, printing [`SKIP_MESSAGE`].

use std::ffi::OsStr;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::ReportError;

/// What a test prints when it skips for want of a browser.
pub const SKIP_MESSAGE: &str = "chromium not installed (cargo xtask setup --browser)";

/// How long a page load may take before the browser is killed.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);

/// `chromium` from the PATH, if there.
pub fn find_chromium() -> Option<PathBuf> {
    find_in_path(&std::env::var_os("PATH")?, "chromium")
}

/// The first `dirs` entry (a PATH-style list) holding a file named `name`.
fn find_in_path(dirs: &OsStr, name: &str) -> Option<PathBuf> {
    std::env::split_paths(dirs).map(|dir| dir.join(name)).find(|candidate| candidate.is_file())
}

/// The `file://` URL of a local page.
pub fn file_url(page: &Path) -> Result<String, ReportError> {
    let absolute = page.canonicalize().map_err(|e| ReportError::io(page, e))?;
    Ok(format!("file://{}", absolute.display()))
}

/// A page as the browser rendered it.
#[derive(Debug, Clone)]
pub struct DumpedPage {
    /// The serialised DOM after loading (`--dump-dom` on stdout).
    pub dom: String,
    /// The browser's whole log (stderr, `--enable-logging=stderr`).
    pub log: String,
}

impl DumpedPage {
    /// The log lines that report console messages or blocked loads (see [`console_problems`]).
    pub fn console_problems(&self) -> Vec<&str> {
        console_problems(&self.log)
    }
}

/// Loads `url` in headless Chromium with a fresh profile under `profile` and returns its DOM and
/// log; kills the browser and fails after `timeout`, and fails when it exits unsuccessfully.
pub fn dump_dom(
    chromium: &Path,
    profile: &Path,
    url: &str,
    timeout: Duration,
) -> Result<DumpedPage, ReportError> {
    let fail = |message: String| ReportError::Browser { url: url.to_owned(), message };
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
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| fail(format!("cannot start {}: {e}", chromium.display())))?;
    // Read both pipes on threads so a chatty browser cannot block on a full pipe.
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut pipe) = pipe {
                // A read error leaves what was read so far; the exit status tells the rest.
                let _ = pipe.read_to_end(&mut bytes);
            }
            String::from_utf8_lossy(&bytes).into_owned()
        })
    };
    let stdout = drain(child.stdout.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let stderr = drain(child.stderr.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|e| fail(format!("waiting for the browser: {e}")))? {
            break status;
        }
        if started.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            return Err(fail(format!("no result within {} s", timeout.as_secs())));
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let joined = |handle: std::thread::JoinHandle<String>| handle.join().unwrap_or_default();
    let (dom, log) = (joined(stdout), joined(stderr));
    if !status.success() {
        return Err(fail(format!("exited with {status}\n{log}")));
    }
    Ok(DumpedPage { dom, log })
}

/// The lines of a Chromium log that report a console message, an uncaught exception, a blocked
/// (Content Security Policy) load or a failed resource.
pub fn console_problems(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|line| {
            line.contains(":CONSOLE")
                || line.contains("Uncaught")
                || line.contains("Content Security Policy")
                || line.contains("Failed to load resource")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn console_problems_keep_only_error_lines() {
        let log = "[1:2:INFO:CONSOLE(3)] \"Uncaught ReferenceError: x\", source: file:///p (3)\n\
                   [1:2:WARNING:gpu_init.cc] no GPU\n\
                   Refused to load because it violates the Content Security Policy\n\
                   Failed to load resource: net::ERR_FILE_NOT_FOUND\n\
                   DevTools listening on ws://127.0.0.1\n";
        let problems = console_problems(log);
        assert_eq!(problems.len(), 3);
        assert!(problems[0].contains("ReferenceError"));
        assert!(problems.iter().all(|l| !l.contains("gpu_init") && !l.contains("DevTools")));
    }

    #[test]
    fn find_in_path_takes_the_first_directory_holding_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(b.join("chromium")).unwrap(); // a directory, not a file
        let c = dir.path().join("c");
        std::fs::create_dir_all(&c).unwrap();
        std::fs::write(c.join("chromium"), "").unwrap();
        let path = std::env::join_paths([&a, &b, &c]).unwrap();
        assert_eq!(find_in_path(&path, "chromium"), Some(c.join("chromium")));
        assert_eq!(find_in_path(&path, "firefox"), None);
    }

    #[test]
    fn file_url_is_absolute_and_missing_files_fail_with_their_path() {
        let dir = tempfile::tempdir().unwrap();
        let page = dir.path().join("page.html");
        std::fs::write(&page, "<html></html>").unwrap();
        let url = file_url(&page).unwrap();
        assert!(url.starts_with("file:///") && url.ends_with("/page.html"), "{url}");
        let err = file_url(&dir.path().join("missing.html")).unwrap_err().to_string();
        assert!(err.contains("missing.html"), "{err}");
    }
}
