//! `waygate audit tail|verify`.

use super::CmdResult;
use crate::cli::{AuditCommand, Global};

pub fn run(g: &Global, cmd: AuditCommand) -> CmdResult {
    let l = super::load_config(g)?;
    super::runtime()?.block_on(async {
        let store = super::open_store(g, &l).await?;
        let r = match cmd {
            AuditCommand::Tail { lines } => {
                for row in store.audit_tail(lines.clamp(1, 100_000)).await? {
                    println!("{}", row.record);
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
