//! The MF pipelines' `[model]` section: item side features (`model.item_features`, LightFM's
//! hybrid form, see `crate::mf`), and the one place P2, P3 and P4 add them to a fit and fold
//! them into the trained model.
//!
//! `model.item_features` lists kinds of reelvec-data's `features` (`genres`, `decade`,
//! `tags`); an unknown or repeated kind is a `ConfigValue` error before any data is loaded,
//! and `tags` on data without tags (ml-100k, ml-1m) an `InvalidConfig` error once the data is
//! loaded, before training. Empty (the default, the notebooks) trains without features, bit
//! for bit as before.

use rand::Rng;
use reelvec_data::features::{FeatureKind, ItemFeatures};
use reelvec_data::Dataset;
use reelvec_engine::{Init, ParamStore};
use serde::{Deserialize, Serialize};

use super::check_key;
use crate::mf::{MfModel, MfObjective, MfSpec, MfVariant, OutputMap};
use crate::ModelError;

/// The `[model]` section of the MF pipelines' configs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct MfModelConfig {
    /// Item side features: any of `"genres"`, `"decade"`, `"tags"` (empty: none). A movie's
    /// vector is its id vector plus the mean of its feature vectors (biases likewise).
    pub item_features: Vec<String>,
    /// With `"tags"`: how many of the most frequent tags become features.
    pub tags_top: usize,
}

impl Default for MfModelConfig {
    fn default() -> Self {
        Self { item_features: Vec::new(), tags_top: 50 }
    }
}

impl MfModelConfig {
    /// The kinds asked for, checked (`model.item_features`: known and distinct kinds;
    /// `model.tags_top` at least 1).
    pub fn kinds(&self) -> Result<Vec<FeatureKind>, ModelError> {
        check_key("model.tags_top", self.tags_top, "at least 1", self.tags_top >= 1)?;
        let mut kinds = Vec::with_capacity(self.item_features.len());
        for name in &self.item_features {
            let kind = FeatureKind::parse(name).ok();
            let fresh = kind.is_some_and(|k| !kinds.contains(&k));
            check_key(
                "model.item_features",
                format!("{:?}", self.item_features),
                "distinct names among \"genres\", \"decade\", \"tags\"",
                fresh,
            )?;
            kinds.extend(kind);
        }
        Ok(kinds)
    }

    /// Checks the section (see [`MfModelConfig::kinds`]).
    pub fn validate(&self) -> Result<(), ModelError> {
        self.kinds().map(|_| ())
    }

    /// The feature table of `ds`'s movies, `None` without features; `tags` on data without
    /// tags, or kinds that give no feature at all, are errors.
    pub fn build(&self, ds: &Dataset) -> Result<Option<ItemFeatures>, ModelError> {
        let kinds = self.kinds()?;
        if kinds.is_empty() {
            return Ok(None);
        }
        let table = ItemFeatures::build(ds.movies.raws(), &ds.catalogue, &kinds, self.tags_top)
            .map_err(|e| ModelError::InvalidConfig(format!("model.item_features: {e}")))?;
        if table.n_features() == 0 {
            return Err(ModelError::InvalidConfig(format!(
                "model.item_features = {:?}: the data's catalogue gives no such feature for any movie",
                self.item_features
            )));
        }
        Ok(Some(table))
    }
}

/// The item side of one MF fit: the feature table, once its tables are in the store.
#[derive(Debug, Clone)]
pub(crate) struct FeatureFit {
    features: Option<ItemFeatures>,
}

impl FeatureFit {
    /// Builds `cfg`'s feature table for `ds` and adds the feature tables to `params` (after
    /// the id tables, so their draws are unchanged), drawn as the id tables are.
    pub(crate) fn prepare<R: Rng + ?Sized>(
        cfg: &MfModelConfig,
        ds: &Dataset,
        spec: &MfSpec,
        params: &mut ParamStore,
        factor_init: Init,
        bias_init: Init,
        rng: &mut R,
    ) -> Result<Self, ModelError> {
        let features = cfg.build(ds)?;
        if let Some(f) = &features {
            spec.add_feature_params(params, f.n_features(), factor_init, bias_init, rng)?;
        }
        Ok(Self { features })
    }

    /// The objective with the features, when there are any.
    pub(crate) fn objective(
        &self,
        objective: MfObjective,
        params: &ParamStore,
    ) -> Result<MfObjective, ModelError> {
        match &self.features {
            Some(f) => objective.with_item_features(params, f.clone()),
            None => Ok(objective),
        }
    }

    /// The trained model: with features, the folded one (a movie without a rating among
    /// `train_movies` from its features alone; see [`MfModel::with_item_features`]).
    pub(crate) fn model(
        self,
        variant: MfVariant,
        spec: MfSpec,
        params: ParamStore,
        output: OutputMap,
        train_movies: &[u32],
    ) -> Result<MfModel, ModelError> {
        match self.features {
            None => MfModel::new(variant, spec, params, output),
            Some(f) => {
                let mut seen = vec![false; spec.n_movies];
                for &m in train_movies {
                    seen[m as usize] = true;
                }
                MfModel::with_item_features(variant, spec, &params, output, f, &seen)
            }
        }
    }
}
