//! The floating-point environment of training threads: flush-to-zero (FTZ) and
//! denormals-are-zero (DAZ), the one place reelvec touches the CPU's float control register.
//!
//! By default reelvec, like PyTorch (`torch.set_flush_denormal(False)`), computes with IEEE
//! subnormal numbers. They are slow on many x86 cores (a microcode assist per operation; an Adam
//! element-step on subnormals took 3.5x a normal one on the dev machine's AMD EPYC), and
//! dense PyTorch-exact Adam produces them in bulk: the first moment of a row that no rating
//! touches decays by `beta1` per step (`m - 0.1 m`) into the subnormal range and, by rounding,
//! never reaches zero, so every later step over that row computes on subnormals.
//!
//! [`FlushDenormals`] is a guard that sets FTZ and DAZ on the current thread and restores the
//! previous state when dropped: MXCSR bits 15 (FTZ) and 6 (DAZ) on x86_64, FPCR.FZ (bit 24,
//! which flushes inputs and outputs) on aarch64; elsewhere it does nothing and
//! [`FLUSH_SUPPORTED`] is false. [`with_flushed_denormals`] runs a closure in a rayon pool of
//! the current pool's size whose every worker has the bits set (the pool's threads end with
//! it, so no other work ever runs under them), which is how
//! [`TrainConfig::flush_denormals`](crate::TrainConfig::flush_denormals) runs a CPU fit.
//!
//! What flushing changes (docs/ARCHITECTURE.md, "Subnormals"; `optim::tests` and
//! reelvec-models' `tests/flush_denormals.rs`): Adam's moments (a subnormal moment becomes 0);
//! in every measured run never a row a real gradient keeps touching (a subnormal moment adds less than
//! `2^-126 / eps` to a step, below half an ulp of any `|p| >= 2^-75`); with weight decay, rows
//! that only the decay moves for thousands of steps, once their elements fall below ~1e-30.
//! It is an opt-in speed mode, not PyTorch's arithmetic.
//!
//! Rust and LLVM assume the default float environment: constant expressions folded at compile
//! time keep their subnormals. Nothing here affects memory safety.

use crate::EngineError;

/// Whether this target has FTZ/DAZ control ([`FlushDenormals`] is a no-op where it has not).
pub const FLUSH_SUPPORTED: bool = cfg!(any(target_arch = "x86_64", target_arch = "aarch64"));

#[cfg(target_arch = "x86_64")]
pub(crate) mod reg {
    /// MXCSR bit 15 (flush to zero) and bit 6 (denormals are zero).
    pub const FLUSH_BITS: u64 = (1 << 15) | (1 << 6);

    pub fn read() -> u64 {
        let mut csr: u32 = 0;
        // SAFETY: stmxcsr stores the 32-bit MXCSR into the local `csr`; SSE is part of the
        // x86_64 baseline.
        unsafe { core::arch::asm!("stmxcsr [{}]", in(reg) &mut csr, options(nostack, preserves_flags)) };
        u64::from(csr)
    }

    pub fn write(value: u64) {
        let csr = value as u32;
        // SAFETY: ldmxcsr loads a value read by `read` with only the FTZ/DAZ bits changed (no
        // reserved bit set, so no #GP); it changes rounding of float results, not memory.
        unsafe { core::arch::asm!("ldmxcsr [{}]", in(reg) &csr, options(nostack, preserves_flags)) };
    }
}

#[cfg(target_arch = "aarch64")]
pub(crate) mod reg {
    /// FPCR.FZ (bit 24): flush subnormal inputs and outputs to zero.
    pub const FLUSH_BITS: u64 = 1 << 24;

    pub fn read() -> u64 {
        let fpcr: u64;
        // SAFETY: reading FPCR has no side effects.
        unsafe { core::arch::asm!("mrs {}, fpcr", out(reg) fpcr, options(nomem, nostack, preserves_flags)) };
        fpcr
    }

    pub fn write(value: u64) {
        // SAFETY: writes back a value read by `read` with only FZ changed; it changes float
        // results, not memory.
        unsafe { core::arch::asm!("msr fpcr, {}", in(reg) value, options(nomem, nostack, preserves_flags)) };
    }
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
pub(crate) mod reg {
    pub const FLUSH_BITS: u64 = 0;

    pub fn read() -> u64 {
        0
    }

    pub fn write(_value: u64) {}
}

/// Whether the current thread flushes subnormals (FTZ and DAZ both set; always false where
/// [`FLUSH_SUPPORTED`] is false).
pub fn denormals_flushed() -> bool {
    FLUSH_SUPPORTED && reg::read() & reg::FLUSH_BITS == reg::FLUSH_BITS
}

/// Whether the current thread flushes subnormals in any way (FTZ or DAZ set): arithmetic that
/// emulates IEEE subnormals must not stand in for the hardware's there.
pub(crate) fn any_flush_bit() -> bool {
    FLUSH_SUPPORTED && reg::read() & reg::FLUSH_BITS != 0
}

/// Sets FTZ/DAZ on the current thread while it lives; dropping it restores those bits as they
/// were (guards nest). Not `Send`: the state belongs to the thread that made it.
#[derive(Debug)]
pub struct FlushDenormals {
    previous: u64,
    _not_send: std::marker::PhantomData<*const ()>,
}

impl FlushDenormals {
    /// Sets the bits on this thread, remembering the previous state.
    pub fn new() -> Self {
        let previous = reg::read();
        reg::write(previous | reg::FLUSH_BITS);
        Self { previous, _not_send: std::marker::PhantomData }
    }
}

impl Default for FlushDenormals {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for FlushDenormals {
    /// Puts the flush bits back as they were; other bits (MXCSR's sticky exception flags) keep
    /// their current values.
    fn drop(&mut self) {
        reg::write((reg::read() & !reg::FLUSH_BITS) | (self.previous & reg::FLUSH_BITS));
    }
}

/// Runs `op` in a fresh rayon pool with as many threads as the current pool, every worker
/// flushing subnormals (set by the pool's start handler; the workers end with the pool). The
/// calling thread's own state is untouched. The result does not depend on the thread count
/// any more than `op`'s does.
pub fn with_flushed_denormals<R, F>(op: F) -> Result<R, EngineError>
where
    R: Send,
    F: FnOnce() -> R + Send,
{
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(rayon::current_num_threads())
        .thread_name(|i| format!("reelvec-ftz-{i}"))
        .start_handler(|_| std::mem::forget(FlushDenormals::new()))
        .build()
        .map_err(|e| {
            EngineError::InvalidConfig(format!("flush_denormals: starting the worker threads failed: {e}"))
        })?;
    Ok(pool.install(op))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hint::black_box;

    /// Half of the smallest normal f32: a subnormal unless the thread flushes.
    fn half_min_positive() -> f32 {
        black_box(f32::MIN_POSITIVE) * black_box(0.5)
    }

    #[test]
    fn guard_sets_and_restores_the_bits() {
        let before = reg::read();
        assert!(!denormals_flushed(), "test threads start with IEEE subnormals");
        assert!(half_min_positive() > 0.0);
        {
            let _outer = FlushDenormals::new();
            assert_eq!(denormals_flushed(), FLUSH_SUPPORTED);
            {
                let _inner = FlushDenormals::new();
                assert_eq!(denormals_flushed(), FLUSH_SUPPORTED);
            }
            // The inner guard restores what the outer one set.
            assert_eq!(denormals_flushed(), FLUSH_SUPPORTED);
            if FLUSH_SUPPORTED {
                assert_eq!(half_min_positive(), 0.0, "FTZ flushes a subnormal result");
                // DAZ (x86) / FZ (aarch64): a subnormal input reads as zero.
                let sub = f32::from_bits(black_box(1));
                assert_eq!(black_box(sub) * black_box(2.0f32), 0.0);
            }
        }
        // Control bits restored (x86's low six bits are sticky exception flags, not control).
        let control = |csr: u64| if cfg!(target_arch = "x86_64") { csr & !0x3f } else { csr };
        assert_eq!(control(reg::read()), control(before), "the control bits are restored");
        assert!(half_min_positive() > 0.0);
    }

    #[test]
    fn every_worker_of_the_pool_flushes_and_the_caller_does_not() {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(3).build().unwrap();
        let flags = pool.install(|| {
            with_flushed_denormals(|| {
                (rayon::current_num_threads(), rayon::broadcast(|_| denormals_flushed()))
            })
            .unwrap()
        });
        assert_eq!(flags.0, 3, "the flushing pool has the caller's pool size");
        assert_eq!(flags.1, vec![FLUSH_SUPPORTED; 3]);
        assert!(!denormals_flushed());
        // The caller's global-pool workers were never touched.
        assert!(rayon::broadcast(|_| !denormals_flushed()).into_iter().all(|ok| ok));
    }
}
