//! The report as Markdown (GitHub flavour): the same content as the HTML page, with each plot
//! linked as a sibling `.svg` file named by [`Report::plot_file_names`].

use std::fmt::Write as _;

use super::{format_seconds, Report, Section};

/// Escapes text for Markdown prose and table cells: backslash before Markdown punctuation,
/// entities for `<`, `>` and `&` (raw HTML passes through Markdown), newlines folded to spaces.
pub(crate) fn escape_markdown(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' | '`' | '*' | '_' | '[' | ']' | '|' | '#' | '~' => {
                out.push('\\');
                out.push(c);
            }
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '\n' | '\r' => out.push(' '),
            c if c.is_control() => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

fn push_table_row(out: &mut String, cells: impl IntoIterator<Item = String>) {
    out.push('|');
    for cell in cells {
        let _ = write!(out, " {} |", if cell.is_empty() { " ".to_owned() } else { cell });
    }
    out.push('\n');
}

fn push_table_head(out: &mut String, header: &[String]) {
    push_table_row(out, header.iter().map(|h| escape_markdown(h)));
    push_table_row(out, header.iter().map(|_| "---".to_owned()));
}

/// A Markdown table with a header row, every cell escaped (the renderer the reports and
/// reelvec-bench's `docs/benchmarks.md` share), followed by a blank line.
pub fn markdown_table<R, C>(header: &[&str], rows: R) -> String
where
    R: IntoIterator<Item = C>,
    C: IntoIterator<Item = String>,
{
    let mut out = String::new();
    push_table_head(&mut out, &header.iter().map(|h| h.to_string()).collect::<Vec<_>>());
    for row in rows {
        push_table_row(&mut out, row.into_iter().map(|c| escape_markdown(&c)));
    }
    out.push('\n');
    out
}

impl Report {
    /// The report as Markdown; plots are `![caption](<file>.svg)` links to the files
    /// [`Report::write_to_dir`] writes beside it.
    pub fn to_markdown(&self) -> String {
        let anchors = self.anchors();
        let files = self.plot_file_names();
        let mut out = String::with_capacity(16 * 1024);
        let _ = writeln!(out, "# {}\n", escape_markdown(&self.title));
        let _ = writeln!(out, "Generated {}\n", escape_markdown(&self.generated_at));
        if !self.dataset_summary.is_empty() {
            let _ = writeln!(out, "{}\n", escape_markdown(&self.dataset_summary));
        }
        if !self.sections.is_empty() {
            out.push_str("## Contents\n\n");
            for (i, (section, anchor)) in self.sections.iter().zip(&anchors).enumerate() {
                let _ = writeln!(out, "{}. [{}](#{anchor})", i + 1, escape_markdown(&section.title));
            }
            out.push('\n');
        }
        for ((section, anchor), files) in self.sections.iter().zip(&anchors).zip(&files) {
            write_section(&mut out, section, anchor, files);
        }
        out
    }
}

fn write_section(out: &mut String, section: &Section, anchor: &str, files: &[String]) {
    let _ = writeln!(out, "<a id=\"{anchor}\"></a>\n\n## {}\n", escape_markdown(&section.title));
    for note in &section.notes {
        let _ = writeln!(out, "{}\n", escape_markdown(note));
    }
    if !section.figures.is_empty() {
        out.push_str("### Figures: ours vs the notebook\n\n");
        push_table_head(out, &["Figure".into(), "Ours".into(), "Notebook".into()]);
        for figure in &section.figures {
            let notebook =
                figure.notebook.as_deref().map_or_else(|| "not reported".to_owned(), escape_markdown);
            push_table_row(out, [escape_markdown(&figure.name), escape_markdown(&figure.ours), notebook]);
        }
        out.push('\n');
    }
    if !section.config.is_empty() {
        out.push_str("### Configuration\n\n");
        push_table_head(out, &["Setting".into(), "Value".into()]);
        for (key, value) in &section.config {
            push_table_row(out, [escape_markdown(key), escape_markdown(value)]);
        }
        out.push('\n');
    }
    if !section.timings.is_empty() {
        out.push_str("### Timings\n\n");
        push_table_head(out, &["Step".into(), "Time".into()]);
        for (what, seconds) in &section.timings {
            push_table_row(out, [escape_markdown(what), escape_markdown(&format_seconds(*seconds))]);
        }
        out.push('\n');
    }
    for table in &section.tables {
        if !table.caption.is_empty() {
            let _ = writeln!(out, "**{}**\n", escape_markdown(&table.caption));
        }
        let width = table.rows.iter().map(Vec::len).chain([table.header.len()]).max().unwrap_or(0);
        if width == 0 {
            continue;
        }
        let mut header = table.header.clone();
        header.resize(width, String::new());
        push_table_head(out, &header);
        for row in &table.rows {
            let mut cells: Vec<String> = row.iter().map(|c| escape_markdown(c)).collect();
            cells.resize(width, String::new());
            push_table_row(out, cells);
        }
        out.push('\n');
    }
    if !section.plots.is_empty() {
        out.push_str("### Plots\n\n");
        for ((caption, _), file) in section.plots.iter().zip(files) {
            let caption = escape_markdown(caption);
            let _ = writeln!(out, "![{caption}]({file})\n\n*{caption}*\n");
        }
    }
    if !section.examples.is_empty() {
        out.push_str("### Examples\n\n");
        for example in &section.examples {
            let lines: Vec<String> = example.trim_end().lines().map(escape_markdown).collect();
            let _ = writeln!(out, "- {}", lines.join("<br>"));
        }
        out.push('\n');
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn markdown_table_escapes_every_cell() {
        let t = markdown_table(
            &["a|b", "c"],
            [vec!["x|y".to_string(), String::new()], vec!["*z*".into(), "1".into()]],
        );
        assert_eq!(t, "| a\\|b | c |\n| --- | --- |\n| x\\|y |   |\n| \\*z\\* | 1 |\n\n");
    }

    use super::*;
    use crate::report::{Section, Table};

    #[test]
    fn markdown_escaping_neutralises_markup() {
        assert_eq!(
            escape_markdown("a|b *c* _d_ [e](f) <g> & #h"),
            "a\\|b \\*c\\* \\_d\\_ \\[e\\](f) &lt;g&gt; &amp; \\#h"
        );
        assert_eq!(escape_markdown("two\nlines"), "two lines");
    }

    #[test]
    fn markdown_has_toc_tables_plot_links_and_examples() {
        let mut report = Report::new("reelvec | report", "ml-100k");
        report.generated_at = "2026-11-22 23:00:00 UTC".into();
        let mut section = Section::new("p0", "P0 — CBOW");
        section.push_figure("val loss", "5.01", Some("5.1"));
        section.push_figure("hit-rate@10", "0.12", None);
        section.push_config("k", 64);
        section.push_timing("train", 0.25);
        section.push_table(Table {
            caption: "Neighbours".into(),
            header: vec!["Movie".into()],
            rows: vec![vec!["Star Wars (1977)".into(), "0.93".into()]],
        });
        section.push_plot("Loss curves", "<svg></svg>");
        section.push_example("Star Wars (1977)\n-> Return of the Jedi (1983)");
        report.sections.push(section);
        let md = report.to_markdown();
        let expected = "\
# reelvec \\| report

Generated 2026-11-22 23:00:00 UTC

ml-100k

## Contents

1. [P0 — CBOW](#sec-1-p0)

<a id=\"sec-1-p0\"></a>

## P0 — CBOW

### Figures: ours vs the notebook

| Figure | Ours | Notebook |
| --- | --- | --- |
| val loss | 5.01 | 5.1 |
| hit-rate@10 | 0.12 | not reported |

### Configuration

| Setting | Value |
| --- | --- |
| k | 64 |

### Timings

| Step | Time |
| --- | --- |
| train | 250.0 ms |

**Neighbours**

| Movie |   |
| --- | --- |
| Star Wars (1977) | 0.93 |

### Plots

![Loss curves](p0-1-loss-curves.svg)

*Loss curves*

### Examples

- Star Wars (1977)<br>-&gt; Return of the Jedi (1983)

";
        assert_eq!(md, expected);
    }
}
