//! AVX2 builds of the full-softmax row helpers of [`super::softmax`] and of the per-pair SGD's
//! `dot`/`axpy` ([`super::sgd`]; `dot` is [`crate::mf::dot`]'s operations), eight lanes at a time.
//!
//! Each helper performs, element by element, exactly the operations of its portable twin in
//! `softmax.rs` (no fused multiply-add, the same association; the same eight-accumulator sum
//! and the same scalar tail), so the two round identically: the portable code is the reference
//! and `kernel_tests` checks the builds bitwise. NaN propagates as in the portable code:
//! `_mm256_max_ps(a, x)` / `_mm256_min_ps(a, x)` return `x` when it is NaN, like `f32::clamp`.
//!
//! Every function is `unsafe` to call: the CPU must support AVX2. They are `#[inline(always)]`
//! and meant to be inlined into a `#[target_feature(enable = "avx2")]` function.

#![cfg(target_arch = "x86_64")]

use std::arch::x86_64::*;

use super::softmax::{
    max_of, sum_of, EXP_LN2_HI, EXP_LN2_LO, EXP_MAX, EXP_MIN, EXP_POLY, EXP_POLY_LEAD, EXP_ROUND,
};

/// `e^x` of eight lanes: [`exp_f32`](super::softmax::exp_f32)'s operations.
#[inline(always)]
unsafe fn exp8(x: __m256) -> __m256 {
    // SAFETY (whole body): register-only AVX/AVX2 arithmetic; the caller guarantees AVX2.
    unsafe {
        let x = _mm256_min_ps(_mm256_set1_ps(EXP_MAX), _mm256_max_ps(_mm256_set1_ps(EXP_MIN), x));
        let round = _mm256_set1_ps(EXP_ROUND);
        let t = _mm256_add_ps(_mm256_mul_ps(x, _mm256_set1_ps(std::f32::consts::LOG2_E)), round);
        let n = _mm256_sub_ps(t, round);
        let r = _mm256_sub_ps(
            _mm256_sub_ps(x, _mm256_mul_ps(n, _mm256_set1_ps(EXP_LN2_HI))),
            _mm256_mul_ps(n, _mm256_set1_ps(EXP_LN2_LO)),
        );
        let mut p = _mm256_set1_ps(EXP_POLY_LEAD);
        for c in EXP_POLY {
            p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(c));
        }
        let e = _mm256_add_ps(_mm256_add_ps(_mm256_mul_ps(_mm256_mul_ps(p, r), r), r), _mm256_set1_ps(1.0));
        let bits = _mm256_add_epi32(
            _mm256_sub_epi32(_mm256_castps_si256(t), _mm256_set1_epi32(EXP_ROUND.to_bits() as i32)),
            _mm256_set1_epi32(127),
        );
        _mm256_mul_ps(e, _mm256_castsi256_ps(_mm256_slli_epi32::<23>(bits)))
    }
}

/// `e^x` of eight lanes: [`exp_fused_f32`](super::softmax::exp_fused_f32)'s operations, the
/// same fused multiply-adds (the caller enables FMA).
#[inline(always)]
unsafe fn exp8_fused(x: __m256) -> __m256 {
    // SAFETY (whole body): register-only AVX2/FMA arithmetic; the caller guarantees both.
    unsafe {
        let x = _mm256_min_ps(_mm256_set1_ps(EXP_MAX), _mm256_max_ps(_mm256_set1_ps(EXP_MIN), x));
        let round = _mm256_set1_ps(EXP_ROUND);
        let t = _mm256_fmadd_ps(x, _mm256_set1_ps(std::f32::consts::LOG2_E), round);
        let n = _mm256_sub_ps(t, round);
        let r = _mm256_fnmadd_ps(
            n,
            _mm256_set1_ps(EXP_LN2_LO),
            _mm256_fnmadd_ps(n, _mm256_set1_ps(EXP_LN2_HI), x),
        );
        let mut p = _mm256_set1_ps(EXP_POLY_LEAD);
        for c in EXP_POLY {
            p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(c));
        }
        let e = _mm256_add_ps(_mm256_fmadd_ps(_mm256_mul_ps(p, r), r, r), _mm256_set1_ps(1.0));
        let bits = _mm256_add_epi32(
            _mm256_sub_epi32(_mm256_castps_si256(t), _mm256_set1_epi32(EXP_ROUND.to_bits() as i32)),
            _mm256_set1_epi32(127),
        );
        _mm256_mul_ps(e, _mm256_castsi256_ps(_mm256_slli_epi32::<23>(bits)))
    }
}

/// `x <- exp_fused_f32(x - m)` (the pair tables' exponentials), eight lanes at a time, the
/// tail through one padded register: bitwise the portable loop.
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn exp_fused_shifted(x: &mut [f32], m: f32) {
    let body = x.len() - x.len() % 8;
    let mv = _mm256_set1_ps(m);
    let mut i = 0;
    while i < body {
        // SAFETY: `i + 8 <= body <= len`; AVX2 and FMA by the caller's guarantee.
        unsafe {
            let p = x.as_mut_ptr().add(i);
            _mm256_storeu_ps(p, exp8_fused(_mm256_sub_ps(_mm256_loadu_ps(p), mv)));
        }
        i += 8;
    }
    let rest = &mut x[body..];
    if !rest.is_empty() {
        let mut pad = [0.0f32; 8];
        pad[..rest.len()].copy_from_slice(rest);
        // SAFETY: `pad` holds eight f32; AVX2 and FMA as above.
        let e = unsafe { lanes(exp8_fused(_mm256_sub_ps(_mm256_loadu_ps(pad.as_ptr()), mv))) };
        rest.copy_from_slice(&e[..rest.len()]);
    }
}

/// The eight lanes of a register.
#[inline(always)]
unsafe fn lanes(v: __m256) -> [f32; 8] {
    let mut out = [0.0f32; 8];
    // SAFETY: `out` holds eight f32; the caller guarantees AVX2.
    unsafe { _mm256_storeu_ps(out.as_mut_ptr(), v) };
    out
}

/// `a . b` over the common length: [`crate::mf::dot`]'s operations (lane `l` of one register
/// accumulates the products `l mod 8` in order, the same pairwise reduction, the same scalar
/// tail), so the two agree bitwise.
#[inline(always)]
pub(super) unsafe fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let body = n - n % 8;
    // SAFETY: every load is at `i + 8 <= body <= n`, inside both slices; the caller guarantees
    // AVX2.
    let l = unsafe {
        let mut acc = _mm256_setzero_ps();
        let mut i = 0;
        while i < body {
            let p = _mm256_mul_ps(_mm256_loadu_ps(a.as_ptr().add(i)), _mm256_loadu_ps(b.as_ptr().add(i)));
            acc = _mm256_add_ps(acc, p);
            i += 8;
        }
        lanes(acc)
    };
    let mut s = ((l[0] + l[4]) + (l[1] + l[5])) + ((l[2] + l[6]) + (l[3] + l[7]));
    for i in body..n {
        s += a[i] * b[i];
    }
    s
}

/// `y += f x` over the common length, element by element (the portable loop's operations).
#[inline(always)]
pub(super) unsafe fn axpy(f: f32, x: &[f32], y: &mut [f32]) {
    let n = x.len().min(y.len());
    let body = n - n % 8;
    // SAFETY: every load and store is at `i + 8 <= body <= n`, inside both slices; the caller
    // guarantees AVX2.
    unsafe {
        let fv = _mm256_set1_ps(f);
        let mut i = 0;
        while i < body {
            let yp = y.as_mut_ptr().add(i);
            let v = _mm256_add_ps(_mm256_loadu_ps(yp), _mm256_mul_ps(fv, _mm256_loadu_ps(x.as_ptr().add(i))));
            _mm256_storeu_ps(yp, v);
            i += 8;
        }
    }
    for i in body..n {
        y[i] += f * x[i];
    }
}

/// `z = f (a + c) + b` and `max(z)`: the portable `projected_logits`' two-row pass.
#[inline(always)]
pub(super) unsafe fn logits2(a: &[f32], c: &[f32], b: &[f32], f: f32, z: &mut [f32]) -> f32 {
    let v = z.len();
    assert!(a.len() >= v && c.len() >= v && b.len() >= v);
    let body = v - v % 8;
    // SAFETY: every load and store is at `i + 8 <= body <= v`, inside all four slices; the
    // caller guarantees AVX2.
    let mut m = unsafe {
        let fv = _mm256_set1_ps(f);
        let mut acc = _mm256_set1_ps(f32::NEG_INFINITY);
        let mut i = 0;
        while i < body {
            let s = _mm256_add_ps(_mm256_loadu_ps(a.as_ptr().add(i)), _mm256_loadu_ps(c.as_ptr().add(i)));
            let x = _mm256_add_ps(_mm256_mul_ps(fv, s), _mm256_loadu_ps(b.as_ptr().add(i)));
            _mm256_storeu_ps(z.as_mut_ptr().add(i), x);
            acc = _mm256_max_ps(acc, x);
            i += 8;
        }
        max_of(lanes(acc))
    };
    for j in body..v {
        z[j] = f * (a[j] + c[j]) + b[j];
        m = m.max(z[j]);
    }
    m
}

/// `max(x)`: the portable `max_f32`.
#[inline(always)]
pub(super) unsafe fn max(x: &[f32]) -> f32 {
    let body = x.len() - x.len() % 8;
    // SAFETY: loads at `i + 8 <= body <= len`; the caller guarantees AVX2.
    let m = unsafe {
        let mut acc = _mm256_set1_ps(f32::NEG_INFINITY);
        let mut i = 0;
        while i < body {
            acc = _mm256_max_ps(acc, _mm256_loadu_ps(x.as_ptr().add(i)));
            i += 8;
        }
        max_of(lanes(acc))
    };
    x[body..].iter().fold(m, |m, &v| m.max(v))
}

/// `x <- exp(x - m)` and the sum of the results: the portable `exp_sum_in_place`.
#[inline(always)]
pub(super) unsafe fn exp_sum(x: &mut [f32], m: f32) -> f32 {
    let body = x.len() - x.len() % 8;
    // SAFETY: loads and stores at `i + 8 <= body <= len`; the caller guarantees AVX2.
    let acc = unsafe {
        let mv = _mm256_set1_ps(m);
        let mut acc = _mm256_setzero_ps();
        let mut i = 0;
        while i < body {
            let p = x.as_mut_ptr().add(i);
            let e = exp8(_mm256_sub_ps(_mm256_loadu_ps(p), mv));
            _mm256_storeu_ps(p, e);
            acc = _mm256_add_ps(acc, e);
            i += 8;
        }
        lanes(acc)
    };
    // The tail (fewer than eight) through one padded register: the same values as
    // `exp_f32(v - m)` element by element, summed in order as the portable tail is.
    let rest = &mut x[body..];
    if !rest.is_empty() {
        let mut pad = [0.0f32; 8];
        pad[..rest.len()].copy_from_slice(rest);
        // SAFETY: `pad` holds eight f32; the caller guarantees AVX2.
        let e = unsafe { lanes(exp8(_mm256_sub_ps(_mm256_loadu_ps(pad.as_ptr()), _mm256_set1_ps(m)))) };
        rest.copy_from_slice(&e[..rest.len()]);
    }
    sum_of(acc, rest)
}

/// `x <- g x`.
#[inline(always)]
pub(super) unsafe fn scale(x: &mut [f32], g: f32) {
    let body = x.len() - x.len() % 8;
    // SAFETY: loads and stores at `i + 8 <= body <= len`; the caller guarantees AVX2.
    unsafe {
        let gv = _mm256_set1_ps(g);
        let mut i = 0;
        while i < body {
            let p = x.as_mut_ptr().add(i);
            _mm256_storeu_ps(p, _mm256_mul_ps(_mm256_loadu_ps(p), gv));
            i += 8;
        }
    }
    x[body..].iter_mut().for_each(|x| *x *= g);
}

/// With `d = g z`: `db += d`, `sa += f d`, `sc += f d`: the portable `Row::accumulate2`.
#[inline(always)]
pub(super) unsafe fn accumulate2(z: &[f32], g: f32, db: &mut [f32], sa: &mut [f32], sc: &mut [f32], f: f32) {
    let v = z.len();
    assert!(db.len() >= v && sa.len() >= v && sc.len() >= v);
    let body = v - v % 8;
    // SAFETY: loads and stores at `i + 8 <= body <= v`, inside all four slices (`sa` and `sc`
    // are distinct `&mut` borrows); the caller guarantees AVX2.
    unsafe {
        let (fv, gv) = (_mm256_set1_ps(f), _mm256_set1_ps(g));
        let mut i = 0;
        while i < body {
            let dv = _mm256_mul_ps(_mm256_loadu_ps(z.as_ptr().add(i)), gv);
            let fd = _mm256_mul_ps(fv, dv);
            let (pb, pa, pc) = (db.as_mut_ptr().add(i), sa.as_mut_ptr().add(i), sc.as_mut_ptr().add(i));
            _mm256_storeu_ps(pb, _mm256_add_ps(_mm256_loadu_ps(pb), dv));
            _mm256_storeu_ps(pa, _mm256_add_ps(_mm256_loadu_ps(pa), fd));
            _mm256_storeu_ps(pc, _mm256_add_ps(_mm256_loadu_ps(pc), fd));
            i += 8;
        }
    }
    for j in body..v {
        let d = z[j] * g;
        db[j] += d;
        sa[j] += f * d;
        sc[j] += f * d;
    }
}

/// `sum_j x_j * y_j`: the portable `Row::pair_sum` (four registers of eight accumulators over
/// 32-element chunks, folded into one as `(a0 + a1) + (a2 + a3)`, then the remaining 8-element
/// chunks, then [`sum_of`]'s reduction and the tail's products in order). Four independent
/// chains keep the adds' latency off the critical path; `x_j * y_j` commutes, so swapping `x`
/// and `y` gives the same bits.
#[inline(always)]
pub(super) unsafe fn pair_sum(x: &[f32], y: &[f32]) -> f32 {
    let v = x.len();
    assert!(y.len() >= v);
    let (body32, body8) = (v - v % 32, v - v % 8);
    // SAFETY: loads at `i + 8 <= body8 <= v`, inside both slices; the caller guarantees AVX2.
    let acc = unsafe {
        let term =
            |i: usize| _mm256_mul_ps(_mm256_loadu_ps(x.as_ptr().add(i)), _mm256_loadu_ps(y.as_ptr().add(i)));
        let (mut a0, mut a1, mut a2, mut a3) =
            (_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps());
        let mut i = 0;
        while i < body32 {
            a0 = _mm256_add_ps(a0, term(i));
            a1 = _mm256_add_ps(a1, term(i + 8));
            a2 = _mm256_add_ps(a2, term(i + 16));
            a3 = _mm256_add_ps(a3, term(i + 24));
            i += 32;
        }
        let mut acc = _mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3));
        while i < body8 {
            acc = _mm256_add_ps(acc, term(i));
            i += 8;
        }
        lanes(acc)
    };
    let mut tail = [0.0f32; 8];
    for (t, j) in tail.iter_mut().zip(body8..v) {
        *t = x[j] * y[j];
    }
    sum_of(acc, &tail[..v - body8])
}

/// With `t_j = x_j * acc_j`: `s += f t` and `db += t`: the portable `Row::row_out`.
#[inline(always)]
pub(super) unsafe fn row_out(x: &[f32], acc: &[f32], f: f32, s: &mut [f32], db: &mut [f32]) {
    let v = x.len();
    assert!(acc.len() >= v && s.len() >= v && db.len() >= v);
    let body = v - v % 8;
    // SAFETY: loads and stores at `i + 8 <= body <= v`, inside all four slices (`s` and `db`
    // are distinct `&mut` borrows); the caller guarantees AVX2.
    unsafe {
        let fv = _mm256_set1_ps(f);
        let mut i = 0;
        while i < body {
            let t = _mm256_mul_ps(_mm256_loadu_ps(x.as_ptr().add(i)), _mm256_loadu_ps(acc.as_ptr().add(i)));
            let (ps, pd) = (s.as_mut_ptr().add(i), db.as_mut_ptr().add(i));
            _mm256_storeu_ps(ps, _mm256_add_ps(_mm256_loadu_ps(ps), _mm256_mul_ps(fv, t)));
            _mm256_storeu_ps(pd, _mm256_add_ps(_mm256_loadu_ps(pd), t));
            i += 8;
        }
    }
    for j in body..v {
        let t = x[j] * acc[j];
        s[j] += f * t;
        db[j] += t;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::item2vec::softmax::exp_fused_f32;

    /// The AVX2 build of the pair tables' exponentials is `exp_fused_f32` bit for bit: f32s
    /// through [-100, 100] at a stride of 37 ulps (past both ends of the clamp, and around
    /// zero), plus infinities and NaN, with a tail shorter than a register. Skips, saying so,
    /// where the CPU lacks AVX2 or FMA.
    #[test]
    fn exp_fused_shifted_is_the_portable_fused_exponential_bitwise() {
        if !(std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")) {
            println!("skipped: this CPU has no AVX2 and FMA");
            return;
        }
        let mut xs = crate::item2vec::softmax::exp_test_inputs();
        xs.truncate((xs.len() / 8 - 1) * 8 + 5);
        assert!(xs.len() > 100_000 && xs.len() % 8 == 5, "{} inputs", xs.len());
        for m in [0.0f32, 1.5] {
            let mut got = xs.clone();
            // SAFETY: AVX2 and FMA detected above.
            unsafe { exp_fused_shifted(&mut got, m) };
            for (&x, &got) in xs.iter().zip(&got) {
                let want = exp_fused_f32(x - m);
                assert!(
                    got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan()),
                    "exp({x} - {m}): {got} vs {want}"
                );
            }
        }
    }
}
