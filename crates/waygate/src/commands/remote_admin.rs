//! `waygate keys|audit|config …` with `--url` (or `WAYGATE_URL`): the same commands against
//! a running server's admin API instead of the local store and file, so an operator can
//! manage a remote gateway (or a fleet behind one address) with the same words.

use reqwest::Method;
use serde_json::{json, Value};

use super::remote::{call, field, print, say, Table};
use super::CmdResult;
use crate::cli::{AuditCommand, ConfigCommand, Global, KeysCommand, ServerArgs};

fn block<F: std::future::Future<Output = CmdResult>>(f: F) -> CmdResult {
    super::runtime()?.block_on(f)
}

/// The server arguments of a command when it names a server, i.e. runs remotely.
pub fn keys_target(cmd: &KeysCommand) -> Option<&ServerArgs> {
    let s = match cmd {
        KeysCommand::Create { server, .. }
        | KeysCommand::List { server }
        | KeysCommand::Revoke { server, .. }
        | KeysCommand::Rotate { server, .. } => server,
    };
    s.url.is_some().then_some(s)
}

pub(crate) fn key_table(list: &Value) -> Table {
    let mut t = Table::new(&["ID", "NAME", "SCOPES", "STATE", "EXPIRES"]);
    for k in list.as_array().into_iter().flatten() {
        let exp = k["expires_at"].as_i64().map_or("never".into(), |e| e.to_string());
        t.row(vec![
            field(k, "id"),
            field(k, "name"),
            field(k, "scopes"),
            field(k, "state"),
            exp,
        ]);
    }
    t
}

pub fn keys(g: &Global, cmd: KeysCommand) -> CmdResult {
    block(async {
        match cmd {
            KeysCommand::Create {
                name,
                scopes,
                expires_in_days,
                server,
            } => {
                let scopes: Vec<&str> = scopes.split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
                let mut body = json!({"name": name, "scopes": scopes});
                if let Some(d) = expires_in_days {
                    body["expires_in_days"] = json!(d);
                }
                let v = call(g, &server, Method::POST, "keys", Some(body)).await?;
                say(&server, &v, &field(&v, "key"));
                if !server.json {
                    eprintln!("created key {} for {name:?}; it is shown only once", field(&v, "id"));
                }
            }
            KeysCommand::List { server } => {
                let v = call(g, &server, Method::GET, "keys", None).await?;
                print(&server, &v, |v| key_table(&v["keys"]));
            }
            KeysCommand::Revoke { id, server } => {
                let v = call(g, &server, Method::DELETE, &format!("keys/{id}"), None).await?;
                say(&server, &v, &format!("revoked {id}"));
            }
            KeysCommand::Rotate { id, server } => {
                let v = call(g, &server, Method::POST, &format!("keys/{id}/rotate"), None).await?;
                say(&server, &v, &field(&v, "key"));
                if !server.json {
                    eprintln!("rotated {id}: the old key is revoked, the new one is shown only once");
                }
            }
        }
        Ok(())
    })
}

pub fn audit_target(cmd: &AuditCommand) -> Option<&ServerArgs> {
    match cmd {
        AuditCommand::Query { server, .. } | AuditCommand::Verify { server } => server.url.is_some().then_some(server),
        AuditCommand::Tail { .. } => None,
    }
}

pub fn audit(g: &Global, cmd: AuditCommand) -> CmdResult {
    block(async {
        match cmd {
            AuditCommand::Query {
                principal,
                method,
                target,
                outcome,
                since_ms,
                until_ms,
                cursor,
                limit,
                server,
            } => {
                let mut q: Vec<String> = vec![format!("limit={}", limit.clamp(1, 500))];
                for (k, v) in [
                    ("principal", principal),
                    ("method", method),
                    ("target", target),
                    ("outcome", outcome),
                    ("cursor", cursor),
                ] {
                    if let Some(v) = v {
                        q.push(format!(
                            "{k}={}",
                            v.replace('%', "%25").replace('&', "%26").replace(' ', "%20")
                        ));
                    }
                }
                if let Some(s) = since_ms {
                    q.push(format!("since={s}"));
                }
                if let Some(u) = until_ms {
                    q.push(format!("until={u}"));
                }
                let v = call(g, &server, Method::GET, &format!("audit?{}", q.join("&")), None).await?;
                print(&server, &v, |v| {
                    let mut t = Table::new(&["TIME (unix ms)", "PRINCIPAL", "METHOD", "TARGET", "OUTCOME"]);
                    for e in v["items"].as_array().into_iter().flatten() {
                        let r = &e["record"];
                        t.row(vec![
                            e["ts"].to_string(),
                            field(r, "principal"),
                            field(r, "method"),
                            field(r, "target"),
                            field(r, "outcome"),
                        ]);
                    }
                    t
                });
                if let (false, Some(c)) = (server.json, v["next_cursor"].as_str()) {
                    eprintln!("more: --cursor {c}");
                }
            }
            AuditCommand::Verify { server } => {
                let v = call(g, &server, Method::POST, "audit/verify", None).await?;
                let intact = v["intact"] == true;
                say(
                    &server,
                    &v,
                    &match intact {
                        true => format!("intact: {} rows", v["rows"]),
                        false => format!("BROKEN at row {}", v["first_bad"]),
                    },
                );
                if !intact {
                    return Err("the audit chain does not verify".into());
                }
            }
            AuditCommand::Tail { .. } => return Err("`audit tail` reads the local store; drop --url".into()),
        }
        Ok(())
    })
}

/// Remote when the command names a server, or always for the commands only a running
/// server can do (apply, reload, diff).
pub fn config_target(cmd: &ConfigCommand) -> Option<&ServerArgs> {
    match cmd {
        ConfigCommand::Apply { server, .. } | ConfigCommand::Reload { server } | ConfigCommand::Diff { server, .. } => {
            Some(server)
        }
        ConfigCommand::Validate { server, .. }
        | ConfigCommand::Show { server, .. }
        | ConfigCommand::Snapshots { server }
        | ConfigCommand::Rollback { server, .. } => server.url.is_some().then_some(server),
        ConfigCommand::Schema | ConfigCommand::Migrate { .. } => None,
    }
}

pub(crate) fn restart_note(v: &Value) -> String {
    match v["restart_needed"].as_array().filter(|a| !a.is_empty()) {
        Some(a) => format!(
            "applied; restart needed for: {}",
            a.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", ")
        ),
        None => "applied".into(),
    }
}

fn read(file: &std::path::Path) -> Result<String, String> {
    std::fs::read_to_string(file).map_err(|e| format!("cannot read {}: {e}", file.display()))
}

pub fn config(g: &Global, cmd: ConfigCommand) -> CmdResult {
    block(async {
        match cmd {
            ConfigCommand::Validate { file, server } => {
                let file = file.ok_or("name the file to validate against the running server")?;
                let v = call(
                    g,
                    &server,
                    Method::POST,
                    "config/validate",
                    Some(json!({"toml": read(&file)?})),
                )
                .await?;
                let problems: Vec<String> = v["problems"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|p| format!("{}: {}", file.display(), field(p, "detail")))
                    .collect();
                let restart: Vec<&str> = v["restart_needed"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .collect();
                say(
                    &server,
                    &v,
                    &match (problems.is_empty(), restart.is_empty()) {
                        (true, true) => format!("{}: ok", file.display()),
                        (true, false) => format!(
                            "{}: ok; applying it needs a restart for: {}",
                            file.display(),
                            restart.join(", ")
                        ),
                        (false, _) => problems.join("\n"),
                    },
                );
                if v["valid"] != true {
                    return Err(format!("{} does not validate", file.display()).into());
                }
            }
            ConfigCommand::Show { server, .. } => {
                let v = call(g, &server, Method::GET, "config", None).await?;
                let mut lines = Vec::new();
                if let Some(m) = v["config"].as_object() {
                    lines.extend(m.iter().map(|(k, x)| format!("{k} = {x}")));
                }
                say(&server, &v, &lines.join("\n"));
            }
            ConfigCommand::Apply { file, server } => {
                let v = call(g, &server, Method::PUT, "config", Some(json!({"toml": read(&file)?}))).await?;
                say(&server, &v, &restart_note(&v));
            }
            ConfigCommand::Reload { server } => {
                let v = call(g, &server, Method::POST, "config/reload", None).await?;
                say(&server, &v, &restart_note(&v));
            }
            ConfigCommand::Snapshots { server } => {
                let v = call(g, &server, Method::GET, "config/snapshots", None).await?;
                print(&server, &v, |v| {
                    let mut t = Table::new(&["ID", "APPLIED (unix ms)", "SOURCE", "SHA256"]);
                    for s in v["snapshots"].as_array().into_iter().flatten() {
                        let sha: String = field(s, "sha256").chars().take(16).collect();
                        t.row(vec![
                            s["id"].to_string(),
                            s["created_at"].to_string(),
                            field(s, "source"),
                            sha,
                        ]);
                    }
                    t
                });
            }
            ConfigCommand::Diff {
                snapshot,
                against,
                server,
            } => {
                let q = against.map(|a| format!("?against={a}")).unwrap_or_default();
                let v = call(
                    g,
                    &server,
                    Method::GET,
                    &format!("config/snapshots/{snapshot}/diff{q}"),
                    None,
                )
                .await?;
                let lines: Vec<&str> = v["lines"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .collect();
                say(&server, &v, &lines.join("\n"));
            }
            ConfigCommand::Rollback { snapshot, server } => {
                let id =
                    snapshot.ok_or("name the snapshot to roll back to (see `waygate config snapshots --url …`)")?;
                let v = call(
                    g,
                    &server,
                    Method::POST,
                    &format!("config/snapshots/{id}/rollback"),
                    None,
                )
                .await?;
                say(&server, &v, &restart_note(&v));
            }
            ConfigCommand::Schema | ConfigCommand::Migrate { .. } => {}
        }
        Ok(())
    })
}
