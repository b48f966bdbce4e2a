//! Wire messages (spec §2). Every reading is signed by its responder over its own
//! domain prefix; prefixes are pinned by tests and must never change within v1.

use bftime_crypto::Domain;
use serde::{Deserialize, Serialize};

use crate::time::{ClusterTime, Nanos};

/// Index of a member in the cluster file's member list (0-based, file order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MemberId(pub u16);

impl MemberId {
    pub fn index(self) -> usize {
        usize::from(self.0)
    }
}

impl std::fmt::Display for MemberId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// A request nonce. `nonce = H(NONCE_DOMAIN || signature of the last reading this
/// requester accepted || 16 random bytes)` (spec §2.3): the chain gives a causal order
/// that the responders' own signatures prove, as Roughtime's chained nonces do.
pub type Nonce = [u8; 32];

/// Prefix for nonce derivation.
pub const NONCE_DOMAIN: &[u8] = b"bftime v1 nonce\0";

/// A clock-reading request. Not signed: the transport authenticates the requester, and
/// all that matters later is what the responder signed in reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    pub cluster: u64,
    pub round: u64,
    pub nonce: Nonce,
}

/// Where a node stands, as it tells its peers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SyncState {
    Starting,
    Synced,
    Quarantined,
}

impl SyncState {
    pub fn as_str(self) -> &'static str {
        match self {
            SyncState::Starting => "starting",
            SyncState::Synced => "synced",
            SyncState::Quarantined => "quarantined",
        }
    }
}

/// A responder's signed answer to one [`Request`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reading {
    pub cluster: u64,
    pub responder: MemberId,
    pub requester: MemberId,
    pub round: u64,
    pub nonce: Nonce,
    /// Responder's protocol clock when the request arrived.
    pub receive: ClusterTime,
    /// Responder's protocol clock when this reading was made.
    pub transmit: ClusterTime,
    /// Responder's own error bound; `None` before its first agreement.
    pub error: Option<Nanos>,
    pub state: SyncState,
    /// The responder currently suspects the requester of being an outlier (design §5:
    /// f+1 such flags make the requester quarantine itself).
    pub suspects_requester: bool,
}

impl Domain for Reading {
    const DOMAIN: &'static [u8] = b"bftime v1 reading\0";
}

/// A signed notice that a node leaves service (quarantine or shutdown).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Leaving {
    pub cluster: u64,
    pub member: MemberId,
    pub round: u64,
    pub reason: String,
}

impl Domain for Leaving {
    const DOMAIN: &'static [u8] = b"bftime v1 leaving\0";
}

/// Largest encoded signed reading we accept from the wire (a real one is ~150 bytes).
pub const MAX_READING_WIRE_BYTES: usize = 512;

#[cfg(test)]
mod tests {
    use super::*;
    use bftime_crypto::{Ed25519Suite, NodeKey, Signed};

    #[test]
    fn domain_prefixes_are_pinned() {
        assert_eq!(Reading::DOMAIN, b"bftime v1 reading\0");
        assert_eq!(Leaving::DOMAIN, b"bftime v1 leaving\0");
        assert_eq!(NONCE_DOMAIN, b"bftime v1 nonce\0");
    }

    #[test]
    fn reading_fits_the_wire_cap() {
        let r = Reading {
            cluster: u64::MAX,
            responder: MemberId(u16::MAX),
            requester: MemberId(u16::MAX),
            round: u64::MAX,
            nonce: [0xff; 32],
            receive: ClusterTime(i64::MIN),
            transmit: ClusterTime(i64::MAX),
            error: Some(Nanos(i64::MAX)),
            state: SyncState::Quarantined,
            suspects_requester: true,
        };
        let s = Signed::sign(&r, &NodeKey::from_seed(&[1; 32])).unwrap();
        assert!(
            s.to_wire().len() <= MAX_READING_WIRE_BYTES,
            "{}",
            s.to_wire().len()
        );
        assert_eq!(
            s.verify(&Ed25519Suite, &NodeKey::from_seed(&[1; 32]).public_key())
                .unwrap(),
            r
        );
    }
}
