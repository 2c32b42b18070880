//! From one OpenAPI operation to one MCP tool, and the plan to turn the tool's arguments
//! back into the operation's HTTP request.
//!
//! Parameters become arguments under their own names (suffixed with their location when two
//! locations share a name). A JSON object body is flattened into the arguments when none of
//! its properties collides with a parameter, because models fill flat argument lists far
//! more reliably than nested ones; any other body is one `body` argument.

use serde_json::{json, Map, Value};

use crate::schema::{deref, Converter};
use crate::Error;

/// Where a parameter goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Location {
    Path,
    Query,
    Header,
    Cookie,
}

/// One parameter and how it is serialized (OpenAPI `style` / `explode`).
#[derive(Debug, Clone)]
pub struct Param {
    /// Its name on the wire.
    pub name: String,
    /// Its name among the tool's arguments.
    pub arg: String,
    pub location: Location,
    pub style: String,
    pub explode: bool,
}

/// How the body is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Json,
    Form,
    Text,
}

/// Which arguments make the body.
#[derive(Debug, Clone)]
pub enum Shape {
    /// One argument is the whole body.
    Whole(String),
    /// These arguments are the body object's properties.
    Flat(Vec<String>),
}

#[derive(Debug, Clone)]
pub struct Body {
    pub content_type: String,
    pub encoding: Encoding,
    pub shape: Shape,
}

/// One operation as a tool.
#[derive(Debug, Clone)]
pub struct Operation {
    pub name: String,
    pub method: String,
    pub path: String,
    pub tags: Vec<String>,
    /// The MCP `Tool` definition.
    pub tool: Value,
    pub params: Vec<Param>,
    pub body: Option<Body>,
    /// The tool declares an `outputSchema` (its results then carry `structuredContent`).
    pub structured: bool,
}

/// Headers OpenAPI says are described elsewhere (content negotiation, security schemes).
const IGNORED_HEADERS: [&str; 3] = ["accept", "content-type", "authorization"];

fn location(s: &str) -> Option<Location> {
    Some(match s {
        "path" => Location::Path,
        "query" => Location::Query,
        "header" => Location::Header,
        "cookie" => Location::Cookie,
        _ => return None,
    })
}

fn location_name(l: Location) -> &'static str {
    match l {
        Location::Path => "path",
        Location::Query => "query",
        Location::Header => "header",
        Location::Cookie => "cookie",
    }
}

/// A name for an operation without `operationId`: `get_pets_petId`.
pub fn fallback_name(method: &str, path: &str) -> String {
    let mut out = method.to_ascii_lowercase();
    for c in path.chars() {
        let c = if c.is_ascii_alphanumeric() { c } else { '_' };
        if c == '_' && out.ends_with('_') {
            continue;
        }
        out.push(c);
    }
    out.trim_end_matches('_').to_string()
}

/// The media type a body or response is read as, of those in `content`.
fn pick_media(content: &Map<String, Value>) -> Option<(&String, &Value, Encoding)> {
    let json_like = |k: &str| {
        let k = k.split(';').next().unwrap_or(k).trim().to_ascii_lowercase();
        k == "application/json" || k.ends_with("+json") || k == "*/*"
    };
    if let Some((k, v)) = content.iter().find(|(k, _)| json_like(k)) {
        return Some((k, v, Encoding::Json));
    }
    if let Some((k, v)) = content
        .iter()
        .find(|(k, _)| k.starts_with("application/x-www-form-urlencoded"))
    {
        return Some((k, v, Encoding::Form));
    }
    content
        .iter()
        .find(|(k, _)| k.starts_with("text/plain"))
        .map(|(k, v)| (k, v, Encoding::Text))
}

/// A schema reached through references, for deciding its shape (not for output).
fn shape_of<'a>(doc: &'a Value, schema: &'a Value) -> Result<&'a Value, Error> {
    deref(doc, schema)
}

fn is_plain_object(s: &Value) -> bool {
    let typed = s.get("type") == Some(&json!("object")) || (s.get("type").is_none() && s.get("properties").is_some());
    typed
        && s.get("properties").is_none_or(Value::is_object)
        && !["allOf", "oneOf", "anyOf", "not", "if"]
            .iter()
            .any(|k| s.get(*k).is_some())
}

/// Build one operation. `inherited` are the path item's parameters.
pub fn build(
    doc: &Value,
    legacy: bool,
    method: &str,
    path: &str,
    op: &Value,
    inherited: &[Value],
) -> Result<Operation, Error> {
    let mut conv = Converter::new(doc, legacy);
    let mut properties = Map::new();
    let mut required = Vec::new();
    let mut params = Vec::new();

    // The operation's parameters override the path item's with the same name and location.
    let mut all: Vec<&Value> = Vec::new();
    let own: Vec<&Value> = match op.get("parameters") {
        Some(Value::Array(a)) => a.iter().map(|p| deref(doc, p)).collect::<Result<_, _>>()?,
        _ => Vec::new(),
    };
    for p in inherited {
        let p = deref(doc, p)?;
        let same = |q: &&Value| q.get("name") == p.get("name") && q.get("in") == p.get("in");
        if !own.iter().any(same) {
            all.push(p);
        }
    }
    all.extend(own);

    for p in all {
        let name = p
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| Error::Invalid("a parameter has no name".into()))?;
        let loc_s = p.get("in").and_then(Value::as_str).unwrap_or_default();
        let loc = location(loc_s).ok_or_else(|| Error::Invalid(format!("parameter {name:?}: in = {loc_s:?}")))?;
        if loc == Location::Header && IGNORED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
            continue;
        }
        let raw = match (p.get("schema"), p.get("content").and_then(Value::as_object)) {
            (Some(s), _) => s.clone(),
            (None, Some(c)) => c
                .values()
                .next()
                .and_then(|m| m.get("schema"))
                .cloned()
                .unwrap_or(json!({})),
            _ => json!({}),
        };
        let mut schema = conv.convert(&raw)?;
        if let (Some(o), Some(d)) = (schema.as_object_mut(), p.get("description")) {
            if !o.contains_key("$ref") && !o.contains_key("description") && d.as_str().is_some_and(|d| !d.is_empty()) {
                o.insert("description".into(), d.clone());
            }
        }
        if p.get("deprecated") == Some(&Value::Bool(true)) {
            if let Some(o) = schema.as_object_mut() {
                o.insert("deprecated".into(), Value::Bool(true));
            }
        }
        let arg = if properties.contains_key(name) {
            format!("{name}_{}", location_name(loc))
        } else {
            name.to_string()
        };
        if loc == Location::Path || p.get("required") == Some(&Value::Bool(true)) {
            required.push(Value::String(arg.clone()));
        }
        properties.insert(arg.clone(), schema);
        let default_style = match loc {
            Location::Path | Location::Header => "simple",
            Location::Query | Location::Cookie => "form",
        };
        let style = p
            .get("style")
            .and_then(Value::as_str)
            .unwrap_or(default_style)
            .to_string();
        params.push(Param {
            name: name.to_string(),
            arg,
            location: loc,
            explode: p.get("explode").and_then(Value::as_bool).unwrap_or(style == "form"),
            style,
        });
    }

    let body = match op.get("requestBody") {
        Some(rb) => body(doc, &mut conv, deref(doc, rb)?, &mut properties, &mut required)?,
        None => None,
    };

    let mut input = json!({"type": "object", "properties": properties});
    if !required.is_empty() {
        input["required"] = Value::Array(required);
    }
    let input = conv.finish(input);

    let (output, structured) = match output_schema(doc, &mut conv, op)? {
        Some(s) => (Some(conv.finish(s)), true),
        None => (None, false),
    };

    let name = op
        .get("operationId")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .unwrap_or_else(|| fallback_name(method, path));
    let summary = op
        .get("summary")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty());
    let details = op
        .get("description")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty());
    let description = match (summary, details) {
        (Some(s), Some(d)) if d.starts_with(s) => d.to_string(),
        (Some(s), Some(d)) => format!("{s}\n\n{d}"),
        (Some(s), None) => s.to_string(),
        (None, Some(d)) => d.to_string(),
        (None, None) => format!("{method} {path}"),
    };
    let read_only = matches!(method, "GET" | "HEAD" | "OPTIONS");
    let mut tool = json!({
        "name": name,
        "description": description,
        "inputSchema": input,
        "annotations": {
            "readOnlyHint": read_only,
            "destructiveHint": method == "DELETE",
            "idempotentHint": read_only || matches!(method, "PUT" | "DELETE"),
            "openWorldHint": true,
        },
    });
    if let Some(s) = summary {
        tool["title"] = json!(s);
        tool["annotations"]["title"] = json!(s);
    }
    if let Some(o) = output {
        tool["outputSchema"] = o;
    }
    let tags: Vec<String> = op
        .get("tags")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
        .unwrap_or_default();
    if !tags.is_empty() {
        // Virtual servers select by it (`[[servers]] tags = [...]`).
        tool["_meta"] = json!({ "io.waygate/tags": tags });
    }
    Ok(Operation {
        name,
        method: method.to_string(),
        path: path.to_string(),
        tags,
        tool,
        params,
        body,
        structured,
    })
}

fn body(
    doc: &Value,
    conv: &mut Converter<'_>,
    rb: &Value,
    properties: &mut Map<String, Value>,
    required: &mut Vec<Value>,
) -> Result<Option<Body>, Error> {
    let needed = rb.get("required") == Some(&Value::Bool(true));
    let Some(content) = rb.get("content").and_then(Value::as_object) else {
        return Ok(None);
    };
    let Some((ct, media, encoding)) = pick_media(content) else {
        if needed {
            let types: Vec<&str> = content.keys().map(String::as_str).collect();
            return Err(Error::Unsupported(format!("request body of type {}", types.join(", "))));
        }
        return Ok(None);
    };
    let raw = media.get("schema").cloned().unwrap_or(json!({}));
    let target = shape_of(doc, &raw)?;
    let flat = encoding != Encoding::Text
        && is_plain_object(target)
        && target["properties"]
            .as_object()
            .is_some_and(|p| !p.is_empty() && p.keys().all(|k| !properties.contains_key(k)));
    let content_type = if ct == "*/*" {
        "application/json".to_string()
    } else {
        ct.clone()
    };
    if flat {
        let own_required: Vec<&Value> = target
            .get("required")
            .and_then(Value::as_array)
            .map(|a| a.iter().collect())
            .unwrap_or_default();
        let mut names = Vec::new();
        if let Some(props) = target["properties"].as_object() {
            for (k, s) in props {
                properties.insert(k.clone(), conv.convert(s)?);
                names.push(k.clone());
            }
        }
        if needed {
            required.extend(own_required.into_iter().filter(|r| r.is_string()).cloned());
        }
        return Ok(Some(Body {
            content_type,
            encoding,
            shape: Shape::Flat(names),
        }));
    }
    let arg = ["body", "requestBody", "request_body"]
        .into_iter()
        .find(|n| !properties.contains_key(*n))
        .unwrap_or("body_")
        .to_string();
    let mut schema = conv.convert(&raw)?;
    if let (Some(o), Some(d)) = (schema.as_object_mut(), rb.get("description")) {
        if !o.contains_key("$ref") && !o.contains_key("description") {
            o.insert("description".into(), d.clone());
        }
    }
    properties.insert(arg.clone(), schema);
    if needed {
        required.push(Value::String(arg.clone()));
    }
    Ok(Some(Body {
        content_type,
        encoding,
        shape: Shape::Whole(arg),
    }))
}

/// The schema of the first 2xx JSON response, when it describes an object (MCP output
/// schemas are objects; an array or scalar result is returned as text only).
fn output_schema(doc: &Value, conv: &mut Converter<'_>, op: &Value) -> Result<Option<Value>, Error> {
    let Some(responses) = op.get("responses").and_then(Value::as_object) else {
        return Ok(None);
    };
    let mut codes: Vec<&String> = responses
        .keys()
        .filter(|k| k.starts_with('2') && k.len() == 3)
        .collect();
    codes.sort();
    let Some(code) = codes.first() else {
        return Ok(None);
    };
    let resp = deref(doc, &responses[code.as_str()])?;
    let Some(content) = resp.get("content").and_then(Value::as_object) else {
        return Ok(None);
    };
    let Some((_, media, Encoding::Json)) = pick_media(content) else {
        return Ok(None);
    };
    let Some(raw) = media.get("schema") else {
        return Ok(None);
    };
    let target = shape_of(doc, raw)?;
    if !is_plain_object(target) {
        return Ok(None);
    }
    // Inline the top level so the output schema itself says `type: object`.
    let mut s = conv.convert(target)?;
    if let Some(o) = s.as_object_mut() {
        o.insert("type".into(), json!("object"));
    }
    Ok(Some(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_without_operation_ids_read_like_the_route() {
        assert_eq!(fallback_name("GET", "/pets/{petId}/photos"), "get_pets_petId_photos");
        assert_eq!(fallback_name("POST", "/"), "post");
    }

    #[test]
    fn a_body_whose_property_collides_with_a_parameter_stays_whole() {
        let doc = json!({});
        let op = json!({
            "operationId": "put",
            "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}],
            "requestBody": {"required": true, "content": {"application/json": {"schema":
                {"type": "object", "properties": {"id": {"type": "string"}, "n": {"type": "integer"}}}}}}
        });
        let o = build(&doc, false, "PUT", "/x/{id}", &op, &[]).unwrap();
        assert!(matches!(&o.body.as_ref().unwrap().shape, Shape::Whole(a) if a == "body"));
        assert_eq!(o.tool["inputSchema"]["required"], json!(["id", "body"]));
        assert_eq!(o.tool["annotations"]["idempotentHint"], json!(true));
    }

    #[test]
    fn same_name_in_two_locations_gets_a_suffix() {
        let doc = json!({});
        let op = json!({"parameters": [
            {"name": "v", "in": "query", "schema": {"type": "string"}},
            {"name": "v", "in": "header", "schema": {"type": "string"}}
        ]});
        let o = build(&doc, false, "GET", "/x", &op, &[]).unwrap();
        let args: Vec<&str> = o.params.iter().map(|p| p.arg.as_str()).collect();
        assert_eq!(args, ["v", "v_header"]);
    }
}
