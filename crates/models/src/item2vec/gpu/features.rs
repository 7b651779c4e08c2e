//! Item side features for item2vec on a CUDA device: [`GpuFeatureObjective`], the device twin
//! of [`FeatureObjective`](crate::item2vec::FeatureObjective) (the forms and the chain rule are
//! in `item2vec/features.rs`). Each batch composes `Ẽ = E + mean A_f` and `W̃ = W + mean B_f`
//! into a scratch copy of the parameters with `features_gpu.rs`'s fold (the CPU's f32
//! operations), runs the plain [`GpuItem2VecObjective`] on the composed tables — its gradients
//! of `Ẽ`, `W̃` and the bias land in the id tables' gradients unchanged (`∂Ẽ/∂E = I`) — and
//! scatters `grad Ẽ_i / |F_i|` and `grad W̃_i / |F_i|` to the feature rows (every row of a
//! dense output gradient, the touched rows of a sparse one). Validation composes first too.

use reelvec_data::features::ItemFeatures;
use reelvec_engine::gpu::{CudaSlice, CudaViewMut, Gpu, GpuBatch, GpuGrads, GpuObjective, GpuParams};
use reelvec_engine::{BatchLoss, EngineError, GradKind, TableId};

use super::GpuItem2VecObjective;
use crate::features_gpu::DeviceFeatureCsr;
use crate::item2vec::{FeatureSide, Item2VecTables};
use crate::ModelError;

/// [`GpuItem2VecObjective`] with item side features (see the module doc).
#[derive(Debug)]
pub struct GpuFeatureObjective {
    inner: GpuItem2VecObjective,
    tables: Item2VecTables,
    /// `feature_embedding` (A) and `feature_out_weight` (B).
    input: TableId,
    output: TableId,
    csr: DeviceFeatureCsr,
    /// The composed parameters (a copy of the store made at the first batch; the id tables are
    /// rewritten before every pass, the feature tables are never read).
    composed: Option<GpuParams>,
    /// All-ones row flags: the rows a dense output gradient covers.
    every_row: CudaSlice<u32>,
}

impl GpuFeatureObjective {
    /// Wraps `inner` (whose tables are `tables`) with the feature tables of `side`.
    pub fn new(
        gpu: &Gpu,
        inner: GpuItem2VecObjective,
        tables: Item2VecTables,
        side: &FeatureSide,
    ) -> Result<Self, ModelError> {
        let features: &ItemFeatures = side.features();
        let (input, output) = side.table_ids();
        Ok(Self {
            inner,
            tables,
            input,
            output,
            csr: DeviceFeatureCsr::new(gpu, features)?,
            composed: None,
            every_row: gpu.upload(&vec![1u32; features.n_movies().max(1)], "every-row flags")?,
        })
    }

    /// Writes the composed tables of `params` into the scratch store (made on first use).
    fn compose(&mut self, gpu: &Gpu, params: &GpuParams) -> Result<(), EngineError> {
        if self.composed.is_none() {
            self.composed = Some(params.duplicate(gpu)?);
        }
        let Some(composed) = self.composed.as_mut() else {
            return Err(EngineError::InvalidConfig("item2vec features: no composed tables".into()));
        };
        let t = &self.tables;
        let k = params.get(t.embedding).cols;
        for (id, feat) in [(t.embedding, self.input), (t.out_weight, self.output)] {
            self.csr.enqueue_fold(
                gpu,
                k,
                &params.get(id).data,
                &params.get(feat).data,
                &mut composed.get_mut(id).data,
            )?;
        }
        gpu.stream()
            .memcpy_dtod(&params.get(t.out_bias).data, &mut composed.get_mut(t.out_bias).data)
            .map_err(|e| reelvec_engine::gpu::driver_error("copying the output bias on the device", e))?;
        Ok(())
    }

    /// Adds the feature rows' gradient from the id tables' gradient a batch left in `grads`.
    fn scatter(&self, gpu: &Gpu, params: &GpuParams, grads: &mut GpuGrads) -> Result<(), EngineError> {
        let t = &self.tables;
        let k = params.get(t.embedding).cols;
        let dense_out = params.get(t.out_weight).grad_kind == GradKind::Dense;
        let (mut ge, mut gw, mut ga, mut gb) = (None, None, None, None);
        for (index, table) in grads.tables_mut().iter_mut().enumerate() {
            if index == t.embedding.0 {
                ge = Some(table);
            } else if index == t.out_weight.0 {
                gw = Some(table);
            } else if index == self.input.0 {
                ga = Some(table);
            } else if index == self.output.0 {
                gb = Some(table);
            }
        }
        let (Some(ge), Some(gw), Some(ga), Some(gb)) = (ge, gw, ga, gb) else {
            return Err(EngineError::ShapeMismatch {
                what: "item2vec feature gradient tables".to_string(),
                expected: 4,
                actual: 0,
            });
        };
        self.csr.enqueue_scatter(gpu, k, &ge.touched, &ge.data, &mut ga.data, &mut ga.touched)?;
        let out_rows = if dense_out { &self.every_row } else { &gw.touched };
        self.csr.enqueue_scatter(gpu, k, out_rows, &gw.data, &mut gb.data, &mut gb.touched)?;
        Ok(())
    }
}

impl GpuObjective for GpuFeatureObjective {
    fn train_units(&self) -> usize {
        self.inner.train_units()
    }

    fn enqueue_batch(
        &mut self,
        gpu: &Gpu,
        params: &GpuParams,
        grads: &mut GpuGrads,
        batch: &GpuBatch<'_>,
        loss_sum: &mut CudaViewMut<'_, f64>,
    ) -> Result<u64, EngineError> {
        self.compose(gpu, params)?;
        let Some(composed) = self.composed.as_ref() else {
            return Err(EngineError::InvalidConfig("item2vec features: no composed tables".into()));
        };
        let n = self.inner.enqueue_batch(gpu, composed, grads, batch, loss_sum)?;
        self.scatter(gpu, params, grads)?;
        Ok(n)
    }

    fn validation_loss(&mut self, gpu: &Gpu, params: &GpuParams) -> Result<Option<BatchLoss>, EngineError> {
        self.compose(gpu, params)?;
        let Some(composed) = self.composed.as_ref() else {
            return Err(EngineError::InvalidConfig("item2vec features: no composed tables".into()));
        };
        self.inner.validation_loss(gpu, composed)
    }

    fn loss_name(&self) -> &'static str {
        self.inner.loss_name()
    }

    fn loss_baseline(&self) -> Option<f64> {
        self.inner.loss_baseline()
    }

    fn rows_per_unit(&self) -> Option<usize> {
        self.inner.rows_per_unit()
    }
}
