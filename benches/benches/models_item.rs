//! Criterion benches of the item models: a CBOW full-softmax training step at the notebook's
//! size (V = 50, k = 20, a batch of 64 user sequences) with each softmax kernel (chunked
//! products, projected with pair tables; at V = 200 and 1000 also the projected kernel's
//! earlier per-lane backward products) and a validation-only pass, a skip-gram
//! negative-sampling step on a larger vocabulary, and the P1 step (cost + gradient from L)
//! against the dense M x M formulation at M = 1682 (ml-100k's width) and M = 9742
//! (ml-latest-small's).

use criterion::{black_box, criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion};
use reelvec_engine::{Adam, AdamConfig, Grads, Objective, Optimizer, ParamStore};
use reelvec_models::cooc::{dense_grad, CoocProblem, CoocScratch, LikeMatrix};
use reelvec_models::item2vec::{
    Architecture, Examples, Item2VecConfig, Item2VecObjective, Item2VecTables, OutputLoss, SoftmaxKernel,
};

/// SplitMix64: seeded inputs without a rand dependency.
struct Mix(u64);

impl Mix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// 64 random sequences of length 20..60 over `vocab` tokens.
fn sequences(vocab: u32, n: usize, seed: u64) -> Vec<Vec<u32>> {
    let mut rng = Mix(seed);
    (0..n)
        .map(|_| {
            let len = 20 + rng.below(40);
            (0..len).map(|_| rng.below(vocab as u64) as u32).collect()
        })
        .collect()
}

fn item2vec_step(c: &mut Criterion, name: &str, config: Item2VecConfig, vocab: usize, kernel: SoftmaxKernel) {
    item2vec_step_with(c, name, config, vocab, |o| o.with_softmax_kernel(kernel))
}

/// [`item2vec_step`] with the objective set up by `tune` (its kernel and switches).
fn item2vec_step_with(
    c: &mut Criterion,
    name: &str,
    config: Item2VecConfig,
    vocab: usize,
    tune: impl Fn(Item2VecObjective) -> Item2VecObjective,
) {
    item2vec_step_in(c, name, config, vocab, tune, None)
}

/// [`item2vec_step_with`], each step inside `pool` when given (else rayon's global pool).
fn item2vec_step_in(
    c: &mut Criterion,
    name: &str,
    config: Item2VecConfig,
    vocab: usize,
    tune: impl Fn(Item2VecObjective) -> Item2VecObjective,
    pool: Option<&rayon::ThreadPool>,
) {
    let seqs = sequences(vocab as u32, 64, 1);
    let mut params = ParamStore::new();
    let tables = Item2VecTables::register_seeded(&mut params, vocab, &config, 2).expect("tables");
    let train = Examples::build(&seqs, config.window, config.drop_ends);
    let examples = train.len();
    let obj = tune(Item2VecObjective::new(config, tables, vocab, train, None, 3).expect("objective"));
    let units: Vec<u32> = (0..64).collect();
    let mut grads = Grads::zeros_like(&params);
    // Every timed step starts from the same parameters and a fresh Adam (set up untimed): a run
    // of thousands of steps on one batch would otherwise overfit it until the logits spread so
    // far that the products of the pair tables turn subnormal, and each case would time a
    // different point of that drift.
    c.bench_function(&format!("{name} (V={vocab}, k={}, {examples} examples)", config.dim), |b| {
        b.iter_batched(
            || (params.clone(), Adam::new(AdamConfig::default())),
            |(mut params, mut adam)| {
                let mut step = || {
                    let loss = obj.loss_and_grad(&params, &units, &mut grads);
                    adam.step(&mut params, &grads, 1e-2);
                    grads.clear();
                    loss
                };
                black_box(match pool {
                    Some(pool) => pool.install(step),
                    None => step(),
                })
            },
            BatchSize::SmallInput,
        )
    });
}

/// A loss-only pass over 64 sequences' examples (P0's per-epoch validation).
fn item2vec_validation(c: &mut Criterion, kernel: SoftmaxKernel) {
    let config = Item2VecConfig::default();
    let seqs = sequences(50, 64, 4);
    let mut params = ParamStore::new();
    let tables = Item2VecTables::register_seeded(&mut params, 50, &config, 2).expect("tables");
    let val = Examples::build(&seqs, config.window, config.drop_ends);
    let examples = val.len();
    let obj = Item2VecObjective::new(config, tables, 50, val.clone(), None, 3)
        .expect("objective")
        .with_softmax_kernel(kernel);
    c.bench_function(&format!("cbow_softmax_validation {kernel:?} (V=50, k=20, {examples} examples)"), |b| {
        b.iter(|| black_box(obj.loss_over(&params, &val, 0)))
    });
}

fn bench_item2vec(c: &mut Criterion) {
    for kernel in [SoftmaxKernel::Chunked, SoftmaxKernel::Projected] {
        item2vec_step(c, &format!("cbow_softmax_step {kernel:?}"), Item2VecConfig::default(), 50, kernel);
        item2vec_validation(c, kernel);
        // The notebook suite's larger P0 vocabularies (issue 13: top-200 and top-1000).
        for vocab in [200, 1000] {
            item2vec_step(
                c,
                &format!("cbow_softmax_step {kernel:?}"),
                Item2VecConfig::default(),
                vocab,
                kernel,
            );
        }
    }
    // The projected kernel's backward once per lane (before) and once per batch (now), in one
    // run: the second line of each pair is the `cbow_softmax_step Projected` above.
    for vocab in [200, 1000] {
        item2vec_step_with(
            c,
            "cbow_softmax_step Projected per-lane backward",
            Item2VecConfig::default(),
            vocab,
            |o| o.with_softmax_kernel(SoftmaxKernel::Projected).with_per_lane_backward(true),
        );
    }
    // On one thread, in one run: the two-token row pass as one sweep over the rows (now) and
    // as two phases (before); the AVX-512 pair-table fill from `E` and `W^T` in registers (now)
    // and through the BLAS product (before; the same on CPUs without AVX-512); likewise the
    // backward products.
    let one = rayon::ThreadPoolBuilder::new().num_threads(1).build().expect("pool");
    for vocab in [200, 1000] {
        for sweep in [false, true] {
            let name = format!("cbow_softmax_step Projected 1 thread, row sweep {sweep}");
            let tune =
                |o: Item2VecObjective| o.with_softmax_kernel(SoftmaxKernel::Projected).with_row_sweep(sweep);
            item2vec_step_in(c, &name, Item2VecConfig::default(), vocab, tune, Some(&one));
        }
        for fused in [false, true] {
            let name = format!("cbow_softmax_step Projected 1 thread, fused fill {fused}");
            let tune =
                |o: Item2VecObjective| o.with_softmax_kernel(SoftmaxKernel::Projected).with_fused_fill(fused);
            item2vec_step_in(c, &name, Item2VecConfig::default(), vocab, tune, Some(&one));
        }
    }
    // The AVX-512 backward products (now) and OpenBLAS's (before), from V = 512 on.
    for own in [false, true] {
        let name = format!("cbow_softmax_step Projected 1 thread, simd products {own}");
        let tune =
            |o: Item2VecObjective| o.with_softmax_kernel(SoftmaxKernel::Projected).with_simd_products(own);
        item2vec_step_in(c, &name, Item2VecConfig::default(), 1000, tune, Some(&one));
    }
    let sg = Item2VecConfig {
        architecture: Architecture::Skipgram,
        loss: OutputLoss::NegativeSampling,
        dim: 50,
        window: 2,
        ..Item2VecConfig::default()
    };
    item2vec_step(c, "skipgram_ns_step", sg, 10_000, SoftmaxKernel::Auto);
}

/// Power-law likes: `users` users, `movies` movies, about `per_user` likes each.
fn likes(users: usize, movies: usize, per_user: usize, seed: u64) -> LikeMatrix {
    let mut rng = Mix(seed);
    let mut pairs = Vec::with_capacity(users * per_user);
    for u in 0..users {
        for _ in 0..per_user {
            // Zipf-like: movie = floor(M * x^3) favours low indices.
            let x = rng.unit();
            pairs.push((u as u32, ((movies as f64) * x * x * x) as u32));
        }
    }
    LikeMatrix::from_pairs(users, movies, &pairs).expect("likes in range")
}

fn bench_cooc(c: &mut Criterion) {
    let k = 20;
    let mut group = c.benchmark_group("p1_step");
    group.sample_size(10);
    // ml-100k: 943 users, 1682 movies, ~55k likes; ml-latest-small: 610 users, 9742 movies, ~48k likes.
    for (users, movies, per_user) in [(943usize, 1682usize, 59usize), (610, 9742, 80)] {
        let l = likes(users, movies, per_user, 7);
        let x0 = l.dense_x0();
        let problem = CoocProblem::new(l);
        let mut rng = Mix(8);
        let v: Vec<f32> = (0..movies * k).map(|_| (2.0 * rng.unit() - 1.0) as f32).collect();
        let mut grad = vec![0.0f32; movies * k];
        let mut scratch = CoocScratch::default();
        group.bench_with_input(BenchmarkId::new("from_L", movies), &movies, |b, _| {
            b.iter(|| black_box(problem.cost_and_grad(&v, k, true, &mut scratch, Some(&mut grad))))
        });
        let mut residual = vec![0.0f32; movies * movies];
        group.bench_with_input(BenchmarkId::new("dense_MxM", movies), &movies, |b, _| {
            b.iter(|| {
                dense_grad(&x0, &v, movies, k, true, &mut residual, &mut grad);
                black_box(grad[0])
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_item2vec, bench_cooc);
criterion_main!(benches);
