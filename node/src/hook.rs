//! The quarantine hook (design §5): a shell command the operator chose (`systemctl stop
//! app`, a pager call…), run with the reason in its environment. It runs on its own
//! task with a time limit, so a hung hook cannot stall the node.

use std::time::Duration;

use tokio::process::Command;

/// How long a hook may run before it is killed.
pub const HOOK_TIMEOUT: Duration = Duration::from_secs(30);

/// What the hook is told.
#[derive(Debug, Clone)]
pub struct HookEnv {
    pub node: String,
    pub round: u64,
    pub code: String,
    pub reason: String,
}

/// Runs `sh -c hook` with `BFTIME_NODE`, `BFTIME_ROUND`, `BFTIME_QUARANTINE_CODE` and
/// `BFTIME_QUARANTINE_REASON` set; logs how it ended.
pub async fn run(hook: String, env: HookEnv) {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(&hook)
        .env("BFTIME_NODE", &env.node)
        .env("BFTIME_ROUND", env.round.to_string())
        .env("BFTIME_QUARANTINE_CODE", &env.code)
        .env("BFTIME_QUARANTINE_REASON", &env.reason)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(%hook, error = %e, "cannot start the quarantine hook");
            return;
        }
    };
    match tokio::time::timeout(HOOK_TIMEOUT, child.wait()).await {
        Ok(Ok(status)) if status.success() => tracing::info!(%hook, "quarantine hook finished"),
        Ok(Ok(status)) => tracing::error!(%hook, %status, "quarantine hook failed"),
        Ok(Err(e)) => tracing::error!(%hook, error = %e, "quarantine hook failed"),
        Err(_) => {
            let _ = child.kill().await;
            tracing::error!(%hook, timeout = ?HOOK_TIMEOUT, "quarantine hook timed out and was killed");
        }
    }
}
