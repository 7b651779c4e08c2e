//! The `scale` suite's cases on a CUDA device (`reelvec bench --suite scale --device cuda`),
//! beside their CPU versions in [`super::scale`]:
//!
//! - MF: the model is trained end to end by `p2_mf::run_on` (its epoch time includes the host
//!   shuffle and the per-epoch order upload), then `mf_scale::bench_scale_epoch` times device
//!   epochs alone and counts the bytes they must move; the bound is those bytes over the
//!   device's measured copy bandwidth (and over the H100's 3.35 TB/s datasheet figure);
//! - P1: `cooc_bench::bench_step`, seconds per full-batch step from `L`;
//! - skip-gram: `sgns_bench::bench_sgns_epoch` (Hogwild kernel, 5 negatives): pairs/s;
//! - top-N: `reelvec_metrics::topn_gpu::top_n` with rated movies excluded, then the
//!   beyond-accuracy figures on the host.

use std::time::Instant;

use crate::error::Result;
use crate::mf_scale::{self, H100_SXM_BYTES_PER_SECOND};
use reelvec_data::transforms::MovieStats;
use reelvec_data::Dataset;
use reelvec_engine::gpu::{CudaSlice, Gpu};
use reelvec_engine::Device;
use reelvec_metrics::{BeyondAccuracy, RatedItems, ScoreLink, TopNConfig};
use reelvec_models::cooc::CoocProblem;
use reelvec_models::mf::MfModel;
use reelvec_models::pipelines::p2_mf;
use reelvec_models::ItemEmbeddings;

use super::report::{Case, Figure, Timing};

/// Device-to-device copy bandwidth (read + write bytes), the best of a few 1 GiB copies.
pub fn device_copy_bandwidth(gpu: &Gpu) -> Result<f64> {
    let n = 256 << 20; // f32s: 1 GiB per buffer
    let src: CudaSlice<f32> = gpu.zeros(n, "bandwidth probe source")?;
    let mut dst: CudaSlice<f32> = gpu.zeros(n, "bandwidth probe destination")?;
    let mut best = f64::INFINITY;
    for _ in 0..5 {
        gpu.sync("bandwidth probe")?;
        let started = Instant::now();
        gpu.stream()
            .memcpy_dtod(&src, &mut dst)
            .map_err(|e| reelvec_engine::gpu::driver_error("bandwidth probe copy", e))?;
        gpu.sync("bandwidth probe")?;
        best = best.min(started.elapsed().as_secs_f64());
    }
    Ok((2 * n * 4) as f64 / best)
}

/// The MF case's device figures (`cfg`: k, batch, optimizer, lr), appended to the end-to-end
/// case built from `run_on`.
pub fn mf_device_figures(
    gpu: &Gpu,
    ds: &Dataset,
    cfg: &p2_mf::Config,
    epochs: usize,
    bandwidth: f64,
) -> Result<Vec<Figure>> {
    let (columns, spec) = mf_scale::scale_case(ds, cfg.k);
    let train = &cfg.train;
    let report = mf_scale::bench_scale_epoch(
        gpu,
        &columns,
        spec,
        train.batch_size,
        &train.optimizer,
        train.lr,
        epochs.max(1),
    )?;
    let bound = report.bytes_moved as f64 / bandwidth;
    let datasheet = report.bytes_moved as f64 / H100_SXM_BYTES_PER_SECOND;
    Ok(vec![
        Figure::new("device epoch (kernels only, sync to sync)", report.epoch_seconds, "s"),
        Figure::new("device epoch, fastest", report.best_epoch_seconds, "s"),
        Figure::new("forward/backward launches alone", report.forward_backward_seconds, "s"),
        Figure::new("bytes a device epoch moves", report.bytes_moved as f64 / 1e9, "GB"),
        Figure::new("achieved (device epoch)", report.achieved_gb_s, "GB/s"),
        Figure::new("device copy bandwidth (measured)", bandwidth / 1e9, "GB/s"),
        Figure::new("bandwidth bound at the measured copy rate", bound, "s"),
        Figure::new("device epoch / bound (target <= 2.5)", report.epoch_seconds / bound, "x"),
        Figure::new(
            "device epoch / bound at 3.35 TB/s (H100 SXM datasheet)",
            report.epoch_seconds / datasheet,
            "x",
        ),
        Figure::new("ratings per second (device epoch)", report.ratings_per_second, "1/s"),
        Figure::new("launches per step", report.launches_per_step as f64, ""),
        Figure::new(
            "loss, warm-up epoch -> last timed epoch",
            report.last_epoch_loss - report.first_epoch_loss,
            "delta",
        ),
    ])
}

/// P1: seconds per full-batch step on the device.
pub fn cooc_step_seconds(gpu: &Gpu, problem: &CoocProblem, k: usize, steps: usize) -> Result<f64> {
    crate::cooc_bench::bench_step(gpu, problem, k, steps.max(1))
}

/// Skip-gram with negative sampling on the device: (pairs, seconds, pairs/s, loss).
pub fn sgns_epoch(
    gpu: &Gpu,
    sequences: &[Vec<u32>],
    vocab: usize,
    dim: usize,
    negatives: usize,
    window: usize,
) -> Result<crate::sgns_bench::SgnsBench> {
    crate::sgns_bench::bench_sgns_epoch(gpu, sequences, vocab, dim, negatives, window)
}

/// Top-10 for every user on the device, then the beyond-accuracy figures on the host.
pub fn top_n_case(ds: &Dataset, model: &MfModel, device: Device) -> Result<Case> {
    let gpu = Gpu::for_device(device)?;
    let rated = RatedItems::from_pairs(ds.users.len(), &ds.ratings.user, &ds.ratings.movie)?;
    let stats = MovieStats::compute(&ds.ratings, None, ds.movies.len());
    let (means, counts) = (&stats.mean, stats.counts_u64());
    let (users, items) = (model.user_embeddings(), model.item_embeddings());
    let scores = model.factor_scores()?.with_link(ScoreLink::SigmoidRange { lo: 0.0, hi: 5.5 });
    let config = TopNConfig::with_k(10);
    // Warm-up (kernel compile or cache load, cuBLAS start), then the timed call.
    reelvec_metrics::topn_gpu::top_n_for_users(&gpu, &scores, &[0], &config, Some(&rated))?;
    let started = Instant::now();
    let lists = reelvec_metrics::topn_gpu::top_n(&gpu, &scores, &config, Some(&rated))?;
    let listed = started.elapsed().as_secs_f64();
    let beyond = BeyondAccuracy::compute(lists.indices.view(), items, means, &counts)?;
    let total = started.elapsed().as_secs_f64();
    let (n_users, n_movies, k) = (scores.n_users(), scores.n_items(), users.ncols());
    let flops = 2.0 * n_users as f64 * n_movies as f64 * (k + 1) as f64;
    let figures = vec![
        Figure::new("top-N lists (GEMM + selection on the device, lists copied back)", listed, "s"),
        Figure::new("beyond-accuracy figures (host)", total - listed, "s"),
        Figure::new("GEMM rate (lists only)", flops / listed / 1e9, "GFLOP/s"),
        Figure::new("intra-list diversity", beyond.diversity, ""),
        Figure::new("novelty (mean rating of listed movies)", beyond.mean_rating_novelty, "stars"),
        Figure::new("novelty (self-information)", beyond.self_information_novelty, "bits"),
        Figure::new("catalogue coverage", beyond.catalogue_coverage, ""),
        Figure::new("Gini index of recommendation counts", beyond.gini, ""),
        Figure::new(
            "device score block (bounded; the full U x M matrix would take)",
            n_users as f64 * n_movies as f64 * 4.0 / 1e9,
            "GB",
        ),
    ];
    Ok(Case {
        id: "scale top-N".into(),
        name: format!(
            "top-10 of {n_users} users over {n_movies} movies, k = {k}, rated movies excluded, on {}, \
             + diversity, novelty, coverage",
            device.describe()
        ),
        unit: "call".into(),
        load_refused: None,
        ours: Timing {
            units: 1,
            wall_per_unit: total,
            cpu_per_unit: None,
            examples_per_unit: Some(n_users as f64),
            load_average_1min: [None, None],
        },
        peer: None,
        same_rows: None,
        target_speedup: None,
        quality: vec![],
        figures,
        note: None,
    })
}
