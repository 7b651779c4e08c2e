//! item2vec with item side features (issue 11): the feature rows' gradients by finite
//! differences through the engine's `gradcheck` (CBOW / skip-gram x full softmax / negative
//! sampling), the fold (id rows + feature mean; features alone for unseen movies), and a
//! planted test: movies of one genre watched together, cold movies of that genre land next to
//! it from their genre feature alone.

#![allow(clippy::unwrap_used)]

use rand::{Rng, SeedableRng};
use reelvec_data::features::ItemFeatures;
use reelvec_engine::gradcheck::{check_with, GradCheckOptions};
use reelvec_engine::{
    AdamConfig, BatchLoss, Grads, Objective, OptimizerConfig, ParamStore, TrainConfig, Trainer,
};
use reelvec_models::item2vec::{
    features, Architecture, Examples, FeatureKinds, FeatureObjective, FeatureSide, Item2Vec, Item2VecConfig,
    Item2VecObjective, Item2VecTables, OutputLoss,
};
use reelvec_models::traits::ItemEmbeddings;

/// The objective with the negative draw fixed, so the loss is a function of the parameters.
struct FixedDraw<'a>(&'a FeatureObjective);

impl Objective for FixedDraw<'_> {
    fn train_units(&self) -> usize {
        self.0.train_units()
    }
    fn loss_and_grad(&self, params: &ParamStore, units: &[u32], grads: &mut Grads) -> BatchLoss {
        let (s, c) = self.0.batch_loss_and_grad(params, units, 3, Some(grads));
        BatchLoss::new(s, c)
    }
    fn validation_loss(&self, _: &ParamStore) -> Option<BatchLoss> {
        None
    }
}

/// Features: movie i has feature i % 3, and every even movie feature 3 too; movie 5 none.
fn table(vocab: usize) -> ItemFeatures {
    let lists: Vec<Vec<u32>> = (0..vocab as u32)
        .map(|i| match i {
            5 => vec![],
            _ if i % 2 == 0 => vec![i % 3, 3],
            _ => vec![i % 3],
        })
        .collect();
    ItemFeatures::from_lists((0..4).map(|f| format!("f{f}")).collect(), &lists).unwrap()
}

fn featured(config: Item2VecConfig, vocab: usize, sequences: &[Vec<u32>]) -> (ParamStore, FeatureObjective) {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let mut params = ParamStore::new();
    let tables = Item2VecTables::register(&mut params, vocab, &config, &mut rng).unwrap();
    let side = FeatureSide::register(&mut params, &tables, table(vocab)).unwrap();
    // Feature rows away from their zero start, so the composition is not trivial.
    for t in params.tables_mut() {
        t.data.iter_mut().for_each(|x| *x = 0.7 * *x + rng.random_range(-0.5..0.5));
    }
    let train = Examples::for_config(sequences, &config);
    let inner = Item2VecObjective::new(config, tables, vocab, train, None, 7).unwrap();
    let obj = FeatureObjective::new(inner, side, &params).unwrap();
    (params, obj)
}

#[test]
fn feature_rows_gradients_match_finite_differences() {
    let sequences = vec![vec![0, 1, 2, 3, 4, 5, 6], vec![7, 2, 5, 8, 1], vec![3, 6, 0, 8]];
    for arch in [Architecture::Cbow, Architecture::Skipgram] {
        for loss in [OutputLoss::FullSoftmax, OutputLoss::NegativeSampling] {
            let config = Item2VecConfig {
                architecture: arch,
                loss,
                dim: 5,
                window: 2,
                negatives: 3,
                drop_ends: false,
                ..Default::default()
            };
            let (params, obj) = featured(config, 9, &sequences);
            let units: Vec<u32> = (0..sequences.len() as u32).collect();
            let opts = GradCheckOptions { eps: 1e-2, tol: 2e-2, max_per_table: 1000, ..Default::default() };
            let report = check_with(&FixedDraw(&obj), &params, &units, &opts);
            assert!(report.passed(), "{arch:?} {loss:?}: {report}");
            // Every table, the feature tables included, was checked.
            assert!(report.checked >= params.num_params().min(5 * 1000), "{report}");
            let mut grads = Grads::zeros_like(&params);
            obj.batch_loss_and_grad(&params, &units, 3, Some(&mut grads));
            for name in [features::FEATURE_EMBEDDING, features::FEATURE_OUT_WEIGHT] {
                let g = grads.get(params.id(name).unwrap());
                assert!(g.data.iter().any(|&x| x != 0.0), "{name} gets a gradient");
            }
        }
    }
}

#[test]
fn fold_is_id_row_plus_feature_mean_and_features_alone_when_unseen() {
    let config = Item2VecConfig { dim: 4, ..Default::default() };
    let (params, _) = featured(config, 9, &[vec![0, 1, 2]]);
    let mut p2 = ParamStore::new();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let tables = Item2VecTables::register(&mut p2, 9, &config, &mut rng).unwrap();
    let side = FeatureSide::register(&mut p2, &tables, table(9)).unwrap();
    p2.copy_values_from(&params).unwrap();
    let mut seen = vec![true; 9];
    seen[4] = false;
    let folded = features::fold(&p2, &tables, &side, &seen).unwrap();
    let (e, a) = (p2.get(tables.embedding), p2.get(p2.id(features::FEATURE_EMBEDDING).unwrap()));
    let fe = folded.get(folded.id("embedding").unwrap());
    for c in 0..4 {
        // Movie 2: features 2 and 3; movie 5: none; movie 4 (unseen): features 1 and 3 alone.
        let want2 = e.row(2)[c] + 0.5 * (a.row(2)[c] + a.row(3)[c]);
        assert!((fe.row(2)[c] - want2).abs() < 1e-6);
        assert_eq!(fe.row(5)[c], e.row(5)[c]);
        let want4 = 0.5 * (a.row(1)[c] + a.row(3)[c]);
        assert!((fe.row(4)[c] - want4).abs() < 1e-6);
    }
    assert!(folded.id(reelvec_models::mf::ITEM_FEATURE_CSR).is_some());
}

#[test]
fn planted_genres_put_cold_movies_next_to_their_genre() {
    // 40 movies, genre A = 0..20, genre B = 20..40; each user watches movies of one genre.
    // Movies 0, 1, 20, 21 never appear in training (cold).
    let vocab = 40usize;
    let genre = |m: u32| u32::from(m >= 20);
    let cold = |m: u32| m % 20 < 2;
    let lists: Vec<Vec<u32>> = (0..vocab as u32).map(|m| vec![genre(m)]).collect();
    let features = ItemFeatures::from_lists(vec!["genre:A".into(), "genre:B".into()], &lists).unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    let sequences: Vec<Vec<u32>> = (0..200)
        .map(|u| {
            let base = 20 * (u % 2);
            (0..12).map(|_| base + rng.random_range(2..20)).collect()
        })
        .collect();
    let config = Item2VecConfig {
        dim: 8,
        window: 2,
        item_features: FeatureKinds::parse(&["genres"]).unwrap(),
        ..Default::default()
    };
    let mut params = ParamStore::new();
    let tables = Item2VecTables::register(&mut params, vocab, &config, &mut rng).unwrap();
    let side = FeatureSide::register(&mut params, &tables, features).unwrap();
    let train = Examples::for_config(&sequences, &config);
    let inner = Item2VecObjective::new(config, tables, vocab, train, None, 1).unwrap();
    let obj = FeatureObjective::new(inner, side.clone(), &params).unwrap();
    let train_config = TrainConfig {
        epochs: 15,
        batch_size: 32,
        lr: 0.05,
        optimizer: OptimizerConfig::Adam(AdamConfig::default()),
        quiet: true,
        ..Default::default()
    };
    Trainer::new(train_config).fit(&obj, &mut params).unwrap();
    let seen: Vec<bool> = (0..vocab as u32).map(|m| !cold(m)).collect();
    let model = Item2Vec::new(config, features::fold(&params, &tables, &side, &seen).unwrap()).unwrap();
    // Without the feature the cold movies' vectors would be their random initial rows: about
    // half of their neighbours would share their genre.
    let mut total = 0;
    for m in (0..vocab as u32).filter(|&m| cold(m)) {
        let near: Vec<u32> = model
            .nearest_by_cosine(m, 12)
            .unwrap()
            .into_iter()
            .map(|(n, _)| n)
            .filter(|&n| !cold(n))
            .collect();
        let same = near.iter().take(10).filter(|&&n| genre(n) == genre(m)).count();
        assert!(same >= 8, "cold movie {m}: neighbours {near:?}");
        total += same;
    }
    assert!(total >= 36, "{total} of 40 cold-movie neighbours share the genre");
}

#[test]
fn bad_feature_names_and_pair_sgd_with_features_are_config_errors() {
    let err = FeatureKinds::parse(&["genres", "colour"]).unwrap_err().to_string();
    assert!(err.contains("model.item_features"), "{err}");
    assert!(FeatureKinds::parse(&["genres", "genres"]).is_err());
    let config = Item2VecConfig {
        loss: OutputLoss::NegativeSampling,
        trainer: reelvec_models::item2vec::Item2VecTrainer::PairSgd,
        item_features: FeatureKinds::parse(&["decade"]).unwrap(),
        ..Default::default()
    };
    let err = config.validate("model").unwrap_err().to_string();
    assert!(err.contains("model.item_features") && err.contains("pair_sgd"), "{err}");
}

#[test]
fn training_with_features_is_bitwise_identical_for_any_thread_count() {
    // Enough examples per batch for several lanes (128 examples each).
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    let sequences: Vec<Vec<u32>> =
        (0..300).map(|_| (0..10).map(|_| rng.random_range(0..9)).collect()).collect();
    for loss in [OutputLoss::FullSoftmax, OutputLoss::NegativeSampling] {
        let config = Item2VecConfig { loss, dim: 6, window: 2, ..Default::default() };
        let fit = |threads: usize| {
            let (mut params, obj) = featured(config, 9, &sequences);
            let tc = TrainConfig { epochs: 2, batch_size: 200, quiet: true, ..Default::default() };
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap()
                .install(|| Trainer::new(tc).fit(&obj, &mut params).unwrap());
            params
        };
        let one = fit(1);
        let three = fit(3);
        for (a, b) in one.tables().iter().zip(three.tables()) {
            let (a, b): (Vec<u32>, Vec<u32>) =
                (a.data.iter().map(|x| x.to_bits()).collect(), b.data.iter().map(|x| x.to_bits()).collect());
            assert_eq!(a, b, "{loss:?}");
        }
    }
}
