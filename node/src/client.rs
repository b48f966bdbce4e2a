//! A minimal HTTP GET for `bftime status` and `bftime now` (hyper's client, no TLS:
//! the API is loopback by default).

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;

/// GETs `path` from the node API at `addr` over a fresh connection; returns (status
/// code, body).
pub async fn get(addr: SocketAddr, path: &str) -> anyhow::Result<(u16, Vec<u8>)> {
    tokio::time::timeout(Duration::from_secs(5), ApiConnection::new(addr).get(path))
        .await
        .with_context(|| format!("the node API at {addr} did not answer within 5 s"))?
}

/// An HTTP/1 connection to one node API, kept open between requests: a poller that asks
/// every node once a second (the testnet) would otherwise cost each node a TCP connection
/// set up and torn down per answer. Any error drops the connection; the next request
/// opens a new one.
#[derive(Debug)]
pub struct ApiConnection {
    addr: SocketAddr,
    sender: Option<hyper::client::conn::http1::SendRequest<Empty<Bytes>>>,
}

impl ApiConnection {
    pub fn new(addr: SocketAddr) -> Self {
        ApiConnection { addr, sender: None }
    }

    /// GETs `path`; returns (status code, body). No timeout of its own.
    pub async fn get(&mut self, path: &str) -> anyhow::Result<(u16, Vec<u8>)> {
        let result = self.try_get(path).await;
        if result.is_err() {
            self.sender = None;
        }
        result
    }

    async fn try_get(&mut self, path: &str) -> anyhow::Result<(u16, Vec<u8>)> {
        let addr = self.addr;
        let sender = match &mut self.sender {
            Some(s) if !s.is_closed() => s,
            _ => {
                let stream = tokio::net::TcpStream::connect(addr)
                    .await
                    .with_context(|| format!("cannot connect to the node API at {addr}; is `bftime run` running, and is this its api_listen?"))?;
                let io = hyper_util::rt::TokioIo::new(stream);
                let (sender, conn) = hyper::client::conn::http1::handshake(io).await?;
                tokio::spawn(conn);
                self.sender.insert(sender)
            }
        };
        sender.ready().await?;
        let req = hyper::Request::get(path)
            .header(hyper::header::HOST, addr.to_string())
            .body(Empty::<Bytes>::new())?;
        let res = sender.send_request(req).await?;
        let code = res.status().as_u16();
        let body = res.into_body().collect().await?.to_bytes();
        Ok((code, body.to_vec()))
    }
}
