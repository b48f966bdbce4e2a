//! `report.json`, `report.md` and `skew.svg` for a local testnet run.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use super::plot;

/// A duration for people.
pub fn fmt_ns(ns: i64) -> String {
    bftime_protocol::Nanos(ns).to_string()
}

/// Median and max of a per-node figure.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Spread {
    pub median: Option<f64>,
    pub max: Option<f64>,
}

impl Spread {
    pub fn of(v: &[f64]) -> Spread {
        if v.is_empty() {
            return Spread::default();
        }
        let mut s = v.to_vec();
        s.sort_by(f64::total_cmp);
        Spread {
            median: s.get(s.len() / 2).copied(),
            max: s.last().copied(),
        }
    }
}

/// One ground-truth sample (about once per second).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SamplePoint {
    pub t_s: f64,
    /// True max pairwise skew among correct, serving nodes.
    pub skew_ns: Option<i64>,
    pub correct_serving: usize,
    pub synced: usize,
    pub quarantined: usize,
    pub starting: usize,
    /// Sum over nodes of members each is connected to (full mesh = n(n−1)).
    pub connections: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeRecord {
    pub name: String,
    pub role: String,
    pub cpu_s: Option<f64>,
    pub max_rss_bytes: Option<u64>,
    pub exit_code: Option<i32>,
    pub ended_early_at_s: Option<f64>,
    pub quarantines: u64,
    pub first_quarantine_at_s: Option<f64>,
    pub final_state: String,
    /// Correct nodes that list it as a suspect at the end.
    pub suspected_by: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Summary {
    /// Max true skew among correct serving nodes after convergence.
    pub max_skew_ns: Option<i64>,
    pub p50_skew_ns: Option<i64>,
    pub converged_after_s: Option<f64>,
    pub mesh_formed_after_s: Option<f64>,
    pub false_quarantines: usize,
    pub expected_quarantines: usize,
    pub observed_quarantines: usize,
    /// Faulty nodes listed as suspects by at least half the correct nodes.
    pub faulty_suspected: usize,
    /// Correct or clock-fault nodes listed as suspects by at least half the correct nodes.
    pub correct_suspected: usize,
    pub crashed: usize,
    pub unclean_exits: usize,
    pub cpu_s_per_node: Spread,
    pub max_rss_bytes_per_node: Spread,
    pub exchanges_answered: u64,
    pub readings_accepted: u64,
    pub exchanges_per_node_per_round: f64,
    /// bftime frame bytes (no Noise/Yamux/TCP overhead) sent per node per round.
    pub frame_bytes_per_node_per_round: f64,
    /// All nodes' CPU over the whole run (start-up and the harness's polling of their
    /// APIs included) divided by the exchanges answered: both ends of an exchange.
    pub cpu_per_exchange_us: Option<f64>,
    /// The same from convergence to the end: no mesh formation or start-up.
    #[serde(default)]
    pub cpu_per_exchange_steady_us: Option<f64>,
    /// Threads of all nodes put to sleep and woken again (voluntary context switches),
    /// per exchange answered, from convergence to the end: the cost CPU per exchange
    /// mostly follows on a shared host, and a count that does not move with its speed.
    #[serde(default)]
    pub wakeups_per_exchange_steady: Option<f64>,
    pub samples: usize,
    pub elapsed_s: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunReport {
    pub command: String,
    pub nodes: usize,
    pub faulty: usize,
    pub faults: String,
    pub clock_faults: usize,
    pub duration_s: f64,
    pub round_period_ms: u64,
    pub round_period_reason: String,
    pub precision_ns: i64,
    pub seed: u64,
    pub host_cores: usize,
    pub summary: Summary,
    pub passed: bool,
    pub failures: Vec<String>,
    pub events: Vec<(f64, String)>,
    pub series: Vec<SamplePoint>,
    pub per_node: Vec<NodeRecord>,
    /// The audit of every node's log after the run.
    #[serde(default)]
    pub audit: super::audit::AuditSummary,
}

fn opt_s(v: Option<f64>) -> String {
    v.map(|s| format!("{s:.1} s"))
        .unwrap_or_else(|| "never".into())
}

fn opt_ns(v: Option<i64>) -> String {
    v.map(fmt_ns).unwrap_or_else(|| "-".into())
}

fn mib(v: Option<f64>) -> String {
    v.map(|b| format!("{:.1} MiB", b / 1048576.0))
        .unwrap_or_else(|| "-".into())
}

impl RunReport {
    /// The Markdown summary.
    pub fn markdown(&self) -> String {
        let s = &self.summary;
        let mut m = String::new();
        let _ = writeln!(
            m,
            "# bftime testnet: {} nodes, f = {} `{}`, {} clock faults\n",
            self.nodes, self.faulty, self.faults, self.clock_faults
        );
        let _ = writeln!(
            m,
            "**{}**{}\n",
            if self.passed { "PASSED" } else { "FAILED" },
            if self.failures.is_empty() {
                String::new()
            } else {
                format!(": {}", self.failures.join("; "))
            }
        );
        let _ = writeln!(m, "Reproduce: `{}`\n", self.command);
        let _ = writeln!(
            m,
            "Host: {} cores. Round period {} ms ({}). Bound Π = {}.\n",
            self.host_cores,
            self.round_period_ms,
            self.round_period_reason,
            fmt_ns(self.precision_ns)
        );
        let _ = writeln!(m, "| figure | value |\n|---|---|");
        let rows = [
            ("true max skew after convergence", opt_ns(s.max_skew_ns)),
            ("true p50 skew after convergence", opt_ns(s.p50_skew_ns)),
            ("converged after", opt_s(s.converged_after_s)),
            ("full mesh formed after", opt_s(s.mesh_formed_after_s)),
            ("false quarantines", s.false_quarantines.to_string()),
            (
                "clock-fault quarantines (observed / expected)",
                format!("{} / {}", s.observed_quarantines, s.expected_quarantines),
            ),
            (
                "faulty nodes suspected by ≥ half the correct nodes",
                format!("{} / {}", s.faulty_suspected, self.faulty),
            ),
            ("honest nodes suspected", s.correct_suspected.to_string()),
            ("processes that ended early", s.crashed.to_string()),
            ("unclean shutdowns", s.unclean_exits.to_string()),
            (
                "CPU per exchange, whole run (both ends)",
                s.cpu_per_exchange_us
                    .map(|u| format!("{u:.0} µs"))
                    .unwrap_or_else(|| "-".into()),
            ),
            (
                "CPU per exchange after convergence",
                s.cpu_per_exchange_steady_us
                    .map(|u| format!("{u:.0} µs"))
                    .unwrap_or_else(|| "-".into()),
            ),
            (
                "wake-ups per exchange after convergence (all threads)",
                s.wakeups_per_exchange_steady
                    .map(|w| format!("{w:.2}"))
                    .unwrap_or_else(|| "-".into()),
            ),
            (
                "CPU per node (median / max)",
                format!(
                    "{} / {}",
                    s.cpu_s_per_node
                        .median
                        .map(|v| format!("{v:.1} s"))
                        .unwrap_or_default(),
                    s.cpu_s_per_node
                        .max
                        .map(|v| format!("{v:.1} s"))
                        .unwrap_or_default()
                ),
            ),
            (
                "max RSS per node (median / max)",
                format!(
                    "{} / {}",
                    mib(s.max_rss_bytes_per_node.median),
                    mib(s.max_rss_bytes_per_node.max)
                ),
            ),
            (
                "exchanges answered per node per round",
                format!("{:.1}", s.exchanges_per_node_per_round),
            ),
            (
                "frame bytes sent per node per round",
                format!("{:.0}", s.frame_bytes_per_node_per_round),
            ),
            (
                "audit logs verified (embedded readings)",
                format!(
                    "{} / {} ({})",
                    self.audit.logs_verified, self.nodes, self.audit.embedded_readings_verified
                ),
            ),
            (
                "audit log bytes per node per round",
                format!("{:.0}", self.audit.bytes_per_node_per_round),
            ),
            (
                "members proven to misbehave (proofs)",
                if self.audit.proofs.is_empty() {
                    "none".to_owned()
                } else {
                    let mut accused: Vec<&str> =
                        self.audit.proofs.iter().map(|p| p.0.as_str()).collect();
                    accused.dedup();
                    let mut kinds: Vec<&str> =
                        self.audit.proofs.iter().map(|p| p.1.as_str()).collect();
                    kinds.sort_unstable();
                    kinds.dedup();
                    format!("{} ({})", accused.len(), kinds.join(", "))
                },
            ),
            (
                "correct members accused",
                self.audit.correct_accused.len().to_string(),
            ),
            ("ground-truth samples", s.samples.to_string()),
            ("elapsed", format!("{:.1} s", s.elapsed_s)),
        ];
        for (k, v) in rows {
            let _ = writeln!(m, "| {k} | {v} |");
        }
        if !self.events.is_empty() {
            let _ = writeln!(m, "\n## Events\n");
            for (t, e) in &self.events {
                let _ = writeln!(m, "- {t:.1} s: {e}");
            }
        }
        let _ = writeln!(m, "\n![true skew over time](skew.svg)");
        m
    }

    /// Events for the plot: quarantines of faulty nodes at one instant are one marker.
    fn plot_events(&self) -> Vec<(f64, String)> {
        let mut out: Vec<(f64, String)> = Vec::new();
        let mut faulty: Vec<(f64, usize)> = Vec::new();
        for (t, e) in &self.events {
            if e.contains("(faulty:") {
                match faulty.last_mut() {
                    Some((t0, count)) if (t - *t0).abs() < 2.0 => *count += 1,
                    _ => faulty.push((*t, 1)),
                }
            } else {
                out.push((*t, e.clone()));
            }
        }
        for (t, count) in faulty {
            out.push((t, format!("{count} faulty node(s) quarantined")));
        }
        out.sort_by(|a, b| a.0.total_cmp(&b.0));
        out
    }

    pub fn svg(&self) -> String {
        let series: Vec<(f64, Option<i64>)> =
            self.series.iter().map(|p| (p.t_s, p.skew_ns)).collect();
        let events = self.plot_events();
        plot::render(&plot::Plot {
            title: &format!(
                "bftime testnet: {} nodes, f = {} {}, {} clock faults, P = {} ms",
                self.nodes, self.faulty, self.faults, self.clock_faults, self.round_period_ms
            ),
            series: &series,
            bound_ns: self.precision_ns,
            converged_s: self.summary.converged_after_s,
            events: &events,
            duration_s: self.summary.elapsed_s.max(self.duration_s),
        })
    }

    /// Reads a `report.json`.
    pub fn read(path: &Path) -> anyhow::Result<RunReport> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        serde_json::from_str(&text)
            .with_context(|| format!("{} is not a testnet report", path.display()))
    }

    /// Writes `report.json`, `report.md` and `skew.svg` into `dir`.
    pub fn write(&self, dir: &Path) -> anyhow::Result<()> {
        let json = serde_json::to_string_pretty(self)?;
        std::fs::write(dir.join("report.json"), json)
            .with_context(|| format!("cannot write into {}", dir.display()))?;
        std::fs::write(dir.join("report.md"), self.markdown())?;
        std::fs::write(dir.join("skew.svg"), self.svg())?;
        Ok(())
    }
}
