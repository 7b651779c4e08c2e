//! Sequence and ranking metrics: softmax cross-entropy from logits, its uniform baseline, and the
//! rank of a target among all candidates (accuracy@1, hit-rate@k, NDCG@k, MRR).
//!
//! # Ranking order and ties
//! Every ranking in this crate uses one total order: candidate `a` comes before `b` when
//! `score_a > score_b`, or when the scores are equal and `a < b` (lower index first). A NaN score
//! counts as minus infinity. So ties are broken deterministically and pessimistically for targets
//! with higher indices; the same order decides top-N lists ([`crate::topn`]), so a target's rank
//! here is exactly its position in a full top-N list.
//!
//! With one relevant item per query (leave-last-out, CBOW targets), a target at 0-based rank `r`
//! scores `hit@k = [r < k]` and `NDCG@k = [r < k] / log2(r + 2)` (the ideal DCG is 1).

use ndarray::{ArrayView2, Axis};
use rayon::prelude::*;

use crate::error::{check_index, check_len, MetricsError, Result};

/// The sort key of a score: NaN counts as minus infinity.
#[inline]
pub(crate) fn score_key(score: f32) -> f32 {
    if score.is_nan() {
        f32::NEG_INFINITY
    } else {
        score
    }
}

/// Whether candidate `(score_a, a)` ranks strictly before `(score_b, b)`: higher score first,
/// equal scores by lower index.
#[inline]
pub fn ranks_before(score_a: f32, a: u32, score_b: f32, b: u32) -> bool {
    let (sa, sb) = (score_key(score_a), score_key(score_b));
    sa > sb || (sa == sb && a < b)
}

/// The 0-based rank of `target` among the candidates `0..scores.len()` that are not in
/// `excluded` (sorted ascending). The target itself is never excluded.
pub fn target_rank(scores: &[f32], target: u32, excluded_sorted: &[u32]) -> Result<usize> {
    check_index("ranking target", target as usize, scores.len())?;
    let target_score = scores[target as usize];
    let mut rank = scores
        .iter()
        .enumerate()
        .filter(|&(j, &s)| j as u32 != target && ranks_before(s, j as u32, target_score, target))
        .count();
    // Remove excluded candidates that were counted.
    for &j in excluded_sorted {
        if j != target
            && (j as usize) < scores.len()
            && ranks_before(scores[j as usize], j, target_score, target)
        {
            rank -= 1;
        }
    }
    Ok(rank)
}

/// Mean softmax cross-entropy (natural log) of `targets` under `logits` (one row per example):
/// `mean_n [logsumexp(z_n) - z_n[t_n]]`, with `logsumexp(z) = m + ln(sum_j exp(z_j - m))`,
/// `m = max_j z_j`, so no exponential overflows. Accumulated in f64.
pub fn cross_entropy_from_logits(logits: ArrayView2<'_, f32>, targets: &[u32]) -> Result<f64> {
    check_len("cross_entropy: targets vs logit rows", logits.nrows(), targets.len())?;
    if targets.is_empty() {
        return Err(MetricsError::Empty { what: "cross_entropy targets" });
    }
    let vocab = logits.ncols();
    for &t in targets {
        check_index("cross_entropy target", t as usize, vocab)?;
    }
    // Per row in parallel, then summed in row order: the same bits for any thread count.
    let per_row: Vec<f64> = logits
        .axis_iter(Axis(0))
        .into_par_iter()
        .zip(targets.par_iter())
        .map(|(row, &t)| {
            let max = row.iter().fold(f64::NEG_INFINITY, |m, &z| m.max(z as f64));
            let sum_exp: f64 = row.iter().map(|&z| (z as f64 - max).exp()).sum();
            max + sum_exp.ln() - row[t as usize] as f64
        })
        .collect();
    let total: f64 = per_row.iter().sum();
    Ok(total / targets.len() as f64)
}

/// The cross-entropy of a uniform guess over `vocab` classes: `ln(V)` (3.912 for V = 50).
pub fn uniform_baseline(vocab: usize) -> f64 {
    (vocab as f64).ln()
}

/// The rank of each row's target among all the row's logits (no exclusions), in parallel.
pub fn logit_target_ranks(logits: ArrayView2<'_, f32>, targets: &[u32]) -> Result<Vec<usize>> {
    check_len("logit_target_ranks: targets vs logit rows", logits.nrows(), targets.len())?;
    logits
        .axis_iter(Axis(0))
        .into_par_iter()
        .zip(targets.par_iter())
        .map(|(row, &t)| match row.as_slice() {
            Some(slice) => target_rank(slice, t, &[]),
            None => target_rank(&row.to_vec(), t, &[]),
        })
        .collect()
}

/// One query's figures at cut-off `k`: the one definition of hits, Recall@k, NDCG@k and HR@k,
/// used by [`RankSummary`] (one relevant item) and the ranking protocol
/// ([`crate::protocol::evaluate`], several).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CutoffFigures {
    /// Relevant items in the first `k` positions.
    pub hits: usize,
    /// `hits / min(k, n_relevant)`.
    pub recall: f64,
    /// `DCG@k / IDCG@k` with binary gains: `DCG@k = sum over relevant positions p < k of
    /// 1 / log2(p + 2)`, the ideal DCG over `min(k, n_relevant)` positions.
    pub ndcg: f64,
    /// `[hits > 0]`.
    pub hit: f64,
}

/// [`CutoffFigures`] from the 0-based positions of a query's relevant items in its ranking (any
/// order, each at most once) and the number of relevant items (NaN figures when there is none).
pub fn cutoff_figures(
    positions: impl IntoIterator<Item = usize>,
    n_relevant: usize,
    k: usize,
) -> CutoffFigures {
    let gain = |p: usize| 1.0 / ((p + 2) as f64).log2();
    let (mut hits, mut dcg) = (0usize, 0f64);
    for p in positions.into_iter().filter(|&p| p < k) {
        hits += 1;
        dcg += gain(p);
    }
    let ideal_len = k.min(n_relevant);
    let idcg: f64 = (0..ideal_len).map(gain).sum();
    CutoffFigures {
        hits,
        recall: hits as f64 / ideal_len as f64,
        ndcg: dcg / idcg,
        hit: f64::from(u8::from(hits > 0)),
    }
}

/// Ranking figures over a set of single-target queries.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RankSummary {
    /// Number of queries.
    pub count: usize,
    /// The cut-off `k` of `hit_rate` and `ndcg`.
    pub k: usize,
    /// Share of queries whose target ranks first.
    pub accuracy_at_1: f64,
    /// Share of queries whose target is in the top `k`.
    pub hit_rate: f64,
    /// Mean of `[r < k] / log2(r + 2)`.
    pub ndcg: f64,
    /// Mean of `1 / (r + 1)` (no cut-off).
    pub mean_reciprocal_rank: f64,
}

impl RankSummary {
    /// Summarises 0-based target ranks at cut-off `k`.
    pub fn from_ranks(ranks: &[usize], k: usize) -> Result<Self> {
        if ranks.is_empty() {
            return Err(MetricsError::Empty { what: "ranks" });
        }
        let n = ranks.len() as f64;
        let mut top1 = 0usize;
        let mut hits = 0usize;
        let mut dcg = 0f64;
        let mut rr = 0f64;
        for &r in ranks {
            top1 += usize::from(r == 0);
            let at_k = cutoff_figures([r], 1, k);
            hits += at_k.hits;
            dcg += at_k.ndcg;
            rr += 1.0 / (r + 1) as f64;
        }
        Ok(RankSummary {
            count: ranks.len(),
            k,
            accuracy_at_1: top1 as f64 / n,
            hit_rate: hits as f64 / n,
            ndcg: dcg / n,
            mean_reciprocal_rank: rr / n,
        })
    }
}

/// The figures P0 reports for CBOW validation examples.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SequenceMetrics {
    /// Mean cross-entropy (natural log).
    pub cross_entropy: f64,
    /// `ln(V)`.
    pub uniform_baseline: f64,
    /// Share of examples whose target has the highest logit.
    pub accuracy_at_1: f64,
    /// Share of examples whose target is among the 10 highest logits.
    pub hit_rate_at_10: f64,
}

/// Cross-entropy, `ln(V)`, accuracy@1 and hit-rate@10 of `targets` under `logits` (rows = examples).
pub fn sequence_metrics(logits: ArrayView2<'_, f32>, targets: &[u32]) -> Result<SequenceMetrics> {
    let cross_entropy = cross_entropy_from_logits(logits, targets)?;
    let ranks = logit_target_ranks(logits, targets)?;
    let summary = RankSummary::from_ranks(&ranks, 10)?;
    Ok(SequenceMetrics {
        cross_entropy,
        uniform_baseline: uniform_baseline(logits.ncols()),
        accuracy_at_1: summary.accuracy_at_1,
        hit_rate_at_10: summary.hit_rate,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_abs_diff_eq;
    use ndarray::array;

    #[test]
    fn cross_entropy_by_hand() {
        // Row 0: logits (0, ln 3) -> p(target 1) = 3/4 -> loss ln(4/3).
        // Row 1: uniform over 2 -> ln 2.
        let logits = array![[0.0f32, 3f32.ln()], [5.0, 5.0]];
        let ce = cross_entropy_from_logits(logits.view(), &[1, 0]).unwrap();
        assert_abs_diff_eq!(ce, ((4.0f64 / 3.0).ln() + 2f64.ln()) / 2.0, epsilon = 1e-6);
    }

    /// Thousands of rows under pools of 1 and 4 threads give the same bits as the rows' losses
    /// summed in row order by hand.
    #[test]
    fn cross_entropy_is_the_row_order_sum_for_any_thread_count() {
        let (rows, vocab) = (5000usize, 40usize);
        let logits = ndarray::Array2::from_shape_fn((rows, vocab), |(r, j)| {
            ((r * 13 + j * 7) % 23) as f32 * 0.37 - 4.0
        });
        let targets: Vec<u32> = (0..rows).map(|r| ((r * 17) % vocab) as u32).collect();
        let mut by_hand = 0f64;
        for (row, &t) in logits.axis_iter(Axis(0)).zip(&targets) {
            let max = row.iter().fold(f64::NEG_INFINITY, |m, &z| m.max(z as f64));
            let sum_exp: f64 = row.iter().map(|&z| (z as f64 - max).exp()).sum();
            by_hand += max + sum_exp.ln() - row[t as usize] as f64;
        }
        let by_hand = by_hand / rows as f64;
        for threads in [1, 4] {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            let got = pool.install(|| cross_entropy_from_logits(logits.view(), &targets).unwrap());
            assert_eq!(got.to_bits(), by_hand.to_bits(), "{threads} threads: {got} vs {by_hand}");
        }
    }

    #[test]
    fn cross_entropy_is_stable_for_huge_logits() {
        let logits = array![[1000.0f32, 0.0, -1000.0]];
        let ce = cross_entropy_from_logits(logits.view(), &[1]).unwrap();
        assert_abs_diff_eq!(ce, 1000.0, epsilon = 1e-3);
        assert!(cross_entropy_from_logits(logits.view(), &[0]).unwrap() < 1e-6);
    }

    #[test]
    fn uniform_baseline_matches_protocol() {
        assert_abs_diff_eq!(uniform_baseline(50), 3.912, epsilon = 5e-4);
        // Equal logits give exactly the baseline.
        let logits = ndarray::Array2::<f32>::zeros((3, 50));
        let ce = cross_entropy_from_logits(logits.view(), &[0, 7, 49]).unwrap();
        assert_abs_diff_eq!(ce, uniform_baseline(50), epsilon = 1e-9);
    }

    #[test]
    fn ranks_break_ties_by_lower_index() {
        let scores = [0.5f32, 0.9, 0.5, 0.1, 0.5];
        assert_eq!(target_rank(&scores, 1, &[]).unwrap(), 0);
        // Ties at 0.5: indices 0, 2, 4 -> ranks 1, 2, 3.
        assert_eq!(target_rank(&scores, 0, &[]).unwrap(), 1);
        assert_eq!(target_rank(&scores, 2, &[]).unwrap(), 2);
        assert_eq!(target_rank(&scores, 4, &[]).unwrap(), 3);
        assert_eq!(target_rank(&scores, 3, &[]).unwrap(), 4);
        // Excluding 1 and 0 lifts target 4 by two; excluding the target itself does nothing.
        assert_eq!(target_rank(&scores, 4, &[0, 1, 4]).unwrap(), 1);
        // NaN counts as minus infinity.
        let with_nan = [f32::NAN, 0.0, -1.0];
        assert_eq!(target_rank(&with_nan, 0, &[]).unwrap(), 2);
        assert_eq!(target_rank(&with_nan, 2, &[]).unwrap(), 1);
    }

    #[test]
    fn rank_summary_by_hand() {
        // ranks 0, 3, 12 at k=10: hits 2/3; ndcg (1 + 1/log2(5)) / 3; mrr (1 + 1/4 + 1/13) / 3.
        let s = RankSummary::from_ranks(&[0, 3, 12], 10).unwrap();
        assert_abs_diff_eq!(s.accuracy_at_1, 1.0 / 3.0, epsilon = 1e-12);
        assert_abs_diff_eq!(s.hit_rate, 2.0 / 3.0, epsilon = 1e-12);
        assert_abs_diff_eq!(s.ndcg, (1.0 + 1.0 / 5f64.log2()) / 3.0, epsilon = 1e-12);
        assert_abs_diff_eq!(s.mean_reciprocal_rank, (1.0 + 0.25 + 1.0 / 13.0) / 3.0, epsilon = 1e-12);
    }

    #[test]
    fn sequence_metrics_by_hand() {
        // 12 classes, logits -j: target 0 ranks first, target 9 tenth (0-based 9, a hit at 10),
        // target 11 last.
        let mut logits = ndarray::Array2::<f32>::zeros((3, 12));
        for j in 0..12 {
            logits[[0, j]] = -(j as f32);
            logits[[1, j]] = -(j as f32);
            logits[[2, j]] = -(j as f32);
        }
        let m = sequence_metrics(logits.view(), &[0, 9, 11]).unwrap();
        assert_abs_diff_eq!(m.accuracy_at_1, 1.0 / 3.0, epsilon = 1e-12);
        assert_abs_diff_eq!(m.hit_rate_at_10, 2.0 / 3.0, epsilon = 1e-12);
        assert_abs_diff_eq!(m.uniform_baseline, 12f64.ln(), epsilon = 1e-12);
        let lse: f64 = (0..12).map(|j| (-(j as f64)).exp()).sum::<f64>().ln();
        assert_abs_diff_eq!(m.cross_entropy, lse + (0.0 + 9.0 + 11.0) / 3.0, epsilon = 1e-5);
    }
}
