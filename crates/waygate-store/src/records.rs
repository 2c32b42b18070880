//! Typed access to the tables: config snapshots, plugin state, upstreams, metadata.

use sha2::{Digest, Sha256};
use sqlx::Row;

use crate::{now_ms, Store, StoreError};

#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub id: i64,
    pub created_at: i64,
    pub source: String,
    pub sha256: String,
    pub content: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PluginRow {
    pub name: String,
    pub enabled: bool,
    pub settings: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamRow {
    pub name: String,
    pub spec: String,
}

fn sha256_hex(s: &str) -> String {
    crate::hex(&Sha256::digest(s.as_bytes()))
}

impl Store {
    /// Record an applied configuration; returns the snapshot id. An identical content to
    /// the newest snapshot is not stored twice (its id is returned).
    pub async fn snapshot_config(&self, source: &str, content: &str) -> Result<i64, StoreError> {
        let hash = sha256_hex(content);
        if let Some(latest) = self.snapshots(1).await?.into_iter().next() {
            if latest.sha256 == hash {
                return Ok(latest.id);
            }
        }
        let row = sqlx::query(
            "INSERT INTO config_snapshots (created_at, source, sha256, content) VALUES ($1, $2, $3, $4) RETURNING id",
        )
        .bind(now_ms())
        .bind(source)
        .bind(&hash)
        .bind(content)
        .fetch_one(self.pool())
        .await?;
        Ok(row.try_get::<i64, _>(0)?)
    }

    /// Newest first.
    pub async fn snapshots(&self, limit: i64) -> Result<Vec<Snapshot>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, created_at, source, sha256, content FROM config_snapshots ORDER BY id DESC LIMIT $1",
        )
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(snapshot).collect()
    }

    pub async fn snapshot(&self, id: i64) -> Result<Option<Snapshot>, StoreError> {
        let row = sqlx::query("SELECT id, created_at, source, sha256, content FROM config_snapshots WHERE id = $1")
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(snapshot).transpose()
    }

    pub async fn set_plugin_state(&self, name: &str, enabled: bool, settings: &str) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO plugin_state (name, enabled, settings, updated_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (name) DO UPDATE SET enabled = excluded.enabled, settings = excluded.settings, updated_at = excluded.updated_at",
        )
        .bind(name)
        .bind(enabled as i64)
        .bind(settings)
        .bind(now_ms())
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub async fn plugin_states(&self) -> Result<Vec<PluginRow>, StoreError> {
        let rows = sqlx::query("SELECT name, enabled, settings FROM plugin_state ORDER BY name")
            .fetch_all(self.pool())
            .await?;
        rows.iter()
            .map(|r| {
                Ok(PluginRow {
                    name: r.try_get(0)?,
                    enabled: r.try_get::<i64, _>(1)? != 0,
                    settings: r.try_get(2)?,
                })
            })
            .collect()
    }

    pub async fn put_upstream(&self, name: &str, spec: &str) -> Result<(), StoreError> {
        let now = now_ms();
        sqlx::query(
            "INSERT INTO upstreams (name, spec, created_at, updated_at) VALUES ($1, $2, $3, $3) \
             ON CONFLICT (name) DO UPDATE SET spec = excluded.spec, updated_at = excluded.updated_at",
        )
        .bind(name)
        .bind(spec)
        .bind(now)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub async fn upstreams(&self) -> Result<Vec<UpstreamRow>, StoreError> {
        let rows = sqlx::query("SELECT name, spec FROM upstreams ORDER BY name")
            .fetch_all(self.pool())
            .await?;
        rows.iter()
            .map(|r| {
                Ok(UpstreamRow {
                    name: r.try_get(0)?,
                    spec: r.try_get(1)?,
                })
            })
            .collect()
    }

    pub async fn delete_upstream(&self, name: &str) -> Result<bool, StoreError> {
        let r = sqlx::query("DELETE FROM upstreams WHERE name = $1")
            .bind(name)
            .execute(self.pool())
            .await?;
        Ok(r.rows_affected() > 0)
    }

    pub async fn meta_get(&self, key: &str) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT value FROM meta WHERE key = $1")
            .bind(key)
            .fetch_optional(self.pool())
            .await?;
        Ok(row.map(|r| r.try_get(0)).transpose()?)
    }

    pub async fn meta_put(&self, key: &str, value: &str) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        )
        .bind(key)
        .bind(value)
        .execute(self.pool())
        .await?;
        Ok(())
    }
}

fn snapshot(r: &sqlx::any::AnyRow) -> Result<Snapshot, StoreError> {
    Ok(Snapshot {
        id: r.try_get(0)?,
        created_at: r.try_get(1)?,
        source: r.try_get(2)?,
        sha256: r.try_get(3)?,
        content: r.try_get(4)?,
    })
}
