//! Multi-process tests: real `bftime run` processes from `init-cluster`'s code, on
//! loopback, looked at through the real CLI (`bftime status --json`, `bftime now`).
//! Bounds are generous (Π = 200 ms, tens of seconds to converge) so a loaded 2-core
//! machine cannot make them flake; the figures are printed for the record.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use bftime_node::config::QuarantineAction;
use bftime_node::testing::Behaviour;
use common::{Cluster, honest, stepping};
use serde_json::Value;

const PERIOD_MS: u64 = 1000;
const SYNC_TIMEOUT: Duration = Duration::from_secs(60);
const PI_NS: i64 = 200_000_000;

fn synced(s: &Value) -> bool {
    s["state"] == "synced" && s["serving"] == true
}

fn peers_answered(s: &Value, want: usize) -> bool {
    s["peers"].as_array().is_some_and(|p| {
        p.iter()
            .filter(|r| r["accepted"].as_u64() > Some(0))
            .count()
            >= want
    })
}

fn suspects(s: &Value) -> Vec<u64> {
    s["peers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| !r["suspect"].is_null())
        .map(|r| r["member"].as_u64().unwrap())
        .collect()
}

fn check_skew(c: &Cluster, nodes: &[usize], label: &str) {
    // Several samples, the worst counts.
    let mut worst = (0, 0);
    for _ in 0..5 {
        let (skew, claimed) = c.measured_skew_ns(nodes);
        worst = (worst.0.max(skew), worst.1.max(claimed));
        std::thread::sleep(Duration::from_millis(300));
    }
    eprintln!(
        "{label}: measured max skew {:.3} ms, largest claimed error bound {:.3} ms",
        worst.0 as f64 / 1e6,
        worst.1 as f64 / 1e6
    );
    assert!(worst.0 < PI_NS, "{label}: skew {} ns beyond Π", worst.0);
}

/// `/metrics` of a synced node `k` in an `n`-node cluster: Prometheus text with the
/// names issue #3 lists (prefix `bftime_`, base units, `_total` counters) and values that
/// match what the node is doing.
fn check_metrics(c: &Cluster, k: usize, n: usize) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let addr = c.init.nodes[k].api_listen.parse().unwrap();
    let (code, body) = rt
        .block_on(bftime_node::client::get(addr, "/metrics"))
        .unwrap();
    assert_eq!(code, 200);
    let text = String::from_utf8(body).unwrap();
    let samples: Vec<(&str, f64)> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (name, value) = l.rsplit_once(' ').unwrap();
            (name, value.parse::<f64>().unwrap())
        })
        .collect();
    let value = |name: &str| {
        samples
            .iter()
            .find(|(s, _)| *s == name)
            .map(|(_, v)| *v)
            .unwrap_or_else(|| panic!("no sample {name} in:\n{text}"))
    };
    for (name, _) in &samples {
        assert!(name.starts_with("bftime_"), "{name}");
    }
    for l in text.lines().filter(|l| l.starts_with("# TYPE ")) {
        if l.ends_with(" counter") {
            let family = l.split(' ').nth(2).unwrap();
            assert!(
                samples
                    .iter()
                    .any(|(s, _)| s.starts_with(&format!("{family}_total"))),
                "counter {family} has no _total sample"
            );
        }
    }
    assert_eq!(value("bftime_state{state=\"synced\"}"), 1.0);
    assert_eq!(value("bftime_state{state=\"quarantined\"}"), 0.0);
    assert_eq!(value("bftime_serving"), 1.0);
    assert_eq!(value("bftime_members"), n as f64);
    assert!(value("bftime_round") >= 1.0);
    assert!(value("bftime_readings_accepted_total") > 0.0);
    assert_eq!(value("bftime_quarantines_total"), 0.0);
    let error = value("bftime_error_bound_seconds");
    assert!(error > 0.0 && error < 0.2, "error bound {error} s");
    // The correction applied since the node started: seconds at most (a start-up step
    // from a simulated offset), never the wall clock's distance from the epoch that
    // cluster minus local clock is.
    let applied = value("bftime_offset_seconds");
    assert!(applied.abs() < 60.0, "offset applied {applied} s");
    // Every rejection reason has its series, zero or not, so alerts have one to watch.
    for reason in bftime_protocol::RejectReason::ALL {
        let series = format!(
            "bftime_readings_rejected_total{{reason=\"{}\"}}",
            reason.as_str()
        );
        assert!(samples.iter().any(|(s, _)| *s == series), "no {series}");
    }
    assert!(value("bftime_rate_correction_ratio").abs() < 1e-3);
    for prefix in [
        "bftime_peer_offset_seconds{",
        "bftime_peer_delay_seconds{",
        "bftime_peer_error_seconds{",
    ] {
        let rows = samples
            .iter()
            .filter(|(s, _)| s.starts_with(prefix))
            .count();
        assert_eq!(rows, n - 1, "{prefix} rows");
    }
}

fn all_synced_test(n: usize, host: &str) {
    let mut c = Cluster::with_host(n, PERIOD_MS, host);
    if host == "localhost" {
        let cluster = std::fs::read_to_string(&c.init.cluster_file).unwrap();
        assert!(cluster.contains("/dns4/localhost/tcp/"), "{cluster}");
    }
    c.start_all();
    let all: Vec<usize> = (0..n).collect();
    c.wait_for(&all, SYNC_TIMEOUT, &format!("{n} nodes synced"), synced);
    c.wait_for(
        &all,
        SYNC_TIMEOUT,
        "every node has readings from every peer",
        |s| peers_answered(s, n - 1) && s["peers"].as_array().map(Vec::len) == Some(n - 1),
    );
    for k in 0..n {
        let s = c.status(k).unwrap();
        assert_eq!(s["members"], n);
        assert!(s["quarantine_reason"].is_null());
        assert_eq!(s["member_names"].as_array().unwrap().len(), n);
        // The summary the testnet polls: same state, no rows, no names.
        let b = c.status_brief(k).expect("/status?brief=1 answers");
        assert_eq!(b["state"], s["state"]);
        assert_eq!(b["members"], n);
        assert_eq!(b["peers"].as_array().map(Vec::len), Some(0));
        assert_eq!(b["member_names"].as_array().map(Vec::len), Some(0));
        let (code, now) = c.now(k);
        assert_eq!(code, 0, "now on a synced node exits 0");
        let now = now.unwrap();
        assert!(now["earliest_ns"].as_i64() <= now["cluster_time_ns"].as_i64());
        assert!(now["cluster_time_ns"].as_i64() <= now["latest_ns"].as_i64());
        assert_eq!(now["status"], "synced");
    }
    check_skew(&c, &all, &format!("{n} nodes"));
    check_metrics(&c, 0, n);
    // Human status names every peer.
    let out = std::process::Command::new(common::BIN)
        .args(["status", "--config"])
        .arg(c.config(0))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    for k in 2..=n {
        assert!(text.contains(&format!("node-{k} ")), "{text}");
    }
    // Graceful stop within 2 s, exit 0.
    let (code, secs) = c.terminate(n - 1);
    assert_eq!(code, Some(0), "SIGTERM exits 0");
    assert!(secs < 2.0, "graceful stop took {secs:.2} s");
    c.wait_for(
        &[0],
        Duration::from_secs(10),
        "peers learn that a node left",
        |s| s["peers"][n - 2]["left"].is_string(),
    );
}

/// Members named by DNS (`/dns4/localhost/…`), as the README shows for real clouds.
#[test]
fn four_nodes_sync() {
    all_synced_test(4, "localhost");
}

#[test]
fn seven_nodes_sync() {
    all_synced_test(7, "127.0.0.1");
}

#[test]
fn offset_and_drifting_node_converges() {
    let mut c = Cluster::new(4, PERIOD_MS);
    for k in 0..3 {
        c.testing(k, honest());
    }
    let mut off = honest();
    off.initial_offset_ms = 5000.0;
    off.drift_ppm = 80.0;
    c.testing(3, off);
    c.start_all();
    let all = [0, 1, 2, 3];
    c.wait_for(
        &all,
        SYNC_TIMEOUT,
        "all synced, the 5 s-off node included",
        synced,
    );
    // Hold for a few rounds: nobody quarantines.
    std::thread::sleep(Duration::from_secs(5));
    for k in all {
        let s = c.status(k).unwrap();
        assert!(synced(&s), "node-{} {:?}", k + 1, s["state"]);
        assert_eq!(s["quarantines"], 0);
    }
    check_skew(&c, &all, "4 nodes, one 5 s off with 80 ppm drift");
    let rate = c.status(3).unwrap()["rate_ppm"].as_f64().unwrap();
    eprintln!("drifting node's rate correction: {rate:.1} ppm (its oscillator: +80 ppm)");
}

/// `liars` lie by 1 s; those also in `forgers` do it under broken signatures, which the
/// nodes check in batches after chaining the readings (spec §4.2): never used, counted.
fn liars_test(n: usize, liars: &[usize], forgers: &[usize]) {
    let mut c = Cluster::new(n, PERIOD_MS);
    for k in 0..n {
        let mut t = honest();
        if liars.contains(&k) {
            t.behaviour = if forgers.contains(&k) {
                Behaviour::Forger
            } else {
                Behaviour::Liar
            };
            t.lie_ms = 1000.0;
        }
        c.testing(k, t);
    }
    c.start_all();
    let correct: Vec<usize> = (0..n).filter(|k| !liars.contains(k)).collect();
    c.wait_for(&correct, SYNC_TIMEOUT, "correct nodes synced", synced);
    c.wait_for(
        &correct,
        SYNC_TIMEOUT,
        "every correct node suspects every liar",
        |s| {
            let sus = suspects(s);
            liars.iter().all(|l| sus.contains(&(*l as u64)))
        },
    );
    for &k in &correct {
        let s = c.status(k).unwrap();
        assert!(synced(&s));
        let sus = suspects(&s);
        for x in &sus {
            assert!(
                liars.contains(&(*x as usize)),
                "node-{} suspects correct #{x}",
                k + 1
            );
        }
        assert_eq!(s["quarantines"], 0);
        for row in s["peers"].as_array().unwrap() {
            let member = row["member"].as_u64().unwrap() as usize;
            let forged = row["rejected"]["bad-signature"].as_u64().unwrap_or(0);
            if forgers.contains(&member) {
                assert!(forged > 0, "node-{}: no forged reading counted", k + 1);
            } else {
                assert_eq!(forged, 0, "node-{}: member {member}", k + 1);
            }
        }
    }
    check_skew(
        &c,
        &correct,
        &format!(
            "{n} nodes with {} liars ({} forging)",
            liars.len(),
            forgers.len()
        ),
    );
}

#[test]
fn one_liar_among_four() {
    liars_test(4, &[3], &[]);
}

#[test]
fn two_liars_among_seven() {
    liars_test(7, &[1, 5], &[]);
}

#[test]
fn a_liar_and_a_forger_among_seven() {
    liars_test(7, &[1, 5], &[5]);
}

#[test]
fn clock_step_quarantines_runs_hook_and_exits() {
    // 7 nodes tolerate 2 faults: node-6 steps and stays up (so /now can be checked),
    // node-7 steps and exits on quarantine.
    let mut c = Cluster::new(7, PERIOD_MS);
    for k in 0..5 {
        c.testing(k, honest());
    }
    let dir = c.dir.path().to_path_buf();
    for k in [5, 6] {
        c.testing(k, stepping(15.0));
        let out = dir.join(format!("hook-{}.txt", k + 1));
        c.quarantine_action(
            k,
            QuarantineAction {
                hook: Some(format!(
                    "env | grep '^BFTIME_' | sort > '{}'",
                    out.display()
                )),
                rejoin_hook: Some(format!(
                    "env | grep '^BFTIME_' | sort > '{}'",
                    dir.join(format!("rejoin-{}.txt", k + 1)).display()
                )),
                exit_on_quarantine: k == 6,
            },
        );
    }
    c.start_all();
    let all: Vec<usize> = (0..7).collect();
    c.wait_for(&all, SYNC_TIMEOUT, "all synced before the step", synced);
    c.wait_for(
        &[5],
        Duration::from_secs(60),
        "node-6 quarantined after its step",
        |s| s["state"] == "quarantined",
    );
    let code = c.wait_exit(6, Duration::from_secs(60));
    assert_eq!(code, Some(10), "exit_on_quarantine exits with code 10");

    let (code, now) = c.now(5);
    assert_eq!(code, 3, "`bftime now` exits 3 when not serving");
    let now = now.unwrap();
    assert_eq!(now["status"], "quarantined");
    assert_eq!(now["serving"], false);
    assert!(now["reason"].is_string());
    assert!(
        now["reason_code"].as_str().is_some_and(|c| !c.is_empty()),
        "{now}"
    );
    // The epoch changed with the state; it is a string of 16 hex digits (a JSON double
    // could not tell a random 64-bit number from its successor).
    assert!(
        now["epoch"]
            .as_str()
            .is_some_and(|e| e.len() == 16 && e.bytes().all(|b| b.is_ascii_hexdigit())),
        "{now}"
    );
    let ns = now["cluster_time_ns"].as_i64().unwrap();
    let ms = now["cluster_time_ms"].as_f64().unwrap();
    assert!((ms - ns as f64 / 1e6).abs() < 1e-3, "{now}");
    // The API itself answers 503.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let addr = c.init.nodes[5].api_listen.parse().unwrap();
    let (http, _) = rt.block_on(bftime_node::client::get(addr, "/now")).unwrap();
    assert_eq!(http, 503);

    // Its signed `Leaving` told the others why; once it has served again after its
    // probation (M = 10 healthy rounds), they no longer list it as gone.
    let row_of_node_6 = |s: &Value| {
        s["peers"]
            .as_array()
            .and_then(|rows| rows.iter().find(|r| r["member"] == 5).cloned())
            .unwrap_or(Value::Null)
    };
    c.wait_for(
        &[0, 1, 2, 3, 4],
        Duration::from_secs(10),
        "the others learn why node-6 left",
        |s| {
            row_of_node_6(s)["left"]
                .as_str()
                .is_some_and(|why| why.contains("quarantine") || why.contains("clock"))
        },
    );
    c.wait_for(
        &[5],
        Duration::from_secs(60),
        "node-6 rejoins after its probation",
        synced,
    );
    // Its rejoin hook ran (to restart what the quarantine hook stopped), told which
    // quarantine ended.
    let rejoin = dir.join("rejoin-6.txt");
    let mut text = String::new();
    for _ in 0..50 {
        text = std::fs::read_to_string(&rejoin).unwrap_or_default();
        if !text.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(text.contains("BFTIME_EVENT=rejoined"), "{text}");
    assert!(text.contains("BFTIME_QUARANTINE_CODE="), "{text}");
    assert!(text.contains("BFTIME_NODE=node-6"), "{text}");
    c.wait_for(
        &[0, 1, 2, 3, 4],
        Duration::from_secs(15),
        "the others see node-6 serving again",
        |s| row_of_node_6(s)["left"].is_null(),
    );

    for k in [5, 6] {
        let path = dir.join(format!("hook-{}.txt", k + 1));
        let mut text = String::new();
        for _ in 0..50 {
            text = std::fs::read_to_string(&path).unwrap_or_default();
            if !text.is_empty() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        eprintln!("node-{} hook saw:\n{text}", k + 1);
        assert!(
            text.contains(&format!("BFTIME_NODE=node-{}", k + 1)),
            "{text}"
        );
        assert!(text.contains("BFTIME_QUARANTINE_CODE="), "{text}");
        assert!(text.contains("BFTIME_QUARANTINE_REASON="), "{text}");
        assert!(text.contains("BFTIME_EVENT=quarantined"), "{text}");
    }
    assert!(
        !dir.join("rejoin-7.txt").exists(),
        "node-7 exited and never rejoined"
    );
    // The others stayed synced and never quarantined.
    for k in 0..5 {
        let s = c.status(k).unwrap();
        assert!(synced(&s), "node-{}: {:?}", k + 1, s["state"]);
        assert_eq!(s["quarantines"], 0, "node-{}", k + 1);
    }
    check_skew(&c, &[0, 1, 2, 3, 4], "5 correct nodes after two stepped");
}

#[test]
fn outsider_key_gets_nothing_and_changes_nothing() {
    let mut c = Cluster::new(4, PERIOD_MS);
    c.start_all();
    let all = [0, 1, 2, 3];
    c.wait_for(&all, SYNC_TIMEOUT, "members synced", synced);

    // An outsider: its own key and a cluster file that lists itself plus the members'
    // real addresses, so it dials them and asks for readings.
    let odir = tempfile::tempdir().unwrap();
    let (key_path, key) = bftime_node::init::keygen(odir.path(), "outsider.key").unwrap();
    let mut cluster = c.init.cluster.clone();
    let port = common::free_ports(2);
    let api_port = port + 1;
    cluster.members.push(bftime_node::config::MemberEntry {
        name: "outsider".into(),
        public_key: key.public_key().to_hex(),
        addresses: vec![format!("/ip4/127.0.0.1/tcp/{port}")],
    });
    std::fs::write(
        odir.path().join("cluster.toml"),
        toml::to_string(&cluster).unwrap(),
    )
    .unwrap();
    let node = bftime_node::config::NodeFile {
        key_file: key_path,
        cluster_file: "cluster.toml".into(),
        listen: vec![format!("/ip4/127.0.0.1/tcp/{port}")],
        api_listen: format!("127.0.0.1:{api_port}"),
        allow_remote_api: false,
        audit_log: None,
        audit: Default::default(),
        quarantine: QuarantineAction::default(),
        testing: None,
    };
    let ocfg = odir.path().join("outsider.toml");
    std::fs::write(&ocfg, toml::to_string(&node).unwrap()).unwrap();
    let log = std::fs::File::create(odir.path().join("outsider.log")).unwrap();
    let mut outsider = std::process::Command::new(common::BIN)
        .args(["run", "--config"])
        .arg(&ocfg)
        .stderr(log)
        .spawn()
        .unwrap();

    std::thread::sleep(Duration::from_secs(10));
    let out = std::process::Command::new(common::BIN)
        .args(["status", "--json", "--config"])
        .arg(&ocfg)
        .output()
        .unwrap();
    let _ = outsider.kill();
    let _ = outsider.wait();
    let s: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        s["readings_accepted"], 0,
        "the outsider got no readings: {s}"
    );
    assert_eq!(s["state"], "starting");
    let mut refused = 0;
    for k in all {
        let st = c.status(k).unwrap();
        assert!(synced(&st));
        assert_eq!(st["members"], 4, "members never learn of the outsider");
        refused += st["network"]["connections_refused"].as_u64().unwrap();
        assert_eq!(st["quarantines"], 0);
    }
    eprintln!("members refused {refused} connections from the outsider");
    assert!(refused > 0, "members refused the outsider's connections");
}

/// Started by systemd (`Type=notify`, as in `node/dist/bftime.service`): the node tells
/// the notify socket its state from the start, `READY=1` once (when it serves time),
/// pings the watchdog at half its interval, and says `STOPPING=1` on SIGTERM.
#[test]
fn systemd_hears_status_ready_watchdog_and_stopping() {
    use std::os::unix::net::UnixDatagram;
    let mut c = Cluster::new(4, PERIOD_MS);
    let socket_path = c.dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    for k in 0..3 {
        c.start(k);
    }
    let socket_env = socket_path.to_str().unwrap().to_owned();
    c.start_with_env(
        3,
        &[("NOTIFY_SOCKET", &socket_env), ("WATCHDOG_USEC", "1000000")],
    );
    let mut heard: Vec<String> = Vec::new();
    let mut buf = [0u8; 4096];
    let mut listen = |heard: &mut Vec<String>, for_how_long: Duration| {
        let start = std::time::Instant::now();
        while start.elapsed() < for_how_long {
            if let Ok(len) = socket.recv(&mut buf) {
                heard.push(String::from_utf8_lossy(&buf[..len]).into_owned());
            }
        }
    };
    let start = std::time::Instant::now();
    while !heard.iter().any(|m| m.contains("READY=1")) {
        assert!(
            start.elapsed() < SYNC_TIMEOUT,
            "no READY=1 within {SYNC_TIMEOUT:?}; heard {heard:?}"
        );
        listen(&mut heard, Duration::from_secs(1));
    }
    // Some more of the watchdog (every 0.5 s) and of the state.
    listen(&mut heard, Duration::from_secs(3));
    assert!(synced(&c.status(3).unwrap()));
    let first_status = heard.iter().find(|m| m.contains("STATUS=")).unwrap();
    assert!(first_status.contains("starting"), "{heard:?}");
    let ready: Vec<&String> = heard.iter().filter(|m| m.contains("READY=1")).collect();
    assert_eq!(ready.len(), 1, "READY=1 once: {heard:?}");
    assert!(ready[0].contains("STATUS="), "{ready:?}");
    // Pings in the 3 s after READY=1 alone: at half of WATCHDOG_USEC's 1 s, about six.
    let after_ready = heard
        .iter()
        .skip_while(|m| !m.contains("READY=1"))
        .skip(1)
        .filter(|m| m.contains("WATCHDOG=1"))
        .count();
    assert!(
        after_ready >= 4,
        "{after_ready} watchdog pings in the 3 s after READY=1: {heard:?}"
    );
    let (code, secs) = c.terminate(3);
    assert_eq!(code, Some(0));
    assert!(secs < 2.0, "stop took {secs:.2} s");
    listen(&mut heard, Duration::from_millis(500));
    assert!(heard.iter().any(|m| m.contains("STOPPING=1")), "{heard:?}");
}

/// SIGTERM while the quarantine hook hangs (waiting on a child of its own): the stop
/// still ends within 2 s, the hook and its child are killed, and the log says so.
#[test]
fn sigterm_while_the_quarantine_hook_hangs() {
    let mut c = Cluster::new(4, PERIOD_MS);
    for k in 0..3 {
        c.testing(k, honest());
    }
    let dir = c.dir.path().to_path_buf();
    c.testing(3, stepping(12.0));
    let pid_file = dir.join("hook-child.pid");
    c.quarantine_action(
        3,
        QuarantineAction {
            hook: Some(format!(
                "sleep 120 & echo $! > '{}'; wait",
                pid_file.display()
            )),
            rejoin_hook: None,
            exit_on_quarantine: false,
        },
    );
    c.start_all();
    c.wait_for(
        &[0, 1, 2, 3],
        SYNC_TIMEOUT,
        "all synced before the step",
        synced,
    );
    c.wait_for(
        &[3],
        Duration::from_secs(60),
        "node-4 quarantined after its step",
        |s| s["state"] == "quarantined",
    );
    for _ in 0..50 {
        if std::fs::read_to_string(&pid_file).is_ok_and(|p| !p.trim().is_empty()) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let (code, secs) = c.terminate(3);
    assert_eq!(code, Some(0), "SIGTERM exits 0");
    assert!(
        secs < 2.0,
        "graceful stop with a hung hook took {secs:.2} s"
    );
    let log = c.log(3);
    assert!(
        log.contains("the quarantine hook was still running"),
        "{}",
        common::tail(&log, 20)
    );
    assert!(
        log.contains("bftime node stopped"),
        "{}",
        common::tail(&log, 20)
    );
    // The hook's own child went with it (its whole process group is killed).
    let pid = std::fs::read_to_string(&pid_file).unwrap();
    let alive = |pid: &str| {
        std::fs::read_to_string(format!("/proc/{}/stat", pid.trim()))
            .is_ok_and(|stat| !stat.contains(") Z "))
    };
    let mut waited = 0;
    while alive(&pid) && waited < 20 {
        std::thread::sleep(Duration::from_millis(100));
        waited += 1;
    }
    assert!(!alive(&pid), "the hook's child {} survived", pid.trim());
}

/// The same node started twice on one host (by hand beside its systemd unit, say):
/// libp2p's listeners share a port, so the second copy would take half the cluster's
/// connections. It is refused at its peer port before it writes an audit record.
#[test]
fn a_node_started_twice_is_refused_at_its_port() {
    let mut c = Cluster::new(4, PERIOD_MS);
    c.start(0);
    c.wait_for(&[0], SYNC_TIMEOUT, "the first copy answers", |s| {
        s["state"].is_string()
    });
    let original = std::fs::read_to_string(c.config(0)).unwrap();
    let api_port = common::free_ports(1);
    let copy_cfg = c.dir.path().join("node-1-copy.toml");
    let copy_log = c.dir.path().join("node-1-copy.audit");
    let edited: String = original
        .lines()
        .map(|l| {
            if l.starts_with("api_listen") {
                format!("api_listen = \"127.0.0.1:{api_port}\"")
            } else if l.starts_with("audit_log") {
                "audit_log = \"node-1-copy.audit\"".to_owned()
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&copy_cfg, edited).unwrap();
    let out = std::process::Command::new(common::BIN)
        .args(["run", "--config"])
        .arg(&copy_cfg)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("the port is in use"), "{err}");
    assert!(!copy_log.exists(), "no audit record written");
    assert_eq!(
        c.state(0).as_deref(),
        Some("starting"),
        "the first copy runs on"
    );
}
