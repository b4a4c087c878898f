//! A reprocess job's side of the store (ADR 34): the dataset cleared and its imports
//! held for the job in one transaction, then claimed by the job alone, oldest first.

use std::time::Duration;

use intake_domain::ports::{Lease, RebuildError, RebuildStore};
use intake_domain::{ContractVersion, DatasetName, ImportId};
use sqlx::Row as _;

use crate::{PgStore, new_id, seconds, unexpected};

/// Imports of a dataset whose reprocess job has not ended are the job's alone: the
/// import queue's claim leaves them (`i` is the import row).
pub(crate) const NOT_REPROCESSING: &str = "NOT EXISTS (SELECT 1 FROM jobs j \
    WHERE j.dataset = i.dataset AND j.kind = 'reprocess' \
    AND j.status IN ('queued', 'running', 'paused'))";

/// A row locked by another transaction (`NOWAIT`): an import is being written.
fn busy_or(doing: &'static str) -> impl FnOnce(sqlx::Error) -> RebuildError {
    move |e| {
        let locked = e
            .as_database_error()
            .and_then(|d| d.code())
            .is_some_and(|c| c == "55P03");
        if locked {
            RebuildError::Busy
        } else {
            RebuildError::Unexpected(unexpected(doing)(e))
        }
    }
}

#[async_trait::async_trait]
impl RebuildStore for PgStore {
    async fn hold(
        &self,
        dataset: &DatasetName,
        job: &str,
        contract: ContractVersion,
    ) -> Result<u64, RebuildError> {
        const DOING: &str = "clearing a dataset for a reprocess";
        let mut tx = self.pool.begin().await.map_err(busy_or(DOING))?;
        let ds = dataset.as_str();
        // An import being written holds its row: NOWAIT answers at once. Locking the
        // waiting ones keeps claimers that started before the job from taking them.
        let live: Vec<bool> = sqlx::query_scalar(
            "SELECT i.status = 'processing' AND EXISTS (SELECT 1 FROM import_leases l \
               WHERE l.import_id = i.id AND l.expires_at >= now()) \
             FROM imports i WHERE i.dataset = $1 AND i.status IN ('received', 'processing') \
             FOR UPDATE NOWAIT",
        )
        .bind(ds)
        .fetch_all(&mut *tx)
        .await
        .map_err(busy_or(DOING))?;
        if live.contains(&true) {
            return Err(RebuildError::Busy);
        }
        let held = sqlx::query(
            "UPDATE imports SET status = 'received', contract = $2, report = NULL, attempts = 0, \
               held_for = $3 WHERE dataset = $1 AND status IN ('completed', 'failed')",
        )
        .bind(ds)
        .bind(i32::try_from(contract.get()).unwrap_or(i32::MAX))
        .bind(job)
        .execute(&mut *tx)
        .await
        .map_err(busy_or(DOING))?
        .rows_affected();
        let id: Option<i64> = sqlx::query_scalar("SELECT id FROM datasets WHERE name = $1")
            .bind(ds)
            .fetch_optional(&mut *tx)
            .await
            .map_err(busy_or(DOING))?;
        if let Some(id) = id {
            // `records_<id>`: a number, no quoting needed.
            sqlx::query(&format!("TRUNCATE records_{id}"))
                .execute(&mut *tx)
                .await
                .map_err(busy_or(DOING))?;
        }
        for sql in [
            "DELETE FROM record_history WHERE dataset = $1",
            "DELETE FROM identities WHERE dataset = $1",
            "DELETE FROM conflicts WHERE dataset = $1",
            "UPDATE datasets SET revision = revision + 1, records = 0 WHERE name = $1",
            // The rollups read a history that is no more: from the beginning again.
            "DELETE FROM rollup_points WHERE dataset = $1",
            "DELETE FROM job_checkpoints WHERE job_id IN (SELECT id FROM jobs \
               WHERE dataset = $1 AND kind = 'rollup' AND status <> 'cancelled')",
            "UPDATE jobs SET status = CASE WHEN status = 'paused' THEN 'paused' ELSE 'queued' END, \
               done = 0, total = NULL, error = NULL, attempts = 0, due_at = now(), \
               updated_at = now(), finished_at = NULL, worker = NULL, token = NULL, \
               lease_expires_at = NULL \
             WHERE dataset = $1 AND kind = 'rollup' AND status <> 'cancelled'",
        ] {
            sqlx::query(sql)
                .bind(ds)
                .execute(&mut *tx)
                .await
                .map_err(busy_or(DOING))?;
        }
        tx.commit().await.map_err(busy_or(DOING))?;
        Ok(held)
    }

    async fn claim_held(
        &self,
        job: &str,
        worker: &str,
        lease: Duration,
    ) -> Result<Option<Lease>, RebuildError> {
        const DOING: &str = "claiming an import held for a reprocess";
        let mut tx = self.pool.begin().await.map_err(busy_or(DOING))?;
        // The oldest held import, locked: a writer still at it answers at once.
        let oldest = sqlx::query(
            "SELECT i.id, i.status = 'received' OR NOT EXISTS (SELECT 1 FROM import_leases l \
               WHERE l.import_id = i.id AND l.expires_at >= now()) AS waiting \
             FROM imports i WHERE i.held_for = $1 ORDER BY i.seq LIMIT 1 FOR UPDATE NOWAIT",
        )
        .bind(job)
        .fetch_optional(&mut *tx)
        .await
        .map_err(busy_or(DOING))?;
        let Some(oldest) = oldest else {
            return Ok(None);
        };
        let read = |column: &str| oldest.try_get::<String, _>(column);
        let id = read("id").map_err(|e| RebuildError::Unexpected(e.into()))?;
        let waiting: bool = oldest
            .try_get("waiting")
            .map_err(|e| RebuildError::Unexpected(e.into()))?;
        if !waiting {
            return Err(RebuildError::Busy);
        }
        let token = new_id();
        let attempt: i32 = sqlx::query_scalar(
            "UPDATE imports SET status = 'processing', attempts = attempts + 1 WHERE id = $1 \
             RETURNING attempts",
        )
        .bind(&id)
        .fetch_one(&mut *tx)
        .await
        .map_err(busy_or(DOING))?;
        let expires_at = sqlx::query_scalar(
            "INSERT INTO import_leases (import_id, worker, token, expires_at) \
             VALUES ($1, $2, $3, now() + make_interval(secs => $4)) \
             ON CONFLICT (import_id) DO UPDATE SET worker = excluded.worker, \
               token = excluded.token, expires_at = excluded.expires_at \
             RETURNING expires_at",
        )
        .bind(&id)
        .bind(worker)
        .bind(&token)
        .bind(seconds(lease))
        .fetch_one(&mut *tx)
        .await
        .map_err(busy_or(DOING))?;
        tx.commit().await.map_err(busy_or(DOING))?;
        Ok(Some(Lease {
            import: ImportId::parse(id).map_err(anyhow::Error::new)?,
            worker: worker.to_owned(),
            token,
            expires_at,
            attempt: u32::try_from(attempt).unwrap_or(0),
        }))
    }

    async fn held(&self, job: &str) -> Result<u64, RebuildError> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM imports WHERE held_for = $1")
            .bind(job)
            .fetch_one(&self.pool)
            .await
            .map_err(unexpected("counting imports held for a reprocess"))?;
        Ok(u64::try_from(n).unwrap_or(0))
    }
}
