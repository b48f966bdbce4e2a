//! `bftime-testnet`: the deterministic simulator (`sim`), and the table of every
//! strategy against every algorithm (`table`).

use std::io::IsTerminal as _;
use std::process::ExitCode;

use bftime_protocol::Algorithm;
use bftime_testnet::{CryptoChoice, Scenario, Simulation, Strategy};
use clap::{Parser, Subcommand, ValueEnum};

#[derive(Parser, Debug)]
#[command(
    name = "bftime-testnet",
    version,
    about = "Simulate and test bftime clusters",
    long_about = "Simulate and test bftime clusters.\n\n\
        `sim` runs the real protocol core for N nodes in virtual time: seeded, reproducible, \
        faster than real time. It prints the true skew among correct nodes (max over rounds after \
        convergence), the convergence round, false quarantines and how many faulty nodes were \
        caught. While it runs, a terminal's stderr shows the round reached.\n\nSet BFTIME_SIM_TRACE=1 to print every round's true skew and every state change \
        to stderr.\n\nExample:\n  bftime-testnet sim --nodes 250 --faulty 83 --strategy mixed --rounds 200 --seed 1"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run one simulated cluster and report its true skew.
    // Negative numbers are values (`--delay-ms -1`), so the scenario's own check can say
    // what is wrong with them.
    #[command(allow_negative_numbers = true)]
    Sim(SimArgs),
    /// Run every strategy against every algorithm and print a Markdown table.
    #[command(allow_negative_numbers = true)]
    Table(TableArgs),
    /// Spawn N real `bftime run` processes on loopback with drifting, stepping and lying
    /// clocks, measure the true skew every second, and write report.json, report.md
    /// and skew.svg. Exits 0 only if the correct nodes stayed within Π after
    /// convergence, no correct node quarantined, every clock-fault node did, and every
    /// process shut down cleanly.
    Run(RunArgs),
    /// Re-render report.md and skew.svg from a run's report.json (after an upgrade, or
    /// to redraw a copied report).
    Report {
        /// The run's folder (holding report.json)
        dir: std::path::PathBuf,
    },
}

#[derive(clap::Args, Debug)]
struct RunArgs {
    /// Node processes to start
    #[arg(long, default_value_t = 250)]
    nodes: usize,
    /// Byzantine nodes among them (the protocol tolerates ⌊(n−1)/3⌋)
    #[arg(long, default_value_t = 83)]
    faulty: usize,
    /// What the faulty nodes do: mixed, liar, two-faced, boundary, random, mute, slow,
    /// replay, forger (a liar whose signatures are broken) or none
    #[arg(long, default_value = "mixed", value_parser = parse_faults)]
    faults: bftime_testnet::localnet::Faults,
    /// Honest nodes whose clock steps or stalls by 2 s at 65% of the run: each must
    /// quarantine, and no other correct node may
    #[arg(long, default_value_t = 0)]
    clock_faults: usize,
    /// How long to run, e.g. 120s or 3m [default: 120 s, or 20 rounds + 30 s if longer]
    #[arg(long, value_parser = parse_duration)]
    duration: Option<std::time::Duration>,
    /// Round period P; by default chosen from n and the host's cores (printed)
    #[arg(long)]
    round_period_ms: Option<u64>,
    /// Precision bound Π in milliseconds
    #[arg(long, default_value_t = 200)]
    precision_ms: u64,
    /// Seed for clock offsets, drifts and behaviours
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Output folder [default: target/testnet/<UTC timestamp>]
    #[arg(long)]
    out: Option<std::path::PathBuf>,
    /// The bftime binary [default: next to this binary]
    #[arg(long)]
    bftime: Option<std::path::PathBuf>,
    /// First loopback port (peers, then APIs); 0 finds a free block
    #[arg(long, default_value_t = 0)]
    base_port: u16,
    /// Print the report as JSON on stdout
    #[arg(long)]
    json: bool,
}

fn parse_faults(s: &str) -> Result<bftime_testnet::localnet::Faults, String> {
    s.parse()
}

/// `120s`, `3m`, `1h` or a bare number of seconds.
fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let s = s.trim();
    let (num, mult) = if let Some(v) = s.strip_suffix("ms") {
        (v, 0.001)
    } else if let Some(v) = s.strip_suffix('s') {
        (v, 1.0)
    } else if let Some(v) = s.strip_suffix('m') {
        (v, 60.0)
    } else if let Some(v) = s.strip_suffix('h') {
        (v, 3600.0)
    } else {
        (s, 1.0)
    };
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a duration; write e.g. 120s, 3m or 1h"))?;
    if !(v.is_finite() && v > 0.0) {
        return Err(format!("{s:?} must be positive"));
    }
    Ok(std::time::Duration::from_secs_f64(v * mult))
}

#[derive(ValueEnum, Debug, Clone, Copy)]
enum AlgorithmArg {
    Wl,
    Berkeley,
    Median,
    Byztimed,
}

impl From<AlgorithmArg> for Algorithm {
    fn from(a: AlgorithmArg) -> Algorithm {
        match a {
            AlgorithmArg::Wl => Algorithm::Wl,
            AlgorithmArg::Berkeley => Algorithm::Berkeley,
            AlgorithmArg::Median => Algorithm::Median,
            AlgorithmArg::Byztimed => Algorithm::Byztimed,
        }
    }
}

#[derive(ValueEnum, Debug, Clone, Copy)]
enum CryptoArg {
    /// ed25519 up to 31 nodes, the fast stand-in above
    Auto,
    Ed25519,
    /// A keyed-hash stand-in (NOT secure): for very large runs only
    Fast,
}

#[derive(clap::Args, Debug, Clone)]
struct ScenarioArgs {
    /// Members in the cluster
    #[arg(long, default_value_t = 250)]
    nodes: usize,
    /// Round period P in milliseconds
    #[arg(long, default_value_t = 1000.0)]
    round_period_ms: f64,
    /// Precision bound Π in milliseconds
    #[arg(long, default_value_t = 200.0)]
    precision_ms: f64,
    /// Mean one-way network delay in milliseconds
    #[arg(long, default_value_t = 1.0)]
    delay_ms: f64,
    /// Extra one-way delay, uniform in [0, J] milliseconds
    #[arg(long, default_value_t = 0.2)]
    jitter_ms: f64,
    /// Difference between the two directions of every path, in milliseconds
    #[arg(long, default_value_t = 0.1)]
    asymmetry_ms: f64,
    /// How much longer every request takes than every answer, in milliseconds: a bias of
    /// the software stack (a responder that reads its clock late), shared by every pair
    #[arg(long, default_value_t = 0.0)]
    role_asymmetry_ms: f64,
    /// Oscillator frequency errors, uniform in ±PPM
    #[arg(long, default_value_t = 100.0)]
    drift_ppm: f64,
    /// Amplitude of each oscillator's slow frequency wander, in ppm
    #[arg(long, default_value_t = 1.0)]
    wander_ppm: f64,
    /// Initial clock offsets, uniform in ±O milliseconds
    #[arg(long, default_value_t = 10_000.0)]
    initial_offset_ms: f64,
    /// Probability that any message is lost
    #[arg(long, default_value_t = 0.0)]
    loss: f64,
    /// Honest nodes whose clock steps or stalls halfway (they must quarantine)
    #[arg(long, default_value_t = 0)]
    clock_faults: usize,
    /// Nodes cut off from the network for --partition-rounds rounds, from a third of the run
    #[arg(long, default_value_t = 0)]
    partition_nodes: usize,
    /// How many rounds --partition-nodes stay cut off
    #[arg(long, default_value_t = 0)]
    partition_rounds: u64,
    /// Size of the liars' lie (liar, two-faced, random, forger), in milliseconds
    #[arg(long, default_value_t = 50.0)]
    lie_ms: f64,
    /// Signature suite
    #[arg(long, value_enum, default_value_t = CryptoArg::Auto)]
    crypto: CryptoArg,
    /// Print exactly one JSON object instead of the readable summary
    #[arg(long)]
    json: bool,
}

/// Threads for a simulation: `--threads`, else every core (at most
/// [`AUTO_THREADS_MAX`]) from [`ALL_CORES_FROM_NODES`] nodes up, else one.
fn sim_threads(asked: Option<u16>, nodes: usize) -> usize {
    match asked {
        Some(t) => usize::from(t),
        None if nodes >= ALL_CORES_FROM_NODES => {
            std::thread::available_parallelism().map_or(1, |c| c.get().min(AUTO_THREADS_MAX))
        }
        None => 1,
    }
}

/// The most threads a run takes by itself. Every window ends with all threads meeting and
/// trading mail, so many threads with few nodes each may cost more than they give; only
/// one and two threads have been measured (`--threads` asks for more).
const AUTO_THREADS_MAX: usize = 4;

/// From this many nodes a run's windows are busy enough for threads to pay: 250 nodes ×
/// 1000 rounds took 19.7 s on two threads against 28.3 s on one (2-core host); 100
/// nodes gained 6 %, and 31 (real ed25519, small windows) ran 12 % slower.
const ALL_CORES_FROM_NODES: usize = 200;

#[derive(clap::Args, Debug)]
struct SimArgs {
    /// Byzantine members actually present (the protocol tolerates ⌊(n−1)/3⌋)
    #[arg(long, default_value_t = 83)]
    faulty: usize,
    /// What the faulty members do
    #[arg(long, default_value = "mixed", value_parser = parse_strategy)]
    strategy: Strategy,
    /// Rounds to simulate
    #[arg(long, default_value_t = 100)]
    rounds: u64,
    /// Seed: the same seed and flags give the same run
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Algorithm: wl (bftime) or a baseline
    #[arg(long, value_enum, default_value_t = AlgorithmArg::Wl)]
    algorithm: AlgorithmArg,
    /// Threads for busy stretches of the run [default: every core, at most 4, from 200
    /// nodes up; else 1]. The report is identical for any value; only wall_ms changes
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=64))]
    threads: Option<u16>,
    #[command(flatten)]
    scenario: ScenarioArgs,
}

#[derive(clap::Args, Debug)]
struct TableArgs {
    /// Byzantine members
    #[arg(long, default_value_t = 83)]
    faulty: usize,
    /// Rounds to simulate for each row
    #[arg(long, default_value_t = 100)]
    rounds: u64,
    /// Seed: every row runs the same scenario from it
    #[arg(long, default_value_t = 1)]
    seed: u64,
    #[command(flatten)]
    scenario: ScenarioArgs,
}

fn parse_strategy(s: &str) -> Result<Strategy, String> {
    s.parse()
}

fn scenario(
    a: &ScenarioArgs,
    faulty: usize,
    strategy: Strategy,
    rounds: u64,
    seed: u64,
    algorithm: Algorithm,
) -> Scenario {
    Scenario {
        nodes: a.nodes,
        faulty,
        strategy,
        rounds,
        seed,
        algorithm,
        round_period_ms: a.round_period_ms,
        precision_ms: a.precision_ms,
        delay_ms: a.delay_ms,
        jitter_ms: a.jitter_ms,
        asymmetry_ms: a.asymmetry_ms,
        role_asymmetry_ms: a.role_asymmetry_ms,
        drift_ppm: a.drift_ppm,
        wander_ppm: a.wander_ppm,
        initial_offset_ms: a.initial_offset_ms,
        loss: a.loss,
        clock_faults: a.clock_faults,
        partition_nodes: a.partition_nodes,
        partition_rounds: a.partition_rounds,
        lie_ms: a.lie_ms,
        crypto: match a.crypto {
            CryptoArg::Auto => CryptoChoice::Auto,
            CryptoArg::Ed25519 => CryptoChoice::Ed25519,
            CryptoArg::Fast => CryptoChoice::Fast,
        },
    }
}

fn fmt_ms(ns: i64) -> String {
    format!("{:.3}", ns as f64 / 1e6)
}

/// mimalloc rather than the system allocator: a 250-node run is 17–19 % faster with it
/// (README: simulator speed). Not for the allocation rate, which is low in steady state
/// (callgrind: about one malloc or free per seven exchanges); the run is bound by memory,
/// and the likelier cause, not established, is where the per-node arrays end up. The
/// node binary keeps the system allocator (no gain measured there).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A usage error on one line, as scripts and the issue ask: clap's message with its
/// hints folded in, without the usage block and the pointer to `--help`.
fn one_line(e: &clap::Error) -> String {
    e.to_string()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("Usage:") && !l.starts_with("For more"))
        .collect::<Vec<_>>()
        .join("; ")
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        // Run with no command: clap's help, as it prints it.
        Err(e) if e.kind() == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            return ExitCode::from(2);
        }
        Err(e) if e.use_stderr() => {
            eprintln!("{}", one_line(&e));
            return ExitCode::from(2);
        }
        Err(e) => {
            // --help and --version.
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
    };
    match cli.command {
        Command::Sim(a) => {
            let sc = scenario(
                &a.scenario,
                a.faulty,
                a.strategy,
                a.rounds,
                a.seed,
                a.algorithm.into(),
            );
            let threads = sim_threads(a.threads, a.scenario.nodes);
            let sim = match Simulation::new(sc) {
                Ok(s) => s
                    .with_threads(threads)
                    .with_progress(std::io::stderr().is_terminal()),
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(2);
                }
            };
            let report = sim.run();
            if a.scenario.json {
                match serde_json::to_string(&report) {
                    Ok(s) => println!("{s}"),
                    Err(e) => {
                        eprintln!("error: cannot encode report: {e}");
                        return ExitCode::FAILURE;
                    }
                }
            } else {
                let plural = if threads == 1 { "" } else { "s" };
                println!("{} on {threads} thread{plural}", report.human());
            }
            ExitCode::SUCCESS
        }
        Command::Table(a) => {
            let algorithms = [
                Algorithm::Wl,
                Algorithm::Byztimed,
                Algorithm::Median,
                Algorithm::Berkeley,
            ];
            println!(
                "| strategy | algorithm | max skew after convergence (ms) | p50 (ms) | converged round | false quarantines | faulty suspected | rate error (ppm) |"
            );
            println!("|---|---|---|---|---|---|---|---|");
            for strategy in Strategy::ALL {
                for algorithm in algorithms {
                    let sc = scenario(&a.scenario, a.faulty, strategy, a.rounds, a.seed, algorithm);
                    let r = match Simulation::new(sc) {
                        Ok(s) => s.run(),
                        Err(e) => {
                            eprintln!("error: {e}");
                            return ExitCode::from(2);
                        }
                    };
                    let conv = r
                        .converged_round
                        .map_or("never".to_owned(), |x| x.to_string());
                    println!(
                        "| {} | {} | {} | {} | {} | {} | {}/{} | {:.1} |",
                        r.strategy,
                        r.algorithm,
                        fmt_ms(r.max_skew_ns),
                        fmt_ms(r.p50_skew_ns),
                        conv,
                        r.false_quarantines,
                        r.faulty_suspected,
                        r.faulty,
                        r.max_rate_error_ppm
                    );
                }
            }
            ExitCode::SUCCESS
        }
        Command::Report { dir } => {
            match bftime_testnet::localnet::report::RunReport::read(&dir.join("report.json"))
                .and_then(|r| r.write(&dir).map(|()| r))
            {
                Ok(r) => {
                    print!("{}", r.markdown());
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::from(2)
                }
            }
        }
        Command::Run(a) => {
            let opts = bftime_testnet::localnet::RunOptions {
                nodes: a.nodes,
                faulty: a.faulty,
                faults: a.faults,
                clock_faults: a.clock_faults,
                duration: a.duration,
                round_period_ms: a.round_period_ms,
                precision_ms: a.precision_ms,
                seed: a.seed,
                out: a.out,
                bftime: a.bftime,
                base_port: a.base_port,
                progress: true,
            };
            match bftime_testnet::localnet::run(&opts) {
                Ok(report) => {
                    if a.json {
                        match serde_json::to_string(&report) {
                            Ok(j) => println!("{j}"),
                            Err(e) => eprintln!("error: {e}"),
                        }
                    } else {
                        print!("{}", report.markdown());
                    }
                    if report.passed {
                        eprintln!("PASSED");
                        ExitCode::SUCCESS
                    } else {
                        eprintln!("FAILED: {}", report.failures.join("; "));
                        ExitCode::FAILURE
                    }
                }
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::from(2)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threads_default_to_every_core_only_for_large_runs() {
        assert_eq!(sim_threads(Some(3), 31), 3, "an explicit --threads wins");
        assert_eq!(sim_threads(Some(1), 1000), 1);
        assert_eq!(sim_threads(None, 199), 1);
        let cores =
            std::thread::available_parallelism().map_or(1, |c| c.get().min(AUTO_THREADS_MAX));
        assert_eq!(sim_threads(None, ALL_CORES_FROM_NODES), cores);
    }
}
