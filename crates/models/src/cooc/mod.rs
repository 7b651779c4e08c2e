//! P1 co-occurrence factorisation: find `V` (M x k) with `v_i . v_j ~ X_ij` for `i != j`, where
//! `X = L^T L` counts the users who liked both movies, without ever forming `X` (M x M).
//!
//! - [`LikeMatrix`]: the binary like matrix `L` (CSR + CSC) and its products.
//! - [`CoocProblem`]: the cost `c(V)` and its gradient from `L` in `O(nnz(L) k + M k^2)`.
//! - [`fit`]: full-batch Adam on `V` ([`CoocConfig`], [`CoocModel`]).
//! - [`dense_reference`] / [`subspace_reference`]: the eigen-truncation reference.

mod cost;
pub mod gpu;
mod likes;
mod reference;
mod train;

pub use cost::{dense_costs, dense_grad, CoocProblem, CoocScratch, CostParts};
pub use likes::LikeMatrix;
pub use reference::{dense_reference, subspace_reference, Reference, ReferenceMethod};
pub use train::{fit, init_factors, CoocConfig, CoocFit, CoocModel, FACTOR_TABLE};
