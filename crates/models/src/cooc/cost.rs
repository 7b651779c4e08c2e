//! The P1 cost and its gradient from `L` alone, in `O(nnz(L) k + M k^2)` time and `O((U + M) k)`
//! memory per evaluation.
//!
//! With `X = L^T L`, `D = diag(X)` and `X0 = X - D` (zero diagonal), the protocol's cost is
//!
//! ```text
//! c(V) = sum_{i != j} (v_i . v_j - X_ij)^2
//!      = ||V V^T - X0||_F^2 - sum_i |v_i|^4            (the i = j terms are (|v_i|^2 - 0)^2)
//! ||V V^T - X0||_F^2 = ||V V^T||_F^2 - 2 tr(V^T X0 V) + ||X0||_F^2
//! ||V V^T||_F^2 = tr(V V^T V V^T) = ||G||_F^2,          G = V^T V   (k x k)
//! tr(V^T X0 V) = sum_i v_i . (X0 V)_i,                  X0 V = L^T (L V) - D V
//! ```
//!
//! `||X0||_F^2` is a constant computed once from `L` ([`LikeMatrix::x0_frobenius_sq`]).
//! Gradient (X0 symmetric):
//!
//! ```text
//! d/dV ||V V^T - X0||_F^2 = 4 (V V^T - X0) V = 4 (V G - X0 V)
//! d/dv_i |v_i|^4 = 4 |v_i|^2 v_i
//! grad c = 4 (V G - X0 V) - 4 diag(|v_i|^2) V
//! ```
//!
//! The unmasked cost `||V V^T - X0||_F^2` (whose optimum is the rank-k eigen-truncation) is
//! returned too. All reductions are in f64 over fixed row blocks, in order: deterministic.
//!
//! The two dense parts are matrix products (ndarray's `general_mat_mul`, i.e. matrixmultiply's
//! packed SIMD kernels): per row block `G_b = V_b^T V_b` in f64 (the blocks' Grams summed in
//! block order), and `V G` in f32 into the gradient. The sparse products `L V` and `L^T (L V)`
//! take a constant row width for the usual ranks (unrolled row additions, the same sums in the
//! same order as [`LikeMatrix`]'s generic ones). With one rayon thread the blocks run in order on
//! the calling thread (no pool hand-off); the result is the same either way.

use ndarray::linalg::general_mat_mul;
use ndarray::{ArrayView2, ArrayViewMut2};
use rayon::prelude::*;

use super::LikeMatrix;

/// Rows per block in the deterministic reductions.
const BLOCK: usize = 1024;

/// The two costs of a factor matrix.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CostParts {
    /// `sum_{i != j} (v_i . v_j - X_ij)^2`, the protocol's cost.
    pub masked: f64,
    /// `||V V^T - X0||_F^2`, the same with the diagonal terms `|v_i|^4` included.
    pub unmasked: f64,
}

impl CostParts {
    /// The masked cost when `mask_diagonal`, else the unmasked one.
    pub fn objective(&self, mask_diagonal: bool) -> f64 {
        if mask_diagonal {
            self.masked
        } else {
            self.unmasked
        }
    }
}

/// A P1 problem: the like matrix and its constants.
#[derive(Debug, Clone)]
pub struct CoocProblem {
    likes: LikeMatrix,
    x0_frobenius_sq: f64,
}

/// Reused buffers of one cost evaluation.
#[derive(Debug, Clone, Default)]
pub struct CoocScratch {
    lv: Vec<f32>,
    x0v: Vec<f32>,
}

/// Rows per task of the sparse products.
const SPARSE_ROWS: usize = 256;

/// `out = L V` (`transpose = false`, users x k) or `out = L^T Y - D V` (`transpose = true`,
/// movies x k, `src = Y`), the same sums in the same order as [`LikeMatrix::times`] and
/// [`LikeMatrix::transpose_times_minus_diag`], with the row width a constant `K` so every
/// row addition is unrolled; serial when `serial`.
fn sparse_product<const K: usize>(
    likes: &LikeMatrix,
    src: &[f32],
    v: &[f32],
    transpose: bool,
    serial: bool,
    out: &mut [f32],
) {
    let task = |(chunk, rows): (usize, &mut [f32])| {
        for (r, row) in rows.chunks_exact_mut(K).enumerate() {
            let i = chunk * SPARSE_ROWS + r;
            let mut acc = [0.0f32; K];
            let others = if transpose {
                let likers = likes.movie_likers(i);
                let d = likers.len() as f32;
                acc.iter_mut().zip(&v[i * K..(i + 1) * K]).for_each(|(a, &vi)| *a = -d * vi);
                likers
            } else {
                likes.user_likes(i)
            };
            for &o in others {
                let s = &src[o as usize * K..(o as usize + 1) * K];
                acc.iter_mut().zip(s).for_each(|(a, &x)| *a += x);
            }
            row.copy_from_slice(&acc);
        }
    };
    if serial {
        out.chunks_mut(SPARSE_ROWS * K).enumerate().for_each(task);
    } else {
        out.par_chunks_mut(SPARSE_ROWS * K).enumerate().for_each(task);
    }
}

/// `X0 V` into `scratch.x0v` through `L V` (in `scratch.lv`): [`sparse_product`] for the
/// common ranks, [`LikeMatrix`]'s own products otherwise.
fn x0_times(likes: &LikeMatrix, v: &[f32], k: usize, serial: bool, scratch: &mut CoocScratch) {
    macro_rules! by_rank {
        ($($k:literal)*) => {
            match k {
                $($k => {
                    sparse_product::<$k>(likes, v, v, false, serial, &mut scratch.lv);
                    sparse_product::<$k>(likes, &scratch.lv, v, true, serial, &mut scratch.x0v);
                })*
                _ => {
                    likes.times(v, k, &mut scratch.lv);
                    likes.transpose_times_minus_diag(&scratch.lv, v, k, &mut scratch.x0v);
                }
            }
        };
    }
    by_rank!(2 4 8 10 16 20 32 50 64);
}

/// Per row block: `(V_b^T V_b` (k x k, f64), `sum_i v_i . (X0 V)_i`, `sum_i |v_i|^4)`.
fn block_terms(vb: &[f32], xb: &[f32], k: usize) -> (Vec<f64>, f64, f64) {
    let rows = vb.len() / k;
    let v64: Vec<f64> = vb.iter().map(|&x| x as f64).collect();
    let vv = ArrayView2::from_shape((rows, k), &v64[..]).expect("block of whole rows");
    let mut g = vec![0.0f64; k * k];
    {
        let mut gv = ArrayViewMut2::from_shape((k, k), &mut g[..]).expect("k x k");
        general_mat_mul(1.0, &vv.t(), &vv, 0.0, &mut gv);
    }
    let (mut tr, mut quartic) = (0.0f64, 0.0f64);
    for (vi, xi) in v64.chunks_exact(k).zip(xb.chunks_exact(k)) {
        let n2: f64 = vi.iter().map(|&x| x * x).sum();
        quartic += n2 * n2;
        tr += vi.iter().zip(xi).map(|(&a, &b)| a * b as f64).sum::<f64>();
    }
    (g, tr, quartic)
}

/// Writes a row block of the gradient: `4 (V G - X0 V) - 4 diag(|v_i|^2) V` (the last term when
/// `mask_diagonal`), `V_b G` by one product.
fn block_grad(gb: &mut [f32], vb: &[f32], xb: &[f32], gram: &[f32], k: usize, mask_diagonal: bool) {
    let rows = vb.len() / k;
    {
        let vv = ArrayView2::from_shape((rows, k), vb).expect("block of whole rows");
        let gm = ArrayView2::from_shape((k, k), gram).expect("k x k");
        let mut out = ArrayViewMut2::from_shape((rows, k), &mut gb[..]).expect("block of whole rows");
        general_mat_mul(1.0, &vv, &gm, 0.0, &mut out);
    }
    for ((gi, vi), xi) in gb.chunks_exact_mut(k).zip(vb.chunks_exact(k)).zip(xb.chunks_exact(k)) {
        let n2: f32 = if mask_diagonal { vi.iter().map(|x| x * x).sum() } else { 0.0 };
        for ((g, &v), &x) in gi.iter_mut().zip(vi).zip(xi) {
            *g = 4.0 * (*g - x) - 4.0 * n2 * v;
        }
    }
}

impl CoocProblem {
    /// Precomputes `||X0||_F^2`.
    pub fn new(likes: LikeMatrix) -> Self {
        let x0_frobenius_sq = likes.x0_frobenius_sq();
        Self { likes, x0_frobenius_sq }
    }

    /// The like matrix.
    pub fn likes(&self) -> &LikeMatrix {
        &self.likes
    }

    /// `||X0||_F^2`, the cost of `V = 0`.
    pub fn x0_frobenius_sq(&self) -> f64 {
        self.x0_frobenius_sq
    }

    /// Number of movies M.
    pub fn n_movies(&self) -> usize {
        self.likes.n_movies()
    }

    /// Both costs of `v` (M x k, row-major); with `grad`, WRITES the gradient of the masked
    /// (`mask_diagonal`) or unmasked cost into it.
    pub fn cost_and_grad(
        &self,
        v: &[f32],
        k: usize,
        mask_diagonal: bool,
        scratch: &mut CoocScratch,
        grad: Option<&mut [f32]>,
    ) -> CostParts {
        let (u, m) = (self.likes.n_users(), self.likes.n_movies());
        assert_eq!(v.len(), m * k, "factor matrix must be M x k");
        scratch.lv.resize(u * k, 0.0);
        scratch.x0v.resize(m * k, 0.0);
        let serial = rayon::current_num_threads() == 1;
        x0_times(&self.likes, v, k, serial, scratch);
        let x0v = &scratch.x0v;
        let rows = BLOCK * k;
        let partials: Vec<(Vec<f64>, f64, f64)> = if serial {
            v.chunks(rows).zip(x0v.chunks(rows)).map(|(vb, xb)| block_terms(vb, xb, k)).collect()
        } else {
            v.par_chunks(rows).zip(x0v.par_chunks(rows)).map(|(vb, xb)| block_terms(vb, xb, k)).collect()
        };
        let mut gram = vec![0.0f64; k * k];
        let (mut tr, mut quartic) = (0.0f64, 0.0f64);
        for (g, t, q) in &partials {
            gram.iter_mut().zip(g).for_each(|(a, b)| *a += b);
            tr += t;
            quartic += q;
        }
        let gram_frobenius_sq: f64 = gram.iter().map(|x| x * x).sum();
        let unmasked = gram_frobenius_sq - 2.0 * tr + self.x0_frobenius_sq;
        let parts = CostParts { masked: unmasked - quartic, unmasked };
        if let Some(grad) = grad {
            let g32: Vec<f32> = gram.iter().map(|&x| x as f32).collect();
            if serial {
                grad.chunks_mut(rows)
                    .zip(v.chunks(rows))
                    .zip(x0v.chunks(rows))
                    .for_each(|((gb, vb), xb)| block_grad(gb, vb, xb, &g32, k, mask_diagonal));
            } else {
                grad.par_chunks_mut(rows)
                    .zip(v.par_chunks(rows))
                    .zip(x0v.par_chunks(rows))
                    .for_each(|((gb, vb), xb)| block_grad(gb, vb, xb, &g32, k, mask_diagonal));
            }
        }
        parts
    }
}

/// The costs by the dense definition (tests and the dense benchmark): `O(M^2 k)`.
pub fn dense_costs(x0: &[f32], v: &[f32], m: usize, k: usize) -> CostParts {
    let (mut masked, mut diag) = (0.0f64, 0.0f64);
    for i in 0..m {
        for j in 0..m {
            let d: f64 =
                (0..k).map(|c| v[i * k + c] as f64 * v[j * k + c] as f64).sum::<f64>() - x0[i * m + j] as f64;
            if i == j {
                diag += d * d;
            } else {
                masked += d * d;
            }
        }
    }
    CostParts { masked, unmasked: masked + diag }
}

/// The gradient by the dense formula `4 (V V^T - X0) V - 4 diag(|v_i|^2) V` (masked) or without
/// the last term (unmasked), forming the M x M residual: the baseline P1's step is compared to.
pub fn dense_grad(
    x0: &[f32],
    v: &[f32],
    m: usize,
    k: usize,
    mask_diagonal: bool,
    residual: &mut [f32],
    grad: &mut [f32],
) {
    residual.par_chunks_mut(m).enumerate().for_each(|(i, row)| {
        let vi = &v[i * k..(i + 1) * k];
        for (j, r) in row.iter_mut().enumerate() {
            let vj = &v[j * k..(j + 1) * k];
            *r = vi.iter().zip(vj).map(|(a, b)| a * b).sum::<f32>() - x0[i * m + j];
        }
        if mask_diagonal {
            row[i] = 0.0;
        }
    });
    grad.par_chunks_mut(k).enumerate().for_each(|(i, gi)| {
        gi.iter_mut().for_each(|g| *g = 0.0);
        let row = &residual[i * m..(i + 1) * m];
        for (j, &r) in row.iter().enumerate() {
            let vj = &v[j * k..(j + 1) * k];
            gi.iter_mut().zip(vj).for_each(|(g, &x)| *g += 4.0 * r * x);
        }
    });
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// SplitMix64 in [0, 1).
    fn unit(state: &mut u64) -> f64 {
        *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = *state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }

    /// 600 users x 700 movies (three row blocks of the sparse products), popular low indices.
    fn problem(seed: u64) -> LikeMatrix {
        let mut s = seed;
        let mut pairs = Vec::new();
        for u in 0..600u32 {
            for _ in 0..12 {
                let x = unit(&mut s);
                pairs.push((u, (700.0 * x * x) as u32));
            }
        }
        pairs.sort_unstable();
        pairs.dedup();
        LikeMatrix::from_pairs(600, 700, &pairs).unwrap()
    }

    #[test]
    fn unrolled_sparse_products_equal_the_like_matrix_ones_bitwise() {
        let likes = problem(3);
        for k in [4usize, 20] {
            let mut s = 11;
            let v: Vec<f32> = (0..700 * k).map(|_| (2.0 * unit(&mut s) - 1.0) as f32).collect();
            let (mut lv, mut x0v) = (vec![0.0; 600 * k], vec![0.0; 700 * k]);
            likes.times(&v, k, &mut lv);
            likes.transpose_times_minus_diag(&lv, &v, k, &mut x0v);
            for serial in [true, false] {
                let mut scratch = CoocScratch { lv: vec![0.0; 600 * k], x0v: vec![0.0; 700 * k] };
                x0_times(&likes, &v, k, serial, &mut scratch);
                assert!(scratch.lv.iter().zip(&lv).all(|(a, b)| a.to_bits() == b.to_bits()), "L V, k {k}");
                assert!(scratch.x0v.iter().zip(&x0v).all(|(a, b)| a.to_bits() == b.to_bits()), "X0 V, k {k}");
            }
        }
    }

    /// The product-based cost and gradient against the dense M x M formulas at k = 20.
    #[test]
    fn products_match_the_dense_formulas_at_rank_20() {
        let likes = problem(5);
        let (m, k) = (700, 20);
        let x0 = likes.dense_x0();
        let problem = CoocProblem::new(likes);
        let mut s = 17;
        let v: Vec<f32> = (0..m * k).map(|_| (unit(&mut s) - 0.5) as f32).collect();
        for mask in [true, false] {
            let mut grad = vec![0.0f32; m * k];
            let parts = problem.cost_and_grad(&v, k, mask, &mut CoocScratch::default(), Some(&mut grad));
            let dense = dense_costs(&x0, &v, m, k);
            for (got, want) in [(parts.masked, dense.masked), (parts.unmasked, dense.unmasked)] {
                assert!((got - want).abs() <= 1e-5 * dense.unmasked, "{parts:?} vs {dense:?}");
            }
            let (mut residual, mut want) = (vec![0.0f32; m * m], vec![0.0f32; m * k]);
            dense_grad(&x0, &v, m, k, mask, &mut residual, &mut want);
            let big = want.iter().fold(0.0f32, |a, b| a.max(b.abs()));
            for (a, b) in grad.iter().zip(&want) {
                assert!((a - b).abs() <= 1e-4 * big, "{a} vs {b} (largest {big})");
            }
        }
    }
}
