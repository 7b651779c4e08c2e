//! The `frontier` suite: reelvec's P2 (biased MF) beside Surprise's SVD on the same rating rows,
//! as a speed/accuracy frontier. Each case is one epoch budget: reelvec's P2 fitted for that many
//! epochs (the notebook's PyTorch-exact configuration, the `tuned` and the `fast` presets) against Surprise's
//! SVD (`benches/peers/surprise_svd.py`, its defaults: SGD, 100 factors) for the same number of
//! epochs. Times are whole fits, median of [`REPEATS`] runs, CPU and wall; quality is the
//! validation RMSE of each side, raw and clipped to the rating scale (Surprise clips by default;
//! P2's sigmoid range reaches 5.5 and its figures stay raw, as PyTorch's).

use std::path::Path;

use reelvec_data::Dataset;
use reelvec_engine::{Device, Schedule};
use reelvec_models::pipelines::{p2_mf, rating_scale, rating_split};
use reelvec_models::RatingModel;

use crate::error::{bail, Context, Result};

use super::peers::{metric, Peers, Split};
use super::report::{median, Case, Clock, Quality, Timing};

/// Fits per point; the medians are reported.
pub const REPEATS: usize = 3;

/// The epoch budgets (each side runs exactly this many epochs).
pub const EPOCHS: [usize; 4] = [5, 10, 20, 30];

/// Surprise's factor count (its default).
const SVD_FACTORS: usize = 100;

/// What the frontier suite runs on.
#[derive(Debug)]
pub struct FrontierPlan<'a> {
    /// The data (ours, in memory).
    pub dataset: &'a Dataset,
    /// The same data as files, for the script.
    pub data_dir: &'a Path,
    /// Surprise's side, when the peers run.
    pub peers: Option<&'a Peers>,
    /// Where our side trains.
    pub device: Device,
    /// One epoch budget instead of [`EPOCHS`] (`--epochs`, for a quick run).
    pub epochs: Option<usize>,
}

/// One configuration of ours at one epoch budget: median CPU and wall seconds of the fit, and
/// the validation RMSE (raw, clipped).
#[derive(Debug, Clone, Copy)]
struct Point {
    cpu: Option<f64>,
    wall: f64,
    rmse: Option<f64>,
    rmse_clipped: Option<f64>,
    /// The highest 1-minute load average seen before and after the fits.
    load: [Option<f64>; 2],
}

/// The preset `name` set to `epochs` (its linear decay, if any, spans the new budget).
fn config(name: &str, epochs: usize) -> Result<p2_mf::Config> {
    let Some(mut cfg) = p2_mf::Config::preset(name) else { bail!("unknown P2 preset `{name}`") };
    cfg.train.epochs = epochs;
    cfg.train.quiet = true;
    if let Schedule::LinearDecay { total_steps } = &mut cfg.train.schedule {
        *total_steps = epochs as u64;
    }
    Ok(cfg)
}

fn ours(plan: &FrontierPlan<'_>, cfg: &p2_mf::Config) -> Result<Point> {
    let (mut cpu, mut wall) = (Vec::new(), Vec::new());
    let mut load = [None, None];
    let mut last = None;
    for _ in 0..REPEATS {
        let clock = Clock::start();
        let out = p2_mf::run_on(plan.dataset, cfg, plan.device)?;
        let spent = clock.elapsed();
        wall.push(spent.wall);
        cpu.extend(spent.cpu);
        for (seen, now) in load.iter_mut().zip(spent.load) {
            *seen = match (*seen, now) {
                (Some(a), Some(b)) => Some(f64::max(a, b)),
                (a, b) => a.or(b),
            };
        }
        last = Some(out);
    }
    let Some(out) = last else { bail!("no fit ran") };
    let r = &plan.dataset.ratings;
    let clipped = rating_scale(plan.dataset).and_then(|[lo, hi]| {
        let n = out.val_rows.len();
        (n > 0).then(|| {
            let se: f64 = out
                .val_rows
                .iter()
                .map(|&i| {
                    let i = i as usize;
                    let e = f64::from(out.model.predict(r.user[i], r.movie[i]).clamp(lo, hi) - r.rating[i]);
                    e * e
                })
                .sum();
            (se / n as f64).sqrt()
        })
    });
    Ok(Point {
        cpu: (cpu.len() == REPEATS).then(|| median(cpu)),
        wall: median(wall),
        rmse: out.val_rmse,
        rmse_clipped: clipped,
        load,
    })
}

/// Runs every case; a failing script is noted, never fatal.
pub fn run(plan: &FrontierPlan<'_>, notes: &mut Vec<String>) -> Result<Vec<Case>> {
    let base = p2_mf::Config::default();
    let (train, val) = rating_split(plan.dataset.ratings.len(), base.train_fraction, base.seed);
    let split = Split::Rows { train, val };
    let budgets: Vec<usize> = plan.epochs.map_or_else(|| EPOCHS.to_vec(), |e| vec![e]);
    let epochs: Vec<String> = budgets.iter().map(|e| e.to_string()).collect();
    let surprise = plan.peers.and_then(|peers| {
        tracing::info!("bench: Surprise SVD");
        let extra = [
            "--factors".to_string(),
            SVD_FACTORS.to_string(),
            "--epoch-list".to_string(),
            epochs.join(","),
            "--repeats".to_string(),
            REPEATS.to_string(),
        ];
        match peers.run("surprise_svd.py", plan.data_dir, Some(&split), &extra) {
            Ok(run) => Some(run),
            Err(e) => {
                notes.push(format!("Surprise SVD did not run: {e}"));
                None
            }
        }
    });
    let svd_point = |epochs: usize| -> Option<serde_json::Value> {
        let points = surprise.as_ref()?.metrics.get("points")?.as_array()?;
        points.iter().find(|p| p["epochs"].as_u64() == Some(epochs as u64)).cloned()
    };
    let examples = split_len(&split) as f64;
    let mut cases = Vec::new();
    for preset in ["notebook", "tuned", "fast"] {
        for &e in &budgets {
            tracing::info!("bench: P2 {preset}, {e} epochs");
            let cfg = config(preset, e)?;
            let point = ours(plan, &cfg).with_context(|| format!("P2 {preset}, {e} epochs"))?;
            let svd = svd_point(e);
            let num = |key: &str| svd.as_ref().and_then(|p| metric(p, key));
            cases.push(Case {
                id: format!("{preset} e{e}"),
                name: format!(
                    "reelvec P2 `{preset}` (k = {}, batch {}, lr {}) vs Surprise SVD ({SVD_FACTORS} factors, SGD), {e} epochs each",
                    cfg.k, cfg.train.batch_size, cfg.train.lr
                ),
                unit: "fit".into(),
                ours: Timing {
                    units: 1,
                    wall_per_unit: point.wall,
                    cpu_per_unit: point.cpu,
                    examples_per_unit: Some(examples * e as f64),
                    load_average_1min: point.load,
                },
                peer: svd.as_ref().map(|_| Timing {
                    units: 1,
                    wall_per_unit: num("fit_wall_seconds").unwrap_or(f64::NAN),
                    cpu_per_unit: num("fit_cpu_seconds"),
                    examples_per_unit: Some(examples * e as f64),
                    load_average_1min: surprise.as_ref().map_or([None, None], |s| s.timing.load_average_1min),
                }),
                same_rows: surprise.as_ref().map(|s| s.same_rows),
                target_speedup: None,
                quality: vec![
                    Quality::new("val RMSE (raw)", point.rmse, num("val_rmse")),
                    Quality::new("val RMSE (clipped to the scale)", point.rmse_clipped, num("val_rmse_clipped")),
                ],
                figures: vec![],
                note: None,
                load_refused: None,
            });
        }
    }
    Ok(cases)
}

fn split_len(split: &Split) -> usize {
    match split {
        Split::Rows { train, .. } => train.len(),
        Split::Users { train, .. } => train.len(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn presets_take_the_budget_and_their_decay_spans_it() {
        let c = config("tuned", 7).unwrap();
        assert_eq!(c.train.epochs, 7);
        assert_eq!(c.train.schedule, Schedule::LinearDecay { total_steps: 7 });
        assert_eq!(config("notebook", 3).unwrap().train.schedule, p2_mf::Config::default().train.schedule);
        assert!(config("nope", 3).is_err());
        let fast = config("fast", 5).unwrap();
        assert_eq!((fast.init_std, fast.bias_init_std, fast.train.lr), (0.1, 0.0, 1e-2));
        assert_eq!(fast.train.schedule, Schedule::LinearDecay { total_steps: 5 });
    }
}
