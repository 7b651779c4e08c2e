//! Data loading: parsing a generated ml-latest `ratings.csv` versus reloading the binary cache.
//!
//! The data set is the synthetic `ml-1m` preset (about 1M ratings) by default; set
//! `REELVEC_BENCH_SCALE=ml25m` (or any preset name: tiny, small, ml-100k, ml-1m, ml-25m) for
//! another size. The files are generated once into a temporary directory before timing.

use std::path::Path;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use reelvec_data::synth::{generate, Preset};
use reelvec_data::{load, write, Layout, LoadOptions};

fn bench_load(c: &mut Criterion) {
    let scale = std::env::var("REELVEC_BENCH_SCALE").unwrap_or_else(|_| "ml-1m".into());
    let preset: Preset = match scale.parse() {
        Ok(p) => p,
        Err(e) => panic!("REELVEC_BENCH_SCALE: {e}"),
    };
    let tmp = match tempfile::tempdir() {
        Ok(t) => t,
        Err(e) => panic!("cannot create a temporary directory: {e}"),
    };
    let dir = tmp.path().join("data");
    let data = generate(&preset.config());
    let rows = data.dataset.ratings.len() as u64;
    if let Err(e) = write(&data.dataset, Layout::MlLatest, &dir) {
        panic!("cannot write the data set: {e}");
    }
    drop(data);
    let parse = LoadOptions { use_cache: false, ..LoadOptions::default() };
    let cached = LoadOptions::default();
    let run = |opts: &LoadOptions, dir: &Path| match load(dir, opts) {
        Ok(ds) => ds,
        Err(e) => panic!("load failed: {e}"),
    };
    run(&cached, &dir); // writes the cache

    let mut group = c.benchmark_group(format!("data_load/{preset}"));
    group.throughput(Throughput::Elements(rows));
    let big = rows > 5_000_000;
    group.sample_size(10);
    if big {
        group.measurement_time(Duration::from_secs(40));
    }
    group.bench_function("csv_parse", |b| b.iter(|| run(&parse, &dir)));
    group.bench_function("cache_reload", |b| {
        b.iter(|| {
            let ds = run(&cached, &dir);
            assert!(ds.report.from_cache);
            ds
        })
    });
    group.finish();
}

criterion_group!(benches, bench_load);
criterion_main!(benches);
