//! `waygate secrets set|list|rm`: the encrypted credential store, and resolving
//! `${secret:NAME}` references when an upstream starts.

use std::io::Read;

use waygate_store::Store;

use super::CmdResult;
use crate::cli::{Global, SecretsCommand};

/// Associated data: a ciphertext only opens under the name it was stored with.
pub(crate) fn aad(name: &str) -> Vec<u8> {
    format!("waygate-secret-v1:{name}").into_bytes()
}

fn valid_name(name: &str) -> Result<(), String> {
    let ok =
        !name.is_empty() && name.len() <= 128 && name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid secret name {name:?}; expected letters, digits, '-', '_' or '.'"
        ))
    }
}

pub fn run(g: &Global, cmd: SecretsCommand) -> CmdResult {
    let l = super::load_config(g)?;
    super::runtime()?.block_on(async {
        let store = super::open_store(g, &l).await?;
        match cmd {
            SecretsCommand::Set { name, value } => {
                valid_name(&name)?;
                let value = match value {
                    Some(v) => v,
                    None => {
                        let mut v = String::new();
                        std::io::stdin().read_to_string(&mut v)?;
                        v.trim_end_matches(['\n', '\r']).to_string()
                    }
                };
                let (nonce, ct) = crate::sealing::seal(value.as_bytes(), &aad(&name))?;
                store.put_secret(&name, &nonce, &ct).await?;
                crate::audit_queue::record_admin(&store, "admin/secrets.set", &name).await;
                eprintln!("stored secret {name:?} (AES-256-GCM); reference it as ${{secret:{name}}}");
            }
            SecretsCommand::List => {
                for s in store.secrets().await? {
                    println!("{}\tupdated {}", s.name, s.updated_at);
                }
            }
            SecretsCommand::Rm { name } => {
                if !store.delete_secret(&name).await? {
                    return Err(format!("no secret named {name:?}").into());
                }
                crate::audit_queue::record_admin(&store, "admin/secrets.rm", &name).await;
                eprintln!("removed secret {name:?}");
            }
        }
        store.close().await;
        Ok(())
    })
}

/// Decrypt one stored secret.
pub async fn reveal(store: &Store, name: &str) -> Result<String, String> {
    let s = store
        .secret(name)
        .await
        .map_err(|e| format!("cannot read secret {name:?}: {e}"))?
        .ok_or_else(|| format!("no secret named {name:?} (add it with `waygate secrets set {name}`)"))?;
    let plain = crate::sealing::open(&s.nonce, &s.ciphertext, &aad(name))
        .map_err(|e| format!("cannot decrypt secret {name:?}: {e}"))?;
    String::from_utf8(plain).map_err(|_| format!("secret {name:?} is not UTF-8"))
}

/// Replace every `${secret:NAME}` in `value` with the decrypted secret; other references
/// are left for [`crate::config::expand_refs`].
pub async fn resolve(store: &Store, value: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = value;
    while let Some(start) = rest.find("${secret:") {
        out.push_str(&rest[..start]);
        let after = &rest[start + "${secret:".len()..];
        let end = after.find('}').ok_or("unterminated ${secret:…} reference")?;
        let secret = reveal(store, &after[..end]).await?;
        waygate_security::redact::register(&secret);
        out.push_str(&secret);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}
