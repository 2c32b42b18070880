//! `waygate import`: read the MCP server configurations people already have and turn
//! them into Waygate upstreams, with an honest report of everything that did not carry over.

mod formats;
pub mod verify;

use std::path::Path;

use serde_json::Value;

use crate::config::Upstream;

/// Source formats, as `--from` names them.
pub const FORMATS: [&str; 8] = [
    "auto",
    "claude",
    "cursor",
    "windsurf",
    "vscode",
    "fastmcp",
    "contextforge",
    "nexus",
];

/// One field that could not be carried over, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Loss {
    pub server: String,
    pub field: String,
    pub reason: String,
}

/// The result of reading one foreign file.
#[derive(Debug, Default)]
pub struct Imported {
    pub format: String,
    pub upstreams: Vec<Upstream>,
    pub losses: Vec<Loss>,
    /// Environment variables the new config refers to and the user must provide.
    pub needs_env: Vec<String>,
}

impl Imported {
    pub(crate) fn lose(&mut self, server: &str, field: &str, reason: impl Into<String>) {
        self.losses.push(Loss {
            server: server.into(),
            field: field.into(),
            reason: reason.into(),
        });
    }
}

/// Parse `path` as `from` (or detect the format). A `.env` file next to a NEXUS-style
/// `mcp.json` is read for the variable names it defines (values are never copied).
pub fn import(path: &Path, from: &str) -> Result<Imported, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let v: Value =
        serde_json::from_str(&strip_jsonc(&text)).map_err(|e| format!("{} is not valid JSON: {e}", path.display()))?;
    let format = if from == "auto" {
        detect(path, &v)?
    } else {
        from.to_string()
    };
    let dotenv = path.parent().map(|d| d.join(".env")).filter(|p| p.exists());
    let mut out = match format.as_str() {
        "claude" | "cursor" | "windsurf" | "fastmcp" => formats::mcp_servers(&v, &format)?,
        "vscode" => formats::vscode(&v)?,
        "contextforge" => formats::contextforge(&v)?,
        "nexus" => formats::nexus(&v, dotenv.as_deref())?,
        other => {
            return Err(format!(
                "unknown format {other:?}; expected one of {}",
                FORMATS.join(", ")
            ))
        }
    };
    out.format = format;
    out.upstreams.sort_by(|a, b| a.name.cmp(&b.name));
    out.needs_env.sort();
    out.needs_env.dedup();
    Ok(out)
}

fn detect(path: &Path, v: &Value) -> Result<String, String> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let p = path.to_string_lossy().to_ascii_lowercase();
    if v.get("servers").is_some_and(Value::is_object) || v.pointer("/mcp/servers").is_some() || p.contains(".vscode") {
        return Ok("vscode".into());
    }
    if v.get("entities").is_some() || v.get("gateways").is_some() {
        return Ok("contextforge".into());
    }
    if v.get("servers").is_some_and(Value::is_array) || name == "nexus.json" {
        return Ok("nexus".into());
    }
    if let Some(servers) = v.get("mcpServers").and_then(Value::as_object) {
        if servers.values().any(|s| s.get("serverUrl").is_some()) || p.contains("windsurf") || p.contains("codeium") {
            return Ok("windsurf".into());
        }
        if servers.values().any(|s| s.get("transport").is_some()) {
            return Ok("fastmcp".into());
        }
        if p.contains(".cursor") {
            return Ok("cursor".into());
        }
        return Ok("claude".into());
    }
    Err(format!(
        "cannot tell the format of {}: no mcpServers, servers or entities key; pass --from {}",
        path.display(),
        FORMATS[1..].join("|")
    ))
}

/// VS Code and Cursor files are JSON with comments and trailing commas.
pub(crate) fn strip_jsonc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    let mut in_str = false;
    while let Some(c) = chars.next() {
        if in_str {
            out.push(c);
            if c == '\\' {
                if let Some(n) = chars.next() {
                    out.push(n);
                }
            } else if c == '"' {
                in_str = false;
            }
            continue;
        }
        match (c, chars.peek()) {
            ('"', _) => {
                in_str = true;
                out.push(c);
            }
            ('/', Some('/')) => {
                for n in chars.by_ref() {
                    if n == '\n' {
                        out.push('\n');
                        break;
                    }
                }
            }
            ('/', Some('*')) => {
                chars.next();
                let mut prev = ' ';
                for n in chars.by_ref() {
                    if prev == '*' && n == '/' {
                        break;
                    }
                    prev = n;
                }
            }
            _ => out.push(c),
        }
    }
    // Trailing commas before } or ].
    let mut cleaned = String::with_capacity(out.len());
    let bytes: Vec<char> = out.chars().collect();
    let mut in_str = false;
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if c == '"' && (i == 0 || bytes[i - 1] != '\\') {
            in_str = !in_str;
        }
        if c == ',' && !in_str {
            let next = bytes[i + 1..].iter().find(|c| !c.is_whitespace());
            if matches!(next, Some('}') | Some(']')) {
                i += 1;
                continue;
            }
        }
        cleaned.push(c);
        i += 1;
    }
    cleaned
}

/// Render the report as text.
pub fn report(imp: &Imported) -> String {
    let mut s = format!(
        "# imported {} upstream(s) from {} format\n",
        imp.upstreams.len(),
        imp.format
    );
    if imp.losses.is_empty() {
        s.push_str("# lossiness: nothing was dropped\n");
    } else {
        s.push_str(&format!(
            "# lossiness: {} field(s) not carried over\n",
            imp.losses.len()
        ));
        for l in &imp.losses {
            s.push_str(&format!("#   {}: {}: {}\n", l.server, l.field, l.reason));
        }
    }
    if !imp.needs_env.is_empty() {
        s.push_str(&format!(
            "# set these environment variables before serving: {}\n",
            imp.needs_env.join(", ")
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    #[test]
    fn jsonc_comments_and_trailing_commas() {
        let s = super::strip_jsonc("{\n// c\n\"a\": \"x//y\", /* b */ \"b\": [1,2,],\n}");
        let v: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(v["a"], "x//y");
        assert_eq!(v["b"], serde_json::json!([1, 2]));
    }
}
