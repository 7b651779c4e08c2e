//! `reelvec compare --data DIR [--models ..] [--split ..] [--tune] [--json FILE] [--out DIR]
//! [--write-split FILE] [--seed N]`: every model on one ranking protocol (issue 10).
//!
//! The split is reelvec-data's `ranking_split`; every model trains on the same training rows
//! (the ranking models through reelvec-models' `fit_ranker`, the rating models P2-P4 and item2vec
//! through their pipelines' `run_on` on `transforms::subset(train rows)` with
//! `train_fraction = 1`), is scored over the full catalogue and measured by reelvec-metrics'
//! `protocol::evaluate` (rating models by their own predictions, item2vec by the cosine to the
//! mean of the user's training movies). With `--tune` each model's small grid is fitted and the
//! point with the best validation NDCG@10 is kept (first in grid order on ties); test figures are
//! of that model. This module parses, orchestrates and prints; it holds no metric, split or
//! model.
//!
//! `--device cuda|auto` trains every model that has a CUDA path on the device; a model without
//! one (popularity, itemknn; gensim-style cbow/skipgram resampling) answers
//! `ModelError::Unsupported` before any work and is fitted on the CPU instead. Each row says where
//! it trained (`device` in the JSON, a column in the table). An explicit `cuda` without a usable
//! device still fails the whole command before the data is read (`resolve_device`); `auto`
//! without one trains everything on the CPU.
//!
//! Peak memory is the process's peak resident set (`VmHWM` of /proc/self/status) from the start
//! of the model's fits to the end of its test scoring, after resetting it through
//! `/proc/self/clear_refs` (reelvec-bench's `reset_peak_rss` / `rss_bytes`, as the benches;
//! Linux, empty elsewhere). It includes the loaded data set.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use reelvec_bench::report::{reset_peak_rss, rss_bytes};
use reelvec_data::ranking_split::{ranking_split, write_split_file, RankingSplit, RankingSplitRows};
use reelvec_data::{transforms, Dataset};
use reelvec_engine::Device;
use reelvec_metrics::beyond::interaction_counts;
use reelvec_metrics::protocol::{evaluate, EvalInput, ProtocolMetrics, ProtocolOutcome};
use reelvec_metrics::{ProfileScores, RatedItems, SubsetScorer};
use reelvec_models::mf::MfModel;
use reelvec_models::pipelines::{p0_cbow, p2_mf, p3_recommender, p4_residual};
use reelvec_models::ranking::{fit_ranker, Interactions, Ranker, RankerKind};
use reelvec_models::traits::ItemEmbeddings;
use reelvec_models::{ModelError, ModelKind};
use reelvec_report::plots::{LabelledPoint, Scatter};
use reelvec_report::{Report, Section, Table};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::data_cmd::{load_data, ReadOptions};
use crate::device_arg::resolve_device;

/// The models compared when `--models` is not given.
const DEFAULT_MODELS: &str = "popularity,itemknn,ease,ials,bpr,warp,mf,sigmoid-mf,residual-mf,cbow";

/// `reelvec compare` arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The data set (a MovieLens folder or ratings file).
    #[arg(long, value_name = "PATH")]
    pub data: PathBuf,
    /// Models, comma-separated: ranking models (popularity, itemknn, ease, ials, bpr, warp) and rating
    /// / embedding models (mf, sigmoid-mf, residual-mf, cbow, skipgram).
    #[arg(long, value_delimiter = ',', default_value = DEFAULT_MODELS)]
    pub models: Vec<String>,
    /// temporal-holdout, leave-last-out or random-holdout:F (F in (0, 1)).
    #[arg(long, default_value = "temporal-holdout", value_parser = parse_split)]
    pub split: RankingSplit,
    /// Training device: cpu, cuda, cuda:N or auto (scoring runs on the CPU).
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Choose each model's hyperparameters on validation NDCG@10 from its small grid.
    #[arg(long)]
    pub tune: bool,
    /// Write the results as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Write the leaderboard as report.html + report.md (+ SVG scatters) into DIR.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Write the split as a TSV file (user, movie, rating, timestamp, part; raw ids).
    #[arg(long, value_name = "FILE")]
    pub write_split: Option<PathBuf>,
    /// Seed of the random split, the models' initialisation and their shuffles.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Multiply the epochs of the trained rating / embedding models by F (at least one epoch).
    #[arg(long, default_value_t = 1.0, value_name = "F", value_parser = crate::args::epochs_scale)]
    pub epochs_scale: f64,
    #[command(flatten)]
    pub read: ReadOptions,
}

pub(crate) fn parse_split(s: &str) -> Result<RankingSplit, String> {
    s.parse().map_err(|e: reelvec_data::DataError| e.to_string())
}

/// A model named on the command line.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Candidate {
    Ranker(RankerKind),
    Rating(ModelKind),
}

/// The models of a `--models` (or `pipeline --rankers`) list: each known, none twice.
pub(crate) fn parse_candidates(names: &[String]) -> Result<Vec<Candidate>> {
    let candidates = names.iter().map(|m| Candidate::parse(m.trim())).collect::<Result<Vec<_>>>()?;
    if candidates.is_empty() {
        bail!("the model list names no model");
    }
    for (i, c) in candidates.iter().enumerate() {
        if candidates[..i].contains(c) {
            bail!("the model list names {} twice", c.name());
        }
    }
    Ok(candidates)
}

impl Candidate {
    /// A ranking model (`pipeline --rankers` takes only these).
    pub(crate) fn is_ranker(self) -> bool {
        matches!(self, Candidate::Ranker(_))
    }

    fn parse(name: &str) -> Result<Self> {
        if let Ok(kind) = name.parse::<RankerKind>() {
            return Ok(Candidate::Ranker(kind));
        }
        match name.parse::<ModelKind>() {
            Ok(ModelKind::Cooc) => {
                bail!("cooc takes no part in compare (P1 factorises co-occurrences; use cbow or skipgram)")
            }
            Ok(kind) => Ok(Candidate::Rating(kind)),
            Err(_) => bail!(
                "unknown model {name:?}: expected one of popularity, itemknn, ease, ials, bpr, warp, mf, sigmoid-mf, \
                 residual-mf, cbow, skipgram"
            ),
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Candidate::Ranker(k) => k.as_str(),
            Candidate::Rating(k) => k.as_str(),
        }
    }

    /// The `--tune` grid: a few JSON objects of overrides, tried in order.
    fn grid(self) -> Vec<Value> {
        match self.name() {
            "itemknn" => {
                vec![json!({"neighbours": 50}), json!({"neighbours": 200}), json!({"neighbours": 800})]
            }
            "ease" => vec![json!({"lambda": 100.0}), json!({"lambda": 500.0}), json!({"lambda": 2000.0})],
            "ials" => vec![
                json!({"factors": 64, "alpha": 1.0, "regularization": 1.0}),
                json!({"factors": 64, "alpha": 1.0, "regularization": 10.0}),
                json!({"factors": 64, "alpha": 5.0, "regularization": 10.0}),
                json!({"factors": 64, "alpha": 1.0, "regularization": 50.0}),
            ],
            "bpr" => vec![json!({"lr": 0.01}), json!({"lr": 0.03}), json!({"lr": 0.05})],
            "warp" => vec![
                json!({"lr": 0.0003}),
                json!({"lr": 0.0005}),
                json!({"lr": 0.0005, "regularization": 0.05}),
                json!({"lr": 0.001}),
            ],
            "mf" => vec![json!({"k": 16}), json!({"k": 50})],
            "sigmoid-mf" => vec![json!({"k": 16}), json!({"k": 64})],
            _ => vec![json!({})],
        }
    }
}

/// A fitted model that can be scored over the full catalogue.
enum Fitted {
    Ranker(Box<dyn Ranker>),
    /// An MF model over the training subset's movies (`items[j']` = full index).
    Mf {
        model: Box<MfModel>,
        items: Vec<u32>,
    },
    /// Item2vec profiles over its vocabulary (`items[j']` = full index).
    Profile {
        scores: ProfileScores,
        items: Vec<u32>,
    },
}

impl Fitted {
    fn evaluate(&self, n_items: usize, input: &EvalInput<'_>) -> Result<ProtocolOutcome> {
        Ok(match self {
            Fitted::Ranker(r) => evaluate(&reelvec_models::ranking::AsItemScorer(r.as_ref()), input)?,
            Fitted::Mf { model, items } => {
                let scores = model.factor_scores()?;
                evaluate(&SubsetScorer::new(&scores, items, n_items)?, input)?
            }
            Fitted::Profile { scores, items } => {
                evaluate(&SubsetScorer::new(scores, items, n_items)?, input)?
            }
        })
    }
}

/// What every model is measured on.
struct Protocol<'a> {
    ds: &'a Dataset,
    split: &'a RankingSplitRows,
    train: RatedItems,
    val: EvalInput<'a>,
    test: EvalInput<'a>,
    device: Device,
    seed: u64,
    epochs_scale: f64,
    /// The training rows as a data set (rating models), made on first use.
    train_ds: std::cell::OnceCell<Dataset>,
}

/// One model's results.
pub(crate) struct Row {
    pub name: String,
    params: Value,
    val: ProtocolMetrics,
    pub test: ProtocolMetrics,
    fit_seconds: f64,
    score_seconds: f64,
    peak_rss_mib: Option<f64>,
    /// Where the model trained (`cpu`, `cuda:0`).
    device: String,
    /// The top-10 of the sample user (first evaluated user), full movie indices.
    sample: Vec<u32>,
}

/// How [`compare_models`] splits, fits and picks.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CompareOptions {
    pub split: RankingSplit,
    pub seed: u64,
    pub device: Device,
    pub tune: bool,
    pub epochs_scale: f64,
}

/// Every model's results on one split of one data set.
pub(crate) struct Comparison {
    pub split: RankingSplitRows,
    /// Per user, the test movies.
    pub test_rel: RatedItems,
    /// Best test NDCG@10 first.
    pub rows: Vec<Row>,
    /// Models the build or the data could not fit, and why.
    pub skipped: Vec<(String, String)>,
}

/// Splits `ds` by `opts.split`, fits every candidate on the training rows, evaluates it under
/// the protocol (validation, then test) and sorts the rows by test NDCG@10: `reelvec compare`
/// and the ranking section of `reelvec pipeline` (`--rankers`).
pub(crate) fn compare_models(
    ds: &Dataset,
    candidates: &[Candidate],
    opts: &CompareOptions,
) -> Result<Comparison> {
    let split = ranking_split(&ds.ratings, ds.users.len(), opts.split, opts.seed)?;
    if split.evaluated.is_empty() {
        bail!("no user has 3 ratings: nothing to evaluate");
    }
    let (n_users, n_items) = (ds.users.len(), ds.movies.len());
    let r = &ds.ratings;
    let rated = |rows: &[u32]| RatedItems::from_rows_of(n_users, &r.user, &r.movie, rows);
    let train = rated(&split.train)?;
    let val_rel = rated(&split.val)?;
    let test_rel = rated(&split.test)?;
    let mut seen_rows: Vec<u32> = split.train.iter().chain(&split.val).copied().collect();
    seen_rows.sort_unstable();
    let test_exclude = rated(&seen_rows)?;
    let train_movies: Vec<u32> = split.train.iter().map(|&row| r.movie[row as usize]).collect();
    let train_counts = interaction_counts(&train_movies, n_items)?;
    let genres = reelvec_models::evaluate::genre_sets(ds);
    eprintln!(
        "split {}: {} train / {} validation / {} test rows, {} users evaluated, {} movies",
        opts.split,
        split.train.len(),
        split.val.len(),
        split.test.len(),
        split.evaluated.len(),
        n_items
    );
    let input = |exclude, relevant| EvalInput {
        users: &split.evaluated,
        exclude,
        relevant,
        train_counts: &train_counts,
        genres: &genres,
    };
    let protocol = Protocol {
        ds,
        split: &split,
        val: input(&train, &val_rel),
        test: input(&test_exclude, &test_rel),
        train: train.clone(),
        device: opts.device,
        seed: opts.seed,
        epochs_scale: opts.epochs_scale,
        train_ds: std::cell::OnceCell::new(),
    };
    let mut rows = Vec::new();
    let mut skipped = Vec::new();
    for &candidate in candidates {
        match compare_one(&protocol, candidate, opts.tune) {
            Ok(row) => rows.push(row),
            Err(err) => match err.downcast_ref::<ModelError>() {
                Some(ModelError::Unsupported { .. }) => {
                    eprintln!("skipped {}: {err}", candidate.name());
                    skipped.push((candidate.name().to_string(), err.to_string()));
                }
                _ => return Err(err.context(format!("model {}", candidate.name()))),
            },
        }
    }
    if rows.is_empty() {
        bail!("no model could be compared");
    }
    rows.sort_by(|a, b| key(b.test.ndcg[0]).total_cmp(&key(a.test.ndcg[0])));
    drop(protocol);
    Ok(Comparison { split, test_rel, rows, skipped })
}

/// Runs `reelvec compare`.
pub fn run(args: Args) -> Result<()> {
    let candidates = parse_candidates(&args.models).context("--models")?;
    check_outputs(&args)?;
    let device = resolve_device(&args.device, false)?;
    let ds = load_data(&args.data, &args.read)?;
    let opts = CompareOptions {
        split: args.split,
        seed: args.seed,
        device,
        tune: args.tune,
        epochs_scale: args.epochs_scale,
    };
    let cmp = compare_models(&ds, &candidates, &opts)
        .with_context(|| format!("cannot compare on {}", args.data.display()))?;
    // Every file is written before anything is printed.
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&results_json(args.split, &cmp.rows))?;
        reelvec_outfile::write_file(path, format!("{text}\n").as_bytes())
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    if let Some(path) = &args.write_split {
        write_split_file(path, &ds, &cmp.split)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    if let Some(dir) = &args.out {
        let summary = format!(
            "{}: {} ratings, {} users, {} movies",
            args.data.display(),
            ds.ratings.len(),
            ds.users.len(),
            ds.movies.len()
        );
        let mut report = Report::new("reelvec compare: one ranking protocol, every model", summary);
        report.sections.extend(report_sections(&ds, &cmp, &opts, ("leaderboard", "examples"))?);
        report
            .write_to_dir(dir)
            .with_context(|| format!("cannot write the report into {}", dir.display()))?;
    }
    print_leaderboard(args.split, &cmp);
    Ok(())
}

/// NaN sorts last.
fn key(x: f64) -> f64 {
    if x.is_nan() {
        f64::NEG_INFINITY
    } else {
        x
    }
}

/// Checks every output before the data is loaded.
fn check_outputs(args: &Args) -> Result<()> {
    for path in args.json.iter().chain(&args.write_split) {
        reelvec_outfile::check_file(path).with_context(|| format!("output {}", path.display()))?;
    }
    if let (Some(a), Some(b)) = (&args.json, &args.write_split) {
        if a == b {
            bail!("--json and --write-split name the same file {}", a.display());
        }
    }
    if let Some(dir) = &args.out {
        reelvec_outfile::check_dir(dir).with_context(|| format!("output {}", dir.display()))?;
        for file in ["report.html", "report.md", "report.json"] {
            reelvec_outfile::check_file(&dir.join(file))
                .with_context(|| format!("output {}", dir.display()))?;
        }
    }
    Ok(())
}

/// Fits one model (its grid with `tune`), picks on validation NDCG@10, scores the test.
fn compare_one(p: &Protocol<'_>, candidate: Candidate, tune: bool) -> Result<Row> {
    let grid = if tune { candidate.grid() } else { vec![json!({})] };
    let _ = reset_peak_rss();
    let n_items = p.ds.movies.len();
    let mut best: Option<(Fitted, Value, ProtocolMetrics, f64)> = None;
    let mut device = p.device;
    for point in grid {
        let started = Instant::now();
        let fitted = match fit(p, candidate, &point, device) {
            Err(err) if device.is_cuda() && is_unsupported(&err) => {
                eprintln!("{} trains on the cpu: {err}", candidate.name());
                device = Device::Cpu;
                fit(p, candidate, &point, device)?
            }
            other => other?,
        };
        let fit_seconds = started.elapsed().as_secs_f64();
        let val = fitted.evaluate(n_items, &p.val)?.metrics;
        eprintln!(
            "{} {}: fit {:.2}s, validation NDCG@10 {:.4}",
            candidate.name(),
            params_of(&fitted, &point),
            fit_seconds,
            val.ndcg[0]
        );
        if best.as_ref().is_none_or(|b| key(val.ndcg[0]) > key(b.2.ndcg[0])) {
            best = Some((fitted, point, val, fit_seconds));
        }
    }
    let (fitted, point, val, fit_seconds) = best.context("empty grid")?;
    let started = Instant::now();
    let test = fitted.evaluate(n_items, &p.test)?;
    let score_seconds = started.elapsed().as_secs_f64();
    let sample =
        test.lists.row(0).iter().take(10).copied().filter(|&j| j != reelvec_metrics::topn::NO_ITEM).collect();
    Ok(Row {
        name: candidate.name().to_string(),
        params: params_of(&fitted, &point),
        val,
        test: test.metrics,
        fit_seconds,
        score_seconds,
        peak_rss_mib: peak_rss_mib(),
        device: device.to_string(),
        sample,
    })
}

/// Every hyperparameter of a ranker; the overrides of a rating model.
fn params_of(fitted: &Fitted, point: &Value) -> Value {
    match fitted {
        Fitted::Ranker(r) => r.params(),
        _ => point.clone(),
    }
}

/// Whether `err` is a model's refusal of something it does not support (raised before any work).
fn is_unsupported(err: &anyhow::Error) -> bool {
    matches!(err.downcast_ref::<ModelError>(), Some(ModelError::Unsupported { .. }))
}

fn fit(p: &Protocol<'_>, candidate: Candidate, point: &Value, device: Device) -> Result<Fitted> {
    let kind = match candidate {
        Candidate::Ranker(kind) => {
            let train = Interactions::new(&p.train, p.ds.movies.len())?;
            return Ok(Fitted::Ranker(fit_ranker(kind, train, point, p.seed, device)?));
        }
        Candidate::Rating(kind) => kind,
    };
    let sub = match p.train_ds.get() {
        Some(sub) => sub,
        None => {
            let sub = transforms::subset(p.ds, &p.split.train);
            if sub.users.raws() != p.ds.users.raws() {
                bail!(
                    "the training rows do not hold every user (internal: the split keeps one row per user)"
                );
            }
            let _ = p.train_ds.set(sub);
            p.train_ds.get().context("training subset")?
        }
    };
    let epochs = |e: usize| ((e as f64 * p.epochs_scale).round() as usize).max(1);
    let seed = p.seed;
    Ok(match kind {
        ModelKind::Mf => {
            let mut cfg = p2_mf::Config { train_fraction: 1.0, seed, ..p2_mf::Config::default() };
            cfg.train = reelvec_engine::TrainConfig {
                seed,
                quiet: true,
                restore_best: false,
                epochs: epochs(cfg.train.epochs),
                ..cfg.train
            };
            let o = p2_mf::run_on(sub, &with_overrides(&cfg, point)?, device)?;
            Fitted::Mf { model: Box::new(o.model), items: full_items(p.ds, sub)? }
        }
        ModelKind::SigmoidMf => {
            let mut cfg =
                p3_recommender::Config { train_fraction: 1.0, seed, ..p3_recommender::Config::default() };
            cfg.train = reelvec_engine::TrainConfig {
                seed,
                quiet: true,
                epochs: epochs(cfg.train.epochs),
                ..cfg.train
            };
            let o = p3_recommender::run_on(sub, &with_overrides(&cfg, point)?, device)?;
            Fitted::Mf { model: Box::new(o.model), items: full_items(p.ds, sub)? }
        }
        ModelKind::ResidualMf => {
            let mut cfg = p4_residual::Config { train_fraction: 1.0, seed, ..p4_residual::Config::default() };
            cfg.train = reelvec_engine::TrainConfig {
                seed,
                quiet: true,
                epochs: epochs(cfg.train.epochs),
                ..cfg.train
            };
            let o = p4_residual::run_on(sub, &with_overrides(&cfg, point)?, device)?;
            Fitted::Mf { model: Box::new(o.model), items: full_items(p.ds, sub)? }
        }
        ModelKind::Cbow | ModelKind::Skipgram => {
            let mut cfg = p0_cbow::Config {
                top_movies: 0,
                min_user_ratings: 1,
                train_fraction: 1.0,
                seed,
                ..Default::default()
            };
            if kind == ModelKind::Skipgram {
                cfg.model.architecture = reelvec_models::item2vec::Architecture::Skipgram;
            }
            cfg.train = reelvec_engine::TrainConfig {
                seed,
                quiet: true,
                early_stopping: None,
                epochs: epochs(cfg.train.epochs),
                ..cfg.train
            };
            let o = p0_cbow::run_on(sub, &with_overrides(&cfg, point)?, device)?;
            let items = full_items(p.ds, &o.dataset)?;
            // Each user's training movies in the vocabulary's indices.
            let vocab: HashMap<u32, u32> = items.iter().enumerate().map(|(v, &j)| (j, v as u32)).collect();
            let rows: Vec<Vec<u32>> = (0..p.train.n_users() as u32)
                .map(|u| p.train.row(u).iter().filter_map(|j| vocab.get(j).copied()).collect())
                .collect();
            let scores = ProfileScores::new(o.model.item_embeddings(), &RatedItems::from_rows(&rows))?;
            Fitted::Profile { scores, items }
        }
        ModelKind::Cooc => bail!("cooc takes no part in compare"),
        ModelKind::Ranker(_) => {
            bail!("{kind} is a ranking model: compare fits it through fit_ranker")
        }
    })
}

/// The full-catalogue index of each movie of `part` (a data set made from `full`'s rows).
fn full_items(full: &Dataset, part: &Dataset) -> Result<Vec<u32>> {
    part.movies
        .raws()
        .iter()
        .map(|&raw| full.movies.dense(raw).with_context(|| format!("movie {raw} of the training set")))
        .collect()
}

/// `cfg` with `overrides` (a JSON object; keys may be dotted, `train.epochs`) applied; a key the
/// config does not have is an error.
fn with_overrides<T: Serialize + DeserializeOwned>(cfg: &T, overrides: &Value) -> Result<T> {
    let mut value = serde_json::to_value(cfg)?;
    if let Value::Object(map) = overrides {
        for (key, v) in map {
            let mut slot = &mut value;
            for part in key.split('.') {
                slot = slot
                    .get_mut(part)
                    .with_context(|| format!("unknown parameter {key:?} for this model"))?;
            }
            *slot = v.clone();
        }
    }
    Ok(serde_json::from_value(value)?)
}

/// The peak resident set since the last reset, in MiB, where the system reports it.
fn peak_rss_mib() -> Option<f64> {
    rss_bytes().map(|(_, peak)| peak as f64 / (1024.0 * 1024.0))
}

fn metrics_json(m: &ProtocolMetrics) -> Value {
    Value::Object(m.named().into_iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<Map<_, _>>())
}

/// `{"split": .., "models": {"<name>": {"params", "val", "test", "fit_seconds", "score_seconds",
/// "peak_rss_mib", "device"}}}`.
fn results_json(split: RankingSplit, rows: &[Row]) -> Value {
    let models: Map<String, Value> = rows
        .iter()
        .map(|r| {
            let entry = json!({
                "params": r.params,
                "val": metrics_json(&r.val),
                "test": metrics_json(&r.test),
                "fit_seconds": r.fit_seconds,
                "score_seconds": r.score_seconds,
                "peak_rss_mib": r.peak_rss_mib,
                "device": r.device,
            });
            (r.name.clone(), entry)
        })
        .collect();
    json!({"split": split.to_string(), "models": models})
}

/// The leaderboard's header and one row of cells per model.
fn leaderboard(rows: &[Row]) -> (Vec<String>, Vec<Vec<String>>) {
    let header = [
        "model",
        "device",
        "ndcg@10",
        "recall@10",
        "hr@10",
        "ndcg@20",
        "recall@20",
        "hr@20",
        "mrr",
        "cov@10",
        "gini@10",
        "novelty",
        "genre-div",
        "fit s",
        "score s",
        "peak MiB",
    ];
    let cells = rows
        .iter()
        .map(|r| {
            let m = &r.test;
            let mut row = vec![r.name.clone(), r.device.clone()];
            for x in [
                m.ndcg[0],
                m.recall[0],
                m.hit_rate[0],
                m.ndcg[1],
                m.recall[1],
                m.hit_rate[1],
                m.mrr,
                m.coverage_10,
                m.gini_10,
            ] {
                row.push(format!("{x:.4}"));
            }
            row.push(format!("{:.2}", m.novelty_bits_10));
            row.push(format!("{:.4}", m.genre_diversity_10));
            row.push(format!("{:.2}", r.fit_seconds));
            row.push(format!("{:.2}", r.score_seconds));
            row.push(r.peak_rss_mib.map_or("-".into(), |x| format!("{x:.0}")));
            row
        })
        .collect();
    (header.iter().map(|s| s.to_string()).collect(), cells)
}

/// Prints the leaderboard (test figures) and the skipped models.
pub(crate) fn print_leaderboard(split: RankingSplit, cmp: &Comparison) {
    let (rows, skipped) = (&cmp.rows, &cmp.skipped);
    outln!(
        "test figures, {split} split, {} users evaluated, best test NDCG@10 first (novelty in bits):",
        cmp.split.evaluated.len()
    );
    let (header, cells) = leaderboard(rows);
    let widths: Vec<usize> = (0..header.len())
        .map(|c| cells.iter().map(|r| r[c].len()).chain([header[c].len()]).max().unwrap_or(0))
        .collect();
    let line = |cells: &[String]| {
        cells
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(c, (s, w))| if c < 2 { format!("{s:<w$}") } else { format!("{s:>w$}") })
            .collect::<Vec<_>>()
            .join("  ")
    };
    outln!("{}", line(&header));
    for row in &cells {
        outln!("{}", line(row));
    }
    for (name, why) in skipped {
        outln!("{name}: skipped ({why})");
    }
}

/// The leaderboard section (table, hyperparameters, the two scatters) and the sample user's
/// top-10 per model with titles, under the section ids `ids`: `compare --out`'s report and the
/// ranking part of `reelvec pipeline`'s.
pub(crate) fn report_sections(
    ds: &Dataset,
    cmp: &Comparison,
    opts: &CompareOptions,
    ids: (&str, &str),
) -> Result<Vec<Section>> {
    let (split, test_rel, rows, skipped) = (&cmp.split, &cmp.test_rel, &cmp.rows, &cmp.skipped);
    let mut board = Section::new(ids.0, "Leaderboard (test)");
    board.push_note(
        "Every rating is an interaction. Candidates are every movie except the user's training (and \
         validation) movies; lists of 10 and 20; Recall@k = hits / min(k, |relevant|), NDCG@k with binary \
         gains, MRR = 1 / (rank of the first relevant movie + 1); beyond accuracy on the top-10: coverage, \
         Gini of list occurrences, self-information novelty in bits, intra-list genre distance. Peak MiB is \
         the process's peak resident set during the model's fits and scoring (data set included).",
    );
    board.push_config("split", opts.split);
    board.push_config("seed", opts.seed);
    board.push_config("tuned on validation NDCG@10", opts.tune);
    board.push_config("users evaluated", split.evaluated.len());
    board.push_config(
        "train / validation / test rows",
        format!("{} / {} / {}", split.train.len(), split.val.len(), split.test.len()),
    );
    let (header, cells) = leaderboard(rows);
    board.push_table(Table { caption: "Test figures, best NDCG@10 first".into(), header, rows: cells });
    let params = rows.iter().map(|r| vec![r.name.clone(), r.params.to_string()]).collect();
    board.push_table(Table {
        caption: "Hyperparameters used".into(),
        header: vec!["model".into(), "parameters".into()],
        rows: params,
    });
    for (name, why) in skipped {
        board.push_note(format!("{name} skipped: {why}"));
    }
    let scatter = |title: &str, x_label: &str, x: fn(&ProtocolMetrics) -> f64| -> Result<String> {
        let points = rows
            .iter()
            .map(|r| LabelledPoint { x: x(&r.test), y: r.test.ndcg[0], label: r.name.clone() })
            .collect();
        Ok(Scatter::new(title, points).with_axes(x_label, "NDCG@10").to_svg()?)
    };
    board.push_plot(
        "accuracy vs novelty",
        scatter("Accuracy vs novelty (one point per model)", "novelty (bits)", |m| m.novelty_bits_10)?,
    );
    board.push_plot(
        "accuracy vs coverage",
        scatter("Accuracy vs coverage (one point per model)", "coverage@10", |m| m.coverage_10)?,
    );
    let user = split.evaluated[0];
    let raw_user = ds.users.raw(user).unwrap_or(u64::MAX);
    let mut examples = Section::new(ids.1, format!("Top-10 of user {raw_user} per model"));
    examples.push_note("* marks a movie of the user's test set.");
    for r in rows {
        let lines: Vec<String> = r
            .sample
            .iter()
            .enumerate()
            .map(|(i, &j)| {
                let hit = if test_rel.row(user).binary_search(&j).is_ok() { " *" } else { "" };
                format!("{:>2}. {}{hit}", i + 1, ds.title(j))
            })
            .collect();
        examples.push_example(format!("{}:\n{}", r.name, lines.join("\n")));
    }
    Ok(vec![board, examples])
}
