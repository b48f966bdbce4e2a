//! Property tests of the served cluster clock (spec §3.3): it never runs backwards while
//! serving, whatever the corrections.

use bftime_protocol::{ClusterClock, LocalTime, Nanos, Ppm};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn served_clock_never_runs_backwards_while_slewing(
        corrections in prop::collection::vec(-50_000_000i64..50_000_000, 1..30),
        rates in prop::collection::vec(-200.0f64..200.0, 30),
        period_ms in 100i64..10_000,
    ) {
        let period = Nanos::from_millis(period_ms);
        let mut clock = ClusterClock::new(LocalTime(1_000), Nanos(0));
        let mut local = LocalTime(1_000);
        let mut last = clock.served_time(local);
        for (k, c) in corrections.iter().enumerate() {
            clock.slew(local, Nanos(*c), Ppm(rates[k]), period, Ppm(10_000.0));
            // Sample the round densely.
            for step in 1..=20 {
                let l = local + Nanos(period.0 * step / 20);
                let now = clock.served_time(l);
                prop_assert!(now >= last, "clock ran backwards: {:?} -> {:?}", last, now);
                last = now;
            }
            local += period;
        }
    }
}
