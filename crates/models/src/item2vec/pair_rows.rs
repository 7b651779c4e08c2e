//! The projected softmax's gradient for two-token CBOW contexts (the notebook's w = 1), grouped
//! by context row instead of by example.
//!
//! With the exponential table of [`PairTables`] (`Y[r]_j = exp((f P[r]_j + b_j / 2) - m_r)`),
//! an example with context `{a, c}` and target `t` has
//!
//! ```text
//! Z      = sum_j Y[a]_j Y[c]_j,        g = scale / Z,        loss = (m_a + m_c) + ln Z - z_t,
//! dz     = g (Y[a] Y[c]) - scale onehot(t),
//! S[a]  += f dz,   S[c] += f dz,   db += dz.
//! ```
//!
//! Summing the soft part over every example that has `r` in its context:
//!
//! ```text
//! acc_r  = sum_{examples {r, c}} g Y[c]                         (a sparse-times-dense product)
//! S[r]  += f Y[r] acc_r  -  f scale sum_{examples {r, c}} onehot(t)
//! db    += (1/2) sum_r Y[r] acc_r  -  scale sum_examples onehot(t)
//! ```
//!
//! (every example is counted in two rows, `a` and `c`, hence the half; `a = c` counts twice in
//! one row). Two phases over the rows: the first computes each example's `Z`, `g` and loss once,
//! in its *primary* entry, the one in its lower context row (`Y[r]` stays in L1 while the
//! row's primary examples stream their `Y[c]`; each row's primaries are listed apart, so the
//! phase reads no flags); the second adds `g Y[c]` into an accumulator that stays in L1 and
//! writes each touched row of `S` once. The per-example form wrote `dz` and read-modify-wrote
//! `db`, `S[a]` and `S[c]`, five rows from L2 or L3 at V = 1,000; computing `Z` in both rows
//! measured 5.48 ms an epoch at P0 top-200 against 4.83 for two phases (ml-100k, 1 thread,
//! medians of 5 alternating runs). The target's logit `z_t = f (E[a] + E[c]) W[t] + b_t` comes
//! from the rows of `E` and `W` (one sum of `k` products, [`context_dot`]), not from two
//! scattered elements of `P`; it enters the loss only (the AVX-512 build sums it in one
//! register, [`simd512::context_dot`], the same bits: P0 top-1000 row pass 1.968 against
//! 2.027 ms a batch, medians of 6 alternating runs). A block's `m_a + m_c - z_t` are taken
//! in one loop before its sums, and each example's `g` lives in a dense array by its slot among
//! the primaries (4 bytes an example, in L1), not in its entries: P0 at 1 thread on ml-100k,
//! top-200 3.64 against 3.87 ms an epoch, top-1000 46.93 against 47.48 (medians of 5
//! alternating runs), the model's bits unchanged.
//!
//! On one thread the phases run as one sweep over the rows ([`Sweep`]): row `r`'s sums, then
//! its row of `S`. Every primary lies in its own row or an earlier one, so each of the row's
//! `g` is known by then, and the rows of `Y` its primaries just read are still in cache: two
//! reads of a table row an example instead of three. P0 at 1 thread on ml-100k, Intel Xeon,
//! medians of alternating runs: top-1000 52.86 against 54.77 ms an epoch (5 runs), top-200
//! 3.83 against 3.92 (3), top-50 0.525 against 0.546 (5).
//!
//! A loss-only pass (validation) runs the first phase alone.
//!
//! The index of a pass's examples by row ([`RowIndex`]: entries, primaries, partners) depends
//! on the examples only, so the objective's unchanging training batches and validation set keep
//! theirs from epoch to epoch ([`ExampleSet`], up to [`KEPT_INDICES`] of them, matched by their
//! ids): P0 at 1 thread on ml-100k, top-200 3.01 against 3.31 ms an epoch, top-1000 44.2
//! against 45.05 (medians of 5 alternating runs), the model's bits unchanged.
//!
//! **Determinism:** rows go in fixed blocks of [`ROW_BLOCK`] (a function of V only); a row's
//! entries are in example order; the blocks' loss and `db` partials are summed in block order;
//! the sweep does each row's operations on the same values as the two phases. Any thread count
//! gives the same bits.
//!
//! Examples of another shape (one context token at a sequence's ends) and those whose `Z` falls
//! below [`PAIR_SUM_FLOOR`] (the products could underflow) are left in [`PairRows::direct`]
//! for the per-example kernel, which computes them from the logits.

use rayon::prelude::*;

use super::lane::{Lane, RowMarks, Weights};
#[cfg(target_arch = "x86_64")]
use super::simd512;
use super::softmax::{hidden_tokens, positives_of, ExamplePass, Isa, PairTables, Row, PAIR_SUM_FLOOR};
use super::{Architecture, ContextReduce};

/// Rows of `S` a block of the row pass owns.
pub(crate) const ROW_BLOCK: usize = 32;

/// Examples whose sums `Z` share one logarithm in the loss.
const LOG_GROUP: usize = 8;

/// `(a + c) . w` in a fixed order every build computes alike (sixteen lanes over the whole
/// chunks folded in halves, plus the tail's products added in order; unfused, so the same bits
/// portable or vectorised): the context `a + c` of a two-token example dotted with its target's
/// row of `W`, one product sum instead of one per context token. `a`, `c` and `w` have the
/// same length.
#[inline(always)]
fn context_dot(a: &[f32], c: &[f32], w: &[f32]) -> f32 {
    const L: usize = 16;
    let mut acc = [0.0f32; L];
    let (mut ca, mut cc, mut cw) = (a.chunks_exact(L), c.chunks_exact(L), w.chunks_exact(L));
    for ((a, c), w) in (&mut ca).zip(&mut cc).zip(&mut cw) {
        for l in 0..L {
            acc[l] += (a[l] + c[l]) * w[l];
        }
    }
    let mut width = L / 2;
    while width > 0 {
        for l in 0..width {
            acc[l] += acc[l + width];
        }
        width /= 2;
    }
    let tail = ca.remainder().iter().zip(cc.remainder()).zip(cw.remainder());
    tail.fold(acc[0], |s, ((&a, &c), &w)| s + (a + c) * w)
}

/// One example as seen from one of its two context rows.
#[derive(Debug, Clone, Copy, Default)]
struct Entry {
    /// The other context token.
    partner: u32,
    /// The target.
    target: u32,
    /// The example's id.
    example: u32,
    /// The example's place in [`PairRows`]' primaries (and so in its `g`): its primary entry
    /// is the one in its lower context row (the first of the two when both are the same row),
    /// where its `Z`, `g`, loss and fallback are computed once; a single sweep over the rows
    /// meets it before the other.
    slot: u32,
}

/// A block's partial results and scratch.
#[derive(Debug, Clone, Default)]
struct Block {
    loss: f64,
    /// `sum_r (X[r] acc_r) e` over the block's rows.
    db: Vec<f32>,
    /// `acc_r` of the row in hand.
    acc: Vec<f32>,
    /// Examples whose `Z` fell below the floor (recorded by their primary entry).
    fallback: Vec<u32>,
    /// The sums `Z` of the row in hand's primary entries (first phase).
    sums: Vec<f32>,
    /// `m_a + m_c - z_t` of the block's primaries (first phase), taken in one loop before
    /// their sums: their rows of `E` and `W` gathered apart from the stream of `Y`'s rows.
    shifts: Vec<f32>,
    /// The row in hand's `(g, partner)` terms (second phase, AVX-512).
    terms: Vec<(f32, u32)>,
}

/// A batch's examples indexed by context row: what the row pass reads besides the tables. It
/// depends on the examples and their ids only, never on the weights.
#[derive(Debug, Clone, Default)]
struct RowIndex {
    /// `start[r]..start[r + 1]`: row `r`'s entries.
    start: Vec<u32>,
    entries: Vec<Entry>,
    /// `prim_start[r]..prim_start[r + 1]`: row `r`'s primary entries (indices into `entries`,
    /// in entry order) in `primaries`, their partners in `primary_partners`.
    prim_start: Vec<u32>,
    primaries: Vec<u32>,
    primary_partners: Vec<u32>,
    /// The examples that are not two-token ones, in `ids` order.
    rest: Vec<u32>,
}

/// Which of an objective's own example sets a pass reads: they never change, so the same ids
/// of one give the same [`RowIndex`] every epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ExampleSet {
    Train,
    Validation,
}

/// A [`RowIndex`] kept for the next pass over the same ids of the same set.
#[derive(Debug, Clone, Default)]
struct KeptIndex {
    /// The set and the pass's shape the index was built for (`None`: not kept, the slot of
    /// passes that are not cached).
    key: Option<(ExampleSet, Architecture, ContextReduce, usize)>,
    ids: Vec<u32>,
    index: RowIndex,
    /// When it was last used (a count of lookups).
    used: u64,
}

/// Row indices kept at most (a training epoch's batches and the validation set; more batches
/// than this, as when batches are reshuffled every epoch, replace the least recently used).
const KEPT_INDICES: usize = 64;

/// Reused buffers of the row pass; [`PairRows::direct`] holds, after [`PairRows::run`], the
/// examples left to the per-example kernel.
#[derive(Debug, Clone, Default)]
pub(crate) struct PairRows {
    /// Row indices of earlier passes (slot 0: the index of an uncached pass).
    kept: Vec<KeptIndex>,
    lookups: u64,
    /// `g = scale / Z` of each primary (by slot, after the first phase; NaN: the example falls
    /// back): 4 bytes an example, so the second phase's reads of its partners' `g` stay in L1
    /// instead of reaching into the entries.
    g: Vec<f32>,
    /// Where the next entry (primary) of each row goes while filling an index.
    cursor: Vec<u32>,
    prim_cursor: Vec<u32>,
    /// The two-token examples in `ids` order while indexing: `[example, a, c, t]`.
    two_token: Vec<[u32; 4]>,
    blocks: Vec<Block>,
    /// Examples for the per-example kernel, in `ids` order (fallbacks last, in block order).
    pub(crate) direct: Vec<u32>,
    /// Their context tokens, sorted and distinct: the rows of `P` they read.
    pub(crate) direct_rows: Vec<u32>,
}

impl PairRows {
    /// The row pass over the CBOW examples `ids` of `pass` (`tables` filled for it): returns
    /// the two-token examples' loss sum and, when `pass.grad`, adds their `S` rows, marks and
    /// `db` to `lane` (its buffers sized by `ensure_projected`); the rest go to
    /// [`direct`](Self::direct), the rows of `P` they read to [`direct_rows`](Self::direct_rows).
    /// Every `isa` gives the same bits, with or without `sweep` (one sweep over the rows when
    /// on one thread; else two phases). With `set`, the ids' row index is kept and reused by
    /// the next pass over the same ids of that set (the caller promises the set's examples
    /// never change).
    #[allow(clippy::too_many_arguments)] // one call site; the pass, its tables and switches
    pub(crate) fn run(
        &mut self,
        pass: &ExamplePass<'_>,
        tables: &PairTables,
        wts: &Weights<'_>,
        ids: &[u32],
        set: Option<ExampleSet>,
        lane: &mut Lane,
        isa: Isa,
        sweep: bool,
    ) -> f64 {
        debug_assert_eq!(pass.arch, Architecture::Cbow);
        let v = wts.v;
        let slot = self.index(pass, ids, v, set);
        let ix = &self.kept[slot].index;
        self.direct.clear();
        self.direct.extend_from_slice(&ix.rest);
        self.g.resize(ix.primaries.len(), f32::NAN);
        let n_blocks = v.div_ceil(ROW_BLOCK);
        if self.blocks.len() < n_blocks {
            self.blocks.resize_with(n_blocks, Block::default);
        }
        for b in &mut self.blocks[..n_blocks] {
            b.loss = 0.0;
            b.db.clear();
            b.db.resize(v, 0.0);
            b.acc.resize(v, 0.0);
            b.fallback.clear();
        }
        let start = &ix.start[..];
        let entries = &ix.entries[..];
        let sums = SumPass {
            pass,
            tables,
            wts,
            entries,
            prim_start: &ix.prim_start,
            primaries: &ix.primaries,
            partners: &ix.primary_partners,
            v,
        };
        let rows = RowPass { tables, start, entries, v, scale: pass.scale };
        let g = &mut self.g[..];
        let Lane { s, e_rows: marks, .. } = lane;
        let s = &mut s[..v * v];
        if pass.grad && sweep && (n_blocks == 1 || rayon::current_num_threads() == 1) {
            // One sweep: every entry's primary lies in its own row or an earlier one, so a row's
            // `g` are all known once its own sums are taken, and the rows of `Y` its primary
            // entries just read are still in cache for its `acc`.
            let fused = Sweep { sums, rows, marks };
            for (j, s) in s.chunks_mut(ROW_BLOCK * v).enumerate() {
                let block = &mut self.blocks[j];
                match isa {
                    // SAFETY: `Isa::supported` found AVX2 (and AVX-512F) on this CPU.
                    #[cfg(target_arch = "x86_64")]
                    Isa::Avx2 => unsafe { fused.block_avx2(j, g, s, block) },
                    #[cfg(target_arch = "x86_64")]
                    Isa::Avx512 => unsafe { fused.block_avx512(j, g, s, block) },
                    _ => fused.block::<false>(j, g, s, block),
                }
            }
        } else {
            // Phase 1: every example's `Z`, `g` and loss by its primary entry, blocks in
            // parallel over their own primaries' `g`.
            let mut rest = &mut *g;
            let mut chunks = Vec::with_capacity(n_blocks);
            for j in 0..n_blocks {
                let p = &ix.prim_start;
                let end = p[((j + 1) * ROW_BLOCK).min(v)] - p[j * ROW_BLOCK];
                let (chunk, tail) = std::mem::take(&mut rest).split_at_mut(end as usize);
                chunks.push(chunk);
                rest = tail;
            }
            let phase1 = |(j, (g, block)): (usize, (&mut [f32], &mut Block))| match isa {
                // SAFETY: `Isa::supported` found AVX2 (and AVX-512F) on this CPU.
                #[cfg(target_arch = "x86_64")]
                Isa::Avx2 => unsafe { sums.block_avx2(j, g, block) },
                #[cfg(target_arch = "x86_64")]
                Isa::Avx512 => unsafe { sums.block_avx512(j, g, block) },
                _ => sums.block::<false>(j, g, block),
            };
            if n_blocks == 1 {
                phase1((0, (chunks.pop().expect("one block"), &mut self.blocks[0])));
            } else {
                chunks
                    .into_par_iter()
                    .zip(self.blocks[..n_blocks].par_iter_mut())
                    .enumerate()
                    .for_each(phase1);
            }
            if pass.grad {
                // Phase 2: the rows' sums into `S` and `db`.
                let (marks, g) = (&*marks, &*g);
                let work = |(j, (s, block)): (usize, (&mut [f32], &mut Block))| match isa {
                    // SAFETY: `Isa::supported` found AVX2 (and AVX-512F) on this CPU.
                    #[cfg(target_arch = "x86_64")]
                    Isa::Avx2 => unsafe { rows.block_avx2(j, g, marks, s, block) },
                    #[cfg(target_arch = "x86_64")]
                    Isa::Avx512 => unsafe { rows.block_avx512(j, g, marks, s, block) },
                    _ => rows.block::<false>(j, g, marks, s, block),
                };
                if n_blocks == 1 {
                    work((0, (s, &mut self.blocks[0])));
                } else {
                    s.par_chunks_mut(ROW_BLOCK * v)
                        .zip(self.blocks[..n_blocks].par_iter_mut())
                        .enumerate()
                        .for_each(work);
                }
            }
        }
        let loss = self.blocks[..n_blocks].iter().map(|b| b.loss).sum();
        // The examples whose sums fell below the floor go to the per-example kernel after the
        // others, in block order.
        self.direct.extend(self.blocks[..n_blocks].iter().flat_map(|b| b.fallback.iter().copied()));
        self.direct_rows.clear();
        for &e in &self.direct {
            self.direct_rows.extend_from_slice(hidden_tokens(pass.arch, pass.reduce, pass.ex, e as usize).0);
        }
        self.direct_rows.sort_unstable();
        self.direct_rows.dedup();
        if !pass.grad {
            return loss;
        }
        for r in 0..v {
            if start[r] < start[r + 1] {
                lane.e_rows.mark(r as u32);
            }
        }
        // db: half the blocks' row sums (in block order), then the targets.
        let (first, rest) = self.blocks[..n_blocks].split_first_mut().expect("v > 0");
        for b in rest.iter() {
            first.db.iter_mut().zip(&b.db).for_each(|(d, &x)| *d += x);
        }
        lane.db.iter_mut().zip(&first.db).for_each(|(d, &x)| *d += 0.5 * x);
        // Every example that did not fall back subtracts `scale` at its target: the same
        // constant each time, so the order of the subtractions does not change the bits.
        for (&at, g) in ix.primaries.iter().zip(&self.g) {
            if !g.is_nan() {
                lane.db[ix.entries[at as usize].target as usize] -= pass.scale;
            }
        }
        loss
    }

    /// The slot in `kept` of the row index of `ids`: a kept one when `set` names the same ids
    /// of the same set for the same pass shape, else one built now (kept under `set` when
    /// given, in place of the least recently used beyond [`KEPT_INDICES`]; in slot 0 when not).
    fn index(&mut self, pass: &ExamplePass<'_>, ids: &[u32], v: usize, set: Option<ExampleSet>) -> usize {
        self.lookups += 1;
        if self.kept.is_empty() {
            self.kept.push(KeptIndex::default());
        }
        let key = set.map(|set| (set, pass.arch, pass.reduce, v));
        if key.is_some() {
            if let Some(slot) = self.kept.iter().position(|k| k.key == key && k.ids == ids) {
                self.kept[slot].used = self.lookups;
                return slot;
            }
        }
        let slot = match key {
            None => 0,
            Some(_) if self.kept.len() <= KEPT_INDICES => {
                self.kept.push(KeptIndex::default());
                self.kept.len() - 1
            }
            Some(_) => (1..self.kept.len()).min_by_key(|&i| self.kept[i].used).expect("more than one kept"),
        };
        let kept = &mut self.kept[slot];
        kept.key = key;
        kept.used = self.lookups;
        kept.ids.clear();
        if key.is_some() {
            kept.ids.extend_from_slice(ids);
        }
        let scratch = (&mut self.cursor, &mut self.prim_cursor, &mut self.two_token);
        kept.index.build(pass, ids, v, scratch);
        slot
    }
}

impl RowIndex {
    /// Splits `ids` into two-token examples (indexed by row into `entries`) and the rest
    /// (`rest`); `scratch` holds the fill's cursors and the two-token list.
    fn build(
        &mut self,
        pass: &ExamplePass<'_>,
        ids: &[u32],
        v: usize,
        (cursor, prim_cursor, two_token): (&mut Vec<u32>, &mut Vec<u32>, &mut Vec<[u32; 4]>),
    ) {
        self.rest.clear();
        two_token.clear();
        for &e in ids {
            let rows = hidden_tokens(pass.arch, pass.reduce, pass.ex, e as usize).0;
            match (rows, positives_of(pass.arch, pass.ex, e as usize)) {
                (&[a, c], &[t]) => two_token.push([e, a, c, t]),
                _ => self.rest.push(e),
            }
        }
        self.start.clear();
        self.start.resize(v + 1, 0);
        for &[_, a, c, _] in two_token.iter() {
            self.start[a as usize + 1] += 1;
            self.start[c as usize + 1] += 1;
        }
        for r in 0..v {
            self.start[r + 1] += self.start[r];
        }
        cursor.clear();
        cursor.extend_from_slice(&self.start[..v]);
        self.entries.clear();
        self.entries.resize(self.start[v] as usize, Entry::default());
        self.prim_start.clear();
        self.prim_start.resize(v + 1, 0);
        for &[_, a, c, _] in two_token.iter() {
            self.prim_start[a.min(c) as usize + 1] += 1;
        }
        for r in 0..v {
            self.prim_start[r + 1] += self.prim_start[r];
        }
        self.primaries.resize(two_token.len(), 0);
        self.primary_partners.resize(two_token.len(), 0);
        prim_cursor.clear();
        prim_cursor.extend_from_slice(&self.prim_start[..v]);
        for &[example, a, c, target] in two_token.iter() {
            // The primary entry is the one in the lower row (the first when `a = c`), so a
            // single sweep over the rows meets it before its twin.
            let (low, high) = (a.min(c), a.max(c));
            let slot = prim_cursor[low as usize];
            prim_cursor[low as usize] += 1;
            self.primaries[slot as usize] = cursor[low as usize];
            self.primary_partners[slot as usize] = high;
            for (row, partner) in [(a, c), (c, a)] {
                let at = &mut cursor[row as usize];
                self.entries[*at as usize] = Entry { partner, target, example, slot };
                *at += 1;
            }
        }
    }
}

/// The loss of a block's examples: the shifts and target logits added one by one, the sums `Z`
/// multiplied [`LOG_GROUP`] at a time before their logarithm.
#[derive(Debug, Clone, Copy)]
struct LossSum {
    loss: f64,
    product: f64,
    factors: usize,
}

impl LossSum {
    fn new() -> Self {
        Self { loss: 0.0, product: 1.0, factors: 0 }
    }

    /// Adds an example with sum `z` and `shift - z_t = d`.
    #[inline(always)]
    fn push(&mut self, d: f32, z: f32) {
        self.loss += d as f64;
        self.product *= z as f64;
        self.factors += 1;
        if self.factors == LOG_GROUP {
            self.loss += self.product.ln();
            (self.product, self.factors) = (1.0, 0);
        }
    }

    fn total(self) -> f64 {
        self.loss + self.product.ln()
    }
}

/// What every block of the first phase reads.
struct SumPass<'a> {
    pass: &'a ExamplePass<'a>,
    tables: &'a PairTables,
    wts: &'a Weights<'a>,
    /// The batch's entries (the primaries' targets and example ids).
    entries: &'a [Entry],
    /// [`PairRows`]' lists of each row's primary entries and their partners.
    prim_start: &'a [u32],
    primaries: &'a [u32],
    partners: &'a [u32],
    v: usize,
}

impl SumPass<'_> {
    /// [`block`](Self::block) compiled for AVX2.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn block_avx2(&self, j: usize, g: &mut [f32], block: &mut Block) {
        self.block::<true>(j, g, block);
    }

    /// [`block`](Self::block) with the sums of [`simd512::pair_sums`] (four examples at a
    /// time; the same bits).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx2")]
    unsafe fn block_avx512(&self, j: usize, g: &mut [f32], block: &mut Block) {
        self.block_with(j, g, block, self.sums_avx512(), avx512_context_dot);
    }

    /// [`simd512::pair_sums`] over the table.
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    fn sums_avx512(&self) -> impl RowSums + '_ {
        let (table, stride) = (self.tables.table(), self.tables.stride());
        move |x, partners, out| {
            // SAFETY: only built inside AVX-512F functions (`block_avx512`, `Sweep`'s);
            // partners are tokens `< v`.
            unsafe { simd512::pair_sums(x, partners, table, stride, out) }
        }
    }

    /// The portable sums (`AVX2`: compiled for AVX2).
    #[inline(always)]
    fn sums<const AVX2: bool>(&self) -> impl RowSums + '_ {
        let t = self.tables;
        move |x, partners, out| {
            for (z, &c) in out.iter_mut().zip(partners) {
                *z = Row::<AVX2>::pair_sum(x, t.y_row(c as usize));
            }
        }
    }

    /// `shift - z_t` of every primary of rows `j ROW_BLOCK ..` (in slot order) into `out`:
    /// the target's logit `z_t = f (E[a] + E[c]) W[t] + b_t` of the example `{a, c}` (symmetric
    /// in `a` and `c`, bitwise), from the rows of `E` and `W` rather than from two scattered
    /// elements of `P = E W^T`, the same value as `P`'s up to rounding, and the tables' shift
    /// `m_a + m_c`. It enters the loss only, never a gradient.
    #[inline(always)]
    fn block_shifts(&self, j: usize, out: &mut Vec<f32>, dot: impl ContextDot) {
        let (w, k, f, t) = (self.wts, self.wts.k, self.tables.weight(), self.tables);
        let row = |i: usize| &w.e[i * k..(i + 1) * k];
        out.clear();
        for r in j * ROW_BLOCK..((j + 1) * ROW_BLOCK).min(self.v) {
            let range = self.prim_start[r] as usize..self.prim_start[r + 1] as usize;
            for (&at, &c) in self.primaries[range.clone()].iter().zip(&self.partners[range]) {
                let target = self.entries[at as usize].target as usize;
                let z_t = f * dot(row(r), row(c as usize), &w.w[target * k..(target + 1) * k]) + w.b[target];
                out.push(t.shift(r, c as usize) - z_t);
            }
        }
    }

    /// Rows `j ROW_BLOCK ..`: each primary's `Z`, `g` (into `g`, the block's primaries from
    /// the first on) and loss. The loss's logarithms are taken of products of [`LOG_GROUP`]
    /// sums at a time, in f64 (each sum lies in `[1e-20, V]`, so no product of eight leaves
    /// f64's range): one logarithm for eight examples.
    #[inline(always)]
    fn block<const AVX2: bool>(&self, j: usize, g: &mut [f32], block: &mut Block) {
        self.block_with(j, g, block, self.sums::<AVX2>(), context_dot);
    }

    /// [`block`](Self::block) with the row's sums from `row_sums(Y[r], partners, out)`.
    #[inline(always)]
    fn block_with(
        &self,
        j: usize,
        g: &mut [f32],
        block: &mut Block,
        mut row_sums: impl RowSums,
        dot: impl ContextDot,
    ) {
        let mut loss = LossSum::new();
        let base = self.prim_start[j * ROW_BLOCK] as usize;
        self.block_shifts(j, &mut block.shifts, dot);
        for r in j * ROW_BLOCK..((j + 1) * ROW_BLOCK).min(self.v) {
            self.row(r, g, base, block, &mut loss, &mut row_sums);
        }
        block.loss = loss.total();
    }

    /// Row `r`: its primaries' `Z`, `g` and loss (`g` holds the `g` of the batch's primaries
    /// from slot `base` on, the block's `shifts` their `shift - z_t` from there on too).
    #[inline(always)]
    fn row(
        &self,
        r: usize,
        g: &mut [f32],
        base: usize,
        block: &mut Block,
        loss: &mut LossSum,
        row_sums: &mut impl RowSums,
    ) {
        let (t, scale) = (self.tables, self.pass.scale);
        let range = self.prim_start[r] as usize..self.prim_start[r + 1] as usize;
        if range.is_empty() {
            return;
        }
        let Block { sums, fallback, shifts, .. } = block;
        sums.clear();
        sums.resize(range.len(), 0.0);
        row_sums(t.y_row(r), &self.partners[range.clone()], sums);
        let local = range.start - base..range.end - base;
        let outs = g[local.clone()].iter_mut().zip(&shifts[local]);
        for ((&at, &z), (g, &d)) in self.primaries[range].iter().zip(sums.iter()).zip(outs) {
            if z.is_nan() || z < PAIR_SUM_FLOOR {
                fallback.push(self.entries[at as usize].example);
                *g = f32::NAN;
                continue;
            }
            loss.push(d, z);
            *g = scale / z;
        }
    }
}

/// What every block of the second phase reads (besides the entries, whose primaries hold `g`,
/// and the lane's marks: its rows of `S` that hold values; the others are stale and count as
/// zero, written rather than added to).
struct RowPass<'a> {
    tables: &'a PairTables,
    start: &'a [u32],
    entries: &'a [Entry],
    v: usize,
    scale: f32,
}

/// A row's sums out (`terms`, `Y[r]`, `S[r]`, `db`, `fresh`, scratch accumulator).
trait RowOut: Fn(&[(f32, u32)], &[f32], &mut [f32], &mut [f32], bool, &mut [f32]) {}
impl<F: Fn(&[(f32, u32)], &[f32], &mut [f32], &mut [f32], bool, &mut [f32])> RowOut for F {}

/// A row's sums `Z` (`Y[r]`, partners, out).
trait RowSums: FnMut(&[f32], &[u32], &mut [f32]) {}
impl<F: FnMut(&[f32], &[u32], &mut [f32])> RowSums for F {}

/// [`context_dot`] or a build of it with the same bits.
trait ContextDot: Fn(&[f32], &[f32], &[f32]) -> f32 + Copy {}
impl<F: Fn(&[f32], &[f32], &[f32]) -> f32 + Copy> ContextDot for F {}

/// [`simd512::context_dot`], for the AVX-512 blocks.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn avx512_context_dot(a: &[f32], c: &[f32], w: &[f32]) -> f32 {
    // SAFETY: only passed from inside AVX-512F functions (`block_avx512`, `Sweep`'s).
    unsafe { simd512::context_dot(a, c, w) }
}

impl RowPass<'_> {
    /// [`block`](Self::block) compiled for AVX2.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn block_avx2(&self, j: usize, g: &[f32], marks: &RowMarks, s: &mut [f32], block: &mut Block) {
        self.block::<true>(j, g, marks, s, block);
    }

    /// [`block`](Self::block) with [`simd512::row_sums_out`]'s register tiles (the same bits).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx2")]
    unsafe fn block_avx512(&self, j: usize, g: &[f32], marks: &RowMarks, s: &mut [f32], block: &mut Block) {
        self.block_with(j, g, marks, s, block, self.out_avx512());
    }

    /// [`simd512::row_sums_out`] over the table.
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    fn out_avx512(&self) -> impl RowOut + '_ {
        let (v, t) = (self.v, self.tables);
        move |terms, x, s_row, db, fresh, _acc| {
            // SAFETY: only built inside AVX-512F functions (`block_avx512`, `Sweep`'s);
            // partners are tokens `< v`.
            unsafe { simd512::row_sums_out(terms, t.table(), t.stride(), v, x, t.weight(), s_row, db, fresh) }
        }
    }

    /// The portable row sums (`AVX2`: compiled for AVX2) through the accumulator row `acc`.
    #[inline(always)]
    fn out<const AVX2: bool>(&self) -> impl RowOut + '_ {
        let t = self.tables;
        move |terms, x, s_row, db, fresh, acc| {
            if fresh {
                s_row.fill(0.0);
            }
            acc.iter_mut().for_each(|a| *a = 0.0);
            for &(g, c) in terms {
                Row::<AVX2>::axpy(g, t.y_row(c as usize), acc);
            }
            Row::<AVX2>::row_out(x, acc, t.weight(), s_row, db);
        }
    }

    /// Rows `j ROW_BLOCK ..` (their `S` rows in `s`): per row `acc = sum g Y[partner]` over its
    /// entries (`g` read by each entry's slot), then `S[r] += f Y[r] acc`, the
    /// block's `db` partial, and `S[r][t] -= f scale` per entry.
    #[inline(always)]
    fn block<const AVX2: bool>(
        &self,
        j: usize,
        g: &[f32],
        marks: &RowMarks,
        s: &mut [f32],
        block: &mut Block,
    ) {
        self.block_with(j, g, marks, s, block, self.out::<AVX2>());
    }

    /// [`block`](Self::block) with each row's sums out from `row_out`.
    #[inline(always)]
    fn block_with(
        &self,
        j: usize,
        g: &[f32],
        marks: &RowMarks,
        s: &mut [f32],
        block: &mut Block,
        row_out: impl RowOut,
    ) {
        for (i, s_row) in s.chunks_exact_mut(self.v).enumerate() {
            let r = j * ROW_BLOCK + i;
            self.row(r, g, !marks.is_marked(r), s_row, block, &row_out);
        }
    }

    /// Row `r` of `S` (`s_row`; `fresh` when stale, counting as zero) from its entries and
    /// the `g` of every primary: `row_out` of the row's `(g, partner)` terms in entry order,
    /// then the targets.
    #[inline(always)]
    fn row(
        &self,
        r: usize,
        g: &[f32],
        fresh: bool,
        s_row: &mut [f32],
        block: &mut Block,
        row_out: &impl RowOut,
    ) {
        let row = &self.entries[self.start[r] as usize..self.start[r + 1] as usize];
        if row.is_empty() {
            return;
        }
        let Block { db, terms, acc, .. } = block;
        terms.clear();
        terms.extend(row.iter().filter_map(|en| {
            let g = g[en.slot as usize];
            (!g.is_nan()).then_some((g, en.partner))
        }));
        row_out(terms, self.tables.y_row(r), s_row, db, fresh, acc);
        let f_scale = self.tables.weight() * self.scale;
        for en in row {
            if !g[en.slot as usize].is_nan() {
                s_row[en.target as usize] -= f_scale;
            }
        }
    }
}

/// Both phases in one sweep over a block's rows (one thread): row `r`'s sums, then its row of
/// `S`. The same operations on the same values as the two phases, so the same bits.
struct Sweep<'a> {
    sums: SumPass<'a>,
    rows: RowPass<'a>,
    marks: &'a RowMarks,
}

impl Sweep<'_> {
    /// [`block`](Self::block) compiled for AVX2.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn block_avx2(&self, j: usize, g: &mut [f32], s: &mut [f32], block: &mut Block) {
        self.block::<true>(j, g, s, block);
    }

    /// [`block`](Self::block) with the AVX-512 kernels of both phases.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx2")]
    unsafe fn block_avx512(&self, j: usize, g: &mut [f32], s: &mut [f32], block: &mut Block) {
        self.block_with(j, g, s, block, self.sums.sums_avx512(), self.rows.out_avx512(), avx512_context_dot);
    }

    /// Rows `j ROW_BLOCK ..` (their `S` rows in `s`; `g` every primary's).
    #[inline(always)]
    fn block<const AVX2: bool>(&self, j: usize, g: &mut [f32], s: &mut [f32], block: &mut Block) {
        self.block_with(j, g, s, block, self.sums.sums::<AVX2>(), self.rows.out::<AVX2>(), context_dot);
    }

    #[inline(always)]
    #[allow(clippy::too_many_arguments)] // the block, its outputs and its build's three kernels
    fn block_with(
        &self,
        j: usize,
        g: &mut [f32],
        s: &mut [f32],
        block: &mut Block,
        mut row_sums: impl RowSums,
        row_out: impl RowOut,
        dot: impl ContextDot,
    ) {
        let mut loss = LossSum::new();
        let base = self.sums.prim_start[j * ROW_BLOCK] as usize;
        self.sums.block_shifts(j, &mut block.shifts, dot);
        for (i, s_row) in s.chunks_exact_mut(self.rows.v).enumerate() {
            let r = j * ROW_BLOCK + i;
            self.sums.row(r, &mut g[base..], base, block, &mut loss, &mut row_sums);
            self.rows.row(r, g, !self.marks.is_marked(r), s_row, block, &row_out);
        }
        block.loss = loss.total();
    }
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::context_dot;

    /// The AVX-512 build of the context logit's product sum is the portable one bit for bit,
    /// at widths below, at and past one and two sixteen-lane chunks, over values of mixed
    /// signs and magnitudes (so every reordering of the sums would show). Skips, saying so,
    /// where the CPU lacks AVX-512F.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_avx512_context_dot_is_the_portable_one_bitwise() {
        if !std::arch::is_x86_feature_detected!("avx512f") {
            println!("skipped: this CPU has no AVX-512F");
            return;
        }
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        for k in [1, 3, 15, 16, 17, 20, 31, 32, 33, 47, 64] {
            for _ in 0..200 {
                let mut row = || {
                    (0..k)
                        .map(|_| rng.random_range(-1.0f32..1.0) * 10f32.powi(rng.random_range(-3..4)))
                        .collect::<Vec<_>>()
                };
                let (a, c, w) = (row(), row(), row());
                // SAFETY: AVX-512F detected above; the three rows have the same length.
                let got = unsafe { super::simd512::context_dot(&a, &c, &w) };
                assert_eq!(got.to_bits(), context_dot(&a, &c, &w).to_bits(), "k = {k}");
            }
        }
    }

    /// The context logit's product sum is `(a + c) . w` to within f32 rounding of an f64
    /// reference, symmetric in `a` and `c` bit for bit (a primary in either row gives the
    /// same loss), and exact where every partial sum is representable: at lengths below,
    /// at, and past one sixteen-lane chunk, with a tail.
    #[test]
    fn context_dot_is_the_symmetric_sum_of_products() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        for k in [1, 4, 15, 16, 17, 20, 32, 37, 64] {
            for _ in 0..50 {
                let mut row = || (0..k).map(|_| rng.random_range(-1.0f32..1.0)).collect::<Vec<_>>();
                let (a, c, w) = (row(), row(), row());
                let got = context_dot(&a, &c, &w);
                assert_eq!(got.to_bits(), context_dot(&c, &a, &w).to_bits(), "k = {k}: not symmetric");
                let want: f64 = (0..k).map(|i| (a[i] as f64 + c[i] as f64) * w[i] as f64).sum();
                let scale: f64 =
                    (0..k).map(|i| ((a[i] as f64).abs() + (c[i] as f64).abs()) * (w[i] as f64).abs()).sum();
                assert!((got as f64 - want).abs() <= 1e-6 * scale.max(1.0), "k = {k}: {got} vs {want}");
            }
            // Small integers: every sum exact, so any order gives the product sum exactly.
            let ints = |m: usize| (0..k).map(|i| ((i * m) % 7) as f32 - 3.0).collect::<Vec<_>>();
            let (a, c, w) = (ints(1), ints(3), ints(5));
            let want: f32 = (0..k).map(|i| (a[i] + c[i]) * w[i]).sum();
            assert_eq!(context_dot(&a, &c, &w), want, "k = {k}");
        }
    }
}
