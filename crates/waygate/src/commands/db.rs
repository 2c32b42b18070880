//! `waygate db migrate|status|rollback`.

use super::CmdResult;
use crate::cli::{DbCommand, Global};

pub fn run(g: &Global, cmd: DbCommand) -> CmdResult {
    let l = super::load_config(g)?;
    let url = super::store_url(g, &l);
    super::runtime()?.block_on(async {
        std::fs::create_dir_all(super::data_dir(g))?;
        let store = waygate_store::Store::open(&url).await?;
        match cmd {
            DbCommand::Migrate => {
                let applied = store.migrate().await?;
                if applied.is_empty() {
                    println!(
                        "{}: schema is up to date (version {})",
                        store.url(),
                        store.schema_version().await?
                    );
                } else {
                    println!("{}: applied {applied:?}", store.url());
                }
            }
            DbCommand::Status => {
                println!("database: {} ({:?})", store.url(), store.backend());
                println!("{:<16} {:<8} description", "VERSION", "APPLIED");
                for m in store.status().await? {
                    println!(
                        "{:<16} {:<8} {}",
                        m.version,
                        if m.applied { "yes" } else { "no" },
                        m.description
                    );
                }
            }
            DbCommand::Rollback { to } => {
                let reverted = store.rollback(to).await?;
                println!(
                    "{}: reverted {reverted:?}; schema version now {}",
                    store.url(),
                    store.schema_version().await?
                );
            }
        }
        store.close().await;
        Ok(())
    })
}
