//! Parity with PyTorch: the P2 model's forward/backward plus the engine's Adam reproduce the
//! fixtures written by `benches/peers/make_fixtures.py` (initial weights, batches, the loss
//! before every step, the weights after the last step) to 1e-5 relative.

// Tests unwrap freely: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use reelvec_engine::{Adam, AdamConfig, GradKind, Grads, Objective, Optimizer, ParamStore, Table};
use reelvec_models::mf::{
    Link, MfObjective, MfSpec, RatingColumns, MOVIE_BIAS, MOVIE_FACTORS, USER_BIAS, USER_FACTORS,
};
use serde_json::Value;

fn fixtures() -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/torch");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    files.retain(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("mf_adam")));
    files.sort();
    files
}

fn table(v: &Value, name: &str) -> Table {
    let rows: Vec<Vec<f32>> = v[name]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect())
        .collect();
    let cols = rows.first().map_or(0, Vec::len);
    Table {
        name: name.to_string(),
        rows: rows.len(),
        cols,
        grad_kind: GradKind::SparseRows,
        data: rows.concat(),
    }
}

fn ints(v: &Value) -> Vec<u32> {
    v.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect()
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect()
}

#[test]
fn mf_adam_matches_pytorch() {
    let files = fixtures();
    // The fixtures are committed (benches/peers/make_fixtures.py): a missing one is a failure.
    let names: Vec<String> =
        files.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
    for expected in ["mf_adam.json", "mf_adam_wd.json", "mf_adam_wd_strong.json"] {
        assert!(names.iter().any(|n| n == expected), "committed fixture {expected} missing: {names:?}");
    }
    for path in files {
        let fx: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let k = fx["k"].as_u64().unwrap() as usize;
        let y = floats(&fx["y_range"]);
        let spec = MfSpec {
            n_users: fx["n_users"].as_u64().unwrap() as usize,
            n_movies: fx["n_movies"].as_u64().unwrap() as usize,
            k,
            biases: true,
            link: Link::SigmoidRange { lo: y[0], hi: y[1] },
        };
        let mut params = ParamStore::new();
        for t in [USER_FACTORS, USER_BIAS, MOVIE_FACTORS, MOVIE_BIAS] {
            params.insert(table(&fx["initial"], t)).unwrap();
        }
        // All batches' rows as one training set; step s trains on its own slice of units.
        let mut cols = RatingColumns::default();
        let mut slices = Vec::new();
        for b in fx["batches"].as_array().unwrap() {
            let start = cols.len() as u32;
            cols.user.extend(ints(&b["users"]));
            cols.movie.extend(ints(&b["movies"]));
            cols.target.extend(floats(&b["ratings"]));
            slices.push((start..cols.len() as u32).collect::<Vec<u32>>());
        }
        let betas = floats(&fx["betas"]);
        let cfg = AdamConfig {
            beta1: betas[0],
            beta2: betas[1],
            eps: fx["eps"].as_f64().unwrap() as f32,
            weight_decay: fx["weight_decay"].as_f64().unwrap() as f32,
        };
        let lr = fx["lr"].as_f64().unwrap() as f32;
        let obj = MfObjective::new(spec, &params, cols, None).unwrap();
        let mut adam = Adam::new(cfg);
        let mut grads = Grads::zeros_like(&params);
        let losses = floats(&fx["losses"]);
        assert_eq!(losses.len(), slices.len(), "{name}");
        for (step, units) in slices.iter().enumerate() {
            let loss = obj.loss_and_grad(&params, units, &mut grads).mean();
            let want = f64::from(losses[step]);
            assert!(
                (loss - want).abs() <= 1e-5 * want.abs().max(1e-3),
                "{name} step {step}: loss {loss} vs torch {want}"
            );
            adam.step(&mut params, &grads, lr);
            grads.clear();
        }
        let mut worst = 0.0f64;
        for t in [USER_FACTORS, USER_BIAS, MOVIE_FACTORS, MOVIE_BIAS] {
            let want = table(&fx["final"], t);
            let got = params.get(params.id(t).unwrap());
            assert_eq!((got.rows, got.cols), (want.rows, want.cols), "{name} {t}");
            for (j, (&g, &w)) in got.data.iter().zip(&want.data).enumerate() {
                let rel = f64::from((g - w).abs()) / f64::from(w.abs()).max(1e-3);
                worst = worst.max(rel);
                assert!(rel <= 1e-5, "{name} {t}[{j}]: ours {g} torch {w} (rel {rel:e})");
            }
        }
        println!("{name}: {} steps, worst relative difference {worst:e}", slices.len());
    }
}
