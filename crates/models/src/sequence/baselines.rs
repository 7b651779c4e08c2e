//! The sequence baselines of next-title prediction, each a [`NextScorer`] fitted on training
//! histories (time-ordered title sequences over `0..n_items`):
//!
//! - [`Popularity`]: `pi(m) = (n(m) + 1) / (N + V)`, the add-one smoothed share of the title among
//!   the `N` training positions (`V` titles), whatever the history.
//! - [`MarkovChain`]: first order, from the previous title `p`:
//!   `P(m | p) = (c(p, m) + V pi(m)) / (c(p) + V)` with `c(p, m)` the training transitions
//!   `p -> m` and `c(p)` those leaving `p`: add-one smoothing (`V` pseudo-counts, one per title)
//!   whose pseudo-counts are spread by popularity rather than uniformly, so an unseen transition
//!   backs off to popularity, and a title never followed by anything (or an empty history) gets
//!   `pi` itself.
//! - [`Cooccurrence`]: `sum_{h in R} C(h, m)` over the distinct titles `R` of the last
//!   [`COOC_RECENT`] of the history, `C(h, m)` the number of training histories holding both
//!   (`C(h, h) = 0`), plus `pi(m)` (below 1, so it only breaks ties between equal counts).

use std::collections::HashMap;

use super::NextScorer;
use crate::ModelError;

/// How many of the latest history titles the co-occurrence baseline sums over.
pub const COOC_RECENT: usize = 10;

fn check_tokens(histories: &[Vec<u32>], n_items: usize) -> Result<(), ModelError> {
    for h in histories {
        if let Some(&t) = h.iter().find(|&&t| t as usize >= n_items) {
            return Err(ModelError::InvalidData(format!(
                "sequence baseline: title {t} outside the catalogue of {n_items}"
            )));
        }
    }
    Ok(())
}

/// Add-one smoothed popularity of the training positions.
#[derive(Debug, Clone, PartialEq)]
pub struct Popularity {
    /// `ln pi(m)` per title.
    log_pi: Vec<f32>,
    /// `pi(m)` per title, f64.
    pi: Vec<f64>,
}

impl Popularity {
    /// Counts the titles of `histories` over a catalogue of `n_items`.
    pub fn fit(histories: &[Vec<u32>], n_items: usize) -> Result<Self, ModelError> {
        check_tokens(histories, n_items)?;
        let mut counts = vec![0u64; n_items];
        for &t in histories.iter().flatten() {
            counts[t as usize] += 1;
        }
        let total: u64 = counts.iter().sum();
        let denom = (total + n_items as u64).max(1) as f64;
        let pi: Vec<f64> = counts.iter().map(|&c| (c + 1) as f64 / denom).collect();
        Ok(Self { log_pi: pi.iter().map(|p| p.ln() as f32).collect(), pi })
    }

    /// `pi(m)`, the smoothed share of every title.
    pub fn probabilities(&self) -> &[f64] {
        &self.pi
    }
}

impl NextScorer for Popularity {
    fn name(&self) -> String {
        "popularity".into()
    }

    fn score_next(&self, _history: &[u32], out: &mut [f32]) {
        out.copy_from_slice(&self.log_pi);
    }
}

/// First-order Markov chain, add-one smoothed toward popularity.
#[derive(Debug, Clone, PartialEq)]
pub struct MarkovChain {
    popularity: Popularity,
    /// Transitions leaving each title: `(next, count)` sorted by `next`.
    transitions: Vec<Vec<(u32, u64)>>,
    /// `c(p)`: transitions leaving each title.
    out_counts: Vec<u64>,
}

impl MarkovChain {
    /// Counts the consecutive pairs of `histories`.
    pub fn fit(histories: &[Vec<u32>], n_items: usize) -> Result<Self, ModelError> {
        let popularity = Popularity::fit(histories, n_items)?;
        let mut maps: Vec<HashMap<u32, u64>> = vec![HashMap::new(); n_items];
        let mut out_counts = vec![0u64; n_items];
        for h in histories {
            for w in h.windows(2) {
                *maps[w[0] as usize].entry(w[1]).or_insert(0) += 1;
                out_counts[w[0] as usize] += 1;
            }
        }
        let transitions = maps
            .into_iter()
            .map(|m| {
                let mut v: Vec<(u32, u64)> = m.into_iter().collect();
                v.sort_unstable();
                v
            })
            .collect();
        Ok(Self { popularity, transitions, out_counts })
    }

    /// `c(p, m)`: training transitions from `p` to `m`.
    pub fn count(&self, p: u32, m: u32) -> u64 {
        let row = &self.transitions[p as usize];
        row.binary_search_by_key(&m, |&(n, _)| n).map_or(0, |i| row[i].1)
    }

    /// `P(m | p)` for every `m` (the formula of the module doc); `None` = no previous title.
    pub fn probabilities(&self, previous: Option<u32>) -> Vec<f64> {
        let pi = self.popularity.probabilities();
        let v = pi.len() as f64;
        match previous {
            Some(p) if self.out_counts[p as usize] > 0 => {
                let denom = self.out_counts[p as usize] as f64 + v;
                let mut probs: Vec<f64> = pi.iter().map(|&q| v * q / denom).collect();
                for &(m, c) in &self.transitions[p as usize] {
                    probs[m as usize] += c as f64 / denom;
                }
                probs
            }
            _ => pi.to_vec(),
        }
    }
}

impl NextScorer for MarkovChain {
    fn name(&self) -> String {
        "Markov chain (1st order)".into()
    }

    fn score_next(&self, history: &[u32], out: &mut [f32]) {
        for (o, p) in out.iter_mut().zip(self.probabilities(history.last().copied())) {
            *o = p.ln() as f32;
        }
    }
}

/// Item co-occurrence within training histories, summed over the recent history.
#[derive(Debug, Clone, PartialEq)]
pub struct Cooccurrence {
    popularity: Popularity,
    /// The distinct titles of each training history, sorted.
    sets: Vec<Vec<u32>>,
    /// For each title, the histories holding it.
    holders: Vec<Vec<u32>>,
}

impl Cooccurrence {
    /// Indexes `histories`.
    pub fn fit(histories: &[Vec<u32>], n_items: usize) -> Result<Self, ModelError> {
        let popularity = Popularity::fit(histories, n_items)?;
        let sets: Vec<Vec<u32>> = histories
            .iter()
            .map(|h| {
                let mut s = h.clone();
                s.sort_unstable();
                s.dedup();
                s
            })
            .collect();
        let mut holders = vec![Vec::new(); n_items];
        for (u, s) in sets.iter().enumerate() {
            for &t in s {
                holders[t as usize].push(u as u32);
            }
        }
        Ok(Self { popularity, sets, holders })
    }
}

impl NextScorer for Cooccurrence {
    fn name(&self) -> String {
        format!("co-occurrence (last {COOC_RECENT})")
    }

    fn score_next(&self, history: &[u32], out: &mut [f32]) {
        let mut counts = vec![0u32; out.len()];
        let mut recent = history[history.len().saturating_sub(COOC_RECENT)..].to_vec();
        recent.sort_unstable();
        recent.dedup();
        for &h in &recent {
            for &u in &self.holders[h as usize] {
                for &m in &self.sets[u as usize] {
                    counts[m as usize] += u32::from(m != h);
                }
            }
        }
        for ((o, &c), &p) in out.iter_mut().zip(&counts).zip(self.popularity.probabilities()) {
            *o = (c as f64 + p) as f32;
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn histories() -> Vec<Vec<u32>> {
        vec![vec![0, 1, 2], vec![0, 1], vec![1, 0]]
    }

    #[test]
    fn popularity_by_hand() {
        // n = (3, 3, 1), N = 7, V = 3: pi = (4, 4, 2) / 10.
        let p = Popularity::fit(&histories(), 3).unwrap();
        let expected = [0.4, 0.4, 0.2];
        for (a, b) in p.probabilities().iter().zip(expected) {
            assert!((a - b).abs() < 1e-12);
        }
    }

    #[test]
    fn markov_counts_and_smoothing_by_hand() {
        let m = MarkovChain::fit(&histories(), 3).unwrap();
        // Transitions: 0 -> 1 twice, 1 -> 2 once, 1 -> 0 once; nothing leaves 2.
        assert_eq!((m.count(0, 1), m.count(1, 2), m.count(1, 0), m.count(2, 0)), (2, 1, 1, 0));
        // From 0: c(0) = 2, V pi = (1.2, 1.2, 0.6): P = (1.2, 3.2, 0.6) / 5.
        let from0 = m.probabilities(Some(0));
        for (a, b) in from0.iter().zip([0.24, 0.64, 0.12]) {
            assert!((a - b).abs() < 1e-12, "{from0:?}");
        }
        // From 1: c(1) = 2: P = (1 + 1.2, 1.2, 1 + 0.6) / 5.
        for (a, b) in m.probabilities(Some(1)).iter().zip([0.44, 0.24, 0.32]) {
            assert!((a - b).abs() < 1e-12);
        }
        // Nothing leaves 2, and an empty history: popularity.
        assert_eq!(m.probabilities(Some(2)), m.popularity.probabilities());
        assert_eq!(m.probabilities(None), m.popularity.probabilities());
        let mut out = [0f32; 3];
        m.score_next(&[2, 0], &mut out);
        assert!((out[1] - 0.64f32.ln()).abs() < 1e-6);
        assert!(MarkovChain::fit(&[vec![3]], 3).is_err());
    }

    #[test]
    fn cooccurrence_by_hand() {
        // Sets {0,1,2}, {0,1}, {0,1}: C(0,1) = 3, C(0,2) = 1, C(1,2) = 1.
        let c = Cooccurrence::fit(&histories(), 4).unwrap();
        let pi = c.popularity.probabilities().to_vec();
        let mut out = [0f32; 4];
        c.score_next(&[0], &mut out);
        let expected = [pi[0], 3.0 + pi[1], 1.0 + pi[2], pi[3]];
        for (a, b) in out.iter().zip(expected) {
            assert!((*a as f64 - b).abs() < 1e-6, "{out:?}");
        }
        // History 0, 1: 2 gets 1 + 1; 0 gets C(1, 0) = 3; 1 gets C(0, 1) = 3.
        c.score_next(&[0, 1, 0], &mut out);
        assert!((out[2] as f64 - (2.0 + pi[2])).abs() < 1e-6);
        assert!((out[0] as f64 - (3.0 + pi[0])).abs() < 1e-6);
    }
}
