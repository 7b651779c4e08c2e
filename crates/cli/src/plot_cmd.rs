//! `reelvec plot`: draws one plot of a run directory as an SVG file through reelvec-report —
//! the train/validation loss curves (`loss`), the cosine-similarity heatmap of the most-rated
//! movies (`heatmap`), or a labelled 2-D map of the best-rated movies (`pca`, `tsne`).
//!
//! Movies are ranked with the run's data (`--data`, else the path recorded in `run.json`): the
//! number of ratings and the mean rating of each movie. Without the data, the heatmap takes the
//! most-rated movies from `rated.safetensors` and the maps rank by learned movie bias; the command
//! says which it used.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use reelvec_data::transforms;
use reelvec_engine::History;
use reelvec_metrics::similarity::cosine_similarity_matrix;
use reelvec_models::checkpoint;
use reelvec_models::pipelines::load_item_embeddings;
use reelvec_models::{ModelKind, RunInfo};
use reelvec_report::plots::{Heatmap, LineChart, HEATMAP_MAX_SIZE};

use crate::data_cmd::ReadOptions;
use crate::pipeline::charts::{map_svg, MapMethod};

/// What to draw.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PlotKind {
    /// Train and validation loss per epoch (with ln(V) for the softmax models).
    Loss,
    /// PCA of the movie vectors, the best-rated movies labelled.
    Pca,
    /// t-SNE of the movie vectors, the best-rated movies labelled.
    Tsne,
    /// Cosine similarity of the most-rated movies' vectors, titles on both axes.
    Heatmap,
}

/// `reelvec plot` arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Run directory written by `reelvec train`.
    #[arg(long, value_name = "DIR")]
    pub run: PathBuf,
    /// Plot kind.
    #[arg(long, value_enum)]
    pub kind: PlotKind,
    /// SVG file to write.
    #[arg(long, value_name = "FILE.svg")]
    pub out: PathBuf,
    /// Movies shown: labelled on a map (default 30), rows of the heatmap (default the whole
    /// vocabulary up to 50; at most 200).
    #[arg(long, value_parser = crate::args::count)]
    pub top: Option<usize>,
    /// Maps: only movies with at least this many ratings (a mean of 5 from one rating is noise).
    #[arg(long, default_value_t = 50)]
    pub min_ratings: usize,
    /// Data set the run was trained on (default: the path recorded in run.json).
    #[arg(long, value_name = "PATH")]
    pub data: Option<PathBuf>,
    /// t-SNE perplexity (lowered to (n - 1) / 3 for small sets).
    #[arg(long, default_value_t = 30.0)]
    pub perplexity: f64,
    /// t-SNE seed.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    #[command(flatten)]
    pub read: ReadOptions,
}

/// Most movies a t-SNE map is computed over (exact t-SNE is quadratic in the points).
const TSNE_MAX_POINTS: usize = 1000;
/// Most rows a heatmap shows by default.
const HEATMAP_DEFAULT_MAX: usize = 50;

pub fn run(args: Args) -> Result<()> {
    reelvec_outfile::check_file(&args.out)?;
    if let (PlotKind::Heatmap, Some(top)) = (args.kind, args.top) {
        // Checked before the n x n similarity matrix is computed.
        if top > HEATMAP_MAX_SIZE {
            bail!("--top {top}: a heatmap shows at most {HEATMAP_MAX_SIZE} movies (beyond that no label is readable)");
        }
    }
    let svg = match args.kind {
        PlotKind::Loss => {
            let info = checkpoint::load_run_info(&args.run)
                .with_context(|| format!("cannot read run {}", args.run.display()))?;
            loss_chart(&info, &run_name(&args.run))?.to_svg()?
        }
        PlotKind::Heatmap => heatmap(&args)?,
        PlotKind::Pca | PlotKind::Tsne => map(&args)?,
    };
    reelvec_outfile::write_file(&args.out, svg.as_bytes())?;
    outln!("wrote {}", args.out.display());
    Ok(())
}

fn run_name(dir: &Path) -> String {
    dir.file_name().map_or_else(|| dir.display().to_string(), |n| n.to_string_lossy().into_owned())
}

/// The loss curves recorded in a run's history: the trainer's [`History`], or (P1's fit) a list
/// of per-epoch objects whose numeric fields become one series each.
fn loss_chart(info: &RunInfo, name: &str) -> Result<LineChart> {
    let history: History = match serde_json::from_value(info.history.clone()) {
        Ok(history) => history,
        Err(err) => {
            return generic_history_chart(info, name)
                .with_context(|| format!("run {name} has no readable training history ({err})"))
        }
    };
    if history.epochs.is_empty() {
        bail!("run {name} recorded no epochs");
    }
    let epochs = &history.epochs;
    let x = |e: &reelvec_engine::EpochStats| e.epoch as f64;
    let mut chart = LineChart::new(format!("{} — loss per epoch ({name})", info.model_kind))
        .with_series("train", epochs.iter().map(|e| (x(e), e.train_loss)).collect());
    let val: Vec<(f64, f64)> = epochs.iter().filter_map(|e| e.val_loss.map(|v| (x(e), v))).collect();
    if !val.is_empty() {
        chart = chart.with_series("validation", val);
    }
    if info.model_kind == ModelKind::ResidualMf {
        // P4's notebook reports the loss of each epoch's last batch.
        chart = chart.with_series("last batch", epochs.iter().map(|e| (x(e), e.last_batch_loss)).collect());
    }
    if matches!(info.model_kind, ModelKind::Cbow | ModelKind::Skipgram) && !info.movie_raw_ids.is_empty() {
        let v = info.movie_raw_ids.len();
        let baseline = (v as f64).ln();
        chart = chart.with_reference(format!("uniform ln(V) = ln({v}) = {baseline:.3}"), baseline);
    }
    let y_label = match info.model_kind {
        ModelKind::Cbow | ModelKind::Skipgram => "cross-entropy (nats)",
        ModelKind::Cooc => "cost",
        ModelKind::SigmoidMf => "MSE (scaled ratings)",
        _ => "MSE",
    };
    Ok(chart.with_axes("epoch", y_label))
}

/// A history stored as `[{"a": 1.0, "b": 2.0}, ...]` (one object per epoch): one series per
/// numeric field, in the order the fields first appear.
fn generic_history_chart(info: &RunInfo, name: &str) -> Result<LineChart> {
    let Some(epochs) = info.history.as_array().filter(|a| !a.is_empty()) else {
        bail!("the history is not a list of epochs");
    };
    let mut fields: Vec<String> = Vec::new();
    for epoch in epochs {
        for (key, value) in epoch.as_object().into_iter().flatten() {
            if value.is_number() && !fields.contains(key) {
                fields.push(key.clone());
            }
        }
    }
    if fields.is_empty() {
        bail!("the epochs carry no numbers");
    }
    let mut chart = LineChart::new(format!("{} — loss per epoch ({name})", info.model_kind));
    for field in fields {
        let points = epochs
            .iter()
            .enumerate()
            .filter_map(|(i, e)| e.get(&field)?.as_f64().map(|v| (i as f64, v)))
            .collect();
        chart = chart.with_series(field, points);
    }
    if info.model_kind == ModelKind::Cooc {
        // P1's history is one entry per full-batch Adam step; its costs fall by orders of
        // magnitude, so the cost axis is logarithmic.
        chart.log_y = Some(true);
        return Ok(chart.with_axes("Adam step", "cost"));
    }
    Ok(chart.with_axes("epoch", "loss"))
}

/// Per-movie number of ratings and mean rating, in the run's dense movie order.
#[derive(Debug, Clone, PartialEq)]
struct MovieStats {
    count: Vec<u32>,
    /// `None` when only counts are known (from `rated.safetensors`).
    mean: Option<Vec<f32>>,
    /// Where the numbers came from, for the messages.
    source: String,
}

/// Counts and means from the run's data set, else counts from `rated.safetensors`, else `None`.
fn movie_stats(args: &Args, info: &RunInfo) -> Result<Option<MovieStats>> {
    let data = match &args.data {
        Some(p) => Some(p.clone()),
        None => info.resolve_data_path(&args.run).ok().flatten(),
    };
    if let Some(path) = data {
        if path.exists() || path.to_string_lossy().starts_with("synth:") {
            let ds = crate::evaluate_cmd::run_data(info, &args.run, Some(&path), &args.read)?;
            // Another data set would label the wrong movies.
            crate::evaluate_cmd::check_run_data(info, &ds)?;
            let run_index: HashMap<u64, u32> =
                info.movie_raw_ids.iter().enumerate().map(|(i, &raw)| (raw, i as u32)).collect();
            // reelvec-data's per-movie counts and means (NaN: unrated), moved to the run's order.
            let n = info.movie_raw_ids.len();
            let stats = transforms::MovieStats::compute(&ds.ratings, None, ds.movies.len());
            let (mut count, mut mean) = (vec![0u32; n], vec![f32::NAN; n]);
            for movie in 0..ds.movies.len() as u32 {
                if let Some(&m) = ds.movies.raw(movie).and_then(|raw| run_index.get(&raw)) {
                    count[m as usize] = stats.count[movie as usize];
                    mean[m as usize] = stats.mean[movie as usize];
                }
            }
            return Ok(Some(MovieStats {
                mean: Some(mean),
                count,
                source: format!("ratings in {}", path.display()),
            }));
        }
        eprintln!("note: data set {} not found; ranking movies without it", path.display());
    }
    let rated = checkpoint::load_rated(&args.run)?;
    Ok(rated.map(|rated| {
        let mut count = vec![0u32; info.movie_raw_ids.len()];
        for user in 0..info.user_raw_ids.len() as u32 {
            for &m in rated.row(user) {
                if let Some(c) = count.get_mut(m as usize) {
                    *c += 1;
                }
            }
        }
        MovieStats { count, mean: None, source: "the run's rated.safetensors".to_owned() }
    }))
}

/// Indices of the `n` highest `score`s among `candidates`, ties broken by more ratings, then by
/// lower index (deterministic).
fn top_by(candidates: &[u32], score: &[f32], count: Option<&[u32]>, n: usize) -> Vec<u32> {
    let mut order = candidates.to_vec();
    let ratings = |m: u32| count.map_or(0, |c| c[m as usize]);
    // NaN (a movie without a mean) ranks last.
    let key = |m: u32| if score[m as usize].is_nan() { f32::NEG_INFINITY } else { score[m as usize] };
    order.sort_by(|&a, &b| key(b).total_cmp(&key(a)).then(ratings(b).cmp(&ratings(a))).then(a.cmp(&b)));
    order.truncate(n);
    order
}

fn heatmap(args: &Args) -> Result<String> {
    let (emb, info) = load_item_embeddings(&args.run)?;
    let v = emb.nrows();
    let n = args.top.unwrap_or(v.min(HEATMAP_DEFAULT_MAX)).min(v);
    let all: Vec<u32> = (0..v as u32).collect();
    let rows = match movie_stats(args, &info)? {
        Some(stats) => {
            let count: Vec<f32> = stats.count.iter().map(|&c| c as f32).collect();
            outln!("heatmap of the {n} most-rated movies (counts from {})", stats.source);
            top_by(&all, &count, None, n)
        }
        None => {
            outln!("heatmap of the first {n} movies of the vocabulary (no ratings to rank by)");
            all[..n].to_vec()
        }
    };
    let similarity = cosine_similarity_matrix(emb.view(), Some(&rows))?;
    let labels = rows.iter().map(|&m| info.title(m)).collect();
    let title =
        format!("{} — cosine similarity of {n} movie vectors ({})", info.model_kind, run_name(&args.run));
    // Colours span the off-diagonal range (Heatmap's default) so that 0.3 vs 0.6 shows.
    Ok(Heatmap::new(title, labels, similarity.iter().copied().collect()).to_svg()?)
}

fn map(args: &Args) -> Result<String> {
    let (params, info) = checkpoint::load_run(&args.run)?;
    let (emb, _) = load_item_embeddings(&args.run)?;
    let v = emb.nrows();
    let n = args.top.unwrap_or(30).min(v);
    let stats = movie_stats(args, &info)?;
    let all: Vec<u32> = (0..v as u32).collect();
    let candidates: Vec<u32> = match &stats {
        Some(s) => {
            all.iter().copied().filter(|&m| s.count[m as usize] as usize >= args.min_ratings).collect()
        }
        None => {
            eprintln!("note: no ratings to count; --min-ratings is not applied");
            all.clone()
        }
    };
    if candidates.is_empty() {
        bail!("no movie has at least {} ratings (lower --min-ratings)", args.min_ratings);
    }
    let bias =
        checkpoint::require_table(&params, "movie_bias", v, Some(1), &args.run).ok().map(|t| t.data.clone());
    let (score, ranked_by): (Vec<f32>, String) = match (&stats, bias) {
        (Some(MovieStats { mean: Some(mean), source, .. }), _) => {
            (mean.clone(), format!("mean rating ({source})"))
        }
        (_, Some(bias)) => (bias, "learned movie bias".to_owned()),
        _ => bail!("cannot rank movies: the run has no movie bias and no data set was found (pass --data)"),
    };
    let labelled = top_by(&candidates, &score, stats.as_ref().map(|s| s.count.as_slice()), n);
    outln!(
        "labelled the {} best movies by {ranked_by} among {} with >= {} ratings",
        labelled.len(),
        candidates.len(),
        args.min_ratings
    );
    let min_note = if stats.is_some() { format!(", >= {} ratings", args.min_ratings) } else { String::new() };

    // Grey context: the other candidates, most-rated first (t-SNE keeps the first that fit).
    let mut context: Vec<u32> = candidates.iter().copied().filter(|m| !labelled.contains(m)).collect();
    if let Some(s) = &stats {
        context.sort_by_key(|&m| std::cmp::Reverse(s.count[m as usize]));
    }
    let method = match args.kind {
        PlotKind::Pca => MapMethod::Pca,
        _ => MapMethod::Tsne { seed: args.seed, perplexity: args.perplexity, max_points: TSNE_MAX_POINTS },
    };
    let title = format!(
        "{} — {} of movie vectors, top {} by {}{min_note} ({})",
        info.model_kind,
        method.name(),
        labelled.len(),
        if ranked_by.starts_with("mean") { "mean rating" } else { "bias" },
        run_name(&args.run)
    );
    let titles: Vec<String> = (0..v as u32).map(|m| info.title(m)).collect();
    let drawn = map_svg(method, &title, emb.view(), &labelled, &context, &titles)?;
    if let Some(note) = drawn.fit_note {
        outln!("{note}");
    }
    Ok(drawn.svg)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use clap::Parser;
    use reelvec_engine::{EpochStats, GradKind, ParamStore, Table};

    #[derive(Debug, Parser)]
    struct TestCli {
        #[command(flatten)]
        args: Args,
    }

    fn parse(argv: &[&str]) -> Args {
        TestCli::try_parse_from(std::iter::once("plot").chain(argv.iter().copied())).unwrap().args
    }

    /// Runs `reelvec plot --run RUN --kind KIND --out <RUN's parent>/plots/KIND.svg EXTRA..` (the
    /// output directory does not exist yet) and returns the SVG.
    fn plot(run: &Path, kind: &str, extra: &[&str]) -> String {
        let out = run.parent().unwrap().join("plots").join(format!("{kind}.svg"));
        let mut argv = vec!["--run", run.to_str().unwrap(), "--kind", kind, "--out", out.to_str().unwrap()];
        argv.extend_from_slice(extra);
        super::run(parse(&argv)).unwrap();
        std::fs::read_to_string(out).unwrap()
    }

    /// A run of `kind` with `movies` movies (raw ids 101..), 3 users, k = 4, and a history.
    fn write_run(dir: &Path, kind: ModelKind, movies: usize, data_path: Option<&Path>) {
        let mut params = ParamStore::new();
        let table = |name: &str, cols: usize| Table {
            name: name.to_owned(),
            rows: movies,
            cols,
            grad_kind: GradKind::SparseRows,
            // Deterministic, spread-out values.
            data: (0..movies * cols)
                .map(|i| ((i * 37 % 101) as f32 / 50.0 - 1.0) * (1.0 + (i % 3) as f32))
                .collect(),
        };
        params.insert(table(reelvec_models::pipelines::item_table_name(kind), 4)).unwrap();
        params.insert(table("movie_bias", 1)).unwrap();
        let mut info = RunInfo::new(kind, serde_json::json!({}), 7);
        info.movie_raw_ids = (101..101 + movies as u64).collect();
        info.user_raw_ids = vec![1, 2, 3];
        info.movie_titles = (0..movies).map(|i| format!("Movie & <Co> {i} (19{:02})", i % 100)).collect();
        info.data_path = data_path.map(|p| p.display().to_string());
        info.dataset_fingerprint = match data_path {
            Some(p) => {
                let options = reelvec_data::LoadOptions { use_cache: false, ..Default::default() };
                checkpoint::fingerprint_ratings(&reelvec_data::load(p, &options).unwrap().ratings)
            }
            None => "0123456789abcdef".into(),
        };
        let history = History {
            epochs: (0..4)
                .map(|e| EpochStats {
                    epoch: e,
                    train_loss: 4.0 - e as f64 * 0.5,
                    last_batch_loss: 4.1 - e as f64 * 0.5,
                    val_loss: Some(4.2 - e as f64 * 0.4),
                    lr: 0.01,
                    seconds: 0.1,
                    train_seconds: 0.09,
                    train_cpu_seconds: Some(0.09),
                })
                .collect(),
            best_epoch: Some(3),
            stopped_early: false,
            ..History::default()
        };
        info.history = serde_json::to_value(&history).unwrap();
        checkpoint::save_run(dir, &params, &info, None).unwrap();
    }

    #[test]
    fn loss_plot_has_both_series_and_the_softmax_baseline() {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("cbow-run");
        write_run(&run, ModelKind::Cbow, 50, None);
        let svg = plot(&run, "loss", &[]);
        assert!(svg.contains(">\ntrain\n</text>"));
        assert!(svg.contains(">\nvalidation\n</text>"));
        assert!(svg.contains("uniform ln(V) = ln(50) = 3.912"));
        assert!(svg.contains("cbow — loss per epoch (cbow-run)"));
    }

    #[test]
    fn loss_plot_reads_a_list_of_per_epoch_objects() {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("cooc");
        write_run(&run, ModelKind::Cooc, 6, None);
        let path = run.join(checkpoint::RUN_FILE);
        let mut info: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        info["history"] =
            serde_json::json!([{"masked": 3.0, "unmasked": 3.5}, {"masked": 2.0, "unmasked": 2.4}]);
        // Hand-edited, so without the manifest of a current run.
        info["format_version"] = 1.into();
        std::fs::remove_file(run.join(checkpoint::MANIFEST_FILE)).unwrap();
        std::fs::write(&path, serde_json::to_string(&info).unwrap()).unwrap();
        let svg = plot(&run, "loss", &[]);
        assert!(svg.contains(">\nmasked\n</text>"));
        assert!(svg.contains(">\nunmasked\n</text>"));
        assert!(svg.contains(">\ncost (log scale)\n</text>"), "P1's cost axis is logarithmic");
        assert!(svg.contains(">\nAdam step\n</text>"), "P1's x axis counts Adam steps, not epochs");
    }

    #[test]
    fn heatmap_ranks_by_ratings_in_the_data() {
        let dir = tempfile::tempdir().unwrap();
        // ml-latest layout: movie 103 has the most ratings, then 101.
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        std::fs::write(
            data.join("ratings.csv"),
            "userId,movieId,rating,timestamp\n1,103,4,1\n2,103,5,2\n3,103,3,3\n1,101,2,4\n2,101,4,5\n3,102,1,6\n",
        )
        .unwrap();
        let run = dir.path().join("run");
        write_run(&run, ModelKind::Mf, 5, Some(&data));
        let svg = plot(&run, "heatmap", &["--top", "2", "--no-cache"]);
        // Rows: dense 2 (raw 103) then dense 0 (raw 101), escaped titles, each on both axes.
        let first = svg.find("Movie &amp; &lt;Co&gt; 2").unwrap();
        let second = svg.find("Movie &amp; &lt;Co&gt; 0").unwrap();
        assert!(first < second);
        assert_eq!(svg.matches("Movie &amp; &lt;Co&gt; 2").count(), 2);
        assert!(!svg.contains("Movie &amp; &lt;Co&gt; 1\n"));
    }

    #[test]
    fn maps_label_the_best_movies_with_enough_ratings() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        // 12 movies: 101..=110 have 2 ratings (mean 4.5 for 101, 1.0 for the others), 111 and 112
        // one rating of 5 (filtered out by --min-ratings 2).
        let mut csv = String::from("userId,movieId,rating,timestamp\n");
        for m in 101..=110 {
            let r = if m == 101 { 4.5 } else { 1.0 };
            csv.push_str(&format!("1,{m},{r},1\n2,{m},{r},2\n"));
        }
        csv.push_str("3,111,5,3\n3,112,5,4\n");
        std::fs::write(data.join("ratings.csv"), csv).unwrap();
        let run = dir.path().join("run");
        write_run(&run, ModelKind::Mf, 12, Some(&data));
        for kind in ["pca", "tsne"] {
            let svg = plot(&run, kind, &["--top", "3", "--min-ratings", "2", "--no-cache"]);
            assert!(svg.contains("Movie &amp; &lt;Co&gt; 0"), "{kind}: best-rated movie labelled");
            assert!(!svg.contains("Movie &amp; &lt;Co&gt; 10"), "{kind}: 1 rating is below --min-ratings");
            assert!(!svg.contains("Movie &amp; &lt;Co&gt; 11"));
            // 3 labelled + 7 grey context points.
            assert_eq!(svg.matches("<circle").count(), 10, "{kind}");
            // Drawn by the pipeline's map function (one implementation): its axis labels.
            let axis = if kind == "pca" { "% of variance)" } else { "(perplexity 3, seed 42)" };
            assert!(svg.contains(axis), "{kind}: the shared map's axis label");
        }
    }

    #[test]
    fn maps_fall_back_to_bias_without_data() {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("run");
        write_run(&run, ModelKind::Mf, 8, None);
        let svg = plot(&run, "pca", &[]);
        assert!(svg.contains("top 8 by bias"));
    }

    #[test]
    fn top_by_breaks_ties_by_count_then_index() {
        let score = [1.0, 3.0, 3.0, 2.0, 3.0];
        let count = [0, 5, 9, 0, 5];
        assert_eq!(top_by(&[0, 1, 2, 3, 4], &score, Some(&count), 4), vec![2, 1, 4, 3]);
        assert_eq!(top_by(&[0, 3], &score, None, 5), vec![3, 0]);
    }
}
