//! The local clock L (design §3): `CLOCK_MONOTONIC_RAW`, which nobody adjusts, so NTP
//! or a VM agent stepping the system clock cannot disturb us. In testnet mode it is a
//! simulated oscillator on top of the host's raw clock (offset, drift, a step, a
//! stall), and every sample also carries the host time, so the testnet can compute the
//! true skew between processes that share the host clock (design §8).

use std::sync::Arc;

use bftime_protocol::{LocalTime, Nanos};
use rustix::time::{ClockId, clock_gettime};

use crate::testing::TestingConfig;

/// Host `CLOCK_MONOTONIC_RAW` in nanoseconds.
pub fn host_raw_ns() -> i64 {
    let ts = clock_gettime(ClockId::MonotonicRaw);
    ts.tv_sec
        .saturating_mul(1_000_000_000)
        .saturating_add(ts.tv_nsec)
}

/// Host `CLOCK_REALTIME` in nanoseconds since the Unix epoch.
pub fn host_realtime_ns() -> i64 {
    let ts = clock_gettime(ClockId::Realtime);
    ts.tv_sec
        .saturating_mul(1_000_000_000)
        .saturating_add(ts.tv_nsec)
}

/// A simulated oscillator: L(h) = h + offset + drift·(h − start) + step − stalled time.
#[derive(Debug, Clone)]
struct SimOscillator {
    start_ns: i64,
    offset_ns: i64,
    drift: f64,
    step: Option<(i64, i64)>,
    stall: Option<(i64, i64)>,
}

impl SimOscillator {
    fn local(&self, host: i64) -> i64 {
        let since = host - self.start_ns;
        let mut elapsed = since;
        if let Some((at, dur)) = self.stall {
            // Frozen during [at, at + dur), then running again, `dur` behind.
            elapsed -= (since - at).clamp(0, dur);
        }
        let drift = (elapsed as f64 * self.drift) as i64;
        let step = match self.step {
            Some((at, by)) if since >= at => by,
            _ => 0,
        };
        self.start_ns + self.offset_ns + elapsed + drift + step
    }
}

/// The node's local clock. Cheap to clone and to read from any task.
#[derive(Debug, Clone)]
pub struct LocalClock {
    sim: Option<Arc<SimOscillator>>,
}

impl LocalClock {
    /// The real thing.
    pub fn host() -> Self {
        LocalClock { sim: None }
    }

    /// The testnet's simulated clock, starting now.
    pub fn simulated(t: &TestingConfig) -> Self {
        let ms = |v: f64| (v * 1e6) as i64;
        let s = |v: f64| (v * 1e9) as i64;
        LocalClock {
            sim: Some(Arc::new(SimOscillator {
                start_ns: host_raw_ns(),
                offset_ns: ms(t.initial_offset_ms),
                drift: t.drift_ppm * 1e-6,
                step: t.step_after_s.map(|a| (s(a), ms(t.step_ms))),
                stall: t.stall_after_s.map(|a| (s(a), ms(t.stall_ms))),
            })),
        }
    }

    pub fn is_simulated(&self) -> bool {
        self.sim.is_some()
    }

    /// The local time now.
    pub fn now(&self) -> LocalTime {
        self.sample().1
    }

    /// (host raw ns, local time) read at one instant.
    pub fn sample(&self) -> (i64, LocalTime) {
        let host = host_raw_ns();
        let local = match &self.sim {
            Some(sim) => sim.local(host),
            None => host,
        };
        (host, LocalTime(local))
    }

    /// The cluster clock's starting offset: Unix time minus the raw clock, so a fresh
    /// cluster's time is near UTC (nodes start within NTP's error of each other, not a
    /// VM uptime apart). Simulated clocks add their own offset on top, through L.
    pub fn initial_offset(&self) -> Nanos {
        Nanos(host_realtime_ns() - host_raw_ns())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn osc() -> SimOscillator {
        SimOscillator {
            start_ns: 1_000,
            offset_ns: 5_000_000_000,
            drift: 80e-6,
            step: Some((10_000_000_000, 2_000_000_000)),
            stall: Some((20_000_000_000, 1_000_000_000)),
        }
    }

    #[test]
    fn simulated_oscillator_drifts_steps_and_stalls() {
        let o = osc();
        assert_eq!(o.local(1_000), 1_000 + 5_000_000_000);
        // 1 s in: 1 s + 80 µs.
        assert_eq!(
            o.local(1_000 + 1_000_000_000) - o.local(1_000),
            1_000_080_000
        );
        // The step at 10 s adds 2 s.
        let before = o.local(1_000 + 9_999_999_999);
        let after = o.local(1_000 + 10_000_000_000);
        assert!(after - before > 1_999_000_000);
        // Frozen during the stall.
        assert_eq!(
            o.local(1_000 + 20_000_000_000),
            o.local(1_000 + 20_500_000_000)
        );
        // Running again after it.
        assert!(o.local(1_000 + 22_000_000_000) > o.local(1_000 + 21_000_000_000));
    }

    #[test]
    fn host_clock_is_monotonic() {
        let c = LocalClock::host();
        let a = c.now();
        let b = c.now();
        assert!(b >= a);
        assert!(!c.is_simulated());
    }
}
