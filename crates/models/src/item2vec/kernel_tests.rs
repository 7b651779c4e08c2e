//! Tests of the two full-softmax kernels ([`SoftmaxKernel`]): the projected kernel against the
//! chunked one (same loss and gradient to f32 rounding, every architecture and reduction; one
//! lane and eight lanes sharing one backward product),
//! against central finite differences, and against the PyTorch CBOW fixtures; and the
//! automatic choice between them.

#![allow(clippy::unwrap_used)]

use std::path::Path;

use proptest::prelude::*;
use reelvec_engine::gradcheck::{check_with, GradCheckOptions};
use reelvec_engine::{Adam, AdamConfig, Grads, Objective, Optimizer, ParamStore};
use serde_json::Value;

use super::softmax::{projected_pays, MAX_PROJECTED_VOCAB};
use super::{
    Architecture, ContextReduce, Examples, Item2VecConfig, Item2VecObjective, Item2VecTables, SoftmaxKernel,
};

/// SplitMix64 sequences: `n` sequences of length 2..=`max_len` over `vocab` tokens.
fn sequences(vocab: u32, n: usize, max_len: u64, seed: u64) -> Vec<Vec<u32>> {
    let mut state = seed;
    let mut next = move || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    (0..n)
        .map(|_| {
            let len = 2 + next() % (max_len - 1);
            (0..len).map(|_| (next() % vocab as u64) as u32).collect()
        })
        .collect()
}

/// Parameters (output layer spread so the softmax is not flat) and one objective per kernel.
fn setup(
    config: Item2VecConfig,
    vocab: usize,
    seqs: &[Vec<u32>],
    seed: u64,
) -> (ParamStore, Item2VecObjective, Item2VecObjective) {
    let mut params = ParamStore::new();
    let tables = Item2VecTables::register_seeded(&mut params, vocab, &config, seed).unwrap();
    for t in params.tables_mut() {
        t.data.iter_mut().for_each(|x| *x *= 1.5);
    }
    let make = |kernel| {
        let train = Examples::build(seqs, config.window, config.drop_ends);
        Item2VecObjective::new(config, tables, vocab, train, None, seed)
            .unwrap()
            .with_lanes(1)
            .with_softmax_kernel(kernel)
    };
    (params, make(SoftmaxKernel::Chunked), make(SoftmaxKernel::Projected))
}

/// Loss and gradients of both kernels agree to `rel` (relative to each table's largest value).
fn kernels_agree(config: Item2VecConfig, vocab: usize, seqs: &[Vec<u32>], seed: u64, rel: f64) {
    let (params, chunked, projected) = setup(config, vocab, seqs, seed);
    let units: Vec<u32> = (0..seqs.len() as u32).collect();
    let (mut ga, mut gb) = (Grads::zeros_like(&params), Grads::zeros_like(&params));
    let a = chunked.loss_and_grad(&params, &units, &mut ga);
    let b = projected.loss_and_grad(&params, &units, &mut gb);
    assert_eq!(a.count, b.count);
    assert!((a.sum - b.sum).abs() <= rel * a.sum.abs().max(1.0), "loss {} vs {} ({config:?})", a.sum, b.sum);
    let val = |o: &Item2VecObjective| o.loss_over(&params, o.train_examples(), 0);
    let (va, vb) = (val(&chunked), val(&projected));
    assert!((va.0 - vb.0).abs() <= rel * va.0.abs().max(1.0), "validation loss {} vs {}", va.0, vb.0);
    for (t, (x, y)) in ga.tables().iter().zip(gb.tables()).enumerate() {
        let mut rows_a = x.touched_rows().to_vec();
        let mut rows_b = y.touched_rows().to_vec();
        rows_a.sort_unstable();
        rows_b.sort_unstable();
        assert_eq!(rows_a, rows_b, "touched rows of table {t}");
        let big = x.data.iter().fold(0.0f32, |m, v| m.max(v.abs())) as f64;
        for (i, (&p, &q)) in x.data.iter().zip(&y.data).enumerate() {
            let tol = rel * (p.abs().max(q.abs()) as f64) + rel * big.max(1e-12);
            assert!(
                ((p - q) as f64).abs() <= tol,
                "table {t}[{i}]: chunked {p} vs projected {q} ({config:?})"
            );
        }
    }
}

#[test]
fn projected_matches_chunked_at_the_notebook_shape() {
    let seqs = sequences(50, 64, 60, 11);
    kernels_agree(Item2VecConfig::default(), 50, &seqs, 3, 1e-5);
}

#[test]
fn projected_matches_chunked_for_mean_skipgram_and_wider_windows() {
    let seqs = sequences(30, 12, 25, 5);
    for (arch, context, window, drop_ends) in [
        (Architecture::Cbow, ContextReduce::Mean, 1, true),
        (Architecture::Cbow, ContextReduce::Sum, 3, false),
        (Architecture::Skipgram, ContextReduce::Sum, 2, true),
        (Architecture::Skipgram, ContextReduce::Sum, 1, false),
    ] {
        let config =
            Item2VecConfig { architecture: arch, context, window, drop_ends, dim: 7, ..Default::default() };
        kernels_agree(config, 30, &seqs, 9, 1e-5);
    }
}

/// The row pass of two-token contexts (`pair_rows`) with a context holding one token twice
/// (`{7, 7}`: its example counts twice in row 7) and with sequence ends (one context token,
/// left to the per-example kernel): the chunked kernel's loss and gradient, sum and mean.
#[test]
fn projected_row_pass_handles_repeated_context_tokens() {
    let seqs: Vec<Vec<u32>> = (0..12).map(|i| vec![7, 2, 7, 2, 7, (i % 9) as u32, 7, 1]).collect();
    for context in [ContextReduce::Sum, ContextReduce::Mean] {
        let config = Item2VecConfig { context, dim: 5, drop_ends: false, ..Default::default() };
        kernels_agree(config, 9, &seqs, 4, 1e-5);
    }
}

/// Tokens of 80 of 100 movies: more than three quarters of the rows are marked, so the
/// projected backward multiplies all of `S` instead of gathering the marked rows; the chunked
/// kernel's gradient still, and the 20 unused movies' embedding gradient rows exactly zero.
#[test]
fn projected_full_backward_with_unmarked_rows() {
    let seqs = sequences(80, 40, 40, 31);
    let config = Item2VecConfig { dim: 6, ..Default::default() };
    kernels_agree(config, 100, &seqs, 8, 1e-5);
    let (params, _, projected) = setup(config, 100, &seqs, 8);
    let units: Vec<u32> = (0..seqs.len() as u32).collect();
    let mut g = Grads::zeros_like(&params);
    projected.loss_and_grad(&params, &units, &mut g);
    let e = &g.tables()[projected.tables().embedding.0];
    assert!(e.data[..80 * 6].iter().any(|&x| x != 0.0));
    assert!(e.data[80 * 6..].iter().all(|&x| x.to_bits() == 0), "unused rows must stay +0.0");
}

/// Logits spread over hundreds of nats: the pair tables' products underflow and those examples
/// fall back to the direct computation; both kernels still agree (and stay finite).
#[test]
fn projected_handles_widely_spread_logits() {
    let seqs = sequences(40, 30, 30, 23);
    for context in [ContextReduce::Sum, ContextReduce::Mean] {
        let config = Item2VecConfig { context, dim: 6, ..Default::default() };
        let (mut params, chunked, projected) = setup(config, 40, &seqs, 5);
        params.tables_mut()[0].data.iter_mut().for_each(|x| *x *= 60.0);
        let units: Vec<u32> = (0..seqs.len() as u32).collect();
        let (mut ga, mut gb) = (Grads::zeros_like(&params), Grads::zeros_like(&params));
        let a = chunked.loss_and_grad(&params, &units, &mut ga);
        let b = projected.loss_and_grad(&params, &units, &mut gb);
        assert!(a.sum.is_finite() && a.mean() > 50.0, "loss {} should be large", a.mean());
        assert!((a.sum - b.sum).abs() <= 1e-5 * a.sum.abs(), "loss {} vs {}", a.sum, b.sum);
        for (x, y) in ga.tables().iter().zip(gb.tables()) {
            let big = x.data.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            for (&p, &q) in x.data.iter().zip(&y.data) {
                assert!(q.is_finite() && (p - q).abs() <= 1e-5 * (p.abs().max(q.abs()) + big), "{p} vs {q}");
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]
    #[test]
    fn kernels_agree_on_random_shapes(
        vocab in 2u32..40,
        dim in 1usize..12,
        n in 1usize..8,
        window in 1usize..3,
        skipgram in any::<bool>(),
        mean in any::<bool>(),
        seed in 0u64..1000,
    ) {
        let seqs = sequences(vocab, n, 12, seed);
        let config = Item2VecConfig {
            architecture: if skipgram { Architecture::Skipgram } else { Architecture::Cbow },
            context: if mean { ContextReduce::Mean } else { ContextReduce::Sum },
            dim,
            window,
            ..Default::default()
        };
        prop_assume!(!Examples::build(&seqs, window, config.drop_ends).is_empty());
        kernels_agree(config, vocab as usize, &seqs, seed, 2e-5);
    }
}

/// The AVX2 builds (when the CPU has AVX2) round exactly as the baseline builds: loss and
/// gradients bitwise equal, for both kernels, CBOW (w = 1 fused path, w = 2) and skip-gram.
#[test]
fn simd_builds_match_the_baseline_bitwise() {
    let seqs = sequences(50, 20, 40, 17);
    for (arch, context, window) in [
        (Architecture::Cbow, ContextReduce::Sum, 1),
        (Architecture::Cbow, ContextReduce::Mean, 2),
        (Architecture::Skipgram, ContextReduce::Sum, 1),
    ] {
        let config = Item2VecConfig { architecture: arch, context, window, dim: 13, ..Default::default() };
        for kernel in [SoftmaxKernel::Chunked, SoftmaxKernel::Projected] {
            let mut params = ParamStore::new();
            let tables = Item2VecTables::register_seeded(&mut params, 50, &config, 1).unwrap();
            let make = |simd: bool| {
                let train = Examples::build(&seqs, config.window, config.drop_ends);
                let o = Item2VecObjective::new(config, tables, 50, train, None, 1)
                    .unwrap()
                    .with_softmax_kernel(kernel);
                if simd {
                    o
                } else {
                    o.without_simd()
                }
            };
            let units: Vec<u32> = (0..seqs.len() as u32).collect();
            let (mut ga, mut gb) = (Grads::zeros_like(&params), Grads::zeros_like(&params));
            let a = make(true).loss_and_grad(&params, &units, &mut ga);
            let b = make(false).loss_and_grad(&params, &units, &mut gb);
            assert_eq!(a.sum.to_bits(), b.sum.to_bits(), "{arch:?} {kernel:?}: loss {} vs {}", a.sum, b.sum);
            for (x, y) in ga.tables().iter().zip(gb.tables()) {
                assert!(
                    x.data.iter().zip(&y.data).all(|(p, q)| p.to_bits() == q.to_bits()),
                    "{arch:?} {kernel:?}"
                );
            }
        }
    }
}

/// Every build of the two-token row pass this CPU runs (portable, AVX2, AVX-512 register
/// tiles) gives the portable build's loss and gradients bitwise, at vocabularies below one
/// sixteen-lane register, inside one tile, and across tiles with a masked tail (V = 300 is
/// two 128-column tiles and 44 columns), sum and mean contexts, with rows whose examples are
/// not a multiple of the four sums taken at a time.
/// A fresh projected-kernel objective over `like`'s tables and training examples, in build `isa`.
fn projected_in(
    like: &Item2VecObjective,
    config: Item2VecConfig,
    vocab: usize,
    seed: u64,
    isa: super::softmax::Isa,
) -> Item2VecObjective {
    Item2VecObjective::new(config, like.tables(), vocab, like.train_examples().clone(), None, seed)
        .unwrap()
        .with_softmax_kernel(SoftmaxKernel::Projected)
        .with_isa(isa)
}

/// A lane's `S` rows are cleared only when first marked in a batch (no `V x V` clear each
/// batch): a batch run after others on the same objective, whose lanes hold the earlier
/// batches' stale rows, gives bitwise the loss and gradient of a fresh objective, in every
/// build, through the row pass, the per-example kernel in several lanes (the one-token
/// contexts at the sequences' ends) and their sum, and both backward products (most rows
/// marked: over all of `S`; one sequence: over the gathered rows).
#[test]
fn stale_rows_of_s_never_leak_into_a_later_batch() {
    use super::softmax::Isa;
    for vocab in [37usize, 300, 600] {
        let seqs = sequences(vocab as u32, 60, 80, vocab as u64 + 1);
        let config = Item2VecConfig { dim: 8, drop_ends: false, ..Default::default() };
        let (params, _, projected) = setup(config, vocab, &seqs, 3);
        let all: Vec<u32> = (0..seqs.len() as u32).collect();
        // Every sequence (pair tables, most rows marked), one sequence (per example, the
        // gathered products), eight (fewer examples than V at V = 300 and 600: several lanes
        // per example, rows the first lane never marks), half, every one again.
        let batches = [all.clone(), vec![7], all[..8].to_vec(), all[..30].to_vec(), all.clone()];
        for isa in Isa::supported() {
            let make = || projected_in(&projected, config, vocab, 3, isa);
            let reused = make();
            for units in &batches {
                let run = |o: &Item2VecObjective| {
                    let mut g = Grads::zeros_like(&params);
                    let loss = o.loss_and_grad(&params, units, &mut g);
                    let bits: Vec<Vec<u32>> =
                        g.tables().iter().map(|t| t.data.iter().map(|x| x.to_bits()).collect()).collect();
                    (loss.sum.to_bits(), bits)
                };
                let (got, want) = (run(&reused), run(&make()));
                assert!(got == want, "V {vocab} {isa:?}, a batch of {} sequences", units.len());
            }
        }
    }
}

/// The row pass keeps each training batch's and the validation set's row index for the next
/// pass over the same ids: passes over batches seen before (their index reused), over other
/// batches in between, over the validation set twice, and over more distinct batches than
/// are kept (the least recently used replaced, then met again) each give a fresh objective's
/// loss and gradients bit for bit.
#[test]
fn kept_row_indices_give_a_fresh_pass_bitwise() {
    for (vocab, n) in [(11usize, 80usize), (37, 60), (300, 40)] {
        let seqs = sequences(vocab as u32, n, 80, vocab as u64 + 9);
        let val_seqs = sequences(vocab as u32, 20, 80, vocab as u64 + 10);
        let config = Item2VecConfig { dim: 8, drop_ends: false, ..Default::default() };
        let (params, _, projected) = setup(config, vocab, &seqs, 4);
        let make = || {
            let val = Examples::build(&val_seqs, config.window, config.drop_ends);
            Item2VecObjective::new(
                config,
                projected.tables(),
                vocab,
                projected.train_examples().clone(),
                Some(val),
                4,
            )
            .unwrap()
            .with_softmax_kernel(SoftmaxKernel::Projected)
        };
        let all: Vec<u32> = (0..n as u32).collect();
        let (a, b) = (all[..n / 2].to_vec(), all[n / 4..].to_vec());
        let mut batches =
            vec![Some(a.clone()), Some(b.clone()), Some(a.clone()), None, Some(b), None, Some(a)];
        // More distinct batches than are kept, then the first of them (replaced) and the last.
        batches.extend(all.iter().map(|&u| Some(vec![u])));
        batches.extend([Some(vec![0]), Some(vec![n as u32 - 1]), None]);
        let reused = make();
        for (i, units) in batches.iter().enumerate() {
            let run = |o: &Item2VecObjective| match units {
                Some(units) => {
                    let mut g = Grads::zeros_like(&params);
                    let loss = o.loss_and_grad(&params, units, &mut g);
                    let bits: Vec<Vec<u32>> =
                        g.tables().iter().map(|t| t.data.iter().map(|x| x.to_bits()).collect()).collect();
                    (loss.sum.to_bits(), bits)
                }
                None => (o.validation_loss(&params).unwrap().sum.to_bits(), Vec::new()),
            };
            assert!(run(&reused) == run(&make()), "V {vocab}, pass {i}");
        }
    }
}

/// Every build this CPU runs (portable, AVX2, AVX-512: the table fill, the sums and the row
/// pass) gives bitwise the portable build's loss and gradient, in both forms of the row pass:
/// one sweep (one thread) and two phases over parallel blocks (two threads), on a batch that
/// follows another.
#[test]
fn pair_row_builds_match_the_portable_build_bitwise() {
    use super::softmax::Isa;
    for (vocab, dim) in [(11usize, 3usize), (37, 13), (150, 8), (300, 20)] {
        let seqs = sequences(vocab as u32, 60, 80, vocab as u64);
        for context in [ContextReduce::Sum, ContextReduce::Mean] {
            let config = Item2VecConfig { context, dim, drop_ends: false, ..Default::default() };
            let (params, _, projected) = setup(config, vocab, &seqs, 5);
            let units: Vec<u32> = (0..seqs.len() as u32).collect();
            let run = |isa: Isa, threads: usize| {
                let o = projected_in(&projected, config, vocab, 5, isa);
                let mut g = Grads::zeros_like(&params);
                let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
                // A first batch leaves stale rows of `S` behind for the second.
                pool.install(|| o.loss_and_grad(&params, &units[..units.len() / 2], &mut g));
                let mut g = Grads::zeros_like(&params);
                let loss = pool.install(|| o.loss_and_grad(&params, &units, &mut g));
                (loss.sum, g)
            };
            let (want, gw) = run(Isa::Portable, 2);
            for isa in Isa::supported() {
                for threads in [1, 2] {
                    let (got, gg) = run(isa, threads);
                    let case = format!("V {vocab} {context:?} {isa:?} {threads} threads");
                    assert_eq!(got.to_bits(), want.to_bits(), "{case}: loss {got} vs {want}");
                    for (x, y) in gg.tables().iter().zip(gw.tables()) {
                        let same = x.data.iter().zip(&y.data).all(|(p, q)| p.to_bits() == q.to_bits());
                        assert!(same, "{case}: gradients differ");
                    }
                }
            }
        }
    }
}

#[test]
fn projected_gradient_matches_finite_differences() {
    let seqs = sequences(9, 6, 10, 21);
    for (arch, context) in [
        (Architecture::Cbow, ContextReduce::Sum),
        (Architecture::Cbow, ContextReduce::Mean),
        (Architecture::Skipgram, ContextReduce::Sum),
    ] {
        let config = Item2VecConfig { architecture: arch, context, dim: 4, window: 2, ..Default::default() };
        let (params, _, projected) = setup(config, 9, &seqs, 4);
        let units: Vec<u32> = (0..seqs.len() as u32).collect();
        let opts = GradCheckOptions { eps: 1e-2, tol: 2e-2, ..Default::default() };
        let report = check_with(&projected, &params, &units, &opts);
        assert!(report.checked >= 9 * 4 * 2 + 9, "checked {}", report.checked);
        assert!(report.passed(), "{arch:?} {context:?}: {report}");
    }
}

fn table(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .flat_map(|row| row.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32))
        .collect()
}

fn close(a: f64, b: f64, rel: f64) -> bool {
    (a - b).abs() <= rel * a.abs().max(b.abs()) + 1e-7
}

/// The PyTorch CBOW fixtures (as crates/models/tests/item_parity.rs checks them) with the
/// projected kernel forced: losses before each Adam step and the final tables to 1e-5 relative.
fn projected_parity(name: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/torch").join(name);
    // The fixtures are committed (benches/peers/make_fixtures.py): a missing one is a failure.
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("committed fixture {} unreadable: {e}", path.display()));
    let f: Value = serde_json::from_str(&text).unwrap();
    let (k, vocab) = (f["k"].as_u64().unwrap() as usize, f["vocab"].as_u64().unwrap() as usize);
    let context =
        if f["context"].as_str() == Some("mean") { ContextReduce::Mean } else { ContextReduce::Sum };
    let config = Item2VecConfig { dim: k, context, ..Item2VecConfig::default() };
    let mut params = ParamStore::new();
    let tables = Item2VecTables::register_seeded(&mut params, vocab, &config, 0).unwrap();
    for (id, tname) in
        [(tables.embedding, "embedding"), (tables.out_weight, "out_weight"), (tables.out_bias, "out_bias")]
    {
        params.get_mut(id).data = table(&f["initial"][tname]);
    }
    let betas = f["betas"].as_array().unwrap();
    let mut adam = Adam::new(AdamConfig {
        beta1: betas[0].as_f64().unwrap() as f32,
        beta2: betas[1].as_f64().unwrap() as f32,
        eps: f["eps"].as_f64().unwrap() as f32,
        weight_decay: f["weight_decay"].as_f64().unwrap() as f32,
    });
    let lr = f["lr"].as_f64().unwrap() as f32;
    let mut grads = Grads::zeros_like(&params);
    let batches = f["batches"].as_array().unwrap();
    assert!(!batches.is_empty());
    for (step, (batch, want)) in batches.iter().zip(f["losses"].as_array().unwrap()).enumerate() {
        let contexts: Vec<Vec<u32>> = batch["contexts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect())
            .collect();
        let targets: Vec<u32> =
            batch["targets"].as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect();
        let ex = Examples::from_examples(&contexts, &targets);
        let obj = Item2VecObjective::new(config, tables, vocab, ex, None, 0)
            .unwrap()
            .with_softmax_kernel(SoftmaxKernel::Projected);
        let loss = obj.loss_and_grad(&params, &[0], &mut grads);
        let want = want.as_f64().unwrap();
        assert!(close(loss.mean(), want, 1e-5), "{name} step {step}: loss {} vs torch {want}", loss.mean());
        adam.step(&mut params, &grads, lr);
        grads.clear();
    }
    for (id, tname) in
        [(tables.embedding, "embedding"), (tables.out_weight, "out_weight"), (tables.out_bias, "out_bias")]
    {
        let want = table(&f["final"][tname]);
        let got = &params.get(id).data;
        assert_eq!(got.len(), want.len());
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!(close(*g as f64, *w as f64, 1e-5), "{name} {tname}[{i}]: {g} vs torch {w}");
        }
    }
}

#[test]
fn projected_kernel_matches_pytorch_cbow_adam() {
    projected_parity("cbow_adam.json");
}

#[test]
fn projected_kernel_matches_pytorch_cbow_adam_weight_decay() {
    projected_parity("cbow_adam_wd.json");
}

/// Loss and gradients of one batch of `seqs` over `units`.
fn batch(obj: &Item2VecObjective, params: &ParamStore, units: &[u32]) -> (f64, Grads) {
    let mut g = Grads::zeros_like(params);
    let loss = obj.loss_and_grad(params, units, &mut g);
    (loss.sum, g)
}

/// Eight lanes of the projected kernel sum their `S` and do the backward products once: the
/// same loss and gradient (to f32 rounding: the lanes' sums are grouped differently) as the
/// chunked kernel and as the per-lane backward, including the gathered path (tokens of only
/// half the vocabulary, so fewer rows than V are marked), and bitwise the same on 1 and 2
/// threads.
#[test]
fn projected_lanes_share_one_backward() {
    let vocab = 120;
    let seqs = sequences(60, 48, 80, 23);
    let units: Vec<u32> = (0..seqs.len() as u32).collect();
    for (arch, context, window) in
        [(Architecture::Cbow, ContextReduce::Sum, 1), (Architecture::Skipgram, ContextReduce::Sum, 1)]
    {
        let config = Item2VecConfig { architecture: arch, context, window, dim: 12, ..Default::default() };
        let mut params = ParamStore::new();
        let tables = Item2VecTables::register_seeded(&mut params, vocab, &config, 5).unwrap();
        let make = |kernel, lanes, per_lane| {
            let train = Examples::build(&seqs, config.window, config.drop_ends);
            assert!(train.len() >= 8 * 128, "{} examples fill fewer than 8 lanes", train.len());
            Item2VecObjective::new(config, tables, vocab, train, None, 5)
                .unwrap()
                .with_lanes(lanes)
                .with_softmax_kernel(kernel)
                .with_per_lane_backward(per_lane)
        };
        let summed = make(SoftmaxKernel::Projected, 8, false);
        let (loss, g) = batch(&summed, &params, &units);
        for other in [make(SoftmaxKernel::Chunked, 1, false), make(SoftmaxKernel::Projected, 8, true)] {
            let (l2, g2) = batch(&other, &params, &units);
            assert!((loss - l2).abs() <= 1e-5 * loss.abs(), "{arch:?}: loss {loss} vs {l2}");
            for (t, (x, y)) in g.tables().iter().zip(g2.tables()).enumerate() {
                let mut rows = (x.touched_rows().to_vec(), y.touched_rows().to_vec());
                rows.0.sort_unstable();
                rows.1.sort_unstable();
                assert_eq!(rows.0, rows.1, "{arch:?}: touched rows of table {t}");
                let big = x.data.iter().fold(0.0f32, |m, v| m.max(v.abs()));
                for (i, (&p, &q)) in x.data.iter().zip(&y.data).enumerate() {
                    assert!((p - q).abs() <= 2e-5 * big, "{arch:?} table {t}[{i}]: {p} vs {q}");
                }
            }
            // Tokens 60.. never occur: their embedding gradient rows stay exactly zero.
            let e = &g.tables()[summed.tables().embedding.0];
            assert!(e.data[60 * config.dim..].iter().all(|&x| x == 0.0), "{arch:?}");
        }
        let on = |threads| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            pool.install(|| batch(&make(SoftmaxKernel::Projected, 8, false), &params, &units))
        };
        let ((l1, g1), (l2, g2)) = (on(1), on(2));
        assert_eq!(l1.to_bits(), l2.to_bits(), "{arch:?}");
        for (x, y) in g1.tables().iter().zip(g2.tables()) {
            assert!(x.data.iter().zip(&y.data).all(|(p, q)| p.to_bits() == q.to_bits()), "{arch:?}");
        }
    }
}

/// A vocabulary whose `S` outgrows a lane's cache share (600^2 floats, 1.44 MB) opens fewer
/// lanes in a projected gradient pass (here 2 of 8): still the chunked kernel's loss and
/// gradient to f32 rounding, and bitwise the same on 1, 2 and 4 threads.
#[test]
fn a_large_vocabulary_takes_fewer_projected_lanes_and_stays_thread_independent() {
    let vocab = 600;
    let seqs = sequences(vocab as u32, 150, 80, 7);
    let units: Vec<u32> = (0..seqs.len() as u32).collect();
    let config = Item2VecConfig { dim: 8, ..Default::default() };
    let mut params = ParamStore::new();
    let tables = Item2VecTables::register_seeded(&mut params, vocab, &config, 3).unwrap();
    let make = |kernel| {
        let train = Examples::build(&seqs, config.window, config.drop_ends);
        assert!(train.len() >= 8 * 128 && train.len() < 3 * 4 * vocab, "{} examples", train.len());
        Item2VecObjective::new(config, tables, vocab, train, None, 5).unwrap().with_softmax_kernel(kernel)
    };
    let on = |threads, kernel| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| batch(&make(kernel), &params, &units))
    };
    let (loss, g) = on(1, SoftmaxKernel::Projected);
    for threads in [2, 4] {
        let (l, gt) = on(threads, SoftmaxKernel::Projected);
        assert_eq!(loss.to_bits(), l.to_bits(), "{threads} threads");
        for (x, y) in g.tables().iter().zip(gt.tables()) {
            assert!(x.data.iter().zip(&y.data).all(|(p, q)| p.to_bits() == q.to_bits()), "{threads} threads");
        }
    }
    let (l2, g2) = on(2, SoftmaxKernel::Chunked);
    assert!((loss - l2).abs() <= 1e-5 * loss.abs(), "loss {loss} vs {l2}");
    for (t, (x, y)) in g.tables().iter().zip(g2.tables()).enumerate() {
        let big = x.data.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        for (i, (&p, &q)) in x.data.iter().zip(&y.data).enumerate() {
            assert!((p - q).abs() <= 2e-5 * big, "table {t}[{i}]: {p} vs {q}");
        }
    }
}

#[test]
fn auto_choice_follows_the_operation_count() {
    // The notebook: V = 50, k = 20, ~1,800 examples of 2 context tokens a batch.
    assert!(projected_pays(50, 20, 1800, 3600, Some(8)));
    assert!(projected_pays(50, 20, 460, 920, None));
    // V = 1000: 1,100 examples pay for the products alone (60M + 4.4M < 66M multiply-adds),
    // not once eight lanes' S are summed (+ 7M).
    assert!(projected_pays(1000, 20, 1100, 2200, Some(1)));
    assert!(!projected_pays(1000, 20, 1100, 2200, Some(8)));
    // A loss-only pass sums no S: 20M + 2.6M < 26M whatever the lanes.
    assert!(projected_pays(1000, 20, 1300, 2600, None));
    // The fixtures' 7-example batches over 12 tokens: 3 V^2 k = 2160 + 336 > 3 n V k = 1260.
    assert!(!projected_pays(12, 5, 7, 14, Some(1)));
    // Context rows as costly as the products: 2 * 40 * V > 3 * k * V for k = 20.
    assert!(!projected_pays(50, 20, 100_000, 4_000_000, Some(8)));
    assert!(!projected_pays(MAX_PROJECTED_VOCAB + 1, 100, 1 << 30, 1 << 30, Some(1)));
    assert!(!projected_pays(50, 20, 0, 0, Some(1)));
    assert!(SoftmaxKernel::Projected.use_projected(12, 5, 7, 14, Some(1)));
    assert!(!SoftmaxKernel::Projected.use_projected(MAX_PROJECTED_VOCAB + 1, 5, 7, 14, Some(1)));
    assert!(!SoftmaxKernel::Chunked.use_projected(50, 20, 1800, 3600, Some(8)));
}
