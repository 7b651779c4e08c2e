//! The MF family's hand-written backward pass against central finite differences of an f64
//! reference forward, over random shapes, links, batches (with repeated users and movies) and
//! parameters; plus the forward against hand-computed values.

// Tests unwrap freely: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use rand::SeedableRng;
use reelvec_engine::{Grads, Init, Objective, ParamStore};
use reelvec_models::mf::{Link, MfObjective, MfSpec, MfTables, RatingColumns};

/// f64 reference of the batch mean loss, written independently of the library's forward.
fn reference_loss(params: &ParamStore, spec: &MfSpec, cols: &RatingColumns, units: &[u32]) -> f64 {
    let t = MfTables::find(params, spec).unwrap();
    let mut sum = 0.0;
    for &r in units {
        let (u, i) = (cols.user[r as usize] as usize, cols.movie[r as usize] as usize);
        let p = params.get(t.user_factors).row(u);
        let q = params.get(t.movie_factors).row(i);
        let mut x: f64 = p.iter().zip(q).map(|(&a, &b)| f64::from(a) * f64::from(b)).sum();
        if spec.biases {
            x += f64::from(params.get(t.user_bias.unwrap()).data[u]);
            x += f64::from(params.get(t.movie_bias.unwrap()).data[i]);
        }
        let y = match spec.link {
            Link::SigmoidRange { lo, hi } => f64::from(lo) + f64::from(hi - lo) / (1.0 + (-x).exp()),
            Link::Identity => x,
        };
        let e = y - f64::from(cols.target[r as usize]);
        sum += e * e;
    }
    sum / units.len() as f64
}

fn link_strategy() -> impl Strategy<Value = (bool, Link)> {
    prop_oneof![
        Just((true, Link::SigmoidRange { lo: 0.0, hi: 5.5 })),
        Just((true, Link::SigmoidRange { lo: 0.0, hi: 1.0 })),
        Just((false, Link::Identity)),
        Just((true, Link::Identity)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn gradient_matches_central_differences(
        n_users in 1usize..5,
        n_movies in 1usize..6,
        k in 1usize..5,
        (biases, link) in link_strategy(),
        rows in prop::collection::vec((0u32..100, 0u32..100, -1.0f32..5.0), 1..9),
        seed in 0u64..1000,
    ) {
        let spec = MfSpec { n_users, n_movies, k, biases, link };
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let init = Init::Normal { mean: 0.0, std: 0.7 };
        let mut params = spec.init_params(init, init, &mut rng).unwrap();
        let cols = RatingColumns {
            user: rows.iter().map(|r| r.0 % n_users as u32).collect(),
            movie: rows.iter().map(|r| r.1 % n_movies as u32).collect(),
            target: rows.iter().map(|r| r.2).collect(),
        };
        let units: Vec<u32> = (0..cols.len() as u32).collect();
        let obj = MfObjective::new(spec, &params, cols.clone(), None).unwrap();
        let mut grads = Grads::zeros_like(&params);
        let loss = obj.loss_and_grad(&params, &units, &mut grads);
        let ref_loss = reference_loss(&params, &spec, &cols, &units);
        prop_assert!((loss.mean() - ref_loss).abs() <= 1e-5 * (1.0 + ref_loss), "{} vs {}", loss.mean(), ref_loss);
        prop_assert_eq!(loss.count, units.len() as u64);

        for ti in 0..params.tables().len() {
            for j in 0..params.tables()[ti].data.len() {
                let orig = params.tables()[ti].data[j];
                let h = 1e-2f32;
                params.tables_mut()[ti].data[j] = orig + h;
                let plus_h = params.tables()[ti].data[j] - orig;
                let lp = reference_loss(&params, &spec, &cols, &units);
                params.tables_mut()[ti].data[j] = orig - h;
                let minus_h = orig - params.tables()[ti].data[j];
                let lm = reference_loss(&params, &spec, &cols, &units);
                params.tables_mut()[ti].data[j] = orig;
                let numeric = (lp - lm) / f64::from(plus_h + minus_h);
                let analytic = f64::from(grads.tables()[ti].data[j]);
                let tol = 2e-3 * (1.0 + numeric.abs());
                prop_assert!(
                    (numeric - analytic).abs() <= tol,
                    "table {} elem {}: numeric {} analytic {}", params.tables()[ti].name, j, numeric, analytic
                );
            }
        }
    }
}

#[test]
fn forward_by_hand() {
    // One user, one movie, k = 2: p = (1, 2), q = (0.5, -1), b = 0.25, c = -0.5.
    // x = 0.5 - 2 + 0.25 - 0.5 = -1.75.
    let spec =
        MfSpec { n_users: 1, n_movies: 1, k: 2, biases: true, link: Link::SigmoidRange { lo: 0.0, hi: 5.5 } };
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let mut params = spec.init_params(Init::Zeros, Init::Zeros, &mut rng).unwrap();
    let t = MfTables::find(&params, &spec).unwrap();
    params.get_mut(t.user_factors).data.copy_from_slice(&[1.0, 2.0]);
    params.get_mut(t.movie_factors).data.copy_from_slice(&[0.5, -1.0]);
    params.get_mut(t.user_bias.unwrap()).data[0] = 0.25;
    params.get_mut(t.movie_bias.unwrap()).data[0] = -0.5;
    let x = reelvec_models::mf::raw_score(&params, &t, 0, 0);
    assert!((x + 1.75).abs() < 1e-6);
    let s = 1.0 / (1.0 + 1.75f64.exp());
    let y = 5.5 * s;
    let cols = RatingColumns { user: vec![0, 0], movie: vec![0, 0], target: vec![3.0, 1.0] };
    let obj = MfObjective::new(spec, &params, cols, None).unwrap();
    let mut grads = Grads::zeros_like(&params);
    let loss = obj.loss_and_grad(&params, &[0, 1], &mut grads);
    let expect = ((y - 3.0).powi(2) + (y - 1.0).powi(2)) / 2.0;
    assert!((loss.mean() - expect).abs() < 1e-5, "{} vs {expect}", loss.mean());
    // dL/dc = mean over the two rows of 2 (y - t) * 5.5 s (1 - s).
    let g = ((y - 3.0) + (y - 1.0)) * 5.5 * s * (1.0 - s);
    assert!((f64::from(grads.get(t.movie_bias.unwrap()).data[0]) - g).abs() < 1e-5);
    // dL/dp = g q.
    let gp = grads.get(t.user_factors).data.clone();
    assert!((f64::from(gp[0]) - g * 0.5).abs() < 1e-5 && (f64::from(gp[1]) + g).abs() < 1e-5);
}

#[test]
fn out_of_range_indices_are_rejected() {
    let spec = MfSpec { n_users: 2, n_movies: 2, k: 1, biases: false, link: Link::Identity };
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let params = spec.init_params(Init::Zeros, Init::Zeros, &mut rng).unwrap();
    let cols = RatingColumns { user: vec![0, 2], movie: vec![0, 1], target: vec![1.0, 1.0] };
    let err = MfObjective::new(spec, &params, cols, None).unwrap_err().to_string();
    assert!(err.contains("user index 2"), "{err}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    /// The engine's gradient checker (f32 forward, noise-aware tolerance) on larger shapes.
    #[test]
    fn engine_gradcheck_passes(
        (biases, link) in link_strategy(),
        k in 1usize..12,
        batch in 1usize..40,
        seed in 0u64..1000,
    ) {
        let spec = MfSpec { n_users: 20, n_movies: 30, k, biases, link };
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let init = Init::Normal { mean: 0.0, std: 0.3 };
        let params = spec.init_params(init, init, &mut rng).unwrap();
        let cols = RatingColumns {
            user: (0..batch).map(|i| ((i as u64 * 7 + seed) % 20) as u32).collect(),
            movie: (0..batch).map(|i| ((i as u64 * 11 + seed / 3) % 30) as u32).collect(),
            target: (0..batch).map(|i| (i % 5) as f32 + 0.5).collect(),
        };
        let units: Vec<u32> = (0..batch as u32).collect();
        let obj = MfObjective::new(spec, &params, cols, None).unwrap();
        let result = reelvec_engine::gradcheck::check(&obj, &params, &units, 1e-2, 2e-2);
        prop_assert!(result.is_ok(), "{:?}", result.err().map(|r| (r.worst, r.failures.len())));
    }
}
