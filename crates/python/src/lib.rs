//! `reelvec._core`, the extension module under the pure-Python `reelvec` package
//! (`crates/python/python/reelvec`): thin PyO3 glue over the library crates. Data sets come from
//! reelvec-data (`load`, `Dataset::from_triples`, `synth`), training from reelvec-models'
//! `train` module (the config resolution and kind dispatch `reelvec train` uses, so a run trained
//! here is the run directory the CLI writes), queries from reelvec-metrics and reelvec-models.
//! This crate holds no logic a library crate should own: it converts arguments, releases the
//! GIL around every long call (`Python::detach`), reports progress and checks Ctrl-C through the
//! engine's step hook, and maps every error to a `reelvec.errors` exception ([`errors`]).

mod errors;

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use numpy::{IntoPyArray, PyArray1, PyArray2, PyReadonlyArray1};
use pyo3::prelude::*;
use reelvec_data::synth::{self as synthetic, Preset, SynthConfig};
use reelvec_data::{GenericColumns, Layout, LoadOptions};
use reelvec_engine::step_hook::with_step_hook;
use reelvec_engine::Device;
use reelvec_metrics::foldin::{fold_in_watched, FoldInConfig};
use reelvec_metrics::similarity::nearest_neighbours;
use reelvec_models::export::{check_outputs, export_run, ExportFormat};
use reelvec_models::foldin::fold_in_rating_user;
use reelvec_models::mf::MfModel;
use reelvec_models::pipelines::p0_cbow;
use reelvec_models::ranking::{
    check_ranker_params, params_from_overrides, similar_items, top_for_new_user, top_for_user, Ranker,
    RankerKind,
};
use reelvec_models::titles::{self, TitleMiss};
use reelvec_models::train::{self as training, ConfigSource, TrainedRun};
use reelvec_models::ModelKind;
use reelvec_models::RatingModel;

use errors::Class;

/// How often (at most) the step hook takes the GIL to check Ctrl-C and report progress.
const HOOK_EVERY: Duration = Duration::from_millis(100);

/// A ratings data set (`reelvec.Dataset` wraps it).
#[pyclass(frozen, module = "reelvec._core")]
struct Dataset {
    inner: Arc<reelvec_data::Dataset>,
    /// Where it came from: a path on disk (recorded in run directories, so `reelvec evaluate`
    /// finds the data), `synth:<preset>`, or None for arrays.
    source: Option<String>,
}

fn config_error(message: String) -> PyErr {
    errors::raise(Class::Config, message, None, None)
}

#[pymethods]
impl Dataset {
    /// The statistics `reelvec data stats --json` prints, as JSON text.
    fn stats_json(&self) -> PyResult<String> {
        let s = reelvec_data::stats::Stats::compute(&self.inner);
        serde_json::to_string(&s).map_err(|e| errors::raise(Class::DataFormat, e.to_string(), None, None))
    }

    #[getter]
    fn n_users(&self) -> usize {
        self.inner.users.len()
    }

    #[getter]
    fn n_movies(&self) -> usize {
        self.inner.movies.len()
    }

    #[getter]
    fn n_ratings(&self) -> usize {
        self.inner.ratings.len()
    }

    #[getter]
    fn source(&self) -> Option<String> {
        self.source.clone()
    }

    /// `(user ids, movie ids, ratings, timestamps)`: the rating rows with raw ids (copies).
    #[allow(clippy::type_complexity)]
    fn arrays<'py>(
        &self,
        py: Python<'py>,
    ) -> (
        Bound<'py, PyArray1<i64>>,
        Bound<'py, PyArray1<i64>>,
        Bound<'py, PyArray1<f32>>,
        Bound<'py, PyArray1<i64>>,
    ) {
        let ds = &self.inner;
        let raw = |map: &reelvec_data::IdMap, dense: &[u32]| -> Vec<i64> {
            dense.iter().map(|&d| map.raw(d).map_or(-1, |r| r as i64)).collect()
        };
        (
            raw(&ds.users, &ds.ratings.user).into_pyarray(py),
            raw(&ds.movies, &ds.ratings.movie).into_pyarray(py),
            ds.ratings.rating.clone().into_pyarray(py),
            ds.ratings.timestamp.clone().into_pyarray(py),
        )
    }

    /// `{movie id: title}` for every rated movie.
    fn titles(&self) -> Vec<(u64, String)> {
        let ds = &self.inner;
        (0..ds.movies.len() as u32).map(|m| (ds.movies.raw(m).unwrap_or(u64::MAX), ds.title(m))).collect()
    }
}

/// Loads a data set of any layout (`layout` forces one; generic files take `columns`: positions
/// or header names, as the CLI's `--columns`).
#[pyfunction]
#[pyo3(signature = (path, layout=None, cache=true, columns=None, delimiter=",".to_string(), header=false))]
fn load(
    py: Python<'_>,
    path: PathBuf,
    layout: Option<String>,
    cache: bool,
    columns: Option<Vec<String>>,
    delimiter: String,
    header: bool,
) -> PyResult<Dataset> {
    let layout = layout.as_deref().map(str::parse::<Layout>).transpose().map_err(errors::data)?;
    let delimiter = match delimiter.as_str() {
        "\\t" | "tab" | "\t" => b'\t',
        d if d.len() == 1 => d.as_bytes()[0],
        d => return Err(config_error(format!("delimiter {d:?}: expected one ASCII character"))),
    };
    let ds = py
        .detach(|| {
            let generic = match &columns {
                None => None,
                Some(c) => {
                    let entries: Vec<&str> = c.iter().map(String::as_str).collect();
                    Some(GenericColumns::from_spec(&path, &entries, delimiter, header)?)
                }
            };
            reelvec_data::load(&path, &LoadOptions { layout, use_cache: cache, generic })
        })
        .map_err(errors::data)?;
    Ok(Dataset { inner: Arc::new(ds), source: Some(path.display().to_string()) })
}

fn ids(name: &str, values: &[i64]) -> PyResult<Vec<u64>> {
    values
        .iter()
        .enumerate()
        .map(|(row, &v)| {
            u64::try_from(v).map_err(|_| {
                let message = format!("{name}[{row}] = {v}: ids must be non-negative integers");
                errors::raise(Class::DataFormat, message, None, Some(row as u64 + 1))
            })
        })
        .collect()
}

/// A data set from rating rows in memory (ids as int64, ratings as float32), with optional
/// `(movie id, title)` pairs.
#[pyfunction]
#[pyo3(signature = (users, items, ratings, timestamps=None, titles=None))]
fn from_arrays(
    py: Python<'_>,
    users: PyReadonlyArray1<'_, i64>,
    items: PyReadonlyArray1<'_, i64>,
    ratings: PyReadonlyArray1<'_, f32>,
    timestamps: Option<PyReadonlyArray1<'_, i64>>,
    titles: Option<Vec<(i64, String)>>,
) -> PyResult<Dataset> {
    let users = ids("users", &users.as_array().to_vec())?;
    let items = ids("items", &items.as_array().to_vec())?;
    let ratings = ratings.as_array().to_vec();
    let timestamps = timestamps.map(|t| t.as_array().to_vec());
    let titles: Option<Vec<(u64, String)>> = match titles {
        None => None,
        Some(pairs) => {
            let (raw, names): (Vec<i64>, Vec<String>) = pairs.into_iter().unzip();
            Some(ids("titles", &raw)?.into_iter().zip(names).collect())
        }
    };
    let ds = py
        .detach(|| {
            reelvec_data::Dataset::from_triples(&users, &items, &ratings, timestamps.as_deref()).map(|ds| {
                match &titles {
                    Some(t) => ds.with_titles(t),
                    None => ds,
                }
            })
        })
        .map_err(errors::data)?;
    Ok(Dataset { inner: Arc::new(ds), source: None })
}

/// A seeded synthetic data set (`tiny`, `small`, `ml-100k`, `ml-1m`, `ml-25m`).
#[pyfunction]
#[pyo3(signature = (preset="small".to_string(), seed=42))]
fn synth(py: Python<'_>, preset: String, seed: u64) -> PyResult<Dataset> {
    let p: Preset = preset.parse().map_err(errors::data)?;
    let data = py.detach(|| synthetic::generate(&SynthConfig { seed, ..p.config() }));
    Ok(Dataset { inner: Arc::new(data.dataset), source: Some(format!("synth:{}", p.name())) })
}

/// A trained or opened run (`reelvec.Run` wraps it).
#[pyclass(frozen, module = "reelvec._core")]
struct Run {
    inner: TrainedRun,
    /// The fitted model of a ranking run (a `Ranker` is `Send`, not `Sync`: the mutex makes the
    /// frozen class shareable between threads).
    ranker: Option<Mutex<Box<dyn Ranker>>>,
}

fn no_model_error(e: reelvec_models::ModelError) -> PyErr {
    errors::model(e)
}

/// `(movie id, title, score)`.
type Scored = (u64, String, f32);

impl Run {
    /// A run and, for a ranking run, its model rebuilt from the tables (`dir` names it in errors).
    fn new(inner: TrainedRun, dir: &Path) -> PyResult<Self> {
        let ranker = inner.ranker(dir).map_err(errors::model)?.map(Mutex::new);
        Ok(Run { inner, ranker })
    }

    /// Runs `f` on the ranking model, if this is a ranking run, with the GIL released.
    fn with_ranker<R: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&dyn Ranker) -> Result<R, reelvec_models::ModelError> + Send,
    ) -> Option<PyResult<R>> {
        let ranker = self.ranker.as_ref()?;
        Some(
            py.detach(|| {
                let model = ranker.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                f(model.as_ref())
            })
            .map_err(errors::model),
        )
    }

    fn scored(&self, list: Vec<(u32, f32)>) -> Vec<Scored> {
        let info = &self.inner.info;
        list.into_iter().map(|(m, s)| (info.movie_raw_ids[m as usize], info.title(m), s)).collect()
    }

    fn rating_model(&self, operation: &str) -> PyResult<MfModel> {
        let info = &self.inner.info;
        if !info.model_kind.predicts_ratings() {
            return Err(errors::model(reelvec_models::ModelError::Unsupported {
                operation: operation.into(),
                kind: info.model_kind.to_string(),
            }));
        }
        MfModel::from_run(&self.inner.params, info, Path::new("<run>")).map_err(errors::model)
    }
}

#[pymethods]
impl Run {
    /// The model kind (`mf`, `cbow`, ...).
    #[getter]
    fn kind(&self) -> String {
        self.inner.info.model_kind.to_string()
    }

    /// `run.json` as JSON text (config, history, metrics, ids, titles).
    fn info_json(&self) -> PyResult<String> {
        serde_json::to_string(&self.inner.info).map_err(|e| config_error(e.to_string()))
    }

    /// The item vectors, movies x k, float32 (a copy of the stored table, owned by NumPy).
    fn item_vectors<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyArray2<f32>>> {
        Ok(self.inner.item_vectors().map_err(no_model_error)?.into_pyarray(py))
    }

    /// The user vectors (users x k, a copy) of the MF models; None for item models.
    fn user_vectors<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyArray2<f32>>>> {
        Ok(self.inner.user_vectors().map_err(no_model_error)?.map(|a| a.into_pyarray(py)))
    }

    /// Raw movie ids in item-vector order.
    fn movie_ids<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<i64>> {
        self.inner.info.movie_raw_ids.iter().map(|&r| r as i64).collect::<Vec<_>>().into_pyarray(py)
    }

    /// Raw user ids in user-vector order (empty for item models).
    fn user_ids<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<i64>> {
        self.inner.info.user_raw_ids.iter().map(|&r| r as i64).collect::<Vec<_>>().into_pyarray(py)
    }

    /// Titles in item-vector order.
    fn titles(&self) -> Vec<String> {
        let info = &self.inner.info;
        (0..info.movie_raw_ids.len() as u32).map(|m| info.title(m)).collect()
    }

    /// The dense index of a movie given by raw id or title (the CLI's rule).
    fn movie_index(&self, query: &str) -> PyResult<u32> {
        let info = &self.inner.info;
        titles::resolve_in_run(info, query).map_err(|miss| {
            let message = match miss {
                TitleMiss::NotFound => {
                    format!(
                        "no movie matches `{query}` (give a movie id, an exact title, or part of a title)"
                    )
                }
                TitleMiss::Ambiguous(c) => {
                    let shown: Vec<String> = c
                        .iter()
                        .take(10)
                        .map(|&i| format!("{} ({})", info.title(i), info.movie_raw_ids[i as usize]))
                        .collect();
                    format!("`{query}` matches {} movies: {}", c.len(), shown.join("; "))
                }
            };
            errors::raise(Class::UnknownMovie, message, None, None)
        })
    }

    /// The `k` movies nearest to `query` by cosine of the item vectors (reelvec-metrics'
    /// `nearest_neighbours`, as `reelvec similar`): `(movie id, title, cosine)`.
    fn similar(&self, py: Python<'_>, query: &str, k: usize) -> PyResult<Vec<Scored>> {
        let movie = self.movie_index(query)?;
        if let Some(listed) = self.with_ranker(py, |m| similar_items(m, movie, k)) {
            return Ok(self.scored(listed?));
        }
        let emb = self.inner.item_vectors().map_err(errors::model)?;
        let k = k.min(emb.nrows().saturating_sub(1));
        let list = py.detach(|| nearest_neighbours(emb.view(), movie, k)).map_err(errors::metrics)?;
        Ok(self.scored(list))
    }

    /// The `k` most likely movies between `before` and `after` (cbow and skipgram runs, as
    /// `reelvec middle`: reelvec-models' `p0_cbow::middle`): `(movie id, title, log-likelihood)`.
    fn middle(&self, py: Python<'_>, before: &str, after: &str, k: usize) -> PyResult<Vec<Scored>> {
        let info = &self.inner.info;
        let (a, b) = (self.movie_index(before)?, self.movie_index(after)?);
        let params = self.inner.params.clone();
        let ranked = py
            .detach(|| {
                let model = p0_cbow::model_of_run(params, info, Path::new("<run>"))?;
                p0_cbow::middle(&model, info, a, b, k)
            })
            .map_err(errors::model)?;
        Ok(self.scored(ranked))
    }

    /// A known user's top `k` movies by predicted stars (rating models) or scores (ranking
    /// models), as `reelvec recommend --user`, without the movies they rated in training when
    /// `exclude_rated`.
    fn recommend(&self, py: Python<'_>, user: u64, k: usize, exclude_rated: bool) -> PyResult<Vec<Scored>> {
        let info = &self.inner.info;
        let dense = info.user_dense(user).ok_or_else(|| {
            let message = format!("user {user} is not in this run's training data");
            errors::raise(Class::UnknownMovie, message, None, None)
        })?;
        let seen: &[u32] = match (&self.inner.rated, exclude_rated) {
            (Some(r), true) => r.row(dense),
            _ => &[],
        };
        if let Some(top) = self.with_ranker(py, |m| top_for_user(m, dense, k, seen)) {
            return Ok(self.scored(top?));
        }
        let model = self.rating_model("recommending for a user")?;
        let n = info.movie_raw_ids.len();
        let top = py.detach(|| model.top_n(dense, n, k.min(n), seen)).map_err(errors::metrics)?;
        Ok(self.scored(top))
    }

    /// A new user from `(movie, stars)` ratings, folded in without retraining (rating models:
    /// reelvec-models' `fold_in_rating_user`, predicted stars), or from watched movies
    /// (item models: reelvec-metrics' `fold_in_watched`, cosine to their mean; ranking models:
    /// their `score_new_user`, as `reelvec recommend --rated`, stars ignored); the given movies
    /// are left out.
    fn fold_in(&self, py: Python<'_>, rated: Vec<(String, f32)>, k: usize) -> PyResult<Vec<Scored>> {
        let info = &self.inner.info;
        let mut given = Vec::with_capacity(rated.len());
        for (query, stars) in &rated {
            if !stars.is_finite() {
                return Err(errors::raise(
                    Class::DataFormat,
                    format!("{query}: {stars} is not a rating"),
                    None,
                    None,
                ));
            }
            given.push((self.movie_index(query)?, *stars));
        }
        let k = k.min(info.movie_raw_ids.len());
        let watched: Vec<u32> = given.iter().map(|&(m, _)| m).collect();
        if let Some(top) = self.with_ranker(py, |m| top_for_new_user(m, &watched, k)) {
            return Ok(self.scored(top?));
        }
        if info.model_kind.predicts_ratings() {
            let model = self.rating_model("folding in a user")?;
            let excluded: Vec<u32> = given.iter().map(|&(m, _)| m).collect();
            let top = py
                .detach(|| fold_in_rating_user(&model, &given, &FoldInConfig::default())?.top(k, &excluded))
                .map_err(errors::model)?;
            Ok(self.scored(top))
        } else {
            let emb = self.inner.item_vectors().map_err(errors::model)?;
            let profile = py.detach(|| fold_in_watched(emb.view(), &watched, k)).map_err(errors::metrics)?;
            Ok(self.scored(profile.ranked))
        }
    }

    /// Writes the item vectors as `format` (parquet, npy, csv, word2vec; the CLI's `reelvec
    /// export`); returns the files written.
    fn export(&self, py: Python<'_>, path: PathBuf, format: &str) -> PyResult<Vec<PathBuf>> {
        let format: ExportFormat = format.parse().map_err(errors::model)?;
        let info = &self.inner.info;
        py.detach(|| {
            check_outputs(format, &path)?;
            let emb = self.inner.item_vectors()?;
            export_run(format, &path, info, emb.view())
        })
        .map_err(errors::model)
    }

    /// Writes the user vectors as Parquet (`userId`, `column_0..`; `reelvec export --vectors
    /// users`); an error for the models without them.
    fn export_users(&self, py: Python<'_>, path: PathBuf) -> PyResult<PathBuf> {
        py.detach(|| self.inner.export_user_vectors(&path)).map_err(errors::model)
    }

    /// Writes the run directory (the CLI reads it); replaces a run already there.
    fn save(&self, py: Python<'_>, dir: PathBuf) -> PyResult<()> {
        py.detach(|| self.inner.save(&dir)).map_err(errors::model)
    }
}

/// Opens a run directory written by the CLI or by `Run.save`.
#[pyfunction]
fn open_run(py: Python<'_>, dir: PathBuf) -> PyResult<Run> {
    if !dir.exists() {
        let message = format!("{}: no such run directory", dir.display());
        return Err(errors::raise(Class::NotFound, message, Some(&dir), None));
    }
    let inner = py.detach(|| TrainedRun::load(&dir)).map_err(errors::model)?;
    Run::new(inner, &dir)
}

/// `reelvec evaluate --json`'s object, as JSON text, for the run directory `dir` on `data` (the
/// data it was trained on): reelvec-models' `evaluate::evaluate_run`, the CLI's one owner; `k`
/// is capped at the run's movies.
#[pyfunction]
#[pyo3(signature = (dir, data, k=10, device="cpu".to_string()))]
fn evaluate_run(py: Python<'_>, dir: PathBuf, data: &Dataset, k: usize, device: String) -> PyResult<String> {
    let device = Device::parse(&device).map_err(errors::engine)?;
    let ds = data.inner.clone();
    py.detach(move || -> Result<String, reelvec_models::ModelError> {
        let info = reelvec_models::checkpoint::load_run_info(&dir)?;
        let k = k.clamp(1, info.movie_raw_ids.len().max(1));
        let mut figures = reelvec_models::evaluate::Figures::default();
        reelvec_models::evaluate::evaluate_run(&dir, &info, &ds, k, device, &mut figures)?;
        Ok(figures.to_json(&dir.display().to_string(), info.model_kind).to_string())
    })
    .map_err(errors::model)
}

/// Runs `work` with the engine's step hook checking Ctrl-C and calling `progress(done, total)`
/// at most every [`HOOK_EVERY`]; the Python error that stopped it, if any, comes back too.
fn with_python_hook<R>(progress: Option<Py<PyAny>>, work: impl FnOnce() -> R) -> (R, Option<PyErr>) {
    let failure: Rc<RefCell<Option<PyErr>>> = Rc::new(RefCell::new(None));
    let seen = failure.clone();
    let mut last = Instant::now();
    let out = with_step_hook(
        move |p| {
            if last.elapsed() < HOOK_EVERY && p.done < p.total {
                return true;
            }
            last = Instant::now();
            Python::attach(|py| {
                let checked = py.check_signals().and_then(|()| match &progress {
                    Some(cb) => cb.call1(py, (p.done, p.total)).map(drop),
                    None => Ok(()),
                });
                match checked {
                    Ok(()) => true,
                    Err(e) => {
                        *seen.borrow_mut() = Some(e);
                        false
                    }
                }
            })
        },
        work,
    );
    let err = failure.borrow_mut().take();
    (out, err)
}

/// Trains `kind` on `data` and returns the run (nothing is written; `Run.save` writes it).
#[pyfunction]
#[pyo3(signature = (kind, data, device="cpu".to_string(), seed=42, overrides=Vec::new(), preset=None, progress=None))]
#[allow(clippy::too_many_arguments)]
fn train(
    py: Python<'_>,
    kind: String,
    data: &Dataset,
    device: String,
    seed: u64,
    overrides: Vec<String>,
    preset: Option<String>,
    progress: Option<Py<PyAny>>,
) -> PyResult<Run> {
    let kind: ModelKind = kind.parse().map_err(errors::model)?;
    if let Some(ranker) = kind.ranker() {
        return train_ranking(py, ranker, data, &device, seed, &overrides, preset, progress);
    }
    let device = Device::parse(&device).map_err(errors::engine)?;
    // The engine's own bar draws on the terminal; the package draws its own through `progress`.
    let src = ConfigSource {
        overrides: &overrides,
        seed: Some(seed),
        quiet: true,
        preset: preset.as_deref(),
        file: None,
        // `config={"train.flush_denormals": True}` sets it like any other key.
        flush_denormals: false,
    };
    let cfg = training::resolve(kind, &src).map_err(errors::model)?;
    let ds = data.inner.clone();
    let path = data.source.as_ref().map(PathBuf::from);
    let (trained, stopped) = py.detach(move || {
        with_python_hook(progress, || training::train(&ds, &cfg, device, path.as_deref().map(Path::new)))
    });
    match (trained, stopped) {
        (Ok(inner), _) => Run::new(inner, Path::new("<run>")),
        // The hook's own exception (KeyboardInterrupt, or the progress callback's) wins.
        (Err(_), Some(e)) => Err(e),
        (Err(e), None) => Err(errors::model(e)),
    }
}

/// Fits a ranking model on every rating of `data` (reelvec-models' `train_ranker`, as `reelvec
/// train --model <ranker>`): `overrides` are its plain `key=value` parameters; no preset; the
/// models train on the CPU (`auto` is the CPU, as in the CLI). iALS and BPR call the step hook
/// between iterations (Ctrl-C, `progress`), as `train` does between steps.
#[allow(clippy::too_many_arguments)]
fn train_ranking(
    py: Python<'_>,
    kind: RankerKind,
    data: &Dataset,
    device: &str,
    seed: u64,
    overrides: &[String],
    preset: Option<String>,
    progress: Option<Py<PyAny>>,
) -> PyResult<Run> {
    if preset.is_some() {
        return Err(config_error(format!(
            "{kind} takes no preset; give its parameters through config (e.g. {{\"factors\": 64}})"
        )));
    }
    let params = params_from_overrides(overrides).map_err(errors::model)?;
    check_ranker_params(kind, &params).map_err(errors::model)?;
    let device =
        if device == "auto" { Device::Cpu } else { Device::parse(device).map_err(errors::engine)? };
    let ds = data.inner.clone();
    let path = data.source.as_ref().map(PathBuf::from);
    let (fitted, stopped) = py.detach(move || {
        with_python_hook(progress, || {
            training::train_ranker(&ds, kind, &params, seed, device, path.as_deref(), None)
        })
    });
    match (fitted, stopped) {
        (Ok((model, inner)), _) => Ok(Run { inner, ranker: Some(Mutex::new(model)) }),
        // The hook's own exception (KeyboardInterrupt, or the progress callback's) wins.
        (Err(_), Some(e)) => Err(e),
        (Err(e), None) => Err(errors::model(e)),
    }
}

/// The model kinds `train` accepts, as the CLI spells them.
#[pyfunction]
fn model_kinds() -> Vec<&'static str> {
    ModelKind::ALL.iter().map(|k| k.as_str()).collect()
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Dataset>()?;
    m.add_class::<Run>()?;
    m.add_function(wrap_pyfunction!(load, m)?)?;
    m.add_function(wrap_pyfunction!(from_arrays, m)?)?;
    m.add_function(wrap_pyfunction!(synth, m)?)?;
    m.add_function(wrap_pyfunction!(train, m)?)?;
    m.add_function(wrap_pyfunction!(open_run, m)?)?;
    m.add_function(wrap_pyfunction!(evaluate_run, m)?)?;
    m.add_function(wrap_pyfunction!(model_kinds, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
