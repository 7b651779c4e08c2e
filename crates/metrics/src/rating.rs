//! Rating metrics in stars: RMSE and MAE, undoing any target scaling first.
//!
//! Models such as P3's predict a min-max scaled rating in [0, 1]; the protocol reports errors in
//! stars, so predictions and targets are mapped back through [`RatingScale`] (or any closure with
//! [`rmse_by`] / [`mae_by`]) before the error is taken. Sums are accumulated in f64.

use crate::error::{check_len, MetricsError, Result};

/// How predictions and targets relate to stars.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum RatingScale {
    /// Values are already in stars.
    Stars,
    /// Values were min-max scaled: `scaled = (stars - min) / (max - min)`, so
    /// `stars = scaled * (max - min) + min`.
    MinMax {
        /// The smallest rating of the data the scaler was fitted on.
        min: f32,
        /// The largest rating of the data the scaler was fitted on.
        max: f32,
    },
}

impl RatingScale {
    /// Maps a value on this scale back to stars.
    pub fn to_stars(self, value: f32) -> f32 {
        match self {
            RatingScale::Stars => value,
            RatingScale::MinMax { min, max } => value * (max - min) + min,
        }
    }
}

/// Root mean squared error in stars: `sqrt(mean((unscale(p) - unscale(t))^2))`.
pub fn rmse(predictions: &[f32], targets: &[f32], scale: RatingScale) -> Result<f64> {
    rmse_by(predictions, targets, |v| scale.to_stars(v))
}

/// Mean absolute error in stars: `mean(|unscale(p) - unscale(t)|)`.
pub fn mae(predictions: &[f32], targets: &[f32], scale: RatingScale) -> Result<f64> {
    mae_by(predictions, targets, |v| scale.to_stars(v))
}

/// RMSE after mapping both predictions and targets through `unscale`.
pub fn rmse_by(predictions: &[f32], targets: &[f32], unscale: impl Fn(f32) -> f32) -> Result<f64> {
    let sum_sq = sum_errors(predictions, targets, &unscale, |d| d * d)?;
    Ok((sum_sq / predictions.len() as f64).sqrt())
}

/// MAE after mapping both predictions and targets through `unscale`.
pub fn mae_by(predictions: &[f32], targets: &[f32], unscale: impl Fn(f32) -> f32) -> Result<f64> {
    let sum_abs = sum_errors(predictions, targets, &unscale, f64::abs)?;
    Ok(sum_abs / predictions.len() as f64)
}

fn sum_errors(
    predictions: &[f32],
    targets: &[f32],
    unscale: &impl Fn(f32) -> f32,
    loss: impl Fn(f64) -> f64,
) -> Result<f64> {
    check_len("rating metric: targets vs predictions", predictions.len(), targets.len())?;
    if predictions.is_empty() {
        return Err(MetricsError::Empty { what: "rating metric predictions" });
    }
    Ok(predictions.iter().zip(targets).map(|(&p, &t)| loss(unscale(p) as f64 - unscale(t) as f64)).sum())
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_abs_diff_eq;

    #[test]
    fn rmse_and_mae_by_hand() {
        // errors: 1, -2, 0, 0.5 -> squares 1, 4, 0, 0.25 (sum 5.25), abs sum 3.5
        let p = [4.0, 1.0, 3.0, 2.5];
        let t = [3.0, 3.0, 3.0, 2.0];
        assert_abs_diff_eq!(
            rmse(&p, &t, RatingScale::Stars).unwrap(),
            (5.25f64 / 4.0).sqrt(),
            epsilon = 1e-9
        );
        assert_abs_diff_eq!(mae(&p, &t, RatingScale::Stars).unwrap(), 3.5 / 4.0, epsilon = 1e-9);
    }

    #[test]
    fn min_max_scale_is_undone() {
        // ratings 0.5..5 scaled to [0, 1]: a scaled error of 0.2 is 0.9 stars.
        let scale = RatingScale::MinMax { min: 0.5, max: 5.0 };
        let p = [0.2, 1.0];
        let t = [0.0, 0.8];
        assert_abs_diff_eq!(rmse(&p, &t, scale).unwrap(), 0.9, epsilon = 1e-6);
        assert_abs_diff_eq!(mae(&p, &t, scale).unwrap(), 0.9, epsilon = 1e-6);
        assert_abs_diff_eq!(scale.to_stars(0.0), 0.5);
        assert_abs_diff_eq!(scale.to_stars(1.0), 5.0);
        // A closure gives the same figure.
        assert_abs_diff_eq!(rmse_by(&p, &t, |v| v * 4.5 + 0.5).unwrap(), 0.9, epsilon = 1e-6);
    }

    #[test]
    fn mismatched_or_empty_inputs_are_errors() {
        assert!(matches!(
            rmse(&[1.0], &[1.0, 2.0], RatingScale::Stars),
            Err(MetricsError::ShapeMismatch { .. })
        ));
        assert!(matches!(mae(&[], &[], RatingScale::Stars), Err(MetricsError::Empty { .. })));
    }
}
