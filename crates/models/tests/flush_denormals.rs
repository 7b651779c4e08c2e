//! What `train.flush_denormals` (FTZ/DAZ, reelvec-engine's `fpenv`) changes in the MF pipelines'
//! PyTorch-exact dense Adam, at the notebook settings with batch 1 (so that rarely rated movies
//! sit idle for hundreds of steps and their Adam moments decay into the subnormal range):
//! P3 (no weight decay) gives bitwise-identical tables and loss histories; P2 (weight decay)
//! bitwise-identical training losses and rows of every user and of every movie a training
//! rating touches; only movies without a training rating (moved by weight decay alone) may
//! differ, and with them the validation loss in its last digits.

#![allow(clippy::unwrap_used)]

mod common;

use reelvec_engine::{History, ParamStore};
use reelvec_models::pipelines::{p2_mf, p3_recommender};

/// Every table's bits and the per-epoch losses' bits.
type Fingerprint = (Vec<(String, Vec<u32>)>, Vec<(u64, Option<u64>)>);

fn fingerprint(params: &ParamStore, history: &History) -> Fingerprint {
    (common::table_bits(params), common::loss_bits(history))
}

fn assert_same(name: &str, exact: &Fingerprint, flushed: &Fingerprint) {
    for ((table, a), (_, b)) in exact.0.iter().zip(&flushed.0) {
        let differing = a.iter().zip(b).filter(|(x, y)| x != y).count();
        assert_eq!(differing, 0, "{name}: table `{table}` differs in {differing} values");
    }
    assert_eq!(exact.1, flushed.1, "{name}: loss histories differ");
}

#[test]
fn p3_is_bitwise_unchanged_by_flushing_subnormals() {
    let ds = common::sparse_catalogue();
    let run_p3 = |flush: bool| {
        let mut cfg = p3_recommender::Config::default();
        cfg.train.epochs = 3;
        cfg.train.batch_size = 1;
        cfg.train.quiet = true;
        cfg.train.flush_denormals = flush;
        let out = p3_recommender::run(&ds, &cfg).unwrap();
        fingerprint(out.model.params(), &out.history)
    };
    assert_same("P3", &run_p3(false), &run_p3(true));
}

#[test]
fn p2_differs_only_in_movies_without_training_ratings() {
    let ds = common::sparse_catalogue();
    let run_p2 = |flush: bool| {
        let mut cfg = p2_mf::Config::default();
        cfg.train.epochs = 3;
        cfg.train.batch_size = 1;
        cfg.train.quiet = true;
        cfg.train.flush_denormals = flush;
        p2_mf::run(&ds, &cfg).unwrap()
    };
    let (exact, flushed) = (run_p2(false), run_p2(true));
    let trained: std::collections::HashSet<u32> =
        exact.train_rows.iter().map(|&r| ds.ratings.movie[r as usize]).collect();
    assert!(trained.len() < ds.movies.len(), "the data leaves some movies without training ratings");
    for (a, b) in exact.model.params().tables().iter().zip(flushed.model.params().tables()) {
        let cols = a.cols;
        for (i, (x, y)) in a.data.iter().zip(&b.data).enumerate() {
            let row = (i / cols) as u32;
            let idle_movie = a.name.starts_with("movie") && !trained.contains(&row);
            assert!(
                x.to_bits() == y.to_bits() || idle_movie,
                "table `{}` row {row}: {x:e} vs {y:e} (a row that training touches)",
                a.name
            );
        }
    }
    for (e, f) in exact.history.epochs.iter().zip(&flushed.history.epochs) {
        assert_eq!(e.train_loss.to_bits(), f.train_loss.to_bits(), "training loss of epoch {}", e.epoch);
        let (ev, fv) = (e.val_loss.unwrap(), f.val_loss.unwrap());
        assert!((ev - fv).abs() <= 1e-6 * ev, "validation loss of epoch {}: {ev} vs {fv}", e.epoch);
    }
}

#[test]
fn the_mode_is_off_by_default_and_named_in_the_config() {
    assert!(!p2_mf::Config::default().train.flush_denormals);
    assert!(!p3_recommender::Config::default().train.flush_denormals);
    let mut cfg = p3_recommender::Config::default();
    cfg.train.flush_denormals = true;
    let text = toml::to_string(&cfg).unwrap();
    assert!(text.contains("flush_denormals = true"), "{text}");
}
