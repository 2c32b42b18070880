//! The admin REST API of the real binary: its generated document and Swagger UI, REST tool
//! calls under MCP's rules, keys, virtual servers, configuration with snapshots, audit
//! pagination, and problem documents for bad requests.

use super::catalog::{eventually, tools_at, write_config};
use super::common::{self, Response, Server, TempDir};

use serde_json::{json, Value};

pub(crate) fn api(s: &Server, method: &str, path: &str, key: &str, body: Option<&Value>) -> Response {
    let bytes = body.map(|b| serde_json::to_vec(b).unwrap()).unwrap_or_default();
    let mut h = vec![("x-api-key", key)];
    if body.is_some() {
        h.push(("content-type", "application/json"));
    }
    s.request(method, path, &h, &bytes)
}

fn problem(r: &Response, status: u16) -> Value {
    assert_eq!(r.status, status, "{}", r.text());
    assert_eq!(
        r.header("content-type"),
        Some("application/problem+json"),
        "{}",
        r.text()
    );
    let p = r.json();
    assert_eq!(p["status"], status, "{p}");
    assert!(p["detail"].as_str().is_some_and(|d| !d.is_empty()), "{p}");
    p
}

#[test]
fn the_document_is_generated_public_and_complete_and_swagger_ui_is_embedded() {
    let d = TempDir::new("admin-doc");
    let (s, _) = Server::start_with_auth(&d.0);
    let r = s.request("GET", "/api/v1/openapi.json", &[], b"");
    assert_eq!(r.status, 200, "the description needs no key");
    let doc = r.json();
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    for p in [
        "/api/v1/catalog/tools",
        "/api/v1/tools/{name}/call",
        "/api/v1/plugins/{name}/{action}",
        "/api/v1/upstreams/{name}/restart",
        "/api/v1/servers/{name}",
        "/api/v1/keys/{id}/rotate",
        "/api/v1/pins/{plugin}/{tool}/approve",
        "/api/v1/audit",
        "/api/v1/config/snapshots/{id}/rollback",
        "/api/v1/log-level",
        "/mcp/execute",
        "/plugins/reload",
    ] {
        assert!(paths.contains_key(p), "{p} missing from the document");
    }
    // Every operation names its refusals, and every problem is the shared schema.
    let op = &doc["paths"]["/api/v1/keys"]["post"];
    for code in ["201", "400", "401", "403", "429"] {
        assert!(
            op["responses"][code].is_object(),
            "POST /api/v1/keys lacks {code}: {op}"
        );
    }
    assert!(doc["components"]["schemas"]["Problem"].is_object());
    assert!(doc["components"]["securitySchemes"]["api_key"].is_object());
    // Swagger UI from the binary (no CDN): the page and its script.
    let page = s.request("GET", "/docs/", &[], b"");
    assert_eq!(page.status, 200);
    assert!(page.text().contains("swagger-ui"), "{}", page.text());
    assert!(!page.text().contains("https://"), "no remote assets: {}", page.text());
    let js = s.request("GET", "/docs/swagger-ui-bundle.js", &[], b"");
    assert_eq!(js.status, 200);
    assert!(js.body.len() > 100_000, "bundle is embedded ({} bytes)", js.body.len());
    // Data needs a key, and errors are problem documents.
    let p = problem(&s.request("GET", "/api/v1/keys", &[], b""), 401);
    assert_eq!(p["title"], "Unauthorized");
}

#[test]
fn rest_tool_calls_follow_mcps_rules_and_are_audited() {
    let d = TempDir::new("admin-call");
    write_config(
        &d,
        "[authz]\ndefault = \"deny\"\n[[policies]]\nname = \"admins\"\neffect = \"allow\"\nroles = [\"admin\"]\ntools = [\"*\"]\n\
         [[policies]]\nname = \"bots-add\"\neffect = \"allow\"\nroles = [\"bot\"]\ntools = [\"add\"]\n",
    );
    let cfg = d.0.join("gateway.toml");
    let (s, admin) = Server::start_auth_with(&d.0, &["--config", cfg.to_str().unwrap()]);
    let admin = admin.unwrap();
    let made = api(
        &s,
        "POST",
        "/api/v1/keys",
        &admin,
        Some(&json!({"name": "bot", "scopes": ["mcp", "bot"]})),
    );
    assert_eq!(made.status, 201, "{}", made.text());
    let bot = made.json()["key"].as_str().unwrap().to_string();

    // The new key works at once (the key table is refreshed on change).
    let ok = api(
        &s,
        "POST",
        "/api/v1/tools/add/call",
        &bot,
        Some(&json!({"arguments": {"a": 2, "b": 3}})),
    );
    assert_eq!(ok.status, 200, "{}", ok.text());
    assert_eq!(ok.json()["structuredContent"]["sum"], 5.0);
    // Validation before anything runs, naming the field.
    let bad = api(
        &s,
        "POST",
        "/api/v1/tools/add/call",
        &bot,
        Some(&json!({"arguments": {"a": "x"}})),
    );
    let p = problem(&bad, 400);
    assert_eq!(p["field"], "arguments");
    assert!(
        p["detail"].as_str().unwrap().contains("\"b\" is a required property"),
        "{p}"
    );
    // A tool the policy hides looks exactly like one that does not exist.
    let hidden = problem(
        &api(
            &s,
            "POST",
            "/api/v1/tools/echo/call",
            &bot,
            Some(&json!({"arguments": {"text": "x"}})),
        ),
        404,
    );
    let unknown = problem(
        &api(
            &s,
            "POST",
            "/api/v1/tools/nope/call",
            &bot,
            Some(&json!({"arguments": {}})),
        ),
        404,
    );
    assert_eq!(
        hidden["detail"].as_str().unwrap().replace("echo", "X"),
        unknown["detail"].as_str().unwrap().replace("nope", "X")
    );
    // An MCP key is not an admin key.
    let p = problem(&api(&s, "GET", "/api/v1/keys", &bot, None), 403);
    assert!(p["detail"].as_str().unwrap().contains("admin:read"), "{p}");
    // Streaming: the result arrives as an SSE JSON-RPC response.
    let st = s.request(
        "POST",
        "/api/v1/tools/countdown/call",
        &[
            ("x-api-key", &admin),
            ("content-type", "application/json"),
            ("accept", "text/event-stream"),
        ],
        br#"{"arguments":{"n":3}}"#,
    );
    assert_eq!(st.header("content-type"), Some("text/event-stream"));
    let msgs = st.sse_messages();
    assert!(msgs.iter().any(|m| m["method"] == "notifications/progress"), "{msgs:?}");
    assert_eq!(msgs.last().unwrap()["id"], "rest", "{msgs:?}");
    // As a task: a handle now, the result from /api/v1/tasks/{id}/result, owner only.
    let t = api(
        &s,
        "POST",
        "/api/v1/tools/countdown/call",
        &admin,
        Some(&json!({"arguments": {"n": 2}, "task": {}})),
    );
    assert_eq!(t.status, 200, "{}", t.text());
    let id = t.json()["task"]["taskId"].as_str().unwrap().to_string();
    let other = api(&s, "GET", &format!("/api/v1/tasks/{id}"), &bot, None);
    problem(&other, 404);
    let res = api(&s, "GET", &format!("/api/v1/tasks/{id}/result"), &admin, None);
    assert_eq!(res.status, 200, "{}", res.text());
    assert!(
        res.text().contains("Liftoff") || res.json()["content"].is_array(),
        "{}",
        res.text()
    );

    // The audit trail holds the REST call with its caller, found by filter.
    eventually(10, "the audit record", || {
        let a = api(
            &s,
            "GET",
            "/api/v1/audit?method=tools/call&target=add&limit=5",
            &admin,
            None,
        )
        .json();
        a["items"].as_array().is_some_and(|i| {
            i.iter()
                .any(|e| e["record"]["principal"].as_str().is_some_and(|p| p.ends_with(":bot")))
        })
    });
    let created = api(&s, "GET", "/api/v1/audit?method=admin/*", &admin, None).json();
    let rec = &created["items"][0]["record"];
    assert_eq!(rec["method"], "admin/keys.create", "{created}");
    assert!(rec["principal"].as_str().unwrap().ends_with(":admin"), "{rec}");
}

#[test]
fn keys_rotate_and_revoke_take_effect_at_once_and_secrets_stay_hidden() {
    let d = TempDir::new("admin-keys");
    let (s, admin) = Server::start_with_auth(&d.0);
    let admin = admin.unwrap();
    let k = api(
        &s,
        "POST",
        "/api/v1/keys",
        &admin,
        Some(&json!({"name": "ci", "scopes": ["mcp"], "expires_in_days": 30})),
    );
    assert_eq!(k.status, 201);
    let (id, secret) = (
        k.json()["id"].as_str().unwrap().to_string(),
        k.json()["key"].as_str().unwrap().to_string(),
    );
    let listed = api(&s, "GET", "/api/v1/keys", &admin, None);
    assert!(!listed.text().contains(&secret), "a key is shown only once");
    assert!(listed.json()["keys"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["id"] == id && r["state"] == "active"));
    let call = |key: &str| {
        api(
            &s,
            "POST",
            "/api/v1/tools/add/call",
            key,
            Some(&json!({"arguments": {"a": 1, "b": 1}})),
        )
        .status
    };
    assert_eq!(call(&secret), 200);
    let rotated = api(&s, "POST", &format!("/api/v1/keys/{id}/rotate"), &admin, None);
    assert_eq!(rotated.status, 201, "{}", rotated.text());
    let new_secret = rotated.json()["key"].as_str().unwrap().to_string();
    assert_eq!(call(&secret), 401, "the rotated key is refused at once");
    assert_eq!(call(&new_secret), 200);
    let new_id = rotated.json()["id"].as_str().unwrap().to_string();
    assert_eq!(
        api(&s, "DELETE", &format!("/api/v1/keys/{new_id}"), &admin, None).status,
        204
    );
    assert_eq!(call(&new_secret), 401);
    problem(&api(&s, "DELETE", &format!("/api/v1/keys/{new_id}"), &admin, None), 404);
    let p = problem(
        &api(
            &s,
            "POST",
            "/api/v1/keys",
            &admin,
            Some(&json!({"name": "x", "scopes": ["a b"]})),
        ),
        400,
    );
    assert_eq!(p["field"], "scopes[0]");
    let p = problem(
        &api(&s, "POST", "/api/v1/keys", &admin, Some(&json!({"scopes": ["mcp"]}))),
        400,
    );
    assert_eq!(p["field"], "name", "{p}");
    // Secrets: names only.
    let (ok, _, err) = common::cli_env(
        &["secrets", "set", "tok", "--data-dir", d.0.to_str().unwrap()],
        &[("WAYGATE_SECRET_KEY", "correct horse battery staple")],
        Some("s3cr3t-value\n"),
    );
    assert!(ok, "{err}");
    let sec = api(&s, "GET", "/api/v1/secrets", &admin, None);
    assert!(
        sec.json()["secrets"].as_array().unwrap().contains(&json!("tok")),
        "{}",
        sec.text()
    );
    assert!(!sec.text().contains("s3cr3t-value"));
}

#[test]
fn virtual_servers_are_created_validated_served_and_kept_across_restarts() {
    let d = TempDir::new("admin-servers");
    let (s, admin) = Server::start_with_auth(&d.0);
    let admin = admin.unwrap();
    let bad = api(
        &s,
        "POST",
        "/api/v1/servers",
        &admin,
        Some(&json!({"name": "math", "include": []})),
    );
    let p = problem(&bad, 422);
    assert_eq!(p["field"], "include", "{p}");
    let bad = api(
        &s,
        "POST",
        "/api/v1/servers",
        &admin,
        Some(&json!({"name": "a/b", "include": ["demo"]})),
    );
    assert_eq!(problem(&bad, 422)["field"], "name");
    let made = api(
        &s,
        "POST",
        "/api/v1/servers",
        &admin,
        Some(&json!({"name": "math", "include": ["demo/add"]})),
    );
    assert_eq!(made.status, 201, "{}", made.text());
    assert_eq!(made.json()["tools"], json!(["add"]));
    assert_eq!(tools_at(&s, "/servers/math/mcp", Some(&admin)), vec!["add"]);
    problem(
        &api(
            &s,
            "POST",
            "/api/v1/servers",
            &admin,
            Some(&json!({"name": "math", "include": ["demo"]})),
        ),
        409,
    );
    let changed = api(
        &s,
        "PUT",
        "/api/v1/servers/math",
        &admin,
        Some(&json!({"include": ["demo/add", "demo/echo"]})),
    );
    assert_eq!(changed.status, 200, "{}", changed.text());
    let mut names = tools_at(&s, "/servers/math/mcp", Some(&admin));
    names.sort();
    assert_eq!(names, vec!["add", "echo"]);
    drop(s);
    let (s, _) = Server::start_with_auth(&d.0);
    let mut names = tools_at(&s, "/servers/math/mcp", Some(&admin));
    names.sort();
    assert_eq!(names, vec!["add", "echo"], "restored from the store");
    assert_eq!(api(&s, "DELETE", "/api/v1/servers/math", &admin, None).status, 204);
    let gone = s.request("POST", "/servers/math/mcp", &[("x-api-key", &admin)], b"{}");
    assert_eq!(gone.status, 404);
}

#[test]
fn configuration_is_validated_applied_snapshotted_diffed_and_rolled_back() {
    let d = TempDir::new("admin-config");
    let cfg = write_config(&d, "[catalog]\nprefix = \"on-conflict\"\n");
    let (s, admin) = Server::start_auth_with(&d.0, &["--config", &cfg]);
    let admin = admin.unwrap();
    let v = |t: &str| api(&s, "POST", "/api/v1/config/validate", &admin, Some(&json!({"toml": t})));
    let verdict = v("version = 3\n[catalog]\nprefix = \"sometimes\"\n").json();
    assert_eq!(verdict["valid"], false, "{verdict}");
    let p = &verdict["problems"][0];
    assert_eq!(p["field"], "catalog.prefix", "{p}");
    let detail = p["detail"].as_str().unwrap();
    assert!(detail.contains("expected always, on-conflict or never"), "{p}");
    let p = &v("version = 3\n[http]\nmax_body_bytes = \"x\"\n").json()["problems"][0];
    assert!(p["detail"].as_str().unwrap().contains("line 3"), "names the line: {p}");
    let refused = api(
        &s,
        "PUT",
        "/api/v1/config",
        &admin,
        Some(&json!({"toml": "version = 3\n[catalog]\nprefix = 1\n"})),
    );
    problem(&refused, 400);
    assert_eq!(v("version = 3\n").json()["valid"], true);

    let next =
        "version = 3\n[catalog]\nprefix = \"on-conflict\"\n[[servers]]\nname = \"echoes\"\ninclude = [\"demo/echo\"]\n";
    let applied = api(&s, "PUT", "/api/v1/config", &admin, Some(&json!({"toml": next})));
    assert_eq!(applied.status, 200, "{}", applied.text());
    assert_eq!(std::fs::read_to_string(&cfg).unwrap(), next, "written to the file");
    assert_eq!(
        tools_at(&s, "/servers/echoes/mcp", Some(&admin)),
        vec!["echo"],
        "applied without a restart"
    );
    let restart = api(
        &s,
        "PUT",
        "/api/v1/config",
        &admin,
        Some(&json!({"toml": format!("{next}[mcp]\npage_size = 7\n")})),
    );
    assert_eq!(
        restart.json()["restart_needed"],
        json!(["mcp.page_size"]),
        "{}",
        restart.text()
    );
    let effective = api(&s, "GET", "/api/v1/config", &admin, None).json();
    assert_eq!(effective["config"]["mcp.page_size"], "7", "{effective}");

    let snaps = api(&s, "GET", "/api/v1/config/snapshots", &admin, None).json();
    let list = snaps["snapshots"].as_array().unwrap();
    assert!(list.len() >= 3, "{snaps}");
    let first = list.last().unwrap()["id"].as_i64().unwrap();
    let diff = api(
        &s,
        "GET",
        &format!("/api/v1/config/snapshots/{first}/diff"),
        &admin,
        None,
    )
    .json();
    let lines = diff["lines"].as_array().unwrap();
    assert!(
        lines.contains(&json!("+name = \"echoes\"")) && lines.contains(&json!("+page_size = 7")),
        "{diff}"
    );
    let back = api(
        &s,
        "POST",
        &format!("/api/v1/config/snapshots/{first}/rollback"),
        &admin,
        None,
    );
    assert_eq!(back.status, 200, "{}", back.text());
    assert!(!std::fs::read_to_string(&cfg).unwrap().contains("echoes"));
    assert_eq!(
        s.request("POST", "/servers/echoes/mcp", &[("x-api-key", &admin)], b"{}")
            .status,
        404
    );
    eventually(10, "the config changes in the audit trail", || {
        let audit = api(&s, "GET", "/api/v1/audit?method=admin/config.*", &admin, None).json();
        let methods: Vec<String> = audit["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|e| e["record"]["method"].as_str().map(str::to_string))
            .collect();
        methods.iter().any(|m| m == "admin/config.rollback") && methods.iter().any(|m| m == "admin/config.apply")
    });
}

#[test]
fn bad_requests_get_problem_documents_and_audit_pages_do_not_overlap() {
    let d = TempDir::new("admin-bad");
    let (s, admin) = Server::start_with_auth(&d.0);
    let admin = admin.unwrap();
    let raw =
        |m: &str, p: &str, ct: &str, body: &[u8]| s.request(m, p, &[("x-api-key", &admin), ("content-type", ct)], body);
    problem(&raw("POST", "/api/v1/keys", "application/json", b"{not json"), 400);
    problem(&raw("POST", "/api/v1/keys", "text/plain", br#"{"name":"x"}"#), 415);
    problem(&raw("GET", "/api/v1/nothing-here", "application/json", b""), 404);
    problem(&raw("PATCH", "/api/v1/keys", "application/json", b"{}"), 405);
    let p = problem(&raw("GET", "/api/v1/audit?limit=0", "application/json", b""), 400);
    assert_eq!(p["field"], "limit");
    problem(&raw("GET", "/api/v1/audit?cursor=zz", "application/json", b""), 400);
    problem(
        &raw("GET", "/api/v1/catalog/tools?limit=abc", "application/json", b""),
        400,
    );

    for i in 0..7 {
        let r = api(
            &s,
            "POST",
            "/api/v1/tools/add/call",
            &admin,
            Some(&json!({"arguments": {"a": i, "b": 0}})),
        );
        assert_eq!(r.status, 200);
    }
    let mut seen = std::collections::HashSet::new();
    let mut cursor = String::new();
    eventually(10, "seven records", || {
        api(&s, "GET", "/api/v1/audit?method=tools/call", &admin, None).json()["items"]
            .as_array()
            .is_some_and(|i| i.len() >= 7)
    });
    loop {
        let page = api(
            &s,
            "GET",
            &format!("/api/v1/audit?method=tools/call&limit=2&cursor={cursor}"),
            &admin,
            None,
        )
        .json();
        for e in page["items"].as_array().unwrap() {
            assert!(
                seen.insert((e["seq"].as_i64().unwrap(), e["index"].as_u64().unwrap())),
                "duplicate {e}"
            );
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = c.to_string(),
            None => break,
        }
    }
    assert_eq!(seen.len(), 7);
}

#[test]
fn policies_and_limits_are_set_through_the_api_on_a_server_without_a_file() {
    let d = TempDir::new("admin-policies");
    let (s, admin) = Server::start_with_auth(&d.0);
    let admin = admin.unwrap();
    let call = |name: &str| {
        let rpc = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": {"name": name, "arguments": {"text": "x", "a": 1, "b": 2}}});
        s.post(&rpc, &[("x-api-key", admin.as_str())])
    };
    assert_eq!(call("echo").status, 200);
    let rules = json!({"authz": {"default": "allow"},
        "policies": [{"name": "no-echo", "effect": "deny", "tools": ["echo"]}]});
    let set = api(&s, "PUT", "/api/v1/policies", &admin, Some(&rules));
    assert_eq!(set.status, 200, "{}", set.text());
    assert_eq!(set.json()["restart_needed"], json!([]));
    let denied = call("echo").json();
    assert_eq!(denied["error"]["message"], "Unknown tool: echo", "{denied}");
    assert_eq!(call("add").json()["result"]["structuredContent"]["sum"], 3.0);
    let file = std::fs::read_to_string(d.0.join("waygate.toml")).expect("<data-dir>/waygate.toml created");
    assert!(file.contains("no-echo"), "{file}");
    let now = api(&s, "GET", "/api/v1/policies", &admin, None).json();
    assert_eq!(now["policies"][0]["name"], "no-echo", "{now}");

    // Validated as the file is: the message and the field name the key.
    let bad = json!({"policies": [{"name": "x", "effect": "maybe", "tools": ["*"]}]});
    let p = problem(&api(&s, "PUT", "/api/v1/policies", &admin, Some(&bad)), 400);
    assert_eq!(p["field"], "policies[0].effect", "{p}");
    assert!(
        p["detail"].as_str().unwrap().contains("expected \"allow\" or \"deny\""),
        "{p}"
    );
    let typo = json!({"policies": [{"name": "x", "efect": "deny", "tools": ["*"]}]});
    problem(&api(&s, "PUT", "/api/v1/policies", &admin, Some(&typo)), 400);
    assert_eq!(
        call("echo").json()["error"]["message"],
        "Unknown tool: echo",
        "the rules stay"
    );
    let p = problem(
        &api(
            &s,
            "PUT",
            "/api/v1/limits",
            &admin,
            Some(&json!({"requests_per_second": -1})),
        ),
        400,
    );
    assert_eq!(p["field"], "limits.requests_per_second", "{p}");

    // Limits applied live: a burst of 3 operations, then 429.
    let limits = json!({"requests_per_second": 0.01, "burst": 3, "tools": {"add": {"max_concurrent": 4}}});
    let set = api(&s, "PUT", "/api/v1/limits", &admin, Some(&limits));
    assert_eq!(set.status, 200, "{}", set.text());
    assert_eq!(set.json()["restart_needed"], json!([]), "limits apply live");
    let statuses: Vec<u16> = (0..5).map(|_| call("add").status).collect();
    assert!(statuses.contains(&429), "{statuses:?}");
    let got = api(&s, "GET", "/api/v1/limits", &admin, None).json();
    assert_eq!(got["burst"], 3.0, "{got}");
    let file = std::fs::read_to_string(d.0.join("waygate.toml")).unwrap();
    assert!(
        file.contains("no-echo") && file.contains("[limits]"),
        "both sections kept: {file}"
    );
    eventually(10, "the changes in the audit trail", || {
        let audit = api(&s, "GET", "/api/v1/audit?method=admin/*", &admin, None).json();
        let m = audit["items"].to_string();
        m.contains("admin/policies.set") && m.contains("admin/limits.set") && m.contains("admin/policy.apply")
    });
    let snaps = api(&s, "GET", "/api/v1/config/snapshots", &admin, None).json();
    assert!(snaps["snapshots"].as_array().unwrap().len() >= 2, "{snaps}");
}
