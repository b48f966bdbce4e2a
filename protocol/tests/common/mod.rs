//! Helpers shared by the tests that drive real cores through a hand-made network.

use std::sync::Arc;

use bftime_crypto::{CryptoSuite, Signer};
use bftime_protocol::{Action, Core, CoreConfig, LocalTime, Nanos};

/// A core started at local time `now`, and the local time of its first timer.
pub fn start(
    cfg: CoreConfig,
    signer: Box<dyn Signer>,
    suite: Arc<dyn CryptoSuite>,
    now: LocalTime,
) -> (Core, LocalTime) {
    let (core, actions) = Core::new(cfg, signer, suite, now, Nanos::ZERO).expect("core");
    let Some(Action::SetTimer { at }) = actions.first() else {
        panic!("no timer");
    };
    (core, *at)
}

/// The node whose timer fires first, and when (ties: the lowest index, so runs repeat).
pub fn earliest<T: Ord + Copy>(timers: &[T]) -> (usize, T) {
    timers
        .iter()
        .copied()
        .enumerate()
        .min_by_key(|(_, t)| *t)
        .expect("at least one node")
}
