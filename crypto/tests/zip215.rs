//! The signature rule (spec §2.7): ZIP-215 verification, and batch verification that
//! accepts exactly what one-by-one verification accepts, including on the inputs where
//! ed25519's variants disagree (signatures whose R has a small-order component,
//! non-canonical s). Member keys that the rule would otherwise let through are refused.

use bftime_crypto::{BatchItem, CryptoSuite, Ed25519Suite, NodeKey, PublicKey, Signature};
use curve25519_dalek::constants::{ED25519_BASEPOINT_POINT, EIGHT_TORSION};
use curve25519_dalek::edwards::CompressedEdwardsY;
use curve25519_dalek::scalar::Scalar;
use ed25519_dalek::SigningKey;
use proptest::prelude::*;
use sha2::{Digest, Sha512};

const DOMAIN: &[u8] = b"bftime test\0";

/// An ed25519 signature made by hand, with `torsion` (one of the eight points of order
/// dividing 8; 0 is the identity) added to its R. Only the key's owner can make one; the
/// cofactored equation accepts it, the cofactorless one (RFC 8032's alternative, and
/// ed25519-dalek's strict check) does not.
fn signature_with_torsion(seed: &[u8; 32], body: &[u8], torsion: usize) -> Signature {
    let r = Scalar::from_bytes_mod_order_wide(
        &Sha512::new()
            .chain_update(seed)
            .chain_update(body)
            .finalize()
            .into(),
    );
    let big_r = (r * ED25519_BASEPOINT_POINT + EIGHT_TORSION[torsion % 8])
        .compress()
        .to_bytes();
    signature_with_r(seed, body, r, big_r)
}

/// The signature (R, s = r + k·a) with R spelled `big_r`, k = SHA-512(R ‖ A ‖ message).
fn signature_with_r(seed: &[u8; 32], body: &[u8], r: Scalar, big_r: [u8; 32]) -> Signature {
    let key = SigningKey::from_bytes(seed);
    let k = Scalar::from_bytes_mod_order_wide(
        &Sha512::new()
            .chain_update(big_r)
            .chain_update(key.verifying_key().to_bytes())
            .chain_update(DOMAIN)
            .chain_update(body)
            .finalize()
            .into(),
    );
    let s = r + k * key.to_scalar();
    let mut out = [0u8; 64];
    out[..32].copy_from_slice(&big_r);
    out[32..].copy_from_slice(s.as_bytes());
    Signature(out)
}

/// Every non-canonical encoding of a small-order point: y + p where y < 19 (the only y
/// with a second spelling below 2²⁵⁵), and the sign bit set where x = 0. ZIP-215 takes
/// them as R (ed25519's variants disagree here); no other point has one.
fn non_canonical_small_order_encodings() -> Vec<[u8; 32]> {
    const P: [u8; 32] = {
        let mut p = [0xff; 32];
        p[0] = 0xed;
        p[31] = 0x7f;
        p
    };
    let mut out = Vec::new();
    for point in EIGHT_TORSION {
        let canonical = point.compress().to_bytes();
        let mut y = canonical;
        y[31] &= 0x7f;
        let mut spellings = vec![y];
        if y[1..].iter().all(|&b| b == 0) && y[0] < 19 {
            let mut plus_p = P;
            plus_p[0] += y[0];
            spellings.push(plus_p);
        }
        // x = 0 (the identity and the point of order 2): either sign bit names it.
        let x_is_zero = point == -point;
        for spelling in spellings {
            for sign in [0u8, 0x80] {
                let mut enc = spelling;
                enc[31] |= sign;
                if enc != canonical && (x_is_zero || sign == canonical[31] & 0x80) {
                    out.push(enc);
                }
            }
        }
    }
    out
}

/// A valid ZIP-215 signature whose R is `encoding`, a small-order point spelled
/// non-canonically: with r = 0, s = k·a satisfies [8][s]B = [8]R + [8][k]A.
fn signature_with_encoded_r(seed: &[u8; 32], body: &[u8], encoding: [u8; 32]) -> Signature {
    signature_with_r(seed, body, Scalar::ZERO, encoding)
}

/// The group order ℓ, little-endian: adding it to a canonical s gives a non-canonical one.
const ELL: [u8; 32] = [
    0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
];

fn add_ell(s: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    let mut carry = 0u16;
    for i in 0..32 {
        let v = u16::from(s[i]) + u16::from(ELL[i]) + carry;
        out[i] = v as u8;
        carry = v >> 8;
    }
    out
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Honest,
    Torsion(usize),
    FlippedBit(usize),
    OtherBody,
    NonCanonicalS,
    NonCanonicalR(usize),
    OtherKey,
}

impl Kind {
    fn valid(self) -> bool {
        matches!(
            self,
            Kind::Honest | Kind::Torsion(_) | Kind::NonCanonicalR(_)
        )
    }
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        3 => Just(Kind::Honest),
        2 => (1usize..8).prop_map(Kind::Torsion),
        1 => (0usize..512).prop_map(Kind::FlippedBit),
        1 => Just(Kind::OtherBody),
        1 => Just(Kind::NonCanonicalS),
        1 => (0usize..16).prop_map(Kind::NonCanonicalR),
        1 => Just(Kind::OtherKey),
    ]
}

struct Case {
    signer: PublicKey,
    body: Vec<u8>,
    signature: Signature,
}

fn case(i: usize, kind: Kind) -> Case {
    let seed = [i as u8 + 1; 32];
    let key = NodeKey::from_seed(&seed);
    let body = vec![i as u8; 40 + i];
    let mut signature = signature_with_torsion(&seed, &body, 0);
    let mut signer = key.public_key();
    let mut signed_body = body.clone();
    match kind {
        Kind::Honest => {}
        Kind::Torsion(t) => signature = signature_with_torsion(&seed, &body, t),
        Kind::FlippedBit(bit) => signature.0[bit / 8] ^= 1 << (bit % 8),
        Kind::OtherBody => signed_body[0] ^= 1,
        Kind::NonCanonicalS => {
            let s = add_ell(&signature.0[32..]);
            signature.0[32..].copy_from_slice(&s);
        }
        Kind::NonCanonicalR(k) => {
            let encodings = non_canonical_small_order_encodings();
            signature = signature_with_encoded_r(&seed, &body, encodings[k % encodings.len()]);
        }
        Kind::OtherKey => signer = NodeKey::from_seed(&[200; 32]).public_key(),
    }
    Case {
        signer,
        body: signed_body,
        signature,
    }
}

#[test]
fn a_hand_made_signature_is_what_ed25519_dalek_makes() {
    // The construction above is ordinary ed25519 when no torsion is added: dalek's own
    // (deterministic) signature is the same bytes.
    use ed25519_dalek::Signer as _;
    let seed = [9u8; 32];
    let body = b"reading";
    let key = SigningKey::from_bytes(&seed);
    let mut message = DOMAIN.to_vec();
    message.extend_from_slice(body);
    let ours = signature_with_torsion(&seed, body, 0);
    let suite = Ed25519Suite;
    let public = NodeKey::from_seed(&seed).public_key();
    assert!(suite.verify(&public, DOMAIN, body, &ours).is_ok());
    // dalek derives r from the secret's hash prefix rather than from the seed, so the
    // bytes differ, but both are valid signatures under the same key and rule.
    let theirs = Signature(key.sign(&message).to_bytes());
    assert!(suite.verify(&public, DOMAIN, body, &theirs).is_ok());
}

#[test]
fn small_order_components_verify_under_the_cofactored_rule_only() {
    let seed = [3u8; 32];
    let body = b"body";
    let public = NodeKey::from_seed(&seed).public_key();
    let key = SigningKey::from_bytes(&seed);
    let mut message = DOMAIN.to_vec();
    message.extend_from_slice(body);
    for t in 1..8 {
        let sig = signature_with_torsion(&seed, body, t);
        assert!(
            Ed25519Suite.verify(&public, DOMAIN, body, &sig).is_ok(),
            "torsion {t}"
        );
        let dalek = ed25519_dalek::Signature::from_bytes(&sig.0);
        assert!(
            key.verifying_key().verify_strict(&message, &dalek).is_err(),
            "dalek's strict (cofactorless) check refuses torsion {t}"
        );
    }
}

#[test]
fn non_canonical_encodings_of_r_verify_under_zip215() {
    let encodings = non_canonical_small_order_encodings();
    // y = p + 0 and p + 1 with either sign where they name a point, and −0 for x = 0:
    // the six that "Taming the many EdDSAs" (Chalkias et al.) lists.
    assert_eq!(encodings.len(), 6, "{encodings:02x?}");
    let seed = [4u8; 32];
    let public = NodeKey::from_seed(&seed).public_key();
    for enc in encodings {
        let sig = signature_with_encoded_r(&seed, b"body", enc);
        assert!(
            Ed25519Suite.verify(&public, DOMAIN, b"body", &sig).is_ok(),
            "{enc:02x?}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Spec §2.7: a batch accepts exactly when every signature in it verifies alone.
    #[test]
    fn a_batch_accepts_exactly_what_single_checks_accept(kinds in prop::collection::vec(kind(), 1..12)) {
        let cases: Vec<Case> = kinds.iter().enumerate().map(|(i, k)| case(i, *k)).collect();
        let items: Vec<BatchItem<'_>> = cases
            .iter()
            .map(|c| BatchItem { signer: &c.signer, domain: DOMAIN, body: &c.body, signature: &c.signature })
            .collect();
        let singles: Vec<bool> = items
            .iter()
            .map(|i| Ed25519Suite.verify(i.signer, i.domain, i.body, i.signature).is_ok())
            .collect();
        for (k, ok) in kinds.iter().zip(&singles) {
            prop_assert_eq!(*ok, k.valid(), "{:?}", k);
        }
        prop_assert_eq!(Ed25519Suite.verify_batch(&items), singles.iter().all(|&b| b));
        let bad: Vec<usize> = (0..singles.len()).filter(|&k| !singles[k]).collect();
        prop_assert_eq!(bftime_crypto::failing_signatures(&Ed25519Suite, &items), bad);
    }
}

/// Small-order ("weak") keys, and keys with a small-order component (an honest key plus
/// each torsion point), are refused with a reason that says which.
#[test]
fn member_keys_of_small_order_or_with_a_small_order_component_are_refused() {
    let honest = NodeKey::from_seed(&[5; 32]).public_key().to_bytes();
    let point = CompressedEdwardsY(honest).decompress().expect("a point");
    for (i, torsion) in EIGHT_TORSION.iter().enumerate() {
        let mut cases = vec![(torsion.compress().to_bytes(), "small-order (weak)")];
        if i > 0 {
            cases.push((
                (point + torsion).compress().to_bytes(),
                "small-order component",
            ));
        }
        for (bytes, why) in cases {
            let err = PublicKey::from_bytes(&bytes).expect_err("refused");
            assert!(err.to_string().contains(why), "torsion {i}: {err}");
        }
    }
}

#[test]
fn member_keys_in_non_canonical_encoding_are_refused() {
    // y = p + k for small k encodes the same point as y = k: find one of large order.
    let p_plus = |k: u8| {
        let mut b = [0xffu8; 32];
        b[0] = 0xed_u8.wrapping_add(k);
        b[31] = 0x7f;
        b
    };
    let mut found = 0;
    for k in 2..19u8 {
        let bytes = p_plus(k);
        let Some(point) = CompressedEdwardsY(bytes).decompress() else {
            continue;
        };
        if point.is_small_order() {
            continue;
        }
        found += 1;
        let err = PublicKey::from_bytes(&bytes).expect_err("non-canonical key refused");
        assert!(err.to_string().contains("canonical"), "{err}");
        // Its canonical spelling is refused only for what the point is.
        let canonical = PublicKey::from_bytes(&point.compress().to_bytes());
        assert_eq!(canonical.is_ok(), point.is_torsion_free());
    }
    assert!(found > 0, "some y = p + k is a point of large order");
}
