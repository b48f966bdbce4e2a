//! A reading's body: 127 bytes at fixed offsets (spec §2.2), encoded and decoded by hand.
//!
//! Readings are encoded and decoded on every exchange and again by every audit of a log.
//! With postcard's varints they were a sixth of the simulator's instructions even through
//! a hand-written codec, and a reading had several valid encodings (postcard accepts
//! non-minimal varints). Every integer of a reading is now fixed-width little-endian, so a
//! reading has exactly one encoding, every field sits at a known offset, and this codec
//! is a few loads and stores. Postcard stays the definition: `Reading`'s serde
//! attributes ([`crate::reading_serde`]) make postcard write exactly this layout, and
//! the property tests below hold this codec to postcard, byte for byte and input for
//! input.

use bftime_crypto::SignedError;

use crate::message::{MemberId, Reading, SyncState};
use crate::time::{ClusterTime, Nanos};

/// The length of every reading's body.
pub const READING_BODY_BYTES: usize = 127;

// Field offsets, in wire order (spec §2.2).
const CLUSTER: usize = 0;
const RESPONDER: usize = 8;
const REQUESTER: usize = 10;
const ROUND: usize = 12;
const NONCE: usize = 20;
const RECEIVE: usize = 52;
const TRANSMIT: usize = 60;
const ERROR_TAG: usize = 68;
const ERROR: usize = 69;
const STATE: usize = 77;
const SUSPECTS: usize = 78;
const RESPONDER_ROUND: usize = 79;
const EPOCH: usize = 87;
const HEAD: usize = 95;
const _: () = assert!(HEAD + 32 == READING_BODY_BYTES);

/// The byte that stands for `state`.
pub(crate) fn state_byte(state: SyncState) -> u8 {
    match state {
        SyncState::Starting => 0,
        SyncState::Synced => 1,
        SyncState::Quarantined => 2,
    }
}

/// The state a byte stands for, if any.
pub(crate) fn state_from_byte(b: u8) -> Option<SyncState> {
    match b {
        0 => Some(SyncState::Starting),
        1 => Some(SyncState::Synced),
        2 => Some(SyncState::Quarantined),
        _ => None,
    }
}

/// The error bound's tag and value bytes: `None` is a zero tag and eight zero bytes, so
/// that it too has one encoding.
pub(crate) fn error_bytes(error: Option<Nanos>) -> (u8, [u8; 8]) {
    match error {
        None => (0, [0; 8]),
        Some(e) => (1, e.0.to_le_bytes()),
    }
}

/// The error bound its tag and value bytes stand for, if they are valid.
pub(crate) fn error_from_bytes(tag: u8, value: [u8; 8]) -> Result<Option<Nanos>, &'static str> {
    match tag {
        0 if value == [0; 8] => Ok(None),
        0 => Err("error bound bytes after a None tag"),
        1 => Ok(Some(Nanos(i64::from_le_bytes(value)))),
        _ => Err("bad option tag"),
    }
}

/// The body of `r`.
pub fn encode(r: &Reading) -> [u8; READING_BODY_BYTES] {
    let mut b = [0u8; READING_BODY_BYTES];
    b[CLUSTER..RESPONDER].copy_from_slice(&r.cluster.to_le_bytes());
    b[RESPONDER..REQUESTER].copy_from_slice(&r.responder.0.to_le_bytes());
    b[REQUESTER..ROUND].copy_from_slice(&r.requester.0.to_le_bytes());
    b[ROUND..NONCE].copy_from_slice(&r.round.to_le_bytes());
    b[NONCE..RECEIVE].copy_from_slice(&r.nonce);
    b[RECEIVE..TRANSMIT].copy_from_slice(&r.receive.0.to_le_bytes());
    b[TRANSMIT..ERROR_TAG].copy_from_slice(&r.transmit.0.to_le_bytes());
    let (tag, value) = error_bytes(r.error);
    b[ERROR_TAG] = tag;
    b[ERROR..STATE].copy_from_slice(&value);
    b[STATE] = state_byte(r.state);
    b[SUSPECTS] = u8::from(r.suspects_requester);
    b[RESPONDER_ROUND..EPOCH].copy_from_slice(&r.responder_round.to_le_bytes());
    b[EPOCH..HEAD].copy_from_slice(&r.epoch.to_le_bytes());
    b[HEAD..].copy_from_slice(&r.head);
    b
}

fn malformed(what: &str) -> SignedError {
    SignedError::Malformed(format!("reading: {what}"))
}

/// `N` bytes of `b` from `at` (offsets are constants within the body).
fn field<const N: usize>(b: &[u8; READING_BODY_BYTES], at: usize) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&b[at..at + N]);
    out
}

/// Decodes a reading from exactly `bytes`: 127 of them, an error tag of 0 (with eight zero
/// bytes) or 1, a state of 0 to 2 and a flag of 0 or 1. Anything else is refused.
pub fn decode(bytes: &[u8]) -> Result<Reading, SignedError> {
    let Some(b) = bytes.first_chunk::<READING_BODY_BYTES>() else {
        return Err(malformed("unexpected end"));
    };
    if bytes.len() > READING_BODY_BYTES {
        return Err(SignedError::TrailingBytes(bytes.len() - READING_BODY_BYTES));
    }
    let error = error_from_bytes(b[ERROR_TAG], field(b, ERROR)).map_err(malformed)?;
    let state = state_from_byte(b[STATE]).ok_or_else(|| malformed("unknown sync state"))?;
    let suspects_requester = match b[SUSPECTS] {
        0 => false,
        1 => true,
        _ => return Err(malformed("bad bool")),
    };
    Ok(Reading {
        cluster: u64::from_le_bytes(field(b, CLUSTER)),
        responder: MemberId(u16::from_le_bytes(field(b, RESPONDER))),
        requester: MemberId(u16::from_le_bytes(field(b, REQUESTER))),
        round: u64::from_le_bytes(field(b, ROUND)),
        nonce: field(b, NONCE),
        receive: ClusterTime(i64::from_le_bytes(field(b, RECEIVE))),
        transmit: ClusterTime(i64::from_le_bytes(field(b, TRANSMIT))),
        error,
        state,
        suspects_requester,
        responder_round: u64::from_le_bytes(field(b, RESPONDER_ROUND)),
        epoch: u64::from_le_bytes(field(b, EPOCH)),
        head: field(b, HEAD),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn arb_state() -> impl Strategy<Value = SyncState> {
        prop_oneof![
            Just(SyncState::Starting),
            Just(SyncState::Synced),
            Just(SyncState::Quarantined)
        ]
    }

    /// Integers biased towards extremes and powers of two.
    fn arb_u64() -> impl Strategy<Value = u64> {
        prop_oneof![
            any::<u64>(),
            (0u32..64).prop_map(|b| 1u64 << b),
            (1u32..64).prop_map(|b| (1u64 << b) - 1),
            Just(u64::MAX),
            Just(0),
        ]
    }

    fn arb_i64() -> impl Strategy<Value = i64> {
        prop_oneof![arb_u64().prop_map(|v| v as i64), any::<i64>()]
    }

    prop_compose! {
        fn arb_reading()(
            cluster in arb_u64(), responder in any::<u16>(), requester in any::<u16>(),
            round in arb_u64(), nonce in any::<[u8; 32]>(), receive in arb_i64(),
            transmit in arb_i64(), error in proptest::option::of(arb_i64()),
            state in arb_state(), suspects_requester in any::<bool>(),
            responder_round in arb_u64(), epoch in arb_u64(), head in any::<[u8; 32]>(),
        ) -> Reading {
            Reading {
                cluster, responder: MemberId(responder), requester: MemberId(requester),
                round, nonce, receive: ClusterTime(receive), transmit: ClusterTime(transmit),
                error: error.map(Nanos), state, suspects_requester, responder_round, epoch, head,
            }
        }
    }

    fn by_postcard(bytes: &[u8]) -> Result<Reading, SignedError> {
        bftime_crypto::signed::decode_exact(bytes)
    }

    /// Both codecs on `bytes`: the same verdict, the same value, and (the layout has one
    /// encoding per reading) an accepted input is exactly what encoding its value gives.
    fn agree(bytes: &[u8]) -> Result<(), TestCaseError> {
        let ours = decode(bytes);
        let theirs = by_postcard(bytes);
        prop_assert_eq!(ours.is_ok(), theirs.is_ok(), "{:?} vs {:?}", ours, theirs);
        if let (Ok(a), Ok(b)) = (ours, theirs) {
            prop_assert_eq!(a, b);
            prop_assert_eq!(&encode(&a)[..], bytes);
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn encodes_exactly_like_postcard(r in arb_reading()) {
            let ours = encode(&r);
            prop_assert_eq!(&ours[..], &postcard::to_allocvec(&r).unwrap()[..]);
            prop_assert_eq!(decode(&ours).unwrap(), r);
        }

        /// Valid encodings with bytes changed, cut or appended: both codecs accept
        /// exactly the same inputs, with the same value.
        #[test]
        fn accepts_exactly_what_postcard_accepts(
            r in arb_reading(),
            edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
            cut in proptest::option::of(any::<prop::sample::Index>()),
            extra in proptest::collection::vec(any::<u8>(), 0..3),
        ) {
            let mut bytes = encode(&r).to_vec();
            for (at, b) in edits {
                let i = at.index(bytes.len());
                bytes[i] = b;
            }
            if let Some(c) = cut {
                bytes.truncate(c.index(bytes.len() + 1));
            }
            bytes.extend_from_slice(&extra);
            agree(&bytes)?;
        }

        #[test]
        fn random_bytes_agree_with_postcard(bytes in proptest::collection::vec(any::<u8>(), 0..160)) {
            agree(&bytes)?;
        }

        /// Random bodies of exactly the right length, with the three constrained bytes
        /// drawn from around their valid values so that many are accepted.
        #[test]
        fn full_length_bodies_agree_with_postcard(
            mut bytes in proptest::collection::vec(any::<u8>(), READING_BODY_BYTES),
            tag in 0u8..3, zero_value in any::<bool>(), state in 0u8..4, flag in 0u8..3,
        ) {
            bytes[ERROR_TAG] = tag;
            if zero_value {
                bytes[ERROR..STATE].fill(0);
            }
            bytes[STATE] = state;
            bytes[SUSPECTS] = flag;
            agree(&bytes)?;
        }
    }

    #[test]
    fn a_signed_reading_needs_no_allocation() {
        const { assert!(READING_BODY_BYTES <= bftime_crypto::INLINE_BODY_BYTES) };
    }

    /// A reading whose every field is told apart by its bytes.
    fn distinct_fields() -> Reading {
        Reading {
            cluster: 0x0102_0304_0506_0708,
            responder: MemberId(0x090a),
            requester: MemberId(0x0b0c),
            round: 0x0d,
            nonce: [0xee; 32],
            receive: ClusterTime(-2),
            transmit: ClusterTime(3),
            error: Some(Nanos(4)),
            state: SyncState::Quarantined,
            suspects_requester: true,
            responder_round: 5,
            epoch: 6,
            head: [0xdd; 32],
        }
    }

    /// The layout, pinned: a change here changes every signature (spec §2.2).
    #[test]
    fn layout_is_pinned() {
        let r = distinct_fields();
        let mut want = Vec::new();
        want.extend_from_slice(&[8, 7, 6, 5, 4, 3, 2, 1, 0x0a, 0x09, 0x0c, 0x0b]);
        want.extend_from_slice(&[0x0d, 0, 0, 0, 0, 0, 0, 0]);
        want.extend_from_slice(&[0xee; 32]);
        want.extend_from_slice(&[0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
        want.extend_from_slice(&[3, 0, 0, 0, 0, 0, 0, 0]);
        want.extend_from_slice(&[1, 4, 0, 0, 0, 0, 0, 0, 0]);
        want.extend_from_slice(&[2, 1]);
        want.extend_from_slice(&[5, 0, 0, 0, 0, 0, 0, 0, 6, 0, 0, 0, 0, 0, 0, 0]);
        want.extend_from_slice(&[0xdd; 32]);
        assert_eq!(encode(&r).to_vec(), want);
        assert_eq!(postcard::to_allocvec(&r).unwrap(), want);
        let none = Reading { error: None, ..r };
        assert_eq!(encode(&none)[ERROR_TAG..STATE], [0; 9]);
    }

    /// `None` has one encoding: value bytes after a zero tag are refused by both codecs.
    #[test]
    fn a_none_error_bound_carries_no_bytes() {
        let r = Reading {
            error: None,
            ..distinct_fields()
        };
        let mut bytes = encode(&r);
        bytes[ERROR + 3] = 1;
        assert!(decode(&bytes).is_err());
        assert!(by_postcard(&bytes).is_err());
    }
}
