//! The full-softmax launches of the item2vec GPU objective: cuBLAS `sgemm`, the compiled
//! softmax kernels, the work buffers, the small-vocabulary two-launch step and the chunked
//! gathers + products + fused softmax cross-entropy pass (see the parent module doc).

#[allow(clippy::wildcard_imports)]
use super::*;

pub(super) fn blas_error(what: &str, e: impl std::fmt::Debug) -> EngineError {
    EngineError::Gpu { what: format!("cuBLAS sgemm ({what})"), message: format!("{e:?}") }
}

/// Column-major `C = alpha op(A) op(B) + beta C` (cuBLAS conventions: `m x n` result, inner `k`).
#[allow(clippy::too_many_arguments)] // mirrors cublasSgemm's signature
pub(crate) fn sgemm<A: DevicePtr<f32>, B: DevicePtr<f32>, C: DevicePtrMut<f32>>(
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

/// The compiled softmax kernels.
#[derive(Debug, Clone)]
pub(super) struct SoftmaxKernels {
    pub(super) batch_rows: CudaFunction,
    pub(super) gather_hidden: CudaFunction,
    pub(super) softmax_xent: CudaFunction,
    pub(super) scatter: CudaFunction,
    pub(super) small_step: CudaFunction,
    pub(super) small_out_grad: CudaFunction,
    /// Use the two-launch small-vocabulary path (`small_vocab_*` in softmax.cu) for a chunk:
    /// V <= [`SMALL_VOCAB_MAX_V`] and k <= [`SMALL_VOCAB_MAX_K`], unless turned off.
    pub(super) use_small: bool,
}

/// Largest vocabulary of the small-vocabulary kernels (`SV_MAX_V` in softmax.cu).
pub const SMALL_VOCAB_MAX_V: usize = 256;
/// Largest embedding size of the small-vocabulary kernels (`SV_MAX_K` in softmax.cu).
pub const SMALL_VOCAB_MAX_K: usize = 64;

/// Work buffers, grown on demand (rarely: to the largest batch seen).
#[derive(Debug)]
pub(super) struct Scratch {
    pub(super) h: CudaSlice<f32>,
    pub(super) dh: CudaSlice<f32>,
    pub(super) z: CudaSlice<f32>,
    pub(super) ones: CudaSlice<f32>,
    pub(super) chunk_cap: usize,
    /// Stand-in for the rank counters when none are wanted.
    pub(super) no_rank: CudaSlice<u64>,
}

impl Scratch {
    pub(super) fn new(gpu: &Gpu) -> Result<Self, EngineError> {
        Ok(Self {
            h: gpu.zeros(1, "hidden vectors")?,
            dh: gpu.zeros(1, "hidden gradients")?,
            z: gpu.zeros(1, "logits")?,
            ones: gpu.zeros(1, "ones")?,
            chunk_cap: 0,
            no_rank: gpu.zeros(2, "unused rank counters")?,
        })
    }

    pub(super) fn ensure_chunk(
        &mut self,
        gpu: &Gpu,
        rows: usize,
        v: usize,
        k: usize,
    ) -> Result<(), EngineError> {
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

/// One chunk through the small-vocabulary kernels: `small_vocab_step` (forward, loss, dz, dh
/// scattered into the embedding gradient), then with gradients `small_vocab_out_grad` (dW, db).
#[allow(clippy::too_many_arguments)] // the pieces of softmax_pass's loop body
pub(super) fn small_vocab_chunk(
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
pub(super) fn softmax_pass(
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
