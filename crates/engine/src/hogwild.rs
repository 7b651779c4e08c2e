//! Opt-in Hogwild training: several threads update shared parameter tables without locks
//! (Recht et al. 2011; word2vec's trainer). Faster on sparse problems, NOT reproducible.
//!
//! **Architecture Invariant:** this is the only module in reelvec where threads write shared
//! parameters concurrently, and every shared access goes through an [`AtomicU32`] holding the
//! f32's bits with `Ordering::Relaxed`. There is no `UnsafeCell` aliasing and no data race in
//! the Rust sense, so there is no undefined behaviour; what Hogwild gives up is only ordering
//! and atomicity of the read-modify-write: [`HogwildTable::add_row`] is a relaxed load then a
//! relaxed store per element, so a concurrent update of the same element may be lost (the
//! accepted Hogwild trade), and a row read while another thread writes it may mix old and new
//! elements. [`HogwildTable::add_exact`] uses a compare-exchange loop when no update may be lost
//! (sums are then exact up to the order of additions).
//!
//! The atomic view borrows the [`Table`] mutably for its lifetime, so no `&[f32]` to the same
//! memory can exist while threads write through it.
//!
//! The default deterministic path is [`crate::parallel`]; a model offers Hogwild only behind an
//! explicit option and documents the tolerance its results then have.

use std::sync::atomic::{AtomicU32, Ordering};

use rayon::prelude::*;

use crate::params::{ParamStore, Table};
use crate::trainer::BatchLoss;

// `AtomicU32` must have the layout of `u32`/`f32` for the in-place view below.
const _: () = assert!(std::mem::size_of::<AtomicU32>() == std::mem::size_of::<f32>());
const _: () = assert!(std::mem::align_of::<AtomicU32>() == std::mem::align_of::<f32>());

/// A lock-free shared view of one table's values.
#[derive(Debug)]
pub struct HogwildTable<'a> {
    data: &'a [AtomicU32],
    rows: usize,
    cols: usize,
}

impl<'a> HogwildTable<'a> {
    /// Views `table` as atomics, in place (no copy).
    pub fn new(table: &'a mut Table) -> Self {
        let (rows, cols) = (table.rows, table.cols);
        let slice: &'a mut [f32] = &mut table.data;
        // SAFETY: `AtomicU32` has the size and alignment of `f32` (asserted above) and every bit
        // pattern is valid for both. The exclusive borrow of the table guarantees no other
        // reference to this memory exists for 'a; from here on it is only accessed atomically.
        let data = unsafe { &*(slice as *mut [f32] as *const [AtomicU32]) };
        Self { data, rows, cols }
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Number of columns.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Element `i` (row-major).
    #[inline]
    pub fn get(&self, i: usize) -> f32 {
        f32::from_bits(self.data[i].load(Ordering::Relaxed))
    }

    /// Copies row `r` into `out` (elements may come from different moments under contention).
    #[inline]
    pub fn read_row(&self, r: usize, out: &mut [f32]) {
        let src = &self.data[r * self.cols..(r + 1) * self.cols];
        for (o, a) in out.iter_mut().zip(src) {
            *o = f32::from_bits(a.load(Ordering::Relaxed));
        }
    }

    /// `row[r] += alpha * x`, Hogwild style: relaxed load + relaxed store per element
    /// (a concurrent update of the same element may be lost).
    #[inline]
    pub fn add_row(&self, r: usize, alpha: f32, x: &[f32]) {
        let dst = &self.data[r * self.cols..(r + 1) * self.cols];
        for (a, &x) in dst.iter().zip(x) {
            let v = f32::from_bits(a.load(Ordering::Relaxed)) + alpha * x;
            a.store(v.to_bits(), Ordering::Relaxed);
        }
    }

    /// `element[i] += delta` with no lost update (compare-exchange loop).
    #[inline]
    pub fn add_exact(&self, i: usize, delta: f32) {
        let a = &self.data[i];
        let mut current = a.load(Ordering::Relaxed);
        loop {
            let next = (f32::from_bits(current) + delta).to_bits();
            match a.compare_exchange_weak(current, next, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return,
                Err(seen) => current = seen,
            }
        }
    }
}

/// Atomic views of every table of a store, indexed like [`crate::TableId`].
pub fn views(params: &mut ParamStore) -> Vec<HogwildTable<'_>> {
    params.tables_mut().iter_mut().map(HogwildTable::new).collect()
}

/// Runs `f(tables, chunk_index, chunk_units)` over `units` in chunks of `chunk_len` on rayon's
/// pool, every chunk reading and updating the shared tables directly (one Hogwild epoch).
/// `chunk_index` lets `f` seed its own sampling (e.g. negatives) reproducibly per chunk; the
/// weights still depend on scheduling. Returns the pooled loss.
pub fn run<F>(params: &mut ParamStore, units: &[u32], chunk_len: usize, f: F) -> BatchLoss
where
    F: Fn(&[HogwildTable<'_>], usize, &[u32]) -> BatchLoss + Sync,
{
    let tables = views(params);
    units.par_chunks(chunk_len.max(1)).enumerate().map(|(i, chunk)| f(&tables, i, chunk)).reduce(
        BatchLoss::default,
        |mut a, b| {
            a.add(b);
            a
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::{GradKind, Init, TableId};
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn in_pool<T: Send>(threads: usize, f: impl FnOnce() -> T + Send) -> T {
        rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap().install(f)
    }

    #[test]
    fn exact_adds_from_many_threads_lose_nothing() {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let mut params = ParamStore::new();
        params.add("t", 4, 3, GradKind::SparseRows, Init::Zeros, &mut rng).unwrap();
        let units: Vec<u32> = (0..20_000).collect();
        in_pool(4, || {
            run(&mut params, &units, 64, |tables, _, chunk| {
                for &u in chunk {
                    // 0.25 is exact in f32, so every ordering gives the same sum.
                    tables[0].add_exact((u % 12) as usize, 0.25);
                }
                BatchLoss::new(chunk.len() as f64, chunk.len() as u64)
            })
        });
        let t = params.get(TableId(0));
        for (i, &x) in t.data.iter().enumerate() {
            let adds = units.iter().filter(|&&u| u % 12 == i as u32).count();
            assert_eq!(x, adds as f32 * 0.25, "element {i}");
        }
    }

    /// Hogwild SGD on a sparse least-squares problem reaches the serial solution within
    /// tolerance: unit `u` fits `w[a_u] . x_u ~ y_u` for one of many rows `a_u`.
    #[test]
    fn hogwild_sgd_matches_serial_sgd_within_tolerance() {
        let (rows, cols, n) = (50usize, 4usize, 20_000usize);
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let truth: Vec<f32> = (0..rows * cols).map(|_| rng.random_range(-1.0..1.0)).collect();
        let a: Vec<usize> = (0..n).map(|_| rng.random_range(0..rows)).collect();
        let x: Vec<f32> = (0..n * cols).map(|_| rng.random_range(-1.0..1.0)).collect();
        let y: Vec<f32> =
            (0..n).map(|u| (0..cols).map(|j| truth[a[u] * cols + j] * x[u * cols + j]).sum()).collect();
        let lr = 0.1f32;
        let epoch = |tables: &[HogwildTable<'_>], _chunk_index: usize, chunk: &[u32]| {
            let mut w = [0.0f32; 4];
            let mut loss = BatchLoss::default();
            for &u in chunk {
                let u = u as usize;
                tables[0].read_row(a[u], &mut w);
                let xu = &x[u * cols..(u + 1) * cols];
                let r: f32 = w.iter().zip(xu).map(|(w, x)| w * x).sum::<f32>() - y[u];
                tables[0].add_row(a[u], -lr * r, xu);
                loss.add(BatchLoss::new(0.5 * (r * r) as f64, 1));
            }
            loss
        };
        let units: Vec<u32> = (0..n as u32).collect();
        let fresh = || {
            let mut p = ParamStore::new();
            p.add("w", rows, cols, GradKind::SparseRows, Init::Zeros, &mut ChaCha8Rng::seed_from_u64(2))
                .unwrap();
            p
        };
        let (mut serial, mut hogwild) = (fresh(), fresh());
        for _ in 0..5 {
            in_pool(1, || run(&mut serial, &units, n, epoch));
            in_pool(4, || run(&mut hogwild, &units, 256, epoch));
        }
        for ((s, h), t) in serial.get(TableId(0)).data.iter().zip(&hogwild.get(TableId(0)).data).zip(&truth) {
            assert!((s - t).abs() < 1e-3, "serial {s} vs truth {t}");
            assert!((h - s).abs() < 1e-3, "hogwild {h} vs serial {s}");
        }
    }
}
