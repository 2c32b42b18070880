//! The CLI driving a running server through its admin API (tables for people, `--json` for
//! scripts), shell completions, and `waygate connect` writing real client files.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::{json, Value};

use crate::common::{bin, cli_env, Server, TempDir};

struct Remote<'a> {
    url: String,
    key: &'a str,
}

impl Remote<'_> {
    fn run(&self, args: &[&str]) -> (bool, String, String) {
        let mut all = args.to_vec();
        all.extend(["--url", &self.url]);
        cli_env(&all, &[("WAYGATE_API_KEY", self.key)], None)
    }

    fn ok(&self, args: &[&str]) -> String {
        let (ok, out, err) = self.run(args);
        assert!(ok, "{args:?}: {out}{err}");
        out
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.push("--json");
        let out = self.ok(&all);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?} --json: {e}: {out}"))
    }
}

#[test]
fn cli_drives_a_running_server_with_tables_and_json() {
    let d = TempDir::new("cli-remote");
    let (s, key) = Server::start_with_auth(&d.0);
    let key = key.expect("admin key");
    let r = Remote {
        url: format!("http://{}", s.addr),
        key: &key,
    };

    // Virtual servers: add, list (table and JSON), show, remove.
    let out = r.ok(&[
        "servers",
        "add",
        "vs1",
        "--include",
        "demo/echo",
        "--include",
        "demo/add",
        "--title",
        "Two tools",
    ]);
    assert!(out.starts_with("NAME") && out.contains("/servers/vs1/mcp"), "{out}");
    let v = r.json(&["servers", "list"]);
    let vs1 = v["servers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == "vs1")
        .cloned()
        .unwrap();
    assert_eq!(vs1["tools"], json!(["add", "echo"]), "{v}");
    assert!(r.ok(&["servers", "show", "vs1"]).contains("  echo"));
    let (ok, _, err) = r.run(&["servers", "add", "vs1", "--include", "demo/echo"]);
    assert!(!ok && err.contains("409"), "{err}");

    // The catalog, a search, one tool, and a call over REST.
    let out = r.ok(&["catalog", "tools"]);
    let header = out.lines().next().unwrap();
    assert!(header.starts_with("TOOL") && header.contains("ORIGIN"), "{out}");
    let echo_line = out.lines().find(|l| l.starts_with("echo ")).unwrap();
    assert_eq!(
        echo_line.find("demo"),
        header.find("ORIGIN "),
        "columns line up:\n{out}"
    );
    let found = r.json(&["catalog", "tools", "-q", "echo"]);
    assert!(
        found["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["name"].as_str().unwrap().contains("echo")),
        "{found}"
    );
    assert!(r.ok(&["catalog", "show", "echo"]).contains("\"inputSchema\""));
    assert_eq!(
        r.ok(&["catalog", "call", "echo", "--args", r#"{"text":"hi there"}"#])
            .trim(),
        "hi there"
    );
    let (ok, _, err) = r.run(&["catalog", "call", "add", "--args", r#"{"a":"x"}"#]);
    assert!(!ok && err.contains("400") && err.contains("arguments"), "{err}");
    let (ok, _, err) = r.run(&["catalog", "call", "add", "--args", "[1]"]);
    assert!(!ok && err.contains("JSON object"), "{err}");
    assert!(r.ok(&["catalog", "prompts"]).starts_with("PROMPT"));
    assert!(r.ok(&["catalog", "resources"]).starts_with("URI"));

    // Keys through the API: created (shown once), listed, revoked.
    let made = r.json(&["keys", "create", "bot", "--scopes", "mcp"]);
    let id = made["id"].as_str().unwrap().to_string();
    assert!(made["key"].as_str().unwrap().starts_with("wg_"), "{made}");
    let listed = r.ok(&["keys", "list"]);
    assert!(listed.starts_with("ID") && listed.contains("bot") && !listed.contains(made["key"].as_str().unwrap()));
    assert!(r.ok(&["keys", "revoke", &id]).contains("revoked"));

    // Audit, policies, pins and config.
    // (The trail is written by a queue: give it a moment.)
    let end = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut out = String::new();
    while std::time::Instant::now() < end {
        out = r.ok(&["audit", "query", "--target", "echo"]);
        if out.contains("tools/call") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert!(
        out.starts_with("TIME") && out.contains("tools/call") && out.contains("ok"),
        "{out}"
    );
    assert!(r.ok(&["audit", "verify"]).contains("intact"));
    assert!(r.json(&["policies"]).get("limits").is_some());
    assert!(r.ok(&["policies"]).contains("RULE"));
    let page = r.json(&["audit", "query", "-n", "1"]);
    let cursor = page["next_cursor"].as_str().expect("more than one record").to_string();
    let older = r.json(&[
        "audit",
        "query",
        "-n",
        "1",
        "--cursor",
        &cursor,
        "--until-ms",
        "99999999999999",
    ]);
    assert_ne!(older["items"][0]["seq"], json!(null), "{older}");
    assert_ne!(older["items"][0], page["items"][0], "the next page");

    // Policies and limits set from files (TOML as in the config file, or JSON), applied live.
    let rules = d.0.join("rules.toml");
    std::fs::write(
        &rules,
        "# only these\n[[policies]]\nname = \"no-now\"\neffect = \"deny\"\ntools = [\"now\"]\n",
    )
    .unwrap();
    assert!(r
        .ok(&["policies", "set", "--file", rules.to_str().unwrap()])
        .contains("applied"));
    assert_eq!(r.json(&["policies"])["policies"][0]["name"], "no-now");
    std::fs::write(
        &rules,
        "[[policies]]\nname = \"x\"\neffect = \"sometimes\"\ntools = [\"*\"]\n",
    )
    .unwrap();
    let (ok, _, err) = r.run(&["policies", "set", "--file", rules.to_str().unwrap()]);
    assert!(
        !ok && err.contains("400") && err.contains("policies[0].effect"),
        "{err}"
    );
    let limits = d.0.join("limits.json");
    std::fs::write(&limits, r#"{"tools": {"echo": {"max_concurrent": 2}}}"#).unwrap();
    assert!(r
        .ok(&["limits", "set", "--file", limits.to_str().unwrap()])
        .contains("applied"));
    let out = r.ok(&["limits"]);
    assert!(
        out.contains("MAX_CONCURRENT") && out.lines().any(|l| l.starts_with("echo ")),
        "{out}"
    );
    assert_eq!(
        r.ok(&["pins", "list"]).trim(),
        "PLUGIN  TOOL  CHANGED  APPROVED  OFFERED"
    );
    let (ok, _, err) = r.run(&["pins", "diff", "demo", "echo"]);
    assert!(!ok && err.contains("not held back"), "{err}");
    assert!(r.ok(&["config", "snapshots"]).starts_with("ID"));
    let bad = d.0.join("bad.toml");
    std::fs::write(&bad, "version = 3\n[server]\nlisten = \"nowhere\"\n").unwrap();
    let (ok, out, err) = r.run(&["config", "validate", bad.to_str().unwrap()]);
    assert!(!ok && out.contains("listen"), "{out}{err}");

    // Without a key: the refusal says how to pass one; with --json nothing changes on error.
    let (ok, _, err) = cli_env(&["servers", "list", "--url", &r.url], &[], None);
    assert!(!ok && err.contains("401") && err.contains("WAYGATE_API_KEY"), "{err}");
    assert!(r.ok(&["servers", "rm", "vs1"]).contains("removed vs1"));
    let (ok, _, err) = r.run(&["servers", "rm", "vs1"]);
    assert!(!ok && err.contains("404"), "{err}");
}

#[test]
fn offline_keys_list_prints_json_too() {
    let d = TempDir::new("keys-offline");
    let dd = d.0.to_str().unwrap();
    let (ok, out, err) = cli_env(
        &["keys", "create", "ci", "--scopes", "mcp", "--data-dir", dd, "--json"],
        &[],
        None,
    );
    assert!(ok, "{err}");
    let made: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    let (ok, out, err) = cli_env(&["keys", "list", "--json", "--data-dir", dd], &[], None);
    assert!(ok, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    let k = &v["keys"][0];
    assert_eq!(
        (&k["id"], &k["name"], &k["state"]),
        (&made["id"], &json!("ci"), &json!("active")),
        "{v}"
    );
    assert_eq!(k["scopes"], json!(["mcp"]));
    assert!(k.get("key").is_none() && k.get("hash").is_none(), "no secret: {v}");
    let (ok, out, _) = cli_env(&["keys", "list", "--data-dir", dd], &[], None);
    assert!(ok && out.starts_with("ID") && out.contains("ci"), "{out}");
}

#[test]
fn shell_completions_are_generated_for_every_shell() {
    for (shell, marker) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef waygate"),
        ("fish", "complete -c waygate"),
    ] {
        let (ok, out, err) = cli_env(&["completions", shell], &[], None);
        assert!(ok, "{shell}: {err}");
        assert!(
            out.contains(marker) && out.contains("upstreams") && out.contains("connect"),
            "{shell}: {out}"
        );
    }
    let (ok, _, err) = cli_env(&["completions", "tcsh"], &[], None);
    assert!(!ok && err.contains("bash"), "{err}");
}

/// Start an entry's stdio command and ask it for its tools.
fn stdio_tools(entry: &Value) -> Vec<String> {
    let args: Vec<&str> = entry["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    let mut child = Command::new(entry["command"].as_str().unwrap())
        .args(&args)
        .arg("--no-auth")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let init = json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}});
    writeln!(stdin, "{init}").unwrap();
    writeln!(stdin, r#"{{"jsonrpc":"2.0","method":"notifications/initialized"}}"#).unwrap();
    writeln!(stdin, r#"{{"jsonrpc":"2.0","id":2,"method":"tools/list"}}"#).unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut names = Vec::new();
    while let Some(Ok(line)) = lines.next() {
        let v: Value = serde_json::from_str(&line).unwrap();
        if v["id"] == 2 {
            names = v["result"]["tools"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["name"].as_str().unwrap().to_string())
                .collect();
            break;
        }
    }
    drop(stdin);
    let _ = child.kill();
    let _ = child.wait();
    names
}

fn read(p: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

#[test]
fn connect_writes_each_clients_file_with_a_diff_and_a_backup() {
    let d = TempDir::new("connect");
    let (s, key) = Server::start_with_auth(&d.0);
    let key = key.expect("admin key");
    let url = format!("http://{}", s.addr);
    let dd = d.0.join("data");
    let dd = dd.to_str().unwrap();
    let connect = |client: &str, file: &Path, extra: &[&str]| {
        let mut args = vec![
            "connect",
            client,
            "--file",
            file.to_str().unwrap(),
            "--url",
            &url,
            "--data-dir",
            dd,
        ];
        args.extend_from_slice(extra);
        cli_env(&args, &[("WAYGATE_API_KEY", key.as_str())], None)
    };

    // Real files as each client writes them, with an entry and settings of their own.
    let cases = [
        (
            "claude-desktop",
            "claude_desktop_config.json",
            json!({"mcpServers": {"fs": {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-filesystem", "/tmp"]}}, "globalShortcut": "Ctrl+Space"}),
            "mcpServers",
        ),
        (
            "claude-code",
            ".mcp.json",
            json!({"mcpServers": {"gh": {"type": "http", "url": "https://api.githubcopilot.com/mcp/"}}}),
            "mcpServers",
        ),
        (
            "cursor",
            "mcp.json",
            json!({"mcpServers": {"linear": {"url": "https://mcp.linear.app/sse"}}}),
            "mcpServers",
        ),
        (
            "vscode",
            "mcp.json",
            json!({"inputs": [{"type": "promptString", "id": "gh-token", "password": true}], "servers": {"gh": {"type": "http", "url": "https://api.githubcopilot.com/mcp/"}}}),
            "servers",
        ),
        (
            "windsurf",
            "mcp_config.json",
            json!({"mcpServers": {"brave": {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-brave-search"], "env": {"BRAVE_API_KEY": "x"}}}}),
            "mcpServers",
        ),
    ];
    for (client, file, original, key_name) in &cases {
        let dir = d.0.join(client);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(file);
        let text = serde_json::to_string_pretty(original).unwrap();
        std::fs::write(&path, &text).unwrap();

        let (ok, out, err) = connect(client, &path, &["--dry-run"]);
        assert!(
            ok && out.contains("+") && out.contains("dry run"),
            "{client}: {out}{err}"
        );
        assert_eq!(std::fs::read_to_string(&path).unwrap(), text, "{client}: dry run wrote");

        let (ok, out, err) = connect(client, &path, &[]);
        assert!(ok && out.contains("\"waygate\""), "{client}: {out}{err}");
        let backup = std::fs::read_to_string(format!("{}.bak", path.display())).unwrap();
        assert_eq!(backup, text, "{client}: backup");
        let now = read(&path);
        // Everything the client had is still there.
        for (k, v) in original.as_object().unwrap() {
            if k != key_name && k != "inputs" {
                assert_eq!(&now[k], v, "{client}: {k}");
            }
        }
        for (name, entry) in original[key_name].as_object().unwrap() {
            assert_eq!(&now[key_name][name], entry, "{client}: {name}");
        }
        let entry = &now[key_name]["waygate"];
        assert!(
            !std::fs::read_to_string(&path).unwrap().contains(&key),
            "{client}: key written in clear"
        );
        match *client {
            "claude-desktop" => {
                assert_eq!(entry["command"], bin_path(), "{entry}");
                let tools = stdio_tools(entry);
                assert!(tools.contains(&"echo".to_string()), "{client}: {tools:?}");
            }
            _ => {
                let url_key = if *client == "windsurf" { "serverUrl" } else { "url" };
                assert_eq!(entry[url_key], format!("{url}/mcp"), "{entry}");
                let auth = entry["headers"]["Authorization"].as_str().unwrap();
                let expected = match *client {
                    "claude-code" => "Bearer ${WAYGATE_API_KEY}",
                    "vscode" => "Bearer ${input:waygate-api-key}",
                    _ => "Bearer ${env:WAYGATE_API_KEY}",
                };
                assert_eq!(auth, expected, "{client}");
                // What the client would send works against the server.
                let real = format!("Bearer {key}");
                let init = json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{
                    "protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}});
                let h = [("authorization", real.as_str())];
                let r = s.post(&init, &h);
                assert_eq!(r.status, 200, "{}", r.text());
            }
        }
        if *client == "vscode" {
            let inputs = now["inputs"].as_array().unwrap();
            assert!(
                inputs.iter().any(|i| i["id"] == "gh-token")
                    && inputs
                        .iter()
                        .any(|i| i["id"] == "waygate-api-key" && i["password"] == true),
                "{now}"
            );
        }
        // Again: nothing to change.
        let (ok, out, _) = connect(client, &path, &[]);
        assert!(ok && out.contains("already up to date"), "{client}: {out}");
    }

    // A stdio entry for an IDE, a virtual server's URL, a key embedded on request.
    let p = d.0.join("cc-stdio.json");
    assert!(connect("claude-code", &p, &["--stdio", "--name", "wg"]).0);
    let e = &read(&p)["mcpServers"]["wg"];
    assert_eq!(e["type"], "stdio");
    assert!(stdio_tools(e).contains(&"add".to_string()));
    let p = d.0.join("cursor-view.json");
    assert!(connect("cursor", &p, &["--server", "dev", "--embed-key"]).0);
    let e = &read(&p)["mcpServers"]["waygate"];
    assert_eq!(e["url"], format!("{url}/servers/dev/mcp"));
    assert_eq!(e["headers"]["Authorization"], format!("Bearer {key}"));

    // JSONC (comments, trailing commas) as Cursor, VS Code and Windsurf accept: read; the
    // file written is plain JSON; the backup keeps the original.
    for (client, key_name) in [
        ("cursor", "mcpServers"),
        ("vscode", "servers"),
        ("windsurf", "mcpServers"),
    ] {
        let p = d.0.join(format!("{client}-jsonc.json"));
        let original = format!(
            "{{\n  // mine\n  \"{key_name}\": {{\n    \"other\": {{ \"command\": \"x\", /* inline */ }},\n  }},\n}}\n"
        );
        std::fs::write(&p, &original).unwrap();
        let (ok, out, err) = connect(client, &p, &[]);
        assert!(ok, "{client}: {out}{err}");
        let now = read(&p);
        assert!(
            now[key_name]["other"].is_object() && now[key_name]["waygate"].is_object(),
            "{now}"
        );
        let written = std::fs::read_to_string(&p).unwrap();
        assert!(!written.contains("mine") && !written.contains("inline"), "{written}");
        assert_eq!(
            std::fs::read_to_string(format!("{}.bak", p.display())).unwrap(),
            original
        );
    }

    // A file that is not JSON is left alone, with a message naming it.
    let broken = d.0.join("broken.json");
    std::fs::write(&broken, "{ \"mcpServers\": { // a comment\n").unwrap();
    let (ok, _, err) = connect("cursor", &broken, &[]);
    assert!(
        !ok && err.contains("broken.json") && err.contains("not valid JSON"),
        "{err}"
    );
    assert!(std::fs::read_to_string(&broken).unwrap().contains("a comment"));
    assert!(!Path::new(&format!("{}.bak", broken.display())).exists());
}

fn bin_path() -> String {
    std::fs::canonicalize(bin()).unwrap().display().to_string()
}
