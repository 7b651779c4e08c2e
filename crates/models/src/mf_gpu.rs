//! The MF family (P2, P3, P4) on a CUDA device: [`MfGpuObjective`], the device twin of
//! [`MfObjective`] (kernels in `mf.cu` beside `mf.rs`), [`fit_mf`] (the pipelines' training call
//! on either device). The ml-25m-scale epoch benchmark drives `MfGpuObjective` from reelvec-bench
//! (`mf_scale.rs`).
//!
//! **One launch per batch.** `mf_step_*` reads each example's two factor rows (and biases),
//! computes `x`, the link, the squared error and `g = 2 (y - t) / |B| · dy/dx`, adds `g q_i` and
//! `g p_u` (and `g` to both biases) into the gradient rows with atomics, sets the touched-row
//! flags and adds the batch's loss sum into the trainer's slot; the optimizer is the second and
//! last launch of a step. Training columns are uploaded once; a batch is the device view of the
//! trainer's unit order (unit = training row, as on the CPU).
//!
//! **Item side features.** With `model.item_features` a batch is three launches (five with
//! biases): `features_fold` (`features_gpu.rs`) writes the effective movie tables
//! `q̃ = q + mean e_f`, `c̃ = c + mean d_f` into scratch tables (the CPU's f32 operations in the
//! CPU's order for `q̃`; `c̃` groups the bias sum differently, a rounding-level difference),
//! `mf_step_*` runs on them unchanged (its movie gradient is that of `q` and `c`, since
//! `∂q̃/∂q = I`), and `features_scatter` adds `grad q_i / |F_i|` to the feature rows of every
//! movie the batch touched. Validation folds first too.
//!
//! **Parity.** The per-example arithmetic is the CPU's (same link formulas, same rounding
//! order of `g`; NVRTC runs without FMA contraction). Two things differ by rounding only: the
//! dot product is summed in a different order (a lane-strided tree instead of eight
//! accumulators), and when a user or movie occurs twice in a batch its gradient row receives
//! the additions in the order the atomics land. `tests/gpu_mf.rs` states the tolerances.
//!
//! **Measured** (NVIDIA H100 80GB HBM3, 2026-11-23, synthetic data of ml-100k's shape, release
//! build, `gpu_mf --ignored timing_notebook`; PyTorch 2.11 CUDA peers from `benches/peers` on the
//! same data and GPU, second epoch): P2 (k 50, batch 100, dense Adam) 8.4 ms per epoch
//! (801 steps, 10.5 us per step) vs 1.17 s; P3 (k 16, batch 64) 11.5 ms vs 2.12 s; P4 (k 2,
//! batch 300) 3.5 ms vs 0.31 s. The scale case is reelvec-bench's `bench_scale_epoch`.

use reelvec_engine::gpu::{
    CudaFunction, CudaSlice, CudaViewMut, Gpu, GpuBatch, GpuGrads, GpuObjective, GpuParams, KernelSource,
    LaunchConfig, PushKernelArg,
};
use reelvec_engine::{BatchLoss, Device, EngineError, History, ParamStore, TrainConfig};
use serde::{Deserialize, Serialize};

use reelvec_engine::TableId;

use crate::features_gpu::DeviceFeatureCsr;
use crate::mf::{check_columns, Link, MfObjective, MfSpec, MfTables, RatingColumns};
use crate::ModelError;

const MF_FUNCTIONS: &[&str] = &["mf_step_f1", "mf_step_f4", "mf_eval_f1", "mf_eval_f4"];

/// `mf.cu` as written (scalar atomics).
pub(crate) const MF_CU: KernelSource =
    KernelSource { name: "mf.cu", source: include_str!("mf.cu"), functions: MF_FUNCTIONS };

/// `mf.cu` with float4 gradient atomics on compute capability >= 9.0 (falls back to [`MF_CU`]
/// when NVRTC refuses it).
pub(crate) const MF_CU_VECTOR_ATOMICS: KernelSource = KernelSource {
    name: "mf-vector-atomics.cu",
    source: concat!("#define MF_VECTOR_ATOMICS 1\n", include_str!("mf.cu")),
    functions: MF_FUNCTIONS,
};

/// Threads per block of the MF kernels (`MF_BLOCK` in mf.cu).
const MF_BLOCK: u32 = 256;

/// How the kernels map examples to lanes: `vector` floats per load (4 when `k % 4 == 0`, else 1)
/// and `group` lanes per example (a power of two, at most 32, covering `k / vector` chunks when
/// it can).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MfLayout {
    /// Floats per load: 4 (float4) or 1.
    pub vector: u32,
    /// Lanes per example.
    pub group: u32,
}

impl MfLayout {
    /// The layout for `k` factors.
    pub fn for_k(k: usize) -> Self {
        let vector = if k.is_multiple_of(4) { 4 } else { 1 };
        let chunks = (k / vector as usize).max(1);
        let group = chunks.next_power_of_two().min(32) as u32;
        Self { vector, group }
    }

    /// Examples handled by one warp per pass.
    pub fn examples_per_warp(self) -> u32 {
        32 / self.group
    }
}

/// Rating columns on the device.
#[derive(Debug)]
struct DeviceColumns {
    user: CudaSlice<u32>,
    movie: CudaSlice<u32>,
    target: CudaSlice<f32>,
    len: usize,
}

impl DeviceColumns {
    fn upload(gpu: &Gpu, cols: &RatingColumns, what: &str) -> Result<Self, EngineError> {
        Ok(Self {
            user: gpu.upload(&cols.user, &format!("{what} user column"))?,
            movie: gpu.upload(&cols.movie, &format!("{what} movie column"))?,
            target: gpu.upload(&cols.target, &format!("{what} target column"))?,
            len: cols.len(),
        })
    }
}

/// Item side features on the device (see the module doc): the feature table's CSR and the
/// feature tables' ids.
#[derive(Debug)]
struct DeviceFeatures {
    csr: DeviceFeatureCsr,
    factors: TableId,
    bias: Option<TableId>,
}

/// Scratch effective movie tables of item side features, written by `mf_fold_features`.
#[derive(Debug)]
struct EffectiveTables {
    /// `q̃`, n_movies x k.
    q: CudaSlice<f32>,
    /// `c̃`, n_movies (one placeholder element without biases).
    c: CudaSlice<f32>,
}

impl EffectiveTables {
    fn zeros(gpu: &Gpu, spec: &MfSpec, biases: bool) -> Result<Self, EngineError> {
        Ok(Self {
            q: gpu.zeros((spec.n_movies * spec.k).max(1), "effective movie factors")?,
            c: gpu.zeros(if biases { spec.n_movies.max(1) } else { 1 }, "effective movie biases")?,
        })
    }

    fn pair(&self) -> Option<(&CudaSlice<f32>, &CudaSlice<f32>)> {
        Some((&self.q, &self.c))
    }
}

/// The MF objective on the device: training columns (and the validation set) uploaded once,
/// one fused forward + loss + backward launch per batch.
#[derive(Debug)]
pub struct MfGpuObjective {
    kernels: MfKernels,
    train: DeviceColumns,
    val: Option<DeviceColumns>,
    val_sum: CudaSlice<f64>,
    /// [`RatingColumns::mean_square_target`] of the training rows.
    baseline: f64,
    features: Option<(DeviceFeatures, EffectiveTables)>,
}

/// The compiled kernels and everything a launch needs besides the data.
#[derive(Debug)]
struct MfKernels {
    spec: MfSpec,
    tables: MfTables,
    step: CudaFunction,
    eval: CudaFunction,
    layout: MfLayout,
    vector_atomics: bool,
    max_blocks: u32,
    /// Stands in for the bias tables and their gradients when the model has none (never read).
    placeholder_f32: CudaSlice<f32>,
    placeholder_u32: CudaSlice<u32>,
}

impl MfGpuObjective {
    /// An objective over `train` (and `val` for the per-epoch validation loss) for the tables of
    /// `spec` in `params` (the store [`Trainer::fit_gpu`](reelvec_engine::Trainer::fit_gpu)
    /// uploads; the objective only needs its layout). Compiles the kernels and uploads the
    /// columns.
    pub fn new(
        gpu: &Gpu,
        spec: MfSpec,
        params: &ParamStore,
        train: &RatingColumns,
        val: Option<&RatingColumns>,
    ) -> Result<Self, ModelError> {
        let tables = MfTables::find(params, &spec)?;
        check_columns(&spec, "training", train)?;
        if let Some(v) = val {
            check_columns(&spec, "validation", v)?;
        }
        if spec.k == 0 || spec.k > u32::MAX as usize || train.len() > u32::MAX as usize {
            return Err(ModelError::InvalidConfig(format!(
                "MF on the GPU needs 1 <= k < 2^32 and fewer than 2^32 rows (k {}, {} rows)",
                spec.k,
                train.len()
            )));
        }
        let layout = MfLayout::for_k(spec.k);
        let (step_name, eval_name) =
            if layout.vector == 4 { ("mf_step_f4", "mf_eval_f4") } else { ("mf_step_f1", "mf_eval_f1") };
        let (step, eval, vector_atomics) = if layout.vector == 4 {
            match gpu.function(&MF_CU_VECTOR_ATOMICS, step_name) {
                Ok(step) => (step, gpu.function(&MF_CU_VECTOR_ATOMICS, eval_name)?, true),
                Err(e) => {
                    tracing::warn!(error = %e, "mf.cu with float4 atomics did not load; using scalar atomics");
                    (gpu.function(&MF_CU, step_name)?, gpu.function(&MF_CU, eval_name)?, false)
                }
            }
        } else {
            (gpu.function(&MF_CU, step_name)?, gpu.function(&MF_CU, eval_name)?, false)
        };
        let val = match val.filter(|v| !v.is_empty()) {
            Some(v) => Some(DeviceColumns::upload(gpu, v, "validation")?),
            None => None,
        };
        let kernels = MfKernels {
            spec,
            tables,
            step,
            eval,
            layout,
            vector_atomics,
            // A persistent grid: enough resident blocks to fill every SM (8 x 256 threads).
            max_blocks: (gpu.multiprocessors() as u32).saturating_mul(8).max(1),
            placeholder_f32: gpu.zeros(1, "absent bias placeholder")?,
            placeholder_u32: gpu.zeros(1, "absent bias flag placeholder")?,
        };
        Ok(Self {
            kernels,
            train: DeviceColumns::upload(gpu, train, "training")?,
            baseline: train.mean_square_target(),
            val,
            val_sum: gpu.zeros(1, "the validation loss sum")?,
            features: None,
        })
    }

    /// The twin of `objective` (its spec, training and validation rows, and item side features
    /// when it has them) for the tables in `params`.
    pub fn from_objective(
        gpu: &Gpu,
        objective: &MfObjective,
        params: &ParamStore,
    ) -> Result<Self, ModelError> {
        let mut dev = Self::new(gpu, *objective.spec(), params, objective.train(), objective.validation())?;
        if let Some((features, factors, bias)) = objective.item_feature_tables() {
            let scratch = EffectiveTables::zeros(gpu, objective.spec(), bias.is_some())?;
            if features.n_movies() != objective.spec().n_movies {
                return Err(ModelError::InvalidData(format!(
                    "the item feature table has {} movies, the model {}",
                    features.n_movies(),
                    objective.spec().n_movies
                )));
            }
            let csr = DeviceFeatureCsr::new(gpu, features)?;
            dev.features = Some((DeviceFeatures { csr, factors, bias }, scratch));
        }
        Ok(dev)
    }

    /// The model's spec.
    pub fn spec(&self) -> &MfSpec {
        &self.kernels.spec
    }

    /// The lane layout of the kernels.
    pub fn layout(&self) -> MfLayout {
        self.kernels.layout
    }

    /// Whether the float4 gradient atomics variant is in use.
    pub fn vector_atomics(&self) -> bool {
        self.kernels.vector_atomics
    }

    /// Kernel launches per training step of this objective (the optimizer adds one more).
    pub fn launches_per_batch(&self) -> usize {
        match &self.features {
            Some((f, _)) if f.bias.is_some() => 5,
            Some(_) => 3,
            None => 1,
        }
    }

    /// Sum of squared errors of the model in `params` over `cols` (waits for the device).
    pub fn squared_error(
        &self,
        gpu: &Gpu,
        params: &GpuParams,
        cols: &RatingColumns,
    ) -> Result<BatchLoss, ModelError> {
        check_columns(&self.kernels.spec, "evaluated", cols)?;
        let dev = DeviceColumns::upload(gpu, cols, "evaluated")?;
        let mut sum: CudaSlice<f64> = gpu.zeros(1, "the squared-error sum")?;
        match &self.features {
            // Folds into fresh scratch tables: `&self` leaves the objective's own untouched.
            Some((f, _)) => {
                let mut eff = EffectiveTables::zeros(gpu, &self.kernels.spec, f.bias.is_some())?;
                self.kernels.enqueue_fold(gpu, params, f, &mut eff)?;
                self.kernels.enqueue_eval(gpu, params, eff.pair(), &dev, &mut sum)?;
            }
            None => self.kernels.enqueue_eval(gpu, params, None, &dev, &mut sum)?,
        }
        let total = gpu.download(&sum, 1, "the squared-error sum")?[0];
        Ok(BatchLoss::new(total, cols.len() as u64))
    }
}

impl MfKernels {
    fn launch_config(&self, examples: usize) -> LaunchConfig {
        let per_block = self.layout.examples_per_warp() as usize * (MF_BLOCK as usize / 32);
        let blocks = (examples.div_ceil(per_block).max(1)).min(self.max_blocks as usize) as u32;
        LaunchConfig { grid_dim: (blocks, 1, 1), block_dim: (MF_BLOCK, 1, 1), shared_mem_bytes: 0 }
    }

    fn link_args(&self) -> (i32, f32, f32) {
        match self.spec.link {
            Link::SigmoidRange { lo, hi } => (1, lo, hi),
            Link::Identity => (0, 0.0, 1.0),
        }
    }

    /// The movie factor and bias tables a launch reads: the parameters', or the effective ones
    /// of item side features (`(q̃, c̃)`, folded by [`Self::enqueue_fold`]).
    fn movie_tables<'a>(
        &'a self,
        params: &'a GpuParams,
        effective: Option<(&'a CudaSlice<f32>, &'a CudaSlice<f32>)>,
    ) -> (&'a CudaSlice<f32>, &'a CudaSlice<f32>) {
        match effective {
            Some((q, c)) => (q, if self.spec.biases { c } else { &self.placeholder_f32 }),
            None => (
                &params.get(self.tables.movie_factors).data,
                self.tables.movie_bias.map_or(&self.placeholder_f32, |id| &params.get(id).data),
            ),
        }
    }

    /// Queues the fold of the movie tables in `params` with their feature rows into `out`
    /// (`q̃`, and `c̃` when the model has biases).
    fn enqueue_fold(
        &self,
        gpu: &Gpu,
        params: &GpuParams,
        f: &DeviceFeatures,
        out: &mut EffectiveTables,
    ) -> Result<(), EngineError> {
        let t = &self.tables;
        let data = |id: TableId| &params.get(id).data;
        f.csr.enqueue_fold(gpu, self.spec.k, data(t.movie_factors), data(f.factors), &mut out.q)?;
        if let (Some(c), Some(d)) = (t.movie_bias, f.bias) {
            f.csr.enqueue_fold(gpu, 1, data(c), data(d), &mut out.c)?;
        }
        Ok(())
    }

    /// Queues the feature rows' gradient from the movie gradient a batch left in `grads`.
    fn enqueue_scatter(
        &self,
        gpu: &Gpu,
        f: &DeviceFeatures,
        grads: &mut GpuGrads,
    ) -> Result<(), EngineError> {
        let t = &self.tables;
        let (mut gq, mut gc, mut ge, mut gd) = (None, None, None, None);
        for (index, table) in grads.tables_mut().iter_mut().enumerate() {
            if index == t.movie_factors.0 {
                gq = Some(table);
            } else if Some(index) == t.movie_bias.map(|id| id.0) {
                gc = Some(table);
            } else if index == f.factors.0 {
                ge = Some(table);
            } else if Some(index) == f.bias.map(|id| id.0) {
                gd = Some(table);
            }
        }
        let missing = || EngineError::ShapeMismatch {
            what: "MF item feature gradient tables".to_string(),
            expected: 2,
            actual: 0,
        };
        let (gq, ge) = (gq.ok_or_else(missing)?, ge.ok_or_else(missing)?);
        f.csr.enqueue_scatter(gpu, self.spec.k, &gq.touched, &gq.data, &mut ge.data, &mut ge.touched)?;
        if let (Some(gc), Some(gd)) = (gc, gd) {
            f.csr.enqueue_scatter(gpu, 1, &gc.touched, &gc.data, &mut gd.data, &mut gd.touched)?;
        }
        Ok(())
    }

    /// Queues the sum of squared errors over the device columns `cols` into `out[0]`.
    fn enqueue_eval(
        &self,
        gpu: &Gpu,
        params: &GpuParams,
        effective: Option<(&CudaSlice<f32>, &CudaSlice<f32>)>,
        cols: &DeviceColumns,
        out: &mut CudaSlice<f64>,
    ) -> Result<(), EngineError> {
        let t = &self.tables;
        let n = cols.len as u32;
        let k = self.spec.k as u32;
        let group = self.layout.group;
        let has_bias = i32::from(self.spec.biases);
        let (sigmoid_range, lo, hi) = self.link_args();
        let bu = t.user_bias.map_or(&self.placeholder_f32, |id| &params.get(id).data);
        let (qf, bi) = self.movie_tables(params, effective);
        let mut launch = gpu.stream().launch_builder(&self.eval);
        launch
            .arg(&n)
            .arg(&cols.user)
            .arg(&cols.movie)
            .arg(&cols.target)
            .arg(&params.get(t.user_factors).data)
            .arg(qf)
            .arg(bu)
            .arg(bi)
            .arg(&k)
            .arg(&group)
            .arg(&has_bias)
            .arg(&sigmoid_range)
            .arg(&lo)
            .arg(&hi)
            .arg(out);
        // SAFETY: the columns hold `n` rows with indices checked against the table shapes at
        // construction; the tables are the ones `MfTables::find` checked (k columns).
        unsafe { launch.launch(self.launch_config(cols.len)) }.map_err(|e| gpu.launch_error("mf_eval", e))?;
        Ok(())
    }

    /// Queues one training batch (see [`GpuObjective::enqueue_batch`]).
    // The launch's arguments: the batch, its data and tables, and where the loss goes.
    #[allow(clippy::too_many_arguments)]
    fn enqueue_step(
        &self,
        gpu: &Gpu,
        train: &DeviceColumns,
        params: &GpuParams,
        grads: &mut GpuGrads,
        batch: &GpuBatch<'_>,
        effective: Option<(&CudaSlice<f32>, &CudaSlice<f32>)>,
        loss_sum: &mut CudaViewMut<'_, f64>,
    ) -> Result<u64, EngineError> {
        let n_examples = batch.host_units.len();
        if n_examples == 0 {
            return Ok(0);
        }
        let t = self.tables;
        let n = n_examples as u32;
        let k = self.spec.k as u32;
        let group = self.layout.group;
        let has_bias = i32::from(self.spec.biases);
        let (sigmoid_range, lo, hi) = self.link_args();
        let inv_b = 2.0 / n_examples as f32;

        // Disjoint mutable borrows of the (up to) four gradient tables.
        let (mut gp, mut gq, mut gbu, mut gbi) = (None, None, None, None);
        for (index, table) in grads.tables_mut().iter_mut().enumerate() {
            let slot = (&mut table.data, &mut table.touched);
            if index == t.user_factors.0 {
                gp = Some(slot);
            } else if index == t.movie_factors.0 {
                gq = Some(slot);
            } else if Some(index) == t.user_bias.map(|id| id.0) {
                gbu = Some(slot);
            } else if Some(index) == t.movie_bias.map(|id| id.0) {
                gbi = Some(slot);
            }
        }
        let missing = || EngineError::ShapeMismatch {
            what: "MF gradient tables".to_string(),
            expected: 2 + 2 * usize::from(self.spec.biases),
            actual: 0,
        };
        let (gp_data, gp_flags) = gp.ok_or_else(missing)?;
        let (gq_data, gq_flags) = gq.ok_or_else(missing)?;
        let bu = t.user_bias.map_or(&self.placeholder_f32, |id| &params.get(id).data);
        let (qf, bi) = self.movie_tables(params, effective);

        let mut launch = gpu.stream().launch_builder(&self.step);
        launch
            .arg(&batch.units)
            .arg(&n)
            .arg(&train.user)
            .arg(&train.movie)
            .arg(&train.target)
            .arg(&params.get(t.user_factors).data)
            .arg(qf)
            .arg(bu)
            .arg(bi)
            .arg(gp_data)
            .arg(gq_data);
        match (gbu, gbi) {
            (Some((gbu_data, gbu_flags)), Some((gbi_data, gbi_flags))) => {
                launch.arg(gbu_data).arg(gbi_data).arg(gp_flags).arg(gq_flags).arg(gbu_flags).arg(gbi_flags);
            }
            _ => {
                launch
                    .arg(&self.placeholder_f32)
                    .arg(&self.placeholder_f32)
                    .arg(gp_flags)
                    .arg(gq_flags)
                    .arg(&self.placeholder_u32)
                    .arg(&self.placeholder_u32);
            }
        }
        launch
            .arg(&k)
            .arg(&group)
            .arg(&has_bias)
            .arg(&sigmoid_range)
            .arg(&lo)
            .arg(&hi)
            .arg(&inv_b)
            .arg(loss_sum);
        // SAFETY: `units` holds `n` training-row indices (< train_units, the trainer's
        // permutation); the columns' indices were checked against the table shapes; the
        // gradient tables have the parameter tables' shapes; has_bias = 0 exactly when the
        // placeholders stand in for the bias tables (the kernel never touches them then).
        unsafe { launch.launch(self.launch_config(n_examples)) }
            .map_err(|e| gpu.launch_error("mf_step", e))?;
        Ok(n_examples as u64)
    }
}

impl GpuObjective for MfGpuObjective {
    fn train_units(&self) -> usize {
        self.train.len
    }

    /// One launch of `mf_step_*` (see the module doc and mf.cu); three with item features
    /// (fold, step, scatter).
    fn enqueue_batch(
        &mut self,
        gpu: &Gpu,
        params: &GpuParams,
        grads: &mut GpuGrads,
        batch: &GpuBatch<'_>,
        loss_sum: &mut CudaViewMut<'_, f64>,
    ) -> Result<u64, EngineError> {
        let Some((f, eff)) = &mut self.features else {
            return self.kernels.enqueue_step(gpu, &self.train, params, grads, batch, None, loss_sum);
        };
        if batch.host_units.is_empty() {
            return Ok(0);
        }
        self.kernels.enqueue_fold(gpu, params, f, eff)?;
        let n = self.kernels.enqueue_step(gpu, &self.train, params, grads, batch, eff.pair(), loss_sum)?;
        self.kernels.enqueue_scatter(gpu, f, grads)?;
        Ok(n)
    }

    fn validation_loss(&mut self, gpu: &Gpu, params: &GpuParams) -> Result<Option<BatchLoss>, EngineError> {
        let Some(val) = &self.val else { return Ok(None) };
        gpu.stream()
            .memset_zeros(&mut self.val_sum)
            .map_err(|e| reelvec_engine::gpu::driver_error("clearing the validation loss sum", e))?;
        match &mut self.features {
            Some((f, eff)) => {
                self.kernels.enqueue_fold(gpu, params, f, eff)?;
                self.kernels.enqueue_eval(gpu, params, eff.pair(), val, &mut self.val_sum)?;
            }
            None => self.kernels.enqueue_eval(gpu, params, None, val, &mut self.val_sum)?,
        }
        let total = gpu.download(&self.val_sum, 1, "the validation loss sum")?[0];
        Ok(Some(BatchLoss::new(total, val.len as u64)))
    }

    fn loss_name(&self) -> &'static str {
        crate::mf::MSE_NAME
    }

    fn loss_baseline(&self) -> Option<f64> {
        Some(self.baseline)
    }

    /// A rating touches one user row and one movie row of each table.
    fn rows_per_unit(&self) -> Option<usize> {
        Some(1)
    }
}

/// Trains an MF model on `device`: [`Trainer::fit`](reelvec_engine::Trainer::fit) with the CPU
/// `objective` on [`Device::Cpu`], [`Trainer::fit_gpu`](reelvec_engine::Trainer::fit_gpu) with
/// an [`MfGpuObjective`] over the same rows on [`Device::Cuda`]. Either way `params` ends with
/// the trained (or restored best) weights and the history has the same shape.
pub fn fit_mf(
    device: Device,
    train: &TrainConfig,
    objective: &MfObjective,
    params: &mut ParamStore,
) -> Result<History, ModelError> {
    let trainer = reelvec_engine::Trainer::new(train.clone());
    match device {
        Device::Cpu => Ok(trainer.fit(objective, params)?),
        Device::Cuda(_) => {
            let gpu = Gpu::for_device(device)?;
            let mut dev = MfGpuObjective::from_objective(&gpu, objective, params)?;
            Ok(trainer.fit_gpu(&gpu, &mut dev, params)?)
        }
    }
}
