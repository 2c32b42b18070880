//! Response bodies: a whole buffer, or an SSE stream fed by a channel of JSON-RPC messages.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body as HttpBody, Frame};

pub enum Body {
    Full(Option<Bytes>),
    Sse(SseStream),
    /// Any other body (the admin surface's responses, streamed tool results).
    Boxed(Pin<Box<dyn HttpBody<Data = Bytes, Error = Infallible> + Send>>),
}

/// Turns encoded messages into `event: message` frames, with comment keep-alives so idle
/// streams survive proxies.
pub struct SseStream {
    rx: waygate_core::outq::OutRx,
    keepalive: Option<Pin<Box<tokio::time::Interval>>>,
    /// Bytes sent before the first message (e.g. the legacy `endpoint` event).
    preamble: Option<Bytes>,
}

impl Body {
    pub fn empty() -> Self {
        Body::Full(None)
    }
    pub fn bytes(b: impl Into<Bytes>) -> Self {
        Body::Full(Some(b.into()))
    }
    pub fn sse(rx: waygate_core::outq::OutRx, keepalive: Option<Duration>, preamble: Option<Bytes>) -> Self {
        let keepalive = keepalive.map(|d| {
            let mut i = tokio::time::interval_at(tokio::time::Instant::now() + d, d);
            i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            Box::pin(i)
        });
        Body::Sse(SseStream {
            rx,
            keepalive,
            preamble,
        })
    }
}

pub fn sse_frame(msg: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(msg.len() + 24);
    out.extend_from_slice(b"event: message\ndata: ");
    out.extend_from_slice(msg);
    out.extend_from_slice(b"\n\n");
    Bytes::from(out)
}

impl HttpBody for Body {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            Body::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            Body::Boxed(b) => b.as_mut().poll_frame(cx),
            Body::Sse(s) => {
                if let Some(p) = s.preamble.take() {
                    return Poll::Ready(Some(Ok(Frame::data(p))));
                }
                match s.rx.poll_recv(cx) {
                    Poll::Ready(Some(m)) => return Poll::Ready(Some(Ok(Frame::data(sse_frame(&m))))),
                    Poll::Ready(None) => return Poll::Ready(None),
                    Poll::Pending => {}
                }
                if let Some(k) = s.keepalive.as_mut() {
                    if k.as_mut().poll_tick(cx).is_ready() {
                        return Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b": keep-alive\n\n")))));
                    }
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Body::Full(b) => b.is_none(),
            Body::Boxed(b) => b.is_end_stream(),
            Body::Sse(_) => false,
        }
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        match self {
            Body::Full(Some(b)) => hyper::body::SizeHint::with_exact(b.len() as u64),
            Body::Full(None) => hyper::body::SizeHint::with_exact(0),
            Body::Sse(_) => hyper::body::SizeHint::default(),
            Body::Boxed(b) => b.size_hint(),
        }
    }
}
