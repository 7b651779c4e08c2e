//! The P1 step benchmark: seconds per full-batch step (cost, gradient, Adam) of reelvec-models'
//! `GpuCooc` at the ml-25m scale, after one warm-up step ([`bench_step`]), and the same step cut
//! into its phases for tuning the kernels ([`profile_step`]).

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

/// Mean seconds of each phase of a step over `steps` steps, the device synchronised around
/// every phase (so the sum exceeds [`bench_step`]'s figure by the launch gaps): `L V`, `X0 V`,
/// the Gram/cost reductions, the gradient, Adam. For tuning the kernels; not a benchmark.
pub fn profile_step(
    gpu: &Gpu,
    problem: &CoocProblem,
    k: usize,
    steps: usize,
) -> Result<Vec<(&'static str, f64)>> {
    let config = CoocConfig { dim: k, ..CoocConfig::default() };
    let mut params = ParamStore::new();
    let table = init_factors(problem, &config, 1, &mut params)?;
    let mut cooc = GpuCooc::new(gpu, problem, k)?;
    let mut dev_params = GpuParams::upload(gpu, &params)?;
    let mut dev_grads = GpuGrads::zeros_like(gpu, &dev_params)?;
    let mut adam =
        GpuOptimizer::new(gpu, &OptimizerConfig::Adam(AdamConfig::default()), &dev_params, &dev_grads)?;
    let mut costs = gpu.zeros::<f64>(2, "P1 cost slot")?;
    let mut totals = [0.0f64; 5];
    for _ in 0..steps.max(1) {
        // Borrowed per step: the optimizer step below writes these factors.
        let v = &dev_params.get(table).data;
        let mut t = Instant::now();
        let mut lap = |i: usize, totals: &mut [f64; 5]| -> Result<()> {
            gpu.sync("P1 profile")?;
            totals[i] += t.elapsed().as_secs_f64();
            t = Instant::now();
            Ok(())
        };
        lap(0, &mut [0.0; 5])?;
        cooc.enqueue_user_product(gpu, v)?;
        lap(0, &mut totals)?;
        cooc.enqueue_movie_product(gpu, v)?;
        lap(1, &mut totals)?;
        // The full evaluation minus the two products just timed gives the reductions.
        cooc.enqueue(gpu, v, true, &mut costs, 0, None, 0)?;
        lap(2, &mut totals)?;
        cooc.enqueue(gpu, v, true, &mut costs, 0, Some(&mut dev_grads.get_mut(table).data), 0)?;
        lap(3, &mut totals)?;
        adam.step(gpu, &mut dev_params, &mut dev_grads, 1e-6)?;
        lap(4, &mut totals)?;
    }
    let n = steps.max(1) as f64;
    let products = (totals[0] + totals[1]) / n;
    Ok(vec![
        ("L V", totals[0] / n),
        ("X0 V", totals[1] / n),
        ("Gram + cost reductions", (totals[2] / n - products).max(0.0)),
        ("gradient", (totals[3] - totals[2]) / n),
        ("Adam", totals[4] / n),
    ])
}
