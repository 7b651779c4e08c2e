//! `reelvec evaluate --run RUN [--data PATH] [--json]` (arguments, data and printing; the figures
//! are reelvec-models' `evaluate::evaluate_run`): the metrics that fit a run's model kind,
//! each with its time, on the split rebuilt from the run (its config's seed and train fraction,
//! the data from `--data` or the path recorded in `run.json`, `synth:<preset>` for the
//! synthetic sets `reelvec pipeline` uses; the data's fingerprint must match the run's).
//!
//! - Rating models (mf, sigmoid-mf, residual-mf): RMSE / MAE in stars on the validation rows
//!   (the training rows when the run has no validation split, as P4's protocol), top-10 for every
//!   user (training movies excluded) with diversity, the notebook's novelty, self-information
//!   novelty, catalogue coverage and Gini; with a validation split, also the ranking protocol's
//!   figures (as for ranking models) with the validation rows as the relevant movies.
//! - Item2vec (cbow, skipgram): validation cross-entropy beside `ln V`, accuracy@1, hit@10, and
//!   leave-last-out next-item HR@10 / NDCG@10 of the validation sequences over the full
//!   vocabulary (earlier movies of the sequence excluded).
//! - Ranking models (popularity, itemknn, ease, ials, bpr, warp): reelvec-metrics' ranking protocol
//!   (Recall / NDCG / HR @10 and @20, MRR, coverage, Gini, novelty bits, genre diversity) on
//!   the ratings the run was not trained on (`train --holdout SPLIT`), training movies excluded.
//! - Co-occurrence (cooc): the cost of the saved factors, the rank-k eigen reference and their
//!   ratio, and the most-rated movie's neighbours.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use reelvec_data::Dataset;
use reelvec_models::checkpoint;
use reelvec_models::evaluate::{check_fingerprint, evaluate_run, run_config, Figures};
use reelvec_models::pipelines::p0_cbow;
use reelvec_models::{ModelKind, RunInfo};

use crate::data_cmd::{load_data, ReadOptions};
use crate::device_arg::resolve_device;

/// `reelvec evaluate` arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Run directory written by `reelvec train` or `reelvec pipeline`.
    #[arg(long, value_name = "DIR")]
    pub run: PathBuf,
    /// The data set the run was trained on (default: the path recorded in run.json).
    #[arg(long, value_name = "PATH")]
    pub data: Option<PathBuf>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    /// Length of the top-N lists (rating models; at least 1, at most the run's movies).
    #[arg(short, default_value_t = 10, value_parser = crate::args::count)]
    pub k: usize,
    /// Compute device for the top-N scoring: cpu, cuda, cuda:N or auto.
    #[arg(long, default_value = "auto")]
    pub device: String,
    #[command(flatten)]
    pub read: ReadOptions,
}

/// Loads the data a run was trained on: `--data`, else `run.json`'s path (`synth:<preset>` is
/// regenerated).
pub fn run_data(info: &RunInfo, run_dir: &Path, data: Option<&Path>, read: &ReadOptions) -> Result<Dataset> {
    let path = match data {
        Some(p) => p.to_path_buf(),
        None => info.resolve_data_path(run_dir)?.context("the run records no data path; pass --data")?,
    };
    if let Some(preset) = path.to_str().and_then(|p| p.strip_prefix("synth:")) {
        let preset = crate::pipeline::parse_preset(preset)?;
        return Ok(reelvec_data::synth::generate(&preset.config()).dataset);
    }
    load_data(&path, read)
}

/// Checks that `ds` is the data set the run was trained on (for item2vec runs, after P0's
/// filters, as the run recorded it).
pub(crate) fn check_run_data(info: &RunInfo, ds: &Dataset) -> Result<()> {
    match info.model_kind {
        ModelKind::Cbow | ModelKind::Skipgram => {
            let (data, _) = p0_cbow::prepare(ds, &run_config::<p0_cbow::Config>(info)?)?;
            Ok(check_fingerprint(info, &data, "the data set after P0's filters")?)
        }
        _ => Ok(check_fingerprint(info, ds, "the data set")?),
    }
}

/// Runs `reelvec evaluate`.
pub fn run(mut args: Args) -> Result<()> {
    let info = checkpoint::load_run_info(&args.run)
        .with_context(|| format!("cannot read run {}", args.run.display()))?;
    args.k = crate::args::clamp_count("-k", args.k, info.movie_raw_ids.len(), "movies of the run");
    let started = Instant::now();
    let ds = run_data(&info, &args.run, args.data.as_deref(), &args.read)?;
    let mut figures = Figures::default();
    figures.time("load data", started);
    // Only rating runs list on the device: resolve it (and say so) for them alone.
    let device = match info.model_kind {
        ModelKind::Mf | ModelKind::SigmoidMf | ModelKind::ResidualMf => {
            resolve_device(&args.device, args.json)?
        }
        _ => reelvec_engine::Device::Cpu,
    };
    evaluate_run(&args.run, &info, &ds, args.k, device, &mut figures)?;
    if args.json {
        let out = figures.to_json(&args.run.display().to_string(), info.model_kind);
        outln!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        outln!("{} run {} ({})", info.model_kind, args.run.display(), info.model_kind.protocol());
        for line in &figures.lines {
            outln!("{line}");
        }
    }
    Ok(())
}
