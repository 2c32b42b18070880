//! The 2024-11-05 HTTP+SSE transport, for clients that predate Streamable HTTP:
//! `GET /sse` opens a stream whose first event (`endpoint`) names the POST URL; every
//! response and server message then travels on that stream, and POSTs answer 202.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use waygate_core::context::{OutTx, TransportKind};
use waygate_core::{util::random_hex, Session};
use waygate_protocol::jsonrpc::{decode_spanned, encode_reply, encode_response, span_text, Incoming as Decoded};
use waygate_protocol::{methods, ErrorObject, Message, ProtocolVersion};

use super::body::Body;
use super::mcp::legacy_context;
use super::{empty, error_response, guard, read_body, sse_response, Caller, Shared};

struct Conn {
    tx: OutTx,
    /// The principal that opened the stream; only it may post to the connection.
    principal: Option<Arc<waygate_core::auth::Principal>>,
    /// The virtual server the stream was opened on; posts must come to the same one.
    view: Option<Arc<waygate_core::view::View>>,
    session: OnceLock<Arc<Session>>,
}

/// Open SSE connections by the id handed out in the `endpoint` event.
#[derive(Default)]
pub(crate) struct SseConnections {
    conns: Mutex<HashMap<String, Arc<Conn>>>,
}

impl SseConnections {
    /// The connection `id` when this caller opened it on this endpoint; another principal
    /// (or another virtual server) gets `None`, as for an id that never existed.
    fn get(&self, id: &str, caller: &Caller) -> Option<Arc<Conn>> {
        let mut map = self.conns.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, c| !c.tx.is_closed());
        map.get(id)
            .filter(|c| c.principal.as_deref().map(|p| p.id.as_str()) == caller.owner())
            .filter(|c| c.view.as_deref().map(|v| v.name.as_str()) == caller.view_name())
            .cloned()
    }
}

pub(super) async fn open(shared: Arc<Shared>, req: Request<Incoming>) -> Response<Body> {
    if req.method() != Method::GET {
        return error_response(
            StatusCode::METHOD_NOT_ALLOWED,
            None,
            &ErrorObject::invalid_request("use GET /sse to open the legacy SSE stream"),
        );
    }
    if !guard::accepts(req.headers(), "text/event-stream") {
        return error_response(
            StatusCode::NOT_ACCEPTABLE,
            None,
            &ErrorObject::invalid_request("GET /sse needs Accept: text/event-stream"),
        );
    }
    let caller = req.extensions().get::<Caller>().cloned().unwrap_or_default();
    let id = random_hex(16);
    let (tx, rx) = waygate_core::outq::channel();
    shared.sse.conns.lock().unwrap_or_else(|e| e.into_inner()).insert(
        id.clone(),
        Arc::new(Conn {
            tx,
            principal: caller.principal.clone(),
            view: caller.view.clone(),
            session: OnceLock::new(),
        }),
    );
    let base = match caller.view_name() {
        Some(v) => format!("/servers/{v}"),
        None => String::new(),
    };
    let preamble = Bytes::from(format!("event: endpoint\ndata: {base}/messages?sessionId={id}\n\n"));
    sse_response(Body::sse(rx, Some(shared.cfg.keepalive), Some(preamble)))
}

pub(super) async fn post(shared: Arc<Shared>, req: Request<Incoming>) -> Response<Body> {
    if req.method() != Method::POST {
        return error_response(
            StatusCode::METHOD_NOT_ALLOWED,
            None,
            &ErrorObject::invalid_request("use POST /messages?sessionId=…"),
        );
    }
    let sid = req
        .uri()
        .query()
        .and_then(|q| {
            q.split('&')
                .find_map(|kv| kv.strip_prefix("sessionId=").or_else(|| kv.strip_prefix("session_id=")))
        })
        .map(str::to_string);
    let caller = req.extensions().get::<Caller>().cloned().unwrap_or_default();
    let Some(conn) = sid.as_deref().and_then(|s| shared.sse.get(s, &caller)) else {
        return error_response(
            StatusCode::NOT_FOUND,
            None,
            &ErrorObject::invalid_request("unknown or closed SSE session; open GET /sse first"),
        );
    };
    if !guard::is_json(req.headers()) {
        return error_response(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            None,
            &ErrorObject::invalid_request("Content-Type must be application/json"),
        );
    }
    let (parts, body) = req.into_parts();
    let caller = parts.extensions.get::<Caller>().cloned().unwrap_or_default();
    let bytes = match read_body(&parts.headers, body, &shared.cfg).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let msgs = match decode_spanned(&bytes) {
        Ok((Decoded::Single(m), arguments_at)) => {
            // An upstream tool gets the caller's arguments as written.
            let json = arguments_at
                .filter(|_| m.method() == Some(methods::TOOLS_CALL))
                .and_then(|at| span_text(&bytes, at));
            dispatch(&shared, &conn, &caller, Ok(m), json);
            return empty(StatusCode::ACCEPTED);
        }
        Ok((Decoded::Batch(b), _)) => b,
        Err(e) => {
            let _ = conn.tx.send(encode_response(e.id.as_ref(), Err(&e.error)));
            return error_response(StatusCode::BAD_REQUEST, e.id.as_ref(), &e.error);
        }
    };
    for m in msgs {
        dispatch(&shared, &conn, &caller, m, None);
    }
    empty(StatusCode::ACCEPTED)
}

fn dispatch(
    shared: &Arc<Shared>,
    conn: &Arc<Conn>,
    caller: &Caller,
    m: Result<Message, waygate_protocol::ParseError>,
    json: Option<Arc<str>>,
) {
    let msg = match m {
        Ok(m) => m,
        Err(e) => {
            let _ = conn.tx.send(encode_response(e.id.as_ref(), Err(&e.error)));
            return;
        }
    };
    let session = conn.session.get().cloned();
    match msg {
        Message::Request { id, method, params } if method == methods::INITIALIZE => {
            let r = match shared.engine.initialize(
                params.as_ref(),
                TransportKind::LegacySse,
                true,
                conn.principal.clone(),
                conn.view.clone(),
            ) {
                Ok((s, result)) => {
                    s.attach_stream(conn.tx.clone());
                    if conn.session.set(s).is_err() {
                        Err(ErrorObject::invalid_request("this connection is already initialized"))
                    } else {
                        Ok(result)
                    }
                }
                Err(e) => Err(e),
            };
            let _ = conn.tx.send(encode_response(Some(&id), r.as_ref()));
        }
        Message::Request { id, method, params } => {
            let version = session.as_ref().map_or(ProtocolVersion::V2024_11_05, |s| s.version);
            let mut ctx = legacy_context(version, session.as_ref(), params.as_ref(), &id);
            ctx.transport = TransportKind::LegacySse;
            caller.apply(&mut ctx);
            ctx.out = Some(conn.tx.clone());
            ctx.arguments_json = json;
            let engine = shared.engine.clone();
            let tx = conn.tx.clone();
            tokio::spawn(async move {
                let r = engine.reply(&method, params, &ctx).await;
                if let Some(s) = &ctx.session {
                    s.finish_inflight(&id);
                }
                let _ = tx.send(encode_reply(Some(&id), r.as_ref()));
            });
        }
        Message::Notification { method, params } => {
            shared.engine.notification(&method, params.as_ref(), session.as_ref())
        }
        Message::Response { id, outcome } => {
            if let Some(s) = &session {
                s.deliver_response(&id, outcome);
            }
        }
    }
}
