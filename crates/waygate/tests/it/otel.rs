//! Traces over OTLP/HTTP into a real receiver on loopback: the exported protobuf batches
//! are decoded with the OpenTelemetry protocol types and the span tree is checked — the
//! request span continues the caller's trace (from the `traceparent` header or `_meta`),
//! and the plugin-call span is its child.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use serde_json::json;

use super::common::{Server, TempDir};

/// Accept OTLP/HTTP POSTs; every decoded span goes to the channel.
pub(crate) fn receiver() -> (String, mpsc::Receiver<(String, Span)>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let tx = tx.clone();
            std::thread::spawn(move || {
                let mut r = BufReader::new(conn.try_clone().unwrap());
                let mut w = conn;
                loop {
                    let mut line = String::new();
                    if r.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let path = line.split_whitespace().nth(1).unwrap_or_default().to_string();
                    let mut len = 0usize;
                    loop {
                        let mut h = String::new();
                        if r.read_line(&mut h).unwrap_or(0) == 0 {
                            return;
                        }
                        if h == "\r\n" {
                            break;
                        }
                        if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                            len = v.trim().parse().unwrap_or(0);
                        }
                    }
                    let mut body = vec![0; len];
                    r.read_exact(&mut body).unwrap();
                    let req = ExportTraceServiceRequest::decode(&body[..]).expect("a valid OTLP protobuf batch");
                    for rs in req.resource_spans {
                        let service = rs
                            .resource
                            .iter()
                            .flat_map(|r| r.attributes.iter())
                            .find(|a| a.key == "service.name")
                            .map(|a| format!("{:?}", a.value))
                            .unwrap_or_default();
                        for ss in rs.scope_spans {
                            for s in ss.spans {
                                let _ = tx.send((format!("{path} {service}"), s));
                            }
                        }
                    }
                    let _ = w.write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n",
                    );
                }
            });
        }
    });
    (format!("http://{addr}"), rx)
}

pub(crate) fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub(crate) fn attr(s: &Span, key: &str) -> String {
    s.attributes
        .iter()
        .find(|a| a.key == key)
        .map(|a| format!("{:?}", a.value))
        .unwrap_or_default()
}

/// Collect spans until `n` of trace `trace` arrived (or 15 s passed).
pub(crate) fn spans_of(
    rx: &mpsc::Receiver<(String, Span)>,
    trace: &str,
    n: usize,
    seen: &mut Vec<(String, Span)>,
) -> Vec<Span> {
    let end = Instant::now() + Duration::from_secs(15);
    loop {
        let got: Vec<Span> = seen
            .iter()
            .filter(|(_, s)| hex(&s.trace_id) == trace)
            .map(|(_, s)| s.clone())
            .collect();
        if got.len() >= n || Instant::now() > end {
            return got;
        }
        if let Ok(x) = rx.recv_timeout(Duration::from_millis(200)) {
            seen.push(x);
        }
    }
}

/// An HTTP server that answers 200 and reports each request's `traceparent` header.
fn downstream() -> (String, mpsc::Receiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            let mut r = BufReader::new(conn.try_clone().unwrap());
            let mut tp = String::new();
            loop {
                let mut h = String::new();
                if r.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                    break;
                }
                if let Some(v) = h.to_ascii_lowercase().strip_prefix("traceparent:") {
                    tp = v.trim().to_string();
                }
            }
            let _ = tx.send(tp);
            let _ = conn.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok");
        }
    });
    (format!("http://{addr}/"), rx)
}

#[test]
fn spans_continue_the_callers_trace_and_nest() {
    let (endpoint, rx) = receiver();
    let (down_url, down_rx) = downstream();
    let d = TempDir::new("otel");
    let cfg = d.0.join("waygate.toml");
    std::fs::write(
        &cfg,
        format!(
            "version = 3\n[otel]\nendpoint = \"{endpoint}\"\nservice_name = \"waygate-test\"\nbatch_delay_ms = 200\n\
             [plugins]\nenabled = [\"system\"]\n[plugins.system]\nhttp_hosts = [\"127.0.0.1\"]\n"
        ),
    )
    .unwrap();
    let s = Server::start_in(Some(&d.0), &["--config", cfg.to_str().unwrap()]);
    let mut seen = Vec::new();

    // 1. traceparent in the HTTP header.
    let (trace, parent) = ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7");
    let tp = format!("00-{trace}-{parent}-01");
    let r = s.post(
        &json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hi"}}}),
        &[("traceparent", tp.as_str()), ("tracestate", "vendor=1")],
    );
    assert_eq!(r.json()["result"]["content"][0]["text"], "hi");
    let spans = spans_of(&rx, trace, 2, &mut seen);
    assert_eq!(spans.len(), 2, "{spans:?}");
    let server = spans
        .iter()
        .find(|s| s.name == "tools/call echo")
        .expect("request span");
    let child = spans
        .iter()
        .find(|s| s.name == "execute demo")
        .expect("plugin-call span");
    assert_eq!(
        hex(&server.parent_span_id),
        parent,
        "request span continues the caller's span"
    );
    assert_eq!(server.kind, 2, "SERVER kind");
    assert_eq!(server.trace_state, "vendor=1");
    assert_eq!(
        hex(&child.parent_span_id),
        hex(&server.span_id),
        "plugin call is the request's child"
    );
    assert!(
        child.start_time_unix_nano >= server.start_time_unix_nano
            && child.end_time_unix_nano <= server.end_time_unix_nano
    );
    assert!(attr(server, "mcp.method.name").contains("tools/call"), "{server:?}");
    assert!(attr(server, "gen_ai.tool.name").contains("echo"), "{server:?}");
    assert!(attr(child, "waygate.plugin").contains("demo"), "{child:?}");
    let (tag, _) = &seen[0];
    assert!(tag.starts_with("/v1/traces") && tag.contains("waygate-test"), "{tag}");

    // 2. traceparent in `_meta` (no HTTP header), a failing call marks the span as an error.
    let (trace2, parent2) = ("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331");
    let r = s.post(
        &json!({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"no_such_tool","arguments":{},
            "_meta":{"traceparent": format!("00-{trace2}-{parent2}-01")}}}),
        &[],
    );
    assert!(r.json()["error"].is_object());
    let spans = spans_of(&rx, trace2, 1, &mut seen);
    let server = spans.first().expect("span from _meta traceparent");
    assert_eq!(hex(&server.parent_span_id), parent2);
    assert_eq!(
        server.status.as_ref().map(|st| st.code),
        Some(2),
        "error status: {server:?}"
    );
    assert!(attr(server, "error.type").contains("-32602"), "{server:?}");

    // 3. The trace crosses Waygate: an outbound HTTP call made by a plugin carries a
    // traceparent in the caller's trace, whose parent is Waygate's plugin-call span (itself
    // the request span's child).
    let (trace3, parent3) = ("11111111111111111111111111111111", "2222222222222222");
    let tp3 = format!("00-{trace3}-{parent3}-01");
    let r = s.post(
        &json!({"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"http_request","arguments":{"url": down_url}}}),
        &[("traceparent", tp3.as_str())],
    );
    assert!(
        r.json()["result"]["content"][0]["text"]
            .as_str()
            .unwrap_or_default()
            .contains("200"),
        "{}",
        r.text()
    );
    let sent = down_rx
        .recv_timeout(Duration::from_secs(5))
        .expect("downstream request");
    let spans = spans_of(&rx, trace3, 2, &mut seen);
    let server = spans
        .iter()
        .find(|s| s.name == "tools/call http_request")
        .expect("request span");
    let call = spans
        .iter()
        .find(|s| s.name == "execute system")
        .unwrap_or_else(|| panic!("plugin-call span: {spans:?}"));
    assert_eq!(call.parent_span_id, server.span_id);
    assert_eq!(
        sent,
        format!("00-{trace3}-{}-01", hex(&call.span_id)),
        "propagated traceparent"
    );

    // 4. No traceparent: a new trace, still exported, with no parent.
    let before = seen.len();
    s.post(&json!({"jsonrpc":"2.0","id":3,"method":"tools/list"}), &[]);
    let end = Instant::now() + Duration::from_secs(10);
    while !seen[before..].iter().any(|(_, sp)| sp.name == "tools/list") && Instant::now() < end {
        if let Ok(x) = rx.recv_timeout(Duration::from_millis(200)) {
            seen.push(x);
        }
    }
    let root = seen[before..]
        .iter()
        .find(|(_, sp)| sp.name == "tools/list")
        .map(|(_, sp)| sp)
        .expect("root span");
    assert!(root.parent_span_id.is_empty(), "{root:?}");
}

/// A gRPC OTLP receiver on plain HTTP/2 (h2): answers `TraceService/Export` and decodes
/// each request's length-prefixed protobuf message.
fn grpc_receiver() -> (String, mpsc::Receiver<(String, Span)>) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        rt.block_on(async move {
            while let Ok((sock, _)) = listener.accept().await {
                let tx = tx.clone();
                tokio::spawn(async move {
                    let Ok(mut conn) = h2::server::handshake(sock).await else {
                        return;
                    };
                    // The connection only makes progress while `accept` is polled, so each
                    // stream is read in its own task (reading a body inline stalls as soon as
                    // its DATA frame arrives in a later read than its HEADERS).
                    while let Some(Ok((req, respond))) = conn.accept().await {
                        tokio::spawn(answer_export(req, respond, tx.clone()));
                    }
                });
            }
        });
    });
    (format!("http://{addr}"), rx)
}

async fn answer_export(
    req: http::Request<h2::RecvStream>,
    mut respond: h2::server::SendResponse<bytes::Bytes>,
    tx: mpsc::Sender<(String, Span)>,
) {
    let path = req.uri().path().to_string();
    let mut body = req.into_body();
    let mut buf = Vec::new();
    while let Some(Ok(chunk)) = body.data().await {
        let _ = body.flow_control().release_capacity(chunk.len());
        buf.extend_from_slice(&chunk);
    }
    // gRPC frame: 1 byte compressed flag, 4 bytes length, message.
    if buf.len() >= 5 {
        if let Ok(msg) = ExportTraceServiceRequest::decode(&buf[5..]) {
            for rs in msg.resource_spans {
                for ss in rs.scope_spans {
                    for sp in ss.spans {
                        let _ = tx.send((path.clone(), sp));
                    }
                }
            }
        }
    }
    let resp = http::Response::builder()
        .status(200)
        .header("content-type", "application/grpc")
        .body(())
        .unwrap();
    let Ok(mut stream) = respond.send_response(resp, false) else {
        return;
    };
    let _ = stream.send_data(bytes::Bytes::from_static(&[0, 0, 0, 0, 0]), false);
    let mut trailers = http::HeaderMap::new();
    trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
    let _ = stream.send_trailers(trailers);
}

#[test]
fn spans_export_over_grpc() {
    let (endpoint, rx) = grpc_receiver();
    let d = TempDir::new("otel-grpc");
    let cfg = d.0.join("waygate.toml");
    std::fs::write(
        &cfg,
        format!("version = 3\n[otel]\nendpoint = \"{endpoint}\"\nprotocol = \"grpc\"\nbatch_delay_ms = 200\n"),
    )
    .unwrap();
    let s = Server::start_in(Some(&d.0), &["--config", cfg.to_str().unwrap()]);
    let (trace, parent) = ("5bf92f3577b34da6a3ce929d0e0e4737", "10f067aa0ba902b8");
    let tp = format!("00-{trace}-{parent}-01");
    // A batch exported while the gRPC channel is still connecting can be lost on a loaded
    // machine; a later call of the same trace must then get through.
    let mut seen = Vec::new();
    let mut spans = Vec::new();
    for _ in 0..4 {
        let r = s.post(
            &json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"add","arguments":{"a":1,"b":2}}}),
            &[("traceparent", tp.as_str())],
        );
        assert_eq!(r.json()["result"]["structuredContent"]["sum"], 3.0);
        spans = spans_of(&rx, trace, 2, &mut seen);
        if spans.len() >= 2 {
            break;
        }
    }
    assert!(spans.len() >= 2, "{spans:?}");
    // A request span of the caller's trace with its plugin-call span as a child.
    let server = spans
        .iter()
        .filter(|s| s.name == "execute demo")
        .find_map(|c| {
            spans
                .iter()
                .find(|s| s.name == "tools/call add" && s.span_id == c.parent_span_id)
        })
        .expect("a request span with its plugin-call child");
    assert_eq!(hex(&server.parent_span_id), parent);
    assert_eq!(seen[0].0, "/opentelemetry.proto.collector.trace.v1.TraceService/Export");
}
