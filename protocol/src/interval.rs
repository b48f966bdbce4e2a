//! Closed intervals of offsets, with saturating ends so that "unbounded" composes.

use serde::{Deserialize, Serialize};

use crate::time::Nanos;

/// `[lo, hi]`, an offset known to lie between two bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interval {
    pub lo: Nanos,
    pub hi: Nanos,
}

impl Interval {
    pub fn new(lo: Nanos, hi: Nanos) -> Interval {
        Interval {
            lo: lo.min(hi),
            hi: hi.max(lo),
        }
    }

    /// `center ± half_width`, saturating to ±INFINITE.
    pub fn around(center: Nanos, half_width: Nanos) -> Interval {
        let w = half_width.abs();
        Interval {
            lo: center.sat_add(-w),
            hi: center.sat_add(w),
        }
    }

    pub fn point(x: Nanos) -> Interval {
        Interval { lo: x, hi: x }
    }

    pub fn unbounded() -> Interval {
        Interval {
            lo: -Nanos::INFINITE,
            hi: Nanos::INFINITE,
        }
    }

    pub fn midpoint(&self) -> Nanos {
        Nanos(((self.lo.0 as i128 + self.hi.0 as i128).div_euclid(2)) as i64)
    }

    pub fn half_width(&self) -> Nanos {
        if self.lo.is_infinite() || self.hi.is_infinite() {
            return Nanos::INFINITE;
        }
        Nanos((self.hi.0 - self.lo.0) / 2)
    }

    pub fn is_bounded(&self) -> bool {
        !self.lo.is_infinite() && !self.hi.is_infinite()
    }

    pub fn contains(&self, x: Nanos) -> bool {
        self.lo <= x && x <= self.hi
    }

    pub fn intersects(&self, other: &Interval) -> bool {
        self.lo <= other.hi && other.lo <= self.hi
    }

    /// Distance between the two intervals (zero when they intersect).
    pub fn gap(&self, other: &Interval) -> Nanos {
        if self.intersects(other) {
            Nanos::ZERO
        } else if self.hi < other.lo {
            other.lo - self.hi
        } else {
            self.lo - other.hi
        }
    }

    /// Every offset in the interval shifted by `by`.
    pub fn shift(&self, by: Nanos) -> Interval {
        Interval {
            lo: self.lo.sat_add(by),
            hi: self.hi.sat_add(by),
        }
    }
}
