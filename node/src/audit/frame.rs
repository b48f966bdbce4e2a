//! On-disk framing of audit records (spec §8.2).
//!
//! ```text
//! magic 0xB7 0x7A | len: u32 LE | !len: u32 LE | signature (64) | body (len − 64)
//! ```
//! The length is stored twice (plain and inverted) so a damaged length is told apart
//! from a record cut short by a crash: a header that checks out but runs past the end
//! of the file is a *torn tail* (the only damage a crash can cause, and the only one
//! the node repairs); anything else is damage that an auditor must look at.

use bftime_crypto::{Hash32, HashChain, Signature};

pub const MAGIC: [u8; 2] = [0xB7, 0x7A];
pub const HEADER_BYTES: usize = 10;
pub const SIGNATURE_BYTES: usize = 64;
/// Largest record accepted (a 1000-member round record is about 300 KiB).
pub const MAX_RECORD_BYTES: usize = 8 << 20;

/// Frames `signature || body`.
pub fn encode(signature: &Signature, body: &[u8]) -> Vec<u8> {
    let len = (SIGNATURE_BYTES + body.len()) as u32;
    let mut out = Vec::with_capacity(HEADER_BYTES + len as usize);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&(!len).to_le_bytes());
    out.extend_from_slice(&signature.0);
    out.extend_from_slice(body);
    out
}

/// The chain hash of a framed record: over `signature || body`.
pub fn chain_hash(signature: &Signature, body: &[u8]) -> Hash32 {
    let mut buf = Vec::with_capacity(SIGNATURE_BYTES + body.len());
    buf.extend_from_slice(&signature.0);
    buf.extend_from_slice(body);
    HashChain::record_hash(&buf)
}

/// One frame found in a file.
#[derive(Debug, Clone, Copy)]
pub struct Frame<'a> {
    pub offset: u64,
    pub signature: Signature,
    pub body: &'a [u8],
    /// Bytes of the whole frame, header included.
    pub len: u64,
}

/// Why the bytes at `offset` are not a frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    /// The file ends inside this record's header or body: a write was cut short.
    TruncatedTail { offset: u64, have: u64, need: u64 },
    /// Nothing but zero bytes from here to the end (a crash after the file grew but
    /// before the data reached the disk): also a torn tail.
    ZeroTail { offset: u64, bytes: u64 },
    /// The header is not a valid header.
    BadHeader { offset: u64, why: String },
}

impl FrameError {
    pub fn offset(&self) -> u64 {
        match self {
            FrameError::TruncatedTail { offset, .. }
            | FrameError::ZeroTail { offset, .. }
            | FrameError::BadHeader { offset, .. } => *offset,
        }
    }

    /// Whether a crash mid-write explains this (the node cuts such a tail on restart).
    pub fn is_torn_tail(&self) -> bool {
        matches!(
            self,
            FrameError::TruncatedTail { .. } | FrameError::ZeroTail { .. }
        )
    }
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::TruncatedTail { have, need, .. } => write!(
                f,
                "truncated tail: the file ends {have} bytes into a record of {need} bytes"
            ),
            FrameError::ZeroTail { bytes, .. } => {
                write!(
                    f,
                    "truncated tail: {bytes} zero bytes where a record should be"
                )
            }
            FrameError::BadHeader { why, .. } => write!(f, "bad frame: {why}"),
        }
    }
}

/// Reads frames from a file's bytes in order; stops at the first error.
#[derive(Debug)]
pub struct Frames<'a> {
    bytes: &'a [u8],
    pos: usize,
    done: bool,
}

impl<'a> Frames<'a> {
    pub fn new(bytes: &'a [u8]) -> Frames<'a> {
        Frames {
            bytes,
            pos: 0,
            done: false,
        }
    }
}

impl<'a> Iterator for Frames<'a> {
    type Item = Result<Frame<'a>, FrameError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done || self.pos >= self.bytes.len() {
            return None;
        }
        let rest = &self.bytes[self.pos..];
        let offset = self.pos as u64;
        let fail = |this: &mut Self, e: FrameError| {
            this.done = true;
            Some(Err(e))
        };
        if rest.iter().all(|b| *b == 0) {
            return fail(
                self,
                FrameError::ZeroTail {
                    offset,
                    bytes: rest.len() as u64,
                },
            );
        }
        if rest.len() < HEADER_BYTES {
            // A prefix of a valid header is a torn tail; anything else is damage.
            let prefix_ok = rest.iter().zip(MAGIC.iter()).all(|(a, b)| a == b);
            return fail(
                self,
                if prefix_ok {
                    FrameError::TruncatedTail {
                        offset,
                        have: rest.len() as u64,
                        need: HEADER_BYTES as u64,
                    }
                } else {
                    FrameError::BadHeader {
                        offset,
                        why: "bad magic".into(),
                    }
                },
            );
        }
        if rest[..2] != MAGIC {
            return fail(
                self,
                FrameError::BadHeader {
                    offset,
                    why: format!("bad magic {:02x}{:02x}", rest[0], rest[1]),
                },
            );
        }
        let len = u32::from_le_bytes([rest[2], rest[3], rest[4], rest[5]]);
        let inv = u32::from_le_bytes([rest[6], rest[7], rest[8], rest[9]]);
        if len != !inv {
            return fail(
                self,
                FrameError::BadHeader {
                    offset,
                    why: "length check failed".into(),
                },
            );
        }
        let len = len as usize;
        if !(SIGNATURE_BYTES..=MAX_RECORD_BYTES).contains(&len) {
            return fail(
                self,
                FrameError::BadHeader {
                    offset,
                    why: format!("record length {len} out of range"),
                },
            );
        }
        let total = HEADER_BYTES + len;
        if rest.len() < total {
            return fail(
                self,
                FrameError::TruncatedTail {
                    offset,
                    have: rest.len() as u64,
                    need: total as u64,
                },
            );
        }
        let mut sig = [0u8; SIGNATURE_BYTES];
        sig.copy_from_slice(&rest[HEADER_BYTES..HEADER_BYTES + SIGNATURE_BYTES]);
        self.pos += total;
        Some(Ok(Frame {
            offset,
            signature: Signature(sig),
            body: &rest[HEADER_BYTES + SIGNATURE_BYTES..total],
            len: total as u64,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_torn_tails_are_recognised() {
        let mut file = encode(&Signature([1; 64]), b"hello");
        file.extend(encode(&Signature([2; 64]), b"world!"));
        let frames: Vec<_> = Frames::new(&file).collect();
        assert_eq!(frames.len(), 2);
        let second = frames[1].as_ref().unwrap();
        assert_eq!(second.body, b"world!");
        assert_eq!(second.offset, (HEADER_BYTES + 64 + 5) as u64);
        // Every cut inside the second record is a torn tail at its offset.
        for cut in second.offset as usize + 1..file.len() {
            let last = Frames::new(&file[..cut]).last().unwrap();
            let err = last.unwrap_err();
            assert!(err.is_torn_tail(), "cut at {cut}: {err:?}");
            assert_eq!(err.offset(), second.offset);
        }
        // Zeros after the last record: torn tail.
        let mut zeros = file.clone();
        zeros.extend([0u8; 100]);
        assert!(
            Frames::new(&zeros)
                .last()
                .unwrap()
                .unwrap_err()
                .is_torn_tail()
        );
        // A flipped length byte is damage, not a torn tail.
        let mut bad = file.clone();
        bad[second.offset as usize + 3] ^= 1;
        let err = Frames::new(&bad).last().unwrap().unwrap_err();
        assert!(!err.is_torn_tail(), "{err:?}");
    }
}
