//! `reelvec evaluate` (and Python's `Run.evaluate`): [`evaluate_run`] computes the figures
//! that fit a run's model kind, each with its time, into [`Figures`] (text lines and the
//! `evaluate --json` object). Runs under the ranking protocol: [`held_out_protocol`] builds reelvec-metrics'
//! `protocol::evaluate` input (the one owner of every ranking and beyond-accuracy figure) from a
//! run's training and held-out movies; [`evaluate_ranker`] scores a fitted ranker against the
//! interactions of the data it was not trained on (the held-out part of a run trained with
//! `reelvec train --model <ranker> --holdout SPLIT`); and
//! [`genre_sets`], the per-movie genre ids the protocol's genre diversity reads.

use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

use reelvec_data::transforms::{self, MovieStats};
use reelvec_engine::Device;
use reelvec_metrics::ranking::{target_rank, RankSummary};
use reelvec_metrics::topn_gpu::top_lists_on;
use reelvec_metrics::BeyondAccuracy;
use serde_json::{json, Map, Value};

use crate::checkpoint::{self, fingerprint_ratings};
use crate::cooc::{CoocModel, CoocProblem, CoocScratch, LikeMatrix};
use crate::item2vec::Examples;
use crate::mf::MfModel;
use crate::pipelines::{self, p0_cbow, p1_cooc, p3_recommender};
use crate::ranking::load_ranker;
use crate::traits::ItemEmbeddings;
use crate::{ModelKind, RunInfo};

use reelvec_data::Dataset;
use reelvec_metrics::beyond::interaction_counts;
use reelvec_metrics::protocol::{evaluate, EvalInput, ProtocolOutcome};
use reelvec_metrics::{ItemScorer, RatedItems};

use crate::pipelines::rated_rows;

use crate::ranking::{AsItemScorer, Ranker};
use crate::ModelError;

/// Per movie, its sorted genre ids (ids in order of first appearance in the catalogue); empty
/// when the catalogue has no genres at all.
pub fn genre_sets(ds: &Dataset) -> Vec<Vec<u32>> {
    let mut ids: HashMap<&str, u32> = HashMap::new();
    let sets: Vec<Vec<u32>> = (0..ds.movies.len() as u32)
        .map(|j| {
            let mut set: Vec<u32> = ds
                .movie_info(j)
                .map_or(&[][..], |m| &m.genres[..])
                .iter()
                .map(|g| {
                    let next = ids.len() as u32;
                    *ids.entry(g.as_str()).or_insert(next)
                })
                .collect();
            set.sort_unstable();
            set.dedup();
            set
        })
        .collect();
    if ids.is_empty() {
        Vec::new()
    } else {
        sets
    }
}

/// `reelvec evaluate`'s figures of the run in `dir` (its `info`, already loaded) on `ds`, the
/// data it was trained on (checked by fingerprint), into `f`: top-`k` lists on `device` for
/// rating runs. What each kind reports is in the CLI's `evaluate_cmd.rs` docs.
pub fn evaluate_run(
    dir: &Path,
    info: &RunInfo,
    ds: &Dataset,
    k: usize,
    device: Device,
    f: &mut Figures,
) -> Result<(), ModelError> {
    match info.model_kind {
        ModelKind::Mf | ModelKind::SigmoidMf | ModelKind::ResidualMf => rating(dir, info, ds, k, device, f),
        ModelKind::Cbow | ModelKind::Skipgram => item2vec(dir, info, ds, f),
        ModelKind::Cooc => cooc(dir, info, ds, f),
        ModelKind::Ranker(_) => ranker(dir, info, ds, f),
    }
}

impl Figures {
    /// `reelvec evaluate --json`'s object for the run `run` of `kind`.
    pub fn to_json(&self, run: &str, kind: ModelKind) -> Value {
        json!({
            "run": run,
            "model_kind": kind,
            "figures": self.values,
            "seconds": self.timings,
        })
    }
}

/// `reelvec evaluate`'s figures in order, with their timings, printed as text or JSON.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Figures {
    /// Each figure by name (`evaluate --json`'s `figures`).
    pub values: Map<String, Value>,
    /// Seconds per step (`evaluate --json`'s `seconds`).
    pub timings: Map<String, Value>,
    /// The text lines, figures and timings in order.
    pub lines: Vec<String>,
}

impl Figures {
    /// Records one figure with its text.
    pub fn put(&mut self, name: &str, value: Value, text: String) {
        self.lines.push(format!("{name:<36} {text}"));
        self.values.insert(name.to_string(), value);
    }

    /// Records one number (printed with 4 decimals).
    pub fn num(&mut self, name: &str, x: f64) {
        self.put(name, json!(x), format!("{x:.4}"));
    }

    /// Records the seconds since `started` as the step `what`.
    pub fn time(&mut self, what: &str, started: Instant) {
        let s = started.elapsed().as_secs_f64();
        self.lines.push(format!("  ({what}: {s:.3}s)"));
        self.timings.insert(what.to_string(), json!(s));
    }
}

/// Checks that `ds` (described as `what`) is the data the run was trained on, by fingerprint.
pub fn check_fingerprint(info: &RunInfo, ds: &Dataset, what: &str) -> Result<(), ModelError> {
    let fp = fingerprint_ratings(&ds.ratings);
    if fp != info.dataset_fingerprint {
        return Err(ModelError::InvalidData(format!(
            "{what} does not match the run's data (fingerprint {fp} vs {}); pass the data set it was trained on",
            info.dataset_fingerprint
        )));
    }
    Ok(())
}

/// The run's stored config as a pipeline's `Config`.
pub fn run_config<C: serde::de::DeserializeOwned>(info: &RunInfo) -> Result<C, ModelError> {
    serde_json::from_value(info.config.clone())
        .map_err(|e| ModelError::InvalidConfig(format!("cannot read the run's config: {e}")))
}

fn rating(
    dir: &Path,
    info: &RunInfo,
    ds: &Dataset,
    k: usize,
    device: Device,
    f: &mut Figures,
) -> Result<(), ModelError> {
    check_fingerprint(info, ds, "the data set")?;
    let (model, _) = MfModel::load(dir)?;
    // P3's lists follow its config (the notebook keeps rated movies); the others exclude the
    // training movies. So evaluate reproduces P3's recorded top-N figures exactly.
    let exclude_rated = match info.model_kind {
        ModelKind::SigmoidMf => run_config::<p3_recommender::Config>(info)?.exclude_rated,
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

    // Top-N for every user by the ranking protocol's list builder (its device twin on CUDA),
    // training movies excluded (P3: as its config says). Every link is monotone, so ranking by
    // the raw score (plus P4's movie means, which differ per movie) ranks by predicted stars.
    let started = Instant::now();
    let (n_users, n_movies) = (model.spec().n_users, model.spec().n_movies);
    let tu: Vec<u32> = train.iter().map(|&i| r.user[i as usize]).collect();
    let tm: Vec<u32> = train.iter().map(|&i| r.movie[i as usize]).collect();
    let rated = RatedItems::from_pairs(n_users, &tu, &tm)?;
    let scores = model.factor_scores()?;
    let lists = top_lists_on(device, &scores, k, exclude_rated.then_some(&rated))?;
    f.put("top-N device", json!(device.to_string()), device.describe());
    f.time(&format!("top-{} for {n_users} users", k), started);
    let started = Instant::now();
    let stats = MovieStats::compute(r, Some(&train), n_movies);
    let beyond =
        BeyondAccuracy::compute(lists.view(), model.item_embeddings(), &stats.mean, &stats.counts_u64())?;
    f.num(&format!("top-{k} diversity"), beyond.diversity);
    f.num("novelty (mean rating, notebook)", beyond.mean_rating_novelty);
    f.num("novelty (self-information, bits)", beyond.self_information_novelty);
    f.num("catalogue coverage", beyond.catalogue_coverage);
    f.num("Gini of recommendation counts", beyond.gini);
    f.time("beyond-accuracy", started);
    if !val.is_empty() {
        // The ranking protocol on the run's split, as for ranking runs: training movies never
        // candidates, the validation rows relevant.
        let started = Instant::now();
        let relevant = pipelines::rated_rows(ds, &val)?;
        let eval = held_out_protocol(&scores, ds, &rated, &relevant)?;
        protocol_figures(f, &eval);
        f.time("ranking protocol", started);
    }
    Ok(())
}

/// The ranking protocol's figures under `reelvec compare --json`'s names.
fn protocol_figures(f: &mut Figures, eval: &HeldOutEvaluation) {
    f.put("protocol users", json!(eval.users.len()), eval.users.len().to_string());
    for (name, x) in eval.outcome.metrics.named() {
        f.num(name, x);
    }
}

fn ranker(dir: &Path, info: &RunInfo, ds: &Dataset, f: &mut Figures) -> Result<(), ModelError> {
    check_fingerprint(info, ds, "the data set")?;
    let (model, _) = load_ranker(dir)?;
    let rated = checkpoint::load_rated(dir)?
        .ok_or_else(|| ModelError::checkpoint(dir.join("rated.safetensors"), "is missing"))?;
    let started = Instant::now();
    let eval = evaluate_ranker(model.as_ref(), &rated, ds)?;
    f.put("evaluated on", json!("held-out"), format!("{} held-out rows", eval.held_out));
    protocol_figures(f, &eval);
    f.time("ranking protocol", started);
    Ok(())
}

fn item2vec(dir: &Path, info: &RunInfo, ds: &Dataset, f: &mut Figures) -> Result<(), ModelError> {
    let cfg: p0_cbow::Config = run_config(info)?;
    let (model, _) = p0_cbow::load(dir)?;
    let (data, sequences) = p0_cbow::prepare(ds, &cfg)?;
    check_fingerprint(info, &data, "the data set after P0's filters")?;
    let (_, val_users) = transforms::split_users(sequences.len(), cfg.train_fraction, cfg.seed);
    let val_seqs: Vec<Vec<u32>> = val_users.iter().map(|&u| sequences[u as usize].clone()).collect();
    let v = model.vocab();
    let started = Instant::now();
    let examples = Examples::for_config(&val_seqs, &cfg.model);
    if examples.is_empty() {
        return Err(ModelError::InvalidData("the run's validation split has no example".into()));
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
        let Some((&target, before)) = seq.split_last() else { continue };
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

fn cooc(dir: &Path, info: &RunInfo, ds: &Dataset, f: &mut Figures) -> Result<(), ModelError> {
    check_fingerprint(info, ds, "the data set")?;
    let cfg: p1_cooc::Config = run_config(info)?;
    let (params, _) = checkpoint::load_run(dir)?;
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

/// A model's protocol figures on a run's held-out part, and the users it evaluated.
#[derive(Debug, Clone, PartialEq)]
pub struct HeldOutEvaluation {
    /// The protocol's figures and top lists (one row per user of `users`).
    pub outcome: ProtocolOutcome,
    /// The evaluated users: those with at least one held-out movie, ascending.
    pub users: Vec<u32>,
    /// Held-out (user, movie) interactions.
    pub held_out: usize,
}

/// The ranking protocol for `scorer` on `ds`: per user, `train`'s movies are never candidates
/// (and give the novelty counts), `relevant`'s are the held-out movies; the evaluated users are
/// those with at least one relevant movie. One place builds the protocol's input for the runs
/// `reelvec evaluate` ranks (ranking models and rating models alike).
pub fn held_out_protocol(
    scorer: &dyn ItemScorer,
    ds: &Dataset,
    train: &RatedItems,
    relevant: &RatedItems,
) -> Result<HeldOutEvaluation, ModelError> {
    let n_users = train.n_users();
    if ds.users.len() != n_users || relevant.n_users() != n_users {
        return Err(ModelError::InvalidConfig(format!(
            "the run holds {n_users} users, the data set {}",
            ds.users.len()
        )));
    }
    let users: Vec<u32> = (0..n_users as u32).filter(|&u| !relevant.row(u).is_empty()).collect();
    let train_movies: Vec<u32> = (0..n_users as u32).flat_map(|u| train.row(u).iter().copied()).collect();
    let train_counts = interaction_counts(&train_movies, ds.movies.len())?;
    let genres = genre_sets(ds);
    let input =
        EvalInput { users: &users, exclude: train, relevant, train_counts: &train_counts, genres: &genres };
    let outcome = evaluate(scorer, &input)?;
    Ok(HeldOutEvaluation { outcome, users, held_out: relevant.indices().len() })
}

/// Evaluates `model`, fitted on `train` (per user, the movies it was trained on: the run's
/// `rated.safetensors`), on `ds`, the data set of the run, by [`held_out_protocol`]: every
/// rating of `ds` whose movie is not among its user's training movies is relevant. A run
/// trained on every rating has nothing held out and is [`ModelError::InvalidConfig`] (train
/// with `--holdout`).
pub fn evaluate_ranker(
    model: &dyn Ranker,
    train: &RatedItems,
    ds: &Dataset,
) -> Result<HeldOutEvaluation, ModelError> {
    let r = &ds.ratings;
    if ds.users.len() != train.n_users() {
        return Err(ModelError::InvalidConfig(format!(
            "the run holds {} users, the data set {}",
            train.n_users(),
            ds.users.len()
        )));
    }
    let held: Vec<u32> = (0..r.len() as u32)
        .filter(|&i| train.row(r.user[i as usize]).binary_search(&r.movie[i as usize]).is_err())
        .collect();
    if held.is_empty() {
        return Err(ModelError::InvalidConfig(
            "the run was trained on every rating of its data, so nothing is held out to rank; \
             train it with `--holdout SPLIT` (or rank models with `reelvec compare`)"
                .into(),
        ));
    }
    let relevant = rated_rows(ds, &held)?;
    held_out_protocol(&AsItemScorer(model), ds, train, &relevant)
}
