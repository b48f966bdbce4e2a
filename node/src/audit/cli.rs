//! `bftime audit …`: the auditor's commands.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context as _;
use serde_json::json;

use super::check::{BadReason, BadRecord, Checker, ClusterKeys, check_files, parse_kind, segments};
use super::evidence::{self, ProofFile};
use super::show::{self, Filter};
use crate::exit;

#[derive(Debug, clap::Subcommand)]
pub enum AuditCommand {
    /// Check logs: framing, the hash chain, sequence numbers, every node signature and
    /// (with --cluster) every embedded peer reading against the members' keys.
    ///
    /// A LOG path also takes its rotated files (LOG.000000, LOG.000001, …) in order.
    /// Exit 0 with a one-line summary per log, or 65 naming the first bad record, its
    /// byte offset and the reason (bad-frame, truncated-tail, bad-signature,
    /// wrong-signer, unknown-signer, sequence-gap, broken-chain, malformed,
    /// bad-embedded-reading, …).
    Verify {
        /// Logs to check, each on its own.
        #[arg(required = true)]
        logs: Vec<PathBuf>,
        /// The cluster file: check who signed, and every embedded reading.
        #[arg(long)]
        cluster: Option<PathBuf>,
        /// One JSON object per log.
        #[arg(long)]
        json: bool,
    },
    /// Print a log as a table, one line per record (or JSON lines with --json).
    Show {
        /// The log (its rotated files LOG.000000, LOG.000001, … are read first).
        log: PathBuf,
        /// Only rounds A..B (inclusive; `A..`, `..B` and `A` work too). Round labels
        /// are each node's own; to line up several nodes' logs, use --time.
        #[arg(long)]
        round: Option<String>,
        /// Only records dated FROM..TO in cluster time, RFC 3339 (e.g.
        /// `2026-11-28T10:08:55Z..2026-11-28T10:09:10.5Z`; either end may be left out).
        #[arg(long)]
        time: Option<String>,
        /// Add this peer's interval and reading to every round (needs --cluster for names).
        #[arg(long)]
        peer: Option<String>,
        /// Only these kinds: start, segment, round, state, step, recovered, shutdown.
        #[arg(long, value_delimiter = ',')]
        kind: Vec<String>,
        /// The cluster file (names, and checks embedded readings).
        #[arg(long)]
        cluster: Option<PathBuf>,
        /// One JSON object per record (JSON lines).
        #[arg(long)]
        json: bool,
    },
    /// Cross-check several nodes' logs and write proofs of misbehaviour.
    ///
    /// Exit 0 when no member is proven to misbehave, 9 when proofs were written, 65
    /// when a log does not verify. Proofs rest on the accused's own signatures only.
    Evidence {
        /// Logs of several nodes (the more, the more chains between readings).
        #[arg(required = true)]
        logs: Vec<PathBuf>,
        /// The cluster file: member keys, Π and P.
        #[arg(long)]
        cluster: PathBuf,
        /// Where to write the proofs (JSON) [default: print them].
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Check a proofs file standalone, with nothing but the cluster's public keys.
    ///
    /// Exit 0 when every proof holds, 65 when one does not.
    CheckProof {
        /// A proofs file written by `bftime audit evidence`.
        proofs: PathBuf,
        /// The cluster file: the only thing trusted.
        #[arg(long)]
        cluster: PathBuf,
        /// One JSON object per proof.
        #[arg(long)]
        json: bool,
    },
}

/// The `--cluster` file, or the exit code after saying what is wrong with it: a
/// configuration error (78), with a fix that fits the audit tools (there is no node file
/// here for a relative path to be relative to).
fn cluster_keys(path: &Path) -> Result<ClusterKeys, i32> {
    ClusterKeys::load(path).map_err(|mut e| {
        if e.field == "(file)" {
            e.fix = "check the --cluster path (the cluster file every member shares)".into();
        }
        eprintln!("error: {e}");
        exit::CONFIG
    })
}

fn load_cluster(path: &Option<PathBuf>) -> Result<Option<ClusterKeys>, i32> {
    path.as_ref().map(|p| cluster_keys(p)).transpose()
}

/// The files of a LOG argument: its rotated segments, then itself.
fn files_of(log: &Path) -> Vec<PathBuf> {
    let files = segments(log);
    if files.is_empty() {
        vec![log.to_path_buf()]
    } else {
        files
    }
}

/// `println!` that ends the process quietly when the reader has gone away (`… | head`)
/// instead of panicking on the broken pipe.
macro_rules! emit {
    ($($arg:tt)*) => {{
        if writeln!(std::io::stdout().lock(), $($arg)*).is_err() {
            std::process::exit(exit::OK);
        }
    }};
}

/// Runs an audit command; returns the exit code.
pub fn run(cmd: AuditCommand) -> anyhow::Result<i32> {
    match cmd {
        AuditCommand::Verify {
            logs,
            cluster,
            json,
        } => {
            let cluster = match load_cluster(&cluster) {
                Ok(c) => c,
                Err(code) => return Ok(code),
            };
            let mut code = exit::OK;
            for log in &logs {
                let files = files_of(log);
                if !files.iter().any(|f| f.exists()) {
                    // Said, and the rest still checked: one missing log must not hide
                    // what the others show.
                    code = exit::BAD_DATA;
                    let detail = "no such file, and no rotated segments of it";
                    if json {
                        emit!(
                            "{}",
                            json!({
                                "log": log.display().to_string(), "ok": false,
                                "reason": "missing", "detail": detail,
                            })
                        );
                    } else {
                        emit!("MISSING {}: {detail}", log.display());
                    }
                    continue;
                }
                let mut checker = Checker::new(cluster.as_ref());
                let started = Instant::now();
                let mut last_kind = None;
                let (mut starts, mut recoveries, mut unclean) = (0u64, 0u64, 0u64);
                let mut progress = Progress::new(log, &files);
                let result = check_files(&files, &mut checker, |file, rec| {
                    progress.record(file, rec.offset + rec.frame_len);
                    use super::record::Kind;
                    let kind = rec.payload.kind();
                    starts += u64::from(kind == Kind::Start);
                    recoveries += u64::from(kind == Kind::Recovered);
                    // A run that ended without its shutdown record: a crash, a kill,
                    // a power loss (whether or not it tore a record). A segment record
                    // only opens a file (a restart may rotate before its start record).
                    unclean += u64::from(
                        kind == Kind::Start
                            && last_kind
                                .is_some_and(|k| !matches!(k, Kind::Shutdown | Kind::Recovered)),
                    ) + u64::from(kind == Kind::Recovered);
                    if kind != Kind::Segment {
                        last_kind = Some(kind);
                    }
                });
                let secs = started.elapsed().as_secs_f64();
                progress.finish();
                let result = result.and_then(|bytes| {
                    // Rotated files imply a current file after them (the writer makes
                    // it as it rotates): without it the newest records are gone, and
                    // those are the ones an incident is about. To check rotated files
                    // alone, name them.
                    if log.exists() {
                        return Ok(bytes);
                    }
                    let why = format!(
                        "{} is not there, but its rotated segments are: the newest records are missing (to check only the rotated files, name them)",
                        log.display()
                    );
                    Err(BadRecord::at_file_start(
                        log,
                        checker.records,
                        BadReason::MissingSegment(why),
                    ))
                });
                match result {
                    Ok(bytes) => {
                        let ending = Ending {
                            shutdown: last_kind == Some(super::record::Kind::Shutdown),
                            starts,
                            recoveries,
                            unclean,
                        };
                        print_ok(
                            log,
                            &files,
                            &checker,
                            bytes,
                            secs,
                            cluster.is_some(),
                            ending,
                            json,
                        )
                    }
                    Err(bad) => {
                        code = exit::BAD_DATA;
                        print_bad(log, &bad, json);
                    }
                }
            }
            Ok(code)
        }
        AuditCommand::Show {
            log,
            round,
            time,
            peer,
            kind,
            cluster,
            json,
        } => {
            let cluster = match load_cluster(&cluster) {
                Ok(c) => c,
                Err(code) => return Ok(code),
            };
            // Flags the command line cannot check itself: wrong, they are usage errors.
            let usage = |m: String| -> anyhow::Result<i32> {
                eprintln!("error: {m}");
                Ok(exit::USAGE)
            };
            let mut filter = Filter::default();
            if let Some(r) = &round {
                match show::parse_rounds(r) {
                    Ok(range) => filter.rounds = Some(range),
                    Err(e) => return usage(format!("--round: {e}")),
                }
            }
            if let Some(t) = &time {
                match show::parse_times(t) {
                    Ok(range) => filter.times = Some(range),
                    Err(e) => return usage(format!("--time: {e}")),
                }
            }
            for k in &kind {
                match parse_kind(k) {
                    Ok(kind) => filter.kinds.push(kind),
                    Err(e) => return usage(format!("--kind: {e}")),
                }
            }
            if let Some(p) = &peer {
                let Some(c) = cluster.as_ref() else {
                    return usage("--peer NAME needs --cluster FILE to know the names".into());
                };
                match c.by_name(p) {
                    Some(m) => filter.peer = Some(m),
                    None => {
                        return usage(format!("--peer: no member named {p:?} in the cluster file"));
                    }
                }
            }
            let files = files_of(&log);
            if !files.iter().any(|f| f.exists()) {
                eprintln!(
                    "error: {} is not there, and no rotated segments of it are",
                    log.display()
                );
                return Ok(exit::BAD_DATA);
            }
            let mut out = std::io::stdout().lock();
            if !json {
                show::header(&mut out)?;
            }
            let mut write_err = None;
            let mut checker = Checker::new(cluster.as_ref());
            let result = check_files(&files, &mut checker, |file, c| {
                if !filter.accepts(c) || write_err.is_some() {
                    return;
                }
                let r = if json {
                    writeln!(
                        out,
                        "{}",
                        show::json_line(c, file, cluster.as_ref(), filter.peer)
                    )
                } else {
                    writeln!(out, "{}", show::line(c, cluster.as_ref(), filter.peer))
                };
                if let Err(e) = r {
                    write_err = Some(e);
                }
            });
            match write_err {
                Some(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(exit::OK),
                Some(e) => return Err(e.into()),
                None => {}
            }
            match result {
                Ok(_) => Ok(exit::OK),
                Err(bad) => {
                    eprintln!("error: the log is damaged after the records shown: {bad}");
                    Ok(exit::BAD_DATA)
                }
            }
        }
        AuditCommand::Evidence { logs, cluster, out } => {
            let c = match cluster_keys(&cluster) {
                Ok(c) => c,
                Err(code) => return Ok(code),
            };
            let mut all = Vec::new();
            // Whose log each input is: one node's log given twice would count its
            // violations twice (or pass one node's log off as another's).
            let mut whose: std::collections::HashMap<[u8; 32], &PathBuf> =
                std::collections::HashMap::new();
            for log in &logs {
                match evidence::read_log_before_tear(&c, &files_of(log), |_| {}) {
                    Ok((rounds, checker, tear)) => {
                        if let Some(tear) = tear {
                            eprintln!(
                                "warning: {tear}; using the {} record(s) before it (a crash mid-write)",
                                checker.records
                            );
                        }
                        if let Some(id) = checker.identity()
                            && let Some(first) = whose.insert(id.public_key, log)
                        {
                            eprintln!(
                                "error: {} and {} are both {}'s log: give each node's log once",
                                first.display(),
                                log.display(),
                                id.name
                            );
                            return Ok(exit::USAGE);
                        }
                        all.push(rounds);
                    }
                    Err(bad) => {
                        eprintln!(
                            "error: {} does not verify, so it cannot serve as evidence: {bad}",
                            log.display()
                        );
                        return Ok(exit::BAD_DATA);
                    }
                }
            }
            let proofs = evidence::find(&c, &all);
            for p in &proofs {
                eprintln!(
                    "PROVEN {} by {}: {} ({} occurrence{})",
                    p.kind.as_str(),
                    p.accused,
                    p.summary,
                    p.occurrences,
                    if p.occurrences == 1 { "" } else { "s" }
                );
            }
            let file = ProofFile {
                version: 1,
                cluster_id: c.cluster_id.clone(),
                cluster_tag: format!("{:016x}", c.tag),
                proofs,
            };
            let text = serde_json::to_string_pretty(&file)?;
            match &out {
                Some(p) => std::fs::write(p, text + "\n")
                    .with_context(|| format!("cannot write {}", p.display()))?,
                None => emit!("{text}"),
            }
            eprintln!(
                "{} log(s) checked; {} proof(s) of misbehaviour{}",
                logs.len(),
                file.proofs.len(),
                out.as_ref()
                    .map(|p| format!(" written to {}", p.display()))
                    .unwrap_or_default()
            );
            Ok(if file.proofs.is_empty() {
                exit::OK
            } else {
                exit::MISBEHAVIOUR_PROVEN
            })
        }
        AuditCommand::CheckProof {
            proofs,
            cluster,
            json,
        } => {
            let c = match cluster_keys(&cluster) {
                Ok(c) => c,
                Err(code) => return Ok(code),
            };
            // A proofs file that cannot be read or parsed proves nothing: 65, as for one
            // whose proofs do not hold (and as `verify` says of a missing log).
            let file: ProofFile = match std::fs::read_to_string(&proofs)
                .with_context(|| format!("cannot read {}", proofs.display()))
                .and_then(|text| {
                    serde_json::from_str(&text).with_context(|| {
                        format!(
                            "{} is not a proofs file (`bftime audit evidence --out` writes them)",
                            proofs.display()
                        )
                    })
                }) {
                Ok(f) => f,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    return Ok(exit::BAD_DATA);
                }
            };
            let mut code = exit::OK;
            if file.cluster_tag != format!("{:016x}", c.tag) {
                eprintln!(
                    "error: the proofs are for cluster tag {}, the cluster file's is {:016x}",
                    file.cluster_tag, c.tag
                );
                return Ok(exit::BAD_DATA);
            }
            if file.cluster_id != c.cluster_id {
                eprintln!(
                    "error: the proofs file says cluster {:?}, the cluster file (same tag) says {:?}: the proofs file was edited",
                    file.cluster_id, c.cluster_id
                );
                return Ok(exit::BAD_DATA);
            }
            for (i, p) in file.proofs.iter().enumerate() {
                let r = evidence::check_proof(&c, p);
                if r.is_err() {
                    code = exit::BAD_DATA;
                }
                // What is printed as the accused is what the check established (the
                // cluster file's name for the signer), never the file's own words.
                let accused = match &r {
                    Ok(_) => c.name(bftime_protocol::MemberId(p.accused_member)),
                    Err(_) => p.accused.clone(),
                };
                if json {
                    emit!(
                        "{}",
                        json!({
                            "proof": i, "kind": p.kind.as_str(), "accused": accused,
                            "valid": r.is_ok(),
                            "proves": r.as_ref().ok(), "error": r.as_ref().err().map(|e| e.to_string()),
                        })
                    );
                } else {
                    match r {
                        Ok(s) => emit!("proof {i} VALID ({}): {s}", p.kind.as_str()),
                        Err(e) => emit!(
                            "proof {i} INVALID ({} against {accused:?}, as the file claims): {e}",
                            p.kind.as_str(),
                        ),
                    }
                }
            }
            if file.proofs.is_empty() && !json {
                emit!("no proofs in {}", proofs.display());
            }
            Ok(code)
        }
    }
}

/// A progress line on stderr while a long log is checked (a day of a 250-member
/// node's log takes minutes with --cluster): only on a terminal, and only after the
/// first second, so scripts and short checks see nothing.
struct Progress {
    log: String,
    total_bytes: u64,
    /// Bytes of the files before the current one.
    done_before: u64,
    file: PathBuf,
    file_bytes: u64,
    records: u64,
    started: Instant,
    last: Option<Instant>,
    shown: bool,
    enabled: bool,
}

impl Progress {
    fn new(log: &Path, files: &[PathBuf]) -> Progress {
        use std::io::IsTerminal as _;
        let len = |f: &PathBuf| std::fs::metadata(f).map(|m| m.len()).unwrap_or(0);
        Progress {
            log: log.display().to_string(),
            total_bytes: files.iter().map(len).sum(),
            done_before: 0,
            file: PathBuf::new(),
            file_bytes: 0,
            records: 0,
            started: Instant::now(),
            last: None,
            shown: false,
            enabled: std::io::stderr().is_terminal(),
        }
    }

    fn record(&mut self, file: &Path, end_offset: u64) {
        self.records += 1;
        if !self.enabled {
            return;
        }
        if file != self.file {
            self.done_before += self.file_bytes;
            self.file = file.to_path_buf();
            self.file_bytes = std::fs::metadata(file).map(|m| m.len()).unwrap_or(0);
        }
        let now = Instant::now();
        if now.duration_since(self.started) < std::time::Duration::from_secs(1)
            || self
                .last
                .is_some_and(|t| now.duration_since(t) < std::time::Duration::from_millis(500))
        {
            return;
        }
        self.last = Some(now);
        let done = self.done_before + end_offset;
        let secs = now.duration_since(self.started).as_secs_f64();
        let left = if done > 0 {
            self.total_bytes.saturating_sub(done) as f64 * secs / done as f64
        } else {
            0.0
        };
        eprint!(
            "\rverifying {}: {} records, {:.0} of {:.0} MB ({:.0} %), about {:.0} s left   ",
            self.log,
            self.records,
            done as f64 / 1e6,
            self.total_bytes as f64 / 1e6,
            100.0 * done as f64 / self.total_bytes.max(1) as f64,
            left
        );
        self.shown = true;
    }

    /// Clears the progress line (the summary follows on stdout).
    fn finish(&self) {
        if self.shown {
            eprint!("\r\x1b[2K");
        }
    }
}

/// How a log that verifies ends. Neither is damage a signature can show (a log cut at a
/// record boundary verifies, spec §8.4), but an auditor wants to know.
#[derive(Clone, Copy)]
struct Ending {
    /// The last record is the node's shutdown record.
    shutdown: bool,
    /// Runs of the node the log covers (its start records).
    starts: u64,
    /// Crashes the node recovered from by cutting a torn record (its `recovered`
    /// records; a crash between two records leaves none, only another start).
    recoveries: u64,
    /// Runs that ended without their shutdown record (a crash, a kill, a power loss),
    /// torn record or not.
    unclean: u64,
}

#[allow(clippy::too_many_arguments)]
fn print_ok(
    log: &Path,
    files: &[PathBuf],
    c: &Checker<'_>,
    bytes: u64,
    secs: f64,
    with_cluster: bool,
    ending: Ending,
    json: bool,
) {
    let span_s = match (c.earliest_time_ns, c.latest_time_ns) {
        (Some(a), Some(b)) => (b - a) as f64 / 1e9,
        _ => 0.0,
    };
    let node = c.identity().map(|i| i.name.clone()).unwrap_or_default();
    if json {
        emit!(
            "{}",
            json!({
                "log": log.display().to_string(), "ok": true, "node": node,
                "files": files.len(), "records": c.records, "rounds": c.rounds,
                "readings_checked": c.readings_checked, "bytes": bytes,
                "first_cluster_time_ns": c.first_time_ns, "last_cluster_time_ns": c.last_time_ns,
                "earliest_cluster_time_ns": c.earliest_time_ns, "latest_cluster_time_ns": c.latest_time_ns,
                "span_s": span_s, "starts_mid_chain": c.starts_mid_chain,
                "ends_with_shutdown": ending.shutdown,
                "starts": ending.starts, "recoveries": ending.recoveries,
                "runs_ended_unclean": ending.unclean,
                "embedded_readings_checked": with_cluster, "seconds": secs,
            })
        );
    } else {
        emit!(
            "OK {}: node {node}, {} record(s) in {} file(s), {} round(s), {} run(s){}, {} .. {} ({:.1} s){}{}{}",
            log.display(),
            c.records,
            files.len(),
            c.rounds,
            ending.starts,
            match (ending.unclean, ending.recoveries) {
                (0, _) => String::new(),
                (n, 0) =>
                    format!(" ({n} ended without a shutdown record: crash, kill or power loss)"),
                (n, r) => format!(
                    " ({n} ended without a shutdown record: crash, kill or power loss; {r} of them tore a record, cut on restart)"
                ),
            },
            show::format_time(c.earliest_time_ns.unwrap_or(0)),
            show::format_time(c.latest_time_ns.unwrap_or(0)),
            span_s,
            if with_cluster {
                format!(", {} embedded peer readings checked", c.readings_checked)
            } else {
                ", NOT checked against a cluster file: the key that signed it may be anyone's, and embedded peer readings were not checked (give --cluster)".to_owned()
            },
            if c.starts_mid_chain {
                ", starts mid-chain (earlier files not given)"
            } else {
                ""
            },
            if !ending.shutdown {
                ", no shutdown record at the end (the node is running, crashed, or the end was lost)"
            } else {
                ""
            }
        );
    }
}

fn print_bad(log: &Path, bad: &BadRecord, json: bool) {
    if json {
        emit!(
            "{}",
            json!({
                "log": log.display().to_string(), "ok": false,
                "file": bad.file.display().to_string(), "record": bad.index, "seq": bad.seq,
                "offset": bad.offset, "reason": bad.code(), "detail": bad.reason.to_string(),
            })
        );
    } else if bad.file == log {
        emit!("BAD {bad}");
    } else {
        emit!("BAD {}: {bad}", log.display());
    }
}
