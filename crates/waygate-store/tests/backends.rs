//! The same store behaviour on both backends: a real SQLite file, and a real PostgreSQL
//! server (`WAYGATE_TEST_POSTGRES_URL`, started by `.ci/postgres.sh`; required when CI=true).

use sqlx::Connection;
use waygate_store::{Backend, Store};

/// Held (shared) by every test using the PostgreSQL server, and exclusively by the test
/// that restarts it, so a restart never cuts another test's connection.
static PG_LOCK: std::sync::LazyLock<std::sync::Arc<tokio::sync::RwLock<()>>> =
    std::sync::LazyLock::new(Default::default);

/// The store's migrations, counted from their files.
fn migration_count() -> usize {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/sqlite");
    std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".up.sql"))
        })
        .count()
}

/// A fresh database per test on every available backend.
async fn backends(tag: &str) -> Vec<(String, tempdir::Guard)> {
    let shared = PG_LOCK.clone().read_owned().await;
    let mut out = backends_unlocked(tag).await;
    if let Some((_, g)) = out.iter_mut().find(|(u, _)| u.starts_with("postgres")) {
        g.1 = Some(shared);
    }
    out
}

async fn backends_unlocked(tag: &str) -> Vec<(String, tempdir::Guard)> {
    let dir = tempdir::Guard::new(tag);
    let mut out = vec![(format!("sqlite://{}/waygate.db", dir.0.display()), dir)];
    match std::env::var("WAYGATE_TEST_POSTGRES_URL") {
        Ok(base) => {
            sqlx::any::install_default_drivers();
            let db = format!("wg_{}_{}_{}", tag, std::process::id(), nanos());
            let mut admin = sqlx::AnyConnection::connect(&base)
                .await
                .expect("connect to test PostgreSQL");
            sqlx::query(&format!("CREATE DATABASE {db}"))
                .execute(&mut admin)
                .await
                .expect("create database");
            let url = match base.rfind('/') {
                Some(i) => format!("{}/{db}", &base[..i]),
                None => base.clone(),
            };
            out.push((url, tempdir::Guard::new("pg")));
        }
        Err(_) if std::env::var("CI").is_ok() => {
            panic!("CI must run the store tests against PostgreSQL: set WAYGATE_TEST_POSTGRES_URL")
        }
        Err(_) => eprintln!("note: WAYGATE_TEST_POSTGRES_URL not set; PostgreSQL half of {tag} skipped"),
    }
    out
}

fn nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
        % 1_000_000_000
}

mod tempdir {
    pub struct Guard(
        pub std::path::PathBuf,
        pub Option<tokio::sync::OwnedRwLockReadGuard<()>>,
    );
    impl Guard {
        pub fn new(tag: &str) -> Guard {
            let p = std::env::temp_dir().join(format!("wg-store-{tag}-{}-{}", std::process::id(), super::nanos()));
            std::fs::create_dir_all(&p).unwrap();
            Guard(p, None)
        }
    }
    impl Drop for Guard {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

#[tokio::test]
async fn migrate_status_rollback_and_reapply() {
    for (url, _g) in backends("migrate").await {
        let s = Store::open(&url).await.unwrap();
        assert!(s.status().await.unwrap().iter().all(|m| !m.applied), "{url}");
        let applied = s.migrate().await.unwrap();
        assert_eq!(applied.len(), migration_count(), "{url}");
        assert!(s.migrate().await.unwrap().is_empty(), "idempotent on {url}");
        let latest = s.schema_version().await.unwrap();
        s.meta_put("k", "v").await.unwrap();
        s.put_pin("p", "t", "abc", "{}", "test").await.unwrap();
        // Roll back the newest migration (the fleet tables), then the audit anchor, then
        // the tool pins' new shape; older data stays.
        assert_eq!(s.rollback(None).await.unwrap(), vec![latest], "{url}");
        for (table, exists) in [("sessions", false), ("pending_answers", false), ("audit_anchor", true)] {
            let r = sqlx::query(&format!("SELECT 1 FROM {table}"))
                .execute(&pool_of(&url).await)
                .await;
            assert_eq!(r.is_ok(), exists, "{table} after the fleet rollback on {url}");
        }
        let anchor_version = s.schema_version().await.unwrap();
        let reverted = s.rollback(None).await.unwrap();
        assert_eq!(reverted, vec![anchor_version], "{url}");
        assert!(
            sqlx::query("SELECT 1 FROM audit_anchor")
                .execute(&pool_of(&url).await)
                .await
                .is_err(),
            "the anchor table goes with its migration: {url}"
        );
        let pins_version = s.schema_version().await.unwrap();
        assert_eq!(s.rollback(None).await.unwrap(), vec![pins_version], "{url}");
        assert!(
            sqlx::query("SELECT plugin FROM tool_pins")
                .execute(&pool_of(&url).await)
                .await
                .is_err(),
            "{url}"
        );
        assert!(
            sqlx::query("SELECT 1 FROM secrets")
                .execute(&pool_of(&url).await)
                .await
                .is_ok(),
            "{url}"
        );
        assert_eq!(s.meta_get("k").await.unwrap().as_deref(), Some("v"), "{url}");
        // Back to zero and forward again.
        s.rollback(Some(0)).await.unwrap();
        assert_eq!(s.schema_version().await.unwrap(), 0);
        assert!(matches!(
            s.rollback(Some(123)).await,
            Err(waygate_store::StoreError::UnknownVersion(123))
        ));
        s.migrate().await.unwrap();
        assert_eq!(s.schema_version().await.unwrap(), latest);
        assert_eq!(
            s.meta_get("k").await.unwrap(),
            None,
            "data of reverted tables is gone: {url}"
        );
        s.close().await;
    }
}

async fn pool_of(url: &str) -> sqlx::AnyPool {
    sqlx::any::install_default_drivers();
    sqlx::AnyPool::connect(url).await.unwrap()
}

#[tokio::test]
async fn snapshots_plugins_upstreams_roundtrip() {
    for (url, _g) in backends("records").await {
        let s = Store::open_migrated(&url).await.unwrap();
        let a = s.snapshot_config("file", "version = 1").await.unwrap();
        assert_eq!(
            s.snapshot_config("file", "version = 1").await.unwrap(),
            a,
            "dedup on {url}"
        );
        let b = s.snapshot_config("reload", "version = 2").await.unwrap();
        assert!(b > a);
        let list = s.snapshots(10).await.unwrap();
        assert_eq!(list.iter().map(|x| x.id).collect::<Vec<_>>(), vec![b, a]);
        assert_eq!(s.snapshot(a).await.unwrap().unwrap().content, "version = 1");
        assert!(s.snapshot(9999).await.unwrap().is_none());

        s.set_plugin_state("demo", true, "{}").await.unwrap();
        s.set_plugin_state("demo", false, r#"{"x":1}"#).await.unwrap();
        let p = s.plugin_states().await.unwrap();
        assert_eq!(p.len(), 1);
        assert!(!p[0].enabled && p[0].settings == r#"{"x":1}"#, "{url}: {p:?}");

        s.put_upstream("git", r#"{"command":"git-mcp"}"#).await.unwrap();
        s.put_upstream("git", r#"{"command":"git-mcp2"}"#).await.unwrap();
        assert_eq!(s.upstreams().await.unwrap()[0].spec, r#"{"command":"git-mcp2"}"#);
        assert!(s.delete_upstream("git").await.unwrap());
        assert!(!s.delete_upstream("git").await.unwrap());
        s.ping().await.unwrap();
        let expected = if url.starts_with("sqlite") {
            Backend::Sqlite
        } else {
            Backend::Postgres
        };
        assert_eq!(s.backend(), expected);
    }
}

#[tokio::test]
async fn bad_urls_are_named() {
    let e = Store::open("mysql://x").await.err().unwrap().to_string();
    assert!(e.contains("mysql://x") && e.contains("sqlite"), "{e}");
    let e = Store::open("postgres://u:pw@127.0.0.1:1/db")
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("u:***@") && !e.contains("pw"), "password never shown: {e}");
}

#[tokio::test]
async fn in_memory_sqlite_keeps_one_database() {
    let s = Store::open_migrated("sqlite::memory:").await.unwrap();
    s.meta_put("a", "1").await.unwrap();
    assert_eq!(s.meta_get("a").await.unwrap().as_deref(), Some("1"));
}

/// Restart PostgreSQL while writes are in flight: every write that was acknowledged is
/// still there afterwards; writes during the outage fail loudly and succeed on retry.
#[tokio::test]
async fn postgres_restart_under_load_loses_nothing_acknowledged() {
    let (Ok(_), Ok(restart)) = (
        std::env::var("WAYGATE_TEST_POSTGRES_URL"),
        std::env::var("WAYGATE_TEST_PG_RESTART_CMD"),
    ) else {
        assert!(std::env::var("CI").is_err(), "CI must set WAYGATE_TEST_PG_RESTART_CMD");
        eprintln!("note: PostgreSQL restart test skipped (WAYGATE_TEST_PG_RESTART_CMD not set)");
        return;
    };
    let _exclusive = PG_LOCK.clone().write_owned().await;
    let (url, _g) = backends_unlocked("restart")
        .await
        .into_iter()
        .find(|(u, _)| u.starts_with("postgres"))
        .expect("pg backend");
    let s = Store::open_migrated(&url).await.unwrap();
    let writer = {
        let s = s.clone();
        tokio::spawn(async move {
            let mut acked = Vec::new();
            let mut failures = 0u32;
            let start = std::time::Instant::now();
            let mut i = 0u32;
            while i < 400 && start.elapsed() < std::time::Duration::from_secs(60) {
                match s.meta_put(&format!("k{i}"), &format!("v{i}")).await {
                    Ok(()) => {
                        acked.push(i);
                        i += 1;
                    }
                    Err(_) => {
                        failures += 1;
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    }
                }
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
            (acked, failures)
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(&restart)
        .status()
        .expect("run restart command");
    assert!(status.success(), "restart command failed");
    let (acked, failures) = writer.await.unwrap();
    eprintln!(
        "acknowledged {} writes, {failures} failed attempts during the restart",
        acked.len()
    );
    assert_eq!(acked.len(), 400, "writer must get through after the restart");
    for i in acked {
        assert_eq!(
            s.meta_get(&format!("k{i}")).await.unwrap(),
            Some(format!("v{i}")),
            "acknowledged write k{i} lost"
        );
    }
}

#[tokio::test]
async fn api_keys_create_list_revoke() {
    for (url, _g) in backends("keys").await {
        let s = Store::open_migrated(&url).await.unwrap();
        s.create_key("abc", "admin", "h1", &["admin".into(), "mcp".into()], None)
            .await
            .unwrap();
        s.create_key("def", "ci", "h2", &["mcp".into()], Some(123))
            .await
            .unwrap();
        assert!(
            s.create_key("abc", "dup", "h3", &[], None).await.is_err(),
            "ids are unique on {url}"
        );
        let k = s.keys().await.unwrap();
        assert_eq!(k.len(), 2);
        assert_eq!(k[0].scopes, vec!["admin", "mcp"]);
        assert_eq!(k[1].expires_at, Some(123));
        assert!(s.revoke_key("def").await.unwrap());
        assert!(!s.revoke_key("def").await.unwrap(), "second revoke is a no-op on {url}");
        assert!(s.keys().await.unwrap()[1].revoked_at.is_some());
    }
}

#[tokio::test]
async fn audit_chain_appends_verifies_and_detects_tampering() {
    for (url, _g) in backends("audit").await {
        let s = Store::open_migrated(&url).await.unwrap();
        assert_eq!(s.audit_verify().await.unwrap().first_bad, None);
        s.audit_append(&[(1, r#"{"a":1}"#.into()), (2, r#"{"a":2}"#.into())])
            .await
            .unwrap();
        s.audit_append(&[(3, r#"{"a":3}"#.into())]).await.unwrap();
        let check = s.audit_verify().await.unwrap();
        assert_eq!((check.rows, check.first_bad), (3, None), "{url}");
        let tail = s.audit_tail(2).await.unwrap();
        assert_eq!(tail.iter().map(|r| r.ts).collect::<Vec<_>>(), vec![2, 3]);
        assert_eq!(tail[1].prev_hash, tail[0].hash);
        // Tamper with the middle row directly in the database.
        let pool = pool_of(&url).await;
        sqlx::query("UPDATE audit_log SET record = $1 WHERE seq = $2")
            .bind(r#"{"a":99}"#)
            .bind(tail[0].seq)
            .execute(&pool)
            .await
            .unwrap();
        assert_eq!(s.audit_verify().await.unwrap().first_bad, Some(tail[0].seq), "{url}");
    }
}

#[tokio::test]
async fn sealed_secrets_round_trip() {
    for (url, _g) in backends("secrets").await {
        let s = Store::open_migrated(&url).await.unwrap();
        s.put_secret("gh", "bm9uY2U=", "Y3Q=").await.unwrap();
        s.put_secret("gh", "bm9uY2Uy", "Y3Qy").await.unwrap();
        let got = s.secret("gh").await.unwrap().unwrap();
        assert_eq!(
            (got.nonce.as_str(), got.ciphertext.as_str()),
            ("bm9uY2Uy", "Y3Qy"),
            "{url}"
        );
        assert_eq!(s.secrets().await.unwrap().len(), 1);
        assert!(s.delete_secret("gh").await.unwrap());
        assert!(!s.delete_secret("gh").await.unwrap());
        assert!(s.secret("gh").await.unwrap().is_none());
        s.close().await;
    }
}

#[tokio::test]
async fn concurrent_writers_keep_one_audit_chain() {
    for (url, _g) in backends("auditrace").await {
        // Two pools stand in for two replicas (or a replica and the CLI).
        let a = Store::open_migrated(&url).await.unwrap();
        let b = Store::open(&url).await.unwrap();
        let write = |s: Store, tag: &'static str| {
            tokio::spawn(async move {
                for i in 0..40 {
                    let rec = format!(r#"{{"w":"{tag}","i":{i}}}"#);
                    let mut tries = 0;
                    while let Err(e) = s.audit_append(&[(i, rec.clone())]).await {
                        tries += 1;
                        assert!(tries < 50, "append kept failing: {e}");
                        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                    }
                }
                s
            })
        };
        let (ta, tb) = (write(a, "a"), write(b, "b"));
        let (a, b) = (ta.await.unwrap(), tb.await.unwrap());
        let check = a.audit_verify().await.unwrap();
        assert_eq!((check.rows, check.first_bad), (80, None), "{url}");
        a.close().await;
        b.close().await;
    }
}

#[tokio::test]
async fn audit_anchor_detects_truncation_unkeyed_appends_and_forgery() {
    use waygate_store::AnchorCheck;
    let key = b"anchor key held outside the database";
    for (url, _g) in backends("anchor").await {
        let s = Store::open_migrated(&url).await.unwrap();
        assert_eq!(
            s.audit_verify_anchored(Some(key)).await.unwrap().1,
            AnchorCheck::Ok,
            "empty"
        );
        for i in 1..=4 {
            let head = s
                .audit_append_anchored(&[(i, format!(r#"{{"n":{i}}}"#))], Some(key))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(head.hash, s.audit_tail(1).await.unwrap()[0].hash);
        }
        assert_eq!(
            s.audit_verify_anchored(Some(key)).await.unwrap().1,
            AnchorCheck::Ok,
            "{url}"
        );
        assert_eq!(s.audit_verify_anchored(None).await.unwrap().1, AnchorCheck::NoKey);
        let tail = s.audit_tail(4).await.unwrap();
        let pool = pool_of(&url).await;

        // Someone without the key appends: the chain is valid, the anchor is behind.
        s.audit_append(&[(5, r#"{"n":5}"#.into())]).await.unwrap();
        let (chain, anchor) = s.audit_verify_anchored(Some(key)).await.unwrap();
        assert_eq!(chain.first_bad, None);
        assert!(
            matches!(anchor, AnchorCheck::Unanchored { anchored, .. } if anchored == tail[3].seq),
            "{anchor:?} {url}"
        );

        // The newest rows are deleted: the chain is still valid, the anchor is not.
        sqlx::query("DELETE FROM audit_log WHERE seq >= $1")
            .bind(tail[2].seq)
            .execute(&pool)
            .await
            .unwrap();
        let (chain, anchor) = s.audit_verify_anchored(Some(key)).await.unwrap();
        assert_eq!(chain.first_bad, None, "truncation leaves a valid chain: {url}");
        assert_eq!(
            anchor,
            AnchorCheck::Truncated {
                anchored: tail[3].seq,
                last: tail[1].seq
            },
            "{url}"
        );

        // Re-signing the head needs the key: a forged anchor is caught.
        sqlx::query("UPDATE audit_anchor SET seq = $1, hash = $2")
            .bind(tail[1].seq)
            .bind(tail[1].hash.as_str())
            .execute(&pool)
            .await
            .unwrap();
        assert_eq!(
            s.audit_verify_anchored(Some(key)).await.unwrap().1,
            AnchorCheck::Forged,
            "{url}"
        );
        let other = waygate_store::anchor_mac(b"another key", tail[1].seq, &tail[1].hash);
        sqlx::query("UPDATE audit_anchor SET mac = $1")
            .bind(other.as_str())
            .execute(&pool)
            .await
            .unwrap();
        assert_eq!(s.audit_verify_anchored(Some(key)).await.unwrap().1, AnchorCheck::Forged);
        // Deleting the anchor too is caught while records exist.
        sqlx::query("DELETE FROM audit_anchor").execute(&pool).await.unwrap();
        assert_eq!(
            s.audit_verify_anchored(Some(key)).await.unwrap().1,
            AnchorCheck::Missing,
            "{url}"
        );
        s.close().await;
    }
}
