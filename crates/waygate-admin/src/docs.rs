//! The OpenAPI 3.1 document, generated from the handlers' annotations, plus what every
//! operation shares: the two ways to authenticate and the refusals the router makes before
//! a handler runs (401, 403, 429).

use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Content, OpenApi as Doc, Ref, ResponseBuilder};
use utoipa::{Modify, OpenApi};

use crate::Problem;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Waygate admin API",
        description = "Manage a running Waygate: the merged catalog, plugins, upstreams, virtual servers, API keys, tool pins, the audit trail and the configuration — and call catalog tools over plain REST. Errors are RFC 9457 problem documents naming the field at fault. Read-only endpoints accept a key with the `admin:read` scope; changes need `admin`; tool calls need `mcp`.",
        license(name = "Apache-2.0"),
    ),
    tags(
        (name = "catalog", description = "The merged catalog as the gateway exposes it"),
        (name = "tools", description = "Catalog tools over REST, and their tasks"),
        (name = "plugins", description = "Native, WASM, process and upstream plugins"),
        (name = "upstreams", description = "Upstream MCP servers"),
        (name = "servers", description = "Virtual servers: named views of the catalog"),
        (name = "keys", description = "API keys and secret names"),
        (name = "pins", description = "Tool definition pinning"),
        (name = "audit", description = "The hash-chained audit trail"),
        (name = "config", description = "Configuration: effective, validate, apply, snapshots"),
        (name = "operations", description = "Diagnostics, log level, hooks, policies"),
        (name = "compatibility", description = "Routes of the Python Waygate, kept for its clients (deprecated; `[admin] compat_routes = false` turns them off)"),
    ),
    components(schemas(Problem)),
    modifiers(&Shared),
    security(("api_key" = []), ("bearer" = [])),
)]
pub struct ApiDoc;

struct Shared;

impl Modify for Shared {
    fn modify(&self, doc: &mut Doc) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-Key"))),
        );
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// A refusal: a problem document, or the compatibility routes' envelope.
fn problem(description: &str, compat: bool) -> utoipa::openapi::Response {
    let (media, schema) = if compat {
        ("application/json", "CompatError")
    } else {
        (crate::problem::PROBLEM_JSON, "Problem")
    };
    ResponseBuilder::new()
        .description(description)
        .content(media, Content::new(Some(Ref::from_schema_name(schema))))
        .build()
}

fn add_refusals(op: &mut Operation, changes: bool, compat: bool) {
    let r = &mut op.responses.responses;
    r.entry("401".into())
        .or_insert_with(|| problem("No valid credential", compat).into());
    r.entry("403".into())
        .or_insert_with(|| problem("The credential lacks the scope this endpoint needs", compat).into());
    if changes {
        r.entry("429".into())
            .or_insert_with(|| problem("The caller's rate limit is exhausted; see Retry-After", compat).into());
    }
}

/// `get_api_v1_plugins_name`: unique per operation (handler names repeat across modules).
fn operation_id(method: &str, path: &str) -> String {
    let mut id = method.to_string();
    for part in path.split('/').filter(|p| !p.is_empty()) {
        id.push('_');
        id.extend(
            part.chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
                .map(|c| if c == '-' { '_' } else { c }),
        );
    }
    id
}

/// Add the refusals every operation can get (public documents need no credential) and
/// give every operation a unique id.
pub fn finish(mut doc: Doc) -> Doc {
    for (path, item) in doc.paths.paths.iter_mut() {
        for (method, op) in [
            ("get", &mut item.get),
            ("post", &mut item.post),
            ("put", &mut item.put),
            ("delete", &mut item.delete),
            ("patch", &mut item.patch),
            ("head", &mut item.head),
        ] {
            if let Some(op) = op {
                op.operation_id = Some(operation_id(method, path));
            }
        }
        let public = path == "/api/v1/openapi.json";
        let compat = !path.starts_with("/api/");
        for op in [&mut item.get, &mut item.delete, &mut item.head].into_iter().flatten() {
            if public {
                op.security = Some(Vec::new());
            } else {
                add_refusals(op, false, compat);
            }
        }
        for op in [&mut item.post, &mut item.put, &mut item.patch].into_iter().flatten() {
            add_refusals(op, true, compat);
        }
        if compat {
            for op in [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.delete,
                &mut item.patch,
                &mut item.head,
            ]
            .into_iter()
            .flatten()
            {
                deprecate(op);
            }
        }
    }
    doc
}

/// A compatibility route: deprecated (but supported), and every answer carries the
/// Python Waygate's rate-limit headers.
fn deprecate(op: &mut Operation) {
    use utoipa::openapi::header::HeaderBuilder;
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    use utoipa::openapi::{Deprecated, RefOr};
    op.deprecated = Some(Deprecated::True);
    let unlimited = waygate_transport::http::UNLIMITED;
    let headers = [
        (
            "X-RateLimit-Limit",
            format!("Operations the caller's bucket holds (`[limits] burst`); {unlimited} when no caller limit is configured."),
        ),
        (
            "X-RateLimit-Remaining",
            format!("Operations left in the caller's bucket after this request (reads are not charged); {unlimited} when no caller limit is configured."),
        ),
        (
            "X-RateLimit-Reset",
            "Unix time (seconds) when the caller's bucket is full again; now when it is full or unlimited.".to_string(),
        ),
    ];
    for r in op.responses.responses.values_mut() {
        if let RefOr::T(r) = r {
            for (name, text) in &headers {
                let schema = ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(0));
                let h = HeaderBuilder::new()
                    .schema(schema)
                    .description(Some(text.clone()))
                    .build();
                r.headers.insert((*name).to_string(), h);
            }
        }
    }
}
