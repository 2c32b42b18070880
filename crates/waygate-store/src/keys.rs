//! API key rows. Only hashes are stored; the secret is shown once at creation.

use sqlx::Row;

use crate::{now_ms, Store, StoreError};

#[derive(Debug, Clone, PartialEq)]
pub struct KeyRow {
    pub id: String,
    pub name: String,
    pub hash: String,
    pub scopes: Vec<String>,
    pub created_at: i64,
    /// Unix milliseconds.
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

impl Store {
    pub async fn create_key(
        &self,
        id: &str,
        name: &str,
        hash: &str,
        scopes: &[String],
        expires_at: Option<i64>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO api_keys (id, name, hash, scopes, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(id)
        .bind(name)
        .bind(hash)
        .bind(scopes.join(","))
        .bind(now_ms())
        .bind(expires_at)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub async fn keys(&self) -> Result<Vec<KeyRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, name, hash, scopes, created_at, expires_at, revoked_at FROM api_keys ORDER BY created_at, id",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                let scopes: String = r.try_get(3)?;
                Ok(KeyRow {
                    id: r.try_get(0)?,
                    name: r.try_get(1)?,
                    hash: r.try_get(2)?,
                    scopes: scopes
                        .split(',')
                        .filter(|s| !s.is_empty())
                        .map(str::to_string)
                        .collect(),
                    created_at: r.try_get(4)?,
                    expires_at: r.try_get(5)?,
                    revoked_at: r.try_get(6)?,
                })
            })
            .collect()
    }

    /// Revoke a key; false when no such active key exists.
    pub async fn revoke_key(&self, id: &str) -> Result<bool, StoreError> {
        let r = sqlx::query("UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
            .bind(now_ms())
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(r.rows_affected() > 0)
    }
}
