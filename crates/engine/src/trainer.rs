//! The training loop: seeded per-epoch shuffling, batching, the optimizer step with its
//! learning-rate schedule, a NaN/inf guard, per-epoch validation, early stopping with restore of
//! the best weights, per-epoch history and a progress bar.
//!
//! The loop knows nothing of models: it drives any [`Objective`], which turns a batch of unit
//! indices (rating rows, user sequences, matrix rows) into a loss and a gradient.
//!
//! **Determinism:** the unit order of epoch `e` is a function of `(seed, e)` only
//! ([`epoch_seed`]); given a deterministic objective, the same config gives bitwise-identical
//! weights.
//!
//! **Divergence guard:** after every `loss_and_grad` the batch loss and every touched gradient
//! row are checked; after every optimizer step the parameter rows the batch touched are
//! checked; at the end of every epoch the whole store is checked (rows a dense optimizer moved
//! without a gradient, e.g. by momentum or weight decay, are caught there; the error then names
//! the epoch's last step). A finite loss can explode too: an epoch whose mean training or
//! validation loss exceeds [`DIVERGENCE_FACTOR`] times the fit's reference loss — the larger of
//! the first batch's loss (measured before any step) and the objective's
//! [`loss_baseline`](Objective::loss_baseline) — has diverged as well. A failure is
//! [`EngineError::Diverged`] naming epoch and step; the caller then saves nothing.

use std::io::IsTerminal;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::clock::PassClock;
use crate::optim::{OptimizerConfig, Schedule};
use crate::params::{Grads, ParamStore, TableId};
use crate::EngineError;

/// Loss statistics of a batch or a whole pass: mean = sum / count.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct BatchLoss {
    /// Sum of the per-example losses.
    pub sum: f64,
    /// Number of examples (ratings, context windows, ...).
    pub count: u64,
}

impl BatchLoss {
    /// Statistics of `count` examples whose losses sum to `sum`.
    pub fn new(sum: f64, count: u64) -> Self {
        Self { sum, count }
    }

    /// The mean loss, `sum / count` (0 for an empty pass).
    pub fn mean(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.sum / self.count as f64
        }
    }

    /// Adds another batch's statistics (example-weighted pooling).
    pub fn add(&mut self, other: BatchLoss) {
        self.sum += other.sum;
        self.count += other.count;
    }
}

/// A training objective over "units" (rating rows, user sequences, matrix rows).
pub trait Objective: Sync {
    /// Number of training units; the trainer shuffles and batches `0..train_units()`.
    fn train_units(&self) -> usize;

    /// ADDS to `grads` the gradient of the batch's MEAN loss over `units` (indices into the
    /// training units) at `params`; returns the batch's loss statistics.
    fn loss_and_grad(&self, params: &ParamStore, units: &[u32], grads: &mut Grads) -> BatchLoss;

    /// Loss over the whole validation set, or None when there is none.
    fn validation_loss(&self, params: &ParamStore) -> Option<BatchLoss>;

    /// What the loss is, for labels and [`History::loss_name`] ("mean squared error",
    /// "softmax cross-entropy", "negative-sampling loss").
    fn loss_name(&self) -> &'static str {
        "loss"
    }

    /// The mean loss of an uninformed model, when the objective knows one (`ln V` for a softmax
    /// over V classes, the mean square of the targets for squared error): the floor of the
    /// divergence reference (see [`DIVERGENCE_FACTOR`]).
    fn loss_baseline(&self) -> Option<f64> {
        None
    }

    /// The most rows of any table one training unit touches, when bounded (a rating touches
    /// one user and one movie row): lets `optimizer.kind = "auto"` choose lazy Adam
    /// ([`OptimizerConfig::resolve`]). None: unknown (auto then runs dense Adam).
    fn rows_per_unit(&self) -> Option<usize> {
        None
    }

    /// Marks touched in `marks` every parameter row that `loss_and_grad` over `units` reads or
    /// writes a gradient for (`row_mut` on the gradient buffer, leaving the rows zero), and
    /// returns true; returns false, marking nothing, when the objective cannot name them. The
    /// trainer asks once with no units at the start of a fit: true lets it run dense Adam/AdamW
    /// as [`ReplayAdam`](crate::optim::ReplayAdam) (same bits, untouched rows replayed lazily),
    /// which brings the marked rows up to date before each `loss_and_grad`. A row read but not
    /// marked would be read stale, so an objective must mark all of them or return false.
    fn mark_rows(&self, _units: &[u32], _marks: &mut Grads) -> bool {
        false
    }
}

/// An epoch whose mean training or validation loss exceeds this many times the fit's reference
/// loss (the larger of the first batch's loss before any step and the objective's
/// [`loss_baseline`](Objective::loss_baseline)) ends the fit with [`EngineError::Diverged`].
///
/// 100 leaves a wide margin over anything a working fit does: on the pipelines' defaults
/// (P0 CBOW/skip-gram with softmax and negative sampling, P2, P3, P4 on synthetic data; see
/// `crates/models/tests/divergence.rs`) no epoch goes above 0.98 times the reference (losses
/// fall, and overfitting raises validation losses by a small factor), while a learning rate
/// far too large drives them 10^6 times and more above it within the first epoch.
pub const DIVERGENCE_FACTOR: f64 = 100.0;

/// When the learning-rate [`Schedule`] advances.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScheduleStep {
    /// The schedule's step index is the global optimizer step (0-based).
    #[default]
    PerBatch,
    /// The schedule's step index is the epoch (0-based), as when PyTorch code calls
    /// `scheduler.step()` once per epoch.
    PerEpoch,
}

/// Early stopping on the monitored loss (validation loss, or the epoch's training loss when
/// the objective has no validation set).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EarlyStopping {
    /// Never stop before this many epochs have run.
    pub min_epochs: usize,
    /// Stop after this many consecutive epochs without a strict improvement of the best loss
    /// (0 behaves like 1: the first epoch without improvement stops).
    pub patience: usize,
}

/// Everything the trainer needs to know.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TrainConfig {
    /// Maximum number of passes over the training units.
    pub epochs: usize,
    /// Units per optimizer step; the last batch of an epoch may be smaller (PyTorch's
    /// `drop_last=False`).
    pub batch_size: usize,
    /// Shuffle the units every epoch (seeded); otherwise they are visited in order.
    pub shuffle: bool,
    /// Seed of the per-epoch shuffles ([`epoch_seed`]).
    pub seed: u64,
    /// Base learning rate; the rate used at a step is `lr * schedule.factor(step)`.
    pub lr: f32,
    /// Which optimizer, with its hyperparameters.
    pub optimizer: OptimizerConfig,
    /// Learning-rate multiplier.
    pub schedule: Schedule,
    /// Whether the schedule advances per batch or per epoch.
    pub schedule_step: ScheduleStep,
    /// Stop early when the monitored loss stops improving.
    pub early_stopping: Option<EarlyStopping>,
    /// At the end, put back the weights of the epoch with the best monitored loss.
    pub restore_best: bool,
    /// No progress bar.
    pub quiet: bool,
    /// Run the CPU fit with subnormal floats flushed to zero (FTZ/DAZ on every thread of the
    /// fit; [`crate::fpenv`]). Off by default, as in PyTorch. Dense Adam on large, sparsely
    /// touched tables otherwise spends most of its time on subnormal moments; see
    /// docs/ARCHITECTURE.md ("Subnormals") for what it changes: moments, not (as measured on
    /// the MF pipelines) parameters or losses. CUDA fits ignore it.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub flush_denormals: bool,
    /// Run Adam/AdamW with untouched rows replayed lazily
    /// ([`ReplayAdam`](crate::optim::ReplayAdam): the same bits as the dense pass) where the
    /// objective can name the rows a batch reads. Off by default: on ml-100k's P3 it measured
    /// 3.5x slower than the dense pass (1.28 s against 0.36 s for 5 epochs at 1 thread).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub lazy_replay: bool,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            epochs: 10,
            batch_size: 64,
            shuffle: true,
            seed: 42,
            lr: 1e-3,
            optimizer: OptimizerConfig::default(),
            schedule: Schedule::Constant,
            schedule_step: ScheduleStep::PerBatch,
            early_stopping: None,
            restore_best: false,
            quiet: false,
            flush_denormals: false,
            lazy_replay: false,
        }
    }
}

/// What happened in one epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochStats {
    /// 0-based epoch index.
    pub epoch: usize,
    /// Example-weighted mean training loss over the epoch (sum of batch sums / examples),
    /// measured before each batch's step.
    pub train_loss: f64,
    /// Mean loss of the epoch's last batch (what the notebooks print).
    pub last_batch_loss: f64,
    /// Validation loss after the epoch, when the objective has a validation set.
    pub val_loss: Option<f64>,
    /// Learning rate used by the epoch's last step.
    pub lr: f32,
    /// Wall-clock seconds of the epoch, validation included.
    pub seconds: f64,
    /// Wall-clock seconds of the epoch's training pass alone (its steps and end-of-epoch
    /// sync, validation excluded: what the benchmark peers' per-epoch `seconds` measure).
    #[serde(default)]
    pub train_seconds: f64,
    /// Process CPU seconds (all threads) of that training pass, where the platform tells
    /// ([`crate::clock::process_cpu_seconds`]).
    #[serde(default)]
    pub train_cpu_seconds: Option<f64>,
}

/// The record of a whole fit.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct History {
    /// What the losses are ([`Objective::loss_name`]): "mean squared error",
    /// "softmax cross-entropy", "negative-sampling loss".
    pub loss_name: String,
    /// The divergence reference: the larger of the first batch's loss and the objective's
    /// baseline (see [`DIVERGENCE_FACTOR`]).
    pub loss_reference: Option<f64>,
    /// The optimizer that ran (`adam`, `lazy_adam`, ...; `auto` resolved).
    pub optimizer: String,
    /// Why, when `auto` chose it.
    pub optimizer_note: Option<String>,
    /// One entry per epoch run.
    pub epochs: Vec<EpochStats>,
    /// Epoch with the lowest monitored loss (validation, else training).
    pub best_epoch: Option<usize>,
    /// True when early stopping ended the fit before `epochs`.
    pub stopped_early: bool,
}

impl History {
    /// The monitored loss of an epoch: validation loss if any, else training loss.
    pub fn monitored(stats: &EpochStats) -> f64 {
        stats.val_loss.unwrap_or(stats.train_loss)
    }
}

/// Seed of epoch `epoch`'s shuffle: a SplitMix64 mix of the config seed and the epoch, so each
/// epoch's order is independent of the others and of how many epochs ran before.
pub fn epoch_seed(seed: u64, epoch: usize) -> u64 {
    let mut z = seed ^ (epoch as u64).wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Runs [`Objective`]s to convergence under a [`TrainConfig`].
#[derive(Debug, Clone)]
pub struct Trainer {
    config: TrainConfig,
}

impl Trainer {
    /// A trainer with this configuration (validated when [`fit`](Self::fit) starts).
    pub fn new(config: TrainConfig) -> Self {
        Self { config }
    }

    /// The configuration.
    pub fn config(&self) -> &TrainConfig {
        &self.config
    }

    /// Trains `params` on `objective`; returns the per-epoch history.
    pub fn fit<O: Objective + ?Sized>(
        &self,
        objective: &O,
        params: &mut ParamStore,
    ) -> Result<History, EngineError> {
        self.fit_with(objective, params, |_, _| {})
    }

    /// [`fit`](Self::fit), calling `on_epoch` after each epoch's validation with its stats and
    /// the current weights (for logging or extra metrics).
    pub fn fit_with<O, F>(
        &self,
        objective: &O,
        params: &mut ParamStore,
        on_epoch: F,
    ) -> Result<History, EngineError>
    where
        O: Objective + ?Sized,
        F: FnMut(&EpochStats, &ParamStore) + Send,
    {
        let n_units = objective.train_units();
        self.validate(n_units)?;
        if crate::step_hook::installed() {
            // The step hook is this thread's (the Python package's Ctrl-C and progress bar), so
            // the fit stays here: its parallel passes are injected into the pool (same bits).
            // With `flush_denormals` only this thread flushes: the passes the pool's workers
            // run keep IEEE subnormals.
            let _flush = self.config.flush_denormals.then(crate::fpenv::FlushDenormals::new);
            self.fit_loop(objective, params, on_epoch, n_units)
        } else if self.config.flush_denormals {
            crate::fpenv::with_flushed_denormals(|| self.fit_loop(objective, params, on_epoch, n_units))?
        } else if rayon::current_thread_index().is_none() {
            // Called from outside any rayon pool: run the whole fit on a worker of the global
            // pool, so that each step's parallel passes start on a worker instead of being
            // injected from outside and waited for (two thread wake-ups per pass, thousands
            // per epoch). Same arithmetic, same bits.
            rayon::scope(|_| self.fit_loop(objective, params, on_epoch, n_units))
        } else {
            self.fit_loop(objective, params, on_epoch, n_units)
        }
    }

    /// The epochs of [`fit_with`](Self::fit_with), on the calling thread's float environment.
    fn fit_loop<O, F>(
        &self,
        objective: &O,
        params: &mut ParamStore,
        mut on_epoch: F,
        n_units: usize,
    ) -> Result<History, EngineError>
    where
        O: Objective + ?Sized,
        F: FnMut(&EpochStats, &ParamStore),
    {
        let cfg = &self.config;
        let steps_per_epoch = n_units.div_ceil(cfg.batch_size);

        let mut order: Vec<u32> = (0..n_units as u32).collect();
        let mut grads = Grads::zeros_like(params);
        let (resolved, note) = cfg.optimizer.resolve(objective.rows_per_unit(), cfg.batch_size, params);
        // Dense Adam/AdamW run as ReplayAdam (same bits) when the objective names its rows.
        let replay = cfg.lazy_replay && objective.mark_rows(&[], &mut grads);
        let mut optimizer: Box<dyn crate::optim::Optimizer> = match resolved {
            OptimizerConfig::Adam(c) if replay => Box::new(crate::optim::ReplayAdam::new(c, false)),
            OptimizerConfig::AdamW(c) if replay => Box::new(crate::optim::ReplayAdam::new(c, true)),
            _ => resolved.build(),
        };
        let replay = replay && matches!(resolved, OptimizerConfig::Adam(_) | OptimizerConfig::AdamW(_));
        let bar = progress_bar(cfg.quiet, (steps_per_epoch * cfg.epochs) as u64);

        let mut history = History {
            loss_name: objective.loss_name().to_string(),
            optimizer: resolved.kind().to_string(),
            optimizer_note: note,
            ..History::default()
        };
        let mut best = BestEpoch::new(objective.loss_baseline());
        let mut best_params: Option<ParamStore> = None;
        let mut global_step = 0u64;

        for epoch in 0..cfg.epochs {
            let started = Instant::now();
            let pass = PassClock::start();
            if cfg.shuffle {
                // Reset to identity so epoch `e`'s order depends on (seed, e) only.
                order.iter_mut().enumerate().for_each(|(i, u)| *u = i as u32);
                order.shuffle(&mut ChaCha8Rng::seed_from_u64(epoch_seed(cfg.seed, epoch)));
            }
            bar.set_prefix(format!("epoch {}/{}", epoch + 1, cfg.epochs));

            let mut epoch_loss = BatchLoss::default();
            let mut last_batch_loss = 0.0;
            let mut lr = cfg.lr;
            for (step, batch) in order.chunks(cfg.batch_size).enumerate() {
                let factor = match cfg.schedule_step {
                    ScheduleStep::PerBatch => cfg.schedule.factor(global_step),
                    ScheduleStep::PerEpoch => cfg.schedule.factor(epoch as u64),
                };
                lr = cfg.lr * factor;

                if replay {
                    objective.mark_rows(batch, &mut grads);
                    optimizer.prepare_rows(params, &grads);
                }
                let loss = objective.loss_and_grad(params, batch, &mut grads);
                if !loss.sum.is_finite() {
                    return Err(diverged(epoch, step, format!("the batch loss ({})", loss.sum)));
                }
                if let Some(id) = non_finite_grad_table(&grads) {
                    let name = &params.get(id).name;
                    return Err(diverged(epoch, step, format!("the gradient of table `{name}`")));
                }
                optimizer.step(params, &grads, lr);
                if let Some(id) = non_finite_touched_param_table(params, &grads) {
                    let name = &params.get(id).name;
                    return Err(diverged(
                        epoch,
                        step,
                        format!("table `{name}` after the optimizer step (lr {lr})"),
                    ));
                }
                grads.clear();

                if global_step == 0 {
                    best.set_start_loss(loss.mean(), &mut history);
                }
                epoch_loss.add(loss);
                last_batch_loss = loss.mean();
                global_step += 1;
                bar.inc(1);
                crate::step_hook::after_step(global_step, (steps_per_epoch * cfg.epochs) as u64)?;
            }
            // Every row up to date before anything reads the whole store. (A fit that ends with
            // an error mid-epoch returns no model, so its deferred rows are never read.)
            optimizer.sync(params);
            if let Some(id) = non_finite_param_table(params) {
                let name = &params.get(id).name;
                return Err(diverged(
                    epoch,
                    steps_per_epoch - 1,
                    format!("table `{name}` (end-of-epoch check, lr {lr})"),
                ));
            }
            let (train_seconds, train_cpu_seconds) = pass.elapsed();

            let val_loss = objective.validation_loss(params).map(|v| v.mean());
            if let Some(v) = val_loss {
                if !v.is_finite() {
                    return Err(diverged(epoch, steps_per_epoch - 1, format!("the validation loss ({v})")));
                }
            }
            let stats = EpochStats {
                epoch,
                train_loss: epoch_loss.mean(),
                last_batch_loss,
                val_loss,
                lr,
                seconds: started.elapsed().as_secs_f64(),
                train_seconds,
                train_cpu_seconds,
            };
            tracing::info!(
                epoch,
                train_loss = stats.train_loss,
                val_loss = ?stats.val_loss,
                lr,
                seconds = stats.seconds,
                "epoch done"
            );
            bar.set_message(match val_loss {
                Some(v) => format!("train {:.4} val {v:.4}", stats.train_loss),
                None => format!("train {:.4}", stats.train_loss),
            });

            best.check_explosion(&stats, steps_per_epoch - 1)?;
            if best.observe(&mut history, &stats) && cfg.restore_best {
                match best_params.as_mut() {
                    Some(snapshot) => snapshot.copy_values_from(params)?,
                    None => best_params = Some(params.clone()),
                }
            }
            on_epoch(&stats, params);
            history.epochs.push(stats);
            if best.should_stop(cfg, epoch, &mut history) {
                break;
            }
        }
        bar.finish_and_clear();

        if let (Some(snapshot), Some(best)) = (&best_params, history.best_epoch) {
            if best + 1 != history.epochs.len() {
                params.copy_values_from(snapshot)?;
                tracing::info!(best_epoch = best, "restored the best weights");
            }
        }
        Ok(history)
    }

    pub(crate) fn validate(&self, n_units: usize) -> Result<(), EngineError> {
        self.config.validate()?;
        if n_units == 0 {
            return Err(EngineError::InvalidConfig("the objective has no training units".into()));
        }
        if n_units > u32::MAX as usize {
            return Err(EngineError::InvalidConfig(format!("{n_units} training units exceed u32 indices")));
        }
        Ok(())
    }
}

impl TrainConfig {
    /// Checks every value against its allowed range; the error names the key (as the config
    /// spells it) and the range. [`Trainer::fit`] and [`Trainer::fit_gpu`](crate::Trainer::fit_gpu)
    /// call it first; pipelines call it before any work.
    pub fn validate(&self) -> Result<(), EngineError> {
        fn bad(key: &str, value: impl std::fmt::Display, allowed: &str) -> EngineError {
            EngineError::ConfigValue { key: key.into(), value: value.to_string(), allowed: allowed.into() }
        }
        if self.epochs == 0 || self.epochs > MAX_EPOCHS {
            return Err(bad("epochs", self.epochs, "1 to 1000000"));
        }
        if self.batch_size == 0 || self.batch_size > u32::MAX as usize {
            return Err(bad("batch_size", self.batch_size, "1 to 4294967295"));
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(bad("lr", self.lr, "a finite number > 0"));
        }
        let unit =
            |key: &str, x: f32, allowed: &str, ok: bool| if ok { Ok(()) } else { Err(bad(key, x, allowed)) };
        match self.optimizer {
            OptimizerConfig::Sgd(c) => {
                unit(
                    "optimizer.momentum",
                    c.momentum,
                    "0 <= momentum < 1",
                    (0.0..1.0).contains(&c.momentum),
                )?;
                unit("optimizer.dampening", c.dampening, "0 to 1", (0.0..=1.0).contains(&c.dampening))?;
                let wd = c.weight_decay;
                unit("optimizer.weight_decay", wd, "a finite number >= 0", wd.is_finite() && wd >= 0.0)?;
            }
            OptimizerConfig::Adam(c)
            | OptimizerConfig::AdamW(c)
            | OptimizerConfig::LazyAdam(c)
            | OptimizerConfig::Auto(c) => {
                unit("optimizer.beta1", c.beta1, "0 <= beta1 < 1", (0.0..1.0).contains(&c.beta1))?;
                unit("optimizer.beta2", c.beta2, "0 <= beta2 < 1", (0.0..1.0).contains(&c.beta2))?;
                unit("optimizer.eps", c.eps, "a finite number > 0", c.eps.is_finite() && c.eps > 0.0)?;
                let wd = c.weight_decay;
                unit("optimizer.weight_decay", wd, "a finite number >= 0", wd.is_finite() && wd >= 0.0)?;
            }
        }
        match self.schedule {
            Schedule::Constant => {}
            Schedule::Linear { start_factor, end_factor, .. } => {
                let ok = |x: f32| x.is_finite() && x >= 0.0;
                unit("schedule.start_factor", start_factor, "a finite number >= 0", ok(start_factor))?;
                unit("schedule.end_factor", end_factor, "a finite number >= 0", ok(end_factor))?;
                if start_factor == 0.0 && end_factor == 0.0 {
                    return Err(bad("schedule.end_factor", end_factor, "> 0 when start_factor is 0"));
                }
            }
            Schedule::LinearDecay { total_steps } => {
                if total_steps == 0 {
                    return Err(bad("schedule.total_steps", total_steps, "at least 1"));
                }
            }
        }
        Ok(())
    }
}

/// Most epochs a config may ask for (a typo guard, not a resource limit).
const MAX_EPOCHS: usize = 1_000_000;

/// True when every value of `x` is finite, by bit arithmetic that vectorises (no branch per
/// value): an f32 is infinite or NaN exactly when its exponent field is all ones, and then
/// `(bits & 0x7f80_0000) + 0x0080_0000` carries into the sign bit; OR-ing that over a block
/// and testing the sign bit checks the block. Blocks of 4096 values keep an early exit.
pub(crate) fn all_finite(x: &[f32]) -> bool {
    const EXPONENT: u32 = 0x7f80_0000;
    x.chunks(4096).all(|block| {
        let mut acc = [0u32; 8];
        let mut lanes = block.chunks_exact(8);
        for c in &mut lanes {
            for (a, v) in acc.iter_mut().zip(c) {
                *a |= (v.to_bits() & EXPONENT) + 0x0080_0000;
            }
        }
        let tail = lanes.remainder().iter().fold(0u32, |a, v| a | ((v.to_bits() & EXPONENT) + 0x0080_0000));
        (acc.iter().fold(tail, |a, &b| a | b) & 0x8000_0000) == 0
    })
}

/// The first table with a NaN or infinity in a touched gradient row ([`Grads::non_finite_table`]
/// with [`all_finite`]; a table whose rows are all touched is checked in one pass).
fn non_finite_grad_table(grads: &Grads) -> Option<TableId> {
    grads
        .tables()
        .iter()
        .position(|g| !touched_finite(&g.data, g.cols, g.touched_rows(), g.rows()))
        .map(TableId)
}

/// The first parameter table with a NaN or infinity in a row that `grads` marks touched
/// ([`ParamStore::non_finite_touched_table`] with [`all_finite`]).
fn non_finite_touched_param_table(params: &ParamStore, grads: &Grads) -> Option<TableId> {
    params
        .tables()
        .iter()
        .zip(grads.tables())
        .position(|(t, g)| !touched_finite(&t.data, t.cols, g.touched_rows(), g.rows()))
        .map(TableId)
}

/// The first parameter table holding a NaN or infinity ([`ParamStore::non_finite_table`] with
/// [`all_finite`]).
fn non_finite_param_table(params: &ParamStore) -> Option<TableId> {
    params.tables().iter().position(|t| !all_finite(&t.data)).map(TableId)
}

/// Whether the `touched` rows (of `rows`, `cols` wide) of `data` are finite.
fn touched_finite(data: &[f32], cols: usize, touched: &[u32], rows: usize) -> bool {
    if touched.len() == rows {
        return all_finite(data);
    }
    touched.iter().all(|&r| all_finite(&data[r as usize * cols..(r as usize + 1) * cols]))
}

#[cfg(test)]
mod finite_tests {
    use super::*;

    #[test]
    fn all_finite_finds_every_kind_of_non_finite_value_anywhere() {
        let base: Vec<f32> = (0..9000).map(|i| (i as f32 - 4500.0) * 1e30).collect();
        assert!(all_finite(&base));
        assert!(all_finite(&[f32::MAX, f32::MIN, f32::MIN_POSITIVE, 1e-45, -0.0, 0.0]));
        assert!(all_finite(&[]));
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, -f32::NAN] {
            // In a full eight-lane group, in a block's tail, in the second block, at the end.
            for at in [0, 5, 4095, 4099, 8999] {
                let mut x = base.clone();
                x[at] = bad;
                assert!(!all_finite(&x), "{bad} at {at}");
            }
            assert!(!all_finite(&[1.0, bad]));
        }
    }
}

/// Early-stopping bookkeeping shared by the CPU loop and the device loop
/// ([`Trainer::fit_gpu`](crate::Trainer::fit_gpu)): the best monitored loss so far and the epochs
/// since it last strictly improved.
/// It also holds the divergence reference ([`DIVERGENCE_FACTOR`]), so both loops share one rule.
#[derive(Debug)]
pub(crate) struct BestEpoch {
    best_loss: f64,
    epochs_without_improvement: usize,
    baseline: Option<f64>,
    reference: Option<f64>,
}

impl BestEpoch {
    /// `baseline`: the objective's [`loss_baseline`](Objective::loss_baseline).
    pub(crate) fn new(baseline: Option<f64>) -> Self {
        let baseline = baseline.filter(|b| b.is_finite() && *b > 0.0);
        Self { best_loss: f64::INFINITY, epochs_without_improvement: 0, baseline, reference: None }
    }

    /// Records the fit's first batch loss (before any step); the reference is the larger of it
    /// and the baseline.
    pub(crate) fn set_start_loss(&mut self, start: f64, history: &mut History) {
        let start = if start.is_finite() { start.abs() } else { 0.0 };
        let reference = self.baseline.map_or(start, |b| b.max(start));
        self.reference = (reference > 0.0).then_some(reference);
        history.loss_reference = self.reference;
    }

    /// [`EngineError::Diverged`] when the epoch's training or validation loss exceeds
    /// [`DIVERGENCE_FACTOR`] times the reference (`last_step`: the epoch's last step).
    pub(crate) fn check_explosion(&self, stats: &EpochStats, last_step: usize) -> Result<(), EngineError> {
        let Some(reference) = self.reference else { return Ok(()) };
        let limit = DIVERGENCE_FACTOR * reference;
        let losses = [("training", Some(stats.train_loss)), ("validation", stats.val_loss)];
        for (which, loss) in losses {
            if let Some(loss) = loss.filter(|&l| l > limit) {
                return Err(EngineError::Diverged {
                    epoch: stats.epoch,
                    step: last_step,
                    what: format!(
                        "the mean {which} loss {loss:.4e} exceeds {DIVERGENCE_FACTOR} x the reference \
                         {reference:.4e} (the larger of the first batch's loss and the objective's \
                         baseline; lr {})",
                        stats.lr
                    ),
                });
            }
        }
        Ok(())
    }

    /// Records an epoch's stats (before they are pushed to `history`); true when its monitored
    /// loss is a new strict best (then `history.best_epoch` names it).
    pub(crate) fn observe(&mut self, history: &mut History, stats: &EpochStats) -> bool {
        let monitored = History::monitored(stats);
        if monitored < self.best_loss {
            self.best_loss = monitored;
            history.best_epoch = Some(stats.epoch);
            self.epochs_without_improvement = 0;
            true
        } else {
            self.epochs_without_improvement += 1;
            false
        }
    }

    /// True when early stopping ends the fit after `epoch` (and then records whether it ended
    /// before `cfg.epochs`). Only an epoch without improvement can stop the fit (patience 0: the
    /// first one does).
    pub(crate) fn should_stop(&self, cfg: &TrainConfig, epoch: usize, history: &mut History) -> bool {
        let Some(es) = cfg.early_stopping else { return false };
        let stop = epoch + 1 >= es.min_epochs
            && self.epochs_without_improvement > 0
            && self.epochs_without_improvement >= es.patience;
        if stop {
            history.stopped_early = epoch + 1 < cfg.epochs;
        }
        stop
    }
}

/// A [`EngineError::Diverged`] for something that is not finite.
pub(crate) fn diverged(epoch: usize, step: usize, what: String) -> EngineError {
    EngineError::Diverged { epoch, step, what: format!("{what} is not finite") }
}

/// A bar on stderr, hidden when quiet or when stderr is not a terminal.
pub(crate) fn progress_bar(quiet: bool, total_steps: u64) -> ProgressBar {
    if quiet || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(total_steps), ProgressDrawTarget::stderr());
    if let Ok(style) =
        ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} steps {msg} ({elapsed}, eta {eta})")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::optim::{AdamConfig, SgdConfig};
    use crate::params::{GradKind, Init, TableId};
    use rand::Rng;

    /// Linear regression `y = x . w + b`, loss `0.5 * (x . w + b - y)^2` per row.
    ///
    /// With `r = x . w + b - y`: `dL/dw = r x`, `dL/db = r`; the batch mean divides by `B`.
    struct LinReg {
        d: usize,
        x: Vec<f32>,
        y: Vec<f32>,
        val_x: Vec<f32>,
        val_y: Vec<f32>,
        w: TableId,
        b: TableId,
    }

    impl LinReg {
        fn new(n: usize, d: usize, noise: f32, seed: u64) -> (Self, ParamStore, Vec<f32>) {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let truth: Vec<f32> = (0..d).map(|_| rng.random_range(-1.0..1.0)).collect();
            let make_split = |m: usize, rng: &mut ChaCha8Rng| {
                let x: Vec<f32> = (0..m * d).map(|_| rng.random_range(-1.0..1.0)).collect();
                let y: Vec<f32> = (0..m)
                    .map(|i| {
                        let dot: f32 = x[i * d..(i + 1) * d].iter().zip(&truth).map(|(a, b)| a * b).sum();
                        dot + 0.5 + noise * rng.random_range(-1.0..1.0)
                    })
                    .collect();
                (x, y)
            };
            let (x, y) = make_split(n, &mut rng);
            let (val_x, val_y) = make_split(n / 2, &mut rng);
            let mut params = ParamStore::new();
            let w = params.add("w", d, 1, GradKind::Dense, Init::Zeros, &mut rng).unwrap();
            let b = params.add("b", 1, 1, GradKind::Dense, Init::Zeros, &mut rng).unwrap();
            (Self { d, x, y, val_x, val_y, w, b }, params, truth)
        }

        fn residual(&self, params: &ParamStore, x: &[f32], y: f32) -> f32 {
            let w = &params.get(self.w).data;
            let dot: f32 = x.iter().zip(w).map(|(a, b)| a * b).sum();
            dot + params.get(self.b).data[0] - y
        }
    }

    impl Objective for LinReg {
        fn train_units(&self) -> usize {
            self.y.len()
        }

        fn loss_and_grad(&self, params: &ParamStore, units: &[u32], grads: &mut Grads) -> BatchLoss {
            let scale = 1.0 / units.len() as f32;
            let mut loss = BatchLoss::default();
            for &u in units {
                let u = u as usize;
                let x = &self.x[u * self.d..(u + 1) * self.d];
                let r = self.residual(params, x, self.y[u]);
                loss.add(BatchLoss::new(0.5 * (r as f64) * (r as f64), 1));
                for (g, xi) in grads.get_mut(self.w).all_mut().iter_mut().zip(x) {
                    *g += scale * r * xi;
                }
                grads.get_mut(self.b).all_mut()[0] += scale * r;
            }
            loss
        }

        fn validation_loss(&self, params: &ParamStore) -> Option<BatchLoss> {
            let mut loss = BatchLoss::default();
            for (i, &y) in self.val_y.iter().enumerate() {
                let r = self.residual(params, &self.val_x[i * self.d..(i + 1) * self.d], y);
                loss.add(BatchLoss::new(0.5 * (r as f64) * (r as f64), 1));
            }
            Some(loss)
        }
    }

    /// One scalar `w`, training loss `0.5 (w - 2)^2`, validation loss `(w - 1)^2`: training
    /// walks `w` from 0 to 2, so validation improves until `w` passes 1 and then worsens.
    struct Overshoot {
        w: TableId,
    }

    impl Objective for Overshoot {
        fn train_units(&self) -> usize {
            1
        }
        fn loss_and_grad(&self, params: &ParamStore, _units: &[u32], grads: &mut Grads) -> BatchLoss {
            let w = params.get(self.w).data[0];
            grads.get_mut(self.w).all_mut()[0] += w - 2.0;
            BatchLoss::new(0.5 * ((w - 2.0) as f64).powi(2), 1)
        }
        fn validation_loss(&self, params: &ParamStore) -> Option<BatchLoss> {
            let w = params.get(self.w).data[0] as f64;
            Some(BatchLoss::new((w - 1.0).powi(2), 1))
        }
    }

    fn quiet(config: TrainConfig) -> Trainer {
        Trainer::new(TrainConfig { quiet: true, ..config })
    }

    #[test]
    fn linear_regression_converges_to_the_truth() {
        let (obj, mut params, truth) = LinReg::new(400, 5, 0.01, 1);
        let trainer = quiet(TrainConfig {
            epochs: 40,
            batch_size: 16,
            lr: 0.05,
            optimizer: OptimizerConfig::Adam(AdamConfig::default()),
            ..TrainConfig::default()
        });
        let history = trainer.fit(&obj, &mut params).unwrap();
        assert_eq!(history.epochs.len(), 40);
        let w = &params.get(obj.w).data;
        for (wi, ti) in w.iter().zip(&truth) {
            assert!((wi - ti).abs() < 0.02, "w {wi} vs truth {ti}");
        }
        assert!((params.get(obj.b).data[0] - 0.5).abs() < 0.02);
        let first = history.epochs[0].train_loss;
        let last = history.epochs.last().unwrap().train_loss;
        assert!(last < first * 0.01, "loss {first} -> {last}");
        // Noise is uniform(-0.01, 0.01): the irreducible loss is 0.5 * 0.01^2 / 3.
        assert!(history.epochs.last().unwrap().val_loss.unwrap() < 1e-4);
    }

    /// Records where its steps ran: on a rayon worker, and with subnormals flushed.
    struct WhereItRuns {
        w: TableId,
        seen: std::sync::Mutex<Vec<(bool, bool)>>,
    }

    impl Objective for WhereItRuns {
        fn train_units(&self) -> usize {
            2
        }
        fn loss_and_grad(&self, params: &ParamStore, _units: &[u32], grads: &mut Grads) -> BatchLoss {
            let here = (rayon::current_thread_index().is_some(), crate::fpenv::denormals_flushed());
            self.seen.lock().unwrap().push(here);
            grads.get_mut(self.w).all_mut()[0] += params.get(self.w).data[0];
            BatchLoss::new(1.0, 1)
        }
        fn validation_loss(&self, _params: &ParamStore) -> Option<BatchLoss> {
            None
        }
    }

    #[test]
    fn a_fit_from_outside_a_pool_runs_on_a_worker_and_flushes_only_when_asked() {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        for flush in [false, true] {
            let mut params = ParamStore::new();
            let w = params.add("w", 1, 1, GradKind::Dense, Init::Constant(1.0), &mut rng).unwrap();
            let obj = WhereItRuns { w, seen: std::sync::Mutex::default() };
            let trainer = quiet(TrainConfig {
                epochs: 2,
                batch_size: 1,
                flush_denormals: flush,
                ..TrainConfig::default()
            });
            assert!(rayon::current_thread_index().is_none(), "the test thread is no rayon worker");
            trainer.fit(&obj, &mut params).unwrap();
            let seen = obj.seen.into_inner().unwrap();
            assert_eq!(seen.len(), 4);
            let flushed = flush && crate::fpenv::FLUSH_SUPPORTED;
            assert!(seen.iter().all(|&s| s == (true, flushed)), "flush {flush}: {seen:?}");
            assert!(!crate::fpenv::denormals_flushed(), "the caller's thread is left as it was");
        }
    }

    #[test]
    fn a_fit_under_a_step_hook_stays_on_the_hooks_thread_and_the_hook_sees_every_step() {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let mut params = ParamStore::new();
        let w = params.add("w", 1, 1, GradKind::Dense, Init::Constant(1.0), &mut rng).unwrap();
        let obj = WhereItRuns { w, seen: std::sync::Mutex::default() };
        let trainer = quiet(TrainConfig { epochs: 2, batch_size: 1, ..TrainConfig::default() });
        let calls = std::rc::Rc::new(std::cell::Cell::new(0u64));
        let counted = calls.clone();
        let result = crate::step_hook::with_step_hook(
            move |p| {
                counted.set(p.done);
                true
            },
            || trainer.fit(&obj, &mut params),
        );
        result.unwrap();
        assert_eq!(calls.get(), 4, "2 epochs x 2 steps, each seen by the hook");
        let seen = obj.seen.into_inner().unwrap();
        assert!(seen.iter().all(|&(on_worker, _)| !on_worker), "{seen:?}");
        // A hook that stops the fit is obeyed.
        let mut params = ParamStore::new();
        let w = params.add("w", 1, 1, GradKind::Dense, Init::Constant(1.0), &mut rng).unwrap();
        let obj = WhereItRuns { w, seen: std::sync::Mutex::default() };
        let stopped = crate::step_hook::with_step_hook(|p| p.done < 1, || trainer.fit(&obj, &mut params));
        assert!(matches!(stopped, Err(EngineError::Interrupted { .. })), "{stopped:?}");
    }

    #[test]
    fn early_stopping_triggers_and_restores_the_best_weights() {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let mut params = ParamStore::new();
        let w = params.add("w", 1, 1, GradKind::Dense, Init::Zeros, &mut rng).unwrap();
        let obj = Overshoot { w };
        let trainer = quiet(TrainConfig {
            epochs: 100,
            batch_size: 1,
            lr: 0.1,
            optimizer: OptimizerConfig::Sgd(SgdConfig::default()),
            early_stopping: Some(EarlyStopping { min_epochs: 3, patience: 3 }),
            restore_best: true,
            ..TrainConfig::default()
        });
        let history = trainer.fit(&obj, &mut params).unwrap();
        // SGD: w_e = 2 (1 - 0.9^(e+1)); w crosses 1 between epochs 5 (0.937) and 6 (1.043);
        // (w-1)^2 is 0.0039 at epoch 5 and 0.0019 at epoch 6, so epoch 6 is best.
        assert_eq!(history.best_epoch, Some(6));
        assert!(history.stopped_early);
        assert_eq!(history.epochs.len(), 6 + 3 + 1);
        let w_now = params.get(w).data[0] as f64;
        let expected = 2.0 * (1.0 - 0.9f64.powi(7));
        assert!((w_now - expected).abs() < 1e-5, "restored w {w_now}, expected {expected}");
        let restored_val = obj.validation_loss(&params).unwrap().mean();
        assert_eq!(restored_val, history.epochs[6].val_loss.unwrap());
        let min = history.epochs.iter().map(|e| e.val_loss.unwrap()).fold(f64::INFINITY, f64::min);
        assert_eq!(min, restored_val);
    }

    #[test]
    fn min_epochs_delays_early_stopping() {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let mut params = ParamStore::new();
        let w = params.add("w", 1, 1, GradKind::Dense, Init::Zeros, &mut rng).unwrap();
        let trainer = quiet(TrainConfig {
            epochs: 100,
            batch_size: 1,
            lr: 0.1,
            optimizer: OptimizerConfig::Sgd(SgdConfig::default()),
            early_stopping: Some(EarlyStopping { min_epochs: 20, patience: 1 }),
            ..TrainConfig::default()
        });
        let history = trainer.fit(&Overshoot { w }, &mut params).unwrap();
        assert_eq!(history.epochs.len(), 20);
        assert_eq!(history.best_epoch, Some(6));
        // restore_best is off: the weights are the last epoch's.
        assert!((params.get(w).data[0] as f64 - 2.0 * (1.0 - 0.9f64.powi(20))).abs() < 1e-5);
    }

    #[test]
    fn patience_zero_stops_at_the_first_epoch_without_improvement_only() {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let mut params = ParamStore::new();
        let w = params.add("w", 1, 1, GradKind::Dense, Init::Zeros, &mut rng).unwrap();
        let trainer = quiet(TrainConfig {
            epochs: 100,
            batch_size: 1,
            lr: 0.1,
            optimizer: OptimizerConfig::Sgd(SgdConfig::default()),
            early_stopping: Some(EarlyStopping { min_epochs: 0, patience: 0 }),
            ..TrainConfig::default()
        });
        let history = trainer.fit(&Overshoot { w }, &mut params).unwrap();
        // Epochs 0..=6 improve; epoch 7 is the first that does not.
        assert_eq!(history.epochs.len(), 8);
        assert_eq!(history.best_epoch, Some(6));
        assert!(history.stopped_early);
    }

    #[test]
    fn a_huge_learning_rate_is_reported_as_divergence() {
        let (obj, mut params, _) = LinReg::new(200, 4, 0.1, 3);
        let trainer = quiet(TrainConfig {
            epochs: 50,
            batch_size: 8,
            lr: 1e3,
            optimizer: OptimizerConfig::Sgd(SgdConfig::default()),
            ..TrainConfig::default()
        });
        match trainer.fit(&obj, &mut params) {
            Err(EngineError::Diverged { epoch, step, what }) => {
                assert_eq!(epoch, 0, "diverges within the first epoch");
                assert!(step < 25);
                assert!(!what.is_empty());
                let msg = EngineError::Diverged { epoch, step, what }.to_string();
                assert!(msg.contains("epoch 0") && msg.contains(&format!("step {step}")), "{msg}");
            }
            other => panic!("expected Diverged, got {other:?}"),
        }
    }

    /// Gradient ascent on `0.5 w^2` (the gradient's sign is flipped): with SGD at lr 1 and one
    /// unit, `w` doubles every step, so epoch `e`'s loss is `0.5 * 4^e` — finite for hundreds of
    /// epochs, but exploding.
    struct Ascent {
        w: TableId,
        baseline: Option<f64>,
    }

    impl Objective for Ascent {
        fn train_units(&self) -> usize {
            1
        }
        fn loss_and_grad(&self, params: &ParamStore, _units: &[u32], grads: &mut Grads) -> BatchLoss {
            let w = params.get(self.w).data[0];
            grads.get_mut(self.w).all_mut()[0] -= w;
            BatchLoss::new(0.5 * (w as f64).powi(2), 1)
        }
        fn validation_loss(&self, _params: &ParamStore) -> Option<BatchLoss> {
            None
        }
        fn loss_baseline(&self) -> Option<f64> {
            self.baseline
        }
        fn loss_name(&self) -> &'static str {
            "half square"
        }
    }

    fn ascent(baseline: Option<f64>) -> (Result<History, EngineError>, usize) {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let mut params = ParamStore::new();
        let w = params.add("w", 1, 1, GradKind::Dense, Init::Constant(1.0), &mut rng).unwrap();
        let trainer = quiet(TrainConfig {
            epochs: 60,
            batch_size: 1,
            lr: 1.0,
            optimizer: OptimizerConfig::Sgd(SgdConfig::default()),
            ..TrainConfig::default()
        });
        let result = trainer.fit(&Ascent { w, baseline }, &mut params);
        (result, 60)
    }

    #[test]
    fn a_finite_but_exploding_loss_is_divergence_naming_the_epoch() {
        // Reference 0.5 (the first batch): epoch 4's loss 128 is the first above 100 x 0.5.
        match ascent(None).0 {
            Err(EngineError::Diverged { epoch, what, .. }) => {
                assert_eq!(epoch, 4, "{what}");
                assert!(what.contains("training loss") && what.contains("reference"), "{what}");
            }
            other => panic!("expected Diverged, got {other:?}"),
        }
        // A baseline above the start raises the reference: 100 x 8 = 800 is passed at epoch 6
        // (0.5 * 4^6 = 2048; epoch 5 is 512).
        match ascent(Some(8.0)).0 {
            Err(EngineError::Diverged { epoch, .. }) => assert_eq!(epoch, 6),
            other => panic!("expected Diverged, got {other:?}"),
        }
    }

    #[test]
    fn history_records_the_loss_name_and_reference() {
        let (obj, mut params, _) = LinReg::new(100, 3, 0.1, 2);
        let history =
            quiet(TrainConfig { epochs: 2, ..TrainConfig::default() }).fit(&obj, &mut params).unwrap();
        assert_eq!(history.loss_name, "loss");
        assert!(history.loss_reference.unwrap() > 0.0);
        let json = serde_json::to_string(&history).unwrap();
        assert_eq!(serde_json::from_str::<History>(&json).unwrap().loss_name, "loss");
        // Histories saved before these fields existed still load.
        let old: History =
            serde_json::from_str(r#"{"epochs": [], "best_epoch": null, "stopped_early": false}"#).unwrap();
        assert_eq!(old.loss_name, "");
    }

    #[test]
    fn auto_adam_goes_lazy_only_when_a_step_touches_a_tiny_share_of_the_tables() {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let mut params = ParamStore::new();
        params.add("users", 200_000, 4, GradKind::SparseRows, Init::Zeros, &mut rng).unwrap();
        params.add("movies", 10_000, 4, GradKind::SparseRows, Init::Zeros, &mut rng).unwrap();
        let auto = OptimizerConfig::Auto(AdamConfig::default());
        // 100 ratings a step over at least 10k rows: 1% <= 1/64.
        let (lazy, why) = auto.resolve(Some(1), 100, &params);
        assert_eq!(lazy.kind(), "lazy_adam");
        assert!(why.unwrap().contains("lazy"));
        // 1000 a step: 10% of the movies, dense.
        assert_eq!(auto.resolve(Some(1), 1000, &params).0.kind(), "adam");
        // Unknown rows per unit: dense. Explicit kinds are never changed.
        assert_eq!(auto.resolve(None, 1, &params).0.kind(), "adam");
        let adam = OptimizerConfig::Adam(AdamConfig::default());
        assert_eq!(adam.resolve(Some(1), 1, &params), (adam, None));

        // The fit records what ran.
        let (obj, mut params, _) = LinReg::new(20, 2, 0.1, 1);
        let h = quiet(TrainConfig { epochs: 1, optimizer: auto, ..TrainConfig::default() })
            .fit(&obj, &mut params)
            .unwrap();
        assert_eq!(h.optimizer, "adam");
        assert!(h.optimizer_note.unwrap().starts_with("auto: dense"));
    }

    #[test]
    fn empty_or_zero_step_configs_are_rejected_naming_the_key() {
        let (obj, mut params, _) = LinReg::new(10, 2, 0.1, 4);
        let cases: Vec<(TrainConfig, &str)> = vec![
            (TrainConfig { epochs: 0, ..TrainConfig::default() }, "epochs"),
            (TrainConfig { lr: 0.0, ..TrainConfig::default() }, "lr"),
            (TrainConfig { lr: -1.0, ..TrainConfig::default() }, "lr"),
            (
                TrainConfig {
                    optimizer: OptimizerConfig::Adam(AdamConfig { beta1: 1.0, ..AdamConfig::default() }),
                    ..TrainConfig::default()
                },
                "optimizer.beta1",
            ),
            (
                TrainConfig { schedule: Schedule::LinearDecay { total_steps: 0 }, ..TrainConfig::default() },
                "schedule.total_steps",
            ),
        ];
        for (cfg, key) in cases {
            match quiet(cfg).fit(&obj, &mut params) {
                Err(EngineError::ConfigValue { key: k, allowed, .. }) => {
                    assert_eq!(k, key);
                    assert!(!allowed.is_empty());
                }
                other => panic!("{key}: expected ConfigValue, got {other:?}"),
            }
        }
    }

    #[test]
    fn identical_seeds_give_bitwise_identical_weights() {
        let run = |seed: u64| {
            let (obj, mut params, _) = LinReg::new(300, 6, 0.3, 9);
            let trainer = quiet(TrainConfig {
                epochs: 5,
                batch_size: 7,
                lr: 0.01,
                seed,
                schedule: Schedule::Linear { start_factor: 1.0, end_factor: 0.1, total_iters: 100 },
                ..TrainConfig::default()
            });
            let history = trainer.fit(&obj, &mut params).unwrap();
            (params, history.epochs.iter().map(|e| e.train_loss).collect::<Vec<_>>())
        };
        let (a, la) = run(5);
        let (b, lb) = run(5);
        let (c, _) = run(6);
        assert_eq!(a, b);
        assert_eq!(la, lb);
        assert_ne!(a, c, "a different seed shuffles differently");
    }

    #[test]
    fn per_epoch_schedule_and_history_record_the_learning_rate() {
        let (obj, mut params, _) = LinReg::new(50, 2, 0.1, 4);
        let trainer = quiet(TrainConfig {
            epochs: 4,
            batch_size: 10,
            lr: 0.1,
            schedule: Schedule::Linear { start_factor: 0.5, end_factor: 1.0, total_iters: 2 },
            schedule_step: ScheduleStep::PerEpoch,
            ..TrainConfig::default()
        });
        let history = trainer.fit(&obj, &mut params).unwrap();
        let lrs: Vec<f32> = history.epochs.iter().map(|e| e.lr).collect();
        for (lr, expected) in lrs.iter().zip([0.05, 0.075, 0.1, 0.1]) {
            assert!((lr - expected).abs() < 1e-7, "{lrs:?}");
        }
        let argmin = (0..4)
            .min_by(|&a, &b| history.epochs[a].val_loss.partial_cmp(&history.epochs[b].val_loss).unwrap())
            .unwrap();
        assert_eq!(history.best_epoch, Some(argmin));
        assert!(!history.stopped_early);
    }

    #[test]
    fn invalid_configs_are_rejected() {
        let (obj, mut params, _) = LinReg::new(10, 2, 0.1, 4);
        let zero_batch = quiet(TrainConfig { batch_size: 0, ..TrainConfig::default() });
        assert!(matches!(zero_batch.fit(&obj, &mut params), Err(EngineError::ConfigValue { .. })));
        let nan_lr = quiet(TrainConfig { lr: f32::NAN, ..TrainConfig::default() });
        assert!(matches!(nan_lr.fit(&obj, &mut params), Err(EngineError::ConfigValue { .. })));
    }

    #[test]
    fn config_round_trips_through_json_with_defaults_filled() {
        let cfg = TrainConfig {
            early_stopping: Some(EarlyStopping { min_epochs: 2, patience: 5 }),
            ..TrainConfig::default()
        };
        let json = serde_json::to_string(&cfg).unwrap();
        assert_eq!(serde_json::from_str::<TrainConfig>(&json).unwrap(), cfg);
        let partial: TrainConfig = serde_json::from_str(r#"{"epochs": 3, "lr": 0.5}"#).unwrap();
        assert_eq!(partial.epochs, 3);
        assert_eq!(partial.batch_size, TrainConfig::default().batch_size);
    }

    #[test]
    fn epoch_seeds_differ_across_epochs_and_seeds() {
        let seeds: std::collections::HashSet<u64> =
            (0..4).flat_map(|s| (0..50).map(move |e| epoch_seed(s, e))).collect();
        assert_eq!(seeds.len(), 200);
    }
}
