//! The pipeline report's plots, drawn from the trained models in memory: loss curves from a
//! trainer [`History`], P1's cost per step against the reference, a cosine heatmap of a movie
//! set, and labelled 2-D maps (PCA, seeded exact t-SNE) of chosen movies over others as grey
//! context.

use std::collections::HashMap;

use anyhow::{bail, Result};
use ndarray::{ArrayView2, Axis};
use reelvec_engine::History;
use reelvec_metrics::projection::{pca, tsne, TsneConfig};
use reelvec_metrics::similarity::cosine_similarity_matrix;
use reelvec_report::plots::{Heatmap, LabelledPoint, LineChart, Scatter};

/// Which per-epoch numbers a loss chart shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LossSeries {
    /// Example-weighted train loss and the validation loss.
    TrainVal,
    /// The loss of each epoch's last batch (P4's notebook figure), with the train mean.
    LastBatch,
}

/// Loss curves per epoch, with an optional dashed reference (e.g. `ln V`).
pub fn loss_svg(
    title: &str,
    y_label: &str,
    history: &History,
    series: LossSeries,
    reference: Option<(String, f64)>,
) -> Result<String> {
    if history.epochs.is_empty() {
        bail!("no epoch to plot");
    }
    let e = &history.epochs;
    let mut chart = LineChart::new(title)
        .with_series("train (epoch mean)", e.iter().map(|s| (s.epoch as f64, s.train_loss)).collect());
    match series {
        LossSeries::TrainVal => {
            let val: Vec<(f64, f64)> =
                e.iter().filter_map(|s| s.val_loss.map(|v| (s.epoch as f64, v))).collect();
            if !val.is_empty() {
                chart = chart.with_series("validation", val);
            }
        }
        LossSeries::LastBatch => {
            chart = chart
                .with_series("last batch", e.iter().map(|s| (s.epoch as f64, s.last_batch_loss)).collect());
        }
    }
    if let Some((label, value)) = reference {
        chart = chart.with_reference(label, value);
    }
    Ok(chart.with_axes("epoch", y_label).to_svg()?)
}

/// P1's objective per step with the reference cost as a dashed line.
pub fn cost_svg(title: &str, costs: &[f64], reference: Option<f64>) -> Result<String> {
    if costs.is_empty() {
        bail!("no step to plot");
    }
    let mut chart = LineChart::new(title)
        .with_series("cost c(V)", costs.iter().enumerate().map(|(i, &c)| (i as f64, c)).collect());
    if let Some(r) = reference {
        chart = chart.with_reference(format!("rank-k eigen reference {r:.4e}"), r);
    }
    // Costs fall by orders of magnitude: a log cost axis (kept linear by the chart if any is <= 0).
    chart.log_y = Some(true);
    Ok(chart.with_axes("Adam step", "cost").to_svg()?)
}

/// Cosine similarity of the movies `rows` of `emb`, titles on both axes.
pub fn heatmap_svg(title: &str, emb: ArrayView2<'_, f32>, rows: &[u32], titles: &[String]) -> Result<String> {
    let similarity = cosine_similarity_matrix(emb, Some(rows))?;
    let labels = rows.iter().map(|&m| titles[m as usize].clone()).collect();
    Ok(Heatmap::new(title, labels, similarity.iter().copied().collect()).to_svg()?)
}

/// How a 2-D movie map is projected.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MapMethod {
    /// PCA (2 components) fitted on every movie vector.
    Pca,
    /// Exact t-SNE (seeded) of the labelled movies plus the first context movies, at most
    /// `max_points` in all (the pipeline: [`TSNE_MAX_POINTS`], well under a second). The perplexity is
    /// lowered to `(n - 1) / 3` for small sets.
    Tsne { seed: u64, perplexity: f64, max_points: usize },
}

impl MapMethod {
    /// The name used in plot titles.
    pub fn name(self) -> &'static str {
        match self {
            MapMethod::Pca => "PCA",
            MapMethod::Tsne { .. } => "t-SNE",
        }
    }
}

/// The most points a pipeline t-SNE map projects (exact t-SNE is O(n²) per step).
pub const TSNE_MAX_POINTS: usize = 300;

/// A drawn map and, for t-SNE, one line about the fit (points, perplexity, KL divergence).
pub struct MovieMap {
    /// The SVG.
    pub svg: String,
    /// `t-SNE of N movies, perplexity P, KL K` (None for PCA).
    pub fit_note: Option<String>,
}

/// A 2-D map of movie vectors: `labelled` movies drawn with their titles, `context` movies as
/// grey points (for t-SNE only the first context movies that fit in `max_points`; pass
/// them most important first). The one map drawing of `reelvec pipeline` and `reelvec plot`.
pub fn map_svg(
    method: MapMethod,
    title: &str,
    emb: ArrayView2<'_, f32>,
    labelled: &[u32],
    context: &[u32],
    titles: &[String],
) -> Result<MovieMap> {
    if emb.ncols() < 2 {
        bail!("a 2-D map needs vectors of at least 2 dimensions");
    }
    let context: Vec<u32> = context.iter().copied().filter(|m| !labelled.contains(m)).collect();
    // `rows[i]` is the movie of coordinate row i.
    let mut fit_note = None;
    let (coordinates, rows, axes) = match method {
        MapMethod::Pca => {
            let fit = pca(emb, 2)?;
            let share = |i: usize| fit.explained_variance_ratio[i] * 100.0;
            let axes = (
                format!("PC 1 ({:.1}% of variance)", share(0)),
                format!("PC 2 ({:.1}% of variance)", share(1)),
            );
            (fit.coordinates, (0..emb.nrows() as u32).collect::<Vec<u32>>(), axes)
        }
        MapMethod::Tsne { seed, perplexity, max_points } => {
            let mut rows = labelled.to_vec();
            rows.extend(context.iter().take(max_points.saturating_sub(rows.len())));
            if rows.len() < 5 {
                bail!("a t-SNE map needs at least 5 movies, got {}", rows.len());
            }
            let data = emb.select(Axis(0), &rows.iter().map(|&m| m as usize).collect::<Vec<_>>());
            // Lowered on small sets: it must stay below n - 1.
            let perplexity = perplexity.min((rows.len() as f64 - 1.0) / 3.0);
            let fit = tsne(data.view(), &TsneConfig { perplexity, seed, ..TsneConfig::default() })?;
            fit_note = Some(format!(
                "t-SNE of {} movies, perplexity {perplexity:.1}, KL {:.4}",
                rows.len(),
                fit.kl_divergence
            ));
            let axes = ("t-SNE 1".to_owned(), format!("t-SNE 2 (perplexity {perplexity:.0}, seed {seed})"));
            (fit.embedding.mapv(f64::from), rows, axes)
        }
    };
    let row_of: HashMap<u32, usize> = rows.iter().enumerate().map(|(i, &m)| (m, i)).collect();
    let at = |m: u32| row_of.get(&m).map(|&r| (coordinates[[r, 0]], coordinates[[r, 1]]));
    let points = labelled
        .iter()
        .filter_map(|&m| at(m).map(|(x, y)| LabelledPoint { x, y, label: titles[m as usize].clone() }))
        .collect();
    let background = context.iter().filter_map(|&m| at(m)).collect();
    let svg = Scatter::new(title, points).with_axes(axes.0, axes.1).with_background(background).to_svg()?;
    Ok(MovieMap { svg, fit_note })
}
