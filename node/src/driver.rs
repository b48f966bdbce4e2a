//! The driver (design §2): one loop that turns timers, network events and API requests
//! into calls on the pure protocol core, and executes the actions the core returns.
//! Everything the node decides is decided in `protocol`; this file only moves bytes,
//! reads the clock and runs the quarantine action.

use std::sync::Arc;
use std::time::Duration;

use bftime_crypto::Ed25519Suite;
use bftime_protocol::{
    Action, Core, CoreConfig, LocalTime, MemberId, RejectReason, ResponseOutcome, SyncState,
    Transition,
};
use rand::SeedableRng;
use rand::rngs::StdRng;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use crate::api::{self, ApiRequest};
use crate::audit::journal::Journal;
use crate::byzantine::{Answer, Responder};
use crate::config::NodeConfig;
use crate::exit;
use crate::hook::{self, HookEnv};
use crate::localclock::LocalClock;
use crate::net::{self, NetEvent, Network, Outgoing};
use crate::systemd::Systemd;
use crate::view::{NetCounters, NowSource, StatusView};
use crate::wire;

/// Longest the loop sleeps without looking at the clock (a simulated or stalled clock
/// may not advance as the host's does).
const MAX_SLEEP: Duration = Duration::from_millis(500);
/// Time given to leaving notices to reach peers before the network stops.
const LEAVING_FLUSH: Duration = Duration::from_millis(300);

/// How long a stop on SIGTERM/SIGINT waits for a quarantine hook still running, counted
/// from the signal: the stop must end within 2 s (issue #3), and the example unit's
/// `TimeoutStopSec` would otherwise kill the node before its audit log is closed. A
/// hook still running then is killed and logged; a node that exits on its own after a
/// quarantine (`exit_on_quarantine`) gives its hook the whole [`hook::HOOK_TIMEOUT`].
const HOOK_GRACE_ON_SIGNAL: Duration = Duration::from_millis(1200);

/// A stop on SIGTERM/SIGINT ends within this of the signal: closing the network and
/// the API share what the leaving notice and the hooks left of it. (Closing the audit
/// log is not cut short: it is the record of the stop.)
const STOP_BUDGET_ON_SIGNAL: Duration = Duration::from_millis(1800);

struct Driver {
    cfg: NodeConfig,
    core: Core,
    clock: LocalClock,
    rng: StdRng,
    net: Network,
    responder: Responder,
    timer_at: LocalTime,
    quarantines: u64,
    /// The code and reason of the quarantine the node is in or rejoining from (the
    /// rejoin hook is told which one it ends).
    quarantined_for: Option<(String, String)>,
    requests_refused: u64,
    started: Instant,
    systemd: Systemd,
    hooks: Vec<tokio::task::JoinHandle<()>>,
    exit_code: Option<i32>,
    journal: Option<Journal>,
    /// What `/now` is served from (published after every timer event, the only events
    /// that change it).
    now_tx: watch::Sender<NowSource>,
}

/// Runs the node until `shutdown` resolves or the node exits on quarantine; returns
/// the process exit code.
pub async fn run(
    cfg: NodeConfig,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<i32> {
    let clock = match &cfg.testing {
        Some(t) => {
            tracing::warn!(
                behaviour = %t.behaviour,
                offset_ms = t.initial_offset_ms,
                drift_ppm = t.drift_ppm,
                "TESTING MODE: simulated clock and test behaviour; never use this in production"
            );
            LocalClock::simulated(t)
        }
        None => LocalClock::host(),
    };
    for warning in cfg.warnings() {
        tracing::warn!("{warning}");
    }
    let key = cfg.key.clone();
    let core_cfg = CoreConfig {
        me: cfg.me,
        members: cfg.members.iter().map(|m| m.key).collect::<Vec<_>>().into(),
        cluster: cfg.cluster_tag,
        params: cfg.params.clone(),
        detailed_summaries: cfg.audit_log.is_some(),
        incarnation: rand::random(),
        batch_verification: true,
    };
    let incarnation = core_cfg.incarnation;
    let now = clock.now();
    let (core, actions) = Core::new(
        core_cfg,
        Box::new(key.clone()),
        Arc::new(Ed25519Suite),
        now,
        clock.initial_offset(),
    )
    .map_err(|e| anyhow::anyhow!("cannot start the protocol core: {e}"))?;
    // The log is locked and checked first, changing nothing (a second process on it,
    // damage, another cluster stop the node here); then the sockets; only a node that
    // can run writes to its log (a port in use stops it before any start record).
    let prepared = crate::audit::prepare_node_log(&cfg)?;
    let net = net::start(&cfg, clock.clone()).await?;
    let (api_tx, mut api_rx) = mpsc::channel(64);
    let (stop_tx, stop_rx) = watch::channel(false);
    let (now_tx, now_rx) = watch::channel(NowSource::of(&core));
    let api_task = api::serve(
        cfg.api_listen,
        api_tx,
        api::NowFeed {
            source: now_rx,
            clock: clock.clone(),
        },
        stop_rx,
    )
    .await?;
    let journal = prepared
        .map(|p| {
            crate::audit::start_node_log(
                p,
                &cfg,
                incarnation,
                core.round(),
                core.now(now).cluster.0,
            )
        })
        .transpose()?
        .map(|h| Journal::new(h, cfg.node.audit.quarantine_on_failure));

    tracing::info!(
        node = cfg.name(),
        member = %cfg.me,
        members = cfg.members.len(),
        faulty_tolerated = cfg.params.faulty,
        round_period_ms = cfg.cluster.round_period_ms,
        precision_ms = cfg.cluster.precision_ms,
        peer_id = %cfg.members[cfg.me.index()].peer_id,
        "bftime node starting"
    );

    let seed = rand::rng().random_seed();
    let mut d = Driver {
        responder: Responder::new(cfg.testing.as_ref(), key),
        core,
        clock,
        rng: StdRng::from_seed(seed),
        net,
        timer_at: now,
        quarantines: 0,
        quarantined_for: None,
        requests_refused: 0,
        started: Instant::now(),
        systemd: Systemd::from_env(),
        hooks: Vec::new(),
        exit_code: None,
        journal,
        now_tx,
        cfg,
    };
    d.systemd.status("starting: measuring peers", false);
    d.execute(actions);
    d.publish_now();

    let watchdog = d.systemd.watchdog_interval();
    let mut watchdog_tick = tokio::time::interval(watchdog.unwrap_or(Duration::from_secs(3600)));
    tokio::pin!(shutdown);
    let mut stopped_by_signal = false;
    // One timer, re-armed only when the core's deadline changes or it fired (arming a
    // fresh timer for every network event would cost more than the event).
    let sleep = tokio::time::sleep(d.sleep_for());
    tokio::pin!(sleep);
    let mut armed_for = d.timer_at;
    loop {
        let mut fired = false;
        tokio::select! {
            biased;
            () = &mut shutdown => {
                stopped_by_signal = true;
                break;
            }
            Some(ev) = d.net.events.recv() => d.on_net(ev),
            Some(req) = api_rx.recv() => d.on_api(req),
            () = &mut sleep => {
                fired = true;
                let now = d.clock.now();
                // Before the round: a failed log must hold the node in quarantine.
                d.check_audit();
                if now >= d.timer_at {
                    let actions = d.core.handle_timer(now, &mut d.rng);
                    d.execute(actions);
                }
                d.publish_now();
            }
            _ = watchdog_tick.tick(), if watchdog.is_some() => d.systemd.watchdog(),
        }
        if d.exit_code.is_some() {
            break;
        }
        if fired || d.timer_at != armed_for {
            sleep.as_mut().reset(Instant::now() + d.sleep_for());
            armed_for = d.timer_at;
        }
    }

    // Graceful stop: tell peers, let hooks finish, close the network and the API. On a
    // signal the loop breaks at once, so the stop's deadlines count from here.
    let stop_started = Instant::now();
    d.now_tx.send_modify(|n| n.stopping = true);
    d.systemd.stopping();
    let code = d.exit_code.unwrap_or(exit::OK);
    if stopped_by_signal {
        tracing::info!("stopping on signal");
        d.send_leaving("shutdown");
    }
    tokio::time::sleep(LEAVING_FLUSH).await;
    let hook_deadline = if stopped_by_signal {
        stop_started + HOOK_GRACE_ON_SIGNAL
    } else {
        // The hook's own limit ends it first (`hook::run`).
        Instant::now() + hook::HOOK_TIMEOUT + Duration::from_secs(1)
    };
    for mut h in d.hooks.drain(..) {
        if tokio::time::timeout_at(hook_deadline, &mut h)
            .await
            .is_err()
        {
            // Dropping the hook's task kills its process (`kill_on_drop`).
            h.abort();
            let _ = h.await;
            tracing::error!(
                grace = ?HOOK_GRACE_ON_SIGNAL,
                "the quarantine hook was still running when the node stopped; killed it"
            );
        }
    }
    if let Some(j) = d.journal.take() {
        let reason = if stopped_by_signal {
            "signal".to_owned()
        } else {
            format!("exit code {code}")
        };
        let t = d.cluster_time_ns();
        let round = d.core.round();
        tokio::task::spawn_blocking(move || j.close(&reason, round, t)).await?;
    }
    let _ = stop_tx.send(true);
    let wind_down = if stopped_by_signal {
        stop_started + STOP_BUDGET_ON_SIGNAL
    } else {
        Instant::now() + Duration::from_secs(1)
    };
    let _ = tokio::time::timeout_at(wind_down, d.net.stop()).await;
    let api_limit = wind_down.min(Instant::now() + Duration::from_millis(500));
    let _ = tokio::time::timeout_at(api_limit, api_task).await;
    tracing::info!(code, "bftime node stopped");
    Ok(code)
}

/// A fresh random seed for the nonce blinding.
trait RandomSeed {
    fn random_seed(&mut self) -> [u8; 32];
}

impl<R: rand::Rng> RandomSeed for R {
    fn random_seed(&mut self) -> [u8; 32] {
        let mut s = [0u8; 32];
        self.fill_bytes(&mut s);
        s
    }
}

impl Driver {
    fn sleep_for(&self) -> Duration {
        let now = self.clock.now();
        let ns = (self.timer_at - now).0.max(0) as u64;
        Duration::from_nanos(ns).min(MAX_SLEEP)
    }

    fn execute(&mut self, actions: Vec<Action>) {
        self.journal_actions(&actions);
        for a in actions {
            match a {
                Action::SendRequest { to, request } => {
                    let sent = self
                        .net
                        .peers
                        .get(to.index())
                        .and_then(Option::as_ref)
                        .map(|tx| {
                            tx.try_send(Outgoing::Request(request, tokio::time::Instant::now()))
                                .is_ok()
                        });
                    if sent != Some(true) {
                        self.net
                            .stats
                            .requests_unsent
                            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                }
                Action::SetTimer { at } => self.timer_at = at,
                Action::StateChanged(t) => self.on_transition(t),
                Action::RoundCompleted(s) => {
                    tracing::debug!(
                        round = s.round,
                        state = s.state.as_str(),
                        correction_ns = s.correction.0,
                        applied = s.applied,
                        error_ns = s.error.map(|e| e.0),
                        rate_ppm = s.rate.0,
                        readings = s.readings_used,
                        suspects = ?s.suspects,
                        verdict = %s.verdict,
                        "round completed"
                    );
                }
                Action::ReadingRejected { from, reason } => {
                    self.log_reject(from, reason, "reading failed its batched signature check");
                }
            }
        }
    }

    /// Audit records for a batch of actions: the round's record first, then the state
    /// change it caused (labelled with that round).
    fn journal_actions(&mut self, actions: &[Action]) {
        if self.journal.is_none() {
            return;
        }
        let now = self.cluster_time_ns();
        let rejected = *self.core.rejected();
        let mut round = self.core.round();
        let Some(j) = &mut self.journal else { return };
        for a in actions {
            if let Action::RoundCompleted(s) = a {
                round = s.round;
                j.round(s, &rejected, self.requests_refused, now);
            }
        }
        for a in actions {
            if let Action::StateChanged(t) = a {
                j.transition(t, round, now);
            }
        }
    }

    fn cluster_time_ns(&self) -> i64 {
        self.core.now(self.clock.now()).cluster.0
    }

    /// A failed audit log is a health failure (unless configured otherwise).
    fn check_audit(&mut self) {
        let Some(j) = &mut self.journal else { return };
        let Some((quarantine, first)) = j.failure() else {
            return;
        };
        if quarantine {
            // Every tick: a node without a working log never finishes probation.
            let reason = bftime_protocol::QuarantineReason::Hard {
                violation: bftime_protocol::HardViolation::AuditLogUnwritable,
            };
            if let Some(a) = self.core.force_quarantine(reason) {
                self.execute(vec![a]);
            }
        } else if first {
            tracing::error!(
                "audit log failed and [audit] quarantine_on_failure = false: serving time WITHOUT an audit trail"
            );
        }
    }

    fn on_transition(&mut self, t: Transition) {
        let text = match &t.reason {
            Some(r) => format!("{}: {r}", t.to.as_str()),
            None => t.to.as_str().to_owned(),
        };
        self.systemd.status(&text, t.to == SyncState::Synced);
        match t.to {
            SyncState::Synced => {
                tracing::info!(
                    from = t.from.as_str(),
                    round = self.core.round(),
                    "synced: serving cluster time"
                );
                if let Some((code, reason)) = self.quarantined_for.take() {
                    let h = self.cfg.node.quarantine.rejoin_hook.clone();
                    self.run_hook(h, "rejoined", code, reason);
                }
            }
            SyncState::Starting => {
                tracing::info!(from = t.from.as_str(), "starting");
            }
            SyncState::Quarantined => {
                self.quarantines += 1;
                let (code, reason) = match &t.reason {
                    Some(r) => (r.code().to_owned(), r.to_string()),
                    None => ("unknown".to_owned(), "unknown".to_owned()),
                };
                tracing::error!(
                    code = %code,
                    reason = %reason,
                    round = self.core.round(),
                    "QUARANTINED: stopped serving time"
                );
                self.send_leaving(&format!("quarantined ({code}): {reason}"));
                self.quarantined_for = Some((code.clone(), reason.clone()));
                let h = self.cfg.node.quarantine.hook.clone();
                self.run_hook(h, "quarantined", code, reason);
                if self.cfg.node.quarantine.exit_on_quarantine {
                    tracing::error!(
                        code = exit::QUARANTINED,
                        "exit_on_quarantine is set: exiting"
                    );
                    self.exit_code = Some(exit::QUARANTINED);
                }
            }
        }
    }

    /// Starts the operator's `hook` (if set) for `event`, on a task of its own.
    fn run_hook(
        &mut self,
        hook: Option<String>,
        event: &'static str,
        code: String,
        reason: String,
    ) {
        let Some(h) = hook else {
            return;
        };
        let env = HookEnv {
            event,
            node: self.cfg.name().to_owned(),
            round: self.core.round(),
            code,
            reason,
        };
        self.hooks.push(tokio::spawn(hook::run(h, env)));
    }

    fn send_leaving(&mut self, reason: &str) {
        if !self.responder.announces_leaving() {
            return;
        }
        let Some(notice) = self.core.leaving_notice(&wire::clip_reason(reason)) else {
            return;
        };
        for tx in self.net.peers.iter().flatten() {
            let _ = tx.try_send(Outgoing::Leaving(notice.clone()));
        }
    }

    fn on_net(&mut self, ev: NetEvent) {
        match ev {
            NetEvent::Request {
                from,
                request,
                received_at,
                reply,
            } => self.on_request(from, request, received_at, reply),
            NetEvent::Response {
                from,
                reading,
                sent_at,
                received_at,
            } => {
                let outcome = self
                    .core
                    .handle_response(from, &reading, sent_at, received_at);
                if let ResponseOutcome::Rejected(reason) = outcome {
                    self.log_reject(from, reason, "reading rejected");
                }
            }
            NetEvent::Leaving { from, notice } => match self.core.handle_leaving(from, &notice) {
                ResponseOutcome::Accepted => {
                    let reason = notice
                        .decode_unverified()
                        .map(|l| l.reason)
                        .unwrap_or_default();
                    tracing::info!(peer = %self.peer_name(from), %reason, "peer left service");
                }
                ResponseOutcome::Rejected(r) => self.log_reject(from, r, "leaving notice rejected"),
            },
        }
    }

    fn log_reject(&self, from: MemberId, reason: RejectReason, what: &str) {
        if reason.is_misbehaviour() {
            tracing::warn!(peer = %self.peer_name(from), reason = reason.as_str(), "{what}");
        } else {
            tracing::debug!(peer = %self.peer_name(from), reason = reason.as_str(), "{what}");
        }
    }

    fn peer_name(&self, m: MemberId) -> &str {
        self.cfg
            .members
            .get(m.index())
            .map(|m| m.name.as_str())
            .unwrap_or("?")
    }

    fn on_request(
        &mut self,
        from: MemberId,
        request: bftime_protocol::Request,
        received_at: LocalTime,
        reply: oneshot::Sender<Option<Vec<u8>>>,
    ) {
        let now = self.clock.now();
        let honest = match self.core.handle_request(from, &request, received_at, now) {
            Ok(r) => r,
            Err(reason) => {
                self.requests_refused += 1;
                tracing::debug!(peer = %self.peer_name(from), reason = reason.as_str(), "request refused");
                let _ = reply.send(None);
                return;
            }
        };
        match self
            .responder
            .answer(from, honest, self.core.current_error(now))
        {
            Answer::Now(r) => {
                let _ = reply.send(Some(r.to_wire()));
            }
            Answer::After(r, delay) => {
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    let _ = reply.send(Some(r.to_wire()));
                });
            }
            Answer::Silent => {
                let _ = reply.send(None);
            }
        }
    }

    /// Publishes what `/now` is served from.
    fn publish_now(&self) {
        self.now_tx.send_replace(NowSource::of(&self.core));
    }

    fn on_api(&mut self, req: ApiRequest) {
        match req {
            ApiRequest::Status { brief, reply } => {
                let _ = reply.send(self.status_view(brief));
            }
        }
    }

    fn status_view(&self, brief: bool) -> StatusView {
        use std::sync::atomic::Ordering::Relaxed;
        let (host, local) = self.clock.sample();
        let s = &self.net.stats;
        StatusView {
            node: self.cfg.name().to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            cluster_id: self.cfg.cluster.cluster_id.clone(),
            member_names: if brief {
                Vec::new()
            } else {
                self.cfg.members.iter().map(|m| m.name.clone()).collect()
            },
            round_period_ms: self.cfg.cluster.round_period_ms,
            precision_ms: self.cfg.cluster.precision_ms,
            testing: self.cfg.testing.is_some(),
            host_monotonic_ns: self.clock.is_simulated().then_some(host),
            uptime_s: self.started.elapsed().as_secs_f64(),
            connected_peers: s.connected_peers.load(Relaxed),
            quarantines: self.quarantines,
            network: NetCounters {
                connections_refused: s.connections_refused.load(Relaxed),
                frames_oversized: s.frames_oversized.load(Relaxed),
                frames_malformed: s.frames_malformed.load(Relaxed),
                requests_overloaded: s.requests_overloaded.load(Relaxed),
                requests_unsent: s.requests_unsent.load(Relaxed),
                response_timeouts: s.response_timeouts.load(Relaxed),
                inbound_streams_refused: s.inbound_streams_refused.load(Relaxed),
                requests_answered: s.requests_answered.load(Relaxed),
                requests_refused: self.requests_refused,
                frame_bytes_sent: s.frame_bytes_sent.load(Relaxed),
                frame_bytes_received: s.frame_bytes_received.load(Relaxed),
            },
            audit: self.journal.as_ref().map(|j| {
                let st = j.status();
                crate::view::AuditView {
                    path: self
                        .cfg
                        .audit_log
                        .as_ref()
                        .map(|p| p.display().to_string())
                        .unwrap_or_default(),
                    records_written: st.records.load(Relaxed),
                    bytes_written: st.bytes.load(Relaxed),
                    failed: st.failed.load(Relaxed),
                    error: st.error(),
                }
            }),
            snapshot: if brief {
                self.core.snapshot_summary(local)
            } else {
                self.core.snapshot(local)
            },
        }
    }
}
