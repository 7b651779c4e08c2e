//! The skip-gram (SGNS) throughput benchmark: one warm-up epoch, then one timed epoch of
//! reelvec-models' Hogwild kernel ([`GpuSgns::epoch`], which reports its kernel time) over a
//! corpus: [`bench_sgns_epoch`], [`bench_sgns_corpus`], [`bench_sgns_with`].

use reelvec_engine::gpu::{Gpu, GpuParams};
use reelvec_models::item2vec::gpu::{sgns_params, GpuSgns, SgnsConfig, SgnsCorpus};

use crate::error::Result;

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
) -> Result<SgnsBench> {
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
) -> Result<SgnsBench> {
    let cfg = SgnsConfig { dim, negatives, window, epochs: 2, ..SgnsConfig::default() };
    bench_sgns_with(gpu, corpus, vocab, &cfg)
}

/// Times the second epoch of `cfg` (at least 2 epochs are assumed for the lr schedule) over
/// `corpus`.
pub fn bench_sgns_with(gpu: &Gpu, corpus: &SgnsCorpus, vocab: usize, cfg: &SgnsConfig) -> Result<SgnsBench> {
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
