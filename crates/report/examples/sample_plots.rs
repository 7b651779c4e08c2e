//! Writes one of each plot, drawn from made-up data, to the directory given as the first
//! argument (default `target/sample-plots`), for looking at them in a browser.

use std::path::PathBuf;

use reelvec_report::plots::{Bar, BarChart, Heatmap, LabelledPoint, LineChart, Scatter};

const TITLES: [&str; 12] = [
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
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args().nth(1).map_or_else(|| PathBuf::from("target/sample-plots"), PathBuf::from);
    std::fs::create_dir_all(&dir)?;
    let title = |i: usize| format!("{} #{i}", TITLES[i % TITLES.len()]);

    let train: Vec<(f64, f64)> = (1..=20).map(|e| (f64::from(e), 3.0 + 4.0 / f64::from(e))).collect();
    let val: Vec<(f64, f64)> =
        (1..=20).map(|e| (f64::from(e), 3.4 + 3.5 / f64::from(e) + 0.01 * f64::from(e))).collect();
    let loss = LineChart::new("P0 — CBOW cross-entropy")
        .with_series("train", train)
        .with_series("validation", val)
        .with_reference("uniform ln(V) = ln(1682)", 1682f64.ln())
        .to_svg()?;
    std::fs::write(dir.join("loss.svg"), loss)?;

    let n = 40;
    let labels: Vec<String> = (0..n).map(title).collect();
    let values: Vec<f32> = (0..n * n)
        .map(|k| {
            let (i, j) = (k / n, k % n);
            if i == j {
                1.0
            } else {
                ((i * j + i + j) as f32 * 0.37).sin() * 0.8
            }
        })
        .collect();
    std::fs::write(
        dir.join("heatmap.svg"),
        Heatmap::new("P0 — cosine similarity, top 40", labels, values).to_svg()?,
    )?;

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
    std::fs::write(dir.join("tsne.svg"), Scatter::new("P2 — t-SNE of movie factors", points).to_svg()?)?;

    let bars: Vec<Bar> = (0..10).map(|i| Bar { label: title(i), value: 0.5 - 0.11 * i as f64 }).collect();
    std::fs::write(
        dir.join("bias.svg"),
        BarChart::new("P2 — best and worst by bias", "learned movie bias", bars).to_svg()?,
    )?;
    println!("wrote 4 plots to {}", dir.display());
    Ok(())
}
