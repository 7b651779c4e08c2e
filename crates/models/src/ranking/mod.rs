//! Models built for ranking over implicit feedback (every rating is an interaction): popularity
//! (the floor every model must clear), item-item cosine neighbours, EASE^R, implicit ALS and BPR.
//!
//! Each model is fitted on a training set of interactions ([`Interactions`]: one sorted row of
//! movies per user) and then scores every movie for any block of users through
//! reelvec-metrics' [`ItemScorer`] — so the ranking protocol, `reelvec compare`, top-N and
//! `recommend` treat every model alike. [`fit_ranker`] is the one dispatch by [`RankerKind`];
//! hyperparameters come as a JSON object of overrides over each model's defaults (the keys a
//! `--set` or a `compare --tune` grid names), and [`Ranker::params`] reports the full set used.
//!
//! This module owns the models; the split, the metrics and the top-N selection are
//! reelvec-data's and reelvec-metrics'.

mod bpr;
pub(crate) mod bpr_gpu;
mod ease;
pub(crate) mod ease_gpu;
mod ials;
pub(crate) mod ials_gpu;
mod itemknn;
mod popularity;
mod run;

use std::fmt;
use std::str::FromStr;

use ndarray::ArrayView2;
use reelvec_engine::gpu::Gpu;
use reelvec_engine::Device;
use reelvec_metrics::{ItemScorer, RatedItems};
use serde::{Deserialize, Serialize};

use crate::ModelError;

pub use bpr::{
    triple_loss, triple_step, warp_triple_loss, warp_triple_step, warp_weight, Bpr, BprParams,
    LANES as BPR_LANES,
};
pub use bpr_gpu::{bpr_gpu_bytes, fit_bpr_gpu};
pub use ease::{ease_fit_bytes, Ease, EaseParams};
pub use ease_gpu::{fit_ease_gpu, fit_ease_gpu_chunked};
pub use ials::{Ials, IalsParams};
pub use ials_gpu::{fit_ials_gpu, ials_gpu_bytes, MAX_GPU_FACTORS};
pub use itemknn::{ItemKnn, ItemKnnParams};
pub use popularity::Popularity;
pub use run::{
    check_ranker_params, load_ranker, params_from_overrides, ranker_of_run, ranker_tables, restore_ranker,
    save_ranker,
};

/// A training set of implicit interactions: per user, the sorted movies they interacted with
/// (reelvec-metrics' [`RatedItems`], users `0..n_users`), over a catalogue of `n_items` movies.
#[derive(Debug, Clone, Copy)]
pub struct Interactions<'a> {
    /// One sorted, de-duplicated row of movies per user.
    pub by_user: &'a RatedItems,
    /// Movies in the catalogue (every index in `by_user` is below it).
    pub n_items: usize,
}

impl<'a> Interactions<'a> {
    /// Checks that every movie index is below `n_items`.
    pub fn new(by_user: &'a RatedItems, n_items: usize) -> Result<Self, ModelError> {
        if let Some(&bad) = by_user.indices().iter().find(|&&j| j as usize >= n_items) {
            return Err(ModelError::InvalidData(format!(
                "interaction with movie index {bad}, but the catalogue has {n_items} movies"
            )));
        }
        Ok(Interactions { by_user, n_items })
    }

    /// Number of users.
    pub fn n_users(&self) -> usize {
        self.by_user.n_users()
    }

    /// Number of interactions.
    pub fn nnz(&self) -> usize {
        self.by_user.indices().len()
    }

    /// The same interactions by movie: row `j` holds the sorted users of movie `j`.
    pub fn by_item(&self) -> Result<RatedItems, ModelError> {
        let ptr = self.by_user.indptr();
        let mut users = Vec::with_capacity(self.nnz());
        for u in 0..self.n_users() {
            users.extend(std::iter::repeat_n(u as u32, ptr[u + 1] - ptr[u]));
        }
        Ok(RatedItems::from_pairs(self.n_items, self.by_user.indices(), &users)?)
    }
}

/// The ranking model kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RankerKind {
    /// Training interaction counts.
    Popularity,
    /// Cosine item-item neighbours (top-k per item kept).
    ItemKnn,
    /// EASE^R (Steck 2019), closed form.
    Ease,
    /// Implicit ALS (Hu, Koren, Volinsky 2008) with conjugate-gradient solves.
    Ials,
    /// Bayesian personalised ranking (Rendle 2009).
    Bpr,
    /// BPR's model trained with the WARP loss (Weston 2011, LightFM's `warp`).
    Warp,
}

impl RankerKind {
    /// Every kind.
    pub const ALL: [RankerKind; 6] = [
        RankerKind::Popularity,
        RankerKind::ItemKnn,
        RankerKind::Ease,
        RankerKind::Ials,
        RankerKind::Bpr,
        RankerKind::Warp,
    ];

    /// The name as the CLI spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            RankerKind::Popularity => "popularity",
            RankerKind::ItemKnn => "itemknn",
            RankerKind::Ease => "ease",
            RankerKind::Ials => "ials",
            RankerKind::Bpr => "bpr",
            RankerKind::Warp => "warp",
        }
    }
}

impl fmt::Display for RankerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RankerKind {
    type Err = ModelError;

    /// Parses the CLI spelling, case-insensitively (`item-knn` and `item_knn` too).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let norm = s.trim().to_ascii_lowercase().replace(['_', '-'], "");
        RankerKind::ALL
            .into_iter()
            .find(|k| k.as_str() == norm)
            .ok_or_else(|| ModelError::UnknownRankerKind(s.to_string()))
    }
}

/// A fitted ranking model.
pub trait Ranker: ItemScorer + Send + std::any::Any {
    /// Which model this is.
    fn kind(&self) -> RankerKind;

    /// Every hyperparameter used, as a JSON object (defaults filled in).
    fn params(&self) -> serde_json::Value;

    /// One embedding row per movie, for models that have them (similar-movie queries, exports).
    fn item_embeddings(&self) -> Option<ArrayView2<'_, f32>> {
        None
    }

    /// Scores every movie for a new user who has `items` (not a training user: `recommend
    /// --rated/--watched`), writing one value per movie into `out`. Models that score from the
    /// user's movies (popularity, itemknn, ease) score them directly, ials folds the user in with
    /// one exact solve; the default (bpr: a user vector comes only from SGD over their triples)
    /// is [`ModelError::Unsupported`].
    fn score_new_user(&self, items: &[u32], out: &mut [f32]) -> Result<(), ModelError> {
        let _ = (items, out);
        Err(ModelError::Unsupported {
            operation: "scoring a new user (fold-in)".into(),
            kind: self.kind().to_string(),
        })
    }
}

/// Checks a new user's movies and output row against a model's catalogue of `n_items` movies.
pub(crate) fn check_new_user(items: &[u32], out: &[f32], n_items: usize) -> Result<(), ModelError> {
    reelvec_metrics::error::check_len("score_new_user output", n_items, out.len())?;
    for &i in items {
        reelvec_metrics::error::check_index("score_new_user movie", i as usize, n_items)?;
    }
    Ok(())
}

/// [`check_new_user`], then the new user's movies sorted with duplicates counted once and `out`
/// zeroed: the start of a score that sums over the user's movies (itemknn, ease).
pub(crate) fn new_user_item_set(
    items: &[u32],
    out: &mut [f32],
    n_items: usize,
) -> Result<Vec<u32>, ModelError> {
    check_new_user(items, out, n_items)?;
    let mut items = items.to_vec();
    items.sort_unstable();
    items.dedup();
    out.fill(0.0);
    Ok(items)
}

/// A fitted ranking model seen as a plain [`ItemScorer`] (a `&dyn Ranker` is not a
/// `&dyn ItemScorer` without trait upcasting, which the workspace's rust-version lacks): what the
/// protocol's `evaluate` takes, for `reelvec compare` and the ranking bench alike.
pub struct AsItemScorer<'a>(pub &'a dyn Ranker);

impl std::fmt::Debug for AsItemScorer<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AsItemScorer({})", self.0.kind())
    }
}

impl ItemScorer for AsItemScorer<'_> {
    fn n_users(&self) -> usize {
        self.0.n_users()
    }

    fn n_items(&self) -> usize {
        self.0.n_items()
    }

    fn score_block(
        &self,
        users: &[u32],
        out: ndarray::ArrayViewMut2<'_, f32>,
    ) -> Result<(), reelvec_metrics::MetricsError> {
        self.0.score_block(users, out)
    }
}

/// A training user's `k` best movies by the model's scores, skipping `seen_sorted` (their
/// training movies under `recommend --exclude-rated`): what `reelvec recommend --user` and
/// Python's `Run.recommend` list for a ranking run.
pub fn top_for_user(
    model: &dyn Ranker,
    user: u32,
    k: usize,
    seen_sorted: &[u32],
) -> Result<Vec<(u32, f32)>, ModelError> {
    let mut block = ndarray::Array2::zeros((1, model.n_items()));
    model.score_block(&[user], block.view_mut())?;
    let scores = block.into_raw_vec_and_offset().0;
    Ok(reelvec_metrics::topn::top_k_of_row(&scores, k, seen_sorted)?)
}

/// A new user's `k` best movies from the movies they have (`items`, any order, repeats
/// allowed; left out of the list) through [`Ranker::score_new_user`]: `recommend
/// --rated/--watched` and Python's `Run.fold_in` on a ranking run.
pub fn top_for_new_user(model: &dyn Ranker, items: &[u32], k: usize) -> Result<Vec<(u32, f32)>, ModelError> {
    let mut items = items.to_vec();
    items.sort_unstable();
    items.dedup();
    let mut scores = vec![0.0f32; model.n_items()];
    model.score_new_user(&items, &mut scores)?;
    Ok(reelvec_metrics::topn::top_k_of_row(&scores, k, &items)?)
}

/// The `k` movies most similar to `movie`: itemknn's kept neighbour list, or the cosine
/// neighbours of the item embeddings (ials, bpr; reelvec-metrics' `nearest_neighbours`);
/// [`ModelError::Unsupported`] for popularity and ease, which have neither.
pub fn similar_items(model: &dyn Ranker, movie: u32, k: usize) -> Result<Vec<(u32, f32)>, ModelError> {
    let any: &dyn std::any::Any = model;
    if let Some(knn) = any.downcast_ref::<ItemKnn>() {
        return Ok(knn.neighbours(movie)?.take(k).collect());
    }
    match model.item_embeddings() {
        Some(emb) => Ok(reelvec_metrics::similarity::nearest_neighbours(emb, movie, k)?),
        None => Err(ModelError::Unsupported {
            operation: "similar movies (the model has no item embeddings or neighbour lists)".into(),
            kind: model.kind().to_string(),
        }),
    }
}

/// Fits a ranking model of `kind` on `train`. `params` is a JSON object of overrides (unknown
/// keys and out-of-range values are [`ModelError::ConfigValue`] / [`ModelError::UnknownConfigKey`]
/// before any work); `seed` fixes every random choice; `device` picks CPU or CUDA where the model
/// has a CUDA twin (`ease`, `ials` and `bpr`: the same model type comes back, fitted on the device);
/// others refuse a CUDA device with [`ModelError::Unsupported`].
pub fn fit_ranker(
    kind: RankerKind,
    train: Interactions<'_>,
    params: &serde_json::Value,
    seed: u64,
    device: Device,
) -> Result<Box<dyn Ranker>, ModelError> {
    match kind {
        RankerKind::Popularity => {
            cpu_only(kind, device)?;
            Ok(Box::new(Popularity::fit(train, params)?))
        }
        RankerKind::ItemKnn => {
            cpu_only(kind, device)?;
            Ok(Box::new(ItemKnn::fit(train, params)?))
        }
        RankerKind::Ease => match device {
            Device::Cpu => Ok(Box::new(Ease::fit(train, params)?)),
            Device::Cuda(_) => Ok(Box::new(fit_ease_gpu(&*Gpu::for_device(device)?, train, params)?)),
        },
        RankerKind::Ials => match device {
            Device::Cpu => Ok(Box::new(Ials::fit(train, params, seed)?)),
            Device::Cuda(_) => Ok(Box::new(fit_ials_gpu(&*Gpu::for_device(device)?, train, params, seed)?)),
        },
        RankerKind::Bpr => match device {
            Device::Cpu => Ok(Box::new(Bpr::fit(train, params, seed)?)),
            Device::Cuda(_) => Ok(Box::new(fit_bpr_gpu(&*Gpu::for_device(device)?, train, params, seed)?)),
        },
        RankerKind::Warp => {
            cpu_only(kind, device)?;
            Ok(Box::new(Bpr::fit_warp(train, params, seed)?))
        }
    }
}

/// Refuses a CUDA device for a model without a CUDA twin.
fn cpu_only(kind: RankerKind, device: Device) -> Result<(), ModelError> {
    match device {
        Device::Cpu => Ok(()),
        Device::Cuda(_) => {
            Err(ModelError::Unsupported { operation: "training on CUDA".into(), kind: kind.to_string() })
        }
    }
}

/// Reads a model's overrides: every accessor returns the default when the key is absent and a
/// [`ModelError::ConfigValue`] naming `kind.key` when the value has the wrong type or range.
pub(crate) struct ParamReader<'a> {
    kind: RankerKind,
    map: Option<&'a serde_json::Map<String, serde_json::Value>>,
}

impl<'a> ParamReader<'a> {
    /// Checks the keys against `allowed` (see [`check_param_keys`]) and wraps the object.
    pub(crate) fn new(
        kind: RankerKind,
        params: &'a serde_json::Value,
        allowed: &[&str],
    ) -> Result<Self, ModelError> {
        check_param_keys(kind, params, allowed)?;
        Ok(ParamReader { kind, map: params.as_object() })
    }

    fn bad(&self, key: &str, value: &serde_json::Value, allowed: &str) -> ModelError {
        ModelError::ConfigValue {
            key: format!("{}.{key}", self.kind),
            value: value.to_string(),
            allowed: allowed.to_string(),
        }
    }

    /// An integer in `min..=max`.
    pub(crate) fn int(&self, key: &str, default: usize, min: usize, max: usize) -> Result<usize, ModelError> {
        let Some(v) = self.map.and_then(|m| m.get(key)) else { return Ok(default) };
        match v.as_u64().and_then(|x| usize::try_from(x).ok()) {
            Some(x) if (min..=max).contains(&x) => Ok(x),
            _ => Err(self.bad(key, v, &format!("an integer from {min} to {max}"))),
        }
    }

    /// A finite number accepted by `ok`, whose range `allowed` states in words.
    pub(crate) fn num(
        &self,
        key: &str,
        default: f64,
        ok: impl Fn(f64) -> bool,
        allowed: &str,
    ) -> Result<f64, ModelError> {
        let Some(v) = self.map.and_then(|m| m.get(key)) else { return Ok(default) };
        match v.as_f64() {
            Some(x) if x.is_finite() && ok(x) => Ok(x),
            _ => Err(self.bad(key, v, allowed)),
        }
    }

    /// One of the strings in `choices`.
    pub(crate) fn choice(
        &self,
        key: &str,
        default: &'static str,
        choices: &[&'static str],
    ) -> Result<&'static str, ModelError> {
        let Some(v) = self.map.and_then(|m| m.get(key)) else { return Ok(default) };
        v.as_str()
            .and_then(|s| choices.iter().copied().find(|c| *c == s))
            .ok_or_else(|| self.bad(key, v, &format!("one of {}", choices.join(", "))))
    }
}

/// Takes the keys of a JSON object of overrides; `allowed` lists the valid keys. Anything that is
/// not an object, or an unknown key, is an error naming the model.
pub(crate) fn check_param_keys(
    kind: RankerKind,
    params: &serde_json::Value,
    allowed: &[&str],
) -> Result<(), ModelError> {
    let map = match params {
        serde_json::Value::Null => return Ok(()),
        serde_json::Value::Object(map) => map,
        other => {
            return Err(ModelError::InvalidConfig(format!(
                "{kind} parameters must be an object of key = value, got {other}"
            )))
        }
    };
    for key in map.keys() {
        if !allowed.contains(&key.as_str()) {
            return Err(ModelError::UnknownConfigKey {
                key: key.clone(),
                origin: format!("{kind} parameters"),
                valid: allowed.join(", "),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    #[test]
    fn kinds_parse_from_their_cli_spellings_and_an_unknown_one_lists_the_ranking_kinds() {
        for kind in RankerKind::ALL {
            assert_eq!(kind.as_str().parse::<RankerKind>().unwrap(), kind);
        }
        assert_eq!("Item_KNN".parse::<RankerKind>().unwrap(), RankerKind::ItemKnn);
        let err = "lightfm".parse::<RankerKind>().unwrap_err().to_string();
        assert!(err.contains("lightfm") && err.contains("itemknn, ease, ials, bpr, warp"), "{err}");
    }

    #[test]
    fn empty_users_catalogues_and_training_sets_are_answers_or_errors_never_panics() {
        let cases = [
            (RatedItems::from_rows(&[]), 0usize),
            (RatedItems::from_rows(&[vec![], vec![]]), 3),
            (RatedItems::from_rows(&[vec![], vec![0]]), 1),
        ];
        for (rows, n_items) in &cases {
            let train = Interactions::new(rows, *n_items).unwrap();
            for kind in RankerKind::ALL {
                let params = match kind {
                    RankerKind::Ials => serde_json::json!({"factors": 2, "iterations": 1}),
                    RankerKind::Bpr | RankerKind::Warp => serde_json::json!({"factors": 2, "epochs": 1}),
                    _ => serde_json::Value::Null,
                };
                if let Ok(model) = fit_ranker(kind, train, &params, 1, Device::Cpu) {
                    let users: Vec<u32> = (0..rows.n_users() as u32).collect();
                    let mut out = Array2::zeros((users.len(), *n_items));
                    model.score_block(&users, out.view_mut()).unwrap();
                    assert!(out.iter().all(|v| v.is_finite()), "{kind} on {n_items} movies");
                }
            }
        }
    }

    #[test]
    fn a_step_hook_returning_false_stops_ials_and_bpr_between_iterations_with_interrupted() {
        let rows = RatedItems::from_rows(&[vec![0, 1], vec![0, 1, 2], vec![1, 2, 3], vec![3, 4], vec![0, 4]]);
        let train = Interactions::new(&rows, 5).unwrap();
        for (kind, params) in [
            (RankerKind::Ials, serde_json::json!({"factors": 2, "iterations": 50})),
            (RankerKind::Bpr, serde_json::json!({"factors": 2, "epochs": 50})),
            (RankerKind::Warp, serde_json::json!({"factors": 2, "epochs": 50})),
        ] {
            let seen = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
            let log = seen.clone();
            let fitted = reelvec_engine::step_hook::with_step_hook(
                move |p| {
                    log.borrow_mut().push((p.done, p.total));
                    p.done < 3
                },
                || fit_ranker(kind, train, &params, 1, Device::Cpu),
            );
            assert!(
                matches!(
                    fitted,
                    Err(ModelError::Engine(reelvec_engine::EngineError::Interrupted { done: 3 }))
                ),
                "{kind}: {:?}",
                fitted.err()
            );
            assert_eq!(*seen.borrow(), vec![(1, 50), (2, 50), (3, 50)], "{kind}");
            // Without a hook the same fit runs to the end.
            assert!(fit_ranker(kind, train, &params, 1, Device::Cpu).is_ok(), "{kind}");
        }
    }

    #[test]
    fn every_kind_fits_through_fit_ranker_and_scores_a_new_user_like_a_training_user() {
        let rows = RatedItems::from_rows(&[vec![0, 1], vec![0, 1, 2], vec![1, 2, 3], vec![3, 4], vec![0, 4]]);
        let train = Interactions::new(&rows, 5).unwrap();
        let small = serde_json::json!({"factors": 3, "iterations": 3});
        for kind in RankerKind::ALL {
            let params = match kind {
                RankerKind::Ials => small.clone(),
                RankerKind::Bpr | RankerKind::Warp => serde_json::json!({"factors": 3, "epochs": 2}),
                _ => serde_json::Value::Null,
            };
            let model = fit_ranker(kind, train, &params, 7, Device::Cpu).unwrap();
            assert_eq!(model.kind(), kind);
            assert!(model.params().is_object(), "{kind}");
            let mut block = Array2::zeros((1, 5));
            model.score_block(&[1], block.view_mut()).unwrap();
            let mut new = vec![0.0f32; 5];
            // User 1's movies, repeated and out of order.
            let result = model.score_new_user(&[2, 0, 1, 0], &mut new);
            match kind {
                RankerKind::Bpr | RankerKind::Warp => {
                    assert!(matches!(result, Err(ModelError::Unsupported { .. })))
                }
                // iALS folds in exactly where training took CG steps: same ranking direction,
                // not the same numbers.
                RankerKind::Ials => result.unwrap(),
                _ => {
                    result.unwrap();
                    assert_eq!(new, block.row(0).to_vec(), "{kind}");
                }
            }
            assert!(model.score_new_user(&[5], &mut new).is_err(), "{kind}");
            // ease, ials and bpr have CUDA twins (tests/gpu_ranking.rs); without a device every
            // CUDA request is a clear error.
            let has_twin = matches!(kind, RankerKind::Ease | RankerKind::Ials | RankerKind::Bpr);
            if !has_twin || !reelvec_engine::gpu::available() {
                let err = fit_ranker(kind, train, &params, 7, Device::Cuda(0)).err().unwrap();
                let want = if has_twin { "CUDA" } else { "training on CUDA" };
                assert!(err.to_string().contains(want), "{kind}: {err}");
            }
        }
    }
}
