//! P1 on the GPU: the cost, its gradient and full-batch Adam on `V` with every step on the device
//! (kernels in `cost.cu`, beside the CPU twin `cost.rs`).
//!
//! [`GpuCooc`] uploads `L` once, as CSR (movies per user) and as its transpose (users per movie),
//! each cut into segments of at most [`SEGMENT_LEN`] likes so that a movie liked by 80,000 users
//! is summed by many warps, and keeps the step's buffers. One evaluation enqueues (no host sync):
//!
//! ```text
//! A = L V                       segmented SpMM, users x k (rows of one segment: bitwise the CPU's)
//! X0 V = L^T A - D V            segmented SpMM over the transpose, movies x k
//! G = V^T V, tr(V^T X0 V), sum_i |v_i|^4     f64 block partials, summed in block order
//! c = ||G||_F^2 - 2 tr + ||X0||_F^2 (- sum_i |v_i|^4 when masked)     written on the device
//! grad = 4 (V G - X0 V) - 4 |v_i|^2 v_i                               (f32, the CPU's order)
//! ```
//!
//! The k x k products run as small custom kernels rather than cuBLAS: the Gram matrix is reduced
//! in f64 exactly like `cost.rs` (products of f32 values are exact in f64), which keeps the
//! cancellation in `||G||^2 - 2 tr + ||X0||^2` as accurate as the CPU's, and at k <= 64 these
//! kernels take microseconds beside the sparse products. Nothing uses atomics in a sum, so a run
//! is deterministic.
//!
//! [`fit_gpu`] follows [`super::fit`] step for step (same initialisation, Adam defaults and
//! learning-rate schedule, costs recorded before each step and after the last); the cost history
//! stays on the device and is read back every [`CHECK_EVERY`] steps, where a non-finite cost or
//! gradient stops the run with [`reelvec_engine::EngineError::Diverged`] naming the first bad step.
//!
//! Measured on an H100 (test `p1_step_time_at_ml25m_scale`, `REELVEC_GPU_BENCH=1`; 162,541
//! users x 59,047 movies, 12.5M skewed likes): one step (cost, gradient, Adam) 1.33 ms at k = 20,
//! 1.39 ms at k = 32, 1.78 ms at k = 64; the two sparse products take ~0.62 ms each (issue-bound:
//! one warp instruction stream per like, a third of the lanes idle at k = 20).

use std::time::Instant;

use reelvec_engine::gpu::{
    grid_for, CudaSlice, Gpu, GpuGrads, GpuOptimizer, GpuParams, KernelSource, LaunchConfig, PushKernelArg,
};
use reelvec_engine::{AdamConfig, EngineError, OptimizerConfig, ParamStore, Schedule};

use super::{init_factors, CoocConfig, CoocFit, CoocModel, CoocProblem, CostParts, LikeMatrix};
use crate::ModelError;

pub(crate) const COOC_CU: KernelSource = KernelSource {
    name: "cooc_cost.cu",
    source: include_str!("cost.cu"),
    functions: &[
        "cooc_spmm_segments",
        "cooc_spmm_fixup",
        "cooc_gram_partials",
        "cooc_reduce_gram",
        "cooc_reduce_cost",
        "cooc_grad",
    ],
};

/// Most likes one warp sums in the sparse products (longer rows are split, then fixed up).
pub const SEGMENT_LEN: usize = 512;
/// Steps between reads of the cost history (divergence checks and `on_step` calls).
pub const CHECK_EVERY: usize = 100;
/// Rows per block of the Gram kernel (`GRAM_ROWS` in cost.cu).
const GRAM_ROWS: usize = 256;
/// Rows staged in shared memory by the Gram kernel (`GRAM_TILE` in cost.cu).
const GRAM_TILE: usize = 32;
/// Threads per block of the warp-per-row kernels.
const THREADS: u32 = 256;
/// Largest k: the Gram kernel stages `GRAM_TILE x k` floats in 48 KiB of shared memory.
pub const MAX_DIM: usize = 384;

/// One CSR matrix on the device, its rows cut into segments.
#[derive(Debug)]
struct SegmentedCsr {
    row_ptr: CudaSlice<u32>,
    cols: CudaSlice<u32>,
    seg_row: CudaSlice<u32>,
    seg_begin: CudaSlice<u32>,
    seg_end: CudaSlice<u32>,
    seg_slot: CudaSlice<i32>,
    n_segs: usize,
    long_row: CudaSlice<u32>,
    first_slot: CudaSlice<u32>,
    n_slots: CudaSlice<u32>,
    n_long: usize,
    /// Partial rows this matrix needs (sum of the long rows' segments).
    partial_rows: usize,
}

impl SegmentedCsr {
    /// Rows `row(0..rows)` of a binary matrix, each listing its column indices.
    fn upload<'a>(
        gpu: &Gpu,
        rows: usize,
        row: impl Fn(usize) -> &'a [u32],
        segment_len: usize,
        what: &str,
    ) -> Result<Self, ModelError> {
        let mut row_ptr = Vec::with_capacity(rows + 1);
        let mut cols = Vec::new();
        row_ptr.push(0u32);
        let (mut seg_row, mut seg_begin, mut seg_end, mut seg_slot) = (vec![], vec![], vec![], vec![]);
        let (mut long_row, mut first_slot, mut n_slots) = (vec![], vec![], vec![]);
        let mut slots = 0usize;
        for r in 0..rows {
            let begin = cols.len();
            cols.extend_from_slice(row(r));
            let end = cols.len();
            let end32 = u32::try_from(end).map_err(|_| {
                ModelError::InvalidData(format!("{what}: more than 2^32 likes do not fit the GPU kernels"))
            })?;
            row_ptr.push(end32);
            let len = end - begin;
            if len <= segment_len {
                seg_row.push(r as u32);
                seg_begin.push(begin as u32);
                seg_end.push(end32);
                seg_slot.push(-1i32);
            } else {
                let parts = len.div_ceil(segment_len);
                long_row.push(r as u32);
                first_slot.push(slots as u32);
                n_slots.push(parts as u32);
                for p in 0..parts {
                    seg_row.push(r as u32);
                    seg_begin.push((begin + p * segment_len) as u32);
                    seg_end.push((begin + (p + 1) * segment_len).min(end) as u32);
                    seg_slot
                        .push(i32::try_from(slots).map_err(|_| {
                            ModelError::InvalidData(format!("{what}: too many row segments"))
                        })?);
                    slots += 1;
                }
            }
        }
        Ok(Self {
            row_ptr: gpu.upload(&row_ptr, &format!("{what} row offsets"))?,
            cols: gpu.upload(&cols, &format!("{what} column indices"))?,
            n_segs: seg_row.len(),
            seg_row: gpu.upload(&seg_row, &format!("{what} segment rows"))?,
            seg_begin: gpu.upload(&seg_begin, &format!("{what} segment starts"))?,
            seg_end: gpu.upload(&seg_end, &format!("{what} segment ends"))?,
            seg_slot: gpu.upload(&seg_slot, &format!("{what} segment slots"))?,
            n_long: long_row.len(),
            long_row: gpu.upload(&long_row, &format!("{what} long rows"))?,
            first_slot: gpu.upload(&first_slot, &format!("{what} long-row slots"))?,
            n_slots: gpu.upload(&n_slots, &format!("{what} long-row segment counts"))?,
            partial_rows: slots,
        })
    }

    /// Enqueues `out = S x` (rows x k), or `out = S x - D v` with `minus_diag`, where `D` is the
    /// row lengths.
    #[allow(clippy::too_many_arguments)]
    fn product(
        &self,
        gpu: &Gpu,
        x: &CudaSlice<f32>,
        v: &CudaSlice<f32>,
        k: usize,
        minus_diag: bool,
        out: &mut CudaSlice<f32>,
        partial: &mut CudaSlice<f32>,
    ) -> Result<(), ModelError> {
        let (k32, minus) = (k as u32, i32::from(minus_diag));
        let warps_per_block = (THREADS / 32) as usize;
        let f = gpu.function(&COOC_CU, "cooc_spmm_segments")?;
        let n_segs = self.n_segs as u32;
        let cfg = LaunchConfig {
            grid_dim: (self.n_segs.div_ceil(warps_per_block).max(1) as u32, 1, 1),
            block_dim: (THREADS, 1, 1),
            shared_mem_bytes: 0,
        };
        let mut l = gpu.stream().launch_builder(&f);
        l.arg(&self.seg_row)
            .arg(&self.seg_begin)
            .arg(&self.seg_end)
            .arg(&self.seg_slot)
            .arg(&self.cols)
            .arg(&self.row_ptr)
            .arg(x)
            .arg(v)
            .arg(&k32)
            .arg(&n_segs)
            .arg(&minus)
            .arg(&mut *out)
            .arg(&mut *partial);
        // SAFETY: the segment arrays index `cols` (< nnz) and rows (< self.rows); `x` holds
        // (max column + 1) x k values, `out` rows x k, `partial` partial_rows x k.
        unsafe { l.launch(cfg) }.map_err(|e| gpu.launch_error("cooc_spmm_segments", e))?;
        if self.n_long > 0 {
            let f = gpu.function(&COOC_CU, "cooc_spmm_fixup")?;
            let n_long = self.n_long as u32;
            let cfg = LaunchConfig {
                grid_dim: (self.n_long.div_ceil(warps_per_block) as u32, 1, 1),
                block_dim: (THREADS, 1, 1),
                shared_mem_bytes: 0,
            };
            let mut l = gpu.stream().launch_builder(&f);
            l.arg(&self.long_row)
                .arg(&self.first_slot)
                .arg(&self.n_slots)
                .arg(&self.row_ptr)
                .arg(v)
                .arg(&*partial)
                .arg(&k32)
                .arg(&n_long)
                .arg(&minus)
                .arg(out);
            // SAFETY: as above; slots index `partial`'s rows.
            unsafe { l.launch(cfg) }.map_err(|e| gpu.launch_error("cooc_spmm_fixup", e))?;
        }
        Ok(())
    }
}

/// A P1 problem resident on the GPU for rank `k`: `L` both ways and the buffers of one step.
#[derive(Debug)]
pub struct GpuCooc {
    k: usize,
    n_users: usize,
    n_movies: usize,
    x0_frobenius_sq: f64,
    users: SegmentedCsr,
    movies: SegmentedCsr,
    lv: CudaSlice<f32>,
    x0v: CudaSlice<f32>,
    partial: CudaSlice<f32>,
    gram_blocks: usize,
    partial_g: CudaSlice<f64>,
    partial_tr: CudaSlice<f64>,
    partial_q: CudaSlice<f64>,
    g64: CudaSlice<f64>,
    g32: CudaSlice<f32>,
    bad_step: CudaSlice<u32>,
}

impl GpuCooc {
    /// Uploads `problem`'s like matrix for rank `k` (segments of [`SEGMENT_LEN`] likes).
    pub fn new(gpu: &Gpu, problem: &CoocProblem, k: usize) -> Result<Self, ModelError> {
        Self::with_segment_len(gpu, problem, k, SEGMENT_LEN)
    }

    /// As [`GpuCooc::new`] with another segment length (tests use short ones so that the split
    /// rows and their fix-up are exercised on small matrices).
    pub fn with_segment_len(
        gpu: &Gpu,
        problem: &CoocProblem,
        k: usize,
        segment_len: usize,
    ) -> Result<Self, ModelError> {
        if k == 0 || k > MAX_DIM || segment_len == 0 {
            return Err(ModelError::InvalidConfig(format!(
                "cooc on the GPU needs 0 < dim <= {MAX_DIM} and a positive segment length (dim {k}, segment {segment_len})"
            )));
        }
        let likes: &LikeMatrix = problem.likes();
        let (n_users, n_movies) = (likes.n_users(), likes.n_movies());
        let users =
            SegmentedCsr::upload(gpu, n_users, |u| likes.user_likes(u), segment_len, "likes by user")?;
        let movies =
            SegmentedCsr::upload(gpu, n_movies, |i| likes.movie_likers(i), segment_len, "likes by movie")?;
        let gram_blocks = n_movies.div_ceil(GRAM_ROWS).max(1);
        let partial_rows = users.partial_rows.max(movies.partial_rows);
        // Compile now, so a timed first step is not the compiler's.
        gpu.function(&COOC_CU, "cooc_spmm_segments")?;
        Ok(Self {
            k,
            n_users,
            n_movies,
            x0_frobenius_sq: problem.x0_frobenius_sq(),
            lv: gpu.zeros(n_users * k, "P1 L V (users x k)")?,
            x0v: gpu.zeros(n_movies * k, "P1 X0 V (movies x k)")?,
            partial: gpu.zeros(partial_rows * k, "P1 partial sums of split rows")?,
            partial_g: gpu.zeros(gram_blocks * k * k, "P1 Gram partials")?,
            partial_tr: gpu.zeros(gram_blocks, "P1 trace partials")?,
            partial_q: gpu.zeros(gram_blocks, "P1 quartic partials")?,
            g64: gpu.zeros(k * k, "P1 Gram matrix (f64)")?,
            g32: gpu.zeros(k * k, "P1 Gram matrix (f32)")?,
            bad_step: gpu.upload(&[u32::MAX], "P1 non-finite gradient flag")?,
            gram_blocks,
            users,
            movies,
        })
    }

    /// Rank k.
    pub fn dim(&self) -> usize {
        self.k
    }

    /// Enqueues one evaluation at `v` (M x k on the device): the masked and unmasked costs into
    /// `costs[2 slot]` and `costs[2 slot + 1]`, and with `grad` the gradient of the masked
    /// (`mask_diagonal`) or unmasked cost, written (not added). A non-finite gradient records
    /// `step` in the flag read by [`GpuCooc::first_bad_step`]. Does not synchronise.
    #[allow(clippy::too_many_arguments)]
    pub fn enqueue(
        &mut self,
        gpu: &Gpu,
        v: &CudaSlice<f32>,
        mask_diagonal: bool,
        costs: &mut CudaSlice<f64>,
        slot: usize,
        grad: Option<&mut CudaSlice<f32>>,
        step: u32,
    ) -> Result<(), ModelError> {
        let (k, m) = (self.k, self.n_movies);
        if v.len() < m * k || costs.len() < 2 * (slot + 1) {
            return Err(ModelError::Engine(EngineError::ShapeMismatch {
                what: "P1 factors / cost slots on the GPU".to_string(),
                expected: m * k,
                actual: v.len(),
            }));
        }
        self.enqueue_user_product(gpu, v)?;
        self.enqueue_movie_product(gpu, v)?;
        let (k32, m32, blocks32, kk32) = (k as u32, m as u32, self.gram_blocks as u32, (k * k) as u32);

        let f = gpu.function(&COOC_CU, "cooc_gram_partials")?;
        let cfg = LaunchConfig {
            grid_dim: (blocks32, 1, 1),
            block_dim: (THREADS, 1, 1),
            shared_mem_bytes: (GRAM_TILE * k * 4) as u32,
        };
        let mut l = gpu.stream().launch_builder(&f);
        l.arg(v)
            .arg(&self.x0v)
            .arg(&m32)
            .arg(&k32)
            .arg(&mut self.partial_g)
            .arg(&mut self.partial_tr)
            .arg(&mut self.partial_q);
        // SAFETY: v and x0v hold M x k values; the partials gram_blocks (x k x k) values.
        unsafe { l.launch(cfg) }.map_err(|e| gpu.launch_error("cooc_gram_partials", e))?;

        let f = gpu.function(&COOC_CU, "cooc_reduce_gram")?;
        let mut l = gpu.stream().launch_builder(&f);
        l.arg(&self.partial_g).arg(&blocks32).arg(&kk32).arg(&mut self.g64).arg(&mut self.g32);
        // SAFETY: one thread per entry of the k x k buffers.
        unsafe { l.launch(grid_for(k * k)) }.map_err(|e| gpu.launch_error("cooc_reduce_gram", e))?;

        let f = gpu.function(&COOC_CU, "cooc_reduce_cost")?;
        let mut slot_view = costs.slice_mut(2 * slot..2 * slot + 2);
        let mut l = gpu.stream().launch_builder(&f);
        l.arg(&self.g64)
            .arg(&self.partial_tr)
            .arg(&self.partial_q)
            .arg(&blocks32)
            .arg(&kk32)
            .arg(&self.x0_frobenius_sq)
            .arg(&mut slot_view);
        let cfg = LaunchConfig { grid_dim: (1, 1, 1), block_dim: (THREADS, 1, 1), shared_mem_bytes: 0 };
        // SAFETY: one block; writes the two values of the slot.
        unsafe { l.launch(cfg) }.map_err(|e| gpu.launch_error("cooc_reduce_cost", e))?;

        if let Some(grad) = grad {
            if grad.len() < m * k {
                return Err(ModelError::Engine(EngineError::ShapeMismatch {
                    what: "P1 gradient on the GPU".to_string(),
                    expected: m * k,
                    actual: grad.len(),
                }));
            }
            let f = gpu.function(&COOC_CU, "cooc_grad")?;
            let mask = i32::from(mask_diagonal);
            let mut l = gpu.stream().launch_builder(&f);
            l.arg(v)
                .arg(&self.x0v)
                .arg(&self.g32)
                .arg(&m32)
                .arg(&k32)
                .arg(&mask)
                .arg(&step)
                .arg(grad)
                .arg(&mut self.bad_step);
            // SAFETY: one thread per element of the M x k buffers.
            unsafe { l.launch(grid_for(m * k)) }.map_err(|e| gpu.launch_error("cooc_grad", e))?;
        }
        Ok(())
    }

    /// Enqueues `L V` (users x k) at `v`, the first sparse product of [`GpuCooc::enqueue`]
    /// (public so that reelvec-bench can time the phases of a step apart).
    pub fn enqueue_user_product(&mut self, gpu: &Gpu, v: &CudaSlice<f32>) -> Result<(), ModelError> {
        self.check_factors(v)?;
        self.users.product(gpu, v, v, self.k, false, &mut self.lv, &mut self.partial)
    }

    /// Enqueues `X0 V = S^T (L V) - D v` (movies x k) from the last [`GpuCooc::enqueue_user_product`],
    /// the second sparse product of [`GpuCooc::enqueue`].
    pub fn enqueue_movie_product(&mut self, gpu: &Gpu, v: &CudaSlice<f32>) -> Result<(), ModelError> {
        self.check_factors(v)?;
        self.movies.product(gpu, &self.lv, v, self.k, true, &mut self.x0v, &mut self.partial)
    }

    fn check_factors(&self, v: &CudaSlice<f32>) -> Result<(), ModelError> {
        let expected = self.n_movies * self.k;
        if v.len() < expected {
            return Err(ModelError::Engine(EngineError::ShapeMismatch {
                what: "P1 factors on the GPU".to_string(),
                expected,
                actual: v.len(),
            }));
        }
        Ok(())
    }

    /// The first step whose gradient had a non-finite value, if any (synchronises).
    pub fn first_bad_step(&self, gpu: &Gpu) -> Result<Option<usize>, ModelError> {
        let flag = gpu.download(&self.bad_step, 1, "P1 non-finite gradient flag")?;
        Ok((flag[0] != u32::MAX).then_some(flag[0] as usize))
    }

    /// Both costs of `v` (host, M x k row-major) and, with `with_grad`, the gradient: the device
    /// twin of [`CoocProblem::cost_and_grad`] (tests and one-off evaluations; synchronises).
    pub fn cost_and_grad(
        &mut self,
        gpu: &Gpu,
        v: &[f32],
        mask_diagonal: bool,
        with_grad: bool,
    ) -> Result<(CostParts, Option<Vec<f32>>), ModelError> {
        let n = self.n_movies * self.k;
        if v.len() != n {
            return Err(ModelError::InvalidData(format!(
                "factor matrix must be M x k = {n} values, got {}",
                v.len()
            )));
        }
        let dev_v = gpu.upload(v, "P1 factors")?;
        let mut costs = gpu.zeros::<f64>(2, "P1 cost slot")?;
        let mut grad = if with_grad { Some(gpu.zeros::<f32>(n, "P1 gradient")?) } else { None };
        self.enqueue(gpu, &dev_v, mask_diagonal, &mut costs, 0, grad.as_mut(), 0)?;
        let c = gpu.download(&costs, 2, "P1 costs")?;
        let grad = grad.map(|g| gpu.download(&g, n, "P1 gradient")).transpose()?;
        Ok((CostParts { masked: c[0], unmasked: c[1] }, grad))
    }

    /// `L V` and `X0 V` of the last evaluation (users x k, movies x k; synchronises). For the
    /// parity tests of the sparse products.
    pub fn products(&self, gpu: &Gpu) -> Result<(Vec<f32>, Vec<f32>), ModelError> {
        Ok((
            gpu.download(&self.lv, self.n_users * self.k, "P1 L V")?,
            gpu.download(&self.x0v, self.n_movies * self.k, "P1 X0 V")?,
        ))
    }
}

/// [`super::fit`] on the GPU: the same initialisation (seeded on the host), PyTorch Adam
/// defaults through [`GpuOptimizer`], the same learning-rate schedule and the same cost history
/// (`steps + 1` entries). `on_step(step, cost)` is called for every step, in order, each time
/// the history is read back (every [`CHECK_EVERY`] steps and at the end).
pub fn fit_gpu(
    gpu: &Gpu,
    problem: &CoocProblem,
    config: &CoocConfig,
    seed: u64,
    mut on_step: impl FnMut(usize, &CostParts),
) -> Result<CoocFit, ModelError> {
    if !(config.lr > 0.0 && config.lr.is_finite()) {
        return Err(ModelError::InvalidConfig(format!("cooc lr must be > 0 (got {})", config.lr)));
    }
    let k = config.dim;
    let mut params = ParamStore::new();
    let table = init_factors(problem, config, seed, &mut params)?;
    let mut cooc = GpuCooc::new(gpu, problem, k)?;
    let mut dev_params = GpuParams::upload(gpu, &params)?;
    let mut dev_grads = GpuGrads::zeros_like(gpu, &dev_params)?;
    let mut adam =
        GpuOptimizer::new(gpu, &OptimizerConfig::Adam(AdamConfig::default()), &dev_params, &dev_grads)?;
    let schedule = if config.lr_decay {
        Schedule::LinearDecay { total_steps: config.steps as u64 }
    } else {
        Schedule::Constant
    };
    let steps = config.steps;
    let mut dev_costs = gpu.zeros::<f64>(2 * (steps + 1), "P1 cost history")?;
    let mut costs: Vec<CostParts> = Vec::with_capacity(steps + 1);
    let start = Instant::now();
    for step in 0..steps {
        cooc.enqueue(
            gpu,
            &dev_params.get(table).data,
            config.mask_diagonal,
            &mut dev_costs,
            step,
            Some(&mut dev_grads.get_mut(table).data),
            step as u32,
        )?;
        adam.step(gpu, &mut dev_params, &mut dev_grads, config.lr * schedule.factor(step as u64))?;
        reelvec_engine::step_hook::after_step(step as u64 + 1, steps as u64)?;
        if (step + 1) % CHECK_EVERY == 0 || step + 1 == steps {
            read_history(gpu, &cooc, &dev_costs, step + 1, &mut costs, &mut on_step)?;
        }
    }
    cooc.enqueue(gpu, &dev_params.get(table).data, config.mask_diagonal, &mut dev_costs, steps, None, 0)?;
    let last = gpu.download(&dev_costs, 2 * (steps + 1), "P1 cost history")?;
    costs.push(CostParts { masked: last[2 * steps], unmasked: last[2 * steps + 1] });
    dev_params.download_into(gpu, &mut params)?;
    let seconds = start.elapsed().as_secs_f64();
    Ok(CoocFit { model: CoocModel::new(params)?, costs, seconds })
}

/// Reads the costs of steps `costs.len()..upto`, checks them and the gradient flag (as the CPU
/// `fit` does every step), and hands them to `on_step`.
fn read_history(
    gpu: &Gpu,
    cooc: &GpuCooc,
    dev_costs: &CudaSlice<f64>,
    upto: usize,
    costs: &mut Vec<CostParts>,
    on_step: &mut impl FnMut(usize, &CostParts),
) -> Result<(), ModelError> {
    let all = gpu.download(dev_costs, 2 * upto, "P1 cost history")?;
    let bad = cooc.first_bad_step(gpu)?;
    for step in costs.len()..upto {
        let cost = CostParts { masked: all[2 * step], unmasked: all[2 * step + 1] };
        if !cost.masked.is_finite() || bad == Some(step) {
            return Err(ModelError::Engine(EngineError::Diverged {
                epoch: 0,
                step,
                what: format!("cooc cost {} (GPU)", cost.masked),
            }));
        }
        on_step(step, &cost);
        costs.push(cost);
    }
    Ok(())
}
