//! The determinism invariant (docs/ARCHITECTURE.md) for every model on the CPU: the same config
//! and seed give bitwise-identical weights and loss histories in rayon pools of 1, 2 and 4
//! threads — P0 CBOW and skip-gram with full softmax and with negative sampling, P1, P2, P3, P4 —
//! on small synthetic data whose batches are large enough to be split into several lanes.

#![allow(clippy::unwrap_used)]

use reelvec_data::Dataset;
use reelvec_engine::{History, ParamStore};
use reelvec_models::item2vec::{Architecture, OutputLoss};
use reelvec_models::pipelines::{p0_cbow, p1_cooc, p2_mf, p3_recommender, p4_residual};

mod common;

fn data() -> Dataset {
    common::small_synthetic()
}

/// Every table's bits, in store order, and the per-epoch losses' bits.
type Fingerprint = (Vec<(String, Vec<u32>)>, Vec<(u64, Option<u64>)>);

fn fingerprint(params: &ParamStore, history: Option<&History>) -> Fingerprint {
    let tables = params
        .tables()
        .iter()
        .map(|t| (t.name.clone(), t.data.iter().map(|x| x.to_bits()).collect()))
        .collect();
    let losses = history
        .map(|h| h.epochs.iter().map(|e| (e.train_loss.to_bits(), e.val_loss.map(f64::to_bits))).collect())
        .unwrap_or_default();
    (tables, losses)
}

fn in_pool<T: Send>(threads: usize, f: impl FnOnce() -> T + Send) -> T {
    rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap().install(f)
}

/// Runs `train` in pools of 1, 2 and 4 threads and requires bitwise-identical results.
fn same_on_1_2_4_threads(name: &str, train: impl Fn() -> Fingerprint + Sync) {
    let one = in_pool(1, &train);
    assert!(!one.0.is_empty(), "{name}: no tables");
    for threads in [2, 4] {
        let other = in_pool(threads, &train);
        for ((na, a), (nb, b)) in one.0.iter().zip(&other.0) {
            assert_eq!(na, nb);
            let differing = a.iter().zip(b).filter(|(x, y)| x != y).count();
            assert_eq!(
                differing, 0,
                "{name}: table `{na}` differs in {differing} values on 1 vs {threads} threads"
            );
        }
        assert_eq!(one.1, other.1, "{name}: loss history differs on 1 vs {threads} threads");
    }
}

#[test]
fn item2vec_weights_are_bitwise_identical_for_any_thread_count() {
    let ds = data();
    for arch in [Architecture::Cbow, Architecture::Skipgram] {
        for loss in [OutputLoss::FullSoftmax, OutputLoss::NegativeSampling] {
            let mut cfg =
                p0_cbow::Config { top_movies: 0, min_user_ratings: 10, ..p0_cbow::Config::default() };
            cfg.model.architecture = arch;
            cfg.model.loss = loss;
            cfg.train.epochs = 2;
            cfg.train.batch_size = 128;
            cfg.train.quiet = true;
            same_on_1_2_4_threads(&format!("P0 {arch:?} {loss:?}"), || {
                let out = p0_cbow::run(&ds, &cfg).unwrap();
                fingerprint(out.model.params(), Some(&out.history))
            });
        }
    }
}

#[test]
fn item2vec_with_gensims_epoch_options_is_bitwise_identical_for_any_thread_count() {
    // Subsampling, shrunk windows and the alpha -> min_alpha decay redraw per (seed, epoch,
    // sequence), never per thread. The keys parse under gensim's names.
    let ds = data();
    let model: reelvec_models::item2vec::Item2VecConfig = serde_json::from_value(serde_json::json!({
        "architecture": "skipgram", "loss": "negative_sampling", "window": 3, "negative": 4,
        "ns_exponent": 0.5, "sample": 1e-2, "shrink_windows": true, "alpha": 0.02, "min_alpha": 0.0001
    }))
    .unwrap();
    assert_eq!((model.negatives, model.unigram_power), (4, 0.5));
    let mut cfg =
        p0_cbow::Config { top_movies: 0, min_user_ratings: 10, model, ..p0_cbow::Config::default() };
    cfg.train.epochs = 3;
    cfg.train.batch_size = 128;
    cfg.train.quiet = true;
    let run = |cfg: &p0_cbow::Config| {
        let out = p0_cbow::run(&ds, cfg).unwrap();
        fingerprint(out.model.params(), Some(&out.history))
    };
    same_on_1_2_4_threads("P0 skip-gram with sample and shrink_windows", || run(&cfg));
    // The options change what trains: without them the weights differ.
    let plain = p0_cbow::Config {
        model: reelvec_models::item2vec::Item2VecConfig { sample: 0.0, shrink_windows: false, ..cfg.model },
        ..cfg.clone()
    };
    assert_ne!(run(&cfg).0, run(&plain).0);
}

#[test]
fn item2vec_pair_sgd_is_bitwise_identical_for_any_thread_count() {
    // gensim's per-pair SGD (`model.trainer = "pair_sgd"`) through P0, with subsampling and
    // shrunk windows: deterministic lanes, never per thread.
    let ds = data();
    for arch in ["skipgram", "cbow"] {
        let model: reelvec_models::item2vec::Item2VecConfig = serde_json::from_value(serde_json::json!({
            "architecture": arch, "loss": "negative_sampling", "window": 3, "negative": 4,
            "sample": 1e-2, "shrink_windows": true, "alpha": 0.025, "min_alpha": 0.0001,
            "context": "mean", "drop_ends": false, "trainer": "pair_sgd"
        }))
        .unwrap();
        let mut cfg =
            p0_cbow::Config { top_movies: 0, min_user_ratings: 10, model, ..p0_cbow::Config::default() };
        cfg.train.epochs = 2;
        cfg.train.quiet = true;
        same_on_1_2_4_threads(&format!("P0 {arch} pair_sgd"), || {
            let out = p0_cbow::run(&ds, &cfg).unwrap();
            assert_eq!(out.history.optimizer, "pair_sgd");
            fingerprint(out.model.params(), Some(&out.history))
        });
    }
}

#[test]
fn cooc_weights_are_bitwise_identical_for_any_thread_count() {
    let ds = data();
    let mut cfg = p1_cooc::Config { reference: p1_cooc::ReferenceChoice::None, ..p1_cooc::Config::default() };
    cfg.model.steps = 30;
    same_on_1_2_4_threads("P1", || {
        let out = p1_cooc::run(&ds, &cfg).unwrap();
        let mut fp = fingerprint(out.model.params(), None);
        fp.1 = out.costs.iter().map(|c| (c.masked.to_bits(), Some(c.unmasked.to_bits()))).collect();
        fp
    });
}

#[test]
fn mf_weights_are_bitwise_identical_for_any_thread_count() {
    let ds = data();
    let mut p2 = p2_mf::Config::default();
    p2.train.epochs = 2;
    p2.train.quiet = true;
    same_on_1_2_4_threads("P2", || {
        let out = p2_mf::run(&ds, &p2).unwrap();
        fingerprint(out.model.params(), Some(&out.history))
    });
    let mut p3 = p3_recommender::Config::default();
    p3.train.epochs = 2;
    p3.train.quiet = true;
    same_on_1_2_4_threads("P3", || {
        let out = p3_recommender::run(&ds, &p3).unwrap();
        fingerprint(out.model.params(), Some(&out.history))
    });
    let mut p4 = p4_residual::Config::default();
    p4.train.epochs = 2;
    p4.train.quiet = true;
    same_on_1_2_4_threads("P4", || {
        let out = p4_residual::run(&ds, &p4).unwrap();
        fingerprint(out.model.params(), Some(&out.history))
    });
}
