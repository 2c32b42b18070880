//! `waygate audit tail|query|verify`.

use super::CmdResult;
use crate::cli::{AuditCommand, Global};

pub fn run(g: &Global, cmd: AuditCommand) -> CmdResult {
    if super::remote_admin::audit_target(&cmd).is_some() {
        return super::remote_admin::audit(g, cmd);
    }
    let l = super::load_config(g)?;
    super::runtime()?.block_on(async {
        let store = super::open_store(g, &l).await?;
        let r = match cmd {
            AuditCommand::Tail { lines } => {
                // Rows are segments (JSON arrays of records); print the newest records.
                let n = lines.clamp(1, 100_000) as usize;
                let mut records: Vec<String> = Vec::new();
                for row in store.audit_tail(n as i64).await? {
                    match serde_json::from_str::<serde_json::Value>(&row.record) {
                        Ok(serde_json::Value::Array(items)) => records.extend(items.iter().map(|v| v.to_string())),
                        _ => records.push(row.record),
                    }
                }
                for r in &records[records.len().saturating_sub(n)..] {
                    println!("{r}");
                }
                Ok(())
            }
            AuditCommand::Query {
                principal,
                method,
                target,
                outcome,
                since_ms,
                limit,
                ..
            } => {
                let field =
                    |v: &serde_json::Value, k: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or("").to_string();
                let matches = |v: &serde_json::Value| {
                    let g = |pat: &Option<String>, k: &str| {
                        pat.as_ref().is_none_or(|p| waygate_core::policy::glob(p, &field(v, k)))
                    };
                    g(&principal, "principal")
                        && g(&method, "method")
                        && g(&target, "target")
                        && g(&outcome, "outcome")
                        && since_ms.is_none_or(|s| v.get("ts_ms").and_then(|t| t.as_i64()).unwrap_or(0) >= s)
                };
                let (mut before, mut found) = (i64::MAX, 0usize);
                'pages: loop {
                    let page = store.audit_before(before, 2000).await?;
                    let Some(last) = page.last() else { break };
                    before = last.seq;
                    for row in &page {
                        // A row is one record or a segment (array) of records, oldest first.
                        let records = match serde_json::from_str::<serde_json::Value>(&row.record) {
                            Ok(serde_json::Value::Array(items)) => items,
                            Ok(v) => vec![v],
                            Err(_) => continue,
                        };
                        for v in records.iter().rev() {
                            if since_ms.is_some_and(|s| v.get("ts_ms").and_then(|t| t.as_i64()).unwrap_or(0) < s) {
                                break 'pages;
                            }
                            if matches(v) {
                                println!("{v}");
                                found += 1;
                                if found >= limit {
                                    break 'pages;
                                }
                            }
                        }
                    }
                }
                eprintln!("{found} record(s)");
                Ok(())
            }
            AuditCommand::Verify { .. } => match crate::audit_anchor::verify(&store).await {
                Ok(line) => {
                    println!("{line}");
                    Ok(())
                }
                Err(e) => Err(e.into()),
            },
        };
        store.close().await;
        r
    })
}
