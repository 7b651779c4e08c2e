//! The ranking section of `reelvec pipeline` (`--rankers popularity,ials,..`, `--only rank`):
//! the ranking models on the pipeline's data under the ranking protocol (temporal holdout,
//! seed 42, no tuning), through `reelvec compare`'s code (`compare_cmd::compare_models` and its
//! report sections): the test leaderboard with its scatters and a sample user's top-10 with
//! titles per model. No run directories: `reelvec train --model K [--holdout SPLIT]` saves a
//! ranking run.

use std::time::Instant;

use anyhow::{bail, Result};
use reelvec_data::ranking_split::RankingSplit;
use reelvec_report::Section;

use super::{StageContext, SummaryRow};
use crate::compare_cmd::{
    compare_models, parse_candidates, print_leaderboard, report_sections, Candidate, CompareOptions,
};

/// The rankers `--only rank` fits when `--rankers` is not given.
pub(crate) const DEFAULT_RANKERS: &str = "popularity,itemknn,ease,ials,bpr";

/// Parses `--rankers` (ranking models only), before any data is loaded.
pub(crate) fn parse_rankers(names: &[String]) -> Result<Vec<Candidate>> {
    let candidates = parse_candidates(names).map_err(|e| e.context("--rankers"))?;
    if let Some(c) = candidates.iter().find(|c| !c.is_ranker()) {
        bail!(
            "--rankers: {} is not a ranking model (popularity, itemknn, ease, ials, bpr, warp); rating models \
             have their pipelines, and `reelvec compare` ranks every model",
            c.name()
        );
    }
    Ok(candidates)
}

/// Fits `rankers` on the pipeline's data and returns the report sections and the summary line.
pub(crate) fn rank(ctx: &StageContext<'_>, rankers: &[Candidate]) -> Result<(Vec<Section>, SummaryRow)> {
    outln!("\n== ranking models (temporal holdout, test figures)");
    let started = Instant::now();
    let ds = &ctx.data.dataset;
    let opts = CompareOptions {
        split: RankingSplit::TemporalHoldout,
        seed: 42,
        device: ctx.device,
        tune: false,
        epochs_scale: ctx.epochs_scale,
    };
    let cmp = compare_models(ds, rankers, &opts)?;
    print_leaderboard(opts.split, &cmp);
    let seconds = started.elapsed().as_secs_f64();
    let mut sections = report_sections(ds, &cmp, &opts, ("ranking", "ranking-examples"))?;
    if let Some(board) = sections.first_mut() {
        board.title = "Ranking models — leaderboard (test)".into();
        board.push_timing("fit + evaluate every ranking model", seconds);
    }
    let best = &cmp.rows[0];
    let summary = SummaryRow {
        pipeline: "ranking models".into(),
        seconds,
        figure: format!("best test NDCG@10 {:.4} ({})", best.test.ndcg[0], best.name),
        notebook: "no notebook".into(),
    };
    Ok((sections, summary))
}
