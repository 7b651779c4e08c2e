//! The pipelines P0..P4 of PROTOCOLS.md as library functions: each module has a `Config`
//! (the protocol's notebook defaults; serde, `Default`) and a `run` that prepares the data,
//! trains, and returns an `Outcome` with the trained model, the history and the protocol's
//! figures. The CLI and xtask only print them.
//!
//! [`ModelKind`] names the trainable model kinds as the CLI spells them.

pub mod p0_cbow;
pub mod p1_cooc;
pub mod p2_mf;
pub mod p3_recommender;
pub mod p4_residual;

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use reelvec_data::Dataset;
use serde::{Deserialize, Serialize};

use crate::checkpoint::{self, RatedItems, RunInfo};
use crate::ModelError;

/// The model kinds `reelvec train --model` accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ModelKind {
    /// P0 item2vec CBOW.
    Cbow,
    /// P0's skip-gram twin.
    #[serde(alias = "skip-gram")]
    Skipgram,
    /// P1 co-occurrence factorisation.
    Cooc,
    /// P2 biased matrix factorisation with a sigmoid range.
    Mf,
    /// P3 sigmoid dot-product recommender on min-max scaled ratings.
    SigmoidMf,
    /// P4 residual matrix factorisation.
    ResidualMf,
}

impl ModelKind {
    /// Every kind, in protocol order.
    pub const ALL: [ModelKind; 6] = [
        ModelKind::Cbow,
        ModelKind::Skipgram,
        ModelKind::Cooc,
        ModelKind::Mf,
        ModelKind::SigmoidMf,
        ModelKind::ResidualMf,
    ];

    /// The name as the CLI spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            ModelKind::Cbow => "cbow",
            ModelKind::Skipgram => "skipgram",
            ModelKind::Cooc => "cooc",
            ModelKind::Mf => "mf",
            ModelKind::SigmoidMf => "sigmoid-mf",
            ModelKind::ResidualMf => "residual-mf",
        }
    }

    /// The protocol the kind comes from (`"P0"` .. `"P4"`).
    pub fn protocol(self) -> &'static str {
        match self {
            ModelKind::Cbow | ModelKind::Skipgram => "P0",
            ModelKind::Cooc => "P1",
            ModelKind::Mf => "P2",
            ModelKind::SigmoidMf => "P3",
            ModelKind::ResidualMf => "P4",
        }
    }

    /// True for the kinds that predict ratings (the MF family).
    pub fn predicts_ratings(self) -> bool {
        matches!(self, ModelKind::Mf | ModelKind::SigmoidMf | ModelKind::ResidualMf)
    }
}

impl fmt::Display for ModelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ModelKind {
    type Err = ModelError;

    /// Parses the CLI spelling, case-insensitively; `_` and `-` are interchangeable and
    /// `skip-gram` is accepted for `skipgram`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let norm = s.trim().to_ascii_lowercase().replace('_', "-");
        match norm.as_str() {
            "cbow" => Ok(ModelKind::Cbow),
            "skipgram" | "skip-gram" => Ok(ModelKind::Skipgram),
            "cooc" => Ok(ModelKind::Cooc),
            "mf" => Ok(ModelKind::Mf),
            "sigmoid-mf" => Ok(ModelKind::SigmoidMf),
            "residual-mf" => Ok(ModelKind::ResidualMf),
            _ => Err(ModelError::UnknownModelKind(s.to_string())),
        }
    }
}

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
    let r = &ds.ratings.rating;
    if !r.is_empty() {
        info.rating_scale = Some([
            r.iter().copied().fold(f32::INFINITY, f32::min),
            r.iter().copied().fold(f32::NEG_INFINITY, f32::max),
        ]);
    }
    // Absolute, so that `evaluate` and `plot` find the data from any folder; a path that does
    // not resolve (`synth:<preset>`) is kept as given.
    info.data_path =
        data_path.map(|p| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf()).display().to_string());
    info
}

/// The movies each user rated in the training rows `rows` of `ds`, saved with a run as
/// `rated.safetensors` (for `--exclude-rated`).
pub fn rated_rows(ds: &Dataset, rows: &[u32]) -> RatedItems {
    RatedItems::from_pairs(&ds.ratings.user, &ds.ratings.movie, Some(rows), ds.users.len())
}

/// The table holding a kind's item embeddings (one row per dense movie).
pub fn item_table_name(kind: ModelKind) -> &'static str {
    match kind {
        ModelKind::Cbow | ModelKind::Skipgram => "embedding",
        ModelKind::Cooc | ModelKind::Mf | ModelKind::SigmoidMf | ModelKind::ResidualMf => "movie_factors",
    }
}

/// Loads the item embeddings of any run directory (`n_movies x k`, dense movie order), with
/// its [`RunInfo`].
pub fn load_item_embeddings(dir: &Path) -> Result<(ndarray::Array2<f32>, RunInfo), ModelError> {
    let (params, info) = checkpoint::load_run(dir)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_display_round_trip() {
        for k in ModelKind::ALL {
            assert_eq!(k.as_str().parse::<ModelKind>().unwrap(), k);
            assert_eq!(k.to_string(), k.as_str());
            let json = serde_json::to_string(&k).unwrap();
            assert_eq!(json, format!("\"{}\"", k.as_str()));
            assert_eq!(serde_json::from_str::<ModelKind>(&json).unwrap(), k);
        }
        assert_eq!("Skip-Gram".parse::<ModelKind>().unwrap(), ModelKind::Skipgram);
        assert_eq!("SIGMOID_MF".parse::<ModelKind>().unwrap(), ModelKind::SigmoidMf);
        let err = "svd".parse::<ModelKind>().unwrap_err().to_string();
        assert!(err.contains("`svd`") && err.contains("residual-mf"), "{err}");
        assert_eq!(ModelKind::ResidualMf.protocol(), "P4");
        assert!(ModelKind::Mf.predicts_ratings() && !ModelKind::Cooc.predicts_ratings());
    }
}
