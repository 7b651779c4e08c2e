//! The data crate's error type: every failure names the file, and where it applies the line.

use std::path::PathBuf;

/// What was wrong with one line (or field) of an input file.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ParseProblem {
    /// Bytes that are not UTF-8 in a file that must be UTF-8.
    #[error("invalid UTF-8")]
    InvalidUtf8,
    /// The line has the wrong number of fields.
    #[error("expected {expected} fields, found {found}")]
    ColumnCount {
        /// Fields the layout requires.
        expected: usize,
        /// Fields on the line.
        found: usize,
    },
    /// A field that should hold a number does not.
    #[error("column {column}: cannot parse {text:?} as {kind}")]
    BadNumber {
        /// Name of the column.
        column: &'static str,
        /// The field (lossily decoded, truncated to 40 characters).
        text: String,
        /// What was expected ("an integer id", "a rating", "a timestamp").
        kind: &'static str,
    },
    /// A rating outside the range the layout allows.
    #[error("rating {value} outside the layout's range {min}..={max}")]
    RatingOutOfRange {
        /// The rating read.
        value: f32,
        /// Smallest allowed rating.
        min: f32,
        /// Largest allowed rating.
        max: f32,
    },
    /// A rating field that reads as NaN or infinity.
    #[error("rating is not a finite number ({text:?})")]
    NotFinite {
        /// The field as written.
        text: String,
    },
    /// The first line is not the header the layout requires.
    #[error("unexpected header {found:?}, expected {expected:?}")]
    BadHeader {
        /// Header the layout requires.
        expected: String,
        /// Header found.
        found: String,
    },
    /// A CSV syntax error (for example an unterminated quote).
    #[error("CSV error: {0}")]
    Csv(String),
    /// Anything else wrong with a field.
    #[error("{0}")]
    Other(String),
}

/// Everything that can go wrong while loading, caching or writing data.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// An output file could not be written safely (see reelvec-outfile).
    #[error(transparent)]
    Output(#[from] reelvec_outfile::OutputError),
    /// A file or directory could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A path that holds no known MovieLens layout, or a layout name that is not known.
    #[error("{path}: unknown layout: {reason}")]
    UnknownLayout {
        /// The path given.
        path: PathBuf,
        /// Why detection failed.
        reason: String,
    },
    /// A malformed line.
    #[error("{path}:{line}: {problem}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: u64,
        /// What was wrong.
        problem: ParseProblem,
    },
    /// No ratings left (an empty file, or everything filtered out).
    #[error("{path}: no ratings {context}")]
    Empty {
        /// The file or data set.
        path: PathBuf,
        /// Where the rows went ("in the file", "after keeping users with >= 20 ratings").
        context: String,
    },
    /// A binary cache file that cannot be used.
    #[error("cache {path}: {problem}")]
    Cache {
        /// The cache file.
        path: PathBuf,
        /// What was wrong (version, checksum, truncated).
        problem: String,
    },
    /// An invalid argument (a layout that cannot hold the data, a bad preset name, ...).
    #[error("{0}")]
    Invalid(String),
}

impl DataError {
    /// Wraps an I/O error with its path.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io { path: path.into(), source }
    }

    /// A parse error at `path:line`.
    pub fn parse(path: impl Into<PathBuf>, line: u64, problem: ParseProblem) -> Self {
        Self::Parse { path: path.into(), line, problem }
    }
}
