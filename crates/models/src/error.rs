//! The models crate's error type: one enum for configs, checkpoints, training and queries, with
//! the path (and, for configs, the key) that went wrong.

use std::path::PathBuf;

/// Everything that can go wrong in reelvec-models.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// An output file or directory is refused (symlink, device, ...) or cannot be written.
    #[error(transparent)]
    Output(#[from] reelvec_outfile::OutputError),
    /// A checkpoint file is truncated, corrupt, or does not match what is being loaded.
    #[error("checkpoint {path}: {reason}")]
    Checkpoint {
        /// The offending file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A TOML config file does not parse.
    #[error("config {path}: {reason}")]
    ConfigFile {
        /// The config file.
        path: PathBuf,
        /// The parser's message (with line and column).
        reason: String,
    },
    /// A config key (from a file or `--set`) is not a field of the model's config.
    #[error("unknown config key `{key}` (from {origin}); valid keys: {valid}")]
    UnknownConfigKey {
        /// The dotted key, e.g. `optimizer.beta3`.
        key: String,
        /// Where it came from: the file path or `--set`.
        origin: String,
        /// The top-level keys the config accepts.
        valid: String,
    },
    /// A config value has the wrong type or is out of range, or a `--set` is malformed.
    #[error("invalid config: {0}")]
    InvalidConfig(String),
    /// A config key's value is outside its allowed range (checked by each pipeline config's
    /// `validate`, before any work).
    #[error("invalid config: `{key}` = {value} (allowed: {allowed})")]
    ConfigValue {
        /// The dotted key, as a TOML file or `--set` spells it (`train.lr`, `model.window`).
        key: String,
        /// The value given.
        value: String,
        /// The allowed range, in words.
        allowed: String,
    },
    /// The data does not fit the pipeline (empty, too few rows, ids out of range).
    #[error("invalid data: {0}")]
    InvalidData(String),
    /// A query named a user or movie the model does not know.
    #[error("unknown {what}: {id}")]
    UnknownId {
        /// "user" or "movie".
        what: &'static str,
        /// The raw id or title asked for.
        id: String,
    },
    /// A string does not name a model kind.
    #[error("unknown model kind `{0}` (expected one of: cbow, skipgram, cooc, mf, sigmoid-mf, residual-mf, popularity, itemknn, ease, ials, bpr)")]
    UnknownModelKind(String),
    /// A string does not name a ranking model kind.
    #[error("unknown ranking model `{0}` (expected one of: popularity, itemknn, ease, ials, bpr, warp)")]
    UnknownRankerKind(String),
    /// The operation does not apply to this model kind.
    #[error("{operation} is not supported by model kind `{kind}`")]
    Unsupported {
        /// What was asked.
        operation: String,
        /// The model kind of the run.
        kind: String,
    },
    /// The training engine failed (divergence, bad optimizer config).
    #[error(transparent)]
    Engine(#[from] reelvec_engine::EngineError),
    /// A metric, ranking or neighbour query failed (e.g. a movie without a vector).
    #[error(transparent)]
    Metrics(#[from] reelvec_metrics::MetricsError),
}

impl ModelError {
    /// An [`ModelError::Io`] for `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io { path: path.into(), source }
    }

    /// A [`ModelError::Checkpoint`] for `path`.
    pub fn checkpoint(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Self::Checkpoint { path: path.into(), reason: reason.into() }
    }
}
