//! Full-softmax forward and backward passes of CBOW and skip-gram over a slice of examples.
//!
//! CBOW, one example with context `C` and target `t`:
//!
//! ```text
//! h = sum_{c in C} E[c]              (mean: h = (1/|C|) sum_c E[c])
//! z = W h + b                        (V logits; W is V x k, b is V)
//! loss = lse(z) - z_t,               lse(z) = m + ln sum_j exp(z_j - m), m = max_j z_j (stable)
//! dloss/dz = softmax(z) - onehot(t)  =: dz
//! dloss/dW = dz h^T,  dloss/db = dz,  dloss/dh = W^T dz,  dloss/dE[c] = dloss/dh  (mean: / |C|)
//! ```
//!
//! The batch loss is the mean over its `N` examples, so every `dz` is scaled by `1/N`.
//!
//! Skip-gram, one example: the target `t` predicts each context token `c in C` through the same
//! logits `z = W E[t] + b`, so
//!
//! ```text
//! loss = sum_{c in C} (lse(z) - z_c),  dz = |C| softmax(z) - sum_{c in C} onehot(c),
//! dloss/dE[t] = W^T dz
//! ```
//!
//! and the mean is over the `N` (target, context token) pairs.
//!
//! Examples are processed in chunks of [`CHUNK`] rows as matrix products: `Z = H W^T`,
//! `dW += dZ^T H`, `dH = dZ W` (ndarray's `general_mat_mul`, into reused scratch buffers).

use ndarray::linalg::general_mat_mul;
use ndarray::{ArrayView2, ArrayViewMut2};

use super::objective::{Lane, Weights};
use super::{Architecture, ContextReduce, Examples};

/// Rows per matrix-product chunk.
pub const CHUNK: usize = 256;

/// Adds the row-wise context reduction (CBOW) or the target's row (skip-gram) of example `e` to
/// `h` (which must be zero on entry).
#[inline]
pub(crate) fn fill_hidden(
    arch: Architecture,
    reduce: ContextReduce,
    wts: &Weights<'_>,
    ex: &Examples,
    e: usize,
    h: &mut [f32],
) {
    let k = wts.k;
    match arch {
        Architecture::Cbow => reduce_context(reduce, wts, ex.context(e), h),
        Architecture::Skipgram => {
            let t = ex.target(e) as usize;
            h.copy_from_slice(&wts.e[t * k..(t + 1) * k]);
        }
    }
}

/// Adds the CBOW reduction of the context rows `ctx` to `h` (zero on entry).
#[inline]
pub(crate) fn reduce_context(reduce: ContextReduce, wts: &Weights<'_>, ctx: &[u32], h: &mut [f32]) {
    let k = wts.k;
    for &c in ctx {
        let row = &wts.e[c as usize * k..(c as usize + 1) * k];
        h.iter_mut().zip(row).for_each(|(h, &x)| *h += x);
    }
    if reduce == ContextReduce::Mean && !ctx.is_empty() {
        let f = 1.0 / ctx.len() as f32;
        h.iter_mut().for_each(|h| *h *= f);
    }
}

/// Numerically stable `ln sum_j exp(z_j)`.
#[inline]
pub fn log_sum_exp(z: &[f32]) -> f32 {
    let m = z.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if !m.is_finite() {
        return m;
    }
    let s: f32 = z.iter().map(|&x| (x - m).exp()).sum();
    m + s.ln()
}

/// Forward (and, with `grad`, backward into the lane's partial gradients) over the examples
/// `ids`, each gradient scaled by `scale` (= 1 / batch count). Adds the loss sum to `lane.loss`.
#[allow(clippy::too_many_arguments)] // one kernel call site; a struct would only rename them
pub(crate) fn softmax_lane(
    arch: Architecture,
    reduce: ContextReduce,
    wts: &Weights<'_>,
    ex: &Examples,
    ids: &[u32],
    scale: f32,
    lane: &mut Lane,
    grad: bool,
) {
    let (v, k) = (wts.v, wts.k);
    lane.ensure(v, k, true);
    let w = ArrayView2::from_shape((v, k), wts.w).expect("out_weight shape checked at construction");
    for chunk in ids.chunks(CHUNK) {
        let n = chunk.len();
        let h_buf = &mut lane.h[..n * k];
        h_buf.iter_mut().for_each(|x| *x = 0.0);
        for (r, &e) in chunk.iter().enumerate() {
            fill_hidden(arch, reduce, wts, ex, e as usize, &mut h_buf[r * k..(r + 1) * k]);
        }
        let h = ArrayView2::from_shape((n, k), &lane.h[..n * k]).expect("chunk shape");
        {
            let mut z = ArrayViewMut2::from_shape((n, v), &mut lane.z[..n * v]).expect("chunk shape");
            general_mat_mul(1.0, &h, &w.t(), 0.0, &mut z);
        }
        // Bias, log-sum-exp, loss and dz (in place of z).
        for (r, &e) in chunk.iter().enumerate() {
            let e = e as usize;
            let z = &mut lane.z[r * v..(r + 1) * v];
            z.iter_mut().zip(wts.b).for_each(|(z, &b)| *z += b);
            let lse = log_sum_exp(z);
            match arch {
                Architecture::Cbow => {
                    let t = ex.target(e) as usize;
                    lane.loss += (lse - z[t]) as f64;
                    if grad {
                        z.iter_mut().for_each(|z| *z = (*z - lse).exp() * scale);
                        z[t] -= scale;
                    }
                }
                Architecture::Skipgram => {
                    let ctx = ex.context(e);
                    for &c in ctx {
                        lane.loss += (lse - z[c as usize]) as f64;
                    }
                    if grad {
                        let m = ctx.len() as f32 * scale;
                        z.iter_mut().for_each(|z| *z = (*z - lse).exp() * m);
                        for &c in ctx {
                            z[c as usize] -= scale;
                        }
                    }
                }
            }
        }
        if !grad {
            continue;
        }
        let dz = ArrayView2::from_shape((n, v), &lane.z[..n * v]).expect("chunk shape");
        {
            let mut dw = ArrayViewMut2::from_shape((v, k), &mut lane.dw[..]).expect("dw shape");
            general_mat_mul(1.0, &dz.t(), &h, 1.0, &mut dw);
        }
        for r in 0..n {
            lane.db.iter_mut().zip(&lane.z[r * v..(r + 1) * v]).for_each(|(d, &g)| *d += g);
        }
        {
            let mut dh = ArrayViewMut2::from_shape((n, k), &mut lane.dh[..n * k]).expect("chunk shape");
            general_mat_mul(1.0, &dz, &w, 0.0, &mut dh);
        }
        for (r, &e) in chunk.iter().enumerate() {
            let e = e as usize;
            let dh = &lane.dh[r * k..(r + 1) * k];
            match arch {
                Architecture::Cbow => {
                    let ctx = ex.context(e);
                    let f = match reduce {
                        ContextReduce::Sum => 1.0,
                        ContextReduce::Mean => 1.0 / ctx.len().max(1) as f32,
                    };
                    for &c in ctx {
                        lane.e_rows.mark(c);
                        let de = &mut lane.de[c as usize * k..(c as usize + 1) * k];
                        de.iter_mut().zip(dh).for_each(|(d, &g)| *d += f * g);
                    }
                }
                Architecture::Skipgram => {
                    let t = ex.target(e);
                    lane.e_rows.mark(t);
                    let de = &mut lane.de[t as usize * k..(t as usize + 1) * k];
                    de.iter_mut().zip(dh).for_each(|(d, &g)| *d += g);
                }
            }
        }
    }
}
