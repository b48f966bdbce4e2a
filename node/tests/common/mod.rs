//! Helpers for the multi-process tests: a local cluster made by `init-cluster`'s code,
//! real `bftime run` processes on loopback, and the CLI to look at them.

#![allow(dead_code, clippy::unwrap_used)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

use bftime_node::config::QuarantineAction;
use bftime_node::init::{InitOptions, InitResult, init_cluster};
use bftime_node::testing::TestingConfig;
use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_bftime");

static NEXT_BASE: AtomicU16 = AtomicU16::new(0);

/// A block of `count` free loopback ports (peer ports, then API ports).
pub fn free_ports(count: u16) -> u16 {
    // Below Linux's ephemeral range (32768+), so outgoing connections of other tests
    // cannot take a port between this check and the node's bind.
    let start = 10_000 + (std::process::id() % 100) as u16 * 200;
    loop {
        let base = start + NEXT_BASE.fetch_add(count, Ordering::SeqCst);
        assert!(base + count < 32_000, "no free port block found");
        if (base..base + count).all(|p| TcpListener::bind(("127.0.0.1", p)).is_ok()) {
            return base;
        }
    }
}

pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub init: InitResult,
    pub children: Vec<Option<Child>>,
}

impl Cluster {
    /// `init-cluster` for `n` nodes with round period `period_ms`.
    pub fn new(n: usize, period_ms: u64) -> Cluster {
        Cluster::with_host(n, period_ms, "127.0.0.1")
    }

    /// As [`Cluster::new`], the members' addresses naming `host` (`localhost` gives
    /// `/dns4/localhost/…` member addresses, resolved at each dial).
    pub fn with_host(n: usize, period_ms: u64, host: &str) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let base = free_ports(2 * n as u16);
        let init = init_cluster(&InitOptions {
            nodes: n,
            out: dir.path().to_path_buf(),
            host: host.into(),
            base_port: base,
            api_base_port: None,
            cluster_id: "test".into(),
            round_period_ms: period_ms,
            precision_ms: 200,
            startup_round_divisor: 4,
        })
        .unwrap();
        Cluster {
            dir,
            init,
            children: (0..n).map(|_| None).collect(),
        }
    }

    pub fn n(&self) -> usize {
        self.init.node_files.len()
    }

    /// Node `k` (0-based) gets a `[testing]` section.
    pub fn testing(&mut self, k: usize, t: TestingConfig) {
        self.init.set_testing(k, t).unwrap();
    }

    pub fn quarantine_action(&mut self, k: usize, q: QuarantineAction) {
        self.init.set_quarantine(k, q).unwrap();
    }

    pub fn config(&self, k: usize) -> &Path {
        &self.init.node_files[k]
    }

    pub fn log_path(&self, k: usize) -> PathBuf {
        self.dir.path().join(format!("node-{}.log", k + 1))
    }

    pub fn start(&mut self, k: usize) {
        self.start_with_env(k, &[]);
    }

    /// As [`Cluster::start`], with these extra environment variables.
    pub fn start_with_env(&mut self, k: usize, env: &[(&str, &str)]) {
        let log = std::fs::File::create(self.log_path(k)).unwrap();
        let child = Command::new(BIN)
            .args(["run", "--config"])
            .arg(self.config(k))
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.children[k] = Some(child);
    }

    pub fn start_all(&mut self) {
        for k in 0..self.n() {
            self.start(k);
        }
    }

    pub fn log(&self, k: usize) -> String {
        std::fs::read_to_string(self.log_path(k)).unwrap_or_default()
    }

    /// `bftime status --json --config node-k.toml`, or None if the node does not answer.
    pub fn status(&self, k: usize) -> Option<Value> {
        let out = Command::new(BIN)
            .args(["status", "--json", "--config"])
            .arg(self.config(k))
            .output()
            .unwrap();
        if !out.status.success() {
            return None;
        }
        serde_json::from_slice(&out.stdout).ok()
    }

    /// `GET /status?brief=1` on node k's API (the address from its config), or None.
    pub fn status_brief(&self, k: usize) -> Option<Value> {
        let api = bftime_node::config::load(self.config(k)).ok()?.api_listen;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .ok()?;
        let (code, body) = rt
            .block_on(bftime_node::client::get(api, "/status?brief=1"))
            .ok()?;
        (code == 200).then(|| serde_json::from_slice(&body).ok())?
    }

    /// `bftime now --json`: (exit code, JSON body).
    pub fn now(&self, k: usize) -> (i32, Option<Value>) {
        let out = Command::new(BIN)
            .args(["now", "--json", "--config"])
            .arg(self.config(k))
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            serde_json::from_slice(&out.stdout).ok(),
        )
    }

    pub fn state(&self, k: usize) -> Option<String> {
        self.status(k)
            .and_then(|s| s["state"].as_str().map(str::to_owned))
    }

    /// Waits until `cond` holds for every node in `nodes`; panics with the logs if not.
    pub fn wait_for(
        &self,
        nodes: &[usize],
        timeout: Duration,
        what: &str,
        cond: impl Fn(&Value) -> bool,
    ) {
        let start = Instant::now();
        loop {
            let ok = nodes
                .iter()
                .all(|&k| self.status(k).is_some_and(|s| cond(&s)));
            if ok {
                eprintln!("{what}: after {:.1} s", start.elapsed().as_secs_f64());
                return;
            }
            if start.elapsed() > timeout {
                for &k in nodes {
                    eprintln!(
                        "--- node-{} status: {:?}",
                        k + 1,
                        self.status(k).map(|s| s["state"].clone())
                    );
                    eprintln!("--- node-{} log (tail):\n{}", k + 1, tail(&self.log(k), 30));
                }
                panic!("timed out after {timeout:?} waiting for: {what}");
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// Waits for node `k`'s process to exit; returns its exit code.
    pub fn wait_exit(&mut self, k: usize, timeout: Duration) -> Option<i32> {
        let start = Instant::now();
        let child = self.children[k].as_mut()?;
        loop {
            if let Ok(Some(st)) = child.try_wait() {
                return st.code();
            }
            if start.elapsed() > timeout {
                return None;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Sends SIGTERM to node `k` and returns (exit code, seconds it took).
    pub fn terminate(&mut self, k: usize) -> (Option<i32>, f64) {
        let Some(child) = self.children[k].as_mut() else {
            return (None, 0.0);
        };
        let start = Instant::now();
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let code = self.wait_exit(k, Duration::from_secs(10));
        (code, start.elapsed().as_secs_f64())
    }

    /// True max pairwise skew among `nodes`, and the largest error bound they claim.
    /// All processes share the host clock (design §8): a node's status pairs its cluster
    /// time with the host `CLOCK_MONOTONIC_RAW` it was read at (`local_time_ns` for a
    /// real clock, `host_monotonic_ns` in testing mode), so cluster − host differences
    /// between nodes are their true skew.
    pub fn measured_skew_ns(&self, nodes: &[usize]) -> (i64, i64) {
        let mut diffs = Vec::new();
        let mut claimed = 0;
        for &k in nodes {
            let v = self.status(k).unwrap();
            let host = if v["testing"].as_bool() == Some(true) {
                v["host_monotonic_ns"].as_i64().unwrap()
            } else {
                v["local_time_ns"].as_i64().unwrap()
            };
            diffs.push(v["cluster_time_ns"].as_i64().unwrap() - host);
            claimed = claimed.max(v["error_ns"].as_i64().unwrap_or(i64::MAX));
        }
        let skew = diffs.iter().max().unwrap() - diffs.iter().min().unwrap();
        (skew, claimed)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for c in self.children.iter_mut().flatten() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub fn tail(s: &str, lines: usize) -> String {
    let v: Vec<&str> = s.lines().collect();
    v[v.len().saturating_sub(lines)..].join("\n")
}

/// A testing section with a perfect honest clock (so the node reports host time).
pub fn honest() -> TestingConfig {
    TestingConfig::enabled()
}

/// An honest node's testing section whose clock steps by 2 s `after_s` seconds in (a
/// hard violation once it serves: it must quarantine).
pub fn stepping(after_s: f64) -> TestingConfig {
    let mut t = honest();
    t.step_after_s = Some(after_s);
    t.step_ms = 2000.0;
    t
}
