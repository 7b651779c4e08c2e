//! The pipeline report's plots, drawn from the trained models in memory: loss curves from a
//! trainer [`History`], P1's cost per step against the reference, a cosine heatmap of a movie
//! set, and a labelled PCA map of chosen movies over the rest as grey context.

use anyhow::{bail, Result};
use ndarray::ArrayView2;
use reelvec_engine::History;
use reelvec_metrics::projection::pca;
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
    Ok(chart.with_axes("Adam step", "cost").to_svg()?)
}

/// Cosine similarity of the movies `rows` of `emb`, titles on both axes.
pub fn heatmap_svg(title: &str, emb: ArrayView2<'_, f32>, rows: &[u32], titles: &[String]) -> Result<String> {
    let similarity = cosine_similarity_matrix(emb, Some(rows))?;
    let labels = rows.iter().map(|&m| titles[m as usize].clone()).collect();
    Ok(Heatmap::new(title, labels, similarity.iter().copied().collect()).to_svg()?)
}

/// PCA (2 components) of every movie vector; `labelled` movies drawn with their titles, the
/// `context` movies as grey points.
pub fn pca_map_svg(
    title: &str,
    emb: ArrayView2<'_, f32>,
    labelled: &[u32],
    context: &[u32],
    titles: &[String],
) -> Result<String> {
    if emb.ncols() < 2 {
        bail!("a 2-D map needs vectors of at least 2 dimensions");
    }
    let fit = pca(emb, 2)?;
    let at = |m: u32| (fit.coordinates[[m as usize, 0]], fit.coordinates[[m as usize, 1]]);
    let points = labelled
        .iter()
        .map(|&m| {
            let (x, y) = at(m);
            LabelledPoint { x, y, label: titles[m as usize].clone() }
        })
        .collect();
    let background = context.iter().filter(|m| !labelled.contains(m)).map(|&m| at(m)).collect();
    let share = |i: usize| fit.explained_variance_ratio[i] * 100.0;
    Ok(Scatter::new(title, points)
        .with_axes(
            format!("PC 1 ({:.1}% of variance)", share(0)),
            format!("PC 2 ({:.1}% of variance)", share(1)),
        )
        .with_background(background)
        .to_svg()?)
}
