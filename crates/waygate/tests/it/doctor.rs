//! `waygate doctor` pinpoints a broken upstream, a bad configuration and a database that is
//! down — each in its own run, with a fix hint and a failing exit status — and passes on a
//! healthy setup.

use super::common;

use common::{bin, TempDir};

fn doctor(d: &TempDir, extra: &[&str]) -> (bool, String, String) {
    let mut args = vec!["doctor", "--data-dir", d.0.to_str().unwrap()];
    args.extend_from_slice(extra);
    common::cli(&args)
}

fn row<'a>(out: &'a str, check: &str) -> &'a str {
    out.lines()
        .find(|l| l.starts_with(check))
        .unwrap_or_else(|| panic!("no {check:?} row in:\n{out}"))
}

#[test]
fn healthy_setup_passes() {
    let d = TempDir::new("doctor-ok");
    std::fs::write(
        d.0.join("waygate.toml"),
        "version = 3\n[server]\nlisten = \"127.0.0.1:0\"\n",
    )
    .unwrap();
    let (_, out, _) = doctor(&d, &[]);
    let pending = format!("{} migration(s) pending", common::migrations().0);
    assert!(row(&out, "store").contains(&pending), "{out}");
    assert!(common::cli(&["db", "migrate", "--data-dir", d.0.to_str().unwrap()]).0);
    let (ok, out, err) = doctor(&d, &[]);
    assert!(ok, "{out}{err}");
    assert!(row(&out, "store").contains(" ok "), "{out}");
    assert!(row(&out, "plugin demo").contains("tool(s)"), "{out}");
    assert!(out.contains("0 failed"), "{out}");
}

#[test]
fn broken_upstream_is_pinpointed() {
    let d = TempDir::new("doctor-upstream");
    let data = d.0.join("up");
    std::fs::write(
        d.0.join("waygate.toml"),
        format!(
            "version = 3\n[server]\nlisten = \"127.0.0.1:0\"\n\
             [[upstreams]]\nname = \"good\"\ntransport = \"stdio\"\ncommand = \"{}\"\nargs = [\"serve\", \"--stdio\", \"--data-dir\", \"{}\"]\n\
             [[upstreams]]\nname = \"broken\"\ntransport = \"stdio\"\ncommand = \"/nonexistent/mcp-server\"\n",
            bin(),
            data.display()
        ),
    )
    .unwrap();
    let (ok, out, _) = doctor(&d, &[]);
    assert!(!ok, "{out}");
    assert!(row(&out, "upstream good").contains(" ok "), "{out}");
    let broken = row(&out, "upstream broken");
    assert!(
        broken.contains("FAIL") && broken.contains("/nonexistent/mcp-server"),
        "{out}"
    );
    assert!(out.contains("fix: run the command by hand"), "{out}");
    assert!(out.contains("1 failed"), "{out}");
}

#[test]
fn bad_config_is_pinpointed() {
    let d = TempDir::new("doctor-config");
    std::fs::write(d.0.join("waygate.toml"), "version = 3\n[http]\nmax_body_bytes = 0\n").unwrap();
    let (ok, out, _) = doctor(&d, &[]);
    assert!(!ok);
    let r = row(&out, "config");
    assert!(
        r.contains("FAIL") && r.contains("http.max_body_bytes") && r.contains("waygate.toml"),
        "{out}"
    );
    assert!(out.contains("fix: edit the named key"), "{out}");
}

#[test]
fn down_database_is_pinpointed() {
    let d = TempDir::new("doctor-db");
    // Nothing listens on this port: a PostgreSQL that is down.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("postgres://waygate:pw@127.0.0.1:{port}/waygate");
    let (ok, out, _) = doctor(&d, &["--database-url", &url]);
    assert!(!ok);
    let r = row(&out, "store");
    assert!(r.contains("FAIL") && r.contains(&format!("127.0.0.1:{port}")), "{out}");
    assert!(!out.contains(":pw@"), "the password is redacted: {out}");
    assert!(out.contains("fix: start the database"), "{out}");
}
