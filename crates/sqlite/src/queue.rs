//! The import queue: leases are columns of the import row. SQLite runs one writer at a
//! time, so each claim (one UPDATE … RETURNING) is atomic across threads and processes.

use std::time::Duration;

use chrono::{DateTime, Utc};
use intake_domain::ports::{ImportQueue, ImportSummary, Lease, QueueError, VaultError};
use intake_domain::{ContractVersion, ImportId};

use crate::rebuild::NOT_REPROCESSING;
use crate::rows::{IMPORT_COLUMNS, import_row};
use crate::vault::get;
use crate::{SqliteStore, lock_timed_out, new_id, now, ts, unexpected};

pub(crate) fn expiry(from: DateTime<Utc>, lease: Duration) -> DateTime<Utc> {
    from + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::MAX)
}

#[async_trait::async_trait]
impl ImportQueue for SqliteStore {
    async fn claim(&self, worker: &str, lease: Duration) -> Result<Option<Lease>, QueueError> {
        let at = now();
        let (token, expires_at) = (new_id(), expiry(at, lease));
        let claimed: Result<Option<(String, i64)>, _> = sqlx::query_as(&format!(
            "UPDATE imports SET status = 'processing', lease_worker = ?1, lease_token = ?2, \
               lease_expires_at = ?3, attempts = attempts + 1 \
             WHERE seq = (SELECT seq FROM imports i WHERE (status = 'received' \
               OR (status = 'processing' AND lease_expires_at < ?4)) AND {NOT_REPROCESSING} \
               ORDER BY seq LIMIT 1) \
             RETURNING id, attempts"
        ))
        .bind(worker)
        .bind(&token)
        .bind(ts(expires_at))
        .bind(ts(at))
        .fetch_optional(&self.writes)
        .await;
        let claimed = match claimed {
            // Another import holds the single write lock for longer than the busy
            // timeout: nothing can be claimed now, which is not an error.
            Err(e) if lock_timed_out(&e) => {
                tracing::debug!("the database is busy with another import; nothing claimed");
                return Ok(None);
            }
            other => other.map_err(unexpected("claiming an import"))?,
        };
        let Some((id, attempt)) = claimed else {
            return Ok(None);
        };
        Ok(Some(Lease {
            import: ImportId::parse(id).map_err(anyhow::Error::new)?,
            worker: worker.to_owned(),
            token,
            expires_at,
            attempt: u32::try_from(attempt).unwrap_or(u32::MAX),
        }))
    }

    async fn renew(&self, lease: &Lease, by: Duration) -> Result<Lease, QueueError> {
        let expires_at = expiry(now(), by);
        let renewed = sqlx::query(
            "UPDATE imports SET lease_expires_at = ? \
             WHERE id = ? AND lease_token = ? AND status = 'processing'",
        )
        .bind(ts(expires_at))
        .bind(lease.import.as_str())
        .bind(&lease.token)
        .execute(&self.writes)
        .await
        .map_err(unexpected("renewing a lease"))?;
        if renewed.rows_affected() == 0 {
            return Err(QueueError::LeaseLost);
        }
        Ok(Lease {
            expires_at,
            ..lease.clone()
        })
    }

    async fn release(&self, lease: &Lease) -> Result<(), QueueError> {
        let released = sqlx::query(
            "UPDATE imports SET status = 'received', lease_worker = NULL, lease_token = NULL, \
               lease_expires_at = NULL, attempts = MAX(attempts - 1, 0) \
             WHERE id = ? AND lease_token = ? AND status = 'processing'",
        )
        .bind(lease.import.as_str())
        .bind(&lease.token)
        .execute(&self.writes)
        .await
        .map_err(unexpected("releasing an import"))?;
        match released.rows_affected() {
            0 => Err(QueueError::LeaseLost),
            _ => Ok(()),
        }
    }

    async fn holders(&self) -> Result<Vec<String>, QueueError> {
        let holders = sqlx::query_scalar(
            "SELECT DISTINCT lease_worker FROM imports WHERE status = 'processing' \
             AND lease_expires_at >= ? AND lease_worker IS NOT NULL ORDER BY lease_worker",
        )
        .bind(ts(now()))
        .fetch_all(&self.pool)
        .await
        .map_err(unexpected("listing lease holders"))?;
        Ok(holders)
    }

    async fn expire(&self, worker: &str) -> Result<u64, QueueError> {
        let at = now();
        let expired = sqlx::query(
            "UPDATE imports SET lease_expires_at = ?1 \
             WHERE lease_worker = ?2 AND status = 'processing' AND lease_expires_at >= ?3",
        )
        .bind(ts(at - chrono::Duration::seconds(1)))
        .bind(worker)
        .bind(ts(at))
        .execute(&self.writes)
        .await
        .map_err(unexpected("expiring leases"))?;
        Ok(expired.rows_affected())
    }

    async fn depth(&self) -> Result<u64, QueueError> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM imports WHERE status = 'received' \
               OR (status = 'processing' AND lease_expires_at < ?)",
        )
        .bind(ts(now()))
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
        // The answer is the row as this statement left it: a worker may claim the
        // import before a second read (the API answered `processing` for a reprocess).
        let requeued = sqlx::query(&format!(
            "UPDATE imports SET status = 'received', contract = ?, report = NULL, attempts = 0 \
             WHERE id = ? AND status IN ('completed', 'failed') RETURNING {IMPORT_COLUMNS}"
        ))
        .bind(i64::from(contract.get()))
        .bind(id.as_str())
        .fetch_optional(&self.writes)
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
