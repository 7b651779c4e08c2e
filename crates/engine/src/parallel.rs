//! Deterministic parallel gradient accumulation within a batch (the CPU backend's default).
//!
//! [`ParallelAccumulator::accumulate`] splits a batch's units into a fixed number of contiguous
//! chunks, runs a model's per-chunk forward/backward on rayon's pool, each chunk writing sparse
//! row gradients into its own [`ChunkScratch`], then adds the chunks into [`Grads`] in chunk
//! order (one task per table).
//!
//! **Determinism invariant:** the chunk boundaries depend only on the batch length and the
//! accumulator's `n_chunks` (never on the thread count or on scheduling), each chunk is computed
//! sequentially, and every gradient element receives the chunks' contributions in chunk order.
//! So the same seed gives bitwise-identical weights for ANY thread count (stronger than "same
//! seed and thread count").
//! Chunking changes the floating-point summation order relative to a plain serial loop, so
//! results differ from a one-chunk run by rounding; `n_chunks` is therefore part of a model's
//! configuration, not derived from the machine.
//!
//! **Allocation-free:** chunk scratch (row-slot maps, gradient rows, the model's `work` buffers)
//! is created once and reused; after the first batches have grown the buffers to their working
//! size, a step allocates nothing.
//!
//! Lock-free shared-weight training (Hogwild) is not here; it lives in [`crate::hogwild`].

use std::sync::Mutex;

use rayon::prelude::*;

use crate::params::{GradTable, Grads, ParamStore, TableId};
use crate::trainer::BatchLoss;

const NO_SLOT: u32 = u32::MAX;

/// Sparse gradient rows of one table for one chunk: a row -> slot map plus the packed rows in
/// first-touch order.
#[derive(Debug, Clone)]
pub struct SparseRows {
    cols: usize,
    slot_of: Vec<u32>,
    rows: Vec<u32>,
    values: Vec<f32>,
}

impl SparseRows {
    /// Empty accumulator for a `rows x cols` table.
    pub fn new(rows: usize, cols: usize) -> Self {
        Self { cols, slot_of: vec![NO_SLOT; rows], rows: Vec::new(), values: Vec::new() }
    }

    /// The gradient row for table row `r` (zeros on first touch), for accumulation.
    #[inline]
    pub fn row_mut(&mut self, r: usize) -> &mut [f32] {
        let c = self.cols;
        let mut slot = self.slot_of[r];
        if slot == NO_SLOT {
            slot = self.rows.len() as u32;
            self.slot_of[r] = slot;
            self.rows.push(r as u32);
            self.values.resize(self.values.len() + c, 0.0);
        }
        let s = slot as usize;
        &mut self.values[s * c..(s + 1) * c]
    }

    /// Touched rows in first-touch order.
    pub fn touched_rows(&self) -> &[u32] {
        &self.rows
    }

    /// The accumulated gradient of a touched row (None when untouched).
    pub fn row(&self, r: usize) -> Option<&[f32]> {
        let slot = *self.slot_of.get(r)?;
        (slot != NO_SLOT).then(|| &self.values[slot as usize * self.cols..(slot as usize + 1) * self.cols])
    }

    /// Forgets every row (keeps capacity).
    pub fn clear(&mut self) {
        for &r in &self.rows {
            self.slot_of[r as usize] = NO_SLOT;
        }
        self.rows.clear();
        self.values.clear();
    }

    /// Adds every touched row into `dst` (in first-touch order).
    pub fn add_into(&self, dst: &mut GradTable) {
        let c = self.cols;
        for (slot, &r) in self.rows.iter().enumerate() {
            let src = &self.values[slot * c..(slot + 1) * c];
            for (d, &s) in dst.row_mut(r as usize).iter_mut().zip(src) {
                *d += s;
            }
        }
    }
}

/// The gradient scratch of one chunk: one [`SparseRows`] per table, indexed by [`TableId`].
#[derive(Debug, Clone)]
pub struct ChunkGrads {
    tables: Vec<SparseRows>,
}

impl ChunkGrads {
    /// Empty scratch shaped like `params`.
    pub fn zeros_like(params: &ParamStore) -> Self {
        Self { tables: params.tables().iter().map(|t| SparseRows::new(t.rows, t.cols)).collect() }
    }

    /// Gradient row `r` of table `id`, for accumulation.
    #[inline]
    pub fn row_mut(&mut self, id: TableId, r: usize) -> &mut [f32] {
        self.tables[id.0].row_mut(r)
    }

    /// One table's scratch.
    pub fn table(&self, id: TableId) -> &SparseRows {
        &self.tables[id.0]
    }

    /// One table's scratch, mutably.
    pub fn table_mut(&mut self, id: TableId) -> &mut SparseRows {
        &mut self.tables[id.0]
    }

    /// Two different tables' scratch at once (e.g. user and movie factors). Panics when
    /// `a == b` (a programming error).
    pub fn pair_mut(&mut self, a: TableId, b: TableId) -> (&mut SparseRows, &mut SparseRows) {
        assert_ne!(a, b, "pair_mut needs two different tables");
        if a.0 < b.0 {
            let (lo, hi) = self.tables.split_at_mut(b.0);
            (&mut lo[a.0], &mut hi[0])
        } else {
            let (lo, hi) = self.tables.split_at_mut(a.0);
            (&mut hi[0], &mut lo[b.0])
        }
    }

    /// Forgets every touched row of every table.
    pub fn clear(&mut self) {
        self.tables.iter_mut().for_each(SparseRows::clear);
    }

    /// Adds every table into `grads` in table order.
    pub fn add_into(&self, grads: &mut Grads) {
        for (i, t) in self.tables.iter().enumerate() {
            t.add_into(grads.get_mut(TableId(i)));
        }
    }
}

/// Everything one chunk owns while it runs: its gradient rows and the model's own reusable
/// work buffers (`S`, e.g. a hidden vector and a softmax row).
#[derive(Debug, Clone)]
pub struct ChunkScratch<S> {
    /// Sparse gradient rows written by this chunk.
    pub grads: ChunkGrads,
    /// Model-defined reusable buffers.
    pub work: S,
    loss: BatchLoss,
}

/// Runs a batch's forward/backward in `n_chunks` deterministic chunks on rayon's pool.
///
/// Lives inside a model's [`Objective`](crate::Objective) (which takes `&self`): the scratch is
/// behind a mutex taken once per batch. Do not call `accumulate` re-entrantly from inside `f`.
#[derive(Debug)]
pub struct ParallelAccumulator<S = ()> {
    n_chunks: usize,
    min_units_per_chunk: usize,
    chunks: Mutex<Vec<ChunkScratch<S>>>,
}

impl<S: Send + Sync> ParallelAccumulator<S> {
    /// An accumulator with `n_chunks` chunks (at least 1) shaped like `params`, each with its
    /// own `make_work()` buffers.
    pub fn new(params: &ParamStore, n_chunks: usize, mut make_work: impl FnMut() -> S) -> Self {
        let n_chunks = n_chunks.max(1);
        let chunks = (0..n_chunks)
            .map(|_| ChunkScratch {
                grads: ChunkGrads::zeros_like(params),
                work: make_work(),
                loss: BatchLoss::default(),
            })
            .collect();
        Self { n_chunks, min_units_per_chunk: 1, chunks: Mutex::new(chunks) }
    }

    /// Batches shorter than `n_chunks * min_units` run their chunks one after another on the
    /// calling thread (same chunks, same result: only the scheduling changes). Default 1.
    pub fn with_min_units_per_chunk(mut self, min_units: usize) -> Self {
        self.min_units_per_chunk = min_units.max(1);
        self
    }

    /// The configured number of chunks.
    pub fn n_chunks(&self) -> usize {
        self.n_chunks
    }

    /// The chunk boundaries used for a batch of `len` units: `min(n_chunks, len)` contiguous
    /// ranges, chunk `i` covering `[i * len / n, (i + 1) * len / n)`.
    pub fn chunk_bounds(&self, len: usize) -> impl Iterator<Item = std::ops::Range<usize>> {
        let n = self.n_chunks.min(len).max(1);
        (0..n).map(move |i| i * len / n..(i + 1) * len / n)
    }

    /// Calls `f(chunk_units, scratch)` for each chunk of `units` (in parallel when the batch is
    /// large enough), then ADDS every chunk's gradient rows into `grads` in chunk order and
    /// returns the pooled loss (chunk order).
    ///
    /// `f` must write gradients of the WHOLE batch's mean loss (scale by `1 / units.len()`, not
    /// by the chunk length) and must be a deterministic function of its inputs.
    pub fn accumulate<F>(&self, units: &[u32], grads: &mut Grads, f: F) -> BatchLoss
    where
        F: Fn(&[u32], &mut ChunkScratch<S>) -> BatchLoss + Sync,
    {
        // A panic in `f` poisons the mutex; each chunk's scratch is cleared before it runs, so
        // the poisoned state is safe to take over.
        let mut chunks = self.chunks.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let len = units.len();
        let n = self.n_chunks.min(len).max(1);
        let run = |(i, scratch): (usize, &mut ChunkScratch<S>)| {
            scratch.grads.clear();
            scratch.loss = f(&units[i * len / n..(i + 1) * len / n], scratch);
        };
        let used = &mut chunks[..n];
        let parallel = len >= self.n_chunks * self.min_units_per_chunk && rayon::current_num_threads() > 1;
        if parallel {
            used.par_iter_mut().enumerate().for_each(run);
        } else {
            used.iter_mut().enumerate().for_each(run);
        }
        // Reduction: each table on its own task, chunks added in chunk order within a table
        // (the order of additions per element is fixed, so the bits are too).
        let used = &*used;
        let reduce = |(t, g): (usize, &mut GradTable)| {
            for scratch in used {
                scratch.grads.tables[t].add_into(g);
            }
        };
        if parallel {
            grads.tables_mut().par_iter_mut().enumerate().for_each(reduce);
        } else {
            grads.tables_mut().iter_mut().enumerate().for_each(reduce);
        }
        let mut total = BatchLoss::default();
        for scratch in used {
            total.add(scratch.loss);
        }
        total
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::{GradKind, Init};
    use proptest::prelude::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// A synthetic batch: unit `u` adds `contribution(u)` to rows `a[u]` of table 0 and `b[u]` of
    /// table 1 (like MF's user and movie rows), scaled by 1/batch.
    struct Synthetic {
        a: Vec<u32>,
        b: Vec<u32>,
        vals: Vec<f32>,
        cols: usize,
    }

    impl Synthetic {
        fn new(rows: (usize, usize), cols: usize, units: usize, seed: u64) -> (Self, ParamStore) {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let a = (0..units).map(|_| rng.random_range(0..rows.0 as u32)).collect();
            let b = (0..units).map(|_| rng.random_range(0..rows.1 as u32)).collect();
            let vals = (0..units * cols).map(|_| rng.random_range(-1.0f32..1.0)).collect();
            let mut params = ParamStore::new();
            params.add("a", rows.0, cols, GradKind::SparseRows, Init::Zeros, &mut rng).unwrap();
            params.add("b", rows.1, cols, GradKind::SparseRows, Init::Zeros, &mut rng).unwrap();
            (Self { a, b, vals, cols }, params)
        }

        fn unit(&self, u: u32, scale: f32, mut write: impl FnMut(usize, usize, usize, f32)) -> f64 {
            let u = u as usize;
            let mut loss = 0.0;
            for j in 0..self.cols {
                let v = self.vals[u * self.cols + j];
                write(0, self.a[u] as usize, j, scale * v);
                write(1, self.b[u] as usize, j, -scale * v * v);
                loss += (v * v) as f64;
            }
            loss
        }

        fn parallel(&self, acc: &ParallelAccumulator, units: &[u32], grads: &mut Grads) -> BatchLoss {
            let scale = 1.0 / units.len() as f32;
            acc.accumulate(units, grads, |chunk, scratch| {
                let mut loss = BatchLoss::default();
                for &u in chunk {
                    let sum = self.unit(u, scale, |t, r, j, g| {
                        scratch.grads.row_mut(TableId(t), r)[j] += g;
                    });
                    loss.add(BatchLoss::new(sum, 1));
                }
                loss
            })
        }

        /// The specification, serially: per chunk, per-row partial sums from zero; chunks added
        /// to the result in order.
        fn chunked_serial(&self, params: &ParamStore, units: &[u32], n_chunks: usize) -> Vec<Vec<f32>> {
            let scale = 1.0 / units.len() as f32;
            let mut out: Vec<Vec<f32>> = params.tables().iter().map(|t| vec![0.0; t.data.len()]).collect();
            let n = n_chunks.min(units.len()).max(1);
            for i in 0..n {
                let chunk = &units[i * units.len() / n..(i + 1) * units.len() / n];
                let mut part: Vec<Vec<f32>> =
                    params.tables().iter().map(|t| vec![0.0; t.data.len()]).collect();
                for &u in chunk {
                    self.unit(u, scale, |t, r, j, g| part[t][r * self.cols + j] += g);
                }
                for (o, p) in out.iter_mut().zip(&part) {
                    for (o, p) in o.iter_mut().zip(p) {
                        *o += p;
                    }
                }
            }
            out
        }

        fn plain_serial(&self, params: &ParamStore, units: &[u32]) -> Vec<Vec<f32>> {
            let scale = 1.0 / units.len() as f32;
            let mut out: Vec<Vec<f32>> = params.tables().iter().map(|t| vec![0.0; t.data.len()]).collect();
            for &u in units {
                self.unit(u, scale, |t, r, j, g| out[t][r * self.cols + j] += g);
            }
            out
        }
    }

    fn in_pool<T: Send>(threads: usize, f: impl FnOnce() -> T + Send) -> T {
        rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap().install(f)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        #[test]
        fn parallel_chunks_equal_the_chunked_serial_sum_bitwise_for_any_thread_count(
            rows_a in 1usize..40, rows_b in 1usize..40, cols in 1usize..9,
            n_units in 1usize..300, n_chunks in 1usize..9, seed in 0u64..1000,
        ) {
            let (syn, params) = Synthetic::new((rows_a, rows_b), cols, n_units, seed);
            let units: Vec<u32> = (0..n_units as u32).collect();
            let expected = syn.chunked_serial(&params, &units, n_chunks);
            let mut results = Vec::new();
            for threads in [1, 2, 3] {
                let acc = ParallelAccumulator::new(&params, n_chunks, || ());
                let mut grads = Grads::zeros_like(&params);
                // Twice, to check that reused scratch does not leak into the next batch.
                let mut loss = BatchLoss::default();
                for _ in 0..2 {
                    grads.clear();
                    loss = in_pool(threads, || syn.parallel(&acc, &units, &mut grads));
                }
                for (t, exp) in expected.iter().enumerate() {
                    prop_assert_eq!(&grads.get(TableId(t)).data, exp);
                }
                prop_assert_eq!(loss.count, n_units as u64);
                results.push((grads, loss.sum.to_bits()));
            }
            prop_assert!(results.windows(2).all(|w| w[0] == w[1]));
            let plain = syn.plain_serial(&params, &units);
            for (t, p) in plain.iter().enumerate() {
                for (x, y) in grads_of(&results[0].0, t).iter().zip(p) {
                    prop_assert!((x - y).abs() <= 1e-5 * (1.0 + y.abs()), "{} vs {}", x, y);
                }
            }
        }
    }

    fn grads_of(g: &Grads, t: usize) -> &[f32] {
        &g.get(TableId(t)).data
    }

    #[test]
    fn touched_rows_and_pair_access() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut params = ParamStore::new();
        let a = params.add("a", 5, 2, GradKind::SparseRows, Init::Zeros, &mut rng).unwrap();
        let b = params.add("b", 3, 2, GradKind::SparseRows, Init::Zeros, &mut rng).unwrap();
        let mut cg = ChunkGrads::zeros_like(&params);
        let (ta, tb) = cg.pair_mut(b, a);
        tb.row_mut(4)[0] = 1.0;
        ta.row_mut(2)[1] = 2.0;
        cg.row_mut(a, 1)[0] = 3.0;
        assert_eq!(cg.table(a).touched_rows(), &[4, 1]);
        assert_eq!(cg.table(b).row(2), Some(&[0.0, 2.0][..]));
        assert_eq!(cg.table(b).row(0), None);
        let mut grads = Grads::zeros_like(&params);
        cg.add_into(&mut grads);
        cg.add_into(&mut grads);
        assert_eq!(grads.get(a).data, vec![0.0, 0.0, 6.0, 0.0, 0.0, 0.0, 0.0, 0.0, 2.0, 0.0]);
        assert_eq!(grads.get(a).touched_rows(), &[4, 1]);
        cg.clear();
        assert!(cg.table(a).touched_rows().is_empty() && cg.table(a).row(4).is_none());
    }

    #[test]
    fn chunk_bounds_cover_the_batch_contiguously() {
        let params = ParamStore::new();
        let acc: ParallelAccumulator = ParallelAccumulator::new(&params, 4, || ());
        let b: Vec<_> = acc.chunk_bounds(10).collect();
        assert_eq!(b, vec![0..2, 2..5, 5..7, 7..10]);
        assert_eq!(acc.chunk_bounds(2).collect::<Vec<_>>(), vec![0..1, 1..2]);
        assert_eq!(acc.chunk_bounds(0).collect::<Vec<_>>(), vec![0..0]);
    }
}
