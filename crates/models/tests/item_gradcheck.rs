//! Finite-difference checks of the item2vec objectives (CBOW / skip-gram x full softmax /
//! negative sampling x sum / mean), a hand-computed CBOW loss, and lane determinism.

#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use rand::SeedableRng;
use reelvec_engine::{Grads, Objective, ParamStore};
use reelvec_models::item2vec::{
    Architecture, ContextReduce, ContextSide, Examples, Item2VecConfig, Item2VecObjective, Item2VecTables,
    OutputLoss,
};

fn setup(
    config: Item2VecConfig,
    vocab: usize,
    sequences: &[Vec<u32>],
    seed: u64,
) -> (ParamStore, Item2VecObjective) {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut params = ParamStore::new();
    let tables = Item2VecTables::register(&mut params, vocab, &config, &mut rng).unwrap();
    // Spread the output layer so the softmax is not flat.
    for t in params.tables_mut() {
        t.data.iter_mut().for_each(|x| *x *= 1.5);
    }
    let train = Examples::for_config(sequences, &config);
    let obj = Item2VecObjective::new(config, tables, vocab, train, None, seed).unwrap();
    (params, obj)
}

fn mean_loss(obj: &Item2VecObjective, params: &ParamStore, units: &[u32], draw: u64) -> f64 {
    let (s, c) = obj.batch_loss_and_grad(params, units, draw, None);
    s / c as f64
}

/// Central differences on a sample of coordinates of every table.
fn check(
    config: Item2VecConfig,
    vocab: usize,
    sequences: Vec<Vec<u32>>,
    seed: u64,
) -> Result<(), TestCaseError> {
    prop_assume!(!Examples::for_config(&sequences, &config).is_empty());
    let (mut params, obj) = setup(config, vocab, &sequences, seed);
    let units: Vec<u32> = (0..sequences.len() as u32).collect();
    let draw = 3;
    let mut grads = Grads::zeros_like(&params);
    let (_, count) = obj.batch_loss_and_grad(&params, &units, draw, Some(&mut grads));
    prop_assume!(count > 0);
    let h = 1e-2f32;
    for t in 0..params.tables().len() {
        let n = params.tables()[t].data.len();
        for idx in (0..n).step_by((n / 12).max(1)) {
            let orig = params.tables()[t].data[idx];
            params.tables_mut()[t].data[idx] = orig + h;
            let up = mean_loss(&obj, &params, &units, draw);
            params.tables_mut()[t].data[idx] = orig - h;
            let down = mean_loss(&obj, &params, &units, draw);
            params.tables_mut()[t].data[idx] = orig;
            let fd = (up - down) / (2.0 * h as f64);
            let an = grads.tables()[t].data[idx] as f64;
            let tol = 2e-3 + 2e-2 * an.abs().max(fd.abs());
            prop_assert!(
                (fd - an).abs() <= tol,
                "table {} idx {idx}: finite difference {fd} vs analytic {an} ({config:?})",
                params.tables()[t].name
            );
        }
    }
    Ok(())
}

fn sequences_strategy(vocab: u32) -> impl Strategy<Value = Vec<Vec<u32>>> {
    prop::collection::vec(prop::collection::vec(0..vocab, 2..9), 1..5)
}

fn config_strategy() -> impl Strategy<Value = Item2VecConfig> {
    (
        prop_oneof![Just(Architecture::Cbow), Just(Architecture::Skipgram)],
        prop_oneof![Just(ContextReduce::Sum), Just(ContextReduce::Mean)],
        prop_oneof![Just(OutputLoss::FullSoftmax), Just(OutputLoss::NegativeSampling)],
        1usize..4,
        1usize..3,
        any::<bool>(),
        1usize..4,
        prop_oneof![Just(ContextSide::Both), Just(ContextSide::Previous)],
    )
        .prop_map(|(architecture, context, loss, dim, window, drop_ends, negatives, context_side)| {
            Item2VecConfig {
                architecture,
                context,
                loss,
                dim,
                window,
                context_side,
                drop_ends,
                negatives,
                unigram_power: 0.75,
                ..Item2VecConfig::default()
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn gradients_match_finite_differences(
        config in config_strategy(),
        (vocab, seqs) in (3u32..9).prop_flat_map(|v| (Just(v), sequences_strategy(v))),
        seed in 0u64..1000,
    ) {
        check(config, vocab as usize, seqs, seed)?;
    }
}

#[test]
fn cbow_full_softmax_loss_by_hand() {
    // V = 3, k = 1: E = [1, 2, -1], W = [1, 0, 2], b = [0, 1, 0].
    let config = Item2VecConfig { dim: 1, ..Item2VecConfig::default() };
    let (mut params, obj) = setup(config, 3, &[vec![0, 2, 1]], 0);
    params.tables_mut()[0].data.copy_from_slice(&[1.0, 2.0, -1.0]);
    params.tables_mut()[1].data.copy_from_slice(&[1.0, 0.0, 2.0]);
    params.tables_mut()[2].data.copy_from_slice(&[0.0, 1.0, 0.0]);
    // One example (ends dropped): context [0, 1], target 2; h = 1 + 2 = 3; z = [3, 1, 6].
    let z = [3.0f64, 1.0, 6.0];
    let lse = z.iter().map(|x| x.exp()).sum::<f64>().ln();
    let (sum, count) = obj.batch_loss_and_grad(&params, &[0], 0, None);
    assert_eq!(count, 1);
    assert!((sum - (lse - 6.0)).abs() < 1e-5, "{sum} vs {}", lse - 6.0);
    // dL/db = softmax(z) - onehot(2).
    let mut grads = Grads::zeros_like(&params);
    obj.batch_loss_and_grad(&params, &[0], 0, Some(&mut grads));
    for (j, &zj) in z.iter().enumerate() {
        let want = (zj - lse).exp() - if j == 2 { 1.0 } else { 0.0 };
        assert!((grads.tables()[2].data[j] as f64 - want).abs() < 1e-6);
    }
    // Only context rows of the embedding get a gradient: dL/dE[0] = dL/dE[1] = W^T dz.
    assert_eq!(grads.tables()[0].touched_rows().len(), 2);
    assert_eq!(grads.tables()[0].data[2], 0.0);
}

#[test]
fn lanes_are_deterministic_and_agree() {
    let seqs: Vec<Vec<u32>> = (0..40u32).map(|s| (0..30).map(|i| (s * 7 + i * 13) % 23).collect()).collect();
    let units: Vec<u32> = (0..40).collect();
    for loss in [OutputLoss::FullSoftmax, OutputLoss::NegativeSampling] {
        let config = Item2VecConfig { loss, dim: 6, ..Item2VecConfig::default() };
        let (params, obj1) = setup(config, 23, &seqs, 5);
        let (_, obj3) = setup(config, 23, &seqs, 5);
        let (obj1, obj3) = (obj1.with_lanes(1), obj3.with_lanes(3));
        let run = |obj: &Item2VecObjective| {
            let mut g = Grads::zeros_like(&params);
            let (s, c) = obj.batch_loss_and_grad(&params, &units, 9, Some(&mut g));
            (s, c, g)
        };
        let (s1, c1, g1) = run(&obj1);
        let (s3, c3, g3) = run(&obj3);
        let (s3b, _, g3b) = run(&obj3);
        assert_eq!(c1, c3);
        assert_eq!(s3.to_bits(), s3b.to_bits(), "same lanes must be bitwise identical");
        assert_eq!(g3, g3b);
        assert!((s1 - s3).abs() < 1e-6 * s1.abs(), "{s1} vs {s3}");
        for (a, b) in g1.tables().iter().zip(g3.tables()) {
            for (x, y) in a.data.iter().zip(&b.data) {
                assert!((x - y).abs() <= 1e-6 + 1e-4 * x.abs(), "{x} vs {y}");
            }
        }
    }
}

#[test]
fn objective_trait_reports_example_counts_and_validation() {
    let seqs = vec![vec![0, 1, 2, 3], vec![3, 2, 1]];
    let config = Item2VecConfig { architecture: Architecture::Skipgram, ..Item2VecConfig::default() };
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    let mut params = ParamStore::new();
    let tables = Item2VecTables::register(&mut params, 4, &config, &mut rng).unwrap();
    let train = Examples::build(&seqs, 1, true);
    let val = Examples::build(&[vec![1, 2, 3]], 1, true);
    let obj = Item2VecObjective::new(config, tables, 4, train, Some(val), 1).unwrap();
    assert_eq!(obj.train_units(), 2);
    let mut grads = Grads::zeros_like(&params);
    let loss = obj.loss_and_grad(&params, &[0, 1], &mut grads);
    // Skip-gram counts (target, context) pairs: 2 + 2 + 2.
    assert_eq!(loss.count, 6);
    let v = obj.validation_loss(&params).unwrap();
    assert_eq!(v.count, 2);
    assert!(v.mean() > 0.0);
}
