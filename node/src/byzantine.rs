//! Testnet only: what a Byzantine node answers instead of the honest reading. It signs
//! its lies with its own key (it has no one else's), which is exactly the power a real
//! faulty member has; the simulator's strategies (testnet crate) do the same.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bftime_crypto::{NodeKey, Signed};
use bftime_protocol::{MemberId, Nanos, Reading, SyncState};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use crate::testing::{Behaviour, TestingConfig};

/// How to answer one request.
#[derive(Debug)]
pub enum Answer {
    Now(Signed<Reading>),
    After(Signed<Reading>, Duration),
    Silent,
}

/// A node's behaviour when answering (honest unless the testnet says otherwise).
#[derive(Debug)]
pub struct Responder {
    behaviour: Behaviour,
    lie: Nanos,
    slow_max: Duration,
    rng: StdRng,
    replay: HashMap<MemberId, Signed<Reading>>,
    key: Arc<NodeKey>,
}

impl Responder {
    pub fn new(testing: Option<&TestingConfig>, key: Arc<NodeKey>) -> Self {
        let (behaviour, lie_ms, slow_ms, seed) = match testing {
            Some(t) => (t.behaviour, t.lie_ms, t.slow_max_ms, t.seed),
            None => (Behaviour::None, 0.0, 0.0, 0),
        };
        Responder {
            behaviour,
            lie: Nanos((lie_ms * 1e6) as i64),
            slow_max: Duration::from_secs_f64(slow_ms / 1e3),
            rng: StdRng::seed_from_u64(seed),
            replay: HashMap::new(),
            key,
        }
    }

    pub fn behaviour(&self) -> Behaviour {
        self.behaviour
    }

    /// Byzantine nodes never announce that they leave: they keep answering.
    pub fn announces_leaving(&self) -> bool {
        self.behaviour == Behaviour::None
    }

    /// Turns the honest answer into this node's answer. `error` is the node's own
    /// current error bound (what `boundary` believes the agreed half-width is).
    pub fn answer(
        &mut self,
        requester: MemberId,
        honest: Signed<Reading>,
        error: Option<Nanos>,
    ) -> Answer {
        let shift = match self.behaviour {
            Behaviour::None => return Answer::Now(honest),
            Behaviour::Mute => return Answer::Silent,
            Behaviour::Slow => {
                let max = self.slow_max.as_nanos() as u64;
                let d = if max == 0 {
                    0
                } else {
                    self.rng.random_range(0..=max)
                };
                return Answer::After(honest, Duration::from_nanos(d));
            }
            Behaviour::Replay => {
                let old = self
                    .replay
                    .entry(requester)
                    .or_insert_with(|| honest.clone());
                return Answer::Now(old.clone());
            }
            Behaviour::Liar | Behaviour::Forger => self.lie,
            Behaviour::TwoFaced => {
                if requester.0.is_multiple_of(2) {
                    self.lie
                } else {
                    -self.lie
                }
            }
            Behaviour::Random => Nanos(self.rng.random_range(-self.lie.0..=self.lie.0)),
            Behaviour::Boundary => error.unwrap_or(Nanos::ZERO),
        };
        let Ok(mut r) = honest.decode_unverified() else {
            return Answer::Now(honest);
        };
        r.receive += shift;
        r.transmit += shift;
        // A liar claims to be synced and perfectly accurate, whatever its own state, and
        // to have corrected by the most a reading can say, the way its lie pulls (a
        // `boundary` node pulls the cluster fast: the lowest, so that every correct
        // node's own correction looks large against the median, spec §3.3).
        r.error = Some(Nanos::ZERO);
        r.state = SyncState::Synced;
        let extreme = bftime_protocol::reading_codec::MAX_CORRECTION;
        r.last_correction = Some(match self.behaviour {
            Behaviour::Boundary => -extreme,
            _ if shift < Nanos::ZERO => -extreme,
            _ => extreme,
        });
        match Signed::sign(&r, &self.key) {
            Ok(s) if self.behaviour == Behaviour::Forger => {
                let mut broken = *s.signature();
                broken.0[17] ^= 0x10;
                Answer::Now(Signed::from_slices(s.body(), broken))
            }
            Ok(s) => Answer::Now(s),
            Err(_) => Answer::Now(honest),
        }
    }
}
