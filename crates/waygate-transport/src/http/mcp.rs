//! Streamable HTTP at `/mcp`, serving both eras from one endpoint.
//!
//! A POST is modern (2026-07-28) when its `MCP-Protocol-Version` header names a
//! non-handshake revision or its params carry the `_meta` envelope; then headers are
//! cross-checked with the body and no session is involved. Otherwise it is handshake-era
//! traffic: `initialize` mints a session, later requests name it in `Mcp-Session-Id`, and a
//! request without a session is served statelessly under the version its header names.

use std::sync::Arc;

use http::{header, HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;
use waygate_core::context::TransportKind;
use waygate_core::era::{self, Envelope};
use waygate_core::{CallContext, Session};
use waygate_protocol::jsonrpc::{decode_spanned, encode_reply, encode_response, span_text, Incoming as Decoded};
use waygate_protocol::{codes, headers as mirrored, methods, ErrorObject, Id, Message, ProtocolVersion};

use super::body::Body;
use super::{empty, error_response, guard, json_response, read_body, sse_response, Caller, Shared};
use crate::respond::{self, Answer};

use waygate_protocol::headers::{
    MCP_METHOD as METHOD_HEADER, MCP_NAME as NAME_HEADER, MCP_PROTOCOL_VERSION as VERSION_HEADER,
    MCP_SESSION_ID as SESSION_HEADER,
};

pub(super) async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Response<Body> {
    match *req.method() {
        Method::POST => post(shared, req).await,
        Method::GET => get(shared, req).await,
        Method::DELETE => {
            let caller = req.extensions().get::<Caller>().cloned().unwrap_or_default();
            delete(shared, req.headers(), &caller).await
        }
        _ => {
            let mut r = error_response(
                StatusCode::METHOD_NOT_ALLOWED,
                None,
                &ErrorObject::invalid_request(format!(
                    "method {} is not allowed on /mcp; use POST, GET or DELETE",
                    req.method()
                )),
            );
            r.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, POST, DELETE"));
            r
        }
    }
}

fn header_str(h: &HeaderMap, name: impl http::header::AsHeaderName) -> Option<&str> {
    h.get(name).and_then(|v| v.to_str().ok()).map(str::trim)
}

async fn post(shared: Arc<Shared>, req: Request<Incoming>) -> Response<Body> {
    if !guard::is_json(req.headers()) {
        return error_response(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            None,
            &ErrorObject::invalid_request("Content-Type must be application/json"),
        );
    }
    if !guard::accepts(req.headers(), "application/json") && !guard::accepts(req.headers(), "text/event-stream") {
        return error_response(
            StatusCode::NOT_ACCEPTABLE,
            None,
            &ErrorObject::invalid_request("Accept must include application/json and text/event-stream"),
        );
    }
    let (parts, body) = req.into_parts();
    let headers = parts.headers;
    let caller = parts.extensions.get::<Caller>().cloned().unwrap_or_default();
    let bytes = match read_body(&headers, body, &shared.cfg).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let (decoded, arguments_at) = match decode_spanned(&bytes) {
        Ok(d) => d,
        Err(e) => return error_response(StatusCode::BAD_REQUEST, e.id.as_ref(), &e.error),
    };
    let version_header = header_str(&headers, VERSION_HEADER);
    match decoded {
        Decoded::Batch(items) => batch(shared, &headers, &caller, items).await,
        Decoded::Single(msg) => {
            let params = match &msg {
                Message::Request { params, .. } | Message::Notification { params, .. } => params.as_ref(),
                Message::Response { .. } => None,
            };
            let modern = version_header.is_some_and(|v| !era::is_legacy_version(v)) || era::has_envelope(params);
            // An upstream tool gets the caller's arguments as written.
            let json = arguments_at
                .filter(|_| msg.method() == Some(methods::TOOLS_CALL))
                .and_then(|at| span_text(&bytes, at));
            if modern {
                modern_post(shared, &headers, &caller, msg, json).await
            } else {
                legacy_post(shared, &headers, &caller, msg, json).await
            }
        }
    }
}

/// Status for a modern error, per the 2026-07-28 transport rules.
fn modern_status(e: &ErrorObject) -> StatusCode {
    match e.code {
        codes::METHOD_NOT_FOUND => StatusCode::NOT_FOUND,
        codes::HEADER_MISMATCH | codes::MISSING_CLIENT_CAPABILITY | codes::UNSUPPORTED_PROTOCOL_VERSION => {
            StatusCode::BAD_REQUEST
        }
        _ => StatusCode::OK,
    }
}

async fn modern_post(
    shared: Arc<Shared>,
    headers: &HeaderMap,
    caller: &Caller,
    msg: Message,
    json: Option<Arc<str>>,
) -> Response<Body> {
    let (id, method, mut params) = match msg {
        Message::Request { id, method, params } => (id, method, params),
        Message::Notification { .. } => return empty(StatusCode::ACCEPTED),
        Message::Response { id, .. } => {
            return error_response(
                StatusCode::BAD_REQUEST,
                Some(&id),
                &ErrorObject::invalid_request("2026-07-28 clients never send JSON-RPC responses"),
            )
        }
    };
    let bad = |e: ErrorObject| error_response(StatusCode::BAD_REQUEST, Some(&id), &e);
    let Some(hv) = header_str(headers, VERSION_HEADER) else {
        return bad(ErrorObject::header_mismatch(
            "missing MCP-Protocol-Version header (required with the 2026-07-28 envelope)",
        ));
    };
    // A header naming no revision at all, on a request without the envelope, is a
    // version problem, not a missing envelope.
    if !era::has_envelope(params.as_ref()) && waygate_protocol::ProtocolVersion::parse(hv).is_none() {
        let supported = waygate_protocol::ProtocolVersion::supported_strings();
        return bad(ErrorObject::unsupported_version(hv, &supported));
    }
    if let Some(mv) = era::envelope_version(params.as_ref()) {
        if mv != hv {
            return bad(ErrorObject::header_mismatch(format!(
                "MCP-Protocol-Version header {hv:?} does not match _meta protocolVersion {mv:?}"
            )));
        }
    }
    let envelope = match era::parse_envelope(params.as_mut()) {
        Ok(e) => e,
        Err(e) => return bad(e),
    };
    if let Err(e) = check_mirrored(&shared, headers, &method, params.as_ref()) {
        return bad(e);
    }
    let mut ctx = modern_context(envelope, Some(id.clone()));
    caller.apply(&mut ctx);
    ctx.arguments_json = json;
    if method == methods::SUBSCRIPTIONS_LISTEN {
        let filter = match shared.engine.listen_filter(params.as_ref(), &ctx) {
            Ok(f) => f,
            Err(e) => return error_response(modern_status(&e).max(StatusCode::BAD_REQUEST), Some(&id), &e),
        };
        let (tx, rx) = waygate_core::outq::channel();
        let engine = shared.engine.clone();
        tokio::spawn(async move { engine.run_listen(id, filter, tx, CancellationToken::new()).await });
        return sse_response(Body::sse(rx, Some(shared.cfg.keepalive), None));
    }
    answer(&shared, id, method, params, ctx, true, None).await
}

fn modern_context(e: Envelope, id: Option<Id>) -> CallContext {
    let mut ctx = CallContext::detached(e.version);
    ctx.transport = TransportKind::StreamableHttp;
    ctx.client_caps = Arc::new(e.client_caps);
    ctx.client_info = e.client_info.map(Arc::new);
    ctx.log_level = e.log_level;
    ctx.progress_token = e.progress_token;
    ctx.request_id = id;
    ctx
}

/// `Mcp-Method`, `Mcp-Name` and `Mcp-Param-*` must mirror the body exactly (-32020).
fn check_mirrored(
    shared: &Shared,
    h: &HeaderMap,
    method: &str,
    params: Option<&Map<String, Value>>,
) -> Result<(), ErrorObject> {
    match header_str(h, METHOD_HEADER) {
        None => return Err(ErrorObject::header_mismatch("missing Mcp-Method header")),
        Some(m) if m != method => {
            return Err(ErrorObject::header_mismatch(format!(
                "Mcp-Method header {m:?} does not match body method {method:?}"
            )))
        }
        _ => {}
    }
    let name_key = match method {
        methods::TOOLS_CALL | methods::PROMPTS_GET => Some("name"),
        methods::RESOURCES_READ => Some("uri"),
        methods::TASKS_GET | methods::TASKS_UPDATE | methods::TASKS_CANCEL => Some("taskId"),
        _ => None,
    };
    if let Some(key) = name_key {
        let body = params
            .and_then(|p| p.get(key))
            .and_then(Value::as_str)
            .unwrap_or_default();
        let raw = header_str(h, NAME_HEADER).ok_or_else(|| {
            ErrorObject::header_mismatch(format!("missing Mcp-Name header (must mirror params.{key})"))
        })?;
        let decoded = mirrored::decode_value(raw).ok_or_else(|| {
            ErrorObject::header_mismatch("Mcp-Name header has invalid characters or a malformed base64 sentinel")
        })?;
        if decoded != body {
            return Err(ErrorObject::header_mismatch(format!(
                "Mcp-Name header {decoded:?} does not match params.{key} {body:?}"
            )));
        }
    }
    if method == methods::TOOLS_CALL {
        let name = params
            .and_then(|p| p.get("name"))
            .and_then(Value::as_str)
            .unwrap_or_default();
        let catalog = shared.engine.registry.catalog();
        if let Some(tool) = catalog.tool(name) {
            let args = params.and_then(|p| p.get("arguments"));
            for (hname, prop) in &tool.header_params {
                let header_name = format!("mcp-param-{hname}");
                let body = args.and_then(|a| a.get(prop)).filter(|v| !v.is_null());
                let raw = header_str(h, &header_name);
                match (body, raw) {
                    (Some(_), None) => {
                        return Err(ErrorObject::header_mismatch(format!(
                            "missing Mcp-Param-{hname} header (mirrors argument {prop:?})"
                        )))
                    }
                    (Some(b), Some(raw)) => {
                        let v = mirrored::decode_value(raw).ok_or_else(|| {
                            ErrorObject::header_mismatch(format!("Mcp-Param-{hname} header has invalid characters"))
                        })?;
                        if !mirrored::matches_json(&v, b) {
                            return Err(ErrorObject::header_mismatch(format!(
                                "Mcp-Param-{hname} header {v:?} does not match argument {prop:?}"
                            )));
                        }
                    }
                    (None, Some(raw)) if mirrored::decode_value(raw).is_none() => {
                        return Err(ErrorObject::header_mismatch(format!(
                            "Mcp-Param-{hname} header has invalid characters"
                        )))
                    }
                    _ => {}
                }
            }
        }
    }
    Ok(())
}

async fn legacy_post(
    shared: Arc<Shared>,
    headers: &HeaderMap,
    caller: &Caller,
    msg: Message,
    json: Option<Arc<str>>,
) -> Response<Body> {
    let session = match header_str(headers, SESSION_HEADER) {
        Some(sid) => match caller.session(&shared, sid).await {
            Some(s) => Some(s),
            None => {
                return error_response(
                    StatusCode::NOT_FOUND,
                    None,
                    &ErrorObject::invalid_request(format!(
                        "session {sid:?} not found or expired; send initialize again"
                    )),
                )
            }
        },
        None => None,
    };
    let version = match (&session, header_str(headers, VERSION_HEADER)) {
        (Some(s), _) => s.version,
        (None, Some(v)) => match ProtocolVersion::parse(v) {
            Some(v) => v,
            None => {
                return error_response(
                    StatusCode::BAD_REQUEST,
                    None,
                    &ErrorObject::unsupported_version(v, &ProtocolVersion::supported_strings()),
                )
            }
        },
        (None, None) => ProtocolVersion::HEADERLESS_DEFAULT,
    };
    match msg {
        Message::Request { id, method, params } if method == methods::INITIALIZE => {
            if session.is_some() {
                return error_response(
                    StatusCode::BAD_REQUEST,
                    Some(&id),
                    &ErrorObject::invalid_request("this session is already initialized"),
                );
            }
            match shared.engine.initialize(
                params.as_ref(),
                TransportKind::StreamableHttp,
                true,
                caller.principal.clone(),
                caller.view.clone(),
            ) {
                Ok((s, result)) => {
                    if !shared.engine.publish_session(&s).await {
                        shared.engine.sessions.remove(&s.id, caller.owner());
                        return error_response(
                            StatusCode::SERVICE_UNAVAILABLE,
                            Some(&id),
                            &ErrorObject::internal("cannot record the session in the shared store; retry"),
                        );
                    }
                    let mut r = json_response(StatusCode::OK, encode_response(Some(&id), Ok(&result)));
                    if let Ok(v) = HeaderValue::from_str(&s.id) {
                        r.headers_mut().insert(SESSION_HEADER, v);
                    }
                    r
                }
                Err(e) => error_response(StatusCode::BAD_REQUEST, Some(&id), &e),
            }
        }
        Message::Request { id, method, params } => {
            let mut ctx = legacy_context(version, session.as_ref(), params.as_ref(), &id);
            caller.apply(&mut ctx);
            ctx.arguments_json = json;
            answer(&shared, id, method, params, ctx, false, session.as_ref()).await
        }
        Message::Notification { method, params } => {
            shared.engine.notification(&method, params.as_ref(), session.as_ref());
            empty(StatusCode::ACCEPTED)
        }
        Message::Response { id, outcome } => match &session {
            Some(s) => {
                shared.engine.deliver_answer(s, &id, outcome).await;
                empty(StatusCode::ACCEPTED)
            }
            None => error_response(
                StatusCode::BAD_REQUEST,
                Some(&id),
                &ErrorObject::invalid_request("a JSON-RPC response needs the Mcp-Session-Id it answers"),
            ),
        },
    }
}

pub(crate) fn legacy_context(
    version: ProtocolVersion,
    session: Option<&Arc<Session>>,
    params: Option<&Map<String, Value>>,
    id: &Id,
) -> CallContext {
    let mut ctx = CallContext::detached(version);
    ctx.transport = TransportKind::StreamableHttp;
    ctx.request_id = Some(id.clone());
    ctx.progress_token = era::legacy_progress_token(params);
    if let Some(s) = session {
        ctx.transport = s.transport;
        ctx.client_caps = s.client_caps.clone();
        ctx.client_info = s.client_info.clone();
        ctx.log_level = s.log_level();
        ctx.session = Some(s.clone());
        let token = CancellationToken::new();
        s.track_inflight(id.clone(), token.clone());
        ctx.cancel = token;
    }
    ctx
}

/// Run the request; plain JSON when nothing was emitted, else an SSE stream.
async fn answer(
    shared: &Shared,
    id: Id,
    method: String,
    params: Option<Map<String, Value>>,
    ctx: CallContext,
    modern: bool,
    session: Option<&Arc<Session>>,
) -> Response<Body> {
    match respond::run(shared.engine.clone(), id.clone(), method, params, ctx).await {
        Answer::Done(Ok(v)) => json_response(StatusCode::OK, encode_reply(Some(&id), Ok(&v))),
        Answer::Done(Err(e)) => {
            let status = if modern { modern_status(&e) } else { StatusCode::OK };
            error_response(status, Some(&id), &e)
        }
        Answer::Streaming(rx) => {
            let mut r = sse_response(Body::sse(rx, Some(shared.cfg.keepalive), None));
            if let Some(s) = session {
                if let Ok(v) = HeaderValue::from_str(&s.id) {
                    r.headers_mut().insert(SESSION_HEADER, v);
                }
            }
            r
        }
    }
}

/// A 2025-03-26 batch: requests and notifications (or responses) in one array.
async fn batch(
    shared: Arc<Shared>,
    headers: &HeaderMap,
    caller: &Caller,
    items: Vec<Result<Message, waygate_protocol::ParseError>>,
) -> Response<Body> {
    let sid = header_str(headers, SESSION_HEADER);
    let session = match sid {
        Some(sid) => caller.session(&shared, sid).await,
        None => None,
    };
    if let (Some(sid), None) = (sid, &session) {
        return error_response(
            StatusCode::NOT_FOUND,
            None,
            &ErrorObject::invalid_request(format!("session {sid:?} not found or expired; send initialize again")),
        );
    }
    let version = session
        .as_ref()
        .map(|s| s.version)
        .or_else(|| header_str(headers, VERSION_HEADER).and_then(ProtocolVersion::parse))
        .unwrap_or(ProtocolVersion::HEADERLESS_DEFAULT);
    if !version.allows_batches() {
        return error_response(
            StatusCode::BAD_REQUEST,
            None,
            &ErrorObject::invalid_request(format!(
                "JSON-RPC batches are not allowed in protocol revision {version}; send one message per request"
            )),
        );
    }
    let mut out = Vec::new();
    for (n, item) in items.into_iter().enumerate() {
        // The POST paid for one operation; every further request in the batch pays its own.
        if let (true, Some(limiter), Some(key), Ok(Message::Request { id, method, params })) =
            (n > 0, shared.cfg.rate.get(), &caller.rate_key, &item)
        {
            let cost = match (
                method.as_str(),
                params.as_ref().and_then(|p| p.get("name")).and_then(|v| v.as_str()),
            ) {
                (methods::TOOLS_CALL, Some(name)) => shared.engine.tool_cost(name),
                _ => 1.0,
            };
            if let Err(wait) = limiter.take(key, cost).await {
                shared.engine.metrics.rate_limited("caller");
                let e = ErrorObject::new(
                    codes::RATE_LIMITED,
                    format!("rate limit exceeded; retry after {} ms", wait.as_millis().max(1)),
                );
                out.push(encode_response(Some(id), Err(&e)));
                continue;
            }
        }
        match item {
            Err(e) => out.push(encode_response(e.id.as_ref(), Err(&e.error))),
            Ok(Message::Request { id, method, .. }) if method == methods::INITIALIZE => out.push(encode_response(
                Some(&id),
                Err(&ErrorObject::invalid_request("initialize must not be part of a batch")),
            )),
            Ok(Message::Request { id, method, params }) => {
                let mut ctx = legacy_context(version, session.as_ref(), params.as_ref(), &id);
                caller.apply(&mut ctx);
                ctx.out = None;
                let r = shared.engine.reply(&method, params, &ctx).await;
                if let Some(s) = &session {
                    s.finish_inflight(&id);
                }
                out.push(encode_reply(Some(&id), r.as_ref()));
            }
            Ok(Message::Notification { method, params }) => {
                shared.engine.notification(&method, params.as_ref(), session.as_ref())
            }
            Ok(Message::Response { id, outcome }) => {
                if let Some(s) = &session {
                    shared.engine.deliver_answer(s, &id, outcome).await;
                }
            }
        }
    }
    if out.is_empty() {
        return empty(StatusCode::ACCEPTED);
    }
    let mut body = Vec::with_capacity(out.iter().map(Vec::len).sum::<usize>() + out.len() + 2);
    body.push(b'[');
    for (i, o) in out.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(o);
    }
    body.push(b']');
    json_response(StatusCode::OK, body)
}

/// GET opens the session's standalone stream (handshake era only).
async fn get(shared: Arc<Shared>, req: Request<Incoming>) -> Response<Body> {
    let caller = req.extensions().get::<Caller>().cloned().unwrap_or_default();
    let Some(sid) = header_str(req.headers(), SESSION_HEADER) else {
        let mut r = error_response(
            StatusCode::METHOD_NOT_ALLOWED,
            None,
            &ErrorObject::invalid_request(
                "GET /mcp needs an Mcp-Session-Id from initialize; 2026-07-28 clients use subscriptions/listen",
            ),
        );
        r.headers_mut().insert(header::ALLOW, HeaderValue::from_static("POST"));
        return r;
    };
    let Some(session) = caller.session(&shared, sid).await else {
        return error_response(
            StatusCode::NOT_FOUND,
            None,
            &ErrorObject::invalid_request(format!("session {sid:?} not found or expired")),
        );
    };
    if !guard::accepts(req.headers(), "text/event-stream") {
        return error_response(
            StatusCode::NOT_ACCEPTABLE,
            None,
            &ErrorObject::invalid_request("GET /mcp needs Accept: text/event-stream"),
        );
    }
    let (tx, rx) = waygate_core::outq::channel();
    session.attach_stream(tx);
    sse_response(Body::sse(rx, Some(shared.cfg.keepalive), None))
}

async fn delete(shared: Arc<Shared>, h: &HeaderMap, caller: &Caller) -> Response<Body> {
    let sid = header_str(h, SESSION_HEADER);
    let found = match sid {
        Some(sid) => caller.session(&shared, sid).await.is_some(),
        None => false,
    };
    match sid {
        None => error_response(
            StatusCode::BAD_REQUEST,
            None,
            &ErrorObject::invalid_request("DELETE /mcp needs the Mcp-Session-Id header"),
        ),
        Some(sid) if found && shared.engine.end_session(sid, caller.owner()).await => empty(StatusCode::NO_CONTENT),
        Some(sid) => error_response(
            StatusCode::NOT_FOUND,
            None,
            &ErrorObject::invalid_request(format!("session {sid:?} not found or expired")),
        ),
    }
}
