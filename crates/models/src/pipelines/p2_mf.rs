//! P2 — biased matrix factorisation with a sigmoid range (PROTOCOLS.md P2, notebook
//! `002_161d122cd37f172b.txt`).
//!
//! Data: every rating row (ml-100k `u.data` in the notebook), a seeded 80/20 row split.
//! Model: `sigmoid_range(p_u . q_i + b_u + c_i, 0, 5.5)`, k = 50, all four tables N(0, 1).
//! Training: MSE, Adam lr 3e-3 with L2 weight decay 3e-4 (PyTorch semantics: every parameter,
//! every step), batch 100 shuffled, 30 epochs, the weights of the best validation epoch kept.
//! The notebook built a `LinearLR(0.5, 10)` but never stepped it, so the schedule is constant.
//!
//! Reported ([`Outcome`]): train/validation MSE per epoch, the best validation MSE and RMSE in
//! stars (the notebook: 0.846 / 0.920), MAE, the five movies with the lowest and highest
//! learned bias, the top movies by bias, and the nearest movies by cosine to a well-known one
//! (Star Wars (1977) by default).
//!
//! ## Presets
//!
//! - `notebook` ([`Config::default`]): the protocol above.
//! - `tuned` ([`Config::tuned`]): the same model, k, initialisation, split and L2 Adam, with
//!   batch 256, lr 1e-2 decayed linearly to 0 over the 30 epochs (stepped per epoch) and weight
//!   decay 4e-4; the best validation epoch is kept. On ml-100k (release build, seeded 80/20
//!   split) it lowers the best validation RMSE by about 0.005 on every seed tried:
//!
//!   | seed | notebook | tuned  |
//!   |------|----------|--------|
//!   | 42   | 0.9051   | 0.9012 |
//!   | 1    | 0.9105   | 0.9055 |
//!   | 2    | 0.9141   | 0.9083 |
//!
//!   (`reelvec train --model mf --data ml-100k --out RUN [--preset tuned] [--seed S]`.) Larger k
//!   (100, 200) gains at most 0.001 more; small-variance initialisation with AdamW (fastai's
//!   recipe) overfits within a few epochs here and stays above 0.905; lazy (touched-rows) Adam
//!   with L2 is worse (0.95 and up).
//! - `fast` ([`Config::fast`]): `tuned` with the factor tables drawn from N(0, 0.1²), the biases
//!   starting at zero and 5 epochs (the decay spans them). On ml-100k it reaches the tuned
//!   preset's RMSE in a sixth of the epochs: best validation RMSE 0.9010 / 0.9055 / 0.9091 for
//!   seeds 42 / 1 / 2, in about 0.4 s of CPU for the whole `reelvec train` process at 1 thread
//!   (release build, load average near 8 on 2 cores, so wall times were not taken). It is the
//!   preset `reelvec bench --suite frontier` sets beside Surprise's SVD.

use std::time::Instant;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use reelvec_data::Dataset;
use reelvec_engine::{
    AdamConfig, Device, History, Init, OptimizerConfig, Schedule, ScheduleStep, TrainConfig,
};
use serde::{Deserialize, Serialize};

use super::{
    check_dim, check_fraction, check_init_std, check_key, check_train, find_title, require_ratings,
    FeatureFit, MfModelConfig, MovieScore,
};
use crate::mf::{Link, MfModel, MfObjective, MfSpec, MfVariant, OutputMap, RatingColumns};
use crate::mf_gpu::fit_mf;
use crate::traits::no_vector_as_none;
use crate::{ItemEmbeddings, ModelError};
use reelvec_metrics::similarity::extremes;
use reelvec_metrics::topn::top_k_of_row;

/// P2 settings; [`Default`] is the notebook's protocol.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// Number of factors k.
    pub k: usize,
    /// `[lo, hi]` of `sigmoid_range`.
    pub y_range: [f32; 2],
    /// Standard deviation of the N(0, std²) initialisation of the factor tables.
    pub init_std: f32,
    /// Standard deviation of the N(0, std²) initialisation of the bias tables (0 = zeros).
    pub bias_init_std: f32,
    /// Fraction of rating rows used for training; the rest validate.
    pub train_fraction: f64,
    /// Seed of the split and the initialisation (the CLI's `--seed` also sets `train.seed`).
    pub seed: u64,
    /// Trainer settings: epochs, batch size, shuffling and its seed, lr, optimizer, schedule,
    /// early stopping, restore-best.
    pub train: TrainConfig,
    /// Full title of the movie whose nearest neighbours are reported.
    pub well_known: String,
    /// How many movies the neighbour and lowest/highest-bias lists hold.
    pub report_n: usize,
    /// How many movies the top-by-bias list holds.
    pub top_by_bias: usize,
    /// The model section: item side features (`model.item_features`; none by default).
    pub model: MfModelConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            k: 50,
            y_range: [0.0, 5.5],
            init_std: 1.0,
            bias_init_std: 1.0,
            train_fraction: 0.8,
            seed: 42,
            train: TrainConfig {
                epochs: 30,
                batch_size: 100,
                shuffle: true,
                seed: 42,
                lr: 3e-3,
                optimizer: OptimizerConfig::Adam(AdamConfig { weight_decay: 3e-4, ..AdamConfig::default() }),
                schedule: Schedule::Constant,
                schedule_step: ScheduleStep::PerBatch,
                early_stopping: None,
                restore_best: true,
                quiet: false,
                flush_denormals: false,
                lazy_replay: false,
            },
            well_known: "Star Wars (1977)".to_string(),
            report_n: 5,
            top_by_bias: 40,
            model: MfModelConfig::default(),
        }
    }
}

impl Config {
    /// The tuned preset (see the module doc).
    pub fn tuned() -> Self {
        let base = Self::default();
        let epochs = base.train.epochs;
        Self {
            train: TrainConfig {
                batch_size: 256,
                lr: 1e-2,
                optimizer: OptimizerConfig::Adam(AdamConfig { weight_decay: 4e-4, ..AdamConfig::default() }),
                schedule: Schedule::LinearDecay { total_steps: epochs as u64 },
                schedule_step: ScheduleStep::PerEpoch,
                ..base.train.clone()
            },
            ..base
        }
    }

    /// The fast preset (see the module doc): [`Config::tuned`] with N(0, 0.1²) factors, zero
    /// biases and 5 epochs.
    pub fn fast() -> Self {
        let tuned = Self::tuned();
        let epochs = 5;
        Self {
            init_std: 0.1,
            bias_init_std: 0.0,
            train: TrainConfig {
                epochs,
                schedule: Schedule::LinearDecay { total_steps: epochs as u64 },
                ..tuned.train.clone()
            },
            ..tuned
        }
    }

    /// Checks every key against its allowed range (the error names the key and the range);
    /// [`run_on`] calls it before any work.
    pub fn validate(&self) -> Result<(), ModelError> {
        check_dim("k", self.k)?;
        let [lo, hi] = self.y_range;
        check_key(
            "y_range",
            format!("[{lo}, {hi}]"),
            "finite lo < hi",
            lo.is_finite() && hi.is_finite() && lo < hi,
        )?;
        check_init_std("init_std", self.init_std)?;
        let b = self.bias_init_std;
        check_key("bias_init_std", b, "a finite number >= 0 (0: zeros)", b.is_finite() && b >= 0.0)?;
        check_fraction("train_fraction", self.train_fraction)?;
        self.model.validate()?;
        check_train("train", &self.train)
    }

    /// A preset by name: `notebook` (the default) or `tuned`.
    pub fn preset(name: &str) -> Option<Self> {
        match name {
            "notebook" | "default" => Some(Self::default()),
            "tuned" => Some(Self::tuned()),
            "fast" => Some(Self::fast()),
            _ => None,
        }
    }
}

/// What a P2 run produces.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The trained model (best validation epoch when `train.restore_best`).
    pub model: MfModel,
    /// Per-epoch history (MSE in stars²).
    pub history: History,
    /// Training rows (indices into the dataset's ratings).
    pub train_rows: Vec<u32>,
    /// Validation rows.
    pub val_rows: Vec<u32>,
    /// Lowest validation MSE over the epochs.
    pub best_val_mse: Option<f64>,
    /// `sqrt(best_val_mse)`, stars.
    pub best_val_rmse: Option<f64>,
    /// RMSE of the returned model on the validation rows, stars.
    pub val_rmse: Option<f64>,
    /// MAE of the returned model on the validation rows, stars.
    pub val_mae: Option<f64>,
    /// Movies with the lowest learned bias, lowest first.
    pub lowest_bias: Vec<MovieScore>,
    /// Movies with the highest learned bias, highest first.
    pub highest_bias: Vec<MovieScore>,
    /// The top movies by bias (the notebook's top 40).
    pub top_by_bias: Vec<MovieScore>,
    /// The well-known movie and its nearest movies by cosine of the movie factors.
    pub neighbours: Option<(MovieScore, Vec<MovieScore>)>,
    /// Wall-clock seconds of the training.
    pub train_seconds: f64,
}

impl Outcome {
    /// The protocol's figures as JSON (stored as `metrics` in `run.json`).
    pub fn metrics_json(&self) -> serde_json::Value {
        serde_json::json!({
            "best_epoch": self.history.best_epoch,
            "best_val_mse": self.best_val_mse,
            "best_val_rmse": self.best_val_rmse,
            "val_rmse": self.val_rmse,
            "val_mae": self.val_mae,
            "train_rows": self.train_rows.len(),
            "val_rows": self.val_rows.len(),
            "lowest_bias": self.lowest_bias,
            "highest_bias": self.highest_bias,
            "top_by_bias": self.top_by_bias,
            "neighbours": self.neighbours,
            "train_seconds": self.train_seconds,
        })
    }
}

/// Trains P2 on `ds` with `cfg` on the CPU.
pub fn run(ds: &Dataset, cfg: &Config) -> Result<Outcome, ModelError> {
    run_on(ds, cfg, Device::Cpu)
}

/// Trains P2 on `ds` with `cfg` on `device` (the GPU trains with
/// [`MfGpuObjective`](crate::mf_gpu::MfGpuObjective); everything after training runs on the CPU
/// with the downloaded weights).
pub fn run_on(ds: &Dataset, cfg: &Config, device: Device) -> Result<Outcome, ModelError> {
    cfg.validate()?;
    require_ratings(ds, "P2")?;
    super::check_mf_tables_fit(ds, cfg.k)?;
    let (train_rows, val_rows) = super::rating_split(ds.ratings.len(), cfg.train_fraction, cfg.seed);
    let stars = |r: usize| ds.ratings.rating[r];
    let train = RatingColumns::gather(&ds.ratings, &train_rows, stars);
    let val = RatingColumns::gather(&ds.ratings, &val_rows, stars);
    let spec = MfSpec {
        n_users: ds.users.len(),
        n_movies: ds.movies.len(),
        k: cfg.k,
        biases: true,
        link: Link::SigmoidRange { lo: cfg.y_range[0], hi: cfg.y_range[1] },
    };
    let normal = |std: f32| if std > 0.0 { Init::Normal { mean: 0.0, std } } else { Init::Zeros };
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let (factor_init, bias_init) = (normal(cfg.init_std), normal(cfg.bias_init_std));
    let mut params = spec.init_params(factor_init, bias_init, &mut rng)?;
    let side = FeatureFit::prepare(&cfg.model, ds, &spec, &mut params, factor_init, bias_init, &mut rng)?;
    let objective = side.objective(MfObjective::new(spec, &params, train, Some(val.clone()))?, &params)?;

    let started = Instant::now();
    let history = fit_mf(device, &cfg.train, &objective, &mut params)?;
    let train_seconds = started.elapsed().as_secs_f64();

    let best_val_mse = history.epochs.iter().filter_map(|e| e.val_loss).reduce(f64::min);
    let model = side.model(MfVariant::Biased, spec, params, OutputMap::Stars, &objective.train().movie)?;
    let (val_rmse, val_mae) = if val.is_empty() {
        (None, None)
    } else {
        let (rmse, mae) = model.rmse_mae_stars(&val.user, &val.movie, &val.target);
        (Some(rmse), Some(mae))
    };

    let bias = model.movie_bias().unwrap_or(&[]);
    let by_bias = extremes(ndarray::ArrayView1::from(bias), cfg.report_n, None)?;
    let (lowest, highest) = (by_bias.lowest, by_bias.highest);
    let top = top_k_of_row(bias, cfg.top_by_bias, &[])?;
    let neighbours = match find_title(ds, &cfg.well_known) {
        Some(m) => {
            let query = MovieScore::new(ds, m, 1.0);
            // A movie without a vector has an empty neighbour list (the CLI says so).
            let list = no_vector_as_none(model.nearest_by_cosine(m, cfg.report_n))?.unwrap_or_default();
            Some((query, MovieScore::list(ds, &list)))
        }
        None => None,
    };

    Ok(Outcome {
        best_val_rmse: best_val_mse.map(f64::sqrt),
        best_val_mse,
        val_rmse,
        val_mae,
        lowest_bias: MovieScore::list(ds, &lowest),
        highest_bias: MovieScore::list(ds, &highest),
        top_by_bias: MovieScore::list(ds, &top),
        neighbours,
        history,
        model,
        train_rows,
        val_rows,
        train_seconds,
    })
}
