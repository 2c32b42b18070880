//! `waygate doctor`: what an operator runs first when something is wrong. Every check
//! prints one row — what was checked, ok/warn/FAIL, what was found, and how to fix it — and
//! the exit status is 1 when anything failed.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::CmdResult;
use crate::cli::Global;
use crate::config::{self, Layered};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Status {
    Ok,
    Warn,
    Fail,
}

struct Row {
    check: String,
    status: Status,
    detail: String,
    fix: String,
}

#[derive(Default)]
struct Report(Vec<Row>);

impl Report {
    fn add(&mut self, check: impl Into<String>, status: Status, detail: impl Into<String>, fix: impl Into<String>) {
        self.0.push(Row {
            check: check.into(),
            status,
            detail: detail.into(),
            fix: fix.into(),
        });
    }

    fn print(&self) -> bool {
        let w = self.0.iter().map(|r| r.check.len()).max().unwrap_or(5).max(5);
        println!("{:<w$}  {:<6}  DETAIL", "CHECK", "STATUS");
        for r in &self.0 {
            let s = match r.status {
                Status::Ok => "ok",
                Status::Warn => "warn",
                Status::Fail => "FAIL",
            };
            println!("{:<w$}  {s:<6}  {}", r.check, r.detail);
            if r.status != Status::Ok && !r.fix.is_empty() {
                println!("{:<w$}  {:<6}  fix: {}", "", "", r.fix);
            }
        }
        let failed = self.0.iter().filter(|r| r.status == Status::Fail).count();
        println!(
            "\n{} check(s): {} ok, {} warning(s), {failed} failed",
            self.0.len(),
            self.0.iter().filter(|r| r.status == Status::Ok).count(),
            self.0.iter().filter(|r| r.status == Status::Warn).count()
        );
        failed == 0
    }
}

pub fn run(g: &Global) -> CmdResult {
    let mut rep = Report::default();
    let dir = super::data_dir(g);
    let l = match super::load_config(g) {
        Ok(l) => {
            let origin = l
                .path
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "built-in defaults (no file)".into());
            rep.add("config", Status::Ok, format!("valid: {origin}"), "");
            Some(l)
        }
        Err(e) => {
            rep.add(
                "config",
                Status::Fail,
                e.to_string(),
                "edit the named key; `waygate config validate FILE` re-checks it",
            );
            None
        }
    };
    let rt = super::runtime()?;
    if let Some(l) = &l {
        rt.block_on(checks(g, l, &dir, &mut rep));
        tls(&l.cfg, &mut rep);
    }
    clock(&mut rep);
    if rep.print() {
        Ok(())
    } else {
        Err("doctor found problems (see the FAIL rows above)".into())
    }
}

async fn checks(g: &Global, l: &Layered, dir: &std::path::Path, rep: &mut Report) {
    let c = &l.cfg;
    // Store: reachable, migrated.
    let url = super::store_url(g, l);
    let shown = waygate_security::redact::redact_url(&url);
    let started = Instant::now();
    // Kept open for the upstream checks: `${secret:NAME}` values come from the store.
    let mut opened: Option<waygate_store::Store> = None;
    match tokio::time::timeout(Duration::from_secs(10), waygate_store::Store::open(&url)).await {
        Ok(Ok(store)) => {
            let ms = started.elapsed().as_millis();
            match store.status().await {
                Ok(st) => {
                    let pending = st.iter().filter(|m| !m.applied).count();
                    if pending == 0 {
                        rep.add(
                            "store",
                            Status::Ok,
                            format!("{shown}: reachable in {ms} ms, schema up to date"),
                            "",
                        );
                    } else {
                        rep.add(
                            "store",
                            Status::Warn,
                            format!("{shown}: reachable, {pending} migration(s) pending"),
                            "`waygate db migrate` (serve also applies them at start)",
                        );
                    }
                }
                Err(e) => rep.add(
                    "store",
                    Status::Fail,
                    format!("{shown}: {e}"),
                    "check the database user's rights",
                ),
            }
            opened = Some(store);
        }
        Ok(Err(e)) => rep.add(
            "store",
            Status::Fail,
            format!("{shown}: {e}"),
            "start the database or fix store.url / --database-url / WAYGATE_DATABASE_URL",
        ),
        Err(_) => rep.add(
            "store",
            Status::Fail,
            format!("{shown}: no answer within 10 s"),
            "check the database host, port and firewall",
        ),
    }
    // Data directory writable (SQLite, state key).
    let probe = dir.join(".doctor-probe");
    match std::fs::create_dir_all(dir).and_then(|_| std::fs::write(&probe, b"x")) {
        Ok(()) => {
            let _ = std::fs::remove_file(&probe);
            rep.add("data dir", Status::Ok, format!("{} writable", dir.display()), "");
        }
        Err(e) => rep.add(
            "data dir",
            Status::Fail,
            format!("{}: {e}", dir.display()),
            "create it or give the service user write access (--data-dir / WAYGATE_DATA_DIR)",
        ),
    }
    // Listen address.
    let addr = c.server.listen.unwrap_or_else(|| {
        config::DEFAULT_LISTEN
            .parse()
            .unwrap_or_else(|_| unreachable!("valid constant"))
    });
    match std::net::TcpListener::bind(addr) {
        Ok(_) => rep.add("listen", Status::Ok, format!("{addr} is free"), ""),
        Err(e) => rep.add(
            "listen",
            Status::Warn,
            format!("{addr}: {e} (fine if this is the running server)"),
            "stop the other process or set server.listen / --listen",
        ),
    }
    // Plugins: load and initialize each one in a scratch registry.
    let specs = match crate::plugins::desired(c, &[], false) {
        Ok(n) => n,
        Err(e) => {
            rep.add("plugins", Status::Fail, e, "fix plugins.enabled");
            vec![]
        }
    };
    // Upstreams are checked below, by connecting to them.
    for spec in specs
        .into_iter()
        .filter(|s| !matches!(s, crate::plugins::Spec::Upstream(_)))
    {
        let n = spec.name().to_string();
        let reg = waygate_core::PluginRegistry::new(waygate_core::Events::new(), 100);
        let t = Instant::now();
        let p = match crate::plugins::instantiate(&spec) {
            Ok((p, _)) => p,
            Err(e) => {
                rep.add(format!("plugin {n}"), Status::Fail, e, "see the plugin's settings");
                continue;
            }
        };
        match reg.load(p, serde_json::json!({})).await {
            Ok(()) => rep.add(
                format!("plugin {n}"),
                Status::Ok,
                format!(
                    "initialized in {} ms, {} tool(s)",
                    t.elapsed().as_millis(),
                    reg.catalog().tool_count()
                ),
                "",
            ),
            Err(e) => rep.add(
                format!("plugin {n}"),
                Status::Fail,
                e.to_string(),
                "see the plugin's settings",
            ),
        }
        reg.shutdown_all().await;
    }
    // Upstreams: start or connect, list tools, time it.
    for u in &c.upstreams {
        let check = format!("upstream {}", u.name);
        if u.enabled == Some(false) {
            rep.add(check, Status::Ok, "disabled", "");
            continue;
        }
        let entry = crate::upstreams::UpstreamEntry {
            upstream: u.clone(),
            outbound: c.outbound.clone(),
        };
        let timeout = Duration::from_secs(u.connect_timeout_secs.unwrap_or(20));
        match crate::upstreams::probe(&entry, opened.as_ref(), timeout).await {
            Ok(p) => rep.add(
                check,
                Status::Ok,
                format!(
                    "{} in {} ms: {} {}, protocol {}, {} tool(s)",
                    if u.transport == "stdio" { "started" } else { "connected" },
                    p.took.as_millis(),
                    p.server.get("name").and_then(|v| v.as_str()).unwrap_or("?"),
                    p.server.get("version").and_then(|v| v.as_str()).unwrap_or(""),
                    p.protocol_version,
                    p.tools.len()
                ),
                "",
            ),
            Err(e) => {
                let fix = if u.transport == "stdio" {
                    "run the command by hand; check command, args, env and cwd"
                } else if e.contains(".tls.") || e.contains("certificate") || e.contains("UnknownIssuer") {
                    "check [upstreams.tls]: the CA that issued the upstream's certificate, the client certificate and key"
                } else {
                    "check the URL, credentials (headers), DNS and [outbound] rules"
                };
                rep.add(check, Status::Fail, e, fix)
            }
        }
    }
    // JWT issuer keys.
    if let Some(j) = &c.auth.jwt {
        if let Some(u) = &j.jwks_url {
            match crate::security::authenticator(waygate_core::auth::ApiKeys::default(), c).await {
                Ok(_) => {
                    let ok = reqwest_url(u).is_ok();
                    rep.add(
                        "jwt",
                        if ok { Status::Ok } else { Status::Fail },
                        format!("issuer {} keys at {u}", j.issuer),
                        "",
                    )
                }
                Err(e) => rep.add("jwt", Status::Fail, e.to_string(), "fix [auth.jwt]"),
            }
        }
    }
    // Redis for shared limits.
    if c.limits.redis_url.is_some() {
        match crate::security::shared_buckets(c).await {
            Ok(_) => rep.add("redis", Status::Ok, "shared rate-limit store reachable", ""),
            Err(e) => rep.add(
                "redis",
                Status::Fail,
                e.to_string(),
                "start Redis or fix limits.redis_url (replicas fall back to local limits meanwhile)",
            ),
        }
    }
    if let Some(s) = opened {
        s.close().await;
    }
}

/// Host and port of an http(s) URL.
fn reqwest_url(url: &str) -> Result<(String, u16), String> {
    let u = url::Url::parse(url).map_err(|e| format!("invalid URL: {e}"))?;
    let host = u
        .host_str()
        .ok_or("URL has no host")?
        .trim_matches(['[', ']'])
        .to_string();
    let port = u.port_or_known_default().ok_or("URL has no port")?;
    Ok((host, port))
}

/// The TLS certificate: readable, matching its key, and how long until it expires.
fn tls(c: &config::FileConfig, rep: &mut Report) {
    use waygate_transport::http::tls;
    let Some(files) = c.server.tls_files() else {
        let detail = "plain HTTP (set server.tls_cert/tls_key, or put a TLS proxy or ingress in front)";
        return rep.add("tls", Status::Ok, detail, "");
    };
    if let Err(e) = tls::load(&files) {
        rep.add(
            "tls",
            Status::Fail,
            e.to_string(),
            "point server.tls_cert/tls_key at a matching PEM pair",
        );
        return;
    }
    let leaf = tls::read_chain(&files.cert).ok().and_then(|c| c.into_iter().next());
    let Some(after) = leaf.as_deref().and_then(tls::not_after) else {
        rep.add("tls", Status::Warn, "cannot read the certificate's expiry", "");
        return;
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let days = (after - now).div_euclid(86_400);
    let cert = files.cert.display();
    if after <= now {
        rep.add(
            "tls",
            Status::Fail,
            format!("{cert}: certificate expired {} day(s) ago", -days),
            "renew it; serve picks up the new files without a restart",
        );
    } else if days < 14 {
        rep.add(
            "tls",
            Status::Warn,
            format!("{cert}: certificate expires in {days} day(s)"),
            "renew it soon; serve picks up the new files without a restart",
        );
    } else {
        rep.add("tls", Status::Ok, format!("{cert}: valid for {days} more day(s)"), "");
    }
}

/// Tokens and TLS need a sane clock.
fn clock(rep: &mut Report) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    // 2025-01-01: anything earlier is a machine without a real-time clock.
    if now < 1_735_689_600 {
        rep.add(
            "clock",
            Status::Fail,
            format!("system time is {now} (before 2025)"),
            "enable NTP (timedatectl set-ntp true); JWT exp/nbf checks depend on it",
        );
    } else {
        rep.add("clock", Status::Ok, format!("unix time {now}"), "");
    }
}
