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
//! in the row of its first context token (`Y[a]` stays in L1 while the row's examples stream
//! their `Y[c]`); the second adds `g Y[c]` into an accumulator that stays in L1 and writes each
//! touched row of `S` once. The per-example form wrote `dz` and read-modify-wrote `db`, `S[a]`
//! and `S[c]`, five rows from L2 or L3 at V = 1,000; computing `Z` in both rows (one phase)
//! measured 5.48 ms an epoch at P0 top-200 against 4.83 for two phases (ml-100k, 1 thread,
//! medians of 5 alternating runs). The target's logit `z_t` comes
//! from the rows of `E` and `W` (`k` products each), not from two scattered elements of `P`.
//!
//! A loss-only pass (validation) runs the first phase alone.
//!
//! **Determinism:** rows go in fixed blocks of [`ROW_BLOCK`] (a function of V only); a row's
//! entries are in example order; the blocks' loss and `db` partials are summed in block order.
//! Any thread count gives the same bits.
//!
//! Examples of another shape (one context token at a sequence's ends) and those whose `Z` falls
//! below [`PAIR_SUM_FLOOR`] (the products could underflow) are left in [`PairRows::direct`]
//! for the per-example kernel, which computes them from the logits.

use rayon::prelude::*;

use super::lane::{Lane, RowMarks, Weights};
#[cfg(target_arch = "x86_64")]
use super::simd512;
use super::softmax::{hidden_tokens, positives_of, ExamplePass, Isa, PairTables, Row, PAIR_SUM_FLOOR};
use super::Architecture;

/// Rows of `S` a block of the row pass owns.
pub(crate) const ROW_BLOCK: usize = 32;

/// Examples whose sums `Z` share one logarithm in the loss.
const LOG_GROUP: usize = 8;

/// One example as seen from one of its two context rows.
#[derive(Debug, Clone, Copy, Default)]
struct Entry {
    /// The other context token.
    partner: u32,
    /// The target.
    target: u32,
    /// The example's id.
    example: u32,
    /// Whether this row is the example's first context token (its `Z`, `g`, loss and
    /// fallback are computed there, once).
    primary: bool,
    /// The index of the example's primary entry (its own, when primary).
    twin: u32,
    /// `g = scale / Z` (primary entries, after the first phase; NaN: the example falls back).
    g: f32,
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
    /// The row in hand's primary entries' partners and their sums `Z` (first phase).
    partners: Vec<u32>,
    sums: Vec<f32>,
    /// The row in hand's `(g, partner)` terms (second phase, AVX-512).
    terms: Vec<(f32, u32)>,
}

/// Reused buffers of the row pass; [`PairRows::direct`] holds, after [`PairRows::run`], the
/// examples left to the per-example kernel.
#[derive(Debug, Clone, Default)]
pub(crate) struct PairRows {
    /// `start[r]..start[r + 1]`: row `r`'s entries.
    start: Vec<u32>,
    entries: Vec<Entry>,
    /// Where the next entry of each row goes while filling.
    cursor: Vec<u32>,
    /// The two-token examples in `ids` order: `[example, a, c, t]`.
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
    /// Every `isa` gives the same bits.
    pub(crate) fn run(
        &mut self,
        pass: &ExamplePass<'_>,
        tables: &PairTables,
        wts: &Weights<'_>,
        ids: &[u32],
        lane: &mut Lane,
        isa: Isa,
    ) -> f64 {
        debug_assert_eq!(pass.arch, Architecture::Cbow);
        let v = wts.v;
        self.index(pass, ids, v);
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
        // Phase 1: every example's `Z`, `g` and loss in its primary entry, blocks in parallel
        // over their own entries.
        let mut rest = &mut self.entries[..];
        let mut chunks = Vec::with_capacity(n_blocks);
        for j in 0..n_blocks {
            let end = self.start[((j + 1) * ROW_BLOCK).min(v)] - self.start[j * ROW_BLOCK];
            let (chunk, tail) = std::mem::take(&mut rest).split_at_mut(end as usize);
            chunks.push(chunk);
            rest = tail;
        }
        let start = &self.start[..];
        let sums = SumPass { pass, tables, wts, start, v };
        let phase1 = |(j, (entries, block)): (usize, (&mut [Entry], &mut Block))| match isa {
            // SAFETY: `Isa::supported` found AVX2 (and AVX-512F) on this CPU.
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => unsafe { sums.block_avx2(j, entries, block) },
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => unsafe { sums.block_avx512(j, entries, block) },
            _ => sums.block::<false>(j, entries, block),
        };
        if n_blocks == 1 {
            phase1((0, (chunks.pop().expect("one block"), &mut self.blocks[0])));
        } else {
            chunks.into_par_iter().zip(self.blocks[..n_blocks].par_iter_mut()).enumerate().for_each(phase1);
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
        // Phase 2: the rows' sums into `S` and `db`.
        let entries = &self.entries[..];
        let rows = RowPass { tables, start, entries, v, scale: pass.scale, marks: &lane.e_rows };
        let work = |(j, (s, block)): (usize, (&mut [f32], &mut Block))| match isa {
            // SAFETY: `Isa::supported` found AVX2 (and AVX-512F) on this CPU.
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => unsafe { rows.block_avx2(j, s, block) },
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => unsafe { rows.block_avx512(j, s, block) },
            _ => rows.block::<false>(j, s, block),
        };
        let s = &mut lane.s[..v * v];
        if n_blocks == 1 {
            work((0, (s, &mut self.blocks[0])));
        } else {
            s.par_chunks_mut(ROW_BLOCK * v)
                .zip(self.blocks[..n_blocks].par_iter_mut())
                .enumerate()
                .for_each(work);
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
        for en in self.entries.iter().filter(|en| en.primary && !en.g.is_nan()) {
            lane.db[en.target as usize] -= pass.scale;
        }
        loss
    }

    /// Splits `ids` into two-token examples (listed in `two_token` and indexed by row into
    /// `entries`) and the rest (`direct`).
    fn index(&mut self, pass: &ExamplePass<'_>, ids: &[u32], v: usize) {
        self.direct.clear();
        self.two_token.clear();
        for &e in ids {
            let rows = hidden_tokens(pass.arch, pass.reduce, pass.ex, e as usize).0;
            match (rows, positives_of(pass.arch, pass.ex, e as usize)) {
                (&[a, c], &[t]) => self.two_token.push([e, a, c, t]),
                _ => self.direct.push(e),
            }
        }
        self.start.clear();
        self.start.resize(v + 1, 0);
        for &[_, a, c, _] in &self.two_token {
            self.start[a as usize + 1] += 1;
            self.start[c as usize + 1] += 1;
        }
        for r in 0..v {
            self.start[r + 1] += self.start[r];
        }
        self.cursor.clear();
        self.cursor.extend_from_slice(&self.start[..v]);
        self.entries.clear();
        self.entries.resize(self.start[v] as usize, Entry::default());
        for &[example, a, c, target] in &self.two_token {
            let twin = self.cursor[a as usize];
            for (row, partner, primary) in [(a, c, true), (c, a, false)] {
                let at = &mut self.cursor[row as usize];
                self.entries[*at as usize] = Entry { partner, target, example, primary, twin, g: f32::NAN };
                *at += 1;
            }
        }
    }
}

/// What every block of the first phase reads.
struct SumPass<'a> {
    pass: &'a ExamplePass<'a>,
    tables: &'a PairTables,
    wts: &'a Weights<'a>,
    start: &'a [u32],
    v: usize,
}

impl SumPass<'_> {
    /// [`block`](Self::block) compiled for AVX2.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn block_avx2(&self, j: usize, entries: &mut [Entry], block: &mut Block) {
        self.block::<true>(j, entries, block);
    }

    /// [`block`](Self::block) with the sums of [`simd512::pair_sums`] (four examples at a
    /// time; the same bits).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx2")]
    unsafe fn block_avx512(&self, j: usize, entries: &mut [Entry], block: &mut Block) {
        let (table, v) = (self.tables.table(), self.v);
        self.block_with(j, entries, block, |x, partners, out| {
            // SAFETY: the caller guarantees AVX-512F; partners are tokens `< v`.
            unsafe { simd512::pair_sums(x, partners, table, v, out) }
        });
    }

    /// The target's logit `z_t = f E[a] W[t] + (f E[c] W[t] + b_t)` of the example of the
    /// primary entry `en` of row `a`, from the tables' rows (in cache) rather than from two
    /// scattered elements of `P = E W^T`; the same value as `P`'s up to rounding.
    #[inline(always)]
    fn target_logit(&self, a: usize, en: &Entry) -> f32 {
        let (w, k, f) = (self.wts, self.wts.k, self.tables.weight());
        let (c, t) = (en.partner as usize, en.target as usize);
        let w_t = &w.w[t * k..(t + 1) * k];
        let p = |i: usize| crate::mf::dot(&w.e[i * k..(i + 1) * k], w_t);
        f * p(a) + (f * p(c) + w.b[t])
    }

    /// Rows `j ROW_BLOCK ..` (their entries in `entries`): each primary entry's `Z`, `g` and
    /// loss. The loss's logarithms are taken of products of [`LOG_GROUP`] sums at a time, in
    /// f64 (each sum lies in `[1e-20, V]`, so no product of eight leaves f64's range): one
    /// logarithm for eight examples.
    #[inline(always)]
    fn block<const AVX2: bool>(&self, j: usize, entries: &mut [Entry], block: &mut Block) {
        let t = self.tables;
        self.block_with(j, entries, block, |x, partners, out| {
            for (z, &c) in out.iter_mut().zip(partners) {
                *z = Row::<AVX2>::pair_sum(x, t.y_row(c as usize));
            }
        });
    }

    /// [`block`](Self::block) with the row's sums from `row_sums(Y[r], partners, out)`.
    #[inline(always)]
    fn block_with(
        &self,
        j: usize,
        entries: &mut [Entry],
        block: &mut Block,
        mut row_sums: impl FnMut(&[f32], &[u32], &mut [f32]),
    ) {
        let (t, scale) = (self.tables, self.pass.scale);
        let (mut product, mut factors, mut loss) = (1.0f64, 0, 0.0f64);
        let base = self.start[j * ROW_BLOCK];
        let Block { partners, sums, fallback, .. } = block;
        for r in j * ROW_BLOCK..((j + 1) * ROW_BLOCK).min(self.v) {
            let row = &mut entries[(self.start[r] - base) as usize..(self.start[r + 1] - base) as usize];
            partners.clear();
            partners.extend(row.iter().filter(|en| en.primary).map(|en| en.partner));
            sums.clear();
            sums.resize(partners.len(), 0.0);
            row_sums(t.y_row(r), partners, sums);
            for (en, &z) in row.iter_mut().filter(|en| en.primary).zip(sums.iter()) {
                if z.is_nan() || z < PAIR_SUM_FLOOR {
                    fallback.push(en.example);
                    en.g = f32::NAN;
                    continue;
                }
                loss += (t.shift(r, en.partner as usize) - self.target_logit(r, en)) as f64;
                product *= z as f64;
                factors += 1;
                if factors == LOG_GROUP {
                    loss += product.ln();
                    (product, factors) = (1.0, 0);
                }
                en.g = scale / z;
            }
        }
        block.loss = loss + product.ln();
    }
}

/// What every block of the second phase reads.
struct RowPass<'a> {
    tables: &'a PairTables,
    start: &'a [u32],
    entries: &'a [Entry],
    v: usize,
    scale: f32,
    /// The lane's rows of `S` that already hold values (the others are stale and count as
    /// zero: written, not added to).
    marks: &'a RowMarks,
}

impl RowPass<'_> {
    /// [`block`](Self::block) compiled for AVX2.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn block_avx2(&self, j: usize, s: &mut [f32], block: &mut Block) {
        self.block::<true>(j, s, block);
    }

    /// [`block`](Self::block) with [`simd512::row_sums_out`]'s register tiles (the same bits).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx2")]
    unsafe fn block_avx512(&self, j: usize, s: &mut [f32], block: &mut Block) {
        let (v, t) = (self.v, self.tables);
        let f = t.weight();
        self.block_with(j, s, &mut block.db, &mut block.terms, |terms, x, s_row, db, fresh| {
            // SAFETY: the caller guarantees AVX-512F; partners are tokens `< v`.
            unsafe { simd512::row_sums_out(terms, t.table(), v, x, f, s_row, db, fresh) }
        });
    }

    /// Rows `j ROW_BLOCK ..` (their `S` rows in `s`): per row `acc = sum g Y[partner]` over its
    /// entries (`g` read from each example's primary entry), then `S[r] += f Y[r] acc`, the
    /// block's `db` partial, and `S[r][t] -= f scale` per entry.
    #[inline(always)]
    fn block<const AVX2: bool>(&self, j: usize, s: &mut [f32], block: &mut Block) {
        let (t, f) = (self.tables, self.tables.weight());
        let acc = &mut block.acc;
        self.block_with(j, s, &mut block.db, &mut block.terms, |terms, x, s_row, db, fresh| {
            if fresh {
                s_row.fill(0.0);
            }
            acc.iter_mut().for_each(|a| *a = 0.0);
            for &(g, c) in terms {
                Row::<AVX2>::axpy(g, t.y_row(c as usize), acc);
            }
            Row::<AVX2>::row_out(x, acc, f, s_row, db);
        });
    }

    /// [`block`](Self::block) with each row's `S[r] += f Y[r] acc` and `db` partial from
    /// `row_out(terms, Y[r], S[r], db, fresh)`, `terms` the row's `(g, partner)` in entry order,
    /// `fresh` when `S[r]` is stale (not yet marked: it counts as zero).
    #[inline(always)]
    fn block_with(
        &self,
        j: usize,
        s: &mut [f32],
        db: &mut [f32],
        terms: &mut Vec<(f32, u32)>,
        mut row_out: impl FnMut(&[(f32, u32)], &[f32], &mut [f32], &mut [f32], bool),
    ) {
        let (v, t) = (self.v, self.tables);
        let f_scale = t.weight() * self.scale;
        for (i, s_row) in s.chunks_exact_mut(v).enumerate() {
            let r = j * ROW_BLOCK + i;
            let entries = &self.entries[self.start[r] as usize..self.start[r + 1] as usize];
            if entries.is_empty() {
                continue;
            }
            terms.clear();
            terms.extend(entries.iter().filter_map(|en| {
                let g = self.entries[en.twin as usize].g;
                (!g.is_nan()).then_some((g, en.partner))
            }));
            row_out(terms, t.y_row(r), s_row, db, !self.marks.is_marked(r));
            for en in entries {
                if !self.entries[en.twin as usize].g.is_nan() {
                    s_row[en.target as usize] -= f_scale;
                }
            }
        }
    }
}
