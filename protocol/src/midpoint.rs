//! The Welch–Lynch fault-tolerant midpoint over intervals (spec §4.1).
//!
//! Given n intervals of which at most f are arbitrary: discard the f lowest lower ends
//! and the f highest upper ends; the agreed range runs from the lowest remaining lower
//! end to the highest remaining upper end, and the correction is its midpoint. With
//! n ≥ 3f+1 the result lies within the hull of the correct intervals whatever the f
//! others say (proved in spec §5.1; property-tested in `tests/midpoint_props.rs`).
//!
//! This differs from byztimed only in being a pure function over a slice, using
//! selection instead of a full sort (O(n) per round).

use crate::interval::Interval;
use crate::time::Nanos;

/// The outcome of one fault-tolerant midpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Agreement {
    /// The (f+1)-th lowest lower end.
    pub low: Nanos,
    /// The (f+1)-th highest upper end.
    pub high: Nanos,
}

impl Agreement {
    /// The correction: midpoint of `[low, high]`.
    pub fn midpoint(&self) -> Nanos {
        self.range().midpoint()
    }

    /// Half-width of the agreed range (an error bar; `low > high` is possible when
    /// intervals barely overlap, and counts by its absolute size).
    pub fn half_width(&self) -> Nanos {
        self.range().half_width()
    }

    /// `[min(low, high), max(low, high)]`.
    pub fn range(&self) -> Interval {
        Interval::new(self.low, self.high)
    }
}

/// Not enough intervals to trim f from each side and keep one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{got} intervals cannot tolerate f = {faulty}: need at least 2f+1 = {}", 2 * faulty + 1)]
pub struct TooFewIntervals {
    pub got: usize,
    pub faulty: usize,
}

/// The Welch–Lynch midpoint of `intervals` tolerating `faulty` arbitrary ones.
/// `scratch` is reused between calls to avoid allocating every round.
pub fn fault_tolerant_midpoint(
    intervals: &[Interval],
    faulty: usize,
    scratch: &mut Vec<Nanos>,
) -> Result<Agreement, TooFewIntervals> {
    let n = intervals.len();
    if n < 2 * faulty + 1 {
        return Err(TooFewIntervals { got: n, faulty });
    }
    scratch.clear();
    scratch.extend(intervals.iter().map(|i| i.lo));
    let (_, low, _) = scratch.select_nth_unstable(faulty);
    let low = *low;
    scratch.clear();
    scratch.extend(intervals.iter().map(|i| i.hi));
    let (_, high, _) = scratch.select_nth_unstable(n - 1 - faulty);
    Ok(Agreement { low, high: *high })
}

/// Plain median of point offsets (baseline; the lower median for even counts).
pub fn median(offsets: &mut [Nanos]) -> Option<Nanos> {
    if offsets.is_empty() {
        return None;
    }
    let mid = (offsets.len() - 1) / 2;
    let (_, m, _) = offsets.select_nth_unstable(mid);
    Some(*m)
}

/// The median of `values`, the mean of the middle two for an even count (a value that
/// sits in the middle, where [`median`] takes the lower of the two). Reorders `values`.
pub fn middle(values: &mut [Nanos]) -> Option<Nanos> {
    let n = values.len();
    if n == 0 {
        return None;
    }
    let (below, &mut upper, _) = values.select_nth_unstable(n / 2);
    if n % 2 == 1 {
        return Some(upper);
    }
    let lower = below.iter().copied().max().unwrap_or(upper);
    Some(Nanos(lower.0 + (upper.0 - lower.0) / 2))
}

/// Plain mean of point offsets (the Berkeley master's average; baseline).
pub fn mean(offsets: &[Nanos]) -> Option<Nanos> {
    if offsets.is_empty() {
        return None;
    }
    let sum: i128 = offsets.iter().map(|o| i128::from(o.0)).sum();
    Some(Nanos((sum / offsets.len() as i128) as i64))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iv(lo: i64, hi: i64) -> Interval {
        Interval::new(Nanos(lo), Nanos(hi))
    }

    /// Golden table: (intervals, f, expected low, expected high). Each row names the
    /// situation it pins down.
    #[test]
    fn golden_table() {
        let rows: &[(&str, Vec<Interval>, usize, i64, i64)] = &[
            ("one clock, no faults", vec![iv(-5, 5)], 0, -5, 5),
            ("f=0 takes the hull", vec![iv(0, 10), iv(20, 30)], 0, 0, 30),
            (
                "four agreeing clocks, f=1",
                vec![iv(-1, 1), iv(0, 2), iv(1, 3), iv(-2, 0)],
                1,
                -1,
                2,
            ),
            (
                "a liar far high is trimmed",
                vec![iv(-1, 1), iv(0, 2), iv(-2, 0), iv(1_000_000, 1_000_002)],
                1,
                -1,
                2,
            ),
            (
                "a liar far low is trimmed",
                vec![iv(-1, 1), iv(0, 2), iv(-2, 0), iv(-1_000_002, -1_000_000)],
                1,
                -2,
                1,
            ),
            (
                "unbounded interval (starting node) is trimmed",
                vec![iv(-1, 1), iv(0, 2), iv(-2, 0), Interval::unbounded()],
                1,
                -2,
                2,
            ),
            (
                "seven clocks, two liars pulling up",
                vec![
                    iv(0, 2),
                    iv(1, 3),
                    iv(2, 4),
                    iv(3, 5),
                    iv(4, 6),
                    iv(100, 102),
                    iv(100, 102),
                ],
                2,
                2,
                6,
            ),
            (
                "disjoint survivors: low > high",
                vec![iv(0, 1), iv(10, 11), iv(20, 21), iv(30, 31)],
                1,
                10,
                21,
            ),
        ];
        let mut scratch = Vec::new();
        for (name, intervals, f, low, high) in rows {
            let a = fault_tolerant_midpoint(intervals, *f, &mut scratch).unwrap();
            assert_eq!((a.low, a.high), (Nanos(*low), Nanos(*high)), "{name}");
        }
    }

    #[test]
    fn too_few_intervals() {
        let mut s = Vec::new();
        assert_eq!(
            fault_tolerant_midpoint(&[iv(0, 1), iv(0, 1)], 1, &mut s),
            Err(TooFewIntervals { got: 2, faulty: 1 })
        );
    }

    #[test]
    fn baselines() {
        assert_eq!(median(&mut [Nanos(3), Nanos(1), Nanos(2)]), Some(Nanos(2)));
        assert_eq!(mean(&[Nanos(3), Nanos(1), Nanos(2)]), Some(Nanos(2)));
        assert_eq!(median(&mut []), None);
        assert_eq!(middle(&mut [Nanos(3), Nanos(1), Nanos(2)]), Some(Nanos(2)));
        assert_eq!(
            middle(&mut [Nanos(4), Nanos(1), Nanos(2), Nanos(10)]),
            Some(Nanos(3))
        );
        assert_eq!(middle(&mut [Nanos(-5), Nanos(-2)]), Some(Nanos(-4)));
        assert_eq!(middle(&mut []), None);
    }
}
