//! MF item side features end to end: `model.item_features` through the config resolution
//! (`train::resolve`, what `reelvec train --set` and Python's `config=` use), the three MF
//! pipelines, and the run directory (feature names, tables and table restored; cold movies
//! scored identically after the round trip).

use reelvec_data::synth::{self, Preset};
use reelvec_data::Dataset;
use reelvec_engine::Device;
use reelvec_models::mf::MfModel;
use reelvec_models::train::{self, ConfigSource, Resolved, TrainedRun};
use reelvec_models::{ModelError, ModelKind, RatingModel};

fn tiny() -> Dataset {
    synth::generate(&Preset::Tiny.config()).dataset
}

fn resolve(kind: ModelKind, set: &[&str]) -> Result<Resolved, ModelError> {
    let set: Vec<String> = set.iter().map(|s| s.to_string()).collect();
    let src = ConfigSource { overrides: &set, seed: Some(3), quiet: true, ..ConfigSource::default() };
    train::resolve(kind, &src)
}

#[test]
fn item_features_key_resolves_for_every_mf_kind_and_bad_names_are_errors() {
    for kind in [ModelKind::Mf, ModelKind::SigmoidMf, ModelKind::ResidualMf] {
        let cfg = resolve(kind, &[r#"model.item_features=["genres", "decade"]"#]).unwrap();
        let features = match &cfg {
            Resolved::Mf(c) => &c.model.item_features,
            Resolved::SigmoidMf(c) => &c.model.item_features,
            Resolved::ResidualMf(c) => &c.model.item_features,
            _ => unreachable!(),
        };
        assert_eq!(features, &["genres", "decade"], "{kind}");
        assert!(cfg.to_toml().unwrap().contains("item_features"), "{kind}");
        let err = resolve(kind, &[r#"model.item_features=["genre"]"#]).unwrap_err().to_string();
        assert!(err.contains("model.item_features") && err.contains("genre"), "{err}");
        let err = resolve(kind, &[r#"model.item_features=["genres", "genres"]"#]).unwrap_err().to_string();
        assert!(err.contains("model.item_features") && err.contains("distinct"), "{err}");
        let err = resolve(kind, &["model.colour=1"]).unwrap_err().to_string();
        assert!(err.contains("model.colour"), "{err}");
    }
}

#[test]
fn tags_on_data_without_tags_is_a_clear_error_before_training() {
    let ds = tiny();
    assert!(ds.catalogue.tags().is_empty());
    let cfg =
        resolve(ModelKind::Mf, &[r#"model.item_features=["genres", "tags"]"#, "train.epochs=1"]).unwrap();
    let err = train::train(&ds, &cfg, Device::Cpu, None).unwrap_err().to_string();
    assert!(err.contains("model.item_features") && err.contains("tags"), "{err}");
}

fn trained(kind: ModelKind) -> (Dataset, TrainedRun) {
    let ds = tiny();
    let set = [r#"model.item_features=["genres", "decade"]"#, "train.epochs=2", "k=4", "train_fraction=0.7"];
    let cfg = resolve(kind, &set).expect("config resolves");
    let run = train::train(&ds, &cfg, Device::Cpu, None).expect("trains");
    (ds, run)
}

#[test]
fn features_change_the_model_and_are_recorded_in_the_run() {
    for kind in [ModelKind::Mf, ModelKind::SigmoidMf, ModelKind::ResidualMf] {
        let (ds, run) = trained(kind);
        assert!(run.info.item_features.iter().any(|n| n.starts_with("genre:")), "{kind}");
        assert!(run.info.item_features.iter().any(|n| n.starts_with("decade:")), "{kind}");
        for name in ["feature_factors", "item_feature_csr"] {
            assert!(run.params.id(name).is_some(), "{kind}: {name}");
        }
        let plain = resolve(kind, &["train.epochs=2", "k=4", "train_fraction=0.7"]).unwrap();
        let plain = train::train(&ds, &plain, Device::Cpu, None).unwrap();
        assert!(plain.info.item_features.is_empty() && plain.params.id("feature_factors").is_none());
        assert_ne!(run.item_vectors().unwrap(), plain.item_vectors().unwrap(), "{kind}");
    }
}

#[test]
fn a_saved_features_run_restores_its_table_and_scores_cold_movies_identically() {
    for kind in [ModelKind::Mf, ModelKind::SigmoidMf, ModelKind::ResidualMf] {
        let (ds, run) = trained(kind);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run");
        run.save(&path).unwrap();
        let (model, info) = MfModel::load(&path).unwrap();
        assert_eq!(info.item_features, run.info.item_features);
        let fresh = MfModel::from_run(&run.params, &run.info, &path).unwrap();
        let table = model.item_features().expect("the restored model has its feature table");
        assert_eq!(Some(table), fresh.item_features());
        assert_eq!(table.n_movies(), ds.movies.len());
        // Movies without a training rating (70/30 split of a tiny data set) are scored from
        // their features alone, the same before and after the round trip.
        let counts = run.rated.as_ref().unwrap().movie_counts(ds.movies.len()).unwrap();
        let cold: Vec<u32> = (0..ds.movies.len() as u32).filter(|&m| counts[m as usize] == 0).collect();
        assert!(!cold.is_empty(), "{kind}: the split leaves some movie without training ratings");
        for &m in &cold {
            for u in 0..ds.users.len().min(20) as u32 {
                assert_eq!(model.predict(u, m).to_bits(), fresh.predict(u, m).to_bits(), "{kind}");
            }
        }
        let loaded = TrainedRun::load(&path).unwrap();
        assert_eq!(loaded.item_vectors().unwrap(), run.item_vectors().unwrap());
        // A run whose table lost the CSR is refused, naming the table.
        let mut broken = run.params.clone();
        let csr = broken.id("item_feature_csr").unwrap();
        broken.get_mut(csr).data[0] = 7.0;
        let err = MfModel::from_run(&broken, &run.info, &path).unwrap_err().to_string();
        assert!(err.contains("item_feature_csr"), "{err}");
    }
}

#[test]
fn cold_start_features_beat_no_features_on_planted_genres() {
    // Synthetic movies' factors are the mean of their genres' planted vectors plus noise, so
    // genre features carry the held-out movies' taste direction; without features a held-out
    // movie has no vector at all.
    let ds = synth::generate(&Preset::Small.config()).dataset;
    let cfg = resolve(ModelKind::Mf, &["k=8", r#"model.item_features=["genres"]"#]).unwrap();
    let cfg = match cfg {
        Resolved::Mf(c) => Resolved::Mf(reelvec_models::pipelines::p2_mf::Config {
            train: reelvec_models::pipelines::p2_mf::Config::fast().train,
            init_std: 0.1,
            bias_init_std: 0.0,
            ..c
        }),
        _ => unreachable!(),
    };
    let r = reelvec_models::coldstart::cold_start(&ds, &cfg, 0.2, 5, Device::Cpu).unwrap();
    let names: Vec<&str> = r.rows.iter().map(|x| x.predictor.as_str()).collect();
    assert_eq!(names, ["global mean", "genre mean", "model without features", "model with features"]);
    assert_eq!(r.item_features, ["genres"]);
    assert!(r.held_out_movies > 0 && r.test_ratings > 0);
    let rmse = |i: usize| r.rows[i].rmse;
    assert!(rmse(3) < rmse(2), "with features {} vs without {}", rmse(3), rmse(2));
    assert!(rmse(3) < rmse(0), "with features {} vs global mean {}", rmse(3), rmse(0));
    // Bad fractions are refused before any work.
    for f in [0.0, 1.0, -0.5] {
        let err =
            reelvec_models::coldstart::cold_start(&ds, &cfg, f, 5, Device::Cpu).unwrap_err().to_string();
        assert!(err.contains("--fraction"), "{err}");
    }
}
