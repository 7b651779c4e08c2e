//! `bpr`: Bayesian personalised ranking (Rendle, Freudenthaler, Gantner, Schmidt-Thieme 2009),
//! matrix factorisation with a movie bias trained by sparse per-sample SGD on sampled
//! (user, positive, negative) triples, as implicit's BPR does, in deterministic parallel lanes.
//!
//! **Loss and update.** A sample is an interaction `(u, i)` drawn uniformly (with replacement,
//! as implicit does) and a negative movie `j`. With `x = p_u . (q_i - q_j) + b_i - b_j` its loss
//! is `-ln sigma(x) + (lambda / 2) (|p_u|^2 + |q_i|^2 + |q_j|^2 + b_i^2 + b_j^2)` (implicit's L2
//! convention: the step subtracts `lr * lambda * row`). With `z = sigma(-x) = 1 / (1 + e^x)`,
//! `d(-ln sigma(x))/dx = -z`, so the gradient is
//!
//! `dp_u = -z (q_i - q_j) + lambda p_u`, `dq_i = -z p_u + lambda q_i`,
//! `dq_j = z p_u + lambda q_j`, `db_i = -z + lambda b_i`, `db_j = z + lambda b_j`,
//!
//! and one SGD step moves each of the five rows by `-lr` times its gradient, all from the values
//! before the step ([`triple_step`]; checked against finite differences of [`triple_loss`]).
//!
//! **Negatives.** `negatives = "uniform"` draws `j` uniformly from the catalogue,
//! `"popularity"` in proportion to `count_j^0.75` (training counts; item2vec's
//! [`UnigramSampler`]), each redrawn while it is one of the user's movies; after
//! [`MAX_REDRAWS`] redraws the sample is skipped (implicit skips at once). Every draw of sample
//! `t` of epoch `e` comes from the SplitMix64 stream `(seed, e, t)`. "One of the user's movies"
//! is a lookup in a user x movie bit table when it fits [`MEMBERSHIP_BYTES`] (ml-100k: 200 KB),
//! else a binary search of the user's row (the same answer).
//!
//! **WARP** (`warp`, LightFM's `loss = "warp"`, Weston, Bengio, Usunier 2011): the same model,
//! samples, lanes and merge, but a sample looks for a violating negative: with
//! `x_ui = p_u . q_i + b_i`, it draws negatives `j` (as above, each one not a movie of the user)
//! until `x_uj > x_ui - 1` or [`BprParams::max_sampled`] negatives were drawn (no step then). A
//! violation found at the `n`-th draw estimates the positive's rank as `floor((M - 1) / n)` for
//! `M` movies, and the step is SGD on `L (1 - x_ui + x_uj)` with the rank weight
//! `L = ln(max(1, floor((M - 1) / n)))` clipped at [`MAX_WARP_WEIGHT`] (LightFM's `MAX_LOSS`):
//! the same update as BPR's with `z` replaced by `L` ([`apply_triple`]; `-ln sigma(x)` has slope
//! `-z` in `x`, the hinge has slope `-L`). LightFM counts a draw that hits a positive in `n`
//! and updates with Adagrad; here a positive is redrawn as BPR's are and the step is plain SGD
//! with BPR's L2, so `lr` and `regularization` mean what they mean for `bpr`. Negatives that do
//! not violate are read, never written (a lane's copy when it has one).
//!
//! **Lanes and determinism.** An epoch is `nnz` samples in steps of `batch_size`; a step is split
//! into [`LANES`] contiguous lanes (a function of `batch_size` only, never of the thread count).
//! Lanes run in parallel (rayon); each copies a row into its own scratch on first touch and runs
//! plain sequential SGD there, so a lane sees its own earlier updates (like one Hogwild thread)
//! but never another lane's. At the end of the step every touched row becomes
//! `first lane's copy + sum over the later lanes, in lane order, of (lane copy - row)`, computed
//! in parallel over rows,
//! so the factors are bitwise identical for any thread count. Cost per sample is one `k`-dot and
//! three `k`-axpys in the lane plus one `k`-add per touched row and lane in the merge; nothing
//! is proportional to the catalogue per step. The lane loop also runs as an AVX2 build of the
//! same source where the CPU has it (no fused multiply-add, so the same bits). Non-finite values after a step are a divergence
//! error naming the epoch and step.
//!
//! This does not go through reelvec-engine's `Trainer`: a per-sample SGD step that sees the
//! lane's earlier samples is no gradient of a batch loss, and the Trainer's per-step gradient
//! buffers and optimizer pass cost more than the samples themselves here (session 4 measured the
//! Trainer path 14x slower than implicit). The tables live in an engine [`ParamStore`] between
//! epochs (checkpoints, scores, `after_epoch`).
//!
//! Scores are `p_u . q_j + b_j` through reelvec-metrics' [`FactorScores`]; item embeddings are
//! the movie factors.

use ndarray::{ArrayView1, ArrayView2, ArrayViewMut2};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use reelvec_engine::memory::{ensure_fits, f32_bytes};
use reelvec_engine::{GradKind, Init, ParamStore, TableId};
use reelvec_metrics::{FactorScores, ItemScorer, MetricsError, RatedItems};

use super::{Interactions, ParamReader, Ranker, RankerKind};
use crate::item2vec::lane::RowMarks;
use crate::item2vec::negative::{sigmoid, SplitMix64};
use crate::item2vec::UnigramSampler;
use crate::mf::dot;
use crate::sgd_lanes::{merge, LaneTable};
use crate::ModelError;

/// Redraws of a negative that turned out to be one of the user's movies before the sample is
/// skipped.
pub const MAX_REDRAWS: usize = 32;

/// Lanes a step is split into (the determinism unit; rayon runs them on however many threads
/// it has).
pub const LANES: usize = 8;

/// The largest rank weight of a WARP step (LightFM's `MAX_LOSS`).
pub const MAX_WARP_WEIGHT: f32 = 10.0;

/// The parameters of [`Bpr`]. Real numbers are kept as given (f64) so that they print as
/// written in `compare --json` and run.json; the fit uses them as f32.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct BprParams {
    /// Factors per user and movie (default 64).
    pub factors: usize,
    /// Passes of `nnz` samples (default 100, implicit's).
    pub epochs: usize,
    /// SGD learning rate (default 0.01, implicit's; warp: [`WARP_DEFAULT_LR`]).
    pub lr: f64,
    /// Samples per step, split over [`LANES`] lanes (default 32768).
    pub batch_size: usize,
    /// L2 weight `lambda` (implicit's convention, see the module doc; default 0.01, implicit's).
    pub regularization: f64,
    /// Negative sampling: "uniform" (default) or "popularity" (count^0.75).
    pub negatives: &'static str,
    /// Standard deviation of the normal initialisation of the factors (default 0.01).
    pub init_std: f64,
    /// WARP only (`warp`; absent for `bpr`): the most negatives a sample draws looking for a
    /// violating one (default 10, LightFM's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_sampled: Option<usize>,
}

impl Default for BprParams {
    fn default() -> Self {
        BprParams {
            factors: 64,
            epochs: 100,
            lr: 0.01,
            batch_size: 32768,
            regularization: 0.01,
            negatives: "uniform",
            init_std: 0.01,
            max_sampled: None,
        }
    }
}

impl BprParams {
    /// The defaults overridden by a JSON object (every field by name), for `bpr`.
    pub fn from_json(params: &serde_json::Value) -> Result<Self, ModelError> {
        Self::from_json_for(RankerKind::Bpr, params)
    }

    /// [`from_json`](Self::from_json) for `bpr` or `warp` (which also takes `max_sampled`).
    pub fn from_json_for(kind: RankerKind, params: &serde_json::Value) -> Result<Self, ModelError> {
        let warp = kind == RankerKind::Warp;
        let keys = ["factors", "epochs", "lr", "batch_size", "regularization", "negatives", "init_std"];
        let r = if warp {
            let mut all = keys.to_vec();
            all.push("max_sampled");
            ParamReader::new(kind, params, &all)?
        } else {
            ParamReader::new(kind, params, &keys)?
        };
        let d = if warp { Self { lr: WARP_DEFAULT_LR, ..Self::default() } } else { Self::default() };
        let positive = |x: f64| x > 0.0;
        Ok(BprParams {
            factors: r.int("factors", d.factors, 1, 65536)?,
            epochs: r.int("epochs", d.epochs, 1, 1_000_000)?,
            lr: r.num("lr", d.lr, positive, "a number > 0")?,
            batch_size: r.int("batch_size", d.batch_size, 1, u32::MAX as usize)?,
            regularization: r.num("regularization", d.regularization, |x| x >= 0.0, "a number >= 0")?,
            negatives: r.choice("negatives", d.negatives, &["uniform", "popularity"])?,
            init_std: r.num("init_std", d.init_std, positive, "a number > 0")?,
            max_sampled: if warp {
                Some(r.int("max_sampled", DEFAULT_MAX_SAMPLED, 1, 1_000_000)?)
            } else {
                None
            },
        })
    }

    /// `warp` when [`max_sampled`](Self::max_sampled) is set, else `bpr`.
    pub fn kind(&self) -> RankerKind {
        if self.max_sampled.is_some() {
            RankerKind::Warp
        } else {
            RankerKind::Bpr
        }
    }
}

/// WARP's default [`BprParams::max_sampled`] (LightFM's).
pub const DEFAULT_MAX_SAMPLED: usize = 10;

/// WARP's default SGD rate. Its steps are up to `ln(M - 1)` times a BPR step of the same `lr`
/// (7.4 on ml-100k), so BPR's 0.01 overshoots: on ml-100k's temporal holdout (64 factors, 100
/// epochs) validation NDCG@10 was 0.083 at 0.01, 0.102 at 0.002, 0.117 at 0.001, 0.119 at
/// 0.0005 and 0.098 at 0.0002 (`reelvec compare --models warp --tune` with those grids).
pub const WARP_DEFAULT_LR: f64 = 0.0005;

/// The tables of a BPR model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct BprTables {
    pub(super) user_factors: TableId,
    pub(super) movie_factors: TableId,
    pub(super) movie_bias: TableId,
}

/// Where negatives come from.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum NegativeSampler {
    Uniform(usize),
    Popularity(UnigramSampler),
}

/// The loss of one triple (see the module doc); `qi`, `qj` end with the movie's bias.
pub fn triple_loss(p: &[f32], qi: &[f32], qj: &[f32], regularization: f32) -> f64 {
    let k = p.len();
    let x = dot(p, &qi[..k]) - dot(p, &qj[..k]) + qi[k] - qj[k];
    let l2 = dot(p, p) + dot(qi, qi) + dot(qj, qj);
    f64::from(crate::item2vec::negative::softplus(-x)) + 0.5 * f64::from(regularization * l2)
}

/// One SGD step on a triple (see the module doc for the gradient): `p` is the user's factors,
/// `qi`, `qj` the positive's and the negative's factors followed by their bias. Returns `x`
/// before the step.
#[inline(always)]
pub fn triple_step(p: &mut [f32], qi: &mut [f32], qj: &mut [f32], lr: f32, regularization: f32) -> f32 {
    let k = p.len();
    let (qi, bi) = qi.split_at_mut(k);
    let (qj, bj) = qj.split_at_mut(k);
    // Eight accumulators (vectorised), summed in a fixed order.
    let mut acc = [0.0f32; 8];
    let (pc, ic, jc) = (p.chunks_exact(8), qi.chunks_exact(8), qj.chunks_exact(8));
    let mut tail = 0.0f32;
    for ((&pv, &a), &b) in pc.remainder().iter().zip(ic.remainder()).zip(jc.remainder()) {
        tail += pv * (a - b);
    }
    for ((pv, a), b) in pc.zip(ic).zip(jc) {
        for l in 0..8 {
            acc[l] += pv[l] * (a[l] - b[l]);
        }
    }
    let x = ((acc[0] + acc[4]) + (acc[1] + acc[5]))
        + ((acc[2] + acc[6]) + (acc[3] + acc[7]))
        + tail
        + (bi[0] - bj[0]);
    apply_triple(p, qi, qj, bi, bj, lr, regularization, sigmoid(-x));
    x
}

/// The update both losses share: with `lz = lr z` and `decay = 1 - lr lambda`, every row moves
/// from its value before the step: `p += lz (q_i - q_j)`, `q_i += lz p`, `q_j -= lz p`,
/// `b_i += lz`, `b_j -= lz`, each after `decay` (BPR: `z = sigma(-x)`; WARP: the rank weight).
#[inline(always)]
#[allow(clippy::too_many_arguments)] // the five rows of a triple and the step's three numbers
fn apply_triple(
    p: &mut [f32],
    qi: &mut [f32],
    qj: &mut [f32],
    bi: &mut [f32],
    bj: &mut [f32],
    lr: f32,
    regularization: f32,
    z: f32,
) {
    let decay = 1.0 - lr * regularization;
    let lz = lr * z;
    for ((pv, a), b) in p.iter_mut().zip(qi.iter_mut()).zip(qj.iter_mut()) {
        let (p0, a0, b0) = (*pv, *a, *b);
        *pv = decay * p0 + lz * (a0 - b0);
        *a = decay * a0 + lz * p0;
        *b = decay * b0 - lz * p0;
    }
    bi[0] = decay * bi[0] + lz;
    bj[0] = decay * bj[0] - lz;
}

/// The loss of one WARP triple with rank weight `weight`: `weight max(0, 1 - x_ui + x_uj)` plus
/// BPR's L2 term (see the module doc); `qi`, `qj` end with the movie's bias.
pub fn warp_triple_loss(p: &[f32], qi: &[f32], qj: &[f32], weight: f32, regularization: f32) -> f64 {
    let k = p.len();
    let x = dot(p, &qi[..k]) - dot(p, &qj[..k]) + qi[k] - qj[k];
    let l2 = dot(p, p) + dot(qi, qi) + dot(qj, qj);
    f64::from(weight * (1.0 - x).max(0.0)) + 0.5 * f64::from(regularization * l2)
}

/// One SGD step of a WARP triple with rank weight `weight` (the module doc; the triple must
/// violate the margin, where the hinge has slope `-weight` in `x`).
#[inline(always)]
pub fn warp_triple_step(
    p: &mut [f32],
    qi: &mut [f32],
    qj: &mut [f32],
    weight: f32,
    lr: f32,
    regularization: f32,
) {
    let k = p.len();
    let (qi, bi) = qi.split_at_mut(k);
    let (qj, bj) = qj.split_at_mut(k);
    apply_triple(p, qi, qj, bi, bj, lr, regularization, weight);
}

/// WARP's rank weight of a violation found at draw `n` (1-based) among `movies` movies:
/// `ln(max(1, floor((movies - 1) / n)))`, at most [`MAX_WARP_WEIGHT`].
pub fn warp_weight(movies: usize, n: usize) -> f32 {
    let rank = (movies.saturating_sub(1) / n.max(1)).max(1);
    (rank as f32).ln().min(MAX_WARP_WEIGHT)
}

/// What every lane reads during a step.
struct Shared<'a> {
    by_user: &'a RatedItems,
    /// `(user, movie)` of each interaction (one load per draw).
    units: &'a [[u32; 2]],
    /// The user x movie membership bits (`words` u64 per user) when they fit
    /// [`MEMBERSHIP_BYTES`]; empty otherwise (then a binary search of the user's row).
    member: &'a [u64],
    words: usize,
    sampler: &'a NegativeSampler,
    users: &'a [f32],
    /// Movie factors with the bias as the last column (`k + 1` wide).
    items: &'a [f32],
    k: usize,
    lr: f32,
    regularization: f32,
    seed: u64,
    epoch: u64,
    /// WARP: the most negatives a sample draws (None: BPR).
    max_sampled: Option<usize>,
    /// Movies in the catalogue (WARP's rank estimate).
    n_items: usize,
}

/// Sample `t` of the epoch: `[user, positive, negative]`, or `None` when every draw of the
/// negative hit one of the user's movies (see the module doc; the CUDA twin draws the same).
#[inline(always)]
fn draw(sh: &Shared<'_>, t: u64) -> Option<[u32; 3]> {
    let mut s = SplitMix64::stream(sh.seed, sh.epoch, t);
    let [u, i] = draw_unit(sh, &mut s);
    draw_negative(sh, &mut s, u).map(|j| [u, i, j])
}

/// The interaction `[user, positive]` a sample starts from (the stream's first number).
#[inline(always)]
fn draw_unit(sh: &Shared<'_>, s: &mut SplitMix64) -> [u32; 2] {
    let nnz = sh.units.len();
    sh.units[((u128::from(s.next_u64()) * nnz as u128) >> 64) as usize]
}

/// A negative for user `u` from the stream: redrawn while it is one of the user's movies, `None`
/// after [`MAX_REDRAWS`] redraws.
#[inline(always)]
fn draw_negative(sh: &Shared<'_>, s: &mut SplitMix64, u: u32) -> Option<u32> {
    let row = if sh.member.is_empty() { sh.by_user.row(u) } else { &[] };
    let bits = sh.member.get(u as usize * sh.words..).unwrap_or(&[]);
    for _ in 0..=MAX_REDRAWS {
        let c = match sh.sampler {
            NegativeSampler::Uniform(n) => ((u128::from(s.next_u64()) * *n as u128) >> 64) as u32,
            NegativeSampler::Popularity(p) => p.token_for(s.next_f64()),
        };
        let positive = if sh.member.is_empty() {
            row.binary_search(&c).is_ok()
        } else {
            bits[c as usize / 64] >> (c % 64) & 1 == 1
        };
        if !positive {
            return Some(c);
        }
    }
    None
}

/// Largest user x movie membership bit table a fit builds (beyond it, negatives are checked by
/// a binary search of the user's row: the same answers, more time).
pub const MEMBERSHIP_BYTES: usize = 32 << 20;

/// The membership bits of `by_user` (`words` u64 per user), or nothing past [`MEMBERSHIP_BYTES`].
fn membership(by_user: &RatedItems, n_items: usize) -> (Vec<u64>, usize) {
    let words = n_items.div_ceil(64);
    let n_users = by_user.n_users();
    if n_users.saturating_mul(words).saturating_mul(8) > MEMBERSHIP_BYTES {
        return (Vec::new(), words);
    }
    let mut bits = vec![0u64; n_users * words];
    for u in 0..n_users {
        for &j in by_user.row(u as u32) {
            bits[u * words + j as usize / 64] |= 1 << (j % 64);
        }
    }
    (bits, words)
}

/// `(user, movie)` of every interaction, in the CSR's order.
pub(super) fn units_of(by_user: &RatedItems) -> Vec<[u32; 2]> {
    let ptr = by_user.indptr();
    (0..by_user.n_users())
        .flat_map(|u| by_user.indices()[ptr[u]..ptr[u + 1]].iter().map(move |&j| [u as u32, j]))
        .collect()
}

/// One lane: its user and movie copies.
#[derive(Debug, Default)]
struct Lane {
    users: LaneTable,
    items: LaneTable,
}

impl Lane {
    /// Runs samples `range` in order. `simd`: the AVX2 build of the same source ([`avx2`]; no
    /// fused multiply-add, so it rounds as the portable build does and the factors are the same).
    fn run(&mut self, sh: &Shared<'_>, range: std::ops::Range<u64>, simd: bool) {
        #[cfg(target_arch = "x86_64")]
        if simd {
            // SAFETY: the CPU supports AVX2 (`avx2` checked it); nothing else is required.
            unsafe { self.run_avx2(sh, range) };
            return;
        }
        let _ = simd;
        self.run_body(sh, range);
    }

    /// [`Lane::run_body`] compiled for AVX2.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn run_avx2(&mut self, sh: &Shared<'_>, range: std::ops::Range<u64>) {
        self.run_body(sh, range);
    }

    #[inline(always)]
    fn run_body(&mut self, sh: &Shared<'_>, range: std::ops::Range<u64>) {
        for t in range {
            self.sample(sh, t);
        }
    }

    /// Draws sample `t` and runs its SGD step on the lane's copies.
    #[inline(always)]
    fn sample(&mut self, sh: &Shared<'_>, t: u64) {
        if let Some(max_sampled) = sh.max_sampled {
            self.warp_sample(sh, t, max_sampled);
            return;
        }
        let Some([u, i, j]) = draw(sh, t) else { return };
        let (k, w) = (sh.k, sh.k + 1);
        let us = self.users.touch(u, sh.users, k);
        let is = self.items.touch(i, sh.items, w);
        let js = self.items.touch(j, sh.items, w);
        let p = &mut self.users.work[us..us + k];
        // i != j: j is not one of the user's movies.
        let (qi, qj) = crate::mf::two_rows_mut(&mut self.items.work, is / w, js / w, w);
        triple_step(p, qi, qj, sh.lr, sh.regularization);
    }

    /// WARP's sample `t` (module doc): negatives from the sample's stream until one violates
    /// the margin, then the weighted step; a negative that does not violate is only read.
    #[inline(always)]
    fn warp_sample(&mut self, sh: &Shared<'_>, t: u64, max_sampled: usize) {
        let mut s = SplitMix64::stream(sh.seed, sh.epoch, t);
        let [u, i] = draw_unit(sh, &mut s);
        let (k, w) = (sh.k, sh.k + 1);
        let us = self.users.touch(u, sh.users, k);
        let is = self.items.touch(i, sh.items, w);
        let p = &self.users.work[us..us + k];
        let qi = &self.items.work[is..is + w];
        let x_ui = dot(p, &qi[..k]) + qi[k];
        for n in 1..=max_sampled {
            let Some(j) = draw_negative(sh, &mut s, u) else { return };
            let qj = self.items.read(j, sh.items, w);
            let x_uj = dot(p, &qj[..k]) + qj[k];
            if x_uj > x_ui - 1.0 {
                let weight = warp_weight(sh.n_items, n);
                let js = self.items.touch(j, sh.items, w);
                let p = &mut self.users.work[us..us + k];
                // i != j: j is not one of the user's movies.
                let (qi, qj) = crate::mf::two_rows_mut(&mut self.items.work, is / w, js / w, w);
                warp_triple_step(p, qi, qj, weight, sh.lr, sh.regularization);
                return;
            }
        }
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

/// Movie factors and biases as one `k + 1`-wide table.
pub(super) fn join_items(store: &ParamStore, t: BprTables) -> Vec<f32> {
    let (q, b) = (store.get(t.movie_factors), store.get(t.movie_bias));
    let mut items = Vec::with_capacity(q.rows * (q.cols + 1));
    for (row, &bias) in q.data.chunks_exact(q.cols.max(1)).zip(&b.data) {
        items.extend_from_slice(row);
        items.push(bias);
    }
    items
}

/// Writes the working tables back into the store.
pub(super) fn split_items(store: &mut ParamStore, t: BprTables, users: &[f32], items: &[f32]) {
    store.get_mut(t.user_factors).data.copy_from_slice(users);
    let k = store.get(t.movie_factors).cols;
    let q = &mut store.get_mut(t.movie_factors).data;
    for (dst, src) in q.chunks_exact_mut(k).zip(items.chunks_exact(k + 1)) {
        dst.copy_from_slice(&src[..k]);
    }
    let b = &mut store.get_mut(t.movie_bias).data;
    for (dst, src) in b.iter_mut().zip(items.chunks_exact(k + 1)) {
        *dst = src[k];
    }
}

/// What both fits start from: the parameters, the initialised tables and the negative sampler.
pub(super) struct Prepared {
    pub(super) params: BprParams,
    pub(super) store: ParamStore,
    pub(super) tables: BprTables,
    pub(super) sampler: NegativeSampler,
}

/// Checks `train` and `params`, draws the initial tables from `seed` (the CPU fit and its CUDA
/// twin start from the same values).
pub(super) fn prepare(
    kind: RankerKind,
    train: Interactions<'_>,
    params: &serde_json::Value,
    seed: u64,
) -> Result<Prepared, ModelError> {
    let params = BprParams::from_json_for(kind, params)?;
    let (n_users, n_items, k) = (train.n_users(), train.n_items, params.factors);
    if train.nnz() == 0 || n_items < 2 {
        return Err(ModelError::InvalidData(format!(
            "{kind} needs interactions and at least 2 movies ({} interactions, {n_items} movies)",
            train.nnz()
        )));
    }
    // The store, the working tables and the lanes' row slots.
    ensure_fits(
        &format!("{kind} factors [{n_users} + {n_items}, {k}]"),
        f32_bytes(((n_users + n_items) * (2 * (k + 1) + LANES)) as u128, 1) + MEMBERSHIP_BYTES as u128,
    )?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut store = ParamStore::new();
    let normal = Init::Normal { mean: 0.0, std: params.init_std as f32 };
    let tables = BprTables {
        user_factors: store.add("user_factors", n_users, k, GradKind::SparseRows, normal, &mut rng)?,
        movie_factors: store.add("movie_factors", n_items, k, GradKind::SparseRows, normal, &mut rng)?,
        movie_bias: store.add("movie_bias", n_items, 1, GradKind::SparseRows, Init::Zeros, &mut rng)?,
    };
    let sampler = match params.negatives {
        "popularity" => {
            let counts: Vec<u64> = train.by_user.movie_counts(n_items)?.into_iter().map(u64::from).collect();
            NegativeSampler::Popularity(
                UnigramSampler::new(&counts, 0.75)
                    .ok_or_else(|| ModelError::InvalidData(format!("{kind}: no movie has an interaction")))?,
            )
        }
        _ => NegativeSampler::Uniform(n_items),
    };
    Ok(Prepared { params, store, tables, sampler })
}

impl Bpr {
    /// Fits BPR on `train` (see the module doc); `seed` fixes the initialisation and every draw.
    pub fn fit(train: Interactions<'_>, params: &serde_json::Value, seed: u64) -> Result<Self, ModelError> {
        Self::fit_observed(train, params, seed, |_, _| {})
    }

    /// Fits the same model with the WARP loss (`warp`, see the module doc).
    pub fn fit_warp(
        train: Interactions<'_>,
        params: &serde_json::Value,
        seed: u64,
    ) -> Result<Self, ModelError> {
        Self::fit_kind(RankerKind::Warp, train, params, seed, |_, _| {})
    }

    /// [`Bpr::fit`], calling `after_epoch(epoch, scores)` after each epoch (0-based) with the
    /// current model's scores.
    pub fn fit_observed(
        train: Interactions<'_>,
        params: &serde_json::Value,
        seed: u64,
        after_epoch: impl FnMut(usize, &FactorScores<'_>) + Send,
    ) -> Result<Self, ModelError> {
        Self::fit_kind(RankerKind::Bpr, train, params, seed, after_epoch)
    }

    /// [`Bpr::fit_observed`] for `kind` (`bpr` or `warp`).
    pub fn fit_kind(
        kind: RankerKind,
        train: Interactions<'_>,
        params: &serde_json::Value,
        seed: u64,
        mut after_epoch: impl FnMut(usize, &FactorScores<'_>) + Send,
    ) -> Result<Self, ModelError> {
        let Prepared { params, mut store, tables, sampler } = prepare(kind, train, params, seed)?;
        let (n_users, n_items, k) = (train.n_users(), train.n_items, params.factors);
        let units = units_of(train.by_user);
        let (member, words) = membership(train.by_user, n_items);
        let simd = super::ials::avx2();
        let mut users = store.get(tables.user_factors).data.clone();
        let mut items = join_items(&store, tables);
        let mut lanes: Vec<Lane> = (0..LANES)
            .map(|_| Lane { users: LaneTable::new(n_users), items: LaneTable::new(n_items) })
            .collect();
        let (mut user_marks, mut item_marks, mut out) =
            (RowMarks::default(), RowMarks::default(), Vec::new());
        user_marks.resize(n_users);
        item_marks.resize(n_items);
        let nnz = units.len();
        let batch = params.batch_size;
        let per_lane = batch.div_ceil(LANES);
        for epoch in 0..params.epochs {
            for (step, start) in (0..nnz).step_by(batch).enumerate() {
                let end = (start + batch).min(nnz);
                let shared = Shared {
                    by_user: train.by_user,
                    units: &units,
                    member: &member,
                    words,
                    sampler: &sampler,
                    users: &users,
                    items: &items,
                    k,
                    lr: params.lr as f32,
                    regularization: params.regularization as f32,
                    seed,
                    epoch: epoch as u64,
                    max_sampled: params.max_sampled,
                    n_items,
                };
                lanes.par_iter_mut().enumerate().for_each(|(l, lane)| {
                    let a = (start + l * per_lane).min(end);
                    let b = (a + per_lane).min(end);
                    lane.run(&shared, a as u64..b as u64, simd);
                });
                let parts: Vec<&LaneTable> = lanes.iter().map(|l| &l.users).collect();
                let mut finite = merge(&mut users, k, &parts, &mut user_marks, &mut out);
                let parts: Vec<&LaneTable> = lanes.iter().map(|l| &l.items).collect();
                finite &= merge(&mut items, k + 1, &parts, &mut item_marks, &mut out);
                lanes.iter_mut().for_each(|l| {
                    l.users.clear();
                    l.items.clear();
                });
                if !finite {
                    return Err(reelvec_engine::EngineError::Diverged {
                        epoch,
                        step,
                        what: format!(
                            "a {} factor after an SGD step (lr {}) is not finite",
                            params.kind(),
                            params.lr
                        ),
                    }
                    .into());
                }
            }
            split_items(&mut store, tables, &users, &items);
            after_epoch(epoch, &scores_of(&store, tables)?);
            // The host's stop hook (Ctrl-C in Python) between epochs: no model comes back.
            reelvec_engine::step_hook::after_step(epoch as u64 + 1, params.epochs as u64)?;
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
        self.params.kind()
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
            let params = serde_json::json!({"factors": 8, "epochs": 40, "batch_size": 64, "lr": 0.05, "init_std": 0.1, "negatives": negatives});
            let model = Bpr::fit_observed(train, &params, 3, |_, s| aucs.push(auc(s, &rows, &held))).unwrap();
            assert_eq!(aucs.len(), 40);
            assert!(aucs[0] < 0.75, "{negatives}: {aucs:?}");
            assert!(aucs[39] > 0.85 && aucs[39] > aucs[0] + 0.2, "{negatives}: {aucs:?}");
            assert_eq!(auc(&model, &rows, &held), aucs[39]);
        }
    }

    #[test]
    fn the_sgd_step_is_minus_lr_times_the_finite_difference_gradient() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let (k, lr, reg) = (5, 1e-3f32, 0.05f32);
        let mut draw = |n: usize| -> Vec<f32> { (0..n).map(|_| rng.random_range(-0.8..0.8f32)).collect() };
        for _ in 0..5 {
            let (p, qi, qj) = (draw(k), draw(k + 1), draw(k + 1));
            let (mut p2, mut qi2, mut qj2) = (p.clone(), qi.clone(), qj.clone());
            triple_step(&mut p2, &mut qi2, &mut qj2, lr, reg);
            step_matches_differences([&p, &qi, &qj], [&p2, &qi2, &qj2], lr, |r| {
                triple_loss(&r[0], &r[1], &r[2], reg)
            });
        }
    }

    /// The rows `stepped` after one SGD step of rate `lr` from `rows` moved by `-lr` times the
    /// gradient of `loss`: central differences in every coordinate of the three rows.
    fn step_matches_differences(
        rows: [&Vec<f32>; 3],
        stepped: [&Vec<f32>; 3],
        lr: f32,
        loss: impl Fn(&[Vec<f32>; 3]) -> f64,
    ) {
        let h = 1e-2f32;
        for (which, (row, stepped)) in rows.iter().zip(stepped).enumerate() {
            for c in 0..row.len() {
                let at = |d: f32| {
                    let mut r: [Vec<f32>; 3] = [rows[0].clone(), rows[1].clone(), rows[2].clone()];
                    r[which][c] += d;
                    loss(&r)
                };
                let numeric = (at(h) - at(-h)) / (2.0 * f64::from(h));
                let analytic = f64::from(row[c] - stepped[c]) / f64::from(lr);
                assert!(
                    (numeric - analytic).abs() < 2e-3 + 2e-2 * numeric.abs(),
                    "row {which} col {c}: {numeric} vs {analytic}"
                );
            }
        }
    }

    #[test]
    fn negatives_are_never_the_users_movies_and_a_step_touches_only_its_rows() {
        let (rows, _) = planted();
        let units = units_of(&rows);
        let (member, words) = membership(&rows, 20);
        assert_eq!(member.len(), 40 * words);
        let (k, w) = (3, 4);
        let users = vec![0.5f32; 40 * k];
        let items: Vec<f32> = (0..20 * w).map(|x| (x % 7) as f32 * 0.1).collect();
        let sampler = NegativeSampler::Uniform(20);
        let shared = Shared {
            by_user: &rows,
            units: &units,
            member: &member,
            words,
            sampler: &sampler,
            users: &users,
            items: &items,
            k,
            lr: 0.1,
            regularization: 0.0,
            seed: 1,
            epoch: 2,
            max_sampled: None,
            n_items: 20,
        };
        // The membership bits and the binary search draw the same samples.
        let searched = Shared { member: &[], ..shared };
        let mut skipped = 0;
        for t in 0..2000 {
            assert_eq!(draw(&shared, t), draw(&searched, t));
            skipped += usize::from(draw(&shared, t).is_none());
        }
        assert_eq!(skipped, 0);
        let mut lane = Lane { users: LaneTable::new(40), items: LaneTable::new(20) };
        for t in 0..50 {
            lane.sample(&shared, t);
            assert!(lane.users.rows.len() <= 1 && lane.items.rows.len() == 2);
            let u = lane.users.rows[0];
            let (i, j) = (lane.items.rows[0], lane.items.rows[1]);
            assert!(rows.row(u).binary_search(&i).is_ok() && rows.row(u).binary_search(&j).is_err());
            lane.users.clear();
            lane.items.clear();
        }
    }

    #[test]
    fn the_avx2_build_of_a_lane_gives_the_portable_values() {
        let (rows, _) = planted();
        let units = units_of(&rows);
        let (member, words) = membership(&rows, 20);
        let k = 19; // two chunks of eight and a tail
        let users: Vec<f32> = (0..40 * k).map(|x| ((x * 37 % 101) as f32 - 50.0) * 0.01).collect();
        let items: Vec<f32> = (0..20 * (k + 1)).map(|x| ((x * 53 % 97) as f32 - 48.0) * 0.01).collect();
        let sampler = NegativeSampler::Uniform(20);
        let shared = Shared {
            by_user: &rows,
            units: &units,
            member: &member,
            words,
            sampler: &sampler,
            users: &users,
            items: &items,
            k,
            lr: 0.05,
            regularization: 0.01,
            seed: 9,
            epoch: 0,
            max_sampled: None,
            n_items: 20,
        };
        let run = |simd| {
            let mut lane = Lane { users: LaneTable::new(40), items: LaneTable::new(20) };
            lane.run(&shared, 0..300, simd);
            (lane.users.work, lane.items.work)
        };
        let portable = run(false);
        assert!(portable.0.iter().zip(&users).any(|(a, b)| a != b));
        assert_eq!(portable, run(super::super::ials::avx2()));
    }

    #[test]
    fn params_print_as_written() {
        let p = BprParams::from_json(&serde_json::json!({"lr": 0.1, "regularization": 0.003})).unwrap();
        let text = serde_json::to_string(&p).unwrap();
        assert!(text.contains("\"lr\":0.1,") && text.contains("\"regularization\":0.003,"), "{text}");
        assert!(text.contains("\"init_std\":0.01}"), "{text}");
    }

    #[test]
    fn fit_is_bitwise_identical_for_1_2_and_4_threads_and_bad_values_are_named() {
        let (rows, _) = planted();
        let train = Interactions::new(&rows, 20).unwrap();
        // Batches larger than a lane's share so that lanes share rows and the merge sums them.
        let params =
            serde_json::json!({"factors": 4, "epochs": 3, "batch_size": 96, "negatives": "popularity"});
        let fit = |t| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(t).build().unwrap();
            pool.install(|| Bpr::fit(train, &params, 4).unwrap())
        };
        let one = fit(1);
        assert_eq!(one, fit(2));
        assert_eq!(one, fit(4));
        let err = Bpr::fit(train, &serde_json::json!({"negatives": "hard"}), 1).unwrap_err();
        assert!(err.to_string().contains("bpr.negatives"), "{err}");
        assert_eq!(fit(1).item_embeddings().unwrap().shape(), &[20, 4]);
    }

    #[test]
    fn the_warp_step_is_minus_lr_times_the_finite_difference_gradient() {
        let mut rng = ChaCha8Rng::seed_from_u64(8);
        let (k, lr, reg, weight) = (5, 1e-3f32, 0.05f32, 3.2f32);
        let mut draw = |n: usize| -> Vec<f32> { (0..n).map(|_| rng.random_range(-0.8..0.8f32)).collect() };
        let mut checked = 0;
        while checked < 5 {
            let (p, qi, qj) = (draw(k), draw(k + 1), draw(k + 1));
            let x = dot(&p, &qi[..k]) - dot(&p, &qj[..k]) + qi[k] - qj[k];
            // Inside the margin and away from the hinge's kink, where the loss is smooth.
            if x > 0.9 {
                continue;
            }
            checked += 1;
            let (mut p2, mut qi2, mut qj2) = (p.clone(), qi.clone(), qj.clone());
            warp_triple_step(&mut p2, &mut qi2, &mut qj2, weight, lr, reg);
            step_matches_differences([&p, &qi, &qj], [&p2, &qi2, &qj2], lr, |r| {
                warp_triple_loss(&r[0], &r[1], &r[2], weight, reg)
            });
        }
    }

    #[test]
    fn warp_weights_by_hand() {
        // floor((M - 1) / n), at least 1, then ln, at most MAX_WARP_WEIGHT.
        assert_eq!(warp_weight(1682, 1), 1681f32.ln());
        assert_eq!(warp_weight(1682, 10), 168f32.ln());
        assert_eq!(warp_weight(3, 5), 0.0);
        assert_eq!(warp_weight(2, 1), 0.0);
        assert_eq!(warp_weight(100_000_000, 1), MAX_WARP_WEIGHT);
    }

    #[test]
    fn a_warp_sample_steps_only_on_a_violating_negative() {
        let (rows, _) = planted();
        let units = units_of(&rows);
        let (member, words) = membership(&rows, 20);
        let (k, w) = (3, 4);
        let users = vec![0.5f32; 40 * k];
        let sampler = NegativeSampler::Uniform(20);
        let flat = vec![0.2f32; 20 * w];
        let base = Shared {
            by_user: &rows,
            units: &units,
            member: &member,
            words,
            sampler: &sampler,
            users: &users,
            items: &flat,
            k,
            lr: 0.1,
            regularization: 0.0,
            seed: 1,
            epoch: 0,
            max_sampled: Some(10),
            n_items: 20,
        };
        for t in 0..50 {
            // Every row equal: x_uj = x_ui > x_ui - 1, so the first negative violates and the
            // step moves the positive and that negative (q_i += lz p, q_j -= lz p).
            let sh = Shared { items: &flat, ..base };
            let [u, i] = draw_unit(&sh, &mut SplitMix64::stream(1, 0, t));
            let mut lane = Lane { users: LaneTable::new(40), items: LaneTable::new(20) };
            lane.sample(&sh, t);
            assert_eq!(lane.users.rows, [u]);
            assert_eq!(lane.items.rows.len(), 2, "the positive and the first negative");
            let j = lane.items.rows[1];
            assert_eq!(lane.items.rows[0], i);
            assert!(rows.row(u).binary_search(&j).is_err());
            let weight = warp_weight(20, 1);
            assert_eq!(lane.items.work[k], 0.2 + 0.1 * weight, "b_i += lr L");
            assert_eq!(lane.items.work[w + k], 0.2 - 0.1 * weight, "b_j -= lr L");
            // The positive's bias 5 above every other movie: no negative violates, no step, and
            // the negatives read are never copied.
            let mut ahead = flat.clone();
            ahead[i as usize * w + k] = 5.0;
            let sh = Shared { items: &ahead, ..base };
            let mut lane = Lane { users: LaneTable::new(40), items: LaneTable::new(20) };
            lane.sample(&sh, t);
            assert_eq!(lane.items.rows, [i]);
            assert_eq!(lane.items.work, ahead[i as usize * w..(i as usize + 1) * w]);
            assert_eq!(lane.users.work, users[u as usize * k..(u as usize + 1) * k]);
        }
    }

    #[test]
    fn warp_learns_planted_tastes_bitwise_for_1_2_and_4_threads() {
        let (rows, held) = planted();
        let train = Interactions::new(&rows, 20).unwrap();
        let params =
            serde_json::json!({"factors": 8, "epochs": 40, "batch_size": 64, "lr": 0.005, "init_std": 0.1});
        let fit = |t: usize| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(t).build().unwrap();
            pool.install(|| {
                let mut aucs = Vec::new();
                let m = Bpr::fit_kind(RankerKind::Warp, train, &params, 3, |_, s| {
                    aucs.push(auc(s, &rows, &held))
                })
                .unwrap();
                (m, aucs)
            })
        };
        let (one, aucs) = fit(1);
        assert_eq!(one.kind(), RankerKind::Warp);
        assert_eq!(one.params_used().max_sampled, Some(DEFAULT_MAX_SAMPLED));
        assert!(aucs[0] < 0.75, "{aucs:?}");
        assert!(aucs[39] > 0.85 && aucs[39] > aucs[0] + 0.2, "{aucs:?}");
        for t in [2, 4] {
            assert_eq!(one, fit(t).0, "{t} threads");
        }
        // Not the BPR model: the same draws, another loss.
        let bpr = Bpr::fit(train, &params, 3).unwrap();
        assert_ne!(bpr.item_factors(), one.item_factors());
    }

    #[test]
    fn warp_params_have_their_own_defaults_and_keys() {
        let warp = BprParams::from_json_for(RankerKind::Warp, &serde_json::Value::Null).unwrap();
        assert_eq!((warp.lr, warp.max_sampled, warp.kind()), (WARP_DEFAULT_LR, Some(10), RankerKind::Warp));
        let text = serde_json::to_string(&warp).unwrap();
        assert!(text.contains("\"max_sampled\":10"), "{text}");
        let bpr = BprParams::from_json(&serde_json::Value::Null).unwrap();
        assert_eq!((bpr.max_sampled, bpr.kind()), (None, RankerKind::Bpr));
        assert!(!serde_json::to_string(&bpr).unwrap().contains("max_sampled"));
        let err = BprParams::from_json(&serde_json::json!({"max_sampled": 5})).unwrap_err().to_string();
        assert!(err.contains("max_sampled"), "{err}");
        let err = BprParams::from_json_for(RankerKind::Warp, &serde_json::json!({"max_sampled": 0}))
            .unwrap_err()
            .to_string();
        assert!(err.contains("warp.max_sampled"), "{err}");
    }
}
