//! The local HTTP API: `GET /now`, `GET /status`, `GET /metrics`. Handlers ask the
//! driver (over a bounded channel, with a oneshot reply) for the state at that instant,
//! so the API never reads a half-updated core.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::sync::{mpsc, oneshot, watch};

use crate::metrics::Metrics;
use crate::view::{NowView, StatusView};

/// What an API handler asks the driver for.
#[derive(Debug)]
pub enum ApiRequest {
    Now(oneshot::Sender<NowView>),
    /// `brief`: without per-peer rows and member names.
    Status {
        brief: bool,
        reply: oneshot::Sender<StatusView>,
    },
}

#[derive(Debug, Clone)]
struct ApiState {
    driver: mpsc::Sender<ApiRequest>,
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
    let (tx, rx) = oneshot::channel();
    if s.driver.send(ApiRequest::Now(tx)).await.is_err() {
        return unavailable("now");
    }
    match rx.await {
        Ok(v) if v.serving => axum::Json(v).into_response(),
        Ok(v) => (StatusCode::SERVICE_UNAVAILABLE, axum::Json(v)).into_response(),
        Err(_) => unavailable("now"),
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

/// Binds the API address and serves until `stop` turns true.
pub async fn serve(
    addr: SocketAddr,
    driver: mpsc::Sender<ApiRequest>,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        anyhow::anyhow!(
            "cannot listen on api_listen = {addr}: {e} (is another node using that port?)"
        )
    })?;
    let state = ApiState {
        driver,
        metrics: Arc::new(Metrics::new()),
    };
    let app = Router::new()
        .route("/now", get(now))
        .route("/status", get(status))
        .route("/metrics", get(metrics))
        .with_state(state);
    tracing::info!(%addr, "API listening (/now, /status, /metrics)");
    Ok(tokio::spawn(async move {
        let shutdown = async move {
            let _ = stop.wait_for(|s| *s).await;
        };
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::error!(error = %e, "API server failed");
        }
    }))
}
