//! Helpers shared by the tests that drive real cores through a hand-made network.

/// The node whose timer fires first, and when (ties: the lowest index, so runs repeat).
pub fn earliest<T: Ord + Copy>(timers: &[T]) -> (usize, T) {
    timers
        .iter()
        .copied()
        .enumerate()
        .min_by_key(|(_, t)| *t)
        .expect("at least one node")
}
