//! Writes the demo report ([`reelvec_report::demo::sample_report`]) to the directory given as
//! the first argument (default `target/sample-report`), to look at in a browser.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args().nth(1).map_or_else(|| PathBuf::from("target/sample-report"), PathBuf::from);
    let written = reelvec_report::demo::sample_report()?.write_to_dir(&dir)?;
    println!("wrote {} and {} plots", written.html.display(), written.plots.len());
    Ok(())
}
