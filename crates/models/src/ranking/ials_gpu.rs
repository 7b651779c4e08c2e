//! `ials` on a CUDA device: the twin of [`Ials::fit`](super::Ials::fit) (same model, same
//! initialisation, same warm-started CG steps per row; kernel in `ials.cu`, beside `ials.rs`).
//!
//! A fit uploads the interactions once, both ways (CSR by user and by movie, `u32` offsets and
//! indices), and the initial factors (drawn on the host by the CPU fit's own
//! `initial_factors`). Each half-iteration then enqueues two calls on the device's one stream:
//!
//! ```text
//! G = Y^T Y                          cuBLAS sgemm (k x k; lambda is added inside the kernel)
//! ials_cg_rows                       one warp per row: cg_steps CG steps of
//!                                    (G + lambda I + (c - 1) sum_i y_i y_i^T) x = c sum_i y_i
//! ```
//!
//! and the host waits only when the factors are downloaded at the end, into the CPU [`Ials`]
//! type, so scoring, checkpoints, `similar` and fold-in work unchanged.
//!
//! **Limits.** `factors` at most [`MAX_GPU_FACTORS`] (256: a lane holds 8 elements of each CG
//! vector in registers); at most 2^32 - 1 interactions (`u32` offsets). The device buffers are
//! checked against the device's free memory before anything is allocated.
//!
//! **Versus the CPU.** The CPU sums `G` in f64 and each dot product in element order on one
//! thread; here `G` is an f32 GEMM and dot products are warp reductions, so factors agree to f32
//! rounding (the parity test, `tests/gpu_ranking.rs`, states the tolerance), not bit for bit.
//! Runs on the device are deterministic (no atomics; cuBLAS sgemm's default algorithms are
//! deterministic on one stream).

use reelvec_engine::gpu::{CudaSlice, Gpu, KernelSource, LaunchConfig, PushKernelArg};
use reelvec_engine::memory::{ensure_fits, ensure_fits_in, f32_bytes};
use reelvec_metrics::RatedItems;

use super::ials::initial_factors;
use super::{Ials, IalsParams, Interactions};
use crate::ModelError;

pub(crate) const IALS_CU: KernelSource =
    KernelSource { name: "ials.cu", source: include_str!("ials.cu"), functions: &["ials_cg_rows"] };

/// Largest `factors` the CUDA twin takes (`32 * IALS_PER_LANE` in `ials.cu`).
pub const MAX_GPU_FACTORS: usize = 256;
/// Threads per block of `ials_cg_rows` (one warp per row, 8 rows per block).
const THREADS: u32 = 256;

/// One side's interactions on the device as CSR.
struct DeviceCsr {
    row_ptr: CudaSlice<u32>,
    cols: CudaSlice<u32>,
    rows: usize,
}

impl DeviceCsr {
    fn upload(gpu: &Gpu, rows: &RatedItems, what: &str) -> Result<Self, ModelError> {
        let ptr = rows.indptr().iter().map(|&p| u32::try_from(p)).collect::<Result<Vec<u32>, _>>().map_err(
            |_| {
                ModelError::InvalidData(format!(
                    "ials on the GPU: {what} has more than 2^32 - 1 interactions (u32 offsets)"
                ))
            },
        )?;
        Ok(DeviceCsr {
            row_ptr: gpu.upload(&ptr, &format!("{what} row offsets"))?,
            cols: gpu.upload(rows.indices(), &format!("{what} indices"))?,
            rows: rows.n_users(),
        })
    }
}

/// Device bytes of a fit: both factor tables, `G`, and the CSR both ways.
pub fn ials_gpu_bytes(n_users: usize, n_items: usize, nnz: usize, k: usize) -> u128 {
    let (u, m, n, k) = (n_users as u128, n_items as u128, nnz as u128, k as u128);
    f32_bytes((u + m) * k + k * k, 1) + 4 * (u + m + 2) + 8 * n
}

/// Fits [`Ials`] on `gpu` (see the module doc): the same parameters (`params`, JSON overrides)
/// and `seed` as [`Ials::fit`], the factors downloaded into the CPU type.
pub fn fit_ials_gpu(
    gpu: &Gpu,
    train: Interactions<'_>,
    params: &serde_json::Value,
    seed: u64,
) -> Result<Ials, ModelError> {
    let params = IalsParams::from_json(params)?;
    let (n_users, n_items, k) = (train.n_users(), train.n_items, params.factors);
    if k > MAX_GPU_FACTORS {
        return Err(ModelError::InvalidConfig(format!(
            "ials on the GPU takes at most {MAX_GPU_FACTORS} factors (got {k}); use --device cpu"
        )));
    }
    ensure_fits(
        &format!("ials factors [{n_users} + {n_items}, {k}] (host copies)"),
        f32_bytes(((n_users + n_items) * k) as u128, 1),
    )?;
    let (free, _) = gpu.memory_info()?;
    ensure_fits_in(
        &format!(
            "ials on {} ({n_users} users, {n_items} movies, {} interactions, k = {k})",
            gpu.name(),
            train.nnz()
        ),
        ials_gpu_bytes(n_users, n_items, train.nnz(), k),
        Some(free as u64),
    )?;
    let by_item = train.by_item()?;
    let (user_init, item_init) = initial_factors(n_users, n_items, k, seed);
    let users = DeviceCsr::upload(gpu, train.by_user, "ials interactions by user")?;
    let items = DeviceCsr::upload(gpu, &by_item, "ials interactions by movie")?;
    let host =
        |a: &ndarray::Array2<f32>| a.as_slice().unwrap_or_else(|| unreachable!("standard layout")).to_vec();
    let mut x = gpu.upload(&host(&user_init), "ials user factors")?;
    let mut y = gpu.upload(&host(&item_init), "ials movie factors")?;
    let mut g: CudaSlice<f32> = gpu.zeros(k * k, "ials Gram matrix")?;
    let c = 1.0 + params.alpha;
    let function = gpu.function(&IALS_CU, "ials_cg_rows")?;
    let half = |gram: &mut CudaSlice<f32>,
                other: &CudaSlice<f32>,
                other_rows: usize,
                csr: &DeviceCsr,
                out: &mut CudaSlice<f32>|
     -> Result<(), ModelError> {
        gram_into(gpu, other, other_rows, k, gram)?;
        if csr.rows == 0 {
            return Ok(());
        }
        let warps = (THREADS / 32) as usize;
        let cfg = LaunchConfig {
            grid_dim: (u32::try_from(csr.rows.div_ceil(warps)).unwrap_or(u32::MAX), 1, 1),
            block_dim: (THREADS, 1, 1),
            shared_mem_bytes: (warps * k * 4) as u32,
        };
        let (n_rows, k32, steps) = (csr.rows as u32, k as u32, params.cg_steps as u32);
        let mut launch = gpu.stream().launch_builder(&function);
        launch
            .arg(&*gram)
            .arg(other)
            .arg(&csr.row_ptr)
            .arg(&csr.cols)
            .arg(&mut *out)
            .arg(&n_rows)
            .arg(&k32)
            .arg(&params.regularization)
            .arg(&c)
            .arg(&steps);
        // SAFETY: `gram` holds k x k floats, `other` other_rows x k, `out` csr.rows x k; the CSR
        // offsets index `cols` (nnz entries), whose values are rows of `other` (< other_rows,
        // checked by `Interactions::new` and `by_item`); k <= 256 = 32 * IALS_PER_LANE; the
        // dynamic shared memory is one k-float slice per warp of the block.
        unsafe { launch.launch(cfg) }.map_err(|e| gpu.launch_error("ials_cg_rows", e))?;
        Ok(())
    };
    for it in 0..params.iterations {
        half(&mut g, &y, n_items, &users, &mut x)?;
        half(&mut g, &x, n_users, &items, &mut y)?;
        reelvec_engine::step_hook::after_step(it as u64 + 1, params.iterations as u64)?;
    }
    let user_factors = gpu.download(&x, n_users * k, "ials user factors")?;
    let item_factors = gpu.download(&y, n_items * k, "ials movie factors")?;
    let table = |rows: usize, data: Vec<f32>| {
        ndarray::Array2::from_shape_vec((rows, k), data)
            .map_err(|e| ModelError::InvalidData(format!("ials factors from the GPU: {e}")))
    };
    Ok(Ials {
        params,
        user_factors: table(n_users, user_factors)?,
        item_factors: table(n_items, item_factors)?,
    })
}

/// `gram = F^T F` (k x k) for the row-major `rows x k` table `f`: one sgemm, `F` read as the
/// column-major `k x rows` matrix `F^T`, so `F^T (F^T)^T`. No rows: zero.
fn gram_into(
    gpu: &Gpu,
    f: &CudaSlice<f32>,
    rows: usize,
    k: usize,
    gram: &mut CudaSlice<f32>,
) -> Result<(), ModelError> {
    if rows == 0 {
        gpu.stream()
            .memset_zeros(gram)
            .map_err(|e| reelvec_engine::gpu::driver_error("clearing the ials Gram matrix", e))?;
        return Ok(());
    }
    crate::item2vec::gpu::sgemm(
        gpu,
        (false, true),
        (k, k, rows),
        f,
        k,
        f,
        k,
        0.0,
        gram,
        k,
        "ials Gram F^T F",
    )?;
    Ok(())
}
