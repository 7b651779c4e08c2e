//! The ranking models' CUDA twins against their CPU versions: `ials` (`ials.cu`: cuBLAS Gram +
//! one warp per row CG) and `ease` (`ease.cu` + cuBLAS Gram + cuSOLVER Cholesky inverse), on
//! small synthetic interaction sets, through `fit_ranker` as `reelvec train --device cuda`
//! calls them. Every test skips with a message when no CUDA device answers (a failure under
//! `REELVEC_REQUIRE_GPU=1`).
//!
//! Tolerances (why not bitwise). iALS: the CPU sums `G = Y^T Y` in f64 and every CG dot product
//! in element order on one thread; the GPU forms `G` by an f32 sgemm and reduces dot products
//! across a warp, so each CG step starts from values a few f32 ulps apart. CG is smooth in its
//! inputs for a well-conditioned system (lambda = 2 keeps the smallest eigenvalue of every row's
//! matrix >= 2, the largest here ~ 10^2), so the differences stay near f32 rounding times that
//! condition number: we allow 1e-3 of the largest factor magnitude after one iteration (three CG
//! steps per row, each half) and 1e-2 after three, where the differences of earlier
//! half-iterations feed later ones, and 1e-3 relative on the loss. A wrong kernel is off by O(1). EASE: the
//! Gram is exact integer counts on both sides and the inverse is f64 on both, in another order,
//! so `B` (stored in f32) agrees to 1e-5 of its largest magnitude. BPR (`bpr.cu`, one warp per
//! sample, atomic adds): with `batch_size` 1 both sides run plain sequential SGD over the same
//! drawn samples, differing only in the order of each dot product's sum (warp reduction vs
//! eight accumulators) and in adding the step as `new - old` by atomics; each step moves a
//! value by at most lr (|z| <= 1, factors ~0.1), so after 3 epochs of ~900 steps rounding
//! differences of ~1e-7 per step stay well below 1e-3 of the largest magnitude (a wrong draw or
//! update is off by 1e-2 or more). With the default steps (Hogwild on the device) the two are
//! different SGD orders of the same samples: their held-out AUCs agree to 0.05.

#![allow(clippy::unwrap_used)]

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use reelvec_engine::gpu::{self, Gpu};
use reelvec_engine::Device;
use reelvec_metrics::{ItemScorer, RatedItems};
use reelvec_models::ranking::{
    fit_bpr_gpu, fit_ease_gpu_chunked, fit_ials_gpu, fit_ranker, Bpr, Ease, Ials, Interactions, RankerKind,
    MAX_GPU_FACTORS,
};

/// The shared device, or a counted skip (a failure under `REELVEC_REQUIRE_GPU=1`).
fn gpu_or_skip() -> Option<std::sync::Arc<Gpu>> {
    if !gpu::available() {
        reelvec_testkit::skip(reelvec_testkit::Need::Gpu, "no CUDA device");
        return None;
    }
    Some(Gpu::shared(0).expect("a CUDA device answered the probe but could not be opened"))
}

/// Skewed random interactions: `users` rows, user u with 0 to 40 movies drawn as
/// `floor(M r^2)` (popular movies); every 17th user has none (rows that must become zero).
fn interactions(users: usize, movies: usize, seed: u64) -> RatedItems {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let rows: Vec<Vec<u32>> = (0..users)
        .map(|u| {
            if u % 17 == 0 {
                return vec![];
            }
            let n = rng.random_range(1..=40usize);
            let mut row: Vec<u32> = (0..n)
                .map(|_| ((movies as f64 * rng.random::<f64>().powi(2)) as u32).min(movies as u32 - 1))
                .collect();
            row.sort_unstable();
            row.dedup();
            row
        })
        .collect();
    RatedItems::from_rows(&rows)
}

/// max |a - b| / max |b|.
fn relative_error(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(0.0f64, |s, &x| s.max(f64::from(x).abs())).max(1e-30);
    a.iter().zip(b).map(|(&x, &y)| (f64::from(x) - f64::from(y)).abs()).fold(0.0, f64::max) / scale
}

fn slice(a: ndarray::ArrayView2<'_, f32>) -> Vec<f32> {
    a.iter().copied().collect()
}

#[test]
fn ials_factors_match_the_cpu_after_1_and_3_iterations() {
    let Some(gpu) = gpu_or_skip() else { return };
    let rows = interactions(300, 150, 5);
    let train = Interactions::new(&rows, 150).unwrap();
    // k = 8 (one element per lane, most lanes idle), 70 (three per lane, a partial last one),
    // 256 (the largest, eight per lane).
    for k in [8usize, 70, 256] {
        for (iterations, tolerance) in [(1usize, 1e-3), (3, 1e-2)] {
            let params = serde_json::json!({
                "factors": k, "iterations": iterations, "regularization": 2.0, "alpha": 4.0, "cg_steps": 3
            });
            let cpu = Ials::fit(train, &params, 11).unwrap();
            let dev = fit_ials_gpu(&gpu, train, &params, 11).unwrap();
            let eu = relative_error(&slice(dev.user_factors()), &slice(cpu.user_factors()));
            let ei = relative_error(&slice(dev.item_factors()), &slice(cpu.item_factors()));
            let (lc, lg) = (cpu.loss(train).unwrap(), dev.loss(train).unwrap());
            println!(
                "k {k}, {iterations} iteration(s): users {eu:.2e}, movies {ei:.2e}, loss cpu {lc} gpu {lg}"
            );
            assert!(
                eu < tolerance && ei < tolerance,
                "k {k}, {iterations} it: users {eu:.2e}, movies {ei:.2e}"
            );
            assert!((lc - lg).abs() <= 1e-3 * lc.abs(), "k {k}: loss {lc} vs {lg}");
            // Users without interactions are exactly zero on both.
            assert!(dev.user_factors().row(0).iter().all(|&v| v == 0.0));
            assert_eq!(dev.params_used(), cpu.params_used());
        }
    }
}

#[test]
fn ials_on_the_gpu_is_deterministic_lowers_the_loss_and_comes_back_through_fit_ranker() {
    let Some(gpu) = gpu_or_skip() else { return };
    let rows = interactions(500, 200, 8);
    let train = Interactions::new(&rows, 200).unwrap();
    let mut losses = Vec::new();
    for iterations in 1..=4 {
        let params = serde_json::json!({"factors": 32, "iterations": iterations, "alpha": 4.0});
        let a = fit_ials_gpu(&gpu, train, &params, 3).unwrap();
        let b = fit_ials_gpu(&gpu, train, &params, 3).unwrap();
        assert_eq!(a, b, "two device runs differ");
        losses.push(a.loss(train).unwrap());
    }
    for w in losses.windows(2) {
        assert!(w[1] <= w[0] * (1.0 + 1e-5), "loss rose: {losses:?}");
    }
    let params = serde_json::json!({"factors": 16, "iterations": 2});
    let model = fit_ranker(RankerKind::Ials, train, &params, 3, Device::Cuda(0)).unwrap();
    assert_eq!(model.kind(), RankerKind::Ials);
    let mut out = ndarray::Array2::zeros((2, 200));
    model.score_block(&[1, 2], out.view_mut()).unwrap();
    assert!(out.iter().all(|v| v.is_finite()));
    let too_many = serde_json::json!({"factors": MAX_GPU_FACTORS + 1, "iterations": 1});
    let err = fit_ials_gpu(&gpu, train, &too_many, 3).unwrap_err().to_string();
    assert!(err.contains("at most 256 factors"), "{err}");
}

#[test]
fn ease_weights_match_the_cpu_with_one_and_several_user_chunks() {
    let Some(gpu) = gpu_or_skip() else { return };
    let rows = interactions(400, 120, 13);
    let train = Interactions::new(&rows, 120).unwrap();
    let params = serde_json::json!({"lambda": 5.0});
    let cpu = Ease::fit(train, &params).unwrap();
    let want: Vec<f32> = cpu.weights().iter().copied().collect();
    for chunk in [None, Some(7usize), Some(400)] {
        let dev = fit_ease_gpu_chunked(&gpu, train, &params, chunk).unwrap();
        let got: Vec<f32> = dev.weights().iter().copied().collect();
        let err = relative_error(&got, &want);
        println!("chunk {chunk:?}: B relative error {err:.2e}");
        assert!(err < 1e-5, "chunk {chunk:?}: {err:.2e}");
        assert!((0..120).all(|i| dev.weights()[[i, i]] == 0.0));
    }
    let model = fit_ranker(RankerKind::Ease, train, &params, 0, Device::Cuda(0)).unwrap();
    assert_eq!(model.kind(), RankerKind::Ease);
    let (mut a, mut b) = (ndarray::Array2::zeros((1, 120)), ndarray::Array2::zeros((1, 120)));
    model.score_block(&[3], a.view_mut()).unwrap();
    cpu.score_block(&[3], b.view_mut()).unwrap();
    let scale = b.iter().fold(0.0f32, |s, &x| s.max(x.abs())).max(1e-30);
    assert!(a.iter().zip(b.iter()).all(|(x, y)| (x - y).abs() <= 1e-4 * scale));
}

/// The mean over users with a held-out movie of the fraction of their non-training movies it
/// outscores (ties half).
fn held_out_auc(model: &dyn ItemScorer, train: &RatedItems, held: &[Option<u32>]) -> f64 {
    let n = model.n_items();
    let mut scores = ndarray::Array2::zeros((1, n));
    let (mut sum, mut users) = (0.0, 0.0);
    for (u, h) in held.iter().enumerate() {
        let Some(h) = *h else { continue };
        model.score_block(&[u as u32], scores.view_mut()).unwrap();
        let (mut wins, mut pairs) = (0.0, 0.0);
        for j in 0..n as u32 {
            if j != h && train.row(u as u32).binary_search(&j).is_err() {
                pairs += 1.0;
                let (a, b) = (scores[[0, h as usize]], scores[[0, j as usize]]);
                wins += if a > b {
                    1.0
                } else if a == b {
                    0.5
                } else {
                    0.0
                };
            }
        }
        sum += wins / pairs;
        users += 1.0;
    }
    sum / users
}

#[test]
fn bpr_sequential_steps_match_the_cpu_for_both_samplers() {
    let Some(gpu) = gpu_or_skip() else { return };
    let rows = interactions(60, 50, 21);
    let train = Interactions::new(&rows, 50).unwrap();
    for negatives in ["uniform", "popularity"] {
        let params = serde_json::json!({"factors": 40, "epochs": 3, "batch_size": 1, "lr": 0.05, "init_std": 0.1, "negatives": negatives});
        let cpu = Bpr::fit(train, &params, 5).unwrap();
        let dev = fit_bpr_gpu(&gpu, train, &params, 5).unwrap();
        let err = relative_error(&slice(dev.item_factors()), &slice(cpu.item_factors()));
        assert!(err < 1e-3, "{negatives}: movie factors off by {err}");
        let err = relative_error(&slice(dev.user_factors()), &slice(cpu.user_factors()));
        assert!(err < 1e-3, "{negatives}: user factors off by {err}");
        let err = relative_error(dev.item_bias(), cpu.item_bias());
        assert!(err < 1e-3, "{negatives}: biases off by {err}");
    }
}

#[test]
fn bpr_on_the_gpu_ranks_held_out_movies_as_the_cpu_does_and_comes_back_through_fit_ranker() {
    let Some(gpu) = gpu_or_skip() else { return };
    let full = interactions(300, 120, 8);
    // The last movie of each user with at least 3 is held out.
    let mut held = Vec::new();
    let rows: Vec<Vec<u32>> = (0..300u32)
        .map(|u| {
            let mut row = full.row(u).to_vec();
            held.push(if row.len() >= 3 { row.pop() } else { None });
            row
        })
        .collect();
    let rows = RatedItems::from_rows(&rows);
    let train = Interactions::new(&rows, 120).unwrap();
    let params =
        serde_json::json!({"factors": 16, "epochs": 30, "batch_size": 512, "lr": 0.05, "init_std": 0.1});
    let cpu = held_out_auc(&Bpr::fit(train, &params, 3).unwrap(), &rows, &held);
    let dev = held_out_auc(&fit_bpr_gpu(&gpu, train, &params, 3).unwrap(), &rows, &held);
    assert!(cpu > 0.6 && (cpu - dev).abs() < 0.05, "held-out AUC: cpu {cpu}, gpu {dev}");
    let model = fit_ranker(RankerKind::Bpr, train, &params, 3, Device::Cuda(0)).unwrap();
    assert_eq!(model.kind(), RankerKind::Bpr);
    assert_eq!(model.item_embeddings().unwrap().shape(), &[120, 16]);
}
