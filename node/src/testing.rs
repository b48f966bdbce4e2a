//! The `[testing]` section of `node.toml`: a simulated local clock and a Byzantine
//! behaviour, for the testnet only. **Never for production**: a node with this section
//! lies on purpose. It is refused unless `enabled = true`, and the node logs a warning
//! at start and says `testing: true` in `/status`.

use std::fmt;

use serde::{Deserialize, Serialize};

/// How a testnet node misbehaves when it answers a reading request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Behaviour {
    /// Honest.
    #[default]
    None,
    /// Adds `lie_ms` to every reading and claims zero error.
    Liar,
    /// +`lie_ms` to even-numbered requesters, −`lie_ms` to odd ones.
    TwoFaced,
    /// Sits at the top edge of what it believes the agreed interval is (its own time plus
    /// its error bound), claiming zero error: always pulling the cluster forward while
    /// staying just inside what trimming keeps.
    Boundary,
    /// A fresh uniform offset within ±`lie_ms` for every reading.
    Random,
    /// Never answers.
    Mute,
    /// Answers honestly but late: a random delay up to `slow_max_ms`.
    Slow,
    /// Answers each requester with the first reading it ever gave it.
    Replay,
    /// Lies like `liar`, under a broken signature (one bit flipped): a reading a node
    /// that checks signatures in batches chains on arrival and must never use (spec §4.2).
    Forger,
}

impl Behaviour {
    /// Every behaviour, honest `None` first (the testnet's `mixed` spreads the rest).
    pub const ALL: [Behaviour; 9] = [
        Behaviour::None,
        Behaviour::Liar,
        Behaviour::TwoFaced,
        Behaviour::Boundary,
        Behaviour::Random,
        Behaviour::Mute,
        Behaviour::Slow,
        Behaviour::Replay,
        Behaviour::Forger,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Behaviour::None => "none",
            Behaviour::Liar => "liar",
            Behaviour::TwoFaced => "two-faced",
            Behaviour::Boundary => "boundary",
            Behaviour::Random => "random",
            Behaviour::Mute => "mute",
            Behaviour::Slow => "slow",
            Behaviour::Replay => "replay",
            Behaviour::Forger => "forger",
        }
    }
}

impl fmt::Display for Behaviour {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Behaviour {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Behaviour::ALL
            .iter()
            .copied()
            .find(|b| b.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<_> = Behaviour::ALL.iter().map(|b| b.as_str()).collect();
                format!(
                    "unknown behaviour {s:?}; expected one of {}",
                    names.join(", ")
                )
            })
    }
}

fn default_lie_ms() -> f64 {
    1000.0
}
fn default_slow_max_ms() -> f64 {
    800.0
}

/// The `[testing]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestingConfig {
    /// Must be `true`; a section without it is refused.
    pub enabled: bool,
    /// Simulated clock: initial offset from the host clock, ms.
    #[serde(default)]
    pub initial_offset_ms: f64,
    /// Simulated clock: frequency error, ppm.
    #[serde(default)]
    pub drift_ppm: f64,
    /// Simulated clock: step by `step_ms` this many seconds after start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_after_s: Option<f64>,
    #[serde(default)]
    pub step_ms: f64,
    /// Simulated clock: freeze for `stall_ms` this many seconds after start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stall_after_s: Option<f64>,
    #[serde(default)]
    pub stall_ms: f64,
    /// Byzantine behaviour when answering requests.
    #[serde(default)]
    pub behaviour: Behaviour,
    /// Size of the lie for `liar`, `two-faced`, `random` and `forger`, ms.
    #[serde(default = "default_lie_ms")]
    pub lie_ms: f64,
    /// Longest extra delay for `slow`, ms.
    #[serde(default = "default_slow_max_ms")]
    pub slow_max_ms: f64,
    /// Seed for the behaviour's randomness.
    #[serde(default)]
    pub seed: u64,
    /// Simulated disk failure: every audit write fails this many seconds after start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit_fail_after_s: Option<f64>,
    /// Simulated slow disk: each audit record is written in two halves with this pause
    /// between them, so a crash can land inside a record (the crash-recovery test).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit_write_pause_ms: Option<f64>,
}

impl TestingConfig {
    /// An enabled section with an honest, perfect clock.
    pub fn enabled() -> Self {
        TestingConfig {
            enabled: true,
            initial_offset_ms: 0.0,
            drift_ppm: 0.0,
            step_after_s: None,
            step_ms: 0.0,
            stall_after_s: None,
            audit_fail_after_s: None,
            audit_write_pause_ms: None,
            stall_ms: 0.0,
            behaviour: Behaviour::None,
            lie_ms: default_lie_ms(),
            slow_max_ms: default_slow_max_ms(),
            seed: 0,
        }
    }

    /// Range checks; returns (field, problem).
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        let finite = |field: &'static str, v: f64, max: f64| {
            if v.is_finite() && v.abs() <= max {
                Ok(())
            } else {
                Err((field, format!("{v} is out of range ±{max}")))
            }
        };
        finite("initial_offset_ms", self.initial_offset_ms, 1e9)?;
        finite("drift_ppm", self.drift_ppm, 100_000.0)?;
        finite("step_ms", self.step_ms, 1e9)?;
        finite("lie_ms", self.lie_ms, 1e9)?;
        if let Some(s) = self.step_after_s {
            finite("step_after_s", s, 1e7)?;
        }
        if let Some(s) = self.audit_fail_after_s {
            finite("audit_fail_after_s", s, 1e7)?;
        }
        if let Some(ms) = self.audit_write_pause_ms {
            finite("audit_write_pause_ms", ms, 1e4)?;
        }
        if let Some(s) = self.stall_after_s {
            finite("stall_after_s", s, 1e7)?;
        }
        if !(self.stall_ms.is_finite() && (0.0..=1e9).contains(&self.stall_ms)) {
            return Err(("stall_ms", format!("{} must be in 0..=1e9", self.stall_ms)));
        }
        if !(self.slow_max_ms.is_finite() && (0.0..=60_000.0).contains(&self.slow_max_ms)) {
            return Err((
                "slow_max_ms",
                format!("{} must be in 0..=60000", self.slow_max_ms),
            ));
        }
        Ok(())
    }
}
