//! MovieLens ingest for reelvec: loaders for every MovieLens layout, the in-memory columnar
//! [`Dataset`], the transforms the five pipelines apply, and a seeded synthetic generator with
//! planted truth.
//!
//! Main types: [`Dataset`] (columnar [`Ratings`] with dense indices, [`IdMap`]s both ways, the
//! [`Catalogue`], the [`LoadReport`]), [`Layout`], [`LoadOptions`], [`DataError`]. Entry points:
//! [`load`], [`Dataset::from_triples`], the [`transforms`] module, [`stats::Stats`].
//!
//! This crate owns bytes-on-disk to typed arrays. It does not train, evaluate or plot, and it
//! depends on no other reelvec crate.
//!
//! ```no_run
//! use std::path::Path;
//! use reelvec_data::{load, transforms, LoadOptions};
//!
//! let ds = load(Path::new("datasets/ml-100k"), &LoadOptions::default())?;
//! println!("{} users, {} movies, {} ratings", ds.users.len(), ds.movies.len(), ds.ratings.len());
//! let top = transforms::keep_top_movies(&ds, 50);
//! let top = transforms::filter_min_ratings(&top, 20, 1);
//! let sequences = transforms::user_sequences(&top.ratings, top.users.len());
//! # Ok::<(), reelvec_data::DataError>(())
//! ```
//!
//! Ratings already in memory (your own ids, any scale) become a [`Dataset`] with
//! [`Dataset::from_triples`], under the same id and duplicate rules as the loaders:
//!
//! ```
//! use reelvec_data::Dataset;
//! let ds = Dataset::from_triples(&[1, 1, 2], &[10, 20, 10], &[5.0, 3.0, 4.0], Some(&[1, 2, 3]))?;
//! assert_eq!(ds.movies.dense(20), Some(1));
//! # Ok::<(), reelvec_data::DataError>(())
//! ```

#![cfg_attr(test, allow(clippy::unwrap_used))]

mod assemble;
pub mod cache;
pub mod catalogue;
pub mod corpus;
pub mod error;
pub mod features;
pub mod layout;
mod load;
mod parquet_ratings;
mod parse;
mod private;
pub mod ranking_split;
pub mod stats;
pub mod synth;
pub mod transforms;
pub mod types;
pub mod write;

pub use error::{DataError, ParseProblem};
pub use layout::{GenericColumns, Layout, LoadOptions};
pub use load::load;
pub use types::{Catalogue, Dataset, IdMap, Link, LoadReport, Movie, Ratings, Tag};
pub use write::write;
