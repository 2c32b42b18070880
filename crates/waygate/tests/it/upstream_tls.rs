//! Upstreams behind an internal PKI and mutual TLS. The upstream is a real Waygate serving
//! HTTPS with a certificate from a CA made at test time (rcgen) and, with
//! `[server] tls_client_ca`, asking every client for a certificate from that CA. A gateway
//! trusts the CA only through `[upstreams.tls] ca`, and passes the upstream's check only
//! with `client_cert` / `client_key` — re-read when renewed on disk; each missing piece is a
//! clear error naming it. CA bundles are followed too: a rotated bundle applies to the
//! next handshake on both ends, without a restart.

use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::*;

struct Pki {
    ca: String,
    server: (String, String),
    client: (String, String),
}

fn new_pki() -> Pki {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    // Each CA its own name, as two real CAs have (verifiers look issuers up by name).
    static CAS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = CAS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, format!("Waygate test CA {n}"));
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign, rcgen::KeyUsagePurpose::CrlSign];
    let ca_pem = ca.self_signed(&ca_key).unwrap().pem();
    let issuer = rcgen::Issuer::new(ca, ca_key);
    let leaf = |names: Vec<String>, usage: rcgen::ExtendedKeyUsagePurpose| {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut p = rcgen::CertificateParams::new(names).unwrap();
        p.extended_key_usages = vec![usage];
        (p.signed_by(&key, &issuer).unwrap().pem(), key.serialize_pem())
    };
    Pki {
        ca: ca_pem,
        server: leaf(
            vec!["localhost".into(), "127.0.0.1".into()],
            rcgen::ExtendedKeyUsagePurpose::ServerAuth,
        ),
        client: leaf(vec!["gateway".into()], rcgen::ExtendedKeyUsagePurpose::ClientAuth),
    }
}

/// A Waygate serving HTTPS (demo tools, no auth) that requires client certificates.
fn https_upstream(dir: &Path, pki: &Pki, port: u16) -> Child {
    let w = |name: &str, text: &str| {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p.display().to_string()
    };
    let cfg = format!(
        "version = 3\n[server]\ntls_cert = \"{}\"\ntls_key = \"{}\"\ntls_client_ca = \"{}\"\n",
        w("server.pem", &pki.server.0),
        w("server.key", &pki.server.1),
        w("ca.pem", &pki.ca)
    );
    let cfg_path = w("inner.toml", &cfg);
    let data = dir.join("inner-data");
    std::fs::create_dir_all(&data).unwrap();
    let child = Command::new(bin())
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--no-auth",
            "--log",
            "error",
        ])
        .args(["--config", &cfg_path, "--data-dir", data.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let end = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < end, "the HTTPS upstream did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    child
}

fn gateway(dir: &Path, tag: &str, port: u16, tls: &str) -> Server {
    gateway_with_upstream(
        &dir.join(tag),
        &format!("name = \"secure\"\nprefix = \"never\"\nurl = \"https://127.0.0.1:{port}/mcp\"\nconnect_timeout_secs = 5\n{tls}"),
    )
}

fn add(s: &Server) -> Value {
    s.post(
        &json!({"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"add","arguments":{"a":2,"b":5}}}),
        &[],
    )
    .json()
}

fn last_error(s: &Server) -> String {
    let d = s.request("GET", "/api/v1/diagnostics", &[], b"").json();
    d["upstreams"]
        .as_array()
        .and_then(|a| a.iter().find(|u| u["name"] == "secure"))
        .map(|u| u.to_string())
        .unwrap_or_default()
}

#[test]
fn a_private_ca_and_a_client_certificate_reach_a_mutual_tls_upstream() {
    let d = TempDir::new("upstream-tls");
    let pki = new_pki();
    let port = free_port();
    let mut inner = https_upstream(&d.0, &pki, port);
    let file = |name: &str, text: &str| {
        let p = d.0.join(name);
        std::fs::write(&p, text).unwrap();
        p.display().to_string()
    };
    let ca = file("gw-ca.pem", &pki.ca);
    let (cert, key) = (
        file("gw-client.pem", &pki.client.0),
        file("gw-client.key", &pki.client.1),
    );

    // The public roots do not know the private CA: the certificate is refused.
    let untrusting = gateway(&d.0, "public-roots", port, "");
    eventually(20, "the untrusted certificate's error", || {
        last_error(&untrusting).contains("UnknownIssuer (a private CA? trust it with [upstreams.tls] ca)")
    });
    assert_eq!(add(&untrusting)["result"]["structuredContent"], Value::Null);

    // Trusting the CA is not enough for an upstream that asks for a client certificate.
    let anonymous = gateway(&d.0, "ca-only", port, &format!("[upstreams.tls]\nca = \"{ca}\"\n"));
    eventually(20, "the refused handshake's error", || {
        last_error(&anonymous).contains("CertificateRequired (the upstream wants a client certificate")
    });
    assert_eq!(add(&anonymous)["result"]["structuredContent"], Value::Null);

    // A client certificate from another CA is refused by the upstream …
    let stranger = new_pki();
    std::fs::write(&key, &stranger.client.1).unwrap();
    std::fs::write(&cert, &stranger.client.0).unwrap();
    let mutual = gateway(
        &d.0,
        "mutual",
        port,
        &format!("[upstreams.tls]\nca = \"{ca}\"\nclient_cert = \"{cert}\"\nclient_key = \"{key}\"\n"),
    );
    eventually(20, "the foreign certificate's refusal", || {
        last_error(&mutual).contains("alert")
    });
    assert_eq!(add(&mutual)["result"]["structuredContent"], Value::Null);
    // … and once a certificate from the right CA is on disk (renewed in place, key first),
    // the next handshake uses it: no restart, no config change.
    std::fs::write(&key, &pki.client.1).unwrap();
    std::fs::write(&cert, &pki.client.0).unwrap();
    eventually(40, "a call over mutual TLS with the renewed certificate", || {
        add(&mutual)["result"]["structuredContent"]["sum"] == 7.0
    });

    // Half a client identity is a configuration error naming the missing key.
    let (ok, _, err) = cli(&[
        "config",
        "validate",
        "--config",
        &file(
            "half.toml",
            &format!(
                "version = 3\n[[upstreams]]\nname = \"x\"\nurl = \"https://127.0.0.1:{port}/mcp\"\n\
                 [upstreams.tls]\nclient_cert = \"{cert}\"\n"
            ),
        ),
    ]);
    assert!(
        !ok && err.contains("tls.client_key") && err.contains("client_cert"),
        "{err}"
    );
    let _ = inner.kill();
    let _ = inner.wait();
}

/// A fresh HTTPS client (a new handshake each time) presenting `identity`.
fn direct_client(pki: &Pki, identity: &(String, String)) -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(5))
        .add_root_certificate(reqwest::Certificate::from_pem(pki.ca.as_bytes()).unwrap())
        .identity(reqwest::Identity::from_pem(format!("{}{}", identity.0, identity.1).as_bytes()).unwrap())
        .build()
        .unwrap()
}

#[test]
fn rotated_ca_bundles_apply_to_the_next_handshake_on_both_ends() {
    let d = TempDir::new("ca-rotation");
    let (old, new) = (new_pki(), new_pki());
    let port = free_port();
    // The upstream asks for client certificates from `old`'s CA (its ca.pem).
    let mut inner = https_upstream(&d.0, &old, port);
    let ready = |c: &reqwest::blocking::Client| {
        c.get(format!("https://127.0.0.1:{port}/ready"))
            .send()
            .is_ok_and(|r| r.status().is_success())
    };
    assert!(
        ready(&direct_client(&old, &old.client)),
        "the old CA's client is served"
    );
    assert!(
        !ready(&direct_client(&old, &new.client)),
        "a client from another CA is refused"
    );

    // The listener's bundle is replaced in place: new handshakes are checked against it.
    std::fs::write(d.0.join("ca.pem"), &new.ca).unwrap();
    eventually(20, "the rotated client CA bundle accepting its client", || {
        ready(&direct_client(&old, &new.client))
    });
    assert!(
        !ready(&direct_client(&old, &old.client)),
        "a client of the CA rotated out is still accepted"
    );

    // The gateway trusts only `new`'s CA while the upstream's certificate is from `old`.
    let file = |name: &str, text: &str| {
        let p = d.0.join(name);
        std::fs::write(&p, text).unwrap();
        p.display().to_string()
    };
    let ca = file("gw-ca.pem", &new.ca);
    let (cert, key) = (
        file("gw-client.pem", &new.client.0),
        file("gw-client.key", &new.client.1),
    );
    let gw = gateway(
        &d.0,
        "rotating",
        port,
        &format!("[upstreams.tls]\nca = \"{ca}\"\nclient_cert = \"{cert}\"\nclient_key = \"{key}\"\n"),
    );
    eventually(20, "the untrusted upstream's error", || {
        last_error(&gw).contains("UnknownIssuer")
    });
    // The bundle gains the upstream's CA: the next attempt's handshake trusts it.
    std::fs::write(&ca, format!("{}{}", new.ca, old.ca)).unwrap();
    eventually(40, "a call after the gateway's CA bundle was rotated", || {
        add(&gw)["result"]["structuredContent"]["sum"] == 7.0
    });
    let _ = inner.kill();
    let _ = inner.wait();
}
