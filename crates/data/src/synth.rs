//! The synthetic generator: deterministic MovieLens-shaped data with planted truth.
//!
//! The generative story (all draws from `ChaCha8Rng`s derived from [`SynthConfig::seed`]; users
//! are generated in parallel, each with its own stream, so the output does not depend on the
//! thread count):
//!
//! 1. **Genres.** `n_genres` genres (MovieLens names) with random latent vectors `g_j ~ N(0, I_k)`
//!    and Zipf-like frequencies (a few genres are common, like Drama and Comedy).
//! 2. **Movies.** Each movie has a primary genre and up to two more; its factor vector is
//!    `q_i = (mean of its genres' g_j) + N(0, 0.5² I_k)`, its bias `c_i ~ N(0, 0.45²)` plus a
//!    small bonus for popular movies. Popularity is power-law: the movie at popularity rank `r`
//!    has weight `(r + 10)^-popularity_exponent`.
//! 3. **Franchises.** `n_franchises` series of 2..5 parts (three parts most often) share genres,
//!    have nearly equal factor vectors, consecutive release years and titles "Name", "Name II",
//!    ... The first franchises take the best popularity ranks, so their parts are among the most
//!    rated movies. A user who picks any part watches the whole series in order (with
//!    probability `franchise_binge`), at consecutive timestamps one to ten minutes apart, so a
//!    CBOW window over the time-ordered sequence sees part 1, part 2, part 3 adjacently.
//! 4. **Users.** Each user has one to three favourite genres (drawn by genre frequency); taste
//!    vector `p_u = interaction_scale * (mean of favourite g_j + N(0, 0.5² I_k))`, bias
//!    `b_u ~ N(0, 0.45²)`, and a number of ratings from a log-normal (at least
//!    `min_ratings_per_user`, rescaled so the total is about `n_users * mean_ratings_per_user`).
//!    A user picks movies without replacement: with probability `taste_weight` from a favourite
//!    genre, otherwise from all movies, in both cases in proportion to popularity.
//! 5. **Ratings.** `r_ui = mean_rating + b_u + c_i + p_u . q_i / k + e`, `e ~ N(0, sigma²)`, then
//!    clamped to [0.5, 5] and rounded to half stars. The rounding adds noise of its own: for a
//!    rating away from the bounds it is about uniform on ±0.25, standard deviation
//!    `0.25 / sqrt(3) ≈ 0.144`, so an ideal model's RMSE is about `sqrt(sigma² + 0.0208)`
//!    (slightly less where clamping pulls the extremes in).
//! 6. **Timestamps.** Each user starts at a random time in `[start_time, end_time)` and rates
//!    blocks (single movies or a whole franchise) in random order; blocks are minutes to days
//!    apart (sometimes zero seconds apart, to exercise stable ordering of ties); parts inside a
//!    franchise block are strictly increasing.
//!
//! Rows are ordered by user, then by raw movie id (like ml-latest-small's ratings.csv, which is
//! not in time order). Raw ids are `1..=n_users` and `1..=n_movies`.

use std::path::Path;

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::DataError;
use crate::types::{Catalogue, Dataset, IdMap, LoadReport, Movie, Ratings};

/// Genre names, most common first (the synthetic genre frequencies follow this order).
pub const GENRES: [&str; 18] = [
    "Drama",
    "Comedy",
    "Action",
    "Thriller",
    "Romance",
    "Adventure",
    "Crime",
    "Sci-Fi",
    "Horror",
    "Fantasy",
    "Children's",
    "Mystery",
    "Animation",
    "War",
    "Musical",
    "Documentary",
    "Western",
    "Film-Noir",
];

/// Sizes of the built-in configurations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Preset {
    /// 60 users, 120 movies, about 1,500 ratings: for unit tests.
    Tiny,
    /// 1,000 users, 1,700 movies, about 100,000 ratings: the embedded default data set.
    Small,
    /// ml-100k's shape: 943 users, 1,682 movies, about 100,000 ratings.
    Ml100k,
    /// ml-latest-small's shape: 610 users, 9,742 movies, about 100,000 ratings (a large, sparsely
    /// rated catalogue: the MF speed cases of issue 13).
    MlLatestSmall,
    /// ml-1m's shape: 6,040 users, 3,706 movies, about 1,000,000 ratings.
    Ml1m,
    /// ml-25m's shape: 162,541 users, 59,047 movies, about 25,000,000 ratings.
    Ml25m,
}

impl Preset {
    /// Every preset, smallest first.
    pub const ALL: [Preset; 6] =
        [Preset::Tiny, Preset::Small, Preset::Ml100k, Preset::MlLatestSmall, Preset::Ml1m, Preset::Ml25m];

    /// The preset's name ("tiny", "small", "ml-100k", "ml-1m", "ml-25m").
    pub fn name(self) -> &'static str {
        match self {
            Preset::Tiny => "tiny",
            Preset::Small => "small",
            Preset::Ml100k => "ml-100k",
            Preset::MlLatestSmall => "ml-latest-small",
            Preset::Ml1m => "ml-1m",
            Preset::Ml25m => "ml-25m",
        }
    }

    /// The configuration of this preset with seed 42.
    pub fn config(self) -> SynthConfig {
        let base = SynthConfig::default();
        match self {
            Preset::Tiny => SynthConfig {
                n_users: 60,
                n_movies: 120,
                mean_ratings_per_user: 25.0,
                min_ratings_per_user: 10,
                n_franchises: 4,
                ..base
            },
            Preset::Small => base,
            Preset::Ml100k => {
                SynthConfig { n_users: 943, n_movies: 1682, mean_ratings_per_user: 106.0, ..base }
            }
            Preset::MlLatestSmall => SynthConfig {
                n_users: 610,
                n_movies: 9742,
                mean_ratings_per_user: 165.3,
                n_franchises: 40,
                ..base
            },
            Preset::Ml1m => SynthConfig {
                n_users: 6040,
                n_movies: 3706,
                mean_ratings_per_user: 165.6,
                n_franchises: 40,
                ..base
            },
            Preset::Ml25m => SynthConfig {
                n_users: 162_541,
                n_movies: 59_047,
                mean_ratings_per_user: 153.8,
                n_franchises: 600,
                ..base
            },
        }
    }
}

impl std::fmt::Display for Preset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Preset {
    type Err = DataError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().replace('_', "-").as_str() {
            "tiny" => Ok(Preset::Tiny),
            "small" => Ok(Preset::Small),
            "ml-100k" | "ml100k" | "100k" => Ok(Preset::Ml100k),
            "ml-latest-small" | "latest-small" => Ok(Preset::MlLatestSmall),
            "ml-1m" | "ml1m" | "1m" => Ok(Preset::Ml1m),
            "ml-25m" | "ml25m" | "25m" => Ok(Preset::Ml25m),
            other => Err(DataError::Invalid(format!(
                "unknown preset {other:?} (tiny, small, ml-100k, ml-latest-small, ml-1m, ml-25m)"
            ))),
        }
    }
}

/// Every knob of the generator (serde; `Default` is [`Preset::Small`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SynthConfig {
    /// Number of users.
    pub n_users: usize,
    /// Number of catalogue movies (the least popular may end up never rated).
    pub n_movies: usize,
    /// Target mean number of ratings per user.
    pub mean_ratings_per_user: f64,
    /// Fewest ratings a user gets (MovieLens: 20).
    pub min_ratings_per_user: usize,
    /// Number of genres (at most 18).
    pub n_genres: usize,
    /// Dimension `k` of the latent factors.
    pub factors: usize,
    /// Scale of the taste vectors (sets how much of the rating variance the interaction explains).
    pub interaction_scale: f32,
    /// Standard deviation of the Gaussian rating noise, in stars (before half-star rounding).
    pub sigma: f32,
    /// Mean rating `mu` of the latent model.
    pub mean_rating: f32,
    /// Popularity weight of rank `r` is `(r + 10)^-popularity_exponent`.
    pub popularity_exponent: f64,
    /// Number of franchises (series of 2..5 parts).
    pub n_franchises: usize,
    /// Probability that a user who picks a franchise part watches the whole series.
    pub franchise_binge: f64,
    /// Probability that a pick comes from a favourite genre rather than the whole catalogue.
    pub taste_weight: f64,
    /// First timestamp (seconds since the epoch).
    pub start_time: i64,
    /// Timestamps stay below this.
    pub end_time: i64,
    /// Seed of every random draw.
    pub seed: u64,
}

impl Default for SynthConfig {
    /// The [`Preset::Small`] configuration.
    fn default() -> Self {
        Self {
            n_users: 1000,
            n_movies: 1700,
            mean_ratings_per_user: 100.0,
            min_ratings_per_user: 20,
            n_genres: 18,
            factors: 16,
            interaction_scale: 1.8,
            sigma: 0.5,
            mean_rating: 3.0,
            popularity_exponent: 1.0,
            n_franchises: 8,
            franchise_binge: 0.9,
            taste_weight: 0.6,
            start_time: 946_684_800, // 2000-01-01
            end_time: 1_577_836_800, // 2020-01-01
            seed: 42,
        }
    }
}

/// The planted truth of a generated data set (written as `truth.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SynthTruth {
    /// Standard deviation of the Gaussian rating noise (before rounding).
    pub sigma: f32,
    /// Standard deviation added by half-star rounding (about 0.144).
    pub rounding_std: f32,
    /// Genre names; genre `g` of `movie_genres` is `genre_names[g]`.
    pub genre_names: Vec<String>,
    /// Raw movie id of each catalogue entry (`1..=n_movies`).
    pub movie_raw_ids: Vec<u64>,
    /// Genre indices of each catalogue entry (parallel to `movie_raw_ids`), primary genre first.
    pub movie_genres: Vec<Vec<u16>>,
    /// Franchises: raw movie ids in watch order. The first ones are the most popular.
    pub franchises: Vec<Vec<u64>>,
    /// The configuration that generated the data.
    pub config: SynthConfig,
}

impl SynthTruth {
    /// Writes the truth as pretty JSON (complete or not at all: temporary file, then rename).
    pub fn save(&self, path: &Path) -> Result<(), DataError> {
        let text = serde_json::to_string_pretty(self).map_err(|e| DataError::Invalid(e.to_string()))?;
        crate::write::write_file(path, |w| {
            std::io::Write::write_all(w, text.as_bytes()).map_err(|e| DataError::io(path, e))
        })
    }

    /// Reads a truth file.
    pub fn load(path: &Path) -> Result<Self, DataError> {
        let text = std::fs::read_to_string(path).map_err(|e| DataError::io(path, e))?;
        serde_json::from_str(&text)
            .map_err(|e| DataError::parse(path, e.line() as u64, crate::ParseProblem::Other(e.to_string())))
    }
}

/// A generated data set and its truth.
#[derive(Debug, Clone, PartialEq)]
pub struct SynthData {
    /// The ratings and catalogue, as [`crate::load`] would return them.
    pub dataset: Dataset,
    /// What was planted.
    pub truth: SynthTruth,
}

/// The embedded default data set: [`Preset::Small`] with seed 42.
pub fn small() -> SynthData {
    generate(&Preset::Small.config())
}

fn normal_vec(rng: &mut ChaCha8Rng, k: usize, std: f32) -> Vec<f32> {
    (0..k).map(|_| rng.sample::<f32, _>(StandardNormal) * std).collect()
}

/// An exponential draw with the given mean (inverse CDF).
fn exponential(rng: &mut ChaCha8Rng, mean: f64) -> f64 {
    -mean * (1.0 - rng.random::<f64>()).ln()
}

fn normal(rng: &mut ChaCha8Rng, std: f32) -> f32 {
    rng.sample::<f32, _>(StandardNormal) * std
}

/// Cumulative weights with a guide table (the "cutpoint" method of Chen and Asau): a draw `x` in
/// `[0, total)` falls in bucket `floor(x * buckets / total)`, whose guide entry is the answer for
/// the bucket's lower edge; a short scan from there finds the first item whose cumulative weight
/// exceeds `x`. That is exactly what a binary search over the cumulative weights returns (the
/// backward step covers rounding at bucket edges), so a seed gives the same draws as a plain
/// inverse-CDF search, in O(1) expected time instead of O(log n) cache misses.
struct Cdf {
    items: Vec<u32>,
    cumulative: Vec<f64>,
    /// `guide[b]` = index of the first item with cumulative weight above `b * total / buckets`.
    guide: Vec<u32>,
    /// `buckets / total`.
    bucket_scale: f64,
}

impl Cdf {
    fn new(items: Vec<u32>, weight: impl Fn(u32) -> f64) -> Self {
        let mut acc = 0.0;
        let cumulative: Vec<f64> = items
            .iter()
            .map(|&i| {
                acc += weight(i);
                acc
            })
            .collect();
        let total = cumulative.last().copied().unwrap_or(0.0);
        let buckets = if total > 0.0 { items.len().div_ceil(4) } else { 0 };
        let mut guide = Vec::with_capacity(buckets);
        let mut i = 0usize;
        for b in 0..buckets {
            let edge = total * b as f64 / buckets as f64;
            while i < cumulative.len() && cumulative[i] <= edge {
                i += 1;
            }
            guide.push(i as u32);
        }
        let bucket_scale = if total > 0.0 { buckets as f64 / total } else { 0.0 };
        Self { items, cumulative, guide, bucket_scale }
    }

    fn sample(&self, rng: &mut ChaCha8Rng) -> Option<u32> {
        let total = *self.cumulative.last()?;
        let x = rng.random::<f64>() * total;
        let c = &self.cumulative;
        let bucket = ((x * self.bucket_scale) as usize).min(self.guide.len().saturating_sub(1));
        let mut i = self.guide.get(bucket).map_or(0, |&g| g as usize);
        while i > 0 && c[i - 1] > x {
            i -= 1;
        }
        while i < c.len() && c[i] <= x {
            i += 1;
        }
        Some(self.items[i.min(self.items.len() - 1)])
    }
}

const TITLE_WORDS_A: [&str; 24] = [
    "Silent", "Crimson", "Last", "Hidden", "Broken", "Golden", "Midnight", "Lost", "Wild", "Frozen",
    "Burning", "Secret", "Distant", "Electric", "Quiet", "Savage", "Brave", "Dark", "Little", "Endless",
    "Paper", "Iron", "Velvet", "Lonely",
];
const TITLE_WORDS_B: [&str; 24] = [
    "River",
    "Empire",
    "Garden",
    "Kingdom",
    "Harbor",
    "Mirror",
    "Voyage",
    "Summer",
    "Station",
    "Witness",
    "Frontier",
    "Promise",
    "Letter",
    "Island",
    "Shadow",
    "Horizon",
    "Circus",
    "Orchard",
    "Citadel",
    "Canyon",
    "Detective",
    "Symphony",
    "Orbit",
    "Café",
];
const ROMAN: [&str; 5] = ["", " II", " III", " IV", " V"];

fn base_title(rng: &mut ChaCha8Rng, i: usize) -> String {
    let a = TITLE_WORDS_A[rng.random_range(0..TITLE_WORDS_A.len())];
    let b = TITLE_WORDS_B[rng.random_range(0..TITLE_WORDS_B.len())];
    match i % 10 {
        // MovieLens moves a leading article to the end: "Matrix, The".
        0 => format!("{a} {b}, The"),
        3 => format!("{a} {b} of the {}", TITLE_WORDS_B[(i / 10) % TITLE_WORDS_B.len()]),
        7 => format!("\"{a}\" {b}"),
        _ => format!("{a} {b}"),
    }
}

struct MovieModel {
    factors: Vec<f32>, // n_movies x k
    bias: Vec<f32>,
    franchise_of: Vec<u32>, // u32::MAX when none
}

/// Generates a data set (deterministic for a given config).
pub fn generate(cfg: &SynthConfig) -> SynthData {
    let k = cfg.factors.max(1);
    let n_genres = cfg.n_genres.clamp(1, GENRES.len());
    let n_movies = cfg.n_movies.max(1);
    let n_users = cfg.n_users;
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);

    // 1. Genres.
    let genre_vectors: Vec<Vec<f32>> = (0..n_genres).map(|_| normal_vec(&mut rng, k, 1.0)).collect();
    let genre_cdf = Cdf::new((0..n_genres as u32).collect(), |g| 1.0 / (f64::from(g) + 2.0));

    // 2. Movies: popularity ranks, franchises first.
    let mut franchises: Vec<Vec<u32>> = Vec::new();
    let mut next_movie = 0u32;
    for f in 0..cfg.n_franchises {
        let parts = if f == 0 { 3 } else { [2, 3, 3, 3, 4, 5][rng.random_range(0..6)] };
        if next_movie as usize + parts > n_movies / 2 {
            break;
        }
        franchises.push((next_movie..next_movie + parts as u32).collect());
        next_movie += parts as u32;
    }
    let n_franchise_movies = next_movie as usize;
    // Franchise movies: the first few franchises take the best ranks (interleaved with a few
    // standalone hits), later ones spread over the top third.
    let mut rank_of = vec![0usize; n_movies];
    {
        let mut free: Vec<usize> = (0..n_movies).collect();
        let mut taken = vec![false; n_movies];
        let mut standalone = (n_franchise_movies..n_movies).collect::<Vec<_>>();
        standalone.shuffle(&mut rng);
        let mut assigned = Vec::with_capacity(n_movies);
        let top_franchises = franchises.len().min(4);
        // Ranks 0.. alternate: franchise parts of the top franchises, one standalone hit.
        let mut stand_iter = standalone.iter().copied();
        for f in &franchises[..top_franchises] {
            for &m in f {
                assigned.push(m as usize);
            }
            if let Some(s) = stand_iter.next() {
                assigned.push(s);
            }
        }
        for (r, &m) in assigned.iter().enumerate() {
            rank_of[m] = r;
            taken[r] = true;
        }
        free.retain(|&r| !taken[r]);
        let third = (free.len() / 3).max(1);
        let mut pool_top: Vec<usize> = free[..third.min(free.len())].to_vec();
        let mut pool_rest: Vec<usize> = free[third.min(free.len())..].to_vec();
        pool_top.shuffle(&mut rng);
        for f in &franchises[top_franchises..] {
            for &m in f {
                if let Some(r) = pool_top.pop() {
                    rank_of[m as usize] = r;
                }
            }
        }
        pool_rest.extend(pool_top);
        pool_rest.shuffle(&mut rng);
        for m in stand_iter {
            if let Some(r) = pool_rest.pop() {
                rank_of[m] = r;
            }
        }
    }
    let popularity: Vec<f64> =
        rank_of.iter().map(|&r| (r as f64 + 10.0).powf(-cfg.popularity_exponent)).collect();
    let mut franchise_of = vec![u32::MAX; n_movies];
    for (f, parts) in franchises.iter().enumerate() {
        for &m in parts {
            franchise_of[m as usize] = f as u32;
        }
    }

    let mut movie_genres: Vec<Vec<u16>> = vec![Vec::new(); n_movies];
    let mut factors = vec![0f32; n_movies * k];
    let mut bias = vec![0f32; n_movies];
    let mut years = vec![0u16; n_movies];
    let mut titles = vec![String::new(); n_movies];
    let draw_genres = |rng: &mut ChaCha8Rng| -> Vec<u16> {
        let mut gs = vec![genre_cdf.sample(rng).unwrap_or(0) as u16];
        let extra = [0, 1, 1, 2][rng.random_range(0..4)];
        for _ in 0..extra {
            let g = rng.random_range(0..n_genres) as u16;
            if !gs.contains(&g) {
                gs.push(g);
            }
        }
        gs
    };
    let movie_vector = |rng: &mut ChaCha8Rng, gs: &[u16]| -> Vec<f32> {
        let mut v = normal_vec(rng, k, 0.5);
        for &g in gs {
            for (x, gv) in v.iter_mut().zip(&genre_vectors[g as usize]) {
                *x += gv / gs.len() as f32;
            }
        }
        v
    };
    let max_pop = popularity.iter().copied().fold(0.0, f64::max);
    let pop_bonus = |m: usize| 0.3 * (popularity[m] / max_pop).powf(0.3) as f32;
    for (f, parts) in franchises.iter().enumerate() {
        let gs = draw_genres(&mut rng);
        let base = movie_vector(&mut rng, &gs);
        let base_bias = normal(&mut rng, 0.45);
        let year = rng.random_range(1975..2012u16);
        let name = base_title(&mut rng, f);
        for (p, &m) in parts.iter().enumerate() {
            let m = m as usize;
            movie_genres[m] = gs.clone();
            for (d, x) in factors[m * k..(m + 1) * k].iter_mut().enumerate() {
                *x = base[d] + normal(&mut rng, 0.1);
            }
            bias[m] = base_bias - 0.1 * p as f32 + pop_bonus(m);
            years[m] = year + 2 * p as u16;
            titles[m] = format!("{name}{}", ROMAN[p]);
        }
    }
    for m in n_franchise_movies..n_movies {
        let gs = draw_genres(&mut rng);
        let v = movie_vector(&mut rng, &gs);
        factors[m * k..(m + 1) * k].copy_from_slice(&v);
        bias[m] = normal(&mut rng, 0.45) + pop_bonus(m);
        // Skewed toward recent years, like MovieLens.
        let u: f64 = rng.random();
        years[m] = (1920.0 + 100.0 * u.sqrt()) as u16;
        titles[m] = base_title(&mut rng, m);
        movie_genres[m] = gs;
    }

    // Popularity CDFs: all movies, and per genre.
    let all_cdf = Cdf::new((0..n_movies as u32).collect(), |m| popularity[m as usize]);
    let genre_cdfs: Vec<Cdf> = (0..n_genres as u16)
        .map(|g| {
            let items = (0..n_movies as u32).filter(|&m| movie_genres[m as usize].contains(&g)).collect();
            Cdf::new(items, |m| popularity[m as usize])
        })
        .collect();

    // 4. Users' rating counts, rescaled to the target total.
    // Log-normal with log-scale standard deviation 0.9.
    let raw_counts: Vec<f64> =
        (0..n_users).map(|_| (0.9 * rng.sample::<f64, _>(StandardNormal)).exp()).collect();
    let max_per_user = (n_movies * 3 / 4).max(1);
    let min_per_user = cfg.min_ratings_per_user.min(max_per_user);
    let target = cfg.mean_ratings_per_user * n_users as f64;
    let sum: f64 = raw_counts.iter().sum();
    let mut scale = if sum > 0.0 { target / sum } else { 1.0 };
    let mut counts: Vec<usize> = Vec::new();
    for _ in 0..4 {
        counts = raw_counts
            .iter()
            .map(|&c| ((c * scale).round() as usize).clamp(min_per_user, max_per_user))
            .collect();
        let total: usize = counts.iter().sum();
        if total == 0 {
            break;
        }
        scale *= target / total as f64;
    }

    let model = MovieModel { factors, bias, franchise_of };
    let gen_ctx = UserGen {
        cfg,
        k,
        n_genres,
        genre_vectors: &genre_vectors,
        genre_cdf: &genre_cdf,
        all_cdf: &all_cdf,
        genre_cdfs: &genre_cdfs,
        model: &model,
        franchises: &franchises,
    };
    // Users are generated in parallel blocks (each user from its own stream), then the blocks'
    // rows are copied into the final columns in parallel.
    let block = 1024;
    let starts: Vec<usize> = (0..n_users).step_by(block).collect();
    let parts: Vec<UserBlock> = starts
        .par_iter()
        .map_init(
            || vec![false; n_movies],
            |seen, &from| {
                let mut part = UserBlock::default();
                let to = (from + block).min(n_users);
                for (u, &count) in counts[from..to].iter().enumerate() {
                    gen_ctx.user(from + u, count, seen, &mut part);
                }
                part
            },
        )
        .collect();
    let genre_names: Vec<String> = GENRES[..n_genres].iter().map(|s| s.to_string()).collect();
    let movies: Vec<Movie> = (0..n_movies)
        .map(|m| Movie {
            raw_id: m as u64 + 1,
            title: titles[m].clone(),
            full_title: format!("{} ({})", titles[m], years[m]),
            year: Some(years[m]),
            genres: movie_genres[m].iter().map(|&g| genre_names[g as usize].clone()).collect(),
        })
        .collect();
    let dataset = assemble_blocks(parts, n_users, n_movies, Catalogue::new(movies));
    let truth = SynthTruth {
        sigma: cfg.sigma,
        rounding_std: 0.25 / 3f32.sqrt(),
        genre_names,
        movie_raw_ids: (1..=n_movies as u64).collect(),
        movie_genres,
        franchises: franchises.iter().map(|f| f.iter().map(|&m| u64::from(m) + 1).collect()).collect(),
        config: cfg.clone(),
    };
    SynthData { dataset, truth }
}

/// Everything a user's generation reads (shared across threads).
struct UserGen<'a> {
    cfg: &'a SynthConfig,
    k: usize,
    n_genres: usize,
    genre_vectors: &'a [Vec<f32>],
    genre_cdf: &'a Cdf,
    all_cdf: &'a Cdf,
    genre_cdfs: &'a [Cdf],
    model: &'a MovieModel,
    franchises: &'a [Vec<u32>],
}

impl UserGen<'_> {
    /// One user's rows (movie index, rating, timestamp), sorted by movie index.
    fn user(&self, u: usize, n_ratings: usize, seen: &mut [bool], out: &mut UserBlock) {
        let cfg = self.cfg;
        let k = self.k;
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
        rng.set_stream(u as u64 + 1);
        let n_fav = rng.random_range(1..=3usize.min(self.n_genres));
        let mut favourites: Vec<usize> = Vec::with_capacity(n_fav);
        for _ in 0..n_fav * 4 {
            let g = self.genre_cdf.sample(&mut rng).unwrap_or(0) as usize;
            if !favourites.contains(&g) && !self.genre_cdfs[g].items.is_empty() {
                favourites.push(g);
            }
            if favourites.len() == n_fav {
                break;
            }
        }
        let mut taste = normal_vec(&mut rng, k, 0.5);
        for &g in &favourites {
            for (x, gv) in taste.iter_mut().zip(&self.genre_vectors[g]) {
                *x += gv / favourites.len().max(1) as f32;
            }
        }
        for x in &mut taste {
            *x *= cfg.interaction_scale;
        }
        let user_bias = normal(&mut rng, 0.45);

        // Pick blocks of movies: block `b` is `picks[blocks[b].0..blocks[b].1]`.
        let mut picks: Vec<u32> = Vec::with_capacity(n_ratings + 4);
        let mut blocks: Vec<(u32, u32)> = Vec::with_capacity(n_ratings);
        let mut attempts = 0usize;
        while picks.len() < n_ratings && attempts < 30 * n_ratings + 100 {
            attempts += 1;
            let cdf = if !favourites.is_empty() && rng.random::<f64>() < cfg.taste_weight {
                &self.genre_cdfs[favourites[rng.random_range(0..favourites.len())]]
            } else {
                self.all_cdf
            };
            let Some(m) = cdf.sample(&mut rng) else { continue };
            if seen[m as usize] {
                continue;
            }
            let f = self.model.franchise_of[m as usize];
            let start = picks.len() as u32;
            if f != u32::MAX && rng.random::<f64>() < cfg.franchise_binge {
                for &p in &self.franchises[f as usize] {
                    if !seen[p as usize] {
                        seen[p as usize] = true;
                        picks.push(p);
                    }
                }
            } else {
                seen[m as usize] = true;
                picks.push(m);
            }
            blocks.push((start, picks.len() as u32));
        }
        blocks.shuffle(&mut rng);

        // Timestamps: blocks minutes to days apart, parts one to ten minutes apart.
        let span = (cfg.end_time - cfg.start_time).max(1);
        let mut t = cfg.start_time + rng.random_range(0..span * 3 / 4 + 1);
        let mut rows: Vec<(u32, f32, i64)> = Vec::with_capacity(picks.len());
        for &(from, to) in &blocks {
            t += if rng.random::<f64>() < 0.05 { 0 } else { exponential(&mut rng, 20_000.0) as i64 + 1 };
            for (p, &m) in picks[from as usize..to as usize].iter().enumerate() {
                if p > 0 {
                    t += rng.random_range(60..600);
                }
                let q = &self.model.factors[m as usize * k..(m as usize + 1) * k];
                let dot: f32 = taste.iter().zip(q).map(|(a, b)| a * b).sum::<f32>() / k as f32;
                let r = cfg.mean_rating
                    + user_bias
                    + self.model.bias[m as usize]
                    + dot
                    + normal(&mut rng, cfg.sigma);
                let r = (r.clamp(0.5, 5.0) * 2.0).round() / 2.0;
                rows.push((m, r, t.min(cfg.end_time - 1)));
            }
        }
        for &p in &picks {
            seen[p as usize] = false;
        }
        rows.sort_unstable_by_key(|r| r.0);
        out.user.extend(std::iter::repeat_n(u as u32, rows.len()));
        out.movie.extend(rows.iter().map(|r| r.0));
        out.rating.extend(rows.iter().map(|r| r.1));
        out.timestamp.extend(rows.iter().map(|r| r.2));
    }
}

/// The rows of a block of consecutive users: user and movie are generator indices (raw id - 1).
#[derive(Default)]
struct UserBlock {
    user: Vec<u32>,
    movie: Vec<u32>,
    rating: Vec<f32>,
    timestamp: Vec<i64>,
}

/// Concatenates the user blocks into a [`Dataset`], exactly as [`assemble`] would build it from
/// the raw ids (users and movies densely indexed in order of first appearance), without the
/// 64-bit raw-id columns: dense indices come from per-block first-appearance lists merged in
/// order, and the columns are copied and re-indexed in parallel. The generator draws movies
/// without replacement per user, so there are no duplicate rows to drop.
fn assemble_blocks(parts: Vec<UserBlock>, n_users: usize, n_movies: usize, catalogue: Catalogue) -> Dataset {
    // First appearances per block, in parallel, then merged in block order.
    let firsts: Vec<Vec<u32>> = parts
        .par_iter()
        .map_init(
            || vec![false; n_movies],
            |seen, part| {
                let mut first = Vec::new();
                for &m in &part.movie {
                    if !seen[m as usize] {
                        seen[m as usize] = true;
                        first.push(m);
                    }
                }
                for &m in &first {
                    seen[m as usize] = false;
                }
                first
            },
        )
        .collect();
    let mut movie_dense = vec![u32::MAX; n_movies];
    let mut movie_raws = Vec::new();
    for m in firsts.iter().flatten() {
        if movie_dense[*m as usize] == u32::MAX {
            movie_dense[*m as usize] = movie_raws.len() as u32;
            movie_raws.push(u64::from(*m) + 1);
        }
    }
    let mut user_dense = vec![u32::MAX; n_users];
    let mut user_raws = Vec::new();
    for part in &parts {
        let mut last = u32::MAX;
        for &u in &part.user {
            if u != last {
                user_dense[u as usize] = user_raws.len() as u32;
                user_raws.push(u64::from(u) + 1);
                last = u;
            }
        }
    }
    let total: usize = parts.iter().map(|p| p.user.len()).sum();
    let mut ratings = Ratings {
        user: vec![0; total],
        movie: vec![0; total],
        rating: vec![0.0; total],
        timestamp: vec![0; total],
    };
    {
        let mut user_out: &mut [u32] = &mut ratings.user;
        let mut movie_out: &mut [u32] = &mut ratings.movie;
        let mut rating_out: &mut [f32] = &mut ratings.rating;
        let mut time_out: &mut [i64] = &mut ratings.timestamp;
        let mut jobs = Vec::with_capacity(parts.len());
        for part in &parts {
            let n = part.user.len();
            let (u, rest_u) = std::mem::take(&mut user_out).split_at_mut(n);
            let (m, rest_m) = std::mem::take(&mut movie_out).split_at_mut(n);
            let (r, rest_r) = std::mem::take(&mut rating_out).split_at_mut(n);
            let (t, rest_t) = std::mem::take(&mut time_out).split_at_mut(n);
            (user_out, movie_out, rating_out, time_out) = (rest_u, rest_m, rest_r, rest_t);
            jobs.push((part, u, m, r, t));
        }
        jobs.into_par_iter().for_each(|(part, u, m, r, t)| {
            for (o, &x) in u.iter_mut().zip(&part.user) {
                *o = user_dense[x as usize];
            }
            for (o, &x) in m.iter_mut().zip(&part.movie) {
                *o = movie_dense[x as usize];
            }
            r.copy_from_slice(&part.rating);
            t.copy_from_slice(&part.timestamp);
        });
    }
    drop(parts);
    let movies = IdMap::from_dense_order(movie_raws);
    let catalogue_never_rated =
        catalogue.movies().iter().filter(|m| movies.dense(m.raw_id).is_none()).count();
    Dataset {
        ratings,
        users: IdMap::from_dense_order(user_raws),
        movies,
        catalogue,
        report: LoadReport {
            layout: "synthetic".into(),
            from_cache: false,
            rows_read: total as u64,
            duplicates_dropped: 0,
            rated_not_in_catalogue: 0,
            catalogue_never_rated: catalogue_never_rated as u64,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The guide-table draw equals the plain inverse-CDF binary search for the same uniform.
    #[test]
    fn guide_table_draws_equal_binary_search() {
        let weights: [Vec<f64>; 4] = [
            (0..5000).map(|r| (f64::from(r) + 10.0).powf(-1.0)).collect(),
            vec![0.0, 3.0, 0.0, 0.0, 1.0, 0.0],
            vec![1.0],
            (0..97).map(|r| if r % 7 == 0 { 0.0 } else { f64::from(r % 5) + 0.1 }).collect(),
        ];
        for w in &weights {
            let items: Vec<u32> = (0..w.len() as u32).map(|i| i * 3 + 1).collect();
            let cdf = Cdf::new(items.clone(), |i| w[(i / 3) as usize]);
            let (mut a, mut b) = (ChaCha8Rng::seed_from_u64(9), ChaCha8Rng::seed_from_u64(9));
            for _ in 0..20_000 {
                let x = b.random::<f64>() * cdf.cumulative[cdf.cumulative.len() - 1];
                let i = cdf.cumulative.partition_point(|&c| c <= x).min(items.len() - 1);
                assert_eq!(cdf.sample(&mut a), Some(items[i]));
            }
            // Zero-weight items are never drawn.
            let zero = w.iter().position(|&x| x == 0.0);
            if let Some(z) = zero {
                assert!((0..2000).all(|_| cdf.sample(&mut a) != Some(items[z])));
            }
        }
        assert_eq!(Cdf::new(Vec::new(), |_| 1.0).sample(&mut ChaCha8Rng::seed_from_u64(1)), None);
    }
}
