//! What the driver writes to the audit log, turned from core actions into records.

use std::time::Duration;

use bftime_protocol::{RejectCounts, RoundSummary, Transition};

use super::record::{
    IntervalRow, Payload, RoundPayload, ShutdownPayload, StatePayload, StepPayload,
};
use super::writer::AuditHandle;

/// The driver's side of the audit log.
#[derive(Debug)]
pub struct Journal {
    handle: AuditHandle,
    last_rejected: RejectCounts,
    last_refused: u64,
    quarantine_on_failure: bool,
    failure_reported: bool,
}

impl Journal {
    pub fn new(handle: AuditHandle, quarantine_on_failure: bool) -> Journal {
        Journal {
            handle,
            last_rejected: RejectCounts::default(),
            last_refused: 0,
            quarantine_on_failure,
            failure_reported: false,
        }
    }

    pub fn status(&self) -> &super::writer::AuditStatus {
        &self.handle.status
    }

    /// When the writer has failed: whether the node must (stay in) quarantine for it,
    /// and whether this is the first time it is asked.
    pub fn failure(&mut self) -> Option<(bool, bool)> {
        if !self.handle.failed() {
            return None;
        }
        let first = !self.failure_reported;
        self.failure_reported = true;
        Some((self.quarantine_on_failure, first))
    }

    /// A round ended: its record (and a `step` record if the clock stepped).
    pub fn round(
        &mut self,
        s: &RoundSummary,
        rejected: &RejectCounts,
        requests_refused: u64,
        cluster_time_ns: i64,
    ) {
        let delta: Vec<(String, u64)> = rejected
            .nonzero()
            .filter_map(|(r, n)| {
                let d = n - self.last_rejected.get(r);
                (d > 0).then(|| (r.as_str().to_owned(), d))
            })
            .collect();
        self.last_rejected = *rejected;
        let refused = requests_refused - self.last_refused.min(requests_refused);
        self.last_refused = requests_refused;
        let payload = RoundPayload {
            state: s.state,
            correction_ns: s.correction.0,
            applied: s.applied,
            stepped: s.stepped,
            error_ns: s.error.map(|e| e.0),
            rate_ppm: s.rate.0,
            verdict: s.verdict.clone(),
            suspects: s.suspects.iter().map(|m| m.0).collect(),
            intervals: s
                .intervals
                .iter()
                .map(|(m, iv)| IntervalRow {
                    member: m.0,
                    lo_ns: iv.lo.0,
                    hi_ns: iv.hi.0,
                })
                .collect(),
            readings: s.readings.clone(),
            nonce_from: s.nonce_from.clone(),
            head_used: s.head_used,
            salt: s.salt,
            head: s.head,
            epoch: s.epoch,
            rejected: delta,
            requests_refused: refused,
            duplicates: s.duplicates.clone(),
        };
        self.handle
            .record(s.round, cluster_time_ns, Payload::Round(Box::new(payload)));
        if s.stepped {
            self.handle.record(
                s.round,
                cluster_time_ns,
                Payload::Step(StepPayload {
                    correction_ns: s.correction.0,
                    epoch: s.epoch,
                }),
            );
        }
    }

    pub fn transition(&mut self, t: &Transition, round: u64, cluster_time_ns: i64) {
        self.handle.record(
            round,
            cluster_time_ns,
            Payload::State(StatePayload {
                from: t.from,
                to: t.to,
                code: t.reason.map(|r| r.code().to_owned()).unwrap_or_default(),
                reason: t.reason.map(|r| r.to_string()).unwrap_or_default(),
            }),
        );
    }

    /// Writes the `shutdown` record and waits (briefly) for the writer to finish.
    pub fn close(self, reason: &str, round: u64, cluster_time_ns: i64) {
        self.handle.record(
            round,
            cluster_time_ns,
            Payload::Shutdown(ShutdownPayload {
                reason: reason.to_owned(),
            }),
        );
        self.handle.close(Duration::from_secs(5));
    }
}
