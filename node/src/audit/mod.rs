//! The signed, hash-chained audit log (spec §8) and the `bftime audit` tools.
//!
//! - [`record`]: what a record says (kinds and payloads).
//! - [`frame`]: how records sit in a file, and how a torn final write is recognised.
//! - [`check`]: checking a log record by record (shared by every reader).
//! - [`writer`]: appending, rotation, fsync policy, crash recovery, the writer thread.
//! - [`show`]: `bftime audit show`.
//! - [`evidence`]: proofs of misbehaviour: finding them in logs, checking them alone.

pub mod check;
pub mod cli;
pub mod evidence;
pub mod frame;
pub mod journal;
pub mod record;
pub mod show;
pub mod writer;

use std::sync::Arc;

use sha2::Digest as _;

use crate::config::NodeConfig;
use record::{Identity, Payload, StartPayload};
use writer::{AuditHandle, AuditWriter, Prepared, WriterOptions};

/// SHA-256 of a file's bytes (all zeros if it cannot be read).
fn sha256_of(p: &std::path::Path) -> [u8; 32] {
    std::fs::read(p)
        .map(|b| sha2::Sha256::digest(&b).into())
        .unwrap_or_default()
}

/// Who the node is, as its log's first record says.
pub fn identity(cfg: &NodeConfig) -> Identity {
    Identity {
        public_key: cfg.key.public_key().to_bytes(),
        member: cfg.me.0,
        name: cfg.name().to_owned(),
        cluster_id: cfg.cluster.cluster_id.clone(),
        cluster_tag: cfg.cluster_tag,
        cluster_file_sha256: sha256_of(&cfg.cluster_path),
    }
}

/// What `bftime validate` can tell of the node's audit log without taking it from a
/// running node (no lock, nothing written): a folder it cannot write to, or an existing
/// log `run` would refuse (another key, another cluster configuration).
pub fn log_warnings(cfg: &NodeConfig) -> Vec<String> {
    let mut warnings = Vec::new();
    let Some(path) = &cfg.audit_log else {
        return warnings;
    };
    let dir = check::folder_of(path);
    if dir.exists() && rustix::fs::access(dir, rustix::fs::Access::WRITE_OK).is_err() {
        warnings.push(format!(
            "audit_log: the folder {} is not writable by this user, so `bftime run` will fail",
            dir.display()
        ));
    }
    // The newest file's first record says whose log it is.
    let Some(newest) = check::segments(path).pop() else {
        return warnings;
    };
    let Ok(bytes) = std::fs::read(&newest) else {
        return warnings;
    };
    let Some(logged) = frame::Frames::new(&bytes)
        .next()
        .and_then(Result::ok)
        .and_then(|f| check::payload_unverified(&f))
        .and_then(|p| p.identity().cloned())
    else {
        return warnings;
    };
    if let Some(what) = logged.cluster_change(&identity(cfg)) {
        warnings.push(format!(
            "the audit log {} was written for another node or cluster configuration ({what}), so `bftime run` will refuse it: keep it for the auditors, move it and its rotated files aside",
            newest.display()
        ));
    }
    warnings
}

/// Locks and checks the node's log, changing nothing (see [`AuditWriter::prepare`]):
/// the node then binds its sockets, and only a node that can run writes to its log.
pub fn prepare_node_log(cfg: &NodeConfig) -> anyhow::Result<Option<Prepared>> {
    let Some(path) = &cfg.audit_log else {
        return Ok(None);
    };
    let opts = WriterOptions {
        path: path.clone(),
        identity: identity(cfg),
        fsync: cfg.node.audit.fsync,
        max_file_bytes: cfg.node.audit.max_file_mb.saturating_mul(1 << 20),
        fail_from: cfg
            .testing
            .as_ref()
            .and_then(|t| t.audit_fail_after_s)
            .map(|s| std::time::Instant::now() + std::time::Duration::from_secs_f64(s)),
        split_write_pause: cfg
            .testing
            .as_ref()
            .and_then(|t| t.audit_write_pause_ms)
            .map(|ms| std::time::Duration::from_secs_f64(ms / 1000.0)),
    };
    Ok(Some(AuditWriter::prepare(opts, Arc::clone(&cfg.key))?))
}

/// Repairs what [`prepare_node_log`] found (a torn tail, a rotation a crash cut
/// short), writes the `recovered` and `start` records, and starts the writer thread.
pub fn start_node_log(
    prepared: Prepared,
    cfg: &NodeConfig,
    incarnation: u64,
    round: u64,
    cluster_time_ns: i64,
) -> anyhow::Result<AuditHandle> {
    let (mut w, opened) = prepared.commit()?;
    let start = Payload::Start(StartPayload {
        identity: identity(cfg),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        node_file_sha256: sha256_of(&cfg.node_path),
        incarnation,
    });
    let recovered = opened.recovered.clone().map(Payload::Recovered);
    // The `recovered` record tells what the crash cut before this run starts; but a log
    // whose every record was cut (a crash while writing its first) begins again, and
    // its first record must say whose it is: the start, then what was cut.
    let order = if opened.continued_from_seq == 0 {
        [Some(start), recovered]
    } else {
        [recovered, Some(start)]
    };
    for payload in order.iter().flatten() {
        w.append(round, cluster_time_ns, payload)?;
    }
    w.sync()?;
    tracing::info!(
        path = %w.path().display(),
        continued_from_seq = opened.continued_from_seq,
        fsync = ?cfg.node.audit.fsync,
        "audit log open"
    );
    Ok(AuditHandle::spawn(w)?)
}

/// [`prepare_node_log`] then [`start_node_log`].
pub fn open_node_log(
    cfg: &NodeConfig,
    incarnation: u64,
    round: u64,
    cluster_time_ns: i64,
) -> anyhow::Result<Option<AuditHandle>> {
    prepare_node_log(cfg)?
        .map(|p| start_node_log(p, cfg, incarnation, round, cluster_time_ns))
        .transpose()
}
