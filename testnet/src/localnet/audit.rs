//! After a run: verify every node's audit log and look for proofs of misbehaviour, as
//! an auditor would after an incident. A proof against a correct node is a failure.

use std::path::PathBuf;
use std::time::Instant;

use bftime_node::audit::check::{ClusterKeys, segments};
use bftime_node::audit::evidence;
use bftime_node::audit::record::Kind;
use serde::{Deserialize, Serialize};

/// What the audit of a run found.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AuditSummary {
    pub logs_verified: usize,
    /// Logs that did not verify, with the first bad record.
    pub logs_bad: Vec<String>,
    pub records: u64,
    pub round_records: u64,
    pub round_record_bytes: u64,
    /// Mean size of a round record: log bytes per node per round.
    pub bytes_per_node_per_round: f64,
    pub embedded_readings_verified: u64,
    pub verify_s: f64,
    pub evidence_s: f64,
    /// (accused, kind, occurrences), each re-checked with `check_proof`.
    pub proofs: Vec<(String, String, u64)>,
    /// Members proven to misbehave that the run made correct (must be empty).
    pub correct_accused: Vec<String>,
}

/// Verifies `logs` (one per node, in member order) and searches them for proofs.
/// `correct[k]` says whether node k was run honestly.
pub fn audit_run(
    cluster_file: &std::path::Path,
    logs: &[PathBuf],
    correct: &[bool],
) -> AuditSummary {
    let mut s = AuditSummary::default();
    let cluster = match ClusterKeys::load(cluster_file) {
        Ok(c) => c,
        Err(e) => {
            s.logs_bad.push(format!("cluster file: {e}"));
            return s;
        }
    };
    let started = Instant::now();
    let mut all = Vec::with_capacity(logs.len());
    for log in logs {
        let mut round_bytes = 0u64;
        let mut round_records = 0u64;
        let result = evidence::read_log(&cluster, &segments(log), |c| {
            if c.record.kind == Kind::Round {
                round_bytes += c.frame_len;
                round_records += 1;
            }
        });
        match result {
            Ok((rounds, checker)) => {
                s.logs_verified += 1;
                s.records += checker.records;
                s.round_records += round_records;
                s.round_record_bytes += round_bytes;
                s.embedded_readings_verified += checker.readings_checked;
                all.push(rounds);
            }
            Err(bad) => s.logs_bad.push(bad.to_string()),
        }
    }
    s.verify_s = started.elapsed().as_secs_f64();
    s.bytes_per_node_per_round = s.round_record_bytes as f64 / s.round_records.max(1) as f64;
    let started = Instant::now();
    for p in evidence::find(&cluster, &all) {
        if evidence::check_proof(&cluster, &p).is_err() {
            s.logs_bad
                .push(format!("a proof against {} does not check", p.accused));
            continue;
        }
        if correct
            .get(usize::from(p.accused_member))
            .copied()
            .unwrap_or(false)
        {
            s.correct_accused.push(p.accused.clone());
        }
        s.proofs
            .push((p.accused, p.kind.as_str().to_owned(), p.occurrences));
    }
    s.evidence_s = started.elapsed().as_secs_f64();
    s
}
