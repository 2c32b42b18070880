//! OpenTelemetry export: the engine's [`SpanRecord`]s become OTLP spans, batched and sent
//! over HTTP/protobuf or gRPC by the OpenTelemetry SDK. Off unless `[otel] endpoint` is set.
//!
//! The engine chooses span ids itself (they are in the log context before the span ends,
//! for children and propagation); the SDK would draw new ones, so an [`IdGenerator`] hands
//! it the ids of the record being converted, through a thread-local set just before.

use std::cell::Cell;
use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

use opentelemetry::trace::{
    Span as _, SpanContext, SpanId, SpanKind, Status, TraceContextExt, TraceFlags, TraceId, TraceState, Tracer as _,
    TracerProvider as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig, WithTonicConfig};
use opentelemetry_sdk::trace::{BatchConfigBuilder, BatchSpanProcessor, IdGenerator, SdkTracer, SdkTracerProvider};
use waygate_core::spans::{SpanRecord, SpanSink};

use crate::config::OtelSection;

thread_local! {
    static NEXT_IDS: Cell<Option<([u8; 16], [u8; 8])>> = const { Cell::new(None) };
}

/// Takes the ids of the span being converted; random ones otherwise.
#[derive(Debug)]
struct EngineIds;

impl IdGenerator for EngineIds {
    fn new_trace_id(&self) -> TraceId {
        NEXT_IDS.with(|c| c.get()).map_or_else(
            || TraceId::from_bytes(waygate_core::spans::random()),
            |(t, _)| TraceId::from_bytes(t),
        )
    }
    fn new_span_id(&self) -> SpanId {
        NEXT_IDS.with(|c| c.get()).map_or_else(
            || SpanId::from_bytes(waygate_core::spans::random()),
            |(_, s)| SpanId::from_bytes(s),
        )
    }
}

/// HTTP for the exporter: reqwest's blocking client, because the SDK's batch processor
/// exports from its own thread, outside any async runtime.
#[derive(Debug)]
struct BlockingHttp(reqwest::blocking::Client);

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for BlockingHttp {
    async fn send_bytes(
        &self,
        request: http::Request<bytes::Bytes>,
    ) -> Result<http::Response<bytes::Bytes>, opentelemetry_http::HttpError> {
        let (parts, body) = request.into_parts();
        let mut rb = self.0.request(parts.method, parts.uri.to_string()).body(body.to_vec());
        for (k, v) in &parts.headers {
            rb = rb.header(k, v);
        }
        let resp = rb.send()?;
        let mut out = http::Response::builder().status(resp.status().as_u16());
        for (k, v) in resp.headers() {
            out = out.header(k.as_str(), v.as_bytes());
        }
        let body = resp.bytes()?;
        Ok(out.body(body)?)
    }
}

pub struct OtelSink {
    tracer: SdkTracer,
    provider: SdkTracerProvider,
}

impl OtelSink {
    /// Build the exporter; must run inside the tokio runtime (gRPC spawns its connection task).
    pub fn start(cfg: &OtelSection) -> Result<Option<OtelSink>, String> {
        let Some(endpoint) = cfg.endpoint.as_deref() else {
            return Ok(None);
        };
        let timeout = Duration::from_millis(cfg.timeout_ms.unwrap_or(10_000));
        let protocol = cfg.protocol.as_deref().unwrap_or("http/protobuf");
        let exporter = match protocol {
            "grpc" => {
                let mut meta = tonic::metadata::MetadataMap::new();
                for (k, v) in &cfg.headers {
                    if let (Ok(k), Ok(v)) = (
                        tonic::metadata::MetadataKey::from_str(&k.to_ascii_lowercase()),
                        tonic::metadata::MetadataValue::from_str(v.expose()),
                    ) {
                        meta.insert(k, v);
                    }
                }
                opentelemetry_otlp::SpanExporter::builder()
                    .with_tonic()
                    .with_endpoint(endpoint)
                    .with_timeout(timeout)
                    .with_metadata(meta)
                    .build()
            }
            "http/protobuf" => {
                let url = if reqwest::Url::parse(endpoint).is_ok_and(|u| u.path() == "/" || u.path().is_empty()) {
                    format!("{}/v1/traces", endpoint.trim_end_matches('/'))
                } else {
                    endpoint.to_string()
                };
                // The blocking client owns a runtime, which must not be created (or
                // dropped) on an async thread.
                let client = std::thread::scope(|s| {
                    s.spawn(|| reqwest::blocking::Client::builder().timeout(timeout).build())
                        .join()
                        .map_err(|_| "otel: http client thread panicked".to_string())
                })?
                .map_err(|e| format!("otel: http client: {e}"))?;
                opentelemetry_otlp::SpanExporter::builder()
                    .with_http()
                    .with_http_client(BlockingHttp(client))
                    .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
                    .with_endpoint(url)
                    .with_timeout(timeout)
                    .with_headers(
                        cfg.headers
                            .iter()
                            .map(|(k, v)| (k.clone(), v.expose().to_string()))
                            .collect::<HashMap<_, _>>(),
                    )
                    .build()
            }
            other => return Err(format!("otel.protocol: got {other:?}, expected grpc or http/protobuf")),
        }
        .map_err(|e| format!("otel: {e}"))?;
        let batch = BatchConfigBuilder::default()
            .with_scheduled_delay(Duration::from_millis(cfg.batch_delay_ms.unwrap_or(1000)))
            .with_max_export_batch_size(512)
            .build();
        let processor = BatchSpanProcessor::builder(exporter).with_batch_config(batch).build();
        let resource = opentelemetry_sdk::Resource::builder_empty()
            .with_service_name(cfg.service_name.clone().unwrap_or_else(|| "waygate".into()))
            .with_attributes([KeyValue::new("service.version", env!("CARGO_PKG_VERSION"))])
            .build();
        let provider = SdkTracerProvider::builder()
            .with_span_processor(processor)
            .with_id_generator(EngineIds)
            .with_resource(resource)
            .build();
        let tracer = provider.tracer("waygate");
        tracing::info!(%endpoint, protocol, "exporting traces over OTLP");
        Ok(Some(OtelSink { tracer, provider }))
    }

    /// Flush what is batched (process exit).
    pub fn shutdown(&self) {
        if let Err(e) = self.provider.shutdown() {
            tracing::warn!(error = %e, "otel: flushing spans failed");
        }
    }
}

impl SpanSink for OtelSink {
    fn export(&self, r: SpanRecord) {
        if !r.sampled {
            return;
        }
        let state = r
            .trace_state
            .as_deref()
            .and_then(|s| TraceState::from_str(s).ok())
            .unwrap_or_default();
        let parent = match r.parent {
            Some((p, remote)) => Context::new().with_remote_span_context(SpanContext::new(
                TraceId::from_bytes(r.trace_id),
                SpanId::from_bytes(p),
                TraceFlags::SAMPLED,
                remote,
                state,
            )),
            None => Context::new(),
        };
        let kind = match r.kind {
            waygate_core::spans::SpanKind::Server => SpanKind::Server,
            waygate_core::spans::SpanKind::Internal => SpanKind::Internal,
            waygate_core::spans::SpanKind::Client => SpanKind::Client,
        };
        let attrs: Vec<KeyValue> = r.attributes.into_iter().map(|(k, v)| KeyValue::new(k, v)).collect();
        let builder = self
            .tracer
            .span_builder(r.name)
            .with_kind(kind)
            .with_start_time(r.start)
            .with_attributes(attrs);
        NEXT_IDS.with(|c| c.set(Some((r.trace_id, r.span_id))));
        let mut span = self.tracer.build_with_context(builder, &parent);
        NEXT_IDS.with(|c| c.set(None));
        if let Some((kind, message)) = r.error {
            span.set_attribute(KeyValue::new("error.type", kind));
            span.set_status(Status::error(message));
        }
        span.end_with_timestamp(r.end);
    }
}
