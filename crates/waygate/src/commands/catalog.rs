//! `waygate servers|catalog|pins …`: the running server's virtual servers, merged catalog
//! and held tool definitions, through its admin API.

use reqwest::Method;
use serde_json::{json, Value};

use super::remote::{call, field, print, say, Table};
use super::CmdResult;
use crate::cli::Global;
use crate::cli_admin::{CatalogCommand, PinsCommand, ServersCommand};

fn block<F: std::future::Future<Output = CmdResult>>(f: F) -> CmdResult {
    super::runtime()?.block_on(f)
}

/// A path segment with the characters a name may hold but a URL path may not escaped.
fn seg(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn server_table(list: &Value) -> Table {
    let mut t = Table::new(&["NAME", "ORIGIN", "TOOLS", "ENDPOINT", "SELECTS"]);
    for s in list.as_array().into_iter().flatten() {
        let e = &s["entry"];
        let mut selects: Vec<String> = Vec::new();
        for (k, prefix) in [("include", ""), ("tags", "tag:"), ("exclude", "-")] {
            for x in e[k].as_array().into_iter().flatten() {
                selects.push(format!("{prefix}{}", x.as_str().unwrap_or_default()));
            }
        }
        t.row(vec![
            field(s, "name"),
            field(s, "origin"),
            s["tools"].as_array().map_or(0, Vec::len).to_string(),
            format!("/servers/{}/mcp", field(s, "name")),
            selects.join(" "),
        ]);
    }
    t
}

pub fn servers(g: &Global, cmd: ServersCommand) -> CmdResult {
    block(async {
        match cmd {
            ServersCommand::List { server } => {
                let v = call(g, &server, Method::GET, "servers", None).await?;
                print(&server, &v, |v| server_table(&v["servers"]));
            }
            ServersCommand::Show { name, server } => {
                let v = call(g, &server, Method::GET, &format!("servers/{}", seg(&name)), None).await?;
                print(&server, &v, |v| {
                    let mut t = server_table(&json!([v]));
                    for tool in v["tools"].as_array().into_iter().flatten() {
                        t.row(vec![format!("  {}", tool.as_str().unwrap_or_default())]);
                    }
                    t
                });
            }
            ServersCommand::Add {
                name,
                include,
                exclude,
                tags,
                title,
                instructions,
                scopes,
                replace,
                server,
            } => {
                let mut e =
                    json!({"name": name, "include": include, "exclude": exclude, "tags": tags, "scopes": scopes});
                if let Some(t) = title {
                    e["title"] = json!(t);
                }
                if let Some(i) = instructions {
                    e["instructions"] = json!(i);
                }
                let (m, path) = match replace {
                    true => (Method::PUT, format!("servers/{}", seg(&name))),
                    false => (Method::POST, "servers".to_string()),
                };
                let v = call(g, &server, m, &path, Some(e)).await?;
                print(&server, &v, |v| server_table(&json!([v])));
            }
            ServersCommand::Rm { name, server } => {
                let v = call(g, &server, Method::DELETE, &format!("servers/{}", seg(&name)), None).await?;
                say(&server, &v, &format!("removed {name}"));
            }
        }
        Ok(())
    })
}

fn tool_table(items: &Value) -> Table {
    let mut t = Table::new(&["TOOL", "ORIGINAL", "ORIGIN", "TIER", "PIN", "DESCRIPTION"]);
    for x in items.as_array().into_iter().flatten() {
        let desc: String = field(x, "description").chars().take(60).collect();
        t.row(vec![
            field(x, "name"),
            field(x, "original_name"),
            field(x, "origin"),
            field(x, "origin_tier"),
            field(x, "pin"),
            desc.replace('\n', " "),
        ]);
    }
    t
}

pub fn catalog(g: &Global, cmd: CatalogCommand) -> CmdResult {
    block(async {
        match cmd {
            CatalogCommand::Tools {
                query,
                origin,
                tag,
                server,
            } => {
                // Every page, so a script gets the whole catalog.
                let (mut items, mut cursor) = (Vec::new(), None::<String>);
                loop {
                    let mut q = vec![("limit", "500".to_string())];
                    for (k, v) in [("q", &query), ("origin", &origin), ("tag", &tag), ("cursor", &cursor)] {
                        if let Some(v) = v {
                            q.push((k, v.clone()));
                        }
                    }
                    let qs: Vec<String> = q.iter().map(|(k, v)| format!("{k}={}", seg(v))).collect();
                    let page = call(
                        g,
                        &server,
                        Method::GET,
                        &format!("catalog/tools?{}", qs.join("&")),
                        None,
                    )
                    .await?;
                    items.extend(page["items"].as_array().cloned().unwrap_or_default());
                    cursor = page["next_cursor"].as_str().map(str::to_string);
                    if cursor.is_none() {
                        break;
                    }
                }
                let v = json!({"items": items, "total": items.len()});
                print(&server, &v, |v| tool_table(&v["items"]));
            }
            CatalogCommand::Show { name, server } => {
                let v = call(g, &server, Method::GET, &format!("catalog/tools/{}", seg(&name)), None).await?;
                if server.json {
                    say(&server, &v, "");
                } else {
                    println!("{}", tool_table(&json!([v])).render());
                    println!("{}", serde_json::to_string_pretty(&v["definition"]).unwrap_or_default());
                }
            }
            CatalogCommand::Resources { server } => {
                let v = call(g, &server, Method::GET, "catalog/resources", None).await?;
                print(&server, &v, |v| {
                    let mut t = Table::new(&["URI", "ORIGIN", "TEMPLATE", "NAME"]);
                    for r in v["items"].as_array().into_iter().flatten() {
                        t.row(vec![
                            field(r, "uri"),
                            field(r, "origin"),
                            r["template"].to_string(),
                            field(&r["definition"], "name"),
                        ]);
                    }
                    t
                });
            }
            CatalogCommand::Prompts { server } => {
                let v = call(g, &server, Method::GET, "catalog/prompts", None).await?;
                print(&server, &v, |v| {
                    let mut t = Table::new(&["PROMPT", "ORIGINAL", "ORIGIN", "DESCRIPTION"]);
                    for p in v["items"].as_array().into_iter().flatten() {
                        t.row(vec![
                            field(p, "name"),
                            field(p, "original_name"),
                            field(p, "origin"),
                            field(&p["definition"], "description"),
                        ]);
                    }
                    t
                });
            }
            CatalogCommand::Call { name, args, server } => {
                let arguments: Value =
                    serde_json::from_str(&args).map_err(|e| format!("--args is not a JSON object: {e}"))?;
                if !arguments.is_object() {
                    return Err("--args must be a JSON object, like '{\"text\": \"hi\"}'".into());
                }
                let path = format!("tools/{}/call", seg(&name));
                let v = call(g, &server, Method::POST, &path, Some(json!({"arguments": arguments}))).await?;
                if server.json {
                    say(&server, &v, "");
                } else {
                    for c in v["content"].as_array().into_iter().flatten() {
                        match c["type"].as_str() {
                            Some("text") => println!("{}", c["text"].as_str().unwrap_or_default()),
                            _ => println!("{c}"),
                        }
                    }
                    if let Some(s) = v.get("structuredContent") {
                        println!("{}", serde_json::to_string_pretty(s).unwrap_or_default());
                    }
                }
                if v["isError"] == true {
                    return Err(format!("{name} reported an error").into());
                }
            }
        }
        Ok(())
    })
}

/// The held definition against the approved one (pretty JSON, line by line).
fn pin_diff(h: &Value) -> String {
    let pretty = |v: &Value| serde_json::to_string_pretty(v).unwrap_or_default();
    let before = h.get("approved_definition").map(pretty).unwrap_or_default();
    waygate_admin::diff_lines(&before, &pretty(&h["definition"])).join("\n")
}

pub fn pins(g: &Global, cmd: PinsCommand) -> CmdResult {
    block(async {
        match cmd {
            PinsCommand::List { server } => {
                let v = call(g, &server, Method::GET, "pins", None).await?;
                print(&server, &v, |v| {
                    let mut t = Table::new(&["PLUGIN", "TOOL", "CHANGED", "APPROVED", "OFFERED"]);
                    for h in v["held"].as_array().into_iter().flatten() {
                        let short = |k: &str| field(h, k).chars().take(12).collect::<String>();
                        t.row(vec![
                            field(h, "plugin"),
                            field(h, "tool"),
                            field(h, "changed"),
                            short("approved_sha256"),
                            short("sha256"),
                        ]);
                    }
                    t
                });
            }
            PinsCommand::Diff { plugin, tool, server } => {
                let v = call(g, &server, Method::GET, "pins", None).await?;
                let held = v["held"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|h| h["plugin"] == plugin.as_str() && h["tool"] == tool.as_str())
                    .ok_or_else(|| format!("{plugin}/{tool} is not held back; see `waygate pins list`"))?;
                say(&server, held, &pin_diff(held));
            }
            PinsCommand::Approve { plugin, tool, server } => {
                let path = format!("pins/{}/{}/approve", seg(&plugin), seg(&tool));
                let v = call(g, &server, Method::POST, &path, None).await?;
                say(
                    &server,
                    &v,
                    &format!("approved {plugin}/{tool} ({})", field(&v, "sha256")),
                );
            }
        }
        Ok(())
    })
}
