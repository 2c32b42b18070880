//! `waygate config schema`: the file format as a JSON Schema, for editors.

use super::{plugins, CURRENT_VERSION};

/// The JSON Schema of the file format, for editors (`waygate config schema`).
pub fn schema() -> serde_json::Value {
    use serde_json::json;
    let s = |d: &str| json!({"type": "string", "description": d});
    let n = |d: &str| json!({"type": "integer", "minimum": 0, "description": d});
    let list = |d: &str| json!({"type": "array", "items": {"type": "string"}, "description": d});
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Waygate configuration (waygate.toml)",
        "type": "object",
        "additionalProperties": false,
        "properties": {
            "version": {"const": CURRENT_VERSION},
            "server": {"type": "object", "additionalProperties": false, "properties": {
                "listen": s("ADDR:PORT to listen on (default 127.0.0.1:8080)"),
                "metrics_listen": s("ADDR:PORT of an extra listener serving only GET /metrics, unauthenticated"),
                "name": s("serverInfo.name"), "instructions": s("instructions for the model"),
                "tls_cert": s("PEM certificate chain; serve HTTPS (HTTP/2 + HTTP/1.1); reloaded on change"),
                "tls_key": s("PEM private key of tls_cert"),
                "tls_client_ca": s("PEM CA certificates; clients must present a certificate they issued (mutual TLS)")}},
            "http": {"type": "object", "additionalProperties": false, "properties": {
                "max_body_bytes": n("request body limit (default 4194304)"),
                "allowed_hosts": list("Host values accepted besides loopback names; required off loopback; [\"*\"] accepts any"),
                "allowed_origins": list("Origin values accepted; \"*\" for any"),
                "keepalive_secs": n("SSE keep-alive comment interval"),
                "max_stream_buffer_bytes": n("bytes queued per client stream before a client that stopped reading is cut off (default 16 MiB)")}},
            "mcp": {"type": "object", "additionalProperties": false, "properties": {
                "state_key": s("secret sealing MRTR requestState (>= 16 chars; use ${env:NAME})"),
                "session_idle_secs": n("idle legacy sessions end after this"),
                "max_sessions": n("open legacy sessions at most"),
                "page_size": n("items per list page"),
                "list_ttl_ms": n("ttlMs cache hint on list results"),
                "validate_output": {"type": "boolean", "description": "check structuredContent against outputSchema"}}},
            "plugins": {"type": "object", "additionalProperties": false, "properties": {
                "enabled": {"type": "array", "items": {"enum": waygate_plugins::BUILTIN}},
                "demo": {"type": "boolean"},
                "system": {"type": "object", "description": "roots, writable, max_read_bytes, max_write_bytes, commands, command_timeout_ms, max_output_bytes, http_hosts, http_timeout_ms, max_search_results"},
                "wasm": {"type": "array", "items": {"type": "object", "required": ["name", "module"], "description": "name, module, memory_mib, time_ms, instances, max_traps, max_output_bytes, fs_read, env, http_hosts, wall_clock, settings"}}}},
            "hooks": {"type": "array", "items": {"type": "object", "required": ["name", "kind"], "properties": {
                "kind": {"enum": plugins::HOOK_KINDS}, "mode": {"enum": ["enforce", "permissive", "disabled"]}}}},
            "admin": {"type": "object", "additionalProperties": false, "properties": {
                "compat_routes": {"type": "boolean", "description": "serve the Python Waygate's REST routes (/mcp/execute, /plugins …); default true"}}},
            "otel": {"type": "object", "additionalProperties": false, "properties": {
                "endpoint": s("OTLP collector URL; unset = no trace export"),
                "protocol": {"enum": ["http/protobuf", "grpc"]},
                "service_name": s("service.name of exported spans (default waygate)"),
                "headers": {"type": "object", "additionalProperties": {"type": "string"}},
                "timeout_ms": n("export timeout"), "batch_delay_ms": n("batching delay")}},
            "pinning": {"type": "object", "additionalProperties": false, "properties": {
                "enabled": {"type": "boolean"}, "plugins": list("plugin globs whose tools are pinned"),
                "approve_new": {"type": "boolean"}}},
            "audit": {"type": "object", "additionalProperties": false, "properties": {
                "enabled": {"type": "boolean"}, "queue_capacity": n("records waiting for the database at most")}},
            "store": {"type": "object", "additionalProperties": false, "properties": {
                "url": s("sqlite://PATH or postgres://USER:PASS@HOST/DB (use ${env:NAME} for the password)")}}
        }
    })
}
