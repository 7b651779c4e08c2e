//! `bpr`: Bayesian personalised ranking (Rendle, Freudenthaler, Gantner, Schmidt-Thieme 2009),
//! matrix factorisation with a movie bias trained on sampled (user, positive, negative) triples
//! through reelvec-engine's [`Trainer`] and optimizers.
//!
//! **Loss.** A training unit is one interaction `(u, i)`; each epoch it is paired with a negative
//! movie `j` the user has not interacted with. With `x_uij = p_u . (q_i - q_j) + b_i - b_j`, the
//! unit's loss is `-ln sigma(x_uij) + lambda (|p_u|^2 + |q_i|^2 + |q_j|^2 + b_i^2 + b_j^2)` (the
//! L2 term on the rows the triple touches, as implicit's BPR applies it), and a batch's loss is
//! the mean over its units. With `g = -sigma(-x) / B` for a batch of `B` units:
//!
//! `dp_u = g (q_i - q_j) + 2 lambda p_u / B`, `dq_i = g p_u + 2 lambda q_i / B`,
//! `dq_j = -g p_u + 2 lambda q_j / B`, `db_i = g + 2 lambda b_i / B`, `db_j = -g + 2 lambda b_j / B`
//! (checked against finite differences by reelvec-engine's `gradcheck`).
//!
//! **Negatives.** `negatives = "uniform"` draws `j` uniformly from the catalogue,
//! `"popularity"` in proportion to `count_j^0.75` (training counts; item2vec's
//! [`UnigramSampler`]), each redrawn while it is one of the user's movies (at most
//! [`MAX_REDRAWS`] times; a user with nearly every movie may then keep a positive). A draw is
//! a function of `(seed, epoch, unit)` only (SplitMix64 streams), so the same unit gets a new
//! negative each epoch and the fit is bitwise identical for any thread count (the objective runs
//! serially, as MF's does; the optimizers are element-wise).
//!
//! Scores are `p_u . q_j + b_j` through reelvec-metrics' [`FactorScores`]; item embeddings are
//! the movie factors.

use std::sync::atomic::{AtomicU64, Ordering};

use ndarray::{ArrayView1, ArrayView2, ArrayViewMut2};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use reelvec_engine::memory::{ensure_fits, f32_bytes};
use reelvec_engine::trainer::{BatchLoss, Objective, TrainConfig, Trainer};
use reelvec_engine::{AdamConfig, GradKind, Grads, Init, OptimizerConfig, ParamStore, SgdConfig, TableId};
use reelvec_metrics::{FactorScores, ItemScorer, MetricsError, RatedItems};

use super::{Interactions, ParamReader, Ranker, RankerKind};
use crate::item2vec::negative::{sigmoid, softplus, SplitMix64};
use crate::item2vec::UnigramSampler;
use crate::mf::dot;
use crate::ModelError;

/// Redraws of a negative that turned out to be one of the user's movies.
pub const MAX_REDRAWS: usize = 32;

/// The parameters of [`Bpr`].
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct BprParams {
    /// Factors per user and movie (default 64).
    pub factors: usize,
    /// Passes over the interactions (default 30).
    pub epochs: usize,
    /// Learning rate (default 0.003: the best of 0.003, 0.01 on ml-100k's temporal holdout).
    pub lr: f32,
    /// Interactions per optimizer step (default 256).
    pub batch_size: usize,
    /// L2 weight `lambda` on the rows a triple touches (default 1e-4).
    pub regularization: f32,
    /// Negative sampling: "uniform" (default) or "popularity" (count^0.75).
    pub negatives: &'static str,
    /// The engine optimizer: "auto" (default: Adam, lazy on large catalogues), "adam",
    /// "lazy_adam" or "sgd".
    pub optimizer: &'static str,
    /// Standard deviation of the normal initialisation of the factors (default 0.1).
    pub init_std: f32,
}

impl Default for BprParams {
    fn default() -> Self {
        BprParams {
            factors: 64,
            epochs: 30,
            lr: 0.003,
            batch_size: 256,
            regularization: 1e-4,
            negatives: "uniform",
            optimizer: "auto",
            init_std: 0.1,
        }
    }
}

impl BprParams {
    /// The defaults overridden by a JSON object (every field by name).
    pub fn from_json(params: &serde_json::Value) -> Result<Self, ModelError> {
        let r = ParamReader::new(
            RankerKind::Bpr,
            params,
            &[
                "factors",
                "epochs",
                "lr",
                "batch_size",
                "regularization",
                "negatives",
                "optimizer",
                "init_std",
            ],
        )?;
        let d = Self::default();
        let positive = |x: f64| x > 0.0;
        Ok(BprParams {
            factors: r.int("factors", d.factors, 1, 65536)?,
            epochs: r.int("epochs", d.epochs, 1, 1_000_000)?,
            lr: r.num("lr", f64::from(d.lr), positive, "a number > 0")? as f32,
            batch_size: r.int("batch_size", d.batch_size, 1, u32::MAX as usize)?,
            regularization: r.num(
                "regularization",
                f64::from(d.regularization),
                |x| x >= 0.0,
                "a number >= 0",
            )? as f32,
            negatives: r.choice("negatives", d.negatives, &["uniform", "popularity"])?,
            optimizer: r.choice("optimizer", d.optimizer, &["auto", "adam", "lazy_adam", "sgd"])?,
            init_std: r.num("init_std", f64::from(d.init_std), positive, "a number > 0")? as f32,
        })
    }

    fn optimizer_config(&self) -> OptimizerConfig {
        match self.optimizer {
            "adam" => OptimizerConfig::Adam(AdamConfig::default()),
            "lazy_adam" => OptimizerConfig::LazyAdam(AdamConfig::default()),
            "sgd" => OptimizerConfig::Sgd(SgdConfig::default()),
            _ => OptimizerConfig::Auto(AdamConfig::default()),
        }
    }
}

/// The tables of a BPR model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct BprTables {
    pub(super) user_factors: TableId,
    pub(super) movie_factors: TableId,
    pub(super) movie_bias: TableId,
}

/// Where negatives come from.
#[derive(Debug, Clone, PartialEq)]
enum NegativeSampler {
    Uniform(usize),
    Popularity(UnigramSampler),
}

/// The BPR objective over one training set: units are interactions (see the module doc).
#[derive(Debug)]
pub struct BprObjective<'a> {
    by_user: &'a RatedItems,
    /// The user of each interaction (unit).
    unit_user: Vec<u32>,
    sampler: NegativeSampler,
    regularization: f32,
    tables: BprTables,
    seed: u64,
    /// The epoch whose negatives are drawn (advanced by the fit after every epoch).
    epoch: AtomicU64,
}

impl BprObjective<'_> {
    /// The negative of `unit` (user `u`) in the current epoch.
    fn negative(&self, unit: u32, u: u32) -> u32 {
        let positives = self.by_user.row(u);
        let mut s = SplitMix64::stream(self.seed, self.epoch.load(Ordering::Relaxed), u64::from(unit));
        let mut j = 0;
        for _ in 0..=MAX_REDRAWS {
            j = match &self.sampler {
                NegativeSampler::Uniform(n) => (s.next_f64() * *n as f64) as u32,
                NegativeSampler::Popularity(p) => p.token_for(s.next_f64()),
            };
            if positives.binary_search(&j).is_err() {
                break;
            }
        }
        j
    }
}

impl Objective for BprObjective<'_> {
    fn train_units(&self) -> usize {
        self.unit_user.len()
    }

    /// See the module doc for the derivation.
    fn loss_and_grad(&self, params: &ParamStore, units: &[u32], grads: &mut Grads) -> BatchLoss {
        let t = self.tables;
        let inv_b = 1.0 / units.len().max(1) as f32;
        let reg2 = 2.0 * self.regularization * inv_b;
        let (pf, qf, bias) =
            (params.get(t.user_factors), params.get(t.movie_factors), params.get(t.movie_bias));
        let k = pf.cols;
        let mut diff = vec![0.0f32; k];
        let mut sum = 0.0f64;
        for &unit in units {
            let u = self.unit_user[unit as usize];
            let i = self.by_user.indices()[unit as usize];
            let j = self.negative(unit, u);
            let (p, qi, qj) = (pf.row(u as usize), qf.row(i as usize), qf.row(j as usize));
            let (bi, bj) = (bias.data[i as usize], bias.data[j as usize]);
            for ((d, &a), &b) in diff.iter_mut().zip(qi).zip(qj) {
                *d = a - b;
            }
            let x = dot(p, &diff) + bi - bj;
            let l2 = dot(p, p) + dot(qi, qi) + dot(qj, qj) + bi * bi + bj * bj;
            sum += f64::from(softplus(-x)) + f64::from(self.regularization * l2);
            let g = -sigmoid(-x) * inv_b;
            for ((gp, &d), &pv) in
                grads.get_mut(t.user_factors).row_mut(u as usize).iter_mut().zip(&diff).zip(p)
            {
                *gp += g * d + reg2 * pv;
            }
            let gq = grads.get_mut(t.movie_factors);
            for ((gv, &pv), &qv) in gq.row_mut(i as usize).iter_mut().zip(p).zip(qi) {
                *gv += g * pv + reg2 * qv;
            }
            for ((gv, &pv), &qv) in gq.row_mut(j as usize).iter_mut().zip(p).zip(qj) {
                *gv += -g * pv + reg2 * qv;
            }
            let gb = grads.get_mut(t.movie_bias);
            gb.row_mut(i as usize)[0] += g + reg2 * bi;
            gb.row_mut(j as usize)[0] += -g + reg2 * bj;
        }
        BatchLoss::new(sum, units.len() as u64)
    }

    fn validation_loss(&self, _params: &ParamStore) -> Option<BatchLoss> {
        None
    }

    fn loss_name(&self) -> &'static str {
        "BPR loss (-ln sigmoid + L2)"
    }

    /// `ln 2`: an uninformed model scores every pair alike.
    fn loss_baseline(&self) -> Option<f64> {
        Some(std::f64::consts::LN_2)
    }

    /// A unit touches one user row and two movie rows.
    fn rows_per_unit(&self) -> Option<usize> {
        Some(2)
    }
}

/// A fitted BPR model: its engine tables and the parameters used.
#[derive(Debug, Clone, PartialEq)]
pub struct Bpr {
    pub(super) params: BprParams,
    pub(super) store: ParamStore,
    pub(super) tables: BprTables,
}

fn view(store: &ParamStore, id: TableId) -> ArrayView2<'_, f32> {
    let t = store.get(id);
    ArrayView2::from_shape((t.rows, t.cols), &t.data).unwrap_or_else(|_| unreachable!("rows x cols"))
}

fn scores_of(store: &ParamStore, t: BprTables) -> Result<FactorScores<'_>, MetricsError> {
    FactorScores::new(view(store, t.user_factors), view(store, t.movie_factors))?
        .with_item_bias(ArrayView1::from(&store.get(t.movie_bias).data[..]))
}

impl Bpr {
    /// Fits BPR on `train` (see the module doc); `seed` fixes the initialisation, the shuffles and
    /// the negatives.
    pub fn fit(train: Interactions<'_>, params: &serde_json::Value, seed: u64) -> Result<Self, ModelError> {
        Self::fit_observed(train, params, seed, |_, _| {})
    }

    /// [`Bpr::fit`], calling `after_epoch(epoch, scores)` after each epoch (0-based) with the
    /// current model's scores.
    pub fn fit_observed(
        train: Interactions<'_>,
        params: &serde_json::Value,
        seed: u64,
        mut after_epoch: impl FnMut(usize, &FactorScores<'_>) + Send,
    ) -> Result<Self, ModelError> {
        let params = BprParams::from_json(params)?;
        let (n_users, n_items, k) = (train.n_users(), train.n_items, params.factors);
        if train.nnz() == 0 || n_items < 2 {
            return Err(ModelError::InvalidData(format!(
                "bpr needs interactions and at least 2 movies ({} interactions, {n_items} movies)",
                train.nnz()
            )));
        }
        // Tables, gradients and two Adam moments.
        ensure_fits(
            &format!("bpr factors [{n_users} + {n_items}, {k}]"),
            f32_bytes(((n_users + n_items) * (k + 1)) as u128, 4),
        )?;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut store = ParamStore::new();
        let normal = Init::Normal { mean: 0.0, std: params.init_std };
        let tables = BprTables {
            user_factors: store.add("user_factors", n_users, k, GradKind::SparseRows, normal, &mut rng)?,
            movie_factors: store.add("movie_factors", n_items, k, GradKind::SparseRows, normal, &mut rng)?,
            movie_bias: store.add("movie_bias", n_items, 1, GradKind::SparseRows, Init::Zeros, &mut rng)?,
        };
        let sampler = match params.negatives {
            "popularity" => {
                let counts: Vec<u64> =
                    train.by_user.movie_counts(n_items)?.into_iter().map(u64::from).collect();
                NegativeSampler::Popularity(
                    UnigramSampler::new(&counts, 0.75)
                        .ok_or_else(|| ModelError::InvalidData("bpr: no movie has an interaction".into()))?,
                )
            }
            _ => NegativeSampler::Uniform(n_items),
        };
        let ptr = train.by_user.indptr();
        let mut unit_user = Vec::with_capacity(train.nnz());
        for u in 0..n_users {
            unit_user.extend(std::iter::repeat_n(u as u32, ptr[u + 1] - ptr[u]));
        }
        let objective = BprObjective {
            by_user: train.by_user,
            unit_user,
            sampler,
            regularization: params.regularization,
            tables,
            seed,
            epoch: AtomicU64::new(0),
        };
        let config = TrainConfig {
            epochs: params.epochs,
            batch_size: params.batch_size,
            seed,
            lr: params.lr,
            optimizer: params.optimizer_config(),
            quiet: true,
            ..TrainConfig::default()
        };
        let mut observer_error = None;
        Trainer::new(config).fit_with(&objective, &mut store, |stats, store| {
            objective.epoch.store(stats.epoch as u64 + 1, Ordering::Relaxed);
            match scores_of(store, tables) {
                Ok(scores) => after_epoch(stats.epoch, &scores),
                Err(e) => observer_error = Some(e),
            }
        })?;
        if let Some(e) = observer_error {
            return Err(e.into());
        }
        Ok(Bpr { params, store, tables })
    }

    /// The parameters used.
    pub fn params_used(&self) -> BprParams {
        self.params
    }

    /// User factors (`n_users x factors`).
    pub fn user_factors(&self) -> ArrayView2<'_, f32> {
        view(&self.store, self.tables.user_factors)
    }

    /// Movie factors (`n_items x factors`).
    pub fn item_factors(&self) -> ArrayView2<'_, f32> {
        view(&self.store, self.tables.movie_factors)
    }

    /// Movie biases.
    pub fn item_bias(&self) -> &[f32] {
        &self.store.get(self.tables.movie_bias).data
    }

    /// Every table (what a checkpoint saves).
    pub fn store(&self) -> &ParamStore {
        &self.store
    }
}

impl ItemScorer for Bpr {
    fn n_users(&self) -> usize {
        self.store.get(self.tables.user_factors).rows
    }

    fn n_items(&self) -> usize {
        self.store.get(self.tables.movie_factors).rows
    }

    /// `p_u . q_j + b_j` through reelvec-metrics' [`FactorScores`].
    fn score_block(&self, users: &[u32], out: ArrayViewMut2<'_, f32>) -> Result<(), MetricsError> {
        scores_of(&self.store, self.tables)?.score_block(users, out)
    }
}

impl Ranker for Bpr {
    fn kind(&self) -> RankerKind {
        RankerKind::Bpr
    }

    fn params(&self) -> serde_json::Value {
        serde_json::to_value(self.params).unwrap_or_default()
    }

    fn item_embeddings(&self) -> Option<ArrayView2<'_, f32>> {
        Some(self.item_factors())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;
    use rand::Rng;

    /// 40 users in two taste groups (movies 0..10 and 10..20): 6 training movies of their group
    /// each, and one more of their group held out.
    fn planted() -> (RatedItems, Vec<u32>) {
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let mut rows = Vec::new();
        let mut held = Vec::new();
        for u in 0..40u32 {
            let base = if u % 2 == 0 { 0 } else { 10 };
            let mut picked: Vec<u32> = Vec::new();
            while picked.len() < 7 {
                let j = base + rng.random_range(0..10u32);
                if !picked.contains(&j) {
                    picked.push(j);
                }
            }
            held.push(picked.pop().unwrap());
            rows.push(picked);
        }
        (RatedItems::from_rows(&rows), held)
    }

    /// AUC of the held-out movie against every movie the user has neither trained on nor held out
    /// (a model that only knows the groups reaches about (10 + 3 / 2) / 13 = 0.88).
    fn auc(scores: &dyn ItemScorer, rows: &RatedItems, held: &[u32]) -> f64 {
        let (mut wins, mut pairs) = (0.0, 0.0);
        let mut out = Array2::zeros((1, scores.n_items()));
        for (u, &h) in held.iter().enumerate() {
            scores.score_block(&[u as u32], out.view_mut()).unwrap();
            for j in 0..scores.n_items() as u32 {
                if j != h && rows.row(u as u32).binary_search(&j).is_err() {
                    pairs += 1.0;
                    wins += match out[[0, h as usize]].total_cmp(&out[[0, j as usize]]) {
                        std::cmp::Ordering::Greater => 1.0,
                        std::cmp::Ordering::Equal => 0.5,
                        std::cmp::Ordering::Less => 0.0,
                    };
                }
            }
        }
        wins / pairs
    }

    #[test]
    fn held_out_auc_rises_on_planted_tastes_for_both_samplers() {
        let (rows, held) = planted();
        let train = Interactions::new(&rows, 20).unwrap();
        for negatives in ["uniform", "popularity"] {
            let mut aucs = Vec::new();
            let params = serde_json::json!({"factors": 8, "epochs": 40, "batch_size": 16, "lr": 0.003, "regularization": 0.01, "negatives": negatives});
            let model = Bpr::fit_observed(train, &params, 3, |_, s| aucs.push(auc(s, &rows, &held))).unwrap();
            assert_eq!(aucs.len(), 40);
            assert!(aucs[0] < 0.75, "{negatives}: {aucs:?}");
            assert!(aucs[39] > 0.85 && aucs[39] > aucs[0] + 0.2, "{negatives}: {aucs:?}");
            assert_eq!(auc(&model, &rows, &held), aucs[39]);
        }
    }

    #[test]
    fn gradient_matches_finite_differences() {
        let (rows, _) = planted();
        let train = Interactions::new(&rows, 20).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let mut store = ParamStore::new();
        let init = Init::Normal { mean: 0.0, std: 0.5 };
        let tables = BprTables {
            user_factors: store.add("user_factors", 40, 3, GradKind::SparseRows, init, &mut rng).unwrap(),
            movie_factors: store.add("movie_factors", 20, 3, GradKind::SparseRows, init, &mut rng).unwrap(),
            movie_bias: store.add("movie_bias", 20, 1, GradKind::SparseRows, init, &mut rng).unwrap(),
        };
        let ptr = train.by_user.indptr();
        let unit_user = (0..40).flat_map(|u| std::iter::repeat_n(u as u32, ptr[u + 1] - ptr[u])).collect();
        let objective = BprObjective {
            by_user: &rows,
            unit_user,
            sampler: NegativeSampler::Uniform(20),
            regularization: 0.05,
            tables,
            seed: 1,
            epoch: AtomicU64::new(2),
        };
        let units: Vec<u32> = (0..240).step_by(7).collect();
        reelvec_engine::gradcheck::check(&objective, &store, &units, 1e-2, 2e-2).unwrap();
        // Negatives never hit the user's movies and change with the epoch.
        let first: Vec<u32> =
            units.iter().map(|&t| objective.negative(t, objective.unit_user[t as usize])).collect();
        for (&t, &j) in units.iter().zip(&first) {
            assert!(rows.row(objective.unit_user[t as usize]).binary_search(&j).is_err());
        }
        objective.epoch.store(3, Ordering::Relaxed);
        let next: Vec<u32> =
            units.iter().map(|&t| objective.negative(t, objective.unit_user[t as usize])).collect();
        assert_ne!(first, next);
    }

    #[test]
    fn fit_is_bitwise_identical_for_1_and_2_threads_and_bad_values_are_named() {
        let (rows, _) = planted();
        let train = Interactions::new(&rows, 20).unwrap();
        let params = serde_json::json!({"factors": 4, "epochs": 3, "negatives": "popularity"});
        let fit = |t| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(t).build().unwrap();
            pool.install(|| Bpr::fit(train, &params, 4).unwrap())
        };
        assert_eq!(fit(1), fit(2));
        let err = Bpr::fit(train, &serde_json::json!({"negatives": "hard"}), 1).unwrap_err();
        assert!(err.to_string().contains("bpr.negatives"), "{err}");
        assert_eq!(fit(1).item_embeddings().unwrap().shape(), &[20, 4]);
    }
}
