//! `bftime audit show`: what a node saw and decided, round by round.

use std::io::Write;
use std::ops::RangeInclusive;
use std::path::Path;

use bftime_crypto::{Ed25519Suite, Signed};
use bftime_protocol::{MemberId, Reading};
use serde_json::{Value, json};

use super::check::{Checked, ClusterKeys};
use super::record::{Kind, Payload, RoundPayload};

/// Which records to show.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub rounds: Option<RangeInclusive<u64>>,
    /// Cluster times (ns since the Unix epoch): unlike round labels, which each node
    /// counts its own way, one range lines up every node's log.
    pub times: Option<RangeInclusive<i64>>,
    pub peer: Option<MemberId>,
    pub kinds: Vec<Kind>,
}

impl Filter {
    pub fn accepts(&self, c: &Checked) -> bool {
        if let Some(r) = &self.rounds
            && !r.contains(&c.record.round)
        {
            return false;
        }
        if let Some(t) = &self.times
            && !t.contains(&c.record.cluster_time_ns)
        {
            return false;
        }
        self.kinds.is_empty() || self.kinds.contains(&c.record.kind)
    }
}

/// Parses `A..B`, `A..`, `..B` or `A`.
/// `FROM..TO` in cluster time, each an RFC 3339 time (`2026-11-28T10:08:55Z`,
/// `…T10:08:55.250Z`) or empty for open-ended; both ends inclusive.
pub fn parse_times(s: &str) -> Result<RangeInclusive<i64>, String> {
    let at = |t: &str, default: i64| -> Result<i64, String> {
        if t.is_empty() {
            return Ok(default);
        }
        let time = humantime::parse_rfc3339_weak(t).map_err(|e| {
            format!("{t:?} is not an RFC 3339 time such as 2026-11-28T10:08:55Z ({e})")
        })?;
        let since = time
            .duration_since(std::time::UNIX_EPOCH)
            .map_err(|_| format!("{t:?} is before 1970"))?;
        i64::try_from(since.as_nanos()).map_err(|_| format!("{t:?} is too far ahead"))
    };
    let Some((a, b)) = s.split_once("..") else {
        return Err(format!(
            "{s:?}: write FROM..TO (either end may be left out)"
        ));
    };
    let (from, to) = (at(a, i64::MIN)?, at(b, i64::MAX)?);
    if from > to {
        return Err(format!(
            "{s:?} runs backwards: write FROM..TO with FROM ≤ TO"
        ));
    }
    Ok(from..=to)
}

pub fn parse_rounds(s: &str) -> Result<RangeInclusive<u64>, String> {
    let num = |t: &str, default: u64| -> Result<u64, String> {
        if t.is_empty() {
            Ok(default)
        } else {
            t.parse()
                .map_err(|_| format!("{t:?} is not a round number"))
        }
    };
    match s.split_once("..") {
        Some((a, b)) => {
            let (from, to) = (num(a, 0)?, num(b.trim_start_matches('='), u64::MAX)?);
            if from > to {
                return Err(format!(
                    "{s:?} runs backwards: write FROM..TO with FROM ≤ TO"
                ));
            }
            Ok(from..=to)
        }
        None => {
            let n = num(s, 0)?;
            Ok(n..=n)
        }
    }
}

/// Cluster time as UTC (the cluster clock starts near Unix time; it is not UTC).
pub fn format_time(ns: i64) -> String {
    if ns <= 0 {
        return "-".into();
    }
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_nanos(ns as u64);
    humantime::format_rfc3339_millis(t).to_string()
}

fn ms(ns: i64) -> String {
    format!("{:.3}", ns as f64 / 1e6)
}

fn name(cluster: Option<&ClusterKeys>, m: u16) -> String {
    match cluster {
        Some(c) => c.name(MemberId(m)),
        None => format!("#{m}"),
    }
}

/// The reading from `peer` that a round used, decoded.
fn reading_from(r: &RoundPayload, peer: MemberId) -> Option<(Reading, &Signed<Reading>)> {
    r.readings.iter().find_map(|s| {
        let body = s.decode_unverified().ok()?;
        (body.responder == peer).then_some((body, s))
    })
}

/// One human line per record.
pub fn line(c: &Checked, cluster: Option<&ClusterKeys>, peer: Option<MemberId>) -> String {
    let rec = &c.record;
    let head = format!(
        "{:>7} {:>12} {} {:<9}",
        rec.seq,
        rec.round,
        format_time(rec.cluster_time_ns),
        rec.kind.as_str()
    );
    let body = match &c.payload {
        Payload::Start(p) => format!(
            "node {} (member {}) of cluster {:?}, bftime {}, key {}",
            p.identity.name,
            p.identity.member,
            p.identity.cluster_id,
            p.version,
            hex::encode(p.identity.public_key)
        ),
        Payload::Segment(p) => format!("file #{} of node {}", p.segment, p.identity.name),
        Payload::Round(r) => {
            let rejected: Vec<String> =
                r.rejected.iter().map(|(k, n)| format!("{k}={n}")).collect();
            let suspects: Vec<String> = r.suspects.iter().map(|m| name(cluster, *m)).collect();
            let mut s = format!(
                "{:<11} corr {:>9} ms{} err {:>8} ms rate {:>8.3} ppm readings {:>3} used {:>3} suspects [{}] rejected [{}] {}",
                r.state.as_str(),
                ms(r.correction_ns),
                if r.stepped {
                    " (step)"
                } else if r.applied {
                    ""
                } else {
                    " (not applied)"
                },
                r.error_ns.map(ms).unwrap_or_else(|| "-".into()),
                r.rate_ppm,
                r.readings.len(),
                r.intervals.len(),
                suspects.join(","),
                rejected.join(","),
                r.verdict
            );
            if let Some(p) = peer {
                let iv = r.intervals.iter().find(|i| i.member == p.0);
                match (iv, reading_from(r, p)) {
                    (Some(iv), Some((rd, _))) => s.push_str(&format!(
                        " | {}: offset [{}, {}] ms, says {} err {} ms{}",
                        name(cluster, p.0),
                        ms(iv.lo_ns),
                        ms(iv.hi_ns),
                        rd.state.as_str(),
                        rd.error.map(|e| ms(e.0)).unwrap_or_else(|| "-".into()),
                        if rd.suspects_requester {
                            ", suspects us"
                        } else {
                            ""
                        }
                    )),
                    _ => s.push_str(&format!(" | {}: no reading used", name(cluster, p.0))),
                }
            }
            s
        }
        Payload::State(p) => {
            let mut s = format!("{} -> {}", p.from.as_str(), p.to.as_str());
            if !p.code.is_empty() {
                s.push_str(&format!(" ({}): {}", p.code, p.reason));
            }
            s
        }
        Payload::Step(p) => format!("protocol clock stepped by {} ms", ms(p.correction_ns)),
        Payload::Recovered(p) => format!(
            "cut a torn record of {} bytes at byte {} of {}",
            p.bytes_cut, p.offset, p.file
        ),
        Payload::Shutdown(p) => format!("stopped: {}", p.reason),
    };
    format!("{head} {body}")
}

fn reading_json(s: &Signed<Reading>, cluster: Option<&ClusterKeys>) -> Value {
    match s.decode_unverified() {
        Ok(r) => json!({
            "responder": name(cluster, r.responder.0),
            "requester": name(cluster, r.requester.0),
            "round": r.round,
            "responder_round": r.responder_round,
            "epoch": format!("{:016x}", r.epoch),
            "receive_ns": r.receive.0,
            "transmit_ns": r.transmit.0,
            "error_ns": r.error.map(|e| e.0),
            "state": r.state.as_str(),
            "suspects_requester": r.suspects_requester,
            "nonce": hex::encode(r.nonce),
            "head": hex::encode(r.head),
            "last_correction_ns": r.last_correction.map(|c| c.0),
            "digest": hex::encode(s.digest(&Ed25519Suite)),
            "signature": hex::encode(s.signature().0),
        }),
        Err(e) => json!({ "malformed": e.to_string() }),
    }
}

/// One JSON object per record (JSON lines). `offset` counts from the start of `file`, the
/// log file (current or rotated) that holds the record.
pub fn json_line(
    c: &Checked,
    file: &Path,
    cluster: Option<&ClusterKeys>,
    peer: Option<MemberId>,
) -> Value {
    let rec = &c.record;
    let payload = match &c.payload {
        Payload::Start(p) => json!({
            "name": p.identity.name, "member": p.identity.member,
            "cluster_id": p.identity.cluster_id, "cluster_tag": format!("{:016x}", p.identity.cluster_tag),
            "public_key": hex::encode(p.identity.public_key),
            "cluster_file_sha256": hex::encode(p.identity.cluster_file_sha256),
            "node_file_sha256": hex::encode(p.node_file_sha256),
            "version": p.version, "incarnation": format!("{:016x}", p.incarnation),
        }),
        Payload::Segment(p) => json!({ "name": p.identity.name, "segment": p.segment }),
        Payload::Round(r) => {
            let keep = |m: u16| peer.is_none_or(|p| p.0 == m);
            json!({
                "state": r.state.as_str(),
                "correction_ns": r.correction_ns,
                "applied": r.applied,
                "stepped": r.stepped,
                "error_ns": r.error_ns,
                "rate_ppm": r.rate_ppm,
                "verdict": r.verdict,
                "suspects": r.suspects.iter().map(|m| name(cluster, *m)).collect::<Vec<_>>(),
                "intervals": r.intervals.iter().filter(|i| keep(i.member)).map(|i| json!({
                    "peer": name(cluster, i.member), "lo_ns": i.lo_ns, "hi_ns": i.hi_ns,
                })).collect::<Vec<_>>(),
                "readings": r.readings.iter()
                    .filter(|s| s.decode_unverified().is_ok_and(|b| keep(b.responder.0)))
                    .map(|s| reading_json(s, cluster)).collect::<Vec<_>>(),
                "readings_accepted": r.readings.len(),
                "readings_used": r.intervals.len(),
                "head_used": hex::encode(r.head_used),
                "salt": hex::encode(r.salt),
                "head": hex::encode(r.head),
                "epoch": format!("{:016x}", r.epoch),
                "rejected": r.rejected.iter().map(|(k, n)| (k.clone(), json!(n))).collect::<serde_json::Map<_, _>>(),
                "requests_refused": r.requests_refused,
                "duplicates": r.duplicates.len(),
            })
        }
        Payload::State(p) => {
            json!({ "from": p.from.as_str(), "to": p.to.as_str(), "code": p.code, "reason": p.reason })
        }
        Payload::Step(p) => json!({ "correction_ns": p.correction_ns, "epoch": p.epoch }),
        Payload::Recovered(p) => {
            json!({ "file": p.file, "offset": p.offset, "bytes_cut": p.bytes_cut })
        }
        Payload::Shutdown(p) => json!({ "reason": p.reason }),
    };
    json!({
        "seq": rec.seq,
        "round": rec.round,
        "cluster_time_ns": rec.cluster_time_ns,
        "kind": rec.kind.as_str(),
        "file": file.display().to_string(),
        "offset": c.offset,
        "payload": payload,
    })
}

/// The table header for [`line`].
pub fn header(out: &mut impl Write) -> std::io::Result<()> {
    writeln!(
        out,
        "{:>7} {:>12} {:<24} {:<9} details",
        "seq", "round", "cluster time", "kind"
    )
}
