//! The cluster clock (spec §3.3).
//!
//! Two clocks derive from the raw local clock L:
//! - the **protocol clock** A(L) = anchor + (L − anchor_L)·(1 + rate): what readings
//!   report and what the midpoint corrects. It changes by whole corrections at round
//!   ends, exactly as in Welch–Lynch, so the analysis applies unchanged.
//! - the **served clock** C(L) = A(L) + s(L): what applications read. While serving,
//!   a correction is not stepped but *slewed*: s starts at the unapplied remainder and
//!   decays linearly to zero over at least one round, at a rate of at most `max_slew`.
//!   C is therefore continuous and, since max_slew < 1, never runs backwards. Only a
//!   node that is not serving steps (s := 0).
//!
//! Both are piecewise linear in L. The previous segment of A is kept so timestamps taken
//! just before a round end (t1 of an exchange in flight) still convert exactly.

use crate::time::{ClusterTime, LocalTime, Nanos, Ppm};

#[derive(Debug, Clone, Copy, PartialEq)]
struct Segment {
    anchor_local: LocalTime,
    anchor: ClusterTime,
    rate: Ppm,
}

impl Segment {
    fn at(&self, local: LocalTime) -> ClusterTime {
        let dt = local - self.anchor_local;
        self.anchor + dt + dt.scale(self.rate)
    }
}

/// The linearly decaying part of a correction still to be slewed.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Slew {
    start: LocalTime,
    amount: Nanos,
    duration: Nanos,
}

impl Slew {
    const NONE: Slew = Slew {
        start: LocalTime(0),
        amount: Nanos(0),
        duration: Nanos(1),
    };

    fn remaining(&self, local: LocalTime) -> Nanos {
        let elapsed = (local - self.start).0;
        if self.amount.0 == 0 || elapsed >= self.duration.0 {
            return Nanos::ZERO;
        }
        let elapsed = elapsed.max(0);
        let left = self.duration.0 - elapsed;
        Nanos((self.amount.0 as i128 * left as i128 / self.duration.0 as i128) as i64)
    }
}

/// A node's protocol and served clocks.
#[derive(Debug, Clone)]
pub struct ClusterClock {
    current: Segment,
    previous: Segment,
    slew: Slew,
    /// C − L when the clock was made: where [`Self::applied`] counts from.
    initial_offset: Nanos,
}

impl ClusterClock {
    /// Starts with A = C = L + `initial_offset`, rate 0.
    pub fn new(now: LocalTime, initial_offset: Nanos) -> ClusterClock {
        let seg = Segment {
            anchor_local: now,
            anchor: ClusterTime(now.0) + initial_offset,
            rate: Ppm::ZERO,
        };
        ClusterClock {
            current: seg,
            previous: seg,
            slew: Slew::NONE,
            initial_offset,
        }
    }

    /// The protocol clock A at local time `local`.
    pub fn protocol_time(&self, local: LocalTime) -> ClusterTime {
        if local < self.current.anchor_local {
            self.previous.at(local)
        } else {
            self.current.at(local)
        }
    }

    /// The served clock C at `local`.
    pub fn served_time(&self, local: LocalTime) -> ClusterTime {
        self.protocol_time(local) + self.slew.remaining(local)
    }

    /// C − A: the part of past corrections not yet slewed in.
    pub fn pending_slew(&self, local: LocalTime) -> Nanos {
        self.slew.remaining(local)
    }

    /// The rate correction now in force.
    pub fn rate(&self) -> Ppm {
        self.current.rate
    }

    /// C − L at `local`: the total offset applied to the local clock.
    pub fn offset(&self, local: LocalTime) -> Nanos {
        self.served_time(local) - ClusterTime(local.0)
    }

    /// C − L at `local` less C − L at the start: everything the protocol has moved this
    /// clock by since it was made (steps, slews and rate). The node seeds C from the
    /// host's wall clock, so C − L itself is about the Unix epoch and says nothing to an
    /// operator; this is the figure `bftime status` shows as the offset applied.
    pub fn applied(&self, local: LocalTime) -> Nanos {
        self.offset(local) - self.initial_offset
    }

    /// The local time at which A reaches `target` under the current segment (rounded up).
    pub fn local_when(&self, target: ClusterTime) -> LocalTime {
        let seg = &self.current;
        let d = (target - seg.anchor).0 as f64 / (1.0 + seg.rate.as_fraction());
        seg.anchor_local + Nanos(d.ceil() as i64)
    }

    fn reanchor(&mut self, now: LocalTime, correction: Nanos, rate: Ppm) {
        let a_now = self.current.at(now);
        self.previous = self.current;
        self.current = Segment {
            anchor_local: now,
            anchor: a_now + correction,
            rate,
        };
    }

    /// Not serving: A and C jump by `correction` (C := A).
    pub fn step(&mut self, now: LocalTime, correction: Nanos, rate: Ppm) {
        self.reanchor(now, correction, rate);
        self.slew = Slew::NONE;
    }

    /// Serving: A jumps by `correction`, C stays continuous and catches up with A over
    /// at least `min_duration`, never faster than `max_slew`. Returns the time the slew
    /// will take.
    pub fn slew(
        &mut self,
        now: LocalTime,
        correction: Nanos,
        rate: Ppm,
        min_duration: Nanos,
        max_slew: Ppm,
    ) -> Nanos {
        let before = self.served_time(now);
        self.reanchor(now, correction, rate);
        let amount = before - self.current.at(now);
        let needed = (amount.abs().0 as f64 / max_slew.as_fraction()).ceil() as i64;
        let duration = Nanos(needed.max(min_duration.0).max(1));
        self.slew = Slew {
            start: now,
            amount,
            duration,
        };
        duration
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_moves_both_clocks() {
        let mut c = ClusterClock::new(LocalTime(0), Nanos(0));
        c.step(LocalTime(100), Nanos(1_000), Ppm::ZERO);
        assert_eq!(c.served_time(LocalTime(100)), ClusterTime(1_100));
        assert_eq!(c.protocol_time(LocalTime(100)), ClusterTime(1_100));
        // Before the step the previous segment still converts.
        assert_eq!(c.protocol_time(LocalTime(50)), ClusterTime(50));
    }

    /// The offset applied counts from where the clock started (the node seeds C from
    /// the wall clock), and takes in steps and, as they are slewed in, slews.
    #[test]
    fn applied_counts_every_correction_since_the_start() {
        let epoch = Nanos::from_secs(1_795_000_000);
        let mut c = ClusterClock::new(LocalTime(7), epoch);
        assert_eq!(c.offset(LocalTime(7)), epoch);
        assert_eq!(c.applied(LocalTime(7)), Nanos::ZERO);
        c.step(LocalTime(100), Nanos::from_millis(3), Ppm::ZERO);
        assert_eq!(c.applied(LocalTime(100)), Nanos::from_millis(3));
        let t = LocalTime(1_000_000_000);
        let d = c.slew(
            t,
            Nanos::from_millis(-5),
            Ppm::ZERO,
            Nanos::from_secs(1),
            Ppm(10_000.0),
        );
        assert_eq!(
            c.applied(t),
            Nanos::from_millis(3),
            "a slew starts from nothing"
        );
        assert_eq!(c.applied(t + d), Nanos::from_millis(-2), "and ends in full");
    }

    #[test]
    fn slew_is_continuous_and_catches_up() {
        let mut c = ClusterClock::new(LocalTime(0), Nanos(0));
        let t = LocalTime(1_000_000_000);
        let before = c.served_time(t);
        let d = c.slew(
            t,
            Nanos::from_millis(-5),
            Ppm::ZERO,
            Nanos::from_secs(1),
            Ppm(10_000.0),
        );
        assert_eq!(c.served_time(t), before);
        assert_eq!(d, Nanos::from_secs(1));
        assert_eq!(c.pending_slew(t + d), Nanos::ZERO);
        assert_eq!(c.served_time(t + d), c.protocol_time(t + d));
    }

    #[test]
    fn large_slew_is_rate_limited() {
        let mut c = ClusterClock::new(LocalTime(0), Nanos(0));
        let d = c.slew(
            LocalTime(0),
            Nanos::from_millis(-50),
            Ppm::ZERO,
            Nanos::from_secs(1),
            Ppm(10_000.0),
        );
        assert_eq!(d, Nanos::from_secs(5));
    }

    #[test]
    fn local_when_inverts_protocol_time() {
        let mut c = ClusterClock::new(LocalTime(0), Nanos(12_345));
        c.step(LocalTime(10), Nanos(0), Ppm(150.0));
        let target = ClusterTime(7_000_000_000);
        let l = c.local_when(target);
        assert!(c.protocol_time(l) >= target);
        assert!(c.protocol_time(l - Nanos(2)) < target);
    }
}
