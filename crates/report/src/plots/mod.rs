//! Plots as SVG strings, drawn with plotters' SVG backend: loss curves ([`LineChart`]), a
//! cosine-similarity heatmap ([`Heatmap`]), a labelled 2-D map ([`Scatter`]) and horizontal bars
//! ([`BarChart`]).
//!
//! Every plot takes plain data (titles, numbers) and returns a standalone `<svg>` document that
//! is also valid inline in HTML. Text goes through [`labels::clean_text`] (characters XML cannot
//! carry) and plotters' escaping (`&`, `<`, quotes). Fonts are the viewer's `sans-serif`; no font
//! file is read or embedded.

mod bars;
mod heatmap;
pub mod labels;
mod line;
mod scatter;

pub use bars::{Bar, BarChart};
pub use heatmap::{Heatmap, MAX_SIZE as HEATMAP_MAX_SIZE};
pub use labels::{place_labels, shorten_title, PlacedLabel, Rect};
pub use line::{LineChart, ReferenceLine, Series};
pub use scatter::{LabelledPoint, Scatter, ScatterLayout};

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// Okabe–Ito colours (distinguishable with the common colour-vision deficiencies), without the
/// yellow that is unreadable on white.
pub(crate) const PALETTE: [RGBColor; 7] = [
    RGBColor(0, 114, 178),
    RGBColor(213, 94, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(230, 159, 0),
    RGBColor(86, 180, 233),
    RGBColor(0, 0, 0),
];

/// Dark grey used for text and axes.
pub(crate) const INK: RGBColor = RGBColor(34, 34, 34);

/// A sans-serif text style rendered at `px` pixels.
///
/// plotters' SVG backend writes `font-size = size / 1.24`, so the size handed to it is `px * 1.24`.
pub(crate) fn font(px: f64) -> TextStyle<'static> {
    ("sans-serif", px * 1.24).into_font().color(&INK)
}

/// [`font`] anchored at the given horizontal and vertical position.
pub(crate) fn anchored(px: f64, h: HPos, v: VPos) -> TextStyle<'static> {
    font(px).pos(Pos::new(h, v))
}

/// A range `[lo, hi]` covering the finite `values`, widened by `pad` of its span on both sides;
/// a span of zero is widened to +-0.5 (or +-|v|/10), no finite value gives `[0, 1]`.
pub(crate) fn padded_range(values: impl Iterator<Item = f64>, pad: f64) -> (f64, f64) {
    let (lo, hi) = values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    let span = hi - lo;
    if span <= f64::EPSILON * hi.abs().max(1.0) {
        let half = (lo.abs() / 10.0).max(0.5);
        return (lo - half, hi + half);
    }
    (lo - span * pad, hi + span * pad)
}

/// Widens `[lo, hi]` to multiples of a 1-2-5 step giving at most `max_ticks` intervals, so that
/// both ends carry a tick (plotters' own tick search can miss the last one: for 3.22..4.13 it
/// gives 3.4, 3.6, 3.8 and no 4.0).
/// Also returns how many decimals the step needs (0 for 1, 2, 5, 10...; 1 for 0.2...).
pub(crate) fn nice_range(lo: f64, hi: f64, max_ticks: usize) -> (f64, f64, usize) {
    if !(lo.is_finite() && hi.is_finite()) || hi <= lo {
        return (lo, hi, 2);
    }
    let raw = (hi - lo) / max_ticks.max(1) as f64;
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * magnitude)
        .find(|&s| s >= raw)
        .unwrap_or(10.0 * magnitude);
    let decimals = (-step.log10().floor()).max(0.0) as usize;
    ((lo / step).floor() * step, (hi / step).ceil() * step, decimals)
}

#[cfg(test)]
pub(crate) mod test_support {
    //! Checks shared by the plot tests: well-formed XML and the text a document shows.

    use quick_xml::events::Event;
    use quick_xml::Reader;

    /// Parses `xml` fully, failing on unbalanced tags, bad attributes and undefined entities.
    /// Returns the decoded text of every `<text>` element (and of all text nodes in `all_text`).
    pub fn parse_svg(xml: &str) -> SvgSummary {
        let mut reader = Reader::from_str(xml);
        reader.config_mut().check_end_names = true;
        let mut summary = SvgSummary::default();
        let mut stack: Vec<String> = Vec::new();
        loop {
            match reader.read_event() {
                Ok(Event::Start(start)) => {
                    for attr in start.attributes() {
                        let attr = attr.unwrap_or_else(|e| panic!("bad attribute: {e}"));
                        attr.unescape_value().unwrap_or_else(|e| panic!("bad attribute value: {e}"));
                    }
                    stack.push(String::from_utf8_lossy(start.name().as_ref()).into_owned());
                }
                Ok(Event::Empty(empty)) => {
                    for attr in empty.attributes() {
                        let attr = attr.unwrap_or_else(|e| panic!("bad attribute: {e}"));
                        attr.unescape_value().unwrap_or_else(|e| panic!("bad attribute value: {e}"));
                    }
                    if empty.name().as_ref() == b"rect" {
                        summary.rects += 1;
                    }
                }
                Ok(Event::End(_)) => {
                    stack.pop();
                }
                Ok(Event::Text(text)) => {
                    let text = text.unescape().unwrap_or_else(|e| panic!("bad text: {e}"));
                    let text = text.trim();
                    if !text.is_empty() {
                        if stack.last().map(String::as_str) == Some("text") {
                            summary.texts.push(text.to_owned());
                        }
                        summary.all_text.push(text.to_owned());
                    }
                }
                Ok(Event::Eof) => break,
                Ok(_) => {}
                Err(e) => panic!("malformed XML at byte {}: {e}", reader.buffer_position()),
            }
        }
        assert!(stack.is_empty(), "unclosed elements: {stack:?}");
        summary
    }

    /// What [`parse_svg`] found.
    #[derive(Debug, Default)]
    pub struct SvgSummary {
        pub texts: Vec<String>,
        pub all_text: Vec<String>,
        pub rects: usize,
    }

    impl SvgSummary {
        pub fn has_text(&self, wanted: &str) -> bool {
            self.texts.iter().any(|t| t == wanted)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{nice_range, padded_range};

    #[test]
    fn nice_range_lands_on_round_steps() {
        let close = |(a, b, d): (f64, f64, usize), (c, e, f): (f64, f64, usize)| {
            (a - c).abs() < 1e-12 && (b - e).abs() < 1e-12 && d == f
        };
        assert!(close(nice_range(3.22, 4.13, 8), (3.2, 4.2, 1)));
        assert!(close(nice_range(0.3, 7.2, 8), (0.0, 8.0, 0)));
        assert!(close(nice_range(-0.013, 0.041, 5), (-0.02, 0.06, 2)));
        assert!(close(nice_range(0.0, 900.0, 8), (0.0, 1000.0, 0)));
        assert_eq!(nice_range(1.0, 1.0, 8), (1.0, 1.0, 2));
    }

    #[test]
    fn padded_range_pads_and_handles_degenerate_input() {
        assert_eq!(padded_range([1.0, 3.0].into_iter(), 0.1), (0.8, 3.2));
        assert_eq!(padded_range([f64::NAN, 2.0, f64::INFINITY].into_iter(), 0.1), (1.5, 2.5));
        assert_eq!(padded_range(std::iter::empty(), 0.1), (0.0, 1.0));
        assert_eq!(padded_range([20.0].into_iter(), 0.1), (18.0, 22.0));
    }
}
