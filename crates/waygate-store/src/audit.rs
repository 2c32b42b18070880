//! The hash-chained audit table: each row carries the hash of the previous one, so an edit,
//! insertion or deletion anywhere breaks the chain from that row on.
//!
//! The chain alone cannot show that its newest rows were deleted: what is left is still a
//! valid chain. So every append also writes the **anchor** — the newest row's seq and hash
//! with an HMAC under a key the database does not hold (the binary keeps it in the data
//! directory or the config) — in the same transaction. `audit_verify_anchored` then detects
//! truncation (the anchor names a row that is gone), rows appended without the key (the
//! chain goes past the anchor), and a forged or removed anchor.

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

/// The signed head of the chain.
#[derive(Debug, Clone, PartialEq)]
pub struct Anchor {
    pub seq: i64,
    pub hash: String,
    pub mac: String,
}

/// HMAC-SHA256 of an anchor, hex.
pub fn anchor_mac(key: &[u8], seq: i64, hash: &str) -> String {
    use hmac::{Hmac, Mac};
    // HMAC takes keys of any length.
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    m.update(format!("waygate-audit-anchor\n{seq}\n{hash}").as_bytes());
    crate::hex(&m.finalize().into_bytes())
}

/// What the anchor says about the end of the chain.
#[derive(Debug, Clone, PartialEq)]
pub enum AnchorCheck {
    /// The anchor is authentic and names the newest row.
    Ok,
    /// No key to check with (verification of the end was not possible).
    NoKey,
    /// Rows exist but no anchor was ever written (rows from before anchoring, or deleted).
    Missing,
    /// The anchor's MAC is wrong: it was forged or written with another key.
    Forged,
    /// The anchor names a row that is gone or different: the newest rows were removed.
    Truncated { anchored: i64, last: i64 },
    /// Rows follow the anchored one: appended by someone without the key.
    Unanchored { anchored: i64, last: i64 },
}

impl Store {
    /// Append records (`(ts_ms, json)`) in one transaction, chained to the newest row.
    pub async fn audit_append(&self, records: &[(i64, String)]) -> Result<(), StoreError> {
        self.audit_append_anchored(records, None).await.map(|_| ())
    }

    /// [`Store::audit_append`], moving the anchor (signed with `key`) to the new head in the
    /// same transaction; returns the new head.
    pub async fn audit_append_anchored(
        &self,
        records: &[(i64, String)],
        key: Option<&[u8]>,
    ) -> Result<Option<Anchor>, StoreError> {
        if records.is_empty() {
            return Ok(None);
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
        let r = match append_locked(&mut conn, records, sqlite).await {
            Ok(()) => match key {
                Some(k) => anchor_locked(&mut conn, k).await.map(Some),
                None => Ok(None),
            },
            Err(e) => Err(e),
        };
        let end = if r.is_ok() { "COMMIT" } else { "ROLLBACK" };
        let e = sqlx::query(end).execute(&mut *conn).await;
        let head = r?;
        e?;
        Ok(head)
    }

    /// The stored anchor, if any.
    pub async fn audit_anchor(&self) -> Result<Option<Anchor>, StoreError> {
        let row = sqlx::query("SELECT seq, hash, mac FROM audit_anchor WHERE id = 1")
            .fetch_optional(self.pool())
            .await?;
        row.map(|r| {
            Ok(Anchor {
                seq: r.try_get(0)?,
                hash: r.try_get(1)?,
                mac: r.try_get(2)?,
            })
        })
        .transpose()
    }

    /// The hash of row `seq`, if it exists.
    pub async fn audit_hash_at(&self, seq: i64) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT hash FROM audit_log WHERE seq = $1")
            .bind(seq)
            .fetch_optional(self.pool())
            .await?;
        row.map(|r| r.try_get(0).map_err(StoreError::from)).transpose()
    }

    /// Walk the chain, then check its end against the anchor (when `key` is given).
    pub async fn audit_verify_anchored(&self, key: Option<&[u8]>) -> Result<(ChainCheck, AnchorCheck), StoreError> {
        let chain = self.audit_verify().await?;
        let Some(key) = key else {
            return Ok((chain, AnchorCheck::NoKey));
        };
        let last = sqlx::query("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
            .fetch_optional(self.pool())
            .await?;
        let last: Option<(i64, String)> = last
            .map(|r| Ok::<_, StoreError>((r.try_get(0)?, r.try_get(1)?)))
            .transpose()?;
        let check = match (self.audit_anchor().await?, last) {
            (None, None) => AnchorCheck::Ok,
            (None, Some(_)) => AnchorCheck::Missing,
            (Some(a), _) if anchor_mac(key, a.seq, &a.hash) != a.mac => AnchorCheck::Forged,
            (Some(a), None) => AnchorCheck::Truncated {
                anchored: a.seq,
                last: 0,
            },
            (Some(a), Some((seq, hash))) => {
                if a.seq == seq && a.hash == hash {
                    AnchorCheck::Ok
                } else if self.audit_hash_at(a.seq).await?.as_deref() == Some(a.hash.as_str()) {
                    AnchorCheck::Unanchored {
                        anchored: a.seq,
                        last: seq,
                    }
                } else {
                    AnchorCheck::Truncated {
                        anchored: a.seq,
                        last: seq,
                    }
                }
            }
        };
        Ok((chain, check))
    }
}

/// Move the anchor to the newest row (inside the append's transaction).
async fn anchor_locked(tx: &mut sqlx::pool::PoolConnection<sqlx::Any>, key: &[u8]) -> Result<Anchor, StoreError> {
    let r = sqlx::query("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
        .fetch_one(&mut **tx)
        .await?;
    let (seq, hash): (i64, String) = (r.try_get(0)?, r.try_get(1)?);
    let mac = anchor_mac(key, seq, &hash);
    sqlx::query(
        "INSERT INTO audit_anchor (id, seq, hash, mac, updated_at) VALUES (1, $1, $2, $3, $4) \
         ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash, mac = excluded.mac, \
         updated_at = excluded.updated_at",
    )
    .bind(seq)
    .bind(hash.as_str())
    .bind(mac.as_str())
    .bind(crate::now_ms())
    .execute(&mut **tx)
    .await?;
    Ok(Anchor { seq, hash, mac })
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
