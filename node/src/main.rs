//! The `bftime` node binary. The networked driver (libp2p mesh, HTTP API, metrics,
//! quarantine hook) is the next issue; until then this binary only says so, and the
//! protocol runs in the simulator (`bftime-testnet sim`).

use std::process::ExitCode;

fn main() -> ExitCode {
    eprintln!(
        "bftime {}: the networked node is not built yet; run the simulator instead:\n  \
         cargo run --release -p bftime-testnet -- sim --help",
        env!("CARGO_PKG_VERSION")
    );
    ExitCode::from(2)
}
