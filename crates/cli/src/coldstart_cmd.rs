//! `reelvec coldstart --data PATH [--model mf] [--fraction 0.1] [--seed S] [--json FILE]`:
//! arguments and printing of reelvec-models' `coldstart::cold_start` (a seeded fraction of the
//! movies held out entirely; RMSE / MAE on their ratings for the global mean, the genre mean,
//! the MF model without and with item side features; for `cbow` / `skipgram`, the share of a
//! held-out movie's nearest trained neighbours, by its vector from features alone, that share a
//! genre with it, beside random trained movies). A command of its own rather than a flag
//! of `evaluate` (which reads a saved run) or `compare` (the ranking protocol): it trains two
//! models on its own split and saves no run.

use std::path::PathBuf;

use anyhow::{Context, Result};
use reelvec_models::coldstart::{cold_start, cold_start_item2vec, ColdStartReport, Item2VecColdStartReport};
use reelvec_models::train::{self, ConfigSource};
use reelvec_models::ModelKind;

use crate::data_cmd::{load_data, ReadOptions};
use crate::device_arg::resolve_device;

/// `reelvec coldstart` arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Data set (a MovieLens folder or ratings file).
    #[arg(long, value_name = "PATH")]
    pub data: PathBuf,
    /// Model: mf, sigmoid-mf, residual-mf, or item2vec's cbow / skipgram.
    #[arg(long, default_value = "mf")]
    pub model: String,
    /// Fraction of the movies held out with all their ratings (0 < F < 1).
    #[arg(long, default_value_t = 0.1)]
    pub fraction: f64,
    /// Seed of the movie holdout and of both fits.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// A named preset instead of the notebook defaults (as `reelvec train`).
    #[arg(long, value_name = "NAME")]
    pub preset: Option<String>,
    /// A TOML config file merged over the preset.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// `key=value` overrides, as `reelvec train` (`model.item_features=["genres"]` picks the
    /// features; genres and decade when none are named).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Compute device for training: cpu, cuda or auto (both fits, features included).
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Also write the report as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// No progress bars.
    #[arg(long)]
    pub quiet: bool,
    #[command(flatten)]
    pub read: ReadOptions,
}

/// Runs `reelvec coldstart`.
pub fn run(args: Args) -> Result<()> {
    let kind: ModelKind = args.model.parse()?;
    let src = ConfigSource {
        preset: args.preset.as_deref(),
        file: args.config.as_deref(),
        overrides: &args.set,
        seed: Some(args.seed),
        quiet: true,
        flush_denormals: false,
    };
    let cfg = train::resolve(kind, &src)?;
    if let Some(path) = &args.json {
        reelvec_outfile::check_file(path).with_context(|| format!("output {}", path.display()))?;
    }
    let device = resolve_device(&args.device, args.quiet)?;
    let ds = load_data(&args.data, &args.read)?;
    if let train::Resolved::Item2vec(c) = &cfg {
        let report = cold_start_item2vec(&ds, c, args.fraction, args.seed, device)?;
        if let Some(path) = &args.json {
            let text = serde_json::to_string_pretty(&report)?;
            reelvec_outfile::write_file(path, format!("{text}\n").as_bytes())?;
        }
        print_item2vec_report(&report);
        return Ok(());
    }
    let report = cold_start(&ds, &cfg, args.fraction, args.seed, device)?;
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&report)?;
        reelvec_outfile::write_file(path, format!("{text}\n").as_bytes())?;
    }
    print_report(&report);
    Ok(())
}

fn print_report(r: &ColdStartReport) {
    outln!(
        "cold start: {} of the movies held out ({} movies, {} ratings; {} training ratings), model {}, seed {}",
        r.fraction,
        r.held_out_movies,
        r.test_ratings,
        r.train_ratings,
        r.model,
        r.seed
    );
    outln!("features: {} ({} features)", r.item_features.join(", "), r.n_features);
    outln!("{:<26} {:>8} {:>8}", "predictor", "RMSE", "MAE");
    for row in &r.rows {
        outln!("{:<26} {:>8.4} {:>8.4}", row.predictor, row.rmse, row.mae);
    }
}

fn print_item2vec_report(r: &Item2VecColdStartReport) {
    outln!(
        "cold start: {} of the movies held out ({} movies; {} trained movies), model {}, seed {}",
        r.fraction,
        r.held_out_movies,
        r.trained_movies,
        r.model,
        r.seed
    );
    outln!(
        "features: {} ({} features); held-out vectors from features alone",
        r.item_features.join(", "),
        r.n_features
    );
    outln!(
        "{:<36} {:>8} {:>24}",
        "neighbours",
        "queries",
        format!("share with a genre (top {})", r.neighbours)
    );
    for row in &r.rows {
        outln!("{:<36} {:>8} {:>24.4}", row.neighbours, row.queries, row.share_same_genre);
    }
}
