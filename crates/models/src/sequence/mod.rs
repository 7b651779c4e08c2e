//! Next-title prediction over time-ordered sequences: the [`NextScorer`] trait (a model's score of
//! every title as the next one after a history), the sequence baselines ([`Popularity`],
//! [`MarkovChain`], [`Cooccurrence`]), the leave-last-out evaluation over the full catalogue
//! ([`evaluate_next`]: HR@k, NDCG@k, MRR through reelvec-metrics' `target_rank` and
//! `RankSummary`, never sampled negatives) and sequence continuation ([`continue_sequence`]:
//! greedy or beam search over a scorer's next-title distribution).
//!
//! The split is reelvec-data's (`transforms::SequenceHoldout`, the rule of `leave_last_out`);
//! this module owns no metric, split or top-N of its own.

mod baselines;
mod beam;

pub use baselines::{Cooccurrence, MarkovChain, Popularity, COOC_RECENT};
pub use beam::{continue_sequence, rank_next, Continuation};

use rayon::prelude::*;
use reelvec_data::transforms::SequenceHoldout;
use reelvec_metrics::ranking::{target_rank, RankSummary};

use crate::item2vec::{ContextSide, Item2Vec};
use crate::ModelError;

/// A model of the next title: scores of every title (`out.len()` = the catalogue) after a
/// history (time-ordered, oldest first). Higher is more likely; scorers that have one give
/// log-probabilities, and [`continue_sequence`] turns any scores into a distribution by a
/// softmax over the allowed titles.
pub trait NextScorer: Sync {
    /// The name shown in tables (`popularity`, `markov`, ...).
    fn name(&self) -> String;
    /// Writes the score of every title as the next one after `history` into `out`.
    fn score_next(&self, history: &[u32], out: &mut [f32]);
}

/// item2vec as a next-title model: the context is the last `window` titles of the history. A
/// causal model (`context_side = "previous"`) was trained for exactly this; a symmetric one
/// (`"both"`) is its middle-title model used with the history only ([`Item2Vec::next_label`]).
impl NextScorer for Item2Vec {
    fn name(&self) -> String {
        self.next_label().to_string()
    }

    fn score_next(&self, history: &[u32], out: &mut [f32]) {
        let w = self.config().window.max(1);
        self.scores_for_context(&history[history.len().saturating_sub(w)..], out);
    }
}

impl Item2Vec {
    /// How this model predicts a next title: "causal CBOW", "causal skip-gram", or for a
    /// symmetric model "CBOW (middle-title model, history only)" and its skip-gram twin.
    pub fn next_label(&self) -> &'static str {
        use crate::item2vec::Architecture::{Cbow, Skipgram};
        match (self.config().architecture, self.config().context_side) {
            (Cbow, ContextSide::Previous) => "causal CBOW",
            (Skipgram, ContextSide::Previous) => "causal skip-gram",
            (Cbow, ContextSide::Both) => "CBOW (middle-title model, history only)",
            (Skipgram, ContextSide::Both) => "skip-gram (middle-title model, history only)",
        }
    }
}

/// The leave-last-out ranks of `split`'s targets under `scorer` among all `n_items` titles (the
/// order of reelvec-metrics' `ranking`): for each evaluated user, the scores after the user's
/// history; with `exclude_seen` the history's titles are no candidates (the target never is
/// excluded).
pub fn next_ranks(
    scorer: &dyn NextScorer,
    split: &SequenceHoldout,
    n_items: usize,
    exclude_seen: bool,
) -> Result<Vec<usize>, ModelError> {
    split
        .users
        .par_iter()
        .zip(split.targets.par_iter())
        .map_init(
            || vec![0f32; n_items],
            |scores, (&u, &t)| {
                let history = &split.histories[u as usize];
                scorer.score_next(history, scores);
                let seen = if exclude_seen {
                    let mut s = history.to_vec();
                    s.sort_unstable();
                    s.dedup();
                    s
                } else {
                    Vec::new()
                };
                Ok(target_rank(scores, t, &seen)?)
            },
        )
        .collect()
}

/// [`next_ranks`] summarised at cut-off `k` (HR@k, NDCG@k, MRR, accuracy@1).
pub fn evaluate_next(
    scorer: &dyn NextScorer,
    split: &SequenceHoldout,
    n_items: usize,
    exclude_seen: bool,
    k: usize,
) -> Result<RankSummary, ModelError> {
    let ranks = next_ranks(scorer, split, n_items, exclude_seen)?;
    Ok(RankSummary::from_ranks(&ranks, k)?)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// Scores title `m` as `-(m distance from the last title + 1)`: the next title is last + 1.
    struct Successor;
    impl NextScorer for Successor {
        fn name(&self) -> String {
            "successor".into()
        }
        fn score_next(&self, history: &[u32], out: &mut [f32]) {
            let last = *history.last().unwrap() as i64;
            for (m, o) in out.iter_mut().enumerate() {
                *o = -((m as i64 - last - 1).abs() as f32);
            }
        }
    }

    #[test]
    fn ranks_by_hand_with_and_without_seen_titles() {
        // User 0: 1, 2 -> 3: the successor of 2, rank 0. User 2: 2 -> 2: scores m3 0, then m2
        // and m4 at -1 (m2 first by index): rank 1, with or without its seen 2 (the target is
        // never excluded).
        let split = SequenceHoldout::split(&[vec![1, 2, 3], vec![4, 3, 0], vec![2, 2]]);
        let ranks = next_ranks(&Successor, &split, 6, false).unwrap();
        // User 1, last 3: scores m0 -4, m1 -3, m2 -2, m3 -1, m4 0, m5 -1 -> m0 is last: rank 5.
        assert_eq!(ranks, vec![0, 5, 1]);
        // Excluding user 1's history (4, 3) lifts the target two places.
        let ranks = next_ranks(&Successor, &split, 6, true).unwrap();
        assert_eq!(ranks, vec![0, 3, 1]);
        let s = evaluate_next(&Successor, &split, 6, true, 3).unwrap();
        assert_eq!(s.count, 3);
        assert!((s.hit_rate - 2.0 / 3.0).abs() < 1e-12);
        assert!((s.mean_reciprocal_rank - (1.0 + 0.25 + 0.5) / 3.0).abs() < 1e-12);
    }
}
