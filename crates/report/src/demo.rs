//! A report filled with made-up numbers, one section per pipeline and every kind of plot, with
//! titles full of characters that need escaping. Used by the browser rendering test and the
//! `sample_report` example; never by the pipelines.

use crate::plots::{Bar, BarChart, Heatmap, LabelledPoint, LineChart, Scatter};
use crate::report::{Report, Section, Table};
use crate::ReportError;

/// Movie titles in MovieLens spelling, some awkward on purpose.
const TITLES: [&str; 16] = [
    "Star Wars (1977)",
    "Godfather, The (1972)",
    "Rock & Roll High School (1979)",
    "Amélie (Le fabuleux destin d'Amélie Poulain) (2001)",
    "Dr. Strangelove or: How I Learned to Stop Worrying and Love the Bomb (1963)",
    "Toy Story (1995)",
    "Fargo (1996)",
    "Return of the Jedi (1983)",
    "Contact (1997)",
    "English Patient, The (1996)",
    "Scream (1996)",
    "Liar Liar (1997)",
    "<Untitled> \"Quoted\" & Co (1999)",
    "Shanghai Triad (Yao a yao yao dao waipo qiao) (1995)",
    "Wallace & Gromit: The Best of Aardman Animation (1996)",
    "Schindler's List (1993)",
];

fn title(i: usize) -> String {
    if i < TITLES.len() {
        TITLES[i].to_owned()
    } else {
        format!("Made-up Movie {i} ({})", 1950 + i)
    }
}

/// The demo report: sections P0..P2 with loss curves, a 30 x 30 heatmap, a 40-point map and a
/// bar chart.
pub fn sample_report() -> Result<Report, ReportError> {
    let mut report = Report::new(
        "reelvec pipeline report — demo & <escaping> check",
        "Made-up data: 100,000 ratings by 943 users of 1,682 movies (not a real run).",
    );

    let mut p0 = Section::new("p0", "P0 — item2vec CBOW");
    p0.push_note("Full-softmax CBOW over each user's movies in time order; the loss is compared with ln(V).");
    p0.push_config("embedding size", 64);
    p0.push_config("window", 5);
    p0.push_config("optimizer", "Adam (lr 1e-3)");
    p0.push_timing("load", 0.0123);
    p0.push_timing("train", 48.6);
    p0.push_figure("validation cross-entropy", "5.021", Some("5.1"));
    p0.push_figure("uniform baseline ln(V)", "7.428", Some("7.43"));
    p0.push_figure("accuracy@1", "0.083", None);
    let train: Vec<(f64, f64)> = (1..=15).map(|e| (f64::from(e), 4.6 + 2.8 / f64::from(e))).collect();
    let val: Vec<(f64, f64)> = (1..=15).map(|e| (f64::from(e), 4.9 + 2.5 / f64::from(e))).collect();
    let loss = LineChart::new("P0 — cross-entropy per epoch")
        .with_series("train", train)
        .with_series("validation", val)
        .with_reference("uniform ln(V) = 7.43", 1682f64.ln())
        .to_svg()?;
    p0.push_plot("Train and validation loss; dashed: the uniform baseline ln(V).", loss);
    let n = 30;
    let values: Vec<f32> = (0..n * n)
        .map(|k| {
            let (i, j) = (k / n, k % n);
            if i == j {
                1.0
            } else {
                ((i * j + i + j) as f32 * 0.37).sin() * 0.7
            }
        })
        .collect();
    let heatmap =
        Heatmap::new("P0 — cosine similarity of the 30 most watched", (0..n).map(title).collect(), values);
    p0.push_plot("Cosine similarity of movie vectors & their titles.", heatmap.to_svg()?);
    p0.push_example(
        "Star Wars (1977) → Return of the Jedi (1983) 0.93, Empire Strikes Back, The (1980) 0.91\n\
         Toy Story (1995) → Aladdin (1992) 0.71",
    );
    report.sections.push(p0);

    let mut p2 = Section::new("p2", "P2 — biased matrix factorisation");
    p2.push_config("factors", 50);
    p2.push_config("y range", "(0, 5.5)");
    p2.push_timing("train", 6.2);
    p2.push_figure("validation RMSE", "0.912", Some("0.89"));
    p2.push_figure("validation MSE", "0.832", Some("0.79"));
    let points: Vec<LabelledPoint> = (0..40)
        .map(|i| {
            let t = i as f64;
            let (x, y) = if i % 3 == 0 {
                (0.1 * (t * 0.9).sin(), 0.1 * (t * 1.7).cos())
            } else {
                ((t * 0.7).sin() * 3.0, (t * 1.3).cos() * 2.0)
            };
            LabelledPoint { x, y, label: title(i) }
        })
        .collect();
    p2.push_plot(
        "PCA of the movie factors, 40 best-rated movies with at least 50 ratings.",
        Scatter::new("P2 — PCA of movie factors", points)
            .with_axes("PC 1", "PC 2")
            .with_background(
                (0..200).map(|i| ((i as f64 * 0.37).sin() * 3.2, (i as f64 * 0.61).cos() * 2.2)).collect(),
            )
            .to_svg()?,
    );
    let bars: Vec<Bar> =
        (0..10).map(|i| Bar { label: title(15 - i), value: 0.45 - 0.1 * i as f64 }).collect();
    p2.push_plot(
        "Highest and lowest learned movie bias.",
        BarChart::new("P2 — best and worst by bias", "learned movie bias", bars).to_svg()?,
    );
    p2.push_table(Table {
        caption: "Best by bias (ratings ≥ 50)".to_owned(),
        header: vec!["Movie".to_owned(), "Bias".to_owned(), "Mean rating".to_owned()],
        rows: (0..5)
            .map(|i| {
                vec![
                    title(15 - i),
                    format!("{:.3}", 0.45 - 0.1 * i as f64),
                    format!("{:.2}", 4.5 - 0.1 * i as f64),
                ]
            })
            .collect(),
    });
    report.sections.push(p2);

    let mut p4 = Section::new("p4", "P4 — residual MF <no plots>");
    p4.push_note("A section without plots still renders.");
    p4.push_figure("test RMSE", "0.934", Some("0.93"));
    report.sections.push(p4);
    Ok(report)
}
