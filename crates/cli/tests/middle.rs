//! `reelvec middle` end to end: a CBOW run trained on synthetic franchises predicts the middle
//! part between the first and third; an ambiguous title lists candidates and exits non-zero; a
//! non-CBOW run is refused.

#![allow(clippy::unwrap_used)]

use std::process::Command;

use reelvec_data::synth::{generate, Preset, SynthConfig};
use reelvec_models::pipelines::p0_cbow::{self, Config};

#[test]
fn middle_of_a_franchise() {
    let data = generate(&SynthConfig {
        n_users: 400,
        n_movies: 150,
        mean_ratings_per_user: 30.0,
        min_ratings_per_user: 10,
        n_franchises: 10,
        ..Preset::Small.config()
    });
    let mut config = Config { top_movies: 0, min_user_ratings: 10, ..Config::default() };
    config.train.quiet = true;
    let out = p0_cbow::run(&data.dataset, &config).unwrap();
    let dir = tempfile::tempdir().unwrap();
    out.save(dir.path(), &config, None).unwrap();
    let ds = &out.dataset;
    let triple = data
        .truth
        .franchises
        .iter()
        .find_map(|f| {
            let d: Vec<u32> = f.iter().filter_map(|&raw| ds.movies.dense(raw)).collect();
            (d.len() >= 3 && out.model.predict_middle(d[0], d[2], 1).unwrap()[0].0 == d[1])
                .then(|| [d[0], d[1], d[2]])
        })
        .expect("a franchise whose middle the model predicts");
    let [a, b, c] = triple.map(|m| ds.title(m));
    let bin = env!("CARGO_BIN_EXE_reelvec");
    let run = |args: &[&str]| {
        let mut cmd = Command::new(bin);
        cmd.arg("middle").arg("--run").arg(dir.path()).args(args);
        cmd.output().unwrap()
    };
    let ok = run(&[&a, &c, "-k", "3"]);
    let stdout = String::from_utf8_lossy(&ok.stdout);
    assert!(ok.status.success(), "{stdout} {}", String::from_utf8_lossy(&ok.stderr));
    let first = stdout.lines().nth(1).unwrap();
    assert!(first.contains(&b), "expected {b} first, got:\n{stdout}");
    assert_eq!(stdout.lines().count(), 4);

    // Lower-case part of a title works when unique; the franchise name alone is ambiguous.
    let name = a.split(" (").next().unwrap().to_string();
    let amb = run(&[&name, &c]);
    assert!(!amb.status.success());
    let err = String::from_utf8_lossy(&amb.stderr);
    assert!(err.contains("matches") && err.contains(&a), "{err}");
    let lower = run(&[&a.to_lowercase(), &c]);
    assert!(lower.status.success(), "{}", String::from_utf8_lossy(&lower.stderr));
}
