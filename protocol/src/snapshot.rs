//! `NodeSnapshot`: the one observable state that feeds `/status`, `bftime status`,
//! `/metrics` and the tests (ntpd-rs's `ObservableState`). Field names are part of the
//! JSON interface that scripts read: add fields, never rename them.

use serde::{Deserialize, Serialize};

use crate::message::{MemberId, SyncState};
use crate::reject::RejectCounts;
use crate::suspect::SuspectReason;

/// A node's state at one instant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeSnapshot {
    pub member: MemberId,
    pub state: SyncState,
    /// Serving time to applications (only when `synced`).
    pub serving: bool,
    pub quarantine_reason: Option<String>,
    /// Short stable form of the reason (e.g. `offset-beyond-bound`).
    pub quarantine_code: Option<String>,
    pub round: u64,
    pub local_time_ns: i64,
    pub cluster_time_ns: i64,
    /// Cluster clock minus local clock. The node seeds its cluster clock from the host's
    /// wall clock, so on a real node this is about the Unix epoch: see `applied_ns`.
    pub offset_ns: i64,
    /// Everything this node has moved its clock by since it started: `offset_ns` less
    /// the offset it started with (steps, slews and rate correction).
    #[serde(default)]
    pub applied_ns: i64,
    /// The last correction the midpoint asked for.
    pub last_correction_ns: i64,
    /// Part of past corrections still being slewed in.
    pub pending_slew_ns: i64,
    /// Error bound of the cluster clock; `null` before the first agreement.
    pub error_ns: Option<i64>,
    /// Rate correction applied to the local oscillator.
    pub rate_ppm: f64,
    pub members: usize,
    pub faulty_tolerated: usize,
    /// Peers whose readings the last round could use.
    pub members_answered: usize,
    pub readings_accepted: u64,
    pub readings_rejected: RejectCounts,
    pub peers: Vec<PeerRow>,
}

/// What we know of one peer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeerRow {
    pub member: MemberId,
    /// Its protocol clock minus ours at the last accepted reading.
    pub offset_ns: Option<i64>,
    pub delay_ns: Option<i64>,
    /// Its own reported error.
    pub error_ns: Option<i64>,
    pub state: Option<SyncState>,
    pub suspect: Option<SuspectReason>,
    pub accepted: u64,
    pub rejected: RejectCounts,
    /// Set when it announced that it left service, with its reason.
    pub left: Option<String>,
}
