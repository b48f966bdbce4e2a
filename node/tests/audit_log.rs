//! The audit log's tamper suite and crash recovery, on logs written by the real writer
//! (no processes): every kind of damage is found at exactly the first bad record.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bftime_crypto::{Ed25519Suite, NodeKey, Signed};
use bftime_node::audit::check::{BadRecord, Checker, ClusterKeys, check_files, segments};
use bftime_node::audit::frame::{self, Frames};
use bftime_node::audit::record::{
    IntervalRow, Kind, Payload, Record, RecoveredPayload, RoundPayload, ShutdownPayload,
    StartPayload, StatePayload, StepPayload,
};
use bftime_node::audit::writer::{AuditError, AuditWriter, FsyncPolicy, WriterOptions};
use bftime_node::config::{self, NodeConfig};
use bftime_node::init::{InitOptions, init_cluster};
use bftime_protocol::message::{derive_nonce, head_chain};
use bftime_protocol::{ClusterTime, MemberId, Nanos, Reading, SyncState};

struct Fixture {
    dir: tempfile::TempDir,
    nodes: Vec<NodeConfig>,
    cluster: ClusterKeys,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let init = init_cluster(&InitOptions {
        nodes: 4,
        out: dir.path().to_path_buf(),
        host: "127.0.0.1".into(),
        base_port: 7000,
        api_base_port: None,
        cluster_id: "tamper".into(),
        round_period_ms: 1000,
        precision_ms: 200,
        startup_round_divisor: 4,
    })
    .unwrap();
    let nodes: Vec<NodeConfig> = init
        .node_files
        .iter()
        .map(|f| config::load(f).unwrap())
        .collect();
    let cluster = ClusterKeys::load(&init.cluster_file).unwrap();
    Fixture {
        dir,
        nodes,
        cluster,
    }
}

/// A reading signed by node `from` for node `to`, answering a nonce chained from `head`.
fn reading(
    f: &Fixture,
    from: usize,
    to: usize,
    round: u64,
    t_ns: i64,
    head: &[u8; 32],
) -> Signed<Reading> {
    let r = Reading {
        cluster: f.cluster.tag,
        responder: MemberId(from as u16),
        requester: MemberId(to as u16),
        round,
        nonce: derive_nonce(&Ed25519Suite, head, &[7; 16], MemberId(from as u16), 0),
        receive: ClusterTime(t_ns),
        transmit: ClusterTime(t_ns + 1000),
        error: Some(Nanos(500_000)),
        state: SyncState::Synced,
        suspects_requester: false,
        responder_round: round,
        epoch: 42,
        head: [3; 32],
        last_correction: None,
    };
    Signed::sign(&r, f.nodes[from].key.as_ref()).unwrap()
}

/// A round record whose requests all left at the round's start (nonce_from 0), chained
/// from `head_used`; returns it and the head it ends at.
fn round_payload(
    f: &Fixture,
    me: usize,
    round: u64,
    alter: bool,
    head_used: [u8; 32],
) -> (Payload, [u8; 32]) {
    let mut readings: Vec<Signed<Reading>> = (0..4)
        .filter(|&p| p != me)
        .map(|p| reading(f, p, me, round, round as i64 * 1_000_000_000, &head_used))
        .collect();
    if alter {
        // The node itself lies about what a peer signed: body changed, signature kept.
        let mut body = readings[0].decode_unverified().unwrap();
        body.transmit = ClusterTime(body.transmit.0 + 5_000_000_000);
        let forged = postcard::to_allocvec(&body).unwrap();
        readings[0] = Signed::from_parts(forged, *readings[0].signature());
    }
    round_record(readings, head_used, vec![], vec![("stale".into(), 2)])
}

/// A round record holding `readings` (requests all left at the round's start), chained
/// from `head_used`; returns it and the head it ends at.
fn round_record(
    readings: Vec<Signed<Reading>>,
    head_used: [u8; 32],
    intervals: Vec<IntervalRow>,
    rejected: Vec<(String, u64)>,
) -> (Payload, [u8; 32]) {
    let digests: Vec<[u8; 32]> = readings.iter().map(|r| r.digest(&Ed25519Suite)).collect();
    let head = *head_chain(&Ed25519Suite, &head_used, &digests)
        .last()
        .unwrap();
    let payload = Payload::Round(Box::new(RoundPayload {
        state: SyncState::Synced,
        correction_ns: 1234,
        applied: true,
        stepped: false,
        error_ns: Some(800_000),
        rate_ppm: 12.5,
        verdict: "healthy".into(),
        suspects: vec![],
        intervals,
        head,
        nonce_from: vec![0; readings.len()],
        readings,
        head_used,
        salt: [7; 16],
        epoch: 42,
        rejected,
        requests_refused: 0,
        duplicates: vec![],
    }));
    (payload, head)
}

/// One record of every kind (8 records). `variant` changes records from index 4 on;
/// `alter_round` makes the round record at that index carry a forged peer reading.
fn payloads(f: &Fixture, me: usize, variant: i64, alter_round: Option<usize>) -> Vec<Payload> {
    let id = bftime_node::audit::identity(&f.nodes[me]);
    let (r1, h1) = round_payload(f, me, 100, alter_round == Some(1), [0; 32]);
    let (r4, h4) = round_payload(f, me, 101 + variant as u64, alter_round == Some(4), h1);
    let (r6, _) = round_payload(f, me, 102, false, h4);
    let mut v = vec![
        Payload::Start(StartPayload {
            identity: id,
            version: "test".into(),
            node_file_sha256: [1; 32],
            incarnation: 42,
        }),
        r1,
        Payload::State(StatePayload {
            from: SyncState::Starting,
            to: SyncState::Synced,
            code: String::new(),
            reason: String::new(),
        }),
        Payload::Step(StepPayload {
            correction_ns: 77,
            epoch: 43,
        }),
        r4,
        Payload::Recovered(RecoveredPayload {
            file: "x".into(),
            offset: 10,
            bytes_cut: 3,
        }),
        r6,
        Payload::Shutdown(ShutdownPayload {
            reason: "signal".into(),
        }),
    ];
    if variant != 0 {
        v[5] = Payload::Step(StepPayload {
            correction_ns: variant,
            epoch: 44,
        });
    }
    v
}

fn write_log(f: &Fixture, me: usize, name: &str, payloads: &[Payload]) -> PathBuf {
    let path = f.dir.path().join(name);
    let (mut w, _) = AuditWriter::open(
        WriterOptions {
            path: path.clone(),
            identity: bftime_node::audit::identity(&f.nodes[me]),
            fsync: FsyncPolicy::Never,
            max_file_bytes: 1 << 30,
            fail_from: None,
            split_write_pause: None,
        },
        f.nodes[me].key.clone(),
    )
    .unwrap();
    for (i, p) in payloads.iter().enumerate() {
        w.append(100 + i as u64, 1_000_000_000 * (i as i64 + 1), p)
            .unwrap();
    }
    w.sync().unwrap();
    path
}

/// (offset, len) of every frame.
fn frames(bytes: &[u8]) -> Vec<(usize, usize)> {
    Frames::new(bytes)
        .map(|f| {
            let f = f.unwrap();
            (f.offset as usize, f.len as usize)
        })
        .collect()
}

fn verify_bytes(f: &Fixture, bytes: &[u8]) -> Result<u64, BadRecord> {
    let path = f.dir.path().join("under-test.audit");
    std::fs::write(&path, bytes).unwrap();
    let mut c = Checker::new(Some(&f.cluster));
    check_files(&[path], &mut c, |_, _| {})?;
    Ok(c.records)
}

fn expect_bad(f: &Fixture, bytes: &[u8], index: u64, offset: usize, codes: &[&str], what: &str) {
    let bad = verify_bytes(f, bytes).expect_err(what);
    assert_eq!(bad.index, index, "{what}: {bad}");
    assert_eq!(bad.offset, offset as u64, "{what}: {bad}");
    assert!(
        codes.contains(&bad.code()),
        "{what}: {} not in {codes:?}: {bad}",
        bad.code()
    );
}

#[test]
fn an_untouched_log_verifies_with_every_embedded_reading() {
    let f = fixture();
    let path = write_log(&f, 0, "good.audit", &payloads(&f, 0, 0, None));
    let mut c = Checker::new(Some(&f.cluster));
    check_files(&[path], &mut c, |_, _| {}).unwrap();
    assert_eq!(c.records, 8);
    assert_eq!(c.rounds, 3);
    assert_eq!(c.readings_checked, 9);
}

#[test]
fn a_flipped_byte_anywhere_is_found_at_its_record() {
    let f = fixture();
    let path = write_log(&f, 0, "flip.audit", &payloads(&f, 0, 0, None));
    let good = std::fs::read(path).unwrap();
    let fr = frames(&good);
    assert_eq!(fr.len(), 8);
    for (k, &(off, len)) in fr.iter().enumerate() {
        let body = frame::HEADER_BYTES + frame::SIGNATURE_BYTES;
        let regions: [(&str, usize, &[&str]); 7] = [
            ("magic", 0, &["bad-frame"]),
            ("length", 3, &["bad-frame"]),
            ("inverted length", 7, &["bad-frame"]),
            ("signature", frame::HEADER_BYTES + 5, &["bad-signature"]),
            ("body start", body, &["bad-signature", "malformed"]),
            (
                "body middle",
                body + (len - body) / 2,
                &["bad-signature", "malformed"],
            ),
            ("body end", len - 1, &["bad-signature", "malformed"]),
        ];
        for (region, at, codes) in regions {
            let mut bad = good.clone();
            bad[off + at] ^= 0x40;
            expect_bad(
                &f,
                &bad,
                k as u64,
                off,
                codes,
                &format!("record {k} {region}"),
            );
        }
    }
}

#[test]
fn deleted_swapped_replayed_and_truncated_records_are_found() {
    let f = fixture();
    let path = write_log(&f, 0, "order.audit", &payloads(&f, 0, 0, None));
    let good = std::fs::read(path).unwrap();
    let fr = frames(&good);
    let rec = |k: usize| &good[fr[k].0..fr[k].0 + fr[k].1];
    let join = |ks: &[usize]| {
        ks.iter()
            .flat_map(|&k| rec(k).to_vec())
            .collect::<Vec<u8>>()
    };

    let deleted = join(&[0, 1, 2, 4, 5, 6, 7]);
    expect_bad(
        &f,
        &deleted,
        3,
        fr[3].0,
        &["sequence-gap"],
        "record 3 deleted",
    );

    let swapped = join(&[0, 1, 3, 2, 4, 5, 6, 7]);
    expect_bad(
        &f,
        &swapped,
        2,
        fr[2].0,
        &["sequence-gap"],
        "records 2 and 3 swapped",
    );

    let mut replayed = good.clone();
    replayed.extend_from_slice(rec(2));
    expect_bad(
        &f,
        &replayed,
        8,
        good.len(),
        &["sequence-gap"],
        "record 2 replayed at the end",
    );

    let last = fr[7].0;
    expect_bad(
        &f,
        &good[..last + fr[7].1 / 2],
        7,
        last,
        &["truncated-tail"],
        "cut mid-record",
    );
    expect_bad(
        &f,
        &good[..last + 5],
        7,
        last,
        &["truncated-tail"],
        "cut mid-header",
    );
}

#[test]
fn foreign_signers_forks_and_forged_readings_are_found() {
    let f = fixture();
    let mine = payloads(&f, 0, 0, None);
    let a = std::fs::read(write_log(&f, 0, "a.audit", &mine)).unwrap();
    let fa = frames(&a);

    // A record with the right seq and prev, signed by node-2.
    let last = &a[fa[7].0..];
    let prev = frame::chain_hash(
        &bftime_crypto::Signature(last[10..74].try_into().unwrap()),
        &last[74..],
    );
    let rogue = Record {
        seq: 8,
        round: 200,
        prev,
        cluster_time_ns: 9,
        kind: Kind::Shutdown,
        payload: Payload::Shutdown(ShutdownPayload { reason: "x".into() }).encode(),
    };
    let signed = Signed::sign(&rogue, f.nodes[1].key.as_ref()).unwrap();
    let mut appended = a.clone();
    appended.extend(frame::encode(signed.signature(), signed.body()));
    expect_bad(
        &f,
        &appended,
        8,
        a.len(),
        &["wrong-signer"],
        "record by another member",
    );
    let bad = verify_bytes(&f, &appended).unwrap_err();
    assert!(bad.to_string().contains("node-2"), "{bad}");

    // Two nodes' logs spliced.
    let b = std::fs::read(write_log(&f, 1, "b.audit", &payloads(&f, 1, 0, None))).unwrap();
    let fb = frames(&b);
    let mut spliced = a[..fa[4].0].to_vec();
    spliced.extend_from_slice(&b[fb[4].0..]);
    expect_bad(
        &f,
        &spliced,
        4,
        fa[4].0,
        &["wrong-signer"],
        "two nodes' logs spliced",
    );

    // One node's log forked after record 4 (same key, two histories).
    let c = std::fs::read(write_log(&f, 0, "c.audit", &payloads(&f, 0, 9, None))).unwrap();
    let fc = frames(&c);
    assert_eq!(&a[..fa[4].0], &c[..fc[4].0], "common prefix");
    let mut fork = a[..fa[5].0].to_vec();
    fork.extend_from_slice(&c[fc[5].0..]);
    expect_bad(&f, &fork, 5, fa[5].0, &["broken-chain"], "forked history");

    // The node signed a round that does not continue its nonce chain.
    let mut broken = payloads(&f, 0, 0, None);
    broken[4] = round_payload(&f, 0, 101, false, [9; 32]).0;
    let e = std::fs::read(write_log(&f, 0, "e.audit", &broken)).unwrap();
    let fe = frames(&e);
    expect_bad(
        &f,
        &e,
        4,
        fe[4].0,
        &["bad-nonce-chain"],
        "round off its nonce chain",
    );

    // The node signed a record holding a peer reading it altered.
    let forged = std::fs::read(write_log(&f, 0, "d.audit", &payloads(&f, 0, 0, Some(4)))).unwrap();
    let fd = frames(&forged);
    expect_bad(
        &f,
        &forged,
        4,
        fd[4].0,
        &["bad-embedded-reading"],
        "altered embedded reading",
    );
}

/// Spec §4.2: under batch verification a node chains a reading before checking its
/// signature, so a forged reading may stay in a round, unused: allowed when its
/// responder has no interval and the round counts it as `bad-signature`, refused
/// otherwise.
#[test]
fn a_forged_reading_may_stay_chained_only_unused_and_counted() {
    let f = fixture();
    let with = |name: &str, rejected: Vec<(String, u64)>, interval_for_forger: bool| {
        let mut list = payloads(&f, 0, 0, Some(4));
        let Payload::Round(r) = &mut list[4] else {
            panic!("record 4 is a round");
        };
        let forger = r.readings[0].decode_unverified().unwrap().responder;
        r.rejected = rejected;
        if interval_for_forger {
            r.intervals.push(IntervalRow {
                member: forger.0,
                lo_ns: -5,
                hi_ns: 5,
            });
        }
        std::fs::read(write_log(&f, 0, name, &list)).unwrap()
    };
    let counted = || vec![("bad-signature".to_owned(), 1)];
    assert_eq!(
        verify_bytes(&f, &with("ok.audit", counted(), false)).unwrap(),
        8
    );
    for (bytes, what) in [
        (
            with("a.audit", vec![("stale".into(), 1)], false),
            "not counted",
        ),
        (with("b.audit", counted(), true), "its sample used"),
    ] {
        let fd = frames(&bytes);
        expect_bad(&f, &bytes, 4, fd[4].0, &["bad-embedded-reading"], what);
    }
}

fn options(f: &Fixture, path: &Path, max: u64) -> WriterOptions {
    WriterOptions {
        path: path.to_path_buf(),
        identity: bftime_node::audit::identity(&f.nodes[0]),
        fsync: FsyncPolicy::Record,
        max_file_bytes: max,
        fail_from: None,
        split_write_pause: None,
    }
}

/// A log `name` of node 1, written in files of at most 1500 bytes until it has `files`
/// files, and the payloads it was written with.
fn rotated_log(f: &Fixture, name: &str, files: usize) -> (PathBuf, Vec<Payload>) {
    let path = f.dir.path().join(name);
    let p = payloads(f, 0, 0, None);
    let (mut w, _) = AuditWriter::open(options(f, &path, 1500), f.nodes[0].key.clone()).unwrap();
    let mut i = 0;
    while segments(&path).len() < files {
        w.append(i, i as i64 + 1, &p[i as usize % p.len()]).unwrap();
        i += 1;
    }
    (path, p)
}

fn verify_all(f: &Fixture, path: &Path) -> Checker<'static> {
    let cluster: &'static ClusterKeys = Box::leak(Box::new(f.cluster.clone()));
    let mut c = Checker::new(Some(cluster));
    check_files(&segments(path), &mut c, |_, _| {}).unwrap();
    c
}

#[test]
fn a_torn_tail_is_cut_at_every_byte_and_the_chain_continues() {
    let f = fixture();
    let p = payloads(&f, 0, 0, None);
    let path = write_log(&f, 0, "torn.audit", &p);
    let good = std::fs::read(&path).unwrap();
    let fr = frames(&good);
    let (last, len) = fr[7];
    let key = f.nodes[0].key.clone();
    let trial = f.dir.path().join("trial.audit");
    let mut cuts = 0;
    for cut in (last + 1..last + len).step_by(7).chain([last + len - 1]) {
        std::fs::write(&trial, &good[..cut]).unwrap();
        let (mut w, opened) = AuditWriter::open(options(&f, &trial, 1 << 30), key.clone()).unwrap();
        let r = opened.recovered.expect("torn tail reported");
        assert_eq!(r.offset, last as u64, "cut at {cut}");
        assert_eq!(r.bytes_cut, (cut - last) as u64);
        assert_eq!(opened.continued_from_seq, 7);
        w.append(1, 1, &Payload::Recovered(r)).unwrap();
        w.append(1, 1, &p[0]).unwrap();
        drop(w);
        let bytes = std::fs::read(&trial).unwrap();
        assert_eq!(
            &bytes[..last],
            &good[..last],
            "nothing before the cut is rewritten"
        );
        let c = verify_all(&f, &trial);
        assert_eq!(c.records, 9);
        cuts += 1;
    }
    assert!(cuts > 10);
    // Zeros after the last record (data never reached the disk): also a torn tail.
    let mut zeros = good.clone();
    zeros.extend([0u8; 4096]);
    std::fs::write(&trial, &zeros).unwrap();
    let (_, opened) = AuditWriter::open(options(&f, &trial, 1 << 30), key.clone()).unwrap();
    assert_eq!(opened.recovered.unwrap().offset, good.len() as u64);
}

#[test]
fn damage_before_the_tail_and_foreign_logs_stop_the_writer() {
    let f = fixture();
    let path = write_log(&f, 0, "damaged.audit", &payloads(&f, 0, 0, None));
    let mut bytes = std::fs::read(&path).unwrap();
    let fr = frames(&bytes);
    bytes[fr[2].0 + 80] ^= 1;
    std::fs::write(&path, &bytes).unwrap();
    let err = AuditWriter::open(options(&f, &path, 1 << 30), f.nodes[0].key.clone()).unwrap_err();
    assert!(matches!(err, AuditError::Damaged { index: 2, .. }), "{err}");
    assert_eq!(
        std::fs::read(&path).unwrap(),
        bytes,
        "a damaged log is left as it is"
    );

    let other = write_log(&f, 1, "other.audit", &payloads(&f, 1, 0, None));
    let err = AuditWriter::open(options(&f, &other, 1 << 30), f.nodes[0].key.clone()).unwrap_err();
    assert!(matches!(err, AuditError::NotOurs { .. }), "{err}");
}

/// A second writer on a log in use (a node started twice) is refused before it reads a
/// byte: it must neither append its own records into the chain nor take the first
/// writer's half-written record for a torn tail and cut it off. The lock goes with the
/// writer, so the log opens again once the first one is closed.
#[test]
fn a_log_in_use_is_refused_untouched_and_opens_again_once_closed() {
    let f = fixture();
    let path = f.dir.path().join("busy.audit");
    let p = payloads(&f, 0, 0, None);
    let key: Arc<NodeKey> = f.nodes[0].key.clone();
    let (mut first, _) = AuditWriter::open(options(&f, &path, 1 << 30), key.clone()).unwrap();
    for i in 0..3 {
        first.append(i, i as i64 + 1, &p[i as usize]).unwrap();
    }
    // The first writer is in the middle of its next record.
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.extend_from_within(..40);
    std::fs::write(&path, &bytes).unwrap();
    let err = AuditWriter::open(options(&f, &path, 1 << 30), key.clone()).unwrap_err();
    assert!(matches!(err, AuditError::InUse { .. }), "{err}");
    assert!(err.to_string().contains("already running"), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), bytes, "the log is untouched");
    drop(first);
    let (_, opened) = AuditWriter::open(options(&f, &path, 1 << 30), key).unwrap();
    assert_eq!(opened.continued_from_seq, 3, "free again once closed");
    assert!(
        opened.recovered.is_some(),
        "and only then is the torn tail cut"
    );
}

#[test]
fn rotation_keeps_one_chain_across_files_and_survives_a_crash_mid_rotation() {
    let f = fixture();
    let path = f.dir.path().join("rot.audit");
    let p = payloads(&f, 0, 0, None);
    let key: Arc<NodeKey> = f.nodes[0].key.clone();
    let (mut w, _) = AuditWriter::open(options(&f, &path, 1500), key.clone()).unwrap();
    for i in 0..20 {
        w.append(i, i as i64 + 1, &p[i as usize % p.len()]).unwrap();
    }
    drop(w);
    let files = segments(&path);
    assert!(files.len() >= 3, "{files:?}");
    let c = verify_all(&f, &path);
    assert!(c.records >= 20 + files.len() as u64 - 1);
    let records = c.records;
    // The last file alone verifies too (it opens with its identity).
    let mut alone = Checker::new(Some(&f.cluster));
    check_files(std::slice::from_ref(&path), &mut alone, |_, _| {}).unwrap();
    assert!(alone.starts_mid_chain);
    // A rotated file cut mid-record is records lost mid-log, not a crash's torn tail.
    let first = std::fs::read(&files[0]).unwrap();
    std::fs::write(&files[0], &first[..first.len() - 7]).unwrap();
    let mut cut = Checker::new(Some(&f.cluster));
    let bad = check_files(&files, &mut cut, |_, _| {}).unwrap_err();
    assert_ne!(bad.code(), "truncated-tail", "{bad}");
    assert!(bad.to_string().contains("rotated file"), "{bad}");
    std::fs::write(&files[0], &first).unwrap();
    // A rotated file gone from the middle is named; pruning the oldest is allowed.
    let hidden = f.dir.path().join("hidden");
    std::fs::rename(&files[1], &hidden).unwrap();
    let bad = check_files(
        &segments(&path),
        &mut Checker::new(Some(&f.cluster)),
        |_, _| {},
    )
    .unwrap_err();
    assert_eq!(bad.code(), "missing-segment", "{bad}");
    assert_eq!(bad.file, files[1], "{bad}");
    std::fs::rename(&hidden, &files[1]).unwrap();
    std::fs::rename(&files[0], &hidden).unwrap();
    let mut pruned = Checker::new(Some(&f.cluster));
    check_files(&segments(&path), &mut pruned, |_, _| {}).unwrap();
    assert!(pruned.starts_mid_chain);
    std::fs::rename(&hidden, &files[0]).unwrap();
    // A file copied over the next one says which segment it really is.
    let second = std::fs::read(&files[2]).unwrap();
    std::fs::copy(&files[1], &files[2]).unwrap();
    let bad = check_files(&files, &mut Checker::new(Some(&f.cluster)), |_, _| {}).unwrap_err();
    assert_eq!(bad.code(), "wrong-segment", "{bad}");
    assert_eq!(bad.file, files[2], "{bad}");
    assert!(bad.to_string().contains("begins segment 1"), "{bad}");
    std::fs::write(&files[2], &second).unwrap();
    verify_all(&f, &path);

    // A crash in the middle of a rotation, after the current file was linked under its
    // rotated name: the log verifies as it is (one file under two names, read once),
    // and the next start finishes the rotation.
    let next = files.len() as u32 - 1;
    std::fs::hard_link(&path, bftime_node::audit::check::segment_path(&path, next)).unwrap();
    assert_eq!(verify_all(&f, &path).records, records);
    let (mut w, opened) = AuditWriter::open(options(&f, &path, 1500), key).unwrap();
    assert_eq!(opened.continued_from_seq, records);
    w.append(99, 99, &p[0]).unwrap();
    drop(w);
    let c = verify_all(&f, &path);
    assert_eq!(c.records, records + 2, "a segment record and the new start");
    assert_eq!(segments(&path).len(), files.len() + 1);
}

#[test]
fn double_signing_is_proven_only_by_two_different_answers_to_one_request() {
    use bftime_node::audit::evidence::{Proof, ProofKind, SignedHex, check_proof};
    let f = fixture();
    let first = reading(&f, 1, 0, 100, 5_000_000_000, &[0; 32]);
    let proof = |a: &Signed<Reading>, b: &Signed<Reading>| Proof {
        kind: ProofKind::DoubleSigned,
        accused: "node-2".into(),
        accused_member: 1,
        summary: String::new(),
        first: SignedHex::of(a),
        second: SignedHex::of(b),
        links: vec![],
        occurrences: 1,
    };
    // Same request, another answer (a different clock): proven.
    let second = reading(&f, 1, 0, 100, 7_000_000_000, &[0; 32]);
    let ok = check_proof(&f.cluster, &proof(&first, &second)).unwrap();
    assert!(ok.contains("node-2"), "{ok}");
    // The same reading twice proves nothing.
    assert!(check_proof(&f.cluster, &proof(&first, &first)).is_err());
    // Answers to two different requests prove nothing.
    let other = reading(&f, 1, 0, 100, 7_000_000_000, &[1; 32]);
    assert!(check_proof(&f.cluster, &proof(&first, &other)).is_err());
    // Nor does one the accused did not sign.
    let by_node_3 = reading(&f, 2, 0, 100, 7_000_000_000, &[0; 32]);
    assert!(check_proof(&f.cluster, &proof(&first, &by_node_3)).is_err());
    // The accused's name is not signed: another member's name on the proof voids it.
    let renamed = Proof {
        accused: "node-1".into(),
        ..proof(&first, &second)
    };
    let e = check_proof(&f.cluster, &renamed).unwrap_err();
    assert!(e.to_string().contains("\"node-1\""), "{e}");
}

/// Spec §4.2: a forged reading that a log may hold (chained, unused, counted) is never a
/// proof's reading. Here a dishonest log pairs a genuine reading of node-2 with a made-up
/// one "from node-2" far behind it: without that rule `evidence` would prove node-2 ran
/// backwards on the strength of a signature that does not verify.
#[test]
fn a_forged_reading_in_a_log_proves_nothing() {
    use bftime_node::audit::evidence::{find, read_log};
    let f = fixture();
    let round = |n: u64, t_ns: i64, head_used: [u8; 32], forge: bool| {
        let mut readings: Vec<Signed<Reading>> = (1..4)
            .map(|p| reading(&f, p, 0, n, t_ns, &head_used))
            .collect();
        let mut intervals: Vec<IntervalRow> = (1..4u16)
            .map(|member| IntervalRow {
                member,
                lo_ns: -5,
                hi_ns: 5,
            })
            .collect();
        let mut rejected = vec![];
        if forge {
            let mut body = readings[0].decode_unverified().unwrap();
            body.receive = ClusterTime(t_ns - 30_000_000_000);
            body.transmit = ClusterTime(t_ns - 30_000_000_000 + 1000);
            readings[0] = Signed::from_parts(
                postcard::to_allocvec(&body).unwrap(),
                bftime_crypto::Signature([9; 64]),
            );
            intervals.retain(|row| row.member != 1);
            rejected.push(("bad-signature".to_owned(), 1));
        }
        round_record(readings, head_used, intervals, rejected)
    };
    let (r1, h1) = round(100, 100_000_000_000, [0; 32], false);
    let (r2, _) = round(101, 101_000_000_000, h1, true);
    let start = Payload::Start(StartPayload {
        identity: bftime_node::audit::identity(&f.nodes[0]),
        version: "test".into(),
        node_file_sha256: [1; 32],
        incarnation: 42,
    });
    let path = write_log(&f, 0, "framing.audit", &[start, r1, r2]);
    let (log, _) = read_log(&f.cluster, &[path], |_| {}).expect("the log verifies");
    let proofs = find(&f.cluster, &[log]);
    assert!(
        proofs.iter().all(|p| p.accused_member != 1),
        "a forged reading proved something: {proofs:?}"
    );
}

/// A crash while the log's very first record was being written leaves only a torn
/// record: the next run begins the log again with its start record (a log's first
/// record says whose it is), then says what it cut; a further restart continues it.
#[test]
fn a_crash_during_the_first_record_begins_the_log_again() {
    let f = fixture();
    let cfg = &f.nodes[0];
    let path = cfg.audit_log.clone().expect("init-cluster sets audit_log");
    std::fs::write(&path, [0xb7, 0x7a, 0x10]).unwrap();
    for run in 0..2 {
        let h = bftime_node::audit::open_node_log(cfg, 7, 1, 1_000)
            .unwrap()
            .expect("a log");
        h.close(std::time::Duration::from_secs(5));
        let c = verify_all(&f, &path);
        assert_eq!(c.records, 2 + run, "run {run}");
    }
    let kinds: Vec<Kind> = Frames::new(&std::fs::read(&path).unwrap())
        .map(|fr| {
            let fr = fr.unwrap();
            Signed::<Record>::from_parts(fr.body.to_vec(), fr.signature)
                .decode_unverified()
                .unwrap()
                .kind
        })
        .collect();
    assert_eq!(kinds, [Kind::Start, Kind::Recovered, Kind::Start]);
}

/// Rotation never leaves the current file missing or empty (spec §8.2: it is linked
/// under its rotated name, and the new one takes the name only once it holds its first
/// record). So a current file deleted, emptied or without a whole record, with rotated
/// files before it, lost records: the writer refuses it untouched (it used to start a
/// new chain at seq 0, or at the newest rotated file, re-signing the lost numbers).
/// And no rotation replaces a rotated file.
#[test]
fn a_current_file_removed_after_rotation_is_refused_and_rotated_files_are_never_replaced() {
    let f = fixture();
    let (path, p) = rotated_log(&f, "removed.audit", 3);
    let key: Arc<NodeKey> = f.nodes[0].key.clone();
    let current = std::fs::read(&path).unwrap();
    let snapshot = || -> Vec<(PathBuf, Vec<u8>)> {
        segments(&path)
            .into_iter()
            .map(|s| {
                let b = std::fs::read(&s).unwrap();
                (s, b)
            })
            .collect()
    };
    for (what, damage) in [
        ("deleted", None),
        ("emptied", Some(0)),
        ("torn in its first record", Some(40)),
    ] {
        match damage {
            None => std::fs::remove_file(&path).unwrap(),
            Some(n) => std::fs::write(&path, &current[..n]).unwrap(),
        }
        let before = snapshot();
        let err = AuditWriter::open(options(&f, &path, 1500), key.clone()).unwrap_err();
        assert!(matches!(err, AuditError::Damaged { .. }), "{what}: {err}");
        assert_eq!(snapshot(), before, "{what}: nothing changed");
        if damage.is_none() {
            // Its absence is the CLI's to see (the_cli_fails_a_log_without_its_current_file…).
            std::fs::write(&path, &current).unwrap();
            continue;
        }
        let bad = check_files(
            &segments(&path),
            &mut Checker::new(Some(&f.cluster)),
            |_, _| {},
        )
        .map(|_| ())
        .expect_err(what);
        assert!(
            ["missing-segment", "truncated-tail"].contains(&bad.code()),
            "{what}: {bad}"
        );
        std::fs::write(&path, &current).unwrap();
    }
    verify_all(&f, &path);

    // A rotation never replaces a file: one in the way stops the writer instead.
    let (mut w, _) = AuditWriter::open(options(&f, &path, 1500), key).unwrap();
    let next = segments(&path).len() as u32 - 1;
    let squatter = bftime_node::audit::check::segment_path(&path, next);
    std::fs::write(&squatter, b"not a log").unwrap();
    let err = (0..40)
        .find_map(|j| w.append(200 + j, 2_000 + j as i64, &p[0]).err())
        .expect("the rotation fails");
    assert!(err.to_string().contains("never replaced"), "{err}");
    assert_eq!(std::fs::read(&squatter).unwrap(), b"not a log");
}

/// A node that cannot start (its sockets come after the log is prepared) changes
/// nothing in its log: a torn tail is cut only when the log is committed.
#[test]
fn preparing_a_log_changes_nothing_until_it_is_committed() {
    let f = fixture();
    let path = f.dir.path().join("prepared.audit");
    let p = payloads(&f, 0, 0, None);
    let key: Arc<NodeKey> = f.nodes[0].key.clone();
    let (mut w, _) = AuditWriter::open(options(&f, &path, 1 << 30), key.clone()).unwrap();
    for (i, payload) in p.iter().enumerate().take(3) {
        w.append(i as u64, i as i64 + 1, payload).unwrap();
    }
    drop(w);
    let mut torn = std::fs::read(&path).unwrap();
    torn.extend_from_within(..30);
    std::fs::write(&path, &torn).unwrap();
    let prepared = AuditWriter::prepare(options(&f, &path, 1 << 30), key.clone()).unwrap();
    assert_eq!(prepared.continued_from_seq(), 3);
    drop(prepared);
    assert_eq!(std::fs::read(&path).unwrap(), torn, "untouched");
    let (_, opened) = AuditWriter::prepare(options(&f, &path, 1 << 30), key)
        .unwrap()
        .commit()
        .unwrap();
    assert_eq!(opened.recovered.unwrap().bytes_cut, 30);
    assert_eq!(std::fs::read(&path).unwrap().len(), torn.len() - 30);
}

/// The newest rotated file deleted: the current file's segment record says which
/// numbers are gone (not a renamed file).
#[test]
fn a_deleted_newest_rotated_file_is_a_missing_segment() {
    let f = fixture();
    let (path, _) = rotated_log(&f, "newest.audit", 3);
    let newest = bftime_node::audit::check::segment_path(&path, 1);
    std::fs::remove_file(&newest).unwrap();
    let bad = check_files(
        &segments(&path),
        &mut Checker::new(Some(&f.cluster)),
        |_, _| {},
    )
    .unwrap_err();
    assert_eq!(bad.code(), "missing-segment", "{bad}");
    assert!(
        bad.to_string().contains(&newest.display().to_string()),
        "{bad}"
    );
}

/// Between runs a node may be renamed or its cluster file edited (a comment, an
/// address): the log goes on. Another cluster configuration (new members, new
/// parameters: another cluster tag) is refused before anything is written, with what
/// changed, since one log is checked against one cluster file.
#[test]
fn an_edited_cluster_file_continues_the_log_and_another_cluster_is_refused() {
    let f = fixture();
    let path = f.dir.path().join("edited.audit");
    let p = payloads(&f, 0, 0, None);
    let key: Arc<NodeKey> = f.nodes[0].key.clone();
    let (mut w, _) = AuditWriter::open(options(&f, &path, 1 << 30), key.clone()).unwrap();
    w.append(1, 1, &p[0]).unwrap();
    drop(w);
    let mut edited = options(&f, &path, 1 << 30);
    edited.identity.cluster_file_sha256 = [7; 32];
    edited.identity.name = "renamed".into();
    let start = Payload::Start(StartPayload {
        identity: edited.identity.clone(),
        version: "test".into(),
        node_file_sha256: [0; 32],
        incarnation: 2,
    });
    let (mut w, _) = AuditWriter::open(edited.clone(), key.clone()).unwrap();
    w.append(2, 2, &start).unwrap();
    drop(w);
    let c = verify_all(&f, &path);
    assert_eq!(c.records, 2);
    assert_eq!(c.identity().unwrap().name, "renamed", "the latest identity");

    let mut other = edited;
    other.identity.cluster_tag ^= 1;
    let before = std::fs::read(&path).unwrap();
    let err = AuditWriter::open(other, key).unwrap_err();
    assert!(matches!(err, AuditError::ClusterChanged { .. }), "{err}");
    assert!(err.to_string().contains("cluster tag"), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), before, "nothing written");
}

/// `bftime audit verify` on a log whose current file is gone (the newest records, the
/// ones an incident is about) fails, naming it; `check-proof` on a file that is not
/// there or not a proofs file fails as a proof that does not hold does (65).
#[test]
fn the_cli_fails_a_log_without_its_current_file_and_a_missing_proofs_file() {
    const BIN: &str = env!("CARGO_BIN_EXE_bftime");
    let f = fixture();
    let (path, _) = rotated_log(&f, "gone.audit", 2);
    let cluster = f.dir.path().join("cluster.toml");
    let verify = || {
        std::process::Command::new(BIN)
            .args(["audit", "verify", "--json", "--cluster"])
            .arg(&cluster)
            .arg(&path)
            .output()
            .unwrap()
    };
    assert_eq!(verify().status.code(), Some(0));
    std::fs::remove_file(&path).unwrap();
    let out = verify();
    assert_eq!(out.status.code(), Some(65));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["reason"], "missing-segment", "{v}");
    assert!(
        v["detail"].as_str().unwrap().contains("newest records"),
        "{v}"
    );

    let not_proofs = f.dir.path().join("not-proofs.json");
    std::fs::write(&not_proofs, "{}").unwrap();
    for proofs in [f.dir.path().join("none.json"), not_proofs] {
        let out = std::process::Command::new(BIN)
            .args(["audit", "check-proof", "--cluster"])
            .arg(&cluster)
            .arg(&proofs)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(65), "{proofs:?}");
    }
}

/// `show --time` keeps the records dated within a cluster-time range (both ends
/// inclusive), which lines up several nodes' logs where round labels do not; epochs
/// print as 16 hex digits (a JSON double cannot hold a random 64-bit number).
#[test]
fn show_filters_by_cluster_time_and_prints_epochs_as_hex() {
    const BIN: &str = env!("CARGO_BIN_EXE_bftime");
    let f = fixture();
    let path = f.dir.path().join("timed.audit");
    let p = payloads(&f, 0, 0, None);
    let (mut w, _) =
        AuditWriter::open(options(&f, &path, 1 << 30), f.nodes[0].key.clone()).unwrap();
    for (i, payload) in p.iter().enumerate() {
        w.append(i as u64, (i as i64 + 1) * 1_000_000_000, payload)
            .unwrap();
    }
    drop(w);
    let show = |time: &str| {
        let out = std::process::Command::new(BIN)
            .args(["audit", "show", "--json", "--time", time])
            .arg(&path)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
                .collect::<Vec<_>>(),
        )
    };
    let (code, rows) = show("1970-01-01T00:00:02Z..1970-01-01T00:00:03Z");
    assert_eq!(code, Some(0));
    let times: Vec<i64> = rows
        .iter()
        .map(|r| r["cluster_time_ns"].as_i64().unwrap())
        .collect();
    assert_eq!(times, [2_000_000_000, 3_000_000_000], "{rows:?}");
    let (_, rows) = show("..1970-01-01T00:00:01.5Z");
    assert_eq!(rows.len(), 1);
    let (_, all) = show("1970-01-01T00:00:00Z..");
    assert_eq!(all.len(), p.len());
    let epoch = all
        .iter()
        .find_map(|r| r["payload"]["epoch"].as_str())
        .expect("a round record's epoch");
    assert_eq!(epoch.len(), 16, "{epoch}");
    let (code, _) = show("yesterday..today");
    assert_eq!(code, Some(2), "a bad range is a usage error");
}

/// `verify` sums up how the node's runs ended: a start not preceded by a shutdown
/// record is a run that crashed, was killed or lost power.
#[test]
fn verify_counts_runs_that_ended_without_a_shutdown() {
    const BIN: &str = env!("CARGO_BIN_EXE_bftime");
    let f = fixture();
    let path = f.dir.path().join("runs.audit");
    let p = payloads(&f, 0, 0, None);
    let start = p[0].clone();
    assert_eq!(start.kind(), Kind::Start);
    let (mut w, _) =
        AuditWriter::open(options(&f, &path, 1 << 30), f.nodes[0].key.clone()).unwrap();
    let shutdown = Payload::Shutdown(ShutdownPayload {
        reason: "signal".into(),
    });
    for (i, payload) in [&start, &p[1], &start, &p[1], &shutdown]
        .into_iter()
        .enumerate()
    {
        w.append(i as u64, i as i64 + 1, payload).unwrap();
    }
    drop(w);
    // A clean restart whose start record rotates the log first: the file it opens
    // begins with a segment record, and the run before it still ended cleanly.
    let full = std::fs::metadata(&path).unwrap().len();
    let (mut w, _) =
        AuditWriter::open(options(&f, &path, full + 10), f.nodes[0].key.clone()).unwrap();
    w.append(9, 9, &start).unwrap();
    drop(w);
    assert_eq!(segments(&path).len(), 2, "rotated before the start record");
    let out = std::process::Command::new(BIN)
        .args(["audit", "verify", "--json"])
        .arg(&path)
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["starts"], 3, "{v}");
    assert_eq!(v["runs_ended_unclean"], 1, "{v}");
    assert_eq!(v["recoveries"], 0, "{v}");
}

/// `bftime validate` warns when the node's existing log is one `run` would refuse: the
/// cluster file now describes another configuration.
#[test]
fn validate_warns_of_a_log_written_for_another_cluster_configuration() {
    let f = fixture();
    let cfg = &f.nodes[0];
    let path = cfg.audit_log.clone().expect("init-cluster sets audit_log");
    let h = bftime_node::audit::open_node_log(cfg, 7, 1, 1_000)
        .unwrap()
        .expect("a log");
    h.close(std::time::Duration::from_secs(5));
    assert!(bftime_node::audit::log_warnings(cfg).is_empty());
    let cluster = f.dir.path().join("cluster.toml");
    let text = std::fs::read_to_string(&cluster).unwrap();
    std::fs::write(
        &cluster,
        text.replace("precision_ms = 200", "precision_ms = 300"),
    )
    .unwrap();
    let node_file = f.dir.path().join("node-1.toml");
    let changed = config::load(&node_file).unwrap();
    let warnings = bftime_node::audit::log_warnings(&changed);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("cluster tag"), "{warnings:?}");
    assert!(
        warnings[0].contains(&path.display().to_string()),
        "{warnings:?}"
    );
}
