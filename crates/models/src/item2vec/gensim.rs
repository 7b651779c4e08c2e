//! gensim's per-epoch word2vec options for item2vec: frequent-token subsampling (`sample`),
//! shrunk windows (`shrink_windows`, gensim's `reduced_windows`) and the learning rate's linear
//! decay from `alpha` to `min_alpha`. The examples a configuration trains on in epoch `e` are
//! [`EpochSampling::examples`]; the trainer settings of the decay are [`decayed_train_config`].
//!
//! **Subsampling** (gensim `Word2Vec.prepare_vocab`, Mikolov et al.'s formula as word2vec.c
//! implements it): with `total` the token occurrences of the training sequences and
//! `t = sample * total` (`sample` < 1) or `t = floor(sample * (3 + sqrt 5) / 2)` (`sample` >= 1,
//! gensim's shorthand), a token seen `c` times is kept with probability
//! `min(1, (sqrt(c / t) + 1) * t / c)`; `sample = 0` keeps every token. Dropped tokens are
//! removed from the sequence before windows are cut, so a window reaches over them (as gensim).
//!
//! **Shrunk windows** (gensim `word2vec_inner.pyx`): every kept position draws
//! `b = r mod window` and uses the effective window `window - b`, uniform in `1..=window`.
//!
//! **Determinism:** the draws of sequence `s` in epoch `e` come from one SplitMix64 stream keyed
//! by (seed, epoch, s): one uniform per token (whether or not its probability is 1), then one
//! per kept position for the window. They depend on no thread count and no batch split.

use reelvec_engine::{Schedule, ScheduleStep, TrainConfig};

use super::negative::SplitMix64;
use super::{Examples, Item2VecConfig};

/// Salt that separates the epoch draws from the negative draws of the same seed.
const EPOCH_SALT: u64 = 0x5EED_0FE9_0C5A_3B17;

/// gensim's keep probability of each token from its occurrence `counts` (see the module doc);
/// `sample <= 0` keeps every token (probability 1).
pub fn keep_probabilities(counts: &[u64], sample: f64) -> Vec<f64> {
    let total: u64 = counts.iter().sum();
    if sample <= 0.0 || total == 0 {
        return vec![1.0; counts.len()];
    }
    let threshold =
        if sample < 1.0 { sample * total as f64 } else { (sample * (3.0 + 5f64.sqrt()) / 2.0).floor() };
    counts
        .iter()
        .map(|&c| {
            if c == 0 {
                return 1.0;
            }
            let c = c as f64;
            ((c / threshold).sqrt() + 1.0) * (threshold / c)
        })
        .map(|p: f64| p.min(1.0))
        .collect()
}

/// The per-epoch resampling of a set of training sequences: what gensim redraws every epoch.
#[derive(Debug, Clone)]
pub struct EpochSampling {
    sequences: Vec<Vec<u32>>,
    /// Keep probability of each token (`None`: subsampling off).
    keep: Option<Vec<f64>>,
    config: Item2VecConfig,
    seed: u64,
}

impl EpochSampling {
    /// The resampling of `sequences` under `config` (its `sample`, `shrink_windows`, window,
    /// context side and dropped ends) with `seed`; token counts are taken from `sequences`
    /// themselves over a vocabulary of `vocab` tokens. None when the configuration redraws
    /// nothing (`sample = 0` and fixed windows): the examples are then the same every epoch.
    pub fn new(sequences: Vec<Vec<u32>>, vocab: usize, config: &Item2VecConfig, seed: u64) -> Option<Self> {
        if !config.resamples() {
            return None;
        }
        let keep = (config.sample > 0.0).then(|| {
            let mut counts = vec![0u64; vocab];
            for &t in sequences.iter().flatten() {
                if let Some(c) = counts.get_mut(t as usize) {
                    *c += 1;
                }
            }
            keep_probabilities(&counts, config.sample)
        });
        Some(Self { sequences, keep, config: *config, seed })
    }

    /// Number of sequences (the objective's training units).
    pub fn sequences(&self) -> usize {
        self.sequences.len()
    }

    /// The subsampled sequence `s` of epoch `epoch` and the effective window of each of its
    /// kept positions.
    pub fn draw(&self, epoch: u64, s: usize) -> (Vec<u32>, Vec<usize>) {
        let (mut kept, mut windows) = (Vec::new(), Vec::new());
        self.draw_into(epoch, s, &mut kept, &mut windows);
        (kept, windows)
    }

    /// [`draw`](Self::draw) into reused buffers (cleared first): the per-pair SGD trainer
    /// redraws every sequence every epoch without allocating.
    pub fn draw_into(&self, epoch: u64, s: usize, kept: &mut Vec<u32>, windows: &mut Vec<usize>) {
        let seq = &self.sequences[s];
        let mut rng = SplitMix64::stream(self.seed ^ EPOCH_SALT, epoch, s as u64);
        kept.clear();
        windows.clear();
        match &self.keep {
            Some(keep) => kept.extend(seq.iter().copied().filter(|&t| {
                let u = rng.next_f64();
                u < keep.get(t as usize).copied().unwrap_or(1.0)
            })),
            None => kept.extend_from_slice(seq),
        }
        let w = self.config.window.max(1);
        if self.config.shrink_windows {
            windows.extend(kept.iter().map(|_| w - (rng.next_u64() % w as u64) as usize));
        } else {
            windows.resize(kept.len(), w);
        }
    }

    /// The examples of epoch `epoch`: every sequence subsampled and cut with its drawn windows
    /// (sequence `s` of the result is sequence `s` of the input, possibly with no example).
    pub fn examples(&self, epoch: u64) -> Examples {
        let drawn: Vec<(Vec<u32>, Vec<usize>)> =
            (0..self.sequences.len()).map(|s| self.draw(epoch, s)).collect();
        let seqs: Vec<&[u32]> = drawn.iter().map(|(s, _)| s.as_slice()).collect();
        Examples::build_windows(&seqs, self.config.context_side, self.config.drop_ends, |s, i| drawn[s].1[i])
    }
}

/// The trainer settings of `model`'s gensim learning-rate keys: `alpha` replaces `train.lr`, and
/// with `min_alpha` the rate decays linearly per batch from `alpha` to `min_alpha` over every
/// planned step (`epochs x ceil(units / batch_size)`), gensim's
/// `alpha - (alpha - min_alpha) * progress`. Without either key `train` is returned unchanged.
pub fn decayed_train_config(model: &Item2VecConfig, train: &TrainConfig, units: usize) -> TrainConfig {
    let mut out = train.clone();
    if let Some(alpha) = model.alpha {
        out.lr = alpha;
    }
    if let Some(min_alpha) = model.min_alpha {
        let steps = (train.epochs * units.div_ceil(train.batch_size.max(1))) as u64;
        out.schedule =
            Schedule::Linear { start_factor: 1.0, end_factor: min_alpha / out.lr, total_iters: steps };
        out.schedule_step = ScheduleStep::PerBatch;
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::item2vec::ContextSide;

    #[test]
    fn keep_probabilities_follow_gensims_formula_by_hand() {
        // total 1000, sample 1e-2: t = 10. c = 900: (sqrt(90) + 1) * 10 / 900 = 0.116519...;
        // c = 90: (sqrt(9) + 1) * 10 / 90 = 4/9; c = 10: (1 + 1) * 1 = 2 -> 1.
        let p = keep_probabilities(&[900, 90, 10], 1e-2);
        assert!((p[0] - (90f64.sqrt() + 1.0) / 90.0).abs() < 1e-12);
        assert!((p[0] - 0.116_519_4).abs() < 1e-6);
        assert!((p[1] - 4.0 / 9.0).abs() < 1e-12);
        assert_eq!(p[2], 1.0);
        // sample >= 1: t = floor(2 * 2.618...) = 5. c = 20: (sqrt(4) + 1) * 5 / 20 = 0.75.
        let q = keep_probabilities(&[20, 5], 2.0);
        assert!((q[0] - 0.75).abs() < 1e-12);
        assert_eq!(q[1], 1.0);
        // Off: everything kept.
        assert_eq!(keep_probabilities(&[900, 90], 0.0), vec![1.0, 1.0]);
    }

    #[test]
    fn subsampling_keeps_the_expected_share_deterministically() {
        // Token 0 is 90% of the corpus; with sample 1e-2 it is kept with p ~ 0.1165.
        let seq: Vec<u32> = (0..1000).map(|i| if i % 10 == 9 { 1 + (i / 10) % 9 } else { 0 }).collect();
        let config = Item2VecConfig { sample: 1e-2, window: 2, ..Default::default() };
        let sampling = EpochSampling::new(vec![seq.clone(); 20], 10, &config, 7).unwrap();
        let kept0: usize = (0..20).map(|s| sampling.draw(3, s).0.iter().filter(|&&t| t == 0).count()).sum();
        let expected = 20.0 * 900.0 * (90f64.sqrt() + 1.0) / 90.0;
        assert!((kept0 as f64 - expected).abs() < 0.1 * expected, "{kept0} vs {expected}");
        // Rare tokens (probability 1) are always kept; the same (seed, epoch) redraws the same.
        assert_eq!(
            (0..20).map(|s| sampling.draw(3, s).0.iter().filter(|&&t| t != 0).count()).sum::<usize>(),
            20 * 100
        );
        assert_eq!(sampling.examples(3), sampling.examples(3));
        assert_ne!(sampling.examples(3), sampling.examples(4));
    }

    #[test]
    fn shrunk_windows_cut_by_hand() {
        let config =
            Item2VecConfig { shrink_windows: true, window: 3, drop_ends: false, ..Default::default() };
        let seq: Vec<u32> = (0..40).collect();
        let sampling = EpochSampling::new(vec![seq.clone()], 40, &config, 1).unwrap();
        let (kept, windows) = sampling.draw(0, 0);
        assert_eq!(kept, seq);
        assert!(windows.iter().all(|w| (1..=3).contains(w)));
        // Every effective window occurs over 40 positions.
        for w in 1..=3 {
            assert!(windows.contains(&w), "window {w} never drawn: {windows:?}");
        }
        // The examples use each position's own window on both sides.
        let ex = sampling.examples(0);
        assert_eq!(ex.len(), 40);
        for (i, &w) in windows.iter().enumerate() {
            let lo = i.saturating_sub(w);
            let hi = (i + w).min(39);
            let expected: Vec<u32> = (lo..=hi).filter(|&j| j != i).map(|j| j as u32).collect();
            assert_eq!(ex.context(i), expected.as_slice(), "position {i} window {w}");
        }
        // The causal side takes the w previous titles only.
        let causal = Item2VecConfig { context_side: ContextSide::Previous, ..config };
        let ex = EpochSampling::new(vec![seq], 40, &causal, 1).unwrap().examples(0);
        assert_eq!(ex.len(), 39);
        assert_eq!(ex.context(0), &[0]);
        // Fixed windows and no subsampling redraw nothing.
        assert!(EpochSampling::new(vec![vec![1, 2]], 3, &Item2VecConfig::default(), 1).is_none());
    }

    #[test]
    fn decay_schedule_values() {
        let model = Item2VecConfig { alpha: Some(0.025), min_alpha: Some(0.0001), ..Default::default() };
        let train = TrainConfig { epochs: 5, batch_size: 10, lr: 1e-2, ..TrainConfig::default() };
        // 95 units: 10 steps an epoch, 50 steps in all.
        let t = decayed_train_config(&model, &train, 95);
        assert_eq!(t.lr, 0.025);
        let lr = |step: u64| t.lr * t.schedule.factor(step);
        assert!((lr(0) - 0.025).abs() < 1e-9);
        assert!((lr(25) - (0.025 - (0.025 - 0.0001) * 0.5)).abs() < 1e-8);
        assert!((lr(50) - 0.0001).abs() < 1e-8);
        assert!((lr(80) - 0.0001).abs() < 1e-8);
        assert_eq!(t.schedule_step, ScheduleStep::PerBatch);
        // No keys: unchanged.
        assert_eq!(decayed_train_config(&Item2VecConfig::default(), &train, 95), train);
    }
}
