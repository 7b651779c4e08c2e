//! Evaluation for reelvec: rating metrics, sequence metrics, top-N in bounded memory, diversity,
//! novelty, coverage, similarity and projections (PCA, t-SNE).

// Links the system OpenBLAS that ndarray-linalg's LAPACK calls resolve against.
extern crate openblas_src as _;
