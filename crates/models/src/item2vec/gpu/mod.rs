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
//!
//! Files: this module wires the objective ([`GpuItem2VecObjective`]: kernel sources, the
//! trainer's `GpuObjective`); `features.rs` its twin with item side features
//! ([`GpuFeatureObjective`]); `softmax.rs` the full-softmax launches; `negative.rs` `ns_step`
//! and Hogwild SGNS; `upload.rs` the device example tables.

use std::time::Instant;

use rand::{Rng, SeedableRng};
use reelvec_engine::gpu::cudarc::cublas::sys::cublasOperation_t;
use reelvec_engine::gpu::{
    grid_for, CudaFunction, CudaSlice, CudaView, CudaViewMut, DevicePtr, DevicePtrMut, Gemm, GemmConfig, Gpu,
    GpuBatch, GpuGradTable, GpuGrads, GpuObjective, GpuParams, KernelSource, LaunchConfig, PushKernelArg,
};
use reelvec_engine::{BatchLoss, EngineError, ParamStore};

use super::{
    Architecture, ContextReduce, ContextSide, Examples, Item2Vec, Item2VecConfig, Item2VecTables, OutputLoss,
    RankMetrics,
};
use crate::ModelError;

mod features;
mod negative;
mod softmax;
mod upload;

pub use features::GpuFeatureObjective;

pub use negative::{alias_table, sgns_params, train_sgns, GpuSgns, SgnsConfig, SgnsCorpus, SgnsEpoch};
use negative::{DeviceNegatives, NegativeLaunch};
pub(crate) use softmax::sgemm;
use softmax::{softmax_pass, Scratch, SoftmaxKernels};
pub use softmax::{SMALL_VOCAB_MAX_K, SMALL_VOCAB_MAX_V};
use upload::DeviceExamples;

pub(crate) const SOFTMAX_CU: KernelSource = KernelSource {
    name: "item2vec_softmax.cu",
    source: include_str!("../softmax.cu"),
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
    source: include_str!("../negative.cu"),
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
            for side in [ContextSide::Both, ContextSide::Previous] {
                for drop_ends in [false, true] {
                    let ex = Examples::build_sided(&seqs, window, side, drop_ends);
                    assert_eq!(corpus.pair_count(window, side, drop_ends), ex.pairs_in(0..ex.len()) as u64);
                }
            }
        }
    }
}
