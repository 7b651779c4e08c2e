//! `bpr` on a CUDA device: the twin of [`Bpr::fit`](super::Bpr::fit) (same parameters, same
//! initial tables, the same samples; kernel in `bpr.cu`, beside `bpr.rs`).
//!
//! A fit uploads the interactions once (the `(user, movie)` pairs the samples are drawn from,
//! the users' CSR rows for the negative check, the popularity cdf) and the initial tables (drawn
//! on the host by the CPU fit's own [`prepare`]). Each step of `batch_size` samples is one
//! `bpr_step` launch on the device's one stream: one warp per sample, drawn from the same
//! SplitMix64 stream `(seed, epoch, t)` as on the CPU, its update added with atomics. After each
//! epoch the host reads one flag (a non-finite value is a divergence error naming the epoch);
//! at the end the tables come back into the CPU [`Bpr`] type, so scoring, checkpoints,
//! `similar` and exports work unchanged.
//!
//! **Versus the CPU.** The CPU splits a step into [`LANES`](super::bpr::LANES) sequential lanes
//! whose copies are merged in lane order; here every sample of a step runs concurrently against
//! the live tables (Hogwild with atomic adds, as implicit's GPU BPR, which writes without
//! atomics). So the two agree exactly in which samples they draw, and to f32 rounding (warp
//! reduction order) when a step holds one sample (`batch_size` 1: both are plain sequential
//! SGD; the parity test, `tests/gpu_ranking.rs`); with larger steps they are two valid SGD
//! orders of the same samples, compared by quality. Runs on the device are not bitwise
//! reproducible (the order of the atomic adds varies).
//!
//! **Limits.** At most 2^32 - 1 interactions and movies (`u32` indices); the device buffers are
//! checked against the device's free memory before anything is allocated.

use reelvec_engine::gpu::{Gpu, KernelSource, LaunchConfig, PushKernelArg};
use reelvec_engine::memory::{ensure_fits_in, f32_bytes};

use super::bpr::{join_items, prepare, split_items, units_of, NegativeSampler, Prepared};
use super::{Bpr, Interactions, RankerKind};
use crate::ModelError;

pub(crate) const BPR_CU: KernelSource =
    KernelSource { name: "bpr.cu", source: include_str!("bpr.cu"), functions: &["bpr_step"] };

/// Threads per block of `bpr_step` (one warp per sample, 8 samples at a time per block).
const THREADS: u32 = 256;
/// Most warps one launch starts (the kernel strides over the rest of the step).
const MAX_WARPS: usize = 1 << 16;

/// Device bytes of a fit: both tables, the `(user, movie)` pairs, the CSR rows and the cdf.
pub fn bpr_gpu_bytes(n_users: usize, n_items: usize, nnz: usize, k: usize) -> u128 {
    let (u, m, n, k) = (n_users as u128, n_items as u128, nnz as u128, k as u128);
    f32_bytes(u * k + m * (k + 1), 1) + 4 * (u + 1) + 12 * n + 8 * m + 4
}

/// Fits [`Bpr`] on `gpu` (see the module doc): the same parameters (`params`, JSON overrides)
/// and `seed` as [`Bpr::fit`], the tables downloaded into the CPU type.
pub fn fit_bpr_gpu(
    gpu: &Gpu,
    train: Interactions<'_>,
    params: &serde_json::Value,
    seed: u64,
) -> Result<Bpr, ModelError> {
    let Prepared { params, mut store, tables, sampler } = prepare(RankerKind::Bpr, train, params, seed)?;
    let (n_users, n_items, k, nnz) = (train.n_users(), train.n_items, params.factors, train.nnz());
    let too_many = |what: &str| {
        ModelError::InvalidData(format!("bpr on the GPU: more than 2^32 - 1 {what} (u32 indices)"))
    };
    let n_items32 = u32::try_from(n_items).map_err(|_| too_many("movies"))?;
    let row_ptr = train
        .by_user
        .indptr()
        .iter()
        .map(|&p| u32::try_from(p))
        .collect::<Result<Vec<u32>, _>>()
        .map_err(|_| too_many("interactions"))?;
    let (free, _) = gpu.memory_info()?;
    ensure_fits_in(
        &format!("bpr on {} ({n_users} users, {n_items} movies, {nnz} interactions, k = {k})", gpu.name()),
        bpr_gpu_bytes(n_users, n_items, nnz, k),
        Some(free as u64),
    )?;
    let units: Vec<u32> = units_of(train.by_user).into_iter().flatten().collect();
    let (popularity, cdf) = match &sampler {
        NegativeSampler::Popularity(p) => (1u32, p.cdf().to_vec()),
        NegativeSampler::Uniform(_) => (0u32, vec![0.0f64]),
    };
    let mut users = gpu.upload(&store.get(tables.user_factors).data, "bpr user factors")?;
    let mut items = gpu.upload(&join_items(&store, tables), "bpr movie factors and biases")?;
    let units = gpu.upload(&units, "bpr interactions")?;
    let row_ptr = gpu.upload(&row_ptr, "bpr row offsets")?;
    let cols = gpu.upload(train.by_user.indices(), "bpr rows")?;
    let cdf = gpu.upload(&cdf, "bpr popularity cdf")?;
    let mut bad = gpu.zeros::<u32>(1, "bpr divergence flag")?;
    let function = gpu.function(&BPR_CU, "bpr_step")?;
    let (k32, lr, reg) = (k as u32, params.lr as f32, params.regularization as f32);
    let nnz64 = nnz as u64;
    for epoch in 0..params.epochs {
        let epoch64 = epoch as u64;
        for start in (0..nnz).step_by(params.batch_size) {
            let end = (start + params.batch_size).min(nnz);
            let warps = (end - start).min(MAX_WARPS);
            let per_block = (THREADS / 32) as usize;
            let cfg = LaunchConfig {
                grid_dim: (warps.div_ceil(per_block) as u32, 1, 1),
                block_dim: (THREADS, 1, 1),
                shared_mem_bytes: 0,
            };
            let (start64, end64) = (start as u64, end as u64);
            let mut launch = gpu.stream().launch_builder(&function);
            launch
                .arg(&mut users)
                .arg(&mut items)
                .arg(&units)
                .arg(&row_ptr)
                .arg(&cols)
                .arg(&cdf)
                .arg(&popularity)
                .arg(&n_items32)
                .arg(&nnz64)
                .arg(&k32)
                .arg(&lr)
                .arg(&reg)
                .arg(&seed)
                .arg(&epoch64)
                .arg(&start64)
                .arg(&end64)
                .arg(&mut bad);
            // SAFETY: `users` holds n_users x k floats and `items` n_items x (k + 1); `units`
            // holds 2 nnz indices whose users are < n_users (the CSR's rows) and movies
            // < n_items (checked by `Interactions::new`); `row_ptr` n_users + 1 offsets into
            // `cols` (nnz movies); `cdf` n_items entries when `popularity` is 1 (one unused
            // entry otherwise); every draw indexes `units` below nnz and the movies below
            // n_items; `bad` one u32.
            unsafe { launch.launch(cfg) }.map_err(|e| gpu.launch_error("bpr_step", e))?;
        }
        if gpu.download(&bad, 1, "bpr divergence flag")?[0] != 0 {
            return Err(reelvec_engine::EngineError::Diverged {
                epoch,
                step: nnz.div_ceil(params.batch_size) - 1,
                what: format!(
                    "a bpr factor after an SGD step on the GPU (lr {}) is not finite (checked per epoch)",
                    params.lr
                ),
            }
            .into());
        }
    }
    let user_data = gpu.download(&users, n_users * k, "bpr user factors")?;
    let item_data = gpu.download(&items, n_items * (k + 1), "bpr movie factors")?;
    split_items(&mut store, tables, &user_data, &item_data);
    Ok(Bpr { params, store, tables })
}
