//! `reelvec train`: resolves a model's config (preset, TOML file, `--set` overrides, `--seed`),
//! loads the data, runs the model's pipeline from reelvec-models, prints the protocol's figures
//! and writes the run directory (`model.safetensors`, `run.json`, `rated.safetensors`,
//! `manifest.json`) as one unit. `--out` is checked before the data is loaded, and the run is
//! saved before anything is printed, so a closed pipe (`| head`) never loses it.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use reelvec_data::corpus::read_corpus;
use reelvec_data::Dataset;
use reelvec_engine::{Device, History};
use reelvec_models::config;
use reelvec_models::pipelines::{self, p0_cbow, p1_cooc, p2_mf, p3_recommender, p4_residual, MovieScore};
use reelvec_models::train::{self, ConfigSource, Resolved};
use reelvec_models::{checkpoint, ModelKind, RunInfo};
use serde::Serialize;

use crate::data_cmd::{load_data, ReadOptions};
use crate::device_arg::resolve_device;

/// `reelvec train` arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Model: cbow, skipgram, cooc, mf, sigmoid-mf, residual-mf, or a ranking model (popularity,
    /// itemknn, ease, ials, bpr, warp: trained on every rating as an interaction, parameters by --set).
    #[arg(long, value_name = "KIND")]
    pub model: String,
    /// Data set directory or ratings file.
    #[arg(long, value_name = "PATH", required_unless_present = "sequences")]
    pub data: Option<PathBuf>,
    #[command(flatten)]
    pub corpus: crate::args::CorpusArgs,
    /// Run directory to write.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// TOML config merged over the model's defaults.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Start from a named preset instead of the notebook defaults (mf: `tuned`, `fast`). Except under
    /// `--preset notebook`, the MF models (mf, sigmoid-mf, residual-mf) train with
    /// `optimizer.kind = "auto"`: dense PyTorch Adam unless a step touches at most 1/64 of the
    /// smallest table, then lazy Adam; the choice and its reason are printed and saved.
    #[arg(long, value_name = "NAME")]
    pub preset: Option<String>,
    /// Override one config key, e.g. `--set train.epochs=5` (repeatable, applied in order).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Seed of the split, the initialisation and the shuffles (overrides the config).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Compute device: cpu, cuda, cuda:N or auto.
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// Worker threads (default: all cores; at most 4 x the cores, at least 16).
    #[arg(long, value_parser = crate::args::threads)]
    pub threads: Option<usize>,
    /// No progress bar, fewer lines.
    #[arg(long)]
    pub quiet: bool,
    /// Train with subnormal floats flushed to zero (FTZ/DAZ on the fit's threads; the config
    /// key `train.flush_denormals`). Dense Adam on a large, sparsely rated catalogue runs several
    /// times faster; Adam's moments and weight-decayed rows that no rating touches for a long
    /// time differ from PyTorch's IEEE arithmetic (docs/ARCHITECTURE.md, "Subnormals"). Not
    /// for cooc, whose fit has no such rows.
    #[arg(long)]
    pub flush_denormals: bool,
    /// Print the resolved config as TOML and exit without training.
    #[arg(long)]
    pub print_config: bool,
    /// Ranking models only: hold out the test part of this ranking split (temporal-holdout,
    /// leave-last-out or random-holdout:F, seeded by `--seed`) and train on the rest, so
    /// `reelvec evaluate --run` can rank it on the held-out movies.
    #[arg(long, value_name = "SPLIT", value_parser = crate::compare_cmd::parse_split)]
    pub holdout: Option<reelvec_data::ranking_split::RankingSplit>,
    #[command(flatten)]
    pub read: ReadOptions,
}

/// Runs `reelvec train`.
pub fn run(args: Args) -> Result<()> {
    let kind: ModelKind = args.model.parse()?;
    if let Some(n) = args.threads {
        // Read by rayon when its global pool starts (nothing has used it yet).
        std::env::set_var("RAYON_NUM_THREADS", n.to_string());
        // OpenBLAS (LAPACK fold-in, PCA, EASE) to the same count: its idle workers would otherwise
        // spin beside a 1-thread fit.
        reelvec_metrics::blas::set_threads(n);
    }
    if args.holdout.is_some() && kind.ranker().is_none() {
        bail!("--holdout is for the ranking models (popularity, itemknn, ease, ials, bpr, warp); {kind} runs split by their config");
    }
    if let Some(ranker) = kind.ranker() {
        // Ranking models resolve their own device (CPU unless asked).
        return crate::ranker_cmd::train(&args, ranker);
    }
    if args.corpus.sequences.is_some() && !matches!(kind, ModelKind::Cbow | ModelKind::Skipgram) {
        anyhow::bail!("--sequences trains cbow or skipgram only (not --model {kind})");
    }
    let device = resolve_device(&args.device, args.quiet)?;
    // reelvec-models resolves (preset, file, overrides, seed; the MF models' `auto` optimizer).
    let src = ConfigSource {
        preset: args.preset.as_deref(),
        file: args.config.as_deref(),
        overrides: &args.set,
        seed: args.seed,
        quiet: args.quiet,
        flush_denormals: args.flush_denormals,
    };
    match train::resolve(kind, &src)? {
        Resolved::Mf(cfg) => train_mf(&args, cfg, device),
        Resolved::SigmoidMf(cfg) => train_sigmoid(&args, cfg, device),
        Resolved::ResidualMf(cfg) => train_residual(&args, cfg, device),
        Resolved::Item2vec(cfg) => train_item2vec(&args, cfg, device),
        Resolved::Cooc(cfg) => train_cooc(&args, cfg, device),
    }
}

/// Prints the config and returns true when only that was asked.
fn printed_config<C: Serialize>(args: &Args, cfg: &C) -> Result<bool> {
    if args.print_config {
        out!("{}", config::to_toml_string(cfg)?);
    }
    Ok(args.print_config)
}

/// Checks the run directory (before the data is loaded, so a bad `--out` costs no training),
/// then loads the data.
/// The `--data` path (only cbow / skipgram take `--sequences` instead).
pub(crate) fn data_path(args: &Args) -> Result<&Path> {
    args.data.as_deref().with_context(|| {
        format!("--model {} needs --data (--sequences is for cbow and skipgram)", args.model)
    })
}

fn load(args: &Args) -> Result<Dataset> {
    checkpoint::check_run_dir(&args.out)?;
    let data = data_path(args)?;
    let ds = load_data(data, &args.read)?;
    if !args.quiet {
        eprintln!(
            "data: {} ratings, {} users, {} movies from {}",
            ds.ratings.len(),
            ds.users.len(),
            ds.movies.len(),
            data.display()
        );
    }
    Ok(ds)
}

fn print_history(h: &History, last_batch: bool) {
    if !h.loss_name.is_empty() {
        outln!("loss: {}", h.loss_name);
    }
    if !h.optimizer.is_empty() {
        match &h.optimizer_note {
            Some(note) => outln!("optimizer: {} ({note})", h.optimizer),
            None => outln!("optimizer: {}", h.optimizer),
        }
    }
    for e in &h.epochs {
        let mark = if h.best_epoch == Some(e.epoch) { " *" } else { "" };
        match (last_batch, e.val_loss) {
            (true, _) => {
                outln!("epoch {:>3}  last batch loss {:.4}  ({:.2}s)", e.epoch, e.last_batch_loss, e.seconds)
            }
            (false, Some(v)) => {
                outln!(
                    "epoch {:>3}  train {:.4}  val {:.4}  ({:.2}s){mark}",
                    e.epoch,
                    e.train_loss,
                    v,
                    e.seconds
                )
            }
            (false, None) => outln!("epoch {:>3}  train {:.4}  ({:.2}s)", e.epoch, e.train_loss, e.seconds),
        }
    }
}

fn print_movies(label: &str, list: &[MovieScore]) {
    outln!("{label}:");
    for m in list {
        outln!("  {:>8.4}  {:>7}  {}", m.score, m.raw_id, m.title);
    }
}

fn opt(x: Option<f64>) -> String {
    x.map_or("-".to_string(), |v| format!("{v:.4}"))
}

fn info_for<C: Serialize>(
    ds: &Dataset,
    kind: ModelKind,
    cfg: &C,
    seed: u64,
    path: &Path,
    history: &History,
    metrics: serde_json::Value,
) -> RunInfo {
    let mut info = pipelines::run_info_for(ds, kind, config::to_json(cfg), seed, Some(path));
    info.history = serde_json::to_value(history).unwrap_or_default();
    info.metrics = metrics;
    info
}

fn saved(out: &Path) {
    outln!("run written to {}", out.display());
}

fn train_mf(args: &Args, cfg: p2_mf::Config, device: Device) -> Result<()> {
    if printed_config(args, &cfg)? {
        return Ok(());
    }
    let ds = load(args)?;
    let o = p2_mf::run_on(&ds, &cfg, device)?;
    let info = info_for(&ds, ModelKind::Mf, &cfg, cfg.seed, data_path(args)?, &o.history, o.metrics_json());
    o.model.save(&args.out, &info, Some(&pipelines::rated_rows(&ds, &o.train_rows)?))?;
    print_history(&o.history, false);
    outln!(
        "best epoch {}  best val MSE {}  best val RMSE {} stars  (returned model: RMSE {}, MAE {})  [{:.1}s]",
        o.history.best_epoch.map_or("-".into(), |e| e.to_string()),
        opt(o.best_val_mse),
        opt(o.best_val_rmse),
        opt(o.val_rmse),
        opt(o.val_mae),
        o.train_seconds
    );
    print_movies("lowest movie bias", &o.lowest_bias);
    print_movies("highest movie bias", &o.highest_bias);
    if let Some((q, nn)) = &o.neighbours {
        print_movies(&format!("nearest to {} by cosine", q.title), nn);
    }
    saved(&args.out);
    Ok(())
}

fn train_sigmoid(args: &Args, cfg: p3_recommender::Config, device: Device) -> Result<()> {
    if printed_config(args, &cfg)? {
        return Ok(());
    }
    let ds = load(args)?;
    let o = p3_recommender::run_on(&ds, &cfg, device)?;
    let info =
        info_for(&ds, ModelKind::SigmoidMf, &cfg, cfg.seed, data_path(args)?, &o.history, o.metrics_json());
    o.model.save(&args.out, &info, Some(&pipelines::rated_rows(&ds, &o.train_rows)?))?;
    print_history(&o.history, false);
    outln!(
        "val MSE (scaled) {}  val RMSE {} stars  MAE {}  reload max |diff| {:e}  [{:.1}s]",
        opt(o.val_mse_scaled),
        opt(o.val_rmse),
        opt(o.val_mae),
        o.reload_max_abs_diff,
        o.train_seconds
    );
    outln!(
        "top-N lists and their diversity, novelty and coverage: `reelvec evaluate --run {}` \
         (not computed while training: they score every user against every movie)",
        args.out.display()
    );
    saved(&args.out);
    Ok(())
}

fn train_residual(args: &Args, cfg: p4_residual::Config, device: Device) -> Result<()> {
    if printed_config(args, &cfg)? {
        return Ok(());
    }
    let ds = load(args)?;
    let o = p4_residual::run_on(&ds, &cfg, device)?;
    let info =
        info_for(&ds, ModelKind::ResidualMf, &cfg, cfg.seed, data_path(args)?, &o.history, o.metrics_json());
    o.model.save(&args.out, &info, Some(&pipelines::rated_rows(&ds, &o.train_rows)?))?;
    if !args.quiet {
        print_history(&o.history, true);
    }
    outln!(
        "global mean {:.4}  train RMSE {:.4} stars (baseline means only {:.4})  val RMSE {}  [{:.1}s]",
        o.means.global,
        o.train_rmse,
        o.baseline_train_rmse,
        opt(o.val_rmse),
        o.train_seconds
    );
    saved(&args.out);
    Ok(())
}

fn print_neighbours(list: &[(MovieScore, Vec<MovieScore>)]) {
    for (q, nn) in list {
        print_movies(&format!("nearest to {} by cosine", q.title), nn);
    }
}

fn train_item2vec(args: &Args, cfg: p0_cbow::Config, device: Device) -> Result<()> {
    if printed_config(args, &cfg)? {
        return Ok(());
    }
    let o = match &args.corpus.sequences {
        Some(file) => {
            checkpoint::check_run_dir(&args.out)?;
            let options = args.corpus.options();
            let corpus = read_corpus(file, &options)?;
            if !args.quiet {
                eprintln!(
                    "corpus: {} sequences, {} tokens in the vocabulary ({} occurrences dropped) from {}",
                    corpus.sequences.len(),
                    corpus.tokens.len(),
                    corpus.dropped,
                    file.display()
                );
            }
            let o = p0_cbow::run_on_sequences(corpus.vocabulary_dataset()?, &corpus.sequences, &cfg, device)?;
            o.save_corpus_run(&args.out, &cfg, file)?;
            o
        }
        None => {
            let ds = load(args)?;
            let o = p0_cbow::run_on(&ds, &cfg, device)?;
            o.save(&args.out, &cfg, Some(data_path(args)?))?;
            o
        }
    };
    print_history(&o.history, false);
    let f = &o.figures;
    outln!(
        "vocabulary {}  uniform baseline ln V {:.4}  best val {} {} (epoch {})  [{:.1}s]",
        f.vocab,
        f.uniform_baseline,
        f.loss_name,
        opt(f.best_val_loss),
        f.best_epoch.map_or("-".into(), |e| e.to_string()),
        f.seconds
    );
    if cfg.model.loss == reelvec_models::item2vec::OutputLoss::NegativeSampling {
        let ce = f.val_rank.map(|r| r.cross_entropy);
        outln!(
            "val softmax cross-entropy over all {} movies {} (vs ln V {:.4})",
            f.vocab,
            opt(ce),
            f.uniform_baseline
        );
    }
    for m in &o.middle {
        print_movies(&format!("between {} and {}", m.before.title, m.after.title), &m.predicted);
    }
    print_neighbours(&o.neighbours);
    saved(&args.out);
    Ok(())
}

fn train_cooc(args: &Args, cfg: p1_cooc::Config, device: Device) -> Result<()> {
    if printed_config(args, &cfg)? {
        return Ok(());
    }
    let ds = load(args)?;
    let o = p1_cooc::run_on(&ds, &cfg, device)?;
    o.save(&args.out, &ds, &cfg, Some(data_path(args)?))?;
    let f = &o.figures;
    outln!("movies {}  likes {}  k {}  {} steps in {:.2}s", f.movies, f.likes, f.k, f.steps, f.train_seconds);
    let sci = |c: Option<f64>| c.map_or("-".into(), |c| format!("{c:.6e}"));
    outln!(
        "masked cost {:.6e}  reference masked cost {}  ratio {}",
        f.final_cost,
        sci(f.reference_masked_cost),
        opt(f.ratio_to_reference_masked)
    );
    outln!(
        "unmasked cost {:.6e}  reference unmasked cost (rank-k optimum) {}  ratio {}",
        f.final_unmasked_cost,
        sci(f.reference_cost),
        opt(f.ratio_unmasked)
    );
    if let Some(note) = &f.reference_note {
        outln!("{note}");
    }
    print_neighbours(&o.neighbours);
    saved(&args.out);
    Ok(())
}
