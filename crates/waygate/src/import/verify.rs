//! `--verify`: start each imported stdio upstream, run the MCP handshake and list its
//! tools, before anything is written. (Remote upstreams are checked once the federation
//! client lands; they are reported as not verified.)

use std::process::Stdio;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::config::Upstream;

/// Outcome per upstream: tool names, or why it failed.
pub async fn verify(
    u: &Upstream,
    timeout: Duration,
    store: Option<&waygate_store::Store>,
) -> Result<Vec<String>, String> {
    if u.transport != "stdio" {
        return Err(format!("{} upstreams are not verified by this build", u.transport));
    }
    let command = u.command.as_deref().ok_or("no command")?;
    let mut cmd = tokio::process::Command::new(command);
    cmd.args(&u.args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    for (k, v) in &u.env {
        let v = match store {
            Some(s) if v.contains("${secret:") => crate::commands::secrets::resolve(s, v).await?,
            _ => v.clone(),
        };
        let v = crate::config::expand_refs(&format!("upstreams.{}.env.{k}", u.name), &v).map_err(|e| e.to_string())?;
        cmd.env(k, v);
    }
    if let Some(d) = &u.cwd {
        cmd.current_dir(d);
    }
    let mut child = cmd.spawn().map_err(|e| format!("cannot start {command:?}: {e}"))?;
    let mut stdin = child.stdin.take().ok_or("no stdin")?;
    let mut lines = BufReader::new(child.stdout.take().ok_or("no stdout")?).lines();
    let run = async {
        let send = |v: Value| format!("{v}\n");
        stdin
            .write_all(send(json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{
                "protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"waygate-import","version":env!("CARGO_PKG_VERSION")}}})).as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let init = read_response(&mut lines, 1).await?;
        if let Some(e) = init.get("error") {
            return Err(format!("initialize failed: {e}"));
        }
        stdin
            .write_all(send(json!({"jsonrpc":"2.0","method":"notifications/initialized"})).as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        stdin
            .write_all(send(json!({"jsonrpc":"2.0","id":2,"method":"tools/list","params":{}})).as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let list = read_response(&mut lines, 2).await?;
        let tools = list
            .pointer("/result/tools")
            .and_then(Value::as_array)
            .ok_or_else(|| format!("tools/list failed: {list}"))?;
        Ok(tools
            .iter()
            .filter_map(|t| t.get("name").and_then(Value::as_str).map(str::to_string))
            .collect())
    };
    let r = tokio::time::timeout(timeout, run)
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {} s", timeout.as_secs())));
    let _ = child.kill().await;
    r
}

async fn read_response(
    lines: &mut tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    id: i64,
) -> Result<Value, String> {
    while let Some(line) = lines.next_line().await.map_err(|e| e.to_string())? {
        let Ok(v) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        if v.get("id") == Some(&json!(id)) {
            return Ok(v);
        }
    }
    Err("the server closed its output".into())
}
