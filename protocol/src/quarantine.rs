//! Health and quarantine policy (spec §6, design §5). Pure: it sees one verdict per
//! round and answers with a state transition, if any.
//!
//! - A round is *healthy* when the node had a quorum of readings, its error bar is
//!   below Π/2, its correction fits the slew budget and is consistent with the last one.
//!   Ambiguous measurements count as healthy: only a bound the node can *prove* it broke
//!   is a hard violation (CockroachDB's lesson — noise must not kill good nodes).
//! - Synced → Quarantined after K consecutive unhealthy rounds, or at once on a hard
//!   violation. Quarantined → Synced after M consecutive healthy rounds (probation),
//!   if rejoining is allowed. Starting → Synced after `sync_rounds` healthy rounds.

use serde::{Deserialize, Serialize};

use crate::message::SyncState;
use crate::params::Params;
use crate::time::Nanos;

/// Why one round was unhealthy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Unhealthy {
    /// Fewer than n − f usable readings (own included).
    TooFewReadings { got: usize, need: usize },
    /// The agreed error bar is not below Π/2.
    ErrorTooLarge { error: Nanos, limit: Nanos },
    /// The correction is more than one round of slewing can absorb.
    CorrectionTooLarge { correction: Nanos, budget: Nanos },
    /// The new agreement contradicts the previous one beyond what drift allows
    /// (byztimed's consistency check); a node that stays serving moved by the
    /// allowance only (spec §4.4).
    Inconsistent { correction: Nanos, allowance: Nanos },
    /// A node that does not serve yet: fewer than n − f clocks (own included) lie
    /// within Π/4 of the agreement (spec §6.1). Trimming needs only n − 2f to agree;
    /// a node that started serving on that little could see the cluster settle
    /// elsewhere once the rest of the mesh forms, and quarantine for nothing.
    NoQuorumAgrees { agree: usize, need: usize },
}

/// A violation that quarantines a serving node at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum HardViolation {
    /// Our clock is provably more than Π from the agreed interval: |correction| − error > Π.
    OffsetBeyondBound {
        offset: Nanos,
        error: Nanos,
        bound: Nanos,
    },
    /// The local clock went backwards.
    LocalClockBackwards { by: Nanos },
    /// At least f+1 peers say we are an outlier: one of them is correct.
    SuspectedByPeers { count: usize, threshold: usize },
    /// The driver could not write the audit log: a node must not serve time it cannot
    /// account for (the node's `[audit] quarantine_on_failure`).
    AuditLogUnwritable,
}

/// Why a node is quarantined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "cause")]
pub enum QuarantineReason {
    Unhealthy { rounds: u32, last: Unhealthy },
    Hard { violation: HardViolation },
}

impl QuarantineReason {
    /// A short stable identifier (hook environment, metrics labels).
    pub fn code(&self) -> &'static str {
        match self {
            QuarantineReason::Unhealthy { last, .. } => match last {
                Unhealthy::TooFewReadings { .. } => "too-few-readings",
                Unhealthy::ErrorTooLarge { .. } => "error-too-large",
                Unhealthy::CorrectionTooLarge { .. } => "correction-too-large",
                Unhealthy::Inconsistent { .. } => "inconsistent",
                Unhealthy::NoQuorumAgrees { .. } => "no-quorum-agrees",
            },
            QuarantineReason::Hard { violation } => match violation {
                HardViolation::OffsetBeyondBound { .. } => "offset-beyond-bound",
                HardViolation::LocalClockBackwards { .. } => "local-clock-backwards",
                HardViolation::SuspectedByPeers { .. } => "suspected-by-peers",
                HardViolation::AuditLogUnwritable => "audit-log-unwritable",
            },
        }
    }
}

impl std::fmt::Display for QuarantineReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            QuarantineReason::Unhealthy { rounds, last } => {
                write!(f, "{rounds} consecutive unhealthy rounds, last: {last}")
            }
            QuarantineReason::Hard { violation } => write!(f, "{violation}"),
        }
    }
}

impl std::fmt::Display for Unhealthy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unhealthy::NoQuorumAgrees { agree, need } => {
                write!(
                    f,
                    "only {agree} of the {need} clocks needed agree within Π/4"
                )
            }
            Unhealthy::TooFewReadings { got, need } => {
                write!(f, "only {got} of {need} readings")
            }
            Unhealthy::ErrorTooLarge { error, limit } => {
                write!(f, "error {error} ≥ {limit}")
            }
            Unhealthy::CorrectionTooLarge { correction, budget } => {
                write!(f, "correction {correction} beyond slew budget {budget}")
            }
            Unhealthy::Inconsistent {
                correction,
                allowance,
            } => {
                write!(
                    f,
                    "correction {correction} inconsistent with previous agreement (allowance {allowance})"
                )
            }
        }
    }
}

impl std::fmt::Display for HardViolation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HardViolation::OffsetBeyondBound {
                offset,
                error,
                bound,
            } => {
                write!(
                    f,
                    "clock provably off: offset {offset} ± {error} exceeds Π = {bound}"
                )
            }
            HardViolation::LocalClockBackwards { by } => {
                write!(f, "local clock went backwards by {by}")
            }
            HardViolation::AuditLogUnwritable => {
                write!(
                    f,
                    "the audit log could not be written (the node does not retry: fix the disk, then restart it)"
                )
            }
            HardViolation::SuspectedByPeers { count, threshold } => {
                write!(
                    f,
                    "{count} peers list this node as an outlier (threshold {threshold})"
                )
            }
        }
    }
}

/// The health judgement of one round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Healthy,
    Unhealthy(Unhealthy),
    Hard(HardViolation),
}

/// A change of [`SyncState`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transition {
    pub from: SyncState,
    pub to: SyncState,
    /// Set when `to` is `Quarantined`.
    pub reason: Option<QuarantineReason>,
}

/// The state machine. Holds streak counters only; all policy numbers come from `Params`.
#[derive(Debug, Clone)]
pub struct HealthPolicy {
    state: SyncState,
    reason: Option<QuarantineReason>,
    healthy_streak: u32,
    unhealthy_streak: u32,
}

impl Default for HealthPolicy {
    fn default() -> Self {
        Self::new()
    }
}

impl HealthPolicy {
    pub fn new() -> HealthPolicy {
        HealthPolicy {
            state: SyncState::Starting,
            reason: None,
            healthy_streak: 0,
            unhealthy_streak: 0,
        }
    }

    pub fn state(&self) -> SyncState {
        self.state
    }

    pub fn reason(&self) -> Option<QuarantineReason> {
        self.reason
    }

    pub fn serving(&self) -> bool {
        self.state == SyncState::Synced
    }

    pub fn unhealthy_streak(&self) -> u32 {
        self.unhealthy_streak
    }

    /// Quarantines at once (e.g. the driver lost its key); `None` if already quarantined.
    pub fn force_quarantine(&mut self, reason: QuarantineReason) -> Option<Transition> {
        if self.state == SyncState::Quarantined {
            // The fault persists: probation starts over.
            self.healthy_streak = 0;
            return None;
        }
        Some(self.go(SyncState::Quarantined, Some(reason)))
    }

    fn go(&mut self, to: SyncState, reason: Option<QuarantineReason>) -> Transition {
        let from = self.state;
        self.state = to;
        self.reason = reason;
        self.healthy_streak = 0;
        self.unhealthy_streak = 0;
        Transition { from, to, reason }
    }

    /// Feeds one round's verdict; returns the transition it causes, if any.
    pub fn on_round(&mut self, verdict: Verdict, params: &Params) -> Option<Transition> {
        match verdict {
            Verdict::Healthy => {
                self.healthy_streak = self.healthy_streak.saturating_add(1);
                self.unhealthy_streak = 0;
            }
            Verdict::Unhealthy(_) | Verdict::Hard(_) => {
                self.healthy_streak = 0;
                self.unhealthy_streak = self.unhealthy_streak.saturating_add(1);
            }
        }
        match (self.state, verdict) {
            (SyncState::Starting, Verdict::Healthy)
                if self.healthy_streak >= params.sync_rounds =>
            {
                Some(self.go(SyncState::Synced, None))
            }
            (SyncState::Synced, Verdict::Hard(violation)) => Some(self.go(
                SyncState::Quarantined,
                Some(QuarantineReason::Hard { violation }),
            )),
            (SyncState::Synced, Verdict::Unhealthy(last))
                if self.unhealthy_streak >= params.unhealthy_rounds =>
            {
                let rounds = self.unhealthy_streak;
                Some(self.go(
                    SyncState::Quarantined,
                    Some(QuarantineReason::Unhealthy { rounds, last }),
                ))
            }
            (SyncState::Quarantined, Verdict::Healthy)
                if params.allow_rejoin && self.healthy_streak >= params.probation_rounds =>
            {
                Some(self.go(SyncState::Synced, None))
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> Params {
        let mut p = Params::for_members(4);
        p.unhealthy_rounds = 3;
        p.probation_rounds = 2;
        p.sync_rounds = 2;
        p
    }

    const BAD: Verdict = Verdict::Unhealthy(Unhealthy::TooFewReadings { got: 1, need: 3 });
    const HARD: Verdict = Verdict::Hard(HardViolation::LocalClockBackwards { by: Nanos(5) });

    #[test]
    fn starting_syncs_after_healthy_streak() {
        let p = params();
        let mut h = HealthPolicy::new();
        assert_eq!(h.on_round(Verdict::Healthy, &p), None);
        assert_eq!(
            h.on_round(BAD, &p),
            None,
            "a starting node never quarantines"
        );
        assert_eq!(h.on_round(HARD, &p), None);
        assert_eq!(h.on_round(Verdict::Healthy, &p), None);
        let t = h.on_round(Verdict::Healthy, &p).unwrap();
        assert_eq!((t.from, t.to), (SyncState::Starting, SyncState::Synced));
        assert!(h.serving());
    }

    #[test]
    fn k_unhealthy_rounds_quarantine_and_healthy_resets_streak() {
        let p = params();
        let mut h = HealthPolicy::new();
        let _ = h.on_round(Verdict::Healthy, &p);
        let _ = h.on_round(Verdict::Healthy, &p);
        assert_eq!(h.on_round(BAD, &p), None);
        assert_eq!(h.on_round(BAD, &p), None);
        assert_eq!(h.on_round(Verdict::Healthy, &p), None);
        assert_eq!(h.on_round(BAD, &p), None);
        assert_eq!(h.on_round(BAD, &p), None);
        let t = h.on_round(BAD, &p).unwrap();
        assert_eq!(t.to, SyncState::Quarantined);
        assert_eq!(t.reason.unwrap().code(), "too-few-readings");
        assert!(!h.serving());
    }

    #[test]
    fn hard_violation_quarantines_at_once_then_probation_rejoins() {
        let p = params();
        let mut h = HealthPolicy::new();
        let _ = h.on_round(Verdict::Healthy, &p);
        let _ = h.on_round(Verdict::Healthy, &p);
        let t = h.on_round(HARD, &p).unwrap();
        assert_eq!(t.reason.unwrap().code(), "local-clock-backwards");
        assert_eq!(h.on_round(Verdict::Healthy, &p), None);
        assert_eq!(
            h.on_round(BAD, &p),
            None,
            "probation restarts after a bad round"
        );
        assert_eq!(h.on_round(Verdict::Healthy, &p), None);
        let t = h.on_round(Verdict::Healthy, &p).unwrap();
        assert_eq!((t.from, t.to), (SyncState::Quarantined, SyncState::Synced));
    }

    #[test]
    fn a_persisting_forced_fault_holds_the_node_in_probation() {
        let p = params();
        let mut h = HealthPolicy::new();
        let _ = h.on_round(Verdict::Healthy, &p);
        let _ = h.on_round(Verdict::Healthy, &p);
        let forced = QuarantineReason::Hard {
            violation: HardViolation::AuditLogUnwritable,
        };
        assert!(h.force_quarantine(forced).is_some());
        for _ in 0..10 {
            assert_eq!(h.force_quarantine(forced), None, "already quarantined");
            assert_eq!(
                h.on_round(Verdict::Healthy, &p),
                None,
                "no rejoin while forced"
            );
        }
        assert_eq!(h.state(), SyncState::Quarantined);
    }

    #[test]
    fn no_rejoin_when_disallowed() {
        let mut p = params();
        p.allow_rejoin = false;
        let mut h = HealthPolicy::new();
        let _ = h.on_round(Verdict::Healthy, &p);
        let _ = h.on_round(Verdict::Healthy, &p);
        let _ = h.on_round(HARD, &p);
        for _ in 0..100 {
            assert_eq!(h.on_round(Verdict::Healthy, &p), None);
        }
        assert_eq!(h.state(), SyncState::Quarantined);
    }
}
