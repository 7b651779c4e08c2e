//! From a model kind to a trained run: the one place that resolves a kind's config (preset,
//! TOML file, `--set` overrides, seed, quiet; the MF models' `auto` optimizer rule) and the one
//! dispatch from a [`ModelKind`] to its pipeline's `run_on` that ends in the tables and
//! [`RunInfo`] of a run directory ([`TrainedRun`]). `reelvec train` resolves through
//! [`resolve`]; the Python package (`reelvec.train`) resolves and trains through [`resolve`] and
//! [`train`], so a run trained from Python is the run directory the CLI writes.
//!
//! ```
//! use reelvec_models::train::{self, ConfigSource};
//! use reelvec_models::ModelKind;
//! let set = vec!["train.epochs=1".to_string(), "k=4".to_string()];
//! let src = ConfigSource { overrides: &set, seed: Some(7), quiet: true, ..ConfigSource::default() };
//! let cfg = train::resolve(ModelKind::Mf, &src)?;
//! let ds = reelvec_data::synth::generate(&reelvec_data::synth::Preset::Tiny.config()).dataset;
//! let run = train::train(&ds, &cfg, reelvec_engine::Device::Cpu, None)?;
//! assert_eq!(run.info.seed, 7);
//! assert_eq!(run.item_vectors()?.nrows(), ds.movies.len());
//! # Ok::<(), reelvec_models::ModelError>(())
//! ```

use std::path::Path;

use reelvec_data::ranking_split::{ranking_split, RankingSplit};
use reelvec_data::Dataset;
use reelvec_engine::{Device, OptimizerConfig, ParamStore, TrainConfig};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::checkpoint::{self, RatedItems, RunInfo};
use crate::config::{self, resolve_from};
use crate::item2vec::Architecture;
use crate::pipelines::{self, p0_cbow, p1_cooc, p2_mf, p3_recommender, p4_residual};
use crate::ranking::{self, Interactions, Ranker, RankerKind};
use crate::{ModelError, ModelKind};

/// Where a kind's config comes from, applied in this order over the kind's defaults.
#[derive(Debug, Clone, Copy, Default)]
pub struct ConfigSource<'a> {
    /// A named preset instead of the notebook defaults (`notebook` for every kind, `tuned` for
    /// mf). Except under `notebook`, the MF models train with `optimizer.kind = "auto"`.
    pub preset: Option<&'a str>,
    /// A TOML file merged over the preset.
    pub file: Option<&'a Path>,
    /// `key=value` overrides (`train.epochs=5`), applied in order.
    pub overrides: &'a [String],
    /// Seed of the split, the initialisation and the shuffles (overrides the config).
    pub seed: Option<u64>,
    /// No progress bar.
    pub quiet: bool,
    /// Flush subnormal floats to zero while training (`train.flush_denormals`; not PyTorch's
    /// arithmetic, see reelvec-engine's `fpenv`). Refused for `cooc`, which has no trainer.
    pub flush_denormals: bool,
}

/// A resolved, validated config of one kind.
#[derive(Debug, Clone, PartialEq)]
pub enum Resolved {
    /// P2 (`mf`).
    Mf(p2_mf::Config),
    /// P3 (`sigmoid-mf`).
    SigmoidMf(p3_recommender::Config),
    /// P4 (`residual-mf`).
    ResidualMf(p4_residual::Config),
    /// P0 (`cbow` or `skipgram`, as the architecture says).
    Item2vec(p0_cbow::Config),
    /// P1 (`cooc`).
    Cooc(p1_cooc::Config),
}

impl Resolved {
    /// The kind this config trains.
    pub fn kind(&self) -> ModelKind {
        match self {
            Resolved::Mf(_) => ModelKind::Mf,
            Resolved::SigmoidMf(_) => ModelKind::SigmoidMf,
            Resolved::ResidualMf(_) => ModelKind::ResidualMf,
            Resolved::Item2vec(c) => match c.model.architecture {
                Architecture::Cbow => ModelKind::Cbow,
                Architecture::Skipgram => ModelKind::Skipgram,
            },
            Resolved::Cooc(_) => ModelKind::Cooc,
        }
    }

    /// The config as TOML (what `reelvec train --print-config` prints).
    pub fn to_toml(&self) -> Result<String, ModelError> {
        match self {
            Resolved::Mf(c) => config::to_toml_string(c),
            Resolved::SigmoidMf(c) => config::to_toml_string(c),
            Resolved::ResidualMf(c) => config::to_toml_string(c),
            Resolved::Item2vec(c) => config::to_toml_string(c),
            Resolved::Cooc(c) => config::to_toml_string(c),
        }
    }
}

/// What every pipeline config offers to the resolution.
trait KindConfig: Serialize + DeserializeOwned + Default {
    fn preset(name: &str) -> Option<Self>;
    fn apply(&mut self, src: &ConfigSource<'_>) -> Result<(), ModelError>;
    fn validate(&self) -> Result<(), ModelError>;
    /// The trainer section, for the configs that have one (all but P1).
    fn train_mut(&mut self) -> Option<&mut TrainConfig>;
}

macro_rules! kind_config {
    ($ty:ty, $presets:expr) => {
        impl KindConfig for $ty {
            fn preset(name: &str) -> Option<Self> {
                ($presets)(name)
            }
            fn apply(&mut self, src: &ConfigSource<'_>) -> Result<(), ModelError> {
                if let Some(s) = src.seed {
                    self.seed = s;
                    self.train.seed = s;
                }
                self.train.quiet |= src.quiet;
                self.train.flush_denormals |= src.flush_denormals;
                Ok(())
            }
            fn validate(&self) -> Result<(), ModelError> {
                <$ty>::validate(self)
            }
            fn train_mut(&mut self) -> Option<&mut TrainConfig> {
                Some(&mut self.train)
            }
        }
    };
}

fn notebook<C: Default>(name: &str) -> Option<C> {
    matches!(name, "notebook" | "default").then(C::default)
}

kind_config!(p2_mf::Config, p2_mf::Config::preset);
kind_config!(p3_recommender::Config, notebook::<p3_recommender::Config>);
kind_config!(p4_residual::Config, notebook::<p4_residual::Config>);
kind_config!(p0_cbow::Config, notebook::<p0_cbow::Config>);

impl KindConfig for p1_cooc::Config {
    fn preset(name: &str) -> Option<Self> {
        notebook(name)
    }
    fn apply(&mut self, src: &ConfigSource<'_>) -> Result<(), ModelError> {
        if src.flush_denormals {
            return Err(ModelError::InvalidConfig(
                "--flush-denormals applies to the trainer's models (cbow, skipgram, mf, sigmoid-mf, residual-mf), not cooc"
                    .into(),
            ));
        }
        if let Some(s) = src.seed {
            self.seed = s;
        }
        Ok(())
    }
    fn validate(&self) -> Result<(), ModelError> {
        Self::validate(self)
    }
    fn train_mut(&mut self) -> Option<&mut TrainConfig> {
        None
    }
}

/// The preset (or the defaults), `adjust`ed, then the file, the overrides, seed and quiet;
/// validated.
fn resolve_with<C: KindConfig>(
    kind: ModelKind,
    src: &ConfigSource<'_>,
    adjust: impl FnOnce(&mut C),
) -> Result<C, ModelError> {
    let mut base = match src.preset {
        Some(name) => C::preset(name)
            .ok_or_else(|| ModelError::InvalidConfig(format!("unknown preset `{name}` for model {kind}")))?,
        None => C::default(),
    };
    adjust(&mut base);
    let mut cfg: C = resolve_from(&base, src.file, src.overrides)?;
    cfg.apply(src)?;
    cfg.validate()?;
    Ok(cfg)
}

/// Outside the `notebook` preset, the MF models' Adam becomes `auto` (same hyperparameters; see
/// `OptimizerConfig::resolve`) before the file and the overrides.
fn auto_adam<C: KindConfig>(src: &ConfigSource<'_>) -> impl FnOnce(&mut C) {
    let notebook = matches!(src.preset, Some("notebook" | "default"));
    move |c: &mut C| {
        if let Some(train) = c.train_mut() {
            if let (false, OptimizerConfig::Adam(a)) = (notebook, train.optimizer) {
                train.optimizer = OptimizerConfig::Auto(a);
            }
        }
    }
}

/// Resolves and validates the config of `kind` from `src` (before any data is loaded).
pub fn resolve(kind: ModelKind, src: &ConfigSource<'_>) -> Result<Resolved, ModelError> {
    Ok(match kind {
        ModelKind::Mf => Resolved::Mf(resolve_with(kind, src, auto_adam(src))?),
        ModelKind::SigmoidMf => Resolved::SigmoidMf(resolve_with(kind, src, auto_adam(src))?),
        ModelKind::ResidualMf => Resolved::ResidualMf(resolve_with(kind, src, auto_adam(src))?),
        ModelKind::Cbow => Resolved::Item2vec(resolve_with(kind, src, |_: &mut p0_cbow::Config| {})?),
        ModelKind::Skipgram => Resolved::Item2vec(resolve_with(kind, src, |c: &mut p0_cbow::Config| {
            c.model.architecture = Architecture::Skipgram;
        })?),
        ModelKind::Cooc => Resolved::Cooc(resolve_with(kind, src, |_: &mut p1_cooc::Config| {})?),
        ModelKind::Ranker(_) => {
            return Err(ModelError::Unsupported {
                operation: "config resolution (a ranking model takes its parameters through ranking::check_ranker_params)"
                    .into(),
                kind: kind.to_string(),
            })
        }
    })
}

/// A trained run: everything its run directory holds, in memory.
#[derive(Debug, Clone)]
pub struct TrainedRun {
    /// The tables written to `model.safetensors`.
    pub params: ParamStore,
    /// `run.json` (history and figures included).
    pub info: RunInfo,
    /// The training rows' rated movies (`rated.safetensors`; rating models only).
    pub rated: Option<RatedItems>,
}

impl TrainedRun {
    /// Writes the run directory as one unit ([`checkpoint::save_run`]).
    pub fn save(&self, dir: &Path) -> Result<(), ModelError> {
        checkpoint::save_run(dir, &self.params, &self.info, self.rated.as_ref())
    }

    /// Loads a run directory (any kind; checked against its manifest).
    pub fn load(dir: &Path) -> Result<Self, ModelError> {
        let (params, info) = checkpoint::load_run(dir)?;
        let rated = checkpoint::load_rated(dir)?;
        Ok(Self { params, info, rated })
    }

    /// The item embeddings, one row per dense movie (a copy of the stored table);
    /// [`ModelError::Unsupported`] for the ranking models without any (popularity, itemknn, ease).
    pub fn item_vectors(&self) -> Result<ndarray::Array2<f32>, ModelError> {
        pipelines::check_has_item_embeddings(self.info.model_kind)?;
        self.vectors(pipelines::item_table_name(self.info.model_kind), self.info.movie_raw_ids.len())
    }

    /// The user factors of the MF models and of ials and bpr, one row per dense user; `None`
    /// for the other models.
    pub fn user_vectors(&self) -> Result<Option<ndarray::Array2<f32>>, ModelError> {
        let kind = self.info.model_kind;
        if !(kind.predicts_ratings()
            || matches!(kind, ModelKind::Ranker(RankerKind::Ials | RankerKind::Bpr | RankerKind::Warp)))
        {
            return Ok(None);
        }
        self.vectors(crate::mf::USER_FACTORS, self.info.user_raw_ids.len()).map(Some)
    }

    /// Writes the user vectors ([`Self::user_vectors`]) as Parquet (`userId`, `column_0..`;
    /// [`crate::export::export_user_vectors`]): `reelvec export --vectors users` and Python's
    /// `Run.export_users`. [`ModelError::Unsupported`] for the models without user vectors,
    /// before anything is written.
    pub fn export_user_vectors(&self, out: &Path) -> Result<std::path::PathBuf, ModelError> {
        match self.user_vectors()? {
            Some(emb) => crate::export::export_user_vectors(out, &self.info.user_raw_ids, emb.view()),
            None => Err(ModelError::Unsupported {
                operation: "exporting user vectors".into(),
                kind: self.info.model_kind.to_string(),
            }),
        }
    }

    /// The fitted model of a ranking run, rebuilt from its tables (`ranking::ranker_of_run`;
    /// `dir` names the run in errors); `None` for the other kinds.
    pub fn ranker(&self, dir: &Path) -> Result<Option<Box<dyn Ranker>>, ModelError> {
        if self.info.model_kind.ranker().is_none() {
            return Ok(None);
        }
        ranking::ranker_of_run(&self.params, &self.info, self.rated.as_ref(), dir).map(Some)
    }

    fn vectors(&self, name: &str, rows: usize) -> Result<ndarray::Array2<f32>, ModelError> {
        let t = checkpoint::require_table(&self.params, name, rows, None, Path::new("<in memory>"))?;
        ndarray::Array2::from_shape_vec((t.rows, t.cols), t.data.clone())
            .map_err(|e| ModelError::InvalidData(format!("table `{name}`: {e}")))
    }
}

/// Fits the ranking model `kind` on every rating of `ds` (each one interaction), or with
/// `holdout` on every rating outside that ranking split's test part (seeded by `seed`; the run
/// records it as `metrics.holdout`, which `evaluate` reads), as `reelvec train --model <ranker>
/// [--holdout SPLIT]` does: `params` are the overrides
/// ([`ranking::params_from_overrides`]); the run records the full parameters, `seed`, the fit
/// seconds (`metrics.fit_seconds`) and the interactions (`rated`), so its directory is the one
/// [`ranking::save_ranker`] writes. The fitted model comes back beside it.
pub fn train_ranker(
    ds: &Dataset,
    kind: RankerKind,
    params: &serde_json::Value,
    seed: u64,
    device: Device,
    data_path: Option<&Path>,
    holdout: Option<RankingSplit>,
) -> Result<(Box<dyn Ranker>, TrainedRun), ModelError> {
    let rows: Vec<u32> = match holdout {
        None => (0..ds.ratings.len() as u32).collect(),
        Some(split) => {
            let parts = ranking_split(&ds.ratings, ds.users.len(), split, seed)
                .map_err(|e| ModelError::InvalidData(format!("cannot split the ratings by {split}: {e}")))?;
            let mut rows: Vec<u32> = parts.train.iter().chain(&parts.val).copied().collect();
            rows.sort_unstable();
            rows
        }
    };
    let rated = pipelines::rated_rows(ds, &rows)?;
    let started = std::time::Instant::now();
    let model = ranking::fit_ranker(kind, Interactions::new(&rated, ds.movies.len())?, params, seed, device)?;
    let seconds = started.elapsed().as_secs_f64();
    let mut info = pipelines::run_info_for(ds, kind.into(), model.params(), seed, data_path);
    info.metrics = serde_json::json!({ "fit_seconds": seconds });
    if let Some(split) = holdout {
        info.metrics["holdout"] = serde_json::json!(split.to_string());
    }
    let run = TrainedRun { params: ranking::ranker_tables(model.as_ref())?, info, rated: Some(rated) };
    Ok((model, run))
}

/// Trains `cfg` on `ds` on `device` through the kind's pipeline; `data_path` is recorded in
/// `run.json` (so `reelvec evaluate` finds the data).
pub fn train(
    ds: &Dataset,
    cfg: &Resolved,
    device: Device,
    data_path: Option<&Path>,
) -> Result<TrainedRun, ModelError> {
    let kind = cfg.kind();
    let rating_run = |params: ParamStore,
                      cfg_json: serde_json::Value,
                      seed: u64,
                      history: &reelvec_engine::History,
                      metrics: serde_json::Value,
                      train_rows: &[u32],
                      item_features: Vec<String>|
     -> Result<TrainedRun, ModelError> {
        let mut info = pipelines::run_info_for(ds, kind, cfg_json, seed, data_path);
        info.item_features = item_features;
        info.history = serde_json::to_value(history).unwrap_or_default();
        info.metrics = metrics;
        Ok(TrainedRun { params, info, rated: Some(pipelines::rated_rows(ds, train_rows)?) })
    };
    // A rating pipeline's outcome `$o` of config `$c` as a run.
    macro_rules! rating_run {
        ($o:expr, $c:expr) => {{
            let o = $o;
            let params = o.model.checkpoint_params()?;
            let names = o.model.item_feature_names();
            rating_run(
                params,
                config::to_json($c),
                $c.seed,
                &o.history,
                o.metrics_json(),
                &o.train_rows,
                names,
            )
        }};
    }
    match cfg {
        Resolved::Mf(c) => rating_run!(p2_mf::run_on(ds, c, device)?, c),
        Resolved::SigmoidMf(c) => rating_run!(p3_recommender::run_on(ds, c, device)?, c),
        Resolved::ResidualMf(c) => rating_run!(p4_residual::run_on(ds, c, device)?, c),
        Resolved::Item2vec(c) => {
            let o = p0_cbow::run_on(ds, c, device)?;
            let info = o.run_info(c, data_path);
            Ok(TrainedRun { params: o.model.params().clone(), info, rated: o.trained_rated })
        }
        Resolved::Cooc(c) => {
            let o = p1_cooc::run_on(ds, c, device)?;
            Ok(TrainedRun {
                params: o.model.params().clone(),
                info: o.run_info(ds, c, data_path),
                rated: None,
            })
        }
    }
}
