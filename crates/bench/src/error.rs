//! The bench crate's error type: what failed, with the chain of what was being done
//! (`BenchError::Context`), and the small `Context` / `bail!` helpers the suites use.

use std::fmt::Display;

/// Everything a benchmark run can fail with.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// Loading or generating data.
    #[error(transparent)]
    Data(#[from] reelvec_data::DataError),
    /// Training or a model's GPU twin.
    #[error(transparent)]
    Model(#[from] reelvec_models::ModelError),
    /// The engine (devices, kernels, optimizers).
    #[error(transparent)]
    Engine(#[from] reelvec_engine::EngineError),
    /// Ranking metrics.
    #[error(transparent)]
    Metrics(#[from] reelvec_metrics::MetricsError),
    /// An operating-system error without a path (processes, pipes).
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// A JSON report that cannot be read or written.
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    /// An output file is refused (symlink, device, ...) or cannot be written.
    #[error(transparent)]
    Output(#[from] reelvec_outfile::OutputError),
    /// Anything else (a failed reference script, an invalid option).
    #[error("{0}")]
    Msg(String),
    /// An error with what was being done when it happened.
    #[error("{context}: {source}")]
    Context {
        /// What was being done (a file, a case).
        context: String,
        /// The error.
        #[source]
        source: Box<BenchError>,
    },
}

/// Results of the bench crate.
pub type Result<T, E = BenchError> = std::result::Result<T, E>;

/// Adds what was being done to an error (the shape of `anyhow::Context`, typed).
pub trait Context<T> {
    /// Wraps the error with `context`.
    fn context(self, context: impl Display) -> Result<T>;
    /// Wraps the error with the context `f` returns.
    fn with_context<C: Display>(self, f: impl FnOnce() -> C) -> Result<T>;
}

impl<T, E: Into<BenchError>> Context<T> for std::result::Result<T, E> {
    fn context(self, context: impl Display) -> Result<T> {
        self.map_err(|e| BenchError::Context { context: context.to_string(), source: Box::new(e.into()) })
    }

    fn with_context<C: Display>(self, f: impl FnOnce() -> C) -> Result<T> {
        self.map_err(|e| BenchError::Context { context: f().to_string(), source: Box::new(e.into()) })
    }
}

/// Returns early with a [`BenchError::Msg`].
macro_rules! bail {
    ($($arg:tt)*) => {
        return Err($crate::error::BenchError::Msg(format!($($arg)*)))
    };
}
pub(crate) use bail;
