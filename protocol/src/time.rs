//! Time with units. Clock code dies of unit bugs, so nanoseconds, local readings,
//! cluster readings and rates are distinct types that only combine in ways that make
//! sense: `LocalTime - LocalTime = Nanos`, `ClusterTime + Nanos = ClusterTime`, …

use std::fmt;
use std::ops::{Add, AddAssign, Neg, Sub, SubAssign};

use serde::{Deserialize, Serialize};

/// A signed duration or offset in nanoseconds.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Nanos(pub i64);

impl Nanos {
    pub const ZERO: Nanos = Nanos(0);
    /// Stands for "unbounded" in interval arithmetic; far from `i64::MAX` so sums of
    /// a few of them cannot overflow.
    pub const INFINITE: Nanos = Nanos(i64::MAX / 8);

    pub const fn from_micros(us: i64) -> Nanos {
        Nanos(us * 1_000)
    }
    pub const fn from_millis(ms: i64) -> Nanos {
        Nanos(ms * 1_000_000)
    }
    pub const fn from_secs(s: i64) -> Nanos {
        Nanos(s * 1_000_000_000)
    }
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / 1e9
    }
    pub fn as_millis_f64(self) -> f64 {
        self.0 as f64 / 1e6
    }
    pub fn abs(self) -> Nanos {
        Nanos(self.0.saturating_abs())
    }
    pub fn is_infinite(self) -> bool {
        self.0.abs() >= Self::INFINITE.0
    }
    /// `self * rate`, rounded to the nearest nanosecond (drift and slew allowances).
    pub fn scale(self, rate: Ppm) -> Nanos {
        Nanos(round_to_i64(self.0 as f64 * rate.as_fraction()))
    }
    /// Half, rounding towards negative infinity (so midpoints of integers are exact).
    pub fn half(self) -> Nanos {
        Nanos(self.0.div_euclid(2))
    }
    /// Saturating addition clamped to ±INFINITE.
    pub fn sat_add(self, other: Nanos) -> Nanos {
        Nanos(
            self.0
                .saturating_add(other.0)
                .clamp(-Self::INFINITE.0, Self::INFINITE.0),
        )
    }
}

impl fmt::Display for Nanos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let a = self.0.unsigned_abs();
        if self.is_infinite() {
            write!(f, "{}inf", if self.0 < 0 { "-" } else { "" })
        } else if a >= 1_000_000_000 {
            write!(f, "{:.3}s", self.0 as f64 / 1e9)
        } else if a >= 1_000_000 {
            write!(f, "{:.3}ms", self.0 as f64 / 1e6)
        } else if a >= 1_000 {
            write!(f, "{:.3}us", self.0 as f64 / 1e3)
        } else {
            write!(f, "{}ns", self.0)
        }
    }
}

macro_rules! arith {
    ($t:ty) => {
        impl Add<Nanos> for $t {
            type Output = $t;
            fn add(self, rhs: Nanos) -> $t {
                Self(self.0 + rhs.0)
            }
        }
        impl AddAssign<Nanos> for $t {
            fn add_assign(&mut self, rhs: Nanos) {
                self.0 += rhs.0;
            }
        }
        impl Sub<Nanos> for $t {
            type Output = $t;
            fn sub(self, rhs: Nanos) -> $t {
                Self(self.0 - rhs.0)
            }
        }
        impl SubAssign<Nanos> for $t {
            fn sub_assign(&mut self, rhs: Nanos) {
                self.0 -= rhs.0;
            }
        }
    };
}

arith!(Nanos);
arith!(LocalTime);
arith!(ClusterTime);

impl Neg for Nanos {
    type Output = Nanos;
    fn neg(self) -> Nanos {
        Nanos(-self.0)
    }
}

/// A reading of the node's own local monotonic clock (`CLOCK_MONOTONIC_RAW` in the
/// node, a simulated oscillator in the testnet). Never adjusted by anyone.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct LocalTime(pub i64);

impl Sub for LocalTime {
    type Output = Nanos;
    fn sub(self, rhs: LocalTime) -> Nanos {
        Nanos(self.0 - rhs.0)
    }
}

/// A reading of a cluster clock (the agreed timescale; no epoch, no relation to UTC).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct ClusterTime(pub i64);

impl Sub for ClusterTime {
    type Output = Nanos;
    fn sub(self, rhs: ClusterTime) -> Nanos {
        Nanos(self.0 - rhs.0)
    }
}

/// A dimensionless rate in parts per million (1 ppm = 1 µs per second).
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Ppm(pub f64);

impl Ppm {
    pub const ZERO: Ppm = Ppm(0.0);
    pub fn as_fraction(self) -> f64 {
        self.0 * 1e-6
    }
    pub fn from_fraction(x: f64) -> Ppm {
        Ppm(x * 1e6)
    }
}

impl Add for Ppm {
    type Output = Ppm;
    fn add(self, rhs: Ppm) -> Ppm {
        Ppm(self.0 + rhs.0)
    }
}

impl fmt::Display for Ppm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:+.3}ppm", self.0)
    }
}

/// Exactly `x.round() as i64` (halves away from zero, saturating, NaN to 0) without
/// the libm call that `round` compiles to on baseline x86-64 (no SSE4.1): every request
/// a node answers scales its error bound, and the call was 2.5 % of a simulation.
fn round_to_i64(x: f64) -> i64 {
    // Truncation toward zero is one instruction; the fraction it drops is exact.
    let whole = x as i64;
    let fraction = x - whole as f64;
    if fraction >= 0.5 {
        whole.saturating_add(1)
    } else if fraction <= -0.5 {
        whole.saturating_sub(1)
    } else {
        whole
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn round_to_i64_is_round_then_cast(bits in any::<u64>(), small in -1e7f64..1e7) {
            for x in [f64::from_bits(bits), small, small.trunc() + 0.5, small.trunc() - 0.5] {
                prop_assert_eq!(round_to_i64(x), x.round() as i64, "{}", x);
            }
        }
    }

    #[test]
    fn round_to_i64_edges() {
        let edges = [
            0.5,
            -0.5,
            1.5,
            -1.5,
            2.5,
            0.49999999999999994,
            -0.49999999999999994,
            4503599627370495.5,
            -4503599627370495.5,
            9007199254740993.0,
            9.2e18,
            -9.3e18,
            f64::MAX,
            f64::MIN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NAN,
            -0.0,
            9223372036854775807.0,
            -9223372036854775808.0,
        ];
        for x in edges {
            assert_eq!(round_to_i64(x), x.round() as i64, "{x}");
        }
    }

    #[test]
    fn units_combine_sensibly() {
        let a = LocalTime(1_000);
        let b = a + Nanos(500);
        assert_eq!(b - a, Nanos(500));
        assert_eq!(ClusterTime(10) - Nanos(3), ClusterTime(7));
        assert_eq!(
            Nanos::from_secs(2).scale(Ppm(100.0)),
            Nanos::from_micros(200)
        );
        assert_eq!(Nanos(-3).half(), Nanos(-2));
        assert_eq!(Nanos::INFINITE.sat_add(Nanos::INFINITE), Nanos::INFINITE);
        assert_eq!(format!("{}", Nanos::from_micros(1500)), "1.500ms");
    }
}
