//! P1 — co-occurrence factorisation, as PROTOCOLS.md describes it: `liked_ui = 1` when
//! `r_ui >= 4`, `X = L^T L` with its diagonal set to 0, and `V` (M x k) fitted by full-batch
//! Adam to `c(V) = sum_{i != j} (v_i . v_j - X_ij)^2`, computed from `L` without forming `X`
//! ([`crate::cooc`]). The check is the rank-k eigen-truncation of `X0` keeping positive
//! eigenvalues (dense LAPACK up to `dense_limit` movies, subspace iteration beyond). Under
//! `reference = "auto"` the subspace iteration runs only while its work per iteration,
//! `M (2k + 10)^2`, is at most `auto_reference_max_work` (10^8: about 30 s on two cores; k = 100
//! on a ml-latest-small-sized catalogue is 4 x 10^8 and took 180 s of a run); beyond, the
//! reference is skipped with a note in [`Figures::reference_note`] and `reference = "subspace"`
//! asks for it.
//!
//! Reported: the cost per step, the reference cost, their ratio, the masked cost of the
//! reference factors, neighbours by cosine. M counts the movies of the data set's id map (the
//! movies with at least one rating).

use std::path::Path;
use std::time::Instant;

use reelvec_data::Dataset;
use reelvec_engine::gpu::Gpu;
use reelvec_engine::Device;
use serde::{Deserialize, Serialize};

use super::{check_dim, check_key, check_tables_fit, run_info_for, ModelKind, MovieScore};
use crate::checkpoint::{self, RunInfo};
use crate::cooc::gpu::fit_gpu;
use crate::cooc::{
    dense_reference, fit, subspace_reference, CoocConfig, CoocModel, CoocProblem, CoocScratch, CostParts,
    LikeMatrix, Reference, ReferenceMethod,
};
use crate::traits::ItemEmbeddings;
use crate::ModelError;

/// Which reference to compute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ReferenceChoice {
    /// Dense up to `dense_limit` movies, subspace iteration beyond while its work is at most
    /// `auto_reference_max_work`, none beyond that (noted in the figures).
    #[default]
    Auto,
    /// Always the dense eigendecomposition.
    Dense,
    /// Always subspace iteration.
    Subspace,
    /// No reference.
    None,
}

/// P1's configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// The factorisation (k = 20, like threshold 4, full-batch Adam).
    pub model: CoocConfig,
    /// Seed of the initialisation and the subspace iteration's start.
    pub seed: u64,
    /// Reference computation.
    pub reference: ReferenceChoice,
    /// Largest M for the dense reference under `auto` (4000).
    pub dense_limit: usize,
    /// Largest work per subspace iteration, `M (2k + 10)^2`, for the reference under `auto`
    /// (1e8); `reference = "subspace"` ignores it.
    pub auto_reference_max_work: f64,
    /// Subspace iterations at most (500).
    pub subspace_max_iter: usize,
    /// Relative change of the Ritz values that stops the subspace iteration (1e-9).
    pub subspace_tol: f64,
    /// Log the cost every this many steps through `tracing` at info level (0: never); the
    /// library never prints, the caller's subscriber decides where the events go.
    pub log_every: usize,
    /// Movies whose cosine neighbours are reported (exact title or unique part of one).
    pub neighbours_of: Vec<String>,
    /// Neighbours per movie.
    pub report_top: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            model: CoocConfig::default(),
            seed: 42,
            reference: ReferenceChoice::Auto,
            dense_limit: 4000,
            auto_reference_max_work: 1e8,
            subspace_max_iter: 500,
            subspace_tol: 1e-9,
            log_every: 0,
            neighbours_of: vec!["Star Wars (1977)".into(), "Toy Story (1995)".into()],
            report_top: 5,
        }
    }
}

/// Bytes of f64 the dense reference holds for M movies: the M x M operator, its eigenvectors
/// and LAPACK's workspace, about three M x M matrices.
pub fn dense_reference_bytes(movies: usize) -> u128 {
    let m = movies as u128;
    m * m * 8 * 3
}

impl Config {
    /// Checks every key against its allowed range (the error names the key and the range);
    /// [`run_on`] calls it before any work.
    pub fn validate(&self) -> Result<(), ModelError> {
        let m = &self.model;
        check_dim("model.dim", m.dim)?;
        check_key("model.steps", m.steps, "1 to 10000000", (1..=10_000_000).contains(&m.steps))?;
        check_key("model.lr", m.lr, "a finite number > 0", m.lr.is_finite() && m.lr > 0.0)?;
        check_key("model.like_threshold", m.like_threshold, "a finite number", m.like_threshold.is_finite())?;
        check_key(
            "model.init_scale",
            m.init_scale,
            "a finite number > 0",
            m.init_scale.is_finite() && m.init_scale > 0.0,
        )?;
        check_key("subspace_max_iter", self.subspace_max_iter, "at least 1", self.subspace_max_iter >= 1)?;
        let w = self.auto_reference_max_work;
        check_key("auto_reference_max_work", w, "a number >= 0", w >= 0.0)?;
        let tol = self.subspace_tol;
        check_key("subspace_tol", tol, "a finite number > 0", tol.is_finite() && tol > 0.0)?;
        Ok(())
    }
}

/// P1's scalar figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Figures {
    /// Movies M.
    pub movies: usize,
    /// Users.
    pub users: usize,
    /// Likes (nnz of L).
    pub likes: usize,
    /// Rank k.
    pub k: usize,
    /// `||X0||_F^2` (the cost of V = 0).
    pub x0_frobenius_sq: f64,
    /// Final masked cost (the protocol's).
    pub final_cost: f64,
    /// Final unmasked cost `||V V^T - X0||_F^2`.
    pub final_unmasked_cost: f64,
    /// Reference cost: the unmasked optimum `||X0||^2 - sum of kept lambda^2`.
    pub reference_cost: Option<f64>,
    /// The masked cost of the reference factors.
    pub reference_masked_cost: Option<f64>,
    /// Like for like: the trained objective over the reference's cost under the same objective
    /// (masked / reference masked when the diagonal is masked, else unmasked / unmasked).
    pub ratio: Option<f64>,
    /// Final unmasked cost over the reference's unmasked cost (the rank-k optimum: >= 1).
    #[serde(default)]
    pub ratio_unmasked: Option<f64>,
    /// Final masked cost over the masked cost of the reference factors (the PyTorch peer's
    /// figure `final_over_reference`).
    pub ratio_to_reference_masked: Option<f64>,
    /// How the reference was computed.
    pub reference_method: Option<ReferenceMethod>,
    /// Why there is no reference, when `auto` skipped it.
    #[serde(default)]
    pub reference_note: Option<String>,
    /// Seconds for the reference.
    pub reference_seconds: f64,
    /// Adam steps.
    pub steps: usize,
    /// Seconds of the optimisation.
    pub train_seconds: f64,
    /// Mean seconds per step (cost + gradient + Adam).
    pub step_seconds: f64,
}

/// Everything P1 reports.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The factors.
    pub model: CoocModel,
    /// Costs before each step, then the final cost.
    pub costs: Vec<CostParts>,
    /// The reference, when computed.
    pub reference: Option<Reference>,
    /// Figures.
    pub figures: Figures,
    /// Cosine neighbours of the configured movies.
    pub neighbours: Vec<(MovieScore, Vec<MovieScore>)>,
}

/// Computes the configured reference (None for `ReferenceChoice::None`).
pub fn reference(problem: &CoocProblem, config: &Config) -> Result<Option<Reference>, ModelError> {
    let k = config.model.dim;
    let dense = use_dense_reference(problem.n_movies(), config)?;
    let Some(dense) = dense else { return Ok(None) };
    if !dense && auto_skips_reference(problem.n_movies(), config).is_some() {
        return Ok(None);
    }
    Ok(Some(if dense {
        dense_reference(problem, k)?
    } else {
        subspace_reference(problem, k, config.subspace_max_iter, config.subspace_tol, config.seed)?
    }))
}

/// Whether the reference is dense (`Some(true)`), subspace (`Some(false)`) or none, for `movies`
/// movies; a dense reference whose M x M matrices exceed the available memory is refused
/// before anything is allocated.
fn use_dense_reference(movies: usize, config: &Config) -> Result<Option<bool>, ModelError> {
    let dense = match config.reference {
        ReferenceChoice::None => return Ok(None),
        ReferenceChoice::Dense => true,
        ReferenceChoice::Subspace => false,
        ReferenceChoice::Auto => movies <= config.dense_limit,
    };
    if dense {
        let what = format!("the dense P1 reference ({movies} x {movies} f64; use reference = \"subspace\")");
        reelvec_engine::memory::ensure_fits(&what, dense_reference_bytes(movies))?;
    }
    Ok(Some(dense))
}

/// Why `auto` skips the reference for `movies` movies (None: it computes one).
pub fn auto_skips_reference(movies: usize, config: &Config) -> Option<String> {
    if config.reference != ReferenceChoice::Auto || movies <= config.dense_limit {
        return None;
    }
    let block = (2 * config.model.dim + 10) as f64;
    let work = movies as f64 * block * block;
    (work > config.auto_reference_max_work).then(|| {
        format!(
            "reference skipped: subspace iteration at M = {movies}, k = {} would do {work:.2e} work per \
             iteration (auto limit {:.0e}); set reference = \"subspace\" to compute it",
            config.model.dim, config.auto_reference_max_work
        )
    })
}

/// Runs P1 on `ds` on the CPU.
pub fn run(ds: &Dataset, config: &Config) -> Result<Outcome, ModelError> {
    run_on(ds, config, Device::Cpu)
}

/// Runs P1 on `ds`, training on `device` ([`fit`] on the CPU, [`fit_gpu`] on a CUDA device);
/// the reference, the figures and the neighbours are computed on the CPU from the trained factors.
pub fn run_on(ds: &Dataset, config: &Config, device: Device) -> Result<Outcome, ModelError> {
    config.validate()?;
    let movies = ds.movies.len();
    let k = config.model.dim as u128;
    // Factors, gradient and Adam's moments, and the cost's U x k and M x k scratch.
    let what = format!("P1 factors ({movies} movies x k = {k})");
    check_tables_fit(&what, (movies as u128 * 5 + ds.users.len() as u128) * k, 1)?;
    use_dense_reference(movies, config)?;
    let likes =
        LikeMatrix::from_ratings(&ds.ratings, ds.users.len(), ds.movies.len(), config.model.like_threshold)?;
    if likes.nnz() == 0 {
        return Err(ModelError::InvalidData(format!(
            "P1: no rating reaches the like threshold {}",
            config.model.like_threshold
        )));
    }
    let (users, nnz) = (likes.n_users(), likes.nnz());
    let problem = CoocProblem::new(likes);
    let log_every = config.log_every;
    let mask = config.model.mask_diagonal;
    let log = |step: usize, c: &CostParts| {
        if log_every > 0 && step.is_multiple_of(log_every) {
            tracing::info!(step, cost = c.objective(mask), "P1 step");
        }
    };
    let trained = match device {
        Device::Cpu => fit(&problem, &config.model, config.seed, log)?,
        Device::Cuda(_) => {
            let gpu = Gpu::for_device(device)?;
            fit_gpu(&gpu, &problem, &config.model, config.seed, log)?
        }
    };
    let started = Instant::now();
    let reference = reference(&problem, config)?;
    let reference_seconds = started.elapsed().as_secs_f64();
    let k = config.model.dim;
    let reference_masked_cost = reference
        .as_ref()
        .map(|r| problem.cost_and_grad(&r.factors, k, true, &mut CoocScratch::default(), None).masked);
    let last = trained.final_cost();
    let final_objective = last.objective(mask);
    let figures = Figures {
        movies: problem.n_movies(),
        users,
        likes: nnz,
        k,
        x0_frobenius_sq: problem.x0_frobenius_sq(),
        final_cost: last.masked,
        final_unmasked_cost: last.unmasked,
        reference_cost: reference.as_ref().map(|r| r.unmasked_cost),
        reference_masked_cost,
        ratio: reference.as_ref().map(|r| {
            let reference_objective =
                if mask { reference_masked_cost.unwrap_or(f64::NAN) } else { r.unmasked_cost };
            final_objective / reference_objective
        }),
        ratio_unmasked: reference.as_ref().map(|r| last.unmasked / r.unmasked_cost),
        ratio_to_reference_masked: reference_masked_cost.map(|c| last.masked / c),
        reference_method: reference.as_ref().map(|r| r.method),
        reference_note: auto_skips_reference(problem.n_movies(), config),
        reference_seconds,
        steps: config.model.steps,
        train_seconds: trained.seconds,
        step_seconds: trained.seconds / config.model.steps.max(1) as f64,
    };
    let titles: Vec<String> = (0..ds.movies.len() as u32).map(|m| ds.title(m)).collect();
    let model = trained.model;
    let neighbours = config
        .neighbours_of
        .iter()
        .filter_map(|q| crate::titles::resolve(&titles, q).ok())
        .map(|q| {
            // A movie nobody liked has no vector and an empty neighbour list (the CLI says so).
            let list = crate::traits::no_vector_as_none(model.nearest_by_cosine(q, config.report_top))?
                .unwrap_or_default();
            Ok((MovieScore::new(ds, q, 1.0), MovieScore::list(ds, &list)))
        })
        .collect::<Result<_, ModelError>>()?;
    Ok(Outcome { model, costs: trained.costs, reference, figures, neighbours })
}

impl Outcome {
    /// Writes the run directory (`movie_factors`, the cost history and the figures).
    pub fn save(
        &self,
        dir: &Path,
        ds: &Dataset,
        config: &Config,
        data_path: Option<&Path>,
    ) -> Result<(), ModelError> {
        checkpoint::save_run(dir, self.model.params(), &self.run_info(ds, config, data_path), None)
    }

    /// The run's `run.json` (no users: P1 has no user side), the cost history and the figures.
    pub fn run_info(&self, ds: &Dataset, config: &Config, data_path: Option<&Path>) -> RunInfo {
        let mut info =
            run_info_for(ds, ModelKind::Cooc, crate::config::to_json(config), config.seed, data_path);
        info.user_raw_ids.clear();
        info.history = serde_json::to_value(&self.costs).unwrap_or_default();
        info.metrics = serde_json::to_value(&self.figures).unwrap_or_default();
        info
    }
}
