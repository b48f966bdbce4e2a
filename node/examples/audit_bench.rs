//! Benchmark: the audit log at n = 250.
//!
//! Writes a log of ROUNDS round records as node-1 of a 250-member cluster would (249
//! signed peer readings and intervals per round), then times `verify` on it, with and
//! without the cluster file (with it, every embedded peer signature is checked too).
//! Prints log bytes per round, write time, and verify throughput in records/s and MB/s.
//!
//! `cargo run --release -p bftime-node --example audit_bench -- [ROUNDS] [MEMBERS]`

use std::time::Instant;

use anyhow::Context as _;
use bftime_crypto::{Ed25519Suite, NodeKey, Signed};
use bftime_node::audit::check::{Checker, ClusterKeys, check_files, segments};
use bftime_node::audit::record::{IntervalRow, Payload, RoundPayload};
use bftime_node::audit::writer::{AuditWriter, FsyncPolicy, WriterOptions};
use bftime_node::config;
use bftime_node::init::{InitOptions, init_cluster};
use bftime_protocol::message::{derive_nonce, head_chain};
use bftime_protocol::{ClusterTime, MemberId, Nanos, Reading, SyncState};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let rounds: u64 = args.next().map(|a| a.parse()).transpose()?.unwrap_or(500);
    let members: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(250);
    let dir = tempfile::tempdir()?;
    let init = init_cluster(&InitOptions {
        nodes: members,
        out: dir.path().to_path_buf(),
        host: "127.0.0.1".into(),
        base_port: 7000,
        api_base_port: Some(20000),
        cluster_id: "bench".into(),
        round_period_ms: 2000,
        precision_ms: 200,
        startup_round_divisor: 4,
    })?;
    let me = config::load(&init.node_files[0]).map_err(|e| anyhow::anyhow!("{e}"))?;
    let keys: Vec<std::sync::Arc<NodeKey>> = init
        .node_files
        .iter()
        .map(|f| config::load(f).map(|c| c.key))
        .collect::<Result<_, _>>()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let cluster = ClusterKeys::load(&init.cluster_file).map_err(|e| anyhow::anyhow!("{e}"))?;
    let path = dir.path().join("bench.audit");
    let (mut w, _) = AuditWriter::open(
        WriterOptions {
            path: path.clone(),
            identity: bftime_node::audit::identity(&me),
            fsync: FsyncPolicy::Never,
            max_file_bytes: 1 << 40,
            fail_from: None,
            split_write_pause: None,
        },
        me.key.clone(),
    )?;
    w.append(
        0,
        0,
        &Payload::Start(bftime_node::audit::record::StartPayload {
            identity: bftime_node::audit::identity(&me),
            version: "bench".into(),
            node_file_sha256: [0; 32],
            incarnation: 7,
        }),
    )?;
    let suite = Ed25519Suite;
    let mut head = [0u8; 32];
    let mut write_s = 0.0;
    let mut round_bytes = 0u64;
    let t0 = 1_790_000_000_000_000_000i64;
    for r in 0..rounds {
        let salt = [r as u8; 16];
        let now = t0 + r as i64 * 2_000_000_000;
        let readings: Vec<Signed<Reading>> = (1..members)
            .map(|p| {
                let reading = Reading {
                    cluster: cluster.tag,
                    responder: MemberId(p as u16),
                    requester: MemberId(0),
                    round: 900_000_000 + r,
                    nonce: derive_nonce(&suite, &head, &salt, MemberId(p as u16), 0),
                    receive: ClusterTime(now + p as i64 * 6_000_000),
                    transmit: ClusterTime(now + p as i64 * 6_000_000 + 41_000),
                    error: Some(Nanos(1_700_000 + p as i64)),
                    state: SyncState::Synced,
                    suspects_requester: false,
                    responder_round: 900_000_000 + r,
                    epoch: 0x1234_5678_9abc_def0 + p as u64,
                    head: [p as u8; 32],
                    last_correction: Some(Nanos(-12_000)),
                };
                Signed::sign(&reading, keys[p].as_ref())
            })
            .collect::<Result<_, _>>()?;
        let digests: Vec<[u8; 32]> = readings.iter().map(|s| s.digest(&suite)).collect();
        let new_head = *head_chain(&suite, &head, &digests).last().context("head")?;
        let payload = Payload::Round(Box::new(RoundPayload {
            state: SyncState::Synced,
            correction_ns: 12_345,
            applied: true,
            stepped: false,
            error_ns: Some(1_800_000),
            rate_ppm: 13.25,
            verdict: "healthy".into(),
            suspects: vec![],
            intervals: (1..members)
                .map(|p| IntervalRow {
                    member: p as u16,
                    lo_ns: -2_000_000 + p as i64,
                    hi_ns: 1_500_000 + p as i64,
                })
                .collect(),
            nonce_from: vec![0; readings.len()],
            readings,
            head_used: head,
            salt,
            head: new_head,
            epoch: 7,
            rejected: vec![],
            requests_refused: 0,
            duplicates: vec![],
        }));
        let start = Instant::now();
        round_bytes += w.append(900_000_000 + r, now, &payload)?;
        write_s += start.elapsed().as_secs_f64();
        head = new_head;
    }
    w.sync()?;
    drop(w);
    let files = segments(&path);
    let bytes = std::fs::metadata(&path).context("log")?.len();
    let records = rounds + 1;
    println!(
        "log: {records} records ({rounds} rounds at n = {members}), {:.1} MB; {:.0} bytes per round record ({:.1} KiB)",
        bytes as f64 / 1e6,
        round_bytes as f64 / rounds as f64,
        round_bytes as f64 / rounds as f64 / 1024.0
    );
    println!(
        "write (sign + frame + append, no fsync): {:.2} ms per round record",
        write_s * 1e3 / rounds as f64
    );
    for (label, with_cluster) in [
        ("verify (chain + node signatures)", false),
        ("verify --cluster (also every embedded peer reading)", true),
    ] {
        let mut c = Checker::new(with_cluster.then_some(&cluster));
        let start = Instant::now();
        check_files(&files, &mut c, |_, _| {}).map_err(|e| anyhow::anyhow!("{e}"))?;
        let s = start.elapsed().as_secs_f64();
        println!(
            "{label}: {:.0} records/s, {:.1} MB/s, {:.0} embedded readings/s ({:.2} s)",
            c.records as f64 / s,
            bytes as f64 / 1e6 / s,
            c.readings_checked as f64 / s,
            s
        );
    }
    Ok(())
}
