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
                until_ms,
                cursor,
                limit,
                ..
            } => {
                let field =
                    |v: &serde_json::Value, k: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or("").to_string();
                let ts = |v: &serde_json::Value| v.get("ts_ms").and_then(|t| t.as_i64()).unwrap_or(0);
                let matches = |v: &serde_json::Value| {
                    let g = |pat: &Option<String>, k: &str| {
                        pat.as_ref().is_none_or(|p| waygate_core::policy::glob(p, &field(v, k)))
                    };
                    g(&principal, "principal")
                        && g(&method, "method")
                        && g(&target, "target")
                        && g(&outcome, "outcome")
                        && since_ms.is_none_or(|s| ts(v) >= s)
                        && until_ms.is_none_or(|u| ts(v) < u)
                };
                // Records strictly older than the cursor `seq:index` (as the API pages).
                let (mut before, below) = match cursor.as_deref() {
                    None => (i64::MAX, usize::MAX),
                    Some(c) => c
                        .split_once(':')
                        .and_then(|(s, i)| Some((s.parse::<i64>().ok()?, i.parse::<usize>().ok()?)))
                        .filter(|(s, _)| *s > 0)
                        .map(|(s, i)| (s.saturating_add(1), i))
                        .ok_or_else(|| format!("--cursor {c:?}: expected SEQ:INDEX as a previous query printed"))?,
                };
                let first = before.saturating_sub(1);
                let (mut found, mut last) = (0usize, None);
                'pages: loop {
                    let page = store.audit_before(before, 2000).await?;
                    let Some(end) = page.last() else { break };
                    before = end.seq;
                    for row in &page {
                        // A row is one record or a segment (array) of records, oldest first.
                        let records = match serde_json::from_str::<serde_json::Value>(&row.record) {
                            Ok(serde_json::Value::Array(items)) => items,
                            Ok(v) => vec![v],
                            Err(_) => continue,
                        };
                        let top = if row.seq == first {
                            below.min(records.len())
                        } else {
                            records.len()
                        };
                        for (index, v) in records.iter().enumerate().take(top).rev() {
                            if since_ms.is_some_and(|s| ts(v) < s) {
                                break 'pages;
                            }
                            if matches(v) {
                                println!("{v}");
                                found += 1;
                                last = Some(format!("{}:{index}", row.seq));
                                if found >= limit {
                                    break 'pages;
                                }
                            }
                        }
                    }
                }
                eprintln!("{found} record(s)");
                if let (true, Some(c)) = (found >= limit, last) {
                    eprintln!("more: --cursor {c}");
                }
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
