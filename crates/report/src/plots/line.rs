//! Line charts: loss curves of named series over epochs, with an optional horizontal reference
//! line (the uniform baseline ln(V) of a softmax, a target RMSE).

use plotters::prelude::*;

use super::labels::clean_text;
use super::{font, nice_range, padded_range, INK, PALETTE};
use crate::error::ReportError;

/// One named curve: `(x, y)` points in drawing order. Non-finite points are skipped (a diverged
/// run still plots what came before).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

/// A horizontal line at `value`, named `label` in the legend.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ReferenceLine {
    pub label: String,
    pub value: f64,
}

/// Loss curves (or any y-over-x series) with a legend.
///
/// ```
/// use reelvec_report::plots::LineChart;
/// let svg = LineChart::new("P0 — CBOW loss")
///     .with_series("train", vec![(1.0, 5.1), (2.0, 4.2), (3.0, 3.9)])
///     .with_series("validation", vec![(1.0, 5.3), (2.0, 4.6), (3.0, 4.5)])
///     .with_reference("uniform ln(V)", 5.52)
///     .to_svg()
///     .unwrap();
/// assert!(svg.contains("validation"));
/// ```
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LineChart {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub series: Vec<Series>,
    pub reference: Option<ReferenceLine>,
    /// Logarithmic y axis: `Some(true)`/`Some(false)` force it; `None` (the default) picks it when
    /// every value is positive and they span a factor of 100 or more (a cost falling from 3e8
    /// to 1e5 is a flat line on a linear axis).
    #[serde(default)]
    pub log_y: Option<bool>,
    /// Width and height in pixels.
    pub size: (u32, u32),
}

impl LineChart {
    /// An empty chart titled `title`, axes "epoch" and "loss", 720 x 420 pixels.
    pub fn new(title: impl Into<String>) -> Self {
        LineChart {
            title: title.into(),
            x_label: "epoch".to_owned(),
            y_label: "loss".to_owned(),
            series: Vec::new(),
            reference: None,
            log_y: None,
            size: (720, 420),
        }
    }

    /// Adds a series.
    pub fn with_series(mut self, name: impl Into<String>, points: Vec<(f64, f64)>) -> Self {
        self.series.push(Series { name: name.into(), points });
        self
    }

    /// Sets the horizontal reference line.
    pub fn with_reference(mut self, label: impl Into<String>, value: f64) -> Self {
        self.reference = Some(ReferenceLine { label: label.into(), value });
        self
    }

    /// Sets the axis titles.
    pub fn with_axes(mut self, x_label: impl Into<String>, y_label: impl Into<String>) -> Self {
        self.x_label = x_label.into();
        self.y_label = y_label.into();
        self
    }

    /// Draws the chart as an SVG document.
    pub fn to_svg(&self) -> Result<String, ReportError> {
        let plot = self.title.as_str();
        let err = |e| ReportError::draw(plot, e);
        if self.size.0 < 200 || self.size.1 < 150 {
            return Err(ReportError::invalid(plot, format!("size {:?} is below 200 x 150", self.size)));
        }
        let finite = |&&(x, y): &&(f64, f64)| x.is_finite() && y.is_finite();
        let all_points = || self.series.iter().flat_map(|s| s.points.iter().filter(finite));
        let reference = self.reference.as_ref().filter(|r| r.value.is_finite());
        let all_y = || all_points().map(|p| p.1).chain(reference.map(|r| r.value));
        let log_y = self.log_y.unwrap_or_else(|| {
            let (lo, hi) = all_y().fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), y| (l.min(y), h.max(y)));
            lo > 0.0 && hi.is_finite() && hi / lo >= 100.0
        }) && all_y().all(|y| y > 0.0);
        // On a log axis the chart draws log10(y) and labels the ticks with 10^tick.
        let to_y = move |y: f64| if log_y { y.log10() } else { y };
        let (x_lo, x_hi) = padded_range(all_points().map(|p| p.0), 0.02);
        let (y_lo, y_hi) = padded_range(all_y().map(to_y), 0.03);
        let (y_lo, y_hi, y_decimals) = nice_range(y_lo, y_hi, 8);
        let y_desc = if log_y { format!("{} (log scale)", self.y_label) } else { self.y_label.clone() };

        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, self.size).into_drawing_area();
            root.fill(&WHITE).map_err(err)?;
            let mut chart = ChartBuilder::on(&root)
                .caption(clean_text(&self.title), font(17.0))
                .margin(12)
                .x_label_area_size(42)
                .y_label_area_size(62)
                .build_cartesian_2d(x_lo..x_hi, y_lo..y_hi)
                .map_err(err)?;
            chart
                .configure_mesh()
                .x_desc(clean_text(&self.x_label))
                .y_desc(clean_text(&y_desc))
                .axis_desc_style(font(13.0))
                .label_style(font(11.0))
                .light_line_style(RGBColor(238, 238, 238))
                .bold_line_style(RGBColor(215, 215, 215))
                .axis_style(INK)
                .x_labels(10)
                .x_label_formatter(&|v| tick_label(*v))
                .y_label_formatter(&|v| {
                    if log_y {
                        short_scientific(10f64.powf(*v))
                    } else if y_lo.abs().max(y_hi.abs()) >= 1e5 {
                        format!("{v:.2e}")
                    } else {
                        fixed(*v, y_decimals)
                    }
                })
                .y_labels(8)
                .draw()
                .map_err(err)?;

            for (i, series) in self.series.iter().enumerate() {
                let colour = PALETTE[i % PALETTE.len()];
                let points: Vec<(f64, f64)> =
                    series.points.iter().filter(finite).map(|&(x, y)| (x, to_y(y))).collect();
                chart
                    .draw_series(LineSeries::new(points.iter().copied(), colour.stroke_width(2)))
                    .map_err(err)?
                    .label(clean_text(&series.name))
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 18, y)], colour.stroke_width(2))
                    });
                if points.len() <= 60 {
                    chart
                        .draw_series(points.iter().map(|&p| Circle::new(p, 3, colour.filled())))
                        .map_err(err)?;
                }
            }
            if let Some(reference) = reference {
                let grey = RGBColor(110, 110, 110);
                chart
                    .draw_series(DashedLineSeries::new(
                        [(x_lo, to_y(reference.value)), (x_hi, to_y(reference.value))],
                        8,
                        5,
                        grey.stroke_width(2),
                    ))
                    .map_err(err)?
                    .label(clean_text(&reference.label))
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], grey.stroke_width(2)));
            }
            if !self.series.is_empty() || reference.is_some() {
                chart
                    .configure_series_labels()
                    .label_font(font(12.0))
                    .background_style(WHITE.mix(0.9))
                    .border_style(RGBColor(180, 180, 180))
                    .position(SeriesLabelPosition::UpperRight)
                    .draw()
                    .map_err(err)?;
            }
            root.present().map_err(err)?;
        }
        Ok(svg)
    }
}

/// A tick label: whole numbers without decimals ("5", not "5.0"), else up to 4 significant
/// decimals with trailing zeros dropped ("0.25", "3.912").
fn tick_label(value: f64) -> String {
    if (value - value.round()).abs() < 1e-9 * value.abs().max(1.0) {
        return format!("{:.0}", value.round() + 0.0); // + 0.0 turns -0 into 0
    }
    let digits = (4 - value.abs().log10().floor() as i32).clamp(1, 8) as usize;
    let text = format!("{value:.digits$}");
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// `value` in short scientific notation: "1e6", "3.2e5", "2.5e-3".
fn short_scientific(value: f64) -> String {
    let text = format!("{value:.1e}");
    text.replacen(".0e", "e", 1)
}

/// `value` with `decimals` decimals, never "-0.0".
fn fixed(value: f64, decimals: usize) -> String {
    let text = format!("{value:.decimals$}");
    match text.strip_prefix('-') {
        Some(rest) if rest.bytes().all(|b| b == b'0' || b == b'.') => rest.to_owned(),
        _ => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plots::test_support::parse_svg;

    #[test]
    fn loss_chart_is_well_formed_and_names_its_series() {
        let svg = LineChart::new("P0 — loss <CBOW> & \"friends\"")
            .with_series("train", vec![(1.0, 5.0), (2.0, 4.0), (3.0, f64::NAN), (4.0, 3.5)])
            .with_series("val & test", vec![(1.0, 5.2), (2.0, 4.4)])
            .with_reference("uniform ln(V) = 5.52", 5.52)
            .to_svg()
            .unwrap();
        assert!(svg.starts_with("<svg"));
        let summary = parse_svg(&svg);
        assert!(summary.has_text("P0 — loss <CBOW> & \"friends\""), "{:?}", summary.texts);
        assert!(summary.has_text("train"));
        assert!(summary.has_text("val & test"));
        assert!(summary.has_text("uniform ln(V) = 5.52"));
        assert!(summary.has_text("epoch"));
        assert!(summary.has_text("loss"));
        assert!(!svg.contains("NaN"));
    }

    #[test]
    fn large_values_get_scientific_ticks() {
        let svg =
            LineChart::new("cost").with_series("cost", vec![(0.0, 3.4e8), (1.0, 3.2e8)]).to_svg().unwrap();
        let summary = parse_svg(&svg);
        assert!(summary.texts.iter().any(|t| t.ends_with("e8")), "{:?}", summary.texts);
    }

    #[test]
    fn wide_positive_ranges_switch_to_a_log_axis() {
        let falling: Vec<(f64, f64)> = (0..10).map(|e| (f64::from(e), 3e8 * 0.3f64.powi(e))).collect();
        let svg = LineChart::new("cost").with_series("cost", falling.clone()).to_svg().unwrap();
        let summary = parse_svg(&svg);
        assert!(summary.has_text("loss (log scale)"), "{:?}", summary.texts);
        assert!(summary.has_text("1e8"), "{:?}", summary.texts);
        let mut linear = LineChart::new("cost").with_series("cost", falling);
        linear.log_y = Some(false);
        assert!(!parse_svg(&linear.to_svg().unwrap()).has_text("loss (log scale)"));
        // A zero or negative value keeps the axis linear even when asked for log.
        let mut with_zero = LineChart::new("z").with_series("z", vec![(0.0, 0.0), (1.0, 1000.0)]);
        with_zero.log_y = Some(true);
        assert!(!parse_svg(&with_zero.to_svg().unwrap()).has_text("loss (log scale)"));
        assert_eq!(short_scientific(1e6), "1e6");
        assert_eq!(short_scientific(3.16e5), "3.2e5");
    }

    #[test]
    fn empty_and_constant_series_still_draw() {
        let empty = LineChart::new("nothing yet").to_svg().unwrap();
        parse_svg(&empty);
        let flat = LineChart::new("flat").with_series("train", vec![(1.0, 2.0)]).to_svg().unwrap();
        assert!(parse_svg(&flat).has_text("train"));
    }

    #[test]
    fn tick_labels_are_short() {
        assert_eq!(tick_label(5.0), "5");
        assert_eq!(tick_label(-0.0), "0");
        assert_eq!(tick_label(0.25), "0.25");
        assert_eq!(tick_label(3.912_023), "3.912");
        assert_eq!(tick_label(0.000_123_4), "0.0001234");
        assert_eq!(tick_label(1234.5), "1234.5");
        assert_eq!(tick_label(0.1 + 0.2), "0.3");
        assert_eq!(fixed(-1e-17, 1), "0.0");
        assert_eq!(fixed(4.0, 1), "4.0");
        assert_eq!(fixed(-0.25, 2), "-0.25");
    }

    #[test]
    fn tiny_size_is_rejected() {
        let mut chart = LineChart::new("tiny");
        chart.size = (10, 10);
        assert!(matches!(chart.to_svg(), Err(ReportError::InvalidInput { .. })));
    }
}
