//! Optimizer and schedule correctness: hand-computed single steps (PyTorch's formulas, worked
//! in f64 on paper/Python and written down as literals), lazy-vs-dense row semantics, and the
//! dense/lazy equivalence when every row is touched.

use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::*;
use crate::params::{GradKind, Init, TableId};

/// A store with one `rows x cols` table filled with `value`, and its gradient buffer.
fn one_table(rows: usize, cols: usize, value: f32) -> (ParamStore, Grads, TableId) {
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let mut params = ParamStore::new();
    let id = params.add("w", rows, cols, GradKind::SparseRows, Init::Constant(value), &mut rng).unwrap();
    let grads = Grads::zeros_like(&params);
    (params, grads, id)
}

/// Runs `opt` on a single scalar parameter starting at `p0` with gradients `gs`; returns the
/// parameter after each step.
fn scalar_run(opt: &mut dyn Optimizer, p0: f32, gs: &[f32], lr: f32) -> Vec<f32> {
    let (mut params, mut grads, id) = one_table(1, 1, p0);
    gs.iter()
        .map(|&g| {
            grads.get_mut(id).row_mut(0)[0] = g;
            opt.step(&mut params, &grads, lr);
            grads.clear();
            params.get(id).data[0]
        })
        .collect()
}

fn close(actual: &[f32], expected: &[f64], tol: f64) {
    assert_eq!(actual.len(), expected.len());
    for (a, e) in actual.iter().zip(expected) {
        assert!((*a as f64 - e).abs() <= tol * (1.0 + e.abs()), "got {actual:?}, expected {expected:?}");
    }
}

#[test]
fn sgd_plain_and_weight_decay() {
    // p = 1 - 0.1 * 0.5 = 0.95, then 0.95 - 0.05 = 0.9.
    close(&scalar_run(&mut Sgd::new(SgdConfig::default()), 1.0, &[0.5, 0.5], 0.1), &[0.95, 0.9], 1e-7);
    // g' = 0.5 + 0.1 * 1 = 0.6 -> 0.94; g' = 0.5 + 0.094 = 0.594 -> 0.8806.
    let wd = SgdConfig { weight_decay: 0.1, ..SgdConfig::default() };
    close(&scalar_run(&mut Sgd::new(wd), 1.0, &[0.5, 0.5], 0.1), &[0.94, 0.8806], 1e-7);
}

#[test]
fn sgd_momentum_nesterov_and_dampening() {
    // buf = 0.5 -> 0.95; buf = 0.9 * 0.5 + 0.5 = 0.95 -> 0.95 - 0.095 = 0.855.
    let m = SgdConfig { momentum: 0.9, ..SgdConfig::default() };
    close(&scalar_run(&mut Sgd::new(m), 1.0, &[0.5, 0.5], 0.1), &[0.95, 0.855], 1e-7);
    // Nesterov: d = g + 0.9 buf: 0.5 + 0.45 = 0.95 -> 0.905; buf = 0.95, d = 0.5 + 0.855 = 1.355
    // -> 0.905 - 0.1355 = 0.7695.
    let n = SgdConfig { momentum: 0.9, nesterov: true, ..SgdConfig::default() };
    close(&scalar_run(&mut Sgd::new(n), 1.0, &[0.5, 0.5], 0.1), &[0.905, 0.7695], 1e-7);
    // Dampening 0.5 applies from the second step: buf = 0.45 + 0.25 = 0.7 -> 0.95 - 0.07.
    let d = SgdConfig { momentum: 0.9, dampening: 0.5, ..SgdConfig::default() };
    close(&scalar_run(&mut Sgd::new(d), 1.0, &[0.5, 0.5], 0.1), &[0.95, 0.88], 1e-7);
    // Momentum keeps moving a parameter whose gradient is zero (PyTorch dense semantics).
    close(&scalar_run(&mut Sgd::new(m), 1.0, &[0.5, 0.0], 0.1), &[0.95, 0.905], 1e-7);
}

#[test]
fn adam_first_two_steps_with_bias_correction() {
    // t=1: m = 0.05, v = 0.00025, m_hat = 0.5, sqrt(v_hat) = 0.5 -> p = 1 - 0.1 * 0.5/(0.5 + 1e-8).
    // t=2 (g = -0.25): m = 0.02, v = 0.00031225, bc1 = 0.19, bc2 = 0.001999
    // -> p = 0.9 - (0.1/0.19) * 0.02 / (sqrt(0.00031225)/sqrt(0.001999) + 1e-8) = 0.87336630.
    let got = scalar_run(&mut Adam::new(AdamConfig::default()), 1.0, &[0.5, -0.25], 0.1);
    close(&got, &[0.900000002, 0.8733662987078463], 1e-7);
}

#[test]
fn adam_l2_weight_decay_enters_the_gradient() {
    let c = AdamConfig { weight_decay: 0.1, ..AdamConfig::default() };
    // g1 = 0.5 + 0.1 * 1 = 0.6 (t=1 is still a unit step); g2 = -0.25 + 0.1 * 0.9 = -0.16.
    let got = scalar_run(&mut Adam::new(c), 1.0, &[0.5, -0.25], 0.1);
    close(&got, &[0.9000000016666666, 0.8544413674617625], 1e-7);
    // Zero gradient, non-zero parameter: the decay alone drives the step.
    let c = AdamConfig { weight_decay: 0.5, ..AdamConfig::default() };
    let got = scalar_run(&mut Adam::new(c), -2.0, &[0.0, 0.3], 0.1);
    close(&got, &[-1.900000001, -1.8032588930021827], 1e-7);
}

#[test]
fn adamw_decouples_weight_decay() {
    let c = AdamConfig { weight_decay: 0.1, ..AdamConfig::default() };
    // t=1: p = 1 * (1 - 0.1 * 0.1) = 0.99, then the unit Adam step: 0.89.
    let got = scalar_run(&mut AdamW::new(c), 1.0, &[0.5, -0.25], 0.1);
    close(&got, &[0.890000002, 0.8544662986878463], 1e-7);
}

#[test]
fn dense_adam_moves_untouched_rows_and_lazy_adam_does_not() {
    let c = AdamConfig { weight_decay: 0.01, ..AdamConfig::default() };
    for lazy in [false, true] {
        let (mut params, mut grads, id) = one_table(3, 2, 1.0);
        let mut opt: Box<dyn Optimizer> =
            if lazy { Box::new(LazyAdam::new(c)) } else { Box::new(Adam::new(c)) };
        // Step 1 touches rows 0 and 1; step 2 touches row 1 only.
        grads.get_mut(id).row_mut(0).copy_from_slice(&[0.5, -0.5]);
        grads.get_mut(id).row_mut(1).copy_from_slice(&[0.1, 0.2]);
        opt.step(&mut params, &grads, 0.1);
        grads.clear();
        let after1 = params.get(id).data.clone();
        grads.get_mut(id).row_mut(1).copy_from_slice(&[0.1, 0.2]);
        opt.step(&mut params, &grads, 0.1);
        let after2 = params.get(id).data.clone();
        assert_ne!(after2[2..4], after1[2..4], "touched row moves");
        if lazy {
            assert_eq!(after1[4..6], [1.0, 1.0], "never-touched row untouched");
            assert_eq!(after2[0..2], after1[0..2], "row 0 untouched at step 2");
            assert_eq!(after2[4..6], [1.0, 1.0]);
        } else {
            // L2 decay gives row 2 a gradient of 0.01 (a unit Adam step at t=1); row 0's
            // momentum keeps it moving at t=2.
            assert!((after1[4] - 0.9).abs() < 1e-6);
            assert_ne!(after2[0..2], after1[0..2]);
        }
        assert_eq!(opt.steps_taken(), 2);
    }
}

/// Tables big enough for lazy Adam's parallel passes: with all rows touched it equals dense Adam
/// over several steps; with 60% or 10% touched, one step from zero moments still equals dense
/// Adam (a zero gradient with zero moments moves nothing) and untouched rows keep their bits.
#[test]
fn lazy_adam_parallel_pass_matches_dense_adam() {
    // 3000 x 128: every fraction below touches more than 32k elements; 1.0 and 0.6 take the
    // masked row-block pass, 0.1 the sorted recursive split.
    let (rows, cols) = (3000, 128);
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let c = AdamConfig::default();
    for fraction in [1.0, 0.6, 0.1] {
        let (mut dense, mut grads, id) = one_table(rows, cols, 0.5);
        let mut lazy = dense.clone();
        let (mut adam, mut lazy_adam) = (Adam::new(c), LazyAdam::new(c));
        let steps = if fraction == 1.0 { 3 } else { 1 };
        for _ in 0..steps {
            let mut order: Vec<usize> = (0..rows).collect();
            rand::seq::SliceRandom::shuffle(&mut order[..], &mut rng);
            for &r in &order[..(rows as f64 * fraction) as usize] {
                let g: Vec<f32> = (0..cols).map(|_| rng.random_range(-1.0..1.0)).collect();
                grads.get_mut(id).row_mut(r).copy_from_slice(&g);
            }
            adam.step(&mut dense, &grads, 0.01);
            lazy_adam.step(&mut lazy, &grads, 0.01);
            grads.clear();
        }
        assert_eq!(lazy.get(id).data, dense.get(id).data);
        let unchanged = lazy.get(id).data.chunks(cols).filter(|row| row.iter().all(|&x| x == 0.5)).count();
        assert_eq!(unchanged, rows - (rows as f64 * fraction) as usize);
    }
}

#[test]
fn linear_lr_matches_pytorchs_recursive_formula() {
    // torch.optim.lr_scheduler.LinearLR.get_lr, applied step by step:
    // lr_0 = base * start; lr_t = lr_{t-1} * (1 + (end - start) / (T * start + (t - 1) * (end - start)))
    // for 0 < t <= T, unchanged afterwards.
    for (start, end, total) in [(1.0 / 3.0, 1.0, 5u64), (1.0, 0.1, 7), (0.25, 0.75, 1)] {
        let schedule =
            Schedule::Linear { start_factor: start as f32, end_factor: end as f32, total_iters: total };
        let mut lr = start;
        for t in 0..total + 4 {
            if t > 0 && t <= total {
                lr *= 1.0 + (end - start) / (total as f64 * start + (t - 1) as f64 * (end - start));
            }
            let ours = schedule.factor(t) as f64;
            assert!((ours - lr).abs() < 1e-6, "start {start} end {end} T {total} t {t}: {ours} vs {lr}");
        }
    }
}

#[test]
fn constant_and_linear_decay_schedules() {
    assert_eq!(Schedule::Constant.factor(12345), 1.0);
    let decay = Schedule::LinearDecay { total_steps: 4 };
    let f: Vec<f32> = (0..6).map(|t| decay.factor(t)).collect();
    assert_eq!(f, vec![1.0, 0.75, 0.5, 0.25, 0.0, 0.0]);
}

#[test]
fn optimizer_configs_build_the_named_optimizer_and_round_trip() {
    let cfg = OptimizerConfig::AdamW(AdamConfig { weight_decay: 0.01, ..AdamConfig::default() });
    let json = serde_json::to_string(&cfg).unwrap();
    assert!(json.contains("\"kind\":\"adamw\""), "{json}");
    let alias: OptimizerConfig = serde_json::from_str(r#"{"kind":"adam_w","weight_decay":0.01}"#).unwrap();
    assert_eq!(alias, cfg);
    assert_eq!(serde_json::from_str::<OptimizerConfig>(&json).unwrap(), cfg);
    let lazy: OptimizerConfig = serde_json::from_str(r#"{"kind":"lazy_adam","beta1":0.8}"#).unwrap();
    assert_eq!(lazy, OptimizerConfig::LazyAdam(AdamConfig { beta1: 0.8, ..AdamConfig::default() }));
    assert!(format!("{:?}", lazy.build()).starts_with("LazyAdam"));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// With every row touched at every step, lazy Adam is dense Adam (bitwise), and AdamW with
    /// zero decay is Adam.
    #[test]
    fn lazy_adam_equals_dense_adam_when_every_row_is_touched(
        rows in 1usize..12, cols in 1usize..6, steps in 1usize..6,
        wd in prop_oneof![Just(0.0f32), 0.0f32..0.1], seed in 0u64..1000,
    ) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut params = ParamStore::new();
        let id = params
            .add("w", rows, cols, GradKind::SparseRows, Init::Normal { mean: 0.0, std: 1.0 }, &mut rng)
            .unwrap();
        let c = AdamConfig { weight_decay: wd, ..AdamConfig::default() };
        let mut opts: Vec<(Box<dyn Optimizer>, ParamStore)> = vec![
            (Box::new(Adam::new(c)), params.clone()),
            (Box::new(LazyAdam::new(c)), params.clone()),
        ];
        if wd == 0.0 {
            opts.push((Box::new(AdamW::new(c)), params.clone()));
        }
        let mut grads = Grads::zeros_like(&params);
        for _ in 0..steps {
            let g: Vec<f32> = (0..rows * cols).map(|_| rng.random_range(-1.0..1.0)).collect();
            // Touch rows in a shuffled order: lazy Adam's result must not depend on it.
            let mut order: Vec<usize> = (0..rows).collect();
            rand::seq::SliceRandom::shuffle(&mut order[..], &mut rng);
            for &r in &order {
                grads.get_mut(id).row_mut(r).copy_from_slice(&g[r * cols..(r + 1) * cols]);
            }
            for (opt, p) in opts.iter_mut() {
                opt.step(p, &grads, 0.01);
            }
            grads.clear();
        }
        for (_, p) in &opts[1..] {
            prop_assert_eq!(&p.get(id).data, &opts[0].1.get(id).data);
        }
    }
}

/// Dense Adam over a 48 x 4 table for `steps` steps at a constant lr of 0.01, where row `r` <
/// 40 is touched every `3 + 41 r` steps and rows 40.. at the first step only; gradients drawn
/// from a seeded rng. Returns the optimizer (for its moments) and the final table.
fn sparse_dense_adam_run(config: AdamConfig, steps: u64) -> (Adam, Vec<f32>) {
    sparse_run(Adam::new(config), |o, p, g, lr| o.step(p, g, lr), steps)
}

/// [`sparse_dense_adam_run`]'s schedule of touched rows and gradients for any optimizer `opt`,
/// stepped by `step`.
fn sparse_run<O>(mut opt: O, step: fn(&mut O, &mut ParamStore, &Grads, f32), steps: u64) -> (O, Vec<f32>) {
    let (rows, cols) = (48, 4);
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let mut params = ParamStore::new();
    let init = Init::Normal { mean: 0.0, std: 0.1 };
    let id = params.add("w", rows, cols, GradKind::SparseRows, init, &mut rng).unwrap();
    let mut grads = Grads::zeros_like(&params);
    for t in 0..steps {
        let touched = |r: u64| if r < 40 { t % (3 + 41 * r) == 0 } else { t == 0 };
        for r in (0..rows as u64).filter(|&r| touched(r)) {
            for g in grads.get_mut(id).row_mut(r as usize) {
                *g = rng.random_range(-0.05..0.05);
            }
        }
        step(&mut opt, &mut params, &grads, 1e-2);
        grads.clear();
    }
    let table = params.get(id).data.clone();
    (opt, table)
}

/// The default dense pass (subnormal lanes emulated) against the plain hardware loop
/// (`step_reference`), 20000 steps of [`sparse_run`] (rows idle for 3 to 1602 steps, rows idle
/// after step 0, so moments sit in the subnormal range): parameters and both moments bitwise
/// equal, for Adam without and with L2 decay (both lerp branches) and AdamW.
#[test]
fn dense_pass_is_bitwise_the_reference_over_long_idle_spans() {
    // The routing of subnormal lanes to `soft`, whatever this CPU measured (same bits either way).
    super::adam::force_emulation();
    let steps = 20_000;
    type State = (Vec<f32>, Vec<Vec<f32>>, Vec<Vec<f32>>);
    let check = |label: &str, fast: State, slow: State| {
        let bits = |xs: &[Vec<f32>]| xs.iter().flatten().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&[fast.0]), bits(&[slow.0]), "{label}: parameters");
        assert_eq!(bits(&fast.1), bits(&slow.1), "{label}: first moments");
        assert_eq!(bits(&fast.2), bits(&slow.2), "{label}: second moments");
        assert!(count_subnormal(&fast.1) > 0, "{label}: the run never reached the subnormal range");
    };
    for (beta1, weight_decay) in [(0.9, 0.0), (0.9, 3e-4), (0.3, 0.0)] {
        let config = AdamConfig { beta1, weight_decay, ..AdamConfig::default() };
        let run = |step: fn(&mut Adam, &mut ParamStore, &Grads, f32)| {
            let (o, p) = sparse_run(Adam::new(config), step, steps);
            (p, o.moments().0.to_vec(), o.moments().1.to_vec())
        };
        check(
            &format!("Adam beta1 {beta1} wd {weight_decay}"),
            run(|o, p, g, lr| o.step(p, g, lr)),
            run(|o, p, g, lr| o.step_reference(p, g, lr)),
        );
    }
    let config = AdamConfig { weight_decay: 1e-2, ..AdamConfig::default() };
    let run = |step: fn(&mut AdamW, &mut ParamStore, &Grads, f32)| {
        let (o, p) = sparse_run(AdamW::new(config), step, steps);
        (p, o.moments().0.to_vec(), o.moments().1.to_vec())
    };
    check("AdamW", run(|o, p, g, lr| o.step(p, g, lr)), run(|o, p, g, lr| o.step_reference(p, g, lr)));
}

fn count_subnormal(xs: &[Vec<f32>]) -> usize {
    xs.iter().flatten().filter(|x| x.is_subnormal()).count()
}

/// What `flush_denormals` changes in dense Adam, 20000 steps, rows untouched for spans of 3 to
/// 1602 steps and rows untouched after the first step:
/// - without weight decay, the parameters are bitwise those of IEEE arithmetic; only the
///   moments differ (subnormal first moments become 0);
/// - with weight decay (3e-4), the periodically touched rows are still bitwise equal; the rows
///   left alone decay towards 0 under the L2 term alone, and once an element falls below
///   ~1e-30 the two modes part: flushed it stays near 1e-33, exact it may climb back (here
///   to -8e-7). Elements of such rows differ by less than 1e-5.
#[test]
fn flushing_subnormals_changes_adam_moments_and_long_idle_decayed_rows_only() {
    let steps = 20_000;
    let bits = |xs: &[f32]| xs.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    for weight_decay in [0.0, 3e-4] {
        let config = AdamConfig { weight_decay, ..AdamConfig::default() };
        let (exact, exact_p) = sparse_dense_adam_run(config, steps);
        let (flushed, flushed_p) = {
            let _ftz = crate::fpenv::FlushDenormals::new();
            sparse_dense_adam_run(config, steps)
        };
        let periodic = 40 * 4;
        if weight_decay == 0.0 {
            assert_eq!(bits(&exact_p), bits(&flushed_p), "no weight decay: parameters differ");
            // The run does reach the subnormal range (else the test would show nothing).
            assert!(count_subnormal(exact.moments().0) > 0, "no subnormal first moment without flushing");
            if crate::fpenv::FLUSH_SUPPORTED {
                assert_eq!(count_subnormal(flushed.moments().0), 0);
                assert_ne!(exact.moments().0, flushed.moments().0);
            }
        } else {
            assert_eq!(bits(&exact_p[..periodic]), bits(&flushed_p[..periodic]), "touched rows differ");
            for (a, b) in exact_p[periodic..].iter().zip(&flushed_p[periodic..]) {
                assert!((a - b).abs() < 1e-5 && a.abs() < 1e-5, "idle row element {a:e} vs {b:e}");
            }
            if crate::fpenv::FLUSH_SUPPORTED {
                assert_ne!(bits(&exact_p[periodic..]), bits(&flushed_p[periodic..]));
            }
        }
    }
}

/// Dense Adam (or AdamW) and [`ReplayAdam`] side by side for `steps` steps over tables of
/// `shapes`, with an lr that changes every step: each step marks a random set of rows (mostly
/// 1%, every 50th step half of each table, so all three regimes of the touched pass run; the
/// last 5 rows of each table only at step 0, so they sit untouched for the whole run), checks
/// that the rows the replaying optimizer brought up to date read bitwise as dense Adam's, gives
/// most marked rows a random gradient (some stay read-only, gradient 0), steps both, and every
/// `sync_every` steps (an epoch boundary) and at the end syncs and compares every bit of
/// parameters and both moments.
///
/// Returns whether some sync point found subnormal moments.
fn replay_matches_dense(
    decoupled: bool,
    weight_decay: f32,
    shapes: &[(usize, usize)],
    steps: u64,
    sync_every: u64,
) -> bool {
    let mut saw_subnormal = false;
    let bits = |xs: &[f32]| xs.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let mut dense_p = ParamStore::new();
    for (i, &(rows, cols)) in shapes.iter().enumerate() {
        let init = Init::Normal { mean: 0.0, std: 0.1 };
        dense_p.add(&format!("t{i}"), rows, cols, GradKind::SparseRows, init, &mut rng).unwrap();
    }
    let mut replay_p = dense_p.clone();
    let (mut dense_g, mut replay_g) = (Grads::zeros_like(&dense_p), Grads::zeros_like(&dense_p));
    let config = AdamConfig { weight_decay, ..AdamConfig::default() };
    let (mut adam, mut adamw) = (Adam::new(config), AdamW::new(config));
    let mut replay = ReplayAdam::new(config, decoupled);
    let compare = |dense_p: &ParamStore,
                   replay_p: &ParamStore,
                   dense_m: (&[Vec<f32>], &[Vec<f32>]),
                   replay: &ReplayAdam,
                   t: u64| {
        for (a, b) in dense_p.tables().iter().zip(replay_p.tables()) {
            assert_eq!(bits(&a.data), bits(&b.data), "parameters of {} differ after step {t}", a.name);
        }
        let ((m, v), (rm, rv)) = (dense_m, replay.moments());
        for i in 0..m.len() {
            assert_eq!(bits(&m[i]), bits(&rm[i]), "first moments of table {i} differ after step {t}");
            assert_eq!(bits(&v[i]), bits(&rv[i]), "second moments of table {i} differ after step {t}");
        }
    };
    for t in 0..steps {
        let lr = 1e-2 * (1.0 + (t % 7) as f32 * 0.25);
        let share = if t % 50 == 0 { 0.5 } else { 0.01 };
        for (i, &(rows, cols)) in shapes.iter().enumerate() {
            for r in 0..rows {
                let idle = r + 5 >= rows;
                let marked = t == 0 || (!idle && rng.random_bool(share));
                if !marked {
                    continue;
                }
                replay_g.get_mut(TableId(i)).row_mut(r);
                if rng.random_bool(0.9) {
                    let g: Vec<f32> = (0..cols).map(|_| rng.random_range(-0.05..0.05)).collect();
                    dense_g.get_mut(TableId(i)).row_mut(r).copy_from_slice(&g);
                    replay_g.get_mut(TableId(i)).row_mut(r).copy_from_slice(&g);
                }
            }
        }
        // Save the gradients the marks must not disturb: prepare before reading.
        replay.prepare_rows(&mut replay_p, &replay_g);
        for (i, gt) in replay_g.tables().iter().enumerate() {
            for &r in gt.touched_rows() {
                let (a, b) =
                    (dense_p.get(TableId(i)).row(r as usize), replay_p.get(TableId(i)).row(r as usize));
                assert_eq!(bits(a), bits(b), "row {r} of table {i} read stale at step {t}");
            }
        }
        if decoupled {
            adamw.step(&mut dense_p, &dense_g, lr);
        } else {
            adam.step(&mut dense_p, &dense_g, lr);
        }
        replay.step(&mut replay_p, &replay_g, lr);
        dense_g.clear();
        replay_g.clear();
        if (t + 1) % sync_every == 0 || t + 1 == steps {
            replay.sync(&mut replay_p);
            let dense_m = if decoupled { adamw.moments() } else { adam.moments() };
            compare(&dense_p, &replay_p, dense_m, &replay, t);
            saw_subnormal |= count_subnormal(dense_m.0) + count_subnormal(dense_m.1) > 0;
        }
    }
    saw_subnormal
}

#[test]
fn replay_adam_is_bitwise_dense_adam() {
    // The routing of subnormal lanes to `soft`, whatever this CPU measured (same bits either way).
    super::adam::force_emulation();
    // Widths 1 (biases), 13 (a partial lane) and 32; 3000 x 13 makes half-table steps run the
    // parallel block pass and 1% steps the sorted split; syncs mid-run and at uneven periods.
    let shapes = [(3000, 13), (40, 32), (700, 1)];
    // Rows idle since step 0 hold subnormal first moments at step 794 (0.9^793 * ~1e-3).
    assert!(replay_matches_dense(false, 0.0, &shapes, 1500, 397), "the run never reached subnormals");
    replay_matches_dense(false, 3e-4, &shapes, 1500, 500);
    replay_matches_dense(true, 1e-2, &shapes, 600, 250);
}

#[test]
fn replay_adam_is_bitwise_dense_adam_on_any_thread_count() {
    // The routing of subnormal lanes to `soft`, whatever this CPU measured (same bits either way).
    super::adam::force_emulation();
    for threads in [1, 3] {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| replay_matches_dense(false, 1e-4, &[(3000, 13), (700, 1)], 300, 120));
    }
}
