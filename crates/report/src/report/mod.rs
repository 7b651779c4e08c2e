//! The pipeline report: a [`Report`] of [`Section`]s (one per pipeline) holding configuration,
//! timings, the figures beside the notebook's, tables, plots and examples, rendered as one
//! self-contained HTML page ([`Report::to_html`]) and as Markdown with the plots as sibling SVG
//! files ([`Report::to_markdown`]); [`Report::write_to_dir`] writes both atomically.
//!
//! Everything here is plain data (serde), so the pipeline driver fills it in and this module only
//! lays it out. Text is escaped where it is written; SVG plots are inserted verbatim (they are
//! documents we drew, see [`crate::plots`]).

mod html;
mod markdown;
mod write;

pub use markdown::markdown_table;
pub use write::WrittenReport;

use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// The whole report.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub title: String,
    /// When the report was made, as shown ("2026-11-22 23:40:00 UTC", see [`utc_timestamp`]).
    pub generated_at: String,
    /// One paragraph about the data ("ml-100k: 100,000 ratings, 943 users, 1,682 movies").
    pub dataset_summary: String,
    pub sections: Vec<Section>,
}

/// One pipeline's results.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Section {
    /// Short identifier used for anchors and file names ("p2").
    pub id: String,
    /// Heading ("P2 — biased MF").
    pub title: String,
    /// Free paragraphs shown under the heading (what was run, caveats).
    #[serde(default)]
    pub notes: Vec<String>,
    /// The protocol's configuration, (key, value) in display order.
    pub config: Vec<(String, String)>,
    /// Wall-clock timings, (what, seconds).
    pub timings: Vec<(String, f64)>,
    /// Our figures beside the notebook's.
    pub figures: Vec<Figure>,
    pub tables: Vec<Table>,
    /// (caption, SVG document) pairs.
    pub plots: Vec<(String, String)>,
    /// Worked examples (nearest neighbours, middle movies); may span several lines.
    pub examples: Vec<String>,
}

/// One figure: our value and, when the notebook reported one, the notebook's.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Figure {
    pub name: String,
    pub ours: String,
    pub notebook: Option<String>,
}

/// A table of text cells.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Table {
    pub caption: String,
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl Report {
    /// An empty report stamped with the current time.
    pub fn new(title: impl Into<String>, dataset_summary: impl Into<String>) -> Self {
        Report {
            title: title.into(),
            generated_at: utc_timestamp(SystemTime::now()),
            dataset_summary: dataset_summary.into(),
            sections: Vec::new(),
        }
    }

    /// Number of plots in all sections that are SVG documents (the ones the HTML embeds).
    pub fn plot_count(&self) -> usize {
        self.sections.iter().flat_map(|s| &s.plots).filter(|(_, svg)| svg_body(svg).is_some()).count()
    }

    /// File name of every plot, per section, as `write_to_dir` writes them and the Markdown
    /// links them: `<section id>-<n>-<caption slug>.svg`, made unique.
    pub fn plot_file_names(&self) -> Vec<Vec<String>> {
        let mut used = std::collections::HashSet::new();
        self.sections
            .iter()
            .enumerate()
            .map(|(s, section)| {
                let id = match slug(&section.id, 24) {
                    id if id.is_empty() => format!("section{}", s + 1),
                    id => id,
                };
                section
                    .plots
                    .iter()
                    .enumerate()
                    .map(|(p, (caption, _))| {
                        let caption = slug(caption, 40);
                        let stem = if caption.is_empty() {
                            format!("{id}-{}", p + 1)
                        } else {
                            format!("{id}-{}-{caption}", p + 1)
                        };
                        let mut name = format!("{stem}.svg");
                        let mut k = 2;
                        while !used.insert(name.clone()) {
                            name = format!("{stem}-{k}.svg");
                            k += 1;
                        }
                        name
                    })
                    .collect()
            })
            .collect()
    }

    /// Anchor of each section in the HTML page and the Markdown (`sec-<n>-<id slug>`).
    pub(crate) fn anchors(&self) -> Vec<String> {
        self.sections.iter().enumerate().map(|(i, s)| format!("sec-{}-{}", i + 1, slug(&s.id, 24))).collect()
    }
}

impl Section {
    pub fn new(id: impl Into<String>, title: impl Into<String>) -> Self {
        Section { id: id.into(), title: title.into(), ..Section::default() }
    }

    pub fn push_note(&mut self, note: impl Into<String>) {
        self.notes.push(note.into());
    }

    pub fn push_config(&mut self, key: impl Into<String>, value: impl ToString) {
        self.config.push((key.into(), value.to_string()));
    }

    pub fn push_timing(&mut self, what: impl Into<String>, seconds: f64) {
        self.timings.push((what.into(), seconds));
    }

    pub fn push_figure(&mut self, name: impl Into<String>, ours: impl Into<String>, notebook: Option<&str>) {
        self.figures.push(Figure {
            name: name.into(),
            ours: ours.into(),
            notebook: notebook.map(str::to_owned),
        });
    }

    pub fn push_table(&mut self, table: Table) {
        self.tables.push(table);
    }

    pub fn push_plot(&mut self, caption: impl Into<String>, svg: impl Into<String>) {
        self.plots.push((caption.into(), svg.into()));
    }

    pub fn push_example(&mut self, example: impl Into<String>) {
        self.examples.push(example.into());
    }
}

/// The `<svg ...>...</svg>` element of an SVG document, without an XML declaration, doctype or
/// comments before it; `None` when the text is not an SVG document.
pub(crate) fn svg_body(svg: &str) -> Option<&str> {
    let mut rest = svg.trim_start_matches('\u{FEFF}').trim_start();
    loop {
        if rest.starts_with("<?") {
            rest = rest[rest.find("?>")? + 2..].trim_start();
        } else if rest.starts_with("<!--") {
            rest = rest[rest.find("-->")? + 3..].trim_start();
        } else if rest.starts_with("<!") {
            rest = rest[rest.find('>')? + 1..].trim_start();
        } else {
            break;
        }
    }
    let is_svg = rest.starts_with("<svg") && rest[4..].starts_with(|c: char| c.is_whitespace() || c == '>');
    (is_svg && rest.trim_end().ends_with("</svg>")).then(|| rest.trim_end())
}

/// Lower-case ASCII letters and digits, other runs turned into one `-`, at most `max` bytes.
pub(crate) fn slug(text: &str, max: usize) -> String {
    let mut out = String::new();
    for c in text.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    out.truncate(max);
    out.trim_end_matches('-').to_owned()
}

/// Seconds as people read them: "850 µs", "12.3 ms", "4.56 s", "2 min 05.3 s".
pub fn format_seconds(seconds: f64) -> String {
    if !seconds.is_finite() || seconds < 0.0 {
        return format!("{seconds}");
    }
    if seconds < 1e-3 {
        format!("{:.0} µs", seconds * 1e6)
    } else if seconds < 1.0 {
        format!("{:.1} ms", seconds * 1e3)
    } else if seconds < 60.0 {
        format!("{seconds:.2} s")
    } else {
        let minutes = (seconds / 60.0).floor();
        format!("{minutes:.0} min {:04.1} s", seconds - minutes * 60.0)
    }
}

/// A UTC time as "YYYY-MM-DD HH:MM:SS UTC" (times before 1970 show as the epoch).
pub fn utc_timestamp(time: SystemTime) -> String {
    let secs = time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days as i64);
    format!("{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// Proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's `civil_from_days`:
/// shift to eras of 400 years starting 0000-03-01, so leap days fall at the end of a year).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // day of era, [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // year of era, [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // day of year from March 1st, [0, 365]
    let mp = (5 * doy + 2) / 153; // month from March, [0, 11]
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timestamps_match_known_dates() {
        let at = |s: u64| utc_timestamp(UNIX_EPOCH + Duration::from_secs(s));
        assert_eq!(at(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(at(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(at(1_700_000_000), "2023-11-14 22:13:20 UTC");
        assert_eq!(at(4_107_542_399), "2100-02-28 23:59:59 UTC");
        assert_eq!(at(4_107_542_400), "2100-03-01 00:00:00 UTC");
    }

    #[test]
    fn seconds_are_formatted_by_magnitude() {
        assert_eq!(format_seconds(0.000_85), "850 µs");
        assert_eq!(format_seconds(0.0123), "12.3 ms");
        assert_eq!(format_seconds(4.561), "4.56 s");
        assert_eq!(format_seconds(125.3), "2 min 05.3 s");
    }

    #[test]
    fn slugs_are_ascii_and_bounded() {
        assert_eq!(slug("P2 — biased MF", 40), "p2-biased-mf");
        assert_eq!(slug("Loss & <val> curves!", 40), "loss-val-curves");
        assert_eq!(slug("Amélie", 40), "am-lie");
        assert_eq!(slug("a b c d e f", 5), "a-b-c");
        assert_eq!(slug("—", 5), "");
    }

    #[test]
    fn svg_body_strips_prolog_and_rejects_other_text() {
        let doc = "<?xml version=\"1.0\"?>\n<!DOCTYPE svg>\n<!-- made -->\n<svg width=\"1\"></svg>\n";
        assert_eq!(svg_body(doc), Some("<svg width=\"1\"></svg>"));
        assert_eq!(svg_body("<svg></svg>"), Some("<svg></svg>"));
        assert_eq!(svg_body("<svgx></svgx>"), None);
        assert_eq!(svg_body("<p>not a plot</p>"), None);
        assert_eq!(svg_body("<svg width=\"1\">"), None);
    }

    #[test]
    fn plot_file_names_are_unique_and_safe() {
        let mut report = Report::new("r", "d");
        let mut p0 = Section::new("P0", "P0 — CBOW");
        p0.push_plot("Loss curves", "<svg></svg>");
        p0.push_plot("Loss curves", "<svg></svg>");
        p0.push_plot("—", "<svg></svg>");
        let mut other = Section::new("", "untitled");
        other.push_plot("../../etc/passwd", "<svg></svg>");
        report.sections = vec![p0, other];
        assert_eq!(
            report.plot_file_names(),
            vec![
                vec!["p0-1-loss-curves.svg", "p0-2-loss-curves.svg", "p0-3.svg"],
                vec!["section2-1-etc-passwd.svg"]
            ]
        );
        assert_eq!(report.plot_count(), 4);
    }
}
