//! A minimal HTTP GET for `bftime status` and `bftime now` (hyper's client, no TLS:
//! the API is loopback by default).

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;

/// GETs `path` from the node API at `addr`; returns (status code, body).
pub async fn get(addr: SocketAddr, path: &str) -> anyhow::Result<(u16, Vec<u8>)> {
    let fut = async {
        let stream = tokio::net::TcpStream::connect(addr)
            .await
            .with_context(|| format!("cannot connect to the node API at {addr}; is `bftime run` running, and is this its api_listen?"))?;
        let io = hyper_util::rt::TokioIo::new(stream);
        let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await?;
        tokio::spawn(conn);
        let req = hyper::Request::get(path)
            .header(hyper::header::HOST, addr.to_string())
            .body(Empty::<Bytes>::new())?;
        let res = sender.send_request(req).await?;
        let code = res.status().as_u16();
        let body = res.into_body().collect().await?.to_bytes();
        Ok((code, body.to_vec()))
    };
    tokio::time::timeout(Duration::from_secs(5), fut)
        .await
        .with_context(|| format!("the node API at {addr} did not answer within 5 s"))?
}
