//! `waygate config schema`: the file format as a JSON Schema, for editors. Generated from
//! the types the file is read into (schemars follows their serde attributes, doc comments
//! become descriptions), so a key added to the format is in the schema too; only what the
//! types cannot say is added here.

use super::{plugins, FileConfig, CURRENT_VERSION};

/// The JSON Schema of the file format, for editors (`waygate config schema`).
pub fn schema() -> serde_json::Value {
    use serde_json::json;
    let mut s = serde_json::to_value(schemars::schema_for!(FileConfig)).unwrap_or_default();
    s["title"] = json!("Waygate configuration (waygate.toml)");
    s["properties"]["version"] = json!({"const": CURRENT_VERSION, "description": "file format version"});
    if let Some(p) = s.pointer_mut("/$defs/PluginsSection/properties/enabled") {
        *p = json!({"type": "array", "items": {"enum": waygate_plugins::BUILTIN}, "description": "built-in plugins to load"});
    }
    if let Some(p) = s.pointer_mut("/$defs/HookConfig/properties/kind") {
        *p = json!({"enum": plugins::HOOK_KINDS});
    }
    if let Some(p) = s.pointer_mut("/$defs/PluginsSection/properties/system") {
        p["description"] = json!("roots, writable, max_read_bytes, max_write_bytes, commands, command_timeout_ms, max_output_bytes, http_hosts, http_timeout_ms, max_search_results");
    }
    if let Some(p) = s.pointer_mut("/$defs/PluginsSection/properties/wasm/items") {
        p["required"] = json!(["name", "module"]);
        p["description"] = json!("name, module, memory_mib, time_ms, instances, max_traps, max_output_bytes, fs_read, env, http_hosts, wall_clock, settings");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every section of the file is described, and a file using them validates.
    #[test]
    fn the_schema_accepts_a_file_with_every_section_and_refuses_unknown_keys() {
        let s = schema();
        let v = jsonschema::validator_for(&s).expect("the schema is a valid JSON Schema");
        let text = r#"
version = 3
[server]
listen = "127.0.0.1:8080"
tls_client_ca = "ca.pem"
[http]
max_body_bytes = 1000
[mcp]
page_size = 50
[plugins]
demo = false
enabled = ["system"]
[store]
url = "sqlite://w.db"
[audit]
enabled = true
[limits]
requests_per_second = 5.0
[limits.tools."*"]
per_second = 1.0
[auth]
admin_key = "${env:K}"
[authz]
[[policies]]
name = "p"
effect = "deny"
tools = ["x"]
[outbound]
[log]
[[upstreams]]
name = "u"
url = "https://h/mcp"
headers = { Authorization = "Bearer ${secret:t}" }
[upstreams.tls]
ca = "ca.pem"
[catalog]
[[servers]]
name = "s"
[pinning]
[otel]
endpoint = "http://127.0.0.1:4318"
[admin]
compat_routes = false
"#;
        // As an editor sees it: the file's own tree …
        let raw: serde_json::Value = toml::from_str(text).unwrap();
        let errors: Vec<String> = v
            .iter_errors(&raw)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{errors:#?}");
        // … and as Waygate reads it.
        let file: FileConfig = toml::from_str(text).expect("a valid file");
        let json = serde_json::to_value(&file).unwrap();
        let errors: Vec<String> = v
            .iter_errors(&json)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{errors:#?}");
        for section in [
            "server",
            "http",
            "mcp",
            "plugins",
            "store",
            "audit",
            "limits",
            "auth",
            "authz",
            "policies",
            "outbound",
            "log",
            "upstreams",
            "catalog",
            "servers",
            "hooks",
            "pinning",
            "otel",
            "admin",
        ] {
            assert!(s["properties"].get(section).is_some(), "{section} is not described");
        }
        let mut bad = json.clone();
        bad["upstreams"][0]["tls"]["cafile"] = serde_json::json!("x");
        assert!(!v.is_valid(&bad), "an unknown key must be refused");
    }
}
