//! `reelvec recommend --rated` / `--watched` for someone who is not in a run's data: parses the
//! arguments and prints. The algebra is the libraries': `reelvec_models::foldin` for rating runs
//! (per-kind output space, shrunk toward the mean training user), reelvec-metrics'
//! `fold_in_watched` (mean of the watched vectors, cosine ranking) for item2vec runs.

use anyhow::{bail, Context, Result};
use reelvec_metrics::foldin::{fold_in_watched, FoldInConfig};
use reelvec_models::foldin::fold_in_rating_user;
use reelvec_models::mf::MfModel;
use reelvec_models::RunInfo;

use crate::movie_arg::resolve_movie;

/// Parses `TITLE=STARS` (the last `=` splits, so titles may contain one).
pub fn parse_rated(info: &RunInfo, arg: &str) -> Result<(u32, f32)> {
    let (title, stars) =
        arg.rsplit_once('=').with_context(|| format!("--rated `{arg}`: expected TITLE=STARS"))?;
    let stars: f32 =
        stars.trim().parse().with_context(|| format!("--rated `{arg}`: `{stars}` is not a number"))?;
    if !stars.is_finite() {
        bail!("--rated `{arg}`: the rating must be finite");
    }
    if let Some([lo, hi]) = info.rating_scale {
        if !(lo..=hi).contains(&stars) {
            bail!("--rated `{arg}`: {stars} stars is outside the run's rating scale ({lo} to {hi})");
        }
    }
    Ok((resolve_movie(info, title)?, stars))
}

/// Prints the top-k for a folded-in rating user.
pub fn recommend_rated(
    run: &std::path::Path,
    model: &MfModel,
    info: &RunInfo,
    rated_args: &[String],
    k: usize,
) -> Result<()> {
    let rated = rated_args.iter().map(|a| parse_rated(info, a)).collect::<Result<Vec<_>>>()?;
    let user = fold_in_rating_user(model, &rated, &FoldInConfig::default())?;
    outln!("folded in a new user from {} ratings ({} model):", rated.len(), info.model_kind);
    for &(m, r) in &rated {
        outln!("  rated {r:>4.1}  fitted {:>6.3}  {}", info.clip_to_scale(user.predict(m)), info.title(m));
    }
    let excluded: Vec<u32> = rated.iter().map(|&(m, _)| m).collect();
    outln!("top {k} (predicted stars, rated movies excluded):");
    let top = user.top(k, &excluded)?;
    let movies: Vec<u32> = top.iter().map(|&(m, _)| m).collect();
    for (rank, (m, stars)) in top.into_iter().enumerate() {
        let stars = info.clip_to_scale(stars);
        outln!("{:>3}  {:>6.3}  {:>7}  {}", rank + 1, stars, info.movie_raw_ids[m as usize], info.title(m));
    }
    crate::lists::warn_if_rarely_rated(run, info, &movies)
}

/// Prints the top-k for an item2vec (or any embedding) run from watched titles.
pub fn recommend_watched(dir: &std::path::Path, watched_args: &[String], k: usize) -> Result<()> {
    let (emb, info) = reelvec_models::pipelines::load_item_embeddings(dir)?;
    let watched = watched_args.iter().map(|w| resolve_movie(&info, w)).collect::<Result<Vec<_>>>()?;
    let profile = fold_in_watched(emb.view(), &watched, k)?;
    let names: Vec<String> = watched.iter().map(|&m| info.title(m)).collect();
    outln!("top {k} by cosine to the mean of {} ({} model):", names.join(" + "), info.model_kind);
    for (rank, (m, sim)) in profile.ranked.into_iter().enumerate() {
        outln!("{:>3}  {:>7.4}  {:>7}  {}", rank + 1, sim, info.movie_raw_ids[m as usize], info.title(m));
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parse_rated_splits_on_the_last_equals() {
        let mut info = RunInfo::new(reelvec_models::ModelKind::Mf, serde_json::json!({}), 1);
        info.movie_raw_ids = vec![10, 20];
        info.movie_titles = vec!["A=B (1999)".into(), "Heat (1995)".into()];
        assert_eq!(parse_rated(&info, "A=B (1999)=4.5").unwrap(), (0, 4.5));
        assert_eq!(parse_rated(&info, "heat=3").unwrap(), (1, 3.0));
        assert!(parse_rated(&info, "Heat (1995)").is_err());
        assert!(parse_rated(&info, "Heat (1995)=x").is_err());
    }
}
