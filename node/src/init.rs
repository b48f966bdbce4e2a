//! `bftime keygen` and `bftime init-cluster`. The testnet builds its clusters with the
//! same function, so a testnet folder is exactly what an operator would get.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use bftime_crypto::NodeKey;
use rand::SeedableRng;
use rand::rngs::{StdRng, SysRng};

use crate::config::{ClusterFile, ClusterQuarantine, MemberEntry, NodeFile, QuarantineAction};
use crate::testing::TestingConfig;

/// A fresh key from the OS's CSPRNG.
pub fn fresh_key() -> anyhow::Result<NodeKey> {
    let mut rng = StdRng::try_from_rng(&mut SysRng).context("the OS random source failed")?;
    Ok(NodeKey::generate(&mut rng))
}

/// Writes `DIR/node.key` (0600); returns its path and the key.
pub fn keygen(dir: &Path, file_name: &str) -> anyhow::Result<(PathBuf, NodeKey)> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let key = fresh_key()?;
    let path = dir.join(file_name);
    key.save(&path)?;
    Ok((path, key))
}

/// A request `init-cluster` refuses before writing anything (the command line's fault:
/// `bftime` exits 2, as for any usage error).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// The `init-cluster` flag that sets a cluster file field (for errors).
fn flag_of(field: &str) -> &str {
    match field {
        "round_period_ms" => "--round-period-ms",
        "precision_ms" => "--precision-ms",
        "startup_round_divisor" => "--startup-round-divisor",
        "cluster_id" => "--cluster-id",
        other => other,
    }
}

/// What `init-cluster` makes.
#[derive(Debug, Clone)]
pub struct InitOptions {
    pub nodes: usize,
    pub out: PathBuf,
    pub host: String,
    /// Peer port of node 1; node K listens on `base_port + K − 1`.
    pub base_port: u16,
    /// API port of node 1; defaults to `base_port + nodes`.
    pub api_base_port: Option<u16>,
    pub cluster_id: String,
    pub round_period_ms: u64,
    pub precision_ms: u64,
    /// Start-up rounds run this many times faster (cluster.toml `startup_round_divisor`).
    pub startup_round_divisor: u32,
}

/// What `init-cluster` wrote.
#[derive(Debug, Clone)]
pub struct InitResult {
    pub cluster_file: PathBuf,
    pub node_files: Vec<PathBuf>,
    pub cluster: ClusterFile,
    pub nodes: Vec<NodeFile>,
}

impl InitResult {
    /// Rewrites node `k`'s file (0-based) with a `[testing]` section (testnet use only).
    pub fn set_testing(&mut self, k: usize, testing: TestingConfig) -> anyhow::Result<()> {
        self.nodes[k].testing = Some(testing);
        write_toml(&self.node_files[k], &self.nodes[k])
    }

    /// Rewrites node `k`'s file with a changed quarantine action.
    pub fn set_quarantine(&mut self, k: usize, q: QuarantineAction) -> anyhow::Result<()> {
        self.nodes[k].quarantine = q;
        write_toml(&self.node_files[k], &self.nodes[k])
    }
}

fn write_toml<T: serde::Serialize>(path: &Path, value: &T) -> anyhow::Result<()> {
    let text = toml::to_string_pretty(value).context("cannot serialise config")?;
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

fn peer_addr(host: &str, port: u32) -> String {
    if host.parse::<std::net::Ipv4Addr>().is_ok() {
        format!("/ip4/{host}/tcp/{port}")
    } else if host.parse::<std::net::Ipv6Addr>().is_ok() {
        format!("/ip6/{host}/tcp/{port}")
    } else {
        format!("/dns4/{host}/tcp/{port}")
    }
}

/// Generates N keys, `cluster.toml` and `node-1.toml` … `node-N.toml` in `out`, with
/// paths relative to `out` so the folder can move.
pub fn init_cluster(o: &InitOptions) -> anyhow::Result<InitResult> {
    let usage = |m: String| anyhow::Error::new(UsageError(m));
    if o.cluster_id.trim().is_empty() {
        return Err(usage(
            "--cluster-id is empty: give the cluster a name, e.g. --cluster-id prod-eu".into(),
        ));
    }
    if !(1..=usize::from(u16::MAX)).contains(&o.nodes) {
        return Err(usage(format!(
            "--nodes {} is out of range: a cluster has 1 to 65535 members",
            o.nodes
        )));
    }
    let api_base = u32::from(o.api_base_port.unwrap_or_else(|| {
        u16::try_from(u32::from(o.base_port) + o.nodes as u32).unwrap_or(u16::MAX)
    }));
    let last_peer = u32::from(o.base_port) + o.nodes as u32 - 1;
    let last_api = api_base + o.nodes as u32 - 1;
    if last_peer > 65535 || last_api > 65535 {
        return Err(usage(format!(
            "ports run past 65535: lower --base-port (peer ports {}..={last_peer}, API ports {api_base}..={last_api})",
            o.base_port
        )));
    }
    std::fs::create_dir_all(&o.out)
        .with_context(|| format!("cannot create {}", o.out.display()))?;
    let cluster_path = o.out.join("cluster.toml");
    anyhow::ensure!(
        !cluster_path.exists(),
        "{} already exists; choose an empty --out folder (keys are never overwritten)",
        cluster_path.display()
    );

    let mut members = Vec::with_capacity(o.nodes);
    let mut nodes = Vec::with_capacity(o.nodes);
    let mut node_files = Vec::with_capacity(o.nodes);
    let mut keys = Vec::with_capacity(o.nodes);
    let loopback = o.host == "127.0.0.1" || o.host == "localhost" || o.host == "::1";
    for k in 1..=o.nodes {
        let name = format!("node-{k}");
        let key_name = format!("{name}.key");
        let key = fresh_key()?;
        let port = u32::from(o.base_port) + k as u32 - 1;
        members.push(MemberEntry {
            name: name.clone(),
            public_key: key.public_key().to_hex(),
            addresses: vec![peer_addr(&o.host, port)],
        });
        keys.push((o.out.join(&key_name), key));
        // A node listens on an address, never on a name (a name is for dialling).
        let listen_host = match o.host.as_str() {
            "localhost" => "127.0.0.1",
            h if loopback => h,
            h if h.parse::<std::net::Ipv6Addr>().is_ok() => "::",
            _ => "0.0.0.0",
        };
        let api_host = if o.host == "::1" {
            "[::1]"
        } else {
            "127.0.0.1"
        };
        nodes.push(NodeFile {
            key_file: PathBuf::from(key_name),
            cluster_file: PathBuf::from("cluster.toml"),
            listen: vec![peer_addr(listen_host, port)],
            api_listen: format!("{api_host}:{}", api_base + k as u32 - 1),
            allow_remote_api: false,
            audit_log: Some(PathBuf::from(format!("{name}.audit"))),
            audit: crate::config::AuditOptions::default(),
            quarantine: QuarantineAction::default(),
            testing: None,
        });
        node_files.push(o.out.join(format!("{name}.toml")));
    }
    let cluster = ClusterFile {
        cluster_id: o.cluster_id.clone(),
        round_period_ms: o.round_period_ms,
        precision_ms: o.precision_ms,
        max_drift_ppm: 200.0,
        startup_round_divisor: o.startup_round_divisor,
        faulty: None,
        quarantine: ClusterQuarantine::default(),
        members,
    };
    // Whatever `bftime validate` would refuse in the cluster file is refused here,
    // before a key or a file is written.
    if let Err(e) = crate::config::params_from(&cluster_path, &cluster) {
        let fix = if e.fix.is_empty() {
            String::new()
        } else {
            format!(" ({})", e.fix)
        };
        return Err(usage(format!("{}: {}{fix}", flag_of(&e.field), e.problem)));
    }
    for (path, key) in &keys {
        key.save(path)?;
    }
    write_toml(&cluster_path, &cluster)?;
    for (path, node) in node_files.iter().zip(&nodes) {
        write_toml(path, node)?;
    }
    Ok(InitResult {
        cluster_file: cluster_path,
        node_files,
        cluster,
        nodes,
    })
}
