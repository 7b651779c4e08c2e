//! Item side features on a CUDA device: [`DeviceFeatureCsr`], the feature table's CSR on the
//! device and the two launches of `features.cu` every model with features shares — folding a
//! table's feature rows into its item rows (`x̃_i = x_i + mean_{f∈F_i} e_f`) and scattering the
//! item rows' gradient to the feature rows. The model's own kernels run on the folded table
//! unchanged (`∂x̃/∂x = I`). The device twin of `item_features.rs` (the CPU forms and the
//! gradient derivation); this module owns no model: `mf_gpu.rs` and `item2vec/gpu/features.rs`
//! are the users.

use reelvec_data::features::ItemFeatures;
use reelvec_engine::gpu::{grid_for, CudaFunction, CudaSlice, Gpu, KernelSource, PushKernelArg};
use reelvec_engine::EngineError;

use crate::ModelError;

/// `features.cu` (functions `features_fold`, `features_scatter`).
pub(crate) const FEATURES_CU: KernelSource = KernelSource {
    name: "features.cu",
    source: include_str!("features.cu"),
    functions: &["features_fold", "features_scatter"],
};

/// A feature table on the device: the CSR of each item's feature ids and the kernels.
#[derive(Debug)]
pub(crate) struct DeviceFeatureCsr {
    n_rows: usize,
    offsets: CudaSlice<u32>,
    /// The feature ids (one placeholder id when no item has a feature; never read then).
    ids: CudaSlice<u32>,
    fold: CudaFunction,
    scatter: CudaFunction,
}

impl DeviceFeatureCsr {
    /// Uploads `features` (one row per item).
    pub(crate) fn new(gpu: &Gpu, features: &ItemFeatures) -> Result<Self, ModelError> {
        let n_rows = features.n_movies();
        let mut offsets = Vec::with_capacity(n_rows + 1);
        let mut ids = Vec::new();
        offsets.push(0u32);
        for i in 0..n_rows {
            ids.extend_from_slice(features.of(i));
            let end = u32::try_from(ids.len()).map_err(|_| {
                ModelError::InvalidConfig("item features on the GPU: more than 2^32 feature ids".into())
            })?;
            offsets.push(end);
        }
        if ids.is_empty() {
            ids.push(0);
        }
        Ok(Self {
            n_rows,
            offsets: gpu.upload(&offsets, "item feature offsets")?,
            ids: gpu.upload(&ids, "item feature ids")?,
            fold: gpu.function(&FEATURES_CU, "features_fold")?,
            scatter: gpu.function(&FEATURES_CU, "features_scatter")?,
        })
    }

    /// Queues `out = base + mean feature rows` over `k` columns: `base` is the item table
    /// (n_rows x k), `feat` the feature table (features x k), `out` n_rows x k.
    pub(crate) fn enqueue_fold(
        &self,
        gpu: &Gpu,
        k: usize,
        base: &CudaSlice<f32>,
        feat: &CudaSlice<f32>,
        out: &mut CudaSlice<f32>,
    ) -> Result<(), EngineError> {
        let (n, kk) = self.dims(k, [base.len(), out.len()], "features_fold")?;
        let mut launch = gpu.stream().launch_builder(&self.fold);
        launch.arg(&n).arg(&kk).arg(base).arg(&self.offsets).arg(&self.ids).arg(feat).arg(out);
        // SAFETY: `offsets` has n_rows + 1 nondecreasing entries ending at the length of `ids`
        // (built in `new`); base and out hold n_rows x k floats (checked in `dims`); every id is
        // a feature of the table, whose rows the caller's `feat` table holds (k columns).
        unsafe { launch.launch(grid_for(self.n_rows * k)) }
            .map_err(|e| gpu.launch_error("features_fold", e))?;
        Ok(())
    }

    /// Queues the feature rows' gradient: `feat_grad[f] += grad[i] / |F_i|` for every item `i`
    /// with `touched[i]`, flagging `feat_touched[f]`.
    pub(crate) fn enqueue_scatter(
        &self,
        gpu: &Gpu,
        k: usize,
        touched: &CudaSlice<u32>,
        grad: &CudaSlice<f32>,
        feat_grad: &mut CudaSlice<f32>,
        feat_touched: &mut CudaSlice<u32>,
    ) -> Result<(), EngineError> {
        let (n, kk) = self.dims(k, [grad.len(), touched.len() * k], "features_scatter")?;
        let mut launch = gpu.stream().launch_builder(&self.scatter);
        launch
            .arg(&n)
            .arg(&kk)
            .arg(&self.offsets)
            .arg(&self.ids)
            .arg(touched)
            .arg(grad)
            .arg(feat_grad)
            .arg(feat_touched);
        // SAFETY: as in `enqueue_fold`; `touched` has n_rows flags and `grad` n_rows x k floats
        // (checked); the feature gradient and its flags have the feature table's shape.
        unsafe { launch.launch(grid_for(self.n_rows * k)) }
            .map_err(|e| gpu.launch_error("features_scatter", e))?;
        Ok(())
    }

    /// `(n_rows, k)` as the kernels take them, after checking that the item-side buffers hold
    /// `n_rows x k` elements.
    fn dims(&self, k: usize, lens: [usize; 2], what: &str) -> Result<(u32, u32), EngineError> {
        let cells = self.n_rows * k;
        for len in lens {
            if len < cells {
                return Err(EngineError::ShapeMismatch {
                    what: what.to_string(),
                    expected: cells,
                    actual: len,
                });
            }
        }
        let narrow = |v: usize| {
            u32::try_from(v).map_err(|_| EngineError::InvalidConfig(format!("{what}: {v} too large")))
        };
        Ok((narrow(self.n_rows)?, narrow(k)?))
    }
}
