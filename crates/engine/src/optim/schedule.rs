//! Learning-rate schedules, evaluated per optimizer step.

use serde::{Deserialize, Serialize};

/// A learning-rate multiplier as a function of the step index (0-based).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Schedule {
    /// Factor 1 always.
    #[default]
    Constant,
    /// PyTorch `LinearLR(start_factor, end_factor, total_iters)`: the factor moves linearly from
    /// `start_factor` to `end_factor` over `total_iters` scheduler steps, then stays.
    Linear {
        /// Factor at step 0.
        start_factor: f32,
        /// Factor from `total_iters` on.
        end_factor: f32,
        /// Steps to reach `end_factor`.
        total_iters: u64,
    },
    /// Linear decay from 1 to 0 over `total_steps` (word2vec's schedule).
    LinearDecay {
        /// Steps to reach zero.
        total_steps: u64,
    },
}

impl Schedule {
    /// The multiplier at scheduler step `step`.
    pub fn factor(&self, step: u64) -> f32 {
        match *self {
            Schedule::Constant => 1.0,
            Schedule::Linear { start_factor, end_factor, total_iters } => {
                if total_iters == 0 {
                    return end_factor;
                }
                let t = step.min(total_iters) as f32 / total_iters as f32;
                start_factor + (end_factor - start_factor) * t
            }
            Schedule::LinearDecay { total_steps } => {
                if total_steps == 0 {
                    return 0.0;
                }
                (1.0 - step as f32 / total_steps as f32).max(0.0)
            }
        }
    }
}
