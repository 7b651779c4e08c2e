//! reelvec-report: plots and the pipeline report.
//!
//! - [`plots`]: SVG strings drawn with plotters — [`plots::LineChart`] (loss curves with a
//!   reference line), [`plots::Heatmap`] (cosine similarities, titles on both axes),
//!   [`plots::Scatter`] (a labelled 2-D map with overlap-free labels), [`plots::BarChart`].
//! - [`browser`]: headless Chromium for the render tests (find it, dump a page's DOM under a
//!   time limit, pick console messages out of its log).
//! - [`report`]: [`Report`] / [`Section`] — configuration, timings, our figures beside the
//!   notebook's, tables, plots, examples — rendered as self-contained HTML and as Markdown, and
//!   written atomically with [`Report::write_to_dir`].
//!
//! The crate takes plain data (strings, numbers) and depends on no other reelvec crate: it
//! neither trains nor computes metrics.
//!
//! ```
//! use reelvec_report::plots::LineChart;
//! let svg = LineChart::new("loss").with_series("train", vec![(1.0, 2.0), (2.0, 1.5)]).to_svg().unwrap();
//! assert!(svg.starts_with("<svg"));
//! ```

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod browser;
pub mod demo;
mod error;
pub mod plots;
pub mod report;

pub use error::ReportError;
pub use report::{markdown_table, Figure, Report, Section, Table, WrittenReport};
