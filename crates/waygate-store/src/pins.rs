//! Approved tool definitions (tool-definition pinning): one SHA-256 per plugin × tool.

use sqlx::Row;

use crate::{now_ms, Store, StoreError};

#[derive(Debug, Clone)]
pub struct Pin {
    pub plugin: String,
    pub tool: String,
    pub sha256: String,
    pub definition: String,
    pub approved_by: String,
    pub approved_at: i64,
}

impl Store {
    pub async fn pins(&self) -> Result<Vec<Pin>, StoreError> {
        let rows = sqlx::query(
            "SELECT plugin, tool, sha256, definition, approved_by, approved_at FROM tool_pins ORDER BY plugin, tool",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Pin {
                    plugin: r.try_get(0)?,
                    tool: r.try_get(1)?,
                    sha256: r.try_get(2)?,
                    definition: r.try_get(3)?,
                    approved_by: r.try_get(4)?,
                    approved_at: r.try_get(5)?,
                })
            })
            .collect()
    }

    pub async fn put_pin(
        &self,
        plugin: &str,
        tool: &str,
        sha256: &str,
        definition: &str,
        by: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO tool_pins (plugin, tool, sha256, definition, approved_by, approved_at) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (plugin, tool) DO UPDATE SET sha256 = excluded.sha256, definition = excluded.definition, \
             approved_by = excluded.approved_by, approved_at = excluded.approved_at",
        )
        .bind(plugin)
        .bind(tool)
        .bind(sha256)
        .bind(definition)
        .bind(by)
        .bind(now_ms())
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub async fn delete_plugin_state(&self, name: &str) -> Result<bool, StoreError> {
        let r = sqlx::query("DELETE FROM plugin_state WHERE name = $1")
            .bind(name)
            .execute(self.pool())
            .await?;
        Ok(r.rows_affected() > 0)
    }
}
