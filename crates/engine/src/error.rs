//! The engine's error type.

/// Everything that can go wrong in the engine.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// A configuration value is out of range or inconsistent.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    /// Buffers of the wrong length.
    #[error("shape mismatch for {what}: expected {expected} values, got {actual}")]
    ShapeMismatch {
        /// What was being checked.
        what: String,
        /// Expected element count.
        expected: usize,
        /// Actual element count.
        actual: usize,
    },
    /// Training produced NaN or infinity.
    #[error(
        "training diverged at epoch {epoch}, step {step}: {what} is not finite (try a lower learning rate)"
    )]
    Diverged {
        /// 0-based epoch.
        epoch: usize,
        /// 0-based step within the epoch.
        step: usize,
        /// What went non-finite (loss, gradient, parameters).
        what: String,
    },
    /// The requested device cannot be used.
    #[error("device error: {0}")]
    Device(String),
}
