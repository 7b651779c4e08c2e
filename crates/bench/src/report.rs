//! The benchmark report: what a suite measured ([`BenchReport`], [`Case`], [`Timing`]), written as
//! JSON and rendered to markdown by [`super::render`]; plus the clocks and machine facts every suite
//! shares ([`Clock`], [`Machine`], [`utc_now`]).

use std::path::Path;
use std::time::Instant;

use crate::error::{Context, Result};
use serde::{Deserialize, Serialize};

/// Version of the JSON layout below.
pub const SCHEMA: u32 = 1;

/// One run of one suite.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchReport {
    /// [`SCHEMA`].
    pub schema: u32,
    /// `notebook` or `scale`.
    pub suite: String,
    /// When the run started, `YYYY-MM-DD HH:MM UTC`.
    pub date_utc: String,
    /// The command line that produced it.
    pub command: String,
    /// reelvec's version.
    pub reelvec_version: String,
    /// The source the binary was built from, when the caller says (`$REELVEC_BENCH_SOURCE`,
    /// set by `cargo xtask bench` to the git commit, marked `+dirty` with uncommitted changes).
    #[serde(default)]
    pub source: Option<String>,
    /// The machine.
    pub machine: Machine,
    /// Worker threads on both sides (rayon pool; torch intra-op threads).
    pub threads: usize,
    /// The device the pipelines ran on.
    pub device: String,
    /// The data the cases ran on.
    pub data: String,
    /// Whether and how the PyTorch references ran.
    pub peers: String,
    /// One entry per benchmark case.
    pub cases: Vec<Case>,
    /// Caveats a reader needs (measurement method, busy machine, skipped parts).
    pub notes: Vec<String>,
}

/// The machine a report was measured on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    /// CPU model name (`/proc/cpuinfo`).
    pub cpu: String,
    /// Logical cores.
    pub cores: usize,
    /// Physical memory, GiB.
    pub memory_gib: f64,
    /// 1-minute load average at the start and at the end of the run (other processes competing
    /// for the cores; a 2-core machine above 2 was oversubscribed).
    pub load_average: [Option<f64>; 2],
}

/// One benchmark case: our timing, optionally PyTorch's, quality figures side by side, and any
/// extra figures (bandwidth, memory, ...).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Case {
    /// Short id (`P2`, `scale-mf`, ...).
    pub id: String,
    /// What ran, with its configuration.
    pub name: String,
    /// What one timed unit is (`epoch`, `step`, `call`).
    pub unit: String,
    /// reelvec's timing.
    pub ours: Timing,
    /// PyTorch's timing on the same data, when it ran.
    pub peer: Option<Timing>,
    /// True when both sides trained on exactly the same rows (a shared split file).
    pub same_rows: Option<bool>,
    /// The speed-up over PyTorch (or over the named baseline) the issues ask for.
    pub target_speedup: Option<f64>,
    /// Quality figures, ours beside PyTorch's.
    pub quality: Vec<Quality>,
    /// Other measured figures.
    pub figures: Vec<Figure>,
    /// A caveat for this case.
    pub note: Option<String>,
    /// Set by [`apply_load_rule`] when the 1-minute load average exceeded the thread count
    /// before or after either side ran: why no speed-up is stated (the renderers then print
    /// no ratio and judge no target).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_refused: Option<String>,
}

/// Timing of one side of a case.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Timing {
    /// Units measured (epochs run, steps, calls).
    pub units: usize,
    /// Mean wall seconds per unit.
    pub wall_per_unit: f64,
    /// Process CPU seconds per unit (all threads). For reelvec it is the CPU time of the whole
    /// pipeline call divided by the units, so an upper bound; PyTorch's counts the training passes.
    pub cpu_per_unit: Option<f64>,
    /// Training examples per unit (rating rows, CBOW windows, matrix rows, pairs).
    pub examples_per_unit: Option<f64>,
    /// The 1-minute load average (`/proc/loadavg`) just before and just after this side ran
    /// (None where unknown: off Linux, or reports written before it was recorded).
    #[serde(default)]
    pub load_average_1min: [Option<f64>; 2],
}

impl Case {
    /// The load rule: when any 1-minute load average recorded around either side (before or
    /// after) is above `threads`, other processes competed for the cores the case used, so
    /// its figures are not comparable; returns the reason, naming the highest load. Unknown
    /// loads never refuse.
    pub fn load_check(&self, threads: usize) -> Option<String> {
        let sides = std::iter::once(&self.ours).chain(self.peer.as_ref());
        let highest = sides.flat_map(|t| t.load_average_1min).flatten().fold(f64::NAN, f64::max);
        if highest.is_nan() || highest <= threads as f64 {
            return None;
        }
        let what = if self.peer.is_some() {
            "no speed-up is stated (the two sides competed with other processes for the cores)"
        } else {
            "its figures were taken on a busy machine"
        };
        Some(format!(
            "1-min load average {highest:.2} above the {threads} thread(s) around this case: {what}"
        ))
    }
}

/// Applies [`Case::load_check`] to every case (setting [`Case::load_refused`]) and adds one
/// loud note naming the refused cases. Returns how many were refused.
pub fn apply_load_rule(cases: &mut [Case], threads: usize, notes: &mut Vec<String>) -> usize {
    let mut refused = Vec::new();
    for c in cases.iter_mut() {
        c.load_refused = c.load_check(threads);
        if c.load_refused.is_some() {
            refused.push(c.id.clone());
        }
    }
    if !refused.is_empty() {
        notes.push(format!(
            "LOAD TOO HIGH: {} measured while the 1-min load average exceeded the {threads} thread(s); \
             their ratios are withheld and their targets not judged: rerun on a quiet machine",
            refused.join(", ")
        ));
    }
    refused.len()
}

impl Timing {
    /// Examples per wall second.
    pub fn examples_per_second(&self) -> Option<f64> {
        self.examples_per_unit.filter(|_| self.wall_per_unit > 0.0).map(|e| e / self.wall_per_unit)
    }
}

/// A quality figure of both sides.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Quality {
    /// What it is (`best val RMSE (stars)`).
    pub name: String,
    /// Ours.
    pub ours: Option<f64>,
    /// PyTorch's.
    pub peer: Option<f64>,
}

impl Quality {
    /// A figure of both sides.
    pub fn new(name: &str, ours: Option<f64>, peer: Option<f64>) -> Self {
        Self { name: name.to_string(), ours, peer }
    }
}

/// A named measured value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Figure {
    /// What it is.
    pub name: String,
    /// The value.
    pub value: f64,
    /// Its unit (`GB/s`, `MiB`, `s`, `pairs/s`).
    pub unit: String,
}

impl Figure {
    /// A figure.
    pub fn new(name: &str, value: f64, unit: &str) -> Self {
        Self { name: name.to_string(), value, unit: unit.to_string() }
    }
}

impl BenchReport {
    /// Writes the report as pretty JSON (directories created).
    pub fn save(&self, path: &Path) -> Result<()> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let text = serde_json::to_string_pretty(self)? + "\n";
        reelvec_outfile::write_file(path, text.as_bytes())?;
        Ok(())
    }

    /// Reads a report.
    pub fn load(path: &Path) -> Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("{} is not a benchmark report", path.display()))
    }
}

/// One rayon pool per thread count, built once for a whole suite: the process CPU clock sums
/// the live threads, so a pool dropped (its threads exiting) between two readings would lose
/// time.
pub fn thread_pools(threads: &[usize]) -> Result<Vec<rayon::ThreadPool>> {
    threads
        .iter()
        .map(|&n| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(n)
                .build()
                .map_err(|e| crate::error::BenchError::Msg(format!("rayon pool: {e}")))
        })
        .collect()
}

/// Wall and process CPU time over a span.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    wall: Instant,
    cpu: Option<f64>,
    load: Option<f64>,
}

/// What a [`Clock`] measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Elapsed {
    /// Wall seconds.
    pub wall: f64,
    /// Process CPU seconds (all threads), when the platform tells.
    pub cpu: Option<f64>,
    /// The 1-minute load average at [`Clock::start`] and at [`Clock::elapsed`].
    pub load: [Option<f64>; 2],
}

impl Clock {
    /// Starts both clocks.
    pub fn start() -> Self {
        Self { wall: Instant::now(), cpu: process_cpu_seconds(), load: load_average() }
    }

    /// Time since [`Clock::start`].
    pub fn elapsed(&self) -> Elapsed {
        let cpu = match (self.cpu, process_cpu_seconds()) {
            (Some(a), Some(b)) => Some((b - a).max(0.0)),
            _ => None,
        };
        Elapsed { wall: self.wall.elapsed().as_secs_f64(), cpu, load: [self.load, load_average()] }
    }
}

/// CPU seconds this process's live threads have run (the engine's reading, one owner).
pub use reelvec_engine::clock::process_cpu_seconds;

/// Resident set size now and its peak since the last [`reset_peak_rss`], bytes (Linux).
pub fn rss_bytes() -> Option<(u64, u64)> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kb| kb.parse::<u64>().ok())
            .map(|kb| kb * 1024)
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// Resets the kernel's peak-RSS mark (`VmHWM`) to the current RSS; false when not possible.
pub fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

impl Machine {
    /// This machine, with the load average now as the start value.
    pub fn detect() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .and_then(|rest| rest.split_once(':'))
            .map_or_else(|| std::env::consts::ARCH.to_string(), |(_, name)| name.trim().to_string());
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let memory_kib = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kb| kb.parse::<f64>().ok())
            .unwrap_or(0.0);
        Self {
            cpu,
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            memory_gib: (memory_kib / (1024.0 * 1024.0) * 10.0).round() / 10.0,
            load_average: [load_average(), None],
        }
    }
}

/// The 1-minute load average (`/proc/loadavg`).
pub fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg").ok()?.split_whitespace().next()?.parse().ok()
}

/// Now as `YYYY-MM-DD HH:MM:SS UTC` (reelvec-report's one date formatter).
pub fn utc_now() -> String {
    reelvec_report::report::utc_timestamp(std::time::SystemTime::now())
}

/// Mean of a slice (0 when empty).
pub fn mean(values: &[f64]) -> f64 {
    if values.is_empty() {
        0.0
    } else {
        values.iter().sum::<f64>() / values.len() as f64
    }
}

/// Median of repeated measurements (the mean of the middle two for an even count; NaN when
/// empty): what the suites report for repeated runs.
pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

/// The steady-state mean of per-epoch times: the mean over the epochs after the first when
/// there are at least three (the first pays one-off costs on both sides: CUDA context and cuBLAS
/// start-up, kernel loading, allocator growth, caches), else the plain mean.
pub fn steady_mean(values: &[f64]) -> f64 {
    if values.len() >= 3 {
        mean(&values[1..])
    } else {
        mean(values)
    }
}

/// What the notebook suite's per-epoch figures mean (a note in every notebook report).
pub const STEADY_STATE_NOTE: &str = "per-epoch times (ours and PyTorch's) are the epoch's training pass, \
    validation excluded, wall and process CPU time alike, on both sides; means over the epochs after the first \
    when 3 or more ran: the first epoch pays one-off start-up costs on both sides";

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {

    #[test]
    fn median_of_odd_and_even_counts() {
        use super::median;
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(vec![]).is_nan());
    }

    #[test]
    fn steady_mean_drops_the_first_epoch_only_from_three_on() {
        assert_eq!(steady_mean(&[]), 0.0);
        assert_eq!(steady_mean(&[9.0, 1.0]), 5.0);
        assert_eq!(steady_mean(&[9.0, 1.0, 3.0]), 2.0);
    }

    use super::*;

    #[test]
    fn dates_come_from_reelvec_report() {
        let now = utc_now();
        let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        let expected = reelvec_report::report::utc_timestamp(
            std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs),
        );
        assert_eq!(now.len(), "2026-11-23 00:41:00 UTC".len(), "{now}");
        assert_eq!(now[..10], expected[..10]);
    }

    fn timing(load: [Option<f64>; 2]) -> Timing {
        Timing {
            units: 1,
            wall_per_unit: 1.0,
            cpu_per_unit: None,
            examples_per_unit: None,
            load_average_1min: load,
        }
    }

    fn case(id: &str, ours: [Option<f64>; 2], peer: Option<[Option<f64>; 2]>) -> Case {
        Case {
            id: id.into(),
            name: String::new(),
            unit: "epoch".into(),
            ours: timing(ours),
            peer: peer.map(timing),
            same_rows: None,
            target_speedup: Some(10.0),
            quality: vec![],
            figures: vec![],
            note: None,
            load_refused: None,
        }
    }

    #[test]
    fn load_above_the_thread_count_on_either_side_refuses_the_comparison() {
        // At or below the thread count, or unknown: compared.
        assert_eq!(case("a", [Some(0.4), Some(1.0)], Some([Some(0.9), None])).load_check(1), None);
        assert_eq!(case("b", [None, None], Some([None, None])).load_check(1), None);
        assert_eq!(case("c", [Some(3.9), Some(4.0)], None).load_check(4), None);
        // Above it before or after either side: refused, naming the highest load.
        let ours_after =
            case("d", [Some(0.5), Some(1.2)], Some([Some(0.3), Some(0.8)])).load_check(1).unwrap();
        assert!(ours_after.contains("1.20 above the 1 thread(s)") && ours_after.contains("no speed-up"));
        let peer_before =
            case("e", [Some(0.5), Some(0.7)], Some([Some(2.5), Some(0.8)])).load_check(2).unwrap();
        assert!(peer_before.contains("2.50 above the 2 thread(s)"), "{peer_before}");
        let alone = case("f", [Some(6.0), None], None).load_check(2).unwrap();
        assert!(alone.contains("busy machine"), "{alone}");

        let mut cases = vec![
            case("P2", [Some(0.2), Some(0.3)], Some([Some(0.2), Some(5.0)])),
            case("P3", [Some(0.2), Some(0.3)], Some([Some(0.2), Some(0.3)])),
        ];
        let mut notes = vec![];
        assert_eq!(apply_load_rule(&mut cases, 1, &mut notes), 1);
        assert!(cases[0].load_refused.is_some() && cases[1].load_refused.is_none());
        assert_eq!(notes.len(), 1);
        assert!(notes[0].starts_with("LOAD TOO HIGH: P2 measured"), "{}", notes[0]);
        // The JSON carries the refusal (and the loads), and old reports without them still read.
        let json = serde_json::to_value(&cases[0]).unwrap();
        assert!(json["load_refused"].as_str().unwrap().contains("5.00"));
        assert_eq!(json["peer"]["load_average_1min"], serde_json::json!([0.2, 5.0]));
        let mut old = serde_json::to_value(&cases[1]).unwrap();
        old["ours"].as_object_mut().unwrap().remove("load_average_1min");
        let back: Case = serde_json::from_value(old).unwrap();
        assert_eq!(back.ours.load_average_1min, [None, None]);
    }

    #[test]
    fn throughput_and_mean() {
        let t = Timing {
            units: 3,
            wall_per_unit: 0.5,
            cpu_per_unit: None,
            examples_per_unit: Some(100.0),
            load_average_1min: [None, None],
        };
        assert_eq!(t.examples_per_second(), Some(200.0));
        assert_eq!(mean(&[1.0, 2.0, 6.0]), 3.0);
        assert_eq!(mean(&[]), 0.0);
    }
}
