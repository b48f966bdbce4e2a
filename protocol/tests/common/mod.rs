//! Helpers shared by the tests that drive real cores through a hand-made network.

// Each test binary that includes this uses some of them.
#![allow(dead_code)]

use std::sync::Arc;

use bftime_crypto::{CryptoSuite, Ed25519Suite, NodeKey, PublicKey, Signer};
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

/// `n` cores with ed25519 keys from fixed seeds (member i's seed is i + 1 in every byte),
/// each configured by `config(i, members)` and started at the same local time: the cores
/// and the local times of their first timers.
pub fn cores(
    n: usize,
    config: impl Fn(usize, Arc<[PublicKey]>) -> CoreConfig,
) -> (Vec<Core>, Vec<LocalTime>) {
    let keys: Vec<NodeKey> = (0..n)
        .map(|i| NodeKey::from_seed(&[i as u8 + 1; 32]))
        .collect();
    let members: Arc<[PublicKey]> = keys
        .iter()
        .map(|k| k.public_key())
        .collect::<Vec<_>>()
        .into();
    keys.into_iter()
        .enumerate()
        .map(|(i, key)| {
            start(
                config(i, members.clone()),
                Box::new(key),
                Arc::new(Ed25519Suite),
                LocalTime(1_000_000_000_000),
            )
        })
        .unzip()
}
