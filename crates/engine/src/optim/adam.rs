//! Adam, AdamW and lazy Adam with PyTorch's arithmetic.
//!
//! PyTorch (`torch.optim.Adam`, single-tensor path), per element at step `t` (1-based):
//!
//! ```text
//! g  = grad + weight_decay * p            (Adam; AdamW instead does p *= 1 - lr * weight_decay)
//! m  = m.lerp(g, 1 - beta1)               (= m + (1 - beta1) * (g - m) while 1 - beta1 < 0.5)
//! v  = beta2 * v + ((1 - beta2) * g) * g
//! p += (-(lr / (1 - beta1^t)) * m) / (sqrt(v) / sqrt(1 - beta2^t) + eps)   (addcdiv)
//! ```
//!
//! The scalars (`1 - beta`, bias corrections, step size, AdamW's `1 - lr * wd`) are computed in
//! f64, as PyTorch computes them as Python floats, then rounded to f32; the element update is in
//! f32 in PyTorch's order of operations (`lerp_`, `mul_` + `addcmul_`, `addcdiv_`), so weights
//! agree to rounding (PyTorch's vectorised `lerp` may use an FMA) after many steps.
//!
//! Subnormals are kept (PyTorch's default), but the dense pass does no arithmetic on them: a
//! row no rating touches for long has its first moment stuck a few units of 2^-149 from 0
//! (`m + 0.1 (0 - m)` rounds back to `m`), and every later step over it would take microcode
//! assists on CPUs where subnormals are slow. There (measured once per process, for each path,
//! by [`routing`]) [`adam_update`] sends chunks of 16 lanes with a first moment below 2^-116 to
//! `soft`: the idle lanes' update reduces, provably to the bit, to `p *= decay; v *= beta2`
//! (the plain update with their first moment read as 0) and `m`'s step emulated in f64 (an
//! integer step on the subnormal grid); other lanes with a
//! subnormal input are emulated exactly in normal-range f64. Adam with L2, whose idle rows'
//! weights decay towards 0, has its own loops: a negligible gradient square skipped, a
//! fixed-point shortcut and an f64 emulation for tiny weights (`soft::l2_*`). Where the
//! hardware handles subnormals cheaply (this project's AMD EPYC machines) every lane stays in
//! hardware; on its Intel Xeon the idle paths pay and the element emulation does not. The
//! derivations are in `adam/soft.rs`; the plain hardware loop stays as `step_reference`.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

mod soft;

use super::{Optimizer, PAR_CHUNK};
use crate::params::{GradTable, Grads, ParamStore};

/// Adam hyperparameters (PyTorch defaults).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AdamConfig {
    /// Exponential decay of the first moment.
    pub beta1: f32,
    /// Exponential decay of the second moment.
    pub beta2: f32,
    /// Added to the denominator, outside the square root.
    pub eps: f32,
    /// L2 penalty (Adam, LazyAdam: added to the gradient) or decoupled decay (AdamW).
    pub weight_decay: f32,
}

impl Default for AdamConfig {
    fn default() -> Self {
        Self { beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.0 }
    }
}

/// First and second moments of every table.
#[derive(Debug, Clone, Default)]
struct Moments {
    m: Vec<Vec<f32>>,
    v: Vec<Vec<f32>>,
}

impl Moments {
    fn ensure(&mut self, params: &ParamStore) {
        if self.m.len() != params.tables().len() {
            self.m = params.tables().iter().map(|t| vec![0.0; t.data.len()]).collect();
            self.v = self.m.clone();
        }
    }
}

/// Scalars of one Adam step, shared by the dense and lazy passes and by the CUDA kernels
/// (`struct AdamScalars` in adam.cu has this C layout).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub(crate) struct StepScalars {
    /// `1 - beta1`, the `lerp_` weight of the first moment.
    one_minus_beta1: f32,
    beta2: f32,
    one_minus_beta2: f32,
    eps: f32,
    /// L2 term added to the gradient (0 for AdamW).
    l2: f32,
    /// `1 - lr * wd` for AdamW, 1 otherwise.
    decay: f32,
    /// `-lr / (1 - beta1^t)`.
    neg_step_size: f32,
    bias_correction2_sqrt: f32,
    /// `1 - beta1 < 0.5`: which form of `torch.lerp` the first moment takes (1 or 0).
    small_weight: i32,
    /// Gradients below this in magnitude have a negligible square in the second moment
    /// wherever `v * beta2 >= 2^-100` ([`adam_elem_with`]; 0 turns that off). The CUDA kernels
    /// read the fields before it only.
    g_negligible: f32,
}

impl StepScalars {
    pub(crate) fn new(c: &AdamConfig, lr: f32, t: u64, decoupled: bool) -> Self {
        let (beta1, beta2) = (c.beta1 as f64, c.beta2 as f64);
        let bc1 = 1.0 - beta1.powf(t as f64);
        let bc2 = 1.0 - beta2.powf(t as f64);
        let one_minus_beta1 = (1.0 - beta1) as f32;
        Self {
            one_minus_beta1,
            beta2: c.beta2,
            one_minus_beta2: (1.0 - beta2) as f32,
            eps: c.eps,
            l2: if decoupled { 0.0 } else { c.weight_decay },
            decay: if decoupled { (1.0 - lr as f64 * c.weight_decay as f64) as f32 } else { 1.0 },
            neg_step_size: (-(lr as f64) / bc1) as f32,
            bias_correction2_sqrt: bc2.sqrt() as f32,
            small_weight: i32::from(one_minus_beta1 < 0.5),
            g_negligible: negligible_gradient((1.0 - beta2) as f32),
        }
    }
}

/// The least `v * beta2` for which [`adam_elem_with`] drops a negligible gradient square: 2^-100.
const V_NEGLIGIBLE_FLOOR: f32 = f32::from_bits((127 - 100) << 23);

/// The bound `T` of [`StepScalars::g_negligible`] for `1 - beta2` (as f32): the largest f32 with
/// `(1 - beta2) T^2 (1 + 2^-20) <= 2^-126`, so that for `|g| < T` the rounded
/// `((1 - beta2) g) g` is below 2^-126 (each rounding adds at most 2^-24 relative or half a
/// unit of 2^-149), far below half an ulp (2^-124) of any `v * beta2 >= 2^-100`. 0 when
/// `1 - beta2` is not a positive number at most 1.
fn negligible_gradient(one_minus_beta2: f32) -> f32 {
    let b = f64::from(one_minus_beta2);
    if !(b > 0.0 && b <= 1.0) {
        return 0.0;
    }
    let two_m126 = f64::from_bits((1023 - 126) << 52);
    let bound = (two_m126 / (b * (1.0 + f64::from_bits((1023 - 20) << 52)))).sqrt();
    // Rounded down to f32: the conversion rounds to nearest, so step down one ulp if it rose.
    let t = bound as f32;
    if f64::from(t) > bound {
        f32::from_bits(t.to_bits() - 1)
    } else {
        t
    }
}

/// Lanes of Adam with L2's fused loops: chunks of 8 elements are checked for subnormal inputs
/// together.
const LANES: usize = 8;

/// Lanes of plain Adam's fused loop: a chunk of 16 (one AVX-512 vector) is checked for a small
/// first moment together ([`idle_chunk`]); 8 measured ~13% slower on P3's fit.
const IDLE_LANES: usize = 16;

/// One element of one Adam step: the arithmetic every pass (dense, lazy, replay) shares, so that
/// they agree to the bit.
#[inline(always)]
fn adam_elem(s: &StepScalars, p: &mut f32, g: f32, m: &mut f32, v: &mut f32) {
    adam_elem_with::<false>(s, p, g, m, v);
}

/// [`adam_elem`] with, where `SKIP_NEGLIGIBLE`, the second moment's negligible gradient squares
/// skipped: the same bits, for the loops of Adam with L2 ([`adam_update_body_l2`]).
///
/// PyTorch's `v * beta2 + (1 - beta2) * g * g`: where |g| < `g_negligible` and
/// `v * beta2 >= 2^-100`, the rounded square term is below 2^-126, under half an ulp of
/// `v * beta2` (2^-124 or more), so the sum rounds to `v * beta2` whatever the term is; it is
/// then computed from a zero gradient instead (+0, and `x + (+0) = x` for x >= 0). The point is
/// speed: that term is subnormal for |g| from about 2^-70 to 2^-58 (with beta2 = 0.999), the
/// range Adam with L2 drives idle rows' `l2 p` through, and on many Intel cores a subnormal
/// result takes a microcode assist for its whole vector. A NaN gradient fails the test and
/// takes the plain term. Test: `soft::tests::negligible_square_is_bitwise_the_plain_element`.
///
/// Without `SKIP_NEGLIGIBLE` (a compile-time choice) it is [`adam_elem`]: exactly PyTorch's
/// operations in PyTorch's order.
#[inline(always)]
fn adam_elem_with<const SKIP_NEGLIGIBLE: bool>(
    s: &StepScalars,
    p: &mut f32,
    g: f32,
    m: &mut f32,
    v: &mut f32,
) {
    *p *= s.decay;
    let g = g + s.l2 * *p;
    // torch.lerp: the branch is loop-invariant, so the compiler hoists it.
    let w = s.one_minus_beta1;
    *m = if s.small_weight != 0 { *m + w * (g - *m) } else { g - (g - *m) * (1.0 - w) };
    let vb = *v * s.beta2;
    let negligible = SKIP_NEGLIGIBLE && g.abs() < s.g_negligible && vb >= V_NEGLIGIBLE_FLOOR;
    let gq = if negligible { 0.0 } else { g };
    *v = vb + s.one_minus_beta2 * gq * gq;
    let denom = v.sqrt() / s.bias_correction2_sqrt + s.eps;
    *p += s.neg_step_size * *m / denom;
}

/// One step's scalars with what the fused loop derives from them once: whether lanes with a
/// subnormal input are routed to [`soft::adam_elem_soft`] and the idle fast path's scalars
/// (`None` where it does not apply), each as this CPU's measurement says ([`routing`]).
/// [`ReplayAdam`] keeps these for its pending steps, so a replay does not re-derive them per row.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PreparedStep {
    s: StepScalars,
    emulate: bool,
    idle: Option<soft::IdleScalars>,
    l2_idle: Option<soft::L2IdleScalars>,
}

impl PreparedStep {
    pub(crate) fn new(s: StepScalars) -> Self {
        Self::routed(s, routing())
    }

    /// With the given routing (the scalars permitting).
    fn routed(s: StepScalars, pays: Routing) -> Self {
        Self {
            s,
            emulate: pays.soft && soft::scalars_are_normal(&s),
            idle: soft::IdleScalars::new(&s).filter(|_| pays.idle),
            l2_idle: soft::L2IdleScalars::new(&s).filter(|_| pays.l2_idle),
        }
    }

    /// With both routings on whatever this CPU's measurement says (tests of those paths).
    #[cfg(test)]
    pub(crate) fn emulated(s: StepScalars) -> Self {
        Self::routed(s, Routing { idle: true, soft: true, l2_idle: true })
    }

    /// Every lane in hardware.
    #[cfg(test)]
    pub(crate) fn in_hardware(s: StepScalars) -> Self {
        Self::routed(s, Routing::HARDWARE)
    }
}

/// The fused element loop: reads `g`, updates `m`, `v`, writes `p` (one pass over memory).
///
/// Where subnormal arithmetic is slow on this CPU ([`routing`]), blocks of [`BLOCK`]
/// and then chunks of [`IDLE_LANES`] elements without a first moment below 2^-116
/// ([`any_small_moment`]) run [`adam_elem`] on every lane, vectorised; in a chunk with one
/// ([`idle_chunk`]), the lanes of an idle row (first moment below 2^-90, gradient 0) take the
/// idle path (`p *= decay; v *= beta2` and `m`'s step emulated in f64, proven equal:
/// [`soft::idle_moments`]), each other lane with a subnormal (and finite) input runs
/// [`soft::adam_elem_soft`] (every operation emulated in normal-range f64), and the rest run
/// [`adam_elem`]. Elsewhere the plain vectorised loop runs every lane in hardware. The bits
/// never depend on the path (only the speed does): see `soft`'s derivations and the tests
/// `soft::tests::*` and `optim::tests::dense_pass_is_bitwise_the_reference_over_long_idle_spans`.
#[inline]
fn adam_update(s: StepScalars, p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32]) {
    adam_update_prepared(&PreparedStep::new(s), p, g, m, v);
}

/// Seconds one element of one dense Adam step takes in this build's loop (the ISA dispatch
/// included) on the calling thread with its state in L1 cache: the arithmetic floor of the dense
/// pass (a `sqrt`, two divisions and nine multiplies and adds an element, which PyTorch-exact
/// Adam cannot skip), for the benchmarks' bounds. PyTorch's Adam with L2 over 1,024 elements of
/// ordinary (normal) state, 500 steps, best of 5 runs.
pub fn adam_element_seconds() -> f64 {
    const N: usize = 1024;
    const STEPS: usize = 500;
    let config = AdamConfig { weight_decay: 3e-4, ..AdamConfig::default() };
    let steps: Vec<PreparedStep> =
        (1..=STEPS as u64).map(|t| PreparedStep::new(StepScalars::new(&config, 1e-3, t, false))).collect();
    let g: Vec<f32> = (0..N).map(|i| 0.01 + (i % 17) as f32 * 1e-3).collect();
    let mut best = f64::INFINITY;
    for _ in 0..5 {
        let (mut p, mut m, mut v) = (vec![0.1f32; N], vec![0.0f32; N], vec![0.0f32; N]);
        let start = std::time::Instant::now();
        for ps in &steps {
            adam_update_prepared(ps, &mut p, &g, &mut m, &mut v);
        }
        best = best.min(start.elapsed().as_secs_f64());
        std::hint::black_box((&p, &m, &v));
    }
    best / (N * STEPS) as f64
}

/// Which of `soft`'s two paths beat the hardware on this CPU ([`routing`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Routing {
    /// The idle fast path ([`soft::idle_moments`] in [`idle_chunk`], plain Adam's idle rows).
    idle: bool,
    /// The element emulation ([`soft::adam_elem_soft`], any other lane with a subnormal input).
    soft: bool,
    /// The L2 idle path ([`soft::l2_idle_lanes`], Adam with L2's idle rows).
    l2_idle: bool,
}

impl Routing {
    /// Every lane in hardware.
    const HARDWARE: Routing = Routing { idle: false, soft: false, l2_idle: false };
}

/// [`ROUTING`]: not measured yet (bit 2 clear); bit 0 the idle path, bit 1 the emulation, bit 3
/// the L2 idle path.
const MEASURED: u8 = 4;
/// This process's [`Routing`] (see [`routing`]).
static ROUTING: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);

/// Whether routing lanes with subnormal state to `soft` beats the hardware on this CPU, for
/// each of its three paths, measured once per process (well under a millisecond). The cost of
/// subnormal arithmetic differs by an order of magnitude between CPUs: where it takes
/// microcode assists (~100+ cycles an operation, as on many Intel cores) the idle path is far
/// cheaper; on this project's AMD EPYC machines the hardware handles the idle rows' subnormals
/// at about twice a normal lane's cost, and the f64 emulation is 10-40 times slower than that.
/// On this project's Intel Xeon they part ways: the idle path of plain Adam and the L2 idle
/// path beat the hardware's assists, the scalar element emulation of Adam + L2's idle state does
/// not. The measurement times each path against the hardware over 1,024 lanes of its idle state
/// (plain Adam: subnormal first moment; Adam with L2, for the element emulation and the L2 idle
/// path: subnormal weight and first moment), best of 5, and takes a path where it is at least
/// 1.25x faster.
/// Only the speed depends on the answer, never the bits.
fn routing() -> Routing {
    use std::sync::atomic::Ordering::Relaxed;
    let code = ROUTING.load(Relaxed);
    let code = if code & MEASURED != 0 {
        code
    } else {
        let pays = measure_routing();
        let code =
            MEASURED | u8::from(pays.idle) | (u8::from(pays.soft) << 1) | (u8::from(pays.l2_idle) << 3);
        // A concurrent first caller may store its own answer; either is a valid routing.
        ROUTING.store(code, Relaxed);
        code
    };
    Routing { idle: code & 1 != 0, soft: code & 2 != 0, l2_idle: code & 8 != 0 }
}

/// Routes subnormal lanes to `soft` (both paths) for the rest of the process, whatever
/// [`routing`] measured: the tests of those paths run them on every CPU.
#[cfg(test)]
pub(crate) fn force_emulation() {
    ROUTING.store(MEASURED | 11, std::sync::atomic::Ordering::Relaxed);
}

/// [`routing`]'s measurement.
fn measure_routing() -> Routing {
    const N: usize = 1024;
    let plain = StepScalars::new(&AdamConfig::default(), 1e-3, 1000, false);
    let l2 = StepScalars::new(&AdamConfig { weight_decay: 3e-4, ..AdamConfig::default() }, 3e-3, 1000, false);
    // Idle rows as training leaves them: plain Adam's first moment at a fixed point a few units
    // of 2^-149 from 0; with L2, the weight and the first moment both subnormal.
    let states = [
        (plain, [0.3f32, 0.0, f32::from_bits(4), 1e-12]),
        (l2, [f32::from_bits(140_000), 0.0, f32::from_bits(40), 4e-11]),
    ];
    let time = |(s, [p0, g0, m0, v0]): (StepScalars, [f32; 4]), pays: Routing| {
        let mut best = f64::INFINITY;
        for _ in 0..5 {
            // The buffers are filled before the clock starts: only the loop is timed.
            let ps = PreparedStep::routed(s, pays);
            let (mut p, g, mut m, mut v) = (vec![p0; N], vec![g0; N], vec![m0; N], vec![v0; N]);
            let start = std::time::Instant::now();
            adam_update_prepared(&ps, &mut p, &g, &mut m, &mut v);
            best = best.min(start.elapsed().as_secs_f64());
            std::hint::black_box((&p, &m, &v));
        }
        best
    };
    let hardware = Routing::HARDWARE;
    let [plain, l2] = states;
    Routing {
        idle: time(plain, Routing { idle: true, ..hardware }) * 1.25 < time(plain, hardware),
        soft: time(l2, Routing { soft: true, ..hardware }) * 1.25 < time(l2, hardware),
        l2_idle: time(l2, Routing { l2_idle: true, ..hardware }) * 1.25 < time(l2, hardware),
    }
}

/// [`adam_update`] with the step's derived scalars at hand, compiled for AVX-512 or AVX2 where
/// the CPU has it (16 or 8 lanes a vector instead of SSE's 4). The ISA changes the speed only:
/// every operation of [`adam_elem`] is an IEEE-754 single-precision `*`, `+`, `-`, `/` or
/// `sqrt`, correctly rounded whatever the vector width, and Rust contracts nothing into FMAs
/// (the `fma` feature only lets the compiler use the instructions where the source asks), so
/// the bits are those of the SSE build (test `soft::tests::wide_and_baseline_loops_agree_to_the_bit`).
#[inline]
fn adam_update_prepared(ps: &PreparedStep, p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32]) {
    // Adam with L2 takes its own compiled loops: sharing one body with the idle path of plain
    // Adam cost that path ~20% (P3's fit, measured), from the code around it.
    let l2 = ps.l2_idle.is_some();
    #[cfg(target_arch = "x86_64")]
    match (wide_isa(), l2) {
        // SAFETY: the CPU supports the build's features (checked at run time by `wide_isa`).
        (Some(WideIsa::Avx512), false) => return unsafe { adam_update_avx512(ps, p, g, m, v) },
        (Some(WideIsa::Avx512), true) => return unsafe { adam_update_l2_avx512(ps, p, g, m, v) },
        (Some(WideIsa::Avx2), false) => return unsafe { adam_update_avx2(ps, p, g, m, v) },
        (Some(WideIsa::Avx2), true) => return unsafe { adam_update_l2_avx2(ps, p, g, m, v) },
        (None, _) => {}
    }
    if l2 {
        adam_update_body_l2(ps, p, g, m, v);
    } else {
        adam_update_body(ps, p, g, m, v);
    }
}

/// The wide builds of the element loop.
#[cfg(target_arch = "x86_64")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WideIsa {
    /// AVX-512 F and VL (with AVX2 and FMA).
    Avx512,
    /// AVX2 and FMA.
    Avx2,
}

/// The widest build of the loop this CPU runs (std caches the CPUID answers).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn wide_isa() -> Option<WideIsa> {
    use std::arch::is_x86_feature_detected as has;
    let avx2 = has!("avx2") && has!("fma");
    if avx2 && has!("avx512f") && has!("avx512vl") {
        Some(WideIsa::Avx512)
    } else if avx2 {
        Some(WideIsa::Avx2)
    } else {
        None
    }
}

/// [`adam_update_body`] compiled with AVX-512.
///
/// # Safety
/// The CPU must support AVX-512 F and VL, AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
unsafe fn adam_update_avx512(ps: &PreparedStep, p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32]) {
    adam_update_body(ps, p, g, m, v);
}

/// [`adam_update_body`] compiled with AVX2.
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn adam_update_avx2(ps: &PreparedStep, p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32]) {
    adam_update_body(ps, p, g, m, v);
}

/// [`adam_update_body_l2`] compiled with AVX-512.
///
/// # Safety
/// The CPU must support AVX-512 F and VL, AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
unsafe fn adam_update_l2_avx512(ps: &PreparedStep, p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32]) {
    adam_update_body_l2(ps, p, g, m, v);
}

/// [`adam_update_body_l2`] compiled with AVX2.
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn adam_update_l2_avx2(ps: &PreparedStep, p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32]) {
    adam_update_body_l2(ps, p, g, m, v);
}

/// [`adam_update`]'s loop for the baseline ISA (without AVX2), for the tests that compare them.
#[cfg(test)]
pub(crate) fn adam_update_baseline(
    ps: &PreparedStep,
    p: &mut [f32],
    g: &[f32],
    m: &mut [f32],
    v: &mut [f32],
) {
    if ps.l2_idle.is_some() {
        adam_update_body_l2(ps, p, g, m, v);
    } else {
        adam_update_body(ps, p, g, m, v);
    }
}

#[inline(always)]
fn adam_update_body(ps: &PreparedStep, p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32]) {
    // Under FTZ/DAZ the hardware's arithmetic is not IEEE's, and no emulation may stand in.
    if !(ps.emulate || ps.idle.is_some()) || crate::fpenv::any_flush_bit() {
        return adam_update_reference(ps.s, p, g, m, v);
    }
    for (((p, g), m), v) in
        p.chunks_mut(BLOCK).zip(g.chunks(BLOCK)).zip(m.chunks_mut(BLOCK)).zip(v.chunks_mut(BLOCK))
    {
        if !any_small_moment(m) {
            adam_update_reference(ps.s, p, g, m, v);
        } else {
            adam_update_mixed(ps, p, g, m, v);
        }
    }
}

/// Elements per block of [`adam_update`]: a block without a subnormal input runs the plain loop.
const BLOCK: usize = 256;

/// Whether some first moment of the slice is subnormal (the element emulation's trigger in
/// [`adam_update_body_l2`]). A subnormal `p`, `g` or `v` with normal `m` (rare and transient:
/// `v` decays by `beta2` a step, ~67,000 idle steps to the range) takes the hardware path, the
/// same bits. One integer test a value: `x - 1` (wrapping) of a subnormal's magnitude bits is
/// below `2^23 - 1`, of ±0 it is `2^31 - 1`.
/// Whether some first moment of the slice is nonzero and below 2^-116 in magnitude: subnormal
/// (the state that sticks: an idle row's first moment stops at a fixed point a few units of
/// 2^-149 from 0) or a tiny normal on its way there, whose products `(1 - beta1) m` and
/// `-lr/bc1 * m` are subnormal or nearly so at ordinary learning rates (each a microcode assist
/// on many Intel cores). Such chunks go to [`adam_update_mixed`], whose idle path takes first
/// moments below 2^-90. Measured on the Intel Xeon (P3 on synthetic ml-latest-small,
/// `reelvec pipeline --only p3`, 1 thread, user time): subnormal moments only 3.41-3.51 s; below
/// 2^-104 3.14-3.18, 2^-112 2.95-3.04, 2^-116 2.93-2.97, 2^-118 2.95-3.03, 2^-121 3.11-3.14.
/// One integer test a value: `x - 1` (wrapping) of ±0's magnitude bits is `2^32 - 1`.
#[inline(always)]
fn any_small_moment(m: &[f32]) -> bool {
    m.iter().fold(false, |a, x| a | ((x.to_bits() & 0x7fff_ffff).wrapping_sub(1) < SMALL_MOMENT_BITS - 1))
}

/// Bits of 2^-116 (see [`any_small_moment`]).
const SMALL_MOMENT_BITS: u32 = (127 - 116) << 23;

#[inline(always)]
fn any_subnormal_moment(m: &[f32]) -> bool {
    m.iter().fold(false, |a, x| a | ((x.to_bits().wrapping_sub(1) & 0x7fff_ffff) < 0x007f_ffff))
}

/// A block with a small first moment ([`any_small_moment`]), by chunks of [`IDLE_LANES`]: a
/// chunk without one runs the plain loop, the others [`idle_chunk`].
#[inline(always)]
fn adam_update_mixed(ps: &PreparedStep, p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32]) {
    let Some(idle) = &ps.idle else {
        return adam_update_mixed_lanes(ps, p, g, m, v);
    };
    let mut pc = p.chunks_exact_mut(IDLE_LANES);
    let mut gc = g.chunks_exact(IDLE_LANES);
    let mut mc = m.chunks_exact_mut(IDLE_LANES);
    let mut vc = v.chunks_exact_mut(IDLE_LANES);
    for (((p, g), m), v) in (&mut pc).zip(&mut gc).zip(&mut mc).zip(&mut vc) {
        if !any_small_moment(m) {
            adam_update_reference(ps.s, p, g, m, v);
            continue;
        }
        let lanes = "a chunk of IDLE_LANES";
        let (p, g, m, v) = (
            p.try_into().expect(lanes),
            g.try_into().expect(lanes),
            m.try_into().expect(lanes),
            v.try_into().expect(lanes),
        );
        idle_chunk::<IDLE_LANES>(ps, idle, p, g, m, v);
    }
    let tail = (pc.into_remainder(), gc.remainder(), mc.into_remainder(), vc.into_remainder());
    adam_update_mixed_lanes(ps, tail.0, tail.1, tail.2, tail.3);
}

/// A chunk of plain Adam with a small first moment, where the idle path pays: a chunk whose
/// lanes all sit at a fixed point of the idle step takes [`soft::stuck_lanes`]
/// (`p *= decay; v *= beta2`, `m` kept); in the others the idle lanes
/// ([`soft::idle_moments`]) run in the plain loop with their first moment replaced by +0
/// (their `p'` and `v'` exactly, without a subnormal operation) and then take the emulated `m'`;
/// the other lanes run the plain loop on their own state (in the same vector update), or,
/// where the step emulates, [`adam_lane`] one by one. Measured on the Intel Xeon, P3 on
/// synthetic ml-latest-small (`reelvec train --model sigmoid-mf --preset notebook`, 1 thread,
/// CPU ms an epoch, 5 alternating runs, medians): 212.3 ms; 16-lane chunks with a separate
/// idle update and a masked hardware update of the lanes it left 216.0 ms; the same at 8 lanes
/// 243.2 ms. Model bits identical.
#[inline(always)]
fn idle_chunk<const N: usize>(
    ps: &PreparedStep,
    idle: &soft::IdleScalars,
    p: &mut [f32; N],
    g: &[f32; N],
    m: &mut [f32; N],
    v: &mut [f32; N],
) {
    if soft::stuck_lanes(idle, p, g, m, v) {
        return;
    }
    let (taken, moved) = soft::idle_moments(idle, p, g, m, v);
    for j in 0..N {
        m[j] = select_bits(taken[j], 0.0, m[j]);
    }
    if ps.emulate {
        let others = taken.map(|t| !t);
        masked_update(others, p, g, m, v, |p, g, m, v| adam_update_reference(ps.s, p, g, m, v));
        for j in (0..N).filter(|&j| others[j]) {
            adam_lane(ps, &mut p[j], g[j], &mut m[j], &mut v[j]);
        }
    } else {
        // A length the compiler cannot see, as in `masked_update`: the loop is then vectorised
        // as the plain chunks' are.
        let n = std::hint::black_box(N);
        adam_update_reference(ps.s, &mut p[..n], &g[..n], &mut m[..n], &mut v[..n]);
    }
    for j in 0..N {
        m[j] = select_bits(taken[j], moved[j], m[j]);
    }
}

/// Lanes one by one ([`adam_lane`]): a block's tail after its chunks, or a small-moment block of
/// plain Adam where the idle path does not pay.
#[inline(always)]
fn adam_update_mixed_lanes(ps: &PreparedStep, p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32]) {
    for (((p, &g), m), v) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
        adam_lane(ps, p, g, m, v);
    }
}

/// [`adam_update_body`] for Adam with L2 where [`soft::l2_idle_lanes`] pays
/// (`ps.l2_idle`): blocks of [`BLOCK`] elements without a tiny weight
/// ([`soft::any_tiny_weight`]; nor a subnormal first moment where the element emulation runs)
/// take the plain loop of [`adam_elem_with`]; the others go by chunks of [`LANES`] through
/// [`adam_update_mixed_l2`]. The bits are the plain loop's ([`adam_update_reference`]).
#[inline(always)]
fn adam_update_body_l2(ps: &PreparedStep, p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32]) {
    if crate::fpenv::any_flush_bit() {
        return adam_update_reference(ps.s, p, g, m, v);
    }
    for (((p, g), m), v) in
        p.chunks_mut(BLOCK).zip(g.chunks(BLOCK)).zip(m.chunks_mut(BLOCK)).zip(v.chunks_mut(BLOCK))
    {
        if !needs_care_l2(ps, p, m) {
            adam_update_reference_l2(ps.s, p, g, m, v);
        } else {
            adam_update_mixed_l2(ps, p, g, m, v);
        }
    }
}

/// Whether a block or chunk of Adam with L2 may hold a lane [`adam_update_mixed_l2`] has a
/// path for: a tiny weight, or a subnormal first moment where the element emulation runs.
/// (The idle lanes' first moments follow `l2 p`, so with an ordinary weight a subnormal first
/// moment is a passing state; scanning the moments as well cost about 5% of P2's epoch.)
#[inline(always)]
fn needs_care_l2(ps: &PreparedStep, p: &[f32], m: &[f32]) -> bool {
    soft::any_tiny_weight(p) || (ps.emulate && any_subnormal_moment(m))
}

/// A block of Adam with L2 with a tiny weight, by chunks of [`LANES`]: a chunk without one runs
/// the plain loop; a chunk whose lanes all sit at a fixed point of the idle step
/// ([`soft::l2_stuck_lanes`]) only takes `v *= beta2`; in the others, where a lane the fixed
/// point leaves has a tiny weight, the idle lanes take [`soft::l2_idle_lanes`] (emulated), the
/// fixed lanes otherwise keep the shortcut, and the rest run in hardware (one masked 8-lane
/// update, or [`adam_lane`] each where the step emulates). Measured on the Intel Xeon, 1
/// thread: over 1,024 lanes of one state, an emulated chunk costs about as much as the
/// hardware's assists on passing idle lanes (~10-11 ns a lane), the fixed-point shortcut ~0.9 ns
/// a lane against ~11; `engine` bench `adam_l2_step_idle_rows` (10,352 x 51 rows after 2,000
/// touched and 3,000 idle steps) 2.27 ms a step against 23.9 ms for the plain loop and 0.32 ms
/// with FTZ/DAZ.
#[inline(always)]
fn adam_update_mixed_l2(ps: &PreparedStep, p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32]) {
    let Some(l2_idle) = &ps.l2_idle else {
        return adam_update_reference_l2(ps.s, p, g, m, v);
    };
    let mut pc = p.chunks_exact_mut(LANES);
    let mut gc = g.chunks_exact(LANES);
    let mut mc = m.chunks_exact_mut(LANES);
    let mut vc = v.chunks_exact_mut(LANES);
    for (((p, g), m), v) in (&mut pc).zip(&mut gc).zip(&mut mc).zip(&mut vc) {
        if !needs_care_l2(ps, p, m) {
            adam_update_reference_l2(ps.s, p, g, m, v);
            continue;
        }
        let (p, g, m, v): (&mut [f32; LANES], &[f32; LANES], &mut [f32; LANES], &mut [f32; LANES]) = (
            p.try_into().expect("chunk of LANES"),
            g.try_into().expect("chunk of LANES"),
            m.try_into().expect("chunk of LANES"),
            v.try_into().expect("chunk of LANES"),
        );
        let (stuck, vn) = soft::l2_stuck_lanes(l2_idle, p, g, m, v);
        if stuck == [true; LANES] {
            *v = vn;
            continue;
        }
        // The emulation only where a lane the shortcut leaves needs it (a chunk of it costs
        // about as much as ten plain ones).
        let moving: [f32; LANES] = std::array::from_fn(|j| if stuck[j] { 1.0 } else { p[j] });
        let done = if soft::any_tiny_weight(&moving) {
            soft::l2_idle_lanes(l2_idle, p, g, m, v)
        } else {
            *v = std::array::from_fn(|j| select_bits(stuck[j], vn[j], v[j]));
            stuck
        };
        if ps.emulate {
            for j in (0..LANES).filter(|&j| !done[j]) {
                adam_lane(ps, &mut p[j], g[j], &mut m[j], &mut v[j]);
            }
        } else if done != [true; LANES] {
            masked_update(done, p, g, m, v, |p, g, m, v| adam_update_reference_l2(ps.s, p, g, m, v));
        }
    }
    let tail = (pc.into_remainder(), gc.remainder(), mc.into_remainder(), vc.into_remainder());
    adam_update_mixed_lanes(ps, tail.0, tail.1, tail.2, tail.3);
}

/// `a` where `pick`, else `b`, by bit masks (no branch on the data).
#[inline(always)]
fn select_bits(pick: bool, a: f32, b: f32) -> f32 {
    let mask = u32::from(pick).wrapping_neg();
    f32::from_bits((a.to_bits() & mask) | (b.to_bits() & !mask))
}

/// The lanes of a chunk not `done` through `update` (a plain loop) in one vector call, the
/// `done` lanes' inputs replaced by ordinary values (1, 0, 0, 1) and their results dropped, by
/// bit selects: which lanes are done follows the data, so a branch per lane is mispredicted
/// often (measured: ~110 ns a chunk on P3's idle rows).
#[inline(always)]
fn masked_update<const N: usize>(
    done: [bool; N],
    p: &mut [f32; N],
    g: &[f32; N],
    m: &mut [f32; N],
    v: &mut [f32; N],
    update: impl Fn(&mut [f32], &[f32], &mut [f32], &mut [f32]),
) {
    let (mut sp, mut sg, mut sm, mut sv) = ([0.0f32; N], [0.0f32; N], [0.0f32; N], [0.0f32; N]);
    for j in 0..N {
        (sp[j], sg[j], sm[j], sv[j]) = (
            select_bits(done[j], 1.0, p[j]),
            select_bits(done[j], 0.0, g[j]),
            select_bits(done[j], 0.0, m[j]),
            select_bits(done[j], 1.0, v[j]),
        );
    }
    // A length the compiler cannot see: the loop is then vectorised as the plain chunks' (with
    // a known 8 it is unrolled into scalar operations, scalar divisions and square roots
    // costing ~8x).
    let n = std::hint::black_box(N);
    update(&mut sp[..n], &sg[..n], &mut sm[..n], &mut sv[..n]);
    for j in 0..N {
        (p[j], m[j], v[j]) = (
            select_bits(done[j], p[j], sp[j]),
            select_bits(done[j], m[j], sm[j]),
            select_bits(done[j], v[j], sv[j]),
        );
    }
}

/// One lane, routed by its inputs: [`soft::adam_elem_soft`] when the step emulates
/// (`ps.emulate`, which implies [`soft::scalars_are_normal`]) and an input is subnormal (and all
/// are finite), [`adam_elem`] otherwise.
#[inline(always)]
fn adam_lane(ps: &PreparedStep, p: &mut f32, g: f32, m: &mut f32, v: &mut f32) {
    if ps.emulate && soft::lane_is_soft(*p, g, *m, *v) {
        soft::adam_elem_soft(&ps.s, p, g, m, v);
    } else {
        adam_elem(&ps.s, p, g, m, v);
    }
}

/// The plain element loop, [`adam_elem`] on every element in hardware: the reference the fast
/// loop is tested and benchmarked against, and the path when a step scalar is subnormal.
#[inline(always)]
pub(crate) fn adam_update_reference(s: StepScalars, p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32]) {
    adam_update_loop::<false>(s, p, g, m, v);
}

/// [`adam_update_reference`] skipping negligible gradient squares ([`adam_elem_with`]): the same bits.
#[inline(always)]
fn adam_update_reference_l2(s: StepScalars, p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32]) {
    adam_update_loop::<true>(s, p, g, m, v);
}

/// The plain element loop over [`adam_elem_with`].
#[inline(always)]
fn adam_update_loop<const SKIP_NEGLIGIBLE: bool>(
    s: StepScalars,
    p: &mut [f32],
    g: &[f32],
    m: &mut [f32],
    v: &mut [f32],
) {
    for (((p, &g), m), v) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
        adam_elem_with::<SKIP_NEGLIGIBLE>(&s, p, g, m, v);
    }
}

/// An element loop over one chunk: [`adam_update`] or [`adam_update_reference`].
type UpdateFn = fn(StepScalars, &mut [f32], &[f32], &mut [f32], &mut [f32]);

fn dense_pass(s: StepScalars, params: &mut ParamStore, grads: &Grads, mom: &mut Moments, update: UpdateFn) {
    for (i, table) in params.tables_mut().iter_mut().enumerate() {
        let g = &grads.tables()[i].data;
        let (m, v) = (&mut mom.m[i], &mut mom.v[i]);
        if table.data.len() <= PAR_CHUNK {
            update(s, &mut table.data, g, m, v);
        } else {
            table
                .data
                .par_chunks_mut(PAR_CHUNK)
                .zip(g.par_chunks(PAR_CHUNK))
                .zip(m.par_chunks_mut(PAR_CHUNK))
                .zip(v.par_chunks_mut(PAR_CHUNK))
                .for_each(|(((p, g), m), v)| update(s, p, g, m, v));
        }
    }
}

/// Lazy Adam over one table: [`adam_update`] on the rows `gt` marks touched.
fn lazy_pass(
    s: StepScalars,
    p: &mut [f32],
    gt: &GradTable,
    m: &mut [f32],
    v: &mut [f32],
    sorted: &mut Vec<u32>,
) {
    for_touched_rows(p, gt, m, v, sorted, &|_, p, g, m, v| adam_update(s, p, g, m, v));
}

/// Runs `f(row, p, g, m, v)` on every row of one table that `gt` marks touched, each row once,
/// rows in parallel (each row's arithmetic is independent of the others, so the bits do not
/// depend on the thread count). Three regimes: few touched elements run on the calling thread in
/// first-touch order; many touched rows (a quarter of the table or more) run as a parallel pass
/// over row blocks filtered by the touched mask; in between, the touched rows are sorted (into
/// `sorted`, reused across steps) and the table is split recursively at touched rows into
/// disjoint halves for `rayon::join`.
fn for_touched_rows<F>(
    p: &mut [f32],
    gt: &GradTable,
    m: &mut [f32],
    v: &mut [f32],
    sorted: &mut Vec<u32>,
    f: &F,
) where
    F: Fn(usize, &mut [f32], &[f32], &mut [f32], &mut [f32]) + Sync,
{
    let c = gt.cols;
    let touched = gt.touched_rows();
    if touched.len() * c <= PAR_CHUNK {
        for &r in touched {
            let span = r as usize * c..(r as usize + 1) * c;
            f(r as usize, &mut p[span.clone()], &gt.data[span.clone()], &mut m[span.clone()], &mut v[span]);
        }
    } else if touched.len() * 4 < gt.rows() {
        sorted.clear();
        sorted.extend_from_slice(touched);
        sorted.sort_unstable();
        touched_sorted(sorted, 0, c, p, &gt.data, m, v, f);
    } else {
        let block_rows = (PAR_CHUNK / c).max(1);
        let block = block_rows * c;
        p.par_chunks_mut(block)
            .zip(gt.data.par_chunks(block))
            .zip(m.par_chunks_mut(block))
            .zip(v.par_chunks_mut(block))
            .zip(gt.touched_mask().par_chunks(block_rows))
            .enumerate()
            .for_each(|(b, ((((p, g), m), v), mask))| {
                for (r, _) in mask.iter().enumerate().filter(|(_, &t)| t) {
                    let span = r * c..(r + 1) * c;
                    f(
                        b * block_rows + r,
                        &mut p[span.clone()],
                        &g[span.clone()],
                        &mut m[span.clone()],
                        &mut v[span],
                    );
                }
            });
    }
}

/// [`for_touched_rows`] over the sorted `rows` of a table slice that starts at row `base`:
/// halves the row list and splits the slices at the middle touched row, so both halves own
/// disjoint memory.
#[allow(clippy::too_many_arguments)] // the four buffers of one fused pass, where they start, the work
fn touched_sorted<F>(
    rows: &[u32],
    base: usize,
    c: usize,
    p: &mut [f32],
    g: &[f32],
    m: &mut [f32],
    v: &mut [f32],
    f: &F,
) where
    F: Fn(usize, &mut [f32], &[f32], &mut [f32], &mut [f32]) + Sync,
{
    if rows.len() * c <= PAR_CHUNK {
        for &r in rows {
            let span = (r as usize - base) * c..(r as usize - base + 1) * c;
            f(r as usize, &mut p[span.clone()], &g[span.clone()], &mut m[span.clone()], &mut v[span]);
        }
        return;
    }
    let mid = rows.len() / 2;
    let split_row = rows[mid] as usize;
    let at = (split_row - base) * c;
    let (p_lo, p_hi) = p.split_at_mut(at);
    let (g_lo, g_hi) = g.split_at(at);
    let (m_lo, m_hi) = m.split_at_mut(at);
    let (v_lo, v_hi) = v.split_at_mut(at);
    rayon::join(
        || touched_sorted(&rows[..mid], base, c, p_lo, g_lo, m_lo, v_lo, f),
        || touched_sorted(&rows[mid..], split_row, c, p_hi, g_hi, m_hi, v_hi, f),
    );
}

/// PyTorch `torch.optim.Adam`: every element updated every step.
#[derive(Debug, Clone)]
pub struct Adam {
    config: AdamConfig,
    moments: Moments,
    t: u64,
}

impl Adam {
    /// [`Optimizer::step`] through the plain hardware element loop (`adam_update_reference`):
    /// the same bits, slow on subnormal moments. The reference the tests and the `engine`
    /// benchmark compare the default pass with.
    pub fn step_reference(&mut self, params: &mut ParamStore, grads: &Grads, lr: f32) {
        self.moments.ensure(params);
        self.t += 1;
        let s = StepScalars::new(&self.config, lr, self.t, false);
        dense_pass(s, params, grads, &mut self.moments, adam_update_reference);
    }

    /// A fresh optimizer (moments are allocated on the first step).
    pub fn new(config: AdamConfig) -> Self {
        Self { config, moments: Moments::default(), t: 0 }
    }
}

#[cfg(test)]
impl Adam {
    /// First and second moments of every table (tests compare them across float modes).
    pub(crate) fn moments(&self) -> (&[Vec<f32>], &[Vec<f32>]) {
        (&self.moments.m, &self.moments.v)
    }
}

#[cfg(test)]
impl AdamW {
    /// First and second moments of every table (tests compare them with the replaying pass).
    pub(crate) fn moments(&self) -> (&[Vec<f32>], &[Vec<f32>]) {
        (&self.moments.m, &self.moments.v)
    }
}

impl Optimizer for Adam {
    fn step(&mut self, params: &mut ParamStore, grads: &Grads, lr: f32) {
        self.moments.ensure(params);
        self.t += 1;
        let s = StepScalars::new(&self.config, lr, self.t, false);
        dense_pass(s, params, grads, &mut self.moments, adam_update);
    }

    fn steps_taken(&self) -> u64 {
        self.t
    }
}

/// PyTorch `torch.optim.AdamW`: decoupled weight decay, every element every step.
#[derive(Debug, Clone)]
pub struct AdamW {
    config: AdamConfig,
    moments: Moments,
    t: u64,
}

impl AdamW {
    /// [`Optimizer::step`] through the plain hardware element loop (`adam_update_reference`):
    /// the same bits, slow on subnormal moments. The reference the tests and the `engine`
    /// benchmark compare the default pass with.
    pub fn step_reference(&mut self, params: &mut ParamStore, grads: &Grads, lr: f32) {
        self.moments.ensure(params);
        self.t += 1;
        let s = StepScalars::new(&self.config, lr, self.t, true);
        dense_pass(s, params, grads, &mut self.moments, adam_update_reference);
    }

    /// A fresh optimizer.
    pub fn new(config: AdamConfig) -> Self {
        Self { config, moments: Moments::default(), t: 0 }
    }
}

impl Optimizer for AdamW {
    fn step(&mut self, params: &mut ParamStore, grads: &Grads, lr: f32) {
        self.moments.ensure(params);
        self.t += 1;
        let s = StepScalars::new(&self.config, lr, self.t, true);
        dense_pass(s, params, grads, &mut self.moments, adam_update);
    }

    fn steps_taken(&self) -> u64 {
        self.t
    }
}

/// Adam over the rows a batch touched only (weight decay as L2 on those rows).
///
/// Bias correction uses the global step count, as PyTorch's SparseAdam does. Cost per step is
/// proportional to the rows touched, not to the table size.
#[derive(Debug, Clone)]
pub struct LazyAdam {
    config: AdamConfig,
    moments: Moments,
    t: u64,
    /// Sorted touched rows, reused across steps.
    sorted: Vec<u32>,
}

impl LazyAdam {
    /// A fresh optimizer.
    pub fn new(config: AdamConfig) -> Self {
        Self { config, moments: Moments::default(), t: 0, sorted: Vec::new() }
    }
}

impl Optimizer for LazyAdam {
    fn step(&mut self, params: &mut ParamStore, grads: &Grads, lr: f32) {
        self.moments.ensure(params);
        self.t += 1;
        let s = StepScalars::new(&self.config, lr, self.t, false);
        for (i, table) in params.tables_mut().iter_mut().enumerate() {
            lazy_pass(
                s,
                &mut table.data,
                &grads.tables()[i],
                &mut self.moments.m[i],
                &mut self.moments.v[i],
                &mut self.sorted,
            );
        }
    }

    fn steps_taken(&self) -> u64 {
        self.t
    }
}

/// PyTorch `torch.optim.Adam` (or `AdamW`) to the bit, with the rows no step touched brought up to
/// date lazily: dense Adam's result at a fraction of its memory traffic.
///
/// **Why it is exact.** A row no rating of step `t` touched has gradient 0 there, so dense Adam's
/// update of it is [`adam_elem`] with `g = 0` (the gradient buffer of an untouched row holds
/// `+0.0`): a function of the row's own `p, m, v` and of step `t`'s scalars only (learning rate,
/// bias corrections). A row untouched for steps `c+1 ..= t` is therefore brought to dense Adam's
/// state by running those steps' scalars over it in order with `g = +0.0`, through the dense
/// pass's own loop ([`adam_update_prepared`]): the same operations in the same order, hence the
/// same bits, with the row's state in cache instead of a sweep of the whole table a step.
///
/// **Why it is fast.** One row replayed alone is a chain of dependent steps (the `sqrt` and two
/// divisions of step `t+1` wait for step `t`): latency-bound, slower than the dense sweep. So
/// [`replay_rows`] replays many rows together as a wavefront: the rows to bring up to date are
/// copied into a scratch buffer sorted by the step they are stale from (stalest first), and
/// for each pending step the loop runs over the prefix of rows stale at that step, so every
/// step is one vectorised pass over independent elements, throughput-bound like the dense pass
/// but over the few rows a batch reads, in L1/L2.
///
/// **Contract.** Rows are brought up to date (1) by [`Optimizer::prepare_rows`] before the
/// objective reads them (the trainer marks the batch's rows through
/// [`Objective::mark_rows`](crate::trainer::Objective::mark_rows) first), (2) by `step` for a
/// touched row it finds stale, and (3) all of them by [`Optimizer::sync`], which the trainer
/// calls at the end of every epoch, before validation, checks, snapshots and callbacks read the
/// store. Between syncs the store's untouched rows are stale. The scalars of the steps since the
/// last sync are kept (about 60 bytes a step), with one step index per row.
#[derive(Debug, Clone)]
pub struct ReplayAdam {
    config: AdamConfig,
    decoupled: bool,
    moments: Moments,
    t: u64,
    /// Per table, per row: the step through which the row is up to date.
    current: Vec<Vec<u64>>,
    /// Scalars of steps `base + 1 ..= t`: the steps a stale row may still need.
    pending: Vec<PreparedStep>,
    /// Step of the last sync (every row was current there).
    base: u64,
    /// Sorted touched rows, reused across steps.
    sorted: Vec<u32>,
    /// The wavefront's buffers, reused across steps.
    scratch: ReplayScratch,
}

impl ReplayAdam {
    /// Adam (`decoupled` false: L2 weight decay in the gradient) or AdamW (`decoupled` true).
    pub fn new(config: AdamConfig, decoupled: bool) -> Self {
        Self {
            config,
            decoupled,
            moments: Moments::default(),
            t: 0,
            current: Vec::new(),
            pending: Vec::new(),
            base: 0,
            sorted: Vec::new(),
            scratch: ReplayScratch::default(),
        }
    }

    fn ensure(&mut self, params: &ParamStore) {
        self.moments.ensure(params);
        if self.current.len() != params.tables().len() {
            self.current = params.tables().iter().map(|t| vec![self.t; t.rows]).collect();
        }
    }

    /// Replays the pending steps through `upto` over the rows `marks` flags, then applies `step`
    /// (the update of step `self.t` with the marked gradients) to them when given; marks them
    /// current through `self.t`.
    fn touched_pass(
        &mut self,
        params: &mut ParamStore,
        marks: &Grads,
        upto: u64,
        step: Option<&PreparedStep>,
    ) {
        let Self { moments, current, pending, base, sorted, t, scratch, .. } = self;
        // Steps `base+1 ..= upto` are pending[.. upto - base].
        let replayable = &pending[..(upto - *base) as usize];
        for (i, table) in params.tables_mut().iter_mut().enumerate() {
            let gt = &marks.tables()[i];
            let (p, m, v) = (&mut table.data, &mut moments.m[i], &mut moments.v[i]);
            let cur = &mut current[i];
            let stale = gt.touched_rows().iter().map(|&r| r as usize);
            replay_rows(replayable, cur, *base, gt.cols, stale, p, m, v, scratch);
            if let Some(ps) = step {
                for_touched_rows(p, gt, m, v, sorted, &|_, p, g, m, v| adam_update_prepared(ps, p, g, m, v));
            }
            for &r in gt.touched_rows() {
                cur[r as usize] = *t;
            }
        }
    }
}

/// Elements a wavefront group holds (p, m, v: 24 KiB of scratch), so its working set stays in
/// L1/L2 while there are enough independent elements a step to hide the latency of the chain.
const REPLAY_GROUP_ELEMS: usize = 2048;

/// The wavefront's buffers: the rows being replayed (sorted by the step they are stale from),
/// their `p`, `m`, `v` copied side by side, and a zero gradient.
#[derive(Debug, Clone, Default)]
struct ReplayScratch {
    /// (pending step the row is stale from, row).
    order: Vec<(u32, u32)>,
    p: Vec<f32>,
    m: Vec<f32>,
    v: Vec<f32>,
    zeros: Vec<f32>,
}

/// Brings the `rows` of one table (width `c`) up to date through the last of `steps` (the
/// pending steps `base + 1 ..`); `cur[r]` is the step row `r` is current through (not
/// updated here). Rows are gathered into `scratch` stalest first and replayed in groups of
/// about [`REPLAY_GROUP_ELEMS`] elements, groups in parallel ([`replay_group`]); the bits do
/// not depend on the grouping or the thread count, as each element's steps are its own.
#[allow(clippy::too_many_arguments)] // the table's three buffers, its width, the rows and the steps
fn replay_rows(
    steps: &[PreparedStep],
    cur: &[u64],
    base: u64,
    c: usize,
    rows: impl Iterator<Item = usize>,
    p: &mut [f32],
    m: &mut [f32],
    v: &mut [f32],
    scratch: &mut ReplayScratch,
) {
    let ReplayScratch { order, p: sp, m: sm, v: sv, zeros } = scratch;
    order.clear();
    // A row current through `cur[r]` needs steps[cur[r] - base ..].
    order.extend(
        rows.map(|r| ((cur[r] - base) as u32, r as u32)).filter(|&(start, _)| (start as usize) < steps.len()),
    );
    if order.is_empty() || c == 0 {
        return;
    }
    order.sort_unstable();
    let n = order.len() * c;
    for buf in [&mut *sp, &mut *sm, &mut *sv] {
        buf.clear();
        buf.reserve(n);
    }
    for &(_, r) in order.iter() {
        let span = r as usize * c..(r as usize + 1) * c;
        sp.extend_from_slice(&p[span.clone()]);
        sm.extend_from_slice(&m[span.clone()]);
        sv.extend_from_slice(&v[span]);
    }
    let group_rows = (REPLAY_GROUP_ELEMS / c).max(1);
    let group = group_rows * c;
    if zeros.len() < group {
        zeros.resize(group, 0.0);
    }
    let zeros = &zeros[..];
    if order.len() <= group_rows {
        replay_group(steps, order, c, sp, sm, sv, zeros);
    } else {
        sp.par_chunks_mut(group)
            .zip(sm.par_chunks_mut(group))
            .zip(sv.par_chunks_mut(group))
            .zip(order.par_chunks(group_rows))
            .for_each(|(((p, m), v), order)| replay_group(steps, order, c, p, m, v, zeros));
    }
    for (k, &(_, r)) in order.iter().enumerate() {
        let (span, at) = (r as usize * c..(r as usize + 1) * c, k * c..(k + 1) * c);
        p[span.clone()].copy_from_slice(&sp[at.clone()]);
        m[span.clone()].copy_from_slice(&sm[at.clone()]);
        v[span].copy_from_slice(&sv[at]);
    }
}

/// One wavefront: `order` lists the group's rows by the pending step they are stale from,
/// ascending, and `p`, `m`, `v` hold their state in that order. At step `j` the rows stale
/// from `j` or before form a prefix; the dense pass's loop runs over that prefix with a zero
/// gradient. Each element thus sees exactly its own pending steps, in order.
fn replay_group(
    steps: &[PreparedStep],
    order: &[(u32, u32)],
    c: usize,
    p: &mut [f32],
    m: &mut [f32],
    v: &mut [f32],
    zeros: &[f32],
) {
    let mut active = 0;
    for (j, step) in steps.iter().enumerate().skip(order[0].0 as usize) {
        while active < order.len() && order[active].0 as usize <= j {
            active += 1;
        }
        let e = active * c;
        adam_update_prepared(step, &mut p[..e], &zeros[..e], &mut m[..e], &mut v[..e]);
    }
}

impl Optimizer for ReplayAdam {
    fn prepare_rows(&mut self, params: &mut ParamStore, marks: &Grads) {
        self.ensure(params);
        let t = self.t;
        self.touched_pass(params, marks, t, None);
    }

    fn step(&mut self, params: &mut ParamStore, grads: &Grads, lr: f32) {
        self.ensure(params);
        // A touched row that was not prepared first is replayed to t - 1 here, so the optimizer
        // state stays dense Adam's whatever the caller did.
        let before = self.t;
        self.t += 1;
        let ps = PreparedStep::new(StepScalars::new(&self.config, lr, self.t, self.decoupled));
        self.pending.push(ps);
        self.touched_pass(params, grads, before, Some(&ps));
    }

    fn sync(&mut self, params: &mut ParamStore) {
        self.ensure(params);
        let Self { moments, current, pending, base, t, scratch, .. } = self;
        if pending.is_empty() {
            return;
        }
        for (i, table) in params.tables_mut().iter_mut().enumerate() {
            let cur = &mut current[i];
            let rows = 0..table.rows;
            replay_rows(
                pending,
                cur,
                *base,
                table.cols,
                rows,
                &mut table.data,
                &mut moments.m[i],
                &mut moments.v[i],
                scratch,
            );
            cur.iter_mut().for_each(|c| *c = *t);
        }
        *base = *t;
        pending.clear();
    }

    fn steps_taken(&self) -> u64 {
        self.t
    }
}

#[cfg(test)]
impl ReplayAdam {
    /// First and second moments of every table (tests compare them with dense Adam's).
    pub(crate) fn moments(&self) -> (&[Vec<f32>], &[Vec<f32>]) {
        (&self.moments.m, &self.moments.v)
    }
}
