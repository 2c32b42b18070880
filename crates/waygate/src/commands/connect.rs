//! `waygate connect CLIENT`: the reverse of `waygate import` — write an MCP client's
//! configuration so it uses this Waygate, over HTTP (URL + key) or by starting
//! `waygate serve --stdio` itself. The change is shown as a diff first; the previous file
//! is kept as `.bak`; every other entry and key of the file is left as it was. Files with
//! comments and trailing commas (JSONC, as VS Code, Cursor and Windsurf accept) are read;
//! the file written is plain JSON (the comments stay in the backup).
//!
//! The key is not written into the file unless `--embed-key` says so: the entry refers to
//! the `WAYGATE_API_KEY` environment variable in the client's own syntax (Claude Code
//! `${VAR}`, Cursor and Windsurf `${env:VAR}`), and VS Code prompts for it once and keeps
//! it in its secret storage (`${input:…}`). Project files like `.mcp.json` are often
//! committed; a key in them would leak.

use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value};

use super::CmdResult;
use crate::cli::Global;
use crate::cli_admin::{Client, ConnectArgs};

const INPUT_ID: &str = "waygate-api-key";

fn home() -> PathBuf {
    std::env::var_os("HOME")
        .or_else(|| std::env::var_os("USERPROFILE"))
        .map_or_else(|| PathBuf::from("."), PathBuf::from)
}

/// Where each client keeps its configuration by default.
fn default_file(client: Client) -> PathBuf {
    match client {
        Client::ClaudeDesktop => {
            if cfg!(target_os = "macos") {
                home().join("Library/Application Support/Claude/claude_desktop_config.json")
            } else if cfg!(windows) {
                std::env::var_os("APPDATA")
                    .map_or_else(home, PathBuf::from)
                    .join("Claude/claude_desktop_config.json")
            } else {
                std::env::var_os("XDG_CONFIG_HOME")
                    .map_or_else(|| home().join(".config"), PathBuf::from)
                    .join("Claude/claude_desktop_config.json")
            }
        }
        Client::ClaudeCode => PathBuf::from(".mcp.json"),
        Client::Cursor => home().join(".cursor/mcp.json"),
        Client::Vscode => PathBuf::from(".vscode/mcp.json"),
        Client::Windsurf => home().join(".codeium/windsurf/mcp_config.json"),
    }
}

/// The object in the file that holds the servers.
fn servers_key(client: Client) -> &'static str {
    match client {
        Client::Vscode => "servers",
        _ => "mcpServers",
    }
}

/// The command line that starts this Waygate on stdio with the same config and data.
fn stdio_entry(g: &Global, client: Client, view: Option<&str>) -> Result<Value, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this program's path: {e}"))?;
    let abs = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let data = super::data_dir(g);
    std::fs::create_dir_all(&data).map_err(|e| format!("cannot create {}: {e}", data.display()))?;
    let mut args = vec!["serve".to_string(), "--stdio".into(), "--data-dir".into()];
    args.push(abs(&data).display().to_string());
    if let Some(c) = &g.config {
        args.extend(["--config".into(), abs(c).display().to_string()]);
    }
    if let Some(v) = view {
        args.extend(["--server".into(), v.to_string()]);
    }
    let mut e = json!({"command": abs(&exe).display().to_string(), "args": args});
    if matches!(client, Client::ClaudeCode | Client::Vscode) {
        e["type"] = json!("stdio");
    }
    Ok(e)
}

fn endpoint(g: &Global, a: &ConnectArgs) -> Result<String, String> {
    let base = match &a.url {
        Some(u) => u.trim_end_matches('/').to_string(),
        None => {
            let cfg = super::load_config(g).map_err(|e| e.to_string())?.cfg;
            let mut addr = cfg
                .server
                .listen
                .map_or_else(|| crate::config::DEFAULT_LISTEN.to_string(), |a| a.to_string());
            if let Some(port) = addr.strip_prefix("0.0.0.0:") {
                addr = format!("127.0.0.1:{port}");
            }
            let scheme = if cfg.server.tls_cert.is_some() { "https" } else { "http" };
            format!("{scheme}://{addr}")
        }
    };
    Ok(match &a.server {
        Some(v) => format!("{base}/servers/{v}/mcp"),
        None => format!("{base}/mcp"),
    })
}

fn http_entry(g: &Global, a: &ConnectArgs) -> Result<Value, String> {
    let url = endpoint(g, a)?;
    let auth = if a.embed_key {
        let k = std::env::var("WAYGATE_API_KEY").map_err(|_| "--embed-key needs the key in WAYGATE_API_KEY")?;
        format!("Bearer {k}")
    } else {
        match a.client {
            Client::ClaudeCode => "Bearer ${WAYGATE_API_KEY}".to_string(),
            Client::Vscode => format!("Bearer ${{input:{INPUT_ID}}}"),
            _ => "Bearer ${env:WAYGATE_API_KEY}".to_string(),
        }
    };
    let headers = json!({"Authorization": auth});
    Ok(match a.client {
        Client::ClaudeCode | Client::Vscode => json!({"type": "http", "url": url, "headers": headers}),
        Client::Windsurf => json!({"serverUrl": url, "headers": headers}),
        _ => json!({"url": url, "headers": headers}),
    })
}

/// The file with this Waygate's entry put in (everything else unchanged).
pub(crate) fn merged(
    old: Option<&str>,
    client: Client,
    name: &str,
    entry: Value,
    path: &Path,
) -> Result<Value, String> {
    let mut doc = match old.map(str::trim) {
        None | Some("") => Value::Object(Map::new()),
        // VS Code, Cursor and Windsurf accept comments and trailing commas, as `import` does.
        Some(text) => serde_json::from_str::<Value>(&crate::import::strip_jsonc(text)).map_err(|e| {
            format!(
                "{}: not valid JSON, even with comments and trailing commas allowed ({e}); fix or move the file, nothing was written",
                path.display()
            )
        })?,
    };
    let root = doc
        .as_object_mut()
        .ok_or_else(|| format!("{}: expected a JSON object at the top", path.display()))?;
    let key = servers_key(client);
    let servers = root.entry(key).or_insert_with(|| Value::Object(Map::new()));
    let servers = servers
        .as_object_mut()
        .ok_or_else(|| format!("{}: `{key}` is not an object", path.display()))?;
    let uses_input = entry.to_string().contains("${input:");
    servers.insert(name.to_string(), entry);
    if uses_input {
        let inputs = root.entry("inputs").or_insert_with(|| json!([]));
        if let Some(list) = inputs.as_array_mut() {
            if !list.iter().any(|i| i["id"] == INPUT_ID) {
                list.push(
                    json!({"type": "promptString", "id": INPUT_ID, "description": "Waygate API key", "password": true}),
                );
            }
        }
    }
    Ok(doc)
}

pub fn run(g: &Global, a: ConnectArgs) -> CmdResult {
    // Claude Desktop's file starts local servers only: it gets the stdio command.
    let stdio = a.stdio || a.client == Client::ClaudeDesktop;
    let entry = if stdio {
        stdio_entry(g, a.client, a.server.as_deref())?
    } else {
        http_entry(g, &a)?
    };
    let path = a.file.clone().unwrap_or_else(|| default_file(a.client));
    let old = match std::fs::read_to_string(&path) {
        Ok(t) => Some(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(format!("cannot read {}: {e}", path.display()).into()),
    };
    let doc = merged(old.as_deref(), a.client, &a.name, entry, &path)?;
    let new_text = serde_json::to_string_pretty(&doc)? + "\n";
    let before = match &old {
        Some(t) => serde_json::from_str::<Value>(&crate::import::strip_jsonc(t))
            .ok()
            .and_then(|v| serde_json::to_string_pretty(&v).ok())
            .unwrap_or_default(),
        None => String::new(),
    };
    println!(
        "# {} ({})",
        path.display(),
        if old.is_some() { "changed" } else { "new file" }
    );
    let lines = waygate_admin::diff_lines(&before, new_text.trim_end());
    if !lines.iter().any(|l| !l.starts_with(' ')) {
        println!("# already up to date; nothing written");
        return Ok(());
    }
    for l in &lines {
        if !l.starts_with(' ') {
            println!("{l}");
        }
    }
    if a.dry_run {
        println!("# dry run: nothing written");
        return Ok(());
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    if old.is_some() {
        let backup = PathBuf::from(format!("{}.bak", path.display()));
        std::fs::copy(&path, &backup).map_err(|e| format!("cannot keep a backup at {}: {e}", backup.display()))?;
        println!("# previous file kept as {}", backup.display());
        if old.as_deref().is_some_and(|t| crate::import::strip_jsonc(t) != t) {
            println!("# its comments and trailing commas are not carried over (the new file is plain JSON); the backup keeps them");
        }
    }
    let tmp = PathBuf::from(format!("{}.waygate-tmp", path.display()));
    std::fs::write(&tmp, &new_text).map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, &path).map_err(|e| format!("cannot replace {}: {e}", path.display()))?;
    println!("# written; restart or reload the client to pick it up");
    if !stdio && !a.embed_key {
        match a.client {
            Client::Vscode => {
                println!("# VS Code asks for the key once (input {INPUT_ID:?}) and keeps it in its secret storage")
            }
            _ => println!("# the client reads the key from WAYGATE_API_KEY in its environment"),
        }
    }
    Ok(())
}
