//! Fail closed (spec §4.2): whatever bytes a peer sends back for one of our requests, the
//! core never panics and never uses them unless they are the reading the peer signed.
//! Each case mutates a genuine signed reading on the wire (a flipped bit, a cut, bytes
//! appended, bytes overwritten, or random bytes) and hands what still parses to a core
//! waiting for that answer, with signatures checked on arrival and with batches.

mod common;

use bftime_crypto::Signed;
use bftime_protocol::message::MAX_READING_WIRE_BYTES;
use bftime_protocol::{
    Action, Core, CoreConfig, LocalTime, MemberId, Params, Reading, ResponseOutcome,
};
use proptest::prelude::*;
use rand::SeedableRng;
use rand::rngs::StdRng;

const N: usize = 4;

/// Core 0 with one request to core 1 outstanding.
struct Waiting {
    core: Core,
    /// Core 1's genuine answer.
    genuine: Signed<Reading>,
    /// When the request left and when the answer arrives.
    sent: LocalTime,
    at: LocalTime,
    timer: LocalTime,
    rng: StdRng,
}

impl Waiting {
    /// Runs core 0's timers to the end of its round: the late rejections it reported, and
    /// whether the round used an interval from core 1.
    fn finish_round(&mut self) -> (usize, bool) {
        let mut late = 0;
        for _ in 0..10_000 {
            let now = self.timer.max(self.at);
            for a in self.core.handle_timer(now, &mut self.rng) {
                match a {
                    Action::SetTimer { at } => self.timer = at,
                    Action::ReadingRejected { .. } => late += 1,
                    Action::RoundCompleted(s) => {
                        return (late, s.intervals.iter().any(|(m, _)| *m == MemberId(1)));
                    }
                    _ => {}
                }
            }
        }
        panic!("the round never ended");
    }
}

fn waiting_for_an_answer(batch_verification: bool) -> Waiting {
    let (mut cores, timers) = common::cores(N, |i, members| CoreConfig {
        me: MemberId(i as u16),
        members,
        cluster: 9,
        params: Params::for_members(N),
        detailed_summaries: true,
        incarnation: 1,
        batch_verification,
    });
    let mut timers = timers;
    let mut rng = StdRng::seed_from_u64(3);
    // Core 0's timers until it asks core 1.
    for _ in 0..1000 {
        let now = timers[0];
        for a in cores[0].handle_timer(now, &mut rng) {
            match a {
                Action::SetTimer { at } => timers[0] = at,
                Action::SendRequest {
                    to: MemberId(1),
                    request,
                } => {
                    let answer = cores[1]
                        .handle_request(MemberId(0), &request, now, now)
                        .expect("an honest request is answered");
                    let core = cores.swap_remove(0);
                    return Waiting {
                        core,
                        genuine: answer,
                        sent: now,
                        at: LocalTime(now.0 + 200_000),
                        timer: timers[0],
                        rng,
                    };
                }
                _ => {}
            }
        }
    }
    panic!("core 0 never asked core 1");
}

/// One way of damaging the bytes on the wire.
#[derive(Debug, Clone)]
enum Damage {
    FlipBit(usize),
    Cut(usize),
    Append(Vec<u8>),
    Overwrite(usize, Vec<u8>),
    Replace(Vec<u8>),
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        any::<usize>().prop_map(Damage::FlipBit),
        any::<usize>().prop_map(Damage::Cut),
        prop::collection::vec(any::<u8>(), 1..64).prop_map(Damage::Append),
        (any::<usize>(), prop::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(at, b)| Damage::Overwrite(at, b)),
        prop::collection::vec(any::<u8>(), 0..300).prop_map(Damage::Replace),
    ]
}

fn apply(wire: &[u8], d: &Damage) -> Vec<u8> {
    let mut w = wire.to_vec();
    match d {
        Damage::FlipBit(bit) => {
            let bit = bit % (w.len() * 8);
            w[bit / 8] ^= 1 << (bit % 8);
        }
        Damage::Cut(at) => w.truncate(at % w.len()),
        Damage::Append(more) => w.extend_from_slice(more),
        Damage::Overwrite(at, bytes) => {
            let at = at % w.len();
            for (k, b) in bytes.iter().enumerate() {
                if let Some(x) = w.get_mut(at + k) {
                    *x = *b;
                }
            }
        }
        Damage::Replace(bytes) => w = bytes.clone(),
    }
    w
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn damaged_answers_are_never_used(d in damage(), batch in any::<bool>()) {
        let mut w = waiting_for_an_answer(batch);
        let wire = w.genuine.to_wire();
        let hostile = apply(&wire, &d);
        prop_assume!(hostile != wire);
        let before = w.core.rejected().total();
        // What does not parse is dropped by the network layer (counted there).
        let Ok(signed) = Signed::<Reading>::from_wire(&hostile, MAX_READING_WIRE_BYTES) else {
            return Ok(());
        };
        let outcome = w.core.handle_response(MemberId(1), &signed, w.sent, w.at);
        // A batch may take a forged reading into the chain and check it when the round
        // ends: it is counted then, and never used.
        let (late, used) = w.finish_round();
        prop_assert!(!used, "a damaged answer was used: {:?}", d);
        match outcome {
            ResponseOutcome::Rejected(_) => {
                prop_assert_eq!(w.core.rejected().total(), before + 1);
                prop_assert_eq!(late, 0);
            }
            ResponseOutcome::Accepted => {
                prop_assert!(batch, "checked on arrival, a damaged answer is accepted: {:?}", d);
                prop_assert_eq!(late, 1, "a damaged answer taken into a batch is not caught: {:?}", d);
            }
        }
    }

    /// The genuine answer, for contrast: it is used.
    #[test]
    fn the_genuine_answer_is_used(batch in any::<bool>()) {
        let mut w = waiting_for_an_answer(batch);
        let genuine = w.genuine.clone();
        let outcome = w.core.handle_response(MemberId(1), &genuine, w.sent, w.at);
        prop_assert!(matches!(outcome, ResponseOutcome::Accepted));
        prop_assert_eq!(w.finish_round(), (0, true));
    }
}
