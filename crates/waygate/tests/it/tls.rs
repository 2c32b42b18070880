//! `waygate serve` terminating TLS itself: HTTP/2 and HTTP/1.1 by ALPN, a certificate
//! replaced on disk is picked up without dropping established connections, and `doctor`
//! reports expiry. Certificates are made at test time (rcgen).

use super::common;

use std::time::{Duration, Instant};

use common::{Server, TempDir};

struct Cert {
    pem: String,
    key: String,
    der: Vec<u8>,
}

fn cert(cn: &str, expired: bool) -> Cert {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut p = rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    p.distinguished_name.push(rcgen::DnType::CommonName, cn);
    if expired {
        p.not_before = rcgen::date_time_ymd(2020, 1, 1);
        p.not_after = rcgen::date_time_ymd(2021, 1, 1);
    }
    let c = p.self_signed(&key).unwrap();
    Cert {
        pem: c.pem(),
        key: key.serialize_pem(),
        der: c.der().to_vec(),
    }
}

fn install(d: &TempDir, c: &Cert) {
    // Key first, then the certificate: a watcher that looks in between sees a mismatched
    // pair, refuses it and keeps serving the old one.
    std::fs::write(d.0.join("key.pem"), &c.key).unwrap();
    std::fs::write(d.0.join("cert.pem"), &c.pem).unwrap();
}

fn client(roots: &[&Cert], http1: bool) -> reqwest::blocking::Client {
    let mut b = reqwest::blocking::Client::builder()
        .tls_info(true)
        .timeout(Duration::from_secs(10))
        .pool_max_idle_per_host(1);
    for r in roots {
        b = b.add_root_certificate(reqwest::Certificate::from_pem(r.pem.as_bytes()).unwrap());
    }
    if http1 {
        b = b.http1_only();
    }
    b.build().unwrap()
}

fn peer(r: &reqwest::blocking::Response) -> Vec<u8> {
    r.extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(|t| t.peer_certificate())
        .map(<[u8]>::to_vec)
        .unwrap_or_default()
}

#[test]
fn https_with_alpn_live_certificate_reload_and_doctor_expiry() {
    let d = TempDir::new("tls");
    let a = cert("first", false);
    let b = cert("second", false);
    install(&d, &a);
    let cfg = d.0.join("waygate.toml");
    std::fs::write(
        &cfg,
        format!(
            "version = 3\n[server]\ntls_cert = \"{}\"\ntls_key = \"{}\"\n",
            d.0.join("cert.pem").display(),
            d.0.join("key.pem").display()
        ),
    )
    .unwrap();
    let data = d.0.join("data");
    std::fs::create_dir_all(&data).unwrap();
    let (s, key) = Server::start_auth_unready(&data, &["--config", cfg.to_str().unwrap()]);
    let port = s.addr.rsplit(':').next().unwrap().to_string();
    let base = format!("https://localhost:{port}");
    let key = key.expect("admin key");

    // HTTP/2 by ALPN; wait until the server is ready.
    let h2 = client(&[&a, &b], false);
    let end = Instant::now() + Duration::from_secs(15);
    let r = loop {
        match h2.get(format!("{base}/ready")).send() {
            Ok(r) if r.status() == 200 => break r,
            _ if Instant::now() < end => std::thread::sleep(Duration::from_millis(50)),
            other => panic!("never ready over TLS: {other:?}"),
        }
    };
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    assert_eq!(peer(&r), a.der);
    let ping = |c: &reqwest::blocking::Client| {
        c.post(format!("{base}/mcp"))
            .header("authorization", format!("Bearer {key}"))
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#)
            .send()
            .unwrap()
    };
    let r = ping(&h2);
    assert_eq!(r.status(), 200);
    assert!(r.text().unwrap().contains("\"tools\""));

    // HTTP/1.1 when the client offers only that.
    let h1 = client(&[&a], true);
    let r = ping(&h1);
    assert_eq!(r.version(), reqwest::Version::HTTP_11);
    assert_eq!(r.status(), 200);

    // Plain HTTP on the TLS port gets nowhere.
    let plain = std::net::TcpStream::connect(&s.addr).and_then(|mut t| {
        use std::io::{Read, Write};
        t.set_read_timeout(Some(Duration::from_secs(5)))?;
        t.write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")?;
        let mut buf = Vec::new();
        let _ = t.read_to_end(&mut buf);
        Ok(buf)
    });
    assert!(!String::from_utf8_lossy(&plain.unwrap_or_default()).contains("200 OK"));

    // Replace the files: new handshakes get the new certificate, the open connection stays.
    install(&d, &b);
    let end = Instant::now() + Duration::from_secs(15);
    loop {
        let fresh = client(&[&a, &b], false);
        let r = fresh.get(format!("{base}/health")).send().unwrap();
        if peer(&r) == b.der {
            break;
        }
        assert!(Instant::now() < end, "the new certificate was never served");
        std::thread::sleep(Duration::from_millis(200));
    }
    let r = ping(&h2);
    assert_eq!(r.status(), 200, "the established connection was dropped");
    assert_eq!(peer(&r), a.der, "the established connection was renegotiated");

    // doctor: valid now, then FAIL once the certificate on disk has expired.
    let data_s = data.to_str().unwrap();
    let (_, out, _) = common::cli(&["doctor", "--config", cfg.to_str().unwrap(), "--data-dir", data_s]);
    let row = out
        .lines()
        .find(|l| l.starts_with("tls"))
        .unwrap_or_default()
        .to_string();
    assert!(row.contains("ok") && row.contains("more day"), "{out}");
    install(&d, &cert("old", true));
    let (ok, out, _) = common::cli(&["doctor", "--config", cfg.to_str().unwrap(), "--data-dir", data_s]);
    let row = out
        .lines()
        .find(|l| l.starts_with("tls"))
        .unwrap_or_default()
        .to_string();
    assert!(!ok && row.contains("FAIL") && row.contains("expired"), "{out}");

    // A key that does not match its certificate is refused at start, naming both keys.
    std::fs::write(d.0.join("key.pem"), &a.key).unwrap();
    std::fs::write(d.0.join("cert.pem"), &b.pem).unwrap();
    let mut child = std::process::Command::new(common::bin())
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--config",
            cfg.to_str().unwrap(),
            "--data-dir",
            data_s,
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let end = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > end {
            let _ = child.kill();
            panic!("serve started with a key that does not match its certificate");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(
        !status.success() && err.contains("server.tls_key") && err.contains("server.tls_cert"),
        "{err}"
    );
}
