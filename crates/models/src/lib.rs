//! The reelvec models: CBOW and skip-gram item2vec (P0), co-occurrence factorisation (P1), biased
//! MF (P2), the sigmoid dot-product recommender (P3) and residual MF (P4), each with its
//! notebook defaults, a hand-written forward and backward pass, and checkpoints.
//!
//! Main types: the shared traits [`ItemEmbeddings`] and [`RatingModel`]; run directories
//! ([`checkpoint::save_run`], [`checkpoint::load_run`], [`RunInfo`]); configs from TOML and
//! `--set key=value` ([`config::resolve`]); the pipelines ([`pipelines`], [`ModelKind`]).
//!
//! ```
//! use reelvec_models::ModelKind;
//! let kind: ModelKind = "sigmoid-mf".parse()?;
//! assert_eq!(kind.protocol(), "P3");
//! # Ok::<(), reelvec_models::ModelError>(())
//! ```
//!
//! This crate does not load files of ratings (reelvec-data does) and computes no ranking
//! metrics beyond what a protocol reports (reelvec-metrics does).

// Tests unwrap freely: a panic is the failure report.
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod checkpoint;
pub mod config;
pub mod cooc;
mod error;
pub mod export;
pub mod item2vec;
pub mod kernels;
pub mod mf;
pub mod mf_gpu;
pub mod pipelines;
pub mod titles;
pub mod traits;

pub use checkpoint::{RunInfo, TableShape};
pub use error::ModelError;
pub use pipelines::ModelKind;
pub use traits::{ItemEmbeddings, RatingModel};
