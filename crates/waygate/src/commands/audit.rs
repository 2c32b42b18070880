//! `waygate audit tail|verify`.

use super::CmdResult;
use crate::cli::{AuditCommand, Global};

pub fn run(g: &Global, cmd: AuditCommand) -> CmdResult {
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
            AuditCommand::Verify => {
                let c = store.audit_verify().await?;
                match c.first_bad {
                    None => {
                        println!("ok: {} audit record(s), hash chain intact", c.rows);
                        Ok(())
                    }
                    Some(seq) => Err(format!(
                        "audit chain broken at record {seq}: it or an earlier link was altered, inserted or removed"
                    )
                    .into()),
                }
            }
        };
        store.close().await;
        r
    })
}
