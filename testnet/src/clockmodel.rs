//! Simulated local oscillators: L(t) as a closed-form function of true time t, so any
//! instant can be evaluated exactly and runs are reproducible.
//!
//! L(t) = base + offset + t·(1 + drift) + wander(t) + fault(t), where wander is a slow
//! sinusoidal frequency error (its integral is closed-form) and a fault is a step
//! (L jumps by `amount` at `at`) or a stall (L stops for `amount`, then runs on, late).

use bftime_protocol::{LocalTime, Nanos};

/// A local clock fault.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ClockFault {
    Step { at_ns: i64, amount_ns: i64 },
    Stall { at_ns: i64, duration_ns: i64 },
}

/// cos(x) from additions and multiplications only: the same bits on every machine (libm
/// picks its `cos` code by CPU feature, so a run's figures could differ between hosts),
/// and a fifth of libm's instructions (`local` runs on every simulated event). Within
/// 1e-14 of libm for the phases of a run of hours, 2e-13 at 2000 radians (the range
/// reduction's rounding grows with |x|): a 1 ppm wander over a 600 s period integrates
/// to 1e5 ns, so the error stays below 1e-7 ns.
fn cosine(x: f64) -> f64 {
    use std::f64::consts::{FRAC_PI_2, PI, TAU};
    /// (−1)^k / (2k)! for k = 0..=9: the Taylor series of cos to r^18, whose first
    /// omitted term is below 4e-15 at π/2.
    const TAYLOR: [f64; 10] = [
        1.0,
        -0.5,
        0.041666666666666664,
        -0.001388888888888889,
        2.48015873015873e-05,
        -2.755731922398589e-07,
        2.08767569878681e-09,
        -1.1470745597729725e-11,
        4.779477332387385e-14,
        -1.5619206968586225e-16,
    ];
    // Into [−π, π], then [0, π] (cos is even), then [0, π/2] by cos(π − r) = −cos r.
    // The nearest whole turn by a truncating conversion (`f64::round` is a libm call on
    // baseline x86-64).
    let turns = (x * (1.0 / TAU) + 0.5f64.copysign(x)) as i64 as f64;
    let r = (x - turns * TAU).abs();
    let (r, sign) = if r > FRAC_PI_2 {
        (PI - r, -1.0)
    } else {
        (r, 1.0)
    };
    // Even and odd powers of r² as two independent chains in r⁴: one Horner chain of
    // ten dependent multiply-adds made this a tenth of a run's cycles.
    let r2 = r * r;
    let r4 = r2 * r2;
    let chain = |first: usize| {
        TAYLOR
            .iter()
            .skip(first)
            .step_by(2)
            .rev()
            .fold(0.0, |acc, c| acc * r4 + c)
    };
    sign * (chain(0) + r2 * chain(1))
}

/// One node's oscillator.
#[derive(Debug, Clone, Copy)]
pub struct Oscillator {
    /// Local reading at t = 0 (base + initial offset).
    pub start_ns: i64,
    /// Frequency error, as a fraction.
    pub drift: f64,
    /// Wander amplitude (fraction), period (ns) and phase (radians).
    pub wander: f64,
    pub wander_period_ns: f64,
    pub wander_phase: f64,
    pub fault: Option<ClockFault>,
    /// cos(wander_phase) and the wander's angular frequency, computed once: `local` runs
    /// on every simulated event.
    cos_phase: f64,
    omega: f64,
    /// The wander's amplitude in time, `wander / omega` (a division per event, else).
    reach: f64,
}

impl Oscillator {
    pub fn new(
        start_ns: i64,
        drift: f64,
        wander: f64,
        wander_period_ns: f64,
        wander_phase: f64,
        fault: Option<ClockFault>,
    ) -> Oscillator {
        let omega = std::f64::consts::TAU / wander_period_ns;
        Oscillator {
            start_ns,
            drift,
            wander,
            wander_period_ns,
            wander_phase,
            fault,
            cos_phase: cosine(wander_phase),
            omega,
            reach: wander / omega,
        }
    }

    fn wander_integral(&self, t: f64) -> f64 {
        if self.wander == 0.0 {
            return 0.0;
        }
        self.reach * (self.cos_phase - cosine(self.omega * t + self.wander_phase))
    }

    /// L(t).
    pub fn local(&self, t_ns: i64) -> LocalTime {
        let t = t_ns as f64;
        let mut effective = t_ns;
        let mut extra = 0i64;
        match self.fault {
            Some(ClockFault::Step { at_ns, amount_ns }) if t_ns >= at_ns => extra = amount_ns,
            Some(ClockFault::Stall { at_ns, duration_ns }) if t_ns >= at_ns => {
                effective = if t_ns < at_ns + duration_ns {
                    at_ns
                } else {
                    t_ns - duration_ns
                };
            }
            _ => {}
        }
        let te = effective as f64;
        let _ = t;
        let l = te * self.drift + self.wander_integral(te);
        LocalTime(self.start_ns + effective + l as i64 + extra)
    }

    /// A true time at which L reaches `target`, assuming no fault in between
    /// (the caller re-checks and re-arms if it came early).
    pub fn true_time_for(&self, target: LocalTime, now_ns: i64) -> i64 {
        self.true_time_from(target, now_ns, self.local(now_ns))
    }

    /// [`Self::true_time_for`] given `now_local = self.local(now_ns)`, for a caller
    /// that has it already (`local` evaluates a cosine).
    pub fn true_time_from(&self, target: LocalTime, now_ns: i64, now_local: LocalTime) -> i64 {
        let gap = (target - now_local).0;
        if gap <= 0 {
            return now_ns;
        }
        let rate = 1.0 + self.drift - self.wander.abs();
        now_ns + ((gap as f64 / rate).ceil() as i64).max(1)
    }

    /// The instantaneous rate error (for reports).
    pub fn rate_error(&self) -> Nanos {
        Nanos((self.drift * 1e9) as i64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn osc(fault: Option<ClockFault>) -> Oscillator {
        Oscillator::new(1_000, 100e-6, 1e-6, 600e9, 0.3, fault)
    }

    #[test]
    fn cosine_matches_libm() {
        let mut worst: f64 = 0.0;
        for k in -200_000..=200_000 {
            let x = f64::from(k) * 1e-2 + 0.123;
            worst = worst.max((cosine(x) - x.cos()).abs());
        }
        assert!(worst < 1e-12, "worst error {worst:e}");
        let near: f64 = (0..=10_000)
            .map(|k| f64::from(k) * 2e-3)
            .map(|x| (cosine(x) - x.cos()).abs())
            .fold(0.0, f64::max);
        assert!(near < 1e-14, "error {near:e} within 20 radians");
        for x in [0.0, std::f64::consts::FRAC_PI_2, std::f64::consts::PI, -7.5] {
            assert!((cosine(x) - x.cos()).abs() < 1e-14, "{x}");
        }
    }

    #[test]
    fn drift_accumulates() {
        let o = osc(None);
        let l = o.local(1_000_000_000);
        let expected = 1_000 + 1_000_000_000 + 100_000;
        assert!((l.0 - expected).abs() < 2_000, "{l:?}");
    }

    #[test]
    fn step_and_stall() {
        let s = osc(Some(ClockFault::Step {
            at_ns: 500,
            amount_ns: 2_000_000_000,
        }));
        assert!(s.local(600).0 - osc(None).local(600).0 == 2_000_000_000);
        let st = osc(Some(ClockFault::Stall {
            at_ns: 1_000,
            duration_ns: 1_000_000,
        }));
        assert_eq!(st.local(1_000), st.local(500_000));
        assert!(st.local(2_000_000) < osc(None).local(2_000_000));
    }

    #[test]
    fn inverse_from_a_known_local_reading_is_the_same() {
        let o = osc(None);
        for now in [0, 7, 1_000_000_123] {
            let target = LocalTime(o.local(now).0 + 3_000_000);
            assert_eq!(
                o.true_time_from(target, now, o.local(now)),
                o.true_time_for(target, now)
            );
        }
    }

    #[test]
    fn inverse_is_not_late() {
        let o = osc(None);
        let target = LocalTime(5_000_000_000);
        let t = o.true_time_for(target, 0);
        assert!(o.local(t) >= target);
    }
}
