//! Optimizers and learning-rate schedules.
//!
//! Each optimizer implements [`Optimizer::step`]: one fused pass over a table's memory that
//! reads the gradient, updates the moment buffers and writes the parameters. Which rows are
//! updated is the optimizer's contract:
//!
//! - [`Sgd`], [`Adam`] and [`AdamW`] follow PyTorch exactly: **every** element of every table is
//!   updated every step, as PyTorch does for `nn.Embedding`'s dense gradients (an untouched row
//!   still decays its moments, still moves by its momentum, still feels weight decay).
//! - [`LazyAdam`] updates only the rows the batch touched (TensorFlow's LazyAdam, PyTorch's
//!   SparseAdam plus weight decay). This is a deliberate difference, used for large data where
//!   a dense pass per step would dominate.
//! - `auto` ([`OptimizerConfig::Auto`]) is Adam with the rows-touched rule of
//!   [`OptimizerConfig::resolve`]: dense when a step touches a fair share of the tables, lazy
//!   when it touches at most [`AUTO_LAZY_MAX_TOUCHED_SHARE`] of the smallest one (where a dense
//!   pass per step would cost the whole table for a handful of rows). The trainer resolves it
//!   once per fit and records the choice and the reason in its `History`.

pub(crate) mod adam;
mod schedule;
mod sgd;
#[cfg(test)]
mod tests;

pub use adam::{adam_element_seconds, Adam, AdamConfig, AdamW, LazyAdam, ReplayAdam};
pub use schedule::Schedule;
pub use sgd::{Sgd, SgdConfig};

use serde::{Deserialize, Serialize};

use crate::params::{Grads, ParamStore};

/// A first-order optimizer over a [`ParamStore`].
pub trait Optimizer: Send + std::fmt::Debug {
    /// Applies one update with learning rate `lr` (the schedule's value for this step).
    fn step(&mut self, params: &mut ParamStore, grads: &Grads, lr: f32);

    /// Brings the rows `marks` flags touched up to date before the objective reads them, for an
    /// optimizer that defers untouched rows ([`ReplayAdam`]); nothing for the others.
    fn prepare_rows(&mut self, _params: &mut ParamStore, _marks: &Grads) {}

    /// Brings every deferred row up to date, before anything reads the whole store (end of
    /// epoch: validation, checks, snapshots, callbacks); nothing for optimizers that defer none.
    fn sync(&mut self, _params: &mut ParamStore) {}

    /// Number of steps taken so far.
    fn steps_taken(&self) -> u64;
}

/// The optimizer choice as configured (TOML / `--set optimizer.kind=adam`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum OptimizerConfig {
    /// SGD with optional momentum.
    Sgd(SgdConfig),
    /// PyTorch Adam (L2 weight decay added to the gradient).
    Adam(AdamConfig),
    /// PyTorch AdamW (decoupled weight decay); written `adamw` (`adam_w` also accepted).
    #[serde(rename = "adamw", alias = "adam_w")]
    AdamW(AdamConfig),
    /// Adam over touched rows only.
    LazyAdam(AdamConfig),
    /// Adam, dense or lazy by the rows-touched rule ([`OptimizerConfig::resolve`]).
    Auto(AdamConfig),
}

/// `auto` picks lazy Adam when one step touches at most this share of the smallest table's
/// rows (batch size x the objective's rows per unit); dense, PyTorch-exact Adam otherwise.
/// On the notebooks' data (ml-100k, ml-latest-small: batch 64..300 over 600..10k rows, 3% and
/// more) the rule keeps dense Adam; on ml-25m (batch 100 over 59k movies, 0.2%) it goes lazy.
pub const AUTO_LAZY_MAX_TOUCHED_SHARE: f64 = 1.0 / 64.0;

impl Default for OptimizerConfig {
    /// PyTorch's `Adam` with its default hyperparameters.
    fn default() -> Self {
        OptimizerConfig::Adam(AdamConfig::default())
    }
}

impl OptimizerConfig {
    /// The configured kind as TOML spells it (`sgd`, `adam`, `adamw`, `lazy_adam`, `auto`).
    pub fn kind(&self) -> &'static str {
        match self {
            OptimizerConfig::Sgd(_) => "sgd",
            OptimizerConfig::Adam(_) => "adam",
            OptimizerConfig::AdamW(_) => "adamw",
            OptimizerConfig::LazyAdam(_) => "lazy_adam",
            OptimizerConfig::Auto(_) => "auto",
        }
    }

    /// Resolves `auto` for a fit: `rows_per_unit` is the most rows of any table one training
    /// unit touches (None: unknown, then dense), `batch_size` the units per step. Returns the
    /// optimizer to run and, for `auto`, why it was chosen. Other kinds come back unchanged.
    pub fn resolve(
        &self,
        rows_per_unit: Option<usize>,
        batch_size: usize,
        params: &ParamStore,
    ) -> (OptimizerConfig, Option<String>) {
        let OptimizerConfig::Auto(c) = *self else { return (*self, None) };
        let smallest = params.tables().iter().map(|t| t.rows).min().unwrap_or(0);
        let Some(per_unit) = rows_per_unit else {
            return (
                OptimizerConfig::Adam(c),
                Some("auto: dense Adam (the objective does not bound the rows a step touches)".into()),
            );
        };
        let touched = batch_size.saturating_mul(per_unit);
        let share = touched as f64 / smallest.max(1) as f64;
        if share <= AUTO_LAZY_MAX_TOUCHED_SHARE {
            (
                OptimizerConfig::LazyAdam(c),
                Some(format!(
                    "auto: lazy Adam (touched rows only): a step touches at most {touched} of the smallest \
                     table's {smallest} rows ({:.2}% <= 1/64), so a dense pass would cost the whole table \
                     for a few rows",
                    100.0 * share
                )),
            )
        } else {
            (
                OptimizerConfig::Adam(c),
                Some(format!(
                    "auto: dense PyTorch Adam: a step touches up to {touched} of the smallest table's \
                     {smallest} rows ({:.1}% > 1/64)",
                    100.0 * share
                )),
            )
        }
    }

    /// Builds the optimizer (`auto` unresolved builds dense Adam; the trainer resolves it first).
    pub fn build(&self) -> Box<dyn Optimizer> {
        match *self {
            OptimizerConfig::Sgd(c) => Box::new(Sgd::new(c)),
            OptimizerConfig::Adam(c) | OptimizerConfig::Auto(c) => Box::new(Adam::new(c)),
            OptimizerConfig::AdamW(c) => Box::new(AdamW::new(c)),
            OptimizerConfig::LazyAdam(c) => Box::new(LazyAdam::new(c)),
        }
    }
}

/// Elements per rayon task in the fused dense passes; small tables run on one thread.
pub(crate) const PAR_CHUNK: usize = 1 << 15;
