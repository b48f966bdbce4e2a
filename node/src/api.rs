//! The local HTTP API: `GET /now`, `GET /status`, `GET /metrics`. `/now` is computed here,
//! from the time source the driver publishes after every timer event (the only events
//! that change it) and the local clock read at the request: an application's reads never
//! wait on, or wake, the protocol's loop. `/status` and `/metrics` ask the driver (over a
//! bounded channel, with a oneshot reply) for the state at that instant, so the API never
//! reads a half-updated core.
//!
//! Connections are bounded: at most [`MAX_CONNECTIONS`] at once (more wait in the
//! kernel's backlog, so a leaky client cannot use up the file descriptors the node needs
//! for its peers), and one that has not sent a whole request head within
//! [`HEADER_READ_TIMEOUT`] (also between requests on a keep-alive connection) is closed.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::sync::{Semaphore, mpsc, oneshot, watch};

use crate::localclock::LocalClock;
use crate::metrics::Metrics;
use crate::view::{NowSource, StatusView};

/// API connections served at once.
pub const MAX_CONNECTIONS: usize = 256;
/// How long a connection may take to send a request head, counted from when it opened or
/// its last response went out.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// What an API handler asks the driver for.
#[derive(Debug)]
pub enum ApiRequest {
    /// `brief`: without per-peer rows and member names.
    Status {
        brief: bool,
        reply: oneshot::Sender<StatusView>,
    },
}

/// Where `/now` comes from: the driver's published time source, and the local clock.
#[derive(Debug, Clone)]
pub struct NowFeed {
    pub source: watch::Receiver<NowSource>,
    pub clock: LocalClock,
}

#[derive(Debug, Clone)]
struct ApiState {
    driver: mpsc::Sender<ApiRequest>,
    now: NowFeed,
    metrics: Arc<Metrics>,
}

fn unavailable(what: &str) -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        axum::Json(serde_json::json!({
            "status": "stopping",
            "serving": false,
            "reason": format!("the node is shutting down ({what})"),
        })),
    )
        .into_response()
}

async fn now(State(s): State<ApiState>) -> Response {
    let v = {
        let source = s.now.source.borrow();
        if source.stopping {
            None
        } else {
            let (host, local) = s.now.clock.sample();
            Some(source.view(local, s.now.clock.is_simulated().then_some(host)))
        }
    };
    match v {
        Some(v) if v.serving => axum::Json(v).into_response(),
        Some(v) => (StatusCode::SERVICE_UNAVAILABLE, axum::Json(v)).into_response(),
        None => unavailable("now"),
    }
}

async fn status_view(s: &ApiState, brief: bool) -> Option<StatusView> {
    let (reply, rx) = oneshot::channel();
    s.driver
        .send(ApiRequest::Status { brief, reply })
        .await
        .ok()?;
    rx.await.ok()
}

/// `GET /status`; `GET /status?brief=1` leaves out the per-peer rows and the member
/// names (the testnet polls every node every second and needs only the summary; at
/// n = 250 the full view costs the node far more than the summary).
async fn status(State(s): State<ApiState>, uri: axum::http::Uri) -> Response {
    let brief = uri
        .query()
        .is_some_and(|q| q.split('&').any(|kv| kv == "brief=1" || kv == "brief=true"));
    match status_view(&s, brief).await {
        Some(v) => axum::Json(v).into_response(),
        None => unavailable("status"),
    }
}

async fn metrics(State(s): State<ApiState>) -> Response {
    match status_view(&s, false).await {
        Some(v) => {
            s.metrics.observe(&v);
            (
                [(
                    header::CONTENT_TYPE,
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                )],
                s.metrics.encode(),
            )
                .into_response()
        }
        None => unavailable("metrics"),
    }
}

/// Resolves once `stop` turns true (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Binds the API address and serves until `stop` turns true.
pub async fn serve(
    addr: SocketAddr,
    driver: mpsc::Sender<ApiRequest>,
    now_feed: NowFeed,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        anyhow::anyhow!(
            "cannot listen on api_listen = {addr}: {e} (is another node using that port?)"
        )
    })?;
    let state = ApiState {
        driver,
        now: now_feed,
        metrics: Arc::new(Metrics::new()),
    };
    let app = Router::new()
        .route("/now", get(now))
        .route("/status", get(status))
        .route("/metrics", get(metrics))
        .with_state(state);
    tracing::info!(%addr, "API listening (/now, /status, /metrics)");
    Ok(tokio::spawn(async move {
        let limit = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        let mut warned_full = false;
        loop {
            let permit = match limit.clone().try_acquire_owned() {
                Ok(p) => p,
                Err(_) => {
                    if !warned_full {
                        tracing::warn!(
                            max = MAX_CONNECTIONS,
                            "API connections at their limit: new ones wait until one closes \
                             (a client that opens connections and does not close them?)"
                        );
                        warned_full = true;
                    }
                    tokio::select! {
                        p = limit.clone().acquire_owned() => match p {
                            Ok(p) => p,
                            Err(_) => return,
                        },
                        () = stopped(&mut stop) => return,
                    }
                }
            };
            let accepted = tokio::select! {
                a = listener.accept() => a,
                () = stopped(&mut stop) => return,
            };
            let stream = match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors, say: wait rather than spin.
                    tracing::warn!(error = %e, "API cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            if limit.available_permits() > MAX_CONNECTIONS / 2 {
                warned_full = false;
            }
            let service = TowerToHyperService::new(app.clone());
            let mut stop = stop.clone();
            tokio::spawn(async move {
                let conn = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(HEADER_READ_TIMEOUT)
                    .serve_connection(TokioIo::new(stream), service);
                tokio::pin!(conn);
                tokio::select! {
                    _ = conn.as_mut() => {}
                    () = stopped(&mut stop) => {
                        conn.as_mut().graceful_shutdown();
                        let _ = conn.await;
                    }
                }
                drop(permit);
            });
        }
    }))
}
