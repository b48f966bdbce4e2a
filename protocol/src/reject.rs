//! Why a reading or request was refused, and counters per reason (fail closed: every
//! refusal is counted and visible, never silent).

use serde::{Deserialize, Serialize};

/// Why a response (a signed reading) was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RejectReason {
    /// The sender is not a member (or is ourselves).
    UnknownPeer,
    /// Undecodable, oversized, or trailing bytes.
    Malformed,
    /// The signature does not verify under the sender's key.
    BadSignature,
    /// Signed for another cluster.
    WrongCluster,
    /// The reading names another responder than the peer that sent it.
    WrongResponder,
    /// The reading answers someone else's request.
    WrongRequester,
    /// A nonce we never issued, or one long gone: replays of old readings land here.
    UnknownNonce,
    /// The nonce was issued in a round that already ended.
    Stale,
    /// The nonce was already answered (a replay within the round).
    Duplicate,
    /// The nonce matches but the reading names another round.
    ForeignRound,
    /// Timestamps that cannot be (reply before request, transmit before receive).
    BadTimestamps,
    /// (requests only) more requests from this peer this round than the protocol sends.
    TooMany,
}

impl RejectReason {
    pub const ALL: [RejectReason; 12] = [
        RejectReason::UnknownPeer,
        RejectReason::Malformed,
        RejectReason::BadSignature,
        RejectReason::WrongCluster,
        RejectReason::WrongResponder,
        RejectReason::WrongRequester,
        RejectReason::UnknownNonce,
        RejectReason::Stale,
        RejectReason::Duplicate,
        RejectReason::ForeignRound,
        RejectReason::BadTimestamps,
        RejectReason::TooMany,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::UnknownPeer => "unknown-peer",
            RejectReason::Malformed => "malformed",
            RejectReason::BadSignature => "bad-signature",
            RejectReason::WrongCluster => "wrong-cluster",
            RejectReason::WrongResponder => "wrong-responder",
            RejectReason::WrongRequester => "wrong-requester",
            RejectReason::UnknownNonce => "unknown-nonce",
            RejectReason::Stale => "stale",
            RejectReason::Duplicate => "duplicate",
            RejectReason::ForeignRound => "foreign-round",
            RejectReason::BadTimestamps => "bad-timestamps",
            RejectReason::TooMany => "too-many",
        }
    }

    /// Whether this proves the sender misbehaved (as opposed to a slow network).
    /// An unknown nonce does not: it is also what an honest answer looks like when it
    /// arrives after we forgot the request (a loaded host, a long queue).
    pub fn is_misbehaviour(self) -> bool {
        !matches!(
            self,
            RejectReason::Stale | RejectReason::UnknownPeer | RejectReason::UnknownNonce
        )
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Counters per [`RejectReason`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RejectCounts([u64; 12]);

impl RejectCounts {
    pub fn add(&mut self, reason: RejectReason) {
        self.0[reason.index()] += 1;
    }
    pub fn get(&self, reason: RejectReason) -> u64 {
        self.0[reason.index()]
    }
    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }
    /// Non-zero counters, by reason name.
    pub fn nonzero(&self) -> impl Iterator<Item = (RejectReason, u64)> + '_ {
        RejectReason::ALL
            .iter()
            .map(|r| (*r, self.get(*r)))
            .filter(|(_, n)| *n > 0)
    }
}

impl Serialize for RejectCounts {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(None)?;
        for (r, n) in self.nonzero() {
            m.serialize_entry(r.as_str(), &n)?;
        }
        m.end()
    }
}

impl<'de> Deserialize<'de> for RejectCounts {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let map = std::collections::BTreeMap::<String, u64>::deserialize(d)?;
        let mut out = RejectCounts::default();
        for (k, v) in map {
            let r = RejectReason::ALL
                .iter()
                .find(|r| r.as_str() == k)
                .ok_or_else(|| serde::de::Error::custom(format!("unknown reject reason {k}")))?;
            out.0[r.index()] = v;
        }
        Ok(out)
    }
}
