//! The signature suite behind a trait.
//!
//! The protocol core signs and verifies through [`Signer`] and [`CryptoSuite`] so that
//! the simulator can swap real ed25519 for [`FastSuite`] when it runs 250 nodes for
//! 1000 rounds (62 million signed exchanges). `FastSuite` is **not cryptography**:
//! anyone who knows a public key can forge its "signatures". It exists only so large
//! simulations measure the protocol rather than the curve arithmetic, and every
//! simulator report says which suite it used.

use std::fmt;
use std::hash::{BuildHasher, Hasher};

use serde::de::{self, SeqAccess, Visitor};
use serde::ser::SerializeTuple;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest as _, Sha256};

use crate::key::PublicKey;

/// A 64-byte signature (ed25519's size; the fast stand-in keeps the size so messages
/// are byte-for-byte the same length under both suites).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Signature(pub [u8; 64]);

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({}…)", hex::encode(&self.0[..8]))
    }
}

impl Serialize for Signature {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut t = s.serialize_tuple(64)?;
        for b in &self.0 {
            t.serialize_element(b)?;
        }
        t.end()
    }
}

impl<'de> Deserialize<'de> for Signature {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Sig64;
        impl<'de> Visitor<'de> for Sig64 {
            type Value = Signature;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("64 signature bytes")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Signature, A::Error> {
                let mut out = [0u8; 64];
                for (i, slot) in out.iter_mut().enumerate() {
                    *slot = seq
                        .next_element()?
                        .ok_or_else(|| de::Error::invalid_length(i, &self))?;
                }
                Ok(Signature(out))
            }
        }
        d.deserialize_tuple(64, Sig64)
    }
}

/// Why a signature did not verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("signature does not verify under the claimed signer's key")]
    BadSignature,
}

/// The bytes an ed25519 signature covers: `domain || body`.
pub(crate) fn domain_message(domain: &[u8], body: &[u8]) -> Vec<u8> {
    let mut message = Vec::with_capacity(domain.len() + body.len());
    message.extend_from_slice(domain);
    message.extend_from_slice(body);
    message
}

/// Something that signs with one node's key.
pub trait Signer: Send + Sync {
    fn public_key(&self) -> PublicKey;
    /// Signs `domain || body`.
    fn sign(&self, domain: &[u8], body: &[u8]) -> Signature;
}

/// A shared signer (the node's core and its testnet behaviours sign with one key).
impl<S: Signer + ?Sized> Signer for std::sync::Arc<S> {
    fn public_key(&self) -> PublicKey {
        (**self).public_key()
    }
    fn sign(&self, domain: &[u8], body: &[u8]) -> Signature {
        (**self).sign(domain, body)
    }
}

/// Which suite produced a signature; reported by the simulator as `"crypto"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SuiteKind {
    Ed25519,
    Fast,
}

impl SuiteKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SuiteKind::Ed25519 => "ed25519",
            SuiteKind::Fast => "fast",
        }
    }
}

/// Verification and hashing, shared by all nodes of one run.
pub trait CryptoSuite: Send + Sync + fmt::Debug {
    fn kind(&self) -> SuiteKind;
    /// Checks `signature` over `domain || body` under `signer`.
    fn verify(
        &self,
        signer: &PublicKey,
        domain: &[u8],
        body: &[u8],
        signature: &Signature,
    ) -> Result<(), VerifyError>;
    /// Whether every one of `items` verifies (a `false` does not say which failed). A
    /// suite that can check signatures together overrides this; the result must be what
    /// checking each with [`CryptoSuite::verify`] would give.
    fn verify_batch(&self, items: &[BatchItem<'_>]) -> bool {
        verify_each(self, items)
    }
    /// A 32-byte collision-resistant digest of `domain || body` (SHA-256 for ed25519).
    fn digest(&self, domain: &[u8], body: &[u8]) -> [u8; 32];
    /// The digest that identifies one signed message: `digest(domain, body || signature)`
    /// (what [`crate::Signed::digest`] returns). A suite may compute it without
    /// building the concatenation.
    fn digest_signed(&self, domain: &[u8], body: &[u8], signature: &Signature) -> [u8; 32] {
        let mut message = Vec::with_capacity(body.len() + signature.0.len());
        message.extend_from_slice(body);
        message.extend_from_slice(&signature.0);
        self.digest(domain, &message)
    }
}

/// Real ed25519. Verification follows ZIP-215 (spec §2.7): the cofactored equation
/// `[8][s]B = [8]R + [8][k]A`, `s` canonical, `R` any point encoding. Under these rules,
/// and only these among ed25519's variants, checking signatures in a batch accepts exactly
/// the signatures that checking them one by one accepts, so a node, an auditor and
/// `check-proof` cannot disagree about a signature however each checks it. Weak and
/// non-canonical member keys are refused when loaded ([`PublicKey::from_bytes`]).
#[derive(Debug, Default, Clone, Copy)]
pub struct Ed25519Suite;

/// One signature for [`CryptoSuite::verify_batch`] and [`failing_signatures`].
#[derive(Debug, Clone, Copy)]
pub struct BatchItem<'a> {
    pub signer: &'a PublicKey,
    pub domain: &'a [u8],
    pub body: &'a [u8],
    pub signature: &'a Signature,
}

/// Whether every one of `items` verifies, checked one by one.
fn verify_each<S: CryptoSuite + ?Sized>(suite: &S, items: &[BatchItem<'_>]) -> bool {
    items.iter().all(|i| {
        suite
            .verify(i.signer, i.domain, i.body, i.signature)
            .is_ok()
    })
}

/// The indices of `items` whose signatures do not verify, in order (none when all do).
/// Checks them in one batch where the suite can (ed25519, 30 signatures under distinct
/// keys: 14–19 µs per signature instead of 27–33 alone on the 2-core test VM), and each
/// alone only when the batch fails.
pub fn failing_signatures(suite: &dyn CryptoSuite, items: &[BatchItem<'_>]) -> Vec<usize> {
    if suite.verify_batch(items) {
        return Vec::new();
    }
    items
        .iter()
        .enumerate()
        .filter(|(_, i)| {
            suite
                .verify(i.signer, i.domain, i.body, i.signature)
                .is_err()
        })
        .map(|(k, _)| k)
        .collect()
}

impl CryptoSuite for Ed25519Suite {
    fn kind(&self) -> SuiteKind {
        SuiteKind::Ed25519
    }

    fn verify(
        &self,
        signer: &PublicKey,
        domain: &[u8],
        body: &[u8],
        signature: &Signature,
    ) -> Result<(), VerifyError> {
        let message = domain_message(domain, body);
        signer
            .zip215()
            .verify(
                &ed25519_zebra::Signature::from_bytes(&signature.0),
                &message,
            )
            .map_err(|_| VerifyError::BadSignature)
    }

    /// One multiscalar multiplication for the whole batch ([`crate::batch`]), with random
    /// 128-bit coefficients seeded from the operating system (their unpredictability is
    /// what makes a batch sound; the outcome for honest and for invalid signatures does
    /// not depend on them, so runs stay reproducible).
    fn verify_batch(&self, items: &[BatchItem<'_>]) -> bool {
        if items.len() < 2 {
            return verify_each(self, items);
        }
        crate::batch::verify_zip215(items).unwrap_or_else(|| verify_each(self, items))
    }

    fn digest(&self, domain: &[u8], body: &[u8]) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(domain);
        h.update(body);
        h.finalize().into()
    }

    fn digest_signed(&self, domain: &[u8], body: &[u8], signature: &Signature) -> [u8; 32] {
        // SHA-256 streams: the same digest as over the concatenation, without a copy.
        let mut h = Sha256::new();
        h.update(domain);
        h.update(body);
        h.update(signature.0);
        h.finalize().into()
    }
}

/// The simulator-only stand-in: a keyed 64-bit hash (foldhash). NOT SECURE (see module docs).
#[derive(Debug, Default, Clone, Copy)]
pub struct FastSuite;

/// Signs with [`FastSuite`]: the "secret" is derived from the public key, so anyone can forge.
#[derive(Debug, Clone, Copy)]
pub struct FastSigner {
    public: PublicKey,
}

impl FastSigner {
    pub fn new(public: PublicKey) -> Self {
        FastSigner { public }
    }
}

const MIX: u64 = 0x9E37_79B9_7F4A_7C15;

/// A keyed 64-bit hash of `parts` (each followed by its length, so part boundaries
/// count): foldhash, which hashes 16 bytes per folded multiply. This runs five times
/// per simulated exchange; only the simulator's own runs ever compare its values, so
/// they may change with the foldhash version.
fn fast_hash<const N: usize>(seed: u64, parts: [&[u8]; N]) -> u64 {
    let mut h = foldhash::fast::FixedState::with_seed(seed).build_hasher();
    for part in parts {
        h.write(part);
        h.write_usize(part.len());
    }
    h.finish()
}

fn fast_signature(public: &PublicKey, domain: &[u8], body: &[u8]) -> Signature {
    // The key goes into the seed (all 32 bytes folded into one word) rather than
    // through the hasher as a third part: one part less to hash, twice per exchange.
    let key = public.to_bytes();
    let seed = key.chunks_exact(8).fold(0x5157_u64, |acc, w| {
        let word = w.first_chunk::<8>().map_or(0, |b| u64::from_le_bytes(*b));
        (acc ^ word).wrapping_mul(MIX).rotate_left(29)
    });
    let h = fast_hash(seed, [domain, body]);
    let mut out = [0u8; 64];
    for (i, chunk) in out.chunks_exact_mut(8).enumerate() {
        chunk.copy_from_slice(&(h.wrapping_mul(i as u64 * 2 + 1) ^ i as u64).to_le_bytes());
    }
    Signature(out)
}

/// 32 digest bytes from one 64-bit hash: four finalisations of it.
fn expand_digest(h: u64) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (i, chunk) in out.chunks_exact_mut(8).enumerate() {
        let word = (h ^ (i as u64 + 1).wrapping_mul(MIX))
            .wrapping_mul(MIX)
            .rotate_left(23);
        chunk.copy_from_slice(&word.to_le_bytes());
    }
    out
}

impl Signer for FastSigner {
    fn public_key(&self) -> PublicKey {
        self.public
    }

    fn sign(&self, domain: &[u8], body: &[u8]) -> Signature {
        fast_signature(&self.public, domain, body)
    }
}

impl CryptoSuite for FastSuite {
    fn kind(&self) -> SuiteKind {
        SuiteKind::Fast
    }

    fn verify(
        &self,
        signer: &PublicKey,
        domain: &[u8],
        body: &[u8],
        signature: &Signature,
    ) -> Result<(), VerifyError> {
        if fast_signature(signer, domain, body) == *signature {
            Ok(())
        } else {
            Err(VerifyError::BadSignature)
        }
    }

    fn digest(&self, domain: &[u8], body: &[u8]) -> [u8; 32] {
        // One pass over the input, then four finalisations of the state.
        expand_digest(fast_hash(1, [domain, body]))
    }

    /// The stand-in signature is already a keyed hash of `domain || body`, all of it in
    /// its first eight bytes (see [`fast_signature`]), so the digest of a signed message
    /// hashes only those: the per-exchange head update then costs no pass over the body
    /// (it was an eighth of a large simulation's instructions). As unforgeable as the
    /// rest of this suite, which is not at all.
    fn digest_signed(&self, domain: &[u8], _body: &[u8], signature: &Signature) -> [u8; 32] {
        let (tag, _) = signature.0.split_at(8);
        expand_digest(fast_hash(2, [domain, tag]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failing_signatures_names_every_bad_one() {
        let keys: Vec<crate::NodeKey> = (0..5u8)
            .map(|i| crate::NodeKey::from_seed(&[i + 1; 32]))
            .collect();
        let pks: Vec<PublicKey> = keys.iter().map(|k| k.public_key()).collect();
        let bodies: Vec<Vec<u8>> = (0..5u8).map(|i| vec![i; 40]).collect();
        let mut sigs: Vec<Signature> = keys
            .iter()
            .zip(&bodies)
            .map(|(k, b)| k.sign(b"d\0", b))
            .collect();
        let items = |sigs: &[Signature]| -> Vec<(usize, Signature)> {
            sigs.iter().copied().enumerate().collect()
        };
        let run = |sigs: &[Signature]| {
            let list = items(sigs);
            let batch: Vec<BatchItem<'_>> = list
                .iter()
                .map(|(i, s)| BatchItem {
                    signer: &pks[*i],
                    domain: b"d\0",
                    body: &bodies[*i],
                    signature: s,
                })
                .collect();
            failing_signatures(&Ed25519Suite, &batch)
        };
        assert_eq!(run(&sigs), Vec::<usize>::new());
        sigs[3].0[5] ^= 1;
        sigs[4].0[5] ^= 1;
        assert_eq!(run(&sigs), vec![3, 4]);
    }
    use crate::key::NodeKey;

    #[test]
    fn both_suites_reject_a_changed_body() {
        let key = NodeKey::from_seed(&[5; 32]);
        let sig = key.sign(b"d\0", b"body");
        assert!(
            Ed25519Suite
                .verify(&key.public_key(), b"d\0", b"body", &sig)
                .is_ok()
        );
        assert!(
            Ed25519Suite
                .verify(&key.public_key(), b"d\0", b"bodz", &sig)
                .is_err()
        );
        let fast = FastSigner::new(key.public_key());
        let sig = fast.sign(b"d\0", b"body");
        assert!(
            FastSuite
                .verify(&key.public_key(), b"d\0", b"body", &sig)
                .is_ok()
        );
        assert!(
            FastSuite
                .verify(&key.public_key(), b"d\0", b"bodz", &sig)
                .is_err()
        );
        let other = NodeKey::from_seed(&[6; 32]).public_key();
        assert!(FastSuite.verify(&other, b"d\0", b"body", &sig).is_err());
    }

    /// Spec §2.3: the digest of a signed message is `H(domain || body || signature)`;
    /// ed25519's streaming version must be exactly that, and under both suites a
    /// different body (hence signature) or domain gives a different digest.
    #[test]
    fn signed_digest_is_the_digest_of_body_and_signature() {
        let key = NodeKey::from_seed(&[7; 32]);
        let sig = key.sign(b"d\0", b"body");
        let mut joined = b"body".to_vec();
        joined.extend_from_slice(&sig.0);
        assert_eq!(
            Ed25519Suite.digest_signed(b"s\0", b"body", &sig),
            Ed25519Suite.digest(b"s\0", &joined)
        );
        let other = key.sign(b"d\0", b"bodz");
        assert_ne!(
            Ed25519Suite.digest_signed(b"s\0", b"body", &sig),
            Ed25519Suite.digest_signed(b"s\0", b"bodz", &other)
        );
        let fast = FastSigner::new(key.public_key());
        let (a, b) = (fast.sign(b"d\0", b"body"), fast.sign(b"d\0", b"bodz"));
        assert_ne!(
            FastSuite.digest_signed(b"s\0", b"body", &a),
            FastSuite.digest_signed(b"s\0", b"bodz", &b)
        );
        assert_ne!(
            FastSuite.digest_signed(b"s\0", b"body", &a),
            FastSuite.digest_signed(b"t\0", b"body", &a)
        );
    }

    #[test]
    fn sha256_digest_is_domain_separated() {
        assert_ne!(
            Ed25519Suite.digest(b"a\0", b"x"),
            Ed25519Suite.digest(b"b\0", b"x")
        );
        assert_ne!(
            FastSuite.digest(b"a\0", b"x"),
            FastSuite.digest(b"b\0", b"x")
        );
    }
}
