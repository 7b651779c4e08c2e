//! Parity with PyTorch: the CBOW fixtures (`cbow_adam*.json`, written by
//! benches/peers/make_fixtures.py) give initial tables, batches of (context, target) pairs, the
//! loss before each Adam step and the tables after the last; our objective and the engine's
//! Adam must reproduce them to 1e-5 relative. A missing fixture skips its check with a note.

#![allow(clippy::unwrap_used)]

use std::path::Path;

use reelvec_engine::{Adam, AdamConfig, Grads, Objective, Optimizer, ParamStore};
use reelvec_models::item2vec::{ContextReduce, Examples, Item2VecConfig, Item2VecObjective, Item2VecTables};
use serde_json::Value;

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

fn check_fixture(name: &str) {
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
    for (id, name) in
        [(tables.embedding, "embedding"), (tables.out_weight, "out_weight"), (tables.out_bias, "out_bias")]
    {
        params.get_mut(id).data = table(&f["initial"][name]);
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
    for (step, (batch, want)) in
        f["batches"].as_array().unwrap().iter().zip(f["losses"].as_array().unwrap()).enumerate()
    {
        let contexts: Vec<Vec<u32>> = batch["contexts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect())
            .collect();
        let targets: Vec<u32> =
            batch["targets"].as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect();
        let ex = Examples::from_examples(&contexts, &targets);
        let obj = Item2VecObjective::new(config, tables, vocab, ex, None, 0).unwrap();
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
fn cbow_adam_matches_pytorch() {
    check_fixture("cbow_adam.json");
}

#[test]
fn cbow_adam_weight_decay_matches_pytorch() {
    check_fixture("cbow_adam_wd.json");
}
