//! Offset and delay from the four timestamps of one exchange, and the interval that a
//! sample gives for a peer's clock (spec §3.2).
//!
//! ```text
//!   requester  t1 ────────────────────────────▶ t4      (our protocol clock)
//!                    ╲ request        reply ╱
//!   responder         t2 ────────────── t3              (its protocol clock)
//!   offset θ = ((t2 − t1) + (t3 − t4)) / 2      delay δ = (t4 − t1) − (t3 − t2)
//! ```
//! θ is the peer's clock minus ours. Whatever the path asymmetry, the true offset lies
//! within θ ± δ/2: that is the only thing we assume about the network.

use crate::interval::Interval;
use crate::time::{ClusterTime, Nanos, Ppm};

/// One completed exchange with a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// Peer clock minus our clock at `measured_at`.
    pub offset: Nanos,
    /// Round-trip time minus the responder's processing time; never negative.
    pub delay: Nanos,
    /// Our protocol clock when the reply arrived (t4).
    pub measured_at: ClusterTime,
    /// The peer's own error bound, as it reported it (`None`: not yet agreed).
    pub peer_error: Option<Nanos>,
    /// Whether the peer said it was serving time (only then is its error meaningful).
    pub peer_synced: bool,
}

/// Why four timestamps cannot form a sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SampleError {
    #[error("reply received before the request was sent")]
    NegativeRoundTrip,
    #[error("responder claims it transmitted before it received")]
    NegativeProcessing,
    /// The responder's times are so far from ours that the offset or delay does not fit
    /// in 64 bits (no clock is 292 years off: a lie, or damage).
    #[error("offset or delay beyond ±292 years")]
    OutOfRange,
}

impl Sample {
    /// θ and δ from t1 (sent), t2 (peer received), t3 (peer transmitted), t4 (received).
    /// A delay that comes out negative (the responder's clock ran faster than ours during
    /// the exchange, or it lied) is clamped to zero: the interval then has only the
    /// drift term and is still honest about what we know.
    pub fn from_timestamps(
        t1: ClusterTime,
        t2: ClusterTime,
        t3: ClusterTime,
        t4: ClusterTime,
        peer_error: Option<Nanos>,
        peer_synced: bool,
    ) -> Result<Sample, SampleError> {
        let measured_at = t4;
        if t4 < t1 {
            return Err(SampleError::NegativeRoundTrip);
        }
        if t3 < t2 {
            return Err(SampleError::NegativeProcessing);
        }
        // In 128 bits: t2 and t3 are the responder's word, any i64 at all, and their
        // differences from ours need not fit in 64 bits (a panic in a debug build, a
        // wrapped sample in a release one).
        let [t1, t2, t3, t4] = [t1, t2, t3, t4].map(|t| i128::from(t.0));
        let round_trip = t4 - t1;
        let processing = t3 - t2;
        let fit = |v: i128| i64::try_from(v).map_err(|_| SampleError::OutOfRange);
        let delay = Nanos(fit((round_trip - processing).max(0))?);
        // Sum before halving keeps one rounding step.
        let offset = Nanos(fit(((t2 - t1) + (t3 - t4)).div_euclid(2))?);
        Ok(Sample {
            offset,
            delay,
            measured_at,
            peer_error,
            peer_synced,
        })
    }

    /// How far the peer's clock may have moved relative to ours since the sample:
    /// two clocks each within ±ρ_eff of true rate diverge at up to 2ρ_eff.
    pub fn aging(&self, now: ClusterTime, effective_drift: Ppm) -> Nanos {
        let age = Nanos((now - self.measured_at).0.max(0));
        age.scale(Ppm(2.0 * effective_drift.0))
    }

    /// byztimed's quality, lower is better: δ/2 + 2ρ·age.
    pub fn quality(&self, now: ClusterTime, effective_drift: Ppm) -> Nanos {
        self.delay.half() + self.aging(now, effective_drift)
    }

    /// The interval the peer's offset lies in by measurement alone: θ ± (δ/2 + 2ρ·age).
    pub fn measured_interval(&self, now: ClusterTime, effective_drift: Ppm) -> Interval {
        Interval::around(self.offset, self.quality(now, effective_drift))
    }

    /// The interval the midpoint uses for this peer (spec §3.2). The peer's own
    /// reported error decides *whether* its reading counts, not how wide it is:
    /// - a peer that reports a known error below `error_limit` (it has agreed with the
    ///   cluster at least once, whatever its state) gives its measured interval. Requiring
    ///   it to be *serving* instead was measured and rejected: nodes start serving in
    ///   different rounds, and with exactly n − f correct nodes the first ones to serve lost
    ///   their quorum and quarantined one after another (CockroachDB issue 999);
    /// - any other peer (no agreement yet, or claiming an error ≥ Π/2) is unknown:
    ///   a serving node gives it an unbounded interval, which the core then leaves out,
    ///   so restarting nodes cannot pull a synchronised cluster; a node that is not
    ///   serving (`bootstrap`) takes its raw measured interval, so that a cold cluster
    ///   can converge at all.
    ///
    /// Widening intervals by the peers' errors (design §4.2) was measured and rejected:
    /// when correct nodes report different errors, wide correct intervals let the
    /// midpoint sit anywhere inside them and a two-faced minority held a 31-node
    /// cluster split by 24 ms (spec §4.2 has the run).
    pub fn midpoint_interval(
        &self,
        now: ClusterTime,
        effective_drift: Ppm,
        bootstrap: bool,
        error_limit: Nanos,
    ) -> Interval {
        let known = self.peer_error.is_some_and(|e| e.abs() < error_limit);
        if known || bootstrap {
            self.measured_interval(now, effective_drift)
        } else {
            Interval::unbounded()
        }
    }
}

/// Keeps the better of two samples by [`Sample::quality`] at `now`.
pub fn better(a: Sample, b: Sample, now: ClusterTime, effective_drift: Ppm) -> Sample {
    if b.quality(now, effective_drift) < a.quality(now, effective_drift) {
        b
    } else {
        a
    }
}

#[cfg(test)]
mod tests {

    /// A responder's times may be any i64: a difference that does not fit is refused,
    /// never a panic or a wrapped sample.
    #[test]
    fn extreme_responder_times_are_refused_not_wrapped() {
        let t = |ns: i64| ClusterTime(ns);
        for (t1, t2, t3, t4) in [
            (1_000, i64::MIN, i64::MIN, 2_000),
            (-2_000, i64::MAX, i64::MAX, -1_000),
            (1_000, i64::MIN + 5, i64::MIN + 7, 2_000),
        ] {
            let r = Sample::from_timestamps(t(t1), t(t2), t(t3), t(t4), None, true);
            assert!(
                matches!(r, Err(SampleError::OutOfRange)),
                "{t2} {t3}: {r:?}"
            );
        }
        let wide = Sample::from_timestamps(t(0), t(i64::MIN), t(i64::MAX), t(10), None, true)
            .expect("fits");
        assert_eq!(wide.delay, Nanos::ZERO);
    }

    use super::*;

    fn ct(x: i64) -> ClusterTime {
        ClusterTime(x)
    }

    #[test]
    fn symmetric_path_gives_exact_offset() {
        // Peer is 1000 ahead; one-way delay 50 each way; 10 processing.
        let s = Sample::from_timestamps(ct(0), ct(1050), ct(1060), ct(110), None, true).unwrap();
        assert_eq!(s.offset, Nanos(1000));
        assert_eq!(s.delay, Nanos(100));
    }

    #[test]
    fn asymmetry_error_is_within_half_delay() {
        // True offset 1000, outbound 90, return 10.
        let s = Sample::from_timestamps(ct(0), ct(1090), ct(1090), ct(100), None, true).unwrap();
        assert!((s.offset - Nanos(1000)).abs() <= s.delay.half());
        assert!(s.measured_interval(ct(100), Ppm(0.0)).contains(Nanos(1000)));
    }

    #[test]
    fn impossible_timestamps_rejected() {
        assert_eq!(
            Sample::from_timestamps(ct(10), ct(0), ct(0), ct(5), None, true),
            Err(SampleError::NegativeRoundTrip)
        );
        assert_eq!(
            Sample::from_timestamps(ct(0), ct(10), ct(5), ct(20), None, true),
            Err(SampleError::NegativeProcessing)
        );
    }

    #[test]
    fn quality_prefers_short_delay_then_fresh() {
        let old_fast = Sample {
            offset: Nanos(0),
            delay: Nanos(100),
            measured_at: ct(0),
            peer_error: None,
            peer_synced: true,
        };
        let new_slow = Sample {
            offset: Nanos(0),
            delay: Nanos(1_000),
            measured_at: ct(1_000_000_000),
            peer_error: None,
            peer_synced: true,
        };
        // At 100 ppm effective drift, 1 s of age costs 2·100 µs = 200 µs > 450 ns gain.
        let now = ct(1_000_000_000);
        assert_eq!(better(old_fast, new_slow, now, Ppm(100.0)), new_slow);
        assert_eq!(better(old_fast, new_slow, now, Ppm(0.0)), old_fast);
    }

    #[test]
    fn unknown_peer_error_is_unbounded_unless_bootstrapping() {
        let limit = Nanos(1_000);
        let s = Sample {
            offset: Nanos(5),
            delay: Nanos(10),
            measured_at: ct(0),
            peer_error: None,
            peer_synced: true,
        };
        assert!(
            s.midpoint_interval(ct(0), Ppm(0.0), false, limit)
                .half_width()
                .is_infinite()
        );
        assert_eq!(
            s.midpoint_interval(ct(0), Ppm(0.0), true, limit)
                .half_width(),
            Nanos(5)
        );
        let known = Sample {
            peer_error: Some(Nanos(20)),
            ..s
        };
        assert_eq!(
            known
                .midpoint_interval(ct(0), Ppm(0.0), false, limit)
                .half_width(),
            Nanos(5)
        );
        let too_wide = Sample {
            peer_error: Some(Nanos(2_000)),
            ..s
        };
        assert!(
            too_wide
                .midpoint_interval(ct(0), Ppm(0.0), false, limit)
                .half_width()
                .is_infinite()
        );
        let not_serving = Sample {
            peer_synced: false,
            ..known
        };
        assert_eq!(
            not_serving
                .midpoint_interval(ct(0), Ppm(0.0), false, limit)
                .half_width(),
            Nanos(5)
        );
    }
}
