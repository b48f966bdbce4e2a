//! Signed readings in flight through the simulator, kept as plain bytes by slot.
//!
//! Between its responder and its requester a reading waits about a window, long enough
//! to leave the cache. Stored as a `Signed<Reading>` (232 bytes, with drop glue), every
//! store first read the cold slot it overwrote, to drop the old value: perf put 6 % of a
//! 250-node run on that one load. A packed slot is `Copy`, so a store never reads it; it
//! is written field by field: the signature and the 128-byte body fill exactly three
//! cache lines. Every reading the core signs has that body; anything else (a Byzantine
//! node's odd bytes) waits whole in an overflow list.

use bftime_crypto::{Signature, Signed, SignedParts};
use bftime_protocol::Reading;

/// Body bytes a packed slot holds: a reading's
/// ([`bftime_protocol::reading_codec::READING_BODY_BYTES`]).
const BODY_CAP: usize = bftime_protocol::reading_codec::READING_BODY_BYTES;

/// Slot numbers with this bit set name a reading kept whole in the overflow list (a body
/// of another length than a reading's; no reading the core signs has one).
const OVERFLOW: u32 = 1 << 31;

#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Packed {
    signature: Signature,
    body: [u8; BODY_CAP],
}

const _: () = assert!(std::mem::size_of::<Packed>() == 3 * 64);

/// Signed readings by slot; a freed slot is reused first, while it is still warm.
#[derive(Default)]
pub struct ReadingStore {
    slots: Vec<Packed>,
    free: Vec<u32>,
    overflow: Vec<Option<Signed<Reading>>>,
}

impl std::fmt::Debug for ReadingStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadingStore")
            .field("in_use", &(self.slots.len() - self.free.len()))
            .finish_non_exhaustive()
    }
}

impl ReadingStore {
    /// Stores a copy of `r`; returns its slot.
    pub fn insert(&mut self, r: &Signed<Reading>) -> u32 {
        let body = r.body();
        if body.len() != BODY_CAP {
            self.overflow.push(Some(r.clone()));
            return OVERFLOW | (self.overflow.len() - 1) as u32;
        }
        let slot = self.claim_slot();
        let p = &mut self.slots[slot as usize];
        p.signature = *r.signature();
        p.body.copy_from_slice(body);
        slot
    }

    /// Moves the reading in `other`'s `slot` into a slot of this store, packed bytes
    /// as they are (no `Signed` is built on the way). How mail between ranges hands its
    /// readings over. `None` for a slot never handed out or an overflow slot already
    /// taken; like [`Self::take`], a packed slot is not checked for having been taken.
    pub fn move_from(&mut self, other: &mut ReadingStore, slot: u32) -> Option<u32> {
        if slot & OVERFLOW != 0 {
            let r = other.take(slot)?;
            return Some(self.insert(&r));
        }
        let p = *other.slots.get(slot as usize)?;
        other.free.push(slot);
        let mine = self.claim_slot();
        self.slots[mine as usize] = p;
        Some(mine)
    }

    /// A slot to write a reading into: the most recently freed one (warm), or a new
    /// zeroed one. Hints the slot the free list will hand out a few claims from now.
    fn claim_slot(&mut self) -> u32 {
        if let Some(soon) = crate::queue::reused_soon(&self.free) {
            self.prefetch(soon);
        }
        self.free.pop().unwrap_or_else(|| {
            self.slots.push(Packed {
                signature: Signature([0; 64]),
                body: [0; BODY_CAP],
            });
            (self.slots.len() - 1) as u32
        })
    }

    /// Hints the cache lines a usual reading in `slot` occupies (see
    /// [`bftime_protocol::prefetch`]).
    pub fn prefetch(&self, slot: u32) {
        if let Some(p) = self.slots.get(slot as usize) {
            bftime_protocol::prefetch::hint(&p.signature);
            // The body fills bytes 64..192: the second line and the third.
            bftime_protocol::prefetch::hint(&p.body[0]);
            bftime_protocol::prefetch::hint(&p.body[63]);
        }
    }

    /// Stores a reading written in place: `fill` gets the slot's body to write and
    /// returns the signature (see `Core::sign_reading_to`). No `Signed` is built and
    /// the bytes are written once, where they wait.
    pub fn insert_with(&mut self, fill: impl FnOnce(&mut [u8; BODY_CAP]) -> Signature) -> u32 {
        let slot = self.claim_slot();
        let p = &mut self.slots[slot as usize];
        p.signature = fill(&mut p.body);
        slot
    }

    /// The reading in `slot`, where it lies: `None` for a slot never handed out or an
    /// overflow slot already taken (a packed slot keeps no mark of being taken; the
    /// simulator takes each slot it was given once). [`Self::release`] frees it.
    pub fn get(&self, slot: u32) -> Option<SignedParts<'_, Reading>> {
        if slot & OVERFLOW != 0 {
            return self
                .overflow
                .get((slot & !OVERFLOW) as usize)?
                .as_ref()
                .map(Signed::parts);
        }
        let p = self.slots.get(slot as usize)?;
        Some(SignedParts::new(&p.body, &p.signature))
    }

    /// Frees `slot` (after [`Self::get`]; once: the store keeps no mark of a free slot,
    /// so a second release would hand the slot out twice).
    pub fn release(&mut self, slot: u32) {
        if slot & OVERFLOW != 0 {
            if let Some(r) = self.overflow.get_mut((slot & !OVERFLOW) as usize) {
                *r = None;
            }
            if self.overflow.iter().all(Option::is_none) {
                self.overflow.clear();
            }
        } else if (slot as usize) < self.slots.len() {
            self.free.push(slot);
        }
    }

    /// Takes the reading out of `slot` ([`Self::get`], copied, then
    /// [`Self::release`]).
    pub fn take(&mut self, slot: u32) -> Option<Signed<Reading>> {
        let r = self.get(slot)?.to_signed();
        self.release(slot);
        Some(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bftime_crypto::{NodeKey, Signer};
    use bftime_protocol::time::ClusterTime;
    use bftime_protocol::{MemberId, Nanos, SyncState};

    fn reading(round: u64) -> Signed<Reading> {
        let key = NodeKey::from_seed(&[7; 32]);
        let r = Reading {
            cluster: u64::MAX,
            responder: MemberId(3),
            requester: MemberId(200),
            round,
            nonce: [round as u8; 32],
            receive: ClusterTime(i64::MAX - 5),
            transmit: ClusterTime(-1),
            error: Some(Nanos(123_456)),
            state: SyncState::Synced,
            suspects_requester: true,
            responder_round: round.saturating_add(1),
            epoch: 9,
            head: [0xab; 32],
            last_correction: Some(Nanos(5000)),
        };
        Signed::sign(&r, &key as &dyn Signer).unwrap()
    }

    #[test]
    fn readings_come_back_byte_for_byte_and_slots_are_reused() {
        let mut store = ReadingStore::default();
        let a = reading(1);
        let b = reading(2);
        let sa = store.insert(&a);
        let sb = store.insert(&b);
        assert_ne!(sa, sb);
        assert_eq!(store.take(sa).as_ref(), Some(&a));
        // The freed slot is reused, and fully overwritten.
        let c = reading(u64::MAX);
        assert_eq!(store.insert(&c), sa);
        assert_eq!(store.take(sb).as_ref(), Some(&b));
        assert_eq!(store.take(sa).as_ref(), Some(&c));
        assert_eq!(store.take(99), None);
        // A body of another length than a reading's comes back whole too.
        let short: Signed<Reading> = Signed::from_slices(&[6u8; 20], Signature([2; 64]));
        let ss = store.insert(&short);
        assert_eq!(store.take(ss).as_ref(), Some(&short));
    }

    #[test]
    fn a_moved_reading_comes_back_from_its_new_store_only() {
        let mut mail = ReadingStore::default();
        let mut home = ReadingStore::default();
        let long: Signed<Reading> = Signed::from_slices(&[5u8; 300], Signature([1; 64]));
        let (a, b) = (reading(1), reading(2));
        let _warm = home.insert(&b);
        let (sa, sl) = (mail.insert(&a), mail.insert(&long));
        let ha = home.move_from(&mut mail, sa).unwrap();
        let hl = home.move_from(&mut mail, sl).unwrap();
        assert_eq!(home.take(ha).as_ref(), Some(&a));
        assert_eq!(home.take(hl).as_ref(), Some(&long));
        // Gone from the mail, whose slot is free again.
        assert_eq!(home.move_from(&mut mail, sl), None);
        assert_eq!(mail.insert(&b), sa);
    }

    #[test]
    fn a_reading_written_in_place_reads_back_as_stored_whole() {
        let a = reading(5);
        let mut store = ReadingStore::default();
        let slot = store.insert_with(|body| {
            body.copy_from_slice(a.body());
            *a.signature()
        });
        assert_eq!(store.get(slot).map(|r| r.to_signed()).as_ref(), Some(&a));
        store.release(slot);
        // Freed: the next insert reuses it.
        let b = reading(6);
        assert_eq!(store.insert(&b), slot);
        assert_eq!(store.take(slot).as_ref(), Some(&b));
    }

    #[test]
    fn a_packed_reading_fills_three_cache_lines() {
        assert_eq!(std::mem::size_of::<Packed>(), 192);
    }

    #[test]
    fn a_body_too_long_to_pack_still_comes_back() {
        let long: Signed<Reading> = Signed::from_slices(&[5u8; 300], Signature([1; 64]));
        let mut store = ReadingStore::default();
        let slot = store.insert(&long);
        assert_eq!(store.take(slot).as_ref(), Some(&long));
        assert_eq!(store.take(slot), None);
    }
}
