//! item2vec on the GPU: the device twins of the full-softmax objective ([`GpuItem2VecObjective`],
//! kernels in `softmax.cu`, cuBLAS for the dense products) and of skip-gram with negative
//! sampling at scale ([`GpuSgns`], a Hogwild kernel in `negative.cu`).
//!
//! **Full softmax (P0).** The examples of every sequence are uploaded once. A batch of unit
//! (= sequence) ids becomes example ids on the device (`batch_rows`, a block scan), then, per
//! chunk of at most `chunk_rows` examples (row-major matrices, cuBLAS is column-major, so a
//! row-major `A (m x k)` is handed to cuBLAS as the column-major `A^T`):
//!
//! ```text
//! H  (n x k)  = gather(E)                      gather_hidden
//! Z  (n x V)  = H W^T                          sgemm(T, N, V, n, k): Z^T = W^T' H^T
//! dZ (n x V)  = softmax(Z + b) - onehot, loss  softmax_xent (in place, loss sum as f64)
//! db (V)     += dZ^T 1                         sgemm(N, N, V, 1, n) with a ones vector
//! dW (V x k) += dZ^T H                         sgemm(N, T, k, V, n): dW^T += H^T dZ
//! dH (n x k)  = dZ W                           sgemm(N, N, k, n, V): dH^T = W^T dZ^T
//! dE[rows]   += dH (scatter, atomics, flags)   scatter_hidden_grad
//! ```
//!
//! with the derivations of `softmax.rs` (`dz` already carries the batch mean's `1/N`).
//!
//! **Negative sampling (SGNS).** Word2vec's recipe: the corpus (tokens + sequence offsets) is
//! uploaded once, pairs are enumerated on the device from the window, negatives are drawn on
//! the device from a Walker alias table of unigram^power with a counter-based hash, plain SGD
//! with lr decaying linearly over the run, Hogwild updates (see `negative.cu`).

use std::time::Instant;

use rand::{Rng, SeedableRng};
use reelvec_engine::gpu::cudarc::cublas::sys::cublasOperation_t;
use reelvec_engine::gpu::{
    grid_for, CudaFunction, CudaSlice, CudaView, CudaViewMut, DevicePtr, DevicePtrMut, Gemm, GemmConfig, Gpu,
    GpuBatch, GpuGradTable, GpuGrads, GpuObjective, GpuParams, KernelSource, LaunchConfig, PushKernelArg,
};
use reelvec_engine::{BatchLoss, EngineError, ParamStore};

use super::{
    Architecture, ContextReduce, Examples, Item2Vec, Item2VecConfig, Item2VecTables, OutputLoss, RankMetrics,
};
use crate::ModelError;

pub(crate) const SOFTMAX_CU: KernelSource = KernelSource {
    name: "item2vec_softmax.cu",
    source: include_str!("softmax.cu"),
    functions: &[
        "batch_rows",
        "gather_hidden",
        "softmax_xent",
        "scatter_hidden_grad",
        "small_vocab_step",
        "small_vocab_out_grad",
    ],
};

pub(crate) const NEGATIVE_CU: KernelSource = KernelSource {
    name: "item2vec_negative.cu",
    source: include_str!("negative.cu"),
    functions: &["token_sequences", "count_pairs", "sgns_epoch", "ns_step"],
};

/// Largest embedding size the SGNS kernel supports (`K_PER_LANE * 32` in negative.cu).
pub const SGNS_MAX_DIM: usize = 128;
/// Largest number of negatives per pair the SGNS kernel supports (`MAX_ROWS - 1`).
pub const SGNS_MAX_NEGATIVES: usize = 15;
/// Largest window for which every pair of a position gets its own random stream.
pub const SGNS_MAX_WINDOW: usize = 31;

/// Logits buffer budget (floats) that bounds the rows of one chunk: `chunk_rows * V <= 2^25`.
const LOGIT_BUDGET: usize = 1 << 25;

fn blas_error(what: &str, e: impl std::fmt::Debug) -> EngineError {
    EngineError::Gpu { what: format!("cuBLAS sgemm ({what})"), message: format!("{e:?}") }
}

/// Column-major `C = alpha op(A) op(B) + beta C` (cuBLAS conventions: `m x n` result, inner `k`).
#[allow(clippy::too_many_arguments)] // mirrors cublasSgemm's signature
fn sgemm<A: DevicePtr<f32>, B: DevicePtr<f32>, C: DevicePtrMut<f32>>(
    gpu: &Gpu,
    (trans_a, trans_b): (bool, bool),
    (m, n, k): (usize, usize, usize),
    a: &A,
    lda: usize,
    b: &B,
    ldb: usize,
    beta: f32,
    c: &mut C,
    ldc: usize,
    what: &str,
) -> Result<(), EngineError> {
    let op = |t: bool| if t { cublasOperation_t::CUBLAS_OP_T } else { cublasOperation_t::CUBLAS_OP_N };
    let cfg = GemmConfig {
        transa: op(trans_a),
        transb: op(trans_b),
        m: m as i32,
        n: n as i32,
        k: k as i32,
        alpha: 1.0f32,
        lda: lda as i32,
        ldb: ldb as i32,
        beta,
        ldc: ldc as i32,
    };
    // SAFETY: the callers size every buffer for the leading dimensions and shapes passed.
    unsafe { gpu.blas().gemm(cfg, a, b, c) }.map_err(|e| blas_error(what, e))
}

/// The flat example arrays of `examples.rs` on the device.
#[derive(Debug)]
struct DeviceExamples {
    seq_offsets: CudaSlice<u32>,
    ctx_offsets: CudaSlice<u32>,
    ctx_tokens: CudaSlice<u32>,
    targets: CudaSlice<u32>,
    /// Host copy of the sequence offsets (batch sizes without a device read).
    host_seq_offsets: Vec<u32>,
    /// Host copy of the context offsets (pair counts).
    host_ctx_offsets: Vec<u32>,
}

impl DeviceExamples {
    fn upload(gpu: &Gpu, ex: &Examples, what: &str) -> Result<Self, EngineError> {
        let mut seq_offsets: Vec<u32> =
            (0..ex.sequences()).map(|s| ex.sequence_range(s).start as u32).collect();
        seq_offsets.push(ex.len() as u32);
        let mut ctx_offsets = Vec::with_capacity(ex.len() + 1);
        let mut ctx_tokens = Vec::new();
        ctx_offsets.push(0u32);
        for e in 0..ex.len() {
            ctx_tokens.extend_from_slice(ex.context(e));
            ctx_offsets.push(ctx_tokens.len() as u32);
        }
        Ok(Self {
            seq_offsets: gpu.upload(&seq_offsets, &format!("{what} sequence offsets"))?,
            ctx_offsets: gpu.upload(&ctx_offsets, &format!("{what} context offsets"))?,
            ctx_tokens: gpu.upload(&ctx_tokens, &format!("{what} context tokens"))?,
            targets: gpu.upload(ex.targets(), &format!("{what} targets"))?,
            host_seq_offsets: seq_offsets,
            host_ctx_offsets: ctx_offsets,
        })
    }

    fn len(&self) -> usize {
        self.host_ctx_offsets.len() - 1
    }

    /// Examples and (target, context token) pairs of the units.
    fn count(&self, units: &[u32]) -> (usize, usize) {
        let (mut n, mut pairs) = (0usize, 0usize);
        for &u in units {
            let (lo, hi) = (self.host_seq_offsets[u as usize], self.host_seq_offsets[u as usize + 1]);
            n += (hi - lo) as usize;
            pairs += (self.host_ctx_offsets[hi as usize] - self.host_ctx_offsets[lo as usize]) as usize;
        }
        (n, pairs)
    }
}

/// The compiled softmax kernels.
#[derive(Debug, Clone)]
struct SoftmaxKernels {
    batch_rows: CudaFunction,
    gather_hidden: CudaFunction,
    softmax_xent: CudaFunction,
    scatter: CudaFunction,
    small_step: CudaFunction,
    small_out_grad: CudaFunction,
    /// Use the two-launch small-vocabulary path (`small_vocab_*` in softmax.cu) for a chunk:
    /// V <= [`SMALL_VOCAB_MAX_V`] and k <= [`SMALL_VOCAB_MAX_K`], unless turned off.
    use_small: bool,
}

/// Largest vocabulary of the small-vocabulary kernels (`SV_MAX_V` in softmax.cu).
pub const SMALL_VOCAB_MAX_V: usize = 256;
/// Largest embedding size of the small-vocabulary kernels (`SV_MAX_K` in softmax.cu).
pub const SMALL_VOCAB_MAX_K: usize = 64;

/// Work buffers, grown on demand (rarely: to the largest batch seen).
#[derive(Debug)]
struct Scratch {
    h: CudaSlice<f32>,
    dh: CudaSlice<f32>,
    z: CudaSlice<f32>,
    ones: CudaSlice<f32>,
    chunk_cap: usize,
    /// Stand-in for the rank counters when none are wanted.
    no_rank: CudaSlice<u64>,
}

impl Scratch {
    fn new(gpu: &Gpu) -> Result<Self, EngineError> {
        Ok(Self {
            h: gpu.zeros(1, "hidden vectors")?,
            dh: gpu.zeros(1, "hidden gradients")?,
            z: gpu.zeros(1, "logits")?,
            ones: gpu.zeros(1, "ones")?,
            chunk_cap: 0,
            no_rank: gpu.zeros(2, "unused rank counters")?,
        })
    }

    fn ensure_chunk(&mut self, gpu: &Gpu, rows: usize, v: usize, k: usize) -> Result<(), EngineError> {
        if rows > self.chunk_cap {
            let cap = rows.next_power_of_two();
            self.h = gpu.zeros(cap * k, "hidden vectors (chunk x k)")?;
            self.dh = gpu.zeros(cap * k, "hidden gradients (chunk x k)")?;
            self.z = gpu.zeros(cap * v, "logits (chunk x V)")?;
            self.ones = gpu.upload(&vec![1.0f32; cap], "ones")?;
            self.chunk_cap = cap;
        }
        Ok(())
    }
}

/// The full-softmax CBOW / skip-gram objective on the device (the twin of
/// [`Item2VecObjective`](super::Item2VecObjective) with [`OutputLoss::FullSoftmax`]).
#[derive(Debug)]
pub struct GpuItem2VecObjective {
    config: Item2VecConfig,
    tables: Item2VecTables,
    vocab: usize,
    kernels: SoftmaxKernels,
    train: DeviceExamples,
    val: Option<(DeviceExamples, CudaSlice<u32>)>,
    scratch: Scratch,
    /// Example ids of the current batch (grown to the largest batch).
    rows: CudaSlice<u32>,
    chunk_rows: usize,
    val_loss: CudaSlice<f64>,
    val_rank: CudaSlice<u64>,
    last_rank: Option<RankMetrics>,
    /// Negative sampling (`OutputLoss::NegativeSampling`): the noise CDF on the device, the seed
    /// and the draw counter of the CPU objective's streams.
    negative: Option<DeviceNegatives>,
}

/// Largest embedding size of the negative-sampling kernel (`NS_MAX_K` in negative.cu).
pub const NEGATIVE_SAMPLING_MAX_K: usize = 256;

/// The device side of negative sampling under the engine's optimizers.
#[derive(Debug)]
struct DeviceNegatives {
    step: CudaFunction,
    cdf: CudaSlice<f64>,
    seed: u64,
    /// Training batches so far: the draw id of the next one (the CPU objective's call count).
    draws: u64,
}

/// `(embedding, out_weight, out_bias)` gradient tables, borrowed together.
fn grad_tables<'a>(
    grads: &'a mut GpuGrads,
    t: &Item2VecTables,
) -> (&'a mut GpuGradTable, &'a mut GpuGradTable, &'a mut GpuGradTable) {
    let (mut e, mut w, mut b) = (None, None, None);
    for (i, g) in grads.tables_mut().iter_mut().enumerate() {
        if i == t.embedding.0 {
            e = Some(g);
        } else if i == t.out_weight.0 {
            w = Some(g);
        } else if i == t.out_bias.0 {
            b = Some(g);
        }
    }
    match (e, w, b) {
        (Some(e), Some(w), Some(b)) => (e, w, b),
        _ => unreachable!("Item2VecTables::find checked three distinct tables"),
    }
}

impl GpuItem2VecObjective {
    /// Uploads the examples (once) and compiles the kernels. Only the full softmax runs through
    /// this objective; negative sampling on the device is [`GpuSgns`] / [`train_sgns`].
    pub fn new(
        gpu: &Gpu,
        config: Item2VecConfig,
        tables: Item2VecTables,
        vocab: usize,
        train: &Examples,
        val: Option<&Examples>,
    ) -> Result<Self, ModelError> {
        if config.loss == OutputLoss::NegativeSampling && config.dim > NEGATIVE_SAMPLING_MAX_K {
            return Err(ModelError::InvalidConfig(format!(
                "negative sampling on the GPU supports k <= {NEGATIVE_SAMPLING_MAX_K}, got {}",
                config.dim
            )));
        }
        for (name, ex) in [("training", Some(train)), ("validation", val)] {
            if let Some(ex) = ex {
                if ex.max_token_bound() > vocab {
                    return Err(ModelError::InvalidData(format!(
                        "{name} examples use token {} but the vocabulary has {vocab}",
                        ex.max_token_bound() - 1
                    )));
                }
            }
        }
        let kernels = SoftmaxKernels {
            batch_rows: gpu.function(&SOFTMAX_CU, "batch_rows")?,
            gather_hidden: gpu.function(&SOFTMAX_CU, "gather_hidden")?,
            softmax_xent: gpu.function(&SOFTMAX_CU, "softmax_xent")?,
            scatter: gpu.function(&SOFTMAX_CU, "scatter_hidden_grad")?,
            small_step: gpu.function(&SOFTMAX_CU, "small_vocab_step")?,
            small_out_grad: gpu.function(&SOFTMAX_CU, "small_vocab_out_grad")?,
            use_small: vocab <= SMALL_VOCAB_MAX_V && config.dim <= SMALL_VOCAB_MAX_K,
        };
        let train_dev = DeviceExamples::upload(gpu, train, "training")?;
        let val = match val {
            Some(v) if !v.is_empty() => {
                let ids: Vec<u32> = (0..v.len() as u32).collect();
                Some((
                    DeviceExamples::upload(gpu, v, "validation")?,
                    gpu.upload(&ids, "validation example ids")?,
                ))
            }
            _ => None,
        };
        Ok(Self {
            config,
            tables,
            vocab,
            kernels,
            train: train_dev,
            val,
            scratch: Scratch::new(gpu)?,
            rows: gpu.zeros(1, "batch example ids")?,
            chunk_rows: (LOGIT_BUDGET / vocab.max(1)).max(256),
            val_loss: gpu.zeros(1, "validation loss")?,
            val_rank: gpu.zeros(2, "validation rank counters")?,
            last_rank: None,
            negative: match config.loss {
                OutputLoss::FullSoftmax => None,
                OutputLoss::NegativeSampling => {
                    let sampler = super::UnigramSampler::for_examples(train, vocab, config.unigram_power)
                        .ok_or_else(|| {
                            ModelError::InvalidData(
                                "negative sampling needs at least one training example".into(),
                            )
                        })?;
                    Some(DeviceNegatives {
                        step: gpu.function(&NEGATIVE_CU, "ns_step")?,
                        cdf: gpu.upload(sampler.cdf(), "negative-sampling noise CDF")?,
                        seed: 0,
                        draws: 0,
                    })
                }
            },
        })
    }

    /// The seed of the negative draws (the CPU objective's `seed`; P0 passes its config seed), so
    /// the device draws the same negatives as the CPU. No effect on the full softmax.
    pub fn with_seed(mut self, seed: u64) -> Self {
        if let Some(ns) = self.negative.as_mut() {
            ns.seed = seed;
        }
        self
    }

    /// Turns the small-vocabulary kernels off (`false`: always the cuBLAS path) or back on where
    /// the shape allows; for tests that compare both paths.
    pub fn with_small_vocab_kernels(mut self, on: bool) -> Self {
        self.kernels.use_small =
            on && self.vocab <= SMALL_VOCAB_MAX_V && self.config.dim <= SMALL_VOCAB_MAX_K;
        self
    }

    /// Whether chunks run through the small-vocabulary kernels.
    pub fn uses_small_vocab_kernels(&self) -> bool {
        self.kernels.use_small
    }

    /// Caps the rows of one chunk (the logits buffer is `chunk_rows x V`); for tests of the
    /// chunked path.
    pub fn with_chunk_rows(mut self, rows: usize) -> Self {
        self.chunk_rows = rows.max(1);
        self
    }

    /// Number of training examples.
    pub fn train_examples(&self) -> usize {
        self.train.len()
    }

    /// Ranking figures of the last [`validation_loss`](GpuObjective::validation_loss) call
    /// (CBOW: cross-entropy, accuracy@1, hit@10 among V; skip-gram: cross-entropy per pair, no
    /// ranks).
    pub fn last_validation_rank(&self) -> Option<RankMetrics> {
        self.last_rank
    }

    /// Queues the loss (and with `grads` the gradient of the batch mean) of the training
    /// sequences `units` (device ids, with their host copy); adds the loss sum to `loss_sum[0]`.
    /// Returns the loss count (CBOW: examples; skip-gram: pairs).
    pub fn enqueue_units(
        &mut self,
        gpu: &Gpu,
        params: &GpuParams,
        grads: Option<&mut GpuGrads>,
        units: &CudaView<'_, u32>,
        host_units: &[u32],
        loss_sum: &mut CudaViewMut<'_, f64>,
    ) -> Result<u64, EngineError> {
        let (n, pairs) = self.train.count(host_units);
        let count = match self.config.architecture {
            Architecture::Cbow => n,
            Architecture::Skipgram => pairs,
        };
        if count == 0 {
            return Ok(0);
        }
        if n > self.rows.len() {
            self.rows = gpu.zeros(n.next_power_of_two(), "batch example ids")?;
        }
        let n_units = host_units.len() as u32;
        {
            let mut l = gpu.stream().launch_builder(&self.kernels.batch_rows);
            l.arg(units).arg(&n_units).arg(&self.train.seq_offsets).arg(&mut self.rows);
            let cfg = LaunchConfig { grid_dim: (1, 1, 1), block_dim: (1024, 1, 1), shared_mem_bytes: 0 };
            // SAFETY: units holds n_units ids < sequences; rows has room for their n examples.
            unsafe { l.launch(cfg) }.map_err(|e| gpu.launch_error("batch_rows", e))?;
        }
        if let Some(ns) = self.negative.as_mut() {
            let draw = ns.draws;
            ns.draws += 1;
            let rows = self.rows.slice(..n);
            let pass = NegativeLaunch {
                config: &self.config,
                tables: &self.tables,
                vocab: self.vocab,
                ex: &self.train,
            };
            pass.run(gpu, ns, &rows, params, grads, &mut self.scratch, 1.0 / count as f32, draw, loss_sum)?;
            return Ok(count as u64);
        }
        softmax_pass(
            gpu,
            &self.kernels,
            &self.config,
            &self.tables,
            self.vocab,
            self.chunk_rows,
            &self.train,
            &self.rows.slice(..n),
            &mut self.scratch,
            params,
            grads,
            1.0 / count as f32,
            loss_sum,
            None,
        )?;
        Ok(count as u64)
    }

    /// Validation cross-entropy and, for CBOW, accuracy@1 and hit@10 (one device read).
    pub fn validation_metrics(
        &mut self,
        gpu: &Gpu,
        params: &GpuParams,
    ) -> Result<Option<RankMetrics>, EngineError> {
        Ok(self.validation_pass(gpu, params)?.map(|(_, m)| m))
    }

    /// The validation loss sum and the metrics.
    fn validation_pass(
        &mut self,
        gpu: &Gpu,
        params: &GpuParams,
    ) -> Result<Option<(f64, RankMetrics)>, EngineError> {
        let Some((val, ids)) = &self.val else { return Ok(None) };
        let n = val.len();
        let count = match self.config.architecture {
            Architecture::Cbow => n,
            Architecture::Skipgram => *val.host_ctx_offsets.last().unwrap_or(&0) as usize,
        };
        gpu.stream()
            .memset_zeros(&mut self.val_loss)
            .map_err(|e| driver("clearing the validation loss", e))?;
        gpu.stream().memset_zeros(&mut self.val_rank).map_err(|e| driver("clearing the rank counters", e))?;
        let want_rank = self.config.architecture == Architecture::Cbow && self.negative.is_none();
        let mut loss = self.val_loss.slice_mut(..);
        if let Some(ns) = self.negative.as_ref() {
            // The CPU objective's fixed validation draw: epochs are compared on equal negatives.
            let pass =
                NegativeLaunch { config: &self.config, tables: &self.tables, vocab: self.vocab, ex: val };
            let rows = ids.slice(..n);
            pass.run(
                gpu,
                ns,
                &rows,
                params,
                None,
                &mut self.scratch,
                0.0,
                super::VALIDATION_DRAW,
                &mut loss,
            )?;
        } else {
            softmax_pass(
                gpu,
                &self.kernels,
                &self.config,
                &self.tables,
                self.vocab,
                self.chunk_rows,
                val,
                &ids.slice(..n),
                &mut self.scratch,
                params,
                None,
                0.0,
                &mut loss,
                want_rank.then_some(&mut self.val_rank),
            )?;
        }
        let sum = gpu.download(&self.val_loss, 1, "validation loss")?[0];
        let ranks = gpu.download(&self.val_rank, 2, "validation rank counters")?;
        let denom = count.max(1) as f64;
        let metrics = RankMetrics {
            cross_entropy: sum / denom,
            accuracy_at_1: if want_rank { ranks[0] as f64 / n.max(1) as f64 } else { f64::NAN },
            hit_at_10: if want_rank { ranks[1] as f64 / n.max(1) as f64 } else { f64::NAN },
            examples: count,
        };
        self.last_rank = Some(metrics);
        Ok(Some((sum, metrics)))
    }
}

fn driver(what: &str, e: reelvec_engine::gpu::cudarc::driver::DriverError) -> EngineError {
    reelvec_engine::gpu::driver_error(what, e)
}

/// What a negative-sampling launch reads besides its rows: the model's shape and the examples.
struct NegativeLaunch<'a> {
    config: &'a Item2VecConfig,
    tables: &'a Item2VecTables,
    vocab: usize,
    ex: &'a DeviceExamples,
}

impl NegativeLaunch<'_> {
    /// `ns_step` over `rows` (positions 0.. in the batch), draw `draw`; with `grads` the gradient
    /// of the batch loss times `scale` (1 / count: the batch mean).
    #[allow(clippy::too_many_arguments)] // the per-call pieces; the fixed ones are in self
    fn run(
        &self,
        gpu: &Gpu,
        ns: &DeviceNegatives,
        rows: &CudaView<'_, u32>,
        params: &GpuParams,
        grads: Option<&mut GpuGrads>,
        scratch: &mut Scratch,
        scale: f32,
        draw: u64,
        loss_sum: &mut CudaViewMut<'_, f64>,
    ) -> Result<(), EngineError> {
        let n = rows.len();
        if n == 0 {
            return Ok(());
        }
        let (n32, v32, k32) = (n as u32, self.vocab as u32, self.config.dim as u32);
        let first_position = 0u32;
        let skipgram = i32::from(self.config.architecture == Architecture::Skipgram);
        let mean = i32::from(self.config.context == ContextReduce::Mean);
        let negatives = self.config.negatives as u32;
        let grad = i32::from(grads.is_some());
        let emb = &params.get(self.tables.embedding).data;
        let w = &params.get(self.tables.out_weight).data;
        let b = &params.get(self.tables.out_bias).data;
        const WARPS: u32 = 8; // NS_WARPS in negative.cu
        let cfg = LaunchConfig {
            grid_dim: (n32.div_ceil(WARPS), 1, 1),
            block_dim: (32 * WARPS, 1, 1),
            shared_mem_bytes: 0,
        };
        let mut l = gpu.stream().launch_builder(&ns.step);
        l.arg(rows)
            .arg(&n32)
            .arg(&first_position)
            .arg(&v32)
            .arg(&k32)
            .arg(emb)
            .arg(w)
            .arg(b)
            .arg(&self.ex.ctx_offsets)
            .arg(&self.ex.ctx_tokens)
            .arg(&self.ex.targets)
            .arg(&skipgram)
            .arg(&mean)
            .arg(&ns.cdf)
            .arg(&negatives)
            .arg(&ns.seed)
            .arg(&draw)
            .arg(&scale)
            .arg(&grad);
        let mut split = grads.map(|g| grad_tables(g, self.tables));
        match split.as_mut() {
            Some((ge, gw, gb)) => {
                l.arg(&mut ge.data)
                    .arg(&mut ge.touched)
                    .arg(&mut gw.data)
                    .arg(&mut gw.touched)
                    .arg(&mut gb.data)
                    .arg(&mut gb.touched);
            }
            // Without gradients the kernel writes only the loss; scratch buffers stand in for
            // the unused gradient pointers.
            None => {
                let (f, u) = (&scratch.dh, &scratch.no_rank);
                l.arg(f).arg(u).arg(f).arg(u).arg(f).arg(u);
            }
        }
        l.arg(&mut *loss_sum);
        // SAFETY: rows holds n example ids of `ex`; the tables are V x k, V x k and V.
        unsafe { l.launch(cfg) }.map_err(|e| gpu.launch_error("ns_step", e))?;
        Ok(())
    }
}

/// One chunk through the small-vocabulary kernels: `small_vocab_step` (forward, loss, dz, dh
/// scattered into the embedding gradient), then with gradients `small_vocab_out_grad` (dW, db).
#[allow(clippy::too_many_arguments)] // the pieces of softmax_pass's loop body
fn small_vocab_chunk(
    gpu: &Gpu,
    kernels: &SoftmaxKernels,
    tables: &Item2VecTables,
    ex: &DeviceExamples,
    chunk: &CudaView<'_, u32>,
    (n, v, k): (usize, usize, usize),
    (skipgram, mean, scale): (i32, i32, f32),
    scratch: &mut Scratch,
    params: &GpuParams,
    grads: Option<&mut GpuGrads>,
    loss_sum: &mut CudaViewMut<'_, f64>,
    rank: Option<&mut CudaSlice<u64>>,
) -> Result<(), EngineError> {
    let (n32, v32, k32) = (n as u32, v as u32, k as u32);
    let emb = &params.get(tables.embedding).data;
    let w = &params.get(tables.out_weight).data;
    let b = &params.get(tables.out_bias).data;
    let grad = i32::from(grads.is_some());
    let want_rank = i32::from(rank.is_some());
    let rank_buf: &mut CudaSlice<u64> = match rank {
        Some(r) => r,
        None => &mut scratch.no_rank,
    };
    const WARPS: u32 = 8; // SV_WARPS in softmax.cu
    let cfg = LaunchConfig {
        grid_dim: (n32.div_ceil(WARPS).max(1), 1, 1),
        block_dim: (32 * WARPS, 1, 1),
        shared_mem_bytes: 0,
    };
    let mut split = grads.map(|g| grad_tables(g, tables));
    {
        let mut l = gpu.stream().launch_builder(&kernels.small_step);
        l.arg(chunk)
            .arg(&n32)
            .arg(&v32)
            .arg(&k32)
            .arg(emb)
            .arg(w)
            .arg(b)
            .arg(&ex.ctx_offsets)
            .arg(&ex.ctx_tokens)
            .arg(&ex.targets)
            .arg(&skipgram)
            .arg(&mean)
            .arg(&scale)
            .arg(&grad)
            .arg(&mut scratch.h)
            .arg(&mut scratch.z);
        match split.as_mut() {
            Some((ge, _, _)) => {
                l.arg(&mut ge.data).arg(&mut ge.touched);
            }
            // Without gradients the kernel writes only the loss and rank counters; scratch
            // buffers stand in for the unused gradient pointers.
            None => {
                l.arg(&scratch.dh).arg(&scratch.ones);
            }
        }
        l.arg(&mut *loss_sum).arg(&want_rank).arg(&mut *rank_buf);
        // SAFETY: chunk holds n example ids; h, z have room for n x k and n x V; the embedding
        // gradient is V x k.
        unsafe { l.launch(cfg) }.map_err(|e| gpu.launch_error("small_vocab_step", e))?;
    }
    if let Some((_, gw, gb)) = split {
        let mut l = gpu.stream().launch_builder(&kernels.small_out_grad);
        l.arg(&scratch.h)
            .arg(&scratch.z)
            .arg(&n32)
            .arg(&v32)
            .arg(&k32)
            .arg(&mut gw.data)
            .arg(&mut gb.data)
            .arg(&mut gw.touched)
            .arg(&mut gb.touched);
        let out_cfg =
            LaunchConfig { grid_dim: (v32.max(1), 1, 1), block_dim: (256, 1, 1), shared_mem_bytes: 0 };
        // SAFETY: h, z hold this chunk's n x k and n x V; the gradient tables are V x k and V.
        unsafe { l.launch(out_cfg) }.map_err(|e| gpu.launch_error("small_vocab_out_grad", e))?;
    }
    Ok(())
}

/// The chunked forward (and backward) over the examples `rows` of `ex` (see the module doc).
#[allow(clippy::too_many_arguments)] // one internal call site per use; a struct would only rename them
fn softmax_pass(
    gpu: &Gpu,
    kernels: &SoftmaxKernels,
    config: &Item2VecConfig,
    tables: &Item2VecTables,
    v: usize,
    chunk_rows: usize,
    ex: &DeviceExamples,
    rows: &CudaView<'_, u32>,
    scratch: &mut Scratch,
    params: &GpuParams,
    mut grads: Option<&mut GpuGrads>,
    scale: f32,
    loss_sum: &mut CudaViewMut<'_, f64>,
    mut rank: Option<&mut CudaSlice<u64>>,
) -> Result<(), EngineError> {
    let k = config.dim;
    let n_total = rows.len();
    let skipgram = i32::from(config.architecture == Architecture::Skipgram);
    let mean = i32::from(config.context == ContextReduce::Mean);
    let emb = &params.get(tables.embedding).data;
    let w = &params.get(tables.out_weight).data;
    let b = &params.get(tables.out_bias).data;
    let (k32, v32) = (k as u32, v as u32);
    let grad = i32::from(grads.is_some());
    let mut start = 0;
    while start < n_total {
        let n = chunk_rows.min(n_total - start);
        scratch.ensure_chunk(gpu, n, v, k)?;
        let chunk = rows.slice(start..start + n);
        let n32 = n as u32;
        if kernels.use_small {
            small_vocab_chunk(
                gpu,
                kernels,
                tables,
                ex,
                &chunk,
                (n, v, k),
                (skipgram, mean, scale),
                scratch,
                params,
                grads.as_deref_mut(),
                loss_sum,
                rank.as_deref_mut(),
            )?;
            start += n;
            continue;
        }
        {
            let mut l = gpu.stream().launch_builder(&kernels.gather_hidden);
            l.arg(&chunk)
                .arg(&n32)
                .arg(&ex.ctx_offsets)
                .arg(&ex.ctx_tokens)
                .arg(&ex.targets)
                .arg(emb)
                .arg(&k32)
                .arg(&skipgram)
                .arg(&mean)
                .arg(&mut scratch.h);
            // SAFETY: chunk holds n example ids of `ex`; h has room for n x k.
            unsafe { l.launch(grid_for(n * k)) }.map_err(|e| gpu.launch_error("gather_hidden", e))?;
        }
        // Z^T (V x n, column-major) = W (as k x V column-major, transposed) x H^T (k x n).
        sgemm(gpu, (true, false), (v, n, k), w, k, &scratch.h, k, 0.0, &mut scratch.z, v, "logits")?;
        {
            let want_rank = i32::from(rank.is_some());
            let rank_buf: &mut CudaSlice<u64> = match rank.as_deref_mut() {
                Some(r) => r,
                None => &mut scratch.no_rank,
            };
            let mut l = gpu.stream().launch_builder(&kernels.softmax_xent);
            l.arg(&mut scratch.z)
                .arg(&n32)
                .arg(&v32)
                .arg(b)
                .arg(&chunk)
                .arg(&ex.ctx_offsets)
                .arg(&ex.ctx_tokens)
                .arg(&ex.targets)
                .arg(&skipgram)
                .arg(&scale)
                .arg(&grad)
                .arg(&mut *loss_sum)
                .arg(&want_rank)
                .arg(rank_buf);
            let blocks = (n as u64 * 32).div_ceil(256) as u32;
            let cfg =
                LaunchConfig { grid_dim: (blocks.max(1), 1, 1), block_dim: (256, 1, 1), shared_mem_bytes: 0 };
            // SAFETY: z holds n x V logits; one warp per row.
            unsafe { l.launch(cfg) }.map_err(|e| gpu.launch_error("softmax_xent", e))?;
        }
        if let Some(grads) = grads.as_deref_mut() {
            let (ge, gw, gb) = grad_tables(grads, tables);
            // db (V) += dZ^T 1: column-major Z^T (V x n) times ones (n x 1).
            sgemm(
                gpu,
                (false, false),
                (v, 1, n),
                &scratch.z,
                v,
                &scratch.ones,
                n,
                1.0,
                &mut gb.data,
                v,
                "db",
            )?;
            // dW^T (k x V) += H^T (k x n) x dZ (n x V) = H^T x (Z^T)^T.
            sgemm(gpu, (false, true), (k, v, n), &scratch.h, k, &scratch.z, v, 1.0, &mut gw.data, k, "dW")?;
            // dH^T (k x n) = W^T (k x V) x dZ^T (V x n).
            sgemm(gpu, (false, false), (k, n, v), w, k, &scratch.z, v, 0.0, &mut scratch.dh, k, "dH")?;
            let mut l = gpu.stream().launch_builder(&kernels.scatter);
            l.arg(&scratch.dh)
                .arg(&chunk)
                .arg(&n32)
                .arg(&k32)
                .arg(&ex.ctx_offsets)
                .arg(&ex.ctx_tokens)
                .arg(&ex.targets)
                .arg(&skipgram)
                .arg(&mean)
                .arg(&mut ge.data)
                .arg(&mut ge.touched)
                .arg(&mut gw.touched)
                .arg(&mut gb.touched)
                .arg(&v32);
            // SAFETY: dh holds n x k; the gradient tables are V x k and V.
            unsafe { l.launch(grid_for((n * k).max(v))) }
                .map_err(|e| gpu.launch_error("scatter_hidden_grad", e))?;
        }
        start += n;
    }
    Ok(())
}

impl GpuObjective for GpuItem2VecObjective {
    fn train_units(&self) -> usize {
        self.train.host_seq_offsets.len() - 1
    }

    fn enqueue_batch(
        &mut self,
        gpu: &Gpu,
        params: &GpuParams,
        grads: &mut GpuGrads,
        batch: &GpuBatch<'_>,
        loss_sum: &mut CudaViewMut<'_, f64>,
    ) -> Result<u64, EngineError> {
        self.enqueue_units(gpu, params, Some(grads), &batch.units, batch.host_units, loss_sum)
    }

    fn validation_loss(&mut self, gpu: &Gpu, params: &GpuParams) -> Result<Option<BatchLoss>, EngineError> {
        Ok(self.validation_pass(gpu, params)?.map(|(sum, m)| BatchLoss::new(sum, m.examples as u64)))
    }

    fn loss_name(&self) -> &'static str {
        self.config.loss_name()
    }

    fn loss_baseline(&self) -> Option<f64> {
        Some(self.config.loss_baseline(self.vocab))
    }
}

/// A corpus of token sequences, flat: `tokens[offsets[s]..offsets[s + 1]]` is sequence `s`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SgnsCorpus {
    /// Every token, sequence after sequence.
    pub tokens: Vec<u32>,
    /// `sequences + 1` offsets into `tokens`.
    pub offsets: Vec<u32>,
}

impl SgnsCorpus {
    /// Flattens `sequences`.
    pub fn from_sequences(sequences: &[Vec<u32>]) -> Self {
        let total: usize = sequences.iter().map(Vec::len).sum();
        let mut tokens = Vec::with_capacity(total);
        let mut offsets = Vec::with_capacity(sequences.len() + 1);
        offsets.push(0);
        for s in sequences {
            tokens.extend_from_slice(s);
            offsets.push(tokens.len() as u32);
        }
        Self { tokens, offsets }
    }

    /// Number of (centre, context) pairs with window `window`: every position (but the first
    /// and last of each sequence with `drop_ends`) pairs with each existing neighbour within
    /// `window` — the count of [`Examples::build`]`(.., window, drop_ends)`'s context tokens.
    pub fn pair_count(&self, window: usize, drop_ends: bool) -> u64 {
        let mut pairs = 0u64;
        for s in self.offsets.windows(2) {
            let len = (s[1] - s[0]) as usize;
            for i in 0..len {
                if drop_ends && (i == 0 || i + 1 >= len) {
                    continue;
                }
                let lo = i.saturating_sub(window);
                let hi = (i + window).min(len - 1);
                pairs += (hi - lo) as u64;
            }
        }
        pairs
    }
}

/// Walker's alias table of `counts^power`: `(prob, alias)` per token; a draw picks a bucket
/// uniformly and keeps it with probability `prob[bucket]`, else takes `alias[bucket]`.
pub fn alias_table(counts: &[u64], power: f64) -> Option<(Vec<f32>, Vec<u32>)> {
    let v = counts.len();
    let weights: Vec<f64> =
        counts.iter().map(|&c| if c == 0 { 0.0 } else { (c as f64).powf(power) }).collect();
    let total: f64 = weights.iter().sum();
    if v == 0 || total <= 0.0 || !total.is_finite() {
        return None;
    }
    let mut scaled: Vec<f64> = weights.iter().map(|w| w * v as f64 / total).collect();
    let mut prob = vec![1.0f32; v];
    let mut alias: Vec<u32> = (0..v as u32).collect();
    let (mut small, mut large): (Vec<usize>, Vec<usize>) = (0..v).partition(|&i| scaled[i] < 1.0);
    while let (Some(s), Some(&l)) = (small.pop(), large.last()) {
        prob[s] = scaled[s] as f32;
        alias[s] = l as u32;
        scaled[l] -= 1.0 - scaled[s];
        if scaled[l] < 1.0 {
            large.pop();
            small.push(l);
        }
    }
    // Leftovers (rounding) keep themselves with probability 1, except zero-weight tokens.
    for i in small.into_iter().chain(large) {
        prob[i] = 1.0;
        alias[i] = i as u32;
    }
    // A zero-weight token must never be drawn: point its bucket at a token with weight.
    if let Some(any) = weights.iter().position(|&w| w > 0.0) {
        for i in 0..v {
            if weights[i] == 0.0 && prob[i] > 0.0 && alias[i] as usize == i {
                prob[i] = 0.0;
                alias[i] = any as u32;
            }
        }
    }
    Some((prob, alias))
}

/// SGNS hyperparameters (word2vec's defaults where they apply).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SgnsConfig {
    /// Embedding size `k` (<= [`SGNS_MAX_DIM`]).
    pub dim: usize,
    /// Window `w` (5).
    pub window: usize,
    /// Drop the first and last position of every sequence as centres (false).
    pub drop_ends: bool,
    /// Negatives per pair (5, <= [`SGNS_MAX_NEGATIVES`]).
    pub negatives: usize,
    /// Exponent of the unigram noise distribution (0.75).
    pub unigram_power: f64,
    /// Epochs (5).
    pub epochs: usize,
    /// Starting learning rate (0.025), decayed linearly over the run.
    pub lr: f32,
    /// The lr never falls below `lr * min_lr_fraction` (1e-4).
    pub min_lr_fraction: f32,
    /// Seed of the initialisation and the negative draws.
    pub seed: u64,
    /// Apply every update with atomicAdd (true; no lost updates on popular rows) or plain
    /// stores (word2vec's Hogwild).
    pub atomic_updates: bool,
}

impl Default for SgnsConfig {
    fn default() -> Self {
        Self {
            dim: 64,
            window: 5,
            drop_ends: false,
            negatives: 5,
            unigram_power: 0.75,
            epochs: 5,
            lr: 0.025,
            min_lr_fraction: 1e-4,
            seed: 42,
            atomic_updates: true,
        }
    }
}

impl SgnsConfig {
    fn check(&self) -> Result<(), ModelError> {
        if self.dim == 0 || self.dim > SGNS_MAX_DIM {
            return Err(ModelError::InvalidConfig(format!(
                "SGNS on the GPU needs 1 <= dim <= {SGNS_MAX_DIM} (got {})",
                self.dim
            )));
        }
        if self.negatives > SGNS_MAX_NEGATIVES {
            return Err(ModelError::InvalidConfig(format!(
                "SGNS on the GPU draws at most {SGNS_MAX_NEGATIVES} negatives per pair (got {})",
                self.negatives
            )));
        }
        if self.window == 0 {
            return Err(ModelError::InvalidConfig("SGNS needs window >= 1".into()));
        }
        Ok(())
    }

    /// The matching model configuration (skip-gram, negative sampling).
    pub fn model_config(&self) -> Item2VecConfig {
        Item2VecConfig {
            architecture: Architecture::Skipgram,
            dim: self.dim,
            window: self.window,
            drop_ends: self.drop_ends,
            context: ContextReduce::Sum,
            loss: OutputLoss::NegativeSampling,
            negatives: self.negatives,
            unigram_power: self.unigram_power,
        }
    }
}

/// One SGNS epoch's figures.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SgnsEpoch {
    /// 0-based epoch.
    pub epoch: usize,
    /// Mean loss per pair (before each pair's update).
    pub loss: f64,
    /// Pairs trained.
    pub pairs: u64,
    /// Wall time of the epoch's kernel (launch to completion).
    pub seconds: f64,
}

/// A corpus on the device, ready for SGNS epochs.
#[derive(Debug)]
pub struct GpuSgns {
    tokens: CudaSlice<u32>,
    tok_seq: CudaSlice<u32>,
    offsets: CudaSlice<u32>,
    alias_prob: CudaSlice<f32>,
    alias_idx: CudaSlice<u32>,
    n_tokens: usize,
    n_seqs: usize,
    vocab: usize,
    counters_loss: CudaSlice<f64>,
    counters_pairs: CudaSlice<u64>,
    sgns: CudaFunction,
    count: CudaFunction,
}

impl GpuSgns {
    /// Uploads `corpus` (once) with the unigram^`power` noise table of its token counts.
    pub fn new(gpu: &Gpu, corpus: &SgnsCorpus, vocab: usize, power: f64) -> Result<Self, ModelError> {
        if corpus.tokens.len() >= u32::MAX as usize {
            return Err(ModelError::InvalidData("SGNS corpus above 2^32 tokens".into()));
        }
        let mut counts = vec![0u64; vocab];
        for &t in &corpus.tokens {
            let slot = counts.get_mut(t as usize).ok_or_else(|| {
                ModelError::InvalidData(format!("token {t} outside the vocabulary of {vocab}"))
            })?;
            *slot += 1;
        }
        let (prob, alias) = alias_table(&counts, power)
            .ok_or_else(|| ModelError::InvalidData("SGNS needs at least one token".into()))?;
        let n_seqs = corpus.offsets.len().saturating_sub(1);
        let tokens = gpu.upload(&corpus.tokens, "SGNS tokens")?;
        let offsets = gpu.upload(&corpus.offsets, "SGNS sequence offsets")?;
        let mut tok_seq = gpu.zeros::<u32>(corpus.tokens.len(), "SGNS token -> sequence map")?;
        let f = gpu.function(&NEGATIVE_CU, "token_sequences")?;
        {
            let n = n_seqs as u32;
            let mut l = gpu.stream().launch_builder(&f);
            l.arg(&offsets).arg(&n).arg(&mut tok_seq);
            let blocks = (n_seqs.clamp(1, 65_535)) as u32;
            let cfg = LaunchConfig { grid_dim: (blocks, 1, 1), block_dim: (128, 1, 1), shared_mem_bytes: 0 };
            // SAFETY: offsets has n_seqs + 1 entries; tok_seq one slot per token.
            unsafe { l.launch(cfg) }.map_err(|e| gpu.launch_error("token_sequences", e))?;
        }
        Ok(Self {
            tokens,
            tok_seq,
            offsets,
            alias_prob: gpu.upload(&prob, "SGNS alias probabilities")?,
            alias_idx: gpu.upload(&alias, "SGNS alias table")?,
            n_tokens: corpus.tokens.len(),
            n_seqs,
            vocab,
            counters_loss: gpu.zeros(1, "SGNS loss sum")?,
            counters_pairs: gpu.zeros(1, "SGNS pair counter")?,
            sgns: gpu.function(&NEGATIVE_CU, "sgns_epoch")?,
            count: gpu.function(&NEGATIVE_CU, "count_pairs")?,
        })
    }

    /// Number of sequences.
    pub fn sequences(&self) -> usize {
        self.n_seqs
    }

    /// The pairs of one epoch, counted on the device.
    pub fn device_pair_count(
        &mut self,
        gpu: &Gpu,
        window: usize,
        drop_ends: bool,
    ) -> Result<u64, EngineError> {
        gpu.stream()
            .memset_zeros(&mut self.counters_pairs)
            .map_err(|e| driver("clearing the pair counter", e))?;
        let (n, w, d) = (self.n_tokens as u32, window as u32, i32::from(drop_ends));
        let mut l = gpu.stream().launch_builder(&self.count);
        l.arg(&self.tok_seq).arg(&self.offsets).arg(&n).arg(&w).arg(&d).arg(&mut self.counters_pairs);
        let mut cfg = grid_for(self.n_tokens);
        cfg.grid_dim.0 = cfg.grid_dim.0.min(gpu.multiprocessors() as u32 * 16);
        // SAFETY: every buffer covers n tokens / the sequences.
        unsafe { l.launch(cfg) }.map_err(|e| gpu.launch_error("count_pairs", e))?;
        Ok(gpu.download(&self.counters_pairs, 1, "SGNS pair counter")?[0])
    }

    /// Runs epoch `epoch` of `cfg` on `params`' tables (waits for it: one read of the loss and
    /// the pair count).
    pub fn epoch(
        &mut self,
        gpu: &Gpu,
        params: &mut GpuParams,
        tables: &Item2VecTables,
        cfg: &SgnsConfig,
        epoch: usize,
    ) -> Result<SgnsEpoch, ModelError> {
        cfg.check()?;
        let e_table = params.get(tables.embedding);
        if e_table.rows != self.vocab || e_table.cols != cfg.dim {
            return Err(ModelError::InvalidData(format!(
                "SGNS tables are {}x{}, expected {}x{}",
                e_table.rows, e_table.cols, self.vocab, cfg.dim
            )));
        }
        let stream = gpu.stream();
        stream.memset_zeros(&mut self.counters_loss).map_err(|e| driver("clearing the SGNS loss", e))?;
        stream.memset_zeros(&mut self.counters_pairs).map_err(|e| driver("clearing the pair counter", e))?;
        gpu.sync("SGNS set-up")?;
        let started = Instant::now();
        let n_tokens = self.n_tokens as u32;
        let v = self.vocab as u32;
        let (k, w, d, neg) =
            (cfg.dim as u32, cfg.window as u32, i32::from(cfg.drop_ends), cfg.negatives as u32);
        let epoch32 = epoch as u32;
        let base = epoch as f64 * self.n_tokens as f64;
        let total = (cfg.epochs.max(epoch + 1) as f64 * self.n_tokens as f64).max(1.0);
        let (lr, min_frac) = (cfg.lr, cfg.min_lr_fraction);
        let seed = cfg.seed;
        let atomics = i32::from(cfg.atomic_updates);
        // Three tables mutably at once: take them out of the store order by index.
        let (ei, wi, bi) = (tables.embedding.0, tables.out_weight.0, tables.out_bias.0);
        let mut slots: Vec<Option<&mut CudaSlice<f32>>> =
            params.tables_mut().iter_mut().map(|t| Some(&mut t.data)).collect();
        let (Some(emb), Some(wt), Some(bt)) = (slots[ei].take(), slots[wi].take(), slots[bi].take()) else {
            return Err(ModelError::InvalidData("item2vec tables must be three distinct tables".into()));
        };
        let mut l = stream.launch_builder(&self.sgns);
        l.arg(&self.tokens)
            .arg(&self.tok_seq)
            .arg(&self.offsets)
            .arg(&n_tokens)
            .arg(&self.alias_prob)
            .arg(&self.alias_idx)
            .arg(&v)
            .arg(emb)
            .arg(wt)
            .arg(bt)
            .arg(&k)
            .arg(&w)
            .arg(&d)
            .arg(&neg)
            .arg(&seed)
            .arg(&epoch32)
            .arg(&base)
            .arg(&total)
            .arg(&lr)
            .arg(&min_frac)
            .arg(&atomics)
            .arg(&mut self.counters_loss)
            .arg(&mut self.counters_pairs);
        // A grid of resident blocks only, so the grid-stride sweep (and the lr schedule that
        // follows it) runs through the corpus in order.
        let resident =
            self.sgns.occupancy_max_active_blocks_per_multiprocessor(256, 0, None).unwrap_or(4).max(1);
        let blocks = self.n_tokens.div_ceil(8).clamp(1, gpu.multiprocessors() * resident as usize) as u32;
        let launch = LaunchConfig { grid_dim: (blocks, 1, 1), block_dim: (256, 1, 1), shared_mem_bytes: 0 };
        // SAFETY: tables are vocab x dim (checked), the corpus buffers cover n_tokens.
        unsafe { l.launch(launch) }.map_err(|e| gpu.launch_error("sgns_epoch", e))?;
        gpu.sync("the SGNS epoch")?;
        let seconds = started.elapsed().as_secs_f64();
        let loss = gpu.download(&self.counters_loss, 1, "SGNS loss sum")?[0];
        let pairs = gpu.download(&self.counters_pairs, 1, "SGNS pair counter")?[0];
        Ok(SgnsEpoch { epoch, loss: loss / pairs.max(1) as f64, pairs, seconds })
    }
}

/// word2vec's initialisation of the three item2vec tables: embedding U(-0.5/k, 0.5/k), output
/// weights and biases zero.
pub fn sgns_params(vocab: usize, cfg: &SgnsConfig) -> Result<(ParamStore, Item2VecTables), ModelError> {
    let mut params = ParamStore::new();
    let model = cfg.model_config();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(cfg.seed);
    let tables = Item2VecTables::register(&mut params, vocab, &model, &mut rng)?;
    let half = 0.5 / cfg.dim as f32;
    for x in params.get_mut(tables.embedding).data.iter_mut() {
        *x = rng.random_range(-half..half);
    }
    params.get_mut(tables.out_weight).data.iter_mut().for_each(|x| *x = 0.0);
    params.get_mut(tables.out_bias).data.iter_mut().for_each(|x| *x = 0.0);
    Ok((params, tables))
}

/// Trains skip-gram with negative sampling on the device over `sequences` (tokens `< vocab`):
/// the model (kind skip-gram, negative sampling) and the per-epoch figures.
pub fn train_sgns(
    gpu: &Gpu,
    sequences: &[Vec<u32>],
    vocab: usize,
    cfg: &SgnsConfig,
) -> Result<(Item2Vec, Vec<SgnsEpoch>), ModelError> {
    cfg.check()?;
    let corpus = SgnsCorpus::from_sequences(sequences);
    let mut sgns = GpuSgns::new(gpu, &corpus, vocab, cfg.unigram_power)?;
    let (mut params, tables) = sgns_params(vocab, cfg)?;
    let mut dev = GpuParams::upload(gpu, &params)?;
    let mut history = Vec::with_capacity(cfg.epochs);
    for epoch in 0..cfg.epochs {
        let stats = sgns.epoch(gpu, &mut dev, &tables, cfg, epoch)?;
        if !stats.loss.is_finite() {
            return Err(ModelError::InvalidData(format!(
                "SGNS diverged at epoch {epoch} (loss {})",
                stats.loss
            )));
        }
        tracing::info!(epoch, loss = stats.loss, pairs = stats.pairs, seconds = stats.seconds, "SGNS epoch");
        history.push(stats);
    }
    dev.download_into(gpu, &mut params)?;
    Ok((Item2Vec::new(cfg.model_config(), params)?, history))
}

/// Throughput of one SGNS epoch (after a warm-up epoch that compiles and caches).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SgnsBench {
    /// (centre, context) pairs of the timed epoch.
    pub pairs: u64,
    /// Kernel wall time of the timed epoch.
    pub seconds: f64,
    /// `pairs / seconds`.
    pub pairs_per_second: f64,
    /// Mean loss per pair of the timed epoch.
    pub loss: f64,
}

/// Times one SGNS epoch over `sequences` (k = `dim`, `negatives`, `window`, no dropped ends):
/// uploads the corpus, runs a warm-up epoch, then times the second epoch's kernel.
pub fn bench_sgns_epoch(
    gpu: &Gpu,
    sequences: &[Vec<u32>],
    vocab: usize,
    dim: usize,
    negatives: usize,
    window: usize,
) -> Result<SgnsBench, ModelError> {
    bench_sgns_corpus(gpu, &SgnsCorpus::from_sequences(sequences), vocab, dim, negatives, window)
}

/// [`bench_sgns_epoch`] on a flat corpus.
pub fn bench_sgns_corpus(
    gpu: &Gpu,
    corpus: &SgnsCorpus,
    vocab: usize,
    dim: usize,
    negatives: usize,
    window: usize,
) -> Result<SgnsBench, ModelError> {
    let cfg = SgnsConfig { dim, negatives, window, epochs: 2, ..SgnsConfig::default() };
    bench_sgns_with(gpu, corpus, vocab, &cfg)
}

/// Times the second epoch of `cfg` (at least 2 epochs are assumed for the lr schedule) over
/// `corpus`.
pub fn bench_sgns_with(
    gpu: &Gpu,
    corpus: &SgnsCorpus,
    vocab: usize,
    cfg: &SgnsConfig,
) -> Result<SgnsBench, ModelError> {
    let cfg = SgnsConfig { epochs: cfg.epochs.max(2), ..*cfg };
    cfg.check()?;
    let mut sgns = GpuSgns::new(gpu, corpus, vocab, cfg.unigram_power)?;
    let (params, tables) = sgns_params(vocab, &cfg)?;
    let mut dev = GpuParams::upload(gpu, &params)?;
    sgns.epoch(gpu, &mut dev, &tables, &cfg, 0)?;
    let timed = sgns.epoch(gpu, &mut dev, &tables, &cfg, 1)?;
    Ok(SgnsBench {
        pairs: timed.pairs,
        seconds: timed.seconds,
        pairs_per_second: timed.pairs as f64 / timed.seconds.max(1e-12),
        loss: timed.loss,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn alias_table_reproduces_the_distribution() {
        let counts = [81u64, 16, 0, 1, 256];
        let (prob, alias) = alias_table(&counts, 0.75).unwrap();
        let weights: Vec<f64> = counts.iter().map(|&c| (c as f64).powf(0.75)).collect();
        let total: f64 = weights.iter().sum();
        // Bucket b (chosen with 1/V) gives b with prob[b] and alias[b] with 1 - prob[b].
        let v = counts.len() as f64;
        for (t, &weight) in weights.iter().enumerate() {
            let mut p = 0.0;
            for b in 0..counts.len() {
                if b == t {
                    p += prob[b] as f64;
                }
                if alias[b] as usize == t {
                    p += 1.0 - prob[b] as f64;
                }
            }
            let expected = weight / total;
            assert!((p / v - expected).abs() < 1e-6, "token {t}: {} vs {expected}", p / v);
        }
    }

    #[test]
    fn host_pair_count_matches_the_examples() {
        let seqs = vec![vec![1, 2, 3, 4, 5, 6], vec![7], vec![8, 9], vec![1, 2, 3]];
        let corpus = SgnsCorpus::from_sequences(&seqs);
        for window in [1, 2, 4] {
            for drop_ends in [false, true] {
                let ex = Examples::build(&seqs, window, drop_ends);
                assert_eq!(corpus.pair_count(window, drop_ends), ex.pairs_in(0..ex.len()) as u64);
            }
        }
    }
}
