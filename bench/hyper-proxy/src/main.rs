//! The floor of an HTTP hop: a hyper 1.x HTTP/1.1 reverse proxy with no MCP logic at all.
//! Each downstream connection gets its own upstream connection (HTTP/1.1 carries one request
//! at a time, so no pool is needed); a request's method, path, `Content-Type`, `Accept` and
//! `Mcp-*` / `MCP-*` headers and its body bytes are forwarded, and the upstream's status,
//! `Content-Type` and body bytes come back. What it costs per call is what any HTTP gateway
//! written on hyper and tokio pays for the hop itself; `bench/federation.py` runs it beside
//! Waygate's gateway over the same upstream.
//!
//!   hyper-proxy --port 8010 --upstream 127.0.0.1:8005
use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1 as client;
use hyper::header::{HeaderValue, CONTENT_TYPE, HOST};
use hyper::server::conn::http1 as server;
use hyper::{body::Incoming, service::service_fn, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Mutex;

type Upstream = Arc<Mutex<Option<client::SendRequest<Full<Bytes>>>>>;

fn forwarded(name: &str) -> bool {
    let n = name.as_bytes();
    name == "content-type" || name == "accept" || (n.len() > 4 && n[..4].eq_ignore_ascii_case(b"mcp-"))
}

async fn connect(addr: &str) -> std::io::Result<client::SendRequest<Full<Bytes>>> {
    let tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let (send, conn) = client::handshake(TokioIo::new(tcp))
        .await
        .map_err(std::io::Error::other)?;
    tokio::spawn(conn);
    Ok(send)
}

fn bad_gateway(why: impl std::fmt::Display) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(why.to_string())));
    *r.status_mut() = StatusCode::BAD_GATEWAY;
    r
}

async fn forward(
    req: Request<Incoming>,
    up: Upstream,
    addr: Arc<str>,
    host: HeaderValue,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = req.into_parts();
    let body = match body.collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return Ok(bad_gateway(e)),
    };
    let mut out = Request::builder().method(parts.method).uri(parts.uri);
    if let Some(h) = out.headers_mut() {
        h.insert(HOST, host);
        for (k, v) in parts.headers.iter().filter(|(k, _)| forwarded(k.as_str())) {
            h.append(k, v.clone());
        }
    }
    let out = match out.body(Full::new(body)) {
        Ok(r) => r,
        Err(e) => return Ok(bad_gateway(e)),
    };
    let mut slot = up.lock().await;
    if slot.as_ref().is_none_or(|s| s.is_closed()) {
        match connect(&addr).await {
            Ok(s) => *slot = Some(s),
            Err(e) => return Ok(bad_gateway(e)),
        }
    }
    let Some(send) = slot.as_mut() else { return Ok(bad_gateway("no upstream")) };
    if let Err(e) = send.ready().await {
        *slot = None;
        return Ok(bad_gateway(e));
    }
    let resp = match send.send_request(out).await {
        Ok(r) => r,
        Err(e) => {
            *slot = None;
            return Ok(bad_gateway(e));
        }
    };
    let (rp, rb) = resp.into_parts();
    let bytes = match rb.collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return Ok(bad_gateway(e)),
    };
    drop(slot);
    let mut r = Response::new(Full::new(bytes));
    *r.status_mut() = rp.status;
    if let Some(ct) = rp.headers.get(CONTENT_TYPE) {
        r.headers_mut().insert(CONTENT_TYPE, ct.clone());
    }
    Ok(r)
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let arg = |flag: &str| args.iter().position(|a| a == flag).and_then(|i| args.get(i + 1)).cloned();
    let port = arg("--port").unwrap_or_else(|| "8010".into());
    let upstream: Arc<str> = arg("--upstream").unwrap_or_else(|| "127.0.0.1:8005".into()).into();
    let host = HeaderValue::from_str(&upstream).map_err(std::io::Error::other)?;
    let listener = TcpListener::bind(format!("127.0.0.1:{port}")).await?;
    loop {
        let (tcp, _) = listener.accept().await?;
        tcp.set_nodelay(true)?;
        let up: Upstream = Arc::new(Mutex::new(None));
        let (addr, host) = (upstream.clone(), host.clone());
        tokio::spawn(async move {
            let svc = service_fn(move |req| forward(req, up.clone(), addr.clone(), host.clone()));
            let _ = server::Builder::new().serve_connection(TokioIo::new(tcp), svc).await;
        });
    }
}
