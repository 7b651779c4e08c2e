//! The matrix-factorisation family (P2, P3, P4): one model, `x = p_u . q_i (+ b_u + c_i)`,
//! followed by a link `y = link(x)`, trained with MSE through a hand-written backward pass.
//!
//! | protocol | link                          | biases | k  | target                      |
//! |----------|-------------------------------|--------|----|-----------------------------|
//! | P2 `mf`  | `sigmoid_range(x, 0, 5.5)`    | yes    | 50 | rating in stars             |
//! | P3 `sigmoid-mf` | `σ(x)` (= range 0..1)  | yes    | 16 | min-max scaled rating       |
//! | P4 `residual-mf` | identity              | no     | 2  | residual `r - g - ū_u - m̄_i` |
//!
//! Tables (names shared with the PyTorch parity fixtures): `user_factors` (U x k),
//! `movie_factors` (M x k), `user_bias` (U x 1), `movie_bias` (M x 1). All are embeddings with
//! row-sparse gradients.
//!
//! ## Loss and gradient
//!
//! For a batch `B` of rows `(u, i, t)`, with `x = p_u . q_i + b_u + c_i` and `y = link(x)`:
//!
//! ```text
//! L        = (1/|B|) Σ_B (y - t)²                       (PyTorch MSELoss, mean reduction)
//! ∂L/∂y    = 2 (y - t) / |B|
//! ∂y/∂x    = (hi - lo) σ(x) (1 - σ(x))                   sigmoid_range(x, lo, hi) = lo + (hi - lo) σ(x)
//!          = 1                                           identity
//! g        = ∂L/∂y · ∂y/∂x
//! ∂L/∂p_u += g q_i,   ∂L/∂q_i += g p_u,   ∂L/∂b_u += g,   ∂L/∂c_i += g
//! ```
//!
//! (`+=` because a user or movie may appear several times in a batch.) The hot loop allocates
//! nothing: it reads two rows, writes up to four gradient rows.
//!
//! ## Item side features (LightFM's hybrid form)
//!
//! With `model.item_features`, movie `i` with feature ids `F_i` (genres, decade, tags; see
//! reelvec-data's `features`) is scored with `q̃_i = q_i + (1/|F_i|) Σ_{f∈F_i} e_f` and
//! `c̃_i = c_i + (1/|F_i|) Σ_{f∈F_i} d_f` (no mean when `F_i` is empty), where `e`
//! (`feature_factors`, F x k) and `d` (`feature_bias`, F x 1) are learned with the rest. The
//! loss depends on `e_f` only through `q̃_i`, and `∂q̃_i/∂e_f = I/|F_i|`, so
//!
//! ```text
//! ∂L/∂q_i += g p_u,   ∂L/∂e_f += g p_u / |F_i|   (f ∈ F_i)
//! ∂L/∂c_i += g,       ∂L/∂d_f += g / |F_i|       (f ∈ F_i)
//! ∂L/∂p_u += g q̃_i
//! ```
//!
//! (checked by finite differences in the tests). Without features nothing changes, bit for
//! bit. A movie never seen in training (cold start) is scored from its features alone: its id
//! vector and bias are taken as zero ([`fold_item_features`]).
//!
//! Predictions in stars undo the target transform ([`OutputMap`]): P3 unscales the min-max
//! range, P4 adds back the global, user and movie means.

use std::path::Path;

use ndarray::{ArrayView1, ArrayView2};
use rand::Rng;
use reelvec_data::features::ItemFeatures;
use reelvec_data::Ratings;
use reelvec_engine::{BatchLoss, GradKind, Grads, Init, Objective, ParamStore, Table, TableId};
use reelvec_metrics::FactorScores;
use serde::{Deserialize, Serialize};

use crate::checkpoint::{self, require_table, RunInfo};
use crate::{ItemEmbeddings, ModelError, ModelKind, RatingModel};

/// Table name of the user factors `P` (U x k).
pub const USER_FACTORS: &str = "user_factors";
/// Table name of the movie factors `Q` (M x k).
pub const MOVIE_FACTORS: &str = "movie_factors";
/// Table name of the user biases (U x 1).
pub const USER_BIAS: &str = "user_bias";
/// Table name of the movie biases (M x 1).
pub const MOVIE_BIAS: &str = "movie_bias";
/// Fixed table (1 x 2) holding P2's `[lo, hi]` sigmoid range.
pub const Y_RANGE: &str = "y_range";
/// Fixed table (1 x 2) holding P3's min-max `[min, max]` rating range.
pub const RATING_RANGE: &str = "rating_range";
/// Fixed table (1 x 1) holding P4's global mean.
pub const GLOBAL_MEAN: &str = "global_mean";
/// Fixed table (U x 1) holding P4's user residual means.
pub const USER_MEAN: &str = "user_mean";
/// Fixed table (M x 1) holding P4's movie residual means.
pub const MOVIE_MEAN: &str = "movie_mean";

/// Table name of the item feature factors `E` (F x k).
pub const FEATURE_FACTORS: &str = "feature_factors";
/// Table name of the item feature biases (F x 1).
pub const FEATURE_BIAS: &str = "feature_bias";
pub use crate::item_features::ITEM_FEATURE_CSR;

/// The logistic sigmoid `1 / (1 + e^-x)`.
#[inline]
pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// The link from the raw score `x` to the model output `y`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Link {
    /// `y = lo + (hi - lo) σ(x)` (fastai's `sigmoid_range`; P3 is `lo = 0, hi = 1`).
    SigmoidRange {
        /// Output as `x -> -inf`.
        lo: f32,
        /// Output as `x -> +inf`.
        hi: f32,
    },
    /// `y = x`.
    Identity,
}

impl Link {
    /// `(y, dy/dx)` at `x`.
    #[inline]
    pub fn apply(self, x: f32) -> (f32, f32) {
        match self {
            Link::SigmoidRange { lo, hi } => {
                let s = sigmoid(x);
                (s * (hi - lo) + lo, (hi - lo) * s * (1.0 - s))
            }
            Link::Identity => (x, 1.0),
        }
    }
}

/// Shape and form of an MF model.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MfSpec {
    /// Number of users (rows of `user_factors`).
    pub n_users: usize,
    /// Number of movies (rows of `movie_factors`).
    pub n_movies: usize,
    /// Number of factors.
    pub k: usize,
    /// Whether the model has `user_bias` and `movie_bias`.
    pub biases: bool,
    /// The output link.
    pub link: Link,
}

impl MfSpec {
    /// A fresh parameter store: the factor tables from `factor_init`, the bias tables from
    /// `bias_init` (PyTorch's `nn.Embedding` default for all four is N(0, 1)), drawn in the order
    /// user_factors, user_bias, movie_factors, movie_bias (the notebook's construction order).
    pub fn init_params<R: Rng + ?Sized>(
        &self,
        factor_init: Init,
        bias_init: Init,
        rng: &mut R,
    ) -> Result<ParamStore, ModelError> {
        let mut p = ParamStore::new();
        let sparse = GradKind::SparseRows;
        p.add(USER_FACTORS, self.n_users, self.k, sparse, factor_init, rng)?;
        if self.biases {
            p.add(USER_BIAS, self.n_users, 1, sparse, bias_init, rng)?;
        }
        p.add(MOVIE_FACTORS, self.n_movies, self.k, sparse, factor_init, rng)?;
        if self.biases {
            p.add(MOVIE_BIAS, self.n_movies, 1, sparse, bias_init, rng)?;
        }
        Ok(p)
    }

    /// Adds the item feature tables for `n_features` features to `params` (after the others, so
    /// the draws of the id tables are unchanged): `feature_factors` from `factor_init`,
    /// `feature_bias` (with biases) from `bias_init`.
    pub fn add_feature_params<R: Rng + ?Sized>(
        &self,
        params: &mut ParamStore,
        n_features: usize,
        factor_init: Init,
        bias_init: Init,
        rng: &mut R,
    ) -> Result<(), ModelError> {
        let sparse = GradKind::SparseRows;
        params.add(FEATURE_FACTORS, n_features, self.k, sparse, factor_init, rng)?;
        if self.biases {
            params.add(FEATURE_BIAS, n_features, 1, sparse, bias_init, rng)?;
        }
        Ok(())
    }
}

/// The feature table of an MF objective and the ids of its parameter tables.
#[derive(Debug, Clone)]
struct FeatureTables {
    table: ItemFeatures,
    factors: TableId,
    bias: Option<TableId>,
}

impl FeatureTables {
    fn find(params: &ParamStore, spec: &MfSpec, table: ItemFeatures) -> Result<Self, ModelError> {
        if table.n_movies() != spec.n_movies {
            return Err(ModelError::InvalidData(format!(
                "the item feature table has {} movies, the model {}",
                table.n_movies(),
                spec.n_movies
            )));
        }
        let get = |name: &str, cols: usize| -> Result<TableId, ModelError> {
            let id = params.id(name).ok_or_else(|| {
                ModelError::InvalidConfig(format!("MF parameter table `{name}` is missing"))
            })?;
            let t = params.get(id);
            if t.rows != table.n_features() || t.cols != cols {
                return Err(ModelError::InvalidConfig(format!(
                    "MF table `{name}` is [{}, {}], expected [{}, {cols}]",
                    t.rows,
                    t.cols,
                    table.n_features()
                )));
            }
            Ok(id)
        };
        let factors = get(FEATURE_FACTORS, spec.k)?;
        let bias = if spec.biases { Some(get(FEATURE_BIAS, 1)?) } else { None };
        Ok(Self { table, factors, bias })
    }

    /// `q̃_i` into `out` (from `q` = the id vector, or zeros when `q` is `None`) and the
    /// feature part of the bias, `(1/|F_i|) Σ d_f`.
    fn item(&self, params: &ParamStore, i: usize, q: Option<&[f32]>, out: &mut [f32]) -> f32 {
        match q {
            Some(q) => out.copy_from_slice(q),
            None => out.fill(0.0),
        }
        let w = crate::item_features::add_feature_mean(&self.table, i, params.get(self.factors), out);
        match self.bias {
            Some(bias) => {
                self.table.of(i).iter().fold(0.0, |b, &f| b + w * params.get(bias).data[f as usize])
            }
            None => 0.0,
        }
    }
}

/// The store with the effective item tables of a model trained with item features: each
/// `movie_factors` row becomes `q̃_i` and each `movie_bias` row `c̃_i`; a movie whose
/// `seen[i]` is false (never in training) takes its id vector and bias as zero, so its vector
/// comes from its features alone. The feature tables are dropped.
pub fn fold_item_features(
    params: &ParamStore,
    spec: &MfSpec,
    features: &ItemFeatures,
    seen: &[bool],
) -> Result<ParamStore, ModelError> {
    let ft = FeatureTables::find(params, spec, features.clone())?;
    let t = MfTables::find(params, spec)?;
    if seen.len() != spec.n_movies {
        return Err(ModelError::InvalidData("`seen` does not match the movies".into()));
    }
    let mut q = params.get(t.movie_factors).clone();
    let mut c = t.movie_bias.map(|id| params.get(id).clone());
    let mut buf = vec![0.0f32; spec.k];
    for (i, &s) in seen.iter().enumerate() {
        let own = s.then(|| params.get(t.movie_factors).row(i));
        let fb = ft.item(params, i, own, &mut buf);
        q.data[i * spec.k..(i + 1) * spec.k].copy_from_slice(&buf);
        if let Some(c) = c.as_mut() {
            c.data[i] = if s { c.data[i] } else { 0.0 } + fb;
        }
    }
    let mut out = ParamStore::new();
    for table in params.tables() {
        match table.name.as_str() {
            MOVIE_FACTORS => out.insert(q.clone())?,
            MOVIE_BIAS => out.insert(c.clone().unwrap_or_else(|| table.clone()))?,
            FEATURE_FACTORS | FEATURE_BIAS => continue,
            _ => out.insert(table.clone())?,
        };
    }
    Ok(out)
}

/// The ids of the MF tables in a store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MfTables {
    /// `user_factors`.
    pub user_factors: TableId,
    /// `movie_factors`.
    pub movie_factors: TableId,
    /// `user_bias`, when the model has biases.
    pub user_bias: Option<TableId>,
    /// `movie_bias`, when the model has biases.
    pub movie_bias: Option<TableId>,
}

impl MfTables {
    /// Finds the tables of `spec` in `params`, checking their shapes.
    pub fn find(params: &ParamStore, spec: &MfSpec) -> Result<Self, ModelError> {
        let get = |name: &str, rows: usize, cols: usize| -> Result<TableId, ModelError> {
            let id = params.id(name).ok_or_else(|| {
                ModelError::InvalidConfig(format!("MF parameter table `{name}` is missing"))
            })?;
            let t = params.get(id);
            if t.rows != rows || t.cols != cols {
                return Err(ModelError::InvalidConfig(format!(
                    "MF table `{name}` is [{}, {}], expected [{rows}, {cols}]",
                    t.rows, t.cols
                )));
            }
            Ok(id)
        };
        Ok(Self {
            user_factors: get(USER_FACTORS, spec.n_users, spec.k)?,
            movie_factors: get(MOVIE_FACTORS, spec.n_movies, spec.k)?,
            user_bias: if spec.biases { Some(get(USER_BIAS, spec.n_users, 1)?) } else { None },
            movie_bias: if spec.biases { Some(get(MOVIE_BIAS, spec.n_movies, 1)?) } else { None },
        })
    }
}

/// The raw score `x = p_u . q_i (+ b_u + c_i)`.
#[inline]
pub fn raw_score(params: &ParamStore, t: &MfTables, user: u32, movie: u32) -> f32 {
    let (u, i) = (user as usize, movie as usize);
    let p = params.get(t.user_factors).row(u);
    let q = params.get(t.movie_factors).row(i);
    let mut x = dot(p, q);
    if let (Some(ub), Some(mb)) = (t.user_bias, t.movie_bias) {
        x += params.get(ub).data[u] + params.get(mb).data[i];
    }
    x
}

/// Two distinct rows of a row-major buffer, mutably.
#[inline(always)]
pub(crate) fn two_rows_mut(buf: &mut [f32], a: usize, c: usize, v: usize) -> (&mut [f32], &mut [f32]) {
    debug_assert_ne!(a, c);
    if a < c {
        let (lo, hi) = buf.split_at_mut(c * v);
        (&mut lo[a * v..(a + 1) * v], &mut hi[..v])
    } else {
        let (lo, hi) = buf.split_at_mut(a * v);
        (&mut hi[..v], &mut lo[c * v..(c + 1) * v])
    }
}

/// Dot product with eight independent accumulators over `chunks_exact(8)` (vectorises; the
/// summation order differs from a plain left fold only by rounding).
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0.0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    let mut s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (x, y) in ra.iter().zip(rb) {
        s += x * y;
    }
    s
}

/// Rating rows as gathered columns: `(user[r], movie[r]) -> target[r]`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RatingColumns {
    /// Dense user indices.
    pub user: Vec<u32>,
    /// Dense movie indices.
    pub movie: Vec<u32>,
    /// Training targets (stars, scaled stars or residuals).
    pub target: Vec<f32>,
}

impl RatingColumns {
    /// Gathers `rows` of `ratings` (in that order), with `target(row)` as the target.
    pub fn gather(ratings: &Ratings, rows: &[u32], target: impl Fn(usize) -> f32) -> Self {
        Self {
            user: rows.iter().map(|&r| ratings.user[r as usize]).collect(),
            movie: rows.iter().map(|&r| ratings.movie[r as usize]).collect(),
            target: rows.iter().map(|&r| target(r as usize)).collect(),
        }
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.user.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.user.is_empty()
    }

    /// Mean of the squared targets: the MSE of predicting 0, the objectives' divergence baseline.
    pub fn mean_square_target(&self) -> f64 {
        let n = self.target.len().max(1) as f64;
        self.target.iter().map(|&t| f64::from(t) * f64::from(t)).sum::<f64>() / n
    }
}

/// Checks that `cols` (the `what` rows) have equal lengths and in-range indices for `spec`.
pub(crate) fn check_columns(spec: &MfSpec, what: &str, cols: &RatingColumns) -> Result<(), ModelError> {
    if cols.movie.len() != cols.user.len() || cols.target.len() != cols.user.len() {
        return Err(ModelError::InvalidData(format!("{what} columns differ in length")));
    }
    if let Some(&u) = cols.user.iter().find(|&&u| u as usize >= spec.n_users) {
        return Err(ModelError::InvalidData(format!("{what} user index {u} >= {}", spec.n_users)));
    }
    if let Some(&m) = cols.movie.iter().find(|&&m| m as usize >= spec.n_movies) {
        return Err(ModelError::InvalidData(format!("{what} movie index {m} >= {}", spec.n_movies)));
    }
    Ok(())
}

/// MSE of the MF model over rating rows, as an engine [`Objective`] (units = training rows).
#[derive(Debug, Clone)]
pub struct MfObjective {
    spec: MfSpec,
    tables: MfTables,
    train: RatingColumns,
    val: Option<RatingColumns>,
    features: Option<FeatureTables>,
}

impl MfObjective {
    /// An objective over `train` (and `val` for the per-epoch validation loss) for the tables
    /// of `spec` in `params`. Every user and movie index must be in range.
    pub fn new(
        spec: MfSpec,
        params: &ParamStore,
        train: RatingColumns,
        val: Option<RatingColumns>,
    ) -> Result<Self, ModelError> {
        let tables = MfTables::find(params, &spec)?;
        check_columns(&spec, "training", &train)?;
        if let Some(v) = &val {
            check_columns(&spec, "validation", v)?;
        }
        Ok(Self { spec, tables, train, val: val.filter(|v| !v.is_empty()), features: None })
    }

    /// The objective with item side features (see the module doc); `params` must hold the
    /// feature tables ([`MfSpec::add_feature_params`]).
    pub fn with_item_features(
        mut self,
        params: &ParamStore,
        features: ItemFeatures,
    ) -> Result<Self, ModelError> {
        self.features = Some(FeatureTables::find(params, &self.spec, features)?);
        Ok(self)
    }

    /// Whether the objective has item side features.
    pub fn has_item_features(&self) -> bool {
        self.features.is_some()
    }

    /// The item feature table and the ids of the `feature_factors` and `feature_bias` tables,
    /// when the objective has item side features (the GPU twin folds and scatters through them).
    pub(crate) fn item_feature_tables(&self) -> Option<(&ItemFeatures, TableId, Option<TableId>)> {
        self.features.as_ref().map(|ft| (&ft.table, ft.factors, ft.bias))
    }

    /// The raw score, with item features when the objective has them.
    fn score(&self, params: &ParamStore, user: u32, movie: u32, buf: &mut [f32]) -> f32 {
        match &self.features {
            None => raw_score(params, &self.tables, user, movie),
            Some(ft) => {
                let (u, i) = (user as usize, movie as usize);
                let fb = ft.item(params, i, Some(params.get(self.tables.movie_factors).row(i)), buf);
                let mut x = dot(params.get(self.tables.user_factors).row(u), buf);
                if let (Some(ub), Some(mb)) = (self.tables.user_bias, self.tables.movie_bias) {
                    x += params.get(ub).data[u] + params.get(mb).data[i] + fb;
                }
                x
            }
        }
    }

    /// The validation rows, when there are any.
    pub(crate) fn validation(&self) -> Option<&RatingColumns> {
        self.val.as_ref()
    }

    /// The model's spec.
    pub fn spec(&self) -> &MfSpec {
        &self.spec
    }

    /// The training rows.
    pub fn train(&self) -> &RatingColumns {
        &self.train
    }

    /// Sum of squared errors over `rows` of `cols` (no gradient).
    pub fn squared_error(&self, params: &ParamStore, cols: &RatingColumns) -> BatchLoss {
        let mut sum = 0.0f64;
        let mut buf = vec![0.0f32; self.spec.k];
        for r in 0..cols.len() {
            let x = self.score(params, cols.user[r], cols.movie[r], &mut buf);
            let e = self.spec.link.apply(x).0 - cols.target[r];
            sum += f64::from(e * e);
        }
        BatchLoss::new(sum, cols.len() as u64)
    }
}

impl Objective for MfObjective {
    fn train_units(&self) -> usize {
        self.train.len()
    }

    /// See the module doc for the derivation.
    fn loss_and_grad(&self, params: &ParamStore, units: &[u32], grads: &mut Grads) -> BatchLoss {
        if let Some(ft) = &self.features {
            return self.loss_and_grad_features(ft, params, units, grads);
        }
        let t = &self.tables;
        let inv_b = 2.0 / units.len().max(1) as f32;
        let pf = params.get(t.user_factors);
        let qf = params.get(t.movie_factors);
        let mut sum = 0.0f64;
        for &unit in units {
            let r = unit as usize;
            let (u, i) = (self.train.user[r] as usize, self.train.movie[r] as usize);
            let (p, q) = (pf.row(u), qf.row(i));
            let mut x = dot(p, q);
            if let (Some(ub), Some(mb)) = (t.user_bias, t.movie_bias) {
                x += params.get(ub).data[u] + params.get(mb).data[i];
            }
            let (y, dy_dx) = self.spec.link.apply(x);
            let e = y - self.train.target[r];
            sum += f64::from(e * e);
            let g = e * inv_b * dy_dx;
            for (gp, &qv) in grads.get_mut(t.user_factors).row_mut(u).iter_mut().zip(q) {
                *gp += g * qv;
            }
            for (gq, &pv) in grads.get_mut(t.movie_factors).row_mut(i).iter_mut().zip(p) {
                *gq += g * pv;
            }
            if let (Some(ub), Some(mb)) = (t.user_bias, t.movie_bias) {
                grads.get_mut(ub).row_mut(u)[0] += g;
                grads.get_mut(mb).row_mut(i)[0] += g;
            }
        }
        BatchLoss::new(sum, units.len() as u64)
    }

    fn validation_loss(&self, params: &ParamStore) -> Option<BatchLoss> {
        self.val.as_ref().map(|v| self.squared_error(params, v))
    }

    fn loss_name(&self) -> &'static str {
        MSE_NAME
    }

    fn loss_baseline(&self) -> Option<f64> {
        Some(self.train.mean_square_target())
    }

    /// A rating touches one user row and one movie row of each table.
    fn rows_per_unit(&self) -> Option<usize> {
        Some(1)
    }

    /// A rating reads its user's and its movie's rows of each table (the factor tables and the
    /// biases): exactly the rows `loss_and_grad` writes gradients for. With item side features
    /// the feature rows are read too and not named here (false: dense Adam).
    fn mark_rows(&self, units: &[u32], marks: &mut Grads) -> bool {
        if self.features.is_some() {
            return false;
        }
        let t = &self.tables;
        for &unit in units {
            let (u, i) = (self.train.user[unit as usize] as usize, self.train.movie[unit as usize] as usize);
            marks.get_mut(t.user_factors).row_mut(u);
            marks.get_mut(t.movie_factors).row_mut(i);
            if let (Some(ub), Some(mb)) = (t.user_bias, t.movie_bias) {
                marks.get_mut(ub).row_mut(u);
                marks.get_mut(mb).row_mut(i);
            }
        }
        true
    }
}

impl MfObjective {
    /// [`Objective::loss_and_grad`] with item features (module doc, "Item side features").
    fn loss_and_grad_features(
        &self,
        ft: &FeatureTables,
        params: &ParamStore,
        units: &[u32],
        grads: &mut Grads,
    ) -> BatchLoss {
        let t = &self.tables;
        let inv_b = 2.0 / units.len().max(1) as f32;
        let pf = params.get(t.user_factors);
        let qf = params.get(t.movie_factors);
        let mut q = vec![0.0f32; self.spec.k];
        let mut sum = 0.0f64;
        for &unit in units {
            let r = unit as usize;
            let (u, i) = (self.train.user[r] as usize, self.train.movie[r] as usize);
            let p = pf.row(u);
            let fb = ft.item(params, i, Some(qf.row(i)), &mut q);
            let mut x = dot(p, &q);
            if let (Some(ub), Some(mb)) = (t.user_bias, t.movie_bias) {
                x += params.get(ub).data[u] + params.get(mb).data[i] + fb;
            }
            let (y, dy_dx) = self.spec.link.apply(x);
            let e = y - self.train.target[r];
            sum += f64::from(e * e);
            let g = e * inv_b * dy_dx;
            for (gp, &qv) in grads.get_mut(t.user_factors).row_mut(u).iter_mut().zip(&q) {
                *gp += g * qv;
            }
            for (gq, &pv) in grads.get_mut(t.movie_factors).row_mut(i).iter_mut().zip(p) {
                *gq += g * pv;
            }
            let ids = ft.table.of(i);
            let w = if ids.is_empty() { 0.0 } else { 1.0 / ids.len() as f32 };
            for &f in ids {
                for (ge, &pv) in grads.get_mut(ft.factors).row_mut(f as usize).iter_mut().zip(p) {
                    *ge += g * w * pv;
                }
            }
            if let (Some(ub), Some(mb)) = (t.user_bias, t.movie_bias) {
                grads.get_mut(ub).row_mut(u)[0] += g;
                grads.get_mut(mb).row_mut(i)[0] += g;
                if let Some(fbias) = ft.bias {
                    for &f in ids {
                        grads.get_mut(fbias).row_mut(f as usize)[0] += g * w;
                    }
                }
            }
        }
        BatchLoss::new(sum, units.len() as u64)
    }
}

/// The MF loss's label.
pub(crate) const MSE_NAME: &str = "mean squared error";

/// How the model output `y` becomes a rating in stars.
#[derive(Debug, Clone, PartialEq)]
pub enum OutputMap {
    /// `stars = y` (P2).
    Stars,
    /// `stars = min + y (max - min)` (P3's min-max scaling undone).
    MinMax {
        /// Smallest rating of the data.
        min: f32,
        /// Largest rating of the data.
        max: f32,
    },
    /// `stars = clamp(global + user[u] + movie[i] + y, scale)` (P4's residual means added back;
    /// an unbounded sum, so clipped to the data's rating scale: P4 predicted up to 8.7 stars).
    Residual {
        /// Global mean rating.
        global: f32,
        /// Mean of `r - global` per user.
        user: Vec<f32>,
        /// Mean of `r - global` per movie.
        movie: Vec<f32>,
        /// The rating scale `[lowest, highest]` predictions are clipped to (`None`: unclipped,
        /// runs saved without a scale).
        scale: Option<[f32; 2]>,
    },
}

impl OutputMap {
    /// Stars from output `y` of dense `(user, movie)`.
    #[inline]
    pub fn stars(&self, y: f32, user: u32, movie: u32) -> f32 {
        match self {
            OutputMap::Stars => y,
            OutputMap::MinMax { min, max } => min + y * (max - min),
            OutputMap::Residual { global, user: ua, movie: ma, .. } => {
                self.clip(global + ua[user as usize] + ma[movie as usize] + y)
            }
        }
    }

    /// Stars clipped to the rating scale where the map has one (P4); the other maps are bounded
    /// by their link already. The one place predictions are held to the scale.
    #[inline]
    pub fn clip(&self, stars: f32) -> f32 {
        match self {
            OutputMap::Residual { scale: Some([lo, hi]), .. } => stars.clamp(*lo, *hi),
            _ => stars,
        }
    }
}

/// The three members of the MF family, independent of how the CLI names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MfVariant {
    /// Biased MF with a sigmoid range on the stars (P2, `mf`).
    Biased,
    /// Sigmoid dot product on min-max scaled ratings (P3, `sigmoid-mf`).
    Sigmoid,
    /// MF of the residuals after global, user and movie means (P4, `residual-mf`).
    Residual,
}

impl MfVariant {
    /// The CLI's and the run directory's name of the variant (the one place the two meet).
    pub fn kind(self) -> ModelKind {
        match self {
            MfVariant::Biased => ModelKind::Mf,
            MfVariant::Sigmoid => ModelKind::SigmoidMf,
            MfVariant::Residual => ModelKind::ResidualMf,
        }
    }

    /// The variant a model kind names, `None` for the item models.
    pub fn from_kind(kind: ModelKind) -> Option<Self> {
        match kind {
            ModelKind::Mf => Some(MfVariant::Biased),
            ModelKind::SigmoidMf => Some(MfVariant::Sigmoid),
            ModelKind::ResidualMf => Some(MfVariant::Residual),
            _ => None,
        }
    }
}

/// A trained MF model: parameters plus how outputs map to stars.
#[derive(Debug, Clone)]
pub struct MfModel {
    variant: MfVariant,
    spec: MfSpec,
    params: ParamStore,
    tables: MfTables,
    output: OutputMap,
    side: Option<ItemSide>,
}

/// The item side of a model trained with item features: the feature table and the learned
/// feature tables (`feature_factors`, `feature_bias`), kept beside the folded movie tables.
#[derive(Debug, Clone)]
struct ItemSide {
    features: ItemFeatures,
    tables: Vec<Table>,
}

impl MfModel {
    /// Wraps trained parameters.
    pub fn new(
        variant: MfVariant,
        spec: MfSpec,
        params: ParamStore,
        output: OutputMap,
    ) -> Result<Self, ModelError> {
        let tables = MfTables::find(&params, &spec)?;
        if let OutputMap::Residual { user, movie, .. } = &output {
            if user.len() != spec.n_users || movie.len() != spec.n_movies {
                return Err(ModelError::InvalidConfig("residual means do not match the table sizes".into()));
            }
        }
        Ok(Self { variant, spec, params, tables, output, side: None })
    }

    /// Wraps parameters trained with item features (`params` holds the feature tables): the
    /// movie tables become the effective ones of [`fold_item_features`] (a movie whose
    /// `seen[i]` is false, never in training, from its features alone), so every query scores
    /// through them unchanged; the feature table and feature tables are kept for the checkpoint.
    pub fn with_item_features(
        variant: MfVariant,
        spec: MfSpec,
        params: &ParamStore,
        output: OutputMap,
        features: ItemFeatures,
        seen: &[bool],
    ) -> Result<Self, ModelError> {
        let folded = fold_item_features(params, &spec, &features, seen)?;
        let tables = [FEATURE_FACTORS, FEATURE_BIAS]
            .iter()
            .filter_map(|name| params.id(name).map(|id| params.get(id).clone()))
            .collect();
        let mut model = Self::new(variant, spec, folded, output)?;
        model.side = Some(ItemSide { features, tables });
        Ok(model)
    }

    /// The item feature table of a model trained with `model.item_features`.
    pub fn item_features(&self) -> Option<&ItemFeatures> {
        self.side.as_ref().map(|s| &s.features)
    }

    /// The feature names of a model trained with item features (by id; empty without), as
    /// `run.json` records them (`RunInfo::item_features`).
    pub fn item_feature_names(&self) -> Vec<String> {
        self.item_features().map(|f| f.names().to_vec()).unwrap_or_default()
    }

    /// The MF variant.
    pub fn variant(&self) -> MfVariant {
        self.variant
    }

    /// The model kind as the CLI names it (mf, sigmoid-mf or residual-mf).
    pub fn kind(&self) -> ModelKind {
        self.variant.kind()
    }

    /// The spec.
    pub fn spec(&self) -> &MfSpec {
        &self.spec
    }

    /// The parameters.
    pub fn params(&self) -> &ParamStore {
        &self.params
    }

    /// The output map.
    pub fn output(&self) -> &OutputMap {
        &self.output
    }

    /// The model output `y = link(x)` (in the training target's units).
    pub fn output_of(&self, user: u32, movie: u32) -> f32 {
        self.spec.link.apply(raw_score(&self.params, &self.tables, user, movie)).0
    }

    /// The `U x k` user factors.
    pub fn user_embeddings(&self) -> ArrayView2<'_, f32> {
        table_view(self.params.get(self.tables.user_factors))
    }

    /// The learned movie biases (`None` for P4).
    pub fn movie_bias(&self) -> Option<&[f32]> {
        self.tables.movie_bias.map(|id| self.params.get(id).data.as_slice())
    }

    /// The learned user biases (`None` for P4).
    pub fn user_bias(&self) -> Option<&[f32]> {
        self.tables.user_bias.map(|id| self.params.get(id).data.as_slice())
    }

    /// RMSE and MAE in stars over rating rows whose `target` holds stars.
    pub fn rmse_mae_stars(&self, users: &[u32], movies: &[u32], stars: &[f32]) -> (f64, f64) {
        let (mut se, mut ae) = (0.0f64, 0.0f64);
        for r in 0..users.len() {
            let e = f64::from(self.predict(users[r], movies[r]) - stars[r]);
            se += e * e;
            ae += e.abs();
        }
        let n = users.len().max(1) as f64;
        ((se / n).sqrt(), ae / n)
    }

    /// The store written to `model.safetensors`: the trained tables, then fixed tables that
    /// describe the output map (`y_range`, `rating_range`, or `global_mean`, `user_mean`,
    /// `movie_mean`).
    pub fn checkpoint_params(&self) -> Result<ParamStore, ModelError> {
        let mut p = self.params.clone();
        let fixed = |name: &str, rows: usize, cols: usize, data: Vec<f32>| Table {
            name: name.to_string(),
            rows,
            cols,
            grad_kind: GradKind::Dense,
            data,
        };
        if let Link::SigmoidRange { lo, hi } = self.spec.link {
            if self.variant == MfVariant::Biased {
                p.insert(fixed(Y_RANGE, 1, 2, vec![lo, hi]))?;
            }
        }
        match &self.output {
            OutputMap::Stars => {}
            OutputMap::MinMax { min, max } => {
                p.insert(fixed(RATING_RANGE, 1, 2, vec![*min, *max]))?;
            }
            OutputMap::Residual { global, user, movie, .. } => {
                p.insert(fixed(GLOBAL_MEAN, 1, 1, vec![*global]))?;
                p.insert(fixed(USER_MEAN, user.len(), 1, user.clone()))?;
                p.insert(fixed(MOVIE_MEAN, movie.len(), 1, movie.clone()))?;
            }
        }
        if let Some(side) = &self.side {
            for t in &side.tables {
                p.insert(t.clone())?;
            }
            let csr = crate::item_features::feature_csr(&side.features)?;
            p.insert(fixed(ITEM_FEATURE_CSR, csr.len(), 1, csr))?;
        }
        Ok(p)
    }

    /// Saves the model to a run directory as one unit (see [`checkpoint`]), with the training
    /// data's rated movies when given (for `recommend --exclude-rated`); `run.json` records the
    /// feature names of a model with item features.
    pub fn save(
        &self,
        dir: &Path,
        info: &RunInfo,
        rated: Option<&checkpoint::RatedItems>,
    ) -> Result<(), ModelError> {
        let mut info = info.clone();
        info.item_features = self.item_feature_names();
        checkpoint::save_run(dir, &self.checkpoint_params()?, &info, rated)
    }

    /// Rebuilds a model from a loaded run (`params`, `info` from [`checkpoint::load_run`]).
    pub fn from_run(params: &ParamStore, info: &RunInfo, dir: &Path) -> Result<Self, ModelError> {
        let kind = info.model_kind;
        let Some(variant) = MfVariant::from_kind(kind) else {
            return Err(ModelError::Unsupported {
                operation: "loading as an MF model".into(),
                kind: kind.to_string(),
            });
        };
        let (n_users, n_movies) = (info.user_raw_ids.len(), info.movie_raw_ids.len());
        let pf = require_table(params, USER_FACTORS, n_users, None, dir)?;
        let k = pf.cols;
        require_table(params, MOVIE_FACTORS, n_movies, Some(k), dir)?;
        let fixed = |name: &str, rows: usize, cols: usize| -> Result<Vec<f32>, ModelError> {
            Ok(require_table(params, name, rows, Some(cols), dir)?.data.clone())
        };
        let (biases, link, output) = match variant {
            MfVariant::Biased => {
                let r = fixed(Y_RANGE, 1, 2)?;
                (true, Link::SigmoidRange { lo: r[0], hi: r[1] }, OutputMap::Stars)
            }
            MfVariant::Sigmoid => {
                let r = fixed(RATING_RANGE, 1, 2)?;
                (true, Link::SigmoidRange { lo: 0.0, hi: 1.0 }, OutputMap::MinMax { min: r[0], max: r[1] })
            }
            MfVariant::Residual => {
                let output = OutputMap::Residual {
                    global: fixed(GLOBAL_MEAN, 1, 1)?[0],
                    user: fixed(USER_MEAN, n_users, 1)?,
                    movie: fixed(MOVIE_MEAN, n_movies, 1)?,
                    scale: info.rating_scale,
                };
                (false, Link::Identity, output)
            }
        };
        let spec = MfSpec { n_users, n_movies, k, biases, link };
        let mut trained = ParamStore::new();
        let mut names = vec![USER_FACTORS, MOVIE_FACTORS];
        if biases {
            require_table(params, USER_BIAS, n_users, Some(1), dir)?;
            require_table(params, MOVIE_BIAS, n_movies, Some(1), dir)?;
            names.extend([USER_BIAS, MOVIE_BIAS]);
        }
        for t in params.tables().iter().filter(|t| names.contains(&t.name.as_str())) {
            trained.insert(t.clone())?;
        }
        let mut model = Self::new(variant, spec, trained, output)?;
        if !info.item_features.is_empty() {
            model.side = Some(restore_item_side(params, info, &spec, dir)?);
        }
        Ok(model)
    }

    /// Loads a run directory written by [`MfModel::save`].
    pub fn load(dir: &Path) -> Result<(Self, RunInfo), ModelError> {
        let (params, info) = checkpoint::load_run(dir)?;
        Ok((Self::from_run(&params, &info, dir)?, info))
    }
}

/// Which movies of a run have their vector from item features alone: none without
/// `model.item_features`, else the movies without a training rating in `rated` (the run's
/// `rated.safetensors`). What `similar` and `recommend` mark as "from features".
pub fn features_only_movies(
    info: &RunInfo,
    rated: Option<&checkpoint::RatedItems>,
) -> Result<Vec<bool>, ModelError> {
    let n = info.movie_raw_ids.len();
    match rated {
        Some(rated) if !info.item_features.is_empty() => {
            Ok(rated.movie_counts(n)?.into_iter().map(|c| c == 0).collect())
        }
        _ => Ok(vec![false; n]),
    }
}

/// The item side of a saved run: the feature table from `item_feature_csr` and the names in
/// `run.json`, the feature tables checked against both (errors name the model file).
fn restore_item_side(
    params: &ParamStore,
    info: &RunInfo,
    spec: &MfSpec,
    dir: &Path,
) -> Result<ItemSide, ModelError> {
    let names = info.item_features.clone();
    let n_features = names.len();
    let mut tables = vec![require_table(params, FEATURE_FACTORS, n_features, Some(spec.k), dir)?.clone()];
    if spec.biases {
        tables.push(require_table(params, FEATURE_BIAS, n_features, Some(1), dir)?.clone());
    }
    let features = crate::item_features::restore_features(params, names, spec.n_movies, dir)?;
    Ok(ItemSide { features, tables })
}

fn table_view(t: &Table) -> ArrayView2<'_, f32> {
    // The store guarantees data.len() == rows * cols.
    ArrayView2::from_shape((t.rows, t.cols), &t.data).expect("ParamStore keeps data.len() == rows * cols")
}

impl MfModel {
    /// The model as reelvec-metrics' `FactorScores` for blocked top-N (CPU or GPU): factors,
    /// user bias, and per movie the learned bias or, for P4, the movie's residual mean. Every
    /// link is monotone and the user terms are constant per user, so ranking these raw scores
    /// ranks by predicted stars; the reported scores are raw, not stars.
    pub fn factor_scores(&self) -> Result<FactorScores<'_>, ModelError> {
        let mut scores = FactorScores::new(self.user_embeddings(), self.item_embeddings())?;
        if let Some(b) = self.user_bias() {
            scores = scores.with_user_bias(ArrayView1::from(b))?;
        }
        let movie_offset = match &self.output {
            OutputMap::Residual { movie, .. } => Some(movie.as_slice()),
            _ => self.movie_bias(),
        };
        if let Some(c) = movie_offset {
            scores = scores.with_item_bias(ArrayView1::from(c))?;
        }
        Ok(scores)
    }
}

impl ItemEmbeddings for MfModel {
    fn item_embeddings(&self) -> ArrayView2<'_, f32> {
        table_view(self.params.get(self.tables.movie_factors))
    }
}

impl RatingModel for MfModel {
    fn predict(&self, user: u32, movie: u32) -> f32 {
        self.output.stars(self.output_of(user, movie), user, movie)
    }

    /// Predicted stars for every movie.
    fn score_all(&self, user: u32, out: &mut [f32]) {
        let t = &self.tables;
        let u = user as usize;
        let p = self.params.get(t.user_factors).row(u);
        let qf = self.params.get(t.movie_factors);
        let ub = t.user_bias.map_or(0.0, |id| self.params.get(id).data[u]);
        let mb = t.movie_bias.map(|id| self.params.get(id).data.as_slice());
        for (i, o) in out.iter_mut().enumerate().take(self.spec.n_movies) {
            let x = dot(p, qf.row(i)) + ub + mb.map_or(0.0, |b| b[i]);
            *o = self.output.stars(self.spec.link.apply(x).0, user, i as u32);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn featured(biases: bool, link: Link) -> (MfObjective, ParamStore) {
        let spec = MfSpec { n_users: 4, n_movies: 5, k: 3, biases, link };
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let init = Init::Normal { mean: 0.0, std: 0.5 };
        let mut params = spec.init_params(init, init, &mut rng).unwrap();
        spec.add_feature_params(&mut params, 3, init, init, &mut rng).unwrap();
        let names = vec!["genre:A".into(), "genre:B".into(), "decade:1990s".into()];
        let lists = vec![vec![0], vec![0, 1], vec![1, 2], vec![], vec![0, 1, 2]];
        let features = ItemFeatures::from_lists(names, &lists).unwrap();
        let train = RatingColumns {
            user: vec![0, 1, 2, 3, 0, 1, 2, 3, 1],
            movie: vec![0, 1, 2, 3, 4, 4, 1, 0, 2],
            target: vec![0.9, 0.2, 0.5, 0.7, 0.1, 0.8, 0.3, 0.6, 0.4],
        };
        let obj = MfObjective::new(spec, &params, train, None)
            .unwrap()
            .with_item_features(&params, features)
            .unwrap();
        (obj, params)
    }

    #[test]
    fn feature_gradients_match_finite_differences() {
        for (biases, link) in [(true, Link::SigmoidRange { lo: 0.0, hi: 1.0 }), (false, Link::Identity)] {
            let (obj, params) = featured(biases, link);
            let units: Vec<u32> = (0..9).collect();
            reelvec_engine::gradcheck::check(&obj, &params, &units, 1e-2, 2e-2).unwrap();
        }
    }

    #[test]
    fn folded_vectors_are_id_plus_feature_mean_and_features_alone_when_unseen() {
        let (obj, params) = featured(true, Link::Identity);
        let ft = obj.features.as_ref().unwrap();
        let seen = [true, true, true, true, false];
        let folded = fold_item_features(&params, obj.spec(), &ft.table, &seen).unwrap();
        assert!(folded.id(FEATURE_FACTORS).is_none());
        let q = params.get(params.id(MOVIE_FACTORS).unwrap());
        let e = params.get(params.id(FEATURE_FACTORS).unwrap());
        let fq = folded.get(folded.id(MOVIE_FACTORS).unwrap());
        for c in 0..3 {
            let want1 = q.row(1)[c] + (e.row(0)[c] + e.row(1)[c]) / 2.0;
            assert!((fq.row(1)[c] - want1).abs() < 1e-6);
            assert_eq!(fq.row(3)[c], q.row(3)[c], "no features: the id vector alone");
            let want4 = (e.row(0)[c] + e.row(1)[c] + e.row(2)[c]) / 3.0;
            assert!((fq.row(4)[c] - want4).abs() < 1e-6, "unseen: features alone");
        }
        // The folded model scores what the objective scores for seen movies.
        let model = MfModel::new(MfVariant::Biased, *obj.spec(), folded, OutputMap::Stars).unwrap();
        let mut buf = vec![0.0; 3];
        let x = obj.score(&params, 2, 1, &mut buf);
        assert!((model.output_of(2, 1) - x).abs() < 1e-5);
    }

    #[test]
    fn features_are_rejected_on_a_mismatched_table() {
        let (obj, params) = featured(true, Link::Identity);
        let short = ItemFeatures::from_lists(vec!["x".into()], &[vec![0]]).unwrap();
        let plain = MfObjective::new(*obj.spec(), &params, obj.train().clone(), None).unwrap();
        assert!(!plain.has_item_features());
        assert!(plain.with_item_features(&params, short).is_err());
    }

    /// Planted genre effects: ratings are 1 + 3·[genre B] + noise-free user offsets; a movie
    /// held out of training entirely is predicted from its genre alone.
    #[test]
    fn genre_features_recover_a_planted_genre_effect_for_unseen_movies() {
        let (n_users, n_movies) = (30usize, 40usize);
        let genre_b = |m: usize| m % 2 == 1;
        let lists: Vec<Vec<u32>> = (0..n_movies).map(|m| vec![u32::from(genre_b(m))]).collect();
        let features = ItemFeatures::from_lists(vec!["genre:A".into(), "genre:B".into()], &lists).unwrap();
        let held = |m: usize| m >= 36;
        let mut train = RatingColumns::default();
        for u in 0..n_users {
            for m in (0..n_movies).filter(|&m| !held(m)) {
                train.user.push(u as u32);
                train.movie.push(m as u32);
                train.target.push(1.0 + 3.0 * f32::from(u8::from(genre_b(m))) + (u % 3) as f32 * 0.1);
            }
        }
        let spec = MfSpec { n_users, n_movies, k: 2, biases: true, link: Link::Identity };
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let small = Init::Normal { mean: 0.0, std: 0.01 };
        let mut params = spec.init_params(small, Init::Zeros, &mut rng).unwrap();
        spec.add_feature_params(&mut params, 2, small, Init::Zeros, &mut rng).unwrap();
        let obj = MfObjective::new(spec, &params, train, None)
            .unwrap()
            .with_item_features(&params, features.clone())
            .unwrap();
        let cfg = reelvec_engine::TrainConfig {
            epochs: 60,
            batch_size: 64,
            lr: 0.05,
            quiet: true,
            // L2 makes the shared genre rows cheaper than 18 separate id rows, as in LightFM.
            optimizer: reelvec_engine::OptimizerConfig::Adam(reelvec_engine::AdamConfig {
                weight_decay: 1e-2,
                ..Default::default()
            }),
            ..Default::default()
        };
        reelvec_engine::Trainer::new(cfg).fit(&obj, &mut params).unwrap();
        let seen: Vec<bool> = (0..n_movies).map(|m| !held(m)).collect();
        let folded = fold_item_features(&params, &spec, &features, &seen).unwrap();
        let model = MfModel::new(MfVariant::Biased, spec, folded, OutputMap::Stars).unwrap();
        for m in 36..n_movies {
            let mean: f32 =
                (0..n_users).map(|u| model.predict(u as u32, m as u32)).sum::<f32>() / n_users as f32;
            let want = 1.1 + 3.0 * f32::from(u8::from(genre_b(m)));
            assert!((mean - want).abs() < 0.5, "movie {m}: mean prediction {mean}, planted {want}");
        }
    }

    #[test]
    fn variants_map_to_the_mf_kinds_and_back() {
        for v in [MfVariant::Biased, MfVariant::Sigmoid, MfVariant::Residual] {
            assert!(v.kind().predicts_ratings());
            assert_eq!(MfVariant::from_kind(v.kind()), Some(v));
        }
        for kind in ModelKind::ALL {
            assert_eq!(MfVariant::from_kind(kind).is_some(), kind.predicts_ratings(), "{kind}");
        }
    }
}
