//! What a simulation measured, and how it is reported (JSON fields are an interface:
//! scripts and bars read them by name).

use std::collections::{BTreeMap, HashMap};

use bftime_crypto::SuiteKind;
use serde::Serialize;

use crate::scenario::Scenario;

/// Ground-truth samples, one per round (true time k·P + P/2).
#[derive(Debug, Default)]
pub struct Ground {
    skew_ns: Vec<i64>,
    serving: Vec<usize>,
    quarantined: Vec<usize>,
    clocks: Vec<Vec<(i64, i64)>>,
    serving_skew_ns: Vec<i64>,
}

impl Ground {
    pub fn new(rounds: usize) -> Ground {
        Ground {
            skew_ns: Vec::with_capacity(rounds),
            serving: Vec::with_capacity(rounds),
            quarantined: Vec::with_capacity(rounds),
            clocks: Vec::with_capacity(rounds),
            serving_skew_ns: Vec::with_capacity(rounds),
        }
    }

    pub fn record(
        &mut self,
        _index: usize,
        skew: i64,
        serving: usize,
        quarantined: usize,
        clocks: Vec<(i64, i64)>,
    ) {
        self.skew_ns.push(skew);
        self.serving.push(serving);
        self.quarantined.push(quarantined);
        self.clocks.push(clocks);
    }

    /// Skew among the correct nodes that serve time at that instant.
    pub fn record_serving_skew(&mut self, skew: i64) {
        self.serving_skew_ns.push(skew);
    }

    pub fn skews(&self) -> &[i64] {
        &self.skew_ns
    }
}

/// End-of-run facts the simulator gathers from the nodes.
#[derive(Debug, Clone, Copy)]
pub struct FinalView {
    pub correct: usize,
    pub faulty_suspected: usize,
    pub false_quarantines: usize,
    pub expected_quarantines: usize,
    pub observed_quarantines: usize,
    pub synced_correct_at_end: usize,
}

/// The simulator's report; `--json` prints exactly this object.
#[derive(Debug, Clone, Serialize)]
pub struct SimReport {
    pub nodes: usize,
    pub faulty: usize,
    pub strategy: String,
    pub algorithm: String,
    pub seed: u64,
    pub rounds: u64,
    pub round_period_ms: f64,
    pub precision_ns: i64,
    /// Max true skew among correct nodes over rounds from `converged_round` on
    /// (over the second half of the run when it never converged).
    pub max_skew_ns: i64,
    pub p50_skew_ns: i64,
    /// Max true skew once every correct node serves time (the steady state).
    pub steady_max_skew_ns: i64,
    /// Max skew, over the whole run, among correct nodes that were serving time at the
    /// same instant: what applications could have seen. Fail-safe means this stays ≤ Π.
    pub max_serving_skew_ns: i64,
    /// The round from which every correct node serves time.
    pub settled_round: u64,
    pub initial_skew_ns: i64,
    pub final_skew_ns: i64,
    pub converged: bool,
    /// First round from which the skew stays ≤ Π to the end.
    pub converged_round: Option<u64>,
    pub correct_nodes: usize,
    pub synced_correct_at_end: usize,
    /// Correct nodes that quarantined at some point, but for those that had to or may
    /// have: a stepped or stalled clock (`--clock-faults`), or cut off by
    /// `--partition-nodes` for more than K (`unhealthy_rounds`) rounds (must), or for
    /// K − 1 or K rounds (may: the cut need not start on a round boundary).
    pub false_quarantines: usize,
    /// Nodes that had to quarantine (as above), and how many of them did.
    pub expected_quarantines: usize,
    pub observed_quarantines: usize,
    /// Faulty nodes that more than half of the correct nodes list as suspects at the end.
    pub faulty_suspected: usize,
    /// ε: spread of one-way delays (jitter + asymmetry).
    pub delay_uncertainty_ns: i64,
    /// No algorithm can beat ε(1 − 1/n).
    pub lundelius_lynch_bound_ns: i64,
    /// Welch–Lynch's guarantee, about 4ε + 4ρP.
    pub wl_bound_ns: i64,
    /// How far the correct nodes' cluster clocks' average rate strays from true time
    /// once settled (the `boundary` attack tries to push it).
    pub max_rate_error_ppm: f64,
    pub crypto: String,
    pub exchanges: u64,
    pub rejected: BTreeMap<String, u64>,
    pub wall_ms: f64,
}

fn ms(x: f64) -> i64 {
    (x * 1e6).round() as i64
}

pub fn build(
    sc: &Scenario,
    suite: SuiteKind,
    g: &Ground,
    fin: FinalView,
    exchanges: u64,
    rejected: &HashMap<&'static str, u64>,
    wall_ms: f64,
) -> SimReport {
    let pi = ms(sc.precision_ms);
    let s = &g.skew_ns;
    let last = s.len().saturating_sub(1);
    // The first index after the last sample above Π.
    let converged_round = match s.iter().rposition(|&x| x > pi) {
        None => Some(0),
        Some(i) if i < last => Some(i + 1),
        Some(_) => None,
    };
    let from = converged_round.unwrap_or(s.len() / 2);
    let window: Vec<i64> = s.get(from..).map(<[i64]>::to_vec).unwrap_or_default();
    let max_skew_ns = window.iter().copied().max().unwrap_or(0);
    let mut sorted = window.clone();
    sorted.sort_unstable();
    let p50_skew_ns = sorted
        .get(sorted.len().saturating_sub(1) / 2)
        .copied()
        .unwrap_or(0);
    // "Settled": every correct node serves from here on (clock-faulted nodes aside).
    let settled = (0..s.len())
        .find(|&i| {
            g.serving[i..]
                .iter()
                .all(|&k| k + fin.false_quarantines >= fin.correct)
        })
        .unwrap_or(s.len() / 2)
        .max(from);
    let steady_max_skew_ns = s
        .get(settled..)
        .and_then(|w| w.iter().copied().max())
        .unwrap_or(max_skew_ns);
    // Average rate of each correct cluster clock over [settled, last] against true time.
    let mut max_rate_error_ppm: f64 = 0.0;
    let rate_from = if last > settled { settled } else { s.len() / 2 };
    if last > rate_from
        && let (Some(a), Some(b)) = (g.clocks.get(rate_from), g.clocks.get(last))
    {
        for (&(t0, c0), &(t1, c1)) in a.iter().zip(b) {
            let rate = (c1 - c0) as f64 / (t1 - t0) as f64 - 1.0;
            max_rate_error_ppm = max_rate_error_ppm.max((rate * 1e6).abs());
        }
    }
    let eps = ms(sc.jitter_ms) + ms(sc.asymmetry_ms) + ms(sc.role_asymmetry_ms);
    let n = sc.nodes as f64;
    let rho = (sc.drift_ppm + sc.wander_ppm) * 1e-6;
    let p = ms(sc.round_period_ms) as f64;
    SimReport {
        nodes: sc.nodes,
        faulty: sc.faulty,
        strategy: sc.strategy.as_str().into(),
        algorithm: sc.algorithm.as_str().into(),
        seed: sc.seed,
        rounds: sc.rounds,
        round_period_ms: sc.round_period_ms,
        precision_ns: pi,
        max_skew_ns,
        p50_skew_ns,
        steady_max_skew_ns,
        max_serving_skew_ns: g.serving_skew_ns.iter().copied().max().unwrap_or(0),
        settled_round: settled as u64,
        initial_skew_ns: s.first().copied().unwrap_or(0),
        final_skew_ns: s.last().copied().unwrap_or(0),
        converged: converged_round.is_some(),
        converged_round: converged_round.map(|r| r as u64),
        correct_nodes: fin.correct,
        synced_correct_at_end: fin.synced_correct_at_end,
        false_quarantines: fin.false_quarantines,
        expected_quarantines: fin.expected_quarantines,
        observed_quarantines: fin.observed_quarantines,
        faulty_suspected: fin.faulty_suspected,
        delay_uncertainty_ns: eps,
        lundelius_lynch_bound_ns: (eps as f64 * (1.0 - 1.0 / n)) as i64,
        wl_bound_ns: (4.0 * eps as f64 + 4.0 * rho * p) as i64,
        max_rate_error_ppm: (max_rate_error_ppm * 1000.0).round() / 1000.0,
        crypto: suite.as_str().into(),
        exchanges,
        rejected: rejected
            .iter()
            .map(|(k, v)| ((*k).to_owned(), *v))
            .collect(),
        wall_ms: (wall_ms * 10.0).round() / 10.0,
    }
}

fn fmt_ns(ns: i64) -> String {
    bftime_protocol::Nanos(ns).to_string()
}

impl SimReport {
    /// The readable summary printed without `--json`.
    pub fn human(&self) -> String {
        let conv = match self.converged_round {
            Some(r) => format!("round {r}"),
            None => "never (skew above Π at the end)".into(),
        };
        format!(
            "bftime simulation: n={} f={} strategy={} algorithm={} seed={} rounds={} P={}ms crypto={}\n\
             converged            {conv}\n\
             max skew (converged) {}   (Π = {})\n\
             p50 skew             {}\n\
             steady max skew      {} (all correct nodes serving, from round {})\n\
             skew first → last    {} → {}\n\
             bounds               Lundelius–Lynch {}   Welch–Lynch {}   (ε = {})\n\
             rate error           {:.3} ppm\n\
             correct nodes        {} ({} synced at end), false quarantines {}, clock-fault quarantines {}/{}\n\
             faulty suspected     {}/{}\n\
             exchanges            {}   wall {:.1} ms",
            self.nodes,
            self.faulty,
            self.strategy,
            self.algorithm,
            self.seed,
            self.rounds,
            self.round_period_ms,
            self.crypto,
            fmt_ns(self.max_skew_ns),
            fmt_ns(self.precision_ns),
            fmt_ns(self.p50_skew_ns),
            fmt_ns(self.steady_max_skew_ns),
            self.settled_round,
            fmt_ns(self.initial_skew_ns),
            fmt_ns(self.final_skew_ns),
            fmt_ns(self.lundelius_lynch_bound_ns),
            fmt_ns(self.wl_bound_ns),
            fmt_ns(self.delay_uncertainty_ns),
            self.max_rate_error_ppm,
            self.correct_nodes,
            self.synced_correct_at_end,
            self.false_quarantines,
            self.observed_quarantines,
            self.expected_quarantines,
            self.faulty_suspected,
            self.faulty,
            self.exchanges,
            self.wall_ms,
        )
    }
}
