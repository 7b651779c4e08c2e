//! (context, target) examples cut from viewing sequences, stored flat so a batch of user
//! sequences maps to a contiguous range of examples without allocation.
//!
//! For position `i` of a sequence with window `w`, the context is the tokens at `i-w..=i+w`
//! except `i` that exist, and the target is token `i` (P0). The notebook's `collate_fn` keeps
//! `batch_item[1:-1]`, i.e. it drops the first and the last position of every sequence whatever
//! the window: with `w = 1` every remaining context has exactly two tokens. That is the default
//! here (`drop_ends = true`); `drop_ends = false` keeps every position that has a context.
//!
//! With [`ContextSide::Previous`] the context of `i` is `i-w..i` only (the titles watched before
//! it: a causal next-title model); the first position has no context and gives no example.
//! `drop_ends` keeps its meaning (first and last position dropped) on either side.

use super::{ContextSide, Item2VecConfig};

/// Examples of a set of sequences: for each sequence a range of examples, for each example a
/// range of context tokens and a target token.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Examples {
    /// `seq_offsets[s]..seq_offsets[s + 1]` are the examples of sequence `s` (len = sequences + 1).
    seq_offsets: Vec<u32>,
    /// `ctx_offsets[e]..ctx_offsets[e + 1]` index `ctx_tokens` for example `e` (len = examples + 1).
    ctx_offsets: Vec<u32>,
    /// Context tokens of every example, concatenated.
    ctx_tokens: Vec<u32>,
    /// Target token of every example.
    targets: Vec<u32>,
}

impl Examples {
    /// Cuts the examples of every sequence with window `window` (>= 1) on both sides. Positions
    /// whose context would be empty (sequences of length 1) give no example.
    pub fn build(sequences: &[Vec<u32>], window: usize, drop_ends: bool) -> Self {
        Self::build_sided(sequences, window, ContextSide::Both, drop_ends)
    }

    /// The examples a model configuration trains on: its window, context side and dropped ends.
    pub fn for_config(sequences: &[Vec<u32>], config: &Item2VecConfig) -> Self {
        Self::build_sided(sequences, config.window, config.context_side, config.drop_ends)
    }

    /// Cuts the examples of every sequence with window `window` (>= 1) on `side`
    /// ([`ContextSide::window_bounds`]). Positions whose context would be empty give no example.
    pub fn build_sided(sequences: &[Vec<u32>], window: usize, side: ContextSide, drop_ends: bool) -> Self {
        let window = window.max(1);
        let seqs: Vec<&[u32]> = sequences.iter().map(Vec::as_slice).collect();
        Self::build_windows(&seqs, side, drop_ends, |_, _| window)
    }

    /// Cuts the examples of every sequence on `side` with a window per position:
    /// `window(s, i)` (>= 1) is the window of position `i` of sequence `s` (gensim's shrunk
    /// windows draw it per position). Positions whose context would be empty give no example.
    pub fn build_windows(
        sequences: &[&[u32]],
        side: ContextSide,
        drop_ends: bool,
        window: impl Fn(usize, usize) -> usize,
    ) -> Self {
        let mut ex = Examples { seq_offsets: Vec::with_capacity(sequences.len() + 1), ..Default::default() };
        ex.seq_offsets.push(0);
        ex.ctx_offsets.push(0);
        for (s, seq) in sequences.iter().enumerate() {
            let n = seq.len();
            let (lo, hi) = if drop_ends { (1, n.saturating_sub(1)) } else { (0, n) };
            for i in lo..hi.max(lo) {
                let (start, hi) = side.window_bounds(i, n, window(s, i).max(1));
                let end = hi + 1;
                if end - start < 2 {
                    continue;
                }
                for (j, &tok) in seq.iter().enumerate().take(end).skip(start) {
                    if j != i {
                        ex.ctx_tokens.push(tok);
                    }
                }
                ex.ctx_offsets.push(ex.ctx_tokens.len() as u32);
                ex.targets.push(seq[i]);
            }
            ex.seq_offsets.push(ex.targets.len() as u32);
        }
        ex
    }

    /// Examples given directly (one sequence holding them all): `contexts[e]` predicts
    /// `targets[e]` (the PyTorch fixtures' batches, ad-hoc queries).
    pub fn from_examples(contexts: &[Vec<u32>], targets: &[u32]) -> Self {
        let mut ex = Examples { seq_offsets: vec![0], ctx_offsets: vec![0], ..Default::default() };
        for (ctx, &t) in contexts.iter().zip(targets) {
            ex.ctx_tokens.extend_from_slice(ctx);
            ex.ctx_offsets.push(ex.ctx_tokens.len() as u32);
            ex.targets.push(t);
        }
        ex.seq_offsets.push(ex.targets.len() as u32);
        ex
    }

    /// Number of sequences (training units).
    pub fn sequences(&self) -> usize {
        self.seq_offsets.len().saturating_sub(1)
    }

    /// Number of examples.
    pub fn len(&self) -> usize {
        self.targets.len()
    }

    /// True when there is no example.
    pub fn is_empty(&self) -> bool {
        self.targets.is_empty()
    }

    /// The example range of sequence `s`.
    #[inline]
    pub fn sequence_range(&self, s: usize) -> std::ops::Range<usize> {
        self.seq_offsets[s] as usize..self.seq_offsets[s + 1] as usize
    }

    /// Context tokens of example `e`.
    #[inline]
    pub fn context(&self, e: usize) -> &[u32] {
        &self.ctx_tokens[self.ctx_offsets[e] as usize..self.ctx_offsets[e + 1] as usize]
    }

    /// Target token of example `e`.
    #[inline]
    pub fn target(&self, e: usize) -> u32 {
        self.targets[e]
    }

    /// Every target token, in example order.
    pub fn targets(&self) -> &[u32] {
        &self.targets
    }

    /// Number of (center, context-token) pairs, the skip-gram loss count of the examples `range`.
    pub fn pairs_in(&self, range: std::ops::Range<usize>) -> usize {
        if range.is_empty() {
            return 0;
        }
        (self.ctx_offsets[range.end] - self.ctx_offsets[range.start]) as usize
    }

    /// Largest token id + 1 seen in contexts or targets (0 when empty).
    pub fn max_token_bound(&self) -> usize {
        let a = self.ctx_tokens.iter().max().map_or(0, |&t| t as usize + 1);
        let b = self.targets.iter().max().map_or(0, |&t| t as usize + 1);
        a.max(b)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn notebook_collate_drops_first_and_last_position() {
        // The notebook's preview: sequence [8, 26, 28, 16, 6, ..] gives ([26],8), ([8,28],26), ...
        // and the collate keeps items 1..-1.
        let seqs = vec![vec![8, 26, 28, 16, 6], vec![1, 2], vec![3]];
        let ex = Examples::build(&seqs, 1, true);
        assert_eq!(ex.sequences(), 3);
        assert_eq!(ex.len(), 3);
        assert_eq!(ex.context(0), &[8, 28]);
        assert_eq!(ex.target(0), 26);
        assert_eq!(ex.context(1), &[26, 16]);
        assert_eq!(ex.context(2), &[28, 6]);
        assert_eq!(ex.target(2), 16);
        assert_eq!(ex.sequence_range(1), 3..3);
        assert_eq!(ex.sequence_range(2), 3..3);
        assert_eq!(ex.pairs_in(0..3), 6);
    }

    #[test]
    fn keeping_ends_gives_one_sided_contexts() {
        let seqs = vec![vec![8, 26, 28], vec![4]];
        let ex = Examples::build(&seqs, 1, false);
        assert_eq!(ex.len(), 3);
        assert_eq!(ex.context(0), &[26]);
        assert_eq!(ex.target(0), 8);
        assert_eq!(ex.context(2), &[26]);
        assert_eq!(ex.target(2), 28);
    }

    #[test]
    fn causal_window_cutting_by_hand() {
        // Previous titles only, w = 2: position 0 has no context; 1 <- [0]; 2 <- [0, 1];
        // 3 <- [1, 2]; 4 <- [2, 3]. The second sequence gives 6 <- [5] only.
        let seqs = vec![vec![10, 11, 12, 13, 14], vec![5, 6], vec![7]];
        let ex = Examples::build_sided(&seqs, 2, ContextSide::Previous, false);
        assert_eq!(ex.len(), 5);
        assert_eq!((ex.context(0), ex.target(0)), (&[10][..], 11));
        assert_eq!((ex.context(1), ex.target(1)), (&[10, 11][..], 12));
        assert_eq!((ex.context(2), ex.target(2)), (&[11, 12][..], 13));
        assert_eq!((ex.context(3), ex.target(3)), (&[12, 13][..], 14));
        assert_eq!((ex.context(4), ex.target(4)), (&[5][..], 6));
        assert_eq!(ex.sequence_range(0), 0..4);
        assert_eq!(ex.sequence_range(2), 5..5);
        // No context token ever comes after its target.
        assert_eq!(ex.pairs_in(0..ex.len()), 8);
        // Dropped ends: positions 1..=3 of the first sequence only, none of the second.
        let dropped = Examples::build_sided(&seqs, 2, ContextSide::Previous, true);
        assert_eq!(dropped.targets(), &[11, 12, 13]);
        assert_eq!(dropped.context(2), &[11, 12]);
        // w = 1 previous: exactly the one title before.
        let one = Examples::build_sided(&seqs[..1], 1, ContextSide::Previous, false);
        assert_eq!(one.len(), 4);
        assert!((0..4).all(|e| one.context(e) == [one.target(e) - 1]));
        // The config path takes the side from the model configuration.
        let config = Item2VecConfig {
            context_side: ContextSide::Previous,
            window: 2,
            drop_ends: false,
            ..Default::default()
        };
        assert_eq!(Examples::for_config(&seqs, &config), ex);
    }

    #[test]
    fn both_sides_match_the_window_bounds_rule() {
        assert_eq!(ContextSide::Both.window_bounds(0, 5, 2), (0, 2));
        assert_eq!(ContextSide::Both.window_bounds(4, 5, 2), (2, 4));
        assert_eq!(ContextSide::Previous.window_bounds(4, 5, 2), (2, 4));
        assert_eq!(ContextSide::Previous.window_bounds(0, 5, 2), (0, 0));
    }

    #[test]
    fn wider_window_with_dropped_ends() {
        let seqs = vec![vec![0, 1, 2, 3, 4]];
        let ex = Examples::build(&seqs, 2, true);
        assert_eq!(ex.len(), 3);
        assert_eq!(ex.context(0), &[0, 2, 3]);
        assert_eq!(ex.context(1), &[0, 1, 3, 4]);
        assert_eq!(ex.context(2), &[1, 2, 4]);
        assert_eq!(ex.max_token_bound(), 5);
    }
}
