//! Saving and loading fitted ranking models as run directories (reelvec-models' one
//! run-directory format, [`crate::checkpoint`]): each model's state as named f32 tables in
//! `model.safetensors`, its full parameters as `run.json`'s `config`, its kind as `model_kind`
//! ([`ModelKind::Ranker`](crate::ModelKind::Ranker) of its [`RankerKind`]), and the training
//! interactions as `rated.safetensors` — which itemknn and ease score from, and
//! `recommend --exclude-rated` reads.
//!
//! The tables per kind:
//! - popularity: `counts` `[movies, 1]`;
//! - itemknn: the neighbour lists as CSR — `neighbour_counts` `[movies, 1]` (kept neighbours per
//!   movie), `neighbours` `[pairs, 1]` (movie indices) and `similarities` `[pairs, 1]`; indices
//!   and counts are integers, exact in f32 below 2^24;
//! - ease: `weights` `[movies, movies]` (B);
//! - ials: `user_factors` `[users, k]`, `movie_factors` `[movies, k]`;
//! - bpr and warp: `user_factors`, `movie_factors` and `movie_bias` `[movies, 1]` (its engine
//!   store).
//!
//! [`restore_ranker`] is the one dispatch that rebuilds a model from its tables, beside
//! [`super::fit_ranker`]; a missing, misshapen or inconsistent table is a
//! [`ModelError::Checkpoint`] naming it. A restored model scores bitwise like the fitted one.

use std::path::Path;

use ndarray::Array2;
use reelvec_engine::{GradKind, ParamStore, Table};
use reelvec_metrics::RatedItems;

use super::bpr::{Bpr, BprParams, BprTables};
use super::ease::{Ease, EaseParams};
use super::ials::{Ials, IalsParams};
use super::itemknn::{ItemKnn, ItemKnnParams};
use super::popularity::Popularity;
use super::{check_param_keys, Interactions, Ranker, RankerKind};
use crate::checkpoint::{self, RunInfo, MODEL_FILE, RATED_FILE};
use crate::ModelError;

/// Largest integer an f32 table stores exactly.
const F32_EXACT: usize = 1 << 24;

fn table(name: &str, rows: usize, cols: usize, data: Vec<f32>) -> Table {
    Table { name: name.to_string(), rows, cols, grad_kind: GradKind::Dense, data }
}

fn integers(name: &str, values: impl Iterator<Item = usize>) -> Result<Vec<f32>, ModelError> {
    values
        .map(|v| {
            if v < F32_EXACT {
                Ok(v as f32)
            } else {
                Err(ModelError::checkpoint(MODEL_FILE, format!("table `{name}`: {v} is not exact in f32")))
            }
        })
        .collect()
}

/// A fitted ranking model's state as named f32 tables (module doc).
pub fn ranker_tables(model: &dyn Ranker) -> Result<ParamStore, ModelError> {
    let any: &dyn std::any::Any = model;
    let mut store = ParamStore::new();
    let mut put = |t: Table| -> Result<(), ModelError> {
        let name = t.name.clone();
        store.insert(t).map_err(|e| ModelError::checkpoint(MODEL_FILE, format!("table `{name}`: {e}")))?;
        Ok(())
    };
    if let Some(m) = any.downcast_ref::<Popularity>() {
        put(table("counts", m.counts.len(), 1, m.counts.clone()))?;
    } else if let Some(m) = any.downcast_ref::<ItemKnn>() {
        let counts = integers("neighbour_counts", m.indptr.windows(2).map(|w| w[1] - w[0]))?;
        let neighbours = integers("neighbours", m.neighbour.iter().map(|&j| j as usize))?;
        put(table("neighbour_counts", m.n_items, 1, counts))?;
        put(table("neighbours", neighbours.len(), 1, neighbours))?;
        put(table("similarities", m.similarity.len(), 1, m.similarity.clone()))?;
    } else if let Some(m) = any.downcast_ref::<Ease>() {
        let (r, c) = m.weights.dim();
        put(table("weights", r, c, m.weights.iter().copied().collect()))?;
    } else if let Some(m) = any.downcast_ref::<Ials>() {
        for (name, f) in [("user_factors", &m.user_factors), ("movie_factors", &m.item_factors)] {
            put(table(name, f.nrows(), f.ncols(), f.iter().copied().collect()))?;
        }
    } else if let Some(m) = any.downcast_ref::<Bpr>() {
        for t in m.store.tables() {
            put(t.clone())?;
        }
    } else {
        return Err(ModelError::Unsupported { operation: "saving".into(), kind: model.kind().to_string() });
    }
    Ok(store)
}

/// The data of table `name`, checked to be `[rows, cols]` (`cols: None`: any).
fn data<'a>(
    tables: &'a ParamStore,
    name: &str,
    rows: usize,
    cols: Option<usize>,
    source: &Path,
) -> Result<&'a Table, ModelError> {
    checkpoint::require_table(tables, name, rows, cols, source)
}

fn damaged(source: &Path, name: &str, why: String) -> ModelError {
    ModelError::checkpoint(source.join(MODEL_FILE), format!("table `{name}` {why}"))
}

/// Rebuilds a fitted model of `kind` from its tables (see [`ranker_tables`]), its full `params`
/// (as [`Ranker::params`] reported them) and its training interactions `train`. `source` (the
/// run directory) names the file in errors.
pub fn restore_ranker(
    kind: RankerKind,
    params: &serde_json::Value,
    tables: &ParamStore,
    train: Interactions<'_>,
    source: &Path,
) -> Result<Box<dyn Ranker>, ModelError> {
    let (n_users, m) = (train.n_users(), train.n_items);
    let by_user = train.by_user.clone();
    let array = |name: &str, rows: usize, cols: Option<usize>| -> Result<Array2<f32>, ModelError> {
        let t = data(tables, name, rows, cols, source)?;
        Array2::from_shape_vec((t.rows, t.cols), t.data.clone())
            .map_err(|e| damaged(source, name, e.to_string()))
    };
    Ok(match kind {
        RankerKind::Popularity => {
            check_param_keys(kind, params, &[])?;
            let counts = data(tables, "counts", m, Some(1), source)?.data.clone();
            Box::new(Popularity { counts, n_users })
        }
        RankerKind::ItemKnn => {
            let params = ItemKnnParams::from_json(params)?;
            let counts = &data(tables, "neighbour_counts", m, Some(1), source)?.data;
            let mut indptr = Vec::with_capacity(m + 1);
            indptr.push(0usize);
            for &c in counts {
                if !(c >= 0.0 && c.fract() == 0.0 && (c as usize) < m.max(1)) {
                    return Err(damaged(
                        source,
                        "neighbour_counts",
                        format!("holds {c}, not a neighbour count"),
                    ));
                }
                indptr.push(indptr[indptr.len() - 1] + c as usize);
            }
            let pairs = indptr[m];
            let neighbours = &data(tables, "neighbours", pairs, Some(1), source)?.data;
            let neighbour = neighbours
                .iter()
                .map(|&j| {
                    if j >= 0.0 && j.fract() == 0.0 && (j as usize) < m {
                        Ok(j as u32)
                    } else {
                        Err(damaged(source, "neighbours", format!("holds {j}, not a movie index below {m}")))
                    }
                })
                .collect::<Result<Vec<u32>, _>>()?;
            let similarity = data(tables, "similarities", pairs, Some(1), source)?.data.clone();
            Box::new(ItemKnn { params, by_user, n_items: m, indptr, neighbour, similarity })
        }
        RankerKind::Ease => {
            let params = EaseParams::from_json(params)?;
            Box::new(Ease { params, by_user, weights: array("weights", m, Some(m))? })
        }
        RankerKind::Ials => {
            let params = IalsParams::from_json(params)?;
            let k = Some(params.factors);
            Box::new(Ials {
                params,
                user_factors: array("user_factors", n_users, k)?,
                item_factors: array("movie_factors", m, k)?,
            })
        }
        RankerKind::Bpr | RankerKind::Warp => {
            let params = BprParams::from_json_for(kind, params)?;
            let k = Some(params.factors);
            let mut store = ParamStore::new();
            let mut add = |name: &str, rows: usize, cols: Option<usize>| {
                let t = data(tables, name, rows, cols, source)?.clone();
                store.insert(t).map_err(|e| damaged(source, name, e.to_string()))
            };
            let user_factors = add("user_factors", n_users, k)?;
            let movie_factors = add("movie_factors", m, k)?;
            let movie_bias = add("movie_bias", m, Some(1))?;
            Box::new(Bpr { params, store, tables: BprTables { user_factors, movie_factors, movie_bias } })
        }
    })
}

/// Checks a JSON object of overrides for `kind` (unknown keys, wrong types, out-of-range values)
/// before any data is loaded — the same checks [`super::fit_ranker`] makes — and returns the full
/// parameters with the defaults filled in (what [`Ranker::params`] of the fitted model reports).
pub fn check_ranker_params(
    kind: RankerKind,
    params: &serde_json::Value,
) -> Result<serde_json::Value, ModelError> {
    let full = match kind {
        RankerKind::Popularity => check_param_keys(kind, params, &[]).map(|()| Ok(serde_json::json!({}))),
        RankerKind::ItemKnn => ItemKnnParams::from_json(params).map(serde_json::to_value),
        RankerKind::Ease => EaseParams::from_json(params).map(serde_json::to_value),
        RankerKind::Ials => IalsParams::from_json(params).map(serde_json::to_value),
        RankerKind::Bpr | RankerKind::Warp => {
            BprParams::from_json_for(kind, params).map(serde_json::to_value)
        }
    }?;
    full.map_err(|e| ModelError::InvalidConfig(format!("{kind} parameters: {e}")))
}

/// Saves a fitted ranking model as a run directory: its tables ([`ranker_tables`]), `info`
/// (whose `model_kind` must be the model's kind; `config` is set to the model's full
/// parameters) and `train`, the interactions it was fitted on, as `rated.safetensors`.
pub fn save_ranker(
    dir: &Path,
    model: &dyn Ranker,
    info: &RunInfo,
    train: &RatedItems,
) -> Result<(), ModelError> {
    if info.model_kind.ranker() != Some(model.kind()) {
        return Err(ModelError::InvalidConfig(format!(
            "run.json says {} but the model is {}",
            info.model_kind,
            model.kind()
        )));
    }
    let tables = ranker_tables(model)?;
    let mut info = info.clone();
    info.config = model.params();
    checkpoint::save_run(dir, &tables, &info, Some(train))
}

/// Loads a ranking model's run directory (written by [`save_ranker`]); a run of another kind is
/// [`ModelError::Unsupported`], a damaged one a [`ModelError::Checkpoint`] naming the file.
pub fn load_ranker(dir: &Path) -> Result<(Box<dyn Ranker>, RunInfo), ModelError> {
    let (tables, info) = checkpoint::load_run(dir)?;
    let rated = checkpoint::load_rated(dir)?;
    let model = ranker_of_run(&tables, &info, rated.as_ref(), dir)?;
    Ok((model, info))
}

/// Rebuilds the ranking model of a run held in memory (its `tables`, `info` and training
/// interactions `rated`, as [`load_ranker`] reads them from `dir`, which names the files in
/// errors): a run of another kind is [`ModelError::Unsupported`], missing or inconsistent
/// interactions a [`ModelError::Checkpoint`].
pub fn ranker_of_run(
    tables: &ParamStore,
    info: &RunInfo,
    rated: Option<&RatedItems>,
    dir: &Path,
) -> Result<Box<dyn Ranker>, ModelError> {
    let Some(kind) = info.model_kind.ranker() else {
        return Err(ModelError::Unsupported {
            operation: "loading as a ranking model".into(),
            kind: info.model_kind.to_string(),
        });
    };
    let rated = rated.ok_or_else(|| {
        ModelError::checkpoint(
            dir.join(RATED_FILE),
            "is missing: a ranking run scores from its training interactions",
        )
    })?;
    let n_items = info.movie_raw_ids.len();
    if rated.n_users() != info.user_raw_ids.len() {
        return Err(ModelError::checkpoint(
            dir.join(RATED_FILE),
            format!("holds {} users, run.json {}", rated.n_users(), info.user_raw_ids.len()),
        ));
    }
    let train = Interactions::new(rated, n_items)
        .map_err(|e| ModelError::checkpoint(dir.join(RATED_FILE), e.to_string()))?;
    restore_ranker(kind, &info.config, tables, train, dir)
}

/// The `key=value` overrides of a ranking model (`--set factors=64`, Python's `config=`) as the
/// JSON object of parameters [`check_ranker_params`] and [`super::fit_ranker`] take; values parse
/// as TOML, else as a string. Keys are plain (no `train.` sections).
pub fn params_from_overrides(sets: &[String]) -> Result<serde_json::Value, ModelError> {
    let mut map = serde_json::Map::new();
    for s in sets {
        let (key, value) = crate::config::parse_override(s)?;
        let [key] = key.as_slice() else {
            return Err(ModelError::InvalidConfig(format!(
                "`{s}`: ranking model parameters are plain keys (e.g. factors=64)"
            )));
        };
        let value =
            serde_json::to_value(value).map_err(|e| ModelError::InvalidConfig(format!("`{s}`: {e}")))?;
        map.insert(key.clone(), value);
    }
    Ok(serde_json::Value::Object(map))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ranking::fit_ranker;
    use ndarray::Array2;
    use reelvec_engine::Device;

    fn rows() -> RatedItems {
        RatedItems::from_rows(&[vec![0, 1], vec![0, 1, 2], vec![1, 2, 3], vec![3, 4], vec![0, 4], vec![2, 4]])
    }

    fn small(kind: RankerKind) -> serde_json::Value {
        match kind {
            RankerKind::Ials => serde_json::json!({"factors": 3, "iterations": 3}),
            RankerKind::Bpr => serde_json::json!({"factors": 3, "epochs": 2}),
            RankerKind::ItemKnn => serde_json::json!({"neighbours": 2}),
            _ => serde_json::Value::Null,
        }
    }

    fn info(kind: RankerKind, rows: &RatedItems) -> RunInfo {
        let mut info = RunInfo::new(kind.into(), serde_json::Value::Null, 7);
        info.user_raw_ids = (0..rows.n_users() as u64).map(|u| u + 100).collect();
        info.movie_raw_ids = (1..=5).collect();
        info.dataset_fingerprint = "0123456789abcdef".into();
        info
    }

    fn all_scores(model: &dyn Ranker) -> Vec<u32> {
        let users: Vec<u32> = (0..model.n_users() as u32).collect();
        let mut out = Array2::zeros((users.len(), model.n_items()));
        model.score_block(&users, out.view_mut()).unwrap();
        out.iter().map(|v| v.to_bits()).collect()
    }

    #[test]
    fn fit_save_load_scores_bitwise_alike_for_every_kind() {
        let rows = rows();
        let train = Interactions::new(&rows, 5).unwrap();
        let dir = tempfile::tempdir().unwrap();
        for kind in RankerKind::ALL {
            let model = fit_ranker(kind, train, &small(kind), 7, Device::Cpu).unwrap();
            let run = dir.path().join(kind.as_str());
            save_ranker(&run, model.as_ref(), &info(kind, &rows), &rows).unwrap();
            let (back, info) = load_ranker(&run).unwrap();
            assert_eq!(info.model_kind.ranker(), Some(kind));
            assert!(!info.model_kind.predicts_ratings(), "{kind}");
            assert_eq!(back.kind(), kind);
            assert_eq!(back.params(), model.params(), "{kind}");
            assert_eq!(check_ranker_params(kind, &small(kind)).unwrap(), model.params(), "{kind}");
            assert_eq!(all_scores(back.as_ref()), all_scores(model.as_ref()), "{kind}");
            let (mut a, mut b) = (vec![0.0f32; 5], vec![0.0f32; 5]);
            let fa = model.score_new_user(&[1, 3], &mut a).is_ok();
            let fb = back.score_new_user(&[1, 3], &mut b).is_ok();
            assert_eq!((fa, a), (fb, b), "{kind}");
            assert_eq!(
                back.item_embeddings().map(|e| e.to_owned()),
                model.item_embeddings().map(|e| e.to_owned()),
                "{kind}"
            );
        }
    }

    #[test]
    fn a_damaged_or_missing_table_is_a_checkpoint_error_naming_it() {
        let rows = rows();
        let train = Interactions::new(&rows, 5).unwrap();
        let src = Path::new("run");
        let knn =
            fit_ranker(RankerKind::ItemKnn, train, &small(RankerKind::ItemKnn), 1, Device::Cpu).unwrap();
        let mut tables = ranker_tables(knn.as_ref()).unwrap();
        let id = tables.id("neighbours").unwrap();
        tables.get_mut(id).data[0] = 9.0;
        let err = restore_ranker(RankerKind::ItemKnn, &knn.params(), &tables, train, src).err().unwrap();
        assert!(
            matches!(err, ModelError::Checkpoint { .. }) && err.to_string().contains("`neighbours`"),
            "{err}"
        );

        let ials = fit_ranker(RankerKind::Ials, train, &small(RankerKind::Ials), 1, Device::Cpu).unwrap();
        let tables = ranker_tables(ials.as_ref()).unwrap();
        // Factors of another rank than the parameters say.
        let params = serde_json::json!({"factors": 4, "iterations": 3});
        let err = restore_ranker(RankerKind::Ials, &params, &tables, train, src).err().unwrap();
        assert!(
            matches!(err, ModelError::Checkpoint { .. }) && err.to_string().contains("`user_factors`"),
            "{err}"
        );
        let err =
            restore_ranker(RankerKind::Ease, &serde_json::Value::Null, &tables, train, src).err().unwrap();
        assert!(
            matches!(err, ModelError::Checkpoint { .. }) && err.to_string().contains("`weights`"),
            "{err}"
        );
    }
}
