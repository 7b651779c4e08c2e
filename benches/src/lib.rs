//! Criterion benchmarks for reelvec live in `benches/benches/`.
