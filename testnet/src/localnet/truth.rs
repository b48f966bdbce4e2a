//! Ground truth for a local testnet (design §8). Every node process reads the same
//! host clock, and in testing mode it reports, with each cluster-time sample, the host
//! `CLOCK_MONOTONIC_RAW` it was read at. The harness maps every node's sample to one
//! common host instant (extrapolating with that node's own measured rate) and takes
//! max − min over the correct, serving nodes: the true skew, not what nodes claim.

/// One node's (host, cluster) pair.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pair {
    pub host_ns: i64,
    pub cluster_ns: i64,
}

/// Largest rate difference we extrapolate with (a node's cluster clock against the
/// host's); anything beyond is a broken sample, not a clock.
const MAX_RATE_DEV: f64 = 1e-3;

/// The node's cluster clock read at host instant `at`, from its latest pair and its
/// rate against the host (from the previous pair, when there is one).
pub fn cluster_at(latest: Pair, previous: Option<Pair>, at: i64) -> i64 {
    let dev = match previous {
        Some(p) if latest.host_ns - p.host_ns > 100_000_000 => {
            let dh = (latest.host_ns - p.host_ns) as f64;
            let dc = (latest.cluster_ns - p.cluster_ns) as f64;
            (dc / dh - 1.0).clamp(-MAX_RATE_DEV, MAX_RATE_DEV)
        }
        _ => 0.0,
    };
    let dt = at - latest.host_ns;
    latest.cluster_ns + dt + (dt as f64 * dev).round() as i64
}

/// Max pairwise skew among nodes' clocks at host instant `at`; `None` with < 2 nodes.
pub fn skew_at(nodes: &[(Pair, Option<Pair>)], at: i64) -> Option<i64> {
    if nodes.len() < 2 {
        return None;
    }
    let (mut lo, mut hi) = (i64::MAX, i64::MIN);
    for &(latest, prev) in nodes {
        let c = cluster_at(latest, prev, at);
        lo = lo.min(c);
        hi = hi.max(c);
    }
    Some(hi - lo)
}

/// The `q`-quantile (0..=1) of `v` (sorted copy; nearest rank).
pub fn quantile(v: &[i64], q: f64) -> Option<i64> {
    if v.is_empty() {
        return None;
    }
    let mut s = v.to_vec();
    s.sort_unstable();
    let idx = ((s.len() - 1) as f64 * q).round() as usize;
    s.get(idx).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extrapolates_with_the_nodes_own_rate() {
        let prev = Pair {
            host_ns: 0,
            cluster_ns: 1_000,
        };
        // 100 ppm fast.
        let latest = Pair {
            host_ns: 1_000_000_000,
            cluster_ns: 1_000_100_000 + 1_000,
        };
        assert_eq!(
            cluster_at(latest, Some(prev), 2_000_000_000),
            2_000_200_000 + 1_000
        );
        // Without history: rate 1.
        assert_eq!(
            cluster_at(latest, None, 2_000_000_000),
            2_000_100_000 + 1_000
        );
    }

    #[test]
    fn skew_is_max_minus_min_at_one_instant() {
        let a = (
            Pair {
                host_ns: 10,
                cluster_ns: 110,
            },
            None,
        );
        let b = (
            Pair {
                host_ns: 20,
                cluster_ns: 100,
            },
            None,
        ); // 20 behind a
        let c = (
            Pair {
                host_ns: 15,
                cluster_ns: 115,
            },
            None,
        ); // equal to a
        assert_eq!(skew_at(&[a, b, c], 30), Some(20));
        assert_eq!(skew_at(&[a], 30), None);
    }

    #[test]
    fn absurd_rates_are_clamped() {
        let prev = Pair {
            host_ns: 0,
            cluster_ns: 0,
        };
        let latest = Pair {
            host_ns: 1_000_000_000,
            cluster_ns: 3_000_000_000,
        };
        let c = cluster_at(latest, Some(prev), 2_000_000_000);
        assert_eq!(c, 3_000_000_000 + 1_000_000_000 + 1_000_000);
    }

    #[test]
    fn quantiles() {
        assert_eq!(quantile(&[5, 1, 3], 0.5), Some(3));
        assert_eq!(quantile(&[], 0.5), None);
        assert_eq!(quantile(&[1, 2, 3, 4], 1.0), Some(4));
    }
}
