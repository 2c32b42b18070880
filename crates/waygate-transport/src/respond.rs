//! Running one request so that its notifications reach the client: the handler's
//! request-scoped channel is watched, and the caller learns whether the whole exchange
//! fits one plain response or needs a stream.

use std::sync::Arc;

use serde_json::{Map, Value};
use waygate_core::outq::{self, OutRx};
use waygate_core::{CallContext, Engine};
use waygate_protocol::jsonrpc::encode_reply;
use waygate_protocol::{ErrorObject, Id, Reply};

/// How a request finished.
pub enum Answer {
    /// Completed before emitting anything: one JSON response.
    Done(Result<Reply, ErrorObject>),
    /// Emitted messages first; the receiver yields them and then the encoded response.
    Streaming(OutRx),
}

/// Run `method` with `ctx`, switching to streaming the moment the handler emits a message.
/// When the stream's receiver is dropped (client gone), the request is cancelled.
pub async fn run(
    engine: Arc<Engine>,
    id: Id,
    method: String,
    params: Option<Map<String, Value>>,
    mut ctx: CallContext,
) -> Answer {
    let (tx, mut rx) = outq::channel();
    ctx.out = Some(tx);
    let cancel = ctx.cancel.clone();
    let session = ctx.session.clone();
    let mut fut = Box::pin(async move {
        let r = engine.reply(&method, params, &ctx).await;
        drop(ctx);
        r
    });
    let first = tokio::select! {
        biased;
        r = &mut fut => {
            // Anything emitted before completion still has to reach the client.
            match rx.try_recv() {
                None => {
                    finish(&session, &id);
                    return Answer::Done(r);
                }
                Some(m) => {
                    let (otx, orx) = outq::channel();
                    let _ = otx.send(m);
                    while let Some(m) = rx.try_recv() {
                        let _ = otx.send(m);
                    }
                    let _ = otx.send(encode(&id, &r));
                    finish(&session, &id);
                    return Answer::Streaming(orx);
                }
            }
        }
        m = rx.recv() => m,
    };
    let (otx, orx) = outq::channel();
    if let Some(m) = first {
        let _ = otx.send(m);
    }
    tokio::spawn(async move {
        let mut open = true;
        let r = loop {
            tokio::select! {
                biased;
                m = rx.recv(), if open => match m {
                    Some(m) => { let _ = otx.send(m); }
                    None => open = false,
                },
                r = &mut fut => break r,
                _ = otx.closed() => {
                    cancel.cancel();
                    finish(&session, &id);
                    return;
                }
            }
        };
        while let Some(m) = rx.try_recv() {
            let _ = otx.send(m);
        }
        let _ = otx.send(encode(&id, &r));
        finish(&session, &id);
    });
    Answer::Streaming(orx)
}

fn finish(session: &Option<Arc<waygate_core::Session>>, id: &Id) {
    if let Some(s) = session {
        s.finish_inflight(id);
    }
}

pub fn encode(id: &Id, r: &Result<Reply, ErrorObject>) -> Vec<u8> {
    encode_reply(Some(id), r.as_ref())
}
