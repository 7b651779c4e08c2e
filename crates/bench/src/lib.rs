//! reelvec's runtime benchmark suites, linked by the `reelvec bench` subcommand so they run in the
//! release binary where there is no cargo (GPU machines). `Suite::Notebook` times P0..P4 at
//! their notebook configurations (and, with the PyTorch reference scripts of `benches/peers`,
//! the references on the same data in the same run); `Suite::Scale` runs the synthetic
//! ml-25m-shaped cases (MF epoch against the bandwidth bound, P1 step, skip-gram pairs/s, full
//! top-N); `Suite::Frontier` sets P2 beside Surprise's SVD at several epoch budgets (the
//! speed/accuracy frontier, [`frontier`]). A run gives a [`BenchReport`] (JSON); [`render::document`] renders the markdown
//! document from saved reports.
//!
//! Main entry points: [`run_suite`] with [`SuiteOptions`], [`BenchData`], [`load_reports`],
//! [`print_summary`]'s table ([`summary`]). One module per part: [`notebook`] and [`scale`] (the
//! suites; `scale_gpu` their device halves; [`mf_scale`], [`cooc_bench`] and [`sgns_bench`] the timing loops over
//! the models' plain GPU steps),
//! [`peers`] (the PyTorch side), [`report`] (report types and clocks), [`render`] (markdown).
//!
//! This crate does not parse command lines (the CLI does) and prints nothing: progress goes to
//! `tracing` at info level, results are returned. Criterion micro-benchmarks live in `benches/`.
//!
//! ```no_run
//! use reelvec_bench::{run_suite, Suite, SuiteOptions};
//! let opts = SuiteOptions { scale_fraction: 0.001, ..SuiteOptions::new(Suite::Scale) };
//! let report = run_suite(&opts, None)?;
//! println!("{}", reelvec_bench::summary(&report));
//! # Ok::<(), reelvec_bench::BenchError>(())
//! ```

pub mod cooc_bench;
pub mod corpus;
mod error;
pub mod frontier;
pub mod mf_scale;
pub mod notebook;
pub mod peers;
pub mod ranking;
pub mod render;
pub mod report;
pub mod scale;
mod scale_gpu;
pub mod sgns_bench;

use std::path::{Path, PathBuf};

use reelvec_data::{Dataset, Layout, LoadOptions};
use reelvec_engine::Device;

use error::bail;
pub use error::{BenchError, Context, Result};
pub use report::BenchReport;
use report::{load_average, utc_now, Machine, SCHEMA};
pub use scale::ScaleCase;

/// The suites.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Suite {
    /// P0..P4 at their notebook configurations, beside PyTorch with --peers.
    Notebook,
    /// Synthetic ml-25m-shaped cases (MF epoch, P1 step, skip-gram, top-N).
    Scale,
    /// P2 beside Surprise's SVD at several epoch budgets: the speed/accuracy frontier.
    Frontier,
    /// Ranking models beside benches/peers/ranking.py (implicit ALS, BPR, NumPy EASE) on one
    /// split file and protocol, at 1 and 2 threads.
    Ranking,
    /// Skip-gram and CBOW beside gensim's Word2Vec (benches/peers/gensim_corpus.py) on one
    /// synthetic ml-25m-shaped sequence corpus (`scale_fraction` of its users), at 1 and 2
    /// threads.
    Corpus,
}

impl Suite {
    /// The name reports and the command line use.
    pub fn name(self) -> &'static str {
        match self {
            Suite::Notebook => "notebook",
            Suite::Scale => "scale",
            Suite::Frontier => "frontier",
            Suite::Ranking => "ranking",
            Suite::Corpus => "corpus",
        }
    }
}

/// What a suite run needs besides its data.
#[derive(Debug, Clone)]
pub struct SuiteOptions {
    /// The suite.
    pub suite: Suite,
    /// Directory of the PyTorch reference scripts (benches/peers); skipped when torch is missing.
    pub peers: Option<PathBuf>,
    /// Worker threads on both sides.
    pub threads: usize,
    /// Compute device.
    pub device: Device,
    /// Epochs of every epoch-based case (default: each protocol's; scale: 1).
    pub epochs: Option<usize>,
    /// P1 Adam steps (notebook: each side's protocol unless given; scale: 3).
    pub p1_steps: Option<usize>,
    /// Scale suite: share of ml-25m's users (and so of its ratings) generated, in (0, 1].
    pub scale_fraction: f64,
    /// Scale suite: the cases to run (all when empty).
    pub scale_cases: Vec<ScaleCase>,
    /// The command line recorded in the report.
    pub command: String,
    /// Notebook suite: runs of each case per side, medians reported (default 3).
    pub repeats: usize,
    /// Notebook suite: P0's vocabulary sizes, one case each (default 50, 200, 1000).
    pub p0_vocab: Vec<usize>,
    /// Notebook suite: the pipelines to run (all when empty).
    pub notebook_cases: Vec<notebook::NotebookCase>,
}

impl SuiteOptions {
    /// The defaults for `suite`: every core, the CPU, each protocol's epochs, full scale.
    pub fn new(suite: Suite) -> Self {
        Self {
            suite,
            peers: None,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            device: Device::Cpu,
            epochs: None,
            p1_steps: None,
            scale_fraction: 1.0,
            scale_cases: Vec::new(),
            command: String::new(),
            repeats: notebook::DEFAULT_REPEATS,
            p0_vocab: notebook::DEFAULT_P0_VOCAB.to_vec(),
            notebook_cases: Vec::new(),
        }
    }
}

/// Runs a suite. `data` is the notebook suite's data (the embedded synthetic data set, written
/// to a temporary folder for the scripts, when `None`); the scale suite generates its own.
pub fn run_suite(opts: &SuiteOptions, data: Option<BenchData>) -> Result<BenchReport> {
    let (args, suite, threads) = (opts, opts.suite, opts.threads);
    let device = args.device;
    let date_utc = utc_now();
    let mut machine = Machine::detect();
    let mut notes = Vec::new();
    let (data, peers_status, cases) = match suite {
        Suite::Notebook | Suite::Frontier => {
            let source = match data {
                Some(d) => d,
                None => BenchData::synthetic()?,
            };
            let work = std::env::temp_dir().join(format!("reelvec-bench-{}", std::process::id()));
            let peers = match &args.peers {
                Some(dir) => match peers::Peers::detect(
                    dir,
                    threads,
                    if device.is_cuda() { "cuda" } else { "cpu" },
                    &work.join("peers"),
                ) {
                    Ok(p) => Some(p),
                    Err(e) => {
                        tracing::info!("bench: PyTorch references skipped: {e}");
                        notes.push(format!("PyTorch references skipped: {e}"));
                        None
                    }
                },
                None => None,
            };
            let status = match &peers {
                Some(_) if suite == Suite::Frontier => {
                    "Surprise's SVD (benches/peers/surprise_svd.py, 1 thread), same rows".to_string()
                }
                Some(p) => {
                    let on = if device.is_cuda() {
                        "CUDA".to_string()
                    } else {
                        format!("CPU, {threads} intra-op thread(s)")
                    };
                    format!("torch {} ({on}), same data files", p.torch_version)
                }
                None if args.peers.is_some() => "not run (see notes)".to_string(),
                None => "not run (no --peers)".to_string(),
            };
            let cases = if suite == Suite::Frontier {
                let plan = frontier::FrontierPlan {
                    dataset: &source.dataset,
                    data_dir: &source.dir,
                    peers: peers.as_ref(),
                    device,
                    epochs: args.epochs,
                };
                frontier::run(&plan, &mut notes)
            } else {
                let plan = notebook::NotebookPlan {
                    dataset: &source.dataset,
                    data_dir: &source.dir,
                    epochs: args.epochs,
                    p1_steps: args.p1_steps,
                    peers: peers.as_ref(),
                    device,
                    repeats: args.repeats,
                    p0_vocab: args.p0_vocab.clone(),
                    cases: args.notebook_cases.clone(),
                };
                notebook::run(&plan, &mut notes)
            };
            let _ = std::fs::remove_dir_all(&work);
            (source.label.clone(), status, cases?)
        }
        Suite::Ranking => {
            let source = match data {
                Some(d) => d,
                None => BenchData::synthetic()?,
            };
            let work = std::env::temp_dir().join(format!("reelvec-bench-ranking-{}", std::process::id()));
            let plan = ranking::RankingPlan {
                dataset: &source.dataset,
                peers: args.peers.as_deref(),
                work: &work,
                seed: 42,
            };
            let cases = ranking::run(&plan, &mut notes);
            let _ = std::fs::remove_dir_all(&work);
            let status = match &args.peers {
                Some(_) => "benches/peers/ranking.py (implicit, NumPy) on the same split file".to_string(),
                None => "not run (no --peers)".to_string(),
            };
            (source.label.clone(), status, cases?)
        }
        Suite::Corpus => {
            let work = std::env::temp_dir().join(format!("reelvec-bench-corpus-{}", std::process::id()));
            let plan = corpus::CorpusPlan {
                fraction: args.scale_fraction,
                epochs: args.epochs.unwrap_or(5),
                peers: args.peers.as_deref(),
                work: &work,
            };
            let result = corpus::run(&plan, &mut notes);
            let _ = std::fs::remove_dir_all(&work);
            let (label, cases) = result?;
            let status = match &args.peers {
                Some(_) => {
                    "gensim Word2Vec (benches/peers/gensim_corpus.py) on the same corpus file".to_string()
                }
                None => "not run (no --peers)".to_string(),
            };
            (label, status, cases)
        }
        Suite::Scale => {
            if !(args.scale_fraction > 0.0 && args.scale_fraction <= 1.0) {
                bail!("--scale-fraction must be in (0, 1], got {}", args.scale_fraction);
            }
            let plan = scale::ScalePlan {
                cases: args.scale_cases.clone(),
                fraction: args.scale_fraction,
                epochs: args.epochs.unwrap_or(1),
                p1_steps: args.p1_steps.unwrap_or(3),
                threads,
                device,
            };
            let (label, cases) = scale::run(&plan, &mut notes)?;
            (label, "none (no PyTorch reference for this suite)".to_string(), cases)
        }
    };
    let mut cases = cases;
    report::apply_load_rule(&mut cases, threads, &mut notes);
    machine.load_average[1] = load_average();
    if machine.load_average.iter().flatten().any(|&l| l > machine.cores as f64) {
        notes.push(format!(
            "the machine was shared: 1-min load average above its {} cores during the run; compare CPU times",
            machine.cores
        ));
    }
    Ok(BenchReport {
        schema: SCHEMA,
        suite: suite.name().to_string(),
        date_utc,
        command: args.command.clone(),
        reelvec_version: env!("CARGO_PKG_VERSION").to_string(),
        source: std::env::var("REELVEC_BENCH_SOURCE").ok().filter(|s| !s.is_empty()),
        machine,
        threads,
        device: device.describe(),
        data,
        peers: peers_status,
        cases,
        notes,
    })
}

/// The data of the notebook suite: in memory for us, as files for the scripts.
#[derive(Debug)]
pub struct BenchData {
    dataset: Dataset,
    dir: PathBuf,
    label: String,
    _temp: Option<TempDir>,
}

/// A directory removed on drop.
#[derive(Debug)]
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl BenchData {
    /// `dataset` as loaded from `path` (its directory is what the scripts read).
    pub fn from_loaded(dataset: Dataset, path: &Path) -> Self {
        let dir = if path.is_dir() {
            path.to_path_buf()
        } else {
            path.parent().unwrap_or(Path::new(".")).to_path_buf()
        };
        let name =
            path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().to_string());
        let label = format!(
            "{name}: {} ratings, {} users, {} movies",
            dataset.ratings.len(),
            dataset.users.len(),
            dataset.movies.len()
        );
        Self { dataset, dir, label, _temp: None }
    }

    /// The embedded synthetic data set written as ml-latest CSV files to a temporary directory
    /// and read back, so both sides read the same files in the same row order.
    pub fn synthetic() -> Result<Self> {
        Self::write_synthetic(reelvec_data::synth::small().dataset, "small")
    }

    /// A synthetic data set of `preset`'s shape (seed 42; `ml-latest-small` is the realistic
    /// 9,742-movie catalogue), written and read back as [`BenchData::synthetic`] does: what
    /// `reelvec bench --data synth:PRESET` runs on.
    pub fn synthetic_preset(preset: reelvec_data::synth::Preset) -> Result<Self> {
        let synth = reelvec_data::synth::generate(&preset.config()).dataset;
        Self::write_synthetic(synth, preset.name())
    }

    fn write_synthetic(synth: Dataset, name: &str) -> Result<Self> {
        // One folder per data set (a process may hold several: tests run in parallel).
        static SERIAL: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let serial = SERIAL.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("reelvec-bench-data-{}-{serial}", std::process::id()));
        let temp = TempDir(dir.clone());
        reelvec_data::write(&synth, Layout::MlLatest, &dir)?;
        let opts = LoadOptions { layout: Some(Layout::MlLatest), use_cache: false, generic: None };
        let dataset = reelvec_data::load(&dir, &opts)?;
        let label = format!(
            "synthetic {name} (seed 42): {} ratings, {} users, {} movies",
            dataset.ratings.len(),
            dataset.users.len(),
            dataset.movies.len()
        );
        Ok(Self { dataset, dir, label, _temp: Some(temp) })
    }
}

/// Every `*.json` report in `dir`, by file name.
pub fn load_reports(dir: &Path) -> Result<Vec<BenchReport>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    paths.sort();
    paths.iter().map(|p| BenchReport::load(p)).collect()
}

/// The speed table printed after a run (one line per case, its figures below it).
pub fn summary(report: &BenchReport) -> String {
    use std::fmt::Write as _;
    let peer = render::peer_name(&report.suite).to_lowercase();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} suite on {} ({} thread(s), {})",
        report.suite, report.data, report.threads, report.device
    );
    let _ = writeln!(
        out,
        "{:<16} {:>6} {:>12} {:>12} {:>12} {:>12} {:>9} {:>9}",
        "case",
        "unit",
        "ours wall",
        "ours CPU",
        format!("{peer} wall"),
        format!("{peer} CPU"),
        "x wall",
        "x CPU"
    );
    for c in &report.cases {
        let p = c.peer.as_ref();
        let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
            _ if c.load_refused.is_some() => "LOAD".to_string(),
            (Some(a), Some(b)) if b > 0.0 => format!("{:.1}x", a / b),
            _ => "-".to_string(),
        };
        let _ = writeln!(
            out,
            "{:<16} {:>6} {:>12} {:>12} {:>12} {:>12} {:>9} {:>9}",
            c.id,
            c.unit,
            render::seconds(Some(c.ours.wall_per_unit)),
            render::seconds(c.ours.cpu_per_unit),
            render::seconds(p.map(|t| t.wall_per_unit)),
            render::seconds(p.and_then(|t| t.cpu_per_unit)),
            ratio(p.map(|t| t.wall_per_unit), Some(c.ours.wall_per_unit)),
            ratio(p.and_then(|t| t.cpu_per_unit), c.ours.cpu_per_unit),
        );
        for q in &c.quality {
            let v = |x: Option<f64>| x.map_or("-".to_string(), render::significant);
            let _ = writeln!(out, "{:<16}   {}: ours {}  {peer} {}", "", q.name, v(q.ours), v(q.peer));
        }
        for f in &c.figures {
            let _ = writeln!(out, "{:<16}   {}: {} {}", "", f.name, render::significant(f.value), f.unit);
        }
        if let Some(why) = &c.load_refused {
            let _ = writeln!(out, "{:<16}   LOAD: {why}", "");
        }
    }
    for n in &report.notes {
        let _ = writeln!(out, "note: {n}");
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_synthetic_preset_is_written_as_files_the_scripts_read() {
        let data = BenchData::synthetic_preset(reelvec_data::synth::Preset::Tiny).unwrap();
        assert!(data.label.starts_with("synthetic tiny (seed 42): "), "{}", data.label);
        assert!(data.dir.join("ratings.csv").is_file() && data.dir.join("movies.csv").is_file());
        let again =
            reelvec_data::load(&data.dir, &LoadOptions { use_cache: false, ..LoadOptions::default() })
                .unwrap();
        assert_eq!(again.ratings.len(), data.dataset.ratings.len());
        let dir = data.dir.clone();
        drop(data);
        assert!(!dir.exists(), "the temporary files go with the data");
    }
}
