//! The report as one self-contained HTML page: inline CSS, inline SVG, no scripts, no fonts or
//! images from anywhere; a Content-Security-Policy forbids every fetch so the page cannot reach
//! the network even by mistake. `<body data-plots="N">` says how many plots are embedded (the
//! browser test counts the `<svg>` elements against it).

use std::fmt::Write as _;

use super::{format_seconds, svg_body, Report, Section};

/// Escapes text for HTML element content and quoted attribute values.
pub(crate) fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() && c != '\n' && c != '\t' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = r#"
:root { color-scheme: light; --ink: #222; --muted: #666; --line: #ddd; --band: #f6f7f9; --accent: #0072b2; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif;
  color: var(--ink); background: #fff; }
header, main, nav.toc { max-width: 1100px; margin: 0 auto; padding: 0 24px; }
header { padding-top: 28px; }
h1 { font-size: 28px; margin: 0 0 4px; }
h2 { font-size: 22px; margin: 40px 0 8px; padding-top: 12px; border-top: 2px solid var(--line); }
h3 { font-size: 16px; margin: 22px 0 6px; color: #333; }
p.meta { color: var(--muted); margin: 0 0 8px; }
p.dataset { background: var(--band); padding: 10px 14px; border-radius: 6px; }
nav.toc ol { columns: 2; column-gap: 32px; padding-left: 20px; }
nav.toc a { color: var(--accent); text-decoration: none; }
nav.toc a:hover { text-decoration: underline; }
table { border-collapse: collapse; margin: 6px 0 14px; font-size: 14px; }
caption { caption-side: top; text-align: left; font-weight: 600; padding: 4px 0; }
th, td { border: 1px solid var(--line); padding: 4px 10px; text-align: left; vertical-align: top; }
th { background: var(--band); font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.missing { color: var(--muted); }
table.figures td:nth-child(2) { font-weight: 600; }
.grid { display: flex; flex-wrap: wrap; gap: 8px 40px; align-items: flex-start; }
figure.plot { margin: 12px 0 24px; }
figure.plot svg { display: block; max-width: 100%; height: auto; border: 1px solid var(--line); border-radius: 4px; }
figcaption { color: var(--muted); font-size: 14px; margin-top: 4px; }
p.bad-plot { color: #b00; }
ul.examples { padding-left: 20px; }
ul.examples li { white-space: pre-wrap; font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: 13px;
  margin-bottom: 6px; }
footer { max-width: 1100px; margin: 40px auto 24px; padding: 0 24px; color: var(--muted); font-size: 13px; }
"#;

impl Report {
    /// The report as a self-contained HTML page.
    pub fn to_html(&self) -> String {
        let anchors = self.anchors();
        let mut out = String::with_capacity(64 * 1024);
        let title = escape_html(&self.title);
        let _ = write!(
            out,
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
             <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\n\
             <title>{title}</title>\n<style>{STYLE}</style>\n</head>\n\
             <body data-plots=\"{}\" data-sections=\"{}\">\n<header>\n<h1>{title}</h1>\n\
             <p class=\"meta\">Generated {}</p>\n",
            self.plot_count(),
            self.sections.len(),
            escape_html(&self.generated_at),
        );
        if !self.dataset_summary.is_empty() {
            let _ = writeln!(out, "<p class=\"dataset\">{}</p>", escape_html(&self.dataset_summary));
        }
        out.push_str("</header>\n");
        if !self.sections.is_empty() {
            out.push_str("<nav class=\"toc\" aria-label=\"Contents\">\n<h2>Contents</h2>\n<ol>\n");
            for (section, anchor) in self.sections.iter().zip(&anchors) {
                let _ = writeln!(out, "<li><a href=\"#{anchor}\">{}</a></li>", escape_html(&section.title));
            }
            out.push_str("</ol>\n</nav>\n");
        }
        out.push_str("<main>\n");
        for (section, anchor) in self.sections.iter().zip(&anchors) {
            write_section(&mut out, section, anchor);
        }
        out.push_str("</main>\n<footer>Made by reelvec. Self-contained: no scripts, no network.</footer>\n");
        out.push_str("</body>\n</html>\n");
        out
    }
}

fn write_section(out: &mut String, section: &Section, anchor: &str) {
    let _ = writeln!(out, "<section id=\"{anchor}\">\n<h2>{}</h2>", escape_html(&section.title));
    for note in &section.notes {
        let _ = writeln!(out, "<p>{}</p>", escape_html(note));
    }
    if !section.figures.is_empty() {
        out.push_str("<h3>Figures: ours vs the notebook</h3>\n<table class=\"figures\">\n");
        out.push_str("<thead><tr><th>Figure</th><th>Ours</th><th>Notebook</th></tr></thead>\n<tbody>\n");
        for figure in &section.figures {
            let notebook = match &figure.notebook {
                Some(value) => format!("<td class=\"num\">{}</td>", escape_html(value)),
                None => "<td class=\"missing\">not reported</td>".to_owned(),
            };
            let _ = writeln!(
                out,
                "<tr><td>{}</td><td class=\"num\">{}</td>{notebook}</tr>",
                escape_html(&figure.name),
                escape_html(&figure.ours)
            );
        }
        out.push_str("</tbody>\n</table>\n");
    }
    if !section.config.is_empty() || !section.timings.is_empty() {
        out.push_str("<div class=\"grid\">\n");
        if !section.config.is_empty() {
            out.push_str("<div>\n<h3>Configuration</h3>\n<table class=\"config\">\n<tbody>\n");
            for (key, value) in &section.config {
                let _ = writeln!(
                    out,
                    "<tr><th scope=\"row\">{}</th><td>{}</td></tr>",
                    escape_html(key),
                    escape_html(value)
                );
            }
            out.push_str("</tbody>\n</table>\n</div>\n");
        }
        if !section.timings.is_empty() {
            out.push_str("<div>\n<h3>Timings</h3>\n<table class=\"timings\">\n<tbody>\n");
            for (what, seconds) in &section.timings {
                let _ = writeln!(
                    out,
                    "<tr><th scope=\"row\">{}</th><td class=\"num\">{}</td></tr>",
                    escape_html(what),
                    escape_html(&format_seconds(*seconds))
                );
            }
            out.push_str("</tbody>\n</table>\n</div>\n");
        }
        out.push_str("</div>\n");
    }
    for table in &section.tables {
        out.push_str("<table class=\"data\">\n");
        if !table.caption.is_empty() {
            let _ = writeln!(out, "<caption>{}</caption>", escape_html(&table.caption));
        }
        if !table.header.is_empty() {
            out.push_str("<thead><tr>");
            for cell in &table.header {
                let _ = write!(out, "<th>{}</th>", escape_html(cell));
            }
            out.push_str("</tr></thead>\n");
        }
        out.push_str("<tbody>\n");
        for row in &table.rows {
            out.push_str("<tr>");
            for cell in row {
                let class = if looks_numeric(cell) { " class=\"num\"" } else { "" };
                let _ = write!(out, "<td{class}>{}</td>", escape_html(cell));
            }
            out.push_str("</tr>\n");
        }
        out.push_str("</tbody>\n</table>\n");
    }
    if !section.plots.is_empty() {
        out.push_str("<h3>Plots</h3>\n");
        for (caption, svg) in &section.plots {
            let caption = escape_html(caption);
            match svg_body(svg) {
                Some(body) => {
                    let _ = writeln!(
                        out,
                        "<figure class=\"plot\">\n{body}\n<figcaption>{caption}</figcaption>\n</figure>"
                    );
                }
                None => {
                    let _ =
                        writeln!(out, "<p class=\"bad-plot\">Plot “{caption}” is not an SVG document.</p>");
                }
            }
        }
    }
    if !section.examples.is_empty() {
        out.push_str("<h3>Examples</h3>\n<ul class=\"examples\">\n");
        for example in &section.examples {
            let _ = writeln!(out, "<li>{}</li>", escape_html(example.trim_end()));
        }
        out.push_str("</ul>\n");
    }
    out.push_str("</section>\n");
}

/// Whether a cell reads as a number ("0.912", "-3", "1,682", "12.5%", "4.56 s") and should be
/// right-aligned.
fn looks_numeric(cell: &str) -> bool {
    let cell = cell.trim();
    let number = cell.trim_end_matches(|c: char| c == '%' || c.is_alphabetic() || c == ' ' || c == 'µ');
    !number.is_empty()
        && number.starts_with(|c: char| c.is_ascii_digit() || c == '-' || c == '+' || c == '.')
        && number.chars().all(|c| c.is_ascii_digit() || ".,-+eE".contains(c))
        && number.chars().any(|c| c.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{Section, Table};

    #[test]
    fn escape_html_handles_markup_quotes_and_controls() {
        assert_eq!(
            escape_html("a & b < c > d \"e\" 'f'"),
            "a &amp; b &lt; c &gt; d &quot;e&quot; &#39;f&#39;"
        );
        assert_eq!(escape_html("é\u{0}\n"), "é\u{FFFD}\n");
    }

    #[test]
    fn numeric_cells_are_recognised() {
        for cell in ["0.912", "-3", "1,682", "12.5%", "4.56 s", "850 µs", "1e-3"] {
            assert!(looks_numeric(cell), "{cell}");
        }
        for cell in ["Star Wars", "", "-", "P2", "n/a"] {
            assert!(!looks_numeric(cell), "{cell}");
        }
    }

    fn sample() -> Report {
        let mut report = Report::new("reelvec <report> & co", "ml-100k: 100,000 ratings");
        let mut section = Section::new("p2", "P2 — biased MF");
        section.push_note("Notebook: \"lesson 4\" <fastai>");
        section.push_config("lr", 5e-3);
        section.push_timing("train", 12.5);
        section.push_figure("val RMSE", "0.912", Some("0.89"));
        section.push_figure("train loss", "0.71", None);
        section.push_table(Table {
            caption: "Best & worst".into(),
            header: vec!["Movie".into(), "Bias".into()],
            rows: vec![vec!["Schindler's List (1993)".into(), "0.41".into()]],
        });
        section.push_plot(
            "Loss <curves>",
            "<?xml version=\"1.0\"?><svg viewBox=\"0 0 1 1\"><text>x</text></svg>",
        );
        section.push_plot("broken", "<p>nope</p>");
        section
            .push_example("Star Wars (1977) -> Return of the Jedi (1983)\n  Empire Strikes Back, The (1980)");
        report.sections.push(section);
        report
    }

    #[test]
    fn html_escapes_text_embeds_svg_and_links_sections() {
        let html = sample().to_html();
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert!(html.contains("<title>reelvec &lt;report&gt; &amp; co</title>"));
        assert!(html.contains("<body data-plots=\"1\" data-sections=\"1\">"));
        assert!(html.contains("<a href=\"#sec-1-p2\">P2 — biased MF</a>"));
        assert!(html.contains("<section id=\"sec-1-p2\">"));
        assert!(html.contains("<p>Notebook: &quot;lesson 4&quot; &lt;fastai&gt;</p>"));
        assert!(html
            .contains("<tr><td>val RMSE</td><td class=\"num\">0.912</td><td class=\"num\">0.89</td></tr>"));
        assert!(html.contains("<td class=\"missing\">not reported</td>"));
        assert!(html.contains("<th scope=\"row\">lr</th><td>0.005</td>"));
        assert!(html.contains("<td class=\"num\">12.50 s</td>"));
        assert!(html.contains("<caption>Best &amp; worst</caption>"));
        assert!(html.contains("<td>Schindler&#39;s List (1993)</td><td class=\"num\">0.41</td>"));
        assert!(html.contains(
            "<svg viewBox=\"0 0 1 1\"><text>x</text></svg>\n<figcaption>Loss &lt;curves&gt;</figcaption>"
        ));
        assert!(!html.contains("<?xml"));
        assert!(html.contains("Plot “broken” is not an SVG document."));
        assert!(html.contains(
            "<li>Star Wars (1977) -&gt; Return of the Jedi (1983)\n  Empire Strikes Back, The (1980)</li>"
        ));
        // Self-contained: nothing is fetched.
        assert!(!html.contains("<script"));
        assert!(!html.contains("http://") && !html.contains("https://"));
        assert!(!html.contains("<link"));
        assert!(!html.contains("url("));
    }

    #[test]
    fn html_tags_balance() {
        let html = sample().to_html();
        for tag in
            ["section", "table", "tr", "td", "th", "figure", "ul", "li", "p", "div", "nav", "ol", "main"]
        {
            let opens = html.matches(&format!("<{tag}>")).count() + html.matches(&format!("<{tag} ")).count();
            let closes = html.matches(&format!("</{tag}>")).count();
            assert_eq!(opens, closes, "<{tag}> opened {opens} times, closed {closes}");
        }
    }
}
