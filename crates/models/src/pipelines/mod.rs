//! The pipelines P0..P4 of PROTOCOLS.md as library functions: each module has a `Config`
//! (the protocol's notebook defaults; serde, `Default`) and a `run_on(&Dataset, &Config, Device)`
//! that prepares the data, trains, and returns an `Outcome` with the trained model, the history
//! and the protocol's figures (`run` is `run_on` on the CPU). `run_on` is the one entry point per
//! model family, for the CLI and for a Rust user alike. The CLI and xtask only print outcomes.
//!
//! [`ModelKind`] (in `crate::kind`, re-exported here) names the trainable model kinds as the CLI
//! spells them.

mod mf_features;
pub mod p0_cbow;
pub mod p1_cooc;
pub mod p2_mf;
pub mod p3_recommender;
pub mod p4_residual;

use std::path::Path;

use reelvec_data::Dataset;
use serde::{Deserialize, Serialize};

use crate::checkpoint::{self, RatedItems, RunInfo};
pub use crate::kind::ModelKind;
use crate::ranking::RankerKind;
use crate::ModelError;
pub(crate) use mf_features::FeatureFit;
pub use mf_features::MfModelConfig;

/// A movie with a score, as the protocols report them (biases, similarities, predictions).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MovieScore {
    /// Dense movie index.
    pub movie: u32,
    /// Raw movie id.
    pub raw_id: u64,
    /// Display title.
    pub title: String,
    /// The score (bias, cosine similarity, predicted rating, ...).
    pub score: f32,
}

impl MovieScore {
    /// Looks up id and title of dense `movie` in `ds`.
    pub fn new(ds: &Dataset, movie: u32, score: f32) -> Self {
        Self { movie, raw_id: ds.movies.raw(movie).unwrap_or(u64::MAX), title: ds.title(movie), score }
    }

    /// Scores of `(movie, score)` pairs.
    pub fn list(ds: &Dataset, pairs: &[(u32, f32)]) -> Vec<Self> {
        pairs.iter().map(|&(m, s)| Self::new(ds, m, s)).collect()
    }
}

/// The dense index of the movie whose full title is exactly `title`, if any.
pub fn find_title(ds: &Dataset, title: &str) -> Option<u32> {
    (0..ds.movies.len() as u32).find(|&m| ds.movie_info(m).is_some_and(|info| info.full_title == title))
}

/// A [`RunInfo`] filled from a dataset: id maps, titles, fingerprint, data path.
pub fn run_info_for(
    ds: &Dataset,
    kind: ModelKind,
    config: serde_json::Value,
    seed: u64,
    data_path: Option<&Path>,
) -> RunInfo {
    let mut info = RunInfo::new(kind, config, seed);
    info.user_raw_ids = ds.users.raws().to_vec();
    info.movie_raw_ids = ds.movies.raws().to_vec();
    info.movie_titles = (0..ds.movies.len() as u32).map(|m| ds.title(m)).collect();
    info.dataset_fingerprint = checkpoint::fingerprint_ratings(&ds.ratings);
    info.rating_scale = rating_scale(ds);
    // Absolute, so that `evaluate` and `plot` find the data from any folder; a path that does
    // not resolve (`synth:<preset>`) is kept as given.
    info.data_path =
        data_path.map(|p| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf()).display().to_string());
    info
}

/// The seeded row split of the rating pipelines (P2, P3, P4): `transforms::random_split`, except
/// that a train fraction of 1 or more trains on every row in file order with no validation rows.
pub fn rating_split(n_rows: usize, train_fraction: f64, seed: u64) -> (Vec<u32>, Vec<u32>) {
    if train_fraction >= 1.0 {
        ((0..n_rows as u32).collect(), Vec::new())
    } else {
        reelvec_data::transforms::random_split(n_rows, train_fraction, seed)
    }
}

/// The training rows (sorted) and validation rows a saved rating run (mf, sigmoid-mf,
/// residual-mf) used on data with `n_rows` ratings, from its stored config: the one place that
/// rebuilds a run's split (`evaluate`).
pub fn run_rating_split(info: &RunInfo, n_rows: usize) -> Result<(Vec<u32>, Vec<u32>), ModelError> {
    fn read<C: serde::de::DeserializeOwned>(info: &RunInfo) -> Result<C, ModelError> {
        serde_json::from_value(info.config.clone())
            .map_err(|e| ModelError::InvalidConfig(format!("the run's stored config: {e}")))
    }
    let (fraction, seed) = match info.model_kind {
        ModelKind::Mf => read::<p2_mf::Config>(info).map(|c| (c.train_fraction, c.seed))?,
        ModelKind::SigmoidMf => read::<p3_recommender::Config>(info).map(|c| (c.train_fraction, c.seed))?,
        ModelKind::ResidualMf => read::<p4_residual::Config>(info).map(|c| (c.train_fraction, c.seed))?,
        other => {
            return Err(ModelError::Unsupported {
                operation: "rebuilding a rating split".into(),
                kind: other.to_string(),
            })
        }
    };
    let (mut train, val) = rating_split(n_rows, fraction, seed);
    train.sort_unstable();
    Ok((train, val))
}

/// The data's rating scale `[lowest, highest]` (`None` without ratings): what `run.json` records
/// and what P4's predictions are clipped to.
pub fn rating_scale(ds: &Dataset) -> Option<[f32; 2]> {
    let r = &ds.ratings.rating;
    (!r.is_empty()).then(|| {
        [r.iter().copied().fold(f32::INFINITY, f32::min), r.iter().copied().fold(f32::NEG_INFINITY, f32::max)]
    })
}

/// The movies each user rated in the training rows `rows` of `ds`, saved with a run as
/// `rated.safetensors` (for `--exclude-rated`).
pub fn rated_rows(ds: &Dataset, rows: &[u32]) -> Result<RatedItems, ModelError> {
    Ok(RatedItems::from_rows_of(ds.users.len(), &ds.ratings.user, &ds.ratings.movie, rows)?)
}

/// The table holding a kind's item embeddings (one row per dense movie).
pub fn item_table_name(kind: ModelKind) -> &'static str {
    match kind {
        ModelKind::Cbow | ModelKind::Skipgram => "embedding",
        // Ranking models: ials and bpr hold `movie_factors`; the others have no embeddings
        // (refused by `load_item_embeddings` before any table is read).
        _ => "movie_factors",
    }
}

/// [`ModelError::Unsupported`] for the kinds without item embeddings (popularity, itemknn, ease).
pub fn check_has_item_embeddings(kind: ModelKind) -> Result<(), ModelError> {
    if matches!(kind, ModelKind::Ranker(RankerKind::Popularity | RankerKind::ItemKnn | RankerKind::Ease)) {
        return Err(ModelError::Unsupported {
            operation:
                "item embeddings (similar, export; itemknn answers `similar` from its neighbour lists)".into(),
            kind: kind.to_string(),
        });
    }
    Ok(())
}

/// Loads the item embeddings of any run directory (`n_movies x k`, dense movie order), with
/// its [`RunInfo`].
pub fn load_item_embeddings(dir: &Path) -> Result<(ndarray::Array2<f32>, RunInfo), ModelError> {
    let (params, info) = checkpoint::load_run(dir)?;
    check_has_item_embeddings(info.model_kind)?;
    let name = item_table_name(info.model_kind);
    let t = checkpoint::require_table(&params, name, info.movie_raw_ids.len(), None, dir)?;
    let emb = ndarray::Array2::from_shape_vec((t.rows, t.cols), t.data.clone())
        .map_err(|e| ModelError::checkpoint(dir.join(checkpoint::MODEL_FILE), e.to_string()))?;
    Ok((emb, info))
}

/// A [`ModelError::ConfigValue`] for `key` unless `ok`.
pub(crate) fn check_key(
    key: &str,
    value: impl std::fmt::Display,
    allowed: &str,
    ok: bool,
) -> Result<(), ModelError> {
    if ok {
        Ok(())
    } else {
        Err(ModelError::ConfigValue { key: key.into(), value: value.to_string(), allowed: allowed.into() })
    }
}

/// Checks a `train_fraction`: in (0, 1].
pub(crate) fn check_fraction(key: &str, f: f64) -> Result<(), ModelError> {
    check_key(key, f, "0 < fraction <= 1", f > 0.0 && f <= 1.0)
}

/// Checks an initial standard deviation: finite and above 0 (0 would give all-zero tables).
pub(crate) fn check_init_std(key: &str, std: f32) -> Result<(), ModelError> {
    check_key(key, std, "a finite number > 0", std.is_finite() && std > 0.0)
}

/// Checks a rank / embedding size: 1 to [`MAX_DIM`] (tables are also sized against memory
/// once the data's shape is known).
pub(crate) fn check_dim(key: &str, k: usize) -> Result<(), ModelError> {
    check_key(key, k, "1 to 65536", (1..=MAX_DIM).contains(&k))
}

/// Largest rank / embedding size a config may ask for.
pub const MAX_DIM: usize = 65_536;

/// Checks a pipeline's [`TrainConfig`](reelvec_engine::TrainConfig) under the key prefix
/// `prefix` (`train`).
pub(crate) fn check_train(prefix: &str, train: &reelvec_engine::TrainConfig) -> Result<(), ModelError> {
    train.validate().map_err(|e| match e {
        reelvec_engine::EngineError::ConfigValue { key, value, allowed } => {
            ModelError::ConfigValue { key: format!("{prefix}.{key}"), value, allowed }
        }
        other => ModelError::Engine(other),
    })
}

/// Refuses, before allocating, tables of `values` f32 values held `copies` times (parameters,
/// gradients, Adam's two moments) when they exceed the available memory.
pub(crate) fn check_tables_fit(what: &str, values: u128, copies: u128) -> Result<(), ModelError> {
    use reelvec_engine::memory;
    Ok(memory::ensure_fits(what, memory::f32_bytes(values, copies))?)
}

/// [`check_tables_fit`] for MF tables of rank `k` over `ds` (factors and biases, four copies).
pub(crate) fn check_mf_tables_fit(ds: &Dataset, k: usize) -> Result<(), ModelError> {
    let (u, m) = (ds.users.len() as u128, ds.movies.len() as u128);
    let what = format!("MF tables ({u} users + {m} movies) x (k = {k} + 1)");
    check_tables_fit(&what, (u + m) * (k as u128 + 1), 4)
}

/// Checks that a dataset has ratings, users and movies.
pub(crate) fn require_ratings(ds: &Dataset, what: &str) -> Result<(), ModelError> {
    if ds.ratings.is_empty() || ds.users.is_empty() || ds.movies.is_empty() {
        return Err(ModelError::InvalidData(format!("{what} needs ratings, and the dataset has none")));
    }
    Ok(())
}
