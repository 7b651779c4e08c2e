//! The parameter store: named, row-major f32 tables (embedding tables, bias vectors, dense
//! layers), and [`Grads`], the matching gradient buffers with touched-row tracking.
//!
//! A bias vector is a table with one column. A dense layer `W (out x in)` is a table with `out`
//! rows. Every table is contiguous so an optimizer step is one pass over memory.

use rand::Rng;
use rand_distr::{Distribution, Normal, Uniform};
use serde::{Deserialize, Serialize};

use crate::EngineError;

/// Index of a table in a [`ParamStore`] (and of its gradient in [`Grads`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TableId(pub usize);

/// How a table's gradient arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum GradKind {
    /// Row-sparse (embedding lookups): only rows a batch touched get non-zero gradient rows.
    SparseRows,
    /// Every element may get a gradient (dense layers).
    Dense,
}

/// Initialisation of a table.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Init {
    /// All zeros.
    Zeros,
    /// One value everywhere.
    Constant(f32),
    /// Normal(mean, std) — PyTorch's `nn.Embedding` default is `Normal { mean: 0, std: 1 }`.
    Normal { mean: f32, std: f32 },
    /// Uniform on `[lo, hi)` — PyTorch's `nn.Linear` default is `±1/sqrt(fan_in)`.
    Uniform { lo: f32, hi: f32 },
}

/// One named parameter table, `rows x cols`, row-major.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Table {
    /// Name used in checkpoints (e.g. `"user_factors"`).
    pub name: String,
    /// Number of rows.
    pub rows: usize,
    /// Number of columns (1 for a bias vector).
    pub cols: usize,
    /// How gradients arrive for this table.
    pub grad_kind: GradKind,
    /// `rows * cols` values, row-major.
    pub data: Vec<f32>,
}

impl Table {
    /// Row `r` as a slice.
    #[inline]
    pub fn row(&self, r: usize) -> &[f32] {
        &self.data[r * self.cols..(r + 1) * self.cols]
    }

    /// Row `r` as a mutable slice.
    #[inline]
    pub fn row_mut(&mut self, r: usize) -> &mut [f32] {
        let c = self.cols;
        &mut self.data[r * c..(r + 1) * c]
    }
}

/// All parameters of a model.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ParamStore {
    tables: Vec<Table>,
}

impl ParamStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a table initialised with `init` drawn from `rng` (row-major order), returning its id.
    ///
    /// Errors when the name is already taken.
    pub fn add<R: Rng + ?Sized>(
        &mut self,
        name: &str,
        rows: usize,
        cols: usize,
        grad_kind: GradKind,
        init: Init,
        rng: &mut R,
    ) -> Result<TableId, EngineError> {
        let n = rows * cols;
        let data = match init {
            Init::Zeros => vec![0.0; n],
            Init::Constant(c) => vec![c; n],
            Init::Normal { mean, std } => {
                let dist = Normal::new(mean, std)
                    .map_err(|e| EngineError::InvalidConfig(format!("table {name}: {e}")))?;
                (0..n).map(|_| dist.sample(rng)).collect()
            }
            Init::Uniform { lo, hi } => {
                let dist = Uniform::new(lo, hi)
                    .map_err(|e| EngineError::InvalidConfig(format!("table {name}: {e}")))?;
                (0..n).map(|_| dist.sample(rng)).collect()
            }
        };
        self.insert(Table { name: name.to_string(), rows, cols, grad_kind, data })
    }

    /// Adds a ready-made table (e.g. loaded from a checkpoint).
    pub fn insert(&mut self, table: Table) -> Result<TableId, EngineError> {
        if self.id(&table.name).is_some() {
            return Err(EngineError::InvalidConfig(format!("table `{}` defined twice", table.name)));
        }
        if table.data.len() != table.rows * table.cols {
            return Err(EngineError::ShapeMismatch {
                what: table.name.clone(),
                expected: table.rows * table.cols,
                actual: table.data.len(),
            });
        }
        self.tables.push(table);
        Ok(TableId(self.tables.len() - 1))
    }

    /// The id of a table by name.
    pub fn id(&self, name: &str) -> Option<TableId> {
        self.tables.iter().position(|t| t.name == name).map(TableId)
    }

    /// A table by id.
    #[inline]
    pub fn get(&self, id: TableId) -> &Table {
        &self.tables[id.0]
    }

    /// A table by id, mutably.
    #[inline]
    pub fn get_mut(&mut self, id: TableId) -> &mut Table {
        &mut self.tables[id.0]
    }

    /// All tables in insertion order.
    pub fn tables(&self) -> &[Table] {
        &self.tables
    }

    /// All tables, mutably.
    pub fn tables_mut(&mut self) -> &mut [Table] {
        &mut self.tables
    }

    /// Total number of scalars.
    pub fn num_params(&self) -> usize {
        self.tables.iter().map(|t| t.data.len()).sum()
    }

    /// True when every value is finite.
    pub fn all_finite(&self) -> bool {
        self.non_finite_table().is_none()
    }

    /// The first table holding a NaN or infinity, if any (a full pass over every value).
    pub fn non_finite_table(&self) -> Option<TableId> {
        self.tables.iter().position(|t| !t.data.iter().all(|x| x.is_finite())).map(TableId)
    }

    /// The first table with a NaN or infinity in a row that `grads` marks touched (cost
    /// proportional to the rows touched; the trainer's per-step guard).
    pub fn non_finite_touched_table(&self, grads: &Grads) -> Option<TableId> {
        self.tables
            .iter()
            .zip(grads.tables())
            .position(|(t, g)| {
                g.touched_rows().iter().any(|&r| !t.row(r as usize).iter().all(|x| x.is_finite()))
            })
            .map(TableId)
    }

    /// Copies every table's values from `other` (same names and shapes), reusing this store's
    /// buffers: the trainer's best-weights snapshot and restore.
    pub fn copy_values_from(&mut self, other: &ParamStore) -> Result<(), EngineError> {
        if self.tables.len() != other.tables.len() {
            return Err(EngineError::ShapeMismatch {
                what: "parameter store (tables)".to_string(),
                expected: self.tables.len(),
                actual: other.tables.len(),
            });
        }
        for (dst, src) in self.tables.iter_mut().zip(&other.tables) {
            if dst.name != src.name || dst.data.len() != src.data.len() {
                return Err(EngineError::ShapeMismatch {
                    what: format!("table `{}` (source `{}`)", dst.name, src.name),
                    expected: dst.data.len(),
                    actual: src.data.len(),
                });
            }
            dst.data.copy_from_slice(&src.data);
        }
        Ok(())
    }
}

/// Gradient buffer of one table: dense storage, plus the rows written since the last clear.
#[derive(Debug, Clone, PartialEq)]
pub struct GradTable {
    /// Same shape as the table.
    pub data: Vec<f32>,
    /// Number of columns.
    pub cols: usize,
    touched: Vec<u32>,
    is_touched: Vec<bool>,
}

impl GradTable {
    /// Marks row `r` touched and returns its gradient row for accumulation.
    #[inline]
    pub fn row_mut(&mut self, r: usize) -> &mut [f32] {
        if !self.is_touched[r] {
            self.is_touched[r] = true;
            self.touched.push(r as u32);
        }
        let c = self.cols;
        &mut self.data[r * c..(r + 1) * c]
    }

    /// Marks every row touched (dense layers) and returns all gradient values.
    pub fn all_mut(&mut self) -> &mut [f32] {
        if self.touched.len() != self.is_touched.len() {
            self.touched.clear();
            self.touched.extend(0..self.is_touched.len() as u32);
            self.is_touched.iter_mut().for_each(|t| *t = true);
        }
        &mut self.data
    }

    /// Rows touched since the last clear, in first-touch order.
    pub fn touched_rows(&self) -> &[u32] {
        &self.touched
    }

    /// Per-row touched flags (`true` for rows in [`touched_rows`](Self::touched_rows)).
    pub fn touched_mask(&self) -> &[bool] {
        &self.is_touched
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.is_touched.len()
    }

    /// Zeroes the touched rows and forgets them (cost proportional to the rows touched).
    pub fn clear(&mut self) {
        let c = self.cols;
        for &r in &self.touched {
            let r = r as usize;
            self.data[r * c..(r + 1) * c].iter_mut().for_each(|g| *g = 0.0);
            self.is_touched[r] = false;
        }
        self.touched.clear();
    }
}

/// Gradient buffers for every table of a [`ParamStore`], indexed by the same [`TableId`]s.
#[derive(Debug, Clone, PartialEq)]
pub struct Grads {
    tables: Vec<GradTable>,
}

impl Grads {
    /// Zeroed buffers shaped like `params`.
    pub fn zeros_like(params: &ParamStore) -> Self {
        let tables = params
            .tables()
            .iter()
            .map(|t| GradTable {
                data: vec![0.0; t.rows * t.cols],
                cols: t.cols,
                touched: Vec::new(),
                is_touched: vec![false; t.rows],
            })
            .collect();
        Self { tables }
    }

    /// The buffer of one table.
    #[inline]
    pub fn get(&self, id: TableId) -> &GradTable {
        &self.tables[id.0]
    }

    /// The buffer of one table, mutably.
    #[inline]
    pub fn get_mut(&mut self, id: TableId) -> &mut GradTable {
        &mut self.tables[id.0]
    }

    /// All buffers.
    pub fn tables(&self) -> &[GradTable] {
        &self.tables
    }

    /// All buffers, mutably (e.g. to reduce into different tables on different threads).
    pub fn tables_mut(&mut self) -> &mut [GradTable] {
        &mut self.tables
    }

    /// Zeroes every touched row of every table.
    pub fn clear(&mut self) {
        self.tables.iter_mut().for_each(GradTable::clear);
    }

    /// True when every touched gradient value is finite.
    pub fn all_finite(&self) -> bool {
        self.non_finite_table().is_none()
    }

    /// The first table with a NaN or infinity in a touched gradient row, if any.
    pub fn non_finite_table(&self) -> Option<TableId> {
        self.tables
            .iter()
            .position(|g| {
                g.touched.iter().any(|&r| {
                    let r = r as usize;
                    !g.data[r * g.cols..(r + 1) * g.cols].iter().all(|x| x.is_finite())
                })
            })
            .map(TableId)
    }
}
