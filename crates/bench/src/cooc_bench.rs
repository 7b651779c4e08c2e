//! The P1 step benchmark: seconds per full-batch step (cost, gradient, Adam) of reelvec-models'
//! `GpuCooc` at the ml-25m scale, after one warm-up step ([`bench_step`]).

use std::time::Instant;

use reelvec_engine::gpu::{Gpu, GpuGrads, GpuOptimizer, GpuParams};
use reelvec_engine::{AdamConfig, OptimizerConfig, ParamStore};
use reelvec_models::cooc::gpu::GpuCooc;
use reelvec_models::cooc::{init_factors, CoocConfig, CoocProblem};

use crate::error::Result;

/// Seconds per full-batch step (cost, gradient and Adam; the cost history stays on the device)
/// at rank `k`, timed over `steps` steps after one warm-up step: the scale benchmark's P1 figure.
pub fn bench_step(gpu: &Gpu, problem: &CoocProblem, k: usize, steps: usize) -> Result<f64> {
    let config = CoocConfig { dim: k, steps: steps + 1, ..CoocConfig::default() };
    let mut params = ParamStore::new();
    let table = init_factors(problem, &config, 1, &mut params)?;
    let mut cooc = GpuCooc::new(gpu, problem, k)?;
    let mut dev_params = GpuParams::upload(gpu, &params)?;
    let mut dev_grads = GpuGrads::zeros_like(gpu, &dev_params)?;
    let mut adam =
        GpuOptimizer::new(gpu, &OptimizerConfig::Adam(AdamConfig::default()), &dev_params, &dev_grads)?;
    let mut dev_costs = gpu.zeros::<f64>(2 * (steps + 1), "P1 cost history")?;
    let mut one_step = |step: usize| -> Result<()> {
        cooc.enqueue(
            gpu,
            &dev_params.get(table).data,
            true,
            &mut dev_costs,
            step,
            Some(&mut dev_grads.get_mut(table).data),
            step as u32,
        )?;
        adam.step(gpu, &mut dev_params, &mut dev_grads, config.lr * 0.5)?;
        Ok(())
    };
    one_step(0)?;
    gpu.sync("P1 warm-up step")?;
    let start = Instant::now();
    for step in 1..=steps {
        one_step(step)?;
    }
    gpu.sync("P1 timed steps")?;
    Ok(start.elapsed().as_secs_f64() / steps.max(1) as f64)
}
