//! Kinds of work paused by an operator (ADR 31): a row per paused kind, read by
//! every instance.

use chrono::{DateTime, Utc};
use intake_domain::ports::PauseStore;
use intake_domain::work::WorkKind;

use crate::{PgStore, unexpected};

#[async_trait::async_trait]
impl PauseStore for PgStore {
    async fn paused(&self) -> anyhow::Result<Vec<(WorkKind, DateTime<Utc>)>> {
        let rows: Vec<(String, DateTime<Utc>)> =
            sqlx::query_as("SELECT kind, paused_at FROM worker_pauses")
                .fetch_all(&self.pool)
                .await
                .map_err(unexpected("reading the paused kinds of work"))?;
        // A kind this build does not know (a newer instance's) is not ours to obey.
        Ok(WorkKind::ALL
            .into_iter()
            .filter_map(|kind| {
                let (_, at) = rows.iter().find(|(k, _)| k == kind.as_str())?;
                Some((kind, *at))
            })
            .collect())
    }

    async fn set_paused(
        &self,
        kind: WorkKind,
        paused: bool,
        at: DateTime<Utc>,
    ) -> anyhow::Result<bool> {
        let done = if paused {
            sqlx::query(
                "INSERT INTO worker_pauses (kind, paused_at) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            )
            .bind(kind.as_str())
            .bind(at)
            .execute(&self.pool)
            .await
        } else {
            sqlx::query("DELETE FROM worker_pauses WHERE kind = $1")
                .bind(kind.as_str())
                .execute(&self.pool)
                .await
        }
        .map_err(unexpected("pausing or resuming a kind of work"))?;
        Ok(done.rows_affected() > 0)
    }
}
