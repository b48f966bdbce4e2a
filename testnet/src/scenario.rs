//! A simulation scenario: everything that, with the seed, determines a run.

use bftime_protocol::Algorithm;
use serde::Serialize;

use crate::strategy::Strategy;

/// Which signature suite the simulated nodes use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CryptoChoice {
    /// ed25519 up to 31 nodes, the fast stand-in above.
    Auto,
    Ed25519,
    Fast,
}

/// One run's parameters. Times are in milliseconds or ppm, as on the command line.
#[derive(Debug, Clone, Serialize)]
pub struct Scenario {
    pub nodes: usize,
    /// Byzantine nodes actually present (may exceed what the protocol tolerates).
    pub faulty: usize,
    pub strategy: Strategy,
    pub rounds: u64,
    pub seed: u64,
    pub algorithm: Algorithm,
    pub round_period_ms: f64,
    pub precision_ms: f64,
    /// Mean one-way delay.
    pub delay_ms: f64,
    /// Extra one-way delay, uniform in [0, jitter].
    pub jitter_ms: f64,
    /// Fixed difference between the two directions of every path.
    pub asymmetry_ms: f64,
    /// How much longer every request takes than every answer: a bias of the stack rather
    /// than of a path (a responder that reads its clock late), the same for every pair, so
    /// every node sees every peer ahead by half of it.
    pub role_asymmetry_ms: f64,
    /// Oscillator frequency errors are uniform in ±drift_ppm.
    pub drift_ppm: f64,
    /// Amplitude of a slow sinusoidal wander of each oscillator's frequency.
    pub wander_ppm: f64,
    /// Initial clock offsets are uniform in ±initial_offset_ms.
    pub initial_offset_ms: f64,
    /// Probability that a message is lost.
    pub loss: f64,
    /// Honest nodes whose clock steps or stalls halfway through (they must quarantine).
    pub clock_faults: usize,
    /// Nodes cut off from everyone for `partition_rounds` rounds from round `rounds/3`.
    pub partition_nodes: usize,
    pub partition_rounds: u64,
    /// Size of a liar's / two-faced node's lie.
    pub lie_ms: f64,
    pub crypto: CryptoChoice,
}

impl Default for Scenario {
    fn default() -> Self {
        Scenario {
            nodes: 250,
            faulty: 83,
            strategy: Strategy::Mixed,
            rounds: 100,
            seed: 1,
            algorithm: Algorithm::Wl,
            round_period_ms: 1000.0,
            precision_ms: 200.0,
            delay_ms: 1.0,
            jitter_ms: 0.2,
            asymmetry_ms: 0.1,
            role_asymmetry_ms: 0.0,
            drift_ppm: 100.0,
            wander_ppm: 1.0,
            initial_offset_ms: 10_000.0,
            loss: 0.0,
            clock_faults: 0,
            partition_nodes: 0,
            partition_rounds: 0,
            lie_ms: 50.0,
            crypto: CryptoChoice::Auto,
        }
    }
}

/// A scenario that cannot run, said in one line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ScenarioError(pub String);

impl Scenario {
    /// The members `partition_nodes` cuts off: the correct ones just before the
    /// clock-faulty and the faulty ones (see `Simulation::new`). Empty without a
    /// partition; call on a validated scenario.
    pub fn partitioned_members(&self) -> std::ops::Range<usize> {
        let end = self.nodes.saturating_sub(self.faulty + self.clock_faults);
        end.saturating_sub(self.partition_nodes)..end
    }

    pub fn validate(&self) -> Result<(), ScenarioError> {
        let bad = |m: String| Err(ScenarioError(m));
        if self.nodes == 0 {
            return bad("--nodes must be at least 1".into());
        }
        if self.nodes > 5000 {
            return bad(format!(
                "--nodes {} is more than the simulator supports (5000)",
                self.nodes
            ));
        }
        if self.faulty >= self.nodes {
            return bad(format!(
                "--faulty {} must be less than --nodes {}",
                self.faulty, self.nodes
            ));
        }
        if self.faulty + self.clock_faults + self.partition_nodes > self.nodes {
            return bad("--faulty + --clock-faults + --partition-nodes exceed --nodes".into());
        }
        if self.rounds == 0 {
            return bad("--rounds must be at least 1".into());
        }
        for (name, v) in [
            ("--round-period-ms", self.round_period_ms),
            ("--precision-ms", self.precision_ms),
        ] {
            if !(v.is_finite() && v > 0.0) {
                return bad(format!("{name} must be positive, got {v}"));
            }
        }
        for (name, v) in [
            ("--delay-ms", self.delay_ms),
            ("--jitter-ms", self.jitter_ms),
            ("--asymmetry-ms", self.asymmetry_ms),
            ("--role-asymmetry-ms", self.role_asymmetry_ms),
            ("--drift-ppm", self.drift_ppm),
            ("--wander-ppm", self.wander_ppm),
            ("--initial-offset-ms", self.initial_offset_ms),
            ("--lie-ms", self.lie_ms),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return bad(format!("{name} must be zero or positive, got {v}"));
            }
        }
        if self.asymmetry_ms > 2.0 * self.delay_ms {
            return bad(
                "--asymmetry-ms cannot exceed twice --delay-ms (a path would have negative delay)"
                    .into(),
            );
        }
        if self.drift_ppm + self.wander_ppm > 1000.0 {
            return bad("--drift-ppm + --wander-ppm above 1000 ppm is not a clock".into());
        }
        if !(0.0..1.0).contains(&self.loss) {
            return bad(format!("--loss must be in [0, 1), got {}", self.loss));
        }
        if self.round_period_ms < 10.0 {
            return bad("--round-period-ms must be at least 10".into());
        }
        Ok(())
    }

    /// Whether this run signs with real ed25519.
    pub fn uses_ed25519(&self) -> bool {
        match self.crypto {
            CryptoChoice::Auto => self.nodes <= 31,
            CryptoChoice::Ed25519 => true,
            CryptoChoice::Fast => false,
        }
    }
}
