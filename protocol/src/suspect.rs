//! Judging peers (spec §4.5): a peer that is repeatedly an outlier, silent or
//! misbehaving becomes a *suspect*. Suspects are reported and audited; suspicion is
//! never used to trust anyone more. An outlier flag is also echoed back in our readings
//! so that a node that f+1 peers call an outlier knows it is off.

use serde::{Deserialize, Serialize};

/// What one round showed about a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Observation {
    /// A valid reading whose interval meets the agreed range.
    Good,
    /// A valid reading whose interval misses the agreed range.
    Outlier,
    /// No valid reading this round.
    Missing,
    /// It sent something provably wrong (bad signature, replay, wrong round…).
    Misbehaved,
}

/// Why a peer is a suspect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SuspectReason {
    Outlier,
    Unresponsive,
    Misbehaving,
}

/// Streak counters for one peer.
#[derive(Debug, Clone, Default)]
pub struct PeerJudge {
    bad_streak: u32,
    good_streak: u32,
    suspect: Option<SuspectReason>,
}

impl PeerJudge {
    pub fn suspect(&self) -> Option<SuspectReason> {
        self.suspect
    }

    /// Records one round; `after` bad rounds in a row make a suspect, `after` good ones clear it.
    pub fn observe(&mut self, obs: Observation, after: u32) {
        let reason = match obs {
            Observation::Good => {
                self.bad_streak = 0;
                self.good_streak = self.good_streak.saturating_add(1);
                if self.good_streak >= after {
                    self.suspect = None;
                }
                return;
            }
            Observation::Outlier => SuspectReason::Outlier,
            Observation::Missing => SuspectReason::Unresponsive,
            Observation::Misbehaved => SuspectReason::Misbehaving,
        };
        self.good_streak = 0;
        self.bad_streak = self.bad_streak.saturating_add(1);
        if self.bad_streak >= after {
            self.suspect = Some(reason);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streaks_make_and_clear_suspects() {
        let mut j = PeerJudge::default();
        j.observe(Observation::Outlier, 3);
        j.observe(Observation::Outlier, 3);
        assert_eq!(j.suspect(), None);
        j.observe(Observation::Missing, 3);
        assert_eq!(j.suspect(), Some(SuspectReason::Unresponsive));
        j.observe(Observation::Good, 3);
        j.observe(Observation::Good, 3);
        assert!(j.suspect().is_some());
        j.observe(Observation::Good, 3);
        assert_eq!(j.suspect(), None);
    }
}
