//! A 2024-11-05 HTTP+SSE server: `GET` opens an event stream whose first event
//! (`endpoint`) names where to `POST` messages; every answer comes back on the stream.
//! Many hosted servers still speak only this.
//!
//! The POST endpoint must be on the stream's own origin: a server cannot point the
//! gateway (and its credentials) at another host.

use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{HeaderMap, ACCEPT, CONTENT_TYPE};
use serde_json::Value;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use crate::client::Inbound;
use crate::error::UpstreamError;
use crate::http::{header_map, HttpTarget};
use crate::link::Related;
use crate::sse::Parser;

/// Largest single event accepted on the stream.
const MAX_EVENT: usize = 64 << 20;

pub(crate) struct LegacyWire {
    client: reqwest::Client,
    headers: HeaderMap,
    endpoint: reqwest::Url,
    /// Cancelled when the stream ended (the connection is lost); carries why.
    gone: CancellationToken,
    why: Arc<std::sync::Mutex<String>>,
    /// Stops the reader.
    stop: CancellationToken,
}

fn transport_error(e: &reqwest::Error, timeout: Duration) -> UpstreamError {
    if e.is_timeout() {
        UpstreamError::Timeout(timeout.as_millis() as u64)
    } else {
        UpstreamError::Connect(waygate_core::util::error_chain(e))
    }
}

impl LegacyWire {
    /// Open the stream and wait for its `endpoint` event.
    pub(crate) async fn connect(
        target: HttpTarget,
        inbound: Arc<Inbound>,
        timeout: Duration,
    ) -> Result<LegacyWire, UpstreamError> {
        let headers = header_map(&target);
        let resp = target
            .client
            .get(target.url.clone())
            .headers(headers.clone())
            .header(ACCEPT, "text/event-stream")
            .send()
            .await
            .map_err(|e| transport_error(&e, timeout))?;
        let status = resp.status();
        if !status.is_success() {
            return Err(match status.as_u16() {
                401 | 403 => UpstreamError::Refused(format!("HTTP {status} on the SSE stream")),
                _ => UpstreamError::Connect(format!("HTTP {status} on the SSE stream (GET {})", target.url)),
            });
        }
        let is_sse = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        if !is_sse {
            return Err(UpstreamError::Protocol(
                "the server did not answer GET with an event stream; not a legacy SSE server".into(),
            ));
        }
        let (ep_tx, ep_rx) = oneshot::channel();
        let gone = CancellationToken::new();
        let stop = CancellationToken::new();
        let why = Arc::new(std::sync::Mutex::new(String::new()));
        let reader = Reader {
            base: target.url.clone(),
            inbound,
            client: target.client.clone(),
            headers: headers.clone(),
            endpoint: std::sync::Mutex::new(None),
        };
        tokio::spawn(reader.run(resp, ep_tx, gone.clone(), stop.clone(), why.clone()));
        let endpoint = match tokio::time::timeout(timeout, ep_rx).await {
            Ok(Ok(Ok(url))) => url,
            Ok(Ok(Err(e))) => {
                stop.cancel();
                return Err(e);
            }
            Ok(Err(_)) => {
                stop.cancel();
                let w = why.lock().unwrap_or_else(|e| e.into_inner()).clone();
                return Err(UpstreamError::Connect(format!(
                    "the SSE stream ended before its endpoint event: {w}"
                )));
            }
            Err(_) => {
                stop.cancel();
                return Err(UpstreamError::Timeout(timeout.as_millis() as u64));
            }
        };
        Ok(LegacyWire {
            client: target.client,
            headers,
            endpoint,
            gone,
            why,
            stop,
        })
    }

    /// POST one message; what it answers arrives on the stream.
    pub(crate) async fn send(&self, msg: &Value, timeout: Duration) -> Result<(), UpstreamError> {
        self.send_bytes(crate::envelope::to_bytes(msg), timeout).await
    }

    /// One message already serialized.
    pub(crate) async fn send_bytes(&self, body: Vec<u8>, timeout: Duration) -> Result<(), UpstreamError> {
        post(&self.client, &self.headers, &self.endpoint, body, timeout).await
    }

    pub(crate) async fn closed(&self) -> String {
        self.gone.cancelled().await;
        self.why.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub(crate) fn shutdown(&self) {
        self.stop.cancel();
    }
}

impl Drop for LegacyWire {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn post(
    client: &reqwest::Client,
    headers: &HeaderMap,
    endpoint: &reqwest::Url,
    body: Vec<u8>,
    timeout: Duration,
) -> Result<(), UpstreamError> {
    let resp = client
        .post(endpoint.clone())
        .headers(headers.clone())
        .header(CONTENT_TYPE, "application/json")
        .timeout(timeout)
        .body(body)
        .send()
        .await
        .map_err(|e| transport_error(&e, timeout))?;
    let status = resp.status();
    if status.is_success() {
        return Ok(());
    }
    Err(match status.as_u16() {
        401 | 403 => UpstreamError::Refused(format!("HTTP {status} on POST")),
        404 => UpstreamError::Closed("the server no longer knows this SSE session (404)".into()),
        // The stream (and its session) is still there: this message failed, not the upstream.
        500.. => UpstreamError::Exchange(format!("HTTP {status} on POST")),
        _ => UpstreamError::Protocol(format!("HTTP {status} on POST")),
    })
}

struct Reader {
    base: reqwest::Url,
    inbound: Arc<Inbound>,
    client: reqwest::Client,
    headers: HeaderMap,
    endpoint: std::sync::Mutex<Option<reqwest::Url>>,
}

type EndpointTx = oneshot::Sender<Result<reqwest::Url, UpstreamError>>;

impl Reader {
    async fn run(
        self,
        mut resp: reqwest::Response,
        ep_tx: EndpointTx,
        gone: CancellationToken,
        stop: CancellationToken,
        why: Arc<std::sync::Mutex<String>>,
    ) {
        let mut ep_tx = Some(ep_tx);
        let mut parser = Parser::default();
        let reason = loop {
            let chunk = tokio::select! {
                c = resp.chunk() => c,
                _ = stop.cancelled() => break "closed by the gateway".to_string(),
            };
            let chunk = match chunk {
                Ok(Some(c)) => c,
                Ok(None) => break "the server ended the SSE stream".to_string(),
                Err(e) => break waygate_core::util::error_chain(&e),
            };
            for (name, data) in parser.push_named(&chunk) {
                if name.as_deref() == Some("endpoint") {
                    let url = self.resolve(&data);
                    if let Ok(u) = &url {
                        *self.endpoint.lock().unwrap_or_else(|e| e.into_inner()) = Some(u.clone());
                    }
                    match ep_tx.take() {
                        Some(tx) => {
                            let _ = tx.send(url);
                        }
                        None => tracing::debug!(upstream = %self.inbound.name, "second endpoint event ignored"),
                    }
                    continue;
                }
                self.message(&data);
            }
            if parser.pending() > MAX_EVENT {
                break format!("an SSE event over {} MiB", MAX_EVENT >> 20);
            }
        };
        tracing::info!(upstream = %self.inbound.name, %reason, "legacy SSE stream closed");
        *why.lock().unwrap_or_else(|e| e.into_inner()) = reason.clone();
        self.inbound.fail_all(UpstreamError::Closed(reason));
        gone.cancel();
    }

    /// The endpoint event's URL, relative to the stream's; another origin is refused.
    fn resolve(&self, data: &[u8]) -> Result<reqwest::Url, UpstreamError> {
        let text = std::str::from_utf8(data)
            .map_err(|_| UpstreamError::Protocol("endpoint event is not UTF-8".into()))?
            .trim();
        let url = self
            .base
            .join(text)
            .map_err(|e| UpstreamError::Protocol(format!("endpoint event {text:?} is not a URL: {e}")))?;
        if url.origin() != self.base.origin() {
            return Err(UpstreamError::Protocol(format!(
                "endpoint event points at another origin ({}); refused",
                url.origin().ascii_serialization()
            )));
        }
        Ok(url)
    }

    fn message(&self, data: &[u8]) {
        let Ok(text) = std::str::from_utf8(data) else {
            tracing::warn!(upstream = %self.inbound.name, "SSE event that is not UTF-8 ignored");
            return;
        };
        if let Some(answer) = self.inbound.handle_text(text, Related::Infer) {
            let Some(ep) = self.endpoint.lock().unwrap_or_else(|e| e.into_inner()).clone() else {
                return;
            };
            let (client, headers) = (self.client.clone(), self.headers.clone());
            tokio::spawn(async move {
                let _ = post(
                    &client,
                    &headers,
                    &ep,
                    crate::envelope::to_bytes(&answer),
                    Duration::from_secs(10),
                )
                .await;
            });
        }
    }
}
