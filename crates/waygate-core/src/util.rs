//! Small helpers shared by the engine and plugins.

use serde_json::{json, Map, Value};

/// `s` cut to at most `max` bytes on a character boundary, with a marker naming the size.
pub fn clip(s: &str, max: usize) -> std::borrow::Cow<'_, str> {
    if s.len() <= max {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut cut = max;
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    std::borrow::Cow::Owned(format!("{}…[{} bytes, cut at {max}]", &s[..cut], s.len()))
}

/// Append lower-case hex of `bytes` to `out`.
pub fn hex_into(bytes: &[u8], out: &mut Vec<u8>) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    out.reserve(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[(b >> 4) as usize]);
        out.push(DIGITS[(b & 15) as usize]);
    }
}

/// Lower-case hex of `bytes`, without a `format!` per byte (this runs per request).
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

/// Random hex string of `bytes` random bytes, from the OS generator.
pub fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    fill_random(&mut buf);
    hex(&buf)
}

/// Fill `buf` from the OS random source (nonces, ids).
pub fn fill_random(buf: &mut [u8]) {
    // getrandom only fails when the OS has no entropy source at all; a zeroed buffer would
    // be guessable, so fall back to time-derived bytes mixed with the address of `buf`.
    if getrandom::getrandom(buf).is_err() {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
            ^ (buf.as_ptr() as usize as u128);
        for (i, b) in buf.iter_mut().enumerate() {
            *b = (seed >> ((i % 16) * 8)) as u8 ^ (i as u8).wrapping_mul(31);
        }
    }
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Milliseconds since the Unix epoch.
pub fn unix_now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// RFC 3339 UTC timestamp with millisecond precision, without a date-time dependency.
pub fn rfc3339_now() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs() as i64;
    let millis = now.subsec_millis();
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (h, m, s) = (rem / 3600, (rem % 3600) / 60, rem % 60);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if mo <= 2 { y + 1 } else { y };
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{m:02}:{s:02}.{millis:03}Z")
}

/// `{ "content": [{ "type": "text", "text": … }] }`
/// What kind of JSON value `v` is, for error messages ("must be an object, not a string").
pub fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

pub fn text_result(text: impl Into<String>) -> Value {
    json!({ "content": [{ "type": "text", "text": text.into() }] })
}

/// A tool result with `isError: true`: a failure the model can read and react to.
pub fn error_result(text: impl Into<String>) -> Value {
    json!({ "content": [{ "type": "text", "text": text.into() }], "isError": true })
}

/// Borrow a string field of an optional params object.
pub fn str_field<'a>(params: Option<&'a Map<String, Value>>, key: &str) -> Option<&'a str> {
    params.and_then(|p| p.get(key)).and_then(Value::as_str)
}

#[cfg(test)]
mod tests {
    #[test]
    fn timestamp_shape() {
        let t = super::rfc3339_now();
        assert_eq!(t.len(), 24, "{t}");
        assert!(t.ends_with('Z'));
    }

    #[test]
    fn random_hex_is_random() {
        assert_ne!(super::random_hex(16), super::random_hex(16));
        assert_eq!(super::random_hex(16).len(), 32);
    }
}

/// An error with its sources, `outer: inner: root` (network errors hide the cause inside).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

/// Cut a tool result down to about `limit` serialized bytes: text items are shortened (on a
/// character boundary) and marked with the original size, other oversized items are
/// replaced by a marker, and `structuredContent` is dropped when it alone is too large.
/// Returns whether anything was cut.
pub fn cap_result(result: &mut Value, limit: usize) -> bool {
    let size = serde_json::to_vec(result).map(|v| v.len()).unwrap_or(0);
    if size <= limit {
        return false;
    }
    let marker = |n: usize| {
        format!("\n…[truncated by Waygate: result was {size} bytes, limit {limit}; {n} bytes of this item omitted]")
    };
    let Some(obj) = result.as_object_mut() else {
        return false;
    };
    if obj
        .get("structuredContent")
        .is_some_and(|s| serde_json::to_vec(s).map_or(0, |v| v.len()) > limit / 2)
    {
        obj.remove("structuredContent");
    }
    let mut budget = limit;
    if let Some(Value::Array(items)) = obj.get_mut("content") {
        for item in items.iter_mut() {
            let len = serde_json::to_vec(item).map(|v| v.len()).unwrap_or(0);
            if len <= budget {
                budget -= len;
                continue;
            }
            match item.get_mut("text") {
                Some(Value::String(text)) => {
                    let mut cut = budget.min(text.len());
                    while cut > 0 && !text.is_char_boundary(cut) {
                        cut -= 1;
                    }
                    let omitted = text.len() - cut;
                    text.truncate(cut);
                    text.push_str(&marker(omitted));
                    budget = 0;
                }
                _ => {
                    *item = json!({"type": "text", "text": marker(len)});
                    budget = budget.saturating_sub(200);
                }
            }
        }
    }
    true
}

#[cfg(test)]
mod cap_tests {
    use super::*;

    #[test]
    fn results_are_capped_with_a_marker() {
        let mut r = json!({"content": [{"type": "text", "text": "é".repeat(5000)}], "structuredContent": {"x": "y".repeat(9000)}});
        assert!(cap_result(&mut r, 1000));
        let text = r["content"][0]["text"].as_str().unwrap();
        assert!(text.contains("truncated by Waygate"), "{text}");
        assert!(text.len() < 1300);
        assert!(r.get("structuredContent").is_none());
        let mut small = json!({"content": [{"type": "text", "text": "ok"}]});
        assert!(!cap_result(&mut small, 1000));
    }
}
