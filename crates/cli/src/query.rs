//! Queries against a run directory: `reelvec similar` (nearest movies by cosine of any model's
//! item embeddings), `reelvec recommend` (a user's top movies) and `reelvec predict` (one
//! rating), for the rating models (mf, sigmoid-mf, residual-mf).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use reelvec_metrics::similarity::nearest_neighbours;
use reelvec_metrics::MetricsError;
use reelvec_models::checkpoint;
use reelvec_models::mf::MfModel;
use reelvec_models::pipelines::load_item_embeddings;
use reelvec_models::{RatingModel, RunInfo};

/// `reelvec similar` arguments.
#[derive(Debug, clap::Args)]
pub struct SimilarArgs {
    /// Run directory written by `reelvec train`.
    #[arg(long, value_name = "DIR")]
    pub run: PathBuf,
    /// A movie id, an exact title ("Star Wars (1977)"), or a unique case-insensitive part of one.
    #[arg(value_name = "TITLE_OR_ID")]
    pub movie: String,
    /// Number of neighbours (at least 1; more than the run's movies is lowered to them).
    #[arg(short, default_value_t = 10, value_parser = crate::args::count)]
    pub k: usize,
}

/// `reelvec recommend` arguments.
#[derive(Debug, clap::Args)]
pub struct RecommendArgs {
    /// Run directory of a rating model (mf, sigmoid-mf, residual-mf).
    #[arg(long, value_name = "DIR")]
    pub run: PathBuf,
    /// Raw user id, as in the data.
    #[arg(long, required_unless_present_any = ["rated", "watched"], conflicts_with_all = ["rated", "watched"])]
    pub user: Option<u64>,
    /// Number of movies (at least 1; more than the run's movies is lowered to them).
    #[arg(short, default_value_t = 10, value_parser = crate::args::count)]
    pub k: usize,
    /// Leave out the movies the user rated in the training data.
    #[arg(long)]
    pub exclude_rated: bool,
    /// A new user's rating, `TITLE_OR_ID=STARS` (repeatable): folds the user in (rating models).
    #[arg(long, value_name = "TITLE=STARS", conflicts_with = "watched")]
    pub rated: Vec<String>,
    /// A watched movie (repeatable): ranks by the mean of their vectors (item2vec runs).
    #[arg(long, value_name = "TITLE_OR_ID")]
    pub watched: Vec<String>,
}

/// `reelvec predict` arguments.
#[derive(Debug, clap::Args)]
pub struct PredictArgs {
    /// Run directory of a rating model (mf, sigmoid-mf, residual-mf).
    #[arg(long, value_name = "DIR")]
    pub run: PathBuf,
    /// Raw user id.
    #[arg(long)]
    pub user: u64,
    /// Raw movie id.
    #[arg(long)]
    pub movie: u64,
}

pub use crate::movie_arg::resolve_movie;

fn user_of(info: &RunInfo, raw: u64) -> Result<u32> {
    info.user_dense(raw).with_context(|| format!("user {raw} is not in this run's training data"))
}

fn rating_model(dir: &Path) -> Result<(MfModel, RunInfo)> {
    let info = checkpoint::load_run_info(dir)?;
    if !info.model_kind.predicts_ratings() {
        bail!(
            "run {} holds a {} model, which does not predict ratings (use mf, sigmoid-mf or residual-mf)",
            dir.display(),
            info.model_kind
        );
    }
    Ok(MfModel::load(dir)?)
}

/// The mark after a movie whose vector comes from its item features alone (no training
/// ratings in a run trained with `model.item_features`).
const FROM_FEATURES: &str = "  [vector from features alone: no training ratings]";

/// Which movies of the run at `dir` have their vector from features alone.
fn cold_movies(dir: &Path, info: &RunInfo) -> Result<Vec<bool>> {
    if info.item_features.is_empty() {
        return Ok(vec![false; info.movie_raw_ids.len()]);
    }
    let rated = checkpoint::load_rated(dir)?;
    Ok(reelvec_models::mf::features_only_movies(info, rated.as_ref())?)
}

/// Runs `reelvec similar`.
pub fn similar(args: SimilarArgs) -> Result<()> {
    if checkpoint::load_run_info(&args.run)?.model_kind
        == reelvec_models::ModelKind::Ranker(reelvec_models::ranking::RankerKind::ItemKnn)
    {
        return crate::ranker_cmd::similar_itemknn(&args);
    }
    let (emb, info) = load_item_embeddings(&args.run)?;
    let movie = resolve_movie(&info, &args.movie)?;
    let k = crate::args::clamp_count("-k", args.k, emb.nrows().saturating_sub(1), "other movies of the run");
    let neighbours = match nearest_neighbours(emb.view(), movie, k) {
        Err(MetricsError::NoVector { .. }) => bail!(
            "{} ({}) has no vector in this {} run: its embedding is (near) zero, so it has no neighbours",
            info.title(movie),
            info.movie_raw_ids[movie as usize],
            info.model_kind
        ),
        other => other?,
    };
    let cold = cold_movies(&args.run, &info)?;
    outln!(
        "nearest to {} ({}) by cosine, {} model:",
        info.title(movie),
        info.movie_raw_ids[movie as usize],
        info.model_kind
    );
    if cold[movie as usize] {
        outln!(
            "note: {} has no training ratings: its vector comes from its item features alone",
            info.title(movie)
        );
    }
    for (rank, (m, sim)) in neighbours.into_iter().enumerate() {
        let mark = if cold[m as usize] { FROM_FEATURES } else { "" };
        outln!(
            "{:>3}  {:>7.4}  {:>7}  {}{mark}",
            rank + 1,
            sim,
            info.movie_raw_ids[m as usize],
            info.title(m)
        );
    }
    Ok(())
}

/// Runs `reelvec recommend`.
pub fn recommend(mut args: RecommendArgs) -> Result<()> {
    let info = checkpoint::load_run_info(&args.run)?;
    args.k = crate::args::clamp_count("-k", args.k, info.movie_raw_ids.len(), "movies of the run");
    if info.model_kind.ranker().is_some() {
        return crate::ranker_cmd::recommend(&args, &args.run);
    }
    if !args.watched.is_empty() {
        return crate::fold_in::recommend_watched(&args.run, &args.watched, args.k);
    }
    let (model, info) = rating_model(&args.run)?;
    if !args.rated.is_empty() {
        return crate::fold_in::recommend_rated(&args.run, &model, &info, &args.rated, args.k);
    }
    let raw_user = args.user.context("give --user, --rated or --watched")?;
    let user = user_of(&info, raw_user)?;
    let rated = if args.exclude_rated {
        checkpoint::load_rated(&args.run)?.with_context(|| {
            format!("run {} has no rated-movie list for --exclude-rated", args.run.display())
        })?
    } else {
        checkpoint::RatedItems::default()
    };
    let seen = rated.row(user);
    let top = model.top_n(user, info.movie_raw_ids.len(), args.k, seen)?;
    outln!(
        "top {} for user {}{} ({} model, predicted stars):",
        args.k,
        raw_user,
        if args.exclude_rated { format!(", excluding {} rated", seen.len()) } else { String::new() },
        info.model_kind
    );
    let movies: Vec<u32> = top.iter().map(|&(m, _)| m).collect();
    let cold = cold_movies(&args.run, &info)?;
    for (rank, (m, stars)) in top.into_iter().enumerate() {
        let stars = info.clip_to_scale(stars);
        let mark = if cold[m as usize] { FROM_FEATURES } else { "" };
        outln!(
            "{:>3}  {:>6.3}  {:>7}  {}{mark}",
            rank + 1,
            stars,
            info.movie_raw_ids[m as usize],
            info.title(m)
        );
    }
    crate::lists::warn_if_rarely_rated(&args.run, &info, &movies)
}

/// Runs `reelvec predict`.
pub fn predict(args: PredictArgs) -> Result<()> {
    let (model, info) = rating_model(&args.run)?;
    let user = user_of(&info, args.user)?;
    let movie = info
        .movie_dense(args.movie)
        .with_context(|| format!("movie {} is not in this run's data", args.movie))?;
    outln!(
        "{:.4} stars  (user {}, movie {} {})",
        info.clip_to_scale(model.predict(user, movie)),
        args.user,
        args.movie,
        info.title(movie)
    );
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn resolve_movie_takes_ids_then_titles_and_lists_ambiguity() {
        let mut info = RunInfo::new(reelvec_models::ModelKind::Mf, serde_json::json!({}), 1);
        info.movie_raw_ids = vec![50, 7, 181];
        info.movie_titles =
            vec!["Star Wars (1977)".into(), "Heat (1995)".into(), "Return of the Jedi (1983)".into()];
        // A raw id, an exact title, a unique case-insensitive part.
        assert_eq!(resolve_movie(&info, "181").unwrap(), 2);
        assert_eq!(resolve_movie(&info, " Star Wars (1977) ").unwrap(), 0);
        assert_eq!(resolve_movie(&info, "HEAT").unwrap(), 1);
        assert_eq!(resolve_movie(&info, "7").unwrap(), 1);
        // A number that is no movie id of the run falls through to the titles.
        assert_eq!(resolve_movie(&info, "1977").unwrap(), 0);
        let err = resolve_movie(&info, "(19").unwrap_err().to_string();
        assert!(err.contains("matches 3 movies") && err.contains("     181  Return of the Jedi"), "{err}");
        assert!(resolve_movie(&info, "Alien").unwrap_err().to_string().contains("no movie matches"));
    }
}
