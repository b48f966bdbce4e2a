//! The audit log with real processes: a two-faced member is proven from the correct
//! nodes' logs with a proof `check-proof` accepts; honest runs accuse nobody; kill -9
//! in a loop, often inside a record, never leaves a log that does not verify up to the
//! cut, and every restart cuts the torn record and continues the chain.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use bftime_node::testing::Behaviour;
use common::{BIN, Cluster, honest};
use serde_json::Value;

const PERIOD_MS: u64 = 1000;
const SYNC_TIMEOUT: Duration = Duration::from_secs(60);

fn audit(args: &[&str], files: &[PathBuf]) -> Output {
    Command::new(BIN)
        .arg("audit")
        .args(args)
        .args(files)
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn audit_log(c: &Cluster, k: usize) -> PathBuf {
    c.dir.path().join(format!("node-{}.audit", k + 1))
}

fn cluster_file(c: &Cluster) -> String {
    c.init.cluster_file.display().to_string()
}

fn synced(s: &Value) -> bool {
    s["state"] == "synced"
}

/// Verifies every log of the cluster with the cluster file; returns them.
fn verify_all(c: &Cluster) -> Vec<PathBuf> {
    let logs: Vec<PathBuf> = (0..c.n()).map(|k| audit_log(c, k)).collect();
    let out = audit(&["verify", "--cluster", &cluster_file(c)], &logs);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    eprint!("{}", text(&out));
    logs
}

#[test]
fn two_faced_member_is_proven_and_nobody_else_is_accused() {
    let n = 7;
    let liar = 6;
    let mut c = Cluster::new(n, PERIOD_MS);
    for k in 0..n {
        let mut t = honest();
        if k == liar {
            t.behaviour = Behaviour::TwoFaced;
            t.lie_ms = 400.0;
        }
        c.testing(k, t);
    }
    c.start_all();
    let correct: Vec<usize> = (0..n).filter(|&k| k != liar).collect();
    c.wait_for(&correct, SYNC_TIMEOUT, "correct nodes synced", synced);
    std::thread::sleep(Duration::from_secs(6));
    for k in 0..n {
        assert_eq!(c.terminate(k).0, Some(0));
    }
    let logs = verify_all(&c);
    // How a log ends is said: a node stopped by SIGTERM wrote its shutdown record; the
    // same log cut at a record boundary still verifies, without one.
    let ending = |log: &Path| -> Value {
        let out = audit(&["verify", "--json"], &[log.to_path_buf()]);
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let v = ending(&logs[0]);
    assert_eq!(v["ends_with_shutdown"], true, "{v}");
    assert_eq!(v["starts"], 1, "{v}");
    assert_eq!(v["recoveries"], 0, "{v}");
    assert_eq!(v["runs_ended_unclean"], 0, "{v}");
    // The span is the records' earliest to latest time, never negative (a node steps its
    // clock before it serves, so its first record may be dated after later ones).
    assert!(v["span_s"].as_f64().unwrap() > 0.0, "{v}");
    assert!(
        v["earliest_cluster_time_ns"].as_i64() <= v["first_cluster_time_ns"].as_i64(),
        "{v}"
    );
    let shown = audit(&["show", "--json"], &logs[..1]);
    let last: Value = String::from_utf8_lossy(&shown.stdout)
        .lines()
        .last()
        .map(|l| serde_json::from_str(l).unwrap())
        .unwrap();
    // `offset` counts within the file the record is in, which the line names.
    assert_eq!(last["file"], logs[0].display().to_string(), "{last}");
    let cut_at = last["offset"].as_u64().unwrap() as usize;
    let cut = c.dir.path().join("cut.audit");
    std::fs::write(&cut, &std::fs::read(&logs[0]).unwrap()[..cut_at]).unwrap();
    let v = ending(&cut);
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["ends_with_shutdown"], false, "{v}");
    // A cluster file that cannot be read is a configuration error (78) naming the flag.
    let missing_cluster = c.dir.path().join("no-such-cluster.toml");
    let out = audit(
        &[
            "verify",
            "--cluster",
            &missing_cluster.display().to_string(),
        ],
        &logs[..1],
    );
    assert_eq!(out.status.code(), Some(78), "{}", text(&out));
    assert!(text(&out).contains("--cluster path"), "{}", text(&out));
    // A missing log is said, and does not stop the others from being checked.
    let missing = c.dir.path().join("gone.audit");
    let out = audit(
        &["verify", "--cluster", &cluster_file(&c)],
        &[missing, logs[0].clone()],
    );
    assert_eq!(out.status.code(), Some(65), "{}", text(&out));
    let said = text(&out);
    assert!(
        said.contains("MISSING") && said.contains("gone.audit"),
        "{said}"
    );
    assert!(
        said.contains("OK "),
        "the next log is still checked: {said}"
    );
    let proofs = c.dir.path().join("proofs.json");
    let correct_logs: Vec<PathBuf> = correct.iter().map(|&k| logs[k].clone()).collect();
    // A correct node's log that ends in a torn record (it crashed mid-write) still
    // serves, up to the tear, with a warning.
    let torn = c.dir.path().join("torn.audit");
    let bytes = std::fs::read(&correct_logs[0]).unwrap();
    std::fs::write(&torn, &bytes[..bytes.len() - 5]).unwrap();
    let mut with_torn = correct_logs.clone();
    with_torn[0] = torn;
    let out = audit(&["evidence", "--cluster", &cluster_file(&c)], &with_torn);
    assert_eq!(out.status.code(), Some(9), "{}", text(&out));
    assert!(
        text(&out).contains("warning: ") && text(&out).contains("truncated tail"),
        "{}",
        text(&out)
    );
    // One node's log given twice would count its violations twice: refused.
    let mut twice = correct_logs.clone();
    twice.push(correct_logs[0].clone());
    let out = audit(&["evidence", "--cluster", &cluster_file(&c)], &twice);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("give each node's log once"),
        "{}",
        text(&out)
    );
    let out = audit(
        &[
            "evidence",
            "--cluster",
            &cluster_file(&c),
            "--out",
            &proofs.display().to_string(),
        ],
        &correct_logs,
    );
    eprint!("{}", text(&out));
    assert_eq!(
        out.status.code(),
        Some(9),
        "misbehaviour proven: {}",
        text(&out)
    );
    let file: Value = serde_json::from_str(&std::fs::read_to_string(&proofs).unwrap()).unwrap();
    let list = file["proofs"].as_array().unwrap();
    assert!(
        list.iter().any(|p| p["kind"] == "two-faced"),
        "a two-faced proof: {file}"
    );
    for p in list {
        assert_eq!(
            p["accused"], "node-7",
            "only the two-faced member is accused"
        );
    }
    let out = audit(
        &["check-proof", "--cluster", &cluster_file(&c)],
        std::slice::from_ref(&proofs),
    );
    eprint!("{}", text(&out));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("VALID (two-faced)"));

    // A proof with one altered byte in the accused's signed reading fails.
    let mut forged = file.clone();
    let body = forged["proofs"][0]["second"]["body"]
        .as_str()
        .unwrap()
        .to_owned();
    let flipped = if body.ends_with('0') { "1" } else { "0" };
    forged["proofs"][0]["second"]["body"] =
        Value::from(format!("{}{flipped}", &body[..body.len() - 1]));
    let forged_path = c.dir.path().join("forged.json");
    std::fs::write(&forged_path, forged.to_string()).unwrap();
    let out = audit(
        &["check-proof", "--cluster", &cluster_file(&c)],
        &[forged_path],
    );
    assert_eq!(out.status.code(), Some(65), "{}", text(&out));
    assert!(text(&out).contains("INVALID"));

    // The unsigned words of a proofs file are checked too: an honest member's name on
    // the proof, or another cluster id under the same tag, void it.
    let edited = |path: &str, value: &str| {
        let mut v = file.clone();
        match path {
            "accused" => v["proofs"][0]["accused"] = Value::from(value),
            _ => v["cluster_id"] = Value::from(value),
        }
        let p = c.dir.path().join(format!("edited-{path}.json"));
        std::fs::write(&p, v.to_string()).unwrap();
        audit(&["check-proof", "--cluster", &cluster_file(&c)], &[p])
    };
    let out = edited("accused", "node-1");
    assert_eq!(out.status.code(), Some(65), "{}", text(&out));
    assert!(text(&out).contains("INVALID"), "{}", text(&out));
    let out = edited("cluster_id", "other");
    assert_eq!(out.status.code(), Some(65), "{}", text(&out));
}

#[test]
fn honest_cluster_with_bad_clocks_yields_no_proofs() {
    let n = 4;
    let mut c = Cluster::new(n, PERIOD_MS);
    for k in 0..n {
        let mut t = honest();
        // Offsets and drifts that keep the correction loop busy.
        t.initial_offset_ms = [0.0, 3000.0, -1500.0, 150.0][k];
        t.drift_ppm = [0.0, 80.0, -60.0, 150.0][k];
        c.testing(k, t);
    }
    c.start_all();
    let all: Vec<usize> = (0..n).collect();
    c.wait_for(&all, SYNC_TIMEOUT, "all synced", synced);
    std::thread::sleep(Duration::from_secs(6));
    for k in 0..n {
        assert_eq!(c.terminate(k).0, Some(0));
    }
    let logs = verify_all(&c);
    let out = audit(&["evidence", "--cluster", &cluster_file(&c)], &logs);
    eprint!("{}", text(&out));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["proofs"].as_array().unwrap().len(), 0);
    // show: one line per record, filters work.
    let out = audit(
        &[
            "show",
            "--cluster",
            &cluster_file(&c),
            "--kind",
            "state",
            "--json",
        ],
        &logs[..1],
    );
    assert_eq!(out.status.code(), Some(0));
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        lines.iter().any(|l| l["payload"]["to"] == "synced"),
        "{lines:?}"
    );
    assert!(lines.iter().all(|l| l["kind"] == "state"));
    // Filters it cannot use are usage errors (exit 2), before any output.
    for bad in [
        &["show", "--round", "9..3"][..],
        &["show", "--round", "abc"],
        &["show", "--kind", "bogus"],
        &["show", "--peer", "node-2"],
    ] {
        let out = audit(bad, &logs[..1]);
        assert_eq!(out.status.code(), Some(2), "{bad:?}: {}", text(&out));
        assert!(out.stdout.is_empty(), "{bad:?}: {}", text(&out));
    }
    // A round's JSON carries its readings and their count (one key each).
    let out = audit(&["show", "--kind", "round", "--json"], &logs[..1]);
    assert_eq!(out.status.code(), Some(0));
    let rounds: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(!rounds.is_empty());
    for r in &rounds {
        let readings = r["payload"]["readings"].as_array().expect("readings");
        assert_eq!(
            r["payload"]["readings_accepted"].as_u64(),
            Some(readings.len() as u64),
            "{r}"
        );
    }
}

fn kill9(c: &mut Cluster, k: usize) {
    if let Some(child) = c.children[k].as_mut() {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// Waits (at most 20 s) until node `k`'s current run has opened its audit log.
fn wait_for_log_open(c: &Cluster, k: usize) {
    let start = std::time::Instant::now();
    while !c.log(k).contains("audit log open") {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "node-{} never opened its audit log:\n{}",
            k + 1,
            common::tail(&c.log(k), 20)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `verify` accepts the log, or finds only a torn tail (the record being written).
fn verifies_up_to_the_cut(log: &Path, cluster: &str) -> bool {
    let out = audit(
        &["verify", "--json", "--cluster", cluster],
        &[log.to_path_buf()],
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    if v["ok"] == true {
        return false;
    }
    assert_eq!(
        v["reason"], "truncated-tail",
        "only a torn tail may be damaged: {v}"
    );
    true
}

#[test]
fn kill_9_in_a_loop_leaves_a_log_that_verifies_and_continues() {
    let n = 4;
    let mut c = Cluster::new(n, 500);
    // Node 1's disk is slow: each record goes out in two writes 80 ms apart, so kills
    // land inside records (a real torn write, not a simulated one).
    let mut slow = honest();
    slow.audit_write_pause_ms = Some(80.0);
    c.testing(0, slow);
    c.start_all();
    let cluster = cluster_file(&c);
    let log = audit_log(&c, 0);
    let mut torn = 0;
    let iterations = 20;
    for i in 0..iterations {
        // Kill only once this run's `start` record is on disk (the node logs "audit log
        // open" after writing it): then every run adds exactly one start record and every
        // torn tail is a round's record that the next start cuts and records. Vary the
        // moment: 0.3 .. 1.5 s after that, so kills land in every phase of a round.
        wait_for_log_open(&c, 0);
        std::thread::sleep(Duration::from_millis(300 + (i * 263) % 1200));
        kill9(&mut c, 0);
        if verifies_up_to_the_cut(&log, &cluster) {
            torn += 1;
        }
        c.start(0);
    }
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(c.terminate(0).0, Some(0));
    let out = audit(
        &["verify", "--json", "--cluster", &cluster],
        std::slice::from_ref(&log),
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ok"], true, "{v}");
    let out = audit(&["show", "--kind", "start,recovered", "--json"], &[log]);
    let starts = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains("\"kind\":\"start\""))
        .count();
    let recovered = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains("\"kind\":\"recovered\""))
        .count();
    eprintln!(
        "kill -9 x{iterations}: {starts} start records in one chain, {torn} torn tails seen, {recovered} recovered records"
    );
    assert_eq!(
        starts,
        iterations as usize + 1,
        "every run starts on the same chain"
    );
    assert_eq!(recovered, torn, "every torn tail was cut and recorded");
    assert!(
        torn >= 1,
        "no kill landed inside a record; the test proved nothing"
    );
}

#[test]
fn a_node_whose_audit_log_fails_quarantines() {
    let n = 4;
    let mut c = Cluster::new(n, PERIOD_MS);
    for k in 0..n {
        let mut t = honest();
        if k == 0 {
            t.audit_fail_after_s = Some(5.0);
        }
        c.testing(k, t);
    }
    c.start_all();
    c.wait_for(
        &[0],
        SYNC_TIMEOUT,
        "the node with the failing disk quarantines",
        |s| s["state"] == "quarantined",
    );
    let s = c.status(0).unwrap();
    assert_eq!(s["audit"]["failed"], true, "{s}");
    assert!(
        s["quarantine_reason"].to_string().contains("audit"),
        "{}",
        s["quarantine_reason"]
    );
    assert!(c.log(0).contains("AUDIT LOG FAILED"));
    let others: Vec<usize> = (1..n).collect();
    c.wait_for(&others, SYNC_TIMEOUT, "the others serve on", synced);
    for k in 0..n {
        c.terminate(k);
    }
    // What was written before the failure still verifies.
    let out = audit(
        &["verify", "--cluster", &cluster_file(&c)],
        &[audit_log(&c, 0)],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}
