//! Judging peers (spec §4.5): a peer that is repeatedly an outlier, silent or
//! misbehaving becomes a *suspect*. Suspects are reported and audited; suspicion is
//! never used to trust anyone more. A peer that is repeatedly *far off* (beyond Π/2 of the
//! agreed range) is told so in our readings, so that a node that f+1 peers call far off
//! knows it is off. The two levels are deliberate: under a two-faced attack correct nodes
//! can miss each other's agreed range by a little while they contract, and if that were
//! echoed, each half would quarantine the other (measured: 10 of 21 correct nodes).

use serde::{Deserialize, Serialize};

/// What one round showed about a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Observation {
    /// A valid reading whose interval meets the agreed range.
    Good,
    /// A valid reading whose interval misses the agreed range (by more than our error).
    Outlier,
    /// An outlier that misses the agreed range by more than Π/2.
    FarOff,
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
    far_streak: u32,
    far_off: bool,
    suspect: Option<SuspectReason>,
}

impl PeerJudge {
    pub fn suspect(&self) -> Option<SuspectReason> {
        self.suspect
    }

    /// Whether the peer has been far off (beyond Π/2) for `after` rounds in a row.
    pub fn far_off(&self) -> bool {
        self.far_off
    }

    /// Records one round; `after` bad rounds in a row make a suspect, `after` good ones clear it.
    pub fn observe(&mut self, obs: Observation, after: u32) {
        if obs == Observation::FarOff {
            self.far_streak = self.far_streak.saturating_add(1);
        } else {
            self.far_streak = 0;
        }
        self.far_off = self.far_streak >= after;
        let reason = match obs {
            Observation::Good => {
                self.bad_streak = 0;
                self.good_streak = self.good_streak.saturating_add(1);
                if self.good_streak >= after {
                    self.suspect = None;
                }
                return;
            }
            Observation::Outlier | Observation::FarOff => SuspectReason::Outlier,
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

    #[test]
    fn far_off_needs_a_streak_of_its_own() {
        let mut j = PeerJudge::default();
        j.observe(Observation::FarOff, 2);
        j.observe(Observation::Outlier, 2);
        assert!(!j.far_off(), "a near outlier breaks the far-off streak");
        assert_eq!(j.suspect(), Some(SuspectReason::Outlier));
        j.observe(Observation::FarOff, 2);
        j.observe(Observation::FarOff, 2);
        assert!(j.far_off());
        j.observe(Observation::Good, 2);
        assert!(!j.far_off());
    }
}
