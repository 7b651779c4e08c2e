//! Criterion benches of reelvec-metrics: top-N for every user with the beyond-accuracy figures
//! at ml-100k size (943 users x 1682 movies, k = 50 factors, top-10, with and without excluding
//! ~100k rated pairs), leave-last-out ranks at the same size, and PCA / t-SNE of 1682 and 500
//! movie vectors.
//!
//! `REELVEC_BENCH_SCALE=ml25m` adds one measured run at ml-25m synthetic scale (162,541 users x
//! 59,047 movies, k = 64, top-10, 25M rated pairs excluded): it prints the wall time and the
//! process's peak resident memory (VmHWM from /proc/self/status) before and after, showing that
//! the 162k x 59k score matrix (38 GB in f32) is never materialised. It runs once, outside
//! criterion's sampling, because one run takes tens of seconds on two cores.

use std::hint::black_box;
use std::time::Instant;

use criterion::{criterion_group, Criterion};
use ndarray::{Array1, Array2};
use reelvec_metrics::beyond::{interaction_counts, BeyondAccuracy};
use reelvec_metrics::projection::{pca, tsne, TsneConfig};
use reelvec_metrics::topn::{next_item_ranks, top_n, FactorScores, RatedItems, TopNConfig};

/// A deterministic xorshift stream in [-1, 1) (no RNG dependency in the bench crate).
fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}

/// Deterministic integers in `0..bound`.
fn indices(n: usize, bound: usize, seed: u64) -> Vec<u32> {
    values(n, seed)
        .into_iter()
        .map(|v| (((v + 1.0) * 0.5 * bound as f32) as usize).min(bound - 1) as u32)
        .collect()
}

struct Model {
    users: Array2<f32>,
    items: Array2<f32>,
    item_bias: Array1<f32>,
    rated_users: Vec<u32>,
    rated_items: Vec<u32>,
}

fn model(n_users: usize, n_items: usize, k: usize, n_ratings: usize) -> Model {
    let scale = 1.0 / (k as f32).sqrt();
    Model {
        users: Array2::from_shape_vec((n_users, k), values(n_users * k, 1)).unwrap_or_default() * scale,
        items: Array2::from_shape_vec((n_items, k), values(n_items * k, 2)).unwrap_or_default(),
        item_bias: Array1::from(values(n_items, 3)),
        rated_users: indices(n_ratings, n_users, 4),
        rated_items: indices(n_ratings, n_items, 5),
    }
}

fn bench_ml100k(c: &mut Criterion) {
    let m = model(943, 1682, 50, 100_000);
    let scores = FactorScores::new(m.users.view(), m.items.view())
        .and_then(|s| s.with_item_bias(m.item_bias.view()))
        .expect("consistent shapes");
    let rated = RatedItems::from_pairs(943, &m.rated_users, &m.rated_items).expect("valid pairs");
    let counts = interaction_counts(&m.rated_items, 1682).expect("valid movies");
    let means: Vec<f32> = values(1682, 6).into_iter().map(|v| 3.0 + v).collect();
    let config = TopNConfig::with_k(10);

    let mut group = c.benchmark_group("metrics_ml100k_943x1682_k50");
    group.bench_function("top10_all_users", |b| b.iter(|| black_box(top_n(&scores, &config, None))));
    group.bench_function("top10_all_users_excluding_rated", |b| {
        b.iter(|| black_box(top_n(&scores, &config, Some(&rated))))
    });
    group.bench_function("top10_excluding_rated+diversity+novelty+coverage", |b| {
        b.iter(|| {
            let top = top_n(&scores, &config, Some(&rated)).expect("top-N");
            black_box(BeyondAccuracy::compute(top.indices.view(), m.items.view(), &means, &counts))
        })
    });
    let users: Vec<u32> = (0..943).collect();
    let targets = indices(943, 1682, 7);
    group.bench_function("leave_last_out_ranks_full_catalogue", |b| {
        b.iter(|| black_box(next_item_ranks(&scores, &users, &targets, Some(&rated))))
    });
    group.finish();

    let mut group = c.benchmark_group("metrics_projection");
    group.sample_size(10);
    group.bench_function("pca_1682x50_3_components", |b| b.iter(|| black_box(pca(m.items.view(), 3))));
    let subset = m.items.slice(ndarray::s![..500, ..]).to_owned();
    let config = TsneConfig { iterations: 300, ..TsneConfig::default() };
    group
        .bench_function("tsne_500x50_300_iterations", |b| b.iter(|| black_box(tsne(subset.view(), &config))));
    group.finish();
}

/// Peak resident set size of this process in KiB (VmHWM), when /proc is there.
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// One measured top-10 over ml-25m-sized synthetic factors.
fn run_ml25m() {
    let (n_users, n_items, k, n_ratings) = (162_541, 59_047, 64, 25_000_095);
    let start = Instant::now();
    let m = model(n_users, n_items, k, n_ratings);
    let rated = RatedItems::from_pairs(n_users, &m.rated_users, &m.rated_items).expect("valid pairs");
    drop(m.rated_users);
    drop(m.rated_items);
    let setup = start.elapsed().as_secs_f64();
    let before = peak_rss_kib();
    let scores = FactorScores::new(m.users.view(), m.items.view())
        .and_then(|s| s.with_item_bias(m.item_bias.view()))
        .expect("consistent shapes");
    let start = Instant::now();
    let top = top_n(&scores, &TopNConfig::with_k(10), Some(&rated)).expect("top-N");
    let seconds = start.elapsed().as_secs_f64();
    let after = peak_rss_kib();
    let gflop = 2.0 * n_users as f64 * n_items as f64 * (k + 1) as f64 / 1e9;
    println!(
        "ml25m top-10: {n_users} users x {n_items} movies, k = {k}, {} rated pairs excluded, {} threads",
        n_ratings,
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!("  setup (factors + CSR): {setup:.1} s");
    println!(
        "  top-N: {seconds:.1} s ({:.1} GFLOP/s on the GEMMs), first list {:?}",
        gflop / seconds,
        top.indices.row(0).to_vec()
    );
    println!(
        "  peak RSS: {} MiB before top-N, {} MiB after (the full score matrix would be {:.1} GiB)",
        before.map_or(-1, |v| (v / 1024) as i64),
        after.map_or(-1, |v| (v / 1024) as i64),
        (n_users * n_items * 4) as f64 / (1u64 << 30) as f64
    );
}

criterion_group!(benches, bench_ml100k);

fn main() {
    if std::env::var("REELVEC_BENCH_SCALE").is_ok_and(|v| v == "ml25m") {
        run_ml25m();
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
