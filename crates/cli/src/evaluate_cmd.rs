//! `reelvec evaluate --run RUN [--data PATH] [--json]`: the metrics that fit a run's model kind,
//! each with its time, on the split rebuilt from the run (its config's seed and train fraction,
//! the data from `--data` or the path recorded in `run.json`, `synth:<preset>` for the
//! synthetic sets `reelvec pipeline` uses; the data's fingerprint must match the run's).
//!
//! - Rating models (mf, sigmoid-mf, residual-mf): RMSE / MAE in stars on the validation rows
//!   (the training rows when the run has no validation split, as P4's protocol), top-10 for every
//!   user (training movies excluded) with diversity, the notebook's novelty, self-information
//!   novelty, catalogue coverage and Gini.
//! - Item2vec (cbow, skipgram): validation cross-entropy beside `ln V`, accuracy@1, hit@10, and
//!   leave-last-out next-item HR@10 / NDCG@10 of the validation sequences over the full
//!   vocabulary (earlier movies of the sequence excluded).
//! - Co-occurrence (cooc): the cost of the saved factors, the rank-k eigen reference and their
//!   ratio, and the most-rated movie's neighbours.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use reelvec_data::transforms::{self, MovieStats};
use reelvec_data::Dataset;
use reelvec_metrics::ranking::{target_rank, RankSummary};
use reelvec_metrics::{BeyondAccuracy, RatedItems, TopNConfig};
use reelvec_models::checkpoint::{self, fingerprint_ratings};
use reelvec_models::cooc::{CoocModel, CoocProblem, CoocScratch, LikeMatrix};
use reelvec_models::item2vec::Examples;
use reelvec_models::mf::MfModel;
use reelvec_models::pipelines::{self, p0_cbow, p1_cooc, p3_recommender};
use reelvec_models::traits::ItemEmbeddings;
use reelvec_models::{ModelKind, RunInfo};
use serde_json::{json, Map, Value};

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

/// Figures in order, with their timings, printed as text or JSON.
#[derive(Default)]
struct Figures {
    values: Map<String, Value>,
    timings: Map<String, Value>,
    lines: Vec<String>,
}

impl Figures {
    fn put(&mut self, name: &str, value: Value, text: String) {
        self.lines.push(format!("{name:<36} {text}"));
        self.values.insert(name.to_string(), value);
    }

    fn num(&mut self, name: &str, x: f64) {
        self.put(name, json!(x), format!("{x:.4}"));
    }

    fn time(&mut self, what: &str, started: Instant) {
        let s = started.elapsed().as_secs_f64();
        self.lines.push(format!("  ({what}: {s:.3}s)"));
        self.timings.insert(what.to_string(), json!(s));
    }
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

fn check_fingerprint(info: &RunInfo, ds: &Dataset, what: &str) -> Result<()> {
    let fp = fingerprint_ratings(&ds.ratings);
    if fp != info.dataset_fingerprint {
        bail!(
            "{what} does not match the run's data (fingerprint {fp} vs {}); pass the data set it was trained on",
            info.dataset_fingerprint
        );
    }
    Ok(())
}

/// Checks that `ds` is the data set the run was trained on (for item2vec runs, after P0's
/// filters, as the run recorded it).
pub(crate) fn check_run_data(info: &RunInfo, ds: &Dataset) -> Result<()> {
    match info.model_kind {
        ModelKind::Cbow | ModelKind::Skipgram => {
            let (data, _) = p0_cbow::prepare(ds, &config::<p0_cbow::Config>(info)?)?;
            check_fingerprint(info, &data, "the data set after P0's filters")
        }
        _ => check_fingerprint(info, ds, "the data set"),
    }
}

fn config<C: serde::de::DeserializeOwned>(info: &RunInfo) -> Result<C> {
    serde_json::from_value(info.config.clone()).context("cannot read the run's config")
}

/// Runs `reelvec evaluate`.
pub fn run(mut args: Args) -> Result<()> {
    let info = checkpoint::load_run_info(&args.run)
        .with_context(|| format!("cannot read run {}", args.run.display()))?;
    args.k = crate::args::clamp_count("-k", args.k, info.movie_raw_ids.len(), "movies of the run");
    if info.model_kind.ranker().is_some() {
        bail!("evaluate does not cover {} runs: rank ranking models with `reelvec compare`", info.model_kind);
    }
    let started = Instant::now();
    let ds = run_data(&info, &args.run, args.data.as_deref(), &args.read)?;
    let mut figures = Figures::default();
    figures.time("load data", started);
    match info.model_kind {
        ModelKind::Mf | ModelKind::SigmoidMf | ModelKind::ResidualMf => {
            rating(&args, &info, &ds, &mut figures)?
        }
        ModelKind::Cbow | ModelKind::Skipgram => item2vec(&args, &info, &ds, &mut figures)?,
        ModelKind::Cooc => cooc(&args, &info, &ds, &mut figures)?,
        other => bail!("evaluate does not cover {other} runs: rank ranking models with `reelvec compare`"),
    }
    if args.json {
        let out = json!({
            "run": args.run.display().to_string(),
            "model_kind": info.model_kind,
            "figures": figures.values,
            "seconds": figures.timings,
        });
        outln!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        outln!("{} run {} ({})", info.model_kind, args.run.display(), info.model_kind.protocol());
        for line in &figures.lines {
            outln!("{line}");
        }
    }
    Ok(())
}

fn rating(args: &Args, info: &RunInfo, ds: &Dataset, f: &mut Figures) -> Result<()> {
    check_fingerprint(info, ds, "the data set")?;
    let (model, _) = MfModel::load(&args.run)?;
    // P3's lists follow its config (the notebook keeps rated movies); the others exclude the
    // training movies. So evaluate reproduces P3's recorded top-N figures exactly.
    let exclude_rated = match info.model_kind {
        ModelKind::SigmoidMf => config::<p3_recommender::Config>(info)?.exclude_rated,
        _ => true,
    };
    // The run's split, rebuilt by reelvec-models (the one owner).
    let (train, val) = pipelines::run_rating_split(info, ds.ratings.len())?;
    let r = &ds.ratings;
    let (eval_rows, which) = if val.is_empty() { (&train, "training") } else { (&val, "validation") };
    let started = Instant::now();
    let pick = |v: &[u32]| eval_rows.iter().map(|&i| v[i as usize]).collect::<Vec<u32>>();
    let stars: Vec<f32> = eval_rows.iter().map(|&i| r.rating[i as usize]).collect();
    let (rmse, mae) = model.rmse_mae_stars(&pick(&r.user), &pick(&r.movie), &stars);
    f.put("evaluated on", json!(which), format!("{} {which} rows", eval_rows.len()));
    f.num("RMSE (stars)", rmse);
    f.num("MAE (stars)", mae);
    f.time("RMSE/MAE", started);

    // Top-N for every user, training movies excluded. Every link is monotone, so ranking by the
    // raw score (plus P4's movie means, which differ per movie) ranks by predicted stars.
    let started = Instant::now();
    let (n_users, n_movies) = (model.spec().n_users, model.spec().n_movies);
    let tu: Vec<u32> = train.iter().map(|&i| r.user[i as usize]).collect();
    let tm: Vec<u32> = train.iter().map(|&i| r.movie[i as usize]).collect();
    let rated = RatedItems::from_pairs(n_users, &tu, &tm)?;
    let scores = model.factor_scores()?;
    let device = resolve_device(&args.device, args.json)?;
    let top_config = TopNConfig::with_k(args.k);
    let top =
        reelvec_metrics::topn_gpu::top_n_on(device, &scores, &top_config, exclude_rated.then_some(&rated))?;
    f.put("top-N device", json!(device.to_string()), device.describe());
    f.time(&format!("top-{} for {n_users} users", args.k), started);
    let started = Instant::now();
    let stats = MovieStats::compute(r, Some(&train), n_movies);
    let beyond = BeyondAccuracy::compute(
        top.indices.view(),
        model.item_embeddings(),
        &stats.mean,
        &stats.counts_u64(),
    )?;
    let k = args.k;
    f.num(&format!("top-{k} diversity"), beyond.diversity);
    f.num("novelty (mean rating, notebook)", beyond.mean_rating_novelty);
    f.num("novelty (self-information, bits)", beyond.self_information_novelty);
    f.num("catalogue coverage", beyond.catalogue_coverage);
    f.num("Gini of recommendation counts", beyond.gini);
    f.time("beyond-accuracy", started);
    Ok(())
}

fn item2vec(args: &Args, info: &RunInfo, ds: &Dataset, f: &mut Figures) -> Result<()> {
    let cfg: p0_cbow::Config = config(info)?;
    let (model, _) = p0_cbow::load(&args.run)?;
    let (data, sequences) = p0_cbow::prepare(ds, &cfg)?;
    check_fingerprint(info, &data, "the data set after P0's filters")?;
    let (_, val_users) = transforms::split_users(sequences.len(), cfg.train_fraction, cfg.seed);
    let val_seqs: Vec<Vec<u32>> = val_users.iter().map(|&u| sequences[u as usize].clone()).collect();
    let v = model.vocab();
    let started = Instant::now();
    let examples = Examples::for_config(&val_seqs, &cfg.model);
    if examples.is_empty() {
        bail!("the run's validation split has no example");
    }
    let rank = model.rank_metrics(&examples);
    f.put("vocabulary V", json!(v), v.to_string());
    f.num("validation cross-entropy", rank.cross_entropy);
    f.num("uniform baseline ln V", (v as f64).ln());
    f.num("accuracy@1", rank.accuracy_at_1);
    f.num("hit@10", rank.hit_at_10);
    f.put("validation examples", json!(rank.examples), rank.examples.to_string());
    f.time("cross-entropy / acc@1 / hit@10", started);

    // Leave-last-out: the last movie of each validation sequence from the `window` before it.
    let started = Instant::now();
    let mut scores = vec![0f32; v];
    let mut ranks = Vec::new();
    for seq in val_seqs.iter().filter(|s| s.len() >= 2) {
        let (&target, before) = seq.split_last().context("empty sequence")?;
        let context = &before[before.len().saturating_sub(cfg.model.window.max(1))..];
        model.scores_for_context(context, &mut scores);
        let mut seen = before.to_vec();
        seen.sort_unstable();
        seen.dedup();
        ranks.push(target_rank(&scores, target, &seen)?);
    }
    let summary = RankSummary::from_ranks(&ranks, 10)?;
    f.num("leave-last-out HR@10", summary.hit_rate);
    f.num("leave-last-out NDCG@10", summary.ndcg);
    f.put("leave-last-out users", json!(summary.count), summary.count.to_string());
    f.time("leave-last-out", started);
    Ok(())
}

fn cooc(args: &Args, info: &RunInfo, ds: &Dataset, f: &mut Figures) -> Result<()> {
    check_fingerprint(info, ds, "the data set")?;
    let cfg: p1_cooc::Config = config(info)?;
    let (params, _) = checkpoint::load_run(&args.run)?;
    let model = CoocModel::new(params)?;
    let started = Instant::now();
    let likes =
        LikeMatrix::from_ratings(&ds.ratings, ds.users.len(), ds.movies.len(), cfg.model.like_threshold)?;
    let problem = CoocProblem::new(likes);
    let emb = model.item_embeddings();
    let k = emb.ncols();
    let v: Vec<f32> = emb.iter().copied().collect();
    let cost = problem.cost_and_grad(&v, k, true, &mut CoocScratch::default(), None);
    f.put("movies / k", json!([problem.n_movies(), k]), format!("{} / {k}", problem.n_movies()));
    f.put("masked cost c(V)", json!(cost.masked), format!("{:.6e}", cost.masked));
    f.put("unmasked cost", json!(cost.unmasked), format!("{:.6e}", cost.unmasked));
    f.time("cost", started);
    let started = Instant::now();
    if let Some(reference) = p1_cooc::reference(&problem, &cfg)? {
        // Like for like: each cost over the reference's cost under the same mask.
        let masked_ref =
            problem.cost_and_grad(&reference.factors, k, true, &mut CoocScratch::default(), None).masked;
        f.put("reference masked cost", json!(masked_ref), format!("{masked_ref:.6e}"));
        f.put(
            "reference unmasked cost",
            json!(reference.unmasked_cost),
            format!("{:.6e}", reference.unmasked_cost),
        );
        f.num("masked cost / reference masked cost", cost.masked / masked_ref);
        f.num("unmasked cost / reference unmasked cost", cost.unmasked / reference.unmasked_cost);
        f.time("reference", started);
    }
    if let Some(&q) = transforms::top_movies(ds, 1).first() {
        let nn = match model.nearest_by_cosine(q, 5) {
            Err(reelvec_metrics::MetricsError::NoVector { .. }) => {
                f.put(
                    &format!("nearest to {}", info.title(q)),
                    json!(null),
                    "has no vector (near-zero embedding)".into(),
                );
                return Ok(());
            }
            other => other?,
        };
        let text: Vec<String> = nn.iter().map(|&(m, s)| format!("{} ({s:.3})", info.title(m))).collect();
        f.put(
            &format!("nearest to {}", info.title(q)),
            json!(nn.iter().map(|&(m, s)| json!({"title": info.title(m), "cosine": s})).collect::<Vec<_>>()),
            text.join("; "),
        );
    }
    Ok(())
}
