//! Serde adapters that give postcard a reading's fixed layout (spec §2.2).
//!
//! Postcard writes integers as varints; these write a reading's integers as little-endian
//! byte arrays (which postcard copies as they are), its state as one byte, its error
//! bound as eight bytes (−1 when absent) and its last correction as two. So postcard's encoding of a
//! `Reading` is exactly the layout [`crate::reading_codec`] reads and writes by hand, and
//! the codec's property tests can hold it to postcard.

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::message::{MemberId, SyncState};
use crate::reading_codec;
use crate::time::{ClusterTime, Nanos};

pub mod le_u64 {
    use super::*;

    pub fn serialize<S: Serializer>(v: &u64, s: S) -> Result<S::Ok, S::Error> {
        v.to_le_bytes().serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        <[u8; 8]>::deserialize(d).map(u64::from_le_bytes)
    }
}

pub mod le_member {
    use super::*;

    pub fn serialize<S: Serializer>(v: &MemberId, s: S) -> Result<S::Ok, S::Error> {
        v.0.to_le_bytes().serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<MemberId, D::Error> {
        <[u8; 2]>::deserialize(d).map(|b| MemberId(u16::from_le_bytes(b)))
    }
}

pub mod le_time {
    use super::*;

    pub fn serialize<S: Serializer>(v: &ClusterTime, s: S) -> Result<S::Ok, S::Error> {
        v.0.to_le_bytes().serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<ClusterTime, D::Error> {
        <[u8; 8]>::deserialize(d).map(|b| ClusterTime(i64::from_le_bytes(b)))
    }
}

pub mod error_bound {
    use super::*;

    pub fn serialize<S: Serializer>(v: &Option<Nanos>, s: S) -> Result<S::Ok, S::Error> {
        reading_codec::error_bytes(*v).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Nanos>, D::Error> {
        let value = <[u8; 8]>::deserialize(d)?;
        reading_codec::error_from_bytes(value).map_err(D::Error::custom)
    }
}

pub mod correction_us {
    use super::*;

    pub fn serialize<S: Serializer>(v: &Option<Nanos>, s: S) -> Result<S::Ok, S::Error> {
        reading_codec::correction_bytes(*v).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Nanos>, D::Error> {
        <[u8; 2]>::deserialize(d).map(reading_codec::correction_from_bytes)
    }
}

pub mod state_byte {
    use super::*;

    pub fn serialize<S: Serializer>(v: &SyncState, s: S) -> Result<S::Ok, S::Error> {
        reading_codec::state_byte(*v).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SyncState, D::Error> {
        let b = u8::deserialize(d)?;
        reading_codec::state_from_byte(b).ok_or_else(|| D::Error::custom("unknown sync state"))
    }
}
