//! A tool call's arguments as the operation's HTTP request, serialized the way the
//! document says (`style` / `explode`), every value percent-encoded for where it goes so
//! no argument can change the request's host, path structure or headers.

use serde_json::{Map, Value};

use crate::operation::{Encoding, Location, Operation, Param, Shape};

/// The HTTP request for one call, ready to send.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub method: String,
    /// `base` + the expanded path + the query string.
    pub url: String,
    pub headers: Vec<(String, String)>,
    /// Content type and bytes.
    pub body: Option<(String, Vec<u8>)>,
}

/// Everything but RFC 3986's unreserved characters, percent-encoded.
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A scalar as text; structured values as JSON.
fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Path and header values (`simple`, `label`, `matrix`), already encoded for a path when
/// `path` is set.
fn simple(p: &Param, v: &Value, path: bool) -> String {
    let enc = |s: &str| if path { encode(s) } else { s.to_string() };
    let (prefix, sep) = match p.style.as_str() {
        "label" => (".".to_string(), if p.explode { "." } else { "," }),
        "matrix" => (format!(";{}=", p.name), if p.explode { ";" } else { "," }),
        _ => (String::new(), ","),
    };
    match v {
        Value::Array(a) => {
            if p.style == "matrix" && p.explode {
                return a.iter().map(|x| format!(";{}={}", p.name, enc(&text(x)))).collect();
            }
            let items: Vec<String> = a.iter().map(|x| enc(&text(x))).collect();
            format!("{prefix}{}", items.join(sep))
        }
        Value::Object(o) => {
            let items: Vec<String> = if p.explode {
                o.iter().map(|(k, x)| format!("{}={}", enc(k), enc(&text(x)))).collect()
            } else {
                o.iter().flat_map(|(k, x)| [enc(k), enc(&text(x))]).collect()
            };
            format!("{prefix}{}", items.join(sep))
        }
        scalar => format!("{prefix}{}", enc(&text(scalar))),
    }
}

/// Query pairs (`form`, `spaceDelimited`, `pipeDelimited`, `deepObject`), unencoded.
fn query(p: &Param, v: &Value, out: &mut Vec<(String, String)>) {
    match v {
        Value::Array(a) if p.explode => out.extend(a.iter().map(|x| (p.name.clone(), text(x)))),
        Value::Array(a) => {
            let sep = match p.style.as_str() {
                "spaceDelimited" => " ",
                "pipeDelimited" => "|",
                _ => ",",
            };
            let items: Vec<String> = a.iter().map(text).collect();
            out.push((p.name.clone(), items.join(sep)));
        }
        Value::Object(o) if p.style == "deepObject" => {
            out.extend(o.iter().map(|(k, x)| (format!("{}[{k}]", p.name), text(x))))
        }
        Value::Object(o) if p.explode => out.extend(o.iter().map(|(k, x)| (k.clone(), text(x)))),
        Value::Object(o) => {
            let items: Vec<String> = o.iter().flat_map(|(k, x)| [k.clone(), text(x)]).collect();
            out.push((p.name.clone(), items.join(",")));
        }
        scalar => out.push((p.name.clone(), text(scalar))),
    }
}

fn form(pairs: &[(String, String)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

impl Operation {
    /// The request for `args` against `base` (no trailing slash needed). Fails, naming the
    /// argument, when a path parameter is missing.
    pub fn request(&self, base: &str, args: &Map<String, Value>) -> Result<Request, String> {
        let mut path = self.path.clone();
        let mut pairs = Vec::new();
        let mut headers = Vec::new();
        let mut cookies = Vec::new();
        for p in &self.params {
            let v = match args.get(&p.arg) {
                Some(Value::Null) | None => {
                    if p.location == Location::Path {
                        return Err(format!("missing required argument {:?}", p.arg));
                    }
                    continue;
                }
                Some(v) => v,
            };
            match p.location {
                Location::Path => path = path.replace(&format!("{{{}}}", p.name), &simple(p, v, true)),
                Location::Query => query(p, v, &mut pairs),
                Location::Header => {
                    let h = simple(p, v, false);
                    if h.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
                        return Err(format!(
                            "argument {:?} contains a line break; not allowed in a header",
                            p.arg
                        ));
                    }
                    headers.push((p.name.clone(), h));
                }
                Location::Cookie => cookies.push(format!("{}={}", p.name, encode(&text(v)))),
            }
        }
        if !cookies.is_empty() {
            headers.push(("cookie".into(), cookies.join("; ")));
        }
        let body = match &self.body {
            None => None,
            Some(b) => {
                let value = match &b.shape {
                    Shape::Whole(arg) => args.get(arg).filter(|v| !v.is_null()).cloned(),
                    Shape::Flat(names) => {
                        let o: Map<String, Value> = names
                            .iter()
                            .filter_map(|n| args.get(n).map(|v| (n.clone(), v.clone())))
                            .collect();
                        (!o.is_empty()).then_some(Value::Object(o))
                    }
                };
                match value {
                    None => None,
                    Some(v) => {
                        let bytes = match b.encoding {
                            Encoding::Json => serde_json::to_vec(&v).map_err(|e| e.to_string())?,
                            Encoding::Text => text(&v).into_bytes(),
                            Encoding::Form => {
                                let pairs: Vec<(String, String)> = match &v {
                                    Value::Object(o) => o.iter().map(|(k, x)| (k.clone(), text(x))).collect(),
                                    other => return Err(format!("the form body must be an object, got {other}")),
                                };
                                form(&pairs).into_bytes()
                            }
                        };
                        Some((b.content_type.clone(), bytes))
                    }
                }
            }
        };
        let mut url = format!("{}{}", base.trim_end_matches('/'), path);
        if !pairs.is_empty() {
            url.push('?');
            url.push_str(&form(&pairs));
        }
        Ok(Request {
            method: self.method.clone(),
            url,
            headers,
            body,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn op(params: Value, body: Option<Value>) -> Operation {
        let mut o = json!({"operationId": "t", "parameters": params});
        if let Some(b) = body {
            o["requestBody"] = b;
        }
        crate::operation::build(&json!({}), false, "POST", "/items/{id}", &o, &[]).unwrap()
    }

    #[test]
    fn arguments_cannot_escape_their_place() {
        let o = op(
            json!([{"name": "id", "in": "path", "required": true},
                   {"name": "q", "in": "query"},
                   {"name": "X-Trace", "in": "header"}]),
            None,
        );
        let args = json!({"id": "../admin?x=1#", "q": "a&b=c d", "X-Trace": "t"});
        let r = o.request("http://127.0.0.1:9/api/", args.as_object().unwrap()).unwrap();
        assert_eq!(
            r.url,
            "http://127.0.0.1:9/api/items/..%2Fadmin%3Fx%3D1%23?q=a%26b%3Dc%20d"
        );
        assert_eq!(r.headers, vec![("X-Trace".to_string(), "t".to_string())]);
        let bad = json!({"id": "1", "X-Trace": "a\r\nHost: evil"});
        assert!(o
            .request("http://h", bad.as_object().unwrap())
            .unwrap_err()
            .contains("line break"));
        assert!(o.request("http://h", &Map::new()).unwrap_err().contains("\"id\""));
    }

    #[test]
    fn styles_and_flattened_bodies() {
        let o = op(
            json!([{"name": "id", "in": "path", "required": true, "style": "label", "explode": false},
                   {"name": "tags", "in": "query", "schema": {"type": "array"}},
                   {"name": "ids", "in": "query", "explode": false},
                   {"name": "f", "in": "query", "style": "deepObject", "explode": true}]),
            Some(json!({"required": true, "content": {"application/json": {"schema":
                {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}, "n": {"type": "integer"}}}}}})),
        );
        assert_eq!(o.tool["inputSchema"]["required"], json!(["id", "name"]));
        let args = json!({"id": [1, 2], "tags": ["a", "b"], "ids": [3, 4], "f": {"k": "v"}, "name": "rex"});
        let r = o.request("http://h", args.as_object().unwrap()).unwrap();
        assert_eq!(r.url, "http://h/items/.1,2?tags=a&tags=b&ids=3%2C4&f%5Bk%5D=v");
        let (ct, b) = r.body.unwrap();
        assert_eq!(ct, "application/json");
        assert_eq!(serde_json::from_slice::<Value>(&b).unwrap(), json!({"name": "rex"}));
    }
}
