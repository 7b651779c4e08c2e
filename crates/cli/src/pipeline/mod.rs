//! `reelvec pipeline`: the main job. Loads the data (the embedded synthetic Small preset when no
//! `--data` is given), trains the five pipelines P0..P4 of PROTOCOLS.md with their protocol
//! defaults, prints each one's time, figures and examples with titles, saves each run directory
//! under `OUT/runs/<p>`, and writes `OUT/report.html` / `OUT/report.md` through reelvec-report.
//!
//! With `--rankers popularity,ials,..` (or `--only rank`, every ranking model) the report gains a
//! ranking section: the ranking models on the same data under the ranking protocol.
//!
//! - [`stages`]: one function per pipeline (train, print, fill a report [`Section`]).
//! - [`rank`]: the ranking section (`reelvec compare`'s code on the pipeline's data).
//! - [`charts`]: the plots drawn from the trained models (loss curves, heatmap, maps).

pub(crate) mod charts;
mod rank;
mod stages;

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use reelvec_data::stats::Stats;
use reelvec_data::synth::{Preset, SynthTruth};
use reelvec_data::Dataset;
use reelvec_engine::Device;
use reelvec_report::{Report, Section};

use crate::data_cmd::{load_data, print_stats, ReadOptions};
use crate::device_arg::resolve_device;

/// `reelvec pipeline` arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Data set directory or ratings file; the embedded synthetic data set when absent.
    #[arg(long, value_name = "PATH")]
    pub data: Option<PathBuf>,
    /// Output directory for the run directories and the report.
    #[arg(long, value_name = "DIR", default_value = "target/reelvec-pipeline")]
    pub out: PathBuf,
    /// Compute device: cpu, cuda, cuda:N or auto (CUDA when a device answers, else the CPU).
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// No progress bars; only the figures.
    #[arg(long)]
    pub quiet: bool,
    /// Run only these pipelines, e.g. `--only p0,p2` (default: all five); `rank` selects the
    /// ranking section (every ranking model unless `--rankers` names some).
    #[arg(long, value_delimiter = ',', value_name = "P,...")]
    pub only: Vec<String>,
    /// Ranking models for the report's ranking section (popularity, itemknn, ease, ials, bpr, warp, ..):
    /// fitted on the same data, test leaderboard under the ranking protocol (temporal holdout)
    /// and a sample user's top-10 with titles, as `reelvec compare --out`.
    #[arg(long, value_delimiter = ',', value_name = "MODEL,...")]
    pub rankers: Vec<String>,
    /// Multiply every pipeline's epochs (and P1's steps) by this factor (at least 1 epoch;
    /// F above 0, at most 1000).
    #[arg(long, default_value_t = 1.0, value_name = "F", value_parser = crate::args::epochs_scale)]
    pub epochs_scale: f64,
    /// Train P0, P2, P3 and P4 with subnormal floats flushed to zero (FTZ/DAZ; `reelvec train
    /// --flush-denormals`): faster dense Adam on large catalogues, not PyTorch's arithmetic.
    #[arg(long)]
    pub flush_denormals: bool,
    /// A sequence corpus for P0 instead of ratings (`--only p0`; as `reelvec train --sequences`).
    #[command(flatten)]
    pub corpus: crate::args::CorpusArgs,
    /// Synthetic preset used when no `--data` is given (tiny, small, ml-100k, ml-latest-small).
    #[arg(long, default_value = "small", value_name = "NAME")]
    pub synth: String,
    #[command(flatten)]
    pub read: ReadOptions,
}

/// The data the pipelines run on, and where it came from.
pub(crate) struct PipelineData {
    pub dataset: Dataset,
    /// Planted truth (synthetic data only): franchises for the middle-movie examples.
    pub truth: Option<SynthTruth>,
    /// What `run.json` records as the data path: the real path, or `synth:<preset>`.
    pub data_path: PathBuf,
    /// One line for the report.
    pub summary: String,
    /// The corpus's sequences when P0 trains on `--sequences` (the dataset's movies are then
    /// its tokens).
    pub sequences: Option<Vec<Vec<u32>>>,
}

/// Settings every stage shares.
pub(crate) struct StageContext<'a> {
    pub data: &'a PipelineData,
    pub runs_dir: PathBuf,
    pub quiet: bool,
    pub epochs_scale: f64,
    /// `--flush-denormals`: the trainer's `flush_denormals` for P0, P2, P3, P4.
    pub flush_denormals: bool,
    /// Where the pipelines train.
    pub device: Device,
}

impl StageContext<'_> {
    /// `epochs` scaled by `--epochs-scale`, at least 1.
    pub fn scale(&self, epochs: usize) -> usize {
        ((epochs as f64 * self.epochs_scale).round() as usize).max(1)
    }

    /// True when the data is the real MovieLens (a path), false on synthetic data.
    pub fn is_synthetic(&self) -> bool {
        self.data.truth.is_some()
    }
}

/// What a stage hands back: its report section and its line of the summary table.
pub(crate) struct StageResult {
    pub section: Section,
    pub summary: SummaryRow,
}

/// One line of the final summary table.
pub(crate) struct SummaryRow {
    pub pipeline: String,
    pub seconds: f64,
    pub figure: String,
    pub notebook: String,
}

/// Parses a synthetic preset name.
pub(crate) fn parse_preset(name: &str) -> Result<Preset> {
    let norm = name.trim().to_ascii_lowercase();
    Preset::ALL.into_iter().find(|p| p.name() == norm || p.name().replace('-', "") == norm).with_context(
        || {
            format!(
                "unknown synthetic preset `{name}` (tiny, small, ml-100k, ml-latest-small, ml-1m, ml-25m)"
            )
        },
    )
}

/// Loads `--data`, or generates the synthetic preset (saying so).
fn pipeline_data(args: &Args) -> Result<PipelineData> {
    match &args.data {
        Some(path) => {
            let dataset = load_data(path, &args.read)?;
            let summary = summary_line(&dataset, &path.display().to_string());
            Ok(PipelineData { dataset, truth: None, data_path: path.clone(), summary, sequences: None })
        }
        None if args.corpus.sequences.is_some() => {
            let path = args.corpus.sequences.clone().unwrap_or_default();
            let options = args.corpus.options();
            let corpus = reelvec_data::corpus::read_corpus(&path, &options)?;
            let summary = format!(
                "{} sequences, {} tokens in the vocabulary ({} occurrences dropped), from {}.",
                corpus.sequences.len(),
                corpus.tokens.len(),
                corpus.dropped,
                path.display()
            );
            Ok(PipelineData {
                dataset: corpus.vocabulary_dataset()?,
                truth: None,
                data_path: path,
                summary,
                sequences: Some(corpus.sequences),
            })
        }
        None => {
            let preset = parse_preset(&args.synth)?;
            eprintln!(
                "no --data given: using the embedded synthetic data set (preset {}, seed 42)",
                preset.name()
            );
            let synth = reelvec_data::synth::generate(&preset.config());
            let name = format!("synthetic preset {} (seed 42)", preset.name());
            let summary = summary_line(&synth.dataset, &name);
            Ok(PipelineData {
                dataset: synth.dataset,
                truth: Some(synth.truth),
                data_path: PathBuf::from(format!("synth:{}", preset.name())),
                summary,
                sequences: None,
            })
        }
    }
}

fn summary_line(ds: &Dataset, source: &str) -> String {
    format!(
        "{} ratings by {} users of {} movies, from {source}.",
        ds.ratings.len(),
        ds.users.len(),
        ds.movies.len()
    )
}

/// The pipelines to run, in protocol order, and whether `rank` (the ranking section) was named.
fn selected(only: &[String]) -> Result<(Vec<&'static str>, bool)> {
    const ALL: [&str; 5] = ["p0", "p1", "p2", "p3", "p4"];
    if only.is_empty() {
        return Ok((ALL.to_vec(), false));
    }
    let wanted: Vec<String> = only.iter().map(|s| s.trim().to_ascii_lowercase()).collect();
    if let Some(bad) = wanted.iter().find(|w| !ALL.contains(&w.as_str()) && w.as_str() != "rank") {
        bail!("--only: unknown pipeline `{bad}` (p0, p1, p2, p3, p4, rank)");
    }
    let rank = wanted.iter().any(|w| w == "rank");
    Ok((ALL.into_iter().filter(|p| wanted.iter().any(|w| w == p)).collect(), rank))
}

/// Runs the pipeline.
pub fn run(args: Args) -> Result<()> {
    let device = resolve_device(&args.device, false)?;
    let (which, rank_named) = selected(&args.only)?;
    if args.corpus.sequences.is_some() && (which != ["p0"] || rank_named || !args.rankers.is_empty()) {
        bail!("--sequences trains P0 only: add --only p0 (and no ranking models)");
    }
    let rankers = match (&args.rankers[..], rank_named) {
        ([], false) => Vec::new(),
        ([], true) => {
            rank::parse_rankers(&rank::DEFAULT_RANKERS.split(',').map(String::from).collect::<Vec<_>>())?
        }
        (names, _) => rank::parse_rankers(names)?,
    };
    let runs_dir = args.out.join("runs");
    check_outputs(&args.out, &runs_dir, &which)?;
    let started = Instant::now();
    let data = pipeline_data(&args)?;
    outln!("== data: {}", data.summary);
    if !args.quiet && data.sequences.is_none() {
        print_stats(&Stats::compute(&data.dataset));
    }
    std::fs::create_dir_all(&runs_dir).with_context(|| format!("cannot create {}", runs_dir.display()))?;
    let ctx = StageContext {
        data: &data,
        runs_dir,
        quiet: args.quiet,
        epochs_scale: args.epochs_scale,
        flush_denormals: args.flush_denormals,
        device,
    };

    let mut report =
        Report::new("reelvec pipeline report", format!("{} — device {}", data.summary, device.describe()));
    let mut rows = Vec::new();
    for p in which {
        let result = match p {
            "p0" => stages::p0(&ctx),
            "p1" => stages::p1(&ctx),
            "p2" => stages::p2(&ctx),
            "p3" => stages::p3(&ctx),
            _ => stages::p4(&ctx),
        }
        .with_context(|| format!("pipeline {}", p.to_uppercase()))?;
        report.sections.push(result.section);
        rows.push(result.summary);
    }
    if !rankers.is_empty() {
        let (sections, summary) = rank::rank(&ctx, &rankers).context("ranking models")?;
        report.sections.extend(sections);
        rows.push(summary);
    }
    let written = report.write_to_dir(&args.out)?;
    print_summary(&rows);
    outln!(
        "report: {} and {} ({} plots) — total {:.1}s",
        written.html.display(),
        written.markdown.display(),
        report.plot_count(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Checks every output before any data is loaded or trained: the report's folder and files and
/// each selected pipeline's run directory.
fn check_outputs(out: &Path, runs_dir: &Path, which: &[&str]) -> Result<()> {
    reelvec_outfile::check_dir(out)?;
    for file in ["report.html", "report.md", "report.json"] {
        reelvec_outfile::check_file(&out.join(file))?;
    }
    reelvec_outfile::check_dir(runs_dir)?;
    for p in which {
        reelvec_models::checkpoint::check_run_dir(&runs_dir.join(p))?;
    }
    Ok(())
}

fn print_summary(rows: &[SummaryRow]) {
    outln!("\n== summary");
    let w = rows.iter().map(|r| r.figure.len()).max().unwrap_or(6).max(6);
    outln!("{:<28} {:>8}  {:<w$}  notebook", "pipeline", "time", "ours");
    for r in rows {
        outln!("{:<28} {:>7.1}s  {:<w$}  {}", r.pipeline, r.seconds, r.figure, r.notebook);
    }
}

/// The run directory of pipeline `p`.
pub(crate) fn run_dir(ctx: &StageContext<'_>, p: &str) -> PathBuf {
    ctx.runs_dir.join(p)
}

/// Prints a figure and records it in the section (with the notebook's figure when it has one).
pub(crate) fn figure(section: &mut Section, name: &str, ours: String, notebook: Option<&str>) {
    match notebook {
        Some(n) => outln!("  {name:<34} {ours:<14} (notebook: {n})"),
        None => outln!("  {name:<34} {ours}"),
    }
    section.push_figure(name, ours, notebook);
}

/// Prints an example and records it in the section.
pub(crate) fn example(section: &mut Section, text: String) {
    for line in text.lines() {
        outln!("  {line}");
    }
    section.push_example(text);
}

/// `path` relative display for messages.
pub(crate) fn shown(path: &Path) -> String {
    path.display().to_string()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn only_keeps_protocol_order_and_rejects_unknown() {
        assert_eq!(selected(&["p3".into(), "P0".into()]).unwrap(), (vec!["p0", "p3"], false));
        assert_eq!(selected(&[]).unwrap().0.len(), 5);
        assert_eq!(selected(&["rank".into()]).unwrap(), (vec![], true));
        assert!(selected(&["p9".into()]).unwrap_err().to_string().contains("p9"));
    }

    #[test]
    fn presets_parse_with_or_without_dash() {
        assert_eq!(parse_preset("tiny").unwrap(), Preset::Tiny);
        assert_eq!(parse_preset("ML100K").unwrap(), Preset::Ml100k);
        assert!(parse_preset("huge").is_err());
    }
}
