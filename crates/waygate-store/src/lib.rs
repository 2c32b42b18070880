//! Persistent state behind one API for SQLite (the default: a file in the data directory)
//! and PostgreSQL (for fleets of replicas), with reversible, versioned migrations.
//!
//! Queries are written once in the dialect both engines accept (`$1` placeholders,
//! `ON CONFLICT`, `RETURNING`) and run through sqlx's `Any` driver; only the DDL differs,
//! in `migrations/sqlite` and `migrations/postgres`.

mod audit;
mod fleet;
mod keys;
mod pins;
mod records;
mod secrets;

use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::{Migrate, Migrator};
use sqlx::{AnyPool, ConnectOptions, Connection, Executor};

pub use audit::{anchor_mac, Anchor, AnchorCheck, AuditRow, ChainCheck};
pub use fleet::{Listener, Notice, SessionRow, TaskRow};
pub use keys::KeyRow;
pub use pins::Pin;
pub use records::{PluginRow, Snapshot, UpstreamRow};
pub use secrets::SealedSecret;

static SQLITE: Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES: Migrator = sqlx::migrate!("migrations/postgres");

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("unsupported database URL {0:?}: expected sqlite://PATH, sqlite::memory: or postgres://…")]
    BadUrl(String),
    #[error("cannot open database {url}: {source}")]
    Open { url: String, source: sqlx::Error },
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    #[error("no migration with version {0}")]
    UnknownVersion(i64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// One row of `waygate db status`.
#[derive(Debug, Clone)]
pub struct MigrationStatus {
    pub version: i64,
    pub description: String,
    pub applied: bool,
}

#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    url: String,
    /// The URL as given, for the `LISTEN` connection; never shown (see `url`).
    raw_url: String,
}

/// The URL with any password replaced, for logs and diagnostics.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

impl Store {
    /// Open (and for SQLite create) the database. Does not migrate.
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            return Err(StoreError::BadUrl(redact_url(url)));
        };
        let memory = url.contains(":memory:");
        let full = if backend == Backend::Sqlite && !memory && !url.contains("mode=") {
            format!("{url}{}mode=rwc", if url.contains('?') { "&" } else { "?" })
        } else {
            url.to_string()
        };
        let opts = AnyConnectOptions::from_str(&full)
            .map_err(|source| StoreError::Open {
                url: redact_url(url),
                source,
            })?
            .log_statements(tracing::log::LevelFilter::Trace)
            .log_slow_statements(tracing::log::LevelFilter::Warn, Duration::from_millis(500));
        // One direct connection first: a wrong host or password fails now, not after
        // the pool's acquire timeout.
        let probe = sqlx::AnyConnection::connect_with(&opts)
            .await
            .map_err(|source| StoreError::Open {
                url: redact_url(url),
                source,
            })?;
        if !memory {
            let _ = probe.close().await;
        }
        let pool = AnyPoolOptions::new()
            // An in-memory SQLite database exists per connection: keep exactly one.
            .max_connections(if memory {
                1
            } else if backend == Backend::Sqlite {
                4
            } else {
                10
            })
            .min_connections(if memory { 1 } else { 0 })
            .idle_timeout(if memory { None } else { Some(Duration::from_secs(300)) })
            .max_lifetime(if memory { None } else { Some(Duration::from_secs(1800)) })
            .acquire_timeout(Duration::from_secs(10))
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // The page cache is per connection (2 MB each by default) and the
                        // pool hands every connection its turn at the audit trail's
                        // appends, which fill it with pages never read again; the
                        // registry keeps what it serves in memory, so 256 KB is plenty
                        // (measured: ~2 MB less resident memory under load).
                        conn.execute(
                            "PRAGMA journal_mode=WAL; PRAGMA busy_timeout=5000; PRAGMA foreign_keys=ON; \
                             PRAGMA cache_size=-256;",
                        )
                        .await?;
                    }
                    Ok(())
                })
            })
            .connect_with(opts)
            .await
            .map_err(|source| StoreError::Open {
                url: redact_url(url),
                source,
            })?;
        Ok(Store {
            pool,
            backend,
            url: redact_url(url),
            raw_url: url.to_string(),
        })
    }

    /// Open and bring the schema to the newest version.
    pub async fn open_migrated(url: &str) -> Result<Store, StoreError> {
        let s = Store::open(url).await?;
        s.migrate().await?;
        Ok(s)
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The URL with secrets redacted.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    fn migrator(&self) -> &'static Migrator {
        match self.backend {
            Backend::Sqlite => &SQLITE,
            Backend::Postgres => &POSTGRES,
        }
    }

    /// Apply pending migrations; returns the versions applied now.
    pub async fn migrate(&self) -> Result<Vec<i64>, StoreError> {
        let before = self.applied().await?;
        self.migrator().run(&self.pool).await?;
        let after = self.applied().await?;
        Ok(after.into_iter().filter(|v| !before.contains(v)).collect())
    }

    /// Revert migrations newer than `to` (default: only the newest). Returns what was
    /// reverted, newest first.
    pub async fn rollback(&self, to: Option<i64>) -> Result<Vec<i64>, StoreError> {
        let applied = self.applied().await?;
        let target = match to {
            Some(v) if v != 0 && !self.migrator().iter().any(|m| m.version == v) => {
                return Err(StoreError::UnknownVersion(v))
            }
            Some(v) => v,
            None => {
                let mut a = applied.clone();
                a.sort_unstable();
                a.iter().rev().nth(1).copied().unwrap_or(0)
            }
        };
        self.migrator().undo(&self.pool, target).await?;
        let mut reverted: Vec<i64> = applied.into_iter().filter(|v| *v > target).collect();
        reverted.sort_unstable_by(|a, b| b.cmp(a));
        Ok(reverted)
    }

    async fn applied(&self) -> Result<Vec<i64>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        conn.ensure_migrations_table().await?;
        Ok(conn
            .list_applied_migrations()
            .await?
            .into_iter()
            .map(|m| m.version)
            .collect())
    }

    /// Every known migration and whether it is applied.
    pub async fn status(&self) -> Result<Vec<MigrationStatus>, StoreError> {
        let applied = self.applied().await?;
        Ok(self
            .migrator()
            .iter()
            .filter(|m| m.migration_type.is_up_migration())
            .map(|m| MigrationStatus {
                version: m.version,
                description: m.description.to_string(),
                applied: applied.contains(&m.version),
            })
            .collect())
    }

    /// Newest applied migration version (0 when none).
    pub async fn schema_version(&self) -> Result<i64, StoreError> {
        Ok(self.applied().await?.into_iter().max().unwrap_or(0))
    }

    /// Cheap connectivity check for readiness probes.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    bytes
        .iter()
        .flat_map(|b| [DIGITS[(b >> 4) as usize] as char, DIGITS[(b & 15) as usize] as char])
        .collect()
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn redacts_passwords() {
        assert_eq!(super::redact_url("postgres://u:secret@h/db"), "postgres://u:***@h/db");
        assert_eq!(super::redact_url("sqlite://x.db"), "sqlite://x.db");
    }
}
