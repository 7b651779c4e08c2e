//! Finite-difference gradient checking for hand-written backward passes.
//!
//! [`check`] compares an [`Objective`]'s analytic gradient (`loss_and_grad`) with central
//! differences of its batch MEAN loss,
//!
//! ```text
//! numeric = (L(p + eps) - L(p - eps)) / h,   h = fl(p + eps) - fl(p - eps)
//! ```
//!
//! where the losses are the objective's f64 [`BatchLoss`] means and `h` is the step actually
//! taken in f32 (so rounding of `p ± eps` does not bias the quotient). An element passes when
//!
//! ```text
//! |analytic - numeric| <= tol * max(|analytic|, |numeric|) + atol,
//! atol = noise_ulps * f32::EPSILON * max(|L(p)|, 1e-30) / (2 eps)
//! ```
//!
//! `atol` is the central difference's own noise: a forward pass in f32 rounds the loss at about
//! `f32::EPSILON * |L|`, and the quotient divides that by the step. Every element of small tables
//! is checked, including rows the analytic pass did not touch (a forgotten gradient shows up
//! there). Big tables get a seeded random subset: mostly elements of touched rows plus some
//! anywhere in the table.
//!
//! The objective must be a deterministic function of the parameters (fix any sampling by the
//! units) and smooth around `params`.

use std::fmt;

use rand::seq::index::sample;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::params::{Grads, ParamStore, TableId};
use crate::trainer::{BatchLoss, Objective};

/// Settings of a gradient check.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GradCheckOptions {
    /// Perturbation added to and subtracted from each parameter.
    pub eps: f32,
    /// Largest accepted relative error.
    pub tol: f64,
    /// Most elements checked per table (all when the table is smaller).
    pub max_per_table: usize,
    /// Seed of the subset drawn from big tables.
    pub seed: u64,
    /// Size of the absolute noise allowance in units of `f32::EPSILON * |L| / (2 eps)`.
    pub noise_ulps: f64,
}

impl Default for GradCheckOptions {
    fn default() -> Self {
        Self { eps: 1e-3, tol: 1e-2, max_per_table: 400, seed: 0, noise_ulps: 64.0 }
    }
}

/// One checked element whose analytic and numeric gradients disagree.
#[derive(Debug, Clone, PartialEq)]
pub struct GradMismatch {
    /// Table name.
    pub table: String,
    /// Row in the table.
    pub row: usize,
    /// Column in the table.
    pub col: usize,
    /// From `loss_and_grad`.
    pub analytic: f64,
    /// From central differences.
    pub numeric: f64,
    /// `|analytic - numeric| / max(|analytic|, |numeric|)`.
    pub rel_error: f64,
    /// `|analytic - numeric|` over the allowed difference; above 1 fails.
    pub excess: f64,
}

/// The outcome of a check: what was compared and what failed.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct GradCheckReport {
    /// Elements compared.
    pub checked: usize,
    /// Largest relative error seen.
    pub max_rel_error: f64,
    /// The element furthest beyond (or closest to) its allowed difference.
    pub worst: Option<GradMismatch>,
    /// The absolute noise allowance used.
    pub atol: f64,
    /// Elements above the tolerance (all of them).
    pub failures: Vec<GradMismatch>,
    /// The tolerance applied.
    pub tol: f64,
}

impl GradCheckReport {
    /// True when no element failed.
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}

impl fmt::Display for GradCheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "gradient check: {} of {} elements beyond tolerance {:e} + {:.2e} (max relative error {:.3e})",
            self.failures.len(),
            self.checked,
            self.tol,
            self.atol,
            self.max_rel_error
        )?;
        for m in self.failures.iter().take(10) {
            write!(
                f,
                "\n  {}[{}, {}]: analytic {:.6e}, numeric {:.6e}, relative error {:.3e}",
                m.table, m.row, m.col, m.analytic, m.numeric, m.rel_error
            )?;
        }
        if self.failures.len() > 10 {
            write!(f, "\n  ... and {} more", self.failures.len() - 10)?;
        }
        Ok(())
    }
}

impl std::error::Error for GradCheckReport {}

/// Checks `objective`'s gradient at `params` on the batch `units` with [`GradCheckOptions`]'
/// defaults for everything but `eps` and `tol`; the error is the full report.
// The report is the whole point of the error and is built once per test: its size is fine.
#[allow(clippy::result_large_err)]
pub fn check<O: Objective + ?Sized>(
    objective: &O,
    params: &ParamStore,
    units: &[u32],
    eps: f32,
    tol: f64,
) -> Result<(), GradCheckReport> {
    let report = check_with(objective, params, units, &GradCheckOptions { eps, tol, ..Default::default() });
    if report.passed() {
        Ok(())
    } else {
        Err(report)
    }
}

/// Runs the check and returns the report whether or not it passed.
pub fn check_with<O: Objective + ?Sized>(
    objective: &O,
    params: &ParamStore,
    units: &[u32],
    opts: &GradCheckOptions,
) -> GradCheckReport {
    let mut analytic = Grads::zeros_like(params);
    let base_loss = objective.loss_and_grad(params, units, &mut analytic).mean();

    let mut rng = ChaCha8Rng::seed_from_u64(opts.seed);
    let mut probe = params.clone();
    let mut scratch = Grads::zeros_like(params);
    let mut mean_loss = |p: &ParamStore| -> f64 {
        scratch.clear();
        let loss: BatchLoss = objective.loss_and_grad(p, units, &mut scratch);
        loss.mean()
    };

    let atol = opts.noise_ulps * f32::EPSILON as f64 * base_loss.abs().max(1e-30) / (2.0 * opts.eps as f64);
    let mut report = GradCheckReport { tol: opts.tol, atol, ..Default::default() };
    let mut worst_excess = -1.0;
    for (t, table) in params.tables().iter().enumerate() {
        let grad = analytic.get(TableId(t));
        for i in elements_to_check(table.data.len(), table.cols, grad.touched_rows(), opts, &mut rng) {
            let original = table.data[i];
            let plus = original + opts.eps;
            let minus = original - opts.eps;
            probe.get_mut(TableId(t)).data[i] = plus;
            let l_plus = mean_loss(&probe);
            probe.get_mut(TableId(t)).data[i] = minus;
            let l_minus = mean_loss(&probe);
            probe.get_mut(TableId(t)).data[i] = original;
            let numeric = (l_plus - l_minus) / (plus as f64 - minus as f64);
            let analytic = grad.data[i] as f64;

            let diff = (analytic - numeric).abs();
            let scale = analytic.abs().max(numeric.abs());
            let rel_error = if diff == 0.0 { 0.0 } else { diff / scale };
            let excess = diff / (opts.tol * scale + atol);
            report.checked += 1;
            let is_failure = excess.is_nan() || excess > 1.0;
            let is_worst = excess.is_nan() || excess > worst_excess;
            if rel_error > report.max_rel_error || rel_error.is_nan() {
                report.max_rel_error = rel_error;
            }
            if !(is_failure || is_worst) {
                continue;
            }
            let m = GradMismatch {
                table: table.name.clone(),
                row: i / table.cols,
                col: i % table.cols,
                analytic,
                numeric,
                rel_error,
                excess,
            };
            if is_worst {
                worst_excess = excess;
                report.worst = Some(m.clone());
            }
            if is_failure {
                report.failures.push(m);
            }
        }
    }
    report
}

/// Flat indices to check in one table: all when it is small; otherwise a seeded subset, 90%
/// from touched rows and the rest from anywhere.
fn elements_to_check(
    len: usize,
    cols: usize,
    touched: &[u32],
    opts: &GradCheckOptions,
    rng: &mut ChaCha8Rng,
) -> Vec<usize> {
    if len <= opts.max_per_table {
        return (0..len).collect();
    }
    let touched_len = touched.len() * cols;
    let from_touched = (opts.max_per_table * 9 / 10).min(touched_len);
    let mut picked: Vec<usize> = sample(rng, touched_len, from_touched)
        .into_iter()
        .map(|k| touched[k / cols] as usize * cols + k % cols)
        .collect();
    let anywhere = opts.max_per_table - from_touched;
    picked.extend(sample(rng, len, anywhere));
    picked.sort_unstable();
    picked.dedup();
    picked
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::{GradKind, Init};
    use rand::Rng;

    /// A tiny MF: unit `u` predicts `p_u = sigmoid(a[i_u] . b[j_u] + c[j_u])`, loss
    /// `0.5 (p_u - y_u)^2`, batch mean. With `s = p (1 - p)` and `r = p - y`:
    /// `dL/da_i = r s b_j / B`, `dL/db_j = r s a_i / B`, `dL/dc_j = r s / B`.
    /// `bug` injects a mistake into the backward pass.
    struct TinyMf {
        i: Vec<u32>,
        j: Vec<u32>,
        y: Vec<f32>,
        bug: Bug,
    }

    #[derive(Clone, Copy, PartialEq)]
    enum Bug {
        None,
        /// Forgets the sigmoid's derivative in `b`'s gradient.
        MissingSigmoidDerivative,
        /// Never writes the bias gradient.
        ForgottenBias,
    }

    const A: TableId = TableId(0);
    const B: TableId = TableId(1);
    const C: TableId = TableId(2);

    fn setup(bug: Bug, seed: u64) -> (TinyMf, ParamStore) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let (na, nb, k, n) = (6, 5, 3, 20);
        let mut params = ParamStore::new();
        let init = Init::Normal { mean: 0.0, std: 0.7 };
        params.add("a", na, k, GradKind::SparseRows, init, &mut rng).unwrap();
        params.add("b", nb, k, GradKind::SparseRows, init, &mut rng).unwrap();
        params.add("c", nb, 1, GradKind::SparseRows, init, &mut rng).unwrap();
        let obj = TinyMf {
            i: (0..n).map(|_| rng.random_range(0..na as u32)).collect(),
            j: (0..n).map(|_| rng.random_range(0..nb as u32)).collect(),
            y: (0..n).map(|_| rng.random_range(0.0..1.0)).collect(),
            bug,
        };
        (obj, params)
    }

    impl Objective for TinyMf {
        fn train_units(&self) -> usize {
            self.y.len()
        }

        fn loss_and_grad(&self, params: &ParamStore, units: &[u32], grads: &mut Grads) -> BatchLoss {
            let scale = 1.0 / units.len() as f32;
            let mut loss = BatchLoss::default();
            for &u in units {
                let (i, j) = (self.i[u as usize] as usize, self.j[u as usize] as usize);
                let (a, b) = (params.get(A).row(i), params.get(B).row(j));
                let z: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>() + params.get(C).data[j];
                let p = 1.0 / (1.0 + (-z).exp());
                let r = p - self.y[u as usize];
                loss.add(BatchLoss::new(0.5 * (r as f64) * (r as f64), 1));
                let s = p * (1.0 - p);
                let d = scale * r * s;
                let d_b = if self.bug == Bug::MissingSigmoidDerivative { scale * r } else { d };
                for (g, &x) in grads.get_mut(A).row_mut(i).iter_mut().zip(b) {
                    *g += d * x;
                }
                for (g, &x) in grads.get_mut(B).row_mut(j).iter_mut().zip(a) {
                    *g += d_b * x;
                }
                if self.bug != Bug::ForgottenBias {
                    grads.get_mut(C).row_mut(j)[0] += d;
                }
            }
            loss
        }

        fn validation_loss(&self, _params: &ParamStore) -> Option<BatchLoss> {
            None
        }
    }

    #[test]
    fn a_correct_gradient_passes() {
        for seed in 0..5 {
            let (obj, params) = setup(Bug::None, seed);
            let units: Vec<u32> = (0..20).collect();
            let report = check_with(&obj, &params, &units, &GradCheckOptions::default());
            assert!(report.passed(), "{report}");
            assert_eq!(report.checked, 6 * 3 + 5 * 3 + 5);
            assert!(report.worst.as_ref().unwrap().excess <= 1.0);
            assert!(check(&obj, &params, &units[..7], 1e-3, 1e-2).is_ok());
        }
    }

    #[test]
    fn a_wrong_gradient_fails_and_names_the_table() {
        let (obj, params) = setup(Bug::MissingSigmoidDerivative, 1);
        let units: Vec<u32> = (0..20).collect();
        let report = check(&obj, &params, &units, 1e-3, 1e-2).unwrap_err();
        assert!(!report.failures.is_empty());
        assert!(report.failures.iter().all(|m| m.table == "b"), "{report}");
        assert!(report.max_rel_error > 0.5, "{report}");
        assert!(report.to_string().contains("b["));
    }

    #[test]
    fn a_forgotten_gradient_is_caught_in_untouched_rows() {
        let (obj, params) = setup(Bug::ForgottenBias, 2);
        let units: Vec<u32> = (0..20).collect();
        let report = check(&obj, &params, &units, 1e-3, 1e-2).unwrap_err();
        assert!(report.failures.iter().all(|m| m.table == "c" && m.analytic == 0.0), "{report}");
    }

    #[test]
    fn big_tables_are_sampled_from_touched_rows() {
        let (obj, params) = setup(Bug::None, 3);
        let units: Vec<u32> = (0..4).collect();
        let opts = GradCheckOptions { max_per_table: 4, ..GradCheckOptions::default() };
        let report = check_with(&obj, &params, &units, &opts);
        assert!(report.passed(), "{report}");
        assert!(report.checked <= 12 && report.checked >= 6, "checked {}", report.checked);
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let picked = elements_to_check(1000, 10, &[7, 42], &GradCheckOptions::default(), &mut rng);
        let in_touched = picked.iter().filter(|&&i| i / 10 == 7 || i / 10 == 42).count();
        assert_eq!(in_touched, 20, "both touched rows are fully covered");
    }
}
