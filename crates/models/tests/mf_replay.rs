//! With `train.lazy_replay` the MF pipelines' Adam runs as `ReplayAdam` (untouched rows brought
//! up to date lazily) instead of the dense pass every step: P2 (weight decay) and P3 give
//! bitwise-identical tables and loss histories either way, on 1 and 2 threads, on a sparsely
//! rated catalogue where most movie rows sit idle for hundreds of steps between ratings
//! (subnormal moments included) and across epoch boundaries.

#![allow(clippy::unwrap_used)]

mod common;

use reelvec_engine::{History, ParamStore};
use reelvec_models::pipelines::{p2_mf, p3_recommender};

/// Every table's bits, the per-epoch losses' bits and the optimizer named in the history.
type Fingerprint = (Vec<(String, Vec<u32>)>, Vec<(u64, Option<u64>)>, String);

fn fingerprint(params: &ParamStore, history: &History) -> Fingerprint {
    (common::table_bits(params), common::loss_bits(history), history.optimizer.clone())
}

fn in_pool<T: Send>(threads: usize, f: impl FnOnce() -> T + Send) -> T {
    rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap().install(f)
}

fn assert_same(name: &str, dense: &Fingerprint, replay: &Fingerprint) {
    for ((table, a), (_, b)) in dense.0.iter().zip(&replay.0) {
        let differing = a.iter().zip(b).filter(|(x, y)| x != y).count();
        assert_eq!(differing, 0, "{name}: table `{table}` differs in {differing} values");
    }
    assert_eq!(dense.1, replay.1, "{name}: loss histories differ");
    assert_eq!(dense.2, replay.2, "{name}: the history names a different optimizer");
}

#[test]
fn p2_and_p3_replay_is_bitwise_the_dense_adam_pass_on_1_and_2_threads() {
    let ds = common::sparse_catalogue();
    let p2 = |dense: bool| {
        let mut cfg = p2_mf::Config::default();
        cfg.train.epochs = 3;
        cfg.train.batch_size = 4;
        cfg.train.quiet = true;
        cfg.train.lazy_replay = !dense;
        let out = p2_mf::run(&ds, &cfg).unwrap();
        fingerprint(out.model.params(), &out.history)
    };
    let p3 = |dense: bool| {
        let mut cfg = p3_recommender::Config::default();
        cfg.train.epochs = 3;
        cfg.train.batch_size = 4;
        cfg.train.quiet = true;
        cfg.train.lazy_replay = !dense;
        let out = p3_recommender::run(&ds, &cfg).unwrap();
        fingerprint(out.model.params(), &out.history)
    };
    let (p2_dense, p3_dense) = in_pool(1, || (p2(true), p3(true)));
    for threads in [1, 2] {
        let (p2_replay, p3_replay) = in_pool(threads, || (p2(false), p3(false)));
        assert_same(&format!("P2, {threads} threads"), &p2_dense, &p2_replay);
        assert_same(&format!("P3, {threads} threads"), &p3_dense, &p3_replay);
    }
}

#[test]
fn the_replay_switch_is_off_by_default_and_named_in_the_config() {
    assert!(!p2_mf::Config::default().train.lazy_replay);
    let mut cfg = p3_recommender::Config::default();
    assert!(!toml::to_string(&cfg).unwrap().contains("lazy_replay"));
    cfg.train.lazy_replay = true;
    let text = toml::to_string(&cfg).unwrap();
    assert!(text.contains("lazy_replay = true"), "{text}");
}
