//! `reelvec middle --run RUN TITLE TITLE`: the most likely movies between two, from a CBOW or
//! skip-gram run (P0). Titles resolve like `similar`'s: a movie id, an exact title, or a unique
//! case-insensitive part of one; an ambiguous title lists its candidates and fails.

use std::path::PathBuf;

use anyhow::Result;
use reelvec_models::pipelines::p0_cbow;

use crate::movie_arg::resolve_movie;

/// `reelvec middle` arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Run directory of a cbow or skipgram model.
    #[arg(long, value_name = "DIR")]
    pub run: PathBuf,
    /// The movie before.
    #[arg(value_name = "TITLE")]
    pub before: String,
    /// The movie after.
    #[arg(value_name = "TITLE")]
    pub after: String,
    /// Number of candidates shown (at least 1; more than the run's movies is lowered to them).
    #[arg(short, default_value_t = 5, value_parser = crate::args::count)]
    pub k: usize,
}

/// Runs `reelvec middle`.
pub fn run(args: Args) -> Result<()> {
    let (model, info) = p0_cbow::load(&args.run)?;
    let before = resolve_movie(&info, &args.before)?;
    let after = resolve_movie(&info, &args.after)?;
    let k = crate::args::clamp_count("-k", args.k, info.movie_raw_ids.len(), "movies of the run");
    let ranked = p0_cbow::middle(&model, &info, before, after, k)?;
    outln!(
        "between {} and {} ({} model, log-likelihood):",
        info.title(before),
        info.title(after),
        info.model_kind
    );
    for (rank, (m, score)) in ranked.into_iter().enumerate() {
        outln!("{:>3}  {:>8.4}  {:>7}  {}", rank + 1, score, info.movie_raw_ids[m as usize], info.title(m));
    }
    Ok(())
}
