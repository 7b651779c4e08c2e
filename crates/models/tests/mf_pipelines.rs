//! The MF pipelines (P2, P3, P4) end to end on a small hand-built dataset with planted
//! structure, the MF model's save/load round trip, `score_all` against `predict`, and the
//! top-N figures against hand-computed values.

// Tests unwrap freely: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use rand::{Rng, SeedableRng};
use reelvec_data::transforms::MovieStats;
use reelvec_data::{Catalogue, Dataset, IdMap, Movie, Ratings};
use reelvec_models::mf::{Link, MfModel, MfSpec, MfVariant, OutputMap};
use reelvec_models::pipelines::{p2_mf, p3_recommender, p4_residual, run_info_for};
use reelvec_models::{checkpoint, ItemEmbeddings, ModelKind, RatingModel};

/// `n_users` users in two taste groups over `n_movies` movies: group A rates the first half
/// high and the second half low, group B the opposite, plus per-movie quality and noise.
fn planted(n_users: usize, n_movies: usize, per_user: usize, seed: u64) -> Dataset {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut r = Ratings::default();
    for u in 0..n_users {
        let group_a = u % 2 == 0;
        let mut picked = vec![false; n_movies];
        let mut n = 0;
        while n < per_user.min(n_movies) {
            let m = rng.random_range(0..n_movies);
            if picked[m] {
                continue;
            }
            picked[m] = true;
            n += 1;
            let first_half = m < n_movies / 2;
            let base = if first_half == group_a { 4.5 } else { 1.5 };
            let quality = if m % 3 == 0 { 0.5 } else { 0.0 };
            let noise: f32 = rng.random_range(-0.5..0.5);
            let stars = (base + quality + noise).round().clamp(1.0, 5.0);
            r.user.push(u as u32);
            r.movie.push(m as u32);
            r.rating.push(stars);
            r.timestamp.push((u * 1000 + n) as i64);
        }
    }
    let movies: Vec<Movie> = (0..n_movies)
        .map(|m| Movie {
            raw_id: 100 + m as u64,
            title: format!("Film {m}"),
            full_title: format!("Film {m} (19{:02})", 50 + m % 50),
            year: Some(1950 + (m % 50) as u16),
            genres: vec![],
        })
        .collect();
    Dataset {
        ratings: r,
        users: IdMap::from_dense_order((0..n_users as u64).map(|u| u + 1).collect()),
        movies: IdMap::from_dense_order((0..n_movies as u64).map(|m| 100 + m).collect()),
        catalogue: Catalogue::new(movies),
        ..Dataset::default()
    }
}

fn quiet<T>(
    mut train: reelvec_engine::TrainConfig,
    f: impl FnOnce(&mut reelvec_engine::TrainConfig) -> T,
) -> reelvec_engine::TrainConfig {
    train.quiet = true;
    f(&mut train);
    train
}

#[test]
fn p2_learns_planted_structure_and_reports() {
    let ds = planted(60, 20, 12, 1);
    let base = p2_mf::Config::default();
    let cfg = p2_mf::Config {
        k: 4,
        well_known: "Film 0 (1950)".into(),
        train: quiet(base.train.clone(), |t| {
            t.epochs = 40;
            t.batch_size = 32;
            t.lr = 0.05;
        }),
        ..base
    };
    let o = p2_mf::run(&ds, &cfg).unwrap();
    assert_eq!(o.train_rows.len() + o.val_rows.len(), ds.ratings.len());
    assert_eq!(o.train_rows.len(), (ds.ratings.len() as f64 * 0.8) as usize);
    let first = o.history.epochs[0].val_loss.unwrap();
    let best = o.best_val_mse.unwrap();
    assert!(best < 0.5 * first, "val MSE {first} -> {best}");
    // Restore-best: the returned model's validation RMSE is the best epoch's.
    assert!((o.val_rmse.unwrap() - best.sqrt()).abs() < 1e-4, "{:?} vs {}", o.val_rmse, best.sqrt());
    assert_eq!(o.lowest_bias.len(), 5);
    assert!(o.lowest_bias[0].score <= o.lowest_bias[4].score);
    assert!(o.highest_bias[0].score >= o.highest_bias[4].score);
    assert_eq!(o.top_by_bias.len(), 20); // only 20 movies
                                         // The neighbours of Film 0 come mostly from its own half of the catalogue.
    let (q, nn) = o.neighbours.clone().unwrap();
    assert_eq!(q.movie, 0);
    let same_half = nn.iter().filter(|m| m.movie < 10).count();
    assert!(same_half >= 4, "{nn:?}");
    let m = o.metrics_json();
    assert!(m["best_val_rmse"].as_f64().unwrap() > 0.0);
}

#[test]
fn p3_round_trip_and_top_n() {
    let ds = planted(50, 30, 15, 2);
    let base = p3_recommender::Config::default();
    let cfg = p3_recommender::Config {
        k: 4,
        map_min_ratings: 5,
        train: quiet(base.train.clone(), |t| t.epochs = 15),
        ..base.clone()
    };
    let o = p3_recommender::run(&ds, &cfg).unwrap();
    // Top-N is computed only on request.
    assert!(o.top_n.is_none());
    assert!(o.metrics_json()["top_n"].is_null());
    let o = o.with_top_n(&ds, &cfg).unwrap();
    assert!(o.metrics_json()["top_n"].is_object());
    assert_eq!(o.reload_max_abs_diff, 0.0);
    assert_eq!(o.rating_range, (1.0, 5.0));
    let h = &o.history.epochs;
    assert!(h.last().unwrap().train_loss < h[0].train_loss);
    assert!(h.last().unwrap().val_loss.unwrap() < h[0].val_loss.unwrap());
    // val MSE on the [0, 1] scale times span² is the MSE in stars.
    let span2 = 16.0;
    assert!((o.val_mse_scaled.unwrap() * span2 - o.val_rmse.unwrap().powi(2)).abs() < 1e-3);
    let t = &o.top_n.as_ref().unwrap().figures;
    assert!(t.diversity >= 0.0 && t.diversity <= 2.0);
    assert!(t.catalogue_coverage > 0.0 && t.catalogue_coverage <= 1.0);
    assert!(t.mean_rating_novelty >= 1.0 && t.mean_rating_novelty <= 5.0);
    // Predictions are in stars.
    for m in 0..30 {
        let p = o.model.predict(0, m);
        assert!((1.0..=5.0).contains(&p), "{p}");
    }
    // Excluding rated movies changes the lists and never lists a rated movie.
    let excl = p3_recommender::Config { exclude_rated: true, ..cfg };
    let o2 = p3_recommender::run(&ds, &excl).unwrap().with_top_n(&ds, &excl).unwrap();
    let rated: Vec<u32> = o2
        .train_rows
        .iter()
        .filter(|&&r| ds.ratings.user[r as usize] == 0)
        .map(|&r| ds.ratings.movie[r as usize])
        .collect();
    let (_, list) = o2.top_n.unwrap().example_user.unwrap();
    assert_eq!(list.len(), 10);
    assert!(list.iter().all(|m| !rated.contains(&m.movie)), "{list:?} vs {rated:?}");
}

#[test]
fn p4_residual_targets_and_last_batch_loss() {
    let ds = planted(40, 20, 10, 3);
    let base = p4_residual::Config::default();
    let cfg = p4_residual::Config { train: quiet(base.train.clone(), |t| t.epochs = 30), ..base };
    let o = p4_residual::run(&ds, &cfg).unwrap();
    // Means by hand: the global mean of every rating.
    let g = ds.ratings.rating.iter().map(|&r| f64::from(r)).sum::<f64>() / ds.ratings.len() as f64;
    assert!((f64::from(o.means.global) - g).abs() < 1e-5);
    // User 0's residual mean.
    let u0: Vec<f64> = (0..ds.ratings.len())
        .filter(|&r| ds.ratings.user[r] == 0)
        .map(|r| f64::from(ds.ratings.rating[r]) - g)
        .collect();
    assert!((f64::from(o.means.user[0]) - u0.iter().sum::<f64>() / u0.len() as f64).abs() < 1e-5);
    // Not shuffled: the last batch is the file's last rows; the loss falls.
    let l = o.last_batch_losses();
    assert_eq!(l.len(), 30);
    assert!(l[29] < l[0], "{l:?}");
    assert_eq!(o.train_rows, (0..ds.ratings.len() as u32).collect::<Vec<_>>());
    assert!(o.val_rows.is_empty());
    // Prediction = g + user mean + movie mean + p.q.
    let (u, m) = (ds.ratings.user[0], ds.ratings.movie[0]);
    let dot: f32 = o.model.user_embeddings().row(u as usize).dot(&o.model.item_embeddings().row(m as usize));
    // Prediction = g + user mean + movie mean + p.q, clipped to the data's rating scale.
    let [lo, hi] = reelvec_models::pipelines::rating_scale(&ds).unwrap();
    let want = (o.means.global + o.means.user[u as usize] + o.means.movie[m as usize] + dot).clamp(lo, hi);
    assert!((o.model.predict(u, m) - want).abs() < 1e-5);
}

#[test]
fn mf_model_save_load_and_score_all() {
    let ds = planted(10, 8, 5, 4);
    let dir = tempfile::tempdir().unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    let init = reelvec_engine::Init::Normal { mean: 0.0, std: 0.5 };
    for (kind, biases, link, output) in [
        (ModelKind::Mf, true, Link::SigmoidRange { lo: 0.0, hi: 5.5 }, OutputMap::Stars),
        (
            ModelKind::SigmoidMf,
            true,
            Link::SigmoidRange { lo: 0.0, hi: 1.0 },
            OutputMap::MinMax { min: 0.5, max: 5.0 },
        ),
        (
            ModelKind::ResidualMf,
            false,
            Link::Identity,
            OutputMap::Residual {
                global: 3.5,
                user: (0..10).map(|u| u as f32 * 0.1).collect(),
                movie: vec![-0.2; 8],
                scale: reelvec_models::pipelines::rating_scale(&ds),
            },
        ),
    ] {
        let spec = MfSpec { n_users: 10, n_movies: 8, k: 3, biases, link };
        let params = spec.init_params(init, init, &mut rng).unwrap();
        let model = MfModel::new(MfVariant::from_kind(kind).unwrap(), spec, params, output).unwrap();
        let info = run_info_for(&ds, kind, serde_json::json!({}), 5, None);
        let run = dir.path().join(kind.as_str());
        model.save(&run, &info, None).unwrap();
        let (back, info2) = MfModel::load(&run).unwrap();
        assert_eq!(info2.model_kind, kind);
        let mut scores = vec![0.0; 8];
        for u in 0..10 {
            back.score_all(u, &mut scores);
            for m in 0..8 {
                assert_eq!(back.predict(u, m), model.predict(u, m));
                assert!((scores[m as usize] - model.predict(u, m)).abs() < 1e-5);
            }
        }
        // A checkpoint whose run.json claims more users than the tables hold is refused.
        let mut bad = info2.clone();
        bad.user_raw_ids.push(999);
        let params = checkpoint::load_run(&run).unwrap().0;
        let err = MfModel::from_run(&params, &bad, &run).unwrap_err().to_string();
        assert!(err.contains("user_factors") && err.contains("expected [11"), "{err}");
    }
}

#[test]
fn residual_predictions_are_clipped_to_the_rating_scale() {
    // P4's stars are an unbounded sum (it predicted up to 8.7 stars): held to the data's scale
    // where outputs become stars, and only there.
    let map = |scale| OutputMap::Residual { global: 4.5, user: vec![1.0, -5.0], movie: vec![1.0], scale };
    let clipped = map(Some([0.5, 5.0]));
    assert_eq!(clipped.stars(0.5, 0, 0), 5.0);
    assert_eq!(clipped.stars(0.0, 1, 0), 0.5);
    assert_eq!(clipped.stars(-2.0, 0, 0), 4.5);
    // Runs saved without a scale keep the raw sum.
    assert_eq!(map(None).stars(0.5, 0, 0), 7.0);
    // A trained P4 never predicts outside the data's scale.
    let ds = planted(40, 20, 12, 9);
    let base = p4_residual::Config::default();
    let cfg = p4_residual::Config { train: quiet(base.train.clone(), |t| t.epochs = 2), ..base };
    let o = p4_residual::run(&ds, &cfg).unwrap();
    let [lo, hi] = reelvec_models::pipelines::rating_scale(&ds).unwrap();
    for u in 0..40 {
        for m in 0..20 {
            let p = o.model.predict(u, m);
            assert!((lo..=hi).contains(&p), "{p}");
        }
    }
}

#[test]
fn p3_top_n_figures_are_the_metrics_crate_figures() {
    // One definition: the pipeline's figures are reelvec-metrics' BeyondAccuracy over the
    // protocol's lists (`protocol::top_lists`, the notebook's lists: nothing excluded) with
    // training counts and means. (P3 had its own top-N and a self-information over users.)
    let ds = planted(40, 24, 12, 5);
    let base = p3_recommender::Config::default();
    let cfg = p3_recommender::Config { k: 4, train: quiet(base.train.clone(), |t| t.epochs = 3), ..base };
    let o = p3_recommender::run(&ds, &cfg).unwrap().with_top_n(&ds, &cfg).unwrap();
    let stats = MovieStats::compute(&ds.ratings, Some(&o.train_rows), ds.movies.len());
    let users: Vec<u32> = (0..ds.users.len() as u32).collect();
    let lists =
        reelvec_metrics::protocol::top_lists(&o.model.factor_scores().unwrap(), &users, None, cfg.top_n)
            .unwrap();
    let expect = reelvec_metrics::BeyondAccuracy::compute(
        lists.view(),
        o.model.item_embeddings(),
        &stats.mean,
        &stats.counts_u64(),
    )
    .unwrap();
    let top = o.top_n.as_ref().unwrap();
    assert_eq!(top.lists, lists);
    let figures = top.figures;
    assert_eq!(figures, expect);
    // Self-information by hand from the lists: -log2(max(count, 1) / train rows) per slot.
    let n = o.train_rows.len() as f64;
    let slots: Vec<u32> = lists.iter().copied().filter(|&m| m != reelvec_metrics::topn::NO_ITEM).collect();
    let by_hand = slots.iter().map(|&m| -(f64::from(stats.count[m as usize].max(1)) / n).log2()).sum::<f64>()
        / slots.len() as f64;
    assert!((figures.self_information_novelty - by_hand).abs() < 1e-9);
}

#[test]
fn p3_and_evaluate_rank_with_the_protocols_lists() {
    // P3 (training movies excluded, the protocol's exclusion) and `reelvec evaluate` of the same
    // run give the lists and figures `held_out_protocol` gives for the same model and split.
    use reelvec_models::evaluate::{evaluate_run, held_out_protocol, Figures};
    use reelvec_models::pipelines::rated_rows;
    use reelvec_models::train;
    let ds = planted(40, 24, 12, 5);
    let base = p3_recommender::Config::default();
    let cfg = p3_recommender::Config {
        k: 4,
        exclude_rated: true,
        train: quiet(base.train.clone(), |t| t.epochs = 3),
        ..base
    };
    let o = p3_recommender::run(&ds, &cfg).unwrap().with_top_n(&ds, &cfg).unwrap();
    let rated = rated_rows(&ds, &o.train_rows).unwrap();
    let relevant = rated_rows(&ds, &o.val_rows).unwrap();
    let eval = held_out_protocol(&o.model.factor_scores().unwrap(), &ds, &rated, &relevant).unwrap();
    let top = o.top_n.as_ref().unwrap();
    assert!(!eval.users.is_empty());
    for (r, &u) in eval.users.iter().enumerate() {
        assert_eq!(top.lists.row(u as usize), eval.outcome.lists.slice(ndarray::s![r, ..10]), "user {u}");
    }
    // The same run through `train` + `evaluate`.
    let run = train::train(&ds, &train::Resolved::SigmoidMf(cfg.clone()), reelvec_engine::Device::Cpu, None)
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let run_dir = dir.path().join("p3");
    run.save(&run_dir).unwrap();
    let (_, info) = checkpoint::load_run(&run_dir).unwrap();
    let mut f = Figures::default();
    evaluate_run(&run_dir, &info, &ds, 10, reelvec_engine::Device::Cpu, &mut f).unwrap();
    for (name, x) in eval.outcome.metrics.named() {
        match f.values[name].as_f64() {
            Some(got) => assert_eq!(got, x, "{name}"),
            None => assert!(x.is_nan(), "{name}"),
        }
    }
    let num = |name: &str| f.values[name].as_f64().unwrap();
    assert_eq!(num("catalogue coverage"), top.figures.catalogue_coverage);
    assert_eq!(num("Gini of recommendation counts"), top.figures.gini);
    assert_eq!(num("novelty (self-information, bits)"), top.figures.self_information_novelty);
    assert_eq!(num("top-10 diversity"), top.figures.diversity);
}

#[test]
fn a_saved_runs_split_is_rebuilt_by_the_models_crate() {
    // evaluate rebuilt splits itself; now reelvec-models does, from the run's stored config.
    let ds = planted(30, 16, 10, 11);
    let base = p3_recommender::Config::default();
    let cfg = p3_recommender::Config { k: 2, train: quiet(base.train.clone(), |t| t.epochs = 1), ..base };
    let o = p3_recommender::run(&ds, &cfg).unwrap();
    let info = run_info_for(&ds, ModelKind::SigmoidMf, serde_json::to_value(&cfg).unwrap(), cfg.seed, None);
    let (train, val) = reelvec_models::pipelines::run_rating_split(&info, ds.ratings.len()).unwrap();
    let mut want = o.train_rows.clone();
    want.sort_unstable();
    assert_eq!((train, val), (want, o.val_rows.clone()));
    // A fraction of 1 trains on every row in file order (P4's protocol), for every kind.
    assert_eq!(reelvec_models::pipelines::rating_split(4, 1.0, 3), (vec![0, 1, 2, 3], vec![]));
    let cooc = run_info_for(&ds, ModelKind::Cooc, serde_json::json!({}), 0, None);
    assert!(reelvec_models::pipelines::run_rating_split(&cooc, 10).is_err());
}
