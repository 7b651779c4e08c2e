//! Adam's element update on lanes whose state is subnormal, without one subnormal float
//! operation: the same bits as [`adam_elem`](super::adam_elem) with denormals kept (IEEE
//! round-to-nearest-even), at the cost of normal-range f64 arithmetic instead of the
//! microcode assists (~100 cycles an operation) that subnormal operands and results cost.
//!
//! **Why it is exact.** Each f32 operation of `adam_elem` (`*`, `+`, `-`, `/`, `sqrt`) is
//! replayed here on f64 copies of its f32 operands and its result rounded to f32 by [`narrow`]:
//! - a product of two f32 is exact in f64 (24 + 24 bits, exponent >= -298), so one rounding;
//! - for `+`, `-`, `/`, `sqrt` the f64 result is correctly rounded to 53 bits and then to f32:
//!   rounding twice gives the once-rounded result when the wider precision is at least
//!   `2p + 2` (Figueroa, "When is double rounding innocuous?", 1995; 53 >= 2 * 24 + 2). In the
//!   f32 subnormal range the target grid is coarser (fewer than 24 bits), so the bound holds a
//!   fortiori; moreover a sum of two f32 that lands there is exact (both are multiples of
//!   2^-149), and `sqrt` of a positive f32 is never subnormal.
//! - [`narrow`] rounds a normal-range f32 result with the hardware conversion (a normal f32
//!   result: no assist) and a result below 2^-126 to `round_ties_even(|x| * 2^149)` units of
//!   2^-149 with integer bits (the sign kept; `k = 2^23` is the bit pattern of 2^-126, which is
//!   right when the rounding carries into the normal range). `|x| * 2^149 + 2^52` rounds to an
//!   integer with ties to even because the sum lies in [2^52, 2^53), where the f64 spacing is 1.
//!
//! **Why no operation here is subnormal.** [`widen`] turns a subnormal f32 into
//! `k as f64 * 2^-149` (integer conversion, then a product of normal f64s) and converts only
//! normal f32s in hardware; the lanes sent here have finite inputs and the step's scalars are
//! normal or zero (checked by [`scalars_are_normal`]), so every f64 value is 0 or at least
//! 2^-149 * 2^-149 / 2^128 = 2^-426 in magnitude, far above f64's 2^-1022; the only f32 produced
//! by arithmetic is `x as f32` with |x| >= 2^-126. `tests::soft_path_raises_no_denormal_flag`
//! checks the x86 MXCSR denormal-operand and underflow flags stay clear.

use super::StepScalars;

/// 2^-149, the f32 subnormal unit.
const UNIT: f64 = f64::from_bits((1023 - 149) << 52);
/// 2^149.
const INV_UNIT: f64 = f64::from_bits((1023 + 149) << 52);
/// 2^-126, the smallest normal f32.
const MIN_NORMAL: f64 = f64::from_bits((1023 - 126) << 52);
/// 2^52: adding it rounds a value in [0, 2^52) to an integer, ties to even.
const ROUND_INT: f64 = f64::from_bits((1023 + 52) << 52);
const EXP_MASK: u32 = 0x7f80_0000;
const MANT_MASK: u32 = 0x007f_ffff;

/// Whether `x` is subnormal (nonzero with a zero exponent field), on the bits.
#[inline(always)]
pub(super) fn is_subnormal_bits(x: f32) -> bool {
    let b = x.to_bits();
    b & EXP_MASK == 0 && b & MANT_MASK != 0
}

/// Whether `x` is finite, on the bits.
#[inline(always)]
fn is_finite_bits(x: f32) -> bool {
    x.to_bits() & EXP_MASK != EXP_MASK
}

/// Whether every scalar of the step is finite and normal or zero, so the emulation's f64 values
/// stay in f64's normal range (else the caller keeps the hardware path).
pub(super) fn scalars_are_normal(s: &StepScalars) -> bool {
    [
        s.one_minus_beta1,
        s.beta2,
        s.one_minus_beta2,
        s.eps,
        s.l2,
        s.decay,
        s.neg_step_size,
        s.bias_correction2_sqrt,
        1.0 - s.one_minus_beta1,
    ]
    .iter()
    .all(|&x| is_finite_bits(x) && !is_subnormal_bits(x))
}

/// Whether the lane's inputs send it here: some subnormal, all finite (NaN payloads and
/// infinities stay with the hardware).
#[inline(always)]
pub(super) fn lane_is_soft(p: f32, g: f32, m: f32, v: f32) -> bool {
    (is_subnormal_bits(p) | is_subnormal_bits(g) | is_subnormal_bits(m) | is_subnormal_bits(v))
        & (is_finite_bits(p) & is_finite_bits(g) & is_finite_bits(m) & is_finite_bits(v))
}

/// `x` exactly, as f64, without a floating-point operation on a subnormal: a normal (or
/// infinite) `x` by moving its bits (exponent rebiased), a subnormal or zero one as its
/// mantissa's integer conversion times 2^-149 (normal f64 arithmetic). Integer work only, with
/// no select in front of a conversion that the compiler could hoist past it (LLVM may convert
/// every lane and select afterwards, and a conversion of a subnormal takes an assist), and
/// branch-free, so loops over lanes vectorise.
#[inline(always)]
fn widen(x: f32) -> f64 {
    let b = x.to_bits();
    let sign = u64::from(b >> 31) << 63;
    let exponent = (b >> 23) & 0xff;
    let mantissa = b & MANT_MASK;
    let rebiased = if exponent == 0xff { 0x7ff } else { u64::from(exponent) + (1023 - 127) };
    let moved = sign | (rebiased << 52) | (u64::from(mantissa) << 29);
    let units = (f64::from(mantissa) * UNIT).to_bits() | sign;
    f64::from_bits(if exponent == 0 { units } else { moved })
}

/// `x` rounded to f32 (nearest, ties to even), without a floating-point operation on a
/// subnormal: below 2^-126 by rounding `|x| 2^149` to an integer on the subnormal grid (normal
/// f64 arithmetic), elsewhere by integer rounding of the bits (52 mantissa bits to 23, the
/// carry running into the exponent, infinity past f32's range; a NaN as the hardware
/// conversion makes it, quieted with its payload's top bits). `x` must be at least 2^-1000 in
/// magnitude or zero (every value of the emulation is). Branch-free, so loops over lanes
/// vectorise.
#[inline(always)]
fn narrow(x: f64) -> f32 {
    let b = x.to_bits();
    let sign = ((b >> 32) as u32) & 0x8000_0000;
    let a = b & 0x7fff_ffff_ffff_ffff;
    // For a small `|x|`, `|x| 2^149 + 2^52` is in [2^52, 2^53): its low bits are the rounded units.
    let units = ((f64::from_bits(a) * INV_UNIT + ROUND_INT).to_bits() & ((1 << 52) - 1)) as u32;
    // Round to nearest even at bit 29: add just under half, plus the kept part's lowest bit.
    let rounded = (a + 0x0fff_ffff + ((a >> 29) & 1)) >> 29;
    // Wrapping: for a small `|x|` this lane is discarded.
    let rebias = (1023 - 127) << 23;
    let normal = if rounded >= (1023 + 128) << 23 { EXP_MASK } else { rounded.wrapping_sub(rebias) as u32 };
    let nan = 0x7fc0_0000 | ((a >> 29) as u32 & MANT_MASK);
    let magnitude = if a < MIN_NORMAL.to_bits() {
        units
    } else if a > f64::INFINITY.to_bits() {
        nan
    } else {
        normal
    };
    f32::from_bits(sign | magnitude)
}

/// `widen(narrow(y))` for a finite `y` of at least 2^-1000 in magnitude (or zero), cheaper: the
/// hardware conversion of `max(|y|, 2^-126)` (never a subnormal: `max` is computed first, and a
/// conversion is not hoisted above it as it can be above a select) where |y| >= 2^-126, and
/// `round_ties_even(|y| 2^149) 2^-149` below, the sign put back.
#[inline(always)]
fn round_to_f32(y: f64) -> f64 {
    let a = y.abs();
    let units = ((a * INV_UNIT + ROUND_INT) - ROUND_INT) * UNIT;
    let normal = f64::from(a.max(MIN_NORMAL) as f32);
    (if a < MIN_NORMAL { units } else { normal }).copysign(y)
}

/// f32 `a * b`.
#[inline(always)]
fn mul(a: f32, b: f32) -> f32 {
    narrow(widen(a) * widen(b))
}

/// f32 `a + b`.
#[inline(always)]
fn add(a: f32, b: f32) -> f32 {
    narrow(widen(a) + widen(b))
}

/// f32 `a - b`.
#[inline(always)]
fn sub(a: f32, b: f32) -> f32 {
    narrow(widen(a) - widen(b))
}

/// f32 `a / b`.
#[inline(always)]
fn div(a: f32, b: f32) -> f32 {
    narrow(widen(a) / widen(b))
}

/// [`adam_elem`](super::adam_elem), operation by operation in the same order, each one emulated:
/// the same bits for finite inputs and normal scalars.
#[inline(never)]
pub(super) fn adam_elem_soft(s: &StepScalars, p: &mut f32, g: f32, m: &mut f32, v: &mut f32) {
    *p = mul(*p, s.decay);
    let g = add(g, mul(s.l2, *p));
    let w = s.one_minus_beta1;
    *m = if s.small_weight != 0 { add(*m, mul(w, sub(g, *m))) } else { sub(g, mul(sub(g, *m), 1.0 - w)) };
    *v = add(mul(*v, s.beta2), mul(mul(s.one_minus_beta2, g), g));
    // sqrt of a nonnegative f32: correctly rounded in f64, then to f32 (never subnormal).
    let root = narrow(widen(*v).sqrt());
    let denom = add(div(root, s.bias_correction2_sqrt), s.eps);
    *p = add(*p, div(mul(s.neg_step_size, *m), denom));
}

/// The scalars of the idle fast path ([`idle_moments`]) for one step, or `None` where it does not
/// apply (L2 in the gradient, the large-weight lerp, or scalars out of its range).
#[derive(Debug, Clone, Copy)]
pub(super) struct IdleScalars {
    decay: f32,
    beta2: f32,
    /// `1 - beta1`.
    w: f32,
    /// `2 * (2 * (|neg_step_size| + 1) / eps + 1)`, rounded up to f32 (see [`idle_moments`]).
    c: f32,
    /// `K_fix`: the first moments of at most this many units of 2^-149 are fixed points of the
    /// idle step (`round_ties_even(w K) = 0`); 0 turns [`stuck_lanes`] off.
    stuck_units: u32,
    /// Bits of the least `|p * decay|` for which [`idle_moments`]' check passes at every
    /// `K <= K_fix`: `c (K_fix + 1) 2^-123`, rounded up to f32.
    stuck_pd_min: u32,
}

impl IdleScalars {
    pub(super) fn new(s: &StepScalars) -> Option<Self> {
        let c = (2.0 * (2.0 * (f64::from(s.neg_step_size).abs() + 1.0) / f64::from(s.eps) + 1.0)) as f32;
        let usable = s.l2 == 0.0
            && s.small_weight != 0
            && s.decay >= 1.0 / 1024.0
            && s.decay <= 1.0
            && s.eps > 0.0
            && c.is_finite()
            && scalars_are_normal(s);
        let (stuck_units, stuck_pd_min) = stuck_bounds(s.one_minus_beta1, c);
        usable.then_some(Self {
            decay: s.decay,
            beta2: s.beta2,
            w: s.one_minus_beta1,
            c,
            stuck_units,
            stuck_pd_min,
        })
    }
}

/// `(K_fix, bits of the least |p decay|)` of [`IdleScalars`] for the weight `w = 1 - beta1` and
/// the check's constant `c`: `K_fix` is the largest `K <= 64` with `round_ties_even(w K) = 0`
/// (f64, exact: `w K` has at most 31 significant bits), the bound `c (K_fix + 1) 2^-123` rounded up
/// to f32 (exact in f64: a power-of-two scaling of a product of small integers and an f32).
/// `(0, _)` when no moment is fixed or the bound leaves f32's normal range.
fn stuck_bounds(w: f32, c: f32) -> (u32, u32) {
    let w = f64::from(w);
    let rounds_to_zero = |k: u32| (f64::from(k) * w + ROUND_INT) - ROUND_INT == 0.0;
    let mut k = 0;
    while k < 64 && rounds_to_zero(k + 1) {
        k += 1;
    }
    let need = f64::from(c) * (f64::from(k) + 1.0) * f64::from_bits((1023 - 123) << 52);
    let mut bound = need as f32;
    if f64::from(bound) < need {
        bound = f32::from_bits(bound.to_bits() + 1);
    }
    if k == 0 || !(need >= MIN_NORMAL && bound.is_finite()) {
        return (0, 0);
    }
    (k, bound.to_bits())
}

/// The idle fast path's shortcut for `N` lanes that all sit at a fixed point of the idle step
/// ([`idle_moments`]' conditions, with `1 <= K <= K_fix` units in `m`): then `m' = m`
/// (`round_ties_even(w K) = 0` units are added), and the step is `p *= decay; v *= beta2`, the
/// same bits as the idle path gives them. Updates `p` and `v` and returns `true` only when
/// every lane qualifies (else touches nothing). Branch-free over the lanes.
#[inline(always)]
pub(super) fn stuck_lanes<const N: usize>(
    s: &IdleScalars,
    p: &mut [f32; N],
    g: &[f32; N],
    m: &[f32; N],
    v: &mut [f32; N],
) -> bool {
    let mut all = s.stuck_units != 0;
    let (mut pn, mut vn) = ([0.0f32; N], [0.0f32; N]);
    for j in 0..N {
        let (pb, gb, mb, vb) = (p[j].to_bits(), g[j].to_bits(), m[j].to_bits(), v[j].to_bits());
        let p_abs = pb & 0x7fff_ffff;
        let p_in = p_abs >= TWO_M100.to_bits() && p_abs < EXP_MASK;
        let v_in = vb == 0 || (vb >= TWO_M124.to_bits() && vb < EXP_MASK);
        // 1..=K_fix units: `x - 1` (wrapping) of ±0's magnitude is 2^32 - 1.
        let m_stuck = (mb & 0x7fff_ffff).wrapping_sub(1) < s.stuck_units;
        let g_zero = gb & 0x7fff_ffff == 0;
        // Out-of-range values become 1 before any arithmetic (as in `idle_moments`).
        let pd = if p_in { p[j] } else { 1.0 } * s.decay;
        pn[j] = pd;
        vn[j] = if v_in { v[j] } else { 1.0 } * s.beta2;
        all &= p_in & v_in & m_stuck & g_zero & (pd.to_bits() & 0x7fff_ffff >= s.stuck_pd_min);
    }
    if all {
        *p = pn;
        *v = vn;
    }
    all
}

/// 2^123.
const TWO_P123: f64 = f64::from_bits((1023 + 123) << 52);
/// 2^-100 (f32): the smallest |p| the idle path takes.
const TWO_M100: f32 = f32::from_bits((127 - 100) << 23);
/// 2^-124 (f32): the smallest nonzero v the idle path takes.
const TWO_M124: f32 = f32::from_bits((127 - 124) << 23);
/// Bits of 2^-90 (f32): the idle path takes first moments below it (and nonzero): below it, as
/// the moment decays by `beta1` a step towards the subnormal range, the products `w m`,
/// `-lr/bc1 * m` and the quotient by `denom` fall below 2^-126 one after the other.
const IDLE_MOMENT_BITS: u32 = (127 - 90) << 23;

/// The idle fast path over `N` lanes: which lanes' step is provably `p *= decay; v *= beta2`
/// and `m' = m + w (0 - m)`, and that `m'` emulated in f64 (as [`adam_elem_soft`] does it).
/// Touches nothing: the caller runs the flagged lanes through the plain hardware update with
/// their first moment replaced by +0, which gives exactly that `p'` and `v'` with no subnormal
/// operation (below), and then stores the returned `m'` in them.
///
/// **The idle lane.** Gradient ±0, L2 zero, the small-weight lerp, `m` nonzero with
/// |m| < 2^-90 (`K` units of 2^-149, `K` real; subnormal when `K < 2^23`), `v` zero or
/// >= 2^-124, `p` finite with |p| >= 2^-100. Then, in `adam_elem`'s order:
/// - `p' = p * decay` (hardware, as the reference: |p'| >= 2^-110, normal);
/// - `g' = g + 0 * p'` is ±0;
/// - `m' = m + w * (g' - m)`: `g' - m = -m` exactly; the product and the sum are emulated
///   ([`mul`], [`add`]: exact f64 arithmetic, then [`narrow`]), so `m'` is the reference's to
///   the bit whether it is normal or subnormal. For a subnormal `m` this is `m` moved
///   `round_ties_even(w K)` units towards 0 (a sum landing in the subnormal range is exact);
///   once `w K <= 1/2` (a tie going to the even 0) **m is a fixed point**, the state rows idle
///   for long sit in (a few units of 2^-149);
/// - `v' = v * beta2 + ((1 - beta2) * g') * g' = v * beta2 + (+0) = v * beta2` (hardware; v >=
///   2^-124 and beta2 >= 1/2 keep it normal, and v = +0 gives +0 either way);
/// - `p' + (-lr/bc1 * m') / denom = p'`: `denom >= eps` (a rounded sum of a non-negative term
///   and eps), `|nss * m'|` (|m'| <= |m|) rounds to at most `|nss| K (1 + 2^-24) + 1/2` units
///   (relative error 2^-24 where normal, half a unit where subnormal) and the quotient to at
///   most that over eps times `(1 + 2^-24)` plus half a unit, so `|step| <= C0 (K + 1) 2^-149`
///   with `C0 = 2 (|nss| + 1) / eps + 1`. A float `p'` with exponent `e` changes when a value
///   is added only if it is at least half the spacing below |p'|, 2^(e-25) >= |p'| 2^-26; so
///   `C0 (K + 1) < |p'| 2^123` (i.e. |step| < |p'| 2^-26) leaves `p'` unchanged. The check
///   runs in f64 as `c (K + 1) <= |p'| 2^123` with `c = 2 C0` rounded up to f32, the factor 2
///   covering the check's own roundings many times over.
///
/// **The hardware update with `m` = +0** on such a lane computes the same `p'`, `g'`, `v'`
/// and `denom` (none of them reads `m`), `+0 + w (g' - +0)`, a zero, for the first moment
/// (replaced by the emulated `m'` afterwards), and `p' + (nss * 0) / denom = p' + (±0) = p'`
/// (`p'` nonzero), the reference's `p''` above. Its operands are `p`, `decay`, `v`, `beta2`,
/// zeros and the step's scalars, all normal or zero, and so are its results: no subnormal
/// operation, no assist.
///
/// No operation here has a subnormal operand or result either: [`widen`] and [`narrow`] take
/// subnormals through integers, `p` is replaced by 1 on lanes that fail its range check before
/// any arithmetic, and the ranges above keep every f32 product normal and every f64 value at
/// least 2^-153. Branch-free over the lanes.
#[inline(always)]
pub(super) fn idle_moments<const N: usize>(
    s: &IdleScalars,
    p: &[f32; N],
    g: &[f32; N],
    m: &[f32; N],
    v: &[f32; N],
) -> ([bool; N], [f32; N]) {
    let mut ok = [false; N];
    let mut mn = [0.0f32; N];
    let (w, c) = (f64::from(s.w), f64::from(s.c));
    for j in 0..N {
        let (pb, gb, mb, vb) = (p[j].to_bits(), g[j].to_bits(), m[j].to_bits(), v[j].to_bits());
        let p_abs = pb & 0x7fff_ffff;
        let p_in = p_abs >= TWO_M100.to_bits() && p_abs < EXP_MASK;
        let v_in = vb == 0 || (vb >= TWO_M124.to_bits() && vb < EXP_MASK);
        // Nonzero and below 2^-90: `x - 1` (wrapping) of ±0's magnitude is 2^32 - 1.
        let m_tiny = (mb & 0x7fff_ffff).wrapping_sub(1) < IDLE_MOMENT_BITS - 1;
        let g_zero = gb & 0x7fff_ffff == 0;
        // Out-of-range values become 1 (p) or 0 (m) before any arithmetic.
        let ps = if p_in { p[j] } else { 1.0 };
        let mw = widen(f32::from_bits(if m_tiny { mb } else { 0 }));
        let pd = ps * s.decay;
        mn[j] = narrow(mw + round_to_f32(w * -mw));
        // `pd` is normal (|ps| >= 2^-100 or 1, decay >= 2^-10): a hardware conversion, cheaper
        // than `widen` (P3's fit 2.92-3.09 s against 2.99-3.21 s, alternating).
        ok[j] = p_in
            & v_in
            & m_tiny
            & g_zero
            & (c * (mw.abs() * INV_UNIT + 1.0) <= f64::from(pd.abs()) * TWO_P123);
    }
    (ok, mn)
}

/// The scalars of the L2 idle path ([`l2_idle_lanes`]) for one step, or `None` where it does
/// not apply (no L2 in the gradient, the large-weight lerp, a decay factor, or scalars out of
/// its range). With L2 in the gradient (Adam, not AdamW) `decay` is 1: `p * decay = p`.
#[derive(Debug, Clone, Copy)]
pub(super) struct L2IdleScalars {
    l2: f64,
    /// `1 - beta1`.
    w: f64,
    beta2: f32,
    neg_step_size: f64,
    bias_correction2_sqrt: f32,
    eps: f32,
    /// `K_fix` of the idle step's first moment (see [`stuck_bounds`]): a difference `g' - m`
    /// of at most this many units of 2^-149 moves `m` by `round_ties_even(w D) = 0`; 0 turns
    /// [`l2_stuck_lanes`] off.
    stuck_units: u32,
}

impl L2IdleScalars {
    pub(super) fn new(s: &StepScalars) -> Option<Self> {
        let usable = s.l2 > 0.0
            && s.l2 <= 1.0
            && s.small_weight != 0
            && s.decay == 1.0
            && s.beta2 >= 0.5
            && s.beta2 <= 1.0
            && s.eps > 0.0
            && scalars_are_normal(s);
        let c = (2.0 * (2.0 * (f64::from(s.neg_step_size).abs() + 1.0) / f64::from(s.eps) + 1.0)) as f32;
        let stuck_units = stuck_bounds(s.one_minus_beta1, c).0;
        usable.then_some(Self {
            stuck_units,
            l2: f64::from(s.l2),
            w: f64::from(s.one_minus_beta1),
            beta2: s.beta2,
            neg_step_size: f64::from(s.neg_step_size),
            bias_correction2_sqrt: s.bias_correction2_sqrt,
            eps: s.eps,
        })
    }
}

/// Bits of 2^-96 (f32): the L2 idle path takes weights below it in magnitude.
const L2_IDLE_WEIGHT_BITS: u32 = (127 - 96) << 23;
/// Bits of 2^64 (f32): the L2 idle path takes first moments below it in magnitude.
const L2_IDLE_MOMENT_BITS: u32 = (127 + 64) << 23;

/// Whether some lane of the slice holds a weight the L2 idle path takes (nonzero, below 2^-96
/// in magnitude): the state Adam with L2 leaves an idle row in. One integer test a value.
#[inline(always)]
pub(super) fn any_tiny_weight(p: &[f32]) -> bool {
    p.iter().fold(false, |a, x| a | ((x.to_bits() & 0x7fff_ffff).wrapping_sub(1) < L2_IDLE_WEIGHT_BITS - 1))
}

/// Stores the new `p`, `m`, `v` of the lanes `ok` flags and keeps the others, by bit selects,
/// not branches: the chunk is stored whole (vectorised).
#[inline(always)]
fn store_taken<const N: usize>(
    ok: [bool; N],
    (pn, mn, vn): ([f32; N], [f32; N], [f32; N]),
    p: &mut [f32; N],
    m: &mut [f32; N],
    v: &mut [f32; N],
) {
    // In place, lane by lane (`std::array::from_fn` at 16 lanes is an out-of-line call whose
    // result is read back through the stack).
    for j in 0..N {
        let keep = u32::from(ok[j]).wrapping_sub(1);
        let pick = |new: f32, old: f32| f32::from_bits((new.to_bits() & !keep) | (old.to_bits() & keep));
        (p[j], m[j], v[j]) = (pick(pn[j], p[j]), pick(mn[j], m[j]), pick(vn[j], v[j]));
    }
}

/// The L2 idle path's shortcut: which of 8 lanes sit at a fixed point of Adam with L2's idle
/// step, and their `v * beta2` (the only value that changes there). Touches nothing.
///
/// **The fixed point.** Gradient ±0, `decay` = 1, `p` subnormal (`K_p` units of 2^-149,
/// nonzero), `m` subnormal (`K_m` units, nonzero), `v` zero or in [2^-124, inf), and with
/// `K_g = round_ties_even(l2 K_p)`: `|±K_g - ±K_m| <= K_fix` and `|nss| |K_m| <= 1/2`. Then, in
/// `adam_elem`'s order: `p' = p * 1 = p`; `l2 p'` is `K_g` units (a product landing in the
/// subnormal range rounds to the grid; l2 <= 1) with `p`'s sign, and `g' = ±0 + l2 p'` is that
/// (or a zero); `g' - m` is exact (both on the grid), at most `K_fix` units, so `w (g' - m)`
/// rounds to ±0 and `m' = m + (±0) = m` (m nonzero); `((1 - beta2) g') g'` is at most 2^-252
/// in magnitude, a product of factors of one sign or of zeros: +0, so `v' = v * beta2`
/// (normal or +0); `nss * m'` is at most half a unit (a tie goes to the even 0): ±0, so the
/// step is `±0 / denom = ±0` (denom >= eps > 0) and `p'' = p + (±0) = p` (p nonzero).
/// The checks are exact: `l2 K_p` and `|nss| K_m` are products of an f32 and an integer below
/// 2^23 (exact in f64), rounded to an integer by adding and subtracting 2^52.
#[inline(always)]
pub(super) fn l2_stuck_lanes(
    s: &L2IdleScalars,
    p: &[f32; 8],
    g: &[f32; 8],
    m: &[f32; 8],
    v: &[f32; 8],
) -> ([bool; 8], [f32; 8]) {
    let mut ok = [false; 8];
    let mut vn = [0.0f32; 8];
    let (fix, nss) = (f64::from(s.stuck_units), s.neg_step_size.abs());
    for j in 0..8 {
        let (pb, gb, mb, vb) = (p[j].to_bits(), g[j].to_bits(), m[j].to_bits(), v[j].to_bits());
        // Nonzero and subnormal: `x - 1` (wrapping) of ±0's magnitude is 2^32 - 1.
        let p_sub = (pb & 0x7fff_ffff).wrapping_sub(1) < MANT_MASK;
        let m_sub = (mb & 0x7fff_ffff).wrapping_sub(1) < MANT_MASK;
        let v_in = vb == 0 || (vb >= TWO_M124.to_bits() && vb < EXP_MASK);
        let g_zero = gb & 0x7fff_ffff == 0;
        let sign = |b: u32| if b >> 31 == 0 { 1.0 } else { -1.0 };
        let kp = f64::from(pb & MANT_MASK);
        let km = f64::from(mb & MANT_MASK);
        let kg = (s.l2 * kp + ROUND_INT) - ROUND_INT;
        let d = (sign(pb) * kg - sign(mb) * km).abs();
        vn[j] = if v_in { v[j] } else { 1.0 } * s.beta2;
        ok[j] = p_sub & m_sub & v_in & g_zero & (d <= fix) & (nss * km <= 0.5);
    }
    (ok, vn)
}

/// The L2 idle path over 8 lanes: Adam with L2 on a row no rating touched (gradient ±0), whose
/// weight has decayed to the tiny and subnormal range, updated without a subnormal float
/// operation; the lanes taken are flagged in the returned mask, the others left untouched.
///
/// **Why it exists.** With L2 an idle row's gradient is `l2 * p`, so Adam drives `p` towards
/// 0 geometrically (its step `lr m / sqrt(v)` stays of the order of `p` while `v` remembers
/// the row's last real gradients). Within a few thousand idle steps `p`, `l2 p`, `m` and their
/// products fall below 2^-126: every such operation takes a microcode assist on many Intel
/// cores (~14 ns an element measured on this project's Xeon, 23x a normal element), and the
/// rare movies of a large catalogue spend most of a fit there.
///
/// **The lane.** Gradient ±0, |p| < 2^-96 (zero and subnormals included), |m| < 2^64, v zero
/// or in [2^-124, inf). Then, in `adam_elem`'s order, with each f32 operation replayed in f64
/// and rounded to f32 by [`round_to_f32`] (exact: see the module doc):
/// - `p' = p * decay = p` (decay = 1, checked by [`L2IdleScalars::new`]); `g' = g + l2 p'`:
///   the product emulated, and `±0 + x` is `x` exactly (f64 gives a zero the f32 sign);
///   `m' = m + w * (g' - m)` emulated;
/// - `v' = v * beta2 + ((1 - beta2) * g') * g'`: |g'| <= |l2 p'| <= 2^-96 (l2 <= 1, decay <= 1,
///   rounding is monotone and 2^-96 is a float), so the product is at most 2^-192 in
///   magnitude and rounds to +0 (a product of two factors of the same sign, or of zeros: +0);
///   `v * beta2` is +0 or at least 2^-125 (normal), so `v' = v * beta2` in hardware, as the
///   reference computes it, and `+ (+0)` leaves it;
/// - `denom = sqrt(v') / bc2_sqrt + eps` in hardware: `sqrt(v')` is 0 or at least 2^-62.5,
///   the quotient by a normal `bc2_sqrt <= 1` normal or zero, `denom >= eps` normal;
/// - `p'' = p' + (nss * m') / denom` emulated, the last sum rounded by [`narrow`] itself.
///
/// Every f64 value is zero or at least 2^-149 * 2^-126 * 2^-70 in magnitude (normal f64), and
/// the f32 hardware operations have normal operands and results, so no operation here is
/// subnormal; out-of-range inputs are replaced by 0 (p, m) or 1 (v) before any arithmetic.
/// Branch-free over the 8 lanes.
#[inline(always)]
pub(super) fn l2_idle_lanes(
    s: &L2IdleScalars,
    p: &mut [f32; 8],
    g: &[f32; 8],
    m: &mut [f32; 8],
    v: &mut [f32; 8],
) -> [bool; 8] {
    let mut ok = [false; 8];
    let (mut pn, mut mn, mut vn) = ([0.0f32; 8], [0.0f32; 8], [0.0f32; 8]);
    for j in 0..8 {
        let (pb, gb, mb, vb) = (p[j].to_bits(), g[j].to_bits(), m[j].to_bits(), v[j].to_bits());
        let p_in = pb & 0x7fff_ffff < L2_IDLE_WEIGHT_BITS;
        let m_in = mb & 0x7fff_ffff < L2_IDLE_MOMENT_BITS;
        let v_in = vb == 0 || (vb >= TWO_M124.to_bits() && vb < EXP_MASK);
        let g_zero = gb & 0x7fff_ffff == 0;
        let pw = widen(f32::from_bits(if p_in { pb } else { 0 }));
        let mw = widen(f32::from_bits(if m_in { mb } else { 0 }));
        // ±0 as f64, its sign kept.
        let gw = f64::from_bits(u64::from(gb & 0x8000_0000) << 32);
        let vs = if v_in { v[j] } else { 1.0 };
        // `p * decay` is `p` (decay = 1); `±0 + x` is `x` exactly (or a zero with the sign the
        // f32 sum gives); `narrow` rounds the last sum itself.
        let g1 = gw + round_to_f32(s.l2 * pw);
        let m1 = round_to_f32(mw + round_to_f32(s.w * round_to_f32(g1 - mw)));
        let v1 = vs * s.beta2;
        let denom = v1.sqrt() / s.bias_correction2_sqrt + s.eps;
        let step = round_to_f32(round_to_f32(s.neg_step_size * m1) / f64::from(denom));
        pn[j] = narrow(pw + step);
        mn[j] = narrow(m1);
        vn[j] = v1;
        ok[j] = p_in & m_in & v_in & g_zero;
    }
    store_taken(ok, (pn, mn, vn), p, m, v);
    ok
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::super::{
        adam_elem, adam_update_baseline, adam_update_prepared, adam_update_reference, AdamConfig,
        PreparedStep, StepScalars,
    };
    use super::*;

    /// An f32 drawn from the cases that matter: subnormal (any mantissa, mostly a few units, the
    /// fixed points of idle moments), ±0, the edge of the normal range, small and ordinary
    /// normals.
    fn value() -> impl Strategy<Value = f32> {
        prop_oneof![
            3 => (1u32..(1 << 23), any::<bool>()).prop_map(|(k, neg)| f32::from_bits(k | (u32::from(neg) << 31))),
            2 => (1u32..600, any::<bool>()).prop_map(|(k, neg)| f32::from_bits(k | (u32::from(neg) << 31))),
            1 => prop_oneof![Just(0.0f32), Just(-0.0f32)],
            1 => (0x0080_0000u32..0x0100_0000, any::<bool>()).prop_map(|(b, neg)| f32::from_bits(b | (u32::from(neg) << 31))),
            1 => -1e-20f32..1e-20,
            2 => -2.0f32..2.0,
        ]
    }

    /// A non-negative f32 from [`value`] (a second moment).
    fn second_moment() -> impl Strategy<Value = f32> {
        value().prop_map(f32::abs)
    }

    /// Step scalars: both lerp branches (beta1 0.9 or 0.3), L2 or decoupled decay, small to
    /// large learning rates, early and late steps.
    fn scalars() -> impl Strategy<Value = StepScalars> {
        (
            prop_oneof![Just(0.9f32), Just(0.3f32), 0.0f32..0.99],
            prop_oneof![Just(0.999f32), 0.9f32..0.99999],
            prop_oneof![Just(1e-8f32), 1e-10f32..1e-3],
            prop_oneof![Just(0.0f32), Just(1e-4f32), 0.0f32..0.1],
            prop_oneof![Just(1e-3f32), 1e-6f32..1.0],
            1u64..50_000,
            any::<bool>(),
        )
            .prop_map(|(beta1, beta2, eps, weight_decay, lr, t, decoupled)| {
                StepScalars::new(&AdamConfig { beta1, beta2, eps, weight_decay }, lr, t, decoupled)
            })
    }

    fn bits(x: (f32, f32, f32)) -> (u32, u32, u32) {
        (x.0.to_bits(), x.1.to_bits(), x.2.to_bits())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(20_000))]

        /// The emulated element update is the hardware one (denormals kept) to the bit, for any
        /// finite state, zero and nonzero gradients, both lerp branches, L2 and AdamW.
        #[test]
        fn soft_element_is_bitwise_the_hardware_element(
            s in scalars(),
            p in value(),
            g in prop_oneof![2 => Just(0.0f32), 1 => Just(-0.0f32), 2 => value()],
            m in value(),
            v in second_moment(),
        ) {
            prop_assume!(scalars_are_normal(&s));
            let (mut ph, mut mh, mut vh) = (p, m, v);
            adam_elem(&s, &mut ph, g, &mut mh, &mut vh);
            let (mut ps, mut ms, mut vs) = (p, m, v);
            adam_elem_soft(&s, &mut ps, g, &mut ms, &mut vs);
            prop_assert_eq!(bits((ps, ms, vs)), bits((ph, mh, vh)), "p {:e} g {:e} m {:e} v {:e} {:?}", p, g, m, v, s);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]

        /// The chunked loop (vector chunks, mixed chunks, the tail) is the plain loop to the bit.
        #[test]
        fn soft_loop_is_bitwise_the_reference_loop(
            s in scalars(),
            state in prop::collection::vec((value(), prop_oneof![Just(0.0f32), value()], value(), second_moment()), 0..41),
        ) {
            let p: Vec<f32> = state.iter().map(|x| x.0).collect();
            let g: Vec<f32> = state.iter().map(|x| x.1).collect();
            let m: Vec<f32> = state.iter().map(|x| x.2).collect();
            let v: Vec<f32> = state.iter().map(|x| x.3).collect();
            let (mut pa, mut ma, mut va) = (p.clone(), m.clone(), v.clone());
            adam_update_prepared(&PreparedStep::emulated(s), &mut pa, &g, &mut ma, &mut va);
            let (mut pb, mut mb, mut vb) = (p, m, v);
            adam_update_reference(s, &mut pb, &g, &mut mb, &mut vb);
            let b = |x: &[f32]| x.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            prop_assert_eq!((b(&pa), b(&ma), b(&va)), (b(&pb), b(&mb), b(&vb)));
        }
    }

    /// The AVX-512 and AVX2 builds of the loop (what the CPU dispatches to where it has them)
    /// are the baseline (SSE) build to the bit, with subnormal lanes routed to `soft`, kept in
    /// hardware, or the idle lanes only routed: subnormals, idle lanes, tails, both lerp
    /// branches, L2, AdamW; 2,000 random states of up to 300 elements each.
    #[test]
    fn wide_and_baseline_loops_agree_to_the_bit() {
        #[cfg(target_arch = "x86_64")]
        {
            use super::super::{
                adam_update_avx2, adam_update_avx512, adam_update_l2_avx2, adam_update_l2_avx512, wide_isa,
                WideIsa,
            };
            let Some(isa) = wide_isa() else {
                return reelvec_testkit::skip(
                    reelvec_testkit::Need::CpuFeature,
                    "this CPU has no AVX2 and FMA",
                );
            };
            if isa != WideIsa::Avx512 {
                reelvec_testkit::skip(
                    reelvec_testkit::Need::CpuFeature,
                    "this CPU has no AVX-512: only the AVX2 build is compared",
                );
            }
            let state = prop::collection::vec(
                (value(), prop_oneof![Just(0.0f32), value()], value(), second_moment()),
                0..300,
            );
            let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(2_000));
            let outcome = runner.run(&(scalars(), state, 0..3u8), |(s, state, routing)| {
                // Subnormal lanes routed to `soft` (both paths), all in hardware, or the idle
                // path with the other lanes in hardware (the Intel Xeon's routing).
                let idle_only = super::super::Routing { idle: true, ..super::super::Routing::HARDWARE };
                let ps = match routing {
                    0 => PreparedStep::emulated(s),
                    1 => PreparedStep::in_hardware(s),
                    _ => PreparedStep::routed(s, idle_only),
                };
                let p: Vec<f32> = state.iter().map(|x| x.0).collect();
                let g: Vec<f32> = state.iter().map(|x| x.1).collect();
                let m: Vec<f32> = state.iter().map(|x| x.2).collect();
                let v: Vec<f32> = state.iter().map(|x| x.3).collect();
                let b = |x: &[f32]| x.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                let (mut pb, mut mb, mut vb) = (p.clone(), m.clone(), v.clone());
                adam_update_baseline(&ps, &mut pb, &g, &mut mb, &mut vb);
                let (mut pa, mut ma, mut va) = (p.clone(), m.clone(), v.clone());
                // Adam with L2 has its own builds of the loop (as `adam_update_prepared` picks).
                let l2 = ps.l2_idle.is_some();
                // SAFETY: AVX2 and FMA checked above.
                unsafe {
                    if l2 {
                        adam_update_l2_avx2(&ps, &mut pa, &g, &mut ma, &mut va)
                    } else {
                        adam_update_avx2(&ps, &mut pa, &g, &mut ma, &mut va)
                    }
                };
                prop_assert_eq!((b(&pa), b(&ma), b(&va)), (b(&pb), b(&mb), b(&vb)), "AVX2");
                if isa == WideIsa::Avx512 {
                    let (mut pa, mut ma, mut va) = (p, m, v);
                    // SAFETY: AVX-512 checked above.
                    unsafe {
                        if l2 {
                            adam_update_l2_avx512(&ps, &mut pa, &g, &mut ma, &mut va)
                        } else {
                            adam_update_avx512(&ps, &mut pa, &g, &mut ma, &mut va)
                        }
                    };
                    prop_assert_eq!((b(&pa), b(&ma), b(&va)), (b(&pb), b(&mb), b(&vb)), "AVX-512");
                }
                Ok(())
            });
            if let Err(e) = outcome {
                panic!("{e}");
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        reelvec_testkit::skip(
            reelvec_testkit::Need::CpuFeature,
            "AVX2 and AVX-512 are x86-64 instruction sets",
        );
    }

    /// An idle lane's state: gradient ±0, a first moment of a few subnormal units (the fixed
    /// points, and some above them) or a tiny normal (2^-126 to 2^-90), v zero or small to
    /// ordinary, p from tiny to ordinary.
    fn idle_lane() -> impl Strategy<Value = (f32, f32, f32, f32)> {
        (
            prop_oneof![3 => -2.0f32..2.0, 1 => value()],
            prop_oneof![Just(0.0f32), Just(-0.0f32)],
            (prop_oneof![1u32..12, 1u32..(1 << 23), 0x0080_0000u32..IDLE_MOMENT_BITS], any::<bool>())
                .prop_map(|(k, neg)| f32::from_bits(k | (u32::from(neg) << 31))),
            prop_oneof![Just(0.0f32), 1e-37f32..1e-30, 1e-12f32..1e-2, second_moment()],
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(5_000))]

        /// A chunk of 16 idle lanes through the idle path (the lanes it takes in hardware with a
        /// zero first moment and the emulated `m'`, the others in hardware or emulated, as each
        /// routing sends them) is the reference loop to the bit, and the path takes the lanes
        /// it is meant for.
        #[test]
        fn idle_chunks_are_bitwise_the_reference(
            s in scalars(),
            lanes in prop::collection::vec(idle_lane(), 16),
        ) {
            use super::super::{idle_chunk, Routing};
            let p: [f32; 16] = std::array::from_fn(|j| lanes[j].0);
            let g: [f32; 16] = std::array::from_fn(|j| lanes[j].1);
            let m: [f32; 16] = std::array::from_fn(|j| lanes[j].2);
            let v: [f32; 16] = std::array::from_fn(|j| lanes[j].3);
            let (mut pr, mut mr, mut vr) = (p, m, v);
            adam_update_reference(s, &mut pr, &g, &mut mr, &mut vr);
            let reference = (pr.map(f32::to_bits), mr.map(f32::to_bits), vr.map(f32::to_bits));
            if let Some(idle) = IdleScalars::new(&s) {
                for ps in [PreparedStep::emulated(s), PreparedStep::routed(s, Routing { idle: true, ..Routing::HARDWARE })] {
                    let (mut pa, mut ma, mut va) = (p, m, v);
                    idle_chunk(&ps, &idle, &mut pa, &g, &mut ma, &mut va);
                    prop_assert_eq!((pa.map(f32::to_bits), ma.map(f32::to_bits), va.map(f32::to_bits)),
                        reference, "emulate: {}", ps.emulate);
                }
                // An ordinary idle lane (p = 0.5, v = 1e-6, m one unit: a fixed point while
                // 1 - beta1 <= 1/2) is always taken at lr <= 1, eps >= 1e-9.
                let (taken, _) = idle_moments(&idle, &[0.5f32; 16], &[0.0; 16], &[f32::from_bits(1); 16], &[1e-6; 16]);
                prop_assert!(taken.iter().all(|&t| t) || s.eps < 1e-9, "{:?}", s);
            } else {
                let (mut pa, mut ma, mut va) = (p, m, v);
                adam_update_prepared(&PreparedStep::emulated(s), &mut pa, &g, &mut ma, &mut va);
                prop_assert_eq!((pa.map(f32::to_bits), ma.map(f32::to_bits), va.map(f32::to_bits)), reference);
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(5_000))]

        /// The stuck-lane shortcut is the reference loop to the bit whenever it fires, touches
        /// nothing when it does not, and fires on a chunk of ordinary stuck lanes.
        #[test]
        fn stuck_lanes_are_bitwise_the_reference(
            s in scalars(),
            lanes in prop::collection::vec(
                (prop_oneof![8 => -2.0f32..2.0, 1 => value()],
                 prop_oneof![8 => Just(0.0f32), 1 => Just(-0.0f32), 1 => value()],
                 prop_oneof![8 => (1u32..9, any::<bool>())
                     .prop_map(|(k, neg)| f32::from_bits(k | (u32::from(neg) << 31))), 1 => value()],
                 prop_oneof![4 => 1e-12f32..1e-2, 1 => second_moment()]),
                8,
            ),
        ) {
            let Some(idle) = IdleScalars::new(&s) else { return Ok(()) };
            let mut p: [f32; 8] = std::array::from_fn(|j| lanes[j].0);
            let g: [f32; 8] = std::array::from_fn(|j| lanes[j].1);
            let m: [f32; 8] = std::array::from_fn(|j| lanes[j].2);
            let mut v: [f32; 8] = std::array::from_fn(|j| lanes[j].3);
            let (mut pr, mut mr, mut vr) = (p, m, v);
            adam_update_reference(s, &mut pr, &g, &mut mr, &mut vr);
            let (p0, v0) = (p, v);
            if stuck_lanes(&idle, &mut p, &g, &m, &mut v) {
                prop_assert_eq!((p.map(f32::to_bits), m.map(f32::to_bits), v.map(f32::to_bits)),
                    (pr.map(f32::to_bits), mr.map(f32::to_bits), vr.map(f32::to_bits)));
            } else {
                prop_assert_eq!((p.map(f32::to_bits), v.map(f32::to_bits)), (p0.map(f32::to_bits), v0.map(f32::to_bits)));
            }
            let (mut p1, mut v1) = ([0.5f32; 8], [1e-6f32; 8]);
            let fired = stuck_lanes(&idle, &mut p1, &[0.0; 8], &[f32::from_bits(1); 8], &mut v1);
            prop_assert!(fired || s.eps < 1e-9 || idle.stuck_units == 0, "{:?}", s);
        }
    }

    /// At beta1 = 0.9 (`w` = 0.10000002) the fixed points are 1..=4 units (the idle path's
    /// test below shows 5 moving to 4), and the bound on `|p|` is far below ordinary weights.
    #[test]
    fn stuck_bounds_at_the_default_betas() {
        let s = StepScalars::new(&AdamConfig::default(), 1e-2, 5000, false);
        let idle = IdleScalars::new(&s).expect("default Adam has the idle path");
        assert_eq!(idle.stuck_units, 4);
        let bound = f32::from_bits(idle.stuck_pd_min);
        assert!(bound > 0.0 && bound < 1e-20, "{bound:e}");
        let (mut p, mut v) = ([0.5f32; 8], [1e-6f32; 8]);
        let m: [f32; 8] = std::array::from_fn(|j| f32::from_bits(1 + (j as u32 % 4)));
        assert!(stuck_lanes(&idle, &mut p, &[0.0; 8], &m, &mut v));
        for j in 0..8 {
            let (mut ph, mut mh, mut vh) = (0.5f32, m[j], 1e-6f32);
            adam_elem(&s, &mut ph, 0.0, &mut mh, &mut vh);
            assert_eq!(bits((ph, mh, vh)), bits((p[j], m[j], v[j])), "lane {j}");
        }
        let mut m5 = m;
        m5[7] = f32::from_bits(5);
        let (mut p5, mut v5) = ([0.5f32; 8], [1e-6f32; 8]);
        assert!(!stuck_lanes(&idle, &mut p5, &[0.0; 8], &m5, &mut v5), "5 units moves: not stuck");
        assert_eq!(v5, [1e-6f32; 8], "a refused chunk is left untouched");
    }

    /// The dense pass under each routing (the Intel Xeon's, idle path without the element
    /// emulation, included: there the lanes of an idle chunk that the idle path leaves go
    /// through one masked vector update) is the plain loop to the bit over 3,000 steps of rows
    /// touched every 1 to 1,500 steps with gradients from 1e-12 to 1e-2 within a row, so chunks
    /// mix subnormal, tiny and ordinary first moments.
    #[test]
    fn every_routing_of_the_dense_pass_is_bitwise_the_plain_loop() {
        use super::super::Routing;
        let (rows, cols, steps) = (48usize, 16usize, 3000u64);
        let period = |r: usize| [1u64, 7, 60, 400, 900, 1500][r % 6] + r as u64;
        let grad = |r: usize, c: usize, t: u64| {
            let scale = [1e-2f32, 1e-5, 1e-8, 1e-12][(c + r) % 4];
            if t == 1 || t.is_multiple_of(period(r)) {
                scale
                    * (1.0 + ((r * 31 + c * 17 + t as usize) % 13) as f32 / 13.0)
                    * if c.is_multiple_of(3) { -1.0 } else { 1.0 }
            } else {
                0.0
            }
        };
        let config = AdamConfig::default();
        for pays in [
            Routing { idle: true, ..Routing::HARDWARE },
            Routing { soft: true, ..Routing::HARDWARE },
            Routing { idle: true, soft: true, ..Routing::HARDWARE },
        ] {
            let init: Vec<f32> = (0..rows * cols).map(|i| 0.5 - (i % 29) as f32 / 29.0).collect();
            let (mut p, mut m, mut v) = (init.clone(), vec![0.0f32; rows * cols], vec![0.0f32; rows * cols]);
            let (mut pr, mut mr, mut vr) = (init, vec![0.0f32; rows * cols], vec![0.0f32; rows * cols]);
            let (mut mixed_chunks, mut subnormal_seen) = (0usize, false);
            for t in 1..=steps {
                let g: Vec<f32> = (0..rows * cols).map(|i| grad(i / cols, i % cols, t)).collect();
                let s = StepScalars::new(&config, 1e-2, t, false);
                for chunk in m.chunks(8) {
                    let sub = chunk.iter().filter(|x| x.is_subnormal()).count();
                    subnormal_seen |= sub > 0;
                    mixed_chunks += usize::from(sub > 0 && sub < 8);
                }
                adam_update_prepared(&PreparedStep::routed(s, pays), &mut p, &g, &mut m, &mut v);
                adam_update_reference(s, &mut pr, &g, &mut mr, &mut vr);
                let same = |a: &[f32], b: &[f32]| a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits());
                assert!(same(&p, &pr) && same(&m, &mr) && same(&v, &vr), "{pays:?}: step {t} differs");
            }
            assert!(subnormal_seen && mixed_chunks > 1000, "{pays:?}: {mixed_chunks} mixed chunks");
        }
    }

    /// At beta1 = 0.9 the lerp weight is `(1 - 0.9f32 as f64) as f32` = 0.10000002: 4 units is
    /// a fixed point (0.4 rounds to 0), 5 units moves to 4 (0.5000001 rounds to 1, not a tie),
    /// 1000 to 900; the idle path takes all three, as the hardware element computes them.
    #[test]
    fn idle_lanes_follow_the_decay_to_the_fixed_points() {
        use super::super::{idle_chunk, Routing};
        let s = StepScalars::new(&AdamConfig::default(), 1e-2, 5000, false);
        let idle = IdleScalars::new(&s).expect("default Adam has the idle path");
        let units = [4u32, 5, 1000, 4, 5, 1000, 6, 0x7f_ffff];
        let m: [f32; 8] = std::array::from_fn(|j| f32::from_bits(units[j]));
        let (p, v) = ([0.5f32; 8], [1e-6f32; 8]);
        let (taken, moved) = idle_moments(&idle, &p, &[0.0; 8], &m, &v);
        assert_eq!(taken, [true; 8]);
        assert_eq!(moved.map(f32::to_bits)[..3], [4, 4, 900]);
        let (mut p, mut m, mut v) = (p, m, v);
        idle_chunk(
            &PreparedStep::routed(s, Routing { idle: true, ..Routing::HARDWARE }),
            &idle,
            &mut p,
            &[0.0; 8],
            &mut m,
            &mut v,
        );
        for (j, &k) in units.iter().enumerate() {
            let (mut ph, mut mh, mut vh) = (0.5f32, f32::from_bits(k), 1e-6f32);
            adam_elem(&s, &mut ph, 0.0, &mut mh, &mut vh);
            assert_eq!(bits((ph, mh, vh)), bits((p[j], m[j], v[j])), "{k} units");
        }
    }

    /// The two routings are independent: the idle path is kept only where asked for and where
    /// the step allows it (no L2), the element emulation only where asked for.
    #[test]
    fn routing_takes_each_path_on_its_own() {
        use super::super::Routing;
        let plain = StepScalars::new(&AdamConfig::default(), 1e-3, 100, false);
        let l2 =
            StepScalars::new(&AdamConfig { weight_decay: 1e-4, ..AdamConfig::default() }, 1e-3, 100, false);
        for code in 0..8u8 {
            let (idle, soft, l2_idle) = (code & 1 != 0, code & 2 != 0, code & 4 != 0);
            let pays = Routing { idle, soft, l2_idle };
            let ps = PreparedStep::routed(plain, pays);
            assert_eq!((ps.idle.is_some(), ps.emulate, ps.l2_idle.is_some()), (idle, soft, false));
            let ps = PreparedStep::routed(l2, pays);
            assert_eq!((ps.idle.is_some(), ps.emulate, ps.l2_idle.is_some()), (false, soft, l2_idle));
        }
    }

    /// Step scalars of Adam with L2 (what the L2 idle path is for): default-like and random
    /// betas, weight decays from 1e-6 to 0.1, learning rates 1e-5 to 0.1, early and late steps.
    fn l2_scalars() -> impl Strategy<Value = StepScalars> {
        (
            prop_oneof![Just(0.9f32), 0.5f32..0.99],
            prop_oneof![Just(0.999f32), 0.9f32..0.99999],
            prop_oneof![Just(1e-8f32), 1e-10f32..1e-3],
            prop_oneof![Just(3e-4f32), 1e-6f32..0.1],
            prop_oneof![Just(3e-3f32), 1e-5f32..0.1],
            1u64..50_000,
        )
            .prop_map(|(beta1, beta2, eps, weight_decay, lr, t)| {
                StepScalars::new(&AdamConfig { beta1, beta2, eps, weight_decay }, lr, t, false)
            })
    }

    /// A signed f32 from bits drawn by `magnitude`.
    fn signed(magnitude: impl Strategy<Value = u32>) -> impl Strategy<Value = f32> {
        (magnitude, any::<bool>()).prop_map(|(k, neg)| f32::from_bits(k | (u32::from(neg) << 31)))
    }

    /// An idle lane of Adam with L2 as training leaves it on its way to 0: a weight from
    /// ordinary down through the tiny normals to a few subnormal units, first moments from
    /// ordinary to a few units, gradient mostly ±0, v zero to ordinary.
    fn l2_idle_lane() -> impl Strategy<Value = (f32, f32, f32, f32)> {
        (
            prop_oneof![
                2 => signed(1u32..5000),
                2 => signed(1u32..(1 << 23)),
                3 => signed(0x0080_0000u32..L2_IDLE_WEIGHT_BITS + (8 << 23)),
                1 => prop_oneof![Just(0.0f32), Just(-0.0f32)],
                1 => value(),
            ],
            prop_oneof![6 => Just(0.0f32), 2 => Just(-0.0f32), 1 => value()],
            prop_oneof![
                2 => signed(1u32..12),
                2 => signed(1u32..(1 << 23)),
                2 => signed(0x0080_0000u32..(127u32 - 60) << 23),
                1 => value(),
            ],
            prop_oneof![Just(0.0f32), 1e-37f32..1e-30, 1e-16f32..1e-2, second_moment()],
        )
    }

    fn lanes8(lanes: &[(f32, f32, f32, f32)]) -> ([f32; 8], [f32; 8], [f32; 8], [f32; 8]) {
        (
            std::array::from_fn(|j| lanes[j].0),
            std::array::from_fn(|j| lanes[j].1),
            std::array::from_fn(|j| lanes[j].2),
            std::array::from_fn(|j| lanes[j].3),
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(20_000))]

        /// [`adam_elem_with`](super::super::adam_elem_with) with a negligible gradient square skipped is
        /// PyTorch's element to the bit: gradients around the bound (2^-80 to 2^-40), second
        /// moments from 2^-110 up (around the 2^-100 floor), any scalars.
        #[test]
        fn negligible_square_is_bitwise_the_plain_element(
            s in scalars(),
            p in value(),
            g in prop_oneof![3 => signed((127u32 - 80) << 23..(127u32 - 40) << 23), 1 => value()],
            m in value(),
            v in prop_oneof![3 => (0x0080_0000u32..(127u32 - 90) << 23).prop_map(f32::from_bits), 1 => second_moment()],
        ) {
            let (mut ph, mut mh, mut vh) = (p, m, v);
            adam_elem(&s, &mut ph, g, &mut mh, &mut vh);
            let (mut pl, mut ml, mut vl) = (p, m, v);
            super::super::adam_elem_with::<true>(&s, &mut pl, g, &mut ml, &mut vl);
            prop_assert_eq!(bits((pl, ml, vl)), bits((ph, mh, vh)), "p {:e} g {:e} m {:e} v {:e} {:?}", p, g, m, v, s);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(5_000))]

        /// The L2 idle path is the plain element to the bit on every lane it takes, leaves the
        /// others untouched, and takes a lane on its way to 0 (p = 1e-33, m = 3e-37).
        #[test]
        fn l2_idle_lanes_are_bitwise_the_reference(
            s in l2_scalars(),
            lanes in prop::collection::vec(l2_idle_lane(), 8),
        ) {
            let Some(l2) = L2IdleScalars::new(&s) else { return Ok(()) };
            let (mut p, g, mut m, mut v) = lanes8(&lanes);
            let (p0, m0, v0) = (p, m, v);
            let (mut pr, mut mr, mut vr) = (p, m, v);
            adam_update_reference(s, &mut pr, &g, &mut mr, &mut vr);
            let done = l2_idle_lanes(&l2, &mut p, &g, &mut m, &mut v);
            for j in 0..8 {
                let expected = if done[j] { (pr[j], mr[j], vr[j]) } else { (p0[j], m0[j], v0[j]) };
                prop_assert_eq!(bits((p[j], m[j], v[j])), bits(expected), "lane {} taken {}", j, done[j]);
            }
            let (mut p1, mut m1, mut v1) = ([1e-33f32; 8], [3e-37f32; 8], [1e-9f32; 8]);
            prop_assert_eq!(l2_idle_lanes(&l2, &mut p1, &[0.0; 8], &mut m1, &mut v1), [true; 8]);
        }

        /// The L2 fixed-point shortcut is the plain element to the bit on every lane it flags
        /// (`p`, `m` kept, `v * beta2`), and flags a row at rest (47 units of weight, 3 of
        /// first moment) at notebook-like learning rates.
        #[test]
        fn l2_stuck_lanes_are_bitwise_the_reference(
            s in l2_scalars(),
            lanes in prop::collection::vec(
                (prop_oneof![4 => signed(1u32..20_000), 1 => value()],
                 prop_oneof![8 => Just(0.0f32), 1 => Just(-0.0f32), 1 => value()],
                 prop_oneof![4 => signed(1u32..12), 2 => signed(1u32..400), 1 => value()],
                 prop_oneof![4 => 1e-16f32..1e-2, 1 => second_moment()]),
                8,
            ),
        ) {
            let Some(l2) = L2IdleScalars::new(&s) else { return Ok(()) };
            let (p, g, m, v) = lanes8(&lanes);
            let (mut pr, mut mr, mut vr) = (p, m, v);
            adam_update_reference(s, &mut pr, &g, &mut mr, &mut vr);
            let (stuck, vn) = l2_stuck_lanes(&l2, &p, &g, &m, &v);
            for j in (0..8).filter(|&j| stuck[j]) {
                prop_assert_eq!(bits((p[j], m[j], vn[j])), bits((pr[j], mr[j], vr[j])), "lane {}", j);
            }
            let at_rest = l2_stuck_lanes(&l2, &[f32::from_bits(47); 8], &[0.0; 8], &[f32::from_bits(3); 8], &[1e-10; 8]);
            let nss = f64::from(s.neg_step_size).abs();
            prop_assert!(at_rest.0 == [true; 8] || nss * 3.0 > 0.5 || l2.stuck_units < 3 || s.l2 * 47.0 > 1.5, "{:?}", s);
        }
    }

    /// Adam with L2 under both routings of its idle lanes (the Intel Xeon's: L2 idle path, the
    /// rest in hardware; and with the element emulation) is the plain loop to the bit over 6,000
    /// steps of rows touched every 1 to 5,000 steps (and some never), so rows pass from ordinary
    /// weights through the tiny normals to fixed points a few units above 0, and back when
    /// touched.
    #[test]
    fn l2_routings_of_the_dense_pass_are_bitwise_the_plain_loop() {
        use super::super::Routing;
        let (rows, cols, steps) = (40usize, 13usize, 6000u64);
        let period = |r: usize| [1u64, 9, 300, 1200, 5000, u64::MAX][r % 6];
        let grad = |r: usize, c: usize, t: u64| {
            if t == 1 || t.is_multiple_of(period(r)) {
                1e-2 * (1.0 + ((r * 31 + c * 17 + t as usize) % 13) as f32 / 13.0)
                    * if c.is_multiple_of(3) { -1.0 } else { 1.0 }
            } else {
                0.0
            }
        };
        let config = AdamConfig { weight_decay: 3e-4, ..AdamConfig::default() };
        for pays in [
            Routing { l2_idle: true, ..Routing::HARDWARE },
            Routing { l2_idle: true, soft: true, idle: true },
        ] {
            let init: Vec<f32> = (0..rows * cols).map(|i| 0.5 - (i % 29) as f32 / 29.0).collect();
            let n = rows * cols;
            let (mut p, mut m, mut v) = (init.clone(), vec![0.0f32; n], vec![0.0f32; n]);
            let (mut pr, mut mr, mut vr) = (init, vec![0.0f32; n], vec![0.0f32; n]);
            let (mut tiny_seen, mut subnormal_seen) = (false, false);
            for t in 1..=steps {
                let g: Vec<f32> = (0..n).map(|i| grad(i / cols, i % cols, t)).collect();
                let s = StepScalars::new(&config, 3e-3, t, false);
                adam_update_prepared(&PreparedStep::routed(s, pays), &mut p, &g, &mut m, &mut v);
                adam_update_reference(s, &mut pr, &g, &mut mr, &mut vr);
                let same = |a: &[f32], b: &[f32]| a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits());
                assert!(same(&p, &pr) && same(&m, &mr) && same(&v, &vr), "{pays:?}: step {t} differs");
                tiny_seen |= p.iter().any(|x| x.is_normal() && x.abs() < 1e-30);
                subnormal_seen |= p.iter().any(|x| x.is_subnormal());
            }
            assert!(
                tiny_seen && subnormal_seen,
                "{pays:?}: the weights never reached the tiny and subnormal ranges"
            );
        }
    }

    /// No subnormal operand or result (x86 MXCSR denormal and underflow flags clear) over
    /// Adam with L2's idle lanes as the dispatched loop runs them: weights at rest a few units
    /// above 0, subnormal and moving, tiny normals (L2 idle path), and weights around 2^-50
    /// whose `l2 p` has a subnormal square term (the plain loop's negligible-square select); the
    /// same lanes through the plain element raise them (so the check sees one).
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn l2_idle_lanes_raise_no_denormal_flag() {
        use crate::fpenv::reg;
        const DENORMAL_OR_UNDERFLOW: u64 = (1 << 1) | (1 << 4);
        let s =
            StepScalars::new(&AdamConfig { weight_decay: 3e-4, ..AdamConfig::default() }, 3e-3, 2000, false);
        let ps = PreparedStep::routed(
            s,
            super::super::Routing { l2_idle: true, ..super::super::Routing::HARDWARE },
        );
        assert!(ps.l2_idle.is_some());
        // 2,048 lanes: chunks of rest, moving subnormal, tiny normal, and ~2^-50 weights.
        let n = 2048;
        let lane = |i: usize| -> (f32, f32, f32) {
            let sign = if i.is_multiple_of(3) { -1.0f32 } else { 1.0 };
            let (p, m, v) = match (i / 8) % 4 {
                0 => (f32::from_bits(40 + (i as u32 % 7)), f32::from_bits(1 + (i as u32 % 4)), 1e-10),
                1 => (f32::from_bits(140_000 + i as u32), f32::from_bits(30_000 + i as u32), 4e-11),
                2 => (1e-33 * (1.0 + (i % 5) as f32), 3e-37, 1e-9),
                _ => (2f32.powi(-50) * (1.0 + (i % 5) as f32 / 8.0), 2f32.powi(-62), 1e-9),
            };
            (sign * p, sign * m, v)
        };
        let p0: Vec<f32> = (0..n).map(|i| lane(i).0).collect();
        let m0: Vec<f32> = (0..n).map(|i| lane(i).1).collect();
        let v0: Vec<f32> = (0..n).map(|i| lane(i).2).collect();
        let g = vec![0.0f32; n];
        let saved = reg::read();
        reg::write(saved & !0x3f);
        let (mut p, mut m, mut v) = (p0.clone(), m0.clone(), v0.clone());
        adam_update_prepared(&ps, &mut p, &g, &mut m, &mut v);
        let fast = reg::read() & DENORMAL_OR_UNDERFLOW;
        reg::write(saved & !0x3f);
        let (mut pr, mut mr, mut vr) = (p0, m0, v0);
        adam_update_reference(s, &mut pr, &g, &mut mr, &mut vr);
        let plain = reg::read() & DENORMAL_OR_UNDERFLOW;
        reg::write(saved);
        assert_eq!(fast, 0, "the L2 paths consumed or produced a subnormal");
        assert_ne!(plain, 0, "the plain loop raised no flag: the check sees nothing");
        let b = |x: &[f32]| x.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!((b(&p), b(&m), b(&v)), (b(&pr), b(&mr), b(&vr)));
    }

    /// The negligible-gradient bound at PyTorch's beta2 = 0.999: just under 2^-58 (the square
    /// term is subnormal from about 2^-70 to 2^-58), and the defining inequality holds at it.
    #[test]
    fn negligible_gradient_bound_at_the_default_beta2() {
        let b = (1.0 - 0.999f64) as f32;
        let t = super::super::negligible_gradient(b);
        assert!(t > 2f32.powi(-59) && t < 2f32.powi(-58), "{t:e}");
        let (t, b) = (f64::from(t), f64::from(b));
        assert!(b * t * t * (1.0 + 2f64.powi(-20)) <= 2f64.powi(-126));
        assert_eq!(super::super::negligible_gradient(0.0), 0.0);
        assert_eq!(super::super::negligible_gradient(f32::NAN), 0.0);
    }

    /// [`narrow`] at the seams: the subnormal grid, ties to even, the carry into 2^-126.
    #[test]
    fn narrow_rounds_to_nearest_even_on_the_subnormal_grid() {
        let unit = UNIT;
        let cases = [
            (2.5 * unit, 2u32),
            (3.5 * unit, 4),
            (0.5 * unit, 0),
            (0.5000001 * unit, 1),
            (MIN_NORMAL - 0.5 * unit, 0x0080_0000),
            (MIN_NORMAL - 0.6 * unit, 0x007f_ffff),
            (MIN_NORMAL, 0x0080_0000),
        ];
        for (x, expected) in cases {
            assert_eq!(narrow(x).to_bits(), expected, "{x:e}");
            assert_eq!(narrow(-x).to_bits(), expected | 0x8000_0000, "-{x:e}");
        }
        // Beyond the subnormal grid: the hardware conversion's results, NaN payloads included.
        let nan_payload = f64::from_bits(0x7ff8_0000_2000_0000 | (0x5a5 << 29));
        for x in
            [1.0, -2.5, 3.4e38, 3.5e38, 1e300, -1e300, f64::INFINITY, -f64::INFINITY, f64::NAN, -nan_payload]
        {
            assert_eq!(narrow(x).to_bits(), (x as f32).to_bits(), "{x:e}");
        }
        for k in [1u32, 5, 499, 0x7f_ffff] {
            assert_eq!(widen(f32::from_bits(k)), f64::from(k) * unit);
            assert_eq!(narrow(widen(f32::from_bits(k))).to_bits(), k);
        }
    }

    /// The x86 MXCSR's sticky flags: denormal operand (bit 1) and underflow (bit 4) stay clear
    /// while the emulation runs over subnormal moments, and the hardware element raises the
    /// first on the same state (so the check can see one).
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn soft_path_raises_no_denormal_flag() {
        use crate::fpenv::reg;
        const DENORMAL_OR_UNDERFLOW: u64 = (1 << 1) | (1 << 4);
        let saved = reg::read();
        let s = StepScalars::new(&AdamConfig::default(), 1e-3, 500, false);
        let run = |soft: bool| {
            reg::write(saved & !0x3f);
            for k in [1u32, 3, 5, 77, 499, 0x40_0000] {
                let (mut p, mut m, mut v) = (std::hint::black_box(0.25f32), f32::from_bits(k), 1e-9f32);
                let g = std::hint::black_box(0.0f32);
                if soft {
                    adam_elem_soft(&s, &mut p, g, &mut m, &mut v);
                } else {
                    adam_elem(&s, &mut p, g, &mut m, &mut v);
                }
                std::hint::black_box((p, m, v));
                let (mut p, mut m, mut v) = (0.25f32, 1e-6f32, f32::from_bits(k));
                if soft {
                    adam_elem_soft(&s, &mut p, g, &mut m, &mut v);
                } else {
                    adam_elem(&s, &mut p, g, &mut m, &mut v);
                }
                std::hint::black_box((p, m, v));
            }
            let flags = reg::read() & DENORMAL_OR_UNDERFLOW;
            reg::write(saved);
            flags
        };
        assert_eq!(run(true), 0, "the emulation consumed or produced a subnormal");
        assert_ne!(run(false), 0, "the hardware path raised no flag: the check sees nothing");
    }

    /// The same flags over the idle path as the dispatched loop runs it (vectorised, in this
    /// CPU's widest build): chunks of idle lanes whose first moments are subnormal (decaying
    /// and at fixed points) or tiny normals whose products with `1 - beta1` and the step size
    /// are subnormal. A conversion or product the compiler hoists above a range select would
    /// raise them (as it did before `widen` and `narrow` became integer work).
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn vectorised_idle_path_raises_no_denormal_flag() {
        use crate::fpenv::reg;
        const DENORMAL_OR_UNDERFLOW: u64 = (1 << 1) | (1 << 4);
        let s = StepScalars::new(&AdamConfig::default(), 1e-2, 2000, false);
        assert!(IdleScalars::new(&s).is_some());
        let n = 8 * 64;
        // Lane 0 of each chunk subnormal, so every chunk takes the idle path; the others
        // subnormal or tiny normals (2^-126 to 2^-100).
        let m: Vec<f32> = (0..n)
            .map(|i| match (i % 8, i % 3) {
                (0, _) | (_, 0) => f32::from_bits(1 + (i as u32 * 7919) % 0x7f_ffff),
                _ => f32::from_bits(0x0080_0000 + (i as u32 * 104_729) % (26 << 23)),
            })
            .enumerate()
            .map(|(i, x)| if i % 2 == 0 { x } else { -x })
            .collect();
        let (g, v0) = (vec![0.0f32; n], vec![1e-9f32; n]);
        let p0: Vec<f32> = (0..n).map(|i| if i % 2 == 0 { 0.25 } else { -1.5 }).collect();
        let saved = reg::read();
        let (mut pr, mut mr, mut vr) = (p0.clone(), m.clone(), v0.clone());
        adam_update_reference(s, &mut pr, &g, &mut mr, &mut vr);
        let b = |x: &[f32]| x.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        // Both routings of the lanes the idle path leaves (there are none here).
        let hardware = super::super::Routing { idle: true, ..super::super::Routing::HARDWARE };
        for ps in [PreparedStep::emulated(s), PreparedStep::routed(s, hardware)] {
            reg::write(saved & !0x3f);
            let (mut p, mut m1, mut v) = (p0.clone(), m.clone(), v0.clone());
            adam_update_prepared(&ps, &mut p, &g, &mut m1, &mut v);
            let flags = reg::read() & DENORMAL_OR_UNDERFLOW;
            reg::write(saved);
            assert_eq!(flags, 0, "the idle path consumed or produced a subnormal (emulate: {})", ps.emulate);
            // And the bits are the reference's.
            assert_eq!((b(&p), b(&m1), b(&v)), (b(&pr), b(&mr), b(&vr)));
        }
    }
}
