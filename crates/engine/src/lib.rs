//! The reelvec training engine: a parameter store of named f32 tables ([`ParamStore`]), gradient
//! buffers with touched-row tracking ([`Grads`]), hand-written optimizers ([`Sgd`], [`Adam`],
//! [`AdamW`], [`LazyAdam`]), learning-rate [`Schedule`]s, and the trainer loop. There is no
//! autograd: models write their own forward and backward passes into [`Grads`].
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
//! The engine does not know what a movie is; it sees tables of f32.

// Tests may unwrap (common rules); library code may not.
#![cfg_attr(test, allow(clippy::unwrap_used))]

// The CUDA backend, or a stub with the same functions (the only `#[cfg]` for the feature).
#[cfg(feature = "cuda")]
mod cuda;
#[cfg(not(feature = "cuda"))]
#[path = "dummy_cuda.rs"]
mod cuda;
pub mod device;
mod error;
pub mod gradcheck;
pub mod hogwild;
pub mod optim;
pub mod parallel;
pub mod params;
pub mod trainer;

pub use device::Device;
pub use error::EngineError;
pub use optim::{Adam, AdamConfig, AdamW, LazyAdam, Optimizer, OptimizerConfig, Schedule, Sgd, SgdConfig};
pub use parallel::{ChunkGrads, ChunkScratch, ParallelAccumulator, SparseRows};
pub use params::{GradKind, GradTable, Grads, Init, ParamStore, Table, TableId};
pub use trainer::{
    epoch_seed, BatchLoss, EarlyStopping, EpochStats, History, Objective, ScheduleStep, TrainConfig, Trainer,
};
