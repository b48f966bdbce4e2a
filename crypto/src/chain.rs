//! The SHA-256 hash chain behind the audit log.
//!
//! Each record commits to the hash of the previous one, so deleting, reordering,
//! altering or splicing records breaks the chain at the first damaged record. Hashes
//! are domain-separated (Certificate Transparency's leaf/node habit) so a record hash
//! can never be confused with any other SHA-256 the system computes.

use sha2::{Digest as _, Sha256};

/// A 32-byte SHA-256 value.
pub type Hash32 = [u8; 32];

/// Prefix of every chained record hash.
pub const CHAIN_DOMAIN: &[u8] = b"bftime v1 audit chain\0";

/// Hash of the (virtual) record before the first one: all zeros.
pub const GENESIS: Hash32 = [0; 32];

/// A record did not link to the one before it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("record {index} claims prev {claimed} but the chain head is {expected}")]
pub struct ChainError {
    pub index: u64,
    pub claimed: String,
    pub expected: String,
}

/// The running head of a hash chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HashChain {
    head: Hash32,
    len: u64,
}

impl Default for HashChain {
    fn default() -> Self {
        Self::new()
    }
}

impl HashChain {
    pub fn new() -> Self {
        HashChain {
            head: GENESIS,
            len: 0,
        }
    }

    /// Continues a chain whose last record hashed to `head` after `len` records.
    pub fn resume(head: Hash32, len: u64) -> Self {
        HashChain { head, len }
    }

    pub fn head(&self) -> Hash32 {
        self.head
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The hash of a record whose encoded bytes (which include its `prev`) are `record`.
    pub fn record_hash(record: &[u8]) -> Hash32 {
        let mut h = Sha256::new();
        h.update(CHAIN_DOMAIN);
        h.update(record);
        h.finalize().into()
    }

    /// Appends a record that claims `prev`; fails (and leaves the chain unchanged) when
    /// `prev` is not the current head.
    pub fn append(&mut self, prev: &Hash32, record: &[u8]) -> Result<Hash32, ChainError> {
        if *prev != self.head {
            return Err(ChainError {
                index: self.len,
                claimed: hex::encode(prev),
                expected: hex::encode(self.head),
            });
        }
        self.head = Self::record_hash(record);
        self.len += 1;
        Ok(self.head)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(prev: &Hash32, payload: &[u8]) -> Vec<u8> {
        let mut r = prev.to_vec();
        r.extend_from_slice(payload);
        r
    }

    #[test]
    fn chain_links_and_detects_breaks() {
        let mut writer = HashChain::new();
        let mut log = Vec::new();
        for i in 0..5u8 {
            let prev = writer.head();
            let r = record(&prev, &[i; 10]);
            writer.append(&prev, &r).unwrap();
            log.push((prev, r));
        }
        // Verifying the same log succeeds.
        let mut v = HashChain::new();
        for (prev, r) in &log {
            v.append(prev, r).unwrap();
        }
        assert_eq!(v.head(), writer.head());
        // Deleting record 2 breaks at index 2.
        let mut v = HashChain::new();
        let mut first_err = None;
        for (prev, r) in log
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != 2)
            .map(|(_, x)| x)
        {
            if let Err(e) = v.append(prev, r) {
                first_err = Some(e.index);
                break;
            }
        }
        assert_eq!(first_err, Some(2));
    }

    #[test]
    fn record_hash_is_domain_separated_sha256() {
        let plain: Hash32 = Sha256::digest(b"abc").into();
        assert_ne!(HashChain::record_hash(b"abc"), plain);
    }
}
