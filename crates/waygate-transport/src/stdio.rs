//! MCP over stdin/stdout: one JSON message per line. stdout carries protocol messages
//! only; logs go to stderr.
//!
//! Requests run concurrently so that `notifications/cancelled` and answers to
//! server→client requests can arrive while a call is in progress. A line with the
//! 2026-07-28 envelope is served statelessly; `initialize` pins the connection to a
//! handshake-era session.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Map, Value};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio_util::sync::CancellationToken;
use waygate_core::context::TransportKind;
use waygate_core::era;
use waygate_core::{CallContext, Engine, Session};
use waygate_protocol::jsonrpc::{decode_spanned, encode_reply, encode_response, span_text, Incoming};
use waygate_protocol::{methods, ErrorObject, Id, Message, ParseError, ProtocolVersion};

/// Longest accepted line; longer input is answered with an error and skipped.
pub const MAX_LINE: usize = 4 * 1024 * 1024;

struct Conn {
    engine: Arc<Engine>,
    out: waygate_core::OutTx,
    session: Mutex<Option<Arc<Session>>>,
    inflight: Mutex<HashMap<Id, CancellationToken>>,
    tasks: tokio_util::task::TaskTracker,
    /// The virtual server this connection serves (`serve --stdio --server NAME`).
    view: Option<Arc<waygate_core::view::View>>,
}

/// Serve one stdio connection until the input ends; in-flight requests get up to 10 s.
pub async fn serve<R, W>(engine: Arc<Engine>, input: R, output: W) -> std::io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin + Send + 'static,
{
    serve_view(engine, None, input, output).await
}

/// [`serve`] on a virtual server's view.
pub async fn serve_view<R, W>(
    engine: Arc<Engine>,
    view: Option<Arc<waygate_core::view::View>>,
    input: R,
    mut output: W,
) -> std::io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let (tx, mut rx) = waygate_core::outq::channel();
    let writer = tokio::spawn(async move {
        while let Some(mut m) = rx.recv().await {
            m.push(b'\n');
            // Batch whatever else is ready into one write.
            while let Some(mut n) = rx.try_recv() {
                n.push(b'\n');
                m.extend_from_slice(&n);
            }
            if output.write_all(&m).await.is_err() || output.flush().await.is_err() {
                break;
            }
        }
    });
    let conn = Arc::new(Conn {
        engine,
        out: tx,
        session: Mutex::new(None),
        inflight: Mutex::new(HashMap::new()),
        tasks: tokio_util::task::TaskTracker::new(),
        view,
    });
    let mut reader = BufReader::with_capacity(64 * 1024, input);
    let mut line = Vec::with_capacity(4096);
    loop {
        line.clear();
        // A shutdown (SIGTERM) stops reading; what is in flight still finishes below.
        let mut limited = (&mut reader).take(MAX_LINE as u64 + 1);
        let n = tokio::select! {
            r = limited.read_until(b'\n', &mut line) => r?,
            _ = conn.engine.shutdown.cancelled() => break,
        };
        if n == 0 {
            break;
        }
        if line.len() > MAX_LINE && !line.ends_with(b"\n") {
            let e = ErrorObject::invalid_request(format!("message exceeds the {MAX_LINE}-byte line limit"));
            let _ = conn.out.send(encode_response(None, Err(&e)));
            // Skip the rest of the oversized line.
            let mut sink = Vec::new();
            reader.read_until(b'\n', &mut sink).await?;
            continue;
        }
        let text = trim(&line);
        if text.is_empty() {
            continue;
        }
        match decode_spanned(text) {
            Err(e) => reply_err(&conn, e),
            Ok((Incoming::Single(m), arguments_at)) => {
                // An upstream tool gets the caller's arguments as written.
                let json = arguments_at
                    .filter(|_| m.method() == Some(methods::TOOLS_CALL))
                    .and_then(|at| span_text(text, at));
                on_message(&conn, m, json)
            }
            Ok((Incoming::Batch(items), _)) => {
                let allowed = conn
                    .session
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .as_ref()
                    .is_some_and(|s| s.version.allows_batches());
                if !allowed {
                    let e = ErrorObject::invalid_request(
                        "JSON-RPC batches are only allowed in protocol revision 2025-03-26",
                    );
                    let _ = conn.out.send(encode_response(None, Err(&e)));
                    continue;
                }
                for item in items {
                    match item {
                        Ok(m) => on_message(&conn, m, None),
                        Err(e) => reply_err(&conn, e),
                    }
                }
            }
        }
    }
    conn.tasks.close();
    let _ = tokio::time::timeout(Duration::from_secs(10), conn.tasks.wait()).await;
    // Registered (so catalog events reach it) until the connection ends.
    let session = conn.session.lock().unwrap_or_else(|e| e.into_inner()).take();
    if let Some(s) = session {
        conn.engine.sessions.remove(&s.id, s.owner());
    }
    drop(conn);
    let _ = writer.await;
    Ok(())
}

fn trim(line: &[u8]) -> &[u8] {
    let mut s = line;
    while let [first, rest @ ..] = s {
        if first.is_ascii_whitespace() {
            s = rest
        } else {
            break;
        }
    }
    while let [rest @ .., last] = s {
        if last.is_ascii_whitespace() {
            s = rest
        } else {
            break;
        }
    }
    s
}

fn reply_err(conn: &Conn, e: ParseError) {
    let _ = conn.out.send(encode_response(e.id.as_ref(), Err(&e.error)));
}

fn on_message(conn: &Arc<Conn>, m: Message, json: Option<Arc<str>>) {
    let session = conn.session.lock().unwrap_or_else(|e| e.into_inner()).clone();
    match m {
        Message::Request { id, method, params } => on_request(conn, session, id, method, params, json),
        Message::Notification { method, params } => {
            if method == methods::N_CANCELLED {
                if let Some(id) = params
                    .as_ref()
                    .and_then(|p| p.get("requestId"))
                    .and_then(Id::from_value)
                {
                    if let Some(t) = conn.inflight.lock().unwrap_or_else(|e| e.into_inner()).remove(&id) {
                        t.cancel();
                    }
                }
            }
            conn.engine.notification(&method, params.as_ref(), session.as_ref());
        }
        Message::Response { id, outcome } => {
            if let Some(s) = session {
                s.deliver_response(&id, outcome);
            }
        }
    }
}

fn on_request(
    conn: &Arc<Conn>,
    session: Option<Arc<Session>>,
    id: Id,
    method: String,
    mut params: Option<Map<String, Value>>,
    json: Option<Arc<str>>,
) {
    let send = |r: Result<Value, ErrorObject>| {
        let _ = conn.out.send(encode_response(Some(&id), r.as_ref()));
    };
    let mut ctx = if era::has_envelope(params.as_ref()) {
        match era::parse_envelope(params.as_mut()) {
            Ok(e) => {
                let mut ctx = CallContext::detached(e.version);
                ctx.client_caps = Arc::new(e.client_caps);
                ctx.client_info = e.client_info.map(Arc::new);
                ctx.log_level = e.log_level;
                ctx.progress_token = e.progress_token;
                ctx
            }
            Err(e) => return send(Err(e)),
        }
    } else if method == methods::INITIALIZE {
        if session.is_some() {
            return send(Err(ErrorObject::invalid_request(
                "this connection is already initialized",
            )));
        }
        return match conn
            .engine
            .initialize(params.as_ref(), TransportKind::Stdio, true, None, conn.view.clone())
        {
            Ok((s, result)) => {
                // Registered, with the connection as its standalone stream: list changes
                // and resource updates go out on it like any other message.
                s.attach_stream(conn.out.clone());
                *conn.session.lock().unwrap_or_else(|e| e.into_inner()) = Some(s);
                send(Ok(result))
            }
            Err(e) => send(Err(e)),
        };
    } else {
        // Un-enveloped traffic before initialize is served leniently as the newest
        // handshake revision rather than dropped: some clients probe first.
        let version = session.as_ref().map_or(ProtocolVersion::LATEST_LEGACY, |s| s.version);
        let mut ctx = CallContext::detached(version);
        ctx.progress_token = era::legacy_progress_token(params.as_ref());
        if let Some(s) = &session {
            ctx.client_caps = s.client_caps.clone();
            ctx.client_info = s.client_info.clone();
            ctx.log_level = s.log_level();
            ctx.session = Some(s.clone());
        }
        ctx
    };
    ctx.transport = TransportKind::Stdio;
    ctx.request_id = Some(id.clone());
    ctx.out = Some(conn.out.clone());
    ctx.view = conn.view.clone();
    ctx.arguments_json = json;
    let token = ctx.cancel.clone();
    conn.inflight
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(id.clone(), token.clone());
    let c = conn.clone();
    conn.tasks.spawn(async move {
        if method == methods::SUBSCRIPTIONS_LISTEN && ctx.is_modern() {
            match c.engine.listen_filter(params.as_ref(), &ctx) {
                Ok(f) => c.engine.run_listen(id.clone(), f, c.out.clone(), token).await,
                Err(e) => {
                    let _ = c.out.send(encode_response(Some(&id), Err(&e)));
                }
            }
        } else {
            let r = c.engine.reply(&method, params, &ctx).await;
            // A cancelled request gets no response.
            if !token.is_cancelled() {
                let _ = c.out.send(encode_reply(Some(&id), r.as_ref()));
            }
        }
        c.inflight.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
    });
}
