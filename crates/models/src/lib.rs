//! The reelvec models: CBOW and skip-gram item2vec (P0), co-occurrence factorisation (P1), biased
//! MF (P2), the sigmoid dot-product recommender (P3) and residual MF (P4), each with its
//! notebook defaults, a hand-written forward and backward pass, and checkpoints.
//!
//! Main types: the shared traits [`ItemEmbeddings`] and [`RatingModel`]; run directories
//! ([`checkpoint::save_run`], [`checkpoint::load_run`], [`RunInfo`]); configs from TOML and
//! `--set key=value` ([`config::resolve`]); the pipelines ([`pipelines`], [`ModelKind`]).
//!
//! Each pipeline's `run_on(&Dataset, &Config, Device)` is THE entry point to train a model
//! family on your own data (`run` is `run_on` on the CPU): [`pipelines::p0_cbow`] (item2vec),
//! [`pipelines::p1_cooc`], [`pipelines::p2_mf`], [`pipelines::p3_recommender`],
//! [`pipelines::p4_residual`]. A [`reelvec_data::Dataset`] comes from a MovieLens folder or from
//! triples in memory ([`reelvec_data::Dataset::from_triples`]); for item2vec each user's
//! ratings, in timestamp order, are one sequence.
//!
//! ```
//! use reelvec_data::Dataset;
//! use reelvec_engine::Device;
//! use reelvec_models::pipelines::{p0_cbow, p2_mf};
//! use reelvec_models::{ItemEmbeddings, RatingModel};
//!
//! // 40 users, each rating 8 of 12 movies in a run (timestamp = position in the sequence).
//! let (mut users, mut movies, mut stars, mut times) = (vec![], vec![], vec![], vec![]);
//! for u in 0..40u64 {
//!     for t in 0..8u64 {
//!         users.push(u);
//!         movies.push(100 + (u + t) % 12);
//!         stars.push(1.0 + ((u * 7 + t * 3) % 9) as f32 / 2.0);
//!         times.push(t as i64);
//!     }
//! }
//! let ds = Dataset::from_triples(&users, &movies, &stars, Some(&times))?;
//!
//! // Matrix factorisation on the triples (P2: biased MF, sigmoid range).
//! let mut mf = p2_mf::Config::default();
//! mf.k = 4;
//! mf.train.epochs = 2;
//! mf.train.quiet = true;
//! let trained = p2_mf::run_on(&ds, &mf, Device::Cpu)?;
//! let stars_of = trained.model.predict(0, 1);
//! assert!((0.0..=5.5).contains(&stars_of));
//!
//! // item2vec (CBOW) on the users' sequences, then a movie's nearest neighbours.
//! let mut i2v = p0_cbow::Config::default();
//! i2v.min_user_ratings = 5;
//! i2v.model.dim = 8;
//! i2v.train.epochs = 2;
//! i2v.train.quiet = true;
//! let out = p0_cbow::run_on(&ds, &i2v, Device::Cpu)?;
//! let movie = out.dataset.movies.dense(100).expect("movie 100 kept");
//! let near = out.model.nearest_by_cosine(movie, 3)?;
//! assert_eq!(near.len(), 3);
//! assert!(near.iter().all(|&(m, _)| m != movie));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
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
pub mod coldstart;
pub mod config;
pub mod cooc;
mod error;
pub mod evaluate;
pub mod export;
pub(crate) mod features_gpu;
pub mod foldin;
pub mod item2vec;
mod item_features;
pub mod kernels;
mod kind;
pub mod mf;
pub mod mf_gpu;
pub mod pipelines;
pub mod ranking;
pub mod sequence;
mod sgd_lanes;
pub mod titles;
pub mod train;
pub mod traits;

pub use checkpoint::{RunInfo, TableShape};
pub use error::ModelError;
pub use kind::ModelKind;
pub use traits::{ItemEmbeddings, RatingModel};
