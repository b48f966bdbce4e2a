//! The simulator's event queue: a calendar of time buckets over a slab of events,
//! emptied a window at a time (see [`EventQueue`]).
//!
//! Its history, measured with callgrind at 250 nodes: a radix heap re-bucketed every
//! event about a dozen times (about 900 instructions per event pushed and popped); a
//! binary heap of (time, key, slot) cost about 570 and a dozen cache lines per pop.
//! Events at the same nanosecond come out by their tie-break key, not by when they were
//! pushed, so the order does not depend on which thread delivered what first.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// How many inserts ahead a free list's next reuse is hinted (see [`reused_soon`]).
const PREFETCH_FREE_AHEAD: usize = 4;

/// The slot that a free list popped from its end (as [`Slab`] and
/// [`crate::packed::ReadingStore`] do) hands out a few inserts from now, for the insert
/// to hint: a burst of inserts (a request slot's sends) reuses slots freed long ago, and
/// a store into a cold line stalls the sender.
pub(crate) fn reused_soon(free: &[u32]) -> Option<u32> {
    let k = free.len().checked_sub(PREFETCH_FREE_AHEAD)?;
    free.get(k).copied()
}

/// Values stored by index: a freed slot is reused first, so the slots in use stay few
/// and warm. The queue's buckets and windows move indices, never the values (buckets of
/// whole events, tried instead, had 29 % more simulated L2 misses: their memory is
/// reused only once the ring comes round).
pub struct Slab<T> {
    slots: Vec<Option<T>>,
    free: Vec<u32>,
}

impl<T> std::fmt::Debug for Slab<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Slab")
            .field("in_use", &(self.slots.len() - self.free.len()))
            .finish()
    }
}

impl<T> Default for Slab<T> {
    fn default() -> Self {
        Slab {
            slots: Vec::new(),
            free: Vec::new(),
        }
    }
}

impl<T> Slab<T> {
    /// Stores `value`; returns its slot.
    pub fn insert(&mut self, value: T) -> u32 {
        if let Some(soon) = reused_soon(&self.free) {
            self.prefetch(soon);
        }
        match self.free.pop() {
            Some(slot) => {
                self.slots[slot as usize] = Some(value);
                slot
            }
            None => {
                // The top bit of a slot number is `SINK`'s (far more events than fit in
                // memory).
                debug_assert!(self.slots.len() < SINK as usize, "slab full");
                self.slots.push(Some(value));
                (self.slots.len() - 1) as u32
            }
        }
    }

    /// The value in `slot`, left in place.
    pub fn peek(&self, slot: u32) -> Option<&T> {
        self.slots.get(slot as usize)?.as_ref()
    }

    /// Hints the cache lines of `slot` (see [`bftime_protocol::prefetch`]).
    pub fn prefetch(&self, slot: u32) {
        let slot = slot as usize;
        if let Some(value) = self.slots.get(slot) {
            bftime_protocol::prefetch::hint(value);
            // A slot longer than a line ends on the line the next one starts on (or
            // the one before it).
            if std::mem::size_of::<Option<T>>() > 64
                && let Some(next) = self.slots.get(slot + 1)
            {
                bftime_protocol::prefetch::hint(next);
            }
        }
    }

    /// Takes the value out of `slot` (None if the slot is empty or unknown).
    pub fn take(&mut self, slot: u32) -> Option<T> {
        let value = self.slots.get_mut(slot as usize)?.take()?;
        self.free.push(slot);
        Some(value)
    }
}

/// How many buckets the near ring has. With buckets a quarter of the window long, it
/// covers about 64 windows: every message in flight, while timers (a request slot or
/// more ahead) wait in the far heap.
const RING_BUCKETS: u64 = 256;

/// Emptied bucket vectors kept for reuse (see [`EventQueue::spare`]).
const SPARE_BUCKETS: usize = 32;

/// Only buckets this close to the first get a reused vector: messages land a few
/// buckets ahead, in bursts; timers, further out, come a few per bucket, and would hold
/// a burst-sized vector for tens of milliseconds.
const NEAR_BUCKETS: u64 = 16;

/// One scheduled event: when, its tie-break key, the group (node) it is for, and its
/// slot in the queue's slab.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Entry {
    pub time: u64,
    pub key: u64,
    pub group: u32,
    slot: u32,
}

impl Entry {
    /// The order a window is run in: by group, then by time, then by key.
    pub fn window_order(&self) -> (u32, u64, u64) {
        (self.group, self.time, self.key)
    }
}

/// The simulator's pending events, taken out a window at a time.
///
/// A window is every event before some time; the simulator runs a window group by group
/// (node by node), each group's events by (time, key). That is the same run as one
/// global (time, key) order, because within a window no group's events can affect
/// another's, and it keeps each node's state hot while its events run.
///
/// Events wait in a ring of time buckets (a calendar queue): a push appends to its
/// bucket, and a window takes whole buckets and filters at most one. Only events beyond
/// the ring's horizon go through a binary heap. Against a heap for every event this cut
/// the queue's share of the simulator's instructions and cache misses (see the README).
pub struct EventQueue<E> {
    slab: Slab<E>,
    /// Bucket `b` (times `[b << shift, (b + 1) << shift)`) lives at `ring[b % RING_BUCKETS]`
    /// for `b` in `base..base + RING_BUCKETS`; `base` never passes the bucket of `floor`,
    /// so every event is in its own time's bucket.
    ring: Vec<Vec<Entry>>,
    base: u64,
    shift: u32,
    in_ring: usize,
    /// Emptied buckets' vectors, most recently emptied last. A near bucket that fills up
    /// takes one of these: a vector per ring slot, each as large as the largest burst
    /// that slot ever held, made 1000 nodes × 100 rounds take 1.1 GB instead of 0.7 GB.
    spare: Vec<Vec<Entry>>,
    /// Events in buckets `base + RING_BUCKETS` and later.
    far: BinaryHeap<Reverse<Entry>>,
    /// Nothing is scheduled before this (the end of the last window taken).
    floor: u64,
}

impl<E> std::fmt::Debug for EventQueue<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventQueue")
            .field("len", &self.len())
            .finish()
    }
}

impl<E> EventQueue<E> {
    /// A queue whose buckets are the largest power of two of nanoseconds not above
    /// `bucket_ns` (at least 1 ns).
    pub fn new(bucket_ns: u64) -> Self {
        EventQueue {
            slab: Slab::default(),
            ring: (0..RING_BUCKETS).map(|_| Vec::new()).collect(),
            base: 0,
            shift: bucket_ns.max(1).ilog2(),
            in_ring: 0,
            spare: Vec::new(),
            far: BinaryHeap::new(),
            floor: 0,
        }
    }

    fn bucket_of(&self, time: u64) -> u64 {
        time >> self.shift
    }

    /// The first time in bucket `b` (saturating).
    fn bucket_start(&self, b: u64) -> u64 {
        u64::try_from(u128::from(b) << self.shift).unwrap_or(u64::MAX)
    }

    /// The first time after bucket `b` (saturating).
    fn bucket_end(&self, b: u64) -> u64 {
        self.bucket_start(b.saturating_add(1))
    }

    fn ring_slot(b: u64) -> usize {
        (b % RING_BUCKETS) as usize
    }

    /// Schedules `event` for `group` at `at_ns`; within a group, events at the same time
    /// come out by `key`. A time before the end of the last window taken is moved up to
    /// it (simulated time does not run backwards).
    pub fn push(&mut self, at_ns: i64, key: u64, group: u32, event: E) {
        let time = u64::try_from(at_ns).unwrap_or(0).max(self.floor);
        let slot = self.slab.insert(event);
        self.place(Entry {
            time,
            key,
            group,
            slot,
        });
    }

    fn place(&mut self, e: Entry) {
        debug_assert!(
            self.bucket_of(e.time) >= self.base,
            "an event before the first bucket"
        );
        let b = self.bucket_of(e.time).max(self.base);
        if b < self.base + RING_BUCKETS {
            let bucket = &mut self.ring[Self::ring_slot(b)];
            if bucket.capacity() == 0
                && b < self.base + NEAR_BUCKETS
                && let Some(reused) = self.spare.pop()
            {
                *bucket = reused;
            }
            bucket.push(e);
            self.in_ring += 1;
        } else {
            self.far.push(Reverse(e));
        }
    }

    /// Moves far events that now fall within the ring's horizon into it. An empty ring
    /// first moves on towards the earliest far event, but never past bucket `limit`
    /// (the one holding the end of the window being taken): later pushes are never
    /// earlier than that, so no event ever waits in a bucket that starts after it.
    fn pull_in(&mut self, limit: u64) {
        if self.in_ring == 0
            && let Some(Reverse(top)) = self.far.peek()
        {
            self.base = self.base.max(self.bucket_of(top.time).min(limit));
        }
        while let Some(Reverse(top)) = self.far.peek() {
            if self.bucket_of(top.time) >= self.base + RING_BUCKETS {
                break;
            }
            let Some(Reverse(e)) = self.far.pop() else {
                break;
            };
            self.place(e);
        }
    }

    /// The time of the earliest event.
    pub fn peek_time(&self) -> Option<i64> {
        if self.in_ring > 0 {
            // The first non-empty bucket holds the earliest event: every later bucket
            // starts after it ends.
            return (self.base..self.base + RING_BUCKETS)
                .map(|b| &self.ring[Self::ring_slot(b)])
                .find(|bucket| !bucket.is_empty())
                .and_then(|bucket| bucket.iter().map(|e| e.time).min())
                .map(|t| t as i64);
        }
        self.far.peek().map(|Reverse(e)| e.time as i64)
    }

    /// Moves every event before `end_ns` into `out` (in no particular order; sort by
    /// [`Entry::window_order`] to run them). Their values stay in the queue until
    /// [`Self::take`]n.
    pub fn take_window(&mut self, end_ns: i64, out: &mut Vec<Entry>) {
        let end = u64::try_from(end_ns).unwrap_or(0);
        let limit = self.bucket_of(end);
        self.pull_in(limit);
        while self.in_ring > 0 {
            let b = self.base;
            if self.bucket_start(b) >= end {
                break;
            }
            let whole = self.bucket_end(b) <= end;
            let bucket = &mut self.ring[Self::ring_slot(b)];
            let before = bucket.len();
            if whole {
                out.append(bucket);
                let emptied = std::mem::take(bucket);
                if self.spare.len() < SPARE_BUCKETS && emptied.capacity() > 0 {
                    self.spare.push(emptied);
                }
                self.base += 1;
            } else {
                bucket.retain(|e| {
                    let due = e.time < end;
                    if due {
                        out.push(*e);
                    }
                    !due
                });
                self.in_ring -= before - bucket.len();
                break;
            }
            self.in_ring -= before;
            self.pull_in(limit);
        }
        self.floor = self.floor.max(end);
    }

    /// The value of an entry taken out with [`Self::take_window`].
    pub fn take(&mut self, e: &Entry) -> Option<E> {
        self.slab.take(e.slot)
    }

    /// The value of an entry taken out with [`Self::take_window`], left in place.
    pub fn peek(&self, e: &Entry) -> Option<&E> {
        self.slab.peek(e.slot)
    }

    /// Hints the cache lines of an entry's value (see [`bftime_protocol::prefetch`]).
    pub fn prefetch(&self, e: &Entry) {
        self.slab.prefetch(e.slot);
    }

    /// How many events are due before `t_ns`, counting no further than `cap`.
    pub fn due_before_capped(&self, t_ns: i64, cap: usize) -> usize {
        let t = u64::try_from(t_ns).unwrap_or(0);
        let mut n = 0;
        for b in self.base..self.base + RING_BUCKETS {
            if n >= cap || self.bucket_start(b) >= t {
                break;
            }
            let bucket = &self.ring[Self::ring_slot(b)];
            n += if self.bucket_end(b) <= t {
                bucket.len()
            } else {
                bucket.iter().filter(|e| e.time < t).count()
            };
        }
        if n < cap {
            n += heap_due_before(self.far.as_slice(), t, cap - n);
        }
        n.min(cap)
    }

    pub fn len(&self) -> usize {
        self.in_ring + self.far.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Tags the slot of an entry [`SplitQueue::take_window`] took from the sinks.
const SINK: u32 = 1 << 31;

/// Two event queues behind one: events that may send messages (*senders*) and events
/// that never do (*sinks*). The simulator needs the earliest sender on its own: no
/// message can arrive before the minimum one-way delay after it, so a window may run
/// until then, however early the sinks are (see `crate::sim`).
pub struct SplitQueue<E> {
    senders: EventQueue<E>,
    sinks: EventQueue<E>,
}

impl<E> std::fmt::Debug for SplitQueue<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SplitQueue")
            .field("senders", &self.senders.len())
            .field("sinks", &self.sinks.len())
            .finish()
    }
}

impl<E> SplitQueue<E> {
    /// Two queues with buckets as in [`EventQueue::new`].
    pub fn new(bucket_ns: u64) -> Self {
        SplitQueue {
            senders: EventQueue::new(bucket_ns),
            sinks: EventQueue::new(bucket_ns),
        }
    }

    /// As [`EventQueue::push`]; `sends` says whether running the event may send a
    /// message (a wrong `false` would let a window run past that message's arrival).
    #[inline]
    pub fn push(&mut self, at_ns: i64, key: u64, group: u32, event: E, sends: bool) {
        if sends {
            self.senders.push(at_ns, key, group, event);
        } else {
            self.sinks.push(at_ns, key, group, event);
        }
    }

    /// The time of the earliest event.
    pub fn peek_time(&self) -> Option<i64> {
        self.senders
            .peek_time()
            .into_iter()
            .chain(self.sinks.peek_time())
            .min()
    }

    /// The time of the earliest event that may send a message.
    pub fn peek_sender_time(&self) -> Option<i64> {
        self.senders.peek_time()
    }

    /// As [`EventQueue::take_window`], from both queues.
    pub fn take_window(&mut self, end_ns: i64, out: &mut Vec<Entry>) {
        self.senders.take_window(end_ns, out);
        let from = out.len();
        self.sinks.take_window(end_ns, out);
        for e in &mut out[from..] {
            e.slot |= SINK;
        }
    }

    /// Whether [`Self::take_window`] took `e` from the sinks, and `e` as its queue
    /// knows it (tag cleared).
    #[inline]
    fn untag(e: &Entry) -> (bool, Entry) {
        let slot = e.slot & !SINK;
        (e.slot & SINK != 0, Entry { slot, ..*e })
    }

    #[inline]
    fn route(&self, e: &Entry) -> (&EventQueue<E>, Entry) {
        match Self::untag(e) {
            (true, e) => (&self.sinks, e),
            (false, e) => (&self.senders, e),
        }
    }

    /// As [`EventQueue::take`], for an entry either queue gave out.
    #[inline]
    pub fn take(&mut self, e: &Entry) -> Option<E> {
        match Self::untag(e) {
            (true, e) => self.sinks.take(&e),
            (false, e) => self.senders.take(&e),
        }
    }

    /// As [`EventQueue::peek`].
    #[inline]
    pub fn peek(&self, e: &Entry) -> Option<&E> {
        let (q, e) = self.route(e);
        q.peek(&e)
    }

    /// As [`EventQueue::prefetch`].
    #[inline]
    pub fn prefetch(&self, e: &Entry) {
        let (q, e) = self.route(e);
        q.prefetch(&e);
    }

    /// As [`EventQueue::due_before_capped`], over both queues.
    pub fn due_before_capped(&self, t_ns: i64, cap: usize) -> usize {
        let n = self.senders.due_before_capped(t_ns, cap);
        (n + self.sinks.due_before_capped(t_ns, cap - n)).min(cap)
    }

    pub fn len(&self) -> usize {
        self.senders.len() + self.sinks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Puts a window's entries in run order ([`Entry::window_order`]): a counting sort by
/// group (a range's nodes are few: every `stride`-th one), then each group's few
/// entries by time and key. A comparison sort of the whole window by its three-field key
/// cost about 200 instructions per event; this is a few passes and a handful of
/// insertion sorts.
#[derive(Debug, Default)]
pub struct WindowSorter {
    counts: Vec<usize>,
    scratch: Vec<Entry>,
}

impl WindowSorter {
    /// Sorts `entries`, whose groups should be `first_group + k × stride` for `k` below
    /// `groups` (any other falls back to a plain sort).
    pub fn sort(&mut self, entries: &mut Vec<Entry>, first_group: u32, stride: u32, groups: usize) {
        let stride = stride.max(1);
        let index = |e: &Entry| {
            e.group
                .checked_sub(first_group)
                .filter(|g| g % stride == 0)
                .map(|g| (g / stride) as usize)
                .filter(|&g| g < groups)
        };
        let plain_sort =
            |entries: &mut Vec<Entry>| entries.sort_unstable_by_key(Entry::window_order);
        if entries.len() < 32 {
            return plain_sort(entries);
        }
        // counts[g] = where group g starts; then, while scattering, where its next entry
        // goes; afterwards, where it ends.
        self.counts.clear();
        self.counts.resize(groups + 1, 0);
        for e in entries.iter() {
            let Some(g) = index(e) else {
                return plain_sort(entries);
            };
            self.counts[g + 1] += 1;
        }
        for g in 1..=groups {
            self.counts[g] += self.counts[g - 1];
        }
        self.scratch.clear();
        self.scratch.resize(entries.len(), entries[0]);
        for e in entries.iter() {
            let cursor = &mut self.counts[index(e).unwrap_or(0)];
            self.scratch[*cursor] = *e;
            *cursor += 1;
        }
        std::mem::swap(entries, &mut self.scratch);
        let mut start = 0;
        for g in 0..groups {
            let end = self.counts[g];
            if end - start > 1 {
                entries[start..end].sort_unstable_by_key(|e| (e.time, e.key));
            }
            start = end;
        }
    }
}

/// How many entries of a binary min-heap are before `t`, counting no further than
/// `cap`: a walk down the heap that stops at every entry not before `t` (its subtree is
/// not either), so it costs O(min(due, cap)), not O(len).
fn heap_due_before(entries: &[Reverse<Entry>], t: u64, cap: usize) -> usize {
    // Usually nothing in the heap is due: answer that without the walk's allocation.
    if cap == 0 || entries.first().is_none_or(|Reverse(e)| e.time >= t) {
        return 0;
    }
    let mut stack = vec![0usize];
    let mut n = 0;
    while let Some(i) = stack.pop() {
        let Some(Reverse(e)) = entries.get(i) else {
            continue;
        };
        if e.time >= t {
            continue;
        }
        n += 1;
        if n >= cap {
            break;
        }
        stack.extend([2 * i + 1, 2 * i + 2]);
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn peek_leaves_the_value_and_a_hint_for_any_slot_is_harmless() {
        let mut q = EventQueue::new(4);
        q.push(10, 1, 0, 42u64);
        let mut out = Vec::new();
        q.take_window(100, &mut out);
        let e = out[0];
        q.prefetch(&e);
        assert_eq!(q.peek(&e), Some(&42));
        assert_eq!(q.take(&e), Some(42));
        assert_eq!(q.peek(&e), None);
        let unknown = Entry { slot: 999, ..e };
        q.prefetch(&unknown);
        assert_eq!(q.peek(&unknown), None);
        // A slab of values longer than a line hints two lines, the last slot's too.
        let mut slab = Slab::default();
        let slot = slab.insert([1u64; 12]);
        slab.prefetch(slot);
        slab.prefetch(slot + 1);
        assert_eq!(slab.peek(slot), Some(&[1u64; 12]));
    }

    /// Takes the window before `end` and returns it in run order, with values.
    fn window(q: &mut EventQueue<u64>, end: i64) -> Vec<(u32, u64, u64, u64)> {
        let mut out = Vec::new();
        q.take_window(end, &mut out);
        out.sort_unstable_by_key(Entry::window_order);
        out.iter()
            .map(|e| (e.group, e.time, e.key, q.take(e).unwrap()))
            .collect()
    }

    /// What a window must hold: every pending event before `end`, in run order.
    fn reference_window(
        pending: &mut Vec<(u32, u64, u64, u64)>,
        end: i64,
    ) -> Vec<(u32, u64, u64, u64)> {
        let mut due: Vec<_> = pending
            .iter()
            .copied()
            .filter(|e| (e.1 as i64) < end)
            .collect();
        pending.retain(|e| e.1 as i64 >= end);
        due.sort_unstable();
        due
    }

    proptest! {
        /// Against a reference: pushes (some beyond the ring's horizon, some before the
        /// last window's end) and windows of any length hold exactly the due events, in
        /// (group, time, key) order, and `peek_time` is the earliest pending time.
        #[test]
        fn windows_hold_the_due_events_in_run_order(
            bucket_ns in 1u64..5_000,
            ops in proptest::collection::vec((0u8..4, 0i64..2_000_000, 0u32..5), 1..300),
        ) {
            let mut q = EventQueue::new(bucket_ns);
            let mut pending: Vec<(u32, u64, u64, u64)> = Vec::new();
            let mut floor = 0i64;
            let mut seq = 0u64;
            for (op, x, group) in ops {
                if op < 3 {
                    seq += 1;
                    // Mostly near the floor, sometimes far ahead or in the past.
                    let at = match op {
                        0 => floor + x / 100,
                        1 => floor + x,
                        _ => floor - x / 1000,
                    };
                    q.push(at, u64::MAX - seq, group, seq);
                    pending.push((group, at.max(floor) as u64, u64::MAX - seq, seq));
                } else {
                    let want_first = pending.iter().map(|e| e.1 as i64).min();
                    prop_assert_eq!(q.peek_time(), want_first);
                    let end = floor + x / 50;
                    prop_assert_eq!(
                        q.due_before_capped(end, usize::MAX),
                        pending.iter().filter(|e| (e.1 as i64) < end).count()
                    );
                    let want = reference_window(&mut pending, end);
                    prop_assert_eq!(window(&mut q, end), want);
                    floor = floor.max(end);
                }
                prop_assert_eq!(q.len(), pending.len());
            }
        }
    }

    proptest! {
        /// The counting sort gives the same order as sorting by the whole key.
        #[test]
        fn window_sorter_matches_a_plain_sort(
            raw in proptest::collection::vec((0u32..38, 0u64..50, any::<u64>()), 0..400),
            first in 0u32..3,
            stride in 1u32..4,
            stray in 0u8..3,
        ) {
            let mut entries: Vec<Entry> = raw
                .iter()
                .enumerate()
                .map(|(i, &(g, time, key))| Entry {
                    time,
                    key,
                    group: first + g * stride,
                    slot: i as u32,
                })
                .collect();
            if let Some(e) = entries.first_mut() {
                // A group outside the range, or between its strides, takes the plain sort.
                match stray {
                    1 => e.group = first + 38 * stride,
                    2 if stride > 1 => e.group = first + 1,
                    _ => {}
                }
            }
            let mut want = entries.clone();
            want.sort_unstable_by_key(|e| (e.window_order(), e.slot));
            // Keys may repeat here (never in the simulator): compare up to the key.
            WindowSorter::default().sort(&mut entries, first, stride, 38);
            let order = |v: &[Entry]| v.iter().map(Entry::window_order).collect::<Vec<_>>();
            prop_assert_eq!(order(&entries), order(&want));
        }
    }

    #[test]
    fn a_split_queue_keeps_senders_apart_and_gives_back_both() {
        let mut q = SplitQueue::new(4);
        q.push(5, 1, 0, "response early", false);
        q.push(30, 2, 1, "timer", true);
        q.push(12, 3, 2, "response later", false);
        q.push(200, 4, 0, "request far", true);
        assert_eq!(q.peek_time(), Some(5));
        assert_eq!(q.peek_sender_time(), Some(30));
        assert_eq!(q.due_before_capped(31, usize::MAX), 3);
        assert_eq!(q.due_before_capped(31, 2), 2);
        let mut window = Vec::new();
        q.take_window(31, &mut window);
        window.sort_unstable_by_key(|e| e.time);
        assert_eq!(window.len(), 3);
        assert_eq!(q.peek(&window[0]), Some(&"response early"));
        q.prefetch(&window[1]);
        let taken: Vec<_> = window.iter().map(|e| q.take(e)).collect();
        assert_eq!(
            taken,
            [
                Some("response early"),
                Some("response later"),
                Some("timer")
            ]
        );
        assert_eq!(q.take(&window[0]), None);
        assert_eq!(q.len(), 1);
        assert_eq!(q.peek_time(), Some(200));
        assert_eq!(q.peek_sender_time(), Some(200));
    }

    #[test]
    fn a_window_runs_group_by_group_then_by_time_and_key() {
        let mut q = EventQueue::new(4);
        q.push(10, 5, 1, 100);
        q.push(10, 1, 1, 101);
        q.push(3, 9, 2, 102);
        q.push(12, 0, 0, 103);
        q.push(40, 0, 0, 104);
        assert_eq!(q.peek_time(), Some(3));
        assert_eq!(q.due_before_capped(13, usize::MAX), 4);
        assert_eq!(q.due_before_capped(13, 2), 2);
        assert_eq!(
            window(&mut q, 13),
            vec![
                (0, 12, 0, 103),
                (1, 10, 1, 101),
                (1, 10, 5, 100),
                (2, 3, 9, 102)
            ]
        );
        assert_eq!(q.peek_time(), Some(40));
        assert_eq!(q.len(), 1);
    }

    #[test]
    fn a_time_before_the_last_window_is_moved_up() {
        let mut q = EventQueue::new(8);
        q.push(10, 0, 0, 1);
        assert_eq!(window(&mut q, 11), vec![(0, 10, 0, 1)]);
        q.push(5, 0, 0, 2);
        assert_eq!(q.peek_time(), Some(11));
        assert_eq!(window(&mut q, 12), vec![(0, 11, 0, 2)]);
        assert!(q.is_empty());
    }

    #[test]
    fn events_far_beyond_the_ring_come_back_in_time() {
        let mut q = EventQueue::new(1);
        q.push(1_000_000_000, 0, 0, 1);
        q.push(5, 0, 0, 2);
        q.push(i64::MAX, 0, 0, 3);
        assert_eq!(window(&mut q, 6), vec![(0, 5, 0, 2)]);
        assert_eq!(q.peek_time(), Some(1_000_000_000));
        assert_eq!(
            window(&mut q, 1_000_000_001),
            vec![(0, 1_000_000_000, 0, 1)]
        );
        assert_eq!(window(&mut q, i64::MAX), vec![]);
        assert_eq!(q.peek_time(), Some(i64::MAX));
    }
}
