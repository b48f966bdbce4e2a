//! The deterministic discrete-event simulator (design §8). Single-threaded, seeded,
//! virtual time in nanoseconds; drives the real `bftime-protocol` core through the same
//! calls the node makes. Same scenario and seed ⇒ the same run, event for event.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;
use std::time::Instant;

use bftime_crypto::{
    CryptoSuite, Ed25519Suite, FastSuite, NodeKey, Signed, Signer, suite::FastSigner,
};
use bftime_protocol::{
    Action, Core, CoreConfig, LocalTime, MemberId, Nanos, Params, Reading, Request,
    ResponseOutcome, SyncState,
};
use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};

use crate::clockmodel::{ClockFault, Oscillator};
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
    signer: Box<dyn Signer>,
    rng: Xoshiro256PlusPlus,
    timer_gen: u64,
    timer_target: LocalTime,
    replay_cache: HashMap<MemberId, Signed<Reading>>,
    ever_quarantined: bool,
}

enum Event {
    Timer {
        node: usize,
        generation: u64,
    },
    Request {
        to: usize,
        from: usize,
        request: Request,
        sent_local: LocalTime,
    },
    Response {
        to: usize,
        from: usize,
        reading: Signed<Reading>,
        sent_local: LocalTime,
    },
    Measure {
        index: u64,
    },
}

/// The event queue: a binary heap of packed (time, seq, slot) keys over a slab of events.
#[derive(Default)]
struct Queue {
    heap: BinaryHeap<Reverse<(i64, u64, u32)>>,
    slab: Vec<Option<Event>>,
    free: Vec<u32>,
    seq: u64,
}

impl Queue {
    fn push(&mut self, at: i64, ev: Event) {
        let slot = match self.free.pop() {
            Some(s) => {
                self.slab[s as usize] = Some(ev);
                s
            }
            None => {
                self.slab.push(Some(ev));
                (self.slab.len() - 1) as u32
            }
        };
        self.seq += 1;
        self.heap.push(Reverse((at, self.seq, slot)));
    }

    fn pop(&mut self) -> Option<(i64, Event)> {
        let Reverse((at, _, slot)) = self.heap.pop()?;
        let ev = self.slab[slot as usize].take()?;
        self.free.push(slot);
        Some((at, ev))
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
    queue: Queue,
    now: i64,
    net_rng: Xoshiro256PlusPlus,
    period_ns: i64,
    oracle: (i64, i64),
    ground: Ground,
    exchanges: u64,
    rejected: HashMap<&'static str, u64>,
    suite: Arc<dyn CryptoSuite>,
    /// `BFTIME_SIM_TRACE` set: print per-round ground truth, state changes and the first
    /// two nodes' round summaries to stderr.
    trace: bool,
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
        let mut queue = Queue::default();
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
            let osc = Oscillator {
                start_ns: 1_000_000_000_000
                    + rng.random_range(-ms(sc.initial_offset_ms)..=ms(sc.initial_offset_ms)),
                drift: rng.random_range(-sc.drift_ppm..=sc.drift_ppm) * 1e-6,
                wander: sc.wander_ppm * 1e-6,
                wander_period_ns: 600e9,
                wander_phase: rng.random_range(0.0..std::f64::consts::TAU),
                fault,
            };
            let cfg = CoreConfig {
                me: MemberId(i as u16),
                members: members.clone(),
                cluster: sc.seed,
                params: params.clone(),
                detailed_summaries: false,
                incarnation: sc.seed.rotate_left(17) ^ i as u64,
            };
            let (signer, core_signer): (Box<dyn Signer>, Box<dyn Signer>) = if ed25519 {
                // The strategy re-signs lies with the node's own key: a second handle to it.
                (Box::new(node_key(sc.seed, i)), Box::new(key))
            } else {
                let pk = key.public_key();
                (Box::new(FastSigner::new(pk)), Box::new(FastSigner::new(pk)))
            };
            let local0 = osc.local(0);
            let (core, actions) = Core::new(cfg, core_signer, suite.clone(), local0, Nanos::ZERO)
                .map_err(|e| crate::scenario::ScenarioError(e.to_string()))?;
            let mut node = SimNode {
                core,
                osc,
                role,
                signer,
                rng: Xoshiro256PlusPlus::seed_from_u64(
                    sc.seed ^ (i as u64).wrapping_mul(0x9E37_79B9),
                ),
                timer_gen: 0,
                timer_target: LocalTime(0),
                replay_cache: HashMap::new(),
                ever_quarantined: false,
            };
            for a in actions {
                if let Action::SetTimer { at } = a {
                    node.timer_gen += 1;
                    node.timer_target = at;
                    queue.push(
                        node.osc.true_time_for(at, 0),
                        Event::Timer {
                            node: i,
                            generation: node.timer_gen,
                        },
                    );
                }
            }
            nodes.push(node);
        }
        for k in 0..sc.rounds {
            queue.push(
                k as i64 * period_ns + period_ns / 2,
                Event::Measure { index: k },
            );
        }
        let net_rng = Xoshiro256PlusPlus::seed_from_u64(sc.seed.wrapping_add(0x5EED));
        Ok(Simulation {
            ground: Ground::new(sc.rounds as usize),
            sc,
            nodes,
            queue,
            now: 0,
            net_rng,
            period_ns,
            oracle: (i64::MIN / 2, 0),
            exchanges: 0,
            rejected: HashMap::new(),
            suite,
            trace: std::env::var_os("BFTIME_SIM_TRACE").is_some(),
        })
    }

    /// Runs to the end and reports.
    pub fn run(mut self) -> SimReport {
        let started = Instant::now();
        let end = self.period_ns * self.sc.rounds as i64;
        while let Some((at, ev)) = self.queue.pop() {
            if at > end {
                break;
            }
            self.now = at;
            match ev {
                Event::Timer { node, generation } => self.on_timer(node, generation),
                Event::Request {
                    to,
                    from,
                    request,
                    sent_local,
                } => self.on_request(to, from, request, sent_local),
                Event::Response {
                    to,
                    from,
                    reading,
                    sent_local,
                } => self.on_response(to, from, reading, sent_local),
                Event::Measure { index } => self.measure(index),
            }
        }
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

    fn crashed(&self, i: usize) -> bool {
        self.nodes[i].role == Role::Byzantine(Strategy::Crash)
            && self.now >= self.period_ns * self.sc.rounds as i64 / 2
    }

    fn partitioned(&self, i: usize) -> bool {
        if self.sc.partition_nodes == 0 {
            return false;
        }
        let first = self.sc.nodes - self.sc.faulty - self.sc.clock_faults - self.sc.partition_nodes;
        let start = self.period_ns * (self.sc.rounds / 3) as i64;
        let stop = start + self.period_ns * self.sc.partition_rounds as i64;
        (first..first + self.sc.partition_nodes).contains(&i) && (start..stop).contains(&self.now)
    }

    /// One-way delay from `from` to `to`, or `None` if the message is lost.
    fn path_delay(&mut self, from: usize, to: usize) -> Option<i64> {
        if self.partitioned(from) || self.partitioned(to) {
            return None;
        }
        if self.sc.loss > 0.0 && self.net_rng.random::<f64>() < self.sc.loss {
            return None;
        }
        let asym = ms(self.sc.asymmetry_ms) / 2;
        let base = ms(self.sc.delay_ms) + if from < to { asym } else { -asym };
        let jitter = ms(self.sc.jitter_ms);
        let extra = if jitter > 0 {
            self.net_rng.random_range(0..=jitter)
        } else {
            0
        };
        Some((base + extra).max(0))
    }

    fn on_timer(&mut self, i: usize, generation: u64) {
        if self.nodes[i].timer_gen != generation || self.crashed(i) {
            return;
        }
        let node = &mut self.nodes[i];
        let local = node.osc.local(self.now);
        if local < node.timer_target {
            let at = node.osc.true_time_for(node.timer_target, self.now);
            self.queue.push(
                at.max(self.now + 1),
                Event::Timer {
                    node: i,
                    generation,
                },
            );
            return;
        }
        let actions = node.core.handle_timer(local, &mut node.rng);
        self.execute(i, local, actions);
    }

    fn execute(&mut self, i: usize, local: LocalTime, actions: Vec<Action>) {
        for action in actions {
            match action {
                Action::SendRequest { to, request } => {
                    let to = to.index();
                    if let Some(d) = self.path_delay(i, to) {
                        self.queue.push(
                            self.now + d,
                            Event::Request {
                                to,
                                from: i,
                                request,
                                sent_local: local,
                            },
                        );
                    }
                }
                Action::SetTimer { at } => {
                    let node = &mut self.nodes[i];
                    node.timer_gen += 1;
                    node.timer_target = at;
                    let t = node.osc.true_time_for(at, self.now).max(self.now + 1);
                    self.queue.push(
                        t,
                        Event::Timer {
                            node: i,
                            generation: node.timer_gen,
                        },
                    );
                }
                Action::StateChanged(tr) => {
                    if self.trace {
                        eprintln!(
                            "t={} node {i}: {:?} -> {:?} {}",
                            Nanos(self.now),
                            tr.from,
                            tr.to,
                            tr.reason.map(|r| r.to_string()).unwrap_or_default()
                        );
                    }
                    if tr.to == SyncState::Quarantined {
                        self.nodes[i].ever_quarantined = true;
                    }
                }
                Action::RoundCompleted(r) => {
                    if i < 2 && self.trace {
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

    /// Highest protocol clock among correct nodes at the current instant (the
    /// `boundary` adversary is omniscient); cached for 1/32 of a round.
    fn oracle_top(&mut self) -> i64 {
        if self.now.saturating_sub(self.oracle.0) > self.period_ns / 32 {
            let now = self.now;
            let top = self
                .nodes
                .iter()
                .filter(|n| n.role == Role::Correct)
                .map(|n| n.core.clock().protocol_time(n.osc.local(now)).0)
                .max()
                .unwrap_or(0);
            self.oracle = (now, top);
        }
        self.oracle.1
    }

    fn on_request(&mut self, to: usize, from: usize, request: Request, sent_local: LocalTime) {
        if self.crashed(to) {
            return;
        }
        let role = self.nodes[to].role;
        if role == Role::Byzantine(Strategy::Mute) {
            return;
        }
        let local = self.nodes[to].osc.local(self.now);
        let honest =
            match self.nodes[to]
                .core
                .handle_request(MemberId(from as u16), &request, local, local)
            {
                Ok(r) => r,
                Err(reason) => {
                    *self.rejected.entry(reason.as_str()).or_default() += 1;
                    return;
                }
            };
        let mut extra_delay = 0;
        let reading = match role {
            Role::Byzantine(s) => match self.lie(to, from, s, honest) {
                Some((r, d)) => {
                    extra_delay = d;
                    r
                }
                None => return,
            },
            _ => honest,
        };
        if let Some(d) = self.path_delay(to, from) {
            self.queue.push(
                self.now + d + extra_delay,
                Event::Response {
                    to: from,
                    from: to,
                    reading,
                    sent_local,
                },
            );
        }
    }

    /// What a Byzantine responder sends instead of the honest reading (and extra delay).
    fn lie(
        &mut self,
        me: usize,
        requester: usize,
        s: Strategy,
        honest: Signed<Reading>,
    ) -> Option<(Signed<Reading>, i64)> {
        let lie = ms(self.sc.lie_ms);
        let shift = match s {
            Strategy::None | Strategy::Crash => return Some((honest, 0)),
            Strategy::Mute | Strategy::Mixed => return None,
            Strategy::Slow => {
                let d = self.net_rng.random_range(0..=self.period_ns * 8 / 10);
                return Some((honest, d));
            }
            Strategy::Replay => {
                let node = &mut self.nodes[me];
                return match node.replay_cache.get(&MemberId(requester as u16)) {
                    Some(old) => Some((old.clone(), 0)),
                    None => {
                        node.replay_cache
                            .insert(MemberId(requester as u16), honest.clone());
                        Some((honest, 0))
                    }
                };
            }
            Strategy::Liar => lie,
            Strategy::TwoFaced => {
                if requester.is_multiple_of(2) {
                    lie
                } else {
                    -lie
                }
            }
            Strategy::Random => self.net_rng.random_range(-lie..=lie),
            Strategy::Boundary => {
                let top = self.oracle_top();
                let node = &self.nodes[me];
                let mine = node.core.clock().protocol_time(node.osc.local(self.now)).0;
                top - mine + ms(self.sc.delay_ms) * 9 / 10
            }
        };
        let mut r = honest.decode_unverified().ok()?;
        r.receive += Nanos(shift);
        r.transmit += Nanos(shift);
        r.error = Some(Nanos::ZERO);
        let signed = Signed::sign(&r, self.nodes[me].signer.as_ref()).ok()?;
        Some((signed, 0))
    }

    fn on_response(
        &mut self,
        to: usize,
        from: usize,
        reading: Signed<Reading>,
        sent_local: LocalTime,
    ) {
        if self.crashed(to) {
            return;
        }
        let node = &mut self.nodes[to];
        let local = node.osc.local(self.now);
        match node
            .core
            .handle_response(MemberId(from as u16), reading, sent_local, local)
        {
            ResponseOutcome::Accepted => self.exchanges += 1,
            ResponseOutcome::Rejected(reason) => {
                *self.rejected.entry(reason.as_str()).or_default() += 1
            }
        }
    }

    /// Ground truth: every correct node's served clock at this one true instant.
    fn measure(&mut self, index: u64) {
        let now = self.now;
        let (mut min, mut max) = (i64::MAX, i64::MIN);
        let (mut serving_min, mut serving_max) = (i64::MAX, i64::MIN);
        let mut serving = 0;
        let mut quarantined = 0;
        let mut clocks: Vec<(i64, i64)> = Vec::with_capacity(self.nodes.len());
        for n in self.nodes.iter().filter(|n| n.role == Role::Correct) {
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
            let a: Vec<i64> = self
                .nodes
                .iter()
                .filter(|n| n.role == Role::Correct)
                .map(|n| n.core.clock().protocol_time(n.osc.local(now)).0)
                .collect();
            let a_skew = a.iter().max().unwrap_or(&0) - a.iter().min().unwrap_or(&0);
            let rates: Vec<f64> = self
                .nodes
                .iter()
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
        let false_quarantines = correct
            .iter()
            .filter(|&&c| self.nodes[c].ever_quarantined)
            .count();
        let clock_faulty: Vec<usize> = (0..self.nodes.len())
            .filter(|&i| self.nodes[i].role == Role::ClockFaulty)
            .collect();
        let observed = clock_faulty
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
            expected_quarantines: clock_faulty.len(),
            observed_quarantines: observed,
            synced_correct_at_end: synced_at_end,
        }
    }
}
