//! Upgrading configuration files written for older format versions.
//!
//! - Version 1: flat keys (`listen`, `name`, `plugins = [...]`, `max_body_bytes`, `state_key`).
//! - Version 2: sections (`[server]`, `[http]`, `[mcp]`, `[plugins] enabled`) and a
//!   top-level `database` URL.
//! - Version 3 (current): the database URL lives in `[store] url`.

use toml::{Table, Value};

use super::CURRENT_VERSION;

/// Upgrade `v` written for `from` to the current version, one step at a time.
pub fn upgrade(mut v: Value, from: u32) -> Result<Value, String> {
    if from == 0 || from > CURRENT_VERSION {
        return Err(format!("unknown config version {from}; expected 1..={CURRENT_VERSION}"));
    }
    let mut version = from;
    while version < CURRENT_VERSION {
        v = match version {
            1 => v1_to_v2(v)?,
            2 => v2_to_v3(v)?,
            _ => unreachable!("every version below CURRENT_VERSION has a step"),
        };
        version += 1;
    }
    Ok(v)
}

fn table(v: Value) -> Result<Table, String> {
    match v {
        Value::Table(t) => Ok(t),
        _ => Err("the config file must be a TOML table".into()),
    }
}

fn section<'a>(t: &'a mut Table, name: &str) -> &'a mut Table {
    let e = t.entry(name.to_string()).or_insert_with(|| Value::Table(Table::new()));
    if !e.is_table() {
        *e = Value::Table(Table::new());
    }
    match e {
        Value::Table(t) => t,
        _ => unreachable!(),
    }
}

fn v1_to_v2(v: Value) -> Result<Value, String> {
    let mut old = table(v)?;
    let mut new = Table::new();
    for (key, sect, to) in [
        ("listen", "server", "listen"),
        ("name", "server", "name"),
        ("instructions", "server", "instructions"),
        ("max_body_bytes", "http", "max_body_bytes"),
        ("state_key", "mcp", "state_key"),
        ("plugins", "plugins", "enabled"),
    ] {
        if let Some(val) = old.remove(key) {
            section(&mut new, sect).insert(to.into(), val);
        }
    }
    if let Some(db) = old.remove("database") {
        new.insert("database".into(), db);
    }
    old.remove("version");
    if let Some(k) = old.keys().next() {
        return Err(format!("version 1 files have no key `{k}`"));
    }
    new.insert("version".into(), Value::Integer(2));
    Ok(Value::Table(new))
}

fn v2_to_v3(v: Value) -> Result<Value, String> {
    let mut t = table(v)?;
    if let Some(db) = t.remove("database") {
        section(&mut t, "store").insert("url".into(), db);
    }
    t.insert("version".into(), Value::Integer(3));
    Ok(Value::Table(t))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::FileConfig;
    use serde::Deserialize;

    fn parse(s: &str) -> Value {
        toml::from_str(s).unwrap()
    }

    #[test]
    fn step_1_to_2() {
        let v = v1_to_v2(parse("version = 1\nlisten = \"127.0.0.1:9\"\nplugins = [\"everything\"]\nstate_key = \"k\"\ndatabase = \"sqlite://x.db\"")).unwrap();
        assert_eq!(v["server"]["listen"].as_str(), Some("127.0.0.1:9"));
        assert_eq!(v["plugins"]["enabled"][0].as_str(), Some("everything"));
        assert_eq!(v["mcp"]["state_key"].as_str(), Some("k"));
        assert_eq!(v["version"].as_integer(), Some(2));
        assert!(v1_to_v2(parse("version = 1\nbogus = 1")).unwrap_err().contains("bogus"));
    }

    #[test]
    fn step_2_to_3() {
        let v = v2_to_v3(parse(
            "version = 2\ndatabase = \"postgres://h/db\"\n[server]\nname = \"n\"",
        ))
        .unwrap();
        assert_eq!(v["store"]["url"].as_str(), Some("postgres://h/db"));
        assert!(v.get("database").is_none());
        assert_eq!(v["version"].as_integer(), Some(3));
    }

    #[test]
    fn both_older_versions_reach_a_valid_current_config() {
        for (from, text) in [
            (
                1,
                "version = 1\nlisten = \"127.0.0.1:9\"\nplugins = [\"everything\"]\ndatabase = \"sqlite://x.db\"",
            ),
            (
                2,
                "version = 2\ndatabase = \"sqlite://x.db\"\n[plugins]\nenabled = [\"everything\"]",
            ),
        ] {
            let v = upgrade(parse(text), from).unwrap();
            let cfg = FileConfig::deserialize(v).unwrap();
            assert_eq!(cfg.version, Some(CURRENT_VERSION));
            assert_eq!(cfg.store.url.as_ref().map(|u| u.expose()), Some("sqlite://x.db"));
            assert_eq!(cfg.plugins.enabled, vec!["everything".to_string()]);
        }
        assert!(upgrade(parse("version = 9"), 9).is_err());
    }
}
