//! Framing on a bftime stream (`/bftime/reading/3`).
//!
//! A requester keeps one long-lived stream per peer (opening a substream per exchange
//! costs a multistream-select negotiation each time) and writes frames: a 2-byte
//! big-endian length, then the payload. Requester → responder payloads start with a
//! kind byte (0 = request, 1 = leaving notice); responder → requester payloads are a
//! signed reading. Lengths are checked against a cap *before* anything is read, and
//! decoding is strict (no trailing bytes), so an oversized or malformed frame costs
//! nothing but a counter.

use bftime_crypto::Signed;
use bftime_protocol::message::MAX_READING_WIRE_BYTES;
use bftime_protocol::{Leaving, Reading, Request};
use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::StreamProtocol;

/// `/3` since readings carry `last_correction` under the prefix `v3` (`/2`: the first
/// fixed-width layout; spec §2.2): a node of an older layout negotiates no stream with
/// this one, rather than exchanging readings that each side would count as bad
/// signatures from the other.
pub const PROTOCOL: StreamProtocol = StreamProtocol::new("/bftime/reading/3");

/// Largest frame a responder accepts from a requester (a request is ~60 bytes, a
/// leaving notice carries a short reason).
pub const MAX_TO_RESPONDER: usize = 1024;
/// Largest frame a requester accepts from a responder.
pub const MAX_TO_REQUESTER: usize = MAX_READING_WIRE_BYTES;
/// Longest leaving reason we put on the wire.
const MAX_REASON_BYTES: usize = 600;

const KIND_REQUEST: u8 = 0;
const KIND_LEAVING: u8 = 1;

/// Why a frame was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("frame of {len} bytes exceeds the {cap}-byte cap")]
    Oversized { len: usize, cap: usize },
    #[error("malformed frame")]
    Malformed,
    #[error("stream closed")]
    Closed,
}

impl FrameError {
    pub fn as_str(self) -> &'static str {
        match self {
            FrameError::Oversized { .. } => "oversized",
            FrameError::Malformed => "malformed",
            FrameError::Closed => "closed",
        }
    }
}

/// What a requester sends.
#[derive(Debug, Clone)]
pub enum ToResponder {
    Request(Request),
    Leaving(Signed<Leaving>),
}

impl ToResponder {
    pub fn encode(&self) -> Vec<u8> {
        match self {
            ToResponder::Request(r) => {
                let mut out = vec![KIND_REQUEST];
                // A Request is plain integers and bytes: encoding cannot fail.
                out.extend(postcard::to_allocvec(r).unwrap_or_default());
                out
            }
            ToResponder::Leaving(l) => {
                let mut out = vec![KIND_LEAVING];
                out.extend(l.to_wire());
                out
            }
        }
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, FrameError> {
        let (&kind, rest) = bytes.split_first().ok_or(FrameError::Malformed)?;
        match kind {
            KIND_REQUEST => {
                let (r, tail) = postcard::take_from_bytes::<Request>(rest)
                    .map_err(|_| FrameError::Malformed)?;
                if !tail.is_empty() {
                    return Err(FrameError::Malformed);
                }
                Ok(ToResponder::Request(r))
            }
            KIND_LEAVING => Signed::from_wire(rest, MAX_TO_RESPONDER)
                .map(ToResponder::Leaving)
                .map_err(|_| FrameError::Malformed),
            _ => Err(FrameError::Malformed),
        }
    }
}

/// Truncates a leaving reason so the notice always fits in a frame.
pub fn clip_reason(reason: &str) -> String {
    if reason.len() <= MAX_REASON_BYTES {
        return reason.to_owned();
    }
    let mut end = MAX_REASON_BYTES;
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    reason[..end].to_owned()
}

/// Decodes a responder's frame.
pub fn decode_reading(bytes: &[u8]) -> Result<Signed<Reading>, FrameError> {
    Signed::from_wire(bytes, MAX_TO_REQUESTER).map_err(|_| FrameError::Malformed)
}

/// Writes one frame and flushes it.
pub async fn write_frame<S: AsyncWrite + Unpin>(s: &mut S, payload: &[u8]) -> std::io::Result<()> {
    let len = u16::try_from(payload.len())
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "frame too large"))?;
    let mut buf = Vec::with_capacity(payload.len() + 2);
    buf.extend_from_slice(&len.to_be_bytes());
    buf.extend_from_slice(payload);
    s.write_all(&buf).await?;
    s.flush().await
}

/// Reads one frame of at most `cap` bytes into `buf`.
pub async fn read_frame<S: AsyncRead + Unpin>(
    s: &mut S,
    cap: usize,
    buf: &mut Vec<u8>,
) -> Result<(), FrameError> {
    let mut len = [0u8; 2];
    s.read_exact(&mut len)
        .await
        .map_err(|_| FrameError::Closed)?;
    let len = usize::from(u16::from_be_bytes(len));
    if len > cap {
        return Err(FrameError::Oversized { len, cap });
    }
    buf.clear();
    buf.resize(len, 0);
    s.read_exact(buf).await.map_err(|_| FrameError::Closed)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bftime_crypto::NodeKey;
    use bftime_protocol::MemberId;
    use futures::io::Cursor;

    fn request() -> Request {
        Request {
            cluster: 7,
            round: 3,
            nonce: [9; 32],
        }
    }

    #[test]
    fn request_round_trips_and_rejects_trailing_bytes() {
        let bytes = ToResponder::Request(request()).encode();
        match ToResponder::decode(&bytes) {
            Ok(ToResponder::Request(r)) => assert_eq!(r, request()),
            other => panic!("{other:?}"),
        }
        let mut long = bytes.clone();
        long.push(0);
        assert_eq!(
            ToResponder::decode(&long).err(),
            Some(FrameError::Malformed)
        );
        for cut in 0..bytes.len() {
            assert!(ToResponder::decode(&bytes[..cut]).is_err(), "cut {cut}");
        }
        assert_eq!(
            ToResponder::decode(&[7, 1, 2]).err(),
            Some(FrameError::Malformed)
        );
    }

    #[test]
    fn leaving_round_trips() {
        let key = NodeKey::from_seed(&[3; 32]);
        let l = Leaving {
            cluster: 1,
            member: MemberId(2),
            round: 5,
            reason: clip_reason(&"x".repeat(5000)),
        };
        let signed = Signed::sign(&l, &key).unwrap();
        let bytes = ToResponder::Leaving(signed).encode();
        assert!(bytes.len() <= MAX_TO_RESPONDER);
        match ToResponder::decode(&bytes) {
            Ok(ToResponder::Leaving(s)) => assert_eq!(s.decode_unverified().unwrap(), l),
            other => panic!("{other:?}"),
        }
    }

    proptest::proptest! {
        /// Whatever a peer writes, decoding returns a message or an error, never
        /// panics; a request that decodes encodes back to a request equal to it.
        #[test]
        fn any_bytes_decode_or_are_refused(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..1100),
            kind in 0u8..3,
        ) {
            let mut frame = bytes.clone();
            if let Some(first) = frame.first_mut() {
                *first = kind; // reach each kind's decoder, not only the unknown one
            }
            for b in [&bytes, &frame] {
                if let Ok(ToResponder::Request(r)) = ToResponder::decode(b) {
                    let again = ToResponder::decode(&ToResponder::Request(r).encode());
                    proptest::prop_assert!(matches!(again, Ok(ToResponder::Request(x)) if x == r));
                }
                let _ = decode_reading(b);
            }
        }
    }

    #[test]
    fn frames_are_capped_before_reading() {
        futures::executor::block_on(async {
            let mut out = Vec::new();
            write_frame(&mut out, &[1, 2, 3]).await.unwrap();
            let mut buf = Vec::new();
            read_frame(&mut Cursor::new(out.clone()), 16, &mut buf)
                .await
                .unwrap();
            assert_eq!(buf, [1, 2, 3]);
            let err = read_frame(&mut Cursor::new(out), 2, &mut buf).await;
            assert_eq!(err, Err(FrameError::Oversized { len: 3, cap: 2 }));
            // A length prefix that promises more than arrives is a closed stream.
            let err = read_frame(&mut Cursor::new(vec![0, 9, 1]), 16, &mut buf).await;
            assert_eq!(err, Err(FrameError::Closed));
        });
    }
}
