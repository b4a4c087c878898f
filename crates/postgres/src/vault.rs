//! The raw vault: chunks are written as they arrive, each in a statement of its own
//! on a connection taken for that statement only, and the import row that makes them
//! visible (and queues the import) is inserted at commit. A slow client therefore
//! holds no connection and no transaction while its body trickles in: stalled uploads
//! never starve requests or workers of the pool (issue 13, ADR 14). A writer dropped
//! before commit deletes its chunks in the background; chunks a crash left behind
//! are swept by [`crate::PgStore::migrate`] a day later.

use std::time::Duration;

use intake_domain::ports::{
    ImportSummary, ImportVault, NewImport, VaultError, VaultReader, VaultWriter,
};
use intake_domain::{DatasetName, ImportId};
use sqlx::PgPool;

use crate::rows::{IMPORT_COLUMNS, import_row};
use crate::{PgStore, is_unique_violation, new_id, unexpected};

/// Bytes gathered before a chunk row is written.
const CHUNK: usize = 256 * 1024;

struct PgVaultWriter {
    pool: PgPool,
    id: String,
    import: NewImport,
    buffer: Vec<u8>,
    chunks: i32,
    size: u64,
    committed: bool,
    committing: bool,
}

impl PgVaultWriter {
    async fn flush(&mut self) -> Result<(), VaultError> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        sqlx::query("INSERT INTO vault_chunks (import_id, n, bytes) VALUES ($1, $2, $3)")
            .bind(&self.id)
            .bind(self.chunks)
            .bind(&self.buffer)
            .execute(&self.pool)
            .await
            .map_err(unexpected("writing a vault chunk"))?;
        self.chunks += 1;
        self.buffer.clear();
        Ok(())
    }
}

#[async_trait::async_trait]
impl VaultWriter for PgVaultWriter {
    async fn write(&mut self, chunk: &[u8]) -> Result<(), VaultError> {
        self.size += chunk.len() as u64;
        for piece in chunk.chunks(CHUNK) {
            self.buffer.extend_from_slice(piece);
            if self.buffer.len() >= CHUNK {
                self.flush().await?;
            }
        }
        Ok(())
    }

    async fn commit(mut self: Box<Self>, sha256: &str) -> Result<ImportSummary, VaultError> {
        self.flush().await?;
        // From here the import row may commit even if this future is dropped (a
        // deadline, a client gone): its chunks are then left to the sweep, which
        // deletes them only when no import row names them.
        self.committing = true;
        let inserted = sqlx::query(
            "INSERT INTO imports (id, dataset, contract, content_type, source, idempotency_key, \
             size, sha256, status) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'received')",
        )
        .bind(&self.id)
        .bind(self.import.dataset.as_str())
        .bind(i32::try_from(self.import.contract.get()).unwrap_or(i32::MAX))
        .bind(&self.import.content_type)
        .bind(&self.import.source)
        .bind(&self.import.idempotency_key)
        .bind(i64::try_from(self.size).unwrap_or(i64::MAX))
        .bind(sha256)
        .execute(&self.pool)
        .await;
        match inserted {
            Ok(_) => {
                self.committed = true;
                let id = ImportId::parse(self.id.clone()).map_err(anyhow::Error::new)?;
                get(&self.pool, &id).await
            }
            Err(e) if is_unique_violation(&e) => {
                self.committing = false; // refused: nothing committed, drop deletes the chunks
                let first = earlier(&self.pool, &self.import, Some(sha256)).await?;
                Err(first.map_or_else(|| VaultError::Unexpected(e.into()), already))
            }
            Err(e) => Err(unexpected("committing an import")(e).into()),
        }
    }
}

impl Drop for PgVaultWriter {
    fn drop(&mut self) {
        if self.committed || self.committing || self.chunks == 0 {
            return;
        }
        let (pool, id) = (self.pool.clone(), self.id.clone());
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let deleted = sqlx::query("DELETE FROM vault_chunks WHERE import_id = $1")
                    .bind(&id)
                    .execute(&pool)
                    .await;
                if let Err(e) = deleted {
                    tracing::warn!(upload = %id, error = %e, "could not delete an abandoned upload");
                }
            });
        }
    }
}

/// Deletes the chunks of uploads that never committed and started more than
/// `older_than` ago (upload ids are UUIDv7: their start time is in the id). The
/// number of uploads swept.
pub(crate) async fn sweep_abandoned_uploads(
    pool: &PgPool,
    older_than: Duration,
) -> anyhow::Result<u64> {
    let orphans: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT c.import_id FROM vault_chunks c \
         WHERE NOT EXISTS (SELECT 1 FROM imports i WHERE i.id = c.import_id)",
    )
    .fetch_all(pool)
    .await
    .map_err(unexpected("listing abandoned uploads"))?;
    let cutoff = std::time::SystemTime::now() - older_than;
    let mut swept = 0;
    for id in orphans {
        let started = uuid::Uuid::try_parse(&id)
            .ok()
            .and_then(|u| u.get_timestamp())
            .map(|t| t.to_unix())
            .map(|(secs, nanos)| std::time::UNIX_EPOCH + Duration::new(secs, nanos));
        if started.is_some_and(|at| at > cutoff) {
            continue; // maybe still uploading
        }
        let deleted = sqlx::query(
            "DELETE FROM vault_chunks WHERE import_id = $1 \
             AND NOT EXISTS (SELECT 1 FROM imports WHERE id = $1)",
        )
        .bind(&id)
        .execute(pool)
        .await
        .map_err(unexpected("deleting an abandoned upload"))?;
        swept += u64::from(deleted.rows_affected() > 0);
    }
    Ok(swept)
}

fn already(first: ImportSummary) -> VaultError {
    VaultError::AlreadyReceived(Box::new(first))
}

/// The dataset's import with the same idempotency key, or else the same body.
async fn earlier(
    pool: &PgPool,
    import: &NewImport,
    sha256: Option<&str>,
) -> Result<Option<ImportSummary>, VaultError> {
    let row = sqlx::query(&format!(
        "SELECT {IMPORT_COLUMNS} FROM imports WHERE dataset = $1 \
         AND (idempotency_key = $2 OR sha256 = $3) ORDER BY seq LIMIT 1"
    ))
    .bind(import.dataset.as_str())
    .bind(&import.idempotency_key)
    .bind(sha256)
    .fetch_optional(pool)
    .await
    .map_err(unexpected("looking up an earlier import"))?;
    Ok(row.as_ref().map(import_row).transpose()?)
}

pub(crate) async fn get(pool: &PgPool, id: &ImportId) -> Result<ImportSummary, VaultError> {
    let row = sqlx::query(&format!(
        "SELECT {IMPORT_COLUMNS} FROM imports WHERE id = $1"
    ))
    .bind(id.as_str())
    .fetch_optional(pool)
    .await
    .map_err(unexpected("reading an import"))?;
    Ok(import_row(&row.ok_or(VaultError::NotFound)?)?)
}

struct PgVaultReader {
    pool: PgPool,
    id: String,
    next: i32,
}

#[async_trait::async_trait]
impl VaultReader for PgVaultReader {
    async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, VaultError> {
        let bytes: Option<Vec<u8>> =
            sqlx::query_scalar("SELECT bytes FROM vault_chunks WHERE import_id = $1 AND n = $2")
                .bind(&self.id)
                .bind(self.next)
                .fetch_optional(&self.pool)
                .await
                .map_err(unexpected("reading a vault chunk"))?;
        self.next += 1;
        Ok(bytes)
    }
}

#[async_trait::async_trait]
impl ImportVault for PgStore {
    async fn begin(&self, import: &NewImport) -> Result<Box<dyn VaultWriter>, VaultError> {
        if import.idempotency_key.is_some()
            && let Some(first) = earlier(&self.pool, import, None).await?
        {
            return Err(already(first));
        }
        Ok(Box::new(PgVaultWriter {
            pool: self.pool.clone(),
            id: new_id(),
            import: import.clone(),
            buffer: Vec::with_capacity(CHUNK),
            chunks: 0,
            size: 0,
            committed: false,
            committing: false,
        }))
    }

    async fn open(&self, id: &ImportId) -> Result<Box<dyn VaultReader>, VaultError> {
        get(&self.pool, id).await?;
        Ok(Box::new(PgVaultReader {
            pool: self.pool.clone(),
            id: id.as_str().to_owned(),
            next: 0,
        }))
    }

    async fn get(&self, id: &ImportId) -> Result<ImportSummary, VaultError> {
        get(&self.pool, id).await
    }

    async fn list(
        &self,
        dataset: &DatasetName,
        limit: u32,
        offset: u64,
    ) -> Result<Vec<ImportSummary>, VaultError> {
        let rows = sqlx::query(&format!(
            "SELECT {IMPORT_COLUMNS} FROM imports WHERE dataset = $1 ORDER BY seq DESC LIMIT $2 OFFSET $3"
        ))
        .bind(dataset.as_str())
        .bind(i64::from(limit))
        .bind(i64::try_from(offset).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await
        .map_err(unexpected("listing imports"))?;
        Ok(rows.iter().map(import_row).collect::<Result<_, _>>()?)
    }

    async fn list_before(
        &self,
        dataset: &DatasetName,
        before: &ImportId,
        limit: u32,
    ) -> Result<Vec<ImportSummary>, VaultError> {
        let rows = sqlx::query(&format!(
            "SELECT {IMPORT_COLUMNS} FROM imports WHERE dataset = $1 \
             AND seq < (SELECT seq FROM imports WHERE dataset = $1 AND id = $2) \
             ORDER BY seq DESC LIMIT $3"
        ))
        .bind(dataset.as_str())
        .bind(before.as_str())
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(unexpected("listing imports"))?;
        Ok(rows.iter().map(import_row).collect::<Result<_, _>>()?)
    }
}
