//! P4 — residual factorisation (PROTOCOLS.md P4, notebook `004_720ee5258f7621d1.txt`).
//!
//! Data: every rating row (ml-latest-small in the notebook). `g` = global mean; with
//! `r' = r - g`, `user_avg` and `movie_avg` are the means of `r'` per user and per movie; the
//! target is `t = r' - user_avg_u - movie_avg_i`. (The notebook trains on all rows; with
//! `train_fraction < 1` the means come from the training rows only and the rest validate.)
//! Model: `p_u . q_i`, k = 2, no biases, N(0, 1) tables (the notebook's tables are indexed by
//! raw id; ours are dense, which gives the same result: rows never rated get no gradient and,
//! without weight decay, never move). MSE, Adam lr 3e-4, batch 300 in file order (not
//! shuffled), 100 epochs. Reported: the loss of each epoch's last batch (4.24 at epoch 0 in
//! the notebook, falling slowly), plus RMSE in stars of `g + user_avg + movie_avg + p . q`.

use std::time::Instant;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use reelvec_data::transforms::Means;
use reelvec_data::Dataset;
use reelvec_engine::{
    AdamConfig, Device, History, Init, OptimizerConfig, Schedule, ScheduleStep, TrainConfig,
};
use serde::{Deserialize, Serialize};

use super::FeatureFit;
use super::{check_dim, check_fraction, check_init_std, check_train, require_ratings};
use crate::mf::{Link, MfModel, MfObjective, MfSpec, MfVariant, OutputMap, RatingColumns};
use crate::mf_gpu::fit_mf;
use crate::ModelError;

/// P4 settings; [`Default`] is the notebook's protocol.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// Number of factors k.
    pub k: usize,
    /// Standard deviation of the N(0, std²) initialisation.
    pub init_std: f32,
    /// Fraction of rows used for training (1 = the notebook: all rows, no validation).
    pub train_fraction: f64,
    /// Seed of the initialisation (and of the split when `train_fraction < 1`).
    pub seed: u64,
    /// Trainer settings.
    pub train: TrainConfig,
    /// The model section: item side features (`model.item_features`; none by default).
    pub model: super::MfModelConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            k: 2,
            init_std: 1.0,
            train_fraction: 1.0,
            seed: 42,
            train: TrainConfig {
                epochs: 100,
                batch_size: 300,
                shuffle: false,
                seed: 42,
                lr: 3e-4,
                optimizer: OptimizerConfig::Adam(AdamConfig::default()),
                schedule: Schedule::Constant,
                schedule_step: ScheduleStep::PerBatch,
                early_stopping: None,
                restore_best: false,
                quiet: false,
                flush_denormals: false,
                lazy_replay: false,
            },
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
        check_train("train", &self.train)
    }
}

/// What a P4 run produces.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The trained model (predicts `g + user_avg + movie_avg + p . q`).
    pub model: MfModel,
    /// Per-epoch history; `last_batch_loss` is the notebook's printed figure.
    pub history: History,
    /// Training rows.
    pub train_rows: Vec<u32>,
    /// Validation rows (empty with the notebook's `train_fraction = 1`).
    pub val_rows: Vec<u32>,
    /// The means the targets were built from.
    pub means: Means,
    /// RMSE in stars of the baseline `g + user_avg + movie_avg` alone on the training rows.
    pub baseline_train_rmse: f64,
    /// RMSE in stars of the full prediction on the training rows.
    pub train_rmse: f64,
    /// RMSE in stars on the validation rows, when there are any.
    pub val_rmse: Option<f64>,
    /// Wall-clock seconds of the training.
    pub train_seconds: f64,
}

impl Outcome {
    /// Last-batch loss of each epoch.
    pub fn last_batch_losses(&self) -> Vec<f64> {
        self.history.epochs.iter().map(|e| e.last_batch_loss).collect()
    }

    /// The protocol's figures as JSON (stored as `metrics` in `run.json`).
    pub fn metrics_json(&self) -> serde_json::Value {
        serde_json::json!({
            "global_mean": self.means.global,
            "last_batch_loss": self.last_batch_losses(),
            "baseline_train_rmse": self.baseline_train_rmse,
            "train_rmse": self.train_rmse,
            "val_rmse": self.val_rmse,
            "train_rows": self.train_rows.len(),
            "val_rows": self.val_rows.len(),
            "train_seconds": self.train_seconds,
        })
    }
}

/// Trains P4 on `ds` with `cfg` on the CPU.
pub fn run(ds: &Dataset, cfg: &Config) -> Result<Outcome, ModelError> {
    run_on(ds, cfg, Device::Cpu)
}

/// Trains P4 on `ds` with `cfg` on `device` (the GPU trains with
/// [`MfGpuObjective`](crate::mf_gpu::MfGpuObjective); everything after training runs on the CPU
/// with the downloaded weights).
pub fn run_on(ds: &Dataset, cfg: &Config, device: Device) -> Result<Outcome, ModelError> {
    cfg.validate()?;
    require_ratings(ds, "P4")?;
    super::check_mf_tables_fit(ds, cfg.k)?;
    let (mut train_rows, val_rows) = super::rating_split(ds.ratings.len(), cfg.train_fraction, cfg.seed);
    // Batches follow file order when not shuffled, as the notebook's DataLoader does.
    train_rows.sort_unstable();
    let (n_users, n_movies) = (ds.users.len(), ds.movies.len());
    let means = Means::compute(&ds.ratings, &train_rows, n_users, n_movies);
    let target = |r: usize| means.target(ds.ratings.user[r], ds.ratings.movie[r], ds.ratings.rating[r]);
    let train = RatingColumns::gather(&ds.ratings, &train_rows, target);
    let val = RatingColumns::gather(&ds.ratings, &val_rows, target);
    let spec = MfSpec { n_users, n_movies, k: cfg.k, biases: false, link: Link::Identity };
    let init = if cfg.init_std > 0.0 { Init::Normal { mean: 0.0, std: cfg.init_std } } else { Init::Zeros };
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let mut params = spec.init_params(init, init, &mut rng)?;
    let side = FeatureFit::prepare(&cfg.model, ds, &spec, &mut params, init, init, &mut rng)?;
    let objective = side.objective(MfObjective::new(spec, &params, train, Some(val))?, &params)?;
    let started = Instant::now();
    let history = fit_mf(device, &cfg.train, &objective, &mut params)?;
    let train_seconds = started.elapsed().as_secs_f64();

    let output = OutputMap::Residual {
        global: means.global,
        user: means.user.clone(),
        movie: means.movie.clone(),
        scale: super::rating_scale(ds),
    };
    let model = side.model(MfVariant::Residual, spec, params, output, &objective.train().movie)?;
    let cols = |rows: &[u32]| {
        let r = &ds.ratings;
        let pick = |v: &[u32]| rows.iter().map(|&i| v[i as usize]).collect::<Vec<u32>>();
        (pick(&r.user), pick(&r.movie), rows.iter().map(|&i| r.rating[i as usize]).collect::<Vec<f32>>())
    };
    let (tu, tm, ts) = cols(&train_rows);
    let train_rmse = model.rmse_mae_stars(&tu, &tm, &ts).0;
    let baseline_se: f64 =
        (0..tu.len()).map(|r| f64::from(means.baseline(tu[r], tm[r]) - ts[r]).powi(2)).sum::<f64>()
            / tu.len().max(1) as f64;
    let val_rmse = if val_rows.is_empty() {
        None
    } else {
        let (vu, vm, vs) = cols(&val_rows);
        Some(model.rmse_mae_stars(&vu, &vm, &vs).0)
    };
    Ok(Outcome {
        model,
        history,
        train_rows,
        val_rows,
        means,
        baseline_train_rmse: baseline_se.sqrt(),
        train_rmse,
        val_rmse,
        train_seconds,
    })
}
