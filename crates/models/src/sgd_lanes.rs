//! Deterministic lanes of sparse per-sample SGD (bpr, item2vec's `pair_sgd`): each lane copies a
//! row of a shared table into its own scratch on first touch ([`LaneTable`]) and runs plain
//! sequential SGD there; at a sync point [`merge`] folds every lane's copies back into the table
//! in lane order, `first lane's copy + sum over the later lanes (copy - row)`, parallel over rows.
//! The lane count and each lane's samples are fixed by the caller from the data alone, so the
//! tables are bitwise identical for any thread count; nothing is proportional to the table per
//! sync point (only the rows touched).
//!
//! **Architecture Invariant:** a [`LaneTable`] is aligned to 128 bytes (two cache
//! lines, the pair the adjacent-line prefetcher fetches together), so the `Vec` headers a lane
//! writes on every first touch (`rows`, `work` lengths) never share a cache line with another
//! lane's. Unpadded, the tables of lanes that sit side by side in a `Vec` and run on different
//! threads shared lines: every first touch in one lane invalidated the line the other lane reads
//! on every sample (its `work` pointer), and bpr at 2 threads spent about twice the CPU time of 1
//! thread when the allocation happened to put a lane boundary inside a line.

use rayon::prelude::*;

use crate::item2vec::lane::RowMarks;

const NONE: u32 = u32::MAX;

/// A lane's copies of the rows of one table it touched in the current step (aligned to 128
/// bytes, see the module doc).
#[derive(Debug, Default)]
#[repr(align(128))]
pub(crate) struct LaneTable {
    /// Slot of each row (`NONE` when untouched).
    slot: Vec<u32>,
    /// Rows in first-touch order.
    pub(crate) rows: Vec<u32>,
    /// Their copies, slot-major (a lane reads and writes them at the offsets `touch` gives).
    pub(crate) work: Vec<f32>,
}

impl LaneTable {
    /// An empty lane table over `rows` rows.
    pub(crate) fn new(rows: usize) -> Self {
        LaneTable { slot: vec![NONE; rows], rows: Vec::new(), work: Vec::new() }
    }

    /// The offset of row `r`'s copy, copying it from `shared` on first touch.
    #[inline(always)]
    pub(crate) fn touch(&mut self, r: u32, shared: &[f32], width: usize) -> usize {
        let s = &mut self.slot[r as usize];
        if *s == NONE {
            *s = self.rows.len() as u32;
            self.rows.push(r);
            self.work.extend_from_slice(&shared[r as usize * width..][..width]);
        }
        *s as usize * width
    }

    /// Row `r`: the lane's copy when it has one, else the shared row (nothing is copied).
    #[inline(always)]
    pub(crate) fn read<'a>(&'a self, r: u32, shared: &'a [f32], width: usize) -> &'a [f32] {
        match self.slot[r as usize] {
            NONE => &shared[r as usize * width..][..width],
            s => &self.work[s as usize * width..][..width],
        }
    }

    /// Forgets every copy (O(rows touched)).
    pub(crate) fn clear(&mut self) {
        for &r in &self.rows {
            self.slot[r as usize] = NONE;
        }
        self.rows.clear();
        self.work.clear();
    }
}

/// Merges the lanes' copies of one table into `table`: every touched row
/// becomes `first copy + sum over later lanes (copy - row)`, in lane order. Returns whether every merged
/// value is finite.
pub(crate) fn merge(
    table: &mut [f32],
    width: usize,
    parts: &[&LaneTable],
    marks: &mut RowMarks,
    out: &mut Vec<f32>,
) -> bool {
    for part in parts {
        for &r in &part.rows {
            marks.mark(r);
        }
    }
    out.clear();
    out.resize(marks.rows.len() * width, 0.0);
    let base: &[f32] = table;
    out.par_chunks_mut(width).zip(marks.rows.par_iter()).with_min_len(64).for_each(|(o, &r)| {
        let row = &base[r as usize * width..][..width];
        let mut first = true;
        for part in parts {
            let s = part.slot[r as usize];
            if s != NONE {
                let copy = &part.work[s as usize * width..][..width];
                if first {
                    o.copy_from_slice(copy);
                    first = false;
                } else {
                    for ((o, &c), &b) in o.iter_mut().zip(copy).zip(row) {
                        *o += c - b;
                    }
                }
            }
        }
    });
    for (o, &r) in out.chunks_exact(width).zip(&marks.rows) {
        table[r as usize * width..][..width].copy_from_slice(o);
    }
    marks.clear();
    out.iter().all(|x| x.is_finite())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The alignment the module doc promises.
    const LANE_ALIGN: usize = 128;

    #[test]
    fn lane_tables_side_by_side_never_share_a_cache_line() {
        assert_eq!(std::mem::align_of::<LaneTable>(), LANE_ALIGN);
        let lanes: Vec<[LaneTable; 2]> = (0..4).map(|_| [LaneTable::new(3), LaneTable::new(5)]).collect();
        let line = |t: &LaneTable| t as *const LaneTable as usize / LANE_ALIGN;
        let end_line = |t: &LaneTable| {
            (t as *const LaneTable as usize + std::mem::size_of::<LaneTable>() - 1) / LANE_ALIGN
        };
        for pair in lanes.windows(2) {
            assert!(end_line(&pair[0][1]) < line(&pair[1][0]));
        }
    }
}
