//! Appending to the audit log, and picking up after a crash (spec §8.2).
//!
//! The writer runs on its own thread so a slow disk never delays a round: the driver
//! hands it payloads through a bounded queue and reads back only a status. On start it
//! re-checks the current file with the node's own key; a record cut short by a crash
//! is the only damage it repairs (cut at the record's first byte, warned about, and
//! recorded in a `recovered` record); any other damage stops the node, because
//! appending after it would bury the evidence. Nothing before the cut is rewritten.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bftime_crypto::{Hash32, NodeKey, Signed, Signer};
use serde::{Deserialize, Serialize};

use super::check::{Checker, folder_of, rotated_number, same_file, segment_path, segments};
use super::frame::{self, FrameError, Frames};
use super::record::{Identity, Payload, Record, RecoveredPayload, SegmentPayload};

/// When the writer forces records to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FsyncPolicy {
    /// After every record: even a power loss loses at most the record being written.
    /// The default (a node writes a few records per round; fsync is cheap at that rate).
    #[default]
    Record,
    /// After each round record (and at shutdown): a power loss may lose the records of
    /// the last round. A killed process loses nothing either way.
    Round,
    /// Never: the OS decides (a power loss may lose recent records).
    Never,
}

/// Why the log could not be opened or written.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// (`cause` is not a `#[source]`: shown here, it would be shown twice in a chain.)
    #[error("audit log {path}: {cause}", path = path.display())]
    Io {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error(
        "audit log {file} is damaged at record {index} (byte {offset}): {why}. Nothing was changed. Keep the log (the file, if it is there, and its rotated segments) for the auditors (`bftime audit verify {file}` shows the details), move it aside, and restart: a new log will start"
    )]
    Damaged {
        file: String,
        index: u64,
        offset: u64,
        why: String,
    },
    #[error(
        "audit log {file} was written by another node key ({other}); point audit_log at this node's own log"
    )]
    NotOurs { file: String, other: String },
    #[error(
        "audit log {file} was written for another cluster configuration ({what}). A log covers one configuration, so that an auditor can check all of it against one cluster file. Nothing was changed. Keep the log and its rotated segments for the auditors, move them aside (or point audit_log at a new path), and restart: a new log will start"
    )]
    ClusterChanged { file: String, what: String },
    #[error(
        "audit log {file} is in use by another bftime process (it holds the lock on {lock}); nothing was read or written. Is this node already running (say, as a systemd unit and by hand)? Stop the other process, or give this node its own audit_log"
    )]
    InUse { file: String, lock: String },
}

/// The lock file beside the log (`<log>.lock`): held, exclusively, for as long as a
/// writer has the log open. Two processes appending to one log would interleave their
/// records and break the chain, and a second one opening it would take the first one's
/// half-written record for a crash's torn tail and cut it off. The lock goes with the
/// process, so a crash never leaves it held. Rotated files need no lock of their own:
/// only the holder rotates.
fn lock_log(path: &Path) -> Result<File, AuditError> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let lock = path.with_file_name(format!("{name}.lock"));
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock)
        .map_err(io(&lock))?;
    match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(file),
        Err(e) if e == rustix::io::Errno::WOULDBLOCK => Err(AuditError::InUse {
            file: path.display().to_string(),
            lock: lock.display().to_string(),
        }),
        Err(e) => Err(AuditError::Io {
            path: lock,
            cause: e.into(),
        }),
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> AuditError + '_ {
    move |cause| AuditError::Io {
        path: path.to_path_buf(),
        cause,
    }
}

/// What opening found: whether a torn tail was cut, and where the chain stood.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    pub recovered: Option<RecoveredPayload>,
    pub continued_from_seq: u64,
}

/// Settings for [`AuditWriter::open`].
#[derive(Debug, Clone)]
pub struct WriterOptions {
    pub path: PathBuf,
    pub identity: Identity,
    pub fsync: FsyncPolicy,
    /// Rotate when the current file would exceed this many bytes.
    pub max_file_bytes: u64,
    /// Testing only: every write fails from this instant on (a simulated dead disk).
    pub fail_from: Option<std::time::Instant>,
    /// Testing only: write each record in two halves with this pause between them.
    pub split_write_pause: Option<Duration>,
}

/// The synchronous writer (one per log).
#[derive(Debug)]
pub struct AuditWriter {
    /// The log's lock (see [`lock_log`]), released when the writer is dropped.
    _lock: File,
    opts: WriterOptions,
    key: Arc<NodeKey>,
    file: File,
    file_bytes: u64,
    segment: u32,
    next_seq: u64,
    head: Hash32,
    pub records_written: u64,
    pub bytes_written: u64,
}

/// A log checked and locked, nothing written yet ([`AuditWriter::prepare`]): the node
/// binds its sockets between the two steps, so a node that cannot start changes
/// nothing in its log, not even the cut of a torn record.
#[derive(Debug)]
pub struct Prepared {
    lock: File,
    opts: WriterOptions,
    key: Arc<NodeKey>,
    next_seq: u64,
    head: Hash32,
    segment: u32,
    /// A torn final record to cut off (at its `offset`, where the good records end).
    recovered: Option<RecoveredPayload>,
    /// A crash came in the middle of a rotation (the current file is still linked as
    /// the newest rotated one): the new current file is yet to be made.
    finish_rotation: bool,
}

/// `PATH.tmp`: where a new current file is written before it is renamed into place.
fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

impl AuditWriter {
    /// Opens (or creates) the log, cutting a torn final record if a crash left one.
    /// The caller appends a `start` record next (and a `recovered` one if reported).
    pub fn open(
        opts: WriterOptions,
        key: Arc<NodeKey>,
    ) -> Result<(AuditWriter, Opened), AuditError> {
        Self::prepare(opts, key)?.commit()
    }

    /// Locks and checks the log, changing nothing: where the chain stands, and what
    /// [`Prepared::commit`] will repair. Refuses damage, another node's log, another
    /// cluster configuration, and a current file that is missing or empty after
    /// rotated ones (rotation never leaves it so, spec §8.2: its records were removed).
    pub fn prepare(opts: WriterOptions, key: Arc<NodeKey>) -> Result<Prepared, AuditError> {
        if let Some(dir) = opts.path.parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir).map_err(io(dir))?;
        }
        // Before anything is read: another writer's half-written record would look torn.
        let lock = lock_log(&opts.path)?;
        let files = segments(&opts.path);
        let rotated: Vec<&PathBuf> = files.iter().filter(|f| **f != opts.path).collect();
        let current_bytes = std::fs::metadata(&opts.path).map(|m| m.len()).ok();
        let damaged = |file: &Path, why: String| AuditError::Damaged {
            file: file.display().to_string(),
            index: 0,
            offset: 0,
            why,
        };
        let mut checker = Checker::for_key(key.public_key());
        let mut scan = Scan::default();
        let mut finish_rotation = false;
        let mut segment = 0;
        match (rotated.last(), current_bytes) {
            (Some(newest), _) if same_file(&opts.path, newest) => {
                // A crash between linking the current file as the newest rotated one
                // and renaming the new current file into place: finish the rotation.
                scan_file(newest, &mut checker, Cut::Never)?;
                if checker.records == 0 {
                    return Err(damaged(newest, "the newest rotated file is empty".into()));
                }
                finish_rotation = true;
                segment = rotated_number(newest).map_or(0, |n| n + 1);
            }
            (Some(newest), None | Some(0)) => {
                return Err(damaged(
                    &opts.path,
                    format!(
                        "the current file is {} but rotated files (up to {}) are there: its records were removed",
                        if current_bytes.is_none() {
                            "missing"
                        } else {
                            "empty"
                        },
                        newest.display()
                    ),
                ));
            }
            (_, Some(len)) if len > 0 => {
                scan = scan_file(&opts.path, &mut checker, Cut::TornTail)?;
                if checker.records == 0 && !rotated.is_empty() {
                    return Err(damaged(
                        &opts.path,
                        "the current file holds no whole record, though rotated files are there (a rotation writes its first record before it takes the name)".into(),
                    ));
                }
                segment = scan.segment.unwrap_or(0);
            }
            // No log yet, or an empty file and nothing else (a crash before the first
            // record): a new log.
            _ => {}
        }
        if let Some(id) = checker.identity() {
            let file = opts.path.display().to_string();
            if id.public_key != opts.identity.public_key {
                return Err(AuditError::NotOurs {
                    file,
                    other: hex::encode(id.public_key),
                });
            }
            if let Some(what) = id.cluster_change(&opts.identity) {
                return Err(AuditError::ClusterChanged { file, what });
            }
        }
        Ok(Prepared {
            lock,
            next_seq: checker.next_seq(),
            head: checker.head(),
            segment,
            recovered: scan.recovered,
            finish_rotation,
            opts,
            key,
        })
    }

    pub fn path(&self) -> &Path {
        &self.opts.path
    }

    /// Appends one record; rotates first if the file would grow past the limit.
    pub fn append(
        &mut self,
        round: u64,
        cluster_time_ns: i64,
        payload: &Payload,
    ) -> Result<u64, AuditError> {
        let frame = self.frame(round, cluster_time_ns, payload)?;
        if self.file_bytes > 0 && self.file_bytes + frame.len() as u64 > self.opts.max_file_bytes {
            self.rotate(round, cluster_time_ns)?;
            return self.append(round, cluster_time_ns, payload);
        }
        self.write_frame(&frame)?;
        let sync = match self.opts.fsync {
            FsyncPolicy::Record => true,
            FsyncPolicy::Round => matches!(payload, Payload::Round(_) | Payload::Shutdown(_)),
            FsyncPolicy::Never => false,
        };
        if sync {
            self.sync()?;
        }
        Ok(frame.len() as u64)
    }

    pub fn sync(&mut self) -> Result<(), AuditError> {
        self.file.sync_data().map_err(io(&self.opts.path))
    }

    fn frame(
        &mut self,
        round: u64,
        cluster_time_ns: i64,
        payload: &Payload,
    ) -> Result<Vec<u8>, AuditError> {
        let record = Record {
            seq: self.next_seq,
            round,
            prev: self.head,
            cluster_time_ns,
            kind: payload.kind(),
            payload: payload.encode(),
        };
        let signer: &dyn Signer = self.key.as_ref();
        let signed = Signed::sign(&record, signer).map_err(|e| AuditError::Io {
            path: self.opts.path.clone(),
            cause: std::io::Error::other(format!("cannot encode a record: {e}")),
        })?;
        Ok(frame::encode(signed.signature(), signed.body()))
    }

    fn write_frame(&mut self, frame: &[u8]) -> Result<(), AuditError> {
        if self
            .opts
            .fail_from
            .is_some_and(|t| std::time::Instant::now() >= t)
        {
            return Err(io(&self.opts.path)(std::io::Error::other(
                "simulated disk failure ([testing] audit_fail_after_s)",
            )));
        }
        let written = match self.opts.split_write_pause {
            Some(pause) => {
                let (a, b) = frame.split_at(frame.len() / 2);
                self.file.write_all(a).and_then(|()| {
                    std::thread::sleep(pause);
                    self.file.write_all(b)
                })
            }
            None => self.file.write_all(frame),
        };
        if let Err(e) = written {
            // A write that failed part-way (a full disk) leaves a torn record: take it
            // back, so the file ends at a whole record and verifies as it is.
            let _ = self.file.set_len(self.file_bytes);
            return Err(io(&self.opts.path)(e));
        }
        let sig_start = frame::HEADER_BYTES;
        let mut sig = [0u8; frame::SIGNATURE_BYTES];
        sig.copy_from_slice(&frame[sig_start..sig_start + frame::SIGNATURE_BYTES]);
        self.head = frame::chain_hash(
            &bftime_crypto::Signature(sig),
            &frame[sig_start + frame::SIGNATURE_BYTES..],
        );
        self.next_seq += 1;
        self.file_bytes += frame.len() as u64;
        self.records_written += 1;
        self.bytes_written += frame.len() as u64;
        Ok(())
    }

    fn write_segment_record(&mut self, round: u64, cluster_time_ns: i64) -> Result<(), AuditError> {
        let payload = Payload::Segment(SegmentPayload {
            identity: self.opts.identity.clone(),
            segment: self.segment,
        });
        let frame = self.frame(round, cluster_time_ns, &payload)?;
        self.write_frame(&frame)?;
        self.sync()
    }

    /// Rotation (spec §8.2): the current file is linked as `PATH.NNNNNN` (a link never
    /// replaces a file), then a new current file, begun with its `segment` record and
    /// synced, is renamed over `PATH`. `PATH` is thus never missing or empty once the
    /// log has a record: a crash between the two steps leaves it linked as the newest
    /// rotated file ([`AuditWriter::prepare`] finishes the rotation), and a missing or
    /// empty current file is damage, not a crash.
    fn rotate(&mut self, round: u64, cluster_time_ns: i64) -> Result<(), AuditError> {
        self.sync()?;
        let rotated = segment_path(&self.opts.path, self.segment);
        std::fs::hard_link(&self.opts.path, &rotated).map_err(|e| {
            let e = if e.kind() == std::io::ErrorKind::AlreadyExists {
                std::io::Error::new(
                    std::io::ErrorKind::AlreadyExists,
                    "a rotated file by this name already exists; it is never replaced",
                )
            } else {
                e
            };
            io(&rotated)(e)
        })?;
        sync_dir(&self.opts.path);
        self.segment += 1;
        self.start_new_file(round, cluster_time_ns)?;
        tracing::info!(rotated = %rotated.display(), segment = self.segment, "audit log rotated");
        Ok(())
    }

    /// Writes a new current file beside the log, begun with this segment's record and
    /// synced, and renames it into place.
    fn start_new_file(&mut self, round: u64, cluster_time_ns: i64) -> Result<(), AuditError> {
        let temp = temp_path(&self.opts.path);
        self.file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(&temp)
            .map_err(io(&temp))?;
        self.file_bytes = 0;
        self.write_segment_record(round, cluster_time_ns)?;
        std::fs::rename(&temp, &self.opts.path).map_err(io(&self.opts.path))?;
        sync_dir(&self.opts.path);
        Ok(())
    }
}

/// Syncs the folder holding `path` (so a rename or link in it survives a power loss).
fn sync_dir(path: &Path) {
    if let Ok(d) = File::open(folder_of(path)) {
        let _ = d.sync_all();
    }
}

impl Prepared {
    /// Where the chain goes on: the sequence number of the next record.
    pub fn continued_from_seq(&self) -> u64 {
        self.next_seq
    }

    /// Repairs what [`AuditWriter::prepare`] found (cuts a torn record, finishes a
    /// rotation) and opens the log for appending.
    pub fn commit(self) -> Result<(AuditWriter, Opened), AuditError> {
        let path = self.opts.path.clone();
        if let Some(cut) = &self.recovered {
            let good_end = cut.offset;
            tracing::warn!(
                file = %path.display(),
                offset = good_end,
                bytes_cut = cut.bytes_cut,
                "audit log ends in a torn record (a crash mid-write): cutting it off and continuing the chain"
            );
            let f = OpenOptions::new()
                .write(true)
                .open(&path)
                .map_err(io(&path))?;
            f.set_len(good_end).map_err(io(&path))?;
            f.sync_all().map_err(io(&path))?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io(&path))?;
        let file_bytes = file.metadata().map_err(io(&path))?.len();
        let continued_from_seq = self.next_seq;
        let mut w = AuditWriter {
            _lock: self.lock,
            key: self.key,
            file,
            file_bytes,
            segment: self.segment,
            next_seq: self.next_seq,
            head: self.head,
            records_written: 0,
            bytes_written: 0,
            opts: self.opts,
        };
        if self.finish_rotation {
            tracing::warn!(
                file = %path.display(),
                "audit log: a crash came in the middle of a rotation; finishing it"
            );
            w.start_new_file(0, 0)?;
        }
        Ok((
            w,
            Opened {
                recovered: self.recovered,
                continued_from_seq,
            },
        ))
    }
}

/// Whether [`scan_file`] may cut a torn final record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cut {
    /// The current file: a crash may have torn its last record; cut it off.
    TornTail,
    /// A rotated file, closed whole: any damage stops the node.
    Never,
}

/// What [`scan_file`] found besides the records it fed the checker.
#[derive(Debug, Default)]
struct Scan {
    /// A torn final record to cut off (at its `offset`, the end of the good records).
    recovered: Option<RecoveredPayload>,
    /// The segment number of the file's (last) good segment record.
    segment: Option<u32>,
}

/// Checks every record of `path` with `checker` (which must accept the node's key
/// only), changing nothing. A torn final record is reported for cutting if `cut`
/// allows it; any other damage, or another key's record first, is an error.
fn scan_file(path: &Path, checker: &mut Checker<'_>, cut: Cut) -> Result<Scan, AuditError> {
    let name = path.display().to_string();
    if !std::fs::metadata(path).map_err(io(path))?.is_file() {
        return Err(AuditError::Damaged {
            file: name,
            index: checker.records,
            offset: 0,
            why: "not a regular file".into(),
        });
    }
    let bytes = std::fs::read(path).map_err(io(path))?;
    let mut scan = Scan::default();
    let mut good_end = 0u64;
    for f in Frames::new(&bytes) {
        match f {
            Ok(frame) => {
                let checked = checker.check(&frame).map_err(|e| {
                    if matches!(e, super::check::BadReason::BadSignature) && checker.records == 0 {
                        AuditError::NotOurs {
                            file: name.clone(),
                            other: "unknown".into(),
                        }
                    } else {
                        AuditError::Damaged {
                            file: name.clone(),
                            index: checker.records,
                            offset: frame.offset,
                            why: e.to_string(),
                        }
                    }
                })?;
                if let Payload::Segment(s) = &checked.payload {
                    scan.segment = Some(s.segment);
                }
                good_end = frame.offset + frame.len;
            }
            Err(FrameError::TruncatedTail { .. } | FrameError::ZeroTail { .. })
                if cut == Cut::TornTail =>
            {
                scan.recovered = Some(RecoveredPayload {
                    file: name.clone(),
                    offset: good_end,
                    bytes_cut: bytes.len() as u64 - good_end,
                });
            }
            Err(e) => {
                return Err(AuditError::Damaged {
                    file: name.clone(),
                    index: checker.records,
                    offset: e.offset(),
                    why: e.to_string(),
                });
            }
        }
    }
    Ok(scan)
}

/// What the driver can see of the writer thread.
#[derive(Debug, Default)]
pub struct AuditStatus {
    pub records: AtomicU64,
    pub bytes: AtomicU64,
    pub failed: AtomicBool,
    pub error: Mutex<Option<String>>,
}

impl AuditStatus {
    fn fail(&self, why: String) {
        tracing::error!(error = %why, "AUDIT LOG FAILED: records are no longer written");
        if let Ok(mut e) = self.error.lock() {
            e.get_or_insert(why);
        }
        self.failed.store(true, Ordering::SeqCst);
    }

    pub fn error(&self) -> Option<String> {
        self.error.lock().ok().and_then(|e| e.clone())
    }
}

#[derive(Debug)]
enum Msg {
    Record {
        round: u64,
        cluster_time_ns: i64,
        payload: Box<Payload>,
    },
    Stop,
}

/// The driver's handle on the writer thread.
#[derive(Debug)]
pub struct AuditHandle {
    tx: SyncSender<Msg>,
    pub status: Arc<AuditStatus>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Queue length: a few rounds' worth of records even on a stalled disk.
const QUEUE: usize = 256;

impl AuditHandle {
    /// Starts the writer thread on an opened writer.
    pub fn spawn(writer: AuditWriter) -> std::io::Result<AuditHandle> {
        let (tx, rx) = sync_channel(QUEUE);
        let status = Arc::new(AuditStatus::default());
        let st = status.clone();
        let thread = std::thread::Builder::new()
            .name("bftime-audit".into())
            .spawn(move || run(writer, rx, &st))?;
        Ok(AuditHandle {
            tx,
            status,
            thread: Some(thread),
        })
    }

    /// Queues a record. A full queue (the disk cannot keep up) is a failure: the
    /// record would be lost and the log would no longer account for the node.
    pub fn record(&self, round: u64, cluster_time_ns: i64, payload: Payload) {
        if self.status.failed.load(Ordering::Relaxed) {
            return;
        }
        match self.tx.try_send(Msg::Record {
            round,
            cluster_time_ns,
            payload: Box::new(payload),
        }) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => self.status.fail(format!(
                "the writer fell {QUEUE} records behind (disk too slow?)"
            )),
            Err(TrySendError::Disconnected(_)) => {
                self.status.fail("the writer thread stopped".into());
            }
        }
    }

    pub fn failed(&self) -> bool {
        self.status.failed.load(Ordering::Relaxed)
    }

    /// Flushes what is queued and stops the thread (waits at most `timeout`).
    pub fn close(mut self, timeout: Duration) {
        let _ = self.tx.send(Msg::Stop);
        if let Some(t) = self.thread.take() {
            let deadline = std::time::Instant::now() + timeout;
            while !t.is_finished() && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            if t.is_finished() {
                let _ = t.join();
            }
        }
    }
}

fn run(mut writer: AuditWriter, rx: Receiver<Msg>, status: &AuditStatus) {
    while let Ok(msg) = rx.recv() {
        match msg {
            Msg::Record {
                round,
                cluster_time_ns,
                payload,
            } => {
                if status.failed.load(Ordering::Relaxed) {
                    continue;
                }
                match writer.append(round, cluster_time_ns, &payload) {
                    Ok(bytes) => {
                        status.records.fetch_add(1, Ordering::Relaxed);
                        status.bytes.fetch_add(bytes, Ordering::Relaxed);
                    }
                    Err(e) => status.fail(e.to_string()),
                }
            }
            Msg::Stop => break,
        }
    }
    let _ = writer.sync();
}
