//! The training loop on the device: [`Trainer::fit_gpu`] drives a [`GpuObjective`] with the
//! same configuration, shuffles, schedule, validation, early stopping and history as
//! [`Trainer::fit`] on the CPU.
//!
//! **What stays on the device.** Parameters, gradients and optimizer state are uploaded once
//! per fit; each epoch uploads only its unit order (one `u32` per unit, the same permutation
//! the CPU trainer uses: [`epoch_seed`]). A step is the objective's launches plus one optimizer
//! launch; nothing is copied back during an epoch. Each batch adds its loss sum into its own
//! slot of a per-epoch device array, which is read once at the end of the epoch.
//!
//! **Divergence guard.** At the end of each epoch the batch losses are checked in order (the
//! first non-finite one names its step) and every table is scanned for NaN/inf on the device;
//! the validation loss is checked too. This is coarser in time than the CPU trainer (which
//! checks every step) but names the same epoch and the first failing step.

use std::time::Instant;

use cudarc::driver::{CudaSlice, CudaView, CudaViewMut, PushKernelArg};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::{grid_for, Gpu, GpuGrads, GpuOptimizer, GpuParams, KernelSource};
use crate::clock::PassClock;
use crate::params::ParamStore;
use crate::trainer::{
    diverged, epoch_seed, progress_bar, BatchLoss, BestEpoch, EpochStats, History, ScheduleStep, Trainer,
};
use crate::EngineError;

pub(super) const PARAMS_CU: KernelSource = KernelSource {
    name: "params.cu",
    source: include_str!("../params.cu"),
    functions: &["count_non_finite"],
};

/// One batch as the device objective sees it.
#[derive(Debug)]
pub struct GpuBatch<'a> {
    /// 0-based epoch.
    pub epoch: usize,
    /// 0-based step within the epoch.
    pub step: usize,
    /// The batch's unit indices on the device.
    pub units: CudaView<'a, u32>,
    /// The same indices on the host (for objectives that size their launches by them).
    pub host_units: &'a [u32],
}

/// A training objective whose forward and backward passes run on a [`Gpu`]: the device twin of
/// [`Objective`](crate::Objective).
pub trait GpuObjective {
    /// Number of training units; the trainer shuffles and batches `0..train_units()`.
    fn train_units(&self) -> usize;

    /// Queues the forward and backward pass of `batch`: ADDS the gradient of the batch's MEAN
    /// loss to `grads` (setting the touched flag of every row it writes) and ADDS the batch's
    /// loss SUM to `loss_sum[0]`. Returns the number of examples in the batch. Must not wait for
    /// the device.
    fn enqueue_batch(
        &mut self,
        gpu: &Gpu,
        params: &GpuParams,
        grads: &mut GpuGrads,
        batch: &GpuBatch<'_>,
        loss_sum: &mut CudaViewMut<'_, f64>,
    ) -> Result<u64, EngineError>;

    /// Loss over the whole validation set, or None when there is none.
    fn validation_loss(&mut self, gpu: &Gpu, params: &GpuParams) -> Result<Option<BatchLoss>, EngineError>;

    /// What the loss is ([`Objective::loss_name`](crate::Objective::loss_name)).
    fn loss_name(&self) -> &'static str {
        "loss"
    }

    /// The mean loss of an uninformed model
    /// ([`Objective::loss_baseline`](crate::Objective::loss_baseline)).
    fn loss_baseline(&self) -> Option<f64> {
        None
    }

    /// The most rows one unit touches ([`Objective::rows_per_unit`](crate::Objective::rows_per_unit)).
    fn rows_per_unit(&self) -> Option<usize> {
        None
    }
}

/// The index of the first non-finite table of `params` (a device scan), if any.
pub fn non_finite_table(gpu: &Gpu, params: &GpuParams) -> Result<Option<usize>, EngineError> {
    let f = gpu.function(&PARAMS_CU, "count_non_finite")?;
    let mut counts: CudaSlice<u32> = gpu.zeros(params.tables().len(), "non-finite counters")?;
    for (i, t) in params.tables().iter().enumerate() {
        let n = (t.rows * t.cols) as u64;
        let mut cfg = grid_for(n as usize);
        cfg.grid_dim.0 = cfg.grid_dim.0.min(gpu.multiprocessors() as u32 * 8);
        let mut slot = counts.slice_mut(i..i + 1);
        let mut launch = gpu.stream().launch_builder(&f);
        launch.arg(&t.data).arg(&n).arg(&mut slot);
        // SAFETY: `t.data` holds `n` floats; `slot` one counter.
        unsafe { launch.launch(cfg) }.map_err(|e| gpu.launch_error("count_non_finite", e))?;
    }
    let counts = gpu.download(&counts, params.tables().len(), "non-finite counters")?;
    Ok(counts.iter().position(|&c| c > 0))
}

impl Trainer {
    /// Trains `params` on the device: uploads them, runs the epochs, downloads the result.
    pub fn fit_gpu<O: GpuObjective + ?Sized>(
        &self,
        gpu: &Gpu,
        objective: &mut O,
        params: &mut ParamStore,
    ) -> Result<History, EngineError> {
        self.fit_gpu_with(gpu, objective, params, |_| {})
    }

    /// [`fit_gpu`](Self::fit_gpu), calling `on_epoch` after each epoch's validation.
    pub fn fit_gpu_with<O, F>(
        &self,
        gpu: &Gpu,
        objective: &mut O,
        params: &mut ParamStore,
        mut on_epoch: F,
    ) -> Result<History, EngineError>
    where
        O: GpuObjective + ?Sized,
        F: FnMut(&EpochStats),
    {
        let cfg = self.config();
        let n_units = objective.train_units();
        self.validate(n_units)?;
        let steps_per_epoch = n_units.div_ceil(cfg.batch_size);

        let mut dev_params = GpuParams::upload(gpu, params)?;
        let mut grads = GpuGrads::zeros_like(gpu, &dev_params)?;
        let (resolved, note) = cfg.optimizer.resolve(objective.rows_per_unit(), cfg.batch_size, params);
        let mut optimizer = GpuOptimizer::new(gpu, &resolved, &dev_params, &grads)?;
        let mut order: Vec<u32> = (0..n_units as u32).collect();
        let mut dev_order: CudaSlice<u32> = gpu.zeros(n_units, "the epoch's unit order")?;
        let mut batch_losses: CudaSlice<f64> = gpu.zeros(steps_per_epoch, "per-batch losses")?;
        let bar = progress_bar(cfg.quiet, (steps_per_epoch * cfg.epochs) as u64);

        let mut history = History {
            loss_name: objective.loss_name().to_string(),
            optimizer: resolved.kind().to_string(),
            optimizer_note: note,
            ..History::default()
        };
        let mut best = BestEpoch::new(objective.loss_baseline());
        let mut best_params: Option<GpuParams> = None;
        let mut global_step = 0u64;

        for epoch in 0..cfg.epochs {
            let started = Instant::now();
            let pass = PassClock::start();
            if cfg.shuffle {
                order.iter_mut().enumerate().for_each(|(i, u)| *u = i as u32);
                order.shuffle(&mut ChaCha8Rng::seed_from_u64(epoch_seed(cfg.seed, epoch)));
            }
            if cfg.shuffle || epoch == 0 {
                gpu.write(&order, &mut dev_order, "the epoch's unit order")?;
            }
            gpu.stream()
                .memset_zeros(&mut batch_losses)
                .map_err(|e| super::driver_error("clearing per-batch losses", e))?;
            bar.set_prefix(format!("epoch {}/{}", epoch + 1, cfg.epochs));

            let mut examples = Vec::with_capacity(steps_per_epoch);
            let mut lr = cfg.lr;
            for (step, host_units) in order.chunks(cfg.batch_size).enumerate() {
                let factor = match cfg.schedule_step {
                    ScheduleStep::PerBatch => cfg.schedule.factor(global_step),
                    ScheduleStep::PerEpoch => cfg.schedule.factor(epoch as u64),
                };
                lr = cfg.lr * factor;
                let start = step * cfg.batch_size;
                let batch = GpuBatch {
                    epoch,
                    step,
                    units: dev_order.slice(start..start + host_units.len()),
                    host_units,
                };
                let mut slot = batch_losses.slice_mut(step..step + 1);
                let count = objective.enqueue_batch(gpu, &dev_params, &mut grads, &batch, &mut slot)?;
                optimizer.step(gpu, &mut dev_params, &mut grads, lr)?;
                examples.push(count);
                global_step += 1;
                crate::step_hook::after_step(global_step, (steps_per_epoch * cfg.epochs) as u64)?;
                if step % 64 == 63 {
                    bar.inc(64);
                }
            }
            bar.set_position(global_step);

            // One read per epoch: the batch losses, in step order.
            let sums = gpu.download(&batch_losses, steps_per_epoch, "per-batch losses")?;
            let mut epoch_loss = BatchLoss::default();
            let mut last_batch_loss = 0.0;
            for (step, (&sum, &count)) in sums.iter().zip(&examples).enumerate() {
                if !sum.is_finite() {
                    return Err(diverged(epoch, step, format!("the batch loss ({sum})")));
                }
                let loss = BatchLoss::new(sum, count);
                if epoch == 0 && step == 0 {
                    best.set_start_loss(loss.mean(), &mut history);
                }
                epoch_loss.add(loss);
                last_batch_loss = loss.mean();
            }
            if let Some(table) = non_finite_table(gpu, &dev_params)? {
                let name = &dev_params.tables()[table].name;
                return Err(diverged(
                    epoch,
                    steps_per_epoch - 1,
                    format!("table `{name}` (end-of-epoch check, lr {lr})"),
                ));
            }
            // The loss sums and the check above came back to the host: the pass is done.
            let (train_seconds, train_cpu_seconds) = pass.elapsed();

            let val_loss = objective.validation_loss(gpu, &dev_params)?.map(|v| v.mean());
            if let Some(v) = val_loss {
                if !v.is_finite() {
                    return Err(diverged(epoch, steps_per_epoch - 1, format!("the validation loss ({v})")));
                }
            }
            let stats = EpochStats {
                epoch,
                train_loss: epoch_loss.mean(),
                last_batch_loss,
                val_loss,
                lr,
                seconds: started.elapsed().as_secs_f64(),
                train_seconds,
                train_cpu_seconds,
            };
            tracing::info!(epoch, train_loss = stats.train_loss, val_loss = ?stats.val_loss, lr, seconds = stats.seconds, device = gpu.ordinal(), "epoch done");
            bar.set_message(match val_loss {
                Some(v) => format!("train {:.4} val {v:.4}", stats.train_loss),
                None => format!("train {:.4}", stats.train_loss),
            });

            best.check_explosion(&stats, steps_per_epoch - 1)?;
            if best.observe(&mut history, &stats) && cfg.restore_best {
                match best_params.as_mut() {
                    Some(snapshot) => snapshot.copy_from(gpu, &dev_params)?,
                    None => best_params = Some(dev_params.duplicate(gpu)?),
                }
            }
            on_epoch(&stats);
            history.epochs.push(stats);
            if best.should_stop(cfg, epoch, &mut history) {
                break;
            }
        }
        bar.finish_and_clear();

        if let (Some(snapshot), Some(best)) = (&best_params, history.best_epoch) {
            if best + 1 != history.epochs.len() {
                dev_params.copy_from(gpu, snapshot)?;
                tracing::info!(best_epoch = best, "restored the best weights");
            }
        }
        dev_params.download_into(gpu, params)?;
        drop(optimizer);
        Ok(history)
    }
}
