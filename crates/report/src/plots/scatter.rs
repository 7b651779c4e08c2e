//! A labelled 2-D map (PCA or t-SNE coordinates of movie vectors): one marker per movie and its
//! shortened title placed where it overlaps nothing (see [`super::labels::place_labels`]).

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, VPos};

use super::labels::{clean_text, place_labels, shorten_title, text_width, PlacedLabel, Rect};
use super::{anchored, font, padded_range, INK, PALETTE};
use crate::error::ReportError;

/// One point and its (full) title.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LabelledPoint {
    pub x: f64,
    pub y: f64,
    pub label: String,
}

/// A scatter plot with a label per point. Labels are placed in the order of `points`: put the
/// movies that matter most first (most rated, best rated); those that find no room are left out
/// and the plot says how many.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Scatter {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub points: Vec<LabelledPoint>,
    /// Unlabelled context points (the rest of the catalogue), drawn small and grey under the
    /// labelled ones; labels may cover them.
    #[serde(default)]
    pub background: Vec<(f64, f64)>,
    /// Width and height in pixels.
    pub size: (u32, u32),
    pub max_label_chars: usize,
}

/// Where things went in a drawn scatter plot (pixel space), for tests and callers that annotate.
#[derive(Debug, Clone, PartialEq)]
pub struct ScatterLayout {
    /// Marker centres, one per input point (NaN for a skipped non-finite point).
    pub markers: Vec<(f64, f64)>,
    /// The shortened label of each point.
    pub texts: Vec<String>,
    /// Where each label went, `None` when it was left out.
    pub labels: Vec<Option<PlacedLabel>>,
    /// The plotting area labels were kept inside.
    pub bounds: Rect,
}

impl ScatterLayout {
    /// How many labels were left out for lack of room (or because their point was not finite).
    pub fn omitted(&self) -> usize {
        self.labels.iter().filter(|l| l.is_none()).count()
    }
}

/// Marker radius in pixels.
const MARKER: f64 = 3.5;
/// Label font size in pixels.
const LABEL_PX: f64 = 11.0;

impl Scatter {
    /// A 900 x 640 map titled `title` with axes "component 1" / "component 2".
    pub fn new(title: impl Into<String>, points: Vec<LabelledPoint>) -> Self {
        Scatter {
            title: title.into(),
            x_label: "component 1".to_owned(),
            y_label: "component 2".to_owned(),
            points,
            background: Vec::new(),
            size: (900, 640),
            max_label_chars: 24,
        }
    }

    /// Sets the axis titles.
    pub fn with_axes(mut self, x_label: impl Into<String>, y_label: impl Into<String>) -> Self {
        self.x_label = x_label.into();
        self.y_label = y_label.into();
        self
    }

    /// Sets the unlabelled context points.
    pub fn with_background(mut self, background: Vec<(f64, f64)>) -> Self {
        self.background = background;
        self
    }

    /// Draws the plot as an SVG document.
    pub fn to_svg(&self) -> Result<String, ReportError> {
        self.render().map(|(svg, _)| svg)
    }

    /// Draws the plot and returns where every marker and label went.
    pub fn render(&self) -> Result<(String, ScatterLayout), ReportError> {
        let plot = self.title.as_str();
        let err = |e| ReportError::draw(plot, e);
        if self.size.0 < 300 || self.size.1 < 200 {
            return Err(ReportError::invalid(plot, format!("size {:?} is below 300 x 200", self.size)));
        }
        let finite = |p: &&LabelledPoint| p.x.is_finite() && p.y.is_finite();
        let background = || self.background.iter().filter(|(x, y)| x.is_finite() && y.is_finite());
        let xs = self.points.iter().filter(finite).map(|p| p.x).chain(background().map(|p| p.0));
        let (x_lo, x_hi) = padded_range(xs, 0.08);
        let ys = self.points.iter().filter(finite).map(|p| p.y).chain(background().map(|p| p.1));
        let (y_lo, y_hi) = padded_range(ys, 0.08);
        let texts: Vec<String> =
            self.points.iter().map(|p| shorten_title(&p.label, self.max_label_chars)).collect();

        let mut svg = String::new();
        let layout;
        {
            let root = SVGBackend::with_string(&mut svg, self.size).into_drawing_area();
            root.fill(&WHITE).map_err(err)?;
            let mut chart = ChartBuilder::on(&root)
                .caption(clean_text(&self.title), font(17.0))
                .margin(14)
                .x_label_area_size(40)
                .y_label_area_size(56)
                .build_cartesian_2d(x_lo..x_hi, y_lo..y_hi)
                .map_err(err)?;
            chart
                .configure_mesh()
                .x_desc(clean_text(&self.x_label))
                .y_desc(clean_text(&self.y_label))
                .axis_desc_style(font(13.0))
                .label_style(font(11.0))
                .light_line_style(RGBColor(242, 242, 242))
                .bold_line_style(RGBColor(222, 222, 222))
                .axis_style(INK)
                .draw()
                .map_err(err)?;

            let (x_pixels, y_pixels) = chart.plotting_area().get_pixel_range();
            let bounds = Rect {
                x0: f64::from(x_pixels.start),
                y0: f64::from(y_pixels.start),
                x1: f64::from(x_pixels.end),
                y1: f64::from(y_pixels.end),
            };
            let markers: Vec<(f64, f64)> = self
                .points
                .iter()
                .map(|p| {
                    if finite(&p) {
                        let (x, y) = chart.backend_coord(&(p.x, p.y));
                        (f64::from(x), f64::from(y))
                    } else {
                        (f64::NAN, f64::NAN)
                    }
                })
                .collect();
            // Non-finite points get a zero-size label far outside the bounds: never placed.
            let sizes: Vec<(f64, f64)> = texts
                .iter()
                .zip(&markers)
                .map(|(t, m)| {
                    if m.0.is_finite() {
                        (text_width(t, LABEL_PX) + 2.0, LABEL_PX * 1.2)
                    } else {
                        (0.0, 0.0)
                    }
                })
                .collect();
            let anchors: Vec<(f64, f64)> =
                markers.iter().map(|&(x, y)| if x.is_finite() { (x, y) } else { (-1e9, -1e9) }).collect();
            let labels = place_labels(&anchors, &sizes, MARKER, bounds);

            chart
                .draw_series(background().map(|&p| Circle::new(p, 2, RGBColor(190, 190, 190).filled())))
                .map_err(err)?;
            let colour = PALETTE[0];
            chart
                .draw_series(
                    self.points
                        .iter()
                        .filter(finite)
                        .map(|p| Circle::new((p.x, p.y), MARKER as i32, colour.mix(0.85).filled())),
                )
                .map_err(err)?;
            let px = |v: f64| v.round() as i32;
            for (label, &(mx, my)) in labels.iter().zip(&markers) {
                if let Some(PlacedLabel { rect, leader: true }) = label {
                    let (ex, ey) = rect.nearest_point(mx, my);
                    root.draw(&PathElement::new(
                        vec![(px(mx), px(my)), (px(ex), px(ey))],
                        RGBColor(120, 120, 120).stroke_width(1),
                    ))
                    .map_err(err)?;
                }
            }
            for (label, text) in labels.iter().zip(&texts) {
                if let Some(PlacedLabel { rect, .. }) = label {
                    root.draw(&Rectangle::new(
                        [(px(rect.x0), px(rect.y0)), (px(rect.x1), px(rect.y1))],
                        WHITE.mix(0.7).filled(),
                    ))
                    .map_err(err)?;
                    root.draw(&Text::new(
                        text.as_str(),
                        (px(rect.x0) + 1, px(rect.y0) + 1),
                        anchored(LABEL_PX, HPos::Left, VPos::Top),
                    ))
                    .map_err(err)?;
                }
            }
            layout = ScatterLayout { markers, texts, labels, bounds };
            let omitted = layout.omitted();
            if omitted > 0 {
                let note = format!("{omitted} of {} labels left out (no room)", self.points.len());
                root.draw(&Text::new(
                    note,
                    (self.size.0 as i32 - 14, self.size.1 as i32 - 6),
                    anchored(10.0, HPos::Right, VPos::Bottom).color(&RGBColor(110, 110, 110)),
                ))
                .map_err(err)?;
            }
            root.present().map_err(err)?;
        }
        Ok((svg, layout))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plots::test_support::parse_svg;

    fn point(x: f64, y: f64, label: &str) -> LabelledPoint {
        LabelledPoint { x, y, label: label.to_owned() }
    }

    #[test]
    fn sparse_points_get_every_label_shortened_and_escaped() {
        let points = vec![
            point(0.0, 0.0, "Star Wars (1977)"),
            point(1.0, 1.0, "Godfather, The (1972)"),
            point(-1.0, 0.5, "Rock & Roll <High School> \"Forever\" (1979)"),
            point(0.5, -1.0, "Amélie (Le fabuleux destin d'Amélie Poulain) (2001)"),
        ];
        let (svg, layout) = Scatter::new("t-SNE — P2 & friends", points).render().unwrap();
        let summary = parse_svg(&svg);
        for label in ["Star Wars", "Godfather", "Rock & Roll <High…", "Amélie"] {
            assert!(summary.has_text(label), "{label} missing from {:?}", summary.texts);
        }
        assert!(summary.has_text("t-SNE — P2 & friends"));
        assert_eq!(layout.omitted(), 0);
        assert!(layout.labels.iter().flatten().all(|l| !l.leader));
    }

    #[test]
    fn crowded_plot_has_no_overlapping_labels() {
        // 40 movies, half of them piled into a small cluster.
        let points: Vec<LabelledPoint> = (0..40)
            .map(|i| {
                let (x, y) = if i % 2 == 0 {
                    (0.02 * (i % 7) as f64, 0.03 * (i % 5) as f64)
                } else {
                    ((i as f64 * 0.7).sin() * 3.0, (i as f64 * 1.3).cos() * 2.0)
                };
                point(x, y, &format!("Movie With A Long Title {i} (1990)"))
            })
            .collect();
        let (svg, layout) = Scatter::new("crowded", points).render().unwrap();
        let summary = parse_svg(&svg);
        let placed: Vec<(usize, Rect)> =
            layout.labels.iter().enumerate().filter_map(|(i, l)| l.map(|l| (i, l.rect))).collect();
        for (k, (i, a)) in placed.iter().enumerate() {
            assert!(a.inside(&layout.bounds));
            assert!(summary.has_text(&layout.texts[*i]));
            for (j, b) in &placed[k + 1..] {
                assert!(!a.overlaps(b), "labels {i} and {j} overlap");
            }
            for &(x, y) in &layout.markers {
                assert!(!a.overlaps(&Rect::around(x, y, MARKER)));
            }
        }
        // Every label left out is reported; every placed one is drawn exactly once.
        assert!(placed.len() >= 25, "only {} placed", placed.len());
        if layout.omitted() > 0 {
            assert!(summary.has_text(&format!("{} of 40 labels left out (no room)", layout.omitted())));
        }
        let drawn = summary.texts.iter().filter(|t| t.starts_with("Movie With A Long Title")).count();
        assert_eq!(drawn, placed.len());
    }

    #[test]
    fn background_points_widen_the_axes_and_stay_unlabelled() {
        let points = vec![point(0.0, 0.0, "only label")];
        let plot = Scatter::new("bg", points).with_background(vec![(10.0, -10.0), (f64::NAN, 0.0)]);
        let (svg, layout) = plot.render().unwrap();
        let summary = parse_svg(&svg);
        assert_eq!(summary.texts.iter().filter(|t| *t == "only label").count(), 1);
        // The axes reach the background point at x = 10 (ticks go past 9).
        assert!(
            summary.texts.iter().any(|t| t.parse::<f64>().is_ok_and(|v| v >= 9.0)),
            "{:?}",
            summary.texts
        );
        assert_eq!(layout.omitted(), 0);
        assert_eq!(svg.matches("<circle").count(), 2);
    }

    #[test]
    fn non_finite_points_are_skipped() {
        let points = vec![point(0.0, 0.0, "kept"), point(f64::NAN, 1.0, "dropped")];
        let (svg, layout) = Scatter::new("nan", points).render().unwrap();
        let summary = parse_svg(&svg);
        assert!(summary.has_text("kept"));
        assert!(!summary.has_text("dropped"));
        assert_eq!(layout.omitted(), 1);
    }
}
