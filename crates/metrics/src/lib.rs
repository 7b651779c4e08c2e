//! Evaluation for reelvec: rating metrics, sequence metrics, top-N in bounded memory, diversity,
//! novelty, coverage, similarity, projections (PCA, t-SNE) and new-user fold-in.
//!
//! Everything here takes plain arrays (ndarray views and slices indexed by dense user / movie
//! ids) and returns plain numbers or arrays; the crate never trains and depends only on
//! reelvec-engine (for the CUDA runtime of [`topn_gpu`]).
//!
//! - [`rating`]: RMSE / MAE in stars ([`RatingScale`]).
//! - [`ranking`]: cross-entropy from logits, `ln(V)`, accuracy@1, hit-rate@k, NDCG@k and the one
//!   tie-breaking order every ranking here uses.
//! - [`topn`]: blocked GEMM top-N for every user in bounded memory ([`FactorScores`], [`TopN`]),
//!   leave-last-out ranks over the full catalogue.
//! - [`topn_gpu`]: the same top-N on a CUDA device (cuBLAS scores, on-device selection).
//! - [`beyond`]: diversity, the notebook's novelty, self-information novelty, coverage, Gini.
//! - [`similarity`]: cosine matrices, nearest neighbours, strongest pairs, best/worst by bias.
//! - [`foldin`]: a new user's vector and bias from a few ratings (ridge through LAPACK, Gauss-Newton
//!   through sigmoid links), and the item2vec mean-of-watched profile.
//! - [`protocol`]: the ranking protocol: [`protocol::ItemScorer`] (every movie scored for a block
//!   of users), implemented by [`FactorScores`] and by reelvec-models' ranking models, and
//!   [`protocol::evaluate`] (Recall/NDCG/HR@10 and @20, MRR, top-10 coverage, Gini, novelty bits
//!   and genre distance over the full catalogue, in user blocks).
//! - [`projection`]: PCA (LAPACK SVD, deterministic signs) and exact seeded t-SNE.
//! - [`blas`]: the thread count of the OpenBLAS the LAPACK calls run on.
//!
//! ```
//! use reelvec_metrics::rating::{rmse, RatingScale};
//! let err = rmse(&[4.0, 3.0], &[5.0, 3.0], RatingScale::Stars).unwrap();
//! assert!((err - 0.5f64.sqrt()).abs() < 1e-9);
//! ```

// Tests unwrap freely: a panic is the failure report.
#![cfg_attr(test, allow(clippy::unwrap_used))]

// Links the system OpenBLAS that ndarray-linalg's LAPACK calls resolve against.
extern crate openblas_src as _;

pub mod beyond;
pub mod blas;
pub mod error;
pub mod foldin;
pub mod projection;
pub mod protocol;
pub mod ranking;
pub mod rating;
pub mod similarity;
pub mod topn;
pub mod topn_gpu;

pub use beyond::BeyondAccuracy;
pub use error::{MetricsError, Result};
pub use foldin::{FoldIn, FoldInConfig};
pub use protocol::{EvalInput, ItemScorer, ProfileScores, ProtocolMetrics, ProtocolOutcome, SubsetScorer};
pub use ranking::{RankSummary, SequenceMetrics};
pub use rating::RatingScale;
pub use topn::{FactorScores, RatedItems, ScoreLink, TopN, TopNConfig};
