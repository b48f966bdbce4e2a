//! The round state machine (spec §4): a node's whole protocol behaviour as a pure
//! object. The driver (the `bftime` node, or the simulator) feeds it events with the
//! local time they happened at and executes the actions it returns. It never reads a
//! clock, never draws randomness of its own and never touches the network.

use std::sync::Arc;

use smallvec::SmallVec;

use bftime_crypto::{
    BatchItem, CryptoSuite, Domain as _, PublicKey, Signature, Signed, SignedParts, Signer,
};
use rand_core::Rng;
use serde::{Deserialize, Serialize};

use crate::clock::ClusterClock;
use crate::interval::Interval;
use crate::message::{
    Head, Leaving, MemberId, Nonce, Reading, Request, Salt, SyncState, advance_head, derive_nonce,
};
use crate::midpoint::{self, Agreement};
use crate::offset::{self, Sample};
use crate::params::{Algorithm, Params, ParamsError};
use crate::quarantine::{
    HardViolation, HealthPolicy, QuarantineReason, Transition, Unhealthy, Verdict,
};
use crate::reject::{RejectCounts, RejectReason};
use crate::snapshot::{NodeSnapshot, PeerRow};
use crate::suspect::{Observation, PeerJudge};
use crate::time::{ClusterTime, LocalTime, Nanos, Ppm};

/// Gain of the frequency loop: the share of each round's correction (as a rate) that
/// is folded into the rate correction. Small, so measurement noise averages out.
const RATE_GAIN: f64 = 0.2;

/// Share of the rate correction the frequency loop lets go each round it runs. The loop
/// sees only how a node's correction differs from its peers', so a push that every node
/// gets alike (noise in the medians, an adversary's placement of them) would otherwise
/// stay in every rate for good; this pulls such a common part back towards the members'
/// own oscillators, while a node's own frequency error stays compensated to
/// RATE_GAIN / (RATE_GAIN + RATE_LEAK), 95 % (spec §3.3).
const RATE_LEAK: f64 = 0.01;

/// Static configuration of one node's core.
#[derive(Debug, Clone)]
pub struct CoreConfig {
    pub me: MemberId,
    /// Every member's key, in cluster-file order (index = `MemberId`). Shared: a process
    /// that runs many cores (the simulator) keeps one copy.
    pub members: Arc<[PublicKey]>,
    /// Cluster tag carried in every message (a hash of the cluster id).
    pub cluster: u64,
    pub params: Params,
    /// Put every accepted signed reading and per-peer interval into round summaries
    /// (the audit log needs them; the large simulator does not).
    pub detailed_summaries: bool,
    /// Random bits that differ at every start of the node: the first clock epoch
    /// (readings from two runs of one node never share an epoch; spec §2.6).
    pub incarnation: u64,
    /// Check readings' signatures in batches, after they are chained and before any is
    /// used (spec §4.2): 14–19 µs a signature instead of 27–33 on the 2-core test VM
    /// (`crypto/src/batch.rs`). The node does; the
    /// simulator's stand-in signatures gain nothing from it.
    pub batch_verification: bool,
}

/// Readings waiting for their signature check are checked together once this many have
/// accumulated, and at the end of every round (spec §4.2): large enough to amortise a
/// batch (16–32 signatures under distinct keys: 14–19 µs each, against 27–33 alone; 64 were
/// no cheaper each), small enough that one batch stalls a node's loop for under a
/// millisecond.
pub const VERIFY_BATCH: usize = 32;

/// Something the driver must do.
#[derive(Debug, Clone)]
pub enum Action {
    /// Send this request to a peer now.
    SendRequest { to: MemberId, request: Request },
    /// Call `handle_timer` when the local clock reaches `at` (replaces earlier timers).
    SetTimer { at: LocalTime },
    /// The node changed state (started serving, quarantined, rejoined).
    StateChanged(Transition),
    /// A round ended; what was decided (for logs, metrics and the audit log).
    RoundCompleted(Box<RoundSummary>),
    /// A reading accepted before its signature was checked (batch verification) turned
    /// out to be forged: it was counted as `bad-signature` and its peer's sample dropped.
    ReadingRejected {
        from: MemberId,
        reason: RejectReason,
    },
}

/// The outcome of a round.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RoundSummary {
    pub round: u64,
    pub state: SyncState,
    /// The correction this round (peer consensus minus our protocol clock); when it was
    /// inconsistent, the part applied, the allowance (the verdict names both, spec §4.4).
    pub correction: Nanos,
    /// Whether it was applied (not without an agreement, nor on the round that
    /// quarantines a node for inconsistency).
    pub applied: bool,
    pub stepped: bool,
    pub error: Option<Nanos>,
    pub rate: Ppm,
    pub readings_used: usize,
    pub verdict: String,
    pub suspects: Vec<MemberId>,
    /// Per-peer intervals (detailed summaries only).
    pub intervals: Vec<(MemberId, Interval)>,
    /// Every signed reading accepted this round, in order of acceptance (detailed
    /// summaries only; with one exchange per peer and round, exactly the readings used).
    #[serde(skip)]
    pub readings: Vec<Signed<Reading>>,
    /// For each of `readings`: how many readings of this round had been accepted when
    /// its request was sent (its nonce chains from the head after that many).
    #[serde(skip)]
    pub nonce_from: Vec<u16>,
    /// Pairs (accepted, later duplicate) of different signed readings a peer sent for
    /// one request: evidence of double signing (detailed summaries only, at most 8).
    #[serde(skip)]
    pub duplicates: Vec<(Signed<Reading>, Signed<Reading>)>,
    /// The head when the round began, and the round's nonce salt.
    #[serde(skip)]
    pub head_used: Head,
    #[serde(skip)]
    pub salt: Salt,
    /// The head after the round: `head_used` advanced by every reading in `readings`.
    #[serde(skip)]
    pub head: Head,
    /// Our clock epoch after this round (spec §2.6).
    pub epoch: u64,
}

/// The outcome of `handle_response`.
#[must_use]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseOutcome {
    Accepted,
    Rejected(RejectReason),
}

/// Cluster time as served to applications.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeReading {
    pub cluster: ClusterTime,
    pub earliest: ClusterTime,
    pub latest: ClusterTime,
    pub state: SyncState,
    pub serving: bool,
}

/// Where a request we sent stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NonceState {
    /// Sent this round, not answered yet.
    Pending,
    /// Answered this round (a second answer is a duplicate).
    Answered,
    /// Sent last round and never answered (a late answer is stale).
    Expired,
}

#[derive(Debug, Clone, Copy)]
struct Inflight {
    nonce: Nonce,
    round: u64,
    created_at: LocalTime,
    state: NonceState,
    /// Readings accepted this round before the request was sent.
    chained_after: u16,
}

/// What we asked one peer and what its answers told us. Touched on every exchange we
/// make, so kept small and free of heap pointers: a simulator holds n² of these, and at
/// n = 250 a pointer chase per exchange costs more than the exchange itself. Exactly
/// three cache lines, aligned (what is read only at round end, the peer's judge, lives
/// in [`Core::judges`]): unaligned, the 216 bytes it used to be straddled four or five.
/// In this order (`repr(C)`), the nonces fill the first line alone: sending a request
/// touches only that line of the record, where the compiler's own order spread them
/// over two.
#[derive(Debug, Clone, Default)]
#[repr(C, align(64))]
struct PeerState {
    /// This round's requests and last round's unanswered ones (at most
    /// 3 × exchanges_per_round; inline for the usual one: a peer that answers leaves
    /// none behind).
    nonces: SmallVec<[Inflight; 1]>,
    best: Option<Sample>,
    last: Option<(Sample, SyncState)>,
    cold: Box<PeerCold>,
    accepted: u64,
    suspects_me: bool,
    misbehaved: bool,
    /// It sent a `Leaving` (reason in `cold.left`) and has not served since: checked
    /// here, on the record's hot line, so a response touches `cold` only then.
    has_left: bool,
    /// What its reading of this round says it corrected by at the end of the last one,
    /// in microseconds, for the frequency loop (spec §3.3).
    reported_us: Option<i16>,
}

impl PeerState {
    /// Hints all three cache lines of the record (see [`crate::prefetch`]): one field on
    /// each, as the compiler lays them out (a test checks these cover every line).
    fn prefetch(&self) {
        crate::prefetch::hint(&self.best);
        crate::prefetch::hint(&self.last);
        crate::prefetch::hint(&self.cold);
        crate::prefetch::hint(&self.nonces);
        crate::prefetch::hint(&self.accepted);
        crate::prefetch::hint(&self.suspects_me);
    }
}

/// What we answered one peer in our current round: touched on every request it makes,
/// kept apart from [`PeerState`] so a request touches one small record: one cache line,
/// aligned so it never straddles two.
#[derive(Debug, Clone, Default)]
#[repr(align(64))]
struct Answering {
    round: u64,
    seen: u32,
    /// `judge.far_off()` of the peer as of our last round (copied at round end).
    far_off: bool,
    /// Nonces answered in `round`: an honest responder signs at most one reading per
    /// (epoch, round, requester, nonce) (spec §2.6).
    answered: SmallVec<[Nonce; 1]>,
}

/// Per-peer state read only on rare paths (rejections, leaving, detailed summaries).
#[derive(Debug, Clone, Default)]
struct PeerCold {
    rejected: RejectCounts,
    /// Why it left, until it serves again (see [`PeerState::has_left`]).
    left: Option<String>,
    /// Its round when it left: a reading from a later round that says it serves clears
    /// `left` (it rejoined after probation, or restarted).
    left_in_round: u64,
    /// Our round when its notice came.
    notice_in_our_round: u64,
    /// Batch verification: this peer once sent a forged reading, so its readings are
    /// checked alone, on arrival (a forger in every batch would make each batch fail and
    /// every reading in it be checked again alone: dearer than no batches at all).
    checked_alone: bool,
    /// The round in which its forged reading was dropped: its other readings of that
    /// round are chained but not used either (an auditor finds the forged one unused only
    /// if the peer has no interval in that round).
    dropped_in_round: Option<u64>,
}

/// One node's protocol state.
pub struct Core {
    cfg: CoreConfig,
    signer: Box<dyn Signer>,
    suite: Arc<dyn CryptoSuite>,
    clock: ClusterClock,
    health: HealthPolicy,
    round: u64,
    round_start: ClusterTime,
    next_slot: u32,
    peers: Vec<PeerState>,
    /// Each peer's judge (spec §6: suspects), read and updated once per round.
    judges: Vec<PeerJudge>,
    answering: Vec<Answering>,
    last_local: LocalTime,
    error: Option<Nanos>,
    last_update: LocalTime,
    last_correction: Nanos,
    /// Last round's correction and length, if the frequency loop may use it (spec §3.3);
    /// its readings this round report it to every peer (`reported`, as it travels).
    rate_candidate: Option<(Nanos, Nanos)>,
    reported: Option<Nanos>,
    /// The corrections peers reported this round, gathered at its end.
    reports: Vec<Nanos>,
    /// How far the last applied correction fell short of the agreement (an inconsistent
    /// round moves by its allowance only): part of `error`, not of the next allowance.
    residual: Nanos,
    last_round_small: bool,
    last_answered: usize,
    head: Head,
    salt: Salt,
    epoch: u64,
    duplicates: Vec<(Signed<Reading>, Signed<Reading>)>,
    /// Head at the start of this round, readings accepted since, and (detailed
    /// summaries) those readings with their requests' `chained_after`.
    round_head: Head,
    round_accepted: u16,
    accepted_log: Vec<Signed<Reading>>,
    nonce_from: Vec<u16>,
    /// Readings chained and counted but not yet signature-checked (batch verification).
    unverified: Vec<(MemberId, Signed<Reading>)>,
    /// Peers whose unverified reading failed its check, to report at the round's end.
    forged_from: Vec<MemberId>,
    pending_violation: Option<HardViolation>,
    rejected: RejectCounts,
    accepted: u64,
    intervals: Vec<Interval>,
    /// The peers to ask in each request slot (fixed for the life of the core).
    slot_peers: Vec<Vec<MemberId>>,
    offsets: Vec<Nanos>,
    scratch: Vec<Nanos>,
}

impl std::fmt::Debug for Core {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Core")
            .field("me", &self.cfg.me)
            .field("state", &self.health.state())
            .field("round", &self.round)
            .finish_non_exhaustive()
    }
}

/// Why a core could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CoreError {
    #[error(transparent)]
    Params(#[from] ParamsError),
    #[error("member list has {got} keys but params say n = {want}")]
    MemberCount { got: usize, want: usize },
    #[error("our id {me} is not in the member list")]
    NotAMember { me: MemberId },
    #[error("our signing key is not the key listed for member {me}")]
    KeyMismatch { me: MemberId },
}

/// How many peers ahead the round end's passes over the per-peer records hint the
/// cache (see [`crate::prefetch`]): at n = 250 a node's records are cold by the time its
/// round ends, and perf put the simulator's samples on the passes' first loads of them.
const ROUND_END_PREFETCH_AHEAD: usize = 4;

/// Which peers each request slot asks (spec §4.1): each peer gets `exchanges_per_round`
/// evenly spaced slots, offset by both indices so that load spreads over responders as
/// well as over time.
fn request_schedule(params: &Params, me: MemberId) -> Vec<Vec<MemberId>> {
    let slots = params.request_slots;
    let per_round = params.exchanges_per_round;
    let mut schedule = vec![Vec::new(); slots as usize];
    for peer in (0..params.members).filter(|&p| p != me.index()) {
        let base = ((peer + me.index()) % slots as usize) as u32;
        for e in 0..per_round {
            let slot = &mut schedule[((base + e * slots / per_round) % slots) as usize];
            if slot.last() != Some(&MemberId(peer as u16)) {
                slot.push(MemberId(peer as u16));
            }
        }
    }
    schedule
}

impl Core {
    /// Builds a node's core. `initial_offset` seeds the cluster clock (C = L + offset);
    /// a fresh node uses its best guess (the testnet: zero; the node: a persisted offset).
    pub fn new(
        cfg: CoreConfig,
        signer: Box<dyn Signer>,
        suite: Arc<dyn CryptoSuite>,
        now: LocalTime,
        initial_offset: Nanos,
    ) -> Result<(Core, Vec<Action>), CoreError> {
        cfg.params.validate()?;
        if cfg.members.len() != cfg.params.members {
            return Err(CoreError::MemberCount {
                got: cfg.members.len(),
                want: cfg.params.members,
            });
        }
        let Some(my_key) = cfg.members.get(cfg.me.index()) else {
            return Err(CoreError::NotAMember { me: cfg.me });
        };
        if *my_key != signer.public_key() {
            return Err(CoreError::KeyMismatch { me: cfg.me });
        }
        let clock = ClusterClock::new(now, initial_offset);
        let n = cfg.params.members;
        let mut core = Core {
            signer,
            suite,
            health: HealthPolicy::new(),
            round: 0,
            round_start: ClusterTime(0),
            next_slot: 0,
            peers: vec![PeerState::default(); n],
            judges: vec![PeerJudge::default(); n],
            answering: vec![Answering::default(); n],
            last_local: now,
            error: None,
            last_update: now,
            last_correction: Nanos::ZERO,
            rate_candidate: None,
            reported: None,
            reports: Vec::with_capacity(n),
            residual: Nanos::ZERO,
            last_round_small: false,
            last_answered: 0,
            head: [0; 32],
            salt: [0; 16],
            epoch: cfg.incarnation,
            duplicates: Vec::new(),
            round_head: [0; 32],
            round_accepted: 0,
            accepted_log: Vec::new(),
            nonce_from: Vec::new(),
            unverified: Vec::new(),
            forged_from: Vec::new(),
            pending_violation: None,
            rejected: RejectCounts::default(),
            accepted: 0,
            intervals: Vec::with_capacity(n),
            slot_peers: request_schedule(&cfg.params, cfg.me),
            offsets: Vec::with_capacity(n),
            scratch: Vec::with_capacity(n),
            clock,
            cfg,
        };
        core.align_rounds(now);
        let at = core.clock.local_when(core.next_deadline());
        Ok((core, vec![Action::SetTimer { at }]))
    }

    pub fn me(&self) -> MemberId {
        self.cfg.me
    }
    pub fn params(&self) -> &Params {
        &self.cfg.params
    }
    pub fn state(&self) -> SyncState {
        self.health.state()
    }
    /// The clock epoch readings carry (spec §2.6): it changes whenever the protocol clock
    /// steps, the state changes or a backward correction beyond Π is applied, so an
    /// application that sees it unchanged between two reads knows the time in between
    /// ran on without a jump.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    pub fn quarantine_reason(&self) -> Option<QuarantineReason> {
        self.health.reason()
    }
    pub fn serving(&self) -> bool {
        self.health.serving()
    }
    pub fn round(&self) -> u64 {
        self.round
    }
    pub fn clock(&self) -> &ClusterClock {
        &self.clock
    }
    /// Members we currently suspect, with why.
    pub fn suspects(&self) -> impl Iterator<Item = (MemberId, crate::suspect::SuspectReason)> + '_ {
        self.judges
            .iter()
            .enumerate()
            .filter_map(|(i, j)| j.suspect().map(|r| (MemberId(i as u16), r)))
    }

    /// The current round length: P, or P / `startup_round_divisor` while starting.
    fn period(&self) -> Nanos {
        if self.health.state() == SyncState::Starting {
            self.cfg.params.startup_round_period()
        } else {
            self.cfg.params.round_period
        }
    }

    /// Starts the round that the protocol clock is in now, or the next one if the
    /// request window of this one has passed (used at start, after every step and
    /// after every change of state).
    fn align_rounds(&mut self, now: LocalTime) {
        let p = self.period().0;
        let a = self.clock.protocol_time(now).0;
        let mut index = a.div_euclid(p);
        let spread = (p as f64 * self.cfg.params.request_spread) as i64;
        if a - index * p > spread {
            index += 1;
        }
        let label = u64::try_from(index).unwrap_or(0).max(self.round + 1);
        self.round = label;
        self.round_start = ClusterTime(index * p);
        self.next_slot = 0;
    }

    fn slot_time(&self, slot: u32) -> ClusterTime {
        let p = &self.cfg.params;
        let spread = self.period().0 as f64 * p.request_spread;
        self.round_start + Nanos((spread * f64::from(slot) / f64::from(p.request_slots)) as i64)
    }

    fn round_end(&self) -> ClusterTime {
        self.round_start + self.period()
    }

    fn next_deadline(&self) -> ClusterTime {
        if self.next_slot < self.cfg.params.request_slots {
            self.slot_time(self.next_slot)
        } else {
            self.round_end()
        }
    }

    fn note_local(&mut self, now: LocalTime) {
        if now < self.last_local {
            // The whole step back: later readings, still behind the highest seen, show
            // only what is left of it.
            let by = self.last_local - now;
            match &mut self.pending_violation {
                Some(HardViolation::LocalClockBackwards { by: seen }) => *seen = (*seen).max(by),
                Some(_) => {}
                None => self.pending_violation = Some(HardViolation::LocalClockBackwards { by }),
            }
        } else {
            self.last_local = now;
        }
    }

    /// The timer fired: send due requests, finish the round if it is over.
    #[must_use]
    pub fn handle_timer(&mut self, now: LocalTime, rng: &mut dyn Rng) -> Vec<Action> {
        self.note_local(now);
        // Usually one slot's requests and the next timer: sized so the vector is not
        // regrown request by request.
        let due = self
            .slot_peers
            .get(self.next_slot as usize)
            .map_or(0, Vec::len);
        let mut actions = Vec::with_capacity(due + 3);
        // Bounded: at most one round end and all slots of the next round per call.
        for _ in 0..=(2 * self.cfg.params.request_slots + 2) {
            let a = self.clock.protocol_time(now);
            let deadline = self.next_deadline();
            if a < deadline {
                break;
            }
            if self.next_slot < self.cfg.params.request_slots {
                if self.next_slot == 0 {
                    rng.fill_bytes(&mut self.salt);
                }
                self.send_slot(now, &mut actions);
                self.next_slot += 1;
            } else {
                self.finish_round(now, &mut actions);
            }
        }
        actions.push(Action::SetTimer {
            at: self.clock.local_when(self.next_deadline()),
        });
        actions
    }

    fn send_slot(&mut self, now: LocalTime, actions: &mut Vec<Action>) {
        let per_round = self.cfg.params.exchanges_per_round;
        let slot = self.next_slot as usize;
        // Each request touches its peer's record, cold at n = 250 (see
        // `crate::prefetch`): ask for them all before the first is needed.
        self.prefetch_timer();
        for k in 0..self.slot_peers[slot].len() {
            let peer = self.slot_peers[slot][k].index();
            let round = self.round;
            let seq = self.peers[peer]
                .nonces
                .iter()
                .filter(|i| i.round == round)
                .count() as u16;
            let nonce = derive_nonce(
                self.suite.as_ref(),
                &self.head,
                &self.salt,
                MemberId(peer as u16),
                seq,
            );
            let state = &mut self.peers[peer];
            // Bounded: never more than two rounds' worth of requests outstanding.
            let pending = state
                .nonces
                .iter()
                .filter(|i| i.state == NonceState::Pending)
                .count();
            if pending >= per_round as usize * 2
                && let Some(oldest) = state
                    .nonces
                    .iter()
                    .position(|i| i.state == NonceState::Pending)
            {
                state.nonces.remove(oldest);
            }
            state.nonces.push(Inflight {
                nonce,
                round: self.round,
                created_at: now,
                state: NonceState::Pending,
                chained_after: self.round_accepted,
            });
            let request = Request {
                cluster: self.cfg.cluster,
                round: self.round,
                nonce,
            };
            actions.push(Action::SendRequest {
                to: MemberId(peer as u16),
                request,
            });
        }
    }

    /// Our error bound at `now`: agreed error plus drift since the last update.
    pub fn current_error(&self, now: LocalTime) -> Option<Nanos> {
        aged_error(self.error, self.last_update, self.aging(), now)
    }

    /// Hints the cache lines the next [`Self::handle_timer`] will touch if it sends
    /// the next request slot: the nonces of those peers' records (see
    /// [`crate::prefetch`]). No effect on the protocol.
    pub fn prefetch_timer(&self) {
        for peer in self
            .slot_peers
            .get(self.next_slot as usize)
            .into_iter()
            .flatten()
        {
            if let Some(state) = self.peers.get(peer.index()) {
                // Sending touches only the nonces, alone on the record's first line.
                crate::prefetch::hint(&state.nonces);
            }
        }
    }

    /// Hints the cache lines [`Self::handle_request`] from `from` will touch (see
    /// [`crate::prefetch`]). No effect on the protocol.
    pub fn prefetch_request(&self, from: MemberId) {
        if let Some(answering) = self.answering.get(from.index()) {
            crate::prefetch::hint(answering);
        }
    }

    /// Hints the cache lines [`Self::handle_response`] from `from` will touch (see
    /// [`crate::prefetch`]): the peer's three-line record. No effect on the protocol.
    pub fn prefetch_response(&self, from: MemberId) {
        if let Some(peer) = self.peers.get(from.index()) {
            peer.prefetch();
        }
    }

    /// A peer asks for a reading. Returns the signed reading to send back, or why not.
    pub fn handle_request(
        &mut self,
        from: MemberId,
        request: &Request,
        received_at: LocalTime,
        now: LocalTime,
    ) -> Result<Signed<Reading>, RejectReason> {
        let reading = self.answer_request(from, request, received_at, now)?;
        self.sign_reading(&reading)
    }

    /// Signs `reading` with this node's key (see [`Self::answer_request`]).
    pub fn sign_reading(&self, reading: &Reading) -> Result<Signed<Reading>, RejectReason> {
        Signed::sign(reading, self.signer.as_ref()).map_err(|_| RejectReason::Malformed)
    }

    /// Signs `reading` with this node's key, writing its body into `body` (where a
    /// driver keeps it: the simulator's packed store) and returning the signature: the
    /// parts [`Self::sign_reading`] would put in a [`Signed`].
    pub fn sign_reading_to(
        &self,
        reading: &Reading,
        body: &mut [u8; crate::reading_codec::READING_BODY_BYTES],
    ) -> Signature {
        *body = crate::reading_codec::encode(reading);
        self.signer.sign(Reading::DOMAIN, body)
    }

    /// The checks and bookkeeping of [`Self::handle_request`], returning the reading
    /// unsigned; the nonce counts as answered from here on, so the caller signs it with
    /// [`Self::sign_reading`] (or [`Self::sign_reading_to`]) or sends nothing. For a
    /// driver that signs where it keeps readings, or (the simulator's Byzantine
    /// responders) signs something else or an earlier reading again.
    pub fn answer_request(
        &mut self,
        from: MemberId,
        request: &Request,
        received_at: LocalTime,
        now: LocalTime,
    ) -> Result<Reading, RejectReason> {
        self.note_local(now);
        if from.index() >= self.cfg.params.members || from == self.cfg.me {
            return Err(RejectReason::UnknownPeer);
        }
        if request.cluster != self.cfg.cluster {
            return Err(RejectReason::WrongCluster);
        }
        let limit = 2 * self.cfg.params.exchanges_per_round + 2;
        let round = self.round;
        let error = self.current_error(now);
        let peer = &mut self.answering[from.index()];
        if peer.round != round {
            peer.round = round;
            peer.seen = 0;
            peer.answered.clear();
        }
        peer.seen += 1;
        if peer.seen > limit {
            return Err(RejectReason::TooMany);
        }
        // Never sign two readings for one nonce in one round: a second one would be
        // indistinguishable from double signing (spec §2.6).
        if peer.answered.contains(&request.nonce) {
            return Err(RejectReason::Duplicate);
        }
        peer.answered.push(request.nonce);
        let reading = Reading {
            cluster: self.cfg.cluster,
            responder: self.cfg.me,
            requester: from,
            round: request.round,
            nonce: request.nonce,
            receive: self.clock.protocol_time(received_at),
            transmit: self.clock.protocol_time(now),
            error,
            state: self.health.state(),
            suspects_requester: peer.far_off,
            responder_round: round,
            epoch: self.epoch,
            head: self.head,
            last_correction: self.reported,
        };
        Ok(reading)
    }

    fn reject(&mut self, from: MemberId, reason: RejectReason) -> ResponseOutcome {
        self.rejected.add(reason);
        if let Some(p) = self.peers.get_mut(from.index()) {
            p.cold.rejected.add(reason);
            if reason.is_misbehaviour() {
                p.misbehaved = true;
            }
        }
        ResponseOutcome::Rejected(reason)
    }

    /// A signed reading arrived from `from`, answering a request the driver put on the
    /// wire at `sent_at`; it arrived at `received_at` (both local, as near the wire as
    /// the driver can stamp them).
    pub fn handle_response(
        &mut self,
        from: MemberId,
        signed: &Signed<Reading>,
        sent_at: LocalTime,
        received_at: LocalTime,
    ) -> ResponseOutcome {
        self.handle_response_parts(from, signed.parts(), sent_at, received_at)
    }

    /// As [`Self::handle_response`], for a reading whose body and signature lie
    /// elsewhere (the simulator's packed store).
    pub fn handle_response_parts(
        &mut self,
        from: MemberId,
        signed: SignedParts<'_, Reading>,
        sent_at: LocalTime,
        received_at: LocalTime,
    ) -> ResponseOutcome {
        // No `note_local(received_at)`: the driver stamps a reading when it arrives and
        // hands it over later, so its stamp may be older than the last timer's `now`.
        // Backward steps are detected on the driver's in-order reads (timer, request).
        if from.index() >= self.cfg.params.members || from == self.cfg.me {
            self.rejected.add(RejectReason::UnknownPeer);
            return ResponseOutcome::Rejected(RejectReason::UnknownPeer);
        }
        let batched = self.cfg.batch_verification && !self.peers[from.index()].cold.checked_alone;
        let reading = if batched {
            // The signature is checked with others before anything uses the reading
            // (spec §4.2); the transport has already authenticated the sender.
            match Reading::decode_body(signed.body()) {
                Ok(r) => r,
                Err(_) => return self.reject(from, RejectReason::Malformed),
            }
        } else {
            match signed.verify(self.suite.as_ref(), &self.cfg.members[from.index()]) {
                Ok(r) => r,
                Err(bftime_crypto::SignedError::BadSignature) => {
                    return self.reject(from, RejectReason::BadSignature);
                }
                Err(_) => return self.reject(from, RejectReason::Malformed),
            }
        };
        if reading.responder != from {
            return self.reject(from, RejectReason::WrongResponder);
        }
        if reading.cluster != self.cfg.cluster {
            return self.reject(from, RejectReason::WrongCluster);
        }
        if reading.requester != self.cfg.me {
            return self.reject(from, RejectReason::WrongRequester);
        }
        let peer = &mut self.peers[from.index()];
        let Some(pos) = peer.nonces.iter().position(|i| i.nonce == reading.nonce) else {
            return self.reject(from, RejectReason::UnknownNonce);
        };
        match peer.nonces[pos].state {
            NonceState::Pending => {}
            NonceState::Answered => {
                // Keep a second answer that says something else as evidence of double
                // signing (another signature over the same body is the same statement,
                // and `check-proof` refuses such a pair). An answered nonce is this
                // round's, so the first answer is in the log.
                if self.cfg.detailed_summaries && self.duplicates.len() < 8 {
                    let first = self.accepted_log.iter().find(|r| {
                        r.decode_unverified()
                            .is_ok_and(|o| o.nonce == reading.nonce)
                    });
                    // Under batch verification either answer may be unchecked so far (the
                    // first may even be a forgery already caught and dropped): evidence
                    // needs both genuine.
                    let key = &self.cfg.members[from.index()];
                    let genuine =
                        |s: SignedParts<'_, Reading>| s.verify(self.suite.as_ref(), key).is_ok();
                    if let Some(first) = first
                        && signed.body() != first.body()
                        && (!self.cfg.batch_verification
                            || ((!batched || genuine(signed)) && genuine(first.parts())))
                    {
                        self.duplicates.push((first.clone(), signed.to_signed()));
                    }
                }
                return self.reject(from, RejectReason::Duplicate);
            }
            NonceState::Expired => return self.reject(from, RejectReason::Stale),
        }
        let inflight = peer.nonces[pos];
        if inflight.round != reading.round {
            return self.reject(from, RejectReason::ForeignRound);
        }
        if received_at < sent_at || sent_at < inflight.created_at {
            return self.reject(from, RejectReason::BadTimestamps);
        }
        let t1 = self.clock.protocol_time(sent_at);
        let t4 = self.clock.protocol_time(received_at);
        let sample = match Sample::from_timestamps(
            t1,
            reading.receive,
            reading.transmit,
            t4,
            reading.error,
            reading.state == SyncState::Synced,
        ) {
            Ok(s) => s,
            Err(_) => return self.reject(from, RejectReason::BadTimestamps),
        };
        let drift = self.cfg.params.effective_drift();
        let round = self.round;
        let peer = &mut self.peers[from.index()];
        peer.nonces[pos].state = NonceState::Answered;
        peer.accepted += 1;
        let dropped = self.cfg.batch_verification && peer.cold.dropped_in_round == Some(round);
        // It serves again if it says so in a round after the one it left in, or in
        // an answer to a request we made in a round after its notice came: its round
        // labels may have restarted lower (a restarted process counts quarter-length
        // start-up rounds; a second process with its key may have sent the notice).
        if peer.has_left
            && reading.state == SyncState::Synced
            && (reading.responder_round > peer.cold.left_in_round
                || inflight.round > peer.cold.notice_in_our_round)
        {
            peer.has_left = false;
            peer.cold.left = None;
        }
        if !dropped {
            // Only a serving peer's correction counts. Rounds end at the same cluster
            // times everywhere and requests leave in a round's first half, so the
            // peer's last round ended when our last round did.
            peer.reported_us = reading
                .last_correction
                .filter(|_| reading.state == SyncState::Synced)
                .map(|c| (c.0 / 1000) as i16);
            peer.last = Some((sample, reading.state));
            // Only a serving peer's opinion of us counts.
            peer.suspects_me = reading.suspects_requester && reading.state == SyncState::Synced;
            let keep = match peer.best {
                Some(old) => offset::better(old, sample, t4, drift) == sample,
                None => true,
            };
            if keep {
                peer.best = Some(sample);
            }
        }
        // Every accepted reading advances the head (spec §2.3).
        self.head = advance_head(
            self.suite.as_ref(),
            &self.head,
            &signed.digest(self.suite.as_ref()),
        );
        self.round_accepted = self.round_accepted.saturating_add(1);
        if self.cfg.detailed_summaries {
            self.accepted_log.push(signed.to_signed());
            self.nonce_from.push(inflight.chained_after);
        }
        self.accepted += 1;
        if batched {
            self.unverified.push((from, signed.to_signed()));
            if self.unverified.len() >= VERIFY_BATCH {
                self.verify_unverified();
            }
        }
        ResponseOutcome::Accepted
    }

    /// Checks the signatures of the readings accepted since the last check, as one batch
    /// (spec §4.2). A forged one stays in the head chain, which hashed its bytes (a hash
    /// orders what follows it whatever it hashed), but counts as `bad-signature`, its
    /// peer's sample is dropped for the round (it is not used) and it is no evidence.
    fn verify_unverified(&mut self) {
        if self.unverified.is_empty() {
            return;
        }
        let batch = std::mem::take(&mut self.unverified);
        let members = Arc::clone(&self.cfg.members);
        let items: Vec<BatchItem<'_>> = batch
            .iter()
            .map(|(from, signed)| BatchItem {
                signer: &members[from.index()],
                domain: Reading::DOMAIN,
                body: signed.body(),
                signature: signed.signature(),
            })
            .collect();
        let forged = bftime_crypto::failing_signatures(self.suite.as_ref(), &items);
        drop(items);
        for k in forged {
            let (from, signed) = &batch[k];
            self.drop_forged(*from, signed);
        }
        self.unverified = batch;
        self.unverified.clear();
    }

    fn drop_forged(&mut self, from: MemberId, forged: &Signed<Reading>) {
        let round = self.round;
        let peer = &mut self.peers[from.index()];
        peer.cold.checked_alone = true;
        peer.cold.dropped_in_round = Some(round);
        peer.best = None;
        peer.last = None;
        peer.suspects_me = false;
        peer.reported_us = None;
        // `accepted` counters keep it: it was accepted into the chain (and into the
        // `readings_accepted_total` metric, which never goes down), and is now also
        // counted as `bad-signature`.
        self.duplicates.retain(|(first, _)| first != forged);
        self.forged_from.push(from);
        let _ = self.reject(from, RejectReason::BadSignature);
    }

    /// A peer announced that it leaves service.
    pub fn handle_leaving(&mut self, from: MemberId, signed: &Signed<Leaving>) -> ResponseOutcome {
        if from.index() >= self.cfg.params.members || from == self.cfg.me {
            return ResponseOutcome::Rejected(RejectReason::UnknownPeer);
        }
        match signed.verify(self.suite.as_ref(), &self.cfg.members[from.index()]) {
            Ok(l) if l.member == from && l.cluster == self.cfg.cluster => {
                let our_round = self.round;
                let peer = &mut self.peers[from.index()];
                peer.cold.left = Some(l.reason);
                peer.cold.left_in_round = l.round;
                peer.cold.notice_in_our_round = our_round;
                peer.has_left = true;
                ResponseOutcome::Accepted
            }
            Ok(_) => self.reject(from, RejectReason::WrongResponder),
            Err(bftime_crypto::SignedError::BadSignature) => {
                self.reject(from, RejectReason::BadSignature)
            }
            Err(_) => self.reject(from, RejectReason::Malformed),
        }
    }

    /// The signed notice the driver sends to peers when this node leaves service.
    pub fn leaving_notice(&self, reason: &str) -> Option<Signed<Leaving>> {
        let l = Leaving {
            cluster: self.cfg.cluster,
            member: self.cfg.me,
            round: self.round,
            reason: reason.to_owned(),
        };
        Signed::sign(&l, self.signer.as_ref()).ok()
    }

    /// The driver observed a fault the core cannot see (e.g. its key became unreadable):
    /// quarantine now.
    #[must_use]
    pub fn force_quarantine(&mut self, reason: QuarantineReason) -> Option<Action> {
        self.health
            .force_quarantine(reason)
            .map(Action::StateChanged)
    }

    fn finish_round(&mut self, now: LocalTime, actions: &mut Vec<Action>) {
        // Nothing of this round is used before every reading in it is checked.
        self.verify_unverified();
        for from in self.forged_from.drain(..) {
            actions.push(Action::ReadingRejected {
                from,
                reason: RejectReason::BadSignature,
            });
        }
        let params = self.cfg.params.clone();
        let t = self.clock.protocol_time(now);
        let drift = params.effective_drift();
        let round_len = self.period();
        let serving_before = self.health.serving();
        let bootstrap = !serving_before;
        let uses_peer_error = params.algorithm == Algorithm::Wl;
        let error_limit = params.precision.half();

        // The interval each peer contributes this round (spec §3.2). A known peer's is its
        // measured interval; an unknown one's is unbounded.
        let interval_of = |s: &Sample| {
            if uses_peer_error {
                s.midpoint_interval(t, drift, bootstrap, error_limit)
            } else {
                s.measured_interval(t, drift)
            }
        };

        // 1. Intervals: our own clock is a zero-width interval at offset 0.
        self.intervals.clear();
        self.offsets.clear();
        self.intervals.push(Interval::point(Nanos::ZERO));
        self.offsets.push(Nanos::ZERO);
        let mut suspected_by = 0usize;
        for (i, peer) in self.peers.iter().enumerate() {
            if let Some(ahead) = self.peers.get(i + ROUND_END_PREFETCH_AHEAD) {
                crate::prefetch::hint(&ahead.best);
                crate::prefetch::hint(&ahead.suspects_me);
            }
            let Some(s) = peer.best else { continue };
            let iv = interval_of(&s);
            // An unbounded interval says nothing, and left in it would use up the fault
            // budget: with k of them the f trimmed slots hold only f − k liars (spec §4.2).
            if iv.is_bounded() {
                self.intervals.push(iv);
                self.offsets.push(s.offset);
            }
            if peer.suspects_me {
                suspected_by += 1;
            }
        }
        let usable = self.intervals.len();
        let f = params.faulty;
        let agreement: Option<Agreement> =
            midpoint::fault_tolerant_midpoint(&self.intervals, f, &mut self.scratch).ok();

        // 2. The correction, by algorithm (only `Wl` is bftime; the rest are baselines).
        let correction: Option<Nanos> = if usable < params.quorum() {
            None
        } else {
            match params.algorithm {
                Algorithm::Wl | Algorithm::Byztimed => agreement.map(|a| a.midpoint()),
                Algorithm::Median => midpoint::median(&mut self.offsets),
                Algorithm::Berkeley => {
                    if self.cfg.me == MemberId(0) {
                        midpoint::mean(&self.offsets)
                    } else {
                        self.peers[0].best.map(|s| s.offset)
                    }
                }
            }
        };
        // Our error: how far the surviving measured clocks lie from where we will be.
        let error = match (correction, agreement) {
            (Some(c), Some(m)) if usable >= params.quorum() => {
                Some(Nanos((c.0 - m.low.0).abs().max((m.high.0 - c.0).abs())))
            }
            _ => None,
        };

        // Clocks (own included) within Π/4 of the agreement: a node that does not serve
        // yet needs a quorum of them (spec §6.1).
        let agreeing = match correction {
            Some(c) => {
                let window = Interval::around(c, params.precision.half().half());
                self.intervals
                    .iter()
                    .filter(|iv| iv.gap(&window) == Nanos::ZERO)
                    .count()
            }
            None => 0,
        };

        // 3. Health verdict (spec §6).
        let verdict = self.judge_round(
            &params,
            usable,
            agreeing,
            correction,
            error,
            suspected_by,
            now,
            serving_before,
        );
        // An inconsistent correction moves a node that stays serving by its allowance at
        // most (spec §4.4); the error it reports includes what is left, but the next
        // allowance does not (`residual`), so no pattern of moves takes it further than
        // an allowance per round, and a cluster it cannot catch up with in K rounds still
        // quarantines it. Not moving at all left a correct node where it was until K
        // rounds quarantined it, after one noisy round moved the others.
        let inconsistent = match verdict {
            Verdict::Unhealthy(Unhealthy::Inconsistent { allowance, .. }) => Some(allowance),
            _ => None,
        };

        // 4. Peers: judge each, then reset its per-round state (one pass over the peers:
        // at n = 250 a pass is 60 KB of cold memory per node per round). Nothing after
        // this reads the round's samples but the detailed summary's intervals, kept here.
        let range = agreement.map(|a| a.range());
        let outlier_margin = error.unwrap_or(Nanos::ZERO);
        let far_limit = params.precision.half();
        let detailed = self.cfg.detailed_summaries;
        let me = self.cfg.me.index();
        let mut round_intervals = Vec::new();
        let (peers, answerings, judges) = (&mut self.peers, &mut self.answering, &mut self.judges);
        let reports = &mut self.reports;
        reports.clear();
        for i in 0..peers.len() {
            if let Some(ahead) = peers.get(i + ROUND_END_PREFETCH_AHEAD) {
                ahead.prefetch();
            }
            if let Some(ahead) = answerings.get(i + ROUND_END_PREFETCH_AHEAD) {
                crate::prefetch::hint(ahead);
            }
            if let Some(ahead) = judges.get(i + ROUND_END_PREFETCH_AHEAD) {
                crate::prefetch::hint(ahead);
            }
            let (Some(peer), Some(answering), Some(judge)) =
                (peers.get_mut(i), answerings.get_mut(i), judges.get_mut(i))
            else {
                break;
            };
            if detailed && let Some(s) = peer.best {
                round_intervals.push((MemberId(i as u16), interval_of(&s)));
            }
            if i != me {
                // Only a serving node judges outliers, and only peers that claim to
                // serve: while clocks converge, everyone is far from everyone. An outlier
                // misses the agreed range by more than our own error: correct clocks that
                // are still contracting (e.g. pulled apart by a two-faced minority) miss
                // it by less. Only one beyond Π/2 is *far off*, which is what we tell the
                // peer itself (spec §6: suspects).
                let obs = if peer.misbehaved {
                    Observation::Misbehaved
                } else if let Some(s) = peer.best {
                    let gap = match range {
                        Some(r) if serving_before && s.peer_synced => interval_of(&s).gap(&r),
                        _ => Nanos::ZERO,
                    };
                    if gap > far_limit {
                        Observation::FarOff
                    } else if gap > outlier_margin {
                        Observation::Outlier
                    } else {
                        Observation::Good
                    }
                } else {
                    Observation::Missing
                };
                judge.observe(obs, params.suspect_after);
                answering.far_off = judge.far_off();
            }
            // Unanswered requests become stale; answered and older ones are forgotten.
            peer.nonces.retain_mut(|i| {
                let keep = i.state == NonceState::Pending;
                i.state = NonceState::Expired;
                keep
            });
            if let Some(us) = peer.reported_us.take()
                && !peer.misbehaved
            {
                reports.push(Nanos(i64::from(us) * 1000));
            }
            peer.best = None;
            peer.misbehaved = false;
            peer.suspects_me = false;
        }

        // 5. State transition, then apply the correction: slew only if serving before and after.
        let transition = self.health.on_round(verdict, &params);
        let serving_after = self.health.serving();
        // The round that quarantines a node for inconsistency does not move it either.
        let applied = correction.is_some() && (inconsistent.is_none() || serving_after);
        let mut stepped = false;
        let agreed = correction.unwrap_or(Nanos::ZERO);
        let c = match inconsistent {
            Some(allowance) => Nanos(agreed.0.clamp(-allowance.0, allowance.0)),
            None => agreed,
        };
        // The frequency loop's input from last round, whatever this round does.
        let candidate = self.rate_candidate.take();
        if applied {
            let small = inconsistent.is_none() && c.abs() <= params.slew_budget();
            let mut rate = self.clock.rate();
            // Frequency loop (spec §3.3): last round's correction, less the median of
            // the corrections the peers report for that round. What the whole cluster
            // corrects by every round (a bias every pair measures alike, a boundary
            // adversary's pull) is no frequency error of ours: folded into the rate it
            // would wind every node's rate up to its limit together.
            if let Some((mine, len)) = candidate
                && let Some(theirs) = median_with(&mut self.reports, mine, params.faulty)
            {
                let limit = params.max_drift.0;
                let delta = (RATE_GAIN * (mine.0 - theirs.0) as f64 / len.0 as f64 * 1e6)
                    .clamp(-limit / 10.0, limit / 10.0);
                rate = Ppm((rate.0 * (1.0 - RATE_LEAK) + delta).clamp(-limit, limit));
            }
            // Only corrections that drift alone could explain say anything about our
            // frequency; larger ones are phase errors (start-up, attacks) and would
            // throw the loop to its limits.
            let drift_sized = c.abs() <= round_len.scale(Ppm(2.0 * drift.0));
            if params.algorithm == Algorithm::Wl
                && drift_sized
                && self.last_round_small
                && inconsistent.is_none()
            {
                self.rate_candidate = Some((c, round_len));
            }
            if serving_before && serving_after {
                self.clock
                    .slew(now, c, rate, params.round_period, params.max_slew);
                if c < -params.precision {
                    // Beyond what an epoch promises (spec §2.6): start a new one.
                    self.epoch = self.epoch.wrapping_add(1);
                }
            } else {
                self.clock.step(now, c, rate);
                stepped = true;
            }
            self.last_round_small = small;
            self.last_correction = c;
            if let Some(e) = error {
                self.residual = (agreed - c).abs();
                self.error = Some(e.sat_add(self.residual));
                self.last_update = now;
            }
        } else {
            self.last_round_small = false;
        }
        self.reported = crate::reading_codec::wire_correction(self.rate_candidate.map(|(c, _)| c));
        if let Some(tr) = transition {
            actions.push(Action::StateChanged(tr));
        }
        if stepped || transition.is_some() {
            self.epoch = self.epoch.wrapping_add(1);
        }

        // 6. Summary.
        let summary = RoundSummary {
            round: self.round,
            state: self.health.state(),
            correction: c,
            applied,
            stepped,
            error: self.error,
            rate: self.clock.rate(),
            readings_used: usable,
            verdict: match verdict {
                Verdict::Healthy => "healthy".into(),
                // Debug, not Display: the exact nanoseconds, which tests and auditors
                // read back (Display rounds them for people).
                Verdict::Unhealthy(u) => format!("unhealthy: {u:?}"),
                Verdict::Hard(h) => format!("hard violation: {h:?}"),
            },
            suspects: self.suspects().map(|(m, _)| m).collect(),
            intervals: round_intervals,
            readings: std::mem::take(&mut self.accepted_log),
            nonce_from: std::mem::take(&mut self.nonce_from),
            duplicates: std::mem::take(&mut self.duplicates),
            head_used: self.round_head,
            salt: self.salt,
            head: self.head,
            epoch: self.epoch,
        };
        self.round_head = self.head;
        self.round_accepted = 0;
        self.last_answered = usable.saturating_sub(1);
        actions.push(Action::RoundCompleted(Box::new(summary)));

        // 7. Next round. If the next one has already gone by too (the local clock
        // jumped forward, or the process was paused for more than a round), start the
        // one the clock is in now: running the missed rounds back to back, each a
        // moment long, would judge them all short of readings and blame the network
        // for what the clock did.
        let missed = self.clock.protocol_time(now) >= self.round_end() + self.period();
        if missed {
            // The next round's correction builds up over the rounds skipped too: it is
            // no one-round sample for the frequency loop.
            self.last_round_small = false;
        }
        if stepped || transition.is_some() || missed {
            self.align_rounds(now);
        } else {
            self.round += 1;
            self.round_start = self.round_end();
            self.next_slot = 0;
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn judge_round(
        &mut self,
        params: &Params,
        usable: usize,
        agreeing: usize,
        correction: Option<Nanos>,
        error: Option<Nanos>,
        suspected_by: usize,
        now: LocalTime,
        serving: bool,
    ) -> Verdict {
        if let Some(v) = self.pending_violation.take() {
            return Verdict::Hard(v);
        }
        let (Some(c), Some(e)) = (correction, error) else {
            return Verdict::Unhealthy(Unhealthy::TooFewReadings {
                got: usable,
                need: params.quorum(),
            });
        };
        if usable < params.quorum() {
            return Verdict::Unhealthy(Unhealthy::TooFewReadings {
                got: usable,
                need: params.quorum(),
            });
        }
        if serving {
            if c.abs() - e > params.precision {
                return Verdict::Hard(HardViolation::OffsetBeyondBound {
                    offset: c,
                    error: e,
                    bound: params.precision,
                });
            }
            let threshold = params.faulty + 1;
            if suspected_by >= threshold {
                return Verdict::Hard(HardViolation::SuspectedByPeers {
                    count: suspected_by,
                    threshold,
                });
            }
        }
        let limit = params.precision.half();
        if e >= limit {
            return Verdict::Unhealthy(Unhealthy::ErrorTooLarge { error: e, limit });
        }
        if !serving
            && matches!(params.algorithm, Algorithm::Wl | Algorithm::Byztimed)
            && agreeing < params.quorum()
        {
            return Verdict::Unhealthy(Unhealthy::NoQuorumAgrees {
                agree: agreeing,
                need: params.quorum(),
            });
        }
        if serving && matches!(params.algorithm, Algorithm::Wl | Algorithm::Byztimed) {
            // Our aged error, without what an inconsistent round left us to catch up.
            let prev = self
                .current_error(now)
                .map_or(Nanos::INFINITE, |p| p.sat_add(-self.residual));
            let allowance = prev.sat_add(e);
            if c.abs() > allowance {
                return Verdict::Unhealthy(Unhealthy::Inconsistent {
                    correction: c,
                    allowance,
                });
            }
        }
        let budget = params.slew_budget();
        if c.abs() > budget {
            return Verdict::Unhealthy(Unhealthy::CorrectionTooLarge {
                correction: c,
                budget,
            });
        }
        Verdict::Healthy
    }

    /// Cluster time for applications, with its error bounds.
    pub fn now(&self, local: LocalTime) -> TimeReading {
        self.time_source().now(local)
    }

    /// Everything served time depends on, copied out: it gives the same answer as the
    /// core for any local time until the core's next timer event (only a timer event changes
    /// the clock, the error, or the state). The node's API serves `/now` from it without
    /// waiting on the core's loop.
    pub fn time_source(&self) -> TimeSource {
        TimeSource {
            clock: self.clock.clone(),
            error: self.error,
            last_update: self.last_update,
            aging: self.aging(),
            state: self.health.state(),
            serving: self.health.serving(),
        }
    }

    /// How fast the error bound grows between updates: 2ρ_eff.
    fn aging(&self) -> Ppm {
        Ppm(2.0 * self.cfg.params.effective_drift().0)
    }

    /// Readings rejected since start, by reason.
    pub fn rejected(&self) -> &RejectCounts {
        &self.rejected
    }

    /// The observable state (for `/status`, `bftime status`, metrics and tests).
    pub fn snapshot(&self, local: LocalTime) -> NodeSnapshot {
        self.snapshot_with(local, true)
    }

    /// [`Core::snapshot`] without the per-peer rows (empty `peers`): what a poller that
    /// wants only the summary asks for, every second, without paying for n rows.
    pub fn snapshot_summary(&self, local: LocalTime) -> NodeSnapshot {
        self.snapshot_with(local, false)
    }

    fn snapshot_with(&self, local: LocalTime, with_peers: bool) -> NodeSnapshot {
        let rows =
            self.peers
                .iter()
                .zip(&self.judges)
                .take(if with_peers { self.peers.len() } else { 0 });
        let peers = rows
            .enumerate()
            .filter(|(i, _)| *i != self.cfg.me.index())
            .map(|(i, (p, judge))| PeerRow {
                member: MemberId(i as u16),
                offset_ns: p.last.map(|(s, _)| s.offset.0),
                delay_ns: p.last.map(|(s, _)| s.delay.0),
                error_ns: p.last.and_then(|(s, _)| s.peer_error.map(|e| e.0)),
                state: p.last.map(|(_, st)| st),
                suspect: judge.suspect(),
                accepted: p.accepted,
                rejected: p.cold.rejected,
                left: p.cold.left.clone(),
            })
            .collect();
        NodeSnapshot {
            member: self.cfg.me,
            state: self.health.state(),
            serving: self.health.serving(),
            quarantine_reason: self.health.reason().map(|r| r.to_string()),
            quarantine_code: self.health.reason().map(|r| r.code().to_owned()),
            round: self.round,
            local_time_ns: local.0,
            cluster_time_ns: self.clock.served_time(local).0,
            offset_ns: self.clock.offset(local).0,
            applied_ns: self.clock.applied(local).0,
            last_correction_ns: self.last_correction.0,
            pending_slew_ns: self.clock.pending_slew(local).0,
            error_ns: self.current_error(local).map(|e| e.0),
            rate_ppm: self.clock.rate().0,
            members: self.cfg.params.members,
            faulty_tolerated: self.cfg.params.faulty,
            members_answered: self.last_answered,
            readings_accepted: self.accepted,
            readings_rejected: self.rejected,
            peers,
        }
    }
}

/// The error bound `error`, set at `last_update`, grown at `aging` until `now`.
fn aged_error(
    error: Option<Nanos>,
    last_update: LocalTime,
    aging: Ppm,
    now: LocalTime,
) -> Option<Nanos> {
    error.map(|e| e.sat_add((now - last_update).scale(aging)))
}

/// The core's served time, detached from the core (see [`Core::time_source`]).
#[derive(Debug, Clone)]
pub struct TimeSource {
    clock: ClusterClock,
    error: Option<Nanos>,
    last_update: LocalTime,
    aging: Ppm,
    state: SyncState,
    serving: bool,
}

impl TimeSource {
    /// Cluster time at `local`, as the core would serve it.
    pub fn now(&self, local: LocalTime) -> TimeReading {
        let cluster = self.clock.served_time(local);
        let err = aged_error(self.error, self.last_update, self.aging, local)
            .map(|e| e.sat_add(self.clock.pending_slew(local).abs()))
            .unwrap_or(Nanos::INFINITE);
        TimeReading {
            cluster,
            earliest: cluster - err,
            latest: cluster + err,
            state: self.state,
            serving: self.serving,
        }
    }
}

/// The median of `reports` and `mine`, if there are at least 2f + 1 of them: then at
/// most f are a faulty member's, and the median lies between two correct values. The
/// median of an even count is the mean of the middle two ([`midpoint::middle`]): the
/// lower one alone sits below the middle, and every node measuring its own correction
/// against it would push every rate up (a 4-node cluster wound up to +200 ppm in three
/// minutes). `reports` is reordered.
fn median_with(reports: &mut Vec<Nanos>, mine: Nanos, f: usize) -> Option<Nanos> {
    reports.push(mine);
    if reports.len() < 2 * f + 1 {
        return None;
    }
    midpoint::middle(reports)
}

#[cfg(test)]
mod layout {
    use super::*;

    /// The per-peer records are n² of the simulator's memory and a cache miss on almost
    /// every exchange: their sizes are a performance property, pinned here.
    #[test]
    fn per_peer_records_fill_whole_cache_lines() {
        assert_eq!(std::mem::size_of::<PeerState>(), 3 * 64);
        assert_eq!(std::mem::align_of::<PeerState>(), 64);
        assert_eq!(std::mem::size_of::<Answering>(), 64);
        assert_eq!(std::mem::align_of::<Answering>(), 64);
    }

    /// `PeerState::prefetch` hints one field per cache line; the compiler chooses the
    /// layout, so check that the hinted fields still start on every line.
    #[test]
    fn peer_record_hints_cover_every_line() {
        use std::mem::offset_of;
        let mut lines: Vec<usize> = [
            offset_of!(PeerState, best),
            offset_of!(PeerState, last),
            offset_of!(PeerState, cold),
            offset_of!(PeerState, nonces),
            offset_of!(PeerState, accepted),
            offset_of!(PeerState, suspects_me),
        ]
        .iter()
        .map(|offset| offset / 64)
        .collect();
        lines.sort_unstable();
        lines.dedup();
        assert_eq!(lines, vec![0, 1, 2]);
        // `prefetch_timer` hints only the nonces: they must fill one line by themselves.
        assert_eq!(offset_of!(PeerState, nonces), 0);
        assert_eq!(std::mem::size_of::<SmallVec<[Inflight; 1]>>(), 64);
    }

    /// The cache hints take any member id (a driver may pass what a message claims) and
    /// change nothing: a core hinted at every step answers exactly like one never hinted.
    #[test]
    fn prefetch_hints_accept_any_member_and_change_nothing() {
        use bftime_crypto::{Ed25519Suite, NodeKey};
        let keys: Vec<NodeKey> = (0..4u8).map(|i| NodeKey::from_seed(&[i + 1; 32])).collect();
        let members: Arc<[_]> = keys.iter().map(|k| k.public_key()).collect();
        let core = |hinted: bool| {
            let cfg = CoreConfig {
                me: MemberId(0),
                members: members.clone(),
                cluster: 3,
                params: Params::for_members(4),
                detailed_summaries: false,
                incarnation: 1,
                batch_verification: false,
            };
            let key = NodeKey::from_seed(&[1; 32]);
            let (mut core, _) = Core::new(
                cfg,
                Box::new(key),
                Arc::new(Ed25519Suite),
                LocalTime(0),
                Nanos::ZERO,
            )
            .expect("core");
            let request = Request {
                cluster: 3,
                round: 1,
                nonce: [7; 32],
            };
            let mut out = Vec::new();
            for step in 0..4u16 {
                if hinted {
                    for m in [0, 1, 3, 4, 999, u16::MAX] {
                        core.prefetch_request(MemberId(m));
                        core.prefetch_response(MemberId(m));
                    }
                    core.prefetch_timer();
                }
                let now = LocalTime(i64::from(step) * 1_000_000);
                let signed = core.handle_request(MemberId(1 + step % 3), &request, now, now);
                out.push(signed.map(|s| s.body().to_vec()));
            }
            out
        };
        assert_eq!(core(true), core(false));
    }
}
