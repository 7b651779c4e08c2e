//! Folding a new user into a trained MF model without retraining (`reelvec recommend --rated`):
//! the per-kind algebra over the run's tables. The CLI only parses and prints.
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
//! (Item2vec runs use reelvec-metrics' `fold_in_watched`: the mean of the watched vectors.)

use ndarray::ArrayView1;
use reelvec_metrics::foldin::{fold_in_user_with_link, FoldIn, FoldInConfig};
use reelvec_metrics::ScoreLink;

use crate::mf::{Link, MfModel, OutputMap};
use crate::traits::ItemEmbeddings;
use crate::ModelError;

/// A folded-in user of a rating model.
#[derive(Debug)]
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
) -> Result<FoldedUser<'a>, ModelError> {
    if rated.is_empty() {
        return Err(ModelError::InvalidData("fold-in needs at least one rated movie".into()));
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
            out @ OutputMap::Residual { global, movie: m, .. } => {
                out.clip(global + self.user_offset + m[movie as usize] + y)
            }
        }
    }

    /// The `k` best movies by predicted stars, `excluded` left out, best first (ties: lower index).
    /// Ranked by reelvec-metrics' `top_k_of_row` (the one top-N order).
    pub fn top(&self, k: usize, excluded: &[u32]) -> Result<Vec<(u32, f32)>, ModelError> {
        let scores: Vec<f32> = (0..self.model.spec().n_movies as u32).map(|m| self.predict(m)).collect();
        let mut excluded = excluded.to_vec();
        excluded.sort_unstable();
        Ok(reelvec_metrics::topn::top_k_of_row(&scores, k, &excluded)?)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::pipelines::{p2_mf, p3_recommender, p4_residual};
    use reelvec_data::synth::{generate, Preset, SynthConfig};
    use reelvec_data::transforms;

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
}
