//! The PyTorch side of the notebook suite: finds a Python with torch, writes reelvec's split in
//! the format of `benches/peers/common.py` (`--split`), runs a reference script, and reads its
//! JSON report (`per_epoch`, `mean_epoch_seconds`, `mean_epoch_cpu_seconds`, `metrics`).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{bail, Context, Result};
use serde_json::Value;

use super::report::{load_average, steady_mean, Timing};

/// A directory of reference scripts and the interpreter that runs them.
#[derive(Debug, Clone)]
pub struct Peers {
    dir: PathBuf,
    python: String,
    /// torch's version.
    pub torch_version: String,
    threads: usize,
    device: String,
    work: PathBuf,
}

/// A split both sides train on (the `--split` file of `common.py`).
#[derive(Debug, Clone)]
pub enum Split {
    /// 0-based rating rows in ratings-file order (P2, P3).
    Rows { train: Vec<u32>, val: Vec<u32> },
    /// Raw user ids (P0).
    Users { train: Vec<u64>, val: Vec<u64> },
}

/// What a reference script reported.
#[derive(Debug, Clone)]
pub struct PeerRun {
    /// Its timing (wall and CPU seconds of the training passes per epoch).
    pub timing: Timing,
    /// Its `metrics` object.
    pub metrics: Value,
    /// True when it trained on our split file.
    pub same_rows: bool,
}

impl Peers {
    /// Checks that `dir` holds the scripts and that `python3` (or `$REELVEC_PYTHON`) imports
    /// torch; the error says why not.
    pub fn detect(dir: &Path, threads: usize, device: &str, work: &Path) -> Result<Self> {
        if !dir.join("common.py").is_file() {
            bail!("{} holds no common.py (expected benches/peers)", dir.display());
        }
        let python = std::env::var("REELVEC_PYTHON").unwrap_or_else(|_| "python3".to_string());
        let out = Command::new(&python)
            .args(["-c", "import torch; print(torch.__version__)"])
            .output()
            .with_context(|| format!("cannot start {python}"))?;
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            bail!("`{python} -c 'import torch'` failed: {}", err.lines().last().unwrap_or("").trim());
        }
        std::fs::create_dir_all(work).with_context(|| format!("cannot create {}", work.display()))?;
        Ok(Self {
            dir: dir.to_path_buf(),
            python,
            torch_version: String::from_utf8_lossy(&out.stdout).trim().to_string(),
            threads,
            device: device.to_string(),
            work: work.to_path_buf(),
        })
    }

    /// Runs `script` on `data` with `extra` arguments, on `split` when given; when the script
    /// rejects the split (its filters kept other users, say), runs it again on its own split.
    pub fn run(&self, script: &str, data: &Path, split: Option<&Split>, extra: &[String]) -> Result<PeerRun> {
        let name = script.trim_end_matches(".py");
        let json = self.work.join(format!("{name}.json"));
        let split_file = match split {
            Some(s) => {
                let path = self.work.join(format!("{name}_split.json"));
                std::fs::write(&path, split_json(s).to_string())
                    .with_context(|| format!("cannot write {}", path.display()))?;
                Some(path)
            }
            None => None,
        };
        let load_before = load_average();
        let attempt = |split: Option<&Path>| -> Result<()> {
            let mut cmd = Command::new(&self.python);
            cmd.arg(self.dir.join(script))
                .arg("--data")
                .arg(data)
                .args(["--threads", &self.threads.to_string(), "--device", &self.device, "--quiet"])
                .arg("--json")
                .arg(&json)
                .args(extra);
            if let Some(s) = split {
                cmd.arg("--split").arg(s);
            }
            let out = cmd.output().with_context(|| format!("cannot run {script}"))?;
            if !out.status.success() {
                let err = String::from_utf8_lossy(&out.stderr);
                let tail: Vec<&str> = err.lines().rev().take(3).collect();
                bail!("{script} failed: {}", tail.into_iter().rev().collect::<Vec<_>>().join(" | "));
            }
            Ok(())
        };
        let same_rows = match split_file.as_deref() {
            Some(path) => match attempt(Some(path)) {
                Ok(()) => true,
                Err(e) => {
                    tracing::info!("bench: {e}; running {script} on its own split");
                    attempt(None)?;
                    false
                }
            },
            None => {
                attempt(None)?;
                false
            }
        };
        let report: Value = serde_json::from_str(
            &std::fs::read_to_string(&json).with_context(|| format!("cannot read {}", json.display()))?,
        )
        .with_context(|| format!("{} is not JSON", json.display()))?;
        let timing = Timing { load_average_1min: [load_before, load_average()], ..timing_of(&report) };
        Ok(PeerRun { timing, metrics: report["metrics"].clone(), same_rows })
    }
}

/// The split file's JSON.
pub fn split_json(split: &Split) -> Value {
    match split {
        Split::Rows { train, val } => serde_json::json!({ "kind": "rows", "train": train, "val": val }),
        Split::Users { train, val } => serde_json::json!({ "kind": "users", "train": train, "val": val }),
    }
}

/// The timing in a peer report: epochs run, steady-state mean wall and CPU seconds of the
/// training passes (`per_epoch[i].seconds`, [`steady_mean`]; the report's own means when the
/// list is missing), training examples per epoch (from `examples_per_second x mean_epoch_seconds`).
pub fn timing_of(report: &Value) -> Timing {
    let epochs = report["per_epoch"].as_array();
    let units = epochs.map_or(0, Vec::len);
    let column = |key: &str| -> Option<Vec<f64>> {
        epochs
            .and_then(|e| e.iter().map(|x| x[key].as_f64()).collect::<Option<Vec<f64>>>())
            .filter(|v| !v.is_empty())
    };
    let mean_wall = report["mean_epoch_seconds"].as_f64().unwrap_or(f64::NAN);
    let wall = column("seconds").map_or(mean_wall, |s| steady_mean(&s));
    let cpu =
        column("cpu_seconds").map(|s| steady_mean(&s)).or_else(|| report["mean_epoch_cpu_seconds"].as_f64());
    let examples = report["examples_per_second"].as_f64().map(|eps| eps * mean_wall);
    Timing {
        units,
        wall_per_unit: wall,
        cpu_per_unit: cpu,
        examples_per_unit: examples.map(f64::round),
        load_average_1min: [None, None],
    }
}

/// A number in a peer's `metrics` by a `/`-separated path.
pub fn metric(metrics: &Value, path: &str) -> Option<f64> {
    path.split('/').try_fold(metrics, |v, key| v.get(key)).and_then(Value::as_f64)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn peer_report_timing_and_split_format() {
        let report = serde_json::json!({
            "per_epoch": [{"seconds": 1.0}, {"seconds": 3.0}],
            "mean_epoch_seconds": 2.0,
            "mean_epoch_cpu_seconds": 1.5,
            "examples_per_second": 40000.0,
            "metrics": {"top": {"diversity": 0.7}, "best": 0.9},
        });
        let t = timing_of(&report);
        assert_eq!(t.units, 2);
        assert_eq!(t.wall_per_unit, 2.0);
        assert_eq!(t.cpu_per_unit, Some(1.5));
        assert_eq!(t.examples_per_unit, Some(80000.0));
        assert_eq!(metric(&report["metrics"], "top/diversity"), Some(0.7));
        assert_eq!(metric(&report["metrics"], "missing/x"), None);
        let rows = split_json(&Split::Rows { train: vec![2, 0], val: vec![1] });
        assert_eq!(rows.to_string(), r#"{"kind":"rows","train":[2,0],"val":[1]}"#);
        let users = split_json(&Split::Users { train: vec![7], val: vec![] });
        assert_eq!(users.to_string(), r#"{"kind":"users","train":[7],"val":[]}"#);
    }
}
