//! The libp2p side: TCP + Noise + Yamux, the node's ed25519 key as its identity, an
//! allow-list of the cluster's members (connections from any other key are closed as
//! soon as the Noise handshake reveals it), connection limits, and one long-lived
//! `/bftime/reading/3` stream per peer and direction.
//!
//! Tasks, all bounded:
//! - the swarm task polls the swarm and keeps connection counters;
//! - one outbound task per peer owns our stream to it: it writes a request, stamps the
//!   send time, reads the answer, stamps the receive time (as near the wire as this
//!   stack allows) and hands it to the driver; it reopens the stream with backoff;
//! - the accept task hands each peer's inbound stream (at most two per peer) to a task
//!   that reads requests, asks the driver for the signed answer and writes it back.

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use bftime_crypto::Signed;
use bftime_protocol::{Leaving, LocalTime, MemberId, Reading, Request};
use futures::StreamExt;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::{ListenError, NetworkBehaviour, SwarmEvent};
use libp2p::{
    Multiaddr, PeerId, Stream, Swarm, allow_block_list, connection_limits, noise, peer_store, tcp,
    yamux,
};
use rand::RngExt;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::{Instant, timeout};

use crate::config::NodeConfig;
use crate::localclock::LocalClock;
use crate::wire::{self, FrameError, ToResponder};

/// Inbound streams a peer may hold open at once.
const MAX_INBOUND_STREAMS_PER_PEER: u8 = 2;
/// Requests queued for one peer's outbound task.
const OUTBOUND_QUEUE: usize = 4;
/// A member whose dials have failed for this long is warned about ...
const DIAL_WARN_AFTER: Duration = Duration::from_secs(20);
/// ... and then at most this often.
const DIAL_WARN_EVERY: Duration = Duration::from_secs(60);

/// Redial backoff bounds.
const BACKOFF_MIN: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// Counters of what the network layer dropped or refused (exported as metrics).
#[derive(Debug, Default)]
pub struct NetStats {
    /// Members we have at least one connection to.
    pub connected_peers: AtomicUsize,
    /// Connections closed because the key is not a member (or limits were hit).
    pub connections_refused: AtomicU64,
    pub frames_oversized: AtomicU64,
    pub frames_malformed: AtomicU64,
    /// Requests dropped because the driver's queue was full.
    pub requests_overloaded: AtomicU64,
    /// Requests we could not send (peer unreachable or its queue full).
    pub requests_unsent: AtomicU64,
    /// Requests whose answer did not come in time.
    pub response_timeouts: AtomicU64,
    pub inbound_streams_refused: AtomicU64,
    pub requests_answered: AtomicU64,
    /// Bytes of bftime frames written and read (length prefix included; Noise, Yamux
    /// and TCP overhead not included).
    pub frame_bytes_sent: AtomicU64,
    pub frame_bytes_received: AtomicU64,
}

impl NetStats {
    fn bump(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }

    fn sent(&self, payload: usize) {
        self.frame_bytes_sent
            .fetch_add(payload as u64 + 2, Ordering::Relaxed);
    }

    fn received(&self, payload: usize) {
        self.frame_bytes_received
            .fetch_add(payload as u64 + 2, Ordering::Relaxed);
    }

    fn frame_error(&self, e: FrameError) {
        match e {
            FrameError::Oversized { .. } => Self::bump(&self.frames_oversized),
            FrameError::Malformed => Self::bump(&self.frames_malformed),
            FrameError::Closed => {}
        }
    }
}

/// Something the network hands to the driver.
#[derive(Debug)]
pub enum NetEvent {
    /// A peer asks for a reading; answer on `reply` (`None` = no answer).
    Request {
        from: MemberId,
        request: Request,
        received_at: LocalTime,
        reply: oneshot::Sender<Option<Vec<u8>>>,
    },
    /// A peer announced it leaves service.
    Leaving {
        from: MemberId,
        notice: Signed<Leaving>,
    },
    /// The answer to one of our requests.
    Response {
        from: MemberId,
        reading: Signed<Reading>,
        sent_at: LocalTime,
        received_at: LocalTime,
    },
}

/// What the driver asks an outbound task to send.
#[derive(Debug)]
pub enum Outgoing {
    /// A request, and when the driver queued it (a request that waited longer than
    /// half a round is stale and not sent).
    Request(Request, Instant),
    Leaving(Signed<Leaving>),
}

#[derive(NetworkBehaviour)]
struct Behaviour {
    allow: allow_block_list::Behaviour<allow_block_list::AllowedPeers>,
    limits: connection_limits::Behaviour,
    /// The members' addresses from the cluster file (permanent entries), so a dial by
    /// PeerId (which is how streams are opened) knows where to go.
    addresses: peer_store::Behaviour<peer_store::memory_store::MemoryStore>,
    stream: libp2p_stream::Behaviour,
}

/// The running network layer.
#[derive(Debug)]
pub struct Network {
    /// Per member (index = member id); `None` for ourselves.
    pub peers: Vec<Option<mpsc::Sender<Outgoing>>>,
    pub events: mpsc::Receiver<NetEvent>,
    pub stats: Arc<NetStats>,
    shutdown: watch::Sender<bool>,
    swarm_task: tokio::task::JoinHandle<()>,
}

impl Network {
    /// Stops the swarm (closing every connection).
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        let _ = timeout(Duration::from_millis(500), self.swarm_task).await;
    }
}

/// Builds the swarm, starts listening and spawns the tasks.
pub async fn start(cfg: &NodeConfig, clock: LocalClock) -> anyhow::Result<Network> {
    let n = cfg.members.len();
    let mut allow = allow_block_list::Behaviour::<allow_block_list::AllowedPeers>::default();
    for m in &cfg.members {
        if m.id != cfg.me {
            allow.allow_peer(m.peer_id);
        }
    }
    let limits = connection_limits::Behaviour::new(
        connection_limits::ConnectionLimits::default()
            .with_max_established_per_peer(Some(2))
            .with_max_established(Some(2 * n as u32 + 8))
            .with_max_pending_incoming(Some(n as u32 + 16))
            .with_max_pending_outgoing(Some(n as u32 + 16)),
    );
    let period = Duration::from_nanos(cfg.params.round_period.0.max(0) as u64);
    let behaviour = Behaviour {
        allow,
        limits,
        addresses: peer_store::Behaviour::new(peer_store::memory_store::MemoryStore::new(
            peer_store::memory_store::Config::default()
                .set_peer_capacity(NonZeroUsize::new(n + 16).unwrap_or(NonZeroUsize::MIN))
                .set_remove_addr_on_dial_error(false),
        )),
        stream: libp2p_stream::Behaviour::new(),
    };
    // Our streams keep connections open; this only reaps connections without them.
    let swarm_config = |c: libp2p::swarm::Config| {
        c.with_idle_connection_timeout(period * 3 + Duration::from_secs(30))
    };
    let builder = libp2p::SwarmBuilder::with_existing_identity(cfg.key.to_libp2p_keypair())
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .context("building the TCP/Noise/Yamux transport")?;
    // Members named by /dns4, /dns6 or /dns addresses are resolved at each dial with
    // the system's resolver configuration, so a VM that comes back with a new address
    // is found again. A cluster of IP addresses needs no resolver (and so no
    // /etc/resolv.conf, which minimal hosts and containers may lack).
    let names_hosts = cfg
        .members
        .iter()
        .flat_map(|m| &m.addresses)
        .any(crate::config::names_host);
    let mut swarm = if names_hosts {
        builder
            .with_dns()
            .context("member addresses name hosts (/dns4/…), but the system's DNS resolver configuration (/etc/resolv.conf) cannot be read")?
            .with_behaviour(|_| behaviour)
            .context("building the network behaviour")?
            .with_swarm_config(swarm_config)
            .build()
    } else {
        builder
            .with_behaviour(|_| behaviour)
            .context("building the network behaviour")?
            .with_swarm_config(swarm_config)
            .build()
    };
    // Every port is checked before the first listener takes one (an IPv4 and an IPv6
    // listener on one port are not a clash).
    for addr in &cfg.listen {
        port_is_free(addr)?;
    }
    for addr in &cfg.listen {
        swarm
            .listen_on(addr.clone())
            .with_context(|| format!("cannot listen on {addr}"))?;
    }
    for m in &cfg.members {
        if m.id != cfg.me {
            for a in &m.addresses {
                swarm
                    .behaviour_mut()
                    .addresses
                    .store_mut()
                    .add_address(&m.peer_id, a);
            }
        }
    }

    let stats = Arc::new(NetStats::default());
    let (events_tx, events_rx) = mpsc::channel(2 * n + 64);
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let mut control = swarm.behaviour().stream.new_control();
    let incoming = control
        .accept(wire::PROTOCOL)
        .map_err(|_| anyhow::anyhow!("the reading protocol is registered twice"))?;

    let by_peer: HashMap<PeerId, MemberId> =
        cfg.members.iter().map(|m| (m.peer_id, m.id)).collect();
    let inbound_counts: Arc<[AtomicU8]> = (0..n).map(|_| AtomicU8::new(0)).collect();
    tokio::spawn(accept_loop(
        incoming,
        by_peer.clone(),
        inbound_counts,
        events_tx.clone(),
        clock.clone(),
        stats.clone(),
        period,
        shutdown_rx.clone(),
    ));

    let mut peers = Vec::with_capacity(n);
    let mut connected_tx = Vec::with_capacity(n);
    for m in &cfg.members {
        let (ctx, crx) = watch::channel(false);
        connected_tx.push(ctx);
        if m.id == cfg.me {
            peers.push(None);
            continue;
        }
        let (tx, rx) = mpsc::channel(OUTBOUND_QUEUE);
        tokio::spawn(outbound(
            Link {
                me: cfg.me,
                peer: m.id,
                peer_id: m.peer_id,
                connected: crx,
            },
            control.clone(),
            rx,
            events_tx.clone(),
            clock.clone(),
            stats.clone(),
            period,
        ));
        peers.push(Some(tx));
    }

    let swarm_task = tokio::spawn(swarm_loop(
        swarm,
        stats.clone(),
        by_peer,
        connected_tx,
        shutdown_rx,
    ));
    Ok(Network {
        peers,
        events: events_rx,
        stats,
        shutdown: shutdown_tx,
        swarm_task,
    })
}

/// The host each member's open connections come from: one member on two hosts at once
/// is one key in two processes (a cloned VM), whose readings and notices would all be
/// taken as that member's.
#[derive(Debug)]
struct HostsOf<C = libp2p::swarm::ConnectionId> {
    open: HashMap<PeerId, HashMap<C, std::net::IpAddr>>,
}

impl<C> Default for HostsOf<C> {
    fn default() -> Self {
        HostsOf {
            open: HashMap::new(),
        }
    }
}

impl<C: std::hash::Hash + Eq> HostsOf<C> {
    /// Notes a new connection; returns the distinct hosts the peer is connected from.
    fn connected(&mut self, peer: PeerId, conn: C, ip: std::net::IpAddr) -> Vec<std::net::IpAddr> {
        let hosts = self.open.entry(peer).or_default();
        hosts.insert(conn, ip);
        let mut ips: Vec<std::net::IpAddr> = hosts.values().copied().collect();
        ips.sort_unstable();
        ips.dedup();
        ips
    }

    fn closed(&mut self, peer: PeerId, conn: C) {
        if let Some(hosts) = self.open.get_mut(&peer) {
            hosts.remove(&conn);
            if hosts.is_empty() {
                self.open.remove(&peer);
            }
        }
    }
}

/// The IP address a multiaddr starts with, if it does.
fn ip_of(addr: &Multiaddr) -> Option<std::net::IpAddr> {
    match addr.iter().next()? {
        Protocol::Ip4(ip) => Some(ip.into()),
        Protocol::Ip6(ip) => Some(ip.into()),
        _ => None,
    }
}

/// Fails if another socket listens on `addr`'s port. libp2p's TCP listeners set
/// SO_REUSEPORT, so a second node started with the same listen address (a node started
/// twice, a cloned VM) would bind it too and take half of the cluster's connections;
/// a plain bind without SO_REUSEPORT is refused while any listener holds the port.
fn port_is_free(addr: &Multiaddr) -> anyhow::Result<()> {
    let Some(ip) = ip_of(addr) else {
        return Ok(());
    };
    let Some(Protocol::Tcp(port)) = addr.iter().nth(1) else {
        return Ok(());
    };
    if port == 0 {
        return Ok(());
    }
    // As libp2p binds it: an IPv6 socket for IPv6 only (a dual-stack probe of [::]
    // would clash with the same node's own 0.0.0.0 listener).
    let probe = || -> std::io::Result<()> {
        let domain = if ip.is_ipv6() {
            rustix::net::AddressFamily::INET6
        } else {
            rustix::net::AddressFamily::INET
        };
        let socket = rustix::net::socket(domain, rustix::net::SocketType::STREAM, None)?;
        if ip.is_ipv6() {
            rustix::net::sockopt::set_ipv6_v6only(&socket, true)?;
        }
        rustix::net::sockopt::set_socket_reuseaddr(&socket, true)?;
        rustix::net::bind(&socket, &std::net::SocketAddr::new(ip, port))?;
        Ok(())
    };
    match probe() {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => Err(anyhow::anyhow!(
            "cannot listen on {addr}: the port is in use. Is this node already running (as a systemd unit and by hand, or on a cloned VM with the same key)? Stop the other process, or give this node another listen port and its member entry the same port"
        )),
        Err(e) => Err(anyhow::anyhow!("cannot listen on {addr}: {e}")),
    }
}

async fn swarm_loop(
    mut swarm: Swarm<Behaviour>,
    stats: Arc<NetStats>,
    by_peer: HashMap<PeerId, MemberId>,
    connected: Vec<watch::Sender<bool>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mark = |peer: &PeerId, up: bool| {
        if let Some(tx) = by_peer.get(peer).and_then(|m| connected.get(m.index())) {
            tx.send_replace(up);
        }
    };
    // Members whose dials keep failing: since when, and when that was last logged at
    // warn. An operator should see why a member stays unreachable (a name that does not
    // resolve, a firewall) without reading debug logs; but members start at different
    // times, so only a failure that outlasts start-up is worth a warning, and then not
    // once a second.
    let mut failing: HashMap<PeerId, (std::time::Instant, Option<std::time::Instant>)> =
        HashMap::new();
    let mut hosts_of: HostsOf = HostsOf::default();
    loop {
        tokio::select! {
            ev = swarm.select_next_some() => match ev {
                SwarmEvent::NewListenAddr { address, .. } => {
                    tracing::info!(%address, "listening for peers");
                }
                SwarmEvent::ConnectionEstablished { peer_id, connection_id, num_established, endpoint, .. } => {
                    failing.remove(&peer_id);
                    if let Some(ip) = ip_of(endpoint.get_remote_address()) {
                        let ips = hosts_of.connected(peer_id, connection_id, ip);
                        if ips.len() > 1 {
                            tracing::warn!(
                                peer = %peer_id,
                                member = ?by_peer.get(&peer_id),
                                hosts = ?ips,
                                "a member is connected from two hosts at once: two processes may hold its key (a cloned VM?). Only one may run; the other's readings and notices are taken as this member's"
                            );
                        }
                    }
                    if num_established.get() == 1 {
                        stats.connected_peers.fetch_add(1, Ordering::Relaxed);
                        mark(&peer_id, true);
                    }
                    tracing::debug!(peer = %peer_id, addr = %endpoint.get_remote_address(), "connected");
                }
                SwarmEvent::ConnectionClosed { peer_id, connection_id, num_established, cause, .. } => {
                    hosts_of.closed(peer_id, connection_id);
                    if num_established == 0 {
                        stats.connected_peers.fetch_sub(1, Ordering::Relaxed);
                        mark(&peer_id, false);
                    }
                    tracing::debug!(peer = %peer_id, cause = ?cause, "connection closed");
                }
                SwarmEvent::IncomingConnectionError { send_back_addr, error, .. } => {
                    if matches!(error, ListenError::Denied { .. }) {
                        NetStats::bump(&stats.connections_refused);
                        tracing::warn!(from = %send_back_addr, %error, "refused a connection (not a member, or over the limits)");
                    } else {
                        tracing::debug!(from = %send_back_addr, %error, "incoming connection failed");
                    }
                }
                SwarmEvent::OutgoingConnectionError { peer_id, error, .. } => {
                    let now = std::time::Instant::now();
                    let due = peer_id.map(|p| {
                        let (since, warned) = failing.entry(p).or_insert((now, None));
                        let due = now.duration_since(*since) >= DIAL_WARN_AFTER
                            && warned.is_none_or(|t| now.duration_since(t) >= DIAL_WARN_EVERY);
                        if due {
                            *warned = Some(now);
                        }
                        (due, now.duration_since(*since))
                    });
                    match (due, peer_id) {
                        (Some((true, failing_for)), Some(p)) => tracing::warn!(
                            peer = %p,
                            member = ?by_peer.get(&p),
                            failing_s = failing_for.as_secs(),
                            %error,
                            "cannot reach a member (still retrying; said again at most every {} s)",
                            DIAL_WARN_EVERY.as_secs()
                        ),
                        _ => tracing::debug!(peer = ?peer_id, %error, "dial failed"),
                    }
                }
                SwarmEvent::ListenerError { error, .. } => {
                    tracing::warn!(%error, "listener error");
                }
                _ => {}
            },
            _ = shutdown.changed() => break,
        }
    }
}

/// Who an outbound task talks to.
#[derive(Debug)]
struct Link {
    me: MemberId,
    peer: MemberId,
    peer_id: PeerId,
    /// Whether the swarm holds a connection to the peer.
    connected: watch::Receiver<bool>,
}

/// Opens a stream to the peer, dialling if there is no connection.
async fn open(
    control: &mut libp2p_stream::Control,
    peer_id: PeerId,
    limit: Duration,
) -> Result<Stream, String> {
    match timeout(limit, control.open_stream(peer_id, wire::PROTOCOL)).await {
        Ok(Ok(s)) => Ok(s),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("timed out".to_owned()),
    }
}

/// Owns our stream to one peer.
async fn outbound(
    mut link: Link,
    mut control: libp2p_stream::Control,
    mut rx: mpsc::Receiver<Outgoing>,
    events: mpsc::Sender<NetEvent>,
    clock: LocalClock,
    stats: Arc<NetStats>,
    period: Duration,
) {
    let peer = link.peer;
    let peer_id = link.peer_id;
    let mut stream: Option<Stream> = None;
    let mut backoff = BACKOFF_MIN;
    let mut next_attempt = Instant::now();
    let mut buf = Vec::with_capacity(wire::MAX_TO_REQUESTER);
    let open_timeout = (period / 2).clamp(Duration::from_secs(3), Duration::from_secs(20));
    let backoff_max = BACKOFF_MAX.min(period.max(BACKOFF_MIN));
    let stale_after = period / 2;

    // Mesh formation: one connection per pair, dialled by the lower-indexed member at a
    // random moment in a window that grows with n (a cold 250-node mesh is 31 000 Noise
    // handshakes; dialling both ways at once doubles them and queues everything). The
    // other side waits for that connection and opens its stream over it.
    let spread = Duration::from_millis(60 * u64::from(link.me.0.max(peer.0)))
        .clamp(Duration::from_secs(2), period.max(Duration::from_secs(2)));
    if peer < link.me {
        let _ = timeout(spread + open_timeout, link.connected.wait_for(|c| *c)).await;
    } else {
        let jitter = rand::rng().random_range(0.0..=1.0);
        tokio::time::sleep(spread.mul_f64(jitter)).await;
    }

    loop {
        // Without a stream: retry with backoff in the background, dropping requests
        // (they would be stale by the time a connection forms).
        if stream.is_none() {
            tokio::select! {
                () = tokio::time::sleep_until(next_attempt) => {
                    match open(&mut control, peer_id, open_timeout).await {
                        Ok(s) => {
                            tracing::debug!(%peer, "stream open");
                            stream = Some(s);
                            backoff = BACKOFF_MIN;
                        }
                        Err(why) => {
                            let jitter = rand::rng().random_range(0.8..1.2);
                            next_attempt = Instant::now() + backoff.mul_f64(jitter);
                            tracing::debug!(%peer, %why, retry_in = ?backoff, "cannot reach peer");
                            backoff = (backoff * 2).min(backoff_max);
                        }
                    }
                }
                msg = rx.recv() => match msg {
                    None => return,
                    Some(Outgoing::Request(..)) => NetStats::bump(&stats.requests_unsent),
                    Some(Outgoing::Leaving(_)) => {}
                },
            }
            continue;
        }
        let Some(msg) = rx.recv().await else { return };
        if let Outgoing::Request(_, queued) = &msg
            && queued.elapsed() > stale_after
        {
            NetStats::bump(&stats.requests_unsent);
            continue;
        }
        let Some(s) = stream.as_mut() else { continue };
        match msg {
            Outgoing::Leaving(notice) => {
                let frame = ToResponder::Leaving(notice).encode();
                if wire::write_frame(s, &frame).await.is_err() {
                    stream = None;
                } else {
                    stats.sent(frame.len());
                }
            }
            Outgoing::Request(request, _) => {
                let frame = ToResponder::Request(request).encode();
                let sent_at = clock.now();
                if wire::write_frame(s, &frame).await.is_err() {
                    stream = None;
                    NetStats::bump(&stats.requests_unsent);
                    continue;
                }
                stats.sent(frame.len());
                match timeout(
                    period,
                    wire::read_frame(s, wire::MAX_TO_REQUESTER, &mut buf),
                )
                .await
                {
                    Ok(Ok(())) => {
                        let received_at = clock.now();
                        stats.received(buf.len());
                        match wire::decode_reading(&buf) {
                            Ok(reading) => {
                                let ev = NetEvent::Response {
                                    from: peer,
                                    reading,
                                    sent_at,
                                    received_at,
                                };
                                if events.send(ev).await.is_err() {
                                    return;
                                }
                            }
                            Err(e) => stats.frame_error(e),
                        }
                    }
                    Ok(Err(e)) => {
                        stats.frame_error(e);
                        stream = None;
                    }
                    Err(_) => {
                        // The answer may still come; with a lock-step stream it would be
                        // taken for the next one. Start a fresh stream instead.
                        NetStats::bump(&stats.response_timeouts);
                        stream = None;
                    }
                }
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn accept_loop(
    mut incoming: libp2p_stream::IncomingStreams,
    by_peer: HashMap<PeerId, MemberId>,
    counts: Arc<[AtomicU8]>,
    events: mpsc::Sender<NetEvent>,
    clock: LocalClock,
    stats: Arc<NetStats>,
    period: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let (peer_id, stream) = tokio::select! {
            next = incoming.next() => match next {
                Some(x) => x,
                None => return,
            },
            _ = shutdown.changed() => return,
        };
        let Some(&member) = by_peer.get(&peer_id) else {
            // The allow-list should have closed the connection already.
            NetStats::bump(&stats.inbound_streams_refused);
            continue;
        };
        let slot = &counts[member.index()];
        if slot.fetch_add(1, Ordering::AcqRel) >= MAX_INBOUND_STREAMS_PER_PEER {
            slot.fetch_sub(1, Ordering::AcqRel);
            NetStats::bump(&stats.inbound_streams_refused);
            continue;
        }
        let counts = counts.clone();
        let events = events.clone();
        let clock = clock.clone();
        let stats = stats.clone();
        tokio::spawn(async move {
            inbound(member, stream, events, clock, stats, period).await;
            counts[member.index()].fetch_sub(1, Ordering::AcqRel);
        });
    }
}

/// Serves one peer's stream of requests.
async fn inbound(
    from: MemberId,
    mut stream: Stream,
    events: mpsc::Sender<NetEvent>,
    clock: LocalClock,
    stats: Arc<NetStats>,
    period: Duration,
) {
    let idle = period * 4 + Duration::from_secs(10);
    let mut buf = Vec::with_capacity(128);
    loop {
        match timeout(
            idle,
            wire::read_frame(&mut stream, wire::MAX_TO_RESPONDER, &mut buf),
        )
        .await
        {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                stats.frame_error(e);
                return;
            }
            Err(_) => return,
        }
        let received_at = clock.now();
        stats.received(buf.len());
        match ToResponder::decode(&buf) {
            Ok(ToResponder::Request(request)) => {
                let (reply, answer) = oneshot::channel();
                let ev = NetEvent::Request {
                    from,
                    request,
                    received_at,
                    reply,
                };
                if events.try_send(ev).is_err() {
                    NetStats::bump(&stats.requests_overloaded);
                    continue;
                }
                if let Ok(Ok(Some(bytes))) = timeout(period, answer).await {
                    if wire::write_frame(&mut stream, &bytes).await.is_err() {
                        return;
                    }
                    stats.sent(bytes.len());
                    NetStats::bump(&stats.requests_answered);
                }
            }
            Ok(ToResponder::Leaving(notice)) => {
                if events.try_send(NetEvent::Leaving { from, notice }).is_err() {
                    NetStats::bump(&stats.requests_overloaded);
                }
            }
            Err(e) => stats.frame_error(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_member_on_two_hosts_is_seen_and_forgotten_when_one_goes() {
        let mut h = HostsOf::<u32>::default();
        let (a, b) = (PeerId::random(), PeerId::random());
        let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
        assert_eq!(h.connected(a, 1, ip("10.0.0.1")).len(), 1);
        // A second connection from the same host (both dialled at once): fine.
        assert_eq!(h.connected(a, 2, ip("10.0.0.1")).len(), 1);
        assert_eq!(h.connected(b, 3, ip("10.0.0.2")).len(), 1);
        // The same key from another host.
        assert_eq!(h.connected(a, 4, ip("10.0.0.9")).len(), 2);
        h.closed(a, 4);
        assert_eq!(h.connected(a, 5, ip("10.0.0.1")).len(), 1);
        for c in [1, 2, 5] {
            h.closed(a, c);
        }
        assert!(!h.open.contains_key(&a));
        assert_eq!(
            h.connected(a, 6, ip("10.0.0.9")).len(),
            1,
            "a move is no clone"
        );
    }

    #[test]
    fn ports_held_by_another_socket_are_refused_and_free_ones_are_not() {
        let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = held.local_addr().unwrap().port();
        let addr: Multiaddr = format!("/ip4/127.0.0.1/tcp/{port}").parse().unwrap();
        let err = port_is_free(&addr).unwrap_err();
        assert!(err.to_string().contains("in use"), "{err}");
        // An IPv6 listener on the same port is no clash (libp2p binds it IPv6-only).
        let v4_any = std::net::TcpListener::bind(("0.0.0.0", 0)).unwrap();
        let any_port = v4_any.local_addr().unwrap().port();
        if std::net::TcpListener::bind("[::1]:0").is_ok() {
            port_is_free(&format!("/ip6/::/tcp/{any_port}").parse().unwrap()).unwrap();
        }
        drop(held);
        port_is_free(&addr).unwrap();
        port_is_free(&"/ip4/127.0.0.1/tcp/0".parse().unwrap()).unwrap();
    }
}
