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

pub(crate) mod adam;
mod schedule;
mod sgd;
#[cfg(test)]
mod tests;

pub use adam::{Adam, AdamConfig, AdamW, LazyAdam};
pub use schedule::Schedule;
pub use sgd::{Sgd, SgdConfig};

use serde::{Deserialize, Serialize};

use crate::params::{Grads, ParamStore};

/// A first-order optimizer over a [`ParamStore`].
pub trait Optimizer: Send + std::fmt::Debug {
    /// Applies one update with learning rate `lr` (the schedule's value for this step).
    fn step(&mut self, params: &mut ParamStore, grads: &Grads, lr: f32);

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
}

impl Default for OptimizerConfig {
    /// PyTorch's `Adam` with its default hyperparameters.
    fn default() -> Self {
        OptimizerConfig::Adam(AdamConfig::default())
    }
}

impl OptimizerConfig {
    /// Builds the optimizer.
    pub fn build(&self) -> Box<dyn Optimizer> {
        match *self {
            OptimizerConfig::Sgd(c) => Box::new(Sgd::new(c)),
            OptimizerConfig::Adam(c) => Box::new(Adam::new(c)),
            OptimizerConfig::AdamW(c) => Box::new(AdamW::new(c)),
            OptimizerConfig::LazyAdam(c) => Box::new(LazyAdam::new(c)),
        }
    }
}

/// Elements per rayon task in the fused dense passes; small tables run on one thread.
pub(crate) const PAR_CHUNK: usize = 1 << 15;
