//! The ranking models (popularity, itemknn, ease, ials, bpr, warp) on the command line:
//! `reelvec train --model <ranker>` (every rating of the data is one training interaction, or
//! with `--holdout SPLIT` every rating outside that ranking split's test part; reelvec-models'
//! `train::train_ranker`, saved as `save_ranker` would), and `recommend`,
//! `similar` on such runs. The models, their tables and their parameters are reelvec-models';
//! the lists are reelvec-models' `top_for_user`, `top_for_new_user` and `similar_items`.

use std::path::Path;

use anyhow::{bail, Context, Result};
use reelvec_engine::Device;
use reelvec_models::checkpoint;
use reelvec_models::ranking::{
    check_ranker_params, load_ranker, params_from_overrides, similar_items, top_for_new_user, top_for_user,
    RankerKind,
};
use reelvec_models::train::train_ranker;
use reelvec_models::RunInfo;

use crate::data_cmd::load_data;
use crate::query::{RecommendArgs, SimilarArgs};
use crate::train::Args;

/// Runs `reelvec train --model <ranker>`.
pub fn train(args: &Args, kind: RankerKind) -> Result<()> {
    if args.config.is_some() || args.preset.is_some() {
        bail!("--config and --preset are for the rating and embedding models; give {kind}'s parameters with --set key=value");
    }
    let params = params_from_overrides(&args.set)?;
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
    let (model, run) = train_ranker(&ds, kind, &params, seed, device, Some(data), args.holdout)?;
    run.save(&args.out)?;
    let rated = run.rated.as_ref().context("a ranking run holds its interactions")?;
    let held = match args.holdout {
        None => "every rating is an interaction; no split held out".to_string(),
        Some(split) => format!("{} test rows of {split} held out", ds.ratings.len() - rated.indices().len()),
    };
    outln!(
        "{kind}: {} interactions, {} users, {} movies ({held})",
        rated.indices().len(),
        rated.n_users(),
        model.n_items()
    );
    outln!("params: {}", model.params());
    let seconds = run.info.metrics["fit_seconds"].as_f64().unwrap_or_default();
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
    let (label, top) = if !args.rated.is_empty() || !args.watched.is_empty() {
        let mut items = Vec::new();
        for r in &args.rated {
            items.push(crate::fold_in::parse_rated(&info, r)?.0);
        }
        for w in &args.watched {
            items.push(crate::movie_arg::resolve_movie(&info, w)?);
        }
        let top = top_for_new_user(model.as_ref(), &items, args.k)?;
        items.sort_unstable();
        items.dedup();
        (format!("a new user with {} movies (not listed)", items.len()), top)
    } else {
        let raw = args.user.context("give --user, --rated or --watched")?;
        let user =
            info.user_dense(raw).with_context(|| format!("user {raw} is not in this run's training data"))?;
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
        (format!("user {raw}{note}"), top_for_user(model.as_ref(), user, args.k, &seen)?)
    };
    outln!("top {} for {label} ({} model, scores):", args.k, info.model_kind);
    print_list(&info, &top);
    Ok(())
}

/// `reelvec similar` on an itemknn run: the movie's kept neighbour list.
pub fn similar_itemknn(args: &SimilarArgs) -> Result<()> {
    let (model, info) = load_ranker(&args.run)?;
    let movie = crate::movie_arg::resolve_movie(&info, &args.movie)?;
    if model.kind() != RankerKind::ItemKnn {
        bail!("run {} is not an itemknn run", args.run.display());
    }
    let list = similar_items(model.as_ref(), movie, args.k)?;
    outln!(
        "nearest to {} ({}) by cosine, itemknn neighbour list ({} kept):",
        info.title(movie),
        info.movie_raw_ids[movie as usize],
        list.len()
    );
    print_list(&info, &list);
    Ok(())
}
