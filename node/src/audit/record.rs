//! What an audit record says (spec §8.1).
//!
//! A record is `seq, round, prev, cluster_time_ns, kind, payload`: the header fields an
//! auditor filters on are plain, and the payload is the postcard encoding of the
//! kind's own struct, so a reader can skip kinds it does not know. The whole body is
//! signed by the node's key over [`Record::DOMAIN`]; `prev` chains it to the record
//! before (crypto's `HashChain`).

use bftime_crypto::{Domain, Hash32, Signed};
use bftime_protocol::{Reading, SyncState};
use serde::{Deserialize, Serialize};

/// One audit record's signed body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// 0 for the first record of a node's log; +1 for every record after, across files.
    pub seq: u64,
    /// The node's round label when the record was made.
    pub round: u64,
    /// Chain hash of the previous record (all zeros before the first).
    pub prev: Hash32,
    /// The node's served cluster time when the record was made (its own clock).
    pub cluster_time_ns: i64,
    pub kind: Kind,
    /// Postcard encoding of the kind's payload struct.
    pub payload: Vec<u8>,
}

impl Domain for Record {
    const DOMAIN: &'static [u8] = b"bftime v1 audit record\0";
}

/// Record kinds. The discriminants are part of the format: never renumber.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[repr(u8)]
pub enum Kind {
    /// The node started (first record of a run; the very first commits to the identity).
    Start = 0,
    /// First record of a file after rotation: repeats the identity so the file stands alone.
    Segment = 1,
    /// One round: every reading accepted (chained), the intervals, the decision.
    Round = 2,
    /// The node changed state (synced, quarantined, rejoined…).
    State = 3,
    /// The protocol clock stepped.
    Step = 4,
    /// On restart, a torn final record was cut off.
    Recovered = 5,
    /// The node stopped gracefully.
    Shutdown = 6,
}

impl Kind {
    pub const ALL: [Kind; 7] = [
        Kind::Start,
        Kind::Segment,
        Kind::Round,
        Kind::State,
        Kind::Step,
        Kind::Recovered,
        Kind::Shutdown,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Start => "start",
            Kind::Segment => "segment",
            Kind::Round => "round",
            Kind::State => "state",
            Kind::Step => "step",
            Kind::Recovered => "recovered",
            Kind::Shutdown => "shutdown",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// Who wrote the log: in the first record of every run and of every file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// The node's ed25519 public key: every record of this log is signed by it.
    pub public_key: [u8; 32],
    pub member: u16,
    pub name: String,
    pub cluster_id: String,
    /// The tag every message of the cluster carries.
    pub cluster_tag: u64,
    /// SHA-256 of the cluster file's bytes.
    pub cluster_file_sha256: Hash32,
}

impl Identity {
    /// What makes `other` another node or another cluster configuration than `self`,
    /// or None if it is the same node in the same cluster. The node's name and the
    /// cluster file's bytes may change between runs (a renamed member, a new address,
    /// an edited comment); the key, the member number, the cluster id and the cluster
    /// tag (the parameters and every member's key, spec §2.1) may not within one log.
    pub fn cluster_change(&self, other: &Identity) -> Option<String> {
        let mut changed = Vec::new();
        if self.public_key != other.public_key {
            changed.push(format!(
                "node key {} became {}",
                hex::encode(self.public_key),
                hex::encode(other.public_key)
            ));
        }
        if self.member != other.member {
            changed.push(format!("member {} became {}", self.member, other.member));
        }
        if self.cluster_id != other.cluster_id {
            changed.push(format!(
                "cluster id {:?} became {:?}",
                self.cluster_id, other.cluster_id
            ));
        }
        if self.cluster_tag != other.cluster_tag {
            changed.push(format!(
                "cluster tag {:016x} became {:016x}: the members' keys or the cluster's parameters changed",
                self.cluster_tag, other.cluster_tag
            ));
        }
        (!changed.is_empty()).then(|| changed.join("; "))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StartPayload {
    pub identity: Identity,
    pub version: String,
    /// SHA-256 of the node file's bytes.
    pub node_file_sha256: Hash32,
    /// The first clock epoch of this run (readings it signs carry it).
    pub incarnation: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentPayload {
    pub identity: Identity,
    /// Number of this file in the chain (0 for the first).
    pub segment: u32,
}

/// A peer's interval as the node measured it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IntervalRow {
    pub member: u16,
    pub lo_ns: i64,
    pub hi_ns: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoundPayload {
    pub state: SyncState,
    pub correction_ns: i64,
    pub applied: bool,
    pub stepped: bool,
    pub error_ns: Option<i64>,
    pub rate_ppm: f64,
    pub verdict: String,
    pub suspects: Vec<u16>,
    pub intervals: Vec<IntervalRow>,
    /// Every signed reading accepted in the round, in order of acceptance (with one
    /// exchange per peer and round: every reading used, except forgeries caught by batch
    /// verification and their senders' other readings that round: chained, unused, the
    /// sender without an interval; spec §4.2).
    pub readings: Vec<Signed<Reading>>,
    /// For each reading: how many of this round's readings had been accepted when its
    /// request was sent (its nonce chains from the head after that many).
    pub nonce_from: Vec<u16>,
    /// The node's head when the round began, and the round's nonce salt.
    pub head_used: Hash32,
    pub salt: [u8; 16],
    /// The head after the round (`head_used` advanced by every reading, in order).
    pub head: Hash32,
    pub epoch: u64,
    /// Readings rejected during the round, by reason (aggregated: a flood of bad
    /// messages grows a counter, not the log).
    pub rejected: Vec<(String, u64)>,
    /// Requests we refused to answer during the round.
    pub requests_refused: u64,
    /// Two different signed readings one peer sent for one request (evidence).
    pub duplicates: Vec<(Signed<Reading>, Signed<Reading>)>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatePayload {
    pub from: SyncState,
    pub to: SyncState,
    /// Stable reason code (`offset-beyond-bound`…), empty when none.
    pub code: String,
    pub reason: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepPayload {
    pub correction_ns: i64,
    pub epoch: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecoveredPayload {
    /// The file that ended in a torn record.
    pub file: String,
    /// Byte offset where the torn record began (the file was cut there).
    pub offset: u64,
    pub bytes_cut: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShutdownPayload {
    pub reason: String,
}

/// A decoded payload.
#[derive(Debug, Clone, PartialEq)]
pub enum Payload {
    Start(StartPayload),
    Segment(SegmentPayload),
    Round(Box<RoundPayload>),
    State(StatePayload),
    Step(StepPayload),
    Recovered(RecoveredPayload),
    Shutdown(ShutdownPayload),
}

impl Payload {
    pub fn kind(&self) -> Kind {
        match self {
            Payload::Start(_) => Kind::Start,
            Payload::Segment(_) => Kind::Segment,
            Payload::Round(_) => Kind::Round,
            Payload::State(_) => Kind::State,
            Payload::Step(_) => Kind::Step,
            Payload::Recovered(_) => Kind::Recovered,
            Payload::Shutdown(_) => Kind::Shutdown,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let r = match self {
            Payload::Start(p) => postcard::to_allocvec(p),
            Payload::Segment(p) => postcard::to_allocvec(p),
            Payload::Round(p) => postcard::to_allocvec(p.as_ref()),
            Payload::State(p) => postcard::to_allocvec(p),
            Payload::Step(p) => postcard::to_allocvec(p),
            Payload::Recovered(p) => postcard::to_allocvec(p),
            Payload::Shutdown(p) => postcard::to_allocvec(p),
        };
        // Encoding plain structs into a Vec cannot fail.
        r.unwrap_or_default()
    }

    /// Strict decoding: trailing bytes are an error.
    pub fn decode(kind: Kind, bytes: &[u8]) -> Result<Payload, String> {
        fn exact<T: serde::de::DeserializeOwned>(b: &[u8]) -> Result<T, String> {
            let (v, rest) = postcard::take_from_bytes::<T>(b).map_err(|e| e.to_string())?;
            if rest.is_empty() {
                Ok(v)
            } else {
                Err(format!("{} trailing bytes in payload", rest.len()))
            }
        }
        Ok(match kind {
            Kind::Start => Payload::Start(exact(bytes)?),
            Kind::Segment => Payload::Segment(exact(bytes)?),
            Kind::Round => Payload::Round(Box::new(exact(bytes)?)),
            Kind::State => Payload::State(exact(bytes)?),
            Kind::Step => Payload::Step(exact(bytes)?),
            Kind::Recovered => Payload::Recovered(exact(bytes)?),
            Kind::Shutdown => Payload::Shutdown(exact(bytes)?),
        })
    }

    pub fn identity(&self) -> Option<&Identity> {
        match self {
            Payload::Start(p) => Some(&p.identity),
            Payload::Segment(p) => Some(&p.identity),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domain_and_kind_numbers_are_pinned() {
        assert_eq!(Record::DOMAIN, b"bftime v1 audit record\0");
        for (i, k) in Kind::ALL.iter().enumerate() {
            assert_eq!(*k as u8 as usize, i);
            assert_eq!(postcard::to_allocvec(k).unwrap(), vec![i as u8]);
            assert_eq!(Kind::parse(k.as_str()), Some(*k));
        }
    }
}
