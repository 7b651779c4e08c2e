//! Negative sampling for CBOW and skip-gram: the unigram^0.75 noise distribution and the
//! forward/backward pass.
//!
//! For a hidden vector `h` (CBOW: the reduced context; skip-gram: `E[t]`), a positive token `p`
//! and negatives `n_1..n_K` drawn from the noise distribution, with scores `s_x = W[x] . h + b_x`:
//!
//! ```text
//! loss = -ln sigma(s_p) - sum_j ln sigma(-s_{n_j})
//!      = softplus(-s_p) + sum_j softplus(s_{n_j}),   softplus(y) = max(y, 0) + ln(1 + e^{-|y|})
//! dloss/ds_x = sigma(s_x) - label_x                  (label 1 for p, 0 for negatives)
//! dloss/dW[x] = (dloss/ds_x) h,  dloss/db_x = dloss/ds_x,  dloss/dh = sum_x (dloss/ds_x) W[x]
//! ```
//!
//! CBOW: one positive (the target) per example, `dloss/dE[c] = dloss/dh` (mean: / |C|), the batch
//! mean is over examples. Skip-gram: one positive per context token, `h = E[t]`, the mean is over
//! (target, context token) pairs. A negative equal to the positive is redrawn (up to 8 times).
//!
//! Draws come from a SplitMix64 stream seeded by (objective seed, draw id, position of the
//! example in the batch), so they do not depend on how the batch is split across threads, and a
//! fixed draw id (gradient checks, validation) gives the same negatives every call.

use super::lane::{Lane, Weights};
use super::softmax::fill_hidden;
use super::{Architecture, ContextReduce, Examples};

/// Samples tokens with probability proportional to `count^power` (word2vec's unigram^0.75).
#[derive(Debug, Clone, PartialEq)]
pub struct UnigramSampler {
    /// Cumulative probabilities, last = 1.
    cdf: Vec<f64>,
    /// Guide table: entry `b` is the bisection's answer for `u = b / (guide.len() - 1)`, so a
    /// draw bisects only the few entries between its bucket's neighbours (O(1) on average
    /// instead of a cache-missing O(log V) walk, with the same token).
    guide: Vec<u32>,
}

impl UnigramSampler {
    /// From token counts. Returns None when every count is zero.
    pub fn new(counts: &[u64], power: f64) -> Option<Self> {
        let weights: Vec<f64> =
            counts.iter().map(|&c| if c == 0 { 0.0 } else { (c as f64).powf(power) }).collect();
        let total: f64 = weights.iter().sum();
        if total <= 0.0 || !total.is_finite() {
            return None;
        }
        let mut acc = 0.0;
        let mut cdf: Vec<f64> = weights
            .iter()
            .map(|w| {
                acc += w / total;
                acc
            })
            .collect();
        // Make the last non-zero entry exactly 1 so every u in [0, 1) maps to a token with weight.
        if let Some(last) = weights.iter().rposition(|&w| w > 0.0) {
            cdf[last..].iter_mut().for_each(|c| *c = 1.0);
        }
        let buckets = 2 * cdf.len();
        let guide =
            (0..=buckets).map(|b| cdf.partition_point(|&c| c <= b as f64 / buckets as f64) as u32).collect();
        Some(Self { cdf, guide })
    }

    /// The noise table of a training set: counts every target and context token of `train`
    /// (a vocabulary of `vocab` tokens) raised to `power`. None when `train` is empty.
    pub fn for_examples(train: &Examples, vocab: usize, power: f64) -> Option<Self> {
        let mut counts = vec![0u64; vocab];
        for e in 0..train.len() {
            counts[train.target(e) as usize] += 1;
            for &c in train.context(e) {
                counts[c as usize] += 1;
            }
        }
        Self::new(&counts, power)
    }

    /// The cumulative probabilities (last non-zero entry exactly 1), for the device sampler.
    pub fn cdf(&self) -> &[f64] {
        &self.cdf
    }

    /// Probability of `token`.
    pub fn probability(&self, token: usize) -> f64 {
        let prev = if token == 0 { 0.0 } else { self.cdf[token - 1] };
        self.cdf[token] - prev
    }

    /// The token for a uniform `u` in `[0, 1)`.
    #[inline]
    pub fn token_for(&self, u: f64) -> u32 {
        // The answer lies between the guide's entries around u's bucket; one bucket of slack on
        // each side absorbs the rounding of `u * buckets`, so this is exactly the bisection of
        // the whole table, `cdf.partition_point(|&c| c <= u)`.
        let buckets = self.guide.len() - 1;
        let b = ((u * buckets as f64) as usize).min(buckets - 1);
        let lo = self.guide[b.saturating_sub(1)] as usize;
        let hi = (self.guide[(b + 2).min(buckets)] as usize).max(lo);
        (lo + self.cdf[lo..hi].partition_point(|&c| c <= u)).min(self.cdf.len() - 1) as u32
    }
}

/// SplitMix64: a tiny, well-mixed generator for the negative draws.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SplitMix64(pub u64);

impl SplitMix64 {
    #[inline]
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    #[inline]
    pub(crate) fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// A stream for one (seed, draw, position) triple.
    #[inline]
    pub(crate) fn stream(seed: u64, draw: u64, position: u64) -> Self {
        let mut s = SplitMix64(seed ^ draw.wrapping_mul(0xD1B5_4A32_D192_ED03));
        let a = s.next_u64();
        SplitMix64(a ^ position.wrapping_mul(0x8CB9_2BA7_2F3D_8DD7))
    }
}

/// `ln(1 + e^y)` without overflow.
#[inline]
pub fn softplus(y: f32) -> f32 {
    y.max(0.0) + (-y.abs()).exp().ln_1p()
}

/// The logistic sigmoid, stable for large `|s|`.
#[inline]
pub fn sigmoid(s: f32) -> f32 {
    if s >= 0.0 {
        1.0 / (1.0 + (-s).exp())
    } else {
        let e = s.exp();
        e / (1.0 + e)
    }
}

/// Parameters of one negative-sampling pass.
#[derive(Debug, Clone, Copy)]
pub(crate) struct NegativePass<'a> {
    pub arch: Architecture,
    pub reduce: ContextReduce,
    pub negatives: usize,
    pub sampler: &'a UnigramSampler,
    pub seed: u64,
    pub draw: u64,
}

/// One logistic term: adds its loss to `loss`, and with `grad` its gradients (scaled) to the
/// lane's `dW`/`db` partials and to `dh`.
#[inline]
#[allow(clippy::too_many_arguments)]
fn logistic_term(
    wts: &Weights<'_>,
    x: u32,
    label: f32,
    h: &[f32],
    dh: &mut [f32],
    scale: f32,
    lane_dw: &mut [f32],
    lane_db: &mut [f32],
    grad: bool,
    loss: &mut f64,
) {
    let k = wts.k;
    let xi = x as usize;
    let w = &wts.w[xi * k..(xi + 1) * k];
    let s = w.iter().zip(h).map(|(a, b)| a * b).sum::<f32>() + wts.b[xi];
    *loss += if label > 0.5 { softplus(-s) } else { softplus(s) } as f64;
    if grad {
        let g = (sigmoid(s) - label) * scale;
        lane_dw[xi * k..(xi + 1) * k].iter_mut().zip(h).for_each(|(d, &hv)| *d += g * hv);
        lane_db[xi] += g;
        dh.iter_mut().zip(w).for_each(|(d, &wv)| *d += g * wv);
    }
}

/// Forward (and with `grad`, backward) of negative sampling over the examples `ids`, which sit
/// at positions `base_pos..` of the batch.
#[allow(clippy::too_many_arguments)] // one kernel call site; a struct would only rename them
pub(crate) fn negative_lane(
    pass: &NegativePass<'_>,
    wts: &Weights<'_>,
    ex: &Examples,
    ids: &[u32],
    base_pos: usize,
    scale: f32,
    lane: &mut Lane,
    grad: bool,
) {
    let k = wts.k;
    lane.ensure(wts.v, k, false);
    let Lane { h: h_buf, dh: dh_buf, dw, db, de, w_rows, e_rows, loss, .. } = lane;
    let h = &mut h_buf[..k];
    let dh = &mut dh_buf[..k];
    for (i, &e) in ids.iter().enumerate() {
        let e = e as usize;
        let mut rng = SplitMix64::stream(pass.seed, pass.draw, (base_pos + i) as u64);
        h.iter_mut().for_each(|x| *x = 0.0);
        fill_hidden(pass.arch, pass.reduce, wts, ex, e, h);
        dh.iter_mut().for_each(|x| *x = 0.0);
        let positives: &[u32] = match pass.arch {
            Architecture::Cbow => std::slice::from_ref(&ex.targets()[e]),
            Architecture::Skipgram => ex.context(e),
        };
        for &p in positives {
            logistic_term(wts, p, 1.0, h, dh, scale, dw, db, grad, loss);
            if grad {
                w_rows.mark(p);
            }
            for _ in 0..pass.negatives {
                let mut n = pass.sampler.token_for(rng.next_f64());
                for _ in 0..8 {
                    if n != p {
                        break;
                    }
                    n = pass.sampler.token_for(rng.next_f64());
                }
                logistic_term(wts, n, 0.0, h, dh, scale, dw, db, grad, loss);
                if grad {
                    w_rows.mark(n);
                }
            }
        }
        if !grad {
            continue;
        }
        match pass.arch {
            Architecture::Cbow => {
                let ctx = ex.context(e);
                let f = match pass.reduce {
                    ContextReduce::Sum => 1.0,
                    ContextReduce::Mean => 1.0 / ctx.len().max(1) as f32,
                };
                for &c in ctx {
                    e_rows.mark(c);
                    let de = &mut de[c as usize * k..(c as usize + 1) * k];
                    de.iter_mut().zip(dh.iter()).for_each(|(d, &g)| *d += f * g);
                }
            }
            Architecture::Skipgram => {
                let t = ex.target(e);
                e_rows.mark(t);
                let de = &mut de[t as usize * k..(t as usize + 1) * k];
                de.iter_mut().zip(dh.iter()).for_each(|(d, &g)| *d += g);
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn guided_draws_are_the_full_bisection() {
        // Skewed counts with zero-weight tokens in the middle and at the end; u on and around
        // every bucket edge and a random sweep: the guide table never changes the token.
        let counts: Vec<u64> =
            (0..300u64).map(|i| if i % 7 == 3 || i > 290 { 0 } else { 1 + (i * i) % 997 }).collect();
        let s = UnigramSampler::new(&counts, 0.75).unwrap();
        let full = |u: f64| s.cdf.partition_point(|&c| c <= u).min(s.cdf.len() - 1) as u32;
        let buckets = s.guide.len() - 1;
        let mut us: Vec<f64> = (0..=buckets)
            .flat_map(|b| {
                let x = b as f64 / buckets as f64;
                [x, x.next_down().max(0.0), x.next_up().min(1.0 - f64::EPSILON)]
            })
            .collect();
        us.extend(
            s.cdf.iter().flat_map(|&c| [c, c.next_down(), c.next_up()]).filter(|u| (0.0..1.0).contains(u)),
        );
        let mut rng = SplitMix64(5);
        us.extend((0..20_000).map(|_| rng.next_f64()));
        for u in us {
            assert_eq!(s.token_for(u), full(u), "u = {u}");
        }
    }

    #[test]
    fn unigram_power_probabilities() {
        let s = UnigramSampler::new(&[16, 0, 1], 0.75).unwrap();
        // 16^0.75 = 8, 1^0.75 = 1.
        assert!((s.probability(0) - 8.0 / 9.0).abs() < 1e-12);
        assert_eq!(s.probability(1), 0.0);
        assert!((s.probability(2) - 1.0 / 9.0).abs() < 1e-12);
        assert_eq!(s.token_for(0.0), 0);
        assert_eq!(s.token_for(0.95), 2);
        assert_eq!(s.token_for(0.999_999), 2);
        assert!(UnigramSampler::new(&[0, 0], 0.75).is_none());
    }

    #[test]
    fn empirical_frequencies_follow_the_table() {
        let s = UnigramSampler::new(&[81, 16, 1], 0.75).unwrap(); // weights 27, 8, 1
        let mut rng = SplitMix64::stream(7, 0, 0);
        let mut hits = [0u32; 3];
        for _ in 0..36_000 {
            hits[s.token_for(rng.next_f64()) as usize] += 1;
        }
        assert!((hits[0] as f64 / 36_000.0 - 0.75).abs() < 0.01, "{hits:?}");
        assert!((hits[2] as f64 / 36_000.0 - 1.0 / 36.0).abs() < 0.005, "{hits:?}");
    }

    #[test]
    fn stable_helpers() {
        assert!((softplus(0.0) - std::f32::consts::LN_2).abs() < 1e-7);
        assert_eq!(softplus(100.0), 100.0);
        assert!(softplus(-100.0) > 0.0 && softplus(-100.0) < 1e-40);
        assert!((sigmoid(0.0) - 0.5).abs() < 1e-7);
        assert_eq!(sigmoid(-200.0), 0.0);
        assert_eq!(sigmoid(200.0), 1.0);
    }
}
