//! Argument bounds every command shares: one clap value parser per kind of number, so that
//! `-k 0`, `--threads 5000` or `--epochs-scale 1e300` get the same clear error from every
//! command, at parse time, before anything is loaded or allocated.
//!
//! - Counts (`-k`, `--top`): at least 1 ([`count`]); a count larger than what the run's data
//!   holds is clamped to it with a note on stderr ([`clamp_count`]) before any allocation.
//! - `--threads`: 1 to [`max_threads`] (4 × the cores the machine reports, at least 16):
//!   more threads than that only slow a job down (5000 threads took 100 s for a 0.24 s job).
//! - `--epochs-scale`: finite, above 0, at most [`MAX_EPOCHS_SCALE`].
//!
//! [`CorpusArgs`] are the sequence-corpus flags `train` and `pipeline` share.

/// Largest `--epochs-scale` (the notebook protocols run 5 to 60 epochs).
pub const MAX_EPOCHS_SCALE: f64 = 1000.0;

/// Parses a count that must be at least 1 (`-k`, `--top`).
pub fn count(s: &str) -> Result<usize, String> {
    let n: usize = s.trim().parse().map_err(|e| format!("`{s}` is not a count ({e})"))?;
    if n == 0 {
        return Err("must be at least 1".to_string());
    }
    Ok(n)
}

/// `requested` bounded by `available` (what the run's data holds), with a note on stderr when
/// it is lowered.
pub fn clamp_count(flag: &str, requested: usize, available: usize, what: &str) -> usize {
    if requested > available {
        eprintln!("note: {flag} {requested} is more than the {available} {what}; using {available}");
        return available;
    }
    requested
}

/// The most worker threads `--threads` accepts on this machine.
pub fn max_threads() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    (4 * cores).max(16)
}

/// Parses `--threads`: 1 to [`max_threads`].
pub fn threads(s: &str) -> Result<usize, String> {
    let n: usize = s.trim().parse().map_err(|e| format!("`{s}` is not a thread count ({e})"))?;
    let max = max_threads();
    if n == 0 || n > max {
        return Err(format!("must be from 1 to {max} (4 x the cores of this machine, at least 16)"));
    }
    Ok(n)
}

/// Parses `--epochs-scale`: finite, above 0, at most [`MAX_EPOCHS_SCALE`].
pub fn epochs_scale(s: &str) -> Result<f64, String> {
    let x: f64 = s.trim().parse().map_err(|e| format!("`{s}` is not a number ({e})"))?;
    if !(x.is_finite() && x > 0.0 && x <= MAX_EPOCHS_SCALE) {
        return Err(format!("must be a number above 0 and at most {MAX_EPOCHS_SCALE}"));
    }
    Ok(x)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn bounds() {
        assert_eq!(count("3").unwrap(), 3);
        assert!(count("0").unwrap_err().contains("at least 1"));
        assert!(count("18446744073709551616").is_err());
        assert_eq!(clamp_count("-k", 18_446_744_073_709_551_615, 40, "movies"), 40);
        assert_eq!(clamp_count("-k", 5, 40, "movies"), 5);
        assert!(threads("0").is_err());
        assert!(threads("5000000").is_err());
        assert_eq!(threads("2").unwrap(), 2);
        for bad in ["1e300", "0", "-1", "nan", "inf"] {
            assert!(epochs_scale(bad).is_err(), "{bad}");
        }
        assert_eq!(epochs_scale("0.5").unwrap(), 0.5);
    }
}

/// A sequence corpus instead of ratings (`reelvec train --model cbow|skipgram` and `reelvec
/// pipeline --only p0`): the flags both commands take, read through reelvec-data's `corpus`.
#[derive(Debug, Clone, clap::Args)]
pub struct CorpusArgs {
    /// A sequence corpus instead of ratings (cbow / skipgram, P0): one sequence per line, tokens
    /// separated by whitespace (or `--token-delimiter`), UTF-8; tokens are the run's titles.
    #[arg(long, value_name = "FILE", conflicts_with = "data")]
    pub sequences: Option<std::path::PathBuf>,
    /// With `--sequences`: one character separating tokens instead of whitespace.
    #[arg(long, value_name = "CHAR", requires = "sequences")]
    pub token_delimiter: Option<char>,
    /// With `--sequences`: keep tokens occurring at least this often.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..), requires = "sequences")]
    pub min_count: u64,
    /// With `--sequences`: keep at most this many of the most frequent tokens.
    #[arg(long, value_parser = count, requires = "sequences")]
    pub max_vocab: Option<usize>,
}

impl CorpusArgs {
    /// The reading options these flags give.
    pub fn options(&self) -> reelvec_data::corpus::CorpusOptions {
        reelvec_data::corpus::CorpusOptions {
            delimiter: self.token_delimiter,
            min_count: self.min_count,
            max_vocab: self.max_vocab,
        }
    }
}
