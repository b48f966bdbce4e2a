//! A hand-written postcard codec for [`Reading`], the one message on every exchange.
//!
//! Through serde, postcard encodes and decodes the two 32-byte arrays of a reading one
//! byte at a time, each through a generic visitor; that made encoding and decoding a
//! reading about a third of the simulator's instructions, and it is work every node and
//! every audit of a log does per reading. This module writes and reads the very same
//! bytes directly (spec §2.2). Postcard stays the definition: the property tests below
//! check, for arbitrary readings and arbitrary byte strings, that both codecs produce
//! the same bytes and accept exactly the same inputs with the same result.

use bftime_crypto::SignedError;

use crate::message::{MemberId, Reading, SyncState};
use crate::time::{ClusterTime, Nanos};

/// The longest encoding of a reading (every varint at its maximum length).
pub const MAX_READING_BODY_BYTES: usize =
    10 + 3 + 3 + 10 + 32 + 10 + 10 + 11 + 1 + 1 + 10 + 10 + 32;

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// Writes the postcard encoding of `r` into `buf`; returns its length.
pub fn encode_into(r: &Reading, buf: &mut [u8; MAX_READING_BODY_BYTES]) -> usize {
    let mut w = Writer { buf, len: 0 };
    w.varint(r.cluster);
    w.varint(u64::from(r.responder.0));
    w.varint(u64::from(r.requester.0));
    w.varint(r.round);
    w.bytes(&r.nonce);
    w.varint(zigzag(r.receive.0));
    w.varint(zigzag(r.transmit.0));
    match r.error {
        None => w.byte(0),
        Some(e) => {
            w.byte(1);
            w.varint(zigzag(e.0));
        }
    }
    w.byte(match r.state {
        SyncState::Starting => 0,
        SyncState::Synced => 1,
        SyncState::Quarantined => 2,
    });
    w.byte(u8::from(r.suspects_requester));
    w.varint(r.responder_round);
    w.varint(r.epoch);
    w.bytes(&r.head);
    w.len
}

/// A writer into a buffer sized for the longest reading: every field's maximum length
/// sums to the buffer's, so no write can run past it.
struct Writer<'a> {
    buf: &'a mut [u8; MAX_READING_BODY_BYTES],
    len: usize,
}

impl Writer<'_> {
    fn byte(&mut self, b: u8) {
        if let Some(slot) = self.buf.get_mut(self.len) {
            *slot = b;
            self.len += 1;
        }
    }

    fn bytes(&mut self, b: &[u8]) {
        if let Some(dst) = self.buf.get_mut(self.len..self.len + b.len()) {
            dst.copy_from_slice(b);
            self.len += b.len();
        }
    }

    fn varint(&mut self, v: u64) {
        if v < 0x80 {
            // Most fields (ids, rounds, flags) fit in one byte.
            self.byte(v as u8);
            return;
        }
        // Bytes needed: one per started 7 bits (at least one).
        let len = (64 - (v | 1).leading_zeros()).div_ceil(7) as usize;
        // Continuation bits on every byte but the last (bytes 8 and 9 only for u64s
        // above 2^56).
        let more = if len > 8 {
            0x8080_8080_8080_8080
        } else {
            0x8080_8080_8080_8080 & ((1u64 << (8 * (len - 1))) - 1)
        };
        let mut out = [0u8; 16];
        out[..8].copy_from_slice(&(spread7(v) | more).to_le_bytes());
        out[8] = ((v >> 56) as u8 & 0x7f) | if len == 10 { 0x80 } else { 0 };
        out[9] = (v >> 63) as u8;
        // A whole 16-byte store where it fits (bytes past `len` are overwritten by the
        // next field or cut off); byte-exact near the end of the buffer.
        match self.buf.get_mut(self.len..self.len + out.len()) {
            Some(dst) => {
                dst.copy_from_slice(&out);
                self.len += len;
            }
            None => self.bytes(&out[..len]),
        }
    }
}

/// The low 56 bits of `v` as eight 7-bit groups, one per byte (little-endian), high
/// bits clear: the inverse of [`squeeze7`].
fn spread7(v: u64) -> u64 {
    let x = v & 0x00ff_ffff_ffff_ffff;
    let x = (x & 0x0000_0000_0fff_ffff) | ((x & 0x00ff_ffff_f000_0000) << 4);
    let x = (x & 0x0000_3fff_0000_3fff) | ((x & 0x0fff_c000_0fff_c000) << 2);
    (x & 0x007f_007f_007f_007f) | ((x & 0x3f80_3f80_3f80_3f80) << 1)
}

/// The 7-bit groups of a varint's first eight bytes (little-endian, continuation bits
/// ignored) squeezed together: pairs, then quads, then all.
#[inline(always)]
fn squeeze7(word: u64) -> u64 {
    let x = word & 0x7f7f_7f7f_7f7f_7f7f;
    let x = (x & 0x007f_007f_007f_007f) | ((x & 0x7f00_7f00_7f00_7f00) >> 1);
    let x = (x & 0x0000_3fff_0000_3fff) | ((x & 0x3fff_0000_3fff_0000) >> 2);
    (x & 0x0000_0000_0fff_ffff) | ((x & 0x0fff_ffff_0000_0000) >> 4)
}

/// The varint at the start of `word` (eight bytes, little-endian) when it ends within
/// them: its length and its own bytes (the rest cleared). `None` if all eight bytes
/// carry the continuation bit.
#[inline(always)]
fn varint_in_word(word: u64) -> Option<(usize, u64)> {
    let stops = !word & 0x8080_8080_8080_8080;
    if stops == 0 {
        return None;
    }
    let len = (stops.trailing_zeros() / 8 + 1) as usize;
    // Only the varint's own bytes (shift 0..=56: no overflow).
    let beyond = 64 - 8 * len as u32;
    Some((len, (word << beyond) >> beyond))
}

fn malformed(what: &str) -> SignedError {
    SignedError::Malformed(format!("reading: {what}"))
}

/// A cursor over the body being decoded.
struct Cursor<'a> {
    bytes: &'a [u8],
}

impl Cursor<'_> {
    #[inline]
    fn byte(&mut self) -> Result<u8, SignedError> {
        let (&b, rest) = self
            .bytes
            .split_first()
            .ok_or_else(|| malformed("unexpected end"))?;
        self.bytes = rest;
        Ok(b)
    }

    /// A varint of at most `max_len` bytes whose last byte may be at most `max_last`
    /// (postcard's rule: non-minimal encodings are accepted, overflow is not).
    #[inline(always)]
    fn varint(&mut self, max_len: usize, max_last: u8) -> Result<u64, SignedError> {
        match self.short_varint(max_len, max_last) {
            Some(v) => Ok(v),
            None => self.varint_general(max_len, max_last),
        }
    }

    /// Any varint, byte by byte, with postcard's errors (see [`Cursor::varint`]).
    #[cold]
    #[inline(never)]
    fn varint_general(&mut self, max_len: usize, max_last: u8) -> Result<u64, SignedError> {
        // The varint ends at the first byte without the continuation bit.
        let window = &self.bytes[..self.bytes.len().min(max_len)];
        let Some(end) = window.iter().position(|b| b & 0x80 == 0) else {
            return Err(malformed(if window.len() < max_len {
                "unexpected end"
            } else {
                "varint too long"
            }));
        };
        if end == max_len - 1 && window[end] > max_last {
            return Err(malformed("varint overflows"));
        }
        let mut out = 0u64;
        for (i, b) in window[..=end].iter().enumerate() {
            out |= u64::from(b & 0x7f) << (7 * i);
        }
        self.bytes = &self.bytes[end + 1..];
        Ok(out)
    }

    /// A varint decoded without a byte loop: one 64-bit load for its first eight bytes
    /// (plus at most two single bytes for a long u64, as nanosecond times are). `None`
    /// for anything unusual (too short, too long, overflowing), which leaves the cursor
    /// alone for the general path to decode or reject.
    #[inline(always)]
    fn short_varint(&mut self, max_len: usize, max_last: u8) -> Option<u64> {
        if let Some((&first, rest)) = self.bytes.split_first()
            && first < 0x80
        {
            // One byte: ids, rounds, small counts.
            self.bytes = rest;
            return Some(u64::from(first));
        }
        let word = u64::from_le_bytes(*self.bytes.first_chunk::<8>()?);
        let (len, low, last) = match varint_in_word(word) {
            Some((len, kept)) => (len, kept, (kept >> (8 * (len - 1))) as u8),
            None => match self.bytes.get(8..10) {
                Some(&[b8, _]) if b8 & 0x80 == 0 => (9, word, b8),
                Some(&[_, b9]) if b9 & 0x80 == 0 => (10, word, b9),
                _ => return None,
            },
        };
        if len > max_len || (len == max_len && last > max_last) {
            return None;
        }
        let mut x = squeeze7(low);
        if len >= 9 {
            x |= u64::from(self.bytes[8] & 0x7f) << 56;
        }
        if len == 10 {
            x |= u64::from(self.bytes[9]) << 63;
        }
        self.bytes = &self.bytes[len..];
        Some(x)
    }
}

/// The reads a reading's layout needs (spec §2.2), done two ways: by [`Cursor`], field by
/// field with postcard's errors, and by [`Padded`], quickly, for the usual reading.
/// [`read`] lists the fields, once, in wire order.
trait FieldReader {
    type Error;
    fn u64(&mut self) -> Result<u64, Self::Error>;
    fn u16(&mut self) -> Result<u16, Self::Error>;
    fn array32(&mut self) -> Result<[u8; 32], Self::Error>;
    /// An `Option`'s tag: whether a value follows.
    fn some(&mut self) -> Result<bool, Self::Error>;
    fn state(&mut self) -> Result<SyncState, Self::Error>;
    fn bool(&mut self) -> Result<bool, Self::Error>;
    /// Whether the reading ended exactly where the bytes do.
    fn end(&mut self) -> Result<(), Self::Error>;

    #[inline(always)]
    fn i64(&mut self) -> Result<i64, Self::Error> {
        self.u64().map(unzigzag)
    }
}

/// A reading's fields in wire order (a struct expression evaluates its fields in the
/// order written).
#[inline(always)]
fn read<R: FieldReader>(r: &mut R) -> Result<Reading, R::Error> {
    let reading = Reading {
        cluster: r.u64()?,
        responder: MemberId(r.u16()?),
        requester: MemberId(r.u16()?),
        round: r.u64()?,
        nonce: r.array32()?,
        receive: ClusterTime(r.i64()?),
        transmit: ClusterTime(r.i64()?),
        error: if r.some()? {
            Some(Nanos(r.i64()?))
        } else {
            None
        },
        state: r.state()?,
        suspects_requester: r.bool()?,
        responder_round: r.u64()?,
        epoch: r.u64()?,
        head: r.array32()?,
    };
    r.end()?;
    Ok(reading)
}

impl FieldReader for Cursor<'_> {
    type Error = SignedError;

    #[inline(always)]
    fn u64(&mut self) -> Result<u64, SignedError> {
        self.varint(10, 0x01)
    }

    #[inline(always)]
    fn u16(&mut self) -> Result<u16, SignedError> {
        // Three bytes carry up to 21 bits; a last byte above 0x03 would overflow 16.
        Ok(self.varint(3, 0x03)? as u16)
    }

    fn array32(&mut self) -> Result<[u8; 32], SignedError> {
        let (head, rest) = self
            .bytes
            .split_first_chunk::<32>()
            .ok_or_else(|| malformed("unexpected end"))?;
        self.bytes = rest;
        Ok(*head)
    }

    fn some(&mut self) -> Result<bool, SignedError> {
        match self.byte()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(malformed("bad option tag")),
        }
    }

    fn state(&mut self) -> Result<SyncState, SignedError> {
        // An enum variant index is a u32 varint: five bytes, last one at most 0x0f.
        match self.varint(5, 0x0f)? {
            0 => Ok(SyncState::Starting),
            1 => Ok(SyncState::Synced),
            2 => Ok(SyncState::Quarantined),
            _ => Err(malformed("unknown sync state")),
        }
    }

    fn bool(&mut self) -> Result<bool, SignedError> {
        match self.byte()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(malformed("bad bool")),
        }
    }

    fn end(&mut self) -> Result<(), SignedError> {
        match self.bytes.len() {
            0 => Ok(()),
            n => Err(SignedError::TrailingBytes(n)),
        }
    }
}

/// Decodes a reading from exactly `bytes` (trailing bytes are an error).
pub fn decode(bytes: &[u8]) -> Result<Reading, SignedError> {
    let mut quick = Padded {
        bytes: [0u8; MAX_READING_BODY_BYTES + 8],
        len: bytes.len(),
        at: 0,
    };
    if let Some(copy) = quick.bytes.get_mut(..bytes.len()) {
        copy.copy_from_slice(bytes);
        if let Ok(r) = read(&mut quick) {
            return Ok(r);
        }
    }
    decode_careful(bytes)
}

/// Field by field, with postcard's errors: anything [`Padded`] leaves.
#[inline(never)]
fn decode_careful(bytes: &[u8]) -> Result<Reading, SignedError> {
    read(&mut Cursor { bytes })
}

/// The usual reading, read from a zero-padded copy: every 8-byte load is in bounds
/// without a check per field, and one comparison at the end (the fields must end exactly
/// where the bytes do) replaces a length check per read. Anything else is [`Unusual`]:
/// too long, a varint of 9 or more bytes or out of range, a bad tag, fields running past
/// the end or short of it; [`decode_careful`] then decides, with the precise error.
/// Whatever this accepts, the careful way accepts with the same value (the property
/// tests hold both to postcard).
struct Padded {
    bytes: [u8; MAX_READING_BODY_BYTES + 8],
    len: usize,
    at: usize,
}

/// Not the usual reading (see [`Padded`]).
struct Unusual;

impl Padded {
    /// A varint of at most `max_len` (≤ 8) bytes whose last byte is at most `max_last`.
    #[inline(always)]
    fn varint(&mut self, max_len: usize, max_last: u64) -> Result<u64, Unusual> {
        let word = self
            .bytes
            .get(self.at..)
            .and_then(|b| b.first_chunk::<8>())
            .ok_or(Unusual)?;
        let (len, kept) = varint_in_word(u64::from_le_bytes(*word)).ok_or(Unusual)?;
        if len > max_len || (len == max_len && (kept >> (8 * (len - 1))) > max_last) {
            return Err(Unusual);
        }
        self.at += len;
        Ok(squeeze7(kept))
    }

    /// A one-byte field from 0 up to `max`.
    #[inline(always)]
    fn small(&mut self, max: u8) -> Result<u8, Unusual> {
        let b = *self.bytes.get(self.at).ok_or(Unusual)?;
        self.at += 1;
        if b <= max { Ok(b) } else { Err(Unusual) }
    }
}

impl FieldReader for Padded {
    type Error = Unusual;

    /// Up to 2^56 (8 bytes); longer ones go the careful way.
    #[inline(always)]
    fn u64(&mut self) -> Result<u64, Unusual> {
        self.varint(8, 0xff)
    }

    #[inline(always)]
    fn u16(&mut self) -> Result<u16, Unusual> {
        Ok(self.varint(3, 0x03)? as u16)
    }

    #[inline(always)]
    fn array32(&mut self) -> Result<[u8; 32], Unusual> {
        let bytes = self
            .bytes
            .get(self.at..)
            .and_then(|b| b.first_chunk::<32>())
            .ok_or(Unusual)?;
        self.at += 32;
        Ok(*bytes)
    }

    #[inline(always)]
    fn some(&mut self) -> Result<bool, Unusual> {
        Ok(self.small(1)? == 1)
    }

    #[inline(always)]
    fn state(&mut self) -> Result<SyncState, Unusual> {
        Ok(match self.small(2)? {
            0 => SyncState::Starting,
            1 => SyncState::Synced,
            _ => SyncState::Quarantined,
        })
    }

    #[inline(always)]
    fn bool(&mut self) -> Result<bool, Unusual> {
        Ok(self.small(1)? == 1)
    }

    #[inline(always)]
    fn end(&mut self) -> Result<(), Unusual> {
        if self.at == self.len {
            Ok(())
        } else {
            Err(Unusual)
        }
    }
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

    /// Integers biased towards varint length boundaries and extremes.
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

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn encodes_exactly_like_postcard(r in arb_reading()) {
            let mut buf = [0u8; MAX_READING_BODY_BYTES];
            let len = encode_into(&r, &mut buf);
            let ours = buf[..len].to_vec();
            prop_assert_eq!(&ours, &postcard::to_allocvec(&r).unwrap());
            prop_assert!(ours.len() <= MAX_READING_BODY_BYTES);
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
            let mut bytes = postcard::to_allocvec(&r).unwrap();
            for (at, b) in edits {
                let i = at.index(bytes.len());
                bytes[i] = b;
            }
            if let Some(c) = cut {
                bytes.truncate(c.index(bytes.len() + 1));
            }
            bytes.extend_from_slice(&extra);
            let ours = decode(&bytes);
            let theirs = by_postcard(&bytes);
            prop_assert_eq!(ours.is_ok(), theirs.is_ok(), "{:?} vs {:?}", ours, theirs);
            if let (Ok(a), Ok(b)) = (ours, theirs) {
                prop_assert_eq!(a, b);
            }
        }

        #[test]
        fn random_bytes_agree_with_postcard(bytes in proptest::collection::vec(any::<u8>(), 0..160)) {
            let ours = decode(&bytes);
            let theirs = by_postcard(&bytes);
            prop_assert_eq!(ours.is_ok(), theirs.is_ok());
            if let (Ok(a), Ok(b)) = (ours, theirs) {
                prop_assert_eq!(a, b);
            }
        }
    }

    #[test]
    fn a_signed_reading_needs_no_allocation() {
        const { assert!(MAX_READING_BODY_BYTES <= bftime_crypto::INLINE_BODY_BYTES) };
    }

    /// Edge cases of postcard's varint rule, pinned: non-minimal encodings are
    /// accepted, overflowing last bytes are not.
    #[test]
    fn varint_edges_match_postcard() {
        let r = Reading {
            cluster: 1,
            responder: MemberId(2),
            requester: MemberId(3),
            round: 4,
            nonce: [5; 32],
            receive: ClusterTime(-6),
            transmit: ClusterTime(7),
            error: None,
            state: SyncState::Synced,
            suspects_requester: false,
            responder_round: 8,
            epoch: 9,
            head: [10; 32],
        };
        let good = postcard::to_allocvec(&r).unwrap();
        let mut cases = Vec::new();
        // cluster = 1 written in two bytes (non-minimal).
        let mut v = vec![0x81, 0x00];
        v.extend_from_slice(&good[1..]);
        cases.push(v);
        // responder as a 3-byte u16 with last byte 0x03 (fits) and 0x04 (overflows).
        for last in [0x03u8, 0x04] {
            let mut v = vec![good[0], 0x82, 0x80, last];
            v.extend_from_slice(&good[2..]);
            cases.push(v);
        }
        // cluster as a 10-byte u64 with last byte 0x01 (fits) and 0x02 (overflows).
        for last in [0x01u8, 0x02] {
            let mut v = vec![0xff; 9];
            v.push(last);
            v.extend_from_slice(&good[1..]);
            cases.push(v);
        }
        for (i, bytes) in cases.iter().enumerate() {
            let ours = decode(bytes);
            let theirs = by_postcard(bytes);
            assert_eq!(
                ours.is_ok(),
                theirs.is_ok(),
                "case {i}: {ours:?} vs {theirs:?}"
            );
            if let (Ok(a), Ok(b)) = (ours, theirs) {
                assert_eq!(a, b, "case {i}");
            }
        }
    }
}
