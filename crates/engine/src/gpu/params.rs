//! Device copies of a [`ParamStore`] and its gradient buffers.
//!
//! [`GpuParams`] mirrors the store table by table (same order, same [`TableId`]s, row-major
//! f32). [`GpuGrads`] holds one gradient buffer per table plus, per row, a `touched` flag
//! (u32, 0 or 1) that a model's backward kernel sets when it writes a row; the lazy optimizer
//! reads the flags, and every optimizer kernel zeroes the gradient and the flags it consumed, so
//! the buffers are clean for the next batch without a separate pass.

use cudarc::driver::CudaSlice;

use super::Gpu;
use crate::params::{GradKind, ParamStore, TableId};
use crate::EngineError;

/// One table on the device.
#[derive(Debug)]
pub struct GpuTable {
    /// Name (as in the [`ParamStore`]).
    pub name: String,
    /// Rows.
    pub rows: usize,
    /// Columns.
    pub cols: usize,
    /// How gradients arrive.
    pub grad_kind: GradKind,
    /// `rows * cols` values, row-major.
    pub data: CudaSlice<f32>,
}

/// All tables of a model on the device.
#[derive(Debug)]
pub struct GpuParams {
    tables: Vec<GpuTable>,
}

impl GpuParams {
    /// Copies every table of `params` to the device.
    pub fn upload(gpu: &Gpu, params: &ParamStore) -> Result<Self, EngineError> {
        let tables = params
            .tables()
            .iter()
            .map(|t| {
                Ok(GpuTable {
                    name: t.name.clone(),
                    rows: t.rows,
                    cols: t.cols,
                    grad_kind: t.grad_kind,
                    data: gpu.upload(&t.data, &format!("parameter table {}", t.name))?,
                })
            })
            .collect::<Result<Vec<_>, EngineError>>()?;
        Ok(Self { tables })
    }

    /// Copies the device values back into `params` (same tables, same shapes).
    pub fn download_into(&self, gpu: &Gpu, params: &mut ParamStore) -> Result<(), EngineError> {
        if params.tables().len() != self.tables.len() {
            return Err(EngineError::ShapeMismatch {
                what: "parameter tables".to_string(),
                expected: self.tables.len(),
                actual: params.tables().len(),
            });
        }
        for (host, dev) in params.tables_mut().iter_mut().zip(&self.tables) {
            if host.data.len() != dev.rows * dev.cols {
                return Err(EngineError::ShapeMismatch {
                    what: format!("table {}", dev.name),
                    expected: dev.rows * dev.cols,
                    actual: host.data.len(),
                });
            }
            host.data = gpu.download(&dev.data, dev.rows * dev.cols, &format!("table {}", dev.name))?;
        }
        Ok(())
    }

    /// A device-to-device copy (for keeping the best epoch's weights without a host trip).
    pub fn duplicate(&self, gpu: &Gpu) -> Result<Self, EngineError> {
        let tables =
            self.tables
                .iter()
                .map(|t| {
                    let data = gpu.stream().clone_dtod(&t.data).map_err(|e| {
                        super::driver_error(format!("copying table {} on the device", t.name), e)
                    })?;
                    Ok(GpuTable {
                        name: t.name.clone(),
                        rows: t.rows,
                        cols: t.cols,
                        grad_kind: t.grad_kind,
                        data,
                    })
                })
                .collect::<Result<Vec<_>, EngineError>>()?;
        Ok(Self { tables })
    }

    /// Overwrites these tables with `other`'s values (same shapes), on the device.
    pub fn copy_from(&mut self, gpu: &Gpu, other: &GpuParams) -> Result<(), EngineError> {
        for (dst, src) in self.tables.iter_mut().zip(&other.tables) {
            gpu.stream()
                .memcpy_dtod(&src.data, &mut dst.data)
                .map_err(|e| super::driver_error(format!("restoring table {} on the device", dst.name), e))?;
        }
        Ok(())
    }

    /// Table `id`.
    pub fn get(&self, id: TableId) -> &GpuTable {
        &self.tables[id.0]
    }

    /// Table `id`, mutable.
    pub fn get_mut(&mut self, id: TableId) -> &mut GpuTable {
        &mut self.tables[id.0]
    }

    /// All tables in store order.
    pub fn tables(&self) -> &[GpuTable] {
        &self.tables
    }

    /// All tables, mutable.
    pub fn tables_mut(&mut self) -> &mut [GpuTable] {
        &mut self.tables
    }

    /// Total number of parameters.
    pub fn num_params(&self) -> usize {
        self.tables.iter().map(|t| t.rows * t.cols).sum()
    }
}

/// Gradient buffer of one table, with a touched flag per row.
#[derive(Debug)]
pub struct GpuGradTable {
    /// Rows.
    pub rows: usize,
    /// Columns.
    pub cols: usize,
    /// `rows * cols` gradient values (zero between batches).
    pub data: CudaSlice<f32>,
    /// One flag per row: 1 when the batch wrote the row (zero between batches).
    pub touched: CudaSlice<u32>,
}

/// Gradient buffers for every table of a [`GpuParams`].
#[derive(Debug)]
pub struct GpuGrads {
    tables: Vec<GpuGradTable>,
}

impl GpuGrads {
    /// Zeroed gradients shaped like `params`.
    pub fn zeros_like(gpu: &Gpu, params: &GpuParams) -> Result<Self, EngineError> {
        let tables = params
            .tables()
            .iter()
            .map(|t| {
                Ok(GpuGradTable {
                    rows: t.rows,
                    cols: t.cols,
                    data: gpu.zeros(t.rows * t.cols, &format!("gradient of {}", t.name))?,
                    touched: gpu.zeros(t.rows, &format!("touched-row flags of {}", t.name))?,
                })
            })
            .collect::<Result<Vec<_>, EngineError>>()?;
        Ok(Self { tables })
    }

    /// Gradient of table `id`.
    pub fn get(&self, id: TableId) -> &GpuGradTable {
        &self.tables[id.0]
    }

    /// Gradient of table `id`, mutable.
    pub fn get_mut(&mut self, id: TableId) -> &mut GpuGradTable {
        &mut self.tables[id.0]
    }

    /// All gradient tables in store order.
    pub fn tables(&self) -> &[GpuGradTable] {
        &self.tables
    }

    /// All gradient tables, mutable.
    pub fn tables_mut(&mut self) -> &mut [GpuGradTable] {
        &mut self.tables
    }

    /// Zeroes every gradient and flag (the optimizer kernels do this as they go; this is for
    /// objectives evaluated without a step, e.g. gradient checks).
    pub fn clear(&mut self, gpu: &Gpu) -> Result<(), EngineError> {
        for t in &mut self.tables {
            gpu.stream()
                .memset_zeros(&mut t.data)
                .map_err(|e| super::driver_error("clearing gradients", e))?;
            gpu.stream()
                .memset_zeros(&mut t.touched)
                .map_err(|e| super::driver_error("clearing gradients", e))?;
        }
        Ok(())
    }
}
