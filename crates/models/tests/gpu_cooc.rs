//! P1 on the GPU against its CPU twin: the sparse products `L V` and `X0 V`, the masked and
//! unmasked costs and the gradient for random likes and factors (including rows split into
//! segments and fixed up), the full-batch Adam fit's per-step costs, and `run_on` for a synthetic
//! data set. Every test skips with a message when no CUDA device answers.
//!
//! Tolerances. Rows of one segment are summed in the CPU's order (bitwise equal); split rows,
//! the f64 Gram reduction and the f64 trace are summed in another order, so products agree to
//! f32 rounding (1e-5 relative to the row scale) and costs to 1e-9 relative. The fit compares
//! per-step costs to 1e-4 relative: a different rounding of `G` and of split rows changes the
//! last bits of each gradient, and 60 Adam steps amplify that only slightly.
//!
//! `REELVEC_GPU_BENCH=1` also times one step at ml-25m scale (a random like matrix with
//! 162,541 users, 59,047 movies, ~12M likes, skewed like the real one) for k = 20, 32, 64.

#![allow(clippy::unwrap_used)]

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use reelvec_bench::cooc_bench::{bench_step, profile_step};
use reelvec_data::synth::{generate, Preset, SynthConfig};
use reelvec_engine::gpu::{self, Gpu};
use reelvec_engine::Device;
use reelvec_models::cooc::gpu::{fit_gpu, GpuCooc};
use reelvec_models::cooc::{fit, CoocConfig, CoocProblem, CoocScratch, LikeMatrix};
use reelvec_models::pipelines::p1_cooc::{self, Config};

/// The shared device, or a counted skip (a failure under `REELVEC_REQUIRE_GPU=1`).
fn gpu_or_skip() -> Option<std::sync::Arc<Gpu>> {
    if !gpu::available() {
        reelvec_testkit::skip(reelvec_testkit::Need::Gpu, "no CUDA device");
        return None;
    }
    Some(Gpu::shared(0).expect("a CUDA device answered the probe but could not be opened"))
}

/// Skewed random likes: movie `floor(M r^2)`, user `floor(U r^1.5)` (popular movies and heavy
/// users, as in MovieLens).
fn random_likes(n_users: usize, n_movies: usize, pairs: usize, seed: u64) -> LikeMatrix {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let likes: Vec<(u32, u32)> = (0..pairs)
        .map(|_| {
            let u = (n_users as f64 * rng.random::<f64>().powf(1.5)) as u32;
            let m = (n_movies as f64 * rng.random::<f64>().powi(2)) as u32;
            (u.min(n_users as u32 - 1), m.min(n_movies as u32 - 1))
        })
        .collect();
    LikeMatrix::from_pairs(n_users, n_movies, &likes).unwrap()
}

fn random_factors(m: usize, k: usize, scale: f32, seed: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..m * k).map(|_| rng.random_range(-scale..scale)).collect()
}

/// max |a - b| / max |b|.
fn relative_error(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(0.0f64, |s, &x| s.max(x.abs() as f64)).max(1e-30);
    a.iter().zip(b).map(|(&x, &y)| (x as f64 - y as f64).abs()).fold(0.0, f64::max) / scale
}

fn rel(a: f64, b: f64) -> f64 {
    (a - b).abs() / b.abs().max(1e-300)
}

#[test]
fn products_costs_and_gradient_match_the_cpu() {
    let Some(gpu) = gpu_or_skip() else { return };
    let problem = CoocProblem::new(random_likes(400, 150, 6000, 3));
    let likes = problem.likes();
    let longest_movie = (0..150).map(|i| likes.movie_likers(i).len()).max().unwrap();
    let longest_user = (0..400).map(|u| likes.user_likes(u).len()).max().unwrap();
    println!("likes {}, longest movie {longest_movie}, longest user {longest_user}", likes.nnz());
    // k = 7 (one partial column group), 40 (two lanes' worth), 150 (two column passes of 128).
    for (k, segment) in [(7usize, 16usize), (40, 512), (40, 9), (150, 33)] {
        assert!(longest_movie > segment || segment == 512, "the test must split some rows");
        let v = random_factors(150, k, 0.5, 11 + k as u64);
        let mut cooc = GpuCooc::with_segment_len(&gpu, &problem, k, segment).unwrap();
        for mask in [true, false] {
            let (cost, grad) = cooc.cost_and_grad(&gpu, &v, mask, true).unwrap();
            let (lv_gpu, x0v_gpu) = cooc.products(&gpu).unwrap();
            let mut lv = vec![0.0f32; 400 * k];
            let mut x0v = vec![0.0f32; 150 * k];
            likes.times(&v, k, &mut lv);
            likes.transpose_times_minus_diag(&lv, &v, k, &mut x0v);
            let (e_lv, e_x0v) = (relative_error(&lv_gpu, &lv), relative_error(&x0v_gpu, &x0v));
            let mut cpu_grad = vec![0.0f32; 150 * k];
            let cpu = problem.cost_and_grad(&v, k, mask, &mut CoocScratch::default(), Some(&mut cpu_grad));
            let e_grad = relative_error(&grad.unwrap(), &cpu_grad);
            println!(
                "k {k:>3} segment {segment:>3} mask {mask}: L V {e_lv:.2e}, X0 V {e_x0v:.2e}, masked {:.3e} vs {:.3e} ({:.1e}), unmasked ({:.1e}), grad {e_grad:.2e}",
                cost.masked,
                cpu.masked,
                rel(cost.masked, cpu.masked),
                rel(cost.unmasked, cpu.unmasked)
            );
            if segment == 512 {
                // No split rows: the sparse products are the CPU's additions in the CPU's order.
                assert_eq!(lv_gpu, lv);
                assert_eq!(x0v_gpu, x0v);
            }
            assert!(e_lv < 1e-5 && e_x0v < 1e-5, "products: {e_lv:e} {e_x0v:e}");
            assert!(rel(cost.masked, cpu.masked) < 1e-9, "{cost:?} vs {cpu:?}");
            assert!(rel(cost.unmasked, cpu.unmasked) < 1e-9, "{cost:?} vs {cpu:?}");
            assert!(e_grad < 1e-4, "gradient {e_grad:e}");
        }
        // Without a gradient the costs are the same.
        let (c1, none) = cooc.cost_and_grad(&gpu, &v, true, false).unwrap();
        assert!(none.is_none());
        let cpu = problem.cost_and_grad(&v, k, true, &mut CoocScratch::default(), None);
        assert!(rel(c1.masked, cpu.masked) < 1e-9);
    }
}

#[test]
fn full_batch_adam_fit_matches_the_cpu_step_by_step() {
    let Some(gpu) = gpu_or_skip() else { return };
    // 700 users x 900 movies: movie 0 has over 512 likers, so the default segments split it.
    let problem = CoocProblem::new(random_likes(700, 900, 30_000, 5));
    for mask in [true, false] {
        let config = CoocConfig { dim: 12, steps: 250, mask_diagonal: mask, ..CoocConfig::default() };
        let cpu = fit(&problem, &config, 9, |_, _| {}).unwrap();
        let mut seen = Vec::new();
        let dev = fit_gpu(&gpu, &problem, &config, 9, |step, _| seen.push(step)).unwrap();
        assert_eq!(seen, (0..config.steps).collect::<Vec<_>>());
        assert_eq!(dev.costs.len(), cpu.costs.len());
        let mut worst = 0.0f64;
        for (step, (g, c)) in dev.costs.iter().zip(&cpu.costs).enumerate() {
            let e = rel(g.objective(mask), c.objective(mask));
            worst = worst.max(e);
            assert!(e < 1e-4, "mask {mask} step {step}: GPU {g:?} vs CPU {c:?}");
        }
        let first = cpu.costs[0].objective(mask);
        let last = cpu.final_cost().objective(mask);
        println!(
            "fit mask {mask}: cost {first:.6e} -> CPU {last:.6e} / GPU {:.6e}, worst per-step relative difference {worst:.2e}, CPU {:.3}s GPU {:.3}s",
            dev.final_cost().objective(mask),
            cpu.seconds,
            dev.seconds
        );
        assert!(last < 0.5 * first);
        let e_v = relative_error(dev.model.factors(), cpu.model.factors());
        assert!(e_v < 1e-3, "factors differ by {e_v:e}");
    }
}

#[test]
fn run_on_cuda_matches_run_on_cpu() {
    let Some(_gpu) = gpu_or_skip() else { return };
    let data = generate(&SynthConfig {
        n_users: 300,
        n_movies: 200,
        mean_ratings_per_user: 40.0,
        ..Preset::Small.config()
    });
    let mut config =
        Config { model: CoocConfig { dim: 8, steps: 300, ..CoocConfig::default() }, ..Config::default() };
    config.reference = p1_cooc::ReferenceChoice::Dense;
    let cpu = p1_cooc::run_on(&data.dataset, &config, Device::Cpu).unwrap();
    let dev = p1_cooc::run_on(&data.dataset, &config, Device::Cuda(0)).unwrap();
    let (fc, fd) = (&cpu.figures, &dev.figures);
    println!(
        "run_on: final cost CPU {:.6e} GPU {:.6e}, ratio to reference CPU {:?} GPU {:?}",
        fc.final_cost, fd.final_cost, fc.ratio, fd.ratio
    );
    assert!(rel(fd.final_cost, fc.final_cost) < 1e-4);
    assert!(rel(fd.ratio.unwrap(), fc.ratio.unwrap()) < 1e-4);
    assert_eq!(fd.reference_cost, fc.reference_cost);
}

#[test]
fn p1_step_time_at_ml25m_scale() {
    if std::env::var("REELVEC_GPU_BENCH").is_err() {
        return reelvec_testkit::skip(
            reelvec_testkit::Need::OptIn,
            "set REELVEC_GPU_BENCH=1 to time a P1 step at scale",
        );
    }
    let Some(gpu) = gpu_or_skip() else { return };
    let started = std::time::Instant::now();
    let likes = random_likes(162_541, 59_047, 12_500_000, 25);
    let longest = (0..59_047).map(|i| likes.movie_likers(i).len()).max().unwrap();
    let heaviest = (0..162_541).map(|u| likes.user_likes(u).len()).max().unwrap();
    let nnz = likes.nnz();
    let problem = CoocProblem::new(likes);
    println!(
        "P1 scale problem: 162541 users x 59047 movies, {nnz} likes (most liked movie {longest}, heaviest user {heaviest}), built in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    for k in [20usize, 32, 64] {
        let seconds = bench_step(&gpu, &problem, k, 50).unwrap();
        println!("P1 GPU step k={k}: {:.3} ms ({})", seconds * 1e3, gpu.name());
        assert!(seconds.is_finite() && seconds > 0.0, "k={k}: step time {seconds}");
        let parts = profile_step(&gpu, &problem, k, 20).unwrap();
        assert!(
            !parts.is_empty() && parts.iter().all(|(_, s)| s.is_finite() && *s >= 0.0),
            "k={k}: phases {parts:?}"
        );
        let parts: Vec<String> = parts.iter().map(|(name, s)| format!("{name} {:.3} ms", s * 1e3)).collect();
        println!("  phases (synchronised): {}", parts.join(", "));
    }
}
