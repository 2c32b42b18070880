//! `waygate config validate|show|schema|migrate|snapshots|rollback` on the local file and
//! store; with `--url`, and for `apply|reload|diff`, the running server's (`remote_admin`).

use super::CmdResult;
use crate::cli::{ConfigCommand, Global};
use crate::config::{self, upgrade};

pub fn run(g: &Global, cmd: ConfigCommand) -> CmdResult {
    if super::remote_admin::config_target(&cmd).is_some() {
        return super::remote_admin::config(g, cmd);
    }
    let dir = super::data_dir(g);
    match cmd {
        ConfigCommand::Validate { file, .. } => {
            let path = file
                .or_else(|| config::resolve_path(g.config.as_deref(), &dir))
                .ok_or("no config file given and none in the data directory")?;
            // With the WAYGATE_SECTION__KEY overrides `serve` would apply: what is checked is
            // what would run (a container's environment included).
            let env = config::env_overrides();
            let l = config::layers_load(Some(&path), &env)?;
            let with = match env.len() {
                0 => String::new(),
                n => format!(" with {n} WAYGATE_*__* environment override(s)"),
            };
            match l.upgraded_from {
                Some(v) => println!(
                    "{}: ok{with} (format version {v}; `waygate config migrate` upgrades it)",
                    path.display()
                ),
                None => println!("{}: ok{with}", path.display()),
            }
            Ok(())
        }
        ConfigCommand::Show { effective, .. } => {
            let l = super::load_config(g)?;
            let source = l
                .path
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "built-in defaults".into());
            println!("# file: {source}");
            for (k, v) in l.cfg.flatten() {
                if effective {
                    let (level, origin) = l.source_of(&k);
                    println!("{k} = {v}    # {} ({origin})", level.label());
                } else if l.sources.contains_key(&k) {
                    println!("{k} = {v}");
                }
            }
            if effective {
                println!(
                    "store.url (in effect) = {:?}    # {}",
                    waygate_security::redact::redact_url(&super::store_url(g, &l)),
                    l.source_of("store.url").0.label()
                );
            }
            Ok(())
        }
        // Only a running server can do these; `config_target` sent them there.
        ConfigCommand::Apply { .. } | ConfigCommand::Reload { .. } | ConfigCommand::Diff { .. } => Ok(()),
        ConfigCommand::Schema => {
            println!("{}", serde_json::to_string_pretty(&config::schema())?);
            Ok(())
        }
        ConfigCommand::Migrate { file, write } => {
            let text = std::fs::read_to_string(&file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
            let v: toml::Value = toml::from_str(&text).map_err(|e| format!("{}: {}", file.display(), e.message()))?;
            let from = v
                .get("version")
                .and_then(toml::Value::as_integer)
                .unwrap_or(config::CURRENT_VERSION as i64) as u32;
            if from == config::CURRENT_VERSION {
                println!("{}: already version {from}", file.display());
                return Ok(());
            }
            let upgraded = upgrade::upgrade(v, from).map_err(|m| format!("{}: {m}", file.display()))?;
            let out = toml::to_string_pretty(&upgraded)?;
            if write {
                let backup = file.with_extension(format!("toml.v{from}.bak"));
                std::fs::copy(&file, &backup)?;
                std::fs::write(&file, &out)?;
                println!(
                    "{}: upgraded from version {from} to {} (backup: {})",
                    file.display(),
                    config::CURRENT_VERSION,
                    backup.display()
                );
            } else {
                print!("{out}");
            }
            Ok(())
        }
        ConfigCommand::Snapshots { .. } => {
            let l = super::load_config(g)?;
            super::runtime()?.block_on(async {
                let store = super::open_store(g, &l).await?;
                println!("{:<6} {:<26} {:<8} sha256", "ID", "APPLIED (unix ms)", "SOURCE");
                for s in store.snapshots(50).await? {
                    println!("{:<6} {:<26} {:<8} {}", s.id, s.created_at, s.source, &s.sha256[..16]);
                }
                Ok(())
            })
        }
        ConfigCommand::Rollback { snapshot, .. } => {
            let l = super::load_config(g)?;
            let path = l.path.clone().unwrap_or_else(|| dir.join("waygate.toml"));
            super::runtime()?.block_on(async {
                let store = super::open_store(g, &l).await?;
                let snap = match snapshot {
                    Some(id) => store
                        .snapshot(id)
                        .await?
                        .ok_or_else(|| format!("no snapshot {id}; see `waygate config snapshots`"))?,
                    None => store
                        .snapshots(2)
                        .await?
                        .into_iter()
                        .nth(1)
                        .ok_or("no earlier snapshot to roll back to")?,
                };
                // Refuse to write back something that no longer validates.
                let tmp = path.with_extension("toml.rollback");
                std::fs::write(&tmp, &snap.content)?;
                if let Err(e) = config::layers_load(Some(&tmp), &[]) {
                    let _ = std::fs::remove_file(&tmp);
                    return Err(format!("snapshot {} does not validate any more: {e}", snap.id).into());
                }
                if path.exists() {
                    std::fs::copy(&path, path.with_extension("toml.bak"))?;
                }
                std::fs::rename(&tmp, &path)?;
                println!(
                    "{}: restored snapshot {} (previous file kept as .bak); a running server reloads it",
                    path.display(),
                    snap.id
                );
                Ok(())
            })
        }
    }
}
