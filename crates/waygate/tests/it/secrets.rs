//! Secrets never leave the real binary: values given through `${file:…}` (or `${env:…}`)
//! in any section, and credentials inside URLs, are absent from `config show`, the
//! diagnostics API and the log, while the server keeps using them.

use super::common;

use common::{Server, TempDir};

const OTEL_KEY: &str = "otel-key-5f2a9c1d";
const STATE_KEY: &str = "state-key-0123456789abcdef";
const UP_TOKEN: &str = "up-token-77aa31bc";
const URL_PASS: &str = "pass-word-9c41";
const URL_TOKEN: &str = "qs-token-31d8e0";

#[test]
fn secrets_are_redacted_in_config_show_diagnostics_and_logs() {
    let d = TempDir::new("secrets");
    let file = |name: &str, v: &str| {
        let p = d.0.join(name);
        std::fs::write(&p, v).unwrap();
        p.display().to_string()
    };
    let (otel, state, up) = (file("otel", OTEL_KEY), file("state", STATE_KEY), file("up", UP_TOKEN));
    std::fs::write(
        d.0.join("waygate.toml"),
        format!(
            "version = 3\n\
             [mcp]\nstate_key = \"${{file:{state}}}\"\n\
             [otel]\nendpoint = \"http://127.0.0.1:9/v1/traces\"\nheaders = {{ \"x-api-key\" = \"${{file:{otel}}}\" }}\n\
             [[upstreams]]\nname = \"remote\"\ntransport = \"http\"\n\
             url = \"http://svc:{URL_PASS}@127.0.0.1:9/mcp?token={URL_TOKEN}\"\n\
             headers = {{ Authorization = \"Bearer ${{file:{up}}}\" }}\nconnect_timeout_secs = 1\n"
        ),
    )
    .unwrap();
    let log = d.0.join("server.log");
    let (s, key) = Server::start_logging_to(&d.0, &log);
    let key = key.expect("admin key");
    let all = [OTEL_KEY, STATE_KEY, UP_TOKEN, URL_PASS, URL_TOKEN];
    let leaks = |what: &str, text: &str| {
        for secret in all {
            assert!(!text.contains(secret), "{what} leaks {secret:?}:\n{text}");
        }
    };

    // Let the upstream fail to connect a few times so its error is on record.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let diag = s
        .request("GET", "/api/v1/diagnostics", &[("x-api-key", &key)], b"")
        .text();
    assert!(diag.contains("remote"), "{diag}");
    leaks("diagnostics", &diag);
    assert!(diag.contains("<redacted>"), "{diag}");

    let dir = d.0.to_str().unwrap();
    for args in [
        vec!["config", "show", "--data-dir", dir],
        vec!["config", "show", "--effective", "--data-dir", dir],
    ] {
        let (ok, out, err) = common::cli(&args);
        assert!(ok, "{err}");
        leaks("config show", &out);
        assert!(out.contains("<redacted>"), "{out}");
    }
    drop(s);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("remote"), "the upstream failure is logged: {text}");
    leaks("the log", &text);
}
