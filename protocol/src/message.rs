//! Wire messages (spec §2). Every reading is signed by its responder over its own
//! domain prefix; prefixes are pinned by tests and change only with the layout of what
//! they sign (the reading's says v2 since its body became fixed-width, so a reading
//! signed in the old layout can never verify as one in the new).

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

/// A request nonce: `H(NONCE_DOMAIN || head || salt || responder as u16 LE || seq as u16
/// LE)` where `head` is the requester's [`Head`] when it sent the request and `salt` is 16
/// random bytes fresh each round (spec §2.3). The nonce proves the request was made after
/// every reading behind `head` existed: Roughtime's chained nonces, which is what lets
/// an auditor order two readings using nothing but their signers' signatures.
pub type Nonce = [u8; 32];

/// A node's running commitment to every reading it has accepted, in order:
/// `head' = H(HEAD_DOMAIN || head || digest(reading))` at each acceptance, all zeros at
/// start (spec §2.3). Requests chain from it (through the nonce) and readings carry it,
/// so causal order is provable exchange by exchange, not just round by round.
pub type Head = [u8; 32];

/// Prefix for nonce derivation.
pub const NONCE_DOMAIN: &[u8] = b"bftime v1 nonce\0";

/// Prefix for a node's head commitment.
pub const HEAD_DOMAIN: &[u8] = b"bftime v1 head\0";

/// The 16 random bytes a requester mixes into every nonce of one round.
pub type Salt = [u8; 16];

/// The nonce a requester with `head` and `salt` sends to `responder` as its `seq`-th
/// request of the round (spec §2.3). Auditors recompute it from the requester's log.
pub fn derive_nonce(
    suite: &dyn bftime_crypto::CryptoSuite,
    head: &Head,
    salt: &Salt,
    responder: MemberId,
    seq: u16,
) -> Nonce {
    let mut material = [0u8; 52];
    material[..32].copy_from_slice(head);
    material[32..48].copy_from_slice(salt);
    material[48..50].copy_from_slice(&responder.0.to_le_bytes());
    material[50..52].copy_from_slice(&seq.to_le_bytes());
    suite.digest(NONCE_DOMAIN, &material)
}

/// The head after accepting a reading with `digest` (spec §2.3).
pub fn advance_head(
    suite: &dyn bftime_crypto::CryptoSuite,
    head: &Head,
    digest: &[u8; 32],
) -> Head {
    let mut material = [0u8; 64];
    material[..32].copy_from_slice(head);
    material[32..].copy_from_slice(digest);
    suite.digest(HEAD_DOMAIN, &material)
}

/// Every head from `start` through the acceptance of readings with these digests:
/// `heads[i]` is the head after the first `i` of them (`heads[0] == start`).
pub fn head_chain(
    suite: &dyn bftime_crypto::CryptoSuite,
    start: &Head,
    digests: &[[u8; 32]],
) -> Vec<Head> {
    let mut heads = Vec::with_capacity(digests.len() + 1);
    let mut h = *start;
    heads.push(h);
    for d in digests {
        h = advance_head(suite, &h, d);
        heads.push(h);
    }
    heads
}

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
    #[serde(with = "crate::reading_serde::le_u64")]
    pub cluster: u64,
    #[serde(with = "crate::reading_serde::le_member")]
    pub responder: MemberId,
    #[serde(with = "crate::reading_serde::le_member")]
    pub requester: MemberId,
    #[serde(with = "crate::reading_serde::le_u64")]
    pub round: u64,
    pub nonce: Nonce,
    /// Responder's protocol clock when the request arrived.
    #[serde(with = "crate::reading_serde::le_time")]
    pub receive: ClusterTime,
    /// Responder's protocol clock when this reading was made.
    #[serde(with = "crate::reading_serde::le_time")]
    pub transmit: ClusterTime,
    /// Responder's own error bound; `None` before its first agreement.
    #[serde(with = "crate::reading_serde::error_bound")]
    pub error: Option<Nanos>,
    #[serde(with = "crate::reading_serde::state_byte")]
    pub state: SyncState,
    /// The responder currently suspects the requester of being an outlier (design §5:
    /// f+1 such flags make the requester quarantine itself).
    pub suspects_requester: bool,
    /// The responder's own round label when it signed (strictly increasing within one
    /// epoch); with `epoch` it names the responder round an honest node answers each
    /// nonce in at most once.
    #[serde(with = "crate::reading_serde::le_u64")]
    pub responder_round: u64,
    /// The responder's clock epoch: random at each start of the node, incremented
    /// whenever its protocol clock steps, its state changes or it applies a backward
    /// correction larger than Π. Within one epoch an honest responder's protocol clock
    /// never runs backwards by more than Π (spec §2.6): proofs rest on that.
    #[serde(with = "crate::reading_serde::le_u64")]
    pub epoch: u64,
    /// The responder's [`Head`] when it signed: proves the reading was made after every
    /// reading that the responder's last round used.
    pub head: Head,
    /// The correction the responder slewed by at the end of its previous round, if the
    /// frequency loop could use it (spec §3.3): whole microseconds, `None` otherwise or
    /// beyond ±32.767 ms. Requesters compare their own with the peers' median, so that a
    /// correction the whole cluster makes every round (a bias every pair measures alike)
    /// does not wind up every node's rate.
    #[serde(with = "crate::reading_serde::correction_us")]
    pub last_correction: Option<Nanos>,
}

impl Domain for Reading {
    const DOMAIN: &'static [u8] = b"bftime v3 reading\0";

    fn encode_body(
        &self,
        out: &mut bftime_crypto::SignedBody,
    ) -> Result<(), bftime_crypto::SignedError> {
        out.extend_from_slice(&crate::reading_codec::encode(self));
        Ok(())
    }

    fn decode_body(bytes: &[u8]) -> Result<Self, bftime_crypto::SignedError> {
        crate::reading_codec::decode(bytes)
    }
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

/// Largest encoded signed reading we accept from the wire (a real one is 194 bytes).
pub const MAX_READING_WIRE_BYTES: usize = 512;

#[cfg(test)]
mod tests {
    use super::*;
    use bftime_crypto::{Ed25519Suite, NodeKey, Signed};

    #[test]
    fn domain_prefixes_are_pinned() {
        assert_eq!(Reading::DOMAIN, b"bftime v3 reading\0");
        assert_eq!(Leaving::DOMAIN, b"bftime v1 leaving\0");
        assert_eq!(NONCE_DOMAIN, b"bftime v1 nonce\0");
        assert_eq!(HEAD_DOMAIN, b"bftime v1 head\0");
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
            responder_round: u64::MAX,
            epoch: u64::MAX,
            head: [0xff; 32],
            last_correction: Some(-crate::reading_codec::MAX_CORRECTION),
        };
        let s = Signed::sign(&r, &NodeKey::from_seed(&[1; 32])).unwrap();
        assert_eq!(s.to_wire().len(), 194);
        assert!(s.to_wire().len() <= MAX_READING_WIRE_BYTES);
        assert_eq!(
            s.verify(&Ed25519Suite, &NodeKey::from_seed(&[1; 32]).public_key())
                .unwrap(),
            r
        );
    }
}
