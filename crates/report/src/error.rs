//! The crate's error type: what went wrong drawing a plot or writing the report, with the plot's
//! name or the file's path.

use std::path::PathBuf;

/// Everything that can fail in reelvec-report.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The plot's input cannot be drawn (wrong matrix shape, no labels, ...).
    #[error("plot `{plot}`: invalid input: {message}")]
    InvalidInput { plot: String, message: String },
    /// plotters failed while drawing.
    #[error("plot `{plot}`: drawing failed: {message}")]
    Draw { plot: String, message: String },
    /// Headless Chromium could not render a page ([`crate::browser`]).
    #[error("chromium on {url}: {message}")]
    Browser { url: String, message: String },
    /// An output file is refused (symlink, device, ...) or cannot be written.
    #[error(transparent)]
    Output(#[from] reelvec_outfile::OutputError),
    /// Writing a report file failed.
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
}

impl ReportError {
    pub(crate) fn invalid(plot: &str, message: impl Into<String>) -> Self {
        ReportError::InvalidInput { plot: plot.to_owned(), message: message.into() }
    }

    /// Wraps a plotters error (its `Display` is all it exposes portably).
    pub(crate) fn draw(plot: &str, err: impl std::fmt::Display) -> Self {
        ReportError::Draw { plot: plot.to_owned(), message: err.to_string() }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        ReportError::Io { path: path.into(), source }
    }
}
