//! `bftime-testnet run`: N real `bftime run` processes on loopback, with simulated
//! drifting clocks and Byzantine behaviours from their `[testing]` sections, a
//! ground-truth skew measurement every second, and a report (JSON, Markdown, SVG).
//!
//! The cluster folder is made by the same code as `bftime init-cluster`; only the
//! `[testing]` sections are added, so a testnet node runs exactly what an operator runs.

pub mod audit;
pub mod plot;
pub mod procstat;
pub mod report;
pub mod truth;

use std::collections::BTreeMap;
use std::io::IsTerminal as _;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use bftime_node::client::ApiConnection;
use bftime_node::init::{InitOptions, init_cluster};
use bftime_node::testing::{Behaviour, TestingConfig};
use bftime_node::view::StatusView;
use futures::StreamExt as _;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use self::report::{NodeRecord, RunReport, SamplePoint, Spread, Summary};
use self::truth::Pair;

/// CPU one exchange costs, both ends together, measured on a 2-core EPYC VM with
/// release builds (see README): used to choose a round period the host can carry.
pub const EST_CPU_PER_EXCHANGE_S: f64 = 350e-6;
/// Share of the host's cores the testnet may use for the protocol (the rest is slack
/// for bursts, the harness and the OS).
const CPU_BUDGET_SHARE: f64 = 0.5;

/// Which Byzantine behaviour the faulty nodes get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Faults {
    Mixed,
    One(Behaviour),
}

impl Faults {
    pub fn for_faulty(self, k: usize) -> Behaviour {
        match self {
            Faults::Mixed => {
                // Every behaviour but the leading `None`.
                let byzantine = &Behaviour::ALL[1..];
                byzantine[k % byzantine.len()]
            }
            Faults::One(b) => b,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Faults::Mixed => "mixed",
            Faults::One(b) => b.as_str(),
        }
    }
}

impl std::str::FromStr for Faults {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "mixed" {
            return Ok(Faults::Mixed);
        }
        s.parse::<Behaviour>()
            .map(Faults::One)
            .map_err(|e| format!("{e}, or mixed"))
    }
}

/// Everything `run` needs.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub nodes: usize,
    pub faulty: usize,
    pub faults: Faults,
    pub clock_faults: usize,
    /// `None`: [`default_duration`].
    pub duration: Option<Duration>,
    pub round_period_ms: Option<u64>,
    pub precision_ms: u64,
    pub seed: u64,
    pub out: Option<PathBuf>,
    /// The `bftime` binary; default: next to this one.
    pub bftime: Option<PathBuf>,
    /// First port; 0 = find a free block.
    pub base_port: u16,
    /// Print progress (one line, refreshed).
    pub progress: bool,
}

/// What a node is in this run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Correct,
    /// Honest, but its clock steps or stalls partway through: it must quarantine.
    ClockFault,
    Faulty(Behaviour),
}

impl Role {
    pub fn label(self) -> String {
        match self {
            Role::Correct => "correct".into(),
            Role::ClockFault => "clock-fault".into(),
            Role::Faulty(b) => format!("faulty:{b}"),
        }
    }
}

/// The round period and start-up divisor this host can carry for `n` nodes, and why.
/// A given period is kept; start-up rounds (P / divisor) are only made faster while
/// the host can still carry them.
pub fn choose_period(n: usize, cores: usize, given_ms: Option<u64>) -> (u64, u32, String) {
    let exchanges = (n * n.saturating_sub(1)) as f64;
    let cpu_per_round = exchanges * EST_CPU_PER_EXCHANGE_S;
    let budget = cores as f64 * CPU_BUDGET_SHARE;
    let needed = (cpu_per_round / budget).max(1e-3);
    let period_s = match given_ms {
        Some(ms) => ms as f64 / 1000.0,
        None => needed.ceil().clamp(1.0, 120.0),
    };
    let divisor = ((period_s / needed).floor() as u32).clamp(1, 4);
    let why = format!(
        "{n} nodes × {} peers = {exchanges:.0} exchanges per round × ~{:.0} µs of CPU each ≈ {cpu_per_round:.1} s of CPU per round; \
         {cores} cores at ≤ {:.0}% → round period {period_s} s{}, start-up rounds P/{divisor}",
        n.saturating_sub(1),
        EST_CPU_PER_EXCHANGE_S * 1e6,
        CPU_BUDGET_SHARE * 100.0,
        if given_ms.is_some() {
            " (given)"
        } else {
            " (override with --round-period-ms)"
        },
    );
    ((period_s * 1000.0) as u64, divisor, why)
}

/// Long enough to form the mesh (a few rounds at n = 250 on 2 cores), converge, sync
/// (4 rounds) and hold for about ten rounds.
pub fn default_duration(period_ms: u64) -> Duration {
    let p = period_ms as f64 / 1000.0;
    Duration::from_secs_f64((20.0 * p + 30.0).max(120.0).ceil())
}

/// When clock faults strike: late enough that the cluster has converged.
const CLOCK_FAULT_AT: f64 = 0.65;

fn free_port_block(count: u16, from: u16) -> anyhow::Result<u16> {
    let mut base = from;
    while u32::from(base) + u32::from(count) < 32_000 {
        if (base..base + count).all(|p| TcpListener::bind(("127.0.0.1", p)).is_ok()) {
            return Ok(base);
        }
        base += count;
    }
    bail!("no block of {count} free loopback ports below 32000; pass --base-port")
}

/// UTC `YYYYMMDD-HHMMSS` without a date crate.
fn timestamp() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}{m:02}{d:02}-{:02}{:02}{:02}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

fn bftime_binary(given: Option<&Path>) -> anyhow::Result<PathBuf> {
    let path = match given {
        Some(p) => p.to_path_buf(),
        None => std::env::current_exe()
            .context("cannot find this binary's path")?
            .with_file_name("bftime"),
    };
    if !path.exists() {
        bail!(
            "the node binary {} does not exist; build it with `cargo build --release -p bftime-node` (or pass --bftime PATH)",
            path.display()
        );
    }
    Ok(path)
}

/// The child processes; killed on drop so an error never leaves orphans.
struct Fleet {
    children: Vec<Option<Child>>,
    exits: Vec<Option<i32>>,
    crashed_at: Vec<Option<f64>>,
}

impl Fleet {
    fn pid(&self, k: usize) -> Option<u32> {
        self.children[k].as_ref().map(Child::id)
    }

    /// One `/proc` figure of every node still running (`None` for the others).
    fn per_node<T>(&self, read: impl Fn(u32) -> Option<T>) -> Vec<Option<T>> {
        (0..self.children.len())
            .map(|k| self.pid(k).and_then(&read))
            .collect()
    }

    /// The sum of one `/proc` figure over the nodes still running.
    fn total<T: std::iter::Sum>(&self, read: impl Fn(u32) -> Option<T>) -> T {
        self.per_node(read).into_iter().flatten().sum()
    }

    /// Notes processes that ended on their own.
    fn reap(&mut self, t: f64) -> Vec<usize> {
        let mut ended = Vec::new();
        for (k, c) in self.children.iter_mut().enumerate() {
            if let Some(child) = c
                && let Ok(Some(st)) = child.try_wait()
            {
                self.exits[k] = Some(st.code().unwrap_or(-1));
                self.crashed_at[k] = Some(t);
                *c = None;
                ended.push(k);
            }
        }
        ended
    }

    /// SIGTERM to every child, then wait (up to `grace`), then SIGKILL the rest.
    fn stop(&mut self, grace: Duration) {
        for child in self.children.iter().flatten() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        let start = Instant::now();
        loop {
            let mut left = 0;
            for (k, c) in self.children.iter_mut().enumerate() {
                if let Some(child) = c {
                    match child.try_wait() {
                        Ok(Some(st)) => {
                            self.exits[k] = Some(st.code().unwrap_or(-1));
                            *c = None;
                        }
                        _ => left += 1,
                    }
                }
            }
            if left == 0 || start.elapsed() > grace {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        for (k, c) in self.children.iter_mut().enumerate() {
            if let Some(child) = c {
                let _ = child.kill();
                let _ = child.wait();
                self.exits[k] = Some(-9);
                *c = None;
            }
        }
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for child in self.children.iter_mut().flatten() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Latest and previous sample of one node.
#[derive(Debug, Clone, Default)]
struct NodeTrack {
    latest: Option<Pair>,
    previous: Option<Pair>,
    state: String,
    serving: bool,
    connected: usize,
    quarantines: u64,
    ever_quarantined_at: Option<f64>,
    last_status: Option<StatusView>,
}

/// Sums a counter over every node's latest status.
fn sum_status(tracks: &[NodeTrack], counter: impl Fn(&StatusView) -> u64) -> u64 {
    tracks
        .iter()
        .filter_map(|t| t.last_status.as_ref())
        .map(counter)
        .sum()
}

async fn fetch(conn: &mut ApiConnection, path: &str) -> Option<StatusView> {
    let (code, body) = tokio::time::timeout(Duration::from_secs(3), conn.get(path))
        .await
        .ok()?
        .ok()?;
    if code != 200 {
        return None;
    }
    serde_json::from_slice(&body).ok()
}

/// Runs a local testnet; returns the report (already written to `report.*` in the
/// output folder).
pub fn run(o: &RunOptions) -> anyhow::Result<RunReport> {
    if o.nodes < 1 {
        bail!("--nodes must be at least 1");
    }
    if o.faulty + o.clock_faults > o.nodes {
        bail!(
            "--faulty {} + --clock-faults {} exceed --nodes {}",
            o.faulty,
            o.clock_faults,
            o.nodes
        );
    }
    let bin = bftime_binary(o.bftime.as_deref())?;
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
    let (period_ms, divisor, why) = choose_period(o.nodes, cores, o.round_period_ms);
    let duration = o.duration.unwrap_or_else(|| default_duration(period_ms));
    eprintln!("{why}; running for {} s", duration.as_secs());
    let out = o
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("target/testnet").join(timestamp()));
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    let cluster_dir = out.join("cluster");
    let logs = out.join("logs");
    std::fs::create_dir_all(&logs)?;
    let n16 = u16::try_from(o.nodes).context("too many nodes")?;
    let base = if o.base_port == 0 {
        free_port_block(2 * n16, 12_000)?
    } else {
        o.base_port
    };
    let mut init = init_cluster(&InitOptions {
        nodes: o.nodes,
        out: cluster_dir.clone(),
        host: "127.0.0.1".into(),
        base_port: base,
        api_base_port: None,
        cluster_id: format!("testnet-{}", o.seed),
        round_period_ms: period_ms,
        precision_ms: o.precision_ms,
        startup_round_divisor: divisor,
    })?;

    // Roles: the last `faulty` nodes are Byzantine, the `clock_faults` before them
    // honest with a bad clock, the rest correct.
    let n = o.nodes;
    let byz_start = n - o.faulty;
    let clock_start = byz_start - o.clock_faults;
    let mut rng = StdRng::seed_from_u64(o.seed);
    let fault_at_s = duration.as_secs_f64() * CLOCK_FAULT_AT;
    let mut roles = Vec::with_capacity(n);
    for k in 0..n {
        let mut t = TestingConfig::enabled();
        t.initial_offset_ms = rng.random_range(-10_000.0..=10_000.0);
        t.drift_ppm = rng.random_range(-100.0..=100.0);
        t.seed = o.seed.wrapping_mul(1_000_003).wrapping_add(k as u64);
        let role = if k >= byz_start {
            let b = o.faults.for_faulty(k - byz_start);
            t.behaviour = b;
            if b == Behaviour::Slow {
                t.slow_max_ms = (period_ms as f64 * 0.8).min(5_000.0);
            }
            Role::Faulty(b)
        } else if k >= clock_start {
            if (k - clock_start).is_multiple_of(2) {
                t.step_after_s = Some(fault_at_s);
                t.step_ms = 2_000.0;
            } else {
                t.stall_after_s = Some(fault_at_s);
                t.stall_ms = 2_000.0;
            }
            Role::ClockFault
        } else {
            Role::Correct
        };
        init.set_testing(k, t)?;
        roles.push(role);
    }
    let correct: Vec<usize> = (0..n).filter(|&k| roles[k] == Role::Correct).collect();
    let addrs: Vec<SocketAddr> = init
        .nodes
        .iter()
        .map(|nf| nf.api_listen.parse())
        .collect::<Result<_, _>>()
        .context("generated api_listen is not an address")?;

    eprintln!(
        "starting {n} nodes ({} correct, {} with clock faults at {fault_at_s:.0} s, {} faulty: {}) from {}; logs in {}",
        correct.len(),
        o.clock_faults,
        o.faulty,
        o.faults.as_str(),
        cluster_dir.display(),
        logs.display()
    );
    let started = Instant::now();
    let mut fleet = Fleet {
        children: Vec::with_capacity(n),
        exits: vec![None; n],
        crashed_at: vec![None; n],
    };
    for k in 0..n {
        let log = std::fs::File::create(logs.join(format!("node-{}.log", k + 1)))?;
        let child = Command::new(&bin)
            .args(["run", "--config"])
            .arg(&init.node_files[k])
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start {}", bin.display()))?;
        fleet.children.push(Some(child));
    }

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut tracks = vec![NodeTrack::default(); n];
    let mut series: Vec<SamplePoint> = Vec::new();
    let mut events: Vec<(f64, String)> = Vec::new();
    let mut mesh_formed: Option<f64> = None;
    let mut interrupted = false;
    let full_mesh = n * (n - 1);
    let bound_ns = o.precision_ms as i64 * 1_000_000;
    let tty = std::io::stderr().is_terminal();
    // (CPU seconds of all nodes, exchanges answered) when the cluster first converged:
    // the steady-state cost per exchange leaves out mesh formation and start-up.
    let mut at_convergence: Option<(f64, u64, u64)> = None;
    let mut last_line = Instant::now();

    let mut conns: Vec<Option<ApiConnection>> = (0..n).map(|_| None).collect();
    rt.block_on(async {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let ctrl_c = tokio::signal::ctrl_c();
        tokio::pin!(ctrl_c);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = &mut ctrl_c => {
                    interrupted = true;
                    break;
                }
            }
            let t = started.elapsed().as_secs_f64();
            if t > duration.as_secs_f64() {
                break;
            }
            for k in fleet.reap(t) {
                let msg = format!(
                    "node-{} ({}) exited on its own with code {:?}",
                    k + 1,
                    roles[k].label(),
                    fleet.exits[k]
                );
                eprintln!("\n{msg}");
                events.push((t, format!("node-{} exited", k + 1)));
            }
            let live: Vec<usize> = (0..n).filter(|&k| fleet.children[k].is_some()).collect();
            // Each node's connection goes out with its request and comes back with the
            // answer (kept alive: see `ApiConnection`).
            let outgoing: Vec<(usize, ApiConnection)> = live
                .into_iter()
                .map(|k| {
                    (
                        k,
                        conns[k]
                            .take()
                            .unwrap_or_else(|| ApiConnection::new(addrs[k])),
                    )
                })
                .collect();
            let answered: Vec<(usize, ApiConnection, Option<StatusView>)> =
                futures::stream::iter(outgoing)
                    .map(|(k, mut conn)| async move {
                        let v = fetch(&mut conn, "/status?brief=1").await;
                        (k, conn, v)
                    })
                    .buffer_unordered(32)
                    .collect()
                    .await;
            let sweep_t = started.elapsed().as_secs_f64();
            for (k, conn, v) in answered {
                conns[k] = Some(conn);
                let Some(v) = v else { continue };
                let tr = &mut tracks[k];
                if let Some(host) = v.host_monotonic_ns {
                    tr.previous = tr.latest;
                    tr.latest = Some(Pair {
                        host_ns: host,
                        cluster_ns: v.snapshot.cluster_time_ns,
                    });
                }
                tr.state = v.snapshot.state.as_str().to_owned();
                tr.serving = v.snapshot.serving;
                tr.connected = v.connected_peers;
                if v.quarantines > tr.quarantines && tr.ever_quarantined_at.is_none() {
                    tr.ever_quarantined_at = Some(sweep_t);
                    events.push((
                        sweep_t,
                        format!("node-{} ({}) quarantined", k + 1, roles[k].label()),
                    ));
                }
                tr.quarantines = v.quarantines;
                tr.last_status = Some(v);
            }
            // Ground truth at the latest host instant sampled.
            let serving: Vec<(Pair, Option<Pair>)> = correct
                .iter()
                .filter(|&&k| tracks[k].serving)
                .filter_map(|&k| tracks[k].latest.map(|p| (p, tracks[k].previous)))
                .collect();
            let at = serving.iter().map(|(p, _)| p.host_ns).max().unwrap_or(0);
            let skew = truth::skew_at(&serving, at);
            let count = |s: &str| tracks.iter().filter(|t| t.state == s).count();
            let connected: usize = tracks.iter().map(|t| t.connected).sum();
            if mesh_formed.is_none() && connected >= full_mesh {
                mesh_formed = Some(sweep_t);
            }
            let point = SamplePoint {
                t_s: sweep_t,
                skew_ns: skew,
                correct_serving: serving.len(),
                synced: count("synced"),
                quarantined: count("quarantined"),
                starting: count("starting"),
                connections: connected,
            };
            let round = tracks
                .iter()
                .filter_map(|t| t.last_status.as_ref().map(|s| s.snapshot.round))
                .max()
                .unwrap_or(0);
            if o.progress && (tty || last_line.elapsed() >= Duration::from_secs(10)) {
                let line = format!(
                    "{:>5.0} s  mesh {:>5.1}%  round {}  synced {}/{}  quarantined {}  skew {}",
                    sweep_t,
                    100.0 * connected as f64 / full_mesh.max(1) as f64,
                    round % 1_000_000,
                    point.synced,
                    n,
                    point.quarantined,
                    skew.map(report::fmt_ns).unwrap_or_else(|| "-".into()),
                );
                if tty {
                    eprint!("\r{line:<100}");
                } else {
                    eprintln!("{line}");
                }
                last_line = Instant::now();
            }
            if at_convergence.is_none()
                && point.correct_serving == correct.len()
                && skew.is_some_and(|s| s <= bound_ns)
            {
                let cpu = fleet.total(procstat::cpu_seconds);
                let answered = sum_status(&tracks, |s| s.network.requests_answered);
                let wakeups = fleet.total(procstat::voluntary_switches);
                at_convergence = Some((cpu, answered, wakeups));
            }
            series.push(point);
        }
        if tty && o.progress {
            eprintln!();
        }
        // Final full status of every node (suspects, counters).
        let live: Vec<usize> = (0..n).filter(|&k| fleet.children[k].is_some()).collect();
        let results: Vec<(usize, Option<StatusView>)> = futures::stream::iter(live)
            .map(|k| {
                let mut conn = conns[k]
                    .take()
                    .unwrap_or_else(|| ApiConnection::new(addrs[k]));
                async move { (k, fetch(&mut conn, "/status").await) }
            })
            .buffer_unordered(16)
            .collect()
            .await;
        for (k, v) in results {
            if let Some(v) = v {
                tracks[k].quarantines = tracks[k].quarantines.max(v.quarantines);
                tracks[k].last_status = Some(v);
            }
        }
    });

    let elapsed_s = started.elapsed().as_secs_f64();
    let cpu = fleet.per_node(procstat::cpu_seconds);
    let rss = fleet.per_node(procstat::max_rss_bytes);
    let wakeups = fleet.total(procstat::voluntary_switches);
    let crashed: Vec<usize> = (0..n).filter(|&k| fleet.crashed_at[k].is_some()).collect();
    fleet.stop(Duration::from_secs(5));
    let unclean: Vec<usize> = (0..n)
        .filter(|&k| fleet.crashed_at[k].is_none() && fleet.exits[k] != Some(0))
        .collect();

    // Suspicion: a faulty node counts as caught when at least half the correct nodes
    // that answered list it as a suspect.
    let mut suspected_by: BTreeMap<usize, usize> = BTreeMap::new();
    let mut reporters = 0;
    for &k in &correct {
        if let Some(v) = &tracks[k].last_status {
            reporters += 1;
            for p in &v.snapshot.peers {
                if p.suspect.is_some() {
                    *suspected_by.entry(p.member.index()).or_default() += 1;
                }
            }
        }
    }
    let faulty_nodes: Vec<usize> = (byz_start..n).collect();
    let faulty_suspected = faulty_nodes
        .iter()
        .filter(|k| suspected_by.get(k).copied().unwrap_or(0) * 2 >= reporters.max(1))
        .count();
    let correct_suspected = (0..byz_start)
        .filter(|k| suspected_by.get(k).copied().unwrap_or(0) * 2 >= reporters.max(1))
        .count();

    let converged = series
        .iter()
        .find(|p| p.correct_serving == correct.len() && p.skew_ns.is_some_and(|s| s <= bound_ns))
        .map(|p| p.t_s);
    let after: Vec<i64> = series
        .iter()
        .filter(|p| converged.is_some_and(|c| p.t_s >= c))
        .filter_map(|p| p.skew_ns)
        .collect();
    let max_skew = after.iter().copied().max();
    let p50_skew = truth::quantile(&after, 0.5);
    let false_q: Vec<usize> = correct
        .iter()
        .copied()
        .filter(|&k| tracks[k].quarantines > 0 || tracks[k].state == "quarantined")
        .collect();
    let clock_fault_nodes: Vec<usize> = (clock_start..byz_start).collect();
    let observed = clock_fault_nodes
        .iter()
        .filter(|&&k| tracks[k].quarantines > 0 || tracks[k].state == "quarantined")
        .count();

    let total_cpu: f64 = cpu.iter().flatten().sum();
    let answered = sum_status(&tracks, |s| s.network.requests_answered);
    let accepted = sum_status(&tracks, |s| s.snapshot.readings_accepted);
    let bytes = sum_status(&tracks, |s| s.network.frame_bytes_sent);
    let rounds = elapsed_s / (period_ms as f64 / 1000.0);
    // From convergence to the end: exchanges answered, CPU seconds and wake-ups.
    let steady = at_convergence.and_then(|(cpu0, ans0, woken0)| {
        let exchanges = answered.saturating_sub(ans0);
        (exchanges > 0).then(|| {
            (
                exchanges as f64,
                total_cpu - cpu0,
                wakeups.saturating_sub(woken0) as f64,
            )
        })
    });
    let summary = Summary {
        max_skew_ns: max_skew,
        p50_skew_ns: p50_skew,
        converged_after_s: converged,
        mesh_formed_after_s: mesh_formed,
        false_quarantines: false_q.len(),
        expected_quarantines: clock_fault_nodes.len(),
        observed_quarantines: observed,
        faulty_suspected,
        correct_suspected,
        crashed: crashed.len(),
        unclean_exits: unclean.len(),
        cpu_s_per_node: Spread::of(&cpu.iter().flatten().copied().collect::<Vec<_>>()),
        max_rss_bytes_per_node: Spread::of(
            &rss.iter().flatten().map(|&b| b as f64).collect::<Vec<_>>(),
        ),
        exchanges_answered: answered,
        readings_accepted: accepted,
        exchanges_per_node_per_round: answered as f64 / n as f64 / rounds.max(1e-9),
        frame_bytes_per_node_per_round: bytes as f64 / n as f64 / rounds.max(1e-9),
        cpu_per_exchange_us: (answered > 0).then(|| total_cpu / answered as f64 * 1e6),
        cpu_per_exchange_steady_us: steady.map(|(exchanges, cpu_s, _)| cpu_s / exchanges * 1e6),
        wakeups_per_exchange_steady: steady.map(|(exchanges, _, woken)| woken / exchanges),
        samples: series.len(),
        elapsed_s,
    };

    let mut failures = Vec::new();
    if interrupted {
        failures.push("interrupted (Ctrl-C)".to_owned());
    }
    match (converged, max_skew) {
        (None, _) => failures.push("the correct nodes never converged within Π".to_owned()),
        (Some(_), Some(m)) if m > bound_ns => failures.push(format!(
            "after convergence the true skew reached {} > Π = {}",
            report::fmt_ns(m),
            report::fmt_ns(bound_ns)
        )),
        _ => {}
    }
    if converged.is_some() {
        let gaps = series
            .iter()
            .filter(|p| converged.is_some_and(|c| p.t_s >= c) && p.correct_serving < correct.len())
            .count();
        if gaps > 0 {
            failures.push(format!(
                "{gaps} samples after convergence had correct nodes not serving"
            ));
        }
    }
    if !false_q.is_empty() {
        let names: Vec<String> = false_q.iter().map(|k| format!("node-{}", k + 1)).collect();
        failures.push(format!("false quarantines: {}", names.join(", ")));
    }
    if observed < clock_fault_nodes.len() {
        failures.push(format!(
            "only {observed} of {} clock-fault nodes quarantined",
            clock_fault_nodes.len()
        ));
    }
    if !crashed.is_empty() {
        let names: Vec<String> = crashed
            .iter()
            .map(|k| format!("node-{} (code {:?})", k + 1, fleet.exits[*k]))
            .collect();
        failures.push(format!("processes ended early: {}", names.join(", ")));
    }
    if !unclean.is_empty() {
        let names: Vec<String> = unclean
            .iter()
            .map(|k| format!("node-{} (code {:?})", k + 1, fleet.exits[*k]))
            .collect();
        failures.push(format!("unclean shutdown: {}", names.join(", ")));
    }

    eprintln!("auditing: verifying {n} audit logs and searching them for proofs of misbehaviour…");
    let audit_logs: Vec<std::path::PathBuf> = (0..n)
        .map(|k| cluster_dir.join(format!("node-{}.audit", k + 1)))
        .collect();
    let honest: Vec<bool> = roles
        .iter()
        .map(|r| !matches!(r, Role::Faulty(_)))
        .collect();
    let audit = audit::audit_run(&init.cluster_file, &audit_logs, &honest);
    eprintln!(
        "audit: {} of {n} logs verify ({} records, {:.0} bytes per node per round) in {:.1} s; {} proof(s) in {:.1} s",
        audit.logs_verified,
        audit.records,
        audit.bytes_per_node_per_round,
        audit.verify_s,
        audit.proofs.len(),
        audit.evidence_s
    );
    if !audit.logs_bad.is_empty() {
        failures.push(format!(
            "audit logs that do not verify: {}",
            audit.logs_bad.join("; ")
        ));
    }
    if !audit.correct_accused.is_empty() {
        failures.push(format!(
            "proofs of misbehaviour against correct nodes: {}",
            audit.correct_accused.join(", ")
        ));
    }

    let nodes: Vec<NodeRecord> = (0..n)
        .map(|k| NodeRecord {
            name: format!("node-{}", k + 1),
            role: roles[k].label(),
            cpu_s: cpu[k],
            max_rss_bytes: rss[k],
            exit_code: fleet.exits[k],
            ended_early_at_s: fleet.crashed_at[k],
            quarantines: tracks[k].quarantines,
            first_quarantine_at_s: tracks[k].ever_quarantined_at,
            final_state: tracks[k].state.clone(),
            suspected_by: suspected_by.get(&k).copied().unwrap_or(0),
        })
        .collect();
    let command = format!(
        "bftime-testnet run --nodes {} --faulty {} --faults {} --clock-faults {} --duration {}s --round-period-ms {} --seed {}",
        o.nodes,
        o.faulty,
        o.faults.as_str(),
        o.clock_faults,
        duration.as_secs(),
        period_ms,
        o.seed
    );
    let report = RunReport {
        command,
        nodes: n,
        faulty: o.faulty,
        faults: o.faults.as_str().to_owned(),
        clock_faults: o.clock_faults,
        duration_s: duration.as_secs_f64(),
        round_period_ms: period_ms,
        round_period_reason: why,
        precision_ns: bound_ns,
        seed: o.seed,
        host_cores: cores,
        summary,
        passed: failures.is_empty(),
        failures,
        events,
        series,
        per_node: nodes,
        audit,
    };
    report.write(&out)?;
    eprintln!("report: {}", out.join("report.md").display());
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mixed_spreads_every_byzantine_behaviour_and_never_none() {
        let n = Behaviour::ALL.len() - 1;
        let spread: Vec<Behaviour> = (0..n).map(|k| Faults::Mixed.for_faulty(k)).collect();
        assert!(!spread.contains(&Behaviour::None));
        for b in Behaviour::ALL.iter().filter(|b| **b != Behaviour::None) {
            assert!(spread.contains(b), "{b}");
        }
        assert_eq!(Faults::Mixed.for_faulty(n), Faults::Mixed.for_faulty(0));
    }
}
