//! The GPU top-N against the CPU one (`reelvec_metrics::topn`). Every test is a counted skip
//! (`reelvec_testkit`) when no CUDA device answers.
//!
//! - Quantised factors (multiples of 1/8 and small sums) make every score exact in f32 whatever
//!   the summation order, with many exact ties: the GPU lists and scores must equal the CPU's
//!   bit for bit (tie order: lower movie index first), with and without exclusion, for list
//!   lengths 1..300, padded rows, user subsets and several block sizes.
//! - Continuous random factors: the GEMMs differ in summation order, so two movies whose scores
//!   differ by float rounding may swap. Lists must be equal except at such near-ties, where both
//!   movies' exact (f64) scores agree to 1e-5 relative.
//!
//! - About 4k-5k exact ties just below the top of the list: equal to the CPU (the whole-bucket
//!   arithmetic of topn.cu; its host emulation is unit-tested in src/topn_gpu.rs).
//!
//! `REELVEC_GPU_BENCH=1` also times top-10 and top-100 for 162,541 users x 59,047 movies, k = 64.

#![allow(clippy::unwrap_used)]

use ndarray::{Array1, Array2};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use reelvec_engine::gpu::{self, Gpu};
use reelvec_metrics::topn::{top_n, top_n_for_users, NO_ITEM};
use reelvec_metrics::{topn_gpu, FactorScores, RatedItems, ScoreLink, TopNConfig};

/// The shared device, or a counted skip (a failure under `REELVEC_REQUIRE_GPU=1`).
fn gpu_or_skip() -> Option<std::sync::Arc<Gpu>> {
    if !gpu::available() {
        reelvec_testkit::skip(reelvec_testkit::Need::Gpu, "no CUDA device");
        return None;
    }
    Some(Gpu::shared(0).expect("a CUDA device answered the probe but could not be opened"))
}

fn random_rated(n_users: usize, n_items: usize, per_user: usize, rng: &mut ChaCha8Rng) -> RatedItems {
    let rows: Vec<Vec<u32>> =
        (0..n_users).map(|_| (0..per_user).map(|_| rng.random_range(0..n_items as u32)).collect()).collect();
    RatedItems::from_rows(&rows)
}

#[test]
fn quantised_factors_give_identical_lists_and_scores() {
    let Some(gpu) = gpu_or_skip() else { return };
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    for &(n_users, n_items, k) in &[(120usize, 5000usize, 8usize), (33, 40, 3)] {
        let p = Array2::from_shape_fn((n_users, k), |_| rng.random_range(-4i32..=4) as f32 * 0.25);
        let q = Array2::from_shape_fn((n_items, k), |_| rng.random_range(-4i32..=4) as f32 * 0.5);
        let c = Array1::from_shape_fn(n_items, |_| rng.random_range(-2i32..=2) as f32 * 0.125);
        let b = Array1::from_shape_fn(n_users, |_| rng.random_range(-2i32..=2) as f32 * 0.5);
        let rated = random_rated(n_users, n_items, 25, &mut rng);
        let plain = FactorScores::new(p.view(), q.view()).unwrap();
        let biased = plain
            .with_item_bias(c.view())
            .unwrap()
            .with_user_bias(b.view())
            .unwrap()
            .with_offset(0.5)
            .with_link(ScoreLink::Sigmoid);
        for model in [plain, biased] {
            for (list_len, block_users) in [(1usize, 0usize), (10, 7), (100, 0), (300, 50)] {
                let config = TopNConfig { k: list_len, block_users, item_tile: 2048 };
                for exclude in [None, Some(&rated)] {
                    let cpu = top_n(&model, &config, exclude).unwrap();
                    let all: Vec<u32> = (0..n_users as u32).collect();
                    // Both selection paths: sort the candidates of the selected bucket, or
                    // select digit by digit down to the n-th key (sort cap 0).
                    for cap in [topn_gpu::SORT_CAP, 0] {
                        let dev =
                            topn_gpu::top_n_with_sort_cap(&gpu, &model, &all, &config, exclude, cap).unwrap();
                        let what =
                            format!("{n_users}x{n_items} n {list_len} cap {cap} excl {}", exclude.is_some());
                        assert_eq!(dev.indices, cpu.indices, "{what}");
                        assert_eq!(dev.scores, cpu.scores, "{what}");
                    }
                    if n_items < list_len {
                        assert_eq!(cpu.indices[[0, list_len - 1]], NO_ITEM);
                    }
                }
            }
        }
        // A permuted subset of users, with repeats.
        let users: Vec<u32> = (0..50).map(|_| rng.random_range(0..n_users as u32)).collect();
        let config = TopNConfig::with_k(10);
        let cpu = top_n_for_users(&plain, &users, &config, Some(&rated)).unwrap();
        let dev = topn_gpu::top_n_for_users(&gpu, &plain, &users, &config, Some(&rated)).unwrap();
        assert_eq!(dev, cpu);
    }
    println!("quantised: GPU lists equal the CPU's bit for bit");
}

/// `above` distinct scores at the top, `ties` exact ties (1.0) below them, then lower scores,
/// shuffled deterministically.
fn tied_scores(above: usize, ties: usize, lower: usize) -> Vec<f32> {
    let mut row: Vec<f32> = (0..lower).map(|j| -1.0 + (j % 97) as f32 * 0.01).collect();
    row.extend((0..above).map(|j| 100.0 + j as f32));
    row.extend(std::iter::repeat_n(1.0f32, ties));
    let mut rng = ChaCha8Rng::seed_from_u64(ties as u64);
    for i in (1..row.len()).rev() {
        row.swap(i, rng.random_range(0..=i));
    }
    row
}

/// Thousands of exact ties just below the list's top (the case where the whole-bucket test
/// once ignored the candidates taken at earlier digits and overflowed the kernel's candidate
/// buffer): lists and scores equal the CPU's, ties in increasing movie order.
#[test]
fn thousands_of_exact_ties_below_the_top_match_the_cpu() {
    let Some(gpu) = gpu_or_skip() else { return };
    for list_len in [10usize, 100, 1000] {
        for ties in [3_998usize, 4_090, 5_000] {
            // k = 1 and p = 1: every score is its movie's value exactly.
            let row = tied_scores(list_len - 1, ties, 3_000);
            let q = Array2::from_shape_fn((row.len(), 1), |(j, _)| row[j]);
            let p = Array2::from_elem((3, 1), 1.0f32);
            let model = FactorScores::new(p.view(), q.view()).unwrap();
            let config = TopNConfig { k: list_len, block_users: 0, item_tile: 2048 };
            let cpu = top_n(&model, &config, None).unwrap();
            for cap in [topn_gpu::SORT_CAP, 0] {
                let dev =
                    topn_gpu::top_n_with_sort_cap(&gpu, &model, &[0, 1, 2], &config, None, cap).unwrap();
                let what = format!("n {list_len} ties {ties} cap {cap}");
                assert_eq!(dev.indices, cpu.indices, "{what}");
                assert_eq!(dev.scores, cpu.scores, "{what}");
            }
        }
    }
}

#[test]
fn random_factors_agree_except_at_near_ties() {
    let Some(gpu) = gpu_or_skip() else { return };
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let (n_users, n_items, k) = (1000usize, 20_000usize, 32usize);
    let p = Array2::from_shape_fn((n_users, k), |_| rng.random_range(-1.0f32..1.0));
    let q = Array2::from_shape_fn((n_items, k), |_| rng.random_range(-1.0f32..1.0));
    let c = Array1::from_shape_fn(n_items, |_| rng.random_range(-0.5f32..0.5));
    let rated = random_rated(n_users, n_items, 200, &mut rng);
    let model = FactorScores::new(p.view(), q.view()).unwrap().with_item_bias(c.view()).unwrap();
    let exact = |u: usize, j: u32| -> f64 {
        let j = j as usize;
        (0..k).map(|a| p[[u, a]] as f64 * q[[j, a]] as f64).sum::<f64>() + c[j] as f64
    };
    let all: Vec<u32> = (0..n_users as u32).collect();
    for (list_len, cap) in [(10usize, topn_gpu::SORT_CAP), (100, topn_gpu::SORT_CAP), (10, 0), (100, 0)] {
        for exclude in [None, Some(&rated)] {
            let config = TopNConfig::with_k(list_len);
            let cpu = top_n(&model, &config, exclude).unwrap();
            let dev = topn_gpu::top_n_with_sort_cap(&gpu, &model, &all, &config, exclude, cap).unwrap();
            let mut swaps = 0usize;
            for u in 0..n_users {
                for slot in 0..list_len {
                    let (a, b) = (cpu.indices[[u, slot]], dev.indices[[u, slot]]);
                    assert_ne!(b, NO_ITEM);
                    if let Some(r) = exclude {
                        assert!(r.row(u as u32).binary_search(&b).is_err(), "user {u} got excluded {b}");
                    }
                    assert!((cpu.scores[[u, slot]] - dev.scores[[u, slot]]).abs() <= 1e-5 * 8.0);
                    if a != b {
                        swaps += 1;
                        let (sa, sb) = (exact(u, a), exact(u, b));
                        assert!(
                            (sa - sb).abs() <= 1e-5 * sa.abs().max(1.0),
                            "user {u} slot {slot}: CPU {a} ({sa}) vs GPU {b} ({sb})"
                        );
                    }
                }
            }
            println!(
                "random k={k} n={list_len} cap {cap} exclude={}: {swaps} near-tie swaps in {} slots",
                exclude.is_some(),
                n_users * list_len
            );
        }
    }
}

#[test]
fn top_n_time_at_ml25m_scale() {
    if std::env::var("REELVEC_GPU_BENCH").is_err() {
        return reelvec_testkit::skip(
            reelvec_testkit::Need::OptIn,
            "set REELVEC_GPU_BENCH=1 to time top-N at scale",
        );
    }
    let Some(gpu) = gpu_or_skip() else { return };
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let (n_users, n_items, k) = (162_541usize, 59_047usize, 64usize);
    let p = Array2::from_shape_fn((n_users, k), |_| rng.random_range(-1.0f32..1.0));
    let q = Array2::from_shape_fn((n_items, k), |_| rng.random_range(-1.0f32..1.0));
    let c = Array1::from_shape_fn(n_items, |_| rng.random_range(-0.5f32..0.5));
    let b = Array1::from_shape_fn(n_users, |_| rng.random_range(-0.5f32..0.5));
    let rated = random_rated(n_users, n_items, 150, &mut rng);
    let model = FactorScores::new(p.view(), q.view())
        .unwrap()
        .with_item_bias(c.view())
        .unwrap()
        .with_user_bias(b.view())
        .unwrap();
    // Warm-up (kernel compilation, cuBLAS handles).
    topn_gpu::top_n_for_users(&gpu, &model, &[0, 1], &TopNConfig::with_k(10), None).unwrap();
    let all: Vec<u32> = (0..n_users as u32).collect();
    for (list_len, exclude, block_users, cap) in [
        (10usize, None, 0usize, topn_gpu::SORT_CAP),
        (10, None, 256, topn_gpu::SORT_CAP),
        (10, None, 1024, topn_gpu::SORT_CAP),
        (10, None, 0, 0),
        (10, Some(&rated), 0, topn_gpu::SORT_CAP),
        (100, Some(&rated), 0, topn_gpu::SORT_CAP),
        (100, Some(&rated), 0, 0),
    ] {
        let config = TopNConfig { k: list_len, block_users, item_tile: 2048 };
        let started = std::time::Instant::now();
        let top = topn_gpu::top_n_with_sort_cap(&gpu, &model, &all, &config, exclude, cap).unwrap();
        let seconds = started.elapsed().as_secs_f64();
        assert_eq!(top.indices.dim(), (n_users, list_len));
        // Every list: distinct valid movies, scores best first, no excluded movie.
        for u in (0..n_users).step_by(997) {
            let row = top.indices.row(u);
            let mut seen = std::collections::HashSet::new();
            assert!(row.iter().all(|&j| (j as usize) < n_items && seen.insert(j)), "user {u}: {row}");
            let scores = top.scores.row(u);
            assert!(scores.windows(2).into_iter().all(|w| w[0] >= w[1]), "user {u}: {scores}");
            if let Some(rated) = exclude {
                assert!(
                    row.iter().all(|j| !rated.row(u as u32).contains(j)),
                    "user {u}: excluded movie listed"
                );
            }
        }
        println!(
            "top-{list_len} GPU {n_users} x {n_items}, k={k}, biases, exclusion {}, block_users {block_users}, sort cap {cap}: {:.1} ms ({})",
            exclude.is_some(),
            seconds * 1e3,
            gpu.name()
        );
    }
    // Fixed costs: building and uploading [Q | c], one GEMM and selection, the downloads.
    let started = std::time::Instant::now();
    topn_gpu::top_n_for_users(&gpu, &model, &all[..1], &TopNConfig::with_k(10), Some(&rated)).unwrap();
    println!("top-10 for one user (fixed costs): {:.1} ms", started.elapsed().as_secs_f64() * 1e3);
}
