//! `Signed<T>`: a message whose bytes are signed over a per-kind domain prefix.
//!
//! The body is kept as the exact postcard bytes that were signed, so a verifier never
//! re-encodes (re-encoding could differ and would invite malleability bugs). Decoding is
//! strict: trailing bytes after a body or after a wire frame are an error, and wire
//! frames are size-capped before anything is decoded.

use std::fmt;
use std::marker::PhantomData;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use smallvec::SmallVec;

use crate::key::PublicKey;
use crate::suite::{CryptoSuite, Signature, Signer};

/// A message kind that may be signed. Each kind has its own prefix, ending in NUL,
/// so a signature over one kind can never verify as another (Roughtime's habit).
pub trait Domain: Serialize + DeserializeOwned {
    const DOMAIN: &'static [u8];

    /// Appends the postcard encoding of `self` to `out`. A kind on a hot path (readings:
    /// every exchange, every audited reading) may override this with a hand-written
    /// encoder, but only one that a test proves byte-identical to postcard: the bytes
    /// are what gets signed, logged and re-verified.
    fn encode_body(&self, out: &mut SignedBody) -> Result<(), SignedError> {
        let mut buf = [0u8; 512];
        match postcard::to_slice(self, &mut buf) {
            Ok(used) => out.extend_from_slice(used),
            Err(_) => out.extend_from_slice(
                &postcard::to_allocvec(self).map_err(|e| SignedError::Malformed(e.to_string()))?,
            ),
        }
        Ok(())
    }

    /// Decodes a body strictly (no trailing bytes). An override must accept exactly the
    /// inputs postcard accepts and decode them to the same value.
    fn decode_body(bytes: &[u8]) -> Result<Self, SignedError> {
        decode_exact(bytes)
    }
}

/// Why a signed message was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignedError {
    #[error("frame of {len} bytes exceeds the cap of {cap}")]
    Oversized { len: usize, cap: usize },
    #[error("malformed message: {0}")]
    Malformed(String),
    #[error("{0} unexpected trailing bytes")]
    TrailingBytes(usize),
    #[error("bad signature")]
    BadSignature,
}

/// Bodies up to this size live inside the [`Signed`] value. A reading (always 127
/// bytes) fits, so the per-exchange message needs no allocation of its own.
pub const INLINE_BODY_BYTES: usize = 160;

/// Domain of [`Signed::digest`] (spec §2.3).
const SIGNED_DIGEST_DOMAIN: &[u8] = b"bftime v1 signed message digest\0";

/// The signed bytes of a message.
pub type SignedBody = SmallVec<[u8; INLINE_BODY_BYTES]>;

/// A `T` signed by one node. Construct with [`Signed::sign`]; read with [`Signed::verify`].
///
/// Serialised as postcard of `(body: seq of u8, signature)`, the same bytes as a
/// `Vec<u8>` body would give.
pub struct Signed<T> {
    body: SignedBody,
    signature: Signature,
    kind: PhantomData<fn() -> T>,
}

#[derive(Serialize)]
struct WireRef<'a> {
    body: &'a [u8],
    signature: &'a Signature,
}

#[derive(Deserialize)]
struct SignedOwned {
    // Through `Vec`: serde caps its pre-allocation whatever length the input claims.
    body: Vec<u8>,
    signature: Signature,
}

impl<T> Serialize for Signed<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        WireRef {
            body: &self.body,
            signature: &self.signature,
        }
        .serialize(serializer)
    }
}

impl<'de, T> Deserialize<'de> for Signed<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let SignedOwned { body, signature } = SignedOwned::deserialize(deserializer)?;
        Ok(Signed {
            body: SmallVec::from_vec(body),
            signature,
            kind: PhantomData,
        })
    }
}

impl<T> Clone for Signed<T> {
    fn clone(&self) -> Self {
        Signed {
            body: self.body.clone(),
            signature: self.signature,
            kind: PhantomData,
        }
    }
}

impl<T> PartialEq for Signed<T> {
    fn eq(&self, other: &Self) -> bool {
        self.body == other.body && self.signature == other.signature
    }
}

impl<T> Eq for Signed<T> {}

impl<T> fmt::Debug for Signed<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signed")
            .field("body_len", &self.body.len())
            .field("signature", &self.signature)
            .finish()
    }
}

/// A signed `T`'s body and signature, borrowed where they lie: checked, decoded and
/// digested exactly like the [`Signed`] they would make, without first being copied
/// into one (the simulator keeps readings in flight as packed bytes, and copying each
/// into a `Signed` was a twentieth of its work).
pub struct SignedParts<'a, T> {
    body: &'a [u8],
    signature: &'a Signature,
    kind: PhantomData<fn() -> T>,
}

impl<T> Clone for SignedParts<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for SignedParts<'_, T> {}

impl<T> fmt::Debug for SignedParts<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignedParts")
            .field("body_len", &self.body.len())
            .field("signature", self.signature)
            .finish()
    }
}

impl<'a, T: Domain> SignedParts<'a, T> {
    pub fn new(body: &'a [u8], signature: &'a Signature) -> Self {
        SignedParts {
            body,
            signature,
            kind: PhantomData,
        }
    }

    /// As [`Signed::verify`].
    pub fn verify(&self, suite: &dyn CryptoSuite, signer: &PublicKey) -> Result<T, SignedError> {
        suite
            .verify(signer, T::DOMAIN, self.body, self.signature)
            .map_err(|_| SignedError::BadSignature)?;
        T::decode_body(self.body)
    }

    /// As [`Signed::digest`].
    pub fn digest(&self, suite: &dyn CryptoSuite) -> [u8; 32] {
        suite.digest_signed(SIGNED_DIGEST_DOMAIN, self.body, self.signature)
    }

    pub fn body(&self) -> &'a [u8] {
        self.body
    }

    pub fn signature(&self) -> &'a Signature {
        self.signature
    }

    /// The owned signed message with these parts.
    pub fn to_signed(&self) -> Signed<T> {
        Signed::from_slices(self.body, *self.signature)
    }
}

/// Strict postcard decoding: the whole input must be one `T`.
pub fn decode_exact<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, SignedError> {
    let (value, rest) =
        postcard::take_from_bytes::<T>(bytes).map_err(|e| SignedError::Malformed(e.to_string()))?;
    if rest.is_empty() {
        Ok(value)
    } else {
        Err(SignedError::TrailingBytes(rest.len()))
    }
}

impl<T: Domain> Signed<T> {
    /// Encodes `value` with postcard and signs `T::DOMAIN || bytes`.
    pub fn sign(value: &T, signer: &dyn Signer) -> Result<Self, SignedError> {
        let mut body = SignedBody::new();
        value.encode_body(&mut body)?;
        let signature = signer.sign(T::DOMAIN, &body);
        Ok(Signed {
            body,
            signature,
            kind: PhantomData,
        })
    }

    /// Checks the signature under `signer`, then decodes the body strictly.
    pub fn verify(&self, suite: &dyn CryptoSuite, signer: &PublicKey) -> Result<T, SignedError> {
        self.parts().verify(suite, signer)
    }

    /// Its body and signature, borrowed.
    pub fn parts(&self) -> SignedParts<'_, T> {
        SignedParts::new(&self.body, &self.signature)
    }

    /// Decodes the body WITHOUT checking the signature: only to learn who claims to
    /// have signed it, so the right key can be looked up. Never act on the result.
    pub fn decode_unverified(&self) -> Result<T, SignedError> {
        T::decode_body(&self.body)
    }

    /// The exact signed bytes (what the audit log stores and proofs re-verify).
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    pub fn signature(&self) -> &Signature {
        &self.signature
    }

    /// Reassembles a signed message from stored parts (e.g. an audit record).
    pub fn from_parts(body: Vec<u8>, signature: Signature) -> Self {
        Signed {
            body: SmallVec::from_vec(body),
            signature,
            kind: PhantomData,
        }
    }

    /// Reassembles a signed message from borrowed parts, with no allocation for a body
    /// that fits inline (the simulator keeps readings in flight as plain bytes).
    pub fn from_slices(body: &[u8], signature: Signature) -> Self {
        Signed {
            body: SmallVec::from_slice(body),
            signature,
            kind: PhantomData,
        }
    }

    /// A digest identifying this exact signed message (used to chain request nonces):
    /// `suite.digest(DOMAIN, body || signature)`.
    pub fn digest(&self, suite: &dyn CryptoSuite) -> [u8; 32] {
        self.parts().digest(suite)
    }

    /// The wire form: postcard of (body, signature).
    pub fn to_wire(&self) -> Vec<u8> {
        // Encoding a Vec<u8> and a fixed array cannot fail.
        postcard::to_allocvec(self).unwrap_or_default()
    }

    /// Parses a wire frame of at most `cap` bytes; no trailing bytes allowed.
    pub fn from_wire(bytes: &[u8], cap: usize) -> Result<Self, SignedError> {
        if bytes.len() > cap {
            return Err(SignedError::Oversized {
                len: bytes.len(),
                cap,
            });
        }
        decode_exact(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::NodeKey;
    use crate::suite::Ed25519Suite;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Ping {
        round: u64,
        note: String,
    }
    impl Domain for Ping {
        const DOMAIN: &'static [u8] = b"bftime v1 test ping\0";
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Pong {
        round: u64,
        note: String,
    }
    impl Domain for Pong {
        const DOMAIN: &'static [u8] = b"bftime v1 test pong\0";
    }

    fn key() -> NodeKey {
        NodeKey::from_seed(&[42; 32])
    }

    fn signed() -> Signed<Ping> {
        Signed::sign(
            &Ping {
                round: 7,
                note: "hello".into(),
            },
            &key(),
        )
        .unwrap()
    }

    #[test]
    fn verifies_with_right_key() {
        let s = signed();
        let v = s.verify(&Ed25519Suite, &key().public_key()).unwrap();
        assert_eq!(
            v,
            Ping {
                round: 7,
                note: "hello".into()
            }
        );
    }

    #[test]
    fn wrong_key_rejected() {
        let other = NodeKey::from_seed(&[1; 32]).public_key();
        assert_eq!(
            signed().verify(&Ed25519Suite, &other),
            Err(SignedError::BadSignature)
        );
    }

    #[test]
    fn every_flipped_bit_of_the_wire_frame_is_rejected() {
        let wire = signed().to_wire();
        let pk = key().public_key();
        for byte in 0..wire.len() {
            for bit in 0..8 {
                let mut w = wire.clone();
                w[byte] ^= 1 << bit;
                let outcome =
                    Signed::<Ping>::from_wire(&w, 1024).and_then(|s| s.verify(&Ed25519Suite, &pk));
                assert!(outcome.is_err(), "flip of byte {byte} bit {bit} accepted");
            }
        }
    }

    #[test]
    fn truncation_and_trailing_bytes_rejected() {
        let wire = signed().to_wire();
        for len in 0..wire.len() {
            assert!(
                Signed::<Ping>::from_wire(&wire[..len], 1024).is_err(),
                "truncated to {len}"
            );
        }
        let mut long = wire.clone();
        long.push(0);
        assert_eq!(
            Signed::<Ping>::from_wire(&long, 1024),
            Err(SignedError::TrailingBytes(1))
        );
        assert!(matches!(
            Signed::<Ping>::from_wire(&wire, wire.len() - 1),
            Err(SignedError::Oversized { .. })
        ));
    }

    #[test]
    fn trailing_bytes_inside_a_signed_body_rejected() {
        // A signer that appends junk to the body: the signature is valid, the body is not.
        let k = key();
        let mut body = postcard::to_allocvec(&Ping {
            round: 1,
            note: "x".into(),
        })
        .unwrap();
        body.push(0xff);
        let sig = k.sign(Ping::DOMAIN, &body);
        let s = Signed::<Ping>::from_parts(body, sig);
        assert_eq!(
            s.verify(&Ed25519Suite, &k.public_key()),
            Err(SignedError::TrailingBytes(1))
        );
    }

    #[test]
    fn wrong_domain_rejected() {
        // Same bytes, same signer, but presented as another message kind.
        let s = signed();
        let as_pong = Signed::<Pong>::from_parts(s.body().to_vec(), *s.signature());
        assert_eq!(
            as_pong.verify(&Ed25519Suite, &key().public_key()),
            Err(SignedError::BadSignature)
        );
    }

    #[test]
    fn signature_moved_onto_another_message_rejected() {
        let a = signed();
        let b = Signed::sign(
            &Ping {
                round: 8,
                note: "hello".into(),
            },
            &key(),
        )
        .unwrap();
        let franken = Signed::<Ping>::from_parts(b.body().to_vec(), *a.signature());
        assert_eq!(
            franken.verify(&Ed25519Suite, &key().public_key()),
            Err(SignedError::BadSignature)
        );
    }

    /// A reused buffer ends up exactly as a fresh signature, whatever it held: a longer
    /// body leaves nothing behind.
    #[test]
    fn unverified_decode_only_reads() {
        assert_eq!(signed().decode_unverified().unwrap().round, 7);
    }
}
