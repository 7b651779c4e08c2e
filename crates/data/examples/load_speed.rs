//! Times generation, CSV load and cache reload of a synthetic data set.
//!
//! `cargo run --release -p reelvec-data --example load_speed -- ml-25m [DIR]` (default preset
//! ml-1m, default directory a temporary one). Prints wall-clock seconds of each step. With
//! `LOAD_SPEED_CACHE_ONLY=N` (and an existing directory) it only reloads the cache N times.

use std::path::PathBuf;
use std::time::Instant;

use reelvec_data::synth::{generate, Preset};
use reelvec_data::{load, write, Layout, LoadOptions};

/// CPU seconds (user + system, all threads) used by this process so far, from /proc/self/stat
/// (0 where that file does not exist). Other processes on a busy machine inflate wall-clock
/// time but not this.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of stat, i.e. 11 and 12 after the name.
    (ticks(11) + ticks(12)) / 100.0
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let preset: Preset = args.next().unwrap_or_else(|| "ml-1m".into()).parse()?;
    let tmp = tempfile::tempdir()?;
    let dir = args.next().map_or_else(|| tmp.path().join("data"), PathBuf::from);
    println!("threads: {}", rayon::current_num_threads());
    if !dir.join("ratings.csv").is_file() {
        let (t, c) = (Instant::now(), cpu_seconds());
        let data = generate(&preset.config());
        println!(
            "generate {preset}: {:.2}s wall, {:.2}s CPU ({} ratings)",
            t.elapsed().as_secs_f64(),
            cpu_seconds() - c,
            data.dataset.ratings.len()
        );
        let (t, c) = (Instant::now(), cpu_seconds());
        write(&data.dataset, Layout::MlLatest, &dir)?;
        println!(
            "write ml-latest csv: {:.2}s wall, {:.2}s CPU",
            t.elapsed().as_secs_f64(),
            cpu_seconds() - c
        );
    }
    let size = std::fs::metadata(dir.join("ratings.csv"))?.len();
    if let Some(times) = std::env::var_os("LOAD_SPEED_CACHE_ONLY") {
        let times: usize = times.to_str().and_then(|t| t.parse().ok()).unwrap_or(5);
        for i in 0..times {
            let (t, c) = (Instant::now(), cpu_seconds());
            let ds = load(&dir, &LoadOptions::default())?;
            println!(
                "cache reload #{i}: {:.3}s wall, {:.2}s CPU (from cache: {})",
                t.elapsed().as_secs_f64(),
                cpu_seconds() - c,
                ds.report.from_cache
            );
        }
        return Ok(());
    }
    let _ = std::fs::remove_dir_all(dir.join(".reelvec-cache"));
    for i in 0..2 {
        let (t, c) = (Instant::now(), cpu_seconds());
        let ds = load(&dir, &LoadOptions { use_cache: false, ..LoadOptions::default() })?;
        println!(
            "csv load #{i}: {:.3}s wall, {:.2}s CPU ({} rows, {:.0} MB)",
            t.elapsed().as_secs_f64(),
            cpu_seconds() - c,
            ds.ratings.len(),
            size as f64 / 1e6
        );
    }
    let (t, c) = (Instant::now(), cpu_seconds());
    load(&dir, &LoadOptions::default())?;
    println!("csv load + cache write: {:.3}s wall, {:.2}s CPU", t.elapsed().as_secs_f64(), cpu_seconds() - c);
    for i in 0..3 {
        let (t, c) = (Instant::now(), cpu_seconds());
        let ds = load(&dir, &LoadOptions::default())?;
        assert!(ds.report.from_cache);
        println!("cache reload #{i}: {:.3}s wall, {:.2}s CPU", t.elapsed().as_secs_f64(), cpu_seconds() - c);
    }
    Ok(())
}
