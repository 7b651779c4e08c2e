//! AVX-512 builds of the two-token row pass ([`super::pair_rows`]), register-tiled.
//!
//! The AVX2 row pass adds each example's `g Y[c]` into an accumulator row in L1, reading and
//! writing it once per example; its sums of products run four eight-lane chains, one example
//! at a time. Here:
//!
//! - [`row_sums_out`] keeps a tile of [`TILE`] accumulators in registers while every term of
//!   the row streams its slice of `Y[c]`, then writes the tile's `S` and `db` once. Each
//!   element still sees `acc_j = ((0 + g_1 y_1j) + g_2 y_2j) + ...` in term order, then
//!   `t_j = x_j acc_j`, `s_j += f t_j`, `db_j += t_j`: elementwise, unfused, the portable
//!   `axpy` + `row_out`'s operations, so the bits are the same.
//! - [`pair_sums`] computes four examples' `sum_j x_j y_j` at a time from one load of `x`
//!   (sixteen lanes per register: lane `l` of the two registers of an example is the portable
//!   `pair_sum`'s accumulator `l` and `16 + l`, folded the same way), so each sum is bitwise
//!   the portable one.
//!
//! - [`fill_row`] makes a row of the exponential table `Y` from a row of `P`:
//!   `exp_fused_f32`'s operations sixteen lanes at a time (elementwise, the same fused
//!   multiply-adds, so the same bits).
//! - [`fill_rows`] makes eight rows of `Y` straight from `E` and `W^T`: each 48-column tile of
//!   `P` as the fused multiply-add chain over `k` that the BLAS products compute (bit for bit),
//!   turned into `Y` before it leaves registers, so no block of `P` is stored, reloaded or
//!   packed.
//! - [`backward_products`] forms the projected softmax's `dE += S W` and `dW += S^T E` from
//!   `S` as the row pass leaves it: `dE` from broadcasts of `S`'s elements against `W`'s rows
//!   (no packing), each 128-row chunk of `S` copied into 16-column strips on the way for `dW`.
//!   Each output is a chain of fused multiply-adds per 128-long stretch of the inner dimension,
//!   then added to the output: the order OpenBLAS's kernels use for
//!   `reelvec_metrics::blas::gemm` at P0's `k = 20` (test `backward_products_match_blas_bitwise`),
//!   so there the AVX-512 build keeps the other builds' bits; at some narrow widths (`k <= 8` at
//!   V = 600, say) OpenBLAS's small-matrix kernels sum in another order and the builds' bits
//!   differ, each still fixed for any thread count.
//!
//! Every function is `unsafe` to call: the CPU must support AVX-512F (and AVX2).

#![cfg(target_arch = "x86_64")]

use std::arch::x86_64::*;

use super::softmax::{
    max_of, sum_of, EXP_LN2_HI, EXP_LN2_LO, EXP_MAX, EXP_MIN, EXP_POLY, EXP_POLY_LEAD, EXP_ROUND,
};

/// Columns a register tile of [`row_sums_out`] holds (eight registers of sixteen lanes).
pub(crate) const TILE: usize = 128;

/// The mask of the lanes of a sixteen-lane register at column `j` that lie before `end`.
#[inline(always)]
fn lanes_before(j: usize, end: usize) -> __mmask16 {
    let n = end.saturating_sub(j).min(16);
    ((1u32 << n) - 1) as __mmask16
}

/// For one row `r` of `S`: `acc = sum_i g_i Y[c_i]` over `terms` (`(g_i, c_i)`, in order; the
/// rows of `Y` are `v` long and `stride` apart in `table`), then with `t = x acc`: `s += f t`,
/// `db += t`. With `fresh`, `s` is not read and counts as zero (`s = 0 + f t`, the same bits as
/// adding to a cleared row).
///
/// # Safety
/// The CPU must support AVX-512F; every row `c_i` lies inside `table`, `stride >= v`, and `x`,
/// `s`, `db` hold at least `v` elements (checked).
#[target_feature(enable = "avx512f,avx2")]
#[allow(clippy::too_many_arguments)] // the terms, the table, the row and its two outputs
pub(crate) unsafe fn row_sums_out(
    terms: &[(f32, u32)],
    table: &[f32],
    stride: usize,
    v: usize,
    x: &[f32],
    f: f32,
    s: &mut [f32],
    db: &mut [f32],
    fresh: bool,
) {
    assert!(x.len() >= v && s.len() >= v && db.len() >= v);
    assert!(stride >= v && terms.iter().all(|&(_, c)| c as usize * stride + v <= table.len()));
    let fv = _mm512_set1_ps(f);
    let mut j = 0;
    while j < v {
        let masks: [__mmask16; TILE / 16] = std::array::from_fn(|q| lanes_before(j + 16 * q, v));
        let mut acc = [_mm512_setzero_ps(); TILE / 16];
        for &(g, c) in terms {
            let gv = _mm512_set1_ps(g);
            // SAFETY: lane `l` of load `q` reads column `j + 16 q + l < v` of row `c` (the
            // mask drops the others, and masked-off lanes are not read).
            let row = unsafe { table.as_ptr().add(c as usize * stride + j) };
            for (q, a) in acc.iter_mut().enumerate() {
                let y = unsafe { _mm512_maskz_loadu_ps(masks[q], row.add(16 * q)) };
                *a = _mm512_add_ps(*a, _mm512_mul_ps(gv, y));
            }
        }
        for (q, &a) in acc.iter().enumerate() {
            let (m, at) = (masks[q], j + 16 * q);
            // SAFETY: masked to columns `< v`, inside `x`, `s` and `db` (asserted above).
            unsafe {
                let t = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, x.as_ptr().add(at)), a);
                let (ps, pd) = (s.as_mut_ptr().add(at), db.as_mut_ptr().add(at));
                let old = if fresh { _mm512_setzero_ps() } else { _mm512_maskz_loadu_ps(m, ps) };
                _mm512_mask_storeu_ps(ps, m, _mm512_add_ps(old, _mm512_mul_ps(fv, t)));
                _mm512_mask_storeu_ps(pd, m, _mm512_add_ps(_mm512_maskz_loadu_ps(m, pd), t));
            }
        }
        j += TILE;
    }
}

/// `pair_rows::context_dot`, `(a + c) . w`, with its sixteen lanes in one register: each
/// chunk's `(a + c) w` added lane by lane, the lanes folded in halves (eight, four, two, one),
/// then the tail's products added in order; unfused, so bitwise the portable function.
///
/// # Safety
/// The CPU must support AVX-512F; `c` and `w` are at least as long as `a` (checked).
#[inline]
#[target_feature(enable = "avx512f,avx2")]
pub(crate) unsafe fn context_dot(a: &[f32], c: &[f32], w: &[f32]) -> f32 {
    let k = a.len();
    assert!(c.len() >= k && w.len() >= k);
    let body = k - k % 16;
    let mut acc = _mm512_setzero_ps();
    let mut i = 0;
    while i < body {
        // SAFETY: `i + 16 <= body <= k`: inside `a`, `c` and `w`.
        unsafe {
            let (x, y, z) = (
                _mm512_loadu_ps(a.as_ptr().add(i)),
                _mm512_loadu_ps(c.as_ptr().add(i)),
                _mm512_loadu_ps(w.as_ptr().add(i)),
            );
            acc = _mm512_add_ps(acc, _mm512_mul_ps(_mm512_add_ps(x, y), z));
        }
        i += 16;
    }
    let eight = _mm256_add_ps(_mm512_castps512_ps256(acc), upper_half(acc));
    let four = _mm_add_ps(_mm256_castps256_ps128(eight), _mm256_extractf128_ps::<1>(eight));
    let two = _mm_add_ps(four, _mm_movehl_ps(four, four));
    let one = _mm_add_ss(two, _mm_movehdup_ps(two));
    let tail = a[body..k].iter().zip(&c[body..k]).zip(&w[body..k]);
    tail.fold(_mm_cvtss_f32(one), |s, ((&a, &c), &w)| s + (a + c) * w)
}

/// `out[i] = sum_j x_j Y[c_i]_j` for every `c_i` in `partners` (rows as long as `x`, `stride`
/// apart in `table`), each bitwise the portable `Row::pair_sum(x, Y[c_i])`.
///
/// # Safety
/// The CPU must support AVX-512F; every row `c_i` lies inside `table`, `stride >= x.len()`, and
/// `out` is as long as `partners` (checked).
#[target_feature(enable = "avx512f,avx2")]
pub(crate) unsafe fn pair_sums(x: &[f32], partners: &[u32], table: &[f32], stride: usize, out: &mut [f32]) {
    let v = x.len();
    assert!(stride >= v && out.len() == partners.len());
    let row = |c: u32| &table[c as usize * stride..c as usize * stride + v];
    let mut groups = partners.chunks_exact(4);
    let mut outs = out.chunks_exact_mut(4);
    for (cs, o) in (&mut groups).zip(&mut outs) {
        o.copy_from_slice(&pair_sums_n(x, [row(cs[0]), row(cs[1]), row(cs[2]), row(cs[3])]));
    }
    for (&c, o) in groups.remainder().iter().zip(outs.into_remainder()) {
        *o = pair_sums_n(x, [row(c)])[0];
    }
}

/// `N` sums of products against one `x` (all rows as long as `x`).
#[inline]
#[target_feature(enable = "avx512f,avx2")]
fn pair_sums_n<const N: usize>(x: &[f32], ys: [&[f32]; N]) -> [f32; N] {
    let v = x.len();
    assert!(ys.iter().all(|y| y.len() == v));
    let (body32, body8) = (v - v % 32, v - v % 8);
    let mut lo = [_mm512_setzero_ps(); N];
    let mut hi = [_mm512_setzero_ps(); N];
    let mut i = 0;
    while i < body32 {
        // SAFETY: `i + 32 <= body32 <= v`: inside `x` and every row.
        unsafe {
            let (x0, x1) = (_mm512_loadu_ps(x.as_ptr().add(i)), _mm512_loadu_ps(x.as_ptr().add(i + 16)));
            for e in 0..N {
                let y = ys[e].as_ptr().add(i);
                lo[e] = _mm512_add_ps(lo[e], _mm512_mul_ps(x0, _mm512_loadu_ps(y)));
                hi[e] = _mm512_add_ps(hi[e], _mm512_mul_ps(x1, _mm512_loadu_ps(y.add(16))));
            }
        }
        i += 32;
    }
    let mut out = [0.0f32; N];
    for e in 0..N {
        // The portable fold: acc_l = (wide_l + wide_{8+l}) + (wide_{16+l} + wide_{24+l}), then
        // the remaining eight-element chunks.
        let half = |r: __m512| _mm256_add_ps(_mm512_castps512_ps256(r), upper_half(r));
        let mut acc = _mm256_add_ps(half(lo[e]), half(hi[e]));
        let y = ys[e];
        let mut c = body32;
        while c < body8 {
            // SAFETY: `c + 8 <= body8 <= v`: inside `x` and `y`.
            unsafe {
                let t = _mm256_mul_ps(_mm256_loadu_ps(x.as_ptr().add(c)), _mm256_loadu_ps(y.as_ptr().add(c)));
                acc = _mm256_add_ps(acc, t);
            }
            c += 8;
        }
        let mut acc8 = [0.0f32; 8];
        // SAFETY: `acc8` holds eight f32.
        unsafe { _mm256_storeu_ps(acc8.as_mut_ptr(), acc) };
        let mut tail = [0.0f32; 8];
        for (t, j) in tail.iter_mut().zip(body8..v) {
            *t = x[j] * y[j];
        }
        out[e] = sum_of(acc8, &tail[..v - body8]);
    }
    out
}

/// The upper eight lanes of `r` (AVX-512F's `vextractf64x4`, the bits of lanes 8..16).
#[inline]
#[target_feature(enable = "avx512f,avx2")]
fn upper_half(r: __m512) -> __m256 {
    _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(r)))
}

/// Columns one step of [`fill_rows`] computes for each of its rows (three registers: eight rows
/// take 24 accumulators, and each load of `W^T` serves eight rows, against four rows of four
/// registers before: P0 top-1000 fill 0.821 against 0.881 ms a batch, medians of 6 alternating
/// runs on ml-100k at 1 thread; 0.71 against 0.76 ms a V = 1,000 table into L1).
const FILL_TILE: usize = 48;

/// `R` rows of the exponential table from their rows of `E`, without `P` leaving registers:
/// per [`FILL_TILE`]-column tile, `p_j = E[r] . W[j]` as the fused multiply-add chain
/// `p = fma(e_{k-1}, w_{k-1}, ... fma(e_0, w_0, 0))` (how the BLAS products [`super::softmax`]
/// used compute it, bit for bit: test `fused_fill_matches_the_product_then_fill`), then
/// [`fill_row`]'s `y = f p + h`, its maximum and its exponentials. `e` holds the `R` rows of `E`
/// (`k` each), `wt` is `W^T` (`k` rows of `v`), `y` the `R` rows of `Y` (`v` each, `stride`
/// apart; the floats between rows untouched); returns the rows' maxima.
///
/// # Safety
/// The CPU must support AVX-512F; the lengths are as stated (checked).
#[target_feature(enable = "avx512f,avx2")]
#[allow(clippy::too_many_arguments)] // the two factors, their shapes, the bias and the output
pub(crate) unsafe fn fill_rows<const R: usize>(
    e: &[f32],
    wt: &[f32],
    k: usize,
    v: usize,
    stride: usize,
    h: &[f32],
    f: f32,
    y: &mut [f32],
) -> [f32; R] {
    assert!(
        e.len() >= R * k
            && wt.len() >= k * v
            && h.len() >= v
            && stride >= v
            && y.len() >= (R - 1) * stride + v
    );
    const Q: usize = FILL_TILE / 16;
    let fv = _mm512_set1_ps(f);
    let mut mx = [_mm512_set1_ps(f32::NEG_INFINITY); R];
    let mut j = 0;
    while j < v {
        let masks: [__mmask16; Q] = std::array::from_fn(|q| lanes_before(j + 16 * q, v));
        let mut acc = [[_mm512_setzero_ps(); Q]; R];
        for i in 0..k {
            let mut w = [_mm512_setzero_ps(); Q];
            for (q, w) in w.iter_mut().enumerate() {
                // SAFETY: masked to columns `< v` of row `i < k` of `wt` (asserted above).
                *w = unsafe { _mm512_maskz_loadu_ps(masks[q], wt.as_ptr().add(i * v + j + 16 * q)) };
            }
            for (r, acc) in acc.iter_mut().enumerate() {
                let ev = _mm512_set1_ps(e[r * k + i]);
                for (a, &w) in acc.iter_mut().zip(&w) {
                    *a = _mm512_fmadd_ps(ev, w, *a);
                }
            }
        }
        for (r, (acc, mx)) in acc.iter().zip(mx.iter_mut()).enumerate() {
            for (q, &p) in acc.iter().enumerate() {
                let (m, at) = (masks[q], j + 16 * q);
                // SAFETY: masked to columns `< v`, inside `h` and row `r` of `y` (asserted).
                unsafe {
                    let z = _mm512_add_ps(_mm512_mul_ps(fv, p), _mm512_maskz_loadu_ps(m, h.as_ptr().add(at)));
                    _mm512_mask_storeu_ps(y.as_mut_ptr().add(r * stride + at), m, z);
                    *mx = _mm512_mask_max_ps(*mx, m, *mx, z);
                }
            }
        }
        j += FILL_TILE;
    }
    let mut maxima = [0.0f32; R];
    for (r, (m, &acc)) in maxima.iter_mut().zip(&mx).enumerate() {
        *m = row_max(acc);
        exp_shifted(&mut y[r * stride..r * stride + v], *m);
    }
    maxima
}

/// The maximum of a row from its sixteen lane maxima, folded as the portable `max_f32` does
/// (the maximum is exact, so its value does not depend on the grouping).
#[inline]
#[target_feature(enable = "avx512f,avx2")]
fn row_max(acc: __m512) -> f32 {
    let mut lanes = [0.0f32; 16];
    // SAFETY: `lanes` holds sixteen f32.
    unsafe { _mm512_storeu_ps(lanes.as_mut_ptr(), acc) };
    max_of(std::array::from_fn(|l| lanes[l].max(lanes[l + 8])))
}

/// `y <- exp_fused_f32(y - m)`, sixteen lanes at a time.
#[inline]
#[target_feature(enable = "avx512f,avx2")]
fn exp_shifted(y: &mut [f32], m: f32) {
    let (v, mv) = (y.len(), _mm512_set1_ps(m));
    let mut j = 0;
    while j < v {
        let mask = lanes_before(j, v);
        // SAFETY: masked to columns `< v`, inside `y`.
        unsafe {
            let at = y.as_mut_ptr().add(j);
            _mm512_mask_storeu_ps(at, mask, exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(mask, at), mv)));
        }
        j += 16;
    }
}

/// `y = f p + h` (unfused, as the portable fill), then `y <- exp_fused_f32(y - m)` with `m` the
/// row's maximum, which it returns; the elements past `v = y.len()` are untouched.
///
/// # Safety
/// The CPU must support AVX-512F; `p` and `h` hold at least `y.len()` elements (checked).
#[target_feature(enable = "avx512f,avx2")]
pub(crate) unsafe fn fill_row(p: &[f32], h: &[f32], f: f32, y: &mut [f32]) -> f32 {
    let v = y.len();
    assert!(p.len() >= v && h.len() >= v);
    let fv = _mm512_set1_ps(f);
    let mut acc = _mm512_set1_ps(f32::NEG_INFINITY);
    let mut j = 0;
    while j < v {
        let m = lanes_before(j, v);
        // SAFETY: masked to columns `< v`, inside `p`, `h` and `y` (asserted above).
        unsafe {
            let x = _mm512_maskz_loadu_ps(m, p.as_ptr().add(j));
            let z = _mm512_add_ps(_mm512_mul_ps(fv, x), _mm512_maskz_loadu_ps(m, h.as_ptr().add(j)));
            _mm512_mask_storeu_ps(y.as_mut_ptr().add(j), m, z);
            acc = _mm512_mask_max_ps(acc, m, acc, z);
        }
        j += 16;
    }
    let m = row_max(acc);
    exp_shifted(y, m);
    m
}

/// `exp_fused_f32` on sixteen lanes: its operations in its order, the same multiply-adds fused.
#[inline]
#[target_feature(enable = "avx512f,avx2")]
fn exp16(x: __m512) -> __m512 {
    let x = _mm512_min_ps(_mm512_set1_ps(EXP_MAX), _mm512_max_ps(_mm512_set1_ps(EXP_MIN), x));
    let round = _mm512_set1_ps(EXP_ROUND);
    let t = _mm512_fmadd_ps(x, _mm512_set1_ps(std::f32::consts::LOG2_E), round);
    let n = _mm512_sub_ps(t, round);
    let r =
        _mm512_fnmadd_ps(n, _mm512_set1_ps(EXP_LN2_LO), _mm512_fnmadd_ps(n, _mm512_set1_ps(EXP_LN2_HI), x));
    let mut q = _mm512_set1_ps(EXP_POLY_LEAD);
    for c in EXP_POLY {
        q = _mm512_fmadd_ps(q, r, _mm512_set1_ps(c));
    }
    let e = _mm512_add_ps(_mm512_fmadd_ps(_mm512_mul_ps(q, r), r, r), _mm512_set1_ps(1.0));
    // `e 2^n` in one rounding, as `exp_fused_f32`'s product with the power of two it writes
    // into the exponent bits: the clamp keeps `n` in [-126, 127], where `2^n` is a normal
    // float, so both are the exact product rounded once (one operation instead of four).
    _mm512_scalef_ps(e, n)
}

/// The inner dimension of one block of [`backward_products`]: the chunk
/// `reelvec_metrics::blas::gemm` hands OpenBLAS (`GEMM_INNER_CHUNK`), whose sums it reproduces.
const PRODUCT_CHUNK: usize = reelvec_metrics::blas::GEMM_INNER_CHUNK;

/// Widest `k` [`backward_products`] takes (four registers a row of `dE`).
pub(crate) const PRODUCTS_MAX_K: usize = 64;

/// `dE += S W` and `dW += S^T E` over the whole of `S` (`v x v`, row-major; `E`, `W`, `dE`,
/// `dW` are `v x k`, row-major): each element, per chunk of [`PRODUCT_CHUNK`] along the inner
/// dimension, a fused multiply-add chain in order from zero, then added to the output (the
/// sums OpenBLAS forms for [`reelvec_metrics::blas::gemm`] at P0's width, bit for bit: see
/// the module doc). Nothing of `S` is packed for `dE`: eight rows (four past `k = 32`) stream
/// their elements as broadcasts against `W`'s rows, whose `k` lanes hold the chain. Those rows
/// are copied into 16-column strips (`strips`) on the way, a 128-row chunk at a time, so for
/// `dW` a register of sixteen columns steps down the rows without a page per row; `dw_t` holds
/// `dW^T` meanwhile. OpenBLAS packs `S` once per product. P0 top-1000 at 1 thread on ml-100k:
/// 43.75 against 45.81 ms an epoch (medians of 5 alternating runs), the model's bits unchanged.
///
/// # Safety
/// The CPU must support AVX-512F; `1 <= k <= PRODUCTS_MAX_K` and the lengths are as stated
/// (checked).
#[target_feature(enable = "avx512f,avx2")]
#[allow(clippy::too_many_arguments)] // the product's factors, shapes, outputs and scratch
pub(crate) unsafe fn backward_products(
    s: &[f32],
    e: &[f32],
    w: &[f32],
    v: usize,
    k: usize,
    dw: &mut [f32],
    de: &mut [f32],
    strips: &mut Vec<f32>,
    dw_t: &mut Vec<f32>,
) {
    assert!((1..=PRODUCTS_MAX_K).contains(&k));
    assert!(
        s.len() >= v * v && e.len() >= v * k && w.len() >= v * k && dw.len() >= v * k && de.len() >= v * k
    );
    dw_t.resize(k * v, 0.0);
    for (j, row) in dw[..v * k].chunks_exact(k).enumerate() {
        for (i, &x) in row.iter().enumerate() {
            dw_t[i * v + j] = x;
        }
    }
    let blocks = v.div_ceil(16);
    strips.resize(blocks * 16 * PRODUCT_CHUNK, 0.0);
    let mut lo = 0;
    while lo < v {
        let hi = (lo + PRODUCT_CHUNK).min(v);
        match k.div_ceil(16) {
            1 => chunk_times_w::<1, 8>(s, w, v, k, lo..hi, de, strips),
            2 => chunk_times_w::<2, 8>(s, w, v, k, lo..hi, de, strips),
            3 => chunk_times_w::<3, 4>(s, w, v, k, lo..hi, de, strips),
            _ => chunk_times_w::<4, 4>(s, w, v, k, lo..hi, de, strips),
        }
        st_times_e(strips, hi - lo, &e[lo * k..hi * k], v, k, dw_t);
        lo = hi;
    }
    for (j, row) in dw[..v * k].chunks_exact_mut(k).enumerate() {
        for (i, x) in row.iter_mut().enumerate() {
            *x = dw_t[i * v + j];
        }
    }
}

/// `dE += S W` for the rows `chunk` of `S`, `R` rows at a time (the last `len % R` one by
/// one), which also go into `strips` (see [`st_times_e`]) while they are in L1: each row's
/// `dE` in `Z` registers over `k` (`Z = ceil(k / 16)`); per column `j`, `S[r][j]` broadcast
/// times `W[j]`, a chain over `j` added to `dE` every [`PRODUCT_CHUNK`] columns.
#[target_feature(enable = "avx512f,avx2")]
#[allow(clippy::too_many_arguments)] // the product's factors, shapes, rows and outputs
fn chunk_times_w<const Z: usize, const R: usize>(
    s: &[f32],
    w: &[f32],
    v: usize,
    k: usize,
    chunk: std::ops::Range<usize>,
    de: &mut [f32],
    strips: &mut [f32],
) {
    let full = chunk.start + (chunk.len() - chunk.len() % R);
    for r0 in (chunk.start..full).step_by(R) {
        rows_times_w::<Z, R>(s, w, v, k, r0, chunk.clone(), de, strips);
    }
    for r0 in full..chunk.end {
        rows_times_w::<Z, 1>(s, w, v, k, r0, chunk.clone(), de, strips);
    }
}

/// Rows `r0 .. r0 + R` of [`chunk_times_w`].
#[inline]
#[target_feature(enable = "avx512f,avx2")]
#[allow(clippy::too_many_arguments)] // as chunk_times_w, and the first row
fn rows_times_w<const Z: usize, const R: usize>(
    s: &[f32],
    w: &[f32],
    v: usize,
    k: usize,
    r0: usize,
    chunk: std::ops::Range<usize>,
    de: &mut [f32],
    strips: &mut [f32],
) {
    let n = chunk.len();
    assert!(chunk.start <= r0 && r0 + R <= chunk.end && chunk.end <= v && s.len() >= v * v);
    assert!(
        w.len() >= v * k && de.len() >= v * k && 16 * (Z - 1) < k && strips.len() >= v.div_ceil(16) * n * 16
    );
    let masks: [__mmask16; Z] = std::array::from_fn(|z| lanes_before(16 * z, k));
    let mut acc = [[_mm512_setzero_ps(); Z]; R];
    for b in 0..v.div_ceil(16) {
        let (j0, m) = (16 * b, lanes_before(16 * b, v));
        for q in 0..R {
            // SAFETY: row `r0 + q < v` of `s`, columns `j0 ..` masked to `< v`; the strip
            // slot `(b n + r0 + q - chunk.start) 16 ..+16` lies inside `strips` (asserted).
            unsafe {
                let x = _mm512_maskz_loadu_ps(m, s.as_ptr().add((r0 + q) * v + j0));
                _mm512_storeu_ps(strips.as_mut_ptr().add((b * n + r0 + q - chunk.start) * 16), x);
            }
        }
        for j in j0..(j0 + 16).min(v) {
            // SAFETY: row `j < v` of `w` (`k` columns, masked), elements `(r0 + q, j)` of `s`.
            unsafe {
                let wj: [__m512; Z] =
                    std::array::from_fn(|z| _mm512_maskz_loadu_ps(masks[z], w.as_ptr().add(j * k + 16 * z)));
                for (q, acc) in acc.iter_mut().enumerate() {
                    let x = _mm512_set1_ps(*s.as_ptr().add((r0 + q) * v + j));
                    for (a, &wz) in acc.iter_mut().zip(&wj) {
                        *a = _mm512_fmadd_ps(x, wz, *a);
                    }
                }
            }
        }
        let end = (j0 + 16).min(v);
        if end % PRODUCT_CHUNK == 0 || end == v {
            for (q, acc) in acc.iter_mut().enumerate() {
                for (z, a) in acc.iter_mut().enumerate() {
                    // SAFETY: row `r0 + q < v` of `de`, `k` columns (masked).
                    unsafe {
                        let p = de.as_mut_ptr().add((r0 + q) * k + 16 * z);
                        _mm512_mask_storeu_ps(
                            p,
                            masks[z],
                            _mm512_add_ps(_mm512_maskz_loadu_ps(masks[z], p), *a),
                        );
                    }
                    *a = _mm512_setzero_ps();
                }
            }
        }
    }
}

/// `dW^T += S_c^T E_c` for one chunk `c` of `n` rows: strip by strip (sixteen columns `j` in a
/// register), `I` of `dW^T`'s rows at a time, each a chain down the chunk's rows.
#[target_feature(enable = "avx512f,avx2")]
fn st_times_e(strips: &[f32], n: usize, e: &[f32], v: usize, k: usize, dw_t: &mut [f32]) {
    let mut i0 = 0;
    while i0 < k {
        // As many of `dW^T`'s rows as registers allow at once (P0's k = 20: one pass).
        i0 += match k - i0 {
            24.. => st_times_e_rows::<24>(strips, n, e, v, k, i0, dw_t),
            20.. => st_times_e_rows::<20>(strips, n, e, v, k, i0, dw_t),
            16.. => st_times_e_rows::<16>(strips, n, e, v, k, i0, dw_t),
            12.. => st_times_e_rows::<12>(strips, n, e, v, k, i0, dw_t),
            8.. => st_times_e_rows::<8>(strips, n, e, v, k, i0, dw_t),
            4.. => st_times_e_rows::<4>(strips, n, e, v, k, i0, dw_t),
            _ => st_times_e_rows::<1>(strips, n, e, v, k, i0, dw_t),
        };
    }
}

/// Rows `i0 .. i0 + I` of `dW^T` (see [`st_times_e`]); returns `I`.
#[target_feature(enable = "avx512f,avx2")]
#[allow(clippy::too_many_arguments)] // the strips, their shape, E and the output rows
fn st_times_e_rows<const I: usize>(
    strips: &[f32],
    n: usize,
    e: &[f32],
    v: usize,
    k: usize,
    i0: usize,
    dw_t: &mut [f32],
) -> usize {
    assert!(i0 + I <= k && e.len() >= n * k && dw_t.len() >= k * v);
    for b in 0..v.div_ceil(16) {
        let m = lanes_before(16 * b, v);
        let strip = &strips[b * n * 16..(b + 1) * n * 16];
        let mut acc = [_mm512_setzero_ps(); I];
        for r in 0..n {
            // SAFETY: row `r < n` of the strip and of `e` (columns `i0 .. i0 + I <= k`).
            unsafe {
                let x = _mm512_loadu_ps(strip.as_ptr().add(r * 16));
                let er = e.as_ptr().add(r * k + i0);
                for (i, a) in acc.iter_mut().enumerate() {
                    *a = _mm512_fmadd_ps(x, _mm512_set1_ps(*er.add(i)), *a);
                }
            }
        }
        for (i, &a) in acc.iter().enumerate() {
            // SAFETY: row `i0 + i < k` of `dw_t`, columns `16 b ..` masked to `< v`.
            unsafe {
                let p = dw_t.as_mut_ptr().add((i0 + i) * v + 16 * b);
                _mm512_mask_storeu_ps(p, m, _mm512_add_ps(_mm512_maskz_loadu_ps(m, p), a));
            }
        }
    }
    I
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::item2vec::softmax::exp_fused_f32;

    /// Random `S` (V x V), `E`, `W` (V x k) and nonzero starting `dW`, `dE`.
    fn product_inputs(v: usize, k: usize) -> [Vec<f32>; 5] {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64((v * 67 + k) as u64);
        let mut draw =
            |n: usize, half: f32| -> Vec<f32> { (0..n).map(|_| rng.random_range(-half..half)).collect() };
        [draw(v * v, 1e-3), draw(v * k, 0.7), draw(v * k, 0.7), draw(v * k, 1e-2), draw(v * k, 1e-2)]
    }

    /// `backward_products`' `(dW, dE)` from `product_inputs`.
    fn products_of(v: usize, k: usize, [s, e, w, dw, de]: &[Vec<f32>; 5]) -> (Vec<f32>, Vec<f32>) {
        let (mut dw, mut de, mut strips, mut dw_t) = (dw.clone(), de.clone(), Vec::new(), Vec::new());
        // SAFETY: the callers checked AVX-512F; shapes as the function states.
        unsafe { backward_products(s, e, w, v, k, &mut dw, &mut de, &mut strips, &mut dw_t) };
        (dw, de)
    }

    /// At P0's width (k = 20) and two wider ones, `backward_products` adds to `dE` and `dW`
    /// exactly what `reelvec_metrics::blas::gemm` (OpenBLAS, the other builds' products from
    /// V = 512) adds, bit for bit, at vocabularies with and without a partial last chunk,
    /// strip or row block (outputs start nonzero, so the chunk sums' additions are compared
    /// too): the AVX-512 build keeps the other builds' model bits there. Skips, saying so,
    /// where the CPU lacks AVX-512F.
    #[test]
    fn backward_products_match_blas_bitwise() {
        use ndarray::{ArrayView2, ArrayViewMut2};
        if !std::arch::is_x86_feature_detected!("avx512f") {
            println!("skipped: this CPU has no AVX-512F");
            return;
        }
        for (v, k) in [(512, 20), (600, 20), (777, 20), (1000, 20), (1000, 32), (520, 64)] {
            let inputs = product_inputs(v, k);
            let [s, e, w, dw0, de0] = &inputs;
            let (mut want_dw, mut want_de) = (dw0.clone(), de0.clone());
            let sv = ArrayView2::from_shape((v, v), &s[..]).unwrap();
            let ev = ArrayView2::from_shape((v, k), &e[..]).unwrap();
            let wv = ArrayView2::from_shape((v, k), &w[..]).unwrap();
            let mut out = ArrayViewMut2::from_shape((v, k), &mut want_dw[..]).unwrap();
            reelvec_metrics::blas::gemm(1.0, &sv.t(), &ev, 1.0, &mut out);
            let mut out = ArrayViewMut2::from_shape((v, k), &mut want_de[..]).unwrap();
            reelvec_metrics::blas::gemm(1.0, &sv, &wv, 1.0, &mut out);
            let (dw, de) = products_of(v, k, &inputs);
            let bits = |x: &[f32]| x.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&dw), bits(&want_dw), "dW at V {v}, k {k}");
            assert_eq!(bits(&de), bits(&want_de), "dE at V {v}, k {k}");
        }
    }

    /// At every width `k` the kernels take (1 to 64: one to four registers, full and partial),
    /// each output is the exact product sum (f64) to within f32 rounding of its terms.
    #[test]
    fn backward_products_are_the_product_sums_at_every_width() {
        if !std::arch::is_x86_feature_detected!("avx512f") {
            println!("skipped: this CPU has no AVX-512F");
            return;
        }
        let v = 530;
        for k in 1..=PRODUCTS_MAX_K {
            let inputs = product_inputs(v, k);
            let [s, e, w, dw0, de0] = &inputs;
            let (dw, de) = products_of(v, k, &inputs);
            for (j, i) in (0..v).flat_map(|j| (0..k).map(move |i| (j, i))) {
                // dW[j][i] = dW0 + sum_r S[r][j] E[r][i]; dE[j][i] = dE0 + sum_c S[j][c] W[c][i].
                let terms_w = (0..v).map(|r| s[r * v + j] as f64 * e[r * k + i] as f64);
                let terms_e = (0..v).map(|c| s[j * v + c] as f64 * w[c * k + i] as f64);
                for (got, start, terms, what) in [
                    (dw[j * k + i], dw0[j * k + i], terms_w.collect::<Vec<_>>(), "dW"),
                    (de[j * k + i], de0[j * k + i], terms_e.collect(), "dE"),
                ] {
                    let want = start as f64 + terms.iter().sum::<f64>();
                    let scale = start.abs() as f64 + terms.iter().map(|t| t.abs()).sum::<f64>();
                    assert!(
                        (got as f64 - want).abs() <= 1e-5 * scale,
                        "{what}[{j}][{i}] at k {k}: {got} vs {want}"
                    );
                }
            }
        }
    }

    /// `exp16` is `exp_fused_f32` bit for bit: f32s through [-100, 100] at a stride of 37 ulps
    /// (past both ends of the clamp, and around zero), plus infinities and NaN. Skips, saying
    /// so, where the CPU lacks AVX-512F.
    #[test]
    fn exp16_is_the_portable_fused_exponential_bitwise() {
        if !std::arch::is_x86_feature_detected!("avx512f") {
            println!("skipped: this CPU has no AVX-512F");
            return;
        }
        let xs = crate::item2vec::softmax::exp_test_inputs();
        assert!(xs.len() > 100_000, "{} inputs", xs.len());
        for chunk in xs.chunks(16) {
            let mut lanes = [0.0f32; 16];
            lanes[..chunk.len()].copy_from_slice(chunk);
            let mut out = [0.0f32; 16];
            // SAFETY: AVX-512F detected above; both arrays hold sixteen f32.
            unsafe { _mm512_storeu_ps(out.as_mut_ptr(), exp16(_mm512_loadu_ps(lanes.as_ptr()))) };
            for (&x, &got) in chunk.iter().zip(&out) {
                let want = exp_fused_f32(x);
                assert!(
                    got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan()),
                    "exp({x}): {got} vs {want}"
                );
            }
        }
    }
}
