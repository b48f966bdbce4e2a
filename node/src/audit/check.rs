//! Checking a log record by record (spec §8.3): framing, signature, sequence, chain,
//! identity, and — given the cluster file — every embedded peer reading.
//!
//! The same checker serves `bftime audit verify`, `show`, `evidence` and the node's
//! own recovery at start-up, so "what counts as a good log" is written once.

use std::path::{Path, PathBuf};

use bftime_crypto::chain::GENESIS as GENESIS_HASH;
use bftime_crypto::{
    BatchItem, Domain, Ed25519Suite, Hash32, PublicKey, Signed, SignedError, failing_signatures,
};
use bftime_protocol::message::{derive_nonce, head_chain};
use bftime_protocol::{MemberId, Reading, RejectReason};

use super::frame::{Frame, FrameError, Frames, chain_hash};
use super::record::{Identity, Kind, Payload, Record};
use crate::config::{ConfigError, Member, load_cluster};

/// Largest request `seq` tried when matching a nonce (requests per peer and round).
const MAX_SEQ: u16 = 16;

/// The `seq` under which `reading` answers a nonce chained from `head` with `salt`
/// (spec §2.3), if any.
pub fn nonce_seq(head: &Hash32, salt: &[u8; 16], reading: &Reading) -> Option<u16> {
    (0..MAX_SEQ).find(|&seq| {
        derive_nonce(&Ed25519Suite, head, salt, reading.responder, seq) == reading.nonce
    })
}

/// The cluster's keys, for checking who signed what.
#[derive(Debug, Clone)]
pub struct ClusterKeys {
    pub members: Vec<Member>,
    pub tag: u64,
    pub cluster_id: String,
    pub precision_ns: i64,
    pub round_period_ns: i64,
}

impl ClusterKeys {
    pub fn load(path: &Path) -> Result<ClusterKeys, ConfigError> {
        let (file, members, params, tag) = load_cluster(path)?;
        Ok(ClusterKeys {
            members,
            tag,
            cluster_id: file.cluster_id.clone(),
            precision_ns: params.precision.0,
            round_period_ns: params.round_period.0,
        })
    }

    pub fn key(&self, m: MemberId) -> Option<&PublicKey> {
        self.members.get(m.index()).map(|m| &m.key)
    }

    pub fn name(&self, m: MemberId) -> String {
        self.members
            .get(m.index())
            .map(|m| m.name.clone())
            .unwrap_or_else(|| format!("member {}", m.0))
    }

    pub fn by_name(&self, name: &str) -> Option<MemberId> {
        self.members.iter().find(|m| m.name == name).map(|m| m.id)
    }
}

/// What is wrong with a record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadReason {
    #[error("{0}")]
    Frame(String),
    /// The frame's own text already says "truncated tail".
    #[error("{0}")]
    TruncatedTail(String),
    #[error("bad signature: the record was altered, or not signed by this log's node key")]
    BadSignature,
    #[error("signed by another node: {0}")]
    WrongSigner(String),
    #[error("unknown signer: the log's key {0} is not a member of the cluster file")]
    UnknownSigner(String),
    #[error("sequence gap: expected seq {expected}, found {found}")]
    SequenceGap { expected: u64, found: u64 },
    #[error("broken chain: prev does not match the hash of the record before")]
    BrokenChain,
    #[error("malformed record: {0}")]
    Malformed(String),
    #[error("the first record must be a start or segment record, found {0}")]
    NoIdentity(String),
    #[error("identity changed: {0}")]
    IdentityChanged(String),
    #[error("wrong cluster: {0}")]
    WrongCluster(String),
    #[error("embedded reading {index}: {why}")]
    BadReading { index: usize, why: String },
    #[error("broken nonce chain: {0}")]
    NonceChain(String),
    /// A rotated file between two that exist is not there, or the current file after
    /// rotated ones.
    #[error("missing segment: {0}")]
    MissingSegment(String),
    /// A file's segment record names another segment than its file name does.
    #[error("wrong segment: {0}")]
    WrongSegment(String),
}

/// The first bad record of a log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}: record {index}{seq} at byte {offset}: {reason}", file = file.display(), seq = seq.map(|s| format!(" (seq {s})")).unwrap_or_default())]
pub struct BadRecord {
    pub file: PathBuf,
    /// 0-based position among the records checked so far (across files).
    pub index: u64,
    pub seq: Option<u64>,
    pub offset: u64,
    pub reason: BadReason,
}

impl BadRecord {
    /// A fault of `file` as a whole, found before its first record was checked, after
    /// `index` good records.
    pub(crate) fn at_file_start(file: &Path, index: u64, reason: BadReason) -> BadRecord {
        BadRecord {
            file: file.to_path_buf(),
            index,
            seq: None,
            offset: 0,
            reason,
        }
    }

    /// Stable reason code for scripts.
    pub fn code(&self) -> &'static str {
        match self.reason {
            BadReason::Frame(_) => "bad-frame",
            BadReason::TruncatedTail(_) => "truncated-tail",
            BadReason::BadSignature => "bad-signature",
            BadReason::WrongSigner(_) => "wrong-signer",
            BadReason::UnknownSigner(_) => "unknown-signer",
            BadReason::SequenceGap { .. } => "sequence-gap",
            BadReason::BrokenChain => "broken-chain",
            BadReason::Malformed(_) => "malformed",
            BadReason::NoIdentity(_) => "no-identity",
            BadReason::IdentityChanged(_) => "identity-changed",
            BadReason::WrongCluster(_) => "wrong-cluster",
            BadReason::BadReading { .. } => "bad-embedded-reading",
            BadReason::NonceChain(_) => "bad-nonce-chain",
            BadReason::MissingSegment(_) => "missing-segment",
            BadReason::WrongSegment(_) => "wrong-segment",
        }
    }
}

/// A record that passed every check.
#[derive(Debug, Clone)]
pub struct Checked {
    pub offset: u64,
    pub frame_len: u64,
    pub record: Record,
    pub payload: Payload,
    pub hash: Hash32,
}

/// Checks records in log order.
#[derive(Debug)]
pub struct Checker<'a> {
    cluster: Option<&'a ClusterKeys>,
    identity: Option<Identity>,
    key: Option<PublicKey>,
    next_seq: u64,
    head: Hash32,
    pub records: u64,
    pub rounds: u64,
    pub readings_checked: u64,
    pub first_time_ns: Option<i64>,
    pub last_time_ns: Option<i64>,
    /// The earliest and latest cluster times of any record: a node that steps its clock
    /// before it serves writes records dated before its first, so first..last may run
    /// backwards.
    pub earliest_time_ns: Option<i64>,
    pub latest_time_ns: Option<i64>,
    /// The first record checked continued an earlier file that was not given.
    pub starts_mid_chain: bool,
    /// The head the last round record ended at (None after a start).
    last_round_head: Option<Hash32>,
}

impl<'a> Checker<'a> {
    pub fn new(cluster: Option<&'a ClusterKeys>) -> Checker<'a> {
        Checker {
            cluster,
            identity: None,
            key: None,
            next_seq: 0,
            head: GENESIS_HASH,
            records: 0,
            rounds: 0,
            readings_checked: 0,
            first_time_ns: None,
            last_time_ns: None,
            earliest_time_ns: None,
            latest_time_ns: None,
            starts_mid_chain: false,
            last_round_head: None,
        }
    }

    /// A checker that only accepts records signed by `key` (the node's own recovery).
    pub fn for_key(key: PublicKey) -> Checker<'static> {
        let mut c = Checker::new(None);
        c.key = Some(key);
        c
    }

    pub fn identity(&self) -> Option<&Identity> {
        self.identity.as_ref()
    }
    pub fn head(&self) -> Hash32 {
        self.head
    }
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Checks one frame; on success the chain advances.
    pub fn check(&mut self, frame: &Frame<'_>) -> Result<Checked, BadReason> {
        let signed: Signed<Record> = Signed::from_parts(frame.body.to_vec(), frame.signature);
        // Who must have signed: the key the log's first record names.
        let key = match (&self.key, &self.identity) {
            (Some(k), _) => *k,
            (None, _) => {
                let unverified = signed
                    .decode_unverified()
                    .map_err(|e| BadReason::Malformed(e.to_string()))?;
                let payload = Payload::decode(unverified.kind, &unverified.payload)
                    .map_err(BadReason::Malformed)?;
                let Some(id) = payload.identity() else {
                    return Err(BadReason::NoIdentity(unverified.kind.as_str().into()));
                };
                PublicKey::from_bytes(&id.public_key)
                    .map_err(|e| BadReason::Malformed(format!("identity key: {e}")))?
            }
        };
        let record = match signed.verify(&Ed25519Suite, &key) {
            Ok(r) => r,
            Err(SignedError::BadSignature) => return Err(self.who_signed(&signed)),
            Err(e) => return Err(BadReason::Malformed(e.to_string())),
        };
        if self.records == 0 && self.identity.is_none() {
            // The first record: either the genesis or the first of a later file.
            if record.seq != 0 {
                self.starts_mid_chain = true;
                self.next_seq = record.seq;
                self.head = record.prev;
            }
        }
        if record.seq != self.next_seq {
            return Err(BadReason::SequenceGap {
                expected: self.next_seq,
                found: record.seq,
            });
        }
        if record.prev != self.head {
            return Err(BadReason::BrokenChain);
        }
        let payload =
            Payload::decode(record.kind, &record.payload).map_err(BadReason::Malformed)?;
        if let Some(id) = payload.identity() {
            match &self.identity {
                None => {
                    self.check_identity(id, &key)?;
                    self.identity = Some(id.clone());
                    self.key = Some(key);
                }
                Some(old) => {
                    if let Some(what) = old.cluster_change(id) {
                        return Err(BadReason::IdentityChanged(format!(
                            "{} (member {}): {what}",
                            old.name, old.member
                        )));
                    }
                    // A new name or an edited cluster file: the same node, still in
                    // the same cluster (see `Identity::cluster_change`).
                    self.identity = Some(id.clone());
                }
            }
        } else if self.identity.is_none() {
            return Err(BadReason::NoIdentity(record.kind.as_str().into()));
        }
        match &payload {
            Payload::Round(r) => {
                self.check_round(r)?;
                self.last_round_head = Some(r.head);
                self.rounds += 1;
            }
            // A new run of the node starts a new nonce chain.
            Payload::Start(_) => self.last_round_head = None,
            _ => {}
        }
        let hash = chain_hash(&frame.signature, frame.body);
        self.head = hash;
        self.next_seq = record.seq + 1;
        self.records += 1;
        if record.cluster_time_ns > 0 {
            self.first_time_ns.get_or_insert(record.cluster_time_ns);
            self.last_time_ns = Some(record.cluster_time_ns);
            let t = record.cluster_time_ns;
            self.earliest_time_ns = Some(self.earliest_time_ns.map_or(t, |e| e.min(t)));
            self.latest_time_ns = Some(self.latest_time_ns.map_or(t, |l| l.max(t)));
        }
        Ok(Checked {
            offset: frame.offset,
            frame_len: frame.len,
            record,
            payload,
            hash,
        })
    }

    fn who_signed(&self, signed: &Signed<Record>) -> BadReason {
        if let Some(c) = self.cluster {
            for m in &c.members {
                if signed.verify(&Ed25519Suite, &m.key).is_ok() {
                    return BadReason::WrongSigner(m.name.clone());
                }
            }
        }
        BadReason::BadSignature
    }

    fn check_identity(&self, id: &Identity, key: &PublicKey) -> Result<(), BadReason> {
        let Some(c) = self.cluster else {
            return Ok(());
        };
        let Some(m) = c.members.get(usize::from(id.member)) else {
            return Err(BadReason::UnknownSigner(format!(
                "{} (the log says member {}; the cluster file has {} members)",
                key.to_hex(),
                id.member,
                c.members.len()
            )));
        };
        if m.key != *key {
            return Err(BadReason::UnknownSigner(format!(
                "{} (the log says member {}, whose key in the cluster file is {})",
                key.to_hex(),
                id.member,
                m.key.to_hex()
            )));
        }
        if id.cluster_tag != c.tag || id.cluster_id != c.cluster_id {
            return Err(BadReason::WrongCluster(format!(
                "log is for cluster {:?} (tag {:016x}), the cluster file is {:?} (tag {:016x}){}",
                id.cluster_id,
                id.cluster_tag,
                c.cluster_id,
                c.tag,
                if id.cluster_id == c.cluster_id {
                    ": same name, but the members' keys or the parameters (P, Π, drift, faulty) differ; check the log against the cluster file it was written with"
                } else {
                    ""
                }
            )));
        }
        Ok(())
    }

    fn check_round(&mut self, r: &super::record::RoundPayload) -> Result<(), BadReason> {
        let suite = Ed25519Suite;
        // The nonce chain (spec §2.3): this round starts where the last one ended, every
        // reading answers a nonce derived from the head as it was when the request left,
        // and the round's head is the start advanced by every reading in order.
        let head_ok = || -> Result<(), BadReason> {
            let chain_err = |why: String| BadReason::NonceChain(why);
            if let Some(prev) = self.last_round_head
                && prev != r.head_used
            {
                return Err(chain_err(
                    "the round does not start at the previous round's head".into(),
                ));
            }
            if r.nonce_from.len() != r.readings.len() {
                return Err(chain_err("nonce_from does not match the readings".into()));
            }
            let digests: Vec<Hash32> = r.readings.iter().map(|s| s.digest(&suite)).collect();
            let heads = head_chain(&suite, &r.head_used, &digests);
            for (i, (s, &from)) in r.readings.iter().zip(&r.nonce_from).enumerate() {
                let from = usize::from(from);
                let body = s
                    .decode_unverified()
                    .map_err(|e| chain_err(format!("reading {i}: {e}")))?;
                if from > i || nonce_seq(&heads[from], &r.salt, &body).is_none() {
                    return Err(chain_err(format!(
                        "reading {i}'s nonce does not derive from the node's head"
                    )));
                }
            }
            if heads.last() != Some(&r.head) {
                return Err(chain_err(
                    "the round's head does not commit to its readings".into(),
                ));
            }
            Ok(())
        };
        let (Some(c), Some(id)) = (self.cluster, &self.identity) else {
            return head_ok();
        };
        let me = MemberId(id.member);
        let all: Vec<&Signed<Reading>> = r
            .readings
            .iter()
            .chain(r.duplicates.iter().flat_map(|(a, b)| [a, b]))
            .collect();
        // Fields first (cheap), then every signature in one batch.
        let mut keys = Vec::with_capacity(all.len());
        for (index, s) in all.iter().enumerate() {
            let bad = |why: String| BadReason::BadReading { index, why };
            let claimed = s
                .decode_unverified()
                .map_err(|e| bad(format!("malformed: {e}")))?;
            let Some(key) = c.key(claimed.responder) else {
                return Err(bad(format!(
                    "responder {} is not a member",
                    claimed.responder
                )));
            };
            if claimed.requester != me {
                return Err(bad(format!("addressed to {}", c.name(claimed.requester))));
            }
            if claimed.cluster != c.tag {
                return Err(bad("wrong cluster tag".into()));
            }
            keys.push((key, claimed.responder));
        }
        let items: Vec<BatchItem<'_>> = all
            .iter()
            .zip(&keys)
            .map(|(s, (key, _))| BatchItem {
                signer: key,
                domain: <Reading as Domain>::DOMAIN,
                body: s.body(),
                signature: s.signature(),
            })
            .collect();
        let forged = failing_in_parallel(&items);
        if !forged.is_empty() {
            // Under batch verification a node chains a reading before checking its
            // signature (spec §4.2): a forged one stays in the chain, unused. So a reading
            // may fail only if its responder has no interval this round and the round
            // counts at least as many `bad-signature` rejections. Kept evidence must verify.
            let counted = r
                .rejected
                .iter()
                .filter(|(reason, _)| reason == RejectReason::BadSignature.as_str())
                .map(|(_, n)| *n)
                .sum::<u64>();
            for (k, &index) in forged.iter().enumerate() {
                let responder = keys[index].1;
                let bad = |why: &str| BadReason::BadReading {
                    index,
                    why: format!("bad signature from {}{why}", c.name(responder)),
                };
                if index >= r.readings.len() {
                    return Err(bad(" (in kept evidence)"));
                }
                if r.intervals.iter().any(|row| row.member == responder.0) {
                    return Err(bad(", and the node used its sample"));
                }
                if k as u64 >= counted {
                    return Err(bad(", not counted as a bad-signature rejection"));
                }
            }
        }
        self.readings_checked += all.len() as u64;
        head_ok()
    }
}

/// Batch-verifies on every core (an auditor's machine is otherwise idle); returns the
/// indices of the bad signatures, in order.
fn failing_in_parallel(items: &[BatchItem<'_>]) -> Vec<usize> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    if threads < 2 || items.len() < 64 {
        return failing_signatures(&Ed25519Suite, items);
    }
    let chunk = items.len().div_ceil(threads);
    let mut failing: Vec<usize> = std::thread::scope(|scope| {
        let handles: Vec<_> = items
            .chunks(chunk)
            .enumerate()
            .map(|(k, part)| {
                scope.spawn(move || {
                    let bad = failing_signatures(&Ed25519Suite, part);
                    bad.into_iter().map(|i| k * chunk + i).collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_else(|_| vec![0]))
            .collect()
    });
    failing.sort_unstable();
    failing.dedup();
    failing
}

/// The segments of a log: `PATH.000000`, `PATH.000001`, … (rotated) then `PATH`.
pub fn segments(path: &Path) -> Vec<PathBuf> {
    let mut found: Vec<(u32, PathBuf)> = Vec::new();
    if let Some(name) = path.file_name().and_then(|n| n.to_str())
        && let Ok(entries) = std::fs::read_dir(folder_of(path))
    {
        for e in entries.flatten() {
            let fname = e.file_name();
            let Some(f) = fname.to_str() else { continue };
            if let Some(n) = f
                .strip_prefix(name)
                .and_then(|s| s.strip_prefix('.'))
                .and_then(segment_suffix)
            {
                found.push((n, path.with_file_name(f)));
            }
        }
    }
    found.sort();
    let mut out: Vec<PathBuf> = found.into_iter().map(|(_, p)| p).collect();
    // A crash in the middle of a rotation leaves the current file linked as the newest
    // rotated one (spec §8.2): one file under two names, read once.
    let mid_rotation = out.last().is_some_and(|newest| same_file(path, newest));
    if path.exists() && !mid_rotation {
        out.push(path.to_path_buf());
    }
    out
}

/// The folder `path` is in (`.` for a bare file name).
pub(crate) fn folder_of(path: &Path) -> &Path {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

/// The segment number a rotated file's name gives it (`LOG.000003` → 3); None for the
/// current file `LOG`.
pub(crate) fn rotated_number(file: &Path) -> Option<u32> {
    file.extension()
        .and_then(|e| e.to_str())
        .and_then(segment_suffix)
}

/// A frame's payload, decoded without checking its signature (only ever used to
/// refuse or to warn, never to trust).
pub(crate) fn payload_unverified(frame: &Frame<'_>) -> Option<Payload> {
    let signed: Signed<Record> = Signed::from_parts(frame.body.to_vec(), frame.signature);
    let record = signed.decode_unverified().ok()?;
    Payload::decode(record.kind, &record.payload).ok()
}

/// Whether two paths name one file (a hard link).
pub(crate) fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt as _;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => false,
    }
}

/// The number a rotated file's six-digit suffix (after `PATH.`) gives it.
fn segment_suffix(digits: &str) -> Option<u32> {
    if digits.len() != 6 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The rotated file name for segment `n` of `path`.
pub fn segment_path(path: &Path, n: u32) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{n:06}"));
    path.with_file_name(name)
}

/// The segment number of each of `files` (what [`segments`] lists: `LOG.000000`, …, then
/// `LOG`), from their names: `None` where a name does not say it (a single file, or
/// names that are not one log's segments). The current file `LOG` is the segment after
/// the last rotated one.
fn segment_numbers(files: &[PathBuf]) -> Vec<Option<u32>> {
    let rotated = |f: &Path| -> Option<(PathBuf, u32)> {
        let name = f.file_name()?.to_str()?;
        let (stem, digits) = name.rsplit_once('.')?;
        Some((f.with_file_name(stem), segment_suffix(digits)?))
    };
    let Some((base, _)) = files
        .first()
        .filter(|_| files.len() > 1)
        .and_then(|f| rotated(f))
    else {
        return vec![None; files.len()];
    };
    let mut last = None;
    files
        .iter()
        .map(|f| {
            let n = match rotated(f) {
                Some((b, n)) if b == base => Some(n),
                _ if *f == base => last.map(|l: u32| l + 1),
                _ => None,
            };
            last = n.or(last);
            n
        })
        .collect()
}

/// The segment number a file's first frame claims, if it is a segment record (unverified:
/// only ever used to refuse).
fn segment_said(frame: &Frame<'_>) -> Option<u32> {
    match payload_unverified(frame)? {
        Payload::Segment(p) => Some(p.segment),
        _ => None,
    }
}

/// Reads and checks every record of `files` in order, calling `each` for each good one.
/// Stops at the first bad record; a log without any record is bad too. Rotated files are
/// numbered: one missing between two that exist is named (`missing-segment`), and a file
/// whose segment record names another number than its name (renamed, or copied over
/// another) is refused (`wrong-segment`). Leading files may be missing: pruning the
/// oldest is allowed (spec §8.3).
pub fn check_files(
    files: &[PathBuf],
    checker: &mut Checker<'_>,
    mut each: impl FnMut(&Path, &Checked),
) -> Result<u64, BadRecord> {
    let mut bytes_total = 0u64;
    let numbers = segment_numbers(files);
    for (k, file) in files.iter().enumerate() {
        // Only the last file can end in a crash's torn record: a rotated file was closed
        // whole before the next one began, so a cut in it is data lost mid-log.
        let closed = k + 1 < files.len();
        if k > 0
            && let (Some(before), Some(this)) = (numbers[k - 1], numbers[k])
            && this != before + 1
        {
            let missing = segment_path(&files[k - 1].with_extension(""), before + 1);
            let why = format!(
                "{} is not there, but {} before it and {} after it are: records are missing mid-log",
                missing.display(),
                files[k - 1].display(),
                file.display()
            );
            return Err(BadRecord::at_file_start(
                &missing,
                checker.records,
                BadReason::MissingSegment(why),
            ));
        }
        let bytes = std::fs::read(file).map_err(|e| {
            BadRecord::at_file_start(
                file,
                checker.records,
                BadReason::Frame(format!("cannot read: {e}")),
            )
        })?;
        bytes_total += bytes.len() as u64;
        let current = rotated_number(file).is_none();
        if bytes.is_empty() && current && k > 0 {
            // A rotation writes the new file's first record before the file takes the
            // log's name (spec §8.2): an empty current file lost its records.
            let why = format!(
                "{} is empty, but rotated files are there: the newest records are missing",
                file.display()
            );
            return Err(BadRecord::at_file_start(
                file,
                checker.records,
                BadReason::MissingSegment(why),
            ));
        }
        for frame in Frames::new(&bytes) {
            let frame = frame.map_err(|e| BadRecord {
                file: file.clone(),
                index: checker.records,
                seq: None,
                offset: e.offset(),
                reason: match &e {
                    FrameError::BadHeader { .. } => BadReason::Frame(e.to_string()),
                    _ if closed => BadReason::Frame(format!(
                        "{e}, but this is a rotated file with another after it: records are missing mid-log, not cut by a crash"
                    )),
                    _ => BadReason::TruncatedTail(e.to_string()),
                },
            })?;
            // Checked before the record's own checks: a file copied over another would
            // otherwise read as a sequence gap, which says less.
            if frame.offset == 0
                && let Some(n) = numbers[k]
                && let Some(said) = segment_said(&frame)
                && said != n
            {
                // The current file's number comes from the rotated file before it: if it
                // says a later one, the newest rotated files are the ones gone.
                if current && said > n && k > 0 {
                    let gone: Vec<String> = (n..said)
                        .map(|m| segment_path(file, m).display().to_string())
                        .collect();
                    let why = format!(
                        "{} begins segment {said}, but the rotated files before it end at {}: {} not there, records are missing mid-log",
                        file.display(),
                        files[k - 1].display(),
                        if gone.len() == 1 {
                            format!("{} is", gone[0])
                        } else {
                            format!("{} are", gone.join(", "))
                        }
                    );
                    return Err(BadRecord::at_file_start(
                        file,
                        checker.records,
                        BadReason::MissingSegment(why),
                    ));
                }
                return Err(BadRecord::at_file_start(
                    file,
                    checker.records,
                    BadReason::WrongSegment(format!(
                        "the file begins segment {said} of the log, but its name makes it segment {n}: a file was renamed, or copied over another"
                    )),
                ));
            }
            let checked = checker.check(&frame).map_err(|reason| BadRecord {
                file: file.clone(),
                index: checker.records,
                seq: Signed::<Record>::from_parts(frame.body.to_vec(), frame.signature)
                    .decode_unverified()
                    .ok()
                    .map(|r| r.seq),
                offset: frame.offset,
                reason,
            })?;
            each(file, &checked);
        }
    }
    if checker.records == 0 {
        // Every log begins with a start record: an empty one (or none) lost it all.
        return Err(BadRecord {
            file: files.last().cloned().unwrap_or_default(),
            index: 0,
            seq: None,
            offset: 0,
            reason: BadReason::TruncatedTail("the log is empty".into()),
        });
    }
    Ok(bytes_total)
}

/// Kinds by name, for `--kind`.
pub fn parse_kind(s: &str) -> Result<Kind, String> {
    Kind::parse(s).ok_or_else(|| {
        format!(
            "unknown kind {s:?}; one of: {}",
            Kind::ALL.map(|k| k.as_str()).join(", ")
        )
    })
}
