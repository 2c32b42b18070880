//! `waygate plugins …`: talks to a running server's admin API (`/api/v1/plugins`,
//! `/api/v1/pins`); `list` falls back to the configuration when no server answers.

use serde_json::{json, Value};

use super::remote::{call, field, print, Table};
use super::CmdResult;
use crate::cli::{Global, PluginsCommand};

pub fn run(g: &Global, cmd: PluginsCommand) -> CmdResult {
    let rt = super::runtime()?;
    rt.block_on(dispatch(g, cmd))
}

async fn dispatch(g: &Global, cmd: PluginsCommand) -> CmdResult {
    use reqwest::Method;
    let (server, method, path, body) = match cmd {
        PluginsCommand::List { server } => {
            return match call(g, &server, Method::GET, "plugins", None).await {
                Ok(v) => {
                    print(&server, &v, |v| plugin_table(&v["plugins"]));
                    Ok(())
                }
                Err(e) if e.starts_with("connect") => offline_list(g, &e),
                Err(e) => Err(e.into()),
            };
        }
        PluginsCommand::Load {
            name,
            module,
            memory_mib,
            time_ms,
            fs_read,
            http_hosts,
            env,
            server,
        } => {
            let module = std::fs::canonicalize(&module).unwrap_or(module);
            let mut spec =
                json!({"name": name, "module": module, "fs_read": fs_read, "http_hosts": http_hosts, "env": env});
            if let Some(m) = memory_mib {
                spec["memory_mib"] = json!(m);
            }
            if let Some(t) = time_ms {
                spec["time_ms"] = json!(t);
            }
            (server, Method::POST, "plugins".to_string(), Some(json!({"wasm": spec})))
        }
        PluginsCommand::Unload { name, server } => (server, Method::DELETE, format!("plugins/{name}"), None),
        PluginsCommand::Reload { name, server } => (server, Method::POST, format!("plugins/{name}/reload"), None),
        PluginsCommand::Enable { name, server } => (server, Method::POST, format!("plugins/{name}/enable"), None),
        PluginsCommand::Disable { name, server } => (server, Method::POST, format!("plugins/{name}/disable"), None),
        PluginsCommand::Pins { server } => {
            let v = call(g, &server, Method::GET, "pins", None).await?;
            if server.json {
                super::remote::say(&server, &v, "");
                return Ok(());
            }
            let held = v["held"].as_array().cloned().unwrap_or_default();
            if held.is_empty() {
                println!("no tools held back");
            }
            for h in held {
                println!(
                    "{}/{}  held: definition {} (approved: {})\n  {}",
                    h["plugin"].as_str().unwrap_or_default(),
                    h["tool"].as_str().unwrap_or_default(),
                    &h["sha256"].as_str().unwrap_or_default()[..12.min(h["sha256"].as_str().unwrap_or_default().len())],
                    h["approved_sha256"]
                        .as_str()
                        .map_or("none".into(), |s| s.chars().take(12).collect::<String>()),
                    h["definition"]
                );
            }
            return Ok(());
        }
        PluginsCommand::Approve { plugin, tool, server } => {
            (server, Method::POST, format!("pins/{plugin}/{tool}/approve"), None)
        }
    };
    let v = call(g, &server, method, &path, body).await?;
    match v.get("plugins") {
        Some(_) => print(&server, &v, |v| plugin_table(&v["plugins"])),
        // One plugin (load, enable, disable, reload answer the plugin itself).
        None if v.get("tier").is_some() => print(&server, &v, |v| plugin_table(&Value::Array(vec![v.clone()]))),
        None if v.is_null() => println!("done"),
        None => println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default()),
    }
    Ok(())
}

fn plugin_table(list: &Value) -> Table {
    let mut t = Table::new(&["NAME", "TIER", "ORIGIN", "STATE", "TOOLS", "DETAIL"]);
    for p in list.as_array().into_iter().flatten() {
        let detail = match (p["error"].as_str(), p["module"].as_str()) {
            (Some(e), _) => e.to_string(),
            (None, Some(m)) => match p["version"].as_str() {
                Some(v) => format!("{m} (v{v})"),
                None => m.to_string(),
            },
            _ => String::new(),
        };
        t.row(vec![
            field(p, "name"),
            field(p, "tier"),
            field(p, "origin"),
            field(p, "state"),
            p["tools"].to_string(),
            detail,
        ]);
    }
    t
}

fn offline_list(g: &Global, why: &str) -> CmdResult {
    eprintln!("no running server answered ({why}); showing the configuration");
    let cfg = super::load_config(g)?.cfg;
    println!("{:<16} {:<8} description", "NAME", "ENABLED");
    for name in waygate_plugins::BUILTIN {
        let on = match name {
            "demo" => cfg.plugins.demo.unwrap_or(true),
            n => cfg.plugins.enabled.iter().any(|e| e == n),
        };
        let desc = match name {
            "demo" => "echo, add, now, countdown, ask_name; a resource and a prompt",
            "system" => "confined execute_command, read/write_file, list_directory, search_files, http_request",
            _ => "the MCP conformance suite's fixture surface",
        };
        println!("{name:<16} {:<8} {desc}", if on { "yes" } else { "no" });
    }
    for w in &cfg.plugins.wasm {
        println!("{:<16} {:<8} wasm module {}", w.name, "yes", w.module.display());
    }
    Ok(())
}
