//! (context, target) examples cut from viewing sequences, stored flat so a batch of user
//! sequences maps to a contiguous range of examples without allocation.
//!
//! For position `i` of a sequence with window `w`, the context is the tokens at `i-w..=i+w`
//! except `i` that exist, and the target is token `i` (P0). The notebook's `collate_fn` keeps
//! `batch_item[1:-1]`, i.e. it drops the first and the last position of every sequence whatever
//! the window: with `w = 1` every remaining context has exactly two tokens. That is the default
//! here (`drop_ends = true`); `drop_ends = false` keeps every position that has a context.

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
    /// Cuts the examples of every sequence with window `window` (>= 1). Positions whose context
    /// would be empty (sequences of length 1) give no example.
    pub fn build(sequences: &[Vec<u32>], window: usize, drop_ends: bool) -> Self {
        let window = window.max(1);
        let mut ex = Examples { seq_offsets: Vec::with_capacity(sequences.len() + 1), ..Default::default() };
        ex.seq_offsets.push(0);
        ex.ctx_offsets.push(0);
        for seq in sequences {
            let n = seq.len();
            let (lo, hi) = if drop_ends { (1, n.saturating_sub(1)) } else { (0, n) };
            for i in lo..hi.max(lo) {
                let start = i.saturating_sub(window);
                let end = (i + window + 1).min(n);
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
