//! Training you can trust: every pipeline config is validated before any work (the error names
//! the key and its allowed range), a finite but exploding loss is divergence (no model comes
//! back), oversized tables and dense references are refused before allocating, and the
//! divergence factor leaves a wide margin on the pipelines' default settings.

#![allow(clippy::unwrap_used)]

use reelvec_data::{Dataset, IdMap, Ratings};
use reelvec_engine::{EngineError, History, DIVERGENCE_FACTOR};
use reelvec_models::cooc::{CoocProblem, LikeMatrix};
use reelvec_models::item2vec::{Architecture, OutputLoss};
use reelvec_models::pipelines::{p0_cbow, p1_cooc, p2_mf, p3_recommender, p4_residual};
use reelvec_models::ModelError;

mod common;

fn data() -> Dataset {
    common::small_synthetic()
}

fn p0() -> p0_cbow::Config {
    let mut c = p0_cbow::Config { top_movies: 0, min_user_ratings: 10, ..p0_cbow::Config::default() };
    c.train.quiet = true;
    c
}

#[track_caller]
fn expect_key<T: std::fmt::Debug>(result: Result<T, ModelError>, key: &str) {
    match result {
        Err(ModelError::ConfigValue { key: k, allowed, value }) => {
            assert_eq!(k, key, "value {value}");
            assert!(!allowed.is_empty());
            let msg = ModelError::ConfigValue { key: k, value, allowed }.to_string();
            assert!(msg.contains(key) && msg.contains("allowed"), "{msg}");
        }
        other => panic!("{key}: expected ConfigValue, got {other:?}"),
    }
}

#[test]
fn bad_values_are_refused_before_any_work_naming_the_key() {
    let ds = data();
    // P2, P3, P4: the MF family.
    let p2 = p2_mf::Config::default();
    expect_key(p2_mf::run(&ds, &p2_mf::Config { init_std: -1.0, ..p2.clone() }), "init_std");
    expect_key(p2_mf::run(&ds, &p2_mf::Config { init_std: f32::NAN, ..p2.clone() }), "init_std");
    expect_key(p2_mf::run(&ds, &p2_mf::Config { train_fraction: 1.5, ..p2.clone() }), "train_fraction");
    expect_key(p2_mf::run(&ds, &p2_mf::Config { k: 100_000_000, ..p2.clone() }), "k");
    let mut c = p2.clone();
    c.train.epochs = 0;
    expect_key(p2_mf::run(&ds, &c), "train.epochs");
    let mut c = p2;
    c.train.lr = 0.0;
    expect_key(p2_mf::run(&ds, &c), "train.lr");
    let p3 = p3_recommender::Config::default();
    expect_key(
        p3_recommender::run(&ds, &p3_recommender::Config { init_std: -1.0, ..p3.clone() }),
        "init_std",
    );
    expect_key(
        p3_recommender::run(&ds, &p3_recommender::Config { train_fraction: 0.0, ..p3 }),
        "train_fraction",
    );
    let p4 = p4_residual::Config::default();
    expect_key(p4_residual::run(&ds, &p4_residual::Config { init_std: f32::NAN, ..p4.clone() }), "init_std");
    expect_key(p4_residual::run(&ds, &p4_residual::Config { train_fraction: 1.5, ..p4 }), "train_fraction");

    // P0: window, negatives (with negative sampling), the trainer's keys.
    let mut c = p0();
    c.model.window = 0;
    expect_key(p0_cbow::run(&ds, &c), "model.window");
    let mut c = p0();
    c.model.loss = OutputLoss::NegativeSampling;
    c.model.negatives = 0;
    expect_key(p0_cbow::run(&ds, &c), "model.negatives");
    let mut c = p0();
    c.train.lr = f32::INFINITY;
    expect_key(p0_cbow::run(&ds, &c), "train.lr");
    let mut c = p0();
    c.model.dim = 0;
    expect_key(p0_cbow::run(&ds, &c), "model.dim");

    // P1.
    let mut c = p1_cooc::Config::default();
    c.model.steps = 0;
    expect_key(p1_cooc::run(&ds, &c), "model.steps");
    let mut c = p1_cooc::Config::default();
    c.model.init_scale = -1.0;
    expect_key(p1_cooc::run(&ds, &c), "model.init_scale");
}

#[test]
fn an_exploding_learning_rate_is_divergence_not_a_saved_model() {
    let ds = data();
    let mut p4 = p4_residual::Config::default();
    p4.train.lr = 1e6;
    p4.train.epochs = 5;
    p4.train.quiet = true;
    match p4_residual::run(&ds, &p4) {
        Err(ModelError::Engine(EngineError::Diverged { epoch, what, .. })) => {
            assert_eq!(epoch, 0, "{what}");
        }
        other => panic!("residual-mf at lr 1e6: expected Diverged, got {:?}", other.map(|o| o.history)),
    }
    let mut cbow = p0();
    cbow.train.lr = 1e6;
    cbow.train.epochs = 3;
    match p0_cbow::run(&ds, &cbow) {
        Err(ModelError::Engine(EngineError::Diverged { epoch, .. })) => assert_eq!(epoch, 0),
        other => panic!("cbow at lr 1e6: expected Diverged, got {:?}", other.map(|o| o.history)),
    }
}

/// The largest epoch loss (training or validation) over the fit's divergence reference.
fn worst_ratio(h: &History) -> f64 {
    let reference = h.loss_reference.unwrap();
    h.epochs.iter().flat_map(|e| [Some(e.train_loss), e.val_loss]).flatten().fold(0.0f64, f64::max)
        / reference
}

#[test]
fn default_pipelines_stay_far_below_the_divergence_factor_and_label_their_losses() {
    let ds = data();
    let mut worst = Vec::new();
    for arch in [Architecture::Cbow, Architecture::Skipgram] {
        for loss in [OutputLoss::FullSoftmax, OutputLoss::NegativeSampling] {
            let mut c = p0();
            c.model.architecture = arch;
            c.model.loss = loss;
            let out = p0_cbow::run(&ds, &c).unwrap();
            let label = match loss {
                OutputLoss::FullSoftmax => "softmax cross-entropy",
                OutputLoss::NegativeSampling => "negative-sampling loss",
            };
            assert_eq!(out.history.loss_name, label);
            worst.push((format!("P0 {arch:?} {loss:?}"), worst_ratio(&out.history)));
        }
    }
    let mut p2 = p2_mf::Config::default();
    p2.train.quiet = true;
    let out = p2_mf::run(&ds, &p2).unwrap();
    assert_eq!(out.history.loss_name, "mean squared error");
    worst.push(("P2".into(), worst_ratio(&out.history)));
    let mut p3 = p3_recommender::Config::default();
    p3.train.quiet = true;
    worst.push(("P3".into(), worst_ratio(&p3_recommender::run(&ds, &p3).unwrap().history)));
    let mut p4 = p4_residual::Config::default();
    p4.train.quiet = true;
    worst.push(("P4".into(), worst_ratio(&p4_residual::run(&ds, &p4).unwrap().history)));
    for (name, ratio) in &worst {
        assert!(*ratio < DIVERGENCE_FACTOR / 10.0, "{name}: an epoch reached {ratio} x the reference");
    }
}

/// Item 6(a): `optimizer.kind = "auto"` trains MF with lazy Adam where one step touches a tiny
/// share of the tables (many users with one rating each), says so in the history, and keeps
/// dense Adam on notebook-sized data.
#[test]
fn auto_optimizer_goes_lazy_on_tall_data_and_says_so() {
    let n_users = 20_000u32;
    let ratings = Ratings {
        user: (0..n_users).collect(),
        movie: (0..n_users).map(|u| u % 5_000).collect(),
        rating: (0..n_users).map(|u| (1 + u % 5) as f32).collect(),
        timestamp: vec![0; n_users as usize],
    };
    let tall = Dataset {
        ratings,
        users: IdMap::from_dense_order((1..=u64::from(n_users)).collect()),
        movies: IdMap::from_dense_order((1..=5_000).collect()),
        ..Dataset::default()
    };
    let mut cfg = p4_residual::Config::default();
    cfg.train.epochs = 1;
    cfg.train.quiet = true;
    cfg.train.batch_size = 64;
    cfg.train.optimizer = reelvec_engine::OptimizerConfig::Auto(reelvec_engine::AdamConfig::default());
    let out = p4_residual::run(&tall, &cfg).unwrap();
    assert_eq!(out.history.optimizer, "lazy_adam");
    assert!(out.history.optimizer_note.as_deref().unwrap().contains("lazy"), "{:?}", out.history);
    let small = p4_residual::run(&data(), &cfg).unwrap();
    assert_eq!(small.history.optimizer, "adam", "{:?}", small.history.optimizer_note);
}

/// Item 6(c): under `auto`, the P1 reference is skipped (with a note) when the subspace
/// iteration's work per iteration exceeds the limit; `subspace` still forces it.
#[test]
fn auto_skips_an_expensive_p1_reference_and_says_so() {
    let ds = data();
    let mut cfg =
        p1_cooc::Config { dense_limit: 10, auto_reference_max_work: 1e4, ..p1_cooc::Config::default() };
    cfg.model.steps = 5;
    let out = p1_cooc::run(&ds, &cfg).unwrap();
    assert!(out.reference.is_none());
    let note = out.figures.reference_note.as_deref().unwrap();
    assert!(note.contains("reference skipped") && note.contains("subspace"), "{note}");
    cfg.reference = p1_cooc::ReferenceChoice::Subspace;
    let forced = p1_cooc::run(&ds, &cfg).unwrap();
    assert!(forced.reference.is_some() && forced.figures.reference_note.is_none());
    // The default limit keeps the reference on the default k over a ml-latest-small-sized
    // catalogue (9,724 movies) and skips it at k = 100.
    let default = p1_cooc::Config::default();
    assert!(p1_cooc::auto_skips_reference(9_724, &default).is_none());
    let mut k100 = default;
    k100.model.dim = 100;
    assert!(p1_cooc::auto_skips_reference(9_724, &k100).is_some());
}

#[test]
fn a_dense_reference_on_a_huge_catalogue_is_refused_before_allocating() {
    let movies = 100_000;
    let bytes = p1_cooc::dense_reference_bytes(movies);
    let available = reelvec_engine::memory::available_bytes().unwrap_or(u64::MAX);
    assert!(
        u128::from(available) < bytes,
        "this machine could hold {bytes} bytes: the test needs less memory"
    );
    let ratings =
        Ratings { user: vec![0, 1], movie: vec![0, 99_999], rating: vec![5.0, 5.0], timestamp: vec![0, 0] };
    let likes = LikeMatrix::from_ratings(&ratings, 2, movies, 4.0).unwrap();
    let problem = CoocProblem::new(likes);
    let cfg = p1_cooc::Config { reference: p1_cooc::ReferenceChoice::Dense, ..p1_cooc::Config::default() };
    match p1_cooc::reference(&problem, &cfg) {
        Err(ModelError::Engine(EngineError::TooLarge { what, .. })) => {
            assert!(what.contains("100000 x 100000"), "{what}")
        }
        other => panic!("expected TooLarge, got {:?}", other.map(|r| r.map(|r| r.method))),
    }
}
