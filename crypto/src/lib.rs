//! Keys, signed messages and hash chains for bftime.
//!
//! Everything a node says to another node, and everything it writes to its audit
//! log, is signed with the node's ed25519 key over a *domain-separation prefix*
//! (one per message kind, as Roughtime does), so a signature made for one purpose
//! can never be replayed as another. The same key is the node's libp2p identity:
//! a member's public key in the cluster file *is* its network address book entry.
//!
//! The crate is pure: no sockets, no clocks. Randomness comes in as an argument, except
//! the coefficients of batch verification, drawn from the operating system: they must be
//! unpredictable to a signer, and they never change whether a signature verifies.
//!
//! - [`key`]: generate, save (0600) and load node keys; convert to a libp2p `PeerId`.
//! - [`suite`]: the signature suite behind a trait: real ed25519, and a fast
//!   keyed-hash stand-in that only the simulator may use for very large runs.
//! - [`signed`]: `Signed<T>`: postcard bytes of `T` plus a signature over `DOMAIN || bytes`.
//! - [`chain`]: the SHA-256 hash chain used by the audit log.

mod batch;
pub mod chain;
pub mod key;
pub mod signed;
pub mod suite;

pub use chain::{ChainError, Hash32, HashChain};
pub use key::{KeyError, NodeKey, PublicKey};
pub use signed::{Domain, INLINE_BODY_BYTES, Signed, SignedBody, SignedError, SignedParts};
pub use suite::{
    BatchItem, CryptoSuite, Ed25519Suite, FastSuite, Signature, Signer, SuiteKind, VerifyError,
    failing_signatures,
};
