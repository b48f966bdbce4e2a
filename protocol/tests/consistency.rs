//! The consistency check (spec §4.4), driven through real cores: a serving node whose
//! error bar was tighter than the cluster's next move follows it, clamped to its
//! allowance, instead of staying where it was until K inconsistent rounds quarantine it;
//! a node that the cluster keeps leaving behind still quarantines.

mod common;

use std::sync::Arc;

use bftime_crypto::suite::FastSigner;
use bftime_crypto::{FastSuite, NodeKey};
use bftime_protocol::{
    Action, Core, CoreConfig, LocalTime, MemberId, Nanos, Params, RoundSummary, SyncState,
};
use rand::SeedableRng;
use rand::rngs::StdRng;

/// Cores exchanging instantly (so their error bars are as tight as they get), each with
/// its own local clock: `true time + skew[i]`.
struct Cluster {
    cores: Vec<Core>,
    /// Each node's next timer, in true time.
    timers: Vec<i64>,
    skew_ns: Vec<i64>,
    summaries: Vec<Vec<RoundSummary>>,
    rng: StdRng,
}

const START_NS: i64 = 1_000_000_000_000;

impl Cluster {
    fn new(n: usize) -> Cluster {
        let members: Arc<[_]> = (0..n)
            .map(|i| NodeKey::from_seed(&[i as u8 + 1; 32]).public_key())
            .collect::<Vec<_>>()
            .into();
        let mut cores = Vec::new();
        let mut timers = Vec::new();
        for i in 0..n {
            let cfg = CoreConfig {
                me: MemberId(i as u16),
                members: members.clone(),
                cluster: 3,
                params: Params::for_members(n),
                detailed_summaries: false,
                incarnation: i as u64,
                batch_verification: false,
            };
            let signer = Box::new(FastSigner::new(members[i]));
            let (core, at) = common::start(cfg, signer, Arc::new(FastSuite), LocalTime(START_NS));
            timers.push(at.0);
            cores.push(core);
        }
        Cluster {
            cores,
            timers,
            skew_ns: vec![0; n],
            summaries: vec![Vec::new(); n],
            rng: StdRng::seed_from_u64(7),
        }
    }

    /// Runs until node 0 has completed `rounds` rounds in all.
    fn run_until(&mut self, rounds: usize) {
        while self.summaries[0].len() < rounds {
            let (i, now) = common::earliest(&self.timers);
            let local = |skew: &[i64], k: usize| LocalTime(now + skew[k]);
            let actions = self.cores[i].handle_timer(local(&self.skew_ns, i), &mut self.rng);
            for a in actions {
                match a {
                    Action::SetTimer { at } => self.timers[i] = at.0 - self.skew_ns[i],
                    Action::SendRequest { to, request } => {
                        let there = local(&self.skew_ns, to.index());
                        let reading = self.cores[to.index()]
                            .handle_request(MemberId(i as u16), &request, there, there)
                            .expect("answered");
                        let here = local(&self.skew_ns, i);
                        let _ = self.cores[i].handle_response(to, &reading, here, here);
                    }
                    Action::RoundCompleted(s) => self.summaries[i].push(*s),
                    Action::StateChanged(_) | Action::ReadingRejected { .. } => {}
                }
            }
        }
    }

    fn synced(&self) -> bool {
        self.cores.iter().all(|c| c.state() == SyncState::Synced)
    }
}

fn inconsistent(s: &RoundSummary) -> bool {
    s.verdict.contains("Inconsistent")
}

/// The full correction and the allowance an inconsistent round's verdict names.
fn named(s: &RoundSummary) -> (i64, i64) {
    let number = |key: &str| -> i64 {
        let at = s.verdict.find(key).expect(key) + key.len();
        let digits: String = s.verdict[at..]
            .chars()
            .take_while(|c| *c == '-' || c.is_ascii_digit())
            .collect();
        digits.parse().expect("a number")
    };
    (number("correction: Nanos("), number("allowance: Nanos("))
}

/// Moves node 0's clock forward by `jumps[k]` before its k-th round from now, and
/// returns those rounds' summaries.
fn jump_before_rounds(c: &mut Cluster, jumps: &[i64]) -> Vec<RoundSummary> {
    let start = c.summaries[0].len();
    for (k, jump) in jumps.iter().enumerate() {
        c.skew_ns[0] += jump;
        c.run_until(start + k + 1);
    }
    c.summaries[0][start..].to_vec()
}

fn synced_cluster() -> Cluster {
    let mut c = Cluster::new(7);
    c.run_until(20);
    assert!(c.synced(), "all serving before the moves");
    c
}

/// Node 0's clock gains 3 ms at once (beyond its allowance, within what it can catch up
/// with in a round more): from node 0's side this is the cluster moving, what a noisy
/// round did to a 31-node testnet. The inconsistent round moves it by exactly its
/// allowance, its error owns up to the rest, the next round is consistent, and node 0
/// keeps serving.
#[test]
fn a_node_follows_a_cluster_that_moved_once_beyond_its_error_bar() {
    let mut c = synced_cluster();
    let after = jump_before_rounds(&mut c, &[3_000_000, 0, 0, 0, 0, 0]);
    let bad: Vec<_> = after.iter().filter(|s| inconsistent(s)).collect();
    assert_eq!(bad.len(), 1, "one inconsistent round: {after:#?}");
    let (full, allowance) = named(bad[0]);
    assert!(full < -allowance, "the clock gained: the cluster is behind");
    assert_eq!(
        bad[0].correction,
        Nanos(-allowance),
        "moved by the allowance"
    );
    assert!(bad[0].applied);
    let error = bad[0].error.expect("error");
    assert!(
        error >= Nanos(-full - allowance),
        "the error owns up to what is left: {:#?}",
        bad[0]
    );
    assert!(after.iter().all(|s| s.state == SyncState::Synced));
    let last = after.last().expect("rounds");
    assert!(
        last.correction.abs() < Nanos::from_micros(100),
        "followed: {last:#?}"
    );
}

/// Node 0's clock gains 5 ms every round: the cluster leaves it behind again each
/// round, and K inconsistent rounds quarantine it.
#[test]
fn a_node_the_cluster_keeps_leaving_still_quarantines() {
    let mut c = synced_cluster();
    let after = jump_before_rounds(&mut c, &[5_000_000; 6]);
    assert!(
        after.iter().any(|s| s.state == SyncState::Quarantined),
        "{after:#?}"
    );
    assert!(after.iter().take(3).all(inconsistent), "{after:#?}");
}

/// A 10 ms move, then quiet rounds: what is left of a move must not widen the next
/// round's allowance (else the next round would be consistent and the node would follow
/// any single move in two rounds, one unhealthy). It follows by an allowance per round,
/// cannot catch up within K rounds, and quarantines.
#[test]
fn a_move_the_node_cannot_catch_up_with_in_k_rounds_quarantines() {
    let mut c = synced_cluster();
    let after = jump_before_rounds(&mut c, &[10_000_000, 0, 0, 0, 0]);
    for s in after.iter().filter(|s| inconsistent(s) && s.applied) {
        let (_, allowance) = named(s);
        assert!(s.correction.abs() <= Nanos(allowance), "{s:#?}");
    }
    assert!(
        after.iter().any(|s| s.state == SyncState::Quarantined),
        "{after:#?}"
    );
}

/// Node 0's clock jumps five rounds ahead while it serves (spec §6). The rounds the jump
/// skipped are not run back to back, a moment each, short of readings: the node goes on
/// with the round its clock is in, where its peers show it five rounds off, and
/// quarantines for what its clock did (`offset-beyond-bound`), not for the network.
#[test]
fn a_clock_that_jumps_ahead_quarantines_for_its_offset_not_for_missing_readings() {
    let mut c = synced_cluster();
    let period = c.cores[0].params().round_period;
    let before = c.summaries[0].len();
    c.skew_ns[0] += 5 * period.0;
    while c.cores[0].state() != SyncState::Quarantined && c.summaries[0].len() < before + 6 {
        let n = c.summaries[0].len();
        c.run_until(n + 1);
    }
    let reason = c.cores[0].quarantine_reason().expect("quarantined");
    assert_eq!(reason.code(), "offset-beyond-bound", "{reason}");
    let after = &c.summaries[0][before..];
    assert!(after.len() <= 3, "rounds since the jump: {after:#?}");
}

/// A clock stepped back 3 s: the quarantine names the whole step, not what was left of
/// it by the last reading before the round ended.
#[test]
fn a_clock_stepped_back_names_the_whole_step() {
    let mut c = synced_cluster();
    let period = c.cores[0].params().round_period;
    let before = c.summaries[0].len();
    c.skew_ns[0] -= 3_000_000_000;
    c.run_until(before + 2);
    let Some(bftime_protocol::QuarantineReason::Hard {
        violation: bftime_protocol::HardViolation::LocalClockBackwards { by },
    }) = c.cores[0].quarantine_reason()
    else {
        panic!("{:?}", c.cores[0].quarantine_reason());
    };
    assert!(
        by > Nanos(3_000_000_000) - Nanos(period.0 / 4),
        "by {by} (period {period})"
    );
}

/// A `Leaving` notice under node 0's key from a process whose round labels run ahead of
/// node 0's (a restarted process counts quarter-length start-up rounds; here a second
/// process with the key, stopped): node 0 still serves, and its next answers clear the
/// notice, though its round labels are lower than the notice's.
#[test]
fn a_leaving_notice_is_cleared_by_the_next_answers_whatever_the_round_labels() {
    let mut c = synced_cluster();
    let members = c.cores[0].params().members;
    let keys: Arc<[_]> = (0..members)
        .map(|i| NodeKey::from_seed(&[i as u8 + 1; 32]).public_key())
        .collect::<Vec<_>>()
        .into();
    let cfg = CoreConfig {
        me: MemberId(0),
        members: keys.clone(),
        cluster: 3,
        params: Params::for_members(members),
        detailed_summaries: false,
        incarnation: 99,
        batch_verification: false,
    };
    let now = LocalTime(START_NS + 40 * c.cores[0].params().round_period.0);
    let (copy, _) = common::start(
        cfg,
        Box::new(FastSigner::new(keys[0])),
        Arc::new(FastSuite),
        now,
    );
    let notice = copy.leaving_notice("shutdown").expect("a notice");
    assert!(notice.decode_unverified().unwrap().round > c.cores[0].round());
    let _ = c.cores[1].handle_leaving(MemberId(0), &notice);
    let left = |c: &Cluster| {
        c.cores[1].snapshot(LocalTime(START_NS)).peers[0]
            .left
            .clone()
    };
    assert_eq!(left(&c).as_deref(), Some("shutdown"));
    let n = c.summaries[0].len();
    c.run_until(n + 2);
    assert_eq!(
        left(&c),
        None,
        "node 0 answered after the notice: it serves"
    );
}
