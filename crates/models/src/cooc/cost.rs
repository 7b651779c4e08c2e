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
        self.likes.times(v, k, &mut scratch.lv);
        self.likes.transpose_times_minus_diag(&scratch.lv, v, k, &mut scratch.x0v);
        let x0v = &scratch.x0v;
        // Per block: (G partial, tr partial, quartic partial).
        let partials: Vec<(Vec<f64>, f64, f64)> = v
            .par_chunks(BLOCK * k)
            .zip(x0v.par_chunks(BLOCK * k))
            .map(|(vb, xb)| {
                let mut g = vec![0.0f64; k * k];
                let (mut tr, mut quartic) = (0.0f64, 0.0f64);
                for (vi, xi) in vb.chunks_exact(k).zip(xb.chunks_exact(k)) {
                    for a in 0..k {
                        let va = vi[a] as f64;
                        for b in a..k {
                            g[a * k + b] += va * vi[b] as f64;
                        }
                    }
                    let n2: f64 = vi.iter().map(|&x| (x as f64) * (x as f64)).sum();
                    quartic += n2 * n2;
                    tr += vi.iter().zip(xi).map(|(&a, &b)| a as f64 * b as f64).sum::<f64>();
                }
                (g, tr, quartic)
            })
            .collect();
        let mut gram = vec![0.0f64; k * k];
        let (mut tr, mut quartic) = (0.0f64, 0.0f64);
        for (g, t, q) in &partials {
            gram.iter_mut().zip(g).for_each(|(a, b)| *a += b);
            tr += t;
            quartic += q;
        }
        for a in 0..k {
            for b in 0..a {
                gram[a * k + b] = gram[b * k + a];
            }
        }
        let gram_frobenius_sq: f64 = gram.iter().map(|x| x * x).sum();
        let unmasked = gram_frobenius_sq - 2.0 * tr + self.x0_frobenius_sq;
        let parts = CostParts { masked: unmasked - quartic, unmasked };
        if let Some(grad) = grad {
            let g32: Vec<f32> = gram.iter().map(|&x| x as f32).collect();
            grad.par_chunks_mut(BLOCK * k)
                .zip(v.par_chunks(BLOCK * k))
                .zip(x0v.par_chunks(BLOCK * k))
                .for_each(|((gb, vb), xb)| {
                    for ((gi, vi), xi) in
                        gb.chunks_exact_mut(k).zip(vb.chunks_exact(k)).zip(xb.chunks_exact(k))
                    {
                        let n2: f32 = if mask_diagonal { vi.iter().map(|x| x * x).sum() } else { 0.0 };
                        for c in 0..k {
                            let vg: f32 = (0..k).map(|a| vi[a] * g32[a * k + c]).sum();
                            gi[c] = 4.0 * (vg - xi[c]) - 4.0 * n2 * vi[c];
                        }
                    }
                });
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
