//! The item2vec training objective: batches of user sequences mapped to their examples, split
//! into contiguous lanes that run in parallel, each lane accumulating partial gradients in its
//! own reused scratch, reduced into [`Grads`] in lane order.
//!
//! **Determinism:** lanes are contiguous slices of the batch's examples and are reduced in a
//! fixed order. The lane count is a function of the batch length and [`DEFAULT_LANES`] (or
//! [`Item2VecObjective::with_lanes`]) only, never of the rayon thread count, so the same seed
//! gives bitwise-identical gradients on any number of threads. Negative draws depend only on
//! (seed, draw id, example position), never on the lane split.
//!
//! With gensim's per-epoch options ([`EpochSampling`]: `sample`, `shrink_windows`) the training
//! examples of epoch `e` are redrawn from the sequences once, when its first batch arrives;
//! the fit advances the epoch ([`Item2VecObjective::set_epoch`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use rand::Rng;
use rayon::prelude::*;
use reelvec_engine::{BatchLoss, GradKind, Grads, Init, Objective, ParamStore, TableId};

use super::lane::{Lane, Weights};
use super::negative::{negative_lane, NegativePass};
use super::pair_rows::{ExampleSet, PairRows};
use super::softmax::{
    project, projected_backward, projected_lane, softmax_lane, ExamplePass, Isa, PairTables, ProjectedPass,
    SoftmaxKernel,
};
use super::{
    Architecture, ContextReduce, EpochSampling, Examples, Item2VecConfig, OutputLoss, UnigramSampler,
};
use crate::ModelError;

/// Draw id used for validation passes (fixed negatives).
pub const VALIDATION_DRAW: u64 = u64::MAX;

/// Lanes a batch is split into at most (fixed, so that results do not depend on the machine's
/// thread count; rayon runs the lanes on however many threads it has).
pub const DEFAULT_LANES: usize = 8;

/// Minimum examples per lane before another lane is opened.
const MIN_LANE_EXAMPLES: usize = 128;

/// The most lanes a projected gradient pass over `examples` examples of a `v`-token vocabulary
/// opens. Each lane accumulates its own `V x V` sum `S` and the backward adds the lanes' `S`
/// into the first, `(lanes - 1) V^2` additions; once one `S` outgrows a core's L2 cache
/// ([`LANE_S_CACHE_BYTES`]) that sum and the lanes' scattered `S` rows run from L3, so such a
/// pass takes `examples / (4 v)` lanes, at least 2 (two threads still share a batch). A function
/// of the batch and the vocabulary only, like the rest of the lane count. Measured on ml-100k P0
/// at 1 thread (medians of 15 epochs, 3 runs alternating with the previous build): top-1000
/// (`S` 4 MB, about 6,000 examples a batch, 2 lanes instead of 8) 116.8-134.4 ms an epoch
/// before, 86.7-89.7 ms after. Top-200 (`S` 160 KB) gained nothing from fewer lanes (5.26-5.32
/// ms with 3 lanes, 5.27-5.29 ms with all 8), so it keeps every lane and its results. (Measured
/// before `pair_rows` took two-token CBOW contexts out of the lanes; the rule still sizes the
/// lanes of the examples left to them and of other projected passes.)
fn projected_lanes(examples: usize, v: usize) -> usize {
    if v * v * std::mem::size_of::<f32>() <= LANE_S_CACHE_BYTES {
        return usize::MAX;
    }
    (examples / (4 * v)).max(2)
}

/// The `S` size up to which a projected pass keeps every lane (1 MiB, a core's L2 on the
/// machines measured).
const LANE_S_CACHE_BYTES: usize = 1 << 20;

/// Ids of the three item2vec tables in a [`ParamStore`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Item2VecTables {
    /// `embedding`, V x k (the movie embeddings; PyTorch `nn.Embedding` init N(0, 1)).
    pub embedding: TableId,
    /// `out_weight`, V x k (PyTorch `nn.Linear` init U(+-1/sqrt(k))).
    pub out_weight: TableId,
    /// `out_bias`, V x 1 (same init as `out_weight`).
    pub out_bias: TableId,
}

impl Item2VecTables {
    /// Adds the three tables to `params` with PyTorch's default initialisation.
    pub fn register<R: Rng + ?Sized>(
        params: &mut ParamStore,
        vocab: usize,
        config: &Item2VecConfig,
        rng: &mut R,
    ) -> Result<Self, ModelError> {
        if vocab == 0 || config.dim == 0 {
            return Err(ModelError::InvalidConfig(format!(
                "item2vec needs vocab > 0 and dim > 0 (got vocab {vocab}, dim {})",
                config.dim
            )));
        }
        let bound = 1.0 / (config.dim as f32).sqrt();
        let out_kind = match config.loss {
            OutputLoss::FullSoftmax => GradKind::Dense,
            OutputLoss::NegativeSampling => GradKind::SparseRows,
        };
        let embedding = params.add(
            "embedding",
            vocab,
            config.dim,
            GradKind::SparseRows,
            Init::Normal { mean: 0.0, std: 1.0 },
            rng,
        )?;
        let uniform = Init::Uniform { lo: -bound, hi: bound };
        let out_weight = params.add("out_weight", vocab, config.dim, out_kind, uniform, rng)?;
        let out_bias = params.add("out_bias", vocab, 1, out_kind, uniform, rng)?;
        Ok(Self { embedding, out_weight, out_bias })
    }

    /// [`register`](Self::register) with a `ChaCha8Rng` seeded by `seed`.
    pub fn register_seeded(
        params: &mut ParamStore,
        vocab: usize,
        config: &Item2VecConfig,
        seed: u64,
    ) -> Result<Self, ModelError> {
        use rand::SeedableRng;
        Self::register(params, vocab, config, &mut rand_chacha::ChaCha8Rng::seed_from_u64(seed))
    }

    /// Finds the tables by name and checks their shapes agree.
    pub fn find(params: &ParamStore) -> Result<Self, ModelError> {
        let get = |name: &str| {
            params.id(name).ok_or_else(|| ModelError::InvalidData(format!("item2vec table `{name}` missing")))
        };
        let t =
            Self { embedding: get("embedding")?, out_weight: get("out_weight")?, out_bias: get("out_bias")? };
        let (e, w, b) = (params.get(t.embedding), params.get(t.out_weight), params.get(t.out_bias));
        if e.rows != w.rows || e.cols != w.cols || b.rows != e.rows || b.cols != 1 {
            return Err(ModelError::InvalidData(format!(
                "item2vec tables disagree: embedding {}x{}, out_weight {}x{}, out_bias {}x{}",
                e.rows, e.cols, w.rows, w.cols, b.rows, b.cols
            )));
        }
        Ok(t)
    }
}

/// Borrowed views of the three tables of `params`.
impl<'a> Weights<'a> {
    pub(crate) fn new(params: &'a ParamStore, t: &Item2VecTables) -> Self {
        let e = params.get(t.embedding);
        Self {
            e: &e.data,
            w: &params.get(t.out_weight).data,
            b: &params.get(t.out_bias).data,
            v: e.rows,
            k: e.cols,
        }
    }
}

#[derive(Debug, Default)]
struct Scratch {
    ids: Vec<u32>,
    lanes: Vec<Lane>,
    /// The token projection `E W^T` of the projected softmax (V x V, once per pass).
    proj: Vec<f32>,
    /// Its exponential tables for two-token CBOW contexts.
    pairs: PairTables,
    /// The row pass of those contexts' gradient.
    pair_rows: PairRows,
    /// The redrawn training examples of an epoch (gensim's per-epoch options only).
    epoch_examples: Option<(u64, Examples)>,
}

/// The item2vec objective over training sequences (units) with an optional validation set.
#[derive(Debug)]
pub struct Item2VecObjective {
    config: Item2VecConfig,
    tables: Item2VecTables,
    vocab: usize,
    seed: u64,
    train: Examples,
    val: Option<Examples>,
    sampler: Option<UnigramSampler>,
    lanes: usize,
    kernel: SoftmaxKernel,
    /// The widest build of the full-softmax kernels this CPU runs (AVX2 and, for the
    /// two-token row pass, AVX-512; same rounding as the portable build).
    isa: Isa,
    /// The projected kernel's backward products once per lane (the earlier structure, kept to
    /// be benchmarked and tested against) instead of once per batch.
    per_lane_backward: bool,
    /// Whether the two-token row pass may run as one sweep on one thread (the default) rather
    /// than always in two phases (kept to be benchmarked against; the same bits).
    row_sweep: bool,
    /// Whether the AVX-512 build fills the pair tables from `E` and `W^T` in registers (the
    /// default) rather than through the BLAS product (kept to be benchmarked against; the same
    /// bits).
    fused_fill: bool,
    /// Whether the AVX-512 build forms the backward products over all of `S` itself (the
    /// default) rather than through OpenBLAS (kept to be benchmarked against; the same bits at
    /// P0's width).
    simd_products: bool,
    draws: AtomicU64,
    /// Per-epoch resampling of the training sequences (gensim's `sample` / `shrink_windows`).
    sampling: Option<EpochSampling>,
    /// The epoch whose examples train (advanced by the fit after every epoch).
    epoch: AtomicU64,
    scratch: Mutex<Scratch>,
}

impl Item2VecObjective {
    /// An objective over `train` (and `val`) examples of a vocabulary of `vocab` tokens. The
    /// negative-sampling noise table counts the training examples' tokens.
    pub fn new(
        config: Item2VecConfig,
        tables: Item2VecTables,
        vocab: usize,
        train: Examples,
        val: Option<Examples>,
        seed: u64,
    ) -> Result<Self, ModelError> {
        for (name, ex) in [("training", Some(&train)), ("validation", val.as_ref())] {
            if let Some(ex) = ex {
                if ex.max_token_bound() > vocab {
                    return Err(ModelError::InvalidData(format!(
                        "{name} examples use token {} but the vocabulary has {vocab}",
                        ex.max_token_bound() - 1
                    )));
                }
            }
        }
        let sampler = match config.loss {
            OutputLoss::FullSoftmax => None,
            OutputLoss::NegativeSampling => {
                Some(UnigramSampler::for_examples(&train, vocab, config.unigram_power).ok_or_else(|| {
                    ModelError::InvalidData("negative sampling needs at least one training example".into())
                })?)
            }
        };
        Ok(Self {
            config,
            tables,
            vocab,
            seed,
            train,
            val,
            sampler,
            lanes: DEFAULT_LANES,
            kernel: SoftmaxKernel::Auto,
            isa: Isa::best(true),
            per_lane_backward: false,
            row_sweep: true,
            fused_fill: true,
            simd_products: true,
            draws: AtomicU64::new(0),
            sampling: None,
            epoch: AtomicU64::new(0),
            scratch: Mutex::new(Scratch::default()),
        })
    }

    /// Trains on examples redrawn every epoch by `sampling` (gensim's `sample` and
    /// `shrink_windows`) instead of the fixed training examples; its sequences must be the
    /// training units, in order.
    pub fn with_epoch_sampling(mut self, sampling: EpochSampling) -> Result<Self, ModelError> {
        if sampling.sequences() != self.train.sequences() {
            return Err(ModelError::InvalidData(format!(
                "epoch sampling over {} sequences, but the objective trains on {}",
                sampling.sequences(),
                self.train.sequences()
            )));
        }
        self.sampling = Some(sampling);
        Ok(self)
    }

    /// Sets the epoch whose redrawn examples train next (the fit calls it after each epoch).
    pub fn set_epoch(&self, epoch: u64) {
        self.epoch.store(epoch, Ordering::Relaxed);
    }

    /// Sets the number of parallel lanes (the determinism unit; default [`DEFAULT_LANES`]).
    pub fn with_lanes(mut self, lanes: usize) -> Self {
        self.lanes = lanes.max(1);
        self
    }

    /// Sets the full-softmax kernel (default [`SoftmaxKernel::Auto`]; negative sampling ignores
    /// it). Both kernels compute the same loss and gradient up to rounding.
    pub fn with_softmax_kernel(mut self, kernel: SoftmaxKernel) -> Self {
        self.kernel = kernel;
        self
    }

    /// With `true`, the projected softmax does its backward products for each lane's `S`
    /// (`lanes x 2 V^2 k` a batch) instead of once for the lanes' sum (`2 V^2 k`): the earlier
    /// structure, for benchmarks and tests; same gradient up to rounding.
    pub fn with_per_lane_backward(mut self, per_lane: bool) -> Self {
        self.per_lane_backward = per_lane;
        self
    }

    /// With `false`, the two-token row pass always runs its two phases, even on one thread
    /// (where it otherwise sweeps the rows once): for benchmarks; the same bits either way.
    pub fn with_row_sweep(mut self, sweep: bool) -> Self {
        self.row_sweep = sweep;
        self
    }

    /// With `false`, the AVX-512 build fills the two-token pair tables from the BLAS product
    /// `P = E W^T` in row blocks, as the other builds do, instead of computing `P` in registers:
    /// for benchmarks; the same bits either way.
    pub fn with_fused_fill(mut self, fused: bool) -> Self {
        self.fused_fill = fused;
        self
    }

    /// With `false`, the AVX-512 build leaves the projected softmax's backward products to
    /// OpenBLAS, as the other builds do, instead of forming them itself: for benchmarks; the
    /// same bits at P0's width (see `simd512::backward_products`).
    pub fn with_simd_products(mut self, own: bool) -> Self {
        self.simd_products = own;
        self
    }

    /// Only the baseline (SSE2) builds of the kernels: the scalar reference the AVX2 builds are
    /// tested against.
    #[cfg(test)]
    pub(crate) fn without_simd(self) -> Self {
        self.with_isa(Isa::Portable)
    }

    /// The kernels' build: `isa` (one of [`Isa::supported`]).
    #[cfg(test)]
    pub(crate) fn with_isa(mut self, isa: Isa) -> Self {
        self.isa = isa;
        self
    }

    /// The model configuration.
    pub fn config(&self) -> &Item2VecConfig {
        &self.config
    }

    /// The table ids.
    pub fn tables(&self) -> Item2VecTables {
        self.tables
    }

    /// Training examples.
    pub fn train_examples(&self) -> &Examples {
        &self.train
    }

    /// Validation examples, if any.
    pub fn val_examples(&self) -> Option<&Examples> {
        self.val.as_ref()
    }

    /// Loss sum and count of the batch of training sequences `units`; with `grads`, ADDS the
    /// gradient of the batch's mean loss. `draw` picks the negative samples (ignored by the full
    /// softmax): equal draws give equal negatives.
    pub fn batch_loss_and_grad(
        &self,
        params: &ParamStore,
        units: &[u32],
        draw: u64,
        grads: Option<&mut Grads>,
    ) -> (f64, u64) {
        let mut guard = self.scratch.lock().unwrap_or_else(|p| p.into_inner());
        let Scratch { ids, lanes, proj, pairs, pair_rows, epoch_examples } = &mut *guard;
        let train = match &self.sampling {
            None => &self.train,
            Some(sampling) => {
                let epoch = self.epoch.load(Ordering::Relaxed);
                if epoch_examples.as_ref().map(|(e, _)| *e) != Some(epoch) {
                    *epoch_examples = Some((epoch, sampling.examples(epoch)));
                }
                match epoch_examples {
                    Some((_, ex)) => &*ex,
                    None => &self.train,
                }
            }
        };
        ids.clear();
        for &u in units {
            let r = train.sequence_range(u as usize);
            ids.extend(r.start as u32..r.end as u32);
        }
        // The training examples never change unless they are redrawn every epoch.
        let set = self.sampling.is_none().then_some(ExampleSet::Train);
        self.run(params, train, ids, set, draw, grads, lanes, proj, pairs, pair_rows)
    }

    /// Loss sum and count over every example of `examples` (no gradient).
    pub fn loss_over(&self, params: &ParamStore, examples: &Examples, draw: u64) -> (f64, u64) {
        self.loss_over_set(params, examples, None, draw)
    }

    /// [`loss_over`](Self::loss_over), `set` naming which of the objective's own example
    /// sets `examples` is (their row index is then kept from pass to pass).
    fn loss_over_set(
        &self,
        params: &ParamStore,
        examples: &Examples,
        set: Option<ExampleSet>,
        draw: u64,
    ) -> (f64, u64) {
        let mut guard = self.scratch.lock().unwrap_or_else(|p| p.into_inner());
        let Scratch { ids, lanes, proj, pairs, pair_rows, .. } = &mut *guard;
        ids.clear();
        ids.extend(0..examples.len() as u32);
        self.run(params, examples, ids, set, draw, None, lanes, proj, pairs, pair_rows)
    }

    /// Draw id for the next training batch.
    pub fn next_draw(&self) -> u64 {
        self.draws.fetch_add(1, Ordering::Relaxed)
    }

    #[allow(clippy::too_many_arguments)] // the scratch buffers are borrowed apart from `self`
    fn run(
        &self,
        params: &ParamStore,
        ex: &Examples,
        ids: &[u32],
        set: Option<ExampleSet>,
        draw: u64,
        grads: Option<&mut Grads>,
        lanes: &mut Vec<Lane>,
        proj: &mut Vec<f32>,
        pairs: &mut PairTables,
        pair_rows: &mut PairRows,
    ) -> (f64, u64) {
        let count = match self.config.architecture {
            Architecture::Cbow => ids.len() as u64,
            Architecture::Skipgram => ids.iter().map(|&e| ex.context(e as usize).len() as u64).sum(),
        };
        if count == 0 {
            return (0.0, 0);
        }
        let wts = Weights::new(params, &self.tables);
        debug_assert_eq!(wts.v, self.vocab);
        let simd = self.isa != Isa::Portable;
        let scale = 1.0 / count as f32;
        let grad = grads.is_some();
        let mut n_lanes = self.lanes.min(ids.len().div_ceil(MIN_LANE_EXAMPLES)).max(1);
        let len = ids.len();
        let cfg = self.config;
        let pass = self.sampler.as_ref().map(|sampler| NegativePass {
            arch: cfg.architecture,
            reduce: cfg.context,
            negatives: cfg.negatives,
            sampler,
            seed: self.seed,
            draw,
        });
        // Full softmax: the projected kernel when its operation count is smaller; it adds one
        // row of `E W^T` per context token (CBOW) or per example (skip-gram).
        let projected = pass.is_none() && {
            let hidden_rows = match cfg.architecture {
                Architecture::Cbow => ids.iter().map(|&e| ex.context(e as usize).len()).sum(),
                Architecture::Skipgram => len,
            };
            let proj_lanes = if grad { n_lanes.min(projected_lanes(len, wts.v)) } else { n_lanes };
            self.kernel.use_projected(wts.v, wts.k, len, hidden_rows, grad.then_some(proj_lanes))
        };
        // Two-token CBOW contexts read an exponential table (V^2 exponentials a pass) instead
        // of V exponentials an example: worth it from V examples on.
        let use_pairs = projected && cfg.architecture == Architecture::Cbow && len >= wts.v;
        if projected {
            if grad {
                n_lanes = n_lanes.min(projected_lanes(len, wts.v));
            }
            // With the tables, `P` is needed only for the examples they leave (below).
            if !use_pairs {
                project(&wts, proj);
            }
        }
        if lanes.len() < n_lanes {
            lanes.resize_with(n_lanes, Lane::default);
        }
        // Two-token contexts by rows ([`PairRows`]: loss, and with `grad` their gradient); the
        // lanes take the rest, with the rows of `P` their contexts read.
        let (mut ids, mut len, mut pair_loss) = (ids, len, 0.0);
        let examples = ExamplePass { arch: cfg.architecture, reduce: cfg.context, ex, scale, grad };
        if use_pairs {
            let f = match cfg.context {
                ContextReduce::Sum => 1.0,
                ContextReduce::Mean => 0.5,
            };
            pairs.fill(&wts, f, self.isa, self.fused_fill);
            lanes[0].ensure_projected(wts.v, wts.k);
            // The row pass reads the tables, never `P`.
            pair_loss =
                pair_rows.run(&examples, pairs, &wts, ids, set, &mut lanes[0], self.isa, self.row_sweep);
            (ids, len) = (&pair_rows.direct[..], pair_rows.direct.len());
            pairs.project_rows(&wts, &pair_rows.direct_rows, proj);
            let cap = if grad { projected_lanes(len, wts.v) } else { usize::MAX };
            n_lanes = self.lanes.min(len.div_ceil(MIN_LANE_EXAMPLES)).min(cap).max(1);
        }
        let projected_pass = ProjectedPass { examples, proj };
        let simd_products = self.simd_products && self.isa == Isa::Avx512;
        let work = |j: usize, lane: &mut Lane| {
            let (lo, hi) = (j * len / n_lanes, (j + 1) * len / n_lanes);
            lane.loss = 0.0;
            let lane_ids = &ids[lo..hi];
            match &pass {
                None if projected => {
                    projected_lane(&projected_pass, &wts, lane_ids, lane, simd);
                    if grad && self.per_lane_backward {
                        projected_backward(&wts, std::slice::from_mut(lane), simd_products);
                    }
                }
                None => {
                    softmax_lane(cfg.architecture, cfg.context, &wts, ex, lane_ids, scale, lane, grad, simd)
                }
                Some(p) => negative_lane(p, &wts, ex, lane_ids, lo, scale, lane, grad),
            }
        };
        if n_lanes == 1 {
            work(0, &mut lanes[0]);
        } else {
            lanes[..n_lanes].par_iter_mut().enumerate().for_each(|(j, lane)| work(j, lane));
        }
        let loss: f64 = pair_loss + lanes[..n_lanes].iter().map(|l| l.loss).sum::<f64>();
        if projected && grad && !self.per_lane_backward {
            // One backward product for the batch: the lanes' `S` summed in lane order.
            projected_backward(&wts, &mut lanes[..n_lanes], simd_products);
        }
        if let Some(grads) = grads {
            for lane in &mut lanes[..n_lanes] {
                self.reduce_lane(lane, grads);
            }
        }
        (loss, count)
    }

    /// Adds a lane's partial gradients to `grads` and zeroes them.
    fn reduce_lane(&self, lane: &mut Lane, grads: &mut Grads) {
        let k = self.config.dim;
        let t = self.tables;
        {
            let g = grads.get_mut(t.embedding);
            for &r in &lane.e_rows.rows {
                let r = r as usize;
                let src = &mut lane.de[r * k..(r + 1) * k];
                g.row_mut(r).iter_mut().zip(src.iter_mut()).for_each(|(g, s)| {
                    *g += *s;
                    *s = 0.0;
                });
            }
            lane.e_rows.clear();
        }
        match self.config.loss {
            OutputLoss::FullSoftmax => {
                let add_all = |g: &mut [f32], s: &mut [f32]| {
                    g.iter_mut().zip(s.iter_mut()).for_each(|(g, s)| {
                        *g += *s;
                        *s = 0.0;
                    })
                };
                add_all(grads.get_mut(t.out_weight).all_mut(), &mut lane.dw);
                add_all(grads.get_mut(t.out_bias).all_mut(), &mut lane.db);
            }
            OutputLoss::NegativeSampling => {
                for &r in &lane.w_rows.rows {
                    let r = r as usize;
                    let src = &mut lane.dw[r * k..(r + 1) * k];
                    grads.get_mut(t.out_weight).row_mut(r).iter_mut().zip(src.iter_mut()).for_each(
                        |(g, s)| {
                            *g += *s;
                            *s = 0.0;
                        },
                    );
                    grads.get_mut(t.out_bias).row_mut(r)[0] += lane.db[r];
                    lane.db[r] = 0.0;
                }
                lane.w_rows.clear();
            }
        }
    }
}

/// Each training batch draws fresh negatives (draw id = call count); validation uses the fixed
/// [`VALIDATION_DRAW`] so epochs are compared on the same negatives.
impl Objective for Item2VecObjective {
    fn train_units(&self) -> usize {
        self.train.sequences()
    }

    fn loss_and_grad(&self, params: &ParamStore, units: &[u32], grads: &mut Grads) -> BatchLoss {
        let draw = self.next_draw();
        let (sum, count) = self.batch_loss_and_grad(params, units, draw, Some(grads));
        BatchLoss::new(sum, count)
    }

    fn validation_loss(&self, params: &ParamStore) -> Option<BatchLoss> {
        let val = self.val.as_ref()?;
        let (sum, count) = self.loss_over_set(params, val, Some(ExampleSet::Validation), VALIDATION_DRAW);
        Some(BatchLoss::new(sum, count))
    }

    fn loss_name(&self) -> &'static str {
        self.config.loss_name()
    }

    fn loss_baseline(&self) -> Option<f64> {
        Some(self.config.loss_baseline(self.vocab))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn projected_lanes_shrink_only_once_s_outgrows_the_cache_share() {
        // 512^2 floats are exactly 1 MiB: every lane kept.
        assert_eq!(projected_lanes(100_000, 512), usize::MAX);
        assert_eq!(projected_lanes(10, 200), usize::MAX);
        // P0 top-1000: about 6,000 examples a batch -> 6000 / 4000 -> at least 2.
        assert_eq!(projected_lanes(6_000, 1000), 2);
        assert_eq!(projected_lanes(40_000, 1000), 10);
        assert_eq!(projected_lanes(1, 513), 2);
    }
}
