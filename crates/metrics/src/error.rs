//! The metrics crate's error type: one enum, every variant naming what was being checked.

/// Everything that can go wrong while computing a metric, a projection or a fold-in.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// Two inputs that must agree in length or shape do not.
    #[error("shape mismatch in {what}: expected {expected}, got {actual}")]
    ShapeMismatch {
        /// What was being checked (function and argument).
        what: &'static str,
        /// The expected length or dimension.
        expected: usize,
        /// The actual length or dimension.
        actual: usize,
    },
    /// An input that must hold at least one element is empty.
    #[error("{what} is empty")]
    Empty {
        /// What was empty.
        what: &'static str,
    },
    /// An index (user, movie, token) points past the end of its table.
    #[error("{what} index {index} is out of range (table has {len} rows)")]
    IndexOutOfRange {
        /// Which index.
        what: &'static str,
        /// The offending index.
        index: usize,
        /// The table's length.
        len: usize,
    },
    /// A parameter is outside its valid range.
    #[error("invalid parameter {name} = {value}: {reason}")]
    InvalidParameter {
        /// Parameter name.
        name: &'static str,
        /// Its value, formatted.
        value: String,
        /// Why it is invalid.
        reason: &'static str,
    },
    /// A movie's vector is (near) zero, so it has no direction and no cosine with anything
    /// (see [`crate::similarity::has_vector`]).
    #[error("{what} {index} has no vector (its embedding is (near) zero: nothing rated it highly enough to place it)")]
    NoVector {
        /// What was queried ("movie", "profile").
        what: &'static str,
        /// Its row.
        index: usize,
    },
    /// A LAPACK routine (through ndarray-linalg) failed.
    #[error("linear algebra failed in {context}: {source}")]
    Linalg {
        /// Which computation.
        context: &'static str,
        /// The underlying error.
        #[source]
        source: ndarray_linalg::error::LinalgError,
    },
    /// The GPU backend failed (no device, out of memory naming the buffer, a kernel fault).
    #[error("GPU: {0}")]
    Gpu(#[from] reelvec_engine::EngineError),
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, MetricsError>;

/// Fails with [`MetricsError::ShapeMismatch`] unless `actual == expected`.
pub fn check_len(what: &'static str, expected: usize, actual: usize) -> Result<()> {
    if expected == actual {
        Ok(())
    } else {
        Err(MetricsError::ShapeMismatch { what, expected, actual })
    }
}

/// Fails with [`MetricsError::IndexOutOfRange`] unless `index < len`.
pub fn check_index(what: &'static str, index: usize, len: usize) -> Result<()> {
    if index < len {
        Ok(())
    } else {
        Err(MetricsError::IndexOutOfRange { what, index, len })
    }
}
