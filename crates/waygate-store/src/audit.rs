//! The hash-chained audit table: each row carries the hash of the previous one, so an edit,
//! insertion or deletion anywhere breaks the chain from that row on.

use sha2::{Digest, Sha256};
use sqlx::Row;

use crate::{Store, StoreError};

pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

#[derive(Debug, Clone, PartialEq)]
pub struct AuditRow {
    pub seq: i64,
    pub ts: i64,
    pub record: String,
    pub prev_hash: String,
    pub hash: String,
}

/// Outcome of `audit verify`.
#[derive(Debug, Clone, PartialEq)]
pub struct ChainCheck {
    pub rows: u64,
    /// The first row whose hash or link does not match, if any.
    pub first_bad: Option<i64>,
}

pub fn chain_hash(prev: &str, record: &str) -> String {
    let mut h = Sha256::new();
    h.update(prev.as_bytes());
    h.update(b"\n");
    h.update(record.as_bytes());
    crate::hex(&h.finalize())
}

impl Store {
    /// Append records (`(ts_ms, json)`) in one transaction, chained to the newest row.
    pub async fn audit_append(&self, records: &[(i64, String)]) -> Result<(), StoreError> {
        if records.is_empty() {
            return Ok(());
        }
        let mut conn = self.pool().acquire().await?;
        let sqlite = self.backend() == crate::Backend::Sqlite;
        // Writers from several processes (replicas, the CLI) must not read the same newest
        // hash and fork the chain: SQLite takes the write lock up front (BEGIN IMMEDIATE),
        // PostgreSQL serializes appends with a transaction-scoped advisory lock.
        if sqlite {
            sqlx::query("BEGIN IMMEDIATE").execute(&mut *conn).await?;
        } else {
            sqlx::query("BEGIN").execute(&mut *conn).await?;
            sqlx::query("SELECT pg_advisory_xact_lock(7310455391)")
                .execute(&mut *conn)
                .await?;
        }
        let r = append_locked(&mut conn, records, sqlite).await;
        let end = if r.is_ok() { "COMMIT" } else { "ROLLBACK" };
        let e = sqlx::query(end).execute(&mut *conn).await;
        r?;
        e?;
        Ok(())
    }
}

async fn append_locked(
    tx: &mut sqlx::pool::PoolConnection<sqlx::Any>,
    records: &[(i64, String)],
    sqlite: bool,
) -> Result<(), StoreError> {
    let last = sqlx::query("SELECT hash FROM audit_log ORDER BY seq DESC LIMIT 1")
        .fetch_optional(&mut **tx)
        .await?;
    let mut prev: String = match last {
        Some(r) => r.try_get(0)?,
        None => GENESIS.to_string(),
    };
    // One multi-row INSERT per chunk: with SQLite every statement is a round trip to
    // the connection's worker thread, so per-row statements cost more than the rows.
    for chunk in records.chunks(500) {
        let mut sql = String::from("INSERT INTO audit_log (ts, record, prev_hash, hash) VALUES ");
        let mut links = Vec::with_capacity(chunk.len());
        for (i, (_, rec)) in chunk.iter().enumerate() {
            let hash = chain_hash(&prev, rec);
            links.push((prev.clone(), hash.clone()));
            prev = hash;
            let b = i * 4;
            if i > 0 {
                sql.push(',');
            }
            // SQLite resolves `$N` names per bind (quadratic in the row count);
            // anonymous `?` binds positionally.
            if sqlite {
                sql.push_str("(?, ?, ?, ?)");
            } else {
                sql.push_str(&format!("(${}, ${}, ${}, ${})", b + 1, b + 2, b + 3, b + 4));
            }
        }
        let mut q = sqlx::query(&sql);
        for ((ts, rec), (link, hash)) in chunk.iter().zip(links) {
            q = q.bind(*ts).bind(rec.as_str()).bind(link).bind(hash);
        }
        q.execute(&mut **tx).await?;
    }
    Ok(())
}

fn audit_row(r: &sqlx::any::AnyRow) -> Result<AuditRow, StoreError> {
    Ok(AuditRow {
        seq: r.try_get(0)?,
        ts: r.try_get(1)?,
        record: r.try_get(2)?,
        prev_hash: r.try_get(3)?,
        hash: r.try_get(4)?,
    })
}

impl Store {
    /// Up to `limit` rows with `seq < before`, newest first (for paging backwards).
    pub async fn audit_before(&self, before: i64, limit: i64) -> Result<Vec<AuditRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT seq, ts, record, prev_hash, hash FROM audit_log WHERE seq < $1 ORDER BY seq DESC LIMIT $2",
        )
        .bind(before)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(audit_row).collect()
    }

    /// The newest `limit` rows, oldest first.
    pub async fn audit_tail(&self, limit: i64) -> Result<Vec<AuditRow>, StoreError> {
        let mut out = self.audit_before(i64::MAX, limit).await?;
        out.reverse();
        Ok(out)
    }

    /// Walk the whole chain.
    pub async fn audit_verify(&self) -> Result<ChainCheck, StoreError> {
        let rows = sqlx::query("SELECT seq, record, prev_hash, hash FROM audit_log ORDER BY seq")
            .fetch_all(self.pool())
            .await?;
        let mut prev = GENESIS.to_string();
        let mut n = 0u64;
        for r in &rows {
            let (seq, record, link, hash): (i64, String, String, String) =
                (r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?);
            n += 1;
            if link != prev || chain_hash(&prev, &record) != hash {
                return Ok(ChainCheck {
                    rows: n,
                    first_bad: Some(seq),
                });
            }
            prev = hash;
        }
        Ok(ChainCheck {
            rows: n,
            first_bad: None,
        })
    }
}
