//! Parsers for each foreign format. Secret-looking values (tokens, keys, passwords,
//! Authorization headers) are never copied: they become `${env:NAME}` references and the
//! variable is listed for the user to provide.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{Map, Value};

use super::Imported;
use crate::config::Upstream;

fn looks_secret(key: &str) -> bool {
    let k = key.to_ascii_uppercase();
    [
        "KEY",
        "TOKEN",
        "SECRET",
        "PASSWORD",
        "PASSWD",
        "AUTH",
        "CREDENTIAL",
        "COOKIE",
    ]
    .iter()
    .any(|w| k.contains(w))
}

fn env_name(server: &str, key: &str) -> String {
    let norm = |s: &str| {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_uppercase()
                } else {
                    '_'
                }
            })
            .collect::<String>()
    };
    if key
        .chars()
        .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
    {
        key.to_string()
    } else {
        format!("{}_{}", norm(server), norm(key))
    }
}

fn sanitize(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    if s.is_empty() {
        "upstream".into()
    } else {
        s
    }
}

/// Copy a string map; secrets turn into references.
fn string_map(imp: &mut Imported, server: &str, field: &str, v: Option<&Value>) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let Some(obj) = v.and_then(Value::as_object) else {
        if v.is_some_and(|v| !v.is_null()) {
            imp.lose(server, field, "not an object of strings; dropped");
        }
        return out;
    };
    for (k, val) in obj {
        let Some(s) = val
            .as_str()
            .map(str::to_string)
            .or_else(|| val.is_number().then(|| val.to_string()))
        else {
            imp.lose(server, &format!("{field}.{k}"), "not a string; dropped");
            continue;
        };
        let secret = looks_secret(k) || (field == "headers" && k.eq_ignore_ascii_case("authorization"));
        if secret && !s.contains("${") && !s.is_empty() {
            let name = env_name(server, k);
            imp.needs_env.push(name.clone());
            imp.lose(
                server,
                &format!("{field}.{k}"),
                format!("secret value not copied; now read from ${{env:{name}}}"),
            );
            out.insert(k.clone(), format!("${{env:{name}}}"));
        } else {
            out.insert(k.clone(), s);
        }
    }
    out
}

fn transport_of(kind: Option<&str>, has_command: bool, url: Option<&str>) -> Option<String> {
    match kind.map(|k| k.to_ascii_lowercase()) {
        Some(k) if k == "stdio" => Some("stdio".into()),
        Some(k) if k == "sse" => Some("sse".into()),
        Some(k)
            if [
                "http",
                "streamable-http",
                "streamablehttp",
                "streamable_http",
                "streamable",
            ]
            .contains(&k.as_str()) =>
        {
            Some("http".into())
        }
        Some(_) => None,
        None if has_command => Some("stdio".into()),
        None => url.map(|u| {
            if u.trim_end_matches('/').ends_with("/sse") {
                "sse".into()
            } else {
                "http".into()
            }
        }),
    }
}

/// One server entry in the common `mcpServers` shape (Claude Desktop/Code, Cursor,
/// Windsurf, FastMCP MCPConfig, and VS Code's `servers`).
fn entry(imp: &mut Imported, raw_name: &str, s: &Map<String, Value>, known_extra: &[&str]) {
    let name = sanitize(raw_name);
    if name != raw_name {
        imp.lose(
            raw_name,
            "name",
            format!("renamed to {name:?} (names allow letters, digits, '-', '_', '.')"),
        );
    }
    let url = s.get("url").or_else(|| s.get("serverUrl")).and_then(Value::as_str);
    let kind = s
        .get("type")
        .or_else(|| s.get("transport"))
        .or_else(|| s.get("transportType"))
        .and_then(Value::as_str);
    let command = s.get("command").and_then(Value::as_str).map(str::to_string);
    let Some(transport) = transport_of(kind, command.is_some(), url) else {
        imp.lose(
            raw_name,
            "type",
            format!("unsupported transport {kind:?}; server skipped"),
        );
        return;
    };
    let mut args = Vec::new();
    for a in s.get("args").and_then(Value::as_array).into_iter().flatten() {
        match a.as_str() {
            Some(x) => args.push(x.to_string()),
            None => imp.lose(raw_name, "args", format!("non-string argument {a} dropped")),
        }
    }
    let env = string_map(imp, &name, "env", s.get("env"));
    let headers = string_map(imp, &name, "headers", s.get("headers"));
    let mut u = Upstream {
        name: name.clone(),
        transport,
        command,
        args,
        env,
        cwd: s.get("cwd").and_then(Value::as_str).map(str::to_string),
        url: url.map(str::to_string),
        headers,
        enabled: s
            .get("disabled")
            .and_then(Value::as_bool)
            .map(|d| !d)
            .or_else(|| s.get("enabled").and_then(Value::as_bool)),
        timeout_secs: None,
        passthrough_headers: vec![],
        ..Default::default()
    };
    if let Some(t) = s.get("timeout").and_then(Value::as_u64) {
        // Claude Code and Cursor give milliseconds; anything small is taken as seconds.
        u.timeout_secs = Some(if t >= 1000 { t / 1000 } else { t });
    }
    let handled = [
        "command",
        "args",
        "env",
        "cwd",
        "url",
        "serverUrl",
        "type",
        "transport",
        "transportType",
        "headers",
        "disabled",
        "enabled",
        "timeout",
    ];
    for (k, _) in s {
        if handled.contains(&k.as_str()) || known_extra.contains(&k.as_str()) {
            continue;
        }
        let why = match k.as_str() {
            "autoApprove" | "alwaysAllow" | "disabledTools" => {
                "client-side approval list; express it as a Waygate tool policy".to_string()
            }
            "envFile" => {
                "env files are not read at run time; put the variables in the environment or use ${file:…}".to_string()
            }
            "auth" | "oauth" => {
                "upstream OAuth settings are not imported; configure the upstream's credentials with ${env:…} headers"
                    .to_string()
            }
            "description" | "icon" | "title" => "display-only metadata".to_string(),
            _ => "unknown field; no Waygate equivalent".to_string(),
        };
        imp.lose(raw_name, k, why);
    }
    if u.transport == "stdio" && u.command.is_none() {
        imp.lose(raw_name, "command", "stdio server without a command; skipped");
        return;
    }
    if u.transport != "stdio" && u.url.is_none() {
        imp.lose(raw_name, "url", "remote server without a URL; skipped");
        return;
    }
    imp.upstreams.push(u);
}

/// `{"mcpServers": {name: {...}}}`.
pub(super) fn mcp_servers(v: &Value, _format: &str) -> Result<Imported, String> {
    let servers = v
        .get("mcpServers")
        .and_then(Value::as_object)
        .ok_or("no \"mcpServers\" object")?;
    let mut imp = Imported::default();
    for (name, s) in servers {
        match s.as_object() {
            Some(s) => entry(&mut imp, name, s, &[]),
            None => imp.lose(name, "", "entry is not an object; skipped"),
        }
    }
    for k in v
        .as_object()
        .into_iter()
        .flat_map(|o| o.keys())
        .filter(|k| *k != "mcpServers")
    {
        imp.lose(
            "(file)",
            k,
            "client setting outside mcpServers; not a server definition",
        );
    }
    Ok(imp)
}

/// VS Code `mcp.json` (`servers` + `inputs`) or `settings.json` (`mcp.servers`).
pub(super) fn vscode(v: &Value) -> Result<Imported, String> {
    let root = if v.get("servers").is_some() {
        v
    } else {
        v.get("mcp").ok_or("no \"servers\" object")?
    };
    let servers = root
        .get("servers")
        .and_then(Value::as_object)
        .ok_or("no \"servers\" object")?;
    let mut imp = Imported::default();
    let mut inputs: BTreeMap<String, String> = BTreeMap::new();
    for i in root.get("inputs").and_then(Value::as_array).into_iter().flatten() {
        if let Some(id) = i.get("id").and_then(Value::as_str) {
            let var = id
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() {
                        c.to_ascii_uppercase()
                    } else {
                        '_'
                    }
                })
                .collect::<String>();
            imp.lose(
                "(inputs)",
                id,
                format!("interactive prompt replaced by environment variable {var}"),
            );
            inputs.insert(id.to_string(), var);
        }
    }
    for (name, s) in servers {
        let Some(obj) = s.as_object() else {
            imp.lose(name, "", "entry is not an object; skipped");
            continue;
        };
        // Rewrite ${input:id} → ${env:VAR} everywhere in the entry before reading it.
        let mut text = Value::Object(obj.clone()).to_string();
        for (id, var) in &inputs {
            let from = format!("${{input:{id}}}");
            if text.contains(&from) {
                imp.needs_env.push(var.clone());
                text = text.replace(&from, &format!("${{env:{var}}}"));
            }
        }
        if text.contains("${workspaceFolder}") || text.contains("${userHome}") {
            imp.lose(
                name,
                "variables",
                "VS Code variables (${workspaceFolder}, ${userHome}) left as written; replace them with real paths",
            );
        }
        let obj: Map<String, Value> = serde_json::from_str(&text).unwrap_or_default();
        entry(&mut imp, name, &obj, &["gallery", "version", "dev"]);
    }
    Ok(imp)
}

/// ContextForge (MCP Gateway) export: gateways become upstreams.
pub(super) fn contextforge(v: &Value) -> Result<Imported, String> {
    let ent = v.get("entities").unwrap_or(v);
    let mut imp = Imported::default();
    let gateways = ent
        .get("gateways")
        .and_then(Value::as_array)
        .ok_or("no entities.gateways array")?;
    for g in gateways {
        let Some(o) = g.as_object() else { continue };
        let name = o.get("name").and_then(Value::as_str).unwrap_or("gateway").to_string();
        let mut m = Map::new();
        if let Some(u) = o.get("url") {
            m.insert("url".into(), u.clone());
        }
        let t = o
            .get("transport")
            .and_then(Value::as_str)
            .unwrap_or("SSE")
            .to_ascii_lowercase();
        m.insert(
            "type".into(),
            Value::String(if t.contains("streamable") { "http".into() } else { t }),
        );
        if let Some(h) = o.get("headers").or_else(|| o.get("auth_headers")) {
            if h.is_object() {
                m.insert("headers".into(), h.clone());
            }
        }
        match o.get("auth_type").and_then(Value::as_str) {
            None | Some("") => {}
            Some(kind) => {
                let var = env_name(&name, "auth token");
                imp.needs_env.push(var.clone());
                imp.lose(
                    &name,
                    "auth_value",
                    format!("encrypted {kind} credential cannot be decrypted outside ContextForge; set {var}"),
                );
                let header = if kind == "bearer" {
                    format!("Bearer ${{env:{var}}}")
                } else {
                    format!("${{env:{var}}}")
                };
                let mut h = m.get("headers").and_then(Value::as_object).cloned().unwrap_or_default();
                h.insert("Authorization".into(), Value::String(header));
                m.insert("headers".into(), Value::Object(h));
            }
        }
        if o.get("enabled").and_then(Value::as_bool) == Some(false) {
            m.insert("disabled".into(), Value::Bool(true));
        }
        entry(&mut imp, &name, &m, &[]);
        for k in o.keys() {
            if ![
                "name",
                "url",
                "transport",
                "headers",
                "auth_headers",
                "auth_type",
                "auth_value",
                "enabled",
                "id",
                "created_at",
                "updated_at",
            ]
            .contains(&k.as_str())
            {
                imp.lose(&name, k, "ContextForge gateway setting with no Waygate equivalent");
            }
        }
    }
    for (kind, why) in [
        (
            "tools",
            "REST tools defined inside ContextForge are not MCP servers; they arrive with the OpenAPI upstream kind",
        ),
        (
            "servers",
            "virtual servers arrive with the federation milestone; re-create them then",
        ),
        ("prompts", "gateway-local prompts are not imported"),
        ("resources", "gateway-local resources are not imported"),
        ("roots", "roots are a client concept"),
    ] {
        let n = ent.get(kind).and_then(Value::as_array).map_or(0, Vec::len);
        if n > 0 {
            imp.lose("(export)", kind, format!("{n} item(s): {why}"));
        }
    }
    Ok(imp)
}

/// The original Python Waygate ("NEXUS") layout: `mcp.json` with a server list (or
/// `mcpServers`) and a `.env` beside it. Values from `.env` are never copied; entries that
/// use them become `${env:NAME}` references.
pub(super) fn nexus(v: &Value, dotenv: Option<&Path>) -> Result<Imported, String> {
    let defined: BTreeMap<String, String> = dotenv
        .and_then(|p| std::fs::read_to_string(p).ok())
        .map(|t| {
            t.lines()
                .filter_map(|l| {
                    let l = l.trim().trim_start_matches("export ");
                    if l.starts_with('#') {
                        return None;
                    }
                    let (k, v) = l.split_once('=')?;
                    Some((
                        k.trim().to_string(),
                        v.trim().trim_matches('"').trim_matches('\'').to_string(),
                    ))
                })
                .collect()
        })
        .unwrap_or_default();
    let mut list: Vec<(String, Map<String, Value>)> = Vec::new();
    if let Some(arr) = v.get("servers").and_then(Value::as_array) {
        for (i, s) in arr.iter().enumerate() {
            if let Some(o) = s.as_object() {
                let name = o
                    .get("name")
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .unwrap_or_else(|| format!("server-{i}"));
                list.push((name, o.clone()));
            }
        }
    } else if let Some(m) = v.get("mcpServers").and_then(Value::as_object) {
        list.extend(
            m.iter()
                .filter_map(|(k, s)| s.as_object().map(|o| (k.clone(), o.clone()))),
        );
    } else {
        return Err("no \"servers\" list or \"mcpServers\" object".into());
    }
    let mut imp = Imported::default();
    for (name, mut o) in list {
        o.remove("name");
        if let Some(env) = o.get_mut("env").and_then(Value::as_object_mut) {
            for val in env.values_mut() {
                let Some(s) = val.as_str() else { continue };
                let referenced = s
                    .strip_prefix("${")
                    .and_then(|r| r.strip_suffix('}'))
                    .or_else(|| s.strip_prefix('$'))
                    .map(str::to_string);
                let from_dotenv = defined
                    .iter()
                    .find(|(dk, dv)| referenced.as_deref() == Some(dk.as_str()) || (*dv == s && !s.is_empty()))
                    .map(|(dk, _)| dk.clone());
                if let Some(var) = referenced.or(from_dotenv) {
                    imp.needs_env.push(var.clone());
                    *val = Value::String(format!("${{env:{var}}}"));
                }
            }
        }
        entry(&mut imp, &name, &o, &["description"]);
    }
    for k in defined.keys() {
        if !imp.needs_env.contains(k) {
            imp.lose("(.env)", k, "defined in .env but used by no server; not imported");
        }
    }
    Ok(imp)
}
