//! The synthetic generator: determinism, shape of the presets, and the planted signals.

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;

use reelvec_data::stats::Stats;
use reelvec_data::synth::{generate, Preset, SynthConfig};
use reelvec_data::transforms;

#[test]
fn generation_is_deterministic_and_seeded() {
    let a = generate(&Preset::Tiny.config());
    let b = generate(&Preset::Tiny.config());
    assert_eq!(a, b);
    let c = generate(&SynthConfig { seed: 7, ..Preset::Tiny.config() });
    assert_ne!(a.dataset.ratings, c.dataset.ratings);
    // Rayon thread count does not matter (each user has its own stream).
    let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
    let d = pool.install(|| generate(&Preset::Tiny.config()));
    assert_eq!(a, d);
}

#[test]
fn ratings_are_half_stars_in_range() {
    let s = generate(&Preset::Tiny.config());
    for &r in &s.dataset.ratings.rating {
        assert!((0.5..=5.0).contains(&r));
        assert_eq!((r * 2.0).fract(), 0.0);
    }
    assert_eq!(s.dataset.report.duplicates_dropped, 0);
    assert_eq!(s.truth.movie_genres.len(), s.dataset.catalogue.len());
}

/// The CBOW examples of P0 with window 1: (left, right) -> middle, first and last positions dropped.
fn window1_examples(seqs: &[Vec<u32>]) -> Vec<(u32, u32, u32)> {
    let mut out = Vec::new();
    for s in seqs {
        for i in 1..s.len().saturating_sub(1) {
            out.push((s[i - 1], s[i + 1], s[i]));
        }
    }
    out
}

#[test]
fn small_preset_has_the_documented_shape_and_franchise_signal() {
    let s = generate(&Preset::Small.config());
    let ds = &s.dataset;
    let st = Stats::compute(ds);
    eprintln!("{st:#?}");
    let var = ds.ratings.rating.iter().map(|&r| (f64::from(r) - st.rating_mean).powi(2)).sum::<f64>()
        / st.ratings as f64;
    eprintln!("rating std {:.3}", var.sqrt());
    assert_eq!(st.users, 1000);
    assert!((90_000..=115_000).contains(&st.ratings), "{}", st.ratings);
    assert!(st.movies_rated > 1200 && st.movies_catalogue == 1700);
    assert!(st.ratings_per_user_min >= 20);
    assert!((3.0..4.0).contains(&st.rating_mean));

    // The first franchise (three parts) is among the 50 most-rated movies.
    let top = transforms::keep_top_movies(ds, 50);
    let top = transforms::filter_min_ratings(&top, 20, 1);
    let franchise: Vec<u32> =
        s.truth.franchises[0].iter().map(|&raw| top.movies.dense(raw).unwrap()).collect();
    assert_eq!(franchise.len(), 3);
    let seqs = transforms::user_sequences(&top.ratings, top.users.len());
    let examples = window1_examples(&seqs);
    // Given parts 1 and 3 as context, part 2 is by far the most frequent target...
    let mut exact: HashMap<u32, u32> = HashMap::new();
    // ...and a bag-of-context count model (what a summed-context CBOW approximates) ranks it first.
    let mut bag: HashMap<u32, u32> = HashMap::new();
    for &(l, r, t) in &examples {
        if (l, r) == (franchise[0], franchise[2]) || (l, r) == (franchise[2], franchise[0]) {
            *exact.entry(t).or_default() += 1;
        }
        for c in [l, r] {
            if c == franchise[0] || c == franchise[2] {
                *bag.entry(t).or_default() += 1;
            }
        }
    }
    let best = |m: &HashMap<u32, u32>| m.iter().max_by_key(|(_, c)| **c).map(|(t, c)| (*t, *c)).unwrap();
    let total: u32 = exact.values().sum();
    eprintln!("exact context targets: {exact:?}; bag best {:?}", best(&bag));
    assert_eq!(best(&exact).0, franchise[1]);
    assert!(best(&exact).1 * 2 > total);
    assert_eq!(best(&bag).0, franchise[1]);
}

#[test]
fn a_failed_write_leaves_no_data_set_file_behind() {
    // A title ml-100k cannot hold stops the write at u.item: before, u.data was already
    // written in full and the folder loaded as a data set without its catalogue.
    let mut ds = generate(&Preset::Tiny.config()).dataset;
    let mut movies = ds.catalogue.movies().to_vec();
    let mid = movies.len() / 2;
    movies[mid].full_title = "Pipe | Dream (1999)".into();
    ds.catalogue = reelvec_data::Catalogue::with_extras(movies, Vec::new(), Vec::new());
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("set");
    let err = reelvec_data::write(&ds, reelvec_data::Layout::Ml100k, &out).unwrap_err();
    assert!(err.to_string().contains('|'), "{err}");
    let left: Vec<_> = std::fs::read_dir(&out).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(left.iter().all(|n| n != "u.data" && n != "u.item"), "{left:?}");
    assert!(left.iter().all(|n| !n.to_string_lossy().contains("tmp")), "temporaries left: {left:?}");
    assert!(reelvec_data::load(&out, &reelvec_data::LoadOptions::default()).is_err());
    // A complete write leaves exactly the files it lists, no temporaries.
    let out = dir.path().join("good");
    let good = generate(&Preset::Tiny.config()).dataset;
    let files = reelvec_data::write(&good, reelvec_data::Layout::MlLatest, &out).unwrap();
    assert!(files[0].ends_with("ratings.csv"));
    let mut names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let mut expected: Vec<String> =
        files.iter().map(|f| f.file_name().unwrap().to_string_lossy().into_owned()).collect();
    expected.sort();
    assert_eq!(names, expected);
}
