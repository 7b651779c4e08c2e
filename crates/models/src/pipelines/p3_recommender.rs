//! P3 — the sigmoid dot-product recommender with diversity and novelty (PROTOCOLS.md P3,
//! notebook `003_295f0bf3d3597754.txt`).
//!
//! Data: every rating row (the small MovieLens), users and movies indexed by first appearance
//! (the dataset's dense order: the loader interns ids as it reads them), ratings min-max scaled
//! to [0, 1], a seeded 90/10 row split.
//! Model: `σ(p_u . q_i + b_u + c_i)`, k = 16, all tables N(0, 1). MSE on the scaled rating,
//! Adam lr 0.01, batch 64 shuffled, 10 epochs. The trained weights are serialised and loaded
//! back into a fresh model, which must predict identically ([`Outcome::reload_max_abs_diff`]).
//!
//! Top-N (computed only when the caller asks, by [`Outcome::with_top_n`]: it scores every user
//! against every movie, which on large data costs more than training): each user's 10
//! best-scored movies by the ranking protocol's one list builder (reelvec-metrics'
//! `protocol::top_lists`, the lists `reelvec evaluate` and `reelvec compare` rank with). The
//! notebook's lists differ from the protocol's in one point, passed as a parameter: the
//! notebook does not exclude the user's rated movies (`exclude_rated = false`, the default);
//! the protocol excludes the training movies (`exclude_rated = true`). Over all users' lists, reelvec-metrics'
//! `BeyondAccuracy` with counts and mean ratings over the training rows: diversity (mean over
//! the 45 pairs of `1 - cos`), the notebook's "novelty" (mean of the movies' mean rating in
//! stars; really a popularity measure), self-information novelty (`-log2(train count / train
//! interactions)`, the one definition evaluate uses too), coverage and Gini. Also the best-rated
//! movies with at least `map_min_ratings` training ratings (for the 2-D map).

use std::time::Instant;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use reelvec_data::transforms::{self, MovieStats};
use reelvec_data::Dataset;
use reelvec_engine::{
    AdamConfig, Device, History, Init, OptimizerConfig, Schedule, ScheduleStep, TrainConfig,
};
use serde::{Deserialize, Serialize};

use super::FeatureFit;
use super::{
    check_dim, check_fraction, check_init_std, check_key, check_train, require_ratings, run_info_for,
    MovieScore,
};
use crate::checkpoint;
use crate::mf::{Link, MfModel, MfObjective, MfSpec, MfVariant, OutputMap, RatingColumns};
use crate::mf_gpu::fit_mf;
use crate::{ItemEmbeddings, ModelError, ModelKind, RatingModel};
use ndarray::Array2;
use reelvec_metrics::protocol::top_lists;
use reelvec_metrics::topn;
use reelvec_metrics::BeyondAccuracy;

/// P3 settings; [`Default`] is the notebook's protocol.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// Number of factors k.
    pub k: usize,
    /// Standard deviation of the N(0, std²) initialisation of every table.
    pub init_std: f32,
    /// Fraction of rating rows used for training; the rest validate.
    pub train_fraction: f64,
    /// Seed of the split and the initialisation (the CLI's `--seed` also sets `train.seed`).
    pub seed: u64,
    /// Trainer settings.
    pub train: TrainConfig,
    /// Length of each user's recommendation list.
    pub top_n: usize,
    /// Leave movies the user rated (in training) out of the lists.
    pub exclude_rated: bool,
    /// Minimum number of ratings for the best-rated list.
    pub map_min_ratings: usize,
    /// Length of the best-rated list.
    pub map_top: usize,
    /// The model section: item side features (`model.item_features`; none by default).
    pub model: super::MfModelConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            k: 16,
            init_std: 1.0,
            train_fraction: 0.9,
            seed: 42,
            train: TrainConfig {
                epochs: 10,
                batch_size: 64,
                shuffle: true,
                seed: 42,
                lr: 0.01,
                optimizer: OptimizerConfig::Adam(AdamConfig::default()),
                schedule: Schedule::Constant,
                schedule_step: ScheduleStep::PerBatch,
                early_stopping: None,
                restore_best: false,
                quiet: false,
                flush_denormals: false,
                lazy_replay: false,
            },
            top_n: 10,
            exclude_rated: false,
            map_min_ratings: 100,
            map_top: 30,
            model: super::MfModelConfig::default(),
        }
    }
}

impl Config {
    /// Checks every key against its allowed range (the error names the key and the range);
    /// [`run_on`] calls it before any work.
    pub fn validate(&self) -> Result<(), ModelError> {
        check_dim("k", self.k)?;
        check_init_std("init_std", self.init_std)?;
        check_fraction("train_fraction", self.train_fraction)?;
        self.model.validate()?;
        check_key("top_n", self.top_n, "at least 1", self.top_n >= 1)?;
        check_train("train", &self.train)
    }
}

/// What a P3 run produces.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The trained model (after the save/load round trip).
    pub model: MfModel,
    /// Per-epoch history (MSE on the scaled ratings).
    pub history: History,
    /// Training rows.
    pub train_rows: Vec<u32>,
    /// Validation rows.
    pub val_rows: Vec<u32>,
    /// The min-max range of the ratings.
    pub rating_range: (f32, f32),
    /// Validation MSE on the scaled ratings after the last epoch.
    pub val_mse_scaled: Option<f64>,
    /// Validation RMSE in stars.
    pub val_rmse: Option<f64>,
    /// Validation MAE in stars.
    pub val_mae: Option<f64>,
    /// Largest |prediction difference| between the trained model and the reloaded copy.
    pub reload_max_abs_diff: f32,
    /// Top-N figures over all users and an example list: None until [`Outcome::with_top_n`]
    /// computes them.
    pub top_n: Option<TopNReport>,
    /// Best-rated movies (mean stars) among those with at least `map_min_ratings` ratings.
    pub best_rated: Vec<MovieScore>,
    /// Wall-clock seconds of the training.
    pub train_seconds: f64,
}

impl Outcome {
    /// The protocol's figures as JSON (stored as `metrics` in `run.json`).
    pub fn metrics_json(&self) -> serde_json::Value {
        serde_json::json!({
            "rating_range": [self.rating_range.0, self.rating_range.1],
            "val_mse_scaled": self.val_mse_scaled,
            "val_rmse": self.val_rmse,
            "val_mae": self.val_mae,
            "reload_max_abs_diff": self.reload_max_abs_diff,
            "top_n": self.top_n.as_ref().map(|t| &t.figures),
            "example_user": self.top_n.as_ref().and_then(|t| t.example_user.as_ref()),
            "best_rated": self.best_rated,
            "train_rows": self.train_rows.len(),
            "val_rows": self.val_rows.len(),
            "train_seconds": self.train_seconds,
        })
    }
}

/// Trains P3 on `ds` with `cfg` on the CPU.
pub fn run(ds: &Dataset, cfg: &Config) -> Result<Outcome, ModelError> {
    run_on(ds, cfg, Device::Cpu)
}

/// Trains P3 on `ds` with `cfg` on `device` (the GPU trains with
/// [`MfGpuObjective`](crate::mf_gpu::MfGpuObjective); everything after training runs on the CPU
/// with the downloaded weights).
pub fn run_on(ds: &Dataset, cfg: &Config, device: Device) -> Result<Outcome, ModelError> {
    cfg.validate()?;
    require_ratings(ds, "P3")?;
    super::check_mf_tables_fit(ds, cfg.k)?;
    let (scaled, mm) = transforms::min_max_scale(&ds.ratings.rating);
    let (train_rows, val_rows) = super::rating_split(ds.ratings.len(), cfg.train_fraction, cfg.seed);
    let train = RatingColumns::gather(&ds.ratings, &train_rows, |r| scaled[r]);
    let val = RatingColumns::gather(&ds.ratings, &val_rows, |r| scaled[r]);
    let spec = MfSpec {
        n_users: ds.users.len(),
        n_movies: ds.movies.len(),
        k: cfg.k,
        biases: true,
        link: Link::SigmoidRange { lo: 0.0, hi: 1.0 },
    };
    let init = if cfg.init_std > 0.0 { Init::Normal { mean: 0.0, std: cfg.init_std } } else { Init::Zeros };
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let mut params = spec.init_params(init, init, &mut rng)?;
    let side = FeatureFit::prepare(&cfg.model, ds, &spec, &mut params, init, init, &mut rng)?;
    let objective = side.objective(MfObjective::new(spec, &params, train, Some(val.clone()))?, &params)?;
    let started = Instant::now();
    let history = fit_mf(device, &cfg.train, &objective, &mut params)?;
    let train_seconds = started.elapsed().as_secs_f64();
    let output = OutputMap::MinMax { min: mm.min, max: mm.max };
    // The objective's tables (feature tables included) for the validation error below; the
    // model folds the feature tables into its movie rows.
    let fit_params = params.clone();
    let trained = side.model(MfVariant::Sigmoid, spec, params, output, &objective.train().movie)?;

    // Save the weights and load them back into a fresh model (in memory: the same bytes a run
    // directory holds).
    let bytes = checkpoint::params_to_safetensors(&trained.checkpoint_params()?)?;
    let where_ = std::path::Path::new("<in-memory P3 checkpoint>");
    let reloaded_params = checkpoint::params_from_safetensors(&bytes, where_)?;
    let mut info = run_info_for(ds, ModelKind::SigmoidMf, serde_json::Value::Null, cfg.seed, None);
    info.item_features = trained.item_feature_names();
    let model = MfModel::from_run(&reloaded_params, &info, where_)?;
    let reload_max_abs_diff = (0..val.len().min(2000))
        .map(|r| {
            (trained.predict(val.user[r], val.movie[r]) - model.predict(val.user[r], val.movie[r])).abs()
        })
        .fold(0.0f32, f32::max);

    let (val_mse_scaled, val_rmse, val_mae) = if val.is_empty() {
        (None, None, None)
    } else {
        let se = objective.squared_error(&fit_params, &val);
        let stars: Vec<f32> = val_rows.iter().map(|&r| ds.ratings.rating[r as usize]).collect();
        let (rmse, mae) = model.rmse_mae_stars(&val.user, &val.movie, &stars);
        (Some(se.mean()), Some(rmse), Some(mae))
    };

    let stats = MovieStats::compute(&ds.ratings, Some(&train_rows), ds.movies.len());
    let eligible: Vec<f32> = (0..ds.movies.len())
        .map(|m| if stats.count[m] as usize >= cfg.map_min_ratings { stats.mean[m] } else { f32::NAN })
        .collect();
    let best_rated = MovieScore::list(ds, &topn::top_k_of_row(&eligible, cfg.map_top, &[])?);

    Ok(Outcome {
        model,
        history,
        train_rows,
        val_rows,
        rating_range: (mm.min, mm.max),
        val_mse_scaled,
        val_rmse,
        val_mae,
        reload_max_abs_diff,
        top_n: None,
        best_rated,
        train_seconds,
    })
}

/// Every user's top-N figures and the first user's list.
#[derive(Debug, Clone, PartialEq)]
pub struct TopNReport {
    /// reelvec-metrics' beyond-accuracy figures over all users' lists (counts and mean ratings
    /// over the training rows).
    pub figures: BeyondAccuracy,
    /// Every user's list (row = dense user, padded with reelvec-metrics' `NO_ITEM`).
    pub lists: Array2<u32>,
    /// The first user's list (an example), with predicted stars.
    pub example_user: Option<(u64, Vec<MovieScore>)>,
}

impl Outcome {
    /// Computes every user's top-`cfg.top_n` list (without the training-rated movies when
    /// `cfg.exclude_rated`) and its figures, on request: `ds` must be the data the run trained
    /// on. [`run_on`] does not, so that training alone never pays for U x M scores.
    pub fn with_top_n(mut self, ds: &Dataset, cfg: &Config) -> Result<Self, ModelError> {
        let model = &self.model;
        let rated = super::rated_rows(ds, &self.train_rows)?;
        let stats = MovieStats::compute(&ds.ratings, Some(&self.train_rows), ds.movies.len());
        let users: Vec<u32> = (0..ds.users.len() as u32).collect();
        let scores = model.factor_scores()?;
        let lists = top_lists(&scores, &users, cfg.exclude_rated.then_some(&rated), cfg.top_n)?;
        let figures =
            BeyondAccuracy::compute(lists.view(), model.item_embeddings(), &stats.mean, &stats.counts_u64())?;
        let example_user = (lists.nrows() > 0).then(|| {
            let pairs: Vec<(u32, f32)> = lists
                .row(0)
                .iter()
                .filter(|&&m| m != topn::NO_ITEM)
                .map(|&m| (m, model.predict(0, m)))
                .collect();
            (ds.users.raw(0).unwrap_or(0), MovieScore::list(ds, &pairs))
        });
        self.top_n = Some(TopNReport { figures, lists, example_user });
        Ok(self)
    }
}
