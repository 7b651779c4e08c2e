//! Per-pair SGD for skip-gram and CBOW with negative sampling, as word2vec.c and gensim's
//! `word2vec_inner.pyx` train them (`fast_sentence_sg_neg`, `fast_sentence_cbow_neg`):
//! `model.trainer = "pair_sgd"` ([`train_pairs`]).
//!
//! **Update.** gensim's names: `syn0` is `embedding` (the exported vectors), `syn1neg` is
//! `out_weight`; `out_bias` stays 0 (word2vec has no output bias). For an input vector `h` and
//! an output token `x` with label `l` (1 for the positive, 0 for a negative), `s = h . W[x]`,
//! the loss `-ln sigma(s)` (l = 1) or `-ln sigma(-s)` (l = 0) has `d/ds = sigma(s) - l`, so one
//! SGD step at rate `alpha` is, with `g = (l - sigma(s)) alpha`:
//!
//! ```text
//! work += g W[x]          (the input's step, applied after every output of the pair)
//! W[x] += g h             (with h before the pair's step, as gensim)
//! ```
//!
//! **Skip-gram** (gensim's pair order): for position `i` and each context position `j` of its
//! window, `h = E[t_j]`, the positive is `t_i`, then `E[t_j] += work`. **CBOW**: `h` is the sum
//! of the context rows (divided by their count with `context = "mean"`, gensim's `cbow_mean=1`),
//! the positive is `t_i`, and every context row gets `work` (gensim: `work / count` with the sum,
//! `work` unscaled with the mean).
//!
//! **Sigmoid:** gensim's table, not the exact function: `EXP_TABLE_SIZE` = 1000 values of
//! `sigma` on `[-6, 6)`, index `floor((s + 6) * 1000 / 12)`; a pair term with `|s| >= 6` takes no
//! step (gensim's `continue`). The reported loss uses gensim's log-sigmoid table the same way and
//! the exact softplus for the saturated terms.
//!
//! **Negatives:** `negatives` draws per positive from the unigram^`unigram_power` table
//! ([`UnigramSampler`], gensim's cum-table bisection); a draw equal to the positive is skipped,
//! not redrawn (gensim). **Learning rate:** `alpha` (`model.alpha`, else `train.lr`) decays
//! linearly to `min_alpha` (else constant) by raw words processed, set at every sequence start:
//! gensim's `alpha - (alpha - min_alpha) progress` through [`decayed_train_config`] with one
//! step per word. **Subsampling and shrunk windows** are [`EpochSampling`]'s draws (the same
//! as the engine trainer's); sequences are visited in order (no shuffle, as gensim).
//! **Initialisation:** gensim's: `embedding` uniform in `[-0.5/k, 0.5/k)` (seeded ChaCha8),
//! `out_weight` zero.
//!
//! **Determinism:** an epoch is cut into steps of `model.pair_lanes` lanes
//! ([`DEFAULT_PAIR_LANES`]) of contiguous sequences, each
//! lane holding at least [`LANE_WORDS`] raw words (the last lane of the epoch fewer) — a
//! function of the data only. Lanes run in parallel on copy-on-touch copies of the rows
//! (sequential SGD inside a lane, like one gensim worker on its job) and are merged at the end
//! of the step in lane order ([`crate::sgd_lanes`], shared with bpr); every draw of sequence `s`
//! in epoch `e` comes from SplitMix64 streams keyed by (seed, e, s). The tables are bitwise
//! identical for any thread count.
//!
//! **Hogwild** (`model.trainer = "pair_sgd_hogwild"`, [`Item2VecTrainer::PairSgdHogwild`]): the
//! same per-sequence loop and draws, but the lanes of every step are jobs that rayon's workers
//! take in any order, updating the shared tables in place without locks as gensim's workers
//! do: each row is loaded from relaxed `AtomicU32`s (the f32 bits) into the worker's buffer,
//! updated there and stored back ([`SharedRows`]), so an update racing another one can be lost
//! but no access is a data race in Rust's sense. Its results vary with thread scheduling above
//! 1 thread (at 1 thread it is plain sequential SGD in sequence order, reproducible).
//!
//! Not through reelvec-engine's `Trainer` (a per-pair step that sees the lane's earlier pairs is
//! no gradient of a batch loss); no validation loss and no early stopping: the history records
//! the mean training loss per positive pair, the rate at the epoch's end and its seconds.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;

use rand::{Rng, SeedableRng};
use rayon::prelude::*;
use reelvec_engine::{EngineError, EpochStats, History, ParamStore, TrainConfig};

use super::lane::RowMarks;
use super::negative::{softplus, SplitMix64};
use super::{
    decayed_train_config, Architecture, ContextReduce, EpochSampling, Item2VecConfig, Item2VecTables,
};
use super::{Item2VecTrainer, UnigramSampler};
use crate::mf::dot;
use crate::sgd_lanes::{merge, LaneTable};
use crate::ModelError;

/// Lanes a step of `pair_sgd` is split into by default (`model.pair_lanes`; the determinism
/// unit: rayon runs them on however many threads it has, so more threads than lanes do not
/// help). Lanes meet only at the step's merge, so each lane added makes the updates staler: on
/// the corpus suite (`reelvec bench --suite corpus --scale-fraction 0.02`, vocabulary 13,428,
/// 375,102 words, 5 epochs) next-token hit@10 was, for 1 / 2 / 4 / 8 lanes, skip-gram
/// 0.2765 / 0.2665 / 0.2495 / 0.1920 and CBOW 0.2550 / 0.2520 / 0.2450 / 0.2035, against gensim's
/// Hogwild 0.2765-0.2880 and 0.2535-0.2555 (1 lane is plain sequential SGD, the Hogwild mode at 1
/// thread). Two lanes keep gensim's quality within noise and use both cores of a 2-core machine;
/// wider machines trade quality for speed with more lanes, or use `pair_sgd_hogwild`.
pub const DEFAULT_PAIR_LANES: usize = 2;

/// The most lanes `model.pair_lanes` takes.
pub const MAX_PAIR_LANES: usize = 256;

/// Jobs a Hogwild step is cut into (lanes' cut of the sequences; the workers take them in any
/// order, and nothing merges).
const HOGWILD_JOBS_PER_STEP: usize = 8;

/// Raw words a lane takes before the next lane starts (gensim's jobs hold 10,000 words). Shorter
/// lanes are fresher but pay a merge per step (lanes of 2,048 words: skip-gram hit@10 0.249
/// against 0.192 at 8 lanes, 20% slower; lanes of 1,024 words diverged on a 60-token vocabulary,
/// where every lane moves every row); fewer lanes ([`DEFAULT_PAIR_LANES`]) gained more.
pub const LANE_WORDS: usize = 8192;

/// gensim's `EXP_TABLE_SIZE`.
const EXP_TABLE_SIZE: usize = 1000;
/// gensim's `MAX_EXP`.
const MAX_EXP: f32 = 6.0;
/// Salt of the negative draws (apart from [`EpochSampling`]'s draws of the same seed).
const PAIR_SALT: u64 = 0x9A1E_5CD0_77E3_4B21;

/// gensim's sigmoid and log-sigmoid tables.
#[derive(Debug, Clone)]
pub struct SigmoidTable {
    sig: Vec<f32>,
    log: Vec<f32>,
}

impl Default for SigmoidTable {
    fn default() -> Self {
        Self::new()
    }
}

impl SigmoidTable {
    /// gensim's `EXP_TABLE` and `LOG_TABLE`: entry `i` is `sigma(x_i)` (and its log) at
    /// `x_i = (2 i / 1000 - 1) 6`.
    pub fn new() -> Self {
        let (mut sig, mut log) = (Vec::with_capacity(EXP_TABLE_SIZE), Vec::with_capacity(EXP_TABLE_SIZE));
        for i in 0..EXP_TABLE_SIZE {
            let e = ((i as f32 / EXP_TABLE_SIZE as f32 * 2.0 - 1.0) * MAX_EXP).exp();
            let s = e / (e + 1.0);
            sig.push(s);
            log.push(s.ln());
        }
        Self { sig, log }
    }

    /// The table index of `s` (`|s| < 6`).
    #[inline]
    fn index(s: f32) -> usize {
        (((s + MAX_EXP) * (EXP_TABLE_SIZE as f32 / MAX_EXP / 2.0)) as usize).min(EXP_TABLE_SIZE - 1)
    }

    /// `sigma(s)` from the table, or None when `|s| >= 6` (no step, as gensim).
    #[inline]
    pub fn sigmoid(&self, s: f32) -> Option<f32> {
        (s > -MAX_EXP && s < MAX_EXP).then(|| self.sig[Self::index(s)])
    }

    /// The loss of a term with score `s` and label `label`: `-ln sigma(+-s)` from the log table,
    /// the exact softplus where `|s| >= 6`.
    #[inline]
    fn loss(&self, s: f32, label: f32) -> f32 {
        let y = if label > 0.5 { s } else { -s };
        if y > -MAX_EXP && y < MAX_EXP {
            -self.log[Self::index(y)]
        } else {
            softplus(-y)
        }
    }
}

/// `y += a x` (vectorises; element-wise, so any vector width rounds the same).
#[inline(always)]
fn axpy(a: f32, x: &[f32], y: &mut [f32]) {
    y.iter_mut().zip(x).for_each(|(y, &x)| *y += a * x);
}

/// The row arithmetic of the inner loop: the portable build ([`Portable`]) or AVX2's
/// ([`Avx2`]); element by element the same operations, so bitwise the same results.
trait RowMath: Copy {
    /// `a . b` ([`crate::mf::dot`]'s operations).
    fn dot(self, a: &[f32], b: &[f32]) -> f32;
    /// `y += f x`.
    fn axpy(self, f: f32, x: &[f32], y: &mut [f32]);
}

/// The portable row arithmetic.
#[derive(Debug, Clone, Copy)]
struct Portable;

impl RowMath for Portable {
    #[inline(always)]
    fn dot(self, a: &[f32], b: &[f32]) -> f32 {
        dot(a, b)
    }

    #[inline(always)]
    fn axpy(self, f: f32, x: &[f32], y: &mut [f32]) {
        axpy(f, x, y)
    }
}

/// AVX2's row arithmetic ([`super::simd`]); a value exists only on a CPU with AVX2
/// ([`Avx2::detect`]), which is what makes its safe methods sound.
#[cfg(target_arch = "x86_64")]
#[derive(Debug, Clone, Copy)]
struct Avx2(());

#[cfg(target_arch = "x86_64")]
impl Avx2 {
    fn detect() -> Option<Self> {
        std::arch::is_x86_feature_detected!("avx2").then_some(Avx2(()))
    }
}

#[cfg(target_arch = "x86_64")]
impl RowMath for Avx2 {
    #[inline(always)]
    fn dot(self, a: &[f32], b: &[f32]) -> f32 {
        // SAFETY: an `Avx2` exists only where AVX2 was detected.
        unsafe { super::simd::dot(a, b) }
    }

    #[inline(always)]
    fn axpy(self, f: f32, x: &[f32], y: &mut [f32]) {
        // SAFETY: an `Avx2` exists only where AVX2 was detected.
        unsafe { super::simd::axpy(f, x, y) }
    }
}

/// What every lane reads during an epoch.
struct Shared<'a> {
    config: &'a Item2VecConfig,
    sampler: &'a UnigramSampler,
    table: &'a SigmoidTable,
    seed: u64,
    epoch: u64,
    /// The epoch's draws.
    sampling: &'a Sampling<'a>,
    /// Raw words before each sequence in the epoch.
    words_before: &'a [u64],
    /// The rate after a number of raw words of the whole run.
    alpha_at: &'a (dyn Fn(u64) -> f32 + Sync),
    /// Raw words of the run before this epoch.
    epoch_words: u64,
}

/// Row access of one table while a sequence trains: the deterministic lanes' copy-on-touch rows
/// ([`LaneRows`]) or the Hogwild mode's shared rows ([`SharedRows`]). One inner loop
/// ([`train_sequence`]) serves both.
trait Rows {
    /// Row `r`, to read and update (valid until the next call).
    fn row(&mut self, r: u32) -> &mut [f32];
    /// Makes the updates of row `r` (the row `row` last returned) visible to the other workers.
    fn publish(&mut self, r: u32);
}

/// A lane's copy-on-touch rows of one table ([`crate::sgd_lanes`]); publishing is the step's
/// merge, so [`Rows::publish`] does nothing.
struct LaneRows<'a> {
    table: &'a mut LaneTable,
    shared: &'a [f32],
    k: usize,
}

impl Rows for LaneRows<'_> {
    #[inline(always)]
    fn row(&mut self, r: u32) -> &mut [f32] {
        let at = self.table.touch(r, self.shared, self.k);
        &mut self.table.work[at..at + self.k]
    }

    #[inline(always)]
    fn publish(&mut self, _: u32) {}
}

/// Hogwild rows: the shared table as f32 bits in relaxed atomics, read into a worker's buffer and
/// stored back after the update, as gensim's workers update `syn0`/`syn1neg` in place without
/// locks. Another worker's store between the load and the store is overwritten (a lost update,
/// as in any Hogwild SGD); there is no data race in Rust's sense (every shared access is atomic).
struct SharedRows<'a> {
    table: &'a [AtomicU32],
    buf: &'a mut [f32],
}

impl Rows for SharedRows<'_> {
    #[inline(always)]
    fn row(&mut self, r: u32) -> &mut [f32] {
        let k = self.buf.len();
        let src = &self.table[r as usize * k..][..k];
        self.buf.iter_mut().zip(src).for_each(|(b, a)| *b = f32::from_bits(a.load(Ordering::Relaxed)));
        self.buf
    }

    #[inline(always)]
    fn publish(&mut self, r: u32) {
        let k = self.buf.len();
        let dst = &self.table[r as usize * k..][..k];
        dst.iter().zip(self.buf.iter()).for_each(|(a, b)| a.store(b.to_bits(), Ordering::Relaxed));
    }
}

/// A worker's scratch: gensim's `neu1` and `work`, the context rows of a CBOW position, the
/// sequence's draws and the loss sums.
#[derive(Debug, Default)]
struct Scratch {
    neu1: Vec<f32>,
    work: Vec<f32>,
    ctx: Vec<u32>,
    kept: Vec<u32>,
    windows: Vec<usize>,
    loss: f64,
    pairs: u64,
}

impl Scratch {
    fn new(k: usize) -> Self {
        Scratch { neu1: vec![0.0; k], work: vec![0.0; k], ..Scratch::default() }
    }
}

/// The positive `center` and its negatives against the input vector `h`, accumulating the
/// input's step in `work` (zeroed first) and the loss in `loss`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn outputs<M: RowMath, O: Rows>(
    m: M,
    sh: &Shared<'_>,
    h: &[f32],
    center: u32,
    syn1: &mut O,
    work: &mut [f32],
    loss: &mut f64,
    alpha: f32,
    rng: &mut SplitMix64,
) {
    work.iter_mut().for_each(|w| *w = 0.0);
    for d in 0..=sh.config.negatives {
        let (target, label) = if d == 0 {
            (center, 1.0f32)
        } else {
            let t = sh.sampler.token_for(rng.next_f64());
            if t == center {
                continue;
            }
            (t, 0.0)
        };
        let row = syn1.row(target);
        let s = m.dot(h, row);
        *loss += f64::from(sh.table.loss(s, label));
        let Some(f) = sh.table.sigmoid(s) else { continue };
        let g = (label - f) * alpha;
        m.axpy(g, row, work);
        m.axpy(g, h, row);
        syn1.publish(target);
    }
}

/// Every pair of one drawn sequence (`kept` with its `windows`), gensim's order.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn train_sequence<M: RowMath, I: Rows, O: Rows>(
    m: M,
    sh: &Shared<'_>,
    kept: &[u32],
    windows: &[usize],
    syn0: &mut I,
    syn1: &mut O,
    sc: &mut Scratch,
    rng: &mut SplitMix64,
    alpha: f32,
) {
    let n = kept.len();
    let (lo, hi) = if sh.config.drop_ends { (1, n.saturating_sub(1)) } else { (0, n) };
    for i in lo..hi.max(lo) {
        let (a, b) = sh.config.context_side.window_bounds(i, n, windows[i].max(1));
        match sh.config.architecture {
            Architecture::Skipgram => {
                for j in (a..=b).filter(|&j| j != i) {
                    let h = syn0.row(kept[j]);
                    sc.pairs += 1;
                    outputs(m, sh, h, kept[i], syn1, &mut sc.work, &mut sc.loss, alpha, rng);
                    m.axpy(1.0, &sc.work, h);
                    syn0.publish(kept[j]);
                }
            }
            Architecture::Cbow => {
                sc.ctx.clear();
                sc.neu1.iter_mut().for_each(|x| *x = 0.0);
                for j in (a..=b).filter(|&j| j != i) {
                    m.axpy(1.0, syn0.row(kept[j]), &mut sc.neu1);
                    sc.ctx.push(kept[j]);
                }
                if sc.ctx.is_empty() {
                    continue;
                }
                let inv = 1.0 / sc.ctx.len() as f32;
                if sh.config.context == ContextReduce::Mean {
                    sc.neu1.iter_mut().for_each(|x| *x *= inv);
                }
                sc.pairs += 1;
                outputs(m, sh, &sc.neu1, kept[i], syn1, &mut sc.work, &mut sc.loss, alpha, rng);
                if sh.config.context == ContextReduce::Sum {
                    sc.work.iter_mut().for_each(|x| *x *= inv);
                }
                for &c in &sc.ctx {
                    m.axpy(1.0, &sc.work, syn0.row(c));
                    syn0.publish(c);
                }
            }
        }
    }
}

/// Sequences `range` of the epoch: each one's draws and rate, then every pair's step.
#[inline(always)]
fn train_range<M: RowMath, I: Rows, O: Rows>(
    m: M,
    sh: &Shared<'_>,
    range: std::ops::Range<usize>,
    syn0: &mut I,
    syn1: &mut O,
    sc: &mut Scratch,
) {
    let (mut kept, mut windows) = (std::mem::take(&mut sc.kept), std::mem::take(&mut sc.windows));
    for s in range {
        sh.sampling.draw(sh.epoch, s, &mut kept, &mut windows);
        let mut rng = SplitMix64::stream(sh.seed ^ PAIR_SALT, sh.epoch, s as u64);
        let alpha = (sh.alpha_at)(sh.epoch_words + sh.words_before[s]);
        train_sequence(m, sh, &kept, &windows, syn0, syn1, sc, &mut rng, alpha);
    }
    (sc.kept, sc.windows) = (kept, windows);
}

/// [`train_range`] compiled for AVX2 with [`Avx2`]'s `dot`/`axpy` (element-wise the same
/// operations, so the result is bitwise that of the portable build).
///
/// # Safety
/// The CPU must support AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn train_range_avx2<I: Rows, O: Rows>(
    m: Avx2,
    sh: &Shared<'_>,
    range: std::ops::Range<usize>,
    syn0: &mut I,
    syn1: &mut O,
    sc: &mut Scratch,
) {
    train_range(m, sh, range, syn0, syn1, sc)
}

/// [`train_range`] on the widest build the CPU runs.
fn train_range_dispatch<I: Rows, O: Rows>(
    sh: &Shared<'_>,
    range: std::ops::Range<usize>,
    syn0: &mut I,
    syn1: &mut O,
    sc: &mut Scratch,
) {
    #[cfg(target_arch = "x86_64")]
    if let Some(m) = Avx2::detect() {
        // SAFETY: AVX2 was detected on this CPU just above.
        unsafe { train_range_avx2(m, sh, range, syn0, syn1, sc) };
        return;
    }
    train_range(Portable, sh, range, syn0, syn1, sc)
}

/// One deterministic lane: its copy-on-touch copies of both tables and its scratch.
#[derive(Debug)]
struct PairLane {
    syn0: LaneTable,
    syn1: LaneTable,
    scratch: Scratch,
}

impl PairLane {
    fn new(vocab: usize, k: usize) -> Self {
        PairLane { syn0: LaneTable::new(vocab), syn1: LaneTable::new(vocab), scratch: Scratch::new(k) }
    }

    fn clear(&mut self) {
        self.syn0.clear();
        self.syn1.clear();
    }
}

/// The per-epoch draws: [`EpochSampling`] when the configuration redraws, else the sequences
/// as they are with the fixed window.
enum Sampling<'a> {
    Drawn(EpochSampling),
    Fixed(&'a [Vec<u32>], usize),
}

impl Sampling<'_> {
    fn draw(&self, epoch: u64, s: usize, kept: &mut Vec<u32>, windows: &mut Vec<usize>) {
        match self {
            Sampling::Drawn(d) => d.draw_into(epoch, s, kept, windows),
            Sampling::Fixed(seqs, w) => {
                kept.clear();
                kept.extend_from_slice(&seqs[s]);
                windows.clear();
                windows.resize(kept.len(), *w);
            }
        }
    }
}

/// Steps of an epoch: for each, the `lanes + 1` sequence boundaries of its lanes.
fn lane_steps(sequences: &[Vec<u32>], lanes: usize) -> Vec<Vec<usize>> {
    let mut steps = Vec::new();
    let mut cur = vec![0usize; lanes + 1];
    let (mut lane, mut words) = (0, 0);
    for (s, seq) in sequences.iter().enumerate() {
        words += seq.len();
        if words >= LANE_WORDS {
            lane += 1;
            cur[lane] = s + 1;
            words = 0;
            if lane == lanes {
                steps.push(std::mem::replace(&mut cur, vec![s + 1; lanes + 1]));
                lane = 0;
            }
        }
    }
    if lane > 0 || words > 0 {
        for b in cur.iter_mut().skip(lane + 1) {
            *b = sequences.len();
        }
        steps.push(cur);
    }
    steps
}

/// Trains item2vec's tables on `sequences` (tokens below `vocab`) by per-pair SGD (see the
/// module doc) for `train.epochs` epochs; `config.trainer` must be [`Item2VecTrainer::PairSgd`]
/// (deterministic lanes) or [`Item2VecTrainer::PairSgdHogwild`] (lock-free shared tables, not
/// reproducible above 1 thread) and the loss negative sampling (validated). Returns the tables
/// (`embedding`, `out_weight`, `out_bias`) and the history.
pub fn train_pairs(
    sequences: &[Vec<u32>],
    vocab: usize,
    config: &Item2VecConfig,
    train: &TrainConfig,
    seed: u64,
) -> Result<(ParamStore, History), ModelError> {
    config.validate("model")?;
    let hogwild = match config.trainer {
        Item2VecTrainer::PairSgd => false,
        Item2VecTrainer::PairSgdHogwild => true,
        Item2VecTrainer::Engine => {
            return Err(ModelError::InvalidConfig(
                "train_pairs needs model.trainer = \"pair_sgd\" or \"pair_sgd_hogwild\"".into(),
            ))
        }
    };
    if let Some(&t) = sequences.iter().flatten().find(|&&t| t as usize >= vocab) {
        return Err(ModelError::InvalidData(format!(
            "item2vec: token {t} outside the vocabulary of {vocab}"
        )));
    }
    let k = config.dim;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut params = ParamStore::new();
    let tables = Item2VecTables::register(&mut params, vocab, config, &mut rng)?;
    let mut syn0: Vec<f32> = (0..vocab * k).map(|_| (rng.random::<f32>() - 0.5) / k as f32).collect();
    let mut syn1 = vec![0.0f32; vocab * k];
    params.get_mut(tables.out_bias).data.iter_mut().for_each(|b| *b = 0.0);

    let mut counts = vec![0u64; vocab];
    sequences.iter().flatten().for_each(|&t| counts[t as usize] += 1);
    let sampler = UnigramSampler::new(&counts, config.unigram_power)
        .ok_or_else(|| ModelError::InvalidData("item2vec: the training sequences hold no token".into()))?;
    let sampling = match EpochSampling::new(sequences.to_vec(), vocab, config, seed) {
        Some(d) => Sampling::Drawn(d),
        None => Sampling::Fixed(sequences, config.window.max(1)),
    };
    let total_words: u64 = counts.iter().sum();
    let mut words_before = Vec::with_capacity(sequences.len());
    let mut acc = 0u64;
    for seq in sequences {
        words_before.push(acc);
        acc += seq.len() as u64;
    }
    // One decay step per raw word: gensim's rate at `progress = words done / (epochs x words)`.
    let per_word = TrainConfig { batch_size: 1, ..train.clone() };
    let decay = decayed_train_config(config, &per_word, total_words as usize);
    let alpha_at = move |words_done: u64| decay.lr * decay.schedule.factor(words_done);

    let table = SigmoidTable::new();
    let lanes_per_step = if hogwild { HOGWILD_JOBS_PER_STEP } else { config.pair_lanes };
    let steps = lane_steps(sequences, lanes_per_step);
    let total_steps = (steps.len() * train.epochs) as u64;
    let mut lanes: Vec<PairLane> =
        if hogwild { Vec::new() } else { (0..lanes_per_step).map(|_| PairLane::new(vocab, k)).collect() };
    let (mut marks0, mut marks1, mut out) = (RowMarks::default(), RowMarks::default(), Vec::new());
    marks0.resize(vocab);
    marks1.resize(vocab);
    // Hogwild: the shared tables as f32 bits; its jobs are the lanes of every step, in any order.
    let to_atomic = |t: &[f32]| t.iter().map(|x| AtomicU32::new(x.to_bits())).collect::<Vec<_>>();
    let (shared0, shared1) =
        if hogwild { (to_atomic(&syn0), to_atomic(&syn1)) } else { (Vec::new(), Vec::new()) };
    let jobs: Vec<std::ops::Range<usize>> = steps
        .iter()
        .flat_map(|b| (0..lanes_per_step).map(move |l| b[l]..b[l + 1]))
        .filter(|r| !r.is_empty())
        .collect();
    let mut history = History {
        loss_name: config.loss_name().to_string(),
        optimizer: config.trainer.as_str().into(),
        optimizer_note: Some(if hogwild {
            format!(
                "per-pair SGD as gensim, alpha {} -> {} by words processed, Hogwild: lock-free shared tables, results vary with thread scheduling above 1 thread",
                alpha_at(0),
                alpha_at(u64::MAX)
            )
        } else {
            format!(
                "per-pair SGD as gensim, alpha {} -> {} by words processed, {lanes_per_step} deterministic lanes (model.pair_lanes)",
                alpha_at(0),
                alpha_at(u64::MAX)
            )
        }),
        ..History::default()
    };
    for epoch in 0..train.epochs {
        let started = Instant::now();
        let pass = reelvec_engine::clock::PassClock::start();
        let epoch_words = epoch as u64 * total_words;
        let shared = Shared {
            config,
            sampler: &sampler,
            table: &table,
            seed,
            epoch: epoch as u64,
            sampling: &sampling,
            words_before: &words_before,
            alpha_at: &alpha_at,
            epoch_words,
        };
        let (loss, pairs) = if hogwild {
            let (loss, pairs) = jobs
                .par_iter()
                .map_init(
                    || (Scratch::new(k), vec![0.0f32; k], vec![0.0f32; k]),
                    |(sc, b0, b1), range| {
                        let mut in_rows = SharedRows { table: &shared0, buf: b0 };
                        let mut out_rows = SharedRows { table: &shared1, buf: b1 };
                        let (l0, p0) = (sc.loss, sc.pairs);
                        train_range_dispatch(&shared, range.clone(), &mut in_rows, &mut out_rows, sc);
                        (sc.loss - l0, sc.pairs - p0)
                    },
                )
                .reduce(|| (0.0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
            let finite = [&shared0, &shared1]
                .iter()
                .all(|t| t.par_iter().all(|x| f32::from_bits(x.load(Ordering::Relaxed)).is_finite()));
            if !finite {
                return Err(diverged(epoch, steps.len(), alpha_at(0)));
            }
            reelvec_engine::step_hook::after_step(((epoch + 1) * steps.len()) as u64, total_steps)?;
            (loss, pairs)
        } else {
            for (step, bounds) in steps.iter().enumerate() {
                let (base0, base1) = (&syn0, &syn1);
                lanes.par_iter_mut().enumerate().for_each(|(l, lane)| {
                    let mut in_rows = LaneRows { table: &mut lane.syn0, shared: base0, k };
                    let mut out_rows = LaneRows { table: &mut lane.syn1, shared: base1, k };
                    train_range_dispatch(
                        &shared,
                        bounds[l]..bounds[l + 1],
                        &mut in_rows,
                        &mut out_rows,
                        &mut lane.scratch,
                    );
                });
                let parts: Vec<&LaneTable> = lanes.iter().map(|l| &l.syn0).collect();
                let mut finite = merge(&mut syn0, k, &parts, &mut marks0, &mut out);
                let parts: Vec<&LaneTable> = lanes.iter().map(|l| &l.syn1).collect();
                finite &= merge(&mut syn1, k, &parts, &mut marks1, &mut out);
                lanes.iter_mut().for_each(PairLane::clear);
                if !finite {
                    return Err(diverged(epoch, step, alpha_at(0)));
                }
                reelvec_engine::step_hook::after_step((epoch * steps.len() + step + 1) as u64, total_steps)?;
            }
            lanes.iter_mut().fold((0.0, 0u64), |(l, p), lane| {
                (l + std::mem::take(&mut lane.scratch.loss), p + std::mem::take(&mut lane.scratch.pairs))
            })
        };
        let train_loss = if pairs == 0 { f64::NAN } else { loss / pairs as f64 };
        let (train_seconds, train_cpu_seconds) = pass.elapsed();
        history.epochs.push(EpochStats {
            epoch,
            train_loss,
            last_batch_loss: train_loss,
            val_loss: None,
            lr: alpha_at((epoch as u64 + 1) * total_words),
            seconds: started.elapsed().as_secs_f64(),
            train_seconds,
            train_cpu_seconds,
        });
    }
    if hogwild {
        let from_atomic = |t: &[AtomicU32], out: &mut [f32]| {
            out.iter_mut().zip(t).for_each(|(o, a)| *o = f32::from_bits(a.load(Ordering::Relaxed)))
        };
        from_atomic(&shared0, &mut syn0);
        from_atomic(&shared1, &mut syn1);
    }
    history.best_epoch = history.epochs.len().checked_sub(1);
    params.get_mut(tables.embedding).data.copy_from_slice(&syn0);
    params.get_mut(tables.out_weight).data.copy_from_slice(&syn1);
    Ok((params, history))
}

/// The error of a row that is no longer finite.
fn diverged(epoch: usize, step: usize, alpha: f32) -> ModelError {
    EngineError::Diverged {
        epoch,
        step,
        what: format!("an item2vec row after a pair SGD step (alpha {alpha}) is not finite"),
    }
    .into()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::item2vec::{Item2Vec, OutputLoss};
    use crate::traits::ItemEmbeddings;

    fn sgns(arch: Architecture) -> Item2VecConfig {
        Item2VecConfig {
            architecture: arch,
            dim: 16,
            window: 2,
            drop_ends: false,
            context: ContextReduce::Mean,
            loss: OutputLoss::NegativeSampling,
            negatives: 3,
            trainer: Item2VecTrainer::PairSgd,
            alpha: Some(0.05),
            min_alpha: Some(0.0001),
            ..Item2VecConfig::default()
        }
    }

    fn quiet(epochs: usize) -> TrainConfig {
        TrainConfig { epochs, quiet: true, ..TrainConfig::default() }
    }

    #[test]
    fn the_table_is_gensims_sigmoid() {
        let t = SigmoidTable::new();
        for s in [-5.9f32, -1.0, -0.01, 0.0, 0.3, 2.5, 5.99] {
            let f = t.sigmoid(s).unwrap();
            assert!((f - super::super::negative::sigmoid(s)).abs() < 0.01, "{s}: {f}");
        }
        // Entry 500 is sigma(0); the ends take no step.
        assert_eq!(t.sigmoid(0.001), Some(0.5));
        assert_eq!(t.sigmoid(6.0), None);
        assert_eq!(t.sigmoid(-6.0), None);
        assert!((t.loss(0.001, 1.0) - std::f32::consts::LN_2).abs() < 1e-6);
        assert!((t.loss(9.0, 0.0) - softplus(9.0)).abs() < 1e-6);
    }

    #[test]
    fn one_skipgram_pair_by_hand() {
        // Vocabulary 3, k = 2: input E[0] = [0.1, 0.2], positive 1 with W[1] = [0.3, -0.1],
        // and every negative is token 2 (the only one with a count), W[2] = [-0.2, 0.4].
        let (k, alpha) = (2, 0.1f32);
        let syn0 = vec![0.1, 0.2, 0.0, 0.0, 0.0, 0.0];
        let syn1 = vec![0.0, 0.0, 0.3, -0.1, -0.2, 0.4];
        let config = Item2VecConfig { negatives: 1, dim: k, ..sgns(Architecture::Skipgram) };
        let sampler = UnigramSampler::new(&[0, 0, 5], 0.75).unwrap();
        let table = SigmoidTable::new();
        let sampling = Sampling::Fixed(&[], 1);
        let sh = Shared {
            config: &config,
            sampler: &sampler,
            table: &table,
            seed: 1,
            epoch: 0,
            sampling: &sampling,
            words_before: &[],
            alpha_at: &|_| alpha,
            epoch_words: 0,
        };
        let mut t0 = LaneTable::new(3);
        let mut t1 = LaneTable::new(3);
        let mut in_rows = LaneRows { table: &mut t0, shared: &syn0, k };
        let mut out_rows = LaneRows { table: &mut t1, shared: &syn1, k };
        let (mut work, mut loss) = (vec![0.0f32; k], 0.0f64);
        let h = in_rows.row(0).to_vec();
        outputs(Portable, &sh, &h, 1, &mut out_rows, &mut work, &mut loss, alpha, &mut SplitMix64(3));
        // Positive: s = 0.03 - 0.02 = 0.01, table sigma 0.5, g = (1 - 0.5) 0.1 = 0.05:
        // work = 0.05 W[1] = [0.015, -0.005], W[1] += 0.05 h = [0.305, -0.09].
        // Negative: s = -0.02 + 0.08 = 0.06, g = -sigma(0.06) 0.1 (table value):
        // work += g W[2], W[2] += g h.
        let g2 = -table.sigmoid(0.06).unwrap() * alpha;
        let w1 = out_rows.row(1).to_vec();
        assert!((w1[0] - 0.305).abs() < 1e-7 && (w1[1] + 0.09).abs() < 1e-7, "{w1:?}");
        let w2 = out_rows.row(2).to_vec();
        assert!((w2[0] - (-0.2 + g2 * 0.1)).abs() < 1e-7 && (w2[1] - (0.4 + g2 * 0.2)).abs() < 1e-7);
        let want = [0.015 + g2 * -0.2, -0.005 + g2 * 0.4];
        assert!((work[0] - want[0]).abs() < 1e-7 && (work[1] - want[1]).abs() < 1e-7);
        // The loss: -ln sigma(0.01) - ln sigma(-0.06), from the log table.
        let expected = table.loss(0.01, 1.0) + table.loss(0.06, 0.0);
        assert!((loss - f64::from(expected)).abs() < 1e-6);
    }

    /// Sequences over `clusters` clusters of `size` tokens: each sequence draws from one cluster.
    fn planted(clusters: usize, size: usize, sequences: usize, len: usize) -> Vec<Vec<u32>> {
        let mut rng = SplitMix64(11);
        (0..sequences)
            .map(|s| {
                let c = s % clusters;
                (0..len).map(|_| (c * size + (rng.next_u64() % size as u64) as usize) as u32).collect()
            })
            .collect()
    }

    /// The share of each token's 5 cosine neighbours in its own cluster.
    fn same_cluster_share(params: ParamStore, config: &Item2VecConfig, size: usize, vocab: usize) -> f64 {
        let model = Item2Vec::new(*config, params).unwrap();
        let mut hits = 0;
        for q in 0..vocab as u32 {
            let nn = model.nearest_by_cosine(q, 5).unwrap();
            hits += nn.iter().filter(|(m, _)| *m as usize / size == q as usize / size).count();
        }
        hits as f64 / (5 * vocab) as f64
    }

    #[test]
    fn planted_clusters_are_learned_by_both_architectures() {
        let (clusters, size) = (6, 10);
        let seqs = planted(clusters, size, 300, 20);
        for arch in [Architecture::Skipgram, Architecture::Cbow] {
            let config = sgns(arch);
            let (params, history) = train_pairs(&seqs, clusters * size, &config, &quiet(5), 3).unwrap();
            assert_eq!(history.epochs.len(), 5);
            assert_eq!(history.optimizer, "pair_sgd");
            let first = history.epochs[0].train_loss;
            let last = history.epochs[4].train_loss;
            assert!(last < first, "{arch:?}: loss {first} -> {last}");
            let share = same_cluster_share(params, &config, size, clusters * size);
            assert!(share > 0.9, "{arch:?}: {share}");
            // The untrained model (no epoch) is at chance (9 of 59 others share the cluster).
            let (params, _) = train_pairs(&seqs, clusters * size, &config, &quiet(0), 3).unwrap();
            let chance = same_cluster_share(params, &config, size, clusters * size);
            assert!(chance < 0.4, "{arch:?} untrained: {chance}");
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn avx2_row_math_is_the_portable_one_bitwise() {
        let Some(m) = Avx2::detect() else {
            eprintln!("skipped: this CPU has no AVX2");
            return;
        };
        let mut rng = SplitMix64(17);
        let mut v = |n: usize| (0..n).map(|_| (rng.next_f64() as f32 - 0.5) * 3.0).collect::<Vec<f32>>();
        for n in [0, 1, 7, 8, 13, 64, 67] {
            let (a, b) = (v(n), v(n));
            assert_eq!(m.dot(&a, &b).to_bits(), Portable.dot(&a, &b).to_bits(), "dot {n}");
            let (mut y1, mut y2) = (b.clone(), b.clone());
            m.axpy(0.37, &a, &mut y1);
            Portable.axpy(0.37, &a, &mut y2);
            let bits = |y: &[f32]| y.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&y1), bits(&y2), "axpy {n}");
        }
    }

    #[test]
    fn hogwild_learns_the_planted_clusters_at_1_and_2_threads() {
        let (clusters, size) = (6, 10);
        let seqs = planted(clusters, size, 300, 20);
        for arch in [Architecture::Skipgram, Architecture::Cbow] {
            let config = Item2VecConfig { trainer: Item2VecTrainer::PairSgdHogwild, ..sgns(arch) };
            for threads in [1, 2] {
                let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
                let (params, history) =
                    pool.install(|| train_pairs(&seqs, clusters * size, &config, &quiet(5), 3)).unwrap();
                assert_eq!(history.optimizer, "pair_sgd_hogwild");
                assert!(history.epochs[4].train_loss < history.epochs[0].train_loss, "{arch:?} {threads}");
                let share = same_cluster_share(params, &config, size, clusters * size);
                assert!(share > 0.9, "{arch:?} at {threads} thread(s): {share}");
            }
            // The untrained model is at chance.
            let (params, _) = train_pairs(&seqs, clusters * size, &config, &quiet(0), 3).unwrap();
            assert!(same_cluster_share(params, &config, size, clusters * size) < 0.4, "{arch:?}");
        }
    }

    #[test]
    fn hogwild_at_1_thread_is_plain_sequential_sgd_and_reproducible() {
        // One worker updates the shared tables in sequence order: two runs agree bitwise.
        let seqs = planted(4, 10, 2 * LANE_WORDS / 20 + 3, 20);
        let config =
            Item2VecConfig { trainer: Item2VecTrainer::PairSgdHogwild, ..sgns(Architecture::Skipgram) };
        let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
        let run = |c: &Item2VecConfig| pool.install(|| train_pairs(&seqs, 40, c, &quiet(1), 5)).unwrap().0;
        let (a, b) = (run(&config), run(&config));
        let bits = |p: &ParamStore| {
            p.get(p.id("embedding").unwrap()).data.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
        };
        assert_eq!(bits(&a), bits(&b));
        // One deterministic lane is the same sequential SGD, bitwise; two lanes merge stale
        // copies and differ.
        let one_lane = run(&Item2VecConfig { trainer: Item2VecTrainer::PairSgd, pair_lanes: 1, ..config });
        assert_eq!(bits(&a), bits(&one_lane));
        let lanes = run(&Item2VecConfig { trainer: Item2VecTrainer::PairSgd, pair_lanes: 2, ..config });
        assert_ne!(bits(&a), bits(&lanes));
    }

    #[test]
    fn bitwise_identical_for_1_2_and_4_threads_with_gensims_draws() {
        // Enough words for several lanes and two steps per epoch; 4 lanes, so that 4 threads
        // run them all at once and 2 threads take two each.
        let lanes = 4;
        let seqs = planted(8, 25, 2 * lanes * LANE_WORDS / 40 + 7, 40);
        assert!(lane_steps(&seqs, lanes).len() >= 2);
        for arch in [Architecture::Skipgram, Architecture::Cbow] {
            let config = Item2VecConfig {
                pair_lanes: lanes,
                sample: 1e-2,
                shrink_windows: true,
                context: if arch == Architecture::Cbow { ContextReduce::Sum } else { ContextReduce::Mean },
                ..sgns(arch)
            };
            let run = |threads: usize| {
                let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
                pool.install(|| train_pairs(&seqs, 200, &config, &quiet(2), 9).unwrap())
            };
            let (one, h1) = run(1);
            for threads in [2, 4] {
                let (other, h) = run(threads);
                for name in ["embedding", "out_weight", "out_bias"] {
                    let (a, b) = (one.get(one.id(name).unwrap()), other.get(other.id(name).unwrap()));
                    let same = a.data.iter().zip(&b.data).all(|(x, y)| x.to_bits() == y.to_bits());
                    assert!(same, "{arch:?} {name} differs at {threads} threads");
                }
                assert_eq!(
                    h1.epochs.iter().map(|e| e.train_loss.to_bits()).collect::<Vec<_>>(),
                    h.epochs.iter().map(|e| e.train_loss.to_bits()).collect::<Vec<_>>()
                );
            }
        }
    }

    #[test]
    fn lane_steps_cut_by_words_and_cover_every_sequence() {
        let seqs: Vec<Vec<u32>> = (0..100).map(|_| vec![0; LANE_WORDS / 4]).collect();
        let steps = lane_steps(&seqs, 8);
        // 4 sequences a lane, 32 a step: 3 full steps and one of 4 lanes.
        assert_eq!(steps.len(), 4);
        assert_eq!(steps[0], [0, 4, 8, 12, 16, 20, 24, 28, 32]);
        assert_eq!(steps[3], [96, 100, 100, 100, 100, 100, 100, 100, 100]);
        // 2 lanes: 8 sequences a step, the last step's second lane empty.
        let steps = lane_steps(&seqs, 2);
        assert_eq!(steps.len(), 13);
        assert_eq!(steps[0], [0, 4, 8]);
        assert_eq!(steps[12], [96, 100, 100]);
        // 1 lane: plain sequential SGD cut into steps.
        assert_eq!(lane_steps(&seqs, 1)[24], [96, 100]);
        assert_eq!(lane_steps(&[], 8), Vec::<Vec<usize>>::new());
    }

    #[test]
    fn bad_settings_are_named() {
        let seqs = vec![vec![0u32, 1, 2]];
        let softmax = Item2VecConfig { loss: OutputLoss::FullSoftmax, ..sgns(Architecture::Cbow) };
        let err = train_pairs(&seqs, 3, &softmax, &quiet(1), 1).unwrap_err().to_string();
        assert!(err.contains("model.trainer"), "{err}");
        let err = train_pairs(&seqs, 2, &sgns(Architecture::Cbow), &quiet(1), 1).unwrap_err().to_string();
        assert!(err.contains("token 2"), "{err}");
        let engine = Item2VecConfig { trainer: Item2VecTrainer::Engine, ..sgns(Architecture::Cbow) };
        assert!(train_pairs(&seqs, 3, &engine, &quiet(1), 1).is_err());
    }

    #[test]
    fn the_trainer_key_parses_and_bad_values_are_named() {
        use crate::train::{resolve, ConfigSource, Resolved};
        use crate::ModelKind;
        let resolve_set = |set: &[&str]| {
            let set: Vec<String> = set.iter().map(|s| s.to_string()).collect();
            resolve(
                ModelKind::Skipgram,
                &ConfigSource { overrides: &set, quiet: true, ..ConfigSource::default() },
            )
        };
        let ok = resolve_set(&["model.trainer=pair_sgd", "model.loss=negative_sampling"]).unwrap();
        let Resolved::Item2vec(c) = ok else { panic!("not item2vec") };
        assert_eq!(c.model.trainer, Item2VecTrainer::PairSgd);
        assert_eq!(c.model.pair_lanes, DEFAULT_PAIR_LANES);
        let set = ["model.trainer=pair_sgd", "model.loss=negative_sampling", "model.pair_lanes=8"];
        let Resolved::Item2vec(c) = resolve_set(&set).unwrap() else { panic!("not item2vec") };
        assert_eq!(c.model.pair_lanes, 8);
        for bad in ["0", "257"] {
            let lanes = format!("model.pair_lanes={bad}");
            let err = resolve_set(&["model.trainer=pair_sgd", "model.loss=negative_sampling", &lanes])
                .unwrap_err()
                .to_string();
            assert!(err.contains("model.pair_lanes") && err.contains("1 to 256"), "{err}");
        }
        let ok = resolve_set(&["model.trainer=pair_sgd_hogwild", "model.loss=negative_sampling"]).unwrap();
        let Resolved::Item2vec(c) = ok else { panic!("not item2vec") };
        assert_eq!(c.model.trainer, Item2VecTrainer::PairSgdHogwild);
        let err = resolve_set(&["model.trainer=hogwild"]).unwrap_err().to_string();
        assert!(err.contains("hogwild") && err.contains("pair_sgd"), "{err}");
        let err =
            resolve_set(&["model.trainer=pair_sgd", "model.loss=full_softmax"]).unwrap_err().to_string();
        assert!(err.contains("model.trainer") && err.contains("negative_sampling"), "{err}");
        assert!(resolve_set(&["model.trainer=3"]).is_err());
    }
}
