//! `cluster.toml` and `node.toml`: parsing and validation.
//!
//! Every struct refuses unknown fields, and every error names the file, the field and
//! the fix (ntpd-rs's config habit), because an operator reading "invalid config" at
//! 3 a.m. needs to know which line to change. Relative paths in `node.toml` are
//! resolved against the folder that holds it, so a generated cluster folder can move.

use std::collections::HashSet;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use bftime_crypto::{NodeKey, PublicKey};
use bftime_protocol::{MemberId, Nanos, Params, Ppm};
use libp2p::{Multiaddr, PeerId, multiaddr::Protocol};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::audit::writer::FsyncPolicy;
use crate::testing::TestingConfig;

/// A configuration problem: which file, which field, what is wrong, how to fix it.
#[derive(Debug, thiserror::Error)]
pub struct ConfigError {
    pub file: PathBuf,
    pub field: String,
    pub problem: String,
    pub fix: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: field `{}`: {}",
            self.file.display(),
            self.field,
            self.problem
        )?;
        if !self.fix.is_empty() {
            write!(f, "\n  fix: {}", self.fix)?;
        }
        Ok(())
    }
}

fn cfg_err(
    file: &Path,
    field: impl Into<String>,
    problem: impl Into<String>,
    fix: impl Into<String>,
) -> ConfigError {
    ConfigError {
        file: file.to_path_buf(),
        field: field.into(),
        problem: problem.into(),
        fix: fix.into(),
    }
}

/// The cluster file: identical on every member.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterFile {
    /// A name for the cluster; part of the tag every message carries.
    pub cluster_id: String,
    /// Round period P in milliseconds.
    #[serde(default = "default_round_period_ms")]
    pub round_period_ms: u64,
    /// Precision bound Π in milliseconds: correct clocks stay within this of each other.
    #[serde(default = "default_precision_ms")]
    pub precision_ms: u64,
    /// Bound on a correct oscillator's frequency error, in ppm.
    #[serde(default = "default_max_drift_ppm")]
    pub max_drift_ppm: f64,
    /// A starting node runs rounds this many times faster (P / divisor) so a cold
    /// cluster converges sooner; 1 keeps start-up at the normal pace (for hosts that
    /// cannot carry the extra exchanges, such as a large testnet on a small machine).
    #[serde(default = "default_startup_round_divisor")]
    pub startup_round_divisor: u32,
    /// Faulty members tolerated; defaults to ⌊(n−1)/3⌋, may only be set lower.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub faulty: Option<usize>,
    #[serde(default)]
    pub quarantine: ClusterQuarantine,
    /// The members, in order; a member's index is its id on the wire.
    #[serde(rename = "member", default)]
    pub members: Vec<MemberEntry>,
}

/// Cluster-wide quarantine policy (design §5).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterQuarantine {
    /// K: consecutive unhealthy rounds before a synced node quarantines itself.
    #[serde(default = "default_unhealthy_rounds")]
    pub unhealthy_rounds: u32,
    /// M: consecutive healthy rounds a quarantined node needs before it rejoins.
    #[serde(default = "default_probation_rounds")]
    pub probation_rounds: u32,
    /// Whether a quarantined node may rejoin after probation.
    #[serde(default = "default_true")]
    pub allow_rejoin: bool,
}

impl Default for ClusterQuarantine {
    fn default() -> Self {
        ClusterQuarantine {
            unhealthy_rounds: default_unhealthy_rounds(),
            probation_rounds: default_probation_rounds(),
            allow_rejoin: true,
        }
    }
}

/// One member of the cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberEntry {
    pub name: String,
    /// Hex ed25519 public key, as `bftime keygen` prints it.
    pub public_key: String,
    /// Where to reach it: `/ip4/10.0.0.5/tcp/7000`, `/dns4/node-3.internal/tcp/7000`, …
    pub addresses: Vec<String>,
}

fn default_round_period_ms() -> u64 {
    2000
}
fn default_precision_ms() -> u64 {
    200
}
fn default_max_drift_ppm() -> f64 {
    200.0
}
fn default_startup_round_divisor() -> u32 {
    4
}
fn default_unhealthy_rounds() -> u32 {
    3
}
fn default_probation_rounds() -> u32 {
    10
}
fn default_true() -> bool {
    true
}
fn default_api_listen() -> String {
    "127.0.0.1:7600".into()
}

/// The per-node file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeFile {
    /// The node's secret key (written by `bftime keygen`, mode 0600).
    pub key_file: PathBuf,
    /// The cluster file shared by every member.
    pub cluster_file: PathBuf,
    /// Multiaddrs to listen on for peers, e.g. `/ip4/0.0.0.0/tcp/7000`.
    pub listen: Vec<String>,
    /// HTTP API address (`/now`, `/status`, `/metrics`); loopback by default.
    #[serde(default = "default_api_listen")]
    pub api_listen: String,
    /// Allow a non-loopback `api_listen` (the API is unauthenticated).
    #[serde(default)]
    pub allow_remote_api: bool,
    /// The node's audit log (signed, hash-chained; `bftime audit` reads it). Rotated
    /// files sit next to it as `PATH.000000`, `PATH.000001`, …
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit_log: Option<PathBuf>,
    #[serde(default)]
    pub audit: AuditOptions,
    #[serde(default)]
    pub quarantine: QuarantineAction,
    /// Testnet only. Never set in production.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub testing: Option<TestingConfig>,
}

/// How the audit log is written (`[audit]`; only with `audit_log`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditOptions {
    /// `record` (every record reaches the disk before the next; the default), `round`
    /// (after each round's record) or `never` (the OS decides).
    #[serde(default)]
    pub fsync: FsyncPolicy,
    /// Rotate the log file when it reaches this size (MiB).
    #[serde(default = "default_max_file_mb")]
    pub max_file_mb: u64,
    /// Quarantine when the log cannot be written (a node must not serve time it cannot
    /// account for). Default true.
    #[serde(default = "default_true")]
    pub quarantine_on_failure: bool,
}

impl Default for AuditOptions {
    fn default() -> Self {
        AuditOptions {
            fsync: FsyncPolicy::default(),
            max_file_mb: default_max_file_mb(),
            quarantine_on_failure: true,
        }
    }
}

fn default_max_file_mb() -> u64 {
    64
}

/// What the node does when it quarantines itself.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuarantineAction {
    /// Shell command run (via `sh -c`) with `BFTIME_QUARANTINE_REASON`,
    /// `BFTIME_QUARANTINE_CODE`, `BFTIME_NODE` and `BFTIME_ROUND` in its environment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hook: Option<String>,
    /// Shell command run when the node serves time again after a quarantine (say,
    /// `systemctl start my-app` to undo what `hook` stopped), with `BFTIME_EVENT=rejoined`
    /// and the ended quarantine's code and reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejoin_hook: Option<String>,
    /// Exit with code 10 after quarantining (instead of measuring on and rejoining).
    #[serde(default)]
    pub exit_on_quarantine: bool,
}

/// A member as the node uses it.
#[derive(Debug, Clone)]
pub struct Member {
    pub id: MemberId,
    pub name: String,
    pub key: PublicKey,
    pub peer_id: PeerId,
    pub addresses: Vec<Multiaddr>,
}

/// Everything `bftime run` needs, checked.
#[derive(Debug)]
pub struct NodeConfig {
    pub node_path: PathBuf,
    pub cluster_path: PathBuf,
    pub node: NodeFile,
    pub cluster: ClusterFile,
    pub key: std::sync::Arc<NodeKey>,
    pub key_permissions_too_open: bool,
    pub me: MemberId,
    pub members: Vec<Member>,
    pub params: Params,
    /// Tag carried in every message: a hash of the cluster id, the parameters every
    /// member must agree on, and the member keys in order. Two nodes with different
    /// cluster files reject each other's readings (`wrong-cluster`) instead of mixing.
    pub cluster_tag: u64,
    pub listen: Vec<Multiaddr>,
    pub api_listen: SocketAddr,
    pub audit_log: Option<PathBuf>,
    pub testing: Option<TestingConfig>,
}

impl NodeConfig {
    pub fn name(&self) -> &str {
        &self.members[self.me.index()].name
    }

    /// What is valid but worth an operator's second look (`bftime validate` prints
    /// these; `bftime run` logs them).
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        if self.key_permissions_too_open {
            warnings.push("key file is readable by others (chmod 600 it)".to_owned());
        }
        if self.params.faulty == 0 {
            warnings.push(if self.members.len() < 4 {
                format!(
                    "with {} member(s) the cluster tolerates no faulty or lying member (f = 1 needs 4)",
                    self.members.len()
                )
            } else {
                "faulty = 0: the cluster tolerates no faulty or lying member".to_owned()
            });
        }
        // Spec §5: no cluster keeps its clocks closer than 4ρP (drift over a round) plus
        // four times the delay uncertainty; on a cloud network, take that as 1 ms.
        let floor = self
            .params
            .round_period
            .scale(Ppm(4.0 * self.params.max_drift.0))
            + Nanos::from_millis(4);
        if self.params.precision < floor {
            warnings.push(format!(
                "precision_ms = {} is below what agreement can keep: about 4 × max_drift × P + 4 × the network's delay uncertainty ≈ {floor} with 1 ms of uncertainty (spec §5), so the nodes would quarantine; use 10 ms or more (200 is the default)",
                self.cluster.precision_ms
            ));
        }
        let tcp_port = |a: &Multiaddr| {
            a.iter().find_map(|p| match p {
                Protocol::Tcp(port) => Some(port),
                _ => None,
            })
        };
        let listening: Vec<u16> = self.listen.iter().filter_map(tcp_port).collect();
        let advertised: Vec<u16> = self.members[self.me.index()]
            .addresses
            .iter()
            .filter_map(tcp_port)
            .collect();
        if !advertised.is_empty() && !advertised.iter().any(|p| listening.contains(p)) {
            warnings.push(format!(
                "this node listens on port(s) {listening:?}, but its member entry in the cluster file gives {advertised:?}: peers dial those (fine behind a port mapping, else make them match)"
            ));
        }
        warnings
    }
}

fn read_toml<T: for<'de> Deserialize<'de>>(path: &Path, what: &str) -> Result<T, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        cfg_err(
            path,
            "(file)",
            format!("cannot read the {what}: {e}"),
            "check the path (relative paths are relative to the node file's folder)",
        )
    })?;
    toml::from_str(&text).map_err(|e| {
        let msg = e.to_string();
        let field = unknown_field(&msg)
            .or_else(|| e.span().and_then(|span| field_at(&text, span.start)))
            .unwrap_or_else(|| "(syntax)".into());
        // The cluster file given where the node file goes (or the other way round) is
        // an easy slip: say so rather than list the fields it does not know.
        let swapped = match what {
            "node file" if ["cluster_id", "member", "round_period_ms"].contains(&field.as_str()) => {
                Some("this is a cluster file: give the node's own file (node-K.toml), which names its cluster_file")
            }
            "cluster file" if ["key_file", "cluster_file", "listen"].contains(&field.as_str()) => {
                Some("this is a node file: cluster_file must name the cluster's file (cluster.toml)")
            }
            _ => None,
        };
        cfg_err(
            path,
            field,
            msg.trim().replace('\n', "\n  "),
            swapped.unwrap_or(
                "see `bftime validate --help` and the README's \"Running a cluster on real machines\"",
            ),
        )
    })
}

/// The dotted name of the field whose line holds byte `at` of `text` (`quarantine.hook`,
/// `member[2].addresses`), for errors toml reports by position only (a wrong type or
/// value): the key before the line's `=`, under the table header above it.
fn field_at(text: &str, at: usize) -> Option<String> {
    let before = text.get(..at)?;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = text[line_start..].lines().next()?;
    let key = line.split_once('=')?.0.trim().trim_matches('"');
    if key.is_empty() || key.starts_with('#') || key.starts_with('[') {
        return None;
    }
    let mut members = 0usize;
    let mut table = None;
    for l in before[..line_start].lines() {
        let l = l.trim();
        if let Some(name) = l.strip_prefix("[[").and_then(|r| r.strip_suffix("]]")) {
            let name = name.trim();
            if name == "member" {
                members += 1;
            }
            table = Some(name.to_owned());
        } else if let Some(name) = l.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
            table = Some(name.trim().to_owned());
        }
    }
    Some(match table {
        Some(t) if t == "member" => format!("member[{}].{key}", members.saturating_sub(1)),
        Some(t) => format!("{t}.{key}"),
        None => key.to_owned(),
    })
}

/// Pulls the field name out of toml/serde's message, so the first line names it.
fn unknown_field(msg: &str) -> Option<String> {
    for marker in [
        "unknown field `",
        "missing field `",
        "invalid type",
        "invalid value",
    ] {
        if let Some(pos) = msg.find(marker) {
            if marker.ends_with('`') {
                let rest = &msg[pos + marker.len()..];
                return rest.split('`').next().map(str::to_owned);
            }
            return None;
        }
    }
    None
}

fn resolve(base: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

/// Parses a member address; only TCP is supported for now.
pub fn parse_peer_multiaddr(text: &str) -> Result<Multiaddr, String> {
    let addr =
        Multiaddr::from_str(text).map_err(|e| format!("{text:?} is not a multiaddr: {e}"))?;
    let mut protos = addr.iter();
    match protos.next() {
        Some(Protocol::Ip4(_) | Protocol::Ip6(_) | Protocol::Dns4(_) | Protocol::Dns6(_))
        | Some(Protocol::Dns(_)) => {}
        _ => {
            return Err(format!(
                "{text:?} must start with /ip4, /ip6, /dns4, /dns6 or /dns"
            ));
        }
    }
    match protos.next() {
        Some(Protocol::Tcp(_)) => {}
        _ => return Err(format!("{text:?} needs a /tcp/PORT part")),
    }
    if let Some(p) = protos.next() {
        match p {
            Protocol::P2p(_) => {}
            other => return Err(format!("{text:?}: unexpected part {other} after the port")),
        }
    }
    Ok(addr)
}

/// Whether a multiaddr names its host (`/dns4`, `/dns6`, `/dns`) rather than giving
/// an IP address.
pub fn names_host(addr: &Multiaddr) -> bool {
    matches!(
        addr.iter().next(),
        Some(Protocol::Dns(_) | Protocol::Dns4(_) | Protocol::Dns6(_))
    )
}

/// A stable 64-bit tag for the cluster (see [`NodeConfig::cluster_tag`]).
pub fn cluster_tag(cluster: &ClusterFile, params: &Params, keys: &[PublicKey]) -> u64 {
    let mut h = Sha256::new();
    h.update(b"bftime v1 cluster tag\0");
    h.update((cluster.cluster_id.len() as u64).to_be_bytes());
    h.update(cluster.cluster_id.as_bytes());
    h.update((params.members as u64).to_be_bytes());
    h.update((params.faulty as u64).to_be_bytes());
    h.update(params.round_period.0.to_be_bytes());
    h.update(params.precision.0.to_be_bytes());
    h.update(params.max_drift.0.to_be_bytes());
    h.update(params.startup_round_divisor.to_be_bytes());
    for k in keys {
        h.update(k.to_bytes());
    }
    let d = h.finalize();
    let mut tag = [0u8; 8];
    tag.copy_from_slice(&d[..8]);
    u64::from_be_bytes(tag)
}

/// Loads and checks the cluster file alone (members, parameters).
pub fn load_cluster(path: &Path) -> Result<(ClusterFile, Vec<Member>, Params, u64), ConfigError> {
    let cluster: ClusterFile = read_toml(path, "cluster file")?;
    if cluster.cluster_id.trim().is_empty() {
        return Err(cfg_err(
            path,
            "cluster_id",
            "is empty",
            "set a name, e.g. cluster_id = \"prod-eu\"",
        ));
    }
    if cluster.members.is_empty() {
        return Err(cfg_err(
            path,
            "member",
            "no members listed",
            "add one [[member]] table per node with name, public_key and addresses",
        ));
    }
    let mut members = Vec::with_capacity(cluster.members.len());
    let mut names = HashSet::new();
    let mut keys = HashSet::new();
    // Address (without any /p2p part) → the member listing it first.
    let mut endpoints: std::collections::HashMap<Multiaddr, usize> =
        std::collections::HashMap::new();
    for (i, m) in cluster.members.iter().enumerate() {
        let field = |f: &str| format!("member[{i}].{f}");
        if m.name.trim().is_empty() || !names.insert(m.name.clone()) {
            return Err(cfg_err(
                path,
                field("name"),
                format!("name {:?} is empty or used twice", m.name),
                "give every member a unique name",
            ));
        }
        let key = PublicKey::from_hex(&m.public_key).map_err(|e| {
            cfg_err(
                path,
                field("public_key"),
                e.to_string(),
                "paste the 64-hex-digit public key that `bftime keygen` printed for this node",
            )
        })?;
        if !keys.insert(key.to_bytes()) {
            return Err(cfg_err(
                path,
                field("public_key"),
                "the same key is listed twice",
                "each member needs its own key (`bftime keygen`)",
            ));
        }
        if m.addresses.is_empty() {
            return Err(cfg_err(
                path,
                field("addresses"),
                "no addresses",
                "list at least one, e.g. addresses = [\"/ip4/10.0.0.5/tcp/7000\"]",
            ));
        }
        let mut addresses = Vec::new();
        for (j, a) in m.addresses.iter().enumerate() {
            let addr = parse_peer_multiaddr(a).map_err(|e| {
                cfg_err(
                    path,
                    format!("member[{i}].addresses[{j}]"),
                    e,
                    "write it as /ip4/ADDR/tcp/PORT or /dns4/HOST/tcp/PORT",
                )
            })?;
            let at = format!("member[{i}].addresses[{j}]");
            if let Some(Protocol::P2p(id)) = addr.iter().last()
                && id != key.to_peer_id()
            {
                return Err(cfg_err(
                    path,
                    at,
                    format!("ends in /p2p/{id}, which is not this member's key"),
                    "drop the /p2p part (the key identifies the member) or use this member's own peer id",
                ));
            }
            let endpoint: Multiaddr = addr
                .iter()
                .filter(|p| !matches!(p, Protocol::P2p(_)))
                .collect();
            if let Some(&other) = endpoints.get(&endpoint)
                && other != i
            {
                return Err(cfg_err(
                    path,
                    at,
                    format!("{endpoint} is member[{other}]'s address too"),
                    "give every member the address (host and port) it listens on",
                ));
            }
            endpoints.insert(endpoint, i);
            addresses.push(addr);
        }
        members.push(Member {
            id: MemberId(i as u16),
            name: m.name.clone(),
            key,
            peer_id: key.to_peer_id(),
            addresses,
        });
    }
    let params = params_from(path, &cluster)?;
    let key_list: Vec<PublicKey> = members.iter().map(|m| m.key).collect();
    let tag = cluster_tag(&cluster, &params, &key_list);
    Ok((cluster, members, params, tag))
}

/// Peers asked together in one request slot.
pub const REQUESTS_PER_SLOT: usize = 4;

/// Request slots per round for `n` members: the round's requests go out over 80 % of
/// the round in groups of about [`REQUESTS_PER_SLOT`], between 4 and 256 slots.
///
/// Why groups and not one peer per slot: on a VM the wake-up of a process (switching
/// to it, then its cold caches) costs more than the exchange's own work. Every member's
/// slots fall at the same cluster times and slot k pairs the same members both ways
/// ((p + me) mod slots), so the requests, answers and responses of one slot reach a
/// process close together and share its wake-ups. Measured on a 2-core VM, 31 nodes, 1 s
/// rounds: one peer per slot (30 slots) took 75 wake-ups and 9 ms of CPU per node per
/// second, 279 µs per exchange; four per slot (8 slots) 36 wake-ups, 6.5 ms, 203 µs.
/// The price is queueing inside a slot (a process answers a few requests before it
/// reads the next response), which is measurement error: there, p50 true skew went from
/// 0.46 to 1.2 ms, with 31 processes sharing 2 cores.
pub fn request_slots(n: usize) -> u32 {
    let slots = n.saturating_sub(1).div_ceil(REQUESTS_PER_SLOT);
    u32::try_from(slots).unwrap_or(u32::MAX).clamp(4, 256)
}

pub(crate) fn params_from(path: &Path, c: &ClusterFile) -> Result<Params, ConfigError> {
    let n = c.members.len();
    let mut p = Params::for_members(n);
    if let Some(f) = c.faulty {
        if f > p.faulty {
            return Err(cfg_err(
                path,
                "faulty",
                format!(
                    "f = {f} but {n} members tolerate at most ⌊(n−1)/3⌋ = {}",
                    p.faulty
                ),
                "remove `faulty` (it defaults to the maximum) or add members",
            ));
        }
        p.faulty = f;
    }
    p.round_period = Nanos::from_millis(c.round_period_ms as i64);
    p.precision = Nanos::from_millis(c.precision_ms as i64);
    p.max_drift = Ppm(c.max_drift_ppm);
    p.startup_round_divisor = c.startup_round_divisor;
    p.request_slots = request_slots(n);
    p.request_spread = 0.8;
    p.unhealthy_rounds = c.quarantine.unhealthy_rounds;
    p.probation_rounds = c.quarantine.probation_rounds;
    p.allow_rejoin = c.quarantine.allow_rejoin;
    let (max_drift, max_slew) = (p.max_drift, p.max_slew);
    p.validate().map_err(|e| {
        let (field, problem, fix): (&str, String, String) = match e.field {
            "round_period" => (
                "round_period_ms",
                e.problem,
                "set round_period_ms to at least 10 (the default, 2000, suits most clusters)"
                    .into(),
            ),
            "precision" => (
                "precision_ms",
                e.problem,
                "set precision_ms to the skew your applications tolerate, e.g. 200".into(),
            ),
            "max_drift" => (
                "max_drift_ppm",
                format!(
                    "{max_drift} is out of range: 0 up to (not including) {:.0} ppm, a quarter of the slew rate",
                    max_slew.0 / 4.0
                ),
                format!(
                    "set max_drift_ppm to how fast your VMs' clocks may drift, 0 up to (not including) {:.0} (default 200)",
                    max_slew.0 / 4.0
                ),
            ),
            // The slew rate is not the operator's to set; only the drift bound, which
            // must stay below a quarter of it.
            "max_slew" => (
                "max_drift_ppm",
                format!(
                    "{max_drift} is too large: a node slews its clock by at most {max_slew}, which must exceed 4 × max_drift"
                ),
                format!(
                    "set max_drift_ppm below {:.0} (default 200)",
                    max_slew.0 / 4.0
                ),
            ),
            "unhealthy_rounds" => (
                "quarantine.unhealthy_rounds",
                e.problem,
                "use 1 or more (default 3)".into(),
            ),
            "startup_round_divisor" => (
                "startup_round_divisor",
                e.problem,
                "use 1 (no faster start-up rounds) to 16 (default 4)".into(),
            ),
            other => (other, e.problem, String::new()),
        };
        cfg_err(path, field, problem, fix)
    })?;
    Ok(p)
}

/// Loads and checks a node file, its cluster file and its key.
pub fn load(node_path: &Path) -> Result<NodeConfig, ConfigError> {
    let node: NodeFile = read_toml(node_path, "node file")?;
    let base = node_path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let base = if base.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        base
    };
    let cluster_path = resolve(&base, &node.cluster_file);
    if !cluster_path.exists() {
        return Err(cfg_err(
            node_path,
            "cluster_file",
            format!("{} does not exist", cluster_path.display()),
            "point it at the cluster.toml shared by all members (relative to this file's folder)",
        ));
    }
    let (cluster, members, params, cluster_tag) = load_cluster(&cluster_path)?;

    let key_path = resolve(&base, &node.key_file);
    let loaded = NodeKey::load(&key_path).map_err(|e| {
        cfg_err(
            node_path,
            "key_file",
            e.to_string(),
            "create one with `bftime keygen --out DIR` and point key_file at it",
        )
    })?;
    let public = loaded.key.public_key();
    let Some(me) = members.iter().find(|m| m.key == public).map(|m| m.id) else {
        return Err(cfg_err(
            node_path,
            "key_file",
            format!(
                "this key's public key {} is not a member of {}",
                public.to_hex(),
                cluster_path.display()
            ),
            "add a [[member]] with this public_key to the cluster file on every node, or use the right key",
        ));
    };

    if node.listen.is_empty() {
        return Err(cfg_err(
            node_path,
            "listen",
            "no listen addresses",
            "add one, e.g. listen = [\"/ip4/0.0.0.0/tcp/7000\"]",
        ));
    }
    let mut listen = Vec::new();
    for (i, a) in node.listen.iter().enumerate() {
        let addr = parse_peer_multiaddr(a)
            .and_then(|addr| {
                // The socket binds an address; names are for the members' addresses.
                if names_host(&addr) {
                    Err(format!(
                        "{a:?} names a host: a node listens on an address (DNS names belong in the cluster file's member addresses)"
                    ))
                } else {
                    Ok(addr)
                }
            })
            .map_err(|e| {
                cfg_err(
                    node_path,
                    format!("listen[{i}]"),
                    e,
                    "write it as /ip4/0.0.0.0/tcp/PORT (every interface) or /ip4/<this VM's address>/tcp/PORT",
                )
            })?;
        listen.push(addr);
    }

    let api_listen: SocketAddr = node.api_listen.parse().map_err(|e| {
        cfg_err(
            node_path,
            "api_listen",
            format!("{:?} is not an IP:PORT address: {e}", node.api_listen),
            "e.g. api_listen = \"127.0.0.1:7600\"",
        )
    })?;
    let clash = listen.iter().find_map(|a| {
        let mut parts = a.iter();
        let ip: Option<std::net::IpAddr> = match parts.next() {
            Some(Protocol::Ip4(ip)) => Some(ip.into()),
            Some(Protocol::Ip6(ip)) => Some(ip.into()),
            _ => None,
        };
        let Some(Protocol::Tcp(port)) = parts.next() else {
            return None;
        };
        let overlaps = |ip: std::net::IpAddr| {
            ip == api_listen.ip() || ip.is_unspecified() || api_listen.ip().is_unspecified()
        };
        (port == api_listen.port() && ip.is_some_and(overlaps)).then(|| a.clone())
    });
    if let Some(a) = clash {
        return Err(cfg_err(
            node_path,
            "api_listen",
            format!("{api_listen} is the port of listen address {a}: the two would clash"),
            "give the API its own port (init-cluster uses the peer port + n)",
        ));
    }
    if !api_listen.ip().is_loopback() && !node.allow_remote_api {
        return Err(cfg_err(
            node_path,
            "api_listen",
            format!("{api_listen} is not a loopback address and the API has no authentication"),
            "use 127.0.0.1, or set allow_remote_api = true if a firewall protects it",
        ));
    }

    if let Some(h) = &node.quarantine.hook
        && h.trim().is_empty()
    {
        return Err(cfg_err(
            node_path,
            "quarantine.hook",
            "is empty",
            "remove it or give a shell command",
        ));
    }

    let testing = match &node.testing {
        Some(t) if !t.enabled => {
            return Err(cfg_err(
                node_path,
                "testing.enabled",
                "a [testing] section is present but not enabled",
                "remove the [testing] section: it is for the testnet only and never for production",
            ));
        }
        Some(t) => {
            t.check().map_err(|(field, problem)| {
                cfg_err(node_path, format!("testing.{field}"), problem, "")
            })?;
            Some(t.clone())
        }
        None => None,
    };

    let audit_log = node.audit_log.as_ref().map(|p| resolve(&base, p));
    if node.audit.max_file_mb == 0 {
        return Err(cfg_err(
            node_path,
            "audit.max_file_mb",
            "is 0",
            "give the rotation size in MiB, e.g. max_file_mb = 64",
        ));
    }
    if audit_log.is_none() && node.audit != AuditOptions::default() {
        return Err(cfg_err(
            node_path,
            "audit",
            "[audit] settings are given but audit_log is not set",
            "set audit_log = \"node.audit\" (a path), or remove the [audit] section",
        ));
    }
    Ok(NodeConfig {
        node_path: node_path.to_path_buf(),
        cluster_path,
        cluster,
        key: std::sync::Arc::new(loaded.key),
        key_permissions_too_open: loaded.permissions_too_open,
        me,
        members,
        params,
        cluster_tag,
        listen,
        api_listen,
        audit_log,
        testing,
        node,
    })
}

/// Reads only `api_listen` from a node file (for `bftime status --config`).
pub fn api_address_of(node_path: &Path) -> Result<SocketAddr, ConfigError> {
    let node: NodeFile = read_toml(node_path, "node file")?;
    node.api_listen.parse().map_err(|e| {
        cfg_err(
            node_path,
            "api_listen",
            format!("{:?}: {e}", node.api_listen),
            "e.g. api_listen = \"127.0.0.1:7600\"",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_slots_group_about_four_peers() {
        assert_eq!(request_slots(1), 4);
        assert_eq!(request_slots(4), 4);
        assert_eq!(request_slots(31), 8);
        assert_eq!(request_slots(250), 63);
        assert_eq!(request_slots(5000), 256);
        for n in 2..=1200 {
            let slots = request_slots(n) as usize;
            let per_slot = (n - 1).div_ceil(slots);
            assert!(per_slot <= REQUESTS_PER_SLOT || slots == 256, "n = {n}");
            assert!((4..=256).contains(&slots));
        }
    }
}
