//! Criterion benches of the MF family at the notebooks' sizes: the forward + backward of one
//! batch (`loss_and_grad` then clearing the touched gradient rows), a whole training step
//! (plus the dense PyTorch-semantics Adam step over every table) and `score_all` for one user.
//!
//! - P2: 943 users x 1682 movies (ml-100k), k = 50, biases, sigmoid_range(0, 5.5), batch 100.
//! - P3: 610 users x 9724 movies (ml-latest-small), k = 16, biases, sigmoid, batch 64.
//! - P4: 610 users x 9724 movies, k = 2, no biases, identity, batch 300.
//!
//! Batches are drawn from a deterministic pseudo-random stream (no RNG dependency here).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use reelvec_engine::{Adam, AdamConfig, GradKind, Grads, Objective, Optimizer, ParamStore, Table};
use reelvec_models::mf::{
    Link, MfModel, MfObjective, MfSpec, MfVariant, OutputMap, RatingColumns, MOVIE_BIAS, MOVIE_FACTORS,
    USER_BIAS, USER_FACTORS,
};
use reelvec_models::{ModelKind, RatingModel};

struct Case {
    name: &'static str,
    kind: ModelKind,
    spec: MfSpec,
    batch: usize,
}

fn cases() -> [Case; 3] {
    let sr = |lo, hi| Link::SigmoidRange { lo, hi };
    [
        Case {
            name: "p2_943x1682_k50_b100",
            kind: ModelKind::Mf,
            spec: MfSpec { n_users: 943, n_movies: 1682, k: 50, biases: true, link: sr(0.0, 5.5) },
            batch: 100,
        },
        Case {
            name: "p3_610x9724_k16_b64",
            kind: ModelKind::SigmoidMf,
            spec: MfSpec { n_users: 610, n_movies: 9724, k: 16, biases: true, link: sr(0.0, 1.0) },
            batch: 64,
        },
        Case {
            name: "p4_610x9724_k2_b300",
            kind: ModelKind::ResidualMf,
            spec: MfSpec { n_users: 610, n_movies: 9724, k: 2, biases: false, link: Link::Identity },
            batch: 300,
        },
    ]
}

/// xorshift stream of u64.
fn stream(seed: u64) -> impl FnMut() -> u64 {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    }
}

fn table(name: &str, rows: usize, cols: usize, next: &mut impl FnMut() -> u64) -> Table {
    // Values in [-1, 1).
    let data = (0..rows * cols).map(|_| (next() >> 40) as f32 / (1u64 << 23) as f32 - 1.0).collect();
    Table { name: name.to_string(), rows, cols, grad_kind: GradKind::SparseRows, data }
}

fn setup(case: &Case) -> (ParamStore, MfObjective, Vec<u32>) {
    let s = case.spec;
    let mut next = stream(7);
    let mut params = ParamStore::new();
    params.insert(table(USER_FACTORS, s.n_users, s.k, &mut next)).expect("new table");
    if s.biases {
        params.insert(table(USER_BIAS, s.n_users, 1, &mut next)).expect("new table");
    }
    params.insert(table(MOVIE_FACTORS, s.n_movies, s.k, &mut next)).expect("new table");
    if s.biases {
        params.insert(table(MOVIE_BIAS, s.n_movies, 1, &mut next)).expect("new table");
    }
    let n_rows = 8 * case.batch;
    let cols = RatingColumns {
        user: (0..n_rows).map(|_| (next() % s.n_users as u64) as u32).collect(),
        movie: (0..n_rows).map(|_| (next() % s.n_movies as u64) as u32).collect(),
        target: (0..n_rows).map(|_| (next() % 5) as f32 + 1.0).collect(),
    };
    let objective = MfObjective::new(s, &params, cols, None).expect("valid batch");
    let units: Vec<u32> = (0..case.batch as u32).map(|i| i * 3 % n_rows as u32).collect();
    (params, objective, units)
}

fn forward_backward(c: &mut Criterion) {
    let mut group = c.benchmark_group("mf_forward_backward");
    for case in cases() {
        let (params, objective, units) = setup(&case);
        let mut grads = Grads::zeros_like(&params);
        group.throughput(Throughput::Elements(case.batch as u64));
        group.bench_function(BenchmarkId::from_parameter(case.name), |b| {
            b.iter(|| {
                let loss = objective.loss_and_grad(black_box(&params), black_box(&units), &mut grads);
                grads.clear();
                black_box(loss)
            })
        });
    }
    group.finish();
}

fn train_step(c: &mut Criterion) {
    let mut group = c.benchmark_group("mf_train_step_adam");
    for case in cases() {
        let (mut params, objective, units) = setup(&case);
        let mut grads = Grads::zeros_like(&params);
        let mut adam = Adam::new(AdamConfig { weight_decay: 3e-4, ..AdamConfig::default() });
        group.throughput(Throughput::Elements(case.batch as u64));
        group.bench_function(BenchmarkId::from_parameter(case.name), |b| {
            b.iter(|| {
                let loss = objective.loss_and_grad(&params, black_box(&units), &mut grads);
                adam.step(&mut params, &grads, 1e-6);
                grads.clear();
                black_box(loss)
            })
        });
    }
    group.finish();
}

fn score_all(c: &mut Criterion) {
    let mut group = c.benchmark_group("mf_score_all");
    for case in cases() {
        let (params, _, _) = setup(&case);
        let output = match case.kind {
            ModelKind::SigmoidMf => OutputMap::MinMax { min: 0.5, max: 5.0 },
            ModelKind::ResidualMf => OutputMap::Residual {
                global: 3.5,
                user: vec![0.0; case.spec.n_users],
                movie: vec![0.0; case.spec.n_movies],
                scale: Some([0.5, 5.0]),
            },
            _ => OutputMap::Stars,
        };
        let model =
            MfModel::new(MfVariant::from_kind(case.kind).expect("an MF kind"), case.spec, params, output)
                .expect("model");
        let mut scores = vec![0.0f32; case.spec.n_movies];
        group.throughput(Throughput::Elements(case.spec.n_movies as u64));
        group.bench_function(BenchmarkId::from_parameter(case.name), |b| {
            b.iter(|| {
                model.score_all(black_box(3), &mut scores);
                black_box(scores[0])
            })
        });
    }
    group.finish();
}

criterion_group!(benches, forward_backward, train_step, score_all);
criterion_main!(benches);
