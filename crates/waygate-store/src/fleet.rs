//! What replicas share beyond configuration: session rows, answers to server-to-client
//! requests that landed on the wrong replica, task snapshots, and the PostgreSQL
//! `LISTEN/NOTIFY` channels that wake the replica concerned.
//!
//! Every state column is an opaque JSON document owned by the layer that writes it: the
//! store moves rows, it does not interpret sessions or tasks.

use sqlx::Row;

use crate::{now_ms, Backend, Store, StoreError};

/// One stored session: who owns it, the virtual server it was opened on, and the state
/// document the engine wrote.
#[derive(Debug, Clone)]
pub struct SessionRow {
    pub id: String,
    pub owner: Option<String>,
    pub view: Option<String>,
    pub state: String,
}

/// One stored task snapshot.
#[derive(Debug, Clone)]
pub struct TaskRow {
    pub id: String,
    pub owner: Option<String>,
    pub tool: String,
    pub state: String,
}

/// A notification from another replica (or this one): channel and payload.
#[derive(Debug, Clone)]
pub struct Notice {
    pub channel: String,
    pub payload: String,
}

/// A dedicated connection that receives `NOTIFY`s on the channels it listens to.
pub struct Listener(sqlx::postgres::PgListener);

impl Listener {
    /// The next notification; an error means the connection was lost (sqlx reconnects on
    /// the next call, and notifications sent meanwhile are lost: reconcile after one).
    pub async fn recv(&mut self) -> Result<Notice, StoreError> {
        let n = self.0.recv().await?;
        Ok(Notice {
            channel: n.channel().to_string(),
            payload: n.payload().to_string(),
        })
    }
}

impl Store {
    /// Whether this store can be shared by replicas (PostgreSQL). SQLite is one replica.
    pub fn is_shared(&self) -> bool {
        self.backend == Backend::Postgres
    }

    /// Store `value` under `key` unless a value is there already; returns the value that
    /// is stored now. Replicas starting together agree on one value this way.
    pub async fn meta_claim(&self, key: &str, value: &str) -> Result<String, StoreError> {
        sqlx::query("INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING")
            .bind(key)
            .bind(value)
            .execute(self.pool())
            .await?;
        Ok(self.meta_get(key).await?.unwrap_or_else(|| value.to_string()))
    }

    /// `NOTIFY channel, payload` on PostgreSQL; nothing on SQLite.
    pub async fn notify(&self, channel: &str, payload: &str) -> Result<(), StoreError> {
        if !self.is_shared() {
            return Ok(());
        }
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(channel)
            .bind(payload)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// A listener on `channels` (PostgreSQL only; `None` on SQLite).
    pub async fn listen(&self, channels: &[&str]) -> Result<Option<Listener>, StoreError> {
        if !self.is_shared() {
            return Ok(None);
        }
        let mut l = sqlx::postgres::PgListener::connect(&self.raw_url).await?;
        l.listen_all(channels.iter().copied()).await?;
        Ok(Some(Listener(l)))
    }

    pub async fn session_put(&self, row: &SessionRow) -> Result<(), StoreError> {
        let now = now_ms();
        sqlx::query(
            "INSERT INTO sessions (id, owner, view, state, created_at, last_seen) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (id) DO UPDATE SET state = excluded.state, last_seen = excluded.last_seen",
        )
        .bind(&row.id)
        .bind(&row.owner)
        .bind(&row.view)
        .bind(&row.state)
        .bind(now)
        .bind(now)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub async fn session_get(&self, id: &str) -> Result<Option<SessionRow>, StoreError> {
        let row = sqlx::query("SELECT id, owner, view, state FROM sessions WHERE id = $1")
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        row.map(|r| {
            Ok(SessionRow {
                id: r.try_get(0)?,
                owner: r.try_get(1)?,
                view: r.try_get(2)?,
                state: r.try_get(3)?,
            })
        })
        .transpose()
    }

    pub async fn session_delete(&self, id: &str) -> Result<bool, StoreError> {
        let r = sqlx::query("DELETE FROM sessions WHERE id = $1")
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(r.rows_affected() > 0)
    }

    /// Mark sessions as used now (batched: one statement per call).
    pub async fn sessions_touch(&self, ids: &[String]) -> Result<(), StoreError> {
        for chunk in ids.chunks(500) {
            let marks: Vec<String> = (0..chunk.len()).map(|i| format!("${}", i + 2)).collect();
            let sql = format!("UPDATE sessions SET last_seen = $1 WHERE id IN ({})", marks.join(", "));
            let mut q = sqlx::query(&sql).bind(now_ms());
            for id in chunk {
                q = q.bind(id);
            }
            q.execute(self.pool()).await?;
        }
        Ok(())
    }

    /// Delete sessions unused for `idle_ms`, answers older than `answer_ms` and expired
    /// tasks. Idempotent, so any replica may run it.
    pub async fn fleet_sweep(&self, idle_ms: i64, answer_ms: i64) -> Result<u64, StoreError> {
        let now = now_ms();
        let mut n = sqlx::query("DELETE FROM sessions WHERE last_seen < $1")
            .bind(now - idle_ms)
            .execute(self.pool())
            .await?
            .rows_affected();
        n += sqlx::query("DELETE FROM pending_answers WHERE created_at < $1")
            .bind(now - answer_ms)
            .execute(self.pool())
            .await?
            .rows_affected();
        n += sqlx::query("DELETE FROM tasks WHERE expires_at < $1")
            .bind(now)
            .execute(self.pool())
            .await?
            .rows_affected();
        Ok(n)
    }

    pub async fn answer_put(&self, session: &str, request: &str, payload: &str) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO pending_answers (session_id, request_id, payload, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (session_id, request_id) DO NOTHING",
        )
        .bind(session)
        .bind(request)
        .bind(payload)
        .bind(now_ms())
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Take (read and delete) an answer; `None` when another replica took it first.
    pub async fn answer_take(&self, session: &str, request: &str) -> Result<Option<String>, StoreError> {
        let row =
            sqlx::query("DELETE FROM pending_answers WHERE session_id = $1 AND request_id = $2 RETURNING payload")
                .bind(session)
                .bind(request)
                .fetch_optional(self.pool())
                .await?;
        Ok(row.map(|r| r.try_get(0)).transpose()?)
    }

    /// Write a task's state; a write with a lower `seq` than the stored one is ignored.
    pub async fn task_put(&self, row: &TaskRow, seq: i64, expires_ms: i64) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO tasks (id, owner, tool, state, seq, updated_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (id) DO UPDATE SET state = excluded.state, seq = excluded.seq, \
             updated_at = excluded.updated_at, expires_at = excluded.expires_at WHERE tasks.seq < excluded.seq",
        )
        .bind(&row.id)
        .bind(&row.owner)
        .bind(&row.tool)
        .bind(&row.state)
        .bind(seq)
        .bind(now_ms())
        .bind(expires_ms)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// The task `id` if `owner` holds it and it has not expired.
    pub async fn task_get(&self, id: &str, owner: Option<&str>) -> Result<Option<TaskRow>, StoreError> {
        let row = sqlx::query(
            "SELECT id, owner, tool, state FROM tasks WHERE id = $1 AND expires_at >= $2 \
             AND COALESCE(owner, '') = $3",
        )
        .bind(id)
        .bind(now_ms())
        .bind(owner.unwrap_or(""))
        .fetch_optional(self.pool())
        .await?;
        row.map(|r| task_row(&r)).transpose()
    }

    /// The owner's unexpired tasks, newest first, at most `limit`.
    pub async fn tasks_of(&self, owner: Option<&str>, limit: i64) -> Result<Vec<TaskRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, owner, tool, state FROM tasks WHERE expires_at >= $1 \
             AND COALESCE(owner, '') = $2 ORDER BY updated_at DESC LIMIT $3",
        )
        .bind(now_ms())
        .bind(owner.unwrap_or(""))
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(task_row).collect()
    }
}

fn task_row(r: &sqlx::any::AnyRow) -> Result<TaskRow, StoreError> {
    Ok(TaskRow {
        id: r.try_get(0)?,
        owner: r.try_get(1)?,
        tool: r.try_get(2)?,
        state: r.try_get(3)?,
    })
}
