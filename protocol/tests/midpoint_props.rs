//! Property tests of the fault-tolerant midpoint (spec §4.3, §5.1).

use bftime_protocol::{Interval, Nanos, fault_tolerant_midpoint};
use proptest::prelude::*;

fn interval() -> impl Strategy<Value = Interval> {
    (-1_000_000_000i64..1_000_000_000, 0i64..10_000_000)
        .prop_map(|(c, w)| Interval::around(Nanos(c), Nanos(w)))
}

/// Anything a liar may send, including unbounded and absurd intervals.
fn arbitrary_interval() -> impl Strategy<Value = Interval> {
    prop_oneof![
        interval(),
        (any::<i32>(), any::<i32>()).prop_map(|(a, b)| Interval::new(
            Nanos(a as i64 * 1_000_000),
            Nanos(b as i64 * 1_000_000)
        )),
        Just(Interval::unbounded()),
        Just(Interval::point(Nanos(i64::MAX / 16))),
        Just(Interval::point(Nanos(-i64::MAX / 16))),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// With n ≥ 3f+1 intervals of which at most f are arbitrary, the midpoint lies in
    /// the hull of the correct intervals.
    #[test]
    fn midpoint_within_hull_of_correct(
        f in 0usize..6,
        extra in 0usize..4,
        correct in prop::collection::vec(interval(), 16),
        faulty in prop::collection::vec(arbitrary_interval(), 6),
        faulty_count_seed in 0usize..100,
        shuffle_seed in any::<u64>(),
    ) {
        let n = 3 * f + 1 + extra;
        let faulty_count = faulty_count_seed % (f + 1);
        let correct_count = n - faulty_count;
        prop_assume!(correct_count <= correct.len());
        let mut all: Vec<Interval> = correct[..correct_count].to_vec();
        all.extend_from_slice(&faulty[..faulty_count]);
        // Deterministic shuffle: order must not matter.
        let mut s = shuffle_seed | 1;
        for i in (1..all.len()).rev() {
            s ^= s << 13; s ^= s >> 7; s ^= s << 17;
            all.swap(i, (s % (i as u64 + 1)) as usize);
        }
        let mut scratch = Vec::new();
        let a = fault_tolerant_midpoint(&all, f, &mut scratch).unwrap();
        let lo = correct[..correct_count].iter().map(|i| i.lo).min().unwrap();
        let hi = correct[..correct_count].iter().map(|i| i.hi).max().unwrap();
        prop_assert!(lo <= a.low && a.high <= hi || (lo <= a.midpoint() && a.midpoint() <= hi),
            "midpoint {:?} outside correct hull [{:?}, {:?}]", a.midpoint(), lo, hi);
        prop_assert!(lo <= a.midpoint() && a.midpoint() <= hi);
    }

    /// The result does not depend on the order of the intervals.
    #[test]
    fn order_independent(v in prop::collection::vec(interval(), 1..40), f in 0usize..5) {
        prop_assume!(v.len() > 2 * f);
        let mut s = Vec::new();
        let a = fault_tolerant_midpoint(&v, f, &mut s).unwrap();
        let mut r = v.clone();
        r.reverse();
        let b = fault_tolerant_midpoint(&r, f, &mut s).unwrap();
        prop_assert_eq!(a, b);
    }

    /// With no faults and identical intervals, the midpoint is their centre.
    #[test]
    fn agreeing_clocks_agree(c in -1_000_000_000i64..1_000_000_000, w in 0i64..1_000_000, n in 1usize..50) {
        let v = vec![Interval::around(Nanos(c), Nanos(w)); n];
        let mut s = Vec::new();
        let a = fault_tolerant_midpoint(&v, (n - 1) / 3, &mut s).unwrap();
        prop_assert_eq!(a.midpoint(), Nanos(c));
    }
}
