//! Kinds of work paused by an operator (ADR 31): a row per paused kind.

use chrono::{DateTime, Utc};
use intake_domain::ports::PauseStore;
use intake_domain::work::WorkKind;

use crate::{SqliteStore, parse_ts, ts, unexpected};

#[async_trait::async_trait]
impl PauseStore for SqliteStore {
    async fn paused(&self) -> anyhow::Result<Vec<(WorkKind, DateTime<Utc>)>> {
        let rows: Vec<(String, String)> =
            sqlx::query_as("SELECT kind, paused_at FROM worker_pauses")
                .fetch_all(&self.pool)
                .await
                .map_err(unexpected("reading the paused kinds of work"))?;
        let mut paused = Vec::new();
        for kind in WorkKind::ALL {
            // A kind this build does not know (a newer instance's) is not ours to obey.
            if let Some((_, at)) = rows.iter().find(|(k, _)| k == kind.as_str()) {
                paused.push((kind, parse_ts(at)?));
            }
        }
        Ok(paused)
    }

    async fn set_paused(
        &self,
        kind: WorkKind,
        paused: bool,
        at: DateTime<Utc>,
    ) -> anyhow::Result<bool> {
        let done = if paused {
            sqlx::query(
                "INSERT INTO worker_pauses (kind, paused_at) VALUES (?, ?) ON CONFLICT DO NOTHING",
            )
            .bind(kind.as_str())
            .bind(ts(at))
            .execute(&self.writes)
            .await
        } else {
            sqlx::query("DELETE FROM worker_pauses WHERE kind = ?")
                .bind(kind.as_str())
                .execute(&self.writes)
                .await
        }
        .map_err(unexpected("pausing or resuming a kind of work"))?;
        Ok(done.rows_affected() > 0)
    }
}
