//! The `bftime` node: a thin driver around the pure protocol core.
//!
//! - [`config`]: `cluster.toml` and `node.toml`, strict, with errors that name the field.
//! - [`init`]: `keygen` and `init-cluster` (the testnet uses the same code).
//! - [`localclock`]: `CLOCK_MONOTONIC_RAW`, or the testnet's simulated oscillator.
//! - [`wire`] and [`net`]: framing, and libp2p (TCP + Noise + Yamux, member allow-list,
//!   one long-lived stream per peer).
//! - [`driver`]: the event loop that feeds the core and executes its actions.
//! - [`api`], [`view`], [`metrics`], [`client`]: `/now`, `/status`, `/metrics` and the CLI
//!   side of them.
//! - [`hook`], [`systemd`], [`exit`]: what happens on quarantine and how the process ends.
//! - [`testing`], [`byzantine`]: the testnet-only `[testing]` section.

pub mod api;
pub mod audit;
pub mod byzantine;
pub mod client;
pub mod config;
pub mod driver;
pub mod exit;
pub mod hook;
pub mod init;
pub mod localclock;
pub mod metrics;
pub mod net;
pub mod systemd;
pub mod testing;
pub mod view;
pub mod wire;
