//! `bftime`: the Byzantine-fault-tolerant clock agreement node.

use std::io::IsTerminal as _;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

/// `println!` that does not panic when stdout is closed (`bftime now | head -1`, a
/// script that stopped reading): what was not read is lost, the exit code still says
/// what happened.
macro_rules! out {
    () => {{
        let _ = writeln!(std::io::stdout().lock());
    }};
    ($($arg:tt)*) => {{
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}

use anyhow::Context as _;
use bftime_node::view::{NowView, StatusView};
use bftime_node::{client, config, driver, exit, init};
use bftime_protocol::Nanos;
use clap::{Parser, Subcommand, ValueEnum};

const ABOUT: &str = "Byzantine-fault-tolerant clock agreement: every member's clock agrees with \
every other's within a bound, even when up to f < n/3 members lie.";

const LONG_ABOUT: &str = "\
Byzantine-fault-tolerant clock agreement: every member's clock agrees with every other's \
within a bound Π (default 200 ms), even when up to f < n/3 members lie.

Each node takes signed clock readings from every member each round, computes the \
Welch–Lynch fault-tolerant midpoint and slews its cluster clock towards it. A node that \
cannot stay within the bound quarantines itself: it stops serving time, tells its peers, \
runs your hook and (optionally) exits.

Getting started (a local 4-node cluster):
  bftime init-cluster --nodes 4 --out ./cluster
  bftime run --config ./cluster/node-1.toml     # one terminal per node, 1..4
  bftime status --config ./cluster/node-1.toml
  bftime now --config ./cluster/node-1.toml

On real machines: run `bftime keygen --out /etc/bftime` on every VM, collect the printed \
public keys into one cluster.toml (see the README), copy it everywhere, write each node.toml.

After an incident: every node's audit log (audit_log in node.toml) is signed and \
hash-chained. `bftime audit verify LOG --cluster cluster.toml` checks one, `bftime audit \
show` prints it, `bftime audit evidence` turns several into proofs of misbehaviour that \
`bftime audit check-proof` verifies with nothing but the public keys.

Exit codes: 0 ok · 1 runtime failure · 2 bad usage · 3 `now`: node not serving time · \
9 `audit evidence`: misbehaviour proven · 10 quarantined with exit_on_quarantine · \
65 `audit`: damaged log or invalid proof · 69 node API unreachable · 78 configuration error.";

#[derive(Debug, Parser)]
#[command(name = "bftime", version, about = ABOUT, long_about = LONG_ABOUT)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Human,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Write a new node key (mode 0600) and print its public key and PeerId.
    Keygen {
        /// Folder to write `node.key` into.
        #[arg(long)]
        out: PathBuf,
        /// File name of the key inside --out.
        #[arg(long, default_value = "node.key")]
        name: String,
        /// Print JSON: {"key_file", "public_key", "peer_id"}.
        #[arg(long)]
        json: bool,
    },
    /// Generate keys, cluster.toml and node-1.toml … node-N.toml for a local cluster.
    ///
    /// Node K listens for peers on BASE_PORT+K−1 and serves its API on
    /// API_BASE_PORT+K−1. Paths inside the files are relative to --out, so the folder
    /// can be moved.
    InitCluster {
        /// Number of nodes (n); f = ⌊(n−1)/3⌋ faulty ones are tolerated.
        #[arg(long)]
        nodes: usize,
        /// Folder to write into (must not already hold a cluster.toml).
        #[arg(long)]
        out: PathBuf,
        /// Address or DNS name the nodes are reached at.
        #[arg(long, default_value = "127.0.0.1")]
        host: String,
        /// Peer port of node 1.
        #[arg(long, default_value_t = 7000)]
        base_port: u16,
        /// API port of node 1 [default: base-port + nodes].
        #[arg(long)]
        api_base_port: Option<u16>,
        /// Cluster name, carried (hashed) in every message.
        #[arg(long, default_value = "local")]
        cluster_id: String,
        /// Round period P in milliseconds.
        #[arg(long, default_value_t = 2000)]
        round_period_ms: u64,
        /// Precision bound Π in milliseconds.
        #[arg(long, default_value_t = 200)]
        precision_ms: u64,
        /// Start-up rounds run this many times faster than P (1 = no faster).
        #[arg(long, default_value_t = 4)]
        startup_round_divisor: u32,
        /// Print JSON: {"cluster_file", "node_files"}.
        #[arg(long)]
        json: bool,
    },
    /// Load and check a node's configuration (node file, cluster file, key).
    ///
    /// Exits 0 with a one-line summary, or 78 with the file, the field and the fix.
    /// Unknown fields are errors. The fields (README, "Running a cluster on real
    /// machines", has an example of each file):
    ///
    /// node.toml: key_file, cluster_file, listen (multiaddrs of IP addresses),
    /// api_listen (loopback unless allow_remote_api = true), audit_log; [audit] fsync
    /// ("record" | "round" | "never"), max_file_mb, quarantine_on_failure; [quarantine]
    /// hook, rejoin_hook, exit_on_quarantine; [testing] (the testnet's simulated clocks
    /// and behaviours, refused unless enabled = true; never in production).
    ///
    /// cluster.toml: cluster_id, round_period_ms, precision_ms, max_drift_ppm, faulty
    /// (optional), startup_round_divisor; [quarantine] unhealthy_rounds,
    /// probation_rounds, allow_rejoin; one [[member]] per node with name, public_key
    /// (64 hex digits, from `bftime keygen`) and addresses (multiaddrs, /dns4/… allowed).
    Validate {
        /// The node file (node.toml); it names the cluster file and the key.
        #[arg(long)]
        config: PathBuf,
        /// Print JSON: {"ok": true, …the summary} or {"ok": false, "file", "field",
        /// "problem", "fix"}.
        #[arg(long)]
        json: bool,
    },
    /// Run the node in the foreground until SIGINT/SIGTERM (or quarantine, if
    /// `exit_on_quarantine` is set). Log level: RUST_LOG (default `info`).
    ///
    /// Exit codes: 0 stopped on a signal; 10 quarantined with exit_on_quarantine; 78
    /// configuration error; 1 anything else (the log says what).
    Run {
        /// The node file (node.toml); check it first with `bftime validate`.
        #[arg(long)]
        config: PathBuf,
        /// Log lines for people (human) or one JSON object per line (json).
        #[arg(long, value_enum, default_value = "human")]
        log_format: LogFormat,
    },
    /// Show a running node's state and one row per peer (like chronyc tracking + sources).
    ///
    /// Exits 0, or 69 when no node answers at the address.
    Status {
        #[command(flatten)]
        target: Target,
        /// Print the raw `/status` JSON.
        #[arg(long)]
        json: bool,
    },
    /// Inspect audit logs: verify them, show them, and find and check proofs of
    /// misbehaviour. Works from files alone (no running node needed).
    #[command(subcommand)]
    Audit(bftime_node::audit::cli::AuditCommand),
    /// Print cluster time with its [earliest, latest] bounds; exit 3 if not serving.
    ///
    /// Exits 0 while the node serves time, 3 while it does not (starting or
    /// quarantined: the reason is printed), and 69 when no node answers at the address.
    Now {
        #[command(flatten)]
        target: Target,
        /// Print the raw `/now` JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, clap::Args)]
#[group(required = false, multiple = false)]
struct Target {
    /// The node's API address [default: 127.0.0.1:7600, the node file's own default;
    /// init-cluster's nodes listen on base-port + n + K − 1: use --config]
    #[arg(long)]
    api: Option<SocketAddr>,
    /// Read the API address (`api_listen`) from this node file.
    #[arg(long)]
    config: Option<PathBuf>,
}

impl Target {
    fn address(&self) -> Result<SocketAddr, config::ConfigError> {
        match (&self.api, &self.config) {
            (Some(a), _) => Ok(*a),
            (None, Some(c)) => config::api_address_of(c),
            (None, None) => Ok(SocketAddr::from(([127, 0, 0, 1], 7600))),
        }
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,libp2p=warn"));
    // Colour only for a person at a terminal: journald and log files would keep the
    // escape codes. NO_COLOR (no-color.org) turns it off there too.
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    // One thread: a node's work is small and sequential, and a 250-node testnet on a
    // small host runs better with one thread per process.
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let code = match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            exit::FAILURE
        }
    };
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

fn run(cli: Cli) -> anyhow::Result<i32> {
    match cli.command {
        Command::Keygen { out, name, json } => {
            let (path, key) = init::keygen(&out, &name)?;
            let pk = key.public_key();
            if json {
                out!(
                    "{}",
                    serde_json::json!({
                        "key_file": path,
                        "public_key": pk.to_hex(),
                        "peer_id": pk.to_peer_id().to_string(),
                    })
                );
            } else {
                out!("key file:   {}", path.display());
                out!("public key: {}", pk.to_hex());
                out!("peer id:    {}", pk.to_peer_id());
                out!();
                out!("Add this node to cluster.toml on every member:");
                out!("  [[member]]");
                out!("  name = \"CHOOSE-A-NAME\"");
                out!("  public_key = \"{}\"", pk.to_hex());
                out!("  addresses = [\"/ip4/ADDRESS/tcp/7000\"]");
            }
            Ok(exit::OK)
        }
        Command::InitCluster {
            nodes,
            out,
            host,
            base_port,
            api_base_port,
            cluster_id,
            round_period_ms,
            precision_ms,
            startup_round_divisor,
            json,
        } => {
            let made = init::init_cluster(&init::InitOptions {
                nodes,
                out: out.clone(),
                host,
                base_port,
                api_base_port,
                cluster_id,
                round_period_ms,
                precision_ms,
                startup_round_divisor,
            });
            let r = match made {
                Ok(r) => r,
                Err(e) if e.downcast_ref::<init::UsageError>().is_some() => {
                    eprintln!("error: {e}");
                    return Ok(exit::USAGE);
                }
                Err(e) => return Err(e),
            };
            if json {
                out!(
                    "{}",
                    serde_json::json!({
                        "cluster_file": r.cluster_file,
                        "node_files": r.node_files,
                    })
                );
            } else {
                out!(
                    "wrote {} and {} node files (node-1.toml … node-{nodes}.toml) with their keys in {}",
                    r.cluster_file.display(),
                    r.node_files.len(),
                    out.display()
                );
                out!(
                    "start each node with: bftime run --config {}",
                    out.join("node-K.toml").display()
                );
            }
            Ok(exit::OK)
        }
        Command::Validate { config, json } => match config::load(&config) {
            Ok(c) => {
                // Valid, but worth an operator's second look.
                let mut warnings = c.warnings();
                warnings.extend(bftime_node::audit::log_warnings(&c));
                if json {
                    out!(
                        "{}",
                        serde_json::json!({
                            "ok": true,
                            "node": c.name(),
                            "member": c.me.0,
                            "members": c.members.len(),
                            "faulty_tolerated": c.params.faulty,
                            "cluster_id": c.cluster.cluster_id,
                            "cluster_tag": format!("{:016x}", c.cluster_tag),
                            "api_listen": c.api_listen.to_string(),
                            "testing": c.testing.is_some(),
                            "warnings": warnings,
                        })
                    );
                } else {
                    out!(
                        "ok: {} is member {} of {} in cluster {:?} (tag {:016x}; f = {}, P = {} ms, Π = {} ms); peers on {}, API on {}{}{}",
                        c.name(),
                        c.me.0,
                        c.members.len(),
                        c.cluster.cluster_id,
                        c.cluster_tag,
                        c.params.faulty,
                        c.cluster.round_period_ms,
                        c.cluster.precision_ms,
                        c.listen
                            .iter()
                            .map(|a| a.to_string())
                            .collect::<Vec<_>>()
                            .join(", "),
                        c.api_listen,
                        if c.testing.is_some() {
                            "; TESTING MODE"
                        } else {
                            ""
                        },
                        warnings
                            .iter()
                            .map(|w| format!("; WARNING: {w}"))
                            .collect::<String>(),
                    );
                }
                Ok(exit::OK)
            }
            Err(e) => {
                if json {
                    out!(
                        "{}",
                        serde_json::json!({
                            "ok": false,
                            "file": e.file,
                            "field": e.field,
                            "problem": e.problem,
                            "fix": e.fix,
                        })
                    );
                }
                eprintln!("error: {e}");
                Ok(exit::CONFIG)
            }
        },
        Command::Audit(cmd) => bftime_node::audit::cli::run(cmd),
        Command::Run { config, log_format } => {
            init_logging(log_format);
            let cfg = match config::load(&config) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("error: {e}");
                    return Ok(exit::CONFIG);
                }
            };
            match runtime()?.block_on(async move { driver::run(cfg, shutdown_signal()).await }) {
                Ok(code) => Ok(code),
                Err(e) => {
                    // Through the log, in its format (a JSON log pipeline parses it).
                    tracing::error!(error = %format!("{e:#}"), "bftime run failed to start or stopped on an error");
                    Ok(exit::FAILURE)
                }
            }
        }
        Command::Status { target, json } => {
            let (code, body) = match fetch(&target, "/status")? {
                Ok(x) => x,
                Err(exit_code) => return Ok(exit_code),
            };
            if code != 200 {
                eprintln!(
                    "error: the node answered {code}: {}",
                    String::from_utf8_lossy(&body)
                );
                return Ok(exit::UNAVAILABLE);
            }
            if json {
                out!("{}", String::from_utf8_lossy(&body));
            } else {
                let v: StatusView =
                    serde_json::from_slice(&body).context("the node's /status is not valid")?;
                print_status(&v);
            }
            Ok(exit::OK)
        }
        Command::Now { target, json } => {
            let (code, body) = match fetch(&target, "/now")? {
                Ok(x) => x,
                Err(exit_code) => return Ok(exit_code),
            };
            let v: NowView = match serde_json::from_slice(&body) {
                Ok(v) => v,
                Err(_) => {
                    eprintln!(
                        "error: the node answered {code}: {}",
                        String::from_utf8_lossy(&body)
                    );
                    return Ok(exit::UNAVAILABLE);
                }
            };
            if json {
                out!("{}", String::from_utf8_lossy(&body));
            } else if v.serving {
                out!(
                    "{} ns  [{} .. {}]  ±{}",
                    v.cluster_time_ns,
                    v.earliest_ns,
                    v.latest_ns,
                    fmt_ns((v.latest_ns - v.earliest_ns) / 2)
                );
                // The cluster clock started from the members' wall clocks: read as a date
                // it is near UTC, but only as near as they were.
                out!(
                    "{} (cluster time, {}, epoch {})",
                    bftime_node::audit::show::format_time(v.cluster_time_ns),
                    v.status,
                    v.epoch
                );
            } else {
                eprintln!(
                    "not serving time: {}{}",
                    v.status,
                    v.reason.map(|r| format!(" ({r})")).unwrap_or_default()
                );
            }
            Ok(if v.serving {
                exit::OK
            } else {
                exit::NOT_SERVING
            })
        }
    }
}

/// GETs `path` from the node `target` names: (HTTP code, body), or the exit code to
/// leave with after saying what went wrong.
fn fetch(target: &Target, path: &str) -> anyhow::Result<Result<(u16, Vec<u8>), i32>> {
    let addr = match target.address() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(Err(exit::CONFIG));
        }
    };
    Ok(match runtime()?.block_on(client::get(addr, path)) {
        Ok(x) => Ok(x),
        Err(e) => {
            eprintln!("error: {e:#}");
            Err(exit::UNAVAILABLE)
        }
    })
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

/// A duration in the unit a person reads best.
fn fmt_ns(ns: i64) -> String {
    Nanos(ns).to_string()
}

fn opt_ns(v: Option<i64>) -> String {
    v.map(fmt_ns).unwrap_or_else(|| "-".into())
}

fn print_status(v: &StatusView) {
    let s = &v.snapshot;
    let state = match &s.quarantine_reason {
        Some(r) => format!("{} ({r})", s.state.as_str()),
        None => s.state.as_str().to_owned(),
    };
    out!(
        "Node             : {} (member {}) in cluster {:?}{}",
        v.node,
        s.member.0,
        v.cluster_id,
        if v.testing { "  [TESTING MODE]" } else { "" }
    );
    out!("State            : {state}");
    out!(
        "Serving time     : {}",
        if s.serving { "yes" } else { "no" }
    );
    out!(
        "Round            : {} (P = {} ms)",
        s.round,
        v.round_period_ms
    );
    out!("Offset applied   : {} (since start)", fmt_ns(s.applied_ns));
    out!("Last correction  : {}", fmt_ns(s.last_correction_ns));
    out!("Pending slew     : {}", fmt_ns(s.pending_slew_ns));
    out!(
        "Error bound      : {} (bound Π = {} ms)",
        s.error_ns
            .map(|e| format!("±{}", fmt_ns(e)))
            .unwrap_or_else(|| "unknown".into()),
        v.precision_ms
    );
    out!("Rate correction  : {:+.3} ppm", s.rate_ppm);
    out!(
        "Members answered : {} of {} peers (n = {}, f = {}); connected to {}",
        s.members_answered,
        s.members.saturating_sub(1),
        s.members,
        s.faulty_tolerated,
        v.connected_peers
    );
    out!(
        "Readings         : {} accepted, {} rejected; {} quarantine{}; up {:.0} s",
        s.readings_accepted,
        s.readings_rejected.total(),
        v.quarantines,
        if v.quarantines == 1 { "" } else { "s" },
        v.uptime_s
    );
    out!();
    out!(
        "{:<16} {:<11} {:>12} {:>11} {:>11} {:<10} {:>8} {:>8}  REJECTED BY REASON",
        "PEER",
        "STATE",
        "OFFSET",
        "DELAY",
        "ERROR",
        "SUSPECT",
        "ACCEPTED",
        "REJECTED"
    );
    for p in &s.peers {
        let name = v
            .member_names
            .get(p.member.index())
            .cloned()
            .unwrap_or_else(|| p.member.to_string());
        let reasons: Vec<String> = p
            .rejected
            .nonzero()
            .map(|(r, c)| format!("{}={c}", r.as_str()))
            .collect();
        let state = match (&p.left, p.state) {
            (Some(_), _) => "left".to_owned(),
            (None, Some(st)) => st.as_str().to_owned(),
            (None, None) => "-".to_owned(),
        };
        out!(
            "{:<16} {:<11} {:>12} {:>11} {:>11} {:<10} {:>8} {:>8}  {}",
            name,
            state,
            opt_ns(p.offset_ns),
            opt_ns(p.delay_ns),
            opt_ns(p.error_ns),
            p.suspect
                .map(|r| format!("{r:?}").to_lowercase())
                .unwrap_or_else(|| "-".into()),
            p.accepted,
            p.rejected.total(),
            reasons.join(" ")
        );
    }
}
