//! Each restriction of the `system` plugin, attacked.

use std::path::PathBuf;

use serde_json::json;

use super::*;

fn scratch(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("waygate-system-{tag}-{}", waygate_core::util::random_hex(6)));
    std::fs::create_dir_all(d.join("root/sub")).unwrap();
    std::fs::create_dir_all(d.join("outside")).unwrap();
    std::fs::write(d.join("root/hello.txt"), "hello").unwrap();
    std::fs::write(d.join("root/sub/notes.md"), "the needle is here").unwrap();
    std::fs::write(d.join("outside/secret.txt"), "TOP SECRET").unwrap();
    std::os::unix::fs::symlink(d.join("outside/secret.txt"), d.join("root/link-to-secret")).unwrap();
    std::os::unix::fs::symlink(d.join("outside"), d.join("root/link-dir")).unwrap();
    d
}

fn system(d: &std::path::Path, extra: serde_json::Value) -> System {
    let mut spec = json!({"roots": [d.join("root")], "max_read_bytes": 64, "max_write_bytes": 32});
    spec.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    System::new(serde_json::from_value(spec).unwrap()).unwrap()
}

#[tokio::test]
async fn file_tools_stay_inside_their_root() {
    let d = scratch("files");
    let s = system(&d, json!({"writable": true}));
    let root = d.join("root");
    assert_eq!(
        s.call("read_file", &json!({"path": "hello.txt"})).await.unwrap(),
        "hello"
    );
    let abs = root.join("hello.txt").display().to_string();
    assert_eq!(s.call("read_file", &json!({"path": abs})).await.unwrap(), "hello");
    for escape in [
        "../outside/secret.txt".to_string(),
        "sub/../../outside/secret.txt".into(),
        d.join("outside/secret.txt").display().to_string(),
        "/etc/passwd".into(),
        "link-to-secret".into(),
        "link-dir/secret.txt".into(),
        format!("{}/../outside/secret.txt", root.display()),
        "hello.txt\0".into(),
    ] {
        let e = s.call("read_file", &json!({"path": escape})).await.unwrap_err();
        assert!(!e.contains("TOP SECRET"), "{escape}: {e}");
        assert!(
            e.contains("outside") || e.contains("climbs") || e.contains("refused") || e.contains("NUL"),
            "{escape}: {e}"
        );
    }
    // Writing: through a symlink or out of the root is refused, the outside file intact.
    for escape in ["link-to-secret", "../outside/secret.txt", "link-dir/new.txt"] {
        assert!(
            s.call("write_file", &json!({"path": escape, "content": "pwned"}))
                .await
                .is_err(),
            "{escape}"
        );
    }
    assert_eq!(
        std::fs::read_to_string(d.join("outside/secret.txt")).unwrap(),
        "TOP SECRET"
    );
    assert!(!d.join("outside/new.txt").exists());
    // Size caps.
    std::fs::write(root.join("big.txt"), "x".repeat(65)).unwrap();
    let e = s.call("read_file", &json!({"path": "big.txt"})).await.unwrap_err();
    assert!(e.contains("max_read_bytes is 64"), "{e}");
    let e = s
        .call("write_file", &json!({"path": "w.txt", "content": "y".repeat(33)}))
        .await
        .unwrap_err();
    assert!(e.contains("max_write_bytes is 32"), "{e}");
    assert!(s
        .call("write_file", &json!({"path": "w.txt", "content": "ok"}))
        .await
        .is_ok());
    assert_eq!(std::fs::read_to_string(root.join("w.txt")).unwrap(), "ok");
    // Listing and search do not follow symlinks out.
    let listing = s.call("list_directory", &json!({"path": "."})).await.unwrap();
    assert!(listing.contains("hello.txt"), "{listing}");
    assert!(
        listing
            .lines()
            .any(|l| l.starts_with("link") && l.ends_with("link-dir")),
        "{listing}"
    );
    assert!(s.call("list_directory", &json!({"path": "link-dir"})).await.is_err());
    let found = s
        .call(
            "search_files",
            &json!({"path": ".", "pattern": "*", "contains": "SECRET"}),
        )
        .await
        .unwrap();
    assert!(found.is_empty(), "{found}");
    let found = s
        .call(
            "search_files",
            &json!({"path": ".", "pattern": "*.md", "contains": "needle"}),
        )
        .await
        .unwrap();
    assert!(found.ends_with("sub/notes.md"), "{found}");
    let _ = std::fs::remove_dir_all(&d);
}

#[tokio::test]
async fn write_file_is_not_offered_unless_writable() {
    let d = scratch("ro");
    let s = system(&d, json!({}));
    let names: Vec<String> = s.tools().iter().map(|t| t.name().to_string()).collect();
    assert!(!names.contains(&"write_file".to_string()), "{names:?}");
    assert!(!names.contains(&"execute_command".to_string()) && !names.contains(&"http_request".to_string()));
    assert!(s
        .call("write_file", &json!({"path": "x", "content": "y"}))
        .await
        .is_err());
    assert!(!d.join("root/x").exists());
    let _ = std::fs::remove_dir_all(&d);
}

#[tokio::test]
async fn commands_run_without_a_shell_from_the_allowlist_within_limits() {
    let d = scratch("exec");
    let s = system(
        &d,
        json!({"commands": ["echo", "sleep", "cat", "head"], "command_timeout_ms": 300, "max_output_bytes": 100}),
    );
    let out = s
        .call(
            "execute_command",
            &json!({"command": "echo", "args": ["$(id)", ";", "rm", "-rf", "/", "|", "cat"]}),
        )
        .await
        .unwrap();
    assert!(out.contains("$(id) ; rm -rf / | cat"), "{out}");
    for bad in ["sh", "bash", "/bin/sh", "rm", "echo;id", "../../bin/sh"] {
        let e = s.call("execute_command", &json!({"command": bad})).await.unwrap_err();
        assert!(e.contains("not an allowed command"), "{bad}: {e}");
    }
    let started = std::time::Instant::now();
    let e = s
        .call("execute_command", &json!({"command": "sleep", "args": ["5"]}))
        .await
        .unwrap_err();
    assert!(
        e.contains("within 300 ms") && started.elapsed().as_millis() < 2000,
        "{e}"
    );
    let big = d.join("root/big");
    std::fs::write(&big, "z".repeat(10_000)).unwrap();
    let out = s
        .call("execute_command", &json!({"command": "cat", "args": ["big"]}))
        .await
        .unwrap();
    assert!(
        out.contains("truncated: 10000 bytes, max_output_bytes 100") && out.len() < 400,
        "{out}"
    );
    // The working directory must be inside the roots; the environment is clean.
    assert!(s
        .call("execute_command", &json!({"command": "echo", "cwd": "/"}))
        .await
        .is_err());
    assert!(s
        .call("execute_command", &json!({"command": "echo", "cwd": "link-dir"}))
        .await
        .is_err());
    std::env::set_var("WAYGATE_SYSTEM_TEST_SECRET", "leaked");
    let s2 = system(&d, json!({"commands": ["env"]}));
    let out = s2.call("execute_command", &json!({"command": "env"})).await.unwrap();
    assert!(!out.contains("leaked"), "{out}");
    let _ = std::fs::remove_dir_all(&d);
}

#[tokio::test]
async fn http_goes_only_to_allowed_hosts_and_never_to_metadata() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut c, _)) = listener.accept().await {
            let mut buf = [0u8; 1024];
            let _ = c.read(&mut buf).await;
            let _ = c
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\nconnection: close\r\n\r\nhello")
                .await;
        }
    });
    let d = scratch("http");
    let s = system(
        &d,
        json!({"http_hosts": ["127.0.0.1", "169.254.169.254", "metadata.google.internal"]}),
    );
    let ok = s
        .call("http_request", &json!({"url": format!("http://127.0.0.1:{port}/")}))
        .await
        .unwrap();
    assert!(ok.contains("200") && ok.ends_with("hello"), "{ok}");
    let e = s
        .call("http_request", &json!({"url": format!("http://localhost:{port}/")}))
        .await
        .unwrap_err();
    assert!(e.contains("not in http_hosts"), "{e}");
    let e = s
        .call("http_request", &json!({"url": "file:///etc/passwd"}))
        .await
        .unwrap_err();
    assert!(e.contains("scheme"), "{e}");
    // Allowed by name, refused by the SSRF guard.
    for url in [
        "http://169.254.169.254/latest/meta-data/",
        "http://metadata.google.internal/",
    ] {
        let e = s.call("http_request", &json!({"url": url})).await.unwrap_err();
        assert!(e.contains("request failed"), "{url}: {e}");
    }
    let _ = std::fs::remove_dir_all(&d);
}
