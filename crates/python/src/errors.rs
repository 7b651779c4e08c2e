//! Errors across the boundary: every reelvec error becomes an instance of the exception classes
//! of `reelvec.errors` (pure Python, so each can derive from both `ReelvecError` and the fitting
//! builtin: `FileNotFoundError`, `ValueError`, `KeyError`, `RuntimeError`, `OSError`), with
//! `filename` and `line` attributes where the error names them; an interrupted fit becomes
//! `KeyboardInterrupt`. No Rust error or panic reaches Python any other way.

use std::path::Path;

use pyo3::exceptions::{PyKeyboardInterrupt, PyRuntimeError};
use pyo3::prelude::*;
use reelvec_data::DataError;
use reelvec_engine::EngineError;
use reelvec_metrics::MetricsError;
use reelvec_models::ModelError;

/// The `reelvec.errors` class names this module raises.
#[derive(Debug, Clone, Copy)]
pub enum Class {
    /// `DataFileNotFoundError(ReelvecError, FileNotFoundError)`.
    NotFound,
    /// `DataFormatError(ReelvecError, ValueError)`: a malformed or unusable input.
    DataFormat,
    /// `ConfigError(ReelvecError, ValueError)`.
    Config,
    /// `UnknownMovieError(ReelvecError, KeyError)`: an id or title not in the run.
    UnknownMovie,
    /// `TrainingError(ReelvecError, RuntimeError)`: divergence, memory, device.
    Training,
    /// `RunDirectoryError(ReelvecError, ValueError)`: a run directory that cannot be used.
    RunDirectory,
    /// `OutputError(ReelvecError, OSError)`: a file that cannot be written or read.
    Output,
    /// `UnsupportedError(ReelvecError, TypeError)`: an operation the model kind does not offer.
    Unsupported,
}

impl Class {
    fn name(self) -> &'static str {
        match self {
            Class::NotFound => "DataFileNotFoundError",
            Class::DataFormat => "DataFormatError",
            Class::Config => "ConfigError",
            Class::UnknownMovie => "UnknownMovieError",
            Class::Training => "TrainingError",
            Class::RunDirectory => "RunDirectoryError",
            Class::Output => "OutputError",
            Class::Unsupported => "UnsupportedError",
        }
    }
}

/// An exception of `class` with `message`, and `filename` / `line` attributes (None when
/// unknown).
pub fn raise(class: Class, message: String, file: Option<&Path>, line: Option<u64>) -> PyErr {
    Python::attach(|py| match make(py, class, &message, file, line) {
        Ok(err) => err,
        // The package is broken (reelvec.errors missing): still a Python error, never a panic.
        Err(e) => PyRuntimeError::new_err(format!("{message} (and reelvec.errors failed: {e})")),
    })
}

fn make(
    py: Python<'_>,
    class: Class,
    message: &str,
    file: Option<&Path>,
    line: Option<u64>,
) -> PyResult<PyErr> {
    let cls = py.import("reelvec.errors")?.getattr(class.name())?;
    let exc = cls.call1((message,))?;
    exc.setattr("filename", file.map(|f| f.display().to_string()))?;
    exc.setattr("line", line)?;
    Ok(PyErr::from_value(exc))
}

/// A data error as its Python exception.
pub fn data(e: DataError) -> PyErr {
    let message = e.to_string();
    match &e {
        DataError::Io { path, source } if source.kind() == std::io::ErrorKind::NotFound => {
            raise(Class::NotFound, message, Some(path), None)
        }
        DataError::Io { path, .. } => raise(Class::Output, message, Some(path), None),
        DataError::Output(_) => raise(Class::Output, message, None, None),
        DataError::Parse { path, line, .. } => raise(Class::DataFormat, message, Some(path), Some(*line)),
        DataError::UnknownLayout { path, .. } if !path.exists() => {
            raise(Class::NotFound, message, Some(path), None)
        }
        DataError::UnknownLayout { path, .. }
        | DataError::Empty { path, .. }
        | DataError::Cache { path, .. } => raise(Class::DataFormat, message, Some(path), None),
        _ => raise(Class::DataFormat, message, None, None),
    }
}

/// An engine error as its Python exception (`KeyboardInterrupt` for an interrupted fit).
pub fn engine(e: EngineError) -> PyErr {
    let message = e.to_string();
    match e {
        EngineError::Interrupted { .. } => PyKeyboardInterrupt::new_err(message),
        EngineError::InvalidConfig(_) | EngineError::ConfigValue { .. } => {
            raise(Class::Config, message, None, None)
        }
        _ => raise(Class::Training, message, None, None),
    }
}

/// A model error as its Python exception.
pub fn model(e: ModelError) -> PyErr {
    let message = e.to_string();
    match e {
        ModelError::Engine(e) => engine(e),
        ModelError::Io { path, source } if source.kind() == std::io::ErrorKind::NotFound => {
            raise(Class::NotFound, message, Some(&path), None)
        }
        ModelError::Io { path, .. } => raise(Class::Output, message, Some(&path), None),
        ModelError::Output(_) => raise(Class::Output, message, None, None),
        ModelError::Checkpoint { path, .. } => raise(Class::RunDirectory, message, Some(&path), None),
        ModelError::ConfigFile { .. }
        | ModelError::UnknownConfigKey { .. }
        | ModelError::InvalidConfig(_)
        | ModelError::ConfigValue { .. }
        | ModelError::UnknownModelKind(_) => raise(Class::Config, message, None, None),
        ModelError::UnknownId { .. } => raise(Class::UnknownMovie, message, None, None),
        ModelError::Unsupported { .. } => raise(Class::Unsupported, message, None, None),
        ModelError::Metrics(m) => metrics(m),
        _ => raise(Class::DataFormat, message, None, None),
    }
}

/// A metrics error as its Python exception.
pub fn metrics(e: MetricsError) -> PyErr {
    let message = e.to_string();
    match e {
        MetricsError::NoVector { .. } => raise(Class::UnknownMovie, message, None, None),
        MetricsError::Gpu(e) => engine(e),
        _ => raise(Class::DataFormat, message, None, None),
    }
}
