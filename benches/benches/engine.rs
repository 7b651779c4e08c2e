//! Criterion benches of the engine's kernels: one optimizer step (SGD with momentum, Adam,
//! AdamW, lazy Adam) over a parameter table of ml-100k MF size (2625 x 51: 943 users + 1682
//! movies, k = 50 plus a bias column) and ml-25m MF size (221,588 x 65: 162,541 users + 59,047
//! movies, k = 64 plus a bias column). Sizes are in the bench names; throughput is the bytes a
//! step must move. `adam_step_idle_rows` is dense Adam on an ml-latest-small-sized table
//! (10,352 x 51) whose idle rows' first moments have decayed into the subnormal range, with IEEE
//! subnormals (PyTorch's default: `ieee`, the default pass that emulates subnormal lanes, and
//! `ieee_reference`, the plain hardware loop `Adam::step_reference`, same bits) and with
//! `reelvec_engine::fpenv::FlushDenormals` (FTZ/DAZ); `adam_l2_step_idle_rows` the same for
//! Adam with L2 (P2's optimizer), whose idle rows' weights decay to a few subnormal units.
//! `adam_replay_vs_dense` runs 250 steps of a 64-rating batch over that table (the MF pipelines'
//! shape on ml-latest-small), dense Adam against `ReplayAdam` (same bits, untouched rows replayed
//! at the end); `memcpy_bandwidth` measures the copy rate that bounds both (64 MiB, read + write).

use std::hint::black_box;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use reelvec_engine::{
    Adam, AdamConfig, AdamW, GradKind, Grads, LazyAdam, Optimizer, ParamStore, ReplayAdam, Sgd, SgdConfig,
    Table, TableId,
};

/// (name, rows, cols)
const SIZES: [(&str, usize, usize); 2] = [("ml100k_2625x51", 2625, 51), ("ml25m_221588x65", 221_588, 65)];

/// A deterministic pseudo-random stream in [-1, 1) (no RNG dependency in the bench crate).
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

fn store(rows: usize, cols: usize) -> ParamStore {
    let mut params = ParamStore::new();
    let table = Table {
        name: "factors".into(),
        rows,
        cols,
        grad_kind: GradKind::SparseRows,
        data: values(rows * cols, 1),
    };
    params.insert(table).expect("one table");
    params
}

/// Gradients on every row (what a dense optimizer reads anyway).
fn dense_grads(params: &ParamStore) -> Grads {
    let mut grads = Grads::zeros_like(params);
    let g = values(params.num_params(), 2);
    grads.get_mut(TableId(0)).all_mut().copy_from_slice(&g);
    grads
}

/// Gradients on the rows of a 1024-rating batch (about 2048 distinct rows).
fn batch_grads(params: &ParamStore, batch: usize) -> Grads {
    let mut grads = Grads::zeros_like(params);
    let rows = params.get(TableId(0)).rows;
    let picks = values(2 * batch, 3);
    let g = values(params.get(TableId(0)).cols, 4);
    for p in picks {
        let r = ((p + 1.0) * 0.5 * rows as f32) as usize % rows;
        grads.get_mut(TableId(0)).row_mut(r).copy_from_slice(&g);
    }
    grads
}

fn bench_step(c: &mut Criterion, group_name: &str, bytes_per_elem: u64, make: fn() -> Box<dyn Optimizer>) {
    let mut group = c.benchmark_group(group_name);
    group.sample_size(10);
    for (name, rows, cols) in SIZES {
        let mut params = store(rows, cols);
        let grads = dense_grads(&params);
        let mut opt = make();
        group.throughput(Throughput::Bytes(bytes_per_elem * (rows * cols) as u64));
        group.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter(|| opt.step(black_box(&mut params), black_box(&grads), 1e-6))
        });
    }
    group.finish();
}

fn optimizers(c: &mut Criterion) {
    // Bytes per element: SGD+momentum reads p, g, buf and writes p, buf (5 x 4); Adam reads p,
    // g, m, v and writes p, m, v (7 x 4).
    bench_step(c, "sgd_momentum_step", 20, || {
        Box::new(Sgd::new(SgdConfig { momentum: 0.9, ..SgdConfig::default() }))
    });
    bench_step(c, "adam_step", 28, || Box::new(Adam::new(AdamConfig::default())));
    bench_step(c, "adamw_step", 28, || {
        Box::new(AdamW::new(AdamConfig { weight_decay: 0.01, ..AdamConfig::default() }))
    });

    let mut group = c.benchmark_group("lazy_adam_step");
    group.sample_size(10);
    for (name, rows, cols) in SIZES {
        let mut params = store(rows, cols);
        for (label, grads) in [("batch1024", batch_grads(&params, 1024)), ("all_rows", dense_grads(&params))]
        {
            let touched = grads.get(TableId(0)).touched_rows().len();
            let mut opt = LazyAdam::new(AdamConfig::default());
            group.throughput(Throughput::Bytes(28 * (touched * cols) as u64));
            group.bench_function(BenchmarkId::new(label, name), |b| {
                b.iter(|| opt.step(black_box(&mut params), black_box(&grads), 1e-6))
            });
        }
    }
    group.finish();
}

/// Dense Adam after 2,000 steps in which a 100-rating batch touched the same ~200 of 10,352
/// rows, then 3000 idle steps (those rows' first moments decay by 0.9 per step into the
/// subnormal range and stick at a fixed point there), then steps with zero gradients: with IEEE subnormals, and inside `fpenv::with_flushed_denormals` (a pool
/// of the same size whose workers set FTZ/DAZ, as `train.flush_denormals` runs a fit). Run with
/// `RAYON_NUM_THREADS=1` for the one-thread figure. `adam_l2_step_idle_rows`: the same with
/// P2's Adam + L2 (weight decay 3e-4, lr 3e-3), whose idle rows' weights decay through the
/// tiny normals to fixed points a few units above 0 (the L2 idle path).
fn idle_rows(c: &mut Criterion) {
    idle_rows_of(c, "adam_step_idle_rows", AdamConfig::default(), 1e-3);
    idle_rows_of(
        c,
        "adam_l2_step_idle_rows",
        AdamConfig { weight_decay: 3e-4, ..AdamConfig::default() },
        3e-3,
    );
}

fn idle_rows_of(c: &mut Criterion, name: &str, config: AdamConfig, lr: f32) {
    let (rows, cols) = (10_352, 51);
    let mut params = store(rows, cols);
    let grads = batch_grads(&params, 100);
    let mut warm = Adam::new(config);
    for _ in 0..2000 {
        warm.step(&mut params, &grads, lr);
    }
    let idle = Grads::zeros_like(&params);
    // 3000 idle steps more: the touched rows' first moments pass through the subnormal range
    // (~800 steps to reach it, ~150 more to their fixed points) before the timing starts, so
    // every case times the same steady state, deep in the subnormal range.
    for _ in 0..3000 {
        warm.step(&mut params, &idle, lr);
    }
    let mut group = c.benchmark_group(name);
    group.sample_size(10);
    group.throughput(Throughput::Bytes(28 * (rows * cols) as u64));
    for (label, flush, reference) in
        [("ieee", false, false), ("ieee_reference", false, true), ("ftz_daz", true, false)]
    {
        let (mut params, mut opt) = (params.clone(), warm.clone());
        group.bench_function(BenchmarkId::new(label, "10352x51"), |b| {
            b.iter_custom(|iters| {
                let mut timed = || {
                    let start = Instant::now();
                    for _ in 0..iters {
                        if reference {
                            opt.step_reference(black_box(&mut params), black_box(&idle), lr);
                        } else {
                            opt.step(black_box(&mut params), black_box(&idle), lr);
                        }
                    }
                    start.elapsed()
                };
                if flush {
                    reelvec_engine::fpenv::with_flushed_denormals(timed).expect("a flushing pool")
                } else {
                    timed()
                }
            })
        });
    }
    group.finish();
}

/// 250 steps of a 64-rating batch (128 of 10,352 rows marked and given a gradient per step,
/// rows drawn by a fixed stream) with L2 weight decay, as P2 runs an epoch's steps: dense Adam
/// against `ReplayAdam` (prepare, step, and the end-of-epoch sync). Throughput is per step.
fn replay_vs_dense(c: &mut Criterion) {
    let (rows, cols, steps, batch) = (10_352usize, 51usize, 250usize, 64usize);
    let config = AdamConfig { weight_decay: 1e-4, ..AdamConfig::default() };
    let params = store(rows, cols);
    let touched: Vec<Vec<usize>> = (0..steps)
        .map(|s| {
            let v = values(2 * batch, 1000 + s as u64);
            v.iter().map(|x| ((x + 1.0) * 0.5 * rows as f32) as usize % rows).collect()
        })
        .collect();
    let g = values(cols, 9);
    let mut group = c.benchmark_group("adam_replay_vs_dense");
    group.sample_size(10);
    group.throughput(Throughput::Elements(steps as u64));
    for replay in [false, true] {
        let label = if replay { "replay" } else { "dense" };
        group.bench_function(BenchmarkId::new(label, "10352x51_250steps"), |b| {
            let mut params = params.clone();
            let mut grads = Grads::zeros_like(&params);
            let mut dense = Adam::new(config);
            let mut lazy = ReplayAdam::new(config, false);
            b.iter(|| {
                for rows in &touched {
                    for &r in rows {
                        grads.get_mut(TableId(0)).row_mut(r);
                    }
                    if replay {
                        lazy.prepare_rows(&mut params, &grads);
                    }
                    for &r in rows {
                        grads.get_mut(TableId(0)).row_mut(r).copy_from_slice(&g);
                    }
                    if replay {
                        lazy.step(black_box(&mut params), black_box(&grads), 1e-3);
                    } else {
                        dense.step(black_box(&mut params), black_box(&grads), 1e-3);
                    }
                    grads.clear();
                }
                lazy.sync(&mut params);
            })
        });
    }
    group.finish();
}

/// One copy of 64 MiB (memory, not cache): the bandwidth in the MF bound.
fn memcpy_bandwidth(c: &mut Criterion) {
    let n = 16 << 20;
    let src = values(n, 3);
    let mut dst = vec![0.0f32; n];
    let mut group = c.benchmark_group("memcpy_bandwidth");
    group.sample_size(10);
    // Bytes read plus bytes written.
    group.throughput(Throughput::Bytes(8 * n as u64));
    group.bench_function("64MiB", |b| b.iter(|| dst.copy_from_slice(black_box(&src))));
    group.finish();
}

criterion_group!(benches, optimizers, idle_rows, replay_vs_dense, memcpy_bandwidth);
criterion_main!(benches);
