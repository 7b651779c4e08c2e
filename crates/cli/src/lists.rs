//! What the CLI says under a ranked list of movies: reelvec-metrics' warning when the list is
//! dominated by movies with few training ratings (`recommend --user` and `--rated`; the pipeline
//! report uses the same rule).

use std::path::Path;

use anyhow::Result;
use reelvec_models::checkpoint::{self, RunInfo};

/// Prints reelvec-metrics' warning under a list dominated by movies with few training ratings
/// (counts from the run's `rated.safetensors`; runs without one are not checked).
pub fn warn_if_rarely_rated(run: &Path, info: &RunInfo, list: &[u32]) -> Result<()> {
    let Some(rated) = checkpoint::load_rated(run)? else {
        return Ok(());
    };
    let counts = rated.movie_counts(info.movie_raw_ids.len())?;
    if let Some(few) = reelvec_metrics::beyond::rarely_rated(list.iter().copied(), &counts) {
        outln!("{}", reelvec_metrics::beyond::rarely_rated_warning(few, list.len()));
    }
    Ok(())
}
