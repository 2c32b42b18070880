//! What the commands that drive a running server share: the admin API client and the
//! output, an aligned table for people or the API's JSON for scripts (`--json`).

use serde_json::Value;

use crate::cli::{Global, ServerArgs};

/// Call `/api/v1/{path}`; the error names the status and the problem's `detail`.
pub(crate) async fn call(
    g: &Global,
    server: &ServerArgs,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> Result<Value, String> {
    let base = match &server.url {
        Some(u) => u.trim_end_matches('/').to_string(),
        None => {
            let cfg = super::load_config(g).map_err(|e| e.to_string())?.cfg;
            let addr = cfg
                .server
                .listen
                .map_or_else(|| crate::config::DEFAULT_LISTEN.to_string(), |a| a.to_string());
            format!("http://{addr}")
        }
    };
    let url = format!("{base}/api/v1/{path}");
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .map_err(|e| e.to_string())?;
    let mut rb = client.request(method, &url);
    if let Some(k) = &server.api_key {
        rb = rb.bearer_auth(k);
    }
    if let Some(b) = body {
        rb = rb.json(&b);
    }
    let resp = rb.send().await.map_err(|e| format!("connect to {url}: {e}"))?;
    let status = resp.status();
    let text = resp.text().await.map_err(|e| e.to_string())?;
    let v: Value = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text.clone()))
    };
    if !status.is_success() {
        // RFC 9457 problems (`detail`, `field`), or an older `{"error": …}` body.
        let mut msg = v
            .get("detail")
            .and_then(Value::as_str)
            .map(str::to_string)
            .or_else(|| {
                v.get("error").and_then(|e| {
                    e.as_str()
                        .map(str::to_string)
                        .or_else(|| e.get("message").and_then(Value::as_str).map(str::to_string))
                })
            })
            .unwrap_or(text);
        if let Some(f) = v.get("field").and_then(Value::as_str) {
            msg.push_str(&format!(" (field: {f})"));
        }
        let hint = if status == reqwest::StatusCode::UNAUTHORIZED {
            " (pass an admin key with --api-key or WAYGATE_API_KEY)"
        } else {
            ""
        };
        return Err(format!("{status}: {msg}{hint}"));
    }
    Ok(v)
}

/// Rows of cells under headers, printed with every column as wide as its widest cell.
pub(crate) struct Table {
    headers: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(headers: &[&'static str]) -> Self {
        Table {
            headers: headers.to_vec(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn render(&self) -> String {
        let n = self.headers.len();
        let mut width: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for r in &self.rows {
            for (i, c) in r.iter().enumerate().take(n) {
                width[i] = width[i].max(c.chars().count());
            }
        }
        let line = |cells: Vec<&str>| {
            let mut out = String::new();
            for (i, c) in cells.iter().enumerate() {
                if i + 1 == cells.len() {
                    out.push_str(c);
                } else {
                    out.push_str(c);
                    out.push_str(&" ".repeat(width[i] - c.chars().count() + 2));
                }
            }
            out.trim_end().to_string()
        };
        let mut out = line(self.headers.clone());
        for r in &self.rows {
            out.push('\n');
            out.push_str(&line(r.iter().map(String::as_str).collect()));
        }
        out
    }
}

/// A string field, `-` when absent.
pub(crate) fn field(v: &Value, key: &str) -> String {
    match v.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => "-".into(),
        Some(Value::Array(a)) => a
            .iter()
            .map(|x| x.as_str().map_or(x.to_string(), str::to_string))
            .collect::<Vec<_>>()
            .join(","),
        Some(other) => other.to_string(),
    }
}

/// The answer as JSON (`--json`) or as the table `table` makes of it.
pub(crate) fn print(server: &ServerArgs, v: &Value, table: impl FnOnce(&Value) -> Table) {
    if server.json {
        println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
    } else {
        println!("{}", table(v).render());
    }
}

/// Print `text` unless `--json`, where the API's answer is printed instead.
pub(crate) fn say(server: &ServerArgs, v: &Value, text: &str) {
    if server.json {
        println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
    } else {
        println!("{text}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align_to_the_widest_cell() {
        let mut t = Table::new(&["NAME", "STATE"]);
        t.row(vec!["a-long-name".into(), "up".into()]);
        t.row(vec!["b".into(), "down".into()]);
        assert_eq!(t.render(), "NAME         STATE\na-long-name  up\nb            down");
    }
}
