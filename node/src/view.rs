//! The JSON the local API serves and `bftime status` / `bftime now` print. Field names
//! are an interface scripts rely on: add fields, never rename them.

use bftime_protocol::NodeSnapshot;
use serde::{Deserialize, Serialize};

/// `GET /status`: the core's [`NodeSnapshot`] (flattened) plus what the node knows.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatusView {
    /// This node's name in the cluster file.
    pub node: String,
    pub version: String,
    pub cluster_id: String,
    /// Member names, indexed by member id (`peers[].member`).
    pub member_names: Vec<String>,
    pub round_period_ms: u64,
    pub precision_ms: u64,
    /// True when the node runs with a `[testing]` section (simulated clock, maybe lying).
    pub testing: bool,
    /// Testing mode only: the host `CLOCK_MONOTONIC_RAW` at which `local_time_ns` and
    /// `cluster_time_ns` were read (the testnet's ground truth, design §8).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_monotonic_ns: Option<i64>,
    pub uptime_s: f64,
    /// Members we hold a connection to.
    pub connected_peers: usize,
    pub quarantines: u64,
    pub network: NetCounters,
    /// The audit log, when the node keeps one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit: Option<AuditView>,
    #[serde(flatten)]
    pub snapshot: NodeSnapshot,
}

/// The audit writer's progress.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditView {
    pub path: String,
    pub records_written: u64,
    pub bytes_written: u64,
    pub failed: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Network-layer counters (see `net::NetStats`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetCounters {
    pub connections_refused: u64,
    pub frames_oversized: u64,
    pub frames_malformed: u64,
    pub requests_overloaded: u64,
    pub requests_unsent: u64,
    pub response_timeouts: u64,
    pub inbound_streams_refused: u64,
    pub requests_answered: u64,
    /// Requests the core refused to answer.
    pub requests_refused: u64,
    /// Bytes of bftime frames written / read (no Noise, Yamux or TCP overhead).
    #[serde(default)]
    pub frame_bytes_sent: u64,
    #[serde(default)]
    pub frame_bytes_received: u64,
}

/// `GET /now`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NowView {
    pub cluster_time_ns: i64,
    pub earliest_ns: i64,
    pub latest_ns: i64,
    /// `starting`, `synced` or `quarantined`.
    pub status: String,
    pub serving: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The quarantine reason's stable code (`offset-beyond-bound`, `too-few-readings`,
    /// …, as `/status` gives it), for scripts; present with `reason`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason_code: Option<String>,
    /// `cluster_time_ns` in milliseconds, as a float: exact to well under a microsecond,
    /// and readable where JSON numbers are doubles (JavaScript loses the last digits of
    /// a 19-digit integer).
    #[serde(default)]
    pub cluster_time_ms: f64,
    /// The node's clock epoch, as 16 hex digits (a string: it is a random 64-bit number,
    /// which a JSON double could not tell from its successor): unchanged between two
    /// reads means the node's clock did not step in between (spec §2.6). It changes on a
    /// step, a state change or a backward correction beyond Π.
    #[serde(default)]
    pub epoch: String,
    /// This node's round label (local to the node: nodes started at other times count
    /// their quarter-length start-up rounds differently).
    pub round: u64,
    /// Testing mode only (see [`StatusView::host_monotonic_ns`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_monotonic_ns: Option<i64>,
}

/// What the API serves `/now` from, published by the driver after every timer event:
/// the core's time source and the labels that go with it.
#[derive(Debug, Clone)]
pub struct NowSource {
    pub time: bftime_protocol::TimeSource,
    pub reason: Option<String>,
    pub reason_code: Option<String>,
    pub epoch: u64,
    pub round: u64,
    /// The node is shutting down: `/now` answers 503 `stopping`.
    pub stopping: bool,
}

impl NowSource {
    pub fn of(core: &bftime_protocol::Core) -> NowSource {
        let reason = core.quarantine_reason();
        NowSource {
            time: core.time_source(),
            reason: reason.as_ref().map(|r| r.to_string()),
            reason_code: reason.map(|r| r.code().to_owned()),
            epoch: core.epoch(),
            round: core.round(),
            stopping: false,
        }
    }

    /// `/now` at the local clock's reading `local` (`host`: the host's raw clock then,
    /// reported in testing mode only).
    pub fn view(&self, local: bftime_protocol::LocalTime, host: Option<i64>) -> NowView {
        let t = self.time.now(local);
        NowView {
            cluster_time_ns: t.cluster.0,
            earliest_ns: t.earliest.0,
            latest_ns: t.latest.0,
            status: t.state.as_str().to_owned(),
            serving: t.serving,
            reason: self.reason.clone(),
            reason_code: self.reason_code.clone(),
            cluster_time_ms: t.cluster.0 as f64 / 1e6,
            epoch: format!("{:016x}", self.epoch),
            round: self.round,
            host_monotonic_ns: host,
        }
    }
}
