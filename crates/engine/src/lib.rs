//! The reelvec training engine: a parameter store of named f32 tables ([`ParamStore`]), gradient
//! buffers with touched-row tracking ([`Grads`]), hand-written optimizers ([`Sgd`], [`Adam`],
//! [`AdamW`], [`LazyAdam`]), learning-rate [`Schedule`]s, and the [`Trainer`] loop over any
//! [`Objective`]. There is no autograd: models write their own forward and backward passes into
//! [`Grads`] (in parallel with a split that depends on the batch only, never on the thread
//! count, so weights are bitwise reproducible) and check them with [`gradcheck`]. [`Device`]
//! names where work runs;
//! [`gpu`] is the CUDA backend (device buffers, NVRTC kernels, device optimizers and
//! [`Trainer::fit_gpu`]).
//!
//! One optimizer step by hand:
//!
//! ```
//! use rand::SeedableRng;
//! use reelvec_engine::{Adam, AdamConfig, GradKind, Grads, Init, Optimizer, ParamStore};
//!
//! let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
//! let mut params = ParamStore::new();
//! let w = params.add("w", 4, 2, GradKind::SparseRows, Init::Normal { mean: 0.0, std: 1.0 }, &mut rng)?;
//! let mut grads = Grads::zeros_like(&params);
//! grads.get_mut(w).row_mut(1).copy_from_slice(&[0.5, -0.5]);
//! let mut adam = Adam::new(AdamConfig::default());
//! adam.step(&mut params, &grads, 1e-2);
//! grads.clear();
//! # Ok::<(), reelvec_engine::EngineError>(())
//! ```
//!
//! A whole fit: the objective `mean_u 0.5 (w - y_u)^2` has its minimum at the mean of `y`.
//!
//! ```
//! use reelvec_engine::*;
//!
//! struct Mean { y: Vec<f32>, w: TableId }
//! impl Objective for Mean {
//!     fn train_units(&self) -> usize { self.y.len() }
//!     fn loss_and_grad(&self, p: &ParamStore, units: &[u32], g: &mut Grads) -> BatchLoss {
//!         let w = p.get(self.w).data[0];
//!         let mut loss = BatchLoss::default();
//!         for &u in units {
//!             let r = w - self.y[u as usize];
//!             g.get_mut(self.w).row_mut(0)[0] += r / units.len() as f32; // d/dw of the mean
//!             loss.add(BatchLoss::new(0.5 * (r * r) as f64, 1));
//!         }
//!         loss
//!     }
//!     fn validation_loss(&self, _: &ParamStore) -> Option<BatchLoss> { None }
//! }
//!
//! let mut params = ParamStore::new();
//! let w = params.insert(Table { name: "w".into(), rows: 1, cols: 1, grad_kind: GradKind::Dense, data: vec![0.0] })?;
//! let config = TrainConfig { epochs: 200, batch_size: 2, lr: 0.05, quiet: true, ..TrainConfig::default() };
//! let history = Trainer::new(config).fit(&Mean { y: vec![1.0, 2.0, 3.0, 6.0], w }, &mut params)?;
//! assert!((params.get(w).data[0] - 3.0).abs() < 0.1);
//! assert_eq!(history.epochs.len(), 200);
//! # Ok::<(), reelvec_engine::EngineError>(())
//! ```
//!
//! The engine does not know what a movie is; it sees tables of f32. It does no I/O beyond the
//! progress bar and logging: checkpoints belong to reelvec-models.

// Tests may unwrap (common rules); library code may not.
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod clock;
pub mod device;
mod error;
pub mod fpenv;
pub mod gpu;
pub mod gradcheck;
pub mod memory;
pub mod optim;
pub mod params;
pub mod step_hook;
pub mod trainer;

pub use device::Device;
pub use error::EngineError;
pub use optim::{
    adam_element_seconds, Adam, AdamConfig, AdamW, LazyAdam, Optimizer, OptimizerConfig, ReplayAdam,
    Schedule, Sgd, SgdConfig,
};
pub use params::{GradKind, GradTable, Grads, Init, ParamStore, Table, TableId};
pub use trainer::{
    epoch_seed, BatchLoss, EarlyStopping, EpochStats, History, Objective, ScheduleStep, TrainConfig, Trainer,
    DIVERGENCE_FACTOR,
};
