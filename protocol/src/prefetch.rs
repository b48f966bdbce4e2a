//! A cache hint. A driver that holds many cores and knows which message each will
//! handle next (the simulator: a whole window of events, sorted) can ask for the
//! records that message will touch while it still works on earlier ones. At n = 250 the
//! per-peer records of all cores are far larger than the caches, and a handler that
//! waits for one from memory waits longer than it computes.
//!
//! A hint has no effect on what any code computes: it cannot fault, and a wrong or
//! stale one costs only memory bandwidth.

/// Asks the CPU to start loading the cache line holding the start of `value` (a no-op
/// on targets without a prefetch instruction). For a value spanning several lines,
/// hint a field or element on each.
#[inline(always)]
pub fn hint<T>(value: &T) {
    #[cfg(target_arch = "x86_64")]
    safe_arch::prefetch_t0(value);
    #[cfg(not(target_arch = "x86_64"))]
    let _ = value;
}
