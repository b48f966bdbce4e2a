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
    /// `quarantined` (the quarantine hook) or `rejoined` (the rejoin hook).
    pub event: &'static str,
    pub node: String,
    pub round: u64,
    /// The quarantine's code and reason (for `rejoined`: the quarantine it ends).
    pub code: String,
    pub reason: String,
}

/// Kills a hook's whole process group when dropped, unless disarmed: a hook that runs
/// too long, or is still running when the node stops (its task is then dropped), goes
/// with everything it started (`sh -c 'curl …'` leaves `curl` running if only the shell
/// is killed). A hook that ends on its own keeps what it put in the background.
struct GroupKiller(Option<rustix::process::Pid>);

impl Drop for GroupKiller {
    fn drop(&mut self) {
        if let Some(group) = self.0.take() {
            let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
        }
    }
}

/// Runs `sh -c hook` in a process group of its own, with `BFTIME_EVENT`, `BFTIME_NODE`,
/// `BFTIME_ROUND`, `BFTIME_QUARANTINE_CODE` and `BFTIME_QUARANTINE_REASON` set; logs how
/// it ended.
pub async fn run(hook: String, env: HookEnv) {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(&hook)
        .env("BFTIME_EVENT", env.event)
        .env("BFTIME_NODE", &env.node)
        .env("BFTIME_ROUND", env.round.to_string())
        .env("BFTIME_QUARANTINE_CODE", &env.code)
        .env("BFTIME_QUARANTINE_REASON", &env.reason)
        .stdin(std::process::Stdio::null())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(%hook, event = env.event, error = %e, "cannot start the hook");
            return;
        }
    };
    // The group's id is the shell's pid (`process_group(0)`).
    let mut killer = GroupKiller(
        child
            .id()
            .and_then(|id| i32::try_from(id).ok())
            .and_then(rustix::process::Pid::from_raw),
    );
    let waited = tokio::time::timeout(HOOK_TIMEOUT, child.wait()).await;
    if matches!(waited, Ok(Ok(_))) {
        killer.0 = None;
    }
    drop(killer);
    match waited {
        Ok(Ok(status)) if status.success() => {
            tracing::info!(%hook, event = env.event, "hook finished")
        }
        Ok(Ok(status)) => tracing::error!(%hook, event = env.event, %status, "hook failed"),
        Ok(Err(e)) => tracing::error!(%hook, event = env.event, error = %e, "hook failed"),
        Err(_) => {
            let _ = child.kill().await;
            tracing::error!(%hook, event = env.event, timeout = ?HOOK_TIMEOUT, "hook timed out and was killed");
        }
    }
}
