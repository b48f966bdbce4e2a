//! Chained nonces and heads (spec §2.3, §2.6), driven through real cores exchanging
//! messages instantly: what an auditor recomputes from a log must match what the core
//! actually sent and signed.

mod common;

use bftime_crypto::{Ed25519Suite, NodeKey, Signed};
use bftime_protocol::message::{derive_nonce, head_chain};
use bftime_protocol::{
    Action, Core, CoreConfig, LocalTime, MemberId, Params, Reading, RejectReason, RoundSummary,
};
use rand::SeedableRng;
use rand::rngs::StdRng;

struct Net {
    cores: Vec<Core>,
    timers: Vec<LocalTime>,
    summaries: Vec<Vec<RoundSummary>>,
    /// Every reading each responder signed, as (responder, reading).
    signed: Vec<(MemberId, Signed<Reading>)>,
    rng: StdRng,
    /// (requester, responder): every reading between them arrives with a flipped
    /// signature bit.
    forge: Option<(usize, MemberId)>,
    /// How many of those readings to forge (then honest again).
    forge_left: usize,
    /// After a forged reading, this many more responses to its requester, then a second,
    /// genuine answer with another body to the same request (double signing).
    double_after: Option<usize>,
    double_pending: Option<(MemberId, Signed<Reading>, usize)>,
    /// Readings a core rejected after accepting them (batch verification), as
    /// (requester, responder, reason).
    rejected_late: Vec<(usize, MemberId, RejectReason)>,
}

fn net(n: usize) -> Net {
    net_with(n, false)
}

fn net_with(n: usize, batch_verification: bool) -> Net {
    net_exchanging(n, batch_verification, 1)
}

/// `exchanges` requests to each peer per round.
fn net_exchanging(n: usize, batch_verification: bool, exchanges: u32) -> Net {
    let (cores, timers) = common::cores(n, |i, members| CoreConfig {
        me: MemberId(i as u16),
        members,
        cluster: 9,
        params: Params {
            exchanges_per_round: exchanges,
            ..Params::for_members(n)
        },
        detailed_summaries: true,
        incarnation: 1000 * i as u64,
        batch_verification,
    });
    Net {
        summaries: vec![Vec::new(); n],
        cores,
        timers,
        signed: Vec::new(),
        rng: StdRng::seed_from_u64(5),
        forge: None,
        forge_left: usize::MAX,
        double_after: None,
        double_pending: None,
        rejected_late: Vec::new(),
    }
}

impl Net {
    /// Runs until every node has completed `rounds` rounds.
    fn run(&mut self, rounds: usize) {
        while self.summaries.iter().any(|s| s.len() < rounds) {
            let (i, now) = common::earliest(&self.timers);
            let actions = self.cores[i].handle_timer(now, &mut self.rng);
            for a in actions {
                match a {
                    Action::SetTimer { at } => self.timers[i] = at,
                    Action::SendRequest { to, request } => {
                        let from = MemberId(i as u16);
                        let reading = self.cores[to.index()]
                            .handle_request(from, &request, now, now)
                            .expect("honest request answered");
                        self.signed.push((to, reading.clone()));
                        let reading = if self.forge == Some((i, to)) && self.forge_left > 0 {
                            self.forge_left -= 1;
                            if let Some(k) = self.double_after {
                                self.double_pending = Some((to, reading.clone(), k));
                            }
                            let mut signature = *reading.signature();
                            signature.0[40] ^= 4;
                            Signed::from_slices(reading.body(), signature)
                        } else {
                            reading
                        };
                        let _ = self.cores[i].handle_response(to, &reading, now, now);
                        if Some(i) == self.forge.map(|f| f.0)
                            && let Some((by, genuine, left)) = self.double_pending.take()
                        {
                            if left > 0 {
                                self.double_pending = Some((by, genuine, left - 1));
                            } else {
                                let mut other = genuine.decode_unverified().expect("reading");
                                other.transmit.0 += 1;
                                let key = NodeKey::from_seed(&[by.0 as u8 + 1; 32]);
                                let second = Signed::sign(&other, &key).expect("signed");
                                let _ = self.cores[i].handle_response(by, &second, now, now);
                            }
                        }
                    }
                    Action::RoundCompleted(s) => self.summaries[i].push(*s),
                    Action::StateChanged(_) => {}
                    Action::ReadingRejected { from, reason } => {
                        self.rejected_late.push((i, from, reason));
                    }
                }
            }
        }
    }
}

#[test]
fn summaries_let_an_auditor_recompute_every_nonce_and_head() {
    for batch in [false, true] {
        let mut net = net_with(4, batch);
        net.run(6);
        auditor_recomputes_every_nonce_and_head(&net);
    }
}

fn auditor_recomputes_every_nonce_and_head(net: &Net) {
    let suite = Ed25519Suite;
    for (i, sums) in net.summaries.iter().enumerate() {
        for pair in sums.windows(2) {
            // A round chains from the head the previous round committed to.
            assert_eq!(pair[1].head_used, pair[0].head, "node {i}");
        }
        for s in sums {
            let digests: Vec<[u8; 32]> = s.readings.iter().map(|r| r.digest(&suite)).collect();
            let heads = head_chain(&suite, &s.head_used, &digests);
            assert_eq!(heads.last(), Some(&s.head), "node {i}");
            assert_eq!(s.nonce_from.len(), s.readings.len());
            for (r, &from) in s.readings.iter().zip(&s.nonce_from) {
                let body = r.decode_unverified().expect("reading");
                // `seq` counts the requests to one responder in the round.
                assert!(
                    (0..16).any(|seq| body.nonce
                        == derive_nonce(
                            &suite,
                            &heads[usize::from(from)],
                            &s.salt,
                            body.responder,
                            seq
                        )),
                    "node {i} round {}",
                    s.round
                );
            }
        }
        // Requests chain from readings accepted earlier in the same round, not only
        // from the last round's head (that is what makes short proofs possible).
        assert!(
            sums.iter().any(|s| s.nonce_from.iter().any(|&f| f > 0)),
            "node {i}: some nonce chains within a round"
        );
        assert!(
            sums.iter().any(|s| s.readings.len() >= 2),
            "node {i} used readings"
        );
    }
    // Every reading carries a head its responder actually had: one of the heads its
    // accepted readings walk through (or the genesis head). Readings signed in a round
    // the responder has not finished carry heads no summary shows yet.
    for (responder, signed) in &net.signed {
        let body = signed.decode_unverified().expect("reading");
        let finished = net.summaries[responder.index()].last().map(|s| s.round);
        if finished.is_none_or(|r| body.responder_round > r) {
            continue;
        }
        let known = net.summaries[responder.index()].iter().any(|s| {
            let digests: Vec<[u8; 32]> = s.readings.iter().map(|r| r.digest(&suite)).collect();
            head_chain(&suite, &s.head_used, &digests).contains(&body.head)
        });
        assert!(
            body.head == [0; 32] || known,
            "reading from {responder} carries an unknown head"
        );
    }
}

/// Spec §4.2: checking honest readings' signatures in batches, after they are chained,
/// changes nothing a node decides, signs or logs.
#[test]
fn batch_verification_changes_nothing_for_honest_readings() {
    let mut one_by_one = net_with(4, false);
    let mut batched = net_with(4, true);
    one_by_one.run(6);
    batched.run(6);
    assert_eq!(one_by_one.signed, batched.signed);
    for (a, b) in one_by_one.summaries.iter().zip(&batched.summaries) {
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(b) {
            assert_eq!(
                (x.round, x.correction, x.applied, x.error, x.readings_used),
                (y.round, y.correction, y.applied, y.error, y.readings_used)
            );
            assert_eq!((&x.readings, &x.nonce_from), (&y.readings, &y.nonce_from));
            assert_eq!((x.head_used, x.head), (y.head_used, y.head));
            assert_eq!(x.intervals, y.intervals);
        }
    }
    assert!(batched.rejected_late.is_empty());
}

/// Spec §4.2: under batch verification a forged reading is chained when it arrives (the
/// head hashed its bytes, so the nonce chain still recomputes) but it is never used: its
/// peer has no interval in that round, and it counts as `bad-signature`. From then on the
/// forger's readings are checked alone, on arrival, like every reading when checked one
/// by one: refused and never chained.
#[test]
fn a_forged_reading_is_chained_but_never_used() {
    let suite = Ed25519Suite;
    let forger = MemberId(1);
    let forger_key = NodeKey::from_seed(&[2; 32]).public_key();
    for exchanges in [1, 2] {
        let mut net = net_exchanging(4, true, exchanges);
        net.forge = Some((0, forger));
        net.run(5);
        auditor_recomputes_every_nonce_and_head(&net);
        let mut chained = Vec::new();
        for s in &net.summaries[0] {
            for r in &s.readings {
                let body = r.decode_unverified().expect("reading");
                if body.responder == forger {
                    assert!(r.verify(&suite, &forger_key).is_err(), "chained, forged");
                    assert!(
                        s.intervals.iter().all(|(m, _)| *m != forger),
                        "round {}: the forger's sample was used",
                        s.round
                    );
                    chained.push(s.round);
                }
            }
        }
        // Caught at the first batch check; checked alone on arrival after that.
        assert_eq!(
            chained.len(),
            exchanges as usize,
            "{exchanges}: {chained:?}"
        );
        assert!(chained.iter().all(|&r| r == chained[0]), "one round");
        let sent = net
            .signed
            .iter()
            .filter(|(by, r)| {
                *by == forger
                    && r.decode_unverified()
                        .is_ok_and(|b| b.requester == MemberId(0))
            })
            .count() as u64;
        assert!(
            sent >= 4 * u64::from(exchanges),
            "the forger answered node 0 ({sent})"
        );
        assert_eq!(
            net.cores[0].rejected().get(RejectReason::BadSignature),
            sent
        );
        let late: Vec<_> = net
            .rejected_late
            .iter()
            .filter(|(i, _, _)| *i == 0)
            .collect();
        assert_eq!(late.len(), exchanges as usize);
        assert!(
            late.iter()
                .all(|(_, m, r)| *m == forger && *r == RejectReason::BadSignature)
        );
        // The other nodes used the forger's honest readings.
        assert!(
            net.summaries[2]
                .iter()
                .any(|s| s.intervals.iter().any(|(m, _)| *m == forger))
        );
    }

    // Caught by a batch checked mid-round (16 exchanges per peer: 48 readings a round),
    // the forger's later readings that round are genuine, checked alone, chained, and
    // still not used: the round's forged reading is unused only if its peer has no
    // interval that round. The next rounds use it again.
    let mut net = net_exchanging(4, true, 16);
    net.forge = Some((0, forger));
    net.forge_left = 1;
    net.run(4);
    auditor_recomputes_every_nonce_and_head(&net);
    let caught = net.summaries[0]
        .iter()
        .find(|s| {
            s.readings
                .iter()
                .any(|r| r.verify(&suite, &forger_key).is_err())
        })
        .expect("the forged reading is chained");
    let from_forger = caught
        .readings
        .iter()
        .filter(|r| r.decode_unverified().is_ok_and(|b| b.responder == forger))
        .count();
    assert!(from_forger > 1, "genuine readings followed in that round");
    assert!(caught.intervals.iter().all(|(m, _)| *m != forger));
    assert!(
        net.summaries[0]
            .iter()
            .any(|s| s.round > caught.round && s.intervals.iter().any(|(m, _)| *m == forger))
    );
    assert_eq!(net.cores[0].rejected().get(RejectReason::BadSignature), 1);

    // A second, genuine answer to the forged reading's request, after a mid-round batch
    // caught the forgery: double signing needs two genuine answers, so no evidence.
    let mut net = net_exchanging(4, true, 16);
    net.forge = Some((0, forger));
    net.forge_left = 1;
    net.double_after = Some(34);
    net.run(3);
    let duplicates: Vec<_> = net.summaries[0]
        .iter()
        .flat_map(|s| &s.duplicates)
        .collect();
    assert!(
        duplicates
            .iter()
            .all(|(a, b)| a.verify(&suite, &forger_key).is_ok()
                && b.verify(&suite, &forger_key).is_ok()),
        "evidence with a forged half"
    );
    assert!(
        net.cores[0].rejected().get(RejectReason::Duplicate) >= 1,
        "the second answer came"
    );

    let mut strict = net_with(4, false);
    strict.forge = Some((0, forger));
    strict.run(5);
    auditor_recomputes_every_nonce_and_head(&strict);
    assert!(strict.summaries[0].iter().all(|s| {
        s.readings
            .iter()
            .all(|r| r.decode_unverified().is_ok_and(|b| b.responder != forger))
    }));
    assert!(strict.cores[0].rejected().get(RejectReason::BadSignature) >= 3);
    assert!(strict.rejected_late.is_empty());
}

#[test]
fn a_responder_signs_one_reading_per_nonce_and_round() {
    let mut net = net(4);
    net.run(2);
    let mut rng = StdRng::seed_from_u64(1);
    let now = net.timers[1];
    // Find a request core 0 makes, then ask core 1 twice with it.
    let request = loop {
        let t = net.timers[0];
        let actions = net.cores[0].handle_timer(t.max(now), &mut rng);
        let mut found = None;
        for a in actions {
            match a {
                Action::SetTimer { at } => net.timers[0] = at,
                Action::SendRequest {
                    to: MemberId(1),
                    request,
                } => found = Some(request),
                _ => {}
            }
        }
        if let Some(r) = found {
            break r;
        }
    };
    let t = net.timers[0];
    let first = net.cores[1].handle_request(MemberId(0), &request, t, t);
    assert!(first.is_ok());
    let second = net.cores[1].handle_request(MemberId(0), &request, t, t);
    assert_eq!(second.err(), Some(RejectReason::Duplicate));
}

#[test]
fn the_summary_snapshot_is_the_full_one_without_peer_rows() {
    let mut net = net(4);
    net.run(2);
    let now = LocalTime(1_000_000_000_000 + 10_000_000_000);
    for core in &net.cores {
        let full = core.snapshot(now);
        let mut summary = core.snapshot_summary(now);
        assert_eq!(full.peers.len(), 3);
        assert!(summary.peers.is_empty());
        summary.peers = full.peers.clone();
        assert_eq!(summary, full);
    }
}

/// The simulator signs readings in place (`Core::sign_reading_to`) and has them checked
/// where they lie (`Core::handle_response_parts`): the same bytes as a whole `Signed`.
#[test]
fn a_reading_signed_in_place_is_the_signed_reading() {
    let mut net = net(4);
    let now = LocalTime(1_000_000_000_000);
    let request = bftime_protocol::Request {
        cluster: 9,
        round: 0,
        nonce: [3; 32],
    };
    let reading = net.cores[1]
        .answer_request(MemberId(0), &request, now, now)
        .expect("answered");
    let whole = net.cores[1].sign_reading(&reading).expect("signed");
    let mut body = [0u8; bftime_protocol::reading_codec::READING_BODY_BYTES];
    let signature = net.cores[1].sign_reading_to(&reading, &mut body);
    let parts = bftime_crypto::SignedParts::new(&body, &signature);
    assert_eq!(parts.to_signed(), whole);
    assert_eq!(
        parts.verify(&Ed25519Suite, &NodeKey::from_seed(&[2; 32]).public_key()),
        Ok(reading)
    );
    assert_eq!(parts.digest(&Ed25519Suite), whole.digest(&Ed25519Suite));
}

/// A second answer to one request that says something else is kept for the round's
/// summary (the audit log's proof of double signing); the same signed reading again is
/// only a duplicate, since it states nothing new.
#[test]
fn a_second_answer_that_says_something_else_is_kept_as_evidence() {
    for batch in [false, true] {
        second_answers_as_evidence(batch);
    }
}

fn second_answers_as_evidence(batch: bool) {
    use bftime_protocol::ResponseOutcome;
    let timer_of = |actions: &[Action]| {
        actions
            .iter()
            .find_map(|a| match a {
                Action::SetTimer { at } => Some(*at),
                _ => None,
            })
            .expect("a timer")
    };
    let mut net = net_with(4, batch);
    let mut now = net.timers[0];
    // The node's own timers until it sends its first request.
    let (to, request, mut next_timer) = loop {
        let actions = net.cores[0].handle_timer(now, &mut net.rng);
        let next = timer_of(&actions);
        if let Some((to, request)) = actions.iter().find_map(|a| match a {
            Action::SendRequest { to, request } => Some((*to, *request)),
            _ => None,
        }) {
            break (to, request, next);
        }
        now = next;
    };
    let first = net.cores[to.index()]
        .handle_request(MemberId(0), &request, now, now)
        .expect("answered");
    let core = &mut net.cores[0];
    assert_eq!(
        core.handle_response(to, &first, now, now),
        ResponseOutcome::Accepted
    );
    let duplicate = ResponseOutcome::Rejected(RejectReason::Duplicate);
    assert_eq!(core.handle_response(to, &first, now, now), duplicate);
    let mut other = first.decode_unverified().expect("reading");
    other.transmit = bftime_protocol::ClusterTime(other.transmit.0 + 1);
    let responder_key = NodeKey::from_seed(&[to.0 as u8 + 1; 32]);
    let second = Signed::sign(&other, &responder_key).expect("signed");
    assert_eq!(core.handle_response(to, &second, now, now), duplicate);
    // A different body under a forged signature proves nothing and is not kept.
    other.transmit = bftime_protocol::ClusterTime(other.transmit.0 + 1);
    let mut forged = Signed::sign(&other, &responder_key).expect("signed");
    let mut signature = *forged.signature();
    signature.0[3] ^= 1;
    forged = Signed::from_slices(forged.body(), signature);
    let refused = if batch {
        duplicate
    } else {
        ResponseOutcome::Rejected(RejectReason::BadSignature)
    };
    assert_eq!(core.handle_response(to, &forged, now, now), refused);
    // Run the node's own timers (its other requests go unanswered) to the round's end.
    let summary = loop {
        now = next_timer;
        let actions = core.handle_timer(now, &mut net.rng);
        if let Some(s) = actions.iter().find_map(|a| match a {
            Action::RoundCompleted(s) => Some(s.clone()),
            _ => None,
        }) {
            break s;
        }
        next_timer = timer_of(&actions);
    };
    assert_eq!(summary.duplicates, vec![(first, second)]);
}

/// Drives core `i` alone through its timers (dropping what it sends) until it asks
/// `peer`: that request, and the local time it went out.
fn next_request_to(
    net: &mut Net,
    i: usize,
    peer: MemberId,
    rng: &mut StdRng,
) -> (bftime_protocol::Request, LocalTime) {
    for _ in 0..10_000 {
        let t = net.timers[i];
        let mut found = None;
        for a in net.cores[i].handle_timer(t, rng) {
            match a {
                Action::SetTimer { at } => net.timers[i] = at,
                Action::SendRequest { to, request } if to == peer => found = Some(request),
                _ => {}
            }
        }
        if let Some(r) = found {
            return (r, t);
        }
    }
    panic!("core {i} never asked {peer:?}");
}

/// Spec §4.2: a response is used only if it is signed by the member it came from,
/// names that member as responder, this node as requester and this cluster, answers a
/// nonce this node sent in the round the reading names and still waits for, and its
/// timestamps are in order. Each bad variant is refused with its own reason and counted,
/// and none of them spends the nonce: the genuine answer is still accepted afterwards,
/// once.
#[test]
fn every_bad_response_is_refused_with_its_reason() {
    use bftime_protocol::ResponseOutcome;
    let mut net = net(4);
    net.run(2);
    let mut rng = StdRng::seed_from_u64(11);
    let (request, sent) = next_request_to(&mut net, 0, MemberId(1), &mut rng);
    let arrived = LocalTime(sent.0 + 300_000);
    let honest = net.cores[1]
        .answer_request(MemberId(0), &request, sent, sent)
        .expect("answered");
    let key = |m: u16| NodeKey::from_seed(&[m as u8 + 1; 32]);
    let signed_by = |m: u16, r: &Reading| Signed::sign(r, &key(m)).expect("signed");
    let refused = |net: &mut Net, from: u16, signed: &Signed<Reading>, t1, t4| match net.cores[0]
        .handle_response(MemberId(from), signed, t1, t4)
    {
        ResponseOutcome::Rejected(reason) => reason,
        ResponseOutcome::Accepted => panic!("accepted"),
    };
    let variant = |f: &dyn Fn(&mut Reading)| {
        let mut r = honest;
        f(&mut r);
        r
    };
    let cases: Vec<(&str, u16, Signed<Reading>, RejectReason)> = vec![
        (
            "signed by another member",
            1,
            signed_by(2, &honest),
            RejectReason::BadSignature,
        ),
        (
            "names another responder than its signer",
            2,
            signed_by(2, &honest),
            RejectReason::WrongResponder,
        ),
        (
            "another cluster",
            1,
            signed_by(1, &variant(&|r| r.cluster ^= 1)),
            RejectReason::WrongCluster,
        ),
        (
            "another requester",
            1,
            signed_by(1, &variant(&|r| r.requester = MemberId(2))),
            RejectReason::WrongRequester,
        ),
        (
            "a nonce never sent",
            1,
            signed_by(1, &variant(&|r| r.nonce[0] ^= 1)),
            RejectReason::UnknownNonce,
        ),
        (
            "another round than the request's",
            1,
            signed_by(1, &variant(&|r| r.round += 1)),
            RejectReason::ForeignRound,
        ),
    ];
    for (what, from, signed, want) in &cases {
        let before = net.cores[0].rejected().get(*want);
        assert_eq!(
            refused(&mut net, *from, signed, sent, arrived),
            *want,
            "{what}"
        );
        assert_eq!(
            net.cores[0].rejected().get(*want),
            before + 1,
            "{what} counted"
        );
    }
    let genuine = signed_by(1, &honest);
    let bad_timestamps = net.cores[0].rejected().get(RejectReason::BadTimestamps);
    assert_eq!(
        refused(&mut net, 1, &genuine, arrived, sent),
        RejectReason::BadTimestamps,
        "answered before it was asked"
    );
    assert_eq!(
        refused(&mut net, 1, &genuine, LocalTime(sent.0 - 1), arrived),
        RejectReason::BadTimestamps,
        "sent before the request existed"
    );
    assert_eq!(
        net.cores[0].rejected().get(RejectReason::BadTimestamps),
        bad_timestamps + 2
    );
    assert_eq!(
        net.cores[0].handle_response(MemberId(1), &genuine, sent, arrived),
        ResponseOutcome::Accepted,
        "the nonce was not spent by the refusals"
    );
    assert_eq!(
        refused(&mut net, 1, &genuine, sent, arrived),
        RejectReason::Duplicate
    );

    // A request left unanswered past its round's end is stale.
    let (request, sent) = next_request_to(&mut net, 0, MemberId(2), &mut rng);
    let late = net.cores[2]
        .answer_request(MemberId(0), &request, sent, sent)
        .expect("answered");
    let round = net.cores[0].round();
    while net.cores[0].round() == round {
        let t = net.timers[0];
        for a in net.cores[0].handle_timer(t, &mut rng) {
            if let Action::SetTimer { at } = a {
                net.timers[0] = at;
            }
        }
    }
    let now = net.timers[0];
    let stale = net.cores[0].rejected().get(RejectReason::Stale);
    assert_eq!(
        refused(&mut net, 2, &signed_by(2, &late), sent, now),
        RejectReason::Stale
    );
    assert_eq!(net.cores[0].rejected().get(RejectReason::Stale), stale + 1);
}

/// The time source a node's API serves `/now` from says exactly what its core says, at
/// any local time until the core's next timer event.
#[test]
fn a_time_source_serves_what_its_core_serves() {
    let mut net = net(4);
    net.run(6);
    for (core, &timer) in net.cores.iter().zip(&net.timers) {
        let source = core.time_source();
        for dt in [0, 1, 1_000, 999_999, 123_456_789] {
            let t = LocalTime(timer.0 - dt);
            assert_eq!(source.now(t), core.now(t), "at {t:?}");
        }
        assert!(source.now(timer).serving);
    }
}
