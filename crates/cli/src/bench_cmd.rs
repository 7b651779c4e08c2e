//! `reelvec bench`: the benchmark runner, in the release binary so it runs where there is no
//! cargo. `--suite notebook` times P0..P4 at their notebook configurations (and, with
//! `--peers benches/peers`, the PyTorch reference scripts on the same data in the same run);
//! `--suite scale` runs the synthetic ml-25m-shaped cases. A run writes a JSON report (`--json`);
//! `--doc FILE` regenerates the markdown document from every report in `--results DIR`.
//!
//! One module per part: [`notebook`] and [`scale`] (the suites), [`peers`] (the PyTorch side),
//! [`report`] (shared report types and clocks), [`render`] (the markdown).

mod notebook;
mod peers;
mod render;
mod report;
mod scale;
mod scale_gpu;

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use reelvec_data::{Dataset, Layout, LoadOptions};

use crate::data_cmd::{load_data, ReadOptions};
use crate::device_arg::resolve_device;
use report::{load_average, utc_now, BenchReport, Machine, SCHEMA};

/// The suites.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Suite {
    /// P0..P4 at their notebook configurations, beside PyTorch with --peers.
    Notebook,
    /// Synthetic ml-25m-shaped cases (MF epoch, P1 step, skip-gram, top-N).
    Scale,
}

/// `reelvec bench` arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Suite to run; without it only --doc is done.
    #[arg(long, value_enum)]
    pub suite: Option<Suite>,
    /// Data set directory (notebook suite); the embedded synthetic data set when absent.
    #[arg(long, value_name = "PATH")]
    pub data: Option<PathBuf>,
    /// Directory of the PyTorch reference scripts (benches/peers); skipped when torch is missing.
    #[arg(long, value_name = "DIR")]
    pub peers: Option<PathBuf>,
    /// Worker threads on both sides (default: all cores; at most 4 x the cores, at least 16).
    #[arg(long, value_parser = crate::args::threads)]
    pub threads: Option<usize>,
    /// Compute device: cpu, cuda, cuda:N or auto.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Write the report here.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Epochs of every epoch-based case (default: each protocol's; scale: 1).
    #[arg(long)]
    pub epochs: Option<usize>,
    /// P1 Adam steps (notebook: each side's protocol, 1500 ours and 500 the script's, unless given; scale: 3).
    #[arg(long)]
    pub p1_steps: Option<usize>,
    /// Scale suite: share of ml-25m's 162,541 users (and so of its ratings) generated.
    #[arg(long, default_value_t = 1.0)]
    pub scale_fraction: f64,
    /// Scale suite: the cases to run (default all); `top-n` also runs `mf`, which trains its
    /// model. `--scale-fraction 1 --scale-cases top-n` is the full ml-25m-shape top-N.
    #[arg(long, value_enum, value_delimiter = ',', value_name = "CASE,...")]
    pub scale_cases: Vec<scale::ScaleCase>,
    /// Regenerate this markdown file from the reports in --results (after the run, if any).
    #[arg(long, value_name = "FILE")]
    pub doc: Option<PathBuf>,
    /// Directory of the JSON reports --doc renders.
    #[arg(long, value_name = "DIR", default_value = "benches/results")]
    pub results: PathBuf,
    #[command(flatten)]
    pub read: ReadOptions,
}

/// Runs `reelvec bench`.
pub fn run(args: Args) -> Result<()> {
    if args.suite.is_none() && args.doc.is_none() {
        bail!("nothing to do: pass --suite notebook|scale and/or --doc FILE");
    }
    let threads = match args.threads {
        Some(n) => n,
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    // Read by rayon when its global pool starts (nothing has used it yet).
    std::env::set_var("RAYON_NUM_THREADS", threads.to_string());
    if let Some(suite) = args.suite {
        let report = run_suite(&args, suite, threads)?;
        print_summary(&report);
        if let Some(path) = &args.json {
            report.save(path)?;
            eprintln!("bench: report written to {}", path.display());
        }
    }
    if let Some(doc) = &args.doc {
        let reports = load_reports(&args.results)?;
        let text = render::document(&reports);
        std::fs::write(doc, text).with_context(|| format!("cannot write {}", doc.display()))?;
        eprintln!(
            "bench: {} rendered from {} report(s) in {}",
            doc.display(),
            reports.len(),
            args.results.display()
        );
    }
    Ok(())
}

fn run_suite(args: &Args, suite: Suite, threads: usize) -> Result<BenchReport> {
    let device = resolve_device(&args.device, false)?;
    let date_utc = utc_now();
    let mut machine = Machine::detect();
    let mut notes = Vec::new();
    let (data, peers_status, cases) = match suite {
        Suite::Notebook => {
            let source = BenchData::open(args.data.as_deref(), &args.read)?;
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
                        eprintln!("bench: PyTorch references skipped: {e:#}");
                        notes.push(format!("PyTorch references skipped: {e:#}"));
                        None
                    }
                },
                None => None,
            };
            let status = match &peers {
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
            let plan = notebook::NotebookPlan {
                dataset: &source.dataset,
                data_dir: &source.dir,
                epochs: args.epochs,
                p1_steps: args.p1_steps,
                peers: peers.as_ref(),
                device,
            };
            let cases = notebook::run(&plan, &mut notes);
            let _ = std::fs::remove_dir_all(&work);
            (source.label.clone(), status, cases?)
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
    machine.load_average[1] = load_average();
    if machine.load_average.iter().flatten().any(|&l| l > machine.cores as f64) {
        notes.push(format!(
            "the machine was shared: 1-min load average above its {} cores during the run; compare CPU times",
            machine.cores
        ));
    }
    Ok(BenchReport {
        schema: SCHEMA,
        suite: match suite {
            Suite::Notebook => "notebook",
            Suite::Scale => "scale",
        }
        .to_string(),
        date_utc,
        command: command_line(),
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

/// The command as typed, with the binary's path shortened to `reelvec`.
fn command_line() -> String {
    let mut words: Vec<String> = std::env::args().collect();
    if let Some(first) = words.first_mut() {
        *first = "reelvec".to_string();
    }
    words.join(" ")
}

/// The data of the notebook suite: in memory for us, as files for the scripts.
struct BenchData {
    dataset: Dataset,
    dir: PathBuf,
    label: String,
    _temp: Option<TempDir>,
}

/// A directory removed on drop.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl BenchData {
    /// `path` (its directory for the scripts), or the embedded synthetic data set written as
    /// ml-latest CSV files to a temporary directory and read back, so both sides read the same
    /// files in the same row order.
    fn open(path: Option<&Path>, read: &ReadOptions) -> Result<Self> {
        match path {
            Some(p) => {
                let dataset = load_data(p, read)?;
                let dir = if p.is_dir() {
                    p.to_path_buf()
                } else {
                    p.parent().unwrap_or(Path::new(".")).to_path_buf()
                };
                let name = p
                    .file_name()
                    .map_or_else(|| p.display().to_string(), |n| n.to_string_lossy().to_string());
                let label = format!(
                    "{name}: {} ratings, {} users, {} movies",
                    dataset.ratings.len(),
                    dataset.users.len(),
                    dataset.movies.len()
                );
                Ok(Self { dataset, dir, label, _temp: None })
            }
            None => {
                let dir = std::env::temp_dir().join(format!("reelvec-bench-data-{}", std::process::id()));
                let temp = TempDir(dir.clone());
                let synth = reelvec_data::synth::small().dataset;
                reelvec_data::write(&synth, Layout::MlLatest, &dir)?;
                let opts = LoadOptions { layout: Some(Layout::MlLatest), use_cache: false, generic: None };
                let dataset = reelvec_data::load(&dir, &opts)?;
                let label = format!(
                    "synthetic small (seed 42): {} ratings, {} users, {} movies",
                    dataset.ratings.len(),
                    dataset.users.len(),
                    dataset.movies.len()
                );
                Ok(Self { dataset, dir, label, _temp: Some(temp) })
            }
        }
    }
}

/// Every `*.json` report in `dir`, by file name.
fn load_reports(dir: &Path) -> Result<Vec<BenchReport>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    paths.sort();
    paths.iter().map(|p| BenchReport::load(p)).collect()
}

/// The speed table on stdout.
fn print_summary(report: &BenchReport) {
    outln!("{} suite on {} ({} thread(s), {})", report.suite, report.data, report.threads, report.device);
    outln!(
        "{:<16} {:>6} {:>12} {:>12} {:>12} {:>12} {:>9} {:>9}",
        "case",
        "unit",
        "ours wall",
        "ours CPU",
        "torch wall",
        "torch CPU",
        "x wall",
        "x CPU"
    );
    for c in &report.cases {
        let p = c.peer.as_ref();
        let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) if b > 0.0 => format!("{:.1}x", a / b),
            _ => "-".to_string(),
        };
        outln!(
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
            outln!("{:<16}   {}: ours {}  torch {}", "", q.name, v(q.ours), v(q.peer));
        }
        for f in &c.figures {
            outln!("{:<16}   {}: {} {}", "", f.name, render::significant(f.value), f.unit);
        }
    }
    for n in &report.notes {
        outln!("note: {n}");
    }
}
