//! Rough cost of the cache's source fingerprint (xxh3 of whole files, 8 MiB chunks hashed in
//! parallel) and of copying a cache file into memory with `read()` (the reload's extra pass
//! since it no longer memory-maps), per 100 MB from a warm page cache.
//!
//! `cargo run -p reelvec-data --example fingerprint_speed [MB]` (default 400 MB of scratch
//! data in a temporary folder). Wall-clock, so a busy machine inflates it.

use std::time::Instant;

use reelvec_data::cache::{content_hash, read_copy};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mb: u64 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(400);
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("scratch.bin");
    let len = mb * 1_000_000;
    let bytes: Vec<u8> = (0..len).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    std::fs::write(&path, &bytes)?;
    drop(bytes);
    let per_100mb = |secs: f64| secs * 1e3 * 100.0 / mb as f64;
    println!("threads: {}, file: {mb} MB", rayon::current_num_threads());
    for i in 0..3 {
        let file = std::fs::File::open(&path)?;
        let t = Instant::now();
        let h = content_hash(&file, len)?;
        println!("fingerprint #{i}: {:.1} ms per 100 MB ({h:016x})", per_100mb(t.elapsed().as_secs_f64()));
    }
    for i in 0..3 {
        let file = std::fs::File::open(&path)?;
        let t = Instant::now();
        let words = read_copy(&file, len)?;
        assert_eq!(words.len() as u64, len.div_ceil(8));
        println!("read() copy #{i}: {:.1} ms per 100 MB", per_100mb(t.elapsed().as_secs_f64()));
    }
    Ok(())
}
