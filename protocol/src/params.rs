//! Protocol parameters (spec §1): everything the core needs that is the same on every
//! member. The node fills them from `cluster.toml`; the simulator from its flags.

use serde::{Deserialize, Serialize};

use crate::time::{Nanos, Ppm};

/// How a node turns its readings into a correction (spec §4.3). Only `Wl` is bftime;
/// the others are baselines for the simulator so that our figures are ratios.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Algorithm {
    /// Welch–Lynch fault-tolerant interval midpoint with rate correction (ours).
    Wl,
    /// A master (member 0) averages every clock; the others follow the master.
    Berkeley,
    /// Plain median of the offsets (CometBFT's old BFT time).
    Median,
    /// byztimed's README: best sample per peer, interval midpoint, no rate correction.
    Byztimed,
}

impl Algorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Wl => "wl",
            Algorithm::Berkeley => "berkeley",
            Algorithm::Median => "median",
            Algorithm::Byztimed => "byztimed",
        }
    }
}

/// Cluster-wide protocol parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Params {
    /// Number of members, n.
    pub members: usize,
    /// Faulty members tolerated, f; at most ⌊(n−1)/3⌋.
    pub faulty: usize,
    /// Round period P.
    pub round_period: Nanos,
    /// Precision bound Π: correct nodes' cluster clocks must stay within this of each other.
    pub precision: Nanos,
    /// Bound on a correct local oscillator's frequency error, ρ.
    pub max_drift: Ppm,
    /// Fastest rate change the served clock may make while serving (slewing).
    pub max_slew: Ppm,
    /// Fraction of the round over which requests are spread (the rest is margin for replies).
    pub request_spread: f64,
    /// Request slots per round: requests to peers are sent in this many batches.
    pub request_slots: u32,
    /// Exchanges with each peer per round (best sample kept).
    pub exchanges_per_round: u32,
    /// Consecutive unhealthy rounds that quarantine a synced node (K).
    pub unhealthy_rounds: u32,
    /// Consecutive healthy rounds a quarantined node needs to rejoin (M).
    pub probation_rounds: u32,
    /// Whether a quarantined node may rejoin after probation.
    pub allow_rejoin: bool,
    /// Consecutive healthy rounds a starting node needs before it serves time.
    pub sync_rounds: u32,
    /// A starting node runs rounds this many times faster (P / divisor), so a cold
    /// cluster converges in fewer seconds; boundaries stay aligned with those of P.
    pub startup_round_divisor: u32,
    /// Consecutive bad rounds (outlier, missing, misbehaving) before a peer is a suspect.
    pub suspect_after: u32,
    pub algorithm: Algorithm,
}

/// A parameter set that cannot work, with the field and the fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid parameter `{field}`: {problem}")]
pub struct ParamsError {
    pub field: &'static str,
    pub problem: String,
}

impl Params {
    /// Defaults for `n` members with the largest tolerable f.
    pub fn for_members(n: usize) -> Params {
        Params {
            members: n,
            faulty: n.saturating_sub(1) / 3,
            round_period: Nanos::from_secs(1),
            precision: Nanos::from_millis(200),
            max_drift: Ppm(200.0),
            max_slew: Ppm(10_000.0),
            request_spread: 0.5,
            request_slots: 16,
            exchanges_per_round: 1,
            unhealthy_rounds: 3,
            probation_rounds: 10,
            allow_rejoin: true,
            sync_rounds: 4,
            startup_round_divisor: 4,
            suspect_after: 3,
            algorithm: Algorithm::Wl,
        }
    }

    /// Checks the invariants the analysis in spec §5 relies on.
    pub fn validate(&self) -> Result<(), ParamsError> {
        let err = |field, problem: String| Err(ParamsError { field, problem });
        if self.members == 0 || self.members > usize::from(u16::MAX) {
            return err(
                "members",
                format!("{} members; need 1..=65535", self.members),
            );
        }
        if self.faulty > (self.members - 1) / 3 {
            return err(
                "faulty",
                format!(
                    "f = {} but n = {} tolerates at most ⌊(n−1)/3⌋ = {}; lower f or add members",
                    self.faulty,
                    self.members,
                    (self.members - 1) / 3
                ),
            );
        }
        if self.round_period < Nanos::from_millis(10) {
            return err(
                "round_period",
                format!("{} is too short; use at least 10 ms", self.round_period),
            );
        }
        if self.precision <= Nanos::ZERO {
            return err("precision", "must be positive (e.g. 200 ms)".into());
        }
        if !(0.0..=100_000.0).contains(&self.max_drift.0) {
            return err(
                "max_drift",
                format!("{} out of range 0..=100000 ppm", self.max_drift),
            );
        }
        if !(1.0..=100_000.0).contains(&self.max_slew.0)
            || self.max_slew.0 <= 4.0 * self.max_drift.0
        {
            return err(
                "max_slew",
                format!(
                    "{} must be in 1..=100000 ppm and above 4 × max_drift",
                    self.max_slew
                ),
            );
        }
        if !(self.request_spread > 0.0 && self.request_spread <= 0.8) {
            return err(
                "request_spread",
                format!("{} must be in (0, 0.8]", self.request_spread),
            );
        }
        if self.request_slots == 0 || self.request_slots > 1000 {
            return err(
                "request_slots",
                format!("{} must be in 1..=1000", self.request_slots),
            );
        }
        if self.exchanges_per_round == 0 || self.exchanges_per_round > self.request_slots {
            return err("exchanges_per_round", "must be in 1..=request_slots".into());
        }
        if self.unhealthy_rounds == 0 {
            return err("unhealthy_rounds", "must be at least 1".into());
        }
        if !(1..=16).contains(&self.startup_round_divisor)
            || self.round_period.0 / i64::from(self.startup_round_divisor.max(1))
                < Nanos::from_millis(10).0
        {
            return err(
                "startup_round_divisor",
                "must be in 1..=16 and leave start-up rounds of at least 10 ms".into(),
            );
        }
        if self.sync_rounds == 0 || self.suspect_after == 0 {
            return err(
                "sync_rounds",
                "sync_rounds and suspect_after must be at least 1".into(),
            );
        }
        Ok(())
    }

    /// Readings (own included) a round needs to be healthy: n − f.
    pub fn quorum(&self) -> usize {
        self.members - self.faulty
    }

    /// Bound on the rate of a correct node's protocol clock relative to true time:
    /// oscillator error plus the largest rate correction we allow (both ρ).
    pub fn effective_drift(&self) -> Ppm {
        Ppm(2.0 * self.max_drift.0)
    }

    /// The round period of a node that is starting (not yet serving).
    pub fn startup_round_period(&self) -> Nanos {
        Nanos(self.round_period.0 / i64::from(self.startup_round_divisor.max(1)))
    }

    /// The largest correction that can be slewed away within one round.
    pub fn slew_budget(&self) -> Nanos {
        self.round_period.scale(self.max_slew)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate() {
        for n in [1, 4, 7, 31, 250, 1000] {
            Params::for_members(n).validate().unwrap();
        }
        assert_eq!(Params::for_members(250).faulty, 83);
    }

    #[test]
    fn too_many_faulty_is_named() {
        let mut p = Params::for_members(250);
        p.faulty = 84;
        assert_eq!(p.validate().unwrap_err().field, "faulty");
    }
}
