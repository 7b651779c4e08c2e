//! One function per pipeline of `reelvec pipeline`: each resolves its protocol config (epochs
//! scaled), trains through reelvec-models, prints its time, figures and examples with titles,
//! saves its run directory, and returns its report [`Section`] with the plots and a table of our
//! figures beside the notebook's.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};
use ndarray::ArrayView2;
use reelvec_data::{transforms, Dataset};
use reelvec_engine::History;
use reelvec_metrics::beyond::{rarely_rated, rarely_rated_warning};
use reelvec_models::config;
use reelvec_models::mf::MfModel;
use reelvec_models::pipelines::{self, p0_cbow, p1_cooc, p2_mf, p3_recommender, p4_residual, MovieScore};
use reelvec_models::traits::ItemEmbeddings;
use reelvec_models::ModelKind;
use reelvec_report::Section;

use super::charts::{self, LossSeries, MapMethod};
use super::{example, figure, run_dir, shown, StageContext, StageResult, SummaryRow};

fn f4(x: f64) -> String {
    format!("{x:.4}")
}

fn opt4(x: Option<f64>) -> String {
    x.map_or_else(|| "-".to_string(), f4)
}

fn titles_of(ds: &Dataset) -> Vec<String> {
    (0..ds.movies.len() as u32).map(|m| ds.title(m)).collect()
}

/// A list of scored movies as one example line per movie.
fn movie_lines(header: &str, list: &[MovieScore]) -> String {
    let mut text = format!("{header}:");
    for m in list {
        text.push_str(&format!("\n  {:>8.4}  {}", m.score, m.title));
    }
    text
}

/// The default query of the examples.
const DEFAULT_QUERY: &str = "Star Wars (1977)";

/// `title` when the data set has it, else the most-rated movie with a line saying so
/// ("TITLE is not in this data set; showing FALLBACK instead"). `None` for a data set without
/// movies.
fn query_or_fallback(ds: &Dataset, title: &str) -> Option<(u32, Option<String>)> {
    if let Some(m) = pipelines::find_title(ds, title) {
        return Some((m, None));
    }
    let fallback = *transforms::top_movies(ds, 1).first()?;
    let note = format!(
        "{title} is not in this data set; showing {} (the most-rated movie) instead",
        ds.title(fallback)
    );
    Some((fallback, Some(note)))
}

/// The configured queries missing from the data set, one line each (a pipeline skips them).
fn missing_queries(ds: &Dataset, titles: &[String]) -> Vec<String> {
    titles
        .iter()
        .filter(|t| pipelines::find_title(ds, t).is_none())
        .map(|t| format!("{t} is not in this data set; its example is left out"))
        .collect()
}

fn neighbours_example(ds: &Dataset, model: &impl ItemEmbeddings, n: usize) -> Option<String> {
    let (q, note) = query_or_fallback(ds, DEFAULT_QUERY)?;
    let mut text = note.map(|n| format!("{n}\n")).unwrap_or_default();
    match model.nearest_by_cosine(q, n) {
        Ok(nn) => text.push_str(&movie_lines(
            &format!("nearest to {} by cosine", ds.title(q)),
            &MovieScore::list(ds, &nn),
        )),
        Err(_) => text.push_str(&format!(
            "{} has no vector (its embedding is (near) zero): no neighbours",
            ds.title(q)
        )),
    }
    Some(text)
}

/// The MovieLens release a notebook measured its figures on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NotebookData {
    Ml100k,
    MlLatestSmall,
    Ml25m,
}

impl NotebookData {
    fn name(self) -> &'static str {
        match self {
            NotebookData::Ml100k => "ml-100k",
            NotebookData::MlLatestSmall => "ml-latest-small",
            NotebookData::Ml25m => "ml-25m",
        }
    }

    /// Ratings and users of the release (the published counts).
    fn counts(self) -> (usize, usize) {
        match self {
            NotebookData::Ml100k => (100_000, 943),
            NotebookData::MlLatestSmall => (100_836, 610),
            NotebookData::Ml25m => (25_000_095, 162_541),
        }
    }

    /// Whether `ds` is this release: real data (not synthetic) with its rating and user counts.
    fn matches(self, ds: &Dataset, synthetic: bool) -> bool {
        !synthetic && (ds.ratings.len(), ds.users.len()) == self.counts()
    }
}

/// Labels a section's notebook figures with the data set they were measured on, and says once
/// whether the run's data is that data set (a like-for-like comparison) or not (context only).
struct NotebookLabel {
    data: NotebookData,
    same: bool,
}

impl NotebookLabel {
    fn new(ctx: &StageContext<'_>, section: &mut Section, data: NotebookData) -> Self {
        let same = data.matches(&ctx.data.dataset, ctx.is_synthetic());
        let note = if same {
            format!("The notebook's figures were measured on {}, this run's data set: a like-for-like comparison.", data.name())
        } else {
            format!(
                "The notebook's figures were measured on {}; this run's data ({}) is another data set, so they are context, not a like-for-like comparison.",
                data.name(),
                ctx.data.summary
            )
        };
        outln!("  note: {note}");
        section.push_note(note);
        Self { data, same }
    }

    /// `figure (on ml-100k)`, or `figure (on ml-100k; other data)`.
    fn of(&self, figure: &str) -> String {
        if self.same {
            format!("{figure} (on {})", self.data.name())
        } else {
            format!("{figure} (on {}; other data)", self.data.name())
        }
    }
}

/// The warning under `list` when reelvec-metrics' [`rarely_rated`] flags it.
fn few_ratings_warning(list: &[MovieScore], train_counts: &[u32]) -> Option<String> {
    rarely_rated(list.iter().map(|m| m.movie), train_counts).map(|few| rarely_rated_warning(few, list.len()))
}

fn header(ctx: &StageContext<'_>, id: &str, title: &str) -> Section {
    outln!("\n== {title}");
    let mut section = Section::new(id, title);
    if ctx.is_synthetic() {
        section.push_note("Trained on synthetic MovieLens-shaped data (no --data given); the notebook's figures come from real MovieLens, so they are context, not a target.");
    }
    section
}

/// Every scalar of a config, flattened as `a.b = value` rows.
fn push_config<C: serde::Serialize>(section: &mut Section, cfg: &C) {
    fn walk(prefix: &str, v: &serde_json::Value, out: &mut Vec<(String, String)>) {
        match v {
            serde_json::Value::Object(map) => {
                for (k, v) in map {
                    let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                    walk(&key, v, out);
                }
            }
            serde_json::Value::Array(items) if items.iter().any(|i| i.is_object() || i.is_array()) => {
                out.push((prefix.to_string(), format!("{} entries", items.len())));
            }
            // Configs hold f32s: print their shortest f32 form (0.01, not 0.009999999776).
            serde_json::Value::Number(n) if n.is_f64() => {
                out.push((prefix.to_string(), format!("{}", n.as_f64().unwrap_or(f64::NAN) as f32)))
            }
            other => out.push((prefix.to_string(), other.to_string())),
        }
    }
    let mut rows = Vec::new();
    walk("", &config::to_json(cfg), &mut rows);
    for (k, v) in rows {
        section.push_config(k, v);
    }
}

fn history_epochs(h: &History) -> String {
    format!("{} epochs{}", h.epochs.len(), if h.stopped_early { " (stopped early)" } else { "" })
}

/// The parts of a rating-model pipeline's outcome that its run directory stores.
trait MfOutcome {
    const KIND: ModelKind;
    fn model(&self) -> &MfModel;
    fn history(&self) -> &History;
    fn train_rows(&self) -> &[u32];
    fn metrics(&self) -> serde_json::Value;
}

macro_rules! mf_outcome {
    ($($outcome:ty => $kind:expr),* $(,)?) => {$(
        impl MfOutcome for $outcome {
            const KIND: ModelKind = $kind;
            fn model(&self) -> &MfModel { &self.model }
            fn history(&self) -> &History { &self.history }
            fn train_rows(&self) -> &[u32] { &self.train_rows }
            fn metrics(&self) -> serde_json::Value { self.metrics_json() }
        }
    )*};
}

mf_outcome!(
    p2_mf::Outcome => ModelKind::Mf,
    p3_recommender::Outcome => ModelKind::SigmoidMf,
    p4_residual::Outcome => ModelKind::ResidualMf,
);

/// Writes a rating model's run directory (`model.safetensors`, `run.json`, `rated.safetensors`)
/// and closes its section.
fn finish_mf<O: MfOutcome, C: serde::Serialize>(
    ctx: &StageContext<'_>,
    p: &str,
    (cfg, seed): (&C, u64),
    outcome: &O,
    section: Section,
    summary: SummaryRow,
) -> Result<StageResult> {
    let ds = &ctx.data.dataset;
    let dir = run_dir(ctx, p);
    let mut info =
        pipelines::run_info_for(ds, O::KIND, config::to_json(cfg), seed, Some(&ctx.data.data_path));
    info.history = serde_json::to_value(outcome.history())?;
    info.metrics = outcome.metrics();
    outcome.model().save(&dir, &info, Some(&pipelines::rated_rows(ds, outcome.train_rows())?))?;
    Ok(finish(section, &dir, summary))
}

/// Says where the run directory went, in the output and in the section.
fn finish(mut section: Section, dir: &Path, summary: SummaryRow) -> StageResult {
    outln!("  run written to {}", shown(dir));
    section.push_note(format!("Run directory: {}", shown(dir)));
    StageResult { section, summary }
}

/// The nearest-neighbour example: the pipeline's own when it has one, else the well-known movie's.
fn push_neighbours(
    section: &mut Section,
    ds: &Dataset,
    own: Option<&(MovieScore, Vec<MovieScore>)>,
    model: &impl ItemEmbeddings,
) {
    let text = match own {
        Some((q, nn)) => Some(movie_lines(&format!("nearest to {} by cosine", q.title), nn)),
        None => neighbours_example(ds, model, 5),
    };
    if let Some(text) = text {
        example(section, text);
    }
}

/// A PCA map and a seeded t-SNE map of the movie vectors, `labelled` movies with their titles and
/// the most-rated others as grey context. `what` completes the plot titles ("P2 — PCA of
/// {what}"), `caption` the captions.
fn push_maps(
    section: &mut Section,
    pipeline: &str,
    ds: &Dataset,
    emb: ArrayView2<'_, f32>,
    labelled: &[u32],
    (what, caption): (&str, &str),
) -> Result<()> {
    let titles = titles_of(ds);
    let by_ratings = transforms::top_movies(ds, ds.movies.len());
    let tsne = MapMethod::Tsne {
        seed: TSNE_SEED,
        perplexity: reelvec_metrics::projection::TsneConfig::default().perplexity,
        max_points: charts::TSNE_MAX_POINTS,
    };
    for method in [MapMethod::Pca, tsne] {
        let title = format!("{pipeline} — {} of {what}", method.name());
        let svg = charts::map_svg(method, &title, emb, labelled, &by_ratings, &titles)?.svg;
        let scope = match method {
            MapMethod::Pca => "every movie".to_owned(),
            MapMethod::Tsne { seed, .. } => format!(
                "the labelled movies and the most-rated others, at most {} points, seed {seed}",
                charts::TSNE_MAX_POINTS
            ),
        };
        section.push_plot(format!("{} map of the movie vectors ({scope}); {caption}", method.name()), svg);
    }
    Ok(())
}

/// The seed of the pipeline's t-SNE maps.
const TSNE_SEED: u64 = 42;

/// P0 — item2vec CBOW.
pub fn p0(ctx: &StageContext<'_>) -> Result<StageResult> {
    let mut section = header(ctx, "p0", "P0 — item2vec CBOW over viewing sequences");
    let mut cfg = p0_cbow::Config::default();
    cfg.train.epochs = ctx.scale(cfg.train.epochs);
    if let Some(es) = cfg.train.early_stopping.as_mut() {
        es.min_epochs = es.min_epochs.min(cfg.train.epochs);
    }
    cfg.train.quiet = ctx.quiet;
    cfg.train.flush_denormals = ctx.flush_denormals;
    let ds = &ctx.data.dataset;
    if ds.users.len() < 200 {
        // Tiny data sets: keep enough users for a validation split.
        cfg.min_user_ratings = cfg.min_user_ratings.min(8);
    }
    push_config(&mut section, &cfg);
    let nb = NotebookLabel::new(ctx, &mut section, NotebookData::Ml25m);
    for line in missing_queries(ds, &cfg.neighbours_of) {
        section.push_note(line);
    }
    let started = Instant::now();
    let o = match &ctx.data.sequences {
        Some(sequences) => p0_cbow::run_on_sequences(ds.clone(), sequences, &cfg, ctx.device)?,
        None => p0_cbow::run_on(ds, &cfg, ctx.device)?,
    };
    let seconds = started.elapsed().as_secs_f64();
    let f = &o.figures;
    section.push_timing("train + evaluate", seconds);
    outln!("  trained in {seconds:.1}s ({})", history_epochs(&o.history));
    figure(&mut section, "vocabulary V", f.vocab.to_string(), Some(nb.of("50").as_str()));
    figure(
        &mut section,
        "uniform baseline ln V",
        f4(f.uniform_baseline),
        Some(nb.of("3.912 (V = 50)").as_str()),
    );
    figure(
        &mut section,
        &format!("best validation {}", f.loss_name),
        opt4(f.best_val_loss),
        Some(nb.of("≈ 3.55").as_str()),
    );
    figure(&mut section, &format!("final train {}", f.loss_name), f4(f.final_train_loss), None);
    if cfg.model.loss == reelvec_models::item2vec::OutputLoss::NegativeSampling {
        let ce = f.val_rank.map(|r| r.cross_entropy);
        figure(&mut section, "validation softmax cross-entropy (all movies)", opt4(ce), None);
    }
    if let Some(r) = f.val_rank {
        figure(&mut section, "validation accuracy@1", f4(r.accuracy_at_1), None);
        figure(&mut section, "validation hit@10", f4(r.hit_at_10), None);
    }
    figure(
        &mut section,
        "train / validation sequences",
        format!("{} / {}", f.train_sequences, f.val_sequences),
        None,
    );
    figure(&mut section, "epochs", history_epochs(&o.history), Some("early stopping (min 6, patience 3)"));

    let titles = titles_of(&o.dataset);
    // Middle-movie examples: the configured pairs found in the vocabulary, and on synthetic data
    // the planted franchises' triples.
    for m in &o.middle {
        example(
            &mut section,
            movie_lines(&format!("between {} and {}", m.before.title, m.after.title), &m.predicted),
        );
    }
    if let Some(truth) = &ctx.data.truth {
        let (hits, total) = o.franchise_middle_hits(&truth.franchises)?;
        if total > 0 {
            figure(
                &mut section,
                "franchise middles predicted first",
                format!("{hits} / {total} ({:.0}%)", 100.0 * hits as f64 / total as f64),
                None,
            );
        }
        let triple = truth.franchises.iter().find_map(|f| {
            let d: Vec<Option<u32>> = f.iter().map(|&raw| o.dataset.movies.dense(raw)).collect();
            d.windows(3).find_map(|w| match *w {
                [Some(a), Some(b), Some(c)] => Some((a, b, c)),
                _ => None,
            })
        });
        if let Some((a, b, c)) = triple {
            let predicted = MovieScore::list(&o.dataset, &o.model.predict_middle(a, c, 5)?);
            example(
                &mut section,
                movie_lines(
                    &format!(
                        "between {} and {} (planted franchise; true middle: {})",
                        titles[a as usize], titles[c as usize], titles[b as usize]
                    ),
                    &predicted,
                ),
            );
        }
    }
    for (q, nn) in &o.neighbours {
        example(&mut section, movie_lines(&format!("nearest to {} by cosine", q.title), nn));
    }

    let best = f.best_val_loss.map_or("-".into(), f4);
    let loss = charts::loss_svg(
        "P0 — cross-entropy per epoch",
        "cross-entropy (nats)",
        &o.history,
        LossSeries::TrainVal,
        Some((format!("uniform ln(V) = ln({}) = {:.3}", f.vocab, f.uniform_baseline), f.uniform_baseline)),
    )?;
    section
        .push_plot("Train and validation cross-entropy per epoch; dashed: the uniform baseline ln(V).", loss);
    // A corpus's vocabulary can be large: its 50 most frequent tokens (vocabulary order).
    let shown = if ctx.data.sequences.is_some() { f.vocab.min(50) } else { f.vocab };
    let vocab: Vec<u32> = (0..shown as u32).collect();
    let heat = charts::heatmap_svg(
        &format!("P0 — cosine similarity of the {shown} vocabulary movies"),
        o.model.item_embeddings(),
        &vocab,
        &titles,
    )?;
    section.push_plot("Cosine similarity of the CBOW movie vectors (the whole vocabulary).", heat);

    let dir = run_dir(ctx, "p0");
    match ctx.data.sequences {
        Some(_) => o.save_corpus_run(&dir, &cfg, &ctx.data.data_path)?,
        None => o.save(&dir, &cfg, Some(&ctx.data.data_path))?,
    }
    let summary = SummaryRow {
        pipeline: "P0 item2vec CBOW".into(),
        seconds,
        figure: format!("val CE {best} (ln V {:.3})", f.uniform_baseline),
        notebook: "val CE ≈ 3.55 (ln 50 = 3.912)".into(),
    };
    Ok(finish(section, &dir, summary))
}

/// P1 — co-occurrence factorisation.
pub fn p1(ctx: &StageContext<'_>) -> Result<StageResult> {
    let mut section = header(ctx, "p1", "P1 — co-occurrence factorisation");
    let mut cfg = p1_cooc::Config::default();
    cfg.model.steps = ctx.scale(cfg.model.steps);
    push_config(&mut section, &cfg);
    let ds = &ctx.data.dataset;
    for line in missing_queries(&ctx.data.dataset, &cfg.neighbours_of) {
        section.push_note(line);
    }
    let started = Instant::now();
    let o = p1_cooc::run_on(ds, &cfg, ctx.device)?;
    let seconds = started.elapsed().as_secs_f64();
    let f = &o.figures;
    section.push_timing("fit (Adam)", f.train_seconds);
    section.push_timing("per step", f.step_seconds);
    section.push_timing("reference (eigen-truncation)", f.reference_seconds);
    outln!("  trained in {seconds:.1}s ({} steps)", f.steps);
    figure(
        &mut section,
        "movies M / users / likes",
        format!("{} / {} / {}", f.movies, f.users, f.likes),
        None,
    );
    figure(&mut section, "rank k", f.k.to_string(), Some("M (never trained)"));
    figure(&mut section, "final cost c(V)", format!("{:.6e}", f.final_cost), Some("never trained"));
    figure(
        &mut section,
        "reference cost (rank-k eigen)",
        f.reference_cost.map_or("-".into(), |c| format!("{c:.6e}")),
        None,
    );
    figure(
        &mut section,
        "reference masked cost (same mask)",
        f.reference_masked_cost.map_or("-".into(), |c| format!("{c:.6e}")),
        None,
    );
    figure(&mut section, "masked cost / reference masked cost", opt4(f.ratio_to_reference_masked), None);
    figure(&mut section, "unmasked cost / reference unmasked cost", opt4(f.ratio_unmasked), None);
    for (q, nn) in &o.neighbours {
        example(&mut section, movie_lines(&format!("nearest to {} by cosine", q.title), nn));
    }
    if o.neighbours.is_empty() {
        push_neighbours(&mut section, ds, None, &o.model);
    }
    let mask = cfg.model.mask_diagonal;
    let costs: Vec<f64> = o.costs.iter().map(|c| c.objective(mask)).collect();
    let svg = charts::cost_svg("P1 — cost per Adam step", &costs, f.reference_cost)?;
    section.push_plot(
        "The objective per full-batch Adam step; dashed: the reference cost of the rank-k eigen-truncation.",
        svg,
    );

    let dir = run_dir(ctx, "p1");
    o.save(&dir, ds, &cfg, Some(&ctx.data.data_path))?;
    let summary = SummaryRow {
        pipeline: "P1 co-occurrence".into(),
        seconds,
        figure: format!("cost/reference (like for like) {}", opt4(f.ratio)),
        notebook: "never trained".into(),
    };
    Ok(finish(section, &dir, summary))
}

/// P2 — biased MF with a sigmoid range.
pub fn p2(ctx: &StageContext<'_>) -> Result<StageResult> {
    let mut section = header(ctx, "p2", "P2 — biased matrix factorisation");
    let mut cfg = p2_mf::Config::default();
    cfg.train.epochs = ctx.scale(cfg.train.epochs);
    cfg.train.quiet = ctx.quiet;
    cfg.train.flush_denormals = ctx.flush_denormals;
    push_config(&mut section, &cfg);
    let ds = &ctx.data.dataset;
    let nb = NotebookLabel::new(ctx, &mut section, NotebookData::Ml100k);
    for line in missing_queries(ds, std::slice::from_ref(&cfg.well_known)) {
        section.push_note(line);
    }
    let started = Instant::now();
    let o = p2_mf::run_on(ds, &cfg, ctx.device)?;
    let seconds = started.elapsed().as_secs_f64();
    section.push_timing("train", o.train_seconds);
    outln!("  trained in {seconds:.1}s ({})", history_epochs(&o.history));
    figure(&mut section, "best validation MSE", opt4(o.best_val_mse), Some(nb.of("0.846").as_str()));
    figure(
        &mut section,
        "best validation RMSE (stars)",
        opt4(o.best_val_rmse),
        Some(nb.of("0.920").as_str()),
    );
    figure(&mut section, "validation MAE (stars)", opt4(o.val_mae), None);
    figure(&mut section, "best epoch", o.history.best_epoch.map_or("-".into(), |e| e.to_string()), None);
    example(&mut section, movie_lines("lowest learned movie bias", &o.lowest_bias));
    example(&mut section, movie_lines("highest learned movie bias", &o.highest_bias));
    push_neighbours(&mut section, ds, o.neighbours.as_ref(), &o.model);
    let loss =
        charts::loss_svg("P2 — MSE per epoch", "MSE (stars²)", &o.history, LossSeries::TrainVal, None)?;
    section.push_plot("Train and validation MSE per epoch (the best validation epoch is kept).", loss);
    let top: Vec<u32> = o.top_by_bias.iter().map(|m| m.movie).collect();
    push_maps(
        &mut section,
        "P2",
        ds,
        o.model.item_embeddings(),
        &top,
        (
            &format!("movie factors, top {} by learned bias", top.len()),
            "labelled: the movies with the highest learned bias.",
        ),
    )?;
    let summary = SummaryRow {
        pipeline: "P2 biased MF".into(),
        seconds,
        figure: format!("best val MSE {} RMSE {}", opt4(o.best_val_mse), opt4(o.best_val_rmse)),
        notebook: "MSE 0.846, RMSE 0.920".into(),
    };
    finish_mf(ctx, "p2", (&cfg, cfg.seed), &o, section, summary)
}

/// The minimum number of ratings for P3's map: the protocol's 100 when at least `top` movies
/// reach it, else the rating count of the `2 * top`-th most-rated movie (small data sets).
fn map_min_ratings(ds: &Dataset, wanted: usize, top: usize) -> usize {
    let mut count = vec![0usize; ds.movies.len()];
    for &m in &ds.ratings.movie {
        count[m as usize] += 1;
    }
    if count.iter().filter(|&&c| c >= wanted).count() >= top {
        return wanted;
    }
    count.sort_unstable_by(|a, b| b.cmp(a));
    count.get(2 * top).or(count.last()).copied().unwrap_or(1).max(1)
}

/// P3 — the sigmoid recommender with diversity and novelty.
pub fn p3(ctx: &StageContext<'_>) -> Result<StageResult> {
    let mut section = header(ctx, "p3", "P3 — dot-product recommender, diversity and novelty");
    let ds = &ctx.data.dataset;
    let mut cfg = p3_recommender::Config::default();
    cfg.train.epochs = ctx.scale(cfg.train.epochs);
    cfg.train.quiet = ctx.quiet;
    cfg.train.flush_denormals = ctx.flush_denormals;
    cfg.map_min_ratings = map_min_ratings(ds, cfg.map_min_ratings, cfg.map_top);
    push_config(&mut section, &cfg);
    let started = Instant::now();
    let nb = NotebookLabel::new(ctx, &mut section, NotebookData::MlLatestSmall);
    let o = p3_recommender::run_on(ds, &cfg, ctx.device)?.with_top_n(ds, &cfg)?;
    let seconds = started.elapsed().as_secs_f64();
    section.push_timing("train + top-N for every user", seconds);
    section.push_timing("train", o.train_seconds);
    outln!("  trained in {seconds:.1}s ({})", history_epochs(&o.history));
    let report = o.top_n.as_ref().context("P3 top-N was requested")?;
    let t = &report.figures;
    let not_reported = nb.of("not reported");
    let none = Some(not_reported.as_str());
    figure(&mut section, "validation MSE (scaled)", opt4(o.val_mse_scaled), none);
    figure(&mut section, "validation RMSE (stars)", opt4(o.val_rmse), none);
    figure(&mut section, "validation MAE (stars)", opt4(o.val_mae), None);
    figure(&mut section, "reload max |difference|", format!("{:e}", o.reload_max_abs_diff), None);
    figure(
        &mut section,
        &format!("top-{} diversity", cfg.top_n),
        f4(t.diversity),
        Some("exercise, no figure"),
    );
    figure(
        &mut section,
        "novelty (mean rating, notebook)",
        f4(t.mean_rating_novelty),
        Some("exercise, no figure"),
    );
    figure(&mut section, "novelty (self-information, bits)", f4(t.self_information_novelty), None);
    figure(&mut section, "catalogue coverage", f4(t.catalogue_coverage), None);
    if let Some((user, list)) = &report.example_user {
        let counts = transforms::MovieStats::compute(&ds.ratings, Some(&o.train_rows), ds.movies.len()).count;
        let mut text = movie_lines(&format!("top-{} for user {user} (predicted stars)", cfg.top_n), list);
        if let Some(warning) = few_ratings_warning(list, &counts) {
            outln!("  {warning}");
            text.push_str(&format!("\n{warning}"));
        }
        example(&mut section, text);
    }
    push_neighbours(&mut section, ds, None, &o.model);
    let loss = charts::loss_svg(
        "P3 — MSE (scaled ratings) per epoch",
        "MSE (scaled)",
        &o.history,
        LossSeries::TrainVal,
        None,
    )?;
    section.push_plot("Train and validation MSE on min-max scaled ratings per epoch.", loss);
    let best: Vec<u32> = o.best_rated.iter().map(|m| m.movie).collect();
    if !best.is_empty() {
        push_maps(
            &mut section,
            "P3",
            ds,
            o.model.item_embeddings(),
            &best,
            (
                &format!(
                    "movie vectors, the {} best-rated films (≥ {} ratings)",
                    best.len(),
                    cfg.map_min_ratings
                ),
                &format!("labelled: the best-rated films with at least {} ratings.", cfg.map_min_ratings),
            ),
        )?;
    }
    let summary = SummaryRow {
        pipeline: "P3 sigmoid recommender".into(),
        seconds,
        figure: format!("val RMSE {}  diversity {:.3}", opt4(o.val_rmse), t.diversity),
        notebook: "no figures reported".into(),
    };
    finish_mf(ctx, "p3", (&cfg, cfg.seed), &o, section, summary)
}

/// P4 — residual factorisation.
pub fn p4(ctx: &StageContext<'_>) -> Result<StageResult> {
    let mut section = header(ctx, "p4", "P4 — residual factorisation");
    let mut cfg = p4_residual::Config::default();
    cfg.train.epochs = ctx.scale(cfg.train.epochs);
    cfg.train.quiet = ctx.quiet;
    cfg.train.flush_denormals = ctx.flush_denormals;
    push_config(&mut section, &cfg);
    let ds = &ctx.data.dataset;
    let nb = NotebookLabel::new(ctx, &mut section, NotebookData::MlLatestSmall);
    let started = Instant::now();
    let o = p4_residual::run_on(ds, &cfg, ctx.device)?;
    let seconds = started.elapsed().as_secs_f64();
    section.push_timing("train", o.train_seconds);
    outln!("  trained in {seconds:.1}s ({})", history_epochs(&o.history));
    let last = o.last_batch_losses();
    figure(
        &mut section,
        "epoch-0 last-batch loss",
        last.first().map_or("-".into(), |&x| f4(x)),
        Some(nb.of("4.24").as_str()),
    );
    figure(
        &mut section,
        &format!("epoch-{} last-batch loss", last.len().saturating_sub(1)),
        last.last().map_or("-".into(), |&x| f4(x)),
        Some(nb.of("falling slowly").as_str()),
    );
    figure(&mut section, "global mean", format!("{:.4}", o.means.global), None);
    figure(&mut section, "train RMSE (stars)", f4(o.train_rmse), None);
    figure(&mut section, "means-only baseline train RMSE", f4(o.baseline_train_rmse), None);
    push_neighbours(&mut section, ds, None, &o.model);
    let loss = charts::loss_svg(
        "P4 — loss per epoch",
        "MSE (residual target)",
        &o.history,
        LossSeries::LastBatch,
        None,
    )?;
    section
        .push_plot("The loss of each epoch's last batch (the notebook's figure) and the epoch mean.", loss);
    let summary = SummaryRow {
        pipeline: "P4 residual MF".into(),
        seconds,
        figure: format!("epoch-0 last batch {}", last.first().map_or("-".into(), |&x| f4(x))),
        notebook: "4.24".into(),
    };
    finish_mf(ctx, "p4", (&cfg, cfg.seed), &o, section, summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use reelvec_data::synth::{generate, Preset};

    fn score(movie: u32) -> MovieScore {
        MovieScore { movie, raw_id: u64::from(movie), title: format!("m{movie}"), score: 5.0 }
    }

    #[test]
    fn a_missing_default_query_says_which_movie_is_shown_instead() {
        let ds = generate(&Preset::Tiny.config()).dataset;
        assert!(pipelines::find_title(&ds, DEFAULT_QUERY).is_none());
        let most_rated = transforms::top_movies(&ds, 1)[0];
        let (q, note) = query_or_fallback(&ds, DEFAULT_QUERY).unwrap();
        assert_eq!(q, most_rated);
        let expected = format!(
            "{DEFAULT_QUERY} is not in this data set; showing {} (the most-rated movie) instead",
            ds.title(q)
        );
        assert_eq!(note.as_deref(), Some(expected.as_str()));
        let present = ds.title(most_rated);
        assert_eq!(query_or_fallback(&ds, &present), Some((most_rated, None)));
        let missing = missing_queries(&ds, &[DEFAULT_QUERY.to_owned(), present]);
        assert_eq!(
            missing,
            vec![format!("{DEFAULT_QUERY} is not in this data set; its example is left out")]
        );
    }

    #[test]
    fn notebook_data_is_recognised_by_its_counts_and_never_for_synthetic_data() {
        let ds = generate(&Preset::Tiny.config()).dataset;
        assert!(!NotebookData::Ml100k.matches(&ds, false));
        let mut ml100k = ds.clone();
        ml100k.ratings.user = vec![0; 100_000];
        ml100k.ratings.movie = vec![0; 100_000];
        ml100k.ratings.rating = vec![4.0; 100_000];
        ml100k.ratings.timestamp = vec![0; 100_000];
        ml100k.users = (0..943u64).fold(reelvec_data::IdMap::default(), |mut m, u| {
            m.intern(u);
            m
        });
        assert!(NotebookData::Ml100k.matches(&ml100k, false));
        assert!(!NotebookData::Ml100k.matches(&ml100k, true));
        assert!(!NotebookData::MlLatestSmall.matches(&ml100k, false));
        let label = NotebookLabel { data: NotebookData::Ml100k, same: false };
        assert_eq!(label.of("0.920"), "0.920 (on ml-100k; other data)");
    }

    #[test]
    fn lists_dominated_by_rarely_rated_movies_are_flagged() {
        // Counts: movies 0..3 have 1, 2, 10, 50 training ratings; movie 4 none.
        let counts = [1, 2, 10, 50, 0];
        let rare: Vec<MovieScore> = [0, 1, 4, 3].into_iter().map(score).collect();
        let warning = few_ratings_warning(&rare, &counts).unwrap();
        assert!(warning.contains("3 of these 4 movies have fewer than 5 training ratings"), "{warning}");
        // Exactly half is not "more than half".
        let half: Vec<MovieScore> = [0, 1, 2, 3].into_iter().map(score).collect();
        assert_eq!(few_ratings_warning(&half, &counts), None);
    }
}
