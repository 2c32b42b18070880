//! The encrypted credential store: upstream tokens and passwords kept as AES-256-GCM
//! ciphertext. The store never sees a plain value or the key; sealing happens in the binary
//! (key from `WAYGATE_SECRET_KEY`), so a copy of the database alone reveals nothing.

use sqlx::Row;

use crate::{now_ms, Store, StoreError};

/// One sealed secret, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct SealedSecret {
    pub name: String,
    /// Base64 of the 12-byte nonce and of the ciphertext (with its tag).
    pub nonce: String,
    pub ciphertext: String,
    pub updated_at: i64,
}

impl Store {
    pub async fn put_secret(&self, name: &str, nonce: &str, ciphertext: &str) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO secrets (name, nonce, ciphertext, created_at, updated_at) VALUES ($1, $2, $3, $4, $4) \
             ON CONFLICT (name) DO UPDATE SET nonce = excluded.nonce, ciphertext = excluded.ciphertext, \
             updated_at = excluded.updated_at",
        )
        .bind(name)
        .bind(nonce)
        .bind(ciphertext)
        .bind(now_ms())
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub async fn secret(&self, name: &str) -> Result<Option<SealedSecret>, StoreError> {
        let row = sqlx::query("SELECT name, nonce, ciphertext, updated_at FROM secrets WHERE name = $1")
            .bind(name)
            .fetch_optional(self.pool())
            .await?;
        row.map(|r| sealed(&r)).transpose()
    }

    pub async fn secrets(&self) -> Result<Vec<SealedSecret>, StoreError> {
        let rows = sqlx::query("SELECT name, nonce, ciphertext, updated_at FROM secrets ORDER BY name")
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(sealed).collect()
    }

    pub async fn delete_secret(&self, name: &str) -> Result<bool, StoreError> {
        let r = sqlx::query("DELETE FROM secrets WHERE name = $1")
            .bind(name)
            .execute(self.pool())
            .await?;
        Ok(r.rows_affected() > 0)
    }
}

fn sealed(r: &sqlx::any::AnyRow) -> Result<SealedSecret, StoreError> {
    Ok(SealedSecret {
        name: r.try_get(0)?,
        nonce: r.try_get(1)?,
        ciphertext: r.try_get(2)?,
        updated_at: r.try_get(3)?,
    })
}
