//! The per-lane types the item2vec kernels share: borrowed table views ([`Weights`]), touched-row
//! marks ([`RowMarks`]), a lane's reused scratch and partial gradients ([`Lane`]) and the chunk
//! sizes they are sized by (`Weights::new`, which reads the tables by their ids, lives with
//! `Item2VecTables` in `objective.rs`). The objective owns the lanes; the full-softmax (`softmax.rs`) and
//! negative-sampling (`negative.rs`) kernels fill them. Its own module so that neither kernel
//! depends on the objective that calls it.

/// Rows per matrix-product chunk.
pub const CHUNK: usize = 256;

/// Examples per block of the projected kernel's staged loop.
pub(crate) const PROJECTED_BLOCK: usize = 16;

/// Borrowed views of the three tables.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Weights<'a> {
    pub e: &'a [f32],
    pub w: &'a [f32],
    pub b: &'a [f32],
    pub v: usize,
    pub k: usize,
}

/// Rows marked since the last clear.
#[derive(Debug, Clone, Default)]
pub(crate) struct RowMarks {
    flags: Vec<bool>,
    pub rows: Vec<u32>,
}

impl RowMarks {
    /// Marks row `r`; true when it was not marked before.
    #[inline]
    pub(crate) fn mark(&mut self, r: u32) -> bool {
        let f = &mut self.flags[r as usize];
        let new = !*f;
        if new {
            *f = true;
            self.rows.push(r);
        }
        new
    }

    /// Whether row `r` is marked.
    #[inline]
    pub(crate) fn is_marked(&self, r: usize) -> bool {
        self.flags[r]
    }

    pub(crate) fn resize(&mut self, n: usize) {
        if self.flags.len() != n {
            self.flags = vec![false; n];
            self.rows.clear();
        }
    }

    pub(crate) fn clear(&mut self) {
        for &r in &self.rows {
            self.flags[r as usize] = false;
        }
        self.rows.clear();
    }
}

/// Scratch and partial gradients of one lane; sized once, reused every batch.
#[derive(Debug, Clone, Default)]
pub(crate) struct Lane {
    /// Hidden vectors of a chunk (CHUNK x k); in the projected backward, the gathered rows of
    /// `E` (m x k).
    pub h: Vec<f32>,
    /// Their gradients (CHUNK x k); in the projected backward, the gathered rows of `dE`.
    pub dh: Vec<f32>,
    /// Logits / dz of a chunk (CHUNK x V; chunked softmax) or of a block of examples
    /// (PROJECTED_BLOCK x V; projected).
    pub z: Vec<f32>,
    /// `S` of the projected softmax (V x V): per context token, the weighted sum of the `dz`
    /// of the examples it appears in. Only the rows marked in `e_rows` hold values; the others
    /// are stale (a row is zeroed, or written whole, when first marked), so no batch pays a
    /// `V x V` clear.
    pub s: Vec<f32>,
    /// The marked rows of `S`, gathered for the projected backward products (m x V).
    pub s_rows: Vec<f32>,
    /// Partial gradient of `out_weight` (V x k).
    pub dw: Vec<f32>,
    /// The AVX-512 backward products' scratch: a 128-row chunk of `S` in 16-column strips,
    /// and `dW^T` (k x V) while it is summed.
    pub strips: Vec<f32>,
    pub dw_t: Vec<f32>,
    /// Partial gradient of `out_bias` (V).
    pub db: Vec<f32>,
    /// Partial gradient of `embedding` (V x k).
    pub de: Vec<f32>,
    /// Rows of `out_weight`/`out_bias` touched (negative sampling).
    pub w_rows: RowMarks,
    /// Rows of `embedding` touched.
    pub e_rows: RowMarks,
    /// Loss sum of the lane.
    pub loss: f64,
}

impl Lane {
    pub(crate) fn ensure(&mut self, v: usize, k: usize, softmax: bool) {
        let grow = |b: &mut Vec<f32>, n: usize| {
            if b.len() != n {
                *b = vec![0.0; n];
            }
        };
        grow(&mut self.h, CHUNK * k);
        grow(&mut self.dh, CHUNK * k);
        if softmax {
            grow(&mut self.z, CHUNK * v);
        }
        grow(&mut self.dw, v * k);
        grow(&mut self.db, v);
        grow(&mut self.de, v * k);
        self.w_rows.resize(v);
        self.e_rows.resize(v);
    }

    /// Buffers of the projected softmax (no chunk scratch).
    pub(crate) fn ensure_projected(&mut self, v: usize, k: usize) {
        if self.z.len() < PROJECTED_BLOCK * v {
            self.z = vec![0.0; PROJECTED_BLOCK * v];
        }
        if self.s.len() != v * v {
            self.s = vec![0.0; v * v];
        }
        for (b, n) in [(&mut self.dw, v * k), (&mut self.db, v), (&mut self.de, v * k)] {
            if b.len() != n {
                *b = vec![0.0; n];
            }
        }
        self.w_rows.resize(v);
        self.e_rows.resize(v);
    }
}
