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
//! Two kernels compute the same sums (they differ only in rounding):
//!
//! - **Chunked** ([`SoftmaxKernel::Chunked`]): examples in chunks of [`CHUNK`] rows as matrix
//!   products `Z = H W^T`, `dW += dZ^T H`, `dH = dZ W` (ndarray's `general_mat_mul`, into reused
//!   scratch), `O(n V k)` per batch of `n` examples.
//! - **Projected** ([`SoftmaxKernel::Projected`]), for small vocabularies: since `h` is a
//!   weighted sum of embedding rows, `W h = sum_c f W E[c] = sum_c f P[c]` with the token
//!   projection `P = E W^T` (V x V, one product per batch). Grouping the backward sums by
//!   context token with `S[c] = sum_{e : c in C_e} f_e dz_e` (V x V):
//!
//!   ```text
//!   z_e = b + f_e sum_{c in C_e} P[c]                      (skip-gram: z_e = b + P[t_e], f = 1)
//!   dW  = sum_e dz_e h_e^T = sum_c S[c]^T E[c] = S^T E
//!   dE[c] = sum_{e : c in C_e} f_e W^T dz_e = (S W)[c]
//!   ```
//!
//!   so a batch costs `O(V^2 k)` in three products plus `O(n |C| V)` row additions instead of
//!   `O(n V k)`: at the notebook's V = 50, k = 20 and about 1,800 examples a batch, ~10x fewer
//!   operations. [`SoftmaxKernel::Auto`] picks it when that count is smaller
//!   ([`projected_pays`]).

use ndarray::linalg::general_mat_mul;
use ndarray::{ArrayView2, ArrayViewMut2};
use reelvec_metrics::blas;

pub use super::lane::CHUNK;
pub(crate) use super::lane::PROJECTED_BLOCK;
use super::lane::{Lane, RowMarks, Weights};
use super::{Architecture, ContextReduce, Examples};

/// Largest vocabulary the projected kernel takes (its V x V buffers, one per lane, stay <= 4 MiB).
pub const MAX_PROJECTED_VOCAB: usize = 1024;

/// Which full-softmax kernel a pass uses (same sums, different grouping; see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SoftmaxKernel {
    /// The projected kernel when [`projected_pays`], else the chunked one.
    #[default]
    Auto,
    /// Matrix products per chunk of examples, `O(n V k)`.
    Chunked,
    /// Token projection `P = E W^T`, `O(V^2 k + n |C| V)`; vocabularies up to
    /// [`MAX_PROJECTED_VOCAB`] (larger ones fall back to the chunked kernel).
    Projected,
}

impl SoftmaxKernel {
    /// Whether a pass over `examples` examples holding `ctx` context tokens in all runs
    /// projected (`lanes`: as in [`projected_pays`]).
    pub fn use_projected(
        self,
        v: usize,
        k: usize,
        examples: usize,
        ctx: usize,
        lanes: Option<usize>,
    ) -> bool {
        match self {
            SoftmaxKernel::Auto => projected_pays(v, k, examples, ctx, lanes),
            SoftmaxKernel::Chunked => false,
            SoftmaxKernel::Projected => v <= MAX_PROJECTED_VOCAB,
        }
    }
}

/// True when the projected kernel needs fewer multiply-adds than the chunked one for a pass of
/// `examples` CBOW examples with `context_tokens` context tokens in all (skip-gram: pass the
/// number of examples, each adds one projected row); `lanes`: `None` for a loss-only
/// pass, `Some(lanes)` for a gradient pass split into `lanes` lanes. Chunked: `n V k` products
/// forward, twice that backward. Projected: `V^2 k` for `P` (twice more backward for `S^T E`
/// and `S W`, once per batch) plus one V-row addition per context token forward (and one more
/// backward into `S`), and backward the sum of the lanes' `S` (at most `(lanes - 1) V^2`
/// additions).
pub fn projected_pays(
    v: usize,
    k: usize,
    examples: usize,
    context_tokens: usize,
    lanes: Option<usize>,
) -> bool {
    if v > MAX_PROJECTED_VOCAB || examples == 0 {
        return false;
    }
    let grad = lanes.is_some();
    let passes = if grad { 3 } else { 1 };
    let chunked = passes * examples * v * k;
    let lane_sums = lanes.map_or(0, |lanes| lanes.saturating_sub(1) * v * v);
    let projected = passes * v * v * k + if grad { 2 } else { 1 } * context_tokens * v + lane_sums;
    projected < chunked
}

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
    let x = x.clamp(EXP_MIN, EXP_MAX);
    let t = x * std::f32::consts::LOG2_E + EXP_ROUND;
    let n = t - EXP_ROUND;
    let r = x - n * EXP_LN2_HI - n * EXP_LN2_LO;
    let mut p = EXP_POLY_LEAD;
    for c in EXP_POLY {
        p = p * r + c;
    }
    let e = p * r * r + r + 1.0;
    // bits(t) = bits(EXP_ROUND) + n for |n| < 2^22; 2^n has exponent field n + 127.
    let two_n = f32::from_bits(t.to_bits().wrapping_sub(EXP_ROUND.to_bits()).wrapping_add(127) << 23);
    e * two_n
}

/// `e^x` as [`exp_f32`] computes it, each multiply-add of the argument reduction and the
/// polynomial fused into one rounding (`mul_add`): the exponential of the pair tables
/// ([`PairTables`]), whose builds (`simd::exp8_fused`, `simd512::exp16`) take 15 vector
/// operations an element where the unfused take 25. P0 top-1000 table fill at V = 1,000:
/// 0.173 against 0.322 ms of exponentials a table in the AVX-512 build (Intel Xeon, into L1).
/// Relative error below 3e-7 on `[-87, 88]` (test `fused_exp_matches_std`), the same clamp.
/// Off a CPU with FMA the portable build's `mul_add` is libm's `fmaf`: the same bits, slower.
#[inline(always)]
pub fn exp_fused_f32(x: f32) -> f32 {
    let x = x.clamp(EXP_MIN, EXP_MAX);
    let t = x.mul_add(std::f32::consts::LOG2_E, EXP_ROUND);
    let n = t - EXP_ROUND;
    let r = (-n).mul_add(EXP_LN2_LO, (-n).mul_add(EXP_LN2_HI, x));
    let mut p = EXP_POLY_LEAD;
    for c in EXP_POLY {
        p = p.mul_add(r, c);
    }
    let e = (p * r).mul_add(r, r) + 1.0;
    // bits(t) = bits(EXP_ROUND) + n for |n| < 2^22; 2^n has exponent field n + 127.
    let two_n = f32::from_bits(t.to_bits().wrapping_sub(EXP_ROUND.to_bits()).wrapping_add(127) << 23);
    e * two_n
}

/// [`exp_f32`]'s constants, which its SIMD builds (`simd::exp8`) and [`exp_fused_f32`]'s
/// (`simd::exp8_fused`, `simd512::exp16`) share.
/// The clamp of the argument.
pub(crate) const EXP_MIN: f32 = -87.0;
pub(crate) const EXP_MAX: f32 = 88.0;
/// 1.5 * 2^23: adding it rounds to an integer.
pub(crate) const EXP_ROUND: f32 = 12_582_912.0;
/// ln 2 split in two (Cody-Waite).
pub(crate) const EXP_LN2_HI: f32 = 0.693_359_4;
pub(crate) const EXP_LN2_LO: f32 = -2.121_944_4e-4;
/// The polynomial's leading coefficient, then the others by Horner's rule.
pub(crate) const EXP_POLY_LEAD: f32 = 1.987_569_1e-4;
pub(crate) const EXP_POLY: [f32; 5] = [1.398_199_9e-3, 8.333_452e-3, 4.166_579_6e-2, 1.666_666_5e-1, 0.5];

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

/// `((a0 + a4) + (a1 + a5)) + ((a2 + a6) + (a3 + a7))` plus the in-order sum of `tail`: how
/// [`sum_f32`] combines its accumulators.
#[inline(always)]
pub(crate) fn sum_of(acc: [f32; 8], tail: &[f32]) -> f32 {
    let tail: f32 = tail.iter().sum();
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail
}

/// `x_j <- exp(x_j - m)` and the sum of the results with [`sum_f32`]'s accumulators (bitwise
/// the same as the two passes).
#[inline(always)]
fn exp_sum_in_place(x: &mut [f32], m: f32) -> f32 {
    x.iter_mut().for_each(|v| *v = exp_f32(*v - m));
    let mut acc = [0.0f32; 8];
    let mut chunks = x.chunks_exact(8);
    for c in &mut chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a += v;
        }
    }
    sum_of(acc, chunks.remainder())
}

/// Largest of eight partial maxima.
#[inline(always)]
pub(crate) fn max_of(acc: [f32; 8]) -> f32 {
    (acc[0].max(acc[4]).max(acc[1].max(acc[5]))).max(acc[2].max(acc[6]).max(acc[3].max(acc[7])))
}

/// Largest value (NaNs ignored, as `f32::max` does), eight lanes at a time.
#[inline(always)]
fn max_f32(x: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; 8];
    let mut chunks = x.chunks_exact(8);
    for c in &mut chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a = a.max(v);
        }
    }
    chunks.remainder().iter().fold(max_of(acc), |m, &v| m.max(v))
}

/// The row helpers in their portable form (`AVX2 = false`) or their AVX2 build from
/// [`super::simd`] (`AVX2 = true`, only inside `#[target_feature(enable = "avx2")]` callers).
/// Both round identically.
pub(crate) struct Row<const AVX2: bool>;

impl<const AVX2: bool> Row<AVX2> {
    #[inline(always)]
    fn exp_sum(x: &mut [f32], m: f32) -> f32 {
        #[cfg(target_arch = "x86_64")]
        if AVX2 {
            // SAFETY: `AVX2 = true` is only instantiated inside AVX2 target-feature functions.
            return unsafe { super::simd::exp_sum(x, m) };
        }
        exp_sum_in_place(x, m)
    }

    /// `x <- exp_fused_f32(x - m)` (the pair tables' exponentials), in the AVX2 build with
    /// `simd::exp_fused_shifted` (`AVX2 = true` also means FMA: see [`Isa::supported`]).
    #[inline(always)]
    fn exp_fused_shifted(x: &mut [f32], m: f32) {
        #[cfg(target_arch = "x86_64")]
        if AVX2 {
            // SAFETY: `AVX2 = true` is only instantiated inside AVX2 target-feature functions,
            // and the pair tables' AVX2 build runs only where `Isa::supported` found FMA too.
            return unsafe { super::simd::exp_fused_shifted(x, m) };
        }
        x.iter_mut().for_each(|v| *v = exp_fused_f32(*v - m));
    }

    #[inline(always)]
    fn max(x: &[f32]) -> f32 {
        #[cfg(target_arch = "x86_64")]
        if AVX2 {
            // SAFETY: as in `exp_sum`.
            return unsafe { super::simd::max(x) };
        }
        max_f32(x)
    }

    #[inline(always)]
    fn scale(x: &mut [f32], g: f32) {
        #[cfg(target_arch = "x86_64")]
        if AVX2 {
            // SAFETY: as in `exp_sum`.
            return unsafe { super::simd::scale(x, g) };
        }
        x.iter_mut().for_each(|x| *x *= g);
    }

    /// `z = f (a + c) + b` and its maximum.
    #[inline(always)]
    fn logits2(a: &[f32], c: &[f32], b: &[f32], f: f32, z: &mut [f32]) -> f32 {
        #[cfg(target_arch = "x86_64")]
        if AVX2 {
            // SAFETY: as in `exp_sum`.
            return unsafe { super::simd::logits2(a, c, b, f, z) };
        }
        let mut acc = [f32::NEG_INFINITY; 8];
        let mut zs = z.chunks_exact_mut(8);
        let (mut as_, mut cs, mut bs) = (a.chunks_exact(8), c.chunks_exact(8), b.chunks_exact(8));
        for (((zc, ac), cc), bc) in (&mut zs).zip(&mut as_).zip(&mut cs).zip(&mut bs) {
            for ((((z, &a), &c), &b), m) in zc.iter_mut().zip(ac).zip(cc).zip(bc).zip(acc.iter_mut()) {
                *z = f * (a + c) + b;
                *m = m.max(*z);
            }
        }
        let mut m = max_of(acc);
        let rest =
            zs.into_remainder().iter_mut().zip(as_.remainder()).zip(cs.remainder()).zip(bs.remainder());
        for (((z, &a), &c), &b) in rest {
            *z = f * (a + c) + b;
            m = m.max(*z);
        }
        m
    }

    /// With `d = g z`: `db += d`, `sa += f d`, `sc += f d` (`d` as [`scale`](Self::scale)
    /// would leave it in `z`, which stays unchanged).
    #[inline(always)]
    fn accumulate2(z: &[f32], g: f32, db: &mut [f32], sa: &mut [f32], sc: &mut [f32], f: f32) {
        #[cfg(target_arch = "x86_64")]
        if AVX2 {
            // SAFETY: as in `exp_sum`.
            return unsafe { super::simd::accumulate2(z, g, db, sa, sc, f) };
        }
        for (((&z, db), sa), sc) in z.iter().zip(db.iter_mut()).zip(sa).zip(sc) {
            let d = z * g;
            *db += d;
            *sa += f * d;
            *sc += f * d;
        }
    }

    /// The loss of one row of logits `z` (bias included, maximum `m`) against its `positives`
    /// (CBOW: the target; skip-gram: every context token) and, with `grad`, `dz` in place of
    /// `z` scaled by `scale`. One exp per logit: `e_j = exp(z_j - m)`, `s = sum_j e_j`,
    /// `lse = m + ln s`, `loss = |P| lse - sum_{p in P} z_p`,
    /// `dz = scale (|P| e / s - sum_{p in P} onehot(p))`.
    #[inline(always)]
    fn softmax(z: &mut [f32], m: f32, positives: &[u32], scale: f32, grad: bool) -> f64 {
        let z_positives = positives_sum(z, positives);
        let s = Self::exp_sum(z, m);
        Self::finish(z, m + s.ln(), s, z_positives, positives, scale, grad)
    }

    /// The end of [`softmax`](Self::softmax) once `z` holds `e_j = exp(z_j - m)` summing to `s`,
    /// with `lse = m + ln s` (or the same log-sum-exp by another grouping).
    #[inline(always)]
    fn finish(
        z: &mut [f32],
        lse: f32,
        s: f32,
        z_positives: f32,
        positives: &[u32],
        scale: f32,
        grad: bool,
    ) -> f64 {
        if grad {
            Self::scale(z, positives.len() as f32 * scale / s);
            for &c in positives {
                z[c as usize] -= scale;
            }
        }
        (positives.len() as f32 * lse - z_positives) as f64
    }

    /// `sum_j x_j y_j`: 32 accumulators over 32-element chunks folded into eight as
    /// `(acc_l + acc_{8+l}) + (acc_{16+l} + acc_{24+l})`, the remaining 8-element chunks added
    /// to those, then [`sum_of`]'s reduction with the tail. Symmetric in `x` and `y`, bitwise.
    #[inline(always)]
    pub(crate) fn pair_sum(x: &[f32], y: &[f32]) -> f32 {
        #[cfg(target_arch = "x86_64")]
        if AVX2 {
            // SAFETY: `AVX2 = true` is only instantiated inside AVX2 target-feature functions.
            return unsafe { super::simd::pair_sum(x, y) };
        }
        let v = x.len();
        let (body32, body8) = (v - v % 32, v - v % 8);
        let (x, y) = (&x[..v], &y[..v]);
        let mut wide = [0.0f32; 32];
        for (xc, yc) in x[..body32].chunks_exact(32).zip(y[..body32].chunks_exact(32)) {
            for ((a, &x), &y) in wide.iter_mut().zip(xc).zip(yc) {
                *a += x * y;
            }
        }
        let mut acc = [0.0f32; 8];
        for (l, a) in acc.iter_mut().enumerate() {
            *a = (wide[l] + wide[8 + l]) + (wide[16 + l] + wide[24 + l]);
        }
        for (xc, yc) in x[body32..body8].chunks_exact(8).zip(y[body32..body8].chunks_exact(8)) {
            for ((a, &x), &y) in acc.iter_mut().zip(xc).zip(yc) {
                *a += x * y;
            }
        }
        let mut tail = [0.0f32; 8];
        for (t, j) in tail.iter_mut().zip(body8..v) {
            *t = x[j] * y[j];
        }
        sum_of(acc, &tail[..v - body8])
    }

    /// `y += g x`.
    #[inline(always)]
    pub(crate) fn axpy(g: f32, x: &[f32], y: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        if AVX2 {
            // SAFETY: as in `pair_sum`.
            return unsafe { super::simd::axpy(g, x, y) };
        }
        y.iter_mut().zip(x).for_each(|(y, &x)| *y += g * x);
    }

    /// With `t_j = x_j acc_j`: `s += f t`, `db += t`.
    #[inline(always)]
    pub(crate) fn row_out(x: &[f32], acc: &[f32], f: f32, s: &mut [f32], db: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        if AVX2 {
            // SAFETY: as in `pair_sum`.
            return unsafe { super::simd::row_out(x, acc, f, s, db) };
        }
        for (((&x, &a), s), db) in x.iter().zip(acc).zip(s.iter_mut()).zip(db.iter_mut()) {
            let t = x * a;
            *s += f * t;
            *db += t;
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

/// Numerically stable `ln sum_j exp(z_j)`: the maximum `m` (NaNs ignored, as `f32::max`
/// does), then `m + ln sum_j exp(z_j - m)` with [`exp_f32`] and [`sum_f32`]'s eight
/// accumulators (vectorised; the kernels' exponential).
#[inline]
pub fn log_sum_exp(z: &[f32]) -> f32 {
    let m = max_f32(z);
    if !m.is_finite() {
        return m;
    }
    let mut acc = [0.0f32; 8];
    let mut chunks = z.chunks_exact(8);
    for c in &mut chunks {
        for (a, &x) in acc.iter_mut().zip(c) {
            *a += exp_f32(x - m);
        }
    }
    let mut tail = [0.0f32; 8];
    let rest = chunks.remainder();
    for (t, &x) in tail.iter_mut().zip(rest) {
        *t = exp_f32(x - m);
    }
    m + sum_of(acc, &tail[..rest.len()]).ln()
}

/// `sum_{p in positives} z_p`.
#[inline(always)]
fn positives_sum(z: &[f32], positives: &[u32]) -> f32 {
    positives.iter().map(|&c| z[c as usize]).sum()
}

/// The tokens whose log-probability example `e` scores: its target (CBOW) or its context
/// (skip-gram).
#[inline(always)]
pub(crate) fn positives_of(arch: Architecture, ex: &Examples, e: usize) -> &[u32] {
    match arch {
        Architecture::Cbow => std::slice::from_ref(&ex.targets()[e]),
        Architecture::Skipgram => ex.context(e),
    }
}

/// The instruction set the two-token row pass ([`super::pair_rows`]) runs on; every build
/// gives the same bits as [`Isa::Portable`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Isa {
    /// Plain Rust (the reference).
    Portable,
    /// The same source compiled for AVX2 ([`avx2`]), the table fill's exponentials with FMA
    /// (CPUs with both).
    Avx2,
    /// The register-tiled AVX-512 kernels of [`super::simd512`].
    Avx512,
}

impl Isa {
    /// The widest build this CPU runs, or [`Isa::Portable`] when `simd` is off.
    pub(crate) fn best(simd: bool) -> Self {
        match simd {
            true => Self::supported().pop().unwrap_or(Isa::Portable),
            false => Isa::Portable,
        }
    }

    /// Every build this CPU runs, narrowest first.
    pub(crate) fn supported() -> Vec<Self> {
        let mut isas = vec![Isa::Portable];
        #[cfg(target_arch = "x86_64")]
        {
            // The AVX2 build's table fill fuses multiply-adds (`exp_fused_f32`): FMA too.
            if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
                isas.push(Isa::Avx2);
                if std::arch::is_x86_feature_detected!("avx512f") {
                    isas.push(Isa::Avx512);
                }
            }
        }
        isas
    }
}

/// Whether the AVX2 builds of the lane kernels may run: `simd` asked for and the CPU has it.
/// They use [`super::simd`]'s helpers and otherwise the same source compiled for wider
/// registers; without FMA contraction (Rust never fuses a multiply and an add by itself) they
/// round exactly as the portable build does.
#[inline]
pub(crate) fn avx2(simd: bool) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        simd && std::arch::is_x86_feature_detected!("avx2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = simd;
        false
    }
}

/// The chunked kernel: forward (and, with `grad`, backward into the lane's partial gradients)
/// over the examples `ids`, each gradient scaled by `scale` (= 1 / batch count). Adds the loss
/// sum to `lane.loss`. With `simd`, the AVX2 build when the CPU has it.
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
    simd: bool,
) {
    lane.ensure(wts.v, wts.k, true);
    #[cfg(target_arch = "x86_64")]
    if avx2(simd) {
        // SAFETY: the CPU supports AVX2 (`avx2` checked it); nothing else is required.
        unsafe { chunked_examples_avx2(arch, reduce, wts, ex, ids, scale, lane, grad) };
        return;
    }
    let _ = simd;
    chunked_examples::<false>(arch, reduce, wts, ex, ids, scale, lane, grad);
}

/// [`chunked_examples`] compiled for AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[allow(clippy::too_many_arguments)]
unsafe fn chunked_examples_avx2(
    arch: Architecture,
    reduce: ContextReduce,
    wts: &Weights<'_>,
    ex: &Examples,
    ids: &[u32],
    scale: f32,
    lane: &mut Lane,
    grad: bool,
) {
    chunked_examples::<true>(arch, reduce, wts, ex, ids, scale, lane, grad);
}

/// The body of [`softmax_lane`] (buffers already sized).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn chunked_examples<const AVX2: bool>(
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
        for (r, &e) in chunk.iter().enumerate() {
            let z = &mut lane.z[r * v..(r + 1) * v];
            let mut m = f32::NEG_INFINITY;
            for (z, &b) in z.iter_mut().zip(wts.b) {
                *z += b;
                m = m.max(*z);
            }
            lane.loss += Row::<AVX2>::softmax(z, m, positives_of(arch, ex, e as usize), scale, grad);
            if grad {
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

/// From this vocabulary on, the projected kernel's `V x V x k` products go through OpenBLAS
/// ([`blas::gemm`]: AVX-512 kernels where the CPU has them, thread-count invariant); below it
/// matrixmultiply's (ndarray's `general_mat_mul`) is faster (its call costs less; measured at
/// P0's V = 50 and 200 on the Intel Xeon).
const BLAS_FROM_VOCAB: usize = 512;

/// The projected kernel's product `c = alpha a b + beta c` at vocabulary `v`.
fn product(
    v: usize,
    alpha: f32,
    a: &ArrayView2<'_, f32>,
    b: &ArrayView2<'_, f32>,
    beta: f32,
    c: &mut ArrayViewMut2<'_, f32>,
) {
    if v >= BLAS_FROM_VOCAB {
        blas::gemm(alpha, a, b, beta, c);
    } else {
        general_mat_mul(alpha, a, b, beta, c);
    }
}

/// The token projection `P = E W^T` (V x V, row-major) into `proj`.
pub(crate) fn project(wts: &Weights<'_>, proj: &mut Vec<f32>) {
    let (v, k) = (wts.v, wts.k);
    proj.resize(v * v, 0.0);
    let e = ArrayView2::from_shape((v, k), wts.e).expect("embedding shape checked at construction");
    let w = ArrayView2::from_shape((v, k), wts.w).expect("out_weight shape checked at construction");
    let mut p = ArrayViewMut2::from_shape((v, v), &mut proj[..]).expect("projection shape");
    product(v, 1.0, &e, &w.t(), 0.0, &mut p);
}

/// The rows of `P` example `e` adds and their weight `f`: its context (CBOW, `f = 1` or
/// `1/|C|`) or its target (skip-gram).
#[inline(always)]
pub(crate) fn hidden_tokens(
    arch: Architecture,
    reduce: ContextReduce,
    ex: &Examples,
    e: usize,
) -> (&[u32], f32) {
    match arch {
        Architecture::Cbow => {
            let ctx = ex.context(e);
            let f = match reduce {
                ContextReduce::Sum => 1.0,
                ContextReduce::Mean => 1.0 / ctx.len().max(1) as f32,
            };
            (ctx, f)
        }
        Architecture::Skipgram => (std::slice::from_ref(&ex.targets()[e]), 1.0),
    }
}

/// Row `c` of the V x V projection.
#[inline(always)]
fn proj_row(proj: &[f32], c: u32, v: usize) -> &[f32] {
    &proj[c as usize * v..(c as usize + 1) * v]
}

/// Writes the logits `z = f sum_{c in rows} P[c] + b` (the rows summed first, as `h` sums the
/// embedding rows) and returns their maximum. Two rows (the notebook's w = 1) take one fused
/// pass.
#[inline(always)]
fn projected_logits<const AVX2: bool>(rows: &[u32], f: f32, proj: &[f32], b: &[f32], z: &mut [f32]) -> f32 {
    let v = z.len();
    if let [a, c] = *rows {
        return Row::<AVX2>::logits2(proj_row(proj, a, v), proj_row(proj, c, v), b, f, z);
    }
    z.iter_mut().for_each(|z| *z = 0.0);
    for &c in rows {
        z.iter_mut().zip(proj_row(proj, c, v)).for_each(|(z, &p)| *z += p);
    }
    z.iter_mut().zip(b).for_each(|(z, &b)| *z = f * *z + b);
    Row::<AVX2>::max(z)
}

/// `db += dz` and `S[c] += f dz` for every `c` in `rows` (marked).
#[inline(always)]
fn accumulate_projected(
    rows: &[u32],
    f: f32,
    dz: &[f32],
    lane_db: &mut [f32],
    s: &mut [f32],
    marks: &mut RowMarks,
) {
    let v = dz.len();
    lane_db.iter_mut().zip(dz).for_each(|(db, &d)| *db += d);
    for &c in rows {
        let sc = &mut s[c as usize * v..(c as usize + 1) * v];
        if marks.mark(c) {
            sc.fill(0.0);
        }
        sc.iter_mut().zip(dz).for_each(|(s, &d)| *s += f * d);
    }
}

/// The gradient end of a CBOW example with two distinct context rows `a`, `c` and target `t`
/// in one pass over `e` (its exponentials): `dz = g e - scale onehot(t)` (what
/// [`Row::finish`] leaves in `z`, computed in the same order), `db += dz`,
/// `S[a] += f dz`, `S[c] += f dz`, without writing `dz` back. The target's column is redone
/// after the pass from the saved sums, so every element gets exactly the two-pass value.
#[inline(always)]
#[allow(clippy::too_many_arguments)] // the row's coordinates and the lane's three sums
fn accumulate_softmax2<const AVX2: bool>(
    e: &[f32],
    g: f32,
    scale: f32,
    (a, c, t): (u32, u32, u32),
    f: f32,
    db: &mut [f32],
    s: &mut [f32],
    marks: &mut RowMarks,
) {
    let (v, t) = (e.len(), t as usize);
    let (new_a, new_c) = (marks.mark(a), marks.mark(c));
    let (sa, sc) = crate::mf::two_rows_mut(s, a as usize, c as usize, v);
    if new_a {
        sa.fill(0.0);
    }
    if new_c {
        sc.fill(0.0);
    }
    let saved = (db[t], sa[t], sc[t]);
    Row::<AVX2>::accumulate2(e, g, db, sa, sc, f);
    let d = e[t] * g - scale;
    db[t] = saved.0 + d;
    sa[t] = saved.1 + f * d;
    sc[t] = saved.2 + f * d;
}

/// Per-token exponentials for two-token CBOW contexts (the notebook's w = 1): with
/// `z = f P[a] + (f P[c] + b)` and the bias split evenly between the two tokens,
///
/// ```text
/// exp(z_j - M) = Y[a]_j Y[c]_j,   Y[r]_j = exp((f P[r]_j + b_j / 2) - m_r),
/// M = m_a + m_c,   lse(z) = M + ln sum_j Y[a]_j Y[c]_j
/// ```
///
/// (`m_r` the row maxima of `f P + b / 2`), so an example costs one product per logit instead
/// of one exponential; the `V^2` exponentials of `Y` are paid once per pass (one table serves
/// both context positions), and `Y[a]_j Y[c]_j` commutes, so an example's sum has the same
/// bits whichever of its rows computes it. When the sum falls below [`PAIR_SUM_FLOOR`] (the
/// rows' maxima far apart, where the products could underflow) the example is computed
/// directly.
#[derive(Debug, Clone, Default)]
pub(crate) struct PairTables {
    /// `Y` (V rows of V, [`stride`](Self::stride) apart, from `rows[offset]`): each row starts
    /// on a 64-byte line, so no load of a row's sixteen-lane register straddles two lines (at
    /// V = 1,000 every other row of a packed table started mid-line, and the allocation itself
    /// 16 bytes into one). P0 top-1000 at 1 thread on ml-100k, per batch, medians of 5
    /// alternating runs: row pass 1.725 against 1.896 ms, fill 0.617 against 0.661; the model's
    /// bits unchanged.
    rows: Vec<f32>,
    offset: usize,
    stride: usize,
    /// `m_r` (V).
    row_max: Vec<f32>,
    /// `b / 2` (V).
    half_bias: Vec<f32>,
    /// The context weight `f` of a two-token context (1 for a sum, 1/2 for a mean).
    f: f32,
    /// `W^T` (k x V), for the AVX-512 fill.
    wt: Vec<f32>,
    /// Scratch: [`FILL_ROWS`] rows of `P` while they become rows of `Y`; the gathered rows of
    /// [`project_rows`](Self::project_rows).
    block: Vec<f32>,
    /// What the tables were last filled from (`E`, `W`, `b` and `f`, one after the other; empty
    /// when never filled): a fill from the same values is skipped, as when a validation pass
    /// and the next epoch's first batch read the same weights.
    filled_from: Vec<f32>,
}

/// Rows of `P = E W^T` the table fill computes at a time: 256 KiB at V = 1,000, so they are
/// turned into `Y` while in L2 instead of a `V x V` `P` going to memory and back.
const FILL_ROWS: usize = 64;

/// Below this sum of products a two-token example is recomputed directly (see [`PairTables`]).
pub(crate) const PAIR_SUM_FLOOR: f32 = 1e-20;

impl PairTables {
    /// Fills the tables for the weights `wts` (`P = E W^T` and the bias `b`) and weight `f`
    /// in the build `isa` (every build gives the same bits, `fused` or not). `P` is never held whole:
    /// its rows are computed [`FILL_ROWS`] at a time (the products of [`project`], by row
    /// blocks that depend on V only) and become rows of `Y` while in cache; on AVX-512 they
    /// are computed eight at a time in registers ([`super::simd512::fill_rows`], the products'
    /// fused multiply-add chain) when `fused`, P0 top-1000 at 1 thread 49.35 against 53.75 ms
    /// an epoch (ml-100k, Intel Xeon, medians of 4 alternating runs).
    pub(crate) fn fill(&mut self, wts: &Weights<'_>, f: f32, isa: Isa, fused: bool) {
        let (v, k) = (wts.v, wts.k);
        let inputs = [wts.e, wts.w, wts.b, &[f][..]];
        let len: usize = inputs.iter().map(|x| x.len()).sum();
        if self.row_max.len() == v
            && self.filled_from.len() == len
            && inputs
                .iter()
                .flat_map(|x| x.iter())
                .zip(&self.filled_from)
                .all(|(x, y)| x.to_bits() == y.to_bits())
        {
            // The same weights (bit for bit) give the same tables, whatever the build.
            return;
        }
        self.filled_from.clear();
        for x in inputs {
            self.filled_from.extend_from_slice(x);
        }
        self.f = f;
        self.lay_out(v);
        self.row_max.resize(v, 0.0);
        self.half_bias.clear();
        self.half_bias.extend(wts.b.iter().map(|&b| 0.5 * b));
        #[cfg(target_arch = "x86_64")]
        if isa == Isa::Avx512 && fused {
            // SAFETY: `Isa::supported` found AVX-512F on this CPU.
            unsafe { self.fill_fused_avx512(wts) };
            return;
        }
        let e = ArrayView2::from_shape((v, k), wts.e).expect("embedding shape checked at construction");
        let w = ArrayView2::from_shape((v, k), wts.w).expect("out_weight shape checked at construction");
        let mut block = std::mem::take(&mut self.block);
        block.resize(FILL_ROWS.min(v) * v, 0.0);
        for first in (0..v).step_by(FILL_ROWS) {
            let n = FILL_ROWS.min(v - first);
            let p = &mut block[..n * v];
            let mut pv = ArrayViewMut2::from_shape((n, v), &mut *p).expect("block shape");
            product(v, 1.0, &e.slice(ndarray::s![first..first + n, ..]), &w.t(), 0.0, &mut pv);
            match isa {
                // SAFETY: `Isa::supported` found AVX2 (and AVX-512F) on this CPU.
                #[cfg(target_arch = "x86_64")]
                Isa::Avx2 => unsafe { self.fill_avx2(first, p) },
                #[cfg(target_arch = "x86_64")]
                Isa::Avx512 => unsafe { self.fill_avx512(first, p) },
                _ => self.fill_rows::<false>(first, p),
            }
        }
        self.block = block;
    }

    /// The rows `rows` of `P = E W^T` into `proj` (V x V; its other rows are left as they
    /// are), for the examples the tables do not serve: the marked rows gathered, one product.
    pub(crate) fn project_rows(&mut self, wts: &Weights<'_>, rows: &[u32], proj: &mut Vec<f32>) {
        let (v, k, m) = (wts.v, wts.k, rows.len());
        if m == 0 {
            return;
        }
        proj.resize(v * v, 0.0);
        self.block.resize(m * (k + v), 0.0);
        let (gathered, out) = self.block.split_at_mut(m * k);
        for (dst, &r) in gathered.chunks_exact_mut(k).zip(rows) {
            dst.copy_from_slice(&wts.e[r as usize * k..][..k]);
        }
        let e = ArrayView2::from_shape((m, k), &*gathered).expect("gathered shape");
        let w = ArrayView2::from_shape((v, k), wts.w).expect("out_weight shape checked at construction");
        let mut p = ArrayViewMut2::from_shape((m, v), &mut out[..m * v]).expect("rows shape");
        product(v, 1.0, &e, &w.t(), 0.0, &mut p);
        for (src, &r) in out.chunks_exact(v).zip(rows) {
            proj[r as usize * v..][..v].copy_from_slice(src);
        }
    }

    /// Floats from one row of `Y` to the next: V rounded up to whole 64-byte lines.
    fn stride_of(v: usize) -> usize {
        v.next_multiple_of(16)
    }

    /// Sizes `rows` for V rows at [`stride_of`](Self::stride_of) with the first on a 64-byte
    /// line (`offset`); the padding past each row's V floats is never read.
    fn lay_out(&mut self, v: usize) {
        self.stride = Self::stride_of(v);
        self.rows.resize(v * self.stride + 15, 0.0);
        let misalign = self.rows.as_ptr() as usize % 64 / 4;
        self.offset = (16 - misalign) % 16;
    }

    /// The whole table with [`super::simd512::fill_rows`]: `P`'s rows computed eight at a time
    /// in registers from `E` and `W^T` and turned into rows of `Y` there (the same bits as the
    /// product and [`fill_avx512`](Self::fill_avx512)).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx2")]
    unsafe fn fill_fused_avx512(&mut self, wts: &Weights<'_>) {
        let (v, k) = (wts.v, wts.k);
        let Self { rows, offset, stride, row_max, half_bias, f, wt, .. } = self;
        let (stride, f) = (*stride, *f);
        wt.resize(k * v, 0.0);
        for (j, w) in wts.w.chunks_exact(k).enumerate() {
            for (i, &x) in w.iter().enumerate() {
                wt[i * v + j] = x;
            }
        }
        // Eight rows at a time, last rows first (the rest of `v / 8`, one by one, before
        // them): the table's first rows, which the row pass reads first, are the last written
        // and still in L2 when it starts.
        const R: usize = 8;
        let full = v - v % R;
        let (rows, tail_rows) = rows[*offset..*offset + v * stride].split_at_mut(full * stride);
        let (maxima, tail_maxima) = row_max.split_at_mut(full);
        let (e, tail_e) = wts.e.split_at(full * k);
        let tail = tail_rows.chunks_exact_mut(stride).zip(tail_maxima).zip(tail_e.chunks_exact(k));
        for ((y, m), e) in tail.rev() {
            // SAFETY: the caller guarantees AVX-512F; the shapes are the tables'.
            *m = unsafe { super::simd512::fill_rows::<1>(e, wt, k, v, stride, half_bias, f, y) }[0];
        }
        let groups =
            rows.chunks_exact_mut(R * stride).zip(maxima.chunks_exact_mut(R)).zip(e.chunks_exact(R * k));
        for ((y, m), e) in groups.rev() {
            // SAFETY: as above.
            m.copy_from_slice(&unsafe {
                super::simd512::fill_rows::<R>(e, wt, k, v, stride, half_bias, f, y)
            });
        }
    }

    /// [`fill_rows`](Self::fill_rows) compiled for AVX2.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn fill_avx2(&mut self, first: usize, proj: &[f32]) {
        self.fill_rows::<true>(first, proj);
    }

    /// [`fill_rows`](Self::fill_rows) with [`super::simd512::fill_row`] (the same bits).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx2")]
    unsafe fn fill_avx512(&mut self, first: usize, proj: &[f32]) {
        let (v, f) = (self.half_bias.len(), self.f);
        for (i, p) in proj.chunks_exact(v).enumerate() {
            let c = first + i;
            let at = self.offset + c * self.stride;
            // SAFETY: the caller guarantees AVX-512F; `p` and `half_bias` hold `v` elements.
            self.row_max[c] =
                unsafe { super::simd512::fill_row(p, &self.half_bias, f, &mut self.rows[at..at + v]) };
        }
    }

    /// Rows `first..` of `Y` and `m` from the same rows of `P` (`proj`).
    #[inline(always)]
    fn fill_rows<const AVX2: bool>(&mut self, first: usize, proj: &[f32]) {
        let (v, f) = (self.half_bias.len(), self.f);
        for (i, p) in proj.chunks_exact(v).enumerate() {
            let c = first + i;
            let at = self.offset + c * self.stride;
            let y = &mut self.rows[at..at + v];
            y.iter_mut().zip(p).zip(&self.half_bias).for_each(|((y, &p), &h)| *y = f * p + h);
            let m = Row::<AVX2>::max(y);
            Row::<AVX2>::exp_fused_shifted(y, m);
            self.row_max[c] = m;
        }
    }

    /// `Y[r]`.
    #[inline(always)]
    pub(crate) fn y_row(&self, r: usize) -> &[f32] {
        let at = self.offset + r * self.stride;
        &self.rows[at..at + self.half_bias.len()]
    }

    /// `Y`, V rows of V, [`stride`](Self::stride) apart (each on a 64-byte line).
    #[inline(always)]
    pub(crate) fn table(&self) -> &[f32] {
        &self.rows[self.offset..self.offset + self.row_max.len() * self.stride]
    }

    /// Floats from one row of [`table`](Self::table) to the next (a multiple of sixteen).
    #[inline(always)]
    pub(crate) fn stride(&self) -> usize {
        self.stride
    }

    /// The context weight `f`.
    #[inline(always)]
    pub(crate) fn weight(&self) -> f32 {
        self.f
    }

    /// `M = m_a + m_c` (symmetric in `a` and `c`, bitwise).
    #[inline(always)]
    pub(crate) fn shift(&self, a: usize, c: usize) -> f32 {
        self.row_max[a] + self.row_max[c]
    }
}

/// What a full-softmax pass over a batch's examples reads, whichever kernel runs it (the row
/// pass of [`super::pair_rows`] reads the pair tables, the per-example kernel a
/// [`ProjectedPass`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ExamplePass<'a> {
    pub arch: Architecture,
    pub reduce: ContextReduce,
    pub ex: &'a Examples,
    /// `1 / batch count`.
    pub scale: f32,
    pub grad: bool,
}

/// What a projected pass over a lane's examples reads: the examples and the projection.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ProjectedPass<'a> {
    pub examples: ExamplePass<'a>,
    /// The projection `E W^T` (V x V).
    pub proj: &'a [f32],
}

/// The projected kernel over the examples `ids`: logits from the rows of `proj` ([`project`]),
/// the loss into `lane.loss` and, with `grad`, the lane's partial `db` and its `S` (accumulated
/// per example); [`projected_backward`] turns the batch's lanes' `S` into `dW` and `dE` once all
/// lanes ran. Two-token CBOW contexts with [`PairTables`] go through [`super::pair_rows`]
/// instead. With `simd`, the per-example part runs in its AVX2 build when the CPU has it.
pub(crate) fn projected_lane(
    pass: &ProjectedPass<'_>,
    wts: &Weights<'_>,
    ids: &[u32],
    lane: &mut Lane,
    simd: bool,
) {
    lane.ensure_projected(wts.v, wts.k);
    #[cfg(target_arch = "x86_64")]
    if avx2(simd) {
        // SAFETY: the CPU supports AVX2 (`avx2` checked it); nothing else is required.
        unsafe { projected_examples_avx2(pass, wts.b, ids, lane) };
    } else {
        projected_examples::<false>(pass, wts.b, ids, lane);
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = simd;
        projected_examples::<false>(pass, wts.b, ids, lane);
    }
}

/// [`projected_examples`] compiled for AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn projected_examples_avx2(pass: &ProjectedPass<'_>, bias: &[f32], ids: &[u32], lane: &mut Lane) {
    projected_examples::<true>(pass, bias, ids, lane);
}

/// The per-example part of [`projected_lane`]: logits, softmax, loss, `db` and `S`.
///
/// Examples go in blocks, in three stages (logits; exponentials; the rest),
/// so the long exponential chains of different examples overlap; each example still sees
/// exactly its sequential operations, and `S`, `db` and the loss are accumulated in example
/// order.
#[inline(always)]
fn projected_examples<const AVX2: bool>(
    pass: &ProjectedPass<'_>,
    bias: &[f32],
    ids: &[u32],
    lane: &mut Lane,
) {
    let v = bias.len();
    let ExamplePass { arch, reduce, ex, scale, grad } = pass.examples;
    let proj = pass.proj;
    let Lane { z, s, db, e_rows, loss, .. } = lane;
    /// Per example of a block: `lse` (or the max before the exponentials), the positives'
    /// logits and the sum of exponentials.
    #[derive(Clone, Copy, Default)]
    struct Stat {
        lse_or_max: f32,
        z_positives: f32,
        sum: f32,
    }
    for block in ids.chunks(PROJECTED_BLOCK) {
        let mut stats = [Stat::default(); PROJECTED_BLOCK];
        for ((&e, zr), st) in block.iter().zip(z.chunks_exact_mut(v)).zip(stats.iter_mut()) {
            let e = e as usize;
            let (rows, f) = hidden_tokens(arch, reduce, ex, e);
            st.lse_or_max = projected_logits::<AVX2>(rows, f, proj, bias, zr);
            st.z_positives = positives_sum(zr, positives_of(arch, ex, e));
        }
        for (zr, st) in z.chunks_exact_mut(v).zip(stats.iter_mut()).take(block.len()) {
            st.sum = Row::<AVX2>::exp_sum(zr, st.lse_or_max);
            st.lse_or_max += st.sum.ln();
        }
        for ((&e, zr), st) in block.iter().zip(z.chunks_exact_mut(v)).zip(&stats) {
            let e = e as usize;
            let positives = positives_of(arch, ex, e);
            if grad {
                // CBOW over two distinct tokens: `finish` and `accumulate_projected` in one
                // pass, the same values.
                let (rows, f) = hidden_tokens(arch, reduce, ex, e);
                if let (&[a, c], &[t]) = (rows, positives) {
                    if a != c {
                        *loss += (positives.len() as f32 * st.lse_or_max - st.z_positives) as f64;
                        let g = positives.len() as f32 * scale / st.sum;
                        accumulate_softmax2::<AVX2>(zr, g, scale, (a, c, t), f, db, s, e_rows);
                        continue;
                    }
                }
            }
            *loss += Row::<AVX2>::finish(zr, st.lse_or_max, st.sum, st.z_positives, positives, scale, grad);
            if grad {
                let (rows, f) = hidden_tokens(arch, reduce, ex, e);
                accumulate_projected(rows, f, zr, db, s, e_rows);
            }
        }
    }
}

/// The projected kernel's backward over a batch's lanes (after [`projected_lane`] ran on each):
/// sums the lanes' `S` into the first lane's, element by element in lane order (only the rows
/// each lane marked; the same sums for any thread count, since the lanes are fixed), then does
/// the backward products once for the batch instead of once per lane:
/// `dW += S^T E` and `dE[c] += S[c] W` over the `m` marked rows `c` only (gathered into
/// `m x V` and `m x k` blocks, so a product costs `m V k` and unmarked rows of `dE` stay exactly
/// zero whatever `W` holds). Everything lands in the first lane's `dw`, `de` and marks; the
/// other lanes' marks are left empty (so their `S` rows stale).
pub(crate) fn projected_backward(wts: &Weights<'_>, lanes: &mut [Lane], simd_products: bool) {
    let Some((first, rest)) = lanes.split_first_mut() else { return };
    let v = wts.v;
    for lane in rest {
        for &c in &lane.e_rows.rows {
            let (dst, src) = (&mut first.s[c as usize * v..][..v], &lane.s[c as usize * v..][..v]);
            if first.e_rows.mark(c) {
                dst.fill(0.0);
            }
            dst.iter_mut().zip(src).for_each(|(d, &s)| *d += s);
        }
        lane.e_rows.clear();
    }
    backward_products(wts, first, simd_products);
}

/// From this share of marked rows on (`NUMER / DENOM`), the backward products run over all of
/// `S` instead of the gathered marked rows.
const FULL_PRODUCT_NUMER: usize = 3;
const FULL_PRODUCT_DENOM: usize = 4;

/// `lane.dw += S^T E` and `lane.de[c] += S[c] W` for the rows `c` of `lane.e_rows` (a product
/// over all rows when at least three quarters are marked, else over the gathered marked rows).
/// `S`'s unmarked rows are stale (see [`Lane::s`]) and are never read as values. The products
/// over all of `S` run in [`super::simd512::backward_products`] with `simd_products` (the
/// AVX-512 build) where OpenBLAS would (V >= 512, k <= 64): OpenBLAS's sums at P0's width,
/// without its two packings of `S`.
fn backward_products(wts: &Weights<'_>, lane: &mut Lane, simd_products: bool) {
    let (v, k) = (wts.v, wts.k);
    let Lane { s, s_rows, e_rows: marks, h: e_rows, dh: de_rows, de, dw, strips, dw_t, .. } = lane;
    let m = marks.rows.len();
    if m == 0 {
        return;
    }
    let w = ArrayView2::from_shape((v, k), wts.w).expect("out_weight shape checked at construction");
    let mut dw = ArrayViewMut2::from_shape((v, k), &mut dw[..]).expect("dw shape");
    if m * FULL_PRODUCT_DENOM >= v * FULL_PRODUCT_NUMER {
        // Most rows marked: the products over all of `S` (its unmarked rows zeroed first) cost
        // little more than the gathered ones and skip the gather; the unmarked rows of `dE`
        // are reset to exactly zero afterwards (`0 W` is zero for finite `W` only).
        if m < v {
            for (_, row) in s[..v * v].chunks_exact_mut(v).enumerate().filter(|(c, _)| !marks.is_marked(*c)) {
                row.fill(0.0);
            }
        }
        #[cfg(target_arch = "x86_64")]
        let fast = simd_products && v >= BLAS_FROM_VOCAB && k <= super::simd512::PRODUCTS_MAX_K;
        #[cfg(not(target_arch = "x86_64"))]
        let fast = {
            let _ = simd_products; // no AVX-512 build off x86-64
            false
        };
        if fast {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `simd_products` only in the AVX-512 build (`Isa::supported` found
            // AVX-512F on this CPU); the shapes are the tables'.
            unsafe {
                super::simd512::backward_products(
                    &s[..v * v],
                    wts.e,
                    wts.w,
                    v,
                    k,
                    dw.as_slice_mut().expect("dw is contiguous"),
                    de,
                    strips,
                    dw_t,
                )
            };
        } else {
            let e = ArrayView2::from_shape((v, k), wts.e).expect("embedding shape checked at construction");
            let sv = ArrayView2::from_shape((v, v), &s[..v * v]).expect("S shape");
            product(v, 1.0, &sv.t(), &e, 1.0, &mut dw);
            let mut dev = ArrayViewMut2::from_shape((v, k), &mut de[..]).expect("de shape");
            product(v, 1.0, &sv, &w, 1.0, &mut dev);
        }
        if m < v {
            for (_, row) in de.chunks_exact_mut(k).enumerate().filter(|(c, _)| !marks.is_marked(*c)) {
                row.iter_mut().for_each(|x| *x = 0.0);
            }
        }
        return;
    }
    // Gather the marked rows of S and of E.
    s_rows.resize(m * v, 0.0);
    for buf in [&mut *e_rows, &mut *de_rows] {
        if buf.len() < m * k {
            buf.resize(m * k, 0.0);
        }
    }
    for (i, &c) in marks.rows.iter().enumerate() {
        let c = c as usize;
        s_rows[i * v..(i + 1) * v].copy_from_slice(&s[c * v..(c + 1) * v]);
        e_rows[i * k..(i + 1) * k].copy_from_slice(&wts.e[c * k..(c + 1) * k]);
    }
    let sm = ArrayView2::from_shape((m, v), &s_rows[..m * v]).expect("gathered S shape");
    let em = ArrayView2::from_shape((m, k), &e_rows[..m * k]).expect("gathered E shape");
    product(v, 1.0, &sm.t(), &em, 1.0, &mut dw);
    let mut dm = ArrayViewMut2::from_shape((m, k), &mut de_rows[..m * k]).expect("gathered dE shape");
    product(v, 1.0, &sm, &w, 0.0, &mut dm);
    for (i, &c) in marks.rows.iter().enumerate() {
        let c = c as usize;
        de[c * k..(c + 1) * k].iter_mut().zip(&de_rows[i * k..(i + 1) * k]).for_each(|(d, &g)| *d += g);
    }
}

/// The inputs the SIMD exponentials are checked on against their portable twins: f32s
/// through [-100, 100] at a stride of 37 ulps (past both ends of the clamp, and around zero),
/// plus infinities, NaN, signed zeros and the clamp's ends.
#[cfg(test)]
pub(crate) fn exp_test_inputs() -> Vec<f32> {
    let mut xs: Vec<f32> = vec![f32::INFINITY, f32::NEG_INFINITY, f32::NAN, -0.0, 0.0, -87.0, 88.0];
    let mut x = -100.0f32;
    while x < 100.0 {
        xs.push(x);
        x = f32::from_bits(if x < 0.0 { x.to_bits() - 37 } else { x.to_bits() + 37 });
        if x.is_sign_negative() && x > -1e-30 {
            x = 1e-30;
        }
    }
    xs
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `exp` within 3e-7 relative of f64's over its clamp's range, exact at 0, positive and
    /// tiny far below it.
    fn assert_exp_accuracy(exp: fn(f32) -> f32) {
        let mut worst = 0.0f64;
        let mut x = -87.0f32;
        while x < 88.0 {
            let (a, b) = (exp(x) as f64, (x as f64).exp());
            worst = worst.max((a - b).abs() / b);
            x += 0.001_37;
        }
        assert!(worst < 3e-7, "worst relative error {worst}");
        assert_eq!(exp(0.0), 1.0);
        assert!(exp(-1000.0) > 0.0 && exp(-1000.0) < 1e-37);
    }

    #[test]
    fn fused_exp_matches_std() {
        assert_exp_accuracy(exp_fused_f32);
        // It rounds as its own operations, not as `exp_f32`'s: some inputs differ in the last bit.
        let differ =
            (0..10_000).map(|i| -(i as f32) * 0.0061).filter(|&x| exp_fused_f32(x) != exp_f32(x)).count();
        assert!(differ > 0, "no input rounds differently: the multiply-adds are not fused");
    }

    #[test]
    fn fast_exp_matches_std() {
        assert_exp_accuracy(exp_f32);
    }

    /// The one-pass CBOW gradient end leaves bitwise the values of `finish` (scale, then the
    /// target's `- scale`) followed by the row additions, in both builds, for a target inside
    /// the eight-wide body and in the tail.
    #[test]
    fn fused_gradient_end_matches_the_two_passes() {
        let v = 37;
        let e: Vec<f32> = (0..v).map(|j| exp_f32((j as f32 * 0.37).sin() * 3.0)).collect();
        let s_sum = sum_f32(&e);
        let (scale, f) = (1.0 / 977.0, 0.5);
        for t in [3u32, 35] {
            let start =
                |i: usize| -> Vec<f32> { (0..v).map(|j| ((i * v + j) as f32 * 0.11).cos()).collect() };
            let (db0, s0) = (start(0), [start(1), start(2), start(3)].concat());
            // Two passes: dz in place, then the additions.
            let mut dz = e.clone();
            Row::<false>::finish(&mut dz, 0.0, s_sum, 0.0, &[t], scale, true);
            let (mut db_ref, mut s_ref) = (db0.clone(), s0.clone());
            let mut marks = RowMarks::default();
            marks.resize(3);
            accumulate_projected(&[2, 0], f, &dz, &mut db_ref, &mut s_ref, &mut marks);
            for simd in [false, true] {
                let (mut db, mut s) = (db0.clone(), s0.clone());
                let mut marks = RowMarks::default();
                marks.resize(3);
                let g = scale / s_sum;
                #[cfg(target_arch = "x86_64")]
                if avx2(simd) {
                    // SAFETY: the CPU has AVX2 (`avx2` checked it).
                    unsafe { fused_avx2(&e, g, scale, (2, 0, t), f, &mut db, &mut s, &mut marks) };
                } else {
                    accumulate_softmax2::<false>(&e, g, scale, (2, 0, t), f, &mut db, &mut s, &mut marks);
                }
                #[cfg(not(target_arch = "x86_64"))]
                accumulate_softmax2::<false>(&e, g, scale, (2, 0, t), f, &mut db, &mut s, &mut marks);
                let bits = |x: &[f32]| x.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&db), bits(&db_ref), "db, target {t}, simd {simd}");
                assert_eq!(bits(&s), bits(&s_ref), "S, target {t}, simd {simd}");
                assert_eq!(marks.rows, [2, 0]);
            }
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    #[allow(clippy::too_many_arguments)]
    unsafe fn fused_avx2(
        e: &[f32],
        g: f32,
        scale: f32,
        act: (u32, u32, u32),
        f: f32,
        db: &mut [f32],
        s: &mut [f32],
        marks: &mut RowMarks,
    ) {
        accumulate_softmax2::<true>(e, g, scale, act, f, db, s, marks);
    }

    /// The AVX-512 fill computes `P` in registers as a fused multiply-add chain over `k`; the
    /// other builds take `P` from the BLAS product (OpenBLAS from V = 512, matrixmultiply
    /// below), whose kernels compute exactly that chain. Every build's table and row maxima,
    /// bit for bit, at shapes that leave tails in every blocking (rows in fours, columns in
    /// 64s and 16s, [`FILL_ROWS`]), for a summed and a mean context.
    #[test]
    fn fused_fill_matches_the_product_then_fill() {
        for (v, k) in [(1usize, 1usize), (5, 3), (37, 13), (130, 20), (600, 8), (1000, 20)] {
            use rand::{Rng, SeedableRng};
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64((v * 31 + k) as u64);
            let mut draw =
                |n: usize, half: f32| -> Vec<f32> { (0..n).map(|_| rng.random_range(-half..half)).collect() };
            let (e, w, b) = (draw(v * k, 0.7), draw(v * k, 0.7), draw(v, 1.0));
            let wts = Weights { e: &e, w: &w, b: &b, v, k };
            for f in [1.0, 0.5] {
                let mut want = PairTables::default();
                want.fill(&wts, f, Isa::Portable, false);
                for (isa, fused) in Isa::supported().into_iter().flat_map(|isa| [(isa, false), (isa, true)]) {
                    let mut got = PairTables::default();
                    got.fill(&wts, f, isa, fused);
                    let case = format!("V {v} k {k} f {f} {isa:?} fused {fused}");
                    let bits = |x: &[f32]| x.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                    let table = |t: &PairTables| (0..v).flat_map(|r| bits(t.y_row(r))).collect::<Vec<_>>();
                    assert_eq!(table(&got), table(&want), "Y, {case}");
                    assert_eq!(got.table().as_ptr() as usize % 64, 0, "a row off its line, {case}");
                    assert_eq!(bits(&got.row_max), bits(&want.row_max), "maxima, {case}");
                }
            }
        }
    }

    /// A fill from bit-identical weights is skipped, and only then: tables refilled in turn
    /// from weights that differ from the last fill's in one element of `E`, of `W`, of `b`, or
    /// in `f` are each a fresh fill's, bit for bit.
    #[test]
    fn a_fill_is_skipped_only_for_the_same_weights() {
        use rand::{Rng, SeedableRng};
        let (v, k) = (37, 5);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let mut draw = |n: usize| -> Vec<f32> { (0..n).map(|_| rng.random_range(-0.7f32..0.7)).collect() };
        let (e, w, b) = (draw(v * k), draw(v * k), draw(v));
        let nudge = |x: &[f32], at: usize| {
            let mut y = x.to_vec();
            y[at] = f32::from_bits(y[at].to_bits() + 1);
            y
        };
        let (e2, w2, b2) = (nudge(&e, 3 * k + 2), nudge(&w, v * k - 1), nudge(&b, 17));
        // Each fill differs from the one before in one input only.
        let cases = [
            (&e, &w, &b, 1.0),
            (&e, &w, &b, 1.0),
            (&e2, &w, &b, 1.0),
            (&e, &w, &b, 1.0),
            (&e, &w2, &b, 1.0),
            (&e, &w, &b, 1.0),
            (&e, &w, &b2, 1.0),
            (&e, &w, &b, 1.0),
            (&e, &w, &b, 0.5),
            (&e, &w, &b, 1.0),
        ];
        let bits = |t: &PairTables| {
            let rows = (0..t.row_max.len()).flat_map(|r| t.y_row(r).iter());
            (rows.chain(&t.row_max).map(|x| x.to_bits()).collect::<Vec<_>>(), t.f)
        };
        for isa in Isa::supported() {
            let mut reused = PairTables::default();
            for (i, &(e, w, b, f)) in cases.iter().enumerate() {
                let wts = Weights { e, w, b, v, k };
                reused.fill(&wts, f, isa, true);
                let mut fresh = PairTables::default();
                fresh.fill(&wts, f, isa, true);
                assert_eq!(bits(&reused), bits(&fresh), "{isa:?}, fill {i}");
            }
        }
    }

    #[test]
    fn blocked_sum() {
        let x: Vec<f32> = (1..=21).map(|i| i as f32).collect();
        assert_eq!(sum_f32(&x), 231.0);
        assert_eq!(sum_f32(&[]), 0.0);
    }
}
