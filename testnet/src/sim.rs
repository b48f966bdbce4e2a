//! The deterministic discrete-event simulator (design §8). Seeded, virtual time in
//! nanoseconds; drives the real `bftime-protocol` core through the same calls the node
//! makes. Same scenario and seed ⇒ the same run, event for event, on any number of
//! threads.
//!
//! # How time advances
//! No message arrives sooner than the network's minimum one-way delay L after it was
//! sent, and only timers and requests send (a response is only recorded). So from the
//! earliest pending timer or request at S, every node's events before S + L depend only
//! on that node's own state: nothing another node does in the window can reach it
//! before the window ends. The simulator therefore runs in windows [T, S + L), T the
//! earliest pending event of any kind (between a round's request bursts only late
//! responses are pending, and such a window takes them all at once), and runs a window
//! node by node, each node's events in (time, key) order: the same run as one global
//! time order, with each node's state kept hot while its events run.
//! With `threads = k` the nodes are dealt round-robin into k ranges, each with its own
//! event queue; a busy window runs the ranges in parallel, on the calling thread and
//! k − 1 workers that live for the whole run (a quiet window runs them one after
//! another, cheaper than waking a worker), and messages for another range wait for the
//! window to close. Nothing in the run depends on the order ranges or nodes are
//! visited in: each node draws its network randomness from its own stream, and events
//! that fall on the same nanosecond are ordered by (creating node, creation count), not
//! by delivery. So the report is the same for any `threads`, and only `wall_ms` changes
//! (a test checks this). Ground-truth measurements cut windows, so they see every node
//! at the same instant; so do the `boundary` adversary's looks at the correct clocks
//! (every P/32), so what it sees does not depend on where windows fall.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use bftime_crypto::{
    CryptoSuite, Ed25519Suite, FastSuite, NodeKey, Signed, SignedParts, Signer, suite::FastSigner,
};
use bftime_protocol::{
    Action, Core, CoreConfig, LocalTime, MemberId, Nanos, Params, Reading, Request,
    ResponseOutcome, SyncState,
};
use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};

use crate::clockmodel::{ClockFault, Oscillator};
use crate::packed::ReadingStore;
use crate::queue::{Entry, SplitQueue, WindowSorter};
use crate::report::{Ground, SimReport};
use crate::scenario::Scenario;
use crate::strategy::Strategy;

/// What a simulated node is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Correct,
    /// Honest software, but its local clock steps or stalls mid-run.
    ClockFaulty,
    Byzantine(Strategy),
}

struct SimNode {
    core: Core,
    osc: Oscillator,
    role: Role,
    /// Randomness the core asks for (salts).
    rng: Xoshiro256PlusPlus,
    /// The network's and the adversary's randomness for what this node sends: one
    /// stream per node, so the run does not depend on the order nodes are visited in.
    net_rng: Xoshiro256PlusPlus,
    timer_gen: u64,
    timer_target: LocalTime,
    replay_cache: HashMap<MemberId, Signed<Reading>>,
    ever_quarantined: bool,
    /// Tie-break key of the next event this node creates (see [`SimNode::next_key`]).
    created: u64,
}

impl SimNode {
    /// A key ordering events that fall on the same nanosecond: by creating node, then
    /// by creation order there. It depends only on what each node did, never on which
    /// thread ran it or when its messages were delivered.
    fn next_key(&mut self, me: usize) -> u64 {
        self.created += 1;
        ((me as u64) << 44) | (self.created & ((1 << 44) - 1))
    }
}

/// Something that happens to a node. `R` stands for a response's reading: its slot in a
/// reading store (see [`Queued`]), or `Infallible` where no response can be (see
/// [`Message`]).
enum Event<R> {
    Timer {
        generation: u64,
    },
    Request {
        from: u32,
        request: Request,
        sent_local: LocalTime,
    },
    Response {
        from: u32,
        reading: R,
        sent_local: LocalTime,
    },
}

impl<R> Event<R> {
    /// Whether running this event may send a message. A response never does: the
    /// requester only records it. So a window may run past the earliest response, up to
    /// the minimum delay after the earliest timer or request (see [`SplitQueue`]).
    fn sends(&self) -> bool {
        !matches!(self, Event::Response { .. })
    }

    /// The same event with its reading (if any) replaced by `f(reading)`.
    fn map_reading<S>(self, f: impl FnOnce(R) -> S) -> Event<S> {
        match self.try_map_reading(|r| Some(f(r))) {
            Some(ev) => ev,
            None => unreachable!("the mapping always returns Some"),
        }
    }

    /// As [`Event::map_reading`]; `None` if `f` gives none.
    fn try_map_reading<S>(self, f: impl FnOnce(R) -> Option<S>) -> Option<Event<S>> {
        Some(match self {
            Event::Timer { generation } => Event::Timer { generation },
            Event::Request {
                from,
                request,
                sent_local,
            } => Event::Request {
                from,
                request,
                sent_local,
            },
            Event::Response {
                from,
                reading,
                sent_local,
            } => Event::Response {
                from,
                reading: f(reading)?,
                sent_local,
            },
        })
    }
}

/// A timer or a request as any kind of event (it has no reading to convert).
fn without_reading<R>(ev: Event<Infallible>) -> Event<R> {
    ev.map_reading(|never| match never {})
}

/// What a range's queue holds: an event whose reading waits in [`Traffic::readings`]
/// (packed, see [`ReadingStore`]), named by its slot there. A queue slot is as large as
/// its largest event, and a signed reading is 232 bytes against about 60 for a request
/// or a timer, so inline readings made every request and timer drag four extra cache
/// lines through the queue.
type Queued = Event<u32>;

/// A message sent in the current window. A timer or a request carries no reading
/// (`Infallible`): a response travels by [`Traffic::send_response`], its reading packed
/// in a slot, so the messages moved around here stay small (an inline signed reading
/// made each one 264 bytes, copied at every move).
struct Message<R = Infallible> {
    at: i64,
    key: u64,
    to: u32,
    event: Event<R>,
}

/// What one range sent another in a window: messages whose readings wait, packed, in
/// the bag's own store (a cloned `Signed` moved through a `Vec` copied each reading
/// three more times). Delivered when the window closes; the emptied bag then goes back
/// to its sender, keeping its capacity and warm slots.
#[derive(Default)]
struct MailBag {
    mail: Vec<Message<u32>>,
    readings: ReadingStore,
}

impl MailBag {
    /// Empties the bag, each message's reading moved into `readings` (the receiver's
    /// store) and renamed by its slot there. The bag keeps its capacity.
    fn unpack<'a>(
        &'a mut self,
        readings: &'a mut ReadingStore,
    ) -> impl Iterator<Item = Message<u32>> + 'a {
        let MailBag {
            mail,
            readings: own,
        } = self;
        mail.drain(..).filter_map(move |m| {
            let event = m
                .event
                .try_map_reading(|slot| readings.move_from(own, slot))?;
            Some(Message { event, ..m })
        })
    }
}

/// What every node reads during a window (nothing in it changes within one).
struct Shared<'a> {
    sc: &'a Scenario,
    ns: &'a ScenarioNs,
    period_ns: i64,
    /// The `boundary` adversary's view: how far the highest correct protocol clock was
    /// ahead of true time when last looked at (see [`Simulation::refresh_oracle`]).
    oracle_top: i64,
    trace: bool,
}

/// A range of nodes (see [`Traffic::owns`]) and their traffic. Aligned so two ranges'
/// hot fields never share a cache line between threads.
#[repr(align(128))]
struct Range {
    nodes: Vec<SimNode>,
    traffic: Traffic,
}

/// A range's pending events (one queue for the whole range, so the thread running it
/// works on one hot queue) and what its nodes sent in the current window.
struct Traffic {
    /// This range's number: it holds nodes `me`, `me + ranges`, `me + 2 × ranges`…
    me: usize,
    ranges: usize,
    /// log2(`ranges`) when it is a power of two.
    ranges_log2: Option<u32>,
    len: usize,
    queue: SplitQueue<Queued>,
    /// The readings of queued responses.
    readings: ReadingStore,
    /// The window being run: its end, its events in run order (kept for their
    /// capacity), and the events a node schedules for itself inside it (a timer due
    /// before the window ends; rare).
    window_end: i64,
    window: Vec<Entry>,
    sorter: WindowSorter,
    local: Vec<Message>,
    /// Messages from each range for this one, delivered when the next window opens.
    inbox: Vec<MailBag>,
    /// Messages for other ranges, by destination range, until the window closes.
    outbox: Vec<MailBag>,
    exchanges: u64,
    rejected: HashMap<&'static str, u64>,
}

impl Traffic {
    /// Whether node `i` is in this range. Nodes are dealt round-robin, not cut into
    /// contiguous blocks: the faulty nodes are the last ones, and a block holding all of
    /// them had 8–15 % more work than the others, which waited for it every window.
    fn owns(&self, i: usize) -> bool {
        self.range_of(i) == self.me
    }

    /// The range node `i` is in.
    fn range_of(&self, i: usize) -> usize {
        // A mask, not a division, for the usual power-of-two counts (asked on every
        // message sent).
        match self.ranges_log2 {
            Some(k) => i & ((1 << k) - 1),
            None => i % self.ranges,
        }
    }

    /// Where node `i` (in this range) sits in the range's node list.
    fn local_index(&self, i: usize) -> usize {
        match self.ranges_log2 {
            Some(k) => i >> k,
            None => i / self.ranges,
        }
    }

    /// Sends `m`. Nothing another node sends in a window arrives before it ends, so a
    /// message within the range goes straight into its queue, and one for another range
    /// waits for the window to close. Only a node's own timer can fall inside the
    /// window: it runs before the window ends, in order with the node's other events.
    fn send(&mut self, m: Message) {
        let to = m.to as usize;
        if !self.owns(to) {
            debug_assert!(
                m.at >= self.window_end,
                "a message arrives inside its window"
            );
            let r = self.range_of(to);
            let bag = &mut self.outbox[r];
            bag.mail.push(Message {
                at: m.at,
                key: m.key,
                to: m.to,
                event: without_reading(m.event),
            });
        } else if m.at < self.window_end {
            debug_assert!(
                matches!(m.event, Event::Timer { .. }),
                "only a node's own timer may fall inside the window"
            );
            self.local.push(m);
        } else {
            self.enqueue(m);
        }
    }

    /// Sends a response: as [`Traffic::send`], its reading packed straight into a slot
    /// of the store it waits in (the range's, or the mail's for another range). A
    /// response never arrives inside its window (it takes at least the window length).
    fn send_response(
        &mut self,
        at: i64,
        key: u64,
        to: u32,
        from: u32,
        sent_local: LocalTime,
        store_reading: impl FnOnce(&mut ReadingStore) -> u32,
    ) {
        debug_assert!(at >= self.window_end, "a message arrives inside its window");
        let response = |reading| Event::Response {
            from,
            reading,
            sent_local,
        };
        let r = self.range_of(to as usize);
        if r != self.me {
            let bag = &mut self.outbox[r];
            let event = response(store_reading(&mut bag.readings));
            bag.mail.push(Message { at, key, to, event });
        } else {
            let event = response(store_reading(&mut self.readings));
            self.queue.push(at, key, to, event, false);
        }
    }

    /// Queues `m` for its node (in this range).
    fn enqueue(&mut self, m: Message) {
        let queued = without_reading(m.event);
        let sends = queued.sends();
        self.queue.push(m.at, m.key, m.to, queued, sends);
    }

    /// The earliest pending event, delivered or not.
    fn next_time(&self) -> Option<i64> {
        let mailed = self.inbox.iter().flat_map(|b| &b.mail).map(|m| m.at);
        self.queue.peek_time().into_iter().chain(mailed).min()
    }

    /// The earliest pending event that may send a message, delivered or not.
    fn next_sender_time(&self) -> Option<i64> {
        let mailed = self
            .inbox
            .iter()
            .flat_map(|b| &b.mail)
            .filter(|m| m.event.sends())
            .map(|m| m.at);
        self.queue
            .peek_sender_time()
            .into_iter()
            .chain(mailed)
            .min()
    }

    /// How many events are due before `t`, counting no further than `cap`.
    fn due_before(&self, t: i64, cap: usize) -> usize {
        let mailed = self
            .inbox
            .iter()
            .flat_map(|b| &b.mail)
            .filter(|m| m.at < t)
            .count();
        (self.queue.due_before_capped(t, cap) + mailed).min(cap)
    }
}

/// A running simulation.
#[expect(
    missing_debug_implementations,
    reason = "holds every node's core; print the report instead"
)]
pub struct Simulation {
    sc: Scenario,
    nodes: Vec<SimNode>,
    /// Every node's first timer, queued when the run starts.
    initial: Vec<Message>,
    period_ns: i64,
    /// When the `boundary` adversary last looked, and the highest correct protocol clock
    /// then, less that instant.
    oracle: (i64, i64),
    ground: Ground,
    exchanges: u64,
    rejected: HashMap<&'static str, u64>,
    suite: Arc<dyn CryptoSuite>,
    /// The scenario's network and lie figures in nanoseconds, converted once.
    ns: ScenarioNs,
    /// Worker threads for busy windows (1: everything on the calling thread).
    threads: usize,
    /// `BFTIME_SIM_TRACE` set: print per-round ground truth, state changes and the first
    /// two nodes' round summaries to stderr.
    trace: bool,
    /// Print the round reached to stderr while running (see [`Simulation::with_progress`]).
    progress: bool,
}

/// Scenario figures used on every message, in nanoseconds.
#[derive(Clone, Copy)]
struct ScenarioNs {
    delay: i64,
    asymmetry_half: i64,
    /// Added to every request's delay (`--role-asymmetry-ms`).
    request_extra: i64,
    jitter: i64,
    lie: i64,
    /// The shortest one-way delay any message can have (at least 1 ns): the window length.
    lookahead: i64,
}

/// Node `i`'s key in a run with this seed (deterministic, so runs are reproducible).
fn node_key(run_seed: u64, i: usize) -> NodeKey {
    let mut seed = [0u8; 32];
    seed[..8].copy_from_slice(&run_seed.to_le_bytes());
    seed[8..16].copy_from_slice(&(i as u64).to_le_bytes());
    NodeKey::from_seed(&seed)
}

fn ms(x: f64) -> i64 {
    (x * 1e6).round() as i64
}

impl Simulation {
    /// Builds every node. Faulty nodes are the last `faulty` members; clock-faulty ones
    /// come just before them; partitioned ones just before those.
    pub fn new(sc: Scenario) -> Result<Simulation, crate::scenario::ScenarioError> {
        sc.validate()?;
        let n = sc.nodes;
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(sc.seed);
        let ed25519 = sc.uses_ed25519();
        let suite: Arc<dyn CryptoSuite> = if ed25519 {
            Arc::new(Ed25519Suite)
        } else {
            Arc::new(FastSuite)
        };
        let keys: Vec<NodeKey> = (0..n).map(|i| node_key(sc.seed, i)).collect();
        let members: Arc<[_]> = keys.iter().map(|k| k.public_key()).collect();
        let mut params = Params::for_members(n);
        params.round_period = Nanos(ms(sc.round_period_ms));
        params.precision = Nanos(ms(sc.precision_ms));
        params.max_drift = bftime_protocol::Ppm((sc.drift_ppm + sc.wander_ppm).max(1.0) * 1.5);
        params.max_slew = bftime_protocol::Ppm((params.max_drift.0 * 5.0).max(10_000.0));
        params.algorithm = sc.algorithm;
        params
            .validate()
            .map_err(|e| crate::scenario::ScenarioError(e.to_string()))?;
        let period_ns = params.round_period.0;
        let byz_start = n - sc.faulty;
        let clock_fault_start = byz_start - sc.clock_faults;
        let run_ns = period_ns * sc.rounds as i64;
        let mut nodes = Vec::with_capacity(n);
        let mut initial = Vec::with_capacity(n);
        for (i, key) in keys.into_iter().enumerate() {
            let role = if i >= byz_start {
                Role::Byzantine(sc.strategy.for_faulty(i - byz_start))
            } else if i >= clock_fault_start {
                Role::ClockFaulty
            } else {
                Role::Correct
            };
            let fault = (role == Role::ClockFaulty).then(|| {
                let at_ns = run_ns / 2 + rng.random_range(0..period_ns);
                if (i - clock_fault_start).is_multiple_of(2) {
                    ClockFault::Step {
                        at_ns,
                        amount_ns: 2 * ms(sc.precision_ms) + ms(1_000.0),
                    }
                } else {
                    ClockFault::Stall {
                        at_ns,
                        duration_ns: 2 * ms(sc.precision_ms) + ms(1_000.0),
                    }
                }
            });
            let start_ns = 1_000_000_000_000
                + rng.random_range(-ms(sc.initial_offset_ms)..=ms(sc.initial_offset_ms));
            let drift = rng.random_range(-sc.drift_ppm..=sc.drift_ppm) * 1e-6;
            let phase = rng.random_range(0.0..std::f64::consts::TAU);
            let osc = Oscillator::new(start_ns, drift, sc.wander_ppm * 1e-6, 600e9, phase, fault);
            let cfg = CoreConfig {
                me: MemberId(i as u16),
                members: members.clone(),
                cluster: sc.seed,
                params: params.clone(),
                detailed_summaries: false,
                incarnation: sc.seed.rotate_left(17) ^ i as u64,
                batch_verification: false,
            };
            let signer: Box<dyn Signer> = if ed25519 {
                Box::new(key)
            } else {
                Box::new(FastSigner::new(key.public_key()))
            };
            let local0 = osc.local(0);
            let (core, actions) = Core::new(cfg, signer, suite.clone(), local0, Nanos::ZERO)
                .map_err(|e| crate::scenario::ScenarioError(e.to_string()))?;
            let mut node = SimNode {
                core,
                osc,
                role,
                rng: Xoshiro256PlusPlus::seed_from_u64(
                    sc.seed ^ (i as u64).wrapping_mul(0x9E37_79B9),
                ),
                net_rng: Xoshiro256PlusPlus::seed_from_u64(
                    sc.seed.wrapping_add(0x5EED) ^ (i as u64).wrapping_mul(0xA24B_AED4_963E_E407),
                ),
                timer_gen: 0,
                timer_target: LocalTime(0),
                replay_cache: HashMap::new(),
                ever_quarantined: false,
                created: 0,
            };
            for a in actions {
                if let Action::SetTimer { at } = a {
                    node.timer_gen += 1;
                    node.timer_target = at;
                    let generation = node.timer_gen;
                    initial.push(Message {
                        at: node.osc.true_time_for(at, 0),
                        key: node.next_key(i),
                        to: i as u32,
                        event: Event::Timer { generation },
                    });
                }
            }
            nodes.push(node);
        }
        let min_delay = ms(sc.delay_ms) - ms(sc.asymmetry_ms) / 2;
        Ok(Simulation {
            ground: Ground::new(sc.rounds as usize),
            nodes,
            initial,
            period_ns,
            oracle: (i64::MIN / 2, 0),
            exchanges: 0,
            rejected: HashMap::new(),
            suite,
            threads: 1,
            trace: std::env::var_os("BFTIME_SIM_TRACE").is_some(),
            progress: false,
            ns: ScenarioNs {
                delay: ms(sc.delay_ms),
                asymmetry_half: ms(sc.asymmetry_ms) / 2,
                request_extra: ms(sc.role_asymmetry_ms),
                jitter: ms(sc.jitter_ms),
                lie: ms(sc.lie_ms),
                lookahead: min_delay.max(1),
            },
            sc,
        })
    }

    /// Runs busy windows on up to `threads` threads (1, the default, uses only the
    /// calling thread). The report does not depend on it, only `wall_ms` does.
    pub fn with_threads(mut self, threads: usize) -> Simulation {
        self.threads = threads.max(1);
        self
    }

    /// With `on`, prints the simulated round and the wall time so far to stderr about
    /// twice a second, on one line that the end of the run clears. Nothing else changes.
    pub fn with_progress(mut self, on: bool) -> Simulation {
        self.progress = on;
        self
    }

    /// Runs to the end and reports.
    pub fn run(mut self) -> SimReport {
        let started = Instant::now();
        let mut progress = crate::progress::Progress::new(self.progress, self.sc.rounds);
        let end = self.period_ns * self.sc.rounds as i64;
        let period_ns = self.period_ns;
        let measure_at = move |k: u64| k as i64 * period_ns + period_ns / 2;
        let mut next_measure = 0u64;
        let n = self.nodes.len();
        let ranges = self.threads.clamp(1, n.max(1));
        // The nodes are dealt into their ranges for the run (see `Traffic::owns`) and
        // come back in order for the report.
        let mut dealt: Vec<Vec<SimNode>> = (0..ranges).map(|_| Vec::new()).collect();
        for (i, node) in std::mem::take(&mut self.nodes).into_iter().enumerate() {
            dealt[i % ranges].push(node);
        }
        let mut work: Vec<Mutex<Range>> = Vec::with_capacity(ranges);
        for (d, nodes) in dealt.into_iter().enumerate() {
            work.push(Mutex::new(Range {
                traffic: Traffic {
                    me: d,
                    ranges,
                    ranges_log2: ranges.is_power_of_two().then(|| ranges.trailing_zeros()),
                    len: nodes.len(),
                    // Buckets a quarter of a window long: a window takes a few whole
                    // buckets and filters at most one.
                    queue: SplitQueue::new((self.ns.lookahead / 4).max(1) as u64),
                    readings: ReadingStore::default(),
                    window_end: 0,
                    window: Vec::new(),
                    sorter: WindowSorter::default(),
                    local: Vec::new(),
                    inbox: (0..ranges).map(|_| MailBag::default()).collect(),
                    outbox: (0..ranges).map(|_| MailBag::default()).collect(),
                    exchanges: 0,
                    rejected: HashMap::new(),
                },
                nodes,
            }));
        }
        for m in std::mem::take(&mut self.initial) {
            lock(&work[m.to as usize % ranges]).traffic.enqueue(m);
        }
        let sc = self.sc.clone();
        let ns = self.ns;
        let trace = self.trace;
        let pool = Pool::default();
        std::thread::scope(|scope| {
            let main = std::thread::current();
            let workers: Vec<std::thread::Thread> = (1..ranges)
                .map(|k| {
                    let (work, pool, sc, ns, main) = (&work, &pool, &sc, &ns, main.clone());
                    scope
                        .spawn(move || pool.serve(k, work, sc, ns, period_ns, trace, &main))
                        .thread()
                        .clone()
                })
                .collect();
            // Stops the workers however the main thread leaves the scope (a panic too:
            // the scope would otherwise wait for them forever).
            let _stop = StopWorkers(&pool, &workers);
            loop {
                // Between windows the main thread holds every range (the workers wait).
                let guards: Vec<_> = work.iter().map(lock).collect();
                let start = guards
                    .iter()
                    .filter_map(|g| g.traffic.next_time())
                    .min()
                    .unwrap_or(i64::MAX);
                while next_measure < self.sc.rounds && measure_at(next_measure) <= start {
                    let nodes = guards.iter().flat_map(|g| g.nodes.iter());
                    self.measure(next_measure, measure_at(next_measure), nodes);
                    next_measure += 1;
                    progress.round(next_measure);
                }
                if start > end {
                    break;
                }
                // No message arrives before the minimum delay after the earliest event
                // that can send one; responses before that run in this window too.
                // Between a round's request bursts only late responses are pending, and
                // windows bounded by the earliest event instead were mostly a few
                // responses each (88 % of the windows at n = 250, run one by one).
                let first_sender = guards
                    .iter()
                    .filter_map(|g| g.traffic.next_sender_time())
                    .min();
                let mut window_end = first_sender
                    .map_or(end + 1, |t| t.saturating_add(self.ns.lookahead))
                    .min(end + 1);
                if next_measure < self.sc.rounds {
                    window_end = window_end.min(measure_at(next_measure));
                }
                if self.sc.strategy.uses_boundary() {
                    let step = self.oracle_step();
                    if start >= self.oracle.0.saturating_add(step) {
                        let nodes = guards.iter().flat_map(|g| g.nodes.iter());
                        self.refresh_oracle(start - start.rem_euclid(step), nodes);
                    }
                    window_end = window_end.min(self.oracle.0 + step);
                }
                // Each range's count stops at the threshold: the sum reaches it exactly
                // when the true total does.
                let parallel = ranges > 1
                    && guards
                        .iter()
                        .map(|g| g.traffic.due_before(window_end, PARALLEL_MIN_EVENTS))
                        .sum::<usize>()
                        >= PARALLEL_MIN_EVENTS;
                drop(guards);
                let shared = Shared {
                    sc: &sc,
                    ns: &ns,
                    period_ns,
                    oracle_top: self.oracle.1,
                    trace,
                };
                if parallel {
                    pool.dispatch(window_end, self.oracle.1, &workers);
                    run_range(&mut lock(&work[0]), window_end, &shared);
                    pool.wait_done(ranges - 1);
                } else {
                    for r in &work {
                        run_range(&mut lock(r), window_end, &shared);
                    }
                }
                // Counters, and mail for the next window.
                let mut guards: Vec<_> = work.iter().map(lock).collect();
                for g in &mut guards {
                    self.exchanges += std::mem::take(&mut g.traffic.exchanges);
                    for (reason, count) in std::mem::take(&mut g.traffic.rejected) {
                        *self.rejected.entry(reason).or_default() += count;
                    }
                }
                // Range `s`'s outbox for `d` trades places with `d`'s inbox from `s`
                // (drained when `d` last ran): the buffers keep their capacity, where a
                // fresh outbox every window made each window's mail regrow by
                // reallocation (a tenth of a two-thread run's instructions).
                for s in 0..ranges {
                    for d in 0..ranges {
                        if s == d || guards[s].traffic.outbox[d].mail.is_empty() {
                            continue;
                        }
                        let mut bag = std::mem::take(&mut guards[s].traffic.outbox[d]);
                        deliver(&mut guards[d].traffic.inbox[s], &mut bag);
                        guards[s].traffic.outbox[d] = bag;
                    }
                }
            }
        });
        let mut dealt: Vec<_> = work
            .into_iter()
            .map(|r| {
                let range = r
                    .into_inner()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                range.nodes.into_iter()
            })
            .collect();
        for i in 0..n {
            self.nodes.extend(dealt[i % ranges].next());
        }
        debug_assert_eq!(self.nodes.len(), n, "a node went missing between ranges");
        progress.finish();
        let wall_ms = started.elapsed().as_secs_f64() * 1e3;
        crate::report::build(
            &self.sc,
            self.suite.kind(),
            &self.ground,
            self.final_view(),
            self.exchanges,
            &self.rejected,
            wall_ms,
        )
    }

    /// How often the `boundary` adversary's view is recomputed: every 1/32 of a round, at
    /// the multiples of that step, which cut windows as measurements do. So the view is
    /// taken at instants that do not depend on how events fall into windows.
    fn oracle_step(&self) -> i64 {
        (self.period_ns / 32).max(1)
    }

    /// The `boundary` adversary is omniscient: it knows the highest protocol clock among
    /// correct nodes at `now` (a multiple of [`Self::oracle_step`] with no event between
    /// it and the window being opened).
    fn refresh_oracle<'a>(&mut self, now: i64, nodes: impl Iterator<Item = &'a SimNode>) {
        let top = nodes
            .filter(|n| n.role == Role::Correct)
            .map(|n| n.core.clock().protocol_time(n.osc.local(now)).0)
            .max()
            .unwrap_or(0);
        self.oracle = (now, top - now);
    }

    /// Ground truth: every correct node's served clock at this one true instant.
    fn measure<'a>(
        &mut self,
        index: u64,
        now: i64,
        nodes: impl Iterator<Item = &'a SimNode> + Clone,
    ) {
        let (mut min, mut max) = (i64::MAX, i64::MIN);
        let (mut serving_min, mut serving_max) = (i64::MAX, i64::MIN);
        let mut serving = 0;
        let mut quarantined = 0;
        let mut clocks: Vec<(i64, i64)> = Vec::new();
        for n in nodes.clone().filter(|n| n.role == Role::Correct) {
            let c = n.core.clock().served_time(n.osc.local(now)).0;
            clocks.push((now, c));
            min = min.min(c);
            max = max.max(c);
            match n.core.state() {
                SyncState::Synced => {
                    serving += 1;
                    serving_min = serving_min.min(c);
                    serving_max = serving_max.max(c);
                }
                SyncState::Quarantined => quarantined += 1,
                SyncState::Starting => {}
            }
        }
        let serving_skew = if serving > 0 {
            serving_max - serving_min
        } else {
            0
        };
        self.ground.record_serving_skew(serving_skew);
        if self.trace {
            let a: Vec<i64> = nodes
                .clone()
                .filter(|n| n.role == Role::Correct)
                .map(|n| n.core.clock().protocol_time(n.osc.local(now)).0)
                .collect();
            let a_skew = a.iter().max().unwrap_or(&0) - a.iter().min().unwrap_or(&0);
            let rates: Vec<f64> = nodes
                .filter(|n| n.role == Role::Correct)
                .map(|n| n.core.clock().rate().0 + n.osc.drift * 1e6)
                .collect();
            let rmax = rates.iter().cloned().fold(f64::MIN, f64::max);
            let rmin = rates.iter().cloned().fold(f64::MAX, f64::min);
            eprintln!(
                "round {index}: skew {} A-skew {} eff-rate [{rmin:.1},{rmax:.1}]ppm serving {serving} quarantined {quarantined}",
                Nanos(max.saturating_sub(min)),
                Nanos(a_skew)
            );
        }
        self.ground.record(
            index as usize,
            max.saturating_sub(min),
            serving,
            quarantined,
            clocks,
        );
    }

    fn final_view(&self) -> crate::report::FinalView {
        let correct: Vec<usize> = (0..self.nodes.len())
            .filter(|&i| self.nodes[i].role == Role::Correct)
            .collect();
        let faulty: Vec<usize> = (0..self.nodes.len())
            .filter(|&i| matches!(self.nodes[i].role, Role::Byzantine(_)))
            .collect();
        // For each member, how many correct nodes list it as a suspect.
        let mut votes = vec![0usize; self.nodes.len()];
        for &c in &correct {
            for (m, _) in self.nodes[c].core.suspects() {
                votes[m.index()] += 1;
            }
        }
        let faulty_suspected = faulty
            .iter()
            .filter(|&&b| votes[b] * 2 > correct.len())
            .count();
        // Correct nodes cut off from everyone cannot gather a quorum. A cut of L rounds,
        // which need not start on a round boundary, makes L − 1 to L + 1 rounds
        // unhealthy: with L > K they must quarantine (fail closed, spec §6), an expected
        // quarantine like a stepped clock's; with L < K − 1 they must ride it out; in
        // between either is right, so neither is counted.
        let sc = &self.sc;
        let k = self
            .nodes
            .first()
            .map_or(0, |n| u64::from(n.core.params().unhealthy_rounds));
        let cut_off = |i: usize| sc.partitioned_members().contains(&i);
        let must_quarantine = |i: usize| {
            self.nodes[i].role == Role::ClockFaulty || (cut_off(i) && sc.partition_rounds > k)
        };
        let may_quarantine = |i: usize| cut_off(i) && sc.partition_rounds + 1 >= k;
        let false_quarantines = correct
            .iter()
            .filter(|&&c| self.nodes[c].ever_quarantined && !may_quarantine(c))
            .count();
        let expected: Vec<usize> = (0..self.nodes.len())
            .filter(|&i| must_quarantine(i))
            .collect();
        let observed = expected
            .iter()
            .filter(|&&c| self.nodes[c].ever_quarantined)
            .count();
        let synced_at_end = correct
            .iter()
            .filter(|&&c| self.nodes[c].core.state() == SyncState::Synced)
            .count();
        crate::report::FinalView {
            correct: correct.len(),
            faulty_suspected,
            false_quarantines,
            expected_quarantines: expected.len(),
            observed_quarantines: observed,
            synced_correct_at_end: synced_at_end,
        }
    }
}

/// A window with fewer events due stays on one thread: starting a thread costs more
/// than a quiet window's work.
const PARALLEL_MIN_EVENTS: usize = 200;

/// Hands `bag` over as `inbox`, leaving `bag` empty: a swap, since `inbox` was drained
/// when its range last ran (its capacity then goes back to the sender).
fn deliver(inbox: &mut MailBag, bag: &mut MailBag) {
    if inbox.mail.is_empty() {
        std::mem::swap(inbox, bag);
        return;
    }
    // Not reached (a range reads all its mail every window); kept correct anyway.
    let MailBag { mail, readings } = inbox;
    mail.extend(bag.unpack(readings));
}

/// Locks a range. A poisoned lock means a worker panicked; its panic is re-raised on
/// the main thread by [`Pool::wait_done`], so the data is only read on the way out.
fn lock(r: &Mutex<Range>) -> MutexGuard<'_, Range> {
    r.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// How the main thread hands busy windows to the worker threads (one per range but the
/// first, which the main thread runs itself). Workers spin briefly, then park: windows
/// come in bursts a few microseconds apart, and waking a parked thread costs more.
#[derive(Default)]
struct Pool {
    /// Bumped once per dispatched window (and once to stop).
    epoch: AtomicU64,
    window_end: AtomicI64,
    oracle_top: AtomicI64,
    stop: AtomicBool,
    done: AtomicUsize,
    panic: Mutex<Option<Box<dyn std::any::Any + Send>>>,
}

/// Signals the workers to stop when dropped.
struct StopWorkers<'a>(&'a Pool, &'a [std::thread::Thread]);

impl Drop for StopWorkers<'_> {
    fn drop(&mut self) {
        self.0.stop(self.1);
    }
}

/// Spin iterations before a waiting thread parks (about 50 µs).
const SPINS: u32 = 20_000;

fn wait_until(cond: impl Fn() -> bool) {
    for _ in 0..SPINS {
        if cond() {
            return;
        }
        std::hint::spin_loop();
    }
    while !cond() {
        std::thread::park_timeout(std::time::Duration::from_millis(1));
    }
}

impl Pool {
    fn dispatch(&self, window_end: i64, oracle_top: i64, workers: &[std::thread::Thread]) {
        self.window_end.store(window_end, Ordering::SeqCst);
        self.oracle_top.store(oracle_top, Ordering::SeqCst);
        self.done.store(0, Ordering::SeqCst);
        self.epoch.fetch_add(1, Ordering::SeqCst);
        for w in workers {
            w.unpark();
        }
    }

    fn wait_done(&self, workers: usize) {
        wait_until(|| self.done.load(Ordering::SeqCst) >= workers);
        let panic = self
            .panic
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        if let Some(payload) = panic {
            std::panic::resume_unwind(payload);
        }
    }

    fn stop(&self, workers: &[std::thread::Thread]) {
        self.stop.store(true, Ordering::SeqCst);
        self.epoch.fetch_add(1, Ordering::SeqCst);
        for w in workers {
            w.unpark();
        }
    }

    /// A worker: runs range `k` for every dispatched window until told to stop.
    #[allow(clippy::too_many_arguments)]
    fn serve(
        &self,
        k: usize,
        work: &[Mutex<Range>],
        sc: &Scenario,
        ns: &ScenarioNs,
        period_ns: i64,
        trace: bool,
        main: &std::thread::Thread,
    ) {
        let mut seen = 0;
        loop {
            wait_until(|| self.epoch.load(Ordering::SeqCst) != seen);
            seen = self.epoch.load(Ordering::SeqCst);
            if self.stop.load(Ordering::SeqCst) {
                return;
            }
            let shared = Shared {
                sc,
                ns,
                period_ns,
                oracle_top: self.oracle_top.load(Ordering::SeqCst),
                trace,
            };
            let window_end = self.window_end.load(Ordering::SeqCst);
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                run_range(&mut lock(&work[k]), window_end, &shared);
            }));
            if let Err(payload) = outcome {
                *self
                    .panic
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(payload);
            }
            self.done.fetch_add(1, Ordering::SeqCst);
            main.unpark();
        }
    }
}

/// Delivers the range's mail, then runs every event of the range before `window_end`,
/// node by node (see [`crate::queue::EventQueue`]): a node's state stays hot while its
/// events run.
fn run_range(range: &mut Range, window_end: i64, shared: &Shared<'_>) {
    let Range { nodes, traffic: st } = range;
    for k in 0..st.inbox.len() {
        // Drained, not taken: the emptied buffer goes back to its sender as an outbox
        // with its capacity (see `Simulation::run`), so mail never regrows from empty.
        let mut bag = std::mem::take(&mut st.inbox[k]);
        for m in bag.unpack(&mut st.readings) {
            let sends = m.event.sends();
            st.queue.push(m.at, m.key, m.to, m.event, sends);
        }
        st.inbox[k] = bag;
    }
    let mut window = std::mem::take(&mut st.window);
    st.queue.take_window(window_end, &mut window);
    st.sorter
        .sort(&mut window, st.me as u32, st.ranges as u32, st.len);
    st.window_end = window_end;
    let mut next = 0;
    loop {
        // A node's own timer due inside the window runs in order with the node's
        // queued events (`local` only ever holds the current node's).
        let local = st
            .local
            .iter()
            .enumerate()
            .min_by_key(|(_, m)| (m.to, m.at, m.key))
            .map(|(k, m)| (k, (m.to, m.at as u64, m.key)));
        prefetch_ahead(&window, next, nodes, st);
        let queued = window.get(next);
        let local_first = local
            .filter(|(_, order)| queued.is_none_or(|e| *order < e.window_order()))
            .map(|(k, _)| k);
        let (to, now, ev) = match (local_first, queued) {
            (Some(k), _) => {
                let m = st.local.swap_remove(k);
                (m.to, m.at, without_reading(m.event))
            }
            (None, Some(e)) => {
                next += 1;
                let Some(ev) = st.queue.take(e) else {
                    continue;
                };
                (e.group, e.time as i64, ev)
            }
            (None, None) => break,
        };
        let i = to as usize;
        let node = &mut nodes[st.local_index(i)];
        match ev {
            Event::Timer { generation } => on_timer(node, i, now, generation, shared, st),
            Event::Request {
                from,
                request,
                sent_local,
            } => on_request(node, i, from as usize, now, request, sent_local, shared, st),
            Event::Response {
                from,
                reading: slot,
                sent_local,
            } => {
                // The reading is checked where it waits, then its slot is freed.
                let outcome = st.readings.get(slot).and_then(|reading| {
                    on_response(node, from as usize, now, reading, sent_local, shared)
                });
                st.readings.release(slot);
                match outcome {
                    Some(ResponseOutcome::Accepted) => st.exchanges += 1,
                    Some(ResponseOutcome::Rejected(reason)) => {
                        *st.rejected.entry(reason.as_str()).or_default() += 1;
                    }
                    None => {}
                }
            }
        }
    }
    window.clear();
    st.window = window;
}

/// How many events ahead of the one about to run [`prefetch_ahead`] asks for an
/// event's queue slot, and for what that event will touch. An event runs for about a
/// microsecond, several memory latencies, so a short distance hides the misses.
const PREFETCH_SLOT_AHEAD: usize = 6;
const PREFETCH_STATE_AHEAD: usize = 3;

/// Asks the cache for what the events a little ahead in the window will touch: their
/// queue slot first, then (once that has arrived) the reading a response carries and the
/// receiving core's record of the sender. At n = 250 these are cold: a window's events
/// each touch a different node pair, and every node pair's records together are much
/// larger than the caches. A hint never changes what runs, only when data arrives.
fn prefetch_ahead(window: &[Entry], next: usize, nodes: &[SimNode], st: &Traffic) {
    if let Some(e) = window.get(next + PREFETCH_SLOT_AHEAD) {
        st.queue.prefetch(e);
    }
    let Some(e) = window.get(next + PREFETCH_STATE_AHEAD) else {
        return;
    };
    let i = e.group as usize;
    let Some(node) = st.owns(i).then(|| nodes.get(st.local_index(i))).flatten() else {
        return;
    };
    match st.queue.peek(e) {
        Some(Event::Request { from, .. }) => node.core.prefetch_request(MemberId(*from as u16)),
        Some(Event::Response { from, reading, .. }) => {
            node.core.prefetch_response(MemberId(*from as u16));
            st.readings.prefetch(*reading);
        }
        Some(Event::Timer { .. }) => node.core.prefetch_timer(),
        None => {}
    }
}

fn crashed(node: &SimNode, now: i64, shared: &Shared<'_>) -> bool {
    node.role == Role::Byzantine(Strategy::Crash)
        && now >= shared.period_ns * shared.sc.rounds as i64 / 2
}

fn partitioned(i: usize, now: i64, shared: &Shared<'_>) -> bool {
    let sc = shared.sc;
    if sc.partition_nodes == 0 {
        return false;
    }
    let start = shared.period_ns * (sc.rounds / 3) as i64;
    let stop = start + shared.period_ns * sc.partition_rounds as i64;
    sc.partitioned_members().contains(&i) && (start..stop).contains(&now)
}

/// One-way delay from `from` to `to` sent at `now`, or `None` if the message is lost.
/// Drawn from the sender's network stream; never below the window length.
fn path_delay(
    sender: &mut SimNode,
    from: usize,
    to: usize,
    now: i64,
    shared: &Shared<'_>,
) -> Option<i64> {
    if partitioned(from, now, shared) || partitioned(to, now, shared) {
        return None;
    }
    let sc = shared.sc;
    if sc.loss > 0.0 && sender.net_rng.random::<f64>() < sc.loss {
        return None;
    }
    let ns = shared.ns;
    let asym = ns.asymmetry_half;
    let base = ns.delay + if from < to { asym } else { -asym };
    let extra = if ns.jitter > 0 {
        sender.net_rng.random_range(0..=ns.jitter)
    } else {
        0
    };
    Some((base + extra).max(ns.lookahead))
}

fn on_timer(
    node: &mut SimNode,
    i: usize,
    now: i64,
    generation: u64,
    shared: &Shared<'_>,
    out: &mut Traffic,
) {
    if node.timer_gen != generation || crashed(node, now, shared) {
        return;
    }
    let local = node.osc.local(now);
    if local < node.timer_target {
        let at = node.osc.true_time_from(node.timer_target, now, local);
        let key = node.next_key(i);
        out.send(Message {
            at: at.max(now + 1),
            key,
            to: i as u32,
            event: Event::Timer { generation },
        });
        return;
    }
    let actions = node.core.handle_timer(local, &mut node.rng);
    execute(node, i, now, local, actions, shared, out);
}

fn execute(
    node: &mut SimNode,
    i: usize,
    now: i64,
    local: LocalTime,
    actions: Vec<Action>,
    shared: &Shared<'_>,
    out: &mut Traffic,
) {
    for action in actions {
        match action {
            Action::SendRequest { to, request } => {
                let to = to.index();
                if let Some(d) = path_delay(node, i, to, now, shared) {
                    let key = node.next_key(i);
                    out.send(Message {
                        at: now + d + shared.ns.request_extra,
                        key,
                        to: to as u32,
                        event: Event::Request {
                            from: i as u32,
                            request,
                            sent_local: local,
                        },
                    });
                }
            }
            Action::SetTimer { at } => {
                node.timer_gen += 1;
                node.timer_target = at;
                let t = node.osc.true_time_from(at, now, local).max(now + 1);
                let generation = node.timer_gen;
                let key = node.next_key(i);
                out.send(Message {
                    at: t,
                    key,
                    to: i as u32,
                    event: Event::Timer { generation },
                });
            }
            Action::StateChanged(tr) => {
                if shared.trace {
                    eprintln!(
                        "t={} node {i}: {:?} -> {:?} {}",
                        Nanos(now),
                        tr.from,
                        tr.to,
                        tr.reason.map(|r| r.to_string()).unwrap_or_default()
                    );
                }
                if tr.to == SyncState::Quarantined {
                    node.ever_quarantined = true;
                }
            }
            // Only with batch verification, which the simulator does not use.
            Action::ReadingRejected { .. } => {}
            Action::RoundCompleted(r) => {
                if i < 2 && shared.trace {
                    eprintln!(
                        "  node {i} round {} {:?} c={} applied={} stepped={} err={:?} rate={} used={} {}",
                        r.round,
                        r.state,
                        r.correction,
                        r.applied,
                        r.stepped,
                        r.error.map(|e| e.to_string()),
                        r.rate,
                        r.readings_used,
                        r.verdict
                    );
                }
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn on_request(
    node: &mut SimNode,
    i: usize,
    from: usize,
    now: i64,
    request: Request,
    sent_local: LocalTime,
    shared: &Shared<'_>,
    out: &mut Traffic,
) {
    if crashed(node, now, shared) || node.role == Role::Byzantine(Strategy::Mute) {
        return;
    }
    let local = node.osc.local(now);
    let honest = match node
        .core
        .answer_request(MemberId(from as u16), &request, local, local)
    {
        Ok(r) => r,
        Err(reason) => {
            *out.rejected.entry(reason.as_str()).or_default() += 1;
            return;
        }
    };
    let answer = match node.role {
        Role::Byzantine(s) => lie(node, from, now, s, honest, shared),
        _ => Some(Answer::Sign {
            reading: honest,
            delay_ns: 0,
        }),
    };
    let Some(answer) = answer else {
        return;
    };
    let extra_delay = match answer {
        Answer::Sign { delay_ns, .. } => delay_ns,
        Answer::Resend(_) => 0,
    };
    if let Some(d) = path_delay(node, i, from, now, shared) {
        let key = node.next_key(i);
        let at = now + d + extra_delay;
        let core = &node.core;
        // Signed straight into the slot where the reading waits for its requester.
        out.send_response(
            at,
            key,
            from as u32,
            i as u32,
            sent_local,
            |store| match &answer {
                Answer::Sign { reading, .. } => {
                    store.insert_with(|body| core.sign_reading_to(reading, body))
                }
                Answer::Resend(old) => store.insert(old),
            },
        );
    }
}

/// What a responder sends.
enum Answer {
    /// This reading, signed, this much later than the network alone would deliver it.
    Sign { reading: Reading, delay_ns: i64 },
    /// A reading signed before, again.
    Resend(Signed<Reading>),
}

/// What a Byzantine responder sends instead of the honest reading (`None`: nothing). A
/// lie is made from
/// the honest reading before it is signed (not decoded from a signed one and signed
/// again: that was a twentieth of a `mixed` run's instructions).
fn lie(
    node: &mut SimNode,
    requester: usize,
    now: i64,
    s: Strategy,
    honest: Reading,
    shared: &Shared<'_>,
) -> Option<Answer> {
    let lie = shared.ns.lie;
    let shift = match s {
        Strategy::None | Strategy::Crash => {
            return Some(Answer::Sign {
                reading: honest,
                delay_ns: 0,
            });
        }
        Strategy::Mute | Strategy::Mixed => return None,
        Strategy::Slow => {
            let d = node.net_rng.random_range(0..=shared.period_ns * 8 / 10);
            return Some(Answer::Sign {
                reading: honest,
                delay_ns: d,
            });
        }
        Strategy::Replay => {
            // The first answer to each peer is honest, and kept to be sent again.
            let peer = MemberId(requester as u16);
            if let Some(old) = node.replay_cache.get(&peer) {
                return Some(Answer::Resend(old.clone()));
            }
            let Ok(signed) = node.core.sign_reading(&honest) else {
                return None;
            };
            node.replay_cache.insert(peer, signed.clone());
            return Some(Answer::Resend(signed));
        }
        Strategy::Liar => lie,
        Strategy::TwoFaced => {
            if requester.is_multiple_of(2) {
                lie
            } else {
                -lie
            }
        }
        Strategy::Random => node.net_rng.random_range(-lie..=lie),
        Strategy::Boundary => {
            // The top correct clock now: as it was when looked at, moved on by the true
            // time since (a correct clock's rate errs by ppm, nanoseconds over a step).
            // Without moving it on, the target lagged by up to a step (P / 32) and the
            // attack depended on when in the step a request came.
            let mine = node.core.clock().protocol_time(node.osc.local(now)).0;
            now + shared.oracle_top - mine + shared.ns.delay * 9 / 10
        }
    };
    let mut r = honest;
    r.receive += Nanos(shift);
    r.transmit += Nanos(shift);
    r.error = Some(Nanos::ZERO);
    // The most a reading can say it corrected by, the way the lie pulls (`boundary`
    // pulls the cluster fast: the lowest, so that every correct node's own correction
    // looks large against the median, spec §3.3).
    let extreme = bftime_protocol::reading_codec::MAX_CORRECTION;
    r.last_correction = Some(match s {
        Strategy::Boundary => -extreme,
        _ if shift < 0 => -extreme,
        _ => extreme,
    });
    Some(Answer::Sign {
        reading: r,
        delay_ns: 0,
    })
}

/// What the core made of a response (`None`: the node has crashed).
fn on_response(
    node: &mut SimNode,
    from: usize,
    now: i64,
    reading: SignedParts<'_, Reading>,
    sent_local: LocalTime,
    shared: &Shared<'_>,
) -> Option<ResponseOutcome> {
    if crashed(node, now, shared) {
        return None;
    }
    let local = node.osc.local(now);
    Some(
        node.core
            .handle_response_parts(MemberId(from as u16), reading, sent_local, local),
    )
}
