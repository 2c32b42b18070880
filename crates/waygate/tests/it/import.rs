//! `waygate import` against real files in each supported format, including `--verify`
//! starting a real stdio MCP server (Waygate itself) and listing its tools.

use super::common;

use common::{bin, TempDir};

fn run(dir: &TempDir, args: &[&str]) -> (bool, String, String) {
    let mut all = args.to_vec();
    all.extend(["--data-dir", dir.0.to_str().unwrap()]);
    common::cli(&all)
}

fn file(dir: &TempDir, rel: &str, text: &str) -> String {
    let p = dir.0.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, text).unwrap();
    p.to_str().unwrap().to_string()
}

#[test]
fn claude_desktop_with_secrets_and_lossiness() {
    let d = TempDir::new("imp-claude");
    let f = file(
        &d,
        "claude_desktop_config.json",
        r#"{"mcpServers": {
            "github": {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-github"],
                       "env": {"GITHUB_PERSONAL_ACCESS_TOKEN": "ghp_realsecret", "LOG": "debug"}},
            "fs tool": {"command": "mcp-fs", "args": ["/tmp"], "autoApprove": ["read_file"], "disabled": true},
            "remote": {"type": "http", "url": "https://mcp.example.com/mcp", "headers": {"Authorization": "Bearer abc"}}
        }, "globalShortcut": "Ctrl+Q"}"#,
    );
    let (ok, out, err) = run(&d, &["import", &f, "--dry-run"]);
    assert!(ok, "{err}");
    assert!(out.contains("claude format"), "{out}");
    assert!(
        !out.contains("ghp_realsecret") && !out.contains("Bearer abc"),
        "secrets must not be copied: {out}"
    );
    assert!(out.contains("${env:GITHUB_PERSONAL_ACCESS_TOKEN}"), "{out}");
    assert!(
        out.contains("autoApprove") && out.contains("globalShortcut") && out.contains("renamed"),
        "lossiness report: {out}"
    );
    assert!(out.contains("+ new") && out.contains("dry run"), "{out}");
    assert!(!d.0.join("waygate.toml").exists());

    // Real write, then re-import shows everything unchanged; the file validates.
    let (ok, _, err) = run(&d, &["import", &f]);
    assert!(ok, "{err}");
    let (ok, out, _) = run(&d, &["config", "validate"]);
    assert!(ok, "{out}");
    let (ok, out, _) = run(&d, &["import", &f, "--dry-run"]);
    assert!(ok && out.matches("= unchanged").count() == 3, "{out}");
}

#[test]
fn vscode_inputs_cursor_jsonc_windsurf_fastmcp() {
    let d = TempDir::new("imp-misc");
    let vs = file(
        &d,
        ".vscode/mcp.json",
        r#"{
          // VS Code allows comments
          "inputs": [{"type": "promptString", "id": "api-key", "description": "API key", "password": true}],
          "servers": {
            "perplexity": {"type": "stdio", "command": "npx", "args": ["-y", "server-perplexity"],
                           "env": {"PERPLEXITY_API_KEY": "${input:api-key}"}, "envFile": "${workspaceFolder}/.env"},
          },
        }"#,
    );
    let (ok, out, err) = run(&d, &["import", &vs, "--dry-run"]);
    assert!(ok, "{err}");
    assert!(
        out.contains("vscode format") && out.contains("${env:API_KEY}") && out.contains("envFile"),
        "{out}"
    );
    let cur = file(
        &d,
        ".cursor/mcp.json",
        r#"{"mcpServers": {"web": {"url": "http://127.0.0.1:9/sse"}}}"#,
    );
    let (ok, out, _) = run(&d, &["import", &cur, "--dry-run"]);
    assert!(
        ok && out.contains("cursor format") && out.contains("transport = \"sse\""),
        "{out}"
    );
    let ws = file(
        &d,
        "windsurf/mcp_config.json",
        r#"{"mcpServers": {"w": {"serverUrl": "https://x.example/mcp"}}}"#,
    );
    let (ok, out, _) = run(&d, &["import", &ws, "--dry-run"]);
    assert!(
        ok && out.contains("windsurf format") && out.contains("https://x.example/mcp"),
        "{out}"
    );
    let fm = file(
        &d,
        "mcpconfig.json",
        r#"{"mcpServers": {"a": {"url": "https://a.example/mcp", "transport": "streamable-http", "auth": "oauth"}}}"#,
    );
    let (ok, out, _) = run(&d, &["import", &fm, "--dry-run"]);
    assert!(
        ok && out.contains("fastmcp format") && out.contains("transport = \"http\"") && out.contains("auth"),
        "{out}"
    );
    let bad = file(&d, "other.json", r#"{"something": 1}"#);
    let (ok, _, err) = run(&d, &["import", &bad]);
    assert!(!ok && err.contains("--from"), "{err}");
}

#[test]
fn contextforge_export_and_nexus_with_dotenv() {
    let d = TempDir::new("imp-gw");
    let cf = file(
        &d,
        "export.json",
        r#"{"version": "2025-03-26", "exported_at": "2026-01-01T00:00:00Z", "entities": {
            "gateways": [{"name": "time", "url": "http://127.0.0.1:9000/sse", "transport": "SSE", "auth_type": "bearer",
                          "auth_value": "gAAAAencrypted", "passthrough_headers": ["X-Tenant"]}],
            "tools": [{"name": "weather", "integration_type": "REST"}],
            "servers": [{"name": "virtual-1"}]}}"#,
    );
    let (ok, out, err) = run(&d, &["import", &cf, "--dry-run"]);
    assert!(ok, "{err}");
    assert!(
        out.contains("contextforge format") && out.contains("TIME_AUTH") && out.contains("passthrough_headers"),
        "{out}"
    );
    assert!(
        out.contains("REST tools") && out.contains("virtual servers") && !out.contains("gAAAAencrypted"),
        "{out}"
    );

    let n = TempDir::new("imp-nexus");
    file(&n, ".env", "OPENAI_API_KEY=sk-secret\nUNUSED=1\n");
    let nx = file(
        &n,
        "mcp.json",
        r#"{"servers": [{"name": "search", "command": "python", "args": ["-m", "search_server"], "env": {"OPENAI_API_KEY": "${OPENAI_API_KEY}"}}]}"#,
    );
    let (ok, out, err) = run(&n, &["import", &nx, "--dry-run"]);
    assert!(ok, "{err}");
    assert!(
        out.contains("nexus format") && out.contains("${env:OPENAI_API_KEY}") && !out.contains("sk-secret"),
        "{out}"
    );
    assert!(out.contains("UNUSED"), "unused .env entries are reported: {out}");
}

#[test]
fn verify_starts_the_upstream_and_lists_tools() {
    let d = TempDir::new("imp-verify");
    let data = d.0.join("upstream-data");
    let cfg = format!(
        r#"{{"mcpServers": {{"self": {{"command": "{}", "args": ["serve", "--stdio", "--data-dir", "{}"]}},
            "broken": {{"command": "/nonexistent/binary"}}}}}}"#,
        bin(),
        data.display()
    );
    let f = file(&d, "claude.json", &cfg);
    let (ok, out, _) = run(&d, &["import", &f, "--verify"]);
    assert!(!ok, "a failing upstream blocks the write");
    assert!(out.contains("verify self: ok") && out.contains("echo"), "{out}");
    assert!(out.contains("verify broken: FAILED"), "{out}");
    assert!(!d.0.join("waygate.toml").exists());
}

#[test]
fn encrypted_secrets_are_sealed_listed_by_name_and_resolved_for_upstreams() {
    let d = TempDir::new("secrets");
    let dd = d.0.to_str().unwrap();
    let key = [("WAYGATE_SECRET_KEY", "a long operator secret 123")];
    let value = "s3cret-value-that-must-not-leak";
    let (ok, _, err) = common::cli_env(
        &["secrets", "set", "tok", "--data-dir", dd],
        &key,
        Some(&format!("{value}\n")),
    );
    assert!(ok, "{err}");
    let (ok, out, _) = common::cli_env(&["secrets", "list", "--data-dir", dd], &key, None);
    assert!(ok && out.starts_with("tok\t") && !out.contains(value), "{out}");
    let db = std::fs::read(d.0.join("waygate.db")).unwrap();
    let wal = std::fs::read(d.0.join("waygate.db-wal")).unwrap_or_default();
    let needle = value.as_bytes();
    for bytes in [&db, &wal] {
        assert!(
            !bytes.windows(needle.len()).any(|w| w == needle),
            "plaintext in the database file"
        );
    }
    // An upstream whose env uses ${secret:tok}: it only starts when the value arrives intact.
    let data = d.0.join("upstream-data");
    let script = format!(
        "test \"$TOKEN\" = {value} && exec {} serve --stdio --data-dir {}",
        bin(),
        data.display()
    );
    let cfg = serde_json::json!({"mcpServers": {"guarded": {"command": "sh", "args": ["-c", script], "env": {"TOKEN": "${secret:tok}"}}}});
    let f = file(&d, "claude.json", &cfg.to_string());
    let (ok, out, err) = common::cli_env(&["import", &f, "--verify", "--dry-run", "--data-dir", dd], &key, None);
    assert!(ok && out.contains("verify guarded: ok"), "{out}{err}");
    // The wrong key cannot open it, and says so.
    let wrong = [("WAYGATE_SECRET_KEY", "another secret entirely")];
    let (_, out, _) = common::cli_env(&["import", &f, "--verify", "--dry-run", "--data-dir", dd], &wrong, None);
    assert!(
        out.contains("verify guarded: FAILED: upstreams.guarded.env.TOKEN: cannot decrypt secret \"tok\""),
        "{out}"
    );
    let (ok, _, _) = common::cli_env(&["secrets", "rm", "tok", "--data-dir", dd], &key, None);
    assert!(ok);
    let (_, out, _) = common::cli_env(&["secrets", "list", "--data-dir", dd], &key, None);
    assert!(out.trim().is_empty());
}
