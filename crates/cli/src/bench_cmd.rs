//! `reelvec bench`: the argument parser of the benchmark runner. The suites, reports and the
//! markdown document are reelvec-bench's; this module reads the arguments, loads the data,
//! resolves the device and prints the summary.

use std::path::PathBuf;

use anyhow::{bail, Result};
use reelvec_bench::notebook::NotebookCase;
use reelvec_bench::{load_reports, render, run_suite, summary, BenchData, ScaleCase, Suite, SuiteOptions};

use crate::data_cmd::{load_data, ReadOptions};
use crate::device_arg::resolve_device;

/// `--suite` (reelvec-bench's [`Suite`], spelled for the command line).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SuiteArg {
    /// P0..P4 at their notebook configurations, beside PyTorch with --peers.
    Notebook,
    /// Synthetic ml-25m-shaped cases (MF epoch, P1 step, skip-gram, top-N).
    Scale,
    /// P2 beside Surprise's SVD at several epoch budgets (speed/accuracy frontier; --peers).
    Frontier,
    /// Ranking models beside benches/peers/ranking.py (implicit ALS, BPR, NumPy EASE).
    Ranking,
    /// Skip-gram and CBOW beside gensim's Word2Vec on a synthetic ml-25m-shaped sequence
    /// corpus (`--scale-fraction` of its users; 0.02 runs in about a minute per side).
    Corpus,
}

impl From<SuiteArg> for Suite {
    fn from(s: SuiteArg) -> Self {
        match s {
            SuiteArg::Notebook => Suite::Notebook,
            SuiteArg::Scale => Suite::Scale,
            SuiteArg::Frontier => Suite::Frontier,
            SuiteArg::Ranking => Suite::Ranking,
            SuiteArg::Corpus => Suite::Corpus,
        }
    }
}

/// `--scale-cases` (reelvec-bench's [`ScaleCase`], spelled for the command line).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ScaleCaseArg {
    /// Biased MF epoch (bandwidth figures).
    Mf,
    /// P1 full-batch step.
    P1,
    /// Skip-gram epoch with negative sampling.
    Skipgram,
    /// Top-10 of every user with beyond-accuracy figures (trains the MF case's model first).
    TopN,
    /// iALS seconds per iteration at 64, 128 and 256 factors.
    Ials,
    /// BPR samples per second (64 factors).
    Bpr,
}

impl From<ScaleCaseArg> for ScaleCase {
    fn from(c: ScaleCaseArg) -> Self {
        match c {
            ScaleCaseArg::Mf => ScaleCase::Mf,
            ScaleCaseArg::P1 => ScaleCase::P1,
            ScaleCaseArg::Skipgram => ScaleCase::Skipgram,
            ScaleCaseArg::TopN => ScaleCase::TopN,
            ScaleCaseArg::Ials => ScaleCase::Ials,
            ScaleCaseArg::Bpr => ScaleCase::Bpr,
        }
    }
}

/// `--notebook-cases` (reelvec-bench's [`NotebookCase`], spelled for the command line).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum NotebookCaseArg {
    /// P0 CBOW (one case per --p0-vocab size).
    P0,
    /// P1 co-occurrence factorisation.
    P1,
    /// P2 biased MF.
    P2,
    /// P3 sigmoid MF and its top-N call.
    P3,
    /// P4 residual MF.
    P4,
}

impl From<NotebookCaseArg> for NotebookCase {
    fn from(c: NotebookCaseArg) -> Self {
        match c {
            NotebookCaseArg::P0 => NotebookCase::P0,
            NotebookCaseArg::P1 => NotebookCase::P1,
            NotebookCaseArg::P2 => NotebookCase::P2,
            NotebookCaseArg::P3 => NotebookCase::P3,
            NotebookCaseArg::P4 => NotebookCase::P4,
        }
    }
}

/// `reelvec bench` arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Suite to run; without it only --doc is done.
    #[arg(long, value_enum)]
    pub suite: Option<SuiteArg>,
    /// Data set directory (notebook, frontier and ranking suites), or `synth:PRESET` for a
    /// synthetic data set of that shape (`synth:ml-latest-small`: 610 users, 9,742 movies);
    /// the embedded synthetic data set when absent.
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
    /// Scale and corpus suites: share of ml-25m's 162,541 users (and so of its ratings) generated.
    #[arg(long, default_value_t = 1.0)]
    pub scale_fraction: f64,
    /// Scale suite: the cases to run (default all); `top-n` also runs `mf`, which trains its
    /// model. `--scale-fraction 1 --scale-cases top-n` is the full ml-25m-shape top-N.
    #[arg(long, value_enum, value_delimiter = ',', value_name = "CASE,...")]
    pub scale_cases: Vec<ScaleCaseArg>,
    /// Notebook suite: runs of each case per side; the medians are reported.
    #[arg(long, default_value_t = reelvec_bench::notebook::DEFAULT_REPEATS,
          value_parser = crate::args::count)]
    pub repeats: usize,
    /// Notebook suite: P0's vocabulary sizes (top-N most-rated movies), one case each.
    #[arg(long, value_delimiter = ',', value_name = "N,...",
          default_values_t = reelvec_bench::notebook::DEFAULT_P0_VOCAB,
          value_parser = crate::args::count)]
    pub p0_vocab: Vec<usize>,
    /// Notebook suite: the pipelines to run (default all), e.g. `p2,p3` on a large catalogue
    /// where PyTorch's dense P1 takes minutes a step.
    #[arg(long, value_enum, value_delimiter = ',', value_name = "CASE,...")]
    pub notebook_cases: Vec<NotebookCaseArg>,
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
        bail!("nothing to do: pass --suite notebook|scale|ranking and/or --doc FILE");
    }
    let threads = match args.threads {
        Some(n) => n,
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    // The suites report progress through `tracing` (info, target reelvec_bench); show it on
    // stderr as before, and nothing else.
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(tracing_subscriber::EnvFilter::new("reelvec_bench=info"))
        .with_ansi(false)
        .with_target(false)
        .with_level(false)
        .without_time()
        .try_init();
    // Outputs are checked before any suite runs (a suite takes minutes).
    for path in args.json.iter().chain(&args.doc) {
        reelvec_outfile::check_file(path)?;
    }
    // Read by rayon when its global pool starts (nothing has used it yet).
    std::env::set_var("RAYON_NUM_THREADS", threads.to_string());
    // OpenBLAS (LAPACK fold-in, PCA, EASE) to the same count: its idle workers would otherwise
    // spin beside a 1-thread fit.
    reelvec_metrics::blas::set_threads(threads);
    if let Some(suite) = args.suite.map(Suite::from) {
        let device = resolve_device(&args.device, false)?;
        let data = match (&args.data, suite) {
            (Some(p), Suite::Notebook | Suite::Frontier | Suite::Ranking) => {
                match p.to_str().and_then(|s| s.strip_prefix("synth:")) {
                    Some(preset) => {
                        Some(BenchData::synthetic_preset(crate::pipeline::parse_preset(preset)?)?)
                    }
                    None => Some(BenchData::from_loaded(load_data(p, &args.read)?, p)),
                }
            }
            _ => None,
        };
        let opts = SuiteOptions {
            suite,
            peers: args.peers.clone(),
            threads,
            device,
            epochs: args.epochs,
            p1_steps: args.p1_steps,
            scale_fraction: args.scale_fraction,
            scale_cases: args.scale_cases.iter().map(|&c| c.into()).collect(),
            command: command_line(),
            repeats: args.repeats,
            p0_vocab: args.p0_vocab.clone(),
            notebook_cases: args.notebook_cases.iter().map(|&c| c.into()).collect(),
        };
        let report = run_suite(&opts, data)?;
        out!("{}", summary(&report));
        if let Some(path) = &args.json {
            report.save(path)?;
            eprintln!("bench: report written to {}", path.display());
        }
    }
    if let Some(doc) = &args.doc {
        let reports = load_reports(&args.results)?;
        let text = render::document(&reports);
        reelvec_outfile::write_file(doc, text.as_bytes())?;
        eprintln!(
            "bench: {} rendered from {} report(s) in {}",
            doc.display(),
            reports.len(),
            args.results.display()
        );
    }
    Ok(())
}

/// The command as typed, with the binary's path shortened to `reelvec`.
fn command_line() -> String {
    let mut words: Vec<String> = std::env::args().collect();
    if let Some(first) = words.first_mut() {
        *first = "reelvec".to_string();
    }
    words.join(" ")
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, clap::Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    #[test]
    fn suite_and_cases_keep_their_command_line_spelling() {
        let cli = Cli::try_parse_from([
            "bench",
            "--suite",
            "scale",
            "--scale-cases",
            "mf,p1,skipgram,top-n,ials,bpr",
        ])
        .unwrap();
        assert_eq!(cli.args.suite.map(Suite::from), Some(Suite::Scale));
        let cases: Vec<ScaleCase> = cli.args.scale_cases.iter().map(|&c| c.into()).collect();
        assert_eq!(
            cases,
            [
                ScaleCase::Mf,
                ScaleCase::P1,
                ScaleCase::Skipgram,
                ScaleCase::TopN,
                ScaleCase::Ials,
                ScaleCase::Bpr
            ]
        );
        let cli = Cli::try_parse_from(["bench", "--suite", "notebook"]).unwrap();
        assert_eq!(cli.args.suite.map(Suite::from), Some(Suite::Notebook));
        assert!(Cli::try_parse_from(["bench", "--suite", "other"]).is_err());
    }

    #[test]
    fn notebook_repeats_and_p0_vocabularies() {
        let cli = Cli::try_parse_from(["bench", "--suite", "notebook"]).unwrap();
        assert_eq!((cli.args.repeats, cli.args.p0_vocab), (3, vec![50, 200, 1000]));
        let cli = Cli::try_parse_from(["bench", "--repeats", "5", "--p0-vocab", "50,1000"]).unwrap();
        assert_eq!((cli.args.repeats, cli.args.p0_vocab), (5, vec![50, 1000]));
        assert!(Cli::try_parse_from(["bench", "--repeats", "0"]).is_err());
        assert!(Cli::try_parse_from(["bench", "--p0-vocab", "50,0"]).is_err());
        assert!(cli.args.notebook_cases.is_empty());
        let cli = Cli::try_parse_from(["bench", "--notebook-cases", "p2,p3"]).unwrap();
        let cases: Vec<NotebookCase> = cli.args.notebook_cases.iter().map(|&c| c.into()).collect();
        assert_eq!(cases, [NotebookCase::P2, NotebookCase::P3]);
        assert!(Cli::try_parse_from(["bench", "--notebook-cases", "p5"]).is_err());
    }
}
