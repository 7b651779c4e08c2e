//! Shared fixtures of reelvec-models' integration tests.

use reelvec_data::synth::{generate, Preset, SynthConfig};
use reelvec_data::Dataset;

/// A small synthetic data set (300 users, 120 movies, about 30 ratings each, at least 10):
/// large enough that every pipeline's batches split into several lanes.
pub fn small_synthetic() -> Dataset {
    generate(&SynthConfig {
        n_users: 300,
        n_movies: 120,
        mean_ratings_per_user: 30.0,
        min_ratings_per_user: 10,
        ..Preset::Small.config()
    })
    .dataset
}
