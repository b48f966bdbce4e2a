//! The bftime protocol core: pure, deterministic, sans-IO.
//!
//! A node's whole protocol behaviour lives in [`Core`]. The driver feeds it events
//! stamped with the local time they happened at, and executes the [`Action`]s it
//! returns. Time, randomness and keys come in as arguments; nothing here reads a clock,
//! opens a socket or spawns a task. That is what lets the simulator run 250 nodes for
//! a thousand rounds in seconds, reproducibly from a seed.
//!
//! # Running
//! ```
//! use std::sync::Arc;
//! use bftime_crypto::{Ed25519Suite, NodeKey};
//! use bftime_protocol::{Action, Core, CoreConfig, LocalTime, MemberId, Nanos, Params};
//!
//! let key = NodeKey::from_seed(&[1; 32]);
//! let cfg = CoreConfig {
//!     me: MemberId(0),
//!     members: vec![key.public_key()].into(),
//!     cluster: 7,
//!     params: Params::for_members(1),
//!     detailed_summaries: false,
//!     incarnation: 1,
//!     batch_verification: false,
//! };
//! let (mut core, actions) = Core::new(cfg, Box::new(key), Arc::new(Ed25519Suite), LocalTime(0), Nanos(0)).unwrap();
//! let mut rng = rand::rngs::StdRng::from_seed([0; 32]);
//! # use rand::SeedableRng;
//! // The driver loop: wait for the timer, call the core, execute the actions.
//! let Action::SetTimer { at } = actions[0] else { unreachable!() };
//! for action in core.handle_timer(at, &mut rng) {
//!     match action {
//!         Action::SendRequest { .. } => { /* put it on the wire, stamp the send time */ }
//!         Action::SetTimer { .. } => { /* re-arm the one timer */ }
//!         Action::StateChanged(_) | Action::RoundCompleted(_) => { /* log, audit, metrics */ }
//!         Action::ReadingRejected { .. } => { /* log it */ }
//!     }
//! }
//! ```
//!
//! # Modules
//! - [`time`]: `Nanos`, `LocalTime`, `ClusterTime`, `Ppm`.
//! - [`offset`]: offset and delay from four timestamps; sample quality; intervals.
//! - [`midpoint`]: the Welch–Lynch fault-tolerant midpoint (and baselines).
//! - [`reading_codec`]: a reading's fixed 127-byte layout, encoded and decoded by hand.
//! - [`reading_serde`]: serde adapters that make postcard write that same layout.
//! - [`clock`]: the protocol clock and the slewed, never-backwards served clock.
//! - [`quarantine`]: health verdicts and the starting/synced/quarantined machine.
//! - [`suspect`]: judging peers.
//! - [`core`]: the round state machine tying them together.
//! - [`prefetch`]: a cache hint for drivers that know which peer's message comes next.
//!
//! The normative description is `spec/PROTOCOL.md`; section numbers cited in doc
//! comments refer to it.

pub mod clock;
pub mod core;
pub mod interval;
pub mod message;
pub mod midpoint;
pub mod offset;
pub mod params;
pub mod prefetch;
pub mod quarantine;
pub mod reading_codec;
pub mod reading_serde;
pub mod reject;
pub mod snapshot;
pub mod suspect;
pub mod time;

pub use crate::core::{
    Action, Core, CoreConfig, CoreError, ResponseOutcome, RoundSummary, TimeReading, TimeSource,
};
pub use clock::ClusterClock;
pub use interval::Interval;
pub use message::{Leaving, MemberId, Nonce, Reading, Request, SyncState};
pub use midpoint::{Agreement, fault_tolerant_midpoint};
pub use offset::Sample;
pub use params::{Algorithm, Params, ParamsError};
pub use quarantine::{HardViolation, QuarantineReason, Transition, Unhealthy};
pub use reject::{RejectCounts, RejectReason};
pub use snapshot::{NodeSnapshot, PeerRow};
pub use suspect::SuspectReason;
pub use time::{ClusterTime, LocalTime, Nanos, Ppm};
