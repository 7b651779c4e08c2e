//! `reelvec next`: next-title prediction over time-ordered viewing sequences.
//!
//! - `reelvec next --evaluate --data PATH [--exclude-seen] [-k 10] [--set KEY=VALUE]...
//!   [--out RUN]`: leave-last-out over the full catalogue (each user's last title by time is the
//!   target, the titles before it the history; reelvec-data's `SequenceHoldout`). Trains a
//!   causal CBOW (P0 with `model.context_side = "previous"`, every movie, windows over the
//!   histories only) and the baselines (popularity, first-order Markov chain, co-occurrence) on
//!   the histories, and prints HR@k, NDCG@k, MRR and accuracy@1 of each (reelvec-models'
//!   `sequence::evaluate_next`). `--out` saves the trained CBOW as a run.
//! - `reelvec next --run RUN --watched TITLE... [-k 10]`: the most likely next titles after the
//!   watched ones (in watch order), each with its probability; `--continue N [--beam B]`
//!   predicts N titles in a row (greedy, or beam search with width B), never repeating a watched
//!   or predicted title. A symmetric (middle-title) run answers with its middle-title model on
//!   the history only, and says so.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use reelvec_data::transforms::SequenceHoldout;
use reelvec_models::config::resolve_from;
use reelvec_models::item2vec::ContextSide;
use reelvec_models::pipelines::p0_cbow;
use reelvec_models::sequence::{
    continue_sequence, evaluate_next, rank_next, Cooccurrence, MarkovChain, NextScorer, Popularity,
};
use reelvec_models::{checkpoint, RunInfo};

use crate::data_cmd::{load_data, ReadOptions};
use crate::device_arg::resolve_device;
use crate::movie_arg::resolve_movie;

/// `reelvec next` arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Evaluate next-title prediction on `--data` (trains a causal CBOW and the baselines).
    #[arg(long, requires = "data", conflicts_with_all = ["run", "watched"])]
    pub evaluate: bool,
    /// Data set directory or ratings file (with `--evaluate`).
    #[arg(long, value_name = "PATH")]
    pub data: Option<PathBuf>,
    /// Candidates exclude the user's history (by default every title is a candidate).
    #[arg(long)]
    pub exclude_seen: bool,
    /// Override a key of the causal CBOW's P0 config, e.g. `--set model.window=3` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Seed of the CBOW's user split and initialisation.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Save the evaluated causal CBOW as a run directory.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// With `--evaluate`: also write the table as JSON (`models`: name, `hr`, `ndcg`, `mrr`,
    /// `accuracy_at_1` at `k`, with users, titles and candidates).
    #[arg(long, value_name = "FILE", requires = "evaluate")]
    pub json: Option<PathBuf>,
    /// Compute device of the CBOW training: cpu, cuda, cuda:N or auto.
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// Run directory of a cbow or skipgram model.
    #[arg(long, value_name = "DIR", required_unless_present = "evaluate")]
    pub run: Option<PathBuf>,
    /// Watched titles in watch order (ids, exact titles or unique parts of titles).
    #[arg(long, value_name = "TITLE", num_args = 1.., required_unless_present = "evaluate")]
    pub watched: Vec<String>,
    /// Titles listed (ranking), or the cut-off of HR@k / NDCG@k (evaluation).
    #[arg(short, default_value_t = 10, value_parser = crate::args::count)]
    pub k: usize,
    /// Predict a sequence of N titles instead of ranking one.
    #[arg(long = "continue", value_name = "N", value_parser = crate::args::count, conflicts_with = "evaluate")]
    pub continue_n: Option<usize>,
    /// Beam width of `--continue` (1 = greedy).
    #[arg(long, default_value_t = 1, value_parser = crate::args::count, requires = "continue_n")]
    pub beam: usize,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
    #[command(flatten)]
    pub read: ReadOptions,
}

/// Runs `reelvec next`.
pub fn run(args: Args) -> Result<()> {
    if args.evaluate {
        evaluate(&args)
    } else {
        predict(&args)
    }
}

/// The causal CBOW's config: P0 over every movie, windows of the previous titles, the user's
/// `--set` overrides on top.
pub fn causal_config(set: &[String], seed: Option<u64>, quiet: bool) -> Result<p0_cbow::Config> {
    let mut base = p0_cbow::Config { top_movies: 0, min_user_ratings: 5, ..p0_cbow::Config::default() };
    base.model.context_side = ContextSide::Previous;
    base.model.drop_ends = false;
    base.model.window = 5;
    base.middle_queries.clear();
    let mut cfg: p0_cbow::Config = resolve_from(&base, None, set)?;
    if let Some(s) = seed {
        cfg.seed = s;
        cfg.train.seed = s;
    }
    cfg.train.quiet |= quiet;
    cfg.validate()?;
    Ok(cfg)
}

fn evaluate(args: &Args) -> Result<()> {
    let cfg = causal_config(&args.set, args.seed, args.quiet)?;
    if let Some(out) = &args.out {
        checkpoint::check_run_dir(out)?;
    }
    if let Some(json) = &args.json {
        reelvec_outfile::check_file(json).with_context(|| format!("output {}", json.display()))?;
    }
    let device = resolve_device(&args.device, args.quiet)?;
    let path = args.data.as_ref().context("--evaluate needs --data")?;
    let ds = load_data(path, &args.read)?;
    let (data, sequences) = p0_cbow::prepare(&ds, &cfg)?;
    let split = SequenceHoldout::split(&sequences);
    if split.users.is_empty() {
        bail!("no user has two titles after P0's filters: nothing to evaluate");
    }
    let n_items = data.movies.len();
    let k = args.k;
    let started = Instant::now();
    let outcome = p0_cbow::run_on_sequences(data, &split.histories, &cfg, device)?;
    let cbow_seconds = started.elapsed().as_secs_f64();
    if let Some(out) = &args.out {
        outcome.save(out, &cfg, Some(path))?;
    }
    let popularity = Popularity::fit(&split.histories, n_items)?;
    let markov = MarkovChain::fit(&split.histories, n_items)?;
    let cooc = Cooccurrence::fit(&split.histories, n_items)?;
    let scorers: [&dyn NextScorer; 4] = [&popularity, &markov, &cooc, &outcome.model];
    outln!(
        "next-title leave-last-out: {} users, {} titles (full catalogue), candidates {}",
        split.users.len(),
        n_items,
        if args.exclude_seen { "exclude the history" } else { "every title" }
    );
    let m = &cfg.model;
    outln!(
        "{}: window {} ({}), dim {}, {}, {} epochs run, trained in {cbow_seconds:.1}s",
        outcome.model.next_label(),
        m.window,
        m.context_side.as_str(),
        m.dim,
        m.loss_name(),
        outcome.history.epochs.len()
    );
    outln!("{:<44} {:>8} {:>8} {:>8} {:>8}", "model", format!("HR@{k}"), format!("NDCG@{k}"), "MRR", "acc@1");
    let mut rows = Vec::new();
    for s in scorers {
        let r = evaluate_next(s, &split, n_items, args.exclude_seen, k)?;
        rows.push(serde_json::json!({
            "name": s.name(),
            "hr": r.hit_rate,
            "ndcg": r.ndcg,
            "mrr": r.mean_reciprocal_rank,
            "accuracy_at_1": r.accuracy_at_1,
        }));
        outln!(
            "{:<44} {:>8.4} {:>8.4} {:>8.4} {:>8.4}",
            s.name(),
            r.hit_rate,
            r.ndcg,
            r.mean_reciprocal_rank,
            r.accuracy_at_1
        );
    }
    if let Some(json) = &args.json {
        let doc = serde_json::json!({
            "protocol": "leave-last-out",
            "k": k,
            "users": split.users.len(),
            "titles": n_items,
            "candidates": if args.exclude_seen { "exclude-seen" } else { "all" },
            "models": rows,
        });
        let text = serde_json::to_string_pretty(&doc)?;
        reelvec_outfile::write_file(json, format!("{text}\n").as_bytes())
            .with_context(|| format!("writing {}", json.display()))?;
    }
    if let Some(out) = &args.out {
        outln!("saved {} (trained on the histories: every user's last title held out)", out.display());
    }
    Ok(())
}

fn predict(args: &Args) -> Result<()> {
    let run = args.run.as_ref().context("give --run RUN (or --evaluate --data PATH)")?;
    let (model, info) = p0_cbow::load(run)?;
    let history = watched(&info, &args.watched)?;
    let n_items = model.vocab();
    let label = model.next_label();
    let shown = |h: &[u32]| h.iter().map(|&m| info.title(m)).collect::<Vec<_>>().join(" -> ");
    match args.continue_n {
        None => {
            let k = crate::args::clamp_count("-k", args.k, n_items, "movies of the run");
            let ranked = rank_next(&model, &history, n_items, k)?;
            outln!("next after {} ({label}, probability among unwatched titles):", shown(&history));
            for (rank, (m, p)) in ranked.into_iter().enumerate() {
                outln!(
                    "{:>3}  {:>8.4}  {:>7}  {}",
                    rank + 1,
                    p,
                    info.movie_raw_ids[m as usize],
                    info.title(m)
                );
            }
        }
        Some(n) => {
            let c = continue_sequence(&model, &history, n_items, n, args.beam)?;
            let how = if args.beam == 1 {
                "greedy".to_string()
            } else {
                format!("beam search, width {}", args.beam)
            };
            outln!("continuing {} ({label}, {how}):", shown(&history));
            for (step, (&m, p)) in c.titles.iter().zip(&c.probabilities).enumerate() {
                outln!(
                    "{:>3}  {:>8.4}  {:>7}  {}",
                    step + 1,
                    p,
                    info.movie_raw_ids[m as usize],
                    info.title(m)
                );
            }
            outln!("sequence probability {:.4e} (log {:.4})", c.log_probability.exp(), c.log_probability);
            if c.titles.len() < n {
                outln!(
                    "(only {} titles: no unwatched title is left with a non-zero probability)",
                    c.titles.len()
                );
            }
        }
    }
    Ok(())
}

/// The watched titles as dense ids, in order; a title given twice is an error.
fn watched(info: &RunInfo, titles: &[String]) -> Result<Vec<u32>> {
    let mut out = Vec::with_capacity(titles.len());
    for t in titles {
        let m = resolve_movie(info, t)?;
        if out.contains(&m) {
            bail!("{} is given twice in --watched", info.title(m));
        }
        out.push(m);
    }
    Ok(out)
}
