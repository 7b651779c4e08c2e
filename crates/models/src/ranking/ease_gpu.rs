//! `ease` on a CUDA device: the twin of [`Ease::fit`](super::Ease::fit) (kernels in `ease.cu`,
//! beside `ease.rs`). Steps, all on the device's one stream:
//!
//! ```text
//! G = X^T X          dense 0/1 chunks of users (ease_scatter) times themselves, cuBLAS sgemm
//!                    accumulating into G (f32: the counts are integers below 2^24, exact)
//! P = G + lambda I   in f64 (ease_gram_to_f64), G freed
//! P = P^-1           cuSOLVER Dpotrf + Dpotri (Cholesky, lower triangle), as LAPACK on the CPU
//! B = -P / diag P    zero diagonal, f32 (ease_weights), downloaded into the CPU `Ease`
//! ```
//!
//! **Memory.** The device holds at most the f32 Gram and the f64 `P` (`12 M^2` bytes, the CPU
//! fit's figure, [`super::ease_fit_bytes`]) plus one user chunk ([`CHUNK_BYTES`]) and cuSOLVER's
//! workspace; the check against the device's free memory runs before anything is allocated, and
//! the host needs the `4 M^2` bytes of `B`. cuSOLVER is loaded at run time (cudarc's dynamic
//! loading): a machine without `libcusolver` gets a clear error, not a failed start.
//!
//! **Versus the CPU.** The Gram is exact on both; the factorisation and inverse run in f64 on
//! both but in another order (blocked cuSOLVER against LAPACK), so `B` agrees to f32 rounding.

use cudarc::cusolver::sys::{self as solver, cublasFillMode_t};
use cudarc::cusolver::DnHandle;
use ndarray::Array2;
use reelvec_engine::gpu::{
    grid_for, CudaSlice, DevicePtrMut, Gpu, KernelSource, LaunchConfig, PushKernelArg,
};
use reelvec_engine::memory::{ensure_fits, ensure_fits_in, f32_bytes};
use reelvec_engine::EngineError;

use super::{ease_fit_bytes, Ease, EaseParams, Interactions};
use crate::ModelError;

pub(crate) const EASE_CU: KernelSource = KernelSource {
    name: "ease.cu",
    source: include_str!("ease.cu"),
    functions: &["ease_scatter", "ease_gram_to_f64", "ease_weights"],
};

/// Bytes of one dense chunk of users (`rows x M` f32) for the Gram's GEMMs.
pub const CHUNK_BYTES: usize = 512 << 20;
/// Blocks of the grid-stride element-wise kernels.
const MAX_BLOCKS: usize = 4096;

fn solver_error(what: &str, e: impl std::fmt::Debug) -> EngineError {
    EngineError::Gpu { what: format!("cuSOLVER ({what})"), message: format!("{e:?}") }
}

/// Fits [`Ease`] on `gpu` (see the module doc) with the same parameters as [`Ease::fit`].
pub fn fit_ease_gpu(
    gpu: &Gpu,
    train: Interactions<'_>,
    params: &serde_json::Value,
) -> Result<Ease, ModelError> {
    fit_ease_gpu_chunked(gpu, train, params, None)
}

/// [`fit_ease_gpu`] with at most `chunk_users` users per dense chunk of the Gram (None: as many
/// as fit in [`CHUNK_BYTES`]); tests use small chunks so several GEMMs accumulate.
pub fn fit_ease_gpu_chunked(
    gpu: &Gpu,
    train: Interactions<'_>,
    params: &serde_json::Value,
    chunk_users: Option<usize>,
) -> Result<Ease, ModelError> {
    let params = EaseParams::from_json(params)?;
    let m = train.n_items;
    let n_users = train.n_users();
    ensure_fits(
        &format!("EASE weights for {m} movies ({m} x {m}, f32, host copy)"),
        f32_bytes((m as u128).pow(2), 1),
    )?;
    if m == 0 {
        return Ok(Ease { params, by_user: train.by_user.clone(), weights: Array2::zeros((0, 0)) });
    }
    let chunk = chunk_users.unwrap_or(CHUNK_BYTES / (4 * m)).clamp(1, n_users.max(1));
    let (free, _) = gpu.memory_info()?;
    ensure_fits_in(
        &format!(
            "EASE Gram and inverse for {m} movies on {} ({m} x {m}, f32 + f64, + a user chunk)",
            gpu.name()
        ),
        ease_fit_bytes(m)
            + f32_bytes((chunk * m) as u128, 1)
            + 8 * (train.nnz() as u128 + n_users as u128 + 1),
        Some(free as u64),
    )?;
    let (m32, lda) = match (u32::try_from(m), i32::try_from(m)) {
        (Ok(a), Ok(b)) => (a, b),
        _ => return Err(ModelError::InvalidData(format!("EASE on the GPU: {m} movies exceed 2^31 - 1"))),
    };
    let ptr =
        train.by_user.indptr().iter().map(|&p| u32::try_from(p)).collect::<Result<Vec<u32>, _>>().map_err(
            |_| ModelError::InvalidData("EASE on the GPU: more than 2^32 - 1 interactions".into()),
        )?;
    let row_ptr = gpu.upload(&ptr, "EASE interaction offsets")?;
    let cols = gpu.upload(train.by_user.indices(), "EASE interactions")?;

    // G = X^T X, chunk by chunk of users.
    let mut gram: CudaSlice<f32> = gpu.zeros(m * m, "EASE Gram matrix (f32)")?;
    {
        let mut x: CudaSlice<f32> = gpu.zeros(chunk * m, "EASE dense user chunk")?;
        let scatter = gpu.function(&EASE_CU, "ease_scatter")?;
        let scatter_cfg = |rows: usize| LaunchConfig {
            grid_dim: ((rows * 32).div_ceil(256).clamp(1, MAX_BLOCKS) as u32, 1, 1),
            block_dim: (256, 1, 1),
            shared_mem_bytes: 0,
        };
        let mut u0 = 0usize;
        while u0 < n_users {
            let u1 = (u0 + chunk).min(n_users);
            let (a, b) = (u0 as u32, u1 as u32);
            for value in [1.0f32, 0.0] {
                if value == 0.0 {
                    crate::item2vec::gpu::sgemm(
                        gpu,
                        (false, true),
                        (m, m, u1 - u0),
                        &x,
                        m,
                        &x,
                        m,
                        1.0,
                        &mut gram,
                        m,
                        "EASE Gram X^T X",
                    )?;
                }
                let mut launch = gpu.stream().launch_builder(&scatter);
                launch.arg(&row_ptr).arg(&cols).arg(&mut x).arg(&a).arg(&b).arg(&m32).arg(&value);
                // SAFETY: users u0..u1 < n_users index `row_ptr` (n_users + 1 offsets into `cols`);
                // their movies are < m (`Interactions::new`), so row (u - u0) < chunk of `x`
                // (chunk x m floats) is written in bounds.
                unsafe { launch.launch(scatter_cfg(u1 - u0)) }
                    .map_err(|e| gpu.launch_error("ease_scatter", e))?;
            }
            u0 = u1;
        }
    }

    // P = G + lambda I in f64.
    let mut p: CudaSlice<f64> = gpu.zeros(m * m, "EASE inverse (f64)")?;
    let elementwise = grid_for(m * m);
    let elementwise =
        LaunchConfig { grid_dim: (elementwise.grid_dim.0.min(MAX_BLOCKS as u32), 1, 1), ..elementwise };
    {
        let f = gpu.function(&EASE_CU, "ease_gram_to_f64")?;
        let mut launch = gpu.stream().launch_builder(&f);
        launch.arg(&gram).arg(&mut p).arg(&m32).arg(&params.lambda);
        // SAFETY: both buffers hold m x m elements; the kernel strides over exactly m^2.
        unsafe { launch.launch(elementwise) }.map_err(|e| gpu.launch_error("ease_gram_to_f64", e))?;
    }
    drop(gram);

    // P = P^-1 by Cholesky (lower triangle).
    invert_spd(gpu, &mut p, lda)?;

    // B from P.
    let mut weights: CudaSlice<f32> = gpu.zeros(m * m, "EASE weights B (f32)")?;
    {
        let f = gpu.function(&EASE_CU, "ease_weights")?;
        let mut launch = gpu.stream().launch_builder(&f);
        launch.arg(&p).arg(&mut weights).arg(&m32);
        // SAFETY: both buffers hold m x m elements; the kernel strides over exactly m^2.
        unsafe { launch.launch(elementwise) }.map_err(|e| gpu.launch_error("ease_weights", e))?;
    }
    drop(p);
    let host = gpu.download(&weights, m * m, "EASE weights B")?;
    let weights = Array2::from_shape_vec((m, m), host)
        .map_err(|e| ModelError::InvalidData(format!("EASE weights from the GPU: {e}")))?;
    Ok(Ease { params, by_user: train.by_user.clone(), weights })
}

/// Inverts the symmetric positive definite column-major `n x n` matrix `a` in place (lower
/// triangle only): cuSOLVER `Dpotrf` then `Dpotri`; a matrix that is not positive definite is
/// an error naming the failed minor.
fn invert_spd(gpu: &Gpu, a: &mut CudaSlice<f64>, n: i32) -> Result<(), ModelError> {
    // SAFETY: only reads whether a shared library loads.
    if !unsafe { solver::is_culib_present() } {
        return Err(EngineError::Device(
            "EASE on the GPU needs cuSOLVER (libcusolver.so), which did not load; use --device cpu".into(),
        )
        .into());
    }
    let handle = DnHandle::new(gpu.stream().clone()).map_err(|e| solver_error("starting cuSOLVER", e))?;
    let uplo = cublasFillMode_t::CUBLAS_FILL_MODE_LOWER;
    let stream = gpu.stream().clone();
    let (mut lwork_f, mut lwork_i) = (0i32, 0i32);
    {
        let (ptr, _record) = a.device_ptr_mut(&stream);
        // SAFETY: `ptr` addresses n x n doubles (lda n); the sizes are written to host integers.
        unsafe {
            solver::cusolverDnDpotrf_bufferSize(handle.cu(), uplo, n, ptr as *mut f64, n, &mut lwork_f)
                .result()
                .map_err(|e| solver_error("Dpotrf workspace size", e))?;
            solver::cusolverDnDpotri_bufferSize(handle.cu(), uplo, n, ptr as *mut f64, n, &mut lwork_i)
                .result()
                .map_err(|e| solver_error("Dpotri workspace size", e))?;
        }
    }
    let lwork = lwork_f.max(lwork_i).max(1);
    let mut work: CudaSlice<f64> = gpu.zeros(lwork as usize, "cuSOLVER workspace")?;
    let mut info: CudaSlice<i32> = gpu.zeros(1, "cuSOLVER status")?;
    for step in ["Dpotrf", "Dpotri"] {
        {
            let (ptr, _r1) = a.device_ptr_mut(&stream);
            let (wptr, _r2) = work.device_ptr_mut(&stream);
            let (iptr, _r3) = info.device_ptr_mut(&stream);
            let (ptr, wptr, iptr) = (ptr as *mut f64, wptr as *mut f64, iptr as *mut i32);
            // SAFETY: `a` holds n x n doubles (lda n), `work` lwork doubles (the larger of the two
            // sizes cuSOLVER asked for), `info` one int; the handle is bound to the stream every
            // buffer belongs to.
            let status = unsafe {
                if step == "Dpotrf" {
                    solver::cusolverDnDpotrf(handle.cu(), uplo, n, ptr, n, wptr, lwork, iptr)
                } else {
                    solver::cusolverDnDpotri(handle.cu(), uplo, n, ptr, n, wptr, lwork, iptr)
                }
            };
            status.result().map_err(|e| solver_error(step, e))?;
        }
        let status = gpu.download(&info, 1, &format!("cuSOLVER {step} status"))?[0];
        if status != 0 {
            return Err(ModelError::InvalidData(format!(
                "EASE on the GPU: {step} failed (info {status}): X^T X + lambda I is not positive definite \
                 to working precision; raise lambda"
            )));
        }
    }
    Ok(())
}
