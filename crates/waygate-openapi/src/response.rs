//! An HTTP response as an MCP `CallToolResult`: the body as text (or an image, or a blob),
//! the parsed JSON object as `structuredContent` when the tool declares an output schema,
//! and any non-2xx status as an `isError` result the model can read and act on.

use base64::Engine as _;
use serde_json::{json, Value};

/// Longest error body quoted back to the model.
const ERROR_QUOTE: usize = 2048;

fn media(content_type: Option<&str>) -> String {
    content_type
        .and_then(|c| c.split(';').next())
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

fn is_json(m: &str) -> bool {
    m == "application/json" || m.ends_with("+json")
}

fn is_text(m: &str) -> bool {
    m.is_empty() || m.starts_with("text/") || is_json(m) || m.ends_with("+xml") || m == "application/xml"
}

/// The result for `status` with this body. `url` names the resource for binary bodies.
pub fn result_of(
    status: u16,
    reason: &str,
    content_type: Option<&str>,
    body: &[u8],
    structured: bool,
    url: &str,
) -> Value {
    let m = media(content_type);
    if !(200..300).contains(&status) {
        let text = String::from_utf8_lossy(&body[..body.len().min(ERROR_QUOTE)]);
        let more = if body.len() > ERROR_QUOTE { " …" } else { "" };
        let msg = if text.trim().is_empty() {
            format!("HTTP {status} {reason}")
        } else {
            format!("HTTP {status} {reason}: {}{more}", text.trim())
        };
        return json!({"content": [{"type": "text", "text": msg}], "isError": true});
    }
    if body.is_empty() {
        let mut r = json!({"content": [{"type": "text", "text": format!("HTTP {status} {reason} (no content)")}]});
        if structured {
            r["structuredContent"] = json!({});
        }
        return r;
    }
    if m.starts_with("image/") || m.starts_with("audio/") {
        let kind = if m.starts_with("image/") { "image" } else { "audio" };
        let data = base64::engine::general_purpose::STANDARD.encode(body);
        return json!({"content": [{"type": kind, "data": data, "mimeType": m}]});
    }
    if !is_text(&m) || std::str::from_utf8(body).is_err() {
        let blob = base64::engine::general_purpose::STANDARD.encode(body);
        let mime = if m.is_empty() {
            "application/octet-stream".to_string()
        } else {
            m
        };
        return json!({"content": [{"type": "resource", "resource": {"uri": url, "mimeType": mime, "blob": blob}}]});
    }
    let text = String::from_utf8_lossy(body).into_owned();
    let mut r = json!({"content": [{"type": "text", "text": text}]});
    if structured && (is_json(&m) || m.is_empty()) {
        match serde_json::from_slice::<Value>(body) {
            Ok(v @ Value::Object(_)) => r["structuredContent"] = v,
            _ => {
                // The tool promised structured output; without it the result would break
                // that promise, so it is reported as the failure it is.
                r["isError"] = json!(true);
                r["content"][0]["text"] = json!(format!(
                    "the API answered {status} with a body that is not the JSON object its document describes: {}",
                    r["content"][0]["text"].as_str().unwrap_or_default()
                ));
            }
        }
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_bodies() {
        let r = result_of(
            404,
            "Not Found",
            Some("application/json"),
            br#"{"message":"no pet"}"#,
            true,
            "u",
        );
        assert_eq!(r["isError"], json!(true));
        assert!(r["content"][0]["text"]
            .as_str()
            .unwrap()
            .starts_with("HTTP 404 Not Found: {\"message\""));
        let r = result_of(
            200,
            "OK",
            Some("application/json; charset=utf-8"),
            br#"{"id":1}"#,
            true,
            "u",
        );
        assert_eq!(r["structuredContent"], json!({"id": 1}));
        assert!(r.get("isError").is_none());
        let r = result_of(200, "OK", Some("application/json"), b"[1,2]", false, "u");
        assert_eq!(r["content"][0]["text"], json!("[1,2]"));
        let r = result_of(200, "OK", Some("image/png"), &[137, 80], false, "u");
        assert_eq!(r["content"][0]["type"], json!("image"));
        let r = result_of(
            200,
            "OK",
            Some("application/octet-stream"),
            &[0, 255],
            false,
            "http://h/x",
        );
        assert_eq!(r["content"][0]["resource"]["uri"], json!("http://h/x"));
        let r = result_of(204, "No Content", None, b"", true, "u");
        assert_eq!(r["structuredContent"], json!({}));
    }
}
