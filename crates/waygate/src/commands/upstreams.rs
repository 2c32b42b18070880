//! `waygate upstreams …`: the running server's upstreams through its admin API
//! (`/api/v1/upstreams`).

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::remote::{call, field, print, say, Table};
use super::CmdResult;
use crate::cli::{Global, UpstreamAddArgs, UpstreamsCommand};

pub fn run(g: &Global, cmd: UpstreamsCommand) -> CmdResult {
    super::runtime()?.block_on(dispatch(g, cmd))
}

fn pairs(key: &str, list: &[String]) -> Result<BTreeMap<String, String>, String> {
    list.iter()
        .map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .ok_or_else(|| format!("--{key} {kv:?}: expected NAME=VALUE"))
        })
        .collect()
}

fn entry(a: &UpstreamAddArgs) -> Result<Value, String> {
    let mut e = json!({"name": a.name});
    let mut set = |k: &str, v: Value| {
        e[k] = v;
    };
    if let Some(c) = &a.command {
        set("command", json!(c));
    }
    if !a.args.is_empty() {
        set("args", json!(a.args));
    }
    if let Some(u) = &a.remote {
        set("url", json!(u));
    }
    if let Some(o) = &a.openapi {
        set("openapi", json!(o));
    }
    if let Some(b) = &a.base_url {
        set("base_url", json!(b));
    }
    if !a.include_ops.is_empty() || !a.exclude_ops.is_empty() {
        set(
            "operations",
            json!({"include": a.include_ops, "exclude": a.exclude_ops}),
        );
    }
    if let Some(t) = &a.transport {
        set("transport", json!(t));
    }
    let env = pairs("env", &a.env)?;
    if !env.is_empty() {
        set("env", json!(env));
    }
    let headers = pairs("header", &a.headers)?;
    if !headers.is_empty() {
        set("headers", json!(headers));
    }
    if let Some(p) = &a.prefix {
        set("prefix", json!(p));
    }
    if let Some(p) = &a.prefix_with {
        set("prefix_with", json!(p));
    }
    if !a.allow.is_empty() || !a.deny.is_empty() {
        set("tools", json!({"allow": a.allow, "deny": a.deny}));
    }
    Ok(e)
}

fn rows(list: &Value) -> Table {
    let mut t = Table::new(&["NAME", "ORIGIN", "TRANSPORT", "STATE", "TOOLS", "ERROR"]);
    for u in list.as_array().into_iter().flatten() {
        let error = u
            .pointer("/upstream/last_error")
            .or_else(|| u.get("error"))
            .and_then(Value::as_str)
            .unwrap_or_default();
        t.row(vec![
            field(u, "name"),
            field(u, "origin"),
            field(u, "transport"),
            field(u, "state"),
            u["tools"].as_u64().unwrap_or(0).to_string(),
            error.to_string(),
        ]);
    }
    t
}

async fn dispatch(g: &Global, cmd: UpstreamsCommand) -> CmdResult {
    use reqwest::Method;
    match cmd {
        UpstreamsCommand::List { server } => {
            let v = call(g, &server, Method::GET, "upstreams", None).await?;
            print(&server, &v, |v| rows(&v["upstreams"]));
        }
        UpstreamsCommand::Add(a) => {
            let body = entry(&a)?;
            let (method, path) = if a.replace {
                (Method::PUT, format!("upstreams/{}", a.name))
            } else {
                (Method::POST, "upstreams".to_string())
            };
            let v = call(g, &a.server, method, &path, Some(body)).await?;
            print(&a.server, &v, |v| rows(&json!([v])));
        }
        UpstreamsCommand::Rm { name, server } => {
            let v = call(g, &server, Method::DELETE, &format!("upstreams/{name}"), None).await?;
            say(&server, &v, &format!("removed {name}"));
        }
        UpstreamsCommand::Restart { name, server } => {
            let v = call(g, &server, Method::POST, &format!("upstreams/{name}/restart"), None).await?;
            print(&server, &v, |v| rows(&json!([v])));
        }
    }
    Ok(())
}
