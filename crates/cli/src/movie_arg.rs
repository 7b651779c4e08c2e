//! The movie argument every query shares (`similar`, `recommend --rated/--watched`, `middle`):
//! a raw movie id of the run, else a title. Its own module so that `query` and `fold_in` both use
//! it without depending on each other.

use anyhow::{bail, Result};
use reelvec_models::titles::{self, TitleMiss};
use reelvec_models::RunInfo;

/// Resolves a movie argument: a raw movie id of the run, else the title matcher every query
/// shares ([`reelvec_models::titles::resolve`]: an exact title, else a unique case-insensitive
/// substring). Ambiguity is an error listing the candidates.
pub fn resolve_movie(info: &RunInfo, query: &str) -> Result<u32> {
    let q = query.trim();
    match titles::resolve_in_run(info, q) {
        Ok(dense) => Ok(dense),
        Err(TitleMiss::NotFound) if info.tokens => {
            bail!("no token `{q}` in the run's vocabulary (tokens match exactly, as gensim keys)")
        }
        Err(TitleMiss::NotFound) => {
            bail!("no movie matches `{q}` (give a movie id, an exact title, or part of a title)")
        }
        Err(TitleMiss::Ambiguous(candidates)) => {
            let n = candidates.len();
            let shown: Vec<String> = candidates
                .iter()
                .take(20)
                .map(|&i| format!("  {:>7}  {}", info.movie_raw_ids[i as usize], info.title(i)))
                .collect();
            let more = if n > 20 { format!("\n  ... and {} more", n - 20) } else { String::new() };
            bail!("`{q}` matches {n} movies; pick one by id or exact title:\n{}{more}", shown.join("\n"))
        }
    }
}
