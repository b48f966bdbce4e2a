//! bftime's test network: a deterministic discrete-event simulator that drives the
//! real protocol core, and a local multi-process testnet of real `bftime` processes
//! ([`localnet`], `bftime-testnet run`).
//!
//! ```
//! use bftime_testnet::{Scenario, Simulation, Strategy};
//! let sc = Scenario { nodes: 7, faulty: 2, strategy: Strategy::Liar, rounds: 20, ..Scenario::default() };
//! let report = Simulation::new(sc).unwrap().run();
//! assert_eq!(report.false_quarantines, 0);
//! assert!(report.max_skew_ns < report.precision_ns);
//! ```

pub mod clockmodel;
pub mod localnet;
pub mod packed;
mod progress;
pub mod queue;
pub mod report;
pub mod scenario;
pub mod sim;
pub mod strategy;

pub use report::SimReport;
pub use scenario::{CryptoChoice, Scenario, ScenarioError};
pub use sim::Simulation;
pub use strategy::Strategy;
