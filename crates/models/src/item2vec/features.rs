//! Item side features for item2vec (`model.item_features`, issue 11): LightFM's hybrid form on
//! both sides of the network. With feature ids `F_i` of movie `i` (reelvec-data's
//! `ItemFeatures`: genres, decade, tags) and two learned feature tables, `feature_embedding`
//! `A` (F x k, input side) and `feature_out_weight` `B` (F x k, output side):
//!
//! ```text
//! Ẽ_i = E_i + (1/|F_i|) Σ_{f∈F_i} A_f        (the context / input vector of movie i)
//! W̃_i = W_i + (1/|F_i|) Σ_{f∈F_i} B_f        (the target / output vector of movie i)
//! ```
//!
//! (nothing added when `F_i` is empty; the output bias stays per id). Every variant's loss
//! (CBOW / skip-gram x full softmax / negative sampling) reads the tables only through `Ẽ`
//! and `W̃`, so [`FeatureObjective`] composes them once per batch, runs the plain kernels of
//! [`Item2VecObjective`] on the composed tables (gradients `∂L/∂Ẽ`, `∂L/∂W̃` into its own
//! scratch) and applies the chain rule, `∂Ẽ_i/∂E_i = I`, `∂Ẽ_i/∂A_f = I/|F_i|`:
//!
//! ```text
//! ∂L/∂E_i = ∂L/∂Ẽ_i,     ∂L/∂A_f = Σ_{i: f∈F_i} (1/|F_i|) ∂L/∂Ẽ_i
//! ∂L/∂W_i = ∂L/∂W̃_i,     ∂L/∂B_f = Σ_{i: f∈F_i} (1/|F_i|) ∂L/∂W̃_i
//! ```
//!
//! (`crate::item_features`, checked by finite differences in `tests/item_features.rs`). The
//! scratch rows are added in their touched order, which the lanes' fixed reduction order
//! fixes, so training stays bitwise identical for any thread count. A trained model keeps the
//! composed tables ([`fold`]): a movie never seen in training takes its id rows as zero, its
//! vectors come from its features alone (cold start).

use std::sync::Mutex;

use reelvec_data::features::{FeatureKind, ItemFeatures};
use reelvec_engine::{BatchLoss, Grads, Init, Objective, ParamStore, TableId};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{Item2VecObjective, Item2VecTables, VALIDATION_DRAW};
use crate::item_features::{add_feature_mean, fixed_column, scatter_feature_grad, ITEM_FEATURE_CSR};
use crate::ModelError;

/// Table name of the input-side feature vectors `A` (F x k).
pub const FEATURE_EMBEDDING: &str = "feature_embedding";
/// Table name of the output-side feature vectors `B` (F x k).
pub const FEATURE_OUT_WEIGHT: &str = "feature_out_weight";

/// `model.item_features` of item2vec: distinct kinds among `genres`, `decade`, `tags`, held in
/// a `Copy` value (the model config is `Copy`); an unknown or repeated name is a config error
/// naming the key.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FeatureKinds([Option<FeatureKind>; 3]);

impl FeatureKinds {
    /// The kinds, in the order given.
    pub fn kinds(&self) -> Vec<FeatureKind> {
        self.0.iter().flatten().copied().collect()
    }

    /// True without features.
    pub fn is_empty(&self) -> bool {
        self.0[0].is_none()
    }

    /// The kinds as `model.item_features` spells them.
    pub fn names(&self) -> Vec<String> {
        self.kinds().into_iter().map(|k| k.name().to_string()).collect()
    }

    /// Parses names (`genres`, `decade`, `tags`), each at most once.
    pub fn parse<S: AsRef<str>>(names: &[S]) -> Result<Self, ModelError> {
        let mut out = [None; 3];
        for (n, name) in names.iter().enumerate() {
            let name = name.as_ref();
            let kind = FeatureKind::parse(name).ok().filter(|k| !out.contains(&Some(*k)));
            match (kind, out.get_mut(n)) {
                (Some(kind), Some(slot)) => *slot = Some(kind),
                _ => {
                    return Err(ModelError::ConfigValue {
                        key: "model.item_features".into(),
                        value: format!("{:?}", names.iter().map(AsRef::as_ref).collect::<Vec<_>>()),
                        allowed: "distinct names among \"genres\", \"decade\", \"tags\"".into(),
                    })
                }
            }
        }
        Ok(Self(out))
    }
}

impl Serialize for FeatureKinds {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.names().serialize(s)
    }
}

impl<'de> Deserialize<'de> for FeatureKinds {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let names = Vec::<String>::deserialize(d)?;
        Self::parse(&names).map_err(serde::de::Error::custom)
    }
}

/// The feature side of an item2vec fit: the table and the ids of the two feature tables.
#[derive(Debug, Clone)]
pub struct FeatureSide {
    features: ItemFeatures,
    input: TableId,
    output: TableId,
}

impl FeatureSide {
    /// Adds `feature_embedding` and `feature_out_weight` for `features` to `params` (after the
    /// id tables, so their draws are unchanged), zero at the start: a fit with features starts
    /// from the id-only model. The output side's gradient kind is `out_weight`'s.
    pub fn register(
        params: &mut ParamStore,
        tables: &Item2VecTables,
        features: ItemFeatures,
    ) -> Result<Self, ModelError> {
        let (v, k, kind) = {
            let e = params.get(tables.embedding);
            (e.rows, e.cols, params.get(tables.out_weight).grad_kind)
        };
        if features.n_movies() != v {
            return Err(ModelError::InvalidData(format!(
                "the item feature table has {} movies, the vocabulary {v}",
                features.n_movies()
            )));
        }
        let n = features.n_features();
        let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(0); // zeros draw nothing
        let input = params.add(
            FEATURE_EMBEDDING,
            n,
            k,
            reelvec_engine::GradKind::SparseRows,
            Init::Zeros,
            &mut rng,
        )?;
        let output = params.add(FEATURE_OUT_WEIGHT, n, k, kind, Init::Zeros, &mut rng)?;
        Ok(Self { features, input, output })
    }

    /// The feature table.
    pub fn features(&self) -> &ItemFeatures {
        &self.features
    }

    /// The ids of `feature_embedding` and `feature_out_weight`.
    pub fn table_ids(&self) -> (TableId, TableId) {
        (self.input, self.output)
    }

    /// The composed tables `Ẽ`, `W̃` (and `out_bias` as is) into `out`, a store holding the
    /// three id tables first, as `params` does; a movie whose `seen[i]` is false takes its id
    /// rows (and bias) as zero.
    fn compose(&self, params: &ParamStore, t: &Item2VecTables, seen: Option<&[bool]>, out: &mut ParamStore) {
        for (id, feat) in
            [(t.embedding, Some(self.input)), (t.out_weight, Some(self.output)), (t.out_bias, None)]
        {
            let src = params.get(id);
            let dst = out.get_mut(id);
            dst.data.copy_from_slice(&src.data);
            let cols = src.cols;
            for i in 0..src.rows {
                let row = &mut dst.data[i * cols..(i + 1) * cols];
                if seen.is_some_and(|s| !s[i]) {
                    row.fill(0.0);
                }
                if let Some(f) = feat {
                    add_feature_mean(&self.features, i, params.get(f), row);
                }
            }
        }
    }
}

/// A store holding copies of the three id tables of `params` (same ids).
fn id_store(params: &ParamStore, t: &Item2VecTables) -> Result<ParamStore, ModelError> {
    let mut out = ParamStore::new();
    for id in [t.embedding, t.out_weight, t.out_bias] {
        let got = out.insert(params.get(id).clone())?;
        if got != id {
            return Err(ModelError::InvalidData(
                "item2vec's id tables must be the first three of the store".into(),
            ));
        }
    }
    Ok(out)
}

#[derive(Debug)]
struct Scratch {
    composed: ParamStore,
    grads: Grads,
}

/// [`Item2VecObjective`] with item side features (see the module doc).
#[derive(Debug)]
pub struct FeatureObjective {
    inner: Item2VecObjective,
    side: FeatureSide,
    scratch: Mutex<Scratch>,
}

impl FeatureObjective {
    /// Wraps `inner`, whose tables are the first three of `params`; `params` holds `side`'s
    /// feature tables.
    pub fn new(inner: Item2VecObjective, side: FeatureSide, params: &ParamStore) -> Result<Self, ModelError> {
        let composed = id_store(params, &inner.tables())?;
        let grads = Grads::zeros_like(&composed);
        Ok(Self { inner, side, scratch: Mutex::new(Scratch { composed, grads }) })
    }

    /// The objective without features.
    pub fn inner(&self) -> &Item2VecObjective {
        &self.inner
    }

    /// Loss sum and count of `units`; with `grads`, ADDS the gradient of every table of
    /// `params`, feature tables included.
    pub fn batch_loss_and_grad(
        &self,
        params: &ParamStore,
        units: &[u32],
        draw: u64,
        grads: Option<&mut Grads>,
    ) -> (f64, u64) {
        let t = self.inner.tables();
        let mut guard = self.scratch.lock().unwrap_or_else(|p| p.into_inner());
        let Scratch { composed, grads: scratch } = &mut *guard;
        self.side.compose(params, &t, None, composed);
        let Some(grads) = grads else {
            return self.inner.batch_loss_and_grad(composed, units, draw, None);
        };
        let out = self.inner.batch_loss_and_grad(composed, units, draw, Some(scratch));
        for (id, feat) in
            [(t.embedding, Some(self.side.input)), (t.out_weight, Some(self.side.output)), (t.out_bias, None)]
        {
            let src = scratch.get(id);
            let cols = src.cols;
            for &r in src.touched_rows() {
                let r = r as usize;
                let g = &src.data[r * cols..(r + 1) * cols];
                grads.get_mut(id).row_mut(r).iter_mut().zip(g).for_each(|(d, &s)| *d += s);
                if let Some(f) = feat {
                    scatter_feature_grad(&self.side.features, r, g, grads.get_mut(f));
                }
            }
        }
        scratch.clear();
        out
    }
}

impl Objective for FeatureObjective {
    fn train_units(&self) -> usize {
        self.inner.train_units()
    }

    fn loss_and_grad(&self, params: &ParamStore, units: &[u32], grads: &mut Grads) -> BatchLoss {
        let draw = self.inner.next_draw();
        let (sum, count) = self.batch_loss_and_grad(params, units, draw, Some(grads));
        BatchLoss::new(sum, count)
    }

    fn validation_loss(&self, params: &ParamStore) -> Option<BatchLoss> {
        let val = self.inner.val_examples()?;
        let mut guard = self.scratch.lock().unwrap_or_else(|p| p.into_inner());
        self.side.compose(params, &self.inner.tables(), None, &mut guard.composed);
        let (sum, count) = self.inner.loss_over(&guard.composed, val, VALIDATION_DRAW);
        Some(BatchLoss::new(sum, count))
    }

    fn loss_name(&self) -> &'static str {
        self.inner.loss_name()
    }

    fn loss_baseline(&self) -> Option<f64> {
        self.inner.loss_baseline()
    }
}

/// The trained model's store: the composed `embedding`, `out_weight`, `out_bias` (a movie
/// whose `seen[i]` is false from its features alone, bias 0), then the two feature tables
/// and `item_feature_csr`, which the checkpoint keeps.
pub fn fold(
    params: &ParamStore,
    tables: &Item2VecTables,
    side: &FeatureSide,
    seen: &[bool],
) -> Result<ParamStore, ModelError> {
    let mut out = id_store(params, tables)?;
    if seen.len() != params.get(tables.embedding).rows {
        return Err(ModelError::InvalidData("`seen` does not match the vocabulary".into()));
    }
    side.compose(params, tables, Some(seen), &mut out);
    out.insert(params.get(side.input).clone())?;
    out.insert(params.get(side.output).clone())?;
    out.insert(fixed_column(ITEM_FEATURE_CSR, crate::item_features::feature_csr(&side.features)?))?;
    Ok(out)
}
