//! Size checks before large allocations: a config asking for tables (or a dense matrix) larger
//! than the machine's memory is refused with [`EngineError::TooLarge`] before anything is
//! allocated, instead of aborting the process on allocation failure.

use crate::EngineError;

/// Bytes of memory available for new allocations: `MemAvailable` from `/proc/meminfo` on
/// Linux; None where it cannot be read (then only arithmetic overflow is refused).
pub fn available_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

/// Bytes of `count` f32 values times `copies` (parameters, gradients, optimizer moments), as a
/// u128 so that no shape overflows.
pub fn f32_bytes(count: u128, copies: u128) -> u128 {
    count.saturating_mul(4).saturating_mul(copies)
}

/// Ok when `bytes` fit in the available memory (and in the address space); else
/// [`EngineError::TooLarge`] naming `what`.
pub fn ensure_fits(what: &str, bytes: u128) -> Result<(), EngineError> {
    ensure_fits_in(what, bytes, available_bytes())
}

/// [`ensure_fits`] against a given amount of available memory (None: unknown).
pub fn ensure_fits_in(what: &str, bytes: u128, available: Option<u64>) -> Result<(), EngineError> {
    let limit = available.unwrap_or(isize::MAX as u64).min(isize::MAX as u64);
    if bytes > u128::from(limit) {
        return Err(EngineError::TooLarge { what: what.to_string(), bytes, available: limit });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_over_the_available_memory_are_refused_and_named() {
        assert!(ensure_fits_in("small", 1 << 20, Some(1 << 30)).is_ok());
        let err =
            ensure_fits_in("user_factors [1000, 100000000]", f32_bytes(1000 * 100_000_000, 4), Some(1 << 30))
                .unwrap_err();
        assert!(matches!(err, EngineError::TooLarge { .. }));
        assert!(err.to_string().contains("user_factors [1000, 100000000]"), "{err}");
        // Unknown memory: only what no address space holds is refused.
        assert!(ensure_fits_in("huge", u128::MAX, None).is_err());
        assert!(available_bytes().is_none_or(|b| b > 0));
    }
}
