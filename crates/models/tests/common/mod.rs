//! Shared fixtures of reelvec-models' integration tests.

use reelvec_data::synth::{generate, Preset, SynthConfig};
use reelvec_data::Dataset;
use reelvec_engine::{History, ParamStore};

/// A small synthetic data set (300 users, 120 movies, about 30 ratings each, at least 10):
/// large enough that every pipeline's batches split into several lanes.
#[allow(dead_code)]
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

/// A sparsely rated catalogue: 60 users, 400 movies, about 1,200 ratings (rarely rated movies
/// sit idle for hundreds of steps, so Adam moments decay into the subnormal range).
#[allow(dead_code)]
pub fn sparse_catalogue() -> Dataset {
    generate(&SynthConfig {
        n_users: 60,
        n_movies: 400,
        mean_ratings_per_user: 20.0,
        min_ratings_per_user: 10,
        ..Preset::Small.config()
    })
    .dataset
}

/// Every table's bits, by name.
#[allow(dead_code)]
pub fn table_bits(params: &ParamStore) -> Vec<(String, Vec<u32>)> {
    params.tables().iter().map(|t| (t.name.clone(), t.data.iter().map(|x| x.to_bits()).collect())).collect()
}

/// The per-epoch training and validation losses' bits.
#[allow(dead_code)]
pub fn loss_bits(history: &History) -> Vec<(u64, Option<u64>)> {
    history.epochs.iter().map(|e| (e.train_loss.to_bits(), e.val_loss.map(f64::to_bits))).collect()
}
