//! Byzantine strategies for the faulty nodes. A faulty node runs an honest core for its
//! own bookkeeping, but what it *answers* is decided here. It signs its lies with its
//! own key (it has no one else's), which is exactly the power a real Byzantine member has.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

/// What a faulty node does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// No faulty behaviour (the `faulty` nodes are honest): a control.
    None,
    /// A fixed large offset, claiming perfect accuracy.
    Liar,
    /// +Δ to half the peers, −Δ to the others.
    TwoFaced,
    /// Just inside what survives trimming, always pulling the cluster the same way (fast).
    Boundary,
    /// A fresh random offset in ±Δ for every reply.
    Random,
    /// Never answers.
    Mute,
    /// Honest until halfway, then silent for good.
    Crash,
    /// Answers with old signed readings.
    Replay,
    /// Answers late (up to most of a round).
    Slow,
    /// Faulty node i uses the (i mod 8)-th of the strategies above.
    Mixed,
}

impl Strategy {
    pub const ALL: [Strategy; 10] = [
        Strategy::None,
        Strategy::Liar,
        Strategy::TwoFaced,
        Strategy::Boundary,
        Strategy::Random,
        Strategy::Mute,
        Strategy::Crash,
        Strategy::Replay,
        Strategy::Slow,
        Strategy::Mixed,
    ];

    /// The strategies a `mixed` run spreads over its faulty nodes.
    pub const MIXED: [Strategy; 8] = [
        Strategy::Liar,
        Strategy::TwoFaced,
        Strategy::Boundary,
        Strategy::Random,
        Strategy::Mute,
        Strategy::Crash,
        Strategy::Replay,
        Strategy::Slow,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::None => "none",
            Strategy::Liar => "liar",
            Strategy::TwoFaced => "two-faced",
            Strategy::Boundary => "boundary",
            Strategy::Random => "random",
            Strategy::Mute => "mute",
            Strategy::Crash => "crash",
            Strategy::Replay => "replay",
            Strategy::Slow => "slow",
            Strategy::Mixed => "mixed",
        }
    }

    /// Whether some faulty node plays `boundary` (which needs the omniscient view).
    pub fn uses_boundary(self) -> bool {
        self == Strategy::Boundary
            || (self == Strategy::Mixed && Strategy::MIXED.contains(&Strategy::Boundary))
    }

    /// The concrete behaviour of the `k`-th faulty node.
    pub fn for_faulty(self, k: usize) -> Strategy {
        match self {
            Strategy::Mixed => Strategy::MIXED[k % Strategy::MIXED.len()],
            s => s,
        }
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Strategy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Strategy::ALL
            .iter()
            .copied()
            .find(|x| x.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<_> = Strategy::ALL.iter().map(|x| x.as_str()).collect();
                format!(
                    "unknown strategy {s:?}; expected one of {}",
                    names.join(", ")
                )
            })
    }
}
