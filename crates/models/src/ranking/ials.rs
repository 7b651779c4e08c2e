//! `ials`: implicit alternating least squares (Hu, Koren, Volinsky 2008, "Collaborative
//! Filtering for Implicit Feedback Datasets") with the conjugate-gradient row solves of Takács,
//! Pilászy, Tikk (2011), as implicit's `least_squares_cg` does them.
//!
//! **Model.** Every (user, movie) pair has a preference `p_ui` (1 for an interaction, else 0) and
//! a confidence `c_ui = 1 + alpha r_ui` (`r_ui` = 1 per interaction, so `c = 1 + alpha` on
//! interactions and 1 elsewhere). With user factors `x_u`, movie factors `y_i` (`factors`
//! columns) the loss over all `U x M` pairs is
//!
//! `L = sum_{u,i} c_ui (p_ui - x_u . y_i)^2 + lambda (sum_u |x_u|^2 + sum_i |y_i|^2)`.
//!
//! **Half-iteration.** With `Y` fixed, each `x_u` solves the normal equations
//! `(Y^T Y + lambda I + (c - 1) sum_{i in I_u} y_i y_i^T) x_u = c sum_{i in I_u} y_i`. `G = Y^T Y +
//! lambda I` is formed once per half-iteration (the Gramian trick: the `M - |I_u|` zero-preference
//! terms are all inside it), so a row costs `O(k^2 + |I_u| k)` per CG step. `cg_steps` (3) steps
//! of conjugate gradient start from the previous `x_u` (warm start) — each step lowers the row's
//! quadratic, so the loss never rises from one half-iteration to the next. Then the same with the
//! roles of users and movies swapped. A row without interactions is set to zero (its exact
//! solution).
//!
//! **Parallelism and determinism.** Rows are solved in parallel (rayon), each by one thread,
//! sequentially in f32 from its own scratch, into its own disjoint row; `G` is summed in f64 over
//! fixed blocks of rows (`GRAM_BLOCK`) added in block order. So the factors are bitwise identical
//! for any thread count.
//!
//! **Speed.** Per CG step a row costs one `G v` ([`symv`]: a column sweep over register blocks,
//! no horizontal sums) and a dot plus an axpy per interaction; the starting residual
//! `b - A x = -G x + sum_i (c - (c - 1) y_i . x) y_i` takes one pass over the items, as implicit's
//! `_least_squares_cg`. The row solve also has an AVX2 build (chosen at run time) that is the same
//! source on wider registers, no fused multiply-add: it rounds exactly as the portable build
//! (tested), so the factors do not depend on the CPU's vector width either.
//!
//! **Versus implicit** (0.7.3, `implicit/cpu/als.py` `fit` and `_als.pyx` `_least_squares_cg`,
//! read line by line). implicit multiplies the data by its `alpha`, so its confidence is
//! `alpha_implicit r` (1 for `alpha_implicit = 1`, its default): the same model as ours with
//! `alpha = alpha_implicit - 1` (the ranking bench hands it data `1 + alpha` and its alpha 1).
//! The same as here: initialisation uniform in `[0, 0.01)`, users drawn before movies
//! ([`initial_factors`]; pinned by a test); users solved first in each iteration; `G = Y^T Y +
//! lambda I`, lambda not scaled by the row's count; 3 CG steps warm-started from the previous
//! factors, the starting residual in one pass, a stop when `r . r < 1e-20`; a row without
//! interactions set to zero; `calculate_training_loss` and `random_state` change nothing but
//! the log and the draws. Different: the random stream (ChaCha8 here, NumPy's PCG64 there, so
//! one seed is a different start on each side), `G` summed in f64 here (an f32 GEMM there) and
//! the per-row arithmetic in a fixed order (BLAS there). On ml-100k's temporal holdout at the
//! bench's settings (64 factors, 15 iterations, lambda 10, alpha 1) the training losses agree
//! (67,290-67,320 on both sides) and test NDCG@10 is the same within the seeds' spread: one
//! seed's figure has a standard deviation of about 0.0013 on either side; means 0.1713 vs
//! 0.1714 over seeds 42..61, 0.1714 vs 0.1711 over 42..81. Neither the initial scale or
//! distribution (uniform 0.01/0.1, centred, normal 0.1/sqrt(k), 1/sqrt(k)), the solve order nor
//! more CG steps (4, 6, 20 = exact) moved the 10-seed mean by more than 0.0003; one CG step
//! costs 0.003. Seed 42 is one of our low draws (0.1687 against implicit's 0.1713), which is
//! why the bench reports a 20-seed mean with its standard error.
//!
//! **Fold-in.** A new user given their movies is one exact solve of the same normal equations
//! (LAPACK Cholesky, [`Ials::fold_in`]), as implicit's `recalculate_user`.

use ndarray::{Array1, Array2, ArrayView2, ArrayViewMut2};
use ndarray_linalg::SolveC;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use reelvec_engine::memory::{ensure_fits, f32_bytes};
use reelvec_metrics::error::check_index;
use reelvec_metrics::{FactorScores, ItemScorer, MetricsError, RatedItems};

use super::{Interactions, ParamReader, Ranker, RankerKind};
use crate::mf::dot;
use crate::ModelError;

/// Rows per block of the Gram sum (a constant, so the sum's order never depends on threads).
const GRAM_BLOCK: usize = 4096;

/// The parameters of [`Ials`].
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct IalsParams {
    /// Factors per user and movie (default 64).
    pub factors: usize,
    /// Alternating iterations (a user half and a movie half each; default 15, as implicit).
    pub iterations: usize,
    /// L2 regularisation `lambda` (default 10; see [`IalsParams::default`]).
    pub regularization: f32,
    /// Confidence slope: interactions weigh `1 + alpha` (default 1).
    pub alpha: f32,
    /// Conjugate-gradient steps per row solve (default 3, as implicit); 0 keeps the start.
    pub cg_steps: usize,
}

impl Default for IalsParams {
    /// `alpha` 1 and `regularization` 10 were the best of a small grid (alpha 1..20, lambda
    /// 0.1..10) on ml-100k's 20% temporal holdout at 64 factors (NDCG@10 0.202, against 0.177 at
    /// alpha 10, lambda 0.1); other data sets should tune them on validation.
    fn default() -> Self {
        IalsParams { factors: 64, iterations: 15, regularization: 10.0, alpha: 1.0, cg_steps: 3 }
    }
}

impl IalsParams {
    /// The defaults overridden by a JSON object (`factors`, `iterations`, `regularization`,
    /// `alpha`, `cg_steps`).
    pub fn from_json(params: &serde_json::Value) -> Result<Self, ModelError> {
        let r = ParamReader::new(
            RankerKind::Ials,
            params,
            &["factors", "iterations", "regularization", "alpha", "cg_steps"],
        )?;
        let d = Self::default();
        Ok(IalsParams {
            factors: r.int("factors", d.factors, 1, 65536)?,
            iterations: r.int("iterations", d.iterations, 1, 100_000)?,
            regularization: r.num(
                "regularization",
                f64::from(d.regularization),
                |x| x > 0.0,
                "a number > 0",
            )? as f32,
            alpha: r.num("alpha", f64::from(d.alpha), |x| x >= 0.0, "a number >= 0")? as f32,
            cg_steps: r.int("cg_steps", d.cg_steps, 0, 65536)?,
        })
    }
}

/// A fitted implicit-ALS model: user and movie factors.
#[derive(Debug, Clone, PartialEq)]
pub struct Ials {
    pub(super) params: IalsParams,
    pub(super) user_factors: Array2<f32>,
    pub(super) item_factors: Array2<f32>,
}

impl Ials {
    /// Fits the factors on `train` (see the module doc); `seed` fixes the initialisation.
    pub fn fit(train: Interactions<'_>, params: &serde_json::Value, seed: u64) -> Result<Self, ModelError> {
        Self::fit_observed(train, params, seed, |_, _| {})
    }

    /// [`Ials::fit`], calling `after_iteration(iteration, model)` after each full iteration
    /// (0-based; the loss, timings or factors can be read there).
    pub fn fit_observed(
        train: Interactions<'_>,
        params: &serde_json::Value,
        seed: u64,
        mut after_iteration: impl FnMut(usize, &Ials),
    ) -> Result<Self, ModelError> {
        let params = IalsParams::from_json(params)?;
        let (n_users, n_items, k) = (train.n_users(), train.n_items, params.factors);
        let threads = rayon::current_num_threads() as u128;
        ensure_fits(
            &format!("ials factors [{n_users} + {n_items}, {k}]"),
            f32_bytes(((n_users + n_items) * k) as u128, 1) + f32_bytes((k * k) as u128, 2 + threads),
        )?;
        let by_item = train.by_item()?;
        let (user_factors, item_factors) = initial_factors(n_users, n_items, k, seed);
        let mut model = Ials { params, user_factors, item_factors };
        let c = 1.0 + params.alpha;
        for it in 0..params.iterations {
            let g = gram(model.item_factors.view(), params.regularization);
            solve_rows(
                &g,
                model.item_factors.view(),
                train.by_user,
                c,
                params.cg_steps,
                model.user_factors.view_mut(),
            );
            let g = gram(model.user_factors.view(), params.regularization);
            solve_rows(
                &g,
                model.user_factors.view(),
                &by_item,
                c,
                params.cg_steps,
                model.item_factors.view_mut(),
            );
            after_iteration(it, &model);
            // The host's stop hook (Ctrl-C in Python) between iterations: no model comes back.
            reelvec_engine::step_hook::after_step(it as u64 + 1, params.iterations as u64)?;
        }
        Ok(model)
    }

    /// The parameters used.
    pub fn params_used(&self) -> IalsParams {
        self.params
    }

    /// User factors (`n_users x factors`).
    pub fn user_factors(&self) -> ArrayView2<'_, f32> {
        self.user_factors.view()
    }

    /// Movie factors (`n_items x factors`).
    pub fn item_factors(&self) -> ArrayView2<'_, f32> {
        self.item_factors.view()
    }

    /// The model's loss `L` (module doc) on `train`, in f64.
    pub fn loss(&self, train: Interactions<'_>) -> Result<f64, ModelError> {
        if train.n_users() != self.user_factors.nrows() || train.n_items != self.item_factors.nrows() {
            return Err(ModelError::InvalidData(format!(
                "ials loss: {} users x {} movies given, the model has {} x {}",
                train.n_users(),
                train.n_items,
                self.user_factors.nrows(),
                self.item_factors.nrows()
            )));
        }
        let g = gram(self.item_factors.view(), 0.0);
        let k = self.params.factors;
        let c = f64::from(1.0 + self.params.alpha);
        let mut loss = 0.0f64;
        for (u, x) in self.user_factors.rows().into_iter().enumerate() {
            let x = x.as_slice().unwrap_or_else(|| unreachable!("standard layout"));
            // sum over every movie of s^2 = x^T (Y^T Y) x; interactions then add
            // c (1 - s)^2 - s^2 = c - 2 c s + (c - 1) s^2.
            for a in 0..k {
                loss += f64::from(x[a]) * f64::from(dot(&g[a * k..(a + 1) * k], x));
            }
            for &i in train.by_user.row(u as u32) {
                let s = f64::from(dot(x, self.item_row(i)));
                loss += c - 2.0 * c * s + (c - 1.0) * s * s;
            }
        }
        let norm = |a: &Array2<f32>| a.iter().map(|&v| f64::from(v) * f64::from(v)).sum::<f64>();
        Ok(loss
            + f64::from(self.params.regularization) * (norm(&self.user_factors) + norm(&self.item_factors)))
    }

    fn item_row(&self, i: u32) -> &[f32] {
        let k = self.params.factors;
        let all = self.item_factors.as_slice().unwrap_or_else(|| unreachable!("standard layout"));
        &all[i as usize * k..(i as usize + 1) * k]
    }

    /// The factors of a new user who has `items` (sorted or not; duplicates count once): one exact
    /// solve of the user's normal equations with the movie factors fixed (LAPACK Cholesky, f64).
    /// No movies: the zero vector.
    pub fn fold_in(&self, items: &[u32]) -> Result<Array1<f32>, ModelError> {
        let k = self.params.factors;
        let n_items = self.item_factors.nrows();
        let mut items = items.to_vec();
        items.sort_unstable();
        items.dedup();
        for &i in &items {
            check_index("Ials::fold_in movie", i as usize, n_items)?;
        }
        if items.is_empty() {
            return Ok(Array1::zeros(k));
        }
        let g = gram(self.item_factors.view(), self.params.regularization);
        let c = f64::from(1.0 + self.params.alpha);
        let mut a = Array2::<f64>::from_shape_fn((k, k), |(r, s)| f64::from(g[r * k + s]));
        let mut b = Array1::<f64>::zeros(k);
        for &i in &items {
            let y = self.item_row(i);
            for r in 0..k {
                b[r] += c * f64::from(y[r]);
                for s in 0..k {
                    a[[r, s]] += (c - 1.0) * f64::from(y[r]) * f64::from(y[s]);
                }
            }
        }
        let x = a
            .solvec(&b)
            .map_err(|e| ModelError::InvalidData(format!("ials fold-in: Cholesky solve failed: {e}")))?;
        Ok(x.mapv(|v| v as f32))
    }

    fn scores(&self) -> Result<FactorScores<'_>, MetricsError> {
        FactorScores::new(self.user_factors.view(), self.item_factors.view())
    }
}

/// The factors a fit starts from: uniform in `[0, 0.01)`, users then movies from one ChaCha8
/// stream of `seed` (shared with the CUDA twin, `ials_gpu.rs`, so both start alike).
pub(super) fn initial_factors(
    n_users: usize,
    n_items: usize,
    k: usize,
    seed: u64,
) -> (Array2<f32>, Array2<f32>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut init = |rows: usize| Array2::from_shape_simple_fn((rows, k), || rng.random::<f32>() * 0.01);
    let user_factors = init(n_users);
    (user_factors, init(n_items))
}

/// `F^T F + lambda I` as a row-major `k x k` f32 matrix, summed in f64 over fixed blocks of
/// [`GRAM_BLOCK`] rows (in parallel) added in block order.
fn gram(f: ArrayView2<'_, f32>, lambda: f32) -> Vec<f32> {
    let k = f.ncols();
    let rows = f.as_slice().unwrap_or_else(|| unreachable!("factor tables are standard layout"));
    let simd = avx2();
    let parts: Vec<Vec<f64>> = rows
        .par_chunks(GRAM_BLOCK * k.max(1))
        .map(|block| {
            let mut acc = vec![0.0f64; k * k];
            #[cfg(target_arch = "x86_64")]
            if simd {
                // SAFETY: the CPU supports AVX2 (`avx2` checked it); nothing else is required.
                unsafe { gram_block_avx2(block, k, &mut acc) };
                return acc;
            }
            let _ = simd;
            gram_block(block, k, &mut acc);
            acc
        })
        .collect();
    let mut g = vec![0.0f32; k * k];
    for a in 0..k {
        for b in a..k {
            let v = parts.iter().map(|p| p[a * k + b]).sum::<f64>() as f32;
            g[a * k + b] = v;
            g[b * k + a] = v;
        }
        g[a * k + a] += lambda;
    }
    g
}

/// Adds the upper triangle of `F^T F` over the `k`-wide rows of `block` to `acc` (f64, row by
/// row: element-wise, so the AVX2 build rounds as this one).
#[inline(always)]
fn gram_block(block: &[f32], k: usize, acc: &mut [f64]) {
    for row in block.chunks_exact(k) {
        for a in 0..k {
            let ra = f64::from(row[a]);
            for (o, &rb) in acc[a * k + a..(a + 1) * k].iter_mut().zip(&row[a..]) {
                *o += ra * f64::from(rb);
            }
        }
    }
}

/// [`gram_block`] compiled for AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn gram_block_avx2(block: &[f32], k: usize, acc: &mut [f64]) {
    gram_block(block, k, acc);
}

/// One half-iteration: every row `x` of `out` (warm start: its current value) takes `cg_steps`
/// CG steps towards the solution of `(G + (c - 1) sum_{i in rows[x]} y_i y_i^T) x = c sum y_i`.
/// Rows go to rayon in runs of [`ROW_RUN`] (one scratch per worker); each row's arithmetic is
/// the same whichever worker or build (AVX2 or portable, [`avx2`]) runs it.
fn solve_rows(
    g: &[f32],
    other: ArrayView2<'_, f32>,
    rows: &RatedItems,
    c: f32,
    cg_steps: usize,
    mut out: ArrayViewMut2<'_, f32>,
) {
    let k = out.ncols();
    let y = other.as_slice().unwrap_or_else(|| unreachable!("factor tables are standard layout"));
    let xs = out.as_slice_mut().unwrap_or_else(|| unreachable!("factor tables are standard layout"));
    let simd = avx2();
    xs.par_chunks_mut(k.max(1)).enumerate().with_min_len(ROW_RUN).for_each_init(
        || CgScratch::new(k),
        |scratch, (r, x)| cg_row(g, y, rows.row(r as u32), c, cg_steps, x, scratch, simd),
    );
}

/// Rows a rayon task takes at least (amortises the task overhead; no effect on the values).
const ROW_RUN: usize = 32;

/// Whether the AVX2 build of [`cg_row`] may run (the CPU has AVX2). It is the same source
/// compiled for wider registers; without FMA contraction (Rust never fuses a multiply and an add
/// by itself) it rounds exactly as the portable build does, so the factors are the same.
#[inline]
pub(super) fn avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Per-thread vectors of one CG solve.
struct CgScratch {
    r: Vec<f32>,
    p: Vec<f32>,
    ap: Vec<f32>,
}

impl CgScratch {
    fn new(k: usize) -> Self {
        CgScratch { r: vec![0.0; k], p: vec![0.0; k], ap: vec![0.0; k] }
    }
}

#[inline(always)]
fn axpy(a: f32, x: &[f32], y: &mut [f32]) {
    for (yv, &xv) in y.iter_mut().zip(x) {
        *yv += a * xv;
    }
}

/// Output columns [`symv`] keeps in registers at once (four AVX2 or eight SSE registers).
const SYMV_BLOCK: usize = 32;

/// `out = G v` for the symmetric row-major `k x k` matrix `G`, as `sum_a v[a] G[a, :]`: each
/// `out[j]` sums `v[a] G[a, j]` in the order `a = 0..k` (so blocking changes no value), over
/// blocks of [`SYMV_BLOCK`] columns held in registers: no horizontal sums, every load contiguous.
#[inline(always)]
fn symv(g: &[f32], v: &[f32], out: &mut [f32]) {
    let k = v.len();
    let mut start = 0;
    while start + SYMV_BLOCK <= k {
        let mut acc = [0.0f32; SYMV_BLOCK];
        for (a, &va) in v.iter().enumerate() {
            let row: &[f32; SYMV_BLOCK] = g[a * k + start..a * k + start + SYMV_BLOCK]
                .try_into()
                .unwrap_or_else(|_| unreachable!("a slice of SYMV_BLOCK"));
            for l in 0..SYMV_BLOCK {
                acc[l] += va * row[l];
            }
        }
        out[start..start + SYMV_BLOCK].copy_from_slice(&acc);
        start += SYMV_BLOCK;
    }
    if start < k {
        let tail = &mut out[start..k];
        tail.fill(0.0);
        for (a, &va) in v.iter().enumerate() {
            axpy(va, &g[a * k + start..(a + 1) * k], tail);
        }
    }
}

/// `out = (G + (c - 1) sum_{i in items} y_i y_i^T) v` without forming the matrix.
#[inline(always)]
fn apply(g: &[f32], y: &[f32], items: &[u32], c: f32, v: &[f32], out: &mut [f32]) {
    let k = v.len();
    symv(g, v, out);
    for &i in items {
        let yi = &y[i as usize * k..(i as usize + 1) * k];
        axpy((c - 1.0) * dot(yi, v), yi, out);
    }
}

/// `steps` conjugate-gradient steps on one row's normal equations, from `x` (see
/// [`solve_rows`]); a row without items becomes zero. `simd`: the AVX2 build ([`avx2`]).
#[allow(clippy::too_many_arguments)] // one call site; a struct would only rename them
#[inline]
fn cg_row(
    g: &[f32],
    y: &[f32],
    items: &[u32],
    c: f32,
    steps: usize,
    x: &mut [f32],
    s: &mut CgScratch,
    simd: bool,
) {
    #[cfg(target_arch = "x86_64")]
    if simd {
        // SAFETY: the CPU supports AVX2 (`avx2` checked it); nothing else is required.
        unsafe { cg_row_avx2(g, y, items, c, steps, x, s) };
        return;
    }
    let _ = simd;
    cg_row_body(g, y, items, c, steps, x, s);
}

/// [`cg_row_body`] compiled for AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn cg_row_avx2(g: &[f32], y: &[f32], items: &[u32], c: f32, steps: usize, x: &mut [f32], s: &mut CgScratch) {
    cg_row_body(g, y, items, c, steps, x, s);
}

/// The CG solve of [`cg_row`] (implicit's `_least_squares_cg`, step for step).
#[inline(always)]
fn cg_row_body(g: &[f32], y: &[f32], items: &[u32], c: f32, steps: usize, x: &mut [f32], s: &mut CgScratch) {
    let k = x.len();
    if items.is_empty() {
        x.fill(0.0);
        return;
    }
    // r = b - A x = -G x + sum_i (c - (c - 1) y_i . x) y_i  (b = c sum y_i), one pass over items.
    symv(g, x, &mut s.r);
    for r in s.r.iter_mut() {
        *r = -*r;
    }
    for &i in items {
        let yi = &y[i as usize * k..(i as usize + 1) * k];
        axpy(c - (c - 1.0) * dot(yi, x), yi, &mut s.r);
    }
    s.p.copy_from_slice(&s.r);
    let mut rs_old = dot(&s.r, &s.r);
    for _ in 0..steps {
        if rs_old < 1e-20 {
            break;
        }
        apply(g, y, items, c, &s.p, &mut s.ap);
        let step = rs_old / dot(&s.p, &s.ap);
        axpy(step, &s.p, x);
        axpy(-step, &s.ap, &mut s.r);
        let rs_new = dot(&s.r, &s.r);
        let beta = rs_new / rs_old;
        for (p, &r) in s.p.iter_mut().zip(&s.r) {
            *p = r + beta * *p;
        }
        rs_old = rs_new;
    }
}

impl ItemScorer for Ials {
    fn n_users(&self) -> usize {
        self.user_factors.nrows()
    }

    fn n_items(&self) -> usize {
        self.item_factors.nrows()
    }

    /// `x_u . y_j` through reelvec-metrics' [`FactorScores`] (one GEMM per block).
    fn score_block(&self, users: &[u32], out: ArrayViewMut2<'_, f32>) -> Result<(), MetricsError> {
        self.scores()?.score_block(users, out)
    }
}

impl Ranker for Ials {
    fn kind(&self) -> RankerKind {
        RankerKind::Ials
    }

    fn params(&self) -> serde_json::Value {
        serde_json::to_value(self.params).unwrap_or_default()
    }

    fn item_embeddings(&self) -> Option<ArrayView2<'_, f32>> {
        Some(self.item_factors.view())
    }

    /// `fold_in(items) . y_j` for every movie.
    fn score_new_user(&self, items: &[u32], out: &mut [f32]) -> Result<(), ModelError> {
        super::check_new_user(items, out, self.n_items())?;
        let x = self.fold_in(items)?;
        let x = x.as_slice().unwrap_or_else(|| unreachable!("owned vector"));
        for (j, o) in out.iter_mut().enumerate() {
            *o = dot(x, self.item_row(j as u32));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    /// 30 users in two taste groups over 12 movies, a few interactions each.
    fn planted() -> RatedItems {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let rows: Vec<Vec<u32>> = (0..30)
            .map(|u| {
                let base = if u % 2 == 0 { 0 } else { 6 };
                (0..4).map(|_| base + rng.random_range(0..6u32)).collect()
            })
            .collect();
        RatedItems::from_rows(&rows)
    }

    #[test]
    fn initial_factors_are_implicits_uniform_0_to_0_01_users_first() {
        // implicit: `random((users, k)) * 0.01` and then `random((items, k)) * 0.01` from one
        // generator; the same distribution and order here, from one ChaCha8 stream of the seed.
        let (u, m) = initial_factors(50, 70, 16, 3);
        assert_eq!((u.dim(), m.dim()), ((50, 16), (70, 16)));
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let stream: Vec<f32> = (0..(50 + 70) * 16).map(|_| rng.random::<f32>() * 0.01).collect();
        assert_eq!(u.as_slice().unwrap(), &stream[..50 * 16]);
        assert_eq!(m.as_slice().unwrap(), &stream[50 * 16..]);
        assert!(stream.iter().all(|&v| (0.0..0.01).contains(&v)));
        let mean = stream.iter().map(|&v| f64::from(v)).sum::<f64>() / stream.len() as f64;
        assert!((mean - 0.005).abs() < 0.0005, "{mean}");
        assert_ne!(initial_factors(50, 70, 16, 4).0, u);
    }

    #[test]
    fn loss_decreases_every_iteration() {
        let rows = planted();
        let train = Interactions::new(&rows, 12).unwrap();
        let mut losses = Vec::new();
        let params = serde_json::json!({"factors": 4, "iterations": 8, "alpha": 5.0, "regularization": 0.1});
        Ials::fit_observed(train, &params, 1, |_, m| losses.push(m.loss(train).unwrap())).unwrap();
        assert_eq!(losses.len(), 8);
        for w in losses.windows(2) {
            assert!(w[1] <= w[0] * (1.0 + 1e-6), "loss rose: {losses:?}");
        }
        assert!(losses[7] < 0.9 * losses[0], "{losses:?}");
    }

    #[test]
    fn cg_with_k_steps_matches_an_exact_lapack_solve() {
        let k = 6;
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let y: Vec<f32> = (0..10 * k).map(|_| rng.random::<f32>() - 0.5).collect();
        let ya = ArrayView2::from_shape((10, k), &y).unwrap();
        let g = gram(ya, 0.3);
        let items = [1u32, 4, 7, 8];
        let c = 4.0f32;
        let mut x = vec![0.0f32; k];
        cg_row(&g, &y, &items, c, k, &mut x, &mut CgScratch::new(k), avx2());
        // The exact solution, by LAPACK in f64.
        let mut a = Array2::<f64>::from_shape_fn((k, k), |(r, s)| f64::from(g[r * k + s]));
        let mut b = Array1::<f64>::zeros(k);
        for &i in &items {
            let yi = &y[i as usize * k..(i as usize + 1) * k];
            for r in 0..k {
                b[r] += f64::from(c * yi[r]);
                for s in 0..k {
                    a[[r, s]] += f64::from(c - 1.0) * f64::from(yi[r]) * f64::from(yi[s]);
                }
            }
        }
        let exact = a.solvec(&b).unwrap();
        for r in 0..k {
            assert!((f64::from(x[r]) - exact[r]).abs() < 1e-3 * (1.0 + exact[r].abs()), "{x:?} vs {exact}");
        }
        // Fold-in is that exact solve with the model's own Gram.
        let model = Ials {
            params: IalsParams { factors: k, regularization: 0.3, alpha: c - 1.0, ..IalsParams::default() },
            user_factors: Array2::zeros((1, k)),
            item_factors: ya.to_owned(),
        };
        let folded = model.fold_in(&[8, 1, 7, 4, 4]).unwrap();
        for r in 0..k {
            assert!((f64::from(folded[r]) - exact[r]).abs() < 1e-4 * (1.0 + exact[r].abs()));
        }
        assert!(model.fold_in(&[10]).is_err());
        assert_eq!(model.fold_in(&[]).unwrap(), Array1::<f32>::zeros(k));
    }

    #[test]
    fn symv_blocks_and_the_avx2_build_give_the_portable_values() {
        // k = 40: one register block of SYMV_BLOCK columns and a tail of 8.
        let k = 40;
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let y: Vec<f32> = (0..20 * k).map(|_| rng.random::<f32>() - 0.5).collect();
        let g = gram(ArrayView2::from_shape((20, k), &y).unwrap(), 0.5);
        let v: Vec<f32> = (0..k).map(|_| rng.random::<f32>() - 0.5).collect();
        let mut out = vec![0.0f32; k];
        symv(&g, &v, &mut out);
        for j in 0..k {
            let want = (0..k).fold(0.0f32, |acc, a| acc + v[a] * g[a * k + j]);
            assert_eq!(out[j], want, "column {j}");
        }
        let items = [0u32, 3, 9, 17, 19];
        let x0: Vec<f32> = (0..k).map(|_| rng.random::<f32>() * 0.01).collect();
        let solve = |simd| {
            let mut x = x0.clone();
            cg_row(&g, &y, &items, 3.0, 3, &mut x, &mut CgScratch::new(k), simd);
            x
        };
        let portable = solve(false);
        assert_ne!(portable, x0);
        assert_eq!(portable, solve(avx2()));
        // The Gram block: the AVX2 build against the portable one, and both against a plain sum.
        let mut plain = vec![0.0f64; k * k];
        gram_block(&y, k, &mut plain);
        for a in 0..k {
            for b in a..k {
                let want = (0..20).fold(0.0f64, |s, r| s + f64::from(y[r * k + a]) * f64::from(y[r * k + b]));
                assert_eq!(plain[a * k + b], want, "({a}, {b})");
            }
        }
        #[cfg(target_arch = "x86_64")]
        if avx2() {
            let mut wide = vec![0.0f64; k * k];
            // SAFETY: the CPU supports AVX2.
            unsafe { gram_block_avx2(&y, k, &mut wide) };
            assert_eq!(plain, wide);
        }
    }

    #[test]
    fn factors_are_bitwise_identical_for_1_and_2_threads() {
        let rows = planted();
        let train = Interactions::new(&rows, 12).unwrap();
        let fit = |t| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(t).build().unwrap();
            pool.install(|| Ials::fit(train, &serde_json::json!({"factors": 8, "iterations": 3}), 9).unwrap())
        };
        let (a, b) = (fit(1), fit(2));
        assert_eq!(a.user_factors.as_slice().unwrap(), b.user_factors.as_slice().unwrap());
        assert_eq!(a.item_factors.as_slice().unwrap(), b.item_factors.as_slice().unwrap());
        assert_ne!(a, Ials::fit(train, &serde_json::json!({"factors": 8, "iterations": 3}), 10).unwrap());
    }

    #[test]
    fn scores_and_embeddings_come_from_the_factors() {
        let rows = planted();
        let train = Interactions::new(&rows, 12).unwrap();
        let model = Ials::fit(train, &serde_json::json!({"factors": 3, "iterations": 2}), 1).unwrap();
        let mut out = Array2::zeros((1, 12));
        model.score_block(&[5], out.view_mut()).unwrap();
        for j in 0..12 {
            let want = dot(model.user_factors.row(5).as_slice().unwrap(), model.item_row(j as u32));
            assert!((out[[0, j]] - want).abs() < 1e-5);
        }
        assert_eq!(model.item_embeddings().unwrap().shape(), &[12, 3]);
        let x = model.fold_in(rows.row(5)).unwrap();
        let mut new = vec![0.0f32; 12];
        model.score_new_user(rows.row(5), &mut new).unwrap();
        for (j, &v) in new.iter().enumerate() {
            assert!((v - dot(x.as_slice().unwrap(), model.item_row(j as u32))).abs() < 1e-6);
        }
        let err = Ials::fit(train, &serde_json::json!({"cg_steps": -1}), 1).unwrap_err();
        assert!(err.to_string().contains("ials.cg_steps"), "{err}");
    }
}
