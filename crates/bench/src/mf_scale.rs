//! The MF scale benchmark: epochs of biased MF over the ml-25m-shaped ratings timed on the GPU
//! ([`bench_scale_epoch`]) against the bytes an epoch must move (its byte model), driving
//! reelvec-models' plain `MfGpuObjective` step and the engine's optimizer.

use std::time::Instant;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use reelvec_engine::gpu::{CudaSlice, Gpu, GpuBatch, GpuGrads, GpuObjective, GpuOptimizer, GpuParams};
use reelvec_engine::{Init, OptimizerConfig};
use reelvec_models::mf::{Link, MfSpec, RatingColumns};
use reelvec_models::mf_gpu::MfGpuObjective;
use reelvec_models::ModelError;
use serde::{Deserialize, Serialize};

use crate::error::Result;

/// The H100 SXM's HBM3 bandwidth, bytes per second (the bound the scale benchmark is set
/// against).
pub const H100_SXM_BYTES_PER_SECOND: f64 = 3.35e12;

/// What [`bench_scale_epoch`] measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScaleReport {
    /// Device name.
    pub device: String,
    /// Rating rows per epoch.
    pub ratings: usize,
    /// Factors.
    pub k: usize,
    /// Rows per step.
    pub batch_size: usize,
    /// Steps per epoch.
    pub steps_per_epoch: usize,
    /// Timed epochs (after one untimed warm-up epoch).
    pub epochs_timed: usize,
    /// Mean seconds per timed epoch (device work, sync to sync).
    pub epoch_seconds: f64,
    /// Fastest timed epoch.
    pub best_epoch_seconds: f64,
    /// Seconds of one epoch of the fused forward/backward launches alone (no optimizer).
    pub forward_backward_seconds: f64,
    /// `ratings / epoch_seconds`.
    pub ratings_per_second: f64,
    /// Bytes an epoch must move (see [`bench_scale_epoch`]).
    pub bytes_moved: u64,
    /// `bytes_moved / epoch_seconds`, in GB/s (1e9).
    pub achieved_gb_s: f64,
    /// Mean distinct (user + movie) rows touched per step.
    pub touched_rows_per_step: f64,
    /// Mean training loss of the last timed epoch (a sanity figure: it must fall).
    pub last_epoch_loss: f64,
    /// Mean training loss of the warm-up epoch.
    pub first_epoch_loss: f64,
    /// Whether the float4 gradient atomics were in use.
    pub vector_atomics: bool,
    /// Launches per step (objective + optimizer).
    pub launches_per_step: usize,
}

impl ScaleReport {
    /// `epoch_seconds` divided by the time the bytes take at `bytes_per_second` (1 = at the
    /// bound; the target is <= 2.5 on the H100).
    pub fn ratio_to_bound(&self, bytes_per_second: f64) -> f64 {
        self.epoch_seconds / (self.bytes_moved as f64 / bytes_per_second)
    }
}

/// The scale case over every rating row of `ds`: the columns (target = stars) and the
/// spec of biased MF with `sigmoid_range(x, 0, 5.5)` and `k` factors (the benchmark uses 64).
pub fn scale_case(ds: &reelvec_data::Dataset, k: usize) -> (RatingColumns, MfSpec) {
    let rows: Vec<u32> = (0..ds.ratings.len() as u32).collect();
    let cols = RatingColumns::gather(&ds.ratings, &rows, |r| ds.ratings.rating[r]);
    let spec = MfSpec {
        n_users: ds.users.len(),
        n_movies: ds.movies.len(),
        k,
        biases: true,
        link: Link::SigmoidRange { lo: 0.0, hi: 5.5 },
    };
    (cols, spec)
}

/// Times epochs of MF training over `ratings` on `gpu` — the scale case is biased MF
/// (`spec.biases`, sigmoid range), k = 64, batch 65,536, lazy Adam, over the ~25M synthetic
/// ml-25m ratings. One warm-up epoch, then `epochs` timed epochs (device work between two
/// syncs; the unit order is one seeded permutation uploaded once, so no host shuffle or copy is
/// timed), then one epoch of the forward/backward launches alone.
///
/// **Bytes an epoch must move** (`bytes_moved`; f32 = 4 B, `k` factors, `b` = 1 with biases):
/// - per rating, forward: its unit index, user, movie and target (16 B), the two factor rows
///   (2 · 4k B) and the two biases (2 · 4b B);
/// - per rating, backward: one write of each gradient element it adds to (2 · 4k + 2 · 4b B;
///   the atomics resolve in L2, repeats of a row within a batch are counted again);
/// - per step, lazy Adam over the touched rows: p, g, m, v read and p, g (zeroed), m, v
///   written, 8 · 4 · cols B per touched row of every table, plus one read of every row's
///   touched flag (4 B per row of every table).
///
/// The touched rows are counted exactly from the permutation. Dense Adam (every element, every
/// step) is counted the same way with every row touched. At k = 64 the Adam pass dominates:
/// a batch of 65,536 ratings touches ~66k rows, i.e. ~140 MB against ~70 MB of forward and
/// backward traffic.
///
/// Measured (NVIDIA H100 80GB HBM3, 2026-11-23, synthetic ml-25m: 25,059,346 ratings, k = 64,
/// batch 65,536, lazy Adam, 383 steps, 2 launches per step, float4 atomics): 80.0 GB per epoch,
/// 52.3 ms per epoch (forward/backward alone 17.3 ms), 4.8e8 ratings/s, 1530 GB/s, i.e. 2.19x
/// the 23.9 ms that 80.0 GB take at 3.35 TB/s.
pub fn bench_scale_epoch(
    gpu: &Gpu,
    ratings: &RatingColumns,
    spec: MfSpec,
    batch_size: usize,
    optimizer: &OptimizerConfig,
    lr: f32,
    epochs: usize,
) -> Result<ScaleReport> {
    if batch_size == 0 || ratings.is_empty() || epochs == 0 {
        return Err(
            ModelError::InvalidConfig("the scale benchmark needs rows, a batch and an epoch".into()).into()
        );
    }
    let mut rng = ChaCha8Rng::seed_from_u64(42);
    let init = Init::Normal { mean: 0.0, std: 0.1 };
    let host_params = spec.init_params(init, init, &mut rng)?;
    let mut objective = MfGpuObjective::new(gpu, spec, &host_params, ratings, None)?;
    let mut params = GpuParams::upload(gpu, &host_params)?;
    let mut grads = GpuGrads::zeros_like(gpu, &params)?;
    let mut opt = GpuOptimizer::new(gpu, optimizer, &params, &grads)?;

    let n = ratings.len();
    let mut order: Vec<u32> = (0..n as u32).collect();
    order.shuffle(&mut rng);
    let dev_order = gpu.upload(&order, "the benchmark's unit order")?;
    let steps = n.div_ceil(batch_size);
    let mut batch_losses: CudaSlice<f64> = gpu.zeros(steps, "per-batch losses")?;

    // Bytes: count distinct touched rows per batch from the permutation.
    let lazy = matches!(optimizer, OptimizerConfig::LazyAdam(_));
    let (mut user_stamp, mut movie_stamp) = (vec![0u32; spec.n_users], vec![0u32; spec.n_movies]);
    let mut touched_users = 0u64;
    let mut touched_movies = 0u64;
    for (step, chunk) in order.chunks(batch_size).enumerate() {
        let stamp = step as u32 + 1;
        for &r in chunk {
            let (u, m) = (ratings.user[r as usize] as usize, ratings.movie[r as usize] as usize);
            if user_stamp[u] != stamp {
                user_stamp[u] = stamp;
                touched_users += 1;
            }
            if movie_stamp[m] != stamp {
                movie_stamp[m] = stamp;
                touched_movies += 1;
            }
        }
    }
    if !lazy {
        touched_users = (spec.n_users * steps) as u64;
        touched_movies = (spec.n_movies * steps) as u64;
    }
    let (k, b) = (spec.k as u64, u64::from(spec.biases));
    let per_rating = 16 + 2 * 4 * k + 2 * 4 * b + 2 * 4 * k + 2 * 4 * b;
    let adam = (touched_users + touched_movies) * 8 * 4 * (k + b);
    let flags = steps as u64 * 4 * (1 + b) * (spec.n_users + spec.n_movies) as u64;
    let bytes_moved = n as u64 * per_rating + adam + flags;

    let mut run_epoch = |epoch: usize, with_optimizer: bool| -> Result<f64> {
        gpu.stream()
            .memset_zeros(&mut batch_losses)
            .map_err(|e| reelvec_engine::gpu::driver_error("clearing per-batch losses", e))?;
        for (step, host_units) in order.chunks(batch_size).enumerate() {
            let start = step * batch_size;
            let batch =
                GpuBatch { epoch, step, units: dev_order.slice(start..start + host_units.len()), host_units };
            let mut slot = batch_losses.slice_mut(step..step + 1);
            objective.enqueue_batch(gpu, &params, &mut grads, &batch, &mut slot)?;
            if with_optimizer {
                opt.step(gpu, &mut params, &mut grads, lr)?;
            }
        }
        let sums = gpu.download(&batch_losses, steps, "per-batch losses")?;
        Ok(sums.iter().sum::<f64>() / n as f64)
    };

    let first_epoch_loss = run_epoch(0, true)?;
    let mut times = Vec::with_capacity(epochs);
    let mut last_epoch_loss = first_epoch_loss;
    for epoch in 1..=epochs {
        gpu.sync("the benchmark warm-up")?;
        let started = Instant::now();
        last_epoch_loss = run_epoch(epoch, true)?;
        times.push(started.elapsed().as_secs_f64());
    }
    gpu.sync("the benchmark epochs")?;
    let started = Instant::now();
    run_epoch(epochs + 1, false)?;
    let forward_backward_seconds = started.elapsed().as_secs_f64();
    grads.clear(gpu)?;
    gpu.sync("the benchmark")?;

    let epoch_seconds = times.iter().sum::<f64>() / times.len() as f64;
    let best_epoch_seconds = times.iter().copied().fold(f64::INFINITY, f64::min);
    Ok(ScaleReport {
        device: gpu.name().to_string(),
        ratings: n,
        k: spec.k,
        batch_size,
        steps_per_epoch: steps,
        epochs_timed: epochs,
        epoch_seconds,
        best_epoch_seconds,
        forward_backward_seconds,
        ratings_per_second: n as f64 / epoch_seconds,
        bytes_moved,
        achieved_gb_s: bytes_moved as f64 / epoch_seconds / 1e9,
        touched_rows_per_step: (touched_users + touched_movies) as f64 / steps as f64,
        last_epoch_loss,
        first_epoch_loss,
        vector_atomics: objective.vector_atomics(),
        launches_per_step: objective.launches_per_batch() + 1,
    })
}
