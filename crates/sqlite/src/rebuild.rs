//! A reprocess job's side of the store (ADR 34): the dataset cleared and its imports
//! held for the job in one transaction, then claimed by the job alone, oldest first.

use std::time::Duration;

use intake_domain::ports::{Lease, RebuildError, RebuildStore};
use intake_domain::{ContractVersion, DatasetName, ImportId};

use crate::queue::expiry;
use crate::{SqliteStore, lock_timed_out, new_id, now, ts, unexpected};

/// Imports of a dataset whose reprocess job has not ended are the job's alone: the
/// import queue's claim leaves them (`i` is the import row).
pub(crate) const NOT_REPROCESSING: &str = "NOT EXISTS (SELECT 1 FROM jobs j \
    WHERE j.dataset = i.dataset AND j.kind = 'reprocess' \
    AND j.status IN ('queued', 'running', 'paused'))";

fn busy_or(doing: &'static str) -> impl FnOnce(sqlx::Error) -> RebuildError {
    move |e| {
        if lock_timed_out(&e) {
            RebuildError::Busy
        } else {
            RebuildError::Unexpected(unexpected(doing)(e))
        }
    }
}

#[async_trait::async_trait]
impl RebuildStore for SqliteStore {
    async fn hold(
        &self,
        dataset: &DatasetName,
        job: &str,
        contract: ContractVersion,
    ) -> Result<u64, RebuildError> {
        const DOING: &str = "clearing a dataset for a reprocess";
        let mut tx = self
            .writes
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(busy_or(DOING))?;
        let at = ts(now());
        let ds = dataset.as_str();
        let processing: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM imports WHERE dataset = ? AND status = 'processing' \
             AND lease_expires_at >= ?",
        )
        .bind(ds)
        .bind(&at)
        .fetch_one(&mut *tx)
        .await
        .map_err(busy_or(DOING))?;
        if processing > 0 {
            return Err(RebuildError::Busy);
        }
        let held = sqlx::query(
            "UPDATE imports SET status = 'received', contract = ?, report = NULL, attempts = 0, \
               held_for = ? WHERE dataset = ? AND status IN ('completed', 'failed')",
        )
        .bind(i64::from(contract.get()))
        .bind(job)
        .bind(ds)
        .execute(&mut *tx)
        .await
        .map_err(busy_or(DOING))?
        .rows_affected();
        for sql in [
            "DELETE FROM records WHERE dataset = ?1",
            "DELETE FROM record_history WHERE dataset = ?1",
            "DELETE FROM identities WHERE dataset = ?1",
            "DELETE FROM conflicts WHERE dataset = ?1",
            "UPDATE datasets SET revision = revision + 1, records = 0 WHERE name = ?1",
            // The rollups read a history that is no more: from the beginning again.
            "DELETE FROM rollup_points WHERE dataset = ?1",
            "DELETE FROM job_checkpoints WHERE job_id IN (SELECT id FROM jobs \
               WHERE dataset = ?1 AND kind = 'rollup' AND status <> 'cancelled')",
            "UPDATE jobs SET status = CASE WHEN status = 'paused' THEN 'paused' ELSE 'queued' END, \
               done = 0, total = NULL, error = NULL, attempts = 0, due_at = ?2, updated_at = ?2, \
               finished_at = NULL, worker = NULL, token = NULL, lease_expires_at = NULL \
             WHERE dataset = ?1 AND kind = 'rollup' AND status <> 'cancelled'",
        ] {
            sqlx::query(sql)
                .bind(ds)
                .bind(&at)
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
        let at = now();
        let (token, expires_at) = (new_id(), expiry(at, lease));
        let claimed: Option<(String, i64)> = sqlx::query_as(
            "UPDATE imports SET status = 'processing', lease_worker = ?1, lease_token = ?2, \
               lease_expires_at = ?3, attempts = attempts + 1 \
             WHERE seq = (SELECT seq FROM imports WHERE held_for = ?4 ORDER BY seq LIMIT 1) \
               AND (status = 'received' OR (status = 'processing' AND lease_expires_at < ?5)) \
             RETURNING id, attempts",
        )
        .bind(worker)
        .bind(&token)
        .bind(ts(expires_at))
        .bind(job)
        .bind(ts(at))
        .fetch_optional(&self.writes)
        .await
        .map_err(busy_or(DOING))?;
        let Some((id, attempt)) = claimed else {
            return match self.held(job).await? {
                0 => Ok(None),
                _ => Err(RebuildError::Busy),
            };
        };
        Ok(Some(Lease {
            import: ImportId::parse(id).map_err(anyhow::Error::new)?,
            worker: worker.to_owned(),
            token,
            expires_at,
            attempt: u32::try_from(attempt).unwrap_or(u32::MAX),
        }))
    }

    async fn held(&self, job: &str) -> Result<u64, RebuildError> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM imports WHERE held_for = ?")
            .bind(job)
            .fetch_one(&self.pool)
            .await
            .map_err(unexpected("counting imports held for a reprocess"))?;
        Ok(u64::try_from(n).unwrap_or(0))
    }
}
