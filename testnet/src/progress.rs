//! The progress line a long simulation prints on a terminal (see
//! [`crate::Simulation::with_progress`]): the round reached and the wall time so far,
//! rewritten in place, cleared at the end. It only prints; the run does not depend on it.

use std::time::{Duration, Instant};

/// The progress line of a long run.
pub(crate) struct Progress {
    on: bool,
    rounds: u64,
    started: Instant,
    last: Option<Instant>,
}

impl Progress {
    /// How often the line is rewritten.
    const EVERY: Duration = Duration::from_millis(500);

    pub(crate) fn new(on: bool, rounds: u64) -> Progress {
        Progress {
            on,
            rounds,
            started: Instant::now(),
            last: None,
        }
    }

    /// Round `done` (of `rounds`) has been measured.
    pub(crate) fn round(&mut self, done: u64) {
        if !self.on {
            return;
        }
        let now = Instant::now();
        let since = self.last.unwrap_or(self.started);
        if now.duration_since(since) < Self::EVERY {
            return;
        }
        self.last = Some(now);
        eprint!(
            "\rsimulating: round {done}/{} after {:.1} s ",
            self.rounds,
            now.duration_since(self.started).as_secs_f64()
        );
    }

    /// Clears the line, if one was printed.
    pub(crate) fn finish(&self) {
        if self.last.is_some() {
            eprint!("\r{:60}\r", "");
        }
    }
}
