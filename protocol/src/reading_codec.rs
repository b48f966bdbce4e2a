//! A reading's body: 128 bytes at fixed offsets (spec §2.2), encoded and decoded by hand.
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
pub const READING_BODY_BYTES: usize = 128;

// Field offsets, in wire order (spec §2.2).
const CLUSTER: usize = 0;
const RESPONDER: usize = 8;
const REQUESTER: usize = 10;
const ROUND: usize = 12;
const NONCE: usize = 20;
const RECEIVE: usize = 52;
const TRANSMIT: usize = 60;
const ERROR: usize = 68;
const STATE: usize = 76;
const SUSPECTS: usize = 77;
const RESPONDER_ROUND: usize = 78;
const EPOCH: usize = 86;
const HEAD: usize = 94;
const CORRECTION: usize = 126;
const _: () = assert!(CORRECTION + 2 == READING_BODY_BYTES);

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

/// The error bound's bytes: `None` is −1 (an error bound is never negative); a
/// negative bound, which no core reports, is written as 0.
pub(crate) fn error_bytes(error: Option<Nanos>) -> [u8; 8] {
    match error {
        None => (-1i64).to_le_bytes(),
        Some(e) => e.0.max(0).to_le_bytes(),
    }
}

/// The error bound its bytes stand for, if they are valid (−1 or not negative).
pub(crate) fn error_from_bytes(value: [u8; 8]) -> Result<Option<Nanos>, &'static str> {
    match i64::from_le_bytes(value) {
        -1 => Ok(None),
        v if v >= 0 => Ok(Some(Nanos(v))),
        _ => Err("negative error bound"),
    }
}

/// Largest correction a reading carries, in microseconds.
const MAX_CORRECTION_US: i64 = i16::MAX as i64;
/// Largest correction a reading carries (±32.767 ms): what a Byzantine responder reports
/// to pull the frequency loop hardest.
pub const MAX_CORRECTION: Nanos = Nanos(MAX_CORRECTION_US * 1000);

/// The last correction's two bytes: whole microseconds, `None` (and any correction beyond
/// ±32.767 ms, more than drift alone explains at any sane round) as `i16::MIN`.
pub(crate) fn correction_bytes(c: Option<Nanos>) -> [u8; 2] {
    let us = c
        .map(|c| (c.0 as f64 / 1000.0).round() as i64)
        .filter(|us| us.abs() <= MAX_CORRECTION_US)
        .map_or(i16::MIN, |us| us as i16);
    us.to_le_bytes()
}

/// The correction two bytes stand for (every value is valid).
pub(crate) fn correction_from_bytes(b: [u8; 2]) -> Option<Nanos> {
    match i16::from_le_bytes(b) {
        i16::MIN => None,
        us => Some(Nanos(i64::from(us) * 1000)),
    }
}

/// What a reading says of `c`: whole microseconds, `None` beyond ±32.767 ms. A core puts
/// this in the readings it makes, so a reading decodes to the value that was signed.
pub fn wire_correction(c: Option<Nanos>) -> Option<Nanos> {
    correction_from_bytes(correction_bytes(c))
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
    b[TRANSMIT..ERROR].copy_from_slice(&r.transmit.0.to_le_bytes());
    b[ERROR..STATE].copy_from_slice(&error_bytes(r.error));
    b[STATE] = state_byte(r.state);
    b[SUSPECTS] = u8::from(r.suspects_requester);
    b[RESPONDER_ROUND..EPOCH].copy_from_slice(&r.responder_round.to_le_bytes());
    b[EPOCH..HEAD].copy_from_slice(&r.epoch.to_le_bytes());
    b[HEAD..CORRECTION].copy_from_slice(&r.head);
    b[CORRECTION..].copy_from_slice(&correction_bytes(r.last_correction));
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

/// Decodes a reading from exactly `bytes`: 128 of them, an error bound of −1 or at least 0,
/// a state of 0 to 2 and a flag of 0 or 1. Anything else is refused.
pub fn decode(bytes: &[u8]) -> Result<Reading, SignedError> {
    let Some(b) = bytes.first_chunk::<READING_BODY_BYTES>() else {
        return Err(malformed("unexpected end"));
    };
    if bytes.len() > READING_BODY_BYTES {
        return Err(SignedError::TrailingBytes(bytes.len() - READING_BODY_BYTES));
    }
    let error = error_from_bytes(field(b, ERROR)).map_err(malformed)?;
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
        last_correction: correction_from_bytes(field(b, CORRECTION)),
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
            transmit in arb_i64(), error in proptest::option::of(arb_u64()),
            state in arb_state(), suspects_requester in any::<bool>(),
            responder_round in arb_u64(), epoch in arb_u64(), head in any::<[u8; 32]>(),
            correction in proptest::option::of(-32_767i64..=32_767),
        ) -> Reading {
            Reading {
                cluster, responder: MemberId(responder), requester: MemberId(requester),
                round, nonce, receive: ClusterTime(receive), transmit: ClusterTime(transmit),
                error: error.map(|e| Nanos((e >> 1) as i64)), state, suspects_requester,
                responder_round, epoch, head,
                last_correction: correction.map(|us| Nanos(us * 1000)),
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

        /// Random bodies of exactly the right length, with the constrained bytes drawn
        /// from around their valid values so that many are accepted.
        #[test]
        fn full_length_bodies_agree_with_postcard(
            mut bytes in proptest::collection::vec(any::<u8>(), READING_BODY_BYTES),
            error in prop_oneof![Just(-1i64), Just(-2), any::<i64>(), 0i64..1 << 40],
            state in 0u8..4, flag in 0u8..3,
        ) {
            bytes[ERROR..STATE].copy_from_slice(&error.to_le_bytes());
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
            last_correction: Some(Nanos(-7000)),
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
        want.extend_from_slice(&[4, 0, 0, 0, 0, 0, 0, 0]);
        want.extend_from_slice(&[2, 1]);
        want.extend_from_slice(&[5, 0, 0, 0, 0, 0, 0, 0, 6, 0, 0, 0, 0, 0, 0, 0]);
        want.extend_from_slice(&[0xdd; 32]);
        want.extend_from_slice(&[0xf9, 0xff]);
        assert_eq!(encode(&r).to_vec(), want);
        assert_eq!(postcard::to_allocvec(&r).unwrap(), want);
        let none = Reading {
            error: None,
            last_correction: None,
            ..r
        };
        assert_eq!(encode(&none)[ERROR..STATE], [0xff; 8]);
        assert_eq!(encode(&none)[CORRECTION..], [0x00, 0x80]);
    }

    /// Corrections travel in whole microseconds; beyond ±32.767 ms they are not sent.
    #[test]
    fn corrections_are_carried_in_microseconds_up_to_32_ms() {
        assert_eq!(wire_correction(Some(Nanos(1_499))), Some(Nanos(1_000)));
        assert_eq!(wire_correction(Some(Nanos(-1_500))), Some(Nanos(-2_000)));
        assert_eq!(
            wire_correction(Some(Nanos(32_767_000))),
            Some(Nanos(32_767_000))
        );
        assert_eq!(wire_correction(Some(Nanos(32_767_501))), None);
        assert_eq!(wire_correction(Some(Nanos(-40_000_000))), None);
        assert_eq!(wire_correction(None), None);
    }

    /// An error bound is −1 (none) or not negative: anything else is refused by both
    /// codecs, so each bound has one encoding.
    #[test]
    fn a_negative_error_bound_is_refused() {
        let mut bytes = encode(&distinct_fields());
        bytes[ERROR..STATE].copy_from_slice(&(-2i64).to_le_bytes());
        assert!(decode(&bytes).is_err());
        assert!(by_postcard(&bytes).is_err());
    }
}
