//! The admin web UI: its session rules over plain HTTP, and the whole operator flow in a
//! real headless Chromium (tests/ui/flow.mjs driven by playwright-core).

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::admin_api::api;
use crate::common::{bin, Server, TempDir};

fn cookie_of(r: &crate::common::Response) -> String {
    let set = r.header("set-cookie").unwrap_or_default().to_string();
    set.split(';').next().unwrap_or_default().to_string()
}

#[test]
fn ui_session_is_a_sealed_httponly_cookie_with_csrf_and_ends_with_logout_or_revocation() {
    let d = TempDir::new("ui-session");
    let (s, key) = Server::start_with_auth(&d.0);
    let key = key.expect("admin key");

    // The page and its assets are public, with a strict policy; the API is not.
    let page = s.request("GET", "/ui", &[], b"");
    assert_eq!(page.status, 200);
    let csp = page.header("content-security-policy").unwrap_or_default();
    assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe"), "{csp}");
    assert_eq!(page.header("x-frame-options"), Some("DENY"));
    for asset in [
        "/ui/app.js",
        "/ui/lib.js",
        "/ui/pages.js",
        "/ui/app.css",
        "/ui/icon.svg",
    ] {
        assert_eq!(s.request("GET", asset, &[], b"").status, 200, "{asset}");
    }
    assert_eq!(s.request("GET", "/ui/session", &[], b"").status, 401);
    let bad = s.request("POST", "/ui/login", &[("authorization", "Bearer wg_wrong")], b"");
    assert_eq!(bad.status, 401);
    assert!(bad.header("set-cookie").is_none());

    let login = s.request("POST", "/ui/login", &[("authorization", &format!("Bearer {key}"))], b"");
    assert_eq!(login.status, 200, "{}", login.text());
    let set = login.header("set-cookie").unwrap_or_default();
    for flag in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/"] {
        assert!(set.contains(flag), "{set}");
    }
    let cookie = cookie_of(&login);
    assert!(!cookie.contains(&key), "the key is sealed, not stored in the cookie");
    let csrf = login.json()["csrf"].as_str().unwrap().to_string();
    assert!(csrf.len() >= 32);

    // The cookie reads; a change needs the CSRF token as well.
    let c = [("cookie", cookie.as_str())];
    let who = s.request("GET", "/ui/session", &c, b"");
    assert_eq!(who.json()["csrf"], csrf.as_str(), "{}", who.text());
    assert_eq!(s.request("GET", "/api/v1/keys", &c, b"").status, 200);
    let body = serde_json::to_vec(&json!({"name": "via-ui", "scopes": ["mcp"]})).unwrap();
    let ct = ("content-type", "application/json");
    let no_token = s.request("POST", "/api/v1/keys", &[c[0], ct], &body);
    assert_eq!(no_token.status, 403, "{}", no_token.text());
    assert!(no_token.text().contains("X-CSRF-Token"));
    let wrong = s.request("POST", "/api/v1/keys", &[c[0], ct, ("x-csrf-token", "0000")], &body);
    assert_eq!(wrong.status, 403);
    let made = s.request("POST", "/api/v1/keys", &[c[0], ct, ("x-csrf-token", &csrf)], &body);
    assert_eq!(made.status, 201, "{}", made.text());
    let made = made.json();

    // The cookie is not an MCP credential, and a tampered one is nobody.
    let init = json!({"jsonrpc":"2.0","id":1,"method":"tools/list"});
    assert_eq!(s.post(&init, &c).status, 401);
    let mut tampered = cookie.clone().into_bytes();
    let n = tampered.len() - 3;
    tampered[n] = if tampered[n] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    assert_eq!(
        s.request("GET", "/api/v1/keys", &[("cookie", &tampered)], b"").status,
        401
    );

    // A read-only key's session reads but cannot change anything, CSRF token or not.
    let ro = api(
        &s,
        "POST",
        "/api/v1/keys",
        &key,
        Some(&json!({"name": "reader", "scopes": ["admin:read"]})),
    )
    .json();
    let ro_login = s.request("POST", "/ui/login", &[("x-api-key", ro["key"].as_str().unwrap())], b"");
    let ro_cookie = cookie_of(&ro_login);
    let ro_csrf = ro_login.json()["csrf"].as_str().unwrap().to_string();
    assert_eq!(
        s.request("GET", "/api/v1/plugins", &[("cookie", &ro_cookie)], b"")
            .status,
        200
    );
    let denied = s.request(
        "POST",
        "/api/v1/keys",
        &[("cookie", &ro_cookie), ct, ("x-csrf-token", &ro_csrf)],
        &body,
    );
    assert_eq!(denied.status, 403, "{}", denied.text());

    // Revoking the key behind a session ends the session at once.
    let rid = ro["id"].as_str().unwrap();
    assert_eq!(
        api(&s, "DELETE", &format!("/api/v1/keys/{rid}"), &key, None).status,
        204
    );
    assert_eq!(
        s.request("GET", "/api/v1/plugins", &[("cookie", &ro_cookie)], b"")
            .status,
        401
    );

    // Logging out clears the cookie and the sealed value stops working on this server.
    let out = s.request("POST", "/ui/logout", &[c[0], ("x-csrf-token", &csrf)], b"");
    assert_eq!(out.status, 204);
    assert!(out.header("set-cookie").unwrap_or_default().contains("Max-Age=0"));
    assert_eq!(s.request("GET", "/api/v1/keys", &c, b"").status, 401);

    // The logins, the key made through the UI and the logout are in the audit trail.
    // (The trail is written by a queue: give it a moment.)
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let text = api(&s, "GET", "/api/v1/audit?method=admin/*&limit=50", &key, None).text();
        let id = made["id"].as_str().unwrap();
        if text.contains("admin/ui.login") && text.contains("admin/ui.logout") && text.contains(id) {
            break;
        }
        assert!(Instant::now() < end, "{text}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// playground-core and Chromium, or `None` (CI sets WAYGATE_TEST_REQUIRE_BROWSER=1, which
/// turns a missing browser into a failure).
fn browser() -> Option<(String, String)> {
    let pw = std::env::var("WAYGATE_TEST_PLAYWRIGHT").ok();
    let chromium = std::env::var("WAYGATE_TEST_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    match pw {
        Some(pw) if Path::new(&pw).is_dir() && Path::new(&chromium).is_file() => Some((pw, chromium)),
        other => {
            assert!(
                std::env::var("WAYGATE_TEST_REQUIRE_BROWSER").is_err(),
                "no browser: WAYGATE_TEST_PLAYWRIGHT={other:?}, chromium at {chromium}"
            );
            eprintln!("skipping: set WAYGATE_TEST_PLAYWRIGHT to playwright-core's directory and install chromium");
            None
        }
    }
}

#[test]
fn admin_ui_in_a_real_browser() {
    let Some((pw, chromium)) = browser() else { return };
    let d = TempDir::new("ui-browser");
    let module = d.0.join("pinned.wat");
    std::fs::write(&module, crate::wasm::wat_module("pinme", "version one")).unwrap();
    let cfg = d.0.join("waygate.toml");
    std::fs::write(
        &cfg,
        format!(
            "version = 3\n[[plugins.wasm]]\nname = \"wat\"\nmodule = \"{}\"\n",
            module.display()
        ),
    )
    .unwrap();
    let (s, key) = Server::start_auth_with(&d.0, &["--config", cfg.to_str().unwrap()]);
    let key = key.expect("admin key");
    let auth = format!("Bearer {key}");
    let h = [("authorization", auth.as_str())];

    // First use approves the tool; a new version of the module is then held back.
    let call = json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"pinme","arguments":{}}});
    assert!(s.post(&call, &h).text().contains("pinned tool answered"));
    std::thread::sleep(Duration::from_millis(1100));
    std::fs::write(&module, crate::wasm::wat_module("pinme", "version two")).unwrap();
    let end = Instant::now() + Duration::from_secs(15);
    loop {
        let held = api(&s, "GET", "/api/v1/pins", &key, None).json();
        if held["held"].as_array().is_some_and(|a| !a.is_empty()) {
            break;
        }
        assert!(Instant::now() < end, "the changed tool was never held: {held}");
        std::thread::sleep(Duration::from_millis(100));
    }

    let inner = TempDir::new("ui-inner");
    // A second module for the plugin page's load form.
    let second = d.0.join("second.wat");
    std::fs::write(
        &second,
        crate::wasm::wat_module("second_tool", "loaded from the browser"),
    )
    .unwrap();
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("ui-screenshots");
    let flow = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ui/flow.mjs");
    let node = std::env::var("WAYGATE_TEST_NODE").unwrap_or_else(|_| "node".into());
    let out = std::process::Command::new(node)
        .arg(&flow)
        .env("WAYGATE_URL", format!("http://{}", s.addr))
        .env("WAYGATE_KEY", &key)
        .env("WAYGATE_UI_SHOTS", &shots)
        .env("WAYGATE_UPSTREAM_CMD", bin())
        .env(
            "WAYGATE_UPSTREAM_ARGS",
            format!("serve --stdio --no-auth --data-dir {}", inner.0.display()),
        )
        .env("WAYGATE_UI_MODULE", &second)
        .env("PLAYWRIGHT_CORE", &pw)
        .env("CHROMIUM", &chromium)
        .output()
        .expect("node runs");
    let text = format!(
        "{}{}\n(screenshots in {})",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        shots.display()
    );
    assert!(out.status.success(), "{text}");
    eprintln!("{text}");

    // What the browser did is what the server holds.
    let ups = api(&s, "GET", "/api/v1/upstreams/uiup", &key, None);
    assert_eq!(ups.status, 200, "{}", ups.text());
    assert_eq!(api(&s, "GET", "/api/v1/plugins/wat2", &key, None).status, 200);
    let pins = api(&s, "GET", "/api/v1/pins", &key, None).json();
    assert_eq!(pins["held"], json!([]), "{pins}");
    let keys = api(&s, "GET", "/api/v1/keys", &key, None).json();
    let made: Vec<&Value> = keys["keys"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["name"] == "ui-made")
        .collect();
    assert_eq!(made.len(), 1);
    assert_eq!(made[0]["state"], "revoked", "{keys}");
    let audit = api(&s, "GET", "/api/v1/audit?method=tools/call&target=echo", &key, None).json();
    assert!(!audit["items"].as_array().unwrap().is_empty(), "{audit}");
    let ui = api(&s, "GET", "/api/v1/audit?method=admin/ui.*", &key, None).text();
    assert!(ui.contains("admin/ui.login") && ui.contains("admin/ui.logout"), "{ui}");
    for page in [
        "01-login",
        "02-overview",
        "05-playground",
        "08-pins",
        "09-audit",
        "12-signed-out",
    ] {
        assert!(shots.join(format!("{page}.png")).is_file(), "{page}.png missing");
    }
}
