//! reelvec-report: plots and the pipeline report.
//!
//! - [`plots`]: SVG strings drawn with plotters — [`plots::LineChart`] (loss curves with a
//!   reference line), [`plots::Heatmap`] (cosine similarities, titles on both axes),
//!   [`plots::Scatter`] (a labelled 2-D map with overlap-free labels), [`plots::BarChart`].
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

mod error;
pub mod plots;

pub use error::ReportError;
