//! P0 end to end: the protocol on synthetic data with planted franchises (the middle part must
//! be the top prediction), run directories round-trip, and (behind REELVEC_ML100K /
//! REELVEC_P0_SMALL) the reported figures on ml-100k and the Small preset.

#![allow(clippy::unwrap_used)]

use reelvec_testkit::{skip, Need};

use reelvec_data::synth::{generate, Preset, SynthConfig};
use reelvec_models::item2vec::{Architecture, OutputLoss};
use reelvec_models::pipelines::p0_cbow::{self, Config};

fn quiet(mut c: Config) -> Config {
    c.train.quiet = true;
    c
}

fn small_franchise_data() -> reelvec_data::synth::SynthData {
    generate(&SynthConfig {
        n_users: 400,
        n_movies: 150,
        mean_ratings_per_user: 30.0,
        min_ratings_per_user: 10,
        n_franchises: 10,
        ..Preset::Small.config()
    })
}

#[test]
fn franchise_middle_is_the_top_prediction() {
    let data = small_franchise_data();
    let config = quiet(Config { top_movies: 0, min_user_ratings: 10, ..Config::default() });
    let out = p0_cbow::run(&data.dataset, &config).unwrap();
    let (hits, total) = out.franchise_middle_hits(&data.truth.franchises).unwrap();
    assert!(total >= 5, "only {total} franchise triples in the vocabulary");
    assert!(hits as f64 >= 0.9 * total as f64, "middle part top-1 for {hits}/{total} triples");
    // The model learned something: validation cross-entropy below the uniform baseline.
    let f = &out.figures;
    assert!(f.best_val_loss.unwrap() < f.uniform_baseline, "{f:?}");
    // Early stopping may end before the configured epochs, never after; the best epoch is one
    // that ran.
    let ran = out.history.epochs.len();
    assert!(ran >= 1 && ran <= config.train.epochs, "{ran} epochs of {}", config.train.epochs);
    assert!(f.best_epoch.is_some_and(|e| e < ran), "{f:?}");
}

#[test]
fn skipgram_negative_sampling_runs_and_saves() {
    let data = small_franchise_data();
    let mut config = quiet(Config { top_movies: 0, min_user_ratings: 10, ..Config::default() });
    config.model.architecture = Architecture::Skipgram;
    config.model.loss = OutputLoss::NegativeSampling;
    config.train.epochs = 3;
    let out = p0_cbow::run(&data.dataset, &config).unwrap();
    assert_eq!(out.history.epochs.len(), 3);
    let first = out.history.epochs[0].train_loss;
    let last = out.history.epochs[2].train_loss;
    assert!(last < first, "loss {first} -> {last}");
    let dir = tempfile::tempdir().unwrap();
    out.save(dir.path(), &config, None).unwrap();
    let (model, info) = p0_cbow::load(dir.path()).unwrap();
    assert_eq!(info.movie_raw_ids.len(), out.figures.vocab);
    assert_eq!(model.params(), out.model.params());
}

#[test]
fn middle_refuses_the_same_movie_twice_and_caps_k_at_the_other_movies() {
    let data = small_franchise_data();
    let mut config = quiet(Config { top_movies: 0, min_user_ratings: 10, ..Config::default() });
    config.train.epochs = 1;
    let out = p0_cbow::run(&data.dataset, &config).unwrap();
    let dir = tempfile::tempdir().unwrap();
    out.save(dir.path(), &config, None).unwrap();
    let (model, info) = p0_cbow::load(dir.path()).unwrap();
    let err = p0_cbow::middle(&model, &info, 3, 3, 5).unwrap_err();
    assert!(matches!(err, reelvec_models::ModelError::InvalidData(_)), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains(&info.title(3)) && msg.contains("two different movies"), "{msg}");
    let vocab = info.movie_raw_ids.len();
    let ranked = p0_cbow::middle(&model, &info, 3, 4, vocab + 10).unwrap();
    // Every other movie, the two given ones left out.
    assert_eq!(ranked.len(), vocab - 2);
    assert!(ranked.iter().all(|&(m, _)| m != 3 && m != 4), "{ranked:?}");
}

fn report(name: &str, ds: &reelvec_data::Dataset, config: &Config, franchises: Option<&[Vec<u64>]>) {
    let out = p0_cbow::run(ds, config).unwrap();
    let f = &out.figures;
    // Whatever the data, a trained CBOW must beat the uniform prediction on validation.
    assert!(!out.history.epochs.is_empty(), "{name}: no epoch ran");
    assert!(f.best_val_loss.is_some_and(|l| l < f.uniform_baseline), "{name}: {f:?}");
    println!(
        "== P0 on {name}: V={} train users {} val users {} train examples {} val examples {}",
        f.vocab, f.train_sequences, f.val_sequences, f.train_examples, f.val_examples
    );
    for e in &out.history.epochs {
        println!(
            "epoch {:>2} train CE {:.4} val CE {:.4} ({:.2}s)",
            e.epoch + 1,
            e.train_loss,
            e.val_loss.unwrap_or(f64::NAN),
            e.seconds
        );
    }
    println!(
        "ln(V) = {:.4}; best val CE {:?} at epoch {:?}; rank {:?}; total {:.2}s",
        f.uniform_baseline,
        f.best_val_loss,
        f.best_epoch.map(|e| e + 1),
        f.val_rank,
        f.seconds
    );
    for m in &out.middle {
        println!(
            "middle of {} .. {}: {:?}",
            m.before.title,
            m.after.title,
            m.predicted.iter().map(|p| &p.title).collect::<Vec<_>>()
        );
    }
    for (q, n) in &out.neighbours {
        println!(
            "neighbours of {}: {:?}",
            q.title,
            n.iter().map(|p| format!("{} {:.3}", p.title, p.score)).collect::<Vec<_>>()
        );
    }
    if let Some(fr) = franchises {
        println!("franchise middle top-1: {:?}", out.franchise_middle_hits(fr).unwrap());
    }
}

#[test]
fn report_ml100k() {
    let Ok(path) = std::env::var("REELVEC_ML100K") else {
        return skip(Need::Data, "set REELVEC_ML100K to an ml-100k directory");
    };
    let ds = reelvec_data::load(std::path::Path::new(&path), &reelvec_data::LoadOptions::default()).unwrap();
    report("ml-100k", &ds, &quiet(Config::default()), None);
}

#[test]
fn report_small_preset() {
    if std::env::var("REELVEC_P0_SMALL").is_err() {
        return skip(Need::OptIn, "set REELVEC_P0_SMALL=1 to train P0 on the Small preset");
    }
    let data = generate(&Preset::Small.config());
    report("Small (top 50)", &data.dataset, &quiet(Config::default()), Some(&data.truth.franchises));
    let all = quiet(Config { top_movies: 0, ..Config::default() });
    report("Small (all movies)", &data.dataset, &all, Some(&data.truth.franchises));
}
