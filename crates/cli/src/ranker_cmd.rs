//! The ranking models (popularity, itemknn, ease, ials, bpr) on the command line:
//! `reelvec train --model <ranker>` (every rating of the data is one training interaction, or
//! with `--holdout SPLIT` every rating outside that ranking split's test part; the run
//! directory is reelvec-models' `save_ranker`), and `recommend`,
//! `similar` on such runs. The models, their tables and their parameters are reelvec-models';
//! the top-N selection is reelvec-metrics' `top_k_of_row`.

use std::path::Path;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use ndarray::Array2;
use reelvec_data::ranking_split::ranking_split;
use reelvec_engine::Device;
use reelvec_metrics::topn::top_k_of_row;
use reelvec_models::checkpoint;
use reelvec_models::pipelines::{rated_rows, run_info_for};
use reelvec_models::ranking::{
    check_ranker_params, fit_ranker, load_ranker, save_ranker, Interactions, RankerKind,
};
use reelvec_models::RunInfo;

use crate::data_cmd::load_data;
use crate::query::{RecommendArgs, SimilarArgs};
use crate::train::Args;

/// The `--set key=value` overrides as a JSON object of model parameters (`--set factors=64`,
/// `--set negatives=popularity`); values parse as TOML, else as a string.
fn params_of(sets: &[String]) -> Result<serde_json::Value> {
    let mut map = serde_json::Map::new();
    for s in sets {
        let (key, value) = reelvec_models::config::parse_override(s)?;
        if key.len() != 1 {
            bail!("`--set {s}`: ranking model parameters are plain keys (e.g. factors=64)");
        }
        map.insert(key[0].clone(), serde_json::to_value(value)?);
    }
    Ok(serde_json::Value::Object(map))
}

/// Runs `reelvec train --model <ranker>`.
pub fn train(args: &Args, kind: RankerKind) -> Result<()> {
    if args.config.is_some() || args.preset.is_some() {
        bail!("--config and --preset are for the rating and embedding models; give {kind}'s parameters with --set key=value");
    }
    let params = params_of(&args.set)?;
    let full = check_ranker_params(kind, &params)?;
    let seed = args.seed.unwrap_or(0);
    if args.print_config {
        outln!("{}", serde_json::to_string_pretty(&full)?);
        return Ok(());
    }
    // ease and ials have CUDA twins (`auto` picks CUDA for them when a device answers); the other
    // ranking models train on the CPU, and an explicit CUDA device is refused by the model.
    let has_cuda_twin = matches!(kind, RankerKind::Ease | RankerKind::Ials);
    let device = if args.device.trim().eq_ignore_ascii_case("auto") && !has_cuda_twin {
        Device::Cpu
    } else {
        crate::device_arg::resolve_device(&args.device, args.quiet)?
    };
    checkpoint::check_run_dir(&args.out)?;
    let data = crate::train::data_path(args)?;
    let ds = load_data(data, &args.read)?;
    // Every row, or the rows outside the held-out test part of `--holdout`'s split.
    let rows: Vec<u32> = match args.holdout {
        None => (0..ds.ratings.len() as u32).collect(),
        Some(split) => {
            let parts = ranking_split(&ds.ratings, ds.users.len(), split, seed)
                .with_context(|| format!("cannot split {}", data.display()))?;
            let mut rows: Vec<u32> = parts.train.iter().chain(&parts.val).copied().collect();
            rows.sort_unstable();
            rows
        }
    };
    let rated = rated_rows(&ds, &rows)?;
    let train = Interactions::new(&rated, ds.movies.len())?;
    let started = Instant::now();
    let model = fit_ranker(kind, train, &params, seed, device)?;
    let seconds = started.elapsed().as_secs_f64();
    let mut info = run_info_for(&ds, kind.into(), model.params(), seed, Some(data));
    info.metrics = serde_json::json!({ "fit_seconds": seconds });
    if let Some(split) = args.holdout {
        info.metrics["holdout"] = serde_json::json!(split.to_string());
    }
    save_ranker(&args.out, model.as_ref(), &info, &rated)?;
    let held = match args.holdout {
        None => "every rating is an interaction; no split held out".to_string(),
        Some(split) => format!("{} test rows of {split} held out", ds.ratings.len() - rows.len()),
    };
    outln!(
        "{kind}: {} interactions, {} users, {} movies ({held})",
        train.nnz(),
        train.n_users(),
        train.n_items
    );
    outln!("params: {}", model.params());
    outln!("seed {seed}  fit {seconds:.2}s");
    outln!("run written to {}", args.out.display());
    Ok(())
}

/// Prints a ranked list of `(movie, score)`.
fn print_list(info: &RunInfo, list: &[(u32, f32)]) {
    for (rank, &(m, s)) in list.iter().enumerate() {
        outln!("{:>3}  {:>9.4}  {:>7}  {}", rank + 1, s, info.movie_raw_ids[m as usize], info.title(m));
    }
}

/// `reelvec recommend` on a ranking run: a training user's top movies (`--user`), or a new
/// user's from the movies they rated or watched (`--rated` stars are read as interactions).
pub fn recommend(args: &RecommendArgs, dir: &Path) -> Result<()> {
    let (model, info) = load_ranker(dir)?;
    let n = info.movie_raw_ids.len();
    let mut scores = vec![0.0f32; n];
    let (label, seen) = if !args.rated.is_empty() || !args.watched.is_empty() {
        let mut items = Vec::new();
        for r in &args.rated {
            items.push(crate::fold_in::parse_rated(&info, r)?.0);
        }
        for w in &args.watched {
            items.push(crate::movie_arg::resolve_movie(&info, w)?);
        }
        items.sort_unstable();
        items.dedup();
        model.score_new_user(&items, &mut scores)?;
        (format!("a new user with {} movies (not listed)", items.len()), items)
    } else {
        let raw = args.user.context("give --user, --rated or --watched")?;
        let user =
            info.user_dense(raw).with_context(|| format!("user {raw} is not in this run's training data"))?;
        let mut block = Array2::zeros((1, n));
        model.score_block(&[user], block.view_mut())?;
        scores = block.into_raw_vec_and_offset().0;
        let seen = if args.exclude_rated {
            let rated = checkpoint::load_rated(dir)?.with_context(|| {
                format!("run {} has no rated-movie list for --exclude-rated", dir.display())
            })?;
            rated.row(user).to_vec()
        } else {
            Vec::new()
        };
        let note =
            if args.exclude_rated { format!(", excluding {} rated", seen.len()) } else { String::new() };
        (format!("user {raw}{note}"), seen)
    };
    let top = top_k_of_row(&scores, args.k, &seen)?;
    outln!("top {} for {label} ({} model, scores):", args.k, info.model_kind);
    print_list(&info, &top);
    Ok(())
}

/// `reelvec similar` on an itemknn run: the movie's kept neighbour list.
pub fn similar_itemknn(args: &SimilarArgs) -> Result<()> {
    let (model, info) = load_ranker(&args.run)?;
    let movie = crate::movie_arg::resolve_movie(&info, &args.movie)?;
    let Some(knn) = (model.as_ref() as &dyn std::any::Any).downcast_ref::<reelvec_models::ranking::ItemKnn>()
    else {
        bail!("run {} is not an itemknn run", args.run.display());
    };
    let list: Vec<(u32, f32)> = knn.neighbours(movie)?.take(args.k).collect();
    outln!(
        "nearest to {} ({}) by cosine, itemknn neighbour list ({} kept):",
        info.title(movie),
        info.movie_raw_ids[movie as usize],
        list.len()
    );
    print_list(&info, &list);
    Ok(())
}
