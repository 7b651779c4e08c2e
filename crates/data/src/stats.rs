//! Summary statistics of a [`Dataset`] (what `reelvec data stats` prints).

use serde::{Deserialize, Serialize};

use crate::transforms::counts;
use crate::types::Dataset;

/// Summary statistics; the JSON keys are the field names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    /// The layout read.
    pub layout: String,
    /// Users with at least one rating.
    pub users: usize,
    /// Movies with at least one rating.
    pub movies_rated: usize,
    /// Movies in the catalogue.
    pub movies_catalogue: usize,
    /// Rating rows kept.
    pub ratings: usize,
    /// Smallest rating.
    pub rating_min: f32,
    /// Largest rating.
    pub rating_max: f32,
    /// Mean rating.
    pub rating_mean: f64,
    /// `ratings / (users * movies_rated)`.
    pub density: f64,
    /// Fewest ratings of a user.
    pub ratings_per_user_min: u32,
    /// Median ratings per user (the lower middle for an even count).
    pub ratings_per_user_median: u32,
    /// Most ratings of a user.
    pub ratings_per_user_max: u32,
    /// Earliest timestamp (seconds since the epoch).
    pub time_min: i64,
    /// Latest timestamp.
    pub time_max: i64,
    /// Duplicate (user, movie) rows dropped.
    pub duplicates_dropped: u64,
    /// Movies rated but absent from the catalogue.
    pub rated_not_in_catalogue: u64,
    /// Catalogue movies never rated.
    pub catalogue_never_rated: u64,
    /// True when read from the binary cache.
    pub from_cache: bool,
}

impl Stats {
    /// Computes the statistics (all zero for an empty dataset).
    pub fn compute(ds: &Dataset) -> Self {
        let r = &ds.ratings;
        let (mut min, mut max, mut sum) = (f32::INFINITY, f32::NEG_INFINITY, 0f64);
        for &x in &r.rating {
            min = min.min(x);
            max = max.max(x);
            sum += f64::from(x);
        }
        let n = r.len();
        let mut per_user = counts(&r.user, ds.users.len());
        per_user.retain(|&c| c > 0);
        per_user.sort_unstable();
        let movies_rated = counts(&r.movie, ds.movies.len()).iter().filter(|&&c| c > 0).count();
        let users = per_user.len();
        Self {
            layout: ds.report.layout.clone(),
            users,
            movies_rated,
            movies_catalogue: ds.catalogue.len(),
            ratings: n,
            rating_min: if n == 0 { 0.0 } else { min },
            rating_max: if n == 0 { 0.0 } else { max },
            rating_mean: if n == 0 { 0.0 } else { sum / n as f64 },
            density: if users * movies_rated == 0 {
                0.0
            } else {
                n as f64 / (users as f64 * movies_rated as f64)
            },
            ratings_per_user_min: per_user.first().copied().unwrap_or(0),
            ratings_per_user_median: per_user.get(users.saturating_sub(1) / 2).copied().unwrap_or(0),
            ratings_per_user_max: per_user.last().copied().unwrap_or(0),
            time_min: r.timestamp.iter().copied().min().unwrap_or(0),
            time_max: r.timestamp.iter().copied().max().unwrap_or(0),
            duplicates_dropped: ds.report.duplicates_dropped,
            rated_not_in_catalogue: ds.report.rated_not_in_catalogue,
            catalogue_never_rated: ds.report.catalogue_never_rated,
            from_cache: ds.report.from_cache,
        }
    }
}
