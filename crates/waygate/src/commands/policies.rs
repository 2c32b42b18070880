//! `waygate policies [show|set]` and `waygate limits [show|set]`: the authorization rules
//! and the rate limits of a running server, read and replaced through its admin API
//! (`/api/v1/policies`, `/api/v1/limits`) without rewriting the rest of its file.

use std::path::Path;

use reqwest::Method;
use serde_json::{Map, Value};

use super::remote::{call, field, say, Table};
use super::remote_admin::restart_note;
use super::CmdResult;
use crate::cli::{Global, ServerArgs};
use crate::cli_admin::SectionCommand;

fn block<F: std::future::Future<Output = CmdResult>>(f: F) -> CmdResult {
    super::runtime()?.block_on(f)
}

/// The subcommand's server arguments, falling back to those given before it.
fn target(cmd: Option<SectionCommand>, outer: ServerArgs) -> (Option<std::path::PathBuf>, ServerArgs) {
    let (file, inner) = match cmd {
        None => return (None, outer),
        Some(SectionCommand::Show { server }) => (None, server),
        Some(SectionCommand::Set { file, server }) => (Some(file), server),
    };
    let server = ServerArgs {
        url: inner.url.or(outer.url),
        api_key: inner.api_key.or(outer.api_key),
        json: inner.json || outer.json,
    };
    (file, server)
}

/// A TOML or JSON file as a JSON object.
fn read_object(file: &Path) -> Result<Map<String, Value>, String> {
    let text = std::fs::read_to_string(file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    let v: Value = match serde_json::from_str(&text) {
        Ok(v) => v,
        Err(json_err) => {
            let t: toml::Table = toml::from_str(&text).map_err(|e| {
                format!(
                    "{}: neither JSON ({json_err}) nor TOML ({})",
                    file.display(),
                    e.message()
                )
            })?;
            serde_json::to_value(t).map_err(|e| format!("{}: {e}", file.display()))?
        }
    };
    match v {
        Value::Object(m) => Ok(m),
        _ => Err(format!(
            "{}: expected an object (or TOML tables) at the top",
            file.display()
        )),
    }
}

pub fn policies(g: &Global, cmd: Option<SectionCommand>, outer: ServerArgs) -> CmdResult {
    let (file, server) = target(cmd, outer);
    block(async {
        if let Some(file) = file {
            let mut m = read_object(&file)?;
            if !m.contains_key("authz") && !m.contains_key("policies") {
                return Err(format!("{}: has neither [authz] nor [[policies]]", file.display()).into());
            }
            let mut body = Map::new();
            body.insert(
                "authz".into(),
                m.remove("authz").unwrap_or_else(|| Value::Object(Map::new())),
            );
            body.insert(
                "policies".into(),
                m.remove("policies").unwrap_or_else(|| Value::Array(Vec::new())),
            );
            let v = call(g, &server, Method::PUT, "policies", Some(Value::Object(body))).await?;
            say(&server, &v, &restart_note(&v));
            return Ok(());
        }
        let v = call(g, &server, Method::GET, "policies", None).await?;
        if server.json {
            say(&server, &v, "");
            return Ok(());
        }
        println!("authz:  {}", v["authz"]);
        println!("limits: {}", v["limits"]);
        let mut t = Table::new(&["#", "RULE"]);
        for (i, r) in v["policies"].as_array().into_iter().flatten().enumerate() {
            t.row(vec![(i + 1).to_string(), r.to_string()]);
        }
        println!("{}", t.render());
        Ok(())
    })
}

pub fn limits(g: &Global, cmd: Option<SectionCommand>, outer: ServerArgs) -> CmdResult {
    let (file, server) = target(cmd, outer);
    block(async {
        if let Some(file) = file {
            let mut m = read_object(&file)?;
            let body = match m.remove("limits") {
                Some(l) => l,
                None => Value::Object(m),
            };
            let v = call(g, &server, Method::PUT, "limits", Some(body)).await?;
            say(&server, &v, &restart_note(&v));
            return Ok(());
        }
        let v = call(g, &server, Method::GET, "limits", None).await?;
        if server.json {
            say(&server, &v, "");
            return Ok(());
        }
        println!(
            "per caller: {} operations/s, burst {}{}",
            field(&v, "requests_per_second"),
            field(&v, "burst"),
            if v.get("redis_url").is_some() {
                " (shared through Redis)"
            } else {
                ""
            }
        );
        let mut t = Table::new(&[
            "TOOL",
            "PER_SECOND",
            "BURST",
            "COST",
            "MAX_CONCURRENT",
            "TIMEOUT_MS",
            "MAX_RESPONSE_BYTES",
        ]);
        for (tool, r) in v["tools"].as_object().into_iter().flatten() {
            t.row(vec![
                tool.clone(),
                field(r, "per_second"),
                field(r, "burst"),
                field(r, "cost"),
                field(r, "max_concurrent"),
                field(r, "timeout_ms"),
                field(r, "max_response_bytes"),
            ]);
        }
        println!("{}", t.render());
        Ok(())
    })
}
