//! Serving someone who is not in a run's data, without retraining (`reelvec recommend --rated`,
//! `--watched`).
//!
//! Rating models: the new user's vector (and bias) are solved with the movie side fixed by
//! reelvec-metrics' fold-in, in the model's output space `y`:
//! - P2 (`mf`): `y = sigmoid_range(b + c_i + p . q_i, lo, hi)` in stars — Gauss-Newton through
//!   the link;
//! - P3 (`sigmoid-mf`): `y = σ(b + c_i + p . q_i)` on min-max scaled ratings, so the targets are
//!   `(r - min) / (max - min)` and predictions are mapped back with `min + y (max - min)`;
//! - P4 (`residual-mf`): `y = p . q_i` (no biases) on the residual `r - g - a_u - m_i`, where
//!   the new user's mean offset `a_u` is the mean of their `r - g` (as the model computed it
//!   for its training users); predictions are `g + a_u + m_i + p . q_i`.
//!
//! The user is shrunk toward the mean training user with reelvec-metrics' shared default
//! penalties ([`reelvec_metrics::foldin::DEFAULT_LAMBDA`] 3 on the vector,
//! [`reelvec_metrics::foldin::DEFAULT_BIAS_LAMBDA`] 10 on the bias: a handful of ratings overfit
//! small ones).
//!
//! Item2vec runs: the mean of the watched movies' vectors, every other movie ranked by cosine.

use anyhow::{bail, Context, Result};
use ndarray::ArrayView1;
use reelvec_metrics::foldin::{fold_in_user_with_link, fold_in_watched, FoldIn, FoldInConfig};
use reelvec_metrics::ScoreLink;
use reelvec_models::mf::{Link, MfModel, OutputMap};
use reelvec_models::traits::ItemEmbeddings;
use reelvec_models::RunInfo;

use crate::query::resolve_movie;

/// A folded-in user of a rating model.
pub struct FoldedUser<'a> {
    model: &'a MfModel,
    fold: FoldIn,
    link: ScoreLink,
    /// P4: the user's mean offset `a_u`; 0 otherwise.
    user_offset: f32,
}

fn score_link(link: Link) -> ScoreLink {
    match link {
        Link::SigmoidRange { lo, hi } => ScoreLink::SigmoidRange { lo, hi },
        Link::Identity => ScoreLink::Identity,
    }
}

/// Folds in a user from `(dense movie, stars)` pairs.
pub fn fold_in_rating_user<'a>(
    model: &'a MfModel,
    rated: &[(u32, f32)],
    config: &FoldInConfig,
) -> Result<FoldedUser<'a>> {
    if rated.is_empty() {
        bail!("fold-in needs at least one rated movie");
    }
    let spec = model.spec();
    let link = score_link(spec.link);
    let (targets, user_offset): (Vec<(u32, f32)>, f32) = match model.output() {
        OutputMap::Stars => (rated.to_vec(), 0.0),
        OutputMap::MinMax { min, max } => {
            let span = (max - min).max(f32::EPSILON);
            (rated.iter().map(|&(m, r)| (m, (r - min) / span)).collect(), 0.0)
        }
        OutputMap::Residual { global, movie, .. } => {
            let offset = rated.iter().map(|&(_, r)| r - global).sum::<f32>() / rated.len() as f32;
            let t = rated.iter().map(|&(m, r)| (m, r - global - offset - movie[m as usize])).collect();
            (t, offset)
        }
    };
    let config = FoldInConfig { with_user_bias: spec.biases && config.with_user_bias, ..*config };
    let bias = model.movie_bias().map(ArrayView1::from);
    // Shrunk toward the mean training user, not toward zero.
    let prior = FoldIn::mean_user(model.user_embeddings(), model.user_bias().map(ArrayView1::from))?;
    let fold =
        fold_in_user_with_link(model.item_embeddings(), bias, 0.0, &targets, Some(&prior), link, &config)?;
    Ok(FoldedUser { model, fold, link, user_offset })
}

impl FoldedUser<'_> {
    /// Predicted stars for dense `movie`.
    pub fn predict(&self, movie: u32) -> f32 {
        let bias = self.model.movie_bias().map(ArrayView1::from);
        let y = self.link.apply(self.fold.raw_score(self.model.item_embeddings(), bias, 0.0, movie));
        match self.model.output() {
            OutputMap::Stars => y,
            OutputMap::MinMax { min, max } => min + y * (max - min),
            OutputMap::Residual { global, movie: m, .. } => global + self.user_offset + m[movie as usize] + y,
        }
    }

    /// The `k` best movies by predicted stars, `excluded` left out, best first (ties: lower index).
    pub fn top(&self, k: usize, excluded: &[u32]) -> Vec<(u32, f32)> {
        let n = self.model.spec().n_movies as u32;
        let mut scored: Vec<(u32, f32)> =
            (0..n).filter(|m| !excluded.contains(m)).map(|m| (m, self.predict(m))).collect();
        scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        scored.truncate(k);
        scored
    }
}

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
pub fn recommend_rated(model: &MfModel, info: &RunInfo, rated_args: &[String], k: usize) -> Result<()> {
    let rated = rated_args.iter().map(|a| parse_rated(info, a)).collect::<Result<Vec<_>>>()?;
    let user = fold_in_rating_user(model, &rated, &FoldInConfig::default())?;
    outln!("folded in a new user from {} ratings ({} model):", rated.len(), info.model_kind);
    for &(m, r) in &rated {
        outln!("  rated {r:>4.1}  fitted {:>6.3}  {}", user.predict(m), info.title(m));
    }
    let excluded: Vec<u32> = rated.iter().map(|&(m, _)| m).collect();
    outln!("top {k} (predicted stars, rated movies excluded):");
    for (rank, (m, stars)) in user.top(k, &excluded).into_iter().enumerate() {
        outln!("{:>3}  {:>6.3}  {:>7}  {}", rank + 1, stars, info.movie_raw_ids[m as usize], info.title(m));
    }
    Ok(())
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
    use reelvec_data::synth::{generate, Preset, SynthConfig};
    use reelvec_data::transforms;
    use reelvec_models::pipelines::{p2_mf, p3_recommender, p4_residual};

    /// Synthetic data; the last 25 users are held out of training entirely.
    fn data() -> (reelvec_data::Dataset, reelvec_data::Dataset) {
        let ds = generate(&SynthConfig {
            n_users: 325,
            n_movies: 150,
            mean_ratings_per_user: 50.0,
            min_ratings_per_user: 30,
            ..Preset::Small.config()
        })
        .dataset;
        let cut = ds.users.len() as u32 - 25;
        let rows = |keep: &dyn Fn(u32) -> bool| -> Vec<u32> {
            (0..ds.ratings.len() as u32).filter(|&r| keep(ds.ratings.user[r as usize])).collect()
        };
        let train = transforms::subset(&ds, &rows(&|u| u < cut));
        let held = transforms::subset(&ds, &rows(&|u| u >= cut));
        (train, held)
    }

    /// For each held-out user: fold in from their first 10 ratings, predict the rest; compare
    /// the RMSE with the training movie means' (the baseline the fold-in must beat).
    fn fold_in_beats_movie_means(
        model: &MfModel,
        train: &reelvec_data::Dataset,
        held: &reelvec_data::Dataset,
    ) {
        let rows: Vec<u32> = (0..train.ratings.len() as u32).collect();
        let means = transforms::Means::compute(&train.ratings, &rows, train.users.len(), train.movies.len());
        let movie_mean = |m: u32| f64::from(means.global + means.movie[m as usize]);
        let (mut se_fold, mut se_mean, mut n_eval) = (0f64, 0f64, 0usize);
        for u in 0..held.users.len() as u32 {
            let mine: Vec<(u32, f32)> = (0..held.ratings.len())
                .filter(|&r| held.ratings.user[r] == u)
                .filter_map(|r| {
                    let raw = held.movies.raw(held.ratings.movie[r])?;
                    Some((train.movies.dense(raw)?, held.ratings.rating[r]))
                })
                .collect();
            if mine.len() < 15 {
                continue;
            }
            let (given, rest) = mine.split_at(10);
            let user = fold_in_rating_user(model, given, &FoldInConfig::default()).unwrap();
            for &(m, r) in rest {
                se_fold += f64::from(user.predict(m) - r).powi(2);
                se_mean += (movie_mean(m) - f64::from(r)).powi(2);
                n_eval += 1;
            }
        }
        assert!(n_eval > 200, "{n_eval} held-out ratings");
        let (fold, mean) = ((se_fold / n_eval as f64).sqrt(), (se_mean / n_eval as f64).sqrt());
        assert!(fold < mean, "{:?}: fold-in RMSE {fold:.4} vs movie means {mean:.4}", model.kind());
    }

    #[test]
    fn fold_in_of_held_out_users_beats_movie_means() {
        let (train, held) = data();
        let mut p2 = p2_mf::Config { k: 8, init_std: 0.1, bias_init_std: 0.1, ..p2_mf::Config::default() };
        p2.train.epochs = 10;
        p2.train.quiet = true;
        fold_in_beats_movie_means(&p2_mf::run(&train, &p2).unwrap().model, &train, &held);
        let mut p3 = p3_recommender::Config { k: 8, init_std: 0.1, ..p3_recommender::Config::default() };
        p3.train.quiet = true;
        fold_in_beats_movie_means(&p3_recommender::run(&train, &p3).unwrap().model, &train, &held);
        let mut p4 = p4_residual::Config { init_std: 0.1, ..p4_residual::Config::default() };
        p4.train.epochs = 20;
        p4.train.quiet = true;
        fold_in_beats_movie_means(&p4_residual::run(&train, &p4).unwrap().model, &train, &held);
    }

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
