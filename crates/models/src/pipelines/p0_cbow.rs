//! P0 — item2vec CBOW (and its skip-gram twin) over users' viewing sequences, as PROTOCOLS.md
//! describes it: keep the `top_movies` most-rated movies, then users with at least
//! `min_user_ratings` ratings among them; one sequence per user ordered by timestamp (ties keep
//! file order); users split 80/20 with a seed; windows of `w` with the notebook's dropped ends;
//! Adam lr 1e-2 on batches of 64 user sequences (not shuffled, as the notebook's DataLoader);
//! up to 20 epochs with early stopping (minimum 6, patience 3).
//!
//! Reported: train/validation loss per epoch — the softmax cross-entropy, or with negative
//! sampling the negative-sampling loss (labelled as such: it is not a cross-entropy over the
//! vocabulary), then the full-vocabulary softmax cross-entropy of the validation targets is
//! reported beside it — the uniform baseline `ln V`,
//! accuracy@1 and hit@10 of the validation targets, middle-movie predictions for two-movie
//! contexts, cosine nearest neighbours, and the embeddings.

use std::path::Path;
use std::time::Instant;

use rand::SeedableRng;
use reelvec_data::{transforms, Dataset};
use reelvec_engine::{
    AdamConfig, EarlyStopping, History, OptimizerConfig, ParamStore, Schedule, ScheduleStep, TrainConfig,
    Trainer,
};
use serde::{Deserialize, Serialize};

use super::{check_fraction, check_key, check_tables_fit, check_train, run_info_for, ModelKind, MovieScore};
use crate::checkpoint::{self, RunInfo};
use crate::item2vec::{
    decayed_train_config, features, sgd, Architecture, EpochSampling, Examples, FeatureObjective,
    FeatureSide, Item2Vec, Item2VecConfig, Item2VecObjective, Item2VecTables, Item2VecTrainer, RankMetrics,
};
use crate::traits::ItemEmbeddings;
use crate::ModelError;
use reelvec_data::features::ItemFeatures;

/// P0's configuration (notebook defaults).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// The model (CBOW, k = 20, w = 1, sum, full softmax, dropped ends).
    pub model: Item2VecConfig,
    /// Keep the most-rated movies (50); 0 keeps every movie.
    pub top_movies: usize,
    /// Keep users with at least this many ratings among the kept movies (20).
    pub min_user_ratings: usize,
    /// Rating-aware sequences: keep only ratings at or above this (none by default).
    pub min_rating: Option<f32>,
    /// Share of users (whole sequences) that train (0.8).
    pub train_fraction: f64,
    /// Seed of the user split and the initialisation (the CLI's `--seed` also sets `train.seed`).
    pub seed: u64,
    /// Trainer settings: Adam lr 1e-2, batch 64 sequences, 20 epochs, early stopping 6/3.
    pub train: TrainConfig,
    /// Two-movie contexts whose middle movie is reported (titles: exact, else a unique
    /// case-insensitive part); pairs not in the vocabulary are skipped.
    pub middle_queries: Vec<[String; 2]>,
    /// Movies whose cosine neighbours are reported (same matching); the most-rated movie when
    /// none of them is in the vocabulary.
    pub neighbours_of: Vec<String>,
    /// Neighbours and middle candidates reported per query.
    pub report_top: usize,
}

impl Default for Config {
    fn default() -> Self {
        let pair = |a: &str, b: &str| [a.to_string(), b.to_string()];
        Self {
            model: Item2VecConfig::default(),
            top_movies: 50,
            min_user_ratings: 20,
            min_rating: None,
            train_fraction: 0.8,
            seed: 42,
            train: TrainConfig {
                epochs: 20,
                batch_size: 64,
                shuffle: false,
                seed: 42,
                lr: 1e-2,
                optimizer: OptimizerConfig::Adam(AdamConfig::default()),
                schedule: Schedule::Constant,
                schedule_step: ScheduleStep::PerBatch,
                early_stopping: Some(EarlyStopping { min_epochs: 6, patience: 3 }),
                restore_best: false,
                quiet: false,
                flush_denormals: false,
                lazy_replay: false,
            },
            middle_queries: vec![
                pair("Fellowship of the Ring", "Return of the King"),
                pair("Star Wars (1977)", "Return of the Jedi (1983)"),
                pair("A New Hope (1977)", "Return of the Jedi (1983)"),
            ],
            neighbours_of: vec![
                "Star Wars (1977)".into(),
                "Fellowship of the Ring".into(),
                "Toy Story (1995)".into(),
            ],
            report_top: 5,
        }
    }
}

impl Config {
    /// Checks every key against its allowed range (the error names the key and the range);
    /// [`run_on`] calls it before any work.
    pub fn validate(&self) -> Result<(), ModelError> {
        self.model.validate("model")?;
        check_fraction("train_fraction", self.train_fraction)?;
        if let Some(r) = self.min_rating {
            check_key("min_rating", r, "a finite number", r.is_finite())?;
        }
        check_train("train", &self.train)
    }
}

/// A middle-movie prediction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MiddlePrediction {
    /// The movie before.
    pub before: MovieScore,
    /// The movie after.
    pub after: MovieScore,
    /// The most likely middle movies, best first (score: log-likelihood, see [`Item2Vec`]).
    pub predicted: Vec<MovieScore>,
}

/// Everything P0 reports.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The trained model (token = dense movie index of [`Outcome::dataset`]).
    pub model: Item2Vec,
    /// The filtered data the model was trained on (its movies are the vocabulary).
    pub dataset: Dataset,
    /// Per-epoch train / validation cross-entropy.
    pub history: History,
    /// Figures.
    pub figures: Figures,
    /// Middle-movie predictions of the configured queries found in the vocabulary.
    pub middle: Vec<MiddlePrediction>,
    /// Cosine neighbours of the configured movies.
    pub neighbours: Vec<(MovieScore, Vec<MovieScore>)>,
    /// The validation examples (for further metrics).
    pub val_examples: Examples,
    /// With `model.item_features`: each user's training movies (none for validation users),
    /// saved as the run's `rated.safetensors`; a movie outside them has its vectors from its
    /// features alone.
    pub trained_rated: Option<checkpoint::RatedItems>,
}

/// P0's scalar figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Figures {
    /// Vocabulary size V.
    pub vocab: usize,
    /// `ln V`, the cross-entropy of the uniform prediction.
    pub uniform_baseline: f64,
    /// Training / validation users.
    pub train_sequences: usize,
    /// Validation users.
    pub val_sequences: usize,
    /// Training examples (CBOW windows).
    pub train_examples: usize,
    /// Validation examples.
    pub val_examples: usize,
    /// What the training and validation losses are: "softmax cross-entropy" or
    /// "negative-sampling loss" ([`Item2VecConfig::loss_name`]).
    #[serde(default)]
    pub loss_name: String,
    /// Training loss of the last epoch (mean over its batches' examples).
    pub final_train_loss: f64,
    /// Validation loss of the last epoch.
    pub final_val_loss: Option<f64>,
    /// Best validation loss and its epoch (0-based).
    pub best_val_loss: Option<f64>,
    /// Epoch of the best validation loss.
    pub best_epoch: Option<usize>,
    /// Ranking figures on the validation examples; `cross_entropy` is the full-vocabulary
    /// softmax cross-entropy whatever the training loss (comparable with `ln V`).
    pub val_rank: Option<RankMetrics>,
    /// Training wall time.
    pub seconds: f64,
}

/// The dense movie index whose title is exactly `query`, else the unique one containing it
/// (case-insensitive).
fn find_movie(ds: &Dataset, query: &str) -> Option<u32> {
    let titles: Vec<String> = (0..ds.movies.len() as u32).map(|m| ds.title(m)).collect();
    crate::titles::resolve(&titles, query).ok()
}

/// Applies P0's filters and returns the filtered data set and its user sequences.
pub fn prepare(ds: &Dataset, config: &Config) -> Result<(Dataset, Vec<Vec<u32>>), ModelError> {
    let rated_subset;
    let rated = match config.min_rating {
        Some(min) => {
            let rows: Vec<u32> =
                (0..ds.ratings.len() as u32).filter(|&r| ds.ratings.rating[r as usize] >= min).collect();
            rated_subset = transforms::subset(ds, &rows);
            &rated_subset
        }
        None => ds,
    };
    let top_subset;
    let top = if config.top_movies == 0 {
        rated
    } else {
        top_subset = transforms::keep_top_movies(rated, config.top_movies);
        &top_subset
    };
    let kept = transforms::filter_min_ratings(top, config.min_user_ratings, 1);
    if kept.ratings.is_empty() {
        return Err(ModelError::InvalidData(format!(
            "P0: no user has {} ratings among the top {} movies",
            config.min_user_ratings, config.top_movies
        )));
    }
    let sequences = transforms::user_sequences(&kept.ratings, kept.users.len());
    Ok((kept, sequences))
}

/// Runs P0 on `ds` on the CPU.
pub fn run(ds: &Dataset, config: &Config) -> Result<Outcome, ModelError> {
    run_on(ds, config, reelvec_engine::Device::Cpu)
}

/// Runs P0 on `ds`, training on `device`. CUDA trains the same objective on the GPU
/// ([`GpuItem2VecObjective`](crate::item2vec::gpu::GpuItem2VecObjective) with
/// [`Trainer::fit_gpu`]): full softmax, or negative sampling with the CPU's negative draws
/// (word2vec's Hogwild SGD at scale is `item2vec::gpu::train_sgns`). Post-processing runs on
/// the CPU.
pub fn run_on(ds: &Dataset, config: &Config, device: reelvec_engine::Device) -> Result<Outcome, ModelError> {
    config.validate()?;
    let started = Instant::now();
    let (data, sequences) = prepare(ds, config)?;
    train_on_sequences(data, &sequences, config, device, started)
}

/// Trains P0 on given user `sequences` over the movies of `data` (the vocabulary: `data`'s dense
/// movie indices), as [`run_on`] does after [`prepare`]: the same user split, examples, trainer
/// and reports. Next-title evaluation trains on the leave-last-out histories this way.
pub fn run_on_sequences(
    data: Dataset,
    sequences: &[Vec<u32>],
    config: &Config,
    device: reelvec_engine::Device,
) -> Result<Outcome, ModelError> {
    config.validate()?;
    if let Some(&t) = sequences.iter().flatten().find(|&&t| t as usize >= data.movies.len()) {
        return Err(ModelError::InvalidData(format!(
            "P0: sequence token {t} outside the {} movies of the data",
            data.movies.len()
        )));
    }
    train_on_sequences(data, sequences, config, device, Instant::now())
}

fn train_on_sequences(
    data: Dataset,
    sequences: &[Vec<u32>],
    config: &Config,
    device: reelvec_engine::Device,
    started: Instant,
) -> Result<Outcome, ModelError> {
    let vocab = data.movies.len();
    // Embedding, output weights and bias (four copies each) and every lane's gradient scratch.
    let k = config.model.dim as u128;
    let lanes = crate::item2vec::DEFAULT_LANES as u128;
    let what = format!("item2vec tables ({vocab} movies x dim {k})");
    check_tables_fit(&what, vocab as u128 * (2 * k + 1), 4 + lanes)?;
    let (train_users, val_users) =
        transforms::split_users(sequences.len(), config.train_fraction, config.seed);
    let pick = |users: &[u32]| users.iter().map(|&u| sequences[u as usize].clone()).collect::<Vec<_>>();
    let m = &config.model;
    let train = Examples::for_config(&pick(&train_users), m);
    let val = Examples::for_config(&pick(&val_users), m);
    if train.is_empty() {
        return Err(ModelError::InvalidData("P0: the training sequences give no example".into()));
    }
    // Item side features (`model.item_features`): the table of the vocabulary's movies, built by
    // the one owner the MF pipelines use; a movie of no training sequence gets its vectors from
    // its features alone.
    let features =
        super::MfModelConfig { item_features: m.item_features.names(), tags_top: m.tags_top }.build(&data)?;
    let feature_names = features.as_ref().map(|f| f.names().to_vec()).unwrap_or_default();
    let mut seen = vec![false; vocab];
    for &u in &train_users {
        for &t in &sequences[u as usize] {
            seen[t as usize] = true;
        }
    }
    let (params, history, train_examples) = if m.trainer != Item2VecTrainer::Engine {
        if matches!(device, reelvec_engine::Device::Cuda(_)) {
            return Err(ModelError::Unsupported {
                operation: format!("model.trainer = \"{}\" on CUDA (train on the CPU)", m.trainer.as_str()),
                kind: kind_of(m).to_string(),
            });
        }
        let train_len = train.len();
        let (params, history) = sgd::train_pairs(&pick(&train_users), vocab, m, &config.train, config.seed)?;
        (params, history, train_len)
    } else {
        fit_engine(vocab, config, train, &val, &pick(&train_users), features.map(|f| (f, &seen[..])), device)?
    };
    let model = Item2Vec::new(*m, params)?.with_feature_names(feature_names);
    let val_rank = (!val.is_empty()).then(|| model.rank_metrics(&val));
    let last = history.epochs.last();
    let figures = Figures {
        vocab,
        uniform_baseline: (vocab as f64).ln(),
        train_sequences: train_users.len(),
        val_sequences: val_users.len(),
        train_examples,
        val_examples: val.len(),
        loss_name: m.loss_name().to_string(),
        final_train_loss: last.map_or(f64::NAN, |e| e.train_loss),
        final_val_loss: last.and_then(|e| e.val_loss),
        best_val_loss: history.best_epoch.and_then(|b| history.epochs[b].val_loss),
        best_epoch: history.best_epoch,
        val_rank,
        seconds: started.elapsed().as_secs_f64(),
    };
    let n = config.report_top;
    let mut middle = Vec::new();
    for [a, b] in &config.middle_queries {
        if let (Some(a), Some(b)) = (find_movie(&data, a), find_movie(&data, b)) {
            if middle.iter().any(|p: &MiddlePrediction| p.before.movie == a && p.after.movie == b) {
                continue;
            }
            let predicted = model.predict_middle(a, b, n)?;
            middle.push(MiddlePrediction {
                before: MovieScore::new(&data, a, 0.0),
                after: MovieScore::new(&data, b, 0.0),
                predicted: MovieScore::list(&data, &predicted),
            });
        }
    }
    let mut queries: Vec<u32> = config.neighbours_of.iter().filter_map(|q| find_movie(&data, q)).collect();
    queries.dedup();
    if queries.is_empty() {
        queries.extend(transforms::top_movies(&data, 1));
    }
    // A movie without a vector has an empty neighbour list (the CLI says so).
    let neighbours = queries
        .into_iter()
        .map(|q| {
            let list = crate::traits::no_vector_as_none(model.nearest_by_cosine(q, n))?.unwrap_or_default();
            Ok((MovieScore::new(&data, q, 1.0), MovieScore::list(&data, &list)))
        })
        .collect::<Result<_, ModelError>>()?;
    // With features, the training users' movies are stored (`rated.safetensors`): the movies
    // outside them have vectors from features alone, which `similar` and `recommend` mark.
    let trained_rated = (!m.item_features.is_empty()).then(|| {
        let mut rows = vec![Vec::new(); sequences.len()];
        for &u in &train_users {
            rows[u as usize].clone_from(&sequences[u as usize]);
        }
        checkpoint::RatedItems::from_rows(&rows)
    });
    Ok(Outcome {
        model,
        dataset: data,
        history,
        figures,
        middle,
        neighbours,
        val_examples: val,
        trained_rated,
    })
}

/// The engine trainer's fit of P0 (`model.trainer = "engine"`): the objective over `train`,
/// validation on `val`, the trainer on `device`; with `features` (the table and which movies a
/// training sequence holds) the [`FeatureObjective`] on the CPU, its tables folded. Returns the
/// tables, history and the number of training examples.
fn fit_engine(
    vocab: usize,
    config: &Config,
    train: Examples,
    val: &Examples,
    train_sequences: &[Vec<u32>],
    features: Option<(ItemFeatures, &[bool])>,
    device: reelvec_engine::Device,
) -> Result<(ParamStore, History, usize), ModelError> {
    let m = &config.model;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(config.seed);
    let mut params = reelvec_engine::ParamStore::new();
    let tables = Item2VecTables::register(&mut params, vocab, m, &mut rng)?;
    if let Some((features, seen)) = features {
        let side = FeatureSide::register(&mut params, &tables, features)?;
        let val_opt = (!val.is_empty()).then(|| val.clone());
        let mut inner = Item2VecObjective::new(*m, tables, vocab, train, val_opt, config.seed)?;
        if let Some(sampling) = EpochSampling::new(train_sequences.to_vec(), vocab, m, config.seed) {
            inner = inner.with_epoch_sampling(sampling)?;
        }
        let train_config = decayed_train_config(m, &config.train, train_sequences.len());
        if let reelvec_engine::Device::Cuda(_) = device {
            if m.resamples() {
                return Err(ModelError::Unsupported {
                    operation: "gensim's per-epoch `sample` / `shrink_windows` on CUDA (train on the CPU)"
                        .into(),
                    kind: kind_of(m).to_string(),
                });
            }
            // The device twin: the plain GPU objective on the composed tables
            // (item2vec/gpu/features.rs).
            let gpu = reelvec_engine::gpu::Gpu::for_device(device)?;
            let plain = crate::item2vec::gpu::GpuItem2VecObjective::new(
                &gpu,
                *m,
                tables,
                vocab,
                inner.train_examples(),
                inner.val_examples(),
            )?
            .with_seed(config.seed);
            let mut dev = crate::item2vec::gpu::GpuFeatureObjective::new(&gpu, plain, tables, &side)?;
            let history = Trainer::new(train_config).fit_gpu(&gpu, &mut dev, &mut params)?;
            let examples = inner.train_examples().len();
            return Ok((features::fold(&params, &tables, &side, seen)?, history, examples));
        }
        let objective = FeatureObjective::new(inner, side.clone(), &params)?;
        let history = Trainer::new(train_config).fit_with(&objective, &mut params, |stats, _| {
            objective.inner().set_epoch(stats.epoch as u64 + 1)
        })?;
        let examples = objective.inner().train_examples().len();
        return Ok((features::fold(&params, &tables, &side, seen)?, history, examples));
    }
    let val_opt = (!val.is_empty()).then(|| val.clone());
    let mut objective = Item2VecObjective::new(*m, tables, vocab, train, val_opt, config.seed)?;
    if let Some(sampling) = EpochSampling::new(train_sequences.to_vec(), vocab, m, config.seed) {
        objective = objective.with_epoch_sampling(sampling)?;
    }
    let train_config = decayed_train_config(m, &config.train, train_sequences.len());
    let history = match device {
        reelvec_engine::Device::Cpu => {
            Trainer::new(train_config)
                .fit_with(&objective, &mut params, |stats, _| objective.set_epoch(stats.epoch as u64 + 1))?
        }
        reelvec_engine::Device::Cuda(_) if m.resamples() => {
            return Err(ModelError::Unsupported {
                operation: "gensim's per-epoch `sample` / `shrink_windows` on CUDA (train on the CPU)".into(),
                kind: kind_of(m).to_string(),
            })
        }
        reelvec_engine::Device::Cuda(_) => {
            let gpu = reelvec_engine::gpu::Gpu::for_device(device)?;
            let train = objective.train_examples();
            let mut dev = crate::item2vec::gpu::GpuItem2VecObjective::new(
                &gpu,
                *m,
                tables,
                vocab,
                train,
                objective.val_examples(),
            )?
            .with_seed(config.seed);
            Trainer::new(train_config).fit_gpu(&gpu, &mut dev, &mut params)?
        }
    };
    let examples = objective.train_examples().len();
    Ok((params, history, examples))
}

/// The model kind of an item2vec configuration.
fn kind_of(m: &Item2VecConfig) -> ModelKind {
    match m.architecture {
        Architecture::Cbow => ModelKind::Cbow,
        Architecture::Skipgram => ModelKind::Skipgram,
    }
}

impl Outcome {
    /// The model kind (CBOW or skip-gram).
    pub fn kind(&self) -> ModelKind {
        match self.model.config().architecture {
            Architecture::Cbow => ModelKind::Cbow,
            Architecture::Skipgram => ModelKind::Skipgram,
        }
    }

    /// Writes the run directory (`model.safetensors`, `run.json` with the filtered vocabulary's
    /// ids and titles, the history and the figures).
    pub fn save(&self, dir: &Path, config: &Config, data_path: Option<&Path>) -> Result<(), ModelError> {
        checkpoint::save_run(
            dir,
            self.model.params(),
            &self.run_info(config, data_path),
            self.trained_rated.as_ref(),
        )
    }

    /// [`save`](Self::save) for a run trained on a sequence corpus (`--sequences`): its movies
    /// are the corpus's tokens, so `run.json` sets [`RunInfo::tokens`] (queries and exports are
    /// keyed by token).
    pub fn save_corpus_run(&self, dir: &Path, config: &Config, corpus_path: &Path) -> Result<(), ModelError> {
        let mut info = self.run_info(config, Some(corpus_path));
        info.tokens = true;
        checkpoint::save_run(dir, self.model.params(), &info, self.trained_rated.as_ref())
    }

    /// The run's `run.json`: the filtered vocabulary's ids and titles, history and figures.
    pub fn run_info(&self, config: &Config, data_path: Option<&Path>) -> RunInfo {
        let mut info =
            run_info_for(&self.dataset, self.kind(), crate::config::to_json(config), config.seed, data_path);
        info.history = serde_json::to_value(&self.history).unwrap_or_default();
        info.metrics = serde_json::to_value(&self.figures).unwrap_or_default();
        info.item_features = self.model.item_feature_names();
        info
    }

    /// The middle part of every consecutive triple of each franchise (raw ids in watch order)
    /// whose three movies are in the vocabulary: `(top predictions equal to the middle, triples)`.
    pub fn franchise_middle_hits(&self, franchises: &[Vec<u64>]) -> Result<(usize, usize), ModelError> {
        let (mut hits, mut total) = (0, 0);
        for f in franchises {
            let dense: Vec<Option<u32>> = f.iter().map(|&raw| self.dataset.movies.dense(raw)).collect();
            for w in dense.windows(3) {
                if let [Some(a), Some(b), Some(c)] = *w {
                    total += 1;
                    if self.model.predict_middle(a, c, 1)?.first().map(|x| x.0) == Some(b) {
                        hits += 1;
                    }
                }
            }
        }
        Ok((hits, total))
    }
}

/// Loads a CBOW / skip-gram run directory.
pub fn load(dir: &Path) -> Result<(Item2Vec, RunInfo), ModelError> {
    let (params, info) = checkpoint::load_run(dir)?;
    Ok((model_of_run(params, &info, dir)?, info))
}

/// The CBOW / skip-gram model of a run held in memory (its tables and `run.json`; `dir` names
/// the run in errors); [`ModelError::Unsupported`] for other kinds.
pub fn model_of_run(params: ParamStore, info: &RunInfo, dir: &Path) -> Result<Item2Vec, ModelError> {
    if !matches!(info.model_kind, ModelKind::Cbow | ModelKind::Skipgram) {
        return Err(ModelError::Unsupported {
            operation: "middle-movie prediction".into(),
            kind: info.model_kind.to_string(),
        });
    }
    let config: Config = serde_json::from_value(info.config.clone())
        .map_err(|e| ModelError::checkpoint(dir.join("run.json"), format!("P0 config: {e}")))?;
    Ok(Item2Vec::new(config.model, params)?.with_feature_names(info.item_features.clone()))
}

/// The `k` most likely movies between `before` and `after` (dense indices of the run `info`
/// describes; `k` above its movies is lowered to them), best first with their log-likelihood:
/// `reelvec middle` and Python's `Run.middle`. The same movie twice is
/// [`ModelError::InvalidData`].
pub fn middle(
    model: &Item2Vec,
    info: &RunInfo,
    before: u32,
    after: u32,
    k: usize,
) -> Result<Vec<(u32, f32)>, ModelError> {
    if before == after {
        return Err(ModelError::InvalidData(format!(
            "both movies are {}; give two different movies",
            info.title(before)
        )));
    }
    model.predict_middle(before, after, k.min(info.movie_raw_ids.len()))
}
