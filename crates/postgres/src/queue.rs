//! The import queue: `FOR UPDATE SKIP LOCKED` claims, so concurrent workers in any
//! number of processes never get the same import; leases are rows of `import_leases`,
//! renewable while the import's unit of work holds the import row.

use std::time::Duration;

use chrono::{DateTime, Utc};
use intake_domain::ports::{ImportQueue, ImportSummary, Lease, QueueError, VaultError};
use intake_domain::{ContractVersion, ImportId};
use sqlx::Row as _;

use crate::rebuild::NOT_REPROCESSING;
use crate::rows::{IMPORT_COLUMNS, import_row};
use crate::vault::get;
use crate::{PgStore, new_id, seconds, unexpected};

/// Waiting: `received`, or `processing` under a lease that lapsed (or is missing).
const WAITING: &str = "(i.status = 'received' OR (i.status = 'processing' \
    AND NOT EXISTS (SELECT 1 FROM import_leases l WHERE l.import_id = i.id AND l.expires_at >= now())))";

#[async_trait::async_trait]
impl ImportQueue for PgStore {
    /// The row lock of `SKIP LOCKED` is re-checked against the import row only; a
    /// claimer whose snapshot predates another's lease would pass that check, so the
    /// lease upsert itself refuses to replace a lease that has not expired (that
    /// claimer then gets `None` and polls again).
    async fn claim(&self, worker: &str, lease: Duration) -> Result<Option<Lease>, QueueError> {
        let token = new_id();
        let row = sqlx::query(&format!(
            "WITH next AS ( \
               SELECT i.id FROM imports i WHERE {WAITING} AND {NOT_REPROCESSING} \
               ORDER BY i.seq LIMIT 1 FOR UPDATE SKIP LOCKED), \
             claimed AS ( \
               UPDATE imports SET status = 'processing', attempts = imports.attempts + 1 \
               FROM next WHERE imports.id = next.id RETURNING imports.id, imports.attempts) \
             INSERT INTO import_leases (import_id, worker, token, expires_at) \
               SELECT id, $1, $2, now() + make_interval(secs => $3) FROM claimed \
             ON CONFLICT (import_id) DO UPDATE SET worker = excluded.worker, \
               token = excluded.token, expires_at = excluded.expires_at \
               WHERE import_leases.expires_at < now() \
             RETURNING import_id, expires_at, (SELECT attempts FROM claimed) AS attempt"
        ))
        .bind(worker)
        .bind(&token)
        .bind(seconds(lease))
        .fetch_optional(&self.pool)
        .await
        .map_err(unexpected("claiming an import"))?;
        let Some(row) = row else { return Ok(None) };
        let id: String = row.try_get("import_id").map_err(anyhow::Error::new)?;
        Ok(Some(Lease {
            import: ImportId::parse(id).map_err(anyhow::Error::new)?,
            worker: worker.to_owned(),
            token,
            expires_at: row.try_get("expires_at").map_err(anyhow::Error::new)?,
            attempt: u32::try_from(
                row.try_get::<i32, _>("attempt")
                    .map_err(anyhow::Error::new)?,
            )
            .unwrap_or(0),
        }))
    }

    async fn renew(&self, lease: &Lease, by: Duration) -> Result<Lease, QueueError> {
        let renewed = renew(&self.pool, lease, by).await;
        let expires_at = renewed.map_err(unexpected("renewing a lease"))?;
        let expires_at = expires_at.ok_or(QueueError::LeaseLost)?;
        Ok(Lease {
            expires_at,
            ..lease.clone()
        })
    }

    async fn release(&self, lease: &Lease) -> Result<(), QueueError> {
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(unexpected("releasing an import"))?;
        let deleted = sqlx::query("DELETE FROM import_leases WHERE import_id = $1 AND token = $2")
            .bind(lease.import.as_str())
            .bind(&lease.token)
            .execute(&mut *tx)
            .await
            .map_err(unexpected("releasing an import"))?;
        if deleted.rows_affected() == 0 {
            return Err(QueueError::LeaseLost);
        }
        sqlx::query(
            "UPDATE imports SET status = 'received', attempts = GREATEST(attempts - 1, 0) \
             WHERE id = $1 AND status = 'processing'",
        )
        .bind(lease.import.as_str())
        .execute(&mut *tx)
        .await
        .map_err(unexpected("releasing an import"))?;
        tx.commit()
            .await
            .map_err(unexpected("releasing an import"))?;
        Ok(())
    }

    async fn holders(&self) -> Result<Vec<String>, QueueError> {
        let holders = sqlx::query_scalar(
            "SELECT DISTINCT worker FROM import_leases WHERE expires_at >= now() ORDER BY worker",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(unexpected("listing lease holders"))?;
        Ok(holders)
    }

    async fn expire(&self, worker: &str) -> Result<u64, QueueError> {
        let expired = sqlx::query(
            "UPDATE import_leases SET expires_at = now() - interval '1 second' \
             WHERE worker = $1 AND expires_at >= now()",
        )
        .bind(worker)
        .execute(&self.pool)
        .await
        .map_err(unexpected("expiring leases"))?;
        Ok(expired.rows_affected())
    }

    async fn depth(&self) -> Result<u64, QueueError> {
        let n: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM imports i WHERE {WAITING}"))
            .fetch_one(&self.pool)
            .await
            .map_err(unexpected("counting waiting imports"))?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn requeue(
        &self,
        id: &ImportId,
        contract: ContractVersion,
    ) -> Result<ImportSummary, QueueError> {
        // The answer is the row as this statement left it: once it commits, its
        // notification may wake a worker that claims the import before a second read.
        let requeued = sqlx::query(&format!(
            "UPDATE imports SET status = 'received', contract = $1, report = NULL, attempts = 0 \
             WHERE id = $2 AND status IN ('completed', 'failed') RETURNING {IMPORT_COLUMNS}"
        ))
        .bind(i32::try_from(contract.get()).unwrap_or(i32::MAX))
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(unexpected("requeueing an import"))?;
        if let Some(row) = requeued {
            return Ok(import_row(&row)?);
        }
        match get(&self.pool, id).await {
            Ok(_) => Err(QueueError::Busy),
            Err(VaultError::NotFound) => Err(QueueError::NotFound),
            Err(e) => Err(QueueError::Unexpected(e.into())),
        }
    }
}

/// Extends a lease still held by its token; `None` when it was lost.
pub(crate) async fn renew(
    pool: &sqlx::PgPool,
    lease: &Lease,
    by: Duration,
) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
    sqlx::query_scalar(
        "UPDATE import_leases SET expires_at = now() + make_interval(secs => $3) \
         WHERE import_id = $1 AND token = $2 RETURNING expires_at",
    )
    .bind(lease.import.as_str())
    .bind(&lease.token)
    .bind(seconds(by))
    .fetch_optional(pool)
    .await
}
