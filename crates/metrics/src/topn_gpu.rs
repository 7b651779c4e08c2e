//! Top-N on the GPU: the device twin of [`crate::topn::top_n`] / [`crate::topn::top_n_for_users`],
//! with the same inputs ([`FactorScores`], [`TopNConfig`], [`RatedItems`]) and the same output
//! ([`TopN`]): same order (higher score first, equal scores by lower movie index), same exclusion
//! and padding, reported scores `link(raw + offset + b_u)` computed on the host by the same
//! [`crate::topn::ScoreLink::apply`].
//!
//! The factors go to the device once per call (`[P | 1]` for the requested users, `[Q | c]` for
//! every movie: the movie bias rides along as an extra GEMM column, as on the CPU). Users are
//! processed in blocks whose raw score matrix (block x movies, f32) stays under
//! [`SCORE_BLOCK_BYTES`]: one cuBLAS SGEMM per block, then one `topn_select` block per user row
//! (kernel in `topn.cu`, beside `topn.rs`): exclusion, a radix select that usually stops after
//! the first digit and sorts the (at most [`SORT_CAP`]) candidates of the selected bucket, else
//! narrows down to the n-th key with ties taken in index order, and a bitonic sort, all on the
//! device. Only the `users x n` lists come back.
//!
//! Measured on an H100 (test `top_n_time_at_ml25m_scale`, `REELVEC_GPU_BENCH=1`): 162,541 users
//! x 59,047 movies, k = 64 with biases, top-10 in 159 ms end to end (233 ms excluding ~150 rated
//! movies per user, top-100 with exclusion 308 ms), host preparation and transfers included.
//!
//! Parity: the raw scores come from another GEMM than the CPU's (different summation order), so
//! lists agree exactly wherever no two scores near the cut or within a list are equal to float
//! rounding; exact ties (equal f32 scores on both sides) are broken identically.

use cudarc::cublas::sys::cublasOperation_t;
use ndarray::Array2;
use rayon::prelude::*;
use reelvec_engine::gpu::{Gemm, GemmConfig, Gpu, KernelSource, LaunchConfig, PushKernelArg};
use reelvec_engine::EngineError;

use crate::error::{check_index, MetricsError, Result};
use crate::topn::{FactorScores, RatedItems, TopN, TopNConfig, NO_ITEM};

const TOPN_CU: KernelSource =
    KernelSource { name: "topn.cu", source: include_str!("topn.cu"), functions: &["topn_select"] };

/// This crate's kernel files: its part of the registry CI compiles with
/// [`reelvec_engine::gpu::compile_check`].
pub const KERNELS: &[KernelSource] = &[TOPN_CU];

/// Longest list the device selection keeps (`MAX_LIST` in topn.cu).
pub const MAX_LIST: usize = 1024;
/// Most candidates the selection sorts at once (`SORT_CAP` in topn.cu).
pub const SORT_CAP: u32 = 4096;
/// Bytes of raw scores per user block when `TopNConfig::block_users` is 0.
pub const SCORE_BLOCK_BYTES: usize = 512 << 20;
/// Threads per selection block (`SEL_THREADS` in topn.cu).
const SELECT_THREADS: u32 = 256;

/// Every user's top-`k` list on `device`: on the CPU the ranking protocol's one list builder
/// ([`crate::protocol::top_lists`]), on a CUDA device this module's [`top_n`] (its twin: same
/// order, agreeing up to float rounding of near-ties). The one place a caller's device choice
/// becomes a list backend (P3's figures and `reelvec evaluate`'s rating runs).
pub fn top_lists_on(
    device: reelvec_engine::Device,
    model: &FactorScores<'_>,
    k: usize,
    exclude: Option<&RatedItems>,
) -> Result<ndarray::Array2<u32>> {
    match device {
        reelvec_engine::Device::Cpu => {
            let users: Vec<u32> = (0..model.n_users() as u32).collect();
            crate::protocol::top_lists(model, &users, exclude, k)
        }
        reelvec_engine::Device::Cuda(_) => {
            Ok(top_n(&*Gpu::for_device(device)?, model, &TopNConfig::with_k(k), exclude)?.indices)
        }
    }
}

/// Top-N for every user of the model on `gpu`. See [`top_n_for_users`].
pub fn top_n(
    gpu: &Gpu,
    model: &FactorScores<'_>,
    config: &TopNConfig,
    exclude: Option<&RatedItems>,
) -> Result<TopN> {
    let users: Vec<u32> = (0..model.n_users() as u32).collect();
    top_n_for_users(gpu, model, &users, config, exclude)
}

/// Top-N for the listed users on `gpu`: the same result as [`crate::topn::top_n_for_users`]
/// (see the module docs for where float rounding can reorder near-ties). `config.k` is the list
/// length (at most [`MAX_LIST`]); `config.block_users` users per GEMM block (0: as many as fit
/// [`SCORE_BLOCK_BYTES`]); `config.item_tile` is not used (a block scores every movie at once).
pub fn top_n_for_users(
    gpu: &Gpu,
    model: &FactorScores<'_>,
    users: &[u32],
    config: &TopNConfig,
    exclude: Option<&RatedItems>,
) -> Result<TopN> {
    top_n_with_sort_cap(gpu, model, users, config, exclude, SORT_CAP)
}

/// [`top_n_for_users`] with another bound on the candidates the selection sorts at once
/// (`sort_cap <= SORT_CAP`; 0 selects digit by digit down to the n-th key every time): for the
/// parity tests of both selection paths.
#[doc(hidden)]
pub fn top_n_with_sort_cap(
    gpu: &Gpu,
    model: &FactorScores<'_>,
    users: &[u32],
    config: &TopNConfig,
    exclude: Option<&RatedItems>,
    sort_cap: u32,
) -> Result<TopN> {
    let n = config.k;
    let sort_cap = sort_cap.min(SORT_CAP);
    if n == 0 || n > MAX_LIST {
        return Err(MetricsError::InvalidParameter {
            name: "k",
            value: n.to_string(),
            reason: "the GPU top-N needs 1 <= k <= 1024",
        });
    }
    for &u in users {
        check_index("top_n (GPU) user", u as usize, model.n_users())?;
    }
    let (m, k) = model.item_factors.dim();
    if users.is_empty() || m == 0 {
        return Ok(TopN {
            indices: Array2::from_elem((users.len(), n), NO_ITEM),
            scores: Array2::from_elem((users.len(), n), f32::NEG_INFINITY),
        });
    }
    if u32::try_from(m).is_err() || u32::try_from(users.len()).is_err() {
        return Err(MetricsError::InvalidParameter {
            name: "model",
            value: format!("{} users x {m} movies", users.len()),
            reason: "the GPU top-N indexes users and movies with 32 bits",
        });
    }
    // [Q | c] (movies x width) and [P | 1] (users x width), row-major.
    let width = if model.item_bias.is_some() { k + 1 } else { k };
    let mut items = vec![1.0f32; m * width];
    items.par_chunks_mut(width).enumerate().for_each(|(j, row)| {
        row.iter_mut().zip(model.item_factors.row(j)).for_each(|(d, &x)| *d = x);
        if let Some(c) = model.item_bias {
            row[k] = c[j];
        }
    });
    // The trailing 1 of [P | 1] is the fill value.
    let mut queries = vec![1.0f32; users.len() * width];
    queries.par_chunks_mut(width).zip(users.par_iter()).for_each(|(row, &u)| {
        row.iter_mut().zip(model.user_factors.row(u as usize)).for_each(|(d, &x)| *d = x);
    });
    let block =
        if config.block_users > 0 { config.block_users } else { (SCORE_BLOCK_BYTES / (4 * m)).max(1) }
            .min(users.len());
    let (ex_ptr, ex_idx) = exclusion_rows(users, exclude);

    let items_dev = gpu.upload(&items, "top-N movie factors [Q | c]")?;
    let queries_dev = gpu.upload(&queries, "top-N user factors [P | 1]")?;
    let ex_ptr_dev = gpu.upload(&ex_ptr, "top-N excluded-movie offsets")?;
    let ex_idx_dev = gpu.upload(&ex_idx, "top-N excluded movies")?;
    let mut block_scores = gpu.zeros::<f32>(block * m, "top-N raw scores of a user block")?;
    let mut out_idx = gpu.zeros::<u32>(users.len() * n, "top-N movie lists")?;
    let mut out_score = gpu.zeros::<f32>(users.len() * n, "top-N raw scores of the lists")?;
    let select = gpu.function(&TOPN_CU, "topn_select")?;
    let (n_items, n32, sort_size) = (m as u32, n as u32, n.next_power_of_two() as u32);
    let has_exclude = i32::from(exclude.is_some());

    for first in (0..users.len()).step_by(block) {
        let rows = block.min(users.len() - first);
        // Column-major view: C (m x rows) = Q_aug (m x width) . P_blk^T (width x rows), where the
        // row-major [Q | c] is the column-major width x m matrix (op T) and the row-major user
        // block is the column-major width x rows matrix (op N); C column r = user r's scores.
        let gemm = GemmConfig {
            transa: cublasOperation_t::CUBLAS_OP_T,
            transb: cublasOperation_t::CUBLAS_OP_N,
            m: m as i32,
            n: rows as i32,
            k: width as i32,
            alpha: 1.0f32,
            lda: width as i32,
            ldb: width as i32,
            beta: 0.0f32,
            ldc: m as i32,
        };
        let p_view = queries_dev.slice(first * width..(first + rows) * width);
        let mut c_view = block_scores.slice_mut(..rows * m);
        // SAFETY: the three buffers hold m x width, rows x width and rows x m values.
        unsafe { gpu.blas().gemm(gemm, &items_dev, &p_view, &mut c_view) }.map_err(|e| EngineError::Gpu {
            what: "top-N score GEMM".to_string(),
            message: format!("{e:?}"),
        })?;
        let first32 = first as u32;
        let cfg = LaunchConfig {
            grid_dim: (rows as u32, 1, 1),
            block_dim: (SELECT_THREADS, 1, 1),
            shared_mem_bytes: 0,
        };
        let mut launch = gpu.stream().launch_builder(&select);
        launch
            .arg(&mut block_scores)
            .arg(&n_items)
            .arg(&n32)
            .arg(&sort_size)
            .arg(&sort_cap)
            .arg(&ex_ptr_dev)
            .arg(&ex_idx_dev)
            .arg(&has_exclude)
            .arg(&first32)
            .arg(&mut out_idx)
            .arg(&mut out_score);
        // SAFETY: rows <= block rows of m scores; output rows first..first + rows of n values;
        // ex_ptr has users.len() + 1 offsets into ex_idx.
        unsafe { launch.launch(cfg) }.map_err(|e| gpu.launch_error("topn_select", e))?;
    }
    let raw_idx = gpu.download(&out_idx, users.len() * n, "top-N movie lists")?;
    let mut raw_scores = gpu.download(&out_score, users.len() * n, "top-N raw scores")?;
    // Reported scores, as on the CPU: link(raw + offset + b_u); padding stays minus infinity.
    raw_scores.par_chunks_mut(n).zip(raw_idx.par_chunks(n)).zip(users.par_iter()).for_each(
        |((row, idx), &u)| {
            let constant = model.offset + model.user_bias.map_or(0.0, |b| b[u as usize]);
            for (s, &j) in row.iter_mut().zip(idx) {
                if j != NO_ITEM {
                    *s = model.link.apply(*s + constant);
                }
            }
        },
    );
    let shape = (users.len(), n);
    let shape_error =
        |_| MetricsError::ShapeMismatch { what: "top-N (GPU) output", expected: shape.0 * n, actual: 0 };
    Ok(TopN {
        indices: Array2::from_shape_vec(shape, raw_idx).map_err(shape_error)?,
        scores: Array2::from_shape_vec(shape, raw_scores).map_err(shape_error)?,
    })
}

/// The excluded movies of each requested user as CSR rows (offsets u64, movies u32).
fn exclusion_rows(users: &[u32], exclude: Option<&RatedItems>) -> (Vec<u64>, Vec<u32>) {
    let mut ptr = Vec::with_capacity(users.len() + 1);
    let mut idx = Vec::new();
    ptr.push(0u64);
    for &u in users {
        if let Some(rated) = exclude {
            idx.extend_from_slice(rated.row(u));
        }
        ptr.push(idx.len() as u64);
    }
    (ptr, idx)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap
mod tests {
    //! A host emulation of topn.cu's radix selection (digits, bucket choice, the whole-bucket
    //! test, the collection), so the bucket arithmetic is tested without a device; the GPU suite
    //! (tests/gpu_topn.rs) runs the kernel itself on the same shapes.

    use super::SORT_CAP;
    use crate::topn::top_k_of_row;

    /// The kernel's line this emulation mirrors (kept in step by the test below).
    const WHOLE_TEST: &str = "bool whole = hist[bin] == need || (n - need) + hist[bin] <= sort_cap;";

    fn order_key(x: f32) -> u32 {
        let b = x.to_bits();
        if b & 0x8000_0000 != 0 {
            !b
        } else {
            b | 0x8000_0000
        }
    }

    /// The (key, index) candidates the kernel collects for one row of listable scores before its
    /// sort; panics where the kernel would write past `cand[SORT_CAP]`.
    fn collected(scores: &[f32], n: u32, sort_cap: u32) -> Vec<(u32, u32)> {
        let keys: Vec<u32> = scores.iter().map(|&x| order_key(x)).collect();
        if keys.len() as u32 <= n {
            return keys.iter().enumerate().map(|(i, &k)| (k, i as u32)).collect();
        }
        let (mut need, mut prefix, mut shift, mut whole) = (n, 0u32, 0u32, false);
        for pass in 0..3 {
            shift = [21, 10, 0][pass];
            let bits = if pass == 2 { 10 } else { 11 };
            let bins = 1usize << bits;
            let mut hist = vec![0u32; bins];
            for &k in &keys {
                if pass == 0 {
                    hist[(k >> shift) as usize] += 1;
                } else if k >> (shift + bits) == prefix {
                    hist[((k >> shift) as usize) & (bins - 1)] += 1;
                }
            }
            // find_bin: the bin where the count from the top reaches `need`.
            let (mut above, mut bin) = (0u32, 0usize);
            for b in (0..bins).rev() {
                if above + hist[b] >= need {
                    bin = b;
                    break;
                }
                above += hist[b];
            }
            need -= above;
            prefix = (prefix << bits) | bin as u32;
            if hist[bin] == need || (n - need) + hist[bin] <= sort_cap {
                whole = true;
                break;
            }
        }
        let mut out: Vec<(u32, u32)> = Vec::new();
        if whole {
            out.extend(
                keys.iter().enumerate().filter(|(_, &k)| k >> shift >= prefix).map(|(i, &k)| (k, i as u32)),
            );
        } else {
            out.extend(keys.iter().enumerate().filter(|(_, &k)| k > prefix).map(|(i, &k)| (k, i as u32)));
            let ties = keys.iter().enumerate().filter(|(_, &k)| k == prefix).take(need as usize);
            out.extend(ties.map(|(i, &k)| (k, i as u32)));
        }
        assert!(out.len() <= SORT_CAP as usize, "{} candidates overflow cand[{SORT_CAP}]", out.len());
        out
    }

    /// The first `n` of the kernel's descending (key, ~index) sort.
    fn select(scores: &[f32], n: u32, sort_cap: u32) -> Vec<u32> {
        let mut cand = collected(scores, n, sort_cap);
        cand.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        cand.into_iter().take(n as usize).map(|(_, i)| i).collect()
    }

    /// `above` distinct scores at the top, `ties` exact ties below them, then lower scores.
    fn tied_row(above: usize, ties: usize, lower: usize) -> Vec<f32> {
        let mut row = Vec::with_capacity(above + ties + lower);
        for j in 0..lower {
            row.push(-1.0 + (j % 97) as f32 * 0.01);
        }
        for j in 0..above {
            row.push(100.0 + j as f32);
        }
        row.extend(std::iter::repeat_n(1.0f32, ties));
        // Interleave deterministically so ties are spread across the row.
        let mut state = 0x9e37_79b9_u64;
        for i in (1..row.len()).rev() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            row.swap(i, (state % (i as u64 + 1)) as usize);
        }
        row
    }

    #[test]
    fn the_emulation_mirrors_the_kernels_whole_bucket_test() {
        assert!(include_str!("topn.cu").contains(WHOLE_TEST), "topn.cu changed: update this emulation");
    }

    #[test]
    fn thousands_of_ties_below_the_top_never_overflow_and_keep_the_order() {
        for n in [10u32, 100, 1000, 1024] {
            for ties in [3_000usize, 3_998, 4_000, 4_090, 4_096, 5_000, 9_000] {
                for above in [n as usize - 1, n as usize / 2] {
                    let row = tied_row(above, ties, 2_000);
                    for sort_cap in [SORT_CAP, 0] {
                        let got = select(&row, n, sort_cap);
                        let want: Vec<u32> = top_k_of_row(&row, n as usize, &[])
                            .unwrap()
                            .into_iter()
                            .map(|(j, _)| j)
                            .collect();
                        assert_eq!(got, want, "n {n} ties {ties} above {above} cap {sort_cap}");
                    }
                }
            }
        }
    }
}
