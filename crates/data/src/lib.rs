//! MovieLens ingest for reelvec: loaders for every MovieLens layout, the in-memory columnar
//! [`Dataset`], the transforms the five pipelines apply, and a seeded synthetic generator with
//! planted truth.
//!
//! This crate owns bytes-on-disk to typed arrays. It does not train, evaluate or plot.

pub mod types;

pub use types::{Catalogue, Dataset, IdMap, LoadReport, Movie, Ratings};
