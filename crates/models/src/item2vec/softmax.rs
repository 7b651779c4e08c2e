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

/// `e^x` for f32 in branch-free arithmetic that vectorises: `x = n ln2 + r` with
/// `n = round(x / ln2)` (magic-number rounding), `r` by two-step Cody-Waite reduction, `e^r` by
/// Cephes' degree-6 polynomial on `|r| <= ln2/2`, and `2^n` written into the exponent bits.
/// Relative error below 3e-7 on `[-87, 88]` (tested against `f32::exp`); inputs are clamped to
/// that range (`e^-87 ~ 1.6e-38`, so a softmax over `x - max` loses nothing that matters).
#[inline(always)]
pub fn exp_f32(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const ROUND: f32 = 12_582_912.0; // 1.5 * 2^23
    const C1: f32 = 0.693_359_4;
    const C2: f32 = -2.121_944_4e-4;
    let x = x.clamp(-87.0, 88.0);
    let t = x * LOG2E + ROUND;
    let n = t - ROUND;
    let r = x - n * C1 - n * C2;
    let mut p = 1.987_569_1e-4f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let e = p * r * r + r + 1.0;
    // bits(t) = bits(ROUND) + n for |n| < 2^22; 2^n has exponent field n + 127.
    let two_n = f32::from_bits(t.to_bits().wrapping_sub(ROUND.to_bits()).wrapping_add(127) << 23);
    e * two_n
}

/// Sum with eight independent accumulators (vectorises; the order is fixed, so deterministic).
#[inline]
pub fn sum_f32(x: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let mut chunks = x.chunks_exact(8);
    for c in &mut chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a += v;
        }
    }
    let tail: f32 = chunks.remainder().iter().sum();
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail
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
        // Bias, log-sum-exp, loss and dz (in place of z), one exp per logit:
        // e_j = exp(z_j - m), s = sum_j e_j, lse = m + ln s, softmax_j = e_j / s.
        for (r, &e) in chunk.iter().enumerate() {
            let e = e as usize;
            let z = &mut lane.z[r * v..(r + 1) * v];
            let mut m = f32::NEG_INFINITY;
            for (z, &b) in z.iter_mut().zip(wts.b) {
                *z += b;
                m = m.max(*z);
            }
            let positives: &[u32] = match arch {
                Architecture::Cbow => std::slice::from_ref(&ex.targets()[e]),
                Architecture::Skipgram => ex.context(e),
            };
            let z_positives: f32 = positives.iter().map(|&c| z[c as usize]).sum();
            z.iter_mut().for_each(|z| *z = exp_f32(*z - m));
            let s = sum_f32(z);
            let lse = m + s.ln();
            lane.loss += (positives.len() as f32 * lse - z_positives) as f64;
            if grad {
                let f = positives.len() as f32 * scale / s;
                z.iter_mut().for_each(|z| *z *= f);
                for &c in positives {
                    z[c as usize] -= scale;
                }
                lane.db.iter_mut().zip(z.iter()).for_each(|(d, &g)| *d += g);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_exp_matches_std() {
        let mut worst = 0.0f64;
        let mut x = -87.0f32;
        while x < 88.0 {
            let (a, b) = (exp_f32(x) as f64, (x as f64).exp());
            worst = worst.max((a - b).abs() / b);
            x += 0.001_37;
        }
        assert!(worst < 3e-7, "worst relative error {worst}");
        assert_eq!(exp_f32(0.0), 1.0);
        assert!(exp_f32(-1000.0) > 0.0 && exp_f32(-1000.0) < 1e-37);
    }

    #[test]
    fn blocked_sum() {
        let x: Vec<f32> = (1..=21).map(|i| i as f32).collect();
        assert_eq!(sum_f32(&x), 231.0);
        assert_eq!(sum_f32(&[]), 0.0);
    }
}
