//! Horizontal bar charts: one labelled bar per item (the movies with the highest and lowest
//! learned bias, per-pipeline timings). Positive bars grow right of zero, negative ones left.

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, VPos};

use super::labels::{clean_text, shorten_title, text_width};
use super::{anchored, INK, PALETTE};
use crate::error::ReportError;

/// One bar.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Bar {
    pub label: String,
    pub value: f64,
}

/// A horizontal bar chart, bars top to bottom in the order given.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BarChart {
    pub title: String,
    /// What the values are ("learned movie bias").
    pub value_label: String,
    pub bars: Vec<Bar>,
    /// Total width in pixels; the height follows the number of bars.
    pub width: u32,
    pub max_label_chars: usize,
}

const BAR_H: i32 = 20;
const BAR_GAP: i32 = 6;

impl BarChart {
    pub fn new(title: impl Into<String>, value_label: impl Into<String>, bars: Vec<Bar>) -> Self {
        BarChart {
            title: title.into(),
            value_label: value_label.into(),
            bars,
            width: 720,
            max_label_chars: 28,
        }
    }

    /// Draws the chart as an SVG document.
    pub fn to_svg(&self) -> Result<String, ReportError> {
        let plot = self.title.as_str();
        let err = |e| ReportError::draw(plot, e);
        if self.bars.is_empty() {
            return Err(ReportError::invalid(plot, "no bars"));
        }
        if let Some(bad) = self.bars.iter().find(|b| !b.value.is_finite()) {
            return Err(ReportError::invalid(plot, format!("bar `{}` has value {}", bad.label, bad.value)));
        }
        let labels: Vec<String> =
            self.bars.iter().map(|b| shorten_title(&b.label, self.max_label_chars)).collect();
        let label_room = labels.iter().map(|l| text_width(l, 12.0)).fold(0.0, f64::max).ceil() as i32 + 12;
        let margin = 16;
        let value_room = 64; // room for the value printed past the bar's end, on both sides
        let x0 = margin + label_room + value_room;
        let x1 = (self.width as i32 - margin - value_room).max(x0 + 100);
        let width = x1 + value_room + margin;
        let top = margin + 34;
        let rows = self.bars.len() as i32;
        let bottom = top + rows * (BAR_H + BAR_GAP);
        let height = bottom + 40;

        let lo = self.bars.iter().map(|b| b.value).fold(0.0, f64::min);
        let hi = self.bars.iter().map(|b| b.value).fold(0.0, f64::max);
        let span = if hi > lo { hi - lo } else { 1.0 };
        let to_x = |v: f64| x0 + ((v - lo) / span * f64::from(x1 - x0)).round() as i32;
        let zero = to_x(0.0);

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
            for (row, (bar, label)) in self.bars.iter().zip(&labels).enumerate() {
                let y = top + row as i32 * (BAR_H + BAR_GAP);
                let end = to_x(bar.value);
                let colour = if bar.value >= 0.0 { PALETTE[0] } else { PALETTE[1] };
                root.draw(&Rectangle::new([(zero.min(end), y), (zero.max(end), y + BAR_H)], colour.filled()))
                    .map_err(err)?;
                root.draw(&Text::new(
                    label.as_str(),
                    (margin + label_room - 6, y + BAR_H / 2),
                    anchored(12.0, HPos::Right, VPos::Center),
                ))
                .map_err(err)?;
                let (value_x, h) =
                    if bar.value >= 0.0 { (end + 4, HPos::Left) } else { (end - 4, HPos::Right) };
                root.draw(&Text::new(
                    format!("{:.3}", bar.value),
                    (value_x, y + BAR_H / 2),
                    anchored(11.0, h, VPos::Center),
                ))
                .map_err(err)?;
            }
            root.draw(&PathElement::new(vec![(zero, top - 4), (zero, bottom)], INK.stroke_width(1)))
                .map_err(err)?;
            root.draw(&Text::new(
                clean_text(&self.value_label),
                ((x0 + x1) / 2, bottom + 12),
                anchored(13.0, HPos::Center, VPos::Top),
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

    #[test]
    fn bars_show_labels_values_and_both_signs() {
        let bars = vec![
            Bar { label: "Schindler's List (1993)".into(), value: 0.412 },
            Bar { label: "Beavis & Butt-head <Do It> (1996)".into(), value: -0.25 },
        ];
        let svg = BarChart::new("Best & worst", "learned movie bias", bars).to_svg().unwrap();
        let summary = parse_svg(&svg);
        assert!(summary.has_text("Schindler's List"));
        assert!(summary.has_text("Beavis & Butt-head <Do It>"));
        assert!(summary.has_text("0.412"));
        assert!(summary.has_text("-0.250"));
        assert!(summary.has_text("Best & worst"));
        assert!(summary.has_text("learned movie bias"));
    }

    #[test]
    fn empty_or_non_finite_bars_are_rejected() {
        assert!(BarChart::new("e", "v", vec![]).to_svg().is_err());
        let nan = vec![Bar { label: "x".into(), value: f64::NAN }];
        assert!(BarChart::new("n", "v", nan).to_svg().unwrap_err().to_string().contains("bar `x`"));
    }
}
