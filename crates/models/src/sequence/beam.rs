//! Sequence continuation: the `steps` titles most likely to follow a history under a
//! [`NextScorer`], by beam search (beam 1 = greedy).
//!
//! At each step the scorer's scores after the history extended by the titles predicted so far
//! become a distribution over the *allowed* titles (neither watched nor already predicted) by a
//! softmax: `p(m) = exp(s_m) / sum_{allowed j} exp(s_j)`; for a scorer of log-probabilities that
//! is the model's probability conditioned on not repeating a title. A title with a score of minus
//! infinity (or NaN) has probability 0 and is never proposed. Each beam grows by its `beam` most
//! likely titles (reelvec-metrics' `top_k_of_row`, its order and ties), the `beam` extensions
//! with the highest total log-probability survive (ties: the earlier beam, then the better
//! candidate), and the best after `steps` is returned. The search stops early when no allowed
//! title is left.

use reelvec_metrics::topn::top_k_of_row;

use super::NextScorer;
use crate::ModelError;

/// A predicted continuation.
#[derive(Debug, Clone, PartialEq)]
pub struct Continuation {
    /// Predicted titles, in order.
    pub titles: Vec<u32>,
    /// Each title's probability at its step (given the history and the titles before it).
    pub probabilities: Vec<f64>,
    /// Sum of the log-probabilities.
    pub log_probability: f64,
}

#[derive(Clone)]
struct Beam {
    titles: Vec<u32>,
    probabilities: Vec<f64>,
    log_probability: f64,
}

/// Continues `history` (titles `< n_items`) by `steps` titles with beam width `beam` (>= 1).
pub fn continue_sequence(
    scorer: &dyn NextScorer,
    history: &[u32],
    n_items: usize,
    steps: usize,
    beam: usize,
) -> Result<Continuation, ModelError> {
    if beam == 0 {
        return Err(ModelError::InvalidConfig("beam width must be at least 1".into()));
    }
    if let Some(&t) = history.iter().find(|&&t| t as usize >= n_items) {
        return Err(ModelError::UnknownId { what: "title", id: t.to_string() });
    }
    let mut beams = vec![Beam { titles: Vec::new(), probabilities: Vec::new(), log_probability: 0.0 }];
    let mut scores = vec![0f32; n_items];
    for _ in 0..steps {
        let mut grown: Vec<Beam> = Vec::new();
        for b in &beams {
            let context: Vec<u32> = history.iter().chain(&b.titles).copied().collect();
            for (m, lp) in ranked(scorer, &context, beam, &mut scores)? {
                let mut next = b.clone();
                next.titles.push(m);
                next.probabilities.push(lp.exp());
                next.log_probability += lp;
                grown.push(next);
            }
        }
        if grown.is_empty() {
            break;
        }
        // Stable: equal totals keep the earlier beam and the better candidate first.
        grown.sort_by(|a, b| b.log_probability.total_cmp(&a.log_probability));
        grown.truncate(beam);
        beams = grown;
    }
    let best = beams.swap_remove(0);
    Ok(Continuation {
        titles: best.titles,
        probabilities: best.probabilities,
        log_probability: best.log_probability,
    })
}

/// The `k` most likely next titles after `history` (titles `< n_items`) among those not in it,
/// best first, each with its probability (the softmax over the allowed titles of the module
/// doc); titles of probability 0 are left out.
pub fn rank_next(
    scorer: &dyn NextScorer,
    history: &[u32],
    n_items: usize,
    k: usize,
) -> Result<Vec<(u32, f64)>, ModelError> {
    if let Some(&t) = history.iter().find(|&&t| t as usize >= n_items) {
        return Err(ModelError::UnknownId { what: "title", id: t.to_string() });
    }
    let mut scores = vec![0f32; n_items];
    Ok(ranked(scorer, history, k, &mut scores)?.into_iter().map(|(m, lp)| (m, lp.exp())).collect())
}

/// The `k` best allowed titles after `context` with their log-probabilities (`scores`: a
/// catalogue-long buffer).
fn ranked(
    scorer: &dyn NextScorer,
    context: &[u32],
    k: usize,
    scores: &mut [f32],
) -> Result<Vec<(u32, f64)>, ModelError> {
    scorer.score_next(context, scores);
    let mut excluded = context.to_vec();
    excluded.sort_unstable();
    excluded.dedup();
    let lse = log_sum_exp_allowed(scores, &excluded);
    if !lse.is_finite() {
        return Ok(Vec::new());
    }
    Ok(top_k_of_row(scores, k, &excluded)?
        .into_iter()
        .map(|(m, s)| (m, s as f64 - lse))
        .filter(|(_, lp)| lp.is_finite())
        .collect())
}

/// `ln sum exp(s_j)` over the finite scores not in `excluded` (sorted); minus infinity if none.
fn log_sum_exp_allowed(scores: &[f32], excluded: &[u32]) -> f64 {
    let allowed = |j: usize| excluded.binary_search(&(j as u32)).is_err();
    let finite = scores.iter().enumerate().filter(|&(j, s)| s.is_finite() && allowed(j));
    let max = finite.clone().map(|(_, &s)| s as f64).fold(f64::NEG_INFINITY, f64::max);
    if !max.is_finite() {
        return f64::NEG_INFINITY;
    }
    max + finite.map(|(_, &s)| (s as f64 - max).exp()).sum::<f64>().ln()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// A hand-made model: the next title's probability depends on the last title only.
    struct Table(Vec<[f32; 5]>);
    impl NextScorer for Table {
        fn name(&self) -> String {
            "table".into()
        }
        fn score_next(&self, history: &[u32], out: &mut [f32]) {
            let row = &self.0[*history.last().unwrap() as usize];
            for (o, &p) in out.iter_mut().zip(row) {
                *o = p.ln();
            }
        }
    }

    fn model() -> Table {
        Table(vec![
            [0.0, 0.5, 0.4, 0.1, 0.0], // after 0
            [0.0, 0.0, 0.4, 0.3, 0.3], // after 1
            [0.0, 0.0, 0.0, 0.9, 0.1], // after 2
            [0.2, 0.2, 0.2, 0.0, 0.4], // after 3
            [0.25, 0.25, 0.25, 0.25, 0.0],
        ])
    }

    #[test]
    fn greedy_and_beam_search_by_hand() {
        // Greedy from [0]: 1 (0.5), then 2 (0.4): 0.20. Beam 2 keeps [2] (0.4) and finds
        // 2 -> 3 (0.9): 0.36, the better two-title continuation.
        let greedy = continue_sequence(&model(), &[0], 5, 2, 1).unwrap();
        assert_eq!(greedy.titles, vec![1, 2]);
        assert!((greedy.probabilities[0] - 0.5).abs() < 1e-6 && (greedy.probabilities[1] - 0.4).abs() < 1e-6);
        let beam = continue_sequence(&model(), &[0], 5, 2, 2).unwrap();
        assert_eq!(beam.titles, vec![2, 3]);
        assert!((beam.log_probability - 0.36f64.ln()).abs() < 1e-6);
        // Third step after [0, 2, 3]: 0 is watched, 2 and 3 predicted: 1 (0.2) and 4 (0.4)
        // renormalised to 1/3 and 2/3.
        let three = continue_sequence(&model(), &[0], 5, 3, 2).unwrap();
        assert_eq!(three.titles, vec![2, 3, 4]);
        assert!((three.probabilities[2] - 2.0 / 3.0).abs() < 1e-6, "{three:?}");
    }

    #[test]
    fn never_repeats_and_stops_when_nothing_is_left() {
        let c = continue_sequence(&model(), &[0], 5, 10, 3).unwrap();
        let mut seen = c.titles.clone();
        seen.push(0);
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), c.titles.len() + 1, "{c:?}");
        assert!(c.titles.len() <= 4);
        assert!(continue_sequence(&model(), &[0], 5, 2, 0).is_err());
        assert!(continue_sequence(&model(), &[7], 5, 2, 1).is_err());
        // One step ranked: after [0, 2], 1 has probability 0 and is left out.
        let next = rank_next(&model(), &[0, 2], 5, 5).unwrap();
        assert_eq!(next.iter().map(|x| x.0).collect::<Vec<_>>(), vec![3, 4]);
        assert!((next[0].1 - 0.9).abs() < 1e-6);
    }
}
