//! Full-batch Adam on the P1 factors `V` (M x k), the cost and gradient from [`CoocProblem`].
//!
//! Initialisation is data-scaled: for iid `N(0, s^2)` entries `||V V^T||_F^2 ~ M^2 k s^4`, so
//! `s = init_scale * (||X0||_F^2 / (M^2 k))^{1/4}` starts `V V^T` at the size of `X0`. The
//! learning rate decays linearly to zero over `steps` (Adam at a constant rate keeps jittering
//! around the optimum of a full-batch problem).

use std::time::Instant;

use ndarray::ArrayView2;
use rand::SeedableRng;
use reelvec_engine::{
    Adam, AdamConfig, GradKind, Grads, Init, Optimizer, ParamStore, Schedule, TableId, DIVERGENCE_FACTOR,
};
use serde::{Deserialize, Serialize};

use super::{CoocProblem, CoocScratch, CostParts};
use crate::traits::ItemEmbeddings;
use crate::ModelError;

/// Name of the factor table in checkpoints.
pub const FACTOR_TABLE: &str = "movie_factors";

/// Hyperparameters of the P1 factorisation.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CoocConfig {
    /// Rank `k` (20).
    pub dim: usize,
    /// A rating at or above this is a like (4).
    pub like_threshold: f32,
    /// Full-batch Adam steps (1500).
    pub steps: usize,
    /// Adam learning rate at step 0 (0.2), decaying linearly to 0 when `lr_decay`.
    pub lr: f32,
    /// Linear decay of the learning rate to zero over `steps` (true).
    pub lr_decay: bool,
    /// Optimise the protocol's cost over `i != j` (true) or the unmasked `||V V^T - X0||_F^2`.
    pub mask_diagonal: bool,
    /// Multiplier of the data-scaled initial standard deviation (1).
    pub init_scale: f32,
}

impl Default for CoocConfig {
    fn default() -> Self {
        Self {
            dim: 20,
            like_threshold: 4.0,
            steps: 1500,
            lr: 0.2,
            lr_decay: true,
            mask_diagonal: true,
            init_scale: 1.0,
        }
    }
}

/// The trained factors.
#[derive(Debug, Clone)]
pub struct CoocModel {
    params: ParamStore,
    table: TableId,
}

impl CoocModel {
    /// Wraps parameters holding a `movie_factors` table.
    pub fn new(params: ParamStore) -> Result<Self, ModelError> {
        let table = params
            .id(FACTOR_TABLE)
            .ok_or_else(|| ModelError::InvalidData(format!("cooc table `{FACTOR_TABLE}` missing")))?;
        Ok(Self { params, table })
    }

    /// The parameters (for checkpoints).
    pub fn params(&self) -> &ParamStore {
        &self.params
    }

    /// `V`, row-major M x k.
    pub fn factors(&self) -> &[f32] {
        &self.params.get(self.table).data
    }
}

impl ItemEmbeddings for CoocModel {
    fn item_embeddings(&self) -> ArrayView2<'_, f32> {
        let t = self.params.get(self.table);
        ArrayView2::from_shape((t.rows, t.cols), &t.data).expect("table shape is rows x cols")
    }
}

/// A finished fit.
#[derive(Debug, Clone)]
pub struct CoocFit {
    /// The factors.
    pub model: CoocModel,
    /// Costs before each step, then the final cost (len = steps + 1).
    pub costs: Vec<CostParts>,
    /// Wall time of the optimisation.
    pub seconds: f64,
}

impl CoocFit {
    /// The cost after the last step.
    pub fn final_cost(&self) -> CostParts {
        *self.costs.last().expect("costs hold at least the final cost")
    }
}

/// Adds a data-scaled `movie_factors` table to `params`.
pub fn init_factors(
    problem: &CoocProblem,
    config: &CoocConfig,
    seed: u64,
    params: &mut ParamStore,
) -> Result<TableId, ModelError> {
    let (m, k) = (problem.n_movies(), config.dim);
    if k == 0 || m == 0 {
        return Err(ModelError::InvalidConfig(format!(
            "cooc needs dim > 0 and movies > 0 (dim {k}, movies {m})"
        )));
    }
    let x = problem.x0_frobenius_sq().max(1.0);
    let std = config.init_scale * (x / ((m * m * k) as f64)).powf(0.25) as f32;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    Ok(params.add(FACTOR_TABLE, m, k, GradKind::Dense, Init::Normal { mean: 0.0, std }, &mut rng)?)
}

/// Trains `V` by full-batch Adam; `on_step(step, cost)` sees each step's cost (before the step).
pub fn fit(
    problem: &CoocProblem,
    config: &CoocConfig,
    seed: u64,
    mut on_step: impl FnMut(usize, &CostParts),
) -> Result<CoocFit, ModelError> {
    if !(config.lr > 0.0 && config.lr.is_finite()) {
        return Err(ModelError::InvalidConfig(format!("cooc lr must be > 0 (got {})", config.lr)));
    }
    let k = config.dim;
    let mut params = ParamStore::new();
    let table = init_factors(problem, config, seed, &mut params)?;
    let mut grads = Grads::zeros_like(&params);
    let mut adam = Adam::new(AdamConfig::default());
    let schedule = if config.lr_decay {
        Schedule::LinearDecay { total_steps: config.steps as u64 }
    } else {
        Schedule::Constant
    };
    let mut scratch = CoocScratch::default();
    let mut costs = Vec::with_capacity(config.steps + 1);
    let mut reference: Option<f64> = None;
    let start = Instant::now();
    for step in 0..config.steps {
        let cost = problem.cost_and_grad(
            &params.get(table).data,
            k,
            config.mask_diagonal,
            &mut scratch,
            Some(grads.get_mut(table).all_mut()),
        );
        if !cost.masked.is_finite() || !grads.all_finite() {
            return Err(ModelError::Engine(reelvec_engine::EngineError::Diverged {
                epoch: 0,
                step,
                what: format!("cooc cost {} or its gradient is not finite", cost.masked),
            }));
        }
        let objective = cost.objective(config.mask_diagonal);
        let reference = *reference.get_or_insert(objective.max(problem.x0_frobenius_sq()));
        if objective > DIVERGENCE_FACTOR * reference {
            return Err(ModelError::Engine(reelvec_engine::EngineError::Diverged {
                epoch: 0,
                step,
                what: format!(
                    "the cooc cost {objective:.4e} exceeds {DIVERGENCE_FACTOR} x the reference {reference:.4e} \
                     (the larger of the first step's cost and ||X0||^2, the cost of V = 0)"
                ),
            }));
        }
        on_step(step, &cost);
        costs.push(cost);
        adam.step(&mut params, &grads, config.lr * schedule.factor(step as u64));
        reelvec_engine::step_hook::after_step(step as u64 + 1, config.steps as u64)?;
    }
    let last = problem.cost_and_grad(&params.get(table).data, k, config.mask_diagonal, &mut scratch, None);
    costs.push(last);
    let seconds = start.elapsed().as_secs_f64();
    Ok(CoocFit { model: CoocModel { params, table }, costs, seconds })
}
