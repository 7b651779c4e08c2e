//! Cold-start evaluation of the MF family with item side features (issue 11): a seeded
//! `fraction` of the movies is held out entirely (reelvec-data's
//! `transforms::hold_out_movies`: every rating of those movies removed from training), the
//! model is trained on the rest twice, without and with `model.item_features`, and the
//! held-out movies' ratings are predicted by
//!
//! - **global mean**: the mean of the training ratings;
//! - **genre mean**: per genre, the mean of the training ratings of movies carrying that genre;
//!   a movie with several genres gets the unweighted mean of its genres' means, a movie with no
//!   genre (or only genres no training movie has) the global mean;
//! - **model without features**: the held-out movies' id vectors and biases are taken as zero
//!   (they were never trained), so the prediction is the user's part alone (P2: the link of
//!   `b_u`; P3 likewise; P4: global + user mean);
//! - **model with features**: the held-out movies' vectors from their features alone
//!   (`mf::fold_item_features`).
//!
//! RMSE and MAE in stars through reelvec-metrics' `rating`; the trainer's own validation split
//! (`train_fraction`) is taken inside the training movies' ratings.
//!
//! Item2vec (`cold_start_item2vec`, `reelvec coldstart --model cbow|skipgram`): the same
//! movie holdout; CBOW / skip-gram is trained with item features on every user's time-ordered
//! sequence of the remaining ratings, the vocabulary being the whole catalogue (P0's
//! `top_movies` / `min_user_ratings` filters are not applied, so held-out movies keep a row),
//! and each held-out movie's vector comes from its features alone. Reported, for the top
//! [`NEIGHBOURS`] cosine neighbours among the trained movies (those of a training sequence),
//! the mean share that has at least one genre in common with the query movie:
//!
//! - **held-out movies, features alone**: the queries are the held-out movies with a genre;
//! - **random trained movies (baseline)**: the same queries, [`NEIGHBOURS`] trained movies
//!   drawn at random (seeded) instead of the neighbours;
//! - **trained movies, own vectors**: every trained movie with a genre as the query (its
//!   vector = id + features), the reference a warm movie reaches.

use reelvec_data::features::{FeatureKind, ItemFeatures};
use reelvec_data::transforms::{hold_out_movies, keep_rows, Means, MovieHoldout, MovieStats};
use reelvec_data::Dataset;
use reelvec_engine::Device;
use reelvec_metrics::rating::{mae, rmse, RatingScale};
use serde::Serialize;

use crate::item2vec::FeatureKinds;
use crate::mf::{MfModel, MOVIE_BIAS, MOVIE_FACTORS};
use crate::pipelines::{p0_cbow, p2_mf, p3_recommender, p4_residual, MfModelConfig};
use crate::train::Resolved;
use crate::traits::ItemEmbeddings;
use crate::{ModelError, RatingModel};

/// The features the model with features uses when the config names none.
pub const DEFAULT_FEATURES: [&str; 2] = ["genres", "decade"];

/// One predictor's errors on the held-out movies' ratings.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ColdStartRow {
    /// `global mean`, `genre mean`, `model without features`, `model with features`.
    pub predictor: String,
    /// RMSE in stars.
    pub rmse: f64,
    /// MAE in stars.
    pub mae: f64,
}

/// What [`cold_start`] reports.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ColdStartReport {
    /// The MF kind (`mf`, `sigmoid-mf`, `residual-mf`).
    pub model: String,
    /// Fraction of movies held out.
    pub fraction: f64,
    /// Seed of the movie holdout (and of the fits).
    pub seed: u64,
    /// Movies held out.
    pub held_out_movies: usize,
    /// Ratings of the held-out movies (the test rows).
    pub test_ratings: usize,
    /// Ratings of the other movies (training and the trainer's validation).
    pub train_ratings: usize,
    /// The feature kinds of the model with features.
    pub item_features: Vec<String>,
    /// How many features that gave.
    pub n_features: usize,
    /// The four predictors, in the order of the module doc.
    pub rows: Vec<ColdStartRow>,
}

/// Runs the cold-start evaluation of the MF config `cfg` on `ds` (see the module doc).
/// `fraction` must be in (0, 1); the features are `cfg`'s `model.item_features`, or
/// [`DEFAULT_FEATURES`] when it names none.
pub fn cold_start(
    ds: &Dataset,
    cfg: &Resolved,
    fraction: f64,
    seed: u64,
    device: Device,
) -> Result<ColdStartReport, ModelError> {
    let features = |c: &MfModelConfig| {
        let mut c = c.clone();
        if c.item_features.is_empty() {
            c.item_features = DEFAULT_FEATURES.iter().map(|s| s.to_string()).collect();
        }
        c
    };
    let (with, without) = match cfg {
        Resolved::Mf(c) => (
            Resolved::Mf(p2_mf::Config { model: features(&c.model), ..c.clone() }),
            Resolved::Mf(p2_mf::Config {
                model: MfModelConfig { item_features: vec![], ..c.model.clone() },
                ..c.clone()
            }),
        ),
        Resolved::SigmoidMf(c) => (
            Resolved::SigmoidMf(p3_recommender::Config { model: features(&c.model), ..c.clone() }),
            Resolved::SigmoidMf(p3_recommender::Config {
                model: MfModelConfig { item_features: vec![], ..c.model.clone() },
                ..c.clone()
            }),
        ),
        Resolved::ResidualMf(c) => (
            Resolved::ResidualMf(p4_residual::Config { model: features(&c.model), ..c.clone() }),
            Resolved::ResidualMf(p4_residual::Config {
                model: MfModelConfig { item_features: vec![], ..c.model.clone() },
                ..c.clone()
            }),
        ),
        other => {
            return Err(ModelError::Unsupported {
                operation: "cold-start evaluation (the MF models: mf, sigmoid-mf, residual-mf)".into(),
                kind: other.kind().to_string(),
            })
        }
    };
    let kinds = match &with {
        Resolved::Mf(c) => c.model.item_features.clone(),
        Resolved::SigmoidMf(c) => c.model.item_features.clone(),
        Resolved::ResidualMf(c) => c.model.item_features.clone(),
        _ => Vec::new(),
    };
    let (n_users, n_movies) = (ds.users.len(), ds.movies.len());
    let (holdout, train_ds) = hold_out(ds, fraction, seed)?;
    let plain = zero_movies(&fit(&train_ds, &without, device)?, &holdout.held_out)?;
    let featured = fit(&train_ds, &with, device)?;
    let n_features = featured.item_features().map_or(0, ItemFeatures::n_features);

    let r = &ds.ratings;
    let test = &holdout.test;
    let targets: Vec<f32> = test.iter().map(|&i| r.rating[i as usize]).collect();
    let means = Means::compute(r, &holdout.train, n_users, n_movies);
    let genre = genre_means(ds, &holdout.train, means.global)?;
    let predict = |f: &dyn Fn(u32, u32) -> f32| -> Vec<f32> {
        test.iter().map(|&i| f(r.user[i as usize], r.movie[i as usize])).collect()
    };
    let columns: [(&str, Vec<f32>); 4] = [
        ("global mean", vec![means.global; test.len()]),
        ("genre mean", predict(&|_, m| genre[m as usize])),
        ("model without features", predict(&|u, m| plain.predict(u, m))),
        ("model with features", predict(&|u, m| featured.predict(u, m))),
    ];
    let mut rows = Vec::with_capacity(columns.len());
    for (name, p) in columns {
        rows.push(ColdStartRow {
            predictor: name.to_string(),
            rmse: rmse(&p, &targets, RatingScale::Stars)?,
            mae: mae(&p, &targets, RatingScale::Stars)?,
        });
    }
    Ok(ColdStartReport {
        model: cfg.kind().to_string(),
        fraction,
        seed,
        held_out_movies: holdout.held_out.iter().filter(|&&h| h).count(),
        test_ratings: test.len(),
        train_ratings: holdout.train.len(),
        item_features: kinds,
        n_features,
        rows,
    })
}

/// The seeded movie holdout of both evaluations (`fraction` in (0, 1), both parts non-empty)
/// and the data without the held-out movies' ratings (id maps kept).
fn hold_out(ds: &Dataset, fraction: f64, seed: u64) -> Result<(MovieHoldout, Dataset), ModelError> {
    crate::pipelines::check_key(
        "--fraction",
        fraction,
        "0 < fraction < 1",
        fraction > 0.0 && fraction < 1.0,
    )?;
    let n_movies = ds.movies.len();
    let holdout = hold_out_movies(&ds.ratings, n_movies, fraction, seed);
    if holdout.test.is_empty() || holdout.train.is_empty() {
        return Err(ModelError::InvalidData(format!(
            "holding out {fraction} of {n_movies} movies leaves {} training and {} test ratings; both must be non-empty",
            holdout.train.len(),
            holdout.test.len()
        )));
    }
    let train_ds = keep_rows(ds, &holdout.train);
    Ok((holdout, train_ds))
}

/// Trains an MF config through its pipeline and returns the model.
fn fit(ds: &Dataset, cfg: &Resolved, device: Device) -> Result<MfModel, ModelError> {
    Ok(match cfg {
        Resolved::Mf(c) => p2_mf::run_on(ds, c, device)?.model,
        Resolved::SigmoidMf(c) => p3_recommender::run_on(ds, c, device)?.model,
        Resolved::ResidualMf(c) => p4_residual::run_on(ds, c, device)?.model,
        other => {
            return Err(ModelError::Unsupported {
                operation: "cold start".into(),
                kind: other.kind().to_string(),
            })
        }
    })
}

/// The model with the movie vectors and biases of `cold` movies set to zero.
fn zero_movies(model: &MfModel, cold: &[bool]) -> Result<MfModel, ModelError> {
    let mut params = model.params().clone();
    for name in [MOVIE_FACTORS, MOVIE_BIAS] {
        if let Some(id) = params.id(name) {
            let t = params.get_mut(id);
            let cols = t.cols;
            for (m, _) in cold.iter().enumerate().filter(|(_, &c)| c) {
                t.data[m * cols..(m + 1) * cols].fill(0.0);
            }
        }
    }
    MfModel::new(model.variant(), *model.spec(), params, model.output().clone())
}

/// Each movie's genre-mean prediction (see the module doc) from the training rows `rows`.
fn genre_means(ds: &Dataset, rows: &[u32], global: f32) -> Result<Vec<f32>, ModelError> {
    let genres = ItemFeatures::build(ds.movies.raws(), &ds.catalogue, &[FeatureKind::Genres], 1)
        .map_err(|e| ModelError::InvalidData(e.to_string()))?;
    let stats = MovieStats::compute(&ds.ratings, Some(rows), ds.movies.len());
    let (mut sum, mut count) = (vec![0.0f64; genres.n_features()], vec![0u64; genres.n_features()]);
    for m in 0..ds.movies.len() {
        if stats.count[m] > 0 {
            for &g in genres.of(m) {
                sum[g as usize] += f64::from(stats.mean[m]) * f64::from(stats.count[m]);
                count[g as usize] += u64::from(stats.count[m]);
            }
        }
    }
    Ok((0..ds.movies.len())
        .map(|m| {
            let means: Vec<f64> = genres
                .of(m)
                .iter()
                .filter(|&&g| count[g as usize] > 0)
                .map(|&g| sum[g as usize] / count[g as usize] as f64)
                .collect();
            if means.is_empty() {
                global
            } else {
                (means.iter().sum::<f64>() / means.len() as f64) as f32
            }
        })
        .collect())
}

/// Neighbours per query movie in the item2vec cold-start figures.
pub const NEIGHBOURS: usize = 10;

/// One row of the item2vec cold-start table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GenreShareRow {
    /// What the queries and their neighbours are (see the module doc).
    pub neighbours: String,
    /// Query movies (with at least one genre).
    pub queries: usize,
    /// Mean share of the neighbours with at least one genre in common with the query.
    pub share_same_genre: f64,
}

/// What [`cold_start_item2vec`] reports.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Item2VecColdStartReport {
    /// `cbow` or `skipgram`.
    pub model: String,
    /// Fraction of movies held out.
    pub fraction: f64,
    /// Seed of the movie holdout, the fit and the baseline's draws.
    pub seed: u64,
    /// Movies held out.
    pub held_out_movies: usize,
    /// Movies of a training sequence (the neighbour candidates).
    pub trained_movies: usize,
    /// Neighbours per query.
    pub neighbours: usize,
    /// The feature kinds.
    pub item_features: Vec<String>,
    /// How many features that gave.
    pub n_features: usize,
    /// The three rows of the module doc.
    pub rows: Vec<GenreShareRow>,
}

/// The item2vec cold-start evaluation of the P0 config `cfg` on `ds` (see the module doc);
/// the features are `cfg`'s `model.item_features`, or [`DEFAULT_FEATURES`] when it names none.
pub fn cold_start_item2vec(
    ds: &Dataset,
    cfg: &p0_cbow::Config,
    fraction: f64,
    seed: u64,
    device: Device,
) -> Result<Item2VecColdStartReport, ModelError> {
    use rand::SeedableRng;
    let mut cfg = cfg.clone();
    if cfg.model.item_features.is_empty() {
        cfg.model.item_features = FeatureKinds::parse(&DEFAULT_FEATURES)?;
    }
    cfg.validate()?;
    let (n_users, n_movies) = (ds.users.len(), ds.movies.len());
    let (holdout, train_ds) = hold_out(ds, fraction, seed)?;
    let sequences = reelvec_data::transforms::user_sequences(&train_ds.ratings, n_users);
    let outcome = p0_cbow::run_on_sequences(train_ds, &sequences, &cfg, device)?;
    let trained: Vec<bool> = match &outcome.trained_rated {
        Some(rated) => rated.movie_counts(n_movies)?.into_iter().map(|c| c > 0).collect(),
        None => {
            return Err(ModelError::InvalidData("item2vec with features recorded no training movies".into()))
        }
    };
    let genres = ItemFeatures::build(ds.movies.raws(), &ds.catalogue, &[FeatureKind::Genres], 1)
        .map_err(|e| ModelError::InvalidData(e.to_string()))?;
    let shares = |a: usize, near: &[u32]| -> f64 {
        let ga = genres.of(a);
        let hits = near.iter().filter(|&&b| genres.of(b as usize).iter().any(|g| ga.contains(g))).count();
        hits as f64 / near.len().max(1) as f64
    };
    let model = &outcome.model;
    let n_trained = trained.iter().filter(|&&t| t).count();
    let neighbours_of = |m: usize| -> Result<Vec<u32>, ModelError> {
        let ranked = crate::traits::no_vector_as_none(model.nearest_by_cosine(m as u32, n_movies))?;
        Ok(ranked
            .unwrap_or_default()
            .into_iter()
            .map(|(n, _)| n)
            .filter(|&n| trained[n as usize])
            .take(NEIGHBOURS)
            .collect())
    };
    let mean = |xs: &[f64]| if xs.is_empty() { f64::NAN } else { xs.iter().sum::<f64>() / xs.len() as f64 };
    let cold: Vec<usize> =
        (0..n_movies).filter(|&m| holdout.held_out[m] && !genres.of(m).is_empty()).collect();
    let warm: Vec<usize> = (0..n_movies).filter(|&m| trained[m] && !genres.of(m).is_empty()).collect();
    let trained_ids: Vec<u32> = (0..n_movies as u32).filter(|&m| trained[m as usize]).collect();
    let mut cold_shares = Vec::with_capacity(cold.len());
    let mut random_shares = Vec::with_capacity(cold.len());
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    for &m in &cold {
        cold_shares.push(shares(m, &neighbours_of(m)?));
        let draw = rand::seq::index::sample(&mut rng, trained_ids.len(), NEIGHBOURS.min(trained_ids.len()));
        let random: Vec<u32> = draw.into_iter().map(|i| trained_ids[i]).collect();
        random_shares.push(shares(m, &random));
    }
    let warm_shares: Vec<f64> =
        warm.iter().map(|&m| Ok(shares(m, &neighbours_of(m)?))).collect::<Result<_, ModelError>>()?;
    let row = |what: &str, queries: usize, share: f64| GenreShareRow {
        neighbours: what.to_string(),
        queries,
        share_same_genre: share,
    };
    Ok(Item2VecColdStartReport {
        model: outcome.kind().to_string(),
        fraction,
        seed,
        held_out_movies: holdout.held_out.iter().filter(|&&h| h).count(),
        trained_movies: n_trained,
        neighbours: NEIGHBOURS,
        item_features: cfg.model.item_features.names(),
        n_features: model.item_feature_names().len(),
        rows: vec![
            row("held-out movies, features alone", cold.len(), mean(&cold_shares)),
            row("random trained movies (baseline)", cold.len(), mean(&random_shares)),
            row("trained movies, own vectors", warm.len(), mean(&warm_shares)),
        ],
    })
}
