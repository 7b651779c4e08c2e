//! The engine's GPU suite: every device optimizer kernel against its CPU twin on seeded random
//! tables, the device divergence scan, and the runtime's error paths (out of memory, a kernel
//! that does not compile, the on-disk kernel cache). Each test skips with a message when no
//! CUDA device answers, so CPU-only CI stays green; `cargo xtask gpu-bundle` carries this
//! binary to the GPU machine.

#![allow(clippy::unwrap_used)]

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use reelvec_engine::gpu::{self, Gpu, GpuGrads, GpuOptimizer, GpuParams, KernelSource, PushKernelArg};
use reelvec_engine::{
    AdamConfig, EngineError, GradKind, Grads, Init, OptimizerConfig, ParamStore, SgdConfig, TableId,
};

/// The shared device, or a counted skip (a failure under `REELVEC_REQUIRE_GPU=1`).
fn gpu_or_skip() -> Option<std::sync::Arc<Gpu>> {
    if !gpu::available() {
        reelvec_testkit::skip(reelvec_testkit::Need::Gpu, "no CUDA device");
        return None;
    }
    Some(Gpu::shared(0).expect("a CUDA device answered the probe but could not be opened"))
}

/// Three tables of different shapes (a factor table, a bias vector, a dense layer).
fn random_store(seed: u64) -> (ParamStore, Vec<TableId>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut p = ParamStore::new();
    let normal = Init::Normal { mean: 0.0, std: 1.0 };
    let a = p.add("factors", 37, 5, GradKind::SparseRows, normal, &mut rng).unwrap();
    let b = p.add("bias", 37, 1, GradKind::SparseRows, normal, &mut rng).unwrap();
    let c = p.add("dense", 3, 70_001, GradKind::Dense, normal, &mut rng).unwrap();
    (p, vec![a, b, c])
}

/// A gradient touching a random third of the rows of each table.
fn random_grads(params: &ParamStore, ids: &[TableId], rng: &mut ChaCha8Rng) -> Grads {
    let mut grads = Grads::zeros_like(params);
    for &id in ids {
        let rows = params.get(id).rows;
        for r in 0..rows {
            if rng.random_bool(0.34) {
                for g in grads.get_mut(id).row_mut(r) {
                    *g = rng.random_range(-2.0..2.0);
                }
            }
        }
    }
    grads
}

/// Copies a CPU gradient (values and touched flags) into the device buffers.
fn upload_grads(gpu: &Gpu, cpu: &Grads, dev: &mut GpuGrads) {
    for (host, table) in cpu.tables().iter().zip(dev.tables_mut()) {
        gpu.write(&host.data, &mut table.data, "test gradient").unwrap();
        let flags: Vec<u32> = host.touched_mask().iter().map(|&t| u32::from(t)).collect();
        gpu.write(&flags, &mut table.touched, "test flags").unwrap();
    }
}

fn max_relative_error(a: &ParamStore, b: &ParamStore) -> f64 {
    let mut worst = 0.0f64;
    for (ta, tb) in a.tables().iter().zip(b.tables()) {
        for (&x, &y) in ta.data.iter().zip(&tb.data) {
            let err = (x as f64 - y as f64).abs() / (x.abs().max(y.abs()) as f64).max(1e-3);
            worst = worst.max(err);
        }
    }
    worst
}

/// Runs `steps` steps of `config` on the CPU and on the GPU from the same start and gradients.
fn optimizer_parity(config: OptimizerConfig, test: &str) {
    let Some(gpu) = gpu_or_skip() else { return };
    let (mut cpu_params, ids) = random_store(7);
    let mut dev_params = GpuParams::upload(&gpu, &cpu_params).unwrap();
    let mut dev_grads = GpuGrads::zeros_like(&gpu, &dev_params).unwrap();
    let mut dev_opt = GpuOptimizer::new(&gpu, &config, &dev_params, &dev_grads).unwrap();
    let mut cpu_opt = config.build();
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    for step in 0..6 {
        let lr = 0.01 * (1.0 + step as f32 * 0.1);
        let grads = random_grads(&cpu_params, &ids, &mut rng);
        upload_grads(&gpu, &grads, &mut dev_grads);
        cpu_opt.step(&mut cpu_params, &grads, lr);
        dev_opt.step(&gpu, &mut dev_params, &mut dev_grads, lr).unwrap();
    }
    let mut from_gpu = cpu_params.clone();
    dev_params.download_into(&gpu, &mut from_gpu).unwrap();
    let err = max_relative_error(&cpu_params, &from_gpu);
    assert!(err < 1e-5, "{test}: worst relative error {err}");
    // The kernels zero what they consumed.
    for t in dev_grads.tables() {
        let g = gpu.download(&t.data, t.rows * t.cols, "grad").unwrap();
        let f = gpu.download(&t.touched, t.rows, "flags").unwrap();
        assert!(g.iter().all(|&x| x == 0.0) && f.iter().all(|&x| x == 0), "{test}: buffers not cleared");
    }
}

#[test]
fn adam_matches_the_cpu() {
    let c = AdamConfig { weight_decay: 3e-4, ..AdamConfig::default() };
    optimizer_parity(OptimizerConfig::Adam(c), "adam_matches_the_cpu");
}

#[test]
fn adamw_matches_the_cpu() {
    let c = AdamConfig { weight_decay: 1e-2, ..AdamConfig::default() };
    optimizer_parity(OptimizerConfig::AdamW(c), "adamw_matches_the_cpu");
}

#[test]
fn lazy_adam_matches_the_cpu_and_leaves_untouched_rows_alone() {
    let c = AdamConfig { weight_decay: 1e-3, ..AdamConfig::default() };
    optimizer_parity(OptimizerConfig::LazyAdam(c), "lazy_adam_matches_the_cpu");
}

#[test]
fn sgd_with_momentum_matches_the_cpu() {
    let c = SgdConfig { momentum: 0.9, dampening: 0.1, weight_decay: 1e-3, nesterov: true };
    optimizer_parity(OptimizerConfig::Sgd(c), "sgd_with_momentum_matches_the_cpu");
    optimizer_parity(OptimizerConfig::Sgd(SgdConfig::default()), "plain_sgd_matches_the_cpu");
}

#[test]
fn the_divergence_scan_finds_a_nan_table() {
    let Some(gpu) = gpu_or_skip() else { return };
    let (mut params, ids) = random_store(3);
    let dev = GpuParams::upload(&gpu, &params).unwrap();
    assert_eq!(gpu::non_finite_table(&gpu, &dev).unwrap(), None);
    params.get_mut(ids[2]).data[140_000] = f32::NAN;
    let dev = GpuParams::upload(&gpu, &params).unwrap();
    assert_eq!(gpu::non_finite_table(&gpu, &dev).unwrap(), Some(2));
}

#[test]
fn out_of_memory_names_the_allocation() {
    let Some(gpu) = gpu_or_skip() else { return };
    let err = gpu.zeros::<f32>(1usize << 46, "a deliberately huge test buffer").unwrap_err();
    match err {
        EngineError::GpuOutOfMemory { what, bytes, .. } => {
            assert_eq!(what, "a deliberately huge test buffer");
            assert_eq!(bytes, 4usize << 46);
        }
        other => panic!("expected GpuOutOfMemory, got {other}"),
    }
}

/// The optimizer's descriptors hold device addresses: a step with buffers other than those it
/// was built for (another model's tables, a replaced table) is refused before any launch.
#[test]
fn optimizer_steps_only_the_buffers_it_was_built_for() {
    let Some(gpu) = gpu_or_skip() else { return };
    let (store, _) = random_store(3);
    let mut params = GpuParams::upload(&gpu, &store).unwrap();
    let mut grads = GpuGrads::zeros_like(&gpu, &params).unwrap();
    let config = OptimizerConfig::Adam(AdamConfig::default());
    let mut opt = GpuOptimizer::new(&gpu, &config, &params, &grads).unwrap();
    opt.step(&gpu, &mut params, &mut grads, 1e-3).unwrap();
    let mut other = GpuParams::upload(&gpu, &store).unwrap();
    let err = opt.step(&gpu, &mut other, &mut grads, 1e-3).unwrap_err().to_string();
    assert!(err.contains("not the buffers the optimizer was built for"), "{err}");
    // A table swapped for a fresh buffer of the same size is refused too.
    params.tables_mut()[0].data = gpu.zeros::<f32>(37 * 5, "replacement").unwrap();
    assert!(opt.step(&gpu, &mut params, &mut grads, 1e-3).is_err());
    assert_eq!(opt.steps_taken(), 1);
}

#[test]
fn a_broken_kernel_is_a_compile_error_with_the_log() {
    let Some(gpu) = gpu_or_skip() else { return };
    const BROKEN: KernelSource = KernelSource {
        name: "broken_test.cu",
        source: "extern \"C\" __global__ void broken() { undeclared_name = 1; }",
        functions: &["broken"],
    };
    match gpu.function(&BROKEN, "broken").unwrap_err() {
        EngineError::KernelCompile { kernel, log } => {
            assert_eq!(kernel, "broken_test.cu");
            assert!(log.contains("undeclared_name"), "{log}");
        }
        other => panic!("expected KernelCompile, got {other}"),
    }
}

#[test]
fn compiled_kernels_are_cached_on_disk() {
    let Some(gpu) = gpu_or_skip() else { return };
    let dir = gpu::kernel_cache_dir();
    const PROBE: KernelSource = KernelSource {
        name: "cache_probe_test.cu",
        source: "extern \"C\" __global__ void cache_probe(float* x) { x[threadIdx.x] += 1.0f; }",
        functions: &["cache_probe"],
    };
    gpu.function(&PROBE, "cache_probe").unwrap();
    let cached = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .any(|e| e.file_name().to_string_lossy().starts_with("cache_probe_test-"));
    assert!(cached, "no cache entry in {}", dir.display());
}

#[test]
fn cuda_requests_without_a_device_are_clear_errors() {
    if gpu::available() {
        // On a GPU machine: an ordinal past the last device is refused by name.
        let err = Gpu::shared(64).unwrap_err().to_string();
        assert!(err.contains("CUDA device 64 requested"), "{err}");
    } else {
        let err = Gpu::shared(0).unwrap_err().to_string();
        assert!(err.contains("CUDA") || err.contains("device"), "{err}");
    }
}

/// Not a test of correctness: prints the host cost of one optimizer launch for a P2-sized model
/// (run on the GPU machine with `--ignored --nocapture`; figures go to docs/benchmarks.md through
/// `reelvec bench`, never asserted).
#[test]
#[ignore = "timing, not correctness: run on the GPU machine with --ignored --nocapture"]
fn print_optimizer_step_time_at_notebook_size() {
    let Some(gpu) = gpu_or_skip() else { return };
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let mut p = ParamStore::new();
    let normal = Init::Normal { mean: 0.0, std: 1.0 };
    for (name, rows, cols) in [("uf", 943, 50), ("ub", 943, 1), ("mf", 1682, 50), ("mb", 1682, 1)] {
        p.add(name, rows, cols, GradKind::SparseRows, normal, &mut rng).unwrap();
    }
    let mut params = GpuParams::upload(&gpu, &p).unwrap();
    let mut grads = GpuGrads::zeros_like(&gpu, &params).unwrap();
    for config in
        [OptimizerConfig::Adam(AdamConfig::default()), OptimizerConfig::LazyAdam(AdamConfig::default())]
    {
        let mut opt = GpuOptimizer::new(&gpu, &config, &params, &grads).unwrap();
        opt.step(&gpu, &mut params, &mut grads, 1e-3).unwrap();
        gpu.sync("warm-up").unwrap();
        let steps = 5000;
        let started = std::time::Instant::now();
        for _ in 0..steps {
            opt.step(&gpu, &mut params, &mut grads, 1e-3).unwrap();
        }
        let enqueued = started.elapsed().as_secs_f64();
        gpu.sync("timed steps").unwrap();
        let total = started.elapsed().as_secs_f64();
        eprintln!(
            "{config:?}: {:.2} us/step enqueue, {:.2} us/step end to end ({} params)",
            enqueued / steps as f64 * 1e6,
            total / steps as f64 * 1e6,
            params.num_params()
        );
    }
}

/// A kernel that faults (an illegal address) must come back as an error from the next
/// synchronisation, not hang. The fault poisons the CUDA context of its process, so the test
/// re-runs this binary as a child for the faulting part and checks what the child printed.
#[test]
fn a_faulting_kernel_is_an_error_not_a_hang() {
    const CHILD: &str = "REELVEC_FAULT_CHILD";
    const FAULT: KernelSource = KernelSource {
        name: "fault_test.cu",
        source: "extern \"C\" __global__ void fault(int* p) { p[threadIdx.x + (1ull << 40)] = 1; }",
        functions: &["fault"],
    };
    if std::env::var_os(CHILD).is_some() {
        let gpu = Gpu::shared(0).unwrap();
        let f = gpu.function(&FAULT, "fault").unwrap();
        let mut buf = gpu.zeros::<i32>(32, "fault target").unwrap();
        let mut launch = gpu.stream().launch_builder(&f);
        launch.arg(&mut buf);
        // SAFETY: deliberately faults (the point of the test); it runs in a child process.
        let launched = unsafe { launch.launch(gpu::grid_for(32)) };
        let outcome =
            launched.map_err(|e| gpu.launch_error("fault", e)).and_then(|_| gpu.sync("the fault kernel"));
        match outcome {
            Err(e) => println!("CHILD-ERROR: {e}"),
            Ok(()) => println!("CHILD-NO-ERROR"),
        }
        return;
    }
    if gpu_or_skip().is_none() {
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let mut child = std::process::Command::new(exe)
        .args(["--exact", "a_faulting_kernel_is_an_error_not_a_hang", "--nocapture", "--test-threads=1"])
        .env(CHILD, "1")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        assert!(started.elapsed().as_secs() < 60, "the faulting kernel hung its process");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("CHILD-ERROR: GPU error while"), "{text}");
    // The driver's own error names, never words of our message ("the fault kernel" always
    // contains "fault", so matching that proved nothing).
    assert!(
        text.contains("CUDA_ERROR_ILLEGAL_ADDRESS") || text.contains("CUDA_ERROR_LAUNCH_FAILED"),
        "{text}"
    );
}
