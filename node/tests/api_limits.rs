//! The local API bounds what clients can hold (spec §7, README "Reading the time"): a
//! connection that sends no whole request head in time is closed, idle keep-alive ones
//! too, and connections beyond the limit wait in the backlog instead of using up the
//! node's file descriptors. Served here by the real `api::serve`, `/now` from a real core
//! that has not synced yet (so it answers 503: any answer shows the connection served).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use std::sync::Arc;

use bftime_crypto::{Ed25519Suite, NodeKey, PublicKey};
use bftime_node::api::{self, ApiRequest, HEADER_READ_TIMEOUT, MAX_CONNECTIONS, NowFeed};
use bftime_node::localclock::LocalClock;
use bftime_node::view::NowSource;
use bftime_protocol::{Core, CoreConfig, LocalTime, MemberId, Nanos, Params};
use tokio::sync::{mpsc, watch};

/// What a core of a 4-member cluster serves right after it started.
fn fresh_source() -> NowSource {
    let keys: Vec<NodeKey> = (1..=4u8).map(|i| NodeKey::from_seed(&[i; 32])).collect();
    let members: Arc<[PublicKey]> = keys.iter().map(|k| k.public_key()).collect();
    let cfg = CoreConfig {
        me: MemberId(0),
        members,
        cluster: 1,
        params: Params::for_members(4),
        detailed_summaries: false,
        incarnation: 1,
        batch_verification: false,
    };
    let key = keys.into_iter().next().unwrap();
    let (core, _) = Core::new(
        cfg,
        Box::new(key),
        Arc::new(Ed25519Suite),
        LocalTime(0),
        Nanos::ZERO,
    )
    .unwrap();
    NowSource::of(&core)
}

/// An API on a free loopback port, on a runtime of its own thread (as in the node: one
/// thread).
fn start() -> (SocketAddr, watch::Sender<bool>) {
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let (stop_tx, stop_rx) = watch::channel(false);
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let (tx, mut rx) = mpsc::channel::<ApiRequest>(64);
            let (_source_tx, source) = watch::channel(fresh_source());
            let feed = NowFeed {
                source,
                clock: LocalClock::host(),
            };
            let _task = api::serve(addr, tx, feed, stop_rx).await.unwrap();
            ready_tx.send(()).unwrap();
            // The stand-in driver: `/status` and `/metrics` are not asked for here.
            while rx.recv().await.is_some() {}
        });
    });
    ready_rx.recv().unwrap();
    (addr, stop_tx)
}

/// Sends one `GET /now` on `s` and reads its response (the body is short and the
/// response carries a content length, so one read after the head is enough).
fn get_now(s: &mut TcpStream) -> String {
    s.write_all(b"GET /now HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut buf = [0u8; 4096];
    let n = s.read(&mut buf).unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

/// Waits for the server to close `s`: the time it took, or `None` within `limit`.
fn closed_within(s: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let t0 = Instant::now();
    s.set_read_timeout(Some(limit)).unwrap();
    let mut buf = [0u8; 256];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return Some(t0.elapsed()),
            Ok(_) => {}
            Err(_) => return None,
        }
    }
}

#[test]
fn slow_idle_and_excess_connections_are_bounded() {
    let (addr, stop) = start();
    let slack = HEADER_READ_TIMEOUT + Duration::from_secs(5);

    // A client that stalls in the middle of its request head, and a keep-alive client
    // that went quiet after one answer: both are closed after the timeout.
    let mut stalled = TcpStream::connect(addr).unwrap();
    stalled.write_all(b"GET /now HTTP/1.1\r\nHos").unwrap();
    let mut idle = TcpStream::connect(addr).unwrap();
    assert!(get_now(&mut idle).starts_with("HTTP/1.1 503"));
    let t = closed_within(&mut stalled, slack).expect("a stalled head is cut off");
    assert!(t >= HEADER_READ_TIMEOUT - Duration::from_secs(1), "{t:?}");
    closed_within(&mut idle, slack).expect("an idle keep-alive connection is closed");

    // MAX_CONNECTIONS held open: one more is not served until one of them closes.
    let mut held: Vec<TcpStream> = (0..MAX_CONNECTIONS)
        .map(|_| TcpStream::connect(addr).unwrap())
        .collect();
    let mut extra = TcpStream::connect(addr).unwrap();
    extra
        .write_all(b"GET /now HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    extra
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut buf = [0u8; 4096];
    assert!(
        extra.read(&mut buf).is_err(),
        "served beyond the connection limit"
    );
    // One of them gets its answer, then closes: the waiting one is served.
    assert!(get_now(&mut held[0]).starts_with("HTTP/1.1 503"));
    drop(held.remove(0));
    extra
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let n = extra.read(&mut buf).unwrap();
    assert!(
        String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 503"),
        "served once a slot freed"
    );
    stop.send_replace(true);
}
