//! Process exit codes (documented in `bftime --help` and the README). Scripts and
//! systemd units (`RestartPreventExitStatus=`) rely on them.

/// Clean stop.
pub const OK: i32 = 0;
/// A runtime failure (cannot bind a port, the network stack failed…).
pub const FAILURE: i32 = 1;
/// Bad command-line usage (clap's own code).
pub const USAGE: i32 = 2;
/// `bftime now`: the node answered but does not serve time (starting or quarantined).
pub const NOT_SERVING: i32 = 3;
/// The node quarantined itself and `exit_on_quarantine` is set.
pub const QUARANTINED: i32 = 10;
/// `bftime status`/`now`: the node API could not be reached (sysexits EX_UNAVAILABLE).
pub const UNAVAILABLE: i32 = 69;
/// A configuration error (sysexits EX_CONFIG).
pub const CONFIG: i32 = 78;
/// `bftime audit`: a log is damaged, or a proof does not hold (sysexits EX_DATAERR).
pub const BAD_DATA: i32 = 65;
/// `bftime audit evidence`: the logs prove that some member misbehaved.
pub const MISBEHAVIOUR_PROVEN: i32 = 9;
