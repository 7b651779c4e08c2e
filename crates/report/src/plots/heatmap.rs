//! The similarity heatmap: a V x V matrix (cosine similarities of movie vectors) drawn as
//! coloured cells, movie titles along both axes, and a colour-scale legend.
//!
//! Laid out by hand on plotters' drawing area (no chart axes): cell size follows V so that up to
//! ~50 movies fit in about 700 pixels; row titles sit left of the grid, column titles below it
//! reading upwards.

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, VPos};
use plotters::style::FontTransform;

use super::labels::{clean_text, shorten_title, text_width};
use super::{anchored, INK};
use crate::error::ReportError;

/// A square matrix of values with a title per row/column.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Heatmap {
    pub title: String,
    /// One label per row (and column), shortened with [`shorten_title`] to `max_label_chars`.
    pub labels: Vec<String>,
    /// Row-major `labels.len()` x `labels.len()` values; NaN cells are drawn grey.
    pub values: Vec<f32>,
    /// The value range the colours span; `None`: `[-m, m]` with `m` the largest |value| off the
    /// diagonal when any is negative (diverging blue-white-red), else `[0, max]` (white to red).
    /// The diagonal (a movie with itself, 1 for cosine) is left out so that it does not wash out
    /// the contrast between different movies; it is clamped to the end of the scale.
    pub range: Option<(f32, f32)>,
    /// The legend's title ("cosine similarity").
    pub legend_label: String,
    pub max_label_chars: usize,
}

/// The most rows a heatmap accepts (beyond that no label is readable).
pub const MAX_SIZE: usize = 200;
const BLUE: (f64, f64, f64) = (33.0, 102.0, 172.0);
const RED: (f64, f64, f64) = (178.0, 24.0, 43.0);

impl Heatmap {
    /// A cosine-similarity heatmap of `values` (row-major, `labels.len()` squared).
    pub fn new(title: impl Into<String>, labels: Vec<String>, values: Vec<f32>) -> Self {
        Heatmap {
            title: title.into(),
            labels,
            values,
            range: None,
            legend_label: "cosine similarity".to_owned(),
            max_label_chars: 24,
        }
    }

    /// The colour range actually used, `lo < hi`.
    fn colour_range(&self) -> (f64, f64) {
        if let Some((lo, hi)) = self.range.filter(|(lo, hi)| lo.is_finite() && hi.is_finite() && lo < hi) {
            return (f64::from(lo), f64::from(hi));
        }
        let n = self.labels.len();
        let off_diagonal = self.values.iter().enumerate().filter(|(i, _)| n < 2 || i / n != i % n);
        let finite = || off_diagonal.clone().map(|(_, &v)| f64::from(v)).filter(|v| v.is_finite());
        let max_abs = finite().fold(0.0_f64, |m, v| m.max(v.abs()));
        let max_abs = if max_abs > 0.0 { max_abs } else { 1.0 };
        if finite().any(|v| v < 0.0) {
            (-max_abs, max_abs)
        } else {
            (0.0, finite().fold(0.0_f64, f64::max).max(f64::MIN_POSITIVE))
        }
    }

    /// Colour of `value`, and whether text on it should be white.
    fn colour(value: f64, (lo, hi): (f64, f64)) -> (RGBColor, bool) {
        if !value.is_finite() {
            return (RGBColor(200, 200, 200), false);
        }
        let v = value.clamp(lo, hi);
        // Signed strength in [-1, 1]: diverging around 0 when the range straddles it.
        let strength = if lo < 0.0 && hi > 0.0 {
            if v >= 0.0 {
                v / hi
            } else {
                -(v / lo)
            }
        } else {
            (v - lo) / (hi - lo)
        };
        let (target, t) = if strength >= 0.0 { (RED, strength) } else { (BLUE, -strength) };
        let mix = |end: f64| (255.0 + (end - 255.0) * t).round() as u8;
        (RGBColor(mix(target.0), mix(target.1), mix(target.2)), t > 0.6)
    }

    /// Draws the heatmap as an SVG document.
    pub fn to_svg(&self) -> Result<String, ReportError> {
        let plot = self.title.as_str();
        let err = |e| ReportError::draw(plot, e);
        let n = self.labels.len();
        if n == 0 || n > MAX_SIZE {
            return Err(ReportError::invalid(plot, format!("{n} labels; expected 1 to {MAX_SIZE}")));
        }
        if self.values.len() != n * n {
            return Err(ReportError::invalid(
                plot,
                format!("{} values for {n} labels; expected {n} x {n} = {}", self.values.len(), n * n),
            ));
        }
        let range = self.colour_range();
        let labels: Vec<String> =
            self.labels.iter().map(|l| shorten_title(l, self.max_label_chars)).collect();

        let cell = (640 / n as i32).clamp(6, 44);
        let label_px = (f64::from(cell) * 0.8).clamp(6.0, 12.0);
        let label_room = labels.iter().map(|l| text_width(l, label_px)).fold(0.0, f64::max).ceil() as i32 + 8;
        let margin = 16;
        let grid_x0 = margin + label_room;
        let grid_y0 = margin + 40;
        let grid = cell * n as i32;
        let (grid_x1, grid_y1) = (grid_x0 + grid, grid_y0 + grid);
        let legend_x0 = grid_x1 + 24;
        let legend_h = grid.clamp(120, 320);
        let title_w = text_width(&self.title, 16.0).ceil() as i32;
        let width = (legend_x0 + 16 + 56 + 24 + margin).max(title_w + 2 * margin);
        let height = grid_y1 + label_room + margin;

        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, (width as u32, height as u32)).into_drawing_area();
            root.fill(&WHITE).map_err(err)?;
            root.draw(&Text::new(
                clean_text(&self.title),
                (width / 2, margin),
                anchored(16.0, HPos::Center, VPos::Top),
            ))
            .map_err(err)?;

            // Cells, with a hairline white gap when there is room for one.
            let gap = i32::from(cell >= 12);
            let show_values = cell >= 36;
            for row in 0..n {
                for col in 0..n {
                    let value = f64::from(self.values[row * n + col]);
                    let (colour, light_text) = Self::colour(value, range);
                    let x = grid_x0 + col as i32 * cell;
                    let y = grid_y0 + row as i32 * cell;
                    root.draw(&Rectangle::new([(x, y), (x + cell - gap, y + cell - gap)], colour.filled()))
                        .map_err(err)?;
                    if show_values && value.is_finite() {
                        let style = anchored(10.0, HPos::Center, VPos::Center);
                        let style = if light_text { style.color(&WHITE) } else { style };
                        root.draw(&Text::new(format!("{value:.2}"), (x + cell / 2, y + cell / 2), style))
                            .map_err(err)?;
                    }
                }
            }
            // Row titles to the left, column titles below reading upwards.
            for (i, label) in labels.iter().enumerate() {
                let centre = i as i32 * cell + cell / 2;
                root.draw(&Text::new(
                    label.as_str(),
                    (grid_x0 - 5, grid_y0 + centre),
                    anchored(label_px, HPos::Right, VPos::Center),
                ))
                .map_err(err)?;
                root.draw(&Text::new(
                    label.as_str(),
                    (grid_x0 + centre, grid_y1 + 5),
                    anchored(label_px, HPos::Right, VPos::Center).transform(FontTransform::Rotate270),
                ))
                .map_err(err)?;
            }

            // Colour scale: a stack of thin bands from `hi` (top) to `lo` (bottom), ticks right.
            let (lo, hi) = range;
            let bands = 64;
            for band in 0..bands {
                let value = hi - (hi - lo) * (f64::from(band) + 0.5) / f64::from(bands);
                let y0 = grid_y0 + legend_h * band / bands;
                let y1 = grid_y0 + legend_h * (band + 1) / bands;
                root.draw(&Rectangle::new(
                    [(legend_x0, y0), (legend_x0 + 16, y1)],
                    Self::colour(value, range).0.filled(),
                ))
                .map_err(err)?;
            }
            root.draw(&Rectangle::new(
                [(legend_x0, grid_y0), (legend_x0 + 16, grid_y0 + legend_h)],
                INK.stroke_width(1),
            ))
            .map_err(err)?;
            for tick in 0..=4 {
                let value = hi - (hi - lo) * f64::from(tick) / 4.0;
                let y = grid_y0 + legend_h * tick / 4;
                root.draw(&PathElement::new(
                    vec![(legend_x0 + 16, y), (legend_x0 + 20, y)],
                    INK.stroke_width(1),
                ))
                .map_err(err)?;
                root.draw(&Text::new(
                    format!("{value:.2}"),
                    (legend_x0 + 23, y),
                    anchored(11.0, HPos::Left, VPos::Center),
                ))
                .map_err(err)?;
            }
            root.draw(&Text::new(
                clean_text(&self.legend_label),
                (legend_x0 + 16 + 56 + 8, grid_y0 + legend_h / 2),
                anchored(12.0, HPos::Center, VPos::Center).transform(FontTransform::Rotate270),
            ))
            .map_err(err)?;
            root.present().map_err(err)?;
        }
        Ok(svg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plots::test_support::parse_svg;

    fn identity_like(n: usize) -> Vec<f32> {
        (0..n * n).map(|i| if i / n == i % n { 1.0 } else { ((i * 7) % 11) as f32 / 10.0 - 0.5 }).collect()
    }

    #[test]
    fn heatmap_labels_both_axes_and_escapes_titles() {
        let labels = vec![
            "Star Wars (1977)".to_owned(),
            "Rock & Roll <High> (1979)".to_owned(),
            "Amélie \"Poulain\" (2001)".to_owned(),
        ];
        let svg = Heatmap::new("P0 — cosine & co", labels, identity_like(3)).to_svg().unwrap();
        let summary = parse_svg(&svg);
        for label in ["Star Wars", "Rock & Roll <High>", "Amélie \"Poulain\""] {
            assert_eq!(
                summary.texts.iter().filter(|t| *t == label).count(),
                2,
                "{label}: {:?}",
                summary.texts
            );
        }
        assert!(summary.has_text("P0 — cosine & co"));
        assert!(summary.has_text("cosine similarity"));
        // Big cells carry their values; the diverging legend runs from -1 to 1.
        // Legend from the largest off-diagonal |value| (0.5 here), not the diagonal's 1.
        assert!(summary.has_text("1.00"));
        assert!(summary.has_text("-0.50"));
        assert!(summary.has_text("0.25"));
        assert!(summary.has_text("0.00"));
        assert!(!summary.has_text("-1.00"));
        // 9 cells + 64 legend bands + the legend frame.
        assert_eq!(summary.rects, 9 + 64 + 1 + 1 /* background */);
    }

    #[test]
    fn fifty_movies_fit_and_stay_well_formed() {
        let labels: Vec<String> = (0..50)
            .map(|i| format!("A Very Long Movie Title Number {i} With Subtitle (19{:02})", i))
            .collect();
        let svg = Heatmap::new("fifty", labels, identity_like(50)).to_svg().unwrap();
        let summary = parse_svg(&svg);
        // Shortened to 24 characters, both axes.
        assert_eq!(summary.texts.iter().filter(|t| t.ends_with('…')).count(), 100);
        assert!(summary.texts.iter().all(|t| t.chars().count() <= 24));
        let width: u32 = svg.split("width=\"").nth(1).unwrap().split('"').next().unwrap().parse().unwrap();
        assert!(width < 1200, "{width}");
    }

    #[test]
    fn colours_follow_the_diverging_scale() {
        let range = (-1.0, 1.0);
        assert_eq!(Heatmap::colour(0.0, range).0, RGBColor(255, 255, 255));
        assert_eq!(Heatmap::colour(1.0, range), (RGBColor(178, 24, 43), true));
        assert_eq!(Heatmap::colour(-1.0, range).0, RGBColor(33, 102, 172));
        assert_eq!(Heatmap::colour(f64::NAN, range).0, RGBColor(200, 200, 200));
        // Half way to red: 255 + (178 - 255) / 2 = 216.5 -> 217.
        assert_eq!(Heatmap::colour(0.5, range).0 .0, 217);
    }

    #[test]
    fn default_range_is_symmetric_only_with_negative_values() {
        let positive = Heatmap::new("p", vec!["a".into(), "b".into()], vec![1.0, 0.5, 0.5, 1.0]);
        assert_eq!(positive.colour_range(), (0.0, 0.5));
        let mixed = Heatmap::new("m", vec!["a".into(), "b".into()], vec![1.0, -0.4, 0.3, 1.0]);
        let (lo, hi) = mixed.colour_range();
        assert!((lo + 0.4).abs() < 1e-6 && (hi - 0.4).abs() < 1e-6, "{lo} {hi}");
        let mut fixed = mixed.clone();
        fixed.range = Some((-1.0, 1.0));
        assert_eq!(fixed.colour_range(), (-1.0, 1.0));
    }

    #[test]
    fn wrong_shape_is_rejected() {
        let heatmap = Heatmap::new("bad", vec!["a".into(), "b".into()], vec![1.0; 3]);
        let err = heatmap.to_svg().unwrap_err();
        assert!(err.to_string().contains("3 values for 2 labels"), "{err}");
    }
}
