//! `/metrics` in the Prometheus/OpenMetrics text format: prefix `bftime_`, base units
//! (`_seconds`, `_ratio`), `_total` counters. Every value is derived from the one
//! observable state ([`StatusView`]) at scrape time, so metrics, `/status` and
//! `bftime status` can never disagree.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::view::StatusView;

type FGauge = Gauge<f64, AtomicU64>;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PeerLabel {
    peer: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: String,
}

/// The registry and handles to every metric.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    offset: FGauge,
    last_correction: FGauge,
    pending_slew: FGauge,
    error_bound: FGauge,
    rate: FGauge,
    state: Family<StateLabel, Gauge>,
    serving: Gauge,
    round: Gauge,
    members: Gauge,
    members_answered: Gauge,
    connected_peers: Gauge,
    peer_offset: Family<PeerLabel, FGauge>,
    peer_delay: Family<PeerLabel, FGauge>,
    peer_error: Family<PeerLabel, FGauge>,
    peer_suspect: Family<PeerLabel, Gauge>,
    accepted: Counter,
    rejected: Family<ReasonLabel, Counter>,
    answered: Counter,
    quarantines: Counter,
    dropped: Family<ReasonLabel, Counter>,
    bytes_sent: Counter,
    bytes_received: Counter,
    audit_records: Counter,
    audit_bytes: Counter,
    audit_failed: Gauge,
}

fn ns_to_s(ns: i64) -> f64 {
    ns as f64 * 1e-9
}

/// Raises a counter to `target` (counters only go up; the source totals are monotonic).
fn raise(c: &Counter, target: u64) {
    let now = c.get();
    if target > now {
        c.inc_by(target - now);
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut r = Registry::with_prefix("bftime");
        let m = Metrics {
            offset: FGauge::default(),
            last_correction: FGauge::default(),
            pending_slew: FGauge::default(),
            error_bound: FGauge::default(),
            rate: FGauge::default(),
            state: Family::default(),
            serving: Gauge::default(),
            round: Gauge::default(),
            members: Gauge::default(),
            members_answered: Gauge::default(),
            connected_peers: Gauge::default(),
            peer_offset: Family::default(),
            peer_delay: Family::default(),
            peer_error: Family::default(),
            peer_suspect: Family::default(),
            accepted: Counter::default(),
            rejected: Family::default(),
            answered: Counter::default(),
            quarantines: Counter::default(),
            dropped: Family::default(),
            bytes_sent: Counter::default(),
            bytes_received: Counter::default(),
            audit_records: Counter::default(),
            audit_bytes: Counter::default(),
            audit_failed: Gauge::default(),
            registry: Registry::default(),
        };
        r.register(
            "offset_seconds",
            "Correction applied to the local clock since the node started (cluster clock minus local clock, less the offset it started with)",
            m.offset.clone(),
        );
        r.register(
            "last_correction_seconds",
            "Correction the last round's fault-tolerant midpoint asked for",
            m.last_correction.clone(),
        );
        r.register(
            "pending_slew_seconds",
            "Part of past corrections still being slewed in",
            m.pending_slew.clone(),
        );
        r.register(
            "error_bound_seconds",
            "Half-width of the cluster clock's error interval (NaN before the first agreement)",
            m.error_bound.clone(),
        );
        r.register(
            "rate_correction_ratio",
            "Frequency correction applied to the local oscillator (1e-6 = 1 ppm)",
            m.rate.clone(),
        );
        r.register(
            "state",
            "1 for the node's current state (starting, synced, quarantined)",
            m.state.clone(),
        );
        r.register(
            "serving",
            "1 when the node serves cluster time",
            m.serving.clone(),
        );
        r.register("round", "Current protocol round", m.round.clone());
        r.register("members", "Members in the cluster file", m.members.clone());
        r.register(
            "members_answered",
            "Peers whose readings the last round could use",
            m.members_answered.clone(),
        );
        r.register(
            "connected_peers",
            "Members this node holds a connection to",
            m.connected_peers.clone(),
        );
        r.register(
            "peer_offset_seconds",
            "A peer's clock minus ours at its last accepted reading",
            m.peer_offset.clone(),
        );
        r.register(
            "peer_delay_seconds",
            "Round-trip delay of a peer's last accepted reading",
            m.peer_delay.clone(),
        );
        r.register(
            "peer_error_seconds",
            "A peer's own reported error bound",
            m.peer_error.clone(),
        );
        r.register(
            "peer_suspect",
            "1 when this node suspects the peer",
            m.peer_suspect.clone(),
        );
        r.register(
            "readings_accepted",
            "Signed readings accepted",
            m.accepted.clone(),
        );
        r.register(
            "readings_rejected",
            "Signed readings rejected, by reason",
            m.rejected.clone(),
        );
        r.register(
            "requests_answered",
            "Reading requests this node answered",
            m.answered.clone(),
        );
        r.register(
            "quarantines",
            "Times this node quarantined itself",
            m.quarantines.clone(),
        );
        r.register(
            "network_dropped",
            "Frames, requests and connections the network layer dropped or refused, by reason",
            m.dropped.clone(),
        );
        r.register(
            "frame_sent_bytes",
            "Bytes of bftime frames written (no Noise, Yamux or TCP overhead)",
            m.bytes_sent.clone(),
        );
        r.register(
            "frame_received_bytes",
            "Bytes of bftime frames read (no Noise, Yamux or TCP overhead)",
            m.bytes_received.clone(),
        );
        r.register(
            "audit_records",
            "Audit records written since start",
            m.audit_records.clone(),
        );
        r.register(
            "audit_written_bytes",
            "Audit log bytes written since start",
            m.audit_bytes.clone(),
        );
        r.register(
            "audit_failed",
            "1 when the audit log could not be written",
            m.audit_failed.clone(),
        );
        // Every reason's series exists from the start, at 0: an alert on a rate of
        // rejections then works before the first one (a series that appears only with its
        // first increment has no earlier sample to compare against).
        for reason in bftime_protocol::RejectReason::ALL {
            drop(m.rejected.get_or_create(&ReasonLabel {
                reason: reason.as_str().into(),
            }));
        }
        Metrics { registry: r, ..m }
    }

    /// Sets every metric from a status view.
    pub fn observe(&self, v: &StatusView) {
        let s = &v.snapshot;
        self.offset.set(ns_to_s(s.applied_ns));
        self.last_correction.set(ns_to_s(s.last_correction_ns));
        self.pending_slew.set(ns_to_s(s.pending_slew_ns));
        self.error_bound
            .set(s.error_ns.map(ns_to_s).unwrap_or(f64::NAN));
        self.rate.set(s.rate_ppm * 1e-6);
        for st in ["starting", "synced", "quarantined"] {
            let on = i64::from(s.state.as_str() == st);
            self.state
                .get_or_create(&StateLabel { state: st.into() })
                .set(on);
        }
        self.serving.set(i64::from(s.serving));
        self.round.set(s.round as i64);
        self.members.set(s.members as i64);
        self.members_answered.set(s.members_answered as i64);
        self.connected_peers.set(v.connected_peers as i64);
        for p in &s.peers {
            let peer = v
                .member_names
                .get(p.member.index())
                .cloned()
                .unwrap_or_else(|| p.member.to_string());
            let l = PeerLabel { peer };
            let opt = |x: Option<i64>| x.map(ns_to_s).unwrap_or(f64::NAN);
            self.peer_offset.get_or_create(&l).set(opt(p.offset_ns));
            self.peer_delay.get_or_create(&l).set(opt(p.delay_ns));
            self.peer_error.get_or_create(&l).set(opt(p.error_ns));
            self.peer_suspect
                .get_or_create(&l)
                .set(i64::from(p.suspect.is_some()));
        }
        raise(&self.accepted, s.readings_accepted);
        for (reason, count) in s.readings_rejected.nonzero() {
            raise(
                &self.rejected.get_or_create(&ReasonLabel {
                    reason: reason.as_str().into(),
                }),
                count,
            );
        }
        let n = &v.network;
        raise(&self.answered, n.requests_answered);
        raise(&self.quarantines, v.quarantines);
        raise(&self.bytes_sent, n.frame_bytes_sent);
        raise(&self.bytes_received, n.frame_bytes_received);
        if let Some(a) = &v.audit {
            raise(&self.audit_records, a.records_written);
            raise(&self.audit_bytes, a.bytes_written);
            self.audit_failed.set(i64::from(a.failed));
        }
        for (reason, count) in [
            ("connection-refused", n.connections_refused),
            ("frame-oversized", n.frames_oversized),
            ("frame-malformed", n.frames_malformed),
            ("request-overloaded", n.requests_overloaded),
            ("request-unsent", n.requests_unsent),
            ("response-timeout", n.response_timeouts),
            ("inbound-stream-refused", n.inbound_streams_refused),
            ("request-refused", n.requests_refused),
        ] {
            raise(
                &self.dropped.get_or_create(&ReasonLabel {
                    reason: reason.into(),
                }),
                count,
            );
        }
    }

    /// The text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
