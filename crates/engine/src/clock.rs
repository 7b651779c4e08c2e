//! Wall and process CPU time of a pass: what the trainers record for each epoch's training pass
//! ([`crate::EpochStats::train_seconds`], [`crate::EpochStats::train_cpu_seconds`]) and what
//! reelvec-bench's clocks read. Owns the process CPU reading; not the load average or memory
//! figures (reelvec-bench's report).

use std::time::Instant;

/// CPU seconds this process has run, all threads: `clock_gettime(CLOCK_PROCESS_CPUTIME_ID)`,
/// which brings the running threads' time up to date when read (the scheduler's per-thread
/// counters in `/proc/self/task/*/schedstat` can lag the running thread by a tick, a large
/// share of a pass of a few milliseconds). None where the call fails.
pub fn process_cpu_seconds() -> Option<f64> {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec; the call only writes it.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    (rc == 0).then_some(ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9)
}

/// Wall and process CPU clocks started together.
#[derive(Debug, Clone, Copy)]
pub struct PassClock {
    wall: Instant,
    cpu: Option<f64>,
}

impl PassClock {
    /// Starts both clocks.
    pub fn start() -> Self {
        Self { wall: Instant::now(), cpu: process_cpu_seconds() }
    }

    /// Wall seconds and process CPU seconds (None where the platform does not tell) since
    /// [`PassClock::start`].
    pub fn elapsed(&self) -> (f64, Option<f64>) {
        let cpu = match (self.cpu, process_cpu_seconds()) {
            (Some(a), Some(b)) => Some((b - a).max(0.0)),
            _ => None,
        };
        (self.wall.elapsed().as_secs_f64(), cpu)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Busy work advances the CPU clock (Linux): spinning until it has moved 20 ms (at most
    /// 10 s of wall time, however loaded the machine) sees it move that far, and the wall clock.
    #[test]
    fn a_busy_pass_counts_wall_and_cpu_time() {
        let clock = PassClock::start();
        let mut x = 0u64;
        let t = Instant::now();
        loop {
            for _ in 0..10_000 {
                x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
            }
            let (_, cpu) = clock.elapsed();
            if cpu.is_none_or(|c| c >= 0.02) || t.elapsed().as_secs() >= 10 {
                break;
            }
        }
        let (wall, cpu) = clock.elapsed();
        if cfg!(target_os = "linux") {
            let cpu = cpu.expect("Linux has CLOCK_PROCESS_CPUTIME_ID");
            assert!(cpu >= 0.02, "cpu {cpu} after {wall} s of spinning");
        }
        assert!(wall > 0.0);
    }
}
