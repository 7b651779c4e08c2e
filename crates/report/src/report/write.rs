//! Writing the report to a directory: `report.html`, `report.md`, `report.json` (the report's
//! data, for diffing runs) and one `.svg` per plot. Each file is written through
//! [`reelvec_outfile::write_file`] (an `O_EXCL` temporary in the same directory renamed over the
//! target), so a reader never sees half a file and no symlink or device is replaced.

use std::fs;
use std::path::{Path, PathBuf};

use super::Report;
use crate::error::ReportError;

/// The files [`Report::write_to_dir`] wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct WrittenReport {
    pub html: PathBuf,
    pub markdown: PathBuf,
    pub json: PathBuf,
    pub plots: Vec<PathBuf>,
}

impl Report {
    /// Writes the report into `dir` (created if missing); see the module docs for the files.
    pub fn write_to_dir(&self, dir: &Path) -> Result<WrittenReport, ReportError> {
        reelvec_outfile::check_dir(dir)?;
        fs::create_dir_all(dir).map_err(|source| ReportError::io(dir, source))?;
        let mut plots = Vec::new();
        for (section, names) in self.sections.iter().zip(self.plot_file_names()) {
            for ((_, svg), name) in section.plots.iter().zip(names) {
                let path = dir.join(name);
                reelvec_outfile::write_file(&path, svg.as_bytes())?;
                plots.push(path);
            }
        }
        let json = dir.join("report.json");
        let data = serde_json::to_vec_pretty(self).map_err(|e| ReportError::io(&json, e.into()))?;
        reelvec_outfile::write_file(&json, &data)?;
        let markdown = dir.join("report.md");
        reelvec_outfile::write_file(&markdown, self.to_markdown().as_bytes())?;
        let html = dir.join("report.html");
        reelvec_outfile::write_file(&html, self.to_html().as_bytes())?;
        Ok(WrittenReport { html, markdown, json, plots })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Section;

    #[test]
    fn writes_every_file_and_round_trips_the_data() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("nested/report");
        let mut report = Report::new("r", "d");
        let mut section = Section::new("p1", "P1 — co-occurrence");
        section.push_plot("heatmap", "<svg width=\"2\"></svg>");
        section.push_figure("loss", "1.0", None);
        report.sections.push(section);
        let written = report.write_to_dir(&out).unwrap();
        assert_eq!(written.plots, vec![out.join("p1-1-heatmap.svg")]);
        assert_eq!(fs::read_to_string(&written.plots[0]).unwrap(), "<svg width=\"2\"></svg>");
        assert_eq!(fs::read_to_string(&written.html).unwrap(), report.to_html());
        assert_eq!(fs::read_to_string(&written.markdown).unwrap(), report.to_markdown());
        let back: Report = serde_json::from_slice(&fs::read(&written.json).unwrap()).unwrap();
        assert_eq!(back, report);
        // No temporary files are left behind.
        let mut names: Vec<String> = fs::read_dir(&out)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["p1-1-heatmap.svg", "report.html", "report.json", "report.md"]);
    }

    #[test]
    fn unwritable_directory_names_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("file");
        fs::write(&blocker, "x").unwrap();
        let err = Report::new("r", "d").write_to_dir(&blocker.join("sub")).unwrap_err();
        // The check names the file in the way, before anything is written.
        assert!(err.to_string().contains("file: is not a directory"), "{err}");
    }
}
